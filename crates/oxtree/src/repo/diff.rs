//! Comparing trees (`ostree diff`) and checksumming files on disk (`ostree checksum`).
//!
//! Either side of a diff is a commit or a directory on disk. The walk is ostree's
//! (`ostree_diff_dirs`): children of A in A's order — missing in B is removed, a different
//! type (directory vs not) or checksum is modified, directories of the same type recurse —
//! then children of B missing in A are added, with everything under an added directory.
//! Directories compare by their metadata (dirmeta) checksum, so a directory is "modified"
//! only when its own mode, owner or xattrs change. A commit's entries are listed in dirtree
//! order (files, then directories); a directory on disk in `readdir` order, as ostree does.
//! Paths inside a commit print as `/a/b`, paths on disk relative to the directory given.

use super::Repo;
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, DirMeta, FileHeader, ObjectType};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One side of a diff.
#[derive(Debug, Clone)]
pub enum DiffSide {
    Commit(Checksum),
    Dir(PathBuf),
}

/// How files on disk are checksummed (`ostree diff`/`checksum` options).
#[derive(Debug, Clone, Default)]
pub struct LocalChecksumOptions {
    /// Leave extended attributes out (`--no-xattrs`, `--ignore-xattrs`).
    pub ignore_xattrs: bool,
    /// Take files on disk as owned by this uid/gid (`--owner-uid`, `--owner-gid`).
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
}

/// The result of a diff: paths as ostree prints them (see the module doc), each list in walk
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub modified: Vec<String>,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

/// A directory entry on one side of the walk.
#[derive(Clone)]
enum Node {
    /// A file object in a commit.
    RepoFile(Checksum),
    /// A directory in a commit: (dirtree, dirmeta).
    RepoDir(Checksum, Checksum),
    /// A path on disk, and whether it is a directory.
    Local(PathBuf, bool),
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self, Node::RepoDir(..) | Node::Local(_, true))
    }
}

/// The checksum of a file or directory on disk as an object: a content object for files and
/// symlinks, a dirmeta object for directories. Anything else (devices, FIFOs) is refused.
pub fn checksum_local(path: &Path, opts: &LocalChecksumOptions) -> Result<(ObjectType, Checksum)> {
    let md = std::fs::symlink_metadata(path).ctx("stat", path)?;
    let xattrs = if opts.ignore_xattrs {
        Vec::new()
    } else {
        crate::fsutil::read_xattrs(path)?
    };
    let uid = opts.owner_uid.unwrap_or(md.uid());
    let gid = opts.owner_gid.unwrap_or(md.gid());
    let ft = md.file_type();
    if ft.is_dir() {
        let dm = DirMeta {
            uid,
            gid,
            mode: md.mode(),
            xattrs,
        };
        return Ok((ObjectType::DirMeta, dm.checksum()));
    }
    if !(ft.is_file() || ft.is_symlink()) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            msg: "not a regular file, symbolic link or directory".into(),
        });
    }
    let symlink_target = if ft.is_symlink() {
        std::fs::read_link(path)
            .ctx("readlink", path)?
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    let header = FileHeader {
        uid,
        gid,
        mode: md.permissions().mode(),
        symlink_target,
        xattrs,
    };
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(header.content_stream_prefix());
    if ft.is_file() {
        let mut f = std::fs::File::open(path).ctx("open", path)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).ctx("read", path)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok((ObjectType::File, Checksum(h.finalize().into())))
}

impl Repo {
    /// Compare two trees as `ostree diff A B` does (see the module doc).
    pub fn diff(&self, a: &DiffSide, b: &DiffSide, opts: &LocalChecksumOptions) -> Result<Diff> {
        let root = |s: &DiffSide| -> Result<(Node, String)> {
            Ok(match s {
                DiffSide::Commit(c) => {
                    let cm = self.load_commit(c)?;
                    (Node::RepoDir(cm.root_tree, cm.root_meta), String::new())
                }
                DiffSide::Dir(p) => {
                    let md = std::fs::metadata(p).ctx("stat", p)?;
                    if !md.is_dir() {
                        return Err(Error::InvalidArgument(format!(
                            "{}: not a directory",
                            p.display()
                        )));
                    }
                    (Node::Local(p.clone(), true), String::new())
                }
            })
        };
        let (ra, pa) = root(a)?;
        let (rb, pb) = root(b)?;
        let mut w = Walk {
            repo: self,
            opts,
            out: Diff::default(),
        };
        w.dirs(&ra, &pa, &rb, &pb)?;
        Ok(w.out)
    }
}

