//! `admin`: bootable deployments in a sysroot.

mod boot;
mod deploy;
mod status;

pub use boot::prepare_root;

use super::Global;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct AdminArgs {
    /// Path to the physical root (default: $OSTREE_SYSROOT, else /).
    #[arg(long, global = true, value_name = "PATH")]
    pub sysroot: Option<PathBuf>,
    /// The EFI system partition (mounted, or a directory), for the systemd-boot backend
    /// (`[sysroot] bootloader=systemd-boot`); default: the FAT mount at /efi, /boot/efi or
    /// /boot of the running system.
    #[arg(long, global = true, value_name = "PATH")]
    pub esp: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Create the top-level layout of a new physical root in DIR.
    InitFs { dir: PathBuf },
    /// Create a stateroot (an OS name with its own /var).
    #[command(alias = "stateroot-init")]
    OsInit(boot::OsInitArgs),
    /// Deploy a ref or commit of the system repo as the new default (checkout by hardlinks,
    /// /etc merge, kernel copy, Boot Loader Spec entries, atomic switch).
    Deploy(deploy::DeployArgs),
    /// Make the rollback (previous) deployment the default.
    Rollback(deploy::RollbackArgs),
    /// Boot counting: run the health checks, and if all pass mark the booted deployment
    /// good (its entry stops counting down). A failing check leaves it unconfirmed, exits 1,
    /// and the bootloader falls back once its tries run out.
    BootComplete(boot::BootCompleteArgs),
    /// Early boot (systemd unit): make sure /var is the stateroot's (bind-mounted when the
    /// root switcher left that to the booted system, as ostree's does).
    Remount,
    /// Remove the deployment at INDEX (as listed by status, from 0).
    Undeploy(deploy::UndeployArgs),
    /// Pin the deployment at INDEX so it is never removed automatically (--unpin undoes).
    Pin(deploy::PinArgs),
    /// Pull the default deployment's origin and deploy it if it changed.
    Upgrade(deploy::UpgradeArgs),
    /// Deploy another ref (REMOTE:REF is pulled first); later upgrades follow it.
    Switch(deploy::SwitchArgs),
    /// Edit the default deployment's kernel arguments.
    Kargs {
        #[command(subcommand)]
        cmd: KargsCmd,
    },
    /// Early boot (initramfs): make the deployment named by `ostree=` the new root at
    /// --sysroot (default /sysroot; also run as `ostree-prepare-root SYSROOT`).
    PrepareRoot(boot::PrepareRootArgs),
    /// Switch to the staged deployment (run at shutdown by the finalize service).
    FinalizeStaged(boot::FinalizeStagedArgs),
    /// Remove deployments and boot files no longer in the boot configuration.
    Cleanup(boot::CleanupArgs),
    /// List deployments: the default first, with their version and origin.
    Status(status::StatusArgs),
}

#[derive(Subcommand)]
pub enum KargsCmd {
    /// Change the kernel arguments of the default deployment (written as a new boot config).
    EditInPlace(deploy::KargsEditArgs),
}

pub fn run(g: &Global, a: AdminArgs) -> Result<()> {
    let g = &Global {
        sysroot: a.sysroot,
        esp: a.esp,
        ..g.clone()
    };
    match a.cmd {
        AdminCmd::InitFs { dir } => {
            oxtree::sysroot::Sysroot::init_fs(&dir)?;
            Ok(())
        }
        AdminCmd::OsInit(a) => boot::os_init(g, a),
        AdminCmd::Deploy(a) => deploy::deploy(g, a),
        AdminCmd::Rollback(a) => deploy::rollback(g, a),
        AdminCmd::BootComplete(a) => boot::boot_complete(g, a),
        AdminCmd::Remount => boot::remount(),
        AdminCmd::Undeploy(a) => deploy::undeploy(g, a),
        AdminCmd::Pin(a) => deploy::pin(g, a),
        AdminCmd::Upgrade(a) => deploy::upgrade(g, a),
        AdminCmd::Switch(a) => deploy::switch(g, a),
        AdminCmd::Kargs {
            cmd: KargsCmd::EditInPlace(a),
        } => deploy::kargs_edit(g, a),
        AdminCmd::PrepareRoot(a) => boot::prepare_root_cmd(g, a),
        AdminCmd::FinalizeStaged(a) => boot::finalize_staged(g, a),
        AdminCmd::Cleanup(a) => boot::cleanup(g, a),
        AdminCmd::Status(a) => status::status(g, a),
    }
}
