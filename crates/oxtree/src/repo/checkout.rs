//! Checkout (`ostree checkout`): materialise a commit's tree. Files are hardlinked to their
//! objects where the object on disk is exactly what the checkout needs (bare in system
//! mode, bare-user in user mode, bare-user-only), and otherwise copied (archive objects are
//! inflated). Directories are created first, files in parallel, then directory modes are
//! applied bottom-up so read-only directories can still be filled.

use super::{Repo, RepoMode};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, DirMeta, FileHeader, ObjectType};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Default)]
pub struct CheckoutOptions {
    /// `-U`: do not change ownership or set xattrs; strip setuid/setgid.
    pub user_mode: bool,
    /// `--union`: overwrite existing files in the destination.
    pub union: bool,
    /// Check out only this path inside the commit.
    pub subpath: Option<String>,
    /// Fail instead of copying when a file cannot be hardlinked.
    pub require_hardlinks: bool,
    /// Never hardlink.
    pub force_copy: bool,
    /// Updated per file checked out (total grows as directories are read).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

/// What a path inside a commit names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEntry {
    File(Checksum),
    Dir { tree: Checksum, meta: Checksum },
}

impl Repo {
    /// Find `path` (components separated by `/`) inside a commit's tree.
    pub fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<PathEntry> {
        let c = self.load_commit(commit)?;
        let (mut tree, mut meta) = (c.root_tree, c.root_meta);
        let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (i, comp) in comps.iter().enumerate() {
            let dt = self.load_dirtree(&tree)?;
            if let Some((_, t, m)) = dt.dirs.iter().find(|d| d.0 == *comp) {
                (tree, meta) = (*t, *m);
            } else if let Some((_, f)) = dt.files.iter().find(|f| f.0 == *comp) {
                if i + 1 != comps.len() {
                    return Err(Error::InvalidArgument(format!(
                        "{path}: {comp} is not a directory in commit {commit}"
                    )));
                }
                return Ok(PathEntry::File(*f));
            } else {
                return Err(Error::NotFound(format!(
                    "No such file or directory: {path}"
                )));
            }
        }
        Ok(PathEntry::Dir { tree, meta })
    }

    /// Check out `commit` (a resolved checksum) into `dest`.
    pub fn checkout(&self, commit: &Checksum, dest: &Path, opts: &CheckoutOptions) -> Result<()> {
        let (tree, meta) = match self.lookup_path(commit, opts.subpath.as_deref().unwrap_or("/"))? {
            // Like ostree, a file subpath lands inside the destination directory.
            PathEntry::File(f) => {
                let sub = opts.subpath.as_deref().unwrap_or_default();
                let name = sub.rsplit('/').find(|c| !c.is_empty()).unwrap_or(sub);
                if !dest.is_dir() {
                    std::fs::create_dir(dest).ctx("create directory", dest)?;
                }
                return self.checkout_file(&f, &dest.join(name), opts);
            }
            PathEntry::Dir { tree, meta } => (tree, meta),
        };
        let cache = Mutex::new(HashMap::new());
        self.checkout_dir(&tree, &meta, dest, opts, &cache, true)
    }

