//! `checksum`: the object checksum of a file (content object) or directory (dirmeta) on disk,
//! as it would be committed.

use super::show::io_message;
use super::Global;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ChecksumArgs {
    /// Don't include xattrs in checksum.
    #[arg(long)]
    pub ignore_xattrs: bool,
    /// The file (ostree 2022.7 checksums only the first one given).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn run(_g: &Global, a: ChecksumArgs) -> Result<()> {
    let Some(p) = a.paths.first() else {
        bail!("A filename must be given");
    };
    if let Err(e) = std::fs::symlink_metadata(p) {
        bail!(
            "Error when getting information for file \u{201c}{}\u{201d}: {}",
            std::path::absolute(p)
                .unwrap_or_else(|_| Path::new(p).to_path_buf())
                .display(),
            io_message(&e)
        );
    }
    let (_, c) = oxtree::repo::checksum_local(
        p,
        &oxtree::repo::LocalChecksumOptions {
            ignore_xattrs: a.ignore_xattrs,
            ..Default::default()
        },
    )?;
    println!("{c}");
    Ok(())
}
