//! The `scripted` persona: banner, replies and match rules, declared in the config.
//!
//! Covers every feature of Didier Stevens' tcp-honeypot / simple_listener.py without running
//! code from the config:
//!
//! | simple_listener      | here                                   |
//! |----------------------|----------------------------------------|
//! | THP_BANNER           | `banner`                               |
//! | THP_REPLY            | `reply` (after every read)             |
//! | THP_LOOP             | `loop` (most reads; 0 = until a limit) |
//! | THP_MATCH            | `[[...rules]]` with `prefix`, `regex` or `else = true` |
//! | THP_ACTION           | rule `action`: reply, disconnect, reply_disconnect |
//! | THP_ECHO             | `echo = "raw" \| "upper" \| "lower"`   |
//! | THP_SPLIT            | `split`                                |
//! | THP_DELAY            | `delay` (before each banner and reply) |
//! | THP_MINIMUM_DATA_LENGTH | `min_length`                        |
//! | THP_READALL          | `read_all = true` or a pause like "100ms" |
//! | THP_ECHO_THIS        | `echo_this = { delimiter, variable, format }` |
//! | THP_ALLOW_LIST       | listener `allow`                       |
//! | THP_REFERENCE / templates | persona `inherit`, listener `[override]` |
//! | THP_SSL              | listener `tls`                         |
//!
//! Differences, on purpose: prefix and regex rules may be mixed (the longest match wins either
//! way); regexes run on raw bytes with `.` matching any byte including newline; a missing
//! certificate or file is a config error, never a silent fallback.
//!
//! Differences to know when porting a simple_listener config: `$` matches only at the very end
//! of the input (Python's `$` also matches just before a final newline, so write `^hello\n$` or
//! `^hello\n?$` rather than `^hello$` for line input); `loop = 0` means no read limit (Python's
//! `THP_LOOP: 0` reads nothing); an echo-this variable with no value in the request is replaced
//! by nothing (Python leaves the variable name in the reply).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use honeyport_event::{EventKind, Transport};
use rand::Rng;
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::bytes::BytesSpec;
use super::template::{extract, EchoFormat, Extracted, Template};
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::listener::conn::{Conn, End};

/// `type = "scripted"`. Every field is optional so that a persona can inherit another and a
/// listener can override single fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedRaw {
    /// Another persona whose fields this one starts from (a template). Fields set here win;
    /// `rules` replaces the template's whole rule list.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// Sent once when the session starts (TCP only: UDP has no session start to answer).
    pub banner: Option<BytesSpec>,
    /// Sent after every read (before rule replies).
    pub reply: Option<BytesSpec>,
    /// Most reads before the persona closes the session. Default 1 (read once, answer, close,
    /// like simple_listener). 0 means no count; the limits still apply.
    #[serde(rename = "loop")]
    pub reads: Option<u32>,
    /// Match rules, tried on every (split) input. The longest match wins; ties are broken at
    /// random; `else = true` rules answer when nothing else matched.
    pub rules: Option<Vec<RuleRaw>>,
    /// Send each input back: "raw", "upper" or "lower" (ASCII case).
    pub echo: Option<String>,
    /// Split each input on this separator and handle the parts one by one (empty parts skipped).
    pub split: Option<BytesSpec>,
    /// Wait this long before each banner and reply, e.g. "3.5s".
    pub delay: Option<NumOrStr>,
    /// Collect input until at least this many bytes arrived before handling it.
    pub min_length: Option<u64>,
    /// After a read, keep reading whatever else is ready before handling it. `true`, or a
    /// pause between those reads such as "100ms".
    pub read_all: Option<ReadAllRaw>,
    /// Reply with bytes the client put between two delimiters (see [`EchoThisRaw`]).
    pub echo_this: Option<EchoThisRaw>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ReadAllRaw {
    Flag(bool),
    Pause(NumOrStr),
}

