//! `honeyport collect`: the fleet's consumer. A durable pull consumer with explicit acks on
//! the stream ([`super::stream`]); batches loaded into a central store through a [`Loader`]
//! (idempotent by [`EventId`]), acknowledged only after the load returned (committed).
//!
//! - Several collectors may run on the same durable consumer: the server hands each batch to
//!   one of them; an unacknowledged message goes to another after `ack_wait`.
//! - Each message is one of ([`classify`]): an event (`honeyport.events.<sensor>`, a body
//!   that is an [`Event`], a `Nats-Msg-Id` that parses, and the sensor the same in the subject,
//!   the msg id and the event), a heartbeat (`honeyport.heartbeat.<sensor>`, kept with the
//!   server's receive time from the JetStream metadata, not the sensor's clock), or anything
//!   else, which is parked ([`Loader::park`]), counted and acknowledged: a bad message never
//!   blocks the ones behind it and never crashes the collector.
//! - A load that fails (PostgreSQL restarting, disk full) acknowledges nothing: the batch is
//!   negatively acknowledged with the back-off as delay, so it is redelivered; the collector
//!   backs off (capped exponential) and goes on.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::AckKind;
use futures_util::StreamExt;
use honeyport_event::Event;
use honeyport_store::{EventId, Heartbeat, Loader, Parked};
use serde::Deserialize;

use super::bus::{Bus, BusError, BusRaw};
use super::heartbeat::HeartbeatMsg;
use super::stream::{StreamError, StreamRaw, StreamSpec, EVENTS_PREFIX, HEARTBEAT_PREFIX};
use super::{count_field, duration_field, now_micros, Backoff};
use crate::config::units::NumOrStr;
use crate::config::Problems;

/// `collect`'s config file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectRaw {
    /// The bus (see [`BusRaw`]); `--url` / `--creds` override it.
    pub bus: Option<BusRaw>,
    /// The stream (see [`StreamRaw`]).
    #[serde(default)]
    pub stream: StreamRaw,
    /// The durable consumer's name; collectors with the same name share the work. Default
    /// `honeyport-collect`.
    pub consumer: Option<String>,
    /// Messages fetched at a time, at most. Default 1000, 1-10000.
    pub batch: Option<usize>,
    /// How long a fetch waits for a batch to fill. Default 100 ms.
    pub batch_wait: Option<NumOrStr>,
    /// How long the server waits for an ack before redelivering. Default 30 s.
    pub ack_wait: Option<NumOrStr>,
    /// Messages delivered and not yet acknowledged, at most (over every collector). Default
    /// 20000.
    pub max_ack_pending: Option<usize>,
    /// Longest wait between retries of a failed fetch or load. Default 10 s.
    pub retry_max: Option<NumOrStr>,
    /// How often the counts are logged. Default 60 s.
    pub log_every: Option<NumOrStr>,
}

/// A validated collector config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectConfig {
    pub bus: Bus,
    pub stream: StreamSpec,
    pub consumer: String,
    pub batch: usize,
    pub batch_wait: Duration,
    pub ack_wait: Duration,
    pub max_ack_pending: usize,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub log_every: Duration,
    /// Change an existing stream whose settings differ (`--update-stream`).
    pub update_stream: bool,
}

impl CollectConfig {
    /// Defaults around `bus`.
    pub fn new(bus: Bus) -> CollectConfig {
        CollectConfig {
            bus,
            stream: StreamSpec::default(),
            consumer: "honeyport-collect".into(),
            batch: 1000,
            batch_wait: Duration::from_millis(100),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            retry_first: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            log_every: Duration::from_secs(60),
            update_stream: false,
        }
    }
}

