//! Files a client uploads over SCP or SFTP: hashed (SHA-256) as they come, cut at
//! `max_upload`, and, only when `store_uploads` is on, streamed to a temporary file in
//! `DATA_DIR/uploads` that is renamed to its SHA-256 once complete (stored once).
//!
//! Nothing is buffered in memory: without storage only the hash state is kept. One
//! connection may keep at most [`Uploads::budget`] bytes over all its files (a client
//! cannot fill the disk through one connection); beyond it files are cut like long ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use honeyport_event::{EventKind, Payload};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Files one connection remembers (for SFTP's stat, readdir and read-back).
pub const MAX_FILES: usize = 256;
/// SFTP handles one connection may hold open (each write handle may hold a file open).
pub const MAX_HANDLES: usize = 64;
/// A connection may keep this many times `max_upload` in total.
pub const BUDGET_FILES: u64 = 4;

/// One connection's uploads: the settings, what is left of its budget, what it uploaded.
pub struct Uploads {
    pub max: u64,
    pub dir: Option<PathBuf>,
    left: Mutex<u64>,
    files: Mutex<BTreeMap<Vec<u8>, Kept>>,
    /// SFTP handles open over all of the connection's sftp channels.
    handles: Mutex<usize>,
}

/// A finished upload, as remembered for the rest of the connection.
#[derive(Clone, Debug)]
pub struct Kept {
    pub len: u64,
    pub sha256: String,
    pub stored: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Uploads {
    pub fn new(max: u64, dir: Option<PathBuf>) -> Uploads {
        Uploads {
            max,
            dir,
            left: Mutex::new(Self::budget(max)),
            files: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(0),
        }
    }

    /// Takes one of the connection's [`MAX_HANDLES`] SFTP handles.
    pub fn take_handle(&self) -> bool {
        let mut h = lock(&self.handles);
        if *h >= MAX_HANDLES {
            return false;
        }
        *h += 1;
        true
    }

    pub fn put_handle(&self) {
        let mut h = lock(&self.handles);
        *h = h.saturating_sub(1);
    }

    /// Bytes one connection may keep over all its files.
    pub fn budget(max: u64) -> u64 {
        max.saturating_mul(BUDGET_FILES)
    }

    /// Takes up to `n` bytes from the budget; what was granted.
    fn take(&self, n: u64) -> u64 {
        let mut l = lock(&self.left);
        let g = n.min(*l);
        *l -= g;
        g
    }

    pub fn remember(&self, path: &[u8], k: Kept) {
        let mut f = lock(&self.files);
        if f.len() < MAX_FILES || f.contains_key(path) {
            f.insert(path.to_vec(), k);
        }
    }

    pub fn get(&self, path: &[u8]) -> Option<Kept> {
        lock(&self.files).get(path).cloned()
    }

    pub fn forget(&self, path: &[u8]) -> Option<Kept> {
        lock(&self.files).remove(path)
    }

    /// Remembered files directly inside `dir`, by name.
    pub fn list(&self, dir: &[u8]) -> Vec<(Vec<u8>, Kept)> {
        lock(&self.files)
            .iter()
            .filter_map(|(p, k)| {
                let i = p.iter().rposition(|&b| b == b'/')?;
                let parent: &[u8] = if i == 0 { b"/" } else { &p[..i] };
                (parent == dir).then(|| (p[i + 1..].to_vec(), k.clone()))
            })
            .collect()
    }

    /// A new upload (its temporary file when uploads are stored).
    pub async fn start(&self) -> Upload {
        let mut file = None;
        if let Some(dir) = &self.dir {
            let tmp = dir.join(format!(".part-{:016x}", rand::random::<u64>()));
            let made = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
                .await;
            match made {
                Ok(f) => file = Some((f, tmp)),
                Err(e) => tracing::warn!("ssh upload: cannot create {}: {e}", tmp.display()),
            }
        }
        Upload {
            file,
            pos: 0,
            hash: Sha256::new(),
            hashed: 0,
            len: 0,
            rehash: false,
            unordered: false,
            truncated: false,
        }
    }
}

/// One file on its way in.
pub struct Upload {
    /// The temporary file and its path (only when stored).
    file: Option<(tokio::fs::File, PathBuf)>,
    /// Where the file's cursor is.
    pos: u64,
    hash: Sha256,
    /// Bytes hashed so far, in order from offset 0.
    hashed: u64,
    /// Bytes kept (the furthest end written, within the caps).
    len: u64,
    /// Written out of order: the hash is made again from the stored file.
    rehash: bool,
    /// Written out of order without storage: the hash covers only the in-order start.
    unordered: bool,
    truncated: bool,
}

/// What an upload came to.
#[derive(Clone, Debug)]
pub struct Finished {
    pub sha256: String,
    pub len: u64,
    pub truncated: bool,
    pub unordered: bool,
    pub stored: Option<PathBuf>,
}

impl Upload {
    /// Bytes kept so far.
    pub fn kept(&self) -> u64 {
        self.len
    }

