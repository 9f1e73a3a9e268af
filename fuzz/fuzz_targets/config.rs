//! Config parsing and validation on arbitrary text: errors are fine, panics are not. Also the
//! small parsers it uses (ports, durations, sizes) on the raw text.
#![no_main]

use std::path::Path;

use honeyport::config::ports::{expand, PortsRaw};
use honeyport::config::units::{parse_duration, parse_size};
use honeyport::config::validate_str;
use libfuzzer_sys::fuzz_target;

/// Validation opens (and for TLS, reads) files the config names. Paths into device and
/// pseudo file systems could block (a FIFO, /dev/stdin) or never end (/dev/zero): that is
/// the operator's choice, not a parser bug, so such inputs are skipped. The base dir does not
/// exist, so relative paths never reach a file.
fn touches_special_files(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "dev/",
        "proc/",
        "sys/",
        "run/",
        "fd/",
        "\\u002f",
        "\\u0000002f",
    ]
    .iter()
    .any(|s| t.contains(s))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let _ = parse_duration(text);
    let _ = parse_size(text);
    if let Ok(ports) = expand(&PortsRaw::Spec(text.to_string())) {
        assert!(!ports.is_empty());
        assert!(ports.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    }

    if touches_special_files(text) {
        return;
    }
    match validate_str(text, "fuzz.toml", Path::new("/nonexistent-fuzz-base")) {
        Ok(v) => {
            let _ = v.socket_count();
            let _ = v.limits();
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "an error result lists its errors");
            let _ = e.to_string();
        }
    }
});
