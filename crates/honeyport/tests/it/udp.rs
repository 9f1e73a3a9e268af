//! UDP flows: datagrams from one client socket form one session until the persona is done;
//! replies are capped to the triggering datagram (no amplification) and rate-limited per
//! source; flows idle out; the recorded destination is the real one on a wildcard bind.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind, Transport};
use tokio::net::UdpSocket;

const STATS_REPLY: &str = "STAT pid 14868\r\nSTAT uptime 175931\r\nEND\r\n";

fn config(limits: &str, persona: &str, bind: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[personas.p]
type = "scripted"
{persona}

[[listeners]]
name = "u"
ports = 0
transport = "udp"
bind = [{bind}]
persona = "p"
"#
    )
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Receives one datagram (hang guard: WAIT).
async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("no reply datagram")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

/// Asserts that no datagram arrives within `d`.
async fn assert_silent(sock: &UdpSocket, d: Duration) {
    let mut buf = [0u8; 2048];
    if let Ok(Ok((n, _))) = tokio::time::timeout(d, sock.recv_from(&mut buf)).await {
        panic!(
            "unexpected datagram {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

fn outputs(s: &[Event]) -> Vec<(Vec<u8>, bool)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output {
                data, truncated, ..
            } => Some((data.0.clone(), *truncated)),
            _ => None,
        })
        .collect()
}

