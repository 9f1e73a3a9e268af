//! Every file in examples/ validates and builds; the port-26 example holds a real SMTP
//! conversation with Python's smtplib.

use std::path::{Path, PathBuf};

use crate::common::*;
use honeyport_event::EndReason;

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
async fn port26_example_speaks_smtp_to_python_smtplib() {
    let src = std::fs::read_to_string(examples_dir().join("port26.toml")).unwrap();
    let s = start_in(&on_loopback(&src), &examples_dir()).await;
    let addr = s.tcp("port26");
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
