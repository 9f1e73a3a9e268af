//! `honeyport import`: cowrie JSON, iptables firewall lines and tcp-honeypot logs, through the
//! real binary, checked in the store and in the reports; a second import adds nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use honeyport::import::{import_id, parse_iso};
use honeyport_event::{Event, EventKind};
use serde_json::Value;

use crate::common::bin;

fn fixture(name: &str) -> PathBuf {
    crate::common::fixtures().join("import").join(name)
}

/// Microseconds since the epoch of an RFC 3339 time.
fn at(t: &str) -> i64 {
    parse_iso(t).unwrap()
}

fn hp(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("honeyport runs");
    out
}

/// Runs `honeyport ARGS` and returns its stdout; it must succeed.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = hp(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `honeyport import --json ...`: the summary.
fn import(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["import", "--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &a)).unwrap()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn events(dir: &Path, id: u64) -> Vec<Event> {
    let out = ok(
        dir,
        &[
            "events",
            "--session",
            &format!("{id:016x}"),
            "--json",
            "--limit",
            "1000",
        ],
    );
    let mut evs: Vec<Event> = out
        .lines()
        .map(|l| Event::from_json(l.as_bytes()).unwrap())
        .collect();
    evs.reverse();
    evs
}

fn eventids(evs: &[Event]) -> Vec<&'static str> {
    evs.iter().map(|e| e.kind.eventid()).collect()
}

