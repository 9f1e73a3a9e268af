//! `honeyport import`: other sensors' logs into the store, so their history can be analysed
//! with the same reports (`report top-ports`, `report port`, `explain`).
//!
//! - [`cowrie`]: cowrie's JSON log (`cowrie.json`), one session per cowrie session.
//! - [`iptables`]: kernel firewall log lines (`SRC= DST= PROTO= SPT= DPT=`, as DShield's
//!   sensor writes them): records for ports without a listener, in the `firewall` table.
//! - [`simple_listener`]: the text log of Didier Stevens' `tcp-honeypot.py`.
//!
//! Common rules:
//!
//! - Files are streamed line by line (a `.gz` file is decompressed on the fly); a line longer
//!   than [`MAX_LINE`] is skipped and reported as malformed. Memory is bounded: at most
//!   [`Limits::max_sessions`] sessions are buffered at once (the oldest is written early,
//!   closed at its last event, when that is exceeded) and at most
//!   [`Limits::max_events_per_session`] events per session (the rest are dropped and counted).
//! - Sessions get deterministic ids in the sensor's layout ([`import_id`]: the start second,
//!   then 32 bits of a SHA-256 of the sensor and the foreign session's identity); a session
//!   already in the store (same id, sensor, start and source) is skipped whole, one that only
//!   shares the id with another moves to the next free id; firewall records are unique per (time, sensor, protocol, addresses, ports): importing
//!   the same file again adds nothing.
//! - Everything is written through the sensor's own store writer ([`crate::store::Writer`]), so the
//!   session summaries and the report rollups are kept exactly as the live sensor keeps them.
//! - Malformed lines are counted and reported (`file:line: reason`, the first
//!   [`MAX_REPORTED`]); the rest of the file is imported.

pub mod cowrie;
pub mod iptables;
pub mod simple_listener;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::hash::Hash;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use honeyport_event::{Event, EventKind, SessionId, Timestamp, Transport};
use sha2::{Digest, Sha256};

use crate::store::{FirewallRecord, Location, Writer, WriterOptions};

/// Longest line read; a longer one is skipped (and reported as malformed).
pub const MAX_LINE: usize = 1024 * 1024;
/// How many malformed lines are listed by position (all are counted).
pub const MAX_REPORTED: usize = 20;
/// Kinds of lines not mapped counted apart (the rest together).
pub const MAX_KINDS: usize = 256;
/// Events per `Writer::write` (one transaction).
pub const BATCH: usize = 4096;

/// The log formats `honeyport import` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// cowrie's JSON log (`cowrie.json`).
    Cowrie,
    /// Kernel firewall log lines (iptables LOG target, as DShield's sensor writes them).
    Iptables,
    /// tcp-honeypot.py's text log (Didier Stevens; used by ISC handlers).
    SimpleListener,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Cowrie => "cowrie",
            Format::Iptables => "iptables",
            Format::SimpleListener => "simple-listener",
        }
    }
}

/// `honeyport import`.
#[derive(clap::Args, Clone, Debug)]
pub struct ImportArgs {
    /// What the files are.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The sensor name to store the data under (default: cowrie's `sensor` field, else
    /// "cowrie"; "firewall" for iptables; "tcp-honeypot" for simple-listener).
    #[arg(long)]
    pub sensor: Option<String>,
    /// The year of syslog timestamps without one (iptables; default: the current UTC year,
    /// or the one before for a month later than the current one).
    #[arg(long)]
    pub year: Option<i32>,
    /// The UTC offset of local-time timestamps (tcp-honeypot's, syslog's), e.g. +01:00.
    #[arg(long, default_value = "+00:00", value_parser = parse_offset)]
    pub utc_offset: FixedOffset,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The log files (`.gz` files are decompressed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Parses `+HH:MM`, `-HH:MM`, `+HHMM` or `Z`.
pub fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    let bad = || format!("{s:?} is not a UTC offset like +01:00 or -05:30");
    if s == "Z" || s == "z" {
        return FixedOffset::east_opt(0).ok_or_else(bad);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i32 = digits[..2].parse().map_err(|_| bad())?;
    let m: i32 = digits[2..].parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

/// Memory bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sessions buffered at once (waiting for their close).
    pub max_sessions: usize,
    /// Events kept per session; more are dropped (and counted).
    pub max_events_per_session: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 100_000,
            max_events_per_session: 10_000,
        }
    }
}

