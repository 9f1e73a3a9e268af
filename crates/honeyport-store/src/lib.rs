//! The storage boundary: the only code in honeyport that names SQLite or PostgreSQL.
//!
//! - A [`Writer`] takes events in batches (one transaction each) and keeps, in the same
//!   transaction, each session's summary row and the report rollups ([`rollup`]).
//! - A [`Reader`] answers everything reports, `events`, `replay`, `explain` and the web pages
//!   need, as typed rows. Reports are pure functions over it.
//! - The fleet ([`fleet`]): every stored event has an identity `(sensor, run, seq)`; a
//!   sensor's local store is read as a [`Spool`] ([`open_spool`]); a collector stores what it
//!   consumed through a [`Loader`] ([`open_loader`]), idempotently by identity.
//! - [`Location`] says where a store is (a SQLite data dir or a PostgreSQL URL, [`postgres`]);
//!   [`open_reader`] and [`open_writer`] are the one way to open one.
//!
//! Both backends share the batch folding ([`fold`]) and the rollup counting ([`rollup`]), so
//! the same events give the same rows on either.

pub mod fleet;
pub mod fold;
pub mod postgres;
pub mod rollup;
pub mod sqlite;

use std::net::IpAddr;
use std::path::PathBuf;

use honeyport_event::Event;
use serde::Serialize;

pub use fleet::{
    Backlog, EventId, Heartbeat, Loaded, Loader, Parked, SensorHealth, Spool, Spooled,
};
pub use rollup::{day_of, ip_key, ip_of_key, kind, DAY_MICROS, MAX_ITEM};

/// The SQLite file inside a data dir.
pub const DB_FILE: &str = "honeyport.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {0} (run the sensor first, or pass --data-dir / --store)")]
    Missing(String),
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path} is not a honeyport store: {source}")]
    Foreign {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL error. `location` is the URL without its password; the message includes
    /// the server's (`ERROR: ...`), since `postgres::Error`'s own says only "db error".
    #[error("store {location}: {}", crate::postgres::message(.source))]
    Postgres {
        location: String,
        #[source]
        source: ::postgres::Error,
    },
    /// A PostgreSQL database without the honeyport tables (a reader does not create them).
    #[error("no honeyport schema in {0} (run the sensor or `import` with this --store first)")]
    NoSchema(String),
    #[error("store holds an event that does not decode (id {id}): {error}")]
    Decode { id: i64, error: String },
    #[error("event for session {0:?}: the id is not a number")]
    BadSession(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store: `honeyport.db` in this data dir.
    Sqlite(PathBuf),
    /// A PostgreSQL database: a `postgres://` or `postgresql://` URL, as given (it may hold a
    /// password: print [`Location::display`], never the URL; `{:?}` hides it too).
    Postgres(String),
}

impl Location {
    /// `--store` as given: `sqlite:DIR`, a `postgres://` / `postgresql://` URL, or a plain
    /// path (a data dir).
    pub fn parse(s: &str) -> Result<Location> {
        if let Some(dir) = s.strip_prefix("sqlite:") {
            return Ok(Location::Sqlite(PathBuf::from(dir)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // A malformed URL fails here, before anything connects.
            s.parse::<::postgres::Config>().map_err(|e| {
                StoreError::Other(format!("store {}: {e}", crate::postgres::redact(s)))
            })?;
            return Ok(Location::Postgres(s.to_string()));
        }
        if s.contains("://") {
            return Err(StoreError::Other(format!(
                "store {:?}: unknown scheme (use a data dir, sqlite:DIR or postgres://...)",
                crate::postgres::redact(s)
            )));
        }
        Ok(Location::Sqlite(PathBuf::from(s)))
    }

    /// What to print for this store (never a password).
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(d) => d.join(DB_FILE).display().to_string(),
            Location::Postgres(url) => crate::postgres::redact(url),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(d) => f.debug_tuple("Sqlite").field(d).finish(),
            Location::Postgres(_) => f.debug_tuple("Postgres").field(&self.display()).finish(),
        }
    }
}

/// Options for a writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterOptions {
    /// SQLite `synchronous = FULL` (each commit survives power loss, not just a crash);
    /// PostgreSQL: `synchronous_commit = on` for the writer (else the server's setting).
    pub synchronous_full: bool,
    /// A bulk writer (`import`, `bench-data`): a larger cache.
    pub bulk: bool,
}

