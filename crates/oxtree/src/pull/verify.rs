//! Verification before storage: object hashes, then everything a commit must satisfy before
//! it is stored: its signatures (ed25519 and OpenPGP), its bindings (`ostree.ref-binding`,
//! `ostree.collection-binding`, as ostree's `verify_bindings`) and its age (the timestamp
//! or downgrade check, as ostree's `timestamp-check`).
//! Every path that stores a commit — the object walk, a static delta's superblock,
//! `pull-local` — runs [`verify_commit`] on the hash-verified bytes first, so a commit that
//! fails any check never enters the repository and no ref moves.

use super::walk::Shared;
use super::PullOptions;
use crate::error::{Error, Result};
use crate::gvariant::Value;
use crate::object::{Checksum, Commit, ObjectType};
use crate::repo::Repo;

/// Commit metadata naming the refs a commit was made for (`as`; `ostree commit -b` adds it).
const REF_BINDING: &str = "ostree.ref-binding";
/// Commit metadata naming the collection a commit was made for (`s`).
const COLLECTION_BINDING: &str = "ostree.collection-binding";

/// What a commit is pulled for: the ref it was asked for (checked against its ref binding)
/// and the commit that ref points at here now (the timestamp check compares with it).
/// Parent commits fetched for `--depth` are wanted for nothing in particular.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// The ref as named on the remote (`None` for a commit asked for by checksum).
    pub(crate) refname: Option<String>,
    /// The local ref's commit before the pull.
    pub(crate) current: Option<Checksum>,
}

impl Shared<'_> {
    pub(super) fn verify_hash(&self, ty: ObjectType, c: &Checksum, b: &[u8]) -> Result<()> {
        crate::repo::check_digest(ty, c, b)
    }

    /// [`verify_commit`] for a commit of this pull: wanted for the refs it was asked for,
    /// or (a parent) for nothing in particular.
    pub(super) fn verify_commit(
        &self,
        c: &Checksum,
        meta: Option<&[u8]>,
        bytes: &[u8],
    ) -> Result<Commit> {
        let wanted = self.targets.get(c).map(Vec::as_slice).unwrap_or(&[]);
        verify_commit(self.repo, self.opts, c, meta, bytes, wanted)
    }
}

/// Check commit `c` (whose `bytes` already hash to `c`) against everything `opts` demands
/// before it may be stored: signatures in its detached metadata `meta`, then its bindings
/// for each of `wanted` (for none in particular if empty), then — for a commit that was asked
/// for, not a parent — the timestamp checks. Returns the parsed commit.
pub(crate) fn verify_commit(
    repo: &Repo,
    opts: &PullOptions,
    c: &Checksum,
    meta: Option<&[u8]>,
    bytes: &[u8],
    wanted: &[Wanted],
) -> Result<Commit> {
    check_signatures(opts, c, meta, bytes)?;
    let commit = Commit::parse(bytes).map_err(|e| Error::corrupt(ObjectType::Commit, *c, e))?;
    if wanted.is_empty() {
        check_bindings(opts, c, &commit, None)?;
    }
    for w in wanted {
        check_bindings(opts, c, &commit, w.refname.as_deref())?;
    }
    if !wanted.is_empty() {
        check_timestamp(repo, opts, c, &commit, wanted)?;
    }
    Ok(commit)
}

/// ostree's `timestamp-check` (the commit is no older than the one each ref points at
/// now) and `timestamp-check-from-rev` (no older than that commit).
fn check_timestamp(
    repo: &Repo,
    opts: &PullOptions,
    c: &Checksum,
    commit: &Commit,
    wanted: &[Wanted],
) -> Result<()> {
    let compare = |old: &Checksum, reading: &dyn Fn() -> String| -> Result<()> {
        let o = repo
            .load_commit(old)
            .map_err(|e| Error::Other(format!("{}: {e}", reading())))?;
        compare_timestamps(old, o.timestamp, c, commit.timestamp)
    };
    if opts.timestamp_check {
        for w in wanted {
            if let Some(old) = w.current.filter(|o| o != c) {
                let r = w.refname.clone().unwrap_or_default();
                compare(&old, &|| format!("Reading {r} for timestamp-check"))?;
            }
        }
    }
    if let Some(rev) = opts.timestamp_check_from_rev.filter(|r| r != c) {
        compare(&rev, &|| {
            format!("Reading {rev} for timestamp-check-from-rev")
        })?;
    }
    Ok(())
}

