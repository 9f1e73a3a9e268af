//! Storage: the JSON-lines sink rotates by size and agrees with SQLite; a store that cannot
//! keep up slows accepting and loses nothing.

use std::time::Duration;

use crate::common::*;
use honeyport_event::{Event, EventKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_rotates_by_size_keeps_n_files_and_matches_sqlite() {
    let s = start(
        r#"
[storage]
jsonl = "events.jsonl"
jsonl_max_size = 4096
jsonl_keep = 2
[personas.p]
type = "scripted"
banner = "220 hello there, this banner makes every session a few hundred bytes of JSON\r\n"
reply = "250 ok\r\n"
[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#,
    )
    .await;
    let addr = s.tcp("l");
    for i in 0..40 {
        let mut c = connect(addr).await;
        read_until(&mut c, b"\r\n").await;
        send(&mut c, format!("EHLO rot{i}\r\n").as_bytes()).await;
        read_to_close(&mut c).await;
    }
    let dir = s.dir.path().to_path_buf();
    let done = s.stop().await;
    done.assert_paired();

    let file = |suffix: &str| dir.join(format!("events.jsonl{suffix}"));
    assert!(file("").exists() && file(".1").exists() && file(".2").exists());
    assert!(
        !file(".3").exists(),
        "jsonl_keep = 2 keeps two rotated files"
    );
    let mut lines = Vec::new();
    for suffix in [".2", ".1", ""] {
        let text = std::fs::read_to_string(file(suffix)).unwrap();
        assert!(text.len() <= 4096, "{suffix} is {} bytes", text.len());
        lines.extend(
            text.lines()
                .map(|l| Event::from_json(l.as_bytes()).unwrap()),
        );
    }
    // The kept files hold the newest events, in order, exactly as SQLite has them.
    let all = done.all();
    assert!(lines.len() < all.len(), "older events were rotated away");
    assert_eq!(&all[all.len() - lines.len()..], &lines[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_store_pauses_accepting_and_loses_nothing() {
    let s = start(
        r#"
[storage]
queue = 16
batch = 16
[personas.p]
type = "scripted"
banner = "220 hi\r\n"
reply = "250 ok\r\n"
[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#,
    )
    .await;
    let addr = s.tcp("l");
    // Another writer holds the database: the sensor's writer blocks (busy timeout).
    let db = rusqlite::Connection::open(s.dir.path().join("honeyport.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();

    const N: usize = 50;
    let clients: Vec<_> = (0..N)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = connect(addr).await;
                read_until(&mut c, b"220 hi\r\n").await;
                send(&mut c, format!("HELO bp{i}\r\n").as_bytes()).await;
                read_to_close(&mut c).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let released = chrono::Utc::now();
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    for c in clients {
        assert_eq!(c.await.unwrap(), b"250 ok\r\n");
    }
    let done = s.stop().await;
    done.assert_paired();
    let p = done.report.pipeline;
    assert_eq!(p.dropped, 0);
    assert_eq!(p.written, p.sent);
    let sessions = done.sessions();
    assert_eq!(sessions.len(), N, "every client's session is stored");
    let mut seen: Vec<String> = sessions
        .iter()
        .map(|s| String::from_utf8(input_of(s)).unwrap())
        .collect();
    seen.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("HELO bp{i}\r\n")).collect();
    want.sort();
    assert_eq!(seen, want);
    // While the store was blocked, accepting paused once the queue was half full: far fewer
    // than N sessions started before the lock was released.
    let early = sessions
        .iter()
        .filter(|s| matches!(s[0].kind, EventKind::Connect { .. }) && s[0].timestamp.0 < released)
        .count();
    assert!(
        early < N / 2,
        "{early} of {N} sessions started while the store was blocked"
    );
}
