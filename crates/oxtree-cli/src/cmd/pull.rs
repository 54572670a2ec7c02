//! `pull` (over HTTP or file://) and `pull-local`.

use super::Global;
use crate::output::{human_size, json_str};
use crate::progress::progress_loop;
use anyhow::{bail, Result};
use clap::Args;
use oxtree::repo::PullLocalOptions;
use oxtree::Repo;
use std::path::PathBuf;

#[derive(Args)]
pub struct PullArgs {
    /// Parent commits to fetch too (-1 = all history).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub depth: i64,
    /// Fetch only the commit objects (history), not their trees.
    #[arg(long)]
    pub commit_metadata_only: bool,
    /// Write refs/heads/REF instead of refs/remotes/REMOTE/REF.
    #[arg(long)]
    pub mirror: bool,
    /// Only resolve refs and show what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Fetch objects one by one even where the server has a static delta (by default a
    /// listed delta is used: a few requests instead of one per changed file).
    #[arg(long)]
    pub disable_static_deltas: bool,
    /// Do not check that commits are bound to the requested ref (`ostree.ref-binding`) and
    /// to the remote's collection ID (`ostree.collection-binding`).
    #[arg(long)]
    pub disable_verify_bindings: bool,
    /// Only this path of the tree (repeatable): the directories leading to it and everything
    /// below it. The commit stays partial; `checkout --subpath` checks the part out.
    #[arg(long, value_name = "SUBPATH")]
    pub subpath: Vec<String>,
    /// Requests in flight at once, fixed. By default a pull starts with 16 and, when the
    /// round trip it measures is long, keeps up to 192 in flight (120 at 40 ms); ostree
    /// keeps 8.
    #[arg(long, value_name = "N")]
    pub fetchers: Option<usize>,
    /// Abort a transfer slower than this many bytes per second (over
    /// --low-speed-time-seconds; default: the remote's low-speed-limit-bytes, else 1000).
    #[arg(long, value_name = "N")]
    pub low_speed_limit_bytes: Option<u64>,
    /// The window for --low-speed-limit-bytes (default: the remote's low-speed-time-seconds,
    /// else 30).
    #[arg(long, value_name = "N")]
    pub low_speed_time_seconds: Option<u64>,
    /// Seconds without progress before a request is retried.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Refuse commits older than the ref's current commit.
    #[arg(long, short = 'T')]
    pub timestamp_check: bool,
    /// Refuse commits older than REV (a local commit), as an upgrade does.
    #[arg(long, value_name = "REV")]
    pub timestamp_check_from_rev: Option<String>,
    /// With --timestamp-check / --timestamp-check-from-rev: accept an older commit anyway.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Require static deltas: fail where the server has none for a commit (nothing is
    /// fetched one by one).
    #[arg(long)]
    pub require_static_deltas: bool,
    /// Reject regular files with mode outside of 0775 (world writable, suid, etc.).
    #[arg(long)]
    pub bareuseronly_files: bool,
    /// Do not invoke fsync().
    #[arg(long)]
    pub disable_fsync: bool,
    /// Perform writes in such a way that avoids stalling concurrent processes (each object
    /// flushed as it is written).
    #[arg(long)]
    pub per_object_fsync: bool,
    /// Verify checksums of local sources (always enabled: oxtree verifies every object it
    /// pulls, from file:// as over HTTP).
    #[arg(long)]
    pub untrusted: bool,
    /// Do not verify checksums of HTTP sources (accepted for ostree's scripts; oxtree still
    /// verifies every object, which costs little and keeps a bad mirror out).
    #[arg(long)]
    pub http_trusted: bool,
    /// Pull objects from this URL instead of the one from the remote config.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Add NAME=VALUE as HTTP header to all requests.
    #[arg(long, value_name = "NAME=VALUE")]
    pub http_header: Vec<String>,
    /// Append S to the User-Agent header.
    #[arg(long, value_name = "S")]
    pub append_user_agent: Option<String>,
    /// Sets the update frequency of the progress display, in milliseconds (0=1000ms).
    #[arg(long, value_name = "FREQUENCY")]
    pub update_frequency: Option<String>,
    /// Specifies how many times each download should be retried upon error (default: 5).
    #[arg(long, value_name = "N")]
    pub network_retries: Option<String>,
    /// Fail at once on a network error instead of retrying (--network-retries=0).
    #[arg(long)]
    pub disable_retry_on_network_errors: bool,
    /// Requests in flight at once, fixed (the same as --fetchers).
    #[arg(long, value_name = "N")]
    pub max_outstanding_fetcher_requests: Option<String>,
    /// Add REPO as local cache source for objects during this pull (each object copied
    /// from it is verified as a download is).
    #[arg(short = 'L', long, value_name = "REPO")]
    pub localcache_repo: Vec<PathBuf>,
    /// Use custom cache dir: a signed summary is kept as DIR/summaries/REMOTE (and
    /// REMOTE.sig) and not downloaded again while the server's signature is the same.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// REMOTE or REMOTE:REF.
    pub remote: String,
    pub refs: Vec<String>,
}

