//! The fleet's storage side: event identities, the sensor's local spool, idempotent loading
//! into a central store, and sensor health.
//!
//! - Every event a sensor stores gets a durable [`EventId`] `(sensor, run, seq)`, assigned by
//!   the store of record inside the transaction that stores it: `run` is a random 64-bit
//!   number drawn when the sensor run starts ([`crate::Writer::begin_run`]), `seq` counts that
//!   run's events from 1 in write order. A store written before identities existed gets its
//!   old events a legacy identity on migration (run 0, seq = their row id).
//! - The local SQLite store is the spool ([`Spool`]): a forwarder reads events in storage order
//!   after its cursor (`pos`, the local row id), publishes them, and moves the persisted cursor
//!   only after the bus acknowledged them.
//! - A collector hands what it consumed to a [`Loader`] (either backend): loading is
//!   idempotent, keyed by the identity, so a redelivered or republished event adds nothing.
//! - Heartbeats ([`Heartbeat`]) are kept per sensor and read back as [`SensorHealth`].

use honeyport_event::Event;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Largest parked message body kept, bytes (the rest is cut off): a foreign publisher must
/// not fill the collector's disk through the parking lot.
pub const MAX_PARKED_BODY: usize = 64 * 1024;

/// A random run number: never 0 (the legacy run of events stored before identities).
pub(crate) fn draw_run() -> u64 {
    loop {
        let r: u64 = rand::random();
        if r != 0 {
            return r;
        }
    }
}

/// A writer's identity counter: the run it stamps and the next seq.
///
/// [`crate::Writer::begin_run`] draws a new run. A writer that never calls it (imports,
/// `bench-data`, tests) stamps a run drawn when it was opened: each open of a store for
/// writing is a run of its own, seq from 1, so two imports never collide (that run has no
/// `runs` row: it is not a sensor run).
///
/// A batch whose transaction surely rolled back (SQLite) leaves the counter where it was,
/// so seqs stay dense. A batch whose outcome is unknown (PostgreSQL, a lost `COMMIT` reply)
/// keeps its identities for its retry ([`Ids::assign`] given the same batch again), so the
/// retry is deduplicated by identity; any other batch after it gets fresh seqs (the unknown
/// batch's are then skipped, a gap, never reused).
#[derive(Debug)]
pub(crate) struct Ids {
    pub run: u64,
    next: u64,
    /// The last failed batch whose outcome is unknown, and its first seq.
    unsure: Option<(Vec<Event>, u64)>,
}

impl Ids {
    pub fn new() -> Ids {
        Ids {
            run: draw_run(),
            next: 1,
            unsure: None,
        }
    }

    /// Starts a new run; returns it.
    pub fn begin(&mut self) -> u64 {
        *self = Ids::new();
        self.run
    }

    /// The identities of `batch`: each event's sensor, this run, consecutive seqs.
    pub fn assign<'a>(&mut self, batch: &'a [Event]) -> Vec<(EventId, &'a Event)> {
        let first = match &self.unsure {
            Some((b, first)) if b.as_slice() == batch => *first,
            _ => self.next,
        };
        batch
            .iter()
            .zip(first..)
            .map(|(ev, seq)| {
                let id = EventId {
                    sensor: ev.sensor.clone(),
                    run: self.run,
                    seq,
                };
                (id, ev)
            })
            .collect()
    }

    /// After the batch given to [`Ids::assign`] was stored (`ok`), or failed; `unsure`: a
    /// failure that may have been committed anyway.
    pub fn done(&mut self, batch: &[Event], ok: bool, unsure: bool) {
        let first = match &self.unsure {
            Some((b, first)) if b.as_slice() == batch => *first,
            _ => self.next,
        };
        let end = first + batch.len() as u64;
        if ok {
            self.next = self.next.max(end);
            self.unsure = None;
        } else if unsure {
            self.next = self.next.max(end);
            if self
                .unsure
                .as_ref()
                .is_none_or(|(b, _)| b.as_slice() != batch)
            {
                self.unsure = Some((batch.to_vec(), first));
            }
        }
    }
}

