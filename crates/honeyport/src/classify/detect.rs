//! Protocol detection from a client's first bytes: what it sent before (or instead of)
//! answering a server banner.
//!
//! Pure: no I/O, no allocation, no panics. [`detect`] is a function of everything the client
//! sent so far: the caller peeks, calls it, and reads more while it says
//! [`Verdict::NeedMore`], which it only says while the input is a strict prefix of some
//! pattern and shorter than [`MAX_NEED`] bytes. The work is a few byte comparisons per
//! pattern, plus one pass over at most [`TEXT_SCAN`] bytes when nothing matches.
//!
//! # The table
//!
//! [`TABLE`] is the one list of patterns; each has its test vectors (what real clients send,
//! written from the protocol specifications), checked by the unit tests and the `detect` fuzz
//! target. To add a protocol: add a [`Proto`] variant (and its name), write a matcher, add a
//! [`Pattern`] with at least one vector.
//!
//! Each matcher answers [`Match::Yes`], [`Match::No`] or [`Match::More`] and must be
//! *monotone*: `Yes` and `No` are final (the same for every extension of the input), `More`
//! only while the input could still become a `Yes`, and never on [`MAX_NEED`] bytes or more.
//! [`detect`] walks the table in order and the first matcher that is not `No` decides: `Yes`
//! is [`Verdict::Known`], `More` is [`Verdict::NeedMore`] (a later pattern never wins while
//! an earlier one is undecided). Hence order is priority, and detection is stable: once an
//! input is `Known(p)`, every extension of it is `Known(p)` too.
//!
//! # Priorities and overlaps
//!
//! - Binary protocols whose clients send a short greeting and wait (SOCKS4 and SOCKS5: 3 to 9
//!   bytes) come before MongoDB, whose header has no magic in its first 12 bytes (a length,
//!   a request id, zero). A MongoDB message whose little-endian length happens to read as a
//!   SOCKS greeting (low byte 4 or 5, ...) is taken for SOCKS; no real driver's first
//!   message is that short, but a 261-byte one could be.
//! - HTTP `OPTIONS sip:...`/`OPTIONS sips:...` is SIP; any other `OPTIONS` target is HTTP
//!   (the SIP pattern comes first and the HTTP one waits for the target's first bytes).
//! - `CONNECT ` is always [`Proto::HttpConnect`] (a proxy probe), never plain HTTP;
//!   `PRI * HTTP/2.0` is only HTTP/2 (PRI is not an HTTP/1 method here).
//! - Text commands shared by several protocols are given to one, by ownership, not order:
//!   `QUIT`, `NOOP`, `HELP`, `RSET` and `AUTH <mechanism>` are SMTP (also POP3's and Redis'
//!   `AUTH`); `AUTH TLS`/`AUTH SSL`/`AUTH TLS-C`/`AUTH TLS-P` are FTP (RFC 4217), so FTP
//!   comes before SMTP; `USER`, `PASS`, `LIST`, `RETR`, `DELE`, `STAT` are FTP (also POP3's);
//!   POP3 keeps what is only POP3 (`CAPA`, `STLS`, `APOP`, `UIDL`, `TOP`, `UTF8`).
//! - `INFO sip:` is SIP, `INFO\r\n`/`INFO server` is Redis. `GET `/`SET ` style Redis inline
//!   commands are not Redis (`GET ` is HTTP); redis-cli and the client libraries send RESP
//!   arrays (`*N\r\n$`), which are.
//! - IMAP (`tag SP command`) is last: its tag can be any atom, so it only matches a known
//!   command after it, and a line that begins with another protocol's command is that
//!   protocol.
//! - Commands of SMTP, FTP, POP3, IMAP and Redis are case-insensitive (as their RFCs say);
//!   HTTP, SIP and SSH tokens are case-sensitive.
//!
//! # Not matched (left to [`Verdict::Unknown`])
//!
//! SSLv2-format ClientHellos, a TLS ClientHello whose first record is shorter than 6 bytes,
//! NetBIOS session requests (0x81, port 139), TDS login packets without a prelogin, MongoDB
//! OP_COMPRESSED, DNS UPDATE/NOTIFY, HTTP/0.9 and lowercase HTTP methods.
//!
//! # Text or binary
//!
//! When no pattern matches, the first [`TEXT_SCAN`] bytes are text ([`Proto::UnknownText`])
//! when they contain no NUL and at most 1 in 10 characters is not text; a character is text
//! when it is a printable ASCII character, tab, CR, LF or any non-control Unicode scalar in
//! valid UTF-8. Each byte of an invalid UTF-8 sequence counts as one non-text character; an
//! incomplete UTF-8 sequence at the very end (the client's bytes cut mid-character) is
//! ignored. Everything else is [`Proto::UnknownBinary`].

/// Never ask for more than this many bytes: every matcher decides on `MAX_NEED` bytes.
pub const MAX_NEED: usize = 64;

/// The text/binary decision for unknown input looks at no more than this many bytes.
pub const TEXT_SCAN: usize = 256;

/// A protocol, as detected from a client's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Ssh,
    Tls,
    Http,
    Http2,
    HttpConnect,
    Telnet,
    Smtp,
    Ftp,
    Pop3,
    Imap,
    Rdp,
    Smb1,
    Smb2,
    Redis,
    Mqtt,
    Sip,
    Postgres,
    Tds,
    Mongo,
    Socks4,
    Socks5,
    DnsTcp,
    UnknownBinary,
    UnknownText,
}

impl Proto {
    /// Every protocol, in declaration order.
    pub const ALL: [Proto; 24] = [
        Proto::Ssh,
        Proto::Tls,
        Proto::Http,
        Proto::Http2,
        Proto::HttpConnect,
        Proto::Telnet,
        Proto::Smtp,
        Proto::Ftp,
        Proto::Pop3,
        Proto::Imap,
        Proto::Rdp,
        Proto::Smb1,
        Proto::Smb2,
        Proto::Redis,
        Proto::Mqtt,
        Proto::Sip,
        Proto::Postgres,
        Proto::Tds,
        Proto::Mongo,
        Proto::Socks4,
        Proto::Socks5,
        Proto::DnsTcp,
        Proto::UnknownBinary,
        Proto::UnknownText,
    ];