/// Settings of one import.
#[derive(Clone, Debug)]
pub struct Options {
    pub format: Format,
    pub sensor: Option<String>,
    pub year: Option<i32>,
    pub utc_offset: FixedOffset,
    pub limits: Limits,
    /// A progress line on stderr.
    pub progress: bool,
}

impl Options {
    pub fn from_args(a: &ImportArgs) -> Options {
        Options {
            format: a.format,
            sensor: a.sensor.clone(),
            year: a.year,
            utc_offset: a.utc_offset,
            limits: Limits::default(),
            progress: io::stderr().is_terminal(),
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub files: usize,
    pub lines: u64,
    /// Events written (including the `session.classified` and `session.closed` the importer
    /// adds where the log has none).
    pub events: u64,
    pub sessions_new: u64,
    /// Sessions whose id was already in the store: skipped whole.
    pub sessions_existing: u64,
    /// Sessions written before their end was seen (the input ended, or the buffer was full):
    /// closed at their last event with reason `shutdown`.
    pub sessions_unclosed: u64,
    /// Firewall records (iptables) new to the store.
    pub records: u64,
    /// Firewall records already in the store.
    pub records_existing: u64,
    pub malformed: u64,
    /// The first [`MAX_REPORTED`] malformed lines: `file:line: reason`.
    pub malformed_lines: Vec<String>,
    /// Lines that were read but have no equivalent here, by kind (cowrie's eventid, ...).
    pub not_mapped: BTreeMap<String, u64>,
    /// Events dropped: beyond the per-session cap, or outside any session (no connect).
    pub dropped: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    pub events_per_sec: f64,
}

impl Summary {
    fn new(format: Format, files: usize) -> Summary {
        Summary {
            format: format.name(),
            files,
            ..Default::default()
        }
    }

    /// Counts a malformed line; `where_` is `file:line`.
    pub fn malformed(&mut self, where_: &Position<'_>, reason: impl std::fmt::Display) {
        self.malformed += 1;
        if self.malformed_lines.len() < MAX_REPORTED {
            self.malformed_lines
                .push(format!("{}:{}: {reason}", where_.file, where_.line));
        }
    }

    /// Counts a line not mapped, by kind; past [`MAX_KINDS`] kinds (a log of noise), new
    /// kinds are counted together as `(other kinds)`.
    pub fn not_mapped(&mut self, kind: &str) {
        if let Some(n) = self.not_mapped.get_mut(kind) {
            *n += 1;
            return;
        }
        let key = if self.not_mapped.len() >= MAX_KINDS {
            "(other kinds)".to_string()
        } else {
            kind.chars().take(80).collect()
        };
        *self.not_mapped.entry(key).or_insert(0) += 1;
    }

    pub fn dropped(&mut self, why: &str) {
        match self.dropped.get_mut(why) {
            Some(n) => *n += 1,
            None => {
                self.dropped.insert(why.to_string(), 1);
            }
        }
    }

    /// True when the import did its job: something new, or everything already there.
    pub fn ok(&self) -> bool {
        self.events + self.records + self.sessions_existing + self.records_existing > 0
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "imported {} ({} file{}): {} lines read",
            self.format,
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.lines
        );
        if self.format == Format::Iptables.name() {
            let _ = writeln!(
                s,
                "  records: {} new, {} already in the store",
                self.records, self.records_existing
            );
        } else {
            let _ = writeln!(s, "  events imported: {}", self.events);
            let _ = writeln!(
                s,
                "  sessions: {} new, {} already in the store (skipped), {} without an end in the input (closed at their last event)",
                self.sessions_new, self.sessions_existing, self.sessions_unclosed
            );
        }
        let _ = writeln!(s, "  malformed lines: {}", self.malformed);
        for m in &self.malformed_lines {
            let _ = writeln!(s, "    {m}");
        }
        if self.malformed > self.malformed_lines.len() as u64 {
            let _ = writeln!(
                s,
                "    ... and {} more",
                self.malformed - self.malformed_lines.len() as u64
            );
        }
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.not_mapped.is_empty() {
            let n: u64 = self.not_mapped.values().sum();
            let _ = writeln!(s, "  lines not mapped: {n} ({})", list(&self.not_mapped));
        }
        if !self.dropped.is_empty() {
            let n: u64 = self.dropped.values().sum();
            let _ = writeln!(s, "  events dropped: {n} ({})", list(&self.dropped));
        }
        let _ = writeln!(
            s,
            "  elapsed: {:.3} s ({:.0} {}/s)",
            self.elapsed_secs,
            self.events_per_sec,
            if self.format == Format::Iptables.name() {
                "records"
            } else {
                "events"
            }
        );
        s
    }
}

/// Where a line is, for messages.
pub struct Position<'a> {
    pub file: &'a str,
    pub line: u64,
}

