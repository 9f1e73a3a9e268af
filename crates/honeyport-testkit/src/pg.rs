//! A real PostgreSQL server (Debian's, the newest under `/usr/lib/postgresql`) for a test.
//!
//! `initdb -A trust -U postgres -E UTF8 --locale=C` into a fresh temporary directory, then
//! `postgres` with `listen_addresses='127.0.0.1'` on a free port, its unix socket inside that
//! directory, `fsync=off` (and `full_page_writes=off`: committed data survives a crash of the
//! server, not of the machine) and `max_connections=200`. Anyone on 127.0.0.1 may connect as
//! `postgres` without a password.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, `initdb` and `postgres` run as
//! the `postgres` system user (which Debian's package creates) and the temporary directory, made
//! under /tmp, belongs to that user.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::sys;
use crate::util::{self, Watchdog};

/// A running (or stopped, after [`stop`](Postgres::stop) / [`kill`](Postgres::kill)) PostgreSQL
/// server in its own temporary directory. Dropping it stops the server and removes the
/// directory.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    /// uid and gid to run the server as (when this process is root).
    owner: Option<(u32, u32)>,
    state: Mutex<State>,
}

struct State {
    child: Option<Child>,
    // Dropped in this order: the watchdog is told "done" before the directory goes.
    watchdog: Option<Watchdog>,
    temp: Option<TempDir>,
}

enum StartError {
    /// The port was taken by someone else between finding it free and binding it.
    PortTaken(String),
    Failed(String),
}

/// One server for the whole test process, started on first use, stopped (and its directory
/// removed) when the process exits. Tests that share it should each work in their own database
/// ([`Postgres::fresh_database`]); tests that stop or restart PostgreSQL start their own with
/// [`Postgres::start`].
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    extern "C" fn stop_shared() {
        if let Some(pg) = SHARED.get() {
            let _ = std::panic::catch_unwind(|| pg.shutdown());
        }
    }
    SHARED.get_or_init(|| {
        let pg = Postgres::start();
        sys::at_exit(stop_shared);
        pg
    })
}

/// Unique database names within this process.
static DATABASES: AtomicU64 = AtomicU64::new(0);

impl Postgres {
    /// Creates a cluster in a fresh temporary directory and starts it on a free 127.0.0.1 port;
    /// returns once it accepts connections. Panics (with the server's log) when it does not
    /// within 30 s.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let owner = sys::is_root().then(postgres_user);
        let temp = temp_dir(owner.is_some());
        let dir = temp.path().to_path_buf();
        let data = dir.join("data");
        let socket_dir = dir.join("sock");
        util::mkdir(&socket_dir);
        if let Some((uid, gid)) = owner {
            for path in [&dir, &socket_dir] {
                chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
            }
        }
        let initdb_pid = dir.join("initdb.pid");
        let watchdog = Watchdog::spawn(&[&initdb_pid, &data.join("postmaster.pid")], "QUIT", &dir);
        let mut pg = Postgres {
            port: 0,
            bin,
            log: dir.join("postgres.log"),
            dir,
            data,
            socket_dir,
            owner,
            state: Mutex::new(State {
                child: None,
                watchdog: Some(watchdog),
                temp: Some(temp),
            }),
        };
        pg.initdb();
        let mut attempts = 0;
        loop {
            pg.port = util::free_port();
            match pg.spawn_server() {
                Ok(()) => return pg,
                Err(StartError::PortTaken(_)) if attempts < 5 => attempts += 1,
                Err(StartError::PortTaken(msg) | StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of database `name` on this server (which need not exist).
    pub fn database_url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            percent_encode(name)
        )
    }

    /// The directory holding the cluster (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log so far (stdout and stderr of every start).
    pub fn log(&self) -> String {
        util::log_since(&self.log, 0)
    }

    /// Creates database `name` (any name; it is quoted) and returns its URL. Panics if it
    /// exists.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
        self.database_url(name)
    }

