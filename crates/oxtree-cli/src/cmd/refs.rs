//! `refs` and `rev-parse`, with ostree's argument rules and messages.

use super::Global;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::repo::{CollectionRef, ListRefsOptions, RefName};
use oxtree::Repo;

/// List refs, or create and delete them: `refs [PREFIX…]`.
#[derive(Args)]
pub struct RefsArgs {
    /// Delete refs which match PREFIX, rather than listing them.
    #[arg(long)]
    pub delete: bool,
    /// Do not remove the prefix from the refs.
    #[arg(long)]
    pub list: bool,
    /// If used with --create, create an alias, otherwise just list aliases.
    #[arg(short = 'A', long)]
    pub alias: bool,
    /// Create a new ref for an existing commit (with --collections: COLLECTION-ID:REF).
    #[arg(long, value_name = "NEWREF")]
    pub create: Option<String>,
    /// Enable listing collection IDs for refs.
    #[arg(short = 'c', long)]
    pub collections: bool,
    /// Overwrite existing refs when creating.
    #[arg(long)]
    pub force: bool,
    /// Show the commit checksum beside each ref (tab-separated).
    #[arg(short = 'r', long)]
    pub revision: bool,
    /// Prefixes to list or delete, or (with --create) the revision to point at.
    pub args: Vec<String>,
}

pub fn refs(g: &Global, a: RefsArgs) -> Result<()> {
    let repo = g.open()?;
    if a.args.is_empty() {
        if a.delete {
            bail!("At least one PREFIX is required when deleting refs");
        }
        if a.create.is_some() {
            bail!("You must specify a revision when creating a new ref");
        }
        return do_ref(&repo, &a, None);
    }
    if a.create.is_some() && a.args.len() > 1 {
        bail!("You must specify only 1 existing ref when creating a new ref");
    }
    for p in &a.args {
        do_ref(&repo, &a, Some(p))?;
    }
    Ok(())
}

fn do_ref(repo: &Repo, a: &RefsArgs, prefix: Option<&str>) -> Result<()> {
    if a.collections {
        return do_collection_ref(repo, a, prefix);
    }
    if let Some(name) = &a.create {
        let rev = prefix.unwrap_or_default();
        // (ostree's refusal, before the name is checked as a ref)
        if let Some((remote, _)) = name.split_once(':').filter(|_| a.alias) {
            bail!("Cannot create alias to remote ref: {remote}");
        }
        let existing = repo.resolve_rev_no_remotes(name)?;
        // Aliases are replaced freely, as ostree does; anything else needs --force.
        let replacing_alias = a.alias && repo.list_ref_aliases()?.contains_key(name);
        if existing.is_some() && !a.force && !replacing_alias {
            bail!("--create specified but ref {name} already exists");
        }
        if a.alias {
            repo.set_ref_alias(name, rev)?;
        } else {
            let c = repo.resolve_rev(rev)?;
            repo.set_ref(&RefName::parse(name)?, Some(&c))?;
        }
        return Ok(());
    }
    let opts = ListRefsOptions {
        cut_prefix: !a.list && !a.delete && !a.alias,
        aliases: a.alias && !a.delete,
    };
    let refs = repo
        .list_refs_prefixed(prefix, opts)
        .context("Listing refs")?;
    if a.delete {
        // No ref goes while an alias still names it (checked for all before any goes).
        let aliases = repo.list_ref_aliases().context("Listing refs")?;
        let mut doomed = Vec::new();
        for name in refs.keys() {
            let r = RefName::parse(name)?;
            if let Some((alias, _)) = aliases.iter().find(|(_, t)| **t == r.name) {
                bail!("Ref '{}' has an active alias: '{alias}'", r.name);
            }
            doomed.push(r);
        }
        for r in doomed {
            repo.set_ref(&r, None)?;
        }
        return Ok(());
    }
    for (name, target) in refs {
        if a.alias {
            println!("{name} -> {target}");
        } else if a.revision {
            println!("{name}\t{target}");
        } else {
            println!("{name}");
        }
    }
    Ok(())
}

/// `refs --collections`: list, create or delete `(collection-id, ref)` refs.
fn do_collection_ref(repo: &Repo, a: &RefsArgs, prefix: Option<&str>) -> Result<()> {
    if let Some(name) = &a.create {
        // ostree checks for an existing ref reading NAME as a refspec (a collection ID in
        // the remote's place): collection refs themselves are replaced without --force.
        if repo.resolve_rev_no_remotes(name)?.is_some() && !a.force {
            bail!("--create specified but ref {name} already exists");
        }
        let c = repo.resolve_rev(prefix.unwrap_or_default())?;
        let (cid, r) = name.split_once(':').unwrap_or((name, ""));
        let cref = CollectionRef::new(cid, r)?;
        repo.set_collection_ref(&cref, Some(&c))?;
        return Ok(());
    }
    let refs = repo
        .list_collection_refs(prefix, false)
        .context("Listing refs")?;
    for (r, c) in refs {
        if a.delete {
            repo.set_collection_ref(&r, None)?;
        } else if a.revision {
            println!("{r}\t{c}");
        } else {
            println!("{r}");
        }
    }
    Ok(())
}

/// Print the commit checksum a ref or revision resolves to: `rev-parse REV…`.
#[derive(Args)]
pub struct RevParseArgs {
    /// If the repository has exactly one commit, then print it; any other case will result
    /// in an error.
    #[arg(short = 'S', long)]
    pub single: bool,
    /// Revisions: refs, `REMOTE:REF`, full or unique partial checksums, with `^` suffixes.
    pub revs: Vec<String>,
}

pub fn rev_parse(g: &Global, a: RevParseArgs) -> Result<()> {
    let repo = g.open()?;
    if a.single {
        if !a.revs.is_empty() {
            bail!("Cannot specify arguments with --single");
        }
        println!("{}", repo.single_commit()?);
        return Ok(());
    }
    if a.revs.is_empty() {
        bail!("REV must be specified");
    }
    for r in &a.revs {
        println!("{}", repo.resolve_rev(r)?);
    }
    Ok(())
}
