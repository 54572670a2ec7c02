//! `fsck`: verify every ref, every object's checksum and structure, and every reference
//! between objects (spec §10). Each problem names the object; commits with missing objects
//! are marked partial (`state/<c>.commitpartial` containing `f`) as ostree does.

use super::{Reachable, Repo};
use crate::error::{Error, Result};
use crate::object::{Checksum, ObjectType};
use rayon::prelude::*;

#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Remove corrupt objects (they are then reported as missing).
    pub delete: bool,
    /// Updated per object verified.
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

#[derive(Debug, Default)]
pub struct FsckReport {
    pub objects_checked: usize,
    pub commits: usize,
    pub partial_commits: usize,
    /// Human-readable problems, each naming an object or ref.
    pub errors: Vec<String>,
    pub deleted: Vec<(ObjectType, Checksum)>,
}

impl FsckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Repo {
    pub fn fsck(&self, opts: &FsckOptions) -> Result<FsckReport> {
        let mut rep = FsckReport::default();
        for (r, c) in self.list_refs()? {
            if !self.has_object(ObjectType::Commit, &c) {
                rep.errors
                    .push(format!("ref {r} points to missing commit {c}"));
            }
        }
        let objects = self.list_objects()?;
        rep.objects_checked = objects.len();
        if let Some(p) = &opts.progress {
            p.add_total(objects.len() as u64);
        }
        // Verify every stored object's bytes in parallel.
        let bad: Vec<(ObjectType, Checksum, String)> = objects
            .par_iter()
            .filter(|(ty, _)| {
                matches!(
                    ty,
                    ObjectType::File
                        | ObjectType::DirTree
                        | ObjectType::DirMeta
                        | ObjectType::Commit
                        | ObjectType::CommitMeta
                )
            })
            .filter_map(|(ty, c)| {
                let r = self.verify_object(*ty, c);
                if let Some(p) = &opts.progress {
                    p.item(0);
                }
                r.err().map(|e| (*ty, *c, e.to_string()))
            })
            .collect();
        for (ty, c, msg) in &bad {
            rep.errors.push(msg.clone());
            if opts.delete {
                let p = self.object_path(*ty, c);
                if std::fs::remove_file(&p).is_ok() {
                    rep.deleted.push((*ty, *c));
                }
            }
        }
        // Walk every intact, complete commit for missing objects.
        let mut reach = Reachable::default();
        for (ty, c) in &objects {
            if *ty != ObjectType::Commit || bad.iter().any(|b| b.0 == *ty && b.1 == *c) {
                continue;
            }
            rep.commits += 1;
            // A pull in progress leaves a partial commit; one that fsck marked ("f") is
            // corruption and is checked (and reported) again.
            let marker = self.path().join("state").join(format!("{c}.commitpartial"));
            if self.is_partial(c) && std::fs::read(&marker).map(|b| b != b"f").unwrap_or(true) {
                rep.partial_commits += 1;
                continue;
            }
            let before = reach.missing.len();
            match self.traverse_commit(c, 0, &mut reach, true) {
                Ok(()) => {}
                Err(Error::ObjectMissing { ty, csum }) => reach.missing.push((ty, csum, *c)),
                Err(e) => rep.errors.push(format!("commit {c}: {e}")),
            }
            if reach.missing.len() > before {
                let _ = std::fs::write(&marker, b"f");
            } else if marker.exists() {
                let _ = std::fs::remove_file(&marker); // repaired since fsck marked it
            }
        }
        let deleted_now = |ty: ObjectType, c: &Checksum| rep.deleted.contains(&(ty, *c));
        let mut missing_msgs = Vec::new();
        for (ty, c, commit) in &reach.missing {
            let note = if deleted_now(*ty, c) {
                " (deleted as corrupt)"
            } else {
                ""
            };
            missing_msgs.push(format!(
                "object {c}.{ty} is missing{note}, referenced by commit {commit}"
            ));
        }
        missing_msgs.sort();
        missing_msgs.dedup();
        rep.errors.extend(missing_msgs);
        Ok(rep)
    }
}
