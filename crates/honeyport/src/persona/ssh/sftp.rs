//! `subsystem sftp`: an SFTP version 3 server (packets of the `russh-sftp` crate) over a
//! write-oriented fake filesystem. What a client writes is hashed (and stored, if
//! configured) by [`super::upload`] and recorded as a `file.write` event when the handle is
//! closed (or when the channel ends with the handle still open).
//!
//! The tree: the shell profile's directories (/, /root, /tmp, ...) and files (by size), the
//! directories made with mkdir, and the files uploaded on this connection (listed by
//! readdir; readable again only when uploads are stored). The driver loop is ours, not
//! `russh_sftp::server::run`, so that every limit is explicit: packets at most
//! [`MAX_PACKET`] bytes (a longer one ends the subsystem), at most
//! [`upload::MAX_HANDLES`] open handles per connection, reads at most 64 KiB, and the loop ends on the first I/O error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use honeyport_event::EventKind;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Packet, StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::upload::{self, Kept, Upload, Uploads};
use crate::shell::fs::{resolve, Fs};

/// Largest SFTP packet accepted (OpenSSH's sftp-server allows 256 KiB).
pub const MAX_PACKET: u32 = 256 << 10;
/// Directories mkdir may add.
const MAX_DIRS: usize = 256;
const MAX_READ: u32 = 64 << 10;
const HOME: &[u8] = b"/root";

enum Open {
    Write { path: Vec<u8>, up: Box<Upload> },
    Read { path: std::path::PathBuf, len: u64 },
    Dir { path: Vec<u8>, done: bool },
}

/// One sftp channel's state.
pub struct Server {
    fs: Arc<Fs>,
    uploads: Arc<Uploads>,
    tx: mpsc::Sender<EventKind>,
    handles: HashMap<String, Open>,
    next: u64,
    dirs: BTreeSet<Vec<u8>>,
}

impl Server {
    pub fn new(fs: Arc<Fs>, uploads: Arc<Uploads>, tx: mpsc::Sender<EventKind>) -> Server {
        Server {
            fs,
            uploads,
            tx,
            handles: HashMap::new(),
            next: 0,
            dirs: BTreeSet::new(),
        }
    }

