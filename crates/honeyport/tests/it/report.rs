//! Reports on a store with known contents: `report top-ports`, `report port`, `report rising`
//! and `explain`, through the `honeyport` binary, compared with exact expected output.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

use honeyport::store::{Location, WriterOptions};
use honeyport_event::{EndReason, Event, EventKind, Payload, SessionId, Timestamp, Transport};

use crate::common::bin;

#[path = "mmdb.rs"]
mod mmdb;

const DAY: i64 = 86_400_000_000;
/// 2026-01-01 as a UTC day number.
const JAN1: i64 = 20454;

/// Writes sessions through the sensor's own store writer (so the rollups are kept exactly as
/// a running sensor keeps them).
struct Writer {
    sink: Box<dyn honeyport::store::Writer>,
    next: u64,
    batch: Vec<Event>,
}

impl Writer {
    fn new(dir: &Path) -> Writer {
        Writer {
            sink: honeyport::store::open_writer(
                &Location::Sqlite(dir.to_path_buf()),
                WriterOptions::default(),
            )
            .unwrap(),
            next: 1,
            batch: Vec::new(),
        }
    }

    /// One session on `day` (UTC day number) at `secs` into it, with `kinds` in between its
    /// connect and close.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        sensor: &str,
        day: i64,
        secs: i64,
        src: IpAddr,
        dst: IpAddr,
        port: u16,
        transport: Transport,
        kinds: Vec<EventKind>,
    ) {
        let id = SessionId::from_u64(self.next);
        self.next += 1;
        let ts = day * DAY + secs * 1_000_000;
        let ev = |i: i64, kind: EventKind| Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(ts + i).unwrap(),
            sensor: sensor.into(),
            session: id.clone(),
            transport,
            src_ip: src,
            src_port: 40000,
            dst_ip: dst,
            dst_port: port,
            kind,
        };
        self.batch.push(ev(
            0,
            EventKind::Connect {
                listener: "l".into(),
                persona: "p".into(),
                tls: false,
            },
        ));
        let n = kinds.len() as i64;
        for (i, k) in kinds.into_iter().enumerate() {
            self.batch.push(ev(i as i64 + 1, k));
        }
        self.batch.push(ev(
            n + 1,
            EventKind::Closed {
                duration: 1.0,
                bytes_in: 0,
                bytes_out: 0,
                reason: EndReason::PeerClosed,
                limit: None,
            },
        ));
        if self.batch.len() > 1000 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.sink.write(&self.batch).unwrap();
        self.batch.clear();
    }
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn src(i: u32) -> IpAddr {
    v4(0xc633_6400 + i) // 198.51.100.0/24 and up
}

fn dst(i: u32) -> IpAddr {
    v4(0xc000_0200 + i) // 192.0.2.0/24
}

fn classified(p: &str) -> EventKind {
    EventKind::Classified {
        protocol: p.into(),
        client_first: false,
        after_banner: Some(if p == "silent" { "silent" } else { "other" }.into()),
    }
}

fn login(user: &str, pass: &str, ok: bool) -> EventKind {
    let (username, password) = (Payload(user.into()), Payload(pass.into()));
    if ok {
        EventKind::LoginSuccess {
            username,
            password,
            method: "telnet".into(),
        }
    } else {
        EventKind::LoginFailed {
            username,
            password,
            method: "telnet".into(),
        }
    }
}

