//! Rollups: per UTC day, port and sensor, what the Internet Storm Center counts: records
//! (sessions, plus imported firewall records), sources (distinct source IPs) and targets
//! (distinct destination IPs), with records split by transport.
//!
//! They are kept up to date as each session (or imported record) is written, in the same
//! transaction, so reports read a table of (days x ports) rows instead of every session.
//! The distinct counts are **exact**: each (day, sensor, port) has its set of source and of
//! target addresses (`port_day_src`, `port_day_dst`, 4 or 16 bytes per address), and a count
//! goes up only when an address is new to its set. Every record is counted twice: once under
//! its sensor and once under the sensor `''` (all sensors), whose sets are separate, so an
//! address seen by two sensors is one source fleet-wide.
//!
//! Distinct counts over several days (a `--since/--until` window) cannot be added up from
//! daily counts; they are counted from the daily sets (exact; it reads one row per distinct
//! (day, port, address) in the window).

use std::collections::HashMap;
use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// The rollup tables. `day` is the UTC day number (days since 1970-01-01).
pub const SCHEMA: &str = "
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
";

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day number of a timestamp in microseconds since the epoch.
pub fn day_of(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(DAY_MICROS)
}

/// An address as stored in the sets: 4 bytes for IPv4 (and IPv4-mapped IPv6), 16 for IPv6.
pub fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    }
}

/// The address an [`ip_key`] stands for.
pub fn ip_of_key(k: &[u8]) -> Option<IpAddr> {
    match k.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(k).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(k).ok()?)),
        _ => None,
    }
}

/// One record to count: a session's start, or an imported firewall line.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ts_micros: i64,
    pub sensor: &'a str,
    pub udp: bool,
    pub port: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// Counts one record in the rollups (inside the caller's transaction).
pub fn record(tx: &Transaction<'_>, r: &Record<'_>) -> rusqlite::Result<()> {
    let mut p = Pending::default();
    p.record(r);
    p.flush(tx)
}

/// Rollup counts gathered over a batch of events and written in one go at its end: one
/// statement per distinct (day, sensor, port) and per distinct item or address, instead of
/// several per event (a batch of a thousand sessions to a few ports is a few dozen upserts).
#[derive(Default)]
pub struct Pending {
    /// (day, sensor, port) -> records, tcp, udp.
    ports: HashMap<(i64, String, u16), [i64; 3]>,
    /// (day, sensor, port, address) -> records from it.
    src: HashMap<(i64, String, u16, Vec<u8>), i64>,
    dst: HashMap<(i64, String, u16, Vec<u8>), i64>,
    /// (port, sensor, day, kind, item) -> count.
    items: HashMap<(u16, String, i64, &'static str, Vec<u8>), i64>,
}

impl Pending {
    /// Counts one record (under its sensor and under all sensors).
    pub fn record(&mut self, r: &Record<'_>) {
        let day = day_of(r.ts_micros);
        let (src, dst) = (ip_key(r.src), ip_key(r.dst));
        for sensor in [r.sensor, ""] {
            let c = self
                .ports
                .entry((day, sensor.to_string(), r.port))
                .or_default();
            c[0] += 1;
            c[if r.udp { 2 } else { 1 }] += 1;
            *self
                .src
                .entry((day, sensor.to_string(), r.port, src.clone()))
                .or_default() += 1;
            *self
                .dst
                .entry((day, sensor.to_string(), r.port, dst.clone()))
                .or_default() += 1;
        }
    }

    /// Counts one `item` of `kind` for `port` on the day of `ts_micros`.
    pub fn item(
        &mut self,
        ts_micros: i64,
        sensor: &str,
        port: u16,
        kind: &'static str,
        item: &[u8],
    ) {
        let day = day_of(ts_micros);
        let item = &item[..item.len().min(MAX_ITEM)];
        for s in [sensor, ""] {
            *self
                .items
                .entry((port, s.to_string(), day, kind, item.to_vec()))
                .or_default() += 1;
        }
    }

