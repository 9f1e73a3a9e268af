//! The `ssh` persona: an OpenSSH server face on russh (exactly 0.65.1, ring backend) that
//! records every login attempt, the client's software and what it runs once "in".
//!
//! ```toml
//! [personas.ssh]
//! type = "ssh"
//! profile = "openssh9"          # openssh9 (Debian 12, default) or openssh8 (Ubuntu 20.04)
//! shell = "debian_server"
//! [personas.ssh.credentials]
//! accept = ["root:123456"]
//! ```
//!
//! - **Client fingerprint:** the identification line and the clear-text KEXINIT are read from
//!   below russh by [`tee::Tee`] and [`hello::Hello`]: `client.version` (exact bytes) and
//!   `client.kex` (lists in wire order, HASSH), cowrie's event names and fields.
//! - **Logins:** password, keyboard-interactive (one "Password: " prompt) and public-key
//!   attempts, each an event (`login.failed`/`login.success` with method `ssh-password` or
//!   `ssh-keyboard-interactive`; `client.fingerprint` with the key's type and SHA-256
//!   fingerprint, always refused), judged by the shared credential policy. Every method is
//!   offered again after each failure (russh drops a method once it was rejected unless told
//!   otherwise), up to `max_attempts` failures like OpenSSH's MaxAuthTries.
//! - **After login:** `shell` (with or without a pty) and `exec` run the shared fake shell;
//!   pty, window-change and env requests are recorded; `direct-tcpip` and `tcpip-forward` are
//!   recorded and refused, never forwarded; subsystems other than sftp are refused.
//! - **Uploads:** `exec` of `scp -t [-r] [-p] [-d] TARGET` (what `scp -O` sends) runs the
//!   legacy SCP sink ([`scp`]); `subsystem sftp` runs an SFTP server over a write-oriented
//!   fake filesystem ([`sftp`], what `scp` without `-O` and SFTP clients use). Each file is
//!   a `session.file_write` event (path, SHA-256, length) of at most `max_upload` bytes (default
//!   10MiB; a longer file is cut, hashed over what was kept and tagged
//!   `ssh.upload_truncated`); one connection keeps at most 4 x `max_upload` over all its
//!   files. Nothing is buffered in memory: with `store_uploads = true` the kept bytes are
//!   streamed to a temporary file and stored once as `DATA_DIR/uploads/SHA256`; by default
//!   they are only hashed ([`upload`]).
//! - **Algorithms** stay consistent with the version claimed: each profile offers OpenSSH's
//!   lists minus what russh lacks (sntrup761x25519-sha512, the umac MACs), never CBC, 3DES or
//!   hmac-md5 behind an OpenSSH 8/9 banner.
//! - **Host keys** (RSA 3072, ECDSA P-256, Ed25519) are made on first start and kept in the
//!   data dir ([`keys`]), so the sensor's identity survives restarts.
//!
//! One russh 0.65.1 behaviour cannot be worked around from outside russh: in the
//! authentication phase it silently drops a second `SERVICE_REQUEST ssh-userauth`, which
//! paramiko's classic `Transport` sends before every attempt, so such a client's second
//! password never comes and it waits for an answer that never comes either. OpenSSH accepts
//! the repeated request. The persona notices the stall (the client sent bytes after a refusal,
//! and no new attempt followed within `stall_timeout`), records it (`rule.match` tag
//! `ssh.auth_stalled`) and disconnects, so the client fails fast and can reconnect.
//!
//! Limits: the listener's idle timeout (russh's inactivity timeout), session time and bytes
//! in (counted under russh), `login_grace` to log in (OpenSSH's LoginGraceTime), at most
//! [`MAX_CHANNELS`] channels per connection; for uploads `max_upload` per file, 4 x
//! `max_upload` per connection, [`upload::MAX_HANDLES`] SFTP handles per connection, SFTP
//! packets of at most [`sftp::MAX_PACKET`] bytes, SCP control lines of at most
//! [`scp::MAX_LINE`] bytes.

pub mod hello;
pub mod keys;
pub mod scp;
pub mod sftp;
pub mod tee;
pub mod upload;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use honeyport_event::{EndReason, EventKind, Payload, Transport};
use russh::keys::ssh_key::HashAlg;
use russh::keys::{Algorithm, EcdsaCurve};
use russh::server::{Auth, Msg, Session};
use russh::{
    cipher, compression, kex, mac, Channel, ChannelId, ChannelOpenFailure, Disconnect, MethodKind,
    MethodSet, Preferred, SshId,
};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::creds::{CredPolicy, CredentialsRaw};
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::listener::conn::{Conn, End};
use crate::shell::fs::{resolve, Fs};
use crate::shell::{Profile, Shell, ShellEvent};
use hello::Found;

