//! Write transactions: objects are staged in `tmp/staging-<bootid>-<random>/`, flushed
//! with one `syncfs`, then renamed into `objects/` (spec §3.6). An interrupted transaction
//! leaves only debris under `tmp/`, never a half-written object under `objects/`.
//!
//! Nothing unverified gets a name, an owner or a mode. A content object is written into an
//! anonymous `O_TMPFILE` (or a 0600 random name, unlinked on drop, where the filesystem has
//! no `O_TMPFILE`) owned by us, hashed as it is written, and only when its checksum matches
//! does it get its owner, mode (setuid included), xattrs and mtime 0 and is it linked under
//! its name; on a mismatch or any error the file just goes away. Staging directories are
//! 0700, so even a verified setuid object is out of reach until it lands in `objects/`. This
//! is what makes a hostile server unable to plant a setuid file by serving wrong bytes for
//! a genuine checksum (as ostree, which writes through `O_TMPFILE` the same way).
//!
//! bare-user-only repositories refuse content whose mode has bits outside 0775 (setuid,
//! setgid, sticky, world-writable), as ostree's `_ostree_validate_bareuseronly_mode` does:
//! this is the one point commit, pull-local and pull all write through.
//!
//! Free space: like ostree, a transaction keeps `[core] min-free-space-percent` (default 3)
//! of the filesystem free, or `min-free-space-size` (`123MB`, `GB`, `TB`; it wins over the
//! percentage) when set; 0 turns the check off. The budget is the free blocks at `begin()`
//! minus the reserve (`f_bfree` as root, `f_bavail` otherwise); each content object takes its
//! uncompressed size from it before anything is written, and one that does not fit fails
//! with ostree's message ("min-free-space-percent '3%' would be exceeded, at least 4.1 MB
//! requested"). Metadata objects are exempt, as in ostree: they are small and keep a repo
//! manageable (prune and fsck need them).
//!
//! Refs and `.commitpartial` marker removals queued with [`Transaction::set_ref`] and
//! [`Transaction::remove_commitpartial`] are applied by [`Transaction::commit`] after the
//! objects are durable and before the repository lock is released, as ostree applies a
//! transaction's refs: a prune (which takes the lock exclusively) never runs between a
//! commit's objects landing and its ref naming them, so it never deletes them as
//! unreachable.
//!
//! Staging directories are named and locked as ostree's are, so both tools can share a
//! repository: `staging-BOOTID-RANDOM` (`OSTREE_BOOTID` overrides the boot ID, as in
//! ostree), held by an exclusive open-file-description lock on the sibling file
//! `staging-BOOTID-RANDOM-lock` (ostree's lock, which keeps ostree from reusing or removing
//! a live one) and a `flock` on the directory itself. An ostree that finds one of ours left by a killed process may reuse it
//! (every name in it is a complete, verified object).
//!
//! `tmp/` is cleaned when a transaction begins: staging directories nobody holds the lock of
//! belong to dead processes, ostree's as well as ours (their finished objects are verified
//! and adopted, the rest removed), and
//! `pull-partial/*` downloads, `tar-import-*` directories and `.tmp-*` files older than
//! `[core] tmp-expiry-secs` (default 86400, as ostree) are removed. A directory whose lock is
//! held (a live staging or tar-import directory) is never removed.

use super::refs::RefName;
use super::{Repo, RepoMode};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::{Checksum, FileHeader, ObjectType};
use sha2::Digest;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Staging directories (ostree's name for them).
const STAGING_PREFIX: &str = "staging-";
/// What older oxtree versions named theirs (still cleaned up).
const OLD_STAGING_PREFIX: &str = "oxtree-staging-";
/// The suffix of the lock file beside a staging directory (ostree's).
const LOCK_SUFFIX: &str = "-lock";
/// Directories `commit --tree=tar=…` unpacks into (locked while in use).
pub(super) const TAR_IMPORT_PREFIX: &str = "tar-import-";

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// The space a transaction must leave free (`[core] min-free-space-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MinFreeSpace {
    Percent(u32),
    /// MiB, as ostree counts `min-free-space-size` (`1GB` = 1024 MB).
    Mb(u64),
}

/// Read `min-free-space-size` / `min-free-space-percent` as ostree does, with its messages
/// for invalid values (ostree refuses to open such a repo, and so do we).
pub(super) fn min_free_space(config: &KeyFile) -> std::result::Result<MinFreeSpace, String> {
    if let Some(v) = config.get("core", "min-free-space-size") {
        let bad = || {
            format!("Invalid min-free-space-size '{v}': It should be of the format '123MB', '123GB' or '123TB'")
        };
        let split = v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, unit) = v.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit {
            "MB" => 1,
            "GB" => 1024,
            "TB" => 1024 * 1024,
            _ => return Err(bad()),
        };
        return n.checked_mul(mult).map(MinFreeSpace::Mb).ok_or_else(bad);
    }
    match config.get("core", "min-free-space-percent") {
        None => Ok(MinFreeSpace::Percent(3)),
        Some(v) => match v.parse::<u32>() {
            Ok(p) if p <= 99 => Ok(MinFreeSpace::Percent(p)),
            _ => Err(format!("Invalid min-free-space-percent '{v}'")),
        },
    }
}

