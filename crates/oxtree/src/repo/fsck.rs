//! `fsck`: verify every ref, every object's checksum and structure, and every reference
//! between objects (spec §10), in the order and with the outcomes of `ostree fsck`:
//!
//! 1. each ref's commit (heads and remotes, then collection refs) is verified, and with
//!    `verify_bindings` its `ostree.ref-binding` must name the ref;
//! 2. every commit object is loaded; with `verify_back_refs` each ref its binding names must
//!    point back at it; partial commits (`state/<c>.commitpartial`) are counted and skipped;
//! 3. the objects the complete commits reach are verified one by one. A missing object, or
//!    a corrupt one that `delete` removes, marks its commits partial (marker `f`); a corrupt
//!    one stops fsck unless `all` (or `delete`) is given;
//! 4. commits partial because an earlier fsck found them broken fail the run, as any
//!    corruption does.
//!
//! Beyond ostree, detached metadata that does not decode is reported as corruption (ostree
//! does not read it at all).
//!
//! The library reports what happens as [`FsckEvent`]s in order (the CLI prints ostree's
//! lines from them) and a fatal error as ostree would stop with it. Texts of the problems
//! are ostree's (scripts grep "Corrupted commit object; checksum expected").
//!
//! `add_tombstones` follows ostree's documentation ("Add tombstones for missing commits"):
//! a commit whose parent is missing gets a tombstone *for that parent*. ostree 2022.7
//! instead deletes the child commit, which can leave a ref dangling; oxtree never deletes
//! a commit here.

use super::Repo;
use crate::error::{Error, Result};
use crate::gvariant::Value;
use crate::object::{Checksum, Commit, ObjectType};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Remove corrupt objects (they are then reported as missing).
    pub delete: bool,
    /// Report every corrupt object instead of stopping at the first (`--all`).
    pub all: bool,
    /// Each ref's commit must be bound to that ref (`--verify-bindings`).
    pub verify_bindings: bool,
    /// Each ref a commit is bound to must point at it (`--verify-back-refs`).
    pub verify_back_refs: bool,
    /// Add tombstones for missing parent commits (`--add-tombstones`).
    pub add_tombstones: bool,
    /// Updated per object verified.
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

/// The stages ostree announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckStage {
    ValidatingRefs,
    ValidatingCollectionRefs,
    EnumeratingCommits,
    /// Verifying the objects of this many (complete) commits.
    VerifyingContent(usize),
}

/// Something fsck did or found, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckEvent {
    Stage(FsckStage),
    /// An object that is not there, with the commits that reach it (none for a ref's
    /// commit).
    ObjectMissing {
        ty: ObjectType,
        csum: Checksum,
        commits: Vec<Checksum>,
    },
    /// A corrupt object (reported, not fatal: `all` or `delete`); `msg` is ostree's.
    Corrupt {
        msg: String,
        commits: Vec<Checksum>,
    },
    /// A corrupt object removed (`delete`).
    Deleted {
        ty: ObjectType,
        csum: Checksum,
    },
    /// A commit marked partial because an object it reaches is missing.
    MarkedPartial(Checksum),
    /// A tombstone written for this (missing) commit.
    Tombstone(Checksum),
    /// An object a commit that an earlier fsck marked partial still lacks (oxtree's
    /// addition: ostree only counts such commits).
    StillMissing {
        ty: ObjectType,
        csum: Checksum,
        commit: Checksum,
    },
}

#[derive(Debug, Default)]
pub struct FsckReport {
    pub events: Vec<FsckEvent>,
    /// Objects the complete commits reach, and how many were checked before fsck stopped.
    pub objects_total: usize,
    pub objects_checked: usize,
    /// Complete commits whose objects were verified.
    pub commits: usize,
    /// Partial commits skipped (a pull in progress, or marked by an earlier fsck).
    pub partial_commits: usize,
    /// Of those, the ones an earlier fsck marked (each one fails the run).
    pub fsck_partial_commits: usize,
    /// A missing or corrupt object was found.
    pub corruption: bool,
    /// Why fsck stopped or failed, in ostree's words; `None` when the repository is fine.
    pub fatal: Option<String>,
}

