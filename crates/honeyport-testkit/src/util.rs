//! What both fixtures share: ports, log files, stopping children, the watchdog.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::sys;

/// How long a server may take to accept connections.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many lines of a log a failure message shows.
const TAIL_LINES: usize = 40;

/// A port on 127.0.0.1 that was free a moment ago and that no fixture of this process has had
/// before (a server that loses the race for it to someone else is started again on another).
pub(crate) fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// The log file as a child's stdout and stderr (appending), and its length before the child
/// writes anything (for [`log_since`]).
pub(crate) fn log_stdio(path: &Path) -> (Stdio, Stdio, u64) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let err = file.try_clone().expect("clone log file handle");
    (Stdio::from(file), Stdio::from(err), len)
}

/// What was written to the log at `path` from byte `offset` on.
pub(crate) fn log_since(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last lines of `text`, indented, for a panic message.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let mut out = String::new();
    for line in &lines[start..] {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("    (empty)\n");
    }
    out
}

/// Waits up to `timeout` for `child` to exit; true when it has (and is reaped).
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => sleep(Duration::from_millis(10)),
        }
    }
}

/// Stops `child`: each signal in turn, until it exits within that signal's grace time; SIGKILL
/// at the end in any case.
pub(crate) fn stop_child(mut child: Child, steps: &[(i32, Duration)]) {
    for &(signal, grace) in steps {
        if !sys::signal(&mut child, signal) || wait_timeout(&mut child, grace) {
            let _ = child.wait();
            return;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The program `name` in $PATH or the usual system directories (`nats-server` is in /usr/sbin,
/// which is not always in $PATH).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The watchdog: `sh` reading its stdin, a pipe from this process. When the fixture is
/// dropped it writes `done` and the watchdog exits. When this process dies before that (abort,
/// SIGKILL, a signal from the terminal), the pipe closes: for each pid file, the watchdog
/// signals the pid in it, waits up to 10 s for it to go (then SIGKILL); then it removes the
/// server's temporary directory.
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG: &str = r#"trap '' INT TERM HUP
IFS= read -r line
[ "$line" = done ] && exit 0
sig=$1 dir=$2
shift 2
for file in "$@"; do
  pid=
  [ -f "$file" ] && read -r pid < "$file"
  case "$pid" in
    ''|*[!0-9]*) continue ;;
  esac
  kill -0 "$pid" 2>/dev/null || continue
  kill -"$sig" "$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n+1)); done
  kill -KILL "$pid" 2>/dev/null
done
n=0
while [ -e "$dir" ] && [ "$n" -lt 50 ]; do rm -rf -- "$dir" 2>/dev/null || sleep 0.1; n=$((n+1)); done
"#;

impl Watchdog {
    /// `signal` is a name for sh's `kill` (QUIT, KILL, ...), sent to the pid in each of
    /// `pid_files` that exists, in order.
    pub(crate) fn spawn(pid_files: &[&Path], signal: &str, dir: &Path) -> Watchdog {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("honeyport-testkit-watchdog")
            .arg(signal)
            .arg(dir)
            .args(pid_files)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the watchdog (/bin/sh)");
        let stdin = child.stdin.take();
        Watchdog { child, stdin }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

/// Creates `dir` (and parents) or panics.
pub(crate) fn mkdir(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
}
