//! The saved-SYN parser (`listener::syn::parse`) on arbitrary input and on its prefixes (up to
//! 512 bytes, what the sensor asks the kernel for): never panics; a parsed SYN is consistent
//! (initial TTL at or above the TTL, hops their difference, at most 40 option bytes' worth of
//! layout, the Mirai marker only on IPv4) and its signature has the eight `:`-separated fields;
//! and the answer is a function of the headers: once a prefix parses, every longer input
//! parses the same (bytes after the TCP header change nothing).
#![no_main]

use honeyport::listener::syn::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    if let Some(s) = &whole {
        assert!(s.ip_version == 4 || s.ip_version == 6);
        assert!(s.ittl >= s.ttl && s.hops == s.ittl - s.ttl, "{s:?}");
        assert!(s.options.len() <= 40 * 5, "{s:?}");
        assert!(!s.mirai || s.ip_version == 4, "{s:?}");
        assert_eq!(s.ip_id.is_some(), s.ip_version == 4);
        let sig = s.signature();
        assert_eq!(sig.split(':').count(), 8, "{sig}");
        assert!(!sig.contains(['\n', ' ']), "{sig}");
        assert!(sig.ends_with(":0") || sig.ends_with(":+"), "{sig}");
        let _ = s.event();
    }
    let mut parsed_at = None;
    for n in 0..data.len().min(512) {
        let p = parse(&data[..n]);
        if let Some(p) = p {
            parsed_at.get_or_insert(n);
            assert_eq!(Some(&p), whole.as_ref(), "prefix of {n} bytes");
        } else {
            assert!(
                parsed_at.is_none(),
                "{n} bytes do not parse, {parsed_at:?} did"
            );
        }
    }
});
