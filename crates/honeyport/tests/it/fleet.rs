//! The fleet over a real `nats-server -js` (the testkit's, 127.0.0.1 only): the forwarder
//! against an in-memory spool, `collect` against an in-memory idempotent loader, the stream's
//! checks, and a sensor's permissions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honeyport::fleet::bus::{Auth, Bus, BusError, Secret};
use honeyport::fleet::collect::{self, CollectConfig, CollectStats};
use honeyport::fleet::forward::{ForwardConfig, Forwarder};
use honeyport::fleet::stream::{StreamError, StreamSpec};
use honeyport_event::{Event, EventKind, SessionId, Timestamp, Transport};
use honeyport_store::{
    Backlog, EventId, Heartbeat, Loaded, Loader, Parked, Spool, Spooled, StoreError,
};
use honeyport_testkit::nats::NatsServer;

/// Bound of any one wait (a hang guard, never a performance assertion).
const WAIT: Duration = Duration::from_secs(60);

// ---- in-memory store side ---------------------------------------------------------------

#[derive(Default)]
struct SpoolState {
    events: Vec<Spooled>,
    cursors: HashMap<String, i64>,
}

/// A Vec-backed spool the test keeps a handle on.
#[derive(Clone, Default)]
struct MemSpool(Arc<Mutex<SpoolState>>);

impl MemSpool {
    fn push(&self, sensor: &str, run: u64, n: u64) {
        let mut s = self.0.lock().unwrap();
        for _ in 0..n {
            let pos = s.events.len() as i64 + 1;
            let ev = event(sensor, pos);
            s.events.push(Spooled {
                pos,
                id: EventId {
                    sensor: sensor.into(),
                    run,
                    seq: pos as u64,
                },
                ts: ev.timestamp.0.timestamp_micros(),
                json: ev.to_json(),
            });
        }
    }
    fn cursor_now(&self, name: &str) -> i64 {
        *self.0.lock().unwrap().cursors.get(name).unwrap_or(&0)
    }
    fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| e.id.msg_id())
            .collect()
    }
}

impl Spool for MemSpool {
    fn after(&mut self, after: i64, limit: usize) -> honeyport_store::Result<Vec<Spooled>> {
        let s = self.0.lock().unwrap();
        Ok(s.events
            .iter()
            .filter(|e| e.pos > after)
            .take(limit)
            .cloned()
            .collect())
    }
    fn cursor(&mut self, name: &str) -> honeyport_store::Result<i64> {
        Ok(self.cursor_now(name))
    }
    fn set_cursor(&mut self, name: &str, pos: i64) -> honeyport_store::Result<()> {
        self.0.lock().unwrap().cursors.insert(name.into(), pos);
        Ok(())
    }
    fn backlog(&mut self, after: i64) -> honeyport_store::Result<Backlog> {
        let s = self.0.lock().unwrap();
        let rest: Vec<_> = s.events.iter().filter(|e| e.pos > after).collect();
        Ok(Backlog {
            events: rest.len() as u64,
            oldest_micros: rest.first().map(|e| e.ts),
            head: s.events.last().map_or(0, |e| e.pos),
        })
    }
}

#[derive(Default)]
struct LoaderState {
    events: BTreeMap<EventId, Event>,
    heartbeats: Vec<(Heartbeat, i64)>,
    parked: Vec<Parked>,
    /// The next this many `load` calls fail (a PostgreSQL restart).
    fail_loads: u32,
    load_calls: u32,
}

/// An idempotent HashMap-keyed loader the test keeps a handle on.
#[derive(Clone, Default)]
struct MemLoader(Arc<Mutex<LoaderState>>);

