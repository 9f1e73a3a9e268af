//! The smtp persona's dialogue (line assembly, pipelining, DATA with dot-unstuffing, AUTH
//! PLAIN/LOGIN/CRAM-MD5 continuations, STARTTLS, the limits) on arbitrary input cut into
//! arbitrary reads: never panics, every reply is bounded by the line cap, the kept message by
//! the message cap, and nothing is answered after a reply that closes.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use honeyport::persona::smtp::{Session, Smtp, SmtpRaw, Then};
use libfuzzer_sys::fuzz_target;

const PERSONAS: [&str; 3] = [
    "hostname = \"mx.example.test\"\nmax_line = 128\nmax_message = 256\nmax_errors = 50\nstarttls = { self_signed = true }",
    "profile = \"postfix\"\nmax_line = 64\nmax_message = 64\nmax_commands = 30\ndomains = [\"example.test\"]",
    "profile = \"pmg\"\nopen_relay = true\nmax_errors = 5",
];
/// Largest reply: the EHLO list plus an echoed argument (at most one line) and a limit reply.
const REPLY_SLACK: usize = 1024;

fn personas() -> &'static [(Smtp, usize, usize)] {
    static P: OnceLock<Vec<(Smtp, usize, usize)>> = OnceLock::new();
    P.get_or_init(|| {
        PERSONAS
            .iter()
            .map(|src| {
                let raw: SmtpRaw = toml::from_str(src).expect("fixed persona TOML parses");
                let line = raw
                    .max_line
                    .as_ref()
                    .map(|m| m.size().expect("size") as usize)
                    .unwrap_or(16384);
                let msg = raw
                    .max_message
                    .as_ref()
                    .map(|m| m.size().expect("size") as usize)
                    .unwrap_or(1 << 20);
                (raw.build(Path::new(".")).expect("fixed persona builds"), line, msg)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (persona, max_line, max_message) = &personas()[sel as usize % PERSONAS.len()];
    // The second byte picks the read sizes: a cycle of 1..=16 byte steps, or one read.
    let (cuts, body) = match rest.split_first() {
        Some((&c, body)) => (c, body),
        None => (0, rest),
    };
    let mut d = Session::new(persona, "192.0.2.1", sel & 0x80 != 0);
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
        let replies = d.on_input(chunk);
        assert!(!closed || replies.is_empty(), "replies after close");
        let mut tls = false;
        for r in &replies {
            assert!(!closed, "a reply after one that closes");
            assert!(
                r.text.len() <= max_line + REPLY_SLACK,
                "reply of {} bytes",
                r.text.len()
            );
            match r.then {
                Then::Close => closed = true,
                Then::StartTls => tls = true,
                Then::Continue => {}
            }
        }
        assert!(d.message().len() <= *max_message);
        if tls {
            d.tls_started();
        }
    }
    let _ = d.unfinished();
});