    /// The stable lowercase name (used in events and configs).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ssh => "ssh",
            Proto::Tls => "tls",
            Proto::Http => "http",
            Proto::Http2 => "http2",
            Proto::HttpConnect => "http-connect",
            Proto::Telnet => "telnet",
            Proto::Smtp => "smtp",
            Proto::Ftp => "ftp",
            Proto::Pop3 => "pop3",
            Proto::Imap => "imap",
            Proto::Rdp => "rdp",
            Proto::Smb1 => "smb1",
            Proto::Smb2 => "smb2",
            Proto::Redis => "redis",
            Proto::Mqtt => "mqtt",
            Proto::Sip => "sip",
            Proto::Postgres => "postgres",
            Proto::Tds => "tds",
            Proto::Mongo => "mongodb",
            Proto::Socks4 => "socks4",
            Proto::Socks5 => "socks5",
            Proto::DnsTcp => "dns-tcp",
            Proto::UnknownBinary => "unknown-binary",
            Proto::UnknownText => "unknown-text",
        }
    }

    /// The protocol whose [`Proto::name`] is `name` (exactly).
    pub fn from_name(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `UnknownBinary` or `UnknownText`.
    pub fn is_unknown(self) -> bool {
        matches!(self, Proto::UnknownBinary | Proto::UnknownText)
    }
}

/// What a client's first bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A pattern of [`TABLE`] matched; never an `Unknown*` protocol.
    Known(Proto),
    /// The input is a strict prefix of some pattern (and shorter than [`MAX_NEED`]); read more.
    NeedMore,
    /// No pattern matches: [`Proto::UnknownBinary`] or [`Proto::UnknownText`].
    Unknown(Proto),
}

/// A matcher's answer; see the module documentation for the monotonicity contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// The input is this pattern, whatever follows.
    Yes,
    /// The input is not this pattern, whatever follows.
    No,
    /// The input is a strict prefix of this pattern.
    More,
}

/// One entry of [`TABLE`].
pub struct Pattern {
    pub proto: Proto,
    /// What is matched, for people.
    pub what: &'static str,
    /// What real clients send; each must match this pattern (and no earlier one).
    pub vectors: &'static [&'static [u8]],
    /// The matcher: monotone, decides on [`MAX_NEED`] bytes, never panics.
    pub matcher: fn(&[u8]) -> Match,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern")
            .field("proto", &self.proto)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// What `first` (everything the client sent so far) is. `NeedMore` only while `first` is
/// empty or a strict prefix of some pattern, and shorter than [`MAX_NEED`] bytes.
pub fn detect(first: &[u8]) -> Verdict {
    if first.is_empty() {
        return Verdict::NeedMore;
    }
    for p in TABLE {
        match (p.matcher)(first) {
            Match::No => {}
            Match::Yes => return Verdict::Known(p.proto),
            // Matchers decide on MAX_NEED bytes; should one not, answering Unknown (rather
            // than letting a later pattern win) keeps Known stable.
            Match::More if first.len() < MAX_NEED => return Verdict::NeedMore,
            Match::More => break,
        }
    }
    Verdict::Unknown(text_or_binary(first))
}

/// [`Proto::UnknownText`] or [`Proto::UnknownBinary`]; see the module documentation.
pub fn text_or_binary(first: &[u8]) -> Proto {
    let mut rest = &first[..first.len().min(TEXT_SCAN)];
    if rest.contains(&0) {
        return Proto::UnknownBinary;
    }
    let (mut chars, mut bad) = (0usize, 0usize);
    let mut count = |s: &str, invalid: usize| {
        for c in s.chars() {
            chars += 1;
            if c.is_control() && !matches!(c, '\t' | '\r' | '\n') {
                bad += 1;
            }
        }
        chars += invalid;
        bad += invalid;
    };
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                count(s, 0);
                break;
            }
            Err(e) => {
                let (ok, after) = rest.split_at(e.valid_up_to());
                let valid = std::str::from_utf8(ok).unwrap_or_default();
                // None: cut in the middle of a character at the end, which is ignored.
                let Some(n) = e.error_len() else {
                    count(valid, 0);
                    break;
                };
                count(valid, n);
                rest = after.get(n..).unwrap_or_default();
            }
        }
    }
    if chars > 0 && bad * 10 <= chars {
        Proto::UnknownText
    } else {
        Proto::UnknownBinary
    }
}

// ---------------------------------------------------------------------------------------------
// Building blocks. All are monotone in the sense of the module documentation.

impl Match {
    /// Yes if either is Yes, else More if either is More, else No.
    fn or(self, other: Match) -> Match {
        match (self, other) {
            (Match::Yes, _) | (_, Match::Yes) => Match::Yes,
            (Match::More, _) | (_, Match::More) => Match::More,
            _ => Match::No,
        }
    }
}

/// `b` starts with `pat` (exact bytes).
fn lit(b: &[u8], pat: &[u8]) -> Match {
    let n = b.len().min(pat.len());
    if b[..n] != pat[..n] {
        Match::No
    } else if n < pat.len() {
        Match::More
    } else {
        Match::Yes
    }
}

/// `b` starts with `pat`, ASCII case-insensitively.
fn lit_ci(b: &[u8], pat: &[u8]) -> Match {
    let n = b.len().min(pat.len());
    if !b[..n].eq_ignore_ascii_case(&pat[..n]) {
        Match::No
    } else if n < pat.len() {
        Match::More
    } else {
        Match::Yes
    }
}

/// A command word, case-insensitive: `w` then SP, CR or LF, unless `w` already ends with a
/// space or a colon (`AUTH `, `MAIL FROM:`).
fn word(b: &[u8], w: &[u8]) -> Match {
    match lit_ci(b, w) {
        Match::Yes if matches!(w.last(), Some(b' ' | b':')) => Match::Yes,
        Match::Yes => match b.get(w.len()) {
            None => Match::More,
            Some(b' ' | b'\r' | b'\n') => Match::Yes,
            Some(_) => Match::No,
        },
        m => m,
    }
}

/// Any of the command words.
fn words(b: &[u8], ws: &[&[u8]]) -> Match {
    ws.iter().fold(Match::No, |m, w| m.or(word(b, w)))
}

/// A fixed-layout header: byte `i` must satisfy `spec[i]`; Yes once all are present.
#[derive(Clone, Copy)]
enum B {
    Is(u8),
    In(u8, u8),
    Any,
}

