//! The object walk: a pool of fetch threads works through a queue of objects, starting at
//! the target commits and following dirtrees, verifying and storing each object it fetches,
//! while the calling thread checkpoints finished objects into `objects/`.

use super::content;
use super::retry::fetch_retry;
use super::verify::Wanted;
use super::{object_url_path, PullOptions, PullProgress};
use crate::error::{Error, Result};
use crate::object::{Checksum, DirTree, ObjectType};
use crate::pull::Fetcher;
use crate::repo::{Repo, Transaction};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A commit object and its detached metadata, fetched ahead of the object walk.
pub(super) type Prefetched = (Vec<u8>, Option<Vec<u8>>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Task {
    pub(super) ty: ObjectType,
    pub(super) csum: Checksum,
    /// Remaining parent depth, for commits.
    pub(super) depth: i64,
    /// For dirtrees of a `--subpath` pull: the paths still wanted below this directory
    /// (relative, `/`-separated, never empty); `None` wants all of it.
    pub(super) sub: Option<Arc<[String]>>,
}

/// An object already queued, with what of it a `--subpath` pull wants (a dirtree shared by
/// two paths may be wanted whole at one and in part at the other).
type Seen = (ObjectType, Checksum, Option<Arc<[String]>>);

/// What a `--subpath` pull wants below the directory `name`, given what it wants below its
/// parent (`sub`): `None` when the whole directory is wanted, `Some(rest)` for the paths
/// below it, `Some([])` when nothing below it is.
fn sub_for(sub: &[String], name: &str) -> Option<Vec<String>> {
    let mut rest = Vec::new();
    for p in sub {
        match p.split_once('/') {
            None if p == name => return None,
            Some((first, r)) if first == name => rest.push(r.to_string()),
            _ => {}
        }
    }
    Some(rest)
}

/// `--subpath` arguments as the walk wants them: relative paths without empty components;
/// `None` when one of them is the root (the whole tree is wanted) or there are none.
pub(super) fn normalize_subpaths(paths: &[String]) -> Option<Arc<[String]>> {
    let mut out = Vec::new();
    for p in paths {
        let parts: Vec<&str> = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.is_empty() {
            return None;
        }
        out.push(parts.join("/"));
    }
    (!out.is_empty()).then(|| out.into())
}

struct Queue {
    tasks: VecDeque<Task>,
    in_flight: usize,
    error: Option<Error>,
}

pub(super) struct Shared<'a> {
    pub(super) repo: &'a Repo,
    pub(super) txn: &'a Transaction<'a>,
    pub(super) fetcher: &'a dyn Fetcher,
    pub(super) opts: &'a PullOptions,
    pub(super) progress: &'a PullProgress,
    queue: Mutex<Queue>,
    /// Workers wait here for tasks (a push wakes one).
    cv: Condvar,
    /// The checkpointing thread waits here for the walk's end or failure.
    ended: Condvar,
    seen: Mutex<HashSet<Seen>>,
    pub(super) partial_dir: PathBuf,
    /// Sizes of content objects from the verified commits' `ostree.sizes` (stored, unpacked):
    /// what bounds their downloads.
    pub(super) sizes: Mutex<HashMap<Checksum, (u64, u64)>>,
    /// Commit objects already fetched (and verified) inside a static delta's superblock,
    /// with their detached metadata.
    pub(super) prefetched: Mutex<HashMap<Checksum, Prefetched>>,
    /// The commits asked for, and what for (the refs they were asked for by).
    pub(super) targets: HashMap<Checksum, Vec<Wanted>>,
    /// `--localcache-repo` repositories, asked before the server.
    pub(super) caches: Vec<Repo>,
    /// Commits whose trees this pull walks in full (not `--commit-metadata-only`): their
    /// partial markers go when the pull succeeds, parents pulled by `--depth` too.
    pub(super) completed: Mutex<Vec<Checksum>>,
    /// `opts.subpaths` as the walk wants them (see [`normalize_subpaths`]).
    subpaths: Option<Arc<[String]>>,
    /// Bytes of large objects' slices asked for and not yet on disk.
    pub(super) slices: super::content::SliceBudget,
    /// A dry run's sum of the deltas it would apply.
    pub(super) delta_plan: Mutex<super::DeltaPlan>,
}
impl<'a> Shared<'a> {
    pub(super) fn new(
        repo: &'a Repo,
        txn: &'a Transaction<'a>,
        fetcher: &'a dyn Fetcher,
        opts: &'a PullOptions,
        progress: &'a PullProgress,
        partial_dir: PathBuf,
        targets: HashMap<Checksum, Vec<Wanted>>,
    ) -> Self {
        Shared {
            repo,
            txn,
            fetcher,
            opts,
            progress,
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                in_flight: 0,
                error: None,
            }),
            cv: Condvar::new(),
            ended: Condvar::new(),
            seen: Mutex::new(HashSet::new()),
            partial_dir,
            sizes: Mutex::new(HashMap::new()),
            prefetched: Mutex::new(HashMap::new()),
            targets,
            caches: Vec::new(),
            completed: Mutex::new(Vec::new()),
            subpaths: normalize_subpaths(&opts.subpaths),
            slices: super::content::SliceBudget::default(),
            delta_plan: Mutex::new(super::DeltaPlan::default()),
        }
    }

    /// Walk from `commits` with the pool of fetch threads until every reachable object is
    /// stored or one fails; checkpoints finished objects every couple of seconds, and once
    /// more on failure, so a later pull resumes from them.
    pub(super) fn run(&self, commits: impl Iterator<Item = Checksum>) -> Result<()> {
        for c in commits {
            self.push(Task {
                ty: ObjectType::Commit,
                csum: c,
                depth: self.opts.depth,
                sub: None,
            });
        }
        let most = self.opts.fetchers.max(1);
        let mut workers = self.opts.min_fetchers.clamp(1, most);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| self.worker());
            }
            // Checkpoint finished objects into objects/ while the workers run, and keep the
            // pipe full: requests in flight follow the round trip (see `in_flight_for`).
            let mut last = Instant::now();
            loop {
                if workers < most {
                    if let Some(rtt) = self.fetcher.round_trip() {
                        let want = in_flight_for(rtt).clamp(workers, most);
                        for _ in workers..want {
                            s.spawn(|| self.worker());
                        }
                        workers = want;
                    }
                }
                // Woken by the walk's end or failure; otherwise it looks again at the round
                // trip every 10 ms until the most workers run, then every 200 ms.
                let nap = Duration::from_millis(if workers < most { 10 } else { 200 });
                let ended =
                    |q: &Queue| q.error.is_some() || (q.tasks.is_empty() && q.in_flight == 0);
                let Ok(q) = self.queue.lock() else { break };
                if ended(&q) {
                    break;
                }
                let Ok((q, _)) = self.ended.wait_timeout(q, nap) else {
                    break;
                };
                let finished = ended(&q);
                drop(q);
                if finished {
                    break;
                }
                if last.elapsed() > Duration::from_secs(2) {
                    if let Err(e) = self.txn.checkpoint() {
                        self.fail(e);
                    }
                    last = Instant::now();
                }
            }
            self.cv.notify_all();
        });
        self.progress
            .fetchers
            .fetch_max(workers as u64, Ordering::Relaxed);
        self.progress.done.store(true, Ordering::Relaxed);
        let err = self.queue.lock().ok().and_then(|mut q| q.error.take());
        if let Some(e) = err {
            // Keep what was fetched: the next pull resumes from it.
            let _ = self.txn.checkpoint();
            return Err(e);
        }
        Ok(())
    }
}

