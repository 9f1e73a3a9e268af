//! A batch of events folded into what a backend writes: new session rows, one summary delta
//! per session, the rollup counts, and the event rows. Backend-neutral, so SQLite and
//! PostgreSQL apply exactly the same changes (and give byte-identical reports).
//!
//! The summary row of a session is the fold of its events: later `session.classified`,
//! `client.version`, ... overwrite earlier ones; `client.name` keeps the first; login and
//! command counts add up; tags are appended once each (up to [`MAX_TAGS_LEN`]). A backend
//! applies a batch's deltas with one statement per session instead of one per event.
//!
//! What a session ended up with is counted in the rollups at its `session.closed`: the
//! summary as it stood at that event (the stored row before the batch, plus the batch's
//! events up to the close).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use honeyport_event::{Event, EventKind, Transport};

use crate::fleet::EventId;
use crate::rollup::{Pending, Record};
use crate::{Result, StoreError};

/// Longest `tags` list kept on a session row (each tag once); past it, new tags are not
/// added to the row (they are still events).
pub const MAX_TAGS_LEN: usize = 1024;

/// A session's key: the 64-bit id's bits in a signed integer (SQLite's and PostgreSQL's).
pub fn session_key(id: &honeyport_event::SessionId) -> Option<i64> {
    id.as_u64().map(|n| n as i64)
}

/// A new session row (from `session.connect`).
#[derive(Clone, Debug)]
pub struct Start {
    pub sid: i64,
    pub sensor: String,
    pub ts: i64,
    pub udp: bool,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub listener: String,
    pub persona: String,
    pub tls: bool,
}

impl Start {
    pub fn transport(&self) -> &'static str {
        if self.udp {
            "udp"
        } else {
            "tcp"
        }
    }
    pub fn record(&self) -> Record<'_> {
        Record {
            ts_micros: self.ts,
            sensor: &self.sensor,
            udp: self.udp,
            port: self.dst_port,
            src: self.src,
            dst: self.dst,
        }
    }
}

/// A session's end (from `session.closed`).
#[derive(Clone, Debug, PartialEq)]
pub struct End {
    pub ts: i64,
    pub duration: f64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub reason: &'static str,
    pub limit: Option<String>,
}

/// What a batch changes on one session's summary row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    pub end: Option<End>,
    pub served: Option<String>,
    /// Set by a TLS handshake (a multi-protocol port knows only then).
    pub tls: bool,
    /// protocol, client_first, after_banner (`session.classified`, all three together).
    pub classified: Option<(String, bool, Option<String>)>,
    pub version: Option<String>,
    pub hassh: Option<String>,
    /// ja3, ja4.
    pub ja: Option<(String, String)>,
    pub syn: Option<String>,
    pub logins: i64,
    pub logins_ok: i64,
    pub commands: i64,
    /// The batch's first client name (the row keeps its own if it has one).
    pub client: Option<String>,
    /// Tags to append, in order, each once.
    pub tags: Vec<String>,
}

impl Delta {
    fn on(&mut self, kind: &EventKind, ts: i64) {
        match kind {
            EventKind::Closed {
                duration,
                bytes_in,
                bytes_out,
                reason,
                limit,
            } => {
                self.end = Some(End {
                    ts,
                    duration: *duration,
                    bytes_in: *bytes_in as i64,
                    bytes_out: *bytes_out as i64,
                    reason: reason.as_str(),
                    limit: limit.clone(),
                })
            }
            EventKind::Dispatch { persona, .. } => self.served = Some(persona.clone()),
            EventKind::TlsHandshake { .. } => self.tls = true,
            EventKind::Classified {
                protocol,
                client_first,
                after_banner,
            } => self.classified = Some((protocol.clone(), *client_first, after_banner.clone())),
            EventKind::ClientVersion { version } => {
                self.version = Some(String::from_utf8_lossy(version.as_bytes()).into_owned())
            }
            EventKind::ClientKex { hassh, .. } => self.hassh = Some(hassh.clone()),
            EventKind::TlsClientHello { ja3, ja4, .. } => {
                self.ja = Some((ja3.clone(), ja4.clone()))
            }
            EventKind::TcpSyn { signature, .. } => self.syn = Some(signature.clone()),
            EventKind::LoginFailed { .. } => self.logins += 1,
            EventKind::LoginSuccess { .. } => {
                self.logins += 1;
                self.logins_ok += 1;
            }
            EventKind::CommandInput { .. } => self.commands += 1,
            EventKind::ClientName { name, .. } if self.client.is_none() => {
                self.client = Some(name.clone())
            }
            EventKind::RuleMatch { rule, action, .. }
                if action == "tag" && !self.tags.contains(rule) =>
            {
                self.tags.push(rule.clone())
            }
            _ => {}
        }
    }

