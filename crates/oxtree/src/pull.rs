//! Pull over plain HTTP from an `archive` repository on any static server (spec §5).
//!
//! How it differs from ostree's pull, to fix what users complain about:
//! - **Many requests in flight**: a pool of fetch threads over one keep-alive HTTP agent,
//!   16 to begin with and up to 192 as the measured round trip asks (Little's law, see
//!   `walk::in_flight_for`), so latency does not multiply with the object count; on
//!   loopback and LANs the pool stays small (more threads would only cost memory, and
//!   hold more served but unread responses that a kill would waste).
//! - **Streaming**: each object is verified and written by the thread that fetched it while
//!   the others keep downloading.
//! - **Resumable**: the commit is marked partial first; finished objects are moved into
//!   `objects/` every couple of seconds (`Transaction::checkpoint`), so a killed pull keeps
//!   them and the next run fetches only what is missing. Objects larger than
//!   [`RESUME_THRESHOLD`] are downloaded into `tmp/pull-partial/` in `Range` slices (as
//!   large as the round trip needs, within a budget shared by the whole pull), so a kill
//!   loses little more than the slices in flight, and the next run continues each partial
//!   file where it stopped.
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
mod metalink;
mod policy;
mod resolve;
mod retry;
mod static_delta;
mod verify;
mod walk;

pub(crate) use policy::Verify;
pub(crate) use resolve::fetch_summary;
pub(crate) use static_delta::{execute_parts, reachable_tree};
pub(crate) use verify::{check_ref_binding, verify_commit, LocalCheck, VerifiedMeta, Wanted};

pub use fetch::{FetchError, FetchOptions, Fetcher, FileFetcher, HttpFetcher, Response, UNBOUNDED};

use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType};
use crate::repo::{RefName, Repo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use walk::Shared;

/// Objects at least this large (compressed) are downloaded to disk and resumed with `Range`;
/// every object's first request asks for this many bytes (a smaller object comes whole).
pub const RESUME_THRESHOLD: u64 = 64 << 10;
/// Metadata objects and the summary may not exceed this (ostree's `max-metadata-size`).
pub const MAX_METADATA_SIZE: u64 = 128 << 20;
/// The largest commit, dirtree, dirmeta or detached metadata object a pull downloads:
/// ostree's `OSTREE_MAX_METADATA_SIZE` (10 MiB), so any repository ostree can pull.
pub const MAX_OBJECT_METADATA_SIZE: u64 = 10 << 20;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Parent commits to fetch beyond each target (0 = none, -1 = all).
    pub depth: i64,
    pub commit_metadata_only: bool,
    /// Write `refs/heads/REF` instead of `refs/remotes/REMOTE/REF`.
    pub mirror: bool,
    /// Resolve refs and report what would be fetched, without fetching objects.
    pub dry_run: bool,
    /// The most requests in flight at once.
    pub fetchers: usize,
    /// Requests in flight to begin with: a pull starts with this many and rises towards
    /// `fetchers` as the round trip it measures asks for more (see `walk`). Equal to
    /// `fetchers` (as `--fetchers=N` sets it), the count is fixed.
    pub min_fetchers: usize,
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
    pub ed25519_keys: Option<Vec<crate::sign::PublicKey>>,
    /// ed25519 keys whose signatures never count (ostree's `revoked.ed25519` lists).
    pub ed25519_revoked: Vec<crate::sign::PublicKey>,
    /// With `Some`, the summary must be signed (`summary.sig`) by one of these keys
    /// (`sign-verify-summary`).
    pub summary_keys: Option<Vec<crate::sign::PublicKey>>,
    /// The `dummy` test engine (ostree's, for its test suite): with `Some`, a commit may
    /// also pass with a dummy signature equal to one of these keys (`sign-verify` naming
    /// it, `verification-dummy-key`).
    pub dummy_keys: Option<Vec<String>>,
    /// The same for the summary (`sign-verify-summary`).
    pub summary_dummy_keys: Option<Vec<String>>,
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
    /// Only these paths of each commit's tree (`--subpath`, repeatable): the directories
    /// leading to them and everything below them. The commit stays marked partial, and no
    /// static delta is used. Empty (or `/`) pulls the whole tree.
    pub subpaths: Vec<String>,
    /// Every commit must come by a static delta (`--require-static-deltas`): fail, before
    /// any object is fetched, where the server has none, instead of fetching objects.
    pub require_static_deltas: bool,
    /// Fetch from this URL instead of the remote's `url` (`--url`); the remote's keys and
    /// policy still apply.
    pub url: Option<String>,
    /// Extra headers sent with every HTTP request (`--http-header=NAME=VALUE`).
    pub http_headers: Vec<(String, String)>,
    /// Appended to the User-Agent (`--append-user-agent`).
    pub append_user_agent: Option<String>,
    /// Local repositories objects are copied from before the server is asked
    /// (`--localcache-repo`); each copy is verified against its checksum as a download is.
    pub localcache_repos: Vec<std::path::PathBuf>,
    /// Where the remote's signed summary is cached (`--cache-dir=DIR`:
    /// `DIR/summaries/REMOTE`, its signature beside it as `REMOTE.sig`): an unchanged
    /// signature on the server means the cached summary is not downloaded again.
    pub summary_cache: Option<std::path::PathBuf>,
}

