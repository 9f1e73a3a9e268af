//! Test harness: start the real sensor in-process from a TOML string, talk to it over real
//! sockets, stop it gracefully, then read what the store holds.
#![allow(dead_code)]

use honeyport::store::Reader as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use honeyport::app::{RunReport, Running};
use honeyport::store::{EventFilter, Store};
use honeyport_event::{Event, EventKind, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for any single wait in a test (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestSensor {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

/// Validates, builds and starts a sensor from config text. Relative paths in the config
/// resolve against `base` (default: the tests/fixtures dir).
pub async fn start(toml: &str) -> TestSensor {
    start_in(toml, &fixtures()).await
}

pub async fn start_in(toml: &str, base: &Path) -> TestSensor {
    let v = match honeyport::config::validate_str(toml, "test.toml", base) {
        Ok(v) => v,
        Err(e) => panic!("test config invalid:\n{e}"),
    };
    let cfg = match v.build() {
        Ok(c) => c,
        Err(e) => panic!("test config does not build:\n{e}"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let running = honeyport::app::start(cfg, dir.path())
        .await
        .expect("sensor starts");
    TestSensor { running, dir }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl TestSensor {
    /// The TCP address of the listener named `name`.
    pub fn tcp(&self, name: &str) -> SocketAddr {
        self.running
            .addr(name, Transport::Tcp)
            .unwrap_or_else(|| panic!("no tcp listener {name}"))
    }

    pub fn udp(&self, name: &str) -> SocketAddr {
        self.running
            .addr(name, Transport::Udp)
            .unwrap_or_else(|| panic!("no udp listener {name}"))
    }

    /// Graceful stop; returns the report and the store (read after every event is flushed).
    pub async fn stop(self) -> Stopped {
        let report = self.running.stop().await;
        let store = Store::open(self.dir.path()).expect("store opens");
        Stopped {
            report,
            store,
            _dir: self.dir,
        }
    }
}

pub struct Stopped {
    pub report: RunReport,
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl Stopped {
    /// The sensor's data dir (the store, downloads).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// Every event, oldest first.
    pub fn all(&self) -> Vec<Event> {
        let mut v = self.store.events(&EventFilter::default()).expect("events");
        v.reverse();
        v
    }

    /// Events grouped by session, in the order the sessions started.
    pub fn sessions(&self) -> Vec<Vec<Event>> {
        let mut order: Vec<String> = Vec::new();
        let mut map: std::collections::HashMap<String, Vec<Event>> = Default::default();
        for e in self.all() {
            let id = e.session.0.clone();
            if !map.contains_key(&id) {
                order.push(id.clone());
            }
            map.entry(id).or_default().push(e);
        }
        order
            .into_iter()
            .map(|id| map.remove(&id).unwrap_or_default())
            .collect()
    }

    /// Asserts the invariant every test relies on: each session has exactly one connect
    /// (first) and exactly one closed (last), and nothing was lost.
    pub fn assert_paired(&self) {
        assert_eq!(self.report.lost(), 0, "events lost");
        for s in self.sessions() {
            let connects = s
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Connect { .. }))
                .count();
            let closes = s
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Closed { .. }))
                .count();
            assert_eq!(
                (connects, closes),
                (1, 1),
                "session {} not paired: {s:#?}",
                s[0].session
            );
            assert!(
                matches!(s[0].kind, EventKind::Connect { .. }),
                "connect is not first"
            );
            assert!(
                matches!(s.last().map(|e| &e.kind), Some(EventKind::Closed { .. })),
                "closed is not last"
            );
        }
    }
}

/// Bytes the sensor received in a session, concatenated.
pub fn input_of(s: &[Event]) -> Vec<u8> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Input { data, .. } => Some(data.0.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Bytes the sensor sent in a session, concatenated.
pub fn output_of(s: &[Event]) -> Vec<u8> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output { data, .. } => Some(data.0.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The session's end reason and limit.
pub fn end_of(s: &[Event]) -> (honeyport_event::EndReason, Option<String>) {
    match s.last().map(|e| &e.kind) {
        Some(EventKind::Closed { reason, limit, .. }) => (*reason, limit.clone()),
        other => panic!("last event is not session.closed: {other:?}"),
    }
}

/// Names of the rules that matched, in order.
pub fn rules_of(s: &[Event]) -> Vec<String> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::RuleMatch { rule, .. } => Some(rule.clone()),
            _ => None,
        })
        .collect()
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Reads until `needle` has been seen (returns everything read), or panics after WAIT.
pub async fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !contains(&got, needle) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "timed out waiting for {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) => panic!(
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read error {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// Reads until the server closes; returns everything. Panics after WAIT.
pub async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await {
        Err(_) => panic!(
            "server did not close; got {:?}",
            String::from_utf8_lossy(&got)
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Ok(Err(e)) => panic!("read error {e}"),
        Ok(Ok(_)) => got,
    }
}

/// Reads whatever arrives within `d` (for asserting that nothing, or nothing more, comes).
pub async fn read_for(s: &mut TcpStream, d: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return got,
        }
    }
}

pub async fn send(s: &mut TcpStream, b: &[u8]) {
    s.write_all(b).await.expect("write");
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Path of the built `honeyport` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_honeyport")
}

// ---- Helpers for the listener-layer tests (limits, shutdown, tls, udp, net) ----

/// Like [`start_in`], but returns an error instead of panicking when the sensor cannot start
/// (a fixed port that another process took between picking and binding: the caller retries).
pub async fn try_start(toml: &str) -> Result<TestSensor, String> {
    let v = honeyport::config::validate_str(toml, "test.toml", &fixtures())
        .map_err(|e| format!("test config invalid:\n{e}"))?;
    let cfg = v
        .build()
        .map_err(|e| format!("test config does not build:\n{e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let running = honeyport::app::start(cfg, dir.path())
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(TestSensor { running, dir })
}

/// Starts a sensor whose config names fixed ports: `make(base)` renders the config for a run
/// of `n` consecutive ports starting at `base`, picked free on 127.0.0.1 (and on ::1 too when
/// `v6`). Retries with other ports if one was taken in between.
pub async fn start_on_free_ports(
    n: u16,
    v6: bool,
    make: impl Fn(u16) -> String,
) -> (TestSensor, u16) {
    let mut last = String::new();
    for _ in 0..20 {
        let base = free_port_run(n, v6);
        match try_start(&make(base)).await {
            Ok(s) => return (s, base),
            Err(e) => last = e,
        }
    }
    panic!("could not start on free ports: {last}");
}

/// A run of `n` consecutive ports, free for TCP and UDP on 127.0.0.1 (and ::1 when `v6`) right
/// now, below the ephemeral range (so client sockets do not take them meanwhile).
pub fn free_port_run(n: u16, v6: bool) -> u16 {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener as StdTcp, UdpSocket as StdUdp};
    for _ in 0..1000 {
        let base: u16 = 20_000 + rand::random::<u16>() % (12_000 - n);
        let mut held = Vec::new();
        let mut ok = true;
        'ports: for p in base..base + n {
            let mut ips: Vec<std::net::IpAddr> = vec![Ipv4Addr::LOCALHOST.into()];
            if v6 {
                ips.push(Ipv6Addr::LOCALHOST.into());
            }
            for ip in ips {
                let a = SocketAddr::new(ip, p);
                match (StdTcp::bind(a), StdUdp::bind(a)) {
                    (Ok(t), Ok(u)) => held.push((t, u)),
                    _ => {
                        ok = false;
                        break 'ports;
                    }
                }
            }
        }
        drop(held);
        if ok {
            return base;
        }
    }
    panic!("no run of {n} free ports found");
}

impl TestSensor {
    /// Opens the store while the sensor runs (read-only; WAL lets it read beside the writer).
    pub fn peek_store(&self) -> Option<Store> {
        Store::open(self.dir.path()).ok()
    }

    /// Waits until at least `n` sessions have recorded their end (hang guard: WAIT).
    pub async fn wait_closed(&self, n: i64) {
        self.wait_count("sessions", "end_ts IS NOT NULL", n).await
    }

    /// Waits until at least `n` sessions have started (hang guard: WAIT).
    pub async fn wait_sessions(&self, n: i64) {
        self.wait_count("sessions", "1=1", n).await
    }

    /// Waits until `table` has at least `n` rows matching `where_sql` (hang guard: WAIT).
    pub async fn wait_count(&self, table: &str, where_sql: &str, n: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut got = -1;
        while tokio::time::Instant::now() < deadline {
            if let Some(st) = self.peek_store() {
                if let Ok(c) = st.count(table, where_sql) {
                    got = c;
                    if c >= n {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {n} rows in {table} where {where_sql} (have {got})");
    }
}

/// A TCP connection from a chosen source address (e.g. 127.0.0.2).
pub async fn connect_from(src: std::net::IpAddr, dst: SocketAddr) -> TcpStream {
    let sock = if src.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    sock.bind(SocketAddr::new(src, 0))
        .expect("bind client source");
    tokio::time::timeout(WAIT, sock.connect(dst))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// The session.closed event of a session (panics if there is none).
pub fn closed_of(s: &[Event]) -> &Event {
    s.iter()
        .find(|e| matches!(e.kind, EventKind::Closed { .. }))
        .expect("session has a session.closed")
}

/// Sizes of the session's input events, in order.
pub fn input_sizes(s: &[Event]) -> Vec<usize> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Input { data, .. } => Some(data.0.len()),
            _ => None,
        })
        .collect()
}

/// Number of events of the given eventid in a session.
pub fn count_kind(s: &[Event], eventid: &str) -> usize {
    s.iter().filter(|e| e.kind.eventid() == eventid).count()
}

/// Runs `nmap -sV` against loopback ports (never any other address) and returns, per port,
/// nmap's `PORT/tcp ...` line. Panics with nmap's whole output if a port has no line.
pub async fn nmap_service_lines(ports: &[u16]) -> (Vec<String>, String) {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("nmap")
            .args(["-sV", "-Pn", "-n", "-p"])
            .arg(list.join(","))
            .arg("127.0.0.1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nmap hung")
    .expect("nmap runs (is nmap installed?)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = ports
        .iter()
        .map(|p| {
            text.lines()
                .find(|l| l.starts_with(&format!("{p}/tcp")))
                .unwrap_or_else(|| panic!("no line for {p}: {text}"))
                .to_string()
        })
        .collect();
    (lines, text)
}

/// Every login captured, in order: (accepted, username, password, method).
pub fn logins(s: &[Event]) -> Vec<(bool, Vec<u8>, Vec<u8>, String)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::LoginFailed {
                username,
                password,
                method,
            } => Some((
                false,
                username.0.clone(),
                password.0.clone(),
                method.clone(),
            )),
            EventKind::LoginSuccess {
                username,
                password,
                method,
            } => Some((true, username.0.clone(), password.0.clone(), method.clone())),
            _ => None,
        })
        .collect()
}

/// Runs a real client to completion (stdin closed, output captured). The bound only catches
/// a hung client; it is not a performance assertion.
pub async fn run_client(cmd: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(90),
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("client hung")
    .expect("client runs (is it installed?)")
}

/// A loopback relay in front of the sensor that keeps every byte its clients send: the
/// ground truth of what an outside tool really put on the wire, independent of the sensor's
/// own record.
pub struct Tap {
    pub addr: SocketAddr,
    sent: Shared<Vec<Shared<Vec<u8>>>>,
}

type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

impl Tap {
    pub async fn new(target: SocketAddr) -> Tap {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let sent: std::sync::Arc<std::sync::Mutex<Vec<_>>> = Default::default();
        let all = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let rec = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                all.lock().unwrap().push(rec.clone());
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 << 10];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
            }
        });
        Tap { addr, sent }
    }

    /// What each client connection sent so far, in connection order.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }
}

