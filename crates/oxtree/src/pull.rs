//! Pull over plain HTTP from an `archive` repository on any static server (spec §5).
//!
//! How it differs from ostree's pull, to fix what users complain about:
//! - **Many requests in flight**: a pool of fetch threads over one keep-alive HTTP agent
//!   (default 32 workers, so latency does not multiply with the object count).
//! - **Streaming**: each object is verified and written by the thread that fetched it while
//!   the others keep downloading.
//! - **Resumable**: the commit is marked partial first; finished objects are moved into
//!   `objects/` every couple of seconds (`Transaction::checkpoint`), so a killed pull keeps
//!   them and the next run fetches only what is missing. Objects larger than
//!   [`RESUME_THRESHOLD`] are downloaded into `tmp/pull-partial/` and a cut-off transfer
//!   continues with an HTTP `Range` request.
//! - **Retries** with exponential back-off for connection errors, timeouts and 5xx.
//!
//! Trust: every object is hashed before it enters the store (metadata by its bytes, content
//! by rebuilding the checksum stream from the inflated `.filez`), dirtree names are
//! validated (no `..`, `/`, empty or NUL), and a `.filez` may not inflate past its declared
//! size. With `gpg-verify` (on by default) every commit needs a good OpenPGP signature by a
//! key in the remote's keyring; with `sign-verify`, an ed25519 signature by a key from
//! `verification-ed25519-key`/`-file`. Both are checked before the commit is stored, and
//! the summary likewise with `gpg-verify-summary`/`sign-verify-summary`.

mod fetch;

pub use fetch::{FetchError, Fetcher, FileFetcher, HttpFetcher, Response};

use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, Commit, DirTree, ObjectType, Summary};
use crate::repo::{RefName, Repo, Transaction};
use std::collections::{HashSet, VecDeque};
use std::io::{BufReader, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Objects at least this large (compressed) are downloaded to disk and resumed with `Range`.
pub const RESUME_THRESHOLD: u64 = 128 << 10;
/// Metadata objects and the summary may not exceed this (ostree's `max-metadata-size`).
pub const MAX_METADATA_SIZE: u64 = 128 << 20;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Parent commits to fetch beyond each target (0 = none, -1 = all).
    pub depth: i64,
    pub commit_metadata_only: bool,
    /// Write `refs/heads/REF` instead of `refs/remotes/REMOTE/REF`.
    pub mirror: bool,
    /// Resolve refs and report what would be fetched, without fetching objects.
    pub dry_run: bool,
    /// Concurrent requests.
    pub fetchers: usize,
    /// Attempts per request for transient errors.
    pub retries: u32,
    /// Per-request timeout (no progress for this long fails the request).
    pub timeout: Duration,
    /// With `Some`, every commit must carry an ed25519 signature by one of these keys
    /// (`sign-verify`); checked before the commit is stored or any ref moves.
    pub ed25519_keys: Option<Vec<ed25519_dalek::VerifyingKey>>,
    /// With `Some`, the summary must be signed (`summary.sig`) by one of these keys
    /// (`sign-verify-summary`).
    pub summary_keys: Option<Vec<ed25519_dalek::VerifyingKey>>,
    /// Refuse a commit older (by timestamp) than the one the ref has now.
    pub timestamp_check: bool,
    /// With `Some`, every commit must carry a good OpenPGP signature (`ostree.gpgsigs`) by
    /// one of these keys (`gpg-verify`, on by default).
    pub gpg_keys: Option<Vec<pgp::composed::SignedPublicKey>>,
    /// The same for the summary (`gpg-verify-summary`).
    pub gpg_summary_keys: Option<Vec<pgp::composed::SignedPublicKey>>,
    /// Fetch objects one by one even when the server has a static delta.
    pub disable_static_deltas: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            depth: 0,
            commit_metadata_only: false,
            mirror: false,
            dry_run: false,
            fetchers: 32,
            retries: 5,
            timeout: Duration::from_secs(30),
            ed25519_keys: None,
            summary_keys: None,
            timestamp_check: false,
            gpg_keys: None,
            gpg_summary_keys: None,
            disable_static_deltas: false,
        }
    }
}

/// Counters a progress display can read while the pull runs.
#[derive(Debug, Default)]
pub struct PullProgress {
    pub objects_fetched: AtomicU64,
    pub objects_queued: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub requests: AtomicU64,
    pub done: AtomicBool,
}

