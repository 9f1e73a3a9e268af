//! The whole fleet, end to end: three real sensors (`app::start`, each on its own loopback
//! address) forward through a real `nats-server -js` to real `honeyport collect` processes
//! loading a real PostgreSQL, under load, while the collector is SIGKILLed and restarted, a
//! second collector shares the consumer, nats-server is restarted, one sensor's link is cut
//! (its acks lost) for longer than the stream's duplicate window, and a sensor is restarted.
//! Afterwards the central store's records, sources and targets per day and port, fleet-wide
//! and per sensor, equal those of the union of the three local stores, and it holds exactly
//! as many events as they do: nothing lost, nothing counted twice.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use honeyport::app::Running;
use honeyport::store::{
    open_reader, open_spool, open_writer, EventFilter, Location, PortCounts, Reader, Scope,
    WriterOptions,
};
use honeyport_event::{Event, Transport};
use honeyport_testkit::nats::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Bound of any one wait (a hang guard, never a performance assertion).
const WAIT: Duration = Duration::from_secs(120);

const PERSONA: &str = r#"
[personas.smtp]
type = "scripted"
banner = "220 mx ESMTP Exim 4.92\r\n"
loop = 5
[[personas.smtp.rules]]
name = "EHLO"
prefix = "EHLO"
reply = "250 mx Hello\r\n"
[[personas.smtp.rules]]
name = "QUIT"
prefix = "QUIT"
reply = "221 bye\r\n"
action = "reply_disconnect"
"#;

fn sensor_config(name: &str, bind: Ipv4Addr, port: u16, nats: &str) -> String {
    format!(
        r#"sensor = "{name}"
{PERSONA}
[[listeners]]
name = "smtp"
ports = {port}
bind = ["{bind}"]
persona = "smtp"

[forward]
heartbeat = "1s"
ack_timeout = "1s"
retry_max = "500ms"
poll = "50ms"
window = 128
[forward.bus]
url = "{nats}"
connect_timeout = "1s"
"#
    )
}

/// Every sensor listens on the same port number, each on its own address (a target).
async fn start_sensor(name: &str, bind: Ipv4Addr, port: u16, nats: &str, dir: &Path) -> Running {
    let toml = sensor_config(name, bind, port, nats);
    let v = honeyport::config::validate_str(&toml, "fleet.toml", dir)
        .unwrap_or_else(|e| panic!("sensor config invalid:\n{e}"));
    let cfg = v.build().expect("sensor config builds");
    honeyport::app::start(cfg, dir)
        .await
        .expect("sensor starts")
}

/// A collector process: the real binary, killed with SIGKILL or left to run.
struct Collector(Child);

