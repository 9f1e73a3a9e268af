//! Classification: what each client really speaks and does, whatever the port.
//!
//! - [`detect`]: the protocol of a client's first bytes, from one table of patterns, each
//!   with its test vectors.
//! - [`tls`]: the raw TLS ClientHello (read before rustls sees the stream): SNI, ALPN, and
//!   the JA3 and JA4 client fingerprints.
//! - [`tagger`]: tags (exploit rules, brute force, Mirai, scanners) and client names derived
//!   from each session's events, in the writer thread.

pub mod detect;
pub mod tagger;
pub mod tls;

use honeyport_event::EventKind;

use detect::{detect, text_or_binary, Proto, Verdict};

/// The protocol of a whole session's first bytes (nothing more will come).
pub fn protocol_of(first: &[u8]) -> Proto {
    match detect(first) {
        Verdict::Known(p) | Verdict::Unknown(p) => p,
        Verdict::NeedMore => text_or_binary(first),
    }
}

/// A client answering in the persona's protocol: the same protocol, or what that persona's
/// clients send (a telnet login is typed text; HTTP/2 and CONNECT are HTTP).
fn answers(client: Proto, persona: Proto) -> bool {
    client == persona
        || matches!(
            (persona, client),
            (Proto::Telnet, Proto::UnknownText) | (Proto::Http, Proto::Http2 | Proto::HttpConnect)
        )
}

/// The `session.classified` event of a session: `first` is the start of what the client sent
/// (`bytes_in` in all), `server_first` whether the server spoke before it, `persona` the
/// protocol of the persona that served it (if known).
pub fn session(
    first: &[u8],
    bytes_in: u64,
    server_first: bool,
    persona: Option<Proto>,
) -> EventKind {
    let proto = (bytes_in > 0).then(|| protocol_of(first));
    let after_banner = server_first.then(|| {
        match (proto, persona) {
            (None, _) => "silent",
            (Some(_), None) => "answered",
            (Some(c), Some(p)) if answers(c, p) => "same",
            _ => "other",
        }
        .to_string()
    });
    EventKind::Classified {
        protocol: proto.map_or("silent", Proto::name).to_string(),
        client_first: proto.is_some() && !server_first,
        after_banner,
    }
}
