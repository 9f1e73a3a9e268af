//! TLS listeners, driven by the real `openssl s_client`: a given certificate (fixture) and a
//! self-signed one; handshake details and decrypted bytes in the store; plaintext sent to a
//! TLS port kept in `tls.failed`; a missing certificate refused by validation.

use honeyport::store::Reader as _;
use std::net::SocketAddr;
use std::process::Stdio;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};

fn config(tls: &str, limits: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[personas.smtp]
type = "scripted"
banner = "220 mx.example.test ESMTP\r\n"
loop = 0
[[personas.smtp.rules]]
name = "EHLO"
prefix = "EHLO"
reply = "250 mx.example.test Hello\r\n"
[[personas.smtp.rules]]
name = "QUIT"
prefix = "QUIT"
reply = "221 bye\r\n"
action = "reply_disconnect"

[[listeners]]
name = "smtps"
ports = 0
bind = ["127.0.0.1"]
persona = "smtp"
tls = {tls}
"#
    )
}

/// `openssl s_client -quiet` connected to the sensor, stdin and stdout piped.
pub struct SClient {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    seen: Vec<u8>,
}

impl SClient {
    pub fn spawn(addr: SocketAddr, servername: Option<&str>) -> SClient {
        let mut cmd = tokio::process::Command::new("openssl");
        cmd.arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg("-quiet");
        if let Some(n) = servername {
            cmd.arg("-servername").arg(n);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl s_client runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        SClient {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    /// Reads until `needle` shows up in everything read so far (hang guard: WAIT).
    pub async fn read_until(&mut self, needle: &[u8]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !contains(&self.seen, needle) {
            match tokio::time::timeout_at(deadline, self.stdout.read(&mut buf)).await {
                Err(_) => panic!(
                    "s_client: timed out waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => panic!(
                    "s_client: output ended before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(Ok(n)) => self.seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    pub async fn send(&mut self, b: &[u8]) {
        self.stdin.write_all(b).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for s_client to exit (the server closed); returns everything it printed.
    pub async fn finish(mut self) -> Vec<u8> {
        let _ = tokio::time::timeout(WAIT, self.stdout.read_to_end(&mut self.seen)).await;
        let st = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("s_client did not exit after the server closed")
            .unwrap();
        let _ = st; // s_client's exit code reflects certificate verification, not the session
        self.seen
    }
}

fn handshake_of(s: &[Event]) -> (String, String, Option<String>) {
    s.iter()
        .find_map(|e| match &e.kind {
            EventKind::TlsHandshake {
                version,
                cipher,
                sni,
                ..
            } => Some((version.clone(), cipher.clone(), sni.clone())),
            _ => None,
        })
        .expect("session has a tls.handshake event")
}

/// One SMTP-ish dialogue through s_client; returns the stored session.
async fn dialogue_through_openssl(tls: &str, servername: Option<&str>) -> Vec<Event> {
    let s = start(&config(tls, "")).await;
    let mut c = SClient::spawn(s.tcp("smtps"), servername);
    c.read_until(b"220 mx.example.test ESMTP\r\n").await;
    c.send(b"EHLO tls.client\n").await;
    c.read_until(b"250 mx.example.test Hello\r\n").await;
    c.send(b"QUIT\n").await;
    let seen = c.finish().await;
    assert_eq!(
        seen,
        b"220 mx.example.test ESMTP\r\n250 mx.example.test Hello\r\n221 bye\r\n"
    );

    let done = s.stop().await;
    done.assert_paired();
    let mut sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = sessions.remove(0);
    assert!(matches!(
        &sess[0].kind,
        EventKind::Connect { tls: true, .. }
    ));
    // The store holds the decrypted bytes, exactly.
    assert_eq!(input_of(&sess), b"EHLO tls.client\nQUIT\n");
    assert_eq!(output_of(&sess), seen);
    assert_eq!(rules_of(&sess), vec!["EHLO", "QUIT"]);
    assert_eq!(end_of(&sess), (EndReason::Persona, None));
    // The handshake is recorded before any application data.
    let hs = sess
        .iter()
        .position(|e| e.kind.eventid() == "tls.handshake")
        .unwrap();
    let first_io = sess
        .iter()
        .position(|e| matches!(e.kind, EventKind::Input { .. } | EventKind::Output { .. }))
        .unwrap();
    assert!(hs < first_io);
    // The raw ClientHello's fingerprints come first, and the summary row has them.
    let (at, ja3, ja4, sni) = sess
        .iter()
        .enumerate()
        .find_map(|(i, e)| match &e.kind {
            EventKind::TlsClientHello { ja3, ja4, sni, .. } => {
                Some((i, ja3.clone(), ja4.clone(), sni.clone()))
            }
            _ => None,
        })
        .expect("tls.client_hello recorded");
    assert!(at < hs);
    assert!(
        ja3.len() == 32 && ja3.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ja3}"
    );
    // s_client offers TLS 1.3 over TCP; 'd' with SNI, 'i' without.
    let flag = if servername.is_some() { "t13d" } else { "t13i" };
    assert!(ja4.starts_with(flag) && ja4.len() == 36, "{ja4}");
    assert_eq!(sni.as_deref(), servername);
    let row = done.store.summary(&sess[0].session.0).unwrap().unwrap();
    assert_eq!(
        (row.ja3.as_deref(), row.ja4.as_deref()),
        (Some(ja3.as_str()), Some(ja4.as_str()))
    );
    sess
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_client_gets_banner_and_rule_reply_through_tls_with_a_given_certificate() {
    let sess = dialogue_through_openssl(
        r#"{ cert = "tls-cert.pem", key = "tls-key.pem" }"#,
        Some("mail.example.test"),
    )
    .await;
    let (version, cipher, sni) = handshake_of(&sess);
    assert!(version.starts_with("TLSv1_"), "{version}");
    assert!(cipher.starts_with("TLS"), "{cipher}");
    assert_eq!(sni.as_deref(), Some("mail.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_client_gets_banner_and_rule_reply_through_tls_with_a_self_signed_certificate() {
    let sess = dialogue_through_openssl(
        r#"{ self_signed = true, names = ["mx.example.test"] }"#,
        Some("mx.example.test"),
    )
    .await;
    let (version, cipher, sni) = handshake_of(&sess);
    assert!(version.starts_with("TLSv1_"), "{version}");
    assert!(!cipher.is_empty());
    assert_eq!(sni.as_deref(), Some("mx.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sni_is_recorded_when_the_client_sends_none() {
    // s_client sends no SNI when connecting to an IP address without -servername.
    let sess = dialogue_through_openssl(r#"{ self_signed = true }"#, None).await;
    let (_, _, sni) = handshake_of(&sess);
    assert_eq!(sni, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_clients_are_served_and_the_version_is_recorded() {
    let s = start(&config(
        r#"{ cert = "tls-cert.pem", key = "tls-key.pem" }"#,
        "",
    ))
    .await;
    let addr = s.tcp("smtps");
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-tls1_2", "-quiet", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut c = SClient {
        child,
        stdin,
        stdout,
        seen: Vec::new(),
    };
    c.read_until(b"220 mx.example.test ESMTP\r\n").await;
    c.send(b"QUIT\n").await;
    c.finish().await;
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    let (version, cipher, _) = handshake_of(&sessions[0]);
    assert_eq!(version, "TLSv1_2");
    assert!(cipher.starts_with("TLS_ECDHE_"), "{cipher}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_sent_to_a_tls_port_is_kept_in_tls_failed() {
    let s = start(&config(r#"{ self_signed = true }"#, "")).await;
    let mut c = connect(s.tcp("smtps")).await;
    let req = b"GET / HTTP/1.0\r\n\r\n";
    send(&mut c, req).await;
    let back = read_to_close(&mut c).await;
    assert!(
        !contains(&back, b"220 mx"),
        "banner sent in the clear on a TLS port"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    let failed: Vec<_> = sess
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TlsFailed { error, data, len } => Some((error, data, *len)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{sess:#?}");
    let (error, data, len) = failed[0];
    assert_eq!(data.0, req, "the exact plaintext bytes are kept");
    assert_eq!(len, req.len() as u64);
    assert!(!error.is_empty());
    assert_eq!(end_of(sess), (EndReason::TlsFailed, None));
    assert!(matches!(
        closed_of(sess).kind,
        EventKind::Closed { bytes_in, bytes_out: 0, .. } if bytes_in == req.len() as u64
    ));
    assert_eq!(count_kind(sess, "tls.handshake"), 0);
    assert!(output_of(sess).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_sent_to_a_tls_port_in_several_writes_is_kept_whole() {
    let s = start(&config(r#"{ self_signed = true }"#, "")).await;
    let mut c = connect(s.tcp("smtps")).await;
    send(&mut c, b"GET /admin HTTP/1.1\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send(&mut c, b"Host: x\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send(&mut c, b"\r\n").await;
    assert!(read_to_close(&mut c).await.is_empty());

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    let data: Vec<u8> = sess
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::TlsFailed { data, error, .. } => {
                assert!(error.contains("first byte 0x47"), "{error}");
                Some(data.0.clone())
            }
            _ => None,
        })
        .expect("tls.failed recorded");
    assert_eq!(data, b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(end_of(sess), (EndReason::TlsFailed, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_ends_at_the_idle_timeout_and_keeps_what_was_sent() {
    let s = start(&config(
        r#"{ self_signed = true }"#,
        r#"idle_timeout = "300ms""#,
    ))
    .await;
    // A TLS record header announcing 512 bytes, then only a few of them.
    let partial = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let mut c = connect(s.tcp("smtps")).await;
    send(&mut c, partial).await;
    // And a peer that connects and says nothing at all.
    let mut mute = connect(s.tcp("smtps")).await;
    read_to_close(&mut c).await;
    read_to_close(&mut mute).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    let port = c.local_addr().unwrap().port();
    let stalled = sessions.iter().find(|s| s[0].src_port == port).unwrap();
    let silent = sessions.iter().find(|s| s[0].src_port != port).unwrap();
    assert_eq!(end_of(stalled), (EndReason::TlsFailed, None));
    let kept = stalled
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::TlsFailed { data, .. } => Some(data.0.clone()),
            _ => None,
        })
        .expect("tls.failed recorded");
    assert_eq!(kept, partial);
    assert_eq!(end_of(silent), (EndReason::IdleTimeout, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_open_at_stop_ends_with_reason_shutdown() {
    let s = start(&config(
        r#"{ self_signed = true }"#,
        r#"shutdown_grace = "100ms""#,
    ))
    .await;
    let mut c = SClient::spawn(s.tcp("smtps"), Some("mx.example.test"));
    c.read_until(b"220 mx.example.test ESMTP\r\n").await;
    c.send(b"EHLO tls.client\n").await;
    c.read_until(b"250 mx.example.test Hello\r\n").await;
    let done = s.stop().await;
    c.finish().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(end_of(&sessions[0]), (EndReason::Shutdown, None));
    assert_eq!(input_of(&sessions[0]), b"EHLO tls.client\n");
}

#[test]
fn a_tls_listener_with_a_missing_certificate_is_refused_by_validation() {
    let missing = "/nonexistent/honeyport-test/cert.pem";
    let src = config(
        &format!(r#"{{ cert = "{missing}", key = "tls-key.pem" }}"#),
        "",
    );
    let err = match honeyport::config::validate_str(&src, "t.toml", &fixtures()) {
        Ok(_) => panic!("a TLS listener without its certificate was accepted"),
        Err(e) => e,
    };
    let cert_err = err
        .errors
        .iter()
        .find(|e| e.path == "listeners[0].tls.cert")
        .unwrap_or_else(|| panic!("no error at listeners[0].tls.cert: {err}"));
    assert!(cert_err.message.contains(missing), "{cert_err}");
    assert!(err.to_string().contains(missing));

    // A relative path is reported as resolved against the config's directory.
    let src = config(r#"{ cert = "no-such-cert.pem", key = "tls-key.pem" }"#, "");
    let err = match honeyport::config::validate_str(&src, "t.toml", &fixtures()) {
        Ok(_) => panic!("a TLS listener without its certificate was accepted"),
        Err(e) => e,
    };
    let want = fixtures().join("no-such-cert.pem").display().to_string();
    assert!(err.to_string().contains(&want), "{err}");
}

#[test]
fn a_tls_listener_with_the_given_fixture_validates_and_builds() {
    let src = config(r#"{ cert = "tls-cert.pem", key = "tls-key.pem" }"#, "");
    let v = honeyport::config::validate_str(&src, "t.toml", &fixtures())
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = v.build().unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.listeners[0].tls.is_some());
}

/// The first certificate the server at `addr` presents, as PEM (via `openssl s_client`).
async fn presented_cert(addr: SocketAddr) -> String {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("openssl")
            .args(["s_client", "-showcerts", "-connect"])
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output(),
    )
    .await
    .expect("s_client hung")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in s_client output: {text}"));
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin;
    format!("{}-----END CERTIFICATE-----\n", &text[begin..end])
}

/// `openssl x509 <args>` on a PEM certificate; returns its stdout.
fn x509(pem: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.pem");
    std::fs::write(&f, pem).unwrap();
    let out = std::process::Command::new("openssl")
        .arg("x509")
        .arg("-in")
        .arg(&f)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_certificate_is_the_one_presented() {
    let s = start(&config(
        r#"{ cert = "tls-cert.pem", key = "tls-key.pem" }"#,
        "",
    ))
    .await;
    let pem = presented_cert(s.tcp("smtps")).await;
    let fixture = std::fs::read_to_string(fixtures().join("tls-cert.pem")).unwrap();
    let fp = ["-noout", "-fingerprint", "-sha256"];
    assert_eq!(x509(&pem, &fp), x509(&fixture, &fp));
    let done = s.stop().await;
    done.assert_paired();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_signed_certificate_carries_the_configured_names() {
    let s = start(&config(
        r#"{ self_signed = true, names = ["mx.example.test", "smtp.example.test"] }"#,
        "",
    ))
    .await;
    let pem = presented_cert(s.tcp("smtps")).await;
    let san = x509(&pem, &["-noout", "-ext", "subjectAltName"]);
    assert!(san.contains("DNS:mx.example.test"), "{san}");
    assert!(san.contains("DNS:smtp.example.test"), "{san}");
    let done = s.stop().await;
    done.assert_paired();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_never_reads_cannot_hang_a_large_write() {
    // s_client's stdout is never read: once the pipe is full it stops reading the socket, so
    // the 8MiB banner cannot drain; the write must end at the idle timeout.
    let dir = tempfile::tempdir().unwrap();
    let banner: Vec<u8> = (0..(8u32 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.path().join("big.txt"), &banner).unwrap();
    for f in ["tls-cert.pem", "tls-key.pem"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
    }
    let s = start_in(
        r#"
[limits]
idle_timeout = "500ms"

[personas.big]
type = "scripted"
banner = { file = "big.txt" }
loop = 0

[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "big"
tls = { cert = "tls-cert.pem", key = "tls-key.pem" }
"#,
        dir.path(),
    )
    .await;
    let c = SClient::spawn(s.tcp("l"), None);
    s.wait_closed(1).await;
    drop(c); // kills s_client

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(end_of(&sessions[0]), (EndReason::IdleTimeout, None));
    let out = output_of(&sessions[0]);
    assert!(!out.is_empty() && out.len() < banner.len(), "{}", out.len());
    assert!(
        out == banner[..out.len()],
        "recorded output is a prefix of the banner"
    );
    assert_eq!(count_kind(&sessions[0], "tls.handshake"), 1);
}
