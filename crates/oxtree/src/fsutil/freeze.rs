//! Freeze/thaw of a filesystem (`FIFREEZE`/`FITHAW`) around the bootloader swap, as ostree's
//! `fsfreeze_thaw_cycle` (used by `full_system_sync` and `swap_bootloader`).
//!
//! Why not only `syncfs`: on a journalling filesystem (XFS above all) `syncfs` may leave the
//! newest metadata only in the log, and a bootloader (GRUB) reads the filesystem without
//! replaying the log (ostree PR #1049). A freeze writes everything in place; the thaw
//! follows at once. Filesystems that cannot be frozen (tmpfs, vfat, ...) or a caller without
//! the privilege fall back to `syncfs`.
//!
//! A frozen filesystem blocks every writer until it is thawed, so the thaw must happen even
//! if this process dies in between (kill -9, OOM): before freezing, a watchdog process is
//! forked that thaws the filesystem when the parent disappears without saying it thawed,
//! exactly as ostree's does. The watchdog runs only async-signal-safe system calls (the
//! parent may have threads), ignores SIGINT/SIGTERM/SIGHUP (a Ctrl-C or `systemctl stop`
//! aimed at the parent must not take it along), and is reaped before the function returns.
//! Callers must still only freeze a filesystem of its own: see
//! `Sysroot::flush_boot`, which never freezes the one holding the sysroot.

use crate::error::{IoContext, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `_IOWR('X', 119, int)` and `_IOWR('X', 120, int)` from `<linux/fs.h>`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// How a filesystem was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Frozen and thawed: everything written in place.
    FreezeThaw,
    /// `syncfs` only, because `FIFREEZE` failed with this errno (`EOPNOTSUPP`, `EINVAL`,
    /// `EBUSY` (frozen by someone else), `EPERM`, `ENOTTY` or `ENOSYS`).
    Syncfs(i32),
}

/// Errors of `FIFREEZE` that mean "cannot freeze here": flush with `syncfs` instead.
fn freeze_unsupported(errno: i32) -> bool {
    matches!(
        errno,
        libc::EOPNOTSUPP | libc::EINVAL | libc::EBUSY | libc::EPERM | libc::ENOTTY | libc::ENOSYS
    )
}

/// Freeze and thaw the filesystem holding `dir` (the directory itself should be its root:
/// the freeze applies to the whole filesystem), running `while_frozen` in between (a test
/// hook; a real caller passes `|| Ok(())`). The filesystem is thawed before this returns,
/// whatever `while_frozen` returns, and by the watchdog if this process dies first.
pub fn freeze_thaw_cycle(dir: &Path, while_frozen: impl FnOnce() -> Result<()>) -> Result<Flushed> {
    let d = std::fs::File::open(dir).ctx("open", dir)?;
    let fd = d.as_raw_fd();
    let mut sv = [0 as libc::c_int; 2];
    // SAFETY: a valid two-element array for the two new descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error())
            .ctx("socketpair for the freeze watchdog of", dir);
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (parent_sock, child_sock) =
        unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
    // SAFETY: the child runs only `watchdog`, which makes async-signal-safe calls and never
    // returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).ctx("fork the freeze watchdog for", dir);
    }
    if pid == 0 {
        // SAFETY: in the child; the descriptors are valid (inherited).
        unsafe { watchdog(child_sock.as_raw_fd(), parent_sock.as_raw_fd(), fd) }
    }
    drop(child_sock);
    let watchdog = Watchdog {
        pid,
        sock: Some(parent_sock),
    };
    let res = cycle(dir, fd, &watchdog, while_frozen);
    // On success the watchdog was told (it exits without thawing); on failure closing the
    // socket makes it thaw, in case the filesystem is still frozen. Either way, reap it.
    drop(watchdog);
    res
}

