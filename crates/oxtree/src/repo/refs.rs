//! Refs: `refs/heads/NAME` and `refs/remotes/REMOTE/NAME` files holding a hex checksum, written
//! atomically; aliases (`refs/heads/ALIAS` symlinks to another local ref, as `ostree refs
//! --create=ALIAS --alias TARGET` makes them); collection refs (`(collection-id, ref)`:
//! `refs/mirrors/COLLECTION-ID/NAME`, or `refs/heads/NAME` for the repository's own
//! `core.collection-id`, or `refs/remotes/REMOTE/NAME` for a remote whose `collection-id`
//! it is); and revision syntax as in `ostree rev-parse`: full or unique partial commit
//! checksums, `[REMOTE:]REF`, `^` parent suffixes.

use super::Repo;
use crate::error::{Error, IoContext, Result};
use crate::object::{validate_collection_id, validate_ref, validate_remote_name, Checksum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A ref, local (`remote == None`) or remote-tracking.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName {
    pub remote: Option<String>,
    pub name: String,
}

impl RefName {
    /// Parse `[REMOTE:]REF`; anything else is refused with ostree's "Invalid refspec" text.
    pub fn parse(refspec: &str) -> Result<RefName> {
        let invalid = || Error::InvalidArgument(format!("Invalid refspec {refspec}"));
        let (remote, name) = match refspec.split_once(':') {
            Some((r, n)) => {
                validate_remote_name(r).map_err(|_| invalid())?;
                (Some(r.to_string()), n)
            }
            None => (None, refspec),
        };
        validate_ref(name).map_err(|_| invalid())?;
        Ok(RefName {
            remote,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for RefName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.remote {
            Some(r) => write!(f, "{r}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A ref within a collection (ostree's `OstreeCollectionRef`): collection IDs name a set of
/// refs independently of where they are served from, so the same `(collection, ref)` can be
/// pulled from a server, a USB stick or a LAN peer and still be verified as the same thing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectionRef {
    pub collection_id: String,
    pub ref_name: String,
}

impl CollectionRef {
    /// A validated collection ref (ostree's texts for a bad collection ID or ref name).
    pub fn new(collection_id: &str, ref_name: &str) -> Result<CollectionRef> {
        validate_collection_id(collection_id).map_err(Error::InvalidArgument)?;
        validate_ref(ref_name)
            .map_err(|_| Error::InvalidArgument(format!("Invalid ref name {ref_name}")))?;
        Ok(CollectionRef {
            collection_id: collection_id.to_string(),
            ref_name: ref_name.to_string(),
        })
    }
}

impl std::fmt::Display for CollectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.collection_id, self.ref_name)
    }
}

/// Which refs a listing with a prefix returns (ostree's `ostree_repo_list_refs_ext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListRefsOptions {
    /// Name refs relative to a directory prefix (`ostree refs PREFIX`) instead of by their
    /// full names (`--list`, `--delete`).
    pub cut_prefix: bool,
    /// Only aliases, each with its target (`ostree refs --alias`).
    pub aliases: bool,
}

/// What a listed ref points at: a commit, or (an alias) another local ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Commit(Checksum),
    Alias(String),
}

impl std::fmt::Display for RefTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefTarget::Commit(c) => write!(f, "{c}"),
            RefTarget::Alias(a) => f.write_str(a),
        }
    }
}

impl Repo {
    fn ref_path(&self, r: &RefName) -> PathBuf {
        match &r.remote {
            Some(rem) => self.path.join("refs/remotes").join(rem).join(&r.name),
            None => self.path.join("refs/heads").join(&r.name),
        }
    }

