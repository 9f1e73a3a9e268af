//! Credential policy shared by the login personas (telnet now; SSH and FTP later).
//!
//! ```toml
//! [personas.router.credentials]
//! accept = ["root:xc3511", "admin:admin"]          # exact user:pass pairs
//! accept_regex = [{ user = "^support$", password = ".*" }]
//! deny = ["root:root"]                              # never accepted, even after N tries
//! accept_any_after = 3                              # the 4th attempt from a source gets in
//! remember_sources = 10000
//! ```
//!
//! Order of the checks: deny, then the accept list and patterns, then the credential a source
//! was already let in with, then "accept any after N tries". A source that got in with some
//! pair through `accept_any_after` is let in with that pair only from then on (like cowrie's
//! AuthRandom), so a bot that reconnects sees one consistent device. The per-source memory is
//! a bounded map: when full, the source seen longest ago is forgotten.
//!
//! Pure: no I/O. Usernames and passwords are bytes, compared exactly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::config::Problems;

/// Credentials a stock IoT device (or a bot's dictionary) commonly uses; accepted by default.
pub const DEFAULT_ACCEPT: &[&str] = &[
    "root:xc3511",
    "root:vizxv",
    "root:admin",
    "admin:admin",
    "root:888888",
    "root:xmhdipc",
    "root:default",
    "root:juantech",
    "root:123456",
    "root:54321",
    "support:support",
    "admin:password",
    "root:12345",
    "user:user",
    "admin:1234",
    "root:pass",
    "admin:admin1234",
    "root:1111",
    "admin:smcadmin",
    "root:Zte521",
    "root:hi3518",
    "root:jvbzd",
    "root:anko",
    "root:zlxx.",
    "root:7ujMko0vizxv",
    "root:7ujMko0admin",
    "root:system",
    "root:ikwb",
    "root:dreambox",
    "root:user",
    "root:realtek",
    "root:00000000",
    "admin:1111111",
    "admin:54321",
    "admin:123456",
    "admin:7ujMko0admin",
    "admin:pass",
    "admin:meinsm",
    "tech:tech",
    "mother:fucker",
];

/// Default for `accept_any_after`: failed attempts from one source before any pair gets in.
pub const DEFAULT_ACCEPT_ANY_AFTER: u32 = 3;
/// Default for `remember_sources`.
pub const DEFAULT_REMEMBER: usize = 10_000;
/// Upper bound for `remember_sources` (each entry holds one credential pair, capped below).
pub const MAX_REMEMBER: usize = 1_000_000;
/// Longest username or password kept as a source's granted pair; longer ones are still
/// checked against the lists but never granted through `accept_any_after`.
const MAX_GRANTED_LEN: usize = 256;

/// `[personas.NAME.credentials]`. Every field optional (inheritance fills them).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRaw {
    /// Exact `user:pass` pairs always accepted (split at the first `:`). Default: a list of
    /// common IoT defaults ([`DEFAULT_ACCEPT`]); `accept = []` accepts no fixed pair.
    pub accept: Option<Vec<String>>,
    /// Pairs accepted when both regexes match (unanchored; use `^...$`). A missing side
    /// matches anything.
    pub accept_regex: Option<Vec<PatternRaw>>,
    /// Exact `user:pass` pairs never accepted. `user:*` denies every password for `user`.
    pub deny: Option<Vec<String>>,
    /// After this many failed attempts from one source address, the next pair that is not
    /// denied is accepted (and remembered for that source). 0 turns it off. Default 3.
    pub accept_any_after: Option<u32>,
    /// Source addresses remembered for `accept_any_after`; the oldest is forgotten when
    /// full. Default 10000, at most 1000000.
    pub remember_sources: Option<usize>,
}

/// One `accept_regex` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternRaw {
    pub user: Option<String>,
    pub password: Option<String>,
}