/// Channels one connection may open.
pub const MAX_CHANNELS: usize = 10;
const DEFAULT_MAX_UPLOAD: u64 = 10 << 20;
const MAX_UPLOAD_LIMIT: u64 = 1 << 30;
/// How long the sftp servers of an ended connection get to record their open files.
const SFTP_DRAIN: Duration = Duration::from_secs(2);
/// Events a connection may have waiting to be recorded (the handler waits beyond that).
const EVENT_QUEUE: usize = 256;
const PROFILES: &[&str] = &["openssh9", "openssh8"];
const METHODS: &[&str] = &["password", "keyboard-interactive", "publickey"];

/// `[personas.NAME]` with `type = "ssh"`, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshRaw {
    /// Another persona whose fields this one starts from.
    pub inherit: Option<String>,
    /// Free text for people; not used.
    pub description: Option<String>,
    /// Which server to imitate: "openssh9" (Debian 12's OpenSSH 9.2p1, default) or
    /// "openssh8" (Ubuntu 20.04's OpenSSH 8.2p1). Picks the version line and algorithms.
    pub profile: Option<String>,
    /// The identification line instead of the profile's, e.g. "SSH-2.0-OpenSSH_9.6p1
    /// Ubuntu-3ubuntu13" (keep it consistent with the profile's algorithms).
    pub version: Option<String>,
    /// Host name in the shell's prompt. Default: the shell profile's.
    pub hostname: Option<String>,
    /// The shell profile a logged-in client gets. Default "debian_server".
    pub shell: Option<String>,
    /// Login methods offered, of "password", "keyboard-interactive", "publickey".
    /// Default: all three (public keys are recorded and always refused).
    pub methods: Option<Vec<String>>,
    /// Failed attempts before the connection is closed (MaxAuthTries). Default 6.
    pub max_attempts: Option<u32>,
    /// Pause before a refusal is sent (PAM's failure delay). Default "2s", at most "60s".
    pub fail_delay: Option<NumOrStr>,
    /// Time to log in before the connection is closed (LoginGraceTime). Default "120s".
    pub login_grace: Option<NumOrStr>,
    /// A client that sent something after a refusal but no new attempt for this long is
    /// stalled (see the module docs) and disconnected. Default "5s".
    pub stall_timeout: Option<NumOrStr>,
    /// Sent when a shell starts. Default: Debian's login banner.
    pub motd: Option<String>,
    /// Folder with the host keys (`ssh_host_{rsa,ecdsa,ed25519}_key`, OpenSSH format),
    /// relative to the config file; missing keys are generated there. Default: `ssh` in the
    /// data dir. Point it at an existing host's keys to keep its identity.
    pub host_keys: Option<String>,
    /// Bytes kept of each uploaded file (SCP, SFTP); a longer file is cut, hashed over
    /// what was kept and tagged `ssh.upload_truncated`. Default "10MiB", at most "1GiB".
    /// One connection keeps at most 4 times this over all its files.
    pub max_upload: Option<NumOrStr>,
    /// Write each upload's kept bytes once to `DATA_DIR/uploads/SHA256` (streamed to a
    /// temporary file, then renamed). Default false: uploads are only hashed.
    pub store_uploads: Option<bool>,
    /// Which credentials get in (see [`super::creds`]).
    pub credentials: Option<CredentialsRaw>,
}

