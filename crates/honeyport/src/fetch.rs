//! Real downloads of what an attacker asks the fake shell to fetch. Off by default: URLs are
//! recorded (`session.file_download`) and nothing is fetched. With
//!
//! ```toml
//! [downloads]
//! enabled = true
//! max_bytes = "8MiB"       # longer bodies are cut there (and marked truncated)
//! timeout = "30s"          # the whole fetch, redirects included
//! dir = "downloads"        # relative to the data dir; files are named by SHA-256
//! allow_private = false    # refuse loopback, private, link-local, CGNAT... destinations
//! max_concurrent = 8
//! max_redirects = 5
//! ```
//!
//! each `wget`/`curl` (HTTP and HTTPS) and `tftp` (TFTP RRQ, octet mode) URL is fetched while
//! the command "runs", like the real tool would, and stored once under `dir/SHA256`; the
//! session then records `session.file_download.fetched` (sha256, length, truncated, final URL
//! after redirects) or `session.file_download.failed` (why). `ftpget`/`ftp://` URLs are
//! recorded only.
//!
//! The peer is hostile and so is whatever it points us at: every destination address (after
//! DNS, and again for every redirect) must be a public unicast address unless
//! `allow_private`; headers are capped, the body is streamed to disk up to `max_bytes`, the
//! whole fetch has one deadline, and at most `max_concurrent` run at once. TLS certificates are
//! not verified (malware hosts rarely have valid ones); nothing fetched is ever executed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use honeyport_event::{EventKind, Payload};
use http_body_util::BodyExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::config::units::NumOrStr;
use crate::config::Problems;

/// `[downloads]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadsRaw {
    /// Fetch what the shell is asked to download. Default false (record only).
    pub enabled: Option<bool>,
    /// Longest body kept. Default "8MiB", at most "1GiB".
    pub max_bytes: Option<NumOrStr>,
    /// Deadline for one whole fetch. Default "30s", at most "10m".
    pub timeout: Option<NumOrStr>,
    /// Folder for the files, relative to the data dir. Default "downloads".
    pub dir: Option<String>,
    /// Allow loopback, private and other non-public destinations. Default false.
    pub allow_private: Option<bool>,
    /// Fetches at once (more wait for a slot within their deadline). Default 8.
    pub max_concurrent: Option<u32>,
    /// Redirects followed. Default 5.
    pub max_redirects: Option<u32>,
}

/// `[downloads]` validated; `None` in the config when downloads are off.
#[derive(Clone, Debug)]
pub struct Downloads {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub dir: PathBuf,
    pub allow_private: bool,
    pub max_concurrent: usize,
    pub max_redirects: u32,
}

impl DownloadsRaw {
    pub fn validate(&self, p: &mut Problems<'_>) -> Option<Downloads> {
        let mut d = Downloads {
            max_bytes: 8 << 20,
            timeout: Duration::from_secs(30),
            dir: PathBuf::from("downloads"),
            allow_private: self.allow_private.unwrap_or(false),
            max_concurrent: 8,
            max_redirects: 5,
        };
        if let Some(v) = &self.max_bytes {
            match v.size() {
                Ok(n) if (1024..=1 << 30).contains(&n) => d.max_bytes = n,
                Ok(_) => p.at("downloads.max_bytes", "must be between 1KiB and 1GiB"),
                Err(e) => p.at("downloads.max_bytes", e),
            }
        }
        if let Some(v) = &self.timeout {
            match v.duration() {
                Ok(t) if t >= Duration::from_secs(1) && t <= Duration::from_secs(600) => {
                    d.timeout = t
                }
                Ok(_) => p.at("downloads.timeout", "must be between 1s and 10m"),
                Err(e) => p.at("downloads.timeout", e),
            }
        }
        if let Some(dir) = &self.dir {
            if dir.is_empty() {
                p.at("downloads.dir", "path is empty");
            }
            d.dir = PathBuf::from(dir);
        }
        if let Some(n) = self.max_concurrent {
            match n {
                1..=256 => d.max_concurrent = n as usize,
                _ => p.at("downloads.max_concurrent", "must be between 1 and 256"),
            }
        }
        if let Some(n) = self.max_redirects {
            match n {
                0..=20 => d.max_redirects = n,
                _ => p.at("downloads.max_redirects", "must be at most 20"),
            }
        }
        self.enabled.unwrap_or(false).then_some(d)
    }
}

/// Why a fetch did not produce a file.
type Failure = String;