impl CredentialsRaw {
    /// Unset fields taken from `base`.
    pub fn merged_over(&self, base: &CredentialsRaw) -> CredentialsRaw {
        CredentialsRaw {
            accept: self.accept.clone().or_else(|| base.accept.clone()),
            accept_regex: self
                .accept_regex
                .clone()
                .or_else(|| base.accept_regex.clone()),
            deny: self.deny.clone().or_else(|| base.deny.clone()),
            accept_any_after: self.accept_any_after.or(base.accept_any_after),
            remember_sources: self.remember_sources.or(base.remember_sources),
        }
    }

    pub fn validate(&self, at: &str, p: &mut Problems<'_>) {
        for (name, list) in [("accept", &self.accept), ("deny", &self.deny)] {
            for (i, pair) in list.iter().flatten().enumerate() {
                if !pair.contains(':') {
                    p.at(
                        &format!("{at}.{name}[{i}]"),
                        format!("{pair:?} is not user:password"),
                    );
                }
            }
        }
        for (i, r) in self.accept_regex.iter().flatten().enumerate() {
            for (side, re) in [("user", &r.user), ("password", &r.password)] {
                if let Some(re) = re {
                    if let Err(e) = compile(re) {
                        let msg = e
                            .to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        p.at(
                            &format!("{at}.accept_regex[{i}].{side}"),
                            format!("bad regex: {msg}"),
                        );
                    }
                }
            }
        }
        if let Some(n) = self.remember_sources {
            if !(1..=MAX_REMEMBER).contains(&n) {
                p.at(
                    &format!("{at}.remember_sources"),
                    format!("must be between 1 and {MAX_REMEMBER}"),
                );
            }
        }
    }

    pub fn build(&self) -> Result<CredPolicy, String> {
        let pairs = |v: &[String]| -> Vec<(Vec<u8>, Vec<u8>)> {
            v.iter()
                .filter_map(|s| s.split_once(':'))
                .map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()))
                .collect()
        };
        let accept = match &self.accept {
            Some(v) => pairs(v),
            None => pairs(
                &DEFAULT_ACCEPT
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            ),
        };
        let mut patterns = Vec::new();
        for r in self.accept_regex.iter().flatten() {
            let c = |re: &Option<String>| {
                re.as_deref()
                    .map(compile)
                    .transpose()
                    .map_err(|e| e.to_string())
            };
            patterns.push((c(&r.user)?, c(&r.password)?));
        }
        Ok(CredPolicy {
            accept,
            patterns,
            deny: pairs(self.deny.as_deref().unwrap_or(&[])),
            accept_any_after: self.accept_any_after.unwrap_or(DEFAULT_ACCEPT_ANY_AFTER),
            remember: self.remember_sources.unwrap_or(DEFAULT_REMEMBER).max(1),
            sources: Mutex::new(Sources::default()),
        })
    }
}

fn compile(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re)
        .unicode(false)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

type Pattern = (Option<Regex>, Option<Regex>);

/// A built policy, shared by every session of a persona.
#[derive(Debug)]
pub struct CredPolicy {
    accept: Vec<(Vec<u8>, Vec<u8>)>,
    patterns: Vec<Pattern>,
    deny: Vec<(Vec<u8>, Vec<u8>)>,
    accept_any_after: u32,
    remember: usize,
    sources: Mutex<Sources>,
}

#[derive(Debug, Default)]
struct Sources {
    map: HashMap<IpAddr, Source>,
    tick: u64,
}

#[derive(Debug, Default)]
struct Source {
    failed: u32,
    granted: Option<(Vec<u8>, Vec<u8>)>,
    seen: u64,
}

