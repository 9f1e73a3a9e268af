//! Multi-protocol ports: which of a listener's personas a TCP connection gets.
//!
//! The client's first bytes are peeked (they stay in the socket for the persona to read): an
//! SSH version line goes to the ssh persona, IAC to telnet, an HTTP request to http, SMTP
//! commands to smtp, FTP commands to ftp ([`Persona::speaks`]). A client that says nothing
//! within `dispatch_wait` gets the default persona, the one that speaks first, or with
//! `adaptive`, its source's turn: a source that left silently after one persona's greeting gets
//! the next persona on its next connection, and one that answered keeps what it got. So one
//! port-26 listener answers SSH scanners, SMTP probes and telnet bots that wait for a prompt.
//!
//! With `tls` set on such a port, a client that opens with a TLS ClientHello gets the
//! handshake (its JA3/JA4 recorded first), then its first decrypted bytes pick the persona the
//! same way: HTTPS gets the http persona, implicit-TLS SMTP the smtp one. A client quiet after
//! the handshake (`openssl s_client`) gets the default persona, over TLS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conn::Io;
use crate::classify::detect::{detect, text_or_binary, Proto, Verdict, MAX_NEED};
use crate::config::Dispatch;
use crate::persona::Persona;

/// Sources whose adaptive turn is remembered; past this the memory starts over (bounded).
const MAX_REMEMBERED: usize = 65_536;
/// Pause between peeks while a client's first bytes are a prefix of some protocol.
const PEEK_AGAIN: Duration = Duration::from_millis(20);

/// Why a connection got its persona.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The client spoke first, in this protocol.
    Detected(Proto),
    /// The client said nothing within the wait: the default persona.
    Silent,
    /// The client said nothing; its source's turn (adaptive mode).
    Adaptive,
}

impl Why {
    pub fn reason(self) -> &'static str {
        match self {
            Why::Detected(_) => "detected",
            Why::Silent => "silent",
            Why::Adaptive => "adaptive",
        }
    }

    pub fn protocol(self) -> Option<Proto> {
        match self {
            Why::Detected(p) => Some(p),
            _ => None,
        }
    }
}

/// A listener's personas (the default first) and how one is picked.
pub struct Dispatcher {
    pub personas: Vec<(String, Persona)>,
    cfg: Dispatch,
    turns: Mutex<HashMap<IpAddr, usize>>,
}

impl Dispatcher {
    pub fn new(personas: Vec<(String, Persona)>, cfg: Dispatch) -> Dispatcher {
        Dispatcher {
            personas,
            cfg,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Waits (up to `dispatch_wait`) for the client's first bytes and picks a persona index.
    pub async fn choose(
        &self,
        s: &TcpStream,
        src: IpAddr,
        stop: &CancellationToken,
    ) -> (usize, Why) {
        let deadline = Instant::now() + self.cfg.wait;
        let mut buf = [0u8; MAX_NEED];
        loop {
            let r = tokio::select! {
                r = tokio::time::timeout_at(deadline, s.peek(&mut buf)) => r,
                _ = stop.cancelled() => return (0, Why::Silent),
            };
            let n = match r {
                Ok(Ok(n)) if n > 0 => n,
                // Quiet until the deadline, closed, or an error: nothing said.
                _ => return self.silent(src),
            };
            match detect(&buf[..n]) {
                Verdict::Known(p) => return (self.speaker_of(p), Why::Detected(p)),
                Verdict::Unknown(p) => return (0, Why::Detected(p)),
                Verdict::NeedMore if n < MAX_NEED && Instant::now() + PEEK_AGAIN < deadline => {
                    tokio::select! {
                        _ = tokio::time::sleep(PEEK_AGAIN) => {}
                        _ = stop.cancelled() => return (0, Why::Silent),
                    }
                }
                // Spoke, but not enough to tell before the deadline.
                Verdict::NeedMore => return (0, Why::Detected(text_or_binary(&buf[..n]))),
            }
        }
    }

    /// After a TLS handshake on this port: reads the client's first decrypted bytes (up to
    /// `dispatch_wait`) and picks the persona that speaks their protocol. Returns the bytes
    /// read, which go back in front of the persona's reads. A client quiet after the
    /// handshake gets the default persona (`Detected(Tls)`: it did speak first, in TLS).
    pub(crate) async fn choose_in_tls(
        &self,
        io: &mut Io,
        stop: &CancellationToken,
    ) -> (usize, Why, Vec<u8>) {
        let deadline = Instant::now() + self.cfg.wait;
        let mut got = Vec::new();
        loop {
            let r = tokio::select! {
                r = tokio::time::timeout_at(deadline, io.read(MAX_NEED - got.len())) => r,
                _ = stop.cancelled() => return (0, Why::Detected(Proto::Tls), got),
            };
            match r {
                Ok(Ok(d)) if !d.is_empty() => got.extend_from_slice(&d),
                // Quiet, closed or an error: what was said (if anything) decides.
                _ if got.is_empty() => return (0, Why::Detected(Proto::Tls), got),
                _ => return (0, Why::Detected(text_or_binary(&got)), got),
            }
            match detect(&got) {
                Verdict::Known(p) => {
                    // A persona that runs its own stack on the raw socket (SSH) cannot be
                    // served inside TLS.
                    let i = self
                        .personas
                        .iter()
                        .position(|(_, persona)| persona.speaks(p) && !persona.needs_raw_tcp())
                        .unwrap_or(0);
                    return (i, Why::Detected(p), got);
                }
                Verdict::Unknown(p) => return (0, Why::Detected(p), got),
                Verdict::NeedMore if got.len() < MAX_NEED => {}
                Verdict::NeedMore => {
                    let p = text_or_binary(&got);
                    return (0, Why::Detected(p), got);
                }
            }
        }
    }

    /// The first persona (default first) that speaks `p`; the default if none does.
    fn speaker_of(&self, p: Proto) -> usize {
        self.personas
            .iter()
            .position(|(_, persona)| persona.speaks(p))
            .unwrap_or(0)
    }

    fn silent(&self, src: IpAddr) -> (usize, Why) {
        if !self.cfg.adaptive {
            return (0, Why::Silent);
        }
        let turn = lock(&self.turns).get(&src).copied().unwrap_or(0) % self.personas.len();
        (
            turn,
            if turn == 0 {
                Why::Silent
            } else {
                Why::Adaptive
            },
        )
    }

    /// Adaptive mode: after a session that got its persona by turn, a source that sent nothing
    /// and hung up moves on to the next persona; one that answered keeps this one.
    pub fn after(&self, src: IpAddr, index: usize, why: Why, sent: bool, hung_up: bool) {
        if !self.cfg.adaptive || matches!(why, Why::Detected(_)) {
            return;
        }
        let next = if sent {
            index
        } else if hung_up {
            (index + 1) % self.personas.len()
        } else {
            return;
        };
        let mut turns = lock(&self.turns);
        if turns.len() >= MAX_REMEMBERED && !turns.contains_key(&src) {
            turns.clear();
        }
        turns.insert(src, next);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
