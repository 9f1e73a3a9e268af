//! The telnet option parser and the telnet login dialogue on arbitrary input cut into
//! arbitrary reads: never panics, output stays bounded (data never grows past the input,
//! subnegotiations stay under their cap), and a split read decodes like one read.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;

use honeyport::persona::telnet::{
    describe, Cmd, Dialogue, OptionParser, Step, Telnet, TelnetRaw, MAX_COMMANDS,
    MAX_SUBNEGOTIATION,
};
use libfuzzer_sys::fuzz_target;

/// Two personas: BusyBox negotiation (everything at once) and Linux negotiation (the rest
/// after the client's first answer), both with a shell behind the login.
fn persona(linux: bool) -> &'static Telnet {
    static T: OnceLock<[Telnet; 2]> = OnceLock::new();
    let build = |extra: &str| {
        let raw: TelnetRaw = toml::from_str(&format!(
            "max_attempts = 5\n{extra}\n\
             [credentials]\naccept = [\"root:xc3511\"]\naccept_any_after = 2"
        ))
        .expect("fuzz persona parses");
        raw.build(Path::new(".")).expect("fuzz persona builds")
    };
    &T.get_or_init(|| {
        [
            build(""),
            build("style = \"debian\"\nshell = \"debian_server\""),
        ]
    })[linux as usize]
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the persona (high bit) and where the input is cut into two reads.
    let (linux, cut, input) = match data.split_first() {
        Some((c, rest)) => (c & 0x80 != 0, (c & 0x7f) as usize % (rest.len() + 1), rest),
        None => return,
    };

    let whole = OptionParser::new().feed(input);
    assert!(whole.data.len() <= input.len());
    assert!(whole.cmds.len() <= MAX_COMMANDS as usize);
    for c in &whole.cmds {
        if let Cmd::Sb(_, p) = c {
            assert!(p.len() <= MAX_SUBNEGOTIATION);
        }
        assert!(!describe(c).is_empty());
    }
    let mut p = OptionParser::new();
    let mut a = p.feed(&input[..cut]);
    if a.limit.is_none() {
        let b = p.feed(&input[cut..]);
        a.data.extend(b.data);
        a.cmds.extend(b.cmds);
        a.limit = b.limit;
    }
    assert_eq!(a, whole, "split reads decode like one read");

    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (input.len() % 4) as u8));
    let mut d = Dialogue::new(persona(linux), src, 256);
    let mut done = false;
    let mut sent = 0usize;
    for part in [&input[..cut], &input[cut..]] {
        for step in d.on_input(part) {
            assert!(!done, "nothing after Close or Limit");
            match step {
                // Bounded by the input: at most a prompt or a command's output per byte.
                Step::Send(b) => {
                    sent += b.len();
                    assert!(sent <= (input.len() + 1) * (64 << 10));
                }
                Step::Close | Step::Limit(_) => done = true,
                Step::Emit(_) | Step::Pause(_) => {}
            }
        }
    }
});
