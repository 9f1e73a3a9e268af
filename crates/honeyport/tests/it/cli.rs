//! The `honeyport` binary: `check` reports every error with its position, `events` filters
//! and orders, `run` without a config says where it listens.

use std::process::Command;

use crate::common::*;
use honeyport_event::{Event, EventKind};
use tokio::net::TcpSocket;

#[test]
fn check_reports_every_error_with_its_line_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        r#"[personas.smtp]
type = "scripted"
banner = { file = "missing-banner.txt" }

[[personas.smtp.rules]]
regex = "(EHLO"
reply = "250 ok\r\n"

[[listeners]]
ports = "26,30-20"
persona = "smtp"

[[listeners]]
ports = 27
persona = "no-such-persona"
tls = { cert = "nope.pem", key = "nope.key" }
"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        ":3:10: personas.smtp.banner: cannot read",
        ":6:9: personas.smtp.rules[0].regex: bad regex",
        ":10:9: listeners[0].ports: port range \"30-20\" runs backwards",
        ":15:11: listeners[1].persona: unknown persona \"no-such-persona\"",
        "listeners[1].tls.cert: certificate: cannot read",
        "listeners[1].tls.key: private key: cannot read",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("6 errors in config"), "{err}");
}

#[test]
fn check_accepts_a_good_config_and_run_refuses_a_bad_one_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[personas.p]\ntype = \"scripted\"\n[[listeners]]\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n").unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 sockets)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[personas.p]\ntype = \"scripted\"\nloop = \"many\"\n").unwrap();
    let data = dir.path().join("data");
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(&data)
        .args(["run", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":3:8:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !data.exists(),
        "nothing may start (not even the store) when the config is bad"
    );
}

async fn session_from(src: &str, addr: std::net::SocketAddr, payload: &[u8]) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let mut c = tokio::time::timeout(WAIT, sock.connect(addr))
        .await
        .unwrap()
        .unwrap();
    send(&mut c, payload).await;
    read_to_close(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_command_filters_by_port_source_session_and_is_newest_first() {
    let s = start(
        r#"
[personas.p]
type = "scripted"
reply = "ok\r\n"
[[listeners]]
name = "a"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
[[listeners]]
name = "b"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#,
    )
    .await;
    let (a, b) = (s.tcp("a"), s.tcp("b"));
    session_from("127.0.0.1", a, b"one\r\n").await;
    session_from("127.0.0.2", a, b"two\r\n").await;
    session_from("127.0.0.1", b, b"three\r\n").await;
    let dir = s.dir.path().to_path_buf();
    let done = s.stop().await;
    done.assert_paired();

    let run = |args: &[&str]| -> Vec<Event> {
        let out = Command::new(bin())
            .arg("--data-dir")
            .arg(&dir)
            .arg("events")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| Event::from_json(l.as_bytes()).unwrap())
            .collect()
    };
    let all = run(&["--limit", "1000"]);
    assert_eq!(
        all.len(),
        3 * 6,
        "connect, tcp.syn, input, output, classified, closed per session"
    );
    assert!(
        all.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
        "newest first"
    );
    assert!(matches!(all[0].kind, EventKind::Closed { .. }));

    let port_a = run(&["--port", &a.port().to_string()]);
    assert_eq!(port_a.len(), 12);
    assert!(port_a.iter().all(|e| e.dst_port == a.port()));

    let from2 = run(&["--src", "127.0.0.2"]);
    assert_eq!(from2.len(), 6);
    assert!(from2
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Input { data, .. } if data.0 == b"two\r\n")));

    let sid = from2[0].session.to_string();
    let one = run(&["--session", &sid]);
    assert_eq!(one.len(), 6);
    assert!(one.iter().all(|e| e.session.0 == sid));

    assert_eq!(run(&["--limit", "2"]).len(), 2);

    // The table form names each event on one line.
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(&dir)
        .args(["events", "--session", &sid])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // The session's summary row first, then its events.
    let (head, rest) = text.split_once('\n').unwrap();
    assert!(
        head.starts_with(&format!("# session {sid} ")) && head.contains(" protocol=unknown-text"),
        "{head}"
    );
    assert_eq!(rest.lines().count(), 6);
    assert!(
        text.contains("session.input") && text.contains("\"two\\r\\n\""),
        "{text}"
    );
}

#[test]
fn events_on_a_missing_or_corrupt_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("events")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no store at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        dir.path().join("honeyport.db"),
        b"this is not a sqlite database, just bytes".repeat(200),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("events")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("honeyport.db"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn run_without_config_says_which_loopback_ports_it_listens_on() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut listening = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("storing events in") {
            break;
        }
        if let Some(rest) = line.strip_prefix("honeyport: listening on ") {
            listening.push(rest.to_string());
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(listening.len() >= 3, "{listening:?}");
    for l in &listening {
        let addr: std::net::SocketAddr = l.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback(), "{l}");
        assert!(addr.port() >= 1024, "{l}");
    }
    assert!(dir.path().join("honeyport.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_plays_back_what_the_peer_saw_and_typed_in_order() {
    let s = start(
        r#"
[personas.p]
type = "scripted"
banner = "login: "
loop = 3
reply = "\r\n$ "
[[listeners]]
name = "a"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#,
    )
    .await;
    let mut c = connect(s.tcp("a")).await;
    read_until(&mut c, b"login: ").await;
    send(&mut c, b"root\r\n").await;
    read_until(&mut c, b"$ ").await;
    send(&mut c, b"uname -a\r\n").await;
    read_until(&mut c, b"$ ").await;
    drop(c);
    let dir = s.dir.path().to_path_buf();
    let done = s.stop().await;
    let sid = done.sessions()[0][0].session.to_string();

    let run = |extra: &[&str]| {
        let out = Command::new(bin())
            .arg("--data-dir")
            .arg(&dir)
            .args(["replay", &sid, "--speed", "0"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(run(&[]), b"login: \r\n$ \r\n$ ");
    assert_eq!(
        run(&["--input"]),
        b"login: root\r\n\r\n$ uname -a\r\n\r\n$ "
    );

    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(&dir)
        .args(["replay", "0000000000000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session"));
}

#[test]
fn demo_drives_a_scanner_mix_and_explains_the_busiest_port() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo");
    let run = || {
        Command::new(bin())
            .args(["demo", "--dir"])
            .arg(&store)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Every client connection worked and every event was stored.
    assert!(text.contains(" (0 failed); "), "{text}");
    assert!(text.contains(" stored, 0 lost"), "{text}");
    // The busiest port is the telnet one, and the explanation says what the bots did.
    assert!(text.contains("Clients spoke: telnet "), "{text}");
    for want in [
        "brute_force",
        "mirai.busybox_token",
        "/bin/busybox ECCHI",
        "http://203.0.113.7/bins/mirai.arm7",
        "Example telnet session",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // A second demo empties its own store first; a directory it did not make is refused.
    assert!(run().status.success());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), b"mine").unwrap();
    let out = Command::new(bin())
        .args(["demo", "--dir"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(other.join("keep.txt").exists());
}
