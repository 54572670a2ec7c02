//! Offline and peer-to-peer updates by collection ID (ostree's "P2P" support, as Endless OS
//! and GNOME OS ship updates on USB sticks): a collection ID names a set of refs
//! independently of where they are served, so `(collection, ref)` can come from any copy
//! and still be checked for what it is — the commit's signature (the keys of the local
//! remote configured with that collection ID) and its bindings (`ostree.ref-binding`,
//! `ostree.collection-binding`).
//!
//! - [`Repo::create_usb`] (`create-usb`): copy collection refs onto a mounted filesystem as
//!   ostree lays them out: an archive repository at `.ostree/repo` (or another path, then
//!   linked from `.ostree/repos.d/NN-generated`), refs as `refs/mirrors/COLLECTION/REF`, a
//!   summary listing them in its collection map.
//! - [`Repo::find_remotes`] (`find-remotes`): look for them — on mounted filesystems (the
//!   ones a desktop shows: GIO's rules over `/proc/self/mountinfo`), and in configured
//!   remotes — and keep, per ref, the sources with its newest commit.
//! - [`Repo::pull_from_remotes`] (`find-remotes --pull`): pull each ref from the best source,
//!   through the verifying pull (archive sources) or a verified local copy (other modes).
//!
//! Differences from ostree: a pull of `(collection, ref)` requires the commit to be bound to
//! that collection (ostree 2022.7 checks only the ref binding for USB sources); a mount
//! source's symlinks may not lead off its filesystem; LAN discovery (Avahi) is not offered.

use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType, Summary};
use crate::pull::{Dest, FileFetcher, PullOptions, PullProgress, Resolved};
use crate::repo::{CollectionRef, PullLocalOptions, RefName, Repo, RepoMode};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The repository path on a USB stick when none is given.
pub const DEFAULT_USB_REPO: &str = ".ostree/repo";
/// Repositories a mount may hold besides those linked from `.ostree/repos.d/`, in the
/// order ostree's mount finder tries them.
const WELL_KNOWN_REPOS: &[&str] = &[".ostree/repo", "ostree/repo", "var/lib/flatpak/repo"];
/// ostree's priorities (lower is preferred): mounts, then LAN peers (60), then configured
/// remotes.
const PRIORITY_CONFIG: i32 = 100;
const PRIORITY_MOUNT: i32 = 50;

#[derive(Debug, Clone, Default)]
pub struct CreateUsbOptions {
    /// The repository's path inside the mount (default `.ostree/repo`).
    pub destination_repo: Option<PathBuf>,
    /// Copy this commit instead of what the ref points at (one ref only).
    pub commit: Option<String>,
    pub fsync: bool,
}

#[derive(Debug, Clone)]
pub struct CreateUsbReport {
    pub copied: usize,
    /// The source repository (absolute).
    pub source: PathBuf,
    /// The repository's path inside the mount.
    pub destination: PathBuf,
}

/// The finders `find-remotes --finders` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finder {
    /// Remotes configured with a collection ID.
    Config,
    /// Repositories on mounted filesystems.
    Mount,
}

impl Finder {
    /// ostree's type name, as `find-remotes` prints it.
    pub fn type_name(self) -> &'static str {
        match self {
            Finder::Config => "OstreeRepoFinderConfig",
            Finder::Mount => "OstreeRepoFinderMount",
        }
    }
}

/// A source that has some of the refs asked for (ostree's `OstreeRepoFinderResult`).
#[derive(Debug, Clone)]
pub struct FinderResult {
    pub finder: Finder,
    /// `file:///…/repo` or the remote's URL.
    pub uri: String,
    /// The local remote whose keys verify what comes from here (and whose
    /// `refs/remotes/REMOTE/` receives it).
    pub keyring_remote: String,
    pub priority: i32,
    /// `ostree.summary.last-modified` of the source's summary.
    pub summary_last_modified: Option<u64>,
    /// Every ref asked for, with the newest commit this source has for it (`None`: it has
    /// none, or an older one than another source).
    pub refs: Vec<(CollectionRef, Option<Checksum>)>,
    source: Source,
    summary: Option<Summary>,
}

