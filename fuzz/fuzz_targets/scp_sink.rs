//! The legacy SCP sink (`scp -t`) on arbitrary input cut into two reads: never panics, a
//! split read finds what one read finds, replies are `\0` or one `\x01scp: ...\n` line,
//! paths stay under their caps, and no more content comes out than went in.
#![no_main]

use honeyport::persona::ssh::scp::{Sink, Step, MAX_DEPTH, MAX_NAME};
use libfuzzer_sys::fuzz_target;

/// Adjacent content chunks merged (how content is cut depends on the reads).
fn normal(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for s in steps {
        match (out.last_mut(), s) {
            (Some(Step::Data(a)), Step::Data(b)) => a.extend_from_slice(&b),
            (_, s) => out.push(s),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (cut, input) = match data.split_first() {
        Some((c, rest)) => (*c as usize % (rest.len() + 1), rest),
        None => return,
    };
    let target: &[u8] = if cut % 2 == 0 { b"/tmp" } else { b"/tmp/x" };
    let mut one = Sink::new(target, cut % 2 == 0);
    let mut whole = one.feed(input);
    whole.extend(one.finish());
    let mut two = Sink::new(target, cut % 2 == 0);
    let mut split = two.feed(&input[..cut]);
    split.extend(two.feed(&input[cut..]));
    split.extend(two.finish());
    let (whole, split) = (normal(whole), normal(split));
    assert_eq!(split, whole, "split reads read like one");
    let mut content = 0;
    let mut open = false;
    for s in &whole {
        match s {
            Step::Reply(r) => {
                assert!(r == b"\0" || (r[0] == 1 && r.ends_with(b"\n") && r.len() < 200));
            }
            Step::File { path, .. } | Step::Dir(path) => {
                assert!(path.len() <= target.len() + (MAX_DEPTH + 1) * (MAX_NAME + 1));
                if matches!(s, Step::File { .. }) {
                    assert!(!open, "a file starts while another is open");
                    open = true;
                }
            }
            Step::Data(d) => {
                assert!(open, "content outside a file");
                content += d.len();
            }
            Step::FileEnd { .. } => {
                assert!(open);
                open = false;
            }
        }
    }
    assert!(!open, "finish ends the file in progress");
    assert!(content <= input.len());
});