/// Opens a store for writing, creating it (and its schema) if needed, migrating an older one.
pub fn open_writer(loc: &Location, opts: WriterOptions) -> Result<Box<dyn Writer>> {
    match loc {
        Location::Sqlite(dir) => Ok(Box::new(sqlite::SqliteWriter::open_dir(dir, opts)?)),
        Location::Postgres(url) => Ok(Box::new(crate::postgres::PgWriter::open(url, opts)?)),
    }
}

/// Opens a store for reading. A missing store is [`StoreError::Missing`] (a PostgreSQL
/// database without the tables: [`StoreError::NoSchema`]; a reader never creates them); a
/// SQLite store written before the rollups existed gets them computed first.
pub fn open_reader(loc: &Location) -> Result<Box<dyn Reader>> {
    match loc {
        Location::Sqlite(dir) => Ok(Box::new(sqlite::SqliteReader::open_dir(dir)?)),
        Location::Postgres(url) => Ok(Box::new(crate::postgres::PgReader::open(url)?)),
    }
}

/// Opens the spool of a sensor's local SQLite store (a connection of its own, beside the
/// writer's). The store must exist (the sensor creates it); a PostgreSQL store is no spool.
pub fn open_spool(loc: &Location) -> Result<Box<dyn Spool>> {
    match loc {
        Location::Sqlite(dir) => Ok(Box::new(sqlite::spool::SqliteSpool::open_dir(dir)?)),
        Location::Postgres(_) => Err(StoreError::Other(format!(
            "store {}: a PostgreSQL store is not a spool (the spool is a sensor's local SQLite store)",
            loc.display()
        ))),
    }
}

/// Opens a store for loading what collectors consume (creating its schema, like
/// [`open_writer`]): PostgreSQL for a fleet, SQLite for a small one.
pub fn open_loader(loc: &Location) -> Result<Box<dyn Loader>> {
    match loc {
        Location::Sqlite(dir) => Ok(Box::new(sqlite::SqliteWriter::open_dir(
            dir,
            WriterOptions::default(),
        )?)),
        Location::Postgres(url) => Ok(Box::new(crate::postgres::PgWriter::open(
            url,
            WriterOptions::default(),
        )?)),
    }
}

/// Whom a query is about: every sensor together (each address counted once), or one sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    Fleet,
    Sensor(&'a str),
}

impl<'a> Scope<'a> {
    /// `--sensor` as given (none: the fleet).
    pub fn of(sensor: Option<&'a str>) -> Scope<'a> {
        match sensor {
            Some(s) => Scope::Sensor(s),
            None => Scope::Fleet,
        }
    }
    pub fn sensor(self) -> Option<&'a str> {
        match self {
            Scope::Fleet => None,
            Scope::Sensor(s) => Some(s),
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
    /// The window's first and one-past-last microsecond.
    pub fn micros(self) -> (i64, i64) {
        (self.since * DAY_MICROS, (self.until + 1) * DAY_MICROS)
    }
}

/// One port's counts: on a day ([`Reader::port_days`], [`Reader::ports_on_day`]) or over a
/// window, with sources and targets distinct over the whole window
/// ([`Reader::ports_in_window`], [`Reader::port_in_window`]; `day` is then the window's last).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounts {
    pub day: i64,
    pub port: u16,
    pub records: i64,
    pub tcp: i64,
    pub udp: i64,
    pub sources: i64,
    pub targets: i64,
}

/// A source address over a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCount {
    pub ip: IpAddr,
    pub records: i64,
    /// Distinct ports it reached.
    pub ports: i64,
    /// Days it was seen on.
    pub days: i64,
    /// Its busiest port (ties: the lower).
    pub top_port: u16,
}

