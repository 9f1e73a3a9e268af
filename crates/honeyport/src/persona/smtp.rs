//! The `smtp` persona: an ESMTP server face (Exim 4.92, Postfix or Proxmox Mail Gateway) that
//! records what mail bots and scanners do: every command line, AUTH credentials exactly as
//! decoded, envelope addresses, relay attempts and known exploit shapes.
//!
//! The dialogue is a pure state machine ([`Session::on_line`], [`Session::on_input`]), tested
//! with byte strings; [`Smtp::serve`] only moves bytes and events, and upgrades the connection
//! when the client asks for STARTTLS.
//!
//! Limits, each with its reason:
//! - `max_line` (default 16384, Exim's command buffer): a longer command line is answered with
//!   "500 line too long", recorded (its first `max_line` bytes) and the rest of it discarded.
//! - `max_message` (default 1MiB): DATA beyond it is not kept in memory; the message is refused
//!   with 552 at the final dot (the raw bytes are still in the session's input events).
//! - `max_commands` (default 200) and `max_errors` (default 20, Postfix's hard error limit):
//!   the session is closed with the product's "too many" reply.
//!
//! Tags are recorded as `rule.match` events with `action = "tag"`: `CVE-2019-10149` (`${run{`
//! in MAIL FROM or RCPT TO), `CVE-2019-16928` (an EHLO/HELO argument longer than 255 bytes),
//! `CVE-2011-0411` (commands pipelined after STARTTLS, dropped as a real server must),
//! `smtp.relay_attempt`, `smtp.line_too_long`, `smtp.message_too_large` and
//! `smtp.data_unterminated` (the session ended inside DATA; `match_len` is what was collected).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use chrono::Utc;
use honeyport_event::{EventKind, Payload, Transport};
use rand::Rng;
use serde::Deserialize;

use super::template::Template;
use crate::config::units::NumOrStr;
use crate::config::{Problems, TlsRaw};
use crate::listener::conn::{Conn, End};

/// `type = "smtp"`. Every field is optional so that a persona can inherit another and a
/// listener can override single fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpRaw {
    /// Another persona whose fields this one starts from.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// Which product to imitate: "exim" (4.92, default), "postfix" (Debian) or "pmg" (Proxmox
    /// Mail Gateway, Postfix inside). Picks the banner, EHLO capabilities and reply texts.
    pub profile: Option<String>,
    /// The server's name in the banner and replies. Default "mail.example.com".
    pub hostname: Option<String>,
    /// The greeting line instead of the profile's (no CRLF needed). `{host}` is replaced by
    /// the hostname, `%TIME_GMT_RFC2822%` by the current time.
    pub banner: Option<String>,
    /// Domains this server receives mail for; RCPT TO any other domain is a relay attempt.
    /// Default: the hostname, its parent domain and "localhost".
    pub domains: Option<Vec<String>>,
    /// Accept relay attempts (250) instead of refusing them. Default false.
    pub open_relay: Option<bool>,
    /// Offer STARTTLS with this certificate: `{ self_signed = true }` or `{ cert, key }`. Not
    /// offered on a listener that is TLS already (implicit TLS, port 465).
    pub starttls: Option<TlsRaw>,
    /// Longest command line in bytes. Default 16384.
    pub max_line: Option<NumOrStr>,
    /// Largest message (DATA) kept, in bytes, e.g. "1MiB". Default 1MiB.
    pub max_message: Option<NumOrStr>,
    /// Most commands per session before "421" and close. Default 200.
    pub max_commands: Option<u32>,
    /// Most errors (unknown commands, bad sequence, failed AUTH) per session before the
    /// product's "too many errors" reply and close. Default 20.
    pub max_errors: Option<u32>,
}

const DEFAULT_HOST: &str = "mail.example.com";
const DEFAULT_MAX_LINE: u64 = 16384;
const DEFAULT_MAX_MESSAGE: u64 = 1 << 20;

impl SmtpRaw {
    /// A copy with unset fields taken from `base`; `inherit` comes from `base`.
    pub fn merged_over(&self, base: &SmtpRaw) -> SmtpRaw {
        let mut m = crate::persona::merge_fields!(
            SmtpRaw,
            self,
            base,
            [
                inherit,
                description,
                profile,
                hostname,
                banner,
                domains,
                open_relay,
                starttls,
                max_line,
                max_message,
                max_commands,
                max_errors
            ]
        );
        m.inherit = base.inherit.clone();
        m
    }

    pub fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(pr) = &self.profile {
            if Profile::parse(pr).is_none() {
                p.at(
                    &format!("{at}.profile"),
                    format!("{pr:?} is not exim, postfix or pmg"),
                );
            }
        }
        if let Some(h) = &self.hostname {
            if h.is_empty()
                || h.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                p.at(&format!("{at}.hostname"), "hostname is empty or has spaces");
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
        if let Some(t) = &self.starttls {
            crate::tls::validate(t, &format!("{at}.starttls"), base_dir, p);
        }
        if let Some(m) = &self.max_line {
            match m.size() {
                Ok(n) if (64..=1 << 20).contains(&n) => {}
                Ok(_) => p.at(&format!("{at}.max_line"), "must be 64 bytes to 1MiB"),
                Err(e) => p.at(&format!("{at}.max_line"), e),
            }
        }
        if let Some(m) = &self.max_message {
            match m.size() {
                Ok(n) if n <= 64 << 20 => {}
                Ok(_) => p.at(&format!("{at}.max_message"), "must be at most 64MiB"),
                Err(e) => p.at(&format!("{at}.max_message"), e),
            }
        }
        if self.max_commands == Some(0) {
            p.at(&format!("{at}.max_commands"), "must be at least 1");
        }
        if self.max_errors == Some(0) {
            p.at(&format!("{at}.max_errors"), "must be at least 1");
        }
    }

