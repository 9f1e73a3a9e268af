//! The ftp persona's dialogue (line assembly, login, the fake tree's path resolution, the
//! passive/transfer replies, the limits) on arbitrary input cut into arbitrary reads: never
//! panics, every reply is bounded by the line cap, and nothing is answered after a reply that
//! closes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

use honeyport::persona::ftp::{Ftp, FtpRaw, Session, Then};
use libfuzzer_sys::fuzz_target;

const PERSONAS: [&str; 2] = [
    "max_line = 128\nmax_commands = 50\n[credentials]\naccept = [\"admin:admin\"]\naccept_any_after = 2",
    "profile = \"proftpd\"\nmax_line = 64\nanonymous = false",
];
/// Largest reply: ProFTPD's HELP/FEAT text plus an echoed argument (at most one line).
const REPLY_SLACK: usize = 1024;
const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn personas() -> &'static [(Ftp, usize)] {
    static P: OnceLock<Vec<(Ftp, usize)>> = OnceLock::new();
    P.get_or_init(|| {
        PERSONAS
            .iter()
            .map(|src| {
                let raw: FtpRaw = toml::from_str(src).expect("fixed persona TOML parses");
                let line = raw
                    .max_line
                    .as_ref()
                    .map(|m| m.size().expect("size") as usize)
                    .unwrap_or(4096);
                (
                    raw.build(Path::new(".")).expect("fixed persona builds"),
                    line,
                )
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (persona, max_line) = &personas()[sel as usize % PERSONAS.len()];
    // The second byte picks the read sizes: a cycle of 1..=16 byte steps, or one read.
    let (cuts, body) = match rest.split_first() {
        Some((&c, body)) => (c, body),
        None => (0, rest),
    };
    let mut d = Session::new(persona, SRC, LOCAL);
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
        for r in &replies {
            assert!(!closed, "a reply after one that closes");
            assert!(
                r.text.len() <= max_line + REPLY_SLACK,
                "reply of {} bytes",
                r.text.len()
            );
            match &r.then {
                Then::Close => closed = true,
                Then::Passive { extended } => {
                    let _ = d.passive_reply("192.0.2.1:50000".parse().unwrap(), *extended);
                }
                // The serve loop answers after every transfer; alternate the outcomes.
                Then::Transfer(_) => {
                    let ok = if i % 2 == 0 {
                        Ok(())
                    } else {
                        Err("no connection")
                    };
                    let _ = d.transfer_done(ok);
                }
                Then::Continue => {}
            }
        }
    }
});