/// A session id from a foreign session's identity: the first 8 bytes of SHA-256 over the
/// parts, each followed by a NUL byte. The same log imported again gives the same ids.
pub fn session_id(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// A session id in the sensor's own layout: the second the session started in the high 32
/// bits (ids sort by time and the store's indexes append), the low 32 bits of
/// [`session_id`] over the foreign session's identity in the low 32. [`Store::resolve`]
/// moves a session whose id is taken by another session to the next free one.
pub fn import_id(start_micros: i64, parts: &[&[u8]]) -> u64 {
    let secs = start_micros.div_euclid(1_000_000) as u64 & 0xffff_ffff;
    (secs << 32) | (session_id(parts) & 0xffff_ffff)
}

/// Who a session is: tells a session imported before (same) from another one that happens
/// to have the same id (different).
pub use crate::store::Ident;

/// One line as read.
pub enum Line {
    /// The line without its end (`\n` or `\r\n`).
    Ok,
    /// Longer than [`MAX_LINE`]: skipped; its length.
    TooLong(u64),
}

/// Reads lines of at most `max` bytes without ever holding more than that.
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max }
    }

    /// The next line into `buf` (cleared first); `None` at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        // Bytes of the line so far (without its end), and whether anything was read.
        let mut total: u64 = 0;
        let mut seen = false;
        let mut too_long = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !seen {
                    return Ok(None);
                }
                break;
            }
            seen = true;
            let (take, done) = match memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            total += take as u64;
            if !too_long {
                if buf.len() + take > self.max {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong(total)));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Line::Ok))
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Counts the bytes read through it (for the progress line).
struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// Opens a log file for streaming: `.gz` files are decompressed. `read` counts the bytes
/// read from the file itself (compressed, for a `.gz`).
fn open_log(path: &Path, read: Arc<AtomicU64>) -> io::Result<LineReader<Box<dyn BufRead>>> {
    let f = Counting {
        inner: File::open(path)?,
        n: read,
    };
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let inner: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(BufReader::new(f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, f))
    };
    Ok(LineReader::new(inner, MAX_LINE))
}

/// The progress line on stderr (only when asked, i.e. stderr is a terminal): bytes read of
/// the file size, events or records so far and their rate, at most every 100 ms.
pub struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
    total: u64,
    before: u64,
    read: Arc<AtomicU64>,
    file: String,
    shown: bool,
}

impl Progress {
    fn new(on: bool, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            on,
            start: now,
            last: now,
            total,
            before: 0,
            read: Arc::new(AtomicU64::new(0)),
            file: String::new(),
            shown: false,
        }
    }

    fn next_file(&mut self, name: &str) -> Arc<AtomicU64> {
        self.before += self.read.swap(0, Ordering::Relaxed);
        self.read = Arc::new(AtomicU64::new(0));
        self.file = name.to_string();
        self.read.clone()
    }

    /// Called often; draws at most every 100 ms.
    pub fn tick(&mut self, done: u64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(100) {
            return;
        }
        self.last = now;
        let bytes = self.before + self.read.load(Ordering::Relaxed);
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let pct = if self.total > 0 {
            (bytes as f64 * 100.0 / self.total as f64).min(100.0)
        } else {
            100.0
        };
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kimport {}: {:.1}/{:.1} MiB ({pct:.0}%), {done} imported, {:.0}/s",
            self.file,
            mib(bytes),
            mib(self.total),
            done as f64 / secs
        );
        let _ = err.flush();
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// The store as the importers see it: the writer (sessions, rollups, firewall records) and
/// the sessions queued for its next batch.
pub struct Store {
    sink: Box<dyn Writer>,
    batch: Vec<Event>,
    /// Sessions in `batch` (not yet visible to a query).
    pending: HashMap<u64, Ident>,
}

