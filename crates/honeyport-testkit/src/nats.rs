//! A real NATS server (Debian's `nats-server`, 2.9 on Debian 12) for a test: clients on
//! 127.0.0.1 only, on a free port, JetStream's store in a fresh temporary directory.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::sys;
use crate::util::{self, Watchdog};

/// A running (or stopped) `nats-server`. Dropping it stops the server and removes its
/// directory (store, config, log).
pub struct NatsServer {
    port: u16,
    program: PathBuf,
    dir: PathBuf,
    store_dir: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
    jetstream: bool,
    config: Option<String>,
    config_file: PathBuf,
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

impl NatsServer {
    /// Starts `nats-server` on a free 127.0.0.1 port, with JetStream (`-js`) when asked, and
    /// returns once it greets clients. Panics (with its log) when it does not within 30 s.
    pub fn start(jetstream: bool) -> NatsServer {
        NatsServer::launch(jetstream, None)
    }

    /// Starts `nats-server -c FILE` with `conf` (accounts, users, permissions, `jetstream {}`,
    /// limits ...) written to FILE in the temporary directory. The fixture decides where it
    /// listens: any top-level `listen`, `host`, `net` or `port` in `conf` is dropped and
    /// `listen: 127.0.0.1:PORT` added. Panics before starting anything when `conf` asks for
    /// another listener (`http`, `cluster`, `gateway`, `leafnodes`, `websocket`, `mqtt`, ...), an
    /// `include`, or files elsewhere (`store_dir`, `log_file`, `pid_file`, ...); JetStream's
    /// store is always [`store_dir`](NatsServer::store_dir).
    pub fn start_with_config(conf: &str) -> NatsServer {
        NatsServer::launch(false, Some(conf.to_owned()))
    }