    /// Writes everything gathered (inside the caller's transaction) and starts over.
    pub fn flush(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        // Addresses first: an address is new to its day when its count after the upsert is
        // what this batch added.
        let mut new_src: HashMap<(i64, String, u16), i64> = HashMap::new();
        let mut new_dst: HashMap<(i64, String, u16), i64> = HashMap::new();
        for (table, set, new) in [
            ("port_day_src", &mut self.src, &mut new_src),
            ("port_day_dst", &mut self.dst, &mut new_dst),
        ] {
            let mut up = tx.prepare_cached(&format!(
                "INSERT INTO {table} (day, sensor, port, ip, n) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (port, sensor, day, ip) DO UPDATE SET n = n + excluded.n RETURNING n"
            ))?;
            for ((day, sensor, port, ip), n) in set.drain() {
                let total: i64 = up.query_row(params![day, sensor, port, ip, n], |r| r.get(0))?;
                if total == n {
                    *new.entry((day, sensor, port)).or_default() += 1;
                }
            }
        }
        let mut up = tx.prepare_cached(
            "INSERT INTO port_day (day, sensor, port, records, tcp, udp, sources, targets)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (day, sensor, port) DO UPDATE SET
                 records = records + excluded.records, tcp = tcp + excluded.tcp,
                 udp = udp + excluded.udp, sources = sources + excluded.sources,
                 targets = targets + excluded.targets",
        )?;
        for (key, [records, tcp, udp]) in self.ports.drain() {
            let sources = new_src.get(&key).copied().unwrap_or(0);
            let targets = new_dst.get(&key).copied().unwrap_or(0);
            let (day, sensor, port) = key;
            up.execute(params![
                day, sensor, port, records, tcp, udp, sources, targets
            ])?;
        }
        let mut up = tx.prepare_cached(
            "INSERT INTO port_day_item (port, sensor, day, kind, item, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (port, sensor, day, kind, item) DO UPDATE SET n = n + excluded.n",
        )?;
        for ((port, sensor, day, kind, item), n) in self.items.drain() {
            up.execute(params![port, sensor, day, kind, item, n])?;
        }
        Ok(())
    }