#[derive(Debug, Clone)]
enum Source {
    /// A repository on a mounted filesystem.
    Local(PathBuf),
    /// A configured remote.
    Remote(String),
}

impl FinderResult {
    fn n_refs(&self) -> usize {
        self.refs.iter().filter(|(_, c)| c.is_some()).count()
    }
}

/// `ostree_repo_finder_result_compare`: priority, then the older summary, then fewer refs,
/// then the remote's name (the configured remote whose keyring verifies the result).
fn compare_results(a: &FinderResult, b: &FinderResult) -> std::cmp::Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(
            || match (a.summary_last_modified, b.summary_last_modified) {
                (Some(x), Some(y)) if x != 0 && y != 0 => x.cmp(&y),
                _ => std::cmp::Ordering::Equal,
            },
        )
        .then_with(|| a.n_refs().cmp(&b.n_refs()))
        .then_with(|| a.keyring_remote.cmp(&b.keyring_remote))
        .then_with(|| a.uri.cmp(&b.uri))
}

/// One line of `/proc/self/mountinfo`, the parts GIO looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

/// Parse `/proc/self/mountinfo` (octal escapes such as `\040` decoded).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    fn unescape(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let oct = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
            match (b.get(i), oct) {
                (Some(b'\\'), Some(d)) => {
                    let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                    out.push(u8::try_from(v).unwrap_or(b'?'));
                    i += 4;
                }
                (Some(&c), _) => {
                    out.push(c);
                    i += 1;
                }
                (None, _) => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                root: unescape(pre.get(3)?),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                fs_type: unescape(post.first()?),
                source: unescape(post.get(1)?),
            })
        })
        .collect()
}

/// Whether a desktop would show this mount (GIO's `g_unix_mount_guess_should_display`, as
/// the volume monitor ostree's mount finder asks applies it): not a system filesystem,
/// device or directory, not a bind mount of a subdirectory; and under `/media/`,
/// `/run/media/` (for root; `/run/media/$USER/` otherwise) or the home directory, and not
/// in a dot directory.
pub fn mount_is_user_visible(m: &MountEntry, uid: u32, home: Option<&Path>) -> bool {
    const SYSTEM_FS: &[&str] = &[
        "adfs",
        "afs",
        "auto",
        "autofs",
        "autofs4",
        "cgroup",
        "cgroup2",
        "configfs",
        "cxfs",
        "debugfs",
        "devfs",
        "devpts",
        "devtmpfs",
        "ecryptfs",
        "efivarfs",
        "fdescfs",
        "fusectl",
        "fuse.gvfsd-fuse",
        "fuse.portal",
        "hugetlbfs",
        "kernfs",
        "linprocfs",
        "linsysfs",
        "lustre",
        "lustre_lite",
        "mfs",
        "mqueue",
        "ncpfs",
        "nfsd",
        "nullfs",
        "ocfs2",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "ptyfs",
        "rootfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tmpfs",
        "usbfs",
    ];
    const SYSTEM_DEVICES: &[&str] = &["none", "sunrpc", "devpts", "nfsd", "/dev/loop", "/dev/vn"];
    let Some(path) = m.mount_point.to_str() else {
        return false;
    };
    if SYSTEM_FS.contains(&m.fs_type.as_str())
        || SYSTEM_DEVICES.contains(&m.source.as_str())
        || m.root != "/"
        || path.starts_with("/dev/")
        || path.starts_with("/proc/")
        || path.starts_with("/sys/")
        || path.ends_with("/.gvfs")
        || path.contains("/.")
    {
        return false;
    }
    let runtime = if uid == 0 {
        path.starts_with("/run/media/")
    } else {
        let user = std::env::var("USER").unwrap_or_default();
        !user.is_empty() && path.starts_with(&format!("/run/media/{user}/"))
    };
    if runtime || path.starts_with("/media/") {
        return true;
    }
    home.and_then(Path::to_str)
        .is_some_and(|h| !h.is_empty() && h != "/" && path.starts_with(&format!("{h}/")))
}

