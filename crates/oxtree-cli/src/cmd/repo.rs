//! Repository-wide commands: init, fsck, prune.

use super::Global;
use crate::cmd::{Exit, Hinted};
use crate::output::human_size;
use crate::progress::with_progress;
use crate::timefmt;
use anyhow::{anyhow, Result};
use clap::Args;
use oxtree::repo::{FsckOptions, PruneOptions};
use oxtree::{Repo, RepoMode};

/// Create a new, empty repository.
#[derive(Args)]
pub struct InitArgs {
    /// Repository mode: bare, bare-user, bare-user-only or archive (archive-z2).
    #[arg(long, default_value = "bare")]
    pub mode: String,
    /// Globally unique ID for this repository as a collection of refs for redistribution
    /// to other repositories (written as core.collection-id).
    #[arg(long, value_name = "COLLECTION-ID")]
    pub collection_id: Option<String>,
}

pub fn init(g: &Global, a: InitArgs) -> Result<()> {
    let InitArgs {
        mode,
        collection_id,
    } = a;
    let m = RepoMode::parse(&mode).ok_or_else(|| Hinted {
        msg: format!("Invalid mode '{mode}' in repository configuration"),
        hint: "use --mode=bare, bare-user, bare-user-only or archive".into(),
    })?;
    // Like ostree, an existing repository is left as it is.
    Repo::init(&g.repo_path(), m, collection_id.as_deref())?;
    Ok(())
}

/// Verify every object, ref and reference between objects.
#[derive(Args)]
pub struct FsckArgs {
    /// Remove corrupt objects.
    #[arg(long)]
    pub delete: bool,
    /// Only print errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn fsck(g: &Global, a: FsckArgs) -> Result<()> {
    let FsckArgs {
        delete,
        quiet,
        json,
    } = a;
    let repo = g.open()?;
    if !quiet && !json {
        println!("Validating refs...");
        println!("Enumerating objects...");
    }
    let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
    let show = !quiet && !json;
    let rep = with_progress("verifying objects", &progress, show, || {
        repo.fsck(&FsckOptions {
            delete,
            progress: Some(progress.clone()),
        })
    })?;
    if json {
        /// `fsck --json`: one object per run (keys are stable; new ones may be added).
        #[derive(serde::Serialize)]
        struct FsckJson<'a> {
            objects: u64,
            commits: u64,
            partial_commits: u64,
            ok: bool,
            errors: &'a [String],
        }
        crate::output::print_json(&FsckJson {
            objects: rep.objects_checked as u64,
            commits: rep.commits as u64,
            partial_commits: rep.partial_commits as u64,
            ok: rep.ok(),
            errors: &rep.errors,
        })?;
    } else {
        for e in &rep.errors {
            eprintln!("error: {e}");
        }
        for (ty, c) in &rep.deleted {
            eprintln!("deleted corrupt object {c}.{ty}");
        }
        if !quiet {
            if rep.partial_commits > 0 {
                println!("{} partial commits not verified", rep.partial_commits);
            }
            if rep.ok() {
                println!(
                    "object fsck of {} commits completed successfully - no errors found.",
                    rep.commits
                );
            }
        }
    }
    if !rep.ok() {
        if !json {
            eprintln!("error: fsck found {} problem(s)", rep.errors.len());
            eprintln!("hint: `oxtree fsck --delete` removes corrupt objects; pull or commit again to restore them");
        }
        return Err(Exit(crate::EXIT_FAILURE).into());
    }
    Ok(())
}

/// Delete unreachable objects.
#[derive(Args)]
pub struct PruneArgs {
    /// Only keep what refs reach (by default every commit is kept).
    #[arg(long)]
    pub refs_only: bool,
    /// History depth to keep from each ref (-1 = all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub depth: i64,
    /// Keep commits newer than DATE (e.g. "2020-01-01" or "7 days ago"); implies --refs-only.
    #[arg(long, value_name = "DATE")]
    pub keep_younger_than: Option<String>,
    /// Only report what would be deleted.
    #[arg(long)]
    pub no_prune: bool,
}

pub fn prune(g: &Global, a: PruneArgs) -> Result<()> {
    let PruneArgs {
        refs_only,
        depth,
        keep_younger_than,
        no_prune,
    } = a;
    let repo = g.open()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let keep = keep_younger_than
        .map(|s| timefmt::parse_relative(&s, now))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let rep = repo.prune(&PruneOptions {
        refs_only,
        depth,
        keep_younger_than: keep,
        no_prune,
    })?;
    println!("Total objects: {}", rep.total);
    if rep.deleted == 0 {
        println!("No unreachable objects");
    } else if no_prune {
        println!(
            "Would delete: {} objects, would free: {}",
            rep.deleted,
            human_size(rep.freed_bytes)
        );
    } else {
        println!(
            "Deleted {} objects, {} freed",
            rep.deleted,
            human_size(rep.freed_bytes)
        );
    }
    Ok(())
}
