//! The TLS ClientHello parser (`classify::tls::parse`) on arbitrary input, also read as a
//! prefix cut by the first byte: never panics, never asks for more than `MAX_HELLO` bytes, a
//! Hello's JA3 is 32 hex digits and its JA4 has the `a_b_c` shape, and the answer is a function
//! of the prefix: a prefix says NeedMore or what the whole input says.
#![no_main]

use honeyport::classify::tls::{parse, Parse, MAX_HELLO};
use libfuzzer_sys::fuzz_target;

fn hex12(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fuzz_target!(|data: &[u8]| {
    let (cut, input) = match data.split_first() {
        Some((c, rest)) => ((*c as usize * rest.len()) / 255, rest),
        None => return,
    };
    let whole = parse(input);
    match &whole {
        Parse::NeedMore => assert!(input.len() < MAX_HELLO),
        Parse::Hello(h) => {
            assert!(h.consumed <= input.len() && h.consumed <= MAX_HELLO);
            let ja3 = h.ja3();
            assert!(ja3.len() == 32 && ja3.bytes().all(|b| b.is_ascii_hexdigit()));
            let ja4 = h.ja4();
            let parts: Vec<&str> = ja4.split('_').collect();
            assert_eq!(parts.len(), 3, "{ja4}");
            assert!(parts[0].len() == 10 && parts[0].starts_with('t'), "{ja4}");
            assert!(hex12(parts[1]) && hex12(parts[2]), "{ja4}");
            assert!(h.ja4_raw().starts_with(parts[0]));
            let _ = h.ja3_string();
        }
        Parse::NotTls | Parse::Malformed(_) => {}
    }
    let prefix = parse(&input[..cut]);
    if prefix != Parse::NeedMore {
        assert_eq!(prefix, whole, "a prefix decided otherwise than the whole");
    }
});