    /// Whether the delta changes anything.
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

/// The stored summary fields the closing counts need (the row before this batch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Base {
    pub persona: String,
    pub served: Option<String>,
    pub protocol: Option<String>,
    pub after_banner: Option<String>,
    pub client: Option<String>,
    pub tags: Option<String>,
    pub hassh: Option<String>,
    pub ja4: Option<String>,
    pub version: Option<String>,
}

/// A session's summary as it stood at its close, for the rollups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Closing {
    /// The persona that served it (after dispatch), else the listener's.
    pub served: String,
    pub protocol: Option<String>,
    pub after_banner: Option<String>,
    pub client: Option<String>,
    pub tags: Option<String>,
    pub hassh: Option<String>,
    pub ja4: Option<String>,
    pub version: Option<String>,
}

impl Closing {
    /// The stored row plus what the batch had changed up to the close.
    pub fn of(base: &Base, d: &Delta) -> Closing {
        let mut tags = base.tags.clone();
        for t in &d.tags {
            append_tag(&mut tags, t);
        }
        let (protocol, after_banner) = match &d.classified {
            Some((p, _, a)) => (Some(p.clone()), a.clone()),
            None => (base.protocol.clone(), base.after_banner.clone()),
        };
        Closing {
            served: d
                .served
                .clone()
                .or_else(|| base.served.clone())
                .unwrap_or_else(|| base.persona.clone()),
            protocol,
            after_banner,
            client: base.client.clone().or_else(|| d.client.clone()),
            tags,
            hassh: d.hassh.clone().or_else(|| base.hassh.clone()),
            ja4: d
                .ja
                .as_ref()
                .map(|j| j.1.clone())
                .or_else(|| base.ja4.clone()),
            version: d.version.clone().or_else(|| base.version.clone()),
        }
    }
}

/// Appends `tag` to a comma-separated list, once, unless the list is longer than
/// [`MAX_TAGS_LEN`] characters. Backends' SQL does the same to the stored row.
pub fn append_tag(tags: &mut Option<String>, tag: &str) {
    match tags {
        None => *tags = Some(tag.to_string()),
        Some(t) => {
            let present = format!(",{t},").contains(&format!(",{tag},"));
            if !present && t.chars().count() <= MAX_TAGS_LEN {
                t.push(',');
                t.push_str(tag);
            }
        }
    }
}

/// One event's row.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub v: u16,
    pub ts: i64,
    pub sid: i64,
    pub eventid: &'static str,
    pub json: String,
    /// The identity: `id.sensor` is the sensor that stored it (its event's, on a sensor).
    pub id: EventId,
}

impl EventRow {
    /// The row of `ev` with identity `id`. An event whose session id is not a number has
    /// none (only events built by hand can have one).
    pub fn of(id: EventId, ev: &Event) -> Result<EventRow> {
        let sid =
            session_key(&ev.session).ok_or_else(|| StoreError::BadSession(ev.session.0.clone()))?;
        let json = serde_json::to_string(&ev.kind)
            .map_err(|e| StoreError::Other(format!("event json: {e}")))?;
        Ok(EventRow {
            v: ev.v,
            ts: ev.timestamp.unix_micros(),
            sid,
            eventid: ev.kind.eventid(),
            json,
            id,
        })
    }
}

