//! The read side of the embedded store: the schema and the queries the CLI uses.

use std::net::IpAddr;
use std::path::Path;

use honeyport_event::Event;
use rusqlite::{params_from_iter, Connection, OpenFlags};

/// The SQLite file inside the data dir.
pub const DB_FILE: &str = "honeyport.db";

/// Schema of the store. `events.json` is the event exactly as in the JSON-lines output; the
/// other columns are copies for indexing. `sessions` has one row per session.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    sensor TEXT NOT NULL,
    session TEXT NOT NULL,
    eventid TEXT NOT NULL,
    transport TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events (session);
CREATE INDEX IF NOT EXISTS events_dst_port ON events (dst_port);
CREATE INDEX IF NOT EXISTS events_src_ip ON events (src_ip);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    sensor TEXT NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER,
    duration REAL,
    transport TEXT NOT NULL,
    src_ip TEXT NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    listener TEXT NOT NULL,
    persona TEXT NOT NULL,
    tls INTEGER NOT NULL,
    bytes_in INTEGER,
    bytes_out INTEGER,
    reason TEXT,
    limit_name TEXT
);
CREATE INDEX IF NOT EXISTS sessions_dst_port ON sessions (dst_port, start_ts);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    started INTEGER NOT NULL,
    stopped INTEGER,
    events_sent INTEGER,
    events_written INTEGER,
    events_dropped INTEGER,
    stalls INTEGER
);
";

/// Filters for `honeyport events`.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub port: Option<u16>,
    pub src: Option<IpAddr>,
    pub session: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {0} (run the sensor first, or pass --data-dir)")]
    Missing(String),
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store holds an event that does not decode (id {id}): {error}")]
    Decode { id: i64, error: String },
}

pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Opens the store in `data_dir` read-only.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(StoreError::Missing(shown));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        // Touch the schema so a corrupt or foreign file fails here, clearly.
        conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
            .map_err(|source| StoreError::Sqlite {
                path: shown.clone(),
                source,
            })?;
        Ok(Store { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Events matching the filter, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = String::from("SELECT id, json FROM events WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(p) = f.port {
            sql.push_str(" AND dst_port = ?");
            args.push((p as i64).into());
        }
        if let Some(ip) = f.src {
            sql.push_str(" AND src_ip = ?");
            args.push(ip.to_string().into());
        }
        if let Some(s) = &f.session {
            sql.push_str(" AND session = ?");
            args.push(s.clone().into());
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(n) = f.limit {
            sql.push_str(" LIMIT ?");
            args.push((n as i64).into());
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(|e| self.err(e))?;
            let ev = Event::from_json(json.as_bytes()).map_err(|e| StoreError::Decode {
                id,
                error: e.to_string(),
            })?;
            out.push(ev);
        }
        Ok(out)
    }

    /// Number of rows in a table (`events`, `sessions`), for tests and checks.
    pub fn count(&self, table: &str, where_sql: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT count(*) FROM {table} WHERE {where_sql}");
        self.conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The raw connection, for read-only ad-hoc queries (tests, benchmarks).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
