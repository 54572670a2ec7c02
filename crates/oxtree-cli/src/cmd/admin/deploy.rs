use super::boot::{lock_sysroot, reboot_now};
use crate::cmd::Global;
use crate::output::human_size;
use anyhow::{Context, Result};
use clap::Args;

/// Deploy a ref or commit of the system repo as the new default (checkout by hardlinks,
/// /etc merge, kernel copy, Boot Loader Spec entries, atomic switch).
#[derive(Args)]
pub struct DeployArgs {
    /// Stateroot to deploy into.
    #[arg(long)]
    pub os: Option<String>,
    /// Kernel arguments, replacing the inherited ones (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub karg: Vec<String>,
    /// Kernel arguments appended to the inherited ones (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub karg_append: Vec<String>,
    /// Use the running kernel's command line (/proc/cmdline) as the kernel arguments.
    #[arg(long)]
    pub karg_proc_cmdline: bool,
    /// Keep every existing deployment.
    #[arg(long)]
    pub retain: bool,
    /// Also keep the rollback deployment (the one after the booted one).
    #[arg(long)]
    pub retain_rollback: bool,
    /// Prepare now; switch at shutdown (`admin finalize-staged`, run by the finalize service).
    #[arg(long)]
    pub stage: bool,
    /// REF or CHECKSUM.
    pub refspec: String,
}

pub fn deploy(g: &Global, a: DeployArgs) -> Result<()> {
    let DeployArgs {
        os,
        mut karg,
        karg_append,
        karg_proc_cmdline,
        retain,
        retain_rollback,
        stage,
        refspec,
    } = a;
    let sr = g.sysroot();
    if karg_proc_cmdline {
        let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
        // The bootloader's and ostree's own arguments are not the OS's to keep.
        karg.extend(
            cmdline
                .split_whitespace()
                .filter(|a| {
                    !a.starts_with("BOOT_IMAGE=")
                        && !a.starts_with("initrd=")
                        && !a.starts_with("ostree=")
                })
                .map(str::to_string),
        );
    }
    let opts = oxtree::sysroot::DeployOptions {
        os,
        kargs: (!karg.is_empty()).then_some(karg),
        karg_append,
        retain,
        retain_rollback,
        stage,
    };
    let _lock = lock_sysroot(&sr)?;
    let d = sr.deploy(&refspec, &opts)?;
    if stage {
        println!(
            "Staged {} {}; it becomes the default at shutdown (admin finalize-staged)",
            d.stateroot,
            d.dirname()
        );
        return Ok(());
    }
    println!(
        "Deployed {} {} (bootversion switched; {} is now the default)",
        d.stateroot,
        d.dirname(),
        refspec
    );
    Ok(())
}

/// Pull the default deployment's origin and deploy it if it changed.
#[derive(Args)]
pub struct UpgradeArgs {
    /// Only pull; do not deploy.
    #[arg(long)]
    pub pull_only: bool,
    /// Only deploy what was already pulled.
    #[arg(long)]
    pub deploy_only: bool,
    /// Accept a commit older than the deployed one.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Prepare the new deployment now; switch to it at shutdown (the finalize service),
    /// with the /etc merge done then, so edits made until the reboot are kept.
    #[arg(long)]
    pub stage: bool,
    /// Also keep the rollback deployment (the one after the booted one).
    #[arg(long)]
    pub retain_rollback: bool,
    /// Reboot into the new deployment when done.
    #[arg(long, short = 'r')]
    pub reboot: bool,
}

pub fn upgrade(g: &Global, a: UpgradeArgs) -> Result<()> {
    let UpgradeArgs {
        pull_only,
        deploy_only,
        allow_downgrade,
        stage,
        retain_rollback,
        reboot,
    } = a;
    let opts = oxtree::sysroot::DeployOptions {
        stage,
        retain_rollback,
        ..Default::default()
    };
    // Held across the pull and the deploy, as ostree holds it.
    let sr = g.sysroot();
    let lock = lock_sysroot(&sr)?;
    let (deployed, pulled) = sr.upgrade(pull_only, deploy_only, allow_downgrade, &opts)?;
    if let Some(p) = &pulled {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
        let how = match p.deltas.as_slice() {
            [] => String::new(),
            d => format!(" via static delta {}", d.join(", ")),
        };
        println!(
            "Fetched {} objects, {} in {} requests{how}",
            p.objects_fetched,
            human_size(p.bytes_fetched),
            p.requests
        );
    }
    match &deployed {
        Some(d) if stage => println!(
            "Staged {} {}: it becomes the default at shutdown; reboot to use it",
            d.stateroot,
            d.dirname()
        ),
        Some(d) => println!(
            "Upgraded: {} {} is now the default; reboot to use it",
            d.stateroot,
            d.dirname()
        ),
        None if pull_only => println!("Pulled."),
        None => println!("No update available."),
    }
    drop(lock);
    if deployed.is_some() && reboot {
        reboot_now()?;
    }
    Ok(())
}

