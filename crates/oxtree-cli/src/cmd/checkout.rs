//! `checkout`: a commit into a directory, by hardlinks where it can.

use super::Global;
use crate::progress::with_progress;
use anyhow::Result;
use clap::Args;
use oxtree::repo::CheckoutOptions;
use std::path::PathBuf;

/// Check out a commit into a directory.
#[derive(Args)]
pub struct CheckoutArgs {
    /// User mode: do not change file ownership or set xattrs.
    #[arg(short = 'U', long = "user-mode")]
    pub user_mode: bool,
    /// Keep existing directories and overwrite existing files.
    #[arg(long)]
    pub union: bool,
    /// Check out only this path of the commit.
    #[arg(long, value_name = "PATH")]
    pub subpath: Option<String>,
    /// Fail rather than copy when a file cannot be hardlinked.
    #[arg(long)]
    pub require_hardlinks: bool,
    /// Copy files instead of hardlinking them.
    #[arg(short = 'C', long)]
    pub force_copy: bool,
    /// Ref or commit checksum.
    pub commit: String,
    /// Destination directory (default: the commit argument's name).
    pub destination: Option<PathBuf>,
}

pub fn run(g: &Global, a: CheckoutArgs) -> Result<()> {
    let CheckoutArgs {
        user_mode,
        union,
        subpath,
        require_hardlinks,
        force_copy,
        commit,
        destination,
    } = a;
    let repo = g.open()?;
    let c = repo.resolve_rev(&commit)?;
    let dest = destination.unwrap_or_else(|| PathBuf::from(&commit));
    let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
    let opts = CheckoutOptions {
        user_mode,
        union,
        subpath,
        require_hardlinks,
        force_copy,
        progress: Some(progress.clone()),
    };
    with_progress("checking out", &progress, true, || {
        repo.checkout(&c, &dest, &opts)
    })?;
    Ok(())
}
