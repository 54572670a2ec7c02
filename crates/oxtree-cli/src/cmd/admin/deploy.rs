//! `admin deploy`, `upgrade`, `switch`, `rollback`, `set-default`, `undeploy`, `pin` and
//! `kargs edit-in-place`: the commands that change which deployments boot and how. Each
//! parses its options as ostree does and leaves the work to `oxtree::sysroot`.

use super::boot::{lock_sysroot, reboot_now};
use super::{parse_index, print_pruned, sysroot};
use crate::cmd::Global;
use crate::output::human_size;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::sysroot::{DeployOptions, Deployment, Sysroot};
use std::path::PathBuf;

/// Deploy a ref or commit of the system repo as the new default (checkout by hardlinks,
/// /etc merge, kernel copy, Boot Loader Spec entries, atomic switch).
#[derive(Args)]
pub struct DeployArgs {
    /// Use a different operating system root than the current one.
    #[arg(long, value_name = "OSNAME")]
    pub os: Option<String>,
    /// The same as --os.
    #[arg(long, value_name = "NAME", conflicts_with = "os")]
    pub stateroot: Option<String>,
    /// Use this origin file (keyfile) instead of one made from REFSPEC.
    #[arg(long, value_name = "FILENAME")]
    pub origin_file: Option<PathBuf>,
    /// Don't prune the repo when done.
    #[arg(long)]
    pub no_prune: bool,
    /// Do not apply configuration (/etc and kernel arguments) from the booted deployment.
    #[arg(long)]
    pub no_merge: bool,
    /// Do not delete previous deployments.
    #[arg(long)]
    pub retain: bool,
    /// Complete the deployment at OS shutdown (`admin finalize-staged`, run by the
    /// finalize service).
    #[arg(long)]
    pub stage: bool,
    /// With --stage: do not finalize at shutdown until `admin lock-finalization --unlock`.
    #[arg(long)]
    pub lock_finalization: bool,
    /// Do not delete pending deployments.
    #[arg(long)]
    pub retain_pending: bool,
    /// Do not delete the rollback deployment (the one after the booted one).
    #[arg(long)]
    pub retain_rollback: bool,
    /// Append rather than prepend the new deployment.
    #[arg(long)]
    pub not_as_default: bool,
    /// Import the current /proc/cmdline.
    #[arg(long)]
    pub karg_proc_cmdline: bool,
    /// Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with
    /// the same name (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub karg: Vec<String>,
    /// Append kernel argument; useful with e.g. console= that can be used multiple times.
    #[arg(long, value_name = "NAME=VALUE")]
    pub karg_append: Vec<String>,
    /// Do not import kernel arguments.
    #[arg(long)]
    pub karg_none: bool,
    /// Delete kernel argument if it exists.
    #[arg(long, value_name = "NAME=VALUE")]
    pub karg_delete: Vec<String>,
    /// Overlay initramfs file, loaded after the deployment's own (repeatable).
    #[arg(long, value_name = "FILE")]
    pub overlay_initrd: Vec<PathBuf>,
    /// REF or CHECKSUM.
    pub refspec: Option<String>,
}

/// The running kernel's arguments, less the bootloader's (ostree's
/// `ostree_kernel_args_append_proc_cmdline`; `ostree=` stays, to be replaced in place).
fn proc_cmdline() -> Result<Vec<String>> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    Ok(oxtree::sysroot::kargs::KernelArgs::parse(&cmdline)
        .into_args()
        .into_iter()
        .filter(|a| !a.starts_with("BOOT_IMAGE=") && !a.starts_with("initrd="))
        .collect())
}

