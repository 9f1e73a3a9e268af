//! The honeyport event schema.
//!
//! One versioned format shared by the sensor (which writes events), the stores (SQLite, JSON
//! lines) and the reports (which read them). No I/O and no async runtime here.
//!
//! An event is one JSON object on one line:
//!
//! ```json
//! {"v":1,"eventid":"session.input","timestamp":"2026-11-26T16:40:01.123456Z",
//!  "sensor":"hp1","session":"9f1c2d3e4a5b6c7d","transport":"tcp",
//!  "src_ip":"203.0.113.7","src_port":51234,"dst_ip":"198.51.100.2","dst_port":26,
//!  "data":{"text":"EHLO scan\r\n"},"len":11}
//! ```
//!
//! Field names follow cowrie's where the meaning is the same (`eventid`, `timestamp`, `sensor`,
//! `session`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `duration`), so dashboards built for
//! cowrie can read them. Bytes that came off the wire are kept exactly: valid UTF-8 as
//! `{"text": ...}`, anything else as `{"bytes": base64}` (see [`Payload`]).

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema version written in every event's `v` field. Bump it when a field changes meaning
/// or disappears; adding an optional field does not need a bump.
pub const SCHEMA_VERSION: u16 = 1;

/// Largest JSON line [`Event::from_json`] accepts. Events the sensor writes stay far below this
/// (payloads are capped by the sensor's read size); the cap guards readers of foreign files.
pub const MAX_EVENT_JSON: usize = 16 * 1024 * 1024;

