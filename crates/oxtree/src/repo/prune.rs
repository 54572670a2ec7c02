//! `prune`: delete objects no root reaches (spec §9), as `ostree prune` does.
//!
//! Roots are every commit by default, or the refs (to `depth`) with `refs_only`. The
//! per-branch options (`--only-branch`, `--retain-branch-depth`, `--keep-younger-than`) take
//! ostree's second path: only refs are roots, each walked to its own depth, or back while
//! its commits are young enough. `commit_only` looks at commit objects alone. Objects are
//! counted as ostree lists them (commits, dirtrees, dirmetas, content objects): detached
//! metadata goes with its commit, tombstones stay. Deleting a commit writes a tombstone
//! when `core.tombstone-commits` is set, and static deltas whose target commit is gone are
//! removed after the objects.

use super::{Reachable, Repo};
use crate::error::{Error, IoContext, Result};
use crate::gvariant::Value;
use crate::object::{Checksum, ObjectType};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub refs_only: bool,
    /// Parent depth to keep from each ref (-1 = all).
    pub depth: i64,
    /// Keep, along each ref without its own depth, the head and the ancestors at least this
    /// new (seconds since the epoch). Only refs are roots then.
    pub keep_younger_than: Option<u64>,
    /// Dry run.
    pub no_prune: bool,
    /// Traverse and delete commit objects only (`--commit-only`).
    pub commit_only: bool,
    /// `--only-branch`: prune only these refs' histories; every other ref keeps its whole
    /// history (unless `retain_branch_depth` names it). Only refs are roots then.
    pub only_branches: Vec<String>,
    /// `--retain-branch-depth=REF=DEPTH`: the depth for one ref. Only refs are roots then.
    /// As in ostree, a depth of 0 here means the default (`depth`), not "the head only":
    /// ostree stores the depth as a hash-table pointer, and 0 is the null pointer it reads
    /// back as "not given".
    pub retain_branch_depth: Vec<(String, i64)>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            refs_only: false,
            depth: -1,
            keep_younger_than: None,
            no_prune: false,
            commit_only: false,
            only_branches: Vec::new(),
            retain_branch_depth: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Objects considered (commits only with `commit_only`).
    pub total: usize,
    pub deleted: usize,
    /// Sum of the deleted objects' file sizes.
    pub freed_bytes: u64,
}

/// Whether prune counts and deletes this object type (the types ostree lists).
fn counted(ty: ObjectType, commit_only: bool) -> bool {
    match ty {
        ObjectType::Commit => true,
        ObjectType::DirTree | ObjectType::DirMeta | ObjectType::File => !commit_only,
        _ => false,
    }
}