impl FsckReport {
    pub fn ok(&self) -> bool {
        self.fatal.is_none()
    }

    /// Every problem as one line each (missing and corrupt objects, then the failure).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .events
            .iter()
            .filter_map(|e| match e {
                FsckEvent::ObjectMissing { ty, csum, commits } => {
                    Some(missing_text(*ty, csum, commits))
                }
                FsckEvent::Corrupt { msg, commits } => Some(in_commits(msg, commits)),
                FsckEvent::StillMissing { ty, csum, commit } => {
                    Some(missing_text(*ty, csum, &[*commit]))
                }
                _ => None,
            })
            .collect();
        out.extend(self.fatal.clone());
        out
    }
}

/// `Object missing in commits A, B: X.dirtree` (ostree's stderr line).
pub fn missing_text(ty: ObjectType, csum: &Checksum, commits: &[Checksum]) -> String {
    if commits.is_empty() {
        format!("Object missing: {csum}.{ty}")
    } else {
        format!("Object missing in commits {}: {csum}.{ty}", join(commits))
    }
}

/// ostree's "In commits A, B: " prefix.
pub fn in_commits(msg: &str, commits: &[Checksum]) -> String {
    if commits.is_empty() {
        msg.to_string()
    } else {
        format!("In commits {}: {msg}", join(commits))
    }
}

fn join(cs: &[Checksum]) -> String {
    cs.iter().map(|c| c.to_hex()).collect::<Vec<_>>().join(", ")
}

/// What verifying one object found.
enum Verdict {
    Ok,
    Missing,
    Corrupt(String),
}

/// ostree's `ostree_repo_fsck_object` wording for a failed object.
fn corrupt_text(ty: ObjectType, csum: &Checksum, e: &Error) -> String {
    let what = match ty {
        ObjectType::File => format!("fsck content object {csum}"),
        _ => format!("fsck {csum}.{ty}"),
    };
    let why = match e {
        Error::ChecksumMismatch { actual, .. } => {
            format!("Corrupted {ty} object; checksum expected='{csum}' actual='{actual}'")
        }
        Error::Corrupt { reason, .. } => reason.clone(),
        e => e.to_string(),
    };
    format!("{what}: {why}")
}

