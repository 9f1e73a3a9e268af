//! Configuration: raw (serde reads the TOML), then validated (pure, collects every error with
//! its file position), then built (reads files, compiles regexes, makes TLS configs).
//!
//! `honeyport check` runs the first two steps; `honeyport run` runs all three before it binds
//! anything. Every field's doc comment here is its user documentation (see README.md).

pub mod ports;
pub mod units;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use honeyport_event::Transport;
use ipnet::IpNet;
use serde::Deserialize;

use crate::persona::{Persona, PersonaRaw};
use crate::tls;
use ports::PortsRaw;
use units::NumOrStr;

/// Most sockets one listener may open: every port, on two addresses, over TCP and UDP.
pub const MAX_SOCKETS: usize = 4 * 65536;

/// The built-in configuration `honeyport run` uses when no `-c FILE` is given: loopback only,
/// unprivileged ports, one persona of each flavour.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole config file as serde reads it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRaw {
    /// Name of this sensor, written on every event. Default: the host name.
    pub sensor: Option<String>,
    /// Resource limits for every session (see [`LimitsRaw`]).
    #[serde(default)]
    pub limits: LimitsRaw,
    /// Where events go (see [`StorageRaw`]).
    #[serde(default)]
    pub storage: StorageRaw,
    /// Real downloads of what the shell is asked to fetch (see [`crate::fetch`]). Off by default.
    #[serde(default)]
    pub downloads: crate::fetch::DownloadsRaw,
    /// Session classification (see [`crate::classify`]).
    #[serde(default)]
    pub classify: ClassifyRaw,
    /// Named personas (and templates: a persona can `inherit` another). Read separately, one
    /// persona at a time, so that a mistake in one is reported with its position and does not
    /// hide mistakes elsewhere.
    #[serde(default, skip_deserializing)]
    pub personas: BTreeMap<String, PersonaRaw>,
    /// The sockets to open and which persona serves each.
    #[serde(default)]
    pub listeners: Vec<ListenerRaw>,
    /// Forward the store of record to NATS JetStream (see [`crate::fleet::forward`]). Off
    /// when absent.
    pub forward: Option<crate::fleet::forward::ForwardRaw>,
}

/// `[limits]`: every read from a peer has a byte cap and a deadline; every resource a bound.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRaw {
    /// Most sessions (TCP connections plus UDP flows) open at once. Default 10000. Capped at
    /// start to what the open-files limit allows.
    pub max_connections: Option<u64>,
    /// Most sessions open at once from one source IP. Default 64.
    pub max_per_source: Option<u64>,
    /// End a session when the peer sends nothing for this long. Default "60s".
    pub idle_timeout: Option<NumOrStr>,
    /// End a session after this long whatever happens. Default "10m".
    pub max_session: Option<NumOrStr>,
    /// End a session once the peer has sent this many bytes. Default "1MiB".
    pub max_bytes_in: Option<NumOrStr>,
    /// Largest single read (and so the largest line or datagram handled at once). Default "64KiB".
    pub max_read: Option<NumOrStr>,
    /// On shutdown, how long open sessions may go on before they are ended. Default "5s".
    pub shutdown_grace: Option<NumOrStr>,
    /// UDP replies each source IP may receive per second (token bucket). Default 5.
    pub udp_replies_per_second: Option<f64>,
    /// Burst size of that bucket. Default 10.
    pub udp_reply_burst: Option<u32>,
    /// Allow a UDP reply larger than the datagram that triggered it (amplification). Default false:
    /// replies are cut to the triggering datagram's size and the cut is recorded.
    pub udp_allow_amplification: Option<bool>,
}

/// `[storage]`: the embedded SQLite store is always on; a JSON-lines file is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageRaw {
    /// JSON-lines file for events, relative to the data dir (or absolute). Default: none.
    pub jsonl: Option<String>,
    /// Rotate the JSON-lines file when it grows past this. Default "100MiB".
    pub jsonl_max_size: Option<NumOrStr>,
    /// Rotated JSON-lines files to keep (`events.jsonl.1` ... `.N`). Default 5.
    pub jsonl_keep: Option<u32>,
    /// Most events written in one transaction. The writer takes whatever is queued, up to
    /// this, so batches grow by themselves under load. Default 2048.
    pub batch: Option<usize>,
    /// Events buffered between sessions and the writer. When it is more than half full the
    /// sensor stops accepting until it drains; nothing is dropped. Default 65536.
    pub queue: Option<usize>,
    /// SQLite `synchronous`: "full" (every batch fsynced; default) or "normal".
    pub synchronous: Option<String>,
}

