//! `honeyport report ...`: the report commands, their options and their output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::format::{thousands, Format, Table};
use super::{By, RisingGuards, Window};
use crate::store::{kind, Location, Reader, Scope};

/// Output options every report shares.
#[derive(Args, Clone, Debug)]
pub struct Output {
    /// Only this sensor's data (default: every sensor in the store, each source counted once).
    #[arg(long)]
    pub sensor: Option<String>,
    /// JSON (one document) instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV (RFC 4180, with a header line) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

impl Output {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.csv {
            Format::Csv
        } else {
            Format::Table
        }
    }

    fn sensor(&self) -> Scope<'_> {
        Scope::of(self.sensor.as_deref())
    }
}

/// A window of days for the list reports (default: the 30 days up to the latest day).
#[derive(Args, Clone, Debug)]
pub struct WindowArgs {
    /// How many days, ending with --until.
    #[arg(long, default_value_t = 30, conflicts_with = "since")]
    pub days: i64,
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Last day (default: the latest day in the store).
    #[arg(long)]
    pub until: Option<String>,
}

impl WindowArgs {
    fn window(&self, c: &dyn Reader, sensor: Scope<'_>) -> anyhow::Result<Window> {
        let until = day_or_latest(c, self.until.as_deref(), sensor)?;
        let since = match &self.since {
            Some(s) => super::parse_day(s).map_err(anyhow::Error::msg)?,
            None => until - self.days.clamp(1, 36_500) + 1,
        };
        if since > until {
            anyhow::bail!("--since is after --until");
        }
        Ok(Window { since, until })
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum ReportCmd {
    /// The busiest sources: records, ports reached, days seen, busiest port.
    Sources {
        /// Only this destination port.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value_t = 20)]
        n: usize,
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        geo: GeoArgs,
        #[command(flatten)]
        out: Output,
    },
    /// Credentials tried: top pairs (with how many were let in), usernames, passwords.
    Credentials {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value_t = 20)]
        n: usize,
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        out: Output,
    },
    /// Client software: names, SSH versions, HASSH, JA4, HTTP user agents.
    Clients {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value_t = 20)]
        n: usize,
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        out: Output,
    },
    /// The fleet's sensors from their heartbeats: last seen, lag, backlog, oldest unacknowledged,
    /// events per minute, dropped, clock offset, events loaded; a sensor not heard from for
    /// `--silent-after` seconds is flagged SILENT.
    Sensors {
        #[arg(long, default_value_t = 300)]
        silent_after: u64,
        #[command(flatten)]
        out: Output,
    },
    /// Sessions matching filters, newest first, with their summary.
    Sessions {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        src: Option<std::net::IpAddr>,
        /// What the client spoke (`telnet`, `ssh`, `silent`, ...).
        #[arg(long)]
        protocol: Option<String>,
        /// Sessions with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Sessions whose client name contains this.
        #[arg(long)]
        client: Option<String>,
        /// Only sessions with login attempts.
        #[arg(long)]
        logins: bool,
        #[arg(long, default_value_t = 50)]
        n: usize,
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        out: Output,
    },
    /// Per port: records, sources, targets for a day (default: the latest day in the store)
    /// or a window, like ISC's top ports.
    TopPorts {
        /// What ranks the ports.
        #[arg(long, value_enum, default_value = "records")]
        by: By,
        /// One UTC day, YYYY-MM-DD.
        #[arg(long, conflicts_with_all = ["since", "until"])]
        day: Option<String>,
        /// First day of a window (with --until; default: the latest day).
        #[arg(long)]
        since: Option<String>,
        /// Last day of a window (default: the latest day in the store).
        #[arg(long)]
        until: Option<String>,
        /// How many ports.
        #[arg(long, default_value_t = 10)]
        n: usize,
        #[command(flatten)]
        out: Output,
    },
    /// One row per day for a port: records, sources, targets, tcp, udp and the ISC trend
    /// score, with a sparkline of sources.
    Port {
        port: u16,
        /// How many days, ending with --until.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// The last day (default: the latest day in the store).
        #[arg(long)]
        until: Option<String>,
        /// Also write a chart of sources and targets per day as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Also write the chart as PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        #[command(flatten)]
        out: Output,
    },
    /// Ports ranked by trend score on a day: what is rising.
    Rising {
        /// The day (default: the latest day in the store).
        #[arg(long)]
        day: Option<String>,
        #[arg(long, default_value_t = 10)]
        n: usize,
        /// A port needs at least this many sources that day to be listed.
        #[arg(long, default_value_t = RisingGuards::default().min_sources)]
        min_sources: i64,
        /// A port needs at least this many records that day to be listed.
        #[arg(long, default_value_t = RisingGuards::default().min_records)]
        min_records: i64,
        #[command(flatten)]
        out: Output,
    },
}