    /// Serves the channel until it ends, then records files still open.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut stream: S) {
        while let Ok(len) = stream.read_u32().await {
            if len > MAX_PACKET || len == 0 {
                tracing::debug!("sftp: packet of {len} bytes");
                break;
            }
            let mut buf = vec![0u8; len as usize];
            if stream.read_exact(&mut buf).await.is_err() {
                break;
            }
            let mut bytes = Bytes::from(buf);
            let reply = match Packet::try_from(&mut bytes) {
                Ok(p) => self.request(p).await,
                Err(_) => Packet::error(0, StatusCode::BadMessage),
            };
            let Ok(out) = Bytes::try_from(reply) else {
                break;
            };
            if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                break;
            }
        }
        let open: Vec<_> = self.handles.drain().collect();
        for (_, h) in open {
            self.uploads.put_handle();
            if let Open::Write { path, up } = h {
                record(&self.uploads, &self.tx, &path, *up).await;
            }
        }
    }

    /// Keeps an open handle (one taken with [`Uploads::take_handle`]).
    fn handle(&mut self, o: Open) -> String {
        self.next += 1;
        let h = format!("{:x}", self.next);
        self.handles.insert(h.clone(), o);
        h
    }

    fn is_dir(&self, p: &[u8]) -> bool {
        self.fs.is_dir(p) || self.dirs.contains(p)
    }

    fn attrs_of(&self, p: &[u8]) -> Option<FileAttributes> {
        if let Some(k) = self.uploads.get(p) {
            return Some(file_attrs(k.len));
        }
        for o in self.handles.values() {
            if let Open::Write { path, up } = o {
                if path == p {
                    return Some(file_attrs(up.kept()));
                }
            }
        }
        if self.is_dir(p) {
            return Some(dir_attrs());
        }
        self.fs.file_len(p).map(|n| file_attrs(n as u64))
    }

    async fn request(&mut self, p: Packet) -> Packet {
        let id = p.get_request_id();
        let ok = || Packet::error(id, StatusCode::Ok);
        let err = |c| Packet::error(id, c);
        match p {
            Packet::Init(_) => Packet::Version(Version {
                version: russh_sftp::protocol::VERSION,
                extensions: Default::default(),
            }),
            Packet::RealPath(r) => {
                let p = path(&r.path);
                Packet::Name(Name {
                    id,
                    files: vec![File::new(text(&p), dir_attrs())],
                })
            }
            Packet::Stat(s) => self.stat(id, &s.path),
            Packet::Lstat(s) => self.stat(id, &s.path),
            Packet::Fstat(f) => match self.handles.get(&f.handle) {
                Some(Open::Write { up, .. }) => Packet::Attrs(Attrs {
                    id,
                    attrs: file_attrs(up.kept()),
                }),
                Some(Open::Read { len, .. }) => Packet::Attrs(Attrs {
                    id,
                    attrs: file_attrs(*len),
                }),
                Some(Open::Dir { .. }) => Packet::Attrs(Attrs {
                    id,
                    attrs: dir_attrs(),
                }),
                None => err(StatusCode::Failure),
            },
            Packet::Open(o) => {
                let p = path(&o.filename);
                let write = o.pflags.intersects(
                    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::APPEND,
                );
                if self.is_dir(&p) || !self.uploads.take_handle() {
                    return err(StatusCode::Failure);
                }
                let open = if write {
                    let up = Box::new(self.uploads.start().await);
                    Open::Write { path: p, up }
                } else {
                    match self.uploads.get(&p) {
                        Some(Kept {
                            stored: Some(s),
                            len,
                            ..
                        }) => Open::Read { path: s, len },
                        found => {
                            self.uploads.put_handle();
                            return err(if found.is_some() {
                                StatusCode::PermissionDenied
                            } else {
                                StatusCode::NoSuchFile
                            });
                        }
                    }
                };
                let handle = self.handle(open);
                Packet::Handle(Handle { id, handle })
            }
            Packet::Write(w) => match self.handles.get_mut(&w.handle) {
                Some(Open::Write { up, .. }) => {
                    up.write_at(&self.uploads, w.offset, &w.data).await;
                    ok()
                }
                _ => err(StatusCode::Failure),
            },
            Packet::Read(r) => match self.handles.get(&r.handle) {
                Some(Open::Read { path, len }) => {
                    if r.offset >= *len {
                        return err(StatusCode::Eof);
                    }
                    let n = u64::from(r.len.min(MAX_READ)).min(len - r.offset);
                    match read_at(path, r.offset, n as usize).await {
                        Ok(data) if !data.is_empty() => Packet::Data(Data { id, data }),
                        Ok(_) => err(StatusCode::Eof),
                        Err(_) => err(StatusCode::Failure),
                    }
                }
                _ => err(StatusCode::Failure),
            },
            Packet::Close(c) => match self.handles.remove(&c.handle).inspect(|_| {
                self.uploads.put_handle();
            }) {
                Some(Open::Write { path, up }) => {
                    record(&self.uploads, &self.tx, &path, *up).await;
                    ok()
                }
                Some(_) => ok(),
                None => err(StatusCode::Failure),
            },
            Packet::OpenDir(o) => {
                let p = path(&o.path);
                if !self.is_dir(&p) {
                    return err(StatusCode::NoSuchFile);
                }
                if !self.uploads.take_handle() {
                    return err(StatusCode::Failure);
                }
                let handle = self.handle(Open::Dir {
                    path: p,
                    done: false,
                });
                Packet::Handle(Handle { id, handle })
            }
            Packet::ReadDir(r) => {
                let dir = match self.handles.get_mut(&r.handle) {
                    Some(Open::Dir { path, done }) if !*done => {
                        *done = true;
                        path.clone()
                    }
                    Some(Open::Dir { .. }) => return err(StatusCode::Eof),
                    _ => return err(StatusCode::Failure),
                };
                Packet::Name(Name {
                    id,
                    files: self.listing(&dir),
                })
            }
            Packet::MkDir(m) => {
                let p = path(&m.path);
                if self.attrs_of(&p).is_some() {
                    return err(StatusCode::Failure);
                }
                if self.dirs.len() < MAX_DIRS {
                    self.dirs.insert(p);
                }
                ok()
            }
            Packet::RmDir(r) => {
                self.dirs.remove(&path(&r.path));
                ok()
            }
            Packet::Remove(r) => match self.uploads.forget(&path(&r.filename)) {
                Some(_) => ok(),
                None => err(StatusCode::NoSuchFile),
            },
            Packet::Rename(r) => {
                let (from, to) = (path(&r.oldpath), path(&r.newpath));
                match self.uploads.forget(&from) {
                    Some(k) => {
                        self.uploads.remember(&to, k);
                        ok()
                    }
                    None if self.dirs.remove(&from) => {
                        self.dirs.insert(to);
                        ok()
                    }
                    None => err(StatusCode::NoSuchFile),
                }
            }
            Packet::SetStat(_) | Packet::FSetStat(_) => ok(),
            Packet::ReadLink(_) => err(StatusCode::NoSuchFile),
            Packet::Symlink(_) => err(StatusCode::PermissionDenied),
            Packet::Extended(_) => err(StatusCode::OpUnsupported),
            _ => err(StatusCode::BadMessage),
        }
    }

    /// A directory's entries: the profile's, the directories made, the files uploaded.
    fn listing(&self, dir: &[u8]) -> Vec<File> {
        let mut names: std::collections::BTreeMap<Vec<u8>, FileAttributes> = Default::default();
        let join = |name: &[u8]| {
            let mut p = dir.to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            p
        };
        for (name, node) in self.fs.list(dir) {
            let a = if node.is_dir() {
                dir_attrs()
            } else {
                file_attrs(self.fs.file_len(&join(name)).unwrap_or(0) as u64)
            };
            names.insert(name.to_vec(), a);
        }
        for d in &self.dirs {
            if let Some(name) = d.strip_prefix(join(b"").as_slice()) {
                if !name.is_empty() && !name.contains(&b'/') {
                    names.insert(name.to_vec(), dir_attrs());
                }
            }
        }
        for (name, k) in self.uploads.list(dir) {
            names.insert(name, file_attrs(k.len));
        }
        let mut files = vec![entry(b".", dir_attrs()), entry(b"..", dir_attrs())];
        files.extend(names.into_iter().map(|(n, a)| entry(&n, a)));
        files
    }

    fn stat(&self, id: u32, p: &str) -> Packet {
        match self.attrs_of(&path(p)) {
            Some(attrs) => Packet::Attrs(Attrs { id, attrs }),
            None => Packet::error(id, StatusCode::NoSuchFile),
        }
    }
}