/// What one fetch produced.
#[derive(Debug, PartialEq)]
pub enum Fetched {
    Stored {
        sha256: String,
        len: u64,
        truncated: bool,
        final_url: Option<String>,
    },
    Failed(Failure),
}

impl Fetched {
    pub fn into_event(self, url: Payload) -> EventKind {
        match self {
            Fetched::Stored {
                sha256,
                len,
                truncated,
                final_url,
            } => EventKind::FileFetched {
                url,
                sha256,
                len,
                truncated,
                final_url,
            },
            Fetched::Failed(reason) => EventKind::FileFetchFailed { url, reason },
        }
    }
}

/// Fetches downloads for every session of a sensor.
pub struct Fetcher {
    cfg: Downloads,
    dir: PathBuf,
    slots: Semaphore,
    tls: tokio_rustls::TlsConnector,
}

const MAX_HEADERS: usize = 64 << 10;
const TFTP_BLOCK: usize = 512;
const TFTP_WAIT: Duration = Duration::from_secs(3);

impl Fetcher {
    /// Creates the downloads folder (relative paths resolve against `data_dir`).
    pub fn new(cfg: Downloads, data_dir: &Path) -> std::io::Result<Fetcher> {
        let dir = data_dir.join(&cfg.dir);
        std::fs::create_dir_all(&dir)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        Ok(Fetcher {
            slots: Semaphore::new(cfg.max_concurrent),
            cfg,
            dir,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Fetches `url` the way `command` (wget, curl, tftp, ftpget) would, within the deadline.
    pub async fn fetch(&self, url: &[u8], command: &str) -> Fetched {
        let t = self.cfg.timeout;
        match tokio::time::timeout(t, async {
            let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
            self.fetch_now(url, command).await
        })
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(reason)) => Fetched::Failed(reason),
            Err(_) => Fetched::Failed(format!("timed out after {}s", t.as_secs_f64())),
        }
    }

    async fn fetch_now(&self, raw: &[u8], command: &str) -> Result<Fetched, Failure> {
        let url = parse_url(raw, command)?;
        match url.scheme() {
            "http" | "https" => self.http(url, command).await,
            "tftp" => self.tftp(&url).await,
            other => Err(format!("{other} URLs are recorded, not fetched")),
        }
    }

    /// The addresses `url` may be fetched from: public unicast ones only, unless
    /// `allow_private`.
    async fn resolve(&self, url: &url::Url, default_port: u16) -> Result<Vec<SocketAddr>, Failure> {
        let port = url.port_or_known_default().unwrap_or(default_port);
        let all: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(a)) => vec![SocketAddr::new(a.into(), port)],
            Some(url::Host::Ipv6(a)) => vec![SocketAddr::new(a.into(), port)],
            Some(url::Host::Domain(d)) => tokio::net::lookup_host((d, port))
                .await
                .map_err(|e| format!("cannot resolve {d}: {e}"))?
                .take(16)
                .collect(),
            None => return Err("URL has no host".into()),
        };
        let (ok, refused): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|a| self.cfg.allow_private || is_public(a.ip()));
        match (ok.is_empty(), refused.first()) {
            (false, _) => Ok(ok),
            (true, Some(a)) => Err(format!(
                "refused: {} is not a public address (downloads.allow_private)",
                a.ip()
            )),
            (true, None) => Err("no address".into()),
        }
    }

    async fn http(&self, mut url: url::Url, command: &str) -> Result<Fetched, Failure> {
        let first = url.to_string();
        for hop in 0..=self.cfg.max_redirects {
            let addrs = self.resolve(&url, 80).await?;
            let tcp = connect_any(&addrs).await?;
            let resp = if url.scheme() == "https" {
                let name = match url.host() {
                    Some(url::Host::Domain(d)) => rustls_pki_types::ServerName::try_from(d)
                        .map_err(|e| e.to_string())?
                        .to_owned(),
                    _ => rustls_pki_types::ServerName::IpAddress(addrs[0].ip().into()),
                };
                let tls = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                http_get(tls, &url, command).await?
            } else {
                http_get(tcp, &url, command).await?
            };
            // `_driver` keeps the connection task alive while the body is read.
            let (status, location, body, _driver) = resp;
            if status.is_redirection() {
                let Some(loc) = location else {
                    return Err(format!("HTTP {status} without a Location"));
                };
                if hop == self.cfg.max_redirects {
                    return Err(format!("more than {} redirects", self.cfg.max_redirects));
                }
                url = url
                    .join(&loc)
                    .map_err(|e| format!("bad redirect {loc:?}: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("redirect to {} is not followed", url.scheme()));
                }
                continue;
            }
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            let mut sink = Sink::new(&self.dir, self.cfg.max_bytes).await?;
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("body: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    if !sink.write(&data).await? {
                        break;
                    }
                }
            }
            let last = url.to_string();
            return sink.finish((last != first).then_some(last)).await;
        }
        Err("redirect loop".into())
    }

    /// TFTP (RFC 1350) read request in octet mode: the server answers from a new port (its
    /// transfer ID), which then must not change; every DATA block is acknowledged; a short
    /// block ends the transfer. Only packets from the server's address are looked at.
    async fn tftp(&self, url: &url::Url) -> Result<Fetched, Failure> {
        let server = self.resolve(url, 69).await?[0];
        let file = percent_decode(url.path().trim_start_matches('/'));
        if file.is_empty() || file.len() > 255 || file.contains(&0) {
            return Err("tftp: bad file name".into());
        }
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        let mut last = [&[0u8, 1][..], &file, b"\0octet\0"].concat();
        sock.send_to(&last, server)
            .await
            .map_err(|e| format!("tftp: {e}"))?;
        let mut tid: Option<SocketAddr> = None;
        let mut expect: u16 = 1;
        let mut retries = 0;
        let mut sink = Sink::new(&self.dir, self.cfg.max_bytes).await?;
        let mut buf = vec![0u8; TFTP_BLOCK + 4];
        loop {
            let (n, from) = match tokio::time::timeout(TFTP_WAIT, sock.recv_from(&mut buf)).await {
                Ok(r) => r.map_err(|e| format!("tftp: {e}"))?,
                Err(_) => {
                    retries += 1;
                    if retries > 3 {
                        return Err(format!("tftp: no answer for block {expect}"));
                    }
                    sock.send_to(&last, tid.unwrap_or(server))
                        .await
                        .map_err(|e| format!("tftp: {e}"))?;
                    continue;
                }
            };
            if from.ip() != server.ip() || tid.is_some_and(|t| t != from) || n < 4 {
                continue;
            }
            let op = u16::from_be_bytes([buf[0], buf[1]]);
            let arg = u16::from_be_bytes([buf[2], buf[3]]);
            match op {
                3 if arg == expect => {
                    tid = Some(from);
                    retries = 0;
                    let data = &buf[4..n];
                    let more = sink.write(data).await?;
                    last = [&[0u8, 4][..], &arg.to_be_bytes()].concat();
                    if !more {
                        // Full: tell the server to stop (error 3, disk full).
                        let stop = [&[0u8, 5, 0, 3][..], b"Disk full\0"].concat();
                        let _ = sock.send_to(&stop, from).await;
                        break;
                    }
                    sock.send_to(&last, from)
                        .await
                        .map_err(|e| format!("tftp: {e}"))?;
                    if data.len() < TFTP_BLOCK {
                        break;
                    }
                    expect = expect.wrapping_add(1);
                }
                // A retransmission of the block already acknowledged: acknowledge again.
                3 if Some(from) == tid && arg == expect.wrapping_sub(1) => {
                    let _ = sock.send_to(&last, from).await;
                }
                5 => {
                    let msg = &buf[4..n];
                    let msg = msg.split(|&b| b == 0).next().unwrap_or_default();
                    return Err(format!(
                        "tftp error {arg}: {}",
                        String::from_utf8_lossy(msg)
                    ));
                }
                _ => {}
            }
        }
        sink.finish(None).await
    }
}