/// Newer commits must not have an older timestamp (equal is fine), as ostree compares.
fn compare_timestamps(old: &Checksum, old_ts: u64, new: &Checksum, new_ts: u64) -> Result<()> {
    if new_ts >= old_ts {
        return Ok(());
    }
    Err(Error::TimestampCheck {
        new: *new,
        new_timestamp: new_ts,
        old: *old,
        old_timestamp: old_ts,
    })
}

impl Repo {
    /// The timestamp (downgrade) check on its own, for callers that move a deployable ref
    /// or deployment to a commit already in the repository: `new` may not be older than
    /// `current` (ostree's `ostree_sysroot_upgrader_check_timestamps`). Pulls run the same
    /// check before storing anything, with `PullOptions::timestamp_check(_from_rev)`.
    pub fn check_timestamps(&self, current: &Checksum, new: &Checksum) -> Result<()> {
        let (o, n) = (self.load_commit(current)?, self.load_commit(new)?);
        compare_timestamps(current, o.timestamp, new, n.timestamp)
    }
}

/// Signatures are checked over the exact commit bytes, before the commit (or its metadata)
/// is stored.
pub(crate) fn check_signatures(
    opts: &PullOptions,
    c: &Checksum,
    meta: Option<&[u8]>,
    bytes: &[u8],
) -> Result<()> {
    // ostree's signature engines (`sign-verify`): the first whose signatures verify wins;
    // the failure is ostree's text (`No signatures found`, `ed25519: Signature couldn't be
    // verified with: key '…'`, …).
    let verifiers = opts.commit_verifiers();
    if !verifiers.is_empty() {
        if meta.is_none() {
            return Err(Error::Signature {
                commit: *c,
                msg: "Can't verify commit without detached metadata".into(),
            });
        }
        crate::sign::verify_for_remote(&verifiers, bytes, meta)
            .map_err(|msg| Error::Signature { commit: *c, msg })?;
    }
    if let Some(keys) = &opts.gpg_keys {
        let report = crate::sign::gpg::verify_meta(meta, bytes, keys)?;
        if report.is_empty() {
            return Err(Error::GpgUnsigned(*c));
        }
        if !report
            .iter()
            .any(|r| r.status == crate::sign::gpg::GpgStatus::Good)
        {
            return Err(Error::Signature {
                commit: *c,
                msg: format!(
                    "no good OpenPGP signature (gpg-verify is on): {}",
                    crate::sign::gpg::describe(&report)
                ),
            });
        }
    }
    Ok(())
}

/// The ref-binding half of [`check_bindings`] for a commit fetched by checksum on behalf
/// of `refname` (the update agent's payload): a commit bound to refs must name it.
pub(crate) fn check_ref_binding(c: &Checksum, commit: &Commit, refname: &str) -> Result<()> {
    check_bindings(&PullOptions::default(), c, commit, Some(refname))
}

