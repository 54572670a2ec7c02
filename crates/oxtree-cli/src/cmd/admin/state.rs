//! `admin unlock`, `lock-finalization`, `post-copy`, `state-overlay` and
//! `prepare-soft-reboot`: state of the running system around its deployments.

use super::boot::lock_sysroot;
use super::{parse_index, print_pruned, sysroot};
use crate::cmd::Global;
use anyhow::{bail, Result};
use clap::Args;
use oxtree::sysroot::Unlocked;
use std::path::PathBuf;

/// Make the booted deployment's /usr writable: an overlay until the next reboot, or kept
/// with --hotfix.
#[derive(Args)]
pub struct UnlockArgs {
    /// Retain changes across reboots (a clone of the deployment becomes the rollback).
    #[arg(long)]
    pub hotfix: bool,
    /// Mount the overlay read-only by default (remount it writable to change /usr).
    #[arg(long)]
    pub transient: bool,
}

pub fn unlock(g: &Global, a: UnlockArgs) -> Result<()> {
    let UnlockArgs { hotfix, transient } = a;
    let state = match (hotfix, transient) {
        (true, true) => bail!("Cannot specify both --hotfix and --transient"),
        (true, false) => Unlocked::Hotfix,
        (false, true) => Unlocked::Transient,
        (false, false) => Unlocked::Development,
    };
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    sr.unlock(state)?;
    if state == Unlocked::Hotfix {
        // The clone's deploy dropped a deployment: pruned, as ostree's does.
        print_pruned(&sr.prune_repo()?);
    }
    match state {
        Unlocked::Hotfix => print!(
            "Hotfix mode enabled.  A writable overlayfs is now mounted on /usr\n\
             for this booted deployment.  A non-hotfixed clone has been created\n\
             as the non-default rollback target.\n"
        ),
        Unlocked::Transient => print!(
            "A writable overlayfs is prepared for /usr, but is mounted read-only by default.\n\
             All changes there will be discarded on reboot.\n"
        ),
        _ => print!(
            "Development mode enabled.  A writable overlayfs is now mounted on /usr.\n\
             All changes there will be discarded on reboot.\n"
        ),
    }
    Ok(())
}

/// Lock finalization of the staged deployment (it stays staged at shutdown), or release it.
#[derive(Args)]
pub struct LockFinalizationArgs {
    /// Release the lock: the staged deployment is finalized at shutdown.
    #[arg(long, short = 'u')]
    pub unlock: bool,
}

pub fn lock_finalization(g: &Global, a: LockFinalizationArgs) -> Result<()> {
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    let changed = sr.change_finalization(!a.unlock)?;
    match (a.unlock, changed) {
        (false, true) => println!("Staged deployment is now finalization locked"),
        (false, false) => println!("Staged deployment is already finalization locked"),
        (true, true) => println!("Staged deployment is now queued to apply on shutdown"),
        (true, false) => println!("Staged deployment is already queued to apply on shutdown"),
    }
    Ok(())
}

/// Fix up a sysroot copied onto new storage: every deployment is marked immutable again.
#[derive(Args)]
pub struct PostCopyArgs {}

pub fn post_copy(g: &Global, _a: PostCopyArgs) -> Result<()> {
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    sr.post_copy()?;
    Ok(())
}

/// Mount a persistent overlay over MOUNTPATH, its changes kept in
/// /var/ostree/state-overlays/NAME across reboots and upgrades (what a new deployment
/// ships wins over a change of the same path).
#[derive(Args)]
pub struct StateOverlayArgs {
    pub name: Option<String>,
    pub mountpath: Option<PathBuf>,
}

pub fn state_overlay(g: &Global, a: StateOverlayArgs) -> Result<()> {
    let (Some(name), Some(mountpath)) = (a.name, a.mountpath) else {
        bail!("NAME and MOUNTPATH must be specified");
    };
    let sr = sysroot(g);
    for p in sr.state_overlay(&name, &mountpath)? {
        eprintln!(
            "{}: the new deployment ships {}; the local change was dropped",
            name,
            mountpath.join(&p).display()
        );
    }
    Ok(())
}

/// Prepare a systemd soft-reboot (userspace only) into the deployment at INDEX: it is
/// assembled at /run/nextroot.
#[derive(Args)]
pub struct SoftRebootArgs {
    /// Start the soft-reboot (`systemctl soft-reboot`) once prepared.
    #[arg(long)]
    pub reboot: bool,
    /// Undo a prepared soft-reboot.
    #[arg(long)]
    pub reset: bool,
    pub index: Option<String>,
}

pub fn prepare_soft_reboot(g: &Global, a: SoftRebootArgs) -> Result<()> {
    let SoftRebootArgs {
        reboot,
        reset,
        index,
    } = a;
    let sr = sysroot(g);
    if reset {
        if !sr.reset_soft_reboot()? {
            println!("No soft-reboot is prepared.");
        }
        return Ok(());
    }
    let Some(index) = index else {
        bail!("INDEX must be specified");
    };
    let index = parse_index(&index)?;
    let d = sr.prepare_soft_reboot(index)?;
    println!("Prepared soft-reboot into {} {}", d.stateroot, d.dirname());
    if reboot {
        let ok = std::process::Command::new("systemctl")
            .arg("soft-reboot")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!("the next root is prepared at /run/nextroot, but `systemctl soft-reboot` failed");
        }
    }
    Ok(())
}

/// The mounting half of prepare-soft-reboot.
#[derive(Args)]
pub struct ImplSoftRebootArgs {
    pub index: Option<String>,
}

pub fn impl_prepare_soft_reboot(g: &Global, a: ImplSoftRebootArgs) -> Result<()> {
    let Some(index) = a.index else {
        bail!("INDEX must be specified");
    };
    sysroot(g).prepare_soft_reboot(parse_index(&index)?)?;
    Ok(())
}
