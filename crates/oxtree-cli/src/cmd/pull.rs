//! `pull` (over HTTP or file://) and `pull-local`.

use super::Global;
use crate::output::{human_size, json_str};
use crate::progress::progress_loop;
use anyhow::Result;
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
    /// Concurrent requests.
    #[arg(long, default_value_t = 32)]
    pub fetchers: usize,
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
    /// REMOTE or REMOTE:REF.
    pub remote: String,
    pub refs: Vec<String>,
}

pub fn pull(g: &Global, a: PullArgs) -> Result<()> {
    let repo = g.open()?;
    let (remote, mut refs) = match a.remote.split_once(':') {
        Some((r, first)) => (r.to_string(), vec![first.to_string()]),
        None => (a.remote.clone(), Vec::new()),
    };
    refs.extend(a.refs.iter().cloned());
    let opts = oxtree::pull::PullOptions {
        depth: a.depth,
        commit_metadata_only: a.commit_metadata_only,
        mirror: a.mirror,
        dry_run: a.dry_run,
        fetchers: a.fetchers,
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
        ..Default::default()
    };
    let progress = oxtree::pull::PullProgress::default();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let res = std::thread::scope(|s| {
        s.spawn(|| progress_loop(&progress, tty));
        let r = repo.pull(&remote, &refs, &opts, &progress);
        progress
            .done
            .store(true, std::sync::atomic::Ordering::Relaxed);
        r
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
            "{{\"refs\":[{}],\"deltas\":[{}],\"objects\":{},\"bytes\":{},\"requests\":{},\"seconds\":{:.3}}}",
            refs.join(","),
            res.deltas
                .iter()
                .map(|d| json_str(d))
                .collect::<Vec<_>>()
                .join(","),
            res.objects_fetched,
            res.bytes_fetched,
            res.requests,
            res.elapsed.as_secs_f64()
        );
    } else {
        for (r, old, new) in &res.refs {
            match old {
                Some(o) if o == new => println!("{r}: {new} (unchanged)"),
                Some(o) => println!("{r}: {o} -> {new}"),
                None => println!("{r}: {new}"),
            }
        }
        for d in &res.deltas {
            println!("static delta {d}");
        }
        println!(
            "{} objects, {} in {:.1} s ({} requests){}",
            res.objects_fetched,
            human_size(res.bytes_fetched),
            res.elapsed.as_secs_f64(),
            res.requests,
            if a.dry_run {
                " (dry run: nothing fetched)"
            } else {
                ""
            }
        );
    }
    Ok(())
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
    pub src_repo: PathBuf,
    pub refs: Vec<String>,
}

pub fn pull_local(g: &Global, a: PullLocalArgs) -> Result<()> {
    let repo = g.open()?;
    let src = Repo::open(&a.src_repo)?;
    let refs = if a.refs.is_empty() {
        src.list_refs()?
            .into_keys()
            .filter(|r| r.remote.is_none())
            .map(|r| r.name)
            .collect()
    } else {
        a.refs
    };
    let n = repo.pull_local(
        &src,
        &refs,
        &PullLocalOptions {
            depth: a.depth,
            remote: a.remote,
            gpg_verify: a.gpg_verify,
            gpg_verify_summary: a.gpg_verify_summary,
            disable_verify_bindings: a.disable_verify_bindings,
            timestamp_check: a.timestamp_check,
        },
    )?;
    println!("{n} objects copied");
    Ok(())
}
