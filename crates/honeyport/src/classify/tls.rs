//! The raw TLS ClientHello, read before rustls sees the stream (rustls hides the extension
//! order), and the JA3 and JA4 (TLS client) fingerprints computed from it.
//!
//! Pure: no I/O. [`parse`] is a function of the bytes the client sent so far, so the caller
//! peeks, calls it, and reads more while it says [`Parse::NeedMore`]; it never needs more than
//! [`MAX_HELLO`] bytes. Inputs come from hostile clients: every length is checked against what
//! encloses it, the work is linear in the input and bounded by [`MAX_HELLO`], and nothing
//! panics.
//!
//! What is accepted:
//! - the first bytes must be a TLS handshake record (type 22, version 0x0300..=0x0304);
//!   anything else, SSLv2-format hellos included, is [`Parse::NotTls`];
//! - the first handshake message must be a ClientHello; it may be fragmented over several
//!   handshake records (RFC 8446 5.1), each 1..=2^14 bytes long, as long as the records fit in
//!   [`MAX_HELLO`] bytes; bytes after the ClientHello are ignored;
//! - the ClientHello's vectors must be consistent with their enclosing lengths (otherwise
//!   [`Parse::Malformed`]); the extension block is optional (pre-TLS-1.2 clients); the list
//!   extensions that are parsed (server_name, ALPN, supported_groups, ec_point_formats,
//!   signature_algorithms, supported_versions) may have an empty body, read as an empty list;
//!   when an extension type appears twice, its fields come from the first one (both are kept
//!   in [`ClientHello::extensions`]).
//!
//! Fingerprints:
//! - JA3 (Salesforce): `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`,
//!   decimal values joined by `-`, GREASE (RFC 8701) removed from the ciphers, extensions and
//!   groups; `ja3` is its md5 in lowercase hex.
//! - JA4 (FoxIO, TLS client): `a_b_c`; `a` = `t` (TCP), the TLS version (highest non-GREASE
//!   supported_versions entry, else the ClientHello's legacy version), `d`/`i` (SNI extension
//!   present or not), the number of ciphers and of extensions (GREASE ignored, at most 99),
//!   and the first and last characters of the first ALPN value (`00` without ALPN); `b` =
//!   the first 12 hex digits of the sha256 of the sorted ciphers (4-digit hex, comma-separated);
//!   `c` = the same for the sorted extensions without SNI (0x0000) and ALPN (0x0010), then `_`
//!   and the signature algorithms in wire order (no `_` when there are none). An empty list
//!   hashes to `000000000000`. [`ClientHello::ja4_raw`] is the unhashed form (`ja4_r`).

use md5::{Digest, Md5};
use sha2::Sha256;

/// Maximum length of one TLS plaintext record (RFC 8446 5.1).
const MAX_RECORD: usize = 1 << 14;

/// The most bytes [`parse`] ever reads (and so the most a caller needs to keep): two full
/// handshake records with their 5-byte headers. A ClientHello (with its 4-byte handshake
/// header) as large as one record always fits, however it is fragmented into records of at
/// least ~4 KiB; real ClientHellos, post-quantum key shares included, are under 2 KiB.
/// A ClientHello whose records do not fit in this many bytes is [`Parse::Malformed`];
/// [`Parse::NeedMore`] is only ever returned for inputs shorter than this.
pub const MAX_HELLO: usize = 2 * (5 + MAX_RECORD);

/// What the client's first bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// A complete ClientHello.
    Hello(Box<ClientHello>),
    /// A prefix of a TLS handshake record sequence: read more (never at [`MAX_HELLO`] bytes).
    NeedMore,
    /// Not a TLS handshake record (plaintext on a TLS port, SSLv2-format hello, ...).
    NotTls,
    /// TLS records, but not a well-formed ClientHello (or one beyond the bounds): why.
    Malformed(&'static str),
}

/// A parsed ClientHello. Lists are in wire order, GREASE values kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The version in the first record header.
    pub record_version: u16,
    /// The ClientHello's `legacy_version` (`client_version` before TLS 1.3).
    pub legacy_version: u16,
    /// The legacy session id (0..=32 bytes).
    pub session_id: Vec<u8>,
    pub ciphers: Vec<u16>,
    pub compression_methods: Vec<u8>,
    /// Extension types in wire order, GREASE and duplicates kept.
    pub extensions: Vec<u16>,
    /// The first `host_name` of the server_name extension (lossy UTF-8).
    pub sni: Option<String>,
    /// ALPN protocol names, in order.
    pub alpn: Vec<Vec<u8>>,
    pub supported_groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    pub supported_versions: Vec<u16>,
    /// How many records carried the ClientHello (more than 1 is rare and telling).
    pub records: usize,
    /// How many bytes of the input the records carrying the ClientHello took.
    pub consumed: usize,
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ..., 0xfafa.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Extension type numbers used here.
mod ext {
    pub const SERVER_NAME: u16 = 0x0000;
    pub const SUPPORTED_GROUPS: u16 = 0x000a;
    pub const EC_POINT_FORMATS: u16 = 0x000b;
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    pub const ALPN: u16 = 0x0010;
    pub const SUPPORTED_VERSIONS: u16 = 0x002b;
}