/// `[classify]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRaw {
    /// Classify every session from its first bytes (`session.classified`, the summary row's
    /// protocol). Default true; off only to measure what it costs.
    pub sessions: Option<bool>,
    /// Record every TCP session's SYN fingerprint (`tcp.syn`: TTL, window, options, p0f-like
    /// signature, Mirai marker; the summary row's `syn`), from Linux's saved SYN. Default
    /// true; where the kernel does not keep SYNs, sessions simply have no `tcp.syn`.
    pub syn: Option<bool>,
    /// Tag sessions and name clients (`rule.match` tags, `client.name`; see
    /// [`crate::classify::tagger`]). Default true.
    pub tags: Option<bool>,
    /// Extra exploit rules (a TOML file in the format of the built-in `data/rules.toml`),
    /// used in addition to the built-in ones. Default: none.
    pub rules: Option<String>,
    /// Extra known clients (a TOML file in the format of the built-in `data/clients.toml`),
    /// tried before the built-in ones. Default: none.
    pub clients: Option<String>,
    /// Logins (failed or not, any session, any port) from one source within
    /// `brute_force_window` that make it a brute-forcer (tag `brute_force`). Default 10.
    pub brute_force_attempts: Option<u64>,
    /// The sliding window for `brute_force_attempts`. Default "1h".
    pub brute_force_window: Option<NumOrStr>,
}

/// One `[[listeners]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerRaw {
    /// Name written on events. Default: `persona/transport/ports`.
    pub name: Option<String>,
    /// Ports: `26`, `"25,26,587,8000-8010"`, or an array of those. `0` means any free port.
    pub ports: PortsRaw,
    /// `"tcp"` (default), `"udp"`, or `["tcp", "udp"]`.
    pub transport: Option<TransportsRaw>,
    /// Addresses to bind. Default `["0.0.0.0", "::"]` (every IPv4 and IPv6 address).
    pub bind: Option<Vec<String>>,
    /// Name of the persona (in `[personas]`) that serves these ports.
    pub persona: String,
    /// Only these sources (CIDRs or addresses) get an answer; others are recorded and closed.
    pub allow: Option<Vec<String>>,
    /// Wrap TCP sessions in TLS. On a multi-protocol port (`personas`), only the clients that
    /// open with a TLS ClientHello get it; what they send inside picks the persona.
    pub tls: Option<TlsRaw>,
    /// Persona fields to override for this listener only. The persona is copied, never changed.
    #[serde(rename = "override")]
    pub overrides: Option<toml::Table>,
    /// More personas this port serves (a multi-protocol port): each connection gets the one
    /// that speaks what the client speaks first (an SSH version line -> the ssh persona, IAC ->
    /// telnet, an HTTP request -> http, SMTP commands -> smtp...); a client that says nothing
    /// within `dispatch_wait` gets `persona`, the default (or, with `adaptive`, its turn).
    pub personas: Option<Vec<String>>,
    /// How long a multi-protocol port waits for the client to speak first. Default "1s".
    pub dispatch_wait: Option<NumOrStr>,
    /// A source that left silently after one persona's greeting gets the next persona (in the
    /// order `persona`, then `personas`) on its next connection to this listener; one that
    /// answered keeps its persona. Default false.
    pub adaptive: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TransportsRaw {
    One(String),
    Many(Vec<String>),
}

/// `tls = { cert = "...", key = "..." }` or `tls = { self_signed = true }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRaw {
    /// PEM certificate chain file (relative to the config file).
    pub cert: Option<String>,
    /// PEM private key file.
    pub key: Option<String>,
    /// Generate a self-signed certificate at start instead.
    pub self_signed: Option<bool>,
    /// Subject names for the self-signed certificate. Default `["localhost"]`.
    pub names: Option<Vec<String>>,
}

/// One problem found in the config, with where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// Dotted path of the offending value, e.g. `personas.exim.rules[2].regex`.
    pub path: String,
    /// 1-based line and column in the file, when known.
    pub pos: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) if self.path.is_empty() => write!(f, "{l}:{c}: {}", self.message),
            Some((l, c)) => write!(f, "{l}:{c}: {}: {}", self.path, self.message),
            None if self.path.is_empty() => write!(f, "{}", self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found, for one file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub source_name: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{} in config",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "{}:{e}", self.source_name)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors during validation; knows the source text to turn paths into positions.
pub struct Problems<'a> {
    doc: Option<toml_edit::Document<&'a str>>,
    src: &'a str,
    pub errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Problems {
            doc: toml_edit::Document::parse(src).ok(),
            src,
            errors: Vec::new(),
        }
    }

    /// Records a problem at `path` (dotted, with `[i]` for array items).
    pub fn at(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.locate(path);
        self.errors.push(ConfigError {
            path: path.to_string(),
            pos,
            message: message.into(),
        });
    }

    fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut best = None;
        for seg in split_path(path) {
            let next = match seg {
                Seg::Key(k) => item.get(k),
                Seg::Index(i) => item.get(i),
            };
            match next {
                Some(n) => {
                    item = n;
                    if let Some(span) = n.span() {
                        best = Some(span.start);
                    }
                }
                None => break,
            }
        }
        best.map(|off| line_col(self.src, off))
    }
}

