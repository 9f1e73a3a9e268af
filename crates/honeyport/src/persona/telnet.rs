//! The `telnet` persona: option negotiation, a login dialogue and the fake shell.
//!
//! ```toml
//! [personas.router]
//! type = "telnet"
//! style = "busybox"            # busybox (default), debian, router, dvr
//! shell = "busybox_router"     # a shell profile (crate::shell::Profile::BUILTIN)
//! [personas.router.credentials]
//! accept = ["root:xc3511", "admin:admin"]
//! accept_any_after = 3
//! ```
//!
//! The server speaks first, exactly like BusyBox telnetd: `IAC DO ECHO, IAC DO NAWS, IAC WILL
//! ECHO, IAC WILL SGA` (first byte 0xFF, which Mirai-family bots require; never a lone `IAC DO
//! NAWS`, which nmap labels a cowrie honeypot), then the issue text and the login prompt. Like
//! BusyBox it never answers the client's negotiation; it only reads it. The client's
//! commands are recorded once as a `client.telnet_options` pattern (`WONT ECHO,WILL
//! NAWS,SB NAWS 80x24,DO ECHO,DO SGA`) when the first line (the username) arrives.
//!
//! With `negotiation = "linux"` (the debian style's default) it speaks like netkit/inetutils
//! telnetd instead, which nmap names "Linux telnetd": `IAC DO TTYPE, DO TSPEED, DO XDISPLOC,
//! DO NEW-ENVIRON` and nothing more until the client answers; then `SB ... SEND` for the
//! options it agreed to (so its terminal type lands in the pattern), the rest of the
//! negotiation, the issue text and the login prompt.
//!
//! Like BusyBox's pty, typed characters are echoed (unless the client said `DONT ECHO`),
//! except the password. Every attempt is a `login.failed` / `login.success` event with the
//! bytes exactly as sent (no line editing). After a login the peer gets the shell profile:
//! each line goes to [`Shell::run_line`] and its events are recorded.
//!
//! Limits, on top of the listener's (idle timeout, session time, bytes in): a subnegotiation
//! longer than [`MAX_SUBNEGOTIATION`] bytes, more than [`MAX_COMMANDS`] telnet commands in a
//! session, and a line longer than the listener's `max_read` each end the session with the
//! limit recorded (`telnet_subnegotiation`, `telnet_commands`, `telnet_line`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use honeyport_event::{EventKind, Payload, Transport};
use serde::Deserialize;

use super::creds::{CredPolicy, CredentialsRaw};
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::listener::conn::{Conn, End};
use crate::shell::{Profile, Shell};

// ---------------------------------------------------------------------------------------------
// The option parser: a pure state machine.

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_TTYPE: u8 = 24;
pub const OPT_NAWS: u8 = 31;
pub const OPT_TSPEED: u8 = 32;
pub const OPT_LFLOW: u8 = 33;
pub const OPT_XDISPLOC: u8 = 35;
pub const OPT_NEW_ENVIRON: u8 = 39;
const OPT_STATUS: u8 = 5;
/// `SEND` in a TTYPE / TSPEED / XDISPLOC / NEW-ENVIRON subnegotiation.
const SB_SEND: u8 = 1;

/// What BusyBox telnetd sends first (networking/telnetd.c, `iacs_to_send`).
pub const BUSYBOX_IACS: &[u8] = &[
    IAC, DO, OPT_ECHO, IAC, DO, OPT_NAWS, IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA,
];

/// What Linux telnetd (netkit / inetutils, as on Debian) sends first, then waits for the
/// client's answers before anything else; nmap's "Linux telnetd" match is exactly these bytes.
pub const LINUX_IACS: &[u8] = &[
    IAC,
    DO,
    OPT_TTYPE,
    IAC,
    DO,
    OPT_TSPEED,
    IAC,
    DO,
    OPT_XDISPLOC,
    IAC,
    DO,
    OPT_NEW_ENVIRON,
];

/// What Linux telnetd sends once the client answered, before the issue text.
const LINUX_IACS_AFTER: &[u8] = &[
    IAC, WILL, OPT_SGA, IAC, DO, OPT_ECHO, IAC, DO, OPT_NAWS, IAC, WILL, OPT_STATUS, IAC, DO,
    OPT_LFLOW, IAC, WILL, OPT_ECHO,
];

/// Longest subnegotiation payload kept. Real ones are short (NAWS 4 bytes, a terminal type,
/// NEW-ENVIRON with a few variables); anything longer is a flood or a parser probe.
pub const MAX_SUBNEGOTIATION: usize = 512;
/// Most telnet commands (IAC sequences other than an escaped 0xFF) in one session. A real
/// client sends a dozen; more than this is an IAC flood.
pub const MAX_COMMANDS: u32 = 1024;
/// Most entries in the recorded option pattern (later ones are still parsed, not recorded).
const MAX_PATTERN: usize = 64;

/// One telnet command from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    Will(u8),
    Wont(u8),
    Do(u8),
    Dont(u8),
    /// `IAC SB opt ... IAC SE`, payload with `IAC IAC` unescaped.
    Sb(u8, Vec<u8>),
    /// A two-byte command: NOP, AYT, IP, GA, a stray SE, ...
    Other(u8),
}