#[derive(Debug, Clone, Default)]
pub struct PullResult {
    /// (ref, old checksum, new checksum).
    pub refs: Vec<(RefName, Option<Checksum>, Checksum)>,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    pub requests: u64,
    pub elapsed: Duration,
    /// Static deltas applied, by name (`FROM-TO` or `TO`).
    pub deltas: Vec<String>,
    /// Things that went wrong but were worked around (an unusable delta: objects fetched
    /// one by one instead).
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Task {
    ty: ObjectType,
    csum: Checksum,
    /// Remaining parent depth, for commits.
    depth: i64,
}

struct Queue {
    tasks: VecDeque<Task>,
    in_flight: usize,
    error: Option<Error>,
}

struct Shared<'a> {
    repo: &'a Repo,
    txn: &'a Transaction<'a>,
    fetcher: &'a dyn Fetcher,
    opts: &'a PullOptions,
    progress: &'a PullProgress,
    queue: Mutex<Queue>,
    cv: Condvar,
    seen: Mutex<HashSet<(ObjectType, Checksum)>>,
    partial_dir: PathBuf,
    /// Commit objects already fetched (and verified) inside a static delta's superblock,
    /// with their detached metadata.
    prefetched: Mutex<std::collections::HashMap<Checksum, Prefetched>>,
}

fn object_url_path(ty: ObjectType, c: &Checksum) -> String {
    let hex = c.to_hex();
    let z = if ty == ObjectType::File { "z" } else { "" };
    format!(
        "objects/{}/{}.{}{}",
        &hex[..2],
        &hex[2..],
        ty.extension(),
        z
    )
}

