//! The list reports: `report sources`, `report credentials`, `report clients` and
//! `report sessions` (with filters).

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use super::Window;
use crate::rollup::kind;

/// Item counts of `kind` over a window, for one port or all, largest first.
pub fn items(
    c: &Connection,
    sensor: &str,
    w: Window,
    port: Option<u16>,
    kind: &str,
    n: usize,
) -> rusqlite::Result<Vec<(Vec<u8>, i64)>> {
    let mut sql = String::from(
        "SELECT item, sum(n) AS total FROM port_day_item
         WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3 AND kind = ?4",
    );
    let mut args: Vec<Value> = vec![
        sensor.to_string().into(),
        w.since.into(),
        w.until.into(),
        kind.to_string().into(),
    ];
    if let Some(p) = port {
        sql.push_str(" AND port = ?5");
        args.push(i64::from(p).into());
    }
    sql.push_str(" GROUP BY item ORDER BY total DESC, item LIMIT ");
    sql.push_str(&n.to_string());
    let mut q = c.prepare_cached(&sql)?;
    let rows = q
        .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect();
    rows
}

/// A source and what it did over a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    pub ip: String,
    pub records: i64,
    /// Distinct ports it reached.
    pub ports: i64,
    /// Days it was seen on.
    pub days: i64,
    /// Its busiest port.
    pub top_port: u16,
    /// `AS64496 Example Net` and a country code, when a MaxMind-format database is given
    /// (filled in by the caller, see [`super::geo`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// The top sources by records over a window (one port or all).
pub fn sources(
    c: &Connection,
    sensor: &str,
    w: Window,
    port: Option<u16>,
    n: usize,
) -> rusqlite::Result<Vec<SourceRow>> {
    let port_filter = if port.is_some() { " AND port = ?4" } else { "" };
    let sql = format!(
        "SELECT ip, sum(n) AS total, count(DISTINCT port), count(DISTINCT day) FROM port_day_src
         WHERE sensor = ?1 AND day BETWEEN ?2 AND ?3{port_filter}
         GROUP BY ip ORDER BY total DESC, ip LIMIT {n}"
    );
    let mut args: Vec<Value> = vec![sensor.to_string().into(), w.since.into(), w.until.into()];
    if let Some(p) = port {
        args.push(i64::from(p).into());
    }
    let mut q = c.prepare_cached(&sql)?;
    let found: Vec<(Vec<u8>, i64, i64, i64)> = q
        .query_map(params_from_iter(args), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    // Each listed source's busiest port: one pass over the window for all of them (the
    // rollup is keyed by port first, so a per-address lookup would read the whole window).
    let mut busiest: std::collections::HashMap<Vec<u8>, (i64, u16)> = Default::default();
    if let Some(p) = port {
        for (key, records, ..) in &found {
            busiest.insert(key.clone(), (*records, p));
        }
    } else if !found.is_empty() {
        let marks = vec!["?"; found.len()].join(",");
        let sql = format!(
            "SELECT ip, port, sum(n) FROM port_day_src
             WHERE sensor = ? AND day BETWEEN ? AND ? AND ip IN ({marks}) GROUP BY ip, port"
        );
        let mut args: Vec<Value> = vec![sensor.to_string().into(), w.since.into(), w.until.into()];
        args.extend(found.iter().map(|f| Value::Blob(f.0.clone())));
        let mut q = c.prepare(&sql)?;
        let mut rows = q.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            let (key, p, n): (Vec<u8>, u16, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let e = busiest.entry(key).or_insert((0, p));
            if n > e.0 || (n == e.0 && p < e.1) {
                *e = (n, p);
            }
        }
    }
    let mut out = Vec::new();
    for (key, records, ports, days) in found {
        let Some(ip) = crate::rollup::ip_of_key(&key) else {
            continue;
        };
        out.push(SourceRow {
            ip: ip.to_string(),
            records,
            ports,
            days,
            top_port: busiest.get(&key).map_or(0, |b| b.1),
            asn: None,
            country: None,
        });
    }
    Ok(out)
}

/// One row of `report sessions`: a session's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionRow {
    pub session: String,
    pub start: String,
    pub sensor: String,
    pub transport: String,
    pub src: String,
    pub port: u16,
    pub served: String,
    pub protocol: Option<String>,
    pub client: Option<String>,
    pub logins: i64,
    pub logins_ok: i64,
    pub commands: i64,
    pub tags: Option<String>,
    pub reason: Option<String>,
}

/// Filters of `report sessions`.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub port: Option<u16>,
    pub src: Option<std::net::IpAddr>,
    pub protocol: Option<String>,
    /// Sessions whose tags include this one.
    pub tag: Option<String>,
    /// Sessions whose client name contains this (case-insensitive).
    pub client: Option<String>,
    /// Only sessions with at least one login attempt.
    pub logins: bool,
}

/// Sessions in a window matching the filter, newest first, at most `n`.
pub fn sessions(
    c: &Connection,
    sensor: &str,
    w: Window,
    f: &SessionFilter,
    n: usize,
) -> rusqlite::Result<Vec<SessionRow>> {
    const DAY: i64 = 86_400_000_000;
    let mut sql = String::from(
        "SELECT session, start_ts, sensor, transport, src_ip, dst_port, coalesce(served, persona),
                protocol, client, logins, logins_ok, commands, tags, reason
         FROM sessions WHERE start_ts >= ? AND start_ts < ?",
    );
    let mut args: Vec<Value> = vec![(w.since * DAY).into(), ((w.until + 1) * DAY).into()];
    if !sensor.is_empty() {
        sql.push_str(" AND sensor = ?");
        args.push(sensor.to_string().into());
    }
    if let Some(p) = f.port {
        sql.push_str(" AND dst_port = ?");
        args.push(i64::from(p).into());
    }
    if let Some(ip) = f.src {
        sql.push_str(" AND src_ip = ?");
        args.push(ip.to_string().into());
    }
    if let Some(p) = &f.protocol {
        sql.push_str(" AND protocol = ?");
        args.push(p.clone().into());
    }
    if let Some(t) = &f.tag {
        sql.push_str(" AND instr(',' || tags || ',', ',' || ? || ',') > 0");
        args.push(t.clone().into());
    }
    if let Some(cl) = &f.client {
        sql.push_str(" AND instr(lower(client), lower(?)) > 0");
        args.push(cl.clone().into());
    }
    if f.logins {
        sql.push_str(" AND logins > 0");
    }
    sql.push_str(&format!(" ORDER BY start_ts DESC, session DESC LIMIT {n}"));
    let mut q = c.prepare(&sql)?;
    let rows = q
        .query_map(params_from_iter(args), |r| {
            let sid: i64 = r.get(0)?;
            let ts: i64 = r.get(1)?;
            Ok(SessionRow {
                session: format!("{:016x}", sid as u64),
                start: chrono::DateTime::from_timestamp_micros(ts)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                sensor: r.get(2)?,
                transport: r.get(3)?,
                src: r.get(4)?,
                port: r.get(5)?,
                served: r.get(6)?,
                protocol: r.get(7)?,
                client: r.get(8)?,
                logins: r.get(9)?,
                logins_ok: r.get(10)?,
                commands: r.get(11)?,
                tags: r.get(12)?,
                reason: r.get(13)?,
            })
        })?
        .collect();
    rows
}

/// The kinds `report clients` lists, in order.
pub const CLIENT_KINDS: &[&str] = &[
    kind::CLIENT,
    kind::VERSION,
    kind::HASSH,
    kind::JA4,
    kind::USER_AGENT,
];