enum Seg<'p> {
    Key(&'p str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..offset.min(src.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// `[limits]` after validation.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub idle_timeout: Duration,
    pub max_session: Duration,
    pub max_bytes_in: u64,
    pub max_read: usize,
    pub shutdown_grace: Duration,
    pub udp_replies_per_second: f64,
    pub udp_reply_burst: u32,
    pub udp_allow_amplification: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_per_source: 64,
            idle_timeout: Duration::from_secs(60),
            max_session: Duration::from_secs(600),
            max_bytes_in: 1 << 20,
            max_read: 64 << 10,
            shutdown_grace: Duration::from_secs(5),
            udp_replies_per_second: 5.0,
            udp_reply_burst: 10,
            udp_allow_amplification: false,
        }
    }
}

/// `[storage]` after validation.
#[derive(Clone, Debug)]
pub struct Storage {
    pub jsonl: Option<PathBuf>,
    pub jsonl_max_size: u64,
    pub jsonl_keep: u32,
    pub batch: usize,
    pub queue: usize,
    pub synchronous_full: bool,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            jsonl: None,
            jsonl_max_size: 100 << 20,
            jsonl_keep: 5,
            batch: 2048,
            queue: 65_536,
            synchronous_full: true,
        }
    }
}

/// How a multi-protocol listener picks a persona per connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dispatch {
    pub wait: Duration,
    pub adaptive: bool,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch {
            wait: Duration::from_secs(1),
            adaptive: false,
        }
    }
}

/// One listener, built: everything a socket needs to serve sessions.
pub struct ListenerSpec {
    pub name: String,
    pub persona_name: String,
    pub persona: Persona,
    /// A multi-protocol port's other personas, in order.
    pub alternatives: Vec<(String, Persona)>,
    pub dispatch: Dispatch,
    pub allow: Option<Vec<IpNet>>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Every (transport, address) this listener binds.
    pub binds: Vec<(Transport, SocketAddr)>,
}

/// The validated, built configuration.
pub struct Config {
    pub sensor: String,
    pub limits: Limits,
    pub storage: Storage,
    /// `Some` when `[downloads] enabled = true`.
    pub downloads: Option<crate::fetch::Downloads>,
    /// Classify every session (`[classify] sessions`).
    pub classify_sessions: bool,
    /// Record each TCP session's SYN fingerprint (`[classify] syn`).
    pub classify_syn: bool,
    /// The tagger (`[classify] tags`, `rules`, `clients`, `brute_force_*`); `None` when off.
    pub tagger: Option<crate::classify::tagger::TaggerSpec>,
    pub listeners: Vec<ListenerSpec>,
    /// `[forward]`: the forwarder to NATS, started beside the pipeline.
    pub forward: Option<crate::fleet::forward::ForwardConfig>,
}

/// A config that passed validation; `build` does the I/O.
pub struct Validated {
    raw: ConfigRaw,
    base_dir: PathBuf,
    limits: Limits,
    storage: Storage,
    downloads: Option<crate::fetch::Downloads>,
    tagger: Option<crate::classify::tagger::TaggerSpec>,
    listeners: Vec<ListenerPlan>,
    forward: Option<crate::fleet::forward::ForwardConfig>,
}

struct ListenerPlan {
    name: String,
    persona_name: String,
    /// The persona chain resolved and merged, with this listener's overrides on top.
    persona: PersonaRaw,
    /// A multi-protocol port's other personas (name, resolved persona).
    alternatives: Vec<(String, PersonaRaw)>,
    dispatch: Dispatch,
    allow: Option<Vec<IpNet>>,
    tls: Option<TlsRaw>,
    binds: Vec<(Transport, SocketAddr)>,
}

/// Reads and validates a config file. Relative paths in it are resolved against its directory.
pub fn load(path: &Path) -> Result<Validated, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source_name: name.clone(),
        errors: vec![ConfigError {
            path: String::new(),
            pos: None,
            message: format!("cannot read: {e}"),
        }],
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    validate_str(&src, &name, &dir)
}

/// Parses and validates config text. Pure apart from checking that referenced files are
/// readable.
pub fn validate_str(
    src: &str,
    source_name: &str,
    base_dir: &Path,
) -> Result<Validated, ConfigErrors> {
    let mut doc = match toml::de::DeTable::parse(src) {
        Ok(d) => d,
        Err(e) => {
            return Err(ConfigErrors {
                source_name: source_name.to_string(),
                errors: vec![serde_error(src, "", &e)],
            });
        }
    };
    let personas_doc = doc.get_mut().remove("personas");
    let mut errors = Vec::new();
    let personas = read_personas(personas_doc, src, &mut errors);
    let mut raw = match ConfigRaw::deserialize(toml::de::Deserializer::from(doc)) {
        Ok(r) => r,
        Err(e) => {
            errors.insert(0, serde_error(src, "", &e));
            ConfigRaw::default()
        }
    };
    if !errors.is_empty() {
        return Err(ConfigErrors {
            source_name: source_name.to_string(),
            errors,
        });
    }
    raw.personas = personas;
    let mut p = Problems::new(src);
    let v = validate(raw, base_dir, &mut p);
    if p.errors.is_empty() {
        Ok(v)
    } else {
        Err(ConfigErrors {
            source_name: source_name.to_string(),
            errors: p.errors,
        })
    }
}

