//! The network (ASN) and country of a source address, from MaxMind-format `.mmdb` databases
//! (GeoLite2-ASN / GeoIP2-ISP for the ASN, GeoLite2-Country / City for the country; any
//! database in the MaxMind DB format with those fields will do).
//!
//! `honeyport explain` and `honeyport report sources` take them with `--mmdb FILE`
//! (repeatable), or from [`ENV`] (colon-separated paths) when no `--mmdb` is given.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use maxminddb::{path, Reader};

/// The environment variable read when no `--mmdb` is given: paths separated by `:`.
pub const ENV: &str = "HONEYPORT_MMDB";

/// One or more MaxMind-format databases, asked in the order given.
pub struct Geo {
    dbs: Vec<(PathBuf, Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.dbs
                    .iter()
                    .map(|(p, r)| (p, &r.metadata().database_type)),
            )
            .finish()
    }
}

impl Geo {
    /// Opens (reads into memory) each database. A file that cannot be read, or is not in the
    /// MaxMind DB format, is an error naming it.
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<Geo> {
        let mut dbs = Vec::with_capacity(paths.len());
        for p in paths {
            let buf = std::fs::read(p)
                .with_context(|| format!("reading MaxMind database {}", p.display()))?;
            let reader = Reader::from_source(buf).map_err(|e| {
                anyhow::anyhow!("{} is not a MaxMind DB (.mmdb) file: {e}", p.display())
            })?;
            dbs.push((p.clone(), reader));
        }
        Ok(Geo { dbs })
    }

    /// The databases of `--mmdb` (`args`), or else of [`ENV`]; `None` if neither names any.
    pub fn from_args(args: &[PathBuf]) -> anyhow::Result<Option<Geo>> {
        let paths = chosen(args, std::env::var_os(ENV).as_deref());
        if paths.is_empty() {
            return Ok(None);
        }
        Geo::open(&paths).map(Some).with_context(|| {
            if args.is_empty() {
                format!("${ENV}")
            } else {
                "--mmdb".into()
            }
        })
    }

    /// The databases' paths, in order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dbs.iter().map(|(p, _)| p.as_path())
    }

    /// `ip`'s network as `AS64496 Example Net` (from the first database with an
    /// `autonomous_system_number` for it) and country as an ISO code such as `DE` (from the
    /// first with `country.iso_code`, else `registered_country.iso_code`). Anything missing,
    /// malformed or of the wrong type is `None`.
    pub fn lookup(&self, ip: IpAddr) -> (Option<String>, Option<String>) {
        // An IPv4-mapped IPv6 address is looked up as the IPv4 address it is.
        let ip = ip.to_canonical();
        let (mut asn, mut country) = (None, None);
        for (_, db) in &self.dbs {
            if asn.is_some() && country.is_some() {
                break;
            }
            // An IPv6 address in an IPv4-only database is an error: nothing known.
            let Ok(found) = db.lookup(ip) else {
                continue;
            };
            if !found.has_data() {
                continue;
            }
            if asn.is_none() {
                let number = found
                    .decode_path::<Uint>(&path!["autonomous_system_number"])
                    .ok()
                    .flatten()
                    .map(|n| n.0);
                let org: Option<String> = found
                    .decode_path(&path!["autonomous_system_organization"])
                    .ok()
                    .flatten()
                    .map(|o: String| clean(&o))
                    .filter(|o| !o.is_empty());
                asn = number.map(|n| match org {
                    Some(o) => format!("AS{n} {o}"),
                    None => format!("AS{n}"),
                });
            }
            if country.is_none() {
                country = ["country", "registered_country"].into_iter().find_map(|k| {
                    found
                        .decode_path::<String>(&path![k, "iso_code"])
                        .ok()
                        .flatten()
                        .map(|c| clean(&c))
                        .filter(|c| !c.is_empty())
                });
            }
        }
        (asn, country)
    }
}

/// An unsigned integer of any of the format's widths (uint16, uint32, uint64, ...: the
/// reader's `u64` wants exactly a uint64, and databases differ).
struct Uint(u64);

