//! `pull-local`: copy a commit and everything it needs from another local repo, in any mode
//! combination. Every object is re-hashed on the way in, so a corrupt source cannot put a
//! corrupt object into this repo.

use super::refs::RefName;
use super::{Reachable, Repo};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType};
use rayon::prelude::*;

/// What a local pull copied, counted as ostree counts its imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullLocalCounts {
    /// Commit, dirtree and dirmeta objects.
    pub metadata: usize,
    /// Content objects.
    pub content: usize,
    /// Detached metadata (signatures) copied beside commits.
    pub detached: usize,
    /// Bytes of content (unpacked) written, as ostree's "content written".
    pub content_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PullLocalOptions {
    /// Parent depth to copy (0 = just the commit, -1 = all history).
    pub depth: i64,
    /// Write `refs/remotes/REMOTE/REF` instead of `refs/heads/REF`; commits must then
    /// satisfy REMOTE's verification policy (sign-verify, gpg-verify, …), as a pull would.
    pub remote: Option<String>,
    /// Verify OpenPGP signatures with `remote`'s keyring (`--gpg-verify`).
    pub gpg_verify: bool,
    /// Resolve refs through the source's summary, verified with `remote`'s keyring
    /// (`--gpg-verify-summary`).
    pub gpg_verify_summary: bool,
    /// Skip the ref/collection binding checks (`--disable-verify-bindings`).
    pub disable_verify_bindings: bool,
    /// Refuse a commit older than the one its ref points at here (`--timestamp-check`).
    pub timestamp_check: bool,
    /// Copy only the commit objects (and their detached metadata), each marked partial, as
    /// ostree's `--commit-metadata-only`; the refs still move.
    pub commit_metadata_only: bool,
    /// Each commit must come by a static delta of the source repository (from the commit
    /// the ref has here, else a scratch delta), as ostree's pull-local uses the source's
    /// deltas; fail where there is none (`--require-static-deltas`).
    pub require_static_deltas: bool,
    /// The source is trusted (`pull-local` without `--untrusted`): an object hard-linked
    /// from it (the same inode: nothing is written) is not hashed first, as ostree links
    /// them. Objects written anew are always verified.
    pub trusted: bool,
    /// `pull --mirror` of a remote with this collection ID: the refs go to
    /// `refs/mirrors/COLLECTION/REF`, as ostree mirrors collection refs.
    pub mirror_collection_id: Option<String>,
}

impl Repo {
    /// Pull `refs` (refs or checksums in `src`) into this repo. Returns what was copied.
    pub fn pull_local(
        &self,
        src: &Repo,
        refs: &[String],
        opts: &PullLocalOptions,
    ) -> Result<PullLocalCounts> {
        self.pull_local_verified(src, refs, opts, crate::pull::VerifiedMeta::new())
    }

