//! Committing trees into the repo (`ostree commit`). A commit is assembled in a mutable
//! tree (ostree's `OstreeMutableTree`) from one or more sources, later ones laid over
//! earlier ones: a directory (`--tree=dir=`, or the PATH argument), a tar archive
//! (`--tree=tar=`, streamed: nothing is unpacked to disk) and a commit of the repo
//! (`--tree=ref=`, or `--base`, kept as its dirtree checksums until something below
//! changes). Directories merge (the later one's metadata wins), files replace files, and a
//! file never replaces a directory or the reverse (ostree's errors). The commit modifier —
//! owner, statoverride, skip list, canonical permissions, read-only executables — applies
//! to every source but `--base`, as in ostree.
//!
//! Speed: each file of a directory source is hashed *before* anything is written, in
//! parallel, and an object the repo already has is never compressed or copied again
//! (ostree compresses first, so re-committing an unchanged tree costs it a full compression
//! pass). Hardlinked files are hashed once; with `--link-checkout-speedup` a file that is a
//! hardlink of a repo object is not read at all.
//!
//! Commit metadata is the caller's (in order), but `--bootable` adds `ostree.bootable` and
//! `ostree.linux` through a `GVariantDict` in ostree, which reorders every key: the same is
//! done here ([`crate::gvariant::glib_dict_order`]) so checksums match ostree's.

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
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A statoverride entry (`--statoverride` file line `+MODE PATH` or `=MODE PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatOverride {
    /// Bits ORed into the mode.
    Add(u32),
    /// Permission bits replacing the mode's.
    Set(u32),
}

/// One `--tree`: what to lay over the tree assembled so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    Dir(PathBuf),
    Tar(PathBuf),
    Ref(Checksum),
}

/// How files that are hardlinks of repo objects are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Devino {
    /// Every file is read and hashed.
    #[default]
    Off,
    /// `--link-checkout-speedup`: a hardlink of a repo object is that object, unless a
    /// commit modifier is in effect.
    Speedup,
    /// `--devino-canonical`: a hardlink of a repo object is that object, always.
    Canonical,
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
    /// Detached metadata (before any signature), in order.
    pub detached_metadata: Vec<(String, Value)>,
    /// `--base`: start from this commit's tree (no modifier applies to it).
    pub base: Option<Checksum>,
    pub owner_uid: Option<u32>,
    pub owner_gid: Option<u32>,
    pub canonical_permissions: bool,
    /// `--consume`: the tree's files may be taken into a bare or bare-user-only repository
    /// as they are (linked, not copied) where their metadata is what the object needs.
    pub consume: bool,
    pub no_xattrs: bool,
    /// `--mode-ro-executables`: executable files lose their write bits.
    pub mode_ro_executables: bool,
    /// Paths (from the tree root, with a leading `/`) to leave out.
    pub skip_list: HashSet<String>,
    pub statoverride: HashMap<String, StatOverride>,
    /// Add `ostree.sizes` metadata.
    pub generate_sizes: bool,
    /// Add `ostree.bootable` and `ostree.linux` (the kernel version in usr/lib/modules).
    pub bootable: bool,
    /// Do not write a commit whose tree is the parent's; the result is the parent.
    pub skip_if_unchanged: bool,
    /// `--tar-autocreate-parents`: tar entries whose parent directories are not in the
    /// archive get them (0755, the entry's owner).
    pub tar_autocreate_parents: bool,
    /// `--tar-pathname-filter`: every match of the regex in an entry's path is replaced
    /// (the replacement's `\N` are the groups, as in GLib's `g_regex_replace`).
    pub tar_pathname_filter: Option<(regex::Regex, String)>,
    pub devino: Devino,
    /// Updated per file stored (total = files found by the scan).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
    /// Sign the commit with these keys (ed25519, in the same transaction, before the ref).
    pub ed25519_keys: Vec<ed25519_dalek::SigningKey>,
    /// `--sign-type=dummy` keys (ostree's test signature type).
    pub dummy_keys: Vec<String>,
    /// OpenPGP signatures to add, after the ed25519 ones and likewise before the ref moves
    /// (as `ostree commit --gpg-sign`): a key id (fingerprint suffix) and the secret keys
    /// to find it among. A signing failure fails the commit and leaves the ref alone.
    pub gpg_keys: Vec<(String, GpgSecretKeys)>,
}

impl CommitOptions {
    /// Whether ostree would build a commit modifier (and so walk `ref=` trees file by file).
    fn has_modifier(&self) -> bool {
        self.owner_uid.is_some()
            || self.owner_gid.is_some()
            || !self.statoverride.is_empty()
            || !self.skip_list.is_empty()
            || self.canonical_permissions
            || self.no_xattrs
            || self.mode_ro_executables
    }
}

/// What signs as an OpenPGP key: see [`crate::sign::gpg::GpgSigner`].
pub type GpgSecretKeys = crate::sign::gpg::GpgSigner;

/// ostree's transaction statistics (`--table-output`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub metadata_total: usize,
    pub metadata_written: usize,
    pub content_total: usize,
    pub content_written: usize,
    pub content_cache_hits: usize,
    pub content_bytes_written: u64,
}

/// What a commit wrote.
#[derive(Debug, Clone)]
pub struct CommitResult {
    /// The new commit, or the parent when `skip_if_unchanged` found the same tree.
    pub commit: Checksum,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
    /// Content objects the sources brought in, and how many were new.
    pub files: usize,
    pub files_written: usize,
    /// No commit was written (`skip_if_unchanged`).
    pub skipped: bool,
    pub stats: CommitStats,
}

impl Repo {
    /// Commit the tree in a tar archive (see [`Repo::commit_trees`]).
    pub fn commit_tar(
        &self,
        tarfile: &Path,
        branch: Option<&RefName>,
        opts: &CommitOptions,
    ) -> Result<CommitResult> {
        self.commit_trees(&[TreeSource::Tar(tarfile.to_path_buf())], branch, opts)
    }

    /// Commit `root` (see [`Repo::commit_trees`]).
    pub fn commit_dir(
        &self,
        root: &Path,
        branch: Option<&RefName>,
        opts: &CommitOptions,
    ) -> Result<CommitResult> {
        self.commit_trees(&[TreeSource::Dir(root.to_path_buf())], branch, opts)
    }

    /// Commit the tree `sources` make, each laid over the ones before (and over
    /// `opts.base`), and, if `branch` is given, point it at the new commit once the objects
    /// are durable, in the same transaction (under the repo lock). The parent is
    /// `opts.parent` (the CLI reads the branch head first, as `ostree commit` does).
    pub fn commit_trees(
        &self,
        sources: &[TreeSource],
        branch: Option<&RefName>,
        opts: &CommitOptions,
    ) -> Result<CommitResult> {
        let txn = self.begin()?;
        let res = commit_in_txn(&txn, sources, opts)?;
        if let (Some(b), false) = (branch, res.skipped) {
            // Moved inside the transaction, before the repo lock is released: a prune
            // waiting for it then sees the new commit referenced.
            txn.set_ref(b, Some(&res.commit))?;
        }
        txn.commit()?;
        Ok(res)
    }
}

/// A file of the tree being built: an object (stored, or in the repo already), or a file
/// of a directory source still to be hashed and stored.
#[derive(Debug, Clone, Copy)]
enum FileRef {
    Stored(Checksum),
    Pending(usize),
}

/// ostree's `OstreeMutableTree`.
#[derive(Debug, Default)]
struct MTree {
    meta: Option<Checksum>,
    files: BTreeMap<String, FileRef>,
    dirs: BTreeMap<String, MTree>,
    /// Contents still as a dirtree of the repo: `files` and `dirs` are empty until
    /// something below changes.
    lazy: Option<Checksum>,
}

impl MTree {
    fn is_empty(&self) -> bool {
        self.meta.is_none() && self.lazy.is_none() && self.files.is_empty() && self.dirs.is_empty()
    }

    fn expand(&mut self, repo: &Repo) -> Result<()> {
        if let Some(t) = self.lazy.take() {
            let dt = repo.load_dirtree(&t)?;
            for (name, c) in dt.files {
                self.files.insert(name, FileRef::Stored(c));
            }
            for (name, st, sm) in dt.dirs {
                self.dirs.insert(
                    name,
                    MTree {
                        meta: Some(sm),
                        lazy: Some(st),
                        ..MTree::default()
                    },
                );
            }
        }
        Ok(())
    }

    fn replace_file(&mut self, repo: &Repo, name: &str, f: FileRef) -> Result<()> {
        self.expand(repo)?;
        if self.dirs.contains_key(name) {
            return Err(Error::InvalidArgument(format!(
                "Can't replace directory with file: {name}"
            )));
        }
        self.files.insert(name.to_string(), f);
        Ok(())
    }

    fn ensure_dir(&mut self, repo: &Repo, name: &str) -> Result<&mut MTree> {
        self.expand(repo)?;
        if self.files.contains_key(name) {
            return Err(Error::InvalidArgument(format!(
                "Can't replace file with directory: {name}"
            )));
        }
        Ok(self.dirs.entry(name.to_string()).or_default())
    }
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
    files: Vec<(String, ScannedFile)>,
    dirs: Vec<(String, DirNode)>,
}

enum ScannedFile {
    Task(FileTask),
    /// A hardlink of this repo object (`--link-checkout-speedup`).
    Known(Checksum),
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// Files up to this size are read into memory once and hashed/written from there.
const SMALL_FILE: u64 = 4 << 20;

/// The tree being assembled, and what writing it has cost so far.
struct Builder<'a, 't> {
    txn: &'a Transaction<'t>,
    opts: &'a CommitOptions,
    canonical: bool,
    xattrs: bool,
    tasks: Vec<FileTask>,
    stats: CommitStats,
    /// Sizes of every object written or re-written (`ostree.sizes`): stored, unpacked.
    sizes: BTreeMap<Checksum, (u64, u64, ObjectType)>,
    devino: Option<HashMap<(u64, u64), Checksum>>,
    /// The skip-list paths some source had (ostree refuses a list with others).
    skipped: Skipped,
}

/// The skip-list and statoverride paths met so far (shared with the parallel directory
/// scan): ostree refuses entries that match nothing.
type Skipped = std::sync::Arc<std::sync::Mutex<Matched>>;

#[derive(Default)]
struct Matched {
    skip: HashSet<String>,
    statoverride: HashSet<String>,
}

fn commit_in_txn(
    txn: &Transaction<'_>,
    sources: &[TreeSource],
    opts: &CommitOptions,
) -> Result<CommitResult> {
    let repo = txn.repo();
    let canonical = opts.canonical_permissions || repo.mode() == RepoMode::BareUserOnly;
    let mut b = Builder {
        txn,
        opts,
        canonical,
        xattrs: !(opts.no_xattrs || canonical || repo.xattrs_disabled()),
        tasks: Vec::new(),
        stats: CommitStats::default(),
        sizes: BTreeMap::new(),
        devino: None,
        skipped: Skipped::default(),
    };
    if opts.devino != Devino::Off && repo.mode() != RepoMode::Archive {
        b.devino = Some(repo.devino_map()?);
    }
    let mut root = MTree::default();
    if let Some(base) = &opts.base {
        let c = repo.load_commit(base)?;
        root.meta = Some(c.root_meta);
        root.lazy = Some(c.root_tree);
    }
    // The usual commit, one directory: streamed (bounded memory, see `Streamer`). Layered
    // sources and `--base` need the whole tree in memory to merge into.
    let streamed = match (sources, &opts.base) {
        ([TreeSource::Dir(p)], None) => {
            let streamer = Streamer {
                txn,
                scan: Scanner {
                    repo,
                    opts,
                    canonical,
                    xattrs: b.xattrs,
                    devino: b.devino.as_ref(),
                    skipped: b.skipped.clone(),
                },
                generate_sizes: opts.generate_sizes,
                progress: opts.progress.as_deref(),
                tally: Default::default(),
                links: Default::default(),
            };
            let st = streamer.scan.root_metadata(p)?;
            let (tree, meta) = streamer.dir(p, "/", st)?;
            let tally = streamer
                .tally
                .into_inner()
                .map_err(|_| Error::Other("internal: a commit thread panicked".into()))?;
            b.stats = tally.stats;
            b.sizes = tally.sizes;
            for (c, unpacked) in tally.content {
                let stored = txn.stored_size(ObjectType::File, &c)?;
                b.sizes.insert(c, (stored, unpacked, ObjectType::File));
            }
            root.meta = Some(meta);
            root.lazy = Some(tree);
            true
        }
        _ => false,
    };
    for src in sources.iter().filter(|_| !streamed) {
        match src {
            TreeSource::Dir(p) => {
                let scan = Scanner {
                    repo,
                    opts,
                    canonical,
                    xattrs: b.xattrs,
                    devino: b.devino.as_ref(),
                    skipped: b.skipped.clone(),
                };
                let node = scan.root(p)?;
                b.merge_dir(node, &mut root)?;
            }
            TreeSource::Tar(p) => b.import_tar(p, &mut root)?,
            TreeSource::Ref(c) => b.import_ref(c, &mut root)?,
        }
    }
    if let Ok(matched) = b.skipped.lock() {
        // The entries that named nothing, sorted (ostree lists them in hash order).
        let unmatched = |names: &mut dyn Iterator<Item = &String>, seen: &HashSet<String>| {
            let mut v: Vec<String> = names.filter(|p| !seen.contains(*p)).cloned().collect();
            v.sort();
            v
        };
        let so = unmatched(&mut opts.statoverride.keys(), &matched.statoverride);
        if !so.is_empty() {
            return Err(Error::UnmatchedStatOverride(so));
        }
        let skip = unmatched(&mut opts.skip_list.iter(), &matched.skip);
        if !skip.is_empty() {
            return Err(Error::UnmatchedSkipList(skip));
        }
    }
    let csums = b.store_pending()?;
    let Some(root_meta) = root.meta else {
        return Err(Error::InvalidArgument("Can't commit an empty tree".into()));
    };
    let (root_tree, _) = b.write_tree(&root, &csums)?;

    let files = b.stats.content_total;
    let files_written = b.stats.content_written;
    if opts.skip_if_unchanged {
        if let Some(p) = &opts.parent {
            let pc = repo.load_commit(p)?;
            if pc.root_tree == root_tree && pc.root_meta == root_meta {
                return Ok(CommitResult {
                    commit: *p,
                    root_tree,
                    root_meta,
                    files,
                    files_written,
                    skipped: true,
                    stats: b.stats,
                });
            }
        }
    }
    let mut metadata = opts.metadata.clone();
    if opts.bootable {
        let kver = kernel_version(txn, &root)?;
        metadata.push(("ostree.bootable".into(), Value::Bool(true)));
        metadata.push(("ostree.linux".into(), Value::Str(kver)));
        metadata = crate::gvariant::glib_dict_order(metadata);
    }
    // ostree records `ostree.sizes` only in archive repos.
    if opts.generate_sizes && repo.mode() == RepoMode::Archive {
        metadata.push(("ostree.sizes".into(), sizes_value(&b.sizes)));
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
    let csum = b.write_meta(ObjectType::Commit, &bytes)?;
    let detached = (!opts.detached_metadata.is_empty())
        .then(|| crate::gvariant::encode(&Value::dict_sv(opts.detached_metadata.clone())));
    let meta = crate::sign::append_signatures(
        detached,
        &bytes,
        &opts.ed25519_keys,
        &opts.dummy_keys,
        opts.gpg_keys.iter().map(|(id, keys)| (keys, id.as_str())),
    )?;
    if let Some(m) = meta {
        txn.write_metadata_as(ObjectType::CommitMeta, &csum, &m)?;
    }
    Ok(CommitResult {
        commit: csum,
        root_tree,
        root_meta,
        files,
        files_written,
        skipped: false,
        stats: b.stats,
    })
}

impl Repo {
    /// (dev, ino) → checksum of every content object stored as a plain file (what
    /// `--link-checkout-speedup` recognises in a tree checked out by hardlinks).
    fn devino_map(&self) -> Result<HashMap<(u64, u64), Checksum>> {
        let mut m = HashMap::new();
        for (ty, c) in self.list_objects()? {
            if ty != ObjectType::File {
                continue;
            }
            if let Ok(st) = std::fs::symlink_metadata(self.object_path(ty, &c)) {
                m.insert((st.dev(), st.ino()), c);
            }
        }
        Ok(m)
    }
}

/// A directory of the tree being committed: in memory, or a dirtree of the repo.
#[derive(Clone, Copy)]
enum Node<'a> {
    Mem(&'a MTree),
    Stored(Checksum),
}

impl Node<'_> {
    /// Subdirectory names with their nodes, in name order.
    fn subdirs<'a>(&self, txn: &Transaction<'_>) -> Result<Vec<(String, Node<'a>)>>
    where
        Self: 'a,
    {
        Ok(match *self {
            Node::Mem(MTree { lazy: Some(t), .. }) => Node::Stored(*t).subdirs(txn)?,
            Node::Mem(t) => t
                .dirs
                .iter()
                .map(|(n, d)| (n.clone(), Node::Mem(d)))
                .collect(),
            Node::Stored(c) => txn
                .load_dirtree(&c)?
                .dirs
                .into_iter()
                .map(|(n, t, _)| (n, Node::Stored(t)))
                .collect(),
        })
    }

    fn has_file(&self, txn: &Transaction<'_>, name: &str) -> Result<bool> {
        Ok(match *self {
            Node::Mem(MTree { lazy: Some(t), .. }) => Node::Stored(*t).has_file(txn, name)?,
            Node::Mem(t) => t.files.contains_key(name),
            Node::Stored(c) => txn.load_dirtree(&c)?.files.iter().any(|f| f.0 == name),
        })
    }
}

/// The kernel version of a tree (`ostree_commit_metadata_for_bootable`): the first
/// directory of `/usr/lib/modules`, in name order, that holds a `vmlinuz`. The errors are
/// ostree's.
fn kernel_version(txn: &Transaction<'_>, root: &MTree) -> Result<String> {
    let mut node = Node::Mem(root);
    let mut path = String::new();
    for comp in ["usr", "lib", "modules"] {
        path.push('/');
        path.push_str(comp);
        node = node
            .subdirs(txn)?
            .into_iter()
            .find(|(n, _)| n == comp)
            .map(|(_, d)| d)
            .ok_or_else(|| Error::InvalidArgument(format!("No such file or directory: {path}")))?;
    }
    for (name, sub) in node.subdirs(txn)? {
        if sub.has_file(txn, "vmlinuz")? {
            return Ok(name);
        }
    }
    Err(Error::InvalidArgument(
        "No kernel found in /usr/lib/modules".into(),
    ))
}

impl Builder<'_, '_> {
    fn repo(&self) -> &Repo {
        self.txn.repo()
    }

    /// Write a metadata object, counting it as ostree's transaction stats do.
    fn write_meta(&mut self, ty: ObjectType, bytes: &[u8]) -> Result<Checksum> {
        let c = Checksum::digest(bytes);
        self.stats.metadata_total += 1;
        if !self.txn.has_object(ty, &c) {
            self.stats.metadata_written += 1;
        }
        self.txn.write_metadata_as(ty, &c, bytes)?;
        if ty != ObjectType::Commit {
            let n = bytes.len() as u64;
            self.sizes.insert(c, (n, n, ty));
        }
        Ok(c)
    }

    fn write_dirmeta(&mut self, m: &DirMeta) -> Result<Checksum> {
        self.write_meta(ObjectType::DirMeta, &m.encode())
    }

    /// Count a content object this commit brought in (`written` if it was new).
    /// `unpacked`: its size, or its symlink target's length (which ostree's byte count
    /// leaves out).
    fn note_content(
        &mut self,
        c: &Checksum,
        written: bool,
        unpacked: u64,
        symlink: bool,
    ) -> Result<()> {
        self.stats.content_total += 1;
        if written {
            self.stats.content_written += 1;
            if !symlink {
                self.stats.content_bytes_written += unpacked;
            }
        }
        if self.opts.generate_sizes {
            let stored = self.txn.stored_size(ObjectType::File, c)?;
            self.sizes.insert(*c, (stored, unpacked, ObjectType::File));
        }
        Ok(())
    }

    /// Lay a scanned directory over `into`.
    fn merge_dir(&mut self, node: DirNode, into: &mut MTree) -> Result<()> {
        crate::stack::check(|| "merging a directory of the commit".to_string())?;
        into.meta = Some(self.write_dirmeta(&node.meta)?);
        for (name, f) in node.files {
            let r = match f {
                ScannedFile::Known(c) => {
                    self.stats.content_cache_hits += 1;
                    FileRef::Stored(c)
                }
                ScannedFile::Task(t) => {
                    self.tasks.push(t);
                    FileRef::Pending(self.tasks.len() - 1)
                }
            };
            into.replace_file(self.txn.repo(), &name, r)?;
        }
        for (name, sub) in node.dirs {
            let child = into.ensure_dir(self.txn.repo(), &name)?;
            self.merge_dir(sub, child)?;
        }
        Ok(())
    }

    /// Lay a commit's tree over `into`: kept as its checksums when nothing needs to change
    /// (an empty tree, no modifier), else walked with the modifier applied.
    fn import_ref(&mut self, commit: &Checksum, into: &mut MTree) -> Result<()> {
        let c = self.repo().load_commit(commit)?;
        if into.is_empty() && !self.opts.has_modifier() {
            into.meta = Some(c.root_meta);
            into.lazy = Some(c.root_tree);
            return Ok(());
        }
        self.merge_repo_dir(&c.root_tree, &c.root_meta, "/", into)
    }

    fn merge_repo_dir(
        &mut self,
        tree: &Checksum,
        meta: &Checksum,
        rel: &str,
        into: &mut MTree,
    ) -> Result<()> {
        crate::stack::check(|| "merging a directory of the commit".to_string())?;
        let repo = self.txn.repo();
        let dm = repo.load_dirmeta(meta)?;
        let scan = Scanner {
            repo: self.txn.repo(),
            opts: self.opts,
            canonical: self.canonical,
            xattrs: self.xattrs,
            devino: None,
            skipped: self.skipped.clone(),
        };
        let (uid, gid, mode) = scan.modify(rel, dm.uid, dm.gid, dm.mode);
        let xattrs = if self.xattrs { dm.xattrs } else { Vec::new() };
        into.meta = Some(self.write_dirmeta(&DirMeta {
            uid,
            gid,
            mode,
            xattrs,
        })?);
        let dt = repo.load_dirtree(tree)?;
        for (name, f) in &dt.files {
            let path = child_path(rel, name);
            if scan.skip(&path) {
                continue;
            }
            let mut fc = repo.read_file(f)?;
            let h = &fc.header;
            let (uid, gid, mode) = scan.modify(&path, h.uid, h.gid, h.mode);
            let header = FileHeader {
                uid,
                gid,
                mode,
                symlink_target: h.symlink_target.clone(),
                xattrs: if self.xattrs {
                    h.xattrs.clone()
                } else {
                    Vec::new()
                },
            };
            let unpacked = if header.is_symlink() {
                header.symlink_target.len() as u64
            } else {
                fc.size
            };
            let (c, written) = if header == fc.header {
                (*f, false)
            } else {
                let size = fc.size;
                self.store_stream(&header, &mut fc.payload, size)?
            };
            self.note_content(&c, written, unpacked, header.is_symlink())?;
            into.replace_file(repo, name, FileRef::Stored(c))?;
        }
        for (name, st, sm) in &dt.dirs {
            let path = child_path(rel, name);
            if scan.skip(&path) {
                continue;
            }
            let child = into.ensure_dir(repo, name)?;
            self.merge_repo_dir(st, sm, &path, child)?;
        }
        Ok(())
    }

    /// Store a content object read from a stream of `size` bytes: hashed first (spooled
    /// to a file in the repo's tmp/ when large), written only if the repo lacks it.
    fn store_stream(
        &mut self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
    ) -> Result<(Checksum, bool)> {
        let mut h = sha2::Sha256::new();
        h.update(header.content_stream_prefix());
        if header.is_symlink() {
            let c = Checksum(h.finalize().into());
            let written = !self.txn.has_object(ObjectType::File, &c);
            if written {
                self.txn
                    .write_file(header, &mut std::io::empty(), 0, Some(&c))?;
            }
            return Ok((c, written));
        }
        let short =
            |e: std::io::Error| Error::InvalidArgument(format!("reading file content: {e}"));
        if size <= SMALL_FILE {
            let mut data = vec![0u8; size as usize];
            payload.read_exact(&mut data).map_err(short)?;
            h.update(&data);
            let c = Checksum(h.finalize().into());
            let written = self.txn.write_file_prehashed(header, &data, &c)?;
            return Ok((c, written));
        }
        let tmp = self.repo().path().join("tmp");
        let mut spool = tempfile::tempfile_in(&tmp).ctx("create temporary file in", &tmp)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buf.get_mut(..want).unwrap_or_default();
            payload.read_exact(chunk).map_err(short)?;
            h.update(&*chunk);
            spool.write_all(chunk).ctx("write", &tmp)?;
            left -= want as u64;
        }
        let c = Checksum(h.finalize().into());
        if self.txn.has_object(ObjectType::File, &c) {
            return Ok((c, false));
        }
        spool.rewind().ctx("rewind", &tmp)?;
        self.txn.write_file(
            header,
            &mut std::io::BufReader::with_capacity(1 << 20, spool),
            size,
            Some(&c),
        )?;
        Ok((c, true))
    }

    /// Lay a tar archive over `root`, entry by entry, storing its files as they come.
    fn import_tar(&mut self, tarfile: &Path, root: &mut MTree) -> Result<()> {
        // `-` is standard input, as libarchive's archive_read_open_filename takes it.
        let f: Box<dyn std::io::Read + Send> = if tarfile == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(tarfile).map_err(|_| {
                Error::InvalidArgument(format!(
                    "archive_read_open_filename: Failed to open '{}'",
                    tarfile.display()
                ))
            })?)
        };
        // Compressed archives as libarchive reads them (by their first bytes, not the
        // name): gzip and xz.
        let mut f = std::io::BufReader::new(f);
        let magic = std::io::BufRead::fill_buf(&mut f)
            .map(|b| b.iter().take(6).copied().collect::<Vec<u8>>())
            .unwrap_or_default();
        let reader: Box<dyn std::io::Read + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(f))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(f))
        } else {
            Box::new(f)
        };
        // A cpio archive (compressed or not) is read as the tar stream it describes.
        let mut reader = std::io::BufReader::new(reader);
        let magic = std::io::BufRead::fill_buf(&mut reader)
            .map(|b| b.iter().take(6).copied().collect::<Vec<u8>>())
            .unwrap_or_default();
        let reader: Box<dyn std::io::Read> = if super::cpio::is_cpio(&magic) {
            Box::new(super::cpio::as_tar(Box::new(reader)).ctx("start reading", tarfile)?)
        } else {
            Box::new(reader)
        };
        let mut ar = tar::Archive::new(reader);
        let terr = |e: std::io::Error| Error::Io {
            op: "read tar archive",
            path: tarfile.to_path_buf(),
            source: e,
        };
        let repo = self.txn.repo();
        let scan = Scanner {
            repo: self.txn.repo(),
            opts: self.opts,
            canonical: self.canonical,
            xattrs: self.xattrs,
            devino: None,
            skipped: self.skipped.clone(),
        };
        // ostree's archive import keeps xattrs under --canonical-permissions (only
        // --no-xattrs and bare-user-only repositories drop them).
        let tar_xattrs = !(self.opts.no_xattrs
            || repo.mode() == RepoMode::BareUserOnly
            || repo.xattrs_disabled());
        // The filter sees a path (and a hardlink's target) as ostree's `path_relative`
        // leaves it: without leading `/` and `./` (so `^usr` matches `./usr/bin`).
        let filter = self.opts.tar_pathname_filter.clone();
        let filtered = |raw: String| match &filter {
            Some((re, rep)) => {
                let mut rel = raw.as_str();
                while let Some(r) = rel.strip_prefix('/').or_else(|| rel.strip_prefix("./")) {
                    rel = r;
                }
                re.replace_all(rel, rep.as_str()).into_owned()
            }
            None => raw,
        };
        for entry in ar.entries().map_err(terr)? {
            let mut entry = entry.map_err(terr)?;
            let raw = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| {
                Error::InvalidArgument(format!(
                    "{}: a path in the archive is not valid UTF-8",
                    tarfile.display()
                ))
            })?;
            let path = filtered(raw);
            let comps = relative_components(&path)?;
            let rel = format!("/{}", comps.join("/"));
            if scan.skip(&rel) {
                continue;
            }
            let hdr = entry.header();
            let num = |v: std::io::Result<u64>| v.map_err(terr);
            let uid = u32::try_from(num(hdr.uid())?).unwrap_or(u32::MAX);
            let gid = u32::try_from(num(hdr.gid())?).unwrap_or(u32::MAX);
            let perm = hdr.mode().map_err(terr)? & 0o7777;
            let etype = hdr.entry_type();
            let mut xattrs = Vec::new();
            if tar_xattrs {
                if let Some(exts) = entry.pax_extensions().map_err(terr)? {
                    for ext in exts {
                        let ext = ext.map_err(terr)?;
                        if let Some(name) =
                            ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr."))
                        {
                            xattrs.push((name.as_bytes().to_vec(), ext.value_bytes().to_vec()));
                        }
                    }
                }
                xattrs.sort();
            }
            let (name, parents) = match comps.split_last() {
                Some((n, p)) => (Some(n.as_str()), p),
                None => (None, &comps[..]),
            };
            // The parent directories: in the tree already, or made as ostree's
            // --tar-autocreate-parents makes them (0755, the entry's owner).
            let autocreate = self.opts.tar_autocreate_parents;
            let mut auto: Option<Checksum> = None;
            let mut auto_meta = |b: &mut Self| -> Result<Checksum> {
                if let Some(c) = auto {
                    return Ok(c);
                }
                let (u, g, m) = scan.modify(&rel, uid, gid, S_IFDIR | 0o755);
                let c = b.write_dirmeta(&DirMeta {
                    uid: u,
                    gid: g,
                    mode: m,
                    xattrs: Vec::new(),
                })?;
                auto = Some(c);
                Ok(c)
            };
            if autocreate && root.meta.is_none() && !comps.is_empty() {
                root.meta = Some(auto_meta(self)?);
            }
            let mut dir = &mut *root;
            for p in parents {
                dir.expand(repo)?;
                if !dir.dirs.contains_key(p.as_str()) && !autocreate {
                    return Err(Error::InvalidArgument(format!(
                        "No such file or directory: {p}"
                    )));
                }
                dir = dir.ensure_dir(repo, p)?;
                if dir.meta.is_none() {
                    dir.meta = Some(auto_meta(self)?);
                }
            }
            match etype {
                tar::EntryType::Directory => {
                    let (u, g, m) = scan.modify(&rel, uid, gid, S_IFDIR | perm);
                    let meta = self.write_dirmeta(&DirMeta {
                        uid: u,
                        gid: g,
                        mode: m,
                        xattrs,
                    })?;
                    let target = match name {
                        Some(n) => dir.ensure_dir(repo, n)?,
                        None => dir,
                    };
                    target.meta = Some(meta);
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Symlink
                | tar::EntryType::Link => {
                    let Some(name) = name else {
                        return Err(Error::InvalidArgument(format!(
                            "{}: a file entry names the archive's root",
                            tarfile.display()
                        )));
                    };
                    let f = if etype == tar::EntryType::Link {
                        // A hardlink: the same object as the (earlier) entry it names.
                        let target = filtered(
                            entry
                                .link_name_bytes()
                                .map(|b| String::from_utf8_lossy(&b).into_owned())
                                .unwrap_or_default(),
                        );
                        // ostree's filter sees the entry (a statoverride of it counts as
                        // matched) though the object, and so the mode, is the target's.
                        scan.mark_statoverride(&rel);
                        let tcomps = relative_components(&target)?;
                        lookup_file(root, &tcomps).ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "Hardlink target '{target}' of '{path}' is not in the archive"
                            ))
                        })?
                    } else {
                        let symlink_target = if etype == tar::EntryType::Symlink {
                            entry
                                .link_name_bytes()
                                .map(|b| String::from_utf8_lossy(&b).into_owned())
                                .unwrap_or_default()
                        } else {
                            String::new()
                        };
                        let ftype = if etype == tar::EntryType::Symlink {
                            S_IFLNK | 0o777
                        } else {
                            S_IFREG | perm
                        };
                        let (u, g, m) = scan.modify(&rel, uid, gid, ftype);
                        let header = FileHeader {
                            uid: u,
                            gid: g,
                            mode: m,
                            symlink_target,
                            xattrs,
                        };
                        let size = if header.is_symlink() { 0 } else { entry.size() };
                        let unpacked = if header.is_symlink() {
                            header.symlink_target.len() as u64
                        } else {
                            size
                        };
                        let (c, written) = self.store_stream(&header, &mut entry, size)?;
                        self.note_content(&c, written, unpacked, header.is_symlink())?;
                        FileRef::Stored(c)
                    };
                    // `dir` was borrowed from `root` before the lookup; find it again.
                    let mut d = &mut *root;
                    for p in parents {
                        d = d.ensure_dir(repo, p)?;
                    }
                    d.replace_file(repo, name, f)?;
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "Unsupported file type for path \"{}\"",
                        comps.join("/")
                    )))
                }
            }
        }
        // An archive without entries still gets its root with --tar-autocreate-parents
        // (0755, owned as the overrides say), as ostree's import makes it.
        if self.opts.tar_autocreate_parents && root.meta.is_none() && root.lazy.is_none() {
            let (u, g, m) = scan.modify("/", 0, 0, S_IFDIR | 0o755);
            root.meta = Some(self.write_dirmeta(&DirMeta {
                uid: u,
                gid: g,
                mode: m,
                xattrs: Vec::new(),
            })?);
        }
        Ok(())
    }

    /// Hash and store the files of directory sources, in parallel; their checksums by task.
    fn store_pending(&mut self) -> Result<Vec<Checksum>> {
        let files = &self.tasks;
        let progress = self.opts.progress.as_deref();
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
        let txn = self.txn;
        let adopt = adopts(self.opts, txn.repo().mode());
        let stored: Vec<(usize, Checksum, bool)> = order
            .par_iter()
            .map(|&i| {
                let t = files
                    .get(i)
                    .ok_or_else(|| Error::Other("internal: bad file index".into()))?;
                let r = store_file(txn, t, adopt).map(|(c, w, _)| (i, c, w));
                if let Some(p) = progress {
                    p.item(t.size);
                }
                r
            })
            .collect::<Result<_>>()?;
        let mut csums = vec![Checksum::default(); files.len()];
        let mut written = vec![false; files.len()];
        for (i, c, w) in &stored {
            if let Some(slot) = csums.get_mut(*i) {
                *slot = *c;
            }
            if let Some(slot) = written.get_mut(*i) {
                *slot = *w;
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
        let notes: Vec<(Checksum, bool, u64, bool)> = files
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let link = t.header.is_symlink();
                let unpacked = if link {
                    t.header.symlink_target.len() as u64
                } else {
                    t.size
                };
                (
                    csums.get(i).copied().unwrap_or_default(),
                    written.get(i).copied().unwrap_or(false),
                    unpacked,
                    link,
                )
            })
            .collect();
        for (c, w, u, l) in notes {
            self.note_content(&c, w, u, l)?;
        }
        Ok(csums)
    }

    /// Write the dirtrees of `t` bottom-up; (dirtree, dirmeta) of `t`. A subtree still as
    /// the repo had it is not written again.
    fn write_tree(&mut self, t: &MTree, csums: &[Checksum]) -> Result<(Checksum, Checksum)> {
        crate::stack::check(|| "writing a directory of the commit".to_string())?;
        let meta = t
            .meta
            .ok_or_else(|| Error::InvalidArgument("Can't commit an empty tree".into()))?;
        if let Some(lazy) = t.lazy {
            return Ok((lazy, meta));
        }
        let mut tree = DirTree::default();
        for (name, f) in &t.files {
            let c = match f {
                FileRef::Stored(c) => *c,
                FileRef::Pending(i) => csums.get(*i).copied().unwrap_or_default(),
            };
            tree.files.push((name.clone(), c));
        }
        for (name, sub) in &t.dirs {
            let (st, sm) = self.write_tree(sub, csums)?;
            tree.dirs.push((name.clone(), st, sm));
        }
        let c = self.write_meta(ObjectType::DirTree, &tree.encode())?;
        Ok((c, meta))
    }
}

/// `rel` + `/name`, from the tree root.
fn child_path(rel: &str, name: &str) -> String {
    if rel == "/" {
        format!("/{name}")
    } else {
        format!("{rel}/{name}")
    }
}

/// The components of an archive path, relative to the tree root (`./`, `/` and empty
/// components dropped); `..` is refused with ostree's message.
fn relative_components(path: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::InvalidArgument(format!(
                    "While making relative path \"{path}\":Invalid uplink '..' in path {path}"
                )))
            }
            c => {
                validate_filename(c)
                    .map_err(|m| Error::InvalidArgument(format!("archive path \"{path}\": {m}")))?;
                out.push(c.to_string())
            }
        }
    }
    Ok(out)
}

/// The file at `comps` below `t` (expanded nodes only: entries of this archive).
fn lookup_file(t: &MTree, comps: &[String]) -> Option<FileRef> {
    let (name, dirs) = comps.split_last()?;
    let mut d = t;
    for c in dirs {
        d = d.dirs.get(c)?;
    }
    d.files.get(name).copied()
}

/// Whether a commit with `opts` into a repository of `mode` may adopt its files (see
/// [`try_adopt`]).
fn adopts(opts: &CommitOptions, mode: RepoMode) -> bool {
    opts.consume && matches!(mode, RepoMode::Bare | RepoMode::BareUserOnly)
}

/// `--consume` into a bare or bare-user-only repository: the file just hashed (to `c`)
/// becomes the object itself, linked into the repository instead of copied, as ostree
/// adopts it, when it is a regular file on the repository's file system whose mode (and in
/// bare mode owner and xattrs) are the object's. Returns whether it was taken.
fn try_adopt(txn: &Transaction<'_>, t: &FileTask, c: &Checksum) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Ok(st) = crate::fsutil::short_path(&t.path, |p| std::fs::symlink_metadata(p)) else {
        return Ok(false);
    };
    let h = &t.header;
    if !st.file_type().is_file() || st.len() != t.size || st.mode() & 0o7777 != h.mode & 0o7777 {
        return Ok(false);
    }
    if txn.repo().mode() == RepoMode::Bare {
        if st.uid() != h.uid || st.gid() != h.gid {
            return Ok(false);
        }
        let mut have = crate::fsutil::read_xattrs(&t.path)?;
        let mut want = h.xattrs.clone();
        have.sort();
        want.sort();
        if have != want {
            return Ok(false);
        }
    } else {
        txn.check_bareuseronly(h, c)?;
    }
    txn.link_verified(ObjectType::File, c, &t.path)
}

/// Hash a file and store it if the repo lacks it. Returns (checksum, written, size).
fn store_file(txn: &Transaction<'_>, t: &FileTask, adopt: bool) -> Result<(Checksum, bool, u64)> {
    let prefix = t.header.content_stream_prefix();
    if t.header.is_symlink() {
        // Its whole content is the header, hashed just now: written as pre-hashed, which
        // also tells exactly whether this call stored it (threads race on equal symlinks).
        let c = Checksum::digest(&prefix);
        let written = txn.write_file_prehashed(&t.header, &[], &c)?;
        return Ok((c, written, 0));
    }
    let open =
        || crate::fsutil::short_path(&t.path, |p| std::fs::File::open(p)).ctx("open", &t.path);
    let mut h = sha2::Sha256::new();
    h.update(&prefix);
    if t.size <= SMALL_FILE {
        // Exactly the size the scan saw (one read, no size probing); a file that shrank
        // meanwhile fails here, one that grew is committed as it was when scanned.
        // Read into spare capacity: zeroing the buffer first was 1.2 % of a bare-user commit.
        let mut data = Vec::with_capacity(t.size as usize);
        open()?
            .take(t.size)
            .read_to_end(&mut data)
            .ctx("read", &t.path)?;
        if data.len() as u64 != t.size {
            return Err(Error::Other(format!(
                "{}: file changed size while being committed",
                t.path.display()
            )));
        }
        h.update(&data);
        let c = Checksum(h.finalize().into());
        if adopt && try_adopt(txn, t, &c)? {
            return Ok((c, true, t.size));
        }
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
    if adopt && try_adopt(txn, t, &c)? {
        return Ok((c, true, t.size));
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
    repo: &'a Repo,
    /// Where the skip-list paths met are recorded.
    skipped: Skipped,
    opts: &'a CommitOptions,
    canonical: bool,
    xattrs: bool,
    /// Repo objects by (dev, ino), for `--link-checkout-speedup`.
    devino: Option<&'a HashMap<(u64, u64), Checksum>>,
}

impl Scanner<'_> {
    /// Whether the skip list names `path` (recorded: ostree refuses unmatched entries).
    fn skip(&self, path: &str) -> bool {
        if !self.opts.skip_list.contains(path) {
            return false;
        }
        if let Ok(mut m) = self.skipped.lock() {
            m.skip.insert(path.to_string());
        }
        true
    }

    /// Record that a statoverride entry names `relpath` (ostree refuses entries that name
    /// nothing).
    fn mark_statoverride(&self, relpath: &str) {
        if !self.opts.statoverride.contains_key(relpath) {
            return;
        }
        if let Ok(mut m) = self.skipped.lock() {
            m.statoverride.insert(relpath.to_string());
        }
    }

    /// Apply --owner-uid/gid and statoverride (the CLI filter), then canonical permissions,
    /// in ostree's order.
    fn modify(&self, relpath: &str, uid: u32, gid: u32, mode: u32) -> (u32, u32, u32) {
        let (mut uid, mut gid, mut mode) = (
            self.opts.owner_uid.unwrap_or(uid),
            self.opts.owner_gid.unwrap_or(gid),
            mode,
        );
        let ov = self.opts.statoverride.get(relpath);
        if ov.is_some() {
            self.mark_statoverride(relpath);
        }
        match ov {
            Some(StatOverride::Add(bits)) => mode |= bits,
            Some(StatOverride::Set(bits)) => mode = (mode & S_IFMT) | (bits & 0o7777),
            None => {}
        }
        if self.opts.mode_ro_executables && mode & S_IFMT == S_IFREG && mode & 0o111 != 0 {
            mode &= !0o222;
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

    /// Scan a directory source. Its path may be a symlink to a directory (ostree opens it
    /// with `opendir`, whose errors it reports).
    fn root(&self, path: &Path) -> Result<DirNode> {
        self.dir(path, "/", self.root_metadata(path)?)
    }

    /// The metadata of a directory source, with ostree's errors for what is not one.
    fn root_metadata(&self, path: &Path) -> Result<std::fs::Metadata> {
        let err = |e: &str| Error::InvalidArgument(format!("opendir({}): {e}", path.display()));
        match std::fs::metadata(path) {
            Ok(st) if st.is_dir() => {}
            Ok(_) => return Err(err("Not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(err("No such file or directory"))
            }
            Err(e) => return Err(e).ctx("opendir", path),
        }
        std::fs::metadata(path).ctx("stat", path)
    }

    fn dir(&self, path: &Path, relpath: &str, st: std::fs::Metadata) -> Result<DirNode> {
        crate::stack::check(|| path.display().to_string())?;
        let e = self.entries(path, relpath, st)?;
        let dirs = e
            .subdirs
            .into_par_iter()
            .map(|(name, child, rel, st)| self.dir(&child, &rel, st).map(|d| (name, d)))
            .collect::<Result<Vec<_>>>()?;
        Ok(DirNode {
            meta: e.meta,
            files: e.files,
            dirs,
        })
    }

    /// One directory's metadata, files and subdirectories (not descended into).
    fn entries(&self, path: &Path, relpath: &str, st: std::fs::Metadata) -> Result<DirEntries> {
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
        let listing = crate::fsutil::short_path(path, |p| std::fs::read_dir(p));
        for e in listing.ctx("read directory", path)? {
            let e = e.ctx("read directory", path)?;
            let name = e.file_name().into_string().map_err(|n| {
                // ostree's words, the name as it is
                Error::InvalidArgument(format!(
                    "Invalid UTF-8 in filename {} (in {})",
                    n.to_string_lossy(),
                    path.display()
                ))
            })?;
            validate_filename(&name)
                .map_err(|m| Error::InvalidArgument(format!("{}: {m}", path.display())))?;
            let child = path.join(&name);
            children.push((name, child));
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
            if self.skip(&rel) {
                continue;
            }
            let st = crate::fsutil::short_path(&child, |p| std::fs::symlink_metadata(p))
                .ctx("stat", &child)?;
            let ft = st.file_type();
            if ft.is_dir() {
                subdirs.push((name, child, rel, st));
                continue;
            }
            // A hardlink of a repo object (a checkout): that object as it is, or, when a
            // modifier applies, its stored metadata modified (as ostree does; the disk's
            // owner and xattrs are those of the repo's storage, not the tree's).
            let known = self.devino.and_then(|m| m.get(&(st.dev(), st.ino())));
            if let Some(c) = known {
                if self.opts.devino == Devino::Canonical || !self.opts.has_modifier() {
                    files.push((name, ScannedFile::Known(*c)));
                    continue;
                }
            }
            let stored = match known {
                Some(c) => Some(self.repo.read_file(c)?.header),
                None => None,
            };
            if !ft.is_file() && !ft.is_symlink() {
                return Err(Error::UnsupportedFileType {
                    name: child
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: child.to_path_buf(),
                });
            }
            let (uid0, gid0, mode0) = match &stored {
                Some(h) => (h.uid, h.gid, h.mode),
                None => (st.uid(), st.gid(), st.mode()),
            };
            let (uid, gid, mode) = self.modify(&rel, uid0, gid0, mode0);
            let symlink_target = if let Some(h) = &stored {
                h.symlink_target.clone()
            } else if ft.is_symlink() {
                crate::fsutil::short_path(&child, |p| std::fs::read_link(p))
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
            let xattrs = match (&stored, self.xattrs) {
                (_, false) => Vec::new(),
                (Some(h), true) => h.xattrs.clone(),
                (None, true) => crate::fsutil::read_xattrs(&child)?,
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
                ScannedFile::Task(FileTask {
                    path: child,
                    size: if ft.is_file() { st.len() } else { 0 },
                    header,
                    inode,
                }),
            ));
        }
        Ok(DirEntries {
            meta,
            files,
            subdirs,
        })
    }
}

/// A directory as [`Scanner::entries`] reads it.
struct DirEntries {
    meta: DirMeta,
    /// Sorted by name, as are `subdirs`.
    files: Vec<(String, ScannedFile)>,
    /// (name, path, path from the tree root, lstat)
    subdirs: Vec<(String, PathBuf, String, std::fs::Metadata)>,
}

/// A file with several links: (dev, ino) and the header it is committed with.
type LinkKey = ((u64, u64), FileHeader);

/// What the streamed commit of a directory source counts, from every thread.
#[derive(Default)]
struct Tally {
    stats: CommitStats,
    /// Metadata objects' sizes (`ostree.sizes`).
    sizes: BTreeMap<Checksum, (u64, u64, ObjectType)>,
    /// Content objects' unpacked sizes (`ostree.sizes`): their stored sizes are read once
    /// every object is written (a duplicate may still be in another thread's hands).
    content: BTreeMap<Checksum, u64>,
}

/// Commits one directory source as it reads it: each directory's files are stored and its
/// dirtree written as soon as its subdirectories are done, so what is held in memory is
/// the directories being worked on (bounded by depth × width), not the whole tree. Memory
/// used to grow by ~750 bytes per file (a scan of the whole tree, then per-file tables):
/// 108 MiB for a 138k-file tree, where ostree peaked at 56 MiB.
struct Streamer<'a, 't> {
    txn: &'a Transaction<'t>,
    scan: Scanner<'a>,
    generate_sizes: bool,
    progress: Option<&'a crate::progress::Progress>,
    tally: std::sync::Mutex<Tally>,
    /// Files with several links, by inode and header: hashed once (unless two links are
    /// read at the same time), as ostree's devino cache does. Only multi-link files count.
    links: std::sync::Mutex<HashMap<LinkKey, Checksum>>,
}

impl Streamer<'_, '_> {
    fn tally(&self) -> Result<std::sync::MutexGuard<'_, Tally>> {
        self.tally
            .lock()
            .map_err(|_| Error::Other("internal: a commit thread panicked".into()))
    }

    fn meta(&self, ty: ObjectType, bytes: &[u8]) -> Result<Checksum> {
        let c = Checksum::digest(bytes);
        let written = self.txn.write_metadata_claimed(ty, &c, bytes)?;
        let mut t = self.tally()?;
        t.stats.metadata_total += 1;
        if written {
            t.stats.metadata_written += 1;
        }
        if self.generate_sizes {
            let n = bytes.len() as u64;
            t.sizes.insert(c, (n, n, ty));
        }
        Ok(c)
    }

    /// Store the tree below `path`; (dirtree, dirmeta).
    fn dir(&self, path: &Path, rel: &str, st: std::fs::Metadata) -> Result<(Checksum, Checksum)> {
        crate::stack::check(|| path.display().to_string())?;
        let e = self.scan.entries(path, rel, st)?;
        if let Some(p) = self.progress {
            p.add_total(e.files.len() as u64);
        }
        let meta = self.meta(ObjectType::DirMeta, &e.meta.encode())?;
        let (files, dirs) = rayon::join(
            || {
                e.files
                    .par_iter()
                    .map(|(name, f)| self.file(f).map(|c| (name.clone(), c)))
                    .collect::<Result<Vec<_>>>()
            },
            || {
                e.subdirs
                    .par_iter()
                    .map(|(name, child, rel, st)| {
                        self.dir(child, rel, st.clone())
                            .map(|(t, m)| (name.clone(), t, m))
                    })
                    .collect::<Result<Vec<_>>>()
            },
        );
        let tree = DirTree {
            files: files?,
            dirs: dirs?,
        };
        Ok((self.meta(ObjectType::DirTree, &tree.encode())?, meta))
    }

    fn file(&self, f: &ScannedFile) -> Result<Checksum> {
        let t = match f {
            ScannedFile::Known(c) => {
                self.tally()?.stats.content_cache_hits += 1;
                if let Some(p) = self.progress {
                    p.item(0);
                }
                return Ok(*c);
            }
            ScannedFile::Task(t) => t,
        };
        let key = t.inode.map(|i| (i, t.header.clone()));
        let known = match &key {
            Some(k) => self
                .links
                .lock()
                .map_err(|_| Error::Other("internal: a commit thread panicked".into()))?
                .get(k)
                .copied(),
            None => None,
        };
        let (c, written) = match known {
            Some(c) => (c, false),
            None => {
                let (c, w, _) =
                    store_file(self.txn, t, adopts(self.scan.opts, self.scan.repo.mode()))?;
                if let (Some(k), Ok(mut m)) = (key, self.links.lock()) {
                    m.insert(k, c);
                }
                (c, w)
            }
        };
        let link = t.header.is_symlink();
        let unpacked = if link {
            t.header.symlink_target.len() as u64
        } else {
            t.size
        };
        {
            let mut tally = self.tally()?;
            tally.stats.content_total += 1;
            if written {
                tally.stats.content_written += 1;
                if !link {
                    tally.stats.content_bytes_written += unpacked;
                }
            }
            if self.generate_sizes {
                tally.content.insert(c, unpacked);
            }
        }
        if let Some(p) = self.progress {
            p.item(t.size);
        }
        Ok(c)
    }
}
