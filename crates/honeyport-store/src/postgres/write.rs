//! The PostgreSQL writer: a batch is one transaction ([`crate::fold::store`] over [`Tx`]) of a
//! fixed number of statements, each over the whole batch: the session rows, their summary
//! deltas, the rollups and the events (`ON CONFLICT DO NOTHING` on their identity) through
//! `unnest` of arrays.
//!
//! Statements go with their parameter types (`query_typed`): one round trip each, no prepared
//! statements to keep per connection.
//!
//! A connection that fails is dropped: that call returns the error, the next one connects
//! again (the sensor's pipeline retries a failed batch; a batch is all or nothing). A batch
//! whose `COMMIT` reached the server but whose answer did not (the connection broke at that
//! very moment) is committed and still reported as failed: its retry carries the same event
//! identities ([`crate::fleet::Ids`]), which the store has, so it adds nothing.
//!
//! [`PgWriter`] is the PostgreSQL [`crate::Loader`] too: a collector's batch arrives with its
//! identities; writing and loading are the same transaction ([`fold::store`]). The events go
//! in first, by one `INSERT ... ON CONFLICT DO NOTHING RETURNING` in identity order: a
//! transaction meeting an identity another one is inserting waits for it, then skips it (or
//! inserts it, if that one rolled back), so concurrent collectors add each event once and,
//! taking the rows in one order, never deadlock.

use std::collections::{BTreeSet, HashMap, HashSet};

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Config, Transaction};
use honeyport_event::Event;

use super::{schema, text};
use crate::fleet::{EventId, Heartbeat, Ids, Loaded, Parked, MAX_PARKED_BODY};
use crate::fold::{self, Base, Delta, EventRow, SensorCounts, Start, MAX_TAGS_LEN};
use crate::rollup::{Pending, Record};
use crate::{day_of, FirewallRecord, Ident, Result, RunTotals, StoreError, WriterOptions};

type PgResult<T> = std::result::Result<T, ::postgres::Error>;

/// A statement parameter with its type.
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

fn p<'a>(v: &'a (dyn ToSql + Sync), t: Type) -> Param<'a> {
    (v, t)
}

/// A firewall record as the table keys it: ts, udp, src, dst (as [`crate::ip_key`]), spt,
/// dpt.
type FirewallKey = (i64, bool, Vec<u8>, Vec<u8>, u16, u16);

pub struct PgWriter {
    config: Config,
    /// The URL without its password.
    shown: String,
    /// `None` after a failure: the next call connects again.
    client: Option<Client>,
    /// Days whose `events` partition is known to exist.
    days: HashSet<i64>,
    run_id: Option<i64>,
    synchronous: bool,
    ids: Ids,
}

impl PgWriter {
    /// Connects to the database at `url` and creates the schema if it is not there. The
    /// database itself must exist (`createdb`).
    ///
    /// `synchronous_full` sets `synchronous_commit = on` for the writer's sessions (the
    /// server's setting otherwise); `bulk` changes nothing here.
    pub fn open(url: &str, opts: WriterOptions) -> Result<PgWriter> {
        let mut w = PgWriter {
            config: super::config(url)?,
            shown: super::redact(url),
            client: None,
            days: HashSet::new(),
            run_id: None,
            synchronous: opts.synchronous_full,
            ids: Ids::new(),
        };
        let shown = w.shown.clone();
        let client = w.client()?;
        schema::create(client).map_err(|e| match e {
            schema::Refused::Newer(v) => StoreError::Other(format!(
                "store {shown} has schema version {v}, newer than this build's {} (upgrade honeyport)",
                schema::VERSION
            )),
            schema::Refused::Foreign => StoreError::Other(format!(
                "store {shown} is not a honeyport store: it has a `sessions` table but no honeyport `meta`"
            )),
            schema::Refused::Pg(source) => StoreError::Postgres {
                location: shown.clone(),
                source,
            },
        })?;
        Ok(w)
    }

    fn err(&self, source: ::postgres::Error) -> StoreError {
        StoreError::Postgres {
            location: self.shown.clone(),
            source,
        }
    }

