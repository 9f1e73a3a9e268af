//! `honeyport explain N`: what is going on on port N, from the rollups, as a researcher would
//! write it up: who comes, what they speak, which software, what they try, and how they
//! answered each persona.

use std::collections::HashMap;

use serde::Serialize;

use super::format::thousands;
use super::{date_of, Window};
use crate::store::{kind, EventFilter, Reader, Result, Scope, SessionFilter};

/// How many entries each top list keeps.
pub const TOP: usize = 10;

/// One entry of a top list: an item, how often, and its share of the list's total.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Share {
    pub item: String,
    pub count: i64,
    /// Of the whole (all sessions, or all attempts), in percent.
    pub percent: f64,
}

/// A credential pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub count: i64,
    /// Attempts with this pair that were let in.
    pub accepted: i64,
}

/// How the clients given one persona answered its greeting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Served {
    pub persona: String,
    pub sessions: i64,
    /// `after_banner` outcome -> sessions: `silent`, `same`, `other`, `answered`, or
    /// `client_first` (the client spoke before the persona did).
    pub outcomes: Vec<Share>,
}

/// A source address and its sessions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    pub ip: String,
    pub records: i64,
    /// `AS64496 Example Net` and a country code, when a MaxMind-format database is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Everything `explain` says about a port.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explain {
    pub port: u16,
    pub since: String,
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    pub records: i64,
    pub tcp: i64,
    pub udp: i64,
    /// Distinct over the whole window.
    pub sources: i64,
    pub targets: i64,
    /// First and last session on this port in the store (any time), UTC.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub protocols: Vec<Share>,
    pub clients: Vec<Share>,
    pub ssh_versions: Vec<Share>,
    pub hassh: Vec<Share>,
    pub ja4: Vec<Share>,
    pub user_agents: Vec<Share>,
    /// Behaviour tags (brute force, Mirai, scanners, ...); shares of sessions.
    pub tags: Vec<Share>,
    /// Tags naming an exploit (a CVE id, or a known exploit's name); shares of sessions.
    pub exploits: Vec<Share>,
    pub login_attempts: i64,
    pub logins_accepted: i64,
    pub credentials: Vec<Credential>,
    pub usernames: Vec<Share>,
    pub passwords: Vec<Share>,
    pub commands: Vec<Share>,
    pub requests: Vec<Share>,
    pub downloads: Vec<Share>,
    pub served: Vec<Served>,
    pub top_sources: Vec<Source>,
    /// Session ids worth reading (`honeyport events --session ID`), one per main protocol.
    pub examples: Vec<Example>,
}

/// A session picked as an example, with a short transcript.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    pub session: String,
    pub protocol: String,
    pub src: String,
    pub start: String,
    /// `> ` lines the client sent, `< ` lines the sensor sent, in order (clipped).
    pub transcript: Vec<String>,
}

/// Whether a tag names an exploit attempt rather than a behaviour.
pub fn is_exploit_tag(t: &str) -> bool {
    t.starts_with("CVE-") || t.ends_with("-rce") || t.ends_with("-exposed")
}