/// MaxMind-format databases for the network and country of sources ([`super::geo`]).
#[derive(Args, Clone, Debug, Default)]
pub struct GeoArgs {
    /// A MaxMind-format database (.mmdb: GeoLite2-ASN, -Country, -City, ...) giving the ASN
    /// and country of sources; repeatable (default: the colon-separated paths in
    /// $HONEYPORT_MMDB).
    #[arg(long = "mmdb", value_name = "FILE")]
    pub mmdb: Vec<PathBuf>,
}

/// `honeyport explain N`.
#[derive(Args, Clone, Debug)]
pub struct ExplainArgs {
    pub port: u16,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Example sessions to show (one per main protocol).
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    #[command(flatten)]
    pub geo: GeoArgs,
    #[command(flatten)]
    pub out: Output,
}

/// Explains port N (text, or `--json`; `--csv` is not a shape this report has).
pub fn explain(store: &Location, a: &ExplainArgs, w: &mut dyn Write) -> anyhow::Result<()> {
    if a.out.csv {
        anyhow::bail!("explain prints text or --json; the tables it draws on have --csv (honeyport report ...)");
    }
    let c = open(store)?;
    let c = &*c;
    let sensor = a.out.sensor();
    let window = a.window.window(c, sensor)?;
    let geo = super::geo::Geo::from_args(&a.geo.mmdb)?;
    let by_geo = |ip| geo.as_ref().map_or((None, None), |g| g.lookup(ip));
    let e = super::explain::explain(
        c,
        a.port,
        sensor,
        window,
        a.examples,
        geo.as_ref().map(|_| &by_geo as super::explain::Lookup<'_>),
    )?;
    if a.out.json {
        writeln!(w, "{}", serde_json::to_string_pretty(&e)?)?;
    } else {
        write!(w, "{}", super::explain::render(&e))?;
    }
    Ok(())
}

/// Opens the store for reports (a SQLite store written before rollups existed gets them
/// first, computed once from its sessions).
pub fn open(store: &Location) -> anyhow::Result<Box<dyn Reader>> {
    Ok(crate::store::open_reader(store)?)
}

fn day_or_latest(c: &dyn Reader, day: Option<&str>, sensor: Scope<'_>) -> anyhow::Result<i64> {
    match day {
        Some(d) => super::parse_day(d).map_err(anyhow::Error::msg),
        None => Ok(super::latest_day(c, sensor)?.unwrap_or_else(super::today)),
    }
}

/// Prints a table in the chosen format (JSON: `json` as given).
fn emit(
    w: &mut dyn Write,
    f: Format,
    title: &str,
    t: &Table,
    json: serde_json::Value,
) -> anyhow::Result<()> {
    match f {
        Format::Json => writeln!(w, "{}", serde_json::to_string_pretty(&json)?)?,
        Format::Csv => write!(w, "{}", t.csv())?,
        Format::Table => {
            writeln!(w, "# {title}")?;
            if t.rows.is_empty() {
                writeln!(w, "(none)")?;
            } else {
                write!(w, "{}", t.text())?;
            }
        }
    }
    Ok(())
}

fn window_note(win: Window, port: Option<u16>, out: &Output) -> String {
    format!(
        "{} .. {}{}{}",
        super::date_of(win.since),
        super::date_of(win.until),
        port.map(|p| format!(", port {p}")).unwrap_or_default(),
        sensor_note(out)
    )
}

/// Runs a report, printing to `w`.
pub fn run(store: &Location, cmd: &ReportCmd, w: &mut dyn Write) -> anyhow::Result<()> {
    let c = open(store)?;
    let c = &*c;
    match cmd {
        ReportCmd::Sources {
            port,
            n,
            window,
            geo,
            out,
        } => {
            let geo = super::geo::Geo::from_args(&geo.mmdb)?;
            let win = window.window(c, out.sensor())?;
            let mut rows = super::lists::sources(c, out.sensor(), win, *port, *n)?;
            let f = out.format();
            let mut head = vec!["ip", "records", "ports", "days", "top_port"];
            if let Some(g) = &geo {
                head.extend(["asn", "country"]);
                for r in &mut rows {
                    if let Ok(ip) = r.ip.parse() {
                        (r.asn, r.country) = g.lookup(ip);
                    }
                }
            }
            let mut t = Table::new(&head);
            for r in &rows {
                let mut row = vec![
                    r.ip.clone(),
                    num(f, r.records),
                    num(f, r.ports),
                    num(f, r.days),
                    r.top_port.to_string(),
                ];
                if geo.is_some() {
                    row.push(r.asn.clone().unwrap_or_default());
                    row.push(r.country.clone().unwrap_or_default());
                }
                t.push(row);
            }
            let title = format!("top sources, {}", window_note(win, *port, out));
            emit(w, f, &title, &t, serde_json::json!({"sources": rows}))?;
        }
        ReportCmd::Credentials {
            port,
            n,
            window,
            out,
        } => {
            let win = window.window(c, out.sensor())?;
            let f = out.format();
            let get = |k: &str| super::lists::items(c, out.sensor(), win, *port, k, *n);
            let pairs = get(kind::CREDENTIAL)?;
            // How often each listed pair was let in.
            let listed: Vec<Vec<u8>> = pairs.iter().map(|(p, _)| p.clone()).collect();
            let ok: std::collections::HashMap<Vec<u8>, i64> = listed
                .iter()
                .cloned()
                .zip(c.item_counts(out.sensor(), win, *port, kind::CREDENTIAL_OK, &listed)?)
                .collect();
            let split = |p: &[u8]| -> (String, String) {
                match p.iter().position(|&b| b == 0) {
                    Some(i) => (
                        String::from_utf8_lossy(&p[..i]).into_owned(),
                        String::from_utf8_lossy(&p[i + 1..]).into_owned(),
                    ),
                    None => (String::from_utf8_lossy(p).into_owned(), String::new()),
                }
            };
            let lists = [
                ("username", get(kind::USERNAME)?),
                ("password", get(kind::PASSWORD)?),
            ];
            let mut t = Table::new(&["kind", "username", "password", "count", "accepted"]);
            let mut json_pairs = Vec::new();
            for (p, cnt) in &pairs {
                let (u, pw) = split(p);
                let acc = ok.get(p).copied().unwrap_or(0);
                t.push(vec![
                    "pair".into(),
                    u.clone(),
                    pw.clone(),
                    num(f, *cnt),
                    num(f, acc),
                ]);
                json_pairs.push(serde_json::json!({"username": u, "password": pw, "count": cnt, "accepted": acc}));
            }
            let mut json = serde_json::json!({"pairs": json_pairs});
            for (name, list) in &lists {
                let mut arr = Vec::new();
                for (item, cnt) in list {
                    let s = String::from_utf8_lossy(item).into_owned();
                    let (u, pw) = if *name == "username" {
                        (s.clone(), String::new())
                    } else {
                        (String::new(), s.clone())
                    };
                    t.push(vec![name.to_string(), u, pw, num(f, *cnt), String::new()]);
                    arr.push(serde_json::json!({"item": s, "count": cnt}));
                }
                json[format!("{name}s")] = serde_json::Value::Array(arr);
            }
            let title = format!("credentials tried, {}", window_note(win, *port, out));
            emit(w, f, &title, &t, json)?;
        }
        ReportCmd::Clients {
            port,
            n,
            window,
            out,
        } => {
            let win = window.window(c, out.sensor())?;
            let f = out.format();
            let mut t = Table::new(&["kind", "client", "sessions"]);
            let mut json = serde_json::Map::new();
            for k in super::lists::CLIENT_KINDS {
                let list = super::lists::items(c, out.sensor(), win, *port, k, *n)?;
                let mut arr = Vec::new();
                for (item, cnt) in list {
                    let s = String::from_utf8_lossy(&item).into_owned();
                    t.push(vec![k.to_string(), s.clone(), num(f, cnt)]);
                    arr.push(serde_json::json!({"item": s, "count": cnt}));
                }
                json.insert(k.to_string(), serde_json::Value::Array(arr));
            }
            let title = format!("client software, {}", window_note(win, *port, out));
            emit(w, f, &title, &t, serde_json::Value::Object(json))?;
        }
        ReportCmd::Sensors { silent_after, out } => {
            let now = chrono::Utc::now().timestamp_micros();
            let f = out.format();
            let mut t = Table::new(&[
                "sensor",
                "last_seen",
                "lag_s",
                "status",
                "backlog",
                "oldest_unacked_s",
                "events_per_min",
                "dropped",
                "clock_offset_s",
                "events",
                "version",
            ]);
            let mut json = Vec::new();
            for h in c.sensors()? {
                if out.sensor.as_deref().is_some_and(|s| s != h.sensor) {
                    continue;
                }
                let lag = (now - h.received_micros).max(0) as f64 / 1e6;
                let silent = lag > *silent_after as f64;
                let status = if silent { "SILENT" } else { "ok" };
                let seen = chrono::DateTime::from_timestamp_micros(h.received_micros)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let offset = h.clock_offset_micros as f64 / 1e6;
                t.push(vec![
                    h.sensor.clone(),
                    seen,
                    format!("{lag:.0}"),
                    status.to_string(),
                    num(f, h.last.backlog as i64),
                    format!("{:.0}", h.last.oldest_unacked_secs),
                    format!("{:.1}", h.last.events_per_minute),
                    num(f, h.last.dropped as i64),
                    format!("{offset:.1}"),
                    num(f, h.events as i64),
                    h.last.version.clone(),
                ]);
                json.push(serde_json::json!({
                    "sensor": h.sensor, "received_micros": h.received_micros, "lag_secs": lag,
                    "silent": silent, "backlog": h.last.backlog,
                    "oldest_unacked_secs": h.last.oldest_unacked_secs,
                    "events_per_minute": h.last.events_per_minute, "dropped": h.last.dropped,
                    "clock_offset_micros": h.clock_offset_micros, "events": h.events,
                    "last_event_micros": h.last_event_micros, "version": h.last.version,
                }));
            }
            emit(w, f, "sensors", &t, serde_json::json!({ "sensors": json }))?;
        }
        ReportCmd::Sessions {
            port,
            src,
            protocol,
            tag,
            client,
            logins,
            n,
            window,
            out,
        } => {
            let win = window.window(c, out.sensor())?;
            let f = out.format();
            let filter = super::lists::SessionFilter {
                port: *port,
                src: *src,
                protocol: protocol.clone(),
                tag: tag.clone(),
                client: client.clone(),
                logins: *logins,
                sent_bytes: false,
            };
            let rows = super::lists::sessions(c, out.sensor(), win, &filter, *n)?;
            let mut t = Table::new(&[
                "session", "start", "src", "port", "served", "protocol", "client", "logins",
                "commands", "tags",
            ]);
            for r in &rows {
                t.push(vec![
                    r.session.clone(),
                    r.start.clone(),
                    r.src.clone(),
                    r.port.to_string(),
                    r.served.clone(),
                    r.protocol.clone().unwrap_or_default(),
                    r.client.clone().unwrap_or_default(),
                    format!("{}/{}", r.logins_ok, r.logins),
                    num(f, r.commands),
                    r.tags.clone().unwrap_or_default(),
                ]);
            }
            let title = format!("sessions, newest first, {}", window_note(win, *port, out));
            emit(w, f, &title, &t, serde_json::json!({"sessions": rows}))?;
        }
        ReportCmd::TopPorts {
            by,
            day,
            since,
            until,
            n,
            out,
        } => {
            let sensor = out.sensor();
            let window = match (day, since) {
                (Some(d), _) => Window::day(day_or_latest(c, Some(d), sensor)?),
                (None, since) => {
                    let until = day_or_latest(c, until.as_deref(), sensor)?;
                    let since = match since {
                        Some(s) => super::parse_day(s).map_err(anyhow::Error::msg)?,
                        None => until,
                    };
                    if since > until {
                        anyhow::bail!("--since is after --until");
                    }
                    Window { since, until }
                }
            };
            let rows = super::top_ports(c, sensor, window, *by, *n)?;
            match out.format() {
                Format::Json => {
                    let doc = serde_json::json!({
                        "since": super::date_of(window.since),
                        "until": super::date_of(window.until),
                        "sensor": out.sensor,
                        "by": format!("{by:?}").to_lowercase(),
                        "ports": rows,
                    });
                    writeln!(w, "{}", serde_json::to_string_pretty(&doc)?)?;
                }
                f => {
                    let mut t = Table::new(&[
                        "rank", "port", "records", "sources", "targets", "tcp", "udp",
                    ]);
                    for (i, r) in rows.iter().enumerate() {
                        t.push(vec![
                            (i + 1).to_string(),
                            r.port.to_string(),
                            num(f, r.records),
                            num(f, r.sources),
                            num(f, r.targets),
                            num(f, r.tcp),
                            num(f, r.udp),
                        ]);
                    }
                    if f == Format::Csv {
                        write!(w, "{}", t.csv())?;
                    } else {
                        let when = if window.days() == 1 {
                            super::date_of(window.since)
                        } else {
                            format!(
                                "{} .. {}",
                                super::date_of(window.since),
                                super::date_of(window.until)
                            )
                        };
                        writeln!(
                            w,
                            "# top ports by {}, {when}{}",
                            format!("{by:?}").to_lowercase(),
                            sensor_note(out)
                        )?;
                        if rows.is_empty() {
                            writeln!(w, "(no records)")?;
                        } else {
                            write!(w, "{}", t.text())?;
                        }
                    }
                }
            }
        }
        ReportCmd::Port {
            port,
            days,
            until,
            svg,
            png,
            out,
        } => {
            let sensor = out.sensor();
            if !(1..=36_500).contains(days) {
                anyhow::bail!("--days must be between 1 and 36500");
            }
            let until = day_or_latest(c, until.as_deref(), sensor)?;
            let rows = super::port_history(c, sensor, *port, *days, until)?;
            if let Some(p) = svg {
                let chart = super::chart::Chart::port(*port, &rows);
                std::fs::write(p, chart.svg())
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if let Some(p) = png {
                let chart = super::chart::Chart::port(*port, &rows);
                chart
                    .png(p)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            match out.format() {
                Format::Json => {
                    let doc = serde_json::json!({
                        "port": port,
                        "sensor": out.sensor,
                        "days": rows,
                    });
                    writeln!(w, "{}", serde_json::to_string_pretty(&doc)?)?;
                }
                f => {
                    let mut t = Table::new(&[
                        "date", "records", "sources", "targets", "tcp", "udp", "trend",
                    ]);
                    for r in &rows {
                        t.push(vec![
                            r.date.clone(),
                            num(f, r.records),
                            num(f, r.sources),
                            num(f, r.targets),
                            num(f, r.tcp),
                            num(f, r.udp),
                            format!("{:.3}", r.trend),
                        ]);
                    }
                    if f == Format::Csv {
                        write!(w, "{}", t.csv())?;
                    } else {
                        let sources: Vec<i64> = rows.iter().map(|r| r.sources).collect();
                        let targets: Vec<i64> = rows.iter().map(|r| r.targets).collect();
                        let total: i64 = rows.iter().map(|r| r.records).sum();
                        writeln!(
                            w,
                            "# port {port}, {} .. {}{}: {} records",
                            rows.first().map(|r| r.date.as_str()).unwrap_or(""),
                            rows.last().map(|r| r.date.as_str()).unwrap_or(""),
                            sensor_note(out),
                            thousands(total)
                        )?;
                        writeln!(w, "# sources |{}|", super::sparkline(&sources, 73))?;
                        writeln!(w, "# targets |{}|", super::sparkline(&targets, 73))?;
                        write!(w, "{}", t.text())?;
                    }
                }
            }
        }
        ReportCmd::Rising {
            day,
            n,
            min_sources,
            min_records,
            out,
        } => {
            let sensor = out.sensor();
            let day = day_or_latest(c, day.as_deref(), sensor)?;
            let guards = RisingGuards {
                min_sources: *min_sources,
                min_records: *min_records,
            };
            let rows = super::rising(c, sensor, day, *n, guards)?;
            match out.format() {
                Format::Json => {
                    let doc = serde_json::json!({
                        "day": super::date_of(day),
                        "sensor": out.sensor,
                        "min_sources": min_sources,
                        "min_records": min_records,
                        "ports": rows,
                    });
                    writeln!(w, "{}", serde_json::to_string_pretty(&doc)?)?;
                }
                f => {
                    let mut t = Table::new(&[
                        "rank",
                        "port",
                        "trend",
                        "sources",
                        "avg_sources",
                        "targets",
                        "avg_targets",
                        "records",
                    ]);
                    for (i, r) in rows.iter().enumerate() {
                        t.push(vec![
                            (i + 1).to_string(),
                            r.port.to_string(),
                            format!("{:.3}", r.trend),
                            num(f, r.sources),
                            format!("{:.1}", r.avg_sources),
                            num(f, r.targets),
                            format!("{:.1}", r.avg_targets),
                            num(f, r.records),
                        ]);
                    }
                    if f == Format::Csv {
                        write!(w, "{}", t.csv())?;
                    } else {
                        writeln!(
                            w,
                            "# rising ports on {}{} (trend against the {} days before; at least {} sources and {} records)",
                            super::date_of(day),
                            sensor_note(out),
                            super::BASELINE_DAYS,
                            min_sources,
                            min_records
                        )?;
                        if rows.is_empty() {
                            writeln!(w, "(none)")?;
                        } else {
                            write!(w, "{}", t.text())?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A count: with thousands separators in tables, plain in CSV.
fn num(f: Format, n: i64) -> String {
    if f == Format::Table {
        thousands(n)
    } else {
        n.to_string()
    }
}

fn sensor_note(out: &Output) -> String {
    out.sensor
        .as_ref()
        .map(|s| format!(", sensor {s}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_loader, Heartbeat};

    fn beat(sensor: &str, backlog: u64) -> Heartbeat {
        Heartbeat {
            sensor: sensor.into(),
            version: "0.1.0".into(),
            run: 7,
            sent_micros: 0,
            backlog,
            oldest_unacked_secs: 12.0,
            events_per_minute: 30.0,
            dropped: 0,
        }
    }

    #[test]
    fn report_sensors_flags_the_silent_one_and_shows_backlog_and_clock_offset() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Sqlite(dir.path().to_path_buf());
        let now = chrono::Utc::now().timestamp_micros();
        {
            let mut l = open_loader(&loc).unwrap();
            let mut fresh = beat("fra-1", 40);
            // Its clock is an hour ahead of the bus's.
            fresh.sent_micros = now + 3_600_000_000;
            l.heartbeat(&fresh, now).unwrap();
            let mut old = beat("ams-2", 0);
            old.sent_micros = now - 3_600_000_000;
            l.heartbeat(&old, now - 3_600_000_000).unwrap();
        }
        let cmd = ReportCmd::Sensors {
            silent_after: 300,
            out: Output {
                sensor: None,
                json: true,
                csv: false,
            },
        };
        let mut out = Vec::new();
        run(&loc, &cmd, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let by: std::collections::BTreeMap<String, &serde_json::Value> = v["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["sensor"].as_str().unwrap().to_string(), s))
            .collect();
        assert_eq!(by.len(), 2);
        assert_eq!(by["ams-2"]["silent"], true);
        assert_eq!(by["fra-1"]["silent"], false);
        assert_eq!(by["fra-1"]["backlog"], 40);
        assert_eq!(by["fra-1"]["clock_offset_micros"], 3_600_000_000i64);

        let mut text = Vec::new();
        let cmd = ReportCmd::Sensors {
            silent_after: 300,
            out: Output {
                sensor: Some("ams-2".into()),
                json: false,
                csv: false,
            },
        };
        run(&loc, &cmd, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("SILENT"), "{text}");
        assert!(!text.contains("fra-1"), "{text}");
    }
}
