//! `export`: a commit as a tar stream, on stdout or into a file.

use super::Global;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// Skip output of extended attributes (GNU tar holds none anyway).
    #[arg(long)]
    pub no_xattrs: bool,
    /// Export only this path of the commit.
    #[arg(long, value_name = "PATH")]
    pub subpath: Option<String>,
    /// Add PATH as prefix to archive pathnames.
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// Write to PATH instead of standard output.
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    pub commit: Option<String>,
}

pub fn run(g: &Global, a: ExportArgs) -> Result<()> {
    let Some(rev) = &a.commit else {
        bail!("A COMMIT argument is required");
    };
    let repo = g.open()?;
    let c = repo.resolve_rev(rev)?;
    let opts = oxtree::repo::ExportOptions {
        subpath: a.subpath.clone(),
        prefix: a.prefix.clone(),
        pad_records: a.output.is_none(),
    };
    match &a.output {
        Some(p) => {
            let existed = std::fs::symlink_metadata(p).is_ok();
            let f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            if let Err(e) = repo.export_tar(&c, std::io::BufWriter::new(f), &opts) {
                // No half-written archive left behind, but never remove what was there before
                // (it may be /dev/null or a pipe).
                if !existed {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e.into());
            }
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("Not outputting tar archive to a terminal: use --output=FILE or redirect");
            }
            repo.export_tar(&c, std::io::BufWriter::new(crate::out::stdout()), &opts)?;
        }
    }
    Ok(())
}
