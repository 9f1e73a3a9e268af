//! `honeyport import` on arbitrary log files: the first byte picks the format (cowrie JSON,
//! iptables, tcp-honeypot), the rest is the file. The import must succeed (malformed lines are
//! counted and reported, never an error or a panic), and the line parsers are also run on
//! every line on their own. One store is reused across runs, so re-imports and id collisions
//! with earlier inputs are exercised too.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::FixedOffset;
use honeyport::import::{self, iptables, simple_listener, Format, Limits, Options};
use libfuzzer_sys::fuzz_target;

fn work_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("honeyport-fuzz-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let format = match pick % 3 {
        0 => Format::Cowrie,
        1 => Format::Iptables,
        _ => Format::SimpleListener,
    };
    let utc = FixedOffset::east_opt(0).expect("UTC");
    // The line parsers alone.
    let clock = iptables::Clock {
        year: None,
        offset: utc,
        now_year: 2026,
        now_month: 11,
    };
    for line in String::from_utf8_lossy(body).lines() {
        let _ = iptables::parse(line, &clock);
        if let Some(Ok((_, rest))) = simple_listener::timestamp(line, utc) {
            if let Some(id) = rest.split_whitespace().next() {
                let _ = simple_listener::connection_id(id);
            }
        }
        let _ = import::python_repr(line);
        let _ = import::parse_iso(line);
    }
    // The whole import, through the store.
    let dir = work_dir();
    let file = dir.join("input.log");
    std::fs::write(&file, body).expect("write input");
    let opts = Options {
        format,
        sensor: None,
        year: Some(2026),
        utc_offset: utc,
        limits: Limits {
            max_sessions: 64,
            max_events_per_session: 64,
        },
        progress: false,
    };
    let store = honeyport::store::Location::Sqlite(dir.join("store"));
    if let Err(e) = import::import(&store, &[file], &opts) {
        panic!("import failed instead of reporting bad lines: {e:#}");
    }
});
