//! The `scripted` persona, example by example from simple_listener.py's manual, over real
//! sockets against the real sensor. Every test checks what the client got and what the store
//! holds afterwards. Times are only ever checked as lower bounds.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use honeyport_event::{EndReason, Event, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::common::*;

// ---------------------------------------------------------------------------------------------
// Config and client helpers

/// A config with one TCP listener `l` on 127.0.0.1:0 serving persona `p`. `body` holds the
/// persona's fields first, then any `[[personas.p.rules]]` tables.
fn tcp_one(body: &str) -> String {
    format!(
        "[personas.p]\ntype = \"scripted\"\n{body}\n\n\
         [[listeners]]\nname = \"l\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n"
    )
}

/// A config with one UDP listener `u` on 127.0.0.1:0 serving persona `p`, after `limits`
/// (the body of a `[limits]` table).
fn udp_one(limits: &str, body: &str) -> String {
    format!(
        "[limits]\n{limits}\n\n[personas.p]\ntype = \"scripted\"\n{body}\n\n\
         [[listeners]]\nname = \"u\"\nports = 0\nbind = [\"127.0.0.1\"]\n\
         transport = \"udp\"\npersona = \"p\"\n"
    )
}

/// UDP limits that never get in a test's way: no reply cap, no rate limit to speak of.
const UDP_OPEN: &str =
    "udp_allow_amplification = true\nudp_replies_per_second = 1000.0\nudp_reply_burst = 1000";

/// The manual's two prefix rules.
const HELLO_BYE: &str = r#"
[[personas.p.rules]]
name = "HELLO"
prefix = "hello"
reply = "hi there!"

[[personas.p.rules]]
name = "BYE"
prefix = "bye"
reply = "see you later!"
"#;

/// The manual's fallback rule.
const FALLBACK: &str = r#"
[[personas.p.rules]]
name = "FALLBACK"
else = true
reply = "I did not understand that!"
"#;

/// Connects, sends `data`, and reads until the server closes.
async fn exchange(addr: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut c = connect(addr).await;
    send(&mut c, data).await;
    read_to_close(&mut c).await
}

/// Reads for up to `d`: `(closed, bytes)`, where `closed` says the server closed (or reset)
/// the connection within `d`. Only used where the answer does not depend on timing.
async fn closed_within(c: &mut TcpStream, d: Duration) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return (false, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Runs the real curl binary against the sensor; returns its exit status and stdout.
async fn curl(args: &[&str]) -> (ExitStatus, Vec<u8>) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("curl")
            // -q first: ignore any ~/.curlrc; never go through a proxy from the environment.
            .args(["-q", "--silent", "--show-error", "--noproxy", "*"])
            .args(["--max-time", "10"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl timed out")
    .expect("curl runs (is curl installed?)");
    if !out.status.success() {
        eprintln!("curl stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status, out.stdout)
}

fn url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/")
}

/// Splits an HTTP response into (head, body) at the first blank line.
fn http_split(resp: &[u8]) -> (String, Vec<u8>) {
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no blank line in {:?}", String::from_utf8_lossy(resp)));
    (
        String::from_utf8(resp[..at].to_vec()).expect("head is text"),
        resp[at + 4..].to_vec(),
    )
}

/// The value of header `name` in an HTTP head.
fn header<'h>(head: &'h str, name: &str) -> &'h str {
    head.split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} header in {head:?}"))
}

/// Asserts an RFC 2822 date as the persona writes it (`Thu, 26 Nov 2026 16:40:01 +0000`) and
/// that it lies between two instants taken around the exchange.
fn assert_rfc2822_between(s: &str, before: i64, after: i64) {
    let re =
        regex::Regex::new(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
            .unwrap();
    assert!(re.is_match(s), "not an RFC 2822 GMT date: {s:?}");
    let t = chrono::DateTime::parse_from_rfc2822(s)
        .unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
        .timestamp();
    assert!(
        (before..=after).contains(&t),
        "date {s:?} ({t}) is not between {before} and {after}"
    );
}

fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

/// (rule, action, match_len) of every `rule.match` event.
fn matches_of(s: &[Event]) -> Vec<(String, String, u64)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::RuleMatch {
                rule,
                action,
                match_len,
            } => Some((rule.clone(), action.clone(), *match_len)),
            _ => None,
        })
        .collect()
}

/// Every `session.input` payload, one per read.
fn inputs_of(s: &[Event]) -> Vec<Vec<u8>> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Input { data, .. } => Some(data.0.clone()),
            _ => None,
        })
        .collect()
}

/// Every `session.output` payload with its `truncated` flag, one per write (or datagram).
fn outputs_of(s: &[Event]) -> Vec<(Vec<u8>, bool)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Output {
                data, truncated, ..
            } => Some((data.0.clone(), *truncated)),
            _ => None,
        })
        .collect()
}

