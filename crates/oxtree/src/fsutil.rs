//! Filesystem helpers: the only module that calls the kernel beyond `std::fs` — xattrs,
//! atomic replace (tmp → fsync → rename), syncfs — and the GLib keyfile format that OSTree
//! uses for `config`, `.origin` and remotes.

pub mod beneath;
pub mod freeze;
pub mod keyfile;

use crate::error::{Error, IoContext, Result};
use crate::object::Xattrs;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Paths this long or longer are reached through [`short_path`]'s detour (PATH_MAX is 4096
/// bytes with the terminating NUL; a margin for what callers append).
const LONG_PATH: usize = 3800;

/// Walks that descend a tree by path name what is below a directory whose path is this
/// long from a descriptor of it instead (a name is at most 255 bytes, so a path below
/// stays under [`LONG_PATH`]).
pub const ALIAS_PATH_AT: usize = LONG_PATH - 300;

/// Runs `f` on `p` or, when `p` is too long for one system call (the kernel refuses paths of
/// PATH_MAX bytes and more with `ENAMETOOLONG`), on a short path to the same file:
/// `/proc/self/fd/N/NAME`, N a descriptor of its parent directory opened a stretch of
/// components at a time. ostree walks the trees it commits by descriptor, so it commits any
/// depth; path-based calls reach any depth this way. Error messages keep naming `p`.
pub fn short_path<T>(p: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    if p.as_os_str().len() < LONG_PATH {
        return f(p);
    }
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return f(p);
    };
    let dir = open_dir_in_stretches(parent)?;
    use std::os::fd::AsRawFd;
    f(&Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name))
}

/// Open directory `p` (for reaching what is in it), however long its path, by opening
/// stretches of its components shorter than [`LONG_PATH`] each relative to the last.
fn open_dir_in_stretches(p: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, CWD};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd: Option<std::os::fd::OwnedFd> = None;
    let mut stretch = std::path::PathBuf::new();
    for c in p.components() {
        let c = c.as_os_str();
        if !stretch.as_os_str().is_empty() && stretch.as_os_str().len() + c.len() + 1 >= LONG_PATH {
            let next = match &fd {
                Some(d) => rustix::fs::openat(d, &stretch, flags, Mode::empty()),
                None => rustix::fs::openat(CWD, &stretch, flags, Mode::empty()),
            }?;
            fd = Some(next);
            stretch.clear();
        }
        stretch.push(c);
    }
    Ok(match &fd {
        Some(d) => rustix::fs::openat(d, &stretch, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, &stretch, flags, Mode::empty()),
    }?)
}

/// Read all extended attributes of `path` without following a final symlink, sorted by name.
/// Filesystems without xattr support give an empty list.
pub fn read_xattrs(path: &Path) -> Result<Xattrs> {
    if path.as_os_str().len() >= LONG_PATH {
        return match short_path(path, |short| Ok(read_xattrs(short))) {
            Ok(r) => r.map_err(|e| match e {
                Error::Io { op, source, .. } => Error::Io {
                    op,
                    path: path.to_path_buf(),
                    source,
                },
                e => e,
            }),
            Err(e) => Err(e).ctx("open", path),
        };
    }
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path).ctx("listxattr", path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx("listxattr", path),
        }
    };
    let mut out = Xattrs::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or_default());
        if cname.is_empty() {
            continue; // non-UTF-8 xattr names are not representable through rustix's path::Arg here
        }
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut val[..]) {
                Ok(l) => break l,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr_query(path, cname).ctx("getxattr", path)?;
                    val.resize(need.max(val.len() * 2), 0);
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(e).ctx("getxattr", path),
            }
        };
        if len == usize::MAX {
            continue;
        }
        val.truncate(len);
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

/// Read one xattr of an open file; `None` if it is absent.
pub fn fget_xattr(file: &File, name: &str, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut val = vec![0u8; 512];
    loop {
        match rustix::fs::fgetxattr(file, name, &mut val[..]) {
            Ok(l) => {
                val.truncate(l);
                return Ok(Some(val));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::fgetxattr_query(file, name).ctx("getxattr", path)?;
                val.resize(need.max(val.len() * 2), 0);
            }
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e).ctx("getxattr", path),
        }
    }
}

