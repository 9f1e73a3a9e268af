//! UDP: datagrams grouped into flows (one session per source address and destination, until
//! the persona is done, the flow idles out, or a limit trips). The real destination address of
//! each datagram comes from `IP_PKTINFO` / `IPV6_RECVPKTINFO`, and replies leave from it.
//!
//! Replies are never larger than the datagram that triggered them (unless
//! `udp_allow_amplification`), and each source gets at most `udp_replies_per_second`.
//!
//! No received datagram goes unrecorded: ones still queued to a flow whose session ends are
//! handed to a new flow (a new session), or, once the sensor is stopping, recorded as input
//! of the ending session. Only datagrams that find no slot or a full queue are dropped, and
//! those are counted.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Shared;

/// Datagrams queued for one flow before further ones are dropped (and counted).
const FLOW_QUEUE: usize = 32;

/// The receiving side of one flow, owned by its session.
pub struct UdpFlow {
    rx: mpsc::Receiver<Vec<u8>>,
    sock: Arc<UdpSocket>,
    /// The socket's flow table and this flow's key in it, to hand over datagrams that are
    /// still queued when the session ends (see [`UdpFlow::finish`]).
    table: Arc<FlowTable>,
    key: (SocketAddr, IpAddr),
    peer: SocketAddr,
    /// Source address for replies when the socket is bound to a wildcard.
    reply_from: Option<IpAddr>,
    /// Bytes still allowed in reply to the last datagram (anti-amplification).
    budget: usize,
}

pub enum SendOutcome {
    Sent { len: usize, truncated: bool },
    Suppressed(&'static str),
    Failed(io::Error),
}

impl UdpFlow {
    pub(crate) async fn recv(&mut self, cap: usize) -> Vec<u8> {
        match self.rx.recv().await {
            Some(mut d) => {
                d.truncate(cap);
                self.budget = d.len();
                d
            }
            None => Vec::new(),
        }
    }

    /// The peer and the destination address this flow is for.
    pub(crate) fn key(&self) -> (SocketAddr, IpAddr) {
        self.key
    }

    pub(crate) fn table(&self) -> Arc<FlowTable> {
        self.table.clone()
    }

    /// Ends the flow's intake. Datagrams already queued to it were received but not handled:
    /// with `hand_over` they go to a fresh flow (returned; the caller starts its session), so
    /// they are answered like any datagram arriving after the session; otherwise (the sensor
    /// is stopping) they are returned for the ending session to record. Done under the table
    /// lock, so datagrams arriving meanwhile queue behind them, in order.
    pub(crate) fn finish(&mut self, hand_over: bool) -> (Vec<Vec<u8>>, Option<UdpFlow>) {
        let mut t = match self.table.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.rx.close();
        let mut left = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            left.push(d);
        }
        let ours = t.get(&self.key).map(|tx| tx.is_closed()).unwrap_or(false);
        if left.is_empty() || !hand_over {
            if ours {
                t.remove(&self.key);
            }
            return (left, None);
        }
        // Never more than FLOW_QUEUE: they came out of a queue of that size.
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        for d in left {
            let _ = tx.try_send(d);
        }
        t.insert(self.key, tx);
        let next = UdpFlow {
            rx,
            sock: self.sock.clone(),
            table: self.table.clone(),
            key: self.key,
            peer: self.peer,
            reply_from: self.reply_from,
            budget: 0,
        };
        (Vec::new(), Some(next))
    }

    /// Gives up a flow that could not get a session (no slot): removes it and returns how many
    /// datagrams it held, for the drop count.
    pub(crate) fn abandon(mut self) -> u64 {
        let (left, _) = self.finish(false);
        left.len() as u64
    }

    pub(crate) async fn send(&mut self, data: &[u8], shared: &Shared) -> SendOutcome {
        let (len, truncated) = if shared.limits.udp_allow_amplification {
            (data.len(), false)
        } else {
            let len = data.len().min(self.budget);
            if len == 0 {
                return SendOutcome::Suppressed("amplification");
            }
            (len, len < data.len())
        };
        if !shared.udp_rate_ok(self.peer.ip()) {
            return SendOutcome::Suppressed("rate_limit");
        }
        if !shared.limits.udp_allow_amplification {
            self.budget -= len;
        }
        match send_from(&self.sock, &data[..len], self.peer, self.reply_from).await {
            Ok(()) => SendOutcome::Sent { len, truncated },
            Err(e) => SendOutcome::Failed(e),
        }
    }
}

/// Per-source token buckets for UDP replies.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, StdInstant)>>,
}