fn fields(b: &[u8], spec: &[B]) -> Match {
    for (i, s) in spec.iter().enumerate() {
        let Some(&c) = b.get(i) else {
            return Match::More;
        };
        let ok = match *s {
            B::Is(x) => c == x,
            B::In(lo, hi) => (lo..=hi).contains(&c),
            B::Any => true,
        };
        if !ok {
            return Match::No;
        }
    }
    Match::Yes
}

fn be16(b: &[u8], i: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize)
}

fn be24(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_be_bytes([0, *b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?]) as usize)
}

fn be32(b: &[u8], i: usize) -> Option<usize> {
    let x = u32::from_be_bytes([*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, *b.get(i + 3)?]);
    Some(x as usize)
}

#[rustfmt::skip]
fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?, *b.get(i + 3)?]))
}

/// No when a field is present and fails `ok`; otherwise `m`.
fn check(m: Match, field: Option<usize>, ok: impl Fn(usize) -> bool) -> Match {
    match field {
        Some(v) if !ok(v) => Match::No,
        _ => m,
    }
}

// ---------------------------------------------------------------------------------------------
// The matchers, in table order.

/// `SSH-` then a protocol version's major digit and dot (`SSH-2.0-`, `SSH-1.99-`, `SSH-1.5-`).
#[rustfmt::skip]
fn ssh(b: &[u8]) -> Match {
    fields(b, &[B::Is(b'S'), B::Is(b'S'), B::Is(b'H'), B::Is(b'-'), B::In(b'1', b'2'), B::Is(b'.')])
}

/// TLS record: handshake (22), version 3.0..=3.4, length 1..=2^14, then a ClientHello (1)
/// shorter than 64 KiB whose client_version is 3.0..=3.4.
#[rustfmt::skip]
fn tls(b: &[u8]) -> Match {
    use B::*;
    let m = fields(
        b,
        &[Is(0x16), Is(3), In(0, 4), Any, Any, Is(1), Is(0), Any, Any, Is(3), In(0, 4)],
    );
    check(m, be16(b, 3), |len| (1..=0x4000).contains(&len))
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn http2(b: &[u8]) -> Match {
    lit(b, H2_PREFACE)
}

/// `CONNECT ` then the first byte of an authority (not a space or control character).
fn http_connect(b: &[u8]) -> Match {
    match lit(b, b"CONNECT ") {
        Match::Yes => match b.get(8) {
            None => Match::More,
            Some(&c) if c > b' ' && c != 0x7f => Match::Yes,
            Some(_) => Match::No,
        },
        m => m,
    }
}

#[rustfmt::skip]
const SIP_METHODS: &[&[u8]] = &[
    b"OPTIONS", b"REGISTER", b"INVITE", b"ACK", b"BYE", b"CANCEL", b"SUBSCRIBE", b"NOTIFY",
    b"MESSAGE", b"PUBLISH", b"REFER", b"UPDATE", b"PRACK", b"INFO",
];

/// `sip:` or `sips:` (URI schemes are case-insensitive).
fn sip_uri(b: &[u8]) -> Match {
    lit_ci(b, b"sip:").or(lit_ci(b, b"sips:"))
}

/// A SIP request line's start: method (case-sensitive), SP, a `sip:`/`sips:` URI.
fn sip(b: &[u8]) -> Match {
    SIP_METHODS.iter().fold(Match::No, |acc, m| {
        let this = match lit(b, m) {
            Match::Yes => match b.get(m.len()) {
                None => Match::More,
                Some(b' ') => sip_uri(&b[m.len() + 1..]),
                Some(_) => Match::No,
            },
            other => other,
        };
        acc.or(this)
    })
}

#[rustfmt::skip]
const HTTP_METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"PROPFIND",
    b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH", b"REPORT",
    b"MKCALENDAR", b"DEBUG",
];

/// An HTTP/1 request line's method (case-sensitive) and SP; for `OPTIONS`, also a target that
/// is not a SIP URI.
fn http(b: &[u8]) -> Match {
    HTTP_METHODS.iter().fold(Match::No, |acc, m| {
        let this = match lit(b, m) {
            Match::Yes => match b.get(m.len()) {
                None => Match::More,
                Some(b' ') if *m == b"OPTIONS" => {
                    let target = &b[m.len() + 1..];
                    if target.is_empty() {
                        Match::More
                    } else {
                        match sip_uri(target) {
                            Match::Yes => Match::No,
                            Match::More => Match::More,
                            Match::No => Match::Yes,
                        }
                    }
                }
                Some(b' ') => Match::Yes,
                Some(_) => Match::No,
            },
            other => other,
        };
        acc.or(this)
    })
}

/// IAC then WILL, WONT, DO, DONT or SB.
fn telnet(b: &[u8]) -> Match {
    fields(b, &[B::Is(0xff), B::In(0xfa, 0xfe)])
}

/// SOCKS4/4a request: version 4, command CONNECT (1) or BIND (2), port, IPv4 address.
fn socks4(b: &[u8]) -> Match {
    use B::*;
    fields(b, &[Is(4), In(1, 2), Any, Any, Any, Any, Any, Any])
}

/// SOCKS5 greeting (RFC 1928): version 5, 1..=16 methods, each IANA-assigned (0..=9) or
/// private (0x80..=0xfe); 0xff (no acceptable method) is a server's answer only.
fn socks5(b: &[u8]) -> Match {
    let m = fields(b, &[B::Is(5), B::In(1, 16)]);
    if m != Match::Yes {
        return m;
    }
    let n = b[1] as usize;
    let methods = &b[2..b.len().min(2 + n)];
    if methods.iter().any(|&c| !matches!(c, 0..=9 | 0x80..=0xfe)) {
        Match::No
    } else if methods.len() < n {
        Match::More
    } else {
        Match::Yes
    }
}

/// RDP: TPKT (version 3, reserved 0, length), then an X.224 Connection Request whose length
/// indicator covers the rest of the packet, code 0xE0 (credit 0), DST-REF 0.
#[rustfmt::skip]
fn rdp(b: &[u8]) -> Match {
    use B::*;
    let m = fields(b, &[Is(3), Is(0), Any, Any, Any, Is(0xe0), Is(0), Is(0)]);
    let m = check(m, be16(b, 2), |len| len >= 11);
    match (be16(b, 2), b.get(4)) {
        (Some(len), Some(&li)) if li as usize + 5 != len => Match::No,
        _ => m,
    }
}