/// One `[[personas.NAME.rules]]` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRaw {
    /// Name recorded on the `rule.match` event. Default `rule<N>`.
    pub name: Option<String>,
    /// Matches when the input starts with these bytes (case-sensitive).
    pub prefix: Option<BytesSpec>,
    /// Matches when this regex is found anywhere in the input (use `^` to anchor). Runs on raw
    /// bytes; `.` matches any byte including newline; `(?i)` for ASCII case-insensitivity;
    /// `\xFF` matches byte 0xFF.
    pub regex: Option<String>,
    /// `else = true`: answers when no other rule matched.
    #[serde(rename = "else")]
    pub otherwise: Option<bool>,
    /// Sent when this rule wins.
    pub reply: Option<BytesSpec>,
    /// "reply" (default), "disconnect", or "reply_disconnect". With `disconnect` a `reply`
    /// is still sent first, like simple_listener.
    pub action: Option<String>,
}

/// `echo_this = { delimiter = "ECHOTHIS", variable = "%ECHOTHIS%", format = "raw" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoThisRaw {
    /// The delimiter around the value in the request.
    pub delimiter: String,
    /// The alias replaced in replies. Default `%ECHOTHIS%`.
    pub variable: Option<String>,
    /// raw (default), hex, base64, escaped or dynamic.
    pub format: Option<String>,
}

impl ScriptedRaw {
    /// A copy with unset fields taken from `base`. `inherit` comes from `base`, so chains
    /// resolve one link at a time.
    pub fn merged_over(&self, base: &ScriptedRaw) -> ScriptedRaw {
        let mut m = crate::persona::merge_fields!(
            ScriptedRaw,
            self,
            base,
            [
                inherit,
                description,
                banner,
                reply,
                reads,
                rules,
                echo,
                split,
                delay,
                min_length,
                read_all,
                echo_this
            ]
        );
        m.inherit = base.inherit.clone();
        m
    }

    pub fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(b) = &self.banner {
            b.validate(&format!("{at}.banner"), base_dir, p);
        }
        if let Some(b) = &self.reply {
            b.validate(&format!("{at}.reply"), base_dir, p);
        }
        if let Some(s) = &self.split {
            s.validate(&format!("{at}.split"), base_dir, p);
            if s.load(base_dir).map(|b| b.is_empty()).unwrap_or(false) {
                p.at(&format!("{at}.split"), "separator is empty");
            }
        }
        if let Some(e) = &self.echo {
            if !matches!(e.as_str(), "raw" | "upper" | "lower") {
                p.at(
                    &format!("{at}.echo"),
                    format!("{e:?} is not raw, upper or lower"),
                );
            }
        }
        if let Some(d) = &self.delay {
            if let Err(e) = d.duration() {
                p.at(&format!("{at}.delay"), e);
            }
        }
        if let Some(ReadAllRaw::Pause(d)) = &self.read_all {
            if let Err(e) = d.duration() {
                p.at(&format!("{at}.read_all"), e);
            }
        }
        if let Some(m) = self.min_length {
            if m > 16 << 20 {
                p.at(&format!("{at}.min_length"), "must be at most 16MiB");
            }
        }
        if let Some(et) = &self.echo_this {
            if et.delimiter.is_empty() {
                p.at(&format!("{at}.echo_this.delimiter"), "delimiter is empty");
            }
            if let Some(f) = &et.format {
                if EchoFormat::parse(f).is_none() {
                    p.at(
                        &format!("{at}.echo_this.format"),
                        format!("{f:?} is not raw, hex, base64, escaped or dynamic"),
                    );
                }
            }
            if et.variable.as_deref() == Some("") {
                p.at(
                    &format!("{at}.echo_this.variable"),
                    "variable name is empty",
                );
            }
        }
        for (i, r) in self.rules.iter().flatten().enumerate() {
            let at = format!("{at}.rules[{i}]");
            let kinds = [
                r.prefix.is_some(),
                r.regex.is_some(),
                r.otherwise == Some(true),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if kinds != 1 {
                p.at(
                    &at,
                    "a rule needs exactly one of prefix, regex or else = true",
                );
            }
            if r.otherwise == Some(false) {
                p.at(
                    &format!("{at}.else"),
                    "else = false has no meaning; remove it",
                );
            }
            if let Some(pre) = &r.prefix {
                pre.validate(&format!("{at}.prefix"), base_dir, p);
            }
            if let Some(re) = &r.regex {
                if let Err(e) = compile_regex(re) {
                    p.at(
                        &format!("{at}.regex"),
                        format!("bad regex: {}", one_line(&e.to_string())),
                    );
                }
            }
            if let Some(rep) = &r.reply {
                rep.validate(&format!("{at}.reply"), base_dir, p);
            }
            match r.action.as_deref() {
                None | Some("reply") => {
                    if r.reply.is_none() {
                        p.at(&at, "action reply needs a reply");
                    }
                }
                Some("disconnect") | Some("reply_disconnect") => {}
                Some(other) => p.at(
                    &format!("{at}.action"),
                    format!("{other:?} is not reply, disconnect or reply_disconnect"),
                ),
            }
            if r.action.as_deref() == Some("reply_disconnect") && r.reply.is_none() {
                p.at(&at, "action reply_disconnect needs a reply");
            }
        }
    }

