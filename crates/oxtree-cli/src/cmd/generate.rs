//! `generate` (hidden): man pages and shell completions, made from the same clap definitions
//! as the command itself, so they never drift from it. `dist/install.sh` runs it.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Subcommand)]
pub enum What {
    /// Write man pages (oxtree.1, oxtree-commit.1, oxtree-admin-deploy.1, …) into DIR.
    Man { dir: PathBuf },
    /// Write the completion script for SHELL (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
}

pub fn run(a: GenerateArgs, mut cmd: clap::Command) -> Result<()> {
    match a.what {
        What::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
        What::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "oxtree", &mut crate::out::stdout());
        }
    }
    Ok(())
}