impl<'de> serde::Deserialize<'de> for Uint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Uint, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Uint;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Uint, E> {
                Ok(Uint(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Uint, E> {
                u64::try_from(v)
                    .map(Uint)
                    .map_err(|_| E::custom("a negative number"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `args` if any, else the paths in `env` (the value of [`ENV`]; empty entries skipped).
fn chosen(args: &[PathBuf], env: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    match env {
        Some(v) if args.is_empty() => std::env::split_paths(v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        _ => args.to_vec(),
    }
}

/// A database string fit for a terminal and a table cell: no control characters, trimmed.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
#[path = "../../tests/it/mmdb.rs"]
mod mmdb;

#[cfg(test)]
mod tests {
    use super::mmdb::{self, map, s, Data};
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn some(a: &str, c: &str) -> (Option<String>, Option<String>) {
        (
            Some(a.to_string()).filter(|a| !a.is_empty()),
            Some(c.to_string()).filter(|c| !c.is_empty()),
        )
    }

    #[test]
    fn asn_and_country_from_two_databases() {
        let dir = tempfile::tempdir().unwrap();
        let asn = write(dir.path(), "asn.mmdb", &mmdb::asn());
        let country = write(dir.path(), "country.mmdb", &mmdb::country());
        let geo = Geo::open(&[asn.clone(), country.clone()]).unwrap();
        assert_eq!(geo.paths().count(), 2);
        const EX: &str = "AS64496 Example Net";
        // In both networks.
        assert_eq!(geo.lookup(ip("198.51.100.7")), some(EX, "DE"));
        assert_eq!(geo.lookup(ip("198.51.100.0")), some(EX, "DE"));
        assert_eq!(geo.lookup(ip("198.51.100.127")), some(EX, "DE"));
        // The upper /25: an ASN, no country; one address with only a registered country.
        assert_eq!(geo.lookup(ip("198.51.100.128")), some(EX, ""));
        assert_eq!(geo.lookup(ip("198.51.100.200")), some(EX, ""));
        assert_eq!(geo.lookup(ip("198.51.100.201")), some(EX, "NL"));
        assert_eq!(geo.lookup(ip("198.51.100.255")), some(EX, ""));
        // Outside both.
        assert_eq!(geo.lookup(ip("198.51.101.0")), some("", ""));
        assert_eq!(geo.lookup(ip("203.0.113.9")), some("", ""));
        assert_eq!(geo.lookup(ip("0.0.0.0")), some("", ""));
        // IPv6: in the ASN database's tree; the country database is IPv4-only.
        assert_eq!(geo.lookup(ip("2001:db8::1")), some("AS64497 Other Net", ""));
        assert_eq!(geo.lookup(ip("2001:db9::1")), some("", ""));
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(geo.lookup(ip("::ffff:198.51.100.7")), some(EX, "DE"));
        // One database alone.
        let only = Geo::open(&[country]).unwrap();
        assert_eq!(only.lookup(ip("198.51.100.7")), some("", "DE"));
        assert_eq!(only.lookup(ip("2001:db8::1")), some("", ""));
        let only = Geo::open(&[asn]).unwrap();
        assert_eq!(only.lookup(ip("198.51.100.7")), some(EX, ""));
    }

    #[test]
    fn every_record_size_and_both_tree_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let data = || {
            map(vec![
                ("autonomous_system_number", Data::U32(4_200_000_000)),
                ("autonomous_system_organization", s("Big\tNet\n")),
                ("country", map(vec![("iso_code", s("FR"))])),
                ("registered_country", map(vec![("iso_code", s("BE"))])),
            ])
        };
        for version in [4, 6] {
            for size in [24, 28, 32] {
                let name = format!("v{version}-{size}.mmdb");
                let db = mmdb::build(
                    version,
                    size,
                    "GeoIP2-City",
                    &[("192.0.2.0/24", data()), ("10.0.0.0/8", data())],
                );
                let geo = Geo::open(&[write(dir.path(), &name, &db)]).unwrap();
                let both = some("AS4200000000 BigNet", "FR");
                assert_eq!(geo.lookup(ip("192.0.2.77")), both, "{name}");
                assert_eq!(geo.lookup(ip("10.1.2.3")), both, "{name}");
                assert_eq!(geo.lookup(ip("192.0.3.1")), some("", ""), "{name}");
            }
        }
    }

    #[test]
    fn odd_records_give_nothing_rather_than_fail() {
        let dir = tempfile::tempdir().unwrap();
        let db = mmdb::build(
            4,
            24,
            "Odd",
            &[
                // The wrong types, and an ASN without an organisation.
                (
                    "192.0.2.0/25",
                    map(vec![
                        ("autonomous_system_number", s("64496")),
                        ("country", s("DE")),
                    ]),
                ),
                (
                    "192.0.2.128/25",
                    map(vec![
                        ("autonomous_system_number", Data::U16(64500)),
                        ("country", map(vec![("iso_code", Data::U32(7))])),
                        ("registered_country", map(vec![("iso_code", s(" SE "))])),
                    ]),
                ),
                // Not a map at all.
                ("198.51.100.0/24", Data::Array(vec![s("x")])),
                ("203.0.113.0/24", s("just a string")),
            ],
        );
        let geo = Geo::open(&[write(dir.path(), "odd.mmdb", &db)]).unwrap();
        assert_eq!(geo.lookup(ip("192.0.2.1")), some("", ""));
        assert_eq!(geo.lookup(ip("192.0.2.200")), some("AS64500", "SE"));
        assert_eq!(geo.lookup(ip("198.51.100.1")), some("", ""));
        assert_eq!(geo.lookup(ip("203.0.113.1")), some("", ""));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = write(dir.path(), "notes.txt", b"not a database\n");
        let err = format!("{:#}", Geo::open(&[text]).unwrap_err());
        assert!(
            err.contains("notes.txt") && err.contains("not a MaxMind DB"),
            "{err}"
        );
        let missing = dir.path().join("missing.mmdb");
        let err = format!("{:#}", Geo::open(&[missing]).unwrap_err());
        assert!(
            err.contains("reading MaxMind database") && err.contains("missing.mmdb"),
            "{err}"
        );
        // A real database cut short: an error or (if what is left still parses) lookups
        // that find nothing; never a panic.
        let whole = mmdb::asn();
        for cut in [0, 1, 10, whole.len() / 2, whole.len() - 1] {
            let p = write(dir.path(), "cut.mmdb", &whole[..cut]);
            if let Ok(geo) = Geo::open(&[p]) {
                let _ = geo.lookup(ip("198.51.100.7"));
            }
        }
        // Garbage in the tree and the data section, metadata intact.
        let mut bad = whole.clone();
        let marker = whole
            .windows(14)
            .position(|w| w == b"\xAB\xCD\xEFMaxMind.com")
            .unwrap();
        for b in bad.iter_mut().take(marker) {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        let p = write(dir.path(), "bad.mmdb", &bad);
        if let Ok(geo) = Geo::open(&[p]) {
            for a in ["198.51.100.7", "2001:db8::1", "0.0.0.0", "255.255.255.255"] {
                let _ = geo.lookup(ip(a));
            }
        }
    }

    #[test]
    fn the_environment_names_databases_when_no_option_does() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let env = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(chosen(&[], None), p(&[]));
        assert_eq!(chosen(&[], env("").as_deref()), p(&[]));
        assert_eq!(
            chosen(&[], env("/a/asn.mmdb::/b/c.mmdb:").as_deref()),
            p(&["/a/asn.mmdb", "/b/c.mmdb"])
        );
        // --mmdb wins.
        assert_eq!(
            chosen(&p(&["x.mmdb"]), env("/a/asn.mmdb").as_deref()),
            p(&["x.mmdb"])
        );
        assert!(Geo::from_args(&p(&["/nonexistent/x.mmdb"])).is_err());
    }
}
