//! The client's TCP SYN as the kernel received it: TTL, window, options and their order, and
//! the quirks p0f v3 fingerprints, from Linux's saved SYN (`TCP_SAVE_SYN` set on the listening
//! socket, `TCP_SAVED_SYN` read once from the accepted one; Linux 4.2 and later, needs no
//! privilege). Elsewhere, or when the kernel refuses, sessions simply have no `tcp.syn` event.
//!
//! [`enable`] and [`saved`] are the two socket calls (the only `unsafe` code of the crate, in
//! the private `sys` module); [`parse`] is a pure, total parser of the saved IPv4 or IPv6
//! header and TCP header: it never panics, allocates a bounded amount, and every loop is
//! bounded. `fuzz/fuzz_targets/syn.rs` fuzzes it.
//!
//! The Mirai marker ([`Syn::mirai`]): Mirai's scanner sends raw SYNs whose sequence number is
//! the target's IPv4 address. The classic probe is half-open (the bot resets the handshake and
//! comes back later through an ordinary `connect`), so it only shows up on a session when a
//! client completes the handshake from such a SYN (bots with their own user-space TCP stack).
//! Producing one end to end needs raw sockets, so the marker is covered by this module's unit
//! tests of [`parse`], not by the integration tests.

use std::fmt::Write as _;
use std::os::fd::AsFd;

use honeyport_event::EventKind;

/// The `rule.match` (action `tag`) recorded with a `tcp.syn` that carries the Mirai marker.
pub const MIRAI_RULE: &str = "mirai.syn_seq";

/// Asks the kernel to keep the SYN of every connection `sock` (a TCP socket, before
/// `listen`) accepts: `TCP_SAVE_SYN` = 1 (IP and TCP headers).
pub fn enable(sock: &socket2::Socket) -> std::io::Result<()> {
    sys::save_syn(sock.as_fd())
}

/// The headers of `stream`'s SYN, if its listener saved them (see [`enable`]). The kernel
/// hands them out once; `None` on any error (not saved, already taken, not Linux).
pub fn saved(stream: &tokio::net::TcpStream) -> Option<Vec<u8>> {
    sys::saved_syn(stream.as_fd())
}

/// The two socket calls, the only `unsafe` code of the crate.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    #![allow(unsafe_code)]

    use std::os::fd::{AsRawFd, BorrowedFd};

    /// Bytes asked for: an IPv4 header (at most 60) or an IPv6 header with extension headers,
    /// and a TCP header (at most 60). A larger SYN fails with `EINVAL` and is not recorded.
    const SAVED_MAX: usize = 512;

    pub fn save_syn(fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: `fd` is borrowed from a live socket for the whole call, so it stays open;
        // the option value points at `one`, an initialised c_int that outlives the call, and
        // the length given is exactly its size, so the kernel reads only those 4 bytes.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_SAVE_SYN,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub fn saved_syn(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
        let mut buf = [0u8; SAVED_MAX];
        let mut len = SAVED_MAX as libc::socklen_t;
        // SAFETY: `fd` is borrowed from a live socket for the whole call; the kernel writes at
        // most `len` bytes (the buffer's whole size) into `buf`, a local array that outlives
        // the call, and stores the number written in `len`, a local socklen_t. Only that many
        // bytes are used below, and never more than the buffer holds.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_SAVED_SYN,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return None;
        }
        let n = usize::try_from(len).ok()?;
        buf.get(..n).filter(|b| !b.is_empty()).map(<[u8]>::to_vec)
    }
}

/// Not Linux: no saved SYN.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sys {
    use std::os::fd::BorrowedFd;

    pub fn save_syn(_: BorrowedFd<'_>) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub fn saved_syn(_: BorrowedFd<'_>) -> Option<Vec<u8>> {
        None
    }
}

