//! `prune`: delete objects no root reaches (spec §9). Roots are every commit by default, or
//! the refs (to `depth`) with `refs_only`.

use super::{Reachable, Repo};
use crate::error::{IoContext, Result};
use crate::object::{Checksum, ObjectType};
use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub refs_only: bool,
    /// Parent depth to keep from each ref (-1 = all).
    pub depth: i64,
    /// Keep commits at least this new (seconds since epoch) along each ref; implies refs_only.
    pub keep_younger_than: Option<u64>,
    /// Dry run.
    pub no_prune: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            refs_only: false,
            depth: -1,
            keep_younger_than: None,
            no_prune: false,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    pub total: usize,
    pub deleted: usize,
    pub freed_bytes: u64,
}

impl Repo {
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        self.prune_keeping(opts, &[])
    }

    /// [`Self::prune`] that also keeps the commits `keep` (with what they reach, as for a
    /// ref at depth 0) whatever the refs say: the sysroot's deployments, which ostree adds
    /// to the reachable set under the same exclusive lock.
    pub fn prune_keeping(&self, opts: &PruneOptions, keep: &[Checksum]) -> Result<PruneReport> {
        // Exclusive: no commit or pull may add objects that point at what we delete.
        let _lock = self.lock(true)?;
        let objects = self.list_objects()?;
        let mut reach = Reachable::default();
        if opts.refs_only || opts.keep_younger_than.is_some() {
            for (_, c) in self.list_refs()? {
                match opts.keep_younger_than {
                    Some(cutoff) => {
                        // The head is always kept, then ancestors while they are new enough.
                        let mut cur = Some(c);
                        let mut first = true;
                        while let Some(cc) = cur {
                            let Ok(cm) = self.load_commit(&cc) else { break };
                            if !first && cm.timestamp < cutoff {
                                break;
                            }
                            self.traverse_commit(&cc, 0, &mut reach, true)?;
                            first = false;
                            cur = cm.parent;
                        }
                    }
                    None => self.traverse_commit(&c, opts.depth, &mut reach, true)?,
                }
            }
        } else {
            for (ty, c) in &objects {
                if *ty == ObjectType::Commit {
                    self.traverse_commit(c, 0, &mut reach, true)?;
                }
            }
        }
        let mut markers_removed = false;
        for c in keep {
            self.traverse_commit(c, 0, &mut reach, true)?;
        }
        let mut rep = PruneReport {
            total: objects.len(),
            ..Default::default()
        };
        for (ty, c) in &objects {
            let keep = match ty {
                ObjectType::CommitMeta => reach.contains(ObjectType::Commit, c),
                ObjectType::TombstoneCommit => true,
                _ => reach.contains(*ty, c),
            };
            if keep {
                continue;
            }
            let p = self.object_path(*ty, c);
            let size = std::fs::symlink_metadata(&p)
                .map(|m| m.blocks() * 512)
                .unwrap_or(0);
            rep.deleted += 1;
            rep.freed_bytes += size;
            if !opts.no_prune {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    // Gone already (another prune, fsck --delete): nothing to do.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).ctx("remove", &p),
                }
                if *ty == ObjectType::Commit {
                    markers_removed |= std::fs::remove_file(
                        self.path().join("state").join(format!("{c}.commitpartial")),
                    )
                    .is_ok();
                }
            }
        }
        if markers_removed && self.fsync_enabled() {
            // A marker that reappeared after a crash would only make a deleted commit
            // look partial, but keep state/ as durable as the refs.
            crate::fsutil::fsync_dir(&self.path().join("state"))?;
        }
        Ok(rep)
    }
}