type Spanned<T> = toml::Spanned<T>;

/// Reads `[personas]` one persona at a time: `type` picks the kind, the rest of the table is
/// that kind's raw config. Errors keep their position in the file.
fn read_personas(
    doc: Option<Spanned<toml::de::DeValue<'_>>>,
    src: &str,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, PersonaRaw> {
    use toml::de::DeValue;
    let mut other_err = |path: &str, offset: usize, message: String| {
        errors.push(ConfigError {
            path: path.to_string(),
            pos: Some(line_col(src, offset)),
            message,
        })
    };
    let mut out = BTreeMap::new();
    let mut errs_serde = Vec::new();
    let Some(doc) = doc else { return out };
    let span = doc.span();
    let DeValue::Table(table) = doc.into_inner() else {
        other_err(
            "personas",
            span.start,
            "personas must be a table of named personas".into(),
        );
        return out;
    };
    for (name, value) in table {
        let name = name.into_inner().to_string();
        let at = format!("personas.{name}");
        let vspan = value.span();
        let DeValue::Table(mut t) = value.into_inner() else {
            other_err(&at, vspan.start, "a persona must be a table".into());
            continue;
        };
        let kind = match t.remove("type").map(|v| (v.span(), v.into_inner())) {
            Some((_, DeValue::String(k))) => k.to_string(),
            Some((s, _)) => {
                other_err(
                    &format!("{at}.type"),
                    s.start,
                    "type must be a string".into(),
                );
                continue;
            }
            None => {
                other_err(
                    &at,
                    vspan.start,
                    format!(
                        "persona {name:?} has no type (known: {})",
                        PersonaRaw::KINDS.join(", ")
                    ),
                );
                continue;
            }
        };
        let de = toml::de::ValueDeserializer::from(Spanned::new(vspan.clone(), DeValue::Table(t)));
        match PersonaRaw::from_kind(&kind, de) {
            Some(Ok(p)) => {
                out.insert(name, p);
            }
            Some(Err(e)) => errs_serde.push(serde_error(src, &at, &e)),
            None => other_err(
                &format!("{at}.type"),
                vspan.start,
                format!(
                    "unknown persona type {kind:?} (known: {})",
                    PersonaRaw::KINDS.join(", ")
                ),
            ),
        }
    }
    errors.extend(errs_serde);
    out
}

pub(crate) fn serde_error(src: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        path: path.to_string(),
        pos: e.span().map(|s| line_col(src, s.start)),
        message: e.message().trim().to_string(),
    }
}