/// One xattr of `rel` inside the open directory `dir` (not following a final symlink), with
/// `getxattrat(2)` (Linux 6.13): the kernel walks the names below `dir` only, not the whole
/// path. A kernel without the call (or a seccomp filter that refuses it) takes `path`, the
/// same file by its whole name, through `lget_xattr`; so does any error, which that call
/// then reports. libc and rustix do not wrap this call yet, hence the raw syscall.
pub fn get_xattr_at(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &str,
    name: &std::ffi::CStr,
    path: &Path,
) -> Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Set once the kernel has said it lacks the call.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    /// `struct xattr_args` (include/uapi/linux/xattr.h), size version 0.
    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }
    const SYS_GETXATTRAT: libc::c_long = 464; // the same number on every architecture
    let fallback = || lget_xattr(path, name.to_str().unwrap_or_default());
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return fallback();
    }
    // The name NUL-terminated on the stack, and the value read into the stack: one
    // allocation per call, for the value returned. A longer value (ERANGE) or name takes
    // the path call, which sizes its buffer.
    let mut crel = [0u8; 256];
    if rel.len() >= crel.len() || rel.contains('\0') {
        return fallback();
    }
    crel[..rel.len()].copy_from_slice(rel.as_bytes());
    let mut val = [0u8; 512];
    let mut args = XattrArgs {
        value: val.as_mut_ptr() as u64,
        size: val.len() as u32,
        flags: 0,
    };
    // SAFETY: every pointer is valid for the call: two NUL-terminated strings (`crel` is
    // zero past `rel`), and `args` names `val`'s buffer with its length; the kernel writes
    // at most that many bytes.
    let r = unsafe {
        libc::syscall(
            SYS_GETXATTRAT,
            dir.as_raw_fd(),
            crel.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            name.as_ptr(),
            &mut args as *mut XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        )
    };
    if r >= 0 {
        return Ok(Some(val[..r as usize].to_vec()));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENODATA) => Ok(None),
        Some(libc::ENOSYS | libc::EPERM) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            fallback()
        }
        _ => fallback(),
    }
}

/// One xattr of `path` itself (not following a symlink), without opening it: `None` when
/// the file has no such attribute.
pub fn lget_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut val = vec![0u8; 512];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut val[..]) {
            Ok(l) => {
                val.truncate(l);
                return Ok(Some(val));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, name).ctx("getxattr", path)?;
                val.resize(need.max(val.len() * 2), 0);
            }
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e).ctx("getxattr", path),
        }
    }
}

pub fn fset_xattr(file: &File, name: &[u8], value: &[u8], path: &Path) -> Result<()> {
    let name = std::str::from_utf8(name)
        .map_err(|_| Error::InvalidArgument(format!("{}: non-UTF-8 xattr name", path.display())))?;
    rustix::fs::fsetxattr(file, name, value, rustix::fs::XattrFlags::empty()).ctx("setxattr", path)
}

pub fn lset_xattr(path: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let name = std::str::from_utf8(name)
        .map_err(|_| Error::InvalidArgument(format!("{}: non-UTF-8 xattr name", path.display())))?;
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).ctx("setxattr", path)
}

/// Replace `path` atomically with `data`: write a temp file beside it, fsync, rename. The
/// file gets mode 0644, as ostree's config, refs and summaries have.
pub fn write_atomic(path: &Path, data: &[u8], fsync: bool) -> Result<()> {
    write_atomic_mode(path, data, fsync, 0o644)
}