pub fn pull(g: &Global, a: PullArgs) -> Result<()> {
    if a.require_static_deltas && a.disable_static_deltas {
        // ostree aborts on an assertion here.
        bail!("--require-static-deltas and --disable-static-deltas contradict each other");
    }
    let int = |v: &Option<String>, opt: &str| -> Result<Option<i64>> {
        v.as_deref()
            .map(|v| super::repo::goption_int(v, opt))
            .transpose()
    };
    let update_frequency = int(&a.update_frequency, "--update-frequency")?;
    let network_retries = int(&a.network_retries, "--network-retries")?;
    let outstanding = int(
        &a.max_outstanding_fetcher_requests,
        "--max-outstanding-fetcher-requests",
    )?;
    // --max-outstanding-fetcher-requests (ostree's newer name) wins over --fetchers; either
    // fixes the count.
    let fixed = match outstanding {
        Some(n) => Some(usize::try_from(n.max(1)).unwrap_or(1)),
        None => a.fetchers.map(|n| n.max(1)),
    };
    let defaults = oxtree::pull::PullOptions::default();
    let mut http_headers = Vec::new();
    for h in &a.http_header {
        let Some((k, v)) = h.split_once('=') else {
            bail!("Missing '=' in --http-header");
        };
        http_headers.push((k.to_string(), v.to_string()));
    }
    if let Some(d) = &a.cache_dir {
        std::fs::read_dir(d).map_err(|e| {
            anyhow::anyhow!("opendir({}): {}", d.display(), crate::output::strerror(&e))
        })?;
    }
    let mut repo = g.open()?;
    if a.disable_fsync {
        repo.set_fsync(false);
    }
    repo.set_per_object_fsync(a.per_object_fsync);
    repo.set_bareuseronly_files(a.bareuseronly_files);
    // As ostree: `REMOTE:REF` is one refspec (the arguments after it are ignored, and a
    // `@CHECKSUM` is no part of it); `REMOTE REF…` are several.
    let (remote, refs) = match a.remote.split_once(':') {
        Some((r, first)) => {
            if oxtree::object::validate_remote_name(r).is_err()
                || oxtree::object::validate_ref(first).is_err()
            {
                bail!("Invalid refspec {}", a.remote);
            }
            (r.to_string(), vec![first.to_string()])
        }
        None => (a.remote.clone(), a.refs.clone()),
    };
    let opts = oxtree::pull::PullOptions {
        depth: a.depth,
        commit_metadata_only: a.commit_metadata_only,
        mirror: a.mirror,
        dry_run: a.dry_run,
        fetchers: fixed.unwrap_or(defaults.fetchers),
        min_fetchers: fixed.unwrap_or(defaults.min_fetchers),
        timeout: std::time::Duration::from_secs(a.timeout),
        low_speed_limit_bytes: a.low_speed_limit_bytes,
        low_speed_time: a.low_speed_time_seconds.map(std::time::Duration::from_secs),
        timestamp_check: a.timestamp_check && !a.allow_downgrade,
        timestamp_check_from_rev: match &a.timestamp_check_from_rev {
            Some(rev) if !a.allow_downgrade => Some(repo.resolve_rev(rev)?),
            _ => None,
        },
        disable_static_deltas: a.disable_static_deltas,
        disable_verify_bindings: a.disable_verify_bindings,
        subpaths: a.subpath.clone(),
        require_static_deltas: a.require_static_deltas,
        retries: if a.disable_retry_on_network_errors {
            0
        } else {
            network_retries.map_or(5, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        },
        url: a.url.clone(),
        http_headers,
        append_user_agent: a.append_user_agent.clone(),
        localcache_repos: a.localcache_repo.clone(),
        // ostree's summary cache: `--cache-dir`, else the repository's `tmp/cache` (unless
        // OSTREE_SKIP_CACHE is set); a remote name has no `/`.
        summary_cache: match &a.cache_dir {
            Some(d) => Some(d.join("summaries").join(&remote)),
            None if std::env::var_os("OSTREE_SKIP_CACHE").is_none()
                && oxtree::object::validate_remote_name(&remote).is_ok() =>
            {
                Some(repo.path().join("tmp/cache/summaries").join(&remote))
            }
            None => None,
        },
        ..Default::default()
    };
    // A `file://` remote that is not an archive repository (bare, bare-user): ostree opens
    // it as a repository and imports its objects; so does oxtree, under the remote's
    // verification policy and into refs/remotes/REMOTE/ (refs/heads/ with --mirror).
    let url = a
        .url
        .clone()
        .or_else(|| repo.remote_url(&remote).ok())
        .unwrap_or_default();
    let local = oxtree::pull::file_url_path(&url).map(std::path::Path::new);
    if let Some(src) = local.map(local_non_archive_source).transpose()?.flatten() {
        if !refs.is_empty() && !a.dry_run && a.subpath.is_empty() {
            // A mirror of a collection goes to refs/mirrors/ (the remote's collection ID,
            // else the source's own).
            let mirror_collection_id = a
                .mirror
                .then(|| {
                    repo.remote_collection_id(&remote)
                        .or_else(|| src.collection_id().map(str::to_string))
                })
                .flatten();
            let counts = repo.pull_local(
                &src,
                &refs,
                &PullLocalOptions {
                    depth: a.depth,
                    remote: (!a.mirror).then(|| remote.clone()),
                    mirror_collection_id,
                    disable_verify_bindings: a.disable_verify_bindings,
                    timestamp_check: opts.timestamp_check,
                    commit_metadata_only: a.commit_metadata_only,
                    require_static_deltas: a.require_static_deltas,
                    ..Default::default()
                },
            )?;
            println!("{}", imported_line(&counts));
            return Ok(());
        }
    }
    // A file:// remote is imported object by object, as ostree imports from a local
    // repository: its static deltas only with --require-static-deltas (then the pull, and
    // its summary line, are those of a fetch).
    let imported = local.is_some() && !a.require_static_deltas;
    let mut opts = opts;
    if imported {
        opts.disable_static_deltas = true;
    }
    // ostree: 0 means 1000 ms.
    let every = update_frequency
        .map(|ms| std::time::Duration::from_millis(if ms <= 0 { 1000 } else { ms as u64 }));
    let progress = oxtree::pull::PullProgress::default();
    /// Stops the progress drawer when dropped: however the pull ends, a panic included
    /// (the scope would otherwise wait for the drawer forever: a hang instead of a crash).
    struct StopDrawer<'a>(&'a oxtree::pull::PullProgress, std::thread::Thread);
    impl Drop for StopDrawer<'_> {
        fn drop(&mut self) {
            self.0
                .done
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.1.unpark();
        }
    }
    let res = std::thread::scope(|s| {
        let drawer = s.spawn(|| progress_loop(&progress, every));
        let _stop = StopDrawer(&progress, drawer.thread().clone());
        repo.pull(&remote, &refs, &opts, &progress)
    })?;
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        let refs: Vec<String> = res
            .refs
            .iter()
            .map(|(r, old, new)| {
                format!(
                    "{{\"ref\":{},\"old\":{},\"new\":\"{new}\"}}",
                    json_str(&r.to_string()),
                    old.map(|o| format!("\"{o}\"")).unwrap_or("null".into())
                )
            })
            .collect();
        println!(
            "{{\"refs\":[{}],\"deltas\":[{}],\"objects\":{},\"bytes\":{},\"requests\":{},\"fetchers\":{},\"seconds\":{:.3}}}",
            refs.join(","),
            res.deltas
                .iter()
                .map(|d| json_str(d))
                .collect::<Vec<_>>()
                .join(","),
            res.objects_fetched,
            res.bytes_fetched,
            res.requests,
            res.fetchers,
            res.elapsed.as_secs_f64()
        );
    } else if let (true, Some(plan)) = (a.dry_run, res.delta_plan) {
        // ostree's dry run (it has none without --require-static-deltas).
        println!(
            "Delta update: 0/{} parts, 0 bytes/{}, {} total uncompressed",
            plan.parts,
            human_size(plan.size),
            human_size(plan.uncompressed_size)
        );
    } else if a.dry_run {
        for (r, old, new) in &res.refs {
            match old {
                Some(o) if o == new => println!("{r}: {new} (unchanged)"),
                Some(o) => println!("{r}: {o} -> {new}"),
                None => println!("{r}: {new}"),
            }
        }
        println!("(dry run: nothing fetched)");
    } else {
        // ostree's summary line, with its counters; oxtree's own figures go to --json and -v.
        // (An archive repository imported into an archive repository: ostree copies the
        // objects as they are and counts no content written.)
        let raw = imported && repo.mode() == oxtree::repo::RepoMode::Archive;
        println!("{}", summary_line(&res, imported, raw));
        for (r, old, new) in &res.refs {
            tracing::debug!("{r}: {old:?} -> {new}");
        }
        for d in &res.deltas {
            tracing::debug!("static delta {d}");
        }
        tracing::debug!(
            "{} objects, {} in {:.1} s ({} requests)",
            res.objects_fetched,
            human_size(res.bytes_fetched),
            res.elapsed.as_secs_f64(),
            res.requests
        );
    }
    Ok(())
}

