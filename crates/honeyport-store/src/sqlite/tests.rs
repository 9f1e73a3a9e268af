//! The SQLite backend's own tests: migrations of older stores, and exact rollup counts.
#![allow(clippy::unwrap_used)]

use rusqlite::{params, Connection};

use super::schema::SCHEMA_V1;
use super::{SqliteReader, SqliteWriter};
use crate::{FirewallRecord, Reader, Scope, Window, Writer, WriterOptions, DAY_MICROS, DB_FILE};

/// A store written before the summary columns existed gets them when the sensor opens it
/// again, and its old rows read back (with empty summaries).
#[test]
fn a_schema_1_store_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute(
            "INSERT INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
             VALUES (42, 's', 1, 'tcp', '192.0.2.1', 1, '192.0.2.2', 26, 'l', 'p', 0)",
            [],
        )
        .unwrap();
    }
    drop(SqliteWriter::open(&path, WriterOptions::default()).unwrap());
    // Twice is harmless.
    drop(SqliteWriter::open(&path, WriterOptions::default()).unwrap());
    let store = SqliteReader::open(dir.path()).unwrap();
    let s = store.summary("000000000000002a").unwrap().unwrap();
    assert_eq!((s.logins, s.commands, s.protocol), (0, 0, None));
    let v: String = store
        .connection()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, super::schema::VERSION.to_string());
    // Its one session was counted in the rollups, once.
    assert_eq!(
        store
            .port_in_window(Scope::Fleet, 26, Window::day(0))
            .unwrap()
            .records,
        1
    );
}

/// A store that has sessions but was written before the rollups existed gets them from its
/// sessions when a reader opens it, once.
#[test]
fn an_older_store_gets_its_rollups_from_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        for (i, src) in ["198.51.100.1", "198.51.100.1", "198.51.100.7"]
            .iter()
            .enumerate()
        {
            c.execute(
                "INSERT INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
                 VALUES (?1, 's', ?2, 'tcp', ?3, 1, '192.0.2.1', 23, 'l', 'p', 0)",
                params![i as i64, 5 * DAY_MICROS + i as i64, src],
            )
            .unwrap();
        }
    }
    for _ in 0..2 {
        let r = SqliteReader::open(dir.path()).unwrap();
        let c = r
            .port_in_window(Scope::Sensor("s"), 23, Window::day(5))
            .unwrap();
        assert_eq!(
            (c.records, c.tcp, c.udp, c.sources, c.targets),
            (3, 3, 0, 2, 1)
        );
        let c = r.port_in_window(Scope::Fleet, 23, Window::day(5)).unwrap();
        assert_eq!((c.records, c.sources, c.targets), (3, 2, 1));
    }
}

#[test]
fn a_missing_or_foreign_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SqliteReader::open(dir.path()),
        Err(crate::StoreError::Missing(_))
    ));
    std::fs::write(dir.path().join(DB_FILE), b"not a database at all, no").unwrap();
    let e = SqliteReader::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("not a honeyport store"), "{e}");
}

fn rec(w: &mut dyn Writer, day: i64, sensor: &str, port: u16, src: &str, dst: &str) {
    let r = FirewallRecord {
        ts_micros: day * DAY_MICROS + 3_600_000_000,
        udp: port == 53,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        spt: 40000,
        dpt: port,
    };
    assert_eq!(w.write_firewall(sensor, &[r, r]).unwrap(), 1);
}