/// Deploy another ref (REMOTE:REF is pulled first); later upgrades follow it.
#[derive(Args)]
pub struct SwitchArgs {
    /// Reboot into it when done.
    #[arg(long, short = 'r')]
    pub reboot: bool,
    pub refspec: String,
}

pub fn switch(g: &Global, a: SwitchArgs) -> Result<()> {
    let SwitchArgs { reboot, refspec } = a;
    let opts = oxtree::sysroot::DeployOptions::default();
    let sr = g.sysroot();
    let lock = lock_sysroot(&sr)?;
    let d = sr.switch(&refspec, &opts)?;
    drop(lock);
    println!(
        "Switched to {refspec}: {} {} is now the default",
        d.stateroot,
        d.dirname()
    );
    if reboot {
        reboot_now()?;
    }
    Ok(())
}

/// Make the rollback (previous) deployment the default.
#[derive(Args)]
pub struct RollbackArgs {
    /// Only if the default deployment ran out of boot tries (run early at boot): then
    /// the newest deployment that did not fail becomes the default.
    #[arg(long)]
    pub if_failed: bool,
}

pub fn rollback(g: &Global, a: RollbackArgs) -> Result<()> {
    let RollbackArgs { if_failed } = a;
    let sr = g.sysroot();
    let _lock = lock_sysroot(&sr)?;
    if if_failed {
        match sr.rollback_if_failed()? {
            Some(d) => println!(
                "Default deployment failed to boot; rolled back to '{}'",
                d.dirname()
            ),
            None => println!("Default deployment has not failed; nothing to do."),
        }
    } else {
        let d = sr.rollback()?;
        println!("Moving '{}' to be first deployment", d.dirname());
    }
    Ok(())
}

/// Remove the deployment at INDEX (as listed by status, from 0).
#[derive(Args)]
pub struct UndeployArgs {
    pub index: usize,
}

pub fn undeploy(g: &Global, a: UndeployArgs) -> Result<()> {
    let UndeployArgs { index } = a;
    let sr = g.sysroot();
    let _lock = lock_sysroot(&sr)?;
    let d = sr.undeploy(index)?;
    println!("Deleted deployment {}", d.dirname());
    Ok(())
}

/// Pin the deployment at INDEX so it is never removed automatically (--unpin undoes).
#[derive(Args)]
pub struct PinArgs {
    #[arg(long)]
    pub unpin: bool,
    pub index: usize,
}

pub fn pin(g: &Global, a: PinArgs) -> Result<()> {
    let PinArgs { unpin, index } = a;
    let sr = g.sysroot();
    let _lock = lock_sysroot(&sr)?;
    sr.pin(index, !unpin)?;
    println!(
        "Deployment {index} is now {}",
        if unpin { "unpinned" } else { "pinned" }
    );
    Ok(())
}

/// Change the kernel arguments of the default deployment (written as a new boot config).
#[derive(Args)]
pub struct KargsEditArgs {
    /// Append KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub append: Vec<String>,
    /// Delete KEY or KEY=VALUE.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub delete: Vec<String>,
    /// Replace the value of KEY.
    #[arg(long, value_name = "KEY=VALUE")]
    pub replace: Vec<String>,
}

pub fn kargs_edit(g: &Global, a: KargsEditArgs) -> Result<()> {
    let KargsEditArgs {
        append,
        delete,
        replace,
    } = a;
    let sr = g.sysroot();
    let _lock = lock_sysroot(&sr)?;
    let k = sr.kargs_edit(&append, &delete, &replace)?;
    println!("{}", k.join(" "));
    Ok(())
}