    /// Checks that only make sense on the merged persona.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if transports.contains(&Transport::Udp) {
            p.at(&format!("{at}.persona"), "the smtp persona needs TCP");
        }
    }

    pub fn build(&self, base_dir: &Path) -> Result<Smtp, String> {
        let profile = self
            .profile
            .as_deref()
            .map(|p| Profile::parse(p).ok_or_else(|| format!("unknown profile {p:?}")))
            .transpose()?
            .unwrap_or(Profile::Exim);
        let host = self
            .hostname
            .clone()
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let banner = self
            .banner
            .clone()
            .unwrap_or_else(|| profile.banner().to_string())
            .replace("{host}", &host);
        let domains = match &self.domains {
            Some(d) => d.iter().map(|d| d.to_ascii_lowercase()).collect(),
            None => {
                let mut d = vec![host.to_ascii_lowercase(), "localhost".to_string()];
                if let Some((_, parent)) = host.split_once('.') {
                    if parent.contains('.') {
                        d.push(parent.to_ascii_lowercase());
                    }
                }
                d
            }
        };
        let size = |v: &Option<NumOrStr>, d: u64| v.as_ref().map(|v| v.size()).unwrap_or(Ok(d));
        Ok(Smtp {
            profile,
            banner: Template::compile(format!("{banner}\r\n").as_bytes(), None),
            host,
            domains,
            open_relay: self.open_relay.unwrap_or(false),
            tls: self
                .starttls
                .as_ref()
                .map(|t| crate::tls::build(t, base_dir))
                .transpose()?,
            max_line: size(&self.max_line, DEFAULT_MAX_LINE)? as usize,
            max_message: size(&self.max_message, DEFAULT_MAX_MESSAGE)? as usize,
            max_commands: self.max_commands.unwrap_or(200),
            max_errors: self.max_errors.unwrap_or(20),
        })
    }
}

/// The product imitated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Exim,
    Postfix,
    Pmg,
}

/// The replies that differ between products.
#[derive(Clone, Copy, Debug)]
enum Msg {
    Unknown,
    LineTooLong,
    NeedHelo,
    EhloSyntax,
    HeloSyntax,
    MailOk,
    MailSyntax,
    NestedMail,
    NeedMail,
    RcptOk,
    RcptSyntax,
    RelayDenied,
    NeedRcpt,
    DataGo,
    TooLarge,
    Rset,
    Noop,
    Vrfy,
    Quit,
    StartTls,
    AuthFailed,
    AuthMech,
    AuthCancelled,
    AuthBase64,
    AuthInTransaction,
    TooManyErrors,
    TooManyCommands,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "exim" => Some(Profile::Exim),
            "postfix" => Some(Profile::Postfix),
            "pmg" => Some(Profile::Pmg),
            _ => None,
        }
    }

    fn banner(self) -> &'static str {
        match self {
            Profile::Exim => "220 {host} ESMTP Exim 4.92 #2 %TIME_GMT_RFC2822%",
            Profile::Postfix => "220 {host} ESMTP Postfix (Debian/GNU)",
            Profile::Pmg => "220 {host} ESMTP Proxmox",
        }
    }

    /// The reply line(s) for `m`, without the final CRLF; `{host}` and `{arg}` are filled in.
    fn text(self, m: Msg) -> &'static str {
        use Msg::*;
        if self == Profile::Exim {
            return match m {
                Unknown => "500 unrecognized command",
                LineTooLong => "500 line too long",
                // Exim 4.92 does not insist on HELO by default; kept for AUTH before EHLO.
                NeedHelo => "503 AUTH command used when not advertised",
                EhloSyntax => "501 Syntactically invalid EHLO argument(s)",
                HeloSyntax => "501 Syntactically invalid HELO argument(s)",
                MailOk => "250 OK",
                MailSyntax => "501 MAIL must have an address operand",
                NestedMail => "503 sender already given",
                NeedMail => "503 sender not yet given",
                RcptOk => "250 Accepted",
                RcptSyntax => "501 RCPT must have an address operand",
                RelayDenied => "550 relay not permitted",
                NeedRcpt => "503 valid RCPT command must precede DATA",
                DataGo => "354 Enter message, ending with \".\" on a line by itself",
                TooLarge => "552 Message size exceeds maximum permitted",
                Rset => "250 Reset OK",
                Noop => "250 OK",
                Vrfy => "252 Administrative prohibition",
                Quit => "221 {host} closing connection",
                StartTls => "220 TLS go ahead",
                AuthFailed => "535 Incorrect authentication data",
                AuthMech => "504 Unsupported authentication mechanism",
                AuthCancelled => "501 Authentication cancelled",
                AuthBase64 => "501 Invalid base64 data",
                AuthInTransaction => "503 sender already given",
                TooManyErrors => "500 Too many unrecognized commands",
                TooManyCommands => "421 too many nonmail commands",
            };
        }
        match m {
            Unknown => "502 5.5.2 Error: command not recognized",
            LineTooLong => "500 5.5.0 Error: line too long",
            NeedHelo => "503 5.5.1 Error: send HELO/EHLO first",
            EhloSyntax => "501 Syntax: EHLO hostname",
            HeloSyntax => "501 Syntax: HELO hostname",
            MailOk => "250 2.1.0 Ok",
            MailSyntax => "501 5.5.4 Syntax: MAIL FROM:<address>",
            NestedMail => "503 5.5.1 Error: nested MAIL command",
            NeedMail => "503 5.5.1 Error: need MAIL command",
            RcptOk => "250 2.1.5 Ok",
            RcptSyntax => "501 5.5.4 Syntax: RCPT TO:<address>",
            RelayDenied => "554 5.7.1 <{arg}>: Relay access denied",
            NeedRcpt => "503 5.5.1 Error: need RCPT command",
            DataGo => "354 End data with <CR><LF>.<CR><LF>",
            TooLarge => "552 5.3.4 Message size exceeds fixed limit",
            Rset => "250 2.0.0 Ok",
            Noop => "250 2.0.0 Ok",
            Vrfy => "252 2.0.0 {arg}",
            Quit => "221 2.0.0 Bye",
            StartTls => "220 2.0.0 Ready to start TLS",
            AuthFailed => "535 5.7.8 Error: authentication failed: authentication failure",
            AuthMech => "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
            AuthCancelled => "501 5.7.0 Authentication aborted",
            AuthBase64 => "501 5.5.2 Cannot decode response",
            AuthInTransaction => "503 5.5.1 Error: MAIL transaction in progress",
            TooManyErrors | TooManyCommands => "421 4.7.0 {host} Error: too many errors",
        }
    }

    fn size(self) -> &'static str {
        match self {
            Profile::Exim => "52428800",
            _ => "10240000",
        }
    }
}

