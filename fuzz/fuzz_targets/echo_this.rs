//! Echo-this extraction (every format), `unescape`, and reply templates on arbitrary bytes:
//! never panic, and a few size properties hold.
#![no_main]

use chrono::DateTime;
use honeyport::persona::template::{extract, unescape, EchoFormat, Extracted, Template};
use libfuzzer_sys::fuzz_target;

const FORMATS: [EchoFormat; 5] = [
    EchoFormat::Raw,
    EchoFormat::Hex,
    EchoFormat::Base64,
    EchoFormat::Escaped,
    EchoFormat::Dynamic,
];

fuzz_target!(|data: &[u8]| {
    for fmt in FORMATS {
        match extract(data, b"ECHOTHIS", fmt) {
            // Every decoding shrinks or keeps the bytes between the delimiters.
            Extracted::Value { value, persist } => {
                assert!(value.len() <= data.len());
                assert!(!persist || fmt == EchoFormat::Dynamic);
            }
            Extracted::None | Extracted::Invalid(_) => {}
        }
    }
    if let Ok(v) = unescape(data) {
        assert!(v.len() <= data.len(), "unescape grew the input");
    }

    // Templates: the input is both the template and the echo value; the first 8 bytes also
    // pick the clock (any second in years 0..=9999 that chrono represents).
    let t = Template::compile(data, Some(b"%ECHOTHIS%"));
    let secs = data
        .get(..8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
        .rem_euclid(253_402_300_800 + 62_167_219_200)
        - 62_167_219_200;
    let now = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let out = t.render(now, Some(data));
    let plain = t.render(now, None);
    if !data.contains(&b'%') {
        assert_eq!(
            plain, data,
            "a template without aliases must render as itself"
        );
        assert_eq!(out, data);
    }
    // Each alias name is >= 10 bytes; what replaces it is at most ~31 bytes (a date) or the
    // echo value; so output is bounded by a small multiple of the input.
    let aliases = data.windows(1).filter(|w| w[0] == b'%').count();
    assert!(plain.len() <= data.len() + aliases * 32);
    assert!(out.len() <= data.len() + aliases * (32 + data.len()));
});