/// Most kinds that have a small, closed set of values (protocols, tags, persona outcomes) are
/// read whole up to this many; open-ended ones (credentials, commands, ...) only their top
/// [`TOP`], with their total counted in SQL, so a port with millions of distinct passwords
/// costs the same as one with ten.
const CLOSED_SET: usize = 256;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn pct(n: i64, of: i64) -> f64 {
    if of <= 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

fn shares(list: &[(Vec<u8>, i64)], of: i64, top: usize) -> Vec<Share> {
    list.iter()
        .take(top)
        .map(|(i, n)| Share {
            item: text(i),
            count: *n,
            percent: pct(*n, of),
        })
        .collect()
}

/// Looks up a source's network and country (see [`super::geo`]).
pub type Lookup<'a> = &'a dyn Fn(std::net::IpAddr) -> (Option<String>, Option<String>);

/// Builds the explanation of `port` over `w`.
pub fn explain(
    r: &dyn Reader,
    port: u16,
    scope: Scope<'_>,
    w: Window,
    examples: usize,
    lookup: Option<Lookup<'_>>,
) -> Result<Explain> {
    // Volume: records add up; sources and targets are distinct over the window.
    let volume = r.port_in_window(scope, port, w)?;
    let (first, last) = r.port_seen(scope, port)?;
    let stamp = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };

    let top = |k: &str, n: usize| r.items(scope, w, Some(port), k, n);
    let get = |k: &str| top(k, TOP);
    let total = |k: &str| r.item_total(scope, w, Some(port), k);
    let protocols = top(kind::PROTOCOL, CLOSED_SET)?;
    // Every closed session has exactly one protocol: their total is the session count.
    let sessions = total(kind::PROTOCOL)?;
    let tags_all = top(kind::TAG, CLOSED_SET)?;
    let (exploit_tags, behaviour_tags): (Vec<_>, Vec<_>) = tags_all
        .into_iter()
        .partition(|(t, _)| is_exploit_tag(&text(t)));
    let creds = get(kind::CREDENTIAL)?;
    let attempts = total(kind::CREDENTIAL)?;
    let accepted = total(kind::CREDENTIAL_OK)?;
    // How often each listed pair was let in.
    let pairs: Vec<Vec<u8>> = creds.iter().map(|(p, _)| p.clone()).collect();
    let ok: HashMap<Vec<u8>, i64> = pairs
        .iter()
        .cloned()
        .zip(r.item_counts(scope, w, Some(port), kind::CREDENTIAL_OK, &pairs)?)
        .collect();
    let credentials = creds
        .iter()
        .take(TOP)
        .map(|(pair, n)| {
            let (u, p) = match pair.iter().position(|&b| b == 0) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (&pair[..], &[][..]),
            };
            Credential {
                username: text(u),
                password: text(p),
                count: *n,
                accepted: ok.get(pair).copied().unwrap_or(0),
            }
        })
        .collect();
    let usernames = get(kind::USERNAME)?;
    let passwords = get(kind::PASSWORD)?;
    let commands = get(kind::COMMAND)?;
    let total_commands = total(kind::COMMAND)?;
    let requests = get(kind::REQUEST)?;
    let total_requests = total(kind::REQUEST)?;
    let downloads = get(kind::DOWNLOAD)?;
    let total_downloads = total(kind::DOWNLOAD)?;
    let agents = get(kind::USER_AGENT)?;
    let total_agents = total(kind::USER_AGENT)?;

    // Per persona: how its clients answered.
    let mut served: Vec<Served> = Vec::new();
    for (it, n) in top(kind::SERVED, CLOSED_SET)? {
        let s = text(&it);
        let (persona, outcome) = s.rsplit_once('/').unwrap_or((s.as_str(), "?"));
        let i = match served.iter().position(|x| x.persona == persona) {
            Some(i) => i,
            None => {
                served.push(Served {
                    persona: persona.to_string(),
                    sessions: 0,
                    outcomes: Vec::new(),
                });
                served.len() - 1
            }
        };
        let entry = &mut served[i];
        entry.sessions += n;
        entry.outcomes.push(Share {
            item: outcome.to_string(),
            count: n,
            percent: 0.0,
        });
    }
    for s in &mut served {
        for o in &mut s.outcomes {
            o.percent = pct(o.count, s.sessions);
        }
    }
    served.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.persona.cmp(&b.persona)));

    // Top sources by sessions.
    let top_sources = r
        .sources(scope, w, Some(port), TOP)?
        .into_iter()
        .map(|s| {
            let (asn, country) = lookup.map(|f| f(s.ip)).unwrap_or((None, None));
            Source {
                ip: s.ip.to_string(),
                records: s.records,
                asn,
                country,
            }
        })
        .collect();

    let mut out = Explain {
        port,
        since: date_of(w.since),
        until: date_of(w.until),
        sensor: scope.sensor().map(str::to_string),
        records: volume.records,
        tcp: volume.tcp,
        udp: volume.udp,
        sources: volume.sources,
        targets: volume.targets,
        first_seen: first.map(stamp),
        last_seen: last.map(stamp),
        protocols: shares(&protocols, sessions, usize::MAX),
        clients: shares(&get(kind::CLIENT)?, sessions, TOP),
        ssh_versions: shares(&get(kind::VERSION)?, sessions, TOP),
        hassh: shares(&get(kind::HASSH)?, sessions, TOP),
        ja4: shares(&get(kind::JA4)?, sessions, TOP),
        user_agents: shares(&agents, total_agents, TOP),
        tags: shares(&behaviour_tags, sessions, TOP),
        exploits: shares(&exploit_tags, sessions, TOP),
        login_attempts: attempts,
        logins_accepted: accepted,
        credentials,
        usernames: shares(&usernames, attempts, TOP),
        passwords: shares(&passwords, attempts, TOP),
        commands: shares(&commands, total_commands, TOP),
        requests: shares(&requests, total_requests, TOP),
        downloads: shares(&downloads, total_downloads, TOP),
        served,
        top_sources,
        examples: Vec::new(),
    };
    out.examples = pick_examples(r, &out, scope, w, examples)?;
    Ok(out)
}