/// One thing that happened on a sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version, [`SCHEMA_VERSION`] when written by this build.
    pub v: u16,
    /// When it happened, UTC, microsecond precision.
    pub timestamp: Timestamp,
    /// The sensor's name (`sensor` in the config).
    pub sensor: String,
    /// The session this event belongs to.
    pub session: SessionId,
    pub transport: Transport,
    pub src_ip: IpAddr,
    pub src_port: u16,
    /// The connection's real local address, never the wildcard the socket was bound to.
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. The `eventid` field of the JSON object picks the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventid")]
pub enum EventKind {
    /// A peer connected (TCP) or sent a first datagram (UDP flow).
    #[serde(rename = "session.connect")]
    Connect {
        /// The listener's name from the config.
        listener: String,
        /// The persona that serves this session.
        persona: String,
        /// Whether the listener wraps the session in TLS.
        tls: bool,
    },
    /// Bytes received from the peer, exactly as read (one read or datagram per event).
    #[serde(rename = "session.input")]
    Input { data: Payload, len: u64 },
    /// Bytes sent to the peer.
    #[serde(rename = "session.output")]
    Output {
        data: Payload,
        len: u64,
        /// Set when a UDP reply was cut to the triggering datagram's size.
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
    },
    /// A reply the persona wanted to send but did not (UDP rate limit).
    #[serde(rename = "session.output_suppressed")]
    OutputSuppressed { len: u64, reason: String },
    /// A scripted rule matched the input.
    #[serde(rename = "rule.match")]
    RuleMatch {
        rule: String,
        /// `reply`, `disconnect` or `reply_disconnect`.
        action: String,
        /// Length of the match (the longest match wins).
        match_len: u64,
    },
    /// The TLS handshake finished.
    #[serde(rename = "tls.handshake")]
    TlsHandshake {
        version: String,
        cipher: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alpn: Option<Payload>,
    },
    /// The client's TLS ClientHello, read before the handshake: its JA3 and JA4 (TLS client)
    /// fingerprints, with their unhashed forms, SNI and ALPN offers.
    #[serde(rename = "tls.client_hello")]
    TlsClientHello {
        ja3: String,
        ja3_string: String,
        ja4: String,
        ja4_r: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alpn: Vec<Payload>,
    },
    /// The TLS handshake failed; `data` holds the first bytes the peer sent (capped), so
    /// plaintext sent to a TLS port is recorded, not lost.
    #[serde(rename = "tls.failed")]
    TlsFailed {
        error: String,
        data: Payload,
        len: u64,
    },
    /// A login attempt was refused (telnet, SSH, FTP, SMTP AUTH, HTTP). Username and password
    /// exactly as sent.
    #[serde(rename = "login.failed")]
    LoginFailed {
        username: Payload,
        password: Payload,
        /// How the credentials came: `telnet`, `ssh-password`, `ftp`, `smtp-plain`, ...
        method: String,
    },
    /// A login attempt was accepted.
    #[serde(rename = "login.success")]
    LoginSuccess {
        username: Payload,
        password: Payload,
        method: String,
    },
    /// One command line given to the fake shell (or a protocol command a persona records).
    #[serde(rename = "command.input")]
    CommandInput {
        input: Payload,
        /// Whether the shell knew the command (cowrie's `command.input` vs `command.failed`).
        recognised: bool,
    },
    /// A command asked to fetch a URL (wget, curl, tftp, ftpget). Recorded; fetched only when
    /// the sensor's `[downloads]` are enabled (then a `.fetched` or `.failed` event follows).
    #[serde(rename = "session.file_download")]
    FileDownload {
        url: Payload,
        /// The tool: `wget`, `curl`, `tftp`, `ftpget`.
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outfile: Option<Payload>,
    },
    /// A download really fetched (`[downloads] enabled`) and stored by SHA-256 in the data
    /// dir's downloads folder.
    #[serde(rename = "session.file_download.fetched")]
    FileFetched {
        url: Payload,
        sha256: String,
        len: u64,
        /// The body was longer than `max_bytes`: `len` bytes were kept and stored.
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
        /// Where the bytes came from after redirects, when that differs from `url`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        final_url: Option<String>,
    },
    /// A download that was attempted and did not complete (refused destination, HTTP error,
    /// timeout, unsupported scheme...).
    #[serde(rename = "session.file_download.failed")]
    FileFetchFailed { url: Payload, reason: String },
    /// Bytes written to a file in the session's fake filesystem (e.g. an `echo -ne '\x7fELF'`
    /// dropper), identified by SHA-256.
    #[serde(rename = "session.file_write")]
    FileWrite {
        path: Payload,
        sha256: String,
        len: u64,
    },
    /// The client's answers to telnet option negotiation, in order, e.g.
    /// `WONT ECHO,WILL NAWS,SB NAWS 80x24,DONT SGA`.
    #[serde(rename = "client.telnet_options")]
    TelnetOptions { pattern: String },
    /// A name for the client software, derived by the sensor's tagger from what the client
    /// sent: `by` says from what (`ssh.version`, `hassh`, `ja3`, `ja4`, `http.user_agent`,
    /// `input`). At most one per session and `by`.
    #[serde(rename = "client.name")]
    ClientName { name: String, by: String },
    /// The client's TCP SYN as the kernel saved it (Linux `TCP_SAVED_SYN`; absent elsewhere):
    /// TTL (hop limit for IPv6) and the initial TTL it probably started from (32, 64, 128 or
    /// 255), window, MSS and window scale options, the options in the order sent (p0f v3's
    /// `olayout`, e.g. `mss,sok,ts,nop,ws`), the IPv4 don't-fragment bit, a p0f-v3-like
    /// signature (`ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`), and the Mirai
    /// scanner marker (an IPv4 SYN whose sequence number is its destination address).
    #[serde(rename = "tcp.syn")]
    TcpSyn {
        ttl: u8,
        ittl: u8,
        window: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mss: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wscale: Option<u8>,
        options: String,
        df: bool,
        signature: String,
        mirai: bool,
    },
    /// On a multi-protocol port: the persona this connection got, and why (`detected`: the
    /// client spoke first in `protocol`; `silent`: it said nothing, the default persona;
    /// `adaptive`: it said nothing, its source's turn). `tls`: the client opened with TLS and
    /// `protocol` is what it spoke inside (`tls` if nothing).
    #[serde(rename = "session.dispatch")]
    Dispatch {
        persona: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        tls: bool,
    },
    /// What the client spoke, from its first bytes (`silent` if it sent nothing), whether it
    /// spoke before the server, and if not, how it answered the server's greeting: `silent`,
    /// `same` (in the persona's protocol), `other` (in another), `answered` (the persona's
    /// protocol is not known, e.g. scripted).
    #[serde(rename = "session.classified")]
    Classified {
        protocol: String,
        client_first: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_banner: Option<String>,
    },
    /// The SSH client's identification line, exactly as sent (cowrie's `client.version`).
    #[serde(rename = "client.version")]
    ClientVersion { version: Payload },
    /// The SSH client's KEXINIT: algorithm lists in wire order and HASSH (cowrie's
    /// `client.kex`, same field names).
    #[serde(rename = "client.kex")]
    ClientKex {
        hassh: String,
        #[serde(rename = "hasshAlgorithms")]
        hassh_algorithms: String,
        #[serde(rename = "kexAlgs")]
        kex_algs: Vec<String>,
        #[serde(rename = "keyAlgs")]
        key_algs: Vec<String>,
        #[serde(rename = "encCS")]
        enc_cs: Vec<String>,
        #[serde(rename = "macCS")]
        mac_cs: Vec<String>,
        #[serde(rename = "compCS")]
        comp_cs: Vec<String>,
        #[serde(rename = "langCS")]
        lang_cs: Vec<String>,
    },
    /// A public key offered for login (cowrie's `client.fingerprint`): its type and SHA-256
    /// fingerprint, and the key itself in OpenSSH format.
    #[serde(rename = "client.fingerprint")]
    ClientFingerprint {
        username: Payload,
        fingerprint: String,
        key: String,
        #[serde(rename = "type")]
        key_type: String,
    },
    /// A terminal size (pty request or window change; cowrie's `client.size`).
    #[serde(rename = "client.size")]
    ClientSize {
        width: u32,
        height: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        term: Option<Payload>,
    },
    /// An environment variable the client asked for (cowrie's `client.var`).
    #[serde(rename = "client.var")]
    ClientVar { name: Payload, value: Payload },
    /// A port-forwarding request, always refused: `direct-tcpip` (connect out for the client,
    /// cowrie's `direct-tcpip.request`) or `tcpip-forward` (listen for it). Field names are
    /// RFC 4254's (cowrie's `dst_ip`/`src_ip` would clash with the session's own addresses).
    #[serde(rename = "direct-tcpip.request")]
    ForwardRequest {
        kind: String,
        /// Host to connect to (direct-tcpip) or address to bind (tcpip-forward), as sent.
        host: Payload,
        port: u32,
        /// The originator's address and port the client claimed (direct-tcpip).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orig_host: Option<Payload>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orig_port: Option<u32>,
    },
    /// One HTTP request as parsed (the raw bytes are in the session's input events).
    #[serde(rename = "http.request")]
    HttpRequest {
        method: Payload,
        target: Payload,
        /// `HTTP/1.0` or `HTTP/1.1`.
        version: String,
        /// Every header field in the order sent: (name, value), value without surrounding
        /// whitespace.
        headers: Vec<(Payload, Payload)>,
        /// Bytes of body received (after chunked decoding).
        body_len: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<Payload>,
    },
    /// The session ended. Every `session.connect` has exactly one of these.
    #[serde(rename = "session.closed")]
    Closed {
        /// Seconds from connect to close.
        duration: f64,
        bytes_in: u64,
        bytes_out: u64,
        reason: EndReason,
        /// Which limit, when `reason` is `limit`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
}

impl EventKind {
    /// The `eventid` string of this kind.
    pub fn eventid(&self) -> &'static str {
        match self {
            EventKind::Connect { .. } => "session.connect",
            EventKind::Input { .. } => "session.input",
            EventKind::Output { .. } => "session.output",
            EventKind::OutputSuppressed { .. } => "session.output_suppressed",
            EventKind::RuleMatch { .. } => "rule.match",
            EventKind::TlsHandshake { .. } => "tls.handshake",
            EventKind::TlsFailed { .. } => "tls.failed",
            EventKind::TlsClientHello { .. } => "tls.client_hello",
            EventKind::LoginFailed { .. } => "login.failed",
            EventKind::LoginSuccess { .. } => "login.success",
            EventKind::CommandInput { .. } => "command.input",
            EventKind::FileDownload { .. } => "session.file_download",
            EventKind::FileFetched { .. } => "session.file_download.fetched",
            EventKind::FileFetchFailed { .. } => "session.file_download.failed",
            EventKind::FileWrite { .. } => "session.file_write",
            EventKind::TelnetOptions { .. } => "client.telnet_options",
            EventKind::ClientName { .. } => "client.name",
            EventKind::TcpSyn { .. } => "tcp.syn",
            EventKind::Dispatch { .. } => "session.dispatch",
            EventKind::Classified { .. } => "session.classified",
            EventKind::ClientVersion { .. } => "client.version",
            EventKind::ClientKex { .. } => "client.kex",
            EventKind::ClientFingerprint { .. } => "client.fingerprint",
            EventKind::ClientSize { .. } => "client.size",
            EventKind::ClientVar { .. } => "client.var",
            EventKind::ForwardRequest { .. } => "direct-tcpip.request",
            EventKind::HttpRequest { .. } => "http.request",
            EventKind::Closed { .. } => "session.closed",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The peer closed or reset the connection.
    PeerClosed,
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// A limit tripped; the `limit` field says which.
    Limit,
    /// The sensor shut down and the grace period ran out.
    Shutdown,
    /// The persona ended it: its read loop was done or a rule said disconnect.
    Persona,
    /// The source address is not on the listener's allow-list.
    NotAllowed,
    /// The TLS handshake failed.
    TlsFailed,
    /// An I/O error other than a close (the peer's fault, e.g. a reset mid-write).
    IoError,
    /// A bug on our side (a panic in the session task). Never expected.
    Internal,
}

impl EndReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::PeerClosed => "peer_closed",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Limit => "limit",
            EndReason::Shutdown => "shutdown",
            EndReason::Persona => "persona",
            EndReason::NotAllowed => "not_allowed",
            EndReason::TlsFailed => "tls_failed",
            EndReason::IoError => "io_error",
            EndReason::Internal => "internal",
        }
    }
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes kept exactly: `{"text": "..."}` when they are valid UTF-8, `{"bytes": "<base64>"}`
/// otherwise. Never a lossy conversion.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A one-line, printable rendering for people: UTF-8 text with control characters
    /// escaped, other bytes as `\xNN`. Not for storage (use the serde form).
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\r' => out.push_str("\\r"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload(\"{}\")", self.escaped())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(v)
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload(v.to_vec())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match std::str::from_utf8(&self.0) {
            Ok(text) => m.serialize_entry("text", text)?,
            Err(_) => m.serialize_entry(
                "bytes",
                &base64::engine::general_purpose::STANDARD.encode(&self.0),
            )?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            text: Option<String>,
            bytes: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        match (raw.text, raw.bytes) {
            (Some(t), None) => Ok(Payload(t.into_bytes())),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map(Payload)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "payload needs exactly one of \"text\" or \"bytes\"",
            )),
        }
    }
}