impl Collector {
    fn start(conf: &Path, store: &str, log: &Path) -> Collector {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_honeyport"))
            .arg("collect")
            .arg("-c")
            .arg(conf)
            .env("HONEYPORT_STORE", store)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run honeyport collect");
        Collector(child)
    }
    fn sigkill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP proxy in front of nats-server for one sensor. `cut` drops everything the server
/// sends (its publish acks among it) while the sensor's publishes still reach it; `heal`
/// closes every proxied connection, as the end of a network outage would.
struct Link {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Link {
    async fn start(upstream: SocketAddr) -> Link {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let born = g.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = tokio::spawn(pump(cr, sw, None, g.clone(), born));
                let down = tokio::spawn(pump(sr, cw, Some(c.clone()), g.clone(), born));
                tokio::spawn(async move {
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Link {
            addr,
            cut,
            generation,
        }
    }
    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
    fn heal(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies `r` to `w` until either closes or the link's generation moves on; while `cut` is
/// set, what is read is dropped.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    cut: Option<Arc<AtomicBool>>,
    generation: Arc<AtomicU64>,
    born: u64,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if generation.load(Ordering::SeqCst) != born {
            return;
        }
        let n = match tokio::time::timeout(Duration::from_millis(50), r.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if cut.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Scanner-like load on one sensor address until `stop`: connections from 40 loopback
/// sources (shared by every sensor, so fleet-wide sources are fewer than the sum), each
/// reading the banner, saying EHLO and QUIT. Failures (a sensor restarting) are ignored:
/// what counts is what the sensors stored.
async fn load(target: Arc<std::sync::Mutex<SocketAddr>>, stop: Arc<AtomicBool>, seed: u32) {
    let mut i = seed;
    while !stop.load(Ordering::SeqCst) {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let src = Ipv4Addr::new(127, 10, (i >> 8) as u8 % 4, 1 + (i >> 16) as u8 % 10);
        let to = *target.lock().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let s = TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
            let mut c = s.connect(to).await?;
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf).await?;
            c.write_all(b"EHLO scan\r\n").await?;
            let _ = c.read(&mut buf).await?;
            c.write_all(b"QUIT\r\n").await?;
            while c.read(&mut buf).await? > 0 {}
            std::io::Result::Ok(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn local_events(dir: &Path) -> Vec<Event> {
    let r = open_reader(&Location::Sqlite(dir.to_path_buf())).unwrap();
    r.events(&EventFilter {
        oldest_first: true,
        ..Default::default()
    })
    .unwrap()
}

/// Records, sources and targets per day and port: fleet-wide and for each sensor.
fn counts(r: &dyn Reader, sensors: &[&str]) -> BTreeMap<String, Vec<PortCounts>> {
    let mut out = BTreeMap::new();
    let Some((first, last)) = r.day_range(Scope::Fleet).unwrap() else {
        return out;
    };
    for day in first..=last {
        out.insert(
            format!("fleet {day}"),
            r.ports_on_day(Scope::Fleet, day).unwrap(),
        );
        for s in sensors {
            out.insert(
                format!("{s} {day}"),
                r.ports_on_day(Scope::Sensor(s), day).unwrap(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_sensors_through_faults_lose_nothing_and_count_nothing_twice() {
    let mut nats = NatsServer::start(true);
    let pg = honeyport_testkit::pg::shared().fresh_database();
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("collect.toml");
    std::fs::write(
        &conf,
        format!(
            r#"consumer = "e2e"
batch = 500
batch_wait = "50ms"
ack_wait = "2s"
retry_max = "500ms"
log_every = "1s"
[bus]
url = "{}"
connect_timeout = "1s"
[stream]
duplicate_window = "2s"
"#,
            nats.url()
        ),
    )
    .unwrap();
    let clog = work.path().join("collect.log");
    let mut collector = Collector::start(&conf, &pg, &clog);

    let names = ["s1", "s2", "s3"];
    let binds = [
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let link = Link::start(SocketAddr::from(([127, 0, 0, 1], nats.port()))).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut sensors: Vec<Option<Running>> = Vec::new();
    for i in 0..3 {
        let url = if i == 2 { link.url() } else { nats.url() };
        sensors.push(Some(
            start_sensor(names[i], binds[i], port, &url, dirs[i].path()).await,
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<_> = sensors
        .iter()
        .map(|s| {
            Arc::new(std::sync::Mutex::new(
                s.as_ref().unwrap().addr("smtp", Transport::Tcp).unwrap(),
            ))
        })
        .collect();
    let loads: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| tokio::spawn(load(t.clone(), stop.clone(), i as u32 * 7 + 1)))
        .collect();
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));

    // The faults, one after another, all under load.
    pause(1500).await;
    collector.sigkill();
    pause(300).await;
    collector = Collector::start(&conf, &pg, &clog);
    let second = Collector::start(&conf, &pg, &clog);

    pause(1000).await;
    link.cut(); // s3's acks are lost from here; its publishes still arrive.
    pause(1000).await;
    nats.stop();
    pause(700).await;
    nats.restart();

    pause(800).await;
    // s2 restarts (a new run) on the same store and address.
    let s2 = sensors[1].take().unwrap();
    let r = s2.stop().await;
    assert_eq!(r.lost(), 0);
    let again = start_sensor("s2", binds[1], port, &nats.url(), dirs[1].path()).await;
    *targets[1].lock().unwrap() = again.addr("smtp", Transport::Tcp).unwrap();
    sensors[1] = Some(again);

    pause(1500).await; // the cut has now lasted longer than the 2 s duplicate window
    collector.sigkill();
    link.heal();
    pause(1000).await;
    collector = Collector::start(&conf, &pg, &clog);
    pause(1500).await;
    drop(second);

    stop.store(true, Ordering::SeqCst);
    for l in loads {
        l.await.unwrap();
    }

    // Every sensor's spool drains (its cursor reaches its head), then the sensors stop (a
    // graceful stop flushes whatever the last sessions wrote).
    for (i, s) in sensors.iter().enumerate() {
        let stats = s.as_ref().unwrap().forward.clone().expect("forwarder runs");
        let mut spool = open_spool(&Location::Sqlite(dirs[i].path().to_path_buf())).unwrap();
        wait_for(&format!("{} to forward its spool", names[i]), || {
            let b = spool.backlog(stats.cursor.load(Ordering::SeqCst)).unwrap();
            b.events == 0
        })
        .await;
    }
    for s in sensors.iter_mut() {
        let r = s.take().unwrap().stop().await;
        assert_eq!(r.lost(), 0);
    }

    // The store clients are blocking ones: off the runtime.
    tokio::task::spawn_blocking(move || {
        // The union of the local stores, written once into a fresh store.
        let union_dir = tempfile::tempdir().unwrap();
        let union_loc = Location::Sqlite(union_dir.path().to_path_buf());
        let mut local_total = 0usize;
        let mut per_sensor = BTreeMap::new();
        {
            let mut w = open_writer(&union_loc, WriterOptions::default()).unwrap();
            for (i, d) in dirs.iter().enumerate() {
                let evs = local_events(d.path());
                assert!(
                    evs.len() > 100,
                    "{} stored only {} events",
                    names[i],
                    evs.len()
                );
                local_total += evs.len();
                per_sensor.insert(names[i].to_string(), evs.len() as u64);
                for chunk in evs.chunks(1000) {
                    w.write(chunk).unwrap();
                }
            }
        }
        let union = open_reader(&union_loc).unwrap();

        // The central store converges on exactly that.
        let central_loc = Location::parse(&pg).unwrap();
        let started = Instant::now();
        let central_count = loop {
            let n = open_reader(&central_loc)
                .ok()
                .and_then(|r| r.events(&EventFilter::default()).ok())
                .map_or(0, |e| e.len());
            if n >= local_total || started.elapsed() > WAIT {
                break n;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        drop(collector);
        let central = open_reader(&central_loc).unwrap();
        assert_eq!(
            central_count,
            local_total,
            "central events vs the local stores' (collector log:\n{})",
            std::fs::read_to_string(&clog).unwrap_or_default()
        );
        let loaded: BTreeMap<String, u64> = central
            .sensors()
            .unwrap()
            .into_iter()
            .map(|h| (h.sensor, h.events))
            .collect();
        assert_eq!(loaded, per_sensor, "events loaded per sensor");
        assert_eq!(central.parked().unwrap(), 0, "nothing parked");
        let want = counts(union.as_ref(), &names);
        assert!(!want.is_empty());
        assert_eq!(counts(central.as_ref(), &names), want);
        // Fleet-wide sources are distinct across sensors: fewer than the per-sensor sum.
        let (_, day) = union.day_range(Scope::Fleet).unwrap().unwrap();
        let fleet = union.ports_on_day(Scope::Fleet, day).unwrap();
        let summed: i64 = names
            .iter()
            .map(|s| {
                union
                    .ports_on_day(Scope::Sensor(s), day)
                    .unwrap()
                    .iter()
                    .map(|p| p.sources)
                    .sum::<i64>()
            })
            .sum();
        assert!(fleet.iter().map(|p| p.sources).sum::<i64>() < summed);
        assert_eq!(fleet.iter().map(|p| p.targets).sum::<i64>(), 3);
    })
    .await
    .unwrap();
}