/// A built smtp persona, shared by every session of its listener.
pub struct Smtp {
    profile: Profile,
    host: String,
    banner: Template,
    domains: Vec<String>,
    open_relay: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_line: usize,
    max_message: usize,
    max_commands: u32,
    max_errors: u32,
}

/// What the serve loop does after sending a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Continue,
    /// Close the session (QUIT, a limit).
    Close,
    /// Upgrade the connection to TLS, then continue.
    StartTls,
}

/// The answer to one line: bytes to send (possibly none), events to record, what next.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub text: Vec<u8>,
    pub events: Vec<EventKind>,
    pub then: Then,
}

impl Reply {
    fn none() -> Reply {
        Reply {
            text: Vec::new(),
            events: Vec::new(),
            then: Then::Continue,
        }
    }
}

#[derive(Debug)]
enum State {
    Command,
    Data,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass(Vec<u8>),
    AuthCram,
    Closed,
}

/// One session's dialogue: a pure state machine, no I/O.
pub struct Session<'a> {
    s: &'a Smtp,
    peer: String,
    tls_active: bool,
    state: State,
    helo: bool,
    mail: bool,
    rcpts: u32,
    /// The message being received (dot-unstuffed, capped at `max_message`).
    data: Vec<u8>,
    /// Bytes of DATA received in total, kept or not.
    data_len: usize,
    /// The next DATA bytes start a line (dot-unstuffing and the final dot apply).
    line_start: bool,
    /// Partial line carried between reads.
    buf: Vec<u8>,
    /// The rest of an overlong line is being dropped.
    discarding: bool,
    commands: u32,
    errors: u32,
}

fn tag(rule: &str, len: usize) -> EventKind {
    EventKind::RuleMatch {
        rule: rule.to_string(),
        action: "tag".to_string(),
        match_len: len as u64,
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The address in `FROM:<a@b> SIZE=1` / `TO: a@b`: what is inside `<>`, else the first word.
fn address(arg: &[u8]) -> &[u8] {
    let arg = arg.trim_ascii_start();
    if let Some(rest) = arg.strip_prefix(b"<") {
        match rest.iter().rposition(|&b| b == b'>') {
            Some(end) => &rest[..end],
            None => rest,
        }
    } else {
        arg.split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default()
    }
}

/// Strips a case-insensitive `FROM:` / `TO:` keyword (spaces allowed around the colon).
fn after_keyword<'l>(arg: &'l [u8], kw: &[u8]) -> Option<&'l [u8]> {
    let arg = arg.trim_ascii_start();
    if arg.len() < kw.len() || !arg[..kw.len()].eq_ignore_ascii_case(kw) {
        return None;
    }
    arg[kw.len()..].trim_ascii_start().strip_prefix(b":")
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &[u8]) -> Option<Vec<u8>> {
    let s = s.trim_ascii();
    if s == b"=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Exim's check of a HELO/EHLO name: letters, digits, `-._`, or an address literal.
fn exim_helo_ok(name: &[u8]) -> bool {
    if let Some(lit) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        return !lit.is_empty()
            && lit
                .iter()
                .all(|b| b.is_ascii_hexdigit() || b".:".contains(b) || b"IPv6".contains(b));
    }
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(b))
}

impl<'a> Session<'a> {
    /// A new dialogue with the peer at `peer` (shown in Exim's "Hello" line). `tls_active` is
    /// true on an implicit-TLS listener: STARTTLS is then not offered.
    pub fn new(s: &'a Smtp, peer: &str, tls_active: bool) -> Self {
        Session {
            s,
            peer: peer.to_string(),
            tls_active,
            state: State::Command,
            helo: false,
            mail: false,
            rcpts: 0,
            data: Vec::new(),
            data_len: 0,
            line_start: true,
            buf: Vec::new(),
            discarding: false,
            commands: 0,
            errors: 0,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        self.s.banner.render(Utc::now(), None)
    }

    /// The message received by the last complete DATA (for tests and the fuzz target).
    pub fn message(&self) -> &[u8] {
        &self.data
    }

    fn starttls_offered(&self) -> bool {
        self.s.tls.is_some() && !self.tls_active
    }

    /// Called once the connection is TLS: the client starts over (RFC 3207).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.helo = false;
        self.reset_transaction();
        self.state = State::Command;
        self.buf.clear();
        self.discarding = false;
    }

    /// When the session ends inside DATA: a tag with how much of the message arrived.
    pub fn unfinished(&self) -> Option<EventKind> {
        match self.state {
            State::Data => Some(tag(
                "smtp.data_unterminated",
                self.data_len + self.buf.len(),
            )),
            _ => None,
        }
    }

    fn reset_transaction(&mut self) {
        self.mail = false;
        self.rcpts = 0;
    }