#[test]
fn cowrie_sessions_are_imported_once_with_their_reports() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("cowrie.json");
    let fs = f.to_str().unwrap();
    let s = import(dir.path(), &["--format", "cowrie", fs]);
    assert_eq!(n(&s, "lines"), 18);
    assert_eq!(n(&s, "sessions_new"), 2);
    assert_eq!(n(&s, "sessions_existing"), 0);
    assert_eq!(n(&s, "sessions_unclosed"), 0);
    // 15 events of the log that map, plus a session.classified per session.
    assert_eq!(n(&s, "events"), 17);
    assert_eq!(n(&s, "malformed"), 1);
    let m = s["malformed_lines"][0].as_str().unwrap();
    assert!(
        m.starts_with(&format!("{fs}:11: not a cowrie JSON event")),
        "{m}"
    );
    assert_eq!(
        s["not_mapped"],
        serde_json::json!({"cowrie.log.closed": 1, "cowrie.session.params": 1})
    );
    assert_eq!(s["dropped"], serde_json::json!({}));

    // The SSH session, event by event.
    let ssh = import_id(
        at("2019-08-14T12:00:00.1Z"),
        &[b"sensor-a", b"a1b2c3d4e5f6"],
    );
    let evs = events(dir.path(), ssh);
    assert_eq!(
        eventids(&evs),
        [
            "session.connect",
            "client.version",
            "client.kex",
            "login.failed",
            "login.success",
            "command.input",
            "client.size",
            "session.classified",
            "session.closed"
        ]
    );
    let e = &evs[0];
    assert_eq!(e.timestamp.to_string(), "2019-08-14T12:00:00.100000Z");
    assert_eq!(e.sensor, "sensor-a");
    assert_eq!(
        (
            e.src_ip.to_string(),
            e.src_port,
            e.dst_ip.to_string(),
            e.dst_port
        ),
        ("203.0.113.10".into(), 51000, "198.51.100.2".into(), 22)
    );
    assert_eq!(
        e.kind,
        EventKind::Connect {
            listener: "cowrie".into(),
            persona: "cowrie-ssh".into(),
            tls: false
        }
    );
    // Old cowrie's quotes around the version are gone.
    let EventKind::ClientVersion { version } = &evs[1].kind else {
        panic!("{:?}", evs[1])
    };
    assert_eq!(version.as_bytes(), b"SSH-2.0-libssh2_1.8.0");
    let EventKind::ClientKex {
        hassh, kex_algs, ..
    } = &evs[2].kind
    else {
        panic!("{:?}", evs[2])
    };
    assert_eq!(hassh, "92674389fa1e47a27ddd8d9b63ecd42b");
    assert_eq!(kex_algs[1], "ecdh-sha2-nistp256");
    let EventKind::LoginFailed {
        username,
        password,
        method,
    } = &evs[3].kind
    else {
        panic!("{:?}", evs[3])
    };
    assert_eq!(
        (username.as_bytes(), password.as_bytes(), method.as_str()),
        (&b"root"[..], &b"123456"[..], "ssh-password")
    );
    assert_eq!(evs[3].timestamp.to_string(), "2019-08-14T12:00:01.500000Z");
    assert_eq!(
        evs[7].kind,
        EventKind::Classified {
            protocol: "ssh".into(),
            client_first: true,
            after_banner: None
        }
    );
    let EventKind::Closed {
        duration, reason, ..
    } = &evs[8].kind
    else {
        panic!("{:?}", evs[8])
    };
    assert_eq!(*duration, 6.0);
    assert_eq!(reason.as_str(), "peer_closed");

    // The telnet session.
    let telnet = import_id(
        at("2019-08-14T12:00:00.2Z"),
        &[b"sensor-a", b"0f1e2d3c4b5a"],
    );
    let evs = events(dir.path(), telnet);
    assert_eq!(
        eventids(&evs),
        [
            "session.connect",
            "login.failed",
            "login.success",
            "command.input",
            "session.file_download",
            "command.input",
            "session.classified",
            "session.closed"
        ]
    );
    assert!(matches!(&evs[1].kind, EventKind::LoginFailed { method, .. } if method == "telnet"));
    assert_eq!(
        evs[4].kind,
        EventKind::FileDownload {
            url: b"http://192.0.2.50/bins.sh".to_vec().into(),
            command: "cowrie".into(),
            outfile: Some(
                b"var/lib/cowrie/downloads/5e8a8b4bb1a3ef8a8d8e3f6b1c5f1e2e0b3b5d6c7e8f9a0b1c2d3e4f5a6b7c8d"
                    .to_vec()
                    .into()
            ),
        }
    );
    assert!(matches!(
        &evs[5].kind,
        EventKind::CommandInput { recognised: false, input } if input.as_bytes() == b"./bins.sh x86"
    ));
    assert_eq!(
        evs[6].kind,
        EventKind::Classified {
            protocol: "telnet".into(),
            client_first: false,
            after_banner: Some("same".into())
        }
    );

    // The reports.
    let top = ok(
        dir.path(),
        &["report", "top-ports", "--day", "2019-08-14", "--csv"],
    );
    assert_eq!(
        top,
        "rank,port,records,sources,targets,tcp,udp\r\n1,22,1,1,1,1,0\r\n2,23,1,1,1,1,0\r\n"
    );
    let explain = |port: &str| -> Value {
        serde_json::from_str(&ok(
            dir.path(),
            &[
                "explain",
                port,
                "--until",
                "2019-08-14",
                "--days",
                "1",
                "--json",
            ],
        ))
        .unwrap()
    };
    let e23 = explain("23");
    assert_eq!(
        (n(&e23, "records"), n(&e23, "sources"), n(&e23, "targets")),
        (1, 1, 1)
    );
    assert_eq!(
        (n(&e23, "login_attempts"), n(&e23, "logins_accepted")),
        (2, 1)
    );
    assert_eq!(
        e23["credentials"],
        serde_json::json!([
            {"username": "admin", "password": "admin", "count": 1, "accepted": 1},
            {"username": "root", "password": "admin", "count": 1, "accepted": 0}
        ])
    );
    assert_eq!(e23["downloads"][0]["item"], "http://192.0.2.50/bins.sh");
    assert_eq!(e23["protocols"][0]["item"], "telnet");
    let e22 = explain("22");
    assert_eq!(n(&e22, "login_attempts"), 2);
    assert_eq!(e22["ssh_versions"][0]["item"], "SSH-2.0-libssh2_1.8.0");
    assert_eq!(e22["hassh"][0]["item"], "92674389fa1e47a27ddd8d9b63ecd42b");
    assert_eq!(e22["commands"][0]["item"], "uname -a");

    // Again: nothing added.
    let again = import(dir.path(), &["--format", "cowrie", fs]);
    assert_eq!(n(&again, "sessions_new"), 0);
    assert_eq!(n(&again, "sessions_existing"), 2);
    assert_eq!(n(&again, "events"), 0);
    assert_eq!(
        ok(
            dir.path(),
            &["report", "top-ports", "--day", "2019-08-14", "--csv"]
        ),
        top
    );
    assert_eq!(explain("23"), e23);
    assert_eq!(events(dir.path(), ssh).len(), 9);

    // --sensor puts the same sessions under another sensor (new ids).
    let other = import(dir.path(), &["--format", "cowrie", "--sensor", "other", fs]);
    assert_eq!(n(&other, "sessions_new"), 2);
    let evs = events(
        dir.path(),
        import_id(at("2019-08-14T12:00:00.1Z"), &[b"other", b"a1b2c3d4e5f6"]),
    );
    assert_eq!(evs[0].sensor, "other");
}