    /// Counts what an event says about its port (login attempts, commands, requests,
    /// downloads, user agents); at `session.closed`, what the session's summary row ended up
    /// with (protocol, client, tags, persona and outcome, fingerprints). `sid` is the
    /// session's key; its summary row must be up to date (the sink writes it first).
    pub fn on_event(
        &mut self,
        tx: &Transaction<'_>,
        ev: &honeyport_event::Event,
        sid: i64,
    ) -> rusqlite::Result<()> {
        on_event_into(self, tx, ev, sid)
    }
}

/// What a port's sessions did, counted per day for `explain`: the kinds of [`item`].
pub mod kind {
    /// What the client spoke (`session.classified`), `silent` if nothing.
    pub const PROTOCOL: &str = "protocol";
    /// A client software name (`client.name`).
    pub const CLIENT: &str = "client";
    /// A behaviour or exploit tag.
    pub const TAG: &str = "tag";
    /// Which persona served the session and how the client answered its greeting:
    /// `persona/after_banner` (`exim/silent`, `busybox/same`).
    pub const SERVED: &str = "served";
    pub const HASSH: &str = "hassh";
    pub const JA4: &str = "ja4";
    /// The SSH client's version line.
    pub const VERSION: &str = "version";
    pub const USER_AGENT: &str = "user_agent";
    /// A login attempt: username, a NUL byte, password.
    pub const CREDENTIAL: &str = "credential";
    /// A login attempt that was let in (same form).
    pub const CREDENTIAL_OK: &str = "credential_ok";
    pub const USERNAME: &str = "username";
    pub const PASSWORD: &str = "password";
    pub const COMMAND: &str = "command";
    /// An HTTP request: method, a space, target.
    pub const REQUEST: &str = "request";
    /// A URL a command asked to download.
    pub const DOWNLOAD: &str = "download";
}

/// Longest item kept; longer ones are cut (a 100 KB "command" is one item, not a new one per
/// byte).
pub const MAX_ITEM: usize = 256;

fn on_event_into(
    p: &mut Pending,
    tx: &Transaction<'_>,
    ev: &honeyport_event::Event,
    sid: i64,
) -> rusqlite::Result<()> {
    use honeyport_event::EventKind as K;
    let ts = ev.timestamp.unix_micros();
    let (sensor, port) = (ev.sensor.as_str(), ev.dst_port);
    let mut put = |kind: &'static str, it: &[u8]| -> rusqlite::Result<()> {
        p.item(ts, sensor, port, kind, it);
        Ok(())
    };
    match &ev.kind {
        K::LoginFailed {
            username, password, ..
        }
        | K::LoginSuccess {
            username, password, ..
        } => {
            let mut pair = username.0.clone();
            pair.push(0);
            pair.extend_from_slice(&password.0);
            put(kind::CREDENTIAL, &pair)?;
            if matches!(ev.kind, K::LoginSuccess { .. }) {
                put(kind::CREDENTIAL_OK, &pair)?;
            }
            put(kind::USERNAME, &username.0)?;
            put(kind::PASSWORD, &password.0)?;
        }
        K::CommandInput { input, .. } => put(kind::COMMAND, &input.0)?,
        K::FileDownload { url, .. } => put(kind::DOWNLOAD, &url.0)?,
        K::HttpRequest {
            method,
            target,
            user_agent,
            ..
        } => {
            let mut req = method.0.clone();
            req.push(b' ');
            req.extend_from_slice(&target.0);
            put(kind::REQUEST, &req)?;
            if let Some(ua) = user_agent {
                put(kind::USER_AGENT, &ua.0)?;
            }
        }
        K::Closed { .. } => {
            let mut q = tx.prepare_cached(
                "SELECT protocol, client, tags, coalesce(served, persona), after_banner, hassh, ja4, client_version
                 FROM sessions WHERE session = ?1",
            )?;
            let row = q
                .query_row([sid], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })
                .optional()?;
            let Some((protocol, client, tags, served, after, hassh, ja4, version)) = row else {
                return Ok(());
            };
            if let Some(p) = protocol {
                put(kind::PROTOCOL, p.as_bytes())?;
            }
            if let Some(c) = client {
                put(kind::CLIENT, c.as_bytes())?;
            }
            for t in tags
                .iter()
                .flat_map(|t| t.split(','))
                .filter(|t| !t.is_empty())
            {
                put(kind::TAG, t.as_bytes())?;
            }
            let outcome = format!("{served}/{}", after.as_deref().unwrap_or("client_first"));
            put(kind::SERVED, outcome.as_bytes())?;
            for (k, v) in [
                (kind::HASSH, hassh),
                (kind::JA4, ja4),
                (kind::VERSION, version),
            ] {
                if let Some(v) = v {
                    put(k, v.as_bytes())?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Creates the rollup tables; a store that has sessions but no rollups yet (written before
/// they existed) gets them computed from its sessions, once.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let existed: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'port_day'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    conn.execute_batch(SCHEMA)?;
    if existed {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut q = tx.prepare(
            "SELECT start_ts, sensor, transport, dst_port, src_ip, dst_ip FROM sessions ORDER BY session",
        )?;
        let mut rows = q.query([])?;
        let mut pending = Pending::default();
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let sensor: String = row.get(1)?;
            let transport: String = row.get(2)?;
            let port: i64 = row.get(3)?;
            let (Ok(src), Ok(dst)) = (
                row.get::<_, String>(4)?.parse::<IpAddr>(),
                row.get::<_, String>(5)?.parse::<IpAddr>(),
            ) else {
                continue;
            };
            pending.record(&Record {
                ts_micros: ts,
                sensor: &sensor,
                udp: transport == "udp",
                port: port as u16,
                src,
                dst,
            });
            n += 1;
            if n.is_multiple_of(100_000) {
                pending.flush(&tx)?;
            }
        }
        pending.flush(&tx)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::SCHEMA).unwrap();
        migrate(&mut c).unwrap();
        c
    }

    fn rec(c: &mut Connection, day: i64, sensor: &str, port: u16, src: &str, dst: &str) {
        let tx = c.transaction().unwrap();
        record(
            &tx,
            &Record {
                ts_micros: day * DAY_MICROS + 3_600_000_000,
                sensor,
                udp: port == 53,
                port,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
            },
        )
        .unwrap();
        tx.commit().unwrap();
    }

    fn row(c: &Connection, day: i64, sensor: &str, port: u16) -> (i64, i64, i64, i64, i64) {
        c.query_row(
            "SELECT records, tcp, udp, sources, targets FROM port_day WHERE day = ?1 AND sensor = ?2 AND port = ?3",
            params![day, sensor, port],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    }

    #[test]
    fn records_sources_and_targets_are_counted_exactly_per_day_port_and_sensor() {
        let mut c = store();
        rec(&mut c, 100, "a", 26, "198.51.100.1", "192.0.2.1");
        rec(&mut c, 100, "a", 26, "198.51.100.1", "192.0.2.2");
        rec(&mut c, 100, "b", 26, "198.51.100.1", "192.0.2.9");
        rec(&mut c, 100, "b", 26, "::ffff:198.51.100.2", "192.0.2.9");
        rec(&mut c, 101, "a", 26, "198.51.100.1", "192.0.2.1");
        rec(&mut c, 100, "a", 53, "2001:db8::1", "2001:db8::2");
        assert_eq!(row(&c, 100, "a", 26), (2, 2, 0, 1, 2));
        assert_eq!(row(&c, 100, "b", 26), (2, 2, 0, 2, 1));
        // All sensors: one source seen by both sensors counts once.
        assert_eq!(row(&c, 100, "", 26), (4, 4, 0, 2, 3));
        assert_eq!(row(&c, 101, "", 26), (1, 1, 0, 1, 1));
        assert_eq!(row(&c, 100, "", 53), (1, 0, 1, 1, 1));
    }

    #[test]
    fn days_are_utc_days_including_before_1970() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MICROS - 1), 0);
        assert_eq!(day_of(DAY_MICROS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn an_older_store_gets_its_rollups_from_its_sessions() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::SCHEMA).unwrap();
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
        migrate(&mut c).unwrap();
        assert_eq!(row(&c, 5, "s", 23), (3, 3, 0, 2, 1));
        // Only once: a second migrate does not count them again.
        migrate(&mut c).unwrap();
        assert_eq!(row(&c, 5, "", 23), (3, 3, 0, 2, 1));
    }
}