    /// Checks that only make sense on the merged persona.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if self.echo_this.is_some()
            && self.reply.is_none()
            && !self.rules.iter().flatten().any(|r| r.reply.is_some())
        {
            p.at(
                &format!("{at}.persona"),
                "echo_this is set but no reply or rule reply uses it",
            );
        }
        let _ = transports;
    }

    pub fn build(&self, base_dir: &Path) -> Result<Scripted, String> {
        let echo_var: Option<Vec<u8>> = self.echo_this.as_ref().map(|e| {
            e.variable
                .clone()
                .unwrap_or_else(|| "%ECHOTHIS%".into())
                .into_bytes()
        });
        let tpl = |b: &Option<BytesSpec>| -> Result<Option<Template>, String> {
            b.as_ref()
                .map(|b| {
                    b.load(base_dir)
                        .map(|bytes| Template::compile(&bytes, echo_var.as_deref()))
                })
                .transpose()
        };
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().flatten().enumerate() {
            let matcher = if let Some(p) = &r.prefix {
                Matcher::Prefix(p.load(base_dir)?)
            } else if let Some(re) = &r.regex {
                Matcher::Regex(compile_regex(re).map_err(|e| e.to_string())?)
            } else {
                Matcher::Else
            };
            let action = match r.action.as_deref() {
                Some("disconnect") => Action::Disconnect,
                Some("reply_disconnect") => Action::ReplyDisconnect,
                _ => Action::Reply,
            };
            rules.push(Rule {
                name: r.name.clone().unwrap_or_else(|| format!("rule{i}")),
                matcher,
                reply: tpl(&r.reply)?,
                action,
            });
        }
        Ok(Scripted {
            banner: tpl(&self.banner)?,
            reply: tpl(&self.reply)?,
            reads: self.reads.unwrap_or(1),
            rules,
            echo: self.echo.as_deref().map(|e| match e {
                "upper" => Echo::Upper,
                "lower" => Echo::Lower,
                _ => Echo::Raw,
            }),
            split: self.split.as_ref().map(|s| s.load(base_dir)).transpose()?,
            delay: self.delay.as_ref().map(|d| d.duration()).transpose()?,
            min_length: self.min_length.unwrap_or(0) as usize,
            read_all: match &self.read_all {
                None | Some(ReadAllRaw::Flag(false)) => None,
                Some(ReadAllRaw::Flag(true)) => Some(Duration::ZERO),
                Some(ReadAllRaw::Pause(d)) => Some(d.duration()?),
            },
            echo_this: self.echo_this.as_ref().map(|e| EchoThis {
                delimiter: e.delimiter.as_bytes().to_vec(),
                format: e
                    .format
                    .as_deref()
                    .and_then(EchoFormat::parse)
                    .unwrap_or(EchoFormat::Raw),
            }),
            persisted: Mutex::new(None),
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compiles a rule regex for raw bytes: `.` matches any byte, newline included.
pub fn compile_regex(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re)
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(4 << 20)
        .dfa_size_limit(4 << 20)
        .build()
}

#[derive(Debug)]
enum Matcher {
    Prefix(Vec<u8>),
    Regex(Regex),
    Else,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Reply,
    Disconnect,
    ReplyDisconnect,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Reply => "reply",
            Action::Disconnect => "disconnect",
            Action::ReplyDisconnect => "reply_disconnect",
        }
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    matcher: Matcher,
    reply: Option<Template>,
    action: Action,
}

#[derive(Clone, Copy, Debug)]
enum Echo {
    Raw,
    Upper,
    Lower,
}

struct EchoThis {
    delimiter: Vec<u8>,
    format: EchoFormat,
}

/// A built scripted persona, shared by every session of its listener.
pub struct Scripted {
    banner: Option<Template>,
    reply: Option<Template>,
    reads: u32,
    rules: Vec<Rule>,
    echo: Option<Echo>,
    split: Option<Vec<u8>>,
    delay: Option<Duration>,
    min_length: usize,
    read_all: Option<Duration>,
    echo_this: Option<EchoThis>,
    /// A value a client asked to persist (dynamic echo-this with `P`), served to later
    /// sessions of this listener until another replaces it.
    persisted: Mutex<Option<Vec<u8>>>,
}

/// What the dialogue wants done, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Send(Vec<u8>),
    Matched {
        rule: String,
        action: Action,
        len: usize,
    },
    /// Echo-this delimiters were found but the value did not decode.
    EchoThisInvalid(String),
    Disconnect,
}

