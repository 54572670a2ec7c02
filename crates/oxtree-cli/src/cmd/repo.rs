//! Repository-wide commands: init, fsck, prune.

use super::Global;
use crate::cmd::{Exit, Hinted};
use crate::output::human_size;
use crate::progress::with_progress;
use crate::timefmt;
use anyhow::{anyhow, bail, Result};
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
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn init(g: &Global, a: InitArgs) -> Result<()> {
    let InitArgs {
        mode,
        collection_id,
        ..
    } = a;
    let m = RepoMode::parse(&mode).ok_or_else(|| Hinted {
        msg: format!("Invalid mode '{mode}' in repository configuration"),
        hint: "use --mode=bare, bare-user, bare-user-only or archive".into(),
    })?;
    let path = g.repo_path();
    if g.repo.is_none() {
        // Without --repo, ostree initialises only a repository it can already open (the
        // current directory's, $OSTREE_REPO's, /ostree/repo).
        g.open()?;
    } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // ostree makes the repository's directory, not its parents.
        if !parent.is_dir() {
            return Err(Hinted {
                msg: "Creating repo: mkdirat: No such file or directory".into(),
                hint: format!("create {} first", parent.display()),
            }
            .into());
        }
    }
    // Like ostree, an existing repository is left as it is.
    Repo::init(&path, m, collection_id.as_deref())?;
    Ok(())
}