/// A size as GLib's `g_format_size` prints it (SI units, one decimal), so our messages
/// read like ostree's.
fn format_size(n: u64) -> String {
    if n < 1000 {
        return if n == 1 {
            "1 byte".into()
        } else {
            format!("{n} bytes")
        };
    }
    let units = ["kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64 / 1000.0;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units.get(i).copied().unwrap_or("EB"))
}

/// Blocks a transaction may still fill before the filesystem drops below the reserve.
struct SpaceBudget {
    max_blocks: AtomicU64,
    block_size: u64,
    /// How the limit is named in errors (`min-free-space-percent '3%'`).
    limit: String,
}

/// Try-lock a directory (flock, exclusive): `Ok(None)` if another process holds it.
fn try_lock_dir(p: &Path) -> Option<std::fs::File> {
    let d = std::fs::File::open(p).ok()?;
    rustix::fs::flock(&d, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .ok()
        .map(|()| d)
}

/// The lock file ostree keeps beside a staging directory (`NAME-lock`).
fn lock_file_of(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(LOCK_SUFFIX);
    PathBuf::from(p)
}

/// Take the exclusive lock on `path`, creating the file (0600) if needed; `None` if
/// another process holds it.
fn try_lock_file(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    // An open-file-description lock, as libglnx takes ostree's: a flock would not
    // exclude it, and a process-wide POSIX lock would be dropped by closing any other
    // descriptor of the file.
    matches!(crate::fsutil::ofd_lock(&f, true, false), Ok(true)).then_some(f)
}

impl Repo {
    /// Remove staging directories left by killed oxtree processes (nobody holds their lock).
    /// Keep what a killed transaction (a pull, a commit) had finished: every staged object
    /// that verifies against its name moves into `objects/`; half-written ones fail the
    /// check and are dropped. A commit is adopted only when it is marked partial (so nothing
    /// treats its possibly incomplete tree as whole). Best effort: errors just skip objects.
    fn adopt_staged(&self, staging: &Path) {
        if crate::fsutil::syncfs(staging).is_err() {
            return;
        }
        let Ok(prefixes) = std::fs::read_dir(staging) else {
            return;
        };
        for pd in prefixes.flatten() {
            let prefix = pd.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 {
                continue;
            }
            let Ok(files) = std::fs::read_dir(pd.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some((ty, csum)) = self.parse_object_name(&prefix, &name) else {
                    continue;
                };
                if self.has_object(ty, &csum) {
                    continue;
                }
                let ok = match ty {
                    ObjectType::File => {
                        self.adoptable_mode(&f.path())
                            && self
                                .checksum_file_at(f.path(), &csum)
                                .map(|c| c == csum)
                                .unwrap_or(false)
                    }
                    ObjectType::DirTree | ObjectType::DirMeta => std::fs::read(f.path())
                        .map(|b| Checksum::digest(&b) == csum)
                        .unwrap_or(false),
                    ObjectType::Commit => {
                        self.is_partial(&csum)
                            && std::fs::read(f.path())
                                .map(|b| Checksum::digest(&b) == csum)
                                .unwrap_or(false)
                    }
                    _ => false,
                };
                if !ok {
                    continue;
                }
                if ty == ObjectType::File {
                    // Objects carry mtime 0; one staged by an older version may not yet.
                    let _ = rustix::fs::utimensat(
                        rustix::fs::CWD,
                        f.path(),
                        &zero_times(),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
                let dest = self.object_path(ty, &csum);
                if let Some(parent) = dest.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::rename(f.path(), &dest);
            }
        }
    }

    /// bare-user-only objects must have a valid mode even when their bytes verify (an
    /// older version, or another tool, may have staged a setuid one).
    fn adoptable_mode(&self, p: &Path) -> bool {
        self.mode != RepoMode::BareUserOnly
            || std::fs::symlink_metadata(p)
                .is_ok_and(|m| m.file_type().is_symlink() || bareuseronly_mode_bits(m.mode()) == 0)
    }

    /// `[core] tmp-expiry-secs`, as ostree (default one day).
    fn tmp_expiry(&self) -> std::time::Duration {
        let secs = self
            .config
            .get("core", "tmp-expiry-secs")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(86400);
        std::time::Duration::from_secs(secs)
    }

    /// Clean `tmp/`: dead staging directories (adopting what they finished), and expired
    /// downloads, tar imports and temp files. Best effort.
    fn clean_tmp(&self, tmp: &Path) {
        let Ok(rd) = std::fs::read_dir(tmp) else {
            return;
        };
        let expiry = self.tmp_expiry();
        let now = std::time::SystemTime::now();
        let expired = |m: &std::fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= expiry)
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if name.starts_with(STAGING_PREFIX) && meta.is_dir() {
                // Whatever its age or boot id: nobody holding its locks (ostree's lock
                // file, and ours on the directory) means its process died.
                let lock = lock_file_of(&p);
                if let Some(_file) = try_lock_file(&lock) {
                    if let Some(_held) = try_lock_dir(&p) {
                        self.adopt_staged(&p);
                        let _ = std::fs::remove_dir_all(&p);
                        let _ = std::fs::remove_file(&lock);
                    }
                }
            } else if name.starts_with(STAGING_PREFIX) && name.ends_with(LOCK_SUFFIX) {
                // A lock file whose directory is gone (a process killed between the two
                // removals).
                let dir = p.with_file_name(&name[..name.len() - LOCK_SUFFIX.len()]);
                if std::fs::symlink_metadata(&dir).is_err() {
                    if let Some(_file) = try_lock_file(&p) {
                        if std::fs::symlink_metadata(&dir).is_err() {
                            let _ = std::fs::remove_file(&p);
                        }
                    }
                }
            } else if name.starts_with(OLD_STAGING_PREFIX) && meta.is_dir() {
                if let Some(_held) = try_lock_dir(&p) {
                    self.adopt_staged(&p);
                    let _ = std::fs::remove_dir_all(&p);
                }
            } else if name.starts_with(TAR_IMPORT_PREFIX) && meta.is_dir() {
                if expired(&meta) {
                    if let Some(_held) = try_lock_dir(&p) {
                        let _ = std::fs::remove_dir_all(&p);
                    }
                }
            } else if name.starts_with(".tmp-") && meta.is_file() {
                if expired(&meta) {
                    let _ = std::fs::remove_file(&p);
                }
            } else if name == "pull-partial" && meta.is_dir() {
                let Ok(parts) = std::fs::read_dir(&p) else {
                    continue;
                };
                for part in parts.flatten() {
                    if part.metadata().is_ok_and(|m| m.is_file() && expired(&m)) {
                        let _ = std::fs::remove_file(part.path());
                    }
                }
            }
        }
    }

    /// A fresh 0700 staging directory, locked for the transaction's life (its sibling lock
    /// file, as ostree locks it, then the directory). A concurrent cleanup may lock, empty
    /// and remove a directory between its creation and our locks: then we find it held or
    /// gone and take another, as ostree does with its own.
    fn new_staging_dir(&self, tmp: &Path) -> Result<(PathBuf, StagingLocks)> {
        for _ in 0..64 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{STAGING_PREFIX}{}-", boot_id()))
                .rand_bytes(8)
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(tmp)
                .ctx("create staging directory in", tmp)?
                .keep();
            let lock_path = lock_file_of(&dir);
            let Some(file) = try_lock_file(&lock_path) else {
                continue; // a cleanup holds it, and removes the directory
            };
            let Some(lock) = try_lock_dir(&dir) else {
                continue;
            };
            let ours = lock.metadata().ctx("stat", &dir)?;
            let still_there = std::fs::symlink_metadata(&dir)
                .is_ok_and(|m| m.ino() == ours.ino() && m.dev() == ours.dev());
            if still_there && ours.nlink() > 0 {
                return Ok((
                    dir,
                    StagingLocks {
                        dir: lock,
                        _file: file,
                        file_path: lock_path,
                    },
                ));
            }
        }
        Err(Error::Other(format!(
            "{}: could not create a staging directory (each one was removed by a concurrent cleanup)",
            tmp.display()
        )))
    }
    /// Bytes that may still be written before the filesystem drops below
    /// `min-free-space-percent`/`-size` (`None` when the check is off), and the setting's
    /// name for messages. Downloads that land outside a transaction (`tmp/pull-partial`)
    /// check this as they grow.
    pub(crate) fn space_left(&self) -> Result<Option<(u64, String)>> {
        Ok(self.space_budget()?.map(|b| {
            (
                b.max_blocks
                    .load(Ordering::Relaxed)
                    .saturating_mul(b.block_size),
                b.limit,
            )
        }))
    }

    /// The free-space budget of a new transaction, or `None` when the check is off.
    fn space_budget(&self) -> Result<Option<SpaceBudget>> {
        let st = rustix::fs::statvfs(&self.path).ctx("statvfs", &self.path)?;
        // A filesystem that reports no size (ramfs, some FUSE mounts) has no free space to
        // keep: ostree writes to it, and so do we.
        if st.f_blocks == 0 {
            return Ok(None);
        }
        let block_size = st.f_frsize.max(1);
        let (reserved, limit) = match self.min_free_space {
            MinFreeSpace::Percent(0) | MinFreeSpace::Mb(0) => return Ok(None),
            MinFreeSpace::Percent(p) => (
                st.f_blocks.saturating_mul(u64::from(p)) / 100,
                format!("min-free-space-percent '{p}%'"),
            ),
            MinFreeSpace::Mb(mb) => (
                mb.saturating_mul(1 << 20) / block_size,
                format!("min-free-space-size {mb}MB"),
            ),
        };
        let free = if rustix::process::geteuid().is_root() {
            st.f_bfree
        } else {
            st.f_bavail
        };
        Ok(Some(SpaceBudget {
            max_blocks: AtomicU64::new(free.saturating_sub(reserved)),
            block_size,
            limit,
        }))
    }
}

/// Mode bits a bare-user-only repo refuses on regular files (outside 0775: setuid, setgid,
/// sticky, world-writable).
fn bareuseronly_mode_bits(mode: u32) -> u32 {
    mode & !S_IFMT & !0o775
}

fn zero_times() -> rustix::fs::Timestamps {
    rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    }
}