/// One session's state: a pure state machine, no I/O (unit-tested with byte strings).
pub struct Dialogue<'a> {
    s: &'a Scripted,
    pending: Vec<u8>,
}

impl<'a> Dialogue<'a> {
    pub fn new(s: &'a Scripted) -> Self {
        Dialogue {
            s,
            pending: Vec::new(),
        }
    }

    pub fn banner(&self) -> Option<Vec<u8>> {
        self.s.banner.as_ref().map(|t| t.render(Utc::now(), None))
    }

    /// Handles one read's worth of input.
    pub fn on_input(&mut self, data: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        let joined;
        let data = if self.s.min_length > 0 {
            self.pending.extend_from_slice(data);
            if self.pending.len() < self.s.min_length {
                return steps;
            }
            joined = std::mem::take(&mut self.pending);
            &joined[..]
        } else {
            data
        };
        let parts: Vec<&[u8]> = match &self.s.split {
            Some(sep) => split(data, sep).filter(|p| !p.is_empty()).collect(),
            None => vec![data],
        };
        for part in parts {
            if self.on_part(part, &mut steps) {
                steps.push(Step::Disconnect);
                break;
            }
        }
        steps
    }

    /// Returns true when a rule asked to disconnect.
    fn on_part(&mut self, part: &[u8], steps: &mut Vec<Step>) -> bool {
        let s = self.s;
        if let Some(e) = s.echo {
            steps.push(Step::Send(match e {
                Echo::Raw => part.to_vec(),
                Echo::Upper => part.to_ascii_uppercase(),
                Echo::Lower => part.to_ascii_lowercase(),
            }));
        }
        let echo = self.echo_value(part, steps);
        let now = Utc::now();
        if let Some(r) = &s.reply {
            steps.push(Step::Send(r.render(now, echo.as_deref())));
        }
        if s.rules.is_empty() {
            return false;
        }
        let mut best: Vec<(usize, usize)> = Vec::new(); // (rule index, match length)
        for (i, r) in s.rules.iter().enumerate() {
            let len = match &r.matcher {
                Matcher::Prefix(p) if part.starts_with(p) => p.len(),
                Matcher::Regex(re) => match re.find(part) {
                    Some(m) => m.len(),
                    None => continue,
                },
                _ => continue,
            };
            match best.first() {
                Some(&(_, l)) if len < l => {}
                Some(&(_, l)) if len == l => best.push((i, len)),
                _ => {
                    best.clear();
                    best.push((i, len));
                }
            }
        }
        if best.is_empty() {
            best = s
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r.matcher, Matcher::Else))
                .map(|(i, _)| (i, 0))
                .collect();
        }
        if best.is_empty() {
            return false;
        }
        let (idx, len) = best[rand::rng().random_range(0..best.len())];
        let rule = &s.rules[idx];
        steps.push(Step::Matched {
            rule: rule.name.clone(),
            action: rule.action,
            len,
        });
        if let Some(r) = &rule.reply {
            steps.push(Step::Send(r.render(now, echo.as_deref())));
        }
        rule.action != Action::Reply
    }

    fn echo_value(&self, part: &[u8], steps: &mut Vec<Step>) -> Option<Vec<u8>> {
        let et = self.s.echo_this.as_ref()?;
        match extract(part, &et.delimiter, et.format) {
            Extracted::Value { value, persist } => {
                if persist {
                    if let Ok(mut g) = self.s.persisted.lock() {
                        *g = Some(value.clone());
                    }
                }
                Some(value)
            }
            Extracted::Invalid(why) => {
                steps.push(Step::EchoThisInvalid(why));
                None
            }
            Extracted::None => self.s.persisted.lock().ok().and_then(|g| g.clone()),
        }
    }
}

