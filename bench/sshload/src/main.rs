//! sshload: SSH brute-force load for the benchmark, on loopback only. Each of `--concurrency`
//! workers loops: TCP connect, full SSH handshake (key exchange, host key check skipped), one
//! password attempt as `root` with a password unique to the attempt (`p{n}`), disconnect. Runs
//! for `--secs` seconds and prints one JSON line: attempts answered (refused or accepted),
//! errors, rate, the negotiated algorithms, and the first `p{n}` numbers sent (so the caller
//! can check every one is in the store).
//!
//! `--host-key rsa` makes the client prefer an RSA host key (rsa-sha2-512, the server signs
//! with RSA 3072: the costly case, as with many Go and libssh bots); the default is russh's
//! own preference (Ed25519 first).
//!
//!   sshload --addr 127.0.0.1:12222 --concurrency 100 --secs 15 [--host-key rsa]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client;

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[derive(Default)]
struct Counts {
    refused: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    next: AtomicU64,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

async fn attempt(cfg: Arc<client::Config>, addr: SocketAddr, n: u64) -> Result<bool, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut h = client::connect_stream(cfg, tcp, Client)
        .await
        .map_err(|e| e.to_string())?;
    let r = h
        .authenticate_password("root", format!("p{n}"))
        .await
        .map_err(|e| e.to_string())?;
    let _ = h
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    Ok(r.success())
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = arg("--addr", "127.0.0.1:12222").parse().expect("--addr");
    assert!(addr.ip().is_loopback(), "loopback only");
    let conc: usize = arg("--concurrency", "100").parse().expect("--concurrency");
    let secs: f64 = arg("--secs", "15").parse().expect("--secs");
    let host_key = arg("--host-key", "default");
    let mut preferred = russh::Preferred::default();
    if host_key == "rsa" {
        preferred.key = std::borrow::Cow::Owned(vec![russh::keys::Algorithm::Rsa {
            hash: Some(russh::keys::HashAlg::Sha512),
        }]);
    }
    let cfg = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(30)),
        preferred,
        ..Default::default()
    });
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (cfg, counts) = (cfg.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let n = counts.next.fetch_add(1, Ordering::Relaxed);
                match attempt(cfg.clone(), addr, n).await {
                    Ok(false) => counts.refused.fetch_add(1, Ordering::Relaxed),
                    Ok(true) => counts.accepted.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if counts.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("sshload: attempt p{n}: {e}");
                        }
                        0
                    }
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let el = start.elapsed().as_secs_f64();
    let refused = counts.refused.load(Ordering::Relaxed);
    let accepted = counts.accepted.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "concurrency": conc,
            "host_key": host_key,
            "secs": el,
            "attempts_sent": counts.next.load(Ordering::Relaxed),
            "refused": refused,
            "accepted": accepted,
            "errors": counts.errors.load(Ordering::Relaxed),
            "answered_per_sec": (refused + accepted) as f64 / el,
        })
    );
}
