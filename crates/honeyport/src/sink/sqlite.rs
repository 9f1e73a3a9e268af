//! The embedded SQLite store: every event as a row (its JSON plus indexed columns), and one
//! summary row per session, updated as the session's events arrive.

use std::path::Path;

use honeyport_event::{Event, EventKind};
use rusqlite::{params, Connection};

use crate::store::{session_key, SCHEMA};

pub struct SqliteSink {
    conn: Connection,
    run_id: Option<i64>,
}

impl SqliteSink {
    pub fn open(path: &Path, synchronous_full: bool) -> anyhow::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if synchronous_full { "FULL" } else { "NORMAL" },
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteSink { conn, run_id: None })
    }

    /// Records that a sensor run started (for the run summary written at shutdown).
    pub fn begin_run(&mut self, sensor: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO runs (sensor, started) VALUES (?1, ?2)",
            params![sensor, chrono::Utc::now().timestamp_micros()],
        )?;
        self.run_id = Some(self.conn.last_insert_rowid());
        Ok(())
    }

    pub fn end_run(
        &mut self,
        sent: u64,
        written: u64,
        dropped: u64,
        stalls: u64,
    ) -> rusqlite::Result<()> {
        if let Some(id) = self.run_id {
            self.conn.execute(
                "UPDATE runs SET stopped = ?1, events_sent = ?2, events_written = ?3, events_dropped = ?4, stalls = ?5 WHERE id = ?6",
                params![chrono::Utc::now().timestamp_micros(), sent as i64, written as i64, dropped as i64, stalls as i64, id],
            )?;
        }
        Ok(())
    }

    /// Writes a batch in one transaction. An event whose session id is not a number (only
    /// possible for events built by hand) fails the batch.
    pub fn write(&mut self, batch: &[Event]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (v, ts, session, eventid, json) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut start = tx.prepare_cached(
                "INSERT OR IGNORE INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut end = tx.prepare_cached(
                "UPDATE sessions SET end_ts = ?2, bytes_in = ?3, bytes_out = ?4, reason = ?5, limit_name = ?6, duration = ?7 WHERE session = ?1",
            )?;
            for ev in batch {
                let ts = ev.timestamp.unix_micros();
                let sid = session_key(&ev.session).ok_or_else(|| {
                    rusqlite::Error::ToSqlConversionFailure(
                        format!("session id {:?} is not a number", ev.session.0).into(),
                    )
                })?;
                match &ev.kind {
                    EventKind::Connect {
                        listener,
                        persona,
                        tls,
                    } => {
                        start.execute(params![
                            sid,
                            ev.sensor,
                            ts,
                            ev.transport.as_str(),
                            ev.src_ip.to_string(),
                            ev.src_port,
                            ev.dst_ip.to_string(),
                            ev.dst_port,
                            listener,
                            persona,
                            *tls
                        ])?;
                    }
                    EventKind::Closed {
                        duration,
                        bytes_in,
                        bytes_out,
                        reason,
                        limit,
                    } => {
                        end.execute(params![
                            sid,
                            ts,
                            *bytes_in as i64,
                            *bytes_out as i64,
                            reason.as_str(),
                            limit.as_deref(),
                            duration
                        ])?;
                    }
                    _ => {}
                }
                let json = serde_json::to_string(&ev.kind)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
                ins.execute(params![ev.v, ts, sid, ev.kind.eventid(), json])?;
            }
        }
        tx.commit()
    }
}