/// A session id: up to 16 hex digits (a 64-bit number), unique per session. The sensor writes
/// 16 lowercase digits: the second the session started in the high 32 bits (so ids sort by
/// time and index inserts append), a per-run random start plus a counter in the low 32.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl SessionId {
    /// Formats 64 bits as a session id.
    pub fn from_u64(n: u64) -> Self {
        SessionId(format!("{n:016x}"))
    }

    /// The id as a number (`None` only for an id built by hand that is not hex).
    pub fn as_u64(&self) -> Option<u64> {
        if self.0.is_empty() || self.0.len() > 16 {
            return None;
        }
        u64::from_str_radix(&self.0, 16).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let id = SessionId(s);
        match id.as_u64() {
            Some(_) if id.0.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(id),
            _ => Err(serde::de::Error::custom(format!(
                "session id {:?} is not 1-16 hex digits",
                id.0
            ))),
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A UTC instant written as RFC 3339 with exactly six fractional digits and a `Z`:
/// `2026-11-26T16:40:01.123456Z`. Sorts as text in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    pub fn from_unix_micros(us: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(us).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike as _, Timelike as _};
        // By hand rather than with a format string: this runs for every event written.
        let t = &self.0;
        let micros = (t.nanosecond() / 1_000).min(999_999); // a leap second stays in its second
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            micros
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use chrono::{Datelike as _, Timelike as _};
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(serde::de::Error::custom)?
            .with_timezone(&Utc);
        // Only instants that format back as written here are accepted: the year must stay
        // four digits once in UTC, and digits past the microsecond are dropped (the
        // schema's precision), so decode -> encode -> decode gives the same event.
        if !(0..=9999).contains(&t.year()) {
            return Err(serde::de::Error::custom(format!(
                "timestamp {s:?} is outside the years 0000-9999 in UTC"
            )));
        }
        // A leap second (chrono: nanoseconds past 1e9) is written as the last microsecond of
        // its second, so it is read as that too.
        let ns = t.nanosecond().min(999_999_999);
        t.with_nanosecond(ns - ns % 1_000)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}")))
    }
}

