//! Listeners: bind, accept, slots, sessions.
//!
//! The caller binds ([`Sensor::bind`]) and the sensor serves ([`Sensor::serve`]). A global
//! semaphore permit is taken *before* accept, so at most `max_connections` sessions exist; a
//! per-source count caps one IP's share. Each session records `session.connect` first and
//! exactly one `session.closed` last, whatever happens in between (a panic included).

pub mod conn;
pub mod dispatch;
pub mod syn;
pub mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use honeyport_event::{EndReason, EventKind, Payload, SessionId, Transport};
use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::classify::detect::Proto;
use crate::config::{Config, Limits};
use crate::persona::Persona;
use crate::pipeline::EventTx;
use conn::{Conn, End, Io, SessionMeta};

/// State shared by every listener and session of one sensor.
pub struct Shared {
    pub sensor: String,
    pub limits: Limits,
    pub events: EventTx,
    slots: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    /// Cancelled when shutdown starts: accept loops stop.
    stop_accepting: CancellationToken,
    /// Cancelled when the grace period is over: sessions end with reason `shutdown`.
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    udp_rate: udp::RateLimiter,
    pub stats: SensorStats,
    /// Real downloads, when enabled.
    pub fetcher: Option<Arc<crate::fetch::Fetcher>>,
    /// Record `session.classified` for every session.
    classify_sessions: bool,
}

/// Counters reported at shutdown.
#[derive(Debug, Default)]
pub struct SensorStats {
    pub sessions: AtomicU64,
    pub open: AtomicU64,
    /// Datagrams not handled because a limit was full (no session could be made).
    pub udp_dropped: AtomicU64,
    /// accept() errors (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
}

impl Shared {
    fn udp_rate_ok(&self, ip: IpAddr) -> bool {
        self.udp_rate.allow(
            ip,
            self.limits.udp_replies_per_second,
            self.limits.udp_reply_burst,
        )
    }

