//! `admin`: bootable deployments in a sysroot. What scripts read on stdout is ostree's
//! text: the messages its library sends to the journal (`Copying /etc changes: …`,
//! `Bootloader updated; …`, `Freed objects: …`), which oxtree's library reports as
//! [`SysrootEvent`]s and [`print_event`] words, and each command's own lines.

mod boot;
mod config;
mod deploy;
mod state;
pub(crate) mod status;

pub use boot::prepare_root;

use super::Global;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use oxtree::sysroot::{Sysroot, SysrootEvent};
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
    /// Print the directory of the current (first) deployment and exit.
    #[arg(long)]
    pub print_current_dir: bool,
    #[command(subcommand)]
    pub cmd: Option<AdminCmd>,
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Create the top-level layout of a new physical root in PATH.
    InitFs(boot::InitFsArgs),
    /// Create a stateroot (an OS name with its own /var).
    #[command(alias = "stateroot-init")]
    OsInit(boot::OsInitArgs),
    /// Deploy a ref or commit of the system repo as the new default (checkout by hardlinks,
    /// /etc merge, kernel copy, Boot Loader Spec entries, atomic switch).
    Deploy(Box<deploy::DeployArgs>),
    /// Make the rollback (previous) deployment the default.
    Rollback(deploy::RollbackArgs),
    /// Make the deployment at INDEX the default for the next boot.
    SetDefault(deploy::SetDefaultArgs),
    /// Boot counting: run the health checks, and if all pass mark the booted deployment
    /// good (its entry stops counting down). A failing check leaves it unconfirmed, exits 1,
    /// and the bootloader falls back once its tries run out.
    BootComplete(boot::BootCompleteArgs),
    /// Early boot (systemd unit): make sure /var is the stateroot's (bind-mounted when the
    /// root switcher left that to the booted system, as ostree's does).
    Remount,
    /// Remove the deployment at INDEX (as listed by status, from 0).
    Undeploy(deploy::UndeployArgs),
    /// Change the "pinning" state of deployments: a pinned one is never removed
    /// automatically.
    Pin(deploy::PinArgs),
    /// Pull the default deployment's origin and deploy it if it changed.
    Upgrade(deploy::UpgradeArgs),
    /// Deploy another ref (REMOTE:REF is pulled first); later upgrades follow it.
    Switch(deploy::SwitchArgs),
    /// Change kernel arguments.
    Kargs {
        #[command(subcommand)]
        cmd: KargsCmd,
    },
    /// Set the origin of a deployment to REMOTENAME:BRANCH, adding the remote.
    SetOrigin(config::SetOriginArgs),
    /// List the /etc changes of the merge deployment against its defaults (M, D, A).
    #[command(alias = "config-diff")]
    Diff(config::DiffArgs),
    /// Make the booted deployment's /usr writable: an overlay until the next reboot, or
    /// kept with --hotfix.
    Unlock(state::UnlockArgs),
    /// Lock (or with --unlock release) finalization of the staged deployment.
    LockFinalization(state::LockFinalizationArgs),
    /// Fix up a sysroot copied onto new storage (deployments marked immutable again).
    PostCopy(state::PostCopyArgs),
    /// Mount a persistent overlay over MOUNTPATH, kept across upgrades as NAME.
    StateOverlay(state::StateOverlayArgs),
    /// Prepare a systemd soft-reboot (userspace only) into the deployment at INDEX.
    PrepareSoftReboot(state::SoftRebootArgs),
    /// The mounting half of prepare-soft-reboot (internal; the same as it without --reboot).
    ImplPrepareSoftReboot(state::ImplSoftRebootArgs),
    /// Commands for installer programs.
    Instutil {
        #[command(subcommand)]
        cmd: config::InstutilCmd,
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
    /// Change the kernel arguments of the deployments.
    EditInPlace(deploy::KargsEditArgs),
}