/// The local repository a `file:` remote names (at `path`), when it is not an archive
/// repository (those are read as a server's files).
fn local_non_archive_source(path: &std::path::Path) -> Result<Option<Repo>> {
    if !path.join("objects").is_dir() {
        return Ok(None);
    }
    let src = Repo::open(path)?;
    Ok((src.mode() != oxtree::repo::RepoMode::Archive).then_some(src))
}

/// Copy commits from another local repository.
#[derive(Args)]
pub struct PullLocalArgs {
    /// Write refs as refs/remotes/REMOTE/… instead of refs/heads/…; the commits must then
    /// pass REMOTE's signature checks (sign-verify, gpg-verify, …) as a pull would.
    #[arg(long)]
    pub remote: Option<String>,
    /// Verify OpenPGP signatures with --remote's keyring.
    #[arg(long)]
    pub gpg_verify: bool,
    /// Resolve refs through the source's summary, its signature verified with
    /// --remote's keyring.
    #[arg(long)]
    pub gpg_verify_summary: bool,
    /// Do not check the commits' ref and collection bindings.
    #[arg(long)]
    pub disable_verify_bindings: bool,
    /// Refuse commits older than the ref's current commit.
    #[arg(long, short = 'T')]
    pub timestamp_check: bool,
    /// History depth to copy (-1 = all).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub depth: i64,
    /// Fetch only the commit metadata (the commits are marked partial; refs still move).
    #[arg(long)]
    pub commit_metadata_only: bool,
    /// Do not invoke fsync().
    #[arg(long)]
    pub disable_fsync: bool,
    /// Perform writes in such a way that avoids stalling concurrent processes (each object
    /// flushed as it is written).
    #[arg(long)]
    pub per_object_fsync: bool,
    /// Verify checksums of local sources (always enabled: oxtree re-hashes every object it
    /// copies).
    #[arg(long)]
    pub untrusted: bool,
    /// Reject regular files with mode outside of 0775 (world writable, suid, etc.).
    #[arg(long)]
    pub bareuseronly_files: bool,
    /// Require static deltas: each commit comes by one of SRC_REPO's deltas (from the
    /// commit the ref has here, else from scratch); fail where it has none.
    #[arg(long)]
    pub require_static_deltas: bool,
    /// Do not use static deltas (accepted for symmetry with pull; pull-local uses them only
    /// with --require-static-deltas).
    #[arg(long)]
    pub disable_static_deltas: bool,
    pub src_repo: PathBuf,
    pub refs: Vec<String>,
}