impl CollectRaw {
    /// Pure: every problem with its path. `bus` from the command line replaces `[bus]`.
    pub fn validate(
        &self,
        bus: Option<&BusRaw>,
        base: &Path,
        p: &mut Problems<'_>,
    ) -> Option<CollectConfig> {
        let before = p.errors.len();
        let bus = match bus.or(self.bus.as_ref()) {
            Some(b) => b.validate("bus", base, p),
            None => {
                p.at("bus", "no bus: give `--url` or a `[bus]` with `url`");
                None
            }
        };
        let stream = self.stream.validate("stream", base, p);
        let d = CollectConfig::new(Bus::plain(""));
        let consumer = self.consumer.clone().unwrap_or(d.consumer);
        if consumer.is_empty()
            || !consumer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            p.at(
                "consumer",
                "a consumer name is 1 or more of A-Z a-z 0-9 _ -",
            );
        }
        let cfg = CollectConfig {
            bus: bus?,
            stream: stream?,
            consumer,
            batch: count_field(self.batch, "batch", d.batch, 1..=10_000, p),
            batch_wait: duration_field(&self.batch_wait, "batch_wait", d.batch_wait, true, p),
            ack_wait: duration_field(&self.ack_wait, "ack_wait", d.ack_wait, true, p),
            max_ack_pending: count_field(
                self.max_ack_pending,
                "max_ack_pending",
                d.max_ack_pending,
                1..=1_000_000,
                p,
            ),
            retry_first: d.retry_first,
            retry_max: duration_field(&self.retry_max, "retry_max", d.retry_max, true, p),
            log_every: duration_field(&self.log_every, "log_every", d.log_every, true, p),
            update_stream: false,
        };
        if cfg.max_ack_pending < cfg.batch {
            p.at("max_ack_pending", "must be at least `batch`");
        }
        (p.errors.len() == before).then_some(cfg)
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("consumer {name} on stream {stream}: {detail}")]
    Consumer {
        name: String,
        stream: String,
        detail: String,
    },
}

/// What one message is.
#[derive(Debug, PartialEq)]
pub enum Item {
    Event(EventId, Box<Event>),
    Heartbeat(Heartbeat),
    /// Why it is parked.
    Park(String),
}

/// Largest body kept of a parked message.
pub const MAX_PARKED_BODY: usize = 64 << 10;

/// Sorts a message out (pure): `subject`, its `Nats-Msg-Id` header, its body.
pub fn classify(subject: &str, msg_id: Option<&str>, body: &[u8]) -> Item {
    if let Some(sensor) = subject
        .strip_prefix(EVENTS_PREFIX)
        .and_then(|s| s.strip_prefix('.'))
    {
        let Some(raw_id) = msg_id else {
            return Item::Park("event without a Nats-Msg-Id header".into());
        };
        let Some(id) = EventId::parse_msg_id(raw_id) else {
            return Item::Park(format!("malformed Nats-Msg-Id {:?}", cap(raw_id)));
        };
        let ev = match Event::from_json(body) {
            Ok(ev) => ev,
            Err(e) => return Item::Park(format!("body is not an event: {e}")),
        };
        if id.sensor != sensor || ev.sensor != sensor {
            return Item::Park(format!(
                "sensor mismatch: subject {sensor:?}, msg id {:?}, event {:?}",
                cap(&id.sensor),
                cap(&ev.sensor)
            ));
        }
        return Item::Event(id, Box::new(ev));
    }
    if let Some(sensor) = subject
        .strip_prefix(HEARTBEAT_PREFIX)
        .and_then(|s| s.strip_prefix('.'))
    {
        return match serde_json::from_slice::<HeartbeatMsg>(body) {
            Ok(hb) if hb.heartbeat.sensor == sensor => Item::Heartbeat(hb.heartbeat),
            Ok(hb) => Item::Park(format!(
                "sensor mismatch: subject {sensor:?}, heartbeat {:?}",
                cap(&hb.heartbeat.sensor)
            )),
            Err(e) => Item::Park(format!("body is not a heartbeat: {e}")),
        };
    }
    Item::Park("not a honeyport subject".into())
}

/// At most 100 characters of something a peer sent, for a reason string.
fn cap(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Counters of a collector.
#[derive(Debug, Default)]
pub struct CollectStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub loaded: AtomicU64,
    pub duplicates: AtomicU64,
    pub heartbeats: AtomicU64,
    pub parked: AtomicU64,
    pub load_failures: AtomicU64,
    pub fetch_failures: AtomicU64,
}

/// A snapshot of [`CollectStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectReport {
    pub batches: u64,
    pub messages: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub heartbeats: u64,
    pub parked: u64,
    pub load_failures: u64,
    pub fetch_failures: u64,
}

impl CollectStats {
    pub fn report(&self) -> CollectReport {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CollectReport {
            batches: l(&self.batches),
            messages: l(&self.messages),
            loaded: l(&self.loaded),
            duplicates: l(&self.duplicates),
            heartbeats: l(&self.heartbeats),
            parked: l(&self.parked),
            load_failures: l(&self.load_failures),
            fetch_failures: l(&self.fetch_failures),
        }
    }
}