    /// The repository's own collection ID (`core.collection-id`), if it has one.
    pub fn collection_id(&self) -> Option<&str> {
        self.config()
            .get("core", "collection-id")
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// The checksum a ref points to, or `None` if the ref does not exist. An alias is read
    /// through to the ref it names.
    pub fn read_ref(&self, r: &RefName) -> Result<Option<Checksum>> {
        read_ref_file(&self.ref_path(r))
    }

    /// Point a ref at `target`, or delete it with `None`. Atomic: tmp, fsync, rename, fsync
    /// of the directory (and of the parents of directories it had to create); a deletion
    /// fsyncs the directory too, so a deleted ref does not come back after a crash.
    pub fn set_ref(&self, r: &RefName, target: Option<&Checksum>) -> Result<()> {
        self.set_ref_only(r, target)?;
        self.maybe_regenerate_summary()
    }

    /// With `core.auto-update-summary` (or its older name `core.commit-update-summary`)
    /// on, regenerate the summary after a ref changed, as ostree does after each ref
    /// change (a commit to a branch, `reset`, `refs --create/--delete`, a pull).
    pub(crate) fn maybe_regenerate_summary(&self) -> Result<()> {
        let on = |k: &str| self.config().get_bool("core", k) == Some(true);
        if on("auto-update-summary") || on("commit-update-summary") {
            super::Repo::open(&self.path)?.regenerate_summary()?;
        }
        Ok(())
    }

    /// [`Repo::set_ref`] without the summary update (a transaction applies several refs,
    /// then updates it once).
    pub(crate) fn set_ref_only(&self, r: &RefName, target: Option<&Checksum>) -> Result<()> {
        validate_ref(&r.name).map_err(Error::InvalidArgument)?;
        let p = self.ref_path(r);
        match target {
            Some(c) => {
                self.ensure_ref_dir(&p)?;
                crate::fsutil::write_atomic(&p, format!("{c}\n").as_bytes(), self.fsync)
            }
            None => self.remove_ref_file(&p, || Error::RefNotFound(r.to_string())),
        }
    }

    fn remove_ref_file(&self, p: &Path, missing: impl FnOnce() -> Error) -> Result<()> {
        let parent = p.parent().unwrap_or(&self.path);
        match std::fs::remove_file(p) {
            Ok(()) if self.fsync => crate::fsutil::fsync_dir(parent),
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
            Err(e) => Err(e).ctx("remove", p),
        }
    }

    /// Create the directories a new ref file needs, durably. An empty directory where the
    /// ref file goes (left when the refs below it were deleted) is removed; a non-empty one
    /// is a conflict, reported in ostree's words.
    fn ensure_ref_dir(&self, p: &Path) -> Result<()> {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            let first = std::fs::read_dir(p)
                .ctx("read directory", p)?
                .flatten()
                .next()
                .map(|e| e.file_name().to_string_lossy().into_owned());
            match first {
                Some(child) => {
                    let name = p
                        .strip_prefix(self.path.join("refs"))
                        .ok()
                        .and_then(|r| {
                            r.iter()
                                .skip(1)
                                .collect::<PathBuf>()
                                .to_str()
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| p.display().to_string());
                    return Err(Error::InvalidArgument(format!(
                        "Conflict: {child} exists under {name} when attempting write"
                    )));
                }
                None => std::fs::remove_dir(p).ctx("remove empty directory", p)?,
            }
        }
        let parent = p.parent().unwrap_or(&self.path);
        if !parent.is_dir() {
            // A ref below a ref (`main/sub` when `main` is a ref): ostree's message.
            let refs = self.path.join("refs");
            let mut d = parent;
            while d.starts_with(&refs) && d != refs {
                if std::fs::symlink_metadata(d).is_ok_and(|m| !m.is_dir()) {
                    let rel = p.strip_prefix(&self.path).unwrap_or(p);
                    return Err(Error::InvalidArgument(format!(
                        "openat({}): Not a directory",
                        rel.display()
                    )));
                }
                d = d.parent().unwrap_or(&refs);
            }
            std::fs::create_dir_all(parent).ctx("create directory", parent)?;
            if self.fsync {
                let refs = self.path.join("refs");
                let mut d = parent.parent();
                while let Some(dir) = d.filter(|d| d.starts_with(&refs)) {
                    crate::fsutil::fsync_dir(dir)?;
                    d = dir.parent();
                }
            }
        }
        Ok(())
    }

    /// All refs: local heads (aliases read through) and remote-tracking refs, sorted.
    pub fn list_refs(&self) -> Result<BTreeMap<RefName, Checksum>> {
        let mut out = BTreeMap::new();
        let heads = self.path.join("refs/heads");
        walk_refs(&heads, &heads, true, &mut |name, c| {
            out.insert(RefName { remote: None, name }, c);
        })?;
        for (remote, base) in self.remote_ref_dirs()? {
            walk_refs(&base, &base, true, &mut |name, c| {
                out.insert(
                    RefName {
                        remote: Some(remote.clone()),
                        name,
                    },
                    c,
                );
            })?;
        }
        Ok(out)
    }

    /// `refs/remotes/REMOTE/` directories, by remote name.
    fn remote_ref_dirs(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = self.remote_ref_dirs_unsorted()?;
        out.sort();
        Ok(out)
    }

    /// `refs/remotes/REMOTE/` directories in the directory's own order, which is the order
    /// ostree's `find_ref_in_remotes` tries them in.
    fn remote_ref_dirs_unsorted(&self) -> Result<Vec<(String, PathBuf)>> {
        let remotes = self.path.join("refs/remotes");
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&remotes) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).ctx("read directory", &remotes),
        };
        for e in rd {
            let e = e.ctx("read directory", &remotes)?;
            let remote = e.file_name().to_string_lossy().into_owned();
            let base = e.path();
            if base.is_dir() && validate_remote_name(&remote).is_ok() {
                out.push((remote, base));
            }
        }
        Ok(out)
    }

    /// Refs as `ostree refs [PREFIX]` lists them, by display name (`REF` or `REMOTE:REF`).
    /// Without a prefix: every local ref (aliases included) and every remote ref. A prefix
    /// `[REMOTE:]PATH` names a directory of refs (listed below it, relative to it with
    /// `cut_prefix`) or one ref; `REMOTE:` alone names all of a remote's refs. With
    /// `aliases`, only aliases are listed, each with the ref it names; a prefix naming one
    /// ref shows it with its commit, as ostree does.
    pub fn list_refs_prefixed(
        &self,
        prefix: Option<&str>,
        opts: ListRefsOptions,
    ) -> Result<BTreeMap<String, RefTarget>> {
        let mut out = BTreeMap::new();
        let heads = self.path.join("refs/heads");
        let Some(prefix) = prefix else {
            // A repository without its refs directories is damaged: ostree's error.
            for d in ["refs/heads", "refs/remotes"] {
                if std::fs::symlink_metadata(self.path.join(d)).is_err() {
                    return Err(Error::Other(format!(
                        "Listing refs: opendir({d}): No such file or directory"
                    )));
                }
            }
            collect_refs(&heads, &heads, "", opts.aliases, &mut out)?;
            if !opts.aliases {
                for (remote, base) in self.remote_ref_dirs()? {
                    collect_refs(&base, &base, &format!("{remote}:"), false, &mut out)?;
                }
            }
            return Ok(out);
        };
        // `REMOTE:` (and ostree's `REMOTE:.`) is the whole remote.
        if let Some(remote) = prefix
            .strip_suffix(":.")
            .or_else(|| prefix.strip_suffix(':'))
        {
            validate_remote_name(remote)
                .map_err(|_| Error::InvalidArgument(format!("Invalid refspec {prefix}")))?;
            let base = self.path.join("refs/remotes").join(remote);
            if !opts.aliases {
                collect_refs(&base, &base, &format!("{remote}:"), false, &mut out)?;
            }
            return Ok(out);
        }
        let r = RefName::parse(prefix)?;
        let p = self.ref_path(&r);
        let shown = |name: &str| match &r.remote {
            Some(rem) => format!("{rem}:{name}"),
            None => name.to_string(),
        };
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                let lead = if opts.cut_prefix {
                    shown("")
                } else {
                    shown(&format!("{}/", r.name))
                };
                collect_refs(&p, &p, &lead, opts.aliases, &mut out)?;
            }
            Ok(_) => {
                if let Some(c) = read_ref_file(&p)? {
                    out.insert(shown(&r.name), RefTarget::Commit(c));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("stat", p),
        }
        Ok(out)
    }

    /// Every alias among the local refs, with the ref it names.
    pub fn list_ref_aliases(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .list_refs_prefixed(
                None,
                ListRefsOptions {
                    aliases: true,
                    ..Default::default()
                },
            )?
            .into_iter()
            .filter_map(|(k, v)| match v {
                RefTarget::Alias(a) => Some((k, a)),
                RefTarget::Commit(_) => None,
            })
            .collect())
    }

    /// Make local ref `alias` an alias of local ref `target` (which must exist), replacing
    /// whatever `alias` was: a relative symlink `refs/heads/ALIAS` → `TARGET`, as ostree
    /// writes it, swapped in atomically. An alias that would lead back to itself is refused
    /// (ostree writes such a loop, and then cannot list its refs).
    pub fn set_ref_alias(&self, alias: &str, target: &str) -> Result<()> {
        validate_ref(alias)
            .map_err(|_| Error::InvalidArgument(format!("Invalid refspec {alias}")))?;
        let missing =
            || Error::InvalidArgument(format!("Cannot create alias to non-existent ref: {target}"));
        if validate_ref(target).is_err() {
            return Err(missing());
        }
        let heads = self.path.join("refs/heads");
        if read_ref_file(&heads.join(target))?.is_none() {
            return Err(missing());
        }
        // Follow the target's own alias chain: it must not come back to `alias`.
        let aliases = self.list_ref_aliases()?;
        let mut t = target.to_string();
        for _ in 0..=aliases.len() {
            if t == alias {
                return Err(Error::InvalidArgument(format!(
                    "Cannot create alias {alias} -> {target}: the aliases would form a loop"
                )));
            }
            match aliases.get(&t) {
                Some(next) => t = next.clone(),
                None => break,
            }
        }
        let p = heads.join(alias);
        self.ensure_ref_dir(&p)?;
        let depth = alias.matches('/').count();
        let link = format!("{}{target}", "../".repeat(depth));
        let dir = p.parent().unwrap_or(&heads);
        let tmp = dir.join(format!(".tmp-alias-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&link, &tmp).ctx("create symlink", &tmp)?;
        if let Err(e) = std::fs::rename(&tmp, &p) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).ctx("rename to", p);
        }
        if self.fsync {
            crate::fsutil::fsync_dir(dir)?;
        }
        self.maybe_regenerate_summary()
    }

    fn collection_ref_path(&self, r: &CollectionRef) -> PathBuf {
        if self.collection_id() == Some(r.collection_id.as_str()) {
            self.path.join("refs/heads").join(&r.ref_name)
        } else {
            self.path
                .join("refs/mirrors")
                .join(&r.collection_id)
                .join(&r.ref_name)
        }
    }

    /// The commit a collection ref points at here: `refs/heads/REF` for the repository's
    /// own collection, `refs/mirrors/COLLECTION-ID/REF` for others.
    pub fn read_collection_ref(&self, r: &CollectionRef) -> Result<Option<Checksum>> {
        read_ref_file(&self.collection_ref_path(r))
    }

    /// Set (or with `None` delete) a collection ref, as `ostree refs --collections --create`
    /// and mirror pulls of collection refs write them; atomic like [`Repo::set_ref`].
    pub fn set_collection_ref(&self, r: &CollectionRef, target: Option<&Checksum>) -> Result<()> {
        validate_collection_id(&r.collection_id).map_err(Error::InvalidArgument)?;
        validate_ref(&r.ref_name).map_err(Error::InvalidArgument)?;
        let p = self.collection_ref_path(r);
        match target {
            Some(c) => {
                self.ensure_ref_dir(&p)?;
                crate::fsutil::write_atomic(&p, format!("{c}\n").as_bytes(), self.fsync)
            }
            None => self.remove_ref_file(&p, || {
                Error::NotFound(format!("Collection–ref {r} not found"))
            }),
        }
    }

    /// Every collection ref (ostree's `ostree_repo_list_collection_refs`), optionally of one
    /// collection only: local refs when the repository has a collection ID, the mirrors in
    /// `refs/mirrors/`, and (unless `exclude_remotes`) the refs of each remote configured
    /// with a `collection-id`. Refs without a collection are not collection refs.
    pub fn list_collection_refs(
        &self,
        collection_id: Option<&str>,
        exclude_remotes: bool,
    ) -> Result<BTreeMap<CollectionRef, Checksum>> {
        if let Some(c) = collection_id {
            validate_collection_id(c).map_err(Error::InvalidArgument)?;
        }
        let wanted = |c: &str| collection_id.is_none_or(|w| w == c);
        let mut out = BTreeMap::new();
        let mut add = |cid: &str, base: &Path| -> Result<()> {
            walk_refs(base, base, true, &mut |name, c| {
                out.insert(
                    CollectionRef {
                        collection_id: cid.to_string(),
                        ref_name: name,
                    },
                    c,
                );
            })
        };
        if let Some(own) = self.collection_id().filter(|c| wanted(c)) {
            add(own, &self.path.join("refs/heads"))?;
        }
        let mirrors = self.path.join("refs/mirrors");
        match std::fs::read_dir(&mirrors) {
            Ok(rd) => {
                let mut dirs = Vec::new();
                for e in rd {
                    let e = e.ctx("read directory", &mirrors)?;
                    let cid = e.file_name().to_string_lossy().into_owned();
                    if validate_collection_id(&cid).is_ok() && wanted(&cid) && e.path().is_dir() {
                        dirs.push((cid, e.path()));
                    }
                }
                dirs.sort();
                for (cid, p) in dirs {
                    add(&cid, &p)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("read directory", mirrors),
        }
        if !exclude_remotes {
            for (remote, base) in self.remote_ref_dirs()? {
                let cid = self
                    .remote_option(&remote, "collection-id")
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty() && validate_collection_id(c).is_ok());
                if let Some(cid) = cid.filter(|c| wanted(c)) {
                    add(&cid, &base)?;
                }
            }
        }
        Ok(out)
    }

    /// Resolve a revision: a checksum, a unique prefix of a commit checksum, `[REMOTE:]REF`,
    /// each with optional `^` suffixes. `Refspec 'REV' not found` if nothing matches.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum> {
        self.resolve_rev_opt(rev)?
            .ok_or_else(|| Error::RefNotFound(rev.to_string()))
    }

    /// [`Repo::resolve_rev`], but `None` when no ref of that name exists (ostree's
    /// `allow_noent`). As in ostree, a string of lowercase hex digits is first tried as a
    /// prefix of commit checksums (so it wins over a ref of the same name), and a prefix
    /// shared by several commits is an error.
    pub fn resolve_rev_opt(&self, rev: &str) -> Result<Option<Checksum>> {
        self.resolve_rev_in(rev, true)
    }

    /// [`Repo::resolve_rev_opt`] without the fallback of a plain name to the remotes' refs
    /// (ostree's `ostree_repo_resolve_rev_ext`, as `refs --create` checks for a ref).
    pub fn resolve_rev_no_remotes(&self, rev: &str) -> Result<Option<Checksum>> {
        self.resolve_rev_in(rev, false)
    }

    /// [`Self::resolve_rev_here`], else in the parent repository (`core.parent`), as
    /// ostree's `resolve_refspec`.
    fn resolve_rev_in(&self, rev: &str, remotes: bool) -> Result<Option<Checksum>> {
        match (self.resolve_rev_here(rev, remotes)?, self.parent()) {
            (None, Some(p)) => p.resolve_rev_in(rev, remotes),
            (found, _) => Ok(found),
        }
    }

    fn resolve_rev_here(&self, rev: &str, remotes: bool) -> Result<Option<Checksum>> {
        if let Ok(c) = rev.parse::<Checksum>() {
            return Ok(Some(c));
        }
        if let Some(c) = self.resolve_partial_checksum(rev)? {
            return Ok(Some(c));
        }
        if let Some(base) = rev.strip_suffix('^') {
            let c = self.resolve_rev(base)?;
            let parent = self
                .load_commit(&c)?
                .parent
                .ok_or_else(|| Error::NotFound(format!("Commit {c} has no parent")))?;
            return Ok(Some(parent));
        }
        let r = RefName::parse(rev)?;
        if let Some(c) = self.read_ref(&r)? {
            return Ok(Some(c));
        }
        if r.remote.is_some() || !remotes {
            return Ok(None);
        }
        // Like ostree's resolve_refspec, a bare ref name also matches a remote-tracking ref:
        // REMOTE/REF as `refs/remotes/REMOTE/REF`, then REF under any remote
        // (`find_ref_in_remotes`: the first in the directory's order, as ostree reads it, so
        // both tools resolve it alike on the same file system).
        if let Some((rem, n)) = r.name.split_once('/') {
            if validate_remote_name(rem).is_ok() && validate_ref(n).is_ok() {
                let found = self.read_ref(&RefName {
                    remote: Some(rem.to_string()),
                    name: n.to_string(),
                })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        for (remote, _) in self.remote_ref_dirs_unsorted()? {
            let found = self.read_ref(&RefName {
                remote: Some(remote),
                name: r.name.clone(),
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// A string of at most 64 lowercase hex digits names the one commit object whose
    /// checksum starts with it (ostree's `ostree_repo_resolve_partial_checksum`); `None` if
    /// no commit does or it is not such a string; an error if several do.
    pub fn resolve_partial_checksum(&self, prefix: &str) -> Result<Option<Checksum>> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if prefix.len() > 64 || !prefix.bytes().all(hex) {
            return Ok(None);
        }
        let found = self.commits_with_prefix(prefix)?;
        match found.as_slice() {
            [] => Ok(None),
            [c] => Ok(Some(*c)),
            _ => Err(Error::InvalidArgument(format!(
                "Refspec {prefix} not unique"
            ))),
        }
    }

    /// Commit objects whose checksum starts with the lowercase hex `prefix`, sorted.
    pub fn commits_with_prefix(&self, prefix: &str) -> Result<Vec<Checksum>> {
        let objects = self.path.join("objects");
        let dirs: Vec<String> = if prefix.len() >= 2 {
            vec![prefix[..2].to_string()]
        } else {
            let mut v = Vec::new();
            for e in std::fs::read_dir(&objects).ctx("read directory", &objects)? {
                let e = e.ctx("read directory", &objects)?;
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() == 2 && n.starts_with(prefix) {
                    v.push(n);
                }
            }
            v
        };
        let mut out = Vec::new();
        for d in dirs {
            let dir = objects.join(&d);
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("read directory", dir),
            };
            for e in rd {
                let e = e.ctx("read directory", &dir)?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some((crate::object::ObjectType::Commit, c)) =
                    crate::object::parse_loose_name(&d, name)
                {
                    if name.ends_with(".commit") && c.to_hex().starts_with(prefix) {
                        out.push(c);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The repository's only commit (`ostree rev-parse --single`), with ostree's errors
    /// when there is none or more than one.
    pub fn single_commit(&self) -> Result<Checksum> {
        let all = self.commits_with_prefix("")?;
        match all.as_slice() {
            [c] => Ok(*c),
            [] => Err(Error::NotFound("No commit objects found".into())),
            _ => Err(Error::InvalidArgument(
                "Multiple commit objects found".into(),
            )),
        }
    }
}

/// Read a ref file (through an alias symlink); `None` if there is no such ref.
fn read_ref_file(p: &Path) -> Result<Option<Checksum>> {
    match crate::fsutil::read_regular_string(p, crate::fsutil::MAX_CONFIG_SIZE) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| Error::Config {
            path: p.to_path_buf(),
            msg: "ref file does not hold a checksum".into(),
        }),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::EISDIR)
                || e.raw_os_error() == Some(libc::ENOTDIR)
                || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).ctx("read", p),
    }
}

/// [`walk_refs`] for listings: refs under `dir` named `lead` + their path below `base`;
/// with `aliases`, only symlinks, each with the ref it names (leading `../` removed, as
/// ostree shows them).
fn collect_refs(
    base: &Path,
    dir: &Path,
    lead: &str,
    aliases: bool,
    out: &mut BTreeMap<String, RefTarget>,
) -> Result<()> {
    if !aliases {
        return walk_refs(base, dir, false, &mut |name, c| {
            out.insert(format!("{lead}{name}"), RefTarget::Commit(c));
        });
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    for e in rd {
        let e = e.ctx("read directory", dir)?;
        let p = e.path();
        let ft = e.file_type().ctx("stat", &p)?;
        if ft.is_dir() {
            collect_refs(base, &p, lead, aliases, out)?;
        } else if ft.is_symlink() {
            let Some(name) = p
                .strip_prefix(base)
                .ok()
                .and_then(|rel| rel.to_str())
                .filter(|n| validate_ref(n).is_ok())
            else {
                continue;
            };
            let target = std::fs::read_link(&p).ctx("read symlink", &p)?;
            let mut t = target.to_string_lossy().into_owned();
            while let Some(rest) = t.strip_prefix("../") {
                t = rest.to_string();
            }
            out.insert(format!("{lead}{name}"), RefTarget::Alias(t));
        }
    }
    Ok(())
}

/// Every ref file under `dir`, named relative to `base`. Names that are not valid refs are
/// skipped, as ostree skips them: among them the `.tmp-XXXXXX` files `write_atomic` leaves
/// beside a ref when killed mid-write, which hold a full checksum but must never be listed,
/// pin objects in prune, or be published in a summary (which every client would reject).
/// Aliases (symlinks) are read through; a dangling one is skipped.
///
/// With `strict`, a ref file that does not hold a checksum (garbage, empty) is an error
/// naming it, as ostree fails on it (fsck, summary, prune); without, it is left out.
fn walk_refs(
    base: &Path,
    dir: &Path,
    strict: bool,
    f: &mut dyn FnMut(String, Checksum),
) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    for e in rd {
        let e = e.ctx("read directory", dir)?;
        let p = e.path();
        let ft = e.file_type().ctx("stat", &p)?;
        if ft.is_dir() {
            walk_refs(base, &p, strict, f)?;
        } else {
            let Some(name) = p
                .strip_prefix(base)
                .ok()
                .and_then(|rel| rel.to_str())
                .filter(|n| validate_ref(n).is_ok())
            else {
                continue;
            };
            match crate::fsutil::read_regular_string(&p, crate::fsutil::MAX_CONFIG_SIZE)
                .map(|s| s.trim().parse::<Checksum>())
            {
                Ok(Ok(c)) => f(name.to_string(), c),
                Ok(Err(_)) if strict => {
                    return Err(Error::Config {
                        path: p,
                        msg: "ref file does not hold a checksum".into(),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}
