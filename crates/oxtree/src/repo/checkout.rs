//! Checkout (`ostree checkout`): materialise a commit's tree. Files are hardlinked to their
//! objects where the object on disk is exactly what the checkout needs (bare in system
//! mode, bare-user in user mode, bare-user-only), and otherwise copied (archive objects are
//! inflated). Directories are created first, files in parallel, then directory modes are
//! applied bottom-up so read-only directories can still be filled; a directory this
//! checkout created gets mtime 0, as ostree gives it (except with `force_copy`), and one
//! that was already there (the union modes) is left as it is.
//!
//! Layering, as ostree does it: `Union` overwrites files, `UnionAdd` keeps what exists,
//! `UnionIdentical` accepts an existing file only if it is the same (the same inode as the
//! object, or the same content and mode). With `whiteouts`, `.wh.NAME` entries delete NAME
//! from the destination and `.wh..wh..opq` empties the directory first (Docker/OCI layers);
//! with `passthrough_whiteouts`, `.ostree-wh.NAME` becomes the overlayfs whiteout NAME (a
//! character device 0:0).

use super::{Repo, RepoMode};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, DirMeta, FileHeader, ObjectType};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What to do with files and directories already in the destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// The destination must not exist (an empty top directory is accepted).
    #[default]
    None,
    /// `--union`: keep existing directories, overwrite existing files.
    Union,
    /// `--union-add`: keep existing files and directories, only add new ones.
    UnionAdd,
    /// `--union-identical`: add new files; an existing file must be identical.
    UnionIdentical,
}

