//! The sensor's forwarder: the local store read as a [`Spool`], published to
//! `honeyport.events.<sensor>` in storage order, the persisted cursor moved only behind the
//! server's acks.
//!
//! - **Never slows the sensor.** It runs in its own task and only reads the store (the spool
//!   is its own SQLite connection, used on the blocking pool); the pipeline does not know it
//!   exists. NATS down, slow or full: the sensor serves and stores as before.
//! - **In order, pipelined.** Up to `window` publishes are outstanding; acks are taken in
//!   publish order, and the cursor moves to the highest position whose ack *and every earlier
//!   one* arrived. Each message carries `Nats-Msg-Id` = [`EventId::msg_id`]; the body is the
//!   stored JSON, unchanged.
//! - **Failures.** Any failed or timed-out ack drops the window and resends from the cursor
//!   after a capped exponential back-off (duplicates are fine: the server drops a repeated
//!   Msg-Id within its duplicate window, the collector's idempotent load beyond it). So after
//!   a failure the stream may hold a later event before an earlier one (a later publish
//!   succeeded while an earlier one timed out); consumers order by identity, not by stream
//!   position. The client reconnects by itself; a connection that never came up is retried
//!   with the same back-off.
//! - **Stream full** (`discard = new` refuses): the same retry, the spool keeps everything,
//!   the heartbeat and the log say so.
//! - **Shutdown**: [`Forwarder::stop`] publishes what it can for `flush_timeout`, persists
//!   the cursor and stops; what is unsent stays in the spool for the next run.
//!
//! The cursor is persisted after the window drains, every `CURSOR_EVERY` acks and at least
//! once a second while acks arrive: losing the last second of cursor moves in a crash means
//! republishing those events, which adds nothing.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use honeyport_store::{Backlog, Spool, Spooled};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::bus::{check_sensor_name, Bus, BusRaw};
use super::heartbeat::{self, ForwarderHealth, HeartbeatMsg, Rate};
use super::stream::{events_subject, heartbeat_subject};
use super::{count_field, duration_field, now_micros, Backoff};
use crate::config::units::NumOrStr;
use crate::config::Problems;
use crate::pipeline::PipelineStats;

/// The forwarder as written (`[forward]`, with `[forward.bus]`; later a `nats` sink).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRaw {
    /// The bus to publish to (see [`BusRaw`]). Required.
    pub bus: Option<BusRaw>,
    /// Publishes outstanding (sent, ack not yet in) at most. Default 512, 1-10000.
    pub window: Option<usize>,
    /// Events read from the spool at a time. Default 500, 1-10000.
    pub batch: Option<usize>,
    /// Heartbeat interval. Default 60 s.
    pub heartbeat: Option<NumOrStr>,
    /// How long a publish may wait for its ack before it counts as failed. Default 10 s.
    pub ack_timeout: Option<NumOrStr>,
    /// Longest wait between retries (the back-off starts at 100 ms and doubles). Default 30 s.
    pub retry_max: Option<NumOrStr>,
    /// How often an idle forwarder looks for new events in the spool. Default 250 ms.
    pub poll: Option<NumOrStr>,
    /// At shutdown, how long to keep publishing before stopping. Default 5 s.
    pub flush_timeout: Option<NumOrStr>,
    /// The persisted cursor's name in the spool. Default `nats`.
    pub cursor: Option<String>,
}

/// A validated forwarder config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    pub bus: Bus,
    pub window: usize,
    pub batch: usize,
    pub heartbeat: Duration,
    pub ack_timeout: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub poll: Duration,
    pub flush_timeout: Duration,
    pub cursor: String,
}

impl ForwardConfig {
    /// Defaults around `bus`.
    pub fn new(bus: Bus) -> ForwardConfig {
        ForwardConfig {
            bus,
            window: 512,
            batch: 500,
            heartbeat: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(10),
            retry_first: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            flush_timeout: Duration::from_secs(5),
            cursor: "nats".into(),
        }
    }
}

