//! The shortest path through everything: connect, banner, rule reply, store.

use crate::common::*;
use honeyport_event::{EndReason, EventKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_rule_reply_and_store_agree_with_the_client() {
    let s = start(
        r#"
[personas.smtp]
type = "scripted"
banner = "220 mx ESMTP Exim 4.92\r\n"
loop = 5
[[personas.smtp.rules]]
name = "EHLO"
prefix = "EHLO"
reply = "250 mx Hello\r\n"
[[personas.smtp.rules]]
name = "QUIT"
prefix = "QUIT"
reply = "221 bye\r\n"
action = "reply_disconnect"

[[listeners]]
name = "smtp"
ports = 0
bind = ["127.0.0.1"]
persona = "smtp"
"#,
    )
    .await;
    let mut c = connect(s.tcp("smtp")).await;
    let mut seen = read_until(&mut c, b"\r\n").await;
    send(&mut c, b"EHLO scan7\r\n").await;
    seen.extend(read_until(&mut c, b"250 mx Hello\r\n").await);
    send(&mut c, b"QUIT\r\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(
        seen,
        b"220 mx ESMTP Exim 4.92\r\n250 mx Hello\r\n221 bye\r\n"
    );
    let local = c.local_addr().unwrap();
    drop(c);

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    assert_eq!(
        output_of(sess),
        seen,
        "store holds exactly what the client saw"
    );
    assert_eq!(input_of(sess), b"EHLO scan7\r\nQUIT\r\n");
    assert_eq!(rules_of(sess), vec!["EHLO", "QUIT"]);
    assert_eq!(end_of(sess).0, EndReason::Persona);
    let first = &sess[0];
    assert_eq!(first.src_port, local.port());
    assert_eq!(first.dst_ip.to_string(), "127.0.0.1");
    assert!(
        matches!(&first.kind, EventKind::Connect { listener, persona, tls: false } if listener == "smtp" && persona == "smtp")
    );
}