impl Store {
    pub fn open(loc: &Location) -> anyhow::Result<Store> {
        let sink = crate::store::open_writer(
            loc,
            WriterOptions {
                synchronous_full: false,
                bulk: true,
            },
        )?;
        Ok(Store {
            sink,
            batch: Vec::with_capacity(BATCH),
            pending: HashMap::new(),
        })
    }

    /// The id to write session `who` under, trying `id` first: `None` when that session is in
    /// the store already (imported before). An id taken by another session moves it to the
    /// next one, the same way every time, so a second import finds it there.
    pub fn resolve(&mut self, mut id: u64, who: &Ident) -> anyhow::Result<Option<u64>> {
        for _ in 0..64 {
            let found = match self.pending.get(&id) {
                Some(p) => Some(p.clone()),
                None => self.sink.ident(id)?,
            };
            match found {
                None => return Ok(Some(id)),
                Some(f) if f == *who => return Ok(None),
                Some(_) => id = id.wrapping_add(1),
            }
        }
        anyhow::bail!("no free session id near {id:016x}")
    }

    /// Queues a whole session's events; written in batches of about [`BATCH`].
    pub fn session(&mut self, id: u64, who: Ident, events: Vec<Event>) -> anyhow::Result<()> {
        self.pending.insert(id, who);
        self.batch.extend(events);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        if !self.batch.is_empty() {
            self.sink.write(&self.batch)?;
            self.batch.clear();
        }
        self.pending.clear();
        Ok(())
    }

    /// Writes firewall records (one transaction); returns how many were new.
    pub fn firewall(&mut self, sensor: &str, recs: &[FirewallRecord]) -> anyhow::Result<u64> {
        Ok(self.sink.write_firewall(sensor, recs)?)
    }
}

/// A session being read from a foreign log, waiting for its end.
pub struct Open {
    pub id: u64,
    pub sensor: String,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Connect time and the latest event's, microseconds since the epoch.
    pub start: i64,
    pub last: i64,
    /// The events from the connect on, with their times.
    pub kinds: Vec<(i64, EventKind)>,
}

impl Open {
    pub fn new(id: u64, sensor: String, src: SocketAddr, dst: SocketAddr, ts: i64) -> Open {
        Open {
            id,
            sensor,
            src,
            dst,
            start: ts,
            last: ts,
            kinds: Vec::new(),
        }
    }

    /// Adds an event, unless the session already has `limits.max_events_per_session`.
    pub fn push(&mut self, ts: i64, kind: EventKind, limits: &Limits, sum: &mut Summary) {
        if self.kinds.len() >= limits.max_events_per_session {
            sum.dropped("beyond the per-session cap");
            return;
        }
        self.push_final(ts, kind);
    }

    /// Adds an event whatever the cap (the session's end).
    pub fn push_final(&mut self, ts: i64, kind: EventKind) {
        self.last = self.last.max(ts);
        self.kinds.push((ts, kind));
    }