/// Verified bytes of a file object in the repo's own storage format.
pub enum RawObject<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// What `commit()` applies once the objects are in `objects/`, under the repo lock.
#[derive(Default)]
struct Pending {
    refs: Vec<(RefName, Option<Checksum>)>,
    complete: Vec<Checksum>,
}

/// The locks that say a staging directory is in use: held for the transaction's life (a
/// staging directory nobody holds belongs to a dead process).
struct StagingLocks {
    /// flock on the directory.
    dir: std::fs::File,
    /// flock on `NAME-lock` beside it (ostree's lock).
    _file: std::fs::File,
    file_path: PathBuf,
}

pub struct Transaction<'r> {
    _lock: super::RepoLock,
    staging_lock: StagingLocks,
    repo: &'r Repo,
    staging: PathBuf,
    staged: Mutex<HashSet<(ObjectType, Checksum)>>,
    /// Staged objects that are complete, not yet moved into `objects/`.
    finished: Mutex<Vec<(ObjectType, Checksum)>>,
    /// Which `XX/` staging subdirectories exist (created on first use).
    made_dirs: [std::sync::atomic::AtomicBool; 256],
    space: Option<SpaceBudget>,
    pending: Mutex<Pending>,
    done: bool,
}

fn boot_id() -> String {
    // ostree's test hook for the boot ID (its suite checks which boot's staging
    // directories are reused and which collected).
    if let Some(id) = std::env::var_os("OSTREE_BOOTID") {
        return id.to_string_lossy().into_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "noboot".into())
}

impl Repo {
    pub fn begin(&self) -> Result<Transaction<'_>> {
        let lock = self.lock(false)?;
        let tmp = self.path.join("tmp");
        self.clean_tmp(&tmp);
        let (staging, staging_lock) = self.new_staging_dir(&tmp)?;
        let space = self.space_budget()?;
        Ok(Transaction {
            _lock: lock,
            staging_lock,
            repo: self,
            staging,
            staged: Mutex::new(HashSet::new()),
            finished: Mutex::new(Vec::new()),
            made_dirs: std::array::from_fn(|_| std::sync::atomic::AtomicBool::new(false)),
            space,
            pending: Mutex::new(Pending::default()),
            done: false,
        })
    }
}

