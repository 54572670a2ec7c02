//! The repository: an OSTree-layout directory of loose objects, refs and a `config` keyfile
//! (spec §1.3, §3, §4). Submodules hold each operation: writing objects in transactions,
//! refs, commit of a directory, checkout, fsck, prune, and local pulls.

mod checkout;
mod commit;
mod cpio;
mod delta_gen;
mod diff;
mod export;
mod fsck;
mod prune;
mod pull_local;
pub(crate) mod read;
mod refs;
mod remote;
pub(crate) use remote::SIGN_TYPES;
mod summary;
mod traverse;
mod txn;

pub use checkout::{CheckoutOptions, Overwrite, PathEntry};
pub use commit::{
    CommitOptions, CommitResult, CommitStats, Devino, GpgSecretKeys, StatOverride, TreeSource,
};
pub(crate) use delta_gen::strerror;
pub use delta_gen::{DeltaInfo, DeltaOptions, DeltaReport, DeltaSigner, DeltaVerify, PartInfo};
pub use diff::{checksum_local, Diff, DiffSide, LocalChecksumOptions};
pub use export::ExportOptions;
pub use fsck::{
    in_commits as fsck_in_commits, missing_text as fsck_missing_text, FsckEvent, FsckOptions,
    FsckReport, FsckStage,
};
pub use prune::{PruneOptions, PruneReport};
pub use pull_local::{PullLocalCounts, PullLocalOptions};
pub use read::FileContent;
pub use refs::{CollectionRef, ListRefsOptions, RefName, RefTarget};
pub use remote::RemoteAddOptions;
pub use summary::SummaryOptions;
pub use traverse::Reachable;
pub use txn::{RawObject, Transaction};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::{Checksum, Commit, DirMeta, DirTree, ObjectType};
use std::path::{Path, PathBuf};

/// How file objects are stored (`[core] mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoMode {
    /// Compressed `.filez` objects, fit for serving over HTTP.
    Archive,
    /// Real files with real ownership and xattrs (needs root).
    Bare,
    /// Real content; ownership, mode and xattrs in the `user.ostreemeta` xattr.
    BareUser,
    /// Real content with canonical permissions; no ownership or xattrs.
    BareUserOnly,
}

impl RepoMode {
    /// The string written to `config` (`archive` is spelled `archive-z2`, as ostree does).
    pub fn config_name(self) -> &'static str {
        match self {
            RepoMode::Archive => "archive-z2",
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
        }
    }

    pub fn parse(s: &str) -> Option<RepoMode> {
        Some(match s {
            "archive" | "archive-z2" => RepoMode::Archive,
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RepoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RepoMode::Archive => "archive",
            m => m.config_name(),
        })
    }
}

/// A held repository lock; released when dropped.
#[derive(Debug)]
pub struct RepoLock {
    _file: std::fs::File,
}

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    path: PathBuf,
    mode: RepoMode,
    config: KeyFile,
    fsync: bool,
    /// fsync each object as it is written, not the whole staging directory at the end
    /// (`--per-object-fsync`).
    per_object_fsync: bool,
    /// Refuse regular files with mode bits outside 0775 whatever the mode
    /// (`--bareuseronly-files`).
    bareuseronly_files: bool,
    disable_xattrs: bool,
    min_free_space: txn::MinFreeSpace,
    /// The `.conf` files of the system's remotes.d (`/etc/ostree/remotes.d`, or
    /// `SYSROOT/etc/ostree/remotes.d` for a sysroot's repo), in name order: remotes
    /// configured there count as this repo's, as in ostree (see [`Repo::set_remotes_d`]).
    remotes_d_files: Vec<(PathBuf, KeyFile)>,
    /// For the system repository: where `remote add` writes (`/etc/ostree/remotes.d`,
    /// unless `core.add-remotes-config-dir=false`), as ostree does.
    system_remotes_d: Option<PathBuf>,
    /// The parent repository (`core.parent`), as ostree's: objects, refs and remotes this
    /// repository lacks are looked up there (read-only); objects it has are not written
    /// here again.
    parent: Option<Box<Repo>>,
}

/// How many `core.parent` links a chain may have (a loop of parents is an error, not a hang).
const MAX_PARENT_DEPTH: usize = 16;

