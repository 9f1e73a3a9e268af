//! A port-26-style multi-protocol listener: one port, an Exim SMTP default and telnet, SSH and
//! HTTP personas by dispatch and adaptive mode. Real clients (OpenSSH `ssh`, `swaks`, `curl`),
//! the suite's Mirai-style bot and a silent client each get the persona they look for, and
//! every session is classified.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use honeyport_event::{Event, EventKind};
use tokio::io::AsyncReadExt;

use crate::common::*;
use crate::telnet::Mirai;

const LAB: &str = r#"
[personas.exim]
type = "smtp"
profile = "exim"

[personas.busybox]
type = "telnet"
fail_delay = 0
[personas.busybox.credentials]
accept = ["root:xc3511"]
accept_any_after = 0

[personas.openssh]
type = "ssh"
host_keys = "ssh"
fail_delay = 0
[personas.openssh.credentials]
accept = []
accept_any_after = 0

[personas.apache]
type = "http"

[[listeners]]
name = "p26"
ports = 0
bind = ["127.0.0.1"]
persona = "exim"
personas = ["busybox", "openssh", "apache"]
dispatch_wait = "500ms"
adaptive = true
"#;

/// (persona, reason, protocol) of a session's dispatch.
fn dispatch_of(s: &[Event]) -> (String, String, Option<String>) {
    s.iter()
        .find_map(|e| match &e.kind {
            EventKind::Dispatch {
                persona,
                reason,
                protocol,
            } => Some((persona.clone(), reason.clone(), protocol.clone())),
            _ => None,
        })
        .expect("a dispatch event")
}