/// The mounted filesystems a desktop shows, from `/proc/self/mountinfo`.
pub fn user_visible_mounts() -> Result<Vec<PathBuf>> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).ctx("read", p)?;
    let uid = rustix::process::getuid().as_raw();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    for m in parse_mountinfo(&text) {
        if mount_is_user_visible(&m, uid, home.as_deref()) && !out.contains(&m.mount_point) {
            out.push(m.mount_point);
        }
    }
    Ok(out)
}

impl Repo {
    /// `create-usb`: copy `refs` (resolved here) into an archive repository on the mounted
    /// filesystem at `mount`, as mirrors of their collections, and write its summary. Each
    /// commit is checked before anything is copied: its bindings must match the ref and
    /// this repository's collection ID (as a local pull checks them), and every object is
    /// re-hashed on the way.
    pub fn create_usb(
        &self,
        mount: &Path,
        refs: &[CollectionRef],
        opts: &CreateUsbOptions,
    ) -> Result<CreateUsbReport> {
        if opts.commit.is_some() && refs.len() != 1 {
            return Err(Error::InvalidArgument(
                "The --commit option can only be used when a single COLLECTION-ID REF pair is specified".into(),
            ));
        }
        if !mount.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "opendir({}): No such file or directory",
                mount.display()
            )));
        }
        // As ostree's pull from this repository: through its summary when it has one.
        let summary = self.read_summary()?;
        let mut targets = Vec::new();
        for r in refs {
            let c = if let Some(rev) = &opts.commit {
                self.resolve_rev(rev)?
            } else if let Some(s) = &summary {
                s.find_in_collection(&r.collection_id, &r.ref_name)
                    .map_err(|e| {
                        Error::Other(format!("{}: invalid summary: {e}", self.path().display()))
                    })?
                    .map(|e| e.checksum)
                    .ok_or_else(|| {
                        Error::NotFound(format!("No such branch {r} in repository summary"))
                    })?
            } else {
                // As ostree resolves a collection–ref: local refs of our collection,
                // mirrors, and the refs of remotes configured with that collection ID.
                match self.read_collection_ref(r)? {
                    Some(c) => c,
                    None => *self
                        .list_collection_refs(Some(&r.collection_id), false)?
                        .get(r)
                        .ok_or_else(|| Error::NotFound(format!("Collection–ref {r} not found")))?,
                }
            };
            targets.push((r.clone(), c));
        }
        let rel = opts
            .destination_repo
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_USB_REPO));
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::InvalidArgument(format!(
                "--destination-repo={}: must be a relative path inside the mount",
                rel.display()
            )));
        }
        let vopts = PullOptions {
            collection_id: self.collection_id().map(str::to_string),
            ..Default::default()
        };
        // Everything is checked before anything is written to the mount.
        self.verify_targets(self, &targets, &vopts)?;
        let mut dest = Repo::create(&mount.join(&rel), RepoMode::Archive)?;
        dest.set_fsync(opts.fsync);
        dest.copy_verified(self, &targets, &vopts, &|r| Dest::Collection(r.clone()))?;
        dest.regenerate_summary()?;
        // (the mount finder looks in the well-known places by itself, as ostree's does)
        if !WELL_KNOWN_REPOS[..2].iter().any(|w| rel == Path::new(w)) {
            link_repos_d(mount, &rel)?;
        }
        Ok(CreateUsbReport {
            copied: targets.len(),
            source: std::fs::canonicalize(self.path())
                .unwrap_or_else(|_| self.path().to_path_buf()),
            destination: rel,
        })
    }

    /// Copy `targets` from the local repository `src`: each commit verified first (its
    /// signatures and bindings as `opts` demands, for the ref it is copied as), then every
    /// object re-hashed on the way in; the refs are set under the repository lock.
    fn copy_verified(
        &self,
        src: &Repo,
        targets: &[(CollectionRef, Checksum)],
        opts: &PullOptions,
        dest: &dyn Fn(&CollectionRef) -> Dest,
    ) -> Result<()> {
        let verified = self.verify_targets(src, targets, opts)?;
        let hexes: Vec<String> = targets.iter().map(|(_, c)| c.to_hex()).collect();
        self.pull_local_verified(
            src,
            &hexes,
            &PullLocalOptions {
                // Checked above, against the refs they are copied as.
                disable_verify_bindings: true,
                ..Default::default()
            },
            verified,
        )?;
        let _lock = self.lock(false)?;
        for (r, c) in targets {
            match dest(r) {
                Dest::Ref(n) => self.set_ref(&n, Some(c))?,
                Dest::Collection(cr) => self.set_collection_ref(&cr, Some(c))?,
            }
        }
        Ok(())
    }

    /// Each commit of `targets`, read from `src` and hash-checked, satisfies `opts` (its
    /// signatures, and its bindings for the ref and collection it is copied as).
    fn verify_targets(
        &self,
        src: &Repo,
        targets: &[(CollectionRef, Checksum)],
        opts: &PullOptions,
    ) -> Result<crate::pull::VerifiedMeta> {
        let mut verified = crate::pull::VerifiedMeta::new();
        for (r, c) in targets {
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
            let mut o = opts.clone();
            if o.collection_id.is_some() {
                o.collection_id = Some(r.collection_id.clone());
            }
            crate::pull::verify_commit(
                self,
                &o,
                c,
                meta.as_deref(),
                &bytes,
                &[crate::pull::Wanted {
                    refname: Some(r.ref_name.clone()),
                    current: None,
                }],
            )?;
            verified.insert(*c, meta);
        }
        Ok(verified)
    }

    /// The local remote whose keys verify collection `cid` (ostree's
    /// `ostree_repo_resolve_keyring_for_collection`): the first remote, by name, configured
    /// with that collection ID.
    pub fn keyring_remote_for_collection(&self, cid: &str) -> Option<String> {
        self.remote_names()
            .into_iter()
            .find(|r| self.remote_collection_id(r).as_deref() == Some(cid))
    }

    /// `find-remotes`: the sources that have any of `refs`, each with the newest commit per
    /// ref among all sources (older ones are not offered), best first.
    pub fn find_remotes(
        &self,
        refs: &[CollectionRef],
        finders: &[Finder],
    ) -> Result<Vec<FinderResult>> {
        let mut results = Vec::new();
        for f in finders {
            match f {
                Finder::Mount => {
                    for m in user_visible_mounts()? {
                        self.scan_mount(&m, refs, &mut results)?;
                    }
                }
                Finder::Config => self.scan_config(refs, &mut results),
            }
        }
        // Newest commit per ref, by the summaries' commit timestamps.
        let mut newest: BTreeMap<&CollectionRef, (u64, Checksum)> = BTreeMap::new();
        for res in &results {
            for (r, c) in &res.refs {
                let ts = c.and_then(|_| {
                    res.summary
                        .as_ref()
                        .and_then(|s| {
                            s.find_in_collection(&r.collection_id, &r.ref_name)
                                .ok()
                                .flatten()
                        })
                        .and_then(|e| e.timestamp())
                });
                if let (Some(c), ts) = (c, ts) {
                    let ts = ts.unwrap_or(0);
                    let e = newest.entry(r).or_insert((ts, *c));
                    if ts > e.0 {
                        *e = (ts, *c);
                    }
                }
            }
        }
        let newest: BTreeMap<CollectionRef, Checksum> = newest
            .into_iter()
            .map(|(r, (_, c))| (r.clone(), c))
            .collect();
        for res in &mut results {
            for (r, c) in &mut res.refs {
                if c.is_some() && newest.get(r) != c.as_ref() {
                    tracing::debug!("{r} on {} is not the newest commit", res.uri);
                    *c = None;
                }
            }
        }
        results.retain(|r| {
            let keep = r.n_refs() > 0;
            if !keep {
                tracing::debug!(
                    "omitting {} from the results: none of its refs are new enough",
                    r.uri
                );
            }
            keep
        });
        results.sort_by(compare_results);
        Ok(results)
    }

    /// The mount finder on one mount: repositories linked from `.ostree/repos.d/` (by name),
    /// then the well-known paths; per ref, the first repository that has it.
    fn scan_mount(
        &self,
        mount: &Path,
        refs: &[CollectionRef],
        results: &mut Vec<FinderResult>,
    ) -> Result<()> {
        let Ok(root_meta) = std::fs::metadata(mount) else {
            return Ok(());
        };
        let own = std::fs::metadata(self.path())
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let mut candidates: Vec<PathBuf> = Vec::new();
        let reposd = mount.join(".ostree/repos.d");
        if let Ok(rd) = std::fs::read_dir(&reposd) {
            let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            names.sort();
            candidates.extend(names);
        }
        candidates.extend(WELL_KNOWN_REPOS.iter().map(|r| mount.join(r)));
        let mut seen = Vec::new();
        let mut repos = Vec::new();
        for c in candidates {
            let Ok(real) = std::fs::canonicalize(&c) else {
                continue;
            };
            let Ok(m) = std::fs::metadata(&real) else {
                continue;
            };
            if m.dev() != root_meta.dev() || !real.starts_with(mount) {
                tracing::debug!(
                    "ignoring {}: not on the filesystem mounted at {}",
                    c.display(),
                    mount.display()
                );
                continue;
            }
            if Some((m.dev(), m.ino())) == own || seen.contains(&(m.dev(), m.ino())) {
                continue;
            }
            seen.push((m.dev(), m.ino()));
            match Repo::open(&real) {
                Ok(r) => repos.push((real, r)),
                Err(e) => tracing::debug!("ignoring {}: {e}", c.display()),
            }
        }
        let mut found: BTreeMap<(PathBuf, String), Vec<CollectionRef>> = BTreeMap::new();
        for r in refs {
            let Some(keyring) = self.keyring_remote_for_collection(&r.collection_id) else {
                tracing::debug!(
                    "ignoring {r}: no remote here is configured with collection ID {}",
                    r.collection_id
                );
                continue;
            };
            for (path, repo) in &repos {
                let has = repo
                    .list_collection_refs(Some(&r.collection_id), false)
                    .map(|m| m.keys().any(|k| k.ref_name == r.ref_name))
                    .unwrap_or(false);
                if has {
                    found
                        .entry((path.clone(), keyring.clone()))
                        .or_default()
                        .push(r.clone());
                    break;
                }
            }
        }
        for ((path, keyring), _) in found {
            let summary = crate::pull::fetch_summary(
                &FileFetcher::new(&path),
                &PullOptions::default(),
                &PullProgress::default(),
            )
            .unwrap_or_else(|e| {
                tracing::debug!("{}: no usable summary: {e}", path.display());
                None
            });
            results.push(result_from_summary(
                Finder::Mount,
                format!("file://{}", path.display()),
                keyring,
                PRIORITY_MOUNT,
                Source::Local(path),
                summary,
                refs,
            ));
        }
        Ok(())
    }

    /// The config finder: each remote configured with a requested collection ID, through
    /// its (verified) summary.
    fn scan_config(&self, refs: &[CollectionRef], results: &mut Vec<FinderResult>) {
        for remote in self.remote_names() {
            let Some(cid) = self.remote_collection_id(&remote) else {
                continue;
            };
            if !refs.iter().any(|r| r.collection_id == cid) {
                continue;
            }
            let summary = match self.remote_summary(&remote) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("remote {remote}: {e}");
                    continue;
                }
            };
            let uri = self.remote_url(&remote).unwrap_or_default();
            let res = result_from_summary(
                Finder::Config,
                uri,
                remote.clone(),
                PRIORITY_CONFIG,
                Source::Remote(remote),
                Some(summary),
                refs,
            );
            if res.n_refs() > 0 {
                results.push(res);
            }
        }
    }

    /// `find-remotes --pull`: pull each ref found from the best result that has it (into
    /// `refs/remotes/KEYRING-REMOTE/`, or with `mirror` as the collection ref), verified as
    /// the keyring remote demands — and, as ostree's finders do, always with signatures:
    /// OpenPGP with the remote's keys unless it verifies ed25519 signatures. Returns the refs
    /// that could not be pulled, each group with its error.
    pub fn pull_from_remotes(
        &self,
        results: &[FinderResult],
        refs: &[CollectionRef],
        mirror: bool,
        progress: &PullProgress,
    ) -> Vec<(Vec<CollectionRef>, Error)> {
        // Per result, per collection: the refs to pull from it.
        let mut plan: Vec<BTreeMap<String, Vec<(CollectionRef, Checksum)>>> =
            vec![BTreeMap::new(); results.len()];
        for r in refs {
            let pick = results.iter().enumerate().find_map(|(i, res)| {
                res.refs
                    .iter()
                    .find(|(x, c)| x == r && c.is_some())
                    .and_then(|(_, c)| *c)
                    .map(|c| (i, c))
            });
            if let Some(p) = pick.and_then(|(i, c)| plan.get_mut(i).map(|p| (p, c))) {
                let (p, c) = p;
                p.entry(r.collection_id.clone())
                    .or_default()
                    .push((r.clone(), c));
            }
        }
        let mut failed = Vec::new();
        for (res, groups) in results.iter().zip(plan) {
            for (cid, targets) in groups {
                if let Err(e) = self.pull_result_group(res, &cid, &targets, mirror, progress) {
                    failed.push((targets.into_iter().map(|(r, _)| r).collect(), e));
                }
            }
        }
        failed
    }

    fn pull_result_group(
        &self,
        res: &FinderResult,
        cid: &str,
        targets: &[(CollectionRef, Checksum)],
        mirror: bool,
        progress: &PullProgress,
    ) -> Result<()> {
        let remote = &res.keyring_remote;
        let dest = |r: &CollectionRef| {
            if mirror {
                Dest::Collection(r.clone())
            } else {
                Dest::Ref(RefName {
                    remote: Some(remote.clone()),
                    name: r.ref_name.clone(),
                })
            }
        };
        let mut opts = PullOptions::default();
        match &res.source {
            Source::Remote(_) => {
                self.remote_policy(remote, &mut opts, crate::pull::Verify::All)?;
            }
            Source::Local(_) => {
                self.remote_policy(remote, &mut opts, crate::pull::Verify::Commits)?;
                if opts.gpg_keys.is_none() && !opts.signs_commits() {
                    opts.gpg_keys = Some(self.remote_gpg_keys(remote)?);
                }
            }
        }
        opts.collection_id = Some(cid.to_string());
        match &res.source {
            Source::Local(path) => {
                let src = Repo::open(path)?;
                if src.mode() != RepoMode::Archive {
                    return self.copy_verified(&src, targets, &opts, &dest);
                }
                let fetcher = FileFetcher::new(path);
                self.pull_targets(
                    &fetcher,
                    res.summary.as_ref(),
                    targets,
                    &opts,
                    progress,
                    &dest,
                )
            }
            Source::Remote(r) => {
                let fetcher = self.remote_fetcher(r, &mut opts)?;
                self.pull_targets(
                    &*fetcher,
                    res.summary.as_ref(),
                    targets,
                    &opts,
                    progress,
                    &dest,
                )
            }
        }
    }

    fn pull_targets(
        &self,
        fetcher: &dyn crate::pull::Fetcher,
        summary: Option<&Summary>,
        targets: &[(CollectionRef, Checksum)],
        opts: &PullOptions,
        progress: &PullProgress,
        dest: &dyn Fn(&CollectionRef) -> Dest,
    ) -> Result<()> {
        let resolved: Vec<Resolved> = targets
            .iter()
            .map(|(r, c)| Resolved {
                remote_ref: Some(r.ref_name.clone()),
                dest: Some(dest(r)),
                commit: *c,
            })
            .collect();
        self.pull_resolved(
            fetcher,
            summary,
            &resolved,
            opts,
            progress,
            std::time::Instant::now(),
        )?;
        Ok(())
    }
}

