//! The SQLite schema, and the migrations of stores written by older versions.
//!
//! `sessions` has one row per session, keyed by the session id as a number (ids are
//! time-ordered, so inserts append): who talked to which address and port, through which
//! listener and persona, what it spoke and did, and how it ended. `events` has one row per
//! event: its time, its session, and the event-specific fields as JSON (which includes
//! `eventid`); the fields every event shares come from the session row, so a full event is
//! `events JOIN sessions`. The rollup tables are described in [`crate::rollup`]; `firewall`
//! holds imported firewall records; `runs` one row per sensor run.
//!
//! Versions: 1 (sessions, events, runs), 2 (the summary columns), 3 (rollups and firewall
//! named in `meta`; they existed before without a version), 4 (the fleet: each event's
//! identity `(sensor, run, seq)` in `events`, unique; `runs.run`; the spool's `cursors`; the
//! per-sensor counters `sensor_events`; the collector's `heartbeats` and `parked`).
//!
//! Migrating to 4 gives every stored event its legacy identity: its session's sensor, run 0,
//! seq = its row id (unique, and in storage order like a run's seq). That rewrites `events`
//! once (one UPDATE over every row): on a store of millions of events, the first open after
//! the upgrade takes a while.

use rusqlite::{Connection, OptionalExtension};

/// The schema version this code writes.
pub const VERSION: i64 = 4;

/// Version 1, as it was (a new store gets it, then the migrations).
pub const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER,
    duration REAL,
    transport TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    listener TEXT NOT NULL,
    persona TEXT NOT NULL,
    tls INTEGER NOT NULL,
    bytes_in INTEGER,
    bytes_out INTEGER,
    reason TEXT,
    limit_name TEXT
);
CREATE INDEX IF NOT EXISTS sessions_dst_port ON sessions (dst_port);
CREATE INDEX IF NOT EXISTS sessions_src_ip ON sessions (src_ip);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    v INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    session INTEGER NOT NULL,
    eventid TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events (session);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    started INTEGER NOT NULL,
    stopped INTEGER,
    events_sent INTEGER,
    events_written INTEGER,
    events_dropped INTEGER,
    stalls INTEGER
);
";

/// Summary columns added to `sessions` in version 2 (classification and counts).
pub const SUMMARY_COLUMNS: &[(&str, &str)] = &[
    ("served", "TEXT"),
    ("protocol", "TEXT"),
    ("client_first", "INTEGER"),
    ("after_banner", "TEXT"),
    ("client_version", "TEXT"),
    ("hassh", "TEXT"),
    ("ja3", "TEXT"),
    ("ja4", "TEXT"),
    ("syn", "TEXT"),
    ("logins", "INTEGER NOT NULL DEFAULT 0"),
    ("logins_ok", "INTEGER NOT NULL DEFAULT 0"),
    ("commands", "INTEGER NOT NULL DEFAULT 0"),
    ("tags", "TEXT"),
    ("client", "TEXT"),
];

/// The rollup tables (`day` is the UTC day number) and the firewall records (addresses as in
/// [`crate::ip_key`]).
pub const ROLLUPS: &str = "
CREATE TABLE IF NOT EXISTS port_day (
    day INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    port INTEGER NOT NULL,
    records INTEGER NOT NULL DEFAULT 0,
    tcp INTEGER NOT NULL DEFAULT 0,
    udp INTEGER NOT NULL DEFAULT 0,
    sources INTEGER NOT NULL DEFAULT 0,
    targets INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, sensor, port)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS port_day_by_port ON port_day (port, sensor, day);