fn cycle(
    dir: &Path,
    fd: libc::c_int,
    w: &Watchdog,
    while_frozen: impl FnOnce() -> Result<()>,
) -> Result<Flushed> {
    // Wait until the watchdog is watching (its signals masked) before freezing.
    w.recv().ctx("wait for the freeze watchdog of", dir)?;
    // SAFETY: `fd` is an open descriptor; FIFREEZE takes no argument.
    if unsafe { libc::ioctl(fd, FIFREEZE as _, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        let errno = e.raw_os_error().unwrap_or(0);
        if !freeze_unsupported(errno) {
            return Err(e).ctx("freeze (FIFREEZE)", dir);
        }
        // SAFETY: `fd` is an open descriptor.
        if unsafe { libc::syncfs(fd) } != 0 {
            return Err(std::io::Error::last_os_error()).ctx("syncfs", dir);
        }
        w.send().ctx("tell the freeze watchdog of", dir)?;
        return Ok(Flushed::Syncfs(errno));
    }
    let hook = while_frozen();
    // The thaw comes first, whatever the hook said.
    // SAFETY: `fd` is an open descriptor; FITHAW takes no argument.
    if unsafe { libc::ioctl(fd, FITHAW as _, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: not frozen any more (someone else thawed it): fine.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e).ctx("thaw (FITHAW)", dir);
        }
    }
    w.send().ctx("tell the freeze watchdog of", dir)?;
    hook?;
    Ok(Flushed::FreezeThaw)
}

/// The parent's end of the watchdog; dropping it closes the socket and reaps the child.
struct Watchdog {
    pid: libc::pid_t,
    sock: Option<OwnedFd>,
}

impl Watchdog {
    fn recv(&self) -> std::io::Result<()> {
        let Some(s) = &self.sock else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let mut c = 0u8;
        loop {
            // SAFETY: reading one byte into a live local.
            let r = unsafe { libc::read(s.as_raw_fd(), (&mut c as *mut u8).cast(), 1) };
            match r {
                1 => return Ok(()),
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn send(&self) -> std::io::Result<()> {
        let Some(s) = &self.sock else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let c = b'!';
        loop {
            // SAFETY: writing one byte from a live local.
            let r = unsafe { libc::write(s.as_raw_fd(), (&c as *const u8).cast(), 1) };
            if r == 1 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.sock = None;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
    }
}

/// The watchdog child: say it is ready, then wait for the parent's word. If instead the
/// parent goes away (end of file) or the socket fails, thaw the filesystem. Only
/// async-signal-safe calls: the parent may have had other threads when it forked.
///
/// # Safety
/// Call only in a freshly forked child, with valid descriptors.
unsafe fn watchdog(sock: libc::c_int, parent_sock: libc::c_int, fs: libc::c_int) -> ! {
    libc::close(parent_sock);
    let mut mask: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut mask);
    libc::sigaddset(&mut mask, libc::SIGINT);
    libc::sigaddset(&mut mask, libc::SIGTERM);
    libc::sigaddset(&mut mask, libc::SIGHUP);
    libc::sigaddset(&mut mask, libc::SIGPIPE);
    libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
    let mut c: u8 = b'!';
    loop {
        let r = libc::write(sock, (&c as *const u8).cast(), 1);
        if r >= 0 || *libc::__errno_location() != libc::EINTR {
            break;
        }
    }
    let r = loop {
        let r = libc::read(sock, (&mut c as *mut u8).cast(), 1);
        if r >= 0 || *libc::__errno_location() != libc::EINTR {
            break r;
        }
    };
    if r != 1 {
        // EINVAL here means it is not frozen: nothing to do.
        libc::ioctl(fs, FITHAW as _, 0);
    }
    libc::_exit(0)
}

/// For ostree's `test-fifreeze` hook: fork a watchdog as [`freeze_thaw_cycle`] does, which
/// says so on stderr (`fifreeze watchdog was run`, ostree's line) and exits; reaped here.
pub fn run_test_watchdog() -> Result<()> {
    // SAFETY: the child makes only async-signal-safe calls (write, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).ctx("fork the freeze watchdog for", "/boot");
    }
    if pid == 0 {
        const MSG: &[u8] = b"fifreeze watchdog was run\n";
        // SAFETY: writing a static buffer to stderr, then leaving without unwinding.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(0)
        }
    }
    let mut status = 0;
    // SAFETY: reaping the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_that_cannot_freeze_is_synced() {
        // /proc cannot be frozen: FIFREEZE fails, and the fallback is taken.
        let r = freeze_thaw_cycle(Path::new("/proc"), || Ok(()));
        match r {
            Ok(Flushed::Syncfs(e)) => assert!(freeze_unsupported(e), "errno {e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fallback_errors() {
        for e in [
            libc::EOPNOTSUPP,
            libc::EINVAL,
            libc::EBUSY,
            libc::EPERM,
            libc::ENOTTY,
        ] {
            assert!(freeze_unsupported(e));
        }
        assert!(!freeze_unsupported(libc::EIO));
    }
}