/// ostree's `verify_bindings`: a commit that names the refs it was made for
/// (`ostree.ref-binding`) must name the requested one; a remote with a collection ID only
/// accepts commits bound to that collection (`ostree.collection-binding`). Commits without
/// bindings (made before ostree wrote them) pass unless the remote has a collection ID.
/// The texts are ostree's.
pub(crate) fn check_bindings(
    opts: &PullOptions,
    c: &Checksum,
    commit: &Commit,
    refname: Option<&str>,
) -> Result<()> {
    if opts.disable_verify_bindings {
        return Ok(());
    }
    let fail = |msg: String| Error::Binding { commit: *c, msg };
    // A value of another type counts as absent (ostree's typed lookup does the same).
    let bound_refs: Option<Vec<&str>> = commit.meta(REF_BINDING).and_then(|v| match v {
        Value::Array(_, items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    });
    match (&bound_refs, refname) {
        (None, _) if opts.collection_id.is_none() => return Ok(()),
        (None, _) => {
            return Err(fail(
                "Expected commit metadata to have ref binding information, found none".into(),
            ))
        }
        (Some(refs), Some(r)) if !refs.contains(&r) => {
            let listed = if refs.is_empty() {
                "no refs".to_string()
            } else {
                refs.iter()
                    .map(|r| format!("‘{r}’"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(fail(format!(
                "Commit has no requested ref ‘{r}’ in ref binding metadata ({listed})"
            )));
        }
        _ => {}
    }
    if let Some(cid) = &opts.collection_id {
        match commit
            .meta(COLLECTION_BINDING)
            .and_then(Value::as_str)
        {
            None => {
                return Err(fail(
                    "Expected commit metadata to have collection ID binding information, found none"
                        .into(),
                ))
            }
            Some(b) if b != cid => {
                return Err(fail(format!(
                    "Commit has collection ID ‘{b}’ in collection binding metadata, while the remote it came from has collection ID ‘{cid}’"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `pull-local`'s verification: the pull's own checks, over commits read from another
/// local repository. With `--remote R` the commits must satisfy R's policy (sign-verify,
/// gpg-verify, sign-/gpg-verify-summary), so unsigned commits never land under
/// `refs/remotes/R/`; `--gpg-verify`/`--gpg-verify-summary` demand R's OpenPGP keyring as
/// in ostree. Bindings are checked against the source's collection ID (as ostree's local
/// pulls do), and everything before the copy starts.
pub(crate) struct LocalCheck {
    opts: PullOptions,
    summary: Option<crate::object::Summary>,
    /// Where the refs go: `refs/remotes/R/` with `--remote R`.
    remote: Option<String>,
}

impl LocalCheck {
    pub(crate) fn new(
        dst: &Repo,
        src: &Repo,
        o: &crate::repo::PullLocalOptions,
    ) -> Result<LocalCheck> {
        let mut opts = PullOptions {
            disable_verify_bindings: o.disable_verify_bindings,
            timestamp_check: o.timestamp_check,
            ..Default::default()
        };
        match &o.remote {
            None if o.gpg_verify || o.gpg_verify_summary => {
                return Err(Error::InvalidArgument(
                    "Must specify remote name to enable gpg verification".into(),
                ))
            }
            None => {}
            Some(r) => {
                // A remote name that is not configured is just a ref namespace, as in ostree.
                if dst.remote_url(r).is_ok() {
                    dst.remote_policy(r, &mut opts, super::policy::Verify::All)?;
                }
                if o.gpg_verify || o.gpg_verify_summary {
                    let keys = dst.remote_gpg_keys(r)?;
                    if keys.is_empty() {
                        return Err(Error::Config {
                            path: dst.path().join("config"),
                            msg: format!("--gpg-verify: remote {r:?} has no OpenPGP keys: import the publisher's key with `oxtree remote gpg-import {r} --keyring=FILE`"),
                        });
                    }
                    if o.gpg_verify && opts.gpg_keys.is_none() {
                        opts.gpg_keys = Some(keys.clone());
                    }
                    if o.gpg_verify_summary && opts.gpg_summary_keys.is_none() {
                        opts.gpg_summary_keys = Some(keys);
                    }
                }
            }
        }
        opts.collection_id = src
            .config()
            .get("core", "collection-id")
            .map(str::to_string);
        // A summary that must verify is read (and checked) as a pull reads a server's; else
        // the source's summary, when it has one, resolves refs as ostree's pull-local does
        // (a ref it does not list: "No such branch … in repository summary").
        let summary = if opts.signs_summary() || opts.gpg_summary_keys.is_some() {
            super::resolve::fetch_summary(
                &super::FileFetcher::new(src.path()),
                &opts,
                &super::PullProgress::default(),
            )?
        } else {
            src.read_summary()?
        };
        Ok(LocalCheck {
            opts,
            summary,
            remote: o.remote.clone(),
        })
    }

    /// Resolve `rev` in `src`: through the verified summary when there must be one.
    pub(crate) fn resolve(&self, src: &Repo, rev: &str) -> Result<Checksum> {
        match &self.summary {
            Some(s) if rev.parse::<Checksum>().is_err() => {
                let name = crate::repo::RefName::parse(rev)?.name;
                s.find(&name)
                    .map(|r| r.checksum)
                    .ok_or_else(|| Error::RefNotInSummary {
                        remote: src.path().display().to_string(),
                        refname: name,
                    })
            }
            // As a pull: a checksum, or a branch of the source (refs/heads/), not its
            // remote refs or a rev expression (ostree: "Refspec 'X' not found").
            _ => {
                if let Ok(c) = rev.parse::<Checksum>() {
                    return Ok(c);
                }
                let not_found = || Error::RefNotFound(rev.to_string());
                let invalid = || Error::InvalidArgument(format!("Invalid ref name {rev}"));
                let name = crate::repo::RefName::parse(rev).map_err(|_| invalid())?;
                if name.remote.is_some() {
                    return Err(invalid());
                }
                src.read_ref(&name)?.ok_or_else(not_found)
            }
        }
    }

    /// Verify each target (refs as given, and their commits) and every other commit about
    /// to be copied (`reach` minus what `dst` has), reading them from `src`. Returns the
    /// detached metadata each verified commit had (None: none), which is what must be
    /// stored: the source may change between this read and the copy.
    pub(crate) fn verify(
        &self,
        dst: &Repo,
        src: &Repo,
        targets: &[(String, Checksum)],
        reach: &crate::repo::Reachable,
    ) -> Result<VerifiedMeta> {
        let mut verified = VerifiedMeta::new();
        let mut wanted: std::collections::HashMap<Checksum, Vec<Wanted>> =
            std::collections::HashMap::new();
        for (r, c) in targets {
            let refname = match r.parse::<Checksum>() {
                Ok(_) => None,
                Err(_) => Some(crate::repo::RefName::parse(r)?.name),
            };
            let current = match &refname {
                Some(name) => dst.read_ref(&crate::repo::RefName {
                    remote: self.remote.clone(),
                    name: name.clone(),
                })?,
                None => None,
            };
            wanted
                .entry(*c)
                .or_default()
                .push(Wanted { refname, current });
        }
        for (ty, c) in &reach.objects {
            if *ty != ObjectType::Commit || (!wanted.contains_key(c) && dst.has_object(*ty, c)) {
                continue;
            }
            let bytes = src.load_metadata(ObjectType::Commit, c)?;
            let actual = Checksum::digest(&bytes);
            if actual != *c {
                return Err(Error::ChecksumMismatch {
                    ty: ObjectType::Commit,
                    csum: *c,
                    actual,
                });
            }
            let meta = src.load_commitmeta_bytes(c)?;
            let w = wanted.get(c).map(Vec::as_slice).unwrap_or(&[]);
            verify_commit(dst, &self.opts, c, meta.as_deref(), &bytes, w)?;
            verified.insert(*c, meta);
        }
        Ok(verified)
    }
}

/// The detached metadata of commits as it was verified, by commit (None: it had none).
pub(crate) type VerifiedMeta = std::collections::HashMap<Checksum, Option<Vec<u8>>>;
