//! Operations on the running system's mounts and on a copied sysroot: `admin unlock` (a
//! writable overlayfs on the booted deployment's read-only `/usr`), `state-overlay` (a
//! persistent overlay over a read-only directory, kept across upgrades), `prepare-soft-
//! reboot` (a deployment assembled at `/run/nextroot` for systemd's userspace-only
//! reboot), and `post-copy` (what a copy onto new storage loses: the immutable bit of each
//! deployment).
//!
//! Mounts are made where the running system sees them (`/usr`, `/run/nextroot`, the given
//! path), so the effect is the same as ostree's; tests run them in a private mount
//! namespace. The records are ostree's: `/run/ostree/deployment-state/CSUM.SERIAL/
//! unlocked-{development,transient}` for a temporary unlock, `[origin] unlocked=hotfix` and the
//! `.usr-ovl-upper`/`.usr-ovl-work` directories in the deployment for a hotfix (which the
//! root switcher mounts again at every boot).

use super::{DeployOptions, Deployment, Sysroot, Unlocked};
use crate::error::{Error, IoContext, Result};
use rustix::mount::{MountFlags, UnmountFlags};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An overlayfs mount option value: the kernel splits options on `,` and lower layers on
/// `:`, and `\` escapes; a path with any of them is refused rather than misread.
fn ovl_path(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a UTF-8 path", p.display())))?;
    if s.contains([',', ':', '\\']) || s.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{s}: an overlay layer path may not contain ',', ':' or '\\'"
        )));
    }
    Ok(s.to_string())
}

/// Mount an overlayfs on `target` with `lower` read-only below and `upper`/`work` on top.
pub(crate) fn mount_overlay(
    target: &Path,
    lower: &Path,
    upper: &Path,
    work: &Path,
    read_only: bool,
) -> Result<()> {
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        ovl_path(lower)?,
        ovl_path(upper)?,
        ovl_path(work)?
    );
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let data = std::ffi::CString::new(data)
        .map_err(|_| Error::InvalidArgument("overlay options with a NUL byte".into()))?;
    rustix::mount::mount("overlay", target, "overlay", flags, Some(data.as_c_str()))
        .map_err(std::io::Error::from)
        .ctx("mount an overlay filesystem on", target)
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    match std::fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => return Ok(()),
        Err(e) => return Err(e).ctx("create directory", p),
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).ctx("chmod", p)
}

impl Sysroot {
    fn dir_of(&self, d: &Deployment) -> PathBuf {
        self.path
            .join("ostree/deploy")
            .join(&d.stateroot)
            .join("deploy")
            .join(d.dirname())
    }

