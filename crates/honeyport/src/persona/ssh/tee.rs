//! The TCP stream as russh sees it, watched from below: the client's clear-text first bytes
//! (identification line and KEXINIT) go to a [`Hello`] reader and are kept for the record,
//! every byte is counted both ways, and reading stops at the session's `max_bytes_in`.
//! Nothing is changed on the way.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::hello::{Found, Hello};

impl Seen {
    /// The connection is over: anything the hello reader was in the middle of.
    pub fn finish(&mut self) {
        if let Some(f) = self.hello.finish() {
            self.found.push(f);
        }
    }
}

/// What the watcher saw, shared with the persona.
#[derive(Debug, Default)]
pub struct Seen {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Clear-text client bytes not yet taken for the record (until the KEXINIT).
    pub clear: Vec<u8>,
    /// Findings not yet taken.
    pub found: Vec<Found>,
    /// The client sent more than `max_bytes_in`.
    pub over_limit: bool,
    /// Reads the clear-text start of the stream.
    pub hello: Hello,
}

pub type Shared = Arc<Mutex<Seen>>;

pub struct Tee {
    inner: TcpStream,
    seen: Shared,
    max_in: u64,
}

impl Tee {
    pub fn new(inner: TcpStream, seen: Shared, max_in: u64) -> Tee {
        Tee {
            inner,
            seen,
            max_in,
        }
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl AsyncRead for Tee {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let got = &buf.filled()[before..];
            if !got.is_empty() {
                let mut s = lock(&this.seen);
                s.bytes_in += got.len() as u64;
                if !s.hello.done() {
                    s.clear.extend_from_slice(got);
                    let found = s.hello.feed(got);
                    s.found.extend(found);
                }
                if s.bytes_in > this.max_in {
                    s.over_limit = true;
                    return Poll::Ready(Err(std::io::Error::other("max_bytes_in")));
                }
            }
        }
        r
    }
}

impl AsyncWrite for Tee {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            lock(&this.seen).bytes_out += *n as u64;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
