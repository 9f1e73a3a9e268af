//! The PostgreSQL schema: the tables and columns of SQLite's version 3
//! ([`crate::sqlite::schema`]), with PostgreSQL's types (`bigint` for SQLite's integers,
//! `integer` for ports, `double precision`, `boolean`, `text`, `bytea` for addresses and
//! items), and every text column `COLLATE "C"` so that comparisons and orderings are bytewise
//! as in SQLite whatever the database's locale.
//!
//! `events` is partitioned by `ts` (microseconds since the epoch), one partition per UTC day:
//! day `d` is `[d * 86400e6, (d + 1) * 86400e6)`, named `events_d<d>` (`events_dm<-d>` before
//! 1970). The writer creates a day's partition before it writes the day's first events
//! ([`create_partitions`]). Old days can be dropped (`DROP TABLE events_d20000`) without
//! touching the rest. `events.id` is a global order (the order events were written, which is
//! the order readers return them in) from one sequence, `events_id_seq`, across partitions.
//!
//! Each event row carries its identity (`sensor`, `run`, `seq`, see [`crate::fleet`]), unique
//! with `ts`: a unique index on a partitioned table must hold the partition key, and an
//! event's `ts` is part of the event, so the same identity always comes with the same `ts`
//! (the index is unique on the identity). `sensor_events`, `heartbeats` and `parked` are the
//! fleet's: per-sensor counters, each sensor's latest heartbeat, messages a collector could
//! not load.
//!
//! Versions (this schema's own, in `meta`): 1, the first; 2, the identities (a version 1
//! database's events get the legacy ones: run 0, seq = `id`, their session's sensor) and the
//! fleet's tables.

use ::postgres::Client;

use crate::DAY_MICROS;

/// The schema version this code writes (PostgreSQL's own numbering).
pub const VERSION: i64 = 2;

/// `pg_advisory_xact_lock` key serialising schema changes (creation, partitions) between
/// writers that start at once: "honeypor".
pub const LOCK: i64 = 0x686f_6e65_7970_6f72;