    /// `admin unlock`: an overlayfs on `/usr` of the booted deployment. `Development`:
    /// writable, its layers in `/var/tmp`, gone at the reboot. `Transient`: the same,
    /// mounted read-only (remount it writable to change it). `Hotfix`: kept across reboots
    /// (its layers in the deployment), after a clone of the deployment was written as the
    /// rollback target. Returns the booted deployment.
    pub fn unlock(&self, state: Unlocked) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let booted = list.iter().find(|d| d.booted).cloned().ok_or_else(|| {
            Error::InvalidArgument("Not currently booted into an OSTree system".into())
        })?;
        if booted.unlocked != Unlocked::None {
            return Err(Error::InvalidArgument(format!(
                "Deployment is already in unlocked state: {}",
                booted.unlocked.as_str()
            )));
        }
        let ddir = self.dir_of(&booted);
        let usr = Path::new("/usr");
        match state {
            Unlocked::None => {
                return Err(Error::InvalidArgument(
                    "Change to unlocked state none is not supported".into(),
                ))
            }
            Unlocked::Hotfix => {
                // The rollback target first: the same commit, without the hotfix, right
                // after the booted deployment.
                let origin = booted.origin.as_ref().map(|o| {
                    let mut o = super::deploy::normalized_origin(o);
                    o.remove_key("origin", "unlocked");
                    o
                });
                self.deploy(
                    &booted.checksum.to_hex(),
                    &DeployOptions {
                        os: Some(booted.stateroot.clone()),
                        not_as_default: true,
                        origin,
                        ..Default::default()
                    },
                )?;
                let (upper, work) = (ddir.join(".usr-ovl-upper"), ddir.join(".usr-ovl-work"));
                // The deployment's top directory is immutable: lifted just for the two
                // directories ostree-prepare-root looks for.
                crate::fsutil::set_immutable(&ddir, false)?;
                let made = mkdir(&upper, 0o755).and_then(|()| mkdir(&work, 0o755));
                if !super::debug_flag("mutable-deployments") {
                    crate::fsutil::set_immutable(&ddir, true)?;
                }
                made?;
                // Recorded before mounting: a crash in between leaves a hotfix that the
                // next boot mounts, never a mounted overlay nothing knows of.
                let path = self.origin_path(&booted);
                let mut origin = booted
                    .origin
                    .as_ref()
                    .map(super::deploy::glib_keyfile)
                    .unwrap_or_default();
                origin.set("origin", "unlocked", "hotfix");
                crate::fsutil::write_atomic(&path, origin.to_string().as_bytes(), true)?;
                if let Err(e) = mount_overlay(usr, &ddir.join("usr"), &upper, &work, false) {
                    origin.remove_key("origin", "unlocked");
                    let _ = crate::fsutil::write_atomic(&path, origin.to_string().as_bytes(), true);
                    return Err(e);
                }
            }
            Unlocked::Development | Unlocked::Transient => {
                let base = tempfile::Builder::new()
                    .prefix("ostree-unlock-ovl.")
                    .tempdir_in("/var/tmp")
                    .ctx("create a directory in", Path::new("/var/tmp"))?
                    .keep();
                std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
                    .ctx("chmod", &base)?;
                let (upper, work) = (base.join("upper"), base.join("work"));
                mkdir(&upper, 0o755)?;
                mkdir(&work, 0o755)?;
                mount_overlay(
                    usr,
                    &ddir.join("usr"),
                    &upper,
                    &work,
                    state == Unlocked::Transient,
                )?;
                let rs = self.runstate_dir(&booted.checksum, booted.deployserial);
                std::fs::create_dir_all(&rs).ctx("create directory", &rs)?;
                // Holding the overlay's directory, as ostree's record does.
                let flag = rs.join(format!("unlocked-{}", state.as_str()));
                crate::fsutil::write_atomic(&flag, base.as_os_str().as_encoded_bytes(), true)?;
            }
        }
        Ok(booted)
    }

    /// `admin lock-finalization [--unlock]`: lock (or release) finalization of the staged
    /// deployment; `false` when it already was so.
    pub fn change_finalization(&self, locked: bool) -> Result<bool> {
        let _lock = self.lock(|| {})?;
        if self.read_staged()?.is_none() {
            return Err(Error::InvalidArgument("No deployment is staged".into()));
        }
        let was = self.finalization_locked();
        self.set_finalization_locked(locked)?;
        Ok(was != locked)
    }

    /// `admin post-copy`: after the sysroot was copied onto new storage (a `cp -a` or an
    /// image build loses inode flags), mark every deployment's top directory immutable
    /// again, as deploy left it. Returns how many were marked.
    pub fn post_copy(&self) -> Result<usize> {
        let _lock = self.lock(|| {})?;
        let mut dirs: Vec<PathBuf> = self.deployments()?.iter().map(|d| self.dir_of(d)).collect();
        if let Some(s) = self.staged_deployment()? {
            dirs.push(self.dir_of(&s));
        }
        for d in &dirs {
            crate::fsutil::set_immutable(d, true)?;
        }
        Ok(dirs.len())
    }

    /// `/var` of the running system, or of the default deployment's stateroot for a sysroot
    /// that is not `/`.
    fn var_dir(&self) -> Result<PathBuf> {
        if self.path == Path::new("/") {
            return Ok(PathBuf::from("/var"));
        }
        let list = self.deployments()?;
        let d = list
            .first()
            .ok_or_else(|| Error::InvalidArgument("no deployments".into()))?;
        Ok(self
            .path
            .join("ostree/deploy")
            .join(&d.stateroot)
            .join("var"))
    }

    /// `admin state-overlay NAME MOUNTPATH`: mount a writable overlay over the read-only
    /// `mountpath` with its changes kept in `/var/ostree/state-overlays/NAME`, across
    /// reboots and upgrades. When the deployment changed since the last mount, what the
    /// new deployment ships wins: changes to paths it has are dropped (the others stay).
    /// Returns the paths dropped.
    pub fn state_overlay(&self, name: &str, mountpath: &Path) -> Result<Vec<PathBuf>> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidArgument(format!(
                "invalid state overlay name {name:?}"
            )));
        }
        if !mountpath.is_absolute() || !mountpath.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: not an absolute path to a directory",
                mountpath.display()
            )));
        }
        let list = self.deployments()?;
        let current = list
            .iter()
            .find(|d| d.booted)
            .or(list.first())
            .ok_or_else(|| Error::InvalidArgument("no deployments".into()))?
            .checksum;
        let base = self.var_dir()?.join("ostree/state-overlays").join(name);
        std::fs::create_dir_all(&base).ctx("create directory", &base)?;
        let (upper, work) = (base.join("upper"), base.join("work"));
        mkdir(&upper, 0o755)?;
        mkdir(&work, 0o755)?;
        let record = base.join("commit");
        let seen = std::fs::read_to_string(&record)
            .ok()
            .map(|s| s.trim().to_string());
        let mut dropped = Vec::new();
        if seen.as_deref() != Some(current.to_hex().as_str()) {
            if seen.is_some() {
                drop_shadowed(&upper, mountpath, Path::new(""), &mut dropped)?;
            }
            crate::fsutil::write_atomic(&record, format!("{current}\n").as_bytes(), true)?;
        }
        mount_overlay(mountpath, mountpath, &upper, &work, false)?;
        Ok(dropped)
    }

    /// Where `prepare-soft-reboot` assembles the next root: systemd's `/run/nextroot`.
    fn nextroot(&self) -> PathBuf {
        self.run_dir().join("nextroot")
    }

    /// `admin prepare-soft-reboot INDEX`: assemble the deployment at `index` at
    /// `/run/nextroot` as the root switcher would (its `/usr` read-only, or with its hotfix
    /// overlay; the stateroot's `/var`; the physical root at `/sysroot`; `/boot`), so that
    /// `systemctl soft-reboot` switches userspace into it. Returns the deployment.
    pub fn prepare_soft_reboot(&self, index: usize) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let d = match self.indexed(index)? {
            super::ops::Indexed::Listed(i, list) => list[i].clone(),
            super::ops::Indexed::Staged(_) => {
                return Err(Error::InvalidArgument(format!(
                "Deployment {index} is staged: finalize it (a reboot) before a soft-reboot into it"
            )))
            }
        };
        let target = self.nextroot();
        if is_mount_point(&target)? {
            return Err(Error::InvalidArgument(format!(
                "{}: a soft-reboot is prepared already (undo it with --reset)",
                target.display()
            )));
        }
        let ddir = self.dir_of(&d);
        std::fs::create_dir_all(&target).ctx("create directory", &target)?;
        let bind = |src: &Path, dst: &Path, recursive: bool| {
            let r = if recursive {
                rustix::mount::mount_bind_recursive(src, dst)
            } else {
                rustix::mount::mount_bind(src, dst)
            };
            r.map_err(std::io::Error::from).ctx("bind-mount onto", dst)
        };
        let assemble = || -> Result<()> {
            bind(&ddir, &target, false)?;
            let usr = target.join("usr");
            if ddir.join(".usr-ovl-work").is_dir() {
                mount_overlay(
                    &usr,
                    &ddir.join("usr"),
                    &ddir.join(".usr-ovl-upper"),
                    &ddir.join(".usr-ovl-work"),
                    false,
                )?;
            } else {
                bind(&usr, &usr, false)?;
                rustix::mount::mount_remount(&usr, MountFlags::BIND | MountFlags::RDONLY, "")
                    .map_err(std::io::Error::from)
                    .ctx("remount read-only", &usr)?;
            }
            let var = self
                .path
                .join("ostree/deploy")
                .join(&d.stateroot)
                .join("var");
            bind(&var, &target.join("var"), false)?;
            if target.join("sysroot").is_dir() {
                bind(&self.path, &target.join("sysroot"), true)?;
            }
            if target.join("boot").is_dir() {
                bind(&self.path.join("boot"), &target.join("boot"), true)?;
            }
            Ok(())
        };
        if let Err(e) = assemble() {
            let _ = rustix::mount::unmount(&target, UnmountFlags::DETACH);
            return Err(e);
        }
        Ok(d)
    }

    /// `prepare-soft-reboot --reset`: take down what `prepare_soft_reboot` assembled;
    /// `false` when nothing was prepared.
    pub fn reset_soft_reboot(&self) -> Result<bool> {
        let target = self.nextroot();
        if !is_mount_point(&target)? {
            return Ok(false);
        }
        // Detached as a whole: the mounts below it go with it.
        rustix::mount::unmount(&target, UnmountFlags::DETACH)
            .map_err(std::io::Error::from)
            .ctx("unmount", &target)?;
        Ok(true)
    }
}