    /// The connection, made anew if there is none or it closed.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut c = super::connect(&self.config).map_err(|e| self.err(e))?;
            if self.synchronous {
                c.batch_execute("SET synchronous_commit = on")
                    .map_err(|e| self.err(e))?;
            }
            self.client = Some(c);
        }
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => Err(StoreError::Other(format!(
                "store {}: no connection",
                self.shown
            ))),
        }
    }

    /// After a failed call: connect again next time (the connection may be broken, or in a
    /// state we do not know), and check the partitions again (one may have been dropped).
    fn reset(&mut self) {
        self.client = None;
        self.days.clear();
    }

    /// Runs `f` on the connection; on failure, resets it.
    fn with<T>(&mut self, f: impl FnOnce(&mut Client, &str) -> Result<T>) -> Result<T> {
        let shown = self.shown.clone();
        let r = self.client().and_then(|c| f(c, &shown));
        if r.is_err() {
            self.reset();
        }
        r
    }

    /// Stores a batch with its identities in one transaction (events first, new by
    /// identity; see [`fold::store`]). On failure the connection is dropped.
    fn store(&mut self, batch: &[(EventId, &Event)]) -> Result<Loaded> {
        if batch.is_empty() {
            return Ok(Loaded::default());
        }
        let r = self.store_once(batch);
        if r.is_err() {
            self.reset();
        }
        r
    }

    fn store_once(&mut self, batch: &[(EventId, &Event)]) -> Result<Loaded> {
        let mut new_days: Vec<i64> = batch
            .iter()
            .flat_map(|(_, e)| {
                let d = day_of(e.timestamp.unix_micros());
                [d, d + 1]
            })
            .filter(|d| !self.days.contains(d))
            .collect();
        new_days.sort_unstable();
        new_days.dedup();
        let shown = self.shown.clone();
        let pg = |source| StoreError::Postgres {
            location: shown.clone(),
            source,
        };
        let client = self.client()?;
        schema::create_partitions(client, &new_days).map_err(pg)?;
        self.days.extend(new_days);
        let client = self.client()?;
        let mut tx = client.transaction().map_err(pg)?;
        let loaded = fold::store(
            &mut Tx {
                tx: &mut tx,
                shown: &shown,
            },
            batch,
        )?;
        tx.commit().map_err(pg)?;
        Ok(loaded)
    }
}

impl crate::Writer for PgWriter {
    /// A batch gets its identities before its transaction and keeps them for its retry: a
    /// retry after a `COMMIT` whose answer was lost finds them stored and adds nothing.
    fn write(&mut self, batch: &[Event]) -> Result<()> {
        let ids = self.ids.assign(batch);
        let r = self.store(&ids);
        self.ids.done(batch, r.is_ok(), true);
        r.map(drop)
    }

    fn write_firewall(&mut self, sensor: &str, recs: &[FirewallRecord]) -> Result<u64> {
        if recs.is_empty() {
            return Ok(0);
        }
        // Each record once, as the table keys it (an IPv4-mapped address is its IPv4 one), in
        // key order (see `flush`).
        let recs: BTreeSet<FirewallKey> = recs
            .iter()
            .map(|r| {
                (
                    r.ts_micros,
                    r.udp,
                    crate::ip_key(r.src),
                    crate::ip_key(r.dst),
                    r.spt,
                    r.dpt,
                )
            })
            .collect();
        let sensor = text(sensor).into_owned();
        self.with(|client, shown| {
            let pg = |source| StoreError::Postgres {
                location: shown.to_string(),
                source,
            };
            let mut tx = client.transaction().map_err(pg)?;
            let ts: Vec<i64> = recs.iter().map(|r| r.0).collect();
            let proto: Vec<&str> = recs
                .iter()
                .map(|r| if r.1 { "udp" } else { "tcp" })
                .collect();
            let src: Vec<&[u8]> = recs.iter().map(|r| r.2.as_slice()).collect();
            let dst: Vec<&[u8]> = recs.iter().map(|r| r.3.as_slice()).collect();
            let spt: Vec<i32> = recs.iter().map(|r| i32::from(r.4)).collect();
            let dpt: Vec<i32> = recs.iter().map(|r| i32::from(r.5)).collect();
            let rows = tx
                .query_typed(
                    "INSERT INTO firewall (ts, sensor, proto, src, dst, spt, dpt)
                     SELECT u.ts, $2, u.proto, u.src, u.dst, u.spt, u.dpt
                     FROM unnest($1::bigint[], $3::text[], $4::bytea[], $5::bytea[], $6::integer[], $7::integer[])
                         AS u (ts, proto, src, dst, spt, dpt)
                     ON CONFLICT DO NOTHING
                     RETURNING ts, proto, src, dst, dpt",
                    &[
                        p(&ts, Type::INT8_ARRAY),
                        p(&sensor, Type::TEXT),
                        p(&proto, Type::TEXT_ARRAY),
                        p(&src, Type::BYTEA_ARRAY),
                        p(&dst, Type::BYTEA_ARRAY),
                        p(&spt, Type::INT4_ARRAY),
                        p(&dpt, Type::INT4_ARRAY),
                    ],
                )
                .map_err(pg)?;
            let mut pending = Pending::default();
            for r in &rows {
                let (ts, proto, src, dst, port): (i64, &str, &[u8], &[u8], super::read::Port) = (
                    r.try_get(0).map_err(pg)?,
                    r.try_get(1).map_err(pg)?,
                    r.try_get(2).map_err(pg)?,
                    r.try_get(3).map_err(pg)?,
                    r.try_get(4).map_err(pg)?,
                );
                let (Some(src), Some(dst)) = (crate::ip_of_key(src), crate::ip_of_key(dst)) else {
                    continue;
                };
                pending.record(&Record {
                    ts_micros: ts,
                    sensor: &sensor,
                    udp: proto == "udp",
                    port: port.0,
                    src,
                    dst,
                });
            }
            flush(&mut tx, &mut pending).map_err(pg)?;
            tx.commit().map_err(pg)?;
            Ok(rows.len() as u64)
        })
    }

