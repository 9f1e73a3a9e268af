//! The PostgreSQL reader: [`crate::Reader`] over one connection.
//!
//! Every answer is SQLite's ([`crate::sqlite::read`]), row for row and in the same order, ties
//! included: text compares bytewise (`COLLATE "C"`), items and addresses are `bytea` (bytewise,
//! shorter first on a common prefix, as SQLite's blobs), and sums are cast back to `bigint`
//! (PostgreSQL's `sum(bigint)` is `numeric`).
//!
//! One connection, behind a `RefCell` ([`crate::Reader`]'s methods take `&self`; a reader is
//! used by one thread at a time, like SQLite's): a report's queries run one after the other
//! anyway. A connection that broke is made again by the next query. Sessions are read-only
//! (`default_transaction_read_only`).

use std::cell::RefCell;

use ::postgres::error::SqlState;
use ::postgres::types::{FromSql, ToSql, Type};
use ::postgres::{Client, Config, Row};
use honeyport_event::{Event, SessionId};

use super::{schema, text};
use crate::fleet::{Heartbeat, SensorHealth};
use crate::fold::session_key;
use crate::rollup::FLEET;
use crate::sqlite::read::split_tags;
use crate::{
    EventFilter, PortCounts, Result, Scope, SessionFilter, SourceCount, StoreError, Summary, Window,
};

type PgResult<T> = std::result::Result<T, ::postgres::Error>;
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

fn p<'a>(v: &'a (dyn ToSql + Sync), t: Type) -> Param<'a> {
    (v, t)
}

/// A port column (`integer`) as a `u16`; out of range is a decoding error.
pub(crate) struct Port(pub u16);

impl<'a> FromSql<'a> for Port {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Port, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Port(u16::try_from(i32::from_sql(ty, raw)?)?))
    }
    fn accepts(ty: &Type) -> bool {
        <i32 as FromSql>::accepts(ty)
    }
}

/// The rollups' key of a scope.
fn key(s: Scope<'_>) -> String {
    text(s.sensor().unwrap_or(FLEET)).into_owned()
}

/// A row limit as SQL's `bigint`.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub struct PgReader {
    config: Config,
    /// The URL without its password.
    shown: String,
    /// `None` after the connection broke: the next query connects again.
    conn: RefCell<Option<Client>>,
}

impl PgReader {
    /// Connects to the database at `url`. A database that does not exist is
    /// [`StoreError::Missing`], one without the honeyport tables [`StoreError::NoSchema`] (a
    /// reader creates nothing), one of a newer schema an error.
    pub fn open(url: &str) -> Result<PgReader> {
        let config = super::config(url)?;
        let shown = super::redact(url);
        let pg = |source| StoreError::Postgres {
            location: shown.clone(),
            source,
        };
        let mut client = match Self::connect(&config) {
            Ok(c) => c,
            Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                return Err(StoreError::Missing(shown))
            }
            Err(e) => return Err(pg(e)),
        };
        match schema::version(&mut client).map_err(pg)? {
            None => return Err(StoreError::NoSchema(shown)),
            Some(v) if v > schema::VERSION => {
                return Err(StoreError::Other(format!(
                    "store {shown} has schema version {v}, newer than this build's {} (upgrade honeyport)",
                    schema::VERSION
                )))
            }
            Some(_) => {}
        }
        Ok(PgReader {
            config,
            shown,
            conn: RefCell::new(Some(client)),
        })
    }

    fn connect(config: &Config) -> PgResult<Client> {
        let mut c = super::connect(config)?;
        c.batch_execute("SET default_transaction_read_only = on")?;
        Ok(c)
    }

    fn err(&self, source: ::postgres::Error) -> StoreError {
        StoreError::Postgres {
            location: self.shown.clone(),
            source,
        }
    }

    /// Runs one query (one round trip: the parameters' types go with it).
    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let mut conn = self.conn.borrow_mut();
        if conn.as_ref().is_none_or(Client::is_closed) {
            *conn = None;
            *conn = Some(Self::connect(&self.config).map_err(|e| self.err(e))?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(StoreError::Other(format!(
                "store {}: no connection",
                self.shown
            )));
        };
        match c.query_typed(sql, params) {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // A server error leaves the connection usable; anything else may not have.
                if c.is_closed() || e.as_db_error().is_none() {
                    *conn = None;
                }
                Err(self.err(e))
            }
        }
    }

    /// Runs a query and decodes its rows.
    fn rows<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&Row) -> PgResult<T>,
    ) -> Result<Vec<T>> {
        let rows = self.query(sql, params)?;
        rows.iter()
            .map(f)
            .collect::<PgResult<_>>()
            .map_err(|e| self.err(e))
    }

    /// A query of exactly one row.
    fn one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&Row) -> PgResult<T>,
    ) -> Result<T> {
        self.rows(sql, params, f)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                StoreError::Other(format!("store {}: a query returned no row", self.shown))
            })
    }
}

