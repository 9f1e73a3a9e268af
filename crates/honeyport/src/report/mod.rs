//! Reports: "what's up with port N?" from the store's rollups ([`crate::rollup`]).
//!
//! - [`top_ports`]: per port, records, sources and targets for a day or a window (ISC's
//!   `topports`).
//! - [`port_history`]: one row per day for a port, with the ISC trend score (ISC's
//!   `porthistory`).
//! - [`rising`]: the ports whose trend score is highest on a day, with volume guards.
//!
//! Definitions (ISC's): records = sessions plus imported firewall records; sources = distinct
//! source IPs; targets = distinct destination IPs; days are UTC. Counts are exact.

pub mod chart;
pub mod cli;
pub mod explain;
pub mod format;
pub mod geo;
pub mod lists;

use chrono::{Datelike, NaiveDate};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Days before a day that make its baseline (ISC: 30).
pub const BASELINE_DAYS: i64 = 30;

/// A UTC day number (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn date_of(day: i64) -> String {
    NaiveDate::from_num_days_from_ce_opt((day + EPOCH_CE) as i32)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

/// `1970-01-01` as days from the common era (chrono's day count).
const EPOCH_CE: i64 = 719_163;

/// Parses `YYYY-MM-DD` into a UTC day number.
pub fn parse_day(s: &str) -> Result<i64, String> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD): {e}"))?;
    Ok(i64::from(d.num_days_from_ce()) - EPOCH_CE)
}

/// Today's UTC day number.
pub fn today() -> i64 {
    crate::rollup::day_of(chrono::Utc::now().timestamp_micros())
}

/// Which count ranks ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Records,
    Sources,
    Targets,
}

impl By {
    fn column(self) -> &'static str {
        match self {
            By::Records => "records",
            By::Sources => "sources",
            By::Targets => "targets",
        }
    }
}

/// Days `since..=until` (UTC day numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

impl Window {
    pub fn day(d: i64) -> Window {
        Window { since: d, until: d }
    }
    pub fn days(self) -> i64 {
        self.until - self.since + 1
    }
}

/// The latest day the store has records for (of `sensor`, `""` for all), if any.
pub fn latest_day(c: &Connection, sensor: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT max(day) FROM port_day WHERE sensor = ?1",
        [sensor],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

/// One port's counts over a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRow {
    pub port: u16,
    pub records: i64,
    pub sources: i64,
    pub targets: i64,
    pub tcp: i64,
    pub udp: i64,
}

/// The top `n` ports over `w`, ranked by `by` (ties: lower port first).
pub fn top_ports(
    c: &Connection,
    sensor: &str,
    w: Window,
    by: By,
    n: usize,
) -> rusqlite::Result<Vec<PortRow>> {
    let mut rows: Vec<PortRow> = if w.days() == 1 {
        // A day: its rows, ranked in SQL.
        let mut q = c.prepare_cached(&format!(
            "SELECT port, records, sources, targets, tcp, udp FROM port_day
             WHERE day = ?1 AND sensor = ?2 ORDER BY {} DESC, port LIMIT ?3",
            by.column()
        ))?;
        let r = q
            .query_map(params![w.since, sensor, n as i64], port_row)?
            .collect::<Result<_, _>>()?;
        r
    } else {
        // A window: records add up; distinct addresses are counted from the daily sets.
        let mut q = c.prepare_cached(
            "SELECT port, sum(records), 0, 0, sum(tcp), sum(udp) FROM port_day
             WHERE day BETWEEN ?1 AND ?2 AND sensor = ?3 GROUP BY port",
        )?;
        let mut rows: Vec<PortRow> = q
            .query_map(params![w.since, w.until, sensor], port_row)?
            .collect::<Result<_, _>>()?;
        let mut by_port: std::collections::HashMap<u16, usize> =
            rows.iter().enumerate().map(|(i, r)| (r.port, i)).collect();
        for (table, src) in [("port_day_src", true), ("port_day_dst", false)] {
            let mut q = c.prepare_cached(&format!(
                "SELECT port, count(DISTINCT ip) FROM {table}
                 WHERE day BETWEEN ?1 AND ?2 AND sensor = ?3 GROUP BY port"
            ))?;
            let mut it = q.query(params![w.since, w.until, sensor])?;
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
        by_port.clear();
        rows.sort_by(|a, b| key(b, by).cmp(&key(a, by)).then(a.port.cmp(&b.port)));
        rows.truncate(n);
        rows
    };
    rows.shrink_to_fit();
    Ok(rows)
}

fn key(r: &PortRow, by: By) -> i64 {
    match by {
        By::Records => r.records,
        By::Sources => r.sources,
        By::Targets => r.targets,
    }
}

fn port_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PortRow> {
    Ok(PortRow {
        port: r.get(0)?,
        records: r.get(1)?,
        sources: r.get(2)?,
        targets: r.get(3)?,
        tcp: r.get(4)?,
        udp: r.get(5)?,
    })
}

/// The ISC trend score of a day: `sqrt((S-s)^2/s + (T-t)^2/t)`, with `S`, `T` the day's
/// sources and targets and `s`, `t` their daily averages over the [`BASELINE_DAYS`] before
/// it. An average under one (a port new or nearly new to the sensor) counts as one, so the
/// score stays finite: a port going from nothing to `S` sources scores about `S`.
pub fn trend(sources: i64, targets: i64, avg_sources: f64, avg_targets: f64) -> f64 {
    let s = avg_sources.max(1.0);
    let t = avg_targets.max(1.0);
    let ds = sources as f64 - avg_sources;
    let dt = targets as f64 - avg_targets;
    (ds * ds / s + dt * dt / t).sqrt()
}

/// One day of a port's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayRow {
    pub date: String,
    #[serde(skip)]
    pub day: i64,
    pub records: i64,
    pub sources: i64,
    pub targets: i64,
    pub tcp: i64,
    pub udp: i64,
    /// Against the [`BASELINE_DAYS`] before it, or the days the store has before it if fewer
    /// (0 on the store's first day: nothing to compare with).
    pub trend: f64,
}