#[derive(Debug, Clone, Default)]
pub struct CheckoutOptions {
    /// `-U`: do not change ownership or set xattrs; strip setuid/setgid.
    pub user_mode: bool,
    /// How existing destination content is treated.
    pub overwrite: Overwrite,
    /// Check out only this path inside the commit.
    pub subpath: Option<String>,
    /// Fail instead of copying when a file cannot be hardlinked.
    pub require_hardlinks: bool,
    /// Never hardlink.
    pub force_copy: bool,
    /// Copy empty regular files instead of hardlinking them (`-z`).
    pub force_copy_zerosized: bool,
    /// Process `.wh.` whiteout entries (`--whiteouts`).
    pub whiteouts: bool,
    /// `.ostree-wh.NAME` becomes a 0:0 character device NAME (`--process-passthrough-whiteouts`).
    pub passthrough_whiteouts: bool,
    /// Directory modes masked with 0775 (`-M`).
    pub bareuseronly_dirs: bool,
    /// A user-mode checkout of an archive repository keeps each file it uncompresses in
    /// `uncompressed-objects-cache/` and hard-links it from there (ostree's cache: the
    /// next checkout of the same file is a link). Off with `checkout --disable-cache` or
    /// `core.enable-uncompressed-cache=false`.
    pub uncompressed_cache: bool,
    /// Paths to leave out, relative to the checked-out root: files as `/a/b`, directories
    /// with a trailing slash (`/a/`), as ostree's `--skip-list` matches them.
    pub skip_list: HashSet<String>,
    /// Updated per file checked out (total grows as directories are read).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const PASSTHROUGH_PREFIX: &str = ".ostree-wh.";

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
                    // (ostree's words, as GIO says them.)
                    return Err(Error::InvalidArgument("Not a directory".into()));
                }
                return Ok(PathEntry::File(*f));
            } else {
                // ostree names the first component that is not there, from the root.
                return Err(Error::NotFound(format!(
                    "No such file or directory: /{}",
                    comps[..=i].join("/")
                )));
            }
        }
        Ok(PathEntry::Dir { tree, meta })
    }

    /// Check out `commit` (a resolved checksum) into `dest`.
    pub fn checkout(&self, commit: &Checksum, dest: &Path, opts: &CheckoutOptions) -> Result<()> {
        // A bare-user-only repository's content is a user's, not root's: as ostree, it is
        // checked out in user mode with directory modes masked to 0775 (no setuid, setgid,
        // sticky or world-writable directory; no owner or xattr from its dirmeta).
        let masked;
        let opts = if self.mode() == RepoMode::BareUserOnly
            && !(opts.user_mode && opts.bareuseronly_dirs)
        {
            masked = CheckoutOptions {
                user_mode: true,
                bareuseronly_dirs: true,
                ..opts.clone()
            };
            &masked
        } else {
            opts
        };
        if opts.require_hardlinks {
            // ostree's refusals, before anything is written, in its order. Hard links
            // cannot cross file systems: the directory the checkout lands in must be on
            // the repository's.
            let landing = dest
                .ancestors()
                .map(|p| match p.as_os_str().is_empty() {
                    true => Path::new("."),
                    false => p,
                })
                .find(|p| p.is_dir())
                .unwrap_or(Path::new("."));
            let objects = self.path.join("objects");
            let src = std::fs::metadata(&objects).ctx("stat", &objects)?.dev();
            let to = std::fs::metadata(landing).ctx("stat", landing)?.dev();
            if src != to {
                return Err(Error::InvalidArgument(format!(
                    "Unable to do hardlink checkout across devices (src={src} destination={to})"
                )));
            }
            match self.mode() {
                RepoMode::BareUser if !opts.user_mode => {
                    return Err(Error::InvalidArgument(
                        "User repository mode requires user checkout mode to hardlink".into(),
                    ))
                }
                RepoMode::Archive => {
                    return Err(Error::InvalidArgument(
                        "Bare repository mode cannot hardlink in user checkout mode".into(),
                    ))
                }
                RepoMode::Bare if opts.user_mode => {
                    return Err(Error::InvalidArgument(
                        "Bare repository mode cannot hardlink in user checkout mode".into(),
                    ))
                }
                _ => {}
            }
        }
        let sub = opts.subpath.as_deref().unwrap_or("/");
        // ostree resolves the subpath as a file path: a trailing slash names nothing.
        if sub.len() > 1 && sub.ends_with('/') {
            return Err(Error::NotFound(format!("No such file or directory: {sub}")));
        }
        let (tree, meta) = match self.lookup_path(commit, sub)? {
            // Like ostree, a file subpath lands inside the destination directory.
            PathEntry::File(f) => {
                let name = sub.rsplit('/').find(|c| !c.is_empty()).unwrap_or(sub);
                if !dest.is_dir() {
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(dest)
                        .ctx("create directory", dest)?;
                }
                if opts.skip_list.contains(&format!("/{name}")) {
                    return Ok(());
                }
                return self.checkout_entry(&f, &dest.join(name), opts, None);
            }
            PathEntry::Dir { tree, meta } => (tree, meta),
        };
        let ctx = Ctx {
            dirmeta: Mutex::new(HashMap::new()),
            objects: self
                .can_hardlink(opts)
                .then(|| open_dir_path(&self.path.join("objects")))
                .flatten(),
            umask: crate::fsutil::process_umask(),
            direct_umask: std::sync::OnceLock::new(),
        };
        self.checkout_dir(&tree, &meta, dest, "/", opts, &ctx, true, None)
    }

    /// Check out one directory (`rel`: its path from the checkout root, with a trailing
    /// slash, as the skip list names directories): create it (owner-only while it is
    /// filled), its files and subdirectories in parallel, then its final metadata, so
    /// metadata lands bottom-up.
    #[allow(clippy::too_many_arguments)]
    fn checkout_dir(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        dest: &Path,
        rel: &str,
        opts: &CheckoutOptions,
        ctx: &Ctx,
        top: bool,
        parent: Option<(BorrowedFd<'_>, &str)>,
    ) -> Result<()> {
        crate::stack::check(|| dest.display().to_string())?;
        let dt = match &ctx.objects {
            Some(o) => self.load_dirtree_at(o.as_fd(), tree)?,
            None => self.load_dirtree(tree)?,
        };
        if let Some(p) = &opts.progress {
            p.add_total(dt.files.len() as u64);
        }
        let cached = ctx.dirmeta.lock().ok().and_then(|c| c.get(meta).cloned());
        let dm = match cached {
            Some(dm) => dm,
            None => {
                let dm = self.load_dirmeta(meta)?;
                if let Ok(mut c) = ctx.dirmeta.lock() {
                    c.insert(*meta, dm.clone());
                }
                dm
            }
        };
        let union = opts.overwrite != Overwrite::None;
        // An opaque whiteout replaces the directory: what was there goes, and the
        // directory is made anew (so it gets its metadata, as in ostree).
        if opts.whiteouts && union && dt.files.iter().any(|(n, _)| n == OPAQUE_WHITEOUT) {
            remove_all(dest)?;
        }
        // Below the top, a symlink where the tree has a directory is never followed (a
        // union checkout would otherwise write through a link an earlier commit planted, to
        // anywhere: security review L1). --union replaces it with the directory; the other
        // union modes refuse, as for any non-directory in the way.
        if union && !top {
            if let Ok(m) = std::fs::symlink_metadata(dest) {
                if m.file_type().is_symlink() && opts.overwrite == Overwrite::Union {
                    std::fs::remove_file(dest).ctx("remove", dest)?;
                } else if m.file_type().is_symlink() {
                    let name = dest.file_name().unwrap_or_default().to_string_lossy();
                    return Err(Error::InvalidArgument(format!(
                        "opendir({name}): Not a directory (a symbolic link is in the way; oxtree does not check out through it)"
                    )));
                }
            }
        }
        // A new directory inside one this checkout made is made, opened and given its
        // metadata relative to its parent's descriptor (one name to look up, not the path).
        let parent = parent.filter(|_| !union && !top);
        // The mode the directory is made with: its final one when nothing is left for
        // apply_dirmeta to change but the time, else owner-only while it is filled.
        let direct = parent
            .and(ctx.direct_umask.get())
            .and_then(|&u| direct_mode(&dm, opts, u));
        let made = match parent {
            Some((pfd, name)) => {
                let mode = direct.unwrap_or(0o700);
                rustix::fs::mkdirat(pfd, name, rustix::fs::Mode::from_raw_mode(mode))
                    .map_err(std::io::Error::from)
            }
            None => std::fs::DirBuilder::new().mode(0o700).create(dest),
        };
        let existed = match made {
            Ok(()) => false,
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && (union || top && is_empty_dir(dest)) =>
            {
                if !dest.is_dir() {
                    let name = dest.file_name().unwrap_or_default().to_string_lossy();
                    return Err(Error::InvalidArgument(format!(
                        "opendir({name}): Not a directory"
                    )));
                }
                if !union {
                    // An empty top directory is filled as if it were new.
                    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))
                        .ctx("chmod", dest)?;
                }
                union
            }
            Err(e) => return Err(e).ctx("create directory", dest),
        };
        if top && !existed {
            // (A default ACL, which subdirectories inherit, would decide their modes
            // instead of the umask: then every directory is chmod-ed, as before.)
            let acl = rustix::fs::getxattr(dest, "system.posix_acl_default", &mut [0u8; 0][..]);
            let no_acl = matches!(
                acl,
                Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP)
            );
            if let (Some(u), Ok(m), true) = (ctx.umask, std::fs::symlink_metadata(dest), no_acl) {
                if m.mode() & 0o2000 == 0 {
                    let _ = ctx.direct_umask.set(u);
                }
            }
        }
        // Files are linked relative to an open directory (a lookup of a name or two, not of
        // the whole path, per file): this one's own `O_PATH` descriptor, or for a small
        // directory near one that has a descriptor, that one and the path from there (an
        // open and a close saved per directory; v1 has 784, most of them small). Only
        // when this checkout links, and only in directories it created: inside the top
        // directory, owner-only until the end, so no one else can change the path.
        let own_fd = match (&ctx.objects, parent) {
            (Some(_), Some((pfd, name))) if !existed && needs_own_fd(name, &dt) => {
                Some(open_dir_at(pfd, name))
            }
            (Some(_), Some(_)) if !existed => None,
            (Some(_), None) if !existed => Some(open_dir_path(dest)),
            _ => Some(None),
        };
        // (descriptor, path from it to this directory, None for the directory itself)
        let base: Option<(BorrowedFd<'_>, Option<&str>)> = match (&own_fd, parent) {
            (Some(Some(fd)), _) => Some((fd.as_fd(), None)),
            (None, Some((pfd, name))) => Some((pfd, Some(name))),
            _ => None,
        };
        // Deep in a tree, what is below this directory is named from a descriptor of it
        // (`/proc/self/fd/N/…`): the whole path would pass PATH_MAX, which ostree, walking by
        // descriptor, checks out (a commit made of such a tree must check out too).
        let alias = if dest.as_os_str().len() >= crate::fsutil::ALIAS_PATH_AT {
            let fd = rustix::fs::open(
                dest,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ctx("open", dest)?;
            let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            Some((fd, p))
        } else {
            None
        };
        let below: &Path = alias.as_ref().map_or(dest, |(_, p)| p);
        if opts.whiteouts {
            for (name, _) in &dt.files {
                if name == OPAQUE_WHITEOUT {
                    continue;
                }
                if let Some(victim) = whiteout_target(name, WHITEOUT_PREFIX) {
                    remove_all(&below.join(victim))?;
                }
            }
        }
        let (files, dirs) = rayon::join(
            || {
                dt.files.par_iter().try_for_each(|(name, c)| {
                    // (No key is formatted when there is no skip list.)
                    let skipped = !opts.skip_list.is_empty()
                        && opts.skip_list.contains(&format!("{rel}{name}"));
                    let r = if skipped || opts.whiteouts && name.starts_with(WHITEOUT_PREFIX) {
                        Ok(())
                    } else if let Some(target) = opts
                        .passthrough_whiteouts
                        .then(|| whiteout_target(name, PASSTHROUGH_PREFIX))
                        .flatten()
                    {
                        self.make_whiteout(c, &below.join(target), opts)
                    } else {
                        let path = base.and_then(|(_, p)| p).map(|p| format!("{p}/{name}"));
                        let at = ctx.objects.as_ref().zip(base).map(|(o, (d, _))| At {
                            objects: o.as_fd(),
                            dir: d,
                            name: path.as_deref().unwrap_or(name),
                        });
                        self.checkout_entry(c, &below.join(name), opts, at)
                    };
                    if let Some(p) = &opts.progress {
                        p.item(0);
                    }
                    r
                })
            },
            || {
                dt.dirs.par_iter().try_for_each(|(name, t, m)| {
                    let sub = format!("{rel}{name}/");
                    if opts.skip_list.contains(&sub) {
                        return Ok(());
                    }
                    let path = base.and_then(|(_, p)| p).map(|p| format!("{p}/{name}"));
                    let at = base.map(|(d, _)| (d, path.as_deref().unwrap_or(name)));
                    self.checkout_dir(t, m, &below.join(name), &sub, opts, ctx, false, at)
                })
            },
        );
        files?;
        dirs?;
        if existed {
            // ostree leaves a directory that was already there as it is.
            return Ok(());
        }
        // Below the top, every directory is new and was created 0700 inside a 0700 parent
        // (no setgid inheritance), so it is owned by our euid/egid; or it was made with its
        // final mode (`direct`) in a parent without setgid, and only its time is left.
        self.apply_dirmeta(dest, &dm, opts, top, parent, direct.is_some())
    }

    fn apply_dirmeta(
        &self,
        path: &Path,
        dm: &DirMeta,
        opts: &CheckoutOptions,
        force_chown: bool,
        parent: Option<(BorrowedFd<'_>, &str)>,
        moded: bool,
    ) -> Result<()> {
        use rustix::fs::{AtFlags, CWD};
        // The directory as the *at calls name it: relative to its parent, or by path.
        let (dirfd, name): (BorrowedFd<'_>, &Path) = match parent {
            Some((pfd, n)) => (pfd, Path::new(n)),
            None => (CWD, path),
        };
        let mut mode = dm.mode & 0o7777;
        if opts.bareuseronly_dirs {
            mode &= 0o775;
        }
        // (A user-mode checkout keeps a directory's setgid and sticky bits, as ostree's
        // checkout_tree_at does; only files lose setuid/setgid.)
        if !opts.user_mode {
            // Skip the syscall when the directory already has the right owner (the usual case).
            let euid = rustix::process::geteuid().as_raw();
            let egid = rustix::process::getegid().as_raw();
            if force_chown || dm.uid != euid || dm.gid != egid {
                rustix::fs::chownat(
                    dirfd,
                    name,
                    Some(rustix::fs::Uid::from_raw(dm.uid)),
                    Some(rustix::fs::Gid::from_raw(dm.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ctx("chown", path)?;
            }
            for (k, v) in &dm.xattrs {
                crate::fsutil::lset_xattr(path, k, v)?;
            }
        }
        if !moded {
            rustix::fs::chmodat(
                dirfd,
                name,
                rustix::fs::Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .ctx("chmod", path)?;
        }
        if opts.force_copy {
            return Ok(());
        }
        // The same mtime in every checkout (ostree's OSTREE_TIMESTAMP, atime untouched),
        // set last; ostree skips it for --force-copy checkouts, meant to be modified.
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(dirfd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .ctx("set times of", path)
    }

    /// An object's path below `objects/` (`xx/rest.TYPE`), for calls relative to its
    /// descriptor and for ostree's wording.
    fn objects_rel(&self, ty: ObjectType, csum: &Checksum) -> String {
        self.object_path_in("", ty, csum)
    }

    /// A dirtree read relative to `objects/`'s descriptor, without the `statx` that sizes
    /// a whole-file read (dirtrees are small), and without the read that would only find
    /// the end: a read that does not fill the buffer is taken as the whole object, which
    /// its checksum then proves. Any failure (of the read or of the check) takes
    /// `load_dirtree`, which reads the object whole and reports what is wrong.
    fn load_dirtree_at(
        &self,
        objects: BorrowedFd<'_>,
        csum: &Checksum,
    ) -> Result<crate::object::DirTree> {
        let mut b = vec![0u8; 4096];
        let read = rustix::fs::openat(
            objects,
            self.objects_rel(ObjectType::DirTree, csum).as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            let f = std::fs::File::from(fd);
            let mut n = 0;
            loop {
                let r = (&f).read(&mut b[n..])?;
                n += r;
                if r == 0 || n < b.len() {
                    return Ok(n);
                }
                b.resize(b.len() * 2, 0);
            }
        });
        match read.map(|n| super::dirtree_from_bytes(csum, &b[..n])) {
            Ok(Ok(dt)) => Ok(dt),
            _ => self.load_dirtree(csum),
        }
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
        at: Option<(At<'_>, &str)>,
    ) -> Result<bool> {
        let linked = match at {
            Some((at, rel)) => rustix::fs::linkat(
                at.objects,
                rel,
                at.dir,
                at.name,
                rustix::fs::AtFlags::empty(),
            )
            .map_err(std::io::Error::from),
            None => std::fs::hard_link(obj, dest),
        };
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !obj.exists() => {
                Err(Error::ObjectMissing {
                    ty: ObjectType::File,
                    csum: *csum,
                })
            }
            // ostree's wording (the object relative to objects/, the name in its directory).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::InvalidArgument(format!(
                    "Hardlinking {} to {}: File exists",
                    self.objects_rel(ObjectType::File, csum),
                    dest.file_name().unwrap_or_default().to_string_lossy()
                )))
            }
            Err(e) if opts.require_hardlinks => Err(e).ctx("hardlink (--require-hardlinks)", dest),
            Err(_) => Ok(false), // e.g. EXDEV or EMLINK: copy instead
        }
    }

    /// Check out one file entry, treating what is already at `dest` as `opts.overwrite`
    /// says.
    fn checkout_entry(
        &self,
        csum: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
        at: Option<At<'_>>,
    ) -> Result<()> {
        // A plain checkout needs no look at the destination: the link or create fails
        // with EEXIST if something is there (one syscall per file saved).
        let existing = match opts.overwrite {
            Overwrite::None => None,
            _ => std::fs::symlink_metadata(dest).ok(),
        };
        match (opts.overwrite, &existing) {
            (_, None) | (Overwrite::None, _) => {}
            (Overwrite::UnionAdd, Some(_)) => return Ok(()),
            (Overwrite::Union, Some(m)) if m.is_dir() => {
                return Err(Error::InvalidArgument(format!(
                    "{}: is a directory in the destination, a file in the commit",
                    dest.display()
                )))
            }
            (Overwrite::Union, Some(_)) => std::fs::remove_file(dest).ctx("remove", dest)?,
            (Overwrite::UnionIdentical, Some(m)) => {
                return self.check_identical(csum, dest, m, opts);
            }
        }
        self.checkout_file(csum, dest, opts, at)
    }

    /// `--union-identical` with something at `dest`: fine if it is the object itself (a
    /// hardlink to it) or has the same content and mode; else ostree's error.
    fn check_identical(
        &self,
        csum: &Checksum,
        dest: &Path,
        st: &std::fs::Metadata,
        opts: &CheckoutOptions,
    ) -> Result<()> {
        let obj = self.object_path(ObjectType::File, csum);
        if std::fs::symlink_metadata(&obj).is_ok_and(|o| o.dev() == st.dev() && o.ino() == st.ino())
        {
            return Ok(());
        }
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let mut fc = self.read_file(csum)?;
        if fc.header.is_symlink() {
            let same = st.file_type().is_symlink()
                && std::fs::read_link(dest)
                    .is_ok_and(|t| t.as_os_str() == fc.header.symlink_target.as_str());
            return if same {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "Copy checkout of {csum} to {name}: symlinkat: File exists"
                )))
            };
        }
        let mut mode = fc.header.mode & 0o7777;
        if opts.user_mode {
            mode &= !0o6000;
        }
        let same = st.is_file() && st.len() == fc.size && st.mode() & 0o7777 == mode && {
            let mut want = Vec::new();
            let mut have = Vec::new();
            fc.payload.read_to_end(&mut want).is_ok()
                && std::fs::File::open(dest)
                    .and_then(|mut f| f.read_to_end(&mut have))
                    .is_ok()
                && want == have
        };
        if same {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "Hardlinking {} to {name}: File exists",
                self.object_relpath(ObjectType::File, csum)
                    .trim_start_matches("objects/")
            )))
        }
    }

    /// `.ostree-wh.NAME` → the overlayfs whiteout NAME: a 0:0 character device with the
    /// entry's mode (and owner, outside user mode).
    fn make_whiteout(&self, csum: &Checksum, dest: &Path, opts: &CheckoutOptions) -> Result<()> {
        let h = self.read_file(csum)?.header;
        match (opts.overwrite, std::fs::symlink_metadata(dest)) {
            (Overwrite::UnionAdd, Ok(_)) => return Ok(()),
            (Overwrite::Union, Ok(m)) if !m.is_dir() => {
                std::fs::remove_file(dest).ctx("remove", dest)?
            }
            _ => {}
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dest,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(h.mode & 0o7777 & !0o6000),
            rustix::fs::makedev(0, 0),
        )
        .ctx("mknod (overlayfs whiteout)", dest)?;
        // The entry's mode exactly, whatever the umask took from mknod's (as ostree chmods).
        rustix::fs::chmodat(
            rustix::fs::CWD,
            dest,
            rustix::fs::Mode::from_raw_mode(h.mode & 0o7777 & !0o6000),
            rustix::fs::AtFlags::empty(),
        )
        .ctx("chmod", dest)?;
        if !opts.user_mode {
            std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid)).ctx("chown", dest)?;
        }
        Ok(())
    }

    fn checkout_file(
        &self,
        csum: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
        at: Option<At<'_>>,
    ) -> Result<()> {
        // An object only the parent repository (`core.parent`) has is checked out from it,
        // as that repository's mode says (linked, where the modes allow, or copied).
        if let Some(parent) = self.parent() {
            if !self.has_own_object(ObjectType::File, csum)
                && parent.has_object(ObjectType::File, csum)
            {
                return parent.checkout_file(csum, dest, opts, None);
            }
        }
        let obj = self.object_path(ObjectType::File, csum);
        // A user-mode checkout never shares a setuid/setgid inode: bare-user-only repos
        // refuse such objects now, but one written by an older version (or by hand) must
        // not become a setuid file in the user's tree. It is copied, without those bits.
        // Like ostree, a zero-sized regular file is never hardlinked but copied: thousands of
        // paths would share one inode (up to the link limit), and a lock file or log written
        // in place would change the object under every checkout. So an object that could be
        // linked is stat'ed (relative to `objects/` where it is open), as ostree does; a
        // bare-user one needs no stat (below).
        let can_link = self.can_hardlink(opts);
        let bare_user_link = can_link && self.mode() == RepoMode::BareUser;
        // The object's name below `objects/`, for the calls relative to it.
        let rel = at.map(|_| self.objects_rel(ObjectType::File, csum));
        let obj_st = if !bare_user_link && (can_link || opts.force_copy_zerosized) {
            object_stat(&obj, at.zip(rel.as_deref()))
        } else {
            None
        };
        let setid = opts.user_mode
            && self.mode() == RepoMode::BareUserOnly
            && obj_st.is_some_and(|(file, _, mode)| file && mode & 0o6000 != 0);
        let mut zerosized = obj_st.is_some_and(|(file, size, _)| file && size == 0);
        // ostree never hardlinks a symlink of a bare-user-only repo (it makes a new one):
        // only in bare repos are symlink objects linked.
        let user_symlink =
            self.mode() == RepoMode::BareUserOnly && obj_st.is_some_and(|(file, _, _)| !file);
        let mut link = can_link && !setid && !zerosized && !user_symlink;
        if link
            && !bare_user_link
            && self.try_hardlink(&obj, csum, dest, opts, at.zip(rel.as_deref()))?
        {
            return Ok(());
        }
        if bare_user_link {
            // The object's header is in its xattr (a bare-user symlink is a regular file
            // holding its target): read it by name, without opening the object. Anything
            // unusual (no xattr, a bad one, no object) takes the full read below, which
            // reports it.
            let header = match at.zip(rel.as_deref()) {
                Some((at, rel)) => {
                    crate::fsutil::get_xattr_at(at.objects, rel, c"user.ostreemeta", &obj)
                }
                None => crate::fsutil::lget_xattr(&obj, "user.ostreemeta"),
            }
            .ok()
            .flatten()
            .and_then(|m| FileHeader::from_filemeta(&m).ok());
            let regular = matches!(&header, Some(h) if h.is_regular() && h.validate().is_ok());
            // Is it empty? The object's checksum is that of its header followed by its
            // content: when it is the header's alone, the content is empty. What ostree
            // learns from a stat, for a hash of ~100 bytes instead of a system call.
            zerosized = regular
                && header
                    .as_ref()
                    .is_some_and(|h| Checksum::digest(&h.content_stream_prefix()) == *csum);
            link = !zerosized;
            if regular
                && link
                && self.try_hardlink(&obj, csum, dest, opts, at.zip(rel.as_deref()))?
            {
                return Ok(());
            }
            // A symlink object: its target is its content, read without asking for the
            // xattr again (one `fgetxattr` per symlink saved) and in one read: the checksum
            // (the header with that target) proves the target whole.
            if let Some(mut h) = header.filter(|h| h.is_symlink()) {
                let opened = match at.zip(rel.as_deref()) {
                    Some((at, rel)) => rustix::fs::openat(
                        at.objects,
                        rel,
                        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map(std::fs::File::from)
                    .map_err(std::io::Error::from),
                    None => std::fs::File::open(&obj),
                };
                let mut b = [0u8; 4096];
                let target = opened.and_then(|f| (&f).read(&mut b)).ok().and_then(|n| {
                    let t = b.get(..n)?.strip_suffix(&[0])?;
                    std::str::from_utf8(t).ok()
                });
                if let Some(t) = target {
                    h.symlink_target = t.to_string();
                    if h.validate().is_ok() && Checksum::digest(&h.content_stream_prefix()) == *csum
                    {
                        let mut fc = super::read::FileContent {
                            header: h,
                            size: 0,
                            payload: Box::new(std::io::empty()),
                            path: obj,
                        };
                        return write_file_copy(&mut fc, dest, opts, at);
                    }
                }
            }
        }
        let mut fc = self.read_file(csum)?;
        if fc.header.is_regular() {
            zerosized |= fc.size == 0;
            if link
                && fc.size != 0
                && self.mode() == RepoMode::BareUser
                && self.try_hardlink(&obj, csum, dest, opts, at.zip(rel.as_deref()))?
            {
                return Ok(());
            }
            if opts.require_hardlinks && setid {
                return Err(Error::InvalidArgument(format!(
                    "{}: object {csum} is setuid/setgid, which a user-mode checkout does not hardlink (--require-hardlinks)",
                    dest.display()
                )));
            }
            if opts.require_hardlinks && !link && !zerosized {
                return Err(Error::InvalidArgument(format!(
                    "{}: cannot hardlink from a {} repository in this checkout mode (--require-hardlinks)",
                    dest.display(),
                    self.mode()
                )));
            }
        }
        if fc.header.is_regular() && fc.size != 0 && self.uses_uncompressed_cache(opts) {
            if let Some(cached) = self.uncompressed_copy(csum, &mut fc, opts) {
                match self.try_hardlink(&cached, csum, dest, opts, None) {
                    Ok(true) => return Ok(()),
                    // (EXDEV and the like, or the copy went away under a concurrent
                    // clean-up: copy instead)
                    Ok(false) | Err(Error::ObjectMissing { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            // (the content may have been spent on the cache)
            fc = self.read_file(csum)?;
        }
        write_file_copy(&mut fc, dest, opts, at)
    }

    /// Whether this checkout goes through the uncompressed-objects cache.
    fn uses_uncompressed_cache(&self, opts: &CheckoutOptions) -> bool {
        self.mode() == RepoMode::Archive
            && opts.user_mode
            && opts.uncompressed_cache
            && !opts.force_copy
            && self.config().get_bool("core", "enable-uncompressed-cache") != Some(false)
    }

    /// The cached uncompressed copy of `csum`, written first from `fc` when there is none
    /// (a temporary file renamed into place). `None` when it cannot be had (a repository
    /// this user cannot write, say): the checkout then copies, as without the cache.
    fn uncompressed_copy(
        &self,
        csum: &Checksum,
        fc: &mut super::read::FileContent,
        opts: &CheckoutOptions,
    ) -> Option<std::path::PathBuf> {
        let hex = csum.to_hex();
        let dir = self
            .path
            .join(UNCOMPRESSED_CACHE)
            .join("objects")
            .join(&hex[..2]);
        let cached = dir.join(format!("{}.file", &hex[2..]));
        // The copy is shared with every checkout linking it (as in ostree, a file edited in
        // place in one checkout is edited in the cache): one whose size is no longer the
        // object's is replaced rather than handed on.
        match std::fs::symlink_metadata(&cached) {
            Ok(m) if m.is_file() && m.len() == fc.size => return Some(cached),
            Ok(_) => {
                let _ = std::fs::remove_file(&cached);
            }
            Err(_) => {}
        }
        std::fs::create_dir_all(&dir).ok()?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            CACHE_TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let plain = CheckoutOptions {
            overwrite: Overwrite::None,
            ..opts.clone()
        };
        let made = write_file_copy(fc, &tmp, &plain, None)
            .and_then(|()| std::fs::rename(&tmp, &cached).ctx("rename", &cached));
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return None;
        }
        Some(cached)
    }

    /// ostree's `checkout_gc`: drop the uncompressed copies no checkout links any more
    /// (a link count of 1). Run after a checkout that used the cache.
    pub fn uncompressed_cache_gc(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let objects = self.path.join(UNCOMPRESSED_CACHE).join("objects");
        let Ok(prefixes) = std::fs::read_dir(&objects) else {
            return Ok(());
        };
        for d in prefixes.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Ok(())
    }
}

/// ostree's cache of uncompressed archive objects, below the repository.
const UNCOMPRESSED_CACHE: &str = "uncompressed-objects-cache";

/// Names temporary files of the uncompressed cache apart within one process.
static CACHE_TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What one checkout shares between its directories.
struct Ctx {
    /// Dirmeta objects already read (a tree has few distinct ones).
    dirmeta: Mutex<HashMap<Checksum, DirMeta>>,
    /// The repo's `objects/`, to link from without walking the repo's path each time.
    objects: Option<OwnedFd>,
    /// The process umask (None if unknown).
    umask: Option<u32>,
    /// Set (to the umask) once the top directory is made and found not setgid: from then
    /// on a new directory may be made with its final mode at once (see `direct_mode`). In
    /// a setgid top directory, subdirectories would inherit the bit, which the final
    /// `chmod` clears.
    direct_umask: std::sync::OnceLock<u32>,
}

/// Whether a new directory with dirmeta `dm` can be made by `mkdir` with its final mode,
/// leaving apply_dirmeta only its time to set: nothing to chown or set as xattr, no setuid
/// or setgid bit (`mkdir` drops them), no bit the umask would clear, and the owner able to
/// fill it. Some(mode) then.
fn direct_mode(dm: &DirMeta, opts: &CheckoutOptions, umask: u32) -> Option<u32> {
    let mut mode = dm.mode & 0o7777;
    if opts.bareuseronly_dirs {
        mode &= 0o775;
    }
    let owned = opts.user_mode
        || dm.xattrs.is_empty()
            && dm.uid == rustix::process::geteuid().as_raw()
            && dm.gid == rustix::process::getegid().as_raw();
    (owned && mode & 0o6000 == 0 && mode & umask & 0o777 == 0 && mode & 0o700 == 0o700)
        .then_some(mode)
}

/// Where a file is linked, relative to open directories.
#[derive(Clone, Copy)]
struct At<'a> {
    objects: BorrowedFd<'a>,
    dir: BorrowedFd<'a>,
    name: &'a str,
}

/// Whether a new directory at `path` (from the nearest open ancestor) with the entries of
/// `dt` gets a descriptor of its own: when it has more than a few entries (each then
/// looks up one name fewer), or when the path from the ancestor is three names long.
fn needs_own_fd(path: &str, dt: &crate::object::DirTree) -> bool {
    dt.files.len() + dt.dirs.len() > 8 || path.bytes().filter(|&b| b == b'/').count() >= 2
}

/// An `O_PATH` descriptor of the directory `p` (not followed if it is a symlink), or None if
/// it cannot be opened: callers then use paths.
fn open_dir_path(p: &Path) -> Option<OwnedFd> {
    open_dir_at(rustix::fs::CWD, p)
}

/// The same for the directory `name` inside the directory `parent`, without following a
/// symlink there either.
fn open_dir_at<P: rustix::path::Arg>(parent: BorrowedFd<'_>, name: P) -> Option<OwnedFd> {
    use rustix::fs::OFlags;
    rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// Whether the object at `obj` is a regular file, its size and its mode bits (`lstat`,
/// relative to `objects/` when the checkout has it open); None if it cannot be read, and
/// the read that follows reports why.
fn object_stat(obj: &Path, at: Option<(At<'_>, &str)>) -> Option<(bool, u64, u32)> {
    if let Some((at, rel)) = at {
        let st = rustix::fs::statat(at.objects, rel, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let file =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        return Some((file, st.st_size as u64, st.st_mode));
    }
    let m = std::fs::symlink_metadata(obj).ok()?;
    Some((m.is_file(), m.len(), m.mode()))
}

/// The NAME a whiteout entry `PREFIXNAME` names, if it is a plain file name (never `.`,
/// `..` or empty, so a hostile tree cannot delete the directory itself or its parent).
fn whiteout_target<'a>(entry: &'a str, prefix: &str) -> Option<&'a str> {
    entry
        .strip_prefix(prefix)
        .filter(|t| crate::object::validate_filename(t).is_ok())
}

/// Remove `p` whatever it is (nothing if absent); symlinks are not followed.
fn remove_all(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).ctx("remove", p),
        Ok(_) => std::fs::remove_file(p).ctx("remove", p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("stat", p),
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

fn write_file_copy(
    fc: &mut super::FileContent,
    dest: &Path,
    opts: &CheckoutOptions,
    at: Option<At<'_>>,
) -> Result<()> {
    let h: &FileHeader = &fc.header;
    if h.is_symlink() {
        match at {
            // Relative to the directory this checkout made: one name to look up.
            Some(at) => rustix::fs::symlinkat(h.symlink_target.as_str(), at.dir, at.name)
                .map_err(std::io::Error::from),
            None => std::os::unix::fs::symlink(&h.symlink_target, dest),
        }
        .ctx("symlink", dest)?;
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
        // As ostree: no setuid/setgid, and the owner can always read their copy.
        mode = (mode & !0o6000) | 0o400;
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
    // The copy keeps the time it was made, as ostree's copies do (hardlinks share the
    // object's mtime 0).
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .ctx("chmod", dest)
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