/// A query's `AND` conditions with their arguments, in order.
#[derive(Default)]
struct Conds {
    sql: String,
    args: Vec<(Box<dyn ToSql + Sync>, Type)>,
}

impl Conds {
    /// Adds an argument; returns its placeholder (`$n`).
    fn arg(&mut self, v: impl ToSql + Sync + 'static, t: Type) -> String {
        self.args.push((Box::new(v), t));
        format!("${}", self.args.len())
    }

    /// Adds ` AND clause`, its `?` standing for `v`.
    fn and(&mut self, clause: &str, v: impl ToSql + Sync + 'static, t: Type) {
        let n = self.arg(v, t);
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &n));
    }

    fn params(&self) -> Vec<Param<'_>> {
        self.args
            .iter()
            .map(|(v, t)| (&**v as &(dyn ToSql + Sync), t.clone()))
            .collect()
    }
}

fn counts(r: &Row) -> PgResult<PortCounts> {
    Ok(PortCounts {
        day: r.try_get(0)?,
        port: r.try_get::<_, Port>(1)?.0,
        records: r.try_get(2)?,
        tcp: r.try_get(3)?,
        udp: r.try_get(4)?,
        sources: r.try_get(5)?,
        targets: r.try_get(6)?,
    })
}

const SUMMARY_COLS: &str =
    "session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port,
    listener, persona, served, tls, protocol, client_first, after_banner, client_version, hassh,
    ja3, ja4, syn, logins, logins_ok, commands, tags, client, end_ts, bytes_in, bytes_out, reason";

fn summary(r: &Row) -> PgResult<Summary> {
    let sid: i64 = r.try_get(0)?;
    Ok(Summary {
        session: format!("{:016x}", sid as u64),
        sensor: r.try_get(1)?,
        start: r.try_get(2)?,
        transport: r.try_get(3)?,
        src_ip: r.try_get(4)?,
        src_port: r.try_get::<_, Port>(5)?.0,
        dst_ip: r.try_get(6)?,
        dst_port: r.try_get::<_, Port>(7)?.0,
        listener: r.try_get(8)?,
        persona: r.try_get(9)?,
        served: r.try_get(10)?,
        tls: r.try_get(11)?,
        protocol: r.try_get(12)?,
        client_first: r.try_get(13)?,
        after_banner: r.try_get(14)?,
        client_version: r.try_get(15)?,
        hassh: r.try_get(16)?,
        ja3: r.try_get(17)?,
        ja4: r.try_get(18)?,
        syn: r.try_get(19)?,
        logins: r.try_get(20)?,
        logins_ok: r.try_get(21)?,
        commands: r.try_get(22)?,
        tags: split_tags(r.try_get(23)?),
        client: r.try_get(24)?,
        end: r.try_get(25)?,
        bytes_in: r.try_get(26)?,
        bytes_out: r.try_get(27)?,
        reason: r.try_get(28)?,
    })
}

