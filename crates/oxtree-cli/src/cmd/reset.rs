//! `reset REF COMMIT`: point an existing ref at another commit, as `ostree reset` does.
//!
//! ostree 2022.7 checks only that REF is one of the repository's refs (`Invalid ref 'X'`
//! otherwise, also for `REMOTE:REF` spellings of remote refs) and that COMMIT resolves
//! (`Refspec 'X' not found`); it does not require COMMIT to be an ancestor of the ref's
//! current commit, so neither does oxtree. Where ostree would write a ref to a full
//! checksum whose commit is not in the repository (leaving a ref fsck then fails on),
//! oxtree refuses with ostree's own text for a missing commit.

use super::Global;
use anyhow::{bail, Result};
use clap::Args;
use oxtree::object::ObjectType;
use oxtree::repo::RefName;

/// Reset a REF to a previous COMMIT.
#[derive(Args)]
pub struct ResetArgs {
    /// The ref to move (`REF` or `REMOTE:REF`); it must exist.
    pub refspec: Option<String>,
    /// The commit (a checksum, a unique prefix of one, or a revision such as `REF^`).
    pub commit: Option<String>,
}

pub fn run(g: &Global, a: ResetArgs) -> Result<()> {
    let (Some(refspec), Some(target)) = (&a.refspec, &a.commit) else {
        bail!("A REF and COMMIT argument is required");
    };
    let repo = g.open()?;
    let refs = repo.list_refs()?;
    let Some(name) = refs.keys().find(|r| r.to_string() == *refspec).cloned() else {
        bail!("Invalid ref '{refspec}'");
    };
    let commit = repo.resolve_rev(target)?;
    if !repo.has_object(ObjectType::Commit, &commit) {
        bail!("No such metadata object {commit}.commit");
    }
    let txn = repo.begin()?;
    txn.set_ref(
        &RefName {
            remote: name.remote,
            name: name.name,
        },
        Some(&commit),
    )?;
    txn.commit()?;
    Ok(())
}