fn is_missing(e: &Error) -> bool {
    match e {
        Error::ObjectMissing { .. } => true,
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// The refs a commit's metadata binds it to, if it has the key (typed as ostree reads it).
fn bound_refs(commit: &Commit) -> Option<Vec<&str>> {
    commit.meta("ostree.ref-binding").and_then(|v| match v {
        Value::Array(_, items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    })
}

/// ostree's `verify_bindings` for a commit reached through `refname` (in collection `cid`).
fn check_bindings(
    c: &Checksum,
    commit: &Commit,
    cid: Option<&str>,
    refname: &str,
) -> std::result::Result<(), String> {
    let fail = |m: String| format!("Commit {c}: {m}");
    match bound_refs(commit) {
        None if cid.is_none() => return Ok(()),
        None => {
            return Err(fail(
                "Expected commit metadata to have ref binding information, found none".into(),
            ))
        }
        Some(refs) if !refs.contains(&refname) => {
            let listed = if refs.is_empty() {
                "no refs".to_string()
            } else {
                refs.iter()
                    .map(|r| format!("‘{r}’"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(fail(format!(
                "Commit has no requested ref ‘{refname}’ in ref binding metadata ({listed})"
            )));
        }
        Some(_) => {}
    }
    if let Some(cid) = cid {
        match commit.meta("ostree.collection-binding").and_then(Value::as_str) {
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

/// A ref to check: how ostree names it in messages, its binding name and collection.
struct RefToCheck {
    display: String,
    name: String,
    collection: Option<String>,
    commit: Checksum,
}

impl Repo {
    /// What a collection ref resolves to, as ostree's `ostree_repo_resolve_collection_ref`
    /// finds it: a local branch when the repository itself has that collection ID, a mirror
    /// in `refs/mirrors/CID/REF`, or the ref of a remote configured with that collection ID.
    fn resolve_collection_ref(&self, cid: &str, name: &str) -> Result<Option<Checksum>> {
        Ok(self
            .list_collection_refs(Some(cid), false)?
            .into_iter()
            .find(|(r, _)| r.ref_name == name)
            .map(|(_, c)| c))
    }

    fn verdict(&self, ty: ObjectType, c: &Checksum) -> Verdict {
        match self.verify_object(ty, c) {
            Ok(()) => Verdict::Ok,
            Err(e) if is_missing(&e) => Verdict::Missing,
            Err(e) => Verdict::Corrupt(corrupt_text(ty, c, &e)),
        }
    }

    /// ostree's `fsck_one_object`: `Err(msg)` when fsck must stop.
    fn fsck_one(
        &self,
        ty: ObjectType,
        c: &Checksum,
        verdict: Verdict,
        commits: &[Checksum],
        opts: &FsckOptions,
        rep: &mut FsckReport,
    ) -> std::result::Result<(), String> {
        let missing = match verdict {
            Verdict::Ok => false,
            Verdict::Missing => {
                rep.events.push(FsckEvent::ObjectMissing {
                    ty,
                    csum: *c,
                    commits: commits.to_vec(),
                });
                true
            }
            Verdict::Corrupt(msg) if opts.delete => {
                rep.events.push(FsckEvent::Corrupt {
                    msg,
                    commits: commits.to_vec(),
                });
                if std::fs::remove_file(self.object_path(ty, c)).is_ok() {
                    rep.events.push(FsckEvent::Deleted { ty, csum: *c });
                }
                true
            }
            Verdict::Corrupt(msg) if opts.all => {
                rep.corruption = true;
                rep.events.push(FsckEvent::Corrupt {
                    msg,
                    commits: commits.to_vec(),
                });
                false
            }
            Verdict::Corrupt(msg) => {
                rep.corruption = true;
                return Err(in_commits(&msg, commits));
            }
        };
        if missing {
            rep.corruption = true;
            if !matches!(ty, ObjectType::Commit | ObjectType::CommitMeta) {
                for pc in commits {
                    if !self.is_partial(pc) {
                        rep.events.push(FsckEvent::MarkedPartial(*pc));
                        let marker = self
                            .path()
                            .join("state")
                            .join(format!("{pc}.commitpartial"));
                        crate::fsutil::write_atomic(&marker, b"f", self.fsync_enabled())
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn fsck(&self, opts: &FsckOptions) -> Result<FsckReport> {
        let mut rep = FsckReport::default();
        if let Err(msg) = self.fsck_inner(opts, &mut rep) {
            rep.fatal = Some(msg);
        }
        Ok(rep)
    }

    fn fsck_inner(
        &self,
        opts: &FsckOptions,
        rep: &mut FsckReport,
    ) -> std::result::Result<(), String> {
        // (ostree's help says --verify-back-refs implies --verify-bindings; 2022.7 does
        // not check the refs' bindings for it, and neither does this.)
        let verify_bindings = opts.verify_bindings;
        let s = |e: Error| e.to_string();

        rep.events.push(FsckEvent::Stage(FsckStage::ValidatingRefs));
        let refs: Vec<RefToCheck> = self
            .list_refs()
            .map_err(s)?
            .into_iter()
            .map(|(r, c)| RefToCheck {
                display: r.to_string(),
                name: r.name.clone(),
                collection: None,
                commit: c,
            })
            .collect();
        self.check_refs(&refs, verify_bindings, opts, rep)?;
        rep.events
            .push(FsckEvent::Stage(FsckStage::ValidatingCollectionRefs));
        // ostree lists them without the remotes' refs, checked as refs above.
        let crefs: Vec<RefToCheck> = self
            .list_collection_refs(None, true)
            .map_err(s)?
            .into_iter()
            .map(|(r, c)| RefToCheck {
                display: format!("({}, {})", r.collection_id, r.ref_name),
                name: r.ref_name,
                collection: Some(r.collection_id),
                commit: c,
            })
            .collect();
        self.check_refs(&crefs, verify_bindings, opts, rep)?;

        rep.events
            .push(FsckEvent::Stage(FsckStage::EnumeratingCommits));
        let all_commits: Vec<Checksum> = self
            .list_objects_with_parents()
            .map_err(s)?
            .into_iter()
            .filter(|(ty, _)| *ty == ObjectType::Commit)
            .map(|(_, c)| c)
            .collect();
        let mut complete = Vec::new();
        let mut tombstones = BTreeSet::new();
        for c in &all_commits {
            let commit = self.load_commit(c).map_err(s)?;
            if opts.verify_back_refs {
                self.check_back_refs(c, &commit)?;
            }
            if opts.add_tombstones {
                if let Some(p) = commit.parent {
                    if !self.has_object(ObjectType::Commit, &p) {
                        tombstones.insert(p);
                    }
                }
            }
            if self.is_partial(c) {
                rep.partial_commits += 1;
                let marker = self.path().join("state").join(format!("{c}.commitpartial"));
                if std::fs::read(&marker).is_ok_and(|b| b == b"f") {
                    rep.fsck_partial_commits += 1;
                }
            } else {
                complete.push(*c);
            }
        }
        rep.commits = complete.len();
        rep.events
            .push(FsckEvent::Stage(FsckStage::VerifyingContent(
                complete.len(),
            )));

        // What the complete commits reach, and which commits reach each object. Only
        // dirtrees are read here (a missing one stops fsck, as in ostree; a corrupt one is
        // not descended into); every object is verified below.
        let mut parents: BTreeMap<(ObjectType, Checksum), BTreeSet<Checksum>> = BTreeMap::new();
        for c in &complete {
            let cm = self.load_commit(c).map_err(s)?;
            parents
                .entry((ObjectType::Commit, *c))
                .or_default()
                .insert(*c);
            let mut stack = vec![(cm.root_tree, cm.root_meta)];
            let mut seen = BTreeSet::new();
            while let Some((t, m)) = stack.pop() {
                parents
                    .entry((ObjectType::DirMeta, m))
                    .or_default()
                    .insert(*c);
                parents
                    .entry((ObjectType::DirTree, t))
                    .or_default()
                    .insert(*c);
                if !seen.insert(t) {
                    continue;
                }
                let dt = match self.load_dirtree(&t) {
                    Ok(dt) => dt,
                    Err(Error::ObjectMissing { ty, csum }) => {
                        return Err(format!("No such metadata object {csum}.{ty}"))
                    }
                    // Corrupt: reported (with its commits) when its turn comes below.
                    Err(_) => continue,
                };
                for (_, f) in &dt.files {
                    parents
                        .entry((ObjectType::File, *f))
                        .or_default()
                        .insert(*c);
                }
                for (_, st, sm) in &dt.dirs {
                    stack.push((*st, *sm));
                }
            }
        }
        rep.objects_total = parents.len();
        if let Some(p) = &opts.progress {
            p.add_total(parents.len() as u64);
        }
        let keys: Vec<(ObjectType, Checksum)> = parents.keys().copied().collect();
        let verdicts: Vec<Verdict> = keys
            .par_iter()
            .map(|(ty, c)| {
                let v = self.verdict(*ty, c);
                if let Some(p) = &opts.progress {
                    p.item(0);
                }
                v
            })
            .collect();
        for ((key, commits), verdict) in parents.iter().zip(verdicts) {
            let commits: Vec<Checksum> = commits.iter().copied().collect();
            self.fsck_one(key.0, &key.1, verdict, &commits, opts, rep)?;
            rep.objects_checked += 1;
        }
        // Detached metadata (signatures) must at least decode. ostree does not look at it;
        // oxtree reports an unreadable one as corruption of its commit (it is not counted
        // among the objects, so the counts stay ostree's).
        for c in &complete {
            if !self.has_object(ObjectType::CommitMeta, c) {
                continue;
            }
            let verdict = match self.load_commitmeta(c) {
                Ok(_) => Verdict::Ok,
                Err(e) if is_missing(&e) => Verdict::Ok,
                Err(e) => Verdict::Corrupt(corrupt_text(ObjectType::CommitMeta, c, &e)),
            };
            self.fsck_one(ObjectType::CommitMeta, c, verdict, &[*c], opts, rep)?;
        }

        if opts.add_tombstones && !tombstones.is_empty() {
            let mut me = Repo::open(self.path()).map_err(s)?;
            me.enable_tombstone_commits().map_err(s)?;
            let _lock = me.lock(true).map_err(s)?;
            for t in &tombstones {
                rep.events.push(FsckEvent::Tombstone(*t));
                me.write_tombstone(t).map_err(s)?;
            }
        }
        if rep.fsck_partial_commits > 0 {
            // ostree only counts them; oxtree also names what each still lacks.
            for c in &all_commits {
                let marker = self.path().join("state").join(format!("{c}.commitpartial"));
                if !std::fs::read(&marker).is_ok_and(|b| b == b"f") {
                    continue;
                }
                let mut reach = super::Reachable::default();
                if self.traverse_commit(c, 0, &mut reach, true).is_ok() {
                    let mut missing: Vec<_> = reach.missing.iter().map(|m| (m.0, m.1)).collect();
                    missing.sort();
                    missing.dedup();
                    for (ty, csum) in missing {
                        rep.events.push(FsckEvent::StillMissing {
                            ty,
                            csum,
                            commit: *c,
                        });
                    }
                }
            }
            return Err(format!(
                "{} partial commits from fsck-detected corruption",
                rep.fsck_partial_commits
            ));
        }
        if rep.corruption {
            return Err("Repository corruption encountered".into());
        }
        Ok(())
    }

    fn check_refs(
        &self,
        refs: &[RefToCheck],
        verify_bindings: bool,
        opts: &FsckOptions,
        rep: &mut FsckReport,
    ) -> std::result::Result<(), String> {
        for r in refs {
            let v = self.verdict(ObjectType::Commit, &r.commit);
            self.fsck_one(ObjectType::Commit, &r.commit, v, &[], opts, rep)?;
            let commit = self.load_commit(&r.commit).map_err(|e| {
                let why = match e {
                    Error::ObjectMissing { ty, csum } => {
                        format!("No such metadata object {csum}.{ty}")
                    }
                    e => corrupt_text(ObjectType::Commit, &r.commit, &e),
                };
                format!("Loading commit for ref {}: {why}", r.display)
            })?;
            if verify_bindings {
                check_bindings(&r.commit, &commit, r.collection.as_deref(), &r.name)?;
            }
        }
        Ok(())
    }

    /// `--verify-back-refs`: each ref the commit is bound to resolves to it.
    fn check_back_refs(&self, c: &Checksum, commit: &Commit) -> std::result::Result<(), String> {
        let cid = commit
            .meta("ostree.collection-binding")
            .and_then(Value::as_str);
        for r in bound_refs(commit).unwrap_or_default() {
            let target = match cid {
                Some(cid) => self
                    .resolve_collection_ref(cid, r)
                    .map_err(|e| e.to_string())?,
                None => match self.resolve_rev(r) {
                    Ok(t) => Some(t),
                    Err(Error::RefNotFound(_)) => None,
                    Err(e) => return Err(e.to_string()),
                },
            };
            let what = match cid {
                Some(cid) => format!("Collection–ref ({cid}, {r})"),
                None => format!("Ref ‘{r}’"),
            };
            match target {
                None => return Err(format!("{what} in bindings for commit {c} does not exist")),
                Some(t) if t != *c => {
                    return Err(format!(
                        "{what} in bindings for commit {c} does not resolve to that commit"
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