/// An event's durable identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId {
    pub sensor: String,
    pub run: u64,
    pub seq: u64,
}

impl EventId {
    /// The `Nats-Msg-Id` header value: `sensor.run.seq` (run in 16 hex digits, seq decimal).
    pub fn msg_id(&self) -> String {
        format!("{}.{:016x}.{}", self.sensor, self.run, self.seq)
    }

    /// Parses [`EventId::msg_id`]'s form back (the sensor name may itself hold dots: the last
    /// two fields are run and seq).
    pub fn parse_msg_id(s: &str) -> Option<EventId> {
        let (rest, seq) = s.rsplit_once('.')?;
        let (sensor, run) = rest.rsplit_once('.')?;
        if sensor.is_empty() || run.len() != 16 {
            return None;
        }
        Some(EventId {
            sensor: sensor.to_string(),
            run: u64::from_str_radix(run, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// One spooled event: where it is in the local store, who it is, and its stored JSON (the
/// bytes to publish, unchanged).
#[derive(Clone, Debug, PartialEq)]
pub struct Spooled {
    /// The local row id: storage order, what a cursor points at.
    pub pos: i64,
    pub id: EventId,
    /// Microseconds since the epoch (the event's timestamp).
    pub ts: i64,
    /// The event as stored (`Event`'s JSON).
    pub json: String,
}

/// How far behind a cursor is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// Events after the cursor.
    pub events: u64,
    /// The oldest of them (event timestamp, microseconds), if any.
    pub oldest_micros: Option<i64>,
    /// The newest stored position.
    pub head: i64,
}

/// The sensor side: the local store read as a spool. SQLite only (the store of record on a
/// sensor); it opens its own connection beside the writer's (WAL: readers never block it).
pub trait Spool: Send {
    /// Up to `limit` events after position `after`, in storage order.
    fn after(&mut self, after: i64, limit: usize) -> Result<Vec<Spooled>>;
    /// The persisted cursor named `name` (0 when never set).
    fn cursor(&mut self, name: &str) -> Result<i64>;
    /// Persists cursor `name` at `pos` (durably: it survives a crash once this returns).
    fn set_cursor(&mut self, name: &str, pos: i64) -> Result<()>;
    /// What is after position `after`.
    fn backlog(&mut self, after: i64) -> Result<Backlog>;
}

/// What one [`Loader::load`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Events stored for the first time.
    pub new: u64,
    /// Events the store already had (by identity): nothing was added for them.
    pub duplicate: u64,
}

/// A message a collector could not load: kept, counted, never retried forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// The subject it came on.
    pub subject: String,
    /// Why it was parked.
    pub reason: String,
    /// The message's bytes (capped by the caller).
    pub body: Vec<u8>,
    /// When the collector received it (microseconds).
    pub received_micros: i64,
}

/// A sensor's heartbeat, as sent (every minute or so) and as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub sensor: String,
    /// honeyport's version on the sensor.
    pub version: String,
    /// The run it comes from.
    pub run: u64,
    /// The sensor's clock when it sent this (microseconds).
    pub sent_micros: i64,
    /// Events stored locally not yet acknowledged by the bus.
    pub backlog: u64,
    /// Age of the oldest of them, seconds (0 when none).
    pub oldest_unacked_secs: f64,
    /// Events stored per minute, over the last minute.
    pub events_per_minute: f64,
    /// Events the sensor ever dropped (its pipeline's count), this run.
    pub dropped: u64,
}

/// A sensor's health as the central store knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorHealth {
    pub sensor: String,
    /// The last heartbeat, with `received_micros` the server's (bus) time it arrived.
    pub last: Heartbeat,
    pub received_micros: i64,
    /// `sent_micros - received_micros` of the last heartbeat: the sensor's clock offset plus
    /// the transit time (kept and reported, never used to reorder).
    pub clock_offset_micros: i64,
    /// The newest event loaded from this sensor (event timestamp), if any.
    pub last_event_micros: Option<i64>,
    /// Events loaded from this sensor.
    pub events: u64,
}