pub fn pull_local(g: &Global, a: PullLocalArgs) -> Result<()> {
    if a.require_static_deltas && a.disable_static_deltas {
        bail!("--require-static-deltas and --disable-static-deltas contradict each other");
    }
    let mut repo = g.open()?;
    if a.disable_fsync {
        repo.set_fsync(false);
    }
    repo.set_per_object_fsync(a.per_object_fsync);
    repo.set_bareuseronly_files(a.bareuseronly_files);
    if let Err(e) = std::fs::read_dir(&a.src_repo) {
        bail!(
            "opening repo: opendir({}): {}",
            a.src_repo.display(),
            crate::output::strerror(&e)
        );
    }
    let src = Repo::open(&a.src_repo)?;
    let refs = if a.refs.is_empty() {
        // Every ref, as ostree lists them: a remote's (`REMOTE:REF`) is no ref name a pull
        // can take, and ostree refuses the whole pull for it before fetching anything.
        let all = src.list_refs()?;
        if let Some(r) = all.keys().find(|r| r.remote.is_some()) {
            bail!("Invalid ref name {r}");
        }
        all.into_keys().map(|r| r.name).collect()
    } else {
        // ostree takes a ref name or a checksum here, not a refspec (`REMOTE:REF`).
        if let Some(bad) = a.refs.iter().find(|r| {
            r.parse::<oxtree::object::Checksum>().is_err()
                && oxtree::object::validate_ref(r).is_err()
        }) {
            bail!("Invalid ref name {bad}");
        }
        a.refs
    };
    let remote_less = a.remote.is_none();
    let counts = repo.pull_local(
        &src,
        &refs,
        &PullLocalOptions {
            depth: a.depth,
            remote: a.remote,
            gpg_verify: a.gpg_verify,
            gpg_verify_summary: a.gpg_verify_summary,
            disable_verify_bindings: a.disable_verify_bindings,
            timestamp_check: a.timestamp_check,
            commit_metadata_only: a.commit_metadata_only,
            require_static_deltas: a.require_static_deltas,
            // (a pull that verifies signatures verifies what they cover, too)
            trusted: !a.untrusted && remote_less && !a.gpg_verify && !a.gpg_verify_summary,
            mirror_collection_id: None,
        },
    )?;
    println!("{}", imported_line(&counts));
    Ok(())
}

