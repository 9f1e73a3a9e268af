//! The sink side of the legacy SCP protocol (what `scp -t TARGET` runs on the server when a
//! client sends files with `scp -O`), as a pure state machine: bytes in, replies and findings
//! out, no I/O.
//!
//! The source sends control lines and the sink answers each with one `\0` byte (or
//! `\x01scp: MESSAGE\n` for a line it refuses):
//!
//! - `T<mtime> 0 <atime> 0` (with `-p`): times for the next file or directory;
//! - `C<mode> <size> <name>`: a file; then exactly `size` bytes, then the source's `\0`,
//!   answered with a last `\0`;
//! - `D<mode> 0 <name>`: enter a directory (with `-r`); `E`: leave it;
//! - `\x01...` / `\x02...`: the source's own warnings and errors (not answered).
//!
//! Limits, because the peer is hostile: a control line is at most [`MAX_LINE`] bytes (a
//! longer one is refused and skipped to its end), a name at most [`MAX_NAME`] bytes without
//! `/` and never `.` or `..` (OpenSSH's "unexpected filename"), at most [`MAX_DEPTH`] nested
//! directories. File content is passed through in the caller's chunks, never buffered here.

/// Longest control line, newline excluded (OpenSSH's sink reads into 2048 bytes).
pub const MAX_LINE: usize = 2048;
/// Longest file or directory name (NAME_MAX).
pub const MAX_NAME: usize = 255;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// What the sink found or must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes to send to the client.
    Reply(Vec<u8>),
    /// A file begins: where it goes (the target joined with the directories and the name),
    /// its mode and the size the client announced.
    File { path: Vec<u8>, mode: u32, size: u64 },
    /// Content of the current file, in order.
    Data(Vec<u8>),
    /// The current file ended; `complete` when all announced bytes came.
    FileEnd { complete: bool },
    /// A directory was entered (its full path).
    Dir(Vec<u8>),
}

/// The parsed `scp -t` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub target: Vec<u8>,
    pub recursive: bool,
    /// `-d`: the target must be a directory.
    pub dir: bool,
}

/// Recognises `scp [-r] [-p] [-d] [-v] [-q] -t [--] TARGET` (flags in any order, combined or
/// not). `None` for anything else, which then goes to the fake shell.
pub fn parse_command(line: &[u8]) -> Option<Command> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let prog = words.next()?;
    if prog != b"scp" && prog != b"/usr/bin/scp" {
        return None;
    }
    let (mut sink, mut recursive, mut dir) = (false, false, false);
    let mut target: Option<Vec<u8>> = None;
    let mut opts = true;
    for w in words {
        if opts && w == b"--" {
            opts = false;
        } else if opts && w.len() > 1 && w[0] == b'-' {
            for &f in &w[1..] {
                match f {
                    b't' => sink = true,
                    b'r' => recursive = true,
                    b'd' => dir = true,
                    b'p' | b'v' | b'q' => {}
                    _ => return None,
                }
            }
        } else if target.is_none() {
            target = Some(w.to_vec());
        } else {
            return None;
        }
    }
    match (sink, target) {
        (true, Some(target)) if target.len() <= 4096 => Some(Command {
            target,
            recursive,
            dir,
        }),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading a control line.
    Line,
    /// Skipping the rest of an over-long line.
    Skip,
    /// Inside a file's content: bytes still to come.
    Content(u64),
    /// After the content: the source's status byte.
    Ack,
    /// The source reported an error after the content: its message line.
    AckMessage,
}

/// The sink of one `scp -t` channel.
#[derive(Clone, Debug)]
pub struct Sink {
    target: Vec<u8>,
    target_is_dir: bool,
    /// Directories entered below the target (full paths; the last is current).
    dirs: Vec<Vec<u8>>,
    line: Vec<u8>,
    state: State,
}

impl Sink {
    /// `target_is_dir`: files land inside the target (it is a directory, or `-d`/`-r` with
    /// an existing directory); otherwise the first file or directory is the target itself.
    pub fn new(target: &[u8], target_is_dir: bool) -> Sink {
        Sink {
            target: target.to_vec(),
            target_is_dir,
            dirs: Vec::new(),
            line: Vec::new(),
            state: State::Line,
        }
    }

    /// What the sink sends first: "ready".
    pub fn hello() -> Step {
        Step::Reply(vec![0])
    }

