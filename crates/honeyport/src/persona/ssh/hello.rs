//! The client's first bytes, read passively: its identification line and its first binary
//! packet, the KEXINIT, both sent in the clear before any key exchange. From them come the
//! client's version string exactly as sent, its algorithm lists in wire order and its HASSH
//! (md5 of `kex;enc_c2s;mac_c2s;comp_c2s`, Salesforce's client fingerprint).
//!
//! A pure state machine fed with whatever the socket delivers, so it is fuzzed and unit-tested
//! with byte strings; it never holds more than [`MAX_LINE`] + [`MAX_PACKET`] bytes.

use md5::{Digest, Md5};

/// Longest identification line kept (RFC 4253 4.2 allows 255 bytes with CR LF; OpenSSH reads
/// up to 8 KiB of text before it gives up, and so do we).
pub const MAX_LINE: usize = 8192;
/// Largest first packet read (RFC 4253 6.1: at least 35000 must be accepted).
pub const MAX_PACKET: usize = 35_000;
/// Most names in one name-list kept (a KEXINIT with thousands of names is cut, and noted).
pub const MAX_NAMES: usize = 256;

const MSG_KEXINIT: u8 = 20;

/// The client's KEXINIT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KexInit {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub enc_c2s: Vec<String>,
    pub enc_s2c: Vec<String>,
    pub mac_c2s: Vec<String>,
    pub mac_s2c: Vec<String>,
    pub comp_c2s: Vec<String>,
    pub comp_s2c: Vec<String>,
    pub lang_c2s: Vec<String>,
    pub lang_s2c: Vec<String>,
    pub first_kex_follows: bool,
    /// Some name-list had more than [`MAX_NAMES`] names (the rest were dropped).
    pub cut: bool,
}

impl KexInit {
    /// The string HASSH hashes: `kex;enc_c2s;mac_c2s;comp_c2s`, each list comma-joined.
    pub fn hassh_algorithms(&self) -> String {
        [&self.kex, &self.enc_c2s, &self.mac_c2s, &self.comp_c2s]
            .map(|l| l.join(","))
            .join(";")
    }

    /// HASSH: lower-case hex md5 of [`KexInit::hassh_algorithms`].
    pub fn hassh(&self) -> String {
        hex::encode(Md5::digest(self.hassh_algorithms().as_bytes()))
    }
}

/// What the client's first bytes revealed.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The identification line without its line end, exactly as sent.
    Version(Vec<u8>),
    /// Text lines before the identification line (not allowed from a client, but recorded).
    Garbage(Vec<u8>),
    KexInit(Box<KexInit>),
    /// The bytes are not SSH, or break a limit; reading stops.
    Malformed(&'static str),
}

#[derive(Debug)]
enum State {
    Line,
    Packet,
    Done,
}

/// Reads the client's version line and KEXINIT from the bytes it sends.
#[derive(Debug)]
pub struct Hello {
    state: State,
    buf: Vec<u8>,
    garbage_lines: usize,
}

impl Default for Hello {
    fn default() -> Self {
        Hello::new()
    }
}

impl Hello {
    pub fn new() -> Hello {
        Hello {
            state: State::Line,
            buf: Vec::new(),
            garbage_lines: 0,
        }
    }

    /// True once the KEXINIT was read or reading stopped: later bytes are encrypted or
    /// beside the point, and need not be fed.
    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feeds bytes as they arrive.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Found> {
        let mut out = Vec::new();
        if self.done() {
            return out;
        }
        self.buf.extend_from_slice(data);
        loop {
            match self.state {
                State::Done => {
                    self.buf = Vec::new();
                    return out;
                }
                State::Line => {
                    let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                        if self.buf.len() > MAX_LINE {
                            self.stop(&mut out, "ssh.version_line_too_long");
                        }
                        return out;
                    };
                    if nl > MAX_LINE {
                        self.stop(&mut out, "ssh.version_line_too_long");
                        continue;
                    }
                    let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.starts_with(b"SSH-") {
                        out.push(Found::Version(line));
                        self.state = State::Packet;
                    } else {
                        self.garbage_lines += 1;
                        out.push(Found::Garbage(line));
                        if self.garbage_lines >= 8 {
                            self.stop(&mut out, "ssh.not_ssh");
                        }
                    }
                }
                State::Packet => {
                    if self.buf.len() < 6 {
                        return out;
                    }
                    let len =
                        u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                            as usize;
                    if !(12..=MAX_PACKET).contains(&len) {
                        self.stop(&mut out, "ssh.bad_packet_length");
                        continue;
                    }
                    if self.buf.len() < 4 + len {
                        return out;
                    }
                    let pad = self.buf[4] as usize;
                    if pad + 1 >= len {
                        self.stop(&mut out, "ssh.bad_padding");
                        continue;
                    }
                    let payload = &self.buf[5..4 + len - pad];
                    match parse_kexinit(payload) {
                        Some(k) => {
                            out.push(Found::KexInit(Box::new(k)));
                            self.state = State::Done;
                        }
                        None => self.stop(&mut out, "ssh.bad_kexinit"),
                    }
                }
            }
        }
    }

    /// The connection ended: what was cut short, if anything (a version line longer than
    /// RFC 4253's 255 bytes, or an unfinished line or KEXINIT).
    pub fn finish(&mut self) -> Option<Found> {
        let why = match self.state {
            State::Done => return None,
            State::Line if self.buf.len() > 255 => "ssh.version_line_too_long",
            State::Line if !self.buf.is_empty() => "ssh.version_line_unfinished",
            State::Packet if !self.buf.is_empty() => "ssh.kexinit_unfinished",
            _ => return None,
        };
        self.state = State::Done;
        self.buf = Vec::new();
        Some(Found::Malformed(why))
    }

    fn stop(&mut self, out: &mut Vec<Found>, why: &'static str) {
        out.push(Found::Malformed(why));
        self.state = State::Done;
    }
}