/// Whether `p` is a mount point (by /proc/self/mountinfo).
fn is_mount_point(p: &Path) -> Result<bool> {
    let Ok(canon) = std::fs::canonicalize(p) else {
        return Ok(false);
    };
    let mi = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(mi).ctx("read", mi)?;
    let want = canon.to_string_lossy();
    Ok(text.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| unescape_mountinfo(m) == want)
    }))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| c == b'\\' && d.iter().all(|x| (b'0'..=b'7').contains(x)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, x| v.wrapping_mul(8).wrapping_add(x - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Remove from the overlay's upper layer every non-directory entry (a changed file, a
/// symlink, a whiteout) at a path the lower layer has: the new deployment's version wins.
fn drop_shadowed(upper: &Path, lower: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    crate::stack::check(|| upper.join(rel).display().to_string())?;
    let dir = upper.join(rel);
    for e in std::fs::read_dir(&dir).ctx("read directory", &dir)? {
        let e = e.ctx("read directory", &dir)?;
        let r = rel.join(e.file_name());
        let up = upper.join(&r);
        let m = std::fs::symlink_metadata(&up).ctx("stat", &up)?;
        let in_lower = std::fs::symlink_metadata(lower.join(&r)).is_ok();
        if m.is_dir() {
            drop_shadowed(upper, lower, &r, out)?;
        } else if in_lower {
            std::fs::remove_file(&up).ctx("remove", &up)?;
            out.push(r);
        }
    }
    Ok(())
}
