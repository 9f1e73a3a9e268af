//! `Conn`: one peer, as a persona sees it. Every read has a byte cap and a deadline; every
//! byte in and out is recorded; shutdown and limits end it with the reason recorded.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use honeyport_event::{
    EndReason, Event, EventKind, Payload, SessionId, Timestamp, Transport, SCHEMA_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::udp::UdpFlow;
use super::Shared;
use crate::classify::tls::ClientHello;

/// Why a session ends; returned by every `Conn` call that can end it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    pub reason: EndReason,
    /// Which limit, for `EndReason::Limit`.
    pub limit: Option<&'static str>,
}

impl End {
    pub fn new(reason: EndReason) -> End {
        End {
            reason,
            limit: None,
        }
    }
    pub fn persona() -> End {
        End::new(EndReason::Persona)
    }
    pub fn limit(which: &'static str) -> End {
        End {
            reason: EndReason::Limit,
            limit: Some(which),
        }
    }
}

/// Who the session is between.
#[derive(Clone, Debug)]
pub struct SessionMeta {
    pub id: SessionId,
    pub transport: Transport,
    pub src: SocketAddr,
    /// The real local address of the connection (or the datagram's destination).
    pub dst: SocketAddr,
}

impl SessionMeta {
    pub fn event(&self, sensor: &str, kind: EventKind) -> Event {
        Event {
            v: SCHEMA_VERSION,
            timestamp: Timestamp::now(),
            sensor: sensor.to_string(),
            session: self.id.clone(),
            transport: self.transport,
            src_ip: self.src.ip(),
            src_port: self.src.port(),
            dst_ip: self.dst.ip(),
            dst_port: self.dst.port(),
            kind,
        }
    }
}

pub(crate) enum Io {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Udp(UdpFlow),
    /// Gone: a STARTTLS handshake took the stream and failed.
    Closed,
}

