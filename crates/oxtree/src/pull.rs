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
//! `verification-ed25519-key`/`-file` that no revocation list names. Both are checked before
//! the commit is stored, and the summary likewise with `gpg-verify-summary`/
//! `sign-verify-summary`; with a summary, refs resolve only through it. Before a commit is
//! stored its bindings (`ostree.ref-binding`/`collection-binding`) must match what was asked
//! for, and with `timestamp_check(_from_rev)` it may not be older than the current one
//! (`verify`). A static delta's parts may only deliver objects the verified commit reaches
//! (`static_delta`).

mod content;
mod fetch;
mod policy;
mod resolve;
mod retry;
mod static_delta;
mod verify;
mod walk;

pub(crate) use policy::Verify;
pub(crate) use resolve::fetch_summary;
pub(crate) use verify::{verify_commit, LocalCheck, Wanted};

pub use fetch::{FetchError, FetchOptions, Fetcher, FileFetcher, HttpFetcher, Response, UNBOUNDED};

use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType};
use crate::repo::{RefName, Repo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use walk::Shared;

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
    /// ostree's low-speed rule, overriding the remote's `low-speed-limit-bytes` (a transfer
    /// averaging fewer bytes per second than this over `low_speed_time` is aborted).
    pub low_speed_limit_bytes: Option<u64>,
    /// Overrides the remote's `low-speed-time-seconds`.
    pub low_speed_time: Option<Duration>,
    /// With `Some`, every commit must carry an ed25519 signature by one of these keys
    /// (`sign-verify`); checked before the commit is stored or any ref moves.
    pub ed25519_keys: Option<Vec<ed25519_dalek::VerifyingKey>>,
    /// ed25519 keys whose signatures never count (ostree's `revoked.ed25519` lists).
    pub ed25519_revoked: Vec<ed25519_dalek::VerifyingKey>,
    /// With `Some`, the summary must be signed (`summary.sig`) by one of these keys
    /// (`sign-verify-summary`).
    pub summary_keys: Option<Vec<ed25519_dalek::VerifyingKey>>,
    /// Refuse a commit older (by timestamp) than the one its ref points at here now
    /// (`--timestamp-check`); checked as soon as the commit is fetched and verified, before
    /// anything is stored.
    pub timestamp_check: bool,
    /// Refuse a commit older than this local commit (`--timestamp-check-from-rev`; what an
    /// upgrade passes: the deployed commit), checked at the same point.
    pub timestamp_check_from_rev: Option<Checksum>,
    /// With `Some`, every commit must carry a good OpenPGP signature (`ostree.gpgsigs`) by
    /// one of these keys (`gpg-verify`, on by default).
    pub gpg_keys: Option<Vec<pgp::composed::SignedPublicKey>>,
    /// The same for the summary (`gpg-verify-summary`).
    pub gpg_summary_keys: Option<Vec<pgp::composed::SignedPublicKey>>,
    /// Fetch objects one by one even when the server has a static delta.
    pub disable_static_deltas: bool,
    /// The remote's collection ID (`collection-id`): commits must be bound to it
    /// (`ostree.collection-binding`), as ostree checks.
    pub collection_id: Option<String>,
    /// Skip the `ostree.ref-binding` / `ostree.collection-binding` checks
    /// (`--disable-verify-bindings`).
    pub disable_verify_bindings: bool,
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
            low_speed_limit_bytes: None,
            low_speed_time: None,
            ed25519_keys: None,
            ed25519_revoked: Vec::new(),
            summary_keys: None,
            timestamp_check: false,
            timestamp_check_from_rev: None,
            gpg_keys: None,
            gpg_summary_keys: None,
            disable_static_deltas: false,
            collection_id: None,
            disable_verify_bindings: false,
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
    /// The same for collection refs (pulls of `(collection, ref)`, as `find-remotes`).
    pub collection_refs: Vec<(crate::repo::CollectionRef, Option<Checksum>, Checksum)>,
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

/// Where a pulled ref is recorded here.
#[derive(Debug, Clone)]
pub(crate) enum Dest {
    /// `refs/heads/REF` or `refs/remotes/REMOTE/REF`.
    Ref(RefName),
    /// A collection ref: `refs/mirrors/COLLECTION-ID/REF` (or `refs/heads/REF` for this
    /// repository's own collection).
    Collection(crate::repo::CollectionRef),
}

impl Dest {
    fn read(&self, repo: &Repo) -> Result<Option<Checksum>> {
        match self {
            Dest::Ref(r) => repo.read_ref(r),
            Dest::Collection(c) => repo.read_collection_ref(c),
        }
    }
}

/// A commit to pull: the ref it was asked for on the remote (`None` for a bare checksum),
/// where that ref goes here, and the commit it resolved to.
pub(crate) struct Resolved {
    pub(crate) remote_ref: Option<String>,
    pub(crate) dest: Option<Dest>,
    pub(crate) commit: Checksum,
}

impl Repo {
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
        // The summary, when the server has one, resolves refs in one request.
        let summary = resolve::fetch_summary(fetcher, opts, progress)?;
        resolve::check_remote_mode(fetcher, opts, progress)?;
        let targets = resolve::targets(
            self,
            fetcher,
            remote,
            refs,
            summary.as_ref(),
            opts,
            progress,
        )?;
        let resolved = targets
            .into_iter()
            .map(|(r, c)| Resolved {
                dest: r.as_ref().map(|r| {
                    Dest::Ref(RefName {
                        remote: if opts.mirror {
                            None
                        } else {
                            Some(remote.to_string())
                        },
                        name: r.clone(),
                    })
                }),
                remote_ref: r,
                commit: c,
            })
            .collect::<Vec<_>>();
        self.pull_resolved(fetcher, summary.as_ref(), &resolved, opts, progress, start)
    }

    /// The pull proper, once every target is resolved: fetch (static deltas first, then
    /// objects), verify, store, and move the refs inside the transaction.
    pub(crate) fn pull_resolved(
        &self,
        fetcher: &dyn Fetcher,
        summary: Option<&crate::object::Summary>,
        targets: &[Resolved],
        opts: &PullOptions,
        progress: &PullProgress,
        start: Instant,
    ) -> Result<PullResult> {
        let mut result = PullResult::default();
        let mut current = Vec::with_capacity(targets.len());
        for t in targets {
            let cur = match &t.dest {
                Some(d) => d.read(self)?,
                None => None,
            };
            current.push(cur);
            match &t.dest {
                Some(Dest::Ref(r)) => result.refs.push((r.clone(), cur, t.commit)),
                Some(Dest::Collection(c)) => {
                    result.collection_refs.push((c.clone(), cur, t.commit))
                }
                None => {}
            }
        }
        if opts.dry_run {
            result.elapsed = start.elapsed();
            return Ok(result);
        }

        let partial_dir = self.path().join("tmp/pull-partial");
        std::fs::create_dir_all(&partial_dir).ctx("create directory", &partial_dir)?;
        let mut wanted: std::collections::HashMap<Checksum, Vec<verify::Wanted>> =
            std::collections::HashMap::new();
        for (t, cur) in targets.iter().zip(&current) {
            wanted.entry(t.commit).or_default().push(verify::Wanted {
                refname: t.remote_ref.clone(),
                current: *cur,
            });
        }
        let txn = self.begin()?;
        let shared = Shared::new(self, &txn, fetcher, opts, progress, partial_dir, wanted);
        // Static deltas first: each applied one leaves little or nothing for the object
        // walk below, which then only confirms the commit is complete.
        let deltas_ok = !opts.disable_static_deltas
            && !opts.commit_metadata_only
            && self.mode() != crate::repo::RepoMode::Archive;
        if deltas_ok {
            for (t, cur) in targets.iter().zip(&current) {
                if t.dest.is_none() {
                    continue;
                }
                let c = &t.commit;
                match shared.try_delta(summary, *cur, c) {
                    Ok(Some(name)) => result.deltas.push(name),
                    Ok(None) => {}
                    // A refused commit is refused whichever way it comes.
                    Err(e) if e.is_verification() || matches!(e, Error::Io { .. }) => {
                        return Err(e)
                    }
                    Err(e) => result.warnings.push(format!(
                        "static delta to {c} not used ({e}); fetching its objects instead"
                    )),
                }
            }
            if !result.deltas.is_empty() {
                txn.checkpoint()?;
            }
        }
        shared.run(targets.iter().map(|t| t.commit))?;
        drop(shared);
        // Partial markers of complete commits go and refs move inside the transaction: once
        // its objects are durable and before the repo lock is released, so a concurrent
        // prune never sees the new commits unreachable (durability D1). Collection refs are
        // written right after it, under a second shared lock taken before it commits.
        let mut collection = Vec::new();
        for t in targets {
            if !opts.commit_metadata_only {
                txn.remove_commitpartial(&t.commit);
            }
            match &t.dest {
                Some(Dest::Ref(r)) => txn.set_ref(r, Some(&t.commit))?,
                Some(Dest::Collection(c)) => collection.push((c, t.commit)),
                None => {}
            }
        }
        let _lock = if collection.is_empty() {
            None
        } else {
            Some(self.lock(false)?)
        };
        txn.commit()?;
        for (c, commit) in collection {
            self.set_collection_ref(c, Some(&commit))?;
        }
        result.objects_fetched = progress.objects_fetched.load(Ordering::Relaxed);
        result.bytes_fetched = progress.bytes_fetched.load(Ordering::Relaxed);
        result.requests = progress.requests.load(Ordering::Relaxed);
        result.elapsed = start.elapsed();
        Ok(result)
    }
}