impl ForwardRaw {
    /// Pure: every problem under `at` (e.g. `forward`). `sensor`, when known, is checked to be
    /// a single subject token.
    pub fn validate(
        &self,
        at: &str,
        sensor: Option<&str>,
        base: &Path,
        p: &mut Problems<'_>,
    ) -> Option<ForwardConfig> {
        let before = p.errors.len();
        let bus = match &self.bus {
            Some(b) => b.validate(&format!("{at}.bus"), base, p),
            None => {
                p.at(at, "`[{at}.bus]` with a `url` is required");
                None
            }
        };
        if let Some(s) = sensor {
            if let Err(e) = check_sensor_name(s) {
                p.at("sensor", format!("{e} (needed by [{at}])"));
            }
        }
        let d = ForwardConfig::new(Bus::plain(""));
        let path = |k: &str| format!("{at}.{k}");
        let window = count_field(self.window, &path("window"), d.window, 1..=10_000, p);
        let batch = count_field(self.batch, &path("batch"), d.batch, 1..=10_000, p);
        let heartbeat = duration_field(&self.heartbeat, &path("heartbeat"), d.heartbeat, true, p);
        let ack_timeout = duration_field(
            &self.ack_timeout,
            &path("ack_timeout"),
            d.ack_timeout,
            true,
            p,
        );
        let retry_max = duration_field(&self.retry_max, &path("retry_max"), d.retry_max, true, p);
        let poll = duration_field(&self.poll, &path("poll"), d.poll, true, p);
        let flush_timeout = duration_field(
            &self.flush_timeout,
            &path("flush_timeout"),
            d.flush_timeout,
            false,
            p,
        );
        let cursor = self.cursor.clone().unwrap_or(d.cursor);
        if cursor.is_empty() {
            p.at(&path("cursor"), "must not be empty");
        }
        let bus = bus?;
        (p.errors.len() == before).then_some(ForwardConfig {
            bus,
            window,
            batch,
            heartbeat,
            ack_timeout,
            retry_first: d.retry_first.min(retry_max),
            retry_max,
            poll,
            flush_timeout,
            cursor,
        })
    }
}

/// Counters, shared with whoever wants to watch (the shutdown report, tests).
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Publishes sent (retries included).
    pub published: AtomicU64,
    /// Acks received (each a stored or a server-side duplicate).
    pub acked: AtomicU64,
    /// Acks that said "duplicate" (a resend the server had already).
    pub duplicates: AtomicU64,
    /// Times the window was dropped and resent from the cursor (or a connect retried).
    pub retries: AtomicU64,
    /// Heartbeats sent.
    pub heartbeats: AtomicU64,
    /// The last publish failed because the stream is full.
    pub stream_full: AtomicBool,
    /// The acknowledged position (what the persisted cursor moves to).
    pub cursor: AtomicI64,
    /// Whether the bus is connected now.
    pub connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl ForwardStats {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }

    /// A snapshot.
    pub fn report(&self) -> ForwardReport {
        ForwardReport {
            published: self.published.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            stream_full: self.stream_full.load(Ordering::Relaxed),
            cursor: self.cursor.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }
}

/// What the forwarder did, for the shutdown report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardReport {
    pub published: u64,
    pub acked: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub heartbeats: u64,
    pub stream_full: bool,
    pub cursor: i64,
    pub last_error: Option<String>,
    // Filled at stop: what stayed in the spool.
}

/// A forwarder running in the background.
pub struct Forwarder {
    stats: Arc<ForwardStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Option<Backlog>>,
}

impl Forwarder {
    /// Starts forwarding `spool` as sensor `sensor`. `sensor_stats` (the pipeline's counters)
    /// feed the heartbeat's rate and dropped count; without them the rate comes from the
    /// spool's head. Must be called inside a tokio runtime.
    pub fn start(
        cfg: ForwardConfig,
        sensor: &str,
        spool: Box<dyn Spool>,
        sensor_stats: Option<Arc<PipelineStats>>,
    ) -> Forwarder {
        let stats = Arc::new(ForwardStats::default());
        let (stop, stop_rx) = watch::channel(false);
        let worker = Worker {
            subject: events_subject(sensor),
            heartbeat_subject: heartbeat_subject(sensor),
            sensor: sensor.to_string(),
            spool: SpoolHandle(Arc::new(Mutex::new(spool))),
            stats: stats.clone(),
            sensor_stats,
            backoff: Backoff::new(cfg.retry_first, cfg.retry_max),
            cfg,
            js: None,
            acked: 0,
            persisted: 0,
            read_to: 0,
            buffer: VecDeque::new(),
            inflight: FuturesOrdered::new(),
            dry_until: None,
            run: 0,
            rate: Rate::default(),
            since_persist: 0,
            last_persist: Instant::now(),
        };
        let task = tokio::spawn(worker.run(stop_rx));
        Forwarder { stats, stop, task }
    }