/// Parses the client's first bytes (starting with the TLS record header).
pub fn parse(first: &[u8]) -> Parse {
    // The first record header decides NotTls as early as the bytes allow.
    match first.first() {
        None => return Parse::NeedMore,
        Some(0x16) => {}
        Some(_) => return Parse::NotTls,
    }
    match first.get(1) {
        None => return Parse::NeedMore,
        Some(3) => {}
        Some(_) => return Parse::NotTls,
    }
    match first.get(2) {
        None => return Parse::NeedMore,
        Some(0..=4) => {}
        Some(_) => return Parse::NotTls,
    }
    let record_version = u16::from_be_bytes([first[1], first[2]]);

    // Reassemble the first handshake message from as many records as it takes.
    let mut hs: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut records = 0usize;
    let mut need: Option<usize> = None; // the handshake message's total length, once known
    loop {
        if let Some(n) = need {
            if hs.len() >= n {
                break;
            }
        }
        let Some(header) = first.get(pos..pos + 5) else {
            return more_or_bounded(first.len());
        };
        if header[0] != 0x16 {
            return Parse::Malformed("a non-handshake record before the ClientHello ended");
        }
        if header[1] != 3 {
            return Parse::Malformed("a record version not 3.x");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Parse::Malformed("an empty handshake record");
        }
        if len > MAX_RECORD {
            return Parse::Malformed("a record longer than 2^14 bytes");
        }
        if pos + 5 + len > MAX_HELLO {
            return Parse::Malformed("the ClientHello's records exceed MAX_HELLO bytes");
        }
        let Some(body) = first.get(pos + 5..pos + 5 + len) else {
            // Refuse what the handshake header already condemns, without waiting for the rest.
            if need.is_none() {
                let have = first.get(pos + 5..).unwrap_or_default();
                let mut head = hs.clone();
                head.extend(have.iter().take(4));
                if let Err(why) = check_header(&head, records + 1) {
                    return Parse::Malformed(why);
                }
            }
            return more_or_bounded(first.len());
        };
        records += 1;
        pos += 5 + len;
        hs.extend_from_slice(body);
        if need.is_none() && hs.len() >= 4 {
            match check_header(&hs, records) {
                Ok(n) => need = n,
                Err(why) => return Parse::Malformed(why),
            }
        }
    }
    // The loop ends only once `need` is known and `hs` holds that many (>= 4) bytes.
    let body = need.and_then(|n| hs.get(4..n)).unwrap_or_default();
    match parse_body(body) {
        Ok(mut h) => {
            h.record_version = record_version;
            h.records = records;
            h.consumed = pos;
            Parse::Hello(Box::new(h))
        }
        Err(why) => Parse::Malformed(why),
    }
}

/// The ClientHello's total length (with its 4-byte header) once `hs` holds the header, or
/// why not: another handshake type, or longer than the records that may carry it could be
/// (each record takes 5 header bytes: `records` of them at least).
fn check_header(hs: &[u8], records: usize) -> Result<Option<usize>, &'static str> {
    let Some(h) = hs.get(..4) else {
        return Ok(None);
    };
    if h[0] != 1 {
        return Err("the first handshake message is not a ClientHello");
    }
    let n = 4 + (usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]));
    if n > MAX_HELLO.saturating_sub(5 * records) {
        return Err("a ClientHello longer than MAX_HELLO");
    }
    Ok(Some(n))
}

/// NeedMore, unless the input already holds MAX_HELLO bytes (cannot happen given the checks
/// above, which reject any record reaching past MAX_HELLO; kept as the stated guarantee).
fn more_or_bounded(len: usize) -> Parse {
    if len >= MAX_HELLO {
        Parse::Malformed("the ClientHello's records exceed MAX_HELLO bytes")
    } else {
        Parse::NeedMore
    }
}

/// A bounds-checked reader over one vector.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        if n > self.b.len() {
            return Err(what);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, &'static str> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a 1-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }
    /// A vector with a 2-byte length.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