const REPO_DIRS: &[&str] = &[
    "tmp",
    "extensions",
    "state",
    "refs",
    "refs/heads",
    "refs/mirrors",
    "refs/remotes",
];

impl Repo {
    /// Create a repository (like `ostree init`). An existing repository with the same mode
    /// is opened as is.
    pub fn create(path: &Path, mode: RepoMode) -> Result<Repo> {
        if path.join("objects").is_dir() && path.join("config").is_file() {
            let r = Repo::open(path)?;
            if r.mode != mode {
                return Err(Error::InvalidArgument(format!(
                    "{}: a repository of mode {} already exists there",
                    path.display(),
                    r.mode
                )));
            }
            return Ok(r);
        }
        Repo::create_new(path, mode, None)
    }

    /// `ostree init [--collection-id=ID]`: create a repository; an existing one is opened and
    /// left exactly as it is (ostree neither fails nor changes its mode or collection ID).
    /// The collection ID is written as `core.collection-id`, after `mode`, as ostree does.
    pub fn init(path: &Path, mode: RepoMode, collection_id: Option<&str>) -> Result<Repo> {
        if let Some(id) = collection_id {
            crate::object::validate_collection_id(id).map_err(Error::InvalidArgument)?;
        }
        if path.join("objects").is_dir() && path.join("config").is_file() {
            return Repo::open(path);
        }
        Repo::create_new(path, mode, collection_id)
    }

    fn create_new(path: &Path, mode: RepoMode, collection_id: Option<&str>) -> Result<Repo> {
        std::fs::create_dir_all(path).ctx("create directory", path)?;
        for d in REPO_DIRS {
            let p = path.join(d);
            std::fs::create_dir_all(&p).ctx("create directory", &p)?;
        }
        let mut kf = KeyFile::new();
        kf.set("core", "repo_version", "1");
        kf.set("core", "mode", mode.config_name());
        if let Some(id) = collection_id {
            kf.set("core", "collection-id", id);
        }
        let cfg = path.join("config");
        crate::fsutil::write_atomic(&cfg, kf.to_string().as_bytes(), true)?;
        let lock = path.join(".lock");
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .ctx("create", &lock)?;
        if mode == RepoMode::BareUser {
            // bare-user keeps ownership in user xattrs: fail early where they are unsupported.
            let probe = crate::fsutil::tempfile_in(&path.join("tmp"))?;
            crate::fsutil::fset_xattr(probe.as_file(), b"user.test", b"1", probe.path()).map_err(
                |e| Error::Unsupported {
                    path: path.to_path_buf(),
                    msg: format!(
                        "bare-user needs user xattrs on this filesystem ({e}); use bare-user-only"
                    ),
                },
            )?;
        }
        // objects/ last: its existence is what makes this a repo.
        let objects = path.join("objects");
        std::fs::create_dir_all(&objects).ctx("create directory", &objects)?;
        Repo::open(path)
    }

    pub fn open(path: &Path) -> Result<Repo> {
        Self::open_at_depth(path, 0)
    }

