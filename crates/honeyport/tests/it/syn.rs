//! The client's TCP SYN (`tcp.syn`, from Linux's `TCP_SAVED_SYN`): the test's own client
//! socket, with a TTL (IPv6: hop limit) and an MSS the test sets before connecting over
//! loopback, must be recorded with exactly those, Linux's option order, no Mirai marker, and
//! its signature on the summary row and in `honeyport events --session`. `[classify] syn =
//! false` records none.
//!
//! The Mirai marker (a SYN whose sequence number is its destination IPv4 address) cannot be
//! sent without raw sockets, and a real one is a half-open probe that never becomes a session
//! anyway: it is covered by the unit tests of `listener::syn::parse`.

use honeyport::store::Reader as _;
use std::net::SocketAddr;
use std::process::Command;

use crate::common::*;
use honeyport_event::{Event, EventKind};
use socket2::{Domain, Protocol, Socket, Type};

const PERSONA: &str = r#"
[limits]
shutdown_grace = "100ms"

[personas.p]
type = "scripted"
banner = "220 syn\r\n"
reply = "ok\n"
loop = 1
"#;

/// The options Linux puts on a SYN, in order (with the default sysctls: SACK, timestamps and
/// window scaling on): MSS, SACK permitted, timestamps, NOP, window scale.
const LINUX_OPTIONS: &str = "mss,sok,ts,nop,ws";

/// What the test sets on its client socket.
const TTL: u8 = 99;
const MSS: u16 = 1200;

const MIRAI: &str = honeyport::listener::syn::MIRAI_RULE;

/// Connects from a socket whose TTL or hop limit and MSS the test chose, then has the
/// short dialogue (banner, a line, the reply, close). Returns the client's local address.
async fn talk(addr: SocketAddr) -> SocketAddr {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    if addr.is_ipv4() {
        s.set_ttl_v4(TTL.into()).unwrap();
    } else {
        s.set_unicast_hops_v6(TTL.into()).unwrap();
    }
    s.set_tcp_mss(MSS.into()).unwrap();
    s.connect_timeout(&addr.into(), WAIT).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut c = tokio::net::TcpStream::from_std(s.into()).unwrap();
    read_until(&mut c, b"220 syn\r\n").await;
    send(&mut c, b"hi\n").await;
    assert_eq!(read_to_close(&mut c).await, b"ok\n");
    c.local_addr().unwrap()
}

/// The fields of a session's one `tcp.syn`, which must come right after `session.connect`.
struct Seen {
    ttl: u8,
    ittl: u8,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    options: String,
    df: bool,
    signature: String,
    mirai: bool,
}

fn syn_of(s: &[Event]) -> Seen {
    assert_eq!(count_kind(s, "tcp.syn"), 1, "{s:#?}");
    match &s[1].kind {
        EventKind::TcpSyn {
            ttl,
            ittl,
            window,
            mss,
            wscale,
            options,
            df,
            signature,
            mirai,
        } => Seen {
            ttl: *ttl,
            ittl: *ittl,
            window: *window,
            mss: *mss,
            wscale: *wscale,
            options: options.clone(),
            df: *df,
            signature: signature.clone(),
            mirai: *mirai,
        },
        other => panic!("tcp.syn is not right after session.connect: {other:?}"),
    }
}

/// Runs one session to `addr` and checks its `tcp.syn`, summary row and CLI summary line.
/// Returns the signature.
async fn check(toml: &str, name: &str) -> String {
    let s = start(toml).await;
    let addr = s.tcp(name);
    let local = talk(addr).await;
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    assert_eq!(
        (sess[0].src_ip, sess[0].src_port),
        (local.ip(), local.port())
    );
    let syn = syn_of(sess);
    let v4 = addr.is_ipv4();
    assert_eq!(
        (syn.ttl, syn.ittl),
        (TTL, 128),
        "the TTL the client set; 99 -> 128"
    );
    assert_eq!(syn.mss, Some(MSS), "the MSS the client set");
    assert_eq!(syn.options, LINUX_OPTIONS);
    assert!(syn.wscale.is_some());
    assert_eq!(syn.df, v4, "Linux sets DF on TCP over IPv4; IPv6 has no DF");
    assert!(!syn.mirai);
    let prefix = format!(
        "{}:128:0:{MSS}:{},{}:{LINUX_OPTIONS}:",
        if v4 { 4 } else { 6 },
        syn.window,
        syn.wscale.unwrap()
    );
    assert!(
        syn.signature.starts_with(&prefix),
        "{} vs {prefix}",
        syn.signature
    );
    assert!(
        syn.signature.ends_with(":0"),
        "a SYN without data: {}",
        syn.signature
    );
    assert!(!rules_of(sess).contains(&MIRAI.to_string()), "no mirai tag");

    let sid = &sess[0].session.0;
    let row = done.store.summary(sid).unwrap().unwrap();
    assert_eq!(row.syn.as_deref(), Some(syn.signature.as_str()));
    assert!(!row.tags.contains(&MIRAI.to_string()), "{:?}", row.tags);

    // `honeyport events --session ID`: the summary line, then the events.
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(done.data_dir())
        .args(["events", "--session", sid])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head = text.lines().next().unwrap_or_default();
    assert!(head.contains(&format!(" syn={} ", syn.signature)), "{head}");
    assert!(
        text.lines()
            .any(|l| l.contains("tcp.syn") && l.ends_with(&syn.signature)),
        "{text}"
    );
    println!("{name}: {}", syn.signature);
    syn.signature
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_syn_has_the_clients_ttl_mss_and_option_order() {
    let sig = check(
        &format!(
            r#"{PERSONA}
[[listeners]]
name = "v4"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#
        ),
        "v4",
    )
    .await;
    assert!(sig.contains(":df,id+:") || sig.contains(":df:"), "{sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_syn_has_the_clients_hop_limit_mss_and_option_order() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        println!("skipped: cannot bind [::1]:0 on this machine ({e})");
        return;
    }
    check(
        &format!(
            r#"{PERSONA}
[[listeners]]
name = "v6"
ports = 0
bind = ["::1"]
persona = "p"
"#
        ),
        "v6",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_syn_false_records_no_syn() {
    let s = start(&format!(
        r#"{PERSONA}
[classify]
syn = false

[[listeners]]
name = "v4"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#
    ))
    .await;
    talk(s.tcp("v4")).await;
    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(count_kind(&sessions[0], "tcp.syn"), 0);
    let row = done
        .store
        .summary(&sessions[0][0].session.0)
        .unwrap()
        .unwrap();
    assert_eq!(row.syn, None);
}