/// The URL as the tool would read it: no scheme means http (tftp's URLs are built by the
/// shell as `tftp://HOST[:PORT]/FILE`).
fn parse_url(raw: &[u8], command: &str) -> Result<url::Url, Failure> {
    let s = std::str::from_utf8(raw).map_err(|_| "URL is not UTF-8".to_string())?;
    let s = s.trim();
    let owned;
    let s = if s.contains("://") {
        s
    } else {
        owned = format!("{}://{s}", if command == "tftp" { "tftp" } else { "http" });
        &owned
    };
    url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A public unicast address: not loopback, private, link-local, shared (CGNAT), multicast,
/// broadcast, documentation, benchmarking, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_unspecified()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(v4.into());
            }
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || s[0] == 0x2002
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0))
        }
    }
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    Err(last)
}

/// One GET over an open stream: (status, Location, body).
async fn http_get<S>(io: S, url: &url::Url, command: &str) -> Result<Response, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADERS)
        .title_case_headers(true)
        .handshake::<_, http_body_util::Empty<hyper::body::Bytes>>(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection is driven by its own task, aborted with the fetch (deadline or done).
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err("URL has no host".into()),
    };
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    // The headers the tool sends, in its order: BusyBox wget, or curl.
    let req = hyper::Request::get(target).header(hyper::header::HOST, host);
    let req = if command == "curl" {
        req.header(hyper::header::USER_AGENT, "curl/7.88.1")
            .header(hyper::header::ACCEPT, "*/*")
    } else {
        req.header(hyper::header::USER_AGENT, "Wget")
            .header(hyper::header::CONNECTION, "close")
    };
    let req = req
        .body(http_body_util::Empty::new())
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, location, resp.into_body(), driver))
}