/// One example session per main protocol (the latest in the window that sent something),
/// with its first lines each way.
fn pick_examples(
    r: &dyn Reader,
    e: &Explain,
    scope: Scope<'_>,
    w: Window,
    n: usize,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for p in e.protocols.iter().filter(|p| p.item != "silent").take(n) {
        let found = r.sessions(
            scope,
            w,
            &SessionFilter {
                port: Some(e.port),
                protocol: Some(p.item.clone()),
                sent_bytes: true,
                ..Default::default()
            },
            1,
        )?;
        let Some(s) = found.into_iter().next() else {
            continue;
        };
        let mut transcript = Vec::new();
        let events = r.events(&EventFilter {
            session: Some(s.session.clone()),
            eventids: vec!["session.input", "session.output"],
            oldest_first: true,
            limit: Some(40),
            ..Default::default()
        })?;
        for ev in events {
            let (mark, data) = match ev.kind {
                honeyport_event::EventKind::Input { data, .. } => ('>', data),
                honeyport_event::EventKind::Output { data, .. } => ('<', data),
                _ => continue,
            };
            for line in clip_lines(&data.0) {
                if transcript.len() < 12 {
                    transcript.push(format!("{mark} {line}"));
                }
            }
        }
        out.push(Example {
            session: s.session,
            protocol: p.item.clone(),
            src: s.src_ip,
            start: chrono::DateTime::from_timestamp_micros(s.start)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            transcript,
        });
    }
    Ok(out)
}

/// The printable lines of some bytes, each clipped to 100 chars; a mostly binary line is
/// shown as its size (`[1,234 bytes binary]`), stray bytes as `\xNN`.
fn clip_lines(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .take(6)
        .map(|l| {
            let printable = l
                .iter()
                .filter(|c| (0x20..0x7f).contains(*c) || **c == b'\t')
                .count();
            if printable * 4 < l.len() * 3 {
                return format!("[{} bytes binary]", thousands(l.len() as i64));
            }
            let s: String = l
                .iter()
                .flat_map(|&c| {
                    if (0x20..0x7f).contains(&c) {
                        vec![c as char]
                    } else {
                        format!("\\x{c:02x}").chars().collect()
                    }
                })
                .collect();
            if s.chars().count() > 100 {
                format!("{}...", s.chars().take(100).collect::<String>())
            } else {
                s
            }
        })
        .collect()
}