impl RateLimiter {
    /// Takes one token for `ip`; false when its bucket is empty.
    pub fn allow(&self, ip: IpAddr, rate: f64, burst: u32) -> bool {
        let Ok(mut m) = self.buckets.lock() else {
            return false;
        };
        let now = StdInstant::now();
        if m.len() > 100_000 {
            // Bounded memory under spoofed-source floods: forget full buckets.
            m.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst as f64
            });
        }
        let e = m.entry(ip).or_insert((burst as f64, now));
        e.0 = (e.0 + now.duration_since(e.1).as_secs_f64() * rate).min(burst as f64);
        e.1 = now;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Flows of one UDP socket, keyed by (peer, destination address).
pub(crate) type FlowTable = Mutex<HashMap<(SocketAddr, IpAddr), mpsc::Sender<Vec<u8>>>>;

pub(crate) enum Route {
    /// Queued to an existing flow.
    Queued,
    /// No live flow: the caller starts one with this receiver.
    New(UdpFlow),
    /// The flow's queue is full: dropped (counted by the caller).
    Full,
}

/// Hands a datagram to its flow, or makes a new flow for it.
pub(crate) fn route(
    table: &Arc<FlowTable>,
    sock: &Arc<UdpSocket>,
    peer: SocketAddr,
    dst: IpAddr,
    wildcard: bool,
    data: Vec<u8>,
) -> Route {
    let Ok(mut t) = table.lock() else {
        return Route::Full;
    };
    let key = (peer, dst);
    let data = match t.get(&key) {
        Some(tx) => match tx.try_send(data) {
            Ok(()) => return Route::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => return Route::Full,
            Err(mpsc::error::TrySendError::Closed(d)) => d,
        },
        None => data,
    };
    let (tx, rx) = mpsc::channel(FLOW_QUEUE);
    // A fresh channel has room for one datagram.
    let _ = tx.try_send(data);
    t.insert(key, tx);
    Route::New(UdpFlow {
        rx,
        sock: sock.clone(),
        table: table.clone(),
        key,
        peer,
        reply_from: wildcard.then_some(dst),
        budget: 0,
    })
}

/// Removes a finished flow, unless a newer flow took its key already.
pub(crate) fn forget(table: &FlowTable, peer: SocketAddr, dst: IpAddr) {
    if let Ok(mut t) = table.lock() {
        if t.get(&(peer, dst))
            .map(|tx| tx.is_closed())
            .unwrap_or(false)
        {
            t.remove(&(peer, dst));
        }
    }
}

/// Asks the kernel for each datagram's destination address.
pub(crate) fn enable_pktinfo(sock: &UdpSocket, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if v6 {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

/// Receives one datagram: (length, peer, destination address).
pub(crate) async fn recv_from_to(
    sock: &UdpSocket,
    buf: &mut [u8],
    local: SocketAddr,
    wildcard: bool,
) -> io::Result<(usize, SocketAddr, IpAddr)> {
    if !wildcard {
        let (n, peer) = sock.recv_from(buf).await?;
        return Ok((n, peer, local.ip()));
    }
    loop {
        sock.readable().await?;
        match sock.try_io(Interest::READABLE, || {
            recvmsg_pktinfo(sock.as_raw_fd(), buf, local.ip())
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn recvmsg_pktinfo(
    fd: i32,
    buf: &mut [u8],
    fallback: IpAddr,
) -> io::Result<(usize, SocketAddr, IpAddr)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo);
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let mut dst = fallback;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    dst = IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)))
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    dst = IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr))
                }
                _ => {}
            }
        }
    }
    let peer = msg
        .address
        .and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())))
            } else {
                a.as_sockaddr_in6().map(|v6| {
                    SocketAddr::V6(SocketAddrV6::new(
                        v6.ip(),
                        v6.port(),
                        v6.flowinfo(),
                        v6.scope_id(),
                    ))
                })
            }
        })
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    Ok((msg.bytes, peer, dst))
}

async fn send_from(
    sock: &UdpSocket,
    data: &[u8],
    peer: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<()> {
    let Some(from) = from else {
        sock.send_to(data, peer).await?;
        return Ok(());
    };
    loop {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            sendmsg_from(sock.as_raw_fd(), data, peer, from)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn sendmsg_from(fd: i32, data: &[u8], peer: SocketAddr, from: IpAddr) -> io::Result<()> {
    let iov = [io::IoSlice::new(data)];
    match (peer, from) {
        (SocketAddr::V4(p), IpAddr::V4(f)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(f).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let addr = SockaddrIn::from(p);
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&addr),
            )
            .map_err(io::Error::from)?;
        }
        (SocketAddr::V6(p), IpAddr::V6(f)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: f.octets(),
                },
                ipi6_ifindex: 0,
            };
            let addr = SockaddrIn6::from(p);
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&addr),
            )
            .map_err(io::Error::from)?;
        }
        _ => return Err(io::Error::other("address family mismatch")),
    }
    Ok(())
}