/// NetBIOS session message (type 0, 24-bit length) then an SMB header's protocol id.
#[rustfmt::skip]
fn smb(b: &[u8], magic: u8, min_len: usize) -> Match {
    use B::*;
    let m = fields(b, &[Is(0), Any, Any, Any, Is(magic), Is(b'S'), Is(b'M'), Is(b'B')]);
    check(m, be24(b, 1), |len| len >= min_len)
}

/// SMB1: `\xffSMB` after the NetBIOS header; the message holds at least the 32-byte header.
fn smb1(b: &[u8]) -> Match {
    smb(b, 0xff, 32)
}

/// SMB2/3: `\xfeSMB` after the NetBIOS (or direct TCP) header; at least the 64-byte header.
fn smb2(b: &[u8]) -> Match {
    smb(b, 0xfe, 64)
}

/// PostgreSQL's first message (big-endian int32 length, int32 code): SSLRequest and
/// GSSENCRequest (length 8), CancelRequest (length 16), StartupMessage (length 16..=10000,
/// protocol 3.x).
fn postgres(b: &[u8]) -> Match {
    const SSL: &[u8] = &[0x04, 0xd2, 0x16, 0x2f]; // 80877103
    const GSS: &[u8] = &[0x04, 0xd2, 0x16, 0x30]; // 80877104
    const CANCEL: &[u8] = &[0x04, 0xd2, 0x16, 0x2e]; // 80877102
    let m = fields(b, &[B::Is(0), B::Is(0)]);
    if m != Match::Yes {
        return m;
    }
    let Some(len) = be32(b, 0) else {
        return Match::More;
    };
    let code = &b[4..];
    let startup = || match fields(code, &[B::Is(0), B::Is(3), B::Is(0), B::Any]) {
        m if (16..=10_000).contains(&len) => m,
        _ => Match::No,
    };
    match len {
        8 => lit(code, SSL).or(lit(code, GSS)),
        16 => lit(code, CANCEL).or(startup()),
        _ => startup(),
    }
}

/// DNS over TCP (RFC 1035 4.2.2): a 2-byte length (17.. bytes), then a standard query's
/// header: QR 0, opcode 0, AA 0, TC 0 (RD free); RA 0, Z 0, RCODE 0 (AD, CD free);
/// QDCOUNT 1..=4, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0..=2 (EDNS OPT, TSIG); then the first label
/// length of the question's name (0..=63).
#[rustfmt::skip]
fn dns_tcp(b: &[u8]) -> Match {
    use B::*;
    let m = fields(
        b,
        &[
            Any, Any, Any, Any, In(0, 1), Any, Is(0), In(1, 4), Is(0), Is(0), Is(0), Is(0), Is(0),
            In(0, 2), In(0, 63),
        ],
    );
    let m = check(m, b.get(5).map(|&f| f as usize), |f| f & 0xcf == 0);
    check(m, be16(b, 0), |len| len >= 17)
}

/// TDS (MS-TDS 2.2.3.1) PRELOGIN packet: type 0x12, status normal or EOM, length 9..=32768,
/// SPID 0, any packet id, window 0, then the VERSION option token (0), which must be first.
#[rustfmt::skip]
fn tds(b: &[u8]) -> Match {
    use B::*;
    let m = fields(b, &[Is(0x12), In(0, 1), Any, Any, Is(0), Is(0), Any, Is(0), Is(0)]);
    check(m, be16(b, 2), |len| (9..=0x8000).contains(&len))
}

/// MQTT CONNECT: packet type 1 with flags 0, remaining length (1..=4 byte varint, at least
/// 12), then protocol name and level: `MQTT` 4 (3.1.1) or 5, or `MQIsdp` 3 (3.1).
fn mqtt(b: &[u8]) -> Match {
    match b.first() {
        None => return Match::More,
        Some(0x10) => {}
        Some(_) => return Match::No,
    }
    let (mut remaining, mut i) = (0usize, 1usize);
    loop {
        let Some(&c) = b.get(i) else {
            return Match::More;
        };
        remaining |= ((c & 0x7f) as usize) << (7 * (i - 1));
        i += 1;
        if c & 0x80 == 0 {
            break;
        }
        if i == 5 {
            return Match::No;
        }
    }
    if remaining < 12 {
        return Match::No;
    }
    let rest = &b[i..];
    let name = |pat: &[u8], levels: (u8, u8)| match lit(rest, pat) {
        Match::Yes => match rest.get(pat.len()) {
            None => Match::More,
            Some(l) if (levels.0..=levels.1).contains(l) => Match::Yes,
            Some(_) => Match::No,
        },
        m => m,
    };
    name(b"\x00\x04MQTT", (4, 5)).or(name(b"\x00\x06MQIsdp", (3, 3)))
}

/// MongoDB wire protocol header (little-endian): messageLength 21..=48,000,000, any
/// requestID, responseTo 0, opCode OP_QUERY (2004) or OP_MSG (2013).
#[rustfmt::skip]
fn mongo(b: &[u8]) -> Match {
    use B::*;
    let m = fields(
        b,
        &[
            Any, Any, Any, In(0, 2), Any, Any, Any, Any, Is(0), Is(0), Is(0), Is(0),
            Any, Is(0x07), Is(0), Is(0),
        ],
    );
    let m = check(m, le32(b, 0).map(|v| v as usize), |len| (21..=48_000_000).contains(&len));
    check(m, b.get(12).map(|&c| c as usize), |c| c == 0xd4 || c == 0xdd)
}

#[rustfmt::skip]
const FTP_WORDS: &[&[u8]] = &[
    b"USER", b"PASS", b"ACCT", b"AUTH TLS", b"AUTH SSL", b"AUTH TLS-C", b"AUTH TLS-P", b"FEAT",
    b"SYST", b"PASV", b"EPSV", b"EPRT", b"PORT", b"TYPE", b"PWD", b"XPWD", b"CWD", b"CDUP", b"MKD",
    b"RMD", b"LIST", b"NLST", b"MLSD", b"MLST", b"RETR", b"STOR", b"DELE", b"SIZE", b"MDTM",
    b"OPTS", b"SITE", b"PBSZ", b"PROT", b"REST", b"ABOR", b"STAT", b"HOST", b"CLNT",
];