    /// Writes `data` at `offset`, keeping what fits under `max_upload` and the budget.
    pub async fn write_at(&mut self, up: &Uploads, offset: u64, data: &[u8]) {
        let end = offset.saturating_add(data.len() as u64);
        let mut keep_end = end.min(up.max);
        if keep_end > self.len {
            let grow = keep_end - self.len;
            let got = up.take(grow);
            keep_end = self.len + got;
        }
        if keep_end < end {
            self.truncated = true;
        }
        if keep_end <= offset {
            return;
        }
        let part = &data[..(keep_end - offset) as usize];
        let in_order = offset == self.hashed && !self.rehash && !self.unordered;
        if in_order {
            self.hash.update(part);
            self.hashed = keep_end;
        }
        if let Some((f, _)) = &mut self.file {
            let ok = async {
                if self.pos != offset {
                    f.seek(std::io::SeekFrom::Start(offset)).await?;
                }
                f.write_all(part).await
            }
            .await;
            match ok {
                Ok(()) => self.pos = keep_end,
                Err(e) => {
                    tracing::warn!("ssh upload: cannot write: {e}");
                    self.drop_file();
                }
            }
            if !in_order {
                self.rehash = true;
            }
        } else if !in_order {
            self.unordered = true;
        }
        if self.file.is_some() || in_order {
            self.len = self.len.max(keep_end);
        }
    }

    /// Appends in order (SCP).
    pub async fn write(&mut self, up: &Uploads, data: &[u8]) {
        let at = self.len;
        if self.truncated {
            return;
        }
        self.write_at(up, at, data).await;
    }

    /// Marks the upload as cut (the client announced more than was kept).
    pub fn set_truncated(&mut self) {
        self.truncated = true;
    }

    fn drop_file(&mut self) {
        if let Some((_, tmp)) = self.file.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// Hashes what was kept and, when stored, moves it to `uploads/SHA256` (once).
    pub async fn finish(mut self, up: &Uploads) -> Finished {
        let mut stored = None;
        if let Some((mut f, tmp)) = self.file.take() {
            let ok = async {
                f.flush().await?;
                if self.rehash {
                    f.seek(std::io::SeekFrom::Start(0)).await?;
                    let mut h = Sha256::new();
                    let mut left = self.len;
                    let mut buf = vec![0u8; 64 << 10];
                    while left > 0 {
                        let n = f.read(&mut buf[..(left.min(64 << 10)) as usize]).await?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        left -= n as u64;
                    }
                    self.hash = h;
                }
                f.sync_all().await
            }
            .await;
            drop(f);
            let sha = hex::encode(std::mem::take(&mut self.hash).finalize());
            match (ok, &up.dir) {
                (Ok(()), Some(dir)) => {
                    let dest = dir.join(&sha);
                    let done = if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                        tokio::fs::remove_file(&tmp).await
                    } else {
                        tokio::fs::rename(&tmp, &dest).await
                    };
                    match done {
                        Ok(()) => stored = Some(dest),
                        Err(e) => tracing::warn!("ssh upload: cannot store: {e}"),
                    }
                }
                (r, _) => {
                    if let Err(e) = r {
                        tracing::warn!("ssh upload: cannot store: {e}");
                    }
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
            }
            return Finished {
                sha256: sha,
                len: self.len,
                truncated: self.truncated,
                unordered: false,
                stored,
            };
        }
        Finished {
            sha256: hex::encode(std::mem::take(&mut self.hash).finalize()),
            len: self.len,
            truncated: self.truncated,
            unordered: self.unordered,
            stored,
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.drop_file();
    }
}

/// The events one finished upload is recorded as.
pub fn events(path: &[u8], f: &Finished) -> Vec<EventKind> {
    let mut v = vec![EventKind::FileWrite {
        path: Payload(path.to_vec()),
        sha256: f.sha256.clone(),
        len: f.len,
    }];
    for (on, rule) in [
        (f.truncated, "ssh.upload_truncated"),
        (f.unordered, "ssh.upload_unordered"),
    ] {
        if on {
            v.push(EventKind::RuleMatch {
                rule: rule.into(),
                action: "tag".into(),
                match_len: f.len,
            });
        }
    }
    v
}

/// Makes `DATA_DIR/uploads` (and removes temporary files a previous run left).
pub fn prepare_dir(data_dir: &Path) -> Result<PathBuf, String> {
    let dir = data_dir.join("uploads");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".part-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[tokio::test]
    async fn hashed_cut_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let up = Uploads::new(4, Some(dir.path().to_path_buf()));
        let mut u = up.start().await;
        u.write(&up, b"abc").await;
        u.write(&up, b"def").await;
        let f = u.finish(&up).await;
        assert_eq!((f.len, f.truncated), (4, true));
        assert_eq!(f.sha256, sha(b"abcd"));
        assert_eq!(std::fs::read(f.stored.unwrap()).unwrap(), b"abcd");
        // Out of order with storage: hashed from the file.
        let mut u = up.start().await;
        u.write_at(&up, 2, b"cd").await;
        u.write_at(&up, 0, b"ab").await;
        let f = u.finish(&up).await;
        assert_eq!(f.sha256, sha(b"abcd"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "stored once"
        );
        // The budget (4 x 4 bytes) is spent: 8 so far, 8 more at most.
        let mut u = up.start().await;
        u.write_at(&up, 0, b"wxyz").await;
        let mut v = up.start().await;
        v.write_at(&up, 0, b"12345").await;
        let (f, g) = (u.finish(&up).await, v.finish(&up).await);
        assert_eq!((f.len, g.len, g.truncated), (4, 4, true));
        let mut w = up.start().await;
        w.write(&up, b"more").await;
        let f = w.finish(&up).await;
        assert_eq!((f.len, f.truncated), (0, true));
    }

    #[tokio::test]
    async fn without_storage_only_in_order_bytes_are_hashed() {
        let up = Uploads::new(100, None);
        let mut u = up.start().await;
        u.write_at(&up, 0, b"ab").await;
        u.write_at(&up, 5, b"zz").await;
        let f = u.finish(&up).await;
        assert!(f.unordered && f.stored.is_none());
        assert_eq!((f.len, f.sha256), (2, sha(b"ab")));
    }
}