fn validate(raw: ConfigRaw, base_dir: &Path, p: &mut Problems<'_>) -> Validated {
    let limits = validate_limits(&raw.limits, p);
    let storage = validate_storage(&raw.storage, p);
    let downloads = raw.downloads.validate(p);
    let tagger = crate::classify::tagger::validate_config(&raw.classify, base_dir, p);
    let forward = raw
        .forward
        .as_ref()
        .and_then(|f| f.validate("forward", raw.sensor.as_deref(), base_dir, p));
    if let Some(s) = &raw.sensor {
        if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_control()) {
            p.at("sensor", "sensor name must be 1-128 printable characters");
        }
    }

    // Each persona on its own (its own fields, at its own position).
    for (name, persona) in &raw.personas {
        persona.validate(&format!("personas.{name}"), base_dir, p);
    }
    // Inheritance chains: unknown parents and cycles.
    let mut resolved: BTreeMap<String, PersonaRaw> = BTreeMap::new();
    for name in raw.personas.keys() {
        match resolve_persona(name, &raw.personas) {
            Ok(r) => {
                resolved.insert(name.clone(), r);
            }
            Err(msg) => p.at(&format!("personas.{name}.inherit"), msg),
        }
    }

    let mut plans = Vec::new();
    // Binds of the listeners so far, by (transport, port), in order, with their owner; and
    // the owners that have binds. Indexed so that full port ranges stay linear, not quadratic.
    let mut taken: HashMap<(Transport, u16), Vec<(SocketAddr, String)>> = HashMap::new();
    let mut owners: HashSet<String> = HashSet::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        let ports = match ports::expand(&l.ports) {
            Ok(ps) => ps,
            Err(e) => {
                p.at(&format!("{at}.ports"), e);
                Vec::new()
            }
        };
        let transports = match parse_transports(l.transport.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                p.at(&format!("{at}.transport"), e);
                vec![Transport::Tcp]
            }
        };
        let addrs: Vec<IpAddr> = match &l.bind {
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            Some(list) => {
                if list.is_empty() {
                    p.at(&format!("{at}.bind"), "bind list is empty");
                }
                let mut v = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    match a
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                    {
                        Ok(ip) => v.push(ip),
                        Err(_) => p.at(
                            &format!("{at}.bind[{j}]"),
                            format!("{a:?} is not an IP address"),
                        ),
                    }
                }
                v
            }
        };
        let allow = l.allow.as_ref().map(|list| {
            let mut nets = Vec::new();
            for (j, s) in list.iter().enumerate() {
                match parse_net(s) {
                    Ok(n) => nets.push(n),
                    Err(e) => p.at(&format!("{at}.allow[{j}]"), e),
                }
            }
            nets
        });
        if let Some(t) = &l.tls {
            if transports.contains(&Transport::Udp) {
                p.at(
                    &format!("{at}.tls"),
                    "TLS is for TCP listeners (DTLS is not supported)",
                );
            }
            tls::validate(t, &format!("{at}.tls"), base_dir, p);
        }
        // The persona, with this listener's overrides copied on top.
        let persona = match resolved.get(&l.persona) {
            None => {
                let known: Vec<&str> = raw.personas.keys().map(String::as_str).collect();
                p.at(
                    &format!("{at}.persona"),
                    format!(
                        "unknown persona {:?} (defined: {})",
                        l.persona,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
            Some(base) => match &l.overrides {
                None => Some(base.clone()),
                // The overlay is checked on its own (errors point into the listener), then
                // copied on top of a copy of the persona.
                Some(table) => match base.overlay(table).and_then(|o| {
                    o.validate(&format!("{at}.override"), base_dir, p);
                    o.merged_over(base)
                }) {
                    Ok(merged) => Some(merged),
                    Err(e) => {
                        p.at(&format!("{at}.override"), e);
                        None
                    }
                },
            },
        };
        if let Some(persona) = &persona {
            persona.validate_for_transports(&at, &transports, p);
        }
        // A multi-protocol port: the other personas, and how one is picked.
        let mut alternatives = Vec::new();
        let mut dispatch = Dispatch::default();
        if let Some(list) = &l.personas {
            if transports.contains(&Transport::Udp) {
                p.at(
                    &format!("{at}.personas"),
                    "a multi-protocol port is TCP only",
                );
            }
            for (j, n) in list.iter().enumerate() {
                if n == &l.persona || list[..j].contains(n) {
                    p.at(
                        &format!("{at}.personas[{j}]"),
                        format!("{n:?} is listed twice"),
                    );
                    continue;
                }
                match resolved.get(n) {
                    Some(alt) => {
                        alt.validate_for_transports(&format!("{at}.personas[{j}]"), &transports, p);
                        alternatives.push((n.clone(), alt.clone()));
                    }
                    None => p.at(
                        &format!("{at}.personas[{j}]"),
                        format!("unknown persona {n:?}"),
                    ),
                }
            }
        }
        if let Some(w) = &l.dispatch_wait {
            match w.duration() {
                Ok(d) if d <= Duration::from_secs(30) => dispatch.wait = d,
                Ok(_) => p.at(&format!("{at}.dispatch_wait"), "must be at most 30s"),
                Err(e) => p.at(&format!("{at}.dispatch_wait"), e),
            }
        }
        if let Some(a) = l.adaptive {
            if a && l.personas.as_ref().is_none_or(|v| v.is_empty()) {
                p.at(
                    &format!("{at}.adaptive"),
                    "adaptive needs other `personas` to rotate",
                );
            }
            dispatch.adaptive = a;
        }
        let count = transports.len() * addrs.len() * ports.len();
        if count > MAX_SOCKETS {
            p.at(
                &format!("{at}.ports"),
                format!("{count} sockets (ports x addresses x transports) is over the {MAX_SOCKETS} a sensor opens"),
            );
            continue;
        }
        let mut binds = Vec::new();
        for &t in &transports {
            for &ip in &addrs {
                for &port in &ports {
                    binds.push((t, SocketAddr::new(ip, port)));
                }
            }
        }
        // Overlapping binds: the same port and transport where one address covers the other.
        for &(t, a) in &binds {
            if a.port() == 0 {
                continue;
            }
            if let Some((b, owner)) = taken
                .get(&(t, a.port()))
                .and_then(|v| v.iter().find(|(b, _)| overlaps(a.ip(), b.ip())))
            {
                p.at(
                    &format!("{at}.ports"),
                    format!("{t} {a} overlaps {b} of {owner}"),
                );
            }
        }
        let name = match &l.name {
            Some(n) => n.clone(),
            None => {
                // Generated names must not collide: add the listener's index when they would.
                let n = default_listener_name(l, &transports);
                if owners.contains(&format!("listener {n:?}")) {
                    format!("{n}#{i}")
                } else {
                    n
                }
            }
        };
        let owner = format!("listener {name:?}");
        for &(t, a) in &binds {
            taken
                .entry((t, a.port()))
                .or_default()
                .push((a, owner.clone()));
        }
        if !binds.is_empty() {
            owners.insert(owner);
        }
        if let Some(persona) = persona {
            plans.push(ListenerPlan {
                name,
                persona_name: l.persona.clone(),
                persona,
                alternatives,
                dispatch,
                allow,
                tls: l.tls.clone(),
                binds,
            });
        }
    }
    let mut names = HashSet::new();
    for (i, pl) in plans.iter().enumerate() {
        if !names.insert(pl.name.clone()) {
            p.at(
                &format!("listeners[{i}].name"),
                format!("listener name {:?} is used twice", pl.name),
            );
        }
    }
    Validated {
        raw,
        base_dir: base_dir.to_path_buf(),
        limits,
        storage,
        downloads,
        tagger,
        listeners: plans,
        forward,
    }
}

fn default_listener_name(l: &ListenerRaw, transports: &[Transport]) -> String {
    let ports = match &l.ports {
        PortsRaw::One(n) => n.to_string(),
        PortsRaw::Spec(s) => s.replace(' ', ""),
        PortsRaw::List(_) => "list".into(),
    };
    let t: Vec<&str> = transports.iter().map(|t| t.as_str()).collect();
    format!("{}/{}/{}", l.persona, t.join("+"), ports)
}

fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            a == b || a.is_unspecified() || b.is_unspecified()
        }
        // IPv6 sockets are bound v6-only, so the families never overlap.
        _ => false,
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
}

