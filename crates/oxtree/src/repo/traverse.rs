//! Walking the object graph: commit → parents (to a depth) → dirtree/dirmeta → files.

use super::Repo;
use crate::error::{Error, Result};
use crate::object::{Checksum, ObjectType};
use std::collections::{HashMap, HashSet};

/// The set of objects reachable from some commits.
#[derive(Debug, Default, Clone)]
pub struct Reachable {
    pub objects: HashSet<(ObjectType, Checksum)>,
    /// Objects referenced but absent, with the commit that referenced them.
    pub missing: Vec<(ObjectType, Checksum, Checksum)>,
    /// How many parents beyond each walked commit were followed (-1: all): a commit reached
    /// again with a longer history to keep (another ref at the same commit, walked with a
    /// greater depth) is walked on, not taken as done.
    parents_walked: HashMap<Checksum, i64>,
}

impl Reachable {
    pub fn contains(&self, ty: ObjectType, c: &Checksum) -> bool {
        self.objects.contains(&(ty, *c))
    }

    /// Record that `c` is walked with `remaining` parents to follow; false if an earlier
    /// walk already followed at least as many from it.
    pub(crate) fn walk_parents(&mut self, c: &Checksum, remaining: i64) -> bool {
        let covers = |done: i64| done < 0 || (remaining >= 0 && done >= remaining);
        match self.parents_walked.get(c) {
            Some(&done) if covers(done) => false,
            _ => {
                self.parents_walked.insert(*c, remaining);
                true
            }
        }
    }
}

impl Repo {
    /// Add everything reachable from `commit` to `out`, following parents up to `depth`
    /// (-1 = all). Partial commits (`state/*.commitpartial`) tolerate missing objects. With
    /// `lenient`, missing objects are recorded instead of failing.
    pub fn traverse_commit(
        &self,
        commit: &Checksum,
        depth: i64,
        out: &mut Reachable,
        lenient: bool,
    ) -> Result<()> {
        let mut cur = Some(*commit);
        let mut remaining = depth;
        while let Some(c) = cur {
            if !out.walk_parents(&c, remaining) {
                break; // this commit and as many ancestors are already in
            }
            if !out.objects.insert((ObjectType::Commit, c)) {
                // Its tree is in: only its parents are left to follow.
                match self.load_commit(&c) {
                    Ok(cm) if remaining != 0 => {
                        remaining -= i64::from(remaining > 0);
                        cur = cm.parent;
                        continue;
                    }
                    _ => break,
                }
            }
            if self.has_object(ObjectType::CommitMeta, &c) {
                out.objects.insert((ObjectType::CommitMeta, c));
            }
            let commit = match self.load_commit(&c) {
                Ok(cm) => cm,
                Err(Error::ObjectMissing { .. }) if c != *commit => {
                    out.objects.remove(&(ObjectType::Commit, c));
                    break; // history may be shallow
                }
                Err(Error::ObjectMissing { ty, csum }) if lenient => {
                    out.missing.push((ty, csum, c));
                    break;
                }
                Err(e) => return Err(e),
            };
            let partial = self.is_partial(&c);
            self.traverse_dir(
                &commit.root_tree,
                &commit.root_meta,
                c,
                out,
                lenient || partial,
            )?;
            if remaining == 0 {
                break;
            }
            if remaining > 0 {
                remaining -= 1;
            }
            cur = commit.parent;
        }
        Ok(())
    }

    fn traverse_dir(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        commit: Checksum,
        out: &mut Reachable,
        lenient: bool,
    ) -> Result<()> {
        let mut stack = vec![(*tree, *meta)];
        while let Some((t, m)) = stack.pop() {
            self.note(ObjectType::DirMeta, &m, commit, out, lenient)?;
            if !out.objects.insert((ObjectType::DirTree, t)) {
                continue;
            }
            let dt = match self.load_dirtree(&t) {
                Ok(dt) => dt,
                Err(Error::ObjectMissing { ty, csum }) if lenient => {
                    out.objects.remove(&(ObjectType::DirTree, t));
                    out.missing.push((ty, csum, commit));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (_, f) in &dt.files {
                self.note(ObjectType::File, f, commit, out, lenient)?;
            }
            for (_, st, sm) in &dt.dirs {
                stack.push((*st, *sm));
            }
        }
        Ok(())
    }

    fn note(
        &self,
        ty: ObjectType,
        c: &Checksum,
        commit: Checksum,
        out: &mut Reachable,
        lenient: bool,
    ) -> Result<()> {
        if out.objects.contains(&(ty, *c)) {
            return Ok(());
        }
        if self.has_object(ty, c) {
            out.objects.insert((ty, *c));
            Ok(())
        } else if lenient {
            out.missing.push((ty, *c, commit));
            Ok(())
        } else {
            Err(Error::ObjectMissing { ty, csum: *c })
        }
    }
}