impl Transaction<'_> {
    pub fn repo(&self) -> &Repo {
        self.repo
    }

    /// Point `r` at `target` (`None`: delete it) when this transaction commits: after every
    /// object is durable in `objects/`, before the repository lock is released (ostree's
    /// `transaction_set_ref`). A later call for the same ref replaces an earlier one. Nothing
    /// happens if the transaction is dropped without `commit()`. Deleting a ref that does
    /// not exist is not an error.
    pub fn set_ref(&self, r: &RefName, target: Option<&Checksum>) -> Result<()> {
        crate::object::validate_ref(&r.name).map_err(Error::InvalidArgument)?;
        if let Some(rem) = &r.remote {
            crate::object::validate_remote_name(rem).map_err(Error::InvalidArgument)?;
        }
        let mut p = self
            .pending
            .lock()
            .map_err(|_| Error::Other("internal: pending refs lock poisoned".into()))?;
        p.refs.retain(|(n, _)| n != r);
        p.refs.push((r.clone(), target.copied()));
        Ok(())
    }

    /// Delete `r` when this transaction commits: `set_ref(r, None)`.
    pub fn delete_ref(&self, r: &RefName) -> Result<()> {
        self.set_ref(r, None)
    }

    /// Remove `state/<commit>.commitpartial` when this transaction commits (the commit is
    /// complete): after the objects are durable, before any queued ref moves.
    pub fn remove_commitpartial(&self, commit: &Checksum) {
        if let Ok(mut p) = self.pending.lock() {
            p.complete.push(*commit);
        }
    }

    /// Staged objects mirror `objects/XX/` so no single directory takes every entry.
    fn staged_name(&self, ty: ObjectType, csum: &Checksum) -> PathBuf {
        self.staging.join(
            self.repo
                .object_relpath(ty, csum)
                .trim_start_matches("objects/"),
        )
    }

    /// Create the staging subdirectory for `csum`'s prefix once.
    fn ensure_staging_dir(&self, csum: &Checksum) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let i = usize::from(csum.0[0]);
        if self
            .made_dirs
            .get(i)
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Ok(());
        }
        let d = self.staging_dir(csum);
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("create directory", &d),
        }
        if let Some(f) = self.made_dirs.get(i) {
            f.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn staging_dir(&self, csum: &Checksum) -> PathBuf {
        self.staging.join(&csum.to_hex()[..2])
    }

    /// True if the object is in the repo or already staged in this transaction.
    pub fn has_object(&self, ty: ObjectType, csum: &Checksum) -> bool {
        self.staged
            .lock()
            .map(|s| s.contains(&(ty, *csum)))
            .unwrap_or(false)
            || self.repo.has_object(ty, csum)
    }

    /// Store an archive-mode file object whose bytes the caller has verified (pull): the
    /// served `.filez` is kept as is, no recompression. Returns without writing if present.
    pub fn store_verified_archive_object(&self, csum: &Checksum, raw: RawObject<'_>) -> Result<()> {
        if self.repo.mode != RepoMode::Archive {
            return Err(Error::Other(
                "internal: raw .filez objects go only into archive repos".into(),
            ));
        }
        if !self.claim(ObjectType::File, csum) {
            return Ok(());
        }
        let stored = match raw {
            RawObject::Bytes(b) => Ok(b.len() as u64),
            RawObject::File(p) => std::fs::metadata(p).ctx("stat", p).map(|m| m.len()),
        };
        let res = stored
            .and_then(|n| self.reserve_space(n, Some(csum)))
            .and_then(|()| self.ensure_staging_dir(csum))
            .and_then(|()| {
                let dest = self.staged_name(ObjectType::File, csum);
                match raw {
                    RawObject::Bytes(b) => {
                        let mut tmp = crate::fsutil::TmpFile::new_in(&self.staging_dir(csum))?;
                        let tp = tmp.display_path();
                        tmp.file().write_all(b).ctx("write", &tp)?;
                        tmp.file()
                            .set_permissions(std::fs::Permissions::from_mode(0o644))
                            .ctx("chmod", &tp)?;
                        tmp.link_to(&dest)
                    }
                    RawObject::File(p) => {
                        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
                            .ctx("chmod", p)?;
                        std::fs::rename(p, &dest)
                            .or_else(|_| std::fs::copy(p, &dest).map(|_| ()))
                            .ctx("store", &dest)
                    }
                }
            });
        match res {
            Ok(()) => {
                self.mark_finished(ObjectType::File, csum);
                Ok(())
            }
            Err(e) => {
                self.unclaim(ObjectType::File, csum);
                Err(e)
            }
        }
    }

    /// A dirtree staged in this transaction or already in the repo (verified either way).
    pub fn load_dirtree(&self, csum: &Checksum) -> Result<crate::object::DirTree> {
        let staged = self.staged_name(ObjectType::DirTree, csum);
        match std::fs::read(&staged) {
            Ok(b) => super::dirtree_from_bytes(csum, &b),
            Err(_) => self.repo.load_dirtree(csum),
        }
    }

    /// Size on disk of an object staged in this transaction or already in the repo.
    pub fn stored_size(&self, ty: ObjectType, csum: &Checksum) -> Result<u64> {
        let staged = self.staged_name(ty, csum);
        match std::fs::symlink_metadata(&staged) {
            Ok(m) => Ok(m.len()),
            Err(_) => {
                let p = self.repo.object_path(ty, csum);
                Ok(std::fs::symlink_metadata(&p).ctx("stat", p)?.len())
            }
        }
    }

    /// Claim an object for writing; false if it exists or another thread is writing it.
    fn claim(&self, ty: ObjectType, csum: &Checksum) -> bool {
        // The in-memory set first: duplicates within one tree are common and cost no stat.
        if self
            .staged
            .lock()
            .map(|s| s.contains(&(ty, *csum)))
            .unwrap_or(true)
            || self.repo.has_object(ty, csum)
        {
            return false;
        }
        self.staged
            .lock()
            .map(|mut s| s.insert((ty, *csum)))
            .unwrap_or(false)
    }

    fn unclaim(&self, ty: ObjectType, csum: &Checksum) {
        if let Ok(mut s) = self.staged.lock() {
            s.remove(&(ty, *csum));
        }
    }

    /// Take `size` bytes of content from the free-space budget, or fail as ostree does.
    fn reserve_space(&self, size: u64, csum: Option<&Checksum>) -> Result<()> {
        let Some(b) = &self.space else {
            return Ok(());
        };
        let blocks = size.div_ceil(b.block_size);
        if b.max_blocks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                m.checked_sub(blocks)
            })
            .is_ok()
        {
            return Ok(());
        }
        Err(Error::Other(format!(
            "writing content object{}: {} would be exceeded, at least {} requested (free some space, or lower it in {})",
            csum.map(|c| format!(" {c}")).unwrap_or_default(),
            b.limit,
            format_size(size),
            self.repo.path.join("config").display()
        )))
    }

    /// bare-user-only stores no setuid, setgid, sticky or world-writable content (ostree's
    /// `_ostree_validate_bareuseronly_mode`, with its message).
    pub(crate) fn check_bareuseronly(&self, header: &FileHeader, csum: &Checksum) -> Result<()> {
        let by_mode = self.repo.mode == RepoMode::BareUserOnly;
        if !(by_mode || self.repo.bareuseronly_files) || header.is_symlink() {
            return Ok(());
        }
        match bareuseronly_mode_bits(header.mode) {
            0 => Ok(()),
            // ostree's text; oxtree says why when the repository's mode is the reason.
            bits => Err(Error::InvalidArgument(format!(
                "Content object {csum}: invalid mode 0{:o} with bits 0{bits:04o}{}",
                header.mode,
                if by_mode {
                    " (a bare-user-only repository refuses setuid, setgid, sticky and world-writable files)"
                } else {
                    ""
                }
            ))),
        }
    }

    /// With `--per-object-fsync`, flush an object's data before it is named (the
    /// transaction's `syncfs` still runs at commit, for the renames).
    fn sync_object(&self, file: &std::fs::File, path: &Path) -> Result<()> {
        if self.repo.fsync && self.repo.per_object_fsync {
            file.sync_data().ctx("fsync", path)?;
        }
        Ok(())
    }

    /// Write a hashed metadata object (commit, dirtree, dirmeta) and return its checksum.
    pub fn write_metadata(&self, ty: ObjectType, data: &[u8]) -> Result<Checksum> {
        let csum = Checksum::digest(data);
        self.write_metadata_as(ty, &csum, data)?;
        Ok(csum)
    }

    /// Write a metadata object under a given name (commitmeta is named by its commit).
    /// Commitmeta is replaced if it exists; the others are written once, and only if their
    /// bytes hash to `csum`.
    pub fn write_metadata_as(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()> {
        self.write_metadata_claimed(ty, csum, data).map(|_| ())
    }

    /// [`Transaction::write_metadata_as`], telling whether this call wrote the object
    /// (false: the repo or this transaction had it). Exact under concurrency, which a
    /// `has_object` check before the write is not (a commit's statistics count on it).
    pub fn write_metadata_claimed(
        &self,
        ty: ObjectType,
        csum: &Checksum,
        data: &[u8],
    ) -> Result<bool> {
        if ty == ObjectType::CommitMeta {
            self.staged.lock().map(|mut s| s.insert((ty, *csum))).ok();
        } else {
            super::check_digest(ty, csum, data)?;
            if !self.claim(ty, csum) {
                return Ok(false);
            }
        }
        let res = self.ensure_staging_dir(csum).and_then(|()| {
            let mut tmp = crate::fsutil::TmpFile::new_in(&self.staging_dir(csum))?;
            let tp = tmp.display_path();
            tmp.file().write_all(data).ctx("write", &tp)?;
            tmp.file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .ctx("chmod", &tp)?;
            self.sync_object(tmp.file(), &tp)?;
            tmp.link_to(&self.staged_name(ty, csum))
        });
        match res {
            Ok(()) => {
                self.mark_finished(ty, csum);
                Ok(true)
            }
            Err(e) => {
                if ty != ObjectType::CommitMeta {
                    self.unclaim(ty, csum);
                }
                Err(e)
            }
        }
    }

    /// Stage the object at `src` (another repository's, in this repository's format,
    /// already verified by the caller to be `csum`) as a hard link, as ostree imports
    /// between repositories on one file system. False when it cannot be linked (another
    /// file system, too many links, not allowed) or is already here: the caller then writes
    /// it the usual way (or has nothing to do).
    pub fn link_verified(&self, ty: ObjectType, csum: &Checksum, src: &Path) -> Result<bool> {
        if !self.claim(ty, csum) {
            return Ok(false);
        }
        let staged = self.staged_name(ty, csum);
        let linked = self
            .ensure_staging_dir(csum)
            .map(|()| crate::fsutil::short_path(src, |s| std::fs::hard_link(s, &staged)).is_ok());
        // (--per-object-fsync: the object is flushed like a written one; a symlink object
        // has no data of its own to flush)
        if matches!(linked, Ok(true)) && self.repo.fsync && self.repo.per_object_fsync {
            use std::os::unix::fs::OpenOptionsExt;
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&staged);
            if let Ok(f) = opened {
                self.sync_object(&f, &staged)?;
            }
        }
        match linked {
            Ok(true) => {
                self.mark_finished(ty, csum);
                Ok(true)
            }
            other => {
                self.unclaim(ty, csum);
                other.map(|_| false)
            }
        }
    }

    /// Write a file object from its header and payload, hashing as it goes. If `expected`
    /// is given, a mismatch fails and nothing is stored. Returns the checksum; if the object
    /// already exists nothing is read.
    pub fn write_file(
        &self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
        expected: Option<&Checksum>,
    ) -> Result<Checksum> {
        header
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("file object: {e}")))?;
        if let Some(c) = expected {
            self.check_bareuseronly(header, c)?;
            if !self.claim(ObjectType::File, c) {
                return Ok(*c);
            }
        }
        let res = self.write_file_inner(header, payload, size, expected, false);
        if res.is_err() {
            if let Some(c) = expected {
                self.unclaim(ObjectType::File, c);
            }
        }
        res
    }

    /// Store a file object as `csum` without hashing its content: a trusted source's
    /// object (`pull-local` without `--untrusted`, as ostree imports it). A corrupt source
    /// object stays corrupt here, and `fsck` says so.
    pub fn write_file_trusted(
        &self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
        csum: &Checksum,
    ) -> Result<()> {
        header
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("file object: {e}")))?;
        self.check_bareuseronly(header, csum)?;
        if !self.claim(ObjectType::File, csum) {
            return Ok(());
        }
        let res = self.write_file_inner(header, payload, size, Some(csum), true);
        if res.is_err() {
            self.unclaim(ObjectType::File, csum);
        }
        res.map(|_| ())
    }

    /// Store a file whose content the caller has just hashed to `csum` from this very
    /// buffer (commit of small files): the bytes are not hashed a second time. Returns
    /// whether it was written (false: the repo or this transaction already has it).
    pub fn write_file_prehashed(
        &self,
        header: &FileHeader,
        data: &[u8],
        csum: &Checksum,
    ) -> Result<bool> {
        header
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("file object: {e}")))?;
        self.check_bareuseronly(header, csum)?;
        if !self.claim(ObjectType::File, csum) {
            return Ok(false);
        }
        let res =
            self.write_file_inner(header, &mut &data[..], data.len() as u64, Some(csum), true);
        if res.is_err() {
            self.unclaim(ObjectType::File, csum);
        }
        res.map(|_| true)
    }

    /// The content goes into an anonymous file owned by us (0600) and is hashed on the way;
    /// owner, mode, xattrs and name come only once the checksum is known to be right.
    fn write_file_inner(
        &self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
        expected: Option<&Checksum>,
        trusted: bool,
    ) -> Result<Checksum> {
        let mut hasher_state = sha2::Sha256::new();
        hasher_state.update(header.content_stream_prefix());
        let mode = self.repo.mode;
        if header.is_symlink() && matches!(mode, RepoMode::Bare | RepoMode::BareUserOnly) {
            // A symlink's whole content is its header: verified before anything is made.
            let csum = Checksum(hasher_state.finalize().into());
            check_expected(expected, &csum)?;
            return self.write_symlink(header, &csum, expected.is_none());
        }
        self.reserve_space(if header.is_symlink() { 0 } else { size }, expected)?;
        let mut hasher = (!trusted).then_some(&mut hasher_state);
        // Unnamed until verified; an expected checksum's prefix directory saves a lookup.
        let dir_csum = expected.copied().unwrap_or_default();
        self.ensure_staging_dir(&dir_csum)?;
        let mut tmp = crate::fsutil::TmpFile::new_in(&self.staging_dir(&dir_csum))?;
        let tmppath = tmp.display_path();
        {
            let file = tmp.file();
            match mode {
                RepoMode::Archive => {
                    file.write_all(&header.archive_prefix(if header.is_symlink() {
                        0
                    } else {
                        size
                    }))
                    .ctx("write", &tmppath)?;
                    if !header.is_symlink() && size >= PAR_DEFLATE_MIN {
                        deflate_in_chunks(payload, file, hasher.as_deref_mut(), size, &tmppath)?;
                    } else if !header.is_symlink() {
                        deflate_whole(payload, file, hasher.as_deref_mut(), size, &tmppath)?;
                    }
                }
                RepoMode::BareUser if header.is_symlink() => {
                    file.write_all(header.symlink_target.as_bytes())
                        .ctx("write", &tmppath)?;
                    file.write_all(&[0]).ctx("write", &tmppath)?;
                }
                RepoMode::BareUser | RepoMode::Bare | RepoMode::BareUserOnly => {
                    copy_to_file(payload, file, hasher, size, &tmppath)?;
                }
            }
        }
        let csum = match (trusted, expected) {
            (true, Some(c)) => *c,
            _ => Checksum(hasher_state.finalize().into()),
        };
        // A mismatch drops `tmp`: the unverified bytes never had a name, owner or mode.
        check_expected(expected, &csum)?;
        self.check_bareuseronly(header, &csum)?;
        if expected.is_none() && !self.claim(ObjectType::File, &csum) {
            return Ok(csum); // already stored, or another thread is storing it
        }
        let res = self
            .apply_file_metadata(tmp.file(), header, &tmppath)
            .and_then(|()| self.sync_object(tmp.file(), &tmppath))
            .and_then(|()| self.ensure_staging_dir(&csum))
            .and_then(|()| tmp.link_to(&self.staged_name(ObjectType::File, &csum)));
        if let Err(e) = res {
            if expected.is_none() {
                self.unclaim(ObjectType::File, &csum);
            }
            return Err(e);
        }
        self.mark_finished(ObjectType::File, &csum);
        Ok(csum)
    }

    /// Give verified content its stored form's metadata: owner and xattrs (bare), the
    /// `user.ostreemeta` xattr (bare-user), the mode, and mtime 0.
    fn apply_file_metadata(
        &self,
        file: &mut std::fs::File,
        header: &FileHeader,
        tmppath: &Path,
    ) -> Result<()> {
        let m = match self.repo.mode {
            RepoMode::Archive => 0o644,
            RepoMode::BareUser => {
                crate::fsutil::fset_xattr(
                    file,
                    b"user.ostreemeta",
                    &header.to_filemeta(),
                    tmppath,
                )?;
                if header.is_symlink() {
                    0o644
                } else {
                    (header.mode & (S_IFREG | 0o775)) | 0o400
                }
            }
            RepoMode::Bare => {
                rustix::fs::fchown(
                    &*file,
                    Some(rustix::fs::Uid::from_raw(header.uid)),
                    Some(rustix::fs::Gid::from_raw(header.gid)),
                )
                .ctx("chown", tmppath)?;
                for (k, v) in &header.xattrs {
                    crate::fsutil::fset_xattr(file, k, v, tmppath)?;
                }
                header.mode
            }
            RepoMode::BareUserOnly => header.mode,
        };
        // chmod after chown: chown clears setuid bits.
        file.set_permissions(std::fs::Permissions::from_mode(m & 0o7777))
            .ctx("chmod", tmppath)?;
        // Objects carry mtime 0 (OSTREE_TIMESTAMP), so hardlinked checkouts do too.
        rustix::fs::futimens(&*file, &zero_times()).ctx("set times of", tmppath)
    }

    /// A bare or bare-user-only symlink object: made under a random name in the (0700)
    /// staging directory, then renamed to its name.
    fn write_symlink(
        &self,
        header: &FileHeader,
        csum: &Checksum,
        need_claim: bool,
    ) -> Result<Checksum> {
        if need_claim && !self.claim(ObjectType::File, csum) {
            return Ok(*csum);
        }
        let tmpname = self
            .staging
            .join(format!("tmp-link-{:016x}", rand::random::<u64>()));
        let res = (|| {
            std::os::unix::fs::symlink(&header.symlink_target, &tmpname)
                .ctx("symlink", &tmpname)?;
            if self.repo.mode == RepoMode::Bare {
                std::os::unix::fs::lchown(&tmpname, Some(header.uid), Some(header.gid))
                    .ctx("chown", &tmpname)?;
                for (k, v) in &header.xattrs {
                    crate::fsutil::lset_xattr(&tmpname, k, v)?;
                }
            }
            self.ensure_staging_dir(csum)?;
            let dest = self.staged_name(ObjectType::File, csum);
            std::fs::rename(&tmpname, &dest).ctx("rename", &dest)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmpname);
            if need_claim {
                self.unclaim(ObjectType::File, csum);
            }
            return Err(e);
        }
        self.mark_finished(ObjectType::File, csum);
        Ok(*csum)
    }

    fn mark_finished(&self, ty: ObjectType, csum: &Checksum) {
        if let Ok(mut f) = self.finished.lock() {
            f.push((ty, *csum));
        }
    }

    /// Make the objects finished so far durable and move them into `objects/`, so that an
    /// interrupted long operation (a pull) keeps them. Objects being written concurrently
    /// stay staged. Callers must already have marked the commit partial.
    pub fn checkpoint(&self) -> Result<usize> {
        // Keep the staging dir's mtime fresh: ostree removes unknown tmp/ entries older
        // than its tmp-expiry-secs, and a pull can outlast a day.
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let _ = rustix::fs::futimens(
            &self.staging_lock.dir,
            &rustix::fs::Timestamps {
                last_access: now,
                last_modification: now,
            },
        );
        let batch: Vec<(ObjectType, Checksum)> = self
            .finished
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        if batch.is_empty() {
            return Ok(0);
        }
        let repo = self.repo;
        if repo.fsync {
            crate::fsutil::syncfs(&self.staging)?;
        }
        // Fan-out directories first, then the renames in parallel (metadata operations on
        // many small objects dominate a commit of a typical OS tree).
        let dirs: HashSet<PathBuf> = batch
            .iter()
            .filter_map(|(ty, c)| repo.object_path(*ty, c).parent().map(Path::to_path_buf))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
        }
        use rayon::prelude::*;
        batch.par_iter().try_for_each(|(ty, csum)| {
            let dest = repo.object_path(*ty, csum);
            std::fs::rename(self.staged_name(*ty, csum), &dest).ctx("rename", &dest)?;
            // A commit that is back (pulled again) is no longer a tombstone, as ostree
            // removes the marker when it writes the commit.
            if *ty == ObjectType::Commit {
                let t = repo.object_path(ObjectType::TombstoneCommit, csum);
                match std::fs::remove_file(&t) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).ctx("remove", &t),
                }
            }
            Ok(())
        })?;
        if repo.fsync {
            crate::fsutil::syncfs(&repo.path)?;
        }
        Ok(batch.len())
    }

    /// Make every staged object durable and move it into `objects/`; then, still holding
    /// the repository lock, remove the queued `.commitpartial` markers and apply the queued
    /// refs.
    pub fn commit(mut self) -> Result<()> {
        if super::test_error("pre-commit") {
            // ostree's test hook: stop before anything moves, leaving the staging
            // directory as a killed process would (the next transaction adopts it); its
            // lock file goes as ostree's goes when released.
            self.done = true;
            let _ = std::fs::remove_file(&self.staging_lock.file_path);
            return Err(Error::Other(
                "OSTREE_REPO_TEST_ERROR_PRE_COMMIT specified".into(),
            ));
        }
        self.checkpoint()?;
        self.done = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        let _ = std::fs::remove_file(&self.staging_lock.file_path);
        let pending = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let repo = self.repo;
        if !pending.complete.is_empty() {
            let state = repo.path.join("state");
            for c in &pending.complete {
                let m = state.join(format!("{c}.commitpartial"));
                match std::fs::remove_file(&m) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).ctx("remove", m),
                }
            }
            if repo.fsync {
                crate::fsutil::fsync_dir(&state)?;
            }
        }
        for (r, target) in &pending.refs {
            match repo.set_ref_only(r, target.as_ref()) {
                Err(Error::RefNotFound(_)) if target.is_none() => {}
                res => res?,
            }
        }
        if !pending.refs.is_empty() {
            repo.maybe_regenerate_summary()?;
        }
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
            let _ = std::fs::remove_file(&self.staging_lock.file_path);
        }
    }
}