    fn ident(&mut self, id: u64) -> Result<Option<Ident>> {
        self.with(|client, shown| {
            let pg = |source| StoreError::Postgres {
                location: shown.to_string(),
                source,
            };
            let row = client
                .query_typed_opt(
                    "SELECT sensor, start_ts, src_ip, src_port FROM sessions WHERE session = $1",
                    &[p(&(id as i64), Type::INT8)],
                )
                .map_err(pg)?;
            row.map(|r| -> PgResult<Ident> {
                Ok(Ident {
                    sensor: r.try_get(0)?,
                    start: r.try_get(1)?,
                    src: r.try_get(2)?,
                    src_port: r.try_get::<_, super::read::Port>(3)?.0,
                })
            })
            .transpose()
            .map_err(pg)
        })
    }

    fn begin_run(&mut self, sensor: &str) -> Result<()> {
        let sensor = text(sensor).into_owned();
        let mut ids = Ids::new();
        let run = ids.begin() as i64;
        let id = self.with(|client, shown| {
            client
                .query_typed_one(
                    "INSERT INTO runs (sensor, started, run) VALUES ($1, $2, $3) RETURNING id",
                    &[
                        p(&sensor, Type::TEXT),
                        p(&chrono::Utc::now().timestamp_micros(), Type::INT8),
                        p(&run, Type::INT8),
                    ],
                )
                .and_then(|r| r.try_get::<_, i64>(0))
                .map_err(|source| StoreError::Postgres {
                    location: shown.to_string(),
                    source,
                })
        })?;
        self.run_id = Some(id);
        self.ids = ids;
        Ok(())
    }

    fn end_run(&mut self, t: RunTotals) -> Result<()> {
        let Some(id) = self.run_id else {
            return Ok(());
        };
        self.with(|client, shown| {
            client
                .query_typed(
                    "UPDATE runs SET stopped = $1, events_sent = $2, events_written = $3,
                         events_dropped = $4, stalls = $5 WHERE id = $6",
                    &[
                        p(&chrono::Utc::now().timestamp_micros(), Type::INT8),
                        p(&(t.sent as i64), Type::INT8),
                        p(&(t.written as i64), Type::INT8),
                        p(&(t.dropped as i64), Type::INT8),
                        p(&(t.stalls as i64), Type::INT8),
                        p(&id, Type::INT8),
                    ],
                )
                .map(drop)
                .map_err(|source| StoreError::Postgres {
                    location: shown.to_string(),
                    source,
                })
        })
    }

    fn location(&self) -> String {
        self.shown.clone()
    }
}

/// One batch's transaction.
struct Tx<'a, 'c> {
    tx: &'a mut Transaction<'c>,
    shown: &'a str,
}

impl Tx<'_, '_> {
    fn err(&self, source: ::postgres::Error) -> StoreError {
        StoreError::Postgres {
            location: self.shown.to_string(),
            source,
        }
    }
}

