//! The list reports: `report sources`, `report credentials`, `report clients` and
//! `report sessions` (with filters).

use serde::Serialize;

use super::Window;
use crate::store::{kind, Reader, Result, Scope};

pub use crate::store::SessionFilter;

/// Item counts of `kind` over a window, for one port or all, largest first.
pub fn items(
    r: &dyn Reader,
    scope: Scope<'_>,
    w: Window,
    port: Option<u16>,
    kind: &str,
    n: usize,
) -> Result<Vec<(Vec<u8>, i64)>> {
    r.items(scope, w, port, kind, n)
}

/// A source and what it did over a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    pub ip: String,
    pub records: i64,
    /// Distinct ports it reached.
    pub ports: i64,
    /// Days it was seen on.
    pub days: i64,
    /// Its busiest port.
    pub top_port: u16,
    /// `AS64496 Example Net` and a country code, when a MaxMind-format database is given
    /// (filled in by the caller, see [`super::geo`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// The top sources by records over a window (one port or all).
pub fn sources(
    r: &dyn Reader,
    scope: Scope<'_>,
    w: Window,
    port: Option<u16>,
    n: usize,
) -> Result<Vec<SourceRow>> {
    Ok(r.sources(scope, w, port, n)?
        .into_iter()
        .map(|s| SourceRow {
            ip: s.ip.to_string(),
            records: s.records,
            ports: s.ports,
            days: s.days,
            top_port: s.top_port,
            asn: None,
            country: None,
        })
        .collect())
}

/// One row of `report sessions`: a session's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionRow {
    pub session: String,
    pub start: String,
    pub sensor: String,
    pub transport: String,
    pub src: String,
    pub port: u16,
    pub served: String,
    pub protocol: Option<String>,
    pub client: Option<String>,
    pub logins: i64,
    pub logins_ok: i64,
    pub commands: i64,
    pub tags: Option<String>,
    pub reason: Option<String>,
}

/// Sessions in a window matching the filter, newest first, at most `n`.
pub fn sessions(
    r: &dyn Reader,
    scope: Scope<'_>,
    w: Window,
    f: &SessionFilter,
    n: usize,
) -> Result<Vec<SessionRow>> {
    Ok(r.sessions(scope, w, f, n)?
        .into_iter()
        .map(|s| SessionRow {
            start: chrono::DateTime::from_timestamp_micros(s.start)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            session: s.session,
            sensor: s.sensor,
            transport: s.transport,
            src: s.src_ip,
            port: s.dst_port,
            served: s.served.unwrap_or(s.persona),
            protocol: s.protocol,
            client: s.client,
            logins: s.logins,
            logins_ok: s.logins_ok,
            commands: s.commands,
            tags: (!s.tags.is_empty()).then(|| s.tags.join(",")),
            reason: s.reason,
        })
        .collect())
}

/// The kinds `report clients` lists, in order.
pub const CLIENT_KINDS: &[&str] = &[
    kind::CLIENT,
    kind::VERSION,
    kind::HASSH,
    kind::JA4,
    kind::USER_AGENT,
];
