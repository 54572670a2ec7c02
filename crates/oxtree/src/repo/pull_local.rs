//! `pull-local`: copy a commit and everything it needs from another local repo, in any mode
//! combination. Every object is re-hashed on the way in, so a corrupt source cannot put a
//! corrupt object into this repo.

use super::refs::RefName;
use super::{Reachable, Repo};
use crate::error::{Error, Result};
use crate::object::{Checksum, ObjectType};
use rayon::prelude::*;

#[derive(Debug, Clone, Default)]
pub struct PullLocalOptions {
    /// Parent depth to copy (0 = just the commit, -1 = all history).
    pub depth: i64,
    /// Write `refs/remotes/REMOTE/REF` instead of `refs/heads/REF`; commits must then
    /// satisfy REMOTE's verification policy (sign-verify, gpg-verify, …), as a pull would.
    pub remote: Option<String>,
    /// Verify OpenPGP signatures with `remote`'s keyring (`--gpg-verify`).
    pub gpg_verify: bool,
    /// Resolve refs through the source's summary, verified with `remote`'s keyring
    /// (`--gpg-verify-summary`).
    pub gpg_verify_summary: bool,
    /// Skip the ref/collection binding checks (`--disable-verify-bindings`).
    pub disable_verify_bindings: bool,
    /// Refuse a commit older than the one its ref points at here (`--timestamp-check`).
    pub timestamp_check: bool,
}

impl Repo {
    /// Pull `refs` (refs or checksums in `src`) into this repo. Returns the number of objects copied.
    pub fn pull_local(
        &self,
        src: &Repo,
        refs: &[String],
        opts: &PullLocalOptions,
    ) -> Result<usize> {
        // Verified as a pull verifies, before anything is copied.
        let check = crate::pull::LocalCheck::new(self, src, opts)?;
        let mut targets = Vec::new();
        for r in refs {
            let c = check.resolve(src, r)?;
            targets.push((r.clone(), c));
        }
        let mut reach = Reachable::default();
        for (_, c) in &targets {
            src.traverse_commit(c, opts.depth, &mut reach, false)?;
        }
        check.verify(self, src, &targets, &reach)?;
        let txn = self.begin()?;
        let todo: Vec<(ObjectType, Checksum)> = reach
            .objects
            .iter()
            .copied()
            .filter(|(ty, c)| !self.has_object(*ty, c))
            .collect();
        todo.par_iter().try_for_each(|(ty, c)| -> Result<()> {
            match ty {
                ObjectType::File => {
                    let mut fc = src.read_file(c)?;
                    txn.write_file(&fc.header.clone(), &mut fc.payload, fc.size, Some(c))
                        .map_err(|e| match e {
                            Error::ChecksumMismatch { actual, .. } => Error::ChecksumMismatch {
                                ty: *ty,
                                csum: *c,
                                actual,
                            },
                            e => e,
                        })?;
                }
                ObjectType::CommitMeta => {
                    src.load_commitmeta(c)?;
                    txn.write_metadata_as(*ty, c, &src.load_metadata(*ty, c)?)?;
                }
                _ => {
                    let b = src.load_metadata(*ty, c)?;
                    src.verify_object(*ty, c)?;
                    txn.write_metadata_as(*ty, c, &b)?;
                }
            }
            Ok(())
        })?;
        for (r, c) in &targets {
            if r.parse::<Checksum>().is_ok() {
                continue;
            }
            let name = RefName::parse(r)?;
            txn.set_ref(
                &RefName {
                    remote: opts.remote.clone(),
                    name: name.name,
                },
                Some(c),
            )?;
        }
        // Refs move inside the transaction, under the repo lock (see Transaction::set_ref).
        txn.commit()?;
        Ok(todo.len())
    }
}