/// A store with 40 days of traffic: port 23 steady (20 sessions a day from 10 sources to 2
/// targets), port 26 steady at 5 a day from 5 sources to 1 target until day 39, when 60
/// sessions from 30 sources to 4 targets come (telnet brute force, a few SSH and SMTP
/// probes, silent ones); port 53/udp a little each day; a second sensor sees port 26 once.
fn lab(dir: &Path) {
    let mut w = Writer::new(dir);
    for d in 0..40 {
        let day = JAN1 + d;
        for i in 0..20u32 {
            w.session(
                "a",
                day,
                i64::from(i),
                src(i % 10),
                dst(i % 2),
                23,
                Transport::Tcp,
                vec![classified("telnet")],
            );
        }
        if d < 39 {
            for i in 0..5u32 {
                w.session(
                    "a",
                    day,
                    100 + i64::from(i),
                    src(100 + i),
                    dst(0),
                    26,
                    Transport::Tcp,
                    vec![classified("smtp")],
                );
            }
        }
        w.session(
            "a",
            day,
            200,
            src(7),
            dst(0),
            53,
            Transport::Udp,
            vec![classified("dns")],
        );
    }
    // Day 39 on port 26: 40 telnet brute forcers, 10 SSH, 4 SMTP, 6 silent.
    let day = JAN1 + 39;
    for i in 0..60u32 {
        let (proto, kinds) = match i {
            0..40 => (
                "telnet",
                vec![
                    login(
                        "root",
                        if i % 4 == 0 { "xc3511" } else { "vizxv" },
                        i % 4 == 0,
                    ),
                    login("admin", "admin", false),
                ],
            ),
            40..50 => (
                "ssh",
                vec![EventKind::ClientVersion {
                    version: Payload(b"SSH-2.0-paramiko_3.4.0".to_vec()),
                }],
            ),
            50..54 => ("smtp", vec![]),
            _ => ("silent", vec![]),
        };
        let mut kinds = kinds;
        kinds.push(classified(proto));
        if proto == "telnet" && i < 8 {
            kinds.push(EventKind::CommandInput {
                input: Payload(b"/bin/busybox ECCHI".to_vec()),
                recognised: false,
            });
        }
        w.session(
            "a",
            day,
            1000 + i64::from(i),
            src(200 + i / 2),
            dst(i % 4),
            26,
            Transport::Tcp,
            kinds,
        );
    }
    // Sensor b: one session on 26 from a source sensor a also saw that day.
    w.session(
        "b",
        day,
        5000,
        src(200),
        dst(9),
        26,
        Transport::Tcp,
        vec![classified("telnet")],
    );
    w.flush();
}

