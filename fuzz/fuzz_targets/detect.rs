//! Protocol detection (`classify::detect`) on arbitrary input and its prefixes (up to
//! 2 * MAX_NEED bytes): never panics; NeedMore only below MAX_NEED bytes; Known never names an
//! Unknown* protocol and Unknown only names one; every matcher of the table decides (Yes or
//! No) on MAX_NEED bytes; and once a prefix is Known(p), the whole input is Known(p) too
//! (detection is stable once known). The input is raw bytes: no byte is special.
#![no_main]

use honeyport::classify::detect::{detect, Match, Verdict, MAX_NEED, TABLE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = detect(data);
    let prefixes = (0..data.len().min(2 * MAX_NEED)).map(|n| &data[..n]);
    for bytes in prefixes.chain([data]) {
        let v = detect(bytes);
        match v {
            Verdict::NeedMore => assert!(bytes.len() < MAX_NEED, "NeedMore on {bytes:?}"),
            Verdict::Known(p) => {
                assert!(!p.is_unknown());
                assert_eq!(whole, v, "{bytes:?} is {p:?}, so {data:?} must be");
            }
            Verdict::Unknown(p) => assert!(p.is_unknown()),
        }
        if bytes.len() >= MAX_NEED {
            for pat in TABLE {
                let m = (pat.matcher)(bytes);
                assert_ne!(m, Match::More, "{:?} undecided on {bytes:?}", pat.proto);
            }
        }
    }
});
