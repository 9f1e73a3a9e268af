//! The per-session in-memory filesystem: the profile's tree plus whatever the peer writes,
//! capped in bytes and entries so a peer cannot grow it without bound.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::profile::Profile;

/// Bytes the peer may store in one session's filesystem (sum of the files it wrote). Large
/// enough for any echo dropper seen in the wild (tens of KiB), small enough that 10k sessions
/// cannot exhaust memory.
pub const MAX_FS_BYTES: usize = 1 << 20;
/// Entries (files and directories) a session may add beyond the profile's tree.
pub const MAX_FS_ENTRIES: usize = 256;

#[derive(Clone, Debug)]
pub enum Data {
    /// From the profile; shared by every session.
    Shared(Arc<[u8]>),
    /// Written by this session; counts towards [`MAX_FS_BYTES`].
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Shared(a) => a,
            Data::Owned(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Node {
    Dir,
    File { data: Data, exec: bool },
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir)
    }
}

/// Why a filesystem operation failed; the shell turns it into the profile's error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    NotDir,
    IsDir,
    NoSpace,
    NotEmpty,
}

impl FsError {
    /// The strerror text.
    pub fn text(self) -> &'static str {
        match self {
            FsError::NotFound => "No such file or directory",
            FsError::NotDir => "Not a directory",
            FsError::IsDir => "Is a directory",
            FsError::NoSpace => "No space left on device",
            FsError::NotEmpty => "Directory not empty",
        }
    }
}