thread_local! {
    /// Scratch buffer for plain TCP reads: an idle connection holds no read buffer at all;
    /// bytes are copied out into a right-sized Vec once they arrived.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Io {
    pub(crate) async fn read(&mut self, cap: usize) -> io::Result<Vec<u8>> {
        match self {
            Io::Tcp(s) => loop {
                s.readable().await?;
                let r = SCRATCH.with(|b| {
                    let mut b = b.borrow_mut();
                    if b.len() < cap {
                        b.resize(cap, 0);
                    }
                    s.try_read(&mut b[..cap]).map(|n| b[..n].to_vec())
                });
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            },
            Io::Tls(s) => {
                let mut buf = vec![0u8; cap.min(16 << 10)];
                let n = s.read(&mut buf).await?;
                buf.truncate(n);
                Ok(buf)
            }
            Io::Udp(f) => Ok(f.recv(cap).await),
            Io::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Writes all of `b`, counting in `done` what the socket (or, for TLS, rustls) took, so
    /// that a write cut short by a deadline still tells how much went out.
    async fn write_all_counted(&mut self, b: &[u8], done: &mut usize) -> io::Result<()> {
        match self {
            Io::Tcp(s) => write_counted(s, b, done).await,
            Io::Tls(s) => {
                write_counted(s, b, done).await?;
                s.flush().await
            }
            Io::Udp(_) => Err(io::Error::other("udp writes go through send_udp")),
            Io::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn close(&mut self) {
        match self {
            Io::Tcp(s) => {
                let _ = s.shutdown().await;
            }
            Io::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Io::Udp(_) | Io::Closed => {}
        }
    }
}

async fn write_counted<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    b: &[u8],
    done: &mut usize,
) -> io::Result<()> {
    while *done < b.len() {
        let n = w.write(&b[*done..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *done += n;
    }
    Ok(())
}

/// One peer, as a persona sees it.
pub struct Conn {
    io: Io,
    meta: SessionMeta,
    shared: Arc<Shared>,
    deadline: Instant,
    bytes_in: u64,
    bytes_out: u64,
    /// The start of what the peer sent, for classification.
    first_in: Vec<u8>,
    /// The server spoke before the peer did.
    server_first: bool,
    /// Bytes already taken from the connection but not yet given to the persona (read while
    /// a multi-protocol port looked inside TLS for the protocol); `read` returns them first.
    pending: Vec<u8>,
    /// A TLS ClientHello at the start of a plain connection was fingerprinted (or cannot be).
    hello_done: bool,
}

/// Bytes of the peer's input kept for classification.
const FIRST_KEPT: usize = crate::classify::detect::MAX_NEED;

impl Conn {
    pub(crate) fn new(io: Io, meta: SessionMeta, shared: Arc<Shared>, started: Instant) -> Conn {
        let deadline = started + shared.limits.max_session;
        Conn {
            io,
            meta,
            shared,
            deadline,
            bytes_in: 0,
            bytes_out: 0,
            first_in: Vec::new(),
            server_first: false,
            pending: Vec::new(),
            hello_done: false,
        }
    }

    /// Puts bytes read from the connection before the persona started (see `pending`) back in
    /// front of what it reads next. They are recorded when the persona reads them.
    pub(crate) fn unread(&mut self, data: Vec<u8>) {
        debug_assert!(self.pending.is_empty());
        self.pending = data;
    }

    /// Takes up to `cap` of the pending bytes, if there are any.
    fn take_pending(&mut self, cap: usize) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = self.pending.split_off(cap.min(self.pending.len()));
        Some(std::mem::replace(&mut self.pending, rest))
    }

    pub fn transport(&self) -> Transport {
        self.meta.transport
    }

    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    pub fn max_read(&self) -> usize {
        self.shared.limits.max_read
    }

    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in, self.bytes_out)
    }

    /// Whether the connection is TLS (an implicit-TLS listener, or after `start_tls`).
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// Upgrades a plain TCP connection to TLS in place (SMTP STARTTLS and the like), within
    /// the idle timeout and the session deadline. Records `tls.handshake`, or `tls.failed` and
    /// ends the session. Handshake bytes are not counted as session input.
    pub async fn start_tls(&mut self, cfg: Arc<rustls::ServerConfig>) -> Result<(), End> {
        let Io::Tcp(stream) = std::mem::replace(&mut self.io, Io::Closed) else {
            // Not plain TCP (already TLS, or UDP): a persona bug, not the peer's doing.
            return Err(End::new(EndReason::Internal));
        };
        let (deadline, is_session_deadline) = self.idle_deadline();
        let hard_stop = self.shared.hard_stop.clone();
        // The ClientHello as sent, for JA3/JA4 (STARTTLS clients are fingerprinted too).
        let mut buf = vec![0u8; crate::classify::tls::MAX_HELLO.min(self.shared.limits.max_read)];
        match Box::pin(peek_hello(&stream, &mut buf, 0, deadline, &hard_stop)).await {
            Ok((_, Some(h))) => self.emit(hello_kind(&h)).await,
            Ok((_, None)) => {}
            Err(e) if e.reason == EndReason::IdleTimeout && is_session_deadline => {
                return Err(End::limit("max_session"))
            }
            Err(e) => return Err(e),
        }
        drop(buf);
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        // Boxed: the handshake state is large and only STARTTLS sessions need it.
        let accept = Box::pin(acceptor.accept(stream));
        let r = tokio::select! {
            biased;
            _ = hard_stop.cancelled() => return Err(End::new(EndReason::Shutdown)),
            r = tokio::time::timeout_at(deadline, accept) => r,
        };
        let error = match r {
            Ok(Ok(s)) => {
                self.emit(handshake_kind(s.get_ref().1)).await;
                self.io = Io::Tls(Box::new(s));
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) if is_session_deadline => return Err(End::limit("max_session")),
            Err(_) => "handshake timed out".to_string(),
        };
        self.emit(EventKind::TlsFailed {
            error,
            data: Payload(Vec::new()),
            len: 0,
        })
        .await;
        Err(End::new(EndReason::TlsFailed))
    }

    /// Records an event for this session.
    pub async fn emit(&self, kind: EventKind) {
        self.shared
            .events
            .send(self.meta.event(&self.shared.sensor, kind))
            .await;
    }

    /// The next read's cap: the per-read size, or what is left of the per-session byte budget.
    fn cap(&self) -> Result<usize, End> {
        let left = self
            .shared
            .limits
            .max_bytes_in
            .saturating_sub(self.bytes_in);
        if left == 0 {
            return Err(End::limit("max_bytes_in"));
        }
        Ok((self.shared.limits.max_read as u64).min(left) as usize)
    }

    fn check_session_deadline(&self) -> Result<(), End> {
        if Instant::now() >= self.deadline {
            return Err(End::limit("max_session"));
        }
        Ok(())
    }

    fn idle_deadline(&self) -> (Instant, bool) {
        let idle = Instant::now() + self.shared.limits.idle_timeout;
        if idle < self.deadline {
            (idle, false)
        } else {
            (self.deadline, true)
        }
    }

    /// One read from the peer: at most `max_read` bytes (and never past `max_bytes_in`),
    /// within the idle timeout and the session's deadline. Recorded as `session.input`.
    pub async fn read(&mut self) -> Result<Vec<u8>, End> {
        // Checked up front: a read that finds data already waiting completes before its
        // timeout is ever polled, so a peer that keeps the buffer full would outlive it.
        self.check_session_deadline()?;
        let cap = self.cap()?;
        if let Some(data) = self.take_pending(cap) {
            self.record_input(&data).await;
            return Ok(data);
        }
        let (deadline, is_session_deadline) = self.idle_deadline();
        let hard_stop = self.shared.hard_stop.clone();
        let r = tokio::select! {
            biased;
            _ = hard_stop.cancelled() => return Err(End::new(EndReason::Shutdown)),
            r = tokio::time::timeout_at(deadline, self.io.read(cap)) => r,
        };
        let data = match r {
            Err(_) if is_session_deadline => return Err(End::limit("max_session")),
            Err(_) => return Err(End::new(EndReason::IdleTimeout)),
            Ok(Err(e)) => return Err(io_end(&e)),
            Ok(Ok(d)) if d.is_empty() => return Err(End::new(EndReason::PeerClosed)),
            Ok(Ok(d)) => d,
        };
        self.record_input(&data).await;
        Ok(data)
    }

    /// For read-all: after `pause`, returns what else is ready right now without waiting for
    /// more, or `None` when nothing is (or the peer closed; the next `read` reports that).
    pub async fn read_ready(&mut self, pause: Duration) -> Result<Option<Vec<u8>>, End> {
        if !pause.is_zero() {
            self.sleep(pause).await?;
        }
        if self.check_session_deadline().is_err() {
            return Ok(None); // the next read reports it
        }
        let cap = match self.cap() {
            Ok(c) => c,
            Err(_) => return Ok(None),
        };
        if let Some(data) = self.take_pending(cap) {
            self.record_input(&data).await;
            return Ok(Some(data));
        }
        // A zero timeout still polls the read once: it returns data only if it is ready.
        match tokio::time::timeout(Duration::ZERO, self.io.read(cap)).await {
            Ok(Ok(d)) if !d.is_empty() => {
                self.record_input(&d).await;
                Ok(Some(d))
            }
            Ok(Err(e)) => Err(io_end(&e)),
            _ => Ok(None),
        }
    }

    /// The start of what the peer sent, and whether the server spoke first.
    pub fn first_input(&self) -> (&[u8], bool) {
        (&self.first_in, self.server_first)
    }

    async fn record_input(&mut self, data: &[u8]) {
        // A TLS ClientHello on a plain connection (TLS sent to a persona that does not speak
        // it): kept whole, up to two records, for its fingerprints.
        let plain_tls = !self.hello_done
            && matches!(self.io, Io::Tcp(_))
            && self.first_in.first().or(data.first()) == Some(&0x16);
        let kept = if plain_tls {
            crate::classify::tls::MAX_HELLO
        } else {
            FIRST_KEPT
        };
        if self.first_in.len() < kept {
            let take = (kept - self.first_in.len()).min(data.len());
            self.first_in.extend_from_slice(&data[..take]);
        }
        self.bytes_in += data.len() as u64;
        self.emit(EventKind::Input {
            data: Payload(data.to_vec()),
            len: data.len() as u64,
        })
        .await;
        if plain_tls {
            match crate::classify::tls::parse(&self.first_in) {
                crate::classify::tls::Parse::NeedMore if self.first_in.len() < kept => {}
                crate::classify::tls::Parse::Hello(h) => {
                    self.hello_done = true;
                    // Boxed: rare, and inline its state (an event and its send) would sit in
                    // every read's future, so in every idle session's task.
                    Box::pin(self.emit(hello_kind(&h))).await;
                }
                _ => self.hello_done = true,
            }
            if self.hello_done {
                // Back to the classification prefix only.
                self.first_in.truncate(FIRST_KEPT);
                self.first_in.shrink_to_fit();
            }
        }
    }

    /// Sends bytes to the peer, within the idle timeout; recorded as `session.output`. For UDP
    /// the reply may be cut to the triggering datagram's size or suppressed by the per-source
    /// rate limit; what was actually sent is what is recorded. A TCP/TLS write cut short (idle
    /// peer, session deadline, shutdown) records the part that went out before it ends.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        if self.bytes_in == 0 {
            self.server_first = true;
        }
        self.check_session_deadline()?;
        if let Io::Udp(flow) = &mut self.io {
            let outcome = flow.send(data, &self.shared).await;
            match outcome {
                super::udp::SendOutcome::Sent { len, truncated } => {
                    self.bytes_out += len as u64;
                    let sent = data[..len].to_vec();
                    self.emit(EventKind::Output {
                        data: Payload(sent),
                        len: len as u64,
                        truncated,
                    })
                    .await;
                }
                super::udp::SendOutcome::Suppressed(reason) => {
                    self.emit(EventKind::OutputSuppressed {
                        len: data.len() as u64,
                        reason: reason.into(),
                    })
                    .await;
                }
                super::udp::SendOutcome::Failed(e) => return Err(io_end(&e)),
            }
            return Ok(());
        }
        let (deadline, is_session_deadline) = self.idle_deadline();
        let hard_stop = self.shared.hard_stop.clone();
        let mut sent = 0usize;
        let outcome = {
            let write = self.io.write_all_counted(data, &mut sent);
            tokio::select! {
                biased;
                _ = hard_stop.cancelled() => Err(End::new(EndReason::Shutdown)),
                r = tokio::time::timeout_at(deadline, write) => match r {
                    Err(_) if is_session_deadline => Err(End::limit("max_session")),
                    // The peer stopped reading: a write that cannot drain is an idle peer.
                    Err(_) => Err(End::new(EndReason::IdleTimeout)),
                    Ok(Err(e)) => Err(io_end(&e)),
                    Ok(Ok(())) => Ok(()),
                },
            }
        };
        // What went out is recorded even when the write was cut short.
        if sent > 0 {
            self.bytes_out += sent as u64;
            self.emit(EventKind::Output {
                data: Payload(data[..sent].to_vec()),
                len: sent as u64,
                truncated: false,
            })
            .await;
        }
        outcome
    }

    /// Waits (a configured delay), bounded by the session deadline and shutdown.
    /// Hands the plain TCP stream to a persona that runs its own protocol stack over it (SSH).
    /// `None` for TLS and UDP sessions. From then on the persona reports what passed with
    /// [`Conn::record_input_bytes`] and [`Conn::count_io`], and bounds its work with
    /// [`Conn::until_end`].
    pub fn take_tcp(&mut self) -> Option<TcpStream> {
        match std::mem::replace(&mut self.io, Io::Closed) {
            Io::Tcp(s) => {
                // Such a protocol (SSH) has the server speak at once, without waiting.
                self.server_first = self.bytes_in == 0;
                Some(s)
            }
            other => {
                self.io = other;
                None
            }
        }
    }

    /// Records bytes the peer sent that the persona read itself (counted and stored).
    pub async fn record_input_bytes(&mut self, data: &[u8]) {
        self.record_input(data).await;
    }

    /// Counts bytes that passed without being recorded (e.g. encrypted SSH traffic).
    pub fn count_io(&mut self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    /// What is left of `max_bytes_in` for this session.
    pub fn bytes_in_left(&self) -> u64 {
        self.shared
            .limits
            .max_bytes_in
            .saturating_sub(self.bytes_in)
    }

    /// Runs `f` until it finishes, the session's deadline passes (`max_session`) or the
    /// sensor shuts down.
    pub async fn until_end<F: std::future::Future>(&self, f: F) -> Result<F::Output, End> {
        let hard_stop = self.shared.hard_stop.clone();
        tokio::select! {
            r = f => Ok(r),
            _ = hard_stop.cancelled() => Err(End::new(EndReason::Shutdown)),
            _ = tokio::time::sleep_until(self.deadline) => Err(End::limit("max_session")),
        }
    }

    /// With `[downloads]` enabled: fetches a URL the shell was asked to download, as the
    /// tool would (the session waits, like the real tool), and records the outcome. Ends early
    /// at shutdown or the session's deadline. Does nothing when downloads are off.
    pub async fn fetch_download(&mut self, url: &Payload, command: &str) {
        let Some(f) = self.shared.fetcher.clone() else {
            return;
        };
        let hard_stop = self.shared.hard_stop.clone();
        let r = tokio::select! {
            r = f.fetch(url.as_bytes(), command) => r,
            _ = hard_stop.cancelled() => crate::fetch::Fetched::Failed("shutdown".into()),
            _ = tokio::time::sleep_until(self.deadline) => {
                crate::fetch::Fetched::Failed("session ended (max_session)".into())
            }
        };
        self.emit(r.into_event(url.clone())).await;
    }

    pub async fn sleep(&mut self, d: Duration) -> Result<(), End> {
        let until = Instant::now() + d;
        let hard_stop = self.shared.hard_stop.clone();
        if until > self.deadline {
            tokio::select! {
                _ = hard_stop.cancelled() => Err(End::new(EndReason::Shutdown)),
                _ = tokio::time::sleep_until(self.deadline) => Err(End::limit("max_session")),
            }
        } else {
            tokio::select! {
                _ = hard_stop.cancelled() => Err(End::new(EndReason::Shutdown)),
                _ = tokio::time::sleep_until(until) => Ok(()),
            }
        }
    }

    /// For a UDP session that ends: closes its flow. Datagrams still queued are handed to the
    /// returned flow (`hand_over`), or recorded as this session's input.
    pub(crate) async fn finish_udp(&mut self, hand_over: bool) -> Option<UdpFlow> {
        let Io::Udp(flow) = &mut self.io else {
            return None;
        };
        let (left, next) = flow.finish(hand_over);
        for d in left {
            self.record_input(&d).await;
        }
        next
    }

    /// Closes the connection (TLS close_notify, TCP FIN), bounded by a short deadline.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.io.close()).await;
    }
}

