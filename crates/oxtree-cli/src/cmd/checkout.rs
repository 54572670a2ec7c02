//! `checkout`: a commit into a directory, by hardlinks where it can.

use super::{Global, Hinted};
use crate::progress::with_progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::repo::{CheckoutOptions, Overwrite, PathEntry};
use oxtree::Repo;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Check out a commit into a filesystem tree.
#[derive(Args)]
pub struct CheckoutArgs {
    /// Do not change file ownership or initialize extended attributes.
    #[arg(short = 'U', long = "user-mode")]
    pub user_mode: bool,
    /// Do not update or use the internal repository uncompressed object cache (what a
    /// user-mode checkout of an archive repository links its files from).
    #[arg(long)]
    pub disable_cache: bool,
    /// Checkout sub-directory PATH.
    #[arg(long, value_name = "PATH")]
    pub subpath: Option<String>,
    /// Keep existing directories, overwrite existing files.
    #[arg(long)]
    pub union: bool,
    /// Keep existing files/directories, only add new.
    #[arg(long)]
    pub union_add: bool,
    /// When layering checkouts, error out if a file would be replaced with a different
    /// version, but add new files and directories.
    #[arg(long)]
    pub union_identical: bool,
    /// Process 'whiteout' (Docker style) entries.
    #[arg(long)]
    pub whiteouts: bool,
    /// Enable overlayfs whiteout extraction into char 0:0 devices.
    #[arg(long)]
    pub process_passthrough_whiteouts: bool,
    /// Do nothing if specified path does not exist.
    #[arg(long)]
    pub allow_noent: bool,
    /// Process many checkouts from standard input (NUL-separated REV and SUBPATH pairs,
    /// all into the destination given as the only argument).
    #[arg(long)]
    pub from_stdin: bool,
    /// Process many checkouts from input file.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Specify how to invoke fsync(): true (sync the destination's filesystem at the end)
    /// or false.
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// Do not fall back to full copies if hardlinking fails.
    #[arg(short = 'H', long)]
    pub require_hardlinks: bool,
    /// Never hardlink.
    #[arg(short = 'C', long)]
    pub force_copy: bool,
    /// Do not hardlink zero-sized files.
    #[arg(short = 'z', long)]
    pub force_copy_zerosized: bool,
    /// Suppress mode bits outside of 0775 for directories (suid, world writable, etc.).
    #[arg(short = 'M', long)]
    pub bareuseronly_dirs: bool,
    /// File containing list of files to skip.
    #[arg(long, value_name = "FILE")]
    pub skip_list: Option<PathBuf>,
    /// Set SELinux labels based on policy in root filesystem PATH (refused: oxtree does
    /// not label).
    #[arg(long, value_name = "PATH")]
    pub selinux_policy: Option<PathBuf>,
    /// When setting SELinux labels, prefix all paths by PREFIX (refused with
    /// --selinux-policy).
    #[arg(long, value_name = "PREFIX")]
    pub selinux_prefix: Option<String>,
    /// Write a composefs image instead of a directory (refused: composefs is not
    /// supported yet).
    #[arg(long)]
    pub composefs: bool,
    /// Write a composefs image without fs-verity digests (refused, as --composefs).
    #[arg(long)]
    pub composefs_noverity: bool,
    /// Ref or commit checksum.
    pub commit: Option<String>,
    /// Destination directory (default: the commit argument's name).
    pub destination: Option<PathBuf>,
}

/// ostree's boolean option values (`ot_parse_boolean`).
pub fn parse_bool(v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "none" => Ok(false),
        _ => bail!("Invalid boolean argument '{v}'"),
    }
}

