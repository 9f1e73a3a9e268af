//! Reports: "what's up with port N?" from the store's rollups ([`crate::store::rollup`]), as
//! pure functions over a [`Reader`] (no SQL here; the same on every backend).
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
use serde::Serialize;

pub use crate::store::Window;
use crate::store::{PortCounts, Reader, Result, Scope};

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
pub fn parse_day(s: &str) -> std::result::Result<i64, String> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD): {e}"))?;
    Ok(i64::from(d.num_days_from_ce()) - EPOCH_CE)
}

/// Today's UTC day number.
pub fn today() -> i64 {
    crate::store::day_of(chrono::Utc::now().timestamp_micros())
}

/// Which count ranks ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Records,
    Sources,
    Targets,
}

/// The latest day the store has records for, if any.
pub fn latest_day(r: &dyn Reader, scope: Scope<'_>) -> Result<Option<i64>> {
    Ok(r.day_range(scope)?.map(|d| d.1))
}

/// The first day the store has records for.
pub fn first_day(r: &dyn Reader, scope: Scope<'_>) -> Result<Option<i64>> {
    Ok(r.day_range(scope)?.map(|d| d.0))
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

impl From<&PortCounts> for PortRow {
    fn from(c: &PortCounts) -> PortRow {
        PortRow {
            port: c.port,
            records: c.records,
            sources: c.sources,
            targets: c.targets,
            tcp: c.tcp,
            udp: c.udp,
        }
    }
}

/// The top `n` ports over `w`, ranked by `by` (ties: lower port first).
pub fn top_ports(
    r: &dyn Reader,
    scope: Scope<'_>,
    w: Window,
    by: By,
    n: usize,
) -> Result<Vec<PortRow>> {
    let counts = if w.days() == 1 {
        r.ports_on_day(scope, w.since)?
    } else {
        // Records add up; distinct addresses are counted over the window by the store.
        r.ports_in_window(scope, w)?
    };
    let mut rows: Vec<PortRow> = counts.iter().map(PortRow::from).collect();
    rows.sort_by(|a, b| key(b, by).cmp(&key(a, by)).then(a.port.cmp(&b.port)));
    rows.truncate(n);
    Ok(rows)
}

fn key(r: &PortRow, by: By) -> i64 {
    match by {
        By::Records => r.records,
        By::Sources => r.sources,
        By::Targets => r.targets,
    }
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
    r: &dyn Reader,
    scope: Scope<'_>,
    port: u16,
    days: i64,
    until: i64,
) -> Result<Vec<DayRow>> {
    let days = days.max(1);
    let first = until - days + 1;
    let read_from = first - BASELINE_DAYS;
    let span = (until - read_from + 1) as usize;
    let mut all = vec![[0i64; 5]; span];
    for c in r.port_days(scope, port, read_from, until)? {
        if let Some(slot) = all.get_mut((c.day - read_from) as usize) {
            *slot = [c.records, c.sources, c.targets, c.tcp, c.udp];
        }
    }
    // The store's first day: a baseline never reaches before it (a sensor's first month is
    // compared with the days it has, not with days it did not exist).
    let start = first_day(r, scope)?.unwrap_or(until).max(read_from);
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
/// [`BASELINE_DAYS`] before it, or the days the store has if fewer), ranked by trend score
/// (ties: more sources, then lower port). Only ports at or above the guards, and only rises
/// (more sources or targets than the average), are listed.
pub fn rising(
    r: &dyn Reader,
    scope: Scope<'_>,
    day: i64,
    n: usize,
    guards: RisingGuards,
) -> Result<Vec<RisingRow>> {
    let mut out = Vec::new();
    let from = (day - BASELINE_DAYS).max(first_day(r, scope)?.unwrap_or(day));
    let base_days = day - from;
    if base_days <= 0 {
        return Ok(out); // the store's first day: nothing to rise from
    }
    // Candidates: the day's ports over the guards; then each one's baseline.
    let today = r.ports_on_day(scope, day)?;
    for c in today
        .iter()
        .filter(|c| c.sources >= guards.min_sources && c.records >= guards.min_records)
    {
        let (ss, tt) = r
            .port_days(scope, c.port, from, day - 1)?
            .iter()
            .fold((0i64, 0i64), |a, d| (a.0 + d.sources, a.1 + d.targets));
        let avg_s = ss as f64 / base_days as f64;
        let avg_t = tt as f64 / base_days as f64;
        if (c.sources as f64) <= avg_s && (c.targets as f64) <= avg_t {
            continue;
        }
        out.push(RisingRow {
            port: c.port,
            records: c.records,
            sources: c.sources,
            targets: c.targets,
            avg_sources: round3(avg_s),
            avg_targets: round3(avg_t),
            trend: round3(trend(c.sources, c.targets, avg_s, avg_t)),
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
    use crate::store::{FirewallRecord, Writer, WriterOptions};

    const DAY: i64 = 86_400_000_000;

    /// A store of firewall records only (records, sources and targets are all these reports
    /// read), written and read through the store's own writer and reader.
    struct Store {
        dir: tempfile::TempDir,
        w: Box<dyn Writer>,
    }

    impl Store {
        fn reader(&self) -> Box<dyn Reader> {
            crate::store::open_reader(&crate::store::Location::Sqlite(self.dir.path().into()))
                .unwrap()
        }
    }

    fn store() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let w = crate::store::open_writer(
            &crate::store::Location::Sqlite(dir.path().into()),
            WriterOptions::default(),
        )
        .unwrap();
        Store { dir, w }
    }

    /// `n` records on `day` to `port` from sources `src0..` (one each, `srcs` distinct) to
    /// `dsts` distinct targets.
    fn add(c: &mut Store, day: i64, port: u16, n: u32, srcs: u32, dsts: u32) {
        let recs: Vec<FirewallRecord> = (0..n)
            .map(|i| FirewallRecord {
                ts_micros: day * DAY + i64::from(i),
                udp: false,
                src: std::net::Ipv4Addr::from(0x0a00_0000 + (i % srcs.max(1))).into(),
                dst: std::net::Ipv4Addr::from(0xc000_0200 + (i % dsts.max(1))).into(),
                spt: 1024 + (i % 60000) as u16,
                dpt: port,
            })
            .collect();
        assert_eq!(c.w.write_firewall("s", &recs).unwrap(), u64::from(n));
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
        let rows = top_ports(
            &*c.reader(),
            Scope::Fleet,
            Window::day(100),
            By::Records,
            10,
        )
        .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.port, r.records, r.sources, r.targets))
            .collect();
        assert_eq!(got, [(23, 50, 20, 1), (26, 30, 25, 2), (22, 10, 10, 10)]);
        let rows = top_ports(
            &*c.reader(),
            Scope::Sensor("s"),
            Window::day(100),
            By::Targets,
            2,
        )
        .unwrap();
        assert_eq!(rows.iter().map(|r| r.port).collect::<Vec<_>>(), [22, 26]);
        // Two days of port 26 from the same 25 sources: 60 records, still 25 sources.
        let w = Window {
            since: 100,
            until: 101,
        };
        let rows = top_ports(&*c.reader(), Scope::Fleet, w, By::Sources, 10).unwrap();
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
        let h = port_history(&*c.reader(), Scope::Fleet, 26, 3, 131).unwrap();
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
        let r = rising(&*c.reader(), Scope::Fleet, 130, 10, RisingGuards::default()).unwrap();
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
            &*c.reader(),
            Scope::Fleet,
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
