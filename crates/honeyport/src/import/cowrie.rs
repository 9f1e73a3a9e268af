//! cowrie's JSON log (`cowrie.json`, one event per line) into sessions.
//!
//! Each cowrie session (`session` field, per sensor) becomes one honeyport session whose id is
//! its connect second (high 32 bits, like the sensor's own ids) and 32 bits of SHA-256 over
//! the sensor name and cowrie's session id ([`super::import_id`]), so importing the same log
//! again maps to the same ids and adds nothing. A session's events are buffered
//! until its `cowrie.session.closed` (or the end of all input: then it is closed at its last
//! event with reason `shutdown`) and written as a unit, with a `session.classified` added
//! before the close: cowrie's protocol if the client sent anything (a version line, a key
//! exchange, a login, a command...), else `silent`; client first for SSH.
//!
//! | cowrie eventid | honeyport event |
//! |---|---|
//! | `cowrie.session.connect` | `session.connect` (listener `cowrie`, persona `cowrie-ssh` / `cowrie-telnet`) |
//! | `cowrie.client.version` | `client.version` (quotes of old cowrie versions stripped) |
//! | `cowrie.client.kex` | `client.kex` |
//! | `cowrie.login.failed` / `.success` | `login.failed` / `login.success` (method `ssh-password` or `telnet`) |
//! | `cowrie.command.input` / `.failed` | `command.input` (recognised true / false) |
//! | `cowrie.session.file_download` | `session.file_download` (command `cowrie`) |
//! | `cowrie.session.file_download.failed` | `session.file_download` and `session.file_download.failed` |
//! | `cowrie.session.file_upload` | `session.file_write` (path = filename, sha256 = shasum; len 0: cowrie logs no size) |
//! | `cowrie.client.fingerprint` | `client.fingerprint` |
//! | `cowrie.client.size` | `client.size` |
//! | `cowrie.client.var` | `client.var` |
//! | `cowrie.direct-tcpip.request` | `direct-tcpip.request` (host/port = cowrie's dst, orig = its src) |
//! | `cowrie.session.closed` | `session.closed` (cowrie's duration; reason `peer_closed`; bytes 0: not logged) |
//!
//! Other eventids are counted as not mapped. The protocol is cowrie's `protocol` field of the
//! connect; old versions without it: `telnet` for ports 23 and 2323, else `ssh`.

use std::net::{IpAddr, SocketAddr};

use honeyport_event::{EndReason, EventKind, Payload};
use serde::Deserialize;
use serde_json::Value;

use super::{import_id, parse_iso, session_id, Buffer, Importer, Limits, Open, Options};
use super::{Position, Store, Summary};

/// The fields of a cowrie line this importer reads (others are ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Line {
    eventid: Option<String>,
    timestamp: Option<String>,
    session: Option<Value>,
    sensor: Option<String>,
    src_ip: Option<String>,
    src_port: Option<Value>,
    dst_ip: Option<String>,
    dst_port: Option<Value>,
    protocol: Option<String>,
    version: Option<Value>,
    hassh: Option<String>,
    #[serde(rename = "hasshAlgorithms")]
    hassh_algorithms: Option<String>,
    #[serde(rename = "kexAlgs")]
    kex_algs: Option<Vec<Value>>,
    #[serde(rename = "keyAlgs")]
    key_algs: Option<Vec<Value>>,
    #[serde(rename = "encCS")]
    enc_cs: Option<Vec<Value>>,
    #[serde(rename = "macCS")]
    mac_cs: Option<Vec<Value>>,
    #[serde(rename = "compCS")]
    comp_cs: Option<Vec<Value>>,
    #[serde(rename = "langCS")]
    lang_cs: Option<Vec<Value>>,
    username: Option<Value>,
    password: Option<Value>,
    input: Option<Value>,
    url: Option<Value>,
    outfile: Option<Value>,
    filename: Option<Value>,
    shasum: Option<String>,
    fingerprint: Option<String>,
    key: Option<String>,
    #[serde(rename = "type")]
    key_type: Option<String>,
    width: Option<Value>,
    height: Option<Value>,
    name: Option<Value>,
    value: Option<Value>,
    duration: Option<Value>,
    message: Option<Value>,
}

/// A JSON value as bytes: a string's UTF-8, anything else as written in JSON.
fn bytes(v: &Option<Value>) -> Vec<u8> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    }
}

fn payload(v: &Option<Value>) -> Payload {
    Payload(bytes(v))
}