    /// Creates a database with a name no other call in this process gives
    /// (`t_<pid>_<counter>`) and returns its URL.
    pub fn fresh_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("t_{}_{n}", std::process::id()))
    }

    /// Runs `sql` with `psql` as user `postgres` in `database` (stopping at the first error) and
    /// returns what it printed: unaligned, tuples only, so `select 1` gives `"1"`; rows are
    /// lines, columns separated by `|`. Panics, with psql's stderr, when psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self
            .client("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -d {database} -c {sql:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Stops the server the way `pg_ctl -m fast stop` does (SIGINT to the postmaster: open
    /// sessions are ended, the data is checkpointed) and waits until it has exited. The data
    /// directory stays; [`restart`](Postgres::restart) starts the server again.
    pub fn stop(&mut self) {
        self.stop_server(false);
    }

    /// Stops the server like a crash, the way `pg_ctl -m immediate stop` does (SIGQUIT: no
    /// checkpoint; the next start runs crash recovery).
    pub fn kill(&mut self) {
        self.stop_server(true);
    }

    /// Stops the server (fast, if it is running) and starts it again on the same port with the
    /// same data directory; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop_server(false);
        if let Err(StartError::PortTaken(msg) | StartError::Failed(msg)) = self.spawn_server() {
            panic!("restarting PostgreSQL: {msg}");
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A command for one of PostgreSQL's client programs, talking to this server over TCP.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        for var in [
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGTARGETSESSIONATTRS",
        ] {
            cmd.env_remove(var);
        }
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .current_dir(&self.dir)
        .stdin(Stdio::null());
        cmd
    }

    /// A command for one of PostgreSQL's server programs, run as the cluster's owner.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) {
        let log = self.dir.join("initdb.log");
        let (stdout, stderr, _) = util::log_stdio(&log);
        let mut child = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("run initdb");
        // For the watchdog: initdb is stopped too if this process dies meanwhile.
        let pid_file = self.dir.join("initdb.pid");
        let _ = fs::write(&pid_file, child.id().to_string());
        let status = child.wait().expect("wait for initdb");
        let _ = fs::remove_file(&pid_file);
        assert!(
            status.success(),
            "initdb failed ({status}); {}:\n{}",
            log.display(),
            util::tail(&util::log_since(&log, 0))
        );
    }

    /// Starts `postgres` on `self.port` and waits until it accepts connections.
    fn spawn_server(&self) -> Result<(), StartError> {
        let mut state = self.state();
        assert!(state.child.is_none(), "PostgreSQL is already running");
        let (stdout, stderr, offset) = util::log_stdio(&self.log);
        let child = self
            .server_command("postgres")
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories=\"{}\"",
                self.socket_dir.display()
            ))
            // Safe against a crash of the server (kill(), restart()), not of the machine.
            // synchronous_commit stays on: off would lose the last commits on kill().
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("run postgres");
        let child = state.child.insert(child);
        let deadline = Instant::now() + util::READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                state.child = None;
                let log = util::log_since(&self.log, offset);
                let msg = format!(
                    "postgres on 127.0.0.1:{} exited at start ({status}); {}:\n{}",
                    self.port,
                    self.log.display(),
                    util::tail(&log)
                );
                return Err(
                    if log.to_ascii_lowercase().contains("address already in use") {
                        StartError::PortTaken(msg)
                    } else {
                        StartError::Failed(msg)
                    },
                );
            }
            if self.is_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if let Some(child) = state.child.take() {
                    util::stop_child(child, &[(sys::SIGQUIT, Duration::from_secs(10))]);
                }
                return Err(StartError::Failed(format!(
                    "postgres on 127.0.0.1:{} not accepting connections after {:?}; {}:\n{}",
                    self.port,
                    util::READY_TIMEOUT,
                    self.log.display(),
                    util::tail(&util::log_since(&self.log, offset))
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn is_ready(&self) -> bool {
        self.client("pg_isready")
            .args(["-d", "postgres", "-t", "2", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn stop_server(&self, immediate: bool) {
        let child = self.state().child.take();
        if let Some(child) = child {
            let long = Duration::from_secs(30);
            let short = Duration::from_secs(10);
            if immediate {
                util::stop_child(child, &[(sys::SIGQUIT, short)]);
            } else {
                util::stop_child(child, &[(sys::SIGINT, long), (sys::SIGQUIT, short)]);
            }
        }
    }

    /// Stops the server and removes the directory (Drop, and the shared server at exit).
    fn shutdown(&self) {
        self.stop_server(false);
        let mut state = self.state();
        state.watchdog.take();
        state.temp.take();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("data", &self.data)
            .finish()
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with an `initdb`.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server in {}/*/bin (./test.sh installs it: apt-get install postgresql)",
            root.display()
        ),
    }
}

/// uid and gid of the `postgres` system user.
fn postgres_user() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
        .unwrap_or_else(|| {
            panic!("running as root, and PostgreSQL refuses to: no `postgres` user to run it as (apt-get install postgresql creates it)")
        })
}

/// A fresh temporary directory. For root it is made under /tmp (world-traversable), so that the
/// `postgres` user can reach it; otherwise under the usual temporary directory unless that path
/// is too long for a unix socket inside it.
fn temp_dir(for_other_user: bool) -> TempDir {
    let mut base = std::env::temp_dir();
    // sun_path holds 107 bytes: BASE/honeyport-pg-XXXXXX/sock/.s.PGSQL.65535
    if for_other_user || base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    if for_other_user {
        let mode = fs::metadata(&base)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert!(
            mode & 0o001 != 0,
            "{} is not traversable by the postgres user (mode {mode:o})",
            base.display()
        );
    }
    tempfile::Builder::new()
        .prefix("honeyport-pg-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("create a temporary directory in {}: {e}", base.display()))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psql_cli(pg: &Postgres, sql: &str) -> std::process::Output {
        Command::new(pg.bin.join("psql"))
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port().to_string(),
                "-U",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run psql")
    }

    #[test]
    fn starts_and_answers_psql() {
        let pg = Postgres::start();
        assert_eq!(
            pg.url(),
            format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
        );
        let out = psql_cli(&pg, "select 1");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 row"));
        // Loopback TCP only, and the settings asked for.
        assert_eq!(pg.psql("postgres", "show listen_addresses"), "127.0.0.1");
        assert_eq!(pg.psql("postgres", "show max_connections"), "200");
        assert_eq!(pg.psql("postgres", "show fsync"), "off");
        assert_eq!(pg.psql("postgres", "show server_encoding"), "UTF8");
        assert_eq!(pg.psql("postgres", "show lc_collate"), "C");
        let sockets = pg.psql("postgres", "show unix_socket_directories");
        assert!(
            Path::new(sockets.trim_matches('"')).starts_with(&pg.dir),
            "{sockets}"
        );
    }

    #[test]
    fn fresh_databases_are_distinct_and_exist() {
        let pg = shared();
        assert!(std::ptr::eq(pg, shared()), "one shared server per process");
        let a = pg.fresh_database();
        let b = pg.fresh_database();
        assert_ne!(a, b);
        let prefix = format!(
            "postgres://postgres@127.0.0.1:{}/t_{}_",
            pg.port(),
            std::process::id()
        );
        for url in [&a, &b] {
            assert!(url.starts_with(&prefix), "{url}");
            let name = url.rsplit('/').next().expect("database name");
            assert_eq!(
                pg.psql(
                    "postgres",
                    &format!("select count(*) from pg_database where datname = '{name}'")
                ),
                "1"
            );
            assert_eq!(pg.psql(name, "select current_database()"), name);
        }
        // Quoting and URL encoding of an odd name.
        let odd = format!("Odd \"name\" {}", std::process::id());
        let url = pg.create_database(&odd);
        assert!(
            url.ends_with(&format!("/Odd%20%22name%22%20{}", std::process::id())),
            "{url}"
        );
        assert_eq!(pg.psql(&odd, "select current_database()"), odd);
    }

    #[test]
    fn shared_server_takes_concurrent_databases() {
        let pg = shared();
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || pg.fresh_database()))
            .collect();
        let urls: Vec<String> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let unique: std::collections::BTreeSet<&String> = urls.iter().collect();
        assert_eq!(unique.len(), urls.len());
    }

    #[test]
    fn restart_and_kill_keep_data_and_port() {
        let mut pg = Postgres::start();
        let port = pg.port();
        let url = pg.fresh_database();
        let db = url.rsplit('/').next().expect("database name").to_owned();
        pg.psql(
            &db,
            "create table t (v text); insert into t values ('kept')",
        );

        pg.restart();
        assert_eq!(pg.port(), port);
        assert_eq!(pg.psql(&db, "select v from t"), "kept");

        // A crash (immediate stop) mid-write, then a start with crash recovery.
        pg.psql(&db, "insert into t values ('committed')");
        pg.kill();
        assert!(
            !psql_cli(&pg, "select 1").status.success(),
            "server down after kill"
        );
        pg.restart();
        assert_eq!(
            pg.psql(&db, "select string_agg(v, ',' order by v) from t"),
            "committed,kept"
        );

        pg.stop();
        assert!(
            !psql_cli(&pg, "select 1").status.success(),
            "server down after stop"
        );
        pg.restart();
        assert_eq!(pg.psql(&db, "select count(*) from t"), "2");
    }

    #[test]
    fn drop_stops_the_server_and_removes_its_directory() {
        let pg = Postgres::start();
        let dir = pg.dir.clone();
        let pid_file =
            fs::read_to_string(pg.data_dir().join("postmaster.pid")).expect("postmaster.pid");
        let pid: u32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.parse().ok())
            .expect("pid");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        if sys::is_root() {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            let uid = status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .expect("Uid line");
            // Uid: real effective saved fs
            let postgres = postgres_user().0.to_string();
            assert_eq!(
                uid.split_whitespace().nth(2),
                Some(postgres.as_str()),
                "{uid}"
            );
        }
        drop(pg);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "postgres {pid} still running"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(percent_encode("t_1-2.x~ /é"), "t_1-2.x~%20%2F%C3%A9");
    }
}