/// Why a line could not be read as an event.
#[derive(Debug)]
pub enum DecodeError {
    TooLong(usize),
    Json(serde_json::Error),
    /// The line is a newer schema than this build knows.
    Version(u16),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLong(n) => write!(f, "event line of {n} bytes exceeds the cap"),
            DecodeError::Json(e) => write!(f, "not a valid event: {e}"),
            DecodeError::Version(v) => write!(
                f,
                "event schema version {v} is newer than this build's {SCHEMA_VERSION}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Event {
    /// The event as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string and no
        // Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"v\":{SCHEMA_VERSION},\"eventid\":\"encode.error\",\"error\":{:?}}}",
                e.to_string()
            )
        })
    }

    /// Reads one event from bytes of untrusted origin (a file, another sensor).
    pub fn from_json(line: &[u8]) -> Result<Event, DecodeError> {
        if line.len() > MAX_EVENT_JSON {
            return Err(DecodeError::TooLong(line.len()));
        }
        let ev: Event = serde_json::from_slice(line).map_err(DecodeError::Json)?;
        if ev.v > SCHEMA_VERSION {
            return Err(DecodeError::Version(ev.v));
        }
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: EventKind) -> Event {
        Event {
            v: SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(1_764_175_201_123_456).unwrap(),
            sensor: "hp1".into(),
            session: SessionId::from_u64(0x9f1c_2d3e_4a5b_6c7d),
            transport: Transport::Tcp,
            src_ip: "203.0.113.7".parse().unwrap(),
            src_port: 51234,
            dst_ip: "::1".parse().unwrap(),
            dst_port: 26,
            kind,
        }
    }

    #[test]
    fn utf8_payload_is_text_and_binary_is_base64() {
        let t = serde_json::to_string(&Payload(b"EHLO x\r\n".to_vec())).unwrap();
        assert_eq!(t, r#"{"text":"EHLO x\r\n"}"#);
        let b = serde_json::to_string(&Payload(vec![0xff, 0xfb, 0x01])).unwrap();
        assert_eq!(b, r#"{"bytes":"//sB"}"#);
        let back: Payload = serde_json::from_str(&b).unwrap();
        assert_eq!(back.0, vec![0xff, 0xfb, 0x01]);
    }

    #[test]
    fn payload_rejects_both_or_neither() {
        assert!(serde_json::from_str::<Payload>(r#"{"text":"a","bytes":"YQ=="}"#).is_err());
        assert!(serde_json::from_str::<Payload>(r#"{}"#).is_err());
        assert!(serde_json::from_str::<Payload>(r#"{"bytes":"!!"}"#).is_err());
    }

    #[test]
    fn timestamp_has_microseconds_and_z() {
        let e = sample(EventKind::Input {
            data: Payload(b"x".to_vec()),
            len: 1,
        });
        let j = e.to_json();
        assert!(
            j.contains(r#""timestamp":"2025-11-26T16:40:01.123456Z""#),
            "{j}"
        );
        assert!(j.contains(r#""eventid":"session.input""#), "{j}");
        assert!(j.contains(r#""src_ip":"203.0.113.7""#), "{j}");
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds = vec![
            EventKind::LoginFailed {
                username: Payload(b"root".to_vec()),
                password: Payload(vec![0xff, b'x']),
                method: "telnet".into(),
            },
            EventKind::LoginSuccess {
                username: Payload(b"admin".to_vec()),
                password: Payload(b"admin".to_vec()),
                method: "telnet".into(),
            },
            EventKind::CommandInput {
                input: Payload(b"/bin/busybox ECCHI".to_vec()),
                recognised: true,
            },
            EventKind::FileDownload {
                url: Payload(b"http://203.0.113.9/x.sh".to_vec()),
                command: "wget".into(),
                outfile: Some(Payload(b"x.sh".to_vec())),
            },
            EventKind::FileFetched {
                url: Payload(b"http://203.0.113.9/x.sh".to_vec()),
                sha256: "ab".repeat(32),
                len: 1234,
                truncated: true,
                final_url: Some("http://203.0.113.10/y.sh".into()),
            },
            EventKind::FileFetchFailed {
                url: Payload(b"tftp://203.0.113.9/x".to_vec()),
                reason: "timed out after 30s".into(),
            },
            EventKind::FileWrite {
                path: Payload(b"/tmp/.x".to_vec()),
                sha256: "00".repeat(32),
                len: 4,
            },
            EventKind::TelnetOptions {
                pattern: "WONT ECHO,WILL NAWS,SB NAWS 80x24".into(),
            },
            EventKind::ClientName {
                name: "paramiko 3.x".into(),
                by: "ssh.version".into(),
            },
            EventKind::TcpSyn {
                ttl: 52,
                ittl: 64,
                window: 64240,
                mss: Some(1460),
                wscale: Some(7),
                options: "mss,sok,ts,nop,ws".into(),
                df: true,
                signature: "4:64:0:1460:64240,7:mss,sok,ts,nop,ws:df,id+:0".into(),
                mirai: false,
            },
            EventKind::TcpSyn {
                ttl: 64,
                ittl: 64,
                window: 29218,
                mss: None,
                wscale: None,
                options: String::new(),
                df: false,
                signature: "4:64:0:0:29218,0:::0".into(),
                mirai: true,
            },
            EventKind::TlsClientHello {
                ja3: "ab".repeat(16),
                ja3_string: "771,4865,0-10,29,0".into(),
                ja4: "t13d0101h2_aaaaaaaaaaaa_bbbbbbbbbbbb".into(),
                ja4_r: "t13d0101h2_1301_0000_0403".into(),
                sni: Some("example.test".into()),
                alpn: vec![Payload(b"h2".to_vec())],
            },
            EventKind::Dispatch {
                persona: "openssh".into(),
                reason: "detected".into(),
                protocol: Some("ssh".into()),
                tls: false,
            },
            EventKind::Dispatch {
                persona: "web".into(),
                reason: "detected".into(),
                protocol: Some("http".into()),
                tls: true,
            },
            EventKind::Classified {
                protocol: "telnet".into(),
                client_first: false,
                after_banner: Some("same".into()),
            },
            EventKind::ClientVersion {
                version: Payload(b"SSH-2.0-paramiko_3.4.0".to_vec()),
            },
            EventKind::ClientKex {
                hassh: "ab".repeat(16),
                hassh_algorithms: "a;b;c;d".into(),
                kex_algs: vec!["curve25519-sha256".into()],
                key_algs: vec!["ssh-ed25519".into()],
                enc_cs: vec!["aes128-ctr".into()],
                mac_cs: vec![],
                comp_cs: vec!["none".into()],
                lang_cs: vec![],
            },
            EventKind::ClientFingerprint {
                username: Payload(b"root".to_vec()),
                fingerprint: "SHA256:abc".into(),
                key: "ssh-ed25519 AAAA".into(),
                key_type: "ssh-ed25519".into(),
            },
            EventKind::ClientSize {
                width: 80,
                height: 24,
                term: Some(Payload(b"xterm".to_vec())),
            },
            EventKind::ClientVar {
                name: Payload(b"LANG".to_vec()),
                value: Payload(b"C".to_vec()),
            },
            EventKind::ForwardRequest {
                kind: "direct-tcpip".into(),
                host: Payload(b"10.0.0.1".to_vec()),
                port: 22,
                orig_host: Some(Payload(b"127.0.0.1".to_vec())),
                orig_port: Some(4000),
            },
            EventKind::HttpRequest {
                method: Payload(b"GET".to_vec()),
                target: Payload(b"/a?b=\xff".to_vec()),
                version: "HTTP/1.1".into(),
                headers: vec![
                    (Payload(b"Host".to_vec()), Payload(b"x".to_vec())),
                    (Payload(b"X-Bin".to_vec()), Payload(vec![0xff, 0])),
                ],
                body_len: 3,
                user_agent: Some(Payload(b"curl/7.88.1".to_vec())),
            },
            EventKind::Connect {
                listener: "l".into(),
                persona: "p".into(),
                tls: true,
            },
            EventKind::Input {
                data: Payload(vec![0, 1, 2, 0xff]),
                len: 4,
            },
            EventKind::Output {
                data: Payload(b"hi".to_vec()),
                len: 2,
                truncated: true,
            },
            EventKind::OutputSuppressed {
                len: 9,
                reason: "rate".into(),
            },
            EventKind::RuleMatch {
                rule: "EHLO".into(),
                action: "reply".into(),
                match_len: 4,
            },
            EventKind::TlsHandshake {
                version: "TLSv1_3".into(),
                cipher: "X".into(),
                sni: Some("a".into()),
                alpn: Some(Payload(b"h2".to_vec())),
            },
            EventKind::TlsFailed {
                error: "e".into(),
                data: Payload(b"GET /".to_vec()),
                len: 5,
            },
            EventKind::Closed {
                duration: 1.5,
                bytes_in: 3,
                bytes_out: 4,
                reason: EndReason::Limit,
                limit: Some("max_bytes_in".into()),
            },
        ];
        for k in kinds {
            let e = sample(k);
            let j = e.to_json();
            assert!(j.contains(&format!("\"eventid\":\"{}\"", e.kind.eventid())));
            let back = Event::from_json(j.as_bytes()).unwrap();
            assert_eq!(back, e, "{j}");
        }
    }

    #[test]
    fn hand_formatted_timestamp_equals_chrono_format() {
        for us in [
            0i64,
            1,
            999_999,
            1_764_175_201_123_456,
            253_402_300_799_999_999,
            951_782_400_000_001,
        ] {
            let t = Timestamp::from_unix_micros(us).unwrap();
            assert_eq!(
                t.to_string(),
                t.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
        }
    }

    #[test]
    fn session_ids_are_hex_numbers() {
        let id = SessionId::from_u64(0x6945_0c31_0000_0001);
        assert_eq!(id.as_str(), "69450c3100000001");
        assert_eq!(id.as_u64(), Some(0x6945_0c31_0000_0001));
        assert!(serde_json::from_str::<SessionId>("\"69450c3100000001\"").is_ok());
        for bad in ["\"\"", "\"xyz\"", "\"00000000000000000\"", "\"+1\""] {
            assert!(serde_json::from_str::<SessionId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut e = sample(EventKind::Input {
            data: Payload::default(),
            len: 0,
        });
        e.v = SCHEMA_VERSION + 1;
        assert!(matches!(
            Event::from_json(e.to_json().as_bytes()),
            Err(DecodeError::Version(_))
        ));
    }

    /// Found by the `event_decode` fuzz target: a nanosecond timestamp decoded, but was
    /// written back with six digits, so the event changed on a round trip.
    #[test]
    fn sub_microsecond_timestamp_is_truncated_and_round_trips() {
        let line = br#"{"v":1,"eventid":"session.input","timestamp":"2026-01-26T16:40:01.2123456Z","sensor":"hp1","session":"9f1c2d3e4a5b6c7d","transport":"tcp","src_ip":"203.0.113.7","src_port":51234,"dst_ip":"198.51.100.2","dst_port":26,"data":{"text":"EHLO scan\r\n"},"len":11}"#;
        let e = Event::from_json(line).unwrap();
        assert_eq!(e.timestamp.to_string(), "2026-01-26T16:40:01.212345Z");
        assert_eq!(Event::from_json(e.to_json().as_bytes()).unwrap(), e);
    }

    /// Found while writing the `event_decode` fuzz target: an offset can move a timestamp
    /// out of the four-digit years; it decoded, but its encoding (`+10000-...`) did not.
    #[test]
    fn a_leap_second_reads_as_the_last_microsecond_of_its_second() {
        // Found by the event_decode fuzz target: a leap second with an offset.
        let src = "9998-12-31T23:59:60-01:00";
        let t: Timestamp = serde_json::from_str(&format!("\"{src}\"")).unwrap();
        assert_eq!(t.to_string(), "9999-01-01T00:59:59.999999Z");
        let again: Timestamp = serde_json::from_str(&format!("\"{t}\"")).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn timestamp_outside_four_digit_years_is_refused() {
        for ts in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+00:01"] {
            let r = serde_json::from_str::<Timestamp>(&format!("\"{ts}\""));
            assert!(r.is_err(), "{ts}: {r:?}");
        }
        for ts in ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z"] {
            let t: Timestamp = serde_json::from_str(&format!("\"{ts}\"")).unwrap();
            let back: Timestamp =
                serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back, t);
        }
    }

    /// Found by the `event_decode` fuzz target: serde_json's default float parser could
    /// read a 17-digit `duration` (as written by `to_json`) one ULP off, so the event
    /// changed on a round trip. Needs serde_json's `float_roundtrip` feature.
    #[test]
    fn duration_round_trips_exactly() {
        let line = br#"{"v":1,"eventid":"session.closed","timestamp":"2027-11-26T16:40:02.500000Z","sensor":"hp1","session":"9f1c2d3e4a5b6c7d","transport":"tcp","src_ip":"203.0.11.73","src_port":51234,"dst_ip":"198.51.100.2","dst_port":26,"duration":1.5666666666666667,"bytes_in":3,"bytes_out":4,"reason":"limit"}"#;
        let e = Event::from_json(line).unwrap();
        let EventKind::Closed { duration, .. } = e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(duration, 1.5666666666666667);
        assert_eq!(Event::from_json(e.to_json().as_bytes()).unwrap(), e);
    }

    #[test]
    fn escaped_rendering_is_one_line() {
        assert_eq!(
            Payload(b"a\r\n\xff\x00".to_vec()).escaped(),
            "a\\r\\n\\xff\\x00"
        );
    }
}
