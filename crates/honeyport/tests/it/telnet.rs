//! The `telnet` persona over real sockets: a Mirai-style client written here, the real Debian
//! `telnet` client and `busybox telnet`. Every test checks what the client saw and what the
//! store holds: each credential exactly as sent, the client's option pattern, the commands.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use honeyport_event::{EndReason, Event, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const IAC: u8 = 255;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const NAWS: u8 = 31;

/// What BusyBox telnetd sends first: DO ECHO, DO NAWS, WILL ECHO, WILL SGA.
const BUSYBOX_IACS: &[u8] = &[IAC, DO, 1, IAC, DO, NAWS, IAC, WILL, 1, IAC, WILL, 3];

/// What Linux telnetd sends first: DO TTYPE, DO TSPEED, DO XDISPLOC, DO NEW-ENVIRON.
const LINUX_IACS: &[u8] = &[IAC, DO, 24, IAC, DO, 32, IAC, DO, 35, IAC, DO, 39];

/// The option pattern a Mirai-style client leaves after [`BUSYBOX_IACS`].
const MIRAI_PATTERN: &str = "WONT ECHO,WILL NAWS,SB NAWS 80x24,DO ECHO,DO SGA";

/// One TCP listener `t` on 127.0.0.1:0 serving telnet persona `p` with the given body.
fn telnet_one(body: &str) -> String {
    format!(
        "[personas.p]\ntype = \"telnet\"\n{body}\n\n\
         [[listeners]]\nname = \"t\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n"
    )
}

/// Only `root:xc3511` gets in; nothing opens after N tries (deterministic for the tests).
const STRICT: &str = "[personas.p.credentials]\naccept = [\"root:xc3511\"]\naccept_any_after = 0\n";

/// A Mirai-family bot's side of the connection: answers every `IAC DO x` with `IAC WONT x`
/// except NAWS (`IAC WILL NAWS` + `IAC SB NAWS 0 80 0 24 IAC SE`) and every `IAC WILL x`
/// with `IAC DO x`; keeps the rest as text.
pub struct Mirai {
    s: TcpStream,
    text: Vec<u8>,
}

impl Mirai {
    pub async fn connect(addr: SocketAddr) -> Mirai {
        Mirai::on(connect(addr).await)
    }

    /// A bot on a connection already open.
    pub fn on(s: TcpStream) -> Mirai {
        Mirai {
            s,
            text: Vec::new(),
        }
    }

    /// Reads (answering negotiation) until `needle` is in the text; returns the text so far
    /// and forgets it. Panics after WAIT or on close.
    pub async fn until(&mut self, needle: &[u8]) -> Vec<u8> {
        self.until_any(&[needle]).await.1
    }

    /// Like [`Mirai::until`] for the first of several needles: (which, text).
    pub async fn until_any(&mut self, needles: &[&[u8]]) -> (usize, Vec<u8>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            if let Some(i) = needles.iter().position(|n| contains(&self.text, n)) {
                return (i, std::mem::take(&mut self.text));
            }
            let n = match tokio::time::timeout_at(deadline, self.s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                other => panic!(
                    "waiting for {:?}: {other:?}; text so far {:?}",
                    needles
                        .iter()
                        .map(|n| String::from_utf8_lossy(n))
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&self.text)
                ),
            };
            pending.extend_from_slice(&buf[..n]);
            let mut reply = Vec::new();
            let mut i = 0;
            while i < pending.len() {
                if pending[i] != IAC {
                    self.text.push(pending[i]);
                    i += 1;
                    continue;
                }
                if i + 2 >= pending.len() {
                    break; // the rest of the command comes with the next read
                }
                match (pending[i + 1], pending[i + 2]) {
                    (DO, NAWS) => {
                        reply.extend_from_slice(&[IAC, WILL, NAWS]);
                        reply.extend_from_slice(&[IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]);
                    }
                    (DO, o) => reply.extend_from_slice(&[IAC, WONT, o]),
                    (WILL, o) => reply.extend_from_slice(&[IAC, DO, o]),
                    _ => {}
                }
                i += 3;
            }
            pending.drain(..i);
            if !reply.is_empty() {
                self.s.write_all(&reply).await.unwrap();
            }
        }
    }

    pub async fn line(&mut self, l: &str) {
        self.s
            .write_all(format!("{l}\r\n").as_bytes())
            .await
            .unwrap();
    }
}

fn patterns(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TelnetOptions { pattern } => Some(pattern.clone()),
            _ => None,
        })
        .collect()
}