fn check_expected(expected: Option<&Checksum>, actual: &Checksum) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(Error::ChecksumMismatch {
            ty: ObjectType::File,
            csum: *e,
            actual: *actual,
        }),
        _ => Ok(()),
    }
}

fn copy_to_file(
    src: &mut dyn Read,
    file: &mut std::fs::File,
    hasher: Option<&mut sha2::Sha256>,
    size: u64,
    path: &Path,
) -> Result<()> {
    // copy_hashing writes in 64 KiB chunks already: no extra buffer (pulls run 32 of these).
    copy_hashing(src, file, hasher, size, path)?;
    file.flush().ctx("write", path)
}

fn copy_hashing(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    mut hasher: Option<&mut sha2::Sha256>,
    size: u64,
    path: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("read content for", path),
        };
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        dst.write_all(&buf[..n]).ctx("write", path)?;
        total += n as u64;
    }
    // No flush here: on a deflate encoder that would emit a sync block and change the
    // stored bytes (ostree.sizes records them). Callers finish/flush their writers.
    if total != size {
        return Err(wrong_size(path, size, &total.to_string()));
    }
    Ok(())
}

/// Content that did not have the size its header gave (`read`: how much it had).
fn wrong_size(path: &Path, size: u64, read: &str) -> Error {
    Error::Other(format!(
        "{}: expected {size} bytes of content, read {read}",
        path.display()
    ))
}