/// Joins the first few shares as "telnet 65% (8,000), ssh 7% (900)".
fn phrase(list: &[Share], n: usize) -> String {
    list.iter()
        .take(n)
        .map(|s| {
            format!(
                "{} {}% ({})",
                s.item,
                fmt_pct(s.percent),
                thousands(s.count)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_pct(p: f64) -> String {
    if p >= 10.0 || p == p.round() {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// The explanation as text for people: a conclusion first, then the numbers behind it.
pub fn render(e: &Explain) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let transport = match (e.tcp > 0, e.udp > 0) {
        (true, true) => "tcp+udp",
        (false, true) => "udp",
        _ => "tcp",
    };
    let _ = writeln!(
        o,
        "Port {}/{transport}, {} .. {}{}",
        e.port,
        e.since,
        e.until,
        e.sensor
            .as_ref()
            .map(|s| format!(", sensor {s}"))
            .unwrap_or_else(|| ", all sensors".into())
    );
    if e.records == 0 {
        let _ = writeln!(o, "No records for this port in this window.");
        if let Some(l) = &e.last_seen {
            let _ = writeln!(o, "Last seen {l}.");
        }
        return o;
    }
    let _ = writeln!(
        o,
        "{} records from {} sources to {} targets; first seen {}, last seen {}.",
        thousands(e.records),
        thousands(e.sources),
        thousands(e.targets),
        e.first_seen.as_deref().unwrap_or("?"),
        e.last_seen.as_deref().unwrap_or("?")
    );
    // The conclusion.
    let _ = writeln!(o);
    let mut lines = Vec::new();
    if !e.protocols.is_empty() {
        lines.push(format!("Clients spoke: {}.", phrase(&e.protocols, 4)));
    }
    if !e.clients.is_empty() {
        lines.push(format!("Client software: {}.", phrase(&e.clients, 4)));
    }
    if e.login_attempts > 0 {
        let top = e
            .credentials
            .first()
            .map(|c| format!("; most tried {}:{} ({}x)", c.username, c.password, c.count))
            .unwrap_or_default();
        lines.push(format!(
            "{} login attempts ({} accepted){top}.",
            thousands(e.login_attempts),
            thousands(e.logins_accepted)
        ));
    }
    if !e.tags.is_empty() {
        lines.push(format!("Behaviour: {}.", phrase(&e.tags, 5)));
    }
    if !e.exploits.is_empty() {
        lines.push(format!("Exploit attempts: {}.", phrase(&e.exploits, 5)));
    }
    for s in e
        .served
        .iter()
        .filter(|s| s.outcomes.len() > 1 || e.served.len() > 1)
    {
        lines.push(format!(
            "Given the {} persona ({} sessions): {}.",
            s.persona,
            thousands(s.sessions),
            s.outcomes
                .iter()
                .map(|x| format!("{} {}%", outcome_words(&x.item), fmt_pct(x.percent)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for l in lines {
        let _ = writeln!(o, "{l}");
    }
    // The numbers.
    let section = |o: &mut String, title: &str, list: &[Share]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n{title}:");
        let w = list
            .iter()
            .map(|s| s.item.chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        for s in list {
            let item: String = s.item.chars().take(60).collect();
            let _ = writeln!(
                o,
                "  {item:<w$}  {:>9}  {:>5}%",
                thousands(s.count),
                fmt_pct(s.percent)
            );
        }
    };
    section(&mut o, "Protocols (share of sessions)", &e.protocols);
    section(&mut o, "Client software", &e.clients);
    section(&mut o, "SSH client versions", &e.ssh_versions);
    section(&mut o, "HASSH", &e.hassh);
    section(&mut o, "JA4", &e.ja4);
    section(
        &mut o,
        "HTTP user agents (share of requests)",
        &e.user_agents,
    );
    section(&mut o, "Behaviour tags (share of sessions)", &e.tags);
    section(&mut o, "Exploit attempts (share of sessions)", &e.exploits);
    if !e.credentials.is_empty() {
        let _ = writeln!(o, "\nCredentials (top pairs):");
        for c in &e.credentials {
            let _ = writeln!(
                o,
                "  {:<40}  {:>9}{}",
                format!("{}:{}", c.username, c.password),
                thousands(c.count),
                if c.accepted > 0 {
                    format!("  ({} accepted)", thousands(c.accepted))
                } else {
                    String::new()
                }
            );
        }
    }
    section(&mut o, "Usernames (share of attempts)", &e.usernames);
    section(&mut o, "Passwords (share of attempts)", &e.passwords);
    section(&mut o, "Commands", &e.commands);
    section(&mut o, "HTTP requests", &e.requests);
    section(&mut o, "Download URLs", &e.downloads);
    if !e.served.is_empty() {
        let _ = writeln!(o, "\nPersonas and how clients answered their greeting:");
        for s in &e.served {
            let _ = writeln!(o, "  {} ({} sessions)", s.persona, thousands(s.sessions));
            for x in &s.outcomes {
                let _ = writeln!(
                    o,
                    "    {:<28}  {:>9}  {:>5}%",
                    outcome_words(&x.item),
                    thousands(x.count),
                    fmt_pct(x.percent)
                );
            }
        }
    }
    if !e.top_sources.is_empty() {
        let _ = writeln!(o, "\nTop sources:");
        for s in &e.top_sources {
            let geo = [s.asn.as_deref(), s.country.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(o, "  {:<39}  {:>9}  {geo}", s.ip, thousands(s.records));
        }
    }
    for x in &e.examples {
        let _ = writeln!(
            o,
            "\nExample {} session {} from {} at {}:",
            x.protocol, x.session, x.src, x.start
        );
        for l in &x.transcript {
            let _ = writeln!(o, "  {l}");
        }
    }
    o
}

/// `after_banner` values in words.
fn outcome_words(o: &str) -> &str {
    match o {
        "silent" => "left silently",
        "same" => "answered in its protocol",
        "other" => "answered in another protocol",
        "answered" => "answered",
        "client_first" => "spoke first",
        other => other,
    }
}