/// Everything, idempotent (`IF NOT EXISTS`). Run by [`create`] inside one transaction when the
/// database is not at [`VERSION`] yet (`{LEGACY}`: see [`schema`]).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key text COLLATE "C" PRIMARY KEY,
    value text COLLATE "C" NOT NULL
);
INSERT INTO meta (key, value) VALUES ('schema_version', '2')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- Each row is updated after its insert (at least at the close): room on its page for the new
-- version keeps most updates HOT (no index entries).
CREATE TABLE IF NOT EXISTS sessions (
    session bigint PRIMARY KEY,
    sensor text COLLATE "C" NOT NULL,
    start_ts bigint NOT NULL,
    end_ts bigint,
    duration double precision,
    transport text COLLATE "C" NOT NULL,
    src_ip text COLLATE "C" NOT NULL,
    src_port integer NOT NULL,
    dst_ip text COLLATE "C" NOT NULL,
    dst_port integer NOT NULL,
    listener text COLLATE "C" NOT NULL,
    persona text COLLATE "C" NOT NULL,
    tls boolean NOT NULL,
    bytes_in bigint,
    bytes_out bigint,
    reason text COLLATE "C",
    limit_name text COLLATE "C",
    served text COLLATE "C",
    protocol text COLLATE "C",
    client_first boolean,
    after_banner text COLLATE "C",
    client_version text COLLATE "C",
    hassh text COLLATE "C",
    ja3 text COLLATE "C",
    ja4 text COLLATE "C",
    syn text COLLATE "C",
    logins bigint NOT NULL DEFAULT 0,
    logins_ok bigint NOT NULL DEFAULT 0,
    commands bigint NOT NULL DEFAULT 0,
    tags text COLLATE "C",
    client text COLLATE "C"
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS sessions_src_ip ON sessions (src_ip);
CREATE INDEX IF NOT EXISTS sessions_protocol ON sessions (protocol);
CREATE INDEX IF NOT EXISTS sessions_port_time ON sessions (dst_port, start_ts);
-- The session list's order (newest first, ties by id): read backwards, LIMIT stops early.
CREATE INDEX IF NOT EXISTS sessions_start ON sessions (start_ts, session);

CREATE SEQUENCE IF NOT EXISTS events_id_seq AS bigint;
CREATE TABLE IF NOT EXISTS events (
    id bigint NOT NULL DEFAULT nextval('events_id_seq'),
    v integer NOT NULL,
    ts bigint NOT NULL,
    session bigint NOT NULL,
    eventid text COLLATE "C" NOT NULL,
    json text COLLATE "C" NOT NULL,
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
CREATE INDEX IF NOT EXISTS events_session ON events (session);
ALTER TABLE events ADD COLUMN IF NOT EXISTS sensor text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS run bigint NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN IF NOT EXISTS seq bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS sensor_events (
    sensor text COLLATE "C" PRIMARY KEY,
    events bigint NOT NULL,
    last_ts bigint
);
{LEGACY}CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (run, seq, sensor, ts);

CREATE TABLE IF NOT EXISTS heartbeats (
    sensor text COLLATE "C" PRIMARY KEY,
    version text COLLATE "C" NOT NULL,
    run bigint NOT NULL,
    sent bigint NOT NULL,
    received bigint NOT NULL,
    backlog bigint NOT NULL,
    oldest_unacked_secs double precision NOT NULL,
    events_per_minute double precision NOT NULL,
    dropped bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    subject text COLLATE "C" NOT NULL,
    reason text COLLATE "C" NOT NULL,
    body bytea NOT NULL,
    received bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    sensor text COLLATE "C" NOT NULL,
    started bigint NOT NULL,
    stopped bigint,
    events_sent bigint,
    events_written bigint,
    events_dropped bigint,
    stalls bigint
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS run bigint;

CREATE TABLE IF NOT EXISTS port_day (
    day bigint NOT NULL,
    sensor text COLLATE "C" NOT NULL,
    port integer NOT NULL,
    records bigint NOT NULL DEFAULT 0,
    tcp bigint NOT NULL DEFAULT 0,
    udp bigint NOT NULL DEFAULT 0,
    sources bigint NOT NULL DEFAULT 0,
    targets bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, sensor, port)
);
CREATE INDEX IF NOT EXISTS port_day_by_port ON port_day (port, sensor, day);
CREATE TABLE IF NOT EXISTS port_day_src (
    day bigint NOT NULL,
    sensor text COLLATE "C" NOT NULL,
    port integer NOT NULL,
    ip bytea NOT NULL,
    n bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (port, sensor, day, ip)
);
CREATE TABLE IF NOT EXISTS port_day_dst (
    day bigint NOT NULL,
    sensor text COLLATE "C" NOT NULL,
    port integer NOT NULL,
    ip bytea NOT NULL,
    n bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (port, sensor, day, ip)
);
CREATE TABLE IF NOT EXISTS port_day_item (
    port integer NOT NULL,
    sensor text COLLATE "C" NOT NULL,
    day bigint NOT NULL,
    kind text COLLATE "C" NOT NULL,
    item bytea NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (port, sensor, day, kind, item)
);

CREATE TABLE IF NOT EXISTS firewall (
    ts bigint NOT NULL,
    sensor text COLLATE "C" NOT NULL,
    proto text COLLATE "C" NOT NULL,
    src bytea NOT NULL,
    dst bytea NOT NULL,
    spt integer NOT NULL,
    dpt integer NOT NULL,
    UNIQUE (ts, sensor, proto, src, dst, spt, dpt)
);
"#;

/// [`SCHEMA`] with `legacy` (a version 1 database's migration) where the events' identity
/// columns exist and their index does not yet.
fn schema(legacy: &str) -> String {
    SCHEMA.replace("{LEGACY}", legacy)
}

/// Why a database cannot be used as it is.
#[derive(Debug)]
pub enum Refused {
    /// Written by a newer honeyport.
    Newer(i64),
    /// Has a `sessions` table but no `meta`: someone else's.
    Foreign,
    Pg(::postgres::Error),
}

impl From<::postgres::Error> for Refused {
    fn from(e: ::postgres::Error) -> Self {
        Refused::Pg(e)
    }
}

/// Creates the schema (or checks it is current), in one transaction, under [`LOCK`]: two writers
/// starting at once do not race on `CREATE ... IF NOT EXISTS`. Refuses a database written by a
/// newer version.
pub fn create(client: &mut Client) -> Result<(), Refused> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
    match version(&mut tx)? {
        Some(v) if v > VERSION => return Err(Refused::Newer(v)),
        // Current: nothing to do (and no DDL, whose locks would wait for other writers'
        // batches).
        Some(VERSION) => {}
        Some(1) => {
            // Legacy identities for the events of version 1, and the counters they start
            // with (before the unique index, which they satisfy: `id` is unique).
            let legacy = "UPDATE events e SET seq = e.id, sensor = s.sensor
                 FROM sessions s WHERE s.session = e.session;
                 UPDATE events SET seq = id WHERE seq = 0;
                 INSERT INTO sensor_events (sensor, events, last_ts)
                     SELECT sensor, count(*), max(ts) FROM events GROUP BY sensor;\n";
            tx.batch_execute(&schema(legacy))?
        }
        Some(_) => tx.batch_execute(&schema(""))?,
        None => {
            let taken: bool = tx
                .query_one("SELECT to_regclass('sessions') IS NOT NULL", &[])?
                .try_get(0)?;
            if taken {
                return Err(Refused::Foreign);
            }
            tx.batch_execute(&schema(""))?
        }
    }
    tx.commit()?;
    Ok(())
}

/// The schema version in `meta`; `None` when there is no `meta` table (no honeyport schema).
pub fn version(c: &mut impl ::postgres::GenericClient) -> Result<Option<i64>, ::postgres::Error> {
    let has: bool = c
        .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])?
        .try_get(0)?;
    if !has {
        return Ok(None);
    }
    let v: Option<String> = c
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(Some(v.and_then(|v| v.parse().ok()).unwrap_or(0)))
}

/// The partition of `events` holding day `day`.
pub fn partition(day: i64) -> String {
    if day >= 0 {
        format!("events_d{day}")
    } else {
        format!("events_dm{}", day.unsigned_abs())
    }
}

/// Creates the partitions of these days that do not exist yet, in one transaction of its own
/// (under [`LOCK`], so two writers do not race on one), before the batch that needs them: a
/// new partition takes a brief exclusive lock on `events`, which must not last a batch. (The
/// writer asks for the next day's too, so that at midnight the sensors find it there.)
pub fn create_partitions(client: &mut Client, days: &[i64]) -> Result<(), ::postgres::Error> {
    if days.is_empty() {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
    let mut sql = String::new();
    for &d in days {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({});\n",
            partition(d),
            d * DAY_MICROS,
            (d + 1) * DAY_MICROS
        ));
    }
    tx.batch_execute(&sql)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_identifiers() {
        assert_eq!(partition(20431), "events_d20431");
        assert_eq!(partition(0), "events_d0");
        assert_eq!(partition(-3), "events_dm3");
    }
}