impl SshRaw {
    /// A copy with unset fields taken from `base`; credential fields merge one by one.
    pub fn merged_over(&self, base: &SshRaw) -> SshRaw {
        let mut m = crate::persona::merge_fields!(
            SshRaw,
            self,
            base,
            [inherit, description, profile, version, hostname, shell, methods, max_attempts, fail_delay, login_grace, stall_timeout, motd, host_keys, max_upload, store_uploads], credentials: None
        );
        m.credentials = match (&self.credentials, &base.credentials) {
            (Some(a), Some(b)) => Some(a.merged_over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        m.inherit = base.inherit.clone();
        m
    }

    pub fn validate(&self, at: &str, _base_dir: &Path, p: &mut Problems<'_>) {
        if let Some(s) = &self.profile {
            if !PROFILES.contains(&s.as_str()) {
                p.at(
                    &format!("{at}.profile"),
                    format!("{s:?} is not one of {}", PROFILES.join(", ")),
                );
            }
        }
        if let Some(v) = &self.version {
            // RFC 4253 4.2: "SSH-2.0-softwareversion SP comments", at most 255 bytes with CR LF.
            if !v.starts_with("SSH-2.0-")
                || v.len() > 253
                || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            {
                p.at(
                    &format!("{at}.version"),
                    "must start with \"SSH-2.0-\", be one line and at most 253 bytes",
                );
            }
        }
        if let Some(s) = &self.shell {
            if !Profile::BUILTIN.contains(&s.as_str()) {
                p.at(
                    &format!("{at}.shell"),
                    format!(
                        "{s:?} is not a shell profile (known: {})",
                        Profile::BUILTIN.join(", ")
                    ),
                );
            }
        }
        if let Some(m) = &self.methods {
            for (i, x) in m.iter().enumerate() {
                if !METHODS.contains(&x.as_str()) {
                    p.at(
                        &format!("{at}.methods[{i}]"),
                        format!("{x:?} is not one of {}", METHODS.join(", ")),
                    );
                }
            }
            if m.is_empty() {
                p.at(&format!("{at}.methods"), "offer at least one method");
            }
        }
        if let Some(n) = self.max_attempts {
            if !(1..=100).contains(&n) {
                p.at(&format!("{at}.max_attempts"), "must be between 1 and 100");
            }
        }
        for (name, v, max) in [
            ("fail_delay", &self.fail_delay, 60),
            ("login_grace", &self.login_grace, 3600),
            ("stall_timeout", &self.stall_timeout, 600),
        ] {
            if let Some(d) = v {
                match d.duration() {
                    Ok(d) if d > Duration::from_secs(max) => {
                        p.at(&format!("{at}.{name}"), format!("must be at most {max}s"))
                    }
                    Ok(_) => {}
                    Err(e) => p.at(&format!("{at}.{name}"), e),
                }
            }
        }
        if let Some(v) = &self.max_upload {
            match v.size() {
                Ok(n) if n > MAX_UPLOAD_LIMIT => {
                    p.at(&format!("{at}.max_upload"), "must be at most 1GiB")
                }
                Ok(0) => p.at(&format!("{at}.max_upload"), "must be at least 1 byte"),
                Ok(_) => {}
                Err(e) => p.at(&format!("{at}.max_upload"), e),
            }
        }
        if self.host_keys.as_ref().is_some_and(|d| d.is_empty()) {
            p.at(&format!("{at}.host_keys"), "path is empty");
        }
        if self.motd.as_ref().is_some_and(|s| s.len() > 64 << 10) {
            p.at(&format!("{at}.motd"), "must be at most 64KiB");
        }
        if let Some(c) = &self.credentials {
            c.validate(&format!("{at}.credentials"), p);
        }
    }

    /// SSH is a TCP protocol, and brings its own encryption.
    pub fn validate_final(&self, at: &str, transports: &[Transport], p: &mut Problems<'_>) {
        if transports.contains(&Transport::Udp) {
            p.at(
                &format!("{at}.persona"),
                "an ssh persona needs TCP (transport = \"udp\" given)",
            );
        }
    }

    pub fn build(&self, base_dir: &Path) -> Result<Ssh, String> {
        let shell = self.shell.as_deref().unwrap_or("debian_server");
        let mut profile =
            Profile::builtin(shell).ok_or_else(|| format!("unknown shell profile {shell:?}"))?;
        if let Some(h) = &self.hostname {
            profile.hostname = h.clone();
        }
        let product = self.profile.as_deref().unwrap_or("openssh9");
        let dur = |v: &Option<NumOrStr>, d: u64| -> Result<Duration, String> {
            v.as_ref()
                .map(NumOrStr::duration)
                .transpose()
                .map(|x| x.unwrap_or(Duration::from_secs(d)))
        };
        let methods: Vec<String> = self
            .methods
            .clone()
            .unwrap_or_else(|| METHODS.iter().map(|s| s.to_string()).collect());
        let motd = self.motd.clone().unwrap_or_else(|| DEBIAN_MOTD.to_string());
        let fs = Arc::new(Fs::from_profile(&profile));
        Ok(Ssh {
            inner: Arc::new(Inner {
                version: self
                    .version
                    .clone()
                    .unwrap_or_else(|| version_of(product).to_string()),
                product: product.to_string(),
                motd: motd
                    .replace('\n', "\r\n")
                    .replace("\r\r\n", "\r\n")
                    .into_bytes(),
                host: profile.hostname.clone(),
                profile: Arc::new(profile),
                creds: self.credentials.clone().unwrap_or_default().build()?,
                methods,
                max_attempts: self.max_attempts.unwrap_or(6),
                fail_delay: dur(&self.fail_delay, 2)?,
                login_grace: dur(&self.login_grace, 120)?,
                stall_timeout: dur(&self.stall_timeout, 5)?,
                host_keys: self.host_keys.as_ref().map(|d| base_dir.join(d)),
                fs,
                max_upload: self
                    .max_upload
                    .as_ref()
                    .map(NumOrStr::size)
                    .transpose()?
                    .unwrap_or(DEFAULT_MAX_UPLOAD),
                store_uploads: self.store_uploads.unwrap_or(false),
            }),
            russh: OnceLock::new(),
            uploads_dir: OnceLock::new(),
        })
    }
}

const DEBIAN_MOTD: &str = "Linux {host} 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 \
(2023-09-29) x86_64\n\nThe programs included with the Debian GNU/Linux system are free \
software;\nthe exact distribution terms for each program are described in the\nindividual \
files in /usr/share/doc/*/copyright.\n\nDebian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to \
the extent\npermitted by applicable law.\n";

fn version_of(product: &str) -> &'static str {
    match product {
        "openssh8" => "SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11",
        _ => "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
    }
}

/// OpenSSH's default lists for the profile, minus what russh 0.65.1 does not implement
/// (sntrup761x25519-sha512@openssh.com; umac-64/128 and their -etm forms).
fn preferred(product: &str) -> Preferred {
    let mut kex_list = vec![
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::ECDH_SHA2_NISTP256,
        kex::ECDH_SHA2_NISTP384,
        kex::ECDH_SHA2_NISTP521,
        kex::DH_GEX_SHA256,
        kex::DH_G16_SHA512,
        kex::DH_G18_SHA512,
        kex::DH_G14_SHA256,
    ];
    if product == "openssh9" {
        // Debian 12's 9.2p1-2+deb12u2 and later carry the Terrapin fix (strict KEX).
        kex_list.push(kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER);
    }
    Preferred {
        kex: Cow::Owned(kex_list),
        key: Cow::Owned(vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ed25519,
        ]),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Owned(vec![
            cipher::CHACHA20_POLY1305,
            cipher::AES_128_CTR,
            cipher::AES_192_CTR,
            cipher::AES_256_CTR,
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
        ]),
        mac: Cow::Owned(vec![
            mac::HMAC_SHA256_ETM,
            mac::HMAC_SHA512_ETM,
            mac::HMAC_SHA1_ETM,
            mac::HMAC_SHA256,
            mac::HMAC_SHA512,
            mac::HMAC_SHA1,
        ]),
        compression: Cow::Owned(vec![compression::NONE, compression::ZLIB_LEGACY]),
    }
}