impl MemLoader {
    fn with<T>(&self, f: impl FnOnce(&mut LoaderState) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

impl Loader for MemLoader {
    fn load(&mut self, batch: &[(EventId, Event)]) -> honeyport_store::Result<Loaded> {
        let mut s = self.0.lock().unwrap();
        s.load_calls += 1;
        if s.fail_loads > 0 {
            s.fail_loads -= 1;
            return Err(StoreError::Other("connection to PostgreSQL lost".into()));
        }
        let mut r = Loaded::default();
        for (id, ev) in batch {
            if s.events.insert(id.clone(), ev.clone()).is_none() {
                r.new += 1;
            } else {
                r.duplicate += 1;
            }
        }
        Ok(r)
    }
    fn heartbeat(&mut self, hb: &Heartbeat, received_micros: i64) -> honeyport_store::Result<()> {
        self.0
            .lock()
            .unwrap()
            .heartbeats
            .push((hb.clone(), received_micros));
        Ok(())
    }
    fn park(&mut self, p: &Parked) -> honeyport_store::Result<()> {
        self.0.lock().unwrap().parked.push(p.clone());
        Ok(())
    }
}

fn event(sensor: &str, n: i64) -> Event {
    Event {
        v: honeyport_event::SCHEMA_VERSION,
        timestamp: Timestamp::from_unix_micros(1_700_000_000_000_000 + n).unwrap(),
        sensor: sensor.into(),
        session: SessionId::from_u64(n as u64),
        transport: Transport::Tcp,
        src_ip: [192, 0, 2, (n % 250) as u8].into(),
        src_port: 40000,
        dst_ip: [127, 0, 0, 1].into(),
        dst_port: 2323,
        kind: EventKind::Connect {
            listener: "telnet".into(),
            persona: "busybox".into(),
            tls: false,
        },
    }
}

// ---- helpers ----------------------------------------------------------------------------

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast_forward(url: &str) -> ForwardConfig {
    ForwardConfig {
        window: 64,
        batch: 100,
        heartbeat: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(2),
        retry_max: Duration::from_millis(500),
        poll: Duration::from_millis(50),
        flush_timeout: Duration::from_secs(2),
        ..ForwardConfig::new(Bus::plain(url))
    }
}

async fn js(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(Bus::plain(url).connect("test").await.unwrap())
}

/// Every message in the stream, in stream order: (subject, Nats-Msg-Id, body).
async fn stream_contents(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Vec<(String, String, String)> {
    let mut stream = js.get_stream(name).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let id = m
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push((
                m.subject.to_string(),
                id,
                String::from_utf8(m.payload.to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn spec(max_bytes: i64) -> StreamSpec {
    StreamSpec {
        max_bytes,
        ..StreamSpec::default()
    }
}

// ---- forwarder ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_publishes_in_order_and_moves_the_cursor_only_after_acks() {
    let nats = NatsServer::start(true);
    let url = nats.url();
    let spool = MemSpool::default();
    spool.push("s1", 7, 300);
    // No stream yet: every publish fails ("no responders"), so nothing is acked.
    let fwd = Forwarder::start(fast_forward(&url), "s1", Box::new(spool.clone()), None);
    wait_for("a failed publish", || {
        fwd.stats().retries.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(spool.cursor_now("nats"), 0, "cursor moved without acks");
    assert_eq!(fwd.stats().acked.load(Ordering::Relaxed), 0);

    spec(1 << 30).ensure(&js(&url).await, false).await.unwrap();
    wait_for("all 300 acked", || spool.cursor_now("nats") == 300).await;
    spool.push("s1", 7, 50);
    wait_for("the 50 added later", || spool.cursor_now("nats") == 350).await;
    wait_for("a heartbeat acked", || {
        fwd.stats().heartbeats.load(Ordering::Relaxed) >= 1
    })
    .await;
    let (report, left) = fwd.stop().await;
    assert_eq!(left.map(|b| b.events), Some(0));
    assert!(report.acked >= 350, "{report:?}");

    let got = stream_contents(&js(&url).await, "HONEYPORT").await;
    let events: Vec<_> = got
        .iter()
        .filter(|(s, ..)| s == "honeyport.events.s1")
        .collect();
    let ids: Vec<String> = events.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids, spool.ids(), "in spool order, each once");
    let stored = spool.0.lock().unwrap().events.clone();
    for ((_, _, body), sp) in events.iter().zip(&stored) {
        assert_eq!(body, &sp.json, "the body is the stored JSON unchanged");
    }
    assert!(
        got.iter().any(|(s, ..)| s == "honeyport.heartbeat.s1"),
        "heartbeats are sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_survives_a_nats_crash_mid_stream_and_every_event_arrives_once() {
    let mut nats = NatsServer::start(true);
    let url = nats.url();
    spec(1 << 30).ensure(&js(&url).await, false).await.unwrap();
    let spool = MemSpool::default();
    spool.push("s1", 1, 2000);
    let fwd = Forwarder::start(fast_forward(&url), "s1", Box::new(spool.clone()), None);
    wait_for("some acked", || spool.cursor_now("nats") >= 1).await;
    tokio::task::block_in_place(|| nats.kill());
    // Stored while the bus is down: the sensor goes on, the spool grows.
    spool.push("s1", 1, 1000);
    wait_for("the outage noticed", || {
        fwd.stats().retries.load(Ordering::Relaxed) >= 1
    })
    .await;
    let at_kill = spool.cursor_now("nats");
    tokio::task::block_in_place(|| nats.restart());
    wait_for("all 3000 acked after the restart", || {
        spool.cursor_now("nats") == 3000
    })
    .await;
    let (report, _) = fwd.stop().await;
    assert!(at_kill < 3000, "the crash came mid-stream ({at_kill})");
    assert!(report.retries >= 1, "{report:?}");

    let got = stream_contents(&js(&url).await, "HONEYPORT").await;
    let ids: Vec<&str> = got
        .iter()
        .filter(|(s, ..)| s == "honeyport.events.s1")
        .map(|(_, id, _)| id.as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    let want: BTreeSet<String> = spool.ids().into_iter().collect();
    assert_eq!(
        unique,
        want.iter().map(String::as_str).collect(),
        "every event is in the stream"
    );
    // Anything stored twice (republished after the duplicate window) carries the same msg id.
    for id in &ids {
        assert!(EventId::parse_msg_id(id).is_some(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stream_makes_the_forwarder_wait_and_nothing_is_lost_when_space_frees() {
    let nats = NatsServer::start(true);
    let url = nats.url();
    // Room for a few dozen events, not 400.
    let small = spec(16 << 10);
    small.ensure(&js(&url).await, false).await.unwrap();
    let spool = MemSpool::default();
    spool.push("s1", 3, 400);
    let fwd = Forwarder::start(fast_forward(&url), "s1", Box::new(spool.clone()), None);
    wait_for("the stream to be reported full", || {
        fwd.stats().stream_full.load(Ordering::Relaxed)
    })
    .await;
    assert!(spool.cursor_now("nats") < 400);
    assert!(fwd
        .stats()
        .last_error()
        .is_some_and(|e| e.contains("maximum")));

    // A collector drains it (work queue: acked messages leave the stream).
    let loader = MemLoader::default();
    let (stop, stats, task) = start_collector(&url, small, loader.clone()).await;
    wait_for("all 400 loaded", || loader.with(|s| s.events.len()) == 400).await;
    wait_for("the cursor at the end", || spool.cursor_now("nats") == 400).await;
    let (report, _) = fwd.stop().await;
    assert!(!report.stream_full, "{report:?}");
    let _ = stop.send(());
    task.await.unwrap();
    let r = stats.report();
    assert_eq!(r.loaded, 400, "{r:?}");
    assert_eq!(r.parked, 0, "{r:?}");
}

// ---- collect ------------------------------------------------------------------------------

async fn start_collector(
    url: &str,
    stream: StreamSpec,
    loader: MemLoader,
) -> (
    tokio::sync::oneshot::Sender<()>,
    Arc<CollectStats>,
    tokio::task::JoinHandle<()>,
) {
    let cfg = CollectConfig {
        stream,
        batch: 100,
        ack_wait: Duration::from_secs(2),
        retry_max: Duration::from_millis(300),
        ..CollectConfig::new(Bus::plain(url))
    };
    let consumer = collect::init(&cfg).await.unwrap();
    let stats = Arc::new(CollectStats::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = stats.clone();
    let task = tokio::spawn(async move {
        collect::run(&cfg, consumer, Box::new(loader), st, async {
            let _ = rx.await;
        })
        .await;
    });
    (tx, stats, task)
}

async fn publish(js: &async_nats::jetstream::Context, subject: &str, id: Option<&str>, body: &str) {
    let mut h = async_nats::HeaderMap::new();
    if let Some(id) = id {
        h.insert(async_nats::header::NATS_MESSAGE_ID, id);
    }
    js.publish_with_headers(subject.to_string(), h, body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_parks_bad_messages_keeps_heartbeats_with_server_time_and_redelivers_after_a_failed_load(
) {
    let nats = NatsServer::start(true);
    let url = nats.url();
    spec(1 << 30).ensure(&js(&url).await, false).await.unwrap();
    let js = js(&url).await;
    let before = chrono::Utc::now().timestamp_micros();
    for n in 1..=20 {
        let id = EventId {
            sensor: "s1".into(),
            run: 9,
            seq: n,
        };
        publish(
            &js,
            "honeyport.events.s1",
            Some(&id.msg_id()),
            &event("s1", n as i64).to_json(),
        )
        .await;
    }
    publish(
        &js,
        "honeyport.events.s1",
        Some("s1.0000000000000009.99"),
        "not json",
    )
    .await;
    publish(&js, "honeyport.events.s1", None, &event("s1", 98).to_json()).await;
    // Sensor s2's event published on s1's subject: foreign.
    publish(
        &js,
        "honeyport.events.s1",
        Some("s2.0000000000000009.1"),
        &event("s2", 1).to_json(),
    )
    .await;
    let hb = Heartbeat {
        sensor: "s1".into(),
        version: "test".into(),
        run: 9,
        // The sensor's clock is an hour off: kept as sent, never used as the receive time.
        sent_micros: before - 3_600_000_000,
        backlog: 0,
        oldest_unacked_secs: 0.0,
        events_per_minute: 1.0,
        dropped: 0,
    };
    publish(
        &js,
        "honeyport.heartbeat.s1",
        None,
        &serde_json::to_string(&hb).unwrap(),
    )
    .await;
    let after = chrono::Utc::now().timestamp_micros();

    let loader = MemLoader::default();
    loader.with(|s| s.fail_loads = 2);
    let (stop, stats, task) = start_collector(&url, StreamSpec::default(), loader.clone()).await;
    wait_for("the 20 events loaded", || {
        loader.with(|s| s.events.len()) == 20
    })
    .await;
    wait_for("everything acked (the work queue empty)", || {
        stats.report().parked == 3 && stats.report().heartbeats >= 1
    })
    .await;
    let mut left = u64::MAX;
    for _ in 0..200 {
        let mut s = js.get_stream("HONEYPORT").await.unwrap();
        left = s.info().await.unwrap().state.messages;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "every message acked once handled");
    let _ = stop.send(());
    task.await.unwrap();

    let r = stats.report();
    assert_eq!(r.load_failures, 2, "{r:?}");
    assert_eq!(r.loaded, 20, "{r:?}");
    loader.with(|s| {
        assert!(s.load_calls >= 3, "retried after the failures");
        let reasons: Vec<&str> = s.parked.iter().map(|p| p.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("not an event")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("without a Nats-Msg-Id")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("sensor mismatch")),
            "{reasons:?}"
        );
        let (got, received) = &s.heartbeats[0];
        assert_eq!(got, &hb);
        assert!(
            (before..=after + 1_000_000).contains(received),
            "received at the server's time, not the sensor's: {received} vs {before}..{after}"
        );
    });
}

// ---- stream checks --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_settings_is_refused_naming_the_fields_unless_updated() {
    let nats = NatsServer::start(true);
    let js = js(&nats.url()).await;
    spec(1 << 20).ensure(&js, false).await.unwrap();
    spec(1 << 20)
        .ensure(&js, false)
        .await
        .expect("same settings: fine");
    let other = StreamSpec {
        duplicate_window: Duration::from_secs(30),
        ..spec(2 << 20)
    };
    match other.ensure(&js, false).await {
        Err(StreamError::Differs { diffs, .. }) => {
            assert_eq!(diffs.len(), 2, "{diffs:?}");
            assert!(diffs[0].starts_with("max_bytes"), "{diffs:?}");
            assert!(diffs[1].starts_with("duplicate_window"), "{diffs:?}");
        }
        other => panic!("{other:?}"),
    }
    let mut s = other.ensure(&js, true).await.expect("updated");
    assert_eq!(s.info().await.unwrap().config.max_bytes, 2 << 20);
}

// ---- permissions ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_may_publish_only_as_itself_and_cannot_touch_or_read_the_stream() {
    let s2_key = nkeys::KeyPair::new_user();
    let conf = include_str!("../../../../examples/fleet/nats-server.conf").replace(
        "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
        &s2_key.public_key(),
    );
    let nats = NatsServer::start_with_config(&conf);
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("s2.nk");
    std::fs::write(&seed_file, s2_key.seed().unwrap()).unwrap();
    let user = |u: &str, p: &str| Bus {
        auth: Auth::UserPassword {
            user: u.into(),
            password: Secret::new(p),
        },
        ..Bus::plain(&url)
    };
    // The collector's rights make the stream.
    let collector = user("collector", "collector-pw");
    let cjs = async_nats::jetstream::new(collector.connect("collector").await.unwrap());
    spec(1 << 20).ensure(&cjs, false).await.unwrap();

    // Wrong password: a clear refusal naming the user, not the password.
    match user("s1", "not-the-pw-42").connect("s1").await {
        Err(e @ BusError::Refused { .. }) => {
            let m = e.to_string();
            assert!(m.contains("\"s1\"") && !m.contains("pw-42"), "{m}");
        }
        other => panic!("{other:?}"),
    }

    let s1 = user("s1", "s1-pw").connect("s1").await.unwrap();
    let s1js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(s1.clone());
    let ev = |s: &str, n| event(s, n).to_json();
    // As itself: acked.
    s1js.publish_with_headers(
        "honeyport.events.s1",
        headers("s1.0000000000000001.1"),
        ev("s1", 1).into(),
    )
    .await
    .unwrap()
    .await
    .expect("s1 publishes as s1");
    // As s2: refused by the server (no ack), nothing stored.
    let as_s2 = s1js
        .publish_with_headers(
            "honeyport.events.s2",
            headers("s2.0000000000000001.1"),
            ev("s2", 1).into(),
        )
        .await;
    assert!(
        match as_s2 {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        },
        "s1 published as s2"
    );
    // Cannot delete or purge the stream, nor make a consumer to read it.
    assert!(s1js.delete_stream("HONEYPORT").await.is_err());
    let s1_stream = s1js.get_stream("HONEYPORT").await;
    assert!(s1_stream.is_err(), "s1 may not even look at the stream");
    // Cannot read the subjects directly either: the subscription gets nothing.
    let mut sub = s1.subscribe("honeyport.events.>").await.unwrap();
    let s2 = Bus {
        auth: Auth::NKeySeedFile(seed_file),
        ..Bus::plain(&url)
    }
    .connect("s2")
    .await
    .expect("s2 connects with its NKey");
    let s2js = async_nats::jetstream::new(s2);
    s2js.publish_with_headers(
        "honeyport.events.s2",
        headers("s2.0000000000000001.2"),
        ev("s2", 2).into(),
    )
    .await
    .unwrap()
    .await
    .expect("s2 publishes as s2");
    assert!(
        tokio::time::timeout(
            Duration::from_millis(500),
            futures_util::StreamExt::next(&mut sub)
        )
        .await
        .is_err(),
        "s1 read s2's event"
    );

    // The collector sees exactly what each published as itself.
    let mut stream = cjs.get_stream("HONEYPORT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let got = stream_contents(&cjs, "HONEYPORT").await;
    let subjects: Vec<(&str, &str)> = got
        .iter()
        .map(|(s, id, _)| (s.as_str(), id.as_str()))
        .collect();
    assert_eq!(
        subjects,
        [
            ("honeyport.events.s1", "s1.0000000000000001.1"),
            ("honeyport.events.s2", "s2.0000000000000001.2")
        ]
    );
}

fn headers(id: &str) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, id);
    h
}