    pub fn stats(&self) -> &Arc<ForwardStats> {
        &self.stats
    }

    /// Asks for a final flush (bounded by `flush_timeout`) and waits for the task; returns its
    /// counters and what stayed in the spool (`None` when the spool could not say).
    pub async fn stop(self) -> (ForwardReport, Option<Backlog>) {
        let _ = self.stop.send(true);
        let left = self.task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "forwarder task failed");
            None
        });
        (self.stats.report(), left)
    }
}

/// The spool behind a mutex, used on the blocking pool (it is blocking SQLite).
#[derive(Clone)]
struct SpoolHandle(Arc<Mutex<Box<dyn Spool>>>);

impl SpoolHandle {
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Spool) -> honeyport_store::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let s = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = s.lock().map_err(|_| "spool lock poisoned".to_string())?;
            f(guard.as_mut()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("spool task: {e}"))?
    }
}

type AckFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = (i64, Result<PublishAck, PublishError>)> + Send>,
>;

/// Persist the cursor after this many acks at most.
const CURSOR_EVERY: u64 = 4096;

struct Worker {
    cfg: ForwardConfig,
    sensor: String,
    subject: String,
    heartbeat_subject: String,
    spool: SpoolHandle,
    stats: Arc<ForwardStats>,
    sensor_stats: Option<Arc<PipelineStats>>,
    backoff: Backoff,
    js: Option<async_nats::jetstream::Context>,
    /// Highest position acked with every earlier one.
    acked: i64,
    /// What the spool's cursor holds.
    persisted: i64,
    /// Highest position read from the spool (published or in `buffer`).
    read_to: i64,
    buffer: VecDeque<Spooled>,
    inflight: FuturesOrdered<AckFuture>,
    /// After an empty read: do not read again before this.
    dry_until: Option<Instant>,
    /// The newest run seen in the spool (the heartbeat's `run`).
    run: u64,
    rate: Rate,
    since_persist: u64,
    last_persist: Instant,
}