fn parse_transports(t: Option<&TransportsRaw>) -> Result<Vec<Transport>, String> {
    let names: Vec<&str> = match t {
        None => vec!["tcp"],
        Some(TransportsRaw::One(s)) => vec![s.as_str()],
        Some(TransportsRaw::Many(v)) => v.iter().map(String::as_str).collect(),
    };
    let mut out = Vec::new();
    for n in names {
        let t = match n {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            other => return Err(format!("unknown transport {other:?} (tcp or udp)")),
        };
        if out.contains(&t) {
            return Err(format!("transport {n:?} is listed twice"));
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err("no transport given".into());
    }
    Ok(out)
}

/// Follows `inherit` links from `name` and merges the chain (child fields win).
fn resolve_persona(name: &str, all: &BTreeMap<String, PersonaRaw>) -> Result<PersonaRaw, String> {
    let mut chain = vec![name.to_string()];
    let mut cur = all
        .get(name)
        .ok_or_else(|| format!("unknown persona {name:?}"))?
        .clone();
    while let Some(parent) = cur.inherit().map(str::to_string) {
        if chain.contains(&parent) {
            chain.push(parent);
            return Err(format!("inheritance cycle: {}", chain.join(" -> ")));
        }
        let base = all
            .get(&parent)
            .ok_or_else(|| format!("inherits unknown persona {parent:?}"))?;
        chain.push(parent);
        cur = cur.merged_over(base)?;
    }
    Ok(cur)
}

fn validate_limits(l: &LimitsRaw, p: &mut Problems<'_>) -> Limits {
    let mut out = Limits::default();
    let dur = |v: &Option<NumOrStr>, key: &str, p: &mut Problems<'_>, slot: &mut Duration| {
        if let Some(v) = v {
            match v.duration() {
                Ok(d) if d.is_zero() => p.at(&format!("limits.{key}"), "must be more than zero"),
                Ok(d) => *slot = d,
                Err(e) => p.at(&format!("limits.{key}"), e),
            }
        }
    };
    dur(&l.idle_timeout, "idle_timeout", p, &mut out.idle_timeout);
    dur(&l.max_session, "max_session", p, &mut out.max_session);
    if let Some(v) = &l.shutdown_grace {
        match v.duration() {
            Ok(d) => out.shutdown_grace = d,
            Err(e) => p.at("limits.shutdown_grace", e),
        }
    }
    if let Some(n) = l.max_connections {
        if n == 0 || n > 1_000_000 {
            p.at("limits.max_connections", "must be between 1 and 1000000");
        } else {
            out.max_connections = n as usize;
        }
    }
    if let Some(n) = l.max_per_source {
        if n == 0 {
            p.at("limits.max_per_source", "must be at least 1");
        } else {
            out.max_per_source = n as usize;
        }
    }
    if let Some(v) = &l.max_bytes_in {
        match v.size() {
            Ok(0) => p.at("limits.max_bytes_in", "must be more than zero"),
            Ok(n) => out.max_bytes_in = n,
            Err(e) => p.at("limits.max_bytes_in", e),
        }
    }
    if let Some(v) = &l.max_read {
        match v.size() {
            Ok(n) if (16..=16 << 20).contains(&n) => out.max_read = n as usize,
            Ok(_) => p.at("limits.max_read", "must be between 16 bytes and 16MiB"),
            Err(e) => p.at("limits.max_read", e),
        }
    }
    if let Some(r) = l.udp_replies_per_second {
        if !(r.is_finite() && r >= 0.0) {
            p.at("limits.udp_replies_per_second", "must be zero or more");
        } else {
            out.udp_replies_per_second = r;
        }
    }
    if let Some(b) = l.udp_reply_burst {
        out.udp_reply_burst = b;
    }
    if let Some(a) = l.udp_allow_amplification {
        out.udp_allow_amplification = a;
    }
    out
}