#[test]
fn a_gzipped_cowrie_log_imports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("cowrie.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(fixture("cowrie.json")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    let data = dir.path().join("data");
    let s = import(&data, &["--format", "cowrie", gz.to_str().unwrap()]);
    assert_eq!(
        (
            n(&s, "lines"),
            n(&s, "events"),
            n(&s, "sessions_new"),
            n(&s, "malformed")
        ),
        (18, 17, 2, 1)
    );
}

#[test]
fn iptables_records_count_in_the_reports_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("iptables.log");
    let fs = f.to_str().unwrap();
    let s = import(dir.path(), &["--format", "iptables", "--year", "2026", fs]);
    assert_eq!(n(&s, "lines"), 7);
    assert_eq!(n(&s, "records"), 5);
    assert_eq!(n(&s, "records_existing"), 0);
    assert_eq!(n(&s, "events"), 0);
    assert_eq!(n(&s, "malformed"), 1);
    assert_eq!(
        s["malformed_lines"],
        serde_json::json!([format!(
            "{fs}:7: no syslog or RFC 3339 timestamp at the start"
        )])
    );
    assert_eq!(s["not_mapped"], serde_json::json!({"PROTO=ICMP": 1}));

    // The rows as stored.
    let db = rusqlite::Connection::open(dir.path().join("honeyport.db")).unwrap();
    let rows: Vec<(i64, String, String, Vec<u8>, i64, i64)> = db
        .prepare("SELECT ts, sensor, proto, src, spt, dpt FROM firewall ORDER BY ts")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 5);
    // Nov 26 12:34:56 (syslog, --year 2026, UTC) and the RFC 3339 line's microseconds.
    assert_eq!(
        rows[0],
        (
            1_795_696_496_000_000,
            "firewall".into(),
            "tcp".into(),
            vec![203, 0, 113, 5],
            54321,
            26
        )
    );
    assert_eq!(rows[3].0, 1_795_698_000_250_000);
    assert_eq!((rows[3].2.as_str(), rows[3].5), ("udp", 5060));
    assert_eq!(rows[4].3.len(), 16);
    // No sessions: records only.
    let sessions: i64 = db
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 0);

    let top = ok(
        dir.path(),
        &["report", "top-ports", "--day", "2026-11-26", "--csv"],
    );
    // Port 26: 4 records from 3 sources (203.0.113.5, .6, 2001:db8::5) to 3 targets.
    assert_eq!(
        top,
        "rank,port,records,sources,targets,tcp,udp\r\n1,26,4,3,3,4,0\r\n2,5060,1,1,1,0,1\r\n"
    );
    let e: Value = serde_json::from_str(&ok(
        dir.path(),
        &[
            "explain",
            "26",
            "--until",
            "2026-11-26",
            "--days",
            "1",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (n(&e, "records"), n(&e, "sources"), n(&e, "targets")),
        (4, 3, 3)
    );

    let again = import(dir.path(), &["--format", "iptables", "--year", "2026", fs]);
    assert_eq!(
        (n(&again, "records"), n(&again, "records_existing")),
        (0, 5)
    );
    assert_eq!(
        ok(
            dir.path(),
            &["report", "top-ports", "--day", "2026-11-26", "--csv"]
        ),
        top
    );
}

#[test]
fn tcp_honeypot_connections_become_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("tcp-honeypot.log");
    let fs = f.to_str().unwrap();
    // The honeypot's clock was an hour ahead of UTC.
    let s = import(
        dir.path(),
        &["--format", "simple-listener", "--utc-offset", "+01:00", fs],
    );
    assert_eq!(n(&s, "lines"), 13);
    assert_eq!(n(&s, "sessions_new"), 2);
    assert_eq!(n(&s, "events"), 9);
    assert_eq!(n(&s, "malformed"), 0);
    assert_eq!(
        s["not_mapped"],
        serde_json::json!({"Listening on": 2, "Ports specified": 1, "send banner": 1, "send reply": 2})
    );

    let smtp = import_id(
        at("2019-11-09T11:15:00Z"),
        &[
            b"tcp-honeypot",
            b"0.0.0.0:25",
            b"203.0.113.30:45678",
            b"20191109-121500",
        ],
    );
    let evs = events(dir.path(), smtp);
    assert_eq!(
        eventids(&evs),
        [
            "session.connect",
            "session.input",
            "session.input",
            "session.classified",
            "session.closed"
        ]
    );
    assert_eq!(evs[0].timestamp.to_string(), "2019-11-09T11:15:00.000000Z");
    assert_eq!(
        (evs[0].src_ip.to_string(), evs[0].src_port, evs[0].dst_port),
        ("203.0.113.30".into(), 45678, 25)
    );
    assert_eq!(
        evs[1].kind,
        EventKind::Input {
            data: b"EHLO scanner.example\r\n".to_vec().into(),
            len: 22
        }
    );
    assert_eq!(
        evs[3].kind,
        EventKind::Classified {
            protocol: "smtp".into(),
            client_first: false,
            after_banner: Some("answered".into())
        }
    );
    assert_eq!(
        evs[4].kind,
        EventKind::Closed {
            duration: 12.0,
            bytes_in: 28,
            bytes_out: 0,
            reason: honeyport_event::EndReason::IdleTimeout,
            limit: None
        }
    );
    let http = import_id(
        at("2019-11-09T11:15:01Z"),
        &[
            b"tcp-honeypot",
            b"0.0.0.0:9200",
            b"198.51.100.99:33000",
            b"20191109-121501",
        ],
    );
    let evs = events(dir.path(), http);
    assert_eq!(evs.len(), 4);
    assert!(
        matches!(&evs[2].kind, EventKind::Classified { protocol, client_first: true, .. } if protocol == "http")
    );

    let top = ok(
        dir.path(),
        &["report", "top-ports", "--day", "2019-11-09", "--csv"],
    );
    assert_eq!(
        top,
        "rank,port,records,sources,targets,tcp,udp\r\n1,25,1,1,1,1,0\r\n2,9200,1,1,1,1,0\r\n"
    );
    let again = import(
        dir.path(),
        &["--format", "simple-listener", "--utc-offset", "+01:00", fs],
    );
    assert_eq!(
        (
            n(&again, "sessions_new"),
            n(&again, "sessions_existing"),
            n(&again, "events")
        ),
        (0, 2, 0)
    );
    assert_eq!(
        ok(
            dir.path(),
            &["report", "top-ports", "--day", "2019-11-09", "--csv"]
        ),
        top
    );
}