    /// Check out one directory: create it (owner-only while it is filled), its files and
    /// subdirectories in parallel, then its final metadata, so metadata lands bottom-up.
    fn checkout_dir(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
        cache: &Mutex<HashMap<Checksum, DirMeta>>,
        top: bool,
    ) -> Result<()> {
        let dt = self.load_dirtree(tree)?;
        if let Some(p) = &opts.progress {
            p.add_total(dt.files.len() as u64);
        }
        let cached = cache.lock().ok().and_then(|c| c.get(meta).cloned());
        let dm = match cached {
            Some(dm) => dm,
            None => {
                let dm = self.load_dirmeta(meta)?;
                if let Ok(mut c) = cache.lock() {
                    c.insert(*meta, dm.clone());
                }
                dm
            }
        };
        match std::fs::DirBuilder::new().mode(0o700).create(dest) {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && (opts.union || top && is_empty_dir(dest)) =>
            {
                if !dest.is_dir() {
                    return Err(Error::InvalidArgument(format!(
                        "{}: exists and is not a directory",
                        dest.display()
                    )));
                }
                std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))
                    .ctx("chmod", dest)?;
            }
            Err(e) => return Err(e).ctx("create directory", dest),
        }
        let (files, dirs) = rayon::join(
            || {
                dt.files.par_iter().try_for_each(|(name, c)| {
                    let r = self.checkout_file(c, &dest.join(name), opts);
                    if let Some(p) = &opts.progress {
                        p.item(0);
                    }
                    r
                })
            },
            || {
                dt.dirs.par_iter().try_for_each(|(name, t, m)| {
                    self.checkout_dir(t, m, &dest.join(name), opts, cache, false)
                })
            },
        );
        files?;
        dirs?;
        // Below the top, every directory is new and was created 0700 inside a 0700 parent
        // (no setgid inheritance), so it is owned by our euid/egid.
        self.apply_dirmeta(dest, &dm, opts, top)
    }

    fn apply_dirmeta(
        &self,
        path: &Path,
        dm: &DirMeta,
        opts: &CheckoutOptions,
        force_chown: bool,
    ) -> Result<()> {
        let mut mode = dm.mode & 0o7777;
        if opts.user_mode {
            mode &= !0o6000;
        } else {
            // Skip the syscall when the directory already has the right owner (the usual case).
            let euid = rustix::process::geteuid().as_raw();
            let egid = rustix::process::getegid().as_raw();
            if force_chown || opts.union || dm.uid != euid || dm.gid != egid {
                std::os::unix::fs::lchown(path, Some(dm.uid), Some(dm.gid)).ctx("chown", path)?;
            }
            for (k, v) in &dm.xattrs {
                crate::fsutil::lset_xattr(path, k, v)?;
            }
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ctx("chmod", path)
    }

    /// Whether objects of this repo are already in the form this checkout needs.
    fn can_hardlink(&self, opts: &CheckoutOptions) -> bool {
        !opts.force_copy
            && match self.mode() {
                RepoMode::Archive => false,
                RepoMode::Bare => !opts.user_mode,
                // bare-user objects hold ownership in xattrs and symlinks as files: only a
                // user-mode checkout of a regular file can use them as they are.
                RepoMode::BareUser => opts.user_mode,
                RepoMode::BareUserOnly => true,
            }
    }

    fn try_hardlink(
        &self,
        obj: &Path,
        csum: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
    ) -> Result<bool> {
        match std::fs::hard_link(obj, dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !obj.exists() => {
                Err(Error::ObjectMissing {
                    ty: ObjectType::File,
                    csum: *csum,
                })
            }
            Err(e) if opts.require_hardlinks => Err(e).ctx("hardlink (--require-hardlinks)", dest),
            Err(_) => Ok(false), // e.g. EXDEV or EMLINK: copy instead
        }
    }

    fn checkout_file(&self, csum: &Checksum, dest: &Path, opts: &CheckoutOptions) -> Result<()> {
        if opts.union {
            match std::fs::symlink_metadata(dest) {
                Ok(m) if m.is_dir() => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: is a directory in the destination, a file in the commit",
                        dest.display()
                    )))
                }
                Ok(_) => std::fs::remove_file(dest).ctx("remove", dest)?,
                Err(_) => {}
            }
        }
        let obj = self.object_path(ObjectType::File, csum);
        // A user-mode checkout never shares a setuid/setgid inode: bare-user-only repos
        // refuse such objects now, but one written by an older version (or by hand) must
        // not become a setuid file in the user's tree. It is copied, without those bits.
        let setid = opts.user_mode
            && self.mode() == RepoMode::BareUserOnly
            && std::fs::symlink_metadata(&obj).is_ok_and(|m| m.is_file() && m.mode() & 0o6000 != 0);
        let link = self.can_hardlink(opts) && !setid;
        if link && self.mode() != RepoMode::BareUser && self.try_hardlink(&obj, csum, dest, opts)? {
            return Ok(());
        }
        let mut fc = self.read_file(csum)?;
        if fc.header.is_regular() {
            if link
                && self.mode() == RepoMode::BareUser
                && self.try_hardlink(&obj, csum, dest, opts)?
            {
                return Ok(());
            }
            if opts.require_hardlinks && setid {
                return Err(Error::InvalidArgument(format!(
                    "{}: object {csum} is setuid/setgid, which a user-mode checkout does not hardlink (--require-hardlinks)",
                    dest.display()
                )));
            }
            if opts.require_hardlinks && !link {
                return Err(Error::InvalidArgument(format!(
                    "{}: cannot hardlink from a {} repository in this checkout mode (--require-hardlinks)",
                    dest.display(),
                    self.mode()
                )));
            }
        }
        write_file_copy(&mut fc, dest, opts)
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

fn write_file_copy(fc: &mut super::FileContent, dest: &Path, opts: &CheckoutOptions) -> Result<()> {
    let h: &FileHeader = &fc.header;
    if h.is_symlink() {
        std::os::unix::fs::symlink(&h.symlink_target, dest).ctx("symlink", dest)?;
        if !opts.user_mode {
            std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid)).ctx("chown", dest)?;
            for (k, v) in &h.xattrs {
                crate::fsutil::lset_xattr(dest, k, v)?;
            }
        }
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(dest)
        .ctx("create", dest)?;
    {
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, &mut f);
        std::io::copy(&mut fc.payload, &mut w).map_err(|e| Error::Io {
            op: "copy object content to",
            path: dest.to_path_buf(),
            source: e,
        })?;
        w.flush().ctx("write", dest)?;
    }
    let mut mode = h.mode & 0o7777;
    if opts.user_mode {
        mode &= !0o6000;
    } else {
        rustix::fs::fchown(
            &f,
            Some(rustix::fs::Uid::from_raw(h.uid)),
            Some(rustix::fs::Gid::from_raw(h.gid)),
        )
        .ctx("chown", dest)?;
        for (k, v) in &h.xattrs {
            crate::fsutil::fset_xattr(&f, k, v, dest)?;
        }
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .ctx("chmod", dest)?;
    let zero = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    rustix::fs::futimens(&f, &zero).ctx("set times of", dest)?;
    Ok(())
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}
