//! The `ftp` persona: an FTP server face (vsftpd 3.0.3 or ProFTPD on Debian) that records what
//! FTP bots and scanners do: every command line, USER/PASS exactly as sent, and uploads (STOR)
//! by sha256.
//!
//! The dialogue is a pure state machine ([`Session::on_input`], [`Session::on_line`]), tested
//! with byte strings; [`Ftp::serve`] only moves bytes and events, and runs the passive data
//! connections.
//!
//! Passive mode only: PASV/EPSV open a listener on the control connection's local address
//! (a random port) that accepts one connection, from the control connection's peer address
//! only. PORT/EPRT are refused: the sensor never connects out to an address the peer names.
//!
//! Limits, each with its reason:
//! - `max_line` (default 4096, vsftpd's command buffer): a longer line is answered with 500,
//!   recorded (its first `max_line` bytes) and the rest of it discarded.
//! - `max_commands` (default 200): then "421" and close, so a session cannot loop forever.
//! - `max_upload` (default 10MiB): STOR data beyond it is not read; the upload is recorded
//!   (sha256 of what was kept) with an `ftp.upload_too_large` tag and refused with 552.
//! - `data_timeout` (default 10s): how long a passive listener waits for its connection, and
//!   how long a data transfer may sit idle.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use honeyport_event::{EventKind, Payload, Transport};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::creds::{CredPolicy, CredentialsRaw};
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::listener::conn::{Conn, End};

/// `type = "ftp"`. Every field is optional so that a persona can inherit another and a
/// listener can override single fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpRaw {
    /// Another persona whose fields this one starts from.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// Which product to imitate: "vsftpd" (3.0.3, default) or "proftpd" (Debian). Picks the
    /// banner and the reply texts.
    pub profile: Option<String>,
    /// The greeting line instead of the profile's (no CRLF needed). `{host}` is replaced by
    /// the connection's local address as ProFTPD shows it (`::ffff:192.0.2.1`).
    pub banner: Option<String>,
    /// Accept the users `anonymous` and `ftp` with any password. Default true.
    pub anonymous: Option<bool>,
    /// Longest command line in bytes. Default 4096.
    pub max_line: Option<NumOrStr>,
    /// Most commands per session before "421" and close. Default 200.
    pub max_commands: Option<u32>,
    /// Largest upload (STOR) read, in bytes, e.g. "10MiB". Default 10MiB, at most 256MiB.
    pub max_upload: Option<NumOrStr>,
    /// Seconds a passive listener waits for the data connection, and a transfer may be idle.
    /// Default 10.
    pub data_timeout: Option<u64>,
    /// Which credentials get in besides anonymous (see [`super::creds`]).
    pub credentials: Option<CredentialsRaw>,
}

const DEFAULT_MAX_LINE: u64 = 4096;
const DEFAULT_MAX_UPLOAD: u64 = 10 << 20;
const MAX_MAX_UPLOAD: u64 = 256 << 20;
const DEFAULT_DATA_TIMEOUT: u64 = 10;

impl FtpRaw {
    /// A copy with unset fields taken from `base`; credential fields merge one by one.
    pub fn merged_over(&self, base: &FtpRaw) -> FtpRaw {
        let mut m = crate::persona::merge_fields!(
            FtpRaw,
            self,
            base,
            [inherit, description, profile, banner, anonymous, max_line, max_commands, max_upload, data_timeout], credentials: None
        );
        m.credentials = match (&self.credentials, &base.credentials) {
            (Some(a), Some(b)) => Some(a.merged_over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        m.inherit = base.inherit.clone();
        m
    }

    pub fn validate(&self, at: &str, _base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(pr) = &self.profile {
            if Profile::parse(pr).is_none() {
                p.at(
                    &format!("{at}.profile"),
                    format!("{pr:?} is not vsftpd or proftpd"),
                );
            }
        }
        if let Some(b) = &self.banner {
            if b.contains('\r') || b.contains('\n') {
                p.at(
                    &format!("{at}.banner"),
                    "one line, without CR/LF (CRLF is added)",
                );
            }
        }
        if let Some(m) = &self.max_line {
            match m.size() {
                Ok(n) if (64..=1 << 20).contains(&n) => {}
                Ok(_) => p.at(&format!("{at}.max_line"), "must be 64 bytes to 1MiB"),
                Err(e) => p.at(&format!("{at}.max_line"), e),
            }
        }
        if let Some(m) = &self.max_upload {
            match m.size() {
                Ok(n) if n <= MAX_MAX_UPLOAD => {}
                Ok(_) => p.at(&format!("{at}.max_upload"), "must be at most 256MiB"),
                Err(e) => p.at(&format!("{at}.max_upload"), e),
            }
        }
        if self.max_commands == Some(0) {
            p.at(&format!("{at}.max_commands"), "must be at least 1");
        }
        if let Some(t) = self.data_timeout {
            if !(1..=600).contains(&t) {
                p.at(&format!("{at}.data_timeout"), "must be 1 to 600 seconds");
            }
        }
        if let Some(c) = &self.credentials {
            c.validate(&format!("{at}.credentials"), p);
        }
    }

    /// Checks that only make sense on the merged persona.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if transports.contains(&Transport::Udp) {
            p.at(&format!("{at}.persona"), "the ftp persona needs TCP");
        }
    }