/// Check the repository for consistency.
#[derive(Args)]
pub struct FsckArgs {
    /// Add tombstones for missing commits.
    #[arg(long)]
    pub add_tombstones: bool,
    /// Only print error messages.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't stop on first error.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Remove corrupted objects.
    #[arg(long)]
    pub delete: bool,
    /// Verify ref bindings.
    #[arg(long)]
    pub verify_bindings: bool,
    /// Verify back-references (implies --verify-bindings).
    #[arg(long)]
    pub verify_back_refs: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn fsck(g: &Global, a: FsckArgs) -> Result<()> {
    use oxtree::repo::{fsck_in_commits, fsck_missing_text, FsckEvent, FsckStage};
    use std::io::IsTerminal;
    let repo = g.open()?;
    let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
    let tty = std::io::stdout().is_terminal();
    let rep = with_progress("fsck objects", &progress, tty && !a.json, || {
        repo.fsck(&FsckOptions {
            delete: a.delete,
            all: a.all,
            verify_bindings: a.verify_bindings,
            verify_back_refs: a.verify_back_refs,
            add_tombstones: a.add_tombstones,
            progress: Some(progress.clone()),
        })
    })?;
    if a.json {
        /// `fsck --json`: one object per run (keys are stable; new ones may be added).
        #[derive(serde::Serialize)]
        struct FsckJson {
            objects: u64,
            commits: u64,
            partial_commits: u64,
            ok: bool,
            errors: Vec<String>,
        }
        crate::output::print_json(&FsckJson {
            objects: rep.objects_checked as u64,
            commits: rep.commits as u64,
            partial_commits: rep.partial_commits as u64,
            ok: rep.ok(),
            errors: rep.problems(),
        })?;
        if !rep.ok() {
            return Err(Exit(crate::EXIT_FAILURE).into());
        }
        return Ok(());
    }
    // ostree's lines: stages on stdout (not with -q), problems on stderr, in order.
    let say = |line: String| {
        if !a.quiet {
            println!("{line}");
        }
    };
    for e in &rep.events {
        match e {
            FsckEvent::Stage(FsckStage::ValidatingRefs) => say("Validating refs...".into()),
            FsckEvent::Stage(FsckStage::ValidatingCollectionRefs) => {
                say("Validating refs in collections...".into())
            }
            FsckEvent::Stage(FsckStage::EnumeratingCommits) => say("Enumerating commits...".into()),
            FsckEvent::Stage(FsckStage::VerifyingContent(n)) => {
                say(format!(
                    "Verifying content integrity of {n} commit objects..."
                ));
            }
            FsckEvent::ObjectMissing { ty, csum, commits } => {
                eprintln!("{}", fsck_missing_text(*ty, csum, commits))
            }
            FsckEvent::Corrupt { msg, commits } => eprintln!("{}", fsck_in_commits(msg, commits)),
            // Not an ostree line (it deletes silently); on stderr, so stdout stays ostree's.
            FsckEvent::Deleted { ty, csum } => eprintln!("deleted corrupt object {csum}.{ty}"),
            FsckEvent::MarkedPartial(c) => eprintln!("Marking commit as partial: {c}"),
            FsckEvent::Tombstone(c) => println!("Adding tombstone for commit {c}"),
            FsckEvent::StillMissing { ty, csum, commit } => eprintln!(
                "Still missing in commit {commit} (marked partial by an earlier fsck): {csum}.{ty}"
            ),
        }
        // Without a terminal ostree prints its progress as lines (the first item, then
        // every 200 ms, then 100 %), even with -q; oxtree prints the first and the last.
        if matches!(e, FsckEvent::Stage(FsckStage::VerifyingContent(_))) && !tty {
            let (done, total) = (rep.objects_checked, rep.objects_total);
            if done >= 1 {
                let pct = if total == 1 { 100 } else { 100 / total };
                println!("fsck objects (1/{total}) {pct}%");
            }
            if done == total && total > 1 {
                println!("fsck objects ({total}/{total}) 100%");
            }
        }
    }
    if !a.add_tombstones && rep.partial_commits > 0 {
        println!("{} partial commits not verified", rep.partial_commits);
    }
    if let Some(f) = &rep.fatal {
        if !rep.corruption {
            bail!("{f}");
        }
        return Err(Hinted {
            msg: f.clone(),
            hint: "`oxtree fsck --delete` removes corrupt objects; pull or commit again to restore them"
                .into(),
        }
        .into());
    }
    println!(
        "object fsck of {} commits completed successfully - no errors found.",
        rep.commits
    );
    Ok(())
}

/// Search for unreachable objects and delete them.
#[derive(Args)]
pub struct PruneArgs {
    /// Only display unreachable objects; don't delete.
    #[arg(long)]
    pub no_prune: bool,
    /// Only compute reachability via refs.
    #[arg(long)]
    pub refs_only: bool,
    /// Only traverse DEPTH parents for each commit (default: -1=infinite).
    #[arg(long, value_name = "DEPTH", allow_hyphen_values = true)]
    pub depth: Option<String>,
    /// Specify a commit to delete.
    #[arg(long, value_name = "COMMIT")]
    pub delete_commit: Option<String>,
    /// Prune all commits older than the specified date (e.g. "2020-01-01" or "7 days ago").
    #[arg(long, value_name = "DATE")]
    pub keep_younger_than: Option<String>,
    /// Change the behavior of delete-commit and keep-younger-than to prune only static deltas.
    #[arg(long)]
    pub static_deltas_only: bool,
    /// Additionally retain BRANCH=DEPTH commits.
    #[arg(long, value_name = "BRANCH=DEPTH")]
    pub retain_branch_depth: Vec<String>,
    /// Only prune BRANCH (may be specified multiple times).
    #[arg(long = "only-branch", value_name = "BRANCH")]
    pub only_branch: Vec<String>,
    /// Only traverse and delete commit objects.
    #[arg(long)]
    pub commit_only: bool,
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

/// GOption's integer parsing, with its message.
pub(crate) fn goption_int(v: &str, opt: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| anyhow!("Cannot parse integer value \u{201c}{v}\u{201d} for {opt}"))
}

/// `g_ascii_strtoll(s, &end, 10)`: leading blanks, a sign, digits, the rest ignored; `None`
/// when no digit was read.
fn strtoll(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v = digits[..n].parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

pub fn prune(g: &Global, a: PruneArgs) -> Result<()> {
    let mut repo = g.open()?;
    let depth = match &a.depth {
        Some(d) => goption_int(d, "--depth")?,
        None => -1,
    };
    // Checked before anything is deleted (ostree reads these after --delete-commit).
    let mut retain = Vec::new();
    for bd in &a.retain_branch_depth {
        let (branch, d) = bd
            .split_once('=')
            .ok_or_else(|| anyhow!("Invalid value {bd}, must specify BRANCH=DEPTH"))?;
        let d = strtoll(d).ok_or_else(|| anyhow!("Invalid depth {d}"))?;
        // ostree keeps the depth as a C int.
        retain.push((branch.to_string(), i64::from(d as i32)));
    }
    for b in &a.only_branch {
        repo.resolve_rev(b)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let keep = a
        .keep_younger_than
        .as_deref()
        .map(|s| timefmt::parse_relative(s, now))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    if let Some(c) = &a.delete_commit {
        if a.no_prune {
            bail!("Cannot specify both --delete-commit and --no-prune");
        }
        if a.static_deltas_only {
            repo.prune_static_deltas(Some(c))?;
        } else {
            repo.delete_commit(c)?;
        }
    } else if a.static_deltas_only {
        bail!("--static-deltas-only requires --delete-commit; see https://github.com/ostreedev/ostree/issues/1479");
    }
    let rep = repo.prune(&PruneOptions {
        refs_only: a.refs_only,
        depth,
        keep_younger_than: keep,
        no_prune: a.no_prune,
        commit_only: a.commit_only,
        only_branches: a.only_branch.clone(),
        retain_branch_depth: retain,
    })?;
    // ostree's lines, word for word (scripts parse them).
    if a.commit_only {
        println!("Total (commit only) objects: {}", rep.total);
    } else {
        println!("Total objects: {}", rep.total);
    }
    if rep.deleted == 0 {
        println!("No unreachable objects");
    } else if a.no_prune {
        println!(
            "Would delete: {} objects, freeing {}",
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