/// The `tls.client_hello` event: the fingerprints of a ClientHello as the client sent it.
pub(crate) fn hello_kind(h: &ClientHello) -> EventKind {
    EventKind::TlsClientHello {
        ja3: h.ja3(),
        ja3_string: h.ja3_string(),
        ja4: h.ja4(),
        ja4_r: h.ja4_raw(),
        sni: h.sni.clone(),
        alpn: h.alpn.iter().map(|a| Payload(a.clone())).collect(),
    }
}

/// How long the rest of a ClientHello may take once its first bytes are there.
const HELLO_REST: Duration = Duration::from_secs(2);

/// Peeks (never reads: rustls gets the untouched stream) until a whole ClientHello is in
/// `buf`, it cannot be one, `buf` is full, or the deadline passes. `n` bytes were peeked
/// already; with none, waits for the first. Returns the bytes peeked and the hello if it
/// parsed; an error only when nothing at all arrived.
pub(crate) async fn peek_hello(
    stream: &TcpStream,
    buf: &mut [u8],
    mut n: usize,
    deadline: Instant,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(usize, Option<Box<ClientHello>>), End> {
    use crate::classify::tls::{parse, Parse};
    let mut deadline = deadline;
    if n > 0 {
        deadline = deadline.min(Instant::now() + HELLO_REST);
    }
    loop {
        if n > 0 {
            match parse(&buf[..n]) {
                Parse::NeedMore if n < buf.len() => {}
                Parse::Hello(h) => return Ok((n, Some(h))),
                _ => return Ok((n, None)),
            }
            // More of the hello is on its way: look again shortly (a peek cannot wait for
            // bytes beyond those already there).
            tokio::select! {
                _ = stop.cancelled() => return Err(End::new(EndReason::Shutdown)),
                _ = tokio::time::sleep_until(deadline) => return Ok((n, None)),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        let r = tokio::select! {
            _ = stop.cancelled() => return Err(End::new(EndReason::Shutdown)),
            r = tokio::time::timeout_at(deadline, stream.peek(buf)) => r,
        };
        match r {
            Ok(Ok(m)) if m > 0 => {
                if n == 0 {
                    deadline = deadline.min(Instant::now() + HELLO_REST);
                }
                n = n.max(m);
            }
            _ if n > 0 => return Ok((n, None)),
            Err(_) => return Err(End::new(EndReason::IdleTimeout)),
            Ok(Err(e)) => return Err(io_end(&e)),
            Ok(Ok(_)) => return Err(End::new(EndReason::PeerClosed)),
        }
    }
}

/// The `tls.handshake` event for a finished handshake.
pub(crate) fn handshake_kind(c: &rustls::ServerConnection) -> EventKind {
    EventKind::TlsHandshake {
        version: c
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: c
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        sni: c.server_name().map(str::to_string),
        alpn: c.alpn_protocol().map(|a| Payload(a.to_vec())),
    }
}

/// Maps an I/O error to how the session ended: resets and broken pipes are the peer leaving.
pub fn io_end(e: &io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => End::new(EndReason::PeerClosed),
        _ => End::new(EndReason::IoError),
    }
}