CREATE TABLE IF NOT EXISTS port_day_src (
    day INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    port INTEGER NOT NULL,
    ip BLOB NOT NULL,
    n INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (port, sensor, day, ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS port_day_dst (
    day INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    port INTEGER NOT NULL,
    ip BLOB NOT NULL,
    n INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (port, sensor, day, ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS port_day_item (
    port INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    day INTEGER NOT NULL,
    kind TEXT NOT NULL,
    item BLOB NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (port, sensor, day, kind, item)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_port_time ON sessions (dst_port, start_ts);
CREATE TABLE IF NOT EXISTS firewall (
    ts INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    proto TEXT NOT NULL,
    src BLOB NOT NULL,
    dst BLOB NOT NULL,
    spt INTEGER NOT NULL,
    dpt INTEGER NOT NULL,
    UNIQUE (ts, sensor, proto, src, dst, spt, dpt)
);
";

/// Version 4's tables (the identity columns are added to `events` by [`migrate`]).
pub const FLEET: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (run, seq, sensor);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, pos INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sensor_events (
    sensor TEXT PRIMARY KEY,
    events INTEGER NOT NULL,
    last_ts INTEGER
);
CREATE TABLE IF NOT EXISTS heartbeats (
    sensor TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    run INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    received INTEGER NOT NULL,
    backlog INTEGER NOT NULL,
    oldest_unacked_secs REAL NOT NULL,
    events_per_minute REAL NOT NULL,
    dropped INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BLOB NOT NULL,
    received INTEGER NOT NULL
);
";

/// The columns of `table`.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// Creates the schema, or brings an older store to [`VERSION`]: the summary columns, the
/// rollups (computed once from the sessions of a store written before they existed), the
/// identities (legacy ones for the events already stored).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA_V1)?;
    let have = columns(conn, "sessions")?;
    for (name, ty) in SUMMARY_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {name} {ty}"))?;
        }
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS sessions_protocol ON sessions (protocol);")?;
    let had_rollups: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'port_day'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    conn.execute_batch(ROLLUPS)?;
    if !had_rollups {
        backfill_rollups(conn)?;
    }
    if !columns(conn, "events")?.iter().any(|c| c == "run") {
        identities(conn)?;
    }
    conn.execute_batch(FLEET)?;
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?1",
        [VERSION.to_string()],
    )?;
    Ok(())
}

/// Whether the store is at [`VERSION`] already (nothing to migrate).
pub fn is_current(conn: &Connection) -> rusqlite::Result<bool> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) >= VERSION)
}

/// Version 4's identity columns, with the legacy identities of the events already stored
/// (run 0, seq = row id, the session's sensor), and the per-sensor counters they start with;
/// one transaction.
fn identities(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "ALTER TABLE events ADD COLUMN sensor TEXT NOT NULL DEFAULT '';
         ALTER TABLE events ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE runs ADD COLUMN run INTEGER;
         UPDATE events SET seq = id, sensor = coalesce(
             (SELECT s.sensor FROM sessions s WHERE s.session = events.session), '');
         CREATE TABLE IF NOT EXISTS sensor_events (
             sensor TEXT PRIMARY KEY,
             events INTEGER NOT NULL,
             last_ts INTEGER
         );
         INSERT INTO sensor_events (sensor, events, last_ts)
             SELECT sensor, count(*), max(ts) FROM events GROUP BY sensor;",
    )?;
    tx.commit()
}

/// The records, sources and targets of a store's sessions, for a store that has sessions
/// but no rollups yet.
fn backfill_rollups(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut q = tx.prepare(
            "SELECT start_ts, sensor, transport, dst_port, src_ip, dst_ip FROM sessions ORDER BY session",
        )?;
        let mut rows = q.query([])?;
        let mut pending = crate::rollup::Pending::default();
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let sensor: String = row.get(1)?;
            let transport: String = row.get(2)?;
            let port: i64 = row.get(3)?;
            let (Ok(src), Ok(dst)) = (
                row.get::<_, String>(4)?.parse(),
                row.get::<_, String>(5)?.parse(),
            ) else {
                continue;
            };
            pending.record(&crate::rollup::Record {
                ts_micros: ts,
                sensor: &sensor,
                udp: transport == "udp",
                port: port as u16,
                src,
                dst,
            });
            n += 1;
            if n.is_multiple_of(100_000) {
                super::write::flush(&tx, &mut pending)?;
            }
        }
        super::write::flush(&tx, &mut pending)?;
    }
    tx.commit()
}