/// A built ssh persona. Its russh configuration (with the host keys) is made by
/// [`Ssh::prepare`] once the data dir is known.
pub struct Ssh {
    inner: Arc<Inner>,
    russh: OnceLock<Arc<russh::server::Config>>,
    /// `DATA_DIR/uploads` when uploads are stored.
    uploads_dir: OnceLock<std::path::PathBuf>,
}

struct Inner {
    version: String,
    product: String,
    motd: Vec<u8>,
    host: String,
    profile: Arc<Profile>,
    creds: CredPolicy,
    methods: Vec<String>,
    max_attempts: u32,
    fail_delay: Duration,
    login_grace: Duration,
    stall_timeout: Duration,
    host_keys: Option<std::path::PathBuf>,
    /// The shell profile's tree, for SCP targets and SFTP's stat.
    fs: Arc<Fs>,
    max_upload: u64,
    store_uploads: bool,
}

impl Inner {
    fn method_set(&self) -> MethodSet {
        let kinds: Vec<MethodKind> = self
            .methods
            .iter()
            .filter_map(|m| match m.as_str() {
                "password" => Some(MethodKind::Password),
                "keyboard-interactive" => Some(MethodKind::KeyboardInteractive),
                "publickey" => Some(MethodKind::PublicKey),
                _ => None,
            })
            .collect();
        MethodSet::from(&kinds[..])
    }

    /// A refusal that offers every method again (russh would drop the refused one).
    fn reject(&self) -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(self.method_set()),
            partial_success: false,
        }
    }
}

impl Ssh {
    /// Loads or makes the host keys under `data_dir/ssh` and builds the russh configuration.
    pub fn prepare(&self, data_dir: &Path, idle_timeout: Duration) -> Result<(), String> {
        if self.russh.get().is_some() {
            return Ok(());
        }
        let i = &self.inner;
        if i.store_uploads && self.uploads_dir.get().is_none() {
            let _ = self.uploads_dir.set(upload::prepare_dir(data_dir)?);
        }
        let dir = i.host_keys.clone().unwrap_or_else(|| data_dir.join("ssh"));
        let keys = keys::load_or_create(&dir, &format!("root@{}", i.host))?;
        let cfg = russh::server::Config {
            server_id: SshId::Standard(Cow::Owned(i.version.clone())),
            methods: i.method_set(),
            auth_rejection_time: i.fail_delay,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys,
            // russh counts the first "none" probe as an attempt; OpenSSH does not.
            max_auth_attempts: i.max_attempts as usize + 1,
            inactivity_timeout: Some(idle_timeout),
            keepalive_interval: None,
            nodelay: true,
            preferred: preferred(&i.product),
            ..Default::default()
        };
        let _ = self.russh.set(Arc::new(cfg));
        Ok(())
    }