/// Events stored per sensor by a batch, and the newest event timestamp among them: what
/// [`crate::Reader::sensors`] reads (kept up to date by both writing and loading, so that
/// it never counts `events`).
pub type SensorCounts = BTreeMap<String, (i64, i64)>;

/// A closed session: its delta as of the close, and where its counts go.
#[derive(Clone, Debug)]
pub struct Close {
    pub sid: i64,
    pub ts: i64,
    pub sensor: String,
    pub port: u16,
    pub at_close: Delta,
}

/// A batch, folded.
#[derive(Debug, Default)]
pub struct Folded {
    /// New sessions, each once (the first `session.connect` of a session in the batch).
    pub starts: Vec<Start>,
    /// One delta per session the batch touches, in order of first touch.
    pub deltas: Vec<(i64, Delta)>,
    pub closes: Vec<Close>,
    /// Counts of the events by themselves (not yet the records nor the closing counts).
    pub pending: Pending,
    /// The events stored, per sensor (identity's): count and newest timestamp.
    pub sensors: SensorCounts,
}

impl Folded {
    /// Folds the events of a batch that were stored (new by identity), with their rows.
    pub fn of(batch: &[(&EventRow, &Event)]) -> Result<Folded> {
        let mut f = Folded::default();
        let mut index: HashMap<i64, usize> = HashMap::new();
        let mut started: std::collections::HashSet<i64> = Default::default();
        for &(row, ev) in batch {
            let (ts, sid) = (row.ts, row.sid);
            let c = f.sensors.entry(row.id.sensor.clone()).or_insert((0, ts));
            c.0 += 1;
            c.1 = c.1.max(ts);
            if let EventKind::Connect {
                listener,
                persona,
                tls,
            } = &ev.kind
            {
                if started.insert(sid) {
                    f.starts.push(Start {
                        sid,
                        sensor: ev.sensor.clone(),
                        ts,
                        udp: ev.transport == Transport::Udp,
                        src: ev.src_ip,
                        src_port: ev.src_port,
                        dst: ev.dst_ip,
                        dst_port: ev.dst_port,
                        listener: listener.clone(),
                        persona: persona.clone(),
                        tls: *tls,
                    });
                }
            } else {
                let i = *index.entry(sid).or_insert_with(|| {
                    f.deltas.push((sid, Delta::default()));
                    f.deltas.len() - 1
                });
                let d = &mut f.deltas[i].1;
                d.on(&ev.kind, ts);
                if matches!(ev.kind, EventKind::Closed { .. }) {
                    f.closes.push(Close {
                        sid,
                        ts,
                        sensor: ev.sensor.clone(),
                        port: ev.dst_port,
                        at_close: d.clone(),
                    });
                }
            }
            f.pending.event(ev);
        }
        f.deltas.retain(|(_, d)| !d.is_empty());
        Ok(f)
    }
}

/// What a backend does with a batch, inside one transaction; [`store`] calls these in order.
///
/// The order is the same for every batch (events, sessions, summary rows, rollups, sensor
/// counters), and each call takes its rows in key order: two transactions that share rows
/// wait for each other instead of deadlocking.
pub trait Apply {
    /// Inserts the event rows whose identity the store does not have yet, in order; returns
    /// which were inserted. A row whose identity another transaction is inserting waits for
    /// it (and is then a duplicate, or new if that one rolled back).
    fn insert_events(&mut self, rows: &[EventRow]) -> Result<Vec<bool>>;
    /// Inserts the new session rows (a session already stored is left as it is); returns
    /// which were new, in order.
    fn insert_starts(&mut self, starts: &[Start]) -> Result<Vec<bool>>;
    /// The stored rows of these sessions (those that exist).
    fn bases(&mut self, sids: &[i64]) -> Result<HashMap<i64, Base>>;
    /// Applies the summary deltas.
    fn apply_deltas(&mut self, deltas: &[(i64, Delta)]) -> Result<()>;
    /// Writes the rollup counts.
    fn flush(&mut self, p: &mut Pending) -> Result<()>;
    /// Adds to the per-sensor counters.
    fn count_sensors(&mut self, c: &SensorCounts) -> Result<()>;
}