thread_local! {
    /// One raw-deflate state per thread, reset per object: creating a fresh zlib state for
    /// each of thousands of small files costs more (allocating and zeroing its window and
    /// hash tables) than compressing them.
    static DEFLATE: std::cell::RefCell<Option<flate2::Compress>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// libdeflate's compressor, one per thread (its state is made once, not per object).
    static LIBDEFLATE: std::cell::RefCell<Option<libdeflater::Compressor>> = const { std::cell::RefCell::new(None) };
}

/// The level of the `.filez` objects below [`PAR_DEFLATE_MIN`], deflated whole by libdeflate
/// ([`deflate_whole`]). On the Debian rootfs (5,241 files, 163 MiB), one core, best of 2:
/// zlib-rs level 4 1.86 s for 65.2 MB; libdeflate level 2 1.06 s for 64.9 MB, level 3
/// 1.14 s for 64.3 MB, level 4 1.23 s for 63.9 MB, level 6 1.76 s for 62.6 MB. Level 3 is
/// 1.6× zlib-rs's speed at fewer bytes than ostree's own level 6 (64.4 MB).
const LIBDEFLATE_LEVEL: i32 = 3;

/// Files smaller than this are deflated by zlib-rs at [`DEFLATE_LEVEL`], as before
/// libdeflate: for such small content its bytes are most often those of ostree's zlib,
/// and `commit --generate-sizes` records the compressed size in the commit, so the same
/// bytes keep the same commit checksum as ostree's on small trees. They hold 3 % of the
/// Debian rootfs's bytes; deflating its files below 2 MiB takes 6 % longer so than with
/// libdeflate for all of them (0.85 s against 0.80 s on one core).
const ZLIB_BELOW: usize = 4096;