fn split<'d>(data: &'d [u8], sep: &'d [u8]) -> impl Iterator<Item = &'d [u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match super::template::find(r, sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

impl Scripted {
    /// Serves one session.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        match self.run(conn).await {
            Ok(()) => End::persona(),
            Err(end) => end,
        }
    }

    async fn run(&self, conn: &mut Conn) -> Result<(), End> {
        let mut d = Dialogue::new(self);
        if conn.transport() == Transport::Tcp {
            if let Some(b) = d.banner() {
                self.pause(conn).await?;
                conn.write(&b).await?;
            }
        }
        let mut reads: u32 = 0;
        loop {
            if self.reads != 0 && reads >= self.reads {
                return Ok(());
            }
            let mut data = conn.read().await?;
            reads = reads.saturating_add(1);
            if let Some(pause) = self.read_all {
                while data.len() < conn.max_read() {
                    match conn.read_ready(pause).await? {
                        Some(more) => data.extend_from_slice(&more),
                        None => break,
                    }
                }
            }
            for step in d.on_input(&data) {
                match step {
                    Step::Send(bytes) => {
                        self.pause(conn).await?;
                        conn.write(&bytes).await?;
                    }
                    Step::Matched { rule, action, len } => {
                        conn.emit(EventKind::RuleMatch {
                            rule,
                            action: action.as_str().into(),
                            match_len: len as u64,
                        })
                        .await;
                    }
                    Step::EchoThisInvalid(why) => {
                        conn.emit(EventKind::RuleMatch {
                            rule: format!("echo_this: {why}"),
                            action: "none".into(),
                            match_len: 0,
                        })
                        .await;
                    }
                    Step::Disconnect => return Ok(()),
                }
            }
        }
    }

    async fn pause(&self, conn: &mut Conn) -> Result<(), End> {
        match self.delay {
            Some(d) if !d.is_zero() => conn.sleep(d).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_src: &str) -> Scripted {
        let raw: ScriptedRaw = toml::from_str(toml_src).unwrap();
        raw.build(Path::new(".")).unwrap()
    }

    fn sends(steps: &[Step]) -> Vec<Vec<u8>> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn prefix_rules_and_else() {
        let s = build(
            r#"
loop = 10
[[rules]]
name = "HELLO"
prefix = "hello"
reply = "hi there!"
[[rules]]
name = "EXIT"
prefix = "exit"
reply = "closing connection!"
action = "reply_disconnect"
[[rules]]
name = "FALLBACK"
else = true
reply = "I did not understand that!"
"#,
        );
        let mut d = Dialogue::new(&s);
        assert_eq!(sends(&d.on_input(b"hello\n")), vec![b"hi there!".to_vec()]);
        assert_eq!(
            sends(&d.on_input(b"what\n")),
            vec![b"I did not understand that!".to_vec()]
        );
        let steps = d.on_input(b"exit\n");
        assert_eq!(sends(&steps), vec![b"closing connection!".to_vec()]);
        assert_eq!(steps.last(), Some(&Step::Disconnect));
    }

    #[test]
    fn longest_regex_wins_and_ties_are_random() {
        let s = build(
            r#"
[[rules]]
name = "short"
regex = "^EH"
reply = "short"
[[rules]]
name = "long"
regex = "^EHLO"
reply = "long"
[[rules]]
name = "tie"
regex = "LO s"
reply = "tie"
"#,
        );
        // "^EHLO" (4) beats "^EH" (2); "LO s" is also 4: a tie, picked at random.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut d = Dialogue::new(&s);
            seen.insert(sends(&d.on_input(b"EHLO scan\r\n"))[0].clone());
        }
        assert_eq!(
            seen,
            [b"long".to_vec(), b"tie".to_vec()].into_iter().collect()
        );
    }

    #[test]
    fn regex_dot_matches_newline_and_raw_bytes() {
        let s = build(
            r#"
[[rules]]
regex = "a.b"
reply = "nl"
[[rules]]
regex = "^\\xff\\xfb"
reply = "iac"
"#,
        );
        let mut d = Dialogue::new(&s);
        assert_eq!(sends(&d.on_input(b"a\nb")), vec![b"nl".to_vec()]);
        assert_eq!(
            sends(&d.on_input(&[0xff, 0xfb, 0x01])),
            vec![b"iac".to_vec()]
        );
    }

    #[test]
    fn split_echo_and_min_length() {
        let s = build(
            r#"
split = ","
echo = "upper"
min_length = 8
"#,
        );
        let mut d = Dialogue::new(&s);
        assert!(d.on_input(b"hel").is_empty());
        assert_eq!(
            sends(&d.on_input(b"lo,,bye")),
            vec![b"HELLO".to_vec(), b"BYE".to_vec()]
        );
    }

    #[test]
    fn no_match_and_no_else_sends_nothing() {
        let s = build(
            r#"
[[rules]]
prefix = "x"
reply = "y"
"#,
        );
        assert!(Dialogue::new(&s).on_input(b"abc").is_empty());
    }

    #[test]
    fn echo_this_persists_across_sessions() {
        let s = build(
            r#"
reply = "[%ECHOTHIS%]"
echo_this = { delimiter = "ECHOTHIS", format = "dynamic" }
"#,
        );
        assert_eq!(
            sends(&Dialogue::new(&s).on_input(b"ECHOTHISRabcECHOTHIS")),
            vec![b"[abc]".to_vec()]
        );
        assert_eq!(
            sends(&Dialogue::new(&s).on_input(b"nothing")),
            vec![b"[]".to_vec()]
        );
        assert_eq!(
            sends(&Dialogue::new(&s).on_input(b"ECHOTHISPH4142ECHOTHIS")),
            vec![b"[AB]".to_vec()]
        );
        assert_eq!(
            sends(&Dialogue::new(&s).on_input(b"nothing")),
            vec![b"[AB]".to_vec()]
        );
    }

    #[test]
    fn merge_copies_and_leaves_base_alone() {
        let base: ScriptedRaw = toml::from_str("banner = \"B\"\nloop = 3").unwrap();
        let child: ScriptedRaw = toml::from_str("loop = 5").unwrap();
        let m = child.merged_over(&base);
        assert_eq!(m.reads, Some(5));
        assert_eq!(m.banner, Some(BytesSpec::Text("B".into())));
        assert_eq!(base.reads, Some(3));
    }
}
