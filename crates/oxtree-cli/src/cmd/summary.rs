//! `summary`: regenerate (-u, optionally signed) or show the summary file.

use super::Global;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Result};
use clap::Args;

/// Regenerate (-u) or show (--view) the repository summary.
#[derive(Args)]
pub struct SummaryArgs {
    /// Regenerate the summary file.
    #[arg(short = 'u', long)]
    pub update: bool,
    /// Print the summary.
    #[arg(long)]
    pub view: bool,
    /// Sign the summary with this base64 ed25519 secret key (writes summary.sig).
    #[arg(long, value_name = "KEY")]
    pub sign: Vec<String>,
    /// Signature type for --sign (only ed25519).
    #[arg(long, default_value = "ed25519")]
    pub sign_type: String,
}

pub fn run(g: &Global, a: SummaryArgs) -> Result<()> {
    let SummaryArgs {
        update,
        view,
        sign,
        sign_type,
    } = a;
    let mut repo = g.open()?;
    if !sign.is_empty() && sign_type != "ed25519" {
        bail!("--sign-type={sign_type}: only ed25519 is supported");
    }
    if update {
        let keys = sign
            .iter()
            .map(|k| oxtree::sign::parse_secret_key(k))
            .collect::<oxtree::Result<Vec<_>>>()?;
        repo.regenerate_summary_signed(&keys)?;
    } else if !sign.is_empty() {
        bail!("--sign goes with -u (the summary is signed when it is regenerated)");
    }
    if view || !update {
        let s = repo
            .read_summary()?
            .ok_or_else(|| anyhow!("no summary file; generate one with `oxtree summary -u`"))?;
        print_summary(&s);
    }
    Ok(())
}

pub fn print_summary(s: &oxtree::object::Summary) {
    for r in &s.refs {
        println!("* {}", r.name);
        println!("    Latest Commit ({} bytes):", r.commit_size);
        println!("      {}", r.checksum);
        if let Some(v) = r.version() {
            println!("    Version (ostree.commit.version): {v}");
        }
        if let Some(t) = r.timestamp() {
            println!(
                "    Timestamp (ostree.commit.timestamp): {}",
                timefmt::format(t)
            );
        }
        println!();
    }
    for (k, v) in &s.metadata {
        let shown = match (k.as_str(), v) {
            ("ostree.summary.last-modified", oxtree::gvariant::Value::U64(t)) => {
                timefmt::format(u64::from_be(*t))
            }
            _ => gvtext::print(v),
        };
        println!("{k}: {shown}");
    }
}