impl PullOptions {
    /// Whether commits must pass a signature engine (`sign-verify`).
    pub(crate) fn signs_commits(&self) -> bool {
        self.ed25519_keys.is_some() || self.dummy_keys.is_some()
    }

    /// Whether the summary must pass one (`sign-verify-summary`).
    pub(crate) fn signs_summary(&self) -> bool {
        self.summary_keys.is_some() || self.summary_dummy_keys.is_some()
    }

    /// The signature engines commits must pass (`sign-verify`), in ostree's order.
    pub(crate) fn commit_verifiers(&self) -> Vec<crate::sign::Verifier> {
        verifiers(&self.ed25519_keys, &self.dummy_keys, &self.ed25519_revoked)
    }

    /// The engines the summary must pass (`sign-verify-summary`).
    pub(crate) fn summary_verifiers(&self) -> Vec<crate::sign::Verifier> {
        verifiers(
            &self.summary_keys,
            &self.summary_dummy_keys,
            &self.ed25519_revoked,
        )
    }
}

fn verifiers(
    ed25519: &Option<Vec<crate::sign::PublicKey>>,
    dummy: &Option<Vec<String>>,
    revoked: &[crate::sign::PublicKey],
) -> Vec<crate::sign::Verifier> {
    let mut out = Vec::new();
    if let Some(keys) = ed25519 {
        out.push(crate::sign::Verifier::Ed25519 {
            keys: keys.clone(),
            revoked: revoked.to_vec(),
        });
    }
    if let Some(keys) = dummy {
        out.push(crate::sign::Verifier::Dummy(keys.clone()));
    }
    out
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            depth: 0,
            commit_metadata_only: false,
            mirror: false,
            dry_run: false,
            fetchers: 192,
            min_fetchers: 16,
            retries: 5,
            timeout: Duration::from_secs(30),
            low_speed_limit_bytes: None,
            low_speed_time: None,
            ed25519_keys: None,
            ed25519_revoked: Vec::new(),
            summary_keys: None,
            dummy_keys: None,
            summary_dummy_keys: None,
            timestamp_check: false,
            timestamp_check_from_rev: None,
            gpg_keys: None,
            gpg_summary_keys: None,
            disable_static_deltas: false,
            collection_id: None,
            disable_verify_bindings: false,
            subpaths: Vec::new(),
            require_static_deltas: false,
            url: None,
            http_headers: Vec::new(),
            append_user_agent: None,
            localcache_repos: Vec::new(),
            summary_cache: None,
        }
    }
}

/// Counters a progress display can read while the pull runs.
#[derive(Debug, Default)]
pub struct PullProgress {
    pub objects_fetched: AtomicU64,
    /// As ostree counts them for its summary line: metadata objects fetched (one per
    /// detached-metadata request too, found or not), content objects fetched, static delta
    /// parts fetched, objects copied from a `--localcache-repo`, and the (unpacked) bytes of
    /// the content objects written.
    pub metadata_fetched: AtomicU64,
    pub content_fetched: AtomicU64,
    pub deltaparts_fetched: AtomicU64,
    pub localcache_metadata: AtomicU64,
    pub localcache_content: AtomicU64,
    pub content_bytes_written: AtomicU64,
    /// Detached-metadata requests among `metadata_fetched` (an import does not count them).
    pub detached_requests: AtomicU64,
    pub objects_queued: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub requests: AtomicU64,
    /// The most requests the walk had in flight (fetch threads running).
    pub fetchers: AtomicU64,
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
    /// The counters of ostree's summary line (see [`PullProgress`]).
    pub metadata_fetched: u64,
    pub content_fetched: u64,
    pub deltaparts_fetched: u64,
    pub localcache_metadata: u64,
    pub localcache_content: u64,
    pub content_bytes_written: u64,
    pub detached_requests: u64,
    /// Bytes of the summary, its signature, the config and refs (in `bytes_fetched`).
    pub setup_bytes: u64,
    /// Bytes of the server's "not found" answers after those (not in `bytes_fetched`).
    pub not_found_bytes: u64,
    pub requests: u64,
    /// The most requests in flight (see [`PullOptions::min_fetchers`]).
    pub fetchers: u64,
    pub elapsed: Duration,
    /// Static deltas applied, by name (`FROM-TO` or `TO`).
    pub deltas: Vec<String>,
    /// Things that went wrong but were worked around (an unusable delta: objects fetched
    /// one by one instead).
    pub warnings: Vec<String>,
    /// `--dry-run --require-static-deltas`: the deltas the pull would apply, from their
    /// superblocks (nothing else is fetched or stored).
    pub delta_plan: Option<DeltaPlan>,
}