/// A parser limit that tripped; the session ends with it recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Subnegotiation,
    Commands,
    Line,
}

impl Limit {
    pub fn as_str(&self) -> &'static str {
        match self {
            Limit::Subnegotiation => "telnet_subnegotiation",
            Limit::Commands => "telnet_commands",
            Limit::Line => "telnet_line",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Data,
    /// After a CR in data: a following NUL is dropped (CR NUL means a bare CR).
    Cr,
    Iac,
    Verb(u8),
    SbOpt,
    Sb,
    SbIac,
}

/// What one chunk of input held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Data bytes: `IAC IAC` is one 0xFF; `CR NUL` is a CR; `CR LF` stays as is.
    pub data: Vec<u8>,
    pub cmds: Vec<Cmd>,
    /// Set when a limit tripped; input after that point was not parsed.
    pub limit: Option<Limit>,
}

/// The client-to-server telnet stream, decoded across reads. Memory is bounded by
/// [`MAX_SUBNEGOTIATION`] plus the input of one read.
#[derive(Debug)]
pub struct OptionParser {
    state: State,
    sb_opt: u8,
    sb: Vec<u8>,
    commands: u32,
    stopped: bool,
}

impl Default for OptionParser {
    fn default() -> Self {
        Self::new()
    }
}

impl OptionParser {
    pub fn new() -> Self {
        OptionParser {
            state: State::Data,
            sb_opt: 0,
            sb: Vec::new(),
            commands: 0,
            stopped: false,
        }
    }

    /// Decodes one read. Once a limit tripped, all further input is ignored.
    pub fn feed(&mut self, input: &[u8]) -> Parsed {
        let mut out = Parsed::default();
        if self.stopped {
            return out;
        }
        for &b in input {
            if let Some(l) = self.byte(b, &mut out) {
                self.stopped = true;
                self.sb = Vec::new();
                out.limit = Some(l);
                break;
            }
        }
        out
    }

    fn command(&mut self, c: Cmd, out: &mut Parsed) -> Option<Limit> {
        self.commands += 1;
        if self.commands > MAX_COMMANDS {
            return Some(Limit::Commands);
        }
        out.cmds.push(c);
        None
    }

    fn byte(&mut self, b: u8, out: &mut Parsed) -> Option<Limit> {
        match self.state {
            State::Data | State::Cr => {
                let was_cr = self.state == State::Cr;
                self.state = State::Data;
                match b {
                    IAC => self.state = State::Iac,
                    0 if was_cr => {}
                    b'\r' => {
                        out.data.push(b);
                        self.state = State::Cr;
                    }
                    _ => out.data.push(b),
                }
            }
            State::Iac => {
                self.state = State::Data;
                match b {
                    IAC => out.data.push(IAC),
                    WILL | WONT | DO | DONT => self.state = State::Verb(b),
                    SB => self.state = State::SbOpt,
                    _ => return self.command(Cmd::Other(b), out),
                }
            }
            State::Verb(v) => {
                self.state = State::Data;
                let c = match v {
                    WILL => Cmd::Will(b),
                    WONT => Cmd::Wont(b),
                    DO => Cmd::Do(b),
                    _ => Cmd::Dont(b),
                };
                return self.command(c, out);
            }
            State::SbOpt => {
                self.sb_opt = b;
                self.sb.clear();
                self.state = State::Sb;
            }
            State::Sb => {
                if b == IAC {
                    self.state = State::SbIac;
                } else {
                    return self.sb_push(b);
                }
            }
            State::SbIac => match b {
                SE => {
                    self.state = State::Data;
                    let payload = std::mem::take(&mut self.sb);
                    return self.command(Cmd::Sb(self.sb_opt, payload), out);
                }
                IAC => {
                    self.state = State::Sb;
                    return self.sb_push(IAC);
                }
                // RFC 854 leaves IAC <other> inside SB undefined; keep both bytes.
                _ => {
                    self.state = State::Sb;
                    if let Some(l) = self.sb_push(IAC) {
                        return Some(l);
                    }
                    return self.sb_push(b);
                }
            },
        }
        None
    }

    fn sb_push(&mut self, b: u8) -> Option<Limit> {
        if self.sb.len() >= MAX_SUBNEGOTIATION {
            return Some(Limit::Subnegotiation);
        }
        self.sb.push(b);
        None
    }
}

/// A telnet option's name as RFC 855 and friends spell it, or its number.
pub fn option_name(o: u8) -> String {
    let n = match o {
        0 => "BINARY",
        1 => "ECHO",
        3 => "SGA",
        5 => "STATUS",
        6 => "TM",
        24 => "TTYPE",
        31 => "NAWS",
        32 => "TSPEED",
        33 => "LFLOW",
        34 => "LINEMODE",
        35 => "XDISPLOC",
        36 => "OLD-ENVIRON",
        37 => "AUTH",
        38 => "ENCRYPT",
        39 => "NEW-ENVIRON",
        _ => return o.to_string(),
    };
    n.to_string()
}