/// A number, or a string holding one.
fn number(v: &Option<Value>) -> Option<f64> {
    match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn port(v: &Option<Value>) -> Option<u16> {
    let n = number(v)?;
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}

fn strings(v: &Option<Vec<Value>>) -> Vec<String> {
    v.iter()
        .flatten()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// A cowrie session being read.
struct Sess {
    open: Open,
    telnet: bool,
    /// The client sent something (version, kex, login, command...).
    active: bool,
}

impl Sess {
    /// Adds the `session.classified` and `session.closed` events and writes the session.
    fn close(
        mut self,
        ts: i64,
        duration: Option<f64>,
        reason: EndReason,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let ts = ts.max(self.open.last);
        let protocol = if !self.active {
            "silent"
        } else if self.telnet {
            "telnet"
        } else {
            "ssh"
        };
        let client_first = protocol == "ssh";
        self.open.push_final(
            ts,
            EventKind::Classified {
                protocol: protocol.into(),
                client_first,
                after_banner: (!client_first)
                    .then(|| if self.active { "same" } else { "silent" }.to_string()),
            },
        );
        let duration = duration
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or((ts - self.open.start) as f64 / 1e6);
        self.open.push_final(
            ts,
            EventKind::Closed {
                duration,
                bytes_in: 0,
                bytes_out: 0,
                reason,
                limit: None,
            },
        );
        self.open.write(store, sum)
    }
}

pub struct Cowrie {
    sensor: Option<String>,
    limits: Limits,
    open: Buffer<u64, Sess>,
}

impl Cowrie {
    pub fn new(opts: &Options) -> Cowrie {
        Cowrie {
            sensor: opts.sensor.clone(),
            limits: opts.limits,
            open: Buffer::new(opts.limits.max_sessions),
        }
    }

    fn event(
        &mut self,
        l: &Line,
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        let Some(eventid) = l.eventid.as_deref() else {
            sum.malformed(pos, "no eventid");
            return Ok(());
        };
        let Some(ts) = l.timestamp.as_deref() else {
            sum.malformed(pos, "no timestamp");
            return Ok(());
        };
        let Some(ts) = parse_iso(ts) else {
            sum.malformed(pos, format_args!("bad timestamp {ts:?}"));
            return Ok(());
        };
        let cowrie_session = match &l.session {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                // A few cowrie events are not about a session (e.g. startup messages).
                sum.not_mapped(eventid);
                return Ok(());
            }
        };
        let sensor = self
            .sensor
            .as_deref()
            .or(l.sensor.as_deref())
            .unwrap_or("cowrie");
        let id = session_id(&[sensor.as_bytes(), cowrie_session.as_bytes()]);
        if eventid == "cowrie.session.connect" {
            let (Some(src), Some(sp), Some(dst), Some(dp)) = (
                l.src_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()),
                port(&l.src_port),
                l.dst_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()),
                port(&l.dst_port),
            ) else {
                sum.malformed(
                    pos,
                    "session.connect without valid src_ip, src_port, dst_ip, dst_port",
                );
                return Ok(());
            };
            if self.open.contains(&id) {
                sum.malformed(
                    pos,
                    format_args!("second connect of session {cowrie_session}"),
                );
                return Ok(());
            }
            let telnet = match l.protocol.as_deref() {
                Some(p) => p.eq_ignore_ascii_case("telnet"),
                None => matches!(dp, 23 | 2323),
            };
            let mut open = Open::new(
                import_id(ts, &[sensor.as_bytes(), cowrie_session.as_bytes()]),
                sensor.to_string(),
                SocketAddr::new(src, sp),
                SocketAddr::new(dst, dp),
                ts,
            );
            open.push_final(
                ts,
                EventKind::Connect {
                    listener: "cowrie".into(),
                    persona: if telnet {
                        "cowrie-telnet"
                    } else {
                        "cowrie-ssh"
                    }
                    .into(),
                    tls: false,
                },
            );
            let sess = Sess {
                open,
                telnet,
                active: false,
            };
            if let Some(old) = self.open.insert(id, sess) {
                // The buffer is full: the oldest session is written now.
                sum.sessions_unclosed += 1;
                let last = old.open.last;
                old.close(last, None, EndReason::Shutdown, store, sum)?;
            }
            return Ok(());
        }
        let kind = match eventid {
            "cowrie.session.closed" => {
                let Some(s) = self.open.remove(&id) else {
                    sum.dropped("outside a session (no connect in the input)");
                    return Ok(());
                };
                return s.close(ts, number(&l.duration), EndReason::PeerClosed, store, sum);
            }
            "cowrie.client.version" => {
                let mut v = bytes(&l.version);
                if v.len() >= 2 && v[0] == b'\'' && v[v.len() - 1] == b'\'' {
                    v = v[1..v.len() - 1].to_vec();
                }
                vec![EventKind::ClientVersion {
                    version: Payload(v),
                }]
            }
            "cowrie.client.kex" => vec![EventKind::ClientKex {
                hassh: l.hassh.clone().unwrap_or_default(),
                hassh_algorithms: l.hassh_algorithms.clone().unwrap_or_default(),
                kex_algs: strings(&l.kex_algs),
                key_algs: strings(&l.key_algs),
                enc_cs: strings(&l.enc_cs),
                mac_cs: strings(&l.mac_cs),
                comp_cs: strings(&l.comp_cs),
                lang_cs: strings(&l.lang_cs),
            }],
            "cowrie.login.failed" | "cowrie.login.success" => {
                let telnet = self.open.get_mut(&id).is_some_and(|s| s.telnet);
                let method = if telnet { "telnet" } else { "ssh-password" }.to_string();
                let (username, password) = (payload(&l.username), payload(&l.password));
                vec![if eventid == "cowrie.login.failed" {
                    EventKind::LoginFailed {
                        username,
                        password,
                        method,
                    }
                } else {
                    EventKind::LoginSuccess {
                        username,
                        password,
                        method,
                    }
                }]
            }
            "cowrie.command.input" | "cowrie.command.failed" => vec![EventKind::CommandInput {
                input: payload(&l.input),
                recognised: eventid == "cowrie.command.input",
            }],
            "cowrie.session.file_download" => vec![EventKind::FileDownload {
                url: payload(&l.url),
                command: "cowrie".into(),
                outfile: l.outfile.as_ref().map(|_| payload(&l.outfile)),
            }],
            "cowrie.session.file_download.failed" => vec![
                EventKind::FileDownload {
                    url: payload(&l.url),
                    command: "cowrie".into(),
                    outfile: None,
                },
                EventKind::FileFetchFailed {
                    url: payload(&l.url),
                    reason: match &l.message {
                        Some(Value::String(m)) if !m.is_empty() => m.clone(),
                        _ => "cowrie: download failed".into(),
                    },
                },
            ],
            "cowrie.session.file_upload" => vec![EventKind::FileWrite {
                path: payload(&l.filename),
                sha256: l.shasum.clone().unwrap_or_default(),
                len: 0,
            }],
            "cowrie.client.fingerprint" => vec![EventKind::ClientFingerprint {
                username: payload(&l.username),
                fingerprint: l.fingerprint.clone().unwrap_or_default(),
                key: l.key.clone().unwrap_or_default(),
                key_type: l.key_type.clone().unwrap_or_default(),
            }],
            "cowrie.client.size" => {
                let dim = |v: &Option<Value>| {
                    number(v)
                        .filter(|n| (0.0..=u32::MAX as f64).contains(n))
                        .map(|n| n as u32)
                };
                let (Some(width), Some(height)) = (dim(&l.width), dim(&l.height)) else {
                    sum.malformed(pos, "client.size without width and height");
                    return Ok(());
                };
                vec![EventKind::ClientSize {
                    width,
                    height,
                    term: None,
                }]
            }
            "cowrie.client.var" => vec![EventKind::ClientVar {
                name: payload(&l.name),
                value: payload(&l.value),
            }],
            "cowrie.direct-tcpip.request" => vec![EventKind::ForwardRequest {
                kind: "direct-tcpip".into(),
                host: Payload(l.dst_ip.clone().unwrap_or_default().into_bytes()),
                port: number(&l.dst_port).map_or(0, |n| n as u32),
                orig_host: l.src_ip.clone().map(|s| Payload(s.into_bytes())),
                orig_port: number(&l.src_port).map(|n| n as u32),
            }],
            other => {
                sum.not_mapped(other);
                return Ok(());
            }
        };
        let Some(s) = self.open.get_mut(&id) else {
            sum.dropped("outside a session (no connect in the input)");
            return Ok(());
        };
        s.active = true;
        for k in kind {
            s.open.push(ts, k, &self.limits, sum);
        }
        Ok(())
    }
}