/// What a SYN's headers say about the client's TCP/IP stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syn {
    /// 4 or 6.
    pub ip_version: u8,
    /// The TTL (IPv4) or hop limit (IPv6) as it arrived.
    pub ttl: u8,
    /// The initial TTL it probably started from: the first of 32, 64, 128 and 255 at or above
    /// `ttl` (Linux and most Unix 64, Windows 128, network gear 255).
    pub ittl: u8,
    /// `ittl - ttl`: routers on the way, if the guess of `ittl` is right.
    pub hops: u8,
    /// IPv4 don't-fragment bit (IPv6 has none: always false).
    pub df: bool,
    /// IPv4 identification field; `None` for IPv6.
    pub ip_id: Option<u16>,
    /// IPv4 TOS byte or IPv6 traffic class (DSCP and ECN bits).
    pub tos: u8,
    /// IPv6 flow label (20 bits); `None` for IPv4.
    pub flow_label: Option<u32>,
    /// Bytes of IPv4 options (0 for IPv6): p0f's `olen`.
    pub ip_opt_len: u8,
    /// The TCP window, raw (not scaled: a SYN's window never is).
    pub window: u16,
    /// Maximum segment size option.
    pub mss: Option<u16>,
    /// Window scale option (the shift count).
    pub wscale: Option<u8>,
    /// Timestamp option's own value (TSval); its echo (TSecr) should be 0 on a SYN, else the
    /// quirk `ts2+`.
    pub ts1: Option<u32>,
    /// The TCP options in the order sent, p0f v3's `olayout`: `mss`, `nop`, `ws`, `sok`
    /// (SACK permitted), `sack`, `ts`, `eol+N` (end of options, N bytes after it), `?K` for
    /// any other kind K; e.g. Linux's `mss,sok,ts,nop,ws`. A malformed option is listed and
    /// ends the list (quirk `bad`).
    pub options: String,
    /// The sequence number.
    pub seq: u32,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
    /// The IP header's length says data follows the TCP header (a TCP Fast Open SYN): p0f's
    /// `pclass` `+`. The saved SYN itself never holds the data.
    pub payload: bool,
    /// p0f v3's quirks, in p0f's order: `df` (don't fragment), `id+` (DF with a non-zero
    /// IP ID), `id-` (no DF and a zero IP ID), `ecn` (ECN bits in the IP header or ECE, CWR
    /// or AE in the TCP header), `0+` (a must-be-zero IP flag or reserved TCP bit set), `flow`
    /// (non-zero IPv6 flow label), `seq-` (zero sequence number), `ack+` (ACK number without
    /// the ACK flag), `ack-` (ACK flag with a zero ACK number), `uptr+` (urgent pointer
    /// without URG), `urgf+` (URG), `pushf+` (PSH), `ts1-` (zero TSval), `ts2+` (non-zero
    /// TSecr), `opt+` (non-zero bytes after EOL), `exws` (window scale above 14), `bad`
    /// (malformed options: a length that is wrong for the kind or runs past the header).
    pub quirks: Vec<&'static str>,
    /// The Mirai scanner marker: an IPv4 SYN whose sequence number equals the destination
    /// address of that same SYN (see the module doc).
    pub mirai: bool,
}

/// Names of the quirk bits, in p0f's order (bit i is `QUIRKS[i]`).
const QUIRKS: [&str; 17] = [
    "df", "id+", "id-", "ecn", "0+", "flow", "seq-", "ack+", "ack-", "uptr+", "urgf+", "pushf+",
    "ts1-", "ts2+", "opt+", "exws", "bad",
];
const Q_DF: u32 = 1 << 0;
const Q_ID_NZ: u32 = 1 << 1;
const Q_ID_ZERO: u32 = 1 << 2;
const Q_ECN: u32 = 1 << 3;
const Q_MBZ: u32 = 1 << 4;
const Q_FLOW: u32 = 1 << 5;
const Q_SEQ_ZERO: u32 = 1 << 6;
const Q_ACK_NZ: u32 = 1 << 7;
const Q_ACK_ZERO: u32 = 1 << 8;
const Q_URG_NZ: u32 = 1 << 9;
const Q_URG: u32 = 1 << 10;
const Q_PUSH: u32 = 1 << 11;
const Q_TS1_ZERO: u32 = 1 << 12;
const Q_TS2_NZ: u32 = 1 << 13;
const Q_OPT_NZ: u32 = 1 << 14;
const Q_EXWS: u32 = 1 << 15;
const Q_BAD: u32 = 1 << 16;

/// IPv6 extension headers walked before the TCP header, at most.
const MAX_EXT_HEADERS: usize = 8;

const TCP: u8 = 6;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE_CWR: u8 = 0xc0;

