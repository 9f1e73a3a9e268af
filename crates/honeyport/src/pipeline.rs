//! The event pipeline: sessions -> bounded channel -> one writer thread -> sinks.
//!
//! Nothing accepted is lost silently. Sessions `send().await` into a bounded queue (memory is
//! bounded; a full queue makes the session wait, never drops). Accept loops check
//! [`EventTx::pressure_high`] and stop accepting while the queue is more than half full, so a
//! slow store slows accepting first. The writer drains in batches (one SQLite transaction per
//! batch) and, when every sender is gone, flushes and exits. An event can only be dropped if it
//! is sent after the writer died; that is counted and reported at shutdown.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use honeyport_event::Event;
use tokio::sync::mpsc;

use crate::classify::tagger::Tagger;
use crate::config::Storage;
use crate::sink::jsonl::JsonlSink;
use crate::store::{Location, RunTotals, Writer, WriterOptions};

/// Counters shared by senders and the writer.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Events handed to the queue.
    pub sent: AtomicU64,
    /// Events committed to every sink.
    pub written: AtomicU64,
    /// Events that could not be queued (writer gone). Should always be 0.
    pub dropped: AtomicU64,
    /// Times a session had to wait because the queue was full.
    pub stalls: AtomicU64,
    /// Write errors from a sink (each also logged).
    pub sink_errors: AtomicU64,
    /// Events the tagger added (tags, client names), written beside the ones queued; not
    /// counted in `sent` or `written`.
    pub derived: AtomicU64,
}

/// The sending side, cloned into every session.
#[derive(Clone)]
pub struct EventTx {
    tx: mpsc::Sender<Event>,
    stats: Arc<PipelineStats>,
}

impl EventTx {
    /// Queues an event; waits when the queue is full. Never drops while the writer lives.
    pub async fn send(&self, ev: Event) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                self.stats.stalls.fetch_add(1, Ordering::Relaxed);
                // Boxed: the waiting send is rare and its state large; kept out of line, every
                // session's future stays small.
                if Box::pin(self.tx.send(ev)).await.is_err() {
                    self.dropped();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.dropped(),
        }
    }

    /// Queues without waiting, for `Drop` paths; falls back to a spawned send when full.
    pub fn send_detached(&self, ev: Event) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                let me = self.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => {
                        h.spawn(async move {
                            if me.tx.send(ev).await.is_err() {
                                me.dropped();
                            }
                        });
                    }
                    Err(_) => self.dropped(),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.dropped(),
        }
    }

    fn dropped(&self) {
        let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_power_of_two() {
            tracing::error!(
                dropped = n,
                "event writer is gone: events are being dropped"
            );
        }
    }

    /// True when the queue is more than half full: accept loops wait until it drains.
    pub fn pressure_high(&self) -> bool {
        self.tx.capacity() < self.tx.max_capacity() / 2
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }
}

/// The writer thread; `finish` waits for it to drain and flush.
pub struct Pipeline {
    handle: Option<JoinHandle<()>>,
    stats: Arc<PipelineStats>,
}

/// What the pipeline did, for the shutdown report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineReport {
    pub sent: u64,
    pub written: u64,
    pub dropped: u64,
    pub stalls: u64,
    pub sink_errors: u64,
    pub derived: u64,
}

