//! The SQLite reader: [`crate::Reader`] over one connection.

use std::collections::HashMap;
use std::path::Path;

use honeyport_event::{Event, EventKind, SessionId, Timestamp, Transport};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};

use crate::fleet::{Heartbeat, SensorHealth};
use crate::fold::session_key;
use crate::rollup::FLEET;
use crate::{
    EventFilter, PortCounts, Result, Scope, SessionFilter, SourceCount, StoreError, Summary, Window,
};

pub struct SqliteReader {
    conn: Connection,
    path: String,
}

/// The rollups' key of a scope.
fn key<'a>(s: Scope<'a>) -> &'a str {
    s.sensor().unwrap_or(FLEET)
}

impl SqliteReader {
    /// Opens `honeyport.db` in `dir`. A store of an older version is migrated first (the
    /// rollups of a store written before they existed are computed once), so that one open is
    /// read-write; a current store is opened read-only.
    pub fn open(dir: &Path) -> Result<SqliteReader> {
        SqliteReader::open_dir(dir)
    }

    /// Opens `honeyport.db` in `dir` (see [`SqliteReader::open`]).
    pub fn open_dir(dir: &Path) -> Result<SqliteReader> {
        let path = dir.join(crate::DB_FILE);
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Missing(shown));
        }
        let foreign = |source| StoreError::Foreign {
            path: shown.clone(),
            source,
        };
        let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, ro).map_err(|source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        // A corrupt or foreign file fails here, with its name.
        conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
            .map_err(foreign)?;
        if !super::schema::is_current(&conn).map_err(foreign)? {
            drop(conn);
            drop(super::SqliteWriter::open(
                &path,
                crate::WriterOptions::default(),
            )?);
            return SqliteReader::open_dir(dir);
        }
        Ok(SqliteReader { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Number of rows in a table matching a condition (tests and checks).
    pub fn count(&self, table: &str, where_sql: &str) -> Result<i64> {
        let sql = format!("SELECT count(*) FROM {table} WHERE {where_sql}");
        self.conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The raw connection, for read-only ad-hoc queries (tests, benchmarks).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn distinct(&self, table: &str, s: Scope<'_>, port: u16, w: Window) -> rusqlite::Result<i64> {
        self.conn.query_row(
            &format!(
                "SELECT count(DISTINCT ip) FROM {table}
                 WHERE port = ?1 AND sensor = ?2 AND day BETWEEN ?3 AND ?4"
            ),
            params![port, key(s), w.since, w.until],
            |r| r.get(0),
        )
    }
}

/// A row limit for SQL: at most `i64::MAX` (a larger `LIMIT` is a float to SQLite, and the
/// query fails with "datatype mismatch"; `usize::MAX` means "all").
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A query's `AND` conditions with their arguments, in order.
#[derive(Default)]
struct Conds {
    sql: String,
    args: Vec<Value>,
}

impl Conds {
    /// Adds ` AND clause` with one `?` bound to `v`.
    fn and(&mut self, clause: &str, v: impl Into<Value>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.args.push(v.into());
    }
}

fn counts(r: &rusqlite::Row<'_>) -> rusqlite::Result<PortCounts> {
    Ok(PortCounts {
        day: r.get(0)?,
        port: r.get(1)?,
        records: r.get(2)?,
        tcp: r.get(3)?,
        udp: r.get(4)?,
        sources: r.get(5)?,
        targets: r.get(6)?,
    })
}

const SUMMARY_COLS: &str =
    "session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port,
    listener, persona, served, tls, protocol, client_first, after_banner, client_version, hassh,
    ja3, ja4, syn, logins, logins_ok, commands, tags, client, end_ts, bytes_in, bytes_out, reason";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    let sid: i64 = r.get(0)?;
    Ok(Summary {
        session: format!("{:016x}", sid as u64),
        sensor: r.get(1)?,
        start: r.get(2)?,
        transport: r.get(3)?,
        src_ip: r.get(4)?,
        src_port: r.get(5)?,
        dst_ip: r.get(6)?,
        dst_port: r.get(7)?,
        listener: r.get(8)?,
        persona: r.get(9)?,
        served: r.get(10)?,
        tls: r.get(11)?,
        protocol: r.get(12)?,
        client_first: r.get(13)?,
        after_banner: r.get(14)?,
        client_version: r.get(15)?,
        hassh: r.get(16)?,
        ja3: r.get(17)?,
        ja4: r.get(18)?,
        syn: r.get(19)?,
        logins: r.get(20)?,
        logins_ok: r.get(21)?,
        commands: r.get(22)?,
        tags: split_tags(r.get(23)?),
        client: r.get(24)?,
        end: r.get(25)?,
        bytes_in: r.get(26)?,
        bytes_out: r.get(27)?,
        reason: r.get(28)?,
    })
}

pub(crate) fn split_tags(t: Option<String>) -> Vec<String> {
    t.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl crate::Reader for SqliteReader {
    fn day_range(&self, s: Scope<'_>) -> Result<Option<(i64, i64)>> {
        let r: (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT min(day), max(day) FROM port_day WHERE sensor = ?1",
                [key(s)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(r.0.zip(r.1))
    }

    fn ports_on_day(&self, s: Scope<'_>, day: i64) -> Result<Vec<PortCounts>> {
        let r = (|| {
            let mut q = self.conn.prepare_cached(
                "SELECT day, port, records, tcp, udp, sources, targets FROM port_day
                 WHERE day = ?1 AND sensor = ?2 ORDER BY port",
            )?;
            let rows: rusqlite::Result<Vec<PortCounts>> =
                q.query_map(params![day, key(s)], counts)?.collect();
            rows
        })();
        r.map_err(|e| self.err(e))
    }

    fn ports_in_window(&self, s: Scope<'_>, w: Window) -> Result<Vec<PortCounts>> {
        let r = (|| -> rusqlite::Result<Vec<PortCounts>> {
            let mut q = self.conn.prepare_cached(
                "SELECT ?1, port, sum(records), sum(tcp), sum(udp), 0, 0 FROM port_day
                 WHERE day BETWEEN ?2 AND ?1 AND sensor = ?3 GROUP BY port ORDER BY port",
            )?;
            let mut rows: Vec<PortCounts> = q
                .query_map(params![w.until, w.since, key(s)], counts)?
                .collect::<rusqlite::Result<_>>()?;
            let by_port: HashMap<u16, usize> =
                rows.iter().enumerate().map(|(i, r)| (r.port, i)).collect();
            for (table, src) in [("port_day_src", true), ("port_day_dst", false)] {
                let mut q = self.conn.prepare_cached(&format!(
                    "SELECT port, count(DISTINCT ip) FROM {table}
                     WHERE day BETWEEN ?1 AND ?2 AND sensor = ?3 GROUP BY port"
                ))?;
                let mut it = q.query(params![w.since, w.until, key(s)])?;
                while let Some(r) = it.next()? {
                    let port: u16 = r.get(0)?;
                    let count: i64 = r.get(1)?;
                    if let Some(&i) = by_port.get(&port) {
                        if src {
                            rows[i].sources = count;
                        } else {
                            rows[i].targets = count;
                        }
                    }
                }
            }
            Ok(rows)
        })();
        r.map_err(|e| self.err(e))
    }

    fn port_in_window(&self, s: Scope<'_>, port: u16, w: Window) -> Result<PortCounts> {
        let r = (|| -> rusqlite::Result<PortCounts> {
            let (records, tcp, udp): (i64, i64, i64) = self.conn.query_row(
                "SELECT coalesce(sum(records), 0), coalesce(sum(tcp), 0), coalesce(sum(udp), 0)
                 FROM port_day WHERE port = ?1 AND sensor = ?2 AND day BETWEEN ?3 AND ?4",
                params![port, key(s), w.since, w.until],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            Ok(PortCounts {
                day: w.until,
                port,
                records,
                tcp,
                udp,
                sources: self.distinct("port_day_src", s, port, w)?,
                targets: self.distinct("port_day_dst", s, port, w)?,
            })
        })();
        r.map_err(|e| self.err(e))
    }

    fn port_days(&self, s: Scope<'_>, port: u16, from: i64, until: i64) -> Result<Vec<PortCounts>> {
        let r = (|| {
            let mut q = self.conn.prepare_cached(
                "SELECT day, port, records, tcp, udp, sources, targets FROM port_day
                 WHERE port = ?1 AND sensor = ?2 AND day BETWEEN ?3 AND ?4 ORDER BY day",
            )?;
            let rows: rusqlite::Result<Vec<PortCounts>> = q
                .query_map(params![port, key(s), from, until], counts)?
                .collect();
            rows
        })();
        r.map_err(|e| self.err(e))
    }

    fn items(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        n: usize,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let r = (|| {
            let port_filter = if port.is_some() { " AND port = ?5" } else { "" };
            let sql = format!(
                "SELECT item, sum(n) AS total FROM port_day_item
                 WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3 AND kind = ?4{port_filter}
                 GROUP BY item ORDER BY total DESC, item LIMIT {}",
                limit(n)
            );
            let mut args: Vec<Value> = vec![
                key(s).to_string().into(),
                w.since.into(),
                w.until.into(),
                kind.to_string().into(),
            ];
            if let Some(p) = port {
                args.push(i64::from(p).into());
            }
            let mut q = self.conn.prepare_cached(&sql)?;
            let rows: rusqlite::Result<Vec<(Vec<u8>, i64)>> = q
                .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect();
            rows
        })();
        r.map_err(|e| self.err(e))
    }

    fn item_total(&self, s: Scope<'_>, w: Window, port: Option<u16>, kind: &str) -> Result<i64> {
        let port_filter = if port.is_some() { " AND port = ?5" } else { "" };
        let mut args: Vec<Value> = vec![
            key(s).to_string().into(),
            w.since.into(),
            w.until.into(),
            kind.to_string().into(),
        ];
        if let Some(p) = port {
            args.push(i64::from(p).into());
        }
        self.conn
            .query_row(
                &format!(
                    "SELECT coalesce(sum(n), 0) FROM port_day_item
                     WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3 AND kind = ?4{port_filter}"
                ),
                params_from_iter(args),
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn item_counts(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        items: &[Vec<u8>],
    ) -> Result<Vec<i64>> {
        let r = (|| -> rusqlite::Result<Vec<i64>> {
            let port_filter = if port.is_some() { " AND port = ?6" } else { "" };
            let mut q = self.conn.prepare_cached(&format!(
                "SELECT coalesce(sum(n), 0) FROM port_day_item
                 WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3 AND kind = ?4 AND item = ?5{port_filter}"
            ))?;
            items
                .iter()
                .map(|it| {
                    let mut args: Vec<Value> = vec![
                        key(s).to_string().into(),
                        w.since.into(),
                        w.until.into(),
                        kind.to_string().into(),
                        Value::Blob(it.clone()),
                    ];
                    if let Some(p) = port {
                        args.push(i64::from(p).into());
                    }
                    q.query_row(params_from_iter(args), |r| r.get(0))
                })
                .collect()
        })();
        r.map_err(|e| self.err(e))
    }

    fn sources(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        n: usize,
    ) -> Result<Vec<SourceCount>> {
        let r = (|| -> rusqlite::Result<Vec<SourceCount>> {
            let port_filter = if port.is_some() { " AND port = ?4" } else { "" };
            let sql = format!(
                "SELECT ip, sum(n) AS total, count(DISTINCT port), count(DISTINCT day) FROM port_day_src
                 WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3{port_filter}
                 GROUP BY ip ORDER BY total DESC, ip LIMIT {}",
                limit(n)
            );
            let mut args: Vec<Value> =
                vec![key(s).to_string().into(), w.since.into(), w.until.into()];
            if let Some(p) = port {
                args.push(i64::from(p).into());
            }
            let mut q = self.conn.prepare_cached(&sql)?;
            let found: Vec<(Vec<u8>, i64, i64, i64)> = q
                .query_map(params_from_iter(args), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // Each listed source's busiest port: one pass over the window for all of them
            // (the sets are keyed by port first, so a per-address lookup would read the
            // whole window).
            let mut sources = crate::Sources::new(found, port);
            // In chunks: SQLite takes at most 32766 parameters in a statement.
            let chunks: Vec<Vec<Value>> = sources
                .pending()
                .chunks(10_000)
                .map(|c| c.iter().map(|f| Value::Blob(f.0.clone())).collect())
                .collect();
            for ips in chunks {
                let marks = vec!["?"; ips.len()].join(",");
                let sql = format!(
                    "SELECT ip, port, sum(n) FROM port_day_src
                     WHERE sensor = ? AND day BETWEEN ? AND ? AND ip IN ({marks}) GROUP BY ip, port"
                );
                let mut args: Vec<Value> =
                    vec![key(s).to_string().into(), w.since.into(), w.until.into()];
                args.extend(ips);
                let mut q = self.conn.prepare(&sql)?;
                let mut rows = q.query(params_from_iter(args))?;
                while let Some(r) = rows.next()? {
                    sources.add(r.get(0)?, r.get(1)?, r.get(2)?);
                }
            }
            Ok(sources.rows())
        })();
        r.map_err(|e| self.err(e))
    }

    fn sessions(
        &self,
        s: Scope<'_>,
        w: Window,
        f: &SessionFilter,
        n: usize,
    ) -> Result<Vec<Summary>> {
        let r = (|| {
            let (from, to) = w.micros();
            let sql =
                format!("SELECT {SUMMARY_COLS} FROM sessions WHERE start_ts >= ? AND start_ts < ?");
            let mut c = Conds {
                sql,
                args: vec![from.into(), to.into()],
            };
            if let Some(sensor) = s.sensor() {
                c.and("sensor = ?", sensor.to_string());
            }
            if let Some(p) = f.port {
                c.and("dst_port = ?", i64::from(p));
            }
            if let Some(ip) = f.src {
                c.and("src_ip = ?", ip.to_string());
            }
            if let Some(p) = &f.protocol {
                c.and("protocol = ?", p.clone());
            }
            if let Some(t) = &f.tag {
                c.and("instr(',' || tags || ',', ',' || ? || ',') > 0", t.clone());
            }
            if let Some(cl) = &f.client {
                c.and("instr(lower(client), lower(?)) > 0", cl.clone());
            }
            if f.logins {
                c.sql.push_str(" AND logins > 0");
            }
            if f.sent_bytes {
                c.sql.push_str(" AND bytes_in > 0");
            }
            let Conds { mut sql, args } = c;
            sql.push_str(&format!(
                " ORDER BY start_ts DESC, session DESC LIMIT {}",
                limit(n)
            ));
            let mut q = self.conn.prepare(&sql)?;
            let rows: rusqlite::Result<Vec<Summary>> =
                q.query_map(params_from_iter(args), summary)?.collect();
            rows
        })();
        r.map_err(|e| self.err(e))
    }

    fn port_seen(&self, s: Scope<'_>, port: u16) -> Result<(Option<i64>, Option<i64>)> {
        // Lookups on the (dst_port, start_ts) index (one sensor's need a scan of the port's
        // sessions instead).
        let r = match s.sensor() {
            None => self.conn.query_row(
                "SELECT min(start_ts), max(start_ts) FROM sessions WHERE dst_port = ?1",
                params![port],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ),
            Some(sensor) => self.conn.query_row(
                "SELECT min(start_ts), max(start_ts) FROM sessions WHERE dst_port = ?1 AND sensor = ?2",
                params![port, sensor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ),
        };
        r.map_err(|e| self.err(e))
    }

    fn summary(&self, session: &str) -> Result<Option<Summary>> {
        let Some(k) = session_key(&SessionId(session.to_string())) else {
            return Ok(None);
        };
        self.conn
            .query_row(
                &format!("SELECT {SUMMARY_COLS} FROM sessions WHERE session = ?1"),
                [k],
                summary,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let sql = String::from(
            "SELECT e.id, e.v, e.ts, e.json, s.session, s.sensor, s.transport, s.src_ip, s.src_port, s.dst_ip, s.dst_port
             FROM events e JOIN sessions s ON s.session = e.session WHERE 1=1",
        );
        let mut c = Conds {
            sql,
            args: Vec::new(),
        };
        if let Some(p) = f.port {
            c.and(
                "e.session IN (SELECT session FROM sessions WHERE dst_port = ?)",
                i64::from(p),
            );
        }
        if let Some(ip) = f.src {
            c.and(
                "e.session IN (SELECT session FROM sessions WHERE src_ip = ?)",
                ip.to_string(),
            );
        }
        if let Some(s) = &f.session {
            // An id that is not hex matches nothing.
            c.and(
                "e.session = ?",
                session_key(&SessionId(s.clone())).unwrap_or(-1),
            );
        }
        let Conds { mut sql, mut args } = c;
        if !f.eventids.is_empty() {
            sql.push_str(" AND e.eventid IN (");
            sql.push_str(&vec!["?"; f.eventids.len()].join(","));
            sql.push(')');
            args.extend(f.eventids.iter().map(|e| Value::Text(e.to_string())));
        }
        sql.push_str(if f.oldest_first {
            " ORDER BY e.id"
        } else {
            " ORDER BY e.id DESC"
        });
        if let Some(n) = f.limit {
            sql.push_str(" LIMIT ?");
            args.push(limit(n).into());
        }
        let rows = (|| {
            let mut stmt = self.conn.prepare(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(args), Row::read)?
                .collect::<rusqlite::Result<Vec<Row>>>();
            rows
        })()
        .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|row| {
                let id = row.id;
                row.into_event()
                    .map_err(|error| StoreError::Decode { id, error })
            })
            .collect()
    }

    fn sensors(&self) -> Result<Vec<SensorHealth>> {
        let r = (|| {
            let mut q = self.conn.prepare_cached(
                "SELECT h.sensor, h.version, h.run, h.sent, h.received, h.backlog,
                     h.oldest_unacked_secs, h.events_per_minute, h.dropped, c.events, c.last_ts
                 FROM heartbeats h LEFT JOIN sensor_events c ON c.sensor = h.sensor
                 ORDER BY h.sensor",
            )?;
            let rows = q.query_map([], |r| {
                Ok(crate::fleet::health(
                    Heartbeat {
                        sensor: r.get(0)?,
                        version: r.get(1)?,
                        run: r.get::<_, i64>(2)? as u64,
                        sent_micros: r.get(3)?,
                        backlog: r.get::<_, i64>(5)? as u64,
                        oldest_unacked_secs: r.get(6)?,
                        events_per_minute: r.get(7)?,
                        dropped: r.get::<_, i64>(8)? as u64,
                    },
                    r.get(4)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        r.map_err(|e| self.err(e))
    }

    fn parked(&self) -> Result<u64> {
        self.count("parked", "1").map(|n| n as u64)
    }

    fn location(&self) -> String {
        self.path.clone()
    }
}

/// One `events JOIN sessions` row.
pub(crate) struct Row {
    pub id: i64,
    pub v: i64,
    pub ts: i64,
    pub json: String,
    pub session: i64,
    pub sensor: String,
    pub transport: String,
    pub src_ip: String,
    pub src_port: i64,
    pub dst_ip: String,
    pub dst_port: i64,
}

impl Row {
    /// The row from a query's first 11 columns: `e.id, e.v, e.ts, e.json, s.session,
    /// s.sensor, s.transport, s.src_ip, s.src_port, s.dst_ip, s.dst_port`.
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            id: r.get(0)?,
            v: r.get(1)?,
            ts: r.get(2)?,
            json: r.get(3)?,
            session: r.get(4)?,
            sensor: r.get(5)?,
            transport: r.get(6)?,
            src_ip: r.get(7)?,
            src_port: r.get(8)?,
            dst_ip: r.get(9)?,
            dst_port: r.get(10)?,
        })
    }

    /// Rebuilds exactly the event that was written.
    pub(crate) fn into_event(self) -> std::result::Result<Event, String> {
        let kind: EventKind =
            serde_json::from_str(&self.json).map_err(|e| format!("bad event json: {e}"))?;
        let port = |p: i64| u16::try_from(p).map_err(|_| format!("port {p} out of range"));
        Ok(Event {
            v: u16::try_from(self.v).map_err(|_| format!("bad schema version {}", self.v))?,
            timestamp: Timestamp::from_unix_micros(self.ts)
                .ok_or_else(|| format!("bad timestamp {}", self.ts))?,
            sensor: self.sensor,
            session: SessionId::from_u64(self.session as u64),
            transport: match self.transport.as_str() {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                other => return Err(format!("bad transport {other:?}")),
            },
            src_ip: self
                .src_ip
                .parse()
                .map_err(|_| format!("bad src_ip {:?}", self.src_ip))?,
            src_port: port(self.src_port)?,
            dst_ip: self
                .dst_ip
                .parse()
                .map_err(|_| format!("bad dst_ip {:?}", self.dst_ip))?,
            dst_port: port(self.dst_port)?,
            kind,
        })
    }
}