/// An origin file as GLib loads it, with GLib's messages (ostree's `--origin-file`).
fn load_origin_file(p: &std::path::Path) -> Result<oxtree::fsutil::keyfile::KeyFile> {
    if std::fs::metadata(p).is_ok_and(|m| !m.is_file()) {
        bail!("Not a regular file");
    }
    let text = match std::fs::read(p) {
        Ok(t) => String::from_utf8(t)
            .map_err(|_| anyhow::anyhow!("Key file contains invalid UTF-8 (in {})", p.display()))?,
        Err(e) => bail!("{}", crate::output::strerror(&e)),
    };
    oxtree::fsutil::keyfile::KeyFile::parse(&text).map_err(|e| {
        let line = text.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
        anyhow::anyhow!(
            "Key file contains line \u{201c}{line}\u{201d} which is not a key-value pair, group, or comment"
        )
    })
}

pub fn deploy(g: &Global, a: DeployArgs) -> Result<()> {
    let DeployArgs {
        os,
        stateroot,
        origin_file,
        no_prune,
        no_merge,
        retain,
        stage,
        lock_finalization,
        retain_pending,
        retain_rollback,
        not_as_default,
        karg_proc_cmdline,
        karg,
        karg_append,
        karg_none,
        karg_delete,
        overlay_initrd,
        refspec,
    } = a;
    let Some(refspec) = refspec else {
        bail!("REF/REV must be specified");
    };
    let origin = origin_file.as_deref().map(load_origin_file).transpose()?;
    let kargs = if karg_none {
        Some(Vec::new())
    } else if karg_proc_cmdline {
        Some(proc_cmdline()?)
    } else {
        None
    };
    let os = os.or(stateroot);
    let sr = sysroot(g);
    if let Some(os) = &os {
        if !sr
            .path()
            .join("ostree/deploy")
            .join(os)
            .join("var")
            .is_dir()
        {
            return Err(crate::cmd::Hinted {
                msg: "opendir(var): No such file or directory".into(),
                hint: format!(
                    "stateroot {os:?} does not exist; create it with `oxtree admin os-init {os}`"
                ),
            }
            .into());
        }
    }
    let _lock = lock_sysroot(&sr)?;
    let mut overlay_initrds = Vec::new();
    for f in &overlay_initrd {
        if let Err(e) = std::fs::metadata(f) {
            bail!("openat({}): {}", f.display(), crate::output::strerror(&e));
        }
        overlay_initrds.push(sr.stage_overlay_initrd(f)?);
    }
    let opts = DeployOptions {
        os,
        kargs,
        karg_replace: karg,
        karg_append,
        karg_delete,
        retain,
        retain_pending,
        retain_rollback,
        stage,
        lock_finalization,
        stage_unbooted: false,
        no_merge,
        not_as_default,
        origin,
        overlay_initrds,
    };
    sr.deploy(&refspec, &opts)?;
    if !stage && !no_prune {
        print_pruned(&sr.prune_repo()?);
    }
    Ok(())
}

/// Construct a new tree from the current origin and deploy it, if it changed.
#[derive(Args)]
pub struct UpgradeArgs {
    /// Use a different operating system root than the current one.
    #[arg(long, value_name = "OSNAME")]
    pub os: Option<String>,
    /// Reboot after a successful upgrade.
    #[arg(long, short = 'r')]
    pub reboot: bool,
    /// Permit deployment of chronologically older trees.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Deploy CHECKSUM instead of the latest tree (recorded in the origin).
    #[arg(long, value_name = "CHECKSUM")]
    pub override_commit: Option<String>,
    /// Do not create a deployment, just download.
    #[arg(long)]
    pub pull_only: bool,
    /// Do not pull, only deploy.
    #[arg(long)]
    pub deploy_only: bool,
    /// Enable staging (finalization at reboot time): the /etc merge is done then, so edits
    /// made until the reboot are kept.
    #[arg(long)]
    pub stage: bool,
    /// Also keep the rollback deployment (the one after the booted one).
    #[arg(long)]
    pub retain_rollback: bool,
    /// Load the new deployment's kernel with kexec (with --reboot: kexec into it instead
    /// of a full reboot).
    #[arg(long, short = 'k')]
    pub kexec: bool,
}