/// The `--skip-list` file: one path per line, relative to the checked-out root.
fn read_skip_list(f: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(f)
        .map_err(|e| anyhow::anyhow!("openat({}): {}", f.display(), crate::output::strerror(&e)))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub fn run(g: &Global, a: CheckoutArgs) -> Result<()> {
    // ostree's checks, in its order.
    if a.union && a.union_add {
        bail!("Cannot specify both --union and --union-add");
    }
    if a.union && a.union_identical {
        bail!("Cannot specify both --union and --union-identical");
    }
    if a.union_add && a.union_identical {
        bail!("Cannot specify both --union-add and --union-identical");
    }
    if a.require_hardlinks && a.force_copy {
        bail!("Cannot specify both --require-hardlinks and --force-copy");
    }
    if a.union_identical && !a.require_hardlinks {
        bail!("--union-identical requires --require-hardlinks");
    }
    if a.selinux_prefix.is_some() && a.selinux_policy.is_none() {
        bail!("Cannot specify --selinux-prefix without --selinux-policy");
    }
    if let Some(root) = &a.selinux_policy {
        super::selinux::check_no_policy_in_dir(root, "--selinux-policy")?;
    }
    if a.composefs || a.composefs_noverity {
        let opt = if a.composefs {
            "--composefs"
        } else {
            "--composefs-noverity"
        };
        bail!("{opt}: composefs images are not supported by oxtree yet; check out a directory");
    }
    let fsync = a.fsync.as_deref().map(parse_bool).transpose()?;
    let Some(commit) = a.commit.as_deref() else {
        bail!("COMMIT must be specified");
    };
    let repo = g.open()?;
    let progress = std::sync::Arc::new(oxtree::progress::Progress::default());
    let opts = CheckoutOptions {
        user_mode: a.user_mode,
        overwrite: if a.union {
            Overwrite::Union
        } else if a.union_add {
            Overwrite::UnionAdd
        } else if a.union_identical {
            Overwrite::UnionIdentical
        } else {
            Overwrite::None
        },
        subpath: a.subpath.clone(),
        require_hardlinks: a.require_hardlinks,
        force_copy: a.force_copy,
        force_copy_zerosized: a.force_copy_zerosized,
        whiteouts: a.whiteouts,
        passthrough_whiteouts: a.process_passthrough_whiteouts,
        bareuseronly_dirs: a.bareuseronly_dirs,
        uncompressed_cache: !a.disable_cache,
        skip_list: match &a.skip_list {
            Some(f) => read_skip_list(f)?,
            None => HashSet::new(),
        },
        progress: Some(progress.clone()),
    };
    if a.from_stdin || a.from_file.is_some() {
        // The argument is the destination of every checkout listed.
        let dest = PathBuf::from(commit);
        let input = match &a.from_file {
            Some(f) => std::fs::read(f).map_err(|e| {
                anyhow::anyhow!(
                    "Error opening file {}: {}",
                    f.display(),
                    crate::output::strerror(&e)
                )
            })?,
            None => {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("reading standard input")?;
                b
            }
        };
        // NUL-terminated pairs: REV, SUBPATH (ostree's --from-file format).
        // As ostree reads it (g_data_input_stream_read_upto): REV NUL SUBPATH NUL ...; a
        // SUBPATH cut off by the end of the input means the whole tree, an empty one is
        // refused; a newline ending REV (as `echo` writes) is not part of it.
        let mut rest: &[u8] = &input;
        let mut field = || -> Option<&[u8]> {
            if rest.is_empty() {
                return None;
            }
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let f = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            Some(f)
        };
        while let Some(rev) = field() {
            if rev.is_empty() {
                break;
            }
            let rev = String::from_utf8_lossy(rev.strip_suffix(b"\n").unwrap_or(rev));
            let sub = field().map_or_else(
                || "/".to_string(),
                |s| String::from_utf8_lossy(s).into_owned(),
            );
            let c = repo.resolve_rev(&rev)?;
            let one = CheckoutOptions {
                subpath: Some(sub),
                ..opts.clone()
            };
            checkout_one(&repo, &c, &dest, &one, a.allow_noent, &progress)
                .map_err(|e| anyhow::anyhow!("Processing tree {c}: {}", crate::error_chain(&e)))?;
        }
        if fsync == Some(true) {
            oxtree::fsutil::syncfs(&dest)?;
        }
        repo.uncompressed_cache_gc()?;
        return Ok(());
    }
    let c = repo.resolve_rev(commit)?;
    let dest = a
        .destination
        .clone()
        .unwrap_or_else(|| PathBuf::from(commit));
    checkout_one(&repo, &c, &dest, &opts, a.allow_noent, &progress)?;
    if fsync == Some(true) {
        oxtree::fsutil::syncfs(&dest)?;
    }
    // As ostree's checkout ends: uncompressed copies nothing links any more go.
    repo.uncompressed_cache_gc()?;
    Ok(())
}

/// One checkout of `opts.subpath` of `c` into `dest` (ostree's `process_one_checkout`).
fn checkout_one(
    repo: &Repo,
    c: &oxtree::Checksum,
    dest: &Path,
    opts: &CheckoutOptions,
    allow_noent: bool,
    progress: &std::sync::Arc<oxtree::progress::Progress>,
) -> Result<()> {
    let sub = opts.subpath.as_deref().unwrap_or("/");
    // ostree resolves an empty subpath to nothing.
    if sub.is_empty() {
        bail!("No such file or directory: /");
    }
    let entry = match repo.lookup_path(c, sub) {
        Err(oxtree::Error::NotFound(_)) if allow_noent => return Ok(()),
        r => r?,
    };
    // Without a union mode ostree refuses a destination that exists (even empty).
    if opts.overwrite == Overwrite::None
        && matches!(entry, PathEntry::Dir { .. })
        && std::fs::symlink_metadata(dest).is_ok()
    {
        return Err(Hinted {
            msg: "mkdirat: File exists".into(),
            hint: format!(
                "{} already exists: remove it, or layer onto it with --union, --union-add or --union-identical",
                dest.display()
            ),
        }
        .into());
    }
    with_progress("checking out", progress, true, || {
        repo.checkout(c, dest, opts)
    })?;
    Ok(())
}