/// Stores a batch with its identities through a backend's [`Apply`]: the events new by
/// identity are inserted, and only they are folded into sessions and rollups. An identity
/// twice in the batch is stored once. (Both the writers, which assign the identities, and the
/// loaders, which are handed them, come here: a writer's retry of a batch whose commit it
/// could not confirm adds nothing either.)
pub fn store(tx: &mut dyn Apply, batch: &[(EventId, &Event)]) -> Result<crate::Loaded> {
    let mut seen: HashSet<&EventId> = HashSet::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    for (id, ev) in batch {
        if seen.insert(id) {
            rows.push(EventRow::of(id.clone(), ev)?);
            events.push(*ev);
        }
    }
    let new = tx.insert_events(&rows)?;
    let fresh: Vec<(&EventRow, &Event)> = rows
        .iter()
        .zip(events)
        .zip(&new)
        .filter(|(_, &n)| n)
        .map(|(x, _)| x)
        .collect();
    let loaded = crate::Loaded {
        new: fresh.len() as u64,
        duplicate: (batch.len() - fresh.len()) as u64,
    };
    apply(tx, Folded::of(&fresh)?)?;
    Ok(loaded)
}

/// Applies a folded batch (its events already inserted) through a backend's [`Apply`].
fn apply(tx: &mut dyn Apply, mut f: Folded) -> Result<()> {
    let new = tx.insert_starts(&f.starts)?;
    for (s, is_new) in f.starts.iter().zip(new) {
        // Once per session: a session written again (e.g. re-imported) is not a new record.
        if is_new {
            f.pending.record(&s.record());
        }
    }
    if !f.closes.is_empty() {
        let mut sids: Vec<i64> = f.closes.iter().map(|c| c.sid).collect();
        sids.sort_unstable();
        sids.dedup();
        let bases = tx.bases(&sids)?;
        for c in &f.closes {
            if let Some(b) = bases.get(&c.sid) {
                f.pending
                    .closed(c.ts, &c.sensor, c.port, &Closing::of(b, &c.at_close));
            }
        }
    }
    tx.apply_deltas(&f.deltas)?;
    tx.flush(&mut f.pending)?;
    tx.count_sensors(&f.sensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_appended_once_and_capped() {
        let mut t = None;
        append_tag(&mut t, "a");
        append_tag(&mut t, "b");
        append_tag(&mut t, "a");
        assert_eq!(t.as_deref(), Some("a,b"));
        let mut long = Some("x".repeat(MAX_TAGS_LEN + 1));
        append_tag(&mut long, "y");
        assert_eq!(long.unwrap().len(), MAX_TAGS_LEN + 1);
    }

    #[test]
    fn closing_takes_the_batch_over_the_row_but_the_rows_client_first() {
        let base = Base {
            persona: "p".into(),
            client: Some("old".into()),
            protocol: Some("ssh".into()),
            tags: Some("t1".into()),
            ..Default::default()
        };
        let d = Delta {
            client: Some("new".into()),
            classified: Some(("telnet".into(), true, None)),
            tags: vec!["t2".into(), "t1".into()],
            ..Default::default()
        };
        let c = Closing::of(&base, &d);
        assert_eq!(c.client.as_deref(), Some("old"));
        assert_eq!(c.protocol.as_deref(), Some("telnet"));
        assert_eq!(c.tags.as_deref(), Some("t1,t2"));
        assert_eq!(c.served, "p");
    }
}