enum Step {
    Continue,
    Stop,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Option<Backlog> {
        let name = self.cfg.cursor.clone();
        match self.spool.call(move |s| s.cursor(&name)).await {
            Ok(c) => {
                self.acked = c;
                self.persisted = c;
                self.read_to = c;
                self.stats.cursor.store(c, Ordering::Relaxed);
            }
            Err(e) => {
                // Without its cursor it would resend everything; the spool is the local store,
                // so this is our fault, not the bus's.
                tracing::error!(error = %e, "forwarder: cannot read its cursor; not forwarding");
                self.stats.set_error(Some(e));
                return None;
            }
        }
        let mut heartbeat = tokio::time::interval(self.cfg.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadline: Option<Instant> = None;
        loop {
            if deadline.is_none() && stop_asked(&stop) {
                deadline = Some(Instant::now() + self.cfg.flush_timeout);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d || self.drained() {
                    break;
                }
            }
            if self.js.is_none() {
                if let Step::Stop = self.connect(&mut stop, deadline).await {
                    break;
                }
                continue;
            }
            if let Err(e) = self.fill().await {
                tracing::error!(error = %e, "forwarder: reading the spool failed");
                self.stats.set_error(Some(e));
                if let Step::Stop = self.pause(&mut stop, deadline).await {
                    break;
                }
                continue;
            }
            if let Err(e) = self.publish_buffered().await {
                self.failed(e);
                if let Step::Stop = self.pause(&mut stop, deadline).await {
                    break;
                }
                continue;
            }
            let idle = self.inflight.is_empty();
            let wake = self
                .dry_until
                .filter(|_| idle)
                .unwrap_or_else(|| Instant::now() + self.cfg.poll);
            let until = match (idle, deadline) {
                (true, Some(d)) => d.min(wake),
                (true, None) => wake,
                (false, d) => d.unwrap_or(wake),
            };
            tokio::select! {
                biased;
                Some((pos, res)) = self.inflight.next(), if !idle => match res {
                    Ok(ack) => self.acked_one(pos, &ack).await,
                    Err(e) => {
                        self.failed(e);
                        if let Step::Stop = self.pause(&mut stop, deadline).await {
                            break;
                        }
                    }
                },
                _ = heartbeat.tick(), if deadline.is_none() => self.heartbeat().await,
                _ = stop.changed(), if deadline.is_none() => {}
                _ = tokio::time::sleep_until(until), if idle || deadline.is_some() => {}
            }
            if self.inflight.is_empty() {
                self.persist().await;
            }
        }
        self.persist().await;
        let acked = self.acked;
        let left = self.spool.call(move |s| s.backlog(acked)).await.ok();
        if let Some(b) = &left {
            if b.events > 0 {
                tracing::info!(
                    unsent = b.events,
                    "forwarder stopped; unsent events stay in the spool for the next run"
                );
            }
        }
        left
    }

    /// Everything read is acked and the spool had nothing more at the last look.
    fn drained(&self) -> bool {
        self.inflight.is_empty() && self.buffer.is_empty() && self.dry_until.is_some()
    }

    async fn connect(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> Step {
        match self
            .cfg
            .bus
            .connect(&format!("honeyport-forward {}", self.sensor))
            .await
        {
            Ok(client) => {
                tracing::info!(bus = %self.cfg.bus.display(), "forwarder connected");
                self.stats.connected.store(true, Ordering::Relaxed);
                let js = async_nats::jetstream::ContextBuilder::new()
                    .timeout(self.cfg.ack_timeout)
                    .max_ack_inflight(self.cfg.window.max(1) + 16)
                    .backpressure_on_inflight(true)
                    .build(client);
                self.js = Some(js);
                Step::Continue
            }
            Err(e) => {
                let msg = e.to_string();
                if self.stats.last_error().as_deref() != Some(msg.as_str()) {
                    tracing::warn!(error = %msg, "forwarder: bus not reachable; events stay in the spool, retrying");
                }
                self.stats.set_error(Some(msg));
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                self.pause(stop, deadline).await
            }
        }
    }

    /// Reads the next batch into the buffer when it is empty and the window has room.
    async fn fill(&mut self) -> Result<(), String> {
        if !self.buffer.is_empty() || self.inflight.len() >= self.cfg.window {
            return Ok(());
        }
        if self.dry_until.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let (after, limit) = (self.read_to, self.cfg.batch);
        let got = self.spool.call(move |s| s.after(after, limit)).await?;
        if got.is_empty() {
            self.dry_until = Some(Instant::now() + self.cfg.poll);
        } else {
            self.dry_until = None;
            if let Some(last) = got.last() {
                self.read_to = last.pos;
                self.run = last.id.run;
            }
            self.buffer.extend(got);
        }
        Ok(())
    }

    /// Publishes from the buffer while the window has room.
    async fn publish_buffered(&mut self) -> Result<(), PublishError> {
        let Some(js) = self.js.clone() else {
            return Ok(());
        };
        while self.inflight.len() < self.cfg.window {
            let Some(ev) = self.buffer.pop_front() else {
                break;
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, ev.id.msg_id().as_str());
            let fut = js
                .publish_with_headers(self.subject.clone(), headers, ev.json.into_bytes().into())
                .await?;
            self.stats.published.fetch_add(1, Ordering::Relaxed);
            let pos = ev.pos;
            self.inflight
                .push_back(Box::pin(async move { (pos, fut.await) }));
        }
        Ok(())
    }

    async fn acked_one(&mut self, pos: i64, ack: &PublishAck) {
        self.acked = pos;
        self.stats.cursor.store(pos, Ordering::Relaxed);
        self.stats.acked.fetch_add(1, Ordering::Relaxed);
        if ack.duplicate {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if self.stats.stream_full.swap(false, Ordering::Relaxed) {
            tracing::info!("forwarder: the stream takes events again");
        }
        self.backoff.reset();
        self.since_persist += 1;
        if self.since_persist >= CURSOR_EVERY
            || self.last_persist.elapsed() >= Duration::from_secs(1)
        {
            self.persist().await;
        }
    }

    /// A publish or its ack failed: drop the window, resend from the cursor.
    fn failed(&mut self, e: PublishError) {
        let msg = e.to_string();
        let full = is_stream_full(&msg);
        let was_full = self.stats.stream_full.swap(full, Ordering::Relaxed);
        if full && !was_full {
            tracing::warn!(error = %msg, backlog_from = self.acked, "forwarder: the stream is full; events stay in the spool, retrying");
        } else if !full && self.stats.last_error().as_deref() != Some(msg.as_str()) {
            tracing::warn!(error = %msg, "forwarder: publish failed; resending from the cursor");
        }
        self.stats.set_error(Some(msg));
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        self.inflight = FuturesOrdered::new();
        self.buffer.clear();
        self.read_to = self.acked;
        self.dry_until = None;
    }

    /// Waits the back-off (or until stop / the flush deadline).
    async fn pause(&mut self, stop: &mut watch::Receiver<bool>, deadline: Option<Instant>) -> Step {
        self.persist().await;
        let wait = self.backoff.next_delay();
        let until = Instant::now() + wait;
        match deadline {
            Some(d) => {
                tokio::time::sleep_until(until.min(d)).await;
                if Instant::now() >= d {
                    return Step::Stop;
                }
            }
            None if stop_asked(stop) => tokio::time::sleep(Duration::ZERO).await,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        Step::Continue
    }

    async fn persist(&mut self) {
        if self.acked <= self.persisted {
            return;
        }
        let (name, pos) = (self.cfg.cursor.clone(), self.acked);
        match self.spool.call(move |s| s.set_cursor(&name, pos)).await {
            Ok(()) => {
                self.persisted = pos;
                self.since_persist = 0;
                self.last_persist = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "forwarder: cannot persist its cursor (events will be resent)");
                self.stats.set_error(Some(e));
            }
        }
    }

    async fn heartbeat(&mut self) {
        let Some(js) = self.js.clone() else {
            return;
        };
        let acked = self.acked;
        let backlog = match self.spool.call(move |s| s.backlog(acked)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "forwarder: cannot read the backlog for a heartbeat");
                return;
            }
        };
        let now = now_micros();
        let (total, dropped) = match &self.sensor_stats {
            Some(s) => (
                s.written.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
            ),
            None => (u64::try_from(backlog.head).unwrap_or(0), 0),
        };
        let hb = HeartbeatMsg {
            heartbeat: heartbeat::build(heartbeat::Inputs {
                sensor: &self.sensor,
                run: self.run,
                now_micros: now,
                backlog,
                events_per_minute: self.rate.per_minute(total, now),
                dropped,
            }),
            forwarder: Some(self.health()),
        };
        let body = match serde_json::to_vec(&hb) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "forwarder: heartbeat does not serialize");
                return;
            }
        };
        // Its ack is awaited beside the event flow, never in it.
        match js
            .publish(self.heartbeat_subject.clone(), body.into())
            .await
        {
            Ok(fut) => {
                let stats = self.stats.clone();
                tokio::spawn(async move {
                    match fut.await {
                        Ok(_) => {
                            stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::debug!(error = %e, "forwarder: heartbeat not acked"),
                    }
                });
            }
            Err(e) => tracing::debug!(error = %e, "forwarder: heartbeat not sent"),
        }
    }

    fn health(&self) -> ForwarderHealth {
        let r = self.stats.report();
        ForwarderHealth {
            published: r.published,
            acked: r.acked,
            retries: r.retries,
            stream_full: r.stream_full,
            last_error: r.last_error,
        }
    }
}