fn suppressed(s: &[Event]) -> Vec<(u64, String)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::OutputSuppressed { len, reason } => Some((*len, reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_from_one_client_socket_are_one_session_until_the_persona_loop_ends() {
    let s = start(&config(
        r#"shutdown_grace = "100ms""#,
        r#"loop = 3
reply = "ACK""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let a = client().await;
    let b = client().await;
    // A's three datagrams (interleaved with B's) are A's first session; B has its own.
    for i in 1..=3 {
        a.send_to(format!("a-ping-{i}").as_bytes(), addr)
            .await
            .unwrap();
        assert_eq!(recv(&a).await.0, b"ACK");
        if i < 3 {
            b.send_to(format!("b-ping-{i}").as_bytes(), addr)
                .await
                .unwrap();
            assert_eq!(recv(&b).await.0, b"ACK");
        }
    }
    // The persona's loop of 3 is done: A's next datagram starts a new session.
    s.wait_closed(1).await;
    a.send_to(b"a-ping-4", addr).await.unwrap();
    assert_eq!(recv(&a).await.0, b"ACK");
    s.wait_sessions(3).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    let a_port = a.local_addr().unwrap().port();
    let a_sessions: Vec<&Vec<Event>> = sessions
        .iter()
        .filter(|s| s[0].src_port == a_port)
        .collect();
    assert_eq!(a_sessions.len(), 2);
    assert_eq!(input_of(a_sessions[0]), b"a-ping-1a-ping-2a-ping-3");
    assert_eq!(input_sizes(a_sessions[0]), vec![8, 8, 8]);
    assert_eq!(end_of(a_sessions[0]), (EndReason::Persona, None));
    assert_eq!(input_of(a_sessions[1]), b"a-ping-4");
    assert_eq!(end_of(a_sessions[1]), (EndReason::Shutdown, None));
    let b_session = sessions.iter().find(|s| s[0].src_port != a_port).unwrap();
    assert_eq!(input_of(b_session), b"b-ping-1b-ping-2");
    assert_eq!(end_of(b_session), (EndReason::Shutdown, None));
    for sess in &sessions {
        assert_eq!(sess[0].transport, Transport::Udp);
        assert!(matches!(
            &sess[0].kind,
            EventKind::Connect { tls: false, .. }
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_datagram_is_recorded_even_when_sent_back_to_back() {
    // loop = 1: one datagram per session. Datagrams that arrive while a session is finishing
    // must not vanish with it.
    let s = start(&config(
        r#"shutdown_grace = "100ms"
udp_replies_per_second = 1000
udp_reply_burst = 1000"#,
        r#"reply = "ACK""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let c = client().await;
    let n = 20;
    for i in 0..n {
        c.send_to(format!("burst-{i:02}").as_bytes(), addr)
            .await
            .unwrap();
    }
    let mut replies = 0;
    while replies < n {
        assert_eq!(recv(&c).await.0, b"ACK");
        replies += 1;
    }
    s.wait_closed(n as i64).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    let mut got: Vec<Vec<u8>> = sessions.iter().map(|s| input_of(s)).collect();
    got.sort();
    let want: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("burst-{i:02}").into_bytes())
        .collect();
    assert_eq!(got, want, "one session per datagram, none lost");
    for sess in &sessions {
        assert_eq!(end_of(sess), (EndReason::Persona, None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_cut_to_the_triggering_datagram_size() {
    let s = start(&config(
        "",
        &format!(
            r#"loop = 0
[[personas.p.rules]]
name = "stats"
regex = "stats"
reply = "{}"
"#,
            STATS_REPLY.escape_default()
        ),
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let c = client().await;
    c.send_to(b"stats", addr).await.unwrap();
    let (reply, _) = recv(&c).await;
    assert_eq!(reply, b"STAT ", "reply larger than the request");
    // A request as large as the reply gets all of it.
    let big = format!("stats{}", " ".repeat(STATS_REPLY.len()));
    c.send_to(big.as_bytes(), addr).await.unwrap();
    assert_eq!(recv(&c).await.0, STATS_REPLY.as_bytes());

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        outputs(&sessions[0]),
        vec![
            (b"STAT ".to_vec(), true),
            (STATS_REPLY.as_bytes().to_vec(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_allow_amplification_sends_the_whole_reply() {
    let s = start(&config(
        "udp_allow_amplification = true",
        &format!(
            r#"[[personas.p.rules]]
name = "stats"
regex = "stats"
reply = "{}"
"#,
            STATS_REPLY.escape_default()
        ),
        r#""127.0.0.1""#,
    ))
    .await;
    let c = client().await;
    c.send_to(b"stats", s.udp("u")).await.unwrap();
    assert_eq!(recv(&c).await.0, STATS_REPLY.as_bytes());
    s.wait_closed(1).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(
        outputs(&sessions[0]),
        vec![(STATS_REPLY.as_bytes().to_vec(), false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_beyond_the_per_source_rate_are_suppressed_and_recorded() {
    // No refill, a burst of 2: two replies go out, the rest are recorded as suppressed.
    let s = start(&config(
        r#"udp_replies_per_second = 0
udp_reply_burst = 2
shutdown_grace = "100ms""#,
        r#"loop = 0
reply = "PONG""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let c = client().await;
    for i in 0..2 {
        c.send_to(format!("ping{i}").as_bytes(), addr)
            .await
            .unwrap();
        assert_eq!(recv(&c).await.0, b"PONG");
    }
    for i in 2..5 {
        c.send_to(format!("ping{i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    s.wait_count("events", "eventid = 'session.output_suppressed'", 3)
        .await;
    // The bucket is per source IP, not per flow: another socket of the same host is limited too.
    let c2 = client().await;
    c2.send_to(b"ping9", addr).await.unwrap();
    s.wait_count("events", "eventid = 'session.output_suppressed'", 4)
        .await;
    assert_silent(&c, Duration::from_millis(100)).await;
    assert_silent(&c2, Duration::from_millis(100)).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    let first = &sessions[0];
    assert_eq!(input_sizes(first).len(), 5);
    assert_eq!(outputs(first).len(), 2);
    assert_eq!(
        suppressed(first),
        vec![(4, "rate_limit".to_string()); 3],
        "each suppressed reply is recorded with its size and reason"
    );
    assert_eq!(
        suppressed(&sessions[1]),
        vec![(4, "rate_limit".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_flow_ends_with_idle_timeout() {
    let s = start(&config(
        r#"idle_timeout = "300ms""#,
        r#"loop = 0
reply = "ok""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let c = client().await;
    c.send_to(b"hello", s.udp("u")).await.unwrap();
    assert_eq!(recv(&c).await.0, b"ok");
    s.wait_closed(1).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(end_of(&sessions[0]), (EndReason::IdleTimeout, None));
    assert_eq!(input_of(&sessions[0]), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_larger_than_max_read_is_recorded_up_to_max_read() {
    let s = start(&config(
        r#"max_read = 16
udp_allow_amplification = true"#,
        r#"reply = "ok""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let c = client().await;
    let data: Vec<u8> = (0..100u8).collect();
    c.send_to(&data, s.udp("u")).await.unwrap();
    assert_eq!(recv(&c).await.0, b"ok");
    s.wait_closed(1).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(input_of(&sessions[0]), &data[..16]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_wildcard_bind_the_real_destination_is_recorded_and_replies_come_from_it() {
    let s = start(&config(
        r#"shutdown_grace = "100ms""#,
        r#"loop = 0
reply = "ACK""#,
        r#""0.0.0.0""#,
    ))
    .await;
    let port = s.udp("u").port();
    let c = client().await;
    let to2: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    c.send_to(b"to-two", to2).await.unwrap();
    let (reply, from) = recv(&c).await;
    assert_eq!(reply, b"ACK");
    assert_eq!(
        from, to2,
        "reply must come from the address the client sent to"
    );
    // The same client to another local address is another flow, answered from that address.
    let to1: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    c.send_to(b"to-one", to1).await.unwrap();
    let (_, from) = recv(&c).await;
    assert_eq!(from, to1);
    s.wait_sessions(2).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    let two = sessions
        .iter()
        .find(|s| input_of(s) == b"to-two")
        .expect("session for 127.0.0.2");
    let one = sessions
        .iter()
        .find(|s| input_of(s) == b"to-one")
        .expect("session for 127.0.0.1");
    for e in two.iter() {
        assert_eq!(e.dst_ip.to_string(), "127.0.0.2", "{e:?}");
        assert_eq!(e.dst_port, port);
    }
    for e in one.iter() {
        assert_eq!(e.dst_ip.to_string(), "127.0.0.1", "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_queued_when_the_grace_period_ends_are_recorded_not_lost() {
    // The persona takes 3s before each reply; the grace period is 100ms. The first datagram is
    // being handled when the sensor stops; the other four wait in the flow's queue.
    let s = start(&config(
        r#"shutdown_grace = "100ms""#,
        r#"loop = 0
delay = "3s"
reply = "late""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let c = client().await;
    for i in 0..5 {
        c.send_to(format!("queued-{i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    s.wait_count("events", "eventid = 'session.input'", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the rest reach the queue
    let done = s.stop().await;
    done.assert_paired();
    assert_eq!(done.report.pipeline.written, done.report.pipeline.sent);
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert_eq!(end_of(&sessions[0]), (EndReason::Shutdown, None));
    assert_eq!(
        input_of(&sessions[0]),
        b"queued-0queued-1queued-2queued-3queued-4"
    );
    match &closed_of(&sessions[0]).kind {
        EventKind::Closed { bytes_in, .. } => assert_eq!(*bytes_in, 40),
        _ => unreachable!(),
    }
    assert_silent(&c, Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_flow_without_a_free_slot_is_dropped_and_counted() {
    let s = start(&config(
        r#"max_connections = 1
shutdown_grace = "100ms""#,
        r#"loop = 0
reply = "ok""#,
        r#""127.0.0.1""#,
    ))
    .await;
    let addr = s.udp("u");
    let a = client().await;
    a.send_to(b"first", addr).await.unwrap();
    assert_eq!(recv(&a).await.0, b"ok");
    let b = client().await;
    b.send_to(b"second", addr).await.unwrap();
    assert_silent(&b, Duration::from_millis(200)).await;
    let done = s.stop().await;
    done.assert_paired();
    assert_eq!(done.sessions().len(), 1);
    assert_eq!(done.report.serve.udp_dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_ipv6_wildcard_bind_the_real_destination_is_recorded_and_replies_come_from_it() {
    let s = start(&config(
        r#"shutdown_grace = "100ms""#,
        r#"reply = "ACK""#,
        r#""::""#,
    ))
    .await;
    let port = s.udp("u").port();
    let c = UdpSocket::bind("[::1]:0").await.unwrap();
    let to: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    c.send_to(b"six!", to).await.unwrap();
    let (reply, from) = recv(&c).await;
    assert_eq!(reply, b"ACK");
    assert_eq!(from, to);
    s.wait_closed(1).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    for e in &sessions[0] {
        assert_eq!(e.dst_ip.to_string(), "::1", "{e:?}");
        assert_eq!(e.src_ip.to_string(), "::1");
    }
}