/// (protocol, client_first, after_banner) of a session's classification.
fn class_of(s: &[Event]) -> (String, bool, Option<String>) {
    s.iter()
        .find_map(|e| match &e.kind {
            EventKind::Classified {
                protocol,
                client_first,
                after_banner,
            } => Some((protocol.clone(), *client_first, after_banner.clone())),
            _ => None,
        })
        .expect("a classified event")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_smtp_telnet_ssh_and_http_clients_each_their_persona() {
    let sensor = start(LAB).await;
    let addr: SocketAddr = sensor.tcp("p26");
    let port = addr.port().to_string();

    // 1. swaks waits for the banner: the default, Exim.
    let swaks = run_client(tokio::process::Command::new("swaks").args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--to",
        "victim@example.com",
        "--from",
        "bot@example.org",
        "--timeout",
        "10",
    ]))
    .await;
    let said = String::from_utf8_lossy(&swaks.stdout).to_string();
    assert!(
        said.contains("220 ") && said.contains("Exim 4.92"),
        "{said}"
    );
    // 2. OpenSSH speaks first: the ssh persona.
    let ssh = run_client(sshpass("hunter2", addr).args([
        "-o",
        "PreferredAuthentications=password",
        "root@127.0.0.1",
        "true",
    ]))
    .await;
    assert_eq!(
        ssh.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    // 3. curl speaks HTTP first: the http persona.
    let curl = run_client(
        tokio::process::Command::new("curl")
            .args(["-s", "-i", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}/")),
    )
    .await;
    let page = String::from_utf8_lossy(&curl.stdout).to_string();
    assert!(
        page.starts_with("HTTP/1.1 200 OK") && page.contains("Apache"),
        "{page}"
    );
    // 4. A Mirai-style bot waits for IAC: the Exim banner is not it, so it hangs up; its
    //    next connection gets the next persona (adaptive), telnet, and it gets in.
    let bot = ip("127.0.0.3");
    let mut first = connect_from(bot, addr).await;
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(WAIT, first.read(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert!(
        n == 1 && b[0] != 0xff,
        "the default persona speaks SMTP first"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut m = Mirai::on(connect_from(bot, addr).await);
    m.until(b"login: ").await;
    m.line("root").await;
    m.until(b"Password: ").await;
    m.line("xc3511").await;
    m.until(b"# ").await;
    m.line("/bin/busybox ECCHI").await;
    m.until(b"ECCHI: applet not found").await;
    drop(m);
    // 5. A client that connects and says nothing gets the default, and leaves.
    let mut quiet = connect_from(ip("127.0.0.4"), addr).await;
    let got = read_until(&mut quiet, b"ESMTP").await;
    assert!(got.starts_with(b"220 "), "{got:?}");
    drop(quiet);

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 6, "swaks, ssh, curl, bot x2, silent");
    assert_eq!(dispatch_of(&s[0]), ("exim".into(), "silent".into(), None));
    assert_eq!(class_of(&s[0]), ("smtp".into(), false, Some("same".into())));
    assert_eq!(
        dispatch_of(&s[1]),
        ("openssh".into(), "detected".into(), Some("ssh".into()))
    );
    assert_eq!(class_of(&s[1]).0, "ssh");
    assert!(logins(&s[1]).contains(&(
        false,
        b"root".to_vec(),
        b"hunter2".to_vec(),
        "ssh-password".into()
    )));
    assert_eq!(
        dispatch_of(&s[2]),
        ("apache".into(), "detected".into(), Some("http".into()))
    );
    assert_eq!(class_of(&s[2]), ("http".into(), true, None));
    assert_eq!(dispatch_of(&s[3]), ("exim".into(), "silent".into(), None));
    assert_eq!(
        class_of(&s[3]),
        ("silent".into(), false, Some("silent".into()))
    );
    assert_eq!(
        dispatch_of(&s[4]),
        ("busybox".into(), "adaptive".into(), None)
    );
    assert_eq!(
        class_of(&s[4]),
        ("telnet".into(), false, Some("same".into()))
    );
    assert!(logins(&s[4]).iter().any(|l| l.0 && l.2 == b"xc3511"));
    // The summary rows say the same, for reports to group by.
    let sum = |i: usize| done.store.summary(&s[i][0].session.0).unwrap().unwrap();
    let ssh_row = sum(1);
    assert_eq!(
        (
            ssh_row.served.as_deref(),
            ssh_row.protocol.as_deref(),
            ssh_row.logins,
            ssh_row.logins_ok
        ),
        (Some("openssh"), Some("ssh"), 1, 0)
    );
    assert!(ssh_row
        .client_version
        .unwrap()
        .starts_with("SSH-2.0-OpenSSH_"));
    assert_eq!(ssh_row.hassh.map(|h| h.len()), Some(32));
    let bot_row = sum(4);
    assert_eq!(
        (
            bot_row.served.as_deref(),
            bot_row.protocol.as_deref(),
            bot_row.after_banner.as_deref()
        ),
        (Some("busybox"), Some("telnet"), Some("same"))
    );
    assert_eq!((bot_row.logins, bot_row.logins_ok), (1, 1));
    assert!(bot_row.commands >= 1, "{bot_row:?}");
    assert_eq!(dispatch_of(&s[5]), ("exim".into(), "silent".into(), None));
    assert_eq!(
        class_of(&s[5]),
        ("silent".into(), false, Some("silent".into()))
    );
}

#[test]
fn multi_protocol_mistakes_are_reported() {
    let src = "[personas.a]\ntype = \"smtp\"\n[personas.b]\ntype = \"telnet\"\n\
               [[listeners]]\nports = 0\ntransport = \"udp\"\npersona = \"a\"\n\
               personas = [\"b\", \"nope\", \"b\"]\ndispatch_wait = \"1h\"\n\
               [[listeners]]\nports = 0\npersona = \"a\"\nadaptive = true\n";
    let err = match honeyport::config::validate_str(src, "t.toml", std::path::Path::new(".")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    for want in [
        "listeners[0].personas: a multi-protocol port is TCP only",
        "listeners[0].personas[1]: unknown persona \"nope\"",
        "listeners[0].personas[2]: \"b\" is listed twice",
        "listeners[0].dispatch_wait: must be at most 30s",
        "listeners[1].adaptive: adaptive needs other `personas`",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }
}

#[tokio::test]
async fn classification_can_be_turned_off_and_is_on_by_default() {
    let body = "[personas.s]\ntype = \"scripted\"\nbanner = \"hi\\r\\n\"\n\
                [[listeners]]\nname = \"l\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"s\"\n";
    for (extra, want) in [("", 1), ("[classify]\nsessions = false\n", 0)] {
        let sensor = start(&format!("{extra}{body}")).await;
        let mut c = connect(sensor.tcp("l")).await;
        read_until(&mut c, b"hi").await;
        send(&mut c, b"EHLO x\r\n").await;
        drop(c);
        let done = sensor.stop().await;
        done.assert_paired();
        let n = done
            .all()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Classified { .. }))
            .count();
        assert_eq!(n, want, "{extra:?}");
    }
}