/// A sensor's health from its stored heartbeat and counters (both backends' readers).
pub(crate) fn health(
    last: Heartbeat,
    received_micros: i64,
    events: Option<i64>,
    last_event_micros: Option<i64>,
) -> SensorHealth {
    SensorHealth {
        sensor: last.sensor.clone(),
        clock_offset_micros: last.sent_micros - received_micros,
        received_micros,
        last,
        last_event_micros,
        events: events.unwrap_or(0) as u64,
    }
}

/// The collector side: loads consumed events into a store (either backend) idempotently.
pub trait Loader: Send {
    /// Stores the events that are new by identity, with their summaries and rollups, in one
    /// transaction; events whose identity the store already has add nothing. Returns once
    /// committed (the caller acknowledges only then).
    fn load(&mut self, batch: &[(EventId, Event)]) -> Result<Loaded>;
    /// Keeps the latest heartbeat of its sensor (`received_micros`: the bus's time).
    fn heartbeat(&mut self, hb: &Heartbeat, received_micros: i64) -> Result<()>;
    /// Keeps a message that could not be loaded.
    fn park(&mut self, p: &Parked) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sensor: &str, n: u64) -> Event {
        Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: honeyport_event::Timestamp::from_unix_micros(n as i64).unwrap(),
            sensor: sensor.into(),
            session: honeyport_event::SessionId::from_u64(n),
            transport: honeyport_event::Transport::Tcp,
            src_ip: "198.51.100.1".parse().unwrap(),
            src_port: 1,
            dst_ip: "192.0.2.1".parse().unwrap(),
            dst_port: 22,
            kind: honeyport_event::EventKind::Connect {
                listener: "l".into(),
                persona: "p".into(),
                tls: false,
            },
        }
    }

    fn seqs(v: &[(EventId, &Event)]) -> Vec<u64> {
        v.iter().map(|x| x.0.seq).collect()
    }

    #[test]
    fn a_retry_of_an_unsure_batch_gets_its_identities_again() {
        let mut ids = Ids::new();
        let run = ids.run;
        assert_ne!(run, 0);
        let a = vec![ev("s", 1), ev("s", 2)];
        let b = vec![ev("s", 3)];
        assert_eq!(seqs(&ids.assign(&a)), [1, 2]);
        ids.done(&a, true, false);
        // Rolled back for sure: the same seqs for whatever comes next.
        assert_eq!(seqs(&ids.assign(&b)), [3]);
        ids.done(&b, false, false);
        assert_eq!(seqs(&ids.assign(&b)), [3]);
        // Unsure: the retry gets the same seqs, even after failing again...
        ids.done(&b, false, true);
        assert_eq!(seqs(&ids.assign(&b)), [3]);
        ids.done(&b, false, true);
        assert_eq!(seqs(&ids.assign(&b)), [3]);
        ids.done(&b, true, false);
        // ...and a batch after it new ones.
        assert_eq!(seqs(&ids.assign(&a)), [4, 5]);
        ids.done(&a, false, true);
        assert_eq!(
            seqs(&ids.assign(&b)),
            [6],
            "another batch skips the unsure one's"
        );
        assert_eq!(ids.assign(&b)[0].0.sensor, "s");
        assert_eq!(ids.assign(&b)[0].0.run, run);
        assert_ne!(ids.begin(), run);
        assert_eq!(seqs(&ids.assign(&b)), [1]);
    }

    #[test]
    fn msg_id_round_trips_with_dots_in_the_sensor_name() {
        let id = EventId {
            sensor: "eu.fra-1".into(),
            run: 0xdead_beef,
            seq: 42,
        };
        assert_eq!(id.msg_id(), "eu.fra-1.00000000deadbeef.42");
        assert_eq!(EventId::parse_msg_id(&id.msg_id()), Some(id));
        assert_eq!(EventId::parse_msg_id("s.zz.1"), None);
        assert_eq!(EventId::parse_msg_id(".00000000deadbeef.1"), None);
        assert_eq!(EventId::parse_msg_id("s.00000000deadbeef.x"), None);
    }
}
