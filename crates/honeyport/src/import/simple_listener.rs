//! The text log of Didier Stevens' `tcp-honeypot.py` (the simple listener ISC handlers use)
//! into sessions.
//!
//! Its lines are `YYYYMMDD-HHMMSS: message`, in the honeypot's local time (`--utc-offset`,
//! default UTC). Messages about a connection start with its id, `LOCAL:PORT-REMOTE:PORT`: the
//! listening socket's address (`0.0.0.0` when it listened on every address, its default) and
//! the client's. These are understood:
//!
//! | message | honeyport event |
//! |---|---|
//! | `ID connection` | `session.connect` (listener and persona `tcp-honeypot`) |
//! | `ID data REPR` | `session.input`: REPR is Python's `repr()` of the bytes read (`b'...'`, Python 2's `'...'`) |
//! | `ID send echo REPR` | `session.output` |
//! | `ID SSH banner VERSION` | `client.version` |
//! | `ID SSH username: U` then `ID SSH password: P` | `login.success` (method `ssh-password`; the honeypot accepts every password) |
//! | `ID closed` | `session.closed`, reason `persona` (the honeypot closes after its reads) |
//! | `ID timeout` | `session.closed`, reason `idle_timeout` |
//! | `ID exception '...'` | `session.closed`, reason `io_error` |
//!
//! A `session.classified` is added before the close, from the bytes the client sent
//! (`send banner` before the first `data` means the server spoke first). Other connection
//! messages (`send banner`, `send reply` and `send NAME reply`, whose bytes are not logged;
//! `splitdata`; `disconnecting`; other `SSH ...` lines; `data` in another output format than
//! repr) and other timestamped lines (`Listening on ...`) are counted as not mapped, by their
//! first words; lines without a timestamp (hex dumps of `-f x`, tracebacks) as "no
//! timestamp". A line with a timestamp that is not a date, a connection id that does not
//! parse, or a REPR that does not decode is malformed.
//!
//! Session ids: the connection's second (high 32 bits) and 32 bits of SHA-256 over the
//! sensor, the local and remote address and the connection's timestamp as logged
//! ([`super::import_id`]). The sensor is `--sensor`, else `tcp-honeypot`. Connections
//! still open at the end of the input are closed at their last event (reason `shutdown`).

use std::net::SocketAddr;

use chrono::{FixedOffset, NaiveDateTime, TimeZone as _};
use honeyport_event::{EndReason, EventKind, Payload};

use super::{import_id, in_range, python_repr, Buffer, Importer, Limits, Open, Options};
use super::{Position, Store, Summary};

/// Bytes of a connection's input kept for its classification.
const FIRST: usize = 4096;

