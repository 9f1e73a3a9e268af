//! Splits a command line into simple commands: words (after quoting and backslash escapes),
//! redirections, and the operator that joins each command to the next (`;`, `&&`, `||`, `|`,
//! `&`). Never fails: an unterminated quote ends at the end of the line, a stray operator
//! joins an empty command. Variables (`$NAME`, `${NAME}`, `$?`) outside single quotes are
//! noted for the shell to expand when the command runs; an unquoted `*` or `?` marks a
//! glob. Command substitution (`$(...)`, backquotes) is not supported: it stays text.

/// One word: its literal text, the variables to insert into it, and whether it is a glob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Word {
    /// The text with quotes removed and variable references left out.
    pub text: Vec<u8>,
    /// `(offset in text, variable name)`, in order.
    pub vars: Vec<(usize, Vec<u8>)>,
    /// An unquoted `*` or `?` appeared.
    pub glob: bool,
}

/// What joins a command to the one after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `;`, `&` or the end of the line.
    Seq,
    And,
    Or,
    Pipe,
}

/// Where a redirection sends a file descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `N> file`, `N>> file`.
    Out { fd: u8, path: Vec<u8>, append: bool },
    /// `N>&M`.
    Dup { fd: u8, to: u8 },
    /// `< file`.
    In { path: Vec<u8> },
}

/// One simple command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The command's text exactly as typed (trimmed), operators excluded.
    pub text: Vec<u8>,
    pub words: Vec<Word>,
    pub redirects: Vec<Redirect>,
}