    fn open_at_depth(path: &Path, depth: usize) -> Result<Repo> {
        let cfg_path = path.join("config");
        if !path.join("objects").is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is not an OSTree repository (no objects/ directory); create one with `oxtree init --repo={}`",
                path.display(),
                path.display()
            )));
        }
        let text = crate::fsutil::read_regular_string(&cfg_path, crate::fsutil::MAX_CONFIG_SIZE)
            .ctx("read", &cfg_path)?;
        // As ostree's open: a missing tmp/ is made again (where the repo is writable).
        let tmp = path.join("tmp");
        if !tmp.is_dir() {
            let _ = std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
                .create(&tmp);
        }
        let config = KeyFile::parse(&text).map_err(|e| Error::Config {
            path: cfg_path.clone(),
            msg: e.to_string(),
        })?;
        let cerr = |msg: String| Error::Config {
            path: cfg_path.clone(),
            msg,
        };
        match config.get("core", "repo_version") {
            Some("1") => {}
            v => return Err(cerr(format!("unsupported repo_version {v:?} (expected 1)"))),
        }
        if config.get_bool("core", "archive") == Some(true) {
            return Err(cerr(
                "legacy `archive=true` is not supported; set mode=archive-z2".into(),
            ));
        }
        let mode_str = config.get("core", "mode").unwrap_or("bare");
        let mode = RepoMode::parse(mode_str)
            .ok_or_else(|| cerr(format!("unsupported repo mode {mode_str:?}")))?;
        let fsync = config.get_bool("core", "fsync").unwrap_or(true);
        let disable_xattrs = config.get_bool("core", "disable-xattrs").unwrap_or(false);
        let min_free_space = txn::min_free_space(&config).map_err(cerr)?;
        tracing::debug!("opened repository {} (mode {mode_str})", path.display());
        let repo = Repo {
            path: path.to_path_buf(),
            mode,
            config,
            fsync,
            per_object_fsync: false,
            bareuseronly_files: false,
            disable_xattrs,
            min_free_space,
            remotes_d_files: Vec::new(),
            system_remotes_d: None,
            parent: None,
        };
        // A system repository (`/ostree/repo`, which `/sysroot/ostree/repo` is on a booted
        // machine) also takes its remotes from `/etc/ostree/remotes.d`, as ostree's does.
        let system = ["/ostree/repo", "/sysroot/ostree/repo"].iter().any(|p| {
            match (std::fs::canonicalize(p), std::fs::canonicalize(path)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        });
        let mut repo = repo;
        if system {
            let dir = Path::new("/etc/ostree/remotes.d");
            repo.set_remotes_d(dir)?;
            if repo.config.get_bool("core", "add-remotes-config-dir") != Some(false) {
                repo.system_remotes_d = Some(dir.to_path_buf());
            }
        }
        if let Some(p) = repo.config.get("core", "parent").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            if depth >= MAX_PARENT_DEPTH {
                return Err(Error::Config {
                    path: cfg_path,
                    msg: format!(
                        "core.parent: more than {MAX_PARENT_DEPTH} parent repositories (a loop?) at {}",
                        p.display()
                    ),
                });
            }
            let parent = Self::open_at_depth(&p, depth + 1).map_err(|e| Error::Config {
                path: cfg_path.clone(),
                msg: format!(
                    "core.parent: opening parent repository {}: {e}",
                    p.display()
                ),
            })?;
            repo.parent = Some(Box::new(parent));
        }
        Ok(repo)
    }

    /// The parent repository (`core.parent`), if any.
    pub fn parent(&self) -> Option<&Repo> {
        self.parent.as_deref()
    }

    /// New remotes go to `dir/NAME.conf` (a deployment's `etc/ostree/remotes.d`) instead of
    /// the config, unless `core.add-remotes-config-dir=false`: ostree's rule for the repo of
    /// a sysroot that is not the physical root (it has a `sysroot` entry: a deployment, or
    /// the booted system's `/`).
    pub(crate) fn use_remotes_d_for_new(&mut self, dir: &Path) {
        if self.config.get_bool("core", "add-remotes-config-dir") != Some(false) {
            self.system_remotes_d = Some(dir.to_path_buf());
        }
    }

    /// Also read remotes from the `*.conf` files of `dir` (a sysroot's
    /// `etc/ostree/remotes.d`), as ostree does for the repo of a sysroot; a missing `dir`
    /// adds nothing, a malformed file is an error naming it.
    pub fn set_remotes_d(&mut self, dir: &Path) -> Result<()> {
        self.remotes_d_files.clear();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).ctx("read directory", dir),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        for f in files {
            let text = crate::fsutil::read_regular_string(&f, crate::fsutil::MAX_CONFIG_SIZE)
                .ctx("read", &f)?;
            let kf = KeyFile::parse(&text).map_err(|e| Error::Config {
                path: f.clone(),
                msg: e.to_string(),
            })?;
            self.remotes_d_files.push((f, kf));
        }
        Ok(())
    }

    /// Lock the repository as ostree does (`.lock`, OFD fcntl locks): shared for writers,
    /// exclusive for prune. Waits up to `core.lock-timeout-secs` (default 300; -1 = forever).
    pub fn lock(&self, exclusive: bool) -> Result<RepoLock> {
        let p = self.path.join(".lock");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .ctx("open", &p)?;
        let timeout: i64 = self
            .config
            .get("core", "lock-timeout-secs")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(300);
        if timeout < 0 {
            crate::fsutil::ofd_lock(&f, exclusive, true).ctx("lock", &p)?;
            return Ok(RepoLock { _file: f });
        }
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(timeout.unsigned_abs());
        loop {
            if crate::fsutil::ofd_lock(&f, exclusive, false).ctx("lock", &p)? {
                return Ok(RepoLock { _file: f });
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "{}: repository is locked by another process (waited {timeout} s; see core.lock-timeout-secs)",
                    self.path.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn mode(&self) -> RepoMode {
        self.mode
    }
    pub fn config(&self) -> &KeyFile {
        &self.config
    }
    /// Turn fsync off for this handle (`--fsync=false`), without touching `config`.
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
    }
    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }

    /// fsync each object before it gets its staged name (ostree's `--per-object-fsync`:
    /// many small flushes instead of one `syncfs` that stalls other writers of the
    /// filesystem). Without fsync (`set_fsync(false)`) nothing is flushed either way.
    pub fn set_per_object_fsync(&mut self, on: bool) {
        self.per_object_fsync = on;
    }

    /// Refuse, in every write through this handle, regular files whose mode has bits outside
    /// 0775 (setuid, setgid, sticky, world-writable), as a bare-user-only repository always
    /// does (ostree's `--bareuseronly-files` for pull and pull-local).
    pub fn set_bareuseronly_files(&mut self, on: bool) {
        self.bareuseronly_files = on;
    }
    pub(crate) fn xattrs_disabled(&self) -> bool {
        self.disable_xattrs
    }

    /// Rewrite `config` atomically, as ostree rewrites it (GKeyFile: comments dropped).
    pub fn write_config(&mut self, kf: KeyFile) -> Result<()> {
        crate::fsutil::write_atomic(
            &self.path.join("config"),
            kf.to_glib_data().as_bytes(),
            self.fsync,
        )?;
        self.config = kf;
        Ok(())
    }

    /// `objects/XX/REST.EXT` relative to the repo.
    pub fn object_relpath(&self, ty: ObjectType, csum: &Checksum) -> String {
        self.object_path_in("objects/", ty, csum)
    }

    /// `PREFIXXX/REST.EXT`: an object's path after `prefix`, built in one allocation (a
    /// checkout names every object it links).
    pub(crate) fn object_path_in(&self, prefix: &str, ty: ObjectType, csum: &Checksum) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let z = if ty == ObjectType::File && self.mode == RepoMode::Archive {
            "z"
        } else {
            ""
        };
        let mut s = String::with_capacity(prefix.len() + 80);
        s.push_str(prefix);
        for (i, b) in csum.as_bytes().iter().enumerate() {
            if i == 1 {
                s.push('/');
            }
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s.push('.');
        s.push_str(ty.extension());
        s.push_str(z);
        s
    }

    pub fn object_path(&self, ty: ObjectType, csum: &Checksum) -> PathBuf {
        self.path.join(self.object_relpath(ty, csum))
    }

    /// Whether the object is stored here or in a parent repository (`core.parent`).
    pub fn has_object(&self, ty: ObjectType, csum: &Checksum) -> bool {
        self.has_own_object(ty, csum)
            || self.parent.as_ref().is_some_and(|p| p.has_object(ty, csum))
    }

    /// Whether the object is stored in this repository itself.
    pub fn has_own_object(&self, ty: ObjectType, csum: &Checksum) -> bool {
        std::fs::symlink_metadata(self.object_path(ty, csum)).is_ok()
    }

    /// Raw bytes of a metadata object (here, else in a parent repository); `ObjectMissing`
    /// if absent.
    pub fn load_metadata(&self, ty: ObjectType, csum: &Checksum) -> Result<Vec<u8>> {
        let p = self.object_path(ty, csum);
        // (A metadata object is a regular file: not a device, a FIFO or a huge sparse file
        // a hostile source repository put there.)
        match crate::fsutil::read_regular(&p, crate::pull::MAX_METADATA_SIZE) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &self.parent {
                Some(parent) => parent.load_metadata(ty, csum),
                None => Err(Error::ObjectMissing { ty, csum: *csum }),
            },
            Err(e) => Err(e).ctx("read", p),
        }
    }

    /// Load a hashed metadata object and check that its bytes hash to its name.
    fn load_verified(&self, ty: ObjectType, csum: &Checksum) -> Result<Vec<u8>> {
        let b = self.load_metadata(ty, csum)?;
        check_digest(ty, csum, &b)?;
        Ok(b)
    }

    pub fn load_commit(&self, csum: &Checksum) -> Result<Commit> {
        let b = self.load_verified(ObjectType::Commit, csum)?;
        Commit::parse(&b).map_err(|e| Error::corrupt(ObjectType::Commit, *csum, e))
    }

    pub fn load_dirtree(&self, csum: &Checksum) -> Result<DirTree> {
        dirtree_from_bytes(csum, &self.load_metadata(ObjectType::DirTree, csum)?)
    }

    pub fn load_dirmeta(&self, csum: &Checksum) -> Result<DirMeta> {
        let b = self.load_verified(ObjectType::DirMeta, csum)?;
        DirMeta::parse(&b).map_err(|e| Error::corrupt(ObjectType::DirMeta, *csum, e))
    }

    /// Detached metadata (`a{sv}`) of a commit, if any.
    pub fn load_commitmeta(&self, commit: &Checksum) -> Result<Option<crate::gvariant::Value>> {
        self.load_commitmeta_bytes(commit)?
            .map(|b| {
                crate::gvariant::decode_normal(&b, &crate::gvariant::Type::of("a{sv}"))
                    .map_err(|e| Error::corrupt(ObjectType::CommitMeta, *commit, e))
            })
            .transpose()
    }

    /// The raw detached metadata of a commit (signatures are checked over exact bytes).
    pub fn load_commitmeta_bytes(&self, commit: &Checksum) -> Result<Option<Vec<u8>>> {
        match self.load_metadata(ObjectType::CommitMeta, commit) {
            Ok(b) => Ok(Some(b)),
            Err(Error::ObjectMissing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace a commit's detached metadata (when signatures are added), atomically.
    pub fn write_commitmeta(&self, commit: &Checksum, meta: &[u8]) -> Result<()> {
        self.update_commitmeta(commit, |_, _| Ok(meta.to_vec()))
    }

    /// Read-modify-write a commit's detached metadata: `f` gets the commit object's bytes
    /// (verified) and the current detached metadata, if any, and returns the new metadata,
    /// which replaces it atomically in a transaction. Two updaters of the same commit (two
    /// `sign` runs) are serialised by an exclusive flock on the commit object, held from
    /// the read to the replacement, so neither's signature is lost (ostree does not lock
    /// here and can lose one); the transaction's shared repo lock keeps prune away.
    pub fn update_commitmeta(
        &self,
        commit: &Checksum,
        f: impl FnOnce(&[u8], Option<&[u8]>) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let txn = self.begin()?;
        let p = self.object_path(ObjectType::Commit, commit);
        let obj = std::fs::File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ObjectMissing {
                ty: ObjectType::Commit,
                csum: *commit,
            },
            _ => Error::Io {
                op: "open",
                path: p.clone(),
                source: e,
            },
        })?;
        rustix::fs::flock(&obj, rustix::fs::FlockOperation::LockExclusive).ctx("lock", &p)?;
        let data = self.load_verified(ObjectType::Commit, commit)?;
        let existing = self.load_commitmeta_bytes(commit)?;
        let meta = f(&data, existing.as_deref())?;
        txn.write_metadata_as(ObjectType::CommitMeta, commit, &meta)?;
        txn.commit()?;
        drop(obj); // unlocked once the new metadata is in objects/
        Ok(())
    }

    /// `state/<csum>.commitpartial`, the marker of a commit whose objects are not all here.
    fn partial_marker(&self, csum: &Checksum) -> PathBuf {
        self.path
            .join("state")
            .join(format!("{csum}.commitpartial"))
    }

    /// Whether `state/<csum>.commitpartial` marks this commit as incomplete.
    pub fn is_partial(&self, csum: &Checksum) -> bool {
        self.partial_marker(csum).exists()
            // (a commit only the parent repository has is as complete as it is there)
            || self.parent.as_ref().is_some_and(|p| {
                !self.has_own_object(ObjectType::Commit, csum) && p.is_partial(csum)
            })
    }

    /// Mark the commit incomplete (before its object lands in `objects/`, so no reader
    /// takes it for whole); a marker already there is left as it is.
    pub(crate) fn mark_partial(&self, csum: &Checksum) -> Result<()> {
        let marker = self.partial_marker(csum);
        if marker.exists() {
            return Ok(());
        }
        crate::fsutil::write_atomic(&marker, b"", self.fsync_enabled())
    }

    /// Parse a loose object's file name as this repo stores it: file objects are `.filez`
    /// in archive repos and `.file` in the others; a stray one of the other kind is not an
    /// object here (ostree lists objects the same way), so prune and fsck never act on it.
    pub(crate) fn parse_object_name(
        &self,
        prefix: &str,
        name: &str,
    ) -> Option<(ObjectType, Checksum)> {
        let (ty, c) = crate::object::parse_loose_name(prefix, name)?;
        if ty == ObjectType::File {
            let want = if self.mode == RepoMode::Archive {
                "filez"
            } else {
                "file"
            };
            if name.rsplit_once('.').map(|(_, ext)| ext) != Some(want) {
                return None;
            }
        }
        Some((ty, c))
    }

    /// Every loose object in the repository.
    pub fn list_objects(&self) -> Result<Vec<(ObjectType, Checksum)>> {
        let objdir = self.path.join("objects");
        let mut out = Vec::new();
        for d in std::fs::read_dir(&objdir).ctx("read directory", &objdir)? {
            let d = d.ctx("read directory", &objdir)?;
            let prefix = d.file_name();
            let Some(prefix) = prefix.to_str().filter(|p| p.len() == 2) else {
                continue;
            };
            let sub = d.path();
            for e in std::fs::read_dir(&sub).ctx("read directory", &sub)? {
                let e = e.ctx("read directory", &sub)?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some(o) = self.parse_object_name(prefix, name) {
                    out.push(o);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// [`Self::list_objects`] with those of the parent repositories (`core.parent`), as
    /// ostree's fsck enumerates them.
    pub fn list_objects_with_parents(&self) -> Result<Vec<(ObjectType, Checksum)>> {
        let mut out = self.list_objects()?;
        if let Some(p) = &self.parent {
            out.extend(p.list_objects_with_parents()?);
            out.sort();
            out.dedup();
        }
        Ok(out)
    }
}

/// ostree's test hooks: `OSTREE_REPO_TEST_ERROR` names, comma-separated, the steps where
/// an operation stops with an error named after the flag (`pre-commit`: a transaction that
/// would commit; `invalid-cache`: a cached summary that fails its check). Scripts written
/// against ostree's own tests use them to check what an interrupted operation leaves.
pub(crate) fn test_error(flag: &str) -> bool {
    std::env::var("OSTREE_REPO_TEST_ERROR")
        .map(|v| v.split(',').any(|f| f.trim() == flag))
        .unwrap_or(false)
}

/// A crash point for tests: a unit test names a step (`FAIL_AT`) and the operation stops
/// there with an error, leaving the disk as a crash at that step would. Compiled into test
/// builds only; the shipped library has no hook.
pub(crate) fn fail_point(name: &'static str) -> Result<()> {
    #[cfg(test)]
    if FAIL_AT.with(|f| f.get()) == Some(name) {
        return Err(Error::Other(format!("failpoint {name}")));
    }
    let _ = name;
    Ok(())
}

#[cfg(test)]
thread_local! {
    pub(crate) static FAIL_AT: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
mod tests;

/// Whether `b`, read as the object `ty` `csum`, hashes to its name.
pub(crate) fn check_digest(ty: ObjectType, csum: &Checksum, b: &[u8]) -> Result<()> {
    let actual = Checksum::digest(b);
    if actual != *csum {
        return Err(Error::ChecksumMismatch {
            ty,
            csum: *csum,
            actual,
        });
    }
    Ok(())
}

/// Bytes read as the dirtree `csum` (from the repo, from staging, relative to a descriptor):
/// checked against their name, then parsed.
pub(crate) fn dirtree_from_bytes(csum: &Checksum, b: &[u8]) -> Result<DirTree> {
    check_digest(ObjectType::DirTree, csum, b)?;
    DirTree::parse(b).map_err(|e| Error::corrupt(ObjectType::DirTree, *csum, e))
}
