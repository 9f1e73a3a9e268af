//! The connection to the bus: server URLs, authentication (user and password, token, NKey
//! seed file, `.creds` file), TLS (CA file, optional client certificate).
//!
//! `[...bus]` as written ([`BusRaw`]) -> [`BusRaw::validate`] (pure, every error) -> [`Bus`]
//! -> [`Bus::connect`] (the I/O). Secrets never reach a log: [`Secret`] prints as `***`, URLs
//! with credentials in them are refused (they would be printed), and errors name the user,
//! never the password, token or seed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::units::NumOrStr;
use crate::config::{check_readable, resolve_path, Problems};

/// The bus as written in a config file (`[forward.bus]`, `[bus]` of `collect`).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusRaw {
    /// Server URL(s), `nats://host:port` or `tls://host:port`: one string (several separated
    /// by commas) or a list. The client tries them in turn and reconnects to any.
    pub url: Option<UrlsRaw>,
    /// User name for user+password authentication (`password` too).
    pub user: Option<String>,
    /// Password for `user`.
    pub password: Option<String>,
    /// A token (the server's `authorization { token: ... }`).
    pub token: Option<String>,
    /// A file holding an NKey seed (`SU...`), as `nk -gen user` writes it.
    pub nkey_seed_file: Option<String>,
    /// A `.creds` file (JWT + NKey seed), as `nsc` writes it.
    pub creds_file: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate; setting it requires TLS.
    pub tls_ca_file: Option<String>,
    /// PEM client certificate (with `tls_key_file`), for servers that verify clients.
    pub tls_cert_file: Option<String>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<String>,
    /// Refuse a connection without TLS even when no CA file is given (the system roots are
    /// used then). Default: TLS when a `tls://` URL, `tls_ca_file` or the server asks for it.
    pub tls_required: Option<bool>,
    /// How long one connection attempt may take. Default 5 s.
    pub connect_timeout: Option<NumOrStr>,
}

/// One URL or several.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum UrlsRaw {
    One(String),
    Many(Vec<String>),
}

impl std::fmt::Debug for BusRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusRaw")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("creds_file", &self.creds_file)
            .finish_non_exhaustive()
    }
}

/// A secret from the config: printed as `***`, whatever formats it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How the client proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    UserPassword { user: String, password: Secret },
    Token(Secret),
    NKeySeedFile(PathBuf),
    CredsFile(PathBuf),
}

impl Auth {
    /// Who this is, for errors and logs (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "no credentials".into(),
            Auth::UserPassword { user, .. } => format!("user {user:?}"),
            Auth::Token(_) => "a token".into(),
            Auth::NKeySeedFile(p) => format!("the NKey seed in {}", p.display()),
            Auth::CredsFile(p) => format!("the credentials in {}", p.display()),
        }
    }
}

/// TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusTls {
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
    pub required: bool,
}

/// A validated bus connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bus {
    pub urls: Vec<String>,
    pub auth: Auth,
    pub tls: BusTls,
    pub connect_timeout: Duration,
}