/// Stop was asked for, or the [`Forwarder`] is gone.
fn stop_asked(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Whether a publish error is the stream refusing because a limit is reached (`discard =
/// new`: "maximum bytes exceeded", "maximum messages exceeded", ...).
pub fn is_stream_full(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("maximum") && m.contains("exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_problems() {
        let src = "window = 0\nheartbeat = \"1s\"\nretry_max = \"x\"\n[bus]\nurl = \"nats://127.0.0.1:1\"";
        let raw: ForwardRaw = toml::from_str(src).expect("parses");
        let mut p = Problems::new(src);
        assert!(raw
            .validate("forward", Some("bad.name"), Path::new("/"), &mut p)
            .is_none());
        let paths: Vec<_> = p.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["sensor", "forward.window", "forward.retry_max"]);
        let ok: ForwardRaw =
            toml::from_str("heartbeat = 1\n[bus]\nurl = \"nats://127.0.0.1:1\"").expect("parses");
        let mut p = Problems::new("");
        let cfg = ok
            .validate("forward", Some("s1"), Path::new("/"), &mut p)
            .expect("valid");
        assert_eq!(cfg.heartbeat, Duration::from_secs(1));
        assert_eq!(cfg.window, 512);
        assert!(
            toml::from_str::<ForwardRaw>("windw = 3").is_err(),
            "unknown fields refused"
        );
    }

    #[test]
    fn stream_full_is_recognised() {
        assert!(is_stream_full(
            "publish failed: nats: maximum bytes exceeded (code 400, error code 10077)"
        ));
        assert!(is_stream_full("maximum messages exceeded"));
        assert!(!is_stream_full("timed out: didn't receive ack in time"));
    }
}
