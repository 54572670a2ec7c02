//! `refs` and `rev-parse`.

use super::Global;
use anyhow::{bail, Result};
use clap::Args;
use oxtree::repo::RefName;

/// List refs, or create and delete them.
#[derive(Args)]
pub struct RefsArgs {
    /// Delete the given refs.
    #[arg(long)]
    pub delete: bool,
    /// Create a ref NAME pointing at the commit given as the argument.
    #[arg(long, value_name = "NAME")]
    pub create: Option<String>,
    /// Show the checksum beside each ref.
    #[arg(long)]
    pub list: bool,
    /// Refs (with --delete), a prefix to filter by, or the commit (with --create).
    pub args: Vec<String>,
}

pub fn refs(g: &Global, a: RefsArgs) -> Result<()> {
    let RefsArgs {
        delete,
        create,
        list,
        args,
    } = a;
    let repo = g.open()?;
    if let Some(name) = create {
        let [target] = args.as_slice() else {
            bail!("--create=NAME needs exactly one commit argument")
        };
        let c = repo.resolve_rev(target)?;
        let r = RefName::parse(&name)?;
        if repo.read_ref(&r)?.is_some() {
            bail!("ref {name} already exists; delete it first with `oxtree refs --delete {name}`");
        }
        repo.set_ref(&r, Some(&c))?;
    } else if delete {
        if args.is_empty() {
            bail!("--delete needs the refs to delete");
        }
        for a in &args {
            repo.set_ref(&RefName::parse(a)?, None)?;
        }
    } else {
        let prefix = args.first().map(String::as_str).unwrap_or("");
        for (r, c) in repo.list_refs()? {
            let name = r.to_string();
            if name.starts_with(prefix) {
                if list {
                    println!("{name} {c}");
                } else {
                    println!("{name}");
                }
            }
        }
    }
    Ok(())
}

/// Print the commit checksum a ref or revision resolves to.
#[derive(Args)]
pub struct RevParseArgs {
    pub rev: String,
}

pub fn rev_parse(g: &Global, a: RevParseArgs) -> Result<()> {
    println!("{}", g.open()?.resolve_rev(&a.rev)?);
    Ok(())
}