/// Finishes an upload, remembers it and records it.
async fn record(up: &Uploads, tx: &mpsc::Sender<EventKind>, path: &[u8], u: Upload) {
    let f = u.finish(up).await;
    up.remember(
        path,
        Kept {
            len: f.len,
            sha256: f.sha256.clone(),
            stored: f.stored.clone(),
        },
    );
    for ev in upload::events(path, &f) {
        let _ = tx.send(ev).await;
    }
}

async fn read_at(p: &std::path::Path, offset: u64, n: usize) -> std::io::Result<Vec<u8>> {
    let mut f = tokio::fs::File::open(p).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = f.read(&mut buf[got..]).await?;
        if k == 0 {
            break;
        }
        got += k;
    }
    buf.truncate(got);
    Ok(buf)
}

/// The absolute path a client means (relative paths are under /root).
fn path(p: &str) -> Vec<u8> {
    resolve(HOME, p.as_bytes())
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// 2023-10-01, a plausible install date.
const MTIME: u32 = 1_696_150_000;

fn attrs(mode: u32, size: u64) -> FileAttributes {
    FileAttributes {
        size: Some(size),
        uid: Some(0),
        user: Some("root".into()),
        gid: Some(0),
        group: Some("root".into()),
        permissions: Some(mode),
        atime: Some(MTIME),
        mtime: Some(MTIME),
    }
}

/// A directory entry with an `ls -l` style long name.
fn entry(name: &[u8], a: FileAttributes) -> File {
    let mode = a.permissions.unwrap_or(0);
    let kind = if mode & 0o170000 == 0o040000 {
        'd'
    } else {
        '-'
    };
    let mut perms = String::with_capacity(9);
    for i in (0..9).rev() {
        perms.push(if mode & (1 << i) == 0 {
            '-'
        } else {
            ['x', 'w', 'r'][i % 3]
        });
    }
    let links = if kind == 'd' { 2 } else { 1 };
    let name = text(name);
    let longname = format!(
        "{kind}{perms} {links:>3} root     root     {:>8} Oct  1 08:46 {name}",
        a.size.unwrap_or(0)
    );
    File {
        filename: name,
        longname,
        attrs: a,
    }
}

fn dir_attrs() -> FileAttributes {
    attrs(0o040755, 4096)
}

fn file_attrs(len: u64) -> FileAttributes {
    attrs(0o100644, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Profile;
    use russh_sftp::protocol::{Close, Fstat, Open as OpenReq, OpenDir, ReadDir, Stat, Write};

    fn server(max: u64) -> (Server, mpsc::Receiver<EventKind>) {
        let p = Profile::builtin("debian_server").unwrap();
        let (tx, rx) = mpsc::channel(16);
        let s = Server::new(
            Arc::new(Fs::from_profile(&p)),
            Arc::new(Uploads::new(max, None)),
            tx,
        );
        (s, rx)
    }

    fn open(id: u32, name: &str, pflags: OpenFlags) -> Packet {
        Packet::Open(OpenReq {
            id,
            filename: name.into(),
            pflags,
            attrs: FileAttributes::empty(),
        })
    }

    fn code(p: &Packet) -> Option<StatusCode> {
        match p {
            Packet::Status(s) => Some(s.status_code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn garbage_is_answered_and_an_oversized_packet_ends_the_subsystem() {
        let (s, _rx) = server(8);
        let (mut client, theirs) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(s.run(theirs));
        // Unknown type, then a truncated OPEN: each a BadMessage status.
        client.write_all(&[0, 0, 0, 1, 0xff]).await.unwrap();
        client
            .write_all(&[0, 0, 0, 6, 3, 0, 0, 0, 7, 0])
            .await
            .unwrap();
        for _ in 0..2 {
            let len = client.read_u32().await.unwrap();
            let mut b = vec![0; len as usize];
            client.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], 101, "SSH_FXP_STATUS");
            assert_eq!(&b[5..9], &[0, 0, 0, 5], "SSH_FX_BAD_MESSAGE");
        }
        client
            .write_all(&(MAX_PACKET + 1).to_be_bytes())
            .await
            .unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn write_close_record_stat_list_and_limits() {
        let (mut s, mut rx) = server(8);
        let w = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let Packet::Handle(h) = s.request(open(1, "x.bin", w)).await else {
            panic!("no handle")
        };
        let r = s
            .request(Packet::Write(Write {
                id: 2,
                handle: h.handle.clone(),
                offset: 0,
                data: b"abcdefghij".to_vec(),
            }))
            .await;
        assert_eq!(code(&r), Some(StatusCode::Ok));
        let Packet::Attrs(a) = s
            .request(Packet::Fstat(Fstat {
                id: 3,
                handle: h.handle.clone(),
            }))
            .await
        else {
            panic!("no attrs")
        };
        assert_eq!(a.attrs.size, Some(8));
        let r = s
            .request(Packet::Close(Close {
                id: 4,
                handle: h.handle,
            }))
            .await;
        assert_eq!(code(&r), Some(StatusCode::Ok));
        match rx.recv().await.unwrap() {
            EventKind::FileWrite { path, len, .. } => {
                assert_eq!((path.0.as_slice(), len), (b"/root/x.bin".as_slice(), 8))
            }
            e => panic!("{e:?}"),
        }
        assert!(
            matches!(rx.recv().await, Some(EventKind::RuleMatch { rule, .. }) if rule == "ssh.upload_truncated")
        );
        let Packet::Attrs(a) = s
            .request(Packet::Stat(Stat {
                id: 5,
                path: "/root/x.bin".into(),
            }))
            .await
        else {
            panic!("no attrs")
        };
        assert_eq!(a.attrs.size, Some(8));
        let Packet::Handle(d) = s
            .request(Packet::OpenDir(OpenDir {
                id: 6,
                path: "/root".into(),
            }))
            .await
        else {
            panic!("no dir handle")
        };
        let rd = |id| {
            Packet::ReadDir(ReadDir {
                id,
                handle: d.handle.clone(),
            })
        };
        let Packet::Name(n) = s.request(rd(7)).await else {
            panic!("no names")
        };
        assert!(n.files.iter().any(|f| f.filename == "x.bin"));
        assert_eq!(code(&s.request(rd(8)).await), Some(StatusCode::Eof));
        // Not stored: no reading back; unknown files do not exist.
        let r = s.request(open(9, "x.bin", OpenFlags::READ)).await;
        assert_eq!(code(&r), Some(StatusCode::PermissionDenied));
        let r = s.request(open(10, "/etc/shadow", OpenFlags::READ)).await;
        assert_eq!(code(&r), Some(StatusCode::NoSuchFile));
        // One dir handle is open: 63 more, then no more.
        for i in 0..upload::MAX_HANDLES - 1 {
            let r = s.request(open(11, &format!("f{i}"), w)).await;
            assert!(matches!(r, Packet::Handle(_)), "{i}");
        }
        let r = s.request(open(12, "one-too-many", w)).await;
        assert_eq!(code(&r), Some(StatusCode::Failure));
    }
}
