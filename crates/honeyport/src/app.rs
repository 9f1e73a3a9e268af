//! Wiring: config -> limits -> bind -> pipeline -> serve -> drain. Used by `honeyport run` and
//! by the integration tests, which start the real thing in-process on port 0.

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use crate::config::Config;
use crate::listener::{BoundInfo, Sensor, ServeReport};
use crate::pipeline::{Pipeline, PipelineReport};

/// Raises the soft open-files limit to the hard limit and returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// Caps `max_connections` to what the open-files limit allows (each session is one file
/// descriptor; the sockets, the store and a margin need the rest). Returns the ceiling.
pub fn apply_fd_ceiling(cfg: &mut Config, nofile: u64) -> usize {
    let sockets: usize = cfg.listeners.iter().map(|l| l.binds.len()).sum();
    let reserve = sockets as u64 + 64;
    let ceiling = nofile.saturating_sub(reserve).max(1) as usize;
    if cfg.limits.max_connections > ceiling {
        tracing::warn!(
            configured = cfg.limits.max_connections,
            ceiling,
            nofile,
            "max_connections lowered to what the open-files limit allows"
        );
        cfg.limits.max_connections = ceiling;
    }
    cfg.limits.max_connections
}

/// A sensor serving in the background.
pub struct Running {
    pub bound: Vec<BoundInfo>,
    pub data_dir: PathBuf,
    /// The forwarder's counters (published, acked, retries, last error), when `[forward]`.
    pub forward: Option<std::sync::Arc<crate::fleet::forward::ForwardStats>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<RunReport>,
}

/// Everything that happened in one run, for the shutdown report.
#[derive(Debug, Clone, Copy)]
pub struct RunReport {
    pub serve: ServeReport,
    pub pipeline: PipelineReport,
}

impl RunReport {
    /// Events lost anywhere (0 unless something is badly wrong).
    pub fn lost(&self) -> u64 {
        self.pipeline.dropped
    }
}

/// Binds every listener, opens the store and starts serving.
pub async fn start(mut cfg: Config, data_dir: &Path) -> anyhow::Result<Running> {
    let sensor_name = cfg.sensor.clone();
    let storage = cfg.storage.clone();
    let downloads = cfg.downloads.clone();
    let forward = cfg.forward.take();
    if forward.is_some() {
        // The host-name default is known only now; `check` saw an explicit name.
        crate::fleet::bus::check_sensor_name(&sensor_name)
            .map_err(|e| anyhow::anyhow!("[forward]: {e}"))?;
    }
    let tagger = cfg
        .tagger
        .take()
        .map(|t| crate::classify::tagger::Tagger::new(&t));
    for l in &cfg.listeners {
        for p in std::iter::once(&l.persona).chain(l.alternatives.iter().map(|(_, p)| p)) {
            p.prepare(data_dir, cfg.limits.idle_timeout)
                .map_err(|e| anyhow::anyhow!("listener {:?}: {e}", l.name))?;
        }
    }
    let mut sensor = Sensor::bind(cfg)?;
    if let Some(d) = downloads {
        let f = crate::fetch::Fetcher::new(d, data_dir)
            .map_err(|e| anyhow::anyhow!("downloads folder: {e}"))?;
        sensor = sensor.with_fetcher(f);
    }
    let bound = sensor.bound();
    let (events, pipeline) = Pipeline::start(data_dir, &storage, &sensor_name, tagger)?;
    // Beside the pipeline, never in it: it reads the store of record as a spool.
    let forwarder = match forward {
        Some(f) => {
            let spool =
                crate::store::open_spool(&crate::store::Location::Sqlite(data_dir.to_path_buf()))?;
            Some(crate::fleet::forward::Forwarder::start(
                f,
                &sensor_name,
                spool,
                Some(pipeline.stats().clone()),
            ))
        }
        None => None,
    };
    let forward_stats = forwarder.as_ref().map(|f| f.stats().clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = sensor
            .serve(events, async {
                let _ = stop_rx.await;
            })
            .await;
        // Every session has ended and dropped its sender; the writer drains and flushes.
        let pipeline = tokio::task::spawn_blocking(move || pipeline.finish())
            .await
            .unwrap_or_default();
        // Last: everything is in the spool now; a bounded final flush, the rest waits there.
        if let Some(f) = forwarder {
            let (r, left) = f.stop().await;
            tracing::info!(
                published = r.published,
                acked = r.acked,
                retries = r.retries,
                unsent = left.map(|b| b.events),
                last_error = r.last_error.as_deref().unwrap_or(""),
                "forwarder"
            );
        }
        RunReport { serve, pipeline }
    });
    Ok(Running {
        bound,
        data_dir: data_dir.to_path_buf(),
        forward: forward_stats,
        stop: Some(stop_tx),
        task,
    })
}

impl Running {
    /// The first bound address of a listener, by name and transport.
    pub fn addr(
        &self,
        listener: &str,
        transport: honeyport_event::Transport,
    ) -> Option<std::net::SocketAddr> {
        self.bound
            .iter()
            .find(|b| b.listener == listener && b.transport == transport)
            .map(|b| b.addr)
    }

    /// Graceful shutdown: stop accepting, grace period, end the rest, flush every event.
    pub async fn stop(mut self) -> RunReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => panic!("sensor task failed: {e}"),
        }
    }
}
