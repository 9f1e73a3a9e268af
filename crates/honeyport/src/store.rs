//! The read side of the embedded store: the schema and the queries the CLI uses.

use std::net::IpAddr;
use std::path::Path;

use honeyport_event::{Event, EventKind, SessionId, Timestamp, Transport};
use rusqlite::{params_from_iter, Connection, OpenFlags};

/// The SQLite file inside the data dir.
pub const DB_FILE: &str = "honeyport.db";

/// Schema of the store.
///
/// `sessions` has one row per session, keyed by the session id as a number (ids are
/// time-ordered, so inserts append): who talked to which address and port, through which
/// listener and persona, and how it ended. `events` has one row per event: its time, its
/// session, and the event-specific fields as JSON (`json`, which includes `eventid`); the
/// fields every event shares come from the session row, so a full event is
/// `events JOIN sessions`. [`Store::events`] rebuilds exactly the event that was written.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY,
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
CREATE INDEX IF NOT EXISTS sessions_dst_port ON sessions (dst_port);
CREATE INDEX IF NOT EXISTS sessions_src_ip ON sessions (src_ip);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    v INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    session INTEGER NOT NULL,
    eventid TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events (session);
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

/// Summary columns added to `sessions` in schema version 2 (classification and counts), with
/// their SQL types; added to an older store when it is opened for writing.
pub const SUMMARY_COLUMNS: &[(&str, &str)] = &[
    ("served", "TEXT"),
    ("protocol", "TEXT"),
    ("client_first", "INTEGER"),
    ("after_banner", "TEXT"),
    ("client_version", "TEXT"),
    ("hassh", "TEXT"),
    ("ja3", "TEXT"),
    ("ja4", "TEXT"),
    ("syn", "TEXT"),
    ("logins", "INTEGER NOT NULL DEFAULT 0"),
    ("logins_ok", "INTEGER NOT NULL DEFAULT 0"),
    ("commands", "INTEGER NOT NULL DEFAULT 0"),
    ("tags", "TEXT"),
    ("client", "TEXT"),
];

/// Brings a store to the current schema: the summary columns and their indexes.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let have: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('sessions')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, ty) in SUMMARY_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {name} {ty}"))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS sessions_protocol ON sessions (protocol);
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )
}

/// A session's summary row: who, where, what it spoke, what it did, how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub session: String,
    pub listener: String,
    pub persona: String,
    pub served: Option<String>,
    pub protocol: Option<String>,
    pub client_first: Option<bool>,
    pub after_banner: Option<String>,
    pub client_version: Option<String>,
    pub hassh: Option<String>,
    pub ja3: Option<String>,
    pub ja4: Option<String>,
    /// The client's TCP SYN signature (`tcp.syn`'s `signature`).
    pub syn: Option<String>,
    pub logins: i64,
    pub logins_ok: i64,
    pub commands: i64,
    pub tags: Vec<String>,
    /// The first client name the tagger found (`client.name`).
    pub client: Option<String>,
    pub reason: Option<String>,
}