pub fn run(g: &Global, a: AdminArgs) -> Result<()> {
    let g = &Global {
        sysroot: a.sysroot,
        esp: a.esp,
        ..g.clone()
    };
    let cmd = match a.cmd {
        Some(c) => c,
        None if a.print_current_dir => return print_current_dir(g),
        None => {
            // As ostree: the usage on stderr, then the error line.
            let mut usage =
                <AdminArgs as clap::Args>::augment_args(clap::Command::new("oxtree admin"));
            eprintln!("{}", usage.render_help());
            anyhow::bail!("No \"admin\" subcommand specified");
        }
    };
    match cmd {
        AdminCmd::InitFs(a) => boot::init_fs(a),
        AdminCmd::OsInit(a) => boot::os_init(g, a),
        AdminCmd::Deploy(a) => deploy::deploy(g, *a),
        AdminCmd::Rollback(a) => deploy::rollback(g, a),
        AdminCmd::SetDefault(a) => deploy::set_default(g, a),
        AdminCmd::BootComplete(a) => boot::boot_complete(g, a),
        AdminCmd::Remount => boot::remount(),
        AdminCmd::Undeploy(a) => deploy::undeploy(g, a),
        AdminCmd::Pin(a) => deploy::pin(g, a),
        AdminCmd::Upgrade(a) => deploy::upgrade(g, a),
        AdminCmd::Switch(a) => deploy::switch(g, a),
        AdminCmd::Kargs {
            cmd: KargsCmd::EditInPlace(a),
        } => deploy::kargs_edit(g, a),
        AdminCmd::SetOrigin(a) => config::set_origin(g, a),
        AdminCmd::Diff(a) => config::diff(g, a),
        AdminCmd::Unlock(a) => state::unlock(g, a),
        AdminCmd::LockFinalization(a) => state::lock_finalization(g, a),
        AdminCmd::PostCopy(a) => state::post_copy(g, a),
        AdminCmd::StateOverlay(a) => state::state_overlay(g, a),
        AdminCmd::PrepareSoftReboot(a) => state::prepare_soft_reboot(g, a),
        AdminCmd::ImplPrepareSoftReboot(a) => state::impl_prepare_soft_reboot(g, a),
        AdminCmd::Instutil { cmd } => config::instutil(g, cmd),
        AdminCmd::PrepareRoot(a) => boot::prepare_root_cmd(g, a),
        AdminCmd::FinalizeStaged(a) => boot::finalize_staged(g, a),
        AdminCmd::Cleanup(a) => boot::cleanup(g, a),
        AdminCmd::Status(a) => status::status(g, a),
    }
}

/// The sysroot of `g`, with its events printed on stdout as ostree prints them.
pub(crate) fn sysroot(g: &Global) -> Sysroot {
    g.sysroot().with_events(print_event)
}

/// A sysroot event in ostree's words (its journal messages, which `ostree admin` prints on
/// stdout when not run under the journal).
pub(crate) fn print_event(e: &SysrootEvent) {
    match e {
        SysrootEvent::RelabelingVar => {
            println!("Relabeling /var (no stamp file 'var/.ostree-selabeled' found)")
        }
        SysrootEvent::EtcMerged {
            modified,
            removed,
            added,
        } => println!(
            "Copying /etc changes: {modified} modified, {removed} removed, {added} added"
        ),
        SysrootEvent::DeploymentsWritten {
            swapped,
            atomic,
            bootversion,
            subbootversion,
            count_change,
        } => println!(
            "{}; bootconfig swap: {}; bootversion: boot.{bootversion}.{subbootversion}, deployment count change: {count_change}",
            if *swapped && !*atomic {
                "Bootloader updated"
            } else {
                "Transaction complete"
            },
            if *swapped { "yes" } else { "no" }
        ),
        _ => {}
    }
}

/// A deployment INDEX argument as ostree reads it: a number from 0; its messages for
/// anything else.
pub(crate) fn parse_index(s: &str) -> Result<usize> {
    let t = s.trim();
    match t.parse::<i64>() {
        Ok(n) if n < 0 => bail!("Invalid index {n}"),
        Ok(n) => Ok(usize::try_from(n)?),
        Err(_) => bail!("Invalid index: {s}"),
    }
}

/// `Freed objects: SIZE` after a prune that freed something, as ostree reports it.
pub(crate) fn print_pruned(rep: &oxtree::repo::PruneReport) {
    if rep.freed_bytes > 0 {
        println!(
            "Freed objects: {}",
            crate::output::human_size(rep.freed_bytes)
        );
    }
}

/// `admin --print-current-dir`: the first deployment's directory, as an absolute path (as
/// ostree prints it; scripts use it to find the deployed tree).
fn print_current_dir(g: &Global) -> Result<()> {
    let sr = g.sysroot();
    if let Err(e) = std::fs::read_dir(sr.path().join("ostree")) {
        anyhow::bail!("{}", crate::output::strerror(&e));
    }
    let deps = sr.deployments()?;
    let Some(d) = deps.first() else {
        anyhow::bail!("Unable to find a deployment in sysroot");
    };
    let root = std::path::absolute(sr.path()).unwrap_or_else(|_| sr.path().to_path_buf());
    let dir = format!(
        "ostree/deploy/{}/deploy/{}.{}",
        d.stateroot, d.checksum, d.deployserial
    );
    println!("{}", root.join(dir).display());
    Ok(())
}