impl Repo {
    /// Pull `refs` (or the remote's configured `branches`) from `remote`.
    pub fn pull(
        &self,
        remote: &str,
        refs: &[String],
        opts: &PullOptions,
        progress: &PullProgress,
    ) -> Result<PullResult> {
        let url = self.remote_url(remote)?;
        if let Some(state) = self.remote_option(remote, "unconfigured-state") {
            return Err(Error::InvalidArgument(format!("remote {remote}: {state}")));
        }
        let mut opts = opts.clone();
        let sign_verify = self
            .remote_option(remote, "sign-verify")
            .map(|v| v.trim() != "false")
            .unwrap_or(false);
        if sign_verify {
            let keys = self.remote_ed25519_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!("remote {remote:?} has sign-verify on but no verification-ed25519-key or verification-ed25519-file"),
                });
            }
            opts.ed25519_keys = Some(keys);
        }
        if self.remote_bool(remote, "sign-verify-summary", false) {
            let keys = self.remote_ed25519_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!("remote {remote:?} has sign-verify-summary on but no verification-ed25519-key or verification-ed25519-file"),
                });
            }
            opts.summary_keys = Some(keys);
        }
        let gpg_verify = self.remote_bool(remote, "gpg-verify", true);
        let gpg_verify_summary = self.remote_bool(remote, "gpg-verify-summary", false);
        if gpg_verify || gpg_verify_summary {
            let keys = self.remote_gpg_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!(
                        "remote {remote:?} verifies OpenPGP signatures (gpg-verify is on by default) but has no keys: \
                         import the publisher's key with `oxtree remote gpg-import {remote} --keyring=FILE`, \
                         or add the remote with --no-gpg-verify"
                    ),
                });
            }
            if gpg_verify {
                opts.gpg_keys = Some(keys.clone());
            }
            if gpg_verify_summary {
                opts.gpg_summary_keys = Some(keys);
            }
        }
        let opts = &opts;
        if let Some(path) = url.strip_prefix("file://") {
            // A local archive repo: the same pull (and the same verification) over files.
            let fetcher = fetch::FileFetcher::new(std::path::Path::new(path));
            return self.pull_with(&fetcher, remote, refs, opts, progress);
        }
        let fetcher = HttpFetcher::new(&url, opts.timeout)?;
        self.pull_with(&fetcher, remote, refs, opts, progress)
    }

    /// Pull through any [`Fetcher`] (tests use this with fault-injecting fetchers).
    pub fn pull_with(
        &self,
        fetcher: &dyn Fetcher,
        remote: &str,
        refs: &[String],
        opts: &PullOptions,
        progress: &PullProgress,
    ) -> Result<PullResult> {
        let start = Instant::now();
        let get_small = |path: &str| -> Result<Option<Vec<u8>>> {
            fetch_retry(fetcher, path, opts, progress, MAX_METADATA_SIZE)
        };
        // The summary, when the server has one, resolves refs in one request.
        let summary_bytes = get_small("summary")?;
        if let Some(keys) = &opts.summary_keys {
            let url = fetcher.describe("summary");
            let bytes = summary_bytes
                .as_deref()
                .ok_or_else(|| Error::SummarySignature {
                    url: url.clone(),
                    msg: "no summary on the server, but the remote has sign-verify-summary on"
                        .into(),
                })?;
            let sig = get_small("summary.sig")?;
            if sig.is_none() {
                return Err(Error::SummarySignature {
                    url,
                    msg: "not signed (no summary.sig), but the remote has sign-verify-summary on"
                        .into(),
                });
            }
            if crate::sign::verify(sig.as_deref(), bytes, keys, &[])?.is_none() {
                return Err(Error::SummarySignature { url, msg: "no signature in summary.sig verifies with the keys configured for the remote".into() });
            }
        }
        if let Some(keys) = &opts.gpg_summary_keys {
            let url = fetcher.describe("summary");
            let bytes = summary_bytes
                .as_deref()
                .ok_or_else(|| Error::SummarySignature {
                    url: url.clone(),
                    msg: "no summary on the server, but the remote has gpg-verify-summary on"
                        .into(),
                })?;
            let sig = get_small("summary.sig")?;
            let report = crate::sign::gpg::verify_meta(sig.as_deref(), bytes, keys)?;
            if !report
                .iter()
                .any(|r| r.status == crate::sign::gpg::GpgStatus::Good)
            {
                return Err(Error::SummarySignature {
                    url,
                    msg: format!("no good OpenPGP signature: {}", describe_gpg(&report)),
                });
            }
        }
        let summary = match summary_bytes {
            Some(b) => Some(Summary::parse(&b).map_err(|e| {
                Error::Other(format!(
                    "{}: invalid summary: {e}",
                    fetcher.describe("summary")
                ))
            })?),
            None => None,
        };
        if let Some(cfg) = get_small("config")? {
            let text = String::from_utf8_lossy(&cfg);
            let kf = crate::fsutil::keyfile::KeyFile::parse(&text)
                .map_err(|e| Error::Other(format!("{}: {e}", fetcher.describe("config"))))?;
            let mode = kf.get("core", "mode").unwrap_or("bare");
            if !matches!(mode, "archive" | "archive-z2") {
                return Err(Error::Other(format!("can't pull from a repository of mode {mode:?} ({}): pull from an archive repository, or copy a local one with `oxtree pull-local`", fetcher.describe("config"))));
            }
        }
        let wanted: Vec<String> = if refs.is_empty() {
            self.remote_option(remote, "branches")
                .map(|b| {
                    b.split(';')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            refs.to_vec()
        };
        if wanted.is_empty() {
            return Err(Error::InvalidArgument(format!("no refs to pull: name them (oxtree pull {remote} REF) or set branches= for remote {remote}")));
        }
        let mut targets: Vec<(Option<String>, Checksum)> = Vec::new();
        for r in &wanted {
            if let Ok(c) = r.parse::<Checksum>() {
                targets.push((None, c));
                continue;
            }
            crate::object::validate_ref(r).map_err(Error::InvalidArgument)?;
            let c = match summary.as_ref().and_then(|s| s.find(r)) {
                Some(sr) => sr.checksum,
                None => {
                    let b = get_small(&format!("refs/heads/{r}"))?
                        .ok_or_else(|| Error::RefNotFound(format!("{remote}:{r}")))?;
                    String::from_utf8_lossy(&b).trim().parse().map_err(|_| {
                        Error::Other(format!(
                            "{}: not a checksum (is this an OSTree repository?)",
                            fetcher.describe(&format!("refs/heads/{r}"))
                        ))
                    })?
                }
            };
            targets.push((Some(r.clone()), c));
        }
        let ref_name = |r: &str| RefName {
            remote: if opts.mirror {
                None
            } else {
                Some(remote.to_string())
            },
            name: r.to_string(),
        };
        let mut result = PullResult::default();
        for (r, c) in &targets {
            if let Some(r) = r {
                result
                    .refs
                    .push((ref_name(r), self.read_ref(&ref_name(r))?, *c));
            }
        }
        if opts.dry_run {
            result.elapsed = start.elapsed();
            return Ok(result);
        }

        let partial_dir = self.path().join("tmp/pull-partial");
        std::fs::create_dir_all(&partial_dir).ctx("create directory", &partial_dir)?;
        let txn = self.begin()?;
        let shared = Shared {
            repo: self,
            txn: &txn,
            fetcher,
            opts,
            progress,
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                in_flight: 0,
                error: None,
            }),
            cv: Condvar::new(),
            seen: Mutex::new(HashSet::new()),
            partial_dir,
            prefetched: Mutex::new(std::collections::HashMap::new()),
        };
        // Static deltas first: each applied one leaves little or nothing for the object
        // walk below, which then only confirms the commit is complete.
        let deltas_ok = !opts.disable_static_deltas
            && !opts.commit_metadata_only
            && self.mode() != crate::repo::RepoMode::Archive;
        if deltas_ok {
            for (r, c) in &targets {
                let Some(r) = r else { continue };
                match shared.try_delta(summary.as_ref(), &ref_name(r), c) {
                    Ok(Some(name)) => result.deltas.push(name),
                    Ok(None) => {}
                    Err(e @ (Error::Signature { .. } | Error::Io { .. })) => return Err(e),
                    Err(e) => result.warnings.push(format!(
                        "static delta to {c} not used ({e}); fetching its objects instead"
                    )),
                }
            }
            if !result.deltas.is_empty() {
                txn.checkpoint()?;
            }
        }
        for (_, c) in &targets {
            shared.push(Task {
                ty: ObjectType::Commit,
                csum: *c,
                depth: opts.depth,
            });
        }
        let workers = opts.fetchers.max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| shared.worker());
            }
            // Checkpoint finished objects into objects/ while the workers run.
            let mut last = Instant::now();
            loop {
                let Ok(q) = shared.queue.lock() else { break };
                let Ok((q, _)) = shared.cv.wait_timeout(q, Duration::from_millis(200)) else {
                    break;
                };
                let finished = q.error.is_some() || (q.tasks.is_empty() && q.in_flight == 0);
                drop(q);
                if finished {
                    break;
                }
                if last.elapsed() > Duration::from_secs(2) {
                    if let Err(e) = txn.checkpoint() {
                        shared.fail(e);
                    }
                    last = Instant::now();
                }
            }
            shared.cv.notify_all();
        });
        progress.done.store(true, Ordering::Relaxed);
        let err = shared.queue.lock().ok().and_then(|mut q| q.error.take());
        if let Some(e) = err {
            // Keep what was fetched: the next pull resumes from it.
            let _ = txn.checkpoint();
            return Err(e);
        }
        drop(shared);
        txn.commit()?;
        // Everything is durable: clear partial markers of complete commits, move refs.
        for (_, c) in &targets {
            if !opts.commit_metadata_only {
                let _ = std::fs::remove_file(
                    self.path().join("state").join(format!("{c}.commitpartial")),
                );
            }
        }
        if opts.timestamp_check {
            for (r, c) in &targets {
                let Some(r) = r else { continue };
                let name = ref_name(r);
                if let Some(old) = self.read_ref(&name)? {
                    let (o, n) = (self.load_commit(&old)?, self.load_commit(c)?);
                    if n.timestamp < o.timestamp {
                        return Err(Error::Downgrade {
                            refname: name.to_string(),
                            old,
                            new: *c,
                        });
                    }
                }
            }
        }
        for (r, c) in &targets {
            if let Some(r) = r {
                self.set_ref(&ref_name(r), Some(c))?;
            }
        }
        result.objects_fetched = progress.objects_fetched.load(Ordering::Relaxed);
        result.bytes_fetched = progress.bytes_fetched.load(Ordering::Relaxed);
        result.requests = progress.requests.load(Ordering::Relaxed);
        result.elapsed = start.elapsed();
        Ok(result)
    }
}

