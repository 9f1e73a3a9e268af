//! Personas: the protocol faces a listener serves.
//!
//! A persona is one config variant ([`PersonaRaw`], picked by `type = "..."`) plus one built
//! type. Sockets, slots, limits and the session start/end events belong to the listener
//! ([`crate::listener`]); a persona only talks to the peer through a [`Conn`].

pub mod bytes;
pub mod creds;
pub mod ftp;
pub mod http;
pub mod scripted;
pub mod smtp;
pub mod ssh;
pub mod telnet;
pub mod template;

use std::path::Path;
use std::sync::Arc;

use honeyport_event::Transport;
use serde::Deserialize;

use crate::config::Problems;
use crate::listener::conn::{Conn, End};

/// `Ty { f: a.f or else b.f, ..., k: v }`: a raw persona with every field `a` leaves unset taken
/// from `b` (inheritance and per-listener overrides), plus fields set by hand.
macro_rules! merge_fields {
    ($ty:ident, $a:expr, $b:expr, [$($f:ident),* $(,)?] $(, $k:ident: $v:expr)*) => {
        $ty { $($f: $a.$f.clone().or_else(|| $b.$f.clone()),)* $($k: $v,)* }
    };
}
pub(crate) use merge_fields;

/// A persona as written in the config file; `type = "..."` picks the variant.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Read once at start and cloned a handful of times: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum PersonaRaw {
    /// An FTP server (vsftpd or ProFTPD profile): USER/PASS and passive uploads captured.
    Ftp(ftp::FtpRaw),
    /// A web server (Apache, nginx or router profile): requests, Basic-auth and form logins.
    Http(http::HttpRaw),
    /// Declarative banner / rules / replies: everything tcp-honeypot and simple_listener do.
    Scripted(scripted::ScriptedRaw),
    /// An ESMTP server (Exim, Postfix or Proxmox profile): AUTH, envelope and DATA captured.
    Smtp(smtp::SmtpRaw),
    /// An OpenSSH server face: logins, client fingerprints (HASSH), shell and exec.
    Ssh(ssh::SshRaw),
    /// Telnet login dialogue and fake shell, like a BusyBox/Linux telnetd.
    Telnet(telnet::TelnetRaw),
}