impl fold::Apply for Tx<'_, '_> {
    fn insert_starts(&mut self, starts: &[Start]) -> Result<Vec<bool>> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let all = starts;
        // In key order, like the rollups (see `flush`).
        let mut starts: Vec<&Start> = all.iter().collect();
        starts.sort_unstable_by_key(|s| s.sid);
        let sid: Vec<i64> = starts.iter().map(|s| s.sid).collect();
        let sensor: Vec<_> = starts.iter().map(|s| text(&s.sensor)).collect();
        let ts: Vec<i64> = starts.iter().map(|s| s.ts).collect();
        let transport: Vec<&str> = starts.iter().map(|s| s.transport()).collect();
        let src: Vec<String> = starts.iter().map(|s| s.src.to_string()).collect();
        let src_port: Vec<i32> = starts.iter().map(|s| i32::from(s.src_port)).collect();
        let dst: Vec<String> = starts.iter().map(|s| s.dst.to_string()).collect();
        let dst_port: Vec<i32> = starts.iter().map(|s| i32::from(s.dst_port)).collect();
        let listener: Vec<_> = starts.iter().map(|s| text(&s.listener)).collect();
        let persona: Vec<_> = starts.iter().map(|s| text(&s.persona)).collect();
        let tls: Vec<bool> = starts.iter().map(|s| s.tls).collect();
        let rows = self
            .tx
            .query_typed(
                "INSERT INTO sessions (session, sensor, start_ts, transport, src_ip, src_port,
                     dst_ip, dst_port, listener, persona, tls)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[],
                     $5::text[], $6::integer[], $7::text[], $8::integer[], $9::text[],
                     $10::text[], $11::boolean[])
                 ON CONFLICT (session) DO NOTHING
                 RETURNING session",
                &[
                    p(&sid, Type::INT8_ARRAY),
                    p(&sensor, Type::TEXT_ARRAY),
                    p(&ts, Type::INT8_ARRAY),
                    p(&transport, Type::TEXT_ARRAY),
                    p(&src, Type::TEXT_ARRAY),
                    p(&src_port, Type::INT4_ARRAY),
                    p(&dst, Type::TEXT_ARRAY),
                    p(&dst_port, Type::INT4_ARRAY),
                    p(&listener, Type::TEXT_ARRAY),
                    p(&persona, Type::TEXT_ARRAY),
                    p(&tls, Type::BOOL_ARRAY),
                ],
            )
            .map_err(|e| self.err(e))?;
        let new: HashSet<i64> = rows
            .iter()
            .map(|r| r.try_get::<_, i64>(0))
            .collect::<PgResult<_>>()
            .map_err(|e| self.err(e))?;
        Ok(all.iter().map(|s| new.contains(&s.sid)).collect())
    }

    fn bases(&mut self, sids: &[i64]) -> Result<HashMap<i64, Base>> {
        let rows = self
            .tx
            .query_typed(
                "SELECT session, persona, served, protocol, after_banner, client, tags, hassh,
                     ja4, client_version
                 FROM sessions WHERE session = ANY($1::bigint[])",
                &[p(&sids, Type::INT8_ARRAY)],
            )
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| -> PgResult<(i64, Base)> {
                Ok((
                    r.try_get(0)?,
                    Base {
                        persona: r.try_get(1)?,
                        served: r.try_get(2)?,
                        protocol: r.try_get(3)?,
                        after_banner: r.try_get(4)?,
                        client: r.try_get(5)?,
                        tags: r.try_get(6)?,
                        hassh: r.try_get(7)?,
                        ja4: r.try_get(8)?,
                        version: r.try_get(9)?,
                    },
                ))
            })
            .collect::<PgResult<_>>()
            .map_err(|e| self.err(e))
    }

    fn apply_deltas(&mut self, deltas: &[(i64, Delta)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        // In key order, like the rollups (see `flush`).
        let mut deltas: Vec<&(i64, Delta)> = deltas.iter().collect();
        deltas.sort_unstable_by_key(|d| d.0);
        // Everything but the tags in one statement: a field the batch did not set keeps its
        // value (a flag says whether `end`, `classified` and `ja` were set, since their values
        // may be NULL). `session = ANY(...)` as well as the join: else, with the table's
        // statistics behind (as they are while it grows), the planner hashes a scan of the
        // whole table for every batch.
        let col = |f: &dyn Fn(&Delta) -> Option<String>| -> Vec<Option<String>> {
            deltas
                .iter()
                .map(|(_, d)| f(d).map(|s| text(&s).into_owned()))
                .collect()
        };
        let sid: Vec<i64> = deltas.iter().map(|(s, _)| *s).collect();
        let has_end: Vec<bool> = deltas.iter().map(|(_, d)| d.end.is_some()).collect();
        let end_ts: Vec<Option<i64>> = deltas
            .iter()
            .map(|(_, d)| d.end.as_ref().map(|e| e.ts))
            .collect();
        let duration: Vec<Option<f64>> = deltas
            .iter()
            .map(|(_, d)| d.end.as_ref().map(|e| e.duration))
            .collect();
        let bytes_in: Vec<Option<i64>> = deltas
            .iter()
            .map(|(_, d)| d.end.as_ref().map(|e| e.bytes_in))
            .collect();
        let bytes_out: Vec<Option<i64>> = deltas
            .iter()
            .map(|(_, d)| d.end.as_ref().map(|e| e.bytes_out))
            .collect();
        let reason = col(&|d| d.end.as_ref().map(|e| e.reason.to_string()));
        let limit = col(&|d| d.end.as_ref().and_then(|e| e.limit.clone()));
        let served = col(&|d| d.served.clone());
        let tls: Vec<bool> = deltas.iter().map(|(_, d)| d.tls).collect();
        let has_class: Vec<bool> = deltas.iter().map(|(_, d)| d.classified.is_some()).collect();
        let protocol = col(&|d| d.classified.as_ref().map(|c| c.0.clone()));
        let client_first: Vec<Option<bool>> = deltas
            .iter()
            .map(|(_, d)| d.classified.as_ref().map(|c| c.1))
            .collect();
        let after_banner = col(&|d| d.classified.as_ref().and_then(|c| c.2.clone()));
        let version = col(&|d| d.version.clone());
        let hassh = col(&|d| d.hassh.clone());
        let has_ja: Vec<bool> = deltas.iter().map(|(_, d)| d.ja.is_some()).collect();
        let ja3 = col(&|d| d.ja.as_ref().map(|j| j.0.clone()));
        let ja4 = col(&|d| d.ja.as_ref().map(|j| j.1.clone()));
        let syn = col(&|d| d.syn.clone());
        let logins: Vec<i64> = deltas.iter().map(|(_, d)| d.logins).collect();
        let logins_ok: Vec<i64> = deltas.iter().map(|(_, d)| d.logins_ok).collect();
        let commands: Vec<i64> = deltas.iter().map(|(_, d)| d.commands).collect();
        let client = col(&|d| d.client.clone());
        self.tx
            .query_typed(
                "UPDATE sessions AS s SET
                    end_ts = CASE WHEN d.has_end THEN d.end_ts ELSE s.end_ts END,
                    duration = CASE WHEN d.has_end THEN d.duration ELSE s.duration END,
                    bytes_in = CASE WHEN d.has_end THEN d.bytes_in ELSE s.bytes_in END,
                    bytes_out = CASE WHEN d.has_end THEN d.bytes_out ELSE s.bytes_out END,
                    reason = CASE WHEN d.has_end THEN d.reason ELSE s.reason END,
                    limit_name = CASE WHEN d.has_end THEN d.limit_name ELSE s.limit_name END,
                    served = coalesce(d.served, s.served),
                    tls = s.tls OR d.tls,
                    protocol = CASE WHEN d.has_class THEN d.protocol ELSE s.protocol END,
                    client_first = CASE WHEN d.has_class THEN d.client_first ELSE s.client_first END,
                    after_banner = CASE WHEN d.has_class THEN d.after_banner ELSE s.after_banner END,
                    client_version = coalesce(d.client_version, s.client_version),
                    hassh = coalesce(d.hassh, s.hassh),
                    ja3 = CASE WHEN d.has_ja THEN d.ja3 ELSE s.ja3 END,
                    ja4 = CASE WHEN d.has_ja THEN d.ja4 ELSE s.ja4 END,
                    syn = coalesce(d.syn, s.syn),
                    logins = s.logins + d.logins,
                    logins_ok = s.logins_ok + d.logins_ok,
                    commands = s.commands + d.commands,
                    client = coalesce(s.client, d.client)
                 FROM unnest($1::bigint[], $2::boolean[], $3::bigint[], $4::double precision[],
                     $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[],
                     $10::boolean[], $11::boolean[], $12::text[], $13::boolean[], $14::text[],
                     $15::text[], $16::text[], $17::boolean[], $18::text[], $19::text[],
                     $20::text[], $21::bigint[], $22::bigint[], $23::bigint[], $24::text[])
                     AS d (session, has_end, end_ts, duration, bytes_in, bytes_out, reason,
                         limit_name, served, tls, has_class, protocol, client_first,
                         after_banner, client_version, hassh, has_ja, ja3, ja4, syn, logins,
                         logins_ok, commands, client)
                 WHERE s.session = d.session AND s.session = ANY($1::bigint[])",
                &[
                    p(&sid, Type::INT8_ARRAY),
                    p(&has_end, Type::BOOL_ARRAY),
                    p(&end_ts, Type::INT8_ARRAY),
                    p(&duration, Type::FLOAT8_ARRAY),
                    p(&bytes_in, Type::INT8_ARRAY),
                    p(&bytes_out, Type::INT8_ARRAY),
                    p(&reason, Type::TEXT_ARRAY),
                    p(&limit, Type::TEXT_ARRAY),
                    p(&served, Type::TEXT_ARRAY),
                    p(&tls, Type::BOOL_ARRAY),
                    p(&has_class, Type::BOOL_ARRAY),
                    p(&protocol, Type::TEXT_ARRAY),
                    p(&client_first, Type::BOOL_ARRAY),
                    p(&after_banner, Type::TEXT_ARRAY),
                    p(&version, Type::TEXT_ARRAY),
                    p(&hassh, Type::TEXT_ARRAY),
                    p(&has_ja, Type::BOOL_ARRAY),
                    p(&ja3, Type::TEXT_ARRAY),
                    p(&ja4, Type::TEXT_ARRAY),
                    p(&syn, Type::TEXT_ARRAY),
                    p(&logins, Type::INT8_ARRAY),
                    p(&logins_ok, Type::INT8_ARRAY),
                    p(&commands, Type::INT8_ARRAY),
                    p(&client, Type::TEXT_ARRAY),
                ],
            )
            .map_err(|e| self.err(e))?;
        // Tags, in order, each once: round k appends every session's k-th new tag (sessions
        // rarely have more than one or two per batch).
        for k in 0.. {
            let (sid, tag): (Vec<i64>, Vec<String>) = deltas
                .iter()
                .filter_map(|(s, d)| d.tags.get(k).map(|t| (*s, text(t).into_owned())))
                .unzip();
            if sid.is_empty() {
                break;
            }
            self.tx
                .query_typed(
                    "UPDATE sessions AS s SET tags = CASE
                         WHEN s.tags IS NULL THEN d.tag
                         WHEN position(',' || d.tag || ',' in ',' || s.tags || ',') > 0
                             OR length(s.tags) > $3 THEN s.tags
                         ELSE s.tags || ',' || d.tag END
                     FROM unnest($1::bigint[], $2::text[]) AS d (session, tag)
                     WHERE s.session = d.session AND s.session = ANY($1::bigint[])",
                    &[
                        p(&sid, Type::INT8_ARRAY),
                        p(&tag, Type::TEXT_ARRAY),
                        p(&(MAX_TAGS_LEN as i64), Type::INT8),
                    ],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn flush(&mut self, p: &mut Pending) -> Result<()> {
        flush(self.tx, p).map_err(|e| self.err(e))
    }

    fn insert_events(&mut self, rows: &[EventRow]) -> Result<Vec<bool>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // In identity order (the lock order; see the module doc), which is the batch's order
        // for a writer's batch (one run, ascending seq): `id`, from the sequence, is the
        // order readers return.
        let mut sorted: Vec<&EventRow> = rows.iter().collect();
        sorted.sort_by(|a, b| {
            (a.id.run as i64, a.id.seq as i64, &a.id.sensor).cmp(&(
                b.id.run as i64,
                b.id.seq as i64,
                &b.id.sensor,
            ))
        });
        let v: Vec<i32> = sorted.iter().map(|e| i32::from(e.v)).collect();
        let ts: Vec<i64> = sorted.iter().map(|e| e.ts).collect();
        let sid: Vec<i64> = sorted.iter().map(|e| e.sid).collect();
        let eventid: Vec<&str> = sorted.iter().map(|e| e.eventid).collect();
        let json: Vec<&str> = sorted.iter().map(|e| e.json.as_str()).collect();
        let sensor: Vec<String> = sorted
            .iter()
            .map(|e| text(&e.id.sensor).into_owned())
            .collect();
        let run: Vec<i64> = sorted.iter().map(|e| e.id.run as i64).collect();
        let seq: Vec<i64> = sorted.iter().map(|e| e.id.seq as i64).collect();
        let new = self
            .tx
            .query_typed(
                "INSERT INTO events (v, ts, session, eventid, json, sensor, run, seq)
                 SELECT v, ts, session, eventid, json, sensor, run, seq FROM unnest($1::integer[], $2::bigint[], $3::bigint[], $4::text[],
                     $5::text[], $6::text[], $7::bigint[], $8::bigint[]) WITH ORDINALITY
                     AS u (v, ts, session, eventid, json, sensor, run, seq, k)
                 ORDER BY k
                 ON CONFLICT (run, seq, sensor, ts) DO NOTHING
                 RETURNING run, seq, sensor",
                &[
                    p(&v, Type::INT4_ARRAY),
                    p(&ts, Type::INT8_ARRAY),
                    p(&sid, Type::INT8_ARRAY),
                    p(&eventid, Type::TEXT_ARRAY),
                    p(&json, Type::TEXT_ARRAY),
                    p(&sensor, Type::TEXT_ARRAY),
                    p(&run, Type::INT8_ARRAY),
                    p(&seq, Type::INT8_ARRAY),
                ],
            )
            .map_err(|e| self.err(e))?;
        let new: HashSet<(i64, i64, String)> = new
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<PgResult<_>>()
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|e| {
                new.contains(&(
                    e.id.run as i64,
                    e.id.seq as i64,
                    text(&e.id.sensor).into_owned(),
                ))
            })
            .collect())
    }

    fn count_sensors(&mut self, c: &SensorCounts) -> Result<()> {
        if c.is_empty() {
            return Ok(());
        }
        // A BTreeMap: in key order.
        let sensor: Vec<String> = c.keys().map(|s| text(s).into_owned()).collect();
        let n: Vec<i64> = c.values().map(|v| v.0).collect();
        let last: Vec<i64> = c.values().map(|v| v.1).collect();
        self.tx
            .query_typed(
                "INSERT INTO sensor_events AS t (sensor, events, last_ts)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                 ON CONFLICT (sensor) DO UPDATE SET events = t.events + excluded.events,
                     last_ts = greatest(t.last_ts, excluded.last_ts)",
                &[
                    p(&sensor, Type::TEXT_ARRAY),
                    p(&n, Type::INT8_ARRAY),
                    p(&last, Type::INT8_ARRAY),
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

impl crate::Loader for PgWriter {
    fn load(&mut self, batch: &[(EventId, Event)]) -> Result<Loaded> {
        let refs: Vec<(EventId, &Event)> = batch.iter().map(|(i, e)| (i.clone(), e)).collect();
        self.store(&refs)
    }

    fn heartbeat(&mut self, hb: &Heartbeat, received_micros: i64) -> Result<()> {
        let sensor = text(&hb.sensor).into_owned();
        let version = text(&hb.version).into_owned();
        let (run, backlog, dropped) = (hb.run as i64, hb.backlog as i64, hb.dropped as i64);
        // The latest by the bus's time wins (a sensor's clock may be hours off, or jump).
        self.with(|client, shown| {
            client
                .query_typed(
                    "INSERT INTO heartbeats AS t (sensor, version, run, sent, received, backlog,
                         oldest_unacked_secs, events_per_minute, dropped)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (sensor) DO UPDATE SET version = excluded.version,
                         run = excluded.run, sent = excluded.sent, received = excluded.received,
                         backlog = excluded.backlog,
                         oldest_unacked_secs = excluded.oldest_unacked_secs,
                         events_per_minute = excluded.events_per_minute,
                         dropped = excluded.dropped
                     WHERE excluded.received >= t.received",
                    &[
                        p(&sensor, Type::TEXT),
                        p(&version, Type::TEXT),
                        p(&run, Type::INT8),
                        p(&hb.sent_micros, Type::INT8),
                        p(&received_micros, Type::INT8),
                        p(&backlog, Type::INT8),
                        p(&hb.oldest_unacked_secs, Type::FLOAT8),
                        p(&hb.events_per_minute, Type::FLOAT8),
                        p(&dropped, Type::INT8),
                    ],
                )
                .map(drop)
                .map_err(|source| StoreError::Postgres {
                    location: shown.to_string(),
                    source,
                })
        })
    }

    fn park(&mut self, pk: &Parked) -> Result<()> {
        let body = &pk.body[..pk.body.len().min(MAX_PARKED_BODY)];
        let (subject, reason) = (
            text(&pk.subject).into_owned(),
            text(&pk.reason).into_owned(),
        );
        self.with(|client, shown| {
            client
                .query_typed(
                    "INSERT INTO parked (subject, reason, body, received) VALUES ($1, $2, $3, $4)",
                    &[
                        p(&subject, Type::TEXT),
                        p(&reason, Type::TEXT),
                        p(&body, Type::BYTEA),
                        p(&pk.received_micros, Type::INT8),
                    ],
                )
                .map(drop)
                .map_err(|source| StoreError::Postgres {
                    location: shown.to_string(),
                    source,
                })
        })
    }
}

/// A map's entries in key order.
fn sorted<K: Ord, V>(entries: impl Iterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = entries.collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Writes the rollup counts gathered (inside the caller's transaction) and empties them: four
/// statements whatever their number.
///
/// Each upsert takes its rows in key order. Writers running at once (sensors sharing a
/// database) upsert the same rows, the fleet-wide ones above all; in a hash map's order, two
/// of them would lock those rows in different orders and deadlock.
pub(crate) fn flush(tx: &mut Transaction<'_>, pd: &mut Pending) -> PgResult<()> {
    if pd.ports.is_empty() && pd.items.is_empty() && pd.src.is_empty() && pd.dst.is_empty() {
        return Ok(());
    }
    // Addresses first: an address is new to its (day, sensor, port) when its count after the
    // upsert is what this batch added.
    let mut new: [HashMap<(i64, String, u16), i64>; 2] = Default::default();
    for (i, (table, set)) in [("port_day_src", &mut pd.src), ("port_day_dst", &mut pd.dst)]
        .into_iter()
        .enumerate()
    {
        if set.is_empty() {
            continue;
        }
        let (mut day, mut sensor, mut port, mut ip, mut n) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((d, s, pt, a), c) in sorted(set.drain()) {
            day.push(d);
            sensor.push(text(&s).into_owned());
            port.push(i32::from(pt));
            ip.push(a);
            n.push(c);
        }
        let rows = tx.query_typed(
            &format!(
                "WITH b (day, sensor, port, ip, n) AS (
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::bytea[],
                         $5::bigint[])
                 ), up AS (
                     INSERT INTO {table} AS t (day, sensor, port, ip, n)
                     SELECT day, sensor, port, ip, n FROM b
                     ON CONFLICT (port, sensor, day, ip) DO UPDATE SET n = t.n + excluded.n
                     RETURNING t.day, t.sensor, t.port, t.ip, t.n
                 )
                 SELECT up.day, up.sensor, up.port, count(*)
                 FROM up JOIN b ON b.day = up.day AND b.sensor = up.sensor AND b.port = up.port
                     AND b.ip = up.ip
                 WHERE up.n = b.n
                 GROUP BY up.day, up.sensor, up.port"
            ),
            &[
                p(&day, Type::INT8_ARRAY),
                p(&sensor, Type::TEXT_ARRAY),
                p(&port, Type::INT4_ARRAY),
                p(&ip, Type::BYTEA_ARRAY),
                p(&n, Type::INT8_ARRAY),
            ],
        )?;
        for r in rows {
            let port: super::read::Port = r.try_get(2)?;
            new[i].insert((r.try_get(0)?, r.try_get(1)?, port.0), r.try_get(3)?);
        }
    }
    if !pd.ports.is_empty() {
        let mut cols: (Vec<i64>, Vec<String>, Vec<i32>) = Default::default();
        let mut counts: [Vec<i64>; 5] = Default::default();
        for ((day, sensor, port), [records, tcp, udp]) in sorted(pd.ports.drain()) {
            let key = (day, text(&sensor).into_owned(), port);
            let sources = new[0].get(&key).copied().unwrap_or(0);
            let targets = new[1].get(&key).copied().unwrap_or(0);
            cols.0.push(day);
            cols.1.push(key.1);
            cols.2.push(i32::from(port));
            for (v, x) in counts.iter_mut().zip([records, tcp, udp, sources, targets]) {
                v.push(x);
            }
        }
        tx.query_typed(
            "INSERT INTO port_day AS t (day, sensor, port, records, tcp, udp, sources, targets)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::bigint[],
                 $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
             ON CONFLICT (day, sensor, port) DO UPDATE SET
                 records = t.records + excluded.records, tcp = t.tcp + excluded.tcp,
                 udp = t.udp + excluded.udp, sources = t.sources + excluded.sources,
                 targets = t.targets + excluded.targets",
            &[
                p(&cols.0, Type::INT8_ARRAY),
                p(&cols.1, Type::TEXT_ARRAY),
                p(&cols.2, Type::INT4_ARRAY),
                p(&counts[0], Type::INT8_ARRAY),
                p(&counts[1], Type::INT8_ARRAY),
                p(&counts[2], Type::INT8_ARRAY),
                p(&counts[3], Type::INT8_ARRAY),
                p(&counts[4], Type::INT8_ARRAY),
            ],
        )?;
    }
    if !pd.items.is_empty() {
        let (mut port, mut sensor, mut day, mut kind, mut item, mut n) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for ((pt, s, d, k, it), c) in sorted(pd.items.drain()) {
            port.push(i32::from(pt));
            sensor.push(text(&s).into_owned());
            day.push(d);
            kind.push(k);
            item.push(it);
            n.push(c);
        }
        tx.query_typed(
            "INSERT INTO port_day_item AS t (port, sensor, day, kind, item, n)
             SELECT * FROM unnest($1::integer[], $2::text[], $3::bigint[], $4::text[],
                 $5::bytea[], $6::bigint[])
             ON CONFLICT (port, sensor, day, kind, item) DO UPDATE SET n = t.n + excluded.n",
            &[
                p(&port, Type::INT4_ARRAY),
                p(&sensor, Type::TEXT_ARRAY),
                p(&day, Type::INT8_ARRAY),
                p(&kind, Type::TEXT_ARRAY),
                p(&item, Type::BYTEA_ARRAY),
                p(&n, Type::INT8_ARRAY),
            ],
        )?;
    }
    Ok(())
}