impl crate::Reader for PgReader {
    fn day_range(&self, s: Scope<'_>) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = self.one(
            "SELECT min(day), max(day) FROM port_day WHERE sensor = $1",
            &[p(&key(s), Type::TEXT)],
            |r| Ok((r.try_get(0)?, r.try_get(1)?)),
        )?;
        Ok(lo.zip(hi))
    }

    fn ports_on_day(&self, s: Scope<'_>, day: i64) -> Result<Vec<PortCounts>> {
        self.rows(
            "SELECT day, port, records, tcp, udp, sources, targets FROM port_day
             WHERE day = $1 AND sensor = $2 ORDER BY port",
            &[p(&day, Type::INT8), p(&key(s), Type::TEXT)],
            counts,
        )
    }

    fn ports_in_window(&self, s: Scope<'_>, w: Window) -> Result<Vec<PortCounts>> {
        self.rows(
            "SELECT $2::bigint, c.port, c.records, c.tcp, c.udp, coalesce(src.n, 0),
                 coalesce(dst.n, 0)
             FROM (SELECT port, sum(records)::bigint AS records, sum(tcp)::bigint AS tcp,
                       sum(udp)::bigint AS udp
                   FROM port_day WHERE day BETWEEN $1 AND $2 AND sensor = $3 GROUP BY port) c
             LEFT JOIN (SELECT port, count(DISTINCT ip) AS n FROM port_day_src
                        WHERE day BETWEEN $1 AND $2 AND sensor = $3 GROUP BY port) src
                 USING (port)
             LEFT JOIN (SELECT port, count(DISTINCT ip) AS n FROM port_day_dst
                        WHERE day BETWEEN $1 AND $2 AND sensor = $3 GROUP BY port) dst
                 USING (port)
             ORDER BY c.port",
            &[
                p(&w.since, Type::INT8),
                p(&w.until, Type::INT8),
                p(&key(s), Type::TEXT),
            ],
            counts,
        )
    }

    fn port_in_window(&self, s: Scope<'_>, port: u16, w: Window) -> Result<PortCounts> {
        self.one(
            "SELECT $4::bigint, $1::integer, coalesce(sum(records), 0)::bigint,
                 coalesce(sum(tcp), 0)::bigint, coalesce(sum(udp), 0)::bigint,
                 (SELECT count(DISTINCT ip) FROM port_day_src
                  WHERE port = $1 AND sensor = $2 AND day BETWEEN $3 AND $4),
                 (SELECT count(DISTINCT ip) FROM port_day_dst
                  WHERE port = $1 AND sensor = $2 AND day BETWEEN $3 AND $4)
             FROM port_day WHERE port = $1 AND sensor = $2 AND day BETWEEN $3 AND $4",
            &[
                p(&i32::from(port), Type::INT4),
                p(&key(s), Type::TEXT),
                p(&w.since, Type::INT8),
                p(&w.until, Type::INT8),
            ],
            counts,
        )
    }

    fn port_days(&self, s: Scope<'_>, port: u16, from: i64, until: i64) -> Result<Vec<PortCounts>> {
        self.rows(
            "SELECT day, port, records, tcp, udp, sources, targets FROM port_day
             WHERE port = $1 AND sensor = $2 AND day BETWEEN $3 AND $4 ORDER BY day",
            &[
                p(&i32::from(port), Type::INT4),
                p(&key(s), Type::TEXT),
                p(&from, Type::INT8),
                p(&until, Type::INT8),
            ],
            counts,
        )
    }

    fn items(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        n: usize,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let port_filter = if port.is_some() { " AND port = $6" } else { "" };
        let port = port.map_or(0, i32::from);
        let (k, kind, n) = (key(s), text(kind).into_owned(), limit(n));
        let params = [
            p(&k, Type::TEXT),
            p(&w.since, Type::INT8),
            p(&w.until, Type::INT8),
            p(&kind, Type::TEXT),
            p(&n, Type::INT8),
            p(&port, Type::INT4),
        ];
        let used = if port_filter.is_empty() { 5 } else { 6 };
        self.rows(
            &format!(
                "SELECT item, sum(n)::bigint AS total FROM port_day_item
                 WHERE sensor = $1 AND day BETWEEN $2 AND $3 AND kind = $4{port_filter}
                 GROUP BY item ORDER BY total DESC, item LIMIT $5"
            ),
            &params[..used],
            |r| Ok((r.try_get(0)?, r.try_get(1)?)),
        )
    }

    fn item_total(&self, s: Scope<'_>, w: Window, port: Option<u16>, kind: &str) -> Result<i64> {
        let port_filter = if port.is_some() { " AND port = $5" } else { "" };
        let port = port.map_or(0, i32::from);
        let (k, kind) = (key(s), text(kind).into_owned());
        let params = [
            p(&k, Type::TEXT),
            p(&w.since, Type::INT8),
            p(&w.until, Type::INT8),
            p(&kind, Type::TEXT),
            p(&port, Type::INT4),
        ];
        let used = if port_filter.is_empty() { 4 } else { 5 };
        self.one(
            &format!(
                "SELECT coalesce(sum(n), 0)::bigint FROM port_day_item
                 WHERE sensor = $1 AND day BETWEEN $2 AND $3 AND kind = $4{port_filter}"
            ),
            &params[..used],
            |r| r.try_get(0),
        )
    }

    fn item_counts(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        items: &[Vec<u8>],
    ) -> Result<Vec<i64>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // All of them in one query, one row per item asked for, in order.
        let port_filter = if port.is_some() {
            " AND t.port = $6"
        } else {
            ""
        };
        let port = port.map_or(0, i32::from);
        let (k, kind) = (key(s), text(kind).into_owned());
        let params = [
            p(&k, Type::TEXT),
            p(&w.since, Type::INT8),
            p(&w.until, Type::INT8),
            p(&kind, Type::TEXT),
            p(&items, Type::BYTEA_ARRAY),
            p(&port, Type::INT4),
        ];
        let used = if port_filter.is_empty() { 5 } else { 6 };
        self.rows(
            &format!(
                "SELECT coalesce(sum(t.n), 0)::bigint
                 FROM unnest($5::bytea[]) WITH ORDINALITY AS q (item, i)
                 LEFT JOIN port_day_item t ON t.item = q.item AND t.sensor = $1
                     AND t.day BETWEEN $2 AND $3 AND t.kind = $4{port_filter}
                 GROUP BY q.i ORDER BY q.i"
            ),
            &params[..used],
            |r| r.try_get(0),
        )
    }

    fn sources(
        &self,
        s: Scope<'_>,
        w: Window,
        port: Option<u16>,
        n: usize,
    ) -> Result<Vec<SourceCount>> {
        let port_filter = if port.is_some() { " AND port = $5" } else { "" };
        let port_arg = port.map_or(0, i32::from);
        let (k, lim) = (key(s), limit(n));
        let params = [
            p(&k, Type::TEXT),
            p(&w.since, Type::INT8),
            p(&w.until, Type::INT8),
            p(&lim, Type::INT8),
            p(&port_arg, Type::INT4),
        ];
        let used = if port_filter.is_empty() { 4 } else { 5 };
        let found: Vec<(Vec<u8>, i64, i64, i64)> = self.rows(
            &format!(
                "SELECT ip, sum(n)::bigint AS total, count(DISTINCT port), count(DISTINCT day)
                 FROM port_day_src
                 WHERE sensor = $1 AND day BETWEEN $2 AND $3{port_filter}
                 GROUP BY ip ORDER BY total DESC, ip LIMIT $4"
            ),
            &params[..used],
            |r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)),
        )?;
        // Each listed source's busiest port (ties: the lower), in one more query.
        let mut sources = crate::Sources::new(found, port);
        if !sources.pending().is_empty() {
            let ips: Vec<&[u8]> = sources.pending().iter().map(|f| f.0.as_slice()).collect();
            let per_port: Vec<(Vec<u8>, u16, i64)> = self.rows(
                "SELECT ip, port, sum(n)::bigint FROM port_day_src
                 WHERE sensor = $1 AND day BETWEEN $2 AND $3 AND ip = ANY($4::bytea[])
                 GROUP BY ip, port",
                &[
                    p(&k, Type::TEXT),
                    p(&w.since, Type::INT8),
                    p(&w.until, Type::INT8),
                    p(&ips, Type::BYTEA_ARRAY),
                ],
                |r| Ok((r.try_get(0)?, r.try_get::<_, Port>(1)?.0, r.try_get(2)?)),
            )?;
            for (ip, p, n) in per_port {
                sources.add(ip, p, n);
            }
        }
        Ok(sources.rows())
    }

    fn sessions(
        &self,
        s: Scope<'_>,
        w: Window,
        f: &SessionFilter,
        n: usize,
    ) -> Result<Vec<Summary>> {
        let (from, to) = w.micros();
        let mut c = Conds::default();
        let (a, b) = (c.arg(from, Type::INT8), c.arg(to, Type::INT8));
        c.sql =
            format!("SELECT {SUMMARY_COLS} FROM sessions WHERE start_ts >= {a} AND start_ts < {b}");
        if let Some(sensor) = s.sensor() {
            c.and("sensor = ?", text(sensor).into_owned(), Type::TEXT);
        }
        if let Some(p) = f.port {
            c.and("dst_port = ?", i32::from(p), Type::INT4);
        }
        if let Some(ip) = f.src {
            c.and("src_ip = ?", ip.to_string(), Type::TEXT);
        }
        if let Some(p) = &f.protocol {
            c.and("protocol = ?", text(p).into_owned(), Type::TEXT);
        }
        if let Some(t) = &f.tag {
            c.and(
                "position(',' || ? || ',' in ',' || tags || ',') > 0",
                text(t).into_owned(),
                Type::TEXT,
            );
        }
        if let Some(cl) = &f.client {
            // ASCII only, as SQLite's lower(): "C" lowers A-Z and nothing else.
            c.and(
                r#"position(lower(? COLLATE "C") in lower(client)) > 0"#,
                text(cl).into_owned(),
                Type::TEXT,
            );
        }
        if f.logins {
            c.sql.push_str(" AND logins > 0");
        }
        if f.sent_bytes {
            c.sql.push_str(" AND bytes_in > 0");
        }
        let lim = c.arg(limit(n), Type::INT8);
        c.sql.push_str(&format!(
            " ORDER BY start_ts DESC, session DESC LIMIT {lim}"
        ));
        self.rows(&c.sql, &c.params(), summary)
    }

    fn port_seen(&self, s: Scope<'_>, port: u16) -> Result<(Option<i64>, Option<i64>)> {
        let port = i32::from(port);
        let get = |r: &Row| Ok((r.try_get(0)?, r.try_get(1)?));
        match s.sensor() {
            None => self.one(
                "SELECT min(start_ts), max(start_ts) FROM sessions WHERE dst_port = $1",
                &[p(&port, Type::INT4)],
                get,
            ),
            Some(sensor) => self.one(
                "SELECT min(start_ts), max(start_ts) FROM sessions
                 WHERE dst_port = $1 AND sensor = $2",
                &[p(&port, Type::INT4), p(&text(sensor), Type::TEXT)],
                get,
            ),
        }
    }

    fn summary(&self, session: &str) -> Result<Option<Summary>> {
        let Some(k) = session_key(&SessionId(session.to_string())) else {
            return Ok(None);
        };
        Ok(self
            .rows(
                &format!("SELECT {SUMMARY_COLS} FROM sessions WHERE session = $1"),
                &[p(&k, Type::INT8)],
                summary,
            )?
            .into_iter()
            .next())
    }

    fn events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let mut c = Conds {
            sql: String::from(
                "SELECT e.id, e.v, e.ts, e.json, s.session, s.sensor, s.transport, s.src_ip,
                     s.src_port, s.dst_ip, s.dst_port
                 FROM events e JOIN sessions s ON s.session = e.session WHERE true",
            ),
            args: Vec::new(),
        };
        if let Some(p) = f.port {
            c.and("s.dst_port = ?", i32::from(p), Type::INT4);
        }
        if let Some(ip) = f.src {
            c.and("s.src_ip = ?", ip.to_string(), Type::TEXT);
        }
        if let Some(s) = &f.session {
            // An id that is not hex matches nothing.
            c.and(
                "e.session = ?",
                session_key(&SessionId(s.clone())).unwrap_or(-1),
                Type::INT8,
            );
        }
        if !f.eventids.is_empty() {
            let ids: Vec<String> = f.eventids.iter().map(|e| e.to_string()).collect();
            c.and("e.eventid = ANY(?)", ids, Type::TEXT_ARRAY);
        }
        c.sql.push_str(if f.oldest_first {
            " ORDER BY e.id"
        } else {
            " ORDER BY e.id DESC"
        });
        if let Some(n) = f.limit {
            let lim = c.arg(limit(n), Type::INT8);
            c.sql.push_str(&format!(" LIMIT {lim}"));
        }
        let rows = self.rows(&c.sql, &c.params(), |r| {
            Ok(crate::sqlite::read::Row {
                id: r.try_get(0)?,
                v: i64::from(r.try_get::<_, i32>(1)?),
                ts: r.try_get(2)?,
                json: r.try_get(3)?,
                session: r.try_get(4)?,
                sensor: r.try_get(5)?,
                transport: r.try_get(6)?,
                src_ip: r.try_get(7)?,
                src_port: i64::from(r.try_get::<_, i32>(8)?),
                dst_ip: r.try_get(9)?,
                dst_port: i64::from(r.try_get::<_, i32>(10)?),
            })
        })?;
        rows.into_iter()
            .map(|row| {
                let id = row.id;
                row.into_event()
                    .map_err(|error| StoreError::Decode { id, error })
            })
            .collect()
    }

    fn sensors(&self) -> Result<Vec<SensorHealth>> {
        let rows = self.query(
            "SELECT h.sensor, h.version, h.run, h.sent, h.received, h.backlog,
                     h.oldest_unacked_secs, h.events_per_minute, h.dropped, c.events, c.last_ts
                 FROM heartbeats h LEFT JOIN sensor_events c ON c.sensor = h.sensor
                 ORDER BY h.sensor",
            &[],
        )?;
        rows.iter()
            .map(|r| -> PgResult<SensorHealth> {
                Ok(crate::fleet::health(
                    Heartbeat {
                        sensor: r.try_get(0)?,
                        version: r.try_get(1)?,
                        run: r.try_get::<_, i64>(2)? as u64,
                        sent_micros: r.try_get(3)?,
                        backlog: r.try_get::<_, i64>(5)? as u64,
                        oldest_unacked_secs: r.try_get(6)?,
                        events_per_minute: r.try_get(7)?,
                        dropped: r.try_get::<_, i64>(8)? as u64,
                    },
                    r.try_get(4)?,
                    r.try_get(9)?,
                    r.try_get(10)?,
                ))
            })
            .collect::<PgResult<_>>()
            .map_err(|e| self.err(e))
    }

    fn parked(&self) -> Result<u64> {
        let rows = self.query("SELECT count(*) FROM parked", &[])?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| self.err(e))?
            .unwrap_or(0);
        Ok(n as u64)
    }

    fn location(&self) -> String {
        self.shown.clone()
    }
}
