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
