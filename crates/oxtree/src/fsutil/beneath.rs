//! Opening a file inside a directory without ever leaving it: no symlink is followed at any
//! component and `..` cannot climb out, so what is opened is a file that really lies under
//! the directory. `oxtree serve` opens every requested file this way (security review H5:
//! a symlink in a served repository must not expose the server's files).
//!
//! Linux ≥ 5.6 does this in one call, `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
//! checked by the kernel during the lookup (no window between a check and the open). Older
//! kernels, and sandboxes whose seccomp filter refuses `openat2`, get a walk that opens each
//! directory component with `O_NOFOLLOW | O_DIRECTORY` relative to the previous one, which is
//! as strict.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel says it has no `openat2`.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Open `rel` (a relative path of plain components: no empty, `.` or `..` component)
/// read-only under `root`. A symlink anywhere on the way fails with `ELOOP` (or `ENOTDIR`),
/// and a bad path with `InvalidInput`. The file is opened non-blocking, so a FIFO does not
/// hang the caller; callers check the file type with `metadata()`.
pub fn open_beneath(root: &impl AsFd, rel: &str) -> std::io::Result<std::fs::File> {
    if rel.is_empty()
        || rel.starts_with('/')
        || rel.contains('\0')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a plain relative path: {rel:?}"),
        ));
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match rustix::fs::openat2(
            root.as_fd(),
            rel,
            flags | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => return Ok(fd.into()),
            Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // A seccomp filter may refuse the call itself: the walk below decides.
            Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut dir: Option<OwnedFd> = None;
    let mut comps = rel.split('/').peekable();
    while let Some(c) = comps.next() {
        let fd = match &dir {
            Some(d) => d.as_fd(),
            None => root.as_fd(),
        };
        if comps.peek().is_none() {
            return Ok(rustix::fs::openat(fd, c, flags | OFlags::NOCTTY, Mode::empty())?.into());
        }
        let next = rustix::fs::openat(
            fd,
            c,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_only<T>(f: impl FnOnce() -> T) -> T {
        let was = NO_OPENAT2.swap(true, Ordering::Relaxed);
        let r = f();
        NO_OPENAT2.store(was, Ordering::Relaxed);
        r
    }

    #[test]
    fn symlinks_and_climbing_are_refused_both_ways() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("objects/ab")).expect("mkdir");
        std::fs::write(root.join("objects/ab/file"), b"inside").expect("write");
        std::fs::write(tmp.path().join("outside"), b"outside").expect("write");
        std::os::unix::fs::symlink("../outside", root.join("leak")).expect("symlink");
        std::os::unix::fs::symlink("ab", root.join("objects/link")).expect("symlink");
        std::os::unix::fs::symlink("/", root.join("rootdir")).expect("symlink");
        let dir = std::fs::File::open(&root).expect("open root");
        for walk in [false, true] {
            let open = |p: &str| {
                if walk {
                    walk_only(|| open_beneath(&dir, p))
                } else {
                    open_beneath(&dir, p)
                }
            };
            let mut f = open("objects/ab/file").expect("plain file");
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).expect("read");
            assert_eq!(s, "inside");
            for bad in [
                "leak",
                "objects/link/file",
                "rootdir/etc/passwd",
                "objects/link",
            ] {
                let e = open(bad).expect_err(bad);
                assert!(
                    matches!(
                        e.raw_os_error(),
                        Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV)
                    ),
                    "{bad} (walk: {walk}): {e}"
                );
            }
            for bad in [
                "../outside",
                "objects/../leak",
                "/etc/passwd",
                "",
                "objects//ab",
            ] {
                let e = open(bad).expect_err(bad);
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
            }
            let e = open("objects/none").expect_err("missing");
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        }
    }
}
