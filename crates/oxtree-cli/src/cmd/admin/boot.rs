//! `admin init-fs`, `os-init`, `boot-complete`, `finalize-staged`, `cleanup`, `remount`
//! and `prepare-root`: setting up a sysroot and the steps around a boot.

use crate::cmd::Global;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::sysroot::Sysroot;
use std::path::PathBuf;

/// Create the top-level layout of a new physical root in PATH.
#[derive(Args)]
pub struct InitFsArgs {
    /// Only create /boot and /ostree (layout epoch 1).
    #[arg(long)]
    pub modern: bool,
    /// Layout epoch: 0 (the default) adds the legacy top-level directories, 1 is --modern.
    #[arg(long, short = 'E', value_name = "VERSION")]
    pub epoch: Option<u32>,
    pub path: Option<PathBuf>,
}

pub fn init_fs(a: InitFsArgs) -> Result<()> {
    let InitFsArgs {
        modern,
        epoch,
        path,
    } = a;
    let Some(path) = path else {
        bail!("PATH must be specified");
    };
    let modern = match epoch {
        None | Some(0) => modern,
        Some(1) => true,
        Some(n) => bail!("Invalid epoch: {n}"),
    };
    if let Err(e) = std::fs::read_dir(&path) {
        bail!(
            "opendir({}): {}",
            path.display(),
            crate::output::strerror(&e)
        );
    }
    Sysroot::init_fs_with(&path, modern)?;
    Ok(())
}

/// Create a stateroot (an OS name with its own /var).
#[derive(Args)]
pub struct OsInitArgs {
    pub stateroot: Option<String>,
}

pub fn os_init(g: &Global, a: OsInitArgs) -> Result<()> {
    let OsInitArgs { stateroot } = a;
    let Some(stateroot) = stateroot else {
        bail!("OSNAME must be specified");
    };
    g.sysroot().os_init(&stateroot)?;
    println!("ostree/deploy/{stateroot} initialized as OSTree root");
    Ok(())
}

/// Boot counting: run the health checks, and if all pass mark the booted deployment
/// good (its entry stops counting down). A failing check leaves it unconfirmed, exits 1,
/// and the bootloader falls back once its tries run out.
#[derive(Args)]
pub struct BootCompleteArgs {
    /// The deployment to mark, when not running on the sysroot (tests, image builds).
    #[arg(long)]
    pub index: Option<usize>,
    /// Directory of health checks: executables run in name order; any failing one
    /// means the boot is not good.
    #[arg(long, value_name = "DIR", default_value = "/etc/oxtree/health.d")]
    pub health_dir: PathBuf,
    /// Mark good without running the health checks.
    #[arg(long)]
    pub skip_health_checks: bool,
    /// When systemd-boot counts this boot (the bootloader backend is systemd-boot and
    /// its LoaderBootCountPath variable is set) and systemd-bless-boot is installed, only
    /// run the health checks: systemd-bless-boot.service marks the entry good once
    /// boot-complete.target, which this unit is ordered before, is reached.
    #[arg(long)]
    pub leave_to_bless_boot: bool,
}

/// systemd-bless-boot, which Debian's `systemd-boot` package installs.
fn bless_boot_installed() -> bool {
    [
        "/usr/lib/systemd/systemd-bless-boot",
        "/lib/systemd/systemd-bless-boot",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).is_file())
}

pub fn boot_complete(g: &Global, a: BootCompleteArgs) -> Result<()> {
    let BootCompleteArgs {
        index,
        health_dir,
        skip_health_checks,
        leave_to_bless_boot,
    } = a;
    warn_finalize_failure(&g.sysroot());
    if !skip_health_checks {
        let failed = Sysroot::run_health_checks(&health_dir)?;
        if !failed.is_empty() {
            for (check, why) in &failed {
                eprintln!("health check failed: {check}: {why}");
            }
            bail!(
                "{} health check(s) failed: this boot is not marked good; the bootloader \
                 counts it down and boots the previous deployment when its tries run out",
                failed.len()
            );
        }
    }
    let sr = g.sysroot();
    if leave_to_bless_boot
        && index.is_none()
        && sr.bootloader()? == oxtree::sysroot::esp::Bootloader::SystemdBoot
        && oxtree::sysroot::esp::loader_variable("LoaderBootCountPath").is_some()
        && bless_boot_installed()
    {
        println!(
            "Health checks passed; systemd-bless-boot marks this boot good (boot-complete.target)."
        );
        return Ok(());
    }
    // Not booted into this sysroot and no --index: nothing to mark, as for ostree (whose
    // boot-complete only reports a failed finalize).
    if index.is_none() && !sr.deployments()?.iter().any(|d| d.booted) {
        return Ok(());
    }
    let _lock = lock_sysroot(&sr)?;
    match sr.boot_complete(index)? {
        Some(d) => println!("Marked {} as good", d.dirname()),
        None => println!("Deployment already marked good."),
    }
    Ok(())
}