fn validate_storage(s: &StorageRaw, p: &mut Problems<'_>) -> Storage {
    let mut out = Storage::default();
    if let Some(j) = &s.jsonl {
        if j.is_empty() {
            p.at("storage.jsonl", "path is empty");
        }
        out.jsonl = Some(PathBuf::from(j));
    }
    if let Some(v) = &s.jsonl_max_size {
        match v.size() {
            Ok(n) if n >= 4096 => out.jsonl_max_size = n,
            Ok(_) => p.at("storage.jsonl_max_size", "must be at least 4096 bytes"),
            Err(e) => p.at("storage.jsonl_max_size", e),
        }
    }
    if let Some(k) = s.jsonl_keep {
        out.jsonl_keep = k;
    }
    if let Some(b) = s.batch {
        if b == 0 || b > 1_000_000 {
            p.at("storage.batch", "must be between 1 and 1000000");
        } else {
            out.batch = b;
        }
    }
    if let Some(q) = s.queue {
        if q < 16 {
            p.at("storage.queue", "must be at least 16");
        } else {
            out.queue = q;
        }
    }
    match s.synchronous.as_deref() {
        None | Some("full") => {}
        Some("normal") => out.synchronous_full = false,
        Some(other) => p.at(
            "storage.synchronous",
            format!("{other:?} is not \"full\" or \"normal\""),
        ),
    }
    out
}

impl Validated {
    /// Number of sockets `build` will bind.
    pub fn socket_count(&self) -> usize {
        self.listeners.iter().map(|l| l.binds.len()).sum()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Does the I/O: reads reply/banner files, compiles regexes, loads or makes certificates.
    pub fn build(self) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let mut listeners = Vec::new();
        for (i, plan) in self.listeners.into_iter().enumerate() {
            let at = format!("listeners[{i}]");
            let persona = match plan.persona.build(&self.base_dir) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(ConfigError {
                        path: at.clone(),
                        pos: None,
                        message: e,
                    });
                    continue;
                }
            };
            let mut alternatives = Vec::new();
            for (name, raw) in &plan.alternatives {
                match raw.build(&self.base_dir) {
                    Ok(p) => alternatives.push((name.clone(), p)),
                    Err(e) => errors.push(ConfigError {
                        path: format!("{at}.personas"),
                        pos: None,
                        message: e,
                    }),
                }
            }
            let tls = match &plan.tls {
                None => None,
                Some(t) => match tls::build(t, &self.base_dir) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.push(ConfigError {
                            path: format!("{at}.tls"),
                            pos: None,
                            message: e,
                        });
                        continue;
                    }
                },
            };
            listeners.push(ListenerSpec {
                name: plan.name,
                persona_name: plan.persona_name,
                persona,
                alternatives,
                dispatch: plan.dispatch,
                allow: plan.allow,
                tls,
                binds: plan.binds,
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors {
                source_name: "config".into(),
                errors,
            });
        }
        Ok(Config {
            sensor: self.raw.sensor.clone().unwrap_or_else(hostname),
            limits: self.limits,
            storage: self.storage,
            downloads: self.downloads,
            classify_sessions: self.raw.classify.sessions.unwrap_or(true),
            classify_syn: self.raw.classify.syn.unwrap_or(true),
            tagger: self.tagger,
            listeners,
            forward: self.forward,
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "honeyport".to_string())
}

/// Resolves a path from the config against the config file's directory.
pub fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let pb = PathBuf::from(p);
    if pb.is_absolute() {
        pb
    } else {
        base.join(pb)
    }
}

/// Checks that a file named in the config can be read; records a problem if not.
pub fn check_readable(base: &Path, file: &str, at: &str, p: &mut Problems<'_>) {
    let path = resolve_path(base, file);
    if let Err(e) = read_file_capped(&path, MAX_CONFIG_FILE) {
        p.at(at, e);
    }
}

/// Largest file the config may name (banners, replies, certificates, keys).
pub const MAX_CONFIG_FILE: u64 = 16 << 20;