/// A KEXINIT payload (message number first).
pub fn parse_kexinit(p: &[u8]) -> Option<KexInit> {
    let mut r = Reader(p);
    if r.byte()? != MSG_KEXINIT {
        return None;
    }
    r.take(16)?; // cookie
    let mut k = KexInit::default();
    let mut cut = false;
    let mut list = |r: &mut Reader<'_>| -> Option<Vec<String>> {
        let raw = r.string()?;
        if raw.is_empty() {
            return Some(Vec::new());
        }
        let mut names: Vec<String> = Vec::new();
        for n in raw.split(|&b| b == b',') {
            if names.len() == MAX_NAMES {
                cut = true;
                break;
            }
            names.push(String::from_utf8_lossy(n).into_owned());
        }
        Some(names)
    };
    k.kex = list(&mut r)?;
    k.host_key = list(&mut r)?;
    k.enc_c2s = list(&mut r)?;
    k.enc_s2c = list(&mut r)?;
    k.mac_c2s = list(&mut r)?;
    k.mac_s2c = list(&mut r)?;
    k.comp_c2s = list(&mut r)?;
    k.comp_s2c = list(&mut r)?;
    k.lang_c2s = list(&mut r)?;
    k.lang_s2c = list(&mut r)?;
    k.first_kex_follows = r.byte()? != 0;
    k.cut = cut;
    Some(k)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let l = self.take(4)?;
        let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KEXINIT packet (unencrypted framing) with the given lists.
    pub fn packet(lists: [&str; 10]) -> Vec<u8> {
        let mut p = vec![MSG_KEXINIT];
        p.extend_from_slice(&[7u8; 16]);
        for l in lists {
            p.extend_from_slice(&(l.len() as u32).to_be_bytes());
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&[0, 0, 0, 0]);
        let pad = 8 - (p.len() + 5) % 8 + 4;
        let mut out = ((p.len() + pad + 1) as u32).to_be_bytes().to_vec();
        out.push(pad as u8);
        out.extend_from_slice(&p);
        out.extend(std::iter::repeat_n(0u8, pad));
        out
    }

    const LISTS: [&str; 10] = [
        "curve25519-sha256,diffie-hellman-group14-sha256,ext-info-c",
        "ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "hmac-sha2-256-etm@openssh.com,hmac-sha2-256",
        "hmac-sha2-256-etm@openssh.com,hmac-sha2-256",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ];

    #[test]
    fn version_and_kexinit_in_any_split() {
        let mut all = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec();
        all.extend(packet(LISTS));
        all.extend_from_slice(b"\x00\x00\x00\x2cencrypted after this");
        for cut in 0..all.len() {
            let mut h = Hello::new();
            let mut f = h.feed(&all[..cut]);
            f.extend(h.feed(&all[cut..]));
            assert_eq!(f.len(), 2, "cut {cut}: {f:?}");
            assert_eq!(
                f[0],
                Found::Version(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".to_vec())
            );
            let Found::KexInit(k) = &f[1] else {
                panic!("{f:?}")
            };
            assert_eq!(k.kex[2], "ext-info-c");
            assert_eq!(k.comp_c2s, ["none", "zlib@openssh.com"]);
            assert!(h.done());
        }
    }

    #[test]
    fn hassh_is_md5_of_the_four_lists_in_wire_order() {
        let k = parse_kexinit(&packet(LISTS)[5..]).unwrap();
        let algs = "curve25519-sha256,diffie-hellman-group14-sha256,ext-info-c;\
                    chacha20-poly1305@openssh.com,aes128-ctr;\
                    hmac-sha2-256-etm@openssh.com,hmac-sha2-256;none,zlib@openssh.com";
        assert_eq!(k.hassh_algorithms(), algs);
        assert_eq!(k.hassh(), hex::encode(Md5::digest(algs.as_bytes())));
        // Salesforce's published example: md5("") is not what an empty KEXINIT gives.
        assert_eq!(
            hex::encode(Md5::digest(b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn garbage_long_lines_and_bad_packets_stop_reading() {
        let mut h = Hello::new();
        let f = h.feed(&vec![b'A'; MAX_LINE + 2]);
        assert_eq!(f, [Found::Malformed("ssh.version_line_too_long")]);
        assert!(h.feed(b"SSH-2.0-x\r\n").is_empty());

        let mut h = Hello::new();
        let f = h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(f.len(), 2);
        assert!(matches!(&f[0], Found::Garbage(l) if l == b"GET / HTTP/1.1"));

        let mut h = Hello::new();
        let f = h.feed(b"SSH-2.0-x\r\n\xff\xff\xff\xff\x04\x00");
        assert_eq!(f[1], Found::Malformed("ssh.bad_packet_length"));

        let mut h = Hello::new();
        let mut p = packet(LISTS);
        p[5] = 21; // not KEXINIT
        let mut all = b"SSH-2.0-x\n".to_vec();
        all.extend(p);
        assert_eq!(h.feed(&all)[1], Found::Malformed("ssh.bad_kexinit"));
    }

    #[test]
    fn thousands_of_names_are_cut() {
        let many = vec!["a"; 5000].join(",");
        let mut lists = LISTS;
        lists[0] = &many;
        let k = parse_kexinit(&packet(lists)[5..]).unwrap();
        assert_eq!(k.kex.len(), MAX_NAMES);
        assert!(k.cut);
    }
}