/// Every command line recorded, in order.
pub fn commands(s: &[Event]) -> Vec<Vec<u8>> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandInput { input, .. } => Some(input.0.clone()),
            _ => None,
        })
        .collect()
}

/// OpenSSH options for a test's throwaway host: no host-key checks, no known_hosts, quiet.
pub const NO_HOSTKEY_CHECK: [&str; 6] = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
];

/// OpenSSH `ssh` to a loopback port (no host-key checks).
pub fn ssh(addr: SocketAddr) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ssh");
    c.args(NO_HOSTKEY_CHECK)
        .args(["-o", "BatchMode=no", "-p"])
        .arg(addr.port().to_string());
    c
}

/// `sshpass -p PASSWORD ssh` to a loopback port (no host-key checks).
pub fn sshpass(password: &str, addr: SocketAddr) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sshpass");
    c.args(["-p", password, "ssh"])
        .args(NO_HOSTKEY_CHECK)
        .args(["-p"])
        .arg(addr.port().to_string());
    c
}

/// Every command line recorded, in order, with whether the persona recognised it.
pub fn commands_flagged(s: &[Event]) -> Vec<(Vec<u8>, bool)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandInput { input, recognised } => Some((input.0.clone(), *recognised)),
            _ => None,
        })
        .collect()
}