/// One command as it appears in the recorded pattern: `WILL NAWS`, `SB NAWS 80x24`,
/// `SB TTYPE IS XTERM`, `SB TSPEED 6B`, `NOP`, `244`.
pub fn describe(c: &Cmd) -> String {
    match c {
        Cmd::Will(o) => format!("WILL {}", option_name(*o)),
        Cmd::Wont(o) => format!("WONT {}", option_name(*o)),
        Cmd::Do(o) => format!("DO {}", option_name(*o)),
        Cmd::Dont(o) => format!("DONT {}", option_name(*o)),
        Cmd::Sb(OPT_NAWS, p) if p.len() == 4 => format!(
            "SB NAWS {}x{}",
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]])
        ),
        Cmd::Sb(OPT_TTYPE, p) if p.first() == Some(&0) => {
            let name: String = p[1..]
                .iter()
                .take(40)
                .map(|&b| {
                    if b.is_ascii_graphic() {
                        (b as char).to_string()
                    } else {
                        format!("\\x{b:02x}")
                    }
                })
                .collect();
            format!("SB TTYPE IS {name}")
        }
        Cmd::Sb(o, p) => format!("SB {} {}B", option_name(*o), p.len()),
        Cmd::Other(b) => match b {
            241 => "NOP".into(),
            242 => "DM".into(),
            243 => "BRK".into(),
            244 => "IP".into(),
            245 => "AO".into(),
            246 => "AYT".into(),
            247 => "EC".into(),
            248 => "EL".into(),
            249 => "GA".into(),
            240 => "SE".into(),
            b => b.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Config

/// The built-in looks of the login dialogue.
pub const STYLES: &[&str] = &["busybox", "debian", "router", "dvr"];

/// `type = "telnet"`. Every field optional so personas can inherit and listeners override.
/// Texts may use `{hostname}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnetRaw {
    /// Another persona whose fields this one starts from.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// The look of the login dialogue: "busybox" (default), "debian", "router" (Username: /
    /// Password:) or "dvr". The fields below override single texts of the style.
    pub style: Option<String>,
    /// Which telnetd's option negotiation to imitate: "busybox" (one burst, then the prompt)
    /// or "linux" (netkit/inetutils: DO TTYPE, TSPEED, XDISPLOC, NEW-ENVIRON, then the rest
    /// once the client answered). Default "linux" for the debian style, else "busybox".
    pub negotiation: Option<String>,
    /// Host name in the prompts. Default: the shell profile's host name.
    pub hostname: Option<String>,
    /// Sent after the option negotiation, before the first login prompt. BusyBox style:
    /// "\r\r\n", the bytes a real BusyBox telnetd sends (and nmap matches).
    pub banner: Option<String>,
    /// The login prompt, e.g. "{hostname} login: ".
    pub login_prompt: Option<String>,
    /// The password prompt, e.g. "Password: ".
    pub password_prompt: Option<String>,
    /// Sent after a refused login, before the login prompt again.
    pub login_failed: Option<String>,
    /// Sent after a successful login, before the first shell prompt.
    pub motd: Option<String>,
    /// The pause after a refused password, before `login_failed` (BusyBox login's
    /// LOGIN_FAIL_DELAY, pam_faildelay on Debian). Default "3s", at most "60s"; 0 turns it off.
    pub fail_delay: Option<NumOrStr>,
    /// Failed logins before the connection is closed. Default 3, at most 100.
    pub max_attempts: Option<u32>,
    /// The shell profile a logged-in peer gets. Default "busybox_router".
    pub shell: Option<String>,
    /// Which credentials get in (see [`super::creds`]).
    pub credentials: Option<CredentialsRaw>,
}

impl TelnetRaw {
    /// A copy with unset fields taken from `base`; credential fields merge one by one.
    pub fn merged_over(&self, base: &TelnetRaw) -> TelnetRaw {
        let mut m = crate::persona::merge_fields!(
            TelnetRaw,
            self,
            base,
            [inherit, description, style, negotiation, hostname, banner, login_prompt, password_prompt, login_failed, motd, fail_delay, max_attempts, shell], credentials: None
        );
        m.credentials = match (&self.credentials, &base.credentials) {
            (Some(a), Some(b)) => Some(a.merged_over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        m.inherit = base.inherit.clone();
        m
    }

    pub fn validate(&self, at: &str, _base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(s) = &self.style {
            if !STYLES.contains(&s.as_str()) {
                p.at(
                    &format!("{at}.style"),
                    format!("{s:?} is not one of {}", STYLES.join(", ")),
                );
            }
        }
        if let Some(n) = &self.negotiation {
            if !matches!(n.as_str(), "busybox" | "linux") {
                p.at(
                    &format!("{at}.negotiation"),
                    format!("{n:?} is not busybox or linux"),
                );
            }
        }
        if let Some(s) = &self.shell {
            if !Profile::BUILTIN.contains(&s.as_str()) {
                p.at(
                    &format!("{at}.shell"),
                    format!(
                        "{s:?} is not a shell profile (known: {})",
                        Profile::BUILTIN.join(", ")
                    ),
                );
            }
        }
        if let Some(d) = &self.fail_delay {
            match d.duration() {
                Ok(d) if d > MAX_FAIL_DELAY => {
                    p.at(&format!("{at}.fail_delay"), "must be at most 60s")
                }
                Ok(_) => {}
                Err(e) => p.at(&format!("{at}.fail_delay"), e),
            }
        }
        if let Some(n) = self.max_attempts {
            if !(1..=100).contains(&n) {
                p.at(&format!("{at}.max_attempts"), "must be between 1 and 100");
            }
        }
        for (name, v) in [
            ("hostname", &self.hostname),
            ("banner", &self.banner),
            ("login_prompt", &self.login_prompt),
            ("password_prompt", &self.password_prompt),
            ("login_failed", &self.login_failed),
            ("motd", &self.motd),
        ] {
            if v.as_ref().is_some_and(|s| s.len() > 64 << 10) {
                p.at(&format!("{at}.{name}"), "must be at most 64KiB");
            }
        }
        if let Some(c) = &self.credentials {
            c.validate(&format!("{at}.credentials"), p);
        }
    }

    /// Telnet is a TCP protocol.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if transports.contains(&Transport::Udp) {
            p.at(
                &format!("{at}.persona"),
                "a telnet persona needs TCP (transport = \"udp\" given)",
            );
        }
    }

