//! A port-26-style multi-protocol listener: one port, an Exim SMTP default and telnet, SSH and
//! HTTP personas by dispatch and adaptive mode, TLS for clients that open with it. Real clients
//! (OpenSSH `ssh`, paramiko, `swaks` with and without STARTTLS, `curl` over HTTP and HTTPS,
//! `openssl s_client`), the suite's Mirai-style bot and a silent client each get the persona
//! they look for, and every session is classified and fingerprinted.

use honeyport::store::Reader as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use honeyport_event::{Event, EventKind};
use tokio::io::AsyncReadExt;

use crate::common::*;
use crate::telnet::Mirai;
use crate::tls::SClient;

/// paramiko's `SSHClient`, one refused password: prints `refused`.
const PARAMIKO: &str = r#"
import sys, paramiko
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
try:
    c.connect(sys.argv[1], port=int(sys.argv[2]), username="admin", password="admin",
              look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=10)
    print("in")
except paramiko.AuthenticationException:
    print("refused")
"#;

/// Whether a session is TLS by its dispatch, and its `tls.client_hello` JA4, if any.
fn tls_of(s: &[Event]) -> (bool, Option<String>) {
    let tls = s
        .iter()
        .any(|e| matches!(e.kind, EventKind::Dispatch { tls: true, .. }));
    let ja4 = s.iter().find_map(|e| match &e.kind {
        EventKind::TlsClientHello { ja4, .. } => Some(ja4.clone()),
        _ => None,
    });
    (tls, ja4)
}

const LAB: &str = r#"
[personas.exim]
type = "smtp"
profile = "exim"
starttls = { self_signed = true }

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
tls = { self_signed = true }
"#;

/// (persona, reason, protocol) of a session's dispatch.
fn dispatch_of(s: &[Event]) -> (String, String, Option<String>) {
    s.iter()
        .find_map(|e| match &e.kind {
            EventKind::Dispatch {
                persona,
                reason,
                protocol,
                ..
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
    // 6. curl over HTTPS: TLS first, then HTTP inside it: the http persona, over TLS.
    let curl = run_client(
        tokio::process::Command::new("curl")
            .args(["-s", "-k", "-i", "--http1.1", "--max-time", "10"])
            .arg(format!("https://127.0.0.1:{port}/")),
    )
    .await;
    let page = String::from_utf8_lossy(&curl.stdout).to_string();
    assert!(
        page.starts_with("HTTP/1.1 200 OK") && page.contains("Apache"),
        "{page}"
    );
    // 7. openssl s_client says nothing after the handshake: the default persona, over TLS.
    let mut sc = SClient::spawn(addr, None);
    sc.read_until(b"Exim 4.92").await;
    sc.send(b"QUIT\r\n").await;
    let said = sc.finish().await;
    assert!(
        contains(&said, b"221 "),
        "{}",
        String::from_utf8_lossy(&said)
    );
    // 8. swaks with STARTTLS: the default persona, its ClientHello fingerprinted too.
    let swaks = run_client(tokio::process::Command::new("swaks").args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--to",
        "victim@example.com",
        "--from",
        "bot@example.org",
        "--tls",
        "--timeout",
        "10",
    ]))
    .await;
    let said = String::from_utf8_lossy(&swaks.stdout).to_string();
    assert!(said.contains("TLS started"), "{said}");
    // 9. paramiko speaks SSH first: the ssh persona.
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PARAMIKO)
            .arg("127.0.0.1")
            .arg(&port),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(
        s.len(),
        10,
        "swaks, ssh, curl, bot x2, silent, https, s_client, swaks --tls, paramiko"
    );
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
    // Nothing before was TLS.
    for (i, sess) in s[..6].iter().enumerate() {
        assert_eq!(tls_of(sess), (false, None), "session {i}");
    }
    // HTTPS: the http persona inside TLS, the ClientHello fingerprinted.
    assert_eq!(
        dispatch_of(&s[6]),
        ("apache".into(), "detected".into(), Some("http".into()))
    );
    let (tls, ja4) = tls_of(&s[6]);
    // JA4 `t13i`: TLS 1.3, no SNI (an IP address); `h1`: ALPN http/1.1.
    assert!(
        tls && ja4
            .as_deref()
            .is_some_and(|j| j.starts_with("t13i") && j[8..].starts_with("h1")),
        "{ja4:?}"
    );
    assert_eq!(class_of(&s[6]), ("http".into(), true, None));
    assert_eq!(sum(6).ja4, ja4);
    // s_client: quiet inside TLS, so the default persona; it answered in SMTP.
    assert_eq!(
        dispatch_of(&s[7]),
        ("exim".into(), "detected".into(), Some("tls".into()))
    );
    assert!(tls_of(&s[7]).0 && tls_of(&s[7]).1.is_some());
    assert_eq!(class_of(&s[7]), ("smtp".into(), false, Some("same".into())));
    // swaks --tls: plain at first (the default), then STARTTLS, with its JA3/JA4.
    assert_eq!(dispatch_of(&s[8]), ("exim".into(), "silent".into(), None));
    let (tls, ja4) = tls_of(&s[8]);
    assert!(!tls && ja4.is_some(), "{ja4:?}");
    assert!(s[8]
        .iter()
        .any(|e| matches!(e.kind, EventKind::TlsHandshake { .. })));
    let row = sum(8);
    assert_eq!((row.ja4.clone(), row.ja3.map(|j| j.len())), (ja4, Some(32)));
    // paramiko: the ssh persona, its version and HASSH on the row.
    assert_eq!(
        dispatch_of(&s[9]),
        ("openssh".into(), "detected".into(), Some("ssh".into()))
    );
    assert_eq!(class_of(&s[9]).0, "ssh");
    let row = sum(9);
    assert!(
        row.client_version
            .as_deref()
            .is_some_and(|v| v.starts_with("SSH-2.0-paramiko_")),
        "{row:?}"
    );
    assert_eq!((row.logins, row.hassh.map(|h| h.len())), (1, Some(32)));
}

/// TLS sent to a port whose persona does not speak it (no `tls` on the listener): the
/// ClientHello is still fingerprinted from the bytes the persona read, and the session is
/// classified as TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_on_a_plain_port_is_fingerprinted() {
    let sensor = start(
        "[personas.web]\ntype = \"http\"\n\
         [[listeners]]\nname = \"web\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"web\"\n",
    )
    .await;
    let addr = sensor.tcp("web");
    let out = run_client(
        tokio::process::Command::new("curl")
            .args(["-s", "-k", "--max-time", "5"])
            .arg(format!("https://127.0.0.1:{}/", addr.port())),
    )
    .await;
    assert!(!out.status.success(), "curl cannot make TLS of HTTP");
    let done = sensor.stop().await;
    done.assert_paired();
    let s = done.sessions();
    assert_eq!(s.len(), 1);
    let (_, ja4) = tls_of(&s[0]);
    assert!(
        ja4.as_deref().is_some_and(|j| j.starts_with("t13i")),
        "{ja4:?}"
    );
    let hello_sni = s[0].iter().find_map(|e| match &e.kind {
        EventKind::TlsClientHello { sni, .. } => Some(sni.clone()),
        _ => None,
    });
    assert_eq!(hello_sni, Some(None), "curl sends no SNI for an IP address");
    assert_eq!(class_of(&s[0]).0, "tls");
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