fn t(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[tokio::test]
async fn server_speaks_first_with_busybox_negotiation_never_a_bare_do_naws() {
    let sensor = start(&telnet_one("")).await;
    let mut c = connect(sensor.tcp("t")).await;
    let got = read_until(&mut c, b"login: ").await;
    assert!(got.starts_with(BUSYBOX_IACS), "{got:?}");
    assert_eq!(&got[BUSYBOX_IACS.len()..], b"\r\r\nrouter login: ");
    drop(c);
    let st = sensor.stop().await;
    st.assert_paired();
}

#[tokio::test]
async fn mirai_style_client_one_credential_per_connection_then_busybox_commands() {
    let sensor = start(&telnet_one(STRICT)).await;
    let addr = sensor.tcp("t");
    // A bot's dictionary: one pair per connection until one works.
    let tries = [("admin", "admin"), ("root", "vizxv"), ("root", "xc3511")];
    for (user, pass) in tries {
        let mut m = Mirai::connect(addr).await;
        m.until(b"login: ").await;
        m.line(user).await;
        m.until(b"Password: ").await;
        m.line(pass).await;
        if pass != "xc3511" {
            m.until(b"Login incorrect").await;
            continue;
        }
        m.until(b"# ").await;
        for cmd in ["enable", "system", "shell", "sh"] {
            m.line(cmd).await;
            m.until(b"# ").await;
        }
        m.line("/bin/busybox ECCHI").await;
        // Mirai's check that it reached a real BusyBox shell.
        let out = m.until(b"# ").await;
        assert!(
            contains(&out, b"ECCHI: applet not found"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        m.line("exit").await;
        read_to_close(&mut m.s).await;
    }
    let st = sensor.stop().await;
    st.assert_paired();
    let sessions = st.sessions();
    assert_eq!(sessions.len(), 3);
    let all: Vec<Event> = sessions.iter().flatten().cloned().collect();
    assert_eq!(
        logins(&all),
        [
            (false, t("admin"), t("admin"), "telnet".into()),
            (false, t("root"), t("vizxv"), "telnet".into()),
            (true, t("root"), t("xc3511"), "telnet".into()),
        ]
    );
    for s in &sessions {
        assert_eq!(patterns(s), [MIRAI_PATTERN]);
    }
    assert_eq!(
        commands(&sessions[2]),
        [
            t("enable"),
            t("system"),
            t("shell"),
            t("sh"),
            t("/bin/busybox ECCHI"),
            t("exit")
        ]
    );
    assert_eq!(end_of(&sessions[2]).0, EndReason::Persona);
}

#[tokio::test]
async fn every_credential_tried_is_stored_exactly_and_attempts_are_capped() {
    let sensor = start(&telnet_one(&format!("max_attempts = 3\n{STRICT}"))).await;
    let mut c = connect(sensor.tcp("t")).await;
    read_until(&mut c, b"login: ").await;
    // Binary bytes, a space, a doubled IAC (one 0xFF), CR NUL and bare LF line ends.
    send(&mut c, b"r\xc3\xa9ot \r\0").await;
    read_until(&mut c, b"Password: ").await;
    send(&mut c, b"p\xff\xffw\x01\n").await;
    read_until(&mut c, b"login: ").await;
    send(&mut c, b"admin\r\n\r\n").await;
    read_until(&mut c, b"login: ").await;
    send(&mut c, b"x\r\ny\r\n").await;
    let rest = read_to_close(&mut c).await;
    assert!(contains(&rest, b"Login incorrect"));
    let st = sensor.stop().await;
    st.assert_paired();
    let s = &st.sessions()[0];
    assert_eq!(
        logins(s),
        [
            (
                false,
                t("r\u{e9}ot "),
                b"p\xffw\x01".to_vec(),
                "telnet".into()
            ),
            (false, t("admin"), t(""), "telnet".into()),
            (false, t("x"), t("y"), "telnet".into()),
        ]
    );
    assert_eq!(patterns(s), [""], "no negotiation is a pattern too");
    assert_eq!(end_of(s).0, EndReason::Persona);
}

#[tokio::test]
async fn accept_after_n_tries_is_remembered_per_source() {
    let sensor = start(&telnet_one(
        "[personas.p.credentials]\naccept = []\naccept_any_after = 2\n",
    ))
    .await;
    let addr = sensor.tcp("t");
    let mut outcomes = Vec::new();
    for pass in ["a", "b", "c", "a", "c"] {
        let mut m = Mirai::connect(addr).await;
        m.until(b"login: ").await;
        m.line("root").await;
        m.until(b"Password: ").await;
        m.line(pass).await;
        let (which, _) = m.until_any(&[b"Login incorrect", b"# "]).await;
        outcomes.push(which == 1);
    }
    // Two failures, then "c" gets in; from then on only "c" does.
    assert_eq!(outcomes, [false, false, true, false, true]);
    let st = sensor.stop().await;
    st.assert_paired();
}

#[tokio::test]
async fn iac_flood_and_endless_subnegotiation_end_in_a_recorded_limit() {
    let sensor = start(&telnet_one("")).await;
    let addr = sensor.tcp("t");
    let mut c = connect(addr).await;
    read_until(&mut c, b"login: ").await;
    let flood: Vec<u8> = std::iter::repeat_n([IAC, 241], 5000).flatten().collect();
    let _ = c.write_all(&flood).await;
    read_to_close(&mut c).await;
    let mut c = connect(addr).await;
    read_until(&mut c, b"login: ").await;
    let mut sb = vec![IAC, SB, 24, 0];
    sb.extend(std::iter::repeat_n(b'A', 4096));
    let _ = c.write_all(&sb).await;
    read_to_close(&mut c).await;
    let mut c = connect(addr).await;
    read_until(&mut c, b"login: ").await;
    let _ = c.write_all(&vec![b'A'; 200_000]).await;
    read_to_close(&mut c).await;
    let st = sensor.stop().await;
    st.assert_paired();
    let limits: Vec<_> = st.sessions().iter().map(|s| end_of(s)).collect();
    assert_eq!(
        limits,
        [
            (EndReason::Limit, Some("telnet_commands".to_string())),
            (EndReason::Limit, Some("telnet_subnegotiation".to_string())),
            (EndReason::Limit, Some("telnet_line".to_string())),
        ]
    );
}

#[tokio::test]
async fn styles_change_the_prompts() {
    let sensor = start(
        "[personas.deb]\ntype = \"telnet\"\nstyle = \"debian\"\nshell = \"debian_server\"\n\
         [personas.rtr]\ntype = \"telnet\"\nstyle = \"router\"\n\
         [[listeners]]\nname = \"deb\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"deb\"\n\
         [[listeners]]\nname = \"rtr\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"rtr\"\n",
    )
    .await;
    // Linux telnetd asks four questions and says nothing more until the client answers.
    let mut c = connect(sensor.tcp("deb")).await;
    let got = read_until(&mut c, LINUX_IACS).await;
    assert_eq!(got, LINUX_IACS);
    assert_eq!(read_for(&mut c, Duration::from_millis(300)).await, b"");
    send(
        &mut c,
        &[IAC, WONT, 24, IAC, WONT, 32, IAC, WONT, 35, IAC, WONT, 39],
    )
    .await;
    let got = read_until(&mut c, b"login: ").await;
    assert!(
        got.ends_with(b"\r\nDebian GNU/Linux 12\r\nsrv01 login: "),
        "{got:?}"
    );
    let mut c = connect(sensor.tcp("rtr")).await;
    let got = read_until(&mut c, b"Username: ").await;
    assert!(got.starts_with(BUSYBOX_IACS));
    send(&mut c, b"cisco\r\n").await;
    read_until(&mut c, b"Password: ").await;
    drop(c);
    sensor.stop().await.assert_paired();
}

#[test]
fn config_errors_are_reported_with_paths() {
    let src = "[personas.p]\ntype = \"telnet\"\nstyle = \"vax\"\nshell = \"nope\"\n\
               max_attempts = 0\n\
               [personas.p.credentials]\naccept = [\"nocolon\"]\nremember_sources = 0\n\
               accept_regex = [{ user = \"(\" }]\n\
               [[listeners]]\nports = 0\nbind = [\"127.0.0.1\"]\ntransport = \"udp\"\n\
               persona = \"p\"\n";
    let e = match honeyport::config::validate_str(src, "t.toml", &fixtures()) {
        Ok(_) => panic!("config with errors validated"),
        Err(e) => e,
    };
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "personas.p.style",
        "personas.p.shell",
        "personas.p.max_attempts",
        "personas.p.credentials.accept[0]",
        "personas.p.credentials.remember_sources",
        "personas.p.credentials.accept_regex[0].user",
    ] {
        assert!(paths.contains(&want), "{want} missing in {paths:?}");
    }
    assert!(
        e.errors.iter().any(|e| e.message.contains("needs TCP")),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real clients

/// Runs a real telnet client (`prog args... 127.0.0.1 PORT`) with its stdin and stdout piped,
/// answering each `(wait_for, send)` in turn: waits until stdout holds `wait_for`, then
/// writes `send`. Returns everything it printed. Panics after WAIT per step.
async fn drive(prog: &str, args: &[&str], addr: SocketAddr, script: &[(&str, &str)]) -> String {
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{prog} runs (is it installed?): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut seen = 0;
    for (wait_for, reply) in script {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !contains(&out[seen..], wait_for.as_bytes()) {
            match tokio::time::timeout_at(deadline, stdout.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                other => panic!(
                    "{prog}: waiting for {wait_for:?}: {other:?}; printed {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        seen = out.len();
        stdin.write_all(reply.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }
    // The session ends (exit); the client prints "Connection closed" and quits.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stdout.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(_) => panic!(
                "{prog} did not finish; printed {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The script both real clients follow: one wrong password, then the right one, a command,
/// exit.
const SCRIPT: &[(&str, &str)] = &[
    ("login: ", "root\n"),
    ("Password: ", "wrong\n"),
    ("login: ", "root\n"),
    ("Password: ", "xc3511\n"),
    ("# ", "uname -a\n"),
    ("# ", "exit\n"),
];

async fn real_client_logs_in(prog: &str, args: &[&str], body: &str, host: &str) -> Vec<Event> {
    let sensor = start(&telnet_one(&format!("{body}\n{STRICT}"))).await;
    let out = drive(prog, args, sensor.tcp("t"), SCRIPT).await;
    assert!(out.contains(&format!("{host} login: ")), "{out}");
    assert!(out.contains("Login incorrect"), "{out}");
    assert!(!out.contains("xc3511"), "the password is not echoed: {out}");
    let st = sensor.stop().await;
    st.assert_paired();
    let s = st.sessions().remove(0);
    // Line mode or character mode, the bytes arrive as typed, with CR LF or CR NUL.
    assert_eq!(
        logins(&s),
        [
            (false, t("root"), t("wrong"), "telnet".into()),
            (true, t("root"), t("xc3511"), "telnet".into()),
        ]
    );
    assert_eq!(commands(&s), [t("uname -a"), t("exit")]);
    assert_eq!(patterns(&s).len(), 1);
    s
}

#[tokio::test]
async fn debian_telnet_client_logs_in_and_runs_a_command() {
    let s = real_client_logs_in("telnet", &[], "", "router").await;
    let p = &patterns(&s)[0];
    // Debian's telnet agrees to the server's echo and to window size reporting; without a
    // terminal it has no size to send.
    assert_eq!(p, "WONT ECHO,WILL NAWS,DO ECHO,DO SGA");
}

#[tokio::test]
async fn busybox_telnet_client_logs_in_and_runs_a_command() {
    let s = real_client_logs_in("busybox", &["telnet"], "", "router").await;
    let p = &patterns(&s)[0];
    // Without a terminal busybox telnet reports 80x24: the same pattern as a Mirai bot.
    assert_eq!(p, MIRAI_PATTERN);
}

#[tokio::test]
async fn debian_telnet_client_logs_in_to_the_debian_style_with_linux_negotiation() {
    let s = real_client_logs_in(
        "telnet",
        &[],
        "style = \"debian\"\nshell = \"debian_server\"",
        "srv01",
    )
    .await;
    let p = &patterns(&s)[0];
    // Asked for its terminal type, Debian's telnet tells it.
    assert!(p.starts_with("WILL TTYPE,"), "{p}");
    assert!(p.contains("SB TTYPE IS "), "{p}");
}

/// Runs `nmap -sV` (loopback only) against a telnet persona; returns the port's line and the
/// whole output.
async fn nmap_sv(body: &str) -> (String, String) {
    let sensor = start(&telnet_one(body)).await;
    let port = sensor.tcp("t").port().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("nmap")
            .args(["-sV", "-Pn", "-n", "-p", &port, "127.0.0.1"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nmap finished")
    .expect("nmap runs (is nmap installed?)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{port}/tcp")))
        .unwrap_or_else(|| panic!("no port line in nmap output:\n{text}"))
        .to_string();
    assert!(!text.to_lowercase().contains("cowrie"), "{text}");
    sensor.stop().await.assert_paired();
    (line, text.into_owned())
}

/// nmap's service detection names the default persona BusyBox telnetd, with its host name,
/// and never a cowrie honeypot.
#[tokio::test]
async fn nmap_identifies_busybox_telnetd_never_cowrie() {
    let (line, text) = nmap_sv("").await;
    assert!(line.contains("BusyBox telnetd"), "{line}");
    assert!(text.contains("Host: router"), "{text}");
}

/// The debian style negotiates like Linux telnetd, and nmap says so.
#[tokio::test]
async fn nmap_identifies_the_debian_style_as_linux_telnetd() {
    let (line, _) = nmap_sv("style = \"debian\"\nshell = \"debian_server\"").await;
    assert!(line.contains("Linux telnetd"), "{line}");
}

/// The (username, password) pairs in what a client sent, read the way a telnetd's login does:
/// telnet commands dropped, lines ended by CR NUL, CR LF, CR or LF, an empty username line
/// re-prompts. Written independently of the persona's parser.
fn pairs_on_wire(wire: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut i = 0;
    while i < wire.len() {
        match (wire[i], wire.get(i + 1).copied()) {
            (IAC, Some(IAC)) => {
                data.push(IAC);
                i += 2;
            }
            (IAC, Some(SB)) => {
                i += 2;
                while i + 1 < wire.len() && !(wire[i] == IAC && wire[i + 1] == SE) {
                    i += 1;
                }
                i += 2;
            }
            (IAC, Some(251..=254)) => i += 3,
            (IAC, _) => i += 2,
            (b, _) => {
                data.push(b);
                i += 1;
            }
        }
    }
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut j = 0;
    while j < data.len() {
        match data[j] {
            b'\r' => {
                lines.push(std::mem::take(&mut line));
                if matches!(data.get(j + 1), Some(0 | b'\n')) {
                    j += 1;
                }
            }
            b'\n' => lines.push(std::mem::take(&mut line)),
            b => line.push(b),
        }
        j += 1;
    }
    let mut pairs = Vec::new();
    let mut user: Option<Vec<u8>> = None;
    for l in lines {
        match user.take() {
            None if l.is_empty() => {}
            None => user = Some(l),
            Some(u) => pairs.push((u, l)),
        }
    }
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_every_credential_it_tried_is_stored_and_a_real_login_is_found() {
    let sensor = start(&telnet_one(STRICT)).await;
    // hydra talks to the sensor through a tap that keeps what hydra really sent: hydra 9.4's
    // telnet module can send an empty username after a failure (a race between its parent and
    // child processes), and a telnetd that re-prompts then makes it skip that password. Such a
    // password never reached the wire, so it is not "tried"; everything that did must be stored.
    let tap = Tap::new(sensor.tcp("t")).await;
    let dir = tempfile::tempdir().unwrap();
    let words = ["123456", "pass word", "toor", "r00t!", "admin"];
    std::fs::write(dir.path().join("pw.txt"), words.join("\n") + "\n").unwrap();
    let url = format!("telnet://{}:{}", tap.addr.ip(), tap.addr.port());
    let out = run_client(
        tokio::process::Command::new("hydra")
            .current_dir(dir.path())
            .args(["-I", "-t", "1", "-l", "root", "-P", "pw.txt"])
            .arg(&url),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("0 valid password"),
        "hydra must not call a refused login a success: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The known credential: hydra sees the shell prompt and reports it.
    let out = run_client(
        tokio::process::Command::new("hydra")
            .current_dir(dir.path())
            .args(["-I", "-t", "1", "-l", "root", "-p", "xc3511"])
            .arg(&url),
    )
    .await;
    let found = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        found.contains("1 valid password") && found.contains("password: xc3511"),
        "hydra: {found}"
    );

    let done = sensor.stop().await;
    done.assert_paired();
    let stored: Vec<_> = done.sessions().iter().flat_map(|s| logins(s)).collect();
    let wire: Vec<_> = tap.sent().iter().flat_map(|w| pairs_on_wire(w)).collect();
    let tried: Vec<_> = wire.iter().filter(|p| p.1 != b"xc3511").collect();
    assert!(
        tried.len() >= 2,
        "hydra tried too little to judge: {wire:?}\n{text}"
    );
    for (u, p) in &tried {
        assert!(
            stored.contains(&(false, u.clone(), p.clone(), "telnet".into())),
            "{:?}/{:?} on the wire but not stored: {stored:?}",
            String::from_utf8_lossy(u),
            String::from_utf8_lossy(p)
        );
        assert!(words.iter().any(|w| w.as_bytes() == &p[..]), "{p:?}");
    }
    assert!(stored.contains(&(true, t("root"), t("xc3511"), "telnet".into())));
    // Nothing stored that was not on the wire.
    assert_eq!(stored.len(), wire.len(), "{stored:?} vs {wire:?}");
}