fn ftp(b: &[u8]) -> Match {
    words(b, FTP_WORDS)
}

#[rustfmt::skip]
const SMTP_WORDS: &[&[u8]] = &[
    b"EHLO", b"HELO", b"LHLO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"BDAT", b"RSET", b"VRFY",
    b"EXPN", b"NOOP", b"QUIT", b"HELP", b"STARTTLS", b"AUTH ", b"ETRN",
];

fn smtp(b: &[u8]) -> Match {
    words(b, SMTP_WORDS)
}

#[rustfmt::skip]
const POP3_WORDS: &[&[u8]] = &[
    b"CAPA", b"STLS", b"APOP", b"UIDL", b"TOP", b"UTF8",
];

fn pop3(b: &[u8]) -> Match {
    words(b, POP3_WORDS)
}

#[rustfmt::skip]
const REDIS_INLINE: &[&[u8]] = &[
    b"PING", b"INFO", b"CONFIG", b"FLUSHALL", b"FLUSHDB", b"SLAVEOF", b"REPLICAOF", b"MODULE",
    b"DBSIZE", b"KEYS", b"CLIENT", b"COMMAND", b"HELLO", b"ECHO", b"SCRIPT", b"EVAL", b"MONITOR",
    b"CLUSTER",
];

/// A RESP array of bulk strings (`*N\r\n$`, N of 1..=4 digits) or an inline command.
fn redis(b: &[u8]) -> Match {
    resp_array(b).or(words(b, REDIS_INLINE))
}

fn resp_array(b: &[u8]) -> Match {
    match b.first() {
        None => return Match::More,
        Some(b'*') => {}
        Some(_) => return Match::No,
    }
    let digits = b[1..]
        .iter()
        .take(5)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits > 4 {
        return Match::No;
    }
    let rest = &b[1 + digits..];
    if rest.is_empty() {
        return Match::More;
    }
    if digits == 0 {
        return Match::No;
    }
    lit(rest, b"\r\n$")
}

#[rustfmt::skip]
const IMAP_COMMANDS: &[&[u8]] = &[
    b"CAPABILITY", b"LOGIN", b"AUTHENTICATE", b"STARTTLS", b"LOGOUT", b"NOOP", b"ID", b"ENABLE",
    b"SELECT", b"EXAMINE", b"LIST", b"LSUB", b"STATUS",
];

/// Longest IMAP tag accepted.
const IMAP_TAG_MAX: usize = 20;

/// An IMAP command (RFC 9051): tag (1..=20 atom characters, not `+`), SP, a command.
fn imap(b: &[u8]) -> Match {
    let tag_char = |c: u8| {
        (0x21..0x7f).contains(&c)
            && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
            && c != b'+'
    };
    for (i, &c) in b.iter().enumerate() {
        if c == b' ' && i > 0 {
            return words(&b[i + 1..], IMAP_COMMANDS);
        }
        if !tag_char(c) || i >= IMAP_TAG_MAX {
            return Match::No;
        }
    }
    Match::More
}

// ---------------------------------------------------------------------------------------------
// The table.