/// The bytes of the regular file `p` (a symlink is followed), at most `max` of them: what a
/// repository's own files must be. Anything else is an error, not a read: `/dev/zero` or
/// another device would fill memory, a FIFO would hang the reader (it is opened
/// non-blocking), and a sparse file past `max` would do both. Errors are `std::io` ones, so
/// a missing file is still `NotFound`.
pub fn read_regular(p: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)?;
    let m = f.metadata()?;
    if m.is_dir() {
        // (as reading one would fail)
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !m.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if m.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {max} such a file may have",
                m.len()
            ),
        ));
    }
    let mut b = Vec::with_capacity(m.len() as usize);
    f.take(max + 1).read_to_end(&mut b)?;
    if b.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("grew past the {max} bytes such a file may have"),
        ));
    }
    Ok(b)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_string(p: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_regular(p, max)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The most a repository's config, a remote's `.conf` or a ref file may hold.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// The process umask, from `/proc/self/status` (reading it with `umask(2)` would set it,
/// racing other threads' file creation). None if it cannot be read.
pub fn process_umask() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

/// [`write_atomic`] of a file whose mode is `mode` less the umask, as for a file created
/// with that mode (ostree's keyrings, written by GnuPG, and cookie jars).
pub fn write_atomic_umask(path: &Path, data: &[u8], fsync: bool, mode: u32) -> Result<()> {
    write_atomic_mode(path, data, fsync, mode & !process_umask().unwrap_or(0o022))
}

fn write_atomic_mode(path: &Path, data: &[u8], fsync: bool, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // A bare file name has the parent "": that is the current directory.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .ctx("chmod", tmp.path().to_path_buf())?;
    tmp.as_file_mut()
        .write_all(data)
        .ctx("write", tmp.path().to_path_buf())?;
    if fsync {
        tmp.as_file().sync_all().ctx("fsync", path)?;
    }
    tmp.persist(path).map_err(|e| Error::Io {
        op: "rename",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// A temporary file in `dir` with no name (O_TMPFILE where the filesystem has it, else
/// unlinked at once): gone when closed, whatever kills the process.
pub fn anonymous_tempfile_in(dir: &Path) -> Result<File> {
    tempfile::tempfile_in(dir).ctx("create temporary file in", dir)
}

pub fn tempfile_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create temporary file in", dir)
}

/// Set or clear the immutable inode flag (`chattr +i`) of `path`, as ostree does on each
/// deployment's top directory. Filesystems without inode flags are left alone; so is a lack
/// of the privilege to change them when setting (marking is a safeguard, not a requirement).
pub fn set_immutable(path: &Path, on: bool) -> Result<()> {
    use rustix::fs::IFlags;
    use rustix::io::Errno;
    let f = File::open(path).ctx("open", path)?;
    let flags = match rustix::fs::ioctl_getflags(&f) {
        Ok(fl) => fl,
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => return Ok(()),
        Err(e) => return Err(std::io::Error::from(e)).ctx("read inode flags of", path),
    };
    let want = if on {
        flags | IFlags::IMMUTABLE
    } else {
        flags - IFlags::IMMUTABLE
    };
    if want == flags {
        return Ok(());
    }
    match rustix::fs::ioctl_setflags(&f, want) {
        Ok(()) => Ok(()),
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => Ok(()),
        Err(Errno::PERM) if on => Ok(()),
        Err(e) => Err(std::io::Error::from(e)).ctx("change inode flags of", path),
    }
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

/// Flush the whole filesystem that holds `path` (cheaper than fsync per object).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = File::open(path).ctx("open", path)?;
    rustix::fs::syncfs(&f).ctx("syncfs", path)
}

/// A file that gets a name only once it is complete and checked: an anonymous `O_TMPFILE`
/// where the filesystem supports it (it has no directory entry until `link_to`, and vanishes
/// with its descriptor if the process dies or the caller drops it), else a 0600 file with a
/// random `.tmp-` name that is unlinked on drop unless it was given its name. Writers of
/// repository objects hash the content before they give it an owner, a mode or a name, so
/// nothing unverified is ever visible under an object's name.
pub struct TmpFile {
    file: File,
    /// The fallback's path; `TempPath` unlinks it when dropped.
    named: Option<tempfile::TempPath>,
    dir: std::path::PathBuf,
}

impl TmpFile {
    pub fn new_in(dir: &Path) -> Result<TmpFile> {
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => Ok(TmpFile {
                file: File::from(fd),
                named: None,
                dir: dir.to_path_buf(),
            }),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => {
                // tempfile creates 0600 files with O_EXCL under a random name.
                let (file, path) = tempfile_in(dir)?.into_parts();
                Ok(TmpFile {
                    file,
                    named: Some(path),
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) => Err(e).ctx("create temporary file in", dir),
        }
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where errors about this file should point.
    pub fn display_path(&self) -> std::path::PathBuf {
        self.named
            .as_ref()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| self.dir.join("(unnamed)"))
    }

    /// Give the file its final name. A file already there is replaced atomically (the new
    /// one is linked under a random name beside it, then renamed over it).
    pub fn link_to(self, dest: &Path) -> Result<()> {
        match self.named {
            Some(p) => p.persist(dest).map_err(|e| Error::Io {
                op: "rename",
                path: dest.to_path_buf(),
                source: e.error,
            }),
            None => match link_fd(&self.file, dest) {
                Err(rustix::io::Errno::EXIST) => {
                    let dir = dest.parent().unwrap_or(Path::new("."));
                    let tmp = dir.join(format!(".tmp-link-{:016x}", rand::random::<u64>()));
                    link_fd(&self.file, &tmp).ctx("link", &tmp)?;
                    std::fs::rename(&tmp, dest).or_else(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        Err(e).ctx("rename", dest)
                    })
                }
                r => r.ctx("link", dest),
            },
        }
    }
}

/// Link an `O_TMPFILE` descriptor into the filesystem: through `/proc/self/fd` (any user,
/// as libglnx does), or with `AT_EMPTY_PATH` where `/proc` is not mounted (needs
/// CAP_DAC_READ_SEARCH).
fn link_fd(file: &File, dest: &Path) -> rustix::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(
        rustix::fs::CWD,
        proc.as_str(),
        rustix::fs::CWD,
        dest,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    ) {
        Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").exists() => {
            rustix::fs::linkat(
                file,
                "",
                rustix::fs::CWD,
                dest,
                rustix::fs::AtFlags::EMPTY_PATH,
            )
        }
        r => r,
    }
}

/// A writer that counts the bytes through it.
pub(crate) struct Counted<W: std::io::Write> {
    pub(crate) inner: W,
    pub(crate) n: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Take an open-file-description (OFD) fcntl lock on the whole file: the kind `ostree` takes
/// on `repo/.lock`, so the two tools see each other's locks. Returns `Ok(false)` when
/// `wait` is false and another holder conflicts.
pub fn ofd_lock(file: &File, exclusive: bool, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain old data; zeroed is a valid whole-file lock description.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: a valid fd and a pointer to an initialised `flock` that outlives the call.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_xattr_at_reads_relative_to_the_directory() {
        let d = tempfile::tempdir().expect("test setup or call");
        std::fs::create_dir(d.path().join("ab")).expect("test setup or call");
        let f = d.path().join("ab/obj.file");
        std::fs::write(&f, b"x").expect("test setup or call");
        lset_xattr(&f, b"user.ostreemeta", b"value").expect("test setup or call");
        let dir = File::open(d.path()).expect("test setup or call");
        use std::os::fd::AsFd;
        let get = |rel: &str, path: &Path| get_xattr_at(dir.as_fd(), rel, c"user.ostreemeta", path);
        assert_eq!(
            get("ab/obj.file", &f).expect("test setup or call"),
            Some(b"value".to_vec())
        );
        // A value longer than the stack buffer takes the path call, which sizes its own.
        let long = vec![7u8; 3000];
        lset_xattr(&f, b"user.ostreemeta", &long).expect("test setup or call");
        assert_eq!(
            get("ab/obj.file", &f).expect("test setup or call"),
            Some(long)
        );
        // No such attribute; no such file (reported by the path call, naming the path).
        let g = d.path().join("ab/plain");
        std::fs::write(&g, b"").expect("test setup or call");
        assert_eq!(get("ab/plain", &g).expect("test setup or call"), None);
        let missing = d.path().join("ab/missing");
        let e = get("ab/missing", &missing)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("ab/missing"), "{e}");
        // A symlink is not followed (user xattrs cannot be on one: nothing to read).
        std::os::unix::fs::symlink("obj.file", d.path().join("ab/link"))
            .expect("test setup or call");
        assert_eq!(
            get("ab/link", &d.path().join("ab/link")).expect("test setup or call"),
            None
        );
    }
}