/// A session's summary row: who, where, what it spoke, what it did, how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// 16 hex digits.
    pub session: String,
    pub sensor: String,
    /// Microseconds since the epoch.
    pub start: i64,
    pub transport: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub listener: String,
    pub persona: String,
    pub served: Option<String>,
    pub tls: bool,
    pub protocol: Option<String>,
    pub client_first: Option<bool>,
    pub after_banner: Option<String>,
    pub client_version: Option<String>,
    pub hassh: Option<String>,
    pub ja3: Option<String>,
    pub ja4: Option<String>,
    /// The client's TCP SYN signature (`tcp.syn`'s `signature`).
    pub syn: Option<String>,
    pub logins: i64,
    pub logins_ok: i64,
    pub commands: i64,
    pub tags: Vec<String>,
    /// The first client name the tagger found (`client.name`).
    pub client: Option<String>,
    pub end: Option<i64>,
    pub bytes_in: Option<i64>,
    pub bytes_out: Option<i64>,
    pub reason: Option<String>,
}

/// Filters for [`Reader::events`].
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub port: Option<u16>,
    pub src: Option<IpAddr>,
    pub session: Option<String>,
    /// Only these event ids (`session.input`, ...); empty: all.
    pub eventids: Vec<&'static str>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub limit: Option<usize>,
}

/// Filters for [`Reader::sessions`].
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub port: Option<u16>,
    pub src: Option<IpAddr>,
    pub protocol: Option<String>,
    /// Sessions whose tags include this one.
    pub tag: Option<String>,
    /// Sessions whose client name contains this (ASCII case-insensitive).
    pub client: Option<String>,
    /// Only sessions with at least one login attempt.
    pub logins: bool,
    /// Only sessions that sent at least one byte.
    pub sent_bytes: bool,
}

/// One imported firewall record (a logged packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirewallRecord {
    pub ts_micros: i64,
    pub udp: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spt: u16,
    pub dpt: u16,
}

/// Who a stored session is: what an importer compares to tell a re-import from an id
/// collision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub sensor: String,
    pub start: i64,
    pub src: String,
    pub src_port: u16,
}

/// A sensor run's totals, written when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub sent: u64,
    pub written: u64,
    pub dropped: u64,
    pub stalls: u64,
}

/// The write side. One writer per store at a time; each call is one transaction.
pub trait Writer: Send {
    /// Writes a batch of events: their rows, their sessions' summary rows and the rollups.
    /// All or nothing. A session written again (a re-import) adds no record.
    fn write(&mut self, batch: &[Event]) -> Result<()>;
    /// Writes firewall records and counts the new ones in the rollups under `sensor`;
    /// returns how many were new (the rest were in the store already).
    fn write_firewall(&mut self, sensor: &str, recs: &[FirewallRecord]) -> Result<u64>;
    /// Who session `id` is, if the store has it.
    fn ident(&mut self, id: u64) -> Result<Option<Ident>>;
    /// Records that a sensor run started.
    fn begin_run(&mut self, sensor: &str) -> Result<()>;
    /// Records the run's totals when it stops.
    fn end_run(&mut self, totals: RunTotals) -> Result<()>;
    /// Where this store is, for messages.
    fn location(&self) -> String;
}