pub fn upgrade(g: &Global, a: UpgradeArgs) -> Result<()> {
    let UpgradeArgs {
        os,
        reboot,
        allow_downgrade,
        override_commit,
        pull_only,
        deploy_only,
        stage,
        retain_rollback,
        kexec,
    } = a;
    if pull_only && deploy_only {
        bail!("Cannot simultaneously specify --pull-only and --deploy-only");
    }
    if pull_only && reboot {
        bail!("Cannot simultaneously specify --pull-only and --reboot");
    }
    let opts = oxtree::sysroot::UpgradeOptions {
        os,
        pull_only,
        deploy_only,
        allow_downgrade,
        override_commit,
        deploy: DeployOptions {
            stage,
            retain_rollback,
            ..Default::default()
        },
    };
    // Held across the pull and the deploy, as ostree holds it.
    let sr = sysroot(g);
    let lock = lock_sysroot(&sr)?;
    let out = sr.upgrade(&opts)?;
    if let Some(p) = &out.pulled {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
        // ostree shows the pull's progress on a terminal only; this summary goes beside it
        // (and, as that progress, not into a pipe or a log).
        let how = match p.deltas.as_slice() {
            [] => String::new(),
            d => format!(" via static delta {}", d.join(", ")),
        };
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            eprintln!(
                "Fetched {} objects, {} in {} requests{how}",
                p.objects_fetched,
                human_size(p.bytes_fetched),
                p.requests
            );
        }
    }
    if !out.changed {
        println!("No update available.");
        return Ok(());
    }
    let Some(d) = &out.deployed else {
        return Ok(());
    };
    if !stage {
        print_pruned(&sr.prune_repo()?);
    }
    after_deploy(&sr, lock, d, stage, kexec, reboot)
}

/// `--kexec` and `--reboot` once the new deployment is written (the lock released first).
fn after_deploy(
    sr: &Sysroot,
    lock: oxtree::sysroot::SysrootLock<'_>,
    d: &Deployment,
    stage: bool,
    kexec: bool,
    reboot: bool,
) -> Result<()> {
    if kexec {
        if stage {
            bail!("--kexec: the deployment is staged; it can be loaded once finalized");
        }
        sr.kexec_load(d)?;
    }
    drop(lock);
    if reboot {
        reboot_now(kexec)?;
    }
    Ok(())
}

/// Construct a new tree from REFSPEC and deploy it; later upgrades follow it.
#[derive(Args)]
pub struct SwitchArgs {
    /// Reboot after switching trees.
    #[arg(long, short = 'r')]
    pub reboot: bool,
    /// Use a different operating system root than the current one.
    #[arg(long, value_name = "OSNAME")]
    pub os: Option<String>,
    /// Load the new deployment's kernel with kexec (with --reboot: kexec into it).
    #[arg(long, short = 'k')]
    pub kexec: bool,
    /// [REMOTE:]REF, or REMOTE: to change only the remote.
    pub refspec: Option<String>,
}

pub fn switch(g: &Global, a: SwitchArgs) -> Result<()> {
    let SwitchArgs {
        reboot,
        os,
        kexec,
        refspec,
    } = a;
    let Some(refspec) = refspec else {
        bail!("REFSPEC must be specified");
    };
    let sr = sysroot(g);
    let lock = lock_sysroot(&sr)?;
    let out = sr.switch(&refspec, os.as_deref(), true, &DeployOptions::default())?;
    if let Some(rep) = &out.pruned {
        print_pruned(rep);
    }
    // ostree prints the remote as C's printf prints a NULL string.
    println!(
        "Deleting ref '{}:{}'",
        out.deleted_ref.remote.as_deref().unwrap_or("(null)"),
        out.deleted_ref.name
    );
    after_deploy(&sr, lock, &out.deployment, false, kexec, reboot)
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
    let sr = sysroot(g);
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
        print_pruned(&sr.prune_repo()?);
        println!("Moving '{}' to be first deployment", d.dirname());
    }
    Ok(())
}

/// Make the deployment at INDEX the default for the next boot.
#[derive(Args)]
pub struct SetDefaultArgs {
    /// The deployment, as `admin status` lists them (from 0).
    pub index: Option<String>,
}