impl PersonaRaw {
    /// Every `type = "..."` this build knows.
    pub const KINDS: &'static [&'static str] =
        &["ftp", "http", "scripted", "smtp", "ssh", "telnet"];

    /// Reads a persona of kind `kind` (the table without its `type` key). `None` for an
    /// unknown kind.
    pub fn from_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Option<Result<PersonaRaw, D::Error>> {
        match kind {
            "ftp" => Some(ftp::FtpRaw::deserialize(de).map(PersonaRaw::Ftp)),
            "http" => Some(http::HttpRaw::deserialize(de).map(PersonaRaw::Http)),
            "scripted" => Some(scripted::ScriptedRaw::deserialize(de).map(PersonaRaw::Scripted)),
            "smtp" => Some(smtp::SmtpRaw::deserialize(de).map(PersonaRaw::Smtp)),
            "ssh" => Some(ssh::SshRaw::deserialize(de).map(PersonaRaw::Ssh)),
            "telnet" => Some(telnet::TelnetRaw::deserialize(de).map(PersonaRaw::Telnet)),
            _ => None,
        }
    }

    /// The persona this one inherits from, if any.
    pub fn inherit(&self) -> Option<&str> {
        match self {
            PersonaRaw::Ftp(f) => f.inherit.as_deref(),
            PersonaRaw::Http(h) => h.inherit.as_deref(),
            PersonaRaw::Scripted(s) => s.inherit.as_deref(),
            PersonaRaw::Smtp(s) => s.inherit.as_deref(),
            PersonaRaw::Ssh(s) => s.inherit.as_deref(),
            PersonaRaw::Telnet(t) => t.inherit.as_deref(),
        }
    }

    /// A copy of `self` with every field it leaves unset taken from `base`.
    pub fn merged_over(&self, base: &PersonaRaw) -> Result<PersonaRaw, String> {
        match (self, base) {
            (PersonaRaw::Ftp(a), PersonaRaw::Ftp(b)) => Ok(PersonaRaw::Ftp(a.merged_over(b))),
            (PersonaRaw::Http(a), PersonaRaw::Http(b)) => Ok(PersonaRaw::Http(a.merged_over(b))),
            (PersonaRaw::Scripted(a), PersonaRaw::Scripted(b)) => {
                Ok(PersonaRaw::Scripted(a.merged_over(b)))
            }
            (PersonaRaw::Smtp(a), PersonaRaw::Smtp(b)) => Ok(PersonaRaw::Smtp(a.merged_over(b))),
            (PersonaRaw::Ssh(a), PersonaRaw::Ssh(b)) => Ok(PersonaRaw::Ssh(a.merged_over(b))),
            (PersonaRaw::Telnet(a), PersonaRaw::Telnet(b)) => {
                Ok(PersonaRaw::Telnet(a.merged_over(b)))
            }
            _ => Err("a persona can only inherit a persona of its own type".to_string()),
        }
    }

    /// Reads a listener's `[override]` table as a partial persona of the same type.
    pub fn overlay(&self, table: &toml::Table) -> Result<PersonaRaw, String> {
        match self {
            PersonaRaw::Ftp(_) => table
                .clone()
                .try_into::<ftp::FtpRaw>()
                .map(|mut f| {
                    f.inherit = None;
                    PersonaRaw::Ftp(f)
                })
                .map_err(|e| e.message().trim().to_string()),
            PersonaRaw::Http(_) => table
                .clone()
                .try_into::<http::HttpRaw>()
                .map(|mut h| {
                    h.inherit = None;
                    PersonaRaw::Http(h)
                })
                .map_err(|e| e.message().trim().to_string()),
            PersonaRaw::Scripted(_) => table
                .clone()
                .try_into::<scripted::ScriptedRaw>()
                .map(|mut s| {
                    // An override cannot re-parent the persona; `inherit` is resolved already.
                    s.inherit = None;
                    PersonaRaw::Scripted(s)
                })
                .map_err(|e| e.message().trim().to_string()),
            PersonaRaw::Smtp(_) => table
                .clone()
                .try_into::<smtp::SmtpRaw>()
                .map(|mut s| {
                    s.inherit = None;
                    PersonaRaw::Smtp(s)
                })
                .map_err(|e| e.message().trim().to_string()),
            PersonaRaw::Ssh(_) => table
                .clone()
                .try_into::<ssh::SshRaw>()
                .map(|mut s| {
                    s.inherit = None;
                    PersonaRaw::Ssh(s)
                })
                .map_err(|e| e.message().trim().to_string()),
            PersonaRaw::Telnet(_) => table
                .clone()
                .try_into::<telnet::TelnetRaw>()
                .map(|mut t| {
                    t.inherit = None;
                    PersonaRaw::Telnet(t)
                })
                .map_err(|e| e.message().trim().to_string()),
        }
    }

    /// Checks this persona's own fields (no inheritance), recording problems at `at`.
    pub fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        match self {
            PersonaRaw::Ftp(f) => f.validate(at, base_dir, p),
            PersonaRaw::Http(h) => h.validate(at, base_dir, p),
            PersonaRaw::Scripted(s) => s.validate(at, base_dir, p),
            PersonaRaw::Smtp(s) => s.validate(at, base_dir, p),
            PersonaRaw::Ssh(s) => s.validate(at, base_dir, p),
            PersonaRaw::Telnet(t) => t.validate(at, base_dir, p),
        }
    }

    /// Checks the final, merged persona against the transports of the listener using it.
    pub fn validate_for_transports(
        &self,
        at: &str,
        transports: &[Transport],
        p: &mut Problems<'_>,
    ) {
        match self {
            PersonaRaw::Ftp(f) => f.validate_final(at, transports, p),
            PersonaRaw::Http(h) => h.validate_final(at, transports, p),
            PersonaRaw::Scripted(s) => s.validate_final(at, transports, p),
            PersonaRaw::Smtp(s) => s.validate_final(at, transports, p),
            PersonaRaw::Ssh(s) => s.validate_final(at, transports, p),
            PersonaRaw::Telnet(t) => t.validate_final(at, transports, p),
        }
    }

    /// Reads files and compiles patterns. Validation has run, so errors here are I/O races.
    pub fn build(&self, base_dir: &Path) -> Result<Persona, String> {
        match self {
            PersonaRaw::Ftp(f) => Ok(Persona::Ftp(Arc::new(f.build(base_dir)?))),
            PersonaRaw::Http(h) => Ok(Persona::Http(Arc::new(h.build(base_dir)?))),
            PersonaRaw::Scripted(s) => Ok(Persona::Scripted(Arc::new(s.build(base_dir)?))),
            PersonaRaw::Smtp(s) => Ok(Persona::Smtp(Arc::new(s.build(base_dir)?))),
            PersonaRaw::Ssh(s) => Ok(Persona::Ssh(Arc::new(s.build(base_dir)?))),
            PersonaRaw::Telnet(t) => Ok(Persona::Telnet(Arc::new(t.build(base_dir)?))),
        }
    }
}

