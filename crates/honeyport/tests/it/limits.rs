//! Limits and hostile peers: every limit trips, ends the session with the right reason (and
//! the right `limit` name), and every session still has exactly one start and one end.

use std::time::Duration;

use crate::common::*;
use honeyport_event::{EndReason, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A persona that sends a banner and then only reads, until a limit or the peer ends it.
fn reader_config(limits: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[personas.sink]
type = "scripted"
banner = "220 ready\r\n"
loop = 0

[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "sink"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_makes_the_next_connection_wait_until_one_closes() {
    let s = start(&reader_config("max_connections = 1")).await;
    let addr = s.tcp("l");
    let mut a = connect(addr).await;
    assert_eq!(read_until(&mut a, b"\r\n").await, b"220 ready\r\n");

    // The kernel completes B's handshake (backlog), but the sensor does not serve it.
    let mut b = connect(addr).await;
    assert!(
        read_for(&mut b, Duration::from_millis(400))
            .await
            .is_empty(),
        "second connection was served while the only slot was taken"
    );
    s.wait_sessions(1).await;
    assert_eq!(s.peek_store().unwrap().count("sessions", "1=1").unwrap(), 1);

    drop(a);
    assert_eq!(read_until(&mut b, b"\r\n").await, b"220 ready\r\n");
    drop(b);
    s.wait_closed(2).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    let a_closed = closed_of(&sessions[0]).timestamp;
    let b_connect = sessions[1][0].timestamp;
    assert!(
        b_connect >= a_closed,
        "B started ({b_connect}) before A ended ({a_closed})"
    );
    for sess in &sessions {
        assert_eq!(end_of(sess), (EndReason::PeerClosed, None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_source_refuses_the_extra_session_and_records_the_limit() {
    let s = start(&reader_config("max_per_source = 1")).await;
    let addr = s.tcp("l");
    let mut a = connect(addr).await;
    assert_eq!(read_until(&mut a, b"\r\n").await, b"220 ready\r\n");

    let mut b = connect(addr).await;
    assert!(
        read_to_close(&mut b).await.is_empty(),
        "over-quota session got an answer"
    );
    s.wait_closed(1).await;

    // Once A is gone its share is given back: C is served.
    drop(a);
    s.wait_closed(2).await;
    let mut c = connect(addr).await;
    assert_eq!(read_until(&mut c, b"\r\n").await, b"220 ready\r\n");
    drop(c);
    s.wait_closed(3).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(end_of(&sessions[0]).0, EndReason::PeerClosed);
    assert_eq!(
        end_of(&sessions[1]),
        (EndReason::Limit, Some("max_per_source".to_string()))
    );
    assert!(output_of(&sessions[1]).is_empty());
    assert_eq!(end_of(&sessions[2]).0, EndReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_ends_silent_and_never_closing_peers() {
    let s = start(&reader_config(r#"idle_timeout = "300ms""#)).await;
    let addr = s.tcp("l");
    // One peer says something and then goes quiet; one never says anything.
    let mut talker = connect(addr).await;
    read_until(&mut talker, b"\r\n").await;
    send(&mut talker, b"hello?\r\n").await;
    let mut mute = connect(addr).await;

    assert!(read_to_close(&mut talker).await.is_empty());
    assert_eq!(read_to_close(&mut mute).await, b"220 ready\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    for sess in &sessions {
        assert_eq!(end_of(sess), (EndReason::IdleTimeout, None));
    }
    let talker_port = talker.local_addr().unwrap().port();
    let t = sessions
        .iter()
        .find(|s| s[0].src_port == talker_port)
        .unwrap();
    assert_eq!(input_of(t), b"hello?\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_session_ends_a_client_that_keeps_trickling_bytes() {
    let s = start(&reader_config(
        r#"idle_timeout = "10s"
max_session = "1s""#,
    ))
    .await;
    let c = connect(s.tcp("l")).await;
    let (mut r, mut w) = c.into_split();
    let trickle = tokio::spawn(async move {
        // One byte every 50ms (always well within the idle timeout) until the sensor hangs up.
        for _ in 0..(WAIT.as_millis() / 50) {
            if w.write_all(b".").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut got = Vec::new();
    let res = tokio::time::timeout(WAIT, r.read_to_end(&mut got)).await;
    assert!(res.is_ok(), "sensor did not end the trickling session");
    assert!(got.starts_with(b"220 ready\r\n"));
    trickle.abort();

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        end_of(&sessions[0]),
        (EndReason::Limit, Some("max_session".to_string()))
    );
    let input = input_of(&sessions[0]);
    assert!(!input.is_empty() && input.iter().all(|&b| b == b'.'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_session_ends_a_flooding_client_whose_data_is_always_ready() {
    // The session deadline must hold even when every read finds data already waiting: the
    // client pushes 64MiB, then closes its side. The sensor reads 64 bytes at a time through
    // a small event queue, so it cannot get through that in 500ms; had it kept reading past
    // the deadline, it would reach the client's close and record peer_closed.
    let s = start(
        r#"
[limits]
idle_timeout = "10s"
max_session = "500ms"
max_read = 64
max_bytes_in = "1GiB"

[storage]
queue = 1024
synchronous = "normal"

[personas.sink]
type = "scripted"
banner = "220 ready\r\n"
loop = 0

[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "sink"
"#,
    )
    .await;
    let c = connect(s.tcp("l")).await;
    let (mut r, mut w) = c.into_split();
    let flood = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..1024 {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, r.read_to_end(&mut got)).await;
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("flooding client hung")
        .unwrap();
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        end_of(&sessions[0]),
        (EndReason::Limit, Some("max_session".to_string()))
    );
    assert!(input_of(&sessions[0]).len() < 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_in_records_exactly_the_budget_then_ends() {
    let s = start(&reader_config("max_bytes_in = 100")).await;
    let mut c = connect(s.tcp("l")).await;
    read_until(&mut c, b"\r\n").await;
    let data: Vec<u8> = (0..250u32).map(|i| b'a' + (i % 26) as u8).collect();
    send(&mut c, &data).await;
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        end_of(&sessions[0]),
        (EndReason::Limit, Some("max_bytes_in".to_string()))
    );
    assert_eq!(input_of(&sessions[0]), &data[..100]);
    match &closed_of(&sessions[0]).kind {
        EventKind::Closed { bytes_in, .. } => assert_eq!(*bytes_in, 100),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_read_caps_every_recorded_read() {
    let s = start(&reader_config(r#"max_read = 16"#)).await;
    let mut c = connect(s.tcp("l")).await;
    read_until(&mut c, b"\r\n").await;
    let data: Vec<u8> = (0..100u8).collect();
    send(&mut c, &data).await;
    c.shutdown().await.unwrap();
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sizes = input_sizes(&sessions[0]);
    assert!(sizes.len() >= 100 / 16, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0 && n <= 16), "{sizes:?}");
    assert_eq!(input_of(&sessions[0]), data, "every byte kept, in order");
    assert_eq!(end_of(&sessions[0]).0, EndReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_recorded_exactly() {
    let s = start(&reader_config("")).await;
    let mut c = connect(s.tcp("l")).await;
    read_until(&mut c, b"\r\n").await;
    let mut garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    garbage.extend_from_slice(b"\xff\xfb\x01\x00\xc3\x28\r\n\x1b[2J");
    send(&mut c, &garbage).await;
    c.shutdown().await.unwrap();
    read_to_close(&mut c).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(input_of(&sessions[0]), garbage);
    assert_eq!(end_of(&sessions[0]).0, EndReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_megabytes_stops_at_max_bytes_in() {
    let s = start(&reader_config(r#"max_bytes_in = "1MiB""#)).await;
    let c = connect(s.tcp("l")).await;
    let (mut r, mut w) = c.into_split();
    let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    let sent_all = data.clone();
    let flood = tokio::spawn(async move {
        // The sensor hangs up mid-flood: the write fails (reset / broken pipe) or completes
        // into the kernel buffers; either is fine, it must not hang.
        let _ = w.write_all(&sent_all).await;
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, r.read_to_end(&mut got)).await;
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("flooding client hung")
        .unwrap();

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        end_of(&sessions[0]),
        (EndReason::Limit, Some("max_bytes_in".to_string()))
    );
    let input = input_of(&sessions[0]);
    assert_eq!(input.len(), 1 << 20);
    assert!(input == data[..1 << 20], "recorded bytes differ from sent");
    assert!(input_sizes(&sessions[0]).iter().all(|&n| n <= 64 << 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_client_still_gets_replies_then_session_ends() {
    let s = start(
        r#"
[personas.smtp]
type = "scripted"
banner = "220 mx\r\n"
loop = 0
[[personas.smtp.rules]]
name = "EHLO"
prefix = "EHLO"
reply = "250 mx Hello\r\n"

[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "smtp"
"#,
    )
    .await;
    let mut c = connect(s.tcp("l")).await;
    send(&mut c, b"EHLO x\r\n").await;
    c.shutdown().await.unwrap(); // our write side is closed; we keep reading
    let got = read_to_close(&mut c).await;
    assert_eq!(got, b"220 mx\r\n250 mx Hello\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(input_of(&sessions[0]), b"EHLO x\r\n");
    assert_eq!(output_of(&sessions[0]), got);
    assert_eq!(end_of(&sessions[0]).0, EndReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_hang_a_large_write() {
    // 8MiB of banner into a client with a tiny receive window: the write cannot finish, so
    // it must end at the idle timeout; what did get out is recorded.
    let dir = tempfile::tempdir().unwrap();
    let banner: Vec<u8> = (0..(8u32 << 20)).map(|i| b'A' + (i % 26) as u8).collect();
    std::fs::write(dir.path().join("big.txt"), &banner).unwrap();
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
"#,
        dir.path(),
    )
    .await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut c = tokio::time::timeout(WAIT, sock.connect(s.tcp("l")))
        .await
        .unwrap()
        .unwrap();
    s.wait_closed(1).await;
    // Now drain what the sensor managed to hand to the kernel before giving up.
    let got = read_to_close(&mut c).await;
    assert!(got.len() < banner.len(), "the whole banner went out");
    assert!(
        got == banner[..got.len()],
        "peer got something else than the banner"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(end_of(&sessions[0]), (EndReason::IdleTimeout, None));
    let out = output_of(&sessions[0]);
    assert_eq!(out.len(), got.len(), "recorded output length");
    assert!(out == got, "recorded output is what the peer got");
    match &closed_of(&sessions[0]).kind {
        EventKind::Closed { bytes_out, .. } => assert_eq!(*bytes_out, got.len() as u64),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hostile_peers_at_once_all_end_in_a_recorded_close() {
    let s = start(&reader_config(
        r#"idle_timeout = "500ms"
max_bytes_in = "256KiB""#,
    ))
    .await;
    let addr = s.tcp("l");
    let mut tasks = Vec::new();
    for i in 0..36u32 {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            match i % 6 {
                5 => {
                    // Abortive close: the sensor sees a reset.
                    let _ = c.write_all(b"HEAD / HTTP/1.0\r\n").await;
                    let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
                    return;
                }
                0 => {} // idle, never closes
                1 => {
                    let _ = c.write_all(&vec![0xffu8; 1 << 20]).await; // flood
                }
                2 => {
                    let _ = c.write_all(b"\x00\x01garbage\xfe").await;
                    let _ = c.shutdown().await; // half-open
                }
                3 => return, // connect and vanish
                _ => {
                    let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
                }
            }
            let _ = read_to_close(&mut c).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.wait_closed(36).await;
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 36);
    assert_eq!(done.report.pipeline.written, done.report.pipeline.sent);
    for sess in &sessions {
        let (reason, limit) = end_of(sess);
        assert!(
            matches!(
                (reason, limit.as_deref()),
                (EndReason::IdleTimeout, None)
                    | (EndReason::PeerClosed, None)
                    | (EndReason::Limit, Some("max_bytes_in"))
            ),
            "unexpected end {reason:?} {limit:?} (never internal: no panic)"
        );
    }
}