    /// True while a file's content or its closing status is awaited.
    pub fn in_file(&self) -> bool {
        matches!(
            self.state,
            State::Content(_) | State::Ack | State::AckMessage
        )
    }

    /// Consumes client bytes.
    pub fn feed(&mut self, mut input: &[u8]) -> Vec<Step> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.state {
                State::Content(left) => {
                    let n = (input.len() as u64).min(left) as usize;
                    push_data(&mut out, &input[..n]);
                    input = &input[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Ack
                    } else {
                        State::Content(left)
                    };
                }
                State::Ack => {
                    let b = input[0];
                    match b {
                        0 => {
                            input = &input[1..];
                            self.state = State::Line;
                            out.push(Step::FileEnd { complete: true });
                            out.push(Step::Reply(vec![0]));
                        }
                        1 | 2 => {
                            input = &input[1..];
                            self.state = State::AckMessage;
                        }
                        _ => {
                            // No status byte: the file ends; the byte starts the next line.
                            self.state = State::Line;
                            out.push(Step::FileEnd { complete: true });
                        }
                    }
                }
                State::AckMessage | State::Skip => match input.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        input = &input[i + 1..];
                        if self.state == State::AckMessage {
                            out.push(Step::FileEnd { complete: true });
                            out.push(Step::Reply(vec![0]));
                        }
                        self.state = State::Line;
                    }
                    None => input = &[],
                },
                State::Line => match input.iter().position(|&b| b == b'\n') {
                    Some(i) if self.line.len() + i <= MAX_LINE => {
                        self.line.extend_from_slice(&input[..i]);
                        input = &input[i + 1..];
                        let line = std::mem::take(&mut self.line);
                        self.control(&line, &mut out);
                    }
                    Some(_) | None if self.line.len() + input.len() > MAX_LINE => {
                        self.line.clear();
                        out.push(error("protocol error: line too long"));
                        self.state = State::Skip;
                    }
                    _ => {
                        self.line.extend_from_slice(input);
                        input = &[];
                    }
                },
            }
        }
        out
    }

    /// The channel ended: a file in progress ends, incomplete.
    pub fn finish(&mut self) -> Vec<Step> {
        let mut out = Vec::new();
        match self.state {
            State::Content(_) => out.push(Step::FileEnd { complete: false }),
            State::Ack | State::AckMessage => out.push(Step::FileEnd { complete: true }),
            _ => {}
        }
        self.state = State::Line;
        self.line.clear();
        out
    }

    fn control(&mut self, line: &[u8], out: &mut Vec<Step>) {
        let Some((&kind, rest)) = line.split_first() else {
            out.push(error("protocol error: empty line"));
            return;
        };
        match kind {
            // The source's own warnings and errors: OpenSSH's sink does not answer them.
            1 | 2 => {}
            b'E' => {
                if rest.is_empty() && self.dirs.pop().is_some() {
                    out.push(Step::Reply(vec![0]));
                } else {
                    out.push(error("protocol error: unexpected <newline>"));
                }
            }
            b'T' => {
                if times(rest) {
                    out.push(Step::Reply(vec![0]));
                } else {
                    out.push(error("protocol error: bad time"));
                }
            }
            b'C' | b'D' => match record(rest) {
                Err(why) => out.push(error(why)),
                Ok((mode, size, name)) => {
                    if kind == b'D' && self.dirs.len() >= MAX_DEPTH {
                        out.push(error("error: directories nested too deep"));
                        return;
                    }
                    let path = self.path_of(name);
                    if kind == b'D' {
                        self.dirs.push(path.clone());
                        out.push(Step::Dir(path));
                        out.push(Step::Reply(vec![0]));
                    } else {
                        out.push(Step::File { path, mode, size });
                        out.push(Step::Reply(vec![0]));
                        self.state = if size == 0 {
                            State::Ack
                        } else {
                            State::Content(size)
                        };
                    }
                }
            },
            _ => out.push(error(&format!(
                "protocol error: expected control record (0x{kind:02x})"
            ))),
        }
    }

    fn path_of(&self, name: &[u8]) -> Vec<u8> {
        let base = match self.dirs.last() {
            Some(d) => d,
            None if self.target_is_dir => &self.target,
            None => return self.target.clone(),
        };
        let mut p = base.clone();
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        p
    }
}