    /// [`Repo::pull_local`], storing for each commit in `verified` (checked by the caller)
    /// the detached metadata it was verified with, not what the source holds by the time
    /// it is copied.
    pub(crate) fn pull_local_verified(
        &self,
        src: &Repo,
        refs: &[String],
        opts: &PullLocalOptions,
        mut verified: crate::pull::VerifiedMeta,
    ) -> Result<PullLocalCounts> {
        // Verified as a pull verifies, before anything is copied.
        let check = crate::pull::LocalCheck::new(self, src, opts)?;
        let mut targets = Vec::new();
        for r in refs {
            let c = check.resolve(src, r)?;
            targets.push((r.clone(), c));
        }
        // A metadata-only pull needs no delta (as ostree).
        let deltas = opts.require_static_deltas && !opts.commit_metadata_only;
        if deltas && self.mode() == super::RepoMode::Archive {
            return Err(Error::InvalidArgument(
                "Can't use static deltas in an archive repo".into(),
            ));
        }
        let mut reach = Reachable::default();
        for (_, c) in &targets {
            if opts.commit_metadata_only {
                src.commit_chain_with_meta(c, opts.depth, &mut reach)?;
            } else {
                src.traverse_commit(c, opts.depth, &mut reach, false)?;
            }
        }
        // (what the caller verified stands: this check may read newer bytes)
        for (c, meta) in check.verify(self, src, &targets, &reach)? {
            verified.entry(c).or_insert(meta);
        }
        if deltas {
            for (r, c) in &targets {
                self.pull_local_delta(src, r, c, opts)?;
            }
        }
        if opts.commit_metadata_only {
            // Marked partial before any commit object lands (as a metadata-only pull).
            for (ty, c) in &reach.objects {
                let complete = self.has_object(ObjectType::Commit, c) && !self.is_partial(c);
                if *ty == ObjectType::Commit && !complete {
                    self.mark_partial(c)?;
                }
            }
        }
        let txn = self.begin()?;
        let todo: Vec<(ObjectType, Checksum)> = reach
            .objects
            .iter()
            .copied()
            .filter(|(ty, c)| !self.has_object(*ty, c))
            .collect();
        let content_bytes = std::sync::atomic::AtomicU64::new(0);
        // Where ostree imports an object as it is (same mode, or bare-user into
        // bare-user-only), it counts no content written.
        let raw_copy = self.mode() == src.mode()
            || (src.mode() == super::RepoMode::BareUser
                && self.mode() == super::RepoMode::BareUserOnly);
        // As ostree imports between repositories on one file system: objects stored the
        // same way in both (metadata always; content when the modes match) are hard-linked
        // after they are verified, not copied, when the source's object is our own user's
        // (a link shares the inode: another user could change it afterwards).
        let same_fs = {
            use std::os::unix::fs::MetadataExt;
            let dev = |r: &Repo| std::fs::metadata(r.path().join("objects")).map(|m| m.dev());
            matches!((dev(src), dev(self)), (Ok(a), Ok(b)) if a == b)
        };
        let euid = rustix::process::geteuid().as_raw();
        // A bare-user regular file is also a bare-user-only object when what its xattr
        // records is what bare-user-only keeps (owner 0:0, no xattrs, mode within 0775, the
        // file's own mode): ostree hard-links those too (its symlinks, stored as files,
        // never).
        let user_to_user_only =
            src.mode() == super::RepoMode::BareUser && self.mode() == super::RepoMode::BareUserOnly;
        let canonical = |c: &Checksum, p: &std::path::Path| -> bool {
            use std::os::unix::fs::MetadataExt;
            let Ok(fc) = src.read_file(c) else {
                return false;
            };
            let h = &fc.header;
            h.is_regular()
                && h.uid == 0
                && h.gid == 0
                && h.xattrs.is_empty()
                && h.mode & 0o7777 & !0o775 == 0
                && std::fs::symlink_metadata(p).is_ok_and(|m| m.mode() == h.mode)
        };
        let linkable = |ty: ObjectType, c: &Checksum| -> Option<std::path::PathBuf> {
            use std::os::unix::fs::MetadataExt;
            let same_form = ty != ObjectType::File || src.mode() == self.mode();
            let by_form = same_form
                || (user_to_user_only && canonical(c, &src.object_path(ObjectType::File, c)));
            if !same_fs || !by_form || ty == ObjectType::CommitMeta {
                return None;
            }
            let p = src.object_path(ty, c);
            std::fs::symlink_metadata(&p)
                .is_ok_and(|m| m.uid() == euid && (m.is_file() || m.file_type().is_symlink()))
                .then_some(p)
        };
        todo.par_iter().try_for_each(|(ty, c)| -> Result<()> {
            // A trusted source's objects are taken as they are (as ostree does), except a
            // setuid or setgid file: that one is always hashed first, whoever is trusted.
            let setid =
                |c: &Checksum| -> Result<bool> { Ok(src.read_file(c)?.header.mode & 0o6000 != 0) };
            let unverified = |ty: ObjectType, c: &Checksum| -> Result<bool> {
                Ok(opts.trusted && (ty != ObjectType::File || !setid(c)?))
            };
            if let Some(p) = linkable(*ty, c) {
                if !unverified(*ty, c)? {
                    src.verify_object(*ty, c)?;
                }
                if txn.link_verified(*ty, c, &p)? {
                    return Ok(());
                }
            }
            match ty {
                ObjectType::File => {
                    let mut fc = src.read_file(c)?;
                    if !fc.header.is_symlink() && !raw_copy {
                        content_bytes.fetch_add(fc.size, std::sync::atomic::Ordering::Relaxed);
                    }
                    let header = fc.header.clone();
                    if opts.trusted && header.mode & 0o6000 == 0 {
                        txn.write_file_trusted(&header, &mut fc.payload, fc.size, c)?;
                        return Ok(());
                    }
                    txn.write_file(&header, &mut fc.payload, fc.size, Some(c))
                        .map_err(|e| match e {
                            Error::ChecksumMismatch { actual, .. } => Error::ChecksumMismatch {
                                ty: *ty,
                                csum: *c,
                                actual,
                            },
                            e => e,
                        })?;
                }
                // What was verified, if the commit was (a source that swaps its
                // .commitmeta after the check gets the checked bytes stored, or none).
                ObjectType::CommitMeta => match verified.get(c) {
                    Some(Some(meta)) => txn.write_metadata_as(*ty, c, meta)?,
                    Some(None) => {}
                    None => {
                        src.load_commitmeta(c)?;
                        txn.write_metadata_as(*ty, c, &src.load_metadata(*ty, c)?)?;
                    }
                },
                _ => {
                    let b = src.load_metadata(*ty, c)?;
                    src.verify_object(*ty, c)?;
                    txn.write_metadata_as(*ty, c, &b)?;
                }
            }
            Ok(())
        })?;
        // Every commit whose tree came whole (the targets, and the parents within --depth)
        // is complete here now, also one an earlier metadata-only pull left partial (as
        // ostree's pull-local completes it).
        if !opts.commit_metadata_only {
            for (ty, c) in &reach.objects {
                if *ty == ObjectType::Commit
                    && self.is_partial(c)
                    && !src.is_partial(c)
                    && !targets.iter().any(|(_, t)| t == c)
                {
                    txn.remove_commitpartial(c);
                }
            }
        }
        let mut mirrors = Vec::new();
        for (r, c) in &targets {
            if !opts.commit_metadata_only {
                txn.remove_commitpartial(c);
            }
            if r.parse::<Checksum>().is_ok() {
                continue;
            }
            let name = RefName::parse(r)?;
            if let Some(cid) = &opts.mirror_collection_id {
                mirrors.push((
                    super::CollectionRef {
                        collection_id: cid.clone(),
                        ref_name: name.name,
                    },
                    *c,
                ));
                continue;
            }
            txn.set_ref(
                &RefName {
                    remote: opts.remote.clone(),
                    name: name.name,
                },
                Some(c),
            )?;
        }
        // Refs move inside the transaction, under the repo lock (see Transaction::set_ref).
        txn.commit()?;
        for (cr, c) in &mirrors {
            self.set_collection_ref(cr, Some(c))?;
        }
        let content = todo
            .iter()
            .filter(|(ty, _)| *ty == ObjectType::File)
            .count();
        let detached = todo
            .iter()
            .filter(|(ty, _)| *ty == ObjectType::CommitMeta)
            .count();
        Ok(PullLocalCounts {
            metadata: todo.len() - content - detached,
            content,
            detached,
            content_bytes: content_bytes.into_inner(),
        })
    }
}