    pub fn build(&self, _base_dir: &Path) -> Result<Ftp, String> {
        let profile = self
            .profile
            .as_deref()
            .map(|p| Profile::parse(p).ok_or_else(|| format!("unknown profile {p:?}")))
            .transpose()?
            .unwrap_or(Profile::Vsftpd);
        let size = |v: &Option<NumOrStr>, d: u64| v.as_ref().map(|v| v.size()).unwrap_or(Ok(d));
        Ok(Ftp {
            profile,
            banner: self
                .banner
                .clone()
                .unwrap_or_else(|| profile.banner().to_string()),
            anonymous: self.anonymous.unwrap_or(true),
            max_line: size(&self.max_line, DEFAULT_MAX_LINE)? as usize,
            max_commands: self.max_commands.unwrap_or(200),
            max_upload: size(&self.max_upload, DEFAULT_MAX_UPLOAD)?.min(MAX_MAX_UPLOAD),
            data_timeout: Duration::from_secs(self.data_timeout.unwrap_or(DEFAULT_DATA_TIMEOUT)),
            creds: self.credentials.clone().unwrap_or_default().build()?,
        })
    }
}

/// The product imitated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Vsftpd,
    Proftpd,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "vsftpd" => Some(Profile::Vsftpd),
            "proftpd" => Some(Profile::Proftpd),
            _ => None,
        }
    }

    fn banner(self) -> &'static str {
        match self {
            Profile::Vsftpd => "220 (vsFTPd 3.0.3)",
            Profile::Proftpd => "220 ProFTPD Server (Debian) [{host}]",
        }
    }
}

/// A built ftp persona, shared by every session of its listener.
pub struct Ftp {
    profile: Profile,
    banner: String,
    anonymous: bool,
    max_line: usize,
    max_commands: u32,
    max_upload: u64,
    data_timeout: Duration,
    creds: CredPolicy,
}

/// A data transfer the serve loop runs over the passive connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Xfer {
    /// Send this directory listing, then close.
    List(Vec<u8>),
    /// Send this file, then close.
    Send(Vec<u8>),
    /// Receive an upload for this path (as sent).
    Store(Vec<u8>),
}

/// What the serve loop does after sending a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    Continue,
    /// Close the session (QUIT, a limit).
    Close,
    /// Open a passive listener and answer with its address (`extended`: EPSV).
    Passive {
        extended: bool,
    },
    /// Run a transfer over the passive connection (the 150 line is the reply's text).
    Transfer(Xfer),
}

/// The answer to one line: bytes to send (possibly none), events to record, what next.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub text: Vec<u8>,
    pub events: Vec<EventKind>,
    pub then: Then,
}

/// The fake tree: `/` holds `pub/` (empty) and `welcome.msg`.
const WELCOME: &[u8] = b"Welcome to the FTP archive.\r\n";
const LISTING: &[u8] = b"drwxr-xr-x    2 0        0            4096 Mar 14  2023 pub\r\n\
-rw-r--r--    1 0        0              29 Mar 14  2023 welcome.msg\r\n";
const MDTM: &str = "20230314091502";