impl Syn {
    /// A p0f-v3-like one-line signature, `ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`:
    ///
    /// - `ver`: `4` or `6`;
    /// - `ittl`: the guessed initial TTL ([`Syn::ittl`]; p0f's raw signatures print
    ///   `ttl+hops` here, its database the initial TTL, as here, so that one client stack has
    ///   one signature at any distance);
    /// - `olen`: bytes of IPv4 options (0 for IPv6);
    /// - `mss`: the MSS option's value, 0 without one;
    /// - `wsize,scale`: the raw window and the window scale, 0 without the option (p0f
    ///   writes a window that is a multiple of the MSS as `mss*N`; here it is always raw);
    /// - `olayout`: [`Syn::options`];
    /// - `quirks`: [`Syn::quirks`] joined with commas (empty when none);
    /// - `pclass`: `0` for a SYN without data, `+` with data ([`Syn::payload`]).
    ///
    /// E.g. Linux 6.x over IPv4 loopback: `4:64:0:65495:65495,10:mss,sok,ts,nop,ws:df,id+:0`.
    pub fn signature(&self) -> String {
        format!(
            "{}:{}:{}:{}:{},{}:{}:{}:{}",
            self.ip_version,
            self.ittl,
            self.ip_opt_len,
            self.mss.unwrap_or(0),
            self.window,
            self.wscale.unwrap_or(0),
            self.options,
            self.quirks.join(","),
            if self.payload { "+" } else { "0" },
        )
    }

    /// The `tcp.syn` event.
    pub fn event(&self) -> EventKind {
        EventKind::TcpSyn {
            ttl: self.ttl,
            ittl: self.ittl,
            window: self.window,
            mss: self.mss,
            wscale: self.wscale,
            options: self.options.clone(),
            df: self.df,
            signature: self.signature(),
            mirai: self.mirai,
        }
    }
}

/// The initial TTL guess and the hops from it (see [`Syn::ittl`]).
fn initial_ttl(ttl: u8) -> (u8, u8) {
    let ittl = match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    };
    (ittl, ittl - ttl)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// What the IP header says, for the TCP header's parse.
struct Ip {
    version: u8,
    ttl: u8,
    tos: u8,
    df: bool,
    id: Option<u16>,
    flow: Option<u32>,
    opt_len: u8,
    /// Where the TCP header starts.
    tcp_at: usize,
    /// Bytes the IP header says follow `tcp_at` (TCP header and data), if it is consistent.
    tcp_len: Option<usize>,
    /// The destination IPv4 address, for the Mirai marker.
    dst_v4: Option<u32>,
    quirks: u32,
}

/// Parses a saved SYN: an IPv4 or IPv6 header (IPv6 extension headers hop-by-hop, routing,
/// destination options and a first fragment are skipped, at most 8 of them) and a TCP header
/// with its options. `None` when it is not TCP over IP or a header is cut short.
pub fn parse(bytes: &[u8]) -> Option<Syn> {
    let ip = match bytes.first()? >> 4 {
        4 => ipv4(bytes)?,
        6 => ipv6(bytes)?,
        _ => return None,
    };
    tcp(bytes, ip)
}

fn ipv4(b: &[u8]) -> Option<Ip> {
    let h = b.get(..20)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 || ihl > b.len() || h[9] != TCP {
        return None;
    }
    let frag = be16(h, 6)?;
    if frag & 0x1fff != 0 {
        // A later fragment: no TCP header here.
        return None;
    }
    let id = be16(h, 4)?;
    let df = frag & 0x4000 != 0;
    let mut q = 0;
    if df {
        q |= Q_DF;
        if id != 0 {
            q |= Q_ID_NZ;
        }
    } else if id == 0 {
        q |= Q_ID_ZERO;
    }
    if h[1] & 0x03 != 0 {
        q |= Q_ECN;
    }
    if frag & 0x8000 != 0 {
        q |= Q_MBZ;
    }
    Some(Ip {
        version: 4,
        ttl: h[8],
        tos: h[1],
        df,
        id: Some(id),
        flow: None,
        opt_len: (ihl - 20) as u8,
        tcp_at: ihl,
        tcp_len: usize::from(be16(h, 2)?).checked_sub(ihl),
        dst_v4: Some(be32(h, 16)?),
        quirks: q,
    })
}

