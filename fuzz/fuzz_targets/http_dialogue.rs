//! The http persona's dialogue (request line, headers, Content-Length and chunked bodies,
//! keep-alive, Basic and form logins, the limits) on arbitrary input cut into arbitrary reads:
//! never panics, the buffered head never outgrows its cap plus one read, and nothing is
//! answered after a reply that closes.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use honeyport::persona::http::{Http, HttpRaw, Session};
use libfuzzer_sys::fuzz_target;

const PERSONAS: [&str; 3] = [
    "max_line = 128\nmax_headers = 8\nmax_head = 512\nmax_body = 256\nmax_requests = 5",
    "profile = \"router\"\nmax_body = 64\n[credentials]\naccept = [\"admin:admin\"]\naccept_any_after = 2",
    "profile = \"nginx\"\n[[routes]]\nregex = \"\\\\.php\"\nbody = \"x %CONTENT_LENGTH%\"\nbasic_auth = \"r\"",
];

fn personas() -> &'static [Http] {
    static P: OnceLock<Vec<Http>> = OnceLock::new();
    P.get_or_init(|| {
        PERSONAS
            .iter()
            .map(|src| {
                let raw: HttpRaw = toml::from_str(src).expect("fixed persona TOML parses");
                raw.build(Path::new(".")).expect("fixed persona builds")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let persona = &personas()[sel as usize % PERSONAS.len()];
    // The second byte picks the read sizes: a cycle of 1..=16 byte steps, or one read.
    let (cuts, body) = match rest.split_first() {
        Some((&c, body)) => (c, body),
        None => (0, rest),
    };
    let mut d = Session::new(
        persona,
        "192.0.2.1".parse().expect("literal address"),
        "127.0.0.1:80".parse().expect("literal address"),
    );
    let mut pos = 0;
    let mut i: u32 = 0;
    let mut closed = false;
    while pos < body.len() {
        let step = if cuts == 0 {
            body.len()
        } else {
            1 + ((cuts as u32).rotate_left(i) as usize % 16)
        };
        let end = (pos + step).min(body.len());
        let chunk = &body[pos..end];
        pos = end;
        i += 1;
        let r = d.on_input(chunk);
        assert!(
            !closed || (r.text.is_empty() && r.events.is_empty()),
            "answered after close"
        );
        if r.close.is_some() {
            closed = true;
        }
        assert!(
            d.buffered() <= (64 << 10) + 16,
            "buffer of {} bytes",
            d.buffered()
        );
    }
    let _ = d.unfinished();
});