fn tag(rule: &str, len: u64) -> EventKind {
    EventKind::RuleMatch {
        rule: rule.to_string(),
        action: "tag".to_string(),
        match_len: len,
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One session's dialogue: a pure state machine, no I/O.
pub struct Session<'a> {
    f: &'a Ftp,
    src: IpAddr,
    /// The local address as ProFTPD shows it in its banner.
    host: String,
    user: Option<Vec<u8>>,
    logged_in: bool,
    cwd: &'static str,
    /// A passive listener is (believed) open for the next transfer.
    pasv: bool,
    /// The transfer under way is a directory listing (vsftpd ends those differently).
    listing: bool,
    buf: Vec<u8>,
    discarding: bool,
    commands: u32,
    closed: bool,
}

impl<'a> Session<'a> {
    /// A new dialogue with the peer at `src`, on the local address `local`.
    pub fn new(f: &'a Ftp, src: IpAddr, local: IpAddr) -> Self {
        let host = match local {
            IpAddr::V4(v4) => format!("::ffff:{v4}"),
            IpAddr::V6(v6) => v6.to_string(),
        };
        Session {
            f,
            src,
            host,
            user: None,
            logged_in: false,
            cwd: "/",
            pasv: false,
            listing: false,
            buf: Vec::new(),
            discarding: false,
            commands: 0,
            closed: false,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!("{}\r\n", self.f.banner.replace("{host}", &self.host)).into_bytes()
    }

    fn vs(&self) -> bool {
        self.f.profile == Profile::Vsftpd
    }

    fn say(&self, vsftpd: &str, proftpd: &str, events: Vec<EventKind>) -> Reply {
        let t = if self.vs() { vsftpd } else { proftpd };
        Reply {
            text: format!("{t}\r\n").into_bytes(),
            events,
            then: Then::Continue,
        }
    }

    /// The 227/229 reply for a passive listener at `addr`.
    pub fn passive_reply(&self, addr: SocketAddr, extended: bool) -> Vec<u8> {
        let p = addr.port();
        match (extended, addr.ip()) {
            (false, IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!(
                    "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                    o[0],
                    o[1],
                    o[2],
                    o[3],
                    p >> 8,
                    p & 0xff
                )
                .into_bytes()
            }
            _ => format!("229 Entering Extended Passive Mode (|||{p}|)\r\n").into_bytes(),
        }
    }

    /// The reply after a transfer: `Ok` when it completed.
    pub fn transfer_done(&mut self, ok: Result<(), &'static str>) -> Vec<u8> {
        self.pasv = false;
        let t = match ok {
            Ok(()) if self.vs() && self.listing => "226 Directory send OK.",
            Ok(()) if self.vs() => "226 Transfer complete.",
            Ok(()) => "226 Transfer complete",
            Err("no connection") if self.vs() => "425 Failed to establish connection.",
            Err("no connection") => "425 Unable to build data connection: Connection timed out",
            Err("too large") if self.vs() => "552 Exceeded storage allocation.",
            Err("too large") => "552 Transfer aborted. Disk quota exceeded",
            Err(_) if self.vs() => "426 Failure reading network stream.",
            Err(_) => "426 Transfer aborted. Data connection closed",
        };
        format!("{t}\r\n").into_bytes()
    }

    /// A passive listener could not be opened (local bind failure).
    pub fn passive_failed(&mut self) -> Vec<u8> {
        self.pasv = false;
        b"425 Could not listen for passive connection.\r\n".to_vec()
    }

    /// Handles one read's worth of bytes: complete lines in order (the serve loop acts on
    /// each reply's `then` before sending the next), a partial line kept for the next read.
    /// Nothing is answered after a reply that closes.
    pub fn on_input(&mut self, mut bytes: &[u8]) -> Vec<Reply> {
        let mut out = Vec::new();
        while !bytes.is_empty() && !self.closed {
            let (chunk, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], true),
                None => (bytes, false),
            };
            bytes = &bytes[chunk.len()..];
            if self.discarding {
                self.discarding = !complete;
                continue;
            }
            let room = self.f.max_line.saturating_sub(self.buf.len());
            if chunk.len() > room {
                self.buf.extend_from_slice(&chunk[..room]);
                let line = std::mem::take(&mut self.buf);
                self.discarding = !complete;
                out.push(self.overlong(&line));
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if !complete {
                break;
            }
            let line = std::mem::take(&mut self.buf);
            out.push(self.on_line(&line));
        }
        out
    }

    fn overlong(&mut self, prefix: &[u8]) -> Reply {
        let events = vec![
            EventKind::CommandInput {
                input: Payload(prefix.to_vec()),
                recognised: false,
            },
            tag("ftp.line_too_long", prefix.len() as u64),
        ];
        self.count(
            events,
            "500 Input line too long.",
            "500 Command line too long",
        )
    }

    /// Counts a command toward `max_commands`; closes when it trips, else answers `vs`/`pro`.
    fn count(&mut self, events: Vec<EventKind>, vs: &str, pro: &str) -> Reply {
        self.commands = self.commands.saturating_add(1);
        if self.commands > self.f.max_commands {
            self.closed = true;
            return Reply {
                text: b"421 Too many commands, closing control connection.\r\n".to_vec(),
                events,
                then: Then::Close,
            };
        }
        self.say(vs, pro, events)
    }

    /// Handles one complete line (with or without its CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> Reply {
        if self.closed {
            return Reply {
                text: Vec::new(),
                events: Vec::new(),
                then: Then::Close,
            };
        }
        let line = strip_eol(line);
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let verb = verb.to_ascii_uppercase();
        let v = verb.as_slice();
        let recognised = matches!(
            v,
            b"USER"
                | b"PASS"
                | b"SYST"
                | b"FEAT"
                | b"PWD"
                | b"XPWD"
                | b"CWD"
                | b"XCWD"
                | b"CDUP"
                | b"XCUP"
                | b"TYPE"
                | b"MODE"
                | b"STRU"
                | b"NOOP"
                | b"QUIT"
                | b"HELP"
                | b"SIZE"
                | b"MDTM"
                | b"PASV"
                | b"EPSV"
                | b"PORT"
                | b"EPRT"
                | b"LIST"
                | b"NLST"
                | b"RETR"
                | b"STOR"
                | b"OPTS"
                | b"MKD"
                | b"RMD"
                | b"DELE"
                | b"RNFR"
                | b"RNTO"
                | b"SITE"
                | b"ABOR"
                | b"REST"
                | b"STAT"
                | b"AUTH"
        );
        let events = vec![EventKind::CommandInput {
            input: Payload(line.to_vec()),
            recognised,
        }];
        let mut r = self.count(events, "", "");
        if r.then == Then::Close {
            return r;
        }
        let events = std::mem::take(&mut r.events);
        if !recognised {
            let pro = format!("500 {} not understood", String::from_utf8_lossy(v));
            return self.say("500 Unknown command.", &pro, events);
        }
        // Allowed before login.
        match v {
            b"USER" => return self.user(arg, events),
            b"PASS" => return self.pass(arg, events),
            b"QUIT" => {
                self.closed = true;
                let mut r = self.say("221 Goodbye.", "221 Goodbye.", events);
                r.then = Then::Close;
                return r;
            }
            b"FEAT" => {
                let text = if self.vs() {
                    "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n \
                     SIZE\r\n TVFS\r\n211 End"
                } else {
                    "211-Features:\r\n LANG en-US*\r\n MDTM\r\n MFMT\r\n TVFS\r\n UTF8\r\n \
                     MFF modify;UNIX.group;UNIX.mode;\r\n \
                     MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.mode*;UNIX.owner*;\r\n \
                     SITE MKDIR\r\n SITE RMDIR\r\n SITE UTIME\r\n SITE SYMLINK\r\n REST STREAM\r\n \
                     SITE COPY\r\n SIZE\r\n211 End"
                };
                return self.say(text, text, events);
            }
            b"NOOP" => return self.say("200 NOOP ok.", "200 NOOP command successful", events),
            b"AUTH" => {
                return self.say(
                    "530 Please login with USER and PASS.",
                    "500 AUTH not understood",
                    events,
                )
            }
            b"OPTS" if arg.eq_ignore_ascii_case(b"UTF8 ON") => {
                return self.say("200 Always in UTF8 mode.", "200 UTF8 set to on", events)
            }
            b"SYST" if !self.vs() => return self.say("215 UNIX Type: L8", "", events),
            b"HELP" if !self.vs() => {
                return self.say(
                    "",
                    "214-The following commands are recognized (* =>'s unimplemented):\r\n \
                     CWD     XCWD    CDUP    XCUP    SMNT*   QUIT    PORT    PASV    \r\n \
                     EPRT    EPSV    ALLO*   RNFR    RNTO    DELE    MDTM    RMD     \r\n \
                     XRMD    MKD     XMKD    PWD     XPWD    SIZE    SYST    HELP    \r\n \
                     NOOP    FEAT    OPTS    HOST    CLNT    AUTH*   CCC*    CONF*   \r\n \
                     ENC*    MIC*    PBSZ*   PROT*   TYPE    STRU    MODE    RETR    \r\n \
                     STOR    STOU    APPE    REST    ABOR    RANG    USER    PASS    \r\n \
                     ACCT*   REIN*   LIST    NLST    STAT    SITE    MLSD    MLST    \r\n\
                     214 Direct comments to root@localhost",
                    events,
                )
            }
            _ => {}
        }
        if !self.logged_in {
            return self.say(
                "530 Please login with USER and PASS.",
                "530 Please login with USER and PASS",
                events,
            );
        }
        let arg_s = String::from_utf8_lossy(arg.trim_ascii()).into_owned();
        match v {
            b"SYST" => self.say("215 UNIX Type: L8", "215 UNIX Type: L8", events),
            b"HELP" => self.say(
                "214-The following commands are recognized.\r\n \
                 ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n \
                 MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\r\n \
                 RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\r\n \
                 XPWD XRMD\r\n214 Help OK.",
                "",
                events,
            ),
            b"PWD" | b"XPWD" => {
                let t = format!("257 \"{}\" is the current directory", self.cwd);
                self.say(&t, &t, events)
            }
            b"CWD" | b"XCWD" | b"CDUP" | b"XCUP" => {
                let target = if v.ends_with(b"UP") {
                    Some("/")
                } else {
                    match self.resolve(arg.trim_ascii()) {
                        Some(Node::Root) => Some("/"),
                        Some(Node::Pub) => Some("/pub"),
                        _ => None,
                    }
                };
                match target {
                    Some(t) => {
                        self.cwd = t;
                        self.say(
                            "250 Directory successfully changed.",
                            if v.ends_with(b"UP") {
                                "250 CDUP command successful"
                            } else {
                                "250 CWD command successful"
                            },
                            events,
                        )
                    }
                    None => self.say(
                        "550 Failed to change directory.",
                        &format!("550 {arg_s}: No such file or directory"),
                        events,
                    ),
                }
            }
            b"TYPE" => match arg.trim_ascii().to_ascii_uppercase().as_slice() {
                b"I" | b"L 8" => {
                    self.say("200 Switching to Binary mode.", "200 Type set to I", events)
                }
                b"A" | b"A N" => {
                    self.say("200 Switching to ASCII mode.", "200 Type set to A", events)
                }
                _ => self.say(
                    "500 Unrecognised TYPE command.",
                    &format!("504 TYPE not implemented for '{arg_s}' parameter"),
                    events,
                ),
            },
            b"MODE" => match arg.trim_ascii().to_ascii_uppercase().as_slice() {
                b"S" => self.say("200 Mode set to S.", "200 Mode set to S", events),
                _ => self.say(
                    "504 Bad MODE command.",
                    &format!("504 '{arg_s}' unsupported transfer mode"),
                    events,
                ),
            },
            b"STRU" => match arg.trim_ascii().to_ascii_uppercase().as_slice() {
                b"F" => self.say("200 Structure set to F.", "200 Structure set to F", events),
                _ => self.say(
                    "504 Bad STRU command.",
                    &format!("504 '{arg_s}' unsupported structure type"),
                    events,
                ),
            },
            b"SIZE" => match self.resolve(arg.trim_ascii()) {
                Some(Node::Welcome) => {
                    let t = format!("213 {}", WELCOME.len());
                    self.say(&t, &t, events)
                }
                _ => self.say(
                    "550 Could not get file size.",
                    &format!("550 {arg_s}: No such file or directory"),
                    events,
                ),
            },
            b"MDTM" => match self.resolve(arg.trim_ascii()) {
                Some(Node::Welcome) => {
                    let t = format!("213 {MDTM}");
                    self.say(&t, &t, events)
                }
                _ => self.say(
                    "550 Could not get file modification time.",
                    &format!("550 {arg_s}: No such file or directory"),
                    events,
                ),
            },
            b"PASV" | b"EPSV" => {
                self.pasv = true;
                Reply {
                    text: Vec::new(),
                    events,
                    then: Then::Passive {
                        extended: v == b"EPSV",
                    },
                }
            }
            b"PORT" | b"EPRT" => {
                let mut events = events;
                events.push(tag("ftp.active_mode_refused", arg.len() as u64));
                self.say(
                    "500 Illegal PORT command.",
                    "500 Illegal PORT command",
                    events,
                )
            }
            b"LIST" | b"NLST" => {
                let body = match (self.cwd, v) {
                    ("/pub", _) => Vec::new(),
                    (_, b"NLST") => b"pub\r\nwelcome.msg\r\n".to_vec(),
                    _ => LISTING.to_vec(),
                };
                self.transfer(
                    "150 Here comes the directory listing.",
                    "150 Opening ASCII mode data connection for file list",
                    Xfer::List(body),
                    events,
                )
            }
            b"RETR" => match self.resolve(arg.trim_ascii()) {
                Some(Node::Welcome) => self.transfer(
                    &format!(
                        "150 Opening BINARY mode data connection for {arg_s} ({} bytes).",
                        WELCOME.len()
                    ),
                    &format!(
                        "150 Opening BINARY mode data connection for {arg_s} ({} bytes)",
                        WELCOME.len()
                    ),
                    Xfer::Send(WELCOME.to_vec()),
                    events,
                ),
                _ => self.say(
                    "550 Failed to open file.",
                    &format!("550 {arg_s}: No such file or directory"),
                    events,
                ),
            },
            b"STOR" => {
                if arg.trim_ascii().is_empty() {
                    return self.say(
                        "553 Could not create file.",
                        "500 'STOR' not understood",
                        events,
                    );
                }
                self.transfer(
                    "150 Ok to send data.",
                    &format!("150 Opening BINARY mode data connection for {arg_s}"),
                    Xfer::Store(arg.to_vec()),
                    events,
                )
            }
            b"REST" => self.say(
                &format!("350 Restart position accepted ({arg_s})."),
                &format!("350 Restarting at {arg_s}. Send STORE or RETRIEVE to initiate transfer"),
                events,
            ),
            b"ABOR" => self.say(
                "225 No transfer to ABOR.",
                "226 Abort successful",
                events,
            ),
            b"STAT" => self.say(
                "211-FTP server status:\r\n     Connected to 127.0.0.1\r\n     \
                 Logged in as ftp\r\n     TYPE: ASCII\r\n     No session bandwidth limit\r\n     \
                 Session timeout in seconds is 300\r\n     Control connection is plain text\r\n     \
                 Data connections will be plain text\r\n     vsFTPd 3.0.3 - secure, fast, stable\r\n\
                 211 End of status",
                "211-Status of 'ProFTPD'\r\n Connected from 127.0.0.1\r\n \
                 Logged in as ftp\r\n TYPE: ASCII, STRUcture: File, Mode: Stream\r\n \
                 No data connection\r\n211 End of status",
                events,
            ),
            b"OPTS" => self.say("501 Option not understood.", "501 OPTS: unsupported", events),
            b"SITE" => self.say("500 Unknown SITE command.", "500 SITE not understood", events),
            _ => self.say(
                "550 Permission denied.",
                &format!("550 {arg_s}: Permission denied"),
                events,
            ),
        }
    }

    fn transfer(&mut self, vs: &str, pro: &str, x: Xfer, events: Vec<EventKind>) -> Reply {
        if !self.pasv {
            return self.say(
                "425 Use PORT or PASV first.",
                "425 Unable to build data connection: No such file or directory",
                events,
            );
        }
        self.listing = matches!(x, Xfer::List(_));
        let mut r = self.say(vs, pro, events);
        r.then = Then::Transfer(x);
        r
    }

    fn user(&mut self, arg: &[u8], events: Vec<EventKind>) -> Reply {
        if self.logged_in {
            return self.say(
                "530 Can't change to another user.",
                "530 You're already logged in",
                events,
            );
        }
        let anon = self.is_anonymous(arg);
        self.user = Some(arg.to_vec());
        let pro = if anon {
            "331 Anonymous login ok, send your complete email address as your password".to_string()
        } else {
            format!("331 Password required for {}", String::from_utf8_lossy(arg))
        };
        self.say("331 Please specify the password.", &pro, events)
    }

    fn is_anonymous(&self, user: &[u8]) -> bool {
        self.f.anonymous
            && (user.eq_ignore_ascii_case(b"anonymous") || user.eq_ignore_ascii_case(b"ftp"))
    }

    fn pass(&mut self, arg: &[u8], mut events: Vec<EventKind>) -> Reply {
        if self.logged_in {
            return self.say(
                "230 Already logged in.",
                "503 You are already logged in",
                events,
            );
        }
        let Some(user) = self.user.take() else {
            return self.say(
                "503 Login with USER first.",
                "503 Login with USER first",
                events,
            );
        };
        let anon = self.is_anonymous(&user);
        let ok = anon || self.f.creds.check(self.src, &user, arg);
        let username = Payload(user.clone());
        let password = Payload(arg.to_vec());
        let method = "ftp".to_string();
        if ok {
            events.push(EventKind::LoginSuccess {
                username,
                password,
                method,
            });
            self.logged_in = true;
            let pro = if anon {
                "230 Anonymous access granted, restrictions apply".to_string()
            } else {
                format!("230 User {} logged in", String::from_utf8_lossy(&user))
            };
            self.say("230 Login successful.", &pro, events)
        } else {
            events.push(EventKind::LoginFailed {
                username,
                password,
                method,
            });
            self.say("530 Login incorrect.", "530 Login incorrect.", events)
        }
    }

    fn resolve(&self, arg: &[u8]) -> Option<Node> {
        let path = if arg.starts_with(b"/") {
            arg.to_vec()
        } else if self.cwd == "/" {
            [b"/", arg].concat()
        } else {
            [self.cwd.as_bytes(), b"/", arg].concat()
        };
        let mut parts: Vec<&[u8]> = Vec::new();
        for p in path.split(|&b| b == b'/') {
            match p {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        match parts.as_slice() {
            [] => Some(Node::Root),
            [b"pub"] => Some(Node::Pub),
            [b"welcome.msg"] => Some(Node::Welcome),
            _ => None,
        }
    }
}

enum Node {
    Root,
    Pub,
    Welcome,
}

impl Ftp {
    /// Serves one session.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        let meta = conn.meta().clone();
        let mut d = Session::new(self, meta.src.ip(), meta.dst.ip());
        match self.run(conn, &mut d).await {
            Ok(()) => End::persona(),
            Err(end) => end,
        }
    }

    async fn run(&self, conn: &mut Conn, d: &mut Session<'_>) -> Result<(), End> {
        conn.write(&d.greeting()).await?;
        let mut passive: Option<TcpListener> = None;
        loop {
            let data = conn.read().await?;
            for r in d.on_input(&data) {
                for ev in r.events {
                    conn.emit(ev).await;
                }
                conn.write(&r.text).await?;
                match r.then {
                    Then::Continue => {}
                    Then::Close => return Ok(()),
                    Then::Passive { extended } => {
                        // One listener at a time: a new PASV drops the old one.
                        passive = None;
                        let local = SocketAddr::new(conn.meta().dst.ip(), 0);
                        let text = match TcpListener::bind(local).await {
                            Ok(l) => match l.local_addr() {
                                Ok(a) => {
                                    passive = Some(l);
                                    d.passive_reply(a, extended)
                                }
                                Err(_) => d.passive_failed(),
                            },
                            Err(_) => d.passive_failed(),
                        };
                        conn.write(&text).await?;
                    }
                    Then::Transfer(x) => {
                        let result = match passive.take() {
                            Some(l) => self.transfer(conn, l, x).await?,
                            None => Err("no connection"),
                        };
                        conn.write(&d.transfer_done(result)).await?;
                    }
                }
            }
        }
    }

    /// Accepts the data connection (from the control peer's address only) and runs `x`.
    /// `Err(End)` only when the session itself must end (shutdown, session deadline).
    async fn transfer(
        &self,
        conn: &mut Conn,
        l: TcpListener,
        x: Xfer,
    ) -> Result<Result<(), &'static str>, End> {
        let peer = conn.meta().src.ip();
        let accept = async {
            loop {
                match l.accept().await {
                    Ok((s, a)) if a.ip() == peer => return Some(s),
                    // Another address: dropped (no bouncing through us), keep waiting.
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        };
        let stream = tokio::select! {
            r = conn.sleep(self.data_timeout) => {
                r?;
                return Ok(Err("no connection"));
            }
            s = accept => s,
        };
        drop(l);
        let Some(mut stream) = stream else {
            return Ok(Err("no connection"));
        };
        match x {
            Xfer::List(body) | Xfer::Send(body) => {
                let r = tokio::select! {
                    r = conn.sleep(self.data_timeout) => { r?; Err("timeout") }
                    r = async {
                        stream.write_all(&body).await?;
                        stream.shutdown().await
                    } => r.map_err(|_| "write failed"),
                };
                Ok(r)
            }
            Xfer::Store(path) => {
                let (hash, len, too_large, r) = self.receive(conn, &mut stream).await?;
                conn.emit(EventKind::FileWrite {
                    path: Payload(path),
                    sha256: hash,
                    len,
                })
                .await;
                if too_large {
                    conn.emit(tag("ftp.upload_too_large", len)).await;
                    return Ok(Err("too large"));
                }
                Ok(r)
            }
        }
    }

    /// Reads an upload until EOF or `max_upload`; each read within `data_timeout`.
    async fn receive(
        &self,
        conn: &mut Conn,
        stream: &mut TcpStream,
    ) -> Result<(String, u64, bool, Result<(), &'static str>), End> {
        let mut h = Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        let r = loop {
            let n = tokio::select! {
                r = conn.sleep(self.data_timeout) => { r?; break Err("timeout"); }
                n = stream.read(&mut buf) => n,
            };
            match n {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let keep = (n as u64).min(self.max_upload - len) as usize;
                    h.update(&buf[..keep]);
                    len += keep as u64;
                    if keep < n {
                        return Ok((hex::encode(h.finalize()), len, true, Err("too large")));
                    }
                }
                Err(_) => break Err("read failed"),
            }
        };
        Ok((hex::encode(h.finalize()), len, false, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_src: &str) -> Ftp {
        let raw: FtpRaw = toml::from_str(toml_src).unwrap();
        raw.build(Path::new(".")).unwrap()
    }

    fn text(r: &Reply) -> String {
        String::from_utf8_lossy(&r.text).into_owned()
    }

    const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn login_events(r: &Reply) -> Vec<(bool, Vec<u8>, Vec<u8>)> {
        r.events
            .iter()
            .filter_map(|e| match e {
                EventKind::LoginFailed {
                    username, password, ..
                } => Some((false, username.0.clone(), password.0.clone())),
                EventKind::LoginSuccess {
                    username, password, ..
                } => Some((true, username.0.clone(), password.0.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn vsftpd_login_refused_then_anonymous_accepted() {
        let f = build("[credentials]\naccept = []\naccept_any_after = 0");
        let mut d = Session::new(&f, SRC, LOCAL);
        assert_eq!(d.greeting(), b"220 (vsFTPd 3.0.3)\r\n");
        assert_eq!(
            text(&d.on_line(b"PWD\r\n")),
            "530 Please login with USER and PASS.\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"PASS x\r\n")),
            "503 Login with USER first.\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"USER root\r\n")),
            "331 Please specify the password.\r\n"
        );
        let r = d.on_line(b"PASS s3cr\xff t\r\n");
        assert_eq!(text(&r), "530 Login incorrect.\r\n");
        assert_eq!(
            login_events(&r),
            [(false, b"root".to_vec(), b"s3cr\xff t".to_vec())]
        );
        d.on_line(b"USER anonymous\r\n");
        let r = d.on_line(b"PASS bot@\r\n");
        assert_eq!(text(&r), "230 Login successful.\r\n");
        assert_eq!(
            login_events(&r),
            [(true, b"anonymous".to_vec(), b"bot@".to_vec())]
        );
        assert_eq!(text(&d.on_line(b"SYST\r\n")), "215 UNIX Type: L8\r\n");
        assert_eq!(
            text(&d.on_line(b"PWD\r\n")),
            "257 \"/\" is the current directory\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"CWD pub\r\n")),
            "250 Directory successfully changed.\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"PWD\r\n")),
            "257 \"/pub\" is the current directory\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"CWD nope\r\n")),
            "550 Failed to change directory.\r\n"
        );
        assert_eq!(text(&d.on_line(b"SIZE ../welcome.msg\r\n")), "213 29\r\n");
        assert_eq!(text(&d.on_line(b"XYZ\r\n")), "500 Unknown command.\r\n");
        assert_eq!(
            text(&d.on_line(b"LIST\r\n")),
            "425 Use PORT or PASV first.\r\n"
        );
        let r = d.on_line(b"PORT 10,0,0,1,4,1\r\n");
        assert_eq!(text(&r), "500 Illegal PORT command.\r\n");
        let r = d.on_line(b"QUIT\r\n");
        assert_eq!(
            (text(&r).as_str(), &r.then),
            ("221 Goodbye.\r\n", &Then::Close)
        );
    }

    #[test]
    fn proftpd_texts() {
        let f = build("profile = \"proftpd\"\n[credentials]\naccept = [\"admin:admin\"]");
        let mut d = Session::new(&f, SRC, LOCAL);
        assert_eq!(
            d.greeting(),
            b"220 ProFTPD Server (Debian) [::ffff:192.0.2.1]\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"USER admin\r\n")),
            "331 Password required for admin\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"PASS admin\r\n")),
            "230 User admin logged in\r\n"
        );
        assert_eq!(text(&d.on_line(b"FOO\r\n")), "500 FOO not understood\r\n");
    }

    #[test]
    fn passive_transfers_and_upload_path_kept_exactly() {
        let f = build("");
        let mut d = Session::new(&f, SRC, LOCAL);
        d.on_line(b"USER ftp\r\n");
        d.on_line(b"PASS x\r\n");
        let r = d.on_line(b"PASV\r\n");
        assert_eq!(r.then, Then::Passive { extended: false });
        assert_eq!(
            d.passive_reply("192.0.2.1:50001".parse().unwrap(), false),
            b"227 Entering Passive Mode (192,0,2,1,195,81).\r\n"
        );
        let r = d.on_line(b"STOR a b\xff.sh\r\n");
        assert_eq!(text(&r), "150 Ok to send data.\r\n");
        assert_eq!(r.then, Then::Transfer(Xfer::Store(b"a b\xff.sh".to_vec())));
        assert_eq!(d.transfer_done(Ok(())), b"226 Transfer complete.\r\n");
        d.on_line(b"EPSV\r\n");
        let r = d.on_line(b"LIST\r\n");
        assert_eq!(text(&r), "150 Here comes the directory listing.\r\n");
        assert_eq!(d.transfer_done(Ok(())), b"226 Directory send OK.\r\n");
        // The listener is used up.
        assert_eq!(
            text(&d.on_line(b"RETR welcome.msg\r\n")),
            "425 Use PORT or PASV first.\r\n"
        );
    }

    #[test]
    fn caps_overlong_lines_and_command_count() {
        let f = build("max_line = 64\nmax_commands = 3");
        let mut d = Session::new(&f, SRC, LOCAL);
        let mut long = vec![b'A'; 200];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        let rs = d.on_input(&long);
        assert_eq!(rs.len(), 2);
        assert_eq!(text(&rs[0]), "500 Input line too long.\r\n");
        assert_eq!(text(&rs[1]), "200 NOOP ok.\r\n");
        let rs = d.on_input(b"NOOP\r\nNOOP\r\nNOOP\r\n");
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[1].then, Then::Close);
        assert!(d.on_input(b"NOOP\r\n").is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let f = build("max_line = 64");
        let mut d = Session::new(&f, SRC, LOCAL);
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut b = Vec::new();
            for _ in 0..((x % 97) as usize) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b.push((x >> 16) as u8);
            }
            let _ = d.on_input(&b);
        }
    }
}
