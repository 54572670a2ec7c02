//! Static deltas in a pull: choose a delta that fits, fetch its superblock (checking its
//! signature when it is a signed one), fetch and execute its parts — into a quarantine, not
//! into the pull's transaction — and keep what they wrote only when every object is
//! reachable from the verified to-commit.
//!
//! Why a quarantine: parts are bound to the superblock by their checksums, but the superblock
//! is bound to the signed commit only by a digest in the summary or a delta index, which are
//! usually unsigned, or by nothing (no summary). So a server can add parts that write any
//! object whose bytes hash to its name: a setuid-root file, a commit no signature covers.
//! Parts therefore write into a throwaway repository of the same mode under
//! `tmp/oxtree-delta-*` (mode 0700; never adopted into `objects/` by a later transaction as
//! an interrupted transaction's staging is; removed by the next pull if a killed one left
//! it). Once all parts ran, the to-commit's tree is complete and is walked; only if every
//! object the parts wrote is reachable from it do the objects move into `objects/`.
//! Otherwise all of them are deleted and the pull fails. Commit objects in parts are refused
//! outright: the to-commit travels in the superblock.

use super::retry::{fetch_retry, fetch_retry_into};
use super::walk::Shared;
use super::MAX_METADATA_SIZE;
use crate::error::{Error, IoContext, Result};
use crate::gvariant::{Type, Value};
use crate::object::{Checksum, Commit, DirTree, ObjectType, Summary};
use crate::repo::{Repo, Transaction};
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Quarantine directories under `tmp/`.
const QUARANTINE_PREFIX: &str = "oxtree-delta-";
use crate::delta::{SIGNED_MAGIC, SIGNED_TYPE};