    fn text(&self, m: Msg, arg: &[u8]) -> Vec<u8> {
        let t = self.s.profile.text(m).replace("{host}", &self.s.host);
        let mut out = Vec::with_capacity(t.len() + arg.len() + 2);
        match t.split_once("{arg}") {
            Some((a, b)) => {
                out.extend_from_slice(a.as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b.as_bytes());
            }
            None => out.extend_from_slice(t.as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn reply(&self, m: Msg, events: Vec<EventKind>) -> Reply {
        Reply {
            text: self.text(m, b""),
            events,
            then: Then::Continue,
        }
    }

    /// An error reply: counts toward `max_errors`, closing the session when it trips.
    fn error(&mut self, m: Msg, arg: &[u8], events: Vec<EventKind>) -> Reply {
        self.errors = self.errors.saturating_add(1);
        let mut text = self.text(m, arg);
        let mut then = Then::Continue;
        if self.errors >= self.s.max_errors {
            text.extend_from_slice(&self.text(Msg::TooManyErrors, b""));
            then = Then::Close;
            self.state = State::Closed;
        }
        Reply { text, events, then }
    }

    /// Handles one read's worth of bytes: complete lines in order (pipelining), a partial line
    /// kept for the next read. Stops at a reply that closes or starts TLS; bytes after a
    /// STARTTLS are dropped (and tagged), as a real server must.
    pub fn on_input(&mut self, mut bytes: &[u8]) -> Vec<Reply> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if matches!(self.state, State::Closed) {
                break;
            }
            let (chunk, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], true),
                None => (bytes, false),
            };
            bytes = &bytes[chunk.len()..];
            if self.discarding {
                self.discarding = !complete;
                continue;
            }
            let room = self.s.max_line.saturating_sub(self.buf.len());
            if chunk.len() > room {
                if matches!(self.state, State::Data) {
                    // A long data line is data, not an error: keep it (capped) and go on.
                    let mut line = std::mem::take(&mut self.buf);
                    line.extend_from_slice(chunk);
                    if complete {
                        out.push(self.on_line(&line));
                    } else {
                        self.data_bytes(&line);
                        self.line_start = false;
                    }
                    continue;
                }
                self.buf.extend_from_slice(&chunk[..room]);
                let line = std::mem::take(&mut self.buf);
                self.discarding = !complete;
                let r = self.overlong(&line);
                let stop = r.then != Then::Continue;
                out.push(r);
                if stop {
                    break;
                }
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if !complete {
                break;
            }
            let line = std::mem::take(&mut self.buf);
            let r = self.on_line(&line);
            let then = r.then;
            out.push(r);
            match then {
                Then::Continue => {}
                Then::Close => break,
                Then::StartTls => {
                    if !bytes.is_empty() {
                        out.push(Reply {
                            text: Vec::new(),
                            events: vec![tag("CVE-2011-0411", bytes.len())],
                            then: Then::StartTls,
                        });
                    }
                    break;
                }
            }
        }
        out
    }

    fn overlong(&mut self, prefix: &[u8]) -> Reply {
        let mut events = vec![
            EventKind::CommandInput {
                input: Payload(prefix.to_vec()),
                recognised: false,
            },
            tag("smtp.line_too_long", prefix.len()),
        ];
        if prefix.len() >= 5
            && (prefix[..5].eq_ignore_ascii_case(b"EHLO ")
                || prefix[..5].eq_ignore_ascii_case(b"HELO "))
        {
            events.push(tag("CVE-2019-16928", prefix.len() - 5));
        }
        self.commands = self.commands.saturating_add(1);
        self.error(Msg::LineTooLong, b"", events)
    }

