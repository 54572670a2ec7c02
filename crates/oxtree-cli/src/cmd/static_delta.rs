//! `static-delta`: generate and list.

use super::Global;
use crate::output::human_size;
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum StaticDeltaCmd {
    /// Write the delta from --from (or, with --empty, from nothing) to --to into deltas/;
    /// then run `summary -u` so clients find it.
    Generate(GenerateArgs),
    /// List the static deltas: FROM-TO, or TO for scratch deltas.
    List,
}

/// Write the delta from --from (or, with --empty, from nothing) to --to into deltas/;
/// then run `summary -u` so clients find it.
#[derive(Args)]
pub struct GenerateArgs {
    /// Start commit (REV); default: the parent of --to.
    #[arg(long, value_name = "REV")]
    pub from: Option<String>,
    /// A scratch delta: everything --to needs.
    #[arg(long, conflicts_with = "from")]
    pub empty: bool,
    /// Target commit (REV).
    #[arg(long, value_name = "REV")]
    pub to: String,
    /// Regular files above this many MiB are left out, fetched as plain objects.
    #[arg(long, value_name = "MB", default_value_t = 4)]
    pub min_fallback_size: u64,
    /// A new part starts after this many MiB.
    #[arg(long, value_name = "MB", default_value_t = 32)]
    pub max_chunk_size: u64,
    /// Files replacing one at the same path are sent as bsdiff patches up to this many
    /// MiB (0: never; costs ~9× the old file's size in memory).
    #[arg(long, value_name = "MB", default_value_t = 32)]
    pub max_bsdiff_size: u64,
}

pub fn run(g: &Global, cmd: StaticDeltaCmd) -> Result<()> {
    match cmd {
        StaticDeltaCmd::Generate(GenerateArgs {
            from,
            empty,
            to,
            min_fallback_size,
            max_chunk_size,
            max_bsdiff_size,
        }) => {
            let repo = g.open()?;
            let to = repo.resolve_rev(&to)?;
            let from = match (from, empty) {
                (_, true) => None,
                (Some(f), false) => Some(repo.resolve_rev(&f)?),
                (None, false) => Some(repo.load_commit(&to)?.parent.ok_or_else(|| {
                    anyhow::anyhow!("{to} has no parent: give --from=REV, or --empty")
                })?),
            };
            let r = repo.generate_static_delta(
                from.as_ref(),
                &to,
                &oxtree::repo::DeltaOptions {
                    max_chunk_size: max_chunk_size.max(1) << 20,
                    min_fallback_size: min_fallback_size << 20,
                    max_bsdiff_size: max_bsdiff_size << 20,
                },
            )?;
            println!(
                "Generated static delta {}: {} objects ({} as bsdiff patches) in {} part(s), {} ({} uncompressed), {} fallback(s)",
                r.name,
                r.objects,
                r.patched,
                r.parts,
                human_size(r.size),
                human_size(r.uncompressed_size),
                r.fallbacks
            );
            println!("Run `oxtree summary -u` so clients find it.");
        }
        StaticDeltaCmd::List => {
            for (f, t) in g.open()?.list_static_deltas()? {
                println!("{}", oxtree::delta::delta_name(f.as_ref(), &t));
            }
        }
    }
    Ok(())
}