fn ipv6(b: &[u8]) -> Option<Ip> {
    let h = b.get(..40)?;
    let tos = ((h[0] & 0x0f) << 4) | (h[1] >> 4);
    let flow = be32(h, 0)? & 0x000f_ffff;
    let mut next = h[6];
    let mut at = 40usize;
    let mut walked = 0;
    while next != TCP {
        if walked == MAX_EXT_HEADERS {
            return None;
        }
        walked += 1;
        // Every extension header is at least 8 bytes.
        let ext = b.get(at..at.checked_add(8)?)?;
        let len = match next {
            // Hop-by-hop options, routing, destination options: (n + 1) * 8 bytes.
            0 | 43 | 60 => (usize::from(ext[1]) + 1) * 8,
            // Fragment: only a first fragment has the TCP header.
            44 if be16(ext, 2)? & 0xfff8 == 0 => 8,
            _ => return None,
        };
        next = ext[0];
        at = at.checked_add(len)?;
    }
    let mut q = 0;
    if tos & 0x03 != 0 {
        q |= Q_ECN;
    }
    if flow != 0 {
        q |= Q_FLOW;
    }
    Some(Ip {
        version: 6,
        ttl: h[7],
        tos,
        df: false,
        id: None,
        flow: Some(flow),
        opt_len: 0,
        tcp_at: at,
        tcp_len: usize::from(be16(h, 4)?).checked_sub(at - 40),
        dst_v4: None,
        quirks: q,
    })
}