    /// Handles one complete line (with or without its CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> Reply {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Command => self.command(line),
            State::Data => self.data_line(line),
            State::AuthPlain => self.auth_plain(strip_eol(line)),
            State::AuthLoginUser => self.auth_login_user(strip_eol(line)),
            State::AuthLoginPass(user) => self.auth_login_pass(user, strip_eol(line)),
            State::AuthCram => self.auth_cram(strip_eol(line)),
            State::Closed => {
                self.state = State::Closed;
                Reply {
                    text: Vec::new(),
                    events: Vec::new(),
                    then: Then::Close,
                }
            }
        }
    }

    fn data_bytes(&mut self, b: &[u8]) {
        self.data_len = self.data_len.saturating_add(b.len());
        let room = self.s.max_message.saturating_sub(self.data.len());
        self.data.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn data_line(&mut self, line: &[u8]) -> Reply {
        let at_start = self.line_start;
        self.line_start = line.ends_with(b"\n");
        if at_start && strip_eol(line) == b"." && line.ends_with(b"\n") {
            let len = self.data_len;
            self.reset_transaction();
            if len > self.s.max_message {
                return self.reply(Msg::TooLarge, vec![tag("smtp.message_too_large", len)]);
            }
            let mut rng = rand::rng();
            let text = match self.s.profile {
                Profile::Exim => {
                    const B62: &[u8] =
                        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                    let mut id = |n: usize| -> String {
                        (0..n)
                            .map(|_| B62[rng.random_range(0..B62.len())] as char)
                            .collect()
                    };
                    format!("250 OK id={}-{}-{}\r\n", id(6), id(6), id(2))
                }
                _ => format!(
                    "250 2.0.0 Ok: queued as {:010X}\r\n",
                    rng.random_range(0..1u64 << 40)
                ),
            };
            return Reply {
                text: text.into_bytes(),
                events: Vec::new(),
                then: Then::Continue,
            };
        }
        self.state = State::Data;
        let content = match line.strip_prefix(b".") {
            Some(rest) if at_start => rest,
            _ => line,
        };
        self.data_bytes(content);
        Reply::none()
    }

    fn command(&mut self, line: &[u8]) -> Reply {
        let line = strip_eol(line);
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let verb = verb.to_ascii_uppercase();
        let recognised = match verb.as_slice() {
            b"HELO" | b"EHLO" | b"MAIL" | b"RCPT" | b"DATA" | b"RSET" | b"NOOP" | b"QUIT"
            | b"AUTH" => true,
            b"VRFY" => true,
            b"HELP" => self.s.profile == Profile::Exim,
            b"STARTTLS" => self.starttls_offered(),
            _ => false,
        };
        let mut events = vec![EventKind::CommandInput {
            input: Payload(line.to_vec()),
            recognised,
        }];
        self.commands = self.commands.saturating_add(1);
        if self.commands > self.s.max_commands {
            self.state = State::Closed;
            return Reply {
                text: self.text(Msg::TooManyCommands, b""),
                events,
                then: Then::Close,
            };
        }
        if !recognised {
            return self.error(Msg::Unknown, b"", events);
        }
        let postfix = self.s.profile != Profile::Exim;
        match verb.as_slice() {
            b"HELO" | b"EHLO" => {
                let ehlo = verb == b"EHLO";
                let name = arg.trim_ascii();
                if name.len() > 255 {
                    events.push(tag("CVE-2019-16928", name.len()));
                }
                let bad = name.is_empty() || (!postfix && !exim_helo_ok(name));
                if bad {
                    let m = if ehlo {
                        Msg::EhloSyntax
                    } else {
                        Msg::HeloSyntax
                    };
                    return self.error(m, b"", events);
                }
                self.helo = true;
                self.reset_transaction();
                Reply {
                    text: self.hello(ehlo, name),
                    events,
                    then: Then::Continue,
                }
            }
            b"MAIL" => {
                let Some(rest) = after_keyword(arg, b"FROM") else {
                    return self.error(Msg::MailSyntax, b"", events);
                };
                if postfix && !self.helo {
                    return self.error(Msg::NeedHelo, b"", events);
                }
                if self.mail {
                    return self.error(Msg::NestedMail, b"", events);
                }
                if find(rest, b"${run{") {
                    events.push(tag("CVE-2019-10149", address(rest).len()));
                }
                self.mail = true;
                self.reply(Msg::MailOk, events)
            }
            b"RCPT" => {
                let Some(rest) = after_keyword(arg, b"TO") else {
                    return self.error(Msg::RcptSyntax, b"", events);
                };
                if !self.mail {
                    return self.error(Msg::NeedMail, b"", events);
                }
                let addr = address(rest);
                if addr.is_empty() {
                    return self.error(Msg::RcptSyntax, b"", events);
                }
                if find(rest, b"${run{") {
                    events.push(tag("CVE-2019-10149", addr.len()));
                }
                if self.is_relay(addr) {
                    events.push(tag("smtp.relay_attempt", addr.len()));
                    if !self.s.open_relay {
                        return Reply {
                            text: self.text(Msg::RelayDenied, addr),
                            events,
                            then: Then::Continue,
                        };
                    }
                }
                self.rcpts = self.rcpts.saturating_add(1);
                self.reply(Msg::RcptOk, events)
            }
            b"DATA" => {
                if !self.mail && postfix {
                    return self.error(Msg::NeedMail, b"", events);
                }
                if self.rcpts == 0 {
                    return self.error(Msg::NeedRcpt, b"", events);
                }
                self.state = State::Data;
                self.data.clear();
                self.data_len = 0;
                self.line_start = true;
                self.reply(Msg::DataGo, events)
            }
            b"RSET" => {
                self.reset_transaction();
                self.reply(Msg::Rset, events)
            }
            b"NOOP" => self.reply(Msg::Noop, events),
            b"VRFY" => Reply {
                text: self.text(Msg::Vrfy, arg.trim_ascii()),
                events,
                then: Then::Continue,
            },
            b"HELP" => Reply {
                text: b"214-Commands supported:\r\n214 AUTH STARTTLS HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP\r\n".to_vec(),
                events,
                then: Then::Continue,
            },
            b"QUIT" => {
                self.state = State::Closed;
                Reply {
                    text: self.text(Msg::Quit, b""),
                    events,
                    then: Then::Close,
                }
            }
            b"STARTTLS" => Reply {
                text: self.text(Msg::StartTls, b""),
                events,
                then: Then::StartTls,
            },
            b"AUTH" => self.auth(arg, events),
            _ => self.error(Msg::Unknown, b"", events),
        }
    }

    fn hello(&self, ehlo: bool, name: &[u8]) -> Vec<u8> {
        let host = &self.s.host;
        let mut first = Vec::new();
        match self.s.profile {
            Profile::Exim => {
                first.extend_from_slice(format!("{host} Hello ").as_bytes());
                first.extend_from_slice(name);
                first.extend_from_slice(format!(" [{}]", self.peer).as_bytes());
            }
            _ => first.extend_from_slice(host.as_bytes()),
        }
        if !ehlo {
            let mut out = b"250 ".to_vec();
            out.extend_from_slice(&first);
            out.extend_from_slice(b"\r\n");
            return out;
        }
        let size = format!("SIZE {}", self.s.profile.size());
        let tls = self.starttls_offered();
        let auth = "AUTH PLAIN LOGIN CRAM-MD5";
        let caps: Vec<&str> = match self.s.profile {
            Profile::Exim => {
                let mut c = vec![size.as_str(), "8BITMIME", "PIPELINING", auth, "CHUNKING"];
                if tls {
                    c.push("STARTTLS");
                }
                c.extend(["PRDR", "HELP"]);
                c
            }
            p => {
                let mut c = vec!["PIPELINING", size.as_str(), "VRFY", "ETRN"];
                if tls {
                    c.push("STARTTLS");
                }
                // A PMG relay port does not advertise AUTH (bots try it anyway; it is
                // still answered and recorded).
                if p == Profile::Postfix {
                    c.push(auth);
                }
                c.extend([
                    "ENHANCEDSTATUSCODES",
                    "8BITMIME",
                    "DSN",
                    "SMTPUTF8",
                    "CHUNKING",
                ]);
                c
            }
        };
        let mut out = b"250-".to_vec();
        out.extend_from_slice(&first);
        out.extend_from_slice(b"\r\n");
        for (i, c) in caps.iter().enumerate() {
            let sep = if i + 1 == caps.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("250{sep}{c}\r\n").as_bytes());
        }
        out
    }

    fn is_relay(&self, addr: &[u8]) -> bool {
        let Some(at) = addr.iter().rposition(|&b| b == b'@') else {
            return false; // a local part only: local delivery
        };
        let dom = addr[at + 1..].to_ascii_lowercase();
        let dom = dom.strip_suffix(b".").unwrap_or(&dom);
        !self.s.domains.iter().any(|d| d.as_bytes() == dom)
    }

    fn auth(&mut self, arg: &[u8], events: Vec<EventKind>) -> Reply {
        if !self.helo {
            return self.error(Msg::NeedHelo, b"", events);
        }
        if self.mail {
            return self.error(Msg::AuthInTransaction, b"", events);
        }
        let arg = arg.trim_ascii();
        let (mech, initial) = match arg.iter().position(|&b| b == b' ') {
            Some(i) => (&arg[..i], Some(arg[i + 1..].trim_ascii())),
            None => (arg, None),
        };
        let mech = mech.to_ascii_uppercase();
        let mut r = match (mech.as_slice(), initial) {
            (b"PLAIN", Some(ir)) => self.auth_plain(ir),
            (b"PLAIN", None) => {
                self.state = State::AuthPlain;
                Reply {
                    text: b"334 \r\n".to_vec(),
                    events: Vec::new(),
                    then: Then::Continue,
                }
            }
            (b"LOGIN", Some(ir)) => self.auth_login_user(ir),
            (b"LOGIN", None) => {
                self.state = State::AuthLoginUser;
                Reply {
                    text: b"334 VXNlcm5hbWU6\r\n".to_vec(),
                    events: Vec::new(),
                    then: Then::Continue,
                }
            }
            (b"CRAM-MD5", _) => {
                self.state = State::AuthCram;
                let challenge = format!(
                    "<{}.{}@{}>",
                    rand::rng().random_range(1000..100_000u32),
                    Utc::now().timestamp(),
                    self.s.host
                );
                Reply {
                    text: format!("334 {}\r\n", b64(challenge.as_bytes())).into_bytes(),
                    events: Vec::new(),
                    then: Then::Continue,
                }
            }
            _ => return self.error(Msg::AuthMech, b"", events),
        };
        let mut all = events;
        all.append(&mut r.events);
        r.events = all;
        r
    }

    fn auth_response(&mut self, line: &[u8]) -> Result<Vec<u8>, Reply> {
        if line.trim_ascii() == b"*" {
            return Err(self.error(Msg::AuthCancelled, b"", Vec::new()));
        }
        unb64(line).ok_or_else(|| self.error(Msg::AuthBase64, b"", Vec::new()))
    }

    fn login(&mut self, user: Vec<u8>, pass: Vec<u8>, method: &str) -> Reply {
        let ev = EventKind::LoginFailed {
            username: Payload(user),
            password: Payload(pass),
            method: method.to_string(),
        };
        self.error(Msg::AuthFailed, b"", vec![ev])
    }

    fn auth_plain(&mut self, line: &[u8]) -> Reply {
        let dec = match self.auth_response(line) {
            Ok(d) => d,
            Err(r) => return r,
        };
        // authzid NUL authcid NUL password; a malformed one is still recorded.
        let parts: Vec<&[u8]> = dec.splitn(3, |&b| b == 0).collect();
        let (user, pass) = match parts.as_slice() {
            [_, u, p] => (u.to_vec(), p.to_vec()),
            [u, p] => (u.to_vec(), p.to_vec()),
            _ => (dec.clone(), Vec::new()),
        };
        self.login(user, pass, "smtp-plain")
    }

    fn auth_login_user(&mut self, line: &[u8]) -> Reply {
        match self.auth_response(line) {
            Ok(user) => {
                self.state = State::AuthLoginPass(user);
                Reply {
                    text: b"334 UGFzc3dvcmQ6\r\n".to_vec(),
                    events: Vec::new(),
                    then: Then::Continue,
                }
            }
            Err(r) => r,
        }
    }

    fn auth_login_pass(&mut self, user: Vec<u8>, line: &[u8]) -> Reply {
        match self.auth_response(line) {
            Ok(pass) => self.login(user, pass, "smtp-login"),
            Err(r) => r,
        }
    }

    fn auth_cram(&mut self, line: &[u8]) -> Reply {
        let dec = match self.auth_response(line) {
            Ok(d) => d,
            Err(r) => return r,
        };
        // "user hexdigest": the digest is the last word; the user may contain spaces.
        let (user, digest) = match dec.iter().rposition(|&b| b == b' ') {
            Some(i) => (dec[..i].to_vec(), dec[i + 1..].to_vec()),
            None => (dec.clone(), Vec::new()),
        };
        self.login(user, digest, "smtp-cram-md5")
    }
}