impl Pipeline {
    /// Opens the sinks (SQLite in `data_dir`, optional JSON lines) and starts the writer, which
    /// runs each batch through `tagger` (if any) before the sinks.
    pub fn start(
        data_dir: &Path,
        storage: &Storage,
        sensor: &str,
        tagger: Option<Tagger>,
    ) -> anyhow::Result<(EventTx, Pipeline)> {
        std::fs::create_dir_all(data_dir)?;
        let mut sqlite = crate::store::open_writer(
            &Location::Sqlite(data_dir.to_path_buf()),
            WriterOptions {
                synchronous_full: storage.synchronous_full,
                bulk: false,
            },
        )?;
        sqlite.begin_run(sensor)?;
        let mut jsonl = match &storage.jsonl {
            Some(p) => {
                let path = if p.is_absolute() {
                    p.clone()
                } else {
                    data_dir.join(p)
                };
                Some(JsonlSink::open(
                    path,
                    storage.jsonl_max_size,
                    storage.jsonl_keep,
                )?)
            }
            None => None,
        };
        let (tx, mut rx) = mpsc::channel::<Event>(storage.queue);
        let stats = Arc::new(PipelineStats::default());
        let st = stats.clone();
        let batch_max = storage.batch;
        let handle = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || {
                let mut tagger = tagger;
                let mut batch: Vec<Event> = Vec::with_capacity(batch_max.min(4096));
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < batch_max {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                    let queued = batch.len();
                    if let Some(t) = tagger.as_mut() {
                        let n = t.observe(&mut batch);
                        st.derived.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    write_batch(sqlite.as_mut(), jsonl.as_mut(), &batch, queued, &st);
                    batch.clear();
                }
                if let Some(t) = &tagger {
                    let s = t.stats();
                    tracing::info!(
                        derived = s.derived,
                        duplicates = s.duplicates,
                        untracked_sessions = s.untracked,
                        evicted_sources = s.evicted_sources,
                        "tagger"
                    );
                }
                if let Some(j) = jsonl.as_mut() {
                    if let Err(e) = j.sync() {
                        tracing::error!(error = %e, "json-lines sink: final sync failed");
                        st.sink_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let r = report(&st);
                if let Err(e) = sqlite.end_run(RunTotals {
                    sent: r.sent,
                    written: r.written,
                    dropped: r.dropped,
                    stalls: r.stalls,
                }) {
                    tracing::error!(error = %e, "sqlite sink: could not record the run summary");
                }
            })?;
        Ok((
            EventTx {
                tx,
                stats: stats.clone(),
            },
            Pipeline {
                handle: Some(handle),
                stats,
            },
        ))
    }

    /// Waits for the writer to drain everything queued and flush. Every `EventTx` must be
    /// dropped first, or this waits for them.
    pub fn finish(mut self) -> PipelineReport {
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("event writer panicked");
            }
        }
        report(&self.stats)
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }
}

fn report(st: &PipelineStats) -> PipelineReport {
    PipelineReport {
        sent: st.sent.load(Ordering::Relaxed),
        written: st.written.load(Ordering::Relaxed),
        dropped: st.dropped.load(Ordering::Relaxed),
        stalls: st.stalls.load(Ordering::Relaxed),
        sink_errors: st.sink_errors.load(Ordering::Relaxed),
        derived: st.derived.load(Ordering::Relaxed),
    }
}

/// Writes a batch; `queued` is how many of its events came from the queue (the rest were
/// derived by the tagger), for the counters.
fn write_batch(
    sqlite: &mut dyn Writer,
    jsonl: Option<&mut JsonlSink>,
    batch: &[Event],
    queued: usize,
    st: &PipelineStats,
) {
    // SQLite is the store of record: retry a failed batch a few times (a locked database, a
    // full disk that frees up) before counting it as lost.
    let mut ok = false;
    for attempt in 0..5u32 {
        match sqlite.write(batch) {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(e) => {
                st.sink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, attempt, events = batch.len(), "sqlite sink: batch failed");
                std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
            }
        }
    }
    if let Some(j) = jsonl {
        if let Err(e) = j.write(batch) {
            st.sink_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "json-lines sink: write failed");
        }
    }
    if ok {
        st.written.fetch_add(queued as u64, Ordering::Relaxed);
    } else {
        st.dropped.fetch_add(queued as u64, Ordering::Relaxed);
        tracing::error!(
            events = batch.len(),
            "sqlite sink: batch lost after retries"
        );
    }
}
