//! The SQLite writer: a batch is one transaction ([`crate::fold::store`] over [`Tx`]).

use std::collections::HashMap;
use std::path::Path;

use honeyport_event::Event;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::fleet::{EventId, Heartbeat, Ids, Loaded, Parked, MAX_PARKED_BODY};
use crate::fold::{self, Base, Delta, EventRow, SensorCounts, Start, MAX_TAGS_LEN};
use crate::rollup::{Pending, Record};
use crate::{FirewallRecord, Ident, Result, RunTotals, StoreError, WriterOptions};

/// The SQLite writer, and the SQLite [`crate::Loader`] (a collector's small central store).
pub struct SqliteWriter {
    conn: Connection,
    path: String,
    run_id: Option<i64>,
    ids: Ids,
}

impl SqliteWriter {
    /// Opens (creating) `honeyport.db` in `dir`.
    pub fn open_dir(dir: &Path, opts: WriterOptions) -> Result<SqliteWriter> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Other(format!("data dir {}: {e}", dir.display())))?;
        SqliteWriter::open(&dir.join(crate::DB_FILE), opts)
    }

    pub fn open(path: &Path, opts: WriterOptions) -> Result<SqliteWriter> {
        let shown = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        (|| {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(
                None,
                "synchronous",
                if opts.synchronous_full {
                    "FULL"
                } else {
                    "NORMAL"
                },
            )?;
            if opts.bulk {
                // Session rows, their indexes and the rollups are updated all over the file;
                // with SQLite's 2 MiB cache most updates re-read pages (bench-data 8.3k ->
                // 11k sessions/s). The sensor keeps the default: its cache would count in
                // every held connection's share of memory.
                conn.pragma_update(None, "cache_size", -32768)?;
            }
            super::schema::migrate(&mut conn)
        })()
        .map_err(|source| StoreError::Foreign {
            path: shown.clone(),
            source,
        })?;
        Ok(SqliteWriter {
            conn,
            path: shown,
            run_id: None,
            ids: Ids::new(),
        })
    }

    /// Stores a batch with its identities, one transaction (`IMMEDIATE`: it takes the write
    /// lock first, so two loaders on one file wait for each other, with the busy timeout,
    /// rather than fail on upgrading a read).
    fn store(&mut self, batch: &[(EventId, &Event)]) -> Result<Loaded> {
        let path = self.path.clone();
        let err = move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let loaded = fold::store(&mut Tx { tx: &tx, err: &err }, batch)?;
        tx.commit().map_err(&err)?;
        Ok(loaded)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

impl crate::Writer for SqliteWriter {
    fn write(&mut self, batch: &[Event]) -> Result<()> {
        let ids = self.ids.assign(batch);
        let r = self.store(&ids);
        // A failed SQLite transaction is rolled back: the seqs are free again.
        self.ids.done(batch, r.is_ok(), false);
        r.map(drop)
    }

    fn write_firewall(&mut self, sensor: &str, recs: &[FirewallRecord]) -> Result<u64> {
        let r = (|| -> rusqlite::Result<u64> {
            let tx = self.conn.transaction()?;
            let mut pending = Pending::default();
            let mut new = 0;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO firewall (ts, sensor, proto, src, dst, spt, dpt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for r in recs {
                    let n = ins.execute(params![
                        r.ts_micros,
                        sensor,
                        if r.udp { "udp" } else { "tcp" },
                        crate::ip_key(r.src),
                        crate::ip_key(r.dst),
                        r.spt,
                        r.dpt
                    ])?;
                    if n == 1 {
                        new += 1;
                        pending.record(&Record {
                            ts_micros: r.ts_micros,
                            sensor,
                            udp: r.udp,
                            port: r.dpt,
                            src: r.src,
                            dst: r.dst,
                        });
                    }
                }
            }
            flush(&tx, &mut pending)?;
            tx.commit()?;
            Ok(new)
        })();
        r.map_err(|e| self.err(e))
    }

    fn ident(&mut self, id: u64) -> Result<Option<Ident>> {
        let r = self
            .conn
            .prepare_cached(
                "SELECT sensor, start_ts, src_ip, src_port FROM sessions WHERE session = ?1",
            )
            .and_then(|mut q| {
                q.query_row(params![id as i64], |r| {
                    Ok(Ident {
                        sensor: r.get(0)?,
                        start: r.get(1)?,
                        src: r.get(2)?,
                        src_port: r.get::<_, i64>(3)? as u16,
                    })
                })
                .optional()
            });
        r.map_err(|e| self.err(e))
    }

    fn begin_run(&mut self, sensor: &str) -> Result<()> {
        let mut ids = Ids::new();
        let run = ids.begin();
        let r = self.conn.execute(
            "INSERT INTO runs (sensor, started, run) VALUES (?1, ?2, ?3)",
            params![sensor, chrono::Utc::now().timestamp_micros(), run as i64],
        );
        r.map_err(|e| self.err(e))?;
        self.run_id = Some(self.conn.last_insert_rowid());
        self.ids = ids;
        Ok(())
    }

    fn end_run(&mut self, t: RunTotals) -> Result<()> {
        if let Some(id) = self.run_id {
            let r = self.conn.execute(
                "UPDATE runs SET stopped = ?1, events_sent = ?2, events_written = ?3, events_dropped = ?4, stalls = ?5 WHERE id = ?6",
                params![
                    chrono::Utc::now().timestamp_micros(),
                    t.sent as i64,
                    t.written as i64,
                    t.dropped as i64,
                    t.stalls as i64,
                    id
                ],
            );
            r.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.path.clone()
    }
}

impl crate::Loader for SqliteWriter {
    fn load(&mut self, batch: &[(EventId, Event)]) -> Result<Loaded> {
        let refs: Vec<(EventId, &Event)> = batch.iter().map(|(i, e)| (i.clone(), e)).collect();
        self.store(&refs)
    }

    fn heartbeat(&mut self, hb: &Heartbeat, received_micros: i64) -> Result<()> {
        // The latest by the bus's time wins (a sensor's clock may be hours off, or jump).
        let r = self.conn.execute(
            "INSERT INTO heartbeats (sensor, version, run, sent, received, backlog,
                 oldest_unacked_secs, events_per_minute, dropped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (sensor) DO UPDATE SET version = excluded.version,
                 run = excluded.run, sent = excluded.sent, received = excluded.received,
                 backlog = excluded.backlog, oldest_unacked_secs = excluded.oldest_unacked_secs,
                 events_per_minute = excluded.events_per_minute, dropped = excluded.dropped
             WHERE excluded.received >= heartbeats.received",
            params![
                hb.sensor,
                hb.version,
                hb.run as i64,
                hb.sent_micros,
                received_micros,
                hb.backlog as i64,
                hb.oldest_unacked_secs,
                hb.events_per_minute,
                hb.dropped as i64
            ],
        );
        r.map(drop).map_err(|e| self.err(e))
    }

    fn park(&mut self, p: &Parked) -> Result<()> {
        let body = &p.body[..p.body.len().min(MAX_PARKED_BODY)];
        let r = self.conn.execute(
            "INSERT INTO parked (subject, reason, body, received) VALUES (?1, ?2, ?3, ?4)",
            params![p.subject, p.reason, body, p.received_micros],
        );
        r.map(drop).map_err(|e| self.err(e))
    }
}

/// One batch's transaction.
struct Tx<'a, 'c> {
    tx: &'a Transaction<'c>,
    err: &'a dyn Fn(rusqlite::Error) -> StoreError,
}

impl fold::Apply for Tx<'_, '_> {
    fn insert_starts(&mut self, starts: &[Start]) -> Result<Vec<bool>> {
        let r = (|| -> rusqlite::Result<Vec<bool>> {
            let mut q = self.tx.prepare_cached(
                "INSERT OR IGNORE INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            starts
                .iter()
                .map(|s| {
                    q.execute(params![
                        s.sid,
                        s.sensor,
                        s.ts,
                        s.transport(),
                        s.src.to_string(),
                        s.src_port,
                        s.dst.to_string(),
                        s.dst_port,
                        s.listener,
                        s.persona,
                        s.tls
                    ])
                    .map(|n| n == 1)
                })
                .collect()
        })();
        r.map_err(self.err)
    }

    fn bases(&mut self, sids: &[i64]) -> Result<HashMap<i64, Base>> {
        let r = (|| -> rusqlite::Result<HashMap<i64, Base>> {
            let mut q = self.tx.prepare_cached(
                "SELECT persona, served, protocol, after_banner, client, tags, hassh, ja4, client_version
                 FROM sessions WHERE session = ?1",
            )?;
            let mut out = HashMap::new();
            for &sid in sids {
                let b = q
                    .query_row([sid], |r| {
                        Ok(Base {
                            persona: r.get(0)?,
                            served: r.get(1)?,
                            protocol: r.get(2)?,
                            after_banner: r.get(3)?,
                            client: r.get(4)?,
                            tags: r.get(5)?,
                            hassh: r.get(6)?,
                            ja4: r.get(7)?,
                            version: r.get(8)?,
                        })
                    })
                    .optional()?;
                if let Some(b) = b {
                    out.insert(sid, b);
                }
            }
            Ok(out)
        })();
        r.map_err(self.err)
    }

    fn apply_deltas(&mut self, deltas: &[(i64, Delta)]) -> Result<()> {
        let r = (|| -> rusqlite::Result<()> {
            // One statement for everything but the tags: a field the batch did not set keeps
            // its value (a flag says whether `classified` and `ja` were set, since their
            // values may be NULL-able).
            let mut up = self.tx.prepare_cached(
                "UPDATE sessions SET
                    end_ts = CASE WHEN ?2 THEN ?3 ELSE end_ts END,
                    duration = CASE WHEN ?2 THEN ?4 ELSE duration END,
                    bytes_in = CASE WHEN ?2 THEN ?5 ELSE bytes_in END,
                    bytes_out = CASE WHEN ?2 THEN ?6 ELSE bytes_out END,
                    reason = CASE WHEN ?2 THEN ?7 ELSE reason END,
                    limit_name = CASE WHEN ?2 THEN ?8 ELSE limit_name END,
                    served = coalesce(?9, served),
                    tls = tls OR ?10,
                    protocol = CASE WHEN ?11 THEN ?12 ELSE protocol END,
                    client_first = CASE WHEN ?11 THEN ?13 ELSE client_first END,
                    after_banner = CASE WHEN ?11 THEN ?14 ELSE after_banner END,
                    client_version = coalesce(?15, client_version),
                    hassh = coalesce(?16, hassh),
                    ja3 = CASE WHEN ?17 THEN ?18 ELSE ja3 END,
                    ja4 = CASE WHEN ?17 THEN ?19 ELSE ja4 END,
                    syn = coalesce(?20, syn),
                    logins = logins + ?21,
                    logins_ok = logins_ok + ?22,
                    commands = commands + ?23,
                    client = coalesce(client, ?24)
                 WHERE session = ?1",
            )?;
            let mut tag = self.tx.prepare_cached(
                "UPDATE sessions SET tags = CASE WHEN tags IS NULL THEN ?2
                     WHEN instr(',' || tags || ',', ',' || ?2 || ',') > 0 OR length(tags) > ?3 THEN tags
                     ELSE tags || ',' || ?2 END
                 WHERE session = ?1",
            )?;
            for (sid, d) in deltas {
                let e = d.end.as_ref();
                let c = d.classified.as_ref();
                let ja = d.ja.as_ref();
                up.execute(params![
                    sid,
                    e.is_some(),
                    e.map(|e| e.ts),
                    e.map(|e| e.duration),
                    e.map(|e| e.bytes_in),
                    e.map(|e| e.bytes_out),
                    e.map(|e| e.reason),
                    e.and_then(|e| e.limit.as_deref()),
                    d.served,
                    d.tls,
                    c.is_some(),
                    c.map(|c| c.0.as_str()),
                    c.map(|c| c.1),
                    c.and_then(|c| c.2.as_deref()),
                    d.version,
                    d.hassh,
                    ja.is_some(),
                    ja.map(|j| j.0.as_str()),
                    ja.map(|j| j.1.as_str()),
                    d.syn,
                    d.logins,
                    d.logins_ok,
                    d.commands,
                    d.client,
                ])?;
                for t in &d.tags {
                    tag.execute(params![sid, t, MAX_TAGS_LEN as i64])?;
                }
            }
            Ok(())
        })();
        r.map_err(self.err)
    }

    fn flush(&mut self, p: &mut Pending) -> Result<()> {
        flush(self.tx, p).map_err(self.err)
    }

    fn insert_events(&mut self, rows: &[EventRow]) -> Result<Vec<bool>> {
        let r = (|| -> rusqlite::Result<Vec<bool>> {
            let mut ins = self.tx.prepare_cached(
                "INSERT INTO events (v, ts, session, eventid, json, sensor, run, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (run, seq, sensor) DO NOTHING",
            )?;
            rows.iter()
                .map(|e| {
                    let n = ins.execute(params![
                        e.v,
                        e.ts,
                        e.sid,
                        e.eventid,
                        e.json,
                        e.id.sensor,
                        e.id.run as i64,
                        e.id.seq as i64
                    ])?;
                    Ok(n == 1)
                })
                .collect()
        })();
        r.map_err(self.err)
    }

    fn count_sensors(&mut self, c: &SensorCounts) -> Result<()> {
        let r = (|| -> rusqlite::Result<()> {
            let mut up = self.tx.prepare_cached(
                "INSERT INTO sensor_events (sensor, events, last_ts) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sensor) DO UPDATE SET events = events + excluded.events,
                     last_ts = max(coalesce(last_ts, excluded.last_ts), excluded.last_ts)",
            )?;
            for (sensor, (n, last)) in c {
                up.execute(params![sensor, n, last])?;
            }
            Ok(())
        })();
        r.map_err(self.err)
    }
}

/// Writes the rollup counts gathered (inside the caller's transaction) and empties them.
pub(crate) fn flush(tx: &Transaction<'_>, p: &mut Pending) -> rusqlite::Result<()> {
    // Addresses first: an address is new to its day when its count after the upsert is what
    // this batch added.
    let mut new_src: HashMap<(i64, String, u16), i64> = HashMap::new();
    let mut new_dst: HashMap<(i64, String, u16), i64> = HashMap::new();
    for (table, set, new) in [
        ("port_day_src", &mut p.src, &mut new_src),
        ("port_day_dst", &mut p.dst, &mut new_dst),
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
    for (key, [records, tcp, udp]) in p.ports.drain() {
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
    for ((port, sensor, day, kind, item), n) in p.items.drain() {
        up.execute(params![port, sensor, day, kind, item, n])?;
    }
    Ok(())
}