/// Requests to keep in flight for a round trip of `rtt` (Little's law: in flight = rate ×
/// latency). This machine verifies and stores about 3,000 small objects a second, so a
/// round trip of 1 ms needs 3 requests in flight, 40 ms (+20 ms each way) 120, and 100 ms
/// 300 (the caller caps it). On loopback and LANs the minimum stays: more connections would
/// only cost memory. ostree keeps 8 in flight whatever the latency.
fn in_flight_for(rtt: Duration) -> usize {
    const OBJECTS_PER_SEC: u128 = 3000;
    usize::try_from(rtt.as_micros() * OBJECTS_PER_SEC / 1_000_000).unwrap_or(usize::MAX)
}

impl Shared<'_> {
    pub(super) fn push(&self, t: Task) {
        if let Ok(mut seen) = self.seen.lock() {
            if !seen.insert((t.ty, t.csum, t.sub.clone())) {
                return;
            }
        }
        self.progress.objects_queued.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut q) = self.queue.lock() {
            q.tasks.push_back(t);
        }
        self.cv.notify_one();
    }

    pub(super) fn fail(&self, e: Error) {
        if let Ok(mut q) = self.queue.lock() {
            if q.error.is_none() {
                q.error = Some(e);
            }
        }
        self.cv.notify_all();
        self.ended.notify_all();
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
                        self.ended.notify_all();
                        return;
                    }
                    q = match self.cv.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
            };
            let res = self.process(task);
            // Waiters need waking only when the walk ends (no task queued, none in
            // flight) or fails: a pushed task already woke one worker. Waking all of them
            // after every object cost ~8 futex calls and context switches per object.
            let wake_all = match self.queue.lock() {
                Ok(mut q) => {
                    q.in_flight -= 1;
                    if let Err(e) = res {
                        if q.error.is_none() {
                            q.error = Some(e);
                        }
                    }
                    q.error.is_some() || (q.tasks.is_empty() && q.in_flight == 0)
                }
                Err(_) => true,
            };
            if wake_all {
                self.cv.notify_all();
                self.ended.notify_all();
            }
        }
    }

    pub(super) fn fetch_meta(
        &self,
        ty: ObjectType,
        c: &Checksum,
        optional: bool,
    ) -> Result<Option<Vec<u8>>> {
        // A local cache's copy: the callers verify it as they verify a download (hash,
        // structure, signatures).
        for cache in &self.caches {
            if cache.has_object(ty, c) {
                self.progress
                    .localcache_metadata
                    .fetch_add(1, Ordering::Relaxed);
                return cache.load_metadata(ty, c).map(Some);
            }
        }
        let path = object_url_path(ty, c);
        let got = fetch_retry(
            self.fetcher,
            &path,
            self.opts,
            self.progress,
            super::MAX_OBJECT_METADATA_SIZE,
        )?;
        // Counted as ostree counts: every metadata request, found or not.
        self.progress
            .metadata_fetched
            .fetch_add(1, Ordering::Relaxed);
        if ty == ObjectType::CommitMeta {
            self.progress
                .detached_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        match got {
            Some(b) => Ok(Some(b)),
            None if optional => Ok(None),
            None => Err(Error::ObjectNotOnServer {
                object: format!("{c}.{ty}"),
                url: self.fetcher.describe(&path),
            }),
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
                for (name, f) in &dt.files {
                    // Below a --subpath's parents, only a file the subpath names.
                    if let Some(sub) = &t.sub {
                        if !sub.iter().any(|p| p == name) {
                            continue;
                        }
                    }
                    if !self.txn.has_object(ObjectType::File, f) {
                        self.push(Task {
                            ty: ObjectType::File,
                            csum: *f,
                            depth: 0,
                            sub: None,
                        });
                    }
                }
                for (name, st, sm) in &dt.dirs {
                    let sub = match &t.sub {
                        None => None,
                        Some(sub) => match sub_for(sub, name) {
                            None => None,
                            Some(rest) if rest.is_empty() => continue,
                            Some(rest) => Some(rest.into()),
                        },
                    };
                    self.push(Task {
                        ty: ObjectType::DirMeta,
                        csum: *sm,
                        depth: 0,
                        sub: None,
                    });
                    self.push(Task {
                        ty: ObjectType::DirTree,
                        csum: *st,
                        depth: 0,
                        sub,
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
            ObjectType::File => content::process_file(self, &t.csum),
            _ => Ok(()),
        }
    }

    fn process_commit(&self, t: Task) -> Result<()> {
        let c = t.csum;
        let complete = self.repo.has_object(ObjectType::Commit, &c) && !self.repo.is_partial(&c);
        let prefetched = self.prefetched.lock().ok().and_then(|mut p| p.remove(&c));
        // Detached metadata (signatures) is re-fetched even for commits we have.
        let meta = match &prefetched {
            Some((_, m)) => m.clone(),
            // A commit a `--localcache-repo` has comes with that repo's detached metadata
            // or none, as in ostree (the server is not asked).
            None if self
                .caches
                .iter()
                .any(|r| r.has_object(ObjectType::Commit, &c)) =>
            {
                match self
                    .caches
                    .iter()
                    .find(|r| r.has_object(ObjectType::CommitMeta, &c))
                {
                    Some(r) => {
                        self.progress
                            .localcache_metadata
                            .fetch_add(1, Ordering::Relaxed);
                        Some(r.load_metadata(ObjectType::CommitMeta, &c)?)
                    }
                    None => None,
                }
            }
            None => self.fetch_meta(ObjectType::CommitMeta, &c, true)?,
        };
        // Parsed only where signatures are checked in it; otherwise stored as it came, as
        // ostree stores it (a damaged one is then a problem only for a later check).
        let verifying = self.opts.signs_commits() || self.opts.gpg_keys.is_some();
        if let Some(meta) = meta.as_ref().filter(|_| verifying) {
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
        // Everything about the commit is checked before any of it is stored.
        let commit = self.verify_commit(&c, meta.as_deref(), &bytes)?;
        // A --subpath pull walks only part of the tree: the commit stays partial.
        if !self.opts.commit_metadata_only && self.subpaths.is_none() {
            if let Ok(mut done) = self.completed.lock() {
                done.push(c);
            }
        }
        // A signed commit's sizes bound what each of its files may take to download.
        if let Ok(Some(sizes)) = commit.object_sizes() {
            if let Ok(mut m) = self.sizes.lock() {
                for s in sizes
                    .into_iter()
                    .filter(|s| matches!(s.ty, None | Some(ObjectType::File)))
                {
                    m.insert(s.csum, (s.archived, s.unpacked));
                }
            }
        }
        if let Some(meta) = &meta {
            self.txn
                .write_metadata_as(ObjectType::CommitMeta, &c, meta)?;
        }
        if !complete {
            // Mark partial before the commit object can land in objects/.
            self.repo.mark_partial(&c)?;
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
                    // (Unlimited history: -2 below the first commit, so that a parent the
                    // server lacks ends the history there, as with a limited depth.)
                    depth: if t.depth > 0 { t.depth - 1 } else { -2 },
                    sub: None,
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
            sub: None,
        });
        self.push(Task {
            ty: ObjectType::DirTree,
            csum: commit.root_tree,
            depth: 0,
            sub: self.subpaths.clone(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod in_flight_tests {
    use super::in_flight_for;
    use std::time::Duration;

    #[test]
    fn requests_in_flight_follow_the_round_trip() {
        assert_eq!(in_flight_for(Duration::from_micros(300)), 0);
        assert_eq!(in_flight_for(Duration::from_millis(1)), 3);
        assert_eq!(in_flight_for(Duration::from_millis(40)), 120);
        assert_eq!(in_flight_for(Duration::from_millis(100)), 300);
        assert_eq!(in_flight_for(Duration::MAX), usize::MAX);
    }
}