/// Deflate `size` bytes of `src` into `out` in one call of libdeflate (of zlib-rs below
/// [`ZLIB_BELOW`]), hashing them: the
/// whole content and its deflated form are in memory at once (at most twice
/// [`PAR_DEFLATE_MIN`]; larger files take [`deflate_in_chunks`]). libdeflate compresses
/// faster than zlib-rs at the same size, but only whole buffers: it can neither stream nor
/// end a piece without ending the stream, which the chunks need.
fn deflate_whole(
    src: &mut dyn Read,
    out: &mut dyn Write,
    hasher: Option<&mut sha2::Sha256>,
    size: u64,
    path: &Path,
) -> Result<()> {
    let n = usize::try_from(size).map_err(|_| wrong_size(path, size, "too much"))?;
    let mut data = Vec::with_capacity(n);
    let got = src
        .take(size)
        .read_to_end(&mut data)
        .ctx("read content for", path)?;
    if got < n {
        return Err(wrong_size(path, size, &got.to_string()));
    }
    let mut more = [0u8; 1];
    if src.read(&mut more).ctx("read content for", path)? > 0 {
        return Err(wrong_size(path, size, "more"));
    }
    if let Some(h) = hasher {
        h.update(&data);
    }
    if n < ZLIB_BELOW {
        let packed = with_deflate(|comp| deflate_chunk(comp, &[], &data, true))
            .map_err(|e| Error::Other(format!("deflate content for {}: {e}", path.display())))?;
        return out.write_all(&packed).ctx("write", path);
    }
    LIBDEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let comp = slot.get_or_insert_with(|| {
            let level = libdeflater::CompressionLvl::new(LIBDEFLATE_LEVEL).unwrap_or_default();
            libdeflater::Compressor::new(level)
        });
        let mut packed = vec![0u8; comp.deflate_compress_bound(n)];
        let len = comp
            .deflate_compress(&data, &mut packed)
            .map_err(|e| Error::Other(format!("deflate content for {}: {e:?}", path.display())))?;
        out.write_all(packed.get(..len).unwrap_or_default())
            .ctx("write", path)
    })
}

/// The deflate level of the chunks of large `.filez` objects. ostree uses 6; with zlib-rs
/// (the flate2 backend here, a port of zlib-ng) level 4 compressed the Debian rootfs 3.4×
/// faster on one core
/// (5.4 s against 18.2 s, best of 3 on this loaded VM) for 1.3 % more bytes (65.2 MB
/// against 64.4 MB), and a commit into an archive repo is bound by deflate. The stored
/// bytes differ from ostree's anyway (as those of an ostree built on zlib-ng do); object
/// and commit checksums do not depend on them, `ostree.sizes` records what is written.
const DEFLATE_LEVEL: u32 = 4;

/// Run `f` with this thread's deflate state, reset, at [`DEFLATE_LEVEL`] (raw, no header).
fn with_deflate<R>(f: impl FnOnce(&mut flate2::Compress) -> R) -> R {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let comp = slot.get_or_insert_with(|| {
            flate2::Compress::new(flate2::Compression::new(DEFLATE_LEVEL), false)
        });
        comp.reset();
        f(comp)
    })
}