impl Repo {
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        self.prune_keeping(opts, &[])
    }

    /// [`Self::prune`] that also keeps the commits `keep` (with what they reach, as for a
    /// ref at depth 0) whatever the refs say: the sysroot's deployments, which ostree adds
    /// to the reachable set under the same exclusive lock.
    pub fn prune_keeping(&self, opts: &PruneOptions, keep: &[Checksum]) -> Result<PruneReport> {
        // Exclusive: no commit or pull may add objects that point at what we delete.
        let _lock = self.lock(true)?;
        let objects = self.list_objects()?;
        let mut reach = Reachable::default();
        let commit_only = opts.commit_only;
        let walk = |c: &Checksum, depth: i64, reach: &mut Reachable| -> Result<()> {
            if commit_only {
                self.traverse_commits_only(c, depth, reach)
            } else {
                self.traverse_commit(c, depth, reach, true)
            }
        };
        let per_branch = !opts.only_branches.is_empty()
            || !opts.retain_branch_depth.is_empty()
            || opts.keep_younger_than.is_some();
        if per_branch {
            let refs = self.list_refs()?;
            let mut depths: HashMap<String, i64> = HashMap::new();
            for (r, d) in &opts.retain_branch_depth {
                depths.insert(r.clone(), *d);
            }
            if !opts.only_branches.is_empty() {
                for r in refs.keys() {
                    let name = r.to_string();
                    if !opts.only_branches.contains(&name) {
                        depths.entry(name).or_insert(-1);
                    }
                }
            }
            let mut roots: Vec<(String, Checksum)> =
                refs.iter().map(|(r, c)| (r.to_string(), *c)).collect();
            for (name, c) in self.mirror_ref_commits()? {
                // --only-branch cannot name a collection ref: it keeps its history.
                if !opts.only_branches.is_empty() {
                    depths.insert(name.clone(), -1);
                }
                roots.push((name, c));
            }
            for (name, c) in roots {
                // ostree's lookup of a 0 depth reads back as "none given" (see above).
                let own = depths.get(&name).copied().filter(|d| *d != 0);
                match (own, opts.keep_younger_than) {
                    (None, Some(cutoff)) => self.walk_young(&c, cutoff, &mut reach, &walk)?,
                    (own, _) => walk(&c, own.unwrap_or(opts.depth), &mut reach)?,
                }
            }
        } else if opts.refs_only {
            let mut roots: Vec<Checksum> = self.list_refs()?.into_values().collect();
            roots.extend(self.mirror_ref_commits()?.into_iter().map(|(_, c)| c));
            for c in roots {
                walk(&c, opts.depth, &mut reach)?;
            }
        } else {
            for (ty, c) in &objects {
                if *ty == ObjectType::Commit {
                    walk(c, opts.depth, &mut reach)?;
                }
            }
        }
        for c in keep {
            walk(c, 0, &mut reach)?;
        }
        let mut markers_removed = false;
        let mut rep = PruneReport::default();
        // Unreachable commits go first, then (after a sync) what they reached: a prune
        // killed or cut by a power loss half-way leaves unreachable trees and files, which
        // fsck does not mind, never a commit whose trees are gone.
        let (commits, rest): (Vec<_>, Vec<_>) = objects
            .iter()
            .partition(|(ty, _)| *ty == ObjectType::Commit);
        let commits_doomed = commits
            .iter()
            .any(|(_, c)| !reach.contains(ObjectType::Commit, c));
        let mut synced = !commits_doomed || opts.no_prune || !self.fsync_enabled();
        for &(ty, ref c) in commits.iter().chain(&rest) {
            if ty != ObjectType::Commit && !synced {
                crate::fsutil::syncfs(&self.path().join("objects"))?;
                synced = true;
            }
            if !counted(ty, commit_only) {
                continue;
            }
            rep.total += 1;
            if reach.contains(ty, c) {
                continue;
            }
            let p = self.object_path(ty, c);
            let size = std::fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
            rep.deleted += 1;
            rep.freed_bytes += size;
            if !opts.no_prune {
                if ty == ObjectType::Commit {
                    self.delete_commit_object(c)?;
                    markers_removed |= std::fs::remove_file(
                        self.path().join("state").join(format!("{c}.commitpartial")),
                    )
                    .is_ok();
                } else {
                    remove_if_present(&p)?;
                }
            }
        }
        if markers_removed && self.fsync_enabled() {
            // A marker that reappeared after a crash would only make a deleted commit
            // look partial, but keep state/ as durable as the refs.
            crate::fsutil::fsync_dir(&self.path().join("state"))?;
        }
        if !opts.no_prune {
            self.prune_static_deltas(None)?;
            self.prune_summary_cache();
        }
        Ok(rep)
    }

    /// Cached summaries (`tmp/cache/summaries/REMOTE` and `REMOTE.sig`) of remotes that are
    /// no longer configured go, as ostree's prune removes them. Best effort.
    fn prune_summary_cache(&self) {
        let dir = self.path().join("tmp/cache/summaries");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        let remotes = self.remote_names();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let remote = name.strip_suffix(".sig").unwrap_or(&name);
            if !remotes.iter().any(|r| r == remote) && e.path().is_file() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// `--keep-younger-than` along one ref: the head always, then each parent while its
    /// timestamp is at least `cutoff` (ostree's `traverse_keep_younger_than`).
    fn walk_young(
        &self,
        head: &Checksum,
        cutoff: u64,
        reach: &mut Reachable,
        walk: &dyn Fn(&Checksum, i64, &mut Reachable) -> Result<()>,
    ) -> Result<()> {
        walk(head, 0, reach)?;
        let mut cur = Some(*head);
        while let Some(c) = cur {
            let cm = match self.load_commit(&c) {
                Ok(cm) => cm,
                Err(Error::ObjectMissing { .. }) => break,
                Err(e) => return Err(e),
            };
            if cm.timestamp < cutoff {
                break;
            }
            walk(&c, 0, reach)?;
            cur = cm.parent;
        }
        Ok(())
    }

    /// Commits alone (and their detached metadata) along the parent chain to `depth`.
    fn traverse_commits_only(&self, c: &Checksum, depth: i64, out: &mut Reachable) -> Result<()> {
        let mut cur = Some(*c);
        let mut remaining = depth;
        while let Some(c) = cur {
            if !self.has_object(ObjectType::Commit, &c) || !out.walk_parents(&c, remaining) {
                break;
            }
            out.objects.insert((ObjectType::Commit, c));
            if remaining == 0 {
                break;
            }
            remaining -= i64::from(remaining > 0);
            cur = self.load_commit(&c)?.parent;
        }
        Ok(())
    }

    /// Commits of collection refs (`refs/mirrors/COLLECTION-ID/REF`): roots too, as in
    /// ostree's prune.
    fn mirror_ref_commits(&self) -> Result<Vec<(String, Checksum)>> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, Checksum)>) -> Result<()> {
            let rd = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).ctx("read directory", dir),
            };
            for e in rd {
                let e = e.ctx("read directory", dir)?;
                let p = e.path();
                if e.file_type().ctx("stat", &p)?.is_dir() {
                    walk(&p, out)?;
                } else if let Ok(Ok(c)) =
                    std::fs::read_to_string(&p).map(|s| s.trim().parse::<Checksum>())
                {
                    out.push((p.display().to_string(), c));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.path().join("refs/mirrors"), &mut out)?;
        Ok(out)
    }

    /// Delete a commit object as ostree does: its detached metadata first, then the commit,
    /// then (with `core.tombstone-commits`) a tombstone recording that it was deleted on
    /// purpose, so a pull does not treat it as missing. The caller holds the repo lock.
    fn delete_commit_object(&self, c: &Checksum) -> Result<()> {
        remove_if_present(&self.object_path(ObjectType::CommitMeta, c))?;
        let p = self.object_path(ObjectType::Commit, c);
        std::fs::remove_file(&p).map_err(|e| Error::Io {
            op: "delete commit object",
            path: p.clone(),
            source: e,
        })?;
        if self.config().get_bool("core", "tombstone-commits") == Some(true) {
            self.write_tombstone(c)?;
        }
        Ok(())
    }

    /// `CHECKSUM.tombstone-commit`: `{'commit': <b'CHECKSUM'>}` (the hex as a bytestring,
    /// with its NUL, as ostree writes it).
    pub(super) fn write_tombstone(&self, c: &Checksum) -> Result<()> {
        let mut hex = c.to_hex().into_bytes();
        hex.push(0);
        let v = Value::dict_sv(vec![("commit".to_string(), Value::Bytes(hex))]);
        let p = self.object_path(ObjectType::TombstoneCommit, c);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
        }
        crate::fsutil::write_atomic(&p, &crate::gvariant::encode(&v), self.fsync_enabled())
    }

    /// Set `core.tombstone-commits=true` unless it is already (ostree does this before it
    /// deletes a commit by request or adds tombstones in fsck).
    pub fn enable_tombstone_commits(&mut self) -> Result<()> {
        if self.config().get_bool("core", "tombstone-commits") == Some(true) {
            return Ok(());
        }
        let mut kf = self.config().clone();
        kf.set("core", "tombstone-commits", "true");
        self.write_config(kf)
    }

    /// `prune --delete-commit=COMMIT`: refuse a commit a ref (or a collection ref) points
    /// at, else enable tombstones and delete the commit (the prune that follows removes
    /// what only it reached). Errors are ostree's texts; `commit` is taken as given, as
    /// ostree does, but only a well-formed checksum ever reaches the filesystem, and refused
    /// input changes nothing (ostree enables tombstones before it finds the commit missing).
    pub fn delete_commit(&mut self, commit: &str) -> Result<()> {
        for (r, c) in self.list_refs()? {
            if c.to_hex() == commit {
                return Err(Error::InvalidArgument(format!(
                    "Commit '{commit}' is referenced by '{r}'"
                )));
            }
        }
        for (r, c) in self.mirror_ref_commits()? {
            if c.to_hex() == commit {
                let rel = r.rsplit("refs/mirrors/").next().unwrap_or(&r).to_string();
                let (cid, name) = rel.split_once('/').unwrap_or((&rel, ""));
                return Err(Error::InvalidArgument(format!(
                    "Commit '{commit}' is referenced by ({cid}, {name})"
                )));
            }
        }
        let missing = || {
            let (a, b) = commit.split_at(commit.len().min(2));
            Error::NotFound(format!(
                "Deleting object {commit}.commit: unlinkat({a}/{b}.commit): No such file or directory"
            ))
        };
        let c: Checksum = match commit.parse() {
            Ok(c) if commit.len() == 64 && commit == commit.to_ascii_lowercase() => c,
            _ => return Err(missing()),
        };
        let _lock = self.lock(true)?;
        if !self.has_object(ObjectType::Commit, &c) {
            return Err(missing());
        }
        self.enable_tombstone_commits()?;
        self.delete_commit_object(&c)
    }

    /// Delete static deltas: those to `to` (`--static-deltas-only --delete-commit`), or,
    /// with `None`, those whose target commit is no longer in the repository.
    pub fn prune_static_deltas(&self, to: Option<&str>) -> Result<usize> {
        let mut n = 0;
        for (from, target) in self.list_static_deltas()? {
            let doomed = match to {
                Some(t) => target.to_hex() == t,
                None => !self.has_object(ObjectType::Commit, &target),
            };
            if !doomed {
                continue;
            }
            let d = self
                .path()
                .join(crate::delta::delta_dir(from.as_ref(), &target));
            match std::fs::remove_dir_all(&d) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("remove", &d),
            }
        }
        Ok(n)
    }
}

fn remove_if_present(p: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        // Gone already (another prune, fsck --delete): nothing to do.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("remove", p),
    }
}
