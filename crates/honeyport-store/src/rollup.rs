//! Rollups: per UTC day, port and sensor, what the Internet Storm Center counts: records
//! (sessions, plus imported firewall records), sources (distinct source IPs) and targets
//! (distinct destination IPs), with records split by transport; and per day and port, what
//! the sessions did (items: protocols, clients, credentials, commands, ...).
//!
//! Each backend keeps them up to date as each session (or imported record) is written, in
//! the same transaction, so reports read a table of (days x ports) rows instead of every
//! session. The distinct counts are **exact**: each (day, sensor, port) has its set of source
//! and of target addresses (4 or 16 bytes per address), and a count goes up only when an
//! address is new to its set. Every record is counted twice: once under its sensor and once
//! fleet-wide, whose sets are separate, so an address seen by two sensors is one source
//! fleet-wide.
//!
//! This module is the backend-neutral half: what to count ([`Pending`]); the backends write
//! it (`flush`).

use std::collections::HashMap;
use std::net::IpAddr;

/// The rollup key of "every sensor together".
pub const FLEET: &str = "";

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day number of a timestamp in microseconds since the epoch.
pub fn day_of(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(DAY_MICROS)
}

/// An address as stored in the sets: 4 bytes for IPv4 (and IPv4-mapped IPv6), 16 for IPv6.
pub fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    }
}

/// The address an [`ip_key`] stands for.
pub fn ip_of_key(k: &[u8]) -> Option<IpAddr> {
    match k.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(k).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(k).ok()?)),
        _ => None,
    }
}

/// One record to count: a session's start, or an imported firewall line.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ts_micros: i64,
    pub sensor: &'a str,
    pub udp: bool,
    pub port: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// What a port's sessions did, counted per day for `explain`: the kinds of items.
pub mod kind {
    /// What the client spoke (`session.classified`), `silent` if nothing.
    pub const PROTOCOL: &str = "protocol";
    /// A client software name (`client.name`).
    pub const CLIENT: &str = "client";
    /// A behaviour or exploit tag.
    pub const TAG: &str = "tag";
    /// Which persona served the session and how the client answered its greeting:
    /// `persona/after_banner` (`exim/silent`, `busybox/same`).
    pub const SERVED: &str = "served";
    pub const HASSH: &str = "hassh";
    pub const JA4: &str = "ja4";
    /// The SSH client's version line.
    pub const VERSION: &str = "version";
    pub const USER_AGENT: &str = "user_agent";
    /// A login attempt: username, a NUL byte, password.
    pub const CREDENTIAL: &str = "credential";
    /// A login attempt that was let in (same form).
    pub const CREDENTIAL_OK: &str = "credential_ok";
    pub const USERNAME: &str = "username";
    pub const PASSWORD: &str = "password";
    pub const COMMAND: &str = "command";
    /// An HTTP request: method, a space, target.
    pub const REQUEST: &str = "request";
    /// A URL a command asked to download.
    pub const DOWNLOAD: &str = "download";
}

/// Longest item kept; longer ones are cut (a 100 KB "command" is one item, not a new one per
/// byte).
pub const MAX_ITEM: usize = 256;

