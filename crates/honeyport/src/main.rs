//! The `honeyport` command: parse the CLI, call the library, map errors to exit codes.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use honeyport::config::{self, ConfigErrors, Validated};
use honeyport::store::{EventFilter, Location};
use honeyport_event::{Event, EventKind};

#[derive(Parser)]
#[command(
    name = "honeyport",
    version,
    about = "A fast, safe honeypot sensor: personas on any port, every byte recorded"
)]
struct Cli {
    /// Where the store lives (SQLite database, JSON-lines files).
    #[arg(
        long,
        global = true,
        default_value = "./honeyport-data",
        env = "HONEYPORT_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// The store that reports, `events`, `replay`, `explain`, `import` and `bench-data` read or
    /// write: a data dir (`sqlite:DIR` or a path). Default: the data dir's SQLite store.
    #[arg(long, global = true, env = "HONEYPORT_STORE")]
    store: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

impl Cli {
    /// Where the store is: `--store`, else the data dir's embedded store.
    fn location(&self) -> anyhow::Result<Location> {
        Ok(match &self.store {
            Some(s) => Location::parse(s)?,
            None => Location::Sqlite(self.data_dir.clone()),
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the sensor until SIGINT or SIGTERM. Without -c, a built-in loopback config is used.
    Run {
        /// Config file (TOML).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file: report every error with its position, bind nothing.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show recorded events, newest first.
    Events {
        /// Only events whose destination port is N.
        #[arg(long)]
        port: Option<u16>,
        /// Only events from this source IP.
        #[arg(long)]
        src: Option<IpAddr>,
        /// Only events of this session.
        #[arg(long)]
        session: Option<String>,
        /// At most N events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON event per line (the same form as the JSON-lines sink).
        #[arg(long)]
        json: bool,
    },
    /// Reports from the store: top ports, a port's history and trend, rising ports.
    Report {
        #[command(subcommand)]
        cmd: honeyport::report::cli::ReportCmd,
    },
    /// What is going on on port N: what clients spoke, which software, what they tried, how
    /// they answered each persona, with the numbers.
    Explain(honeyport::report::cli::ExplainArgs),
    /// Import other sensors' logs into the store (cowrie JSON, iptables firewall lines,
    /// tcp-honeypot text logs); importing a file again adds nothing.
    Import(honeyport::import::ImportArgs),
    /// The fleet's collector: load what sensors publish to NATS JetStream into this store
    /// (`--store`), idempotently; creates or checks the stream and its durable consumer.
    Collect(honeyport::fleet::collect::CollectArgs),
    /// A first look in under a minute: the default config on loopback, a synthetic scanner
    /// mix (telnet bots, SSH probes, SMTP and HTTP scans), then `explain` of the busiest port.
    Demo {
        /// The demo's own store (made fresh each time; never the sensor's data dir).
        #[arg(long, default_value = "./honeyport-demo")]
        dir: PathBuf,
    },
    /// Write a realistic synthetic store into the data dir, for benchmarking the reports:
    /// Zipf-distributed ports and sources, brute forcing on telnet and SSH ports, HTTP scans,
    /// and port 26 rising in the middle of the window.
    BenchData {
        #[arg(long, default_value_t = 1_000_000)]
        sessions: u64,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long, default_value_t = 26)]
        seed: u64,
    },
    /// Print the built-in default config.
    DefaultConfig,
    /// Play a recorded session back: what the sensor sent (the peer's screen), in order, with
    /// the original pauses; `--input` also shows what the peer typed.
    Replay {
        /// The session id (from `honeyport events`).
        session: String,
        /// Playback speed: 2 = twice as fast; 0 = no pauses.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause, in seconds, whatever the recording says.
        #[arg(long, default_value_t = 2.0)]
        max_pause: f64,
        /// Also show the peer's input (between ANSI reverse-video markers on a terminal).
        #[arg(long)]
        input: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("honeyport: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Marks a directory as the demo's, so a later demo may empty it.
const DEMO_MARK: &str = ".honeyport-demo";

/// Makes `dir` an empty demo store: created if missing; emptied if an earlier demo made it;
/// refused if it holds anything else.
fn fresh_demo_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty {
            if !dir.join(DEMO_MARK).is_file() {
                anyhow::bail!(
                    "{} exists and is not a demo store; pass another --dir",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("emptying the old demo store {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(DEMO_MARK),
        b"made by honeyport demo; emptied by the next one\n",
    )?;
    Ok(())
}

fn load(config: Option<&Path>) -> Result<Validated, ConfigErrors> {
    match config {
        Some(p) => config::load(p),
        None => config::validate_str(
            config::DEFAULT_CONFIG,
            "<built-in default config>",
            Path::new("."),
        ),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loc = cli.location();
    match cli.cmd {
        Cmd::Check { config } => match load(Some(&config)) {
            Ok(v) => {
                println!("{}: ok ({} sockets)", config.display(), v.socket_count());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Cmd::Replay {
            session,
            speed,
            max_pause,
            input,
        } => {
            let store = honeyport::store::open_reader(&loc?)?;
            let mut evs = store.events(&EventFilter {
                session: Some(session.clone()),
                ..Default::default()
            })?;
            if evs.is_empty() {
                anyhow::bail!("no session {session:?} in the store");
            }
            evs.reverse();
            replay(&evs, speed, max_pause, input)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { cmd } => {
            let mut out = std::io::stdout().lock();
            honeyport::report::cli::run(&loc?, &cmd, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Explain(a) => {
            let mut out = std::io::stdout().lock();
            honeyport::report::cli::explain(&loc?, &a, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import(a) => {
            let mut out = std::io::stdout().lock();
            let ok = honeyport::import::run(&loc?, &a, &mut out)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Collect(a) => {
            let loc = loc?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut out = std::io::stdout();
            let ok = rt.block_on(honeyport::fleet::collect::cli(&loc, &a, &mut out))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Cmd::Demo { dir } => {
            fresh_demo_dir(&dir)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut out = std::io::stdout();
            rt.block_on(honeyport::demo::run(&dir, &mut out))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchData {
            sessions,
            days,
            seed,
        } => {
            let started = std::time::Instant::now();
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut last = std::time::Instant::now();
            let w = honeyport::benchdata::generate(&loc?, sessions, days, seed, |n| {
                if tty && last.elapsed() >= std::time::Duration::from_millis(200) {
                    last = std::time::Instant::now();
                    eprint!("\r{n} / {sessions} sessions");
                }
            })?;
            if tty {
                eprintln!();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "bench-data: {} sessions, {} events over {days} days in {:.1} s ({:.0} sessions/s) into {}",
                w.sessions,
                w.events,
                secs,
                w.sessions as f64 / secs.max(1e-9),
                w.location
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config } => {
            let v = match load(config.as_deref()) {
                Ok(v) => v,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if config.is_none() {
                println!("honeyport: no -c FILE given; using the built-in default config (loopback only; `honeyport default-config` prints it)");
            }
            let mut cfg = match v.build() {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let nofile = honeyport::app::raise_nofile_limit();
            let ceiling = honeyport::app::apply_fd_ceiling(&mut cfg, nofile);
            tracing::info!(
                open_files = nofile,
                max_connections = ceiling,
                "connection ceiling"
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(cfg, &cli.data_dir))
        }
        Cmd::Events {
            port,
            src,
            session,
            limit,
            json,
        } => {
            let store = honeyport::store::open_reader(&loc?)?;
            let summary = match (&session, json) {
                (Some(id), false) => store.summary(id)?,
                _ => None,
            };
            let evs = store.events(&EventFilter {
                port,
                src,
                session,
                limit: Some(limit),
                ..Default::default()
            })?;
            let mut out = std::io::stdout().lock();
            if let Some(s) = summary {
                let _ = writeln!(out, "{}", render_summary(&s));
            }
            for ev in &evs {
                let line = if json { ev.to_json() } else { render(ev) };
                if writeln!(out, "{line}").is_err() {
                    break; // stdout closed (e.g. piped into head)
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One `# ...` line: the session's summary row.
fn render_summary(s: &honeyport::store::Summary) -> String {
    let opt =
        |k: &str, v: &Option<String>| v.as_ref().map(|v| format!(" {k}={v}")).unwrap_or_default();
    format!(
        "# session {} listener={} persona={}{}{}{}{}{}{}{}{}{} logins={} (ok {}) commands={}{}{}",
        s.session,
        s.listener,
        s.persona,
        opt("served", &s.served),
        opt("protocol", &s.protocol),
        s.client_first
            .map(|c| format!(" client_first={c}"))
            .unwrap_or_default(),
        opt("after_banner", &s.after_banner),
        opt(
            "client",
            &s.client_version.as_ref().map(|v| format!("{v:?}"))
        ),
        opt("hassh", &s.hassh),
        opt("ja4", &s.ja4),
        opt("syn", &s.syn),
        opt("client_name", &s.client.as_ref().map(|v| format!("{v:?}"))),
        s.logins,
        s.logins_ok,
        s.commands,
        if s.tags.is_empty() {
            String::new()
        } else {
            format!(" tags={}", s.tags.join(","))
        },
        opt("end", &s.reason),
    )
}

async fn serve(cfg: honeyport::config::Config, data_dir: &Path) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers first: a signal that arrives right after "listening" must stop us gracefully.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let sensor = cfg.sensor.clone();
    let running = honeyport::app::start(cfg, data_dir)
        .await
        .context("starting the sensor")?;
    {
        let mut out = std::io::stdout().lock();
        for b in &running.bound {
            let _ = writeln!(
                out,
                "honeyport: listening on {} {} (listener {}, persona {}{})",
                b.transport,
                b.addr,
                b.listener,
                b.persona,
                if b.tls { ", TLS" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "honeyport: sensor {sensor:?} storing events in {}",
            data_dir.display()
        );
        let _ = out.flush();
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: no new sessions; open sessions get the grace period");
    let report = running.stop().await;
    let p = report.pipeline;
    println!(
        "honeyport: stopped. sessions={} open_at_stop={} events_written={} events_dropped={} store_stalls={} udp_datagrams_dropped={} accept_errors={}",
        report.serve.sessions,
        report.serve.open_at_stop,
        p.written,
        p.dropped,
        p.stalls,
        report.serve.udp_dropped,
        report.serve.accept_errors
    );
    if report.lost() > 0 {
        tracing::error!(lost = report.lost(), "events were lost");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a session's output (and, if asked, its input) to stdout with the recorded pauses.
fn replay(evs: &[Event], speed: f64, max_pause: f64, show_input: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut out = std::io::stdout().lock();
    let tty = std::io::stdout().is_terminal();
    let mut last: Option<i64> = None;
    for ev in evs {
        let bytes = match &ev.kind {
            EventKind::Output { data, .. } => Some((data, false)),
            EventKind::Input { data, .. } if show_input => Some((data, true)),
            _ => None,
        };
        let Some((data, is_input)) = bytes else {
            continue;
        };
        let t = ev.timestamp.unix_micros();
        if let Some(prev) = last {
            if speed > 0.0 {
                let gap = ((t - prev).max(0) as f64 / 1e6 / speed).min(max_pause.max(0.0));
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_secs_f64(gap));
            }
        }
        last = Some(t);
        if !tty {
            // Into a file or a pipe: the bytes exactly.
            out.write_all(data.as_bytes())?;
            continue;
        }
        // On a terminal, never pass on control sequences (they may be the attacker's).
        if is_input {
            out.write_all(b"\x1b[7m")?;
        }
        out.write_all(terminal_safe(data.as_bytes()).as_bytes())?;
        if is_input {
            out.write_all(b"\x1b[0m")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Bytes made safe for a terminal: text, CR, LF and tab pass; other control bytes and
/// invalid UTF-8 become `\xNN`.
fn terminal_safe(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' | '\n' | '\t' => out.push(c),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

/// One event as a line for people.
fn render(ev: &Event) -> String {
    let detail = match &ev.kind {
        EventKind::Connect {
            listener,
            persona,
            tls,
        } => {
            format!(
                "listener={listener} persona={persona}{}",
                if *tls { " tls" } else { "" }
            )
        }
        EventKind::Input { data, len } => format!("{len}B \"{}\"", clip(&data.escaped())),
        EventKind::Output {
            data,
            len,
            truncated,
        } => {
            format!(
                "{len}B{} \"{}\"",
                if *truncated { " (truncated)" } else { "" },
                clip(&data.escaped())
            )
        }
        EventKind::OutputSuppressed { len, reason } => format!("{len}B not sent: {reason}"),
        EventKind::RuleMatch {
            rule,
            action,
            match_len,
        } => format!("rule={rule} action={action} match_len={match_len}"),
        EventKind::TlsHandshake {
            version,
            cipher,
            sni,
            ..
        } => {
            format!(
                "{version} {cipher}{}",
                sni.as_ref()
                    .map(|s| format!(" sni={s}"))
                    .unwrap_or_default()
            )
        }
        EventKind::TlsFailed { error, data, len } => {
            format!("{error}; {len}B \"{}\"", clip(&data.escaped()))
        }
        EventKind::LoginFailed {
            username,
            password,
            method,
        }
        | EventKind::LoginSuccess {
            username,
            password,
            method,
        } => {
            format!(
                "{method} \"{}\" / \"{}\"",
                clip(&username.escaped()),
                clip(&password.escaped())
            )
        }
        EventKind::CommandInput { input, recognised } => {
            format!(
                "{}\"{}\"",
                if *recognised { "" } else { "(unknown) " },
                clip(&input.escaped())
            )
        }
        EventKind::FileDownload {
            url,
            command,
            outfile,
        } => format!(
            "{command} \"{}\"{}",
            clip(&url.escaped()),
            outfile
                .as_ref()
                .map(|o| format!(" -> \"{}\"", clip(&o.escaped())))
                .unwrap_or_default()
        ),
        EventKind::FileWrite { path, sha256, len } => {
            format!("\"{}\" {len}B sha256={sha256}", clip(&path.escaped()))
        }
        EventKind::FileFetched {
            url,
            sha256,
            len,
            truncated,
            final_url,
        } => format!(
            "\"{}\" {len}B{} sha256={sha256}{}",
            clip(&url.escaped()),
            if *truncated { " (truncated)" } else { "" },
            final_url
                .as_ref()
                .map(|u| format!(" via \"{}\"", clip(u)))
                .unwrap_or_default()
        ),
        EventKind::FileFetchFailed { url, reason } => {
            format!("\"{}\": {}", clip(&url.escaped()), clip(reason))
        }
        EventKind::TelnetOptions { pattern } => clip(pattern),
        EventKind::ClientName { name, by } => format!("{} (by {by})", clip(name)),
        EventKind::TcpSyn {
            signature, mirai, ..
        } => format!("{}{}", clip(signature), if *mirai { " mirai" } else { "" }),
        EventKind::TlsClientHello { ja3, ja4, sni, .. } => format!(
            "ja4={ja4} ja3={ja3}{}",
            sni.as_ref()
                .map(|s| format!(" sni={}", clip(s)))
                .unwrap_or_default()
        ),
        EventKind::Dispatch {
            persona,
            reason,
            protocol,
            tls,
        } => format!(
            "{persona} ({reason}{}{})",
            if *tls { ": tls" } else { "" },
            protocol
                .as_ref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default()
        ),
        EventKind::Classified {
            protocol,
            client_first,
            after_banner,
        } => format!(
            "{protocol}{}{}",
            if *client_first { " client first" } else { "" },
            after_banner
                .as_ref()
                .map(|a| format!(" after banner: {a}"))
                .unwrap_or_default()
        ),
        EventKind::ClientVersion { version } => format!("\"{}\"", clip(&version.escaped())),
        EventKind::ClientKex {
            hassh, kex_algs, ..
        } => format!("hassh={hassh} kex={}", clip(&kex_algs.join(","))),
        EventKind::ClientFingerprint {
            username,
            fingerprint,
            key_type,
            ..
        } => format!("\"{}\" {key_type} {fingerprint}", clip(&username.escaped())),
        EventKind::ClientSize {
            width,
            height,
            term,
        } => format!(
            "{width}x{height}{}",
            term.as_ref()
                .map(|t| format!(" term=\"{}\"", clip(&t.escaped())))
                .unwrap_or_default()
        ),
        EventKind::ClientVar { name, value } => {
            format!("{}=\"{}\"", clip(&name.escaped()), clip(&value.escaped()))
        }
        EventKind::ForwardRequest {
            kind, host, port, ..
        } => format!("{kind} {}:{port} refused", clip(&host.escaped())),
        EventKind::HttpRequest {
            method,
            target,
            version,
            headers,
            body_len,
            ..
        } => format!(
            "{} \"{}\" {version} headers={} body={body_len}B",
            clip(&method.escaped()),
            clip(&target.escaped()),
            headers.len()
        ),
        EventKind::Closed {
            duration,
            bytes_in,
            bytes_out,
            reason,
            limit,
        } => format!(
            "reason={}{} duration={duration:.3}s in={bytes_in}B out={bytes_out}B",
            reason.as_str(),
            limit
                .as_ref()
                .map(|l| format!(" limit={l}"))
                .unwrap_or_default()
        ),
    };
    format!(
        "{} {} {:<24} {} {}:{} -> {}:{} {}",
        ev.timestamp,
        ev.session,
        ev.kind.eventid(),
        ev.transport,
        ev.src_ip,
        ev.src_port,
        ev.dst_ip,
        ev.dst_port,
        detail
    )
}

fn clip(s: &str) -> String {
    const MAX: usize = 160;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push_str("...");
        t
    }
}