    fn try_source(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut m = self.per_source.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.max_per_source {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// One session's share of its source IP's quota; given back on drop.
struct SourceSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.per_source.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// A listener's runtime half: shared by all its sockets.
pub struct ListenerRt {
    pub name: String,
    pub persona_name: String,
    pub persona: Persona,
    pub allow: Option<Vec<IpNet>>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// A multi-protocol port: its personas (the default first) and how one is picked.
    pub dispatcher: Option<dispatch::Dispatcher>,
}

impl ListenerRt {
    fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match &self.allow {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

enum Bound {
    Tcp(TcpListener),
    Udp(Arc<UdpSocket>),
}

struct BoundSocket {
    rt: Arc<ListenerRt>,
    local: SocketAddr,
    sock: Bound,
    /// The kernel keeps this TCP socket's SYNs (see [`syn`]).
    save_syn: bool,
}

/// What one bound socket is, for printing and tests.
#[derive(Clone, Debug)]
pub struct BoundInfo {
    pub listener: String,
    pub persona: String,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub tls: bool,
}

/// A sensor with every socket bound, ready to serve.
pub struct Sensor {
    sensor: String,
    limits: Limits,
    sockets: Vec<BoundSocket>,
    fetcher: Option<Arc<crate::fetch::Fetcher>>,
    classify_sessions: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot bind {transport} {addr} for listener {listener:?}: {source}")]
pub struct BindError {
    pub listener: String,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds (and for TCP, listens). With `save_syn`, a TCP socket asks the kernel to keep each
/// connection's SYN; the second value says whether it does.
fn bind_socket(t: Transport, addr: SocketAddr, save_syn: bool) -> std::io::Result<(Socket, bool)> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let (ty, proto) = match t {
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let s = Socket::new(domain, ty, Some(proto))?;
    if addr.is_ipv6() {
        // IPv4 gets its own socket; never let [::] swallow IPv4 as mapped addresses.
        s.set_only_v6(true)?;
    }
    if t == Transport::Tcp {
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    let mut saving = false;
    if t == Transport::Tcp {
        if save_syn {
            // Not Linux, or refused: sessions just have no `tcp.syn`.
            match syn::enable(&s) {
                Ok(()) => saving = true,
                Err(e) => {
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    ONCE.call_once(|| {
                        tracing::debug!(error = %e, "TCP_SAVE_SYN unavailable: no tcp.syn events");
                    });
                }
            }
        }
        s.listen(4096)?;
    }
    Ok((s, saving))
}

impl Sensor {
    /// Fetches what the shell is asked to download (see [`crate::fetch`]).
    pub fn with_fetcher(mut self, f: crate::fetch::Fetcher) -> Sensor {
        self.fetcher = Some(Arc::new(f));
        self
    }

    /// Binds every socket of every listener. Nothing is served until [`Sensor::serve`].
    pub fn bind(cfg: Config) -> Result<Sensor, BindError> {
        let mut sockets = Vec::new();
        for l in cfg.listeners {
            let rt = Arc::new(ListenerRt {
                name: l.name.clone(),
                persona_name: l.persona_name.clone(),
                persona: l.persona.clone(),
                allow: l.allow.clone(),
                tls: l.tls.clone().map(tokio_rustls::TlsAcceptor::from),
                dispatcher: (!l.alternatives.is_empty()).then(|| {
                    let mut all = vec![(l.persona_name.clone(), l.persona.clone())];
                    all.extend(l.alternatives.iter().cloned());
                    dispatch::Dispatcher::new(all, l.dispatch)
                }),
            });
            for &(t, addr) in &l.binds {
                let err = |source| BindError {
                    listener: l.name.clone(),
                    transport: t,
                    addr,
                    source,
                };
                let (s, save_syn) = bind_socket(t, addr, cfg.classify_syn).map_err(err)?;
                let sock = match t {
                    Transport::Tcp => Bound::Tcp(TcpListener::from_std(s.into()).map_err(err)?),
                    Transport::Udp => {
                        let u = UdpSocket::from_std(s.into()).map_err(err)?;
                        if addr.ip().is_unspecified() {
                            udp::enable_pktinfo(&u, addr.is_ipv6()).map_err(err)?;
                        }
                        Bound::Udp(Arc::new(u))
                    }
                };
                let local = match &sock {
                    Bound::Tcp(l) => l.local_addr(),
                    Bound::Udp(u) => u.local_addr(),
                }
                .map_err(err)?;
                sockets.push(BoundSocket {
                    rt: rt.clone(),
                    local,
                    sock,
                    save_syn,
                });
            }
        }
        Ok(Sensor {
            sensor: cfg.sensor,
            limits: cfg.limits,
            sockets,
            fetcher: None,
            classify_sessions: cfg.classify_sessions,
        })
    }

    /// Every bound socket, with its real (OS-assigned for port 0) address.
    pub fn bound(&self) -> Vec<BoundInfo> {
        self.sockets
            .iter()
            .map(|s| BoundInfo {
                listener: s.rt.name.clone(),
                persona: s.rt.persona_name.clone(),
                transport: match s.sock {
                    Bound::Tcp(_) => Transport::Tcp,
                    Bound::Udp(_) => Transport::Udp,
                },
                addr: s.local,
                tls: s.rt.tls.is_some(),
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, gives open sessions
    /// `shutdown_grace` to finish, ends the rest with reason `shutdown`, and returns once every
    /// session has recorded its end. The caller then drops its `EventTx` and finishes the
    /// pipeline, which flushes.
    pub async fn serve(
        self,
        events: EventTx,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> ServeReport {
        let shared = Arc::new(Shared {
            sensor: self.sensor,
            slots: Arc::new(Semaphore::new(self.limits.max_connections)),
            limits: self.limits,
            events,
            per_source: Mutex::new(HashMap::new()),
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            udp_rate: udp::RateLimiter::default(),
            stats: SensorStats::default(),
            fetcher: self.fetcher,
            classify_sessions: self.classify_sessions,
        });
        let mut loops = Vec::new();
        for s in self.sockets {
            let sh = shared.clone();
            loops.push(match s.sock {
                Bound::Tcp(l) => tokio::spawn(accept_loop(sh, s.rt, l, s.save_syn)),
                Bound::Udp(u) => tokio::spawn(udp_loop(sh, s.rt, u, s.local)),
            });
        }
        shutdown.await;
        shared.stop_accepting.cancel();
        for l in loops {
            let _ = l.await;
        }
        shared.tracker.close();
        let open_at_stop = shared.stats.open.load(Ordering::Relaxed);
        let graceful = tokio::time::timeout(shared.limits.shutdown_grace, shared.tracker.wait())
            .await
            .is_ok();
        if !graceful {
            shared.hard_stop.cancel();
            shared.tracker.wait().await;
        }
        ServeReport {
            sessions: shared.stats.sessions.load(Ordering::Relaxed),
            open_at_stop,
            ended_by_shutdown: !graceful,
            udp_dropped: shared.stats.udp_dropped.load(Ordering::Relaxed),
            accept_errors: shared.stats.accept_errors.load(Ordering::Relaxed),
        }
    }
}

/// What `serve` did.
#[derive(Debug, Clone, Copy)]
pub struct ServeReport {
    pub sessions: u64,
    pub open_at_stop: u64,
    pub ended_by_shutdown: bool,
    pub udp_dropped: u64,
    pub accept_errors: u64,
}

async fn accept_loop(
    shared: Arc<Shared>,
    rt: Arc<ListenerRt>,
    listener: TcpListener,
    save_syn: bool,
) {
    let stop = shared.stop_accepting.clone();
    let mut backoff = Duration::from_millis(5);
    loop {
        // A store that cannot keep up slows accepting before anything is dropped.
        while shared.events.pressure_high() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = shared.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: our fault or the host's, not the peer's.
                    shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, listener = %rt.name, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(5);
        // The client's SYN (the kernel hands it out once; one cheap getsockopt), parsed now so
        // only the small result, boxed, goes to the session, which records it.
        let syn = if save_syn {
            syn::saved(&stream)
                .and_then(|b| syn::parse(&b))
                .map(Box::new)
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue, // already gone before we looked: nothing was exchanged
        };
        let meta = SessionMeta {
            id: new_session_id(),
            transport: Transport::Tcp,
            src: peer,
            dst: local,
        };
        // The connect event is queued here, in the accept loop: when the store is behind and
        // the queue is full, accepting waits with it (a burst of accepts cannot outrun it).
        let guard = open_session(&shared, &rt, meta).await;
        let rt = rt.clone();
        shared.tracker.spawn(async move {
            if let Some(syn) = syn {
                // Boxed, like every once-only await: its state stays out of the session's task.
                Box::pin(record_syn(&guard, *syn)).await;
            }
            run_session(guard, rt, permit, SessionIo::Tcp(stream)).await;
        });
    }
}

/// Records a TCP session's `tcp.syn` right after its `session.connect` (and, for a SYN with
/// the Mirai marker, the `mirai.syn_seq` tag as a `rule.match`).
async fn record_syn(guard: &CloseGuard, syn: syn::Syn) {
    let shared = &guard.shared;
    let ev = guard.meta.event(&shared.sensor, syn.event());
    shared.events.send(ev).await;
    if syn.mirai {
        let tag = EventKind::RuleMatch {
            rule: syn::MIRAI_RULE.into(),
            action: "tag".into(),
            match_len: 0,
        };
        let ev = guard.meta.event(&shared.sensor, tag);
        shared.events.send(ev).await;
    }
}

async fn udp_loop(
    shared: Arc<Shared>,
    rt: Arc<ListenerRt>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
) {
    let stop = shared.stop_accepting.clone();
    let table: Arc<udp::FlowTable> = Arc::new(Mutex::new(HashMap::new()));
    let wildcard = local.ip().is_unspecified();
    let mut buf = vec![0u8; shared.limits.max_read.max(2048)];
    loop {
        while shared.events.pressure_high() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        let (n, peer, dst_ip) = tokio::select! {
            _ = stop.cancelled() => return,
            r = udp::recv_from_to(&sock, &mut buf, local, wildcard) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "udp recv error");
                    continue;
                }
            },
        };
        let data = buf[..n].to_vec();
        match udp::route(&table, &sock, peer, dst_ip, wildcard, data) {
            udp::Route::Queued => {}
            udp::Route::Full => {
                shared.stats.udp_dropped.fetch_add(1, Ordering::Relaxed);
            }
            udp::Route::New(flow) => start_flow(&shared, &rt, flow, local.port()),
        }
    }
}

/// Starts the session of a new UDP flow, if a slot is free (else its datagrams are dropped and
/// counted). When the session ends with datagrams still queued, their new flow is started the
/// same way.
fn start_flow(shared: &Arc<Shared>, rt: &Arc<ListenerRt>, flow: udp::UdpFlow, port: u16) {
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        let n = flow.abandon();
        shared.stats.udp_dropped.fetch_add(n, Ordering::Relaxed);
        return;
    };
    let (peer, dst_ip) = flow.key();
    let table = flow.table();
    let meta = SessionMeta {
        id: new_session_id(),
        transport: Transport::Udp,
        src: peer,
        dst: SocketAddr::new(dst_ip, port),
    };
    let sh = shared.clone();
    let rt = rt.clone();
    shared.tracker.spawn(async move {
        let guard = open_session(&sh, &rt, meta).await;
        let next = run_session(guard, rt.clone(), permit, SessionIo::Udp(flow)).await;
        udp::forget(&table, peer, dst_ip);
        if let Some(next) = next {
            start_flow(&sh, &rt, next, port);
        }
    });
}

/// A new session id: the current second in the high 32 bits, a per-run random start plus a
/// counter in the low 32. Unique within a run (for 2^32 sessions a second), unlikely to meet
/// another run's ids, and time-ordered, so the store's inserts append instead of landing on
/// random index pages.
fn new_session_id() -> SessionId {
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(rand::random);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let low = base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed) as u32);
    SessionId::from_u64(((secs & 0xffff_ffff) << 32) | u64::from(low))
}

enum SessionIo {
    Tcp(TcpStream),
    Udp(udp::UdpFlow),
}

/// Emits `session.closed` exactly once: explicitly at the end, or from `Drop` if the session
/// task is torn down early.
struct CloseGuard {
    shared: Arc<Shared>,
    meta: SessionMeta,
    started: Instant,
    done: bool,
}

impl CloseGuard {
    fn closed_event(&self, end: End, bytes: (u64, u64)) -> honeyport_event::Event {
        self.meta.event(
            &self.shared.sensor,
            EventKind::Closed {
                duration: self.started.elapsed().as_secs_f64(),
                bytes_in: bytes.0,
                bytes_out: bytes.1,
                reason: end.reason,
                limit: end.limit.map(str::to_string),
            },
        )
    }

    async fn close(mut self, end: End, bytes: (u64, u64)) {
        self.done = true;
        let ev = self.closed_event(end, bytes);
        self.shared.events.send(ev).await;
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.shared.stats.open.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            let ev = self.closed_event(End::new(EndReason::Internal), (0, 0));
            self.shared.events.send_detached(ev);
        }
    }
}

/// Runs one session from `session.connect` to `session.closed`. For UDP, returns the flow
/// that takes over datagrams still queued when it ended (see [`udp::UdpFlow::finish`]).
/// Records `session.connect` and returns the guard that records the one `session.closed`.
async fn open_session(shared: &Arc<Shared>, rt: &ListenerRt, meta: SessionMeta) -> CloseGuard {
    shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
    shared.stats.open.fetch_add(1, Ordering::Relaxed);
    // A multi-protocol port's TLS depends on what the client sends: known after dispatch
    // (`session.dispatch`, `tls.handshake`).
    let tls = rt.tls.is_some() && rt.dispatcher.is_none() && meta.transport == Transport::Tcp;
    let connect = meta.event(
        &shared.sensor,
        EventKind::Connect {
            listener: rt.name.clone(),
            persona: rt.persona_name.clone(),
            tls,
        },
    );
    // The guard exists before the event is queued, so even a cancelled send leaves a close.
    let guard = CloseGuard {
        shared: shared.clone(),
        meta,
        started: Instant::now(),
        done: false,
    };
    shared.events.send(connect).await;
    guard
}

async fn run_session(
    guard: CloseGuard,
    rt: Arc<ListenerRt>,
    permit: OwnedSemaphorePermit,
    io: SessionIo,
) -> Option<udp::UdpFlow> {
    let _permit = permit;
    let shared = guard.shared.clone();
    let meta = guard.meta.clone();
    let started = guard.started;

    if !rt.allows(meta.src.ip()) {
        Box::pin(refuse(guard, io, End::new(EndReason::NotAllowed))).await;
        return None;
    }
    let Some(_source) = shared.try_source(meta.src.ip()) else {
        Box::pin(refuse(guard, io, End::limit("max_per_source"))).await;
        return None;
    };

    // A multi-protocol port picks the persona from what the client says first (peeked: the
    // bytes stay for the persona).
    let mut dispatched = None;
    if let (Some(d), SessionIo::Tcp(stream)) = (&rt.dispatcher, &io) {
        dispatched = Some(Box::pin(d.choose(stream, meta.src.ip(), &shared.hard_stop)).await);
    }
    // TLS: always on a TLS listener; on a multi-protocol port with `tls`, only for a client
    // that opened with a ClientHello.
    let acceptor = match (&rt.tls, dispatched) {
        (Some(a), None) | (Some(a), Some((_, dispatch::Why::Detected(Proto::Tls)))) => Some(a),
        _ => None,
    };
    let mut io = match io {
        SessionIo::Udp(f) => Io::Udp(f),
        SessionIo::Tcp(stream) => match acceptor {
            None => Io::Tcp(stream),
            // Boxed: the handshake's state is large and plain-TCP sessions never need it, so
            // it must not live inside every session's task (idle connections stay small).
            Some(acceptor) => {
                match Box::pin(tls_accept(&shared, &meta, acceptor, stream, started)).await {
                    Ok(s) => Io::Tls(s),
                    Err((end, bytes_in)) => {
                        Box::pin(guard.close(end, (bytes_in, 0))).await;
                        return None;
                    }
                }
            }
        },
    };
    // Inside TLS on a multi-protocol port: the decrypted first bytes pick the persona.
    let mut early = Vec::new();
    if let (Some(d), Some(_)) = (&rt.dispatcher, acceptor) {
        let (i, why, got) = Box::pin(d.choose_in_tls(&mut io, &shared.hard_stop)).await;
        dispatched = Some((i, why));
        early = got;
    }
    let mut conn = Conn::new(io, meta, shared.clone(), started);
    conn.unread(early);
    let persona = match (&rt.dispatcher, dispatched) {
        (Some(d), Some((i, why))) => {
            let (name, persona) = &d.personas[i];
            // Boxed like every once-only await here: inline, its state (an event and its
            // send) would sit in every session's task.
            Box::pin(conn.emit(EventKind::Dispatch {
                persona: name.clone(),
                reason: why.reason().to_string(),
                protocol: why.protocol().map(|p| p.name().to_string()),
                tls: conn.is_tls(),
            }))
            .await;
            persona
        }
        _ => &rt.persona,
    };
    let end = match std::panic::AssertUnwindSafe(persona.serve(&mut conn))
        .catch_unwind()
        .await
    {
        Ok(end) => end,
        Err(_) => {
            tracing::error!(session = %conn.meta().id, "persona panicked: this is a bug");
            End::new(EndReason::Internal)
        }
    };
    if end.reason != EndReason::PeerClosed {
        Box::pin(conn.close()).await;
    }
    // What the client spoke, and how it answered the greeting.
    if shared.classify_sessions {
        let (first, server_first) = conn.first_input();
        let classified =
            crate::classify::session(first, conn.bytes().0, server_first, persona.protocol());
        Box::pin(conn.emit(classified)).await;
    }
    if let (Some(d), Some((i, why))) = (&rt.dispatcher, dispatched) {
        let hung_up = end.reason == EndReason::PeerClosed;
        d.after(conn.meta().src.ip(), i, why, conn.bytes().0 > 0, hung_up);
    }
    // Datagrams still queued go to a new session; once the sensor is stopping (or after a
    // persona panic, which could repeat on them) they are recorded here instead.
    let hand_over = !shared.hard_stop.is_cancelled() && end.reason != EndReason::Internal;
    let next = if conn.transport() == Transport::Udp {
        Box::pin(conn.finish_udp(hand_over)).await
    } else {
        None
    };
    let bytes = conn.bytes();
    drop(conn);
    // Boxed, like every await that only happens once at the end: the state of these futures
    // (an event, a close deadline) would otherwise sit in every idle session's task.
    Box::pin(guard.close(end, bytes)).await;
    next
}

/// Reads what a non-TLS peer sends to a TLS port, up to the capture cap: until it is quiet
/// for a second (or the idle timeout, if shorter), closes, or the deadline passes.
async fn drain_plaintext(
    shared: &Arc<Shared>,
    mut stream: TcpStream,
    deadline: Instant,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let cap = TLS_CAPTURE
        .min(shared.limits.max_read)
        .min(shared.limits.max_bytes_in as usize);
    let quiet = shared.limits.idle_timeout.min(Duration::from_secs(1));
    let mut data = Vec::new();
    let mut buf = vec![0u8; cap];
    while data.len() < cap {
        let until = (Instant::now() + quiet).min(deadline);
        let n = tokio::select! {
            _ = shared.hard_stop.cancelled() => break,
            r = tokio::time::timeout_at(until, stream.read(&mut buf[..cap - data.len()])) => match r {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            },
        };
        data.extend_from_slice(&buf[..n]);
    }
    data
}

/// Ends a session that is not served (allow-list, per-source limit). A TCP peer is closed
/// unread; a UDP flow's datagrams are still recorded (never answered), since they arrived.
async fn refuse(guard: CloseGuard, io: SessionIo, end: End) {
    let bytes = match io {
        SessionIo::Tcp(stream) => {
            drop(stream);
            (0, 0)
        }
        SessionIo::Udp(flow) => {
            let mut conn = Conn::new(
                Io::Udp(flow),
                guard.meta.clone(),
                guard.shared.clone(),
                guard.started,
            );
            conn.finish_udp(false).await;
            conn.bytes()
        }
    };
    guard.close(end, bytes).await;
}

/// Largest ClientHello prefix kept when a handshake fails.
const TLS_CAPTURE: usize = crate::classify::tls::MAX_HELLO;

/// The TLS handshake. The first bytes are peeked (not consumed) so that, if the handshake
/// fails, what the peer sent (a plaintext request on a TLS port, say) is recorded.
async fn tls_accept(
    shared: &Arc<Shared>,
    meta: &SessionMeta,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    started: Instant,
) -> Result<Box<tokio_rustls::server::TlsStream<TcpStream>>, (End, u64)> {
    let deadline =
        (Instant::now() + shared.limits.idle_timeout).min(started + shared.limits.max_session);
    let hard_stop = shared.hard_stop.clone();
    let mut peek_buf = vec![0u8; TLS_CAPTURE.min(shared.limits.max_read)];
    let peeked = tokio::select! {
        _ = hard_stop.cancelled() => return Err((End::new(EndReason::Shutdown), 0)),
        r = tokio::time::timeout_at(deadline, stream.peek(&mut peek_buf)) => match r {
            Err(_) => return Err((End::new(EndReason::IdleTimeout), 0)),
            Ok(Err(e)) => return Err((conn::io_end(&e), 0)),
            Ok(Ok(0)) => return Err((End::new(EndReason::PeerClosed), 0)),
            Ok(Ok(n)) => n,
        },
    };
    if peek_buf.first() != Some(&0x16) {
        peek_buf.truncate(peeked);
        // Not a TLS handshake record: plaintext (an HTTP request, a banner grab) or garbage.
        // Take it all, including parts sent in later writes, until the peer is quiet for a
        // moment, closes, or the capture cap is reached, and record it exactly.
        let first = peek_buf[0];
        let data = drain_plaintext(shared, stream, deadline).await;
        let len = data.len() as u64;
        let error = format!("not a TLS handshake (first byte 0x{first:02x})");
        let kind = EventKind::TlsFailed {
            error,
            data: Payload(data),
            len,
        };
        shared.events.send(meta.event(&shared.sensor, kind)).await;
        return Err((End::new(EndReason::TlsFailed), len));
    }
    // The ClientHello as the client sent it (rustls hides extension order): peeked whole, its
    // fingerprints recorded, then the untouched stream goes to rustls.
    let (n, hello) = conn::peek_hello(&stream, &mut peek_buf, peeked, deadline, &hard_stop)
        .await
        .map_err(|e| (e, 0))?;
    peek_buf.truncate(n);
    if let Some(h) = hello {
        let kind = conn::hello_kind(&h);
        shared.events.send(meta.event(&shared.sensor, kind)).await;
    }
    let result = tokio::select! {
        _ = hard_stop.cancelled() => return Err((End::new(EndReason::Shutdown), 0)),
        r = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => r,
    };
    let err = match result {
        Ok(Ok(s)) => {
            let kind = conn::handshake_kind(s.get_ref().1);
            shared.events.send(meta.event(&shared.sensor, kind)).await;
            return Ok(Box::new(s));
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "handshake timed out".to_string(),
    };
    let len = peek_buf.len() as u64;
    shared
        .events
        .send(meta.event(
            &shared.sensor,
            EventKind::TlsFailed {
                error: err,
                data: Payload(peek_buf),
                len,
            },
        ))
        .await;
    Err((End::new(EndReason::TlsFailed), len))
}