fn u16_list(b: &[u8], what: &'static str) -> Result<Vec<u16>, &'static str> {
    if !b.len().is_multiple_of(2) {
        return Err(what);
    }
    Ok(b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// The ClientHello body (after the 4-byte handshake header), exactly.
fn parse_body(body: &[u8]) -> Result<ClientHello, &'static str> {
    let mut r = Reader::new(body);
    let mut h = ClientHello {
        legacy_version: r.u16("ClientHello truncated in its version")?,
        ..ClientHello::default()
    };
    r.take(32, "ClientHello truncated in its random")?;
    let sid = r.vec8("session id longer than the ClientHello")?;
    if sid.len() > 32 {
        return Err("session id longer than 32 bytes");
    }
    h.session_id = sid.to_vec();
    let cs = r.vec16("cipher suites longer than the ClientHello")?;
    h.ciphers = u16_list(cs, "cipher suites of odd length")?;
    h.compression_methods = r
        .vec8("compression methods longer than the ClientHello")?
        .to_vec();
    if r.is_empty() {
        return Ok(h); // no extensions at all
    }
    let exts = r.vec16("extensions longer than the ClientHello")?;
    if !r.is_empty() {
        return Err("bytes after the extensions");
    }
    let mut r = Reader::new(exts);
    let mut seen = Seen::default();
    while !r.is_empty() {
        let ty = r.u16("extension truncated in its type")?;
        let data = r.vec16("extension longer than the extension block")?;
        h.extensions.push(ty);
        if seen.first(ty) {
            parse_extension(&mut h, ty, data)?;
        }
    }
    Ok(h)
}

/// Which of the parsed extension types were already seen (duplicates: the first one wins).
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn first(&mut self, ty: u16) -> bool {
        let bit = match ty {
            ext::SERVER_NAME => 1,
            ext::SUPPORTED_GROUPS => 2,
            ext::EC_POINT_FORMATS => 4,
            ext::SIGNATURE_ALGORITHMS => 8,
            ext::ALPN => 16,
            ext::SUPPORTED_VERSIONS => 32,
            _ => return false,
        };
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

fn parse_extension(h: &mut ClientHello, ty: u16, data: &[u8]) -> Result<(), &'static str> {
    if data.is_empty() {
        return Ok(()); // present, empty: read as an empty list
    }
    let mut r = Reader::new(data);
    match ty {
        ext::SERVER_NAME => {
            let list = r.vec16("server_name list longer than its extension")?;
            let mut l = Reader::new(list);
            while !l.is_empty() {
                let kind = l.u8("server_name entry truncated")?;
                let name = l.vec16("server_name longer than its list")?;
                if kind == 0 && h.sni.is_none() {
                    h.sni = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        ext::ALPN => {
            let list = r.vec16("ALPN list longer than its extension")?;
            let mut l = Reader::new(list);
            while !l.is_empty() {
                h.alpn
                    .push(l.vec8("ALPN name longer than its list")?.to_vec());
            }
        }
        ext::SUPPORTED_GROUPS => {
            let list = r.vec16("supported_groups longer than its extension")?;
            h.supported_groups = u16_list(list, "supported_groups of odd length")?;
        }
        ext::EC_POINT_FORMATS => {
            h.ec_point_formats = r
                .vec8("ec_point_formats longer than its extension")?
                .to_vec();
        }
        ext::SIGNATURE_ALGORITHMS => {
            let list = r.vec16("signature_algorithms longer than its extension")?;
            h.signature_algorithms = u16_list(list, "signature_algorithms of odd length")?;
        }
        ext::SUPPORTED_VERSIONS => {
            let list = r.vec8("supported_versions longer than its extension")?;
            h.supported_versions = u16_list(list, "supported_versions of odd length")?;
        }
        _ => return Ok(()),
    }
    if !r.is_empty() {
        return Err("bytes after an extension's list");
    }
    Ok(())
}

/// `a-b-c` of the non-GREASE values, in decimal.
fn dash_join<T: Copy + Into<u32>>(v: &[T], drop_grease: bool) -> String {
    let mut s = String::new();
    for &x in v {
        let x: u32 = x.into();
        if drop_grease && u16::try_from(x).is_ok_and(is_grease) {
            continue;
        }
        if !s.is_empty() {
            s.push('-');
        }
        s.push_str(&x.to_string());
    }
    s
}

/// 4-digit lowercase hex, comma-separated.
fn hex_join(v: &[u16]) -> String {
    v.iter()
        .map(|x| format!("{x:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The first 12 hex digits of the sha256 of `s`; `000000000000` for an empty `s`.
fn sha12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let mut h = hex::encode(Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

fn no_grease(v: &[u16]) -> Vec<u16> {
    v.iter().copied().filter(|&x| !is_grease(x)).collect()
}

impl ClientHello {
    /// The JA3 string: `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`.
    pub fn ja3_string(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.legacy_version,
            dash_join(&self.ciphers, true),
            dash_join(&self.extensions, true),
            dash_join(&self.supported_groups, true),
            dash_join(&self.ec_point_formats, false),
        )
    }

    /// JA3: the md5 of [`Self::ja3_string`], lowercase hex.
    pub fn ja3(&self) -> String {
        hex::encode(Md5::digest(self.ja3_string().as_bytes()))
    }

    /// The highest non-GREASE supported_versions entry, else `legacy_version`.
    pub fn max_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|&v| !is_grease(v))
            .max()
            .unwrap_or(self.legacy_version)
    }

    /// JA4's first part, e.g. `t13d1516h2`.
    fn ja4_a(&self) -> String {
        let version = match self.max_version() {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0002 => "s2",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let sni = if self.extensions.contains(&ext::SERVER_NAME) {
            'd'
        } else {
            'i'
        };
        let ciphers = self.ciphers.iter().filter(|&&c| !is_grease(c)).count();
        let exts = self.extensions.iter().filter(|&&e| !is_grease(e)).count();
        let alpn = match self.alpn.first() {
            Some(a) if !a.is_empty() => {
                let (f, l) = (a[0], a[a.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", f as char, l as char)
                } else {
                    // The first hex digit of the first byte and the last of the last byte.
                    let fh = format!("{f:02x}");
                    let lh = format!("{l:02x}");
                    format!("{}{}", &fh[..1], &lh[1..])
                }
            }
            _ => "00".into(),
        };
        format!(
            "t{version}{sni}{:02}{:02}{alpn}",
            ciphers.min(99),
            exts.min(99)
        )
    }

    /// JA4's sorted cipher list and extension (+ signature algorithm) string, unhashed.
    fn ja4_bc(&self) -> (String, String) {
        let mut ciphers = no_grease(&self.ciphers);
        ciphers.sort_unstable();
        let mut exts: Vec<u16> = no_grease(&self.extensions)
            .into_iter()
            .filter(|&e| e != ext::SERVER_NAME && e != ext::ALPN)
            .collect();
        exts.sort_unstable();
        let mut c = hex_join(&exts);
        let sigs = no_grease(&self.signature_algorithms);
        if !sigs.is_empty() {
            c.push('_');
            c.push_str(&hex_join(&sigs));
        }
        (hex_join(&ciphers), c)
    }

    /// JA4 (TLS client, over TCP), e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub fn ja4(&self) -> String {
        let (b, c) = self.ja4_bc();
        format!("{}_{}_{}", self.ja4_a(), sha12(&b), sha12(&c))
    }

    /// JA4 unhashed (`ja4_r`): `a_ciphers_extensions_sigalgs`.
    pub fn ja4_raw(&self) -> String {
        let (b, c) = self.ja4_bc();
        format!("{}_{}_{}", self.ja4_a(), b, c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Builds ClientHello bytes field by field.
    #[derive(Clone)]
    struct Builder {
        version: u16,
        session_id: Vec<u8>,
        ciphers: Vec<u16>,
        compression: Vec<u8>,
        /// None: no extension block at all.
        exts: Option<Vec<(u16, Vec<u8>)>>,
    }

    fn be16(v: usize) -> [u8; 2] {
        u16::try_from(v).unwrap().to_be_bytes()
    }

    fn list16(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    /// A 2-byte-length vector.
    fn v16(b: &[u8]) -> Vec<u8> {
        let mut o = be16(b.len()).to_vec();
        o.extend_from_slice(b);
        o
    }

    /// A 1-byte-length vector.
    fn v8(b: &[u8]) -> Vec<u8> {
        let mut o = vec![u8::try_from(b.len()).unwrap()];
        o.extend_from_slice(b);
        o
    }

    fn sni(name: &str) -> Vec<u8> {
        let mut entry = vec![0u8];
        entry.extend(v16(name.as_bytes()));
        v16(&entry)
    }

    fn alpn(names: &[&[u8]]) -> Vec<u8> {
        v16(&names.iter().flat_map(|n| v8(n)).collect::<Vec<_>>())
    }

    impl Builder {
        fn body(&self) -> Vec<u8> {
            let mut b = self.version.to_be_bytes().to_vec();
            b.extend([0x42; 32]);
            b.extend(v8(&self.session_id));
            b.extend(v16(&list16(&self.ciphers)));
            b.extend(v8(&self.compression));
            if let Some(exts) = &self.exts {
                let mut e = Vec::new();
                for (ty, data) in exts {
                    e.extend(ty.to_be_bytes());
                    e.extend(v16(data));
                }
                b.extend(v16(&e));
            }
            b
        }

        fn handshake(&self) -> Vec<u8> {
            let body = self.body();
            let n = u32::try_from(body.len()).unwrap().to_be_bytes();
            let mut h = vec![1, n[1], n[2], n[3]];
            h.extend(body);
            h
        }

        /// The handshake message in records of at most `chunk` bytes.
        fn records(&self, chunk: usize) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, c) in self.handshake().chunks(chunk).enumerate() {
                out.push(0x16);
                out.extend(if i == 0 { [3, 1] } else { [3, 3] });
                out.extend(be16(c.len()));
                out.extend_from_slice(c);
            }
            out
        }

        fn bytes(&self) -> Vec<u8> {
            self.records(MAX_RECORD)
        }
    }

    /// A Chrome-like ClientHello with exactly the ciphers, extensions and signature algorithms
    /// of the JA4 specification's own example (`t13d1516h2_8daaf6152771_e5627efa2ab1`), plus
    /// GREASE in the ciphers, extensions, groups and versions, SNI and ALPN h2/http/1.1.
    fn chrome() -> Builder {
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        Builder {
            version: 0x0303,
            session_id: vec![7; 32],
            ciphers: vec![
                0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            compression: vec![0],
            exts: Some(vec![
                (0x0a0a, vec![]),
                (0x0000, sni("www.example.test")),
                (0x0017, vec![]),
                (0xff01, vec![0]),
                (0x000a, v16(&list16(&[0x2a2a, 0x001d, 0x0017, 0x0018]))),
                (0x000b, v8(&[0])),
                (0x0023, vec![]),
                (0x0010, alpn(&[b"h2", b"http/1.1"])),
                (0x0005, vec![1, 0, 0, 0, 0]),
                (0x000d, v16(&list16(&sigs))),
                (0x0012, vec![]),
                (0x0033, v16(&[0x00, 0x1d, 0x00, 0x02, 0xaa, 0xbb])),
                (0x002d, v8(&[1])),
                (0x002b, v8(&list16(&[0x3a3a, 0x0304, 0x0303]))),
                (0x001b, v8(&[0, 2])),
                (0x4469, v16(&v8(b"h2"))),
                (0x1a1a, vec![0]),
                (0x0015, vec![0; 20]),
            ]),
        }
    }

    fn hello(b: &[u8]) -> ClientHello {
        match parse(b) {
            Parse::Hello(h) => *h,
            other => panic!("not a Hello: {other:?}"),
        }
    }

    #[test]
    fn chrome_like_hello_every_field_ja3_ja4() {
        let h = hello(&chrome().bytes());
        assert_eq!(h.record_version, 0x0301);
        assert_eq!(h.legacy_version, 0x0303);
        assert_eq!(h.session_id, vec![7; 32]);
        assert_eq!(h.ciphers, chrome().ciphers);
        assert_eq!(h.compression_methods, vec![0]);
        assert_eq!(
            h.extensions,
            vec![
                0x0a0a, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d,
                0x0012, 0x0033, 0x002d, 0x002b, 0x001b, 0x4469, 0x1a1a, 0x0015
            ]
        );
        assert_eq!(h.sni.as_deref(), Some("www.example.test"));
        assert_eq!(h.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(h.supported_groups, vec![0x2a2a, 0x001d, 0x0017, 0x0018]);
        assert_eq!(h.ec_point_formats, vec![0]);
        assert_eq!(
            h.signature_algorithms,
            vec![0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
        );
        assert_eq!(h.supported_versions, vec![0x3a3a, 0x0304, 0x0303]);
        assert_eq!(h.max_version(), 0x0304);
        assert_eq!((h.records, h.consumed), (1, chrome().bytes().len()));

        // JA3: 771 (0x0303), the ciphers, extensions and groups in wire order without GREASE
        // (0x0a0a, 0x1a1a, 0x2a2a), point formats as sent. md5 by `md5sum`; it is the well-known
        // JA3 of Chrome, which this hello imitates.
        assert_eq!(
            h.ja3_string(),
            "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
             0-23-65281-10-11-35-16-5-13-18-51-45-43-27-17513-21,29-23-24,0"
        );
        assert_eq!(h.ja3(), "cd08e31494f9531f560d64c695473da9");

        // JA4 by hand:
        // a: t (TCP), 13 (supported_versions' highest non-GREASE is 0x0304), d (SNI present),
        //    15 ciphers (16 less one GREASE), 16 extensions (18 less two GREASE; SNI and ALPN
        //    counted), h2 (first and last characters of the first ALPN value "h2").
        // b: the 15 ciphers sorted, 4-digit hex, comma-joined; sha256, first 12 hex digits.
        // c: the extensions sorted without GREASE, SNI (0000) and ALPN (0010), then "_" and the
        //    signature algorithms in wire order; sha256, first 12 hex digits.
        // Both strings and hashes are the ones in the JA4 specification's example (checked
        // with `printf %s ... | sha256sum`).
        assert_eq!(
            h.ja4_raw(),
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,\
             cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,\
             0804,0401,0503,0805,0501,0806,0601"
        );
        assert_eq!(h.ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    /// TLS 1.2, no SNI, a non-alphanumeric ALPN value, cut into 7-byte records.
    fn tls12() -> Builder {
        Builder {
            version: 0x0303,
            session_id: vec![],
            ciphers: vec![0x0035, 0x002f, 0x000a, 0x5a5a],
            compression: vec![0],
            exts: Some(vec![
                (0x000d, v16(&list16(&[0x0401, 0x0503]))),
                (0x000b, v8(&[0, 1, 2])),
                (0x0010, alpn(&[&[0xab, 0xcd], b"x"])),
                (0x000a, v16(&list16(&[0x0017]))),
                (0xfafa, vec![]),
            ]),
        }
    }

    #[test]
    fn tls12_hello_in_many_records() {
        let bytes = tls12().records(7);
        let h = hello(&bytes);
        assert!(h.records > 10);
        assert_eq!(h.consumed, bytes.len());
        assert_eq!(h.sni, None);
        assert!(h.supported_versions.is_empty());
        assert_eq!(h.max_version(), 0x0303);
        assert_eq!(h.ja3_string(), "771,53-47-10,13-11-16-10,23,0-1-2");
        assert_eq!(h.ja3(), "bc3be7c90c9c290369c2c8805ebe15f6");
        // a: t, 12 (legacy version, no supported_versions), i (no SNI), 03 ciphers (GREASE
        //    0x5a5a ignored), 04 extensions (GREASE 0xfafa ignored), "ad": the first ALPN value
        //    is 0xab 0xcd, not alphanumeric, so the first hex digit of its first byte and the last
        //    hex digit of its last byte.
        // b: sha256("000a,002f,0035") = 5704bdfc91c6...
        // c: sha256("000a,000b,000d_0401,0503") = 7800b3e54c1c... (ALPN left out)
        assert_eq!(
            h.ja4_raw(),
            "t12i0304ad_000a,002f,0035_000a,000b,000d_0401,0503"
        );
        assert_eq!(h.ja4(), "t12i0304ad_5704bdfc91c6_7800b3e54c1c");
        // Same hello in one record: same fields but the record bookkeeping.
        let one = hello(&tls12().bytes());
        assert_eq!(one.records, 1);
        assert_eq!(one.ja4(), h.ja4());
        assert_eq!(one.extensions, h.extensions);
    }

    #[test]
    fn hello_without_extensions() {
        let b = Builder {
            version: 0x0301,
            session_id: vec![],
            ciphers: vec![0xc02f],
            compression: vec![0],
            exts: None,
        };
        let h = hello(&b.bytes());
        assert!(h.extensions.is_empty());
        assert_eq!(h.ja3_string(), "769,49199,,,");
        assert_eq!(h.ja3(), "1bff29ff415ef481b4b9384825d0792f");
        // sha256("c02f") = f06271c2b022...; no extensions, no signature algorithms: zeros.
        assert_eq!(h.ja4_raw(), "t10i010000_c02f_");
        assert_eq!(h.ja4(), "t10i010000_f06271c2b022_000000000000");
    }

    #[test]
    fn alpn_and_version_edge_cases() {
        let mut b = tls12();
        b.exts = Some(vec![(0x0010, alpn(&[b"h"]))]);
        assert!(hello(&b.bytes()).ja4().starts_with("t12i0301hh_"));
        b.exts = Some(vec![(0x0010, alpn(&[b"h2x!"]))]);
        // 'h' is alphanumeric but '!' is not: hex digits of both, '6' of 0x68, '1' of 0x21.
        assert!(hello(&b.bytes()).ja4().starts_with("t12i030161_"));
        b.exts = Some(vec![(0x002b, v8(&list16(&[0x0302, 0x7a7a])))]);
        assert_eq!(hello(&b.bytes()).max_version(), 0x0302);
        assert!(hello(&b.bytes()).ja4().starts_with("t11i0301"));
        b.exts = Some(vec![(0x002b, v8(&list16(&[0x7f1c])))]);
        assert!(hello(&b.bytes()).ja4().starts_with("t00i0301"));
        b.version = 0x0300;
        b.exts = None;
        assert!(hello(&b.bytes()).ja4().starts_with("ts3i0300"));
    }

    #[test]
    fn every_prefix_needs_more_and_trailing_bytes_are_ignored() {
        for bytes in [chrome().bytes(), tls12().records(7), tls12().records(1)] {
            let whole = hello(&bytes);
            for i in 0..bytes.len() {
                assert_eq!(parse(&bytes[..i]), Parse::NeedMore, "prefix of {i} bytes");
            }
            let mut more = bytes.clone();
            more.extend(b"\x17\x03\x03\x00\x05hello and anything else");
            assert_eq!(hello(&more), whole);
        }
    }

    #[test]
    fn byte_flips_never_panic_and_prefixes_agree() {
        let bytes = chrome().bytes();
        let start = Instant::now();
        for i in 0..bytes.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let whole = parse(&b);
                if let Parse::Hello(h) = &whole {
                    assert!(h.consumed <= b.len());
                    assert_eq!(h.ja3().len(), 32);
                    assert_eq!(h.ja4().len(), 36);
                }
                // A function of the prefix: NeedMore, or what the whole says.
                for cut in [i / 2, i, i + 1, b.len() / 2] {
                    let prefix = parse(&b[..cut.min(b.len())]);
                    assert!(
                        prefix == Parse::NeedMore || prefix == whole,
                        "flip {i}, cut {cut}"
                    );
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// The chrome hello's handshake body, its offsets, and a way to rebuild the record.
    fn with_body(f: impl FnOnce(&mut Vec<u8>)) -> Parse {
        let mut hs = chrome().handshake();
        f(&mut hs);
        let mut rec = vec![0x16, 3, 1];
        rec.extend(be16(hs.len()));
        rec.extend(hs);
        parse(&rec)
    }

    #[test]
    fn lying_lengths() {
        // Handshake header (4) + version (2) + random (32) = 38: the session id length.
        let m = |p: Parse| matches!(p, Parse::Malformed(_));
        assert!(m(with_body(|hs| hs[38] = 33)), "session id > 32");
        assert!(m(with_body(|hs| hs[38] = 200)), "session id past the end");
        // Cipher suites length at 38 + 1 + 32 = 71.
        assert!(m(with_body(|hs| hs[72] += 1)), "odd cipher length");
        assert!(m(with_body(|hs| hs[71] = 0xff)), "ciphers past the end");
        // Compression length after the 32 cipher bytes: 71 + 2 + 32 = 105.
        assert!(m(with_body(|hs| hs[105] = 0xff)));
        // Extension block length at 105 + 1 + 1 = 107.
        assert!(
            m(with_body(|hs| hs[108] = hs[108].wrapping_add(1))),
            "block too long"
        );
        assert!(
            m(with_body(|hs| hs[108] = hs[108].wrapping_sub(1))),
            "block too short"
        );
        let after = with_body(|hs| {
            hs.push(0);
            let n = u32::try_from(hs.len() - 4).unwrap().to_be_bytes();
            hs[1..4].copy_from_slice(&n[1..]);
        });
        assert!(m(after), "bytes after the extensions");
        // The handshake length says more than the records hold: the rest may still come.
        assert_eq!(
            with_body(|hs| hs[3] = hs[3].wrapping_add(1)),
            Parse::NeedMore
        );
        // ... unless it is beyond any bound.
        assert!(m(with_body(
            |hs| hs[1..4].copy_from_slice(&[0xff, 0xff, 0xff])
        )));
        assert!(m(with_body(|hs| hs[0] = 2)), "a ServerHello");
        // Records: longer than 2^14, empty, or another content type mid-hello.
        assert!(m(parse(&[0x16, 3, 1, 0x40, 0x01])));
        assert!(m(parse(&[0x16, 3, 1, 0, 0])));
        let mut b = tls12().records(7);
        b[12] = 0x17;
        assert!(m(parse(&b)), "application data inside the hello");
        // An extension whose inner list overruns it, and one whose list leaves bytes over.
        let mut c = chrome();
        c.exts = Some(vec![(0x000a, vec![0, 8, 0, 0x1d])]);
        assert!(m(parse(&c.bytes())));
        c.exts = Some(vec![(0x0010, vec![0, 3, 2, b'h', b'2', 0])]);
        assert!(m(parse(&c.bytes())));
        c.exts = Some(vec![(0x002b, vec![3, 3, 4, 3])]);
        assert!(m(parse(&c.bytes())), "odd supported_versions");
        c.exts = Some(vec![(0x0000, vec![0, 5, 0, 0, 9, b'a', b'b'])]);
        assert!(m(parse(&c.bytes())), "host name past its list");
    }

    #[test]
    fn zero_length_extensions_are_empty_lists() {
        let mut b = chrome();
        b.exts = Some(
            [
                0x0000, 0x000a, 0x000b, 0x000d, 0x0010, 0x002b, 0x0017, 0x9999,
            ]
            .into_iter()
            .map(|t| (t, vec![]))
            .collect(),
        );
        let h = hello(&b.bytes());
        assert_eq!(h.extensions.len(), 8);
        assert_eq!(h.sni, None);
        assert!(h.alpn.is_empty() && h.supported_groups.is_empty());
        assert!(h.ec_point_formats.is_empty() && h.signature_algorithms.is_empty());
        assert!(h.supported_versions.is_empty());
        // SNI extension present (if empty): 'd'; no ALPN value: "00"; no sigalgs: no '_'.
        assert_eq!(
            h.ja4_raw(),
            "t12d150800_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,\
             cca9_000a,000b,000d,0017,002b,9999"
        );
    }

    #[test]
    fn duplicate_extensions_first_wins() {
        let mut b = tls12();
        b.exts = Some(vec![
            (0x0000, sni("first.test")),
            (0x0000, sni("second.test")),
            (0x0010, alpn(&[b"h2"])),
            (0x0010, alpn(&[b"x"])),
        ]);
        let h = hello(&b.bytes());
        assert_eq!(h.sni.as_deref(), Some("first.test"));
        assert_eq!(h.alpn, vec![b"h2".to_vec()]);
        assert_eq!(h.extensions, vec![0, 0, 0x10, 0x10]);
        assert!(h.ja4().starts_with("t12d0304h2_"));
    }

    #[test]
    fn thousands_of_extensions_bounded() {
        let many = |n: u16| {
            let mut b = tls12();
            b.exts = Some((0..n).map(|i| (0x1000 + i, vec![])).collect());
            b
        };
        let start = Instant::now();
        // 10,000 empty extensions are 40,000 bytes: more than MAX_HELLO, refused from the
        // handshake header alone, whether all the bytes are there or not.
        let ten_k = many(10_000).bytes();
        assert!(matches!(parse(&ten_k), Parse::Malformed(_)));
        assert!(matches!(parse(&ten_k[..9]), Parse::Malformed(_)));
        // 8,000 (32 KB, two records) fit and parse.
        let h = hello(&many(8_000).bytes());
        assert_eq!(h.extensions.len(), 8_000);
        assert_eq!(h.records, 2);
        assert!(h.ja4().starts_with("t12i0399"), "the count is capped at 99");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn never_needs_more_than_max_hello() {
        // 1-byte records: 6 bytes per handshake byte, so the bound is reached mid-hello.
        let b = chrome().records(1);
        assert!(
            matches!(parse(&b), Parse::Hello(_)),
            "chrome is small enough"
        );
        let mut big = tls12();
        big.exts = Some(vec![(0x9999, vec![0; 8000])]);
        let b = big.records(1);
        assert!(b.len() > MAX_HELLO);
        assert!(matches!(parse(&b), Parse::Malformed(_)));
        assert!(matches!(parse(&b[..MAX_HELLO]), Parse::Malformed(_)));
        assert_eq!(parse(&b[..MAX_HELLO - 6]), Parse::NeedMore);
    }

    #[test]
    fn not_tls() {
        for b in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x80\x2e\x01\x00\x02\x00\x15", // an SSLv2-format ClientHello
            b"\x16\x02",
            b"\x16\x03\x05",
            b"\x17\x03\x03\x00\x10",
            b"\x00",
        ] {
            assert_eq!(parse(b), Parse::NotTls, "{b:?}");
        }
        for b in [&b""[..], b"\x16", b"\x16\x03", b"\x16\x03\x01\x02"] {
            assert_eq!(parse(b), Parse::NeedMore, "{b:?}");
        }
    }

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(all[0], 0x0a0a);
        assert_eq!(all[15], 0xfafa);
    }
}