fn report(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .env_remove("HONEYPORT_MMDB")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_ports_for_a_day_a_window_and_a_sensor() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    // The latest day by default: 2026-02-09 (day 39).
    assert_eq!(
        report(dir.path(), &["report", "top-ports"]),
        "# top ports by records, 2026-02-09\n\
         rank  port  records  sources  targets  tcp  udp\n   \
         1    26       61       30        5   61    0\n   \
         2    23       20       10        2   20    0\n   \
         3    53        1        1        1    0    1\n"
    );
    assert_eq!(
        report(
            dir.path(),
            &[
                "report",
                "top-ports",
                "--by",
                "sources",
                "--sensor",
                "a",
                "--csv"
            ]
        ),
        "rank,port,records,sources,targets,tcp,udp\r\n\
         1,26,60,30,4,60,0\r\n\
         2,23,20,10,2,20,0\r\n\
         3,53,1,1,1,0,1\r\n"
    );
    // Over the first ten days: records add up, sources and targets stay distinct.
    let json = report(
        dir.path(),
        &[
            "report",
            "top-ports",
            "--since",
            "2026-01-01",
            "--until",
            "2026-01-10",
            "--by",
            "targets",
            "--n",
            "2",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["ports"],
        serde_json::json!([
            {"port": 23, "records": 200, "sources": 10, "targets": 2, "tcp": 200, "udp": 0},
            {"port": 26, "records": 50, "sources": 5, "targets": 1, "tcp": 50, "udp": 0},
        ])
    );
    assert_eq!(
        (v["since"].as_str(), v["until"].as_str()),
        (Some("2026-01-01"), Some("2026-01-10"))
    );
}

#[test]
fn port_history_trend_and_rising() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    let csv = report(
        dir.path(),
        &["report", "port", "26", "--days", "3", "--csv"],
    );
    // Day 39's baseline is days 9..=38: 5 sources and 1 target a day. Its trend:
    // sqrt((30-5)^2/5 + (5-1)^2/1) = sqrt(141); day 38 is steady: 0.
    let t39 = (625f64 / 5.0 + 16.0).sqrt();
    assert_eq!(
        csv,
        format!(
            "date,records,sources,targets,tcp,udp,trend\r\n\
             2026-02-07,5,5,1,5,0,0.000\r\n\
             2026-02-08,5,5,1,5,0,0.000\r\n\
             2026-02-09,61,30,5,61,0,{t39:.3}\r\n"
        )
    );
    let text = report(dir.path(), &["report", "port", "26", "--days", "40"]);
    assert!(
        text.starts_with("# port 26, 2026-01-01 .. 2026-02-09: 256 records\n"),
        "{text}"
    );
    // The sparkline: flat, then the jump at the end.
    // 5 of at most 30 is a low bar (5 / 30 x 7 rounds to 1 of 0..=7).
    assert!(
        text.contains("# sources |▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂▂█|"),
        "{text}"
    );
    // The store's first day has nothing to compare with; its second compares with it.
    assert!(
        text.contains("2026-01-01        5        5        1    5    0   0.000\n"),
        "{text}"
    );
    // Rising: port 26 wins; 23 is steady; 53 is under the volume guards.
    assert_eq!(
        report(dir.path(), &["report", "rising", "--sensor", "a"]),
        format!(
            "# rising ports on 2026-02-09, sensor a (trend against the 30 days before; at least 10 sources and 20 records)\n\
             rank  port   trend  sources  avg_sources  targets  avg_targets  records\n   \
             1    26  {:.3}       30          5.0        4          1.0       60\n",
            (625f64 / 5.0 + 9.0).sqrt()
        )
    );
    let none = report(
        dir.path(),
        &["report", "rising", "--day", "2026-01-20", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&none).unwrap();
    assert_eq!(v["ports"], serde_json::json!([]));
}

#[test]
fn explain_reads_like_a_conclusion_with_numbers() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    let text = report(
        dir.path(),
        &["explain", "26", "--days", "1", "--sensor", "a"],
    );
    let head: Vec<&str> = text.lines().take(8).collect();
    assert_eq!(
        head,
        [
            "Port 26/tcp, 2026-02-09 .. 2026-02-09, sensor a",
            "60 records from 30 sources to 4 targets; first seen 2026-01-01 00:01:40 UTC, last seen 2026-02-09 00:17:39 UTC.",
            "",
            "Clients spoke: telnet 67% (40), ssh 17% (10), silent 10% (6), smtp 6.7% (4).",
            "80 login attempts (10 accepted); most tried admin:admin (40x).",
            "Given the p persona (60 sessions): answered in another protocol 90%, left silently 10%.",
            "",
            "Protocols (share of sessions):",
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&report(
        dir.path(),
        &["explain", "26", "--days", "1", "--json"],
    ))
    .unwrap();
    // All sensors: one more record and target, the same 30 sources.
    assert_eq!(
        (&v["records"], &v["sources"], &v["targets"]),
        (
            &serde_json::json!(61),
            &serde_json::json!(30),
            &serde_json::json!(5)
        )
    );
    assert_eq!(
        v["credentials"],
        serde_json::json!([
            {"username": "admin", "password": "admin", "count": 40, "accepted": 0},
            {"username": "root", "password": "vizxv", "count": 30, "accepted": 0},
            {"username": "root", "password": "xc3511", "count": 10, "accepted": 10},
        ])
    );
    assert_eq!(
        v["usernames"],
        serde_json::json!([
            {"item": "admin", "count": 40, "percent": 50.0},
            {"item": "root", "count": 40, "percent": 50.0},
        ])
    );
    assert_eq!(
        v["commands"],
        serde_json::json!([{"item": "/bin/busybox ECCHI", "count": 8, "percent": 100.0}])
    );
    assert_eq!(
        v["ssh_versions"],
        serde_json::json!([{"item": "SSH-2.0-paramiko_3.4.0", "count": 10, "percent": 16.4}])
    );
    assert_eq!(
        v["top_sources"][0],
        serde_json::json!({"ip": "198.51.100.200", "records": 3})
    );
    // A port nobody visited.
    let empty = report(dir.path(), &["explain", "4444"]);
    assert_eq!(
        empty,
        "Port 4444/tcp, 2026-01-11 .. 2026-02-09, all sensors\nNo records for this port in this window.\n"
    );
}

#[test]
fn reports_on_a_missing_or_corrupt_store_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["report", "top-ports"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store at"));
    std::fs::write(
        dir.path().join("honeyport.db"),
        b"this is not sqlite at all, not even close",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["explain", "26"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a honeyport store") || err.contains("not a database"),
        "{err}"
    );
}

#[test]
fn sources_credentials_clients_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    let d = dir.path();
    let day = ["--days", "1", "--port", "26"];
    assert_eq!(
        report(
            d,
            &[
                &["report", "sources", "--sensor", "a", "--n", "3", "--csv"][..],
                &day
            ]
            .concat()
        ),
        "ip,records,ports,days,top_port\r\n\
         198.51.100.200,2,1,1,26\r\n\
         198.51.100.201,2,1,1,26\r\n\
         198.51.100.202,2,1,1,26\r\n"
    );
    // All sensors: sensor b's session adds one to the first source.
    assert!(report(
        d,
        &[&["report", "sources", "--n", "1", "--csv"][..], &day].concat()
    )
    .ends_with("\r\n198.51.100.200,3,1,1,26\r\n"));
    // Over the whole store: 198.51.100.7 (port 23 twice a day and port 53 once) leads,
    // then the other port-23 sources.
    assert_eq!(
        report(
            d,
            &["report", "sources", "--days", "40", "--n", "2", "--csv"]
        ),
        "ip,records,ports,days,top_port\r\n\
         198.51.100.7,120,2,40,23\r\n\
         198.51.100.0,80,1,40,23\r\n"
    );
    assert_eq!(
        report(
            d,
            &[&["report", "credentials", "--n", "2", "--csv"][..], &day].concat()
        ),
        "kind,username,password,count,accepted\r\n\
         pair,admin,admin,40,0\r\n\
         pair,root,vizxv,30,0\r\n\
         username,admin,,40,\r\n\
         username,root,,40,\r\n\
         password,,admin,40,\r\n\
         password,,vizxv,30,\r\n"
    );
    assert_eq!(
        report(d, &[&["report", "clients", "--csv"][..], &day].concat()),
        "kind,client,sessions\r\nversion,SSH-2.0-paramiko_3.4.0,10\r\n"
    );
    assert_eq!(
        report(
            d,
            &[
                &[
                    "report",
                    "sessions",
                    "--protocol",
                    "ssh",
                    "--n",
                    "2",
                    "--csv"
                ][..],
                &day
            ]
            .concat()
        ),
        "session,start,src,port,served,protocol,client,logins,commands,tags\r\n\
         000000000000043d,2026-02-09 00:17:29,198.51.100.224,26,p,ssh,,0/0,0,\r\n\
         000000000000043c,2026-02-09 00:17:28,198.51.100.224,26,p,ssh,,0/0,0,\r\n"
    );
    let v: serde_json::Value = serde_json::from_str(&report(
        d,
        &[
            "report",
            "sessions",
            "--logins",
            "--src",
            "198.51.100.200",
            "--json",
        ],
    ))
    .unwrap();
    let s = v["sessions"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{v}");
    assert_eq!(
        (&s[0]["logins"], &s[1]["logins_ok"]),
        (&serde_json::json!(2), &serde_json::json!(1))
    );
}

#[test]
fn port_charts_are_written_with_both_series() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    let svg = dir.path().join("p26.svg");
    let png = dir.path().join("p26.png");
    report(
        dir.path(),
        &[
            "report",
            "port",
            "26",
            "--days",
            "40",
            "--svg",
            svg.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let series = |name: &str| -> Vec<(f64, f64)> {
        let poly = doc
            .descendants()
            .find(|n| n.attribute("data-series") == Some(name))
            .unwrap_or_else(|| panic!("no {name} series in {text}"));
        poly.attribute("points")
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    };
    let (src, dst) = (series("sources"), series("targets"));
    // One point per day; the last day (30 sources, 5 targets) is the highest of both, and
    // sources are drawn above targets every day (a smaller y is higher).
    assert_eq!((src.len(), dst.len()), (40, 40));
    let top = |s: &[(f64, f64)]| s.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    assert_eq!(src[39].1, top(&src));
    assert_eq!(dst[39].1, top(&dst));
    assert!(src.iter().zip(&dst).all(|(s, d)| s.1 < d.1));
    let png_bytes = std::fs::read(&png).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn an_empty_store_answers_every_report_with_nothing() {
    let dir = tempfile::tempdir().unwrap();
    drop(Writer::new(dir.path())); // the schema, no sessions
    let d = dir.path();
    let today = honeyport::report::date_of(honeyport::report::today());
    assert_eq!(
        report(d, &["report", "top-ports"]),
        format!("# top ports by records, {today}\n(no records)\n")
    );
    assert_eq!(
        report(d, &["report", "port", "26", "--days", "2", "--csv"])
            .lines()
            .count(),
        3,
        "a header and two days of zeros"
    );
    assert!(report(d, &["report", "rising"]).ends_with("(none)\n"));
    assert!(report(d, &["explain", "26"]).ends_with("No records for this port in this window.\n"));
    for what in ["sources", "credentials", "clients", "sessions"] {
        assert!(report(d, &["report", what]).ends_with("(none)\n"), "{what}");
    }
}

#[test]
fn sources_get_their_network_and_country_from_mmdb_files() {
    let dir = tempfile::tempdir().unwrap();
    lab(dir.path());
    let d = dir.path();
    // ASN: 198.51.100.0/24 is AS64496 Example Net. Country: 198.51.100.0/25 is DE, and
    // 198.51.100.201 has only a registered country, NL.
    let asn = d.join("GeoLite2-ASN.mmdb");
    let country = d.join("GeoLite2-Country.mmdb");
    std::fs::write(&asn, mmdb::asn()).unwrap();
    std::fs::write(&country, mmdb::country()).unwrap();
    let (asn, country) = (asn.to_str().unwrap(), country.to_str().unwrap());
    let geo = ["--mmdb", asn, "--mmdb", country];
    const EX: &str = "AS64496 Example Net";

    let v: serde_json::Value = serde_json::from_str(&report(
        d,
        &[
            &["explain", "26", "--days", "1", "--sensor", "a", "--json"][..],
            &geo,
        ]
        .concat(),
    ))
    .unwrap();
    assert_eq!(
        v["top_sources"][0],
        serde_json::json!({"ip": "198.51.100.200", "records": 2, "asn": EX})
    );
    assert_eq!(
        v["top_sources"][1],
        serde_json::json!({"ip": "198.51.100.201", "records": 2, "asn": EX, "country": "NL"})
    );
    // Port 23's sources are in the lower /25: both.
    let v: serde_json::Value = serde_json::from_str(&report(
        d,
        &[&["explain", "23", "--days", "1", "--json"][..], &geo].concat(),
    ))
    .unwrap();
    assert_eq!(
        v["top_sources"][0],
        serde_json::json!({"ip": "198.51.100.0", "records": 2, "asn": EX, "country": "DE"})
    );
    // In text, after the count.
    let text = report(
        d,
        &[&["explain", "26", "--days", "1", "--sensor", "a"][..], &geo].concat(),
    );
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(lines.contains(&format!("198.51.100.200 2 {EX}")), "{text}");
    assert!(
        lines.contains(&format!("198.51.100.201 2 {EX}, NL")),
        "{text}"
    );
    // Without a database, nothing changes (the other tests compare exact output).
    let plain = report(
        d,
        &["explain", "26", "--days", "1", "--sensor", "a", "--json"],
    );
    assert!(!plain.contains("\"asn\"") && !plain.contains("\"country\""));

    // report sources: two more columns only with a database.
    let day = [
        "--days", "1", "--port", "26", "--sensor", "a", "--n", "3", "--csv",
    ];
    assert_eq!(
        report(d, &[&["report", "sources"][..], &day, &geo].concat()),
        format!(
            "ip,records,ports,days,top_port,asn,country\r\n\
             198.51.100.200,2,1,1,26,{EX},\r\n\
             198.51.100.201,2,1,1,26,{EX},NL\r\n\
             198.51.100.202,2,1,1,26,{EX},\r\n"
        )
    );
    assert_eq!(
        report(
            d,
            &[
                &["report", "sources", "--days", "40", "--n", "2", "--csv"][..],
                &geo
            ]
            .concat()
        ),
        format!(
            "ip,records,ports,days,top_port,asn,country\r\n\
             198.51.100.7,120,2,40,23,{EX},DE\r\n\
             198.51.100.0,80,1,40,23,{EX},DE\r\n"
        )
    );
    let v: serde_json::Value = serde_json::from_str(&report(
        d,
        &[
            &[
                "report", "sources", "--days", "1", "--port", "26", "--n", "2", "--json",
            ][..],
            &geo,
        ]
        .concat(),
    ))
    .unwrap();
    assert_eq!(
        v["sources"],
        serde_json::json!([
            {"ip": "198.51.100.200", "records": 3, "ports": 1, "days": 1, "top_port": 26, "asn": EX},
            {"ip": "198.51.100.201", "records": 2, "ports": 1, "days": 1, "top_port": 26, "asn": EX, "country": "NL"},
        ])
    );
    // The table: the same columns, aligned.
    let table = report(
        d,
        &[&["report", "sources", "--days", "40", "--n", "1"][..], &geo].concat(),
    );
    let head: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["ip", "records", "ports", "days", "top_port", "asn", "country"]
    );
    assert!(table.ends_with(&format!("23  {EX}  DE\n")), "{table}");

    // HONEYPORT_MMDB, colon-separated, when no --mmdb is given.
    let run = |env: &str, args: &[&str]| {
        Command::new(bin())
            .env("HONEYPORT_MMDB", env)
            .arg("--data-dir")
            .arg(d)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(
        &format!("{asn}:{country}"),
        &["report", "sources", "--days", "40", "--n", "1", "--csv"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(&format!(",{EX},DE\r\n")));
    // --mmdb wins over it.
    let out = run(
        "/nonexistent.mmdb",
        &[
            "report", "sources", "--days", "40", "--n", "1", "--csv", "--mmdb", country,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(",23,,DE\r\n"));

    // A file that is not a database: a clear error naming it, exit 1.
    let notes = d.join("notes.txt");
    std::fs::write(&notes, "these are not the databases you are looking for\n").unwrap();
    let notes = notes.to_str().unwrap();
    for (env, args) in [
        ("", &["explain", "26", "--mmdb", asn, "--mmdb", notes][..]),
        ("", &["report", "sources", "--mmdb", notes][..]),
        (notes, &["explain", "26"][..]),
    ] {
        let out = run(env, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(notes) && err.contains("is not a MaxMind DB (.mmdb) file"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
