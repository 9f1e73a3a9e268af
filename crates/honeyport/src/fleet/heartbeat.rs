//! Heartbeats: what a sensor says about itself every N seconds on
//! `honeyport.heartbeat.<sensor>`.
//!
//! The wire form is [`HeartbeatMsg`]: the store's [`Heartbeat`] (what the central store keeps)
//! with the forwarder's own counters beside it (`forwarder`: published, acked, retries, whether
//! the stream is full, the last error), which the collector logs but the store does not keep
//! yet. A reader that knows only [`Heartbeat`] parses the same JSON (unknown fields ignored).

use honeyport_store::{Backlog, Heartbeat};
use serde::{Deserialize, Serialize};

/// A heartbeat as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatMsg {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    #[serde(default)]
    pub forwarder: Option<ForwarderHealth>,
}

/// The forwarder's counters, as sent in a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwarderHealth {
    pub published: u64,
    pub acked: u64,
    pub retries: u64,
    /// The last publish was refused because the stream is full (`discard = new`).
    pub stream_full: bool,
    pub last_error: Option<String>,
}

/// Counts events per minute between heartbeats from a running total (the pipeline's
/// `written`, or the spool's head position).
#[derive(Debug, Default)]
pub struct Rate {
    last: Option<(u64, i64)>,
}

impl Rate {
    /// Events per minute since the previous call, given the total now and the time (micros).
    /// 0 on the first call.
    pub fn per_minute(&mut self, total: u64, now_micros: i64) -> f64 {
        let rate = match self.last {
            Some((n, t)) if now_micros > t => {
                total.saturating_sub(n) as f64 * 60e6 / (now_micros - t) as f64
            }
            _ => 0.0,
        };
        self.last = Some((total, now_micros));
        rate
    }
}

/// The inputs of one heartbeat.
pub struct Inputs<'a> {
    pub sensor: &'a str,
    pub run: u64,
    pub now_micros: i64,
    pub backlog: Backlog,
    pub events_per_minute: f64,
    pub dropped: u64,
}

/// Builds the heartbeat.
pub fn build(i: Inputs<'_>) -> Heartbeat {
    let oldest_unacked_secs = match i.backlog.oldest_micros {
        Some(t) if i.backlog.events > 0 => (i.now_micros - t).max(0) as f64 / 1e6,
        _ => 0.0,
    };
    Heartbeat {
        sensor: i.sensor.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        run: i.run,
        sent_micros: i.now_micros,
        backlog: i.backlog.events,
        oldest_unacked_secs,
        events_per_minute: i.events_per_minute,
        dropped: i.dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_age() {
        let mut r = Rate::default();
        assert_eq!(r.per_minute(10, 1_000_000), 0.0);
        assert_eq!(r.per_minute(40, 31_000_000), 60.0);
        let hb = build(Inputs {
            sensor: "s1",
            run: 7,
            now_micros: 10_000_000,
            backlog: Backlog {
                events: 3,
                oldest_micros: Some(7_500_000),
                head: 9,
            },
            events_per_minute: 1.5,
            dropped: 0,
        });
        assert_eq!(hb.oldest_unacked_secs, 2.5);
        assert_eq!(hb.backlog, 3);
        let msg = HeartbeatMsg {
            heartbeat: hb.clone(),
            forwarder: Some(ForwarderHealth {
                stream_full: true,
                ..Default::default()
            }),
        };
        let json = serde_json::to_string(&msg).expect("json");
        // The store's type reads the wire form as it is.
        let plain: Heartbeat = serde_json::from_str(&json).expect("a Heartbeat");
        assert_eq!(plain, hb);
        let back: HeartbeatMsg = serde_json::from_str(&json).expect("back");
        assert_eq!(back, msg);
    }
}