    /// Writes the session, unless it is in the store already (then it is counted as such
    /// and nothing is written).
    pub fn write(self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()> {
        let who = Ident {
            sensor: self.sensor.clone(),
            start: self.start,
            src: self.src.ip().to_string(),
            src_port: self.src.port(),
        };
        let Some(id) = store.resolve(self.id, &who)? else {
            sum.sessions_existing += 1;
            return Ok(());
        };
        let session = SessionId::from_u64(id);
        let mut events = Vec::with_capacity(self.kinds.len());
        for (ts, kind) in self.kinds {
            let timestamp = Timestamp::from_unix_micros(ts)
                .ok_or_else(|| anyhow::anyhow!("timestamp {ts} out of range"))?;
            events.push(Event {
                v: honeyport_event::SCHEMA_VERSION,
                timestamp,
                sensor: self.sensor.clone(),
                session: session.clone(),
                transport: Transport::Tcp,
                src_ip: self.src.ip(),
                src_port: self.src.port(),
                dst_ip: self.dst.ip(),
                dst_port: self.dst.port(),
                kind,
            });
        }
        sum.sessions_new += 1;
        sum.events += events.len() as u64;
        store.session(id, who, events)
    }
}

/// Open sessions by key, oldest first for eviction; at most `cap`.
pub struct Buffer<K, V> {
    map: HashMap<K, (u64, V)>,
    order: BTreeMap<u64, K>,
    seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Buffer<K, V> {
    pub fn new(cap: usize) -> Self {
        Buffer {
            map: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }

    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Inserts; returns the oldest entry when the buffer is over its cap (to be written
    /// early by the caller).
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.seq += 1;
        self.order.insert(self.seq, k.clone());
        if let Some((old, _)) = self.map.insert(k, (self.seq, v)) {
            self.order.remove(&old);
        }
        if self.map.len() > self.cap {
            let (_, k) = self.order.pop_first()?;
            return self.map.remove(&k).map(|(_, v)| v);
        }
        None
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (seq, v) = self.map.remove(k)?;
        self.order.remove(&seq);
        Some(v)
    }

    /// Everything left, oldest first.
    pub fn drain(&mut self) -> Vec<V> {
        let order = std::mem::take(&mut self.order);
        let mut out = Vec::with_capacity(order.len());
        for (_, k) in order {
            if let Some((_, v)) = self.map.remove(&k) {
                out.push(v);
            }
        }
        out
    }
}

/// Parses a timestamp with a date and a time: RFC 3339, or ISO 8601 with a `+0000` offset,
/// or without an offset (then UTC); microseconds since the epoch, years 1000-9999 only.
pub fn parse_iso(s: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()?;
    in_range(t.timestamp_micros())
}

/// `us` if it is within the years 1000-9999 (what the event schema writes back exactly).
pub fn in_range(us: i64) -> Option<i64> {
    // 1000-01-01 and 10000-01-01 in microseconds since the epoch.
    const MIN: i64 = -30_610_224_000_000_000;
    const MAX: i64 = 253_402_300_800_000_000;
    (MIN..MAX).contains(&us).then_some(us)
}

/// What a format's importer does with lines; one per import, across all its files.
pub trait Importer {
    /// One line (`line` is without its end). `pos` says where, for messages.
    fn line(
        &mut self,
        line: &[u8],
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()>;
    /// The end of all input: write what is still buffered.
    fn finish(&mut self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()>;
}

/// Imports `files` into the store in `data_dir`.
pub fn import(store: &Location, files: &[PathBuf], opts: &Options) -> anyhow::Result<Summary> {
    // Every file must be readable before anything is imported.
    let mut total = 0u64;
    for f in files {
        let m = std::fs::metadata(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        if !m.is_file() {
            anyhow::bail!("{} is not a file", f.display());
        }
        total += m.len();
    }
    let start = Instant::now();
    let mut store = Store::open(store)?;
    let mut sum = Summary::new(opts.format, files.len());
    let mut imp: Box<dyn Importer> = match opts.format {
        Format::Cowrie => Box::new(cowrie::Cowrie::new(opts)),
        Format::Iptables => Box::new(iptables::Iptables::new(opts)?),
        Format::SimpleListener => Box::new(simple_listener::SimpleListener::new(opts)),
    };
    let mut progress = Progress::new(opts.progress, total);
    let mut buf = Vec::with_capacity(4096);
    for f in files {
        let name = f.display().to_string();
        let counter = progress.next_file(&name);
        let mut r = open_log(f, counter).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let mut n = 0u64;
        loop {
            let got = match r.next_line(&mut buf) {
                Ok(g) => g,
                Err(e) => {
                    // A truncated .gz (a log being written) ends the file, not the import.
                    n += 1;
                    sum.malformed(
                        &Position {
                            file: &name,
                            line: n,
                        },
                        format_args!("read error, rest of the file skipped: {e}"),
                    );
                    break;
                }
            };
            let Some(line) = got else { break };
            n += 1;
            sum.lines += 1;
            let pos = Position {
                file: &name,
                line: n,
            };
            match line {
                Line::TooLong(len) => sum.malformed(
                    &pos,
                    format_args!("line of {len} bytes is longer than {MAX_LINE}: skipped"),
                ),
                Line::Ok => {
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    imp.line(&buf, &pos, &mut store, &mut sum)?;
                }
            }
            if n & 1023 == 0 {
                progress.tick(sum.events + sum.records);
            }
        }
    }
    imp.finish(&mut store, &mut sum)?;
    store.flush()?;
    progress.finish();
    sum.elapsed_secs = start.elapsed().as_secs_f64();
    sum.events_per_sec = (sum.events + sum.records) as f64 / sum.elapsed_secs.max(1e-9);
    Ok(sum)
}

/// `honeyport import`: imports, prints the summary, and says whether it succeeded (something
/// imported, or everything already there).
pub fn run(store: &Location, a: &ImportArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let opts = Options::from_args(a);
    let sum = import(store, &a.files, &opts)?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&sum)?)?;
    } else {
        write!(out, "{}", sum.render())?;
    }
    if !sum.ok() {
        eprintln!("honeyport: nothing imported from the given files");
    }
    Ok(sum.ok())
}

/// Decodes a Python `repr()` of bytes or of a string (`b'...'`, `b"..."`, `'...'`, `u'...'`):
/// the escapes `\\ \' \" \n \r \t \a \b \f \v \0`, `\xHH`, `\uHHHH`, `\UHHHHHHHH` and octal
/// `\ooo`; other characters as their UTF-8. `None` if it is not such a literal.
pub fn python_repr(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    // In a unicode literal `\xHH` is a code point; in bytes (and Python 2's str) a byte.
    let unicode = s.starts_with('u');
    let s = s
        .strip_prefix('b')
        .or_else(|| s.strip_prefix('u'))
        .unwrap_or(s);
    let q = s.chars().next()?;
    if (q != '\'' && q != '"') || s.len() < 2 || !s.ends_with(q) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + it.next()?.to_digit(16)?;
        }
        Some(v)
    };
    while let Some(c) = it.next() {
        if c == q {
            // An unescaped quote inside: not one literal.
            return None;
        }
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match it.next()? {
            '\\' => out.push(b'\\'),
            '\'' => out.push(b'\''),
            '"' => out.push(b'"'),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'v' => out.push(11),
            'x' if unicode => {
                let c = char::from_u32(hex(&mut it, 2)?)?;
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            'x' => out.push(hex(&mut it, 2)? as u8),
            u @ ('u' | 'U') => {
                let v = hex(&mut it, if u == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v)?;
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            d @ '0'..='7' => {
                let mut v = d.to_digit(8)?;
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            v = v * 8 + x;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Reader as _;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, u64>> {
        let mut r = LineReader::new(BufReader::with_capacity(7, input), max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = r.next_line(&mut buf).unwrap() {
            out.push(match l {
                Line::Ok => Ok(buf.clone()),
                Line::TooLong(n) => Err(n),
            });
        }
        out
    }

    #[test]
    fn lines_are_bounded_and_a_long_one_is_skipped_whole() {
        let got = lines(b"ab\r\n0123456789abcdef\n\nlast", 10);
        assert_eq!(
            got,
            vec![
                Ok(b"ab".to_vec()),
                Err(16),
                Ok(vec![]),
                Ok(b"last".to_vec())
            ]
        );
        assert!(lines(b"", 10).is_empty());
        assert_eq!(lines(b"x\n", 10), vec![Ok(b"x".to_vec())]);
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+01:00").unwrap().local_minus_utc(), 3600);
        assert_eq!(parse_offset("-0530").unwrap().local_minus_utc(), -19800);
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        for bad in ["01:00", "+1:00", "+24:00", "+01:60", ""] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn python_reprs_decode() {
        assert_eq!(python_repr(r"b'EHLO x\r\n'").unwrap(), b"EHLO x\r\n");
        assert_eq!(
            python_repr(r#"b"it's \x00\xff\\""#).unwrap(),
            b"it's \x00\xff\\"
        );
        assert_eq!(
            python_repr(r"'caf\xe9 \u20ac'").unwrap(),
            b"caf\xe9 \xe2\x82\xac"
        );
        assert_eq!(python_repr(r"u'caf\xe9'").unwrap(), "café".as_bytes());
        assert_eq!(python_repr("''").unwrap(), b"");
        for bad in ["b'x", "x", "b'a'b'", r"'\q'", r"'\x4'"] {
            assert!(python_repr(bad).is_none(), "{bad}");
        }
    }

    fn opts(max_sessions: usize, max_events_per_session: usize) -> Options {
        Options {
            format: Format::Cowrie,
            sensor: None,
            year: None,
            utc_offset: FixedOffset::east_opt(0).unwrap(),
            limits: Limits {
                max_sessions,
                max_events_per_session,
            },
            progress: false,
        }
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/cowrie.json")
    }

    /// The memory bounds: a full session buffer writes its oldest session early (its later
    /// events are then dropped), and a session's events beyond the cap are dropped.
    #[test]
    fn buffers_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = import(
            &Location::Sqlite(dir.path().into()),
            &[fixture()],
            &opts(1, 100),
        )
        .unwrap();
        // The telnet connect pushes the SSH session out: written with its connect only.
        assert_eq!((s.sessions_new, s.sessions_unclosed), (2, 1));
        assert_eq!(
            s.dropped.get("outside a session (no connect in the input)"),
            Some(&7)
        );
        // ssh: connect, classified, closed; telnet: 6 + classified + closed.
        assert_eq!(s.events, 3 + 8);

        let dir = tempfile::tempdir().unwrap();
        let s = import(
            &Location::Sqlite(dir.path().into()),
            &[fixture()],
            &opts(10, 3),
        )
        .unwrap();
        assert_eq!((s.sessions_new, s.sessions_unclosed), (2, 0));
        // Each session keeps 3 events (connect included) plus its classified and closed.
        assert_eq!(s.events, 2 * 5);
        assert_eq!(s.dropped.get("beyond the per-session cap"), Some(&(4 + 3)));
    }

    /// A session of another origin that has the id an imported one would get: the imported
    /// one moves to the next id, and is found there by a second import.
    #[test]
    fn an_id_taken_by_another_session_moves_to_the_next() {
        use honeyport_event::{EndReason, Payload};
        let dir = tempfile::tempdir().unwrap();
        let start = parse_iso("2019-08-14T12:00:00.1Z").unwrap();
        let id = import_id(start, &[b"sensor-a", b"a1b2c3d4e5f6"]);
        let other = |kind| Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(start).unwrap(),
            sensor: "live".into(),
            session: SessionId::from_u64(id),
            transport: Transport::Tcp,
            src_ip: "192.0.2.9".parse().unwrap(),
            src_port: 1,
            dst_ip: "192.0.2.1".parse().unwrap(),
            dst_port: 22,
            kind,
        };
        {
            let mut sink = crate::store::open_writer(
                &Location::Sqlite(dir.path().into()),
                WriterOptions::default(),
            )
            .unwrap();
            sink.write(&[
                other(EventKind::Connect {
                    listener: "l".into(),
                    persona: "p".into(),
                    tls: false,
                }),
                other(EventKind::Input {
                    data: Payload(b"x".to_vec()),
                    len: 1,
                }),
                other(EventKind::Closed {
                    duration: 0.0,
                    bytes_in: 1,
                    bytes_out: 0,
                    reason: EndReason::PeerClosed,
                    limit: None,
                }),
            ])
            .unwrap();
        }
        let s = import(
            &Location::Sqlite(dir.path().into()),
            &[fixture()],
            &opts(10, 100),
        )
        .unwrap();
        assert_eq!((s.sessions_new, s.sessions_existing), (2, 0));
        let store = crate::store::Store::open(dir.path()).unwrap();
        let moved = store.summary(&format!("{:016x}", id + 1)).unwrap().unwrap();
        assert_eq!((moved.persona.as_str(), moved.logins), ("cowrie-ssh", 2));
        let kept = store.summary(&format!("{id:016x}")).unwrap().unwrap();
        assert_eq!(kept.persona, "p");
        let again = import(
            &Location::Sqlite(dir.path().into()),
            &[fixture()],
            &opts(10, 100),
        )
        .unwrap();
        assert_eq!((again.sessions_new, again.sessions_existing), (0, 2));
    }

    #[test]
    fn session_ids_are_deterministic_and_distinct() {
        let a = session_id(&[b"s", b"abc"]);
        assert_eq!(a, session_id(&[b"s", b"abc"]));
        assert_ne!(a, session_id(&[b"sa", b"bc"]));
        let t = import_id(1_565_784_000_100_000, &[b"s", b"abc"]);
        assert_eq!(t >> 32, 1_565_784_000);
        assert_eq!(t & 0xffff_ffff, a & 0xffff_ffff);
    }
}