    pub fn build(&self, _base_dir: &Path) -> Result<Telnet, String> {
        let shell = self.shell.as_deref().unwrap_or("busybox_router");
        let mut profile =
            Profile::builtin(shell).ok_or_else(|| format!("unknown shell profile {shell:?}"))?;
        if let Some(h) = &self.hostname {
            profile.hostname = h.clone();
        }
        let style = self.style.as_deref().unwrap_or("busybox");
        let d = style_defaults(style);
        let host = profile.hostname.clone();
        let text = |v: &Option<String>, default: &str| -> Vec<u8> {
            escape_iac(
                v.as_deref()
                    .unwrap_or(default)
                    .replace("{hostname}", &host)
                    .as_bytes(),
            )
        };
        let login_prompt = text(&self.login_prompt, d.login_prompt);
        let linux = match self.negotiation.as_deref() {
            Some(n) => n == "linux",
            None => style == "debian",
        };
        let mut rest = Vec::new();
        if linux {
            rest.extend_from_slice(LINUX_IACS_AFTER);
        }
        rest.extend(text(&self.banner, d.banner));
        rest.extend_from_slice(&login_prompt);
        let (greeting, greeting_rest, after_answer) = if linux {
            (LINUX_IACS.to_vec(), Vec::new(), Some(rest))
        } else {
            (BUSYBOX_IACS.to_vec(), rest, None)
        };
        Ok(Telnet {
            greeting,
            greeting_rest,
            after_answer,
            login_prompt,
            password_prompt: text(&self.password_prompt, d.password_prompt),
            login_failed: text(&self.login_failed, d.login_failed),
            motd: text(&self.motd, d.motd),
            fail_delay: match &self.fail_delay {
                Some(d) => d.duration()?,
                None => DEFAULT_FAIL_DELAY,
            },
            max_attempts: self.max_attempts.unwrap_or(3),
            profile: Arc::new(profile),
            creds: self.credentials.clone().unwrap_or_default().build()?,
        })
    }
}

struct StyleTexts {
    banner: &'static str,
    login_prompt: &'static str,
    password_prompt: &'static str,
    login_failed: &'static str,
    motd: &'static str,
}

const BUSYBOX_MOTD: &str =
    "\r\n\r\nBusyBox v1.19.4 (2014-03-20 15:30:08 CST) built-in shell (ash)\r\n\
Enter 'help' for a list of built-in commands.\r\n\r\n";

fn style_defaults(style: &str) -> StyleTexts {
    match style {
        "debian" => StyleTexts {
            banner: "\r\nDebian GNU/Linux 12\r\n",
            login_prompt: "{hostname} login: ",
            password_prompt: "Password: ",
            login_failed: "\r\nLogin incorrect\r\n",
            motd: "Linux {hostname} 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 \
(2023-09-29) x86_64\r\n\r\nThe programs included with the Debian GNU/Linux system are free \
software;\r\nthe exact distribution terms for each program are described in the\r\n\
individual files in /usr/share/doc/*/copyright.\r\n\r\nDebian GNU/Linux comes with ABSOLUTELY \
NO WARRANTY, to the extent\r\npermitted by applicable law.\r\n",
        },
        "router" => StyleTexts {
            banner: "\r\n",
            login_prompt: "Username: ",
            password_prompt: "Password: ",
            login_failed: "\r\n% Authentication failed\r\n\r\n",
            motd: BUSYBOX_MOTD,
        },
        "dvr" => StyleTexts {
            banner: "\r\r\n",
            login_prompt: "(none) login: ",
            password_prompt: "Password: ",
            login_failed: "\r\nLogin incorrect\r\n",
            motd: BUSYBOX_MOTD,
        },
        // The issue's newline goes through BusyBox telnetd's pty (ONLCR): CR CR LF. nmap's
        // "BusyBox telnetd" match expects exactly these bytes before "HOST login: ".
        _ => StyleTexts {
            banner: "\r\r\n",
            login_prompt: "{hostname} login: ",
            password_prompt: "Password: ",
            login_failed: "\r\nLogin incorrect\r\n",
            motd: BUSYBOX_MOTD,
        },
    }
}

