//! `create-usb` and `find-remotes`: collection refs onto a mounted filesystem, and found and
//! pulled from mounts and configured remotes, with ostree's arguments and output.

use super::{Exit, Global};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use oxtree::p2p::{CreateUsbOptions, Finder};
use oxtree::repo::CollectionRef;
use std::path::PathBuf;

/// `COLLECTION-ID REF [COLLECTION-ID REF…]`, validated with ostree's messages.
fn collection_refs(args: &[String]) -> Result<Vec<CollectionRef>> {
    if args.len() < 2 {
        bail!("At least one COLLECTION-ID REF pair must be specified");
    }
    if !args.len().is_multiple_of(2) {
        bail!("Only complete COLLECTION-ID REF pairs may be specified");
    }
    args.chunks(2)
        .map(|p| match p {
            [c, r] => Ok(CollectionRef::new(c, r)?),
            _ => Err(anyhow!(
                "Only complete COLLECTION-ID REF pairs may be specified"
            )),
        })
        .collect()
}

/// Copy the refs to a USB stick: `create-usb MOUNT-PATH COLLECTION-ID REF [COLLECTION-ID REF…]`.
#[derive(Args)]
pub struct CreateUsbArgs {
    /// Do not invoke fsync().
    #[arg(long)]
    pub disable_fsync: bool,
    /// Use custom repository directory within the mount.
    #[arg(long, value_name = "DEST")]
    pub destination_repo: Option<PathBuf>,
    /// Pull a specific commit (only works when a single ref is specified).
    #[arg(long, value_name = "COMMIT")]
    pub commit: Option<String>,
    /// MOUNT-PATH COLLECTION-ID REF [COLLECTION-ID REF…].
    pub args: Vec<String>,
}

pub fn create_usb(g: &Global, a: CreateUsbArgs) -> Result<()> {
    let Some((mount, rest)) = a.args.split_first() else {
        bail!("A MOUNT-PATH must be specified");
    };
    let refs = collection_refs(rest)?;
    let repo = g.open()?;
    let report = repo.create_usb(
        std::path::Path::new(mount),
        &refs,
        &CreateUsbOptions {
            destination_repo: a.destination_repo,
            commit: a.commit,
            fsync: !a.disable_fsync && repo.fsync_enabled(),
        },
    )?;
    println!(
        "Copied {}/{} refs successfully from ‘{}’ to ‘{}’ repository in ‘{mount}’.",
        report.copied,
        refs.len(),
        report.source.display(),
        report.destination.display()
    );
    Ok(())
}

/// Find remotes to serve the given refs: `find-remotes COLLECTION-ID REF [COLLECTION-ID REF…]`.
#[derive(Args)]
pub struct FindRemotesArgs {
    /// Use custom cache dir.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not invoke fsync().
    #[arg(long)]
    pub disable_fsync: bool,
    /// Use the specified comma separated list of finders (e.g. config,lan,mount).
    #[arg(long, value_name = "FINDERS", action = clap::ArgAction::Append)]
    pub finders: Vec<String>,
    /// Pull the updates after finding them.
    #[arg(long)]
    pub pull: bool,
    /// Do a mirror pull (see ostree pull --mirror).
    #[arg(long)]
    pub mirror: bool,
    /// COLLECTION-ID REF [COLLECTION-ID REF…].
    pub args: Vec<String>,
}

/// `2026-12-03T10:41:28Z`, as find-remotes prints summary times.
fn utc_z(t: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(t).unwrap_or(i64::MAX))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn find_remotes(g: &Global, a: FindRemotesArgs) -> Result<()> {
    // As GLib's option parser: the last one counts.
    let finders = match a.finders.last() {
        None => vec![Finder::Config, Finder::Mount],
        Some(list) => {
            if list.split(',').all(str::is_empty) {
                bail!("List of finders in --finders option must not be empty");
            }
            let mut v = Vec::new();
            let mut lan = false;
            for f in list.split(',') {
                let dup = |x: Finder, v: &Vec<Finder>| v.contains(&x);
                match f {
                    "config" if !dup(Finder::Config, &v) => v.push(Finder::Config),
                    "mount" if !dup(Finder::Mount, &v) => v.push(Finder::Mount),
                    "lan" if !lan => lan = true,
                    _ => bail!("Unknown or duplicate finder type given in --finders option: ‘{f}’"),
                }
            }
            if lan {
                // As ostree does when Avahi is not running: the finder is dropped.
                eprintln!("warning: LAN finder not available (oxtree does not discover peers over Avahi); removing it");
            }
            v
        }
    };
    if a.mirror && !a.pull {
        bail!("When --mirror is specified, --pull must also be");
    }
    let refs = collection_refs(&a.args)?;
    if let Some(d) = &a.cache_dir {
        if !d.is_dir() {
            bail!("opendir({}): No such file or directory", d.display());
        }
    }
    let mut repo = g.open()?;
    if a.disable_fsync {
        repo.set_fsync(false);
    }
    let results = repo.find_remotes(&refs, &finders)?;
    if results.is_empty() {
        println!("No results.");
        return Ok(());
    }
    for (i, r) in results.iter().enumerate() {
        println!("Result {i}: {}", r.uri);
        println!(" - Finder: {}", r.finder.type_name());
        println!(" - Keyring: {}.trustedkeys.gpg", r.keyring_remote);
        println!(" - Priority: {}", r.priority);
        println!(
            " - Summary last modified: {}",
            r.summary_last_modified
                .map(utc_z)
                .unwrap_or_else(|| "unknown".into())
        );
        println!(" - Refs:");
        for (cr, c) in &r.refs {
            match c {
                Some(c) => println!("    - {cr} = {c}"),
                None => println!("    - {cr} = (not found)"),
            }
        }
        println!();
    }
    let missing: Vec<&CollectionRef> = refs
        .iter()
        .filter(|cr| {
            !results
                .iter()
                .any(|r| r.refs.iter().any(|(x, c)| x == *cr && c.is_some()))
        })
        .collect();
    println!(
        "{}/{} refs were found.",
        refs.len() - missing.len(),
        refs.len()
    );
    if !missing.is_empty() {
        println!("Refs not found in any remote:");
        for m in &missing {
            println!(" - {m}");
        }
    }
    if !a.pull {
        return Ok(());
    }
    let progress = oxtree::pull::PullProgress::default();
    let failed = repo.pull_from_remotes(&results, &refs, a.mirror, &progress);
    if failed.is_empty() {
        println!("Pulled {}/{} refs successfully.", refs.len(), refs.len());
        return Ok(());
    }
    let names: Vec<String> = failed
        .iter()
        .flat_map(|(rs, _)| rs.iter().map(ToString::to_string))
        .collect();
    eprintln!(
        "error: Failed to pull some refs from the remotes: {}",
        names.join(", ")
    );
    let mut code = 1;
    for (rs, e) in &failed {
        let which: Vec<String> = rs.iter().map(ToString::to_string).collect();
        eprintln!("hint: {}: {e}", which.join(", "));
        if e.is_verification() {
            code = 4;
        }
    }
    Err(Exit(code).into())
}