    /// Serves one connection.
    pub async fn serve(&self, conn: &mut Conn) -> End {
        let Some(cfg) = self.russh.get().cloned() else {
            tracing::error!("ssh persona served before prepare()");
            return End::new(EndReason::Internal);
        };
        let Some(tcp) = conn.take_tcp() else {
            // Validation keeps ssh off UDP; a TLS listener would wrap SSH in TLS.
            tracing::error!("ssh persona needs a plain TCP connection");
            return End::new(EndReason::Internal);
        };
        let seen: tee::Shared = Default::default();
        let stream = tee::Tee::new(tcp, seen.clone(), conn.bytes_in_left());
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let watch: Arc<Mutex<Watch>> = Default::default();
        let tasks: Tasks = Default::default();
        let handler = Handler {
            p: self.inner.clone(),
            src: conn.meta().src.ip(),
            tx,
            watch: watch.clone(),
            seen: seen.clone(),
            user: Vec::new(),
            ptys: HashMap::new(),
            shells: HashMap::new(),
            channels: 0,
            pending: HashMap::new(),
            scps: HashMap::new(),
            uploads: Arc::new(upload::Uploads::new(
                self.inner.max_upload,
                self.uploads_dir.get().cloned(),
            )),
            tasks: tasks.clone(),
        };
        let started = Instant::now();
        let mut recorder = Recorder::default();
        let running = match russh::server::run_stream(cfg, stream, handler).await {
            Ok(r) => r,
            Err(e) => {
                lock(&seen).finish();
                if let Some(why) = recorder.take_seen(conn, &seen).await {
                    conn.emit(tag(why, 0)).await;
                }
                recorder.finish(conn, &seen);
                tracing::debug!("ssh: {e}");
                return End::persona();
            }
        };
        let handle = running.handle();
        let mut running = Box::pin(running);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut unanswered: Option<(Instant, Instant)> = None;
        let end: Result<End, End> = loop {
            tokio::select! {
                r = &mut running => break Ok(session_end(r, &seen)),
                Some(ev) = rx.recv() => {
                    // What was seen under russh happened before anything russh reports.
                    let stop = recorder.take_seen(conn, &seen).await;
                    recorder.record(conn, ev).await;
                    if let Some(why) = stop {
                        conn.emit(tag(why, 0)).await;
                        break Ok(End::persona());
                    }
                }
                _ = tick.tick() => {
                    if let Some(why) = recorder.take_seen(conn, &seen).await {
                        conn.emit(tag(why, 0)).await;
                        break Ok(End::persona());
                    }
                    let w = *lock(&watch);
                    if !w.authenticated && started.elapsed() > self.inner.login_grace {
                        break Err(End::limit("ssh_login_grace"));
                    }
                    let bytes_now = lock(&seen).bytes_in;
                    if w.stalled(bytes_now, self.inner.stall_timeout, &mut unanswered) {
                        conn.emit(tag("ssh.auth_stalled", w.rejections as usize)).await;
                        let _ = handle
                            .disconnect(
                                Disconnect::ByApplication,
                                "Too many authentication failures".into(),
                                String::new(),
                            )
                            .await;
                        break Ok(End::persona());
                    }
                }
                r = conn.until_end(std::future::pending::<()>()) => match r {
                    Err(e) => break Err(e),
                    Ok(()) => unreachable!("pending never completes"),
                },
            }
        };
        // Closes the connection (if russh has not) before the rest is recorded.
        drop(running);
        // The sftp servers see their channel end and record the files still open.
        let pending: Vec<_> = std::mem::take(&mut *lock(&tasks));
        let deadline = Instant::now() + SFTP_DRAIN;
        for mut t in pending {
            let drained = tokio::time::timeout_at(deadline, async {
                loop {
                    tokio::select! {
                        _ = &mut t => break,
                        Some(ev) = rx.recv() => recorder.record(conn, ev).await,
                    }
                }
            })
            .await;
            if drained.is_err() {
                t.abort();
            }
        }
        lock(&seen).finish();
        if let Some(why) = recorder.take_seen(conn, &seen).await {
            conn.emit(tag(why, 0)).await;
        }
        while let Ok(ev) = rx.try_recv() {
            recorder.record(conn, ev).await;
        }
        recorder.finish(conn, &seen);
        match end {
            Ok(e) | Err(e) => e,
        }
    }
}

