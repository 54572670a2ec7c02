//! The early-boot root switch (`ostree-prepare-root`, spec §8.6): in the initramfs, with the
//! physical root mounted at `/sysroot`, make the deployment named by `ostree=` on the kernel
//! command line the new root: the deployment bind-mounted, `/usr` read-only, the stateroot's
//! `/var` bound in, the physical root reachable at `/sysroot` inside it, and the whole moved
//! onto `/sysroot` for the initramfs to switch to.

use crate::error::{Error, IoContext, Result};
use rustix::mount::{MountFlags, MountPropagationFlags};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct PrepareRootOptions {
    /// Where the physical root is mounted (`/sysroot` in an initramfs).
    pub sysroot: PathBuf,
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline: String,
    /// Where to record `ostree-booted` (`/run`).
    pub run_dir: PathBuf,
}

/// The deployment directory that `ostree=` on `cmdline` names (its `boot.N` link resolved),
/// with the physical root at `sysroot`.
///
/// As ostree-prepare-root checks: the path must be a symbolic link (`lstat`, `S_ISLNK`), not
/// a directory or anything else the command line can name; and, beyond ostree, it must
/// resolve to a deployment directory of the sysroot (`ostree/deploy/STATEROOT/deploy/NAME`),
/// with no `..` in the argument: `ostree=/../..` or a link to `/` would otherwise make the
/// initramfs' own root (or any directory) the new root.
pub fn booted_deployment(sysroot: &Path, cmdline: &str) -> Result<PathBuf> {
    let arg = cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("ostree="))
        .ok_or_else(|| {
            Error::InvalidArgument("no ostree= argument on the kernel command line".into())
        })?;
    let rel = Path::new(arg.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::InvalidArgument(format!(
            "ostree={arg}: not a plain path below the sysroot (no `..` or `.`)"
        )));
    }
    let link = sysroot.join(rel);
    let m = std::fs::symlink_metadata(&link).ctx("find the ostree= boot link", &link)?;
    if !m.file_type().is_symlink() {
        return Err(Error::InvalidArgument(format!(
            "ostree={arg}: {} is not a symbolic link (a boot link of ostree/boot.N)",
            link.display()
        )));
    }
    let target = std::fs::canonicalize(&link).ctx("resolve the ostree= boot link", &link)?;
    let deploy = sysroot.join("ostree/deploy");
    let deploy = std::fs::canonicalize(&deploy).ctx("resolve", &deploy)?;
    // <deploy>/<stateroot>/deploy/<checksum>.<serial>
    let stateroot_deploy = target.parent().filter(|p| p.ends_with("deploy"));
    let base = stateroot_deploy
        .and_then(Path::parent)
        .and_then(Path::parent);
    if base != Some(deploy.as_path()) || !target.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "ostree={arg}: {} resolves to {}, which is not a deployment in {}",
            link.display(),
            target.display(),
            deploy.display()
        )));
    }
    Ok(target)
}

/// Switch `opts.sysroot` to the deployment; returns the deployment directory it resolved.
pub fn prepare_root(opts: &PrepareRootOptions) -> Result<PathBuf> {
    let sysroot = &opts.sysroot;
    let deployment = booted_deployment(sysroot, &opts.cmdline)?;
    if !deployment.join("usr").is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a deployment (no usr/)",
            deployment.display()
        )));
    }
    let var = deployment.join("../../var");
    // Mounts made here must not propagate back into the initramfs' namespace.
    let _ = rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    );
    // Assemble the new root on a staging mount point beside the sysroot (its parent is the
    // initramfs' root, so the physical root can later move into it), then move it into place.
    let tmp = PathBuf::from(format!("{}.tmp", sysroot.display()));
    std::fs::create_dir_all(&tmp).ctx("create directory", &tmp)?;
    let bind =
        |src: &Path, dst: &Path| rustix::mount::mount_bind(src, dst).ctx("bind-mount onto", dst);
    let ensure_dir = |d: &Path| -> Result<()> {
        if !d.is_dir() {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
        }
        Ok(())
    };
    bind(&deployment, &tmp)?;
    // /usr read-only: a bind mount of itself, remounted read-only; or, for a deployment
    // unlocked with `admin unlock --hotfix`, its writable overlay (as ostree-prepare-root).
    let usr = tmp.join("usr");
    if deployment.join(".usr-ovl-work").is_dir() {
        super::live::mount_overlay(
            &usr,
            &deployment.join("usr"),
            &deployment.join(".usr-ovl-upper"),
            &deployment.join(".usr-ovl-work"),
            false,
        )?;
    } else {
        bind(&usr, &usr)?;
        rustix::mount::mount_remount(&usr, MountFlags::BIND | MountFlags::RDONLY, "")
            .ctx("remount read-only", &usr)?;
    }
    // /var is the stateroot's, shared by all its deployments.
    let dst = tmp.join("var");
    ensure_dir(&dst)?;
    bind(&var, &dst)?;
    // When /boot is not a partition of its own (the physical root's boot/loader is the
    // symlink ostree swaps), make it visible at /boot, as ostree-prepare-root does: the
    // booted system's `admin` commands find the loader entries there.
    let boot_dst = tmp.join("boot");
    if std::fs::symlink_metadata(sysroot.join("boot/loader")).is_ok_and(|m| m.is_symlink())
        && boot_dst.is_dir()
    {
        bind(&sysroot.join("boot"), &boot_dst)?;
    }
    // The physical root moves to /sysroot inside the new root: one mount of it, not two.
    let dst = tmp.join("sysroot");
    ensure_dir(&dst)?;
    rustix::mount::mount_move(sysroot, &dst).ctx("move the physical root onto", &dst)?;
    // Tell the booted system it runs a deployment (ostree's /run/ostree-booted).
    std::fs::create_dir_all(&opts.run_dir).ctx("create directory", &opts.run_dir)?;
    let marker = opts.run_dir.join("ostree-booted");
    std::fs::write(
        &marker,
        crate::gvariant::encode(&crate::gvariant::Value::dict_sv(Vec::new())),
    )
    .ctx("write", &marker)?;
    rustix::mount::mount_move(&tmp, sysroot).ctx("move the new root onto", sysroot)?;
    let _ = std::fs::remove_dir(&tmp);
    Ok(deployment)
}