impl Bus {
    /// A bus at `url` without authentication (tests, loopback servers).
    pub fn plain(url: &str) -> Bus {
        Bus {
            urls: vec![url.to_string()],
            auth: Auth::None,
            tls: BusTls::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The URLs, for logs.
    pub fn display(&self) -> String {
        self.urls.join(",")
    }
}

/// Default for `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest NKey seed / creds file read (a creds file is a JWT and a seed: a few KiB).
const MAX_CREDS_FILE: u64 = 64 << 10;

impl BusRaw {
    /// Checks everything (pure apart from checking that named files are readable); records
    /// every problem under `at` (e.g. `forward.bus`). `None` when there were any.
    pub fn validate(&self, at: &str, base: &Path, p: &mut Problems<'_>) -> Option<Bus> {
        let before = p.errors.len();
        let urls: Vec<String> = match &self.url {
            None => {
                p.at(at, "`url` is required (e.g. \"nats://127.0.0.1:4222\")");
                Vec::new()
            }
            Some(UrlsRaw::One(s)) => s.split(',').map(|u| u.trim().to_string()).collect(),
            Some(UrlsRaw::Many(v)) => v.iter().map(|u| u.trim().to_string()).collect(),
        };
        if self.url.is_some() && urls.iter().all(String::is_empty) {
            p.at(&format!("{at}.url"), "no server URL given");
        }
        for u in &urls {
            if let Err(e) = check_url(u) {
                p.at(&format!("{at}.url"), e);
            }
        }
        let methods = [
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            self.nkey_seed_file.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            p.at(
                at,
                "give one way to authenticate: user+password, token, nkey_seed_file or creds_file",
            );
        }
        let auth = match (
            &self.user,
            &self.password,
            &self.token,
            &self.nkey_seed_file,
            &self.creds_file,
        ) {
            (Some(user), Some(pw), ..) => Auth::UserPassword {
                user: user.clone(),
                password: Secret::new(pw),
            },
            (Some(_), None, ..) | (None, Some(_), ..) => {
                p.at(at, "`user` and `password` go together");
                Auth::None
            }
            (_, _, Some(t), ..) => Auth::Token(Secret::new(t)),
            (_, _, _, Some(f), _) => {
                check_readable(base, f, &format!("{at}.nkey_seed_file"), p);
                Auth::NKeySeedFile(resolve_path(base, f))
            }
            (_, _, _, _, Some(f)) => {
                check_readable(base, f, &format!("{at}.creds_file"), p);
                Auth::CredsFile(resolve_path(base, f))
            }
            _ => Auth::None,
        };
        let mut tls = BusTls {
            required: self.tls_required.unwrap_or(false),
            ..BusTls::default()
        };
        if let Some(ca) = &self.tls_ca_file {
            check_readable(base, ca, &format!("{at}.tls_ca_file"), p);
            tls.ca_file = Some(resolve_path(base, ca));
            tls.required = true;
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(c), Some(k)) => {
                check_readable(base, c, &format!("{at}.tls_cert_file"), p);
                check_readable(base, k, &format!("{at}.tls_key_file"), p);
                tls.client = Some((resolve_path(base, c), resolve_path(base, k)));
            }
            (None, None) => {}
            _ => p.at(at, "`tls_cert_file` and `tls_key_file` go together"),
        }
        if urls.iter().any(|u| u.starts_with("tls://")) {
            tls.required = true;
        }
        let connect_timeout = match &self.connect_timeout {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(d) => match d.duration() {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    p.at(&format!("{at}.connect_timeout"), "must be more than 0");
                    DEFAULT_CONNECT_TIMEOUT
                }
                Err(e) => {
                    p.at(&format!("{at}.connect_timeout"), e);
                    DEFAULT_CONNECT_TIMEOUT
                }
            },
        };
        (p.errors.len() == before).then_some(Bus {
            urls,
            auth,
            tls,
            connect_timeout,
        })
    }
}