/// A session id as stored: the 64-bit id's bits in SQLite's signed integer.
pub fn session_key(id: &SessionId) -> Option<i64> {
    id.as_u64().map(|n| n as i64)
}

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

    /// The summary row of one session (by its 16-hex-digit id), if the store has it. A store
    /// written before the summary columns existed has none of them (`Ok(None)`).
    pub fn summary(&self, session: &str) -> Result<Option<Summary>, StoreError> {
        let Some(key) = SessionId(session.to_string()).as_u64().map(|n| n as i64) else {
            return Ok(None);
        };
        let r = self.conn.query_row(
            "SELECT listener, persona, served, protocol, client_first, after_banner, client_version,
                    hassh, logins, logins_ok, commands, tags, reason, ja3, ja4, syn, client
             FROM sessions WHERE session = ?1",
            [key],
            |r| {
                Ok(Summary {
                    session: session.to_string(),
                    listener: r.get(0)?,
                    persona: r.get(1)?,
                    served: r.get(2)?,
                    protocol: r.get(3)?,
                    client_first: r.get::<_, Option<i64>>(4)?.map(|v| v != 0),
                    after_banner: r.get(5)?,
                    client_version: r.get(6)?,
                    hassh: r.get(7)?,
                    logins: r.get(8)?,
                    logins_ok: r.get(9)?,
                    commands: r.get(10)?,
                    tags: r
                        .get::<_, Option<String>>(11)?
                        .map(|t| t.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                        .unwrap_or_default(),
                    reason: r.get(12)?,
                    ja3: r.get(13)?,
                    ja4: r.get(14)?,
                    syn: r.get("syn")?,
                    client: r.get("client")?,
                })
            },
        );
        match r {
            Ok(s) => Ok(Some(s)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            // An older store without the summary columns.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such column") => {
                Ok(None)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Events matching the filter, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = String::from(
            "SELECT e.id, e.v, e.ts, e.json, s.session, s.sensor, s.transport, s.src_ip, s.src_port, s.dst_ip, s.dst_port
             FROM events e JOIN sessions s ON s.session = e.session WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(p) = f.port {
            sql.push_str(" AND e.session IN (SELECT session FROM sessions WHERE dst_port = ?)");
            args.push((p as i64).into());
        }
        if let Some(ip) = f.src {
            sql.push_str(" AND e.session IN (SELECT session FROM sessions WHERE src_ip = ?)");
            args.push(ip.to_string().into());
        }
        if let Some(s) = &f.session {
            // An id that is not hex matches nothing.
            let key = session_key(&SessionId(s.clone())).unwrap_or(-1);
            sql.push_str(" AND e.session = ?");
            args.push(key.into());
        }
        sql.push_str(" ORDER BY e.id DESC");
        if let Some(n) = f.limit {
            sql.push_str(" LIMIT ?");
            args.push((n as i64).into());
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok(Row {
                    id: r.get(0)?,
                    v: r.get(1)?,
                    ts: r.get(2)?,
                    json: r.get(3)?,
                    session: r.get(4)?,
                    sensor: r.get(5)?,
                    transport: r.get(6)?,
                    src_ip: r.get(7)?,
                    src_port: r.get(8)?,
                    dst_ip: r.get(9)?,
                    dst_port: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.err(e))?;
            let id = row.id;
            out.push(
                row.into_event()
                    .map_err(|error| StoreError::Decode { id, error })?,
            );
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

/// One `events JOIN sessions` row.
struct Row {
    id: i64,
    v: i64,
    ts: i64,
    json: String,
    session: i64,
    sensor: String,
    transport: String,
    src_ip: String,
    src_port: i64,
    dst_ip: String,
    dst_port: i64,
}

impl Row {
    fn into_event(self) -> Result<Event, String> {
        let kind: EventKind =
            serde_json::from_str(&self.json).map_err(|e| format!("bad event json: {e}"))?;
        let port = |p: i64| u16::try_from(p).map_err(|_| format!("port {p} out of range"));
        Ok(Event {
            v: u16::try_from(self.v).map_err(|_| format!("bad schema version {}", self.v))?,
            timestamp: Timestamp::from_unix_micros(self.ts)
                .ok_or_else(|| format!("bad timestamp {}", self.ts))?,
            sensor: self.sensor,
            session: SessionId::from_u64(self.session as u64),
            transport: match self.transport.as_str() {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                other => return Err(format!("bad transport {other:?}")),
            },
            src_ip: self
                .src_ip
                .parse()
                .map_err(|_| format!("bad src_ip {:?}", self.src_ip))?,
            src_port: port(self.src_port)?,
            dst_ip: self
                .dst_ip
                .parse()
                .map_err(|_| format!("bad dst_ip {:?}", self.dst_ip))?,
            dst_port: port(self.dst_port)?,
            kind,
        })
    }
}