struct Walk<'a> {
    repo: &'a Repo,
    opts: &'a LocalChecksumOptions,
    out: Diff,
}

impl Walk<'_> {
    /// The children of a directory node, in ostree's enumeration order.
    fn children(&self, n: &Node) -> Result<Vec<(String, Node)>> {
        match n {
            Node::RepoDir(tree, _) => {
                let dt = self.repo.load_dirtree(tree)?;
                let mut v: Vec<(String, Node)> = dt
                    .files
                    .iter()
                    .map(|(name, c)| (name.clone(), Node::RepoFile(*c)))
                    .collect();
                v.extend(
                    dt.dirs
                        .iter()
                        .map(|(name, t, m)| (name.clone(), Node::RepoDir(*t, *m))),
                );
                Ok(v)
            }
            Node::Local(p, true) => {
                // GIO's enumerator reads 1000 entries at a time and sorts each batch by inode
                // number; ostree's output follows that order.
                use std::os::unix::fs::DirEntryExt;
                let mut v = Vec::new();
                let mut batch = Vec::new();
                let flush = |batch: &mut Vec<(u64, String, Node)>, v: &mut Vec<(String, Node)>| {
                    batch.sort_by_key(|e| e.0);
                    v.extend(batch.drain(..).map(|(_, n, node)| (n, node)));
                };
                for e in std::fs::read_dir(p).ctx("read directory", p)? {
                    let e = e.ctx("read directory", p)?;
                    let is_dir = e.file_type().ctx("stat", e.path())?.is_dir();
                    let name = e.file_name().to_string_lossy().into_owned();
                    batch.push((e.ino(), name, Node::Local(e.path(), is_dir)));
                    if batch.len() == 1000 {
                        flush(&mut batch, &mut v);
                    }
                }
                flush(&mut batch, &mut v);
                Ok(v)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// What decides "modified" between two nodes of the same kind: the object checksum
    /// (content object, or dirmeta for directories).
    fn checksum(&self, n: &Node) -> Result<Checksum> {
        Ok(match n {
            Node::RepoFile(c) => *c,
            Node::RepoDir(_, m) => *m,
            Node::Local(p, _) => checksum_local(p, self.opts)?.1,
        })
    }

    fn find(children: &[(String, Node)], name: &str) -> Option<Node> {
        children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, n)| n.clone())
    }

    fn path(parent: &str, name: &str, n: &Node) -> String {
        match n {
            Node::Local(..) if parent.is_empty() => name.to_string(),
            _ => format!("{parent}/{name}"),
        }
    }

    fn dirs(&mut self, a: &Node, pa: &str, b: &Node, pb: &str) -> Result<()> {
        crate::stack::check(|| pa.to_string())?;
        let ca = self.children(a)?;
        let cb = self.children(b)?;
        for (name, na) in &ca {
            let path_a = Self::path(pa, name, na);
            let Some(nb) = Self::find(&cb, name) else {
                self.out.removed.push(path_a);
                continue;
            };
            if na.is_dir() != nb.is_dir() {
                self.out.modified.push(path_a);
                continue;
            }
            if self.checksum(na)? != self.checksum(&nb)? {
                self.out.modified.push(path_a.clone());
            }
            if na.is_dir() {
                let path_b = Self::path(pb, name, &nb);
                self.dirs(na, &path_a, &nb, &path_b)?;
            }
        }
        for (name, nb) in &cb {
            if Self::find(&ca, name).is_none() {
                let path_b = Self::path(pb, name, nb);
                self.added(nb, path_b)?;
            }
        }
        Ok(())
    }

    /// An added entry, and everything under it when it is a directory (depth first).
    fn added(&mut self, n: &Node, path: String) -> Result<()> {
        crate::stack::check(|| path.clone())?;
        self.out.added.push(path.clone());
        if n.is_dir() {
            for (name, c) in self.children(n)? {
                let p = Self::path(&path, &name, &c);
                self.added(&c, p)?;
            }
        }
        Ok(())
    }
}
