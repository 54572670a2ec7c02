//! Refs: `refs/heads/NAME` and `refs/remotes/REMOTE/NAME` files holding a hex checksum, written
//! atomically; `REF^` parent syntax and `REMOTE:REF` refspecs as in `ostree rev-parse`.

use super::Repo;
use crate::error::{Error, IoContext, Result};
use crate::object::{validate_ref, validate_remote_name, Checksum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A ref, local (`remote == None`) or remote-tracking.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName {
    pub remote: Option<String>,
    pub name: String,
}

impl RefName {
    /// Parse `[REMOTE:]REF`.
    pub fn parse(refspec: &str) -> Result<RefName> {
        let (remote, name) = match refspec.split_once(':') {
            Some((r, n)) => {
                validate_remote_name(r).map_err(Error::InvalidArgument)?;
                (Some(r.to_string()), n)
            }
            None => (None, refspec),
        };
        validate_ref(name).map_err(Error::InvalidArgument)?;
        Ok(RefName {
            remote,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for RefName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.remote {
            Some(r) => write!(f, "{r}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Repo {
    fn ref_path(&self, r: &RefName) -> PathBuf {
        match &r.remote {
            Some(rem) => self.path.join("refs/remotes").join(rem).join(&r.name),
            None => self.path.join("refs/heads").join(&r.name),
        }
    }

    /// The checksum a ref points to, or `None` if the ref does not exist.
    pub fn read_ref(&self, r: &RefName) -> Result<Option<Checksum>> {
        let p = self.ref_path(r);
        match std::fs::read_to_string(&p) {
            Ok(s) => s.trim().parse().map(Some).map_err(|_| Error::Config {
                path: p,
                msg: "ref file does not hold a checksum".into(),
            }),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::EISDIR)
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).ctx("read", p),
        }
    }

    /// Point a ref at `target`, or delete it with `None`. Atomic: tmp, fsync, rename, fsync
    /// of the directory (and of the parents of directories it had to create); a deletion
    /// fsyncs the directory too, so a deleted ref does not come back after a crash.
    pub fn set_ref(&self, r: &RefName, target: Option<&Checksum>) -> Result<()> {
        validate_ref(&r.name).map_err(Error::InvalidArgument)?;
        let p = self.ref_path(r);
        let parent = p.parent().unwrap_or(&self.path);
        match target {
            Some(c) => {
                if !parent.is_dir() {
                    std::fs::create_dir_all(parent).ctx("create directory", parent)?;
                    if self.fsync {
                        let refs = self.path.join("refs");
                        let mut d = parent.parent();
                        while let Some(dir) = d.filter(|d| d.starts_with(&refs)) {
                            crate::fsutil::fsync_dir(dir)?;
                            d = dir.parent();
                        }
                    }
                }
                crate::fsutil::write_atomic(&p, format!("{c}\n").as_bytes(), self.fsync)
            }
            None => match std::fs::remove_file(&p) {
                Ok(()) if self.fsync => crate::fsutil::fsync_dir(parent),
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(Error::RefNotFound(r.to_string()))
                }
                Err(e) => Err(e).ctx("remove", p),
            },
        }
    }

    /// All refs: local heads and remote-tracking refs, sorted.
    pub fn list_refs(&self) -> Result<BTreeMap<RefName, Checksum>> {
        let mut out = BTreeMap::new();
        let heads = self.path.join("refs/heads");
        walk_refs(&heads, &heads, &mut |name, c| {
            out.insert(RefName { remote: None, name }, c);
        })?;
        let remotes = self.path.join("refs/remotes");
        if remotes.is_dir() {
            for e in std::fs::read_dir(&remotes).ctx("read directory", &remotes)? {
                let e = e.ctx("read directory", &remotes)?;
                let remote = e.file_name().to_string_lossy().into_owned();
                let base = e.path();
                if base.is_dir() && validate_remote_name(&remote).is_ok() {
                    walk_refs(&base, &base, &mut |name, c| {
                        out.insert(
                            RefName {
                                remote: Some(remote.clone()),
                                name,
                            },
                            c,
                        );
                    })?;
                }
            }
        }
        Ok(out)
    }

    /// Resolve a revision: a checksum, `[REMOTE:]REF`, each with optional `^` suffixes.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum> {
        let base = rev.trim_end_matches('^');
        let parents = rev.len() - base.len();
        let mut c = if let Ok(c) = base.parse::<Checksum>() {
            c
        } else {
            let r = RefName::parse(base)?;
            match self.read_ref(&r)? {
                Some(c) => c,
                // Like ostree, a bare ref name also matches a remote-tracking ref REMOTE/REF.
                None if r.remote.is_none() => match r.name.split_once('/') {
                    Some((rem, n)) if validate_ref(n).is_ok() => self
                        .read_ref(&RefName {
                            remote: Some(rem.to_string()),
                            name: n.to_string(),
                        })?
                        .ok_or_else(|| Error::RefNotFound(rev.to_string()))?,
                    _ => return Err(Error::RefNotFound(rev.to_string())),
                },
                None => return Err(Error::RefNotFound(rev.to_string())),
            }
        };
        for _ in 0..parents {
            c = self
                .load_commit(&c)?
                .parent
                .ok_or_else(|| Error::NotFound(format!("Commit {c} has no parent")))?;
        }
        Ok(c)
    }
}

/// Every ref file under `dir`, named relative to `base`. Names that are not valid refs are
/// skipped, as ostree skips them: among them the `.tmp-XXXXXX` files `write_atomic` leaves
/// beside a ref when killed mid-write, which hold a full checksum but must never be listed,
/// pin objects in prune, or be published in a summary (which every client would reject).
fn walk_refs(base: &Path, dir: &Path, f: &mut dyn FnMut(String, Checksum)) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    for e in rd {
        let e = e.ctx("read directory", dir)?;
        let p = e.path();
        let ft = e.file_type().ctx("stat", &p)?;
        if ft.is_dir() {
            walk_refs(base, &p, f)?;
        } else {
            let Some(name) = p
                .strip_prefix(base)
                .ok()
                .and_then(|rel| rel.to_str())
                .filter(|n| validate_ref(n).is_ok())
            else {
                continue;
            };
            if let Ok(Ok(c)) = std::fs::read_to_string(&p).map(|s| s.trim().parse::<Checksum>()) {
                f(name.to_string(), c);
            }
        }
    }
    Ok(())
}