const CONNECT: &str = r#"{"eventid":"cowrie.session.connect","src_ip":"203.0.113.1","src_port":1234,"dst_ip":"198.51.100.2","dst_port":22,"session":"S","protocol":"ssh","sensor":"s","timestamp":"2020-01-01T00:00:00.000000Z"}"#;
const CLOSED: &str = r#"{"eventid":"cowrie.session.closed","duration":1.0,"sensor":"s","timestamp":"2020-01-01T00:00:01.000000Z","session":"S"}"#;

#[test]
fn malformed_lines_are_reported_by_line_number_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let mut lines: Vec<String> = vec![
        CONNECT.replace("\"S\"", "\"one\""),                                  // 1
        "{not json".into(),                                                   // 2
        r#"{"eventid":"cowrie.login.failed","session":"one"}"#.into(),        // 3
        r#"{"eventid":"cowrie.login.failed","session":"one","timestamp":"yesterday"}"#.into(), // 4
        r#"{"eventid":"cowrie.session.connect","session":"two","timestamp":"2020-01-01T00:00:00Z","src_ip":"x"}"#.into(), // 5
        String::new(),                                                        // 6: empty, skipped
        format!("{{\"eventid\":\"{}\"}}", "x".repeat(1024 * 1024 + 10)),      // 7: too long
        CLOSED.replace("\"S\"", "\"one\""),                                   // 8
    ];
    // 25 more malformed lines: all counted, the first 20 in all listed.
    for _ in 0..25 {
        lines.push("[]".into());
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = hp(
        dir.path(),
        &["import", "--format", "cowrie", path.to_str().unwrap()],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let p = path.to_str().unwrap();
    for (line, why) in [
        (2, "not a cowrie JSON event"),
        (3, "no timestamp"),
        (4, "bad timestamp \"yesterday\""),
        (5, "session.connect without valid src_ip"),
        (7, "line of 1048600 bytes is longer than 1048576: skipped"),
        (9, "no eventid"),
    ] {
        assert!(
            text.contains(&format!("    {p}:{line}: {why}")),
            "{line}:\n{text}"
        );
    }
    assert!(text.contains("  malformed lines: 30\n"), "{text}");
    assert!(text.contains(&format!("    {p}:23: ")), "{text}");
    assert!(!text.contains(&format!("    {p}:24: ")), "{text}");
    assert!(text.contains("    ... and 10 more\n"), "{text}");
    assert!(text.contains("  sessions: 1 new, 0 already"), "{text}");

    // Nothing importable at all: a failure.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "junk\n").unwrap();
    let out = hp(
        &dir.path().join("d2"),
        &["import", "--format", "cowrie", junk.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    // A missing file: nothing imported at all.
    let out = hp(
        &dir.path().join("d3"),
        &[
            "import",
            "--format",
            "cowrie",
            path.to_str().unwrap(),
            "/nonexistent/cowrie.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cowrie.json"));
}

/// ~200,000 lines streamed: 40,000 sessions of 5 lines, 100 open at a time.
#[test]
fn a_large_cowrie_log_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let sessions = 40_000u64;
    let lines_of = |i: u64| -> [String; 5] {
        let ts = |k: u64| {
            let s = i + k;
            format!(
                "2021-03-{:02}T{:02}:{:02}:{:02}.000000Z",
                1 + s / 86_400 % 28,
                s / 3600 % 24,
                s / 60 % 60,
                s % 60
            )
        };
        let sess = format!("{i:012x}");
        [
            format!(
                r#"{{"eventid":"cowrie.session.connect","src_ip":"10.{}.{}.{}","src_port":{},"dst_ip":"192.0.2.1","dst_port":{},"session":"{sess}","protocol":"ssh","sensor":"big","timestamp":"{}"}}"#,
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255,
                1024 + i % 60000,
                if i & 1 == 0 { 22 } else { 2222 },
                ts(0)
            ),
            format!(
                r#"{{"eventid":"cowrie.client.version","version":"SSH-2.0-Go","session":"{sess}","sensor":"big","timestamp":"{}"}}"#,
                ts(1)
            ),
            format!(
                r#"{{"eventid":"cowrie.login.failed","username":"root","password":"p{}","session":"{sess}","sensor":"big","timestamp":"{}"}}"#,
                i % 1000,
                ts(2)
            ),
            format!(
                r#"{{"eventid":"cowrie.session.params","arch":"x","session":"{sess}","sensor":"big","timestamp":"{}"}}"#,
                ts(3)
            ),
            format!(
                r#"{{"eventid":"cowrie.session.closed","duration":4.0,"session":"{sess}","sensor":"big","timestamp":"{}"}}"#,
                ts(4)
            ),
        ]
    };
    // Interleaved: each block of 100 sessions connects, then every session's middle lines,
    // then the closes.
    for block in 0..sessions / 100 {
        let ids: Vec<u64> = (block * 100..block * 100 + 100).collect();
        let all: Vec<[String; 5]> = ids.iter().map(|&i| lines_of(i)).collect();
        for k in 0..5 {
            for l in &all {
                writeln!(w, "{}", l[k]).unwrap();
            }
        }
    }
    w.flush().unwrap();
    drop(w);
    let data = dir.path().join("data");
    let s = import(&data, &["--format", "cowrie", path.to_str().unwrap()]);
    assert_eq!(n(&s, "lines"), sessions * 5);
    assert_eq!(n(&s, "sessions_new"), sessions);
    assert_eq!(n(&s, "sessions_unclosed"), 0);
    // connect, version, login, classified, closed.
    assert_eq!(n(&s, "events"), sessions * 5);
    assert_eq!(n(&s, "malformed"), 0);
    assert_eq!(s["not_mapped"]["cowrie.session.params"], sessions);
    let db = rusqlite::Connection::open(data.join("honeyport.db")).unwrap();
    let (count, logins): (i64, i64) = db
        .query_row("SELECT count(*), sum(logins) FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((count as u64, logins as u64), (sessions, sessions));
    let records: i64 = db
        .query_row(
            "SELECT sum(records) FROM port_day WHERE sensor = 'big'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(records as u64, sessions);
}