/// Reads a file named in the config: only a regular file (not a device, pipe or directory,
/// which could block or never end) of at most `max` bytes.
pub fn read_file_capped(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let md = f
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !md.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    if md.len() > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    let mut data = Vec::with_capacity(md.len() as usize);
    f.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if data.len() as u64 > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(src: &str) -> Vec<ConfigError> {
        match validate_str(src, "t.toml", Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn default_config_is_valid() {
        let v = validate_str(DEFAULT_CONFIG, "default", Path::new(".")).unwrap();
        assert!(v.socket_count() >= 3);
        for l in &v.listeners {
            for (_, a) in &l.binds {
                assert!(
                    a.ip().is_loopback(),
                    "default config must stay on loopback: {a}"
                );
                assert!(a.port() >= 1024);
            }
        }
    }

    #[test]
    fn every_error_is_reported_with_a_position() {
        let src = r#"
[personas.a]
type = "scripted"
loop = 3

[[personas.a.rules]]
regex = "(unclosed"
reply = "x"

[[listeners]]
ports = "26,9-1"
persona = "a"

[[listeners]]
ports = 27
persona = "nope"
"#;
        let e = errs(src);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"personas.a.rules[0].regex"), "{e:?}");
        assert!(paths.contains(&"listeners[0].ports"), "{e:?}");
        assert!(paths.contains(&"listeners[1].persona"), "{e:?}");
        let regex_err = e
            .iter()
            .find(|e| e.path == "personas.a.rules[0].regex")
            .unwrap();
        assert_eq!(regex_err.pos.map(|p| p.0), Some(7));
        let persona_err = e.iter().find(|e| e.path == "listeners[1].persona").unwrap();
        assert_eq!(persona_err.pos.map(|p| p.0), Some(16));
    }

    #[test]
    fn overlapping_binds_are_refused() {
        let src = r#"
[personas.a]
type = "scripted"
[[listeners]]
ports = "25-27"
bind = ["0.0.0.0"]
persona = "a"
[[listeners]]
ports = 26
bind = ["127.0.0.1"]
persona = "a"
[[listeners]]
ports = 26
bind = ["::1"]
persona = "a"
"#;
        let e = errs(src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.contains("overlaps"), "{e:?}");
        assert_eq!(e[0].path, "listeners[1].ports");
    }

    /// Found while writing the `config` fuzz target: two listeners on every port (tcp and
    /// udp, both families) took minutes to validate, as every bind was compared with every
    /// earlier one.
    #[test]
    fn full_port_ranges_validate_in_linear_time() {
        let src = r#"
[personas.a]
type = "scripted"
[[listeners]]
ports = "1-65535"
persona = "a"
[[listeners]]
ports = "1-65535"
transport = "udp"
persona = "a"
[[listeners]]
ports = "1-3"
bind = ["127.0.0.1"]
persona = "a"
"#;
        let e = errs(src);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().all(|e| e.path == "listeners[2].ports"), "{e:?}");
        assert!(
            e[0].message
                .contains("127.0.0.1:1 overlaps 0.0.0.0:1 of listener \"a/tcp/1-65535\""),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let e = errs("[limits]\nidle_timeout = \n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].pos.map(|p| p.0), Some(2), "{e:?}");
    }

    #[test]
    fn inheritance_cycle_and_unknown_parent() {
        let src = r#"
[personas.a]
type = "scripted"
inherit = "b"
[personas.b]
type = "scripted"
inherit = "a"
[personas.c]
type = "scripted"
inherit = "zzz"
"#;
        let e = errs(src);
        assert!(e.iter().any(|e| e.message.contains("cycle")), "{e:?}");
        assert!(e.iter().any(|e| e.message.contains("zzz")), "{e:?}");
    }

    #[test]
    fn devices_and_pipes_are_refused_not_read() {
        let src = r#"
[personas.a]
type = "scripted"
banner = { file = "/dev/zero" }
[[listeners]]
ports = 2
persona = "a"
tls = { cert = "/dev/zero", key = "/dev/urandom" }
"#;
        let e = errs(src);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "personas.a.banner",
            "listeners[0].tls.cert",
            "listeners[0].tls.key",
        ] {
            assert!(paths.contains(&want), "missing {want}: {e:?}");
        }
        assert!(
            e.iter().all(|e| e.message.contains("not a regular file")),
            "{e:?}"
        );
    }

    #[test]
    fn too_many_sockets_is_refused_before_expanding() {
        let addrs: Vec<String> = (1..=8).map(|i| format!("\"127.0.0.{i}\"")).collect();
        let src = format!(
            "[personas.a]\ntype = \"scripted\"\n[[listeners]]\nports = \"1-65535\"\ntransport = [\"tcp\", \"udp\"]\nbind = [{}]\npersona = \"a\"\n",
            addrs.join(", ")
        );
        let e = errs(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.contains("sockets"), "{e:?}");
    }

    #[test]
    fn bad_limits_and_files() {
        let src = r#"
[limits]
idle_timeout = "soon"
max_read = "1GiB"
[personas.a]
type = "scripted"
banner = { file = "/nonexistent/banner.txt" }
[[listeners]]
ports = 2
persona = "a"
tls = { cert = "/nonexistent/c.pem", key = "/nonexistent/k.pem" }
allow = ["10.0.0.0/33"]
"#;
        let e = errs(src);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "limits.idle_timeout",
            "limits.max_read",
            "personas.a.banner",
            "listeners[0].tls.cert",
            "listeners[0].tls.key",
            "listeners[0].allow[0]",
        ] {
            assert!(paths.contains(&want), "missing {want}: {e:?}");
        }
    }
}