/// Doubles every 0xFF so that data is not read as a telnet command.
pub fn escape_iac(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        out.push(c);
        if c == IAC {
            out.push(IAC);
        }
    }
    out
}

/// Shell output as a pty with ONLCR sends it: a bare LF becomes CR LF; 0xFF is doubled.
fn to_terminal(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 16);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        if c == IAC {
            out.push(IAC);
        }
        prev = c;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The built persona and its dialogue

/// BusyBox login sleeps 3 s after a refused password (LOGIN_FAIL_DELAY), as does Debian's
/// login with pam_faildelay. Brute forcers pace themselves by it; hydra's telnet module even
/// depends on it (answered at once, it sends an empty username and skips a password).
const DEFAULT_FAIL_DELAY: Duration = Duration::from_secs(3);
const MAX_FAIL_DELAY: Duration = Duration::from_secs(60);

/// A built telnet persona, shared by every session of its listener.
pub struct Telnet {
    greeting: Vec<u8>,
    /// BusyBox: the issue and login prompt, a second write (telnetd writes the negotiation
    /// itself, the login process it starts writes the prompt; hydra waits for that).
    greeting_rest: Vec<u8>,
    /// Linux negotiation: sent after the client's first answer (with SB ... SEND for the
    /// options it agreed to), then the issue text and the login prompt.
    after_answer: Option<Vec<u8>>,
    login_prompt: Vec<u8>,
    password_prompt: Vec<u8>,
    login_failed: Vec<u8>,
    motd: Vec<u8>,
    fail_delay: Duration,
    max_attempts: u32,
    profile: Arc<Profile>,
    creds: CredPolicy,
}

/// What the dialogue wants done, in order.
#[derive(Debug, PartialEq)]
pub enum Step {
    Send(Vec<u8>),
    /// Wait before the next `Send` (the pause after a refused password).
    Pause(Duration),
    Emit(EventKind),
    /// The persona is done (too many failed logins, `exit`).
    Close,
    Limit(Limit),
}

enum Phase {
    User,
    Password(Vec<u8>),
    Shell(Box<Shell>),
}

/// One session: a pure state machine (no I/O), unit-tested with byte strings.
pub struct Dialogue<'a> {
    t: &'a Telnet,
    src: IpAddr,
    max_line: usize,
    parser: OptionParser,
    pattern: Vec<String>,
    pattern_sent: bool,
    echo: bool,
    phase: Phase,
    line: Vec<u8>,
    after_cr: bool,
    failures: u32,
    done: bool,
    waiting_answer: bool,
}

impl<'a> Dialogue<'a> {
    pub fn new(t: &'a Telnet, src: IpAddr, max_line: usize) -> Self {
        Dialogue {
            t,
            src,
            max_line,
            parser: OptionParser::new(),
            pattern: Vec::new(),
            pattern_sent: false,
            echo: true,
            phase: Phase::User,
            line: Vec::new(),
            after_cr: false,
            failures: 0,
            done: false,
            waiting_answer: t.after_answer.is_some(),
        }
    }

    /// What the server sends first, as two writes: the negotiation, then (BusyBox) the issue
    /// and login prompt.
    pub fn greeting(&self) -> [&[u8]; 2] {
        [&self.t.greeting, &self.t.greeting_rest]
    }

    /// The option pattern, if it was not recorded yet and the client sent any command.
    pub fn leftover_pattern(&mut self) -> Option<EventKind> {
        if self.pattern_sent || self.pattern.is_empty() {
            return None;
        }
        Some(self.pattern_event())
    }

    fn pattern_event(&mut self) -> EventKind {
        self.pattern_sent = true;
        EventKind::TelnetOptions {
            pattern: self.pattern.join(","),
        }
    }

    /// Handles one read's worth of input.
    ///
    /// The answer is one write per read (or one on each side of a pause): the events first,
    /// then the bytes to send and pauses in order, then how the session ends, if it does
    /// (fewer writes under a brute-force load).
    pub fn on_input(&mut self, input: &[u8]) -> Vec<Step> {
        let steps = self.steps_for(input);
        let mut out = Vec::with_capacity(steps.len());
        let mut writes = Vec::new();
        let mut end = None;
        for s in steps {
            match s {
                Step::Send(b) => send(&mut writes, &b),
                p @ Step::Pause(_) => writes.push(p),
                e @ Step::Emit(_) => out.push(e),
                last => end = Some(last),
            }
        }
        out.extend(writes);
        out.extend(end);
        out
    }