impl Shared<'_> {
    /// Pull `to` (for `refname`) with a static delta when the server lists one that fits:
    /// FROM-TO from the newest commit complete here that a listed delta starts at, a scratch
    /// delta when the ref does not exist here yet (`current`, as ostree chooses). Without a summary, the FROM-TO delta is asked for
    /// directly (as ostree does). Returns the delta's name, or `None` if none fits.
    /// The superblock is checked against the digest the summary (or delta index) gives,
    /// the embedded commit against `to` and its signatures, each part against the
    /// superblock and each object against its checksum.
    pub(super) fn try_delta(
        &self,
        summary: Option<&Summary>,
        current: Option<Checksum>,
        to: &Checksum,
    ) -> Result<Option<String>> {
        let complete =
            |c: &Checksum| self.repo.has_object(ObjectType::Commit, c) && !self.repo.is_partial(c);
        if complete(to) {
            return Ok(None);
        }
        let from = current.filter(|f| f != to && complete(f));
        let Some(summary) = summary else {
            // No summary, so no digest: the embedded commit must still hash to `to`. As
            // ostree, the delta from what is here, else the scratch delta, is asked for.
            return self.apply_delta(from, to, crate::delta::delta_name(from.as_ref(), to), None);
        };
        let indexed = matches!(
            summary.meta("ostree.summary.indexed-deltas"),
            Some(crate::gvariant::Value::Bool(true))
        );
        let map = if indexed {
            let path = crate::delta::index_path(to);
            // Counted as a metadata fetch whatever the answer, as ostree counts it.
            self.progress
                .metadata_fetched
                .fetch_add(1, Ordering::Relaxed);
            let Some(b) = fetch_retry(
                self.fetcher,
                &path,
                self.opts,
                self.progress,
                MAX_METADATA_SIZE,
            )?
            else {
                return Ok(None);
            };
            let v =
                crate::gvariant::decode(&b, &crate::gvariant::Type::of("a{sv}")).map_err(|e| {
                    Error::Other(format!(
                        "{}: invalid delta index: {e}",
                        self.fetcher.describe(&path)
                    ))
                })?;
            v.lookup("ostree.static-deltas")
                .map(crate::delta::parse_delta_map)
                .unwrap_or_default()
        } else {
            summary
                .meta("ostree.static-deltas")
                .map(crate::delta::parse_delta_map)
                .unwrap_or_default()
        };
        let Some((from, name, digest)) =
            crate::delta::choose_delta(self.repo, &map, to, current.is_none())
        else {
            return Ok(None);
        };
        self.apply_delta(from, to, name, Some(digest))
    }

    /// Fetch and apply the delta `from` → `to` (see [`Self::try_delta`]); `None` if the
    /// server has no such superblock.
    fn apply_delta(
        &self,
        from: Option<Checksum>,
        to: &Checksum,
        name: String,
        digest: Option<Checksum>,
    ) -> Result<Option<String>> {
        let dir = crate::delta::delta_dir(from.as_ref(), to);
        let sb_path = format!("{dir}/superblock");
        let what = self.fetcher.describe(&sb_path);
        // Counted as a metadata fetch whatever the answer, as ostree counts it.
        self.progress
            .metadata_fetched
            .fetch_add(1, Ordering::Relaxed);
        let Some(sb_bytes) = fetch_retry(
            self.fetcher,
            &sb_path,
            self.opts,
            self.progress,
            MAX_METADATA_SIZE,
        )?
        else {
            return Ok(None);
        };
        // The digest covers the file as served (a signed superblock with its signatures).
        let actual = Checksum::digest(&sb_bytes);
        if let Some(digest) = digest.filter(|d| *d != actual) {
            return Err(Error::Other(format!(
                "{what}: superblock hashes to {actual}, the summary says {digest}"
            )));
        }
        let refused = |msg: String| Error::DeltaRefused {
            delta: format!("{name} ({what})"),
            msg,
        };
        let inner = self.unwrap_signed(&sb_bytes, &refused)?;
        let sb = crate::delta::Superblock::parse(&inner, &what)?;
        if sb.to != *to || sb.from != from {
            return Err(Error::Other(format!(
                "{what}: the superblock is for another pair of commits"
            )));
        }
        if self.opts.dry_run {
            if let Ok(mut plan) = self.delta_plan.lock() {
                for p in &sb.parts {
                    plan.parts += 1;
                    plan.size += p.size;
                    plan.uncompressed_size += p.uncompressed_size;
                }
            }
            return Ok(Some(name));
        }
        let meta = self.fetch_meta(ObjectType::CommitMeta, to, true)?;
        let commit = self.verify_commit(to, meta.as_deref(), &sb.commit)?;
        let tmp = self.repo.path().join("tmp");
        let fetch_part = |i: usize| -> Result<crate::delta::StoredPart> {
            // A part inlined in the (verified) superblock needs no request.
            if let Some(b) = crate::delta::inline_part(&sb, i) {
                return Ok(crate::delta::StoredPart::Mem(b));
            }
            // Downloaded into an unlinked file, not memory (see delta::open_part_in).
            let path = format!("{dir}/{i}");
            let what = self.fetcher.describe(&path);
            let mut f = crate::fsutil::anonymous_tempfile_in(&tmp)?;
            // No more than the (verified) superblock says the part is: a server cannot
            // fill the disk through it.
            let size = sb.parts.get(i).map_or(0, |p| p.size);
            fetch_retry_into(
                self.fetcher,
                &path,
                self.opts,
                self.progress,
                size.min(crate::delta::MAX_PART_SIZE),
                &mut f,
            )?
            .ok_or_else(|| Error::Other(format!("{what}: delta part not found on the server")))?;
            self.progress
                .deltaparts_fetched
                .fetch_add(1, Ordering::Relaxed);
            Ok(crate::delta::StoredPart::File(f))
        };
        let done = |n: usize| {
            self.progress
                .objects_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
        };
        execute_parts(
            self.repo,
            &sb,
            &commit,
            &|t, c| self.txn.has_object(t, c),
            &fetch_part,
            &|i| self.fetcher.describe(&format!("{dir}/{i}")),
            &done,
            &refused,
        )?;
        if let Ok(mut p) = self.prefetched.lock() {
            p.insert(*to, (sb.commit, meta));
        }
        Ok(Some(name))
    }
}