/// Connects and ensures the stream and the durable consumer (what `collect --init` does).
pub async fn init(cfg: &CollectConfig) -> Result<PullConsumer, CollectError> {
    let client = cfg.bus.connect("honeyport-collect").await?;
    let js = async_nats::jetstream::new(client);
    let stream = cfg.stream.ensure(&js, cfg.update_stream).await?;
    let consumer_err = |detail: String| CollectError::Consumer {
        name: cfg.consumer.clone(),
        stream: cfg.stream.name.clone(),
        detail,
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            &cfg.consumer,
            pull::Config {
                durable_name: Some(cfg.consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                max_ack_pending: i64::try_from(cfg.max_ack_pending).unwrap_or(i64::MAX),
                max_batch: i64::try_from(cfg.batch).unwrap_or(i64::MAX),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| consumer_err(e.to_string()))?;
    let got = &consumer.cached_info().config;
    if got.ack_policy != AckPolicy::Explicit {
        return Err(consumer_err(format!(
            "exists with ack_policy {:?}, not explicit (delete it or pick another name)",
            got.ack_policy
        )));
    }
    if got.ack_wait != cfg.ack_wait || got.max_ack_pending != cfg.max_ack_pending as i64 {
        tracing::warn!(
            consumer = %cfg.consumer,
            ack_wait = ?got.ack_wait,
            max_ack_pending = got.max_ack_pending,
            "the durable consumer exists with other ack_wait / max_ack_pending; using it as it is"
        );
    }
    Ok(consumer)
}

/// The loader behind a mutex, used on the blocking pool.
#[derive(Clone)]
struct LoaderHandle(Arc<Mutex<Box<dyn Loader>>>);

/// What loading one batch did.
#[derive(Debug, Default)]
struct BatchDone {
    new: u64,
    duplicate: u64,
    heartbeats: u64,
    parked: u64,
}

impl LoaderHandle {
    /// Loads events first (the part that matters), then heartbeats, then parks: a failure
    /// anywhere fails the batch (nothing acked) and the redelivery loads nothing twice.
    async fn apply(
        &self,
        events: Vec<(EventId, Event)>,
        heartbeats: Vec<(Heartbeat, i64)>,
        parked: Vec<Parked>,
    ) -> Result<BatchDone, String> {
        let l = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = l.lock().map_err(|_| "loader lock poisoned".to_string())?;
            let loader = guard.as_mut();
            let mut done = BatchDone::default();
            if !events.is_empty() {
                let r = loader.load(&events).map_err(|e| e.to_string())?;
                done.new = r.new;
                done.duplicate = r.duplicate;
            }
            for (hb, at) in &heartbeats {
                loader.heartbeat(hb, *at).map_err(|e| e.to_string())?;
                done.heartbeats += 1;
            }
            for p in &parked {
                loader.park(p).map_err(|e| e.to_string())?;
                done.parked += 1;
            }
            Ok(done)
        })
        .await
        .map_err(|e| format!("loader task: {e}"))?
    }
}