/// Files this large are deflated in chunks on all cores ([`deflate_in_chunks`]): one file
/// alone (the Debian rootfs has a 50 MB apt list, a third of its bytes) kept one core busy
/// while the other had nothing left to do.
const PAR_DEFLATE_MIN: u64 = 2 << 20;
/// The chunk of [`deflate_in_chunks`] (chunks of 1 MiB took the archive commit's peak RSS
/// from 18 to 27 MiB), and how much of the previous chunk primes the next.
const DEFLATE_CHUNK: usize = 256 << 10;
const DEFLATE_WINDOW: usize = 32 * 1024;

/// Deflate `size` bytes of `src` into `out` as pigz does: chunks of [`DEFLATE_CHUNK`]
/// compressed in parallel, each primed with the last 32 KiB of the one before as its
/// dictionary (so matches reach back as far as in one stream) and ended with a sync flush
/// (an empty stored block: byte-aligned, not final), the last one finished. Their
/// concatenation is one raw deflate stream any inflater reads; it costs a few bytes per
/// chunk. Memory: one batch of chunks (two per core) at a time. The content is hashed in
/// order as it is read.
fn deflate_in_chunks(
    src: &mut dyn Read,
    out: &mut dyn Write,
    mut hasher: Option<&mut sha2::Sha256>,
    size: u64,
    path: &Path,
) -> Result<()> {
    use rayon::prelude::*;
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut left = size;
    let mut dict: Vec<u8> = Vec::new();
    loop {
        let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(batch);
        while chunks.len() < batch && left > 0 {
            let want = left.min(DEFLATE_CHUNK as u64);
            let mut c = Vec::with_capacity(want as usize);
            let got = (&mut *src)
                .take(want)
                .read_to_end(&mut c)
                .ctx("read content for", path)?;
            if (got as u64) < want {
                return Err(wrong_size(
                    path,
                    size,
                    &(size - left + got as u64).to_string(),
                ));
            }
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&c);
            }
            left -= want;
            chunks.push(c);
        }
        let last = left == 0;
        if last {
            let mut more = [0u8; 1];
            if src.read(&mut more).ctx("read content for", path)? > 0 {
                return Err(wrong_size(path, size, "more"));
            }
        }
        let n = chunks.len();
        let packed: Vec<std::io::Result<Vec<u8>>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let prime = if i == 0 {
                    &dict[..]
                } else {
                    tail(&chunks[i - 1])
                };
                with_deflate(|comp| deflate_chunk(comp, prime, &chunks[i], last && i + 1 == n))
            })
            .collect();
        for p in packed {
            out.write_all(&p.ctx("deflate content for", path)?)
                .ctx("write", path)?;
        }
        if last {
            return Ok(());
        }
        dict = chunks.last().map(|c| tail(c).to_vec()).unwrap_or_default();
    }
}

/// Deflate one chunk with a freshly reset `comp`, primed with `dict`, ended by a sync flush
/// or, for the last chunk, finished.
fn deflate_chunk(
    comp: &mut flate2::Compress,
    dict: &[u8],
    data: &[u8],
    finish: bool,
) -> std::io::Result<Vec<u8>> {
    if !dict.is_empty() {
        comp.set_dictionary(dict).map_err(std::io::Error::other)?;
    }
    let flush = if finish {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Sync
    };
    let start = comp.total_in();
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let used = usize::try_from(comp.total_in() - start).unwrap_or(data.len());
        let status = comp
            .compress_vec(data.get(used..).unwrap_or_default(), &mut out, flush)
            .map_err(std::io::Error::other)?;
        let used = usize::try_from(comp.total_in() - start).unwrap_or(data.len());
        // Done: finished, or (sync) all input taken and room left over (nothing pending).
        match status {
            flate2::Status::StreamEnd => return Ok(out),
            _ if !finish && used == data.len() && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

/// The last [`DEFLATE_WINDOW`] bytes of `c` (all of it if shorter).
fn tail(c: &[u8]) -> &[u8] {
    &c[c.len().saturating_sub(DEFLATE_WINDOW)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// Text with repeats everywhere, so matches cross the chunk boundaries.
    fn text(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut x = 1u64;
        while v.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.extend_from_slice(format!("line {} of {}\n", x >> 54, x >> 60).as_bytes());
        }
        v.truncate(len);
        v
    }

    /// The deflaters of `.filez` content ([`deflate_in_chunks`], [`deflate_whole`]).
    type Deflater =
        fn(&mut dyn Read, &mut dyn Write, Option<&mut sha2::Sha256>, u64, &Path) -> Result<()>;

    /// `data` deflated by `f`: hashed as read, and one raw stream zlib inflates back to it.
    fn deflate_checked(f: Deflater, data: &[u8]) -> Vec<u8> {
        let len = data.len();
        let mut h = sha2::Sha256::new();
        let mut out = Vec::new();
        f(
            &mut &data[..],
            &mut out,
            Some(&mut h),
            len as u64,
            Path::new("t"),
        )
        .expect("deflate");
        assert_eq!(
            h.finalize()[..],
            sha2::Sha256::digest(data)[..],
            "hash of {len}"
        );
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&out[..])
            .read_to_end(&mut back)
            .expect("inflate");
        assert!(back == data, "round trip of {len}");
        out
    }

    /// `f` refuses `data` claimed one byte longer or shorter, saying the size it expected.
    fn refuses_other_sizes(f: Deflater, data: &[u8]) {
        for claimed in [data.len() as u64 + 1, data.len() as u64 - 1] {
            let e = f(
                &mut &data[..],
                &mut Vec::new(),
                None,
                claimed,
                Path::new("obj"),
            )
            .expect_err("wrong size");
            assert!(
                e.to_string().contains(&format!("expected {claimed} bytes")),
                "{e}"
            );
        }
    }

    #[test]
    fn chunked_deflate_is_one_stream_of_the_same_bytes() {
        for len in [
            PAR_DEFLATE_MIN as usize,
            PAR_DEFLATE_MIN as usize + 1,
            9 * DEFLATE_CHUNK + 5, // several batches
        ] {
            let data = text(len);
            let out = deflate_checked(deflate_in_chunks, &data);
            // One stream with matches across chunks: about what a single stream takes.
            let one = with_deflate(|comp| deflate_chunk(comp, &[], &data, true)).expect("deflate");
            assert!(
                out.len() < one.len() + one.len() / 100 + 64,
                "{len}: {} vs {}",
                out.len(),
                one.len()
            );
        }
    }

    #[test]
    fn chunked_deflate_refuses_content_of_another_size() {
        refuses_other_sizes(deflate_in_chunks, &text(3 * DEFLATE_CHUNK));
    }

    /// A small file deflated whole (by zlib-rs below 4 KiB, libdeflate above); content of
    /// another size than claimed is refused.
    #[test]
    fn whole_deflate_round_trips_and_refuses_other_sizes() {
        for len in [0, 1, 1000, 300_000] {
            let data = text(len);
            deflate_checked(deflate_whole, &data);
            if len > 0 {
                refuses_other_sizes(deflate_whole, &data);
            }
        }
    }
}