/// Appends content, merging with a previous chunk of the same feed.
fn push_data(out: &mut Vec<Step>, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    if let Some(Step::Data(d)) = out.last_mut() {
        d.extend_from_slice(b);
    } else {
        out.push(Step::Data(b.to_vec()));
    }
}

fn error(why: &str) -> Step {
    Step::Reply(format!("\x01scp: {why}\n").into_bytes())
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `<mtime> <usec> <atime> <usec>`.
fn times(rest: &[u8]) -> bool {
    let parts: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    parts.len() == 4
        && parts.iter().all(|p| digits(p).is_some())
        && digits(parts[1]).is_some_and(|u| u < 1_000_000)
        && digits(parts[3]).is_some_and(|u| u < 1_000_000)
}

/// `<mode> <size> <name>` of a C or D record.
fn record(rest: &[u8]) -> Result<(u32, u64, &[u8]), &'static str> {
    let sp = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or("protocol error: mode not delimited")?;
    let (mode, rest) = (&rest[..sp], &rest[sp + 1..]);
    if mode.is_empty() || mode.len() > 6 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err("protocol error: bad mode");
    }
    let mode = mode.iter().fold(0u32, |m, b| m * 8 + u32::from(b - b'0'));
    let sp = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or("protocol error: size not delimited")?;
    let size = digits(&rest[..sp]).ok_or("protocol error: size not delimited")?;
    let name = &rest[sp + 1..];
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.contains(&b'/')
        || name == b"."
        || name == b".."
        || name.contains(&0)
    {
        return Err("error: unexpected filename");
    }
    Ok((mode, size, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(steps: &[Step]) -> Vec<(Vec<u8>, Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut cur: Option<(Vec<u8>, Vec<u8>)> = None;
        for s in steps {
            match s {
                Step::File { path, .. } => cur = Some((path.clone(), Vec::new())),
                Step::Data(d) => cur.as_mut().unwrap().1.extend_from_slice(d),
                Step::FileEnd { complete } => {
                    let (p, d) = cur.take().unwrap();
                    out.push((p, d, *complete));
                }
                _ => {}
            }
        }
        out
    }

    fn replies(steps: &[Step]) -> Vec<u8> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Reply(r) => Some(r.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"scp -t /tmp/x"),
            Some(Command {
                target: b"/tmp/x".to_vec(),
                recursive: false,
                dir: false
            })
        );
        let c = parse_command(b"scp -v -r -p -d -t -- .").unwrap();
        assert!(c.recursive && c.dir);
        assert_eq!(c.target, b".");
        assert!(parse_command(b"scp -rt /tmp").unwrap().recursive);
        assert_eq!(parse_command(b"scp -f /etc/passwd"), None);
        assert_eq!(parse_command(b"scp -t"), None);
        assert_eq!(parse_command(b"scp -t a b"), None);
        assert_eq!(parse_command(b"cat -t x"), None);
        assert_eq!(parse_command(b"scp -x -t x"), None);
    }

    #[test]
    fn one_file_into_a_file_name() {
        let mut s = Sink::new(b"/tmp/x.bin", false);
        let steps = s.feed(b"C0644 5 a.txt\nhello\0");
        assert_eq!(
            files(&steps),
            [(b"/tmp/x.bin".to_vec(), b"hello".to_vec(), true)]
        );
        assert_eq!(replies(&steps), [0, 0]);
        assert!(matches!(
            steps[0],
            Step::File {
                mode: 0o644,
                size: 5,
                ..
            }
        ));
    }

    #[test]
    fn byte_by_byte_is_the_same_and_times_are_answered() {
        let input = b"T1700000000 0 1700000001 0\nC0755 3 run.sh\nabc\0C0600 0 empty\n\0";
        let mut whole = Sink::new(b"/tmp", true);
        let w = whole.feed(input);
        let mut one = Sink::new(b"/tmp", true);
        let mut o = Vec::new();
        for b in input {
            o.extend(one.feed(&[*b]));
        }
        assert_eq!(files(&w), files(&o));
        assert_eq!(replies(&w), replies(&o));
        assert_eq!(replies(&w), [0, 0, 0, 0, 0]);
        assert_eq!(
            files(&w),
            [
                (b"/tmp/run.sh".to_vec(), b"abc".to_vec(), true),
                (b"/tmp/empty".to_vec(), Vec::new(), true)
            ]
        );
    }

    #[test]
    fn directories_nest_and_join() {
        let mut s = Sink::new(b"/root/", true);
        let steps = s.feed(b"D0755 0 d\nC0644 1 a\nA\0D0700 0 e\nC0644 1 b\nB\0E\nE\n");
        assert_eq!(
            files(&steps),
            [
                (b"/root/d/a".to_vec(), b"A".to_vec(), true),
                (b"/root/d/e/b".to_vec(), b"B".to_vec(), true)
            ]
        );
        assert_eq!(replies(&steps), [0; 8]);
        assert!(steps.contains(&Step::Dir(b"/root/d/e".to_vec())));
        // A new directory as the target itself (scp -r dir host:/tmp/new).
        let mut s = Sink::new(b"/tmp/new", false);
        let steps = s.feed(b"D0755 0 dir\nC0644 1 a\nA\0E\n");
        assert_eq!(files(&steps)[0].0, b"/tmp/new/a");
    }

    #[test]
    fn malformed_lines_are_refused_and_the_sink_goes_on() {
        let mut s = Sink::new(b"/tmp", true);
        let steps = s.feed(b"X\nC0644 x a\nC0644 1 ../a\nC0644 1 a/b\nD0755 0 ..\nE\n\nT1 2\n");
        let r = replies(&steps);
        assert_eq!(r.iter().filter(|&&b| b == 1).count(), 8, "{:?}", text(&r));
        assert!(files(&steps).is_empty());
        let steps = s.feed(b"C0644 2 ok\nok\0");
        assert_eq!(files(&steps).len(), 1);
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn long_lines_are_skipped_and_depth_is_capped() {
        let mut s = Sink::new(b"/tmp", true);
        let mut long = vec![b'C'; MAX_LINE + 10];
        long.push(b'\n');
        let steps = s.feed(&long);
        assert_eq!(replies(&steps)[0], 1);
        let steps = s.feed(b"C0644 1 a\nZ\0");
        assert_eq!(files(&steps).len(), 1);
        let name = vec![b'n'; MAX_NAME + 1];
        let mut l = b"C0644 1 ".to_vec();
        l.extend_from_slice(&name);
        l.push(b'\n');
        assert_eq!(replies(&s.feed(&l))[0], 1);
        let mut steps = Vec::new();
        for _ in 0..MAX_DEPTH + 3 {
            steps.extend(s.feed(b"D0755 0 d\n"));
        }
        assert_eq!(replies(&steps).iter().filter(|&&b| b == 1).count(), 3);
    }

    fn merged(steps: Vec<Step>) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::new();
        for s in steps {
            match (out.last_mut(), s) {
                (Some(Step::Data(a)), Step::Data(b)) => a.extend_from_slice(&b),
                (_, s) => out.push(s),
            }
        }
        out
    }

    #[test]
    fn every_cut_reads_like_one() {
        let mut input = b"T1 0 2 0\nD0755 0 d\nC0644 3 a\nabc\x01oops\nE\nX\n".to_vec();
        input.extend(vec![b'C'; MAX_LINE]);
        input.extend_from_slice(b"\nC0644 2 b\nxy\nC0644 5 c\nab");
        let run = |parts: &[&[u8]]| {
            let mut s = Sink::new(b"/tmp", true);
            let mut out = Vec::new();
            for p in parts {
                out.extend(s.feed(p));
            }
            out.extend(s.finish());
            merged(out)
        };
        let whole = run(&[&input]);
        assert_eq!(files(&whole).len(), 3);
        for cut in 0..=input.len() {
            assert_eq!(run(&[&input[..cut], &input[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn source_errors_and_an_unfinished_file() {
        let mut s = Sink::new(b"/tmp", true);
        let steps = s.feed(b"\x01scp: a: Permission denied\nC0644 4 a\nab");
        assert_eq!(replies(&steps), [0]);
        assert!(s.in_file());
        let steps = s.finish();
        assert_eq!(steps, [Step::FileEnd { complete: false }]);
        // A read error reported by the source after the content still ends the file.
        let steps = s.feed(b"C0644 1 b\nx\x01scp: read error\n");
        assert_eq!(files(&steps).len(), 1);
        assert_eq!(replies(&steps), [0, 0]);
    }
}
