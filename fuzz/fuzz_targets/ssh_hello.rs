//! The SSH client-hello reader (identification line, then the clear-text KEXINIT) on arbitrary
//! input cut into two reads: never panics, finds at most one version and one KEXINIT, keeps
//! every name-list under its cap, and a split read gives what one read gives.
#![no_main]

use honeyport::persona::ssh::hello::{Found, Hello, MAX_NAMES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cut, input) = match data.split_first() {
        Some((c, rest)) => (*c as usize % (rest.len() + 1), rest),
        None => return,
    };
    let whole = Hello::new().feed(input);
    let mut h = Hello::new();
    let mut split = h.feed(&input[..cut]);
    split.extend(h.feed(&input[cut..]));
    assert_eq!(split, whole, "split reads read like one");
    let versions = whole.iter().filter(|f| matches!(f, Found::Version(_))).count();
    assert!(versions <= 1);
    for f in &whole {
        if let Found::KexInit(k) = f {
            for l in [&k.kex, &k.enc_c2s, &k.mac_c2s, &k.comp_c2s, &k.lang_s2c] {
                assert!(l.len() <= MAX_NAMES);
            }
            assert_eq!(k.hassh().len(), 32);
        }
    }
});