    fn steps_for(&mut self, input: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.done {
            return steps;
        }
        let parsed = self.parser.feed(input);
        for c in &parsed.cmds {
            match c {
                Cmd::Do(OPT_ECHO) => self.echo = true,
                Cmd::Dont(OPT_ECHO) => self.echo = false,
                _ => {}
            }
            if !self.pattern_sent && self.pattern.len() < MAX_PATTERN {
                self.pattern.push(describe(c));
            }
        }
        if self.waiting_answer && !(parsed.cmds.is_empty() && parsed.data.is_empty()) {
            self.waiting_answer = false;
            let mut out = Vec::new();
            for c in &parsed.cmds {
                if let Cmd::Will(o @ (OPT_TTYPE | OPT_TSPEED | OPT_XDISPLOC | OPT_NEW_ENVIRON)) = c
                {
                    out.extend_from_slice(&[IAC, SB, *o, SB_SEND, IAC, SE]);
                }
            }
            out.extend_from_slice(self.t.after_answer.as_deref().unwrap_or_default());
            send(&mut steps, &out);
        }
        let mut echo = Vec::new();
        for &b in &parsed.data {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    self.flush_echo(&mut echo, &mut steps, true);
                    self.end_line(&mut steps);
                    if self.done {
                        return steps;
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.max_line {
                        self.flush_echo(&mut echo, &mut steps, false);
                        self.done = true;
                        steps.push(Step::Limit(Limit::Line));
                        return steps;
                    }
                    self.line.push(b);
                    if self.echo && !matches!(self.phase, Phase::Password(_)) {
                        echo.push(b);
                    }
                }
            }
        }
        self.flush_echo(&mut echo, &mut steps, false);
        if let Some(l) = parsed.limit {
            self.done = true;
            steps.push(Step::Limit(l));
        }
        steps
    }

    fn flush_echo(&self, echo: &mut Vec<u8>, steps: &mut Vec<Step>, line_end: bool) {
        if line_end && (self.echo || matches!(self.phase, Phase::Password(_))) {
            // The password's newline comes from login itself, echo or not.
            echo.extend_from_slice(b"\r\n");
        }
        if !echo.is_empty() {
            send(steps, &escape_iac(echo));
            echo.clear();
        }
    }

    fn end_line(&mut self, steps: &mut Vec<Step>) {
        let line = std::mem::take(&mut self.line);
        if !self.pattern_sent {
            let e = self.pattern_event();
            steps.push(Step::Emit(e));
        }
        let t = self.t;
        match std::mem::replace(&mut self.phase, Phase::User) {
            Phase::User => {
                if line.is_empty() {
                    send(steps, &t.login_prompt);
                } else {
                    self.phase = Phase::Password(line);
                    send(steps, &t.password_prompt);
                }
            }
            Phase::Password(user) => {
                let ok = t.creds.check(self.src, &user, &line);
                let (username, password) = (Payload(user), Payload(line));
                let method = "telnet".to_string();
                if ok {
                    steps.push(Step::Emit(EventKind::LoginSuccess {
                        username: username.clone(),
                        password,
                        method,
                    }));
                    let shell = Shell::new(t.profile.clone(), username.as_bytes());
                    send(steps, &t.motd);
                    send(steps, &escape_iac(&shell.prompt()));
                    self.phase = Phase::Shell(Box::new(shell));
                } else {
                    steps.push(Step::Emit(EventKind::LoginFailed {
                        username,
                        password,
                        method,
                    }));
                    self.failures += 1;
                    if !t.fail_delay.is_zero() {
                        steps.push(Step::Pause(t.fail_delay));
                    }
                    send(steps, &t.login_failed);
                    if self.failures >= t.max_attempts {
                        self.done = true;
                        steps.push(Step::Close);
                    } else {
                        send(steps, &t.login_prompt);
                    }
                }
            }
            Phase::Shell(mut shell) => {
                let out = shell.run_line(&line);
                for ev in out.events {
                    steps.push(Step::Emit(ev.into()));
                }
                send(steps, &to_terminal(&out.output));
                if out.exit {
                    self.done = true;
                    steps.push(Step::Close);
                } else {
                    send(steps, &escape_iac(&shell.prompt()));
                    self.phase = Phase::Shell(shell);
                }
            }
        }
    }
}

/// Appends to the last `Send` when there is one, so one read answers with one write.
fn send(steps: &mut Vec<Step>, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    if let Some(Step::Send(last)) = steps.last_mut() {
        last.extend_from_slice(b);
    } else {
        steps.push(Step::Send(b.to_vec()));
    }
}

impl Telnet {
    /// Serves one session.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        let mut d = Dialogue::new(self, conn.meta().src.ip(), conn.max_read());
        let r = run(&mut d, conn).await;
        if let Some(e) = d.leftover_pattern() {
            conn.emit(e).await;
        }
        match r {
            Ok(()) => End::persona(),
            Err(end) => end,
        }
    }
}