/// A built persona, shared by every socket of its listener.
#[derive(Clone)]
pub enum Persona {
    Ftp(Arc<ftp::Ftp>),
    Http(Arc<http::Http>),
    Scripted(Arc<scripted::Scripted>),
    Smtp(Arc<smtp::Smtp>),
    Ssh(Arc<ssh::Ssh>),
    Telnet(Arc<telnet::Telnet>),
}

impl Persona {
    pub fn kind(&self) -> &'static str {
        match self {
            Persona::Ftp(_) => "ftp",
            Persona::Http(_) => "http",
            Persona::Scripted(_) => "scripted",
            Persona::Smtp(_) => "smtp",
            Persona::Ssh(_) => "ssh",
            Persona::Telnet(_) => "telnet",
        }
    }

    /// Whether this persona answers clients that speak `p` (a multi-protocol port gives such a
    /// client this persona).
    pub fn speaks(&self, p: crate::classify::detect::Proto) -> bool {
        use crate::classify::detect::Proto;
        matches!(
            (self, p),
            (Persona::Ssh(_), Proto::Ssh)
                | (Persona::Telnet(_), Proto::Telnet)
                | (
                    Persona::Http(_),
                    Proto::Http | Proto::Http2 | Proto::HttpConnect
                )
                | (Persona::Smtp(_), Proto::Smtp)
                | (Persona::Ftp(_), Proto::Ftp)
        )
    }

    /// The persona runs its own protocol stack on the raw TCP socket ([`Conn::take_tcp`]), so
    /// it cannot serve a connection inside TLS.
    pub fn needs_raw_tcp(&self) -> bool {
        matches!(self, Persona::Ssh(_))
    }

    /// The protocol the persona speaks, when it is one the detector names (not scripted).
    pub fn protocol(&self) -> Option<crate::classify::detect::Proto> {
        use crate::classify::detect::Proto;
        match self {
            Persona::Ssh(_) => Some(Proto::Ssh),
            Persona::Telnet(_) => Some(Proto::Telnet),
            Persona::Http(_) => Some(Proto::Http),
            Persona::Smtp(_) => Some(Proto::Smtp),
            Persona::Ftp(_) => Some(Proto::Ftp),
            Persona::Scripted(_) => None,
        }
    }

    /// What a persona needs from the running sensor before it serves: the SSH persona's
    /// host keys live in the data dir.
    pub fn prepare(
        &self,
        data_dir: &Path,
        idle_timeout: std::time::Duration,
    ) -> Result<(), String> {
        match self {
            Persona::Ssh(s) => s.prepare(data_dir, idle_timeout),
            _ => Ok(()),
        }
    }

    /// Talks to one peer until it leaves, a limit trips, the persona is done, or shutdown.
    ///
    /// Each persona's future is boxed: inline, every session's task would be as large as the
    /// largest persona's state, whichever persona it runs (an idle connection must stay small).
    pub async fn serve(&self, conn: &mut Conn) -> End {
        match self {
            Persona::Ftp(f) => Box::pin(f.serve(conn)).await,
            Persona::Http(h) => Box::pin(h.serve(conn)).await,
            Persona::Scripted(s) => Box::pin(s.serve(conn)).await,
            Persona::Smtp(s) => Box::pin(s.serve(conn)).await,
            Persona::Ssh(s) => Box::pin(s.serve(conn)).await,
            Persona::Telnet(t) => Box::pin(t.serve(conn)).await,
        }
    }
}