fn tcp(b: &[u8], ip: Ip) -> Option<Syn> {
    let at = ip.tcp_at;
    let h = b.get(at..at.checked_add(20)?)?;
    let doff = usize::from(h[12] >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let opts = b.get(at + 20..at.checked_add(doff)?)?;
    let seq = be32(h, 4)?;
    let ack = be32(h, 8)?;
    let flags = h[13];
    let window = be16(h, 14)?;
    let urg = be16(h, 18)?;
    let mut q = ip.quirks;
    // ECE, CWR, or AE (the former NS bit, the low bit of byte 12).
    if flags & ECE_CWR != 0 || h[12] & 0x01 != 0 {
        q |= Q_ECN;
    }
    if h[12] & 0x0e != 0 {
        q |= Q_MBZ;
    }
    if seq == 0 {
        q |= Q_SEQ_ZERO;
    }
    if flags & ACK != 0 {
        if ack == 0 {
            q |= Q_ACK_ZERO;
        }
    } else if ack != 0 && flags & RST == 0 {
        q |= Q_ACK_NZ;
    }
    if flags & URG != 0 {
        q |= Q_URG;
    } else if urg != 0 {
        q |= Q_URG_NZ;
    }
    if flags & PSH != 0 {
        q |= Q_PUSH;
    }
    let o = options(opts);
    q |= o.quirks;
    let (ittl, hops) = initial_ttl(ip.ttl);
    Some(Syn {
        ip_version: ip.version,
        ttl: ip.ttl,
        ittl,
        hops,
        df: ip.df,
        ip_id: ip.id,
        tos: ip.tos,
        flow_label: ip.flow,
        ip_opt_len: ip.opt_len,
        window,
        mss: o.mss,
        wscale: o.wscale,
        ts1: o.ts1,
        options: o.layout,
        seq,
        flags,
        payload: ip.tcp_len.is_some_and(|n| n > doff),
        quirks: (0..QUIRKS.len())
            .filter(|i| q & (1 << i) != 0)
            .map(|i| QUIRKS[i])
            .collect(),
        mirai: ip.dst_v4 == Some(seq),
    })
}

#[derive(Default)]
struct Options {
    layout: String,
    mss: Option<u16>,
    wscale: Option<u8>,
    ts1: Option<u32>,
    quirks: u32,
}

/// The TCP options (at most 40 bytes: every step takes at least one, so at most 40 steps).
fn options(opts: &[u8]) -> Options {
    let mut o = Options::default();
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if !o.layout.is_empty() {
            o.layout.push(',');
        }
        match kind {
            0 => {
                let rest = opts.get(i + 1..).unwrap_or_default();
                let _ = write!(o.layout, "eol+{}", rest.len());
                if rest.iter().any(|&b| b != 0) {
                    o.quirks |= Q_OPT_NZ;
                }
                break;
            }
            1 => {
                o.layout.push_str("nop");
                i += 1;
                continue;
            }
            2 => o.layout.push_str("mss"),
            3 => o.layout.push_str("ws"),
            4 => o.layout.push_str("sok"),
            5 => o.layout.push_str("sack"),
            8 => o.layout.push_str("ts"),
            k => {
                let _ = write!(o.layout, "?{k}");
            }
        }
        // Every other kind has a length byte covering kind and length; the known ones have
        // a fixed length (SACK: 2 + 8 per block, 1 to 4 blocks).
        let len = opts.get(i + 1).map_or(0, |&l| usize::from(l));
        let fits = len >= 2 && i + len <= opts.len();
        let right = match kind {
            2 => len == 4,
            3 => len == 3,
            4 => len == 2,
            5 => matches!(len, 10 | 18 | 26 | 34),
            8 => len == 10,
            _ => true,
        };
        if !fits || !right {
            o.quirks |= Q_BAD;
            break;
        }
        let body = opts.get(i + 2..i + len).unwrap_or_default();
        match kind {
            2 => o.mss = be16(body, 0),
            3 => {
                o.wscale = body.first().copied();
                if o.wscale.is_some_and(|w| w > 14) {
                    o.quirks |= Q_EXWS;
                }
            }
            8 => {
                o.ts1 = be32(body, 0);
                if o.ts1 == Some(0) {
                    o.quirks |= Q_TS1_ZERO;
                }
                if be32(body, 4).is_some_and(|t| t != 0) {
                    o.quirks |= Q_TS2_NZ;
                }
            }
            _ => {}
        }
        i += len;
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Options as Linux sends them on a SYN: MSS, SACK permitted, timestamps, NOP, window
    // scale (20 bytes: kind, length, value for each).
    fn linux_options(mss: u16, ts1: u32, ws: u8) -> Vec<u8> {
        let mut o = vec![2, 4];
        o.extend(mss.to_be_bytes());
        o.extend([4, 2]);
        o.extend([8, 10]);
        o.extend(ts1.to_be_bytes());
        o.extend(0u32.to_be_bytes());
        o.extend([1]);
        o.extend([3, 3, ws]);
        o
    }

    /// A TCP header: ports 40000 -> 23, the given sequence number, no ACK, flags, window,
    /// options (padded by the caller to a multiple of 4).
    fn tcp_header(seq: u32, flags: u8, window: u16, opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut t = Vec::new();
        t.extend(40000u16.to_be_bytes());
        t.extend(23u16.to_be_bytes());
        t.extend(seq.to_be_bytes());
        t.extend(0u32.to_be_bytes()); // ack
        t.push((((20 + opts.len()) / 4) as u8) << 4);
        t.push(flags);
        t.extend(window.to_be_bytes());
        t.extend([0, 0]); // checksum (not checked)
        t.extend([0, 0]); // urgent pointer
        t.extend(opts);
        t
    }

    struct V4 {
        ttl: u8,
        id: u16,
        df: bool,
        tos: u8,
        dst: [u8; 4],
    }

    /// An IPv4 header (no options) in front of `tcp`.
    fn ipv4(f: &V4, tcp: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, f.tos];
        p.extend(((20 + tcp.len()) as u16).to_be_bytes());
        p.extend(f.id.to_be_bytes());
        p.extend(if f.df { [0x40, 0] } else { [0, 0] });
        p.extend([f.ttl, TCP, 0, 0]); // ttl, protocol, checksum
        p.extend([192, 0, 2, 7]); // source
        p.extend(f.dst);
        p.extend(tcp);
        p
    }

    /// An IPv6 header in front of `rest` (extension headers and TCP), first next header `nh`.
    fn ipv6(hops: u8, flow: u32, nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = ((6u32 << 28) | flow).to_be_bytes().to_vec();
        p.extend((rest.len() as u16).to_be_bytes());
        p.extend([nh, hops]);
        p.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[7]));
        p.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        p.extend(rest);
        p
    }

    const SYN: u8 = 0x02;

    fn linux_v4() -> Vec<u8> {
        let tcp = tcp_header(0x1234_5678, SYN, 64240, &linux_options(1460, 1000, 7));
        let f = V4 {
            ttl: 52,
            id: 0x4d2e,
            df: true,
            tos: 0,
            dst: [198, 51, 100, 9],
        };
        ipv4(&f, &tcp)
    }

    fn linux_v6() -> Vec<u8> {
        let tcp = tcp_header(77, SYN, 64800, &linux_options(1440, 5, 7));
        ipv6(64, 0xa_bcde, TCP, &tcp)
    }

    /// IPv6 with a hop-by-hop header (8 bytes), a destination options header (16 bytes) and
    /// a first fragment header (8 bytes) before the TCP header.
    fn v6_with_ext() -> Vec<u8> {
        let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop -> dst opts, PadN
        rest.extend([44, 1, 1, 12]); // dst opts (16 bytes) -> fragment, PadN
        rest.extend([0; 12]);
        rest.extend([TCP, 0, 0, 0, 0, 0, 0, 1]); // fragment: offset 0, id 1
        rest.extend(tcp_header(9, SYN, 65535, &linux_options(1220, 9, 8)));
        ipv6(250, 0, 0, &rest)
    }

    #[test]
    fn linux_ipv4_syn() {
        let s = parse(&linux_v4()).unwrap();
        assert_eq!((s.ip_version, s.ttl, s.ittl, s.hops), (4, 52, 64, 12));
        assert!(s.df);
        assert_eq!(
            (s.ip_id, s.tos, s.flow_label, s.ip_opt_len),
            (Some(0x4d2e), 0, None, 0)
        );
        assert_eq!(
            (s.window, s.mss, s.wscale, s.ts1),
            (64240, Some(1460), Some(7), Some(1000))
        );
        assert_eq!(s.options, "mss,sok,ts,nop,ws");
        assert_eq!((s.seq, s.flags, s.payload), (0x1234_5678, SYN, false));
        assert_eq!(s.quirks, ["df", "id+"]);
        assert!(!s.mirai);
        assert_eq!(
            s.signature(),
            "4:64:0:1460:64240,7:mss,sok,ts,nop,ws:df,id+:0"
        );
        let EventKind::TcpSyn {
            ttl,
            ittl,
            window,
            mss,
            wscale,
            options,
            df,
            signature,
            mirai,
        } = s.event()
        else {
            panic!("not tcp.syn");
        };
        assert_eq!(
            (ttl, ittl, window, mss, wscale),
            (52, 64, 64240, Some(1460), Some(7))
        );
        assert_eq!(
            (options.as_str(), df, mirai),
            ("mss,sok,ts,nop,ws", true, false)
        );
        assert_eq!(signature, s.signature());
    }

    #[test]
    fn ipv6_syn() {
        let s = parse(&linux_v6()).unwrap();
        assert_eq!((s.ip_version, s.ttl, s.ittl, s.hops), (6, 64, 64, 0));
        assert_eq!((s.df, s.ip_id, s.flow_label), (false, None, Some(0xa_bcde)));
        assert_eq!(
            (s.mss, s.wscale, s.options.as_str()),
            (Some(1440), Some(7), "mss,sok,ts,nop,ws")
        );
        assert_eq!(s.quirks, ["flow"]);
        assert!(!s.mirai, "the marker is IPv4 only");
        assert_eq!(
            s.signature(),
            "6:64:0:1440:64800,7:mss,sok,ts,nop,ws:flow:0"
        );
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let p = v6_with_ext();
        let s = parse(&p).unwrap();
        assert_eq!((s.ttl, s.ittl, s.window, s.seq), (250, 255, 65535, 9));
        assert_eq!((s.mss, s.wscale), (Some(1220), Some(8)));
        assert_eq!(s.signature(), "6:255:0:1220:65535,8:mss,sok,ts,nop,ws::0");
        // A later fragment has no TCP header.
        let mut later = p.clone();
        later[40 + 24 + 3] = 0x08; // fragment offset 1
        assert_eq!(parse(&later), None);
        // Another upper layer (UDP) is not TCP.
        let mut udp = p.clone();
        udp[40 + 24] = 17; // the fragment header's next header
        assert_eq!(parse(&udp), None);
        // Nine destination options headers are more than are walked; eight are fine.
        for (n, ok) in [(8, true), (9, false)] {
            let mut rest = Vec::new();
            for i in 0..n {
                rest.extend([if i + 1 == n { TCP } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
            }
            rest.extend(tcp_header(1, SYN, 1, &[]));
            assert_eq!(parse(&ipv6(64, 0, 60, &rest)).is_some(), ok, "{n} headers");
        }
    }

    #[test]
    fn mirai_marker_is_the_sequence_number_equal_to_the_destination() {
        // Mirai's scanner: no options, a random window, the target's address as sequence.
        let dst = [203, 0, 113, 77];
        let f = V4 {
            ttl: 64,
            id: 0x1111,
            df: false,
            tos: 0,
            dst,
        };
        let marked = parse(&ipv4(
            &f,
            &tcp_header(u32::from_be_bytes(dst), SYN, 29218, &[]),
        ));
        let s = marked.unwrap();
        assert!(s.mirai);
        assert_eq!((s.mss, s.wscale, s.options.as_str()), (None, None, ""));
        assert_eq!(s.signature(), "4:64:0:0:29218,0:::0");
        let off_by_one = u32::from_be_bytes(dst) + 1;
        assert!(
            !parse(&ipv4(&f, &tcp_header(off_by_one, SYN, 29218, &[])))
                .unwrap()
                .mirai
        );
        // The same bytes as a sequence number, but another destination.
        let other = V4 {
            dst: [203, 0, 113, 78],
            ..f
        };
        let seq = u32::from_be_bytes(dst);
        assert!(
            !parse(&ipv4(&other, &tcp_header(seq, SYN, 1, &[])))
                .unwrap()
                .mirai
        );
    }

    #[test]
    fn every_truncation_is_none_and_never_panics() {
        for full in [linux_v4(), linux_v6(), v6_with_ext()] {
            for n in 0..full.len() {
                assert_eq!(parse(&full[..n]), None, "{n} of {} bytes", full.len());
            }
            assert!(parse(&full).is_some());
        }
    }

    #[test]
    fn ip_headers_that_are_not_tcp_over_ip() {
        let p = linux_v4();
        let with = |at: usize, v: u8| {
            let mut q = p.clone();
            q[at] = v;
            parse(&q)
        };
        assert_eq!(with(0, 0x55), None, "version 5");
        assert_eq!(with(0, 0x44), None, "IHL 4 < 5");
        assert_eq!(with(0, 0x4f), None, "IHL 15: TCP header read as IP options");
        assert_eq!(with(9, 17), None, "UDP");
        assert_eq!(with(7, 1), None, "a later fragment");
        assert!(
            with(6, 0xc0).unwrap().quirks.contains(&"0+"),
            "the evil bit"
        );
        assert!(with(1, 0x02).unwrap().quirks.contains(&"ecn"));
        assert_eq!(with(1, 0x10).unwrap().tos, 0x10);
        // A longer total length: data follows the TCP header.
        assert_eq!(
            with(3, p[3] + 5).unwrap().signature().rsplit(':').next(),
            Some("+")
        );
        // IPv4 options (4 bytes: NOP x4) are skipped and counted.
        let mut opt = vec![0x46];
        opt.extend(&p[1..20]);
        opt.extend([1, 1, 1, 1]);
        opt.extend(&p[20..]);
        let s = parse(&opt).unwrap();
        assert_eq!((s.ip_opt_len, s.mss), (4, Some(1460)));
        assert!(s.signature().starts_with("4:64:4:1460:"));
    }

    fn v4_with_options(opts: &[u8]) -> Option<Syn> {
        let f = V4 {
            ttl: 128,
            id: 0,
            df: true,
            tos: 0,
            dst: [10, 0, 0, 1],
        };
        parse(&ipv4(&f, &tcp_header(5, SYN, 8192, opts)))
    }

    #[test]
    fn bad_option_lengths_end_the_options() {
        for (opts, layout) in [
            (&[2, 0, 5, 180][..], "mss"),
            (&[2, 255, 5, 180], "mss"),
            (&[1, 2, 3, 5], "nop,mss"),
            (&[3, 4, 7, 0], "ws"),
            (&[4, 3, 0, 0], "sok"),
            (&[8, 2, 0, 0], "ts"),
            (&[5, 4, 0, 0], "sack"),
            (&[30, 1, 0, 0], "?30"),
            (&[1, 1, 1, 30], "nop,nop,nop,?30"), // no length byte
            (&[1, 1, 30, 3], "nop,nop,?30"),     // runs past the header
        ] {
            let s = v4_with_options(opts).unwrap();
            assert_eq!(s.options, layout, "{opts:?}");
            assert!(s.quirks.contains(&"bad"), "{opts:?}");
            assert_eq!(s.mss, None, "{opts:?}");
        }
    }

    #[test]
    fn option_kinds_and_their_quirks() {
        // Windows-like: MSS, NOP, WS 8, NOP, NOP, SACK permitted.
        let s = v4_with_options(&[2, 4, 5, 180, 1, 3, 3, 8, 1, 1, 4, 2]).unwrap();
        assert_eq!(
            s.signature(),
            "4:128:0:1460:8192,8:mss,nop,ws,nop,nop,sok:df:0"
        );
        // EOL and what follows it.
        let s = v4_with_options(&[2, 4, 5, 180, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            (s.options.as_str(), s.quirks.clone()),
            ("mss,eol+3", vec!["df"])
        );
        let s = v4_with_options(&[2, 4, 5, 180, 0, 0, 9, 0]).unwrap();
        assert_eq!(
            (s.options.as_str(), s.quirks.clone()),
            ("mss,eol+3", vec!["df", "opt+"])
        );
        // Window scale above 14, a zero TSval and a non-zero TSecr, an unknown kind, SACK.
        let mut o = vec![3, 3, 15, 30, 3, 9, 8, 10];
        o.extend([0, 0, 0, 0, 0, 0, 0, 1]);
        o.extend([5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1]);
        let s = v4_with_options(&o).unwrap();
        assert_eq!(s.options, "ws,?30,ts,sack,nop,nop");
        assert_eq!((s.wscale, s.ts1), (Some(15), Some(0)));
        assert_eq!(s.quirks, ["df", "ts1-", "ts2+", "exws"]);
    }

    #[test]
    fn tcp_header_quirks_and_ttl_guesses() {
        let f = V4 {
            ttl: 64,
            id: 0,
            df: false,
            tos: 0,
            dst: [10, 0, 0, 1],
        };
        let mut t = tcp_header(0, SYN | PSH | URG | ECE_CWR, 1024, &[]);
        t[8..12].copy_from_slice(&7u32.to_be_bytes()); // an ACK number without ACK
        let s = parse(&ipv4(&f, &t)).unwrap();
        assert_eq!(s.quirks, ["id-", "ecn", "seq-", "ack+", "urgf+", "pushf+"]);
        let mut t = tcp_header(1, SYN | ACK, 1024, &[]);
        t[18] = 1; // urgent pointer without URG
        t[12] |= 0x02; // a reserved bit
        let s = parse(&ipv4(&f, &t)).unwrap();
        assert_eq!(s.quirks, ["id-", "0+", "ack-", "uptr+"]);
        // Data offset below 5 is not a TCP header.
        let mut t = tcp_header(1, SYN, 1, &[]);
        t[12] = 0x40;
        assert_eq!(parse(&ipv4(&f, &t)), None);
        for (ttl, ittl, hops) in [
            (0, 32, 32),
            (32, 32, 0),
            (33, 64, 31),
            (64, 64, 0),
            (65, 128, 63),
            (128, 128, 0),
            (129, 255, 126),
            (255, 255, 0),
        ] {
            assert_eq!(initial_ttl(ttl), (ittl, hops), "ttl {ttl}");
        }
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        // xorshift: 10,000 reproducible bytes that look like anything.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let garbage: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = parse(&garbage);
        for window in garbage.windows(60).step_by(7) {
            // Taken raw, behind an IPv4 header (as 40 bytes of options), behind IPv6.
            let _ = parse(window);
            let t = tcp_header(1, SYN, 1, &window[..40]);
            let s = parse(&ipv4(
                &V4 {
                    ttl: 1,
                    id: 1,
                    df: true,
                    tos: 0,
                    dst: [1, 2, 3, 4],
                },
                &t,
            ))
            .unwrap();
            assert!(s.options.len() <= 40 * 5, "{}", s.options);
            assert!(s.quirks.len() <= QUIRKS.len());
            let _ = s.signature();
            let _ = parse(&ipv6(1, 1, window[0], window));
        }
        // A valid header followed by 10,000 bytes of data.
        let mut p = linux_v4();
        p.extend(&garbage);
        assert_eq!(parse(&p).unwrap().options, "mss,sok,ts,nop,ws");
    }
}
