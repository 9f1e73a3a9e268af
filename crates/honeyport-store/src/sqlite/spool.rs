//! The sensor's local store read as the fleet's spool ([`crate::Spool`]).
//!
//! A connection of its own beside the writer's: WAL, so reading never blocks the writer nor
//! waits for it; the cursor writes (small, after each acknowledged batch) wait for the
//! writer's lock with a long busy timeout rather than fail, and are `synchronous = FULL`: a
//! cursor that [`Spool::set_cursor`] returned from survives a crash of the process and of the
//! machine.
//!
//! Positions are `events.id` (row ids: storage order, dense since events are never deleted
//! one by one). An event is spooled as its full `Event` JSON, rebuilt from its row and its
//! session's (exactly the event that was written; see [`super::read::Row`]). An event whose
//! session row does not exist (only events built by hand) is not spooled, as no reader shows
//! it either; it still counts in the backlog.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::read::Row;
use crate::fleet::{Backlog, EventId, Spool, Spooled};
use crate::{Result, StoreError};

/// How long a cursor write waits for the writer's lock (its transactions last milliseconds;
/// a minute means a stuck writer, not a busy one).
const BUSY: Duration = Duration::from_secs(60);

pub struct SqliteSpool {
    conn: Connection,
    path: String,
}

impl SqliteSpool {
    /// Opens the spool of the store in `dir`, which must exist (an older store is migrated
    /// first, as a reader does).
    pub fn open_dir(dir: &Path) -> Result<SqliteSpool> {
        let path = dir.join(crate::DB_FILE);
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Missing(shown));
        }
        let sqlite = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        (|| -> rusqlite::Result<()> {
            conn.busy_timeout(BUSY)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            Ok(())
        })()
        .map_err(sqlite)?;
        let current = conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
            .and_then(|_| super::schema::is_current(&conn))
            .map_err(|source| StoreError::Foreign {
                path: shown.clone(),
                source,
            })?;
        if !current {
            drop(super::SqliteWriter::open(
                &path,
                crate::WriterOptions::default(),
            )?);
        }
        Ok(SqliteSpool { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

impl Spool for SqliteSpool {
    fn after(&mut self, after: i64, limit: usize) -> Result<Vec<Spooled>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = (|| {
            let mut q = self.conn.prepare_cached(
                "SELECT e.id, e.v, e.ts, e.json, s.session, s.sensor, s.transport, s.src_ip,
                     s.src_port, s.dst_ip, s.dst_port, e.sensor, e.run, e.seq
                 FROM events e JOIN sessions s ON s.session = e.session
                 WHERE e.id > ?1 ORDER BY e.id LIMIT ?2",
            )?;
            let rows = q.query_map(params![after, limit], |r| {
                let id = EventId {
                    sensor: r.get(11)?,
                    run: r.get::<_, i64>(12)? as u64,
                    seq: r.get::<_, i64>(13)? as u64,
                };
                let row = Row::read(r)?;
                Ok((id, row))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(id, row)| {
                let (pos, ts) = (row.id, row.ts);
                let ev = row
                    .into_event()
                    .map_err(|error| StoreError::Decode { id: pos, error })?;
                let json = serde_json::to_string(&ev).map_err(|e| StoreError::Decode {
                    id: pos,
                    error: e.to_string(),
                })?;
                Ok(Spooled { pos, id, ts, json })
            })
            .collect()
    }

    fn cursor(&mut self, name: &str) -> Result<i64> {
        let r = self
            .conn
            .query_row("SELECT pos FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional();
        r.map(|p| p.unwrap_or(0)).map_err(|e| self.err(e))
    }

    fn set_cursor(&mut self, name: &str, pos: i64) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO cursors (name, pos) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET pos = excluded.pos",
            params![name, pos],
        );
        r.map(drop).map_err(|e| self.err(e))
    }

    /// Three lookups on the row id's b-tree: the head, the count of the range after `after`
    /// (a count over the range, not the table), and the first event's timestamp after it (the
    /// longest waiting: storage order).
    fn backlog(&mut self, after: i64) -> Result<Backlog> {
        let r = self.conn.query_row(
            "SELECT (SELECT coalesce(max(id), 0) FROM events),
                 (SELECT count(*) FROM events WHERE id > ?1),
                 (SELECT ts FROM events WHERE id > ?1 ORDER BY id LIMIT 1)",
            [after],
            |r| {
                Ok(Backlog {
                    head: r.get(0)?,
                    events: r.get::<_, i64>(1)? as u64,
                    oldest_micros: r.get(2)?,
                })
            },
        );
        r.map_err(|e| self.err(e))
    }
}
