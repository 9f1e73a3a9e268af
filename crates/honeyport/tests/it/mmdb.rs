//! A small MaxMind DB (`.mmdb`) writer, for tests only: the search tree, the data section
//! and the metadata, per the MaxMind DB file format specification (version 2.0).
//!
//! Used by `tests/it/report.rs` and by the unit tests of `src/report/geo.rs` (which include
//! this file with `#[path]`), so it uses only `std`.
#![allow(dead_code)]

use std::net::IpAddr;

/// A value of the data section (the types these tests need).
#[derive(Clone, Debug)]
pub enum Data {
    Map(Vec<(String, Data)>),
    Array(Vec<Data>),
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
}

/// A map from `(key, value)` pairs.
pub fn map(pairs: Vec<(&str, Data)>) -> Data {
    Data::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A UTF-8 string.
pub fn s(v: &str) -> Data {
    Data::Str(v.to_string())
}

/// The spec's data types.
const POINTER_FREE_STRING: u8 = 2;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// A control byte (and extended type byte, and size bytes) for `ty` with payload `size`.
fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        let n = size - 285;
        (30, vec![(n >> 8) as u8, n as u8])
    } else {
        let n = size - 65_821;
        (31, vec![(n >> 16) as u8, (n >> 8) as u8, n as u8])
    };
    if ty <= 7 {
        out.push((ty << 5) | bits);
    } else {
        // Extended: type bits 0, then the type minus 7 in the next byte.
        out.push(bits);
        out.push(ty - 7);
    }
    out.extend(extra);
}

/// An unsigned integer in as few big-endian bytes as it needs.
fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    control(out, ty, 8 - skip);
    out.extend(&b[skip..]);
}

/// Appends the encoding of `d`.
pub fn encode(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::Map(pairs) => {
            control(out, MAP, pairs.len());
            for (k, v) in pairs {
                control(out, POINTER_FREE_STRING, k.len());
                out.extend(k.as_bytes());
                encode(out, v);
            }
        }
        Data::Array(items) => {
            control(out, ARRAY, items.len());
            for v in items {
                encode(out, v);
            }
        }
        Data::Str(v) => {
            control(out, POINTER_FREE_STRING, v.len());
            out.extend(v.as_bytes());
        }
        Data::U16(v) => uint(out, UINT16, u64::from(*v)),
        Data::U32(v) => uint(out, UINT32, u64::from(*v)),
        Data::U64(v) => uint(out, UINT64, *v),
    }
}

/// A record of the search tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// The bits of an address as the tree walks them: IPv4 in an IPv6 tree under `::/96`.
fn bits(ip: IpAddr, ip_version: u16) -> Vec<bool> {
    let bytes: Vec<u8> = match (ip, ip_version) {
        (IpAddr::V4(a), 4) => a.octets().to_vec(),
        (IpAddr::V4(a), _) => {
            let mut b = vec![0u8; 12];
            b.extend(a.octets());
            b
        }
        (IpAddr::V6(a), 6) => a.octets().to_vec(),
        (IpAddr::V6(_), _) => panic!("an IPv6 network in an IPv4 database"),
    };
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1 == 1))
        .collect()
}

/// A database of `ip_version` (4 or 6) with `record_size` (24, 28 or 32) bits per record,
/// mapping each network (`"198.51.100.0/24"`, non-overlapping) to its data.
pub fn build(
    ip_version: u16,
    record_size: u16,
    database_type: &str,
    networks: &[(&str, Data)],
) -> Vec<u8> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
    for (i, (net, _)) in networks.iter().enumerate() {
        let (addr, len) = net.split_once('/').expect("a network is ADDRESS/PREFIX");
        let addr: IpAddr = addr.parse().expect("an address");
        let mut len: usize = len.parse().expect("a prefix length");
        if addr.is_ipv4() && ip_version == 6 {
            len += 96;
        }
        assert!(len > 0, "a network needs a prefix");
        let path = bits(addr, ip_version);
        let mut node = 0;
        for &bit in &path[..len - 1] {
            let b = usize::from(bit);
            node = match nodes[node][b] {
                Rec::Node(n) => n,
                Rec::Empty => {
                    nodes.push([Rec::Empty; 2]);
                    let n = nodes.len() - 1;
                    nodes[node][b] = Rec::Node(n);
                    n
                }
                Rec::Data(_) => panic!("{net} overlaps another network"),
            };
        }
        let b = usize::from(path[len - 1]);
        assert!(
            nodes[node][b] == Rec::Empty,
            "{net} overlaps another network"
        );
        nodes[node][b] = Rec::Data(i);
    }

    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, d) in networks {
        offsets.push(data.len());
        encode(&mut data, d);
    }

    let node_count = nodes.len();
    let value = |r: Rec| -> u32 {
        (match r {
            Rec::Empty => node_count,
            Rec::Node(n) => n,
            Rec::Data(i) => node_count + 16 + offsets[i],
        }) as u32
    };
    let mut out = Vec::new();
    for [l, r] in nodes {
        let (l, r) = (value(l), value(r));
        match record_size {
            24 => {
                out.extend(&l.to_be_bytes()[1..]);
                out.extend(&r.to_be_bytes()[1..]);
            }
            28 => {
                out.extend(&l.to_be_bytes()[1..]);
                out.push((((l >> 24) & 0x0f) << 4) as u8 | ((r >> 24) & 0x0f) as u8);
                out.extend(&r.to_be_bytes()[1..]);
            }
            32 => {
                out.extend(l.to_be_bytes());
                out.extend(r.to_be_bytes());
            }
            n => panic!("record size {n}"),
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = map(vec![
        ("node_count", Data::U32(node_count as u32)),
        ("record_size", Data::U16(record_size)),
        ("ip_version", Data::U16(ip_version)),
        ("database_type", s(database_type)),
        ("languages", Data::Array(vec![s("en")])),
        ("binary_format_major_version", Data::U16(2)),
        ("binary_format_minor_version", Data::U16(0)),
        ("build_epoch", Data::U64(1_767_225_600)),
        (
            "description",
            map(vec![("en", s(&format!("honeyport test {database_type}")))]),
        ),
    ]);
    encode(&mut out, &metadata);
    out
}

/// An ASN database (GeoLite2-ASN layout, IPv6 tree, 28-bit records): 198.51.100.0/24 is
/// AS64496 "Example Net", 2001:db8::/32 is AS64497 "Other Net".
pub fn asn() -> Vec<u8> {
    let asn = |n: u32, org: &str| {
        map(vec![
            ("autonomous_system_number", Data::U32(n)),
            ("autonomous_system_organization", s(org)),
        ])
    };
    build(
        6,
        28,
        "GeoLite2-ASN",
        &[
            ("198.51.100.0/24", asn(64496, "Example Net")),
            ("2001:db8::/32", asn(64497, "Other Net")),
        ],
    )
}

/// A country database (GeoLite2-Country layout, IPv4 tree, 24-bit records):
/// 198.51.100.0/25 is in `DE`; 198.51.100.201/32 has only a registered country, `NL`.
pub fn country() -> Vec<u8> {
    let iso = |code: &str| map(vec![("iso_code", s(code))]);
    build(
        4,
        24,
        "GeoLite2-Country",
        &[
            ("198.51.100.0/25", map(vec![("country", iso("DE"))])),
            (
                "198.51.100.201/32",
                map(vec![("registered_country", iso("NL"))]),
            ),
        ],
    )
}