/// Port `port`'s last `days` days up to `until` (inclusive), one row per day (days without
/// records are zeros), each with its trend score.
pub fn port_history(
    c: &Connection,
    sensor: &str,
    port: u16,
    days: i64,
    until: i64,
) -> rusqlite::Result<Vec<DayRow>> {
    let days = days.max(1);
    let first = until - days + 1;
    let read_from = first - BASELINE_DAYS;
    let mut q = c.prepare_cached(
        "SELECT day, records, sources, targets, tcp, udp FROM port_day
         WHERE port = ?1 AND sensor = ?2 AND day BETWEEN ?3 AND ?4",
    )?;
    let span = (until - read_from + 1) as usize;
    let mut all = vec![[0i64; 5]; span];
    let mut it = q.query(params![port, sensor, read_from, until])?;
    while let Some(r) = it.next()? {
        let day: i64 = r.get(0)?;
        all[(day - read_from) as usize] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?];
    }
    // The store's first day: a baseline never reaches before it (a sensor's first month is
    // compared with the days it has, not with days it did not exist).
    let start = first_day(c, sensor)?.unwrap_or(until).max(read_from);
    // Prefix sums of sources and targets: the baseline of any day in one subtraction.
    let mut pre = vec![[0i64; 2]; span + 1];
    for (i, d) in all.iter().enumerate() {
        pre[i + 1] = [pre[i][0] + d[1], pre[i][1] + d[2]];
    }
    let mut out = Vec::with_capacity(days as usize);
    for (i, d) in all.iter().enumerate().skip(BASELINE_DAYS as usize) {
        let day = read_from + i as i64;
        let from = (day - BASELINE_DAYS).max(start);
        let n = day - from;
        let trend_score = if n <= 0 {
            0.0
        } else {
            let j = (from - read_from) as usize;
            let avg_s = (pre[i][0] - pre[j][0]) as f64 / n as f64;
            let avg_t = (pre[i][1] - pre[j][1]) as f64 / n as f64;
            round3(trend(d[1], d[2], avg_s, avg_t))
        };
        out.push(DayRow {
            date: date_of(day),
            day,
            records: d[0],
            sources: d[1],
            targets: d[2],
            tcp: d[3],
            udp: d[4],
            trend: trend_score,
        });
    }
    Ok(out)
}