/// What the static deltas of a pull amount to, as ostree's dry run reports them: parts,
/// their bytes as served and unpacked.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaPlan {
    pub parts: u64,
    pub size: u64,
    pub uncompressed_size: u64,
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
        // Every commit named by checksum (`REF@CHECKSUM` or a bare one): the summary is
        // not needed to resolve anything, and one that does not parse is passed over, as
        // ostree passes it over (only its deltas would have been of use).
        let pinned = !refs.is_empty()
            && refs.iter().all(|r| {
                let rev = r.rsplit_once('@').map_or(r.as_str(), |(_, rev)| rev);
                rev.parse::<Checksum>().is_ok()
            });
        let fetched = match resolve::fetch_summary_full(fetcher, opts, progress) {
            Err(Error::InvalidSummary { .. }) if pinned => None,
            r => r?,
        };
        let summary = fetched.as_ref().map(|f| &f.summary);
        resolve::check_remote_mode(fetcher, fetched.is_some(), opts, progress)?;
        let targets = resolve::targets(self, fetcher, remote, refs, summary, opts, progress)?;
        // ostree's "transferred" figure leaves out the summary, its signature, the config
        // and the refs: what was fetched up to here.
        let setup_bytes = progress.bytes_fetched.load(Ordering::Relaxed);
        let setup_not_found = fetcher.not_found_bytes();
        // A mirror of a remote with a collection ID (configured, else the one its summary
        // names) keeps its refs as collection refs (`refs/mirrors/COLLECTION-ID/REF`), as
        // ostree's mirror does.
        let mirror_cid = opts.collection_id.clone().or_else(|| {
            summary
                .and_then(|s| s.meta("ostree.summary.collection-id"))
                .and_then(crate::gvariant::Value::as_str)
                .map(str::to_string)
        });
        let resolved = targets
            .into_iter()
            .map(|(r, c)| Resolved {
                dest: r.as_ref().map(|r| match (&mirror_cid, opts.mirror) {
                    (Some(cid), true) => Dest::Collection(crate::repo::CollectionRef {
                        collection_id: cid.clone(),
                        ref_name: r.clone(),
                    }),
                    _ => Dest::Ref(RefName {
                        remote: if opts.mirror {
                            None
                        } else {
                            Some(remote.to_string())
                        },
                        name: r.clone(),
                    }),
                }),
                remote_ref: r,
                commit: c,
            })
            .collect::<Vec<_>>();
        let mut res = self.pull_resolved(fetcher, summary, &resolved, opts, progress, start)?;
        if let (Some(f), true) = (&fetched, opts.mirror && refs.is_empty() && !opts.dry_run) {
            // A mirror of every ref serves the same summary (and its signature), as
            // ostree's mirror pull leaves them: the bytes fetched (and verified) above.
            let sig = match &f.sig {
                Some(s) => s.clone(),
                None => {
                    retry::fetch_retry(fetcher, "summary.sig", opts, progress, MAX_METADATA_SIZE)?
                }
            };
            let fsync = self.fsync_enabled();
            crate::fsutil::write_atomic(&self.path().join("summary"), &f.bytes, fsync)?;
            let sig_path = self.path().join("summary.sig");
            match sig {
                Some(b) => crate::fsutil::write_atomic(&sig_path, &b, fsync)?,
                None => {
                    let _ = std::fs::remove_file(&sig_path);
                }
            }
        }
        res.setup_bytes = setup_bytes;
        res.not_found_bytes = fetcher.not_found_bytes().saturating_sub(setup_not_found);
        Ok(res)
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
        // A dry run stops here, but with --require-static-deltas (ostree's only dry run) it
        // reads the deltas' superblocks to say what they would bring.
        if opts.dry_run && !opts.require_static_deltas {
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
        let caches = opts
            .localcache_repos
            .iter()
            .map(|p| {
                // ostree's words for a path that is not there.
                if let Err(e) = std::fs::read_dir(p) {
                    let s = e.to_string();
                    let s = s.split(" (os error").next().unwrap_or(&s);
                    return Err(Error::Quoted {
                        msg: format!("opening repo: opendir({}): {s}", p.display()),
                        path: p.clone(),
                    });
                }
                Repo::open(p)
            })
            .collect::<Result<Vec<_>>>()?;
        let txn = self.begin()?;
        let mut shared = Shared::new(self, &txn, fetcher, opts, progress, partial_dir, wanted);
        shared.caches = caches;
        // Static deltas first: each applied one leaves little or nothing for the object
        // walk below, which then only confirms the commit is complete.
        let subpath = walk::normalize_subpaths(&opts.subpaths).is_some();
        let deltas_ok = !opts.disable_static_deltas
            && !opts.commit_metadata_only
            && !subpath
            && (self.mode() != crate::repo::RepoMode::Archive || opts.dry_run);
        if deltas_ok {
            for (t, cur) in targets.iter().zip(&current) {
                // With --require-static-deltas a checksum pull needs its delta too.
                if t.dest.is_none() && !opts.require_static_deltas {
                    continue;
                }
                let c = &t.commit;
                match shared.try_delta(summary, *cur, c) {
                    Ok(Some(name)) => result.deltas.push(name),
                    Ok(None)
                        if opts.require_static_deltas
                            && (!self.has_object(ObjectType::Commit, c) || self.is_partial(c)) =>
                    {
                        return Err(Error::NotFound(format!(
                            "Static deltas required, but none found for {} to {c}",
                            t.remote_ref.as_deref().unwrap_or("")
                        )))
                    }
                    Ok(None) => {}
                    // A refused commit is refused whichever way it comes; with
                    // --require-static-deltas so is a delta that cannot be used.
                    Err(e)
                        if opts.require_static_deltas
                            || e.is_verification()
                            || matches!(e, Error::Io { .. }) =>
                    {
                        return Err(e)
                    }
                    Err(e) => result.warnings.push(format!(
                        "static delta to {c} not used ({e}); fetching its objects instead"
                    )),
                }
            }
            if !result.deltas.is_empty() && !opts.dry_run {
                txn.checkpoint()?;
            }
        }
        if opts.dry_run {
            result.delta_plan = Some(shared.delta_plan.lock().map(|p| *p).unwrap_or_default());
            result.elapsed = start.elapsed();
            return Ok(result);
        }
        shared.run(targets.iter().map(|t| t.commit))?;
        // Parents walked in full (`--depth`) are complete too, as in ostree.
        let completed = shared
            .completed
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        drop(shared);
        for c in &completed {
            txn.remove_commitpartial(c);
        }
        // Partial markers of complete commits go and refs move inside the transaction: once
        // its objects are durable and before the repo lock is released, so a concurrent
        // prune never sees the new commits unreachable (durability D1). Collection refs are
        // written right after it, under a second shared lock taken before it commits.
        let mut collection = Vec::new();
        for t in targets {
            // A --subpath pull leaves the commit partial, as ostree.
            if !opts.commit_metadata_only && !subpath {
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
        result.metadata_fetched = progress.metadata_fetched.load(Ordering::Relaxed);
        result.content_fetched = progress.content_fetched.load(Ordering::Relaxed);
        result.deltaparts_fetched = progress.deltaparts_fetched.load(Ordering::Relaxed);
        result.localcache_metadata = progress.localcache_metadata.load(Ordering::Relaxed);
        result.localcache_content = progress.localcache_content.load(Ordering::Relaxed);
        result.content_bytes_written = progress.content_bytes_written.load(Ordering::Relaxed);
        result.detached_requests = progress.detached_requests.load(Ordering::Relaxed);
        result.requests = progress.requests.load(Ordering::Relaxed);
        result.fetchers = progress.fetchers.load(Ordering::Relaxed);
        result.elapsed = start.elapsed();
        Ok(result)
    }
}

/// The local path a `file:` URL names, in the forms ostree (GIO) takes: `file:///PATH`,
/// `file://localhost/PATH` and `file:/PATH`.
pub fn file_url_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("file:")?;
    if let Some(r) = rest.strip_prefix("//") {
        if r.starts_with('/') {
            return Some(r);
        }
        return r.strip_prefix("localhost").filter(|p| p.starts_with('/'));
    }
    rest.starts_with('/').then_some(rest)
}
