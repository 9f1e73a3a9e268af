//! Graceful shutdown: stop accepting, give open sessions `shutdown_grace`, end the rest with
//! reason `shutdown`, and lose nothing. In-process, and for the real binary on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use honeyport_event::{EndReason, Event, EventKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn config(limits: &str, persona_extra: &str) -> String {
    format!(
        r#"
[limits]
{limits}

[personas.p]
type = "scripted"
banner = "220 ready\r\n"
loop = 0
{persona_extra}
[[personas.p.rules]]
name = "HELO"
prefix = "HELO"
reply = "250 hello\r\n"
[[personas.p.rules]]
name = "QUIT"
prefix = "QUIT"
reply = "221 bye\r\n"
action = "reply_disconnect"

[[listeners]]
name = "l"
ports = 0
bind = ["127.0.0.1"]
persona = "p"
"#
    )
}

fn assert_nothing_lost(done: &Stopped) {
    done.assert_paired();
    assert_eq!(done.report.lost(), 0);
    assert_eq!(done.report.pipeline.written, done.report.pipeline.sent);
    assert_eq!(done.report.pipeline.sink_errors, 0);
    assert_eq!(done.sessions().len() as u64, done.report.serve.sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_open_at_stop_get_the_grace_period_then_end_with_reason_shutdown() {
    let s = start(&config(
        r#"idle_timeout = "60s"
shutdown_grace = "300ms""#,
        "",
    ))
    .await;
    let addr = s.tcp("l");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = connect(addr).await;
        read_until(&mut c, b"220 ready\r\n").await;
        send(&mut c, b"HELO x\r\n").await;
        read_until(&mut c, b"250 hello\r\n").await;
        clients.push(c);
    }
    let stop_at = chrono::Utc::now();
    let stopping = tokio::spawn(s.stop());
    for c in &mut clients {
        // The sensor hangs up on them once the grace period is over.
        read_to_close(c).await;
    }
    let done = tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stop hung")
        .unwrap();

    assert_nothing_lost(&done);
    assert_eq!(done.report.serve.open_at_stop, 3);
    assert!(done.report.serve.ended_by_shutdown);
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 3);
    for sess in &sessions {
        assert_eq!(end_of(sess), (EndReason::Shutdown, None));
        assert_eq!(input_of(sess), b"HELO x\r\n");
        let ended = closed_of(sess).timestamp.0;
        assert!(
            ended - stop_at >= chrono::Duration::milliseconds(250),
            "ended {} after stop: no grace period",
            ended - stop_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_finishes_within_the_grace_period_ends_normally() {
    // Replies come after a 500ms delay: the session is still busy when stop begins.
    let s = start(&config(r#"shutdown_grace = "10s""#, r#"delay = "500ms""#)).await;
    let mut c = connect(s.tcp("l")).await;
    read_until(&mut c, b"220 ready\r\n").await;
    send(&mut c, b"QUIT\r\n").await;
    let stopping = tokio::spawn(s.stop());
    let rest = read_to_close(&mut c).await;
    assert_eq!(
        rest, b"221 bye\r\n",
        "the reply was delivered despite the stop"
    );
    let done = tokio::time::timeout(WAIT * 2, stopping)
        .await
        .expect("stop hung")
        .unwrap();

    assert_nothing_lost(&done);
    assert_eq!(done.report.serve.open_at_stop, 1);
    assert!(!done.report.serve.ended_by_shutdown);
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(end_of(&sessions[0]), (EndReason::Persona, None));
    assert_eq!(rules_of(&sessions[0]), vec!["QUIT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_session_starts_once_stop_began() {
    let s = start(&config(r#"shutdown_grace = "10s""#, "")).await;
    let addr = s.tcp("l");
    let mut busy = connect(addr).await;
    read_until(&mut busy, b"220 ready\r\n").await;
    let stopping = tokio::spawn(s.stop());
    // The listening socket goes away at once: connecting is refused from then on.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after stop"
        );
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(late) => {
                drop(late);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // The open session still works during the grace period, and ends normally.
    send(&mut busy, b"HELO y\r\n").await;
    read_until(&mut busy, b"250 hello\r\n").await;
    send(&mut busy, b"QUIT\r\n").await;
    read_to_close(&mut busy).await;
    let done = tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stop hung")
        .unwrap();

    assert_nothing_lost(&done);
    let busy_port = busy.local_addr().unwrap().port();
    let sessions = done.sessions();
    let first = sessions
        .iter()
        .find(|s| s[0].src_port == busy_port)
        .expect("the open session is recorded");
    assert_eq!(end_of(first), (EndReason::Persona, None));
    assert_eq!(rules_of(first), vec!["HELO", "QUIT"]);
    // Probes that slipped in before the socket closed (if any) still have both ends.
    for other in sessions.iter().filter(|s| s[0].src_port != busy_port) {
        assert!(output_of(other).is_empty() || output_of(other) == b"220 ready\r\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_has_one_start_and_one_end_when_stopping_under_load() {
    let s = start(&config(
        r#"shutdown_grace = "200ms"
max_bytes_in = "256KiB""#,
        "",
    ))
    .await;
    let addr = s.tcp("l");
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            match i % 4 {
                0 => {
                    let _ = read_until(&mut c, b"220 ready\r\n").await;
                }
                1 => {
                    let _ = c.write_all(b"HELO a\r\nHELO b\r\n").await;
                }
                2 => {
                    let _ = c.write_all(&vec![b'z'; 512 << 10]).await;
                }
                _ => {
                    let _ = c.write_all(b"QUIT\r\n").await;
                }
            }
            // Keep the connection until the sensor closes it.
            let _ = tokio::time::timeout(WAIT, async {
                let mut buf = [0u8; 4096];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut c, &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }));
    }
    s.wait_sessions(40).await;
    let done = tokio::time::timeout(WAIT, s.stop())
        .await
        .expect("stop hung");
    for t in tasks {
        t.await.unwrap();
    }

    assert_nothing_lost(&done);
    let sessions = done.sessions();
    assert_eq!(sessions.len(), 40);
    for sess in &sessions {
        let (reason, _) = end_of(sess);
        assert!(
            matches!(
                reason,
                EndReason::Shutdown | EndReason::Persona | EndReason::Limit
            ),
            "unexpected end {reason:?}"
        );
    }
    assert!(sessions.iter().any(|s| end_of(s).0 == EndReason::Shutdown));
}

/// Runs the real binary, has one client open a session, sends `signal`, and checks the exit,
/// the report line and what `honeyport events --json` shows.
async fn binary_stops_cleanly_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("honeyport.toml");
    std::fs::write(
        &cfg,
        config(
            r#"shutdown_grace = "200ms"
idle_timeout = "60s""#,
            "",
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = tokio::process::Command::new(bin())
        .arg("--data-dir")
        .arg(&data)
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let addr: SocketAddr = loop {
        let line = tokio::time::timeout(WAIT, out.next_line())
            .await
            .expect("no listening line")
            .unwrap()
            .expect("stdout ended before listening");
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("honeyport: listening on tcp ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let mut c = connect(addr).await;
    read_until(&mut c, b"220 ready\r\n").await;
    send(&mut c, b"HELO sig\r\n").await;
    read_until(&mut c, b"250 hello\r\n").await;
    let client_port = c.local_addr().unwrap().port();

    let pid = child.id().expect("child pid").to_string();
    let st = std::process::Command::new("kill")
        .args(["-s", signal, &pid])
        .status()
        .unwrap();
    assert!(st.success());
    // The open session is ended after the grace period; the client sees the close.
    read_to_close(&mut c).await;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("binary did not exit")
        .unwrap();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, out.next_line()).await {
        printed.push(line);
    }
    assert!(
        status.success(),
        "exit status {status:?}; stdout {printed:#?}"
    );
    let stopped = printed
        .iter()
        .find(|l| l.starts_with("honeyport: stopped."))
        .unwrap_or_else(|| panic!("no stopped line in {printed:#?}"));
    assert!(stopped.contains("sessions=1"), "{stopped}");
    assert!(stopped.contains("events_dropped=0"), "{stopped}");

    let shown = std::process::Command::new(bin())
        .args(["events", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(shown.status.success());
    let events: Vec<Event> = String::from_utf8(shown.stdout)
        .unwrap()
        .lines()
        .map(|l| Event::from_json(l.as_bytes()).expect("events --json prints events"))
        .filter(|e| e.src_port == client_port)
        .collect();
    let connect = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Connect { .. }))
        .expect("connect event shown");
    let closed: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Closed { .. }))
        .collect();
    assert_eq!(closed.len(), 1, "{events:#?}");
    assert_eq!(closed[0].session, connect.session);
    assert!(
        matches!(
            &closed[0].kind,
            EventKind::Closed {
                reason: EndReason::Shutdown,
                ..
            }
        ),
        "{:?}",
        closed[0]
    );
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::Input { data, .. } if data.0 == b"HELO sig\r\n"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_cleanly_on_sigterm() {
    binary_stops_cleanly_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_cleanly_on_sigint() {
    binary_stops_cleanly_on("INT").await;
}