/// Runs a collector on `consumer` until `shutdown` completes; returns its counts. A batch in
/// flight when shutdown comes is finished (loaded and acked) or left unacked, never half.
pub async fn run(
    cfg: &CollectConfig,
    consumer: PullConsumer,
    loader: Box<dyn Loader>,
    stats: Arc<CollectStats>,
    shutdown: impl Future<Output = ()>,
) -> CollectReport {
    let loader = LoaderHandle(Arc::new(Mutex::new(loader)));
    let mut backoff = Backoff::new(cfg.retry_first, cfg.retry_max);
    let mut log = tokio::time::interval(cfg.log_every);
    log.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let fetched = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = log.tick() => {
                log_counts(&stats.report());
                continue;
            }
            f = fetch(cfg, &consumer) => f,
        };
        let msgs = match fetched {
            Ok(m) => m,
            Err(e) => {
                stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "collect: fetch failed");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        if msgs.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        let (events, heartbeats, parked) = sort_batch(&msgs);
        match loader.apply(events, heartbeats, parked).await {
            Ok(done) => {
                backoff.reset();
                for m in &msgs {
                    if let Err(e) = m.ack().await {
                        // Redelivered later and loaded as a duplicate: nothing lost.
                        tracing::debug!(error = %e, "collect: ack not sent");
                    }
                }
                stats.loaded.fetch_add(done.new, Ordering::Relaxed);
                stats
                    .duplicates
                    .fetch_add(done.duplicate, Ordering::Relaxed);
                stats
                    .heartbeats
                    .fetch_add(done.heartbeats, Ordering::Relaxed);
                stats.parked.fetch_add(done.parked, Ordering::Relaxed);
            }
            Err(e) => {
                stats.load_failures.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_delay();
                tracing::error!(error = %e, messages = msgs.len(), retry_in = ?wait, "collect: load failed; nothing acknowledged, the batch is redelivered");
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Nak(Some(wait))).await;
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    let r = stats.report();
    log_counts(&r);
    r
}

/// One fetch: up to `batch` messages, waiting at most `batch_wait`.
async fn fetch(
    cfg: &CollectConfig,
    consumer: &PullConsumer,
) -> Result<Vec<async_nats::jetstream::Message>, String> {
    let mut batch = consumer
        .fetch()
        .max_messages(cfg.batch)
        .expires(cfg.batch_wait)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut msgs = Vec::new();
    while let Some(m) = batch.next().await {
        match m {
            Ok(m) => msgs.push(m),
            Err(e) => {
                if msgs.is_empty() {
                    return Err(e.to_string());
                }
                break;
            }
        }
    }
    Ok(msgs)
}

type Sorted = (Vec<(EventId, Event)>, Vec<(Heartbeat, i64)>, Vec<Parked>);

/// Splits a batch into events, heartbeats (with the server's receive time) and parked ones.
fn sort_batch(msgs: &[async_nats::jetstream::Message]) -> Sorted {
    let (mut events, mut heartbeats, mut parked) = (Vec::new(), Vec::new(), Vec::new());
    let received = now_micros();
    for m in msgs {
        let msg_id = m
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str());
        match classify(m.subject.as_str(), msg_id, &m.payload) {
            Item::Event(id, ev) => events.push((id, *ev)),
            Item::Heartbeat(hb) => {
                // The bus's clock, not the sensor's: a sensor hours off is kept and reported.
                let at = m
                    .info()
                    .map(|i| (i.published.unix_timestamp_nanos() / 1000) as i64)
                    .unwrap_or(received);
                heartbeats.push((hb, at));
            }
            Item::Park(reason) => {
                tracing::warn!(subject = %cap(m.subject.as_str()), %reason, "collect: message parked");
                parked.push(Parked {
                    subject: m.subject.to_string(),
                    reason,
                    body: m.payload[..m.payload.len().min(MAX_PARKED_BODY)].to_vec(),
                    received_micros: received,
                });
            }
        }
    }
    (events, heartbeats, parked)
}

fn log_counts(r: &CollectReport) {
    tracing::info!(
        batches = r.batches,
        messages = r.messages,
        loaded = r.loaded,
        duplicates = r.duplicates,
        heartbeats = r.heartbeats,
        parked = r.parked,
        load_failures = r.load_failures,
        fetch_failures = r.fetch_failures,
        "collect"
    );
}

/// `honeyport collect`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CollectArgs {
    /// Config file (TOML: `[bus]`, `[stream]`, `consumer`, `batch`, ...; see `CollectRaw`).
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
    /// NATS server URL(s), comma-separated; replaces the config's `[bus] url`.
    #[arg(long, env = "HONEYPORT_NATS_URL")]
    pub url: Option<String>,
    /// A `.creds` file for the bus (replaces the config's credentials).
    #[arg(long)]
    pub creds: Option<String>,
    /// Create or check the stream and the durable consumer, then exit.
    #[arg(long)]
    pub init: bool,
    /// Change an existing stream whose settings differ from the config (else an error).
    #[arg(long)]
    pub update_stream: bool,
}