/// The read side: typed rows, no SQL above it.
pub trait Reader {
    /// The first and the latest day with records.
    fn day_range(&self, scope: Scope<'_>) -> Result<Option<(i64, i64)>>;
    /// Every port with records on `day`.
    fn ports_on_day(&self, scope: Scope<'_>, day: i64) -> Result<Vec<PortCounts>>;
    /// Every port with records in `w`, counts summed and addresses distinct over `w`.
    fn ports_in_window(&self, scope: Scope<'_>, w: Window) -> Result<Vec<PortCounts>>;
    /// One port over `w` (zeros when it has nothing).
    fn port_in_window(&self, scope: Scope<'_>, port: u16, w: Window) -> Result<PortCounts>;
    /// A port's days in `from..=until` that have records, in day order.
    fn port_days(
        &self,
        scope: Scope<'_>,
        port: u16,
        from: i64,
        until: i64,
    ) -> Result<Vec<PortCounts>>;
    /// The top `n` items of `kind` over `w` (one port or all), largest first, ties by item
    /// bytes.
    fn items(
        &self,
        scope: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        n: usize,
    ) -> Result<Vec<(Vec<u8>, i64)>>;
    /// The total count of `kind` over `w` (one port or all).
    fn item_total(&self, scope: Scope<'_>, w: Window, port: Option<u16>, kind: &str)
        -> Result<i64>;
    /// The counts of these items of `kind` (0 for those never seen), in order.
    fn item_counts(
        &self,
        scope: Scope<'_>,
        w: Window,
        port: Option<u16>,
        kind: &str,
        items: &[Vec<u8>],
    ) -> Result<Vec<i64>>;
    /// The top `n` sources by records over `w` (one port or all), ties by address bytes.
    fn sources(
        &self,
        scope: Scope<'_>,
        w: Window,
        port: Option<u16>,
        n: usize,
    ) -> Result<Vec<SourceCount>>;
    /// Sessions that started in `w` matching `f`, newest first, at most `n`.
    fn sessions(
        &self,
        scope: Scope<'_>,
        w: Window,
        f: &SessionFilter,
        n: usize,
    ) -> Result<Vec<Summary>>;
    /// The first and the last session start on `port`, ever.
    fn port_seen(&self, scope: Scope<'_>, port: u16) -> Result<(Option<i64>, Option<i64>)>;
    /// One session's summary row.
    fn summary(&self, session: &str) -> Result<Option<Summary>>;
    /// Events matching the filter, newest first (or oldest first).
    fn events(&self, f: &EventFilter) -> Result<Vec<Event>>;
    /// Every sensor that sent a heartbeat, by name, with its latest heartbeat and its event
    /// counters (kept by writing and loading, not counted from the events).
    fn sensors(&self) -> Result<Vec<SensorHealth>>;
    /// How many messages collectors parked.
    fn parked(&self) -> Result<u64>;
    /// Where this store is, for messages.
    fn location(&self) -> String;
}

/// [`Reader::sources`]'s answer, put together the same way by both backends: the top
/// addresses (`(ip key, records, ports, days)`, in order), then each one's busiest port (ties:
/// the lower), known at once when the query was for one port, else from per-port sums
/// ([`Sources::add`]) of the listed addresses ([`Sources::pending`]).
pub(crate) struct Sources {
    found: Vec<(Vec<u8>, i64, i64, i64)>,
    busiest: std::collections::HashMap<Vec<u8>, (i64, u16)>,
    one_port: bool,
}

impl Sources {
    pub(crate) fn new(found: Vec<(Vec<u8>, i64, i64, i64)>, port: Option<u16>) -> Sources {
        let busiest = match port {
            Some(p) => found.iter().map(|f| (f.0.clone(), (f.1, p))).collect(),
            None => Default::default(),
        };
        Sources {
            found,
            busiest,
            one_port: port.is_some(),
        }
    }

    /// The addresses whose per-port sums are still needed (none for a one-port query).
    pub(crate) fn pending(&self) -> &[(Vec<u8>, i64, i64, i64)] {
        if self.one_port {
            &[]
        } else {
            &self.found
        }
    }

    /// One address's records on one port.
    pub(crate) fn add(&mut self, ip: Vec<u8>, port: u16, n: i64) {
        let e = self.busiest.entry(ip).or_insert((n, port));
        if n > e.0 || (n == e.0 && port < e.1) {
            *e = (n, port);
        }
    }

    pub(crate) fn rows(self) -> Vec<SourceCount> {
        let busiest = self.busiest;
        self.found
            .into_iter()
            .filter_map(|(ip, records, ports, days)| {
                Some(SourceCount {
                    ip: ip_of_key(&ip)?,
                    records,
                    ports,
                    days,
                    top_port: busiest.get(&ip).map_or(0, |b| b.1),
                })
            })
            .collect()
    }
}