/// Normalises `path` against `cwd` into an absolute path without `.`, `..` or double slashes.
pub fn resolve(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let full = if path.starts_with(b"/") {
        path.split(|&b| b == b'/').collect::<Vec<_>>()
    } else {
        cwd.split(|&b| b == b'/')
            .chain(path.split(|&b| b == b'/'))
            .collect()
    };
    for p in full {
        match p {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len() + cwd.len() + 1);
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
}

/// The last component of a path.
pub fn basename(path: &[u8]) -> &[u8] {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// One session's filesystem. Paths are absolute and normalised (see [`resolve`]).
#[derive(Clone, Debug)]
pub struct Fs {
    nodes: BTreeMap<Vec<u8>, Node>,
    /// Bytes in `Owned` files.
    used: usize,
    /// Entry count allowed: the profile's plus [`MAX_FS_ENTRIES`].
    max_entries: usize,
}

impl Fs {
    pub fn from_profile(p: &Profile) -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert(b"/".to_vec(), Node::Dir);
        let add_dirs = |nodes: &mut BTreeMap<Vec<u8>, Node>, path: &[u8]| {
            let mut d = path;
            while d != b"/" {
                nodes.entry(d.to_vec()).or_insert(Node::Dir);
                d = parent(d);
            }
        };
        for d in &p.dirs {
            add_dirs(&mut nodes, &resolve(b"/", d.as_bytes()));
        }
        for (path, data) in &p.files {
            let path = resolve(b"/", path.as_bytes());
            add_dirs(&mut nodes, parent(&path));
            let exec = p.commands.iter().any(|c| c.as_bytes() == path.as_slice());
            nodes.insert(
                path,
                Node::File {
                    data: Data::Shared(data.clone()),
                    exec,
                },
            );
        }
        add_dirs(&mut nodes, &resolve(b"/", p.home.as_bytes()));
        let max_entries = nodes.len() + MAX_FS_ENTRIES;
        Fs {
            nodes,
            used: 0,
            max_entries,
        }
    }

    /// Bytes the session has stored.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    pub fn entries(&self) -> usize {
        self.nodes.len()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn is_dir(&self, path: &[u8]) -> bool {
        matches!(self.nodes.get(path), Some(Node::Dir))
    }

    /// A file's contents.
    pub fn read(&self, path: &[u8]) -> Result<&[u8], FsError> {
        if path == b"/dev/null" || path == b"/dev/zero" {
            return Ok(b"");
        }
        match self.nodes.get(path) {
            None => Err(FsError::NotFound),
            Some(Node::Dir) => Err(FsError::IsDir),
            Some(Node::File { data, .. }) => Ok(data.bytes()),
        }
    }

    /// Whether the file was written by this session (as opposed to coming from the profile).
    pub fn is_session_file(&self, path: &[u8]) -> bool {
        matches!(
            self.nodes.get(path),
            Some(Node::File {
                data: Data::Owned(_),
                ..
            })
        )
    }

    fn check_parent(&self, path: &[u8]) -> Result<(), FsError> {
        match self.nodes.get(parent(path)) {
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(FsError::NotDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Writes (or appends) `bytes`. Stores what fits and returns `NoSpace` when the session's
    /// byte cap is reached, like a full disk. `/dev/null` swallows everything.
    pub fn write(&mut self, path: &[u8], bytes: &[u8], append: bool) -> Result<(), FsError> {
        if path == b"/dev/null" {
            return Ok(());
        }
        if path.starts_with(b"/proc/") || path.starts_with(b"/sys/") {
            // Pseudo files: the write is accepted and has no effect.
            return Ok(());
        }
        self.check_parent(path)?;
        let existing = self.nodes.get(path);
        if matches!(existing, Some(Node::Dir)) {
            return Err(FsError::IsDir);
        }
        if existing.is_none() && self.nodes.len() >= self.max_entries {
            return Err(FsError::NoSpace);
        }
        let (mut data, exec) = match self.nodes.remove(path) {
            Some(Node::File {
                data: Data::Owned(v),
                exec,
            }) => {
                self.used -= v.len();
                (v, exec)
            }
            Some(Node::File {
                data: Data::Shared(a),
                exec,
            }) => (a.to_vec(), exec),
            _ => (Vec::new(), false),
        };
        if !append {
            data.clear();
        }
        let room = MAX_FS_BYTES.saturating_sub(self.used + data.len());
        let n = bytes.len().min(room);
        data.extend_from_slice(&bytes[..n]);
        if self.used + data.len() > MAX_FS_BYTES {
            // A profile file copied on append can exceed the room on its own: cut it.
            data.truncate(MAX_FS_BYTES - self.used);
        }
        self.used += data.len();
        self.nodes.insert(
            path.to_vec(),
            Node::File {
                data: Data::Owned(data),
                exec,
            },
        );
        if n < bytes.len() {
            return Err(FsError::NoSpace);
        }
        Ok(())
    }

    pub fn mkdir(&mut self, path: &[u8], parents: bool) -> Result<(), FsError> {
        match self.nodes.get(path) {
            Some(Node::Dir) if parents => return Ok(()),
            Some(_) => return Err(FsError::NotEmpty), // "File exists" is reported by the caller
            None => {}
        }
        if !parents {
            self.check_parent(path)?;
            if self.nodes.len() >= self.max_entries {
                return Err(FsError::NoSpace);
            }
            self.nodes.insert(path.to_vec(), Node::Dir);
            return Ok(());
        }
        // Count the missing ancestors first (a 64 KiB path has 32k of them: never copy or
        // recurse over them all), then create them top down.
        let room = self.max_entries.saturating_sub(self.nodes.len());
        let mut missing = 0;
        let mut d = path;
        while !self.nodes.contains_key(d) {
            missing += 1;
            if missing > room {
                return Err(FsError::NoSpace);
            }
            d = parent(d);
        }
        if !self.is_dir(d) {
            return Err(FsError::NotDir);
        }
        let mut todo = Vec::with_capacity(missing);
        let mut d = path;
        while !self.nodes.contains_key(d) {
            todo.push(d.to_vec());
            d = parent(d);
        }
        for m in todo.into_iter().rev() {
            self.nodes.insert(m, Node::Dir);
        }
        Ok(())
    }

    /// Removes a file, or a directory with everything below it when `recursive`.
    pub fn remove(&mut self, path: &[u8], recursive: bool) -> Result<(), FsError> {
        match self.nodes.get(path) {
            None => Err(FsError::NotFound),
            Some(Node::Dir) if !recursive => Err(FsError::IsDir),
            Some(Node::Dir) => {
                if path == b"/" {
                    // `rm -rf /`: pretend, keep the tree (a dead honeypot records nothing).
                    return Ok(());
                }
                let mut prefix = path.to_vec();
                prefix.push(b'/');
                let doomed: Vec<Vec<u8>> = self
                    .nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone())
                    .chain(std::iter::once(path.to_vec()))
                    .collect();
                for k in doomed {
                    self.remove_one(&k);
                }
                Ok(())
            }
            Some(Node::File { .. }) => {
                self.remove_one(path);
                Ok(())
            }
        }
    }

    fn remove_one(&mut self, path: &[u8]) {
        if let Some(Node::File {
            data: Data::Owned(v),
            ..
        }) = self.nodes.remove(path)
        {
            self.used -= v.len();
        }
    }

    pub fn set_exec(&mut self, path: &[u8], on: bool) -> Result<(), FsError> {
        match self.nodes.get_mut(path) {
            None => Err(FsError::NotFound),
            Some(Node::Dir) => Ok(()),
            Some(Node::File { exec, .. }) => {
                *exec = on;
                Ok(())
            }
        }
    }

    /// The entries directly inside directory `dir`, sorted by name.
    pub fn list(&self, dir: &[u8]) -> Vec<(&[u8], &Node)> {
        let mut prefix = dir.to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains(&b'/') && k.len() > prefix.len())
            .map(|(k, v)| (&k[prefix.len()..], v))
            .collect()
    }

    /// Every file's size; for tests and the fuzz target.
    pub fn file_len(&self, path: &[u8]) -> Option<usize> {
        self.read(path).ok().map(<[u8]>::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Fs {
        Fs::from_profile(&Profile::builtin("busybox_router").unwrap())
    }

    #[test]
    fn resolve_handles_dots_and_slashes() {
        assert_eq!(resolve(b"/tmp", b"x"), b"/tmp/x");
        assert_eq!(resolve(b"/tmp", b"../etc//passwd"), b"/etc/passwd");
        assert_eq!(resolve(b"/", b"../../.."), b"/");
        assert_eq!(resolve(b"/a/b", b"./c/./"), b"/a/b/c");
        assert_eq!(resolve(b"/a", b"/x/../y"), b"/y");
    }

    #[test]
    fn profile_tree_is_there() {
        let f = fs();
        assert!(f.is_dir(b"/proc"));
        assert!(f.read(b"/proc/cpuinfo").unwrap().starts_with(b"processor"));
        assert_eq!(f.read(b"/tmp"), Err(FsError::IsDir));
        assert!(f.list(b"/").iter().any(|(n, _)| *n == b"tmp"));
        assert!(!f.list(b"/").iter().any(|(n, _)| n.contains(&b'/')));
        assert_eq!(f.used_bytes(), 0);
    }

    #[test]
    fn writes_count_and_cap() {
        let mut f = fs();
        f.write(b"/tmp/a", b"hello", false).unwrap();
        f.write(b"/tmp/a", b" world", true).unwrap();
        assert_eq!(f.read(b"/tmp/a").unwrap(), b"hello world");
        assert_eq!(f.used_bytes(), 11);
        f.write(b"/tmp/a", b"x", false).unwrap();
        assert_eq!(f.used_bytes(), 1);
        let big = vec![0u8; MAX_FS_BYTES];
        assert_eq!(f.write(b"/tmp/b", &big, false), Err(FsError::NoSpace));
        assert_eq!(f.used_bytes(), MAX_FS_BYTES);
        assert_eq!(f.file_len(b"/tmp/b"), Some(MAX_FS_BYTES - 1));
        f.remove(b"/tmp/b", false).unwrap();
        assert_eq!(f.used_bytes(), 1);
        assert_eq!(f.write(b"/nope/x", b"1", false), Err(FsError::NotFound));
        assert_eq!(f.write(b"/tmp", b"1", false), Err(FsError::IsDir));
    }

    #[test]
    fn entry_count_is_capped() {
        let mut f = fs();
        let mut refused = false;
        for i in 0..MAX_FS_ENTRIES + 10 {
            if f.write(format!("/tmp/{i}").as_bytes(), b"", false).is_err() {
                refused = true;
            }
        }
        assert!(refused);
        assert_eq!(f.entries(), f.max_entries());
    }

    #[test]
    fn mkdir_p_of_a_very_deep_path_is_refused_without_recursion() {
        let mut f = fs();
        let deep = "/a".repeat(32 * 1024);
        assert_eq!(f.mkdir(deep.as_bytes(), true), Err(FsError::NoSpace));
        f.mkdir(b"/tmp/x/y/z", true).unwrap();
        assert!(f.is_dir(b"/tmp/x/y"));
        assert_eq!(f.mkdir(b"/tmp/q/r", false), Err(FsError::NotFound));
        f.write(b"/tmp/file", b"", false).unwrap();
        assert_eq!(f.mkdir(b"/tmp/file/r", true), Err(FsError::NotDir));
    }

    #[test]
    fn recursive_remove_takes_children_only() {
        let mut f = fs();
        f.mkdir(b"/tmp/d/e", true).unwrap();
        f.write(b"/tmp/d/e/x", b"12", false).unwrap();
        f.write(b"/tmp/dd", b"3", false).unwrap();
        assert_eq!(f.remove(b"/tmp/d", false), Err(FsError::IsDir));
        f.remove(b"/tmp/d", true).unwrap();
        assert!(f.get(b"/tmp/d/e/x").is_none());
        assert_eq!(f.read(b"/tmp/dd").unwrap(), b"3");
        assert_eq!(f.used_bytes(), 1);
    }
}