async fn run(d: &mut Dialogue<'_>, conn: &mut Conn) -> Result<(), End> {
    for part in d.greeting() {
        conn.write(part).await?;
    }
    loop {
        let data = conn.read().await?;
        for step in d.on_input(&data) {
            match step {
                Step::Send(b) => conn.write(&b).await?,
                Step::Pause(p) => conn.sleep(p).await?,
                Step::Emit(e) => {
                    let fetch = match &e {
                        EventKind::FileDownload { url, command, .. } => {
                            Some((url.clone(), command.clone()))
                        }
                        _ => None,
                    };
                    conn.emit(e).await;
                    if let Some((url, command)) = fetch {
                        conn.fetch_download(&url, &command).await;
                    }
                }
                Step::Close => return Ok(()),
                Step::Limit(l) => return Err(End::limit(l.as_str())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

    fn build(src: &str) -> Telnet {
        toml::from_str::<TelnetRaw>(src)
            .unwrap()
            .build(Path::new("."))
            .unwrap()
    }

    fn sent(steps: &[Step]) -> Vec<u8> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn logins(steps: &[Step]) -> Vec<(bool, Vec<u8>, Vec<u8>)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Emit(EventKind::LoginSuccess {
                    username, password, ..
                }) => Some((true, username.0.clone(), password.0.clone())),
                Step::Emit(EventKind::LoginFailed {
                    username, password, ..
                }) => Some((false, username.0.clone(), password.0.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parser_decodes_commands_sb_and_escapes_across_reads() {
        let mut p = OptionParser::new();
        let all = [
            IAC, WONT, OPT_ECHO, IAC, WILL, OPT_NAWS, IAC, SB, OPT_NAWS, 0, 80, 0, 24, IAC, SE,
            b'a', IAC, IAC, b'b', b'\r', 0, b'c', b'\r', b'\n', IAC, 241, IAC, SB, OPT_TTYPE, 0,
            b'X', b'T', IAC, IAC, IAC, SE,
        ];
        let whole = OptionParser::new().feed(&all);
        // Every split point gives the same result as one read.
        for cut in 0..all.len() {
            let mut p2 = OptionParser::new();
            let mut a = p2.feed(&all[..cut]);
            let b = p2.feed(&all[cut..]);
            a.data.extend(b.data);
            a.cmds.extend(b.cmds);
            assert_eq!(a, whole, "cut at {cut}");
        }
        let r = p.feed(&all);
        assert_eq!(r.data, b"a\xffb\rc\r\n");
        let pattern: Vec<String> = r.cmds.iter().map(describe).collect();
        assert_eq!(
            pattern,
            [
                "WONT ECHO",
                "WILL NAWS",
                "SB NAWS 80x24",
                "NOP",
                "SB TTYPE IS XT\\xff"
            ]
        );
    }

    #[test]
    fn endless_subnegotiation_and_iac_flood_hit_limits() {
        let mut p = OptionParser::new();
        let mut sb = vec![IAC, SB, OPT_TTYPE];
        sb.extend(std::iter::repeat_n(b'x', MAX_SUBNEGOTIATION));
        assert_eq!(p.feed(&sb).limit, None);
        assert_eq!(p.feed(b"y").limit, Some(Limit::Subnegotiation));
        assert_eq!(p.feed(b"more").data, b"", "stopped after the limit");

        let mut p = OptionParser::new();
        let flood: Vec<u8> = std::iter::repeat_n([IAC, 241], MAX_COMMANDS as usize + 1)
            .flatten()
            .collect();
        let r = p.feed(&flood);
        assert_eq!(r.limit, Some(Limit::Commands));
        assert_eq!(r.cmds.len(), MAX_COMMANDS as usize);
    }

    #[test]
    fn greeting_is_busybox_negotiation_then_prompt() {
        let t = build("hostname = \"gw\"");
        let d = Dialogue::new(&t, SRC, 1024);
        let [iacs, prompt] = d.greeting();
        assert_eq!(iacs, BUSYBOX_IACS);
        assert_eq!(prompt, b"\r\r\ngw login: ");
    }

    #[test]
    fn mirai_style_login_records_pattern_and_credentials() {
        let t = build("[credentials]\naccept = [\"root:xc3511\"]\naccept_any_after = 0");
        let mut d = Dialogue::new(&t, SRC, 1024);
        let mut steps = d.on_input(&[
            IAC, WONT, OPT_ECHO, IAC, WILL, OPT_NAWS, IAC, SB, OPT_NAWS, 0, 80, 0, 24, IAC, SE,
            IAC, DO, OPT_ECHO, IAC, DO, OPT_SGA,
        ]);
        assert!(steps.is_empty(), "busybox never answers negotiation");
        steps.extend(d.on_input(b"root\r\n"));
        assert!(steps.contains(&Step::Emit(EventKind::TelnetOptions {
            pattern: "WONT ECHO,WILL NAWS,SB NAWS 80x24,DO ECHO,DO SGA".into()
        })));
        assert_eq!(sent(&steps), b"root\r\nPassword: ");
        let steps = d.on_input(b"wrong\r\n");
        assert_eq!(
            logins(&steps),
            [(false, b"root".to_vec(), b"wrong".to_vec())]
        );
        assert_eq!(sent(&steps), b"\r\n\r\nLogin incorrect\r\nrouter login: ");
        let steps = d.on_input(b"root\r\0xc3511\r\0");
        assert_eq!(
            logins(&steps),
            [(true, b"root".to_vec(), b"xc3511".to_vec())]
        );
        assert!(sent(&steps).ends_with(b"router# "));
        let steps = d.on_input(b"enable\r\n");
        assert!(steps.iter().any(|s| matches!(s,
            Step::Emit(EventKind::CommandInput { input, .. }) if input.0 == b"enable")));
    }

    #[test]
    fn password_is_not_echoed_and_dont_echo_stops_echo() {
        let t = build("style = \"router\"");
        let mut d = Dialogue::new(&t, SRC, 1024);
        assert_eq!(sent(&d.on_input(b"adm")), b"adm");
        assert_eq!(sent(&d.on_input(b"in\n")), b"in\r\nPassword: ");
        let s = sent(&d.on_input(b"secret\r\n"));
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert!(s.starts_with(b"\r\n"));
        let mut d = Dialogue::new(&t, SRC, 1024);
        assert_eq!(
            sent(&d.on_input(&[IAC, DONT, OPT_ECHO, b'u', b'\r', b'\n'])),
            b"Password: "
        );
    }

    #[test]
    fn max_attempts_then_close() {
        let t = build("max_attempts = 2\n[credentials]\naccept = []\naccept_any_after = 0");
        let mut d = Dialogue::new(&t, SRC, 1024);
        let steps = d.on_input(b"a\r\n1\r\nb\r\n2\r\nc\r\n3\r\n");
        assert_eq!(logins(&steps).len(), 2);
        assert_eq!(steps.last(), Some(&Step::Close));
        assert!(d.on_input(b"more\r\n").is_empty());
    }

    #[test]
    fn refused_password_pauses_between_the_newline_and_login_incorrect() {
        let t = build("[credentials]\naccept = []\naccept_any_after = 0");
        let mut d = Dialogue::new(&t, SRC, 1024);
        d.on_input(b"root\r\n");
        let steps = d.on_input(b"pw\r\n");
        assert!(matches!(
            steps[0],
            Step::Emit(EventKind::LoginFailed { .. })
        ));
        assert_eq!(steps[1], Step::Send(b"\r\n".to_vec()));
        assert_eq!(steps[2], Step::Pause(DEFAULT_FAIL_DELAY));
        assert_eq!(
            steps[3],
            Step::Send(b"\r\nLogin incorrect\r\nrouter login: ".to_vec())
        );
        assert_eq!(steps.len(), 4);
        let t = build("fail_delay = 0\n[credentials]\naccept = []\naccept_any_after = 0");
        let mut d = Dialogue::new(&t, SRC, 1024);
        let steps = d.on_input(b"root\r\npw\r\n");
        assert!(!steps.iter().any(|s| matches!(s, Step::Pause(_))));
    }

    #[test]
    fn overlong_line_is_a_limit() {
        let t = build("");
        let mut d = Dialogue::new(&t, SRC, 16);
        let steps = d.on_input(&[b'A'; 17]);
        assert_eq!(steps.last(), Some(&Step::Limit(Limit::Line)));
    }

    #[test]
    fn binary_credentials_are_kept_exactly_and_output_escaped() {
        let t = build("[credentials]\naccept = []\naccept_any_after = 0");
        let mut d = Dialogue::new(&t, SRC, 1024);
        let steps = d.on_input(&[0x01, IAC, IAC, 0x00, b'\n', 0x80, b'\n']);
        assert_eq!(
            logins(&steps),
            [(false, vec![0x01, 0xff, 0x00], vec![0x80])]
        );
        // The echoed 0xFF is doubled again on the way out.
        assert!(sent(&steps).starts_with(&[0x01, IAC, IAC, 0x00, b'\r', b'\n']));
    }

    #[test]
    fn styles_and_merge() {
        let base: TelnetRaw =
            toml::from_str("style = \"debian\"\n[credentials]\naccept = [\"a:b\"]").unwrap();
        let child: TelnetRaw =
            toml::from_str("hostname = \"web1\"\n[credentials]\naccept_any_after = 9").unwrap();
        let m = child.merged_over(&base);
        assert_eq!(m.style.as_deref(), Some("debian"));
        let c = m.credentials.clone().unwrap();
        assert_eq!(c.accept, Some(vec!["a:b".to_string()]));
        assert_eq!(c.accept_any_after, Some(9));
        let t = m.build(Path::new(".")).unwrap();
        assert_eq!(t.greeting, LINUX_IACS);
        let after = t.after_answer.as_deref().unwrap();
        assert!(after.ends_with(b"\r\nDebian GNU/Linux 12\r\nweb1 login: "));
        // The rest comes once the client answered, with SB SEND for what it agreed to.
        let mut d = Dialogue::new(&t, SRC, 1024);
        let s = sent(&d.on_input(&[IAC, WILL, OPT_TTYPE, IAC, WONT, OPT_TSPEED]));
        assert!(s.starts_with(&[IAC, SB, OPT_TTYPE, SB_SEND, IAC, SE]));
        assert!(s.ends_with(after));
        let steps = d.on_input(&[IAC, SB, OPT_TTYPE, 0, b'X', IAC, SE, b'u', b'\r', b'\n']);
        assert!(steps.contains(&Step::Emit(EventKind::TelnetOptions {
            pattern: "WILL TTYPE,WONT TSPEED,SB TTYPE IS X".into()
        })));
    }
}
