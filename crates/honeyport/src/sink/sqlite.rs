//! The embedded SQLite store: every event as a row (its JSON plus indexed columns), and one
//! summary row per session, updated as the session's events arrive.

use std::path::Path;

use honeyport_event::{Event, EventKind};
use rusqlite::{params, Connection};

use crate::store::{migrate, session_key, SCHEMA};

/// Longest `tags` list kept on a session row (each tag once).
const MAX_TAGS_LEN: usize = 1024;

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
        migrate(&conn)?;
        let mut conn = conn;
        crate::rollup::migrate(&mut conn)?;
        Ok(SqliteSink { conn, run_id: None })
    }

    /// For bulk writers (`import`, `bench-data`): a 32 MiB page cache instead of SQLite's
    /// 2 MiB. Session rows, their indexes and the rollups are updated all over the file, and
    /// with the small cache most of those updates re-read pages (measured: bench-data 8.3k ->
    /// 11k sessions/s). The sensor keeps the default: its cache would count in every held
    /// connection's share of memory.
    pub fn bulk(&mut self) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "cache_size", -32768)
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
        // The report rollups of this batch, written once at its end.
        let mut pending = crate::rollup::Pending::default();
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
            // The summary columns, kept up to date as the events arrive.
            let mut served =
                tx.prepare_cached("UPDATE sessions SET served = ?2 WHERE session = ?1")?;
            // A multi-protocol port knows only after the handshake that a session is TLS.
            let mut tls = tx.prepare_cached("UPDATE sessions SET tls = 1 WHERE session = ?1")?;
            let mut classified = tx.prepare_cached(
                "UPDATE sessions SET protocol = ?2, client_first = ?3, after_banner = ?4 WHERE session = ?1",
            )?;
            let mut version =
                tx.prepare_cached("UPDATE sessions SET client_version = ?2 WHERE session = ?1")?;
            let mut hassh =
                tx.prepare_cached("UPDATE sessions SET hassh = ?2 WHERE session = ?1")?;
            let mut ja =
                tx.prepare_cached("UPDATE sessions SET ja3 = ?2, ja4 = ?3 WHERE session = ?1")?;
            let mut syn = tx.prepare_cached("UPDATE sessions SET syn = ?2 WHERE session = ?1")?;
            let mut login = tx.prepare_cached(
                "UPDATE sessions SET logins = logins + 1, logins_ok = logins_ok + ?2 WHERE session = ?1",
            )?;
            let mut command = tx
                .prepare_cached("UPDATE sessions SET commands = commands + 1 WHERE session = ?1")?;
            let mut client = tx.prepare_cached(
                "UPDATE sessions SET client = COALESCE(client, ?2) WHERE session = ?1",
            )?;
            let mut tag = tx.prepare_cached(
                "UPDATE sessions SET tags = CASE WHEN tags IS NULL THEN ?2
                     WHEN instr(',' || tags || ',', ',' || ?2 || ',') > 0 OR length(tags) > ?3 THEN tags
                     ELSE tags || ',' || ?2 END
                 WHERE session = ?1",
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
                        let new = start.execute(params![
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
                        // The day's per-port counts (records, sources, targets), once per
                        // session (a session written again, e.g. re-imported, is not new).
                        if new == 1 {
                            pending.record(&crate::rollup::Record {
                                ts_micros: ts,
                                sensor: &ev.sensor,
                                udp: ev.transport == honeyport_event::Transport::Udp,
                                port: ev.dst_port,
                                src: ev.src_ip,
                                dst: ev.dst_ip,
                            });
                        }
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
                    EventKind::Dispatch { persona, .. } => {
                        served.execute(params![sid, persona])?;
                    }
                    EventKind::TlsHandshake { .. } => {
                        tls.execute(params![sid])?;
                    }
                    EventKind::Classified {
                        protocol,
                        client_first,
                        after_banner,
                    } => {
                        classified.execute(params![sid, protocol, *client_first, after_banner])?;
                    }
                    EventKind::ClientVersion { version: v } => {
                        version.execute(params![sid, String::from_utf8_lossy(v.as_bytes())])?;
                    }
                    EventKind::ClientKex { hassh: h, .. } => {
                        hassh.execute(params![sid, h])?;
                    }
                    EventKind::TlsClientHello { ja3, ja4, .. } => {
                        ja.execute(params![sid, ja3, ja4])?;
                    }
                    EventKind::TcpSyn { signature, .. } => {
                        syn.execute(params![sid, signature])?;
                    }
                    EventKind::LoginFailed { .. } => {
                        login.execute(params![sid, 0])?;
                    }
                    EventKind::LoginSuccess { .. } => {
                        login.execute(params![sid, 1])?;
                    }
                    EventKind::CommandInput { .. } => {
                        command.execute(params![sid])?;
                    }
                    EventKind::ClientName { name, .. } => {
                        client.execute(params![sid, name])?;
                    }
                    EventKind::RuleMatch { rule, action, .. } if action == "tag" => {
                        tag.execute(params![sid, rule, MAX_TAGS_LEN as i64])?;
                    }
                    _ => {}
                }
                // What the event says about its port, for reports (after the summary row
                // above is up to date).
                pending.on_event(&tx, ev, sid)?;
                let json = serde_json::to_string(&ev.kind)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
                ins.execute(params![ev.v, ts, sid, ev.kind.eventid(), json])?;
            }
        }
        pending.flush(&tx)?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before the summary columns existed gets them when the sensor opens it
    /// again, and its old rows read back (with empty summaries).
    #[test]
    fn a_schema_1_store_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::store::DB_FILE);
        {
            let c = Connection::open(&path).unwrap();
            // SCHEMA is version 1's; the summary columns come from `migrate`.
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO sessions (session, sensor, start_ts, transport, src_ip, src_port, dst_ip, dst_port, listener, persona, tls)
                 VALUES (42, 's', 1, 'tcp', '192.0.2.1', 1, '192.0.2.2', 26, 'l', 'p', 0)",
                [],
            )
            .unwrap();
        }
        drop(SqliteSink::open(&path, false).unwrap());
        // Twice is harmless.
        drop(SqliteSink::open(&path, false).unwrap());
        let store = crate::store::Store::open(dir.path()).unwrap();
        let s = store.summary("000000000000002a").unwrap().unwrap();
        assert_eq!((s.logins, s.commands, s.protocol), (0, 0, None));
        let v: String = store
            .connection()
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, "2");
    }
}