/// Every pattern; order is priority (see the module documentation).
pub static TABLE: &[Pattern] = &[
    Pattern {
        proto: Proto::Ssh,
        what: "SSH identification line: `SSH-` and a version (`2.0`, `1.99`, `1.5`)",
        vectors: &[b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", b"SSH-2.0-libssh2_1.10.0\r\n"],
        matcher: ssh,
    },
    Pattern {
        proto: Proto::Tls,
        what: "TLS handshake record (0x16, 3.0..=3.4) holding a ClientHello (type 1)",
        vectors: &[
            b"\x16\x03\x01\x00\xc6\x01\x00\x00\xc2\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff\x00\x06\x13\x01\x13\x02\x13\x03\x01\x00\x00s\x00\x00\x00\x10\x00\x0e\x00\x00\x0bexample.com\x00\n\x00\x08\x00\x06\x00\x1d\x00\x17\x00\x18\x00\r\x00\n\x00\x08\x04\x03\x08\x04\x04\x01\x05\x03\x00\x10\x00\x0e\x00\x0c\x02h2\x08http/1.1\x00+\x00\x05\x04\x03\x04\x03\x03\x003\x00&\x00$\x00\x1d\x00  !\x22#$%&'()*+,-./0123456789:;<=>?",
            b"\x16\x03\x00\x00/\x01\x00\x00+\x03\x01\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x00\x00\x04\x00/\x005\x01\x00",
        ],
        matcher: tls,
    },
    Pattern {
        proto: Proto::Http2,
        what: "HTTP/2 connection preface `PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n` (prior knowledge)",
        vectors: &[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x40\x00\x00\x00\x00\x02\x00\x00\x00\x00"],
        matcher: http2,
    },
    Pattern {
        proto: Proto::HttpConnect,
        what: "HTTP proxy `CONNECT host:port HTTP/1.x` (decided on `CONNECT ` and the host's first byte)",
        vectors: &[
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n",
            b"CONNECT 198.51.100.7:25 HTTP/1.0\r\n\r\n",
        ],
        matcher: http_connect,
    },
    Pattern {
        proto: Proto::Sip,
        what: "SIP request: method (OPTIONS, REGISTER, INVITE, ...) SP `sip:`/`sips:` URI",
        vectors: &[
            b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.99:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\nTo: <sip:100@192.0.2.10>\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=abc\r\nCall-ID: 12345\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            b"REGISTER sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.99:5060\r\n",
            b"INVITE sips:bob@example.com SIP/2.0\r\n",
        ],
        matcher: sip,
    },
    Pattern {
        proto: Proto::Http,
        what: "HTTP/1 request line: method (GET, POST, HEAD, PUT, DELETE, OPTIONS, PATCH, TRACE, WebDAV, ...) SP; OPTIONS with a non-SIP target",
        vectors: &[
            b"GET / HTTP/1.1\r\nHost: 192.0.2.10\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n",
            b"POST /cgi-bin/luci HTTP/1.1\r\nContent-Length: 5\r\n\r\nx=1&y",
            b"HEAD / HTTP/1.0\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS /index.html HTTP/1.1\r\n\r\n",
            b"PROPFIND / HTTP/1.1\r\nDepth: 1\r\n\r\n",
            b"DELETE /x HTTP/1.1\r\n\r\n",
        ],
        matcher: http,
    },
    Pattern {
        proto: Proto::Telnet,
        what: "telnet option negotiation: IAC (0xff) then WILL, WONT, DO, DONT or SB",
        vectors: &[
            b"\xff\xfb\x1f\xff\xfb\x20\xff\xfb\x18\xff\xfb\x27\xff\xfd\x01\xff\xfb\x03\xff\xfd\x03",
            b"\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0",
            b"\xff\xfd\x03",
        ],
        matcher: telnet,
    },
    Pattern {
        proto: Proto::Socks4,
        what: "SOCKS4/4a request: 4, CONNECT (1) or BIND (2), port, IPv4",
        vectors: &[
            b"\x04\x01\x00\x50\xc0\x00\x02\x0a\x00",
            b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00example.com\x00",
        ],
        matcher: socks4,
    },
    Pattern {
        proto: Proto::Socks5,
        what: "SOCKS5 greeting: 5, nmethods (1..=16), that many methods (0..=9, 0x80..=0xfe)",
        vectors: &[b"\x05\x01\x00", b"\x05\x02\x00\x02"],
        matcher: socks5,
    },
    Pattern {
        proto: Proto::Rdp,
        what: "RDP: TPKT (3, 0, length) + X.224 Connection Request (0xE0), often `Cookie: mstshash=`",
        vectors: &[
            b"\x03\x00\x00/*\xe0\x00\x00\x00\x00\x00Cookie: mstshash=administr\r\n\x01\x00\x08\x00\x03\x00\x00\x00",
            b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00",
        ],
        matcher: rdp,
    },
    Pattern {
        proto: Proto::Smb1,
        what: "SMB1: NetBIOS session message (0, length) + `\\xffSMB`",
        vectors: &[b"\x00\x00\x00h\xffSMBr\x00\x00\x00\x00\x18S\xc8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xfe\x00\x00\x00\x00\x00E\x00\x02PC NETWORK PROGRAM 1.0\x00\x02LANMAN1.0\x00\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00"],
        matcher: smb1,
    },
    Pattern {
        proto: Proto::Smb2,
        what: "SMB2/3: NetBIOS/direct-TCP header (0, length) + `\\xfeSMB`",
        vectors: &[b"\x00\x00\x00l\xfeSMB@\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00$\x00\x04\x00\x01\x00\x00\x00\x7f\x00\x00\x00\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x10\x02\x00\x03\x02\x03"],
        matcher: smb2,
    },
    Pattern {
        proto: Proto::Postgres,
        what: "PostgreSQL StartupMessage (protocol 3.x), SSLRequest, GSSENCRequest or CancelRequest",
        vectors: &[
            b"\x00\x00\x00?\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00application_name\x00psql\x00\x00",
            b"\x00\x00\x00\x08\x04\xd2\x16/",
            b"\x00\x00\x00\x08\x04\xd2\x160",
        ],
        matcher: postgres,
    },
    Pattern {
        proto: Proto::DnsTcp,
        what: "DNS over TCP: 2-byte length + standard query header (QDCOUNT >= 1, no answers)",
        vectors: &[
            b"\x00(\x1f.\x01 \x00\x01\x00\x00\x00\x00\x00\x01\x07example\x03com\x00\x00\x01\x00\x01\x00\x00)\x04\xd0\x00\x00\x00\x00\x00\x00",
            b"\x00\x1e\x00\x06\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07version\x04bind\x00\x00\x10\x00\x03",
        ],
        matcher: dns_tcp,
    },
    Pattern {
        proto: Proto::Tds,
        what: "TDS (MS SQL Server) PRELOGIN packet (type 0x12), VERSION option first",
        vectors: &[b"\x12\x01\x00/\x00\x00\x00\x00\x00\x00\x1a\x00\x06\x01\x00 \x00\x01\x02\x00!\x00\x01\x03\x00\x22\x00\x04\x04\x00&\x00\x01\xff\x0f\x00\x07~\x00\x00\x00\x00\x00\x00\x10H\x00"],
        matcher: tds,
    },
    Pattern {
        proto: Proto::Mqtt,
        what: "MQTT CONNECT (0x10, remaining length, `MQTT` level 4/5 or `MQIsdp` level 3)",
        vectors: &[
            b"\x10\x19\x00\x04MQTT\x04\x02\x00<\x00\rmosq-sub-1234",
            b"\x10\r\x00\x04MQTT\x05\x02\x00<\x00\x00\x00",
            b"\x10\x17\x00\x06MQIsdp\x03\x02\x00<\x00\x09paho12345",
        ],
        matcher: mqtt,
    },
    Pattern {
        proto: Proto::Mongo,
        what: "MongoDB message header: length, request id, responseTo 0, OP_QUERY (2004) or OP_MSG (2013)",
        vectors: &[
            b"A\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00,\x00\x00\x00\x10hello\x00\x01\x00\x00\x00\x10helloOk\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00",
            b":\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\xd4\x07\x00\x00\x00\x00\x00\x00admin.$cmd\x00\x00\x00\x00\x00\xff\xff\xff\xff\x13\x00\x00\x00\x10isMaster\x00\x01\x00\x00\x00\x00",
        ],
        matcher: mongo,
    },
    Pattern {
        proto: Proto::Ftp,
        what: "FTP command (USER, PASS, AUTH TLS/SSL, FEAT, SYST, PASV, ...), case-insensitive",
        vectors: &[
            b"USER anonymous\r\n",
            b"AUTH TLS\r\n",
            b"FEAT\r\n",
            b"SYST\r\n",
            b"user root\r\n",
            b"PASS IEUser@\r\n",
        ],
        matcher: ftp,
    },
    Pattern {
        proto: Proto::Smtp,
        what: "SMTP/ESMTP command (EHLO, HELO, MAIL FROM:, RCPT TO:, STARTTLS, AUTH <mech>, QUIT, ...), case-insensitive",
        vectors: &[
            b"EHLO client.example.com\r\n",
            b"HELO localhost\r\n",
            b"ehlo [192.0.2.99]\r\n",
            b"MAIL FROM:<root@example.com>\r\n",
            b"STARTTLS\r\n",
            b"AUTH LOGIN\r\n",
            b"QUIT\r\n",
        ],
        matcher: smtp,
    },
    Pattern {
        proto: Proto::Pop3,
        what: "POP3-only command (CAPA, STLS, APOP, UIDL, TOP, UTF8), case-insensitive",
        vectors: &[b"CAPA\r\n", b"STLS\r\n", b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"],
        matcher: pop3,
    },
    Pattern {
        proto: Proto::Redis,
        what: "Redis RESP array (`*N\\r\\n$`) or inline command (PING, INFO, CONFIG, SLAVEOF, ...)",
        vectors: &[
            b"*1\r\n$4\r\nPING\r\n",
            b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n",
            b"*3\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n",
            b"PING\r\n",
            b"INFO\r\n",
            b"info server\r\n",
        ],
        matcher: redis,
    },
    Pattern {
        proto: Proto::Imap,
        what: "IMAP tagged command: tag SP CAPABILITY/LOGIN/AUTHENTICATE/STARTTLS/..., case-insensitive",
        vectors: &[
            b"a001 CAPABILITY\r\n",
            b"A1 LOGIN root toor\r\n",
            b"1 capability\r\n",
            b"a002 AUTHENTICATE PLAIN\r\n",
        ],
        matcher: imap,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn known(b: &[u8]) -> Option<Proto> {
        match detect(b) {
            Verdict::Known(p) => Some(p),
            _ => None,
        }
    }

    /// A small deterministic PRNG (xorshift64*), so the random tests need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// The fuzz target's properties, for one input.
    fn assert_properties(input: &[u8], more: &[u8]) {
        let v = detect(input);
        match v {
            Verdict::NeedMore => assert!(input.len() < MAX_NEED, "{input:?}"),
            Verdict::Known(p) => assert!(!p.is_unknown(), "{input:?}"),
            Verdict::Unknown(p) => assert!(p.is_unknown(), "{input:?}"),
        }
        if let Verdict::Known(p) = v {
            let mut longer = input.to_vec();
            longer.extend_from_slice(more);
            assert_eq!(detect(&longer), Verdict::Known(p), "{input:?} + {more:?}");
        }
        if input.len() >= MAX_NEED {
            for pat in TABLE {
                assert_ne!(
                    (pat.matcher)(input),
                    Match::More,
                    "{:?} on {input:?}",
                    pat.proto
                );
            }
        }
    }

    #[test]
    fn every_vector_detects_as_its_proto() {
        for pat in TABLE {
            assert!(!pat.vectors.is_empty(), "{:?} has no vector", pat.proto);
            for v in pat.vectors {
                assert_eq!(
                    detect(v),
                    Verdict::Known(pat.proto),
                    "{:?}: {v:?}",
                    pat.what
                );
            }
        }
    }

    #[test]
    fn every_prefix_of_a_vector_is_need_more_or_its_proto() {
        for pat in TABLE {
            for v in pat.vectors {
                for n in 1..v.len().min(MAX_NEED) {
                    let got = detect(&v[..n]);
                    assert!(
                        got == Verdict::NeedMore || got == Verdict::Known(pat.proto),
                        "{:?}: prefix {:?} is {got:?}",
                        pat.proto,
                        &v[..n]
                    );
                }
            }
        }
    }

    #[test]
    fn vectors_stay_known_whatever_follows() {
        let mut rng = Rng(7);
        for pat in TABLE {
            for v in pat.vectors {
                for _ in 0..20 {
                    let mut longer = v.to_vec();
                    let n = rng.below(100);
                    longer.extend(rng.bytes(n));
                    assert_eq!(detect(&longer), Verdict::Known(pat.proto), "{longer:?}");
                }
            }
        }
    }

    #[test]
    fn the_table_has_a_vector_for_every_known_proto() {
        for p in Proto::ALL {
            let has = TABLE
                .iter()
                .any(|pat| pat.proto == p && !pat.vectors.is_empty());
            assert_eq!(has, !p.is_unknown(), "{p:?}");
        }
        // One pattern per protocol keeps "order is priority" readable.
        for (i, a) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|b| b.proto != a.proto),
                "{:?} twice",
                a.proto
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Proto::ALL {
            assert_eq!(Proto::from_name(p.name()), Some(p));
        }
        assert_eq!(Proto::Mongo.name(), "mongodb");
        assert_eq!(Proto::HttpConnect.name(), "http-connect");
        assert_eq!(Proto::from_name("SSH"), None);
        assert_eq!(Proto::from_name(""), None);
    }

    #[test]
    fn empty_is_need_more() {
        assert_eq!(detect(b""), Verdict::NeedMore);
    }

    #[test]
    fn random_binary_is_unknown_binary() {
        let b = b"\x9c\x8e\x01\xf3\xa7\x00\x42\x99\xde\xad\xbe\xef\x13\x37\xc0\xff\xee\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0\xf1";
        assert_eq!(detect(b), Verdict::Unknown(Proto::UnknownBinary));
        assert_eq!(
            detect(b"\x01\x02\x03\x04\xf0\xf1\xf2\xf3"),
            Verdict::Unknown(Proto::UnknownBinary)
        );
        // Mostly printable but with a NUL: binary.
        assert_eq!(
            detect(b"hello\x00world\r\n"),
            Verdict::Unknown(Proto::UnknownBinary)
        );
        // Invalid UTF-8 and control bytes beyond 1 in 10: binary.
        assert_eq!(
            detect(b"ab\x80\x81\x82cd\x1b\x1b\r\n"),
            Verdict::Unknown(Proto::UnknownBinary)
        );
    }

    #[test]
    fn plain_text_is_unknown_text() {
        assert_eq!(
            detect(b"The quick brown fox jumps over the lazy dog.\r\n"),
            Verdict::Unknown(Proto::UnknownText)
        );
        assert_eq!(detect(b"root\r\n"), Verdict::Unknown(Proto::UnknownText));
        assert_eq!(
            detect("grüß gott, 世界\n".as_bytes()),
            Verdict::Unknown(Proto::UnknownText)
        );
        // Cut in the middle of a UTF-8 character: still text.
        let s = "héllo wörld\n".as_bytes();
        let mut cut = s.to_vec();
        cut.extend_from_slice(&"世".as_bytes()[..2]);
        assert_eq!(detect(&cut), Verdict::Unknown(Proto::UnknownText));
        // Lowercase HTTP methods are not HTTP (methods are case-sensitive).
        assert_eq!(
            detect(b"get / http/1.0\r\n\r\n"),
            Verdict::Unknown(Proto::UnknownText)
        );
        // Long text without a newline: decided by MAX_NEED.
        let long = [b'x'; MAX_NEED];
        assert_eq!(detect(&long), Verdict::Unknown(Proto::UnknownText));
        assert_eq!(text_or_binary(b""), Proto::UnknownBinary);
    }

    #[test]
    fn near_misses_are_not_known() {
        // A truncated TLS record is a prefix: read more.
        assert_eq!(detect(b"\x16\x03\x01\x02\x00"), Verdict::NeedMore);
        assert_eq!(
            detect(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"),
            Verdict::NeedMore
        );
        // ServerHello, a TLS alert, a bad record version, SSLv2: not TLS.
        assert_ne!(
            known(b"\x16\x03\x03\x00\x2a\x02\x00\x00\x26\x03\x03"),
            Some(Proto::Tls)
        );
        assert_ne!(known(b"\x15\x03\x03\x00\x02\x02\x28"), Some(Proto::Tls));
        assert_ne!(
            known(b"\x16\x03\x05\x00\x2a\x01\x00\x00\x26\x03\x03"),
            Some(Proto::Tls)
        );
        assert_ne!(
            known(b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"),
            Some(Proto::Tls)
        );
        // SOCKS5 greeting offering 0xff, and one with too many methods.
        assert_eq!(known(b"\x05\x01\xff"), None);
        // Telnet IAC followed by a plain command byte (NOP) is not negotiation.
        assert_eq!(known(b"\xff\xf1"), None);
        // MQTT with a bad protocol level, and a PUBLISH (not CONNECT).
        assert_eq!(
            known(b"\x10\x19\x00\x04MQTT\x09\x02\x00<\x00\rmosq-sub-1234"),
            None
        );
        assert_eq!(known(b"\x30\x0b\x00\x04test/hello"), None);
        // A DNS response (QR set) is not a query.
        assert_eq!(
            known(b"\x00\x1e\x00\x06\x80\x00\x00\x01\x00\x01\x00\x00\x00\x00\x07version\x04bind\x00\x00\x10\x00\x03"),
            None
        );
        // SMB with a short NetBIOS length.
        assert_eq!(known(b"\x00\x00\x00\x04\xffSMB"), None);
        // SSH- without a version.
        assert_eq!(known(b"SSH-x\r\n"), None);
        // `SSH-2` alone is a prefix.
        assert_eq!(detect(b"SSH-2"), Verdict::NeedMore);
        // Words glued to other letters are not commands.
        assert_eq!(known(b"EHLOX\r\n"), None);
        assert_eq!(known(b"USERS\r\n"), None);
        assert_eq!(known(b"PINGPONG\r\n"), None);
    }

    #[test]
    fn overlaps_resolve_as_documented() {
        let cases: &[(&[u8], Proto)] = &[
            (b"OPTIONS sip:nm SIP/2.0\r\n", Proto::Sip),
            (b"OPTIONS SIP:nm SIP/2.0\r\n", Proto::Sip),
            (b"OPTIONS sips:x SIP/2.0\r\n", Proto::Sip),
            (b"OPTIONS / HTTP/1.1\r\n", Proto::Http),
            (b"OPTIONS site HTTP/1.1\r\n", Proto::Http),
            (b"INFO sip:x SIP/2.0\r\n", Proto::Sip),
            (b"INFO server\r\n", Proto::Redis),
            (b"CONNECT example.com:443 HTTP/1.1\r\n", Proto::HttpConnect),
            (b"AUTH TLS\r\n", Proto::Ftp),
            (b"AUTH SSL\r\n", Proto::Ftp),
            (b"auth tls-c\r\n", Proto::Ftp),
            (b"AUTH PLAIN AHJvb3QAcm9vdA==\r\n", Proto::Smtp),
            (b"AUTH TLSX\r\n", Proto::Smtp),
            (b"USER root\r\n", Proto::Ftp),
            (b"PASS root\r\n", Proto::Ftp),
            (b"LIST\r\n", Proto::Ftp),
            (b"RETR 1\r\n", Proto::Ftp),
            (b"STAT\r\n", Proto::Ftp),
            (b"QUIT\r\n", Proto::Smtp),
            (b"NOOP\r\n", Proto::Smtp),
            (b"RSET\r\n", Proto::Smtp),
            (b"HELLO 3\r\n", Proto::Redis),
            (b"a1 NOOP\r\n", Proto::Imap),
            (b"USER LOGIN x\r\n", Proto::Ftp),
            (b"GET LOGIN\r\n", Proto::Http),
        ];
        for (input, want) in cases {
            assert_eq!(detect(input), Verdict::Known(*want), "{input:?}");
        }
        // The SIP/HTTP decision waits for the target.
        assert_eq!(detect(b"OPTIONS "), Verdict::NeedMore);
        assert_eq!(detect(b"OPTIONS si"), Verdict::NeedMore);
        assert_eq!(detect(b"AUTH TL"), Verdict::NeedMore);
    }

    #[test]
    fn random_and_mutated_inputs_keep_the_fuzz_properties() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let vectors: Vec<&[u8]> = TABLE
            .iter()
            .flat_map(|p| p.vectors.iter().copied())
            .collect();
        for _ in 0..20_000 {
            let mut input = match rng.below(3) {
                0 => {
                    let n = rng.below(80);
                    rng.bytes(n)
                }
                _ => {
                    let v = vectors[rng.below(vectors.len())];
                    let mut m = v[..rng.below(v.len() + 1)].to_vec();
                    for _ in 0..rng.below(3) {
                        if !m.is_empty() {
                            let i = rng.below(m.len());
                            m[i] = rng.next() as u8;
                        }
                    }
                    m
                }
            };
            let n = rng.below(40);
            let more = rng.bytes(n);
            assert_properties(&input, &more);
            input.resize(MAX_NEED, b' ');
            assert_properties(&input, &more);
        }
    }
}