fn tag(rule: &str, len: usize) -> EventKind {
    EventKind::RuleMatch {
        rule: rule.to_string(),
        action: "tag".into(),
        match_len: len as u64,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How the russh session ended, as a session end.
fn session_end(r: Result<(), russh::Error>, seen: &tee::Shared) -> End {
    if lock(seen).over_limit {
        return End::limit("max_bytes_in");
    }
    match r {
        Ok(()) => End::new(EndReason::PeerClosed),
        Err(russh::Error::InactivityTimeout) => End::new(EndReason::IdleTimeout),
        Err(russh::Error::IO(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            End::new(EndReason::PeerClosed)
        }
        Err(russh::Error::Disconnect) => End::new(EndReason::PeerClosed),
        Err(e) => {
            tracing::debug!("ssh session: {e}");
            End::persona()
        }
    }
}

/// Moves what happened under and inside russh into the session's record.
#[derive(Default)]
struct Recorder {
    clear_recorded: u64,
}

impl Recorder {
    async fn record(&mut self, conn: &mut Conn, ev: EventKind) {
        let fetch = match &ev {
            EventKind::FileDownload { url, command, .. } => Some((url.clone(), command.clone())),
            _ => None,
        };
        conn.emit(ev).await;
        if let Some((url, command)) = fetch {
            conn.fetch_download(&url, &command).await;
        }
    }

    /// Records the clear-text bytes and findings seen so far; a reason to stop when the
    /// client's first bytes are not SSH.
    async fn take_seen(&mut self, conn: &mut Conn, seen: &tee::Shared) -> Option<&'static str> {
        let (clear, found) = {
            let mut s = lock(seen);
            (std::mem::take(&mut s.clear), std::mem::take(&mut s.found))
        };
        if !clear.is_empty() {
            self.clear_recorded += clear.len() as u64;
            conn.record_input_bytes(&clear).await;
        }
        let mut stop = None;
        for f in found {
            match f {
                Found::Version(v) => {
                    conn.emit(EventKind::ClientVersion {
                        version: Payload(v),
                    })
                    .await
                }
                Found::Garbage(l) => conn.emit(tag("ssh.not_a_version_line", l.len())).await,
                Found::KexInit(k) => conn.emit(kex_event(&k)).await,
                Found::Malformed(why) => stop = Some(why),
            }
        }
        stop
    }

    /// Counts the bytes that were not recorded (encrypted), and everything sent.
    fn finish(&self, conn: &mut Conn, seen: &tee::Shared) {
        let s = lock(seen);
        conn.count_io(s.bytes_in.saturating_sub(self.clear_recorded), s.bytes_out);
    }
}

fn kex_event(k: &hello::KexInit) -> EventKind {
    EventKind::ClientKex {
        hassh: k.hassh(),
        hassh_algorithms: k.hassh_algorithms(),
        kex_algs: k.kex.clone(),
        key_algs: k.host_key.clone(),
        enc_cs: k.enc_c2s.clone(),
        mac_cs: k.mac_c2s.clone(),
        comp_cs: k.comp_c2s.clone(),
        lang_cs: k.lang_c2s.clone(),
    }
}

/// Authentication progress, for the stall check.
#[derive(Clone, Copy, Debug, Default)]
struct Watch {
    authenticated: bool,
    rejections: u32,
    /// When the last attempt was answered, and the client's byte count then.
    last: Option<(Instant, u64)>,
    /// A keyboard-interactive prompt is out (the client's answer is a new attempt).
    prompting: bool,
}

impl Watch {
    /// After a refusal the client sent something, and for `stall` since those bytes were
    /// first seen no new attempt reached the handler. `seen` keeps (the answer, when bytes
    /// after it were first seen) from one check to the next.
    fn stalled(
        &self,
        bytes_now: u64,
        stall: Duration,
        seen: &mut Option<(Instant, Instant)>,
    ) -> bool {
        let waiting = !(self.authenticated || self.prompting || self.rejections == 0);
        match self.last {
            Some((at, bytes)) if waiting && !stall.is_zero() && bytes_now > bytes => {
                let first = match *seen {
                    Some((a, f)) if a == at => f,
                    _ => {
                        let f = Instant::now();
                        *seen = Some((at, f));
                        f
                    }
                };
                first.elapsed() >= stall
            }
            _ => {
                *seen = None;
                false
            }
        }
    }
}

/// The sftp servers a connection started.
type Tasks = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

/// A channel running the SCP sink, and the file it is receiving.
struct ScpChan {
    sink: scp::Sink,
    cur: Option<(Vec<u8>, upload::Upload)>,
}

struct ShellChan {
    shell: Box<Shell>,
    line: Vec<u8>,
    pty: bool,
    after_cr: bool,
}

/// One connection's russh handler: judges logins, runs the shell, and sends every event to
/// the session's recorder.
struct Handler {
    p: Arc<Inner>,
    src: IpAddr,
    tx: mpsc::Sender<EventKind>,
    watch: Arc<Mutex<Watch>>,
    seen: tee::Shared,
    user: Vec<u8>,
    ptys: HashMap<ChannelId, Option<Vec<u8>>>,
    shells: HashMap<ChannelId, ShellChan>,
    channels: usize,
    /// Session channels with no shell, exec or subsystem request yet: kept so that an sftp
    /// request can take the channel over as a stream. Dropped at the first other request
    /// or data (russh would otherwise wait on a full, unread channel queue).
    pending: HashMap<ChannelId, Channel<Msg>>,
    scps: HashMap<ChannelId, ScpChan>,
    uploads: Arc<upload::Uploads>,
    tasks: Tasks,
}

/// Longest line the shell gets from an interactive channel.
const MAX_LINE: usize = 16 << 10;

impl Handler {
    async fn emit(&self, ev: EventKind) {
        let _ = self.tx.send(ev).await;
    }

    fn answered(&self, a: &Auth) {
        let bytes = lock(&self.seen).bytes_in;
        let mut w = lock(&self.watch);
        w.last = Some((Instant::now(), bytes));
        w.prompting = matches!(a, Auth::Partial { .. });
        match a {
            Auth::Accept => w.authenticated = true,
            Auth::Reject { .. } | Auth::UnsupportedMethod => w.rejections += 1,
            Auth::Partial { .. } => {}
        }
    }

    async fn login(&mut self, user: &str, password: &[u8], method: &str) -> Auth {
        let ok = self.p.creds.check(self.src, user.as_bytes(), password);
        let (username, password) = (
            Payload(user.as_bytes().to_vec()),
            Payload(password.to_vec()),
        );
        let method = method.to_string();
        self.emit(if ok {
            EventKind::LoginSuccess {
                username,
                password,
                method,
            }
        } else {
            EventKind::LoginFailed {
                username,
                password,
                method,
            }
        })
        .await;
        let a = if ok {
            self.user = user.as_bytes().to_vec();
            Auth::Accept
        } else {
            self.p.reject()
        };
        self.answered(&a);
        a
    }

    async fn shell_events(&self, events: Vec<ShellEvent>) {
        for e in events {
            self.emit(e.into()).await;
        }
    }

    /// Acts on what the SCP sink found: replies to send, files to hash and record.
    async fn scp_steps(&self, ch: &mut ScpChan, steps: Vec<scp::Step>) -> Vec<u8> {
        let mut out = Vec::new();
        for st in steps {
            match st {
                scp::Step::Reply(r) => out.extend_from_slice(&r),
                scp::Step::File { path, .. } => {
                    if let Some((p, u)) = ch.cur.take() {
                        self.record_upload(&p, u).await;
                    }
                    ch.cur = Some((path, self.uploads.start().await));
                }
                scp::Step::Data(d) => {
                    if let Some((_, u)) = &mut ch.cur {
                        u.write(&self.uploads, &d).await;
                    }
                }
                scp::Step::FileEnd { .. } => {
                    if let Some((p, u)) = ch.cur.take() {
                        self.record_upload(&p, u).await;
                    }
                }
                scp::Step::Dir(_) => {}
            }
        }
        out
    }

    async fn record_upload(&self, path: &[u8], u: upload::Upload) {
        let f = u.finish(&self.uploads).await;
        self.uploads.remember(
            path,
            upload::Kept {
                len: f.len,
                sha256: f.sha256.clone(),
                stored: f.stored.clone(),
            },
        );
        for ev in upload::events(path, &f) {
            self.emit(ev).await;
        }
    }

    /// Ends an SCP channel: a file in progress is recorded with what came.
    async fn scp_end(&mut self, channel: ChannelId) -> bool {
        let Some(mut ch) = self.scps.remove(&channel) else {
            return false;
        };
        let steps = ch.sink.finish();
        self.scp_steps(&mut ch, steps).await;
        if let Some((p, u)) = ch.cur.take() {
            self.record_upload(&p, u).await;
        }
        true
    }

    fn new_shell(&self, pty: bool) -> Box<Shell> {
        let mut s = Box::new(Shell::new(self.p.profile.clone(), &self.user));
        s.set_tty(pty);
        s
    }
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(self.p.reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, password.as_bytes(), "ssh-password").await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let answer = match response {
            None => {
                let a = Auth::Partial {
                    name: Cow::Borrowed(""),
                    instructions: Cow::Borrowed(""),
                    prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
                };
                self.answered(&a);
                return Ok(a);
            }
            Some(r) => r.into_iter().next().map(|b| b.to_vec()).unwrap_or_default(),
        };
        Ok(self.login(user, &answer, "ssh-keyboard-interactive").await)
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let key = offer.public_key;
        self.emit(EventKind::ClientFingerprint {
            username: Payload(user.as_bytes().to_vec()),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            key: key.to_openssh().unwrap_or_default(),
            key_type: key.algorithm().to_string(),
        })
        .await;
        let a = self.p.reject();
        self.answered(&a);
        Ok(a)
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let a = self.p.reject();
        self.answered(&a);
        Ok(a)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels += 1;
        self.pending.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.emit(EventKind::ForwardRequest {
            kind: "direct-tcpip".into(),
            host: Payload(host_to_connect.as_bytes().to_vec()),
            port: port_to_connect,
            orig_host: Some(Payload(originator_address.as_bytes().to_vec())),
            orig_port: Some(originator_port),
        })
        .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.emit(EventKind::ForwardRequest {
            kind: "tcpip-forward".into(),
            host: Payload(address.as_bytes().to_vec()),
            port: *port,
            orig_host: None,
            orig_port: None,
        })
        .await;
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.emit(EventKind::ClientSize {
            width: col_width,
            height: row_height,
            term: Some(Payload(term.as_bytes().to_vec())),
        })
        .await;
        self.ptys.insert(channel, Some(term.as_bytes().to_vec()));
        session.channel_success(channel)?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        _channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.emit(EventKind::ClientSize {
            width: col_width,
            height: row_height,
            term: None,
        })
        .await;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.emit(EventKind::ClientVar {
            name: Payload(variable_name.as_bytes().to_vec()),
            value: Payload(variable_value.as_bytes().to_vec()),
        })
        .await;
        // Debian's sshd_config: AcceptEnv LANG LC_*
        if variable_name == "LANG" || variable_name.starts_with("LC_") {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        let pty = self.ptys.contains_key(&channel);
        let shell = self.new_shell(pty);
        session.channel_success(channel)?;
        if pty {
            let motd = self.p.motd.clone();
            let motd = String::from_utf8_lossy(&motd).replace("{host}", &self.p.host);
            let mut out = motd.into_bytes();
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&shell.prompt());
            session.data(channel, out)?;
        }
        self.shells.insert(
            channel,
            ShellChan {
                shell,
                line: Vec::new(),
                pty,
                after_cr: false,
            },
        );
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        let line = &data[..data.len().min(MAX_LINE)];
        if let Some(cmd) = scp::parse_command(line) {
            self.emit(EventKind::CommandInput {
                input: Payload(line.to_vec()),
                recognised: true,
            })
            .await;
            let target = match cmd.target.strip_prefix(b"~") {
                Some(rest) => [b"/root".as_slice(), rest].concat(),
                None => cmd.target.clone(),
            };
            let abs = resolve(b"/root", &target);
            let is_dir = cmd.dir || target.ends_with(b"/") || self.p.fs.is_dir(&abs);
            session.channel_success(channel)?;
            if let scp::Step::Reply(r) = scp::Sink::hello() {
                session.data(channel, r)?;
            }
            self.scps.insert(
                channel,
                ScpChan {
                    sink: scp::Sink::new(&abs, is_dir),
                    cur: None,
                },
            );
            return Ok(());
        }
        let pty = self.ptys.contains_key(&channel);
        let mut shell = self.new_shell(pty);
        session.channel_success(channel)?;
        let out = shell.run_line(&data[..data.len().min(MAX_LINE)]);
        self.shell_events(out.events).await;
        if !out.output.is_empty() {
            session.data(channel, out.output)?;
        }
        session.exit_status_request(channel, shell.status() as u32)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let chan = self.pending.remove(&channel);
        let sftp = name == "sftp";
        self.emit(EventKind::CommandInput {
            input: Payload(format!("subsystem {name}").into_bytes()),
            recognised: sftp,
        })
        .await;
        match chan {
            Some(chan) if sftp => {
                session.channel_success(channel)?;
                let server =
                    sftp::Server::new(self.p.fs.clone(), self.uploads.clone(), self.tx.clone());
                let handle = session.handle();
                let task = tokio::spawn(async move {
                    server.run(chan.into_stream()).await;
                    // As OpenSSH does when sftp-server exits.
                    let _ = handle.exit_status_request(channel, 0).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                });
                lock(&self.tasks).push(task);
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        if let Some(mut ch) = self.scps.remove(&channel) {
            let steps = ch.sink.feed(data);
            let out = self.scp_steps(&mut ch, steps).await;
            self.scps.insert(channel, ch);
            if !out.is_empty() {
                session.data(channel, out)?;
            }
            return Ok(());
        }
        let Some(ch) = self.shells.get_mut(&channel) else {
            return Ok(());
        };
        let mut out: Vec<u8> = Vec::new();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut exit = false;
        for &b in data {
            match b {
                b'\n' if ch.after_cr => ch.after_cr = false,
                b'\r' | b'\n' => {
                    ch.after_cr = b == b'\r';
                    if ch.pty {
                        out.extend_from_slice(b"\r\n");
                    }
                    lines.push(std::mem::take(&mut ch.line));
                }
                0x7f | 0x08 if ch.pty => {
                    if ch.line.pop().is_some() {
                        out.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x03 if ch.pty => {
                    ch.line.clear();
                    out.extend_from_slice(b"^C\r\n");
                    out.extend_from_slice(&ch.shell.prompt());
                }
                0x04 if ch.line.is_empty() => {
                    exit = true;
                    break;
                }
                _ => {
                    ch.after_cr = false;
                    if ch.line.len() < MAX_LINE {
                        ch.line.push(b);
                        if ch.pty {
                            out.push(b);
                        }
                    }
                }
            }
        }
        let mut events = Vec::new();
        for l in lines {
            let r = ch.shell.run_line(&l);
            events.extend(r.events);
            out.extend_from_slice(&r.output);
            if r.exit {
                exit = true;
                break;
            }
            if ch.pty {
                out.extend_from_slice(&ch.shell.prompt());
            }
        }
        let status = ch.shell.status();
        if exit {
            out.extend_from_slice(if ch.pty { b"logout\r\n" } else { b"" });
            self.shells.remove(&channel);
        }
        self.shell_events(events).await;
        if !out.is_empty() {
            session.data(channel, out)?;
        }
        if exit {
            session.exit_status_request(channel, status as u32)?;
            session.eof(channel)?;
            session.close(channel)?;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(ch) = self.shells.remove(&channel) {
            session.exit_status_request(channel, ch.shell.status() as u32)?;
            session.eof(channel)?;
            session.close(channel)?;
        }
        if self.scp_end(channel).await {
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            session.close(channel)?;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        self.scp_end(channel).await;
        Ok(())
    }
}