/// A server URL: `nats://` or `tls://` (or a bare `host:port`), a host, no credentials.
fn check_url(u: &str) -> Result<(), String> {
    let with_scheme = if u.contains("://") {
        u.to_string()
    } else {
        format!("nats://{u}")
    };
    let parsed = url::Url::parse(&with_scheme).map_err(|e| format!("{u:?}: {e}"))?;
    if !matches!(parsed.scheme(), "nats" | "tls") {
        return Err(format!(
            "{:?}: scheme {:?} (use nats:// or tls://)",
            parsed.host_str().unwrap_or(""),
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Not echoed: it holds a secret.
        return Err(
            "a server URL with credentials in it (use `user`/`password` or `token`, which are never printed)"
                .into(),
        );
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{u:?}: no host"));
    }
    Ok(())
}

/// Why the bus could not be reached; says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("NATS at {urls}: {who} refused (wrong credentials, or not permitted to connect)")]
    Refused { urls: String, who: String },
    #[error("NATS at {urls}: unreachable: {detail}")]
    Unreachable { urls: String, detail: String },
    #[error("NATS at {urls}: TLS: {detail}")]
    Tls { urls: String, detail: String },
    #[error("NATS credentials: {0}")]
    Credentials(String),
    #[error("NATS at {urls}: {detail}")]
    Other { urls: String, detail: String },
}

impl Bus {
    /// Connects once (no retry: the caller decides). `name` is the client name the server
    /// shows (`honeyport-forward sensor-1`). After a connection is up, the client reconnects
    /// by itself forever; publishes and requests made meanwhile time out and are retried by
    /// their callers.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, BusError> {
        let mut opts = match &self.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(
                    user.clone(),
                    password.expose().to_string(),
                )
            }
            Auth::Token(t) => async_nats::ConnectOptions::with_token(t.expose().to_string()),
            Auth::NKeySeedFile(path) => {
                let bytes = crate::config::read_file_capped(path, MAX_CREDS_FILE)
                    .map_err(BusError::Credentials)?;
                let seed = String::from_utf8(bytes)
                    .map_err(|_| BusError::Credentials(format!("{}: not text", path.display())))?
                    .trim()
                    .to_string();
                // Checked here, so a bad file is not reported as a refused connection.
                nkeys::KeyPair::from_seed(&seed).map_err(|e| {
                    BusError::Credentials(format!("{}: not an NKey seed: {e}", path.display()))
                })?;
                async_nats::ConnectOptions::with_nkey(seed)
            }
            Auth::CredsFile(path) => {
                let bytes = crate::config::read_file_capped(path, MAX_CREDS_FILE)
                    .map_err(BusError::Credentials)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| BusError::Credentials(format!("{}: not text", path.display())))?;
                async_nats::ConnectOptions::with_credentials(&text)
                    .map_err(|e| BusError::Credentials(format!("{}: {e}", path.display())))?
            }
        };
        if let Some(ca) = &self.tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        opts = opts
            .require_tls(self.tls.required)
            .connection_timeout(self.connect_timeout)
            .name(name)
            // Reconnect forever, at most every few seconds.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100u64 << attempts.min(5)).min(3000))
            });
        let urls = self.display();
        let servers: Vec<async_nats::ServerAddr> = self
            .urls
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| BusError::Other {
                urls: urls.clone(),
                detail: format!("bad server address: {e}"),
            })?;
        opts.connect(servers).await.map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            let detail = e.to_string();
            match e.kind() {
                K::AuthorizationViolation | K::Authentication => BusError::Refused {
                    urls,
                    who: self.auth.describe(),
                },
                K::Tls => BusError::Tls { urls, detail },
                K::Io | K::TimedOut | K::Dns | K::MaxReconnects => {
                    BusError::Unreachable { urls, detail }
                }
                K::ServerParse => BusError::Other { urls, detail },
            }
        })
    }
}

/// Sensor names are single subject tokens (`honeyport.events.<sensor>`): letters, digits,
/// `_` and `-`, at most 64.
pub fn check_sensor_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "sensor name {name:?} cannot be a NATS subject token: use 1-64 of A-Z a-z 0-9 _ -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(toml_src: &str) -> (Option<Bus>, Vec<String>) {
        let raw: BusRaw = toml::from_str(toml_src).expect("parses");
        let mut p = Problems::new(toml_src);
        let bus = raw.validate("bus", Path::new("/"), &mut p);
        (bus, p.errors.iter().map(|e| e.message.clone()).collect())
    }

    #[test]
    fn urls_and_user_password() {
        let (bus, errs) = validate(
            "url = \"nats://127.0.0.1:4222, tls://127.0.0.1:4223\"\nuser = \"s1\"\npassword = \"pw\"",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let bus = bus.expect("valid");
        assert_eq!(bus.urls.len(), 2);
        assert!(bus.tls.required, "a tls:// URL requires TLS");
        assert_eq!(bus.auth.describe(), "user \"s1\"");
        assert!(!format!("{bus:?}").contains("pw"), "{bus:?}");
    }

    #[test]
    fn every_problem_is_reported_and_no_secret_is_echoed() {
        let (bus, errs) = validate(
            "url = [\"http://x\", \"nats://u:hunter2@127.0.0.1\"]\nuser = \"a\"\ntoken = \"t\"\ntls_cert_file = \"/c\"\nconnect_timeout = 0",
        );
        assert!(bus.is_none());
        let all = errs.join("\n");
        for want in [
            "scheme \"http\"",
            "credentials in it",
            "one way to authenticate",
            "go together",
            "more than 0",
        ] {
            assert!(all.contains(want), "{want:?} missing from {all}");
        }
        assert!(!all.contains("hunter2"), "{all}");
        let (_, errs) = validate("user = \"a\"");
        assert!(
            errs.iter().any(|e| e.contains("`url` is required")),
            "{errs:?}"
        );
    }

    #[test]
    fn sensor_names_are_single_tokens() {
        for ok in ["s1", "eu-fra_1", "A"] {
            assert!(check_sensor_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a*", "a>", "a b", "é", &"x".repeat(65)] {
            assert!(check_sensor_name(bad).is_err(), "{bad:?}");
        }
    }
}
