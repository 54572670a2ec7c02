//! Reading files of a deployment tree (a commit checked out: its content is whatever the
//! commit says, possibly hostile) as the deployment itself would see them. Every path,
//! symlinks included, resolves inside the tree, never out to the host: `openat2` with
//! `RESOLVE_IN_ROOT` (chroot semantics), so a `vmlinuz` linked to `/etc/shadow` or
//! `/dev/zero` means the tree's own `/etc/shadow` (or nothing), not the host's. What is read
//! must then be a regular file. On kernels without `openat2` (before 5.6) no symlink is
//! followed at all.

use crate::error::{Error, IoContext, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::fs::File;
use std::path::Path;

/// Open the regular file `rel` of the tree at `root`, resolved inside the tree. `None` when
/// it does not exist; an error when it is something else than a regular file.
pub(crate) fn open_file(root: &Path, rel: &str) -> Result<Option<File>> {
    let p = root.join(rel);
    let fd = match open_in(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )? {
        Some(fd) => fd,
        None => return Ok(None),
    };
    let f = File::from(fd);
    let m = f.metadata().ctx("stat", &p)?;
    if !m.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a regular file in the deployment",
            p.display()
        )));
    }
    Ok(Some(f))
}

/// The names in the directory `rel` of the tree at `root` (resolved inside the tree);
/// empty when it does not exist.
pub(crate) fn list_dir(root: &Path, rel: &str) -> Result<Vec<String>> {
    let p = root.join(rel);
    let Some(fd) = open_in(root, rel, OFlags::RDONLY | OFlags::DIRECTORY)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let dir = rustix::fs::Dir::read_from(&fd).ctx("read directory", &p)?;
    for e in dir {
        let e = e.ctx("read directory", &p)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// Whether `rel` of the tree at `root` (resolved inside the tree) is a directory.
pub(crate) fn is_dir(root: &Path, rel: &str) -> Result<bool> {
    match open_in(root, rel, OFlags::PATH | OFlags::DIRECTORY) {
        Ok(fd) => Ok(fd.is_some()),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `p` itself (not what a symlink there points to) is a directory.
pub(super) fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

fn open_in(root: &Path, rel: &str, flags: OFlags) -> Result<Option<std::os::fd::OwnedFd>> {
    use rustix::io::Errno;
    let p = root.join(rel);
    let dir = File::open(root).ctx("open", root)?;
    let flags = flags | OFlags::CLOEXEC;
    let r = rustix::fs::openat2(
        &dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    let r = match r {
        // No openat2 (or a seccomp filter refusing it): follow no symlink at all.
        Err(Errno::NOSYS | Errno::PERM) => open_nofollow(&dir, rel, flags),
        r => r,
    };
    match r {
        Ok(fd) => {
            refuse_local_state(root, rel, &fd)?;
            Ok(Some(fd))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP) => Err(Error::InvalidArgument(format!(
            "{}: a symbolic link this system cannot resolve safely inside the deployment",
            p.display()
        ))),
        Err(e) => Err(std::io::Error::from(e)).ctx("open", &p),
    }
}

/// A path of the tree that is not itself under `etc/` or `var/` must not resolve there: by
/// the time boot files are copied, the deployment's `/etc` holds the machine's own merged
/// configuration (its `shadow`, its keys) and `/var` its data, and a commit's symlink
/// (`.vmlinuz.hmac -> /etc/shadow`) would copy them into a world-readable `/boot`.
fn refuse_local_state(root: &Path, rel: &str, fd: &std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    let rel = rel.trim_start_matches('/');
    if ["etc", "var"]
        .iter()
        .any(|d| rel == *d || rel.starts_with(&format!("{d}/")))
    {
        return Ok(());
    }
    // (Without /proc the check cannot be made; the lookup stayed inside the tree anyway.)
    let (Ok(at), Ok(top)) = (
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        std::fs::canonicalize(root),
    ) else {
        return Ok(());
    };
    if at.starts_with(top.join("etc")) || at.starts_with(top.join("var")) {
        return Err(Error::InvalidArgument(format!(
            "{}: resolves into the deployment's {} (the machine's own state), which is not \
             read for boot files",
            root.join(rel).display(),
            at.strip_prefix(&top).unwrap_or(&at).display()
        )));
    }
    Ok(())
}

/// Component by component, each opened with `O_NOFOLLOW`: a symlink anywhere gives ELOOP
/// (or ENOTDIR).
fn open_nofollow(dir: &File, rel: &str, flags: OFlags) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        return Err(rustix::io::Errno::INVAL);
    };
    let mut cur = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for c in parents {
        if *c == ".." {
            return Err(rustix::io::Errno::LOOP);
        }
        cur = rustix::fs::openat(
            &cur,
            *c,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    if *last == ".." {
        return Err(rustix::io::Errno::LOOP);
    }
    rustix::fs::openat(&cur, *last, flags | OFlags::NOFOLLOW, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn links_resolve_inside_the_tree() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("boot/vmlinuz-1"), b"kernel").expect("write");
        std::os::unix::fs::symlink("/boot/vmlinuz-1", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../../../boot/vmlinuz-1", root.join("up"))
            .expect("symlink");
        std::os::unix::fs::symlink("/etc/hostname", root.join("host")).expect("symlink");
        std::os::unix::fs::symlink("/dev/zero", root.join("zero")).expect("symlink");
        std::os::unix::fs::symlink("/", root.join("slash")).expect("symlink");
        for rel in ["abs", "up", "boot/vmlinuz-1"] {
            let mut s = String::new();
            open_file(root, rel)
                .expect("open")
                .expect("found")
                .read_to_string(&mut s)
                .expect("read");
            assert_eq!(s, "kernel", "{rel}");
        }
        // A link into the deployment's own /etc (the machine's merged configuration) is
        // refused; /etc asked for by name is read.
        std::fs::write(root.join("etc/shadow"), b"secret").expect("write");
        std::os::unix::fs::symlink("/etc/shadow", root.join("boot/hmac")).expect("symlink");
        std::os::unix::fs::symlink("../etc", root.join("boot/dtb")).expect("symlink");
        let e = open_file(root, "boot/hmac")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("etc/shadow"), "{e}");
        assert!(list_dir(root, "boot/dtb").is_err());
        assert!(open_file(root, "etc/shadow").expect("open").is_some());
        std::fs::remove_file(root.join("etc/shadow")).expect("rm");
        // The host's files are not the tree's.
        assert!(open_file(root, "host").expect("open").is_none());
        assert!(open_file(root, "zero").expect("open").is_none());
        assert!(open_file(root, "slash").is_err(), "a directory is no file");
        // (`slash/etc` is the tree's own etc/, reached through a link: refused too.)
        assert!(list_dir(root, "slash/etc").is_err());
        let mut names = list_dir(root, "slash").expect("list");
        names.sort();
        assert_eq!(names, ["abs", "boot", "etc", "host", "slash", "up", "zero"]);
    }
}
