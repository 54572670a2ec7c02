//! Early in the booted system (`admin remount`, run by `oxtree-remount.service`): make sure
//! the stateroot's `/var` is mounted. oxtree's root switcher binds it in the initramfs;
//! ostree's leaves it to a systemd generator, so a deployment booted by ostree's
//! `ostree-prepare-root` needs this to get its persistent `/var`.

use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// Whether `path` is a mount point, from `/proc/self/mountinfo` (field 5).
fn is_mount_point(path: &Path) -> Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx("read", Path::new("/proc/self/mountinfo"))?;
    let want = path.to_string_lossy();
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want))
}

/// The stateroot `/var` of the deployment named by `ostree=` in `cmdline`, with the
/// physical root at `sysroot`.
pub fn stateroot_var(sysroot: &Path, cmdline: &str) -> Result<PathBuf> {
    let deployment = super::prepare_root::booted_deployment(sysroot, cmdline)?;
    // <sysroot>/ostree/deploy/<stateroot>/deploy/<checksum>.<serial>
    let var = deployment
        .parent()
        .and_then(Path::parent)
        .map(|os| os.join("var"))
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{}: not a deployment", deployment.display()))
        })?;
    if !var.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: the stateroot has no var directory",
            var.display()
        )));
    }
    Ok(var)
}

/// Bind-mount the booted deployment's stateroot `/var` onto `/var` unless something is
/// mounted there already. Returns the directory mounted, or `None` when nothing was to do.
pub fn setup_var() -> Result<Option<PathBuf>> {
    if !Path::new("/run/ostree-booted").exists() {
        return Err(Error::InvalidArgument(
            "not booted into a deployment (no /run/ostree-booted)".into(),
        ));
    }
    if is_mount_point(Path::new("/var"))? {
        return Ok(None);
    }
    let cmdline =
        std::fs::read_to_string("/proc/cmdline").ctx("read", Path::new("/proc/cmdline"))?;
    let var = stateroot_var(Path::new("/sysroot"), &cmdline)?;
    rustix::mount::mount_bind(&var, "/var").ctx("bind-mount onto", Path::new("/var"))?;
    Ok(Some(var))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateroot_var_follows_the_boot_link() {
        let t = tempfile::tempdir().expect("tempdir");
        let sr = t.path();
        let dep = sr.join("ostree/deploy/os/deploy/abc.0");
        std::fs::create_dir_all(&dep).expect("mkdir");
        std::fs::create_dir_all(sr.join("ostree/deploy/os/var")).expect("mkdir");
        std::fs::create_dir_all(sr.join("ostree/boot.1.0/os/k")).expect("mkdir");
        std::os::unix::fs::symlink(
            "../../../deploy/os/deploy/abc.0",
            sr.join("ostree/boot.1.0/os/k/0"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink("boot.1.0", sr.join("ostree/boot.1")).expect("symlink");
        let var = stateroot_var(sr, "rw ostree=/ostree/boot.1/os/k/0 quiet").expect("var");
        assert_eq!(
            var,
            std::fs::canonicalize(sr.join("ostree/deploy/os/var")).expect("canon")
        );
        assert!(stateroot_var(sr, "rw quiet").is_err());
        assert!(stateroot_var(sr, "ostree=/ostree/boot.0/os/k/0").is_err());
    }
}
