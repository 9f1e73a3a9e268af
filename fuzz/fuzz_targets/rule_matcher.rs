//! The scripted persona's dialogue (min_length, split, echo, echo_this, prefix/regex/else
//! rules, templates) on arbitrary input cut into arbitrary reads: never panics, and every
//! reply stays bounded by the input and the largest configured reply.
#![no_main]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use honeyport::persona::scripted::{Dialogue, Scripted, ScriptedRaw, Step};
use libfuzzer_sys::fuzz_target;

/// Persona A: line based, like an SMTP/HTTP front: split on CRLF, min_length, upper-case
/// echo, dynamic echo-this (whose `P` persists a value across sessions).
const PERSONA_A: &str = r#"
loop = 0
reply = "> %ECHOTHIS%\r\n"
echo = "upper"
split = "\r\n"
min_length = 3
echo_this = { delimiter = "ECHOTHIS", format = "dynamic" }

[[rules]]
name = "helo"
prefix = "HELO"
reply = "250 hello %ECHOTHIS%\r\n"

[[rules]]
name = "ehlo"
regex = "(?i)^ehlo\\s+([a-z0-9.-]+)"
reply = { lines = ["250-mail.example.com", "250-SIZE 35882577", "250 HELP"] }

[[rules]]
name = "http"
prefix = "GET "
reply = "HTTP/1.1 200 OK\r\nDate: %TIME_GMT_RFC2822%\r\nContent-Length: %CONTENT_LENGTH%\r\nX-T: %TIME_GMT_EPOCH%\r\n\r\n<html>%ECHOTHIS% %ECHOTHIS%</html>"

[[rules]]
name = "tie-a"
regex = "a+b"
reply = "tie a"

[[rules]]
name = "tie-b"
regex = "b+c"
reply = "tie b"

[[rules]]
name = "quit"
regex = "^(?i)quit"
reply = "221 bye\r\n"
action = "reply_disconnect"

[[rules]]
name = "kill"
prefix = { hex = "ff f4" }
action = "disconnect"

[[rules]]
name = "fallback"
else = true
reply = "500 what?\r\n"
"#;

/// Persona B: binary, one read at a time: raw echo, escaped echo-this with a custom variable,
/// single-byte split, byte regexes.
const PERSONA_B: &str = r#"
loop = 0
echo = "raw"
split = { hex = "00" }
echo_this = { delimiter = "::", variable = "%V%", format = "escaped" }

[[rules]]
name = "telnet"
regex = "\\xff[\\xfb-\\xfe]."
reply = { hex = "ff fd 18 ff fd 20" }

[[rules]]
name = "val"
regex = "::.*::"
reply = { base64 = "dmFsdWU6ICVWJSVWJQo=" }

[[rules]]
name = "dot"
regex = "^.{4,}x$"
reply = "%V%%CONTENT_LENGTH%\r\n\r\n%V%"

[[rules]]
name = "other"
else = true
reply = "?"
"#;

/// Persona C: no split, no min_length, hex echo-this, lower echo, several else rules.
const PERSONA_C: &str = r#"
loop = 0
echo = "lower"
reply = "%ECHOTHIS%"
echo_this = { delimiter = "|", format = "hex" }

[[rules]]
prefix = "|"
reply = "pipe %ECHOTHIS%"

[[rules]]
else = true
reply = "e1"

[[rules]]
else = true
action = "disconnect"
"#;

const PERSONAS: [&str; 3] = [PERSONA_A, PERSONA_B, PERSONA_C];
/// Most echo-this variables in any one reply above.
const MAX_ECHO_VARS: usize = 2;
/// Slack for what aliases expand to (a date is 31 bytes, a length or epoch at most 20).
const ALIAS_SLACK: usize = 256;

fn personas() -> &'static [Scripted] {
    static P: OnceLock<Vec<Scripted>> = OnceLock::new();
    P.get_or_init(|| {
        PERSONAS
            .iter()
            .map(|src| {
                let raw: ScriptedRaw = toml::from_str(src).expect("fixed persona TOML parses");
                raw.build(Path::new(".")).expect("fixed persona builds")
            })
            .collect()
    })
}

/// The longest input seen so far: a value persisted by dynamic echo-this (`P`) in an earlier
/// run is served to later sessions, so replies are bounded by it too.
static LONGEST_INPUT: AtomicUsize = AtomicUsize::new(0);

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let longest = LONGEST_INPUT
        .fetch_max(data.len(), Ordering::Relaxed)
        .max(data.len());
    let largest_reply = PERSONAS.iter().map(|p| p.len()).max().unwrap_or(0);
    let bound = largest_reply + MAX_ECHO_VARS * longest + ALIAS_SLACK;

    let persona = &personas()[sel as usize % PERSONAS.len()];
    // The second byte picks the read sizes: a cycle of 1..=16 byte steps, or one read.
    let (cuts, body) = match rest.split_first() {
        Some((&c, body)) => (c, body),
        None => (0, rest),
    };
    let mut d = Dialogue::new(persona);
    if let Some(b) = d.banner() {
        assert!(b.len() <= bound);
    }
    let mut pos = 0;
    let mut i: u32 = 0;
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
        let steps = d.on_input(chunk);
        let mut disconnected = false;
        for s in &steps {
            assert!(!disconnected, "nothing may follow Disconnect: {steps:?}");
            match s {
                Step::Send(b) => assert!(
                    b.len() <= bound,
                    "reply of {} bytes exceeds bound {bound}",
                    b.len()
                ),
                Step::Matched { len, .. } => assert!(*len <= body.len()),
                Step::EchoThisInvalid(_) => {}
                Step::Disconnect => disconnected = true,
            }
        }
        if disconnected {
            break;
        }
    }
});
