//! Addresses and ports: IPv6, one port number on both families, port lists and ranges, one
//! persona behind many ports, the real destination on a wildcard bind, and allow-lists.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind, Transport};
use tokio::net::UdpSocket;

const PERSONA: &str = r#"
[limits]
shutdown_grace = "100ms"

[personas.p]
type = "scripted"
banner = "220 net\r\n"
reply = "ok\n"
loop = 1
"#;

/// A short TCP dialogue: banner, one line, reply, close. Returns the client's local address.
async fn talk_tcp(addr: SocketAddr) -> SocketAddr {
    let mut c = connect(addr).await;
    read_until(&mut c, b"220 net\r\n").await;
    send(&mut c, b"hi\n").await;
    assert_eq!(read_to_close(&mut c).await, b"ok\n");
    c.local_addr().unwrap()
}

/// One datagram and its reply. Returns the client's local address.
async fn talk_udp(addr: SocketAddr) -> SocketAddr {
    let bind: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let c = UdpSocket::bind(bind).await.unwrap();
    c.send_to(b"hi!\n", addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, c.recv_from(&mut buf))
        .await
        .expect("no udp reply")
        .unwrap();
    assert_eq!(&buf[..n], b"ok\n");
    assert_eq!(from, addr);
    c.local_addr().unwrap()
}

/// The session whose client used `local`.
fn session_from(sessions: &[Vec<Event>], local: SocketAddr) -> &Vec<Event> {
    sessions
        .iter()
        .find(|s| s[0].src_ip == local.ip() && s[0].src_port == local.port())
        .unwrap_or_else(|| panic!("no session from {local}: {sessions:#?}"))
}

fn listener_of(s: &[Event]) -> String {
    match &s[0].kind {
        EventKind::Connect { listener, .. } => listener.clone(),
        other => panic!("first event is not a connect: {other:?}"),
    }
}