    fn launch(jetstream: bool, config: Option<String>) -> NatsServer {
        let program = util::find_program("nats-server").unwrap_or_else(|| {
            panic!("nats-server not found (./test.sh installs it: apt-get install nats-server)")
        });
        let temp = tempfile::Builder::new()
            .prefix("honeyport-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        let dir = temp.path().to_path_buf();
        let store_dir = dir.join("store");
        util::mkdir(&store_dir);
        let pid_file = dir.join("nats-server.pid");
        let watchdog = Watchdog::spawn(&[&pid_file], "KILL", &dir);
        let mut nats = NatsServer {
            port: 0,
            program,
            store_dir,
            log: dir.join("nats-server.log"),
            pid_file,
            jetstream,
            config,
            config_file: dir.join("nats-server.conf"),
            dir,
            child: None,
            watchdog: Some(watchdog),
            temp: Some(temp),
        };
        let mut attempts = 0;
        loop {
            nats.port = util::free_port();
            if let Some(conf) = &nats.config {
                let text = loopback_config(conf, nats.port).unwrap_or_else(|e| panic!("{e}"));
                fs::write(&nats.config_file, text)
                    .unwrap_or_else(|e| panic!("write {}: {e}", nats.config_file.display()));
            }
            match nats.spawn_server() {
                Ok(()) => return nats,
                Err(StartError::PortTaken(_)) if attempts < 5 => attempts += 1,
                Err(StartError::PortTaken(msg) | StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// JetStream's store directory (`-sd`); the server keeps its data under `jetstream/` in it.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's log so far (stdout and stderr of every start).
    pub fn log(&self) -> String {
        util::log_since(&self.log, 0)
    }

    /// The `INFO {...}` line the server greets a new client with (without the CRLF), e.g. to
    /// check `"jetstream":true` or `"auth_required":true`.
    pub fn info(&self) -> String {
        read_info(self.port, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no INFO from nats-server on 127.0.0.1:{}: {e}", self.port))
    }

    /// Stops the server gracefully (SIGINT; SIGKILL after 10 s) and waits until it has exited.
    /// The store stays; [`restart`](NatsServer::restart) starts the server again.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            util::stop_child(child, &[(sys::SIGINT, Duration::from_secs(10))]);
            let _ = fs::remove_file(&self.pid_file);
        }
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            util::stop_child(child, &[(sys::SIGKILL, Duration::from_secs(10))]);
            let _ = fs::remove_file(&self.pid_file);
        }
    }

    /// Stops the server (if it is running) and starts it again on the same port with the same
    /// store and config, so JetStream's streams and messages survive.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(StartError::PortTaken(msg) | StartError::Failed(msg)) = self.spawn_server() {
            panic!("restarting nats-server: {msg}");
        }
    }

    fn spawn_server(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "nats-server is already running");
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.program);
        // Flags override the config file: clients on 127.0.0.1:PORT whatever it says.
        cmd.args(["-a", "127.0.0.1", "-p", &port])
            .arg("-sd")
            .arg(&self.store_dir)
            .arg("-P")
            .arg(&self.pid_file);
        if self.jetstream {
            cmd.arg("-js");
        }
        if self.config.is_some() {
            // What is started is what was checked: read the file back.
            let text = fs::read_to_string(&self.config_file)
                .unwrap_or_else(|e| panic!("read {}: {e}", self.config_file.display()));
            if let Err(e) = check_loopback_only(&text, self.port) {
                panic!("{}: {e}", self.config_file.display());
            }
            cmd.arg("-c").arg(&self.config_file);
        }
        let (stdout, stderr, offset) = util::log_stdio(&self.log);
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("run nats-server");
        let child = self.child.insert(child);
        let deadline = Instant::now() + util::READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = util::log_since(&self.log, offset);
                let msg = format!(
                    "nats-server on 127.0.0.1:{} exited at start ({status}); {}:\n{}",
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
            if read_info(self.port, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartError::Failed(format!(
                    "nats-server on 127.0.0.1:{} not ready after {:?}; {}:\n{}",
                    self.port,
                    util::READY_TIMEOUT,
                    self.log.display(),
                    util::tail(&util::log_since(&self.log, offset))
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        self.watchdog.take();
        self.temp.take();
    }
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Connects to 127.0.0.1:`port` and reads the server's first line, which must be `INFO `.
fn read_info(port: u16, timeout: Duration) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let line = line.trim_end();
    if line.starts_with("INFO ") {
        Ok(line.to_owned())
    } else {
        Err(format!("first line {line:?}"))
    }
}

/// Top-level keys that set the client listener; dropped from a test's config.
const CLIENT_LISTEN: [&str; 4] = ["listen", "host", "net", "port"];

/// Keys that open other listeners, reach out, or put files outside the temporary directory.
const DENIED: &[&str] = &[
    "http",
    "https",
    "http_port",
    "https_port",
    "monitor_port",
    "http_host",
    "prof_port",
    "cluster",
    "routes",
    "gateway",
    "gateways",
    "leafnodes",
    "leafnode",
    "leaf",
    "websocket",
    "ws",
    "mqtt",
    "include",
    "syslog",
    "remote_syslog",
    "resolver",
    "store_dir",
    "storedir",
    "log_file",
    "logfile",
    "pid_file",
    "pidfile",
    "ports_file_dir",
];

/// A test's config made to listen on 127.0.0.1:`port` only (see
/// [`NatsServer::start_with_config`]).
fn loopback_config(conf: &str, port: u16) -> Result<String, String> {
    let mut text = conf.to_owned();
    let mut drop: Vec<(usize, usize)> = config_keys(conf)
        .into_iter()
        .filter(|k| k.depth == 0 && CLIENT_LISTEN.contains(&k.name.as_str()))
        .map(|k| (k.start, k.line_end))
        .collect();
    drop.reverse();
    for (start, end) in drop {
        text.replace_range(start..end, "");
    }
    for key in config_keys(&text) {
        if CLIENT_LISTEN.contains(&key.name.as_str()) || denied(&text, &key) {
            return Err(format!(
                "nats-server config for a test: `{}` is not allowed here (the fixture listens on \
                 127.0.0.1:{port} only, for clients, and keeps every file in its temporary \
                 directory); config:\n{conf}",
                key.name
            ));
        }
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# honeyport-testkit: clients on loopback only\nlisten: 127.0.0.1:{port}\n"
    ));
    check_loopback_only(&text, port)?;
    Ok(text)
}

/// That `text` has exactly one listener setting, top-level `listen: 127.0.0.1:PORT`, and
/// nothing [`DENIED`].
fn check_loopback_only(text: &str, port: u16) -> Result<(), String> {
    let keys = config_keys(text);
    let mut listens = 0;
    for key in &keys {
        if key.name == "listen" && key.depth == 0 {
            let value = text[key.start + key.len..key.line_end]
                .trim_start_matches([' ', '\t', ':', '='])
                .trim_end();
            if value != format!("127.0.0.1:{port}") {
                return Err(format!("listens on {value:?}, not 127.0.0.1:{port}"));
            }
            listens += 1;
        } else if CLIENT_LISTEN.contains(&key.name.as_str()) || denied(text, key) {
            return Err(format!("`{}` is not allowed in a test's config", key.name));
        }
    }
    if listens == 1 {
        Ok(())
    } else {
        Err(format!(
            "{listens} top-level `listen` settings, not exactly one"
        ))
    }
}

fn denied(text: &str, key: &Key) -> bool {
    if key.name == "resolver" {
        // The in-memory resolver (accounts preloaded in the config) is fine.
        let value = text[key.start + key.len..key.line_end]
            .trim_start_matches([' ', '\t', ':', '='])
            .trim_end_matches([' ', '\t', '\r', ',', ';'])
            .trim_matches(['"', '\'']);
        return !value.eq_ignore_ascii_case("memory");
    }
    DENIED.contains(&key.name.as_str())
}

/// A word in a config where a key can stand.
#[derive(Debug)]
struct Key {
    /// Lowercased, without quotes (nats-server's keys are case-insensitive).
    name: String,
    /// How many `{` / `[` it is inside.
    depth: usize,
    /// Byte offsets: where it starts, its length in the text, and the end of its line.
    start: usize,
    len: usize,
    line_end: usize,
}

/// Every token of a nats-server config (quoted or bare, outside comment lines) that stands
/// where a key can: at the start of the text, of a line, or after `{`, `[`, `,`, `;`, `}` or
/// `]`. This finds every key, and some values and trailing comments too: the check errs on the
/// side of refusing.
fn config_keys(text: &str) -> Vec<Key> {
    let b = text.as_bytes();
    let line_end = |from: usize| {
        b[from..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| from + p)
    };
    let mut keys = Vec::new();
    let (mut i, mut depth, mut at_start) = (0, 0usize, true);
    while i < b.len() {
        match b[i] {
            b'\n' | b',' | b';' => {
                at_start = true;
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                at_start = true;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                at_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b':' | b'=' => i += 1,
            // Comments only where a key could stand: elsewhere `#` and `//` are read as part
            // of a value, so a key after them on the line is still seen.
            b'#' if at_start => i = line_end(i),
            b'/' if at_start && b.get(i + 1) == Some(&b'/') => i = line_end(i),
            quote @ (b'"' | b'\'') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != quote {
                    i += if b[i] == b'\\' && quote == b'"' { 2 } else { 1 };
                }
                let end = i.min(b.len());
                i = (i + 1).min(b.len());
                if at_start {
                    let name = String::from_utf8_lossy(&b[start + 1..end]).to_ascii_lowercase();
                    keys.push(Key {
                        name,
                        depth,
                        start,
                        len: i - start,
                        line_end: line_end(start),
                    });
                }
                at_start = false;
            }
            _ => {
                let start = i;
                while i < b.len() && !b" \t\r\n:=,;{}[]\"'".contains(&b[i]) {
                    i += 1;
                }
                if at_start {
                    let name = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
                    keys.push(Key {
                        name,
                        depth,
                        start,
                        len: i - start,
                        line_end: line_end(start),
                    });
                }
                at_start = false;
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A minimal NATS client session: CONNECT (with `connect` JSON), then `commands`, then
    /// reads until `until` holds for what was read, or the server closes; returns everything
    /// the server sent.
    fn session(port: u16, connect: &str, commands: &str, until: impl Fn(&str) -> bool) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(format!("CONNECT {connect}\r\n{commands}").as_bytes())
            .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !until(&String::from_utf8_lossy(&got)) && Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// A request to the JetStream API; returns the reply's payload.
    fn js_request(port: u16, subject: &str, payload: &str) -> String {
        let commands = format!(
            "SUB _INBOX.t 1\r\nPUB {subject} _INBOX.t {}\r\n{payload}\r\n",
            payload.len()
        );
        let replied = |s: &str| {
            s.find("MSG _INBOX.t")
                .is_some_and(|i| s[i..].matches("\r\n").count() >= 2)
        };
        let got = session(port, r#"{"verbose":false}"#, &commands, replied);
        let msg = got
            .find("MSG _INBOX.t")
            .unwrap_or_else(|| panic!("no reply to {subject}: {got:?}"));
        got[msg..].lines().nth(1).expect("reply payload").to_owned()
    }

    #[test]
    fn jetstream_server_starts_and_keeps_streams_across_restarts() {
        let mut nats = NatsServer::start(true);
        let port = nats.port();
        assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
        let info = nats.info();
        assert!(info.contains("\"jetstream\":true"), "{info}");
        assert!(info.contains("\"host\":\"127.0.0.1\""), "{info}");

        let created = js_request(
            port,
            "$JS.API.STREAM.CREATE.T",
            r#"{"name":"T","subjects":["t.>"],"storage":"file"}"#,
        );
        assert!(
            created.contains("\"name\":\"T\"") && !created.contains("\"error\""),
            "{created}"
        );
        let ack = js_request(port, "t.one", "hello");
        assert!(ack.contains("\"stream\":\"T\""), "{ack}");
        assert!(nats.store_dir().join("jetstream").is_dir());

        nats.restart();
        assert_eq!(nats.port(), port);
        let info = js_request(port, "$JS.API.STREAM.INFO.T", "");
        assert!(info.contains("\"messages\":1"), "{info}");

        // After a crash too.
        nats.kill();
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "server down after kill"
        );
        nats.restart();
        let info = js_request(port, "$JS.API.STREAM.INFO.T", "");
        assert!(info.contains("\"messages\":1"), "{info}");
    }

    #[test]
    fn plain_server_has_no_jetstream_and_drop_cleans_up() {
        let nats = NatsServer::start(false);
        let info = nats.info();
        assert!(!info.contains("\"jetstream\":true"), "{info}");
        let pong = session(nats.port(), r#"{"verbose":false}"#, "PING\r\n", |s| {
            s.contains("PONG")
        });
        assert!(pong.contains("PONG"), "{pong}");
        let dir = nats.dir.clone();
        let pid: u32 = fs::read_to_string(&nats.pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        drop(nats);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "nats-server {pid} still running"
        );
    }

    #[test]
    fn config_with_a_user_requires_auth() {
        let nats = NatsServer::start_with_config(
            "# a test's accounts\nport: 4222\nauthorization {\n  user: alice\n  password: \"s3cret\"\n}\n",
        );
        let info = nats.info();
        assert!(info.contains("\"auth_required\":true"), "{info}");
        assert!(
            info.contains(&format!("\"port\":{}", nats.port())),
            "{info}"
        );
        let denied = session(nats.port(), r#"{"verbose":false}"#, "PING\r\n", |s| {
            s.contains("-ERR")
        });
        assert!(denied.contains("-ERR"), "{denied}");
        let allowed = session(
            nats.port(),
            r#"{"verbose":false,"user":"alice","pass":"s3cret"}"#,
            "PING\r\n",
            |s| s.contains("PONG"),
        );
        assert!(
            allowed.contains("PONG") && !allowed.contains("-ERR"),
            "{allowed}"
        );
        let written = fs::read_to_string(&nats.config_file).expect("config");
        assert!(!written.contains("port: 4222"), "{written}");
    }

    #[test]
    #[should_panic(expected = "`http` is not allowed")]
    fn config_with_another_listener_is_refused() {
        NatsServer::start_with_config("http: 0.0.0.0:8222\n");
    }

    #[test]
    fn config_check() {
        let ok = loopback_config(
            "listen: 0.0.0.0:4222\nHost = 10.0.0.1\njetstream {max_mem: 1M}\n",
            5000,
        )
        .expect("ok");
        assert!(!ok.contains("0.0.0.0") && !ok.contains("10.0.0.1"), "{ok}");
        assert!(ok.ends_with("listen: 127.0.0.1:5000\n"), "{ok}");
        check_loopback_only(&ok, 5000).expect("checked");
        assert!(check_loopback_only(&ok, 5001).is_err());
        assert!(loopback_config(
            "resolver: MEMORY\naccounts { A { users: [{user: a, password: b}] } }",
            1
        )
        .is_ok());
        for bad in [
            "cluster { listen: 127.0.0.1:6222 }",
            "leafnodes {\n remotes: [{url: \"nats://x\"}]\n}",
            "\"HTTP\": 8222",
            "monitor_port 8222",
            "websocket { port: 8080 }",
            "include ./other.conf",
            "jetstream { store_dir: /var/lib/nats }",
            "resolver: URL(http://example/)",
            "accounts { A { port: 1 } }",
            "authorization { user: a, password: b#c, http: 1 }",
            "debug: true // x, http: 1",
            "authorization { user: a, password: \"b\"\n",
            "x: \"unterminated\nlisten: 1",
        ] {
            assert!(loopback_config(bad, 1).is_err(), "accepted {bad:?}");
        }
        // Keys in comments and values do not count.
        assert!(loopback_config(
            "# http: 8222\n// cluster {}\nauthorization { user: http, password: \"cluster\" }",
            1
        )
        .is_ok());
    }
}
