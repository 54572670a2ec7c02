//! Committing a directory into the repo (`ostree commit`): scan the tree, hash and store
//! every file in parallel, then write dirtree/dirmeta objects bottom-up and the commit.
//!
//! Speed: each file is hashed *before* anything is written, and an object the repo already
//! has is never compressed or copied again (ostree compresses first, so re-committing an
//! unchanged tree costs it a full compression pass). Hardlinked files are hashed once.

use super::refs::RefName;
use super::{Repo, RepoMode, Transaction};
use crate::error::{Error, IoContext, Result};
use crate::gvariant::{Type, Value};
use crate::object::{
    validate_filename, Checksum, Commit, DirMeta, DirTree, FileHeader, ObjectType,
};
use rayon::prelude::*;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A statoverride entry (`--statoverride` file line `+MODE PATH` or `=MODE PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatOverride {
    /// Bits ORed into the mode.
    Add(u32),
    /// Permission bits replacing the mode's.
    Set(u32),
}

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub subject: String,
    pub body: String,
    /// Seconds since the epoch; now if `None`.
    pub timestamp: Option<u64>,
    pub parent: Option<Checksum>,
    /// Commit metadata in order (ref bindings are the caller's to add).
    pub metadata: Vec<(String, Value)>,
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
    pub canonical_permissions: bool,
    pub no_xattrs: bool,
    /// Paths (from the tree root, with a leading `/`) to leave out.
    pub skip_list: HashSet<String>,
    pub statoverride: HashMap<String, StatOverride>,
    /// Add `ostree.sizes` metadata.
    pub generate_sizes: bool,
    /// Updated per file stored (total = files found by the scan).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
    /// Sign the commit with these keys (ed25519, in the same transaction, before the ref).
    pub ed25519_keys: Vec<ed25519_dalek::SigningKey>,
    /// OpenPGP signatures to add, after the ed25519 ones and likewise before the ref moves
    /// (as `ostree commit --gpg-sign`): a key id (fingerprint suffix) and the secret keys
    /// to find it among. A signing failure fails the commit and leaves the ref alone.
    pub gpg_keys: Vec<(String, GpgSecretKeys)>,
}

/// OpenPGP secret keys as [`crate::sign::gpg::load_secret_keys`] returns them.
pub type GpgSecretKeys = Vec<pgp::composed::SignedSecretKey>;

impl Repo {
    /// Commit the tree in a tar archive. The archive is unpacked (ownership, modes and
    /// xattrs preserved) into the repo's `tmp/` and committed from there; the `tar` crate
    /// rejects entries that would escape the unpack directory.
    pub fn commit_tar(
        &self,
        tarfile: &Path,
        branch: Option<&RefName>,
        opts: &CommitOptions,
    ) -> Result<CommitResult> {
        let tmp = self.path().join("tmp");
        let dir = tempfile::Builder::new()
            .prefix(super::txn::TAR_IMPORT_PREFIX)
            // 0700: the unpacked tree keeps its owners and setuid bits until committed.
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&tmp)
            .ctx("create directory in", &tmp)?;
        // Held while in use: tmp/ cleanup removes an expired tar-import dir only when
        // nobody holds it (one left by a killed commit).
        let held = std::fs::File::open(dir.path()).ctx("open", dir.path())?;
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive)
            .ctx("lock", dir.path())?;
        // The tree's root: a plain 0755 directory (its metadata is the commit's root
        // dirmeta, as before), inside the private one.
        let root = dir.path().join("root");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&root)
            .ctx("create directory", &root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .ctx("chmod", &root)?;
        let f = std::fs::File::open(tarfile).ctx("open", tarfile)?;
        let mut ar = tar::Archive::new(std::io::BufReader::new(f));
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(rustix::process::geteuid().is_root());
        ar.set_unpack_xattrs(true);
        ar.set_overwrite(true);
        let terr = |e| Error::Io {
            op: "unpack tar archive",
            path: tarfile.to_path_buf(),
            source: e,
        };
        // The tar crate sets xattrs on regular files only: collect directories' from their
        // pax headers and apply them once everything is unpacked.
        let mut dir_xattrs = Vec::new();
        for entry in ar.entries().map_err(terr)? {
            let mut entry = entry.map_err(terr)?;
            if entry.header().entry_type() == tar::EntryType::Directory {
                let rel = entry.path().map_err(terr)?.into_owned();
                let mut xs = Vec::new();
                if let Some(exts) = entry.pax_extensions().map_err(terr)? {
                    for ext in exts {
                        let ext = ext.map_err(terr)?;
                        if let Some(name) =
                            ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr."))
                        {
                            xs.push((name.as_bytes().to_vec(), ext.value_bytes().to_vec()));
                        }
                    }
                }
                if !xs.is_empty() {
                    dir_xattrs.push((rel, xs));
                }
            }
            // unpack_in refuses paths that would escape the directory.
            entry.unpack_in(&root).map_err(terr)?;
        }
        for (rel, xs) in dir_xattrs {
            let target = root.join(&rel);
            if target.is_dir()
                && !rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                for (k, v) in xs {
                    crate::fsutil::lset_xattr(&target, &k, &v)?;
                }
            }
        }
        self.commit_dir(&root, branch, opts)
    }
}

/// What a commit wrote.
#[derive(Debug, Clone)]
pub struct CommitResult {
    pub commit: Checksum,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
    pub files: usize,
    pub files_written: usize,
}

struct FileTask {
    path: PathBuf,
    header: FileHeader,
    size: u64,
    /// (dev, ino) of regular files with several links, so hardlinks are hashed once.
    inode: Option<(u64, u64)>,
}

struct DirNode {
    meta: DirMeta,
    /// Sorted by name, as are `dirs`.
    files: Vec<(String, FileTask)>,
    dirs: Vec<(String, DirNode)>,
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Files up to this size are read into memory once and hashed/written from there.
const SMALL_FILE: u64 = 4 << 20;

impl Repo {
    /// Commit `root` and, if `branch` is given, point it at the new commit once the
    /// objects are durable, in the same transaction (under the repo lock). The parent is `opts.parent` (the CLI reads the branch head
    /// first, as `ostree commit` does).
    pub fn commit_dir(
        &self,
        root: &Path,
        branch: Option<&RefName>,
        opts: &CommitOptions,
    ) -> Result<CommitResult> {
        let txn = self.begin()?;
        let res = commit_in_txn(&txn, root, opts)?;
        if let Some(b) = branch {
            // Moved inside the transaction, before the repo lock is released: a prune
            // waiting for it then sees the new commit referenced.
            txn.set_ref(b, Some(&res.commit))?;
        }
        txn.commit()?;
        Ok(res)
    }
}

fn collect_files<'a>(d: &'a DirNode, out: &mut Vec<&'a FileTask>) {
    out.extend(d.files.iter().map(|(_, t)| t));
    for (_, sub) in &d.dirs {
        collect_files(sub, out);
    }
}

fn commit_in_txn(txn: &Transaction<'_>, root: &Path, opts: &CommitOptions) -> Result<CommitResult> {
    let repo = txn.repo();
    let canonical = opts.canonical_permissions || repo.mode() == RepoMode::BareUserOnly;
    let xattrs = !(opts.no_xattrs || canonical || repo.xattrs_disabled());
    let scan = Scanner {
        opts,
        canonical,
        xattrs,
    };
    let tree = scan.dir(root, "/")?;
    let mut files = Vec::new();
    collect_files(&tree, &mut files);
    let progress = opts.progress.as_deref();
    if let Some(p) = progress {
        p.add_total(files.len() as u64);
    }

    // Hardlinks with identical headers are hashed once: map each task to its first twin.
    let mut first_of: HashMap<((u64, u64), &FileHeader), usize> = HashMap::new();
    let mut canon: Vec<usize> = Vec::with_capacity(files.len());
    for (i, t) in files.iter().enumerate() {
        canon.push(match t.inode {
            Some(ino) => *first_of.entry((ino, &t.header)).or_insert(i),
            None => i,
        });
    }
    // Largest first, so one big file does not leave the other cores idle at the end.
    let mut order: Vec<usize> = (0..files.len())
        .filter(|&i| canon.get(i) == Some(&i))
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files.get(i).map_or(0, |t| t.size)));
    let stored: Vec<(usize, Checksum, bool)> = order
        .par_iter()
        .map(|&i| {
            let t = files
                .get(i)
                .ok_or_else(|| Error::Other("internal: bad file index".into()))?;
            let r = store_file(txn, t).map(|(c, w, _)| (i, c, w));
            if let Some(p) = progress {
                p.item(t.size);
            }
            r
        })
        .collect::<Result<_>>()?;
    let files_written = stored.iter().filter(|x| x.2).count();
    let mut csums = vec![Checksum::default(); files.len()];
    for (i, c, _) in &stored {
        if let Some(slot) = csums.get_mut(*i) {
            *slot = *c;
        }
    }
    for (i, &j) in canon.iter().enumerate() {
        if i != j {
            let c = csums.get(j).copied().unwrap_or_default();
            if let Some(slot) = csums.get_mut(i) {
                *slot = c;
            }
        }
    }
    let by_ptr: HashMap<*const FileTask, Checksum> = files
        .iter()
        .zip(&csums)
        .map(|(t, c)| (*t as *const FileTask, *c))
        .collect();
    let csum_of = |t: &FileTask| {
        by_ptr
            .get(&(t as *const FileTask))
            .copied()
            .unwrap_or_default()
    };

    // ostree records `ostree.sizes` only in archive repos, for every object of the tree
    // (new or not): stored = the .filez size, unpacked = file size or symlink target length.
    let generate_sizes = opts.generate_sizes && repo.mode() == RepoMode::Archive;
    let mut sizes: BTreeMap<Checksum, (u64, u64, ObjectType)> = BTreeMap::new();
    if generate_sizes {
        for t in &files {
            let c = csum_of(t);
            let unpacked = if t.header.is_symlink() {
                t.header.symlink_target.len() as u64
            } else {
                t.size
            };
            sizes.insert(
                c,
                (
                    txn.stored_size(ObjectType::File, &c)?,
                    unpacked,
                    ObjectType::File,
                ),
            );
        }
    }

    let (root_tree, root_meta) = write_dir(txn, &tree, &csum_of, &mut sizes, generate_sizes)?;
    let mut metadata = opts.metadata.clone();
    if generate_sizes {
        metadata.push(("ostree.sizes".into(), sizes_value(&sizes)));
    }
    let timestamp = opts.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let commit = Commit {
        metadata,
        parent: opts.parent,
        related: Vec::new(),
        subject: opts.subject.clone(),
        body: opts.body.clone(),
        timestamp,
        root_tree,
        root_meta,
    };
    let bytes = commit.encode();
    let csum = txn.write_metadata(ObjectType::Commit, &bytes)?;
    let mut meta: Option<Vec<u8>> = None;
    for k in &opts.ed25519_keys {
        meta = Some(crate::sign::append_signature(meta.as_deref(), &bytes, k)?);
    }
    for (id, keys) in &opts.gpg_keys {
        let sig = crate::sign::gpg::sign_detached(keys, id, &bytes)?;
        meta = Some(crate::sign::append_to_aay(
            meta.as_deref(),
            crate::sign::gpg::GPGSIGS_KEY,
            sig,
        )?);
    }
    if let Some(m) = meta {
        txn.write_metadata_as(ObjectType::CommitMeta, &csum, &m)?;
    }
    Ok(CommitResult {
        commit: csum,
        root_tree,
        root_meta,
        files: files.len(),
        files_written,
    })
}

/// Hash a file and store it if the repo lacks it. Returns (checksum, written, size).
fn store_file(txn: &Transaction<'_>, t: &FileTask) -> Result<(Checksum, bool, u64)> {
    let prefix = t.header.content_stream_prefix();
    if t.header.is_symlink() {
        let c = Checksum::digest(&prefix);
        let written = !txn.has_object(ObjectType::File, &c);
        if written {
            txn.write_file(&t.header, &mut std::io::empty(), 0, Some(&c))?;
        }
        return Ok((c, written, 0));
    }
    let open = || std::fs::File::open(&t.path).ctx("open", &t.path);
    let mut h = sha2::Sha256::new();
    h.update(&prefix);
    if t.size <= SMALL_FILE {
        // Exactly the size the scan saw (one read, no size probing); a file that shrank
        // meanwhile fails here, one that grew is committed as it was when scanned.
        let mut data = vec![0u8; t.size as usize];
        open()?.read_exact(&mut data).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Other(format!(
                "{}: file changed size while being committed",
                t.path.display()
            )),
            _ => Error::Io {
                op: "read",
                path: t.path.clone(),
                source: e,
            },
        })?;
        h.update(&data);
        let c = Checksum(h.finalize().into());
        let written = txn.write_file_prehashed(&t.header, &data, &c)?;
        return Ok((c, written, t.size));
    }
    let mut f = open()?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ctx("read", &t.path)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    let c = Checksum(h.finalize().into());
    if txn.has_object(ObjectType::File, &c) {
        return Ok((c, false, t.size));
    }
    // Large file: read it again while writing; `write_file` re-hashes, so a file that changed
    // in between fails the checksum instead of storing wrong content.
    txn.write_file(
        &t.header,
        &mut std::io::BufReader::with_capacity(1 << 20, open()?),
        t.size,
        Some(&c),
    )
    .map_err(|e| match e {
        Error::ChecksumMismatch { .. } => Error::Other(format!(
            "{}: file changed while being committed",
            t.path.display()
        )),
        e => e,
    })?;
    Ok((c, true, t.size))
}

fn write_dir(
    txn: &Transaction<'_>,
    d: &DirNode,
    csum_of: &dyn Fn(&FileTask) -> Checksum,
    sizes: &mut BTreeMap<Checksum, (u64, u64, ObjectType)>,
    track: bool,
) -> Result<(Checksum, Checksum)> {
    let mut tree = DirTree::default();
    for (name, t) in &d.files {
        tree.files.push((name.clone(), csum_of(t)));
    }
    for (name, sub) in &d.dirs {
        let (t, m) = write_dir(txn, sub, csum_of, sizes, track)?;
        tree.dirs.push((name.clone(), t, m));
    }
    let tb = tree.encode();
    let mb = d.meta.encode();
    let t = txn.write_metadata(ObjectType::DirTree, &tb)?;
    let m = txn.write_metadata(ObjectType::DirMeta, &mb)?;
    if track {
        sizes.insert(t, (tb.len() as u64, tb.len() as u64, ObjectType::DirTree));
        sizes.insert(m, (mb.len() as u64, mb.len() as u64, ObjectType::DirMeta));
    }
    Ok((t, m))
}

/// `ostree.sizes`: `aay`, each csum ‖ varint(stored size) ‖ varint(unpacked size) ‖ objtype,
/// sorted by checksum (spec §1.4).
fn sizes_value(sizes: &BTreeMap<Checksum, (u64, u64, ObjectType)>) -> Value {
    let items = sizes
        .iter()
        .map(|(c, (stored, unpacked, ty))| {
            let mut b = c.0.to_vec();
            varint(&mut b, *stored);
            varint(&mut b, *unpacked);
            b.push(*ty as u8);
            Value::Bytes(b)
        })
        .collect();
    Value::Array(Type::of("ay"), items)
}

/// An unsigned LEB128 varint (`ostree.sizes`, static delta op codes).
pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads the input tree. Subdirectories are scanned in parallel (stat and xattr listing
/// are a large share of a commit of many small files).
struct Scanner<'a> {
    opts: &'a CommitOptions,
    canonical: bool,
    xattrs: bool,
}

impl Scanner<'_> {
    /// Apply --owner-uid/gid and statoverride (the CLI filter), then canonical permissions,
    /// in ostree's order.
    fn modify(&self, relpath: &str, uid: u32, gid: u32, mode: u32) -> (u32, u32, u32) {
        let (mut uid, mut gid, mut mode) = (
            self.opts.owner_uid.unwrap_or(uid),
            self.opts.owner_gid.unwrap_or(gid),
            mode,
        );
        match self.opts.statoverride.get(relpath) {
            Some(StatOverride::Add(bits)) => mode |= bits,
            Some(StatOverride::Set(bits)) => mode = (mode & S_IFMT) | (bits & 0o7777),
            None => {}
        }
        if self.canonical {
            uid = 0;
            gid = 0;
            match mode & S_IFMT {
                S_IFLNK => {}
                t => mode = t | (mode & 0o755),
            }
        }
        (uid, gid, mode)
    }

    fn dir(&self, path: &Path, relpath: &str) -> Result<DirNode> {
        let st = std::fs::symlink_metadata(path).ctx("stat", path)?;
        if !st.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a directory",
                path.display()
            )));
        }
        let (uid, gid, mode) = self.modify(relpath, st.uid(), st.gid(), st.mode());
        let xattrs = if self.xattrs {
            crate::fsutil::read_xattrs(path)?
        } else {
            Vec::new()
        };
        let meta = DirMeta {
            uid,
            gid,
            mode,
            xattrs,
        };
        let mut children: Vec<(String, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(path).ctx("read directory", path)? {
            let e = e.ctx("read directory", path)?;
            let name = e.file_name().into_string().map_err(|n| {
                Error::InvalidArgument(format!(
                    "{}: file name {:?} is not valid UTF-8",
                    path.display(),
                    n
                ))
            })?;
            validate_filename(&name)
                .map_err(|m| Error::InvalidArgument(format!("{}: {m}", path.display())))?;
            children.push((name, e.path()));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for (name, child) in children {
            let rel = if relpath == "/" {
                format!("/{name}")
            } else {
                format!("{relpath}/{name}")
            };
            if self.opts.skip_list.contains(&rel) {
                continue;
            }
            let st = std::fs::symlink_metadata(&child).ctx("stat", &child)?;
            let ft = st.file_type();
            if ft.is_dir() {
                subdirs.push((name, child, rel));
                continue;
            }
            if !ft.is_file() && !ft.is_symlink() {
                return Err(Error::InvalidArgument(format!(
                    "{}: unsupported file type (device, FIFO or socket); add it to --skip-list",
                    child.display()
                )));
            }
            let (uid, gid, mode) = self.modify(&rel, st.uid(), st.gid(), st.mode());
            let symlink_target = if ft.is_symlink() {
                std::fs::read_link(&child)
                    .ctx("readlink", &child)?
                    .into_os_string()
                    .into_string()
                    .map_err(|t| {
                        Error::InvalidArgument(format!(
                            "{}: symlink target {:?} is not valid UTF-8",
                            child.display(),
                            t
                        ))
                    })?
            } else {
                String::new()
            };
            let xattrs = if self.xattrs {
                crate::fsutil::read_xattrs(&child)?
            } else {
                Vec::new()
            };
            let header = FileHeader {
                uid,
                gid,
                mode,
                symlink_target,
                xattrs,
            };
            let inode = (ft.is_file() && st.nlink() > 1).then(|| (st.dev(), st.ino()));
            files.push((
                name,
                FileTask {
                    path: child,
                    size: if ft.is_file() { st.len() } else { 0 },
                    header,
                    inode,
                },
            ));
        }
        let dirs = subdirs
            .into_par_iter()
            .map(|(name, child, rel)| self.dir(&child, &rel).map(|d| (name, d)))
            .collect::<Result<Vec<_>>>()?;
        Ok(DirNode { meta, files, dirs })
    }
}