pub fn set_default(g: &Global, a: SetDefaultArgs) -> Result<()> {
    let Some(index) = a.index else {
        bail!("INDEX must be specified");
    };
    let index = parse_index(&index)?;
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    if sr.set_default(index)? {
        print_pruned(&sr.prune_repo()?);
    } else {
        println!("Deployment {index} is already the default");
    }
    Ok(())
}

/// Delete the deployment at INDEX (as listed by status, from 0).
#[derive(Args)]
pub struct UndeployArgs {
    pub index: Option<String>,
}

pub fn undeploy(g: &Global, a: UndeployArgs) -> Result<()> {
    let Some(index) = a.index else {
        bail!("INDEX must be specified");
    };
    // ostree reads the index with atoi(): "1x" is 1. (A string with no digits, which atoi
    // takes as 0, the default deployment, is refused here rather than deleting it.)
    let t = index.trim_start();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let index = match digits {
        0 => parse_index(&index)?,
        n => parse_index(&t[..n])?,
    };
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    // ostree's order: a staged deployment (index 0) is reported deleted before the prune,
    // a listed one after the new boot configuration and the prune.
    let staged = index == 0 && sr.staged_deployment()?.is_some();
    let d = sr.undeploy(index)?;
    if staged {
        println!("Deleted deployment {}", d.dirname());
        print_pruned(&sr.prune_repo()?);
    } else {
        print_pruned(&sr.prune_repo()?);
        println!("Deleted deployment {}", d.dirname());
    }
    Ok(())
}

/// Change the "pinning" state of the deployments at INDEX…: a pinned deployment is never
/// removed automatically.
#[derive(Args)]
pub struct PinArgs {
    /// Unset pin.
    #[arg(long, short = 'u')]
    pub unpin: bool,
    pub index: Vec<String>,
}

pub fn pin(g: &Global, a: PinArgs) -> Result<()> {
    let PinArgs { unpin, index } = a;
    if index.is_empty() {
        bail!("INDEX must be specified");
    }
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    for i in &index {
        let n = match i.trim().parse::<u64>() {
            Ok(n) => usize::try_from(n)?,
            Err(_) => bail!("Invalid index: {i}"),
        };
        let changed = sr.pin(n, !unpin)?;
        let what = if unpin { "unpinned" } else { "pinned" };
        if changed {
            println!("Deployment {n} is now {what}");
        } else {
            println!("Deployment {n} is already {what}");
        }
    }
    Ok(())
}

/// Change the kernel arguments: with --append-if-missing (ostree's) every deployment's
/// entry is edited in place; --append/--delete/--replace (oxtree's) write a new boot
/// configuration for the default deployment and print its arguments.
#[derive(Args)]
pub struct KargsEditArgs {
    /// Append kernel arguments if they do not exist (every deployment, in place).
    #[arg(long, value_name = "NAME=VALUE")]
    pub append_if_missing: Vec<String>,
    /// Append KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub append: Vec<String>,
    /// Delete KEY or KEY=VALUE.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub delete: Vec<String>,
    /// Replace the value of KEY.
    #[arg(long, value_name = "KEY=VALUE")]
    pub replace: Vec<String>,
    /// Ignored, as ostree ignores them.
    #[arg(hide = true)]
    pub args: Vec<String>,
}

pub fn kargs_edit(g: &Global, a: KargsEditArgs) -> Result<()> {
    let KargsEditArgs {
        append_if_missing,
        append,
        delete,
        replace,
        args: _,
    } = a;
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    if append.is_empty() && delete.is_empty() && replace.is_empty() {
        sr.kargs_append_if_missing(&append_if_missing)?;
        return Ok(());
    }
    if !append_if_missing.is_empty() {
        bail!("--append-if-missing edits every deployment in place: use it without --append, --delete or --replace");
    }
    let k = sr.kargs_edit(&append, &delete, &replace)?;
    println!("{}", k.join(" "));
    Ok(())
}