#[test]
fn records_sources_and_targets_are_counted_exactly_per_day_port_and_sensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SqliteWriter::open_dir(dir.path(), WriterOptions::default()).unwrap();
    rec(&mut w, 100, "a", 26, "198.51.100.1", "192.0.2.1");
    rec(&mut w, 100, "a", 26, "198.51.100.1", "192.0.2.2");
    rec(&mut w, 100, "b", 26, "198.51.100.1", "192.0.2.9");
    rec(&mut w, 100, "b", 26, "::ffff:198.51.100.2", "192.0.2.9");
    rec(&mut w, 101, "a", 26, "198.51.100.1", "192.0.2.1");
    rec(&mut w, 100, "a", 53, "2001:db8::1", "2001:db8::2");
    let r = SqliteReader::open(dir.path()).unwrap();
    let row = |day, scope, port| {
        let c = r.port_in_window(scope, port, Window::day(day)).unwrap();
        (c.records, c.tcp, c.udp, c.sources, c.targets)
    };
    assert_eq!(row(100, Scope::Sensor("a"), 26), (2, 2, 0, 1, 2));
    assert_eq!(row(100, Scope::Sensor("b"), 26), (2, 2, 0, 2, 1));
    // All sensors: one source seen by both sensors counts once.
    assert_eq!(row(100, Scope::Fleet, 26), (4, 4, 0, 2, 3));
    assert_eq!(row(101, Scope::Fleet, 26), (1, 1, 0, 1, 1));
    assert_eq!(row(100, Scope::Fleet, 53), (1, 0, 1, 1, 1));
    // Over both days: 198.51.100.1 is one source.
    let w2 = Window {
        since: 100,
        until: 101,
    };
    let c = r.port_in_window(Scope::Fleet, 26, w2).unwrap();
    assert_eq!((c.records, c.sources, c.targets), (5, 2, 3));
    assert_eq!(r.day_range(Scope::Fleet).unwrap(), Some((100, 101)));
}

/// A version 3 store (before identities) gets the legacy ones on migration: run 0, seq = the
/// row id, the session's sensor; its per-sensor counters start from its events; what is
/// written afterwards gets a real run, seq from 1.
#[test]
fn a_schema_3_store_gets_legacy_identities() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        for (name, ty) in super::schema::SUMMARY_COLUMNS {
            c.execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {name} {ty}"))
                .unwrap();
        }
        c.execute_batch(super::schema::ROLLUPS).unwrap();
        c.execute_batch("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
            .unwrap();
        c.execute(
            "INSERT INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
             VALUES (42, 'old-sensor', 7, 'tcp', '192.0.2.1', 1, '192.0.2.2', 26, 'l', 'p', 0)",
            [],
        )
        .unwrap();
        for (ts, json) in [
            (
                7,
                r#"{"eventid":"session.connect","listener":"l","persona":"p","tls":false}"#,
            ),
            (
                9,
                r#"{"eventid":"session.closed","duration":1.0,"bytes_in":0,"bytes_out":0,"reason":"peer_closed"}"#,
            ),
        ] {
            c.execute(
                "INSERT INTO events (v, ts, session, eventid, json) VALUES (1, ?1, 42, 'x', ?2)",
                params![ts, json],
            )
            .unwrap();
        }
        // A gap in the row ids: seq follows them.
        c.execute_batch("UPDATE events SET id = 5 WHERE id = 2")
            .unwrap();
    }
    let mut w = SqliteWriter::open(&path, WriterOptions::default()).unwrap();
    let mut spool = crate::open_spool(&crate::Location::Sqlite(dir.path().into())).unwrap();
    let got: Vec<_> = spool
        .after(0, 10)
        .unwrap()
        .into_iter()
        .map(|s| (s.pos, s.id.sensor, s.id.run, s.id.seq))
        .collect();
    assert_eq!(
        got,
        [
            (1, "old-sensor".to_string(), 0, 1),
            (5, "old-sensor".to_string(), 0, 5)
        ]
    );
    let r = SqliteReader::open(dir.path()).unwrap();
    let (events, last): (i64, i64) = r
        .connection()
        .query_row(
            "SELECT events, last_ts FROM sensor_events WHERE sensor = 'old-sensor'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((events, last), (2, 9));
    // New events: a drawn run, seq from 1, after the legacy ones.
    let mut evs = spool.after(0, 10).unwrap();
    let ev: honeyport_event::Event = serde_json::from_str(&evs.remove(0).json).unwrap();
    w.write(&[ev]).unwrap();
    let new = spool.after(5, 10).unwrap();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0].id.run, 0);
    assert_eq!(
        (new[0].id.sensor.as_str(), new[0].id.seq),
        ("old-sensor", 1)
    );
    // Opening again migrates nothing twice.
    drop(w);
    drop(SqliteWriter::open(&path, WriterOptions::default()).unwrap());
    assert_eq!(spool.after(0, 10).unwrap().len(), 3);
}