impl Repo {
    /// The commits from `commit` back `depth` parents (-1: all), with their detached
    /// metadata, but not their trees (`--commit-metadata-only`).
    fn commit_chain_with_meta(
        &self,
        commit: &Checksum,
        depth: i64,
        out: &mut Reachable,
    ) -> Result<()> {
        let mut cur = Some(*commit);
        let mut remaining = depth;
        while let Some(c) = cur {
            if !out.objects.insert((ObjectType::Commit, c)) {
                break;
            }
            if self.has_object(ObjectType::CommitMeta, &c) {
                out.objects.insert((ObjectType::CommitMeta, c));
            }
            let parent = match self.load_commit(&c) {
                Ok(cm) => cm.parent,
                // History may be shallow below the first commit.
                Err(Error::ObjectMissing { .. }) if c != *commit => {
                    out.objects.remove(&(ObjectType::Commit, c));
                    break;
                }
                Err(e) => return Err(e),
            };
            if remaining == 0 {
                break;
            }
            if remaining > 0 {
                remaining -= 1;
            }
            cur = parent;
        }
        Ok(())
    }

    /// `pull-local --require-static-deltas`: apply the source's delta to `to` (from the
    /// commit `refspec` has here when it is complete and the source has that delta, else
    /// its scratch delta), as ostree's pull-local fetches it through the source's deltas.
    fn pull_local_delta(
        &self,
        src: &Repo,
        refspec: &str,
        to: &Checksum,
        opts: &PullLocalOptions,
    ) -> Result<()> {
        if self.has_object(ObjectType::Commit, to) && !self.is_partial(to) {
            return Ok(());
        }
        let refname = match refspec.parse::<Checksum>() {
            Ok(_) => None,
            Err(_) => Some(RefName::parse(refspec)?.name),
        };
        let current = match &refname {
            Some(name) => self.read_ref(&RefName {
                remote: opts.remote.clone(),
                name: name.clone(),
            })?,
            None => None,
        }
        .filter(|f| f != to && self.has_object(ObjectType::Commit, f) && !self.is_partial(f));
        // As ostree's pull from the source: the deltas its summary lists (or, when the
        // summary says deltas are indexed, the delta index for `to`); without a summary,
        // the delta from the ref's commit here, else the scratch one.
        let from = match src.delta_map_for(to)? {
            Some(map) => {
                crate::delta::choose_delta(self, &map, to, refname.is_none() || current.is_none())
                    .map(|(from, ..)| from)
            }
            None => [current, None]
                .into_iter()
                .take(if current.is_some() { 2 } else { 1 })
                .find(|from| {
                    src.path()
                        .join(crate::delta::delta_dir(from.as_ref(), to))
                        .join("superblock")
                        .is_file()
                }),
        };
        if let Some(from) = from {
            let dir = src.path().join(crate::delta::delta_dir(from.as_ref(), to));
            self.apply_static_delta_offline(&dir, None)?;
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "Static deltas required, but none found for {} to {to}",
            refname.as_deref().unwrap_or("")
        )))
    }

    /// The deltas this repository's summary offers to reach `to` (from its delta index when
    /// the summary says deltas are indexed); `None` when it has no summary.
    fn delta_map_for(&self, to: &Checksum) -> Result<Option<Vec<(String, Checksum)>>> {
        let path = self.path().join("summary");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", &path),
        };
        let summary = crate::object::Summary::parse(&bytes)
            .map_err(|e| Error::Other(format!("{}: invalid summary: {e}", path.display())))?;
        if let Some(crate::gvariant::Value::Bool(true)) =
            summary.meta("ostree.summary.indexed-deltas")
        {
            let index = self.path().join(crate::delta::index_path(to));
            let b = match std::fs::read(&index) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
                Err(e) => return Err(e).ctx("read", &index),
            };
            let v =
                crate::gvariant::decode(&b, &crate::gvariant::Type::of("a{sv}")).map_err(|e| {
                    Error::Other(format!("{}: invalid delta index: {e}", index.display()))
                })?;
            return Ok(Some(
                v.lookup("ostree.static-deltas")
                    .map(crate::delta::parse_delta_map)
                    .unwrap_or_default(),
            ));
        }
        Ok(Some(
            summary
                .meta("ostree.static-deltas")
                .map(crate::delta::parse_delta_map)
                .unwrap_or_default(),
        ))
    }
}