/// ostree's line after importing from a local repository.
fn imported_line(counts: &oxtree::repo::PullLocalCounts) -> String {
    format!(
        "{} metadata, {} content objects imported; {} content written",
        counts.metadata,
        counts.content,
        human_size(counts.content_bytes)
    )
}

/// The line ostree prints at the end of a pull: `N metadata, M content objects fetched` (or
/// `N delta parts, M loose fetched`), the objects a `--localcache-repo` gave, the bytes
/// transferred (in B below 1024, else whole KiB, as ostree), and the unpacked content bytes
/// written (as GLib's `g_format_size`). A `file://` remote is imported, as ostree does.
pub(crate) fn summary_line(res: &oxtree::pull::PullResult, imported: bool, raw: bool) -> String {
    if imported {
        return format!(
            "{} metadata, {} content objects imported; {} content written",
            (res.metadata_fetched + res.localcache_metadata).saturating_sub(res.detached_requests),
            res.content_fetched + res.localcache_content,
            human_size(if raw { 0 } else { res.content_bytes_written })
        );
    }
    let mut line = if res.deltaparts_fetched > 0 {
        format!(
            "{} delta parts, {} loose fetched",
            res.deltaparts_fetched,
            res.metadata_fetched + res.content_fetched
        )
    } else {
        format!(
            "{} metadata, {} content objects fetched",
            res.metadata_fetched, res.content_fetched
        )
    };
    if res.localcache_metadata + res.localcache_content > 0 {
        line += &format!(
            " ({} meta, {} content local)",
            res.localcache_metadata, res.localcache_content
        );
    }
    let transferred = res.bytes_fetched.saturating_sub(res.setup_bytes) + res.not_found_bytes;
    if transferred > 0 {
        let (n, unit) = if transferred < 1024 {
            (transferred, "B")
        } else {
            (transferred / 1024, "KiB")
        };
        line += &format!(
            "; {n} {unit} transferred in {} seconds",
            res.elapsed.as_secs()
        );
    }
    line += &format!(
        "; {} content written",
        human_size(res.content_bytes_written)
    );
    line
}