/// `(len, reason)` of every `session.output_suppressed` event.
fn suppressed_of(s: &[Event]) -> Vec<(u64, String)> {
    s.iter()
        .filter_map(|e| match &e.kind {
            EventKind::OutputSuppressed { len, reason } => Some((*len, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The listener named on a session's `session.connect`.
fn listener_of(s: &[Event]) -> String {
    match &s[0].kind {
        EventKind::Connect { listener, .. } => listener.clone(),
        other => panic!("first event is not session.connect: {other:?}"),
    }
}

/// A UDP client on 127.0.0.1 (its own source port, so its own flow).
async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("udp bind")
}

/// The next datagram, or panics after WAIT.
async fn udp_recv(c: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(WAIT, c.recv_from(&mut buf))
        .await
        .expect("no udp reply")
        .expect("udp recv");
    buf.truncate(n);
    buf
}

/// Whatever datagram arrives within `d` (for asserting that none does).
async fn udp_recv_for(c: &UdpSocket, d: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(d, c.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// How long to listen when asserting that *nothing* comes (never a pass/fail deadline for
/// something that should come).
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// TCP: reads, banner, reply

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_persona_reads_once_sends_nothing_and_closes() {
    let s = start(&tcp_one("")).await;
    let got = exchange(s.tcp("l"), b"anything at all\r\n").await;
    assert_eq!(got, b"");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    assert_eq!(input_of(sess), b"anything at all\r\n");
    assert_eq!(output_of(sess), b"");
    assert!(rules_of(sess).is_empty());
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_5_reads_five_times_then_closes() {
    let s = start(&tcp_one("loop = 5")).await;
    let mut c = connect(s.tcp("l")).await;
    // Nothing is ever sent back, so the client cannot tell when a read happened; it sends one
    // line at a time until the server closes (normally right after the 5th; later only if two
    // lines arrived in one read). The store says how many reads there were.
    let mut sent = Vec::new();
    let mut closed = false;
    for i in 1..=8 {
        let line = format!("line {i}\n");
        if c.write_all(line.as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        sent.extend_from_slice(line.as_bytes());
        let (gone, got) = closed_within(&mut c, Duration::from_millis(200)).await;
        assert_eq!(got, b"", "the persona sends nothing");
        if gone {
            assert!(i >= 5, "closed after only {i} lines, loop is 5");
            closed = true;
            break;
        }
    }
    if !closed {
        assert_eq!(read_to_close(&mut c).await, b"");
    }

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(
        inputs_of(sess).len(),
        5,
        "exactly 5 reads: {:?}",
        inputs_of(sess)
    );
    assert!(sent.starts_with(&input_of(sess)));
    assert_eq!(output_of(sess), b"");
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_0_keeps_reading_until_the_peer_leaves() {
    let s = start(&tcp_one("loop = 0\nreply = \"ok\\n\"")).await;
    let mut c = connect(s.tcp("l")).await;
    let mut seen = Vec::new();
    for i in 0..12 {
        send(&mut c, format!("cmd {i}\n").as_bytes()).await;
        seen.extend(read_until(&mut c, b"ok\n").await);
    }
    assert_eq!(seen, b"ok\n".repeat(12));
    c.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut c).await, b"");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(inputs_of(sess).len(), 12);
    assert_eq!(output_of(sess), seen);
    assert_eq!(end_of(sess).0, EndReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_comes_first_and_reply_follows_every_read() {
    let s = start(&tcp_one(
        "banner = \"Welcome\\r\\n\"\nreply = \"ok\\r\\n\"\nloop = 3",
    ))
    .await;
    let mut c = connect(s.tcp("l")).await;
    let mut seen = read_until(&mut c, b"Welcome\r\n").await;
    assert_eq!(seen, b"Welcome\r\n", "banner before any input");
    for cmd in ["one\r\n", "two\r\n"] {
        send(&mut c, cmd.as_bytes()).await;
        seen.extend(read_until(&mut c, b"ok\r\n").await);
    }
    send(&mut c, b"three\r\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(seen, b"Welcome\r\nok\r\nok\r\nok\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(output_of(sess), seen);
    assert_eq!(
        outputs_of(sess).len(),
        4,
        "banner and three replies, one write each"
    );
    assert_eq!(input_of(sess), b"one\r\ntwo\r\nthree\r\n");
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

// ---------------------------------------------------------------------------------------------
// TCP: match rules and actions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_rules_reply_to_hello_and_bye_and_stay_silent_otherwise() {
    let s = start(&tcp_one(HELLO_BYE)).await;
    let addr = s.tcp("l");
    assert_eq!(exchange(addr, b"hello\n").await, b"hi there!");
    assert_eq!(exchange(addr, b"bye bye\n").await, b"see you later!");
    // Case-sensitive, and anchored at the start.
    assert_eq!(exchange(addr, b"HELLO\n").await, b"");
    assert_eq!(exchange(addr, b"say hello\n").await, b"");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 4);
    assert_eq!(output_of(&sessions[0]), b"hi there!");
    assert_eq!(
        matches_of(&sessions[0]),
        vec![("HELLO".to_string(), "reply".to_string(), 5)]
    );
    assert_eq!(output_of(&sessions[1]), b"see you later!");
    assert_eq!(
        matches_of(&sessions[1]),
        vec![("BYE".to_string(), "reply".to_string(), 3)]
    );
    for (sess, input) in sessions[2..].iter().zip([&b"HELLO\n"[..], b"say hello\n"]) {
        assert_eq!(input_of(sess), input);
        assert_eq!(output_of(sess), b"", "no match: nothing sent");
        assert!(rules_of(sess).is_empty());
        assert_eq!(
            end_of(sess).0,
            EndReason::Persona,
            "closed after the single read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn else_rule_answers_only_when_nothing_else_matched() {
    let s = start(&tcp_one(&format!("loop = 3\n{HELLO_BYE}{FALLBACK}"))).await;
    let mut c = connect(s.tcp("l")).await;
    send(&mut c, b"what?\n").await;
    let mut seen = read_until(&mut c, b"I did not understand that!").await;
    send(&mut c, b"hello\n").await;
    seen.extend(read_until(&mut c, b"hi there!").await);
    send(&mut c, b"bye\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(seen, b"I did not understand that!hi there!see you later!");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(output_of(sess), seen);
    assert_eq!(
        matches_of(sess),
        vec![
            ("FALLBACK".to_string(), "reply".to_string(), 0),
            ("HELLO".to_string(), "reply".to_string(), 5),
            ("BYE".to_string(), "reply".to_string(), 3),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_action_closes_a_loop_of_10_without_a_reply() {
    let s = start(&tcp_one(&format!(
        "loop = 10\n{HELLO_BYE}\n\
         [[personas.p.rules]]\nname = \"EXIT\"\nprefix = \"exit\"\naction = \"disconnect\"\n\
         {FALLBACK}"
    )))
    .await;
    let mut c = connect(s.tcp("l")).await;
    send(&mut c, b"hello\n").await;
    let mut seen = read_until(&mut c, b"hi there!").await;
    send(&mut c, b"huh\n").await;
    seen.extend(read_until(&mut c, b"I did not understand that!").await);
    send(&mut c, b"exit\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(seen, b"hi there!I did not understand that!");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(output_of(sess), seen);
    assert_eq!(input_of(sess), b"hello\nhuh\nexit\n");
    assert_eq!(
        matches_of(sess),
        vec![
            ("HELLO".to_string(), "reply".to_string(), 5),
            ("FALLBACK".to_string(), "reply".to_string(), 0),
            ("EXIT".to_string(), "disconnect".to_string(), 4),
        ]
    );
    assert_eq!(
        end_of(sess).0,
        EndReason::Persona,
        "the rule closed it, 7 reads early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_disconnect_sends_closing_connection_then_closes() {
    let s = start(&tcp_one(&format!(
        "loop = 10\n{HELLO_BYE}\n\
         [[personas.p.rules]]\nname = \"EXIT\"\nprefix = \"exit\"\n\
         reply = \"closing connection!\"\naction = \"reply_disconnect\"\n\
         {FALLBACK}"
    )))
    .await;
    let mut c = connect(s.tcp("l")).await;
    send(&mut c, b"bye\n").await;
    let mut seen = read_until(&mut c, b"see you later!").await;
    send(&mut c, b"exit\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(seen, b"see you later!closing connection!");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(output_of(sess), seen);
    assert_eq!(
        matches_of(sess),
        vec![
            ("BYE".to_string(), "reply".to_string(), 3),
            ("EXIT".to_string(), "reply_disconnect".to_string(), 4),
        ]
    );
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_action_with_a_reply_sends_it_first_like_the_manual() {
    // The manual combines THP_REPLY with THP_ACTION: THP_DISCONNECT; `disconnect` with a
    // reply does the same as `reply_disconnect`, and records its own action name.
    let s = start(&tcp_one(
        r#"
loop = 10
[[personas.p.rules]]
name = "EXIT"
prefix = "exit"
reply = "closing connection!"
action = "disconnect"
"#,
    ))
    .await;
    assert_eq!(
        exchange(s.tcp("l"), b"exit\n").await,
        b"closing connection!"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(output_of(sess), b"closing connection!");
    assert_eq!(
        matches_of(sess),
        vec![("EXIT".to_string(), "disconnect".to_string(), 4)]
    );
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_rules_like_the_manual_match_whole_lines_with_else() {
    let s = start(&tcp_one(
        r#"
[[personas.p.rules]]
name = "HELLO"
regex = '^hello\n$'
reply = "hi there!"

[[personas.p.rules]]
name = "BYE"
regex = '^bye\n$'
reply = "see you later!"

[[personas.p.rules]]
name = "FALLBACK"
else = true
reply = "I did not understand that!"
"#,
    ))
    .await;
    let addr = s.tcp("l");
    assert_eq!(exchange(addr, b"hello\n").await, b"hi there!");
    assert_eq!(exchange(addr, b"bye\n").await, b"see you later!");
    assert_eq!(
        exchange(addr, b"hello there\n").await,
        b"I did not understand that!"
    );
    assert_eq!(
        exchange(addr, b"Hello\n").await,
        b"I did not understand that!",
        "case-sensitive"
    );

    let done = s.stop().await;
    done.assert_paired();
    let rules: Vec<Vec<String>> = done.sessions().iter().map(|s| rules_of(s)).collect();
    assert_eq!(
        rules,
        vec![
            vec!["HELLO"],
            vec!["BYE"],
            vec!["FALLBACK"],
            vec!["FALLBACK"]
        ]
    );
    let sessions = done.sessions();
    assert_eq!(
        matches_of(&sessions[0]),
        vec![("HELLO".to_string(), "reply".to_string(), 6)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_match_wins_and_prefix_and_regex_compete_on_length() {
    let s = start(&tcp_one(
        r#"
[[personas.p.rules]]
name = "short"
regex = '^EH'
reply = "short"

[[personas.p.rules]]
name = "long"
regex = '^EHLO [a-z]+'
reply = "long"

[[personas.p.rules]]
name = "prefix"
prefix = "EHLO"
reply = "prefix"
"#,
    ))
    .await;
    let addr = s.tcp("l");
    // "^EHLO [a-z]+" matches 11 bytes, the prefix 4, "^EH" 2.
    assert_eq!(exchange(addr, b"EHLO mxscan\r\n").await, b"long");
    // No lowercase name: the prefix (4) beats "^EH" (2).
    assert_eq!(exchange(addr, b"EHLO 1.2.3.4\r\n").await, b"prefix");
    assert_eq!(exchange(addr, b"EHL\r\n").await, b"short");

    let done = s.stop().await;
    done.assert_paired();
    let got: Vec<Vec<(String, String, u64)>> =
        done.sessions().iter().map(|s| matches_of(s)).collect();
    assert_eq!(
        got,
        vec![
            vec![("long".to_string(), "reply".to_string(), 11)],
            vec![("prefix".to_string(), "reply".to_string(), 4)],
            vec![("short".to_string(), "reply".to_string(), 2)],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_length_matches_are_picked_at_random_across_connections() {
    let s = start(&tcp_one(
        r#"
[[personas.p.rules]]
name = "A"
regex = '^EHLO'
reply = "250 A"

[[personas.p.rules]]
name = "B"
regex = 'O sc'
reply = "250 B"

[[personas.p.rules]]
name = "shorter"
regex = 'EH'
reply = "never"
"#,
    ))
    .await;
    let addr = s.tcp("l");
    // A and B both match 4 bytes: each connection gets one of them. The chance of seeing
    // only one winner in 200 tries is 2^-199.
    let mut seen = std::collections::BTreeSet::new();
    let mut tries = 0;
    while seen.len() < 2 && tries < 200 {
        let got = exchange(addr, b"EHLO scan\r\n").await;
        assert!(got == b"250 A" || got == b"250 B", "got {got:?}");
        seen.insert(got);
        tries += 1;
    }
    assert_eq!(seen.len(), 2, "only {seen:?} won in {tries} connections");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), tries);
    let mut winners = std::collections::BTreeSet::new();
    for sess in &sessions {
        let m = matches_of(sess);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].2, 4);
        let want: &[u8] = if m[0].0 == "A" { b"250 A" } else { b"250 B" };
        assert_eq!(
            output_of(sess),
            want,
            "the reply belongs to the recorded winner"
        );
        winners.insert(m[0].0.clone());
    }
    assert_eq!(
        winners,
        ["A".to_string(), "B".to_string()].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_runs_on_raw_bytes_that_are_not_utf8() {
    let s = start(&tcp_one(
        r#"
[[personas.p.rules]]
name = "IAC"
regex = '^\xff\xfb(\x01|\x03)'
reply = { hex = "ff fd 01" }

[[personas.p.rules]]
name = "HIGH"
regex = '[\x80-\xff]{3}'
reply = "high bytes"
"#,
    ))
    .await;
    let addr = s.tcp("l");
    assert_eq!(
        exchange(addr, &[0xff, 0xfb, 0x01, b'x']).await,
        [0xff, 0xfd, 0x01]
    );
    assert_eq!(exchange(addr, &[b'a', 0xc3, 0x28, 0xfe, 0x80]).await, b"");
    assert_eq!(
        exchange(addr, &[b'a', 0xfe, 0x80, 0xc3, b'z']).await,
        b"high bytes"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(
        input_of(&sessions[0]),
        [0xff, 0xfb, 0x01, b'x'],
        "stored raw"
    );
    assert_eq!(output_of(&sessions[0]), [0xff, 0xfd, 0x01]);
    assert_eq!(
        matches_of(&sessions[0]),
        vec![("IAC".to_string(), "reply".to_string(), 3)]
    );
    assert!(rules_of(&sessions[1]).is_empty());
    assert_eq!(rules_of(&sessions[2]), vec!["HIGH"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_dot_matches_newline() {
    let s = start(&tcp_one(
        r#"
[[personas.p.rules]]
name = "POST"
regex = '^POST .*\r\n\r\nuser=admin'
reply = "HTTP/1.0 302 Found\r\n\r\n"
"#,
    ))
    .await;
    let req = b"POST /login HTTP/1.0\r\nHost: x\r\nContent-Length: 10\r\n\r\nuser=admin";
    assert_eq!(
        exchange(s.tcp("l"), req).await,
        b"HTTP/1.0 302 Found\r\n\r\n"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(
        matches_of(sess),
        vec![("POST".to_string(), "reply".to_string(), req.len() as u64)]
    );
}

// ---------------------------------------------------------------------------------------------
// TCP: aliases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_aliases_are_filled_with_the_current_time() {
    let s = start(&tcp_one(
        r#"
banner = "now %TIME_GMT_EPOCH%\r\n"
[[personas.p.rules]]
name = "HELLO"
regex = '^hello\n$'
reply = { lines = ["hi there!", "It is %TIME_GMT_RFC2822%", "Epoch %TIME_GMT_EPOCH%"] }
"#,
    ))
    .await;
    let before = now_epoch();
    let mut c = connect(s.tcp("l")).await;
    let banner = read_until(&mut c, b"\r\n").await;
    send(&mut c, b"hello\n").await;
    let reply = read_to_close(&mut c).await;
    let after = now_epoch();

    let banner = String::from_utf8(banner).unwrap();
    let epoch: i64 = banner
        .strip_prefix("now ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("banner {banner:?}"));
    assert!((before..=after).contains(&epoch), "banner epoch {epoch}");

    let reply_s = String::from_utf8(reply.clone()).unwrap();
    let lines: Vec<&str> = reply_s.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "three CRLF-terminated lines: {reply_s:?}");
    assert_eq!(lines[0], "hi there!");
    assert_eq!(lines[3], "");
    assert_rfc2822_between(lines[1].strip_prefix("It is ").unwrap(), before, after);
    let epoch2: i64 = lines[2].strip_prefix("Epoch ").unwrap().parse().unwrap();
    assert!((before..=after).contains(&epoch2));

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    let mut all = banner.into_bytes();
    all.extend(reply);
    assert_eq!(
        output_of(sess),
        all,
        "the store holds the rendered bytes, not the template"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_is_the_length_of_the_body_sent() {
    let s = start(&tcp_one(
        r#"reply = { file = "scripted/httpwelcome.http" }"#,
    ))
    .await;
    let template = std::fs::read(fixtures().join("scripted/httpwelcome.http")).unwrap();
    let (_, want_body) = http_split(&template);
    assert_eq!(want_body.len(), 292, "fixture changed?");

    // Raw socket: exact bytes.
    let before = now_epoch();
    let got = exchange(s.tcp("l"), b"GET / HTTP/1.0\r\n\r\n").await;
    let (head, body) = http_split(&got);
    assert_eq!(body, want_body);
    assert_eq!(header(&head, "Content-Length"), "292");
    assert_rfc2822_between(header(&head, "Date"), before, now_epoch());
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(!head.contains('%'), "every alias replaced: {head}");

    // curl trusts Content-Length: a wrong one fails the transfer (exit 18) or cuts the body.
    let (status, out) = curl(&[&url(s.tcp("l"))]).await;
    assert!(status.success(), "curl: {status}");
    assert_eq!(out, want_body);

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(output_of(&sessions[0]), got);
    assert!(output_of(&sessions[1]).ends_with(&want_body));
    assert!(
        contains(&input_of(&sessions[1]), b"GET / HTTP/1.1\r\n"),
        "curl's request is stored"
    );
}

// ---------------------------------------------------------------------------------------------
// TCP: echo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_raw_upper_and_lower_answer_five_reads() {
    let s = start(
        r#"
[personas.raw]
type = "scripted"
loop = 5
echo = "raw"
[personas.upper]
type = "scripted"
loop = 5
echo = "upper"
[personas.lower]
type = "scripted"
loop = 5
echo = "lower"

[[listeners]]
name = "raw"
ports = 0
bind = ["127.0.0.1"]
persona = "raw"
[[listeners]]
name = "upper"
ports = 0
bind = ["127.0.0.1"]
persona = "upper"
[[listeners]]
name = "lower"
ports = 0
bind = ["127.0.0.1"]
persona = "lower"
"#,
    )
    .await;
    let lines: [&[u8]; 5] = [
        b"Hello World\n",
        b"MiXeD cAsE 123\n",
        b"\xffbin\xc3\xa9\n",
        b"ok\n",
        b"Last One\n",
    ];
    type Conv = fn(&[u8]) -> Vec<u8>;
    let conv: [(&str, Conv); 3] = [
        ("raw", |b| b.to_vec()),
        ("upper", |b| b.to_ascii_uppercase()),
        ("lower", |b| b.to_ascii_lowercase()),
    ];
    let mut expected = Vec::new();
    for (name, f) in conv {
        let mut c = connect(s.tcp(name)).await;
        let mut seen = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            send(&mut c, l).await;
            let want = f(l);
            if i < 4 {
                let got = read_until(&mut c, &want).await;
                assert_eq!(got, want, "{name}");
                seen.extend(got);
            } else {
                let got = read_to_close(&mut c).await;
                assert_eq!(got, want, "{name}: last echo, then close");
                seen.extend(got);
            }
        }
        expected.push((name, seen));
    }
    assert_eq!(
        expected[1].1,
        b"HELLO WORLD\nMIXED CASE 123\n\xffBIN\xc3\xa9\nOK\nLAST ONE\n"
    );
    assert_eq!(
        expected[2].1,
        b"hello world\nmixed case 123\n\xffbin\xc3\xa9\nok\nlast one\n"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    for (name, seen) in expected {
        let sess = sessions
            .iter()
            .find(|s| listener_of(s) == name)
            .expect("session");
        assert_eq!(output_of(sess), seen, "{name}");
        assert_eq!(input_of(sess), lines.concat(), "{name}");
        assert_eq!(end_of(sess).0, EndReason::Persona, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// TCP: echo-this

/// The manual's first echo-this listener.
const ECHO_THIS_HTML: &str = r#"
echo_this = { delimiter = "ECHOTHIS" }
reply = "HTTP/1.1 200 OK\r\nDate: %TIME_GMT_RFC2822%\r\nContent-Length: %CONTENT_LENGTH%\r\n\r\n<html>Hello %ECHOTHIS%!</html>"
"#;

/// The manual's dynamic echo-this listener (its `ECHOTHIS%` read as `%ECHOTHIS%`).
const ECHO_THIS_DYNAMIC: &str = r#"
echo_this = { delimiter = "ECHOTHIS", format = "dynamic" }
reply = "HTTP/1.1 200 OK\r\nDate: %TIME_GMT_RFC2822%\r\nContent-Length: %CONTENT_LENGTH%\r\n\r\n%ECHOTHIS%"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_curl_header_value_comes_back_in_the_page() {
    let s = start(&tcp_one(ECHO_THIS_HTML)).await;
    let u = url(s.tcp("l"));
    let before = now_epoch();
    let (status, out) = curl(&["-H", "X-Something: ECHOTHISDidierECHOTHIS", &u]).await;
    assert!(status.success(), "curl: {status}");
    assert_eq!(out, b"<html>Hello Didier!</html>");

    // Same again with the headers shown: exact head, real Content-Length.
    let (status, full) = curl(&["-i", "-H", "X-Something: ECHOTHISDidierECHOTHIS", &u]).await;
    assert!(status.success(), "curl: {status}");
    let (head, body) = http_split(&full);
    assert_eq!(body, b"<html>Hello Didier!</html>");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{head:?}");
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert_rfc2822_between(
        lines[1].strip_prefix("Date: ").unwrap(),
        before,
        now_epoch(),
    );
    assert_eq!(lines[2], "Content-Length: 26");

    // Without delimiters the variable is empty.
    let (status, out) = curl(&[&u]).await;
    assert!(status.success(), "curl: {status}");
    assert_eq!(out, b"<html>Hello !</html>");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert!(contains(
        &input_of(&sessions[0]),
        b"\r\nX-Something: ECHOTHISDidierECHOTHIS\r\n"
    ));
    assert!(output_of(&sessions[0])
        .ends_with(b"\r\nContent-Length: 26\r\n\r\n<html>Hello Didier!</html>"));
    assert_eq!(
        output_of(&sessions[1]),
        full,
        "curl -i shows what the store holds"
    );
    assert!(
        output_of(&sessions[2]).ends_with(b"\r\nContent-Length: 20\r\n\r\n<html>Hello !</html>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_dynamic_hex_from_curl_decodes_to_aaaa_crlf() {
    let s = start(&tcp_one(ECHO_THIS_DYNAMIC)).await;
    let (status, out) = curl(&[
        "-H",
        "X-Something: ECHOTHISH414141410D0AECHOTHIS",
        &url(s.tcp("l")),
    ])
    .await;
    assert!(status.success(), "curl: {status}");
    assert_eq!(out, b"AAAA\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert!(output_of(sess).ends_with(b"\r\nContent-Length: 6\r\n\r\nAAAA\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_p_prefix_persists_across_connections_of_that_listener() {
    let s = start(&format!(
        "[personas.p]\ntype = \"scripted\"\n{ECHO_THIS_DYNAMIC}\n\
         [[listeners]]\nname = \"l\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n\
         [[listeners]]\nname = \"other\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n"
    ))
    .await;
    let u = url(s.tcp("l"));
    let ask = |hdr: Option<&'static str>| {
        let u = u.clone();
        async move {
            let (status, out) = match hdr {
                Some(h) => curl(&["-H", h, &u]).await,
                None => curl(&[&u]).await,
            };
            assert!(status.success(), "curl: {status}");
            out
        }
    };
    // Before anything persisted: empty.
    assert_eq!(ask(None).await, b"");
    // The manual: PH... answers AAAA\r\n and remembers it.
    assert_eq!(
        ask(Some("X-Something: ECHOTHISPH414141410D0AECHOTHIS")).await,
        b"AAAA\r\n"
    );
    assert_eq!(ask(None).await, b"AAAA\r\n", "a request without a message");
    assert_eq!(ask(None).await, b"AAAA\r\n", "and the next one");
    // A message without P is answered but does not replace the persisted one.
    assert_eq!(ask(Some("X-Something: ECHOTHISRBobECHOTHIS")).await, b"Bob");
    assert_eq!(ask(None).await, b"AAAA\r\n");
    // Another P message replaces it.
    assert_eq!(
        ask(Some("X-Something: ECHOTHISPBQ2Fyb2w=ECHOTHIS")).await,
        b"Carol"
    );
    assert_eq!(ask(None).await, b"Carol");
    // Another listener serving the same persona keeps its own (empty) value.
    let (status, out) = curl(&[&url(s.tcp("other"))]).await;
    assert!(status.success());
    assert_eq!(out, b"");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 9);
    let bodies: Vec<Vec<u8>> = sessions
        .iter()
        .map(|s| http_split(&output_of(s)).1)
        .collect();
    let want: [&[u8]; 9] = [
        b"",
        b"AAAA\r\n",
        b"AAAA\r\n",
        b"AAAA\r\n",
        b"Bob",
        b"AAAA\r\n",
        b"Carol",
        b"Carol",
        b"",
    ];
    assert_eq!(bodies, want.map(|b| b.to_vec()).to_vec());
    assert_eq!(listener_of(&sessions[8]), "other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_formats_raw_hex_base64_escaped_and_dynamic() {
    let mut toml = String::new();
    for (name, fmt) in [
        ("raw", "raw"),
        ("hex", "hex"),
        ("b64", "base64"),
        ("esc", "escaped"),
        ("dyn", "dynamic"),
    ] {
        toml += &format!(
            "[personas.{name}]\ntype = \"scripted\"\nreply = \"[%ECHOTHIS%]\"\n\
             echo_this = {{ delimiter = \"ECHOTHIS\", format = \"{fmt}\" }}\n\
             [[listeners]]\nname = \"{name}\"\nports = 0\nbind = [\"127.0.0.1\"]\n\
             persona = \"{name}\"\n"
        );
    }
    let s = start(&toml).await;
    let cases: Vec<(&str, &[u8], &[u8])> = vec![
        (
            "raw",
            b"GET /?q=ECHOTHIS<b>x</b>ECHOTHIS HTTP/1.0\r\n\r\n",
            b"[<b>x</b>]",
        ),
        ("hex", b"X: ECHOTHIS48690d0aECHOTHIS\r\n", b"[Hi\r\n]"),
        ("b64", b"X: ECHOTHISQUJDRA==ECHOTHIS\r\n", b"[ABCD]"),
        (
            "esc",
            br"X: ECHOTHISa\x41\n\101\tb\\\u0043ECHOTHIS",
            b"[aA\nA\tb\\C]",
        ),
        ("dyn", b"ECHOTHISBQUJDRA==ECHOTHIS", b"[ABCD]"),
        ("dyn", br"ECHOTHISE\xff\r\nECHOTHIS", b"[\xff\r\n]"),
        ("dyn", b"ECHOTHISRplainECHOTHIS", b"[plain]"),
        // Only one delimiter: no value.
        ("raw", b"ECHOTHIS alone", b"[]"),
    ];
    for (l, req, want) in &cases {
        assert_eq!(
            exchange(s.tcp(l), req).await,
            *want,
            "{l} {:?}",
            String::from_utf8_lossy(req)
        );
    }

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), cases.len());
    for (sess, (l, req, want)) in sessions.iter().zip(&cases) {
        assert_eq!(listener_of(sess), *l);
        assert_eq!(input_of(sess), *req);
        assert_eq!(output_of(sess), *want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_value_that_does_not_decode_is_recorded_and_left_empty() {
    let s = start(&tcp_one(
        r#"
echo_this = { delimiter = "ECHOTHIS", format = "dynamic" }
reply = "[%ECHOTHIS%]"
"#,
    ))
    .await;
    let addr = s.tcp("l");
    assert_eq!(exchange(addr, b"ECHOTHISHzzECHOTHIS").await, b"[]");
    assert_eq!(exchange(addr, b"ECHOTHISQxyzECHOTHIS").await, b"[]");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    let m0 = matches_of(&sessions[0]);
    assert_eq!(m0.len(), 1);
    assert!(m0[0].0.starts_with("echo_this: bad hex"), "{m0:?}");
    assert_eq!((m0[0].1.as_str(), m0[0].2), ("none", 0));
    let m1 = matches_of(&sessions[1]);
    assert!(m1[0].0.contains("format letter"), "{m1:?}");
    assert_eq!(output_of(&sessions[1]), b"[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_custom_variable_name_works_in_rule_replies() {
    let s = start(&tcp_one(
        r#"
echo_this = { delimiter = "@@", variable = "%NAME%" }
loop = 2
[[personas.p.rules]]
name = "HI"
prefix = "hi "
reply = "hello %NAME%, not %ECHOTHIS%\n"
"#,
    ))
    .await;
    let mut c = connect(s.tcp("l")).await;
    send(&mut c, b"hi @@Didier@@\n").await;
    let mut seen = read_until(&mut c, b"\n").await;
    send(&mut c, b"hi nobody\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(
        seen,
        b"hello Didier, not %ECHOTHIS%\nhello , not %ECHOTHIS%\n"
    );

    let done = s.stop().await;
    done.assert_paired();
    assert_eq!(output_of(&done.sessions()[0]), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_this_variable_need_not_start_with_a_percent_sign() {
    // simple_listener replaces the variable wherever it appears, whatever it looks like.
    let s = start(&tcp_one(
        r#"
echo_this = { delimiter = "ECHOTHIS", variable = "{{who}}" }
reply = "Hello {{who}}! ({{who}})"
"#,
    ))
    .await;
    assert_eq!(
        exchange(s.tcp("l"), b"X: ECHOTHISDidierECHOTHIS\r\n").await,
        b"Hello Didier! (Didier)"
    );
    let done = s.stop().await;
    done.assert_paired();
    assert_eq!(output_of(&done.sessions()[0]), b"Hello Didier! (Didier)");
}

// ---------------------------------------------------------------------------------------------
// TCP: delay, split, min_length, read_all

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_holds_back_the_banner_and_each_reply() {
    let delay = Duration::from_millis(300);
    let s = start(&tcp_one(
        "delay = \"300ms\"\nbanner = \"Welcome\"\nreply = \"ok\"\nloop = 1",
    ))
    .await;
    let t0 = Instant::now();
    let mut c = connect(s.tcp("l")).await;
    let banner = read_until(&mut c, b"Welcome").await;
    assert!(t0.elapsed() >= delay, "banner after {:?}", t0.elapsed());
    assert_eq!(banner, b"Welcome");
    let t1 = Instant::now();
    send(&mut c, b"x").await;
    let reply = read_to_close(&mut c).await;
    assert!(t1.elapsed() >= delay, "reply after {:?}", t1.elapsed());
    assert_eq!(reply, b"ok");

    let done = s.stop().await;
    done.assert_paired();
    assert_eq!(output_of(&done.sessions()[0]), b"Welcomeok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_in_seconds_as_a_float_like_the_manual() {
    // The manual's THP_DELAY: 3.5, scaled down.
    let s = start(&tcp_one("delay = 0.25\nbanner = \"Welcome\"")).await;
    let t0 = Instant::now();
    let mut c = connect(s.tcp("l")).await;
    let banner = read_until(&mut c, b"Welcome").await;
    assert!(t0.elapsed() >= Duration::from_millis(250));
    assert_eq!(banner, b"Welcome");
    drop(c);
    let done = s.stop().await;
    done.assert_paired();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_on_comma_handles_each_part_in_turn() {
    let s = start(&tcp_one(&format!("split = \",\"\n{HELLO_BYE}{FALLBACK}"))).await;
    let got = exchange(s.tcp("l"), b"hello,lala,bye").await;
    assert_eq!(got, b"hi there!I did not understand that!see you later!");
    // Empty parts are skipped.
    let got = exchange(s.tcp("l"), b",,bye,,hello,").await;
    assert_eq!(got, b"see you later!hi there!");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(rules_of(&sessions[0]), vec!["HELLO", "FALLBACK", "BYE"]);
    assert_eq!(outputs_of(&sessions[0]).len(), 3, "one reply per part");
    assert_eq!(
        inputs_of(&sessions[0]),
        vec![b"hello,lala,bye".to_vec()],
        "one read"
    );
    assert_eq!(rules_of(&sessions[1]), vec!["BYE", "HELLO"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_stops_at_a_disconnect_rule() {
    let s = start(&tcp_one(&format!(
        "split = \";\"\nloop = 10\n{HELLO_BYE}\n\
         [[personas.p.rules]]\nname = \"EXIT\"\nprefix = \"exit\"\naction = \"disconnect\"\n"
    )))
    .await;
    let got = exchange(s.tcp("l"), b"hello;exit;bye").await;
    assert_eq!(got, b"hi there!", "nothing after the disconnect part");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(rules_of(sess), vec!["HELLO", "EXIT"]);
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_length_collects_short_input_until_enough_arrived() {
    let s = start(&tcp_one(&format!(
        "min_length = 10\nloop = 4\nbanner = \"> \"\n{HELLO_BYE}{FALLBACK}"
    )))
    .await;
    let mut c = connect(s.tcp("l")).await;
    read_until(&mut c, b"> ").await;
    send(&mut c, b"hello").await;
    // 5 bytes of 10: nothing is handled yet.
    let (closed, early) = closed_within(&mut c, QUIET).await;
    assert!(!closed);
    assert_eq!(early, b"");
    send(&mut c, b" world\n").await;
    // Handled as one input "hello world\n": one HELLO reply, no FALLBACK for " world\n".
    let got = read_until(&mut c, b"hi there!").await;
    assert_eq!(got, b"hi there!");
    let (_, more) = closed_within(&mut c, QUIET).await;
    assert_eq!(more, b"");
    drop(c);

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(input_of(sess), b"hello world\n");
    assert_eq!(output_of(sess), b"> hi there!");
    assert_eq!(
        matches_of(sess),
        vec![("HELLO".to_string(), "reply".to_string(), 5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_length_short_reads_still_count_against_the_loop() {
    // As in simple_listener, a read that is too short uses up one of the `loop` reads: with
    // the default single read, a short input gets no answer and the session ends.
    let s = start(&tcp_one(&format!("min_length = 10\n{HELLO_BYE}{FALLBACK}"))).await;
    assert_eq!(exchange(s.tcp("l"), b"hello").await, b"");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(input_of(sess), b"hello");
    assert!(rules_of(sess).is_empty());
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_with_a_pause_joins_writes_that_arrive_during_it() {
    // The manual uses 0.1 s; a longer pause keeps the test independent of scheduling (the
    // second write comes ~20ms after the first).
    let s = start(&tcp_one(&format!(
        "read_all = \"250ms\"\nbanner = \"> \"\n{HELLO_BYE}{FALLBACK}"
    )))
    .await;
    let mut c = connect(s.tcp("l")).await;
    c.set_nodelay(true).unwrap();
    read_until(&mut c, b"> ").await;
    send(&mut c, b"hel").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&mut c, b"lo\n").await;
    // Without read_all, "hel" alone would get the FALLBACK reply (loop is 1).
    assert_eq!(read_to_close(&mut c).await, b"hi there!");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(input_of(sess), b"hello\n");
    assert_eq!(rules_of(sess), vec!["HELLO"], "handled once, as one input");
    assert_eq!(output_of(sess), b"> hi there!");
}

/// `read_all = true` (no pause) only takes what is already waiting after the first read, and
/// TCP hands a single read everything waiting, so over loopback it cannot be told apart from no
/// read_all at all. This pins that it is accepted and that several writes, all waiting before
/// the first read (the banner's delay holds that read back), are handled as one input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_true_handles_writes_waiting_before_the_read_as_one_input() {
    let s = start(&tcp_one(&format!(
        "read_all = true\ndelay = \"500ms\"\nbanner = \"> \"\n{HELLO_BYE}{FALLBACK}"
    )))
    .await;
    let mut c = connect(s.tcp("l")).await;
    c.set_nodelay(true).unwrap();
    send(&mut c, b"by").await;
    send(&mut c, b"e").await;
    send(&mut c, b"\n").await;
    assert_eq!(read_to_close(&mut c).await, b"> see you later!");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(input_of(sess), b"bye\n");
    assert_eq!(rules_of(sess), vec!["BYE"]);
}

// ---------------------------------------------------------------------------------------------
// Templates: inherit and per-listener overrides

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherit_starts_from_the_template_and_overrides_what_it_sets() {
    let s = start(
        r#"
[personas.base]
type = "scripted"
description = "the template"
banner = "220 base\r\n"
loop = 2
[[personas.base.rules]]
name = "HELLO"
prefix = "hello"
reply = "hi there!\r\n"

[personas.child]
type = "scripted"
inherit = "base"
banner = "220 child\r\n"

[personas.grandchild]
type = "scripted"
inherit = "child"
[[personas.grandchild.rules]]
name = "BYE"
prefix = "bye"
reply = "see you later!\r\n"
action = "reply_disconnect"

[[listeners]]
name = "base"
ports = 0
bind = ["127.0.0.1"]
persona = "base"
[[listeners]]
name = "child"
ports = 0
bind = ["127.0.0.1"]
persona = "child"
[[listeners]]
name = "grandchild"
ports = 0
bind = ["127.0.0.1"]
persona = "grandchild"
"#,
    )
    .await;

    // base and child: two reads, HELLO rule; only the banner differs.
    for (name, banner) in [("base", "220 base\r\n"), ("child", "220 child\r\n")] {
        let mut c = connect(s.tcp(name)).await;
        let mut seen = read_until(&mut c, b"\r\n").await;
        send(&mut c, b"hello\r\n").await;
        seen.extend(read_until(&mut c, b"hi there!\r\n").await);
        send(&mut c, b"bye\r\n").await;
        seen.extend(read_to_close(&mut c).await);
        assert_eq!(seen, format!("{banner}hi there!\r\n").as_bytes(), "{name}");
    }
    // grandchild: child's banner, base's loop, its own rules (replacing the whole list).
    let mut c = connect(s.tcp("grandchild")).await;
    let mut seen = read_until(&mut c, b"\r\n").await;
    send(&mut c, b"hello\r\n").await;
    let (closed, nothing) = closed_within(&mut c, QUIET).await;
    assert!(!closed);
    assert_eq!(nothing, b"", "HELLO is not among grandchild's rules");
    send(&mut c, b"bye\r\n").await;
    seen.extend(read_to_close(&mut c).await);
    assert_eq!(seen, b"220 child\r\nsee you later!\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(rules_of(&sessions[0]), vec!["HELLO"]);
    assert_eq!(rules_of(&sessions[1]), vec!["HELLO"]);
    assert_eq!(rules_of(&sessions[2]), vec!["BYE"]);
    for sess in &sessions {
        assert_eq!(inputs_of(sess).len(), 2, "loop = 2 inherited");
        assert_eq!(end_of(sess).0, EndReason::Persona);
    }
    assert!(matches!(&sessions[2][0].kind,
        EventKind::Connect { persona, .. } if persona == "grandchild"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_override_changes_one_port_and_leaves_the_other_on_the_template() {
    let s = start(
        r#"
[personas.web]
type = "scripted"
banner = "220 template\r\n"
loop = 2
[[personas.web.rules]]
name = "HELLO"
prefix = "hello"
reply = "hi there!\r\n"

[[listeners]]
name = "tweaked"
ports = 0
bind = ["127.0.0.1"]
persona = "web"
[listeners.override]
banner = "220 tweaked\r\n"

[[listeners]]
name = "plain"
ports = 0
bind = ["127.0.0.1"]
persona = "web"

[[listeners]]
name = "rules"
ports = 0
bind = ["127.0.0.1"]
persona = "web"
[listeners.override]
loop = 1
[[listeners.override.rules]]
name = "HOWDY"
prefix = "hello"
reply = "howdy!\r\n"
"#,
    )
    .await;
    async fn talk(addr: std::net::SocketAddr, reads: usize) -> Vec<u8> {
        let mut c = connect(addr).await;
        let mut seen = read_until(&mut c, b"\r\n").await;
        for i in 0..reads {
            send(&mut c, b"hello\r\n").await;
            if i + 1 < reads {
                seen.extend(read_until(&mut c, b"!\r\n").await);
            }
        }
        seen.extend(read_to_close(&mut c).await);
        seen
    }
    assert_eq!(
        talk(s.tcp("tweaked"), 2).await,
        b"220 tweaked\r\nhi there!\r\nhi there!\r\n",
        "override changed the banner only"
    );
    assert_eq!(
        talk(s.tcp("plain"), 2).await,
        b"220 template\r\nhi there!\r\nhi there!\r\n",
        "the other listener of the same persona is untouched"
    );
    assert_eq!(
        talk(s.tcp("rules"), 1).await,
        b"220 template\r\nhowdy!\r\n",
        "override of loop and rules"
    );

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    let by = |n: &str| sessions.iter().find(|s| listener_of(s) == n).unwrap();
    assert_eq!(rules_of(by("tweaked")), vec!["HELLO", "HELLO"]);
    assert_eq!(rules_of(by("plain")), vec!["HELLO", "HELLO"]);
    assert_eq!(rules_of(by("rules")), vec!["HOWDY"]);
    for sess in &sessions {
        assert!(
            matches!(&sess[0].kind, EventKind::Connect { persona, .. } if persona == "web"),
            "the persona keeps its name"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Byte-string forms: file, lines, hex, base64

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_and_replies_from_files_lines_hex_and_base64() {
    let s = start(
        r#"
[personas.file]
type = "scripted"
banner = { file = "scripted/banner.txt" }
[[personas.file.rules]]
name = "BIN"
prefix = { hex = "ff fb 18" }
reply = { file = "scripted/telnet.bin" }
[[personas.file.rules]]
name = "B64"
prefix = { base64 = "aGVsbG8=" }
reply = { base64 = "aGkgdGhlcmUh" }
[[personas.file.rules]]
name = "TEXT"
prefix = { text = "bye" }
reply = { text = "see you later!" }

[personas.lines]
type = "scripted"
banner = { lines = ["220-mail.example.com", "220 ESMTP"] }
reply = { hex = "0x35 0x30 0x30 0x0d 0x0a" }

[[listeners]]
name = "file"
ports = 0
bind = ["127.0.0.1"]
persona = "file"
[[listeners]]
name = "lines"
ports = 0
bind = ["127.0.0.1"]
persona = "lines"
"#,
    )
    .await;
    let file_banner = std::fs::read(fixtures().join("scripted/banner.txt")).unwrap();
    let telnet = std::fs::read(fixtures().join("scripted/telnet.bin")).unwrap();
    assert_eq!(
        file_banner,
        b"220 mail.example.com ESMTP (banner from a file)\r\n"
    );
    assert_eq!(telnet, b"\xff\xfd\x18\xff\xfd\x20\xff\xfb\x01login: ");

    let mut want = Vec::new();
    for (input, reply) in [
        (&b"\xff\xfb\x18\x00"[..], &telnet[..]),
        (b"hello\r\n", b"hi there!"),
        (b"bye\r\n", b"see you later!"),
    ] {
        let got = exchange(s.tcp("file"), input).await;
        let mut w = file_banner.clone();
        w.extend_from_slice(reply);
        assert_eq!(got, w);
        want.push(w);
    }
    let got = exchange(s.tcp("lines"), b"HELO x\r\n").await;
    assert_eq!(got, b"220-mail.example.com\r\n220 ESMTP\r\n500\r\n");
    want.push(got);

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    let outs: Vec<Vec<u8>> = sessions.iter().map(|s| output_of(s)).collect();
    assert_eq!(outs, want);
    let rules: Vec<Vec<String>> = sessions.iter().map(|s| rules_of(s)).collect();
    assert_eq!(
        rules,
        vec![vec!["BIN"], vec!["B64"], vec!["TEXT"], Vec::<&str>::new()]
    );
}

// ---------------------------------------------------------------------------------------------
// UDP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reply_answers_a_datagram_without_a_banner() {
    let s = start(&udp_one(
        UDP_OPEN,
        "banner = \"never on udp\"\nreply = \"Hello UDP\"",
    ))
    .await;
    let c = udp_client().await;
    c.send_to(b"x", s.udp("u")).await.unwrap();
    assert_eq!(udp_recv(&c).await, b"Hello UDP");
    assert_eq!(udp_recv_for(&c, QUIET).await, None, "one reply, no banner");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    let sess = &sessions[0];
    assert_eq!(inputs_of(sess), vec![b"x".to_vec()]);
    assert_eq!(outputs_of(sess), vec![(b"Hello UDP".to_vec(), false)]);
    assert_eq!(sess[0].transport, honeyport_event::Transport::Udp);
    assert_eq!(sess[0].src_port, c.local_addr().unwrap().port());
    assert_eq!(end_of(sess).0, EndReason::Persona);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reply_is_cut_to_the_datagram_size_unless_amplification_is_allowed() {
    let s = start(&udp_one(
        "udp_replies_per_second = 1000.0\nudp_reply_burst = 1000",
        "reply = \"Hello UDP\"\nsplit = \",\"\n",
    ))
    .await;
    let addr = s.udp("u");
    // 2 bytes in: 2 bytes out.
    let c1 = udp_client().await;
    c1.send_to(b"hi", addr).await.unwrap();
    assert_eq!(udp_recv(&c1).await, b"He");
    // 11 bytes in: the whole 9-byte reply.
    let c2 = udp_client().await;
    c2.send_to(b"hello world", addr).await.unwrap();
    assert_eq!(udp_recv(&c2).await, b"Hello UDP");
    // The cap is per datagram, shared by all replies to it: "a,b,c" (5 bytes) split in 3 parts
    // earns 5 bytes in all.
    let c3 = udp_client().await;
    c3.send_to(b"a,b,c", addr).await.unwrap();
    assert_eq!(udp_recv(&c3).await, b"Hello");
    assert_eq!(udp_recv_for(&c3, QUIET).await, None);

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(outputs_of(&sessions[0]), vec![(b"He".to_vec(), true)]);
    assert_eq!(
        outputs_of(&sessions[1]),
        vec![(b"Hello UDP".to_vec(), false)]
    );
    assert_eq!(outputs_of(&sessions[2]), vec![(b"Hello".to_vec(), true)]);
    assert_eq!(
        suppressed_of(&sessions[2]),
        vec![
            (9, "amplification".to_string()),
            (9, "amplification".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_prefix_rules_reply_and_stay_silent_without_a_match() {
    let s = start(&udp_one(UDP_OPEN, HELLO_BYE)).await;
    let addr = s.udp("u");
    let mut clients = Vec::new();
    for (input, want) in [
        (&b"hello"[..], Some(&b"hi there!"[..])),
        (b"bye", Some(b"see you later!")),
        (b"nope", None),
    ] {
        // One socket per datagram: each is its own flow and session.
        let c = udp_client().await;
        c.send_to(input, addr).await.unwrap();
        match want {
            Some(w) => assert_eq!(udp_recv(&c).await, w),
            None => assert_eq!(udp_recv_for(&c, QUIET).await, None),
        }
        clients.push(c);
    }

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    assert_eq!(rules_of(&sessions[0]), vec!["HELLO"]);
    assert_eq!(output_of(&sessions[0]), b"hi there!");
    assert_eq!(rules_of(&sessions[1]), vec!["BYE"]);
    assert_eq!(output_of(&sessions[1]), b"see you later!");
    assert!(rules_of(&sessions[2]).is_empty());
    assert_eq!(output_of(&sessions[2]), b"");
    assert_eq!(input_of(&sessions[2]), b"nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_regex_rules_on_raw_bytes_with_longest_match_and_else() {
    let s = start(&udp_one(
        UDP_OPEN,
        r#"
[[personas.p.rules]]
name = "SHORT"
regex = '^\x00\x01'
reply = "short"
[[personas.p.rules]]
name = "LONG"
regex = '^\x00\x01\x00\x00\x00\x01'
reply = { hex = "00 01 81 80" }
[[personas.p.rules]]
name = "ELSE"
else = true
reply = "?"
"#,
    ))
    .await;
    let addr = s.udp("u");
    let c1 = udp_client().await;
    c1.send_to(b"\x00\x01\x00\x00\x00\x01\x00\x00\xff", addr)
        .await
        .unwrap();
    assert_eq!(udp_recv(&c1).await, b"\x00\x01\x81\x80");
    let c2 = udp_client().await;
    c2.send_to(b"\x00\x01\xff\xfe", addr).await.unwrap();
    assert_eq!(udp_recv(&c2).await, b"short");
    let c3 = udp_client().await;
    c3.send_to(b"\xff\xff", addr).await.unwrap();
    assert_eq!(udp_recv(&c3).await, b"?");

    let done = s.stop().await;
    done.assert_paired();
    let got: Vec<Vec<(String, String, u64)>> =
        done.sessions().iter().map(|s| matches_of(s)).collect();
    assert_eq!(
        got,
        vec![
            vec![("LONG".to_string(), "reply".to_string(), 6)],
            vec![("SHORT".to_string(), "reply".to_string(), 2)],
            vec![("ELSE".to_string(), "reply".to_string(), 0)],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_and_echo_this_answer_each_datagram() {
    let s = start(&udp_one(
        UDP_OPEN,
        "echo = \"upper\"\nreply = \"<%ECHOTHIS%>\"\n\
         echo_this = { delimiter = \"ECHOTHIS\", format = \"hex\" }",
    ))
    .await;
    let c = udp_client().await;
    c.send_to(b"ping ECHOTHIS6869ECHOTHIS", s.udp("u"))
        .await
        .unwrap();
    assert_eq!(udp_recv(&c).await, b"PING ECHOTHIS6869ECHOTHIS");
    assert_eq!(udp_recv(&c).await, b"<hi>");

    let done = s.stop().await;
    done.assert_paired();
    let sess = &done.sessions()[0];
    assert_eq!(
        outputs_of(sess),
        vec![
            (b"PING ECHOTHIS6869ECHOTHIS".to_vec(), false),
            (b"<hi>".to_vec(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_replies_beyond_the_per_source_rate_are_suppressed_and_recorded() {
    // One token and no refill: the first reply goes out, the next is suppressed.
    let s = start(&udp_one(
        "udp_allow_amplification = true\nudp_replies_per_second = 0.0\nudp_reply_burst = 1",
        "reply = \"Hello UDP\"",
    ))
    .await;
    let addr = s.udp("u");
    let c1 = udp_client().await;
    c1.send_to(b"one", addr).await.unwrap();
    assert_eq!(udp_recv(&c1).await, b"Hello UDP");
    let c2 = udp_client().await;
    c2.send_to(b"two", addr).await.unwrap();
    assert_eq!(udp_recv_for(&c2, QUIET).await, None);

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(output_of(&sessions[0]), b"Hello UDP");
    assert_eq!(
        input_of(&sessions[1]),
        b"two",
        "the datagram is still recorded"
    );
    assert!(outputs_of(&sessions[1]).is_empty());
    assert_eq!(
        suppressed_of(&sessions[1]),
        vec![(9, "rate_limit".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_persona_on_tcp_and_udp_sends_the_banner_on_tcp_only() {
    let s = start(&format!(
        "[limits]\n{UDP_OPEN}\n\
         [personas.p]\ntype = \"scripted\"\nbanner = \"Welcome\\r\\n\"\nreply = \"Hello\\r\\n\"\n\
         [[listeners]]\nname = \"both\"\nports = 0\nbind = [\"127.0.0.1\"]\n\
         transport = [\"tcp\", \"udp\"]\npersona = \"p\"\n"
    ))
    .await;
    assert_eq!(
        exchange(s.tcp("both"), b"x\r\n").await,
        b"Welcome\r\nHello\r\n"
    );
    let c = udp_client().await;
    c.send_to(b"x\r\n", s.udp("both")).await.unwrap();
    assert_eq!(udp_recv(&c).await, b"Hello\r\n");

    let done = s.stop().await;
    done.assert_paired();
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 2);
    let tcp = sessions
        .iter()
        .find(|s| s[0].transport == honeyport_event::Transport::Tcp)
        .unwrap();
    let udp = sessions
        .iter()
        .find(|s| s[0].transport == honeyport_event::Transport::Udp)
        .unwrap();
    assert_eq!(output_of(tcp), b"Welcome\r\nHello\r\n");
    assert_eq!(output_of(udp), b"Hello\r\n");
}

/// simple_listener answers every datagram on its own. Here a flow's session ends after `loop`
/// reads (default 1); datagrams already queued to that flow must still be handled (or, if a
/// limit was full, counted as dropped), never lost unrecorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_burst_from_one_source_every_datagram_is_handled_or_counted() {
    let s = start(&udp_one(UDP_OPEN, "reply = \"R\"")).await;
    let addr = s.udp("u");
    let c = udp_client().await;
    // Fewer than the per-flow queue (32), so none may be dropped for a full queue either.
    const N: usize = 20;
    for i in 0..N {
        c.send_to(format!("d{i:02}").as_bytes(), addr)
            .await
            .unwrap();
    }
    let mut replies = 0;
    while udp_recv_for(&c, Duration::from_secs(1)).await.is_some() {
        replies += 1;
    }
    let done = s.stop().await;
    done.assert_paired();
    let recorded: usize = done.sessions().iter().map(|s| inputs_of(s).len()).sum();
    let dropped = done.report.serve.udp_dropped as usize;
    assert_eq!(
        recorded + dropped,
        N,
        "every datagram is recorded or counted as dropped"
    );
    assert_eq!(replies, N, "every datagram is answered");
}