/// (day, sensor, port).
pub type PortKey = (i64, String, u16);
/// (day, sensor, port, address).
pub type AddrKey = (i64, String, u16, Vec<u8>);
/// (port, sensor, day, kind, item).
pub type ItemKey = (u16, String, i64, &'static str, Vec<u8>);

/// Rollup counts gathered over a batch and written in one go at its end: one statement (or
/// row) per distinct (day, sensor, port) and per distinct item or address, instead of
/// several per event.
#[derive(Default, Debug)]
pub struct Pending {
    /// (day, sensor, port) -> records, tcp, udp.
    pub ports: HashMap<PortKey, [i64; 3]>,
    /// (day, sensor, port, address) -> records from it.
    pub src: HashMap<AddrKey, i64>,
    pub dst: HashMap<AddrKey, i64>,
    /// (port, sensor, day, kind, item) -> count.
    pub items: HashMap<ItemKey, i64>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.items.is_empty()
    }

    /// Counts one record (under its sensor and fleet-wide).
    pub fn record(&mut self, r: &Record<'_>) {
        let day = day_of(r.ts_micros);
        let (src, dst) = (ip_key(r.src), ip_key(r.dst));
        for sensor in [r.sensor, FLEET] {
            let c = self
                .ports
                .entry((day, sensor.to_string(), r.port))
                .or_default();
            c[0] += 1;
            c[if r.udp { 2 } else { 1 }] += 1;
            *self
                .src
                .entry((day, sensor.to_string(), r.port, src.clone()))
                .or_default() += 1;
            *self
                .dst
                .entry((day, sensor.to_string(), r.port, dst.clone()))
                .or_default() += 1;
        }
    }

    /// Counts one `item` of `kind` for `port` on the day of `ts_micros`.
    pub fn item(
        &mut self,
        ts_micros: i64,
        sensor: &str,
        port: u16,
        kind: &'static str,
        item: &[u8],
    ) {
        let day = day_of(ts_micros);
        let item = &item[..item.len().min(MAX_ITEM)];
        for s in [sensor, FLEET] {
            *self
                .items
                .entry((port, s.to_string(), day, kind, item.to_vec()))
                .or_default() += 1;
        }
    }

    /// Counts what an event says about its port by itself: login attempts, commands,
    /// requests, downloads, user agents. (What a whole session did is counted at its close,
    /// [`Pending::closed`].)
    pub fn event(&mut self, ev: &honeyport_event::Event) {
        use honeyport_event::EventKind as K;
        let ts = ev.timestamp.unix_micros();
        let (sensor, port) = (ev.sensor.as_str(), ev.dst_port);
        let mut put = |kind: &'static str, it: &[u8]| self.item(ts, sensor, port, kind, it);
        match &ev.kind {
            K::LoginFailed {
                username, password, ..
            }
            | K::LoginSuccess {
                username, password, ..
            } => {
                let mut pair = username.0.clone();
                pair.push(0);
                pair.extend_from_slice(&password.0);
                put(kind::CREDENTIAL, &pair);
                if matches!(ev.kind, K::LoginSuccess { .. }) {
                    put(kind::CREDENTIAL_OK, &pair);
                }
                put(kind::USERNAME, &username.0);
                put(kind::PASSWORD, &password.0);
            }
            K::CommandInput { input, .. } => put(kind::COMMAND, &input.0),
            K::FileDownload { url, .. } => put(kind::DOWNLOAD, &url.0),
            K::HttpRequest {
                method,
                target,
                user_agent,
                ..
            } => {
                let mut req = method.0.clone();
                req.push(b' ');
                req.extend_from_slice(&target.0);
                put(kind::REQUEST, &req);
                if let Some(ua) = user_agent {
                    put(kind::USER_AGENT, &ua.0);
                }
            }
            _ => {}
        }
    }

    /// Counts what a session ended up with, at its close: protocol, client, tags, persona and
    /// outcome, fingerprints.
    pub fn closed(&mut self, ts: i64, sensor: &str, port: u16, s: &crate::fold::Closing) {
        let mut put = |kind: &'static str, it: &[u8]| self.item(ts, sensor, port, kind, it);
        if let Some(p) = &s.protocol {
            put(kind::PROTOCOL, p.as_bytes());
        }
        if let Some(c) = &s.client {
            put(kind::CLIENT, c.as_bytes());
        }
        for t in s
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
        {
            put(kind::TAG, t.as_bytes());
        }
        let outcome = format!(
            "{}/{}",
            s.served,
            s.after_banner.as_deref().unwrap_or("client_first")
        );
        put(kind::SERVED, outcome.as_bytes());
        for (k, v) in [
            (kind::HASSH, &s.hassh),
            (kind::JA4, &s.ja4),
            (kind::VERSION, &s.version),
        ] {
            if let Some(v) = v {
                put(k, v.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_days_including_before_1970() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MICROS - 1), 0);
        assert_eq!(day_of(DAY_MICROS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn addresses_are_4_or_16_bytes_and_mapped_v4_is_v4() {
        let v4: IpAddr = "198.51.100.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_key(v4), ip_key(mapped));
        assert_eq!(ip_key(v6).len(), 16);
        assert_eq!(ip_of_key(&ip_key(v6)), Some(v6));
        assert_eq!(ip_of_key(&[1, 2, 3]), None);
    }
}