fn result_from_summary(
    finder: Finder,
    uri: String,
    keyring_remote: String,
    priority: i32,
    source: Source,
    summary: Option<Summary>,
    refs: &[CollectionRef],
) -> FinderResult {
    let lookup = |r: &CollectionRef| {
        summary
            .as_ref()
            .and_then(|s| {
                s.find_in_collection(&r.collection_id, &r.ref_name)
                    .ok()
                    .flatten()
            })
            .map(|e| e.checksum)
    };
    let summary_last_modified = summary
        .as_ref()
        .and_then(|s| s.meta("ostree.summary.last-modified"))
        .and_then(crate::gvariant::Value::as_u64)
        .map(u64::from_be);
    FinderResult {
        finder,
        uri,
        keyring_remote,
        priority,
        summary_last_modified,
        refs: refs.iter().map(|r| (r.clone(), lookup(r))).collect(),
        source,
        summary,
    }
}

/// Point `.ostree/repos.d/NN-generated` at a repository elsewhere on the mount (the first
/// free NN; nothing if a link there already points at it), as ostree's `create-usb` does.
fn link_repos_d(mount: &Path, rel: &Path) -> Result<()> {
    let dir = mount.join(".ostree/repos.d");
    std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
    let target = Path::new("../..").join(rel);
    for i in 0..100 {
        let link = dir.join(format!("{i:02}-generated"));
        match std::fs::read_link(&link) {
            Ok(t) if t == target => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(&link).is_ok() {
                    continue;
                }
                std::os::unix::fs::symlink(&target, &link).ctx("create symlink", &link)?;
                return crate::fsutil::fsync_dir(&dir);
            }
            Err(_) => continue,
        }
    }
    Err(Error::Other(format!(
        "{}: no free NN-generated name for a link to {}",
        dir.display(),
        rel.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_gio_visibility() {
        let text = "\
66 46 0:40 / /media rw,relatime - tmpfs oxtmp rw
67 66 254:0 /tmp/rx/usb3 /media/usb rw,relatime - ext4 /dev/vda rw
68 66 0:41 / /media/usb2 rw,relatime - ramfs oxusb rw
69 66 0:42 / /media/my\\040stick rw - vfat /dev/sdb1 rw
70 66 0:43 / /run/media/root/x rw - ext4 /dev/sdc1 rw
71 66 0:44 / /mnt/data rw - ext4 /dev/sdd1 rw
72 66 0:45 / /media/.hidden rw - ext4 /dev/sde1 rw
73 66 0:46 / /root/stick rw - ext4 /dev/sdf1 rw
74 66 0:47 / /media/n rw - ramfs none rw
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 9);
        assert_eq!(m[3].mount_point, PathBuf::from("/media/my stick"));
        let visible: Vec<PathBuf> = m
            .iter()
            .filter(|e| mount_is_user_visible(e, 0, Some(Path::new("/root"))))
            .map(|e| e.mount_point.clone())
            .collect();
        assert_eq!(
            visible,
            [
                "/media/usb2",
                "/media/my stick",
                "/run/media/root/x",
                "/root/stick"
            ]
            .map(PathBuf::from)
        );
    }
}
