//! The fleet: sensors publish what they store to NATS JetStream; `honeyport collect` loads it
//! into a central store.
//!
//! ```text
//! sensor: pipeline -> local SQLite store (the store of record, read as a Spool)
//!           forwarder (own task): Spool after cursor -> publish in order, Nats-Msg-Id
//!             -> acks -> cursor moves (persisted) -> every N s a heartbeat
//! bus:    stream HONEYPORT: honeyport.events.<sensor>, honeyport.heartbeat.<sensor>
//!           (file storage, discard new, work-queue retention, duplicate window)
//! collect: durable pull consumer -> batch -> parse/park -> Loader::load (COMMIT) -> ack
//! ```
//!
//! # Layout
//!
//! - [`bus`]: connecting (URLs, user+password, token, NKey seed, `.creds`, TLS), clear errors
//! - [`stream`]: the stream's subjects and settings, created or checked by the collector, with
//!   the server's echo compared field by field
//! - [`forward`]: the sensor's forwarder (pipelined publishes, cursor after acks, back-off,
//!   heartbeats, bounded final flush)
//! - [`heartbeat`]: what a heartbeat says and how it is computed
//! - [`collect`]: `honeyport collect`, the consumer side
//!
//! Each has its config as raw serde types (`deny_unknown_fields`) -> `validate` (pure, every
//! problem with its path) -> built, so the sinks layer can embed [`forward::ForwardRaw`] as
//! its `nats` sink type.

pub mod bus;
pub mod collect;
pub mod forward;
pub mod heartbeat;
pub mod stream;

use std::time::Duration;

use crate::config::units::NumOrStr;
use crate::config::Problems;

/// Reads an optional duration field at `path`: `default` when absent; a problem when it does
/// not parse or is zero and `nonzero`.
pub(crate) fn duration_field(
    v: &Option<NumOrStr>,
    path: &str,
    default: Duration,
    nonzero: bool,
    p: &mut Problems<'_>,
) -> Duration {
    match v.as_ref().map(NumOrStr::duration) {
        None => default,
        Some(Ok(d)) if nonzero && d.is_zero() => {
            p.at(path, "must be more than 0");
            default
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.at(path, e);
            default
        }
    }
}

/// Reads an optional count at `path` that must lie in `range`.
pub(crate) fn count_field(
    v: Option<usize>,
    path: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    p: &mut Problems<'_>,
) -> usize {
    match v {
        None => default,
        Some(n) if range.contains(&n) => n,
        Some(_) => {
            p.at(
                path,
                format!("must be {} to {}", range.start(), range.end()),
            );
            default
        }
    }
}

/// Capped exponential back-off: `first`, doubling, at most `max`; `reset` after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first.min(max),
        }
    }

    /// The delay to wait now; the next one doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

/// Microseconds since the epoch, now.
pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use honeyport_event::{Event, EventKind, SessionId, Timestamp, Transport};

    /// A session.connect event from sensor `s1`, `n` microseconds after the epoch.
    pub(crate) fn event(n: i64) -> Event {
        Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(n).unwrap_or_else(Timestamp::now),
            sensor: "s1".into(),
            session: SessionId(n.to_string()),
            transport: Transport::Tcp,
            src_ip: [192, 0, 2, 1].into(),
            src_port: 40000,
            dst_ip: [127, 0, 0, 1].into(),
            dst_port: 23,
            kind: EventKind::Connect {
                listener: "telnet".into(),
                persona: "telnet".into(),
                tls: false,
            },
        }
    }
}