/// The first day the store has records for (of `sensor`, `""` for all).
pub fn first_day(c: &Connection, sensor: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT min(day) FROM port_day WHERE sensor = ?1",
        [sensor],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Guards that keep a port with a handful of sources from topping [`rising`].
#[derive(Clone, Copy, Debug)]
pub struct RisingGuards {
    /// The day's sources must be at least this.
    pub min_sources: i64,
    /// The day's records must be at least this.
    pub min_records: i64,
}

impl Default for RisingGuards {
    fn default() -> Self {
        RisingGuards {
            min_sources: 10,
            min_records: 20,
        }
    }
}

/// A port on the rise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RisingRow {
    pub port: u16,
    pub records: i64,
    pub sources: i64,
    pub targets: i64,
    pub avg_sources: f64,
    pub avg_targets: f64,
    pub trend: f64,
}

/// The ports whose sources or targets on `day` rose most against their baseline (the
/// [`BASELINE_DAYS`] before it, or the days the store has if fewer), ranked by trend score (ties: more sources, then lower port). Only ports at or above the guards, and
/// only rises (more sources or targets than the average), are listed.
pub fn rising(
    c: &Connection,
    sensor: &str,
    day: i64,
    n: usize,
    guards: RisingGuards,
) -> rusqlite::Result<Vec<RisingRow>> {
    // Candidates: the day's ports over the guards; then each one's baseline.
    let mut q = c.prepare_cached(
        "SELECT port, records, sources, targets FROM port_day
         WHERE day = ?1 AND sensor = ?2 AND sources >= ?3 AND records >= ?4",
    )?;
    let today: Vec<(u16, i64, i64, i64)> = q
        .query_map(
            params![day, sensor, guards.min_sources, guards.min_records],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut base = c.prepare_cached(
        "SELECT coalesce(sum(sources), 0), coalesce(sum(targets), 0) FROM port_day
         WHERE port = ?1 AND sensor = ?2 AND day BETWEEN ?3 AND ?4",
    )?;
    let mut out = Vec::new();
    let from = (day - BASELINE_DAYS).max(first_day(c, sensor)?.unwrap_or(day));
    let base_days = day - from;
    if base_days <= 0 {
        return Ok(out); // the store's first day: nothing to rise from
    }
    for (port, records, sources, targets) in today {
        let (ss, tt): (i64, i64) = base.query_row(params![port, sensor, from, day - 1], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let avg_s = ss as f64 / base_days as f64;
        let avg_t = tt as f64 / base_days as f64;
        if (sources as f64) <= avg_s && (targets as f64) <= avg_t {
            continue;
        }
        out.push(RisingRow {
            port,
            records,
            sources,
            targets,
            avg_sources: round3(avg_s),
            avg_targets: round3(avg_t),
            trend: round3(trend(sources, targets, avg_s, avg_t)),
        });
    }
    out.sort_by(|a, b| {
        b.trend
            .total_cmp(&a.trend)
            .then(b.sources.cmp(&a.sources))
            .then(a.port.cmp(&b.port))
    });
    out.truncate(n);
    Ok(out)
}

/// A terminal sparkline of `values`, at most `width` characters: with more values than
/// that, each character is the mean of a run of consecutive values.
pub fn sparkline(values: &[i64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let per = values.len().div_ceil(width);
    let cols: Vec<f64> = values
        .chunks(per)
        .map(|c| c.iter().sum::<i64>() as f64 / c.len() as f64)
        .collect();
    let max = cols.iter().copied().fold(0.0, f64::max);
    cols.iter()
        .map(|&v| {
            if max <= 0.0 || v <= 0.0 {
                ' '
            } else {
                BARS[((v / max) * 7.0).round() as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{record, Record};

    const DAY: i64 = 86_400_000_000;

    fn store() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::SCHEMA).unwrap();
        crate::rollup::migrate(&mut c).unwrap();
        c
    }

    /// `n` records on `day` to `port` from sources `src0..` (one each, `srcs` distinct) to
    /// `dsts` distinct targets.
    fn add(c: &mut Connection, day: i64, port: u16, n: u32, srcs: u32, dsts: u32) {
        let tx = c.transaction().unwrap();
        for i in 0..n {
            let src = std::net::Ipv4Addr::from(0x0a00_0000 + (i % srcs.max(1)));
            let dst = std::net::Ipv4Addr::from(0xc000_0200 + (i % dsts.max(1)));
            record(
                &tx,
                &Record {
                    ts_micros: day * DAY + i64::from(i),
                    sensor: "s",
                    udp: false,
                    port,
                    src: src.into(),
                    dst: dst.into(),
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(parse_day("2019-08-01").unwrap(), 18109);
        assert_eq!(date_of(18109), "2019-08-01");
        assert!(parse_day("2019-13-01").is_err());
    }

    #[test]
    fn the_trend_score_is_isc_s() {
        // S = 40, T = 8 against s = 10, t = 2: sqrt(900/10 + 36/2) = sqrt(108).
        assert_eq!(trend(40, 8, 10.0, 2.0), 108f64.sqrt());
        assert_eq!(trend(10, 2, 10.0, 2.0), 0.0);
        // From nothing: the averages count as one.
        assert_eq!(trend(3, 1, 0.0, 0.0), (9.0f64 + 1.0).sqrt());
    }

    #[test]
    fn top_ports_for_a_day_and_a_window() {
        let mut c = store();
        add(&mut c, 100, 23, 50, 20, 1);
        add(&mut c, 100, 26, 30, 25, 2);
        add(&mut c, 100, 22, 10, 10, 10);
        add(&mut c, 101, 26, 30, 25, 2);
        let rows = top_ports(&c, "", Window::day(100), By::Records, 10).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.port, r.records, r.sources, r.targets))
            .collect();
        assert_eq!(got, [(23, 50, 20, 1), (26, 30, 25, 2), (22, 10, 10, 10)]);
        let rows = top_ports(&c, "s", Window::day(100), By::Targets, 2).unwrap();
        assert_eq!(rows.iter().map(|r| r.port).collect::<Vec<_>>(), [22, 26]);
        // Two days of port 26 from the same 25 sources: 60 records, still 25 sources.
        let w = Window {
            since: 100,
            until: 101,
        };
        let rows = top_ports(&c, "", w, By::Sources, 10).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.port, r.records, r.sources, r.targets))
            .collect();
        assert_eq!(got, [(26, 60, 25, 2), (23, 50, 20, 1), (22, 10, 10, 10)]);
    }

    #[test]
    fn port_history_has_every_day_and_its_trend() {
        let mut c = store();
        // 30 days of 10 sources / 2 targets, then a jump to 40 / 8 on day 130.
        for d in 100..130 {
            add(&mut c, d, 26, 10, 10, 2);
        }
        add(&mut c, 130, 26, 40, 40, 8);
        let h = port_history(&c, "", 26, 3, 131).unwrap();
        let got: Vec<_> = h
            .iter()
            .map(|r| (r.date.as_str(), r.records, r.sources, r.targets, r.trend))
            .collect();
        assert_eq!(
            got,
            [
                // The store began on day 100: day 129's baseline is days 100..=128, all alike.
                (date_of(129).as_str(), 10, 10, 2, 0.0),
                (date_of(130).as_str(), 40, 40, 8, round3(108f64.sqrt())),
                // Day 131 has nothing; its baseline (days 101..=130) averages 11 and 2.2.
                (
                    date_of(131).as_str(),
                    0,
                    0,
                    0,
                    round3(trend(0, 0, 11.0, 2.2))
                ),
            ]
        );
    }

    #[test]
    fn rising_ranks_by_trend_with_volume_guards() {
        let mut c = store();
        for d in 100..130 {
            add(&mut c, d, 26, 10, 10, 2); // steady, then jumps
            add(&mut c, d, 23, 200, 100, 5); // big and steady
            add(&mut c, d, 8080, 20, 15, 3); // then rises a little
        }
        add(&mut c, 130, 26, 60, 40, 8);
        add(&mut c, 130, 23, 200, 100, 5);
        add(&mut c, 130, 8080, 30, 20, 3);
        add(&mut c, 130, 7777, 5, 3, 1); // from nothing, but tiny: guarded out
        let r = rising(&c, "", 130, 10, RisingGuards::default()).unwrap();
        let got: Vec<_> = r.iter().map(|r| (r.port, r.sources, r.trend)).collect();
        assert_eq!(
            got,
            [
                (26, 40, round3(108f64.sqrt())),
                (8080, 20, round3(trend(20, 3, 15.0, 3.0))),
            ]
        );
        // Without guards the tiny newcomer is listed too, with its score.
        let r = rising(
            &c,
            "",
            130,
            10,
            RisingGuards {
                min_sources: 0,
                min_records: 0,
            },
        )
        .unwrap();
        assert!(r.iter().any(|r| r.port == 7777));
    }

    #[test]
    fn sparklines_scale_to_the_maximum_and_fit_the_width() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8], 10), " ▂▃▅█");
        assert_eq!(sparkline(&[1; 365], 60).chars().count(), 53);
        assert_eq!(sparkline(&[], 10), "");
    }
}