/// Parses one line into commands, each with the operator that follows it.
pub fn parse(line: &[u8]) -> Vec<(Command, Op)> {
    let mut p = Parser { s: line, i: 0 };
    let mut out = Vec::new();
    let mut cmd = Command::default();
    let mut start: Option<usize> = None;
    let mut end = 0;
    loop {
        p.skip_blanks();
        let Some(&c) = p.s.get(p.i) else { break };
        let here = p.i;
        let op = match c {
            b';' => Some((Op::Seq, 1)),
            b'&' if p.s.get(p.i + 1) == Some(&b'&') => Some((Op::And, 2)),
            b'&' => Some((Op::Seq, 1)),
            b'|' if p.s.get(p.i + 1) == Some(&b'|') => Some((Op::Or, 2)),
            b'|' => Some((Op::Pipe, 1)),
            b'\n' => Some((Op::Seq, 1)),
            _ => None,
        };
        if let Some((op, len)) = op {
            p.i += len;
            cmd.text = start.map(|s| line[s..end].to_vec()).unwrap_or_default();
            out.push((std::mem::take(&mut cmd), op));
            start = None;
            continue;
        }
        if c == b'#' {
            // A comment runs to the end of the line.
            break;
        }
        start.get_or_insert(here);
        if let Some(r) = p.redirect() {
            cmd.redirects.push(r);
        } else {
            let w = p.word();
            // `word()` consumes at least one byte here: `c` is not a blank or operator.
            cmd.words.push(w);
        }
        end = p.i;
    }
    if start.is_some() || !cmd.words.is_empty() || !cmd.redirects.is_empty() {
        cmd.text = start.map(|s| line[s..end].to_vec()).unwrap_or_default();
        out.push((cmd, Op::Seq));
    }
    // Drop empty commands made by stray separators (`;;`, a trailing `;`).
    out.retain(|(c, _)| !c.text.is_empty());
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_meta(c: u8) -> bool {
    matches!(c, b';' | b'&' | b'|' | b'<' | b'>' | b'\n')
}

impl Parser<'_> {
    fn skip_blanks(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }

    /// A redirection at the cursor (`>f`, `2>>f`, `2>&1`, `<f`), consumed with its target.
    fn redirect(&mut self) -> Option<Redirect> {
        let s = self.s;
        let mut j = self.i;
        let fd = match s.get(j) {
            Some(&d @ b'0'..=b'9') if matches!(s.get(j + 1), Some(b'>' | b'<')) => {
                j += 1;
                Some(d - b'0')
            }
            _ => None,
        };
        match s.get(j) {
            Some(b'<') => {
                self.i = j + 1;
                self.skip_blanks();
                Some(Redirect::In {
                    path: self.word().text,
                })
            }
            Some(b'>') => {
                j += 1;
                let append = s.get(j) == Some(&b'>');
                if append {
                    j += 1;
                }
                let fd = fd.unwrap_or(1);
                if !append && s.get(j) == Some(&b'&') {
                    if let Some(&t @ b'0'..=b'9') = s.get(j + 1) {
                        self.i = j + 2;
                        return Some(Redirect::Dup { fd, to: t - b'0' });
                    }
                    // `>&file` (both streams to a file).
                    j += 1;
                }
                self.i = j;
                self.skip_blanks();
                Some(Redirect::Out {
                    fd,
                    path: self.word().text,
                    append,
                })
            }
            _ => None,
        }
    }

    /// A variable reference after `$` at the cursor: its name, consumed; `None` (nothing
    /// consumed) when the `$` is literal.
    fn var(&mut self) -> Option<Vec<u8>> {
        let s = self.s;
        match s.get(self.i) {
            Some(&c @ (b'?' | b'$' | b'#' | b'0'..=b'9' | b'!' | b'@' | b'*' | b'-')) => {
                self.i += 1;
                Some(vec![c])
            }
            Some(b'{') => {
                let end = s[self.i..].iter().position(|&b| b == b'}')?;
                let name = s[self.i + 1..self.i + end].to_vec();
                self.i += end + 1;
                Some(name)
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = self.i;
                while matches!(s.get(self.i), Some(c) if c.is_ascii_alphanumeric() || *c == b'_') {
                    self.i += 1;
                }
                Some(s[start..self.i].to_vec())
            }
            _ => None,
        }
    }

    /// One word with quotes removed; stops at an unquoted blank or operator.
    fn word(&mut self) -> Word {
        let mut w = Word::default();
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b' ' | b'\t' | b'\r' => break,
                c if is_meta(c) => break,
                b'\'' => {
                    self.i += 1;
                    while let Some(&c) = self.s.get(self.i) {
                        self.i += 1;
                        if c == b'\'' {
                            break;
                        }
                        w.text.push(c);
                    }
                }
                b'"' => {
                    self.i += 1;
                    while let Some(&c) = self.s.get(self.i) {
                        self.i += 1;
                        match c {
                            b'"' => break,
                            b'\\' => match self.s.get(self.i) {
                                Some(&n @ (b'"' | b'\\' | b'$' | b'`')) => {
                                    w.text.push(n);
                                    self.i += 1;
                                }
                                Some(b'\n') => self.i += 1,
                                _ => w.text.push(b'\\'),
                            },
                            b'$' => match self.var() {
                                Some(name) => w.vars.push((w.text.len(), name)),
                                None => w.text.push(b'$'),
                            },
                            c => w.text.push(c),
                        }
                    }
                }
                b'\\' => {
                    self.i += 1;
                    match self.s.get(self.i) {
                        Some(b'\n') => self.i += 1,
                        Some(&n) => {
                            w.text.push(n);
                            self.i += 1;
                        }
                        None => {}
                    }
                }
                b'$' => {
                    self.i += 1;
                    match self.var() {
                        Some(name) => w.vars.push((w.text.len(), name)),
                        None => w.text.push(b'$'),
                    }
                }
                c => {
                    w.glob |= c == b'*' || c == b'?';
                    w.text.push(c);
                    self.i += 1;
                }
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[u8]) -> Vec<Vec<Vec<u8>>> {
        parse(line)
            .into_iter()
            .map(|(c, _)| c.words.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn variables_and_globs_are_marked() {
        let c = &parse(b"echo $HOME\"x${A}y\"'$B' \\$C $ *.sh '*' a$?")[0].0;
        type Marked<'a> = (&'a [u8], Vec<(usize, &'a [u8])>, bool);
        let w: Vec<Marked> = c
            .words
            .iter()
            .map(|w| {
                (
                    &w.text[..],
                    w.vars.iter().map(|(o, n)| (*o, &n[..])).collect(),
                    w.glob,
                )
            })
            .collect();
        assert_eq!(
            w,
            vec![
                (&b"echo"[..], vec![], false),
                (b"xy$B", vec![(0, &b"HOME"[..]), (1, b"A")], false),
                (b"$C", vec![], false),
                (b"$", vec![], false),
                (b"*.sh", vec![], true),
                (b"*", vec![], false),
                (b"a", vec![(1, &b"?"[..])], false),
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            words(br#"echo 'a b' "c \"d\" \x" e\ f g'h'"i""#),
            vec![vec![
                b"echo".to_vec(),
                b"a b".to_vec(),
                br#"c "d" \x"#.to_vec(),
                b"e f".to_vec(),
                b"ghi".to_vec()
            ]]
        );
        assert_eq!(words(b"echo ''"), vec![vec![b"echo".to_vec(), vec![]]]);
        // Operators inside quotes are text.
        assert_eq!(words(b"echo 'a;b|c'").len(), 1);
        // An unterminated quote runs to the end.
        assert_eq!(
            words(b"echo 'abc"),
            vec![vec![b"echo".to_vec(), b"abc".to_vec()]]
        );
    }

    #[test]
    fn operators_split_and_keep_text() {
        let cmds = parse(b"cd /tmp || cd /var/run; wget http://x/y && chmod 777 y | cat &");
        let got: Vec<(&[u8], Op)> = cmds.iter().map(|(c, o)| (&c.text[..], *o)).collect();
        assert_eq!(
            got,
            vec![
                (&b"cd /tmp"[..], Op::Or),
                (b"cd /var/run", Op::Seq),
                (b"wget http://x/y", Op::And),
                (b"chmod 777 y", Op::Pipe),
                (b"cat", Op::Seq),
            ]
        );
        assert!(parse(b" ; ;; ").is_empty());
        assert!(parse(b"# just a comment").is_empty());
    }

    #[test]
    fn redirections() {
        let cmds = parse(b"echo -ne '\\x7f' >>.x 2>/dev/null; cat<f >&2; ls 2>&1 > out");
        assert_eq!(
            words(b"echo -ne '\\x7f' >>.x 2>/dev/null")[0],
            vec![b"echo".to_vec(), b"-ne".to_vec(), b"\\x7f".to_vec()]
        );
        assert_eq!(
            cmds[0].0.redirects,
            vec![
                Redirect::Out {
                    fd: 1,
                    path: b".x".to_vec(),
                    append: true
                },
                Redirect::Out {
                    fd: 2,
                    path: b"/dev/null".to_vec(),
                    append: false
                }
            ]
        );
        assert_eq!(cmds[0].0.text, b"echo -ne '\\x7f' >>.x 2>/dev/null");
        assert_eq!(
            cmds[1].0.redirects,
            vec![
                Redirect::In {
                    path: b"f".to_vec()
                },
                Redirect::Dup { fd: 1, to: 2 }
            ]
        );
        assert_eq!(cmds[2].0.redirects[0], Redirect::Dup { fd: 2, to: 1 });
        // A digit not directly before `>` is a word.
        assert_eq!(parse(b"echo 2 >f")[0].0.words.len(), 2);
    }
}