impl CredPolicy {
    /// Whether `user`/`pass` from `src` gets in. Records the attempt for `src`.
    pub fn check(&self, src: IpAddr, user: &[u8], pass: &[u8]) -> bool {
        let denied = self
            .deny
            .iter()
            .any(|(u, p)| u == user && (p == pass || p == b"*"));
        let listed = !denied
            && (self.accept.iter().any(|(u, p)| u == user && p == pass)
                || self.patterns.iter().any(|(ru, rp)| {
                    ru.as_ref().is_none_or(|r| r.is_match(user))
                        && rp.as_ref().is_none_or(|r| r.is_match(pass))
                }));
        // A poisoned lock only means another session panicked mid-update; the map is still
        // a valid map, so keep using it.
        let mut g = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        if !g.map.contains_key(&src) && g.map.len() >= self.remember {
            if let Some(old) = g.map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) {
                g.map.remove(&old);
            }
        }
        let s = g.map.entry(src).or_default();
        s.seen = tick;
        if denied {
            s.failed = s.failed.saturating_add(1);
            return false;
        }
        if listed {
            return true;
        }
        match &s.granted {
            Some((u, p)) => {
                let ok = u == user && p == pass;
                if !ok {
                    s.failed = s.failed.saturating_add(1);
                }
                ok
            }
            None if self.accept_any_after > 0
                && s.failed >= self.accept_any_after
                && user.len() <= MAX_GRANTED_LEN
                && pass.len() <= MAX_GRANTED_LEN =>
            {
                s.granted = Some((user.to_vec(), pass.to_vec()));
                true
            }
            None => {
                s.failed = s.failed.saturating_add(1);
                false
            }
        }
    }

    /// How many sources are remembered (for tests).
    pub fn remembered(&self) -> usize {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(src: &str) -> CredPolicy {
        toml::from_str::<CredentialsRaw>(src)
            .unwrap()
            .build()
            .unwrap()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));

    #[test]
    fn default_accepts_iot_list_at_once_and_anything_after_three() {
        let p = policy("");
        assert!(p.check(A, b"root", b"xc3511"));
        assert!(!p.check(B, b"root", b"nope1"));
        assert!(!p.check(B, b"root", b"nope2"));
        assert!(!p.check(B, b"root", b"nope3"));
        assert!(p.check(B, b"root", b"nope4"));
    }

    #[test]
    fn granted_pair_is_the_only_one_remembered_per_source() {
        let p = policy("accept = []\naccept_any_after = 1");
        assert!(!p.check(A, b"u", b"1"));
        assert!(p.check(A, b"u", b"2"));
        // Consistent on retry: the same pair again gets in, another does not.
        assert!(p.check(A, b"u", b"2"));
        assert!(!p.check(A, b"u", b"1"));
        assert!(!p.check(A, b"u", b"3"));
        // Another source starts from scratch.
        assert!(!p.check(B, b"u", b"2"));
    }

    #[test]
    fn deny_wins_over_everything() {
        let p = policy(
            "accept = [\"root:root\"]\ndeny = [\"root:root\", \"guest:*\"]\naccept_any_after = 1",
        );
        assert!(!p.check(A, b"root", b"root"));
        assert!(!p.check(A, b"guest", b"x"));
        assert!(!p.check(A, b"guest", b"y"));
        assert!(p.check(A, b"admin", b"z"));
    }

    #[test]
    fn patterns_and_exact_bytes() {
        let p = policy(
            "accept = [\"a:b:c\"]\naccept_any_after = 0\n\
             accept_regex = [{ user = \"^support$\" }, { password = \"^\\\\xff\" }]",
        );
        assert!(p.check(A, b"a", b"b:c"));
        assert!(!p.check(A, b"a", b"b"));
        assert!(!p.check(A, b"A", b"b:c"));
        assert!(p.check(A, b"support", b"anything"));
        assert!(!p.check(A, b"supporter", b"anything"));
        assert!(p.check(A, b"x", &[0xff, 0]));
        for _ in 0..10 {
            assert!(!p.check(A, b"x", b"y"), "accept_any_after = 0 never opens");
        }
    }

    #[test]
    fn memory_is_bounded_and_forgets_the_oldest() {
        let p = policy("accept = []\naccept_any_after = 1\nremember_sources = 2");
        let ip = |n: u8| IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n));
        assert!(!p.check(ip(1), b"u", b"p"));
        assert!(!p.check(ip(2), b"u", b"p"));
        assert!(!p.check(ip(3), b"u", b"p")); // forgets 10.0.0.1
        assert_eq!(p.remembered(), 2);
        assert!(!p.check(ip(1), b"u", b"p"), "10.0.0.1 was forgotten");
        assert!(p.check(ip(3), b"u", b"p"));
    }
}