/// Switch to the staged deployment (run at shutdown by the finalize service).
#[derive(Args)]
pub struct FinalizeStagedArgs {
    /// Only wait until stopped (ostree's ostree-finalize-staged-hold.service runs this
    /// to keep /boot busy until the finalize is done).
    #[arg(long)]
    pub hold: bool,
}

pub fn finalize_staged(g: &Global, a: FinalizeStagedArgs) -> Result<()> {
    let FinalizeStagedArgs { hold } = a;
    if hold {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    let opts = oxtree::sysroot::DeployOptions::default();
    let sr = super::sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    if sr.finalization_locked() && sr.read_staged()?.is_some() {
        // ostree's message: the staged deployment stays (until the reboot forgets it).
        println!("Not finalizing; found /run/ostree/staged-deployment-locked");
        return Ok(());
    }
    // (Nothing staged: nothing to say, as ostree.)
    if let Some(d) = sr.finalize_staged(&opts)? {
        println!(
            "Finalized staged deployment {} {}",
            d.stateroot,
            d.dirname()
        );
    }
    Ok(())
}

/// Remove deployments and boot files no longer in the boot configuration.
#[derive(Args)]
pub struct CleanupArgs {
    /// (Arguments are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn cleanup(g: &Global, _a: CleanupArgs) -> Result<()> {
    let sr = super::sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    super::print_pruned(&sr.cleanup_and_prune()?);
    Ok(())
}

/// Early boot (initramfs): make the deployment named by `ostree=` the new root at
/// --sysroot (also run as `ostree-prepare-root SYSROOT`).
#[derive(Args)]
pub struct PrepareRootArgs {
    /// Kernel command line to read instead of /proc/cmdline.
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Directory for the ostree-booted marker.
    #[arg(long, default_value = "/run")]
    pub run_dir: PathBuf,
}

pub fn prepare_root_cmd(g: &Global, a: PrepareRootArgs) -> Result<()> {
    let sysroot = g
        .sysroot
        .clone()
        .unwrap_or_else(|| PathBuf::from("/sysroot"));
    prepare_root(sysroot, a.cmdline, a.run_dir)
}

pub fn remount() -> Result<()> {
    match oxtree::sysroot::remount::setup_var()? {
        Some(v) => println!("Mounted {} on /var", v.display()),
        None => println!("/var is already mounted."),
    }
    Ok(())
}

/// `--reboot`: hand over to systemd (or plain `reboot` without it); with `kexec`, into
/// the kernel loaded by `--kexec` (`systemctl kexec`).
pub fn reboot_now(kexec: bool) -> Result<()> {
    if kexec {
        let ok = std::process::Command::new("systemctl")
            .arg("kexec")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!("the new kernel is loaded, but `systemctl kexec` failed: run it, or reboot, by hand");
        }
        return Ok(());
    }
    let ok = std::process::Command::new("systemctl")
        .arg("reboot")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        || std::process::Command::new("reboot")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        bail!("the deployment is ready, but rebooting failed: reboot by hand to use it");
    }
    Ok(())
}

/// Say so when the last staged deployment failed to finalize (pain point: a failure at
/// shutdown is otherwise invisible; the machine just boots the old deployment again).
pub fn warn_finalize_failure(sr: &oxtree::sysroot::Sysroot) {
    if let Some(why) = sr.finalize_failure() {
        eprintln!(
            "warning: the last staged deployment failed to finalize at shutdown, so the \
             upgrade did not happen: {why}\n  (journal: journalctl -b -1 -u \
             oxtree-finalize-staged; stage it again with `oxtree admin upgrade --stage`)"
        );
    }
}

/// Take the sysroot lock for a command that changes the sysroot, saying so on stderr when
/// another process (oxtree, ostree, rpm-ostree) holds it, as `ostree admin` does, and
/// waiting for it.
pub fn lock_sysroot(sr: &Sysroot) -> Result<oxtree::sysroot::SysrootLock<'_>> {
    Ok(sr.lock(|| eprintln!("Waiting for sysroot lock..."))?)
}

pub fn prepare_root(sysroot: PathBuf, cmdline: Option<String>, run_dir: PathBuf) -> Result<()> {
    let cmdline = match cmdline {
        Some(c) => c,
        None => std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?,
    };
    let d = oxtree::sysroot::prepare_root::prepare_root(
        &oxtree::sysroot::prepare_root::PrepareRootOptions {
            sysroot: sysroot.clone(),
            cmdline,
            run_dir,
        },
    )?;
    println!(
        "oxtree: booting deployment {} as the root at {}",
        d.display(),
        sysroot.display()
    );
    Ok(())
}