/// Reads `YYYYMMDD-HHMMSS: ` at the start of a line: the time and the rest. `Err` when the
/// prefix has the shape but is not a date.
pub fn timestamp(line: &str, offset: FixedOffset) -> Option<Result<(i64, &str), ()>> {
    let b = line.as_bytes();
    if b.len() < 17
        || b[8] != b'-'
        || &b[15..17] != b": "
        || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
    {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(&line[..15], "%Y%m%d-%H%M%S")
        .ok()
        .and_then(|t| offset.from_local_datetime(&t).single())
        .and_then(|t| in_range(t.timestamp_micros()));
    Some(t.map(|t| (t, &line[17..])).ok_or(()))
}

/// Reads a connection id `LOCAL:PORT-REMOTE:PORT`.
pub fn connection_id(s: &str) -> Option<(SocketAddr, SocketAddr)> {
    let (a, b) = s.split_once('-')?;
    let side = |x: &str| -> Option<SocketAddr> {
        let (ip, port) = x.rsplit_once(':')?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    Some((side(a)?, side(b)?))
}

struct Conn {
    open: Open,
    first: Vec<u8>,
    bytes_in: u64,
    bytes_out: u64,
    /// A banner was sent before the client's first data.
    server_first: bool,
    user: Option<Vec<u8>>,
}

impl Conn {
    fn close(
        mut self,
        ts: i64,
        reason: EndReason,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let ts = ts.max(self.open.last);
        self.open.push_final(
            ts,
            crate::classify::session(&self.first, self.bytes_in, self.server_first, None),
        );
        let duration = (ts - self.open.start) as f64 / 1e6;
        self.open.push_final(
            ts,
            EventKind::Closed {
                duration,
                bytes_in: self.bytes_in,
                bytes_out: self.bytes_out,
                reason,
                limit: None,
            },
        );
        self.open.write(store, sum)
    }
}

pub struct SimpleListener {
    sensor: String,
    offset: FixedOffset,
    limits: Limits,
    open: Buffer<String, Conn>,
}

impl SimpleListener {
    pub fn new(opts: &Options) -> SimpleListener {
        SimpleListener {
            sensor: opts.sensor.clone().unwrap_or_else(|| "tcp-honeypot".into()),
            offset: opts.utc_offset,
            limits: opts.limits,
            open: Buffer::new(opts.limits.max_sessions),
        }
    }

    fn message(
        &mut self,
        ts: i64,
        stamp: &str,
        msg: &str,
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let (id, rest) = msg.split_once(' ').unwrap_or((msg, ""));
        let Some((local, remote)) = connection_id(id) else {
            if id.contains('-') && id.contains(':') {
                sum.malformed(pos, format_args!("bad connection id {id:?}"));
            } else {
                let words: Vec<&str> = msg.split_ascii_whitespace().take(2).collect();
                sum.not_mapped(&words.join(" "));
            }
            return Ok(());
        };
        let rest = rest.trim_end();
        if rest == "connection" {
            let sid = import_id(
                ts,
                &[
                    self.sensor.as_bytes(),
                    local.to_string().as_bytes(),
                    remote.to_string().as_bytes(),
                    stamp.as_bytes(),
                ],
            );
            let mut open = Open::new(sid, self.sensor.clone(), remote, local, ts);
            open.push_final(
                ts,
                EventKind::Connect {
                    listener: "tcp-honeypot".into(),
                    persona: "tcp-honeypot".into(),
                    tls: false,
                },
            );
            let conn = Conn {
                open,
                first: Vec::new(),
                bytes_in: 0,
                bytes_out: 0,
                server_first: false,
                user: None,
            };
            if let Some(old) = self.open.remove(&id.to_string()) {
                // The same id again before its end was logged.
                sum.sessions_unclosed += 1;
                let last = old.open.last;
                old.close(last, EndReason::Shutdown, store, sum)?;
            }
            if let Some(old) = self.open.insert(id.to_string(), conn) {
                sum.sessions_unclosed += 1;
                let last = old.open.last;
                old.close(last, EndReason::Shutdown, store, sum)?;
            }
            return Ok(());
        }
        let end = match rest {
            "closed" => Some(EndReason::Persona),
            "timeout" => Some(EndReason::IdleTimeout),
            r if r.starts_with("exception") => Some(EndReason::IoError),
            _ => None,
        };
        let key = id.to_string();
        if let Some(reason) = end {
            match self.open.remove(&key) {
                Some(c) => c.close(ts, reason, store, sum)?,
                None => sum.dropped("outside a session (no connection line in the input)"),
            }
            return Ok(());
        }
        let Some(c) = self.open.get_mut(&key) else {
            sum.dropped("outside a session (no connection line in the input)");
            return Ok(());
        };
        let repr = |r: &str, sum: &mut Summary| {
            let b = python_repr(r);
            if b.is_none() {
                sum.malformed(pos, format_args!("not a Python repr of bytes: {r:.60}"));
            }
            b
        };
        if let Some(r) = rest.strip_prefix("data ") {
            let Some(data) = repr(r, sum) else {
                return Ok(());
            };
            if data.is_empty() {
                sum.not_mapped("data (empty: the client had closed)");
                return Ok(());
            }
            if c.first.len() < FIRST {
                let n = (FIRST - c.first.len()).min(data.len());
                c.first.extend_from_slice(&data[..n]);
            }
            c.bytes_in += data.len() as u64;
            let len = data.len() as u64;
            c.open.push(
                ts,
                EventKind::Input {
                    data: Payload(data),
                    len,
                },
                &self.limits,
                sum,
            );
        } else if let Some(r) = rest.strip_prefix("send echo ") {
            let Some(data) = repr(r, sum) else {
                return Ok(());
            };
            c.bytes_out += data.len() as u64;
            let len = data.len() as u64;
            c.open.push(
                ts,
                EventKind::Output {
                    data: Payload(data),
                    len,
                    truncated: false,
                },
                &self.limits,
                sum,
            );
        } else if let Some(v) = rest.strip_prefix("SSH banner ") {
            c.open.push(
                ts,
                EventKind::ClientVersion {
                    version: Payload(v.as_bytes().to_vec()),
                },
                &self.limits,
                sum,
            );
        } else if let Some(u) = rest.strip_prefix("SSH username: ") {
            c.user = Some(u.as_bytes().to_vec());
        } else if let Some(p) = rest.strip_prefix("SSH password: ") {
            let username = Payload(c.user.take().unwrap_or_default());
            c.open.push(
                ts,
                EventKind::LoginSuccess {
                    username,
                    password: Payload(p.as_bytes().to_vec()),
                    method: "ssh-password".into(),
                },
                &self.limits,
                sum,
            );
        } else {
            if rest == "send banner" && c.bytes_in == 0 {
                c.server_first = true;
            }
            let kind = if rest.starts_with("send ") && rest.ends_with(" reply") {
                "send reply".to_string()
            } else {
                rest.split_ascii_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            sum.not_mapped(&kind);
        }
        Ok(())
    }
}

impl Importer for SimpleListener {
    fn line(
        &mut self,
        line: &[u8],
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(line);
        match timestamp(&text, self.offset) {
            None => sum.not_mapped("no timestamp"),
            Some(Err(())) => sum.malformed(pos, format_args!("bad timestamp {:?}", &text[..15])),
            Some(Ok((ts, msg))) => {
                let stamp = text[..15].to_string();
                self.message(ts, &stamp, msg, pos, store, sum)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()> {
        for c in self.open.drain() {
            sum.sessions_unclosed += 1;
            let last = c.open.last;
            c.close(last, EndReason::Shutdown, store, sum)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_and_ids() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let (t, rest) = timestamp("20191109-123456: x", utc).unwrap().unwrap();
        assert_eq!(t, 1_573_302_896_000_000);
        assert_eq!(rest, "x");
        let (t2, _) = timestamp("20191109-133456: x", FixedOffset::east_opt(3600).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(t2, t);
        assert!(timestamp("20191399-123456: x", utc).unwrap().is_err());
        assert!(timestamp("Traceback (most recent call last):", utc).is_none());
        let (l, r) = connection_id("0.0.0.0:25-203.0.113.9:51234").unwrap();
        assert_eq!(l.to_string(), "0.0.0.0:25");
        assert_eq!(r.to_string(), "203.0.113.9:51234");
        assert!(connection_id("0.0.0.0:25").is_none());
    }
}