/// Execute the parts of `sb` (whose to-commit `commit` is verified) into a quarantine next
/// to `repo`, then move what they wrote into `repo` only if every object is reachable from
/// `commit` (see the module doc). Parts whose objects `have` all are skipped; `part` gives
/// a part's bytes as stored, `describe` names it in errors, `done` counts the objects each
/// part wrote; `refused` makes the error for a delta that must not be used. Used by pulls
/// and by `static-delta apply-offline`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute_parts(
    repo: &Repo,
    sb: &crate::delta::Superblock,
    commit: &Commit,
    have: &(dyn Fn(ObjectType, &Checksum) -> bool + Sync),
    part: &(dyn Fn(usize) -> Result<crate::delta::StoredPart> + Sync),
    describe: &(dyn Fn(usize) -> String + Sync),
    done: &(dyn Fn(usize) + Sync),
    refused: &dyn Fn(String) -> Error,
) -> Result<()> {
    let to = &sb.to;
    // Only tree objects may come out of parts.
    for (i, p) in sb.parts.iter().enumerate() {
        if let Some((t, c)) = p.objects.iter().find(|(t, _)| {
            !matches!(
                t,
                ObjectType::File | ObjectType::DirTree | ObjectType::DirMeta
            )
        }) {
            return Err(refused(format!(
                "part {i} would write {c}.{t}: a static delta part may only carry files, \
                 dirtrees and dirmetas (the commit travels in the superblock)"
            )));
        }
    }
    let quarantine = Quarantine::new(repo)?;
    let qtxn = quarantine.repo.begin()?;
    let sink = DeltaSink { repo, txn: &qtxn };
    // Parts are independent: two at a time (as ostree), each fetched, decompressed and
    // executed by its own thread; the part, as stored and decompressed, is in unlinked
    // files, so a thread holds little more than the object at hand.
    let todo: Vec<usize> = (0..sb.parts.len())
        .filter(|&i| !sb.parts[i].objects.iter().all(|(t, c)| have(*t, c)))
        .collect();
    // Decompressed parts go to unlinked files in the repository's tmp/ (see open_part_in).
    let tmp = repo.path().join("tmp");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let run_part = |i: usize| -> Result<()> {
        let header = &sb.parts[i];
        let what = describe(i);
        let payload = crate::delta::open_part_in(part(i)?, header, &what, &tmp)?;
        let n = crate::delta::apply_part(&payload, &header.objects, &sink, &what)?;
        done(n);
        Ok(())
    };
    std::thread::scope(|s| {
        for _ in 0..todo.len().min(2) {
            s.spawn(|| loop {
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                if let Err(e) = run_part(i) {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    qtxn.commit()?;
    let written = quarantine.repo.list_objects()?;
    let reachable = reachable_tree(commit, &[&quarantine.repo, repo])?;
    let stray: Vec<&(ObjectType, Checksum)> =
        written.iter().filter(|o| !reachable.contains(o)).collect();
    if !stray.is_empty() {
        let shown: Vec<String> = stray
            .iter()
            .take(3)
            .map(|(t, c)| format!("{c}.{t}"))
            .collect();
        return Err(refused(format!(
            "its parts wrote {} object(s) that commit {to} does not reference ({}{}); \
             all objects of the delta were discarded",
            stray.len(),
            shown.join(", "),
            if stray.len() > 3 { ", …" } else { "" }
        )));
    }
    quarantine.release_into(repo, &written)
}

impl Shared<'_> {
    /// The superblock inside a signed one, its signatures checked against the remote's
    /// ed25519 keys when the remote has `sign-verify` on; an unsigned superblock as is.
    fn unwrap_signed<'b>(
        &self,
        raw: &'b [u8],
        refused: &dyn Fn(String) -> Error,
    ) -> Result<std::borrow::Cow<'b, [u8]>> {
        if !raw.starts_with(SIGNED_MAGIC) {
            return Ok(std::borrow::Cow::Borrowed(raw));
        }
        let v = crate::gvariant::decode(raw, &Type::of(SIGNED_TYPE))
            .map_err(|e| refused(format!("invalid signed superblock: {e}")))?;
        let (Some(Value::Bytes(inner)), Some(sigs)) = (
            v.items().and_then(|m| m.get(1)),
            v.items().and_then(|m| m.get(2)),
        ) else {
            return Err(refused("invalid signed superblock".into()));
        };
        if let Some(keys) = &self.opts.ed25519_keys {
            let found = crate::sign::signatures_in(sigs);
            if found.is_empty() {
                return Err(refused(
                    "its signed superblock carries no ed25519 signature, and the remote has sign-verify on"
                        .into(),
                ));
            }
            if crate::sign::verify_sigs(
                &found,
                inner,
                &crate::sign::usable_keys(keys),
                &self.opts.ed25519_revoked,
            )
            .is_none()
            {
                return Err(refused(format!(
                    "none of the {} ed25519 signature(s) of its superblock verifies with the keys configured for the remote (Delta signature verification failed)",
                    found.len()
                )));
            }
        }
        Ok(std::borrow::Cow::Owned(inner.clone()))
    }
}

/// Every tree object reachable from `commit`: its root dirmeta and dirtree and, through each
/// dirtree found in the first of `repos` that has it, all below. Dirtrees nobody has are
/// skipped (what they reference counts as unreachable).
pub(crate) fn reachable_tree(
    commit: &Commit,
    repos: &[&Repo],
) -> Result<HashSet<(ObjectType, Checksum)>> {
    let mut out = HashSet::new();
    let mut todo = vec![(commit.root_tree, commit.root_meta)];
    while let Some((tree, meta)) = todo.pop() {
        out.insert((ObjectType::DirMeta, meta));
        if !out.insert((ObjectType::DirTree, tree)) {
            continue;
        }
        let Some(repo) = repos
            .iter()
            .find(|r| r.has_object(ObjectType::DirTree, &tree))
        else {
            continue;
        };
        let dt = repo.load_dirtree(&tree)?;
        out.extend(dt.files.iter().map(|(_, f)| (ObjectType::File, *f)));
        todo.extend(dt.dirs.iter().map(|(_, t, m)| (*t, *m)));
    }
    Ok(out)
}

/// A throwaway repository (same mode) where a delta's parts write, in a 0700 directory
/// under `tmp/` locked while in use; removed on drop.
struct Quarantine {
    dir: PathBuf,
    repo: Repo,
    _lock: std::fs::File,
}

impl Quarantine {
    fn new(main: &Repo) -> Result<Quarantine> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = main.path().join("tmp");
        Self::remove_stale(&tmp);
        let dir = tempfile::Builder::new()
            .prefix(QUARANTINE_PREFIX)
            .rand_bytes(8)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&tmp)
            .ctx("create quarantine directory in", &tmp)?
            .keep();
        let lock = std::fs::File::open(&dir).ctx("open", &dir)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).ctx("lock", &dir)?;
        let q = Quarantine {
            repo: Self::create_repo(&dir, main)?,
            dir,
            _lock: lock,
        };
        Ok(q)
    }

    fn create_repo(dir: &std::path::Path, main: &Repo) -> Result<Repo> {
        let path = dir.join("repo");
        Repo::create(&path, main.mode())?;
        // Durability is handled when objects leave the quarantine (release_into).
        let cfg = path.join("config");
        let mut text = std::fs::read_to_string(&cfg).ctx("read", &cfg)?;
        text.push_str("fsync=false\n");
        std::fs::write(&cfg, text).ctx("write", &cfg)?;
        Repo::open(&path)
    }

    /// Quarantines of killed pulls (nobody holds their lock). One without its repository
    /// yet may be one another pull has just made and not locked yet: it is left alone
    /// (its creator locks it before it creates the repository).
    fn remove_stale(tmp: &std::path::Path) {
        let Ok(rd) = std::fs::read_dir(tmp) else {
            return;
        };
        for e in rd.flatten() {
            let ours = e
                .file_name()
                .to_string_lossy()
                .starts_with(QUARANTINE_PREFIX);
            if !ours || !e.path().join("repo/config").exists() {
                continue;
            }
            let Ok(d) = std::fs::File::open(e.path()) else {
                continue;
            };
            if rustix::fs::flock(&d, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Move `objects` (verified reachable) into `main`'s `objects/`, durably: data flushed
    /// before the renames make them visible, the renames flushed after.
    fn release_into(&self, main: &Repo, objects: &[(ObjectType, Checksum)]) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        if main.fsync_enabled() {
            crate::fsutil::syncfs(&self.dir)?;
        }
        for (ty, c) in objects {
            let dest = main.object_path(*ty, c);
            if main.has_object(*ty, c) {
                continue;
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).ctx("create directory", parent)?;
            }
            std::fs::rename(self.repo.object_path(*ty, c), &dest).ctx("rename", &dest)?;
        }
        if main.fsync_enabled() {
            crate::fsutil::syncfs(main.path())?;
        }
        Ok(())
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Objects executed out of a static delta part go into the quarantine's transaction; file
/// contents a part reads (`r` ops) come from the pull's repository.
struct DeltaSink<'a> {
    repo: &'a Repo,
    txn: &'a Transaction<'a>,
}

impl crate::delta::ObjectSink for DeltaSink<'_> {
    fn write_metadata(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()> {
        // The hash was checked by the part executor; the structure is checked here, as
        // for objects fetched one by one.
        match ty {
            ObjectType::DirTree => {
                DirTree::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
            }
            ObjectType::DirMeta => {
                crate::object::DirMeta::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
            }
            _ => {
                return Err(Error::corrupt(
                    ty,
                    *csum,
                    "a static delta may not carry this kind of object",
                ))
            }
        }
        self.txn.write_metadata_as(ty, csum, data)
    }

    fn write_content(
        &self,
        header: &crate::object::FileHeader,
        data: &[u8],
        csum: &Checksum,
    ) -> Result<()> {
        let mut r = data;
        self.txn
            .write_file(header, &mut r, data.len() as u64, Some(csum))
            .map(|_| ())
    }

    /// Objects assembled by several ops stream straight into the transaction's temp file.
    fn write_content_stream(
        &self,
        header: &crate::object::FileHeader,
        size: u64,
        data: &mut dyn Read,
        csum: &Checksum,
    ) -> Result<()> {
        self.txn
            .write_file(header, data, size, Some(csum))
            .map(|_| ())
    }

    fn read_content(&self, csum: &Checksum) -> Result<Vec<u8>> {
        let mut f = self.repo.read_file(csum)?;
        let mut out = Vec::with_capacity(f.size.min(crate::delta::MAX_PART_SIZE) as usize);
        f.payload
            .read_to_end(&mut out)
            .ctx("read content for", f.path.clone())?;
        Ok(out)
    }
}
