//! The fake shell on arbitrary command lines: the input is split on `\n` and each piece is
//! one line typed at the prompt (the first byte picks the profile). Never panics, and every
//! cap holds after every line: output, filesystem bytes and entries, event sizes.
#![no_main]

use std::sync::{Arc, OnceLock};

use honeyport::shell::{
    Profile, Shell, ShellEvent, MAX_EXPANDED, MAX_FS_BYTES, MAX_FS_ENTRIES, MAX_LINE, MAX_OUTPUT,
};
use libfuzzer_sys::fuzz_target;

fn profiles() -> &'static [Arc<Profile>] {
    static P: OnceLock<Vec<Arc<Profile>>> = OnceLock::new();
    P.get_or_init(|| {
        Profile::BUILTIN
            .iter()
            .filter_map(|n| Profile::builtin(n))
            .map(Arc::new)
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let ps = profiles();
    let mut sh = Shell::new(ps[usize::from(pick) % ps.len()].clone(), b"root");
    assert!(!sh.prompt().is_empty());
    for line in rest.split(|&b| b == b'\n') {
        let o = sh.run_line(line);
        assert!(o.output.len() <= MAX_OUTPUT, "output {}", o.output.len());
        assert!(sh.fs_bytes() <= MAX_FS_BYTES, "fs bytes {}", sh.fs_bytes());
        assert!(sh.fs_entries_added() <= MAX_FS_ENTRIES);
        let cut = &line[..line.len().min(MAX_LINE)];
        for e in &o.events {
            match e {
                ShellEvent::Command { input, .. } => {
                    assert!(!input.is_empty() && input.len() <= cut.len());
                    // The text is exactly as typed: a piece of the line.
                    if cut.len() <= 512 {
                        assert!(
                            cut.windows(input.len()).any(|w| w == input.as_slice()),
                            "command text not in the line"
                        );
                    }
                }
                ShellEvent::Download { url, outfile, .. } => {
                    // Built from one command's expanded words plus a scheme and separators.
                    assert!(url.len() <= MAX_EXPANDED + 16);
                    assert!(outfile
                        .as_ref()
                        .is_none_or(|f| f.len() <= MAX_EXPANDED + 16));
                }
                ShellEvent::FileWrite { len, sha256, .. } => {
                    assert!(*len as usize <= MAX_FS_BYTES);
                    assert_eq!(sha256.len(), 64);
                }
            }
        }
        if o.exit {
            break;
        }
        sh.prompt();
    }
});