impl Smtp {
    /// Serves one session.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        let mut d = Session::new(self, &conn.meta().src.ip().to_string(), conn.is_tls());
        let end = match self.run(conn, &mut d).await {
            Ok(()) => End::persona(),
            Err(end) => end,
        };
        if let Some(ev) = d.unfinished() {
            conn.emit(ev).await;
        }
        end
    }

    async fn run(&self, conn: &mut Conn, d: &mut Session<'_>) -> Result<(), End> {
        conn.write(&d.greeting()).await?;
        loop {
            let data = conn.read().await?;
            let mut out = Vec::new();
            let mut then = Then::Continue;
            for r in d.on_input(&data) {
                for ev in r.events {
                    conn.emit(ev).await;
                }
                out.extend_from_slice(&r.text);
                if r.then != Then::Continue {
                    then = r.then;
                }
            }
            // Pipelined replies go out together, as a real server's would.
            conn.write(&out).await?;
            match then {
                Then::Continue => {}
                Then::Close => return Ok(()),
                Then::StartTls => {
                    let Some(cfg) = &self.tls else {
                        return Ok(()); // not offered, so never asked for: unreachable
                    };
                    conn.start_tls(cfg.clone()).await?;
                    d.tls_started();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_src: &str) -> Smtp {
        let raw: SmtpRaw = toml::from_str(toml_src).unwrap();
        raw.build(Path::new(".")).unwrap()
    }

    fn text(r: &Reply) -> String {
        String::from_utf8_lossy(&r.text).into_owned()
    }

    fn logins(rs: &[Reply]) -> Vec<(Vec<u8>, Vec<u8>, String)> {
        rs.iter()
            .flat_map(|r| r.events.iter())
            .filter_map(|e| match e {
                EventKind::LoginFailed {
                    username,
                    password,
                    method,
                } => Some((username.0.clone(), password.0.clone(), method.clone())),
                _ => None,
            })
            .collect()
    }

    fn tags(rs: &[Reply]) -> Vec<String> {
        rs.iter()
            .flat_map(|r| r.events.iter())
            .filter_map(|e| match e {
                EventKind::RuleMatch { rule, .. } => Some(rule.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn exim_banner_ehlo_and_errors() {
        let s = build("hostname = \"mx.test\"");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let g = String::from_utf8(d.greeting()).unwrap();
        assert!(g.starts_with("220 mx.test ESMTP Exim 4.92 #2 "), "{g}");
        assert!(g.ends_with(" +0000\r\n"), "{g}");
        let r = d.on_line(b"EHLO client.test\r\n");
        assert_eq!(
            text(&r),
            "250-mx.test Hello client.test [192.0.2.1]\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n\
             250-PIPELINING\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-CHUNKING\r\n250-PRDR\r\n250 HELP\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"XYZZY\r\n")),
            "500 unrecognized command\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"RCPT TO:<a@mx.test>\r\n")),
            "503 sender not yet given\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"EHLO\r\n")),
            "501 Syntactically invalid EHLO argument(s)\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"DATA\r\n")),
            "503 valid RCPT command must precede DATA\r\n"
        );
    }

    #[test]
    fn postfix_texts_and_sequence() {
        let s = build("profile = \"postfix\"\nhostname = \"mx.test\"");
        let mut d = Session::new(&s, "192.0.2.1", false);
        assert_eq!(d.greeting(), b"220 mx.test ESMTP Postfix (Debian/GNU)\r\n");
        assert_eq!(
            text(&d.on_line(b"MAIL FROM:<a@b>\r\n")),
            "503 5.5.1 Error: send HELO/EHLO first\r\n"
        );
        let r = d.on_line(b"EHLO x\r\n");
        assert!(
            text(&r).contains("250-ENHANCEDSTATUSCODES\r\n"),
            "{}",
            text(&r)
        );
        assert!(text(&r).ends_with("250 CHUNKING\r\n"));
        assert_eq!(
            text(&d.on_line(b"RCPT TO:<a@mx.test>\r\n")),
            "503 5.5.1 Error: need MAIL command\r\n"
        );
        assert_eq!(
            text(&d.on_line(b"FOO\r\n")),
            "502 5.5.2 Error: command not recognized\r\n"
        );
        assert_eq!(text(&d.on_line(b"MAIL FROM:<a@b>\r\n")), "250 2.1.0 Ok\r\n");
        let r = d.on_line(b"RCPT TO:<v@elsewhere.example>\r\n");
        assert_eq!(
            text(&r),
            "554 5.7.1 <v@elsewhere.example>: Relay access denied\r\n"
        );
        assert_eq!(tags(&[r]), vec!["smtp.relay_attempt"]);
    }

    #[test]
    fn pmg_banner() {
        let s = build("profile = \"pmg\"\nhostname = \"pmg.test\"");
        let d = Session::new(&s, "192.0.2.1", false);
        assert_eq!(d.greeting(), b"220 pmg.test ESMTP Proxmox\r\n");
    }

    #[test]
    fn pipelined_transaction_with_dot_unstuffing() {
        let s = build("hostname = \"mx.test\"");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let rs =
            d.on_input(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
        let all: String = rs.iter().map(text).collect();
        assert!(
            all.contains("250 OK\r\n250 Accepted\r\n354 Enter message"),
            "{all}"
        );
        // Split across reads, with a stuffed dot and a lone LF line.
        let rs = d.on_input(b"Subject: x\r\n\r\n..dot\r\nline");
        assert!(rs.iter().all(|r| r.text.is_empty()));
        let rs = d.on_input(b" two\r\n.\r\nQUIT\r\n");
        let all: String = rs.iter().map(text).collect();
        assert!(all.starts_with("250 OK id="), "{all}");
        assert!(all.ends_with("221 mx.test closing connection\r\n"), "{all}");
        assert_eq!(rs.last().unwrap().then, Then::Close);
        assert_eq!(d.message(), b"Subject: x\r\n\r\n.dot\r\nline two\r\n");
    }

    #[test]
    fn auth_plain_login_and_cram_md5_are_captured() {
        let s = build("hostname = \"mx.test\"");
        let mut d = Session::new(&s, "192.0.2.1", false);
        d.on_line(b"EHLO c\r\n");
        let mut rs = Vec::new();
        // PLAIN with an initial response: "\0user\0pa ss".
        let ir = b64(b"\0user\0pa ss");
        rs.push(d.on_line(format!("AUTH PLAIN {ir}\r\n").as_bytes()));
        assert_eq!(text(&rs[0]), "535 Incorrect authentication data\r\n");
        // PLAIN by continuation.
        rs.push(d.on_line(b"AUTH PLAIN\r\n"));
        assert_eq!(text(rs.last().unwrap()), "334 \r\n");
        rs.push(d.on_line(format!("{}\r\n", b64(b"z\0u2\0p2")).as_bytes()));
        // LOGIN.
        rs.push(d.on_line(b"AUTH LOGIN\r\n"));
        assert_eq!(text(rs.last().unwrap()), "334 VXNlcm5hbWU6\r\n");
        rs.push(d.on_line(format!("{}\r\n", b64(b"admin")).as_bytes()));
        assert_eq!(text(rs.last().unwrap()), "334 UGFzc3dvcmQ6\r\n");
        rs.push(d.on_line(format!("{}\r\n", b64(b"\xff\x00pw")).as_bytes()));
        // CRAM-MD5.
        let r = d.on_line(b"AUTH CRAM-MD5\r\n");
        let ch = text(&r);
        assert!(ch.starts_with("334 "), "{ch}");
        let chal = unb64(ch[4..].trim().as_bytes()).unwrap();
        assert!(chal.starts_with(b"<") && chal.ends_with(b"@mx.test>"));
        rs.push(
            d.on_line(format!("{}\r\n", b64(b"bob 6d5e2a9e6f5b1e0c5b2c7d0b2e1f3a4b")).as_bytes()),
        );
        assert_eq!(
            logins(&rs),
            vec![
                (b"user".to_vec(), b"pa ss".to_vec(), "smtp-plain".into()),
                (b"u2".to_vec(), b"p2".to_vec(), "smtp-plain".into()),
                (
                    b"admin".to_vec(),
                    b"\xff\x00pw".to_vec(),
                    "smtp-login".into()
                ),
                (
                    b"bob".to_vec(),
                    b"6d5e2a9e6f5b1e0c5b2c7d0b2e1f3a4b".to_vec(),
                    "smtp-cram-md5".into()
                ),
            ]
        );
        // Cancel and bad base64.
        d.on_line(b"AUTH LOGIN\r\n");
        assert_eq!(
            text(&d.on_line(b"*\r\n")),
            "501 Authentication cancelled\r\n"
        );
        d.on_line(b"AUTH PLAIN\r\n");
        assert_eq!(text(&d.on_line(b"!!!\r\n")), "501 Invalid base64 data\r\n");
    }

    #[test]
    fn postfix_auth_failure_text() {
        let s = build("profile = \"postfix\"");
        let mut d = Session::new(&s, "192.0.2.1", false);
        d.on_line(b"EHLO c\r\n");
        let r = d.on_line(format!("AUTH PLAIN {}\r\n", b64(b"\0a\0b")).as_bytes());
        assert_eq!(
            text(&r),
            "535 5.7.8 Error: authentication failed: authentication failure\r\n"
        );
    }

    #[test]
    fn exim_rce_shape_is_tagged() {
        let s = build("");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let rs = d.on_input(
            b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<${run{\\x2Fbin\\x2Fsh\\t-c\\t\\x22id\\x22}}@localhost>\r\n",
        );
        assert_eq!(tags(&rs), vec!["CVE-2019-10149"]);
        assert_eq!(text(&rs[2]), "250 Accepted\r\n");
    }

    #[test]
    fn overlong_lines_are_capped_recorded_and_discarded() {
        let s = build("max_line = 64");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let mut long = b"EHLO ".to_vec();
        long.extend(std::iter::repeat_n(b'A', 100));
        let rs = d.on_input(&long);
        assert_eq!(rs.len(), 1);
        assert_eq!(text(&rs[0]), "500 line too long\r\n");
        assert_eq!(tags(&rs), vec!["smtp.line_too_long", "CVE-2019-16928"]);
        match &rs[0].events[0] {
            EventKind::CommandInput { input, recognised } => {
                assert_eq!(input.0.len(), 64);
                assert!(!recognised);
            }
            e => panic!("{e:?}"),
        }
        // The rest of the long line is dropped; the next line is a command again.
        let rs = d.on_input(b"AAAA\r\nNOOP\r\n");
        assert_eq!(rs.len(), 1);
        assert_eq!(text(&rs[0]), "250 OK\r\n");
    }

    #[test]
    fn long_ehlo_argument_is_tagged() {
        let s = build("");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let line = format!("EHLO {}\r\n", "a".repeat(300));
        assert_eq!(tags(&[d.on_line(line.as_bytes())]), vec!["CVE-2019-16928"]);
    }

    #[test]
    fn error_and_command_limits_close_with_the_product_text() {
        let s = build("profile = \"postfix\"\nhostname = \"mx.test\"\nmax_errors = 3");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let rs = d.on_input(b"A\r\nB\r\nC\r\nD\r\n");
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[2].then, Then::Close);
        assert!(text(&rs[2]).ends_with("421 4.7.0 mx.test Error: too many errors\r\n"));

        let s = build("max_commands = 2");
        let mut d = Session::new(&s, "192.0.2.1", false);
        let rs = d.on_input(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
        assert_eq!(rs.len(), 3);
        assert_eq!(text(&rs[2]), "421 too many nonmail commands\r\n");
        assert_eq!(rs[2].then, Then::Close);
    }

    #[test]
    fn starttls_only_when_configured_and_not_on_implicit_tls() {
        let s = build("starttls = { self_signed = true }");
        let mut d = Session::new(&s, "192.0.2.1", false);
        assert!(text(&d.on_line(b"EHLO c\r\n")).contains("250-STARTTLS\r\n"));
        let rs = d.on_input(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
        assert_eq!(text(&rs[0]), "220 TLS go ahead\r\n");
        assert_eq!(rs[0].then, Then::StartTls);
        assert_eq!(tags(&rs), vec!["CVE-2011-0411"]);
        d.tls_started();
        assert!(!text(&d.on_line(b"EHLO c\r\n")).contains("STARTTLS"));
        assert_eq!(
            text(&d.on_line(b"STARTTLS\r\n")),
            "500 unrecognized command\r\n"
        );

        let mut implicit = Session::new(&s, "192.0.2.1", true);
        assert!(!text(&implicit.on_line(b"EHLO c\r\n")).contains("STARTTLS"));
        let plain = build("");
        let mut d = Session::new(&plain, "192.0.2.1", false);
        assert!(!text(&d.on_line(b"EHLO c\r\n")).contains("STARTTLS"));
    }

    #[test]
    fn oversize_and_unterminated_data() {
        let s = build("max_message = 10");
        let mut d = Session::new(&s, "192.0.2.1", false);
        d.on_input(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@localhost>\r\nDATA\r\n");
        let rs = d.on_input(b"0123456789abcdef\r\n.\r\n");
        assert_eq!(
            text(rs.last().unwrap()),
            "552 Message size exceeds maximum permitted\r\n"
        );
        assert_eq!(tags(&rs), vec!["smtp.message_too_large"]);
        assert_eq!(d.message().len(), 10);
        d.on_input(b"MAIL FROM:<a@b>\r\nRCPT TO:<u@localhost>\r\nDATA\r\npartial");
        assert_eq!(d.unfinished(), Some(tag("smtp.data_unterminated", 7)));
    }

    #[test]
    fn garbage_never_panics() {
        let s = build("max_line = 64\nstarttls = { self_signed = true }");
        let mut seed = 7u64;
        for _ in 0..200 {
            let mut d = Session::new(&s, "192.0.2.1", false);
            for _ in 0..20 {
                let n = (seed % 200) as usize;
                let bytes: Vec<u8> = (0..n)
                    .map(|i| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        const ALPHABET: &[u8] =
                            b"\r\n.: <>@AUTHPLAINLOGINDATA${run{EHLOMAIL FROM:RCPT TO:*=";
                        let pick = ALPHABET[(seed >> 33) as usize % ALPHABET.len()];
                        if i % 17 == 0 {
                            (seed >> 40) as u8
                        } else {
                            pick
                        }
                    })
                    .collect();
                d.on_input(&bytes);
            }
        }
    }
}