impl Importer for Cowrie {
    fn line(
        &mut self,
        line: &[u8],
        pos: &Position<'_>,
        store: &mut Store,
        sum: &mut Summary,
    ) -> anyhow::Result<()> {
        match serde_json::from_slice::<Line>(line) {
            Ok(l) => self.event(&l, pos, store, sum),
            Err(e) => {
                sum.malformed(pos, format_args!("not a cowrie JSON event: {e}"));
                Ok(())
            }
        }
    }

    fn finish(&mut self, store: &mut Store, sum: &mut Summary) -> anyhow::Result<()> {
        for s in self.open.drain() {
            sum.sessions_unclosed += 1;
            let last = s.open.last;
            s.close(last, None, EndReason::Shutdown, store, sum)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::in_range;
    use super::*;

    #[test]
    fn lenient_fields() {
        assert_eq!(port(&Some(Value::from(22))), Some(22));
        assert_eq!(port(&Some(Value::from("2222"))), Some(2222));
        assert_eq!(port(&Some(Value::from(70000))), None);
        assert_eq!(number(&Some(Value::from("1.5"))), Some(1.5));
        assert_eq!(bytes(&Some(Value::from(1234))), b"1234");
        assert_eq!(
            parse_iso("2019-08-14T12:34:56.789012Z"),
            Some(1_565_786_096_789_012)
        );
        assert_eq!(
            parse_iso("2019-08-14T12:34:56.789012+0000"),
            Some(1_565_786_096_789_012)
        );
        assert_eq!(
            parse_iso("2019-08-14T12:34:56"),
            Some(1_565_786_096_000_000)
        );
        assert_eq!(parse_iso("yesterday"), None);
        assert!(in_range(0).is_some());
    }
}