impl Shared<'_> {
    fn push(&self, t: Task) {
        if let Ok(mut seen) = self.seen.lock() {
            if !seen.insert((t.ty, t.csum)) {
                return;
            }
        }
        self.progress.objects_queued.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut q) = self.queue.lock() {
            q.tasks.push_back(t);
        }
        self.cv.notify_one();
    }

    fn fail(&self, e: Error) {
        if let Ok(mut q) = self.queue.lock() {
            if q.error.is_none() {
                q.error = Some(e);
            }
        }
        self.cv.notify_all();
    }

    fn worker(&self) {
        loop {
            let task = {
                let Ok(mut q) = self.queue.lock() else { return };
                loop {
                    if q.error.is_some() {
                        return;
                    }
                    if let Some(t) = q.tasks.pop_front() {
                        q.in_flight += 1;
                        break t;
                    }
                    if q.in_flight == 0 {
                        self.cv.notify_all();
                        return;
                    }
                    q = match self.cv.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
            };
            let res = self.process(task);
            if let Ok(mut q) = self.queue.lock() {
                q.in_flight -= 1;
                if let Err(e) = res {
                    if q.error.is_none() {
                        q.error = Some(e);
                    }
                }
            }
            self.cv.notify_all();
        }
    }

    fn fetch_meta(&self, ty: ObjectType, c: &Checksum, optional: bool) -> Result<Option<Vec<u8>>> {
        let path = object_url_path(ty, c);
        match fetch_retry(
            self.fetcher,
            &path,
            self.opts,
            self.progress,
            MAX_METADATA_SIZE,
        )? {
            Some(b) => Ok(Some(b)),
            None if optional => Ok(None),
            None => Err(Error::Other(format!(
                "{}: object {c}.{ty} not found on the server",
                self.fetcher.describe(&path)
            ))),
        }
    }

    fn process(&self, t: Task) -> Result<()> {
        match t.ty {
            ObjectType::Commit => self.process_commit(t),
            ObjectType::DirTree => {
                let have = self.repo.has_object(ObjectType::DirTree, &t.csum);
                let bytes = if have {
                    self.repo.load_metadata(ObjectType::DirTree, &t.csum)?
                } else {
                    let b = self
                        .fetch_meta(ObjectType::DirTree, &t.csum, false)?
                        .unwrap_or_default();
                    self.verify_hash(ObjectType::DirTree, &t.csum, &b)?;
                    b
                };
                let dt = DirTree::parse(&bytes).map_err(|e| {
                    Error::corrupt(
                        ObjectType::DirTree,
                        t.csum,
                        format!(
                            "{e} (served by {})",
                            self.fetcher
                                .describe(&object_url_path(ObjectType::DirTree, &t.csum))
                        ),
                    )
                })?;
                if !have {
                    self.txn
                        .write_metadata_as(ObjectType::DirTree, &t.csum, &bytes)?;
                    self.progress
                        .objects_fetched
                        .fetch_add(1, Ordering::Relaxed);
                }
                for (_, f) in &dt.files {
                    if !self.txn.has_object(ObjectType::File, f) {
                        self.push(Task {
                            ty: ObjectType::File,
                            csum: *f,
                            depth: 0,
                        });
                    }
                }
                for (_, st, sm) in &dt.dirs {
                    self.push(Task {
                        ty: ObjectType::DirMeta,
                        csum: *sm,
                        depth: 0,
                    });
                    self.push(Task {
                        ty: ObjectType::DirTree,
                        csum: *st,
                        depth: 0,
                    });
                }
                Ok(())
            }
            ObjectType::DirMeta => {
                if self.repo.has_object(ObjectType::DirMeta, &t.csum) {
                    return Ok(());
                }
                let b = self
                    .fetch_meta(ObjectType::DirMeta, &t.csum, false)?
                    .unwrap_or_default();
                self.verify_hash(ObjectType::DirMeta, &t.csum, &b)?;
                crate::object::DirMeta::parse(&b)
                    .map_err(|e| Error::corrupt(ObjectType::DirMeta, t.csum, e))?;
                self.txn
                    .write_metadata_as(ObjectType::DirMeta, &t.csum, &b)?;
                self.progress
                    .objects_fetched
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            ObjectType::File => self.process_file(&t.csum),
            _ => Ok(()),
        }
    }

    fn verify_hash(&self, ty: ObjectType, c: &Checksum, b: &[u8]) -> Result<()> {
        let actual = Checksum::digest(b);
        if actual != *c {
            return Err(Error::ChecksumMismatch {
                ty,
                csum: *c,
                actual,
            });
        }
        Ok(())
    }

    fn process_commit(&self, t: Task) -> Result<()> {
        let c = t.csum;
        let complete = self.repo.has_object(ObjectType::Commit, &c) && !self.repo.is_partial(&c);
        let prefetched = self.prefetched.lock().ok().and_then(|mut p| p.remove(&c));
        // Detached metadata (signatures) is re-fetched even for commits we have.
        let meta = match &prefetched {
            Some((_, m)) => m.clone(),
            None => self.fetch_meta(ObjectType::CommitMeta, &c, true)?,
        };
        if let Some(meta) = &meta {
            crate::gvariant::decode_normal(meta, &crate::gvariant::Type::of("a{sv}"))
                .map_err(|e| Error::corrupt(ObjectType::CommitMeta, c, e))?;
        }
        let bytes = if self.repo.has_object(ObjectType::Commit, &c) {
            self.repo.load_metadata(ObjectType::Commit, &c)?
        } else if let Some((b, _)) = prefetched {
            b
        } else {
            let b = match self.fetch_meta(ObjectType::Commit, &c, t.depth != self.opts.depth)? {
                Some(b) => b,
                None => return Ok(()), // a parent the server does not have: shallow history
            };
            self.verify_hash(ObjectType::Commit, &c, &b)?;
            b
        };
        self.check_signatures(&c, meta.as_deref(), &bytes)?;
        if let Some(meta) = &meta {
            self.txn
                .write_metadata_as(ObjectType::CommitMeta, &c, meta)?;
        }
        let commit = Commit::parse(&bytes).map_err(|e| Error::corrupt(ObjectType::Commit, c, e))?;
        if !complete {
            // Mark partial before the commit object can land in objects/.
            let marker = self
                .repo
                .path()
                .join("state")
                .join(format!("{c}.commitpartial"));
            if !marker.exists() {
                crate::fsutil::write_atomic(&marker, b"", self.repo.fsync_enabled())?;
            }
            if !self.repo.has_object(ObjectType::Commit, &c) {
                self.txn.write_metadata_as(ObjectType::Commit, &c, &bytes)?;
                self.progress
                    .objects_fetched
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(p) = commit.parent {
            if t.depth != 0 {
                self.push(Task {
                    ty: ObjectType::Commit,
                    csum: p,
                    depth: if t.depth > 0 { t.depth - 1 } else { -1 },
                });
            }
        }
        if complete || self.opts.commit_metadata_only {
            return Ok(());
        }
        self.push(Task {
            ty: ObjectType::DirMeta,
            csum: commit.root_meta,
            depth: 0,
        });
        self.push(Task {
            ty: ObjectType::DirTree,
            csum: commit.root_tree,
            depth: 0,
        });
        Ok(())
    }

    /// Signatures are checked before the commit (or its metadata) is stored, so an
    /// unsigned or tampered commit never enters the repo and no ref moves.
    fn check_signatures(&self, c: &Checksum, meta: Option<&[u8]>, bytes: &[u8]) -> Result<()> {
        if let Some(keys) = &self.opts.ed25519_keys {
            if crate::sign::verify(meta, bytes, keys, &[])?.is_none() {
                let n = meta
                    .map(crate::sign::signatures)
                    .transpose()?
                    .map_or(0, |s| s.len());
                let msg = if n == 0 {
                    "no ed25519 signature (ostree.sign.ed25519) in its detached metadata, and the remote has sign-verify on".to_string()
                } else {
                    format!(
                        "none of its {n} ed25519 signature(s) verifies with the {} key(s) configured for the remote (verification-ed25519-key/-file)",
                        keys.len()
                    )
                };
                return Err(Error::Signature { commit: *c, msg });
            }
        }
        if let Some(keys) = &self.opts.gpg_keys {
            let report = crate::sign::gpg::verify_meta(meta, bytes, keys)?;
            if !report
                .iter()
                .any(|r| r.status == crate::sign::gpg::GpgStatus::Good)
            {
                return Err(Error::Signature {
                    commit: *c,
                    msg: format!(
                        "no good OpenPGP signature (gpg-verify is on): {}",
                        describe_gpg(&report)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Pull `to` (for `refname`) with a static delta when the server lists one that fits:
    /// FROM-TO when the ref is at a complete FROM here, a scratch delta when the ref does not
    /// exist here yet (as ostree chooses). Without a summary, the FROM-TO delta is asked for
    /// directly (as ostree does). Returns the delta's name, or `None` if none fits.
    /// The superblock is checked against the digest the summary (or delta index) gives,
    /// the embedded commit against `to` and its signatures, each part against the
    /// superblock and each object against its checksum.
    fn try_delta(
        &self,
        summary: Option<&Summary>,
        refname: &RefName,
        to: &Checksum,
    ) -> Result<Option<String>> {
        let complete =
            |c: &Checksum| self.repo.has_object(ObjectType::Commit, c) && !self.repo.is_partial(c);
        if complete(to) {
            return Ok(None);
        }
        let current = self.repo.read_ref(refname)?;
        let from = current.filter(|f| f != to && complete(f));
        let Some(summary) = summary else {
            // No summary, so no digest: the embedded commit must still hash to `to`.
            return match from {
                Some(f) => {
                    self.apply_delta(Some(f), to, crate::delta::delta_name(Some(&f), to), None)
                }
                None => Ok(None),
            };
        };
        let indexed = matches!(
            summary.meta("ostree.summary.indexed-deltas"),
            Some(crate::gvariant::Value::Bool(true))
        );
        let map = if indexed {
            let path = crate::delta::index_path(to);
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
        let pick = |f: Option<&Checksum>| {
            let name = crate::delta::delta_name(f, to);
            map.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| (name, *d))
        };
        let (from, (name, digest)) = match (from, current) {
            (Some(f), _) if pick(Some(&f)).is_some() => match pick(Some(&f)) {
                Some(x) => (Some(f), x),
                None => return Ok(None),
            },
            (_, None) => match pick(None) {
                Some(x) => (None, x),
                None => return Ok(None),
            },
            _ => return Ok(None),
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
        let actual = Checksum::digest(&sb_bytes);
        if let Some(digest) = digest.filter(|d| *d != actual) {
            return Err(Error::Other(format!(
                "{what}: superblock hashes to {actual}, the summary says {digest}"
            )));
        }
        let sb = crate::delta::Superblock::parse(&sb_bytes, &what)?;
        if sb.to != *to || sb.from != from {
            return Err(Error::Other(format!(
                "{what}: the superblock is for another pair of commits"
            )));
        }
        let meta = self.fetch_meta(ObjectType::CommitMeta, to, true)?;
        self.check_signatures(to, meta.as_deref(), &sb.commit)?;
        let sink = DeltaSink {
            repo: self.repo,
            txn: self.txn,
        };
        // Parts are independent: two at a time (as ostree), each fetched, decompressed and
        // executed by its own thread, which bounds memory to two parts.
        let todo: Vec<usize> = (0..sb.parts.len())
            .filter(|&i| {
                !sb.parts[i]
                    .objects
                    .iter()
                    .all(|(t, c)| self.txn.has_object(*t, c))
            })
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let run_part = |i: usize| -> Result<()> {
            let part = &sb.parts[i];
            let path = format!("{dir}/{i}");
            let what = self.fetcher.describe(&path);
            let stored = fetch_retry(
                self.fetcher,
                &path,
                self.opts,
                self.progress,
                crate::delta::MAX_PART_SIZE,
            )?
            .ok_or_else(|| Error::Other(format!("{what}: delta part not found on the server")))?;
            let payload = crate::delta::open_part(&stored, part, &what)?;
            drop(stored);
            let n = crate::delta::apply_part(&payload, &part.objects, &sink, &what)?;
            self.progress
                .objects_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
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
        if let Ok(mut p) = self.prefetched.lock() {
            p.insert(*to, (sb.commit, meta));
        }
        Ok(Some(name))
    }

    fn process_file(&self, c: &Checksum) -> Result<()> {
        if self.txn.has_object(ObjectType::File, c) {
            return Ok(());
        }
        let path = object_url_path(ObjectType::File, c);
        let described = || self.fetcher.describe(&path);
        let partial = self.partial_dir.join(format!("{}.filez", c.to_hex()));
        let fetched = fetch_file_object(self.fetcher, &path, &partial, self.opts, self.progress)?;
        let on_disk = matches!(fetched, Fetched::Disk(_));
        let res = self.store_filez(c, fetched, &partial, &described);
        // A partial download is used once: verified and stored, or found bad and dropped so
        // the next attempt starts over.
        if on_disk {
            let _ = std::fs::remove_file(&partial);
        }
        res?;
        self.progress
            .objects_fetched
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Shared<'_> {
    /// Verify a `.filez` (parse, inflate within its declared size, hash) and store it. An
    /// archive repo keeps the downloaded bytes as they are (no recompression); other modes
    /// store the inflated content.
    fn store_filez(
        &self,
        c: &Checksum,
        fetched: Fetched,
        partial: &std::path::Path,
        described: &dyn Fn() -> String,
    ) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::corrupt(
                ObjectType::File,
                *c,
                format!("{e} (served by {})", described()),
            )
        };
        let (bytes, file) = match fetched {
            Fetched::Memory(b) => (Some(b), None),
            Fetched::Disk(f) => (None, Some(f)),
        };
        let mut r: Box<dyn std::io::BufRead + Send + '_> = match (&bytes, file) {
            (Some(b), _) => Box::new(std::io::Cursor::new(b.as_slice())),
            (None, Some(f)) => Box::new(BufReader::with_capacity(64 * 1024, f)),
            (None, None) => return Err(Error::Other("internal: nothing fetched".into())),
        };
        let (header, size) = crate::repo::read::read_archive_header(&mut r).map_err(|e| bad(&e))?;
        let archive = self.repo.mode() == crate::repo::RepoMode::Archive;
        let (mut payload, size): (Box<dyn Read + Send>, u64) = if header.is_symlink() {
            (Box::new(std::io::empty()), 0)
        } else {
            (
                crate::repo::read::archive_payload(
                    r,
                    size,
                    PathBuf::from(format!("served by {}", described())),
                ),
                size,
            )
        };
        let map_err = |e: Error| match e {
            Error::ChecksumMismatch { actual, .. } => Error::corrupt(
                ObjectType::File,
                *c,
                format!("content hashes to {actual} (served by {})", described()),
            ),
            Error::Other(m) => bad(&m),
            // Inflate errors and size violations surface as read errors of the payload.
            Error::Io {
                source,
                op: "read content for",
                ..
            } => Error::corrupt(ObjectType::File, *c, source),
            e => e,
        };
        if !archive {
            self.txn
                .write_file(&header, &mut payload, size, Some(c))
                .map_err(map_err)?;
            return Ok(());
        }
        // Archive: verify by hashing the inflated stream, then keep the served bytes.
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(header.content_stream_prefix());
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = payload
                .read(&mut buf)
                .map_err(|e| Error::corrupt(ObjectType::File, *c, e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            h.update(&buf[..n]);
        }
        if total != size {
            return Err(bad(&format!(
                "content is {total} bytes, header says {size}"
            )));
        }
        let actual = Checksum(h.finalize().into());
        if actual != *c {
            return Err(bad(&format!("content hashes to {actual}")));
        }
        drop(payload);
        match &bytes {
            Some(b) => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::Bytes(b)),
            None => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::File(partial)),
        }
    }
}

enum Fetched {
    Memory(Vec<u8>),
    Disk(std::fs::File),
}

/// Small objects come into memory; large ones into `partial` on disk, continuing a previous
/// cut-off download with `Range` (the final checksum verifies the joined bytes).
fn fetch_file_object(
    fetcher: &dyn Fetcher,
    path: &str,
    partial: &std::path::Path,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<Fetched> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let res = fetcher.fetch(path, have);
        let mut resp = match res {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(Error::Other(format!(
                    "object {}.file not found on the server ({})",
                    path.trim_start_matches("objects/")
                        .replace('/', "")
                        .split('.')
                        .next()
                        .unwrap_or(path),
                    fetcher.describe(path)
                )))
            }
            Err(FetchError::Fatal(e)) => return Err(e),
            // The partial download is already complete: use it (its checksum decides).
            Err(FetchError::RangeNotSatisfiable) => {
                let f = std::fs::File::open(partial).ctx("open", partial)?;
                return Ok(Fetched::Disk(f));
            }
            Err(FetchError::Transient(m)) => {
                if attempt > opts.retries {
                    return Err(Error::Other(format!(
                        "{}: {m} (gave up after {attempt} attempts)",
                        fetcher.describe(path)
                    )));
                }
                std::thread::sleep(backoff(attempt));
                continue;
            }
        };
        let big = have > 0 || resp.len.unwrap_or(0) >= RESUME_THRESHOLD;
        if !big {
            let mut b = Vec::new();
            match (&mut resp.body)
                .take(MAX_METADATA_SIZE.max(RESUME_THRESHOLD * 64))
                .read_to_end(&mut b)
            {
                Ok(n) => {
                    progress
                        .bytes_fetched
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(Fetched::Memory(b));
                }
                Err(e) => {
                    if attempt > opts.retries {
                        return Err(Error::Other(format!(
                            "{}: {e} (gave up after {attempt} attempts)",
                            fetcher.describe(path)
                        )));
                    }
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(!resp.restarted)
            .write(true)
            .truncate(resp.restarted)
            .read(true)
            .open(partial)
            .ctx("open", partial)?;
        let mut buf = vec![0u8; 64 * 1024];
        let copied: std::io::Result<()> = (|| loop {
            let n = resp.body.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            f.write_all(&buf[..n])?;
            progress
                .bytes_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
        })();
        match copied {
            Ok(()) => {
                f.flush().ctx("write", partial)?;
                f.seek(std::io::SeekFrom::Start(0)).ctx("seek", partial)?;
                return Ok(Fetched::Disk(f));
            }
            Err(e) => {
                if attempt > opts.retries {
                    return Err(Error::Other(format!("{}: {e} (gave up after {attempt} attempts; the bytes so far are kept for the next pull)", fetcher.describe(path))));
                }
                std::thread::sleep(backoff(attempt));
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

/// GET a small file with retries; `Ok(None)` on 404.
fn fetch_retry(
    fetcher: &dyn Fetcher,
    path: &str,
    opts: &PullOptions,
    progress: &PullProgress,
    cap: u64,
) -> Result<Option<Vec<u8>>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let err = match fetcher.fetch(path, 0) {
            Ok(None) => return Ok(None),
            Ok(Some(mut r)) => {
                let mut b = Vec::new();
                match (&mut r.body).take(cap + 1).read_to_end(&mut b) {
                    Ok(_) if b.len() as u64 > cap => {
                        return Err(Error::Other(format!(
                            "{}: larger than the {} MiB metadata limit",
                            fetcher.describe(path),
                            cap >> 20
                        )))
                    }
                    Ok(n) => {
                        progress
                            .bytes_fetched
                            .fetch_add(n as u64, Ordering::Relaxed);
                        return Ok(Some(b));
                    }
                    Err(e) => e.to_string(),
                }
            }
            Err(FetchError::Fatal(e)) => return Err(e),
            Err(FetchError::Transient(m)) => m,
            Err(FetchError::RangeNotSatisfiable) => "HTTP 416".to_string(),
        };
        if attempt > opts.retries {
            return Err(Error::Other(format!(
                "{}: {err} (gave up after {attempt} attempts)",
                fetcher.describe(path)
            )));
        }
        std::thread::sleep(backoff(attempt));
    }
}

/// One line about each signature, for refusals.
fn describe_gpg(report: &[crate::sign::gpg::GpgSignature]) -> String {
    use crate::sign::gpg::GpgStatus;
    if report.is_empty() {
        return "no ostree.gpgsigs signature".into();
    }
    report
        .iter()
        .map(|r| {
            let key = r.key.as_deref().unwrap_or("unknown key");
            match r.status {
                GpgStatus::Good => format!("good signature by {key}"),
                GpgStatus::ExpiredKey => format!("signature by expired key {key}"),
                GpgStatus::RevokedKey => format!("signature by revoked key {key}"),
                GpgStatus::Bad => format!("BAD signature (key {key})"),
                GpgStatus::UnknownKey => {
                    format!("signature by {key}, which is not in the remote's keyring")
                }
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A commit object and its detached metadata, fetched ahead of the object walk.
type Prefetched = (Vec<u8>, Option<Vec<u8>>);

/// Objects executed out of a static delta part go into the pull's transaction.
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
            ObjectType::Commit => {
                Commit::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
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

    fn read_content(&self, csum: &Checksum) -> Result<Vec<u8>> {
        let mut f = self.repo.read_file(csum)?;
        let mut out = Vec::with_capacity(f.size.min(crate::delta::MAX_PART_SIZE) as usize);
        f.payload
            .read_to_end(&mut out)
            .ctx("read content for", f.path.clone())?;
        Ok(out)
    }
}