/// Reads and validates `collect`'s config and flags (pure apart from reading the file and
/// checking named files are readable).
pub fn load_config(a: &CollectArgs) -> Result<CollectConfig, crate::config::ConfigErrors> {
    use crate::config::{ConfigError, ConfigErrors};
    let name = a
        .config
        .as_ref()
        .map_or_else(|| "command line".to_string(), |p| p.display().to_string());
    let fail = |errors| ConfigErrors {
        source_name: name.clone(),
        errors,
    };
    let (src, base) = match &a.config {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| {
                fail(vec![ConfigError {
                    path: String::new(),
                    pos: None,
                    message: format!("cannot read: {e}"),
                }])
            })?,
            p.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        None => (String::new(), std::path::PathBuf::from(".")),
    };
    let raw: CollectRaw =
        toml::from_str(&src).map_err(|e| fail(vec![crate::config::serde_error(&src, "", &e)]))?;
    let flag_bus = (a.url.is_some() || a.creds.is_some()).then(|| {
        let mut b = raw.bus.clone().unwrap_or_default();
        if let Some(u) = &a.url {
            b.url = Some(super::bus::UrlsRaw::One(u.clone()));
        }
        if let Some(c) = &a.creds {
            b.user = None;
            b.password = None;
            b.token = None;
            b.nkey_seed_file = None;
            b.creds_file = Some(c.clone());
        }
        b
    });
    let mut p = Problems::new(&src);
    let cfg = raw.validate(flag_bus.as_ref(), &base, &mut p);
    match cfg {
        Some(mut c) if p.errors.is_empty() => {
            c.update_stream = a.update_stream;
            Ok(c)
        }
        _ => Err(fail(p.errors)),
    }
}

/// `honeyport collect` end to end: connect (a clear error when NATS or the store is not
/// there), ensure the stream and consumer, load until SIGINT/SIGTERM.
pub async fn cli(
    store: &honeyport_store::Location,
    a: &CollectArgs,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    use tokio::signal::unix::{signal, SignalKind};
    let cfg = match load_config(a) {
        Ok(c) => c,
        Err(e) => {
            let _ = write!(out, "{e}");
            return Ok(false);
        }
    };
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let consumer = init(&cfg).await?;
    if a.init {
        writeln!(
            out,
            "honeyport: stream {} and durable consumer {} ready on {}",
            cfg.stream.name,
            cfg.consumer,
            cfg.bus.display()
        )?;
        return Ok(true);
    }
    let loc = store.clone();
    let loader = tokio::task::spawn_blocking(move || honeyport_store::open_loader(&loc))
        .await?
        .with_context(|| format!("opening the store {}", store.display()))?;
    writeln!(
        out,
        "honeyport: collecting from stream {} (consumer {}) on {} into {}",
        cfg.stream.name,
        cfg.consumer,
        cfg.bus.display(),
        store.display()
    )?;
    let stats = Arc::new(CollectStats::default());
    let r = run(&cfg, consumer, loader, stats, async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    writeln!(
        out,
        "honeyport: collect stopped: {} messages in {} batches, {} events loaded, {} duplicates, {} heartbeats, {} parked, {} failed loads",
        r.messages, r.batches, r.loaded, r.duplicates, r.heartbeats, r.parked, r.load_failures
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_json(sensor: &str) -> String {
        let mut ev = crate::fleet::tests_support::event(1);
        ev.sensor = sensor.into();
        ev.to_json()
    }

    #[test]
    fn classify_events_heartbeats_and_garbage() {
        let id = "s1.00000000000000ab.7";
        match classify("honeyport.events.s1", Some(id), event_json("s1").as_bytes()) {
            Item::Event(got, ev) => {
                assert_eq!(got.msg_id(), id);
                assert_eq!(ev.sensor, "s1");
            }
            other => panic!("{other:?}"),
        }
        let park = |subject: &str, id: Option<&str>, body: &[u8]| match classify(subject, id, body)
        {
            Item::Park(r) => r,
            other => panic!("not parked: {other:?}"),
        };
        assert!(
            park("honeyport.events.s1", None, event_json("s1").as_bytes())
                .contains("without a Nats-Msg-Id")
        );
        assert!(park(
            "honeyport.events.s1",
            Some("junk"),
            event_json("s1").as_bytes()
        )
        .contains("malformed"));
        assert!(park("honeyport.events.s1", Some(id), b"{not json").contains("not an event"));
        assert!(
            park("honeyport.events.s1", Some(id), event_json("s2").as_bytes()).contains("mismatch")
        );
        assert!(
            park("honeyport.events.s2", Some(id), event_json("s2").as_bytes()).contains("mismatch")
        );
        assert!(park("honeyport.heartbeat.s1", None, b"[]").contains("not a heartbeat"));
        assert!(park("other.subject", None, b"").contains("not a honeyport subject"));
    }
}
