//! The `/etc` three-way merge (spec §8.3, `merge_configuration_from`): O = the old
//! deployment's defaults (`usr/etc`), M = its live `etc`, N = the new deployment's `etc`
//! (a fresh copy of the new defaults). What the admin changed between O and M is replayed
//! onto N: deletions delete, modifications and additions overwrite. Xattrs are ignored when
//! comparing, as ostree does.
//!
//! N comes from the new commit, so it is not trusted to be well-formed: nothing is written
//! through a symlink of N (a change under `/etc/sub` when the new `/etc/sub` is a link to
//! `/` or anywhere else is refused, not followed), and file contents are compared by their
//! SHA-256, streamed, not read into memory.

use crate::error::{Error, IoContext, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A regular file, by the SHA-256 of its content.
    File([u8; 32]),
    Link(std::path::PathBuf),
    Dir,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn scan(root: &Path, rel: &Path, out: &mut BTreeMap<std::path::PathBuf, Node>) -> Result<()> {
    crate::stack::check(|| root.join(rel).display().to_string())?;
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).ctx("read directory", &dir)? {
        let e = e.ctx("read directory", &dir)?;
        let p = e.path();
        let r = rel.join(e.file_name());
        let m = std::fs::symlink_metadata(&p).ctx("stat", &p)?;
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Link(std::fs::read_link(&p).ctx("readlink", &p)?)
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(digest(&p)?)
        } else {
            Kind::Other
        };
        let is_dir = kind == Kind::Dir;
        out.insert(
            r.clone(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
            },
        );
        if is_dir {
            scan(root, &r, out)?;
        }
    }
    Ok(())
}

/// The SHA-256 of the regular file `p` (opened without following a symlink), streamed.
fn digest(p: &Path) -> Result<[u8; 32]> {
    use sha2::Digest;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .ctx("open", p)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).ctx("read", p)?;
    Ok(h.finalize().into())
}

/// The first directory on the way to `root/rel` (below `root`) that is not a real
/// directory (a symbolic link or a file), if any: writing or deleting through a symlink of
/// the new tree could reach any file of the host.
fn blocked_ancestor(root: &Path, rel: &Path) -> Option<std::path::PathBuf> {
    let mut cur = std::path::PathBuf::new();
    for c in rel.parent()?.components() {
        cur.push(c);
        match std::fs::symlink_metadata(root.join(&cur)) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Some(cur),
            // Missing: created as a real directory on the way.
            Err(_) => return None,
        }
    }
    None
}

/// Copy `src` to `dst` (which must not exist) preserving type, mode, ownership and xattrs.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    crate::stack::check(|| src.display().to_string())?;
    let m = std::fs::symlink_metadata(src).ctx("stat", src)?;
    let ft = m.file_type();
    if ft.is_symlink() {
        let t = std::fs::read_link(src).ctx("readlink", src)?;
        std::os::unix::fs::symlink(&t, dst).ctx("symlink", dst)?;
        std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).ctx("chown", dst)?;
        return Ok(());
    }
    if ft.is_dir() {
        match std::fs::create_dir(dst) {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::symlink_metadata(dst).is_ok_and(|m| m.is_dir()) => {}
            Err(e) => return Err(e).ctx("create directory", dst),
        }
        for e in std::fs::read_dir(src).ctx("read directory", src)? {
            let e = e.ctx("read directory", src)?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else if ft.is_file() {
        std::fs::copy(src, dst).ctx("copy to", dst)?;
    } else {
        return Ok(()); // sockets and FIFOs are skipped, as ostree does
    }
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).ctx("chown", dst)?;
    for (k, v) in crate::fsutil::read_xattrs(src)? {
        crate::fsutil::lset_xattr(dst, &k, &v)?;
    }
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
        .ctx("chmod", dst)
}

fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).ctx("remove", p),
        Ok(_) => std::fs::remove_file(p).ctx("remove", p),
        Err(_) => Ok(()),
    }
}

/// Replay the changes from `old_defaults` to `old_etc` onto `new_etc`.
pub fn merge(old_defaults: &Path, old_etc: &Path, new_etc: &Path) -> Result<()> {
    let (mut o, mut m) = (BTreeMap::new(), BTreeMap::new());
    scan(old_defaults, Path::new(""), &mut o)?;
    scan(old_etc, Path::new(""), &mut m)?;
    // Removed: in O, not in M. Deleting a directory covers its children.
    let mut removed: Vec<&std::path::PathBuf> = o.keys().filter(|k| !m.contains_key(*k)).collect();
    removed.sort();
    let mut last: Option<&std::path::PathBuf> = None;
    for r in removed {
        if last.is_some_and(|l| r.starts_with(l)) {
            continue;
        }
        // Under a link of the new tree the path is not in its /etc: nothing to delete.
        if blocked_ancestor(new_etc, r).is_none() {
            remove_any(&new_etc.join(r))?;
        }
        last = Some(r);
    }
    // Added or modified: copied from M over N (M wins), parents first.
    let mut done_dirs: Vec<std::path::PathBuf> = Vec::new();
    for (path, node) in &m {
        if done_dirs.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        let changed = match o.get(path) {
            None => true,
            Some(prev) => prev != node,
        };
        if !changed {
            continue;
        }
        if node.kind == Kind::Other {
            continue; // sockets/FIFOs: skipped
        }
        let src = old_etc.join(path);
        let dst = new_etc.join(path);
        if let Some(a) = blocked_ancestor(new_etc, path) {
            return Err(Error::Other(format!(
                "cannot merge /etc/{}: /etc/{} is not a directory in the new deployment (a symbolic link or a file); move your /etc/{} aside and deploy again",
                path.display(),
                a.display(),
                path.display()
            )));
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        let dst_meta = std::fs::symlink_metadata(&dst).ok();
        if node.kind == Kind::Dir {
            match dst_meta {
                Some(dm) if dm.is_dir() => {
                    // A directory whose own attributes changed: apply them, children follow.
                    std::os::unix::fs::lchown(&dst, Some(node.uid), Some(node.gid))
                        .ctx("chown", &dst)?;
                    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(node.mode))
                        .ctx("chmod", &dst)?;
                }
                Some(_) => {
                    remove_any(&dst)?;
                    copy_tree(&src, &dst)?;
                    done_dirs.push(path.clone());
                }
                None => {
                    copy_tree(&src, &dst)?;
                    done_dirs.push(path.clone());
                }
            }
            continue;
        }
        if dst_meta.as_ref().is_some_and(|d| d.is_dir()) {
            return Err(Error::Other(format!(
                "Modified config file newly defaults to directory: {}; cannot merge (move your /etc/{} aside and deploy again)",
                path.display(),
                path.display()
            )));
        }
        remove_any(&dst)?;
        copy_tree(&src, &dst)?;
    }
    Ok(())
}