/// Status, Location, the body, and the task driving the connection.
type Response = (
    hyper::StatusCode,
    Option<String>,
    hyper::body::Incoming,
    AbortOnDrop,
);

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A body on its way to disk: hashed as it is written to a temporary file, renamed to its
/// SHA-256 at the end; the temporary file is removed if the fetch does not finish.
struct Sink {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hash: Sha256,
    len: u64,
    max: u64,
    truncated: bool,
}

impl Sink {
    async fn new(dir: &Path, max: u64) -> Result<Sink, Failure> {
        let tmp = dir.join(format!(".part-{:016x}", rand::random::<u64>()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("cannot store: {e}"))?;
        Ok(Sink {
            dir: dir.to_path_buf(),
            tmp,
            file: Some(file),
            hash: Sha256::new(),
            len: 0,
            max,
            truncated: false,
        })
    }

    /// Keeps what fits; false once full (the rest is not wanted).
    async fn write(&mut self, b: &[u8]) -> Result<bool, Failure> {
        let room = (self.max - self.len) as usize;
        let take = &b[..b.len().min(room)];
        if let Some(f) = &mut self.file {
            f.write_all(take)
                .await
                .map_err(|e| format!("cannot store: {e}"))?;
        }
        self.hash.update(take);
        self.len += take.len() as u64;
        if b.len() > room {
            self.truncated = true;
        }
        Ok(self.len < self.max)
    }

    async fn finish(mut self, final_url: Option<String>) -> Result<Fetched, Failure> {
        if let Some(mut f) = self.file.take() {
            f.flush().await.map_err(|e| format!("cannot store: {e}"))?;
            f.sync_all()
                .await
                .map_err(|e| format!("cannot store: {e}"))?;
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hash).finalize());
        let dest = self.dir.join(&sha256);
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(&self.tmp).await;
        } else {
            tokio::fs::rename(&self.tmp, &dest)
                .await
                .map_err(|e| format!("cannot store: {e}"))?;
        }
        self.tmp = PathBuf::new();
        Ok(Fetched::Stored {
            sha256,
            len: self.len,
            truncated: self.truncated,
            final_url,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Accepts any server certificate: downloads are evidence, not trusted content.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "ff02::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "203.0.114.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls_as_the_tools_read_them() {
        assert_eq!(
            parse_url(b"1.2.3.4/x.sh", "wget").unwrap().as_str(),
            "http://1.2.3.4/x.sh"
        );
        assert_eq!(
            parse_url(b"tftp://1.2.3.4:6969/a%20b", "tftp")
                .unwrap()
                .port(),
            Some(6969)
        );
        assert!(parse_url(b"http://\xff/", "wget").is_err());
        assert!(parse_url(b"http://[::1", "wget").is_err());
        assert_eq!(percent_decode("a%20b%zz%4"), b"a b%zz%4");
    }

    #[tokio::test]
    async fn private_destinations_are_refused_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = crate::config::Problems::new("");
        let raw: DownloadsRaw = toml::from_str("enabled = true").unwrap();
        let cfg = raw.validate(&mut p).unwrap();
        let f = Fetcher::new(cfg, dir.path()).unwrap();
        for url in [
            &b"http://127.0.0.1:9/x"[..],
            b"http://[::1]:9/x",
            b"tftp://10.0.0.1/x",
            b"https://192.168.0.1/",
        ] {
            match f.fetch(url, "wget").await {
                Fetched::Failed(r) => assert!(r.starts_with("refused"), "{r}"),
                other => panic!("{other:?}"),
            }
        }
        match f.fetch(b"ftp://8.8.8.8/x", "ftpget").await {
            Fetched::Failed(r) => assert!(r.contains("not fetched"), "{r}"),
            other => panic!("{other:?}"),
        }
    }
}