fn persona_of(s: &[Event]) -> String {
    match &s[0].kind {
        EventKind::Connect { persona, .. } => persona.clone(),
        other => panic!("first event is not a connect: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_is_served_and_recorded() {
    let s = start(&format!(
        r#"{PERSONA}
[[listeners]]
name = "v6"
ports = 0
bind = ["::1"]
persona = "p"
"#
    ))
    .await;
    let addr = s.tcp("v6");
    assert_eq!(addr.ip().to_string(), "::1");
    let local = talk_tcp(addr).await;
    assert!(local.is_ipv6());

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = session_from(&sessions, local);
    for e in sess {
        assert_eq!(e.src_ip.to_string(), "::1");
        assert_eq!(e.dst_ip.to_string(), "::1");
        assert_eq!(e.dst_port, addr.port());
    }
    assert_eq!(input_of(sess), b"hi\n");
    assert_eq!(end_of(sess), (EndReason::Persona, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_and_ipv6_share_one_port_number_on_tcp_and_udp() {
    let (s, port) = start_on_free_ports(1, true, |p| {
        format!(
            r#"{PERSONA}
[[listeners]]
name = "both"
ports = {p}
transport = ["tcp", "udp"]
bind = ["127.0.0.1", "::1"]
persona = "p"
"#
        )
    })
    .await;
    let mut bound: Vec<(Transport, SocketAddr)> = s
        .running
        .bound
        .iter()
        .map(|b| (b.transport, b.addr))
        .collect();
    bound.sort_by_key(|(t, a)| (t.as_str(), *a));
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let mut want = vec![
        (Transport::Tcp, v4),
        (Transport::Tcp, v6),
        (Transport::Udp, v4),
        (Transport::Udp, v6),
    ];
    want.sort_by_key(|(t, a)| (t.as_str(), *a));
    assert_eq!(bound, want);

    let t4 = talk_tcp(v4).await;
    let t6 = talk_tcp(v6).await;
    let u4 = talk_udp(v4).await;
    let u6 = talk_udp(v6).await;
    s.wait_closed(4).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 4);
    for (local, server, transport) in [
        (t4, v4, Transport::Tcp),
        (t6, v6, Transport::Tcp),
        (u4, v4, Transport::Udp),
        (u6, v6, Transport::Udp),
    ] {
        let sess = session_from(&sessions, local);
        assert_eq!(sess[0].transport, transport);
        assert_eq!(sess[0].dst_ip, server.ip());
        assert_eq!(sess[0].dst_port, port);
        assert_eq!(listener_of(sess), "both");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_list_with_a_range_binds_exactly_those_ports_with_one_persona() {
    // Ports base, base+2, base+3, base+4: "P1,P2-P3"; base+1 is left out.
    let (s, base) = start_on_free_ports(5, false, |b| {
        format!(
            r#"{PERSONA}
[[listeners]]
name = "many"
ports = "{},{}-{}"
bind = ["127.0.0.1"]
persona = "p"
"#,
            b,
            b + 2,
            b + 4
        )
    })
    .await;
    let mut ports: Vec<u16> = s.running.bound.iter().map(|b| b.addr.port()).collect();
    ports.sort();
    assert_eq!(ports, vec![base, base + 2, base + 3, base + 4]);
    assert!(s
        .running
        .bound
        .iter()
        .all(|b| b.listener == "many" && b.persona == "p" && b.transport == Transport::Tcp));

    let mut locals = Vec::new();
    for &p in &ports {
        locals.push((p, talk_tcp(format!("127.0.0.1:{p}").parse().unwrap()).await));
    }
    s.wait_closed(4).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 4);
    for (p, local) in locals {
        let sess = session_from(&sessions, local);
        assert!(sess.iter().all(|e| e.dst_port == p));
        assert_eq!(listener_of(sess), "many");
        assert_eq!(persona_of(sess), "p");
        assert_eq!(output_of(sess), b"220 net\r\nok\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_persona_serves_several_listeners_and_an_override_changes_only_its_own() {
    let s = start(&format!(
        r#"{PERSONA}
[[listeners]]
name = "a"
ports = 0
bind = ["127.0.0.1"]
persona = "p"

[[listeners]]
name = "b"
ports = 0
bind = ["127.0.0.1"]
persona = "p"

[[listeners]]
name = "c"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
[listeners.override]
banner = "220 other\r\n"
"#
    ))
    .await;
    let la = talk_tcp(s.tcp("a")).await;
    let lb = talk_tcp(s.tcp("b")).await;
    let mut c = connect(s.tcp("c")).await;
    assert_eq!(read_until(&mut c, b"\r\n").await, b"220 other\r\n");
    send(&mut c, b"x\n").await;
    assert_eq!(read_to_close(&mut c).await, b"ok\n");
    let la2 = talk_tcp(s.tcp("a")).await;
    s.wait_closed(4).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 4);
    for (local, name) in [(la, "a"), (lb, "b"), (la2, "a")] {
        let sess = session_from(&sessions, local);
        assert_eq!(listener_of(sess), name);
        assert_eq!(persona_of(sess), "p");
        assert_eq!(output_of(sess), b"220 net\r\nok\n");
    }
    let sc = session_from(&sessions, c.local_addr().unwrap());
    assert_eq!(listener_of(sc), "c");
    assert_eq!(output_of(sc), b"220 other\r\nok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_wildcard_bind_tcp_sessions_record_the_real_local_address() {
    let s = start(&format!(
        r#"{PERSONA}
[[listeners]]
name = "any"
ports = 0
bind = ["0.0.0.0", "::"]
persona = "p"
"#
    ))
    .await;
    let v4 = s
        .running
        .bound
        .iter()
        .find(|b| b.addr.is_ipv4())
        .unwrap()
        .addr;
    let v6 = s
        .running
        .bound
        .iter()
        .find(|b| b.addr.is_ipv6())
        .unwrap()
        .addr;
    assert!(v4.ip().is_unspecified() && v6.ip().is_unspecified());
    let mut cases = Vec::new();
    for (dst, port) in [
        ("127.0.0.3", v4.port()),
        ("127.0.0.1", v4.port()),
        ("::1", v6.port()),
    ] {
        let ip: IpAddr = dst.parse().unwrap();
        let local = talk_tcp(SocketAddr::new(ip, port)).await;
        cases.push((local, ip, port));
    }
    s.wait_closed(3).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    for (local, ip, port) in cases {
        let sess = session_from(&sessions, local);
        for e in sess {
            assert!(!e.dst_ip.is_unspecified(), "wildcard recorded: {e:?}");
            assert_eq!(e.dst_ip, ip, "{e:?}");
            assert_eq!(e.dst_port, port);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_serves_listed_sources_and_records_the_others_as_not_allowed() {
    let s = start(&format!(
        r#"{PERSONA}
[[listeners]]
name = "guarded"
ports = 0
transport = ["tcp", "udp"]
bind = ["127.0.0.1"]
persona = "p"
allow = ["127.0.0.2/32"]
"#
    ))
    .await;
    let tcp = s.tcp("guarded");
    let udp = s.udp("guarded");

    // From 127.0.0.1 (not listed): nothing, and the connection is closed.
    let mut denied = connect(tcp).await;
    let _ = tokio::io::AsyncWriteExt::write_all(&mut denied, b"hi\n").await;
    assert!(read_to_close(&mut denied).await.is_empty());
    let denied_u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    denied_u.send_to(b"hi!\n", udp).await.unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), denied_u.recv_from(&mut buf))
            .await
            .is_err(),
        "a source not on the allow-list got a UDP reply"
    );

    // From 127.0.0.2 (listed): served.
    let src: IpAddr = "127.0.0.2".parse().unwrap();
    let mut allowed = connect_from(src, tcp).await;
    read_until(&mut allowed, b"220 net\r\n").await;
    send(&mut allowed, b"hi\n").await;
    assert_eq!(read_to_close(&mut allowed).await, b"ok\n");
    let allowed_u = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    allowed_u.send_to(b"hi!\n", udp).await.unwrap();
    let (n, _) = tokio::time::timeout(WAIT, allowed_u.recv_from(&mut buf))
        .await
        .expect("allowed source got no UDP reply")
        .unwrap();
    assert_eq!(&buf[..n], b"ok\n");
    s.wait_closed(4).await;

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 4);
    for local in [denied.local_addr().unwrap(), denied_u.local_addr().unwrap()] {
        let sess = session_from(&sessions, local);
        assert_eq!(end_of(sess), (EndReason::NotAllowed, None));
        assert_eq!(sess[0].src_ip.to_string(), "127.0.0.1");
        assert!(output_of(sess).is_empty());
    }
    // TCP: closed unread. UDP: the datagram arrived, so it is recorded (and not answered).
    let tcp_denied = session_from(&sessions, denied.local_addr().unwrap());
    assert_eq!(
        tcp_denied.len(),
        3,
        "only connect, its SYN fingerprint and closed: {tcp_denied:#?}"
    );
    assert!(matches!(
        tcp_denied[1].kind,
        honeyport_event::EventKind::TcpSyn { .. }
    ));
    let udp_denied = session_from(&sessions, denied_u.local_addr().unwrap());
    assert_eq!(input_of(udp_denied), b"hi!\n");
    assert_eq!(
        udp_denied.len(),
        3,
        "connect, input, closed: {udp_denied:#?}"
    );
    for local in [
        allowed.local_addr().unwrap(),
        allowed_u.local_addr().unwrap(),
    ] {
        let sess = session_from(&sessions, local);
        assert_eq!(sess[0].src_ip.to_string(), "127.0.0.2");
        assert_eq!(end_of(sess), (EndReason::Persona, None));
        assert!(output_of(sess).ends_with(b"ok\n"));
    }
}
