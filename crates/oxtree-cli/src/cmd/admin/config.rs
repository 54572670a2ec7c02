//! `admin set-origin`, `admin diff` (`config-diff`) and `admin instutil`: a deployment's
//! origin and configuration, and what installers call.

use super::boot::lock_sysroot;
use super::{parse_index, print_pruned, sysroot};
use crate::cmd::Global;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use oxtree::sysroot::kargs::KernelArgs;
use std::io::Write;

/// Set the origin of a deployment to REMOTENAME:BRANCH, adding the remote.
#[derive(Args)]
pub struct SetOriginArgs {
    /// Set config option KEY=VALUE for the remote (repeatable).
    #[arg(long, short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Operate on the deployment INDEX, starting from zero (default: the booted one).
    #[arg(long, value_name = "INDEX", allow_negative_numbers = true)]
    pub index: Option<String>,
    /// REMOTENAME URL [BRANCH] (BRANCH: the current origin's by default).
    pub args: Vec<String>,
}

pub fn set_origin(g: &Global, a: SetOriginArgs) -> Result<()> {
    let SetOriginArgs { set, index, args } = a;
    let (name, url, branch) = match args.as_slice() {
        [n, u] => (n, u, None),
        [n, u, b, ..] => (n, u, Some(b.as_str())),
        _ => bail!("REMOTENAME and URL must be specified"),
    };
    // -1 is GLib's "not given" for this integer option: the booted deployment.
    let index = index
        .as_deref()
        .filter(|i| i.trim() != "-1")
        .map(parse_index)
        .transpose()?;
    let mut options = Vec::new();
    for kv in &set {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("Missing '=' in KEY=VALUE for --set");
        };
        options.push((k.to_string(), v.to_string()));
    }
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    sr.set_origin(index, name, url, branch, &options)?;
    Ok(())
}

/// List the /etc changes of the merge deployment against its defaults (M, D, A).
#[derive(Args)]
pub struct DiffArgs {
    /// Use a different operating system root than the current one.
    #[arg(long, value_name = "OSNAME")]
    pub os: Option<String>,
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<()> {
    let sr = g.sysroot();
    let list = sr.deployments()?;
    let d = match &a.os {
        Some(os) => list
            .iter()
            .find(|d| d.booted && &d.stateroot == os)
            .or_else(|| list.iter().find(|d| &d.stateroot == os)),
        None => match list.iter().find(|d| d.booted) {
            Some(d) => Some(d),
            None => bail!("Not currently booted into an OSTree system and no --os= argument given"),
        },
    };
    let Some(d) = d else {
        bail!(
            "No deployment for OS '{}'",
            a.os.as_deref().unwrap_or_default()
        );
    };
    let dir = sr
        .path()
        .join("ostree/deploy")
        .join(&d.stateroot)
        .join("deploy")
        .join(d.dirname());
    let repo = sr.repo()?;
    let diff = repo.diff(
        &oxtree::repo::DiffSide::Dir(dir.join("usr/etc")),
        &oxtree::repo::DiffSide::Dir(dir.join("etc")),
        &oxtree::repo::LocalChecksumOptions {
            ignore_xattrs: true,
            ..Default::default()
        },
    )?;
    let mut out = crate::out::stdout();
    for (tag, paths) in [
        ("M", &diff.modified),
        ("D", &diff.removed),
        ("A", &diff.added),
    ] {
        for p in paths {
            writeln!(out, "{tag}    {p}")?;
        }
    }
    out.flush()?;
    Ok(())
}

#[derive(Subcommand)]
pub enum InstutilCmd {
    /// Relabel all or part of a deployment (SELinux).
    SelinuxEnsureLabeled(SelinuxArgs),
    /// Set new kernel command line arguments of the first deployment.
    SetKargs(SetKargsArgs),
    /// Print a GRUB2 configuration of the given (default: the current) BLS entries.
    Grub2Generate(Grub2Args),
}

pub fn instutil(g: &Global, cmd: InstutilCmd) -> Result<()> {
    match cmd {
        InstutilCmd::SelinuxEnsureLabeled(a) => selinux_ensure_labeled(g, a),
        InstutilCmd::SetKargs(a) => set_kargs(g, a),
        InstutilCmd::Grub2Generate(a) => grub2_generate(g, a),
    }
}

/// Relabel all or part of a deployment (SELinux).
#[derive(Args)]
pub struct SelinuxArgs {
    /// [SUBPATH PREFIX]
    pub args: Vec<String>,
}

fn selinux_ensure_labeled(g: &Global, _a: SelinuxArgs) -> Result<()> {
    let sr = g.sysroot();
    let list = sr.deployments()?;
    let Some(d) = list.first() else {
        bail!("Unable to find a deployment in sysroot");
    };
    let dir = std::path::absolute(
        sr.path()
            .join("ostree/deploy")
            .join(&d.stateroot)
            .join("deploy")
            .join(d.dirname()),
    )?;
    match crate::cmd::selinux::policy_in_dir(&dir) {
        None => {
            println!("No SELinux policy found in deployment '{}'", dir.display());
            Ok(())
        }
        Some(policy) => bail!(
            "SELinux labelling is not supported by oxtree: deployment '{}' has policy '{policy}'; \
             relabel it with setfiles (or restorecon) from that policy",
            dir.display()
        ),
    }
}

/// Set new kernel command line arguments of the first deployment (written as a new boot
/// configuration).
#[derive(Args)]
pub struct SetKargsArgs {
    /// Import the current /proc/cmdline.
    #[arg(long)]
    pub import_proc_cmdline: bool,
    /// Merge with the previous command line.
    #[arg(long)]
    pub merge: bool,
    /// Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with
    /// the same name.
    #[arg(long, value_name = "NAME=VALUE")]
    pub replace: Vec<String>,
    /// Append kernel argument; useful with e.g. console= that can be used multiple times.
    #[arg(long, value_name = "NAME=VALUE")]
    pub append: Vec<String>,
    /// More arguments, appended.
    pub args: Vec<String>,
}

fn set_kargs(g: &Global, a: SetKargsArgs) -> Result<()> {
    let SetKargsArgs {
        import_proc_cmdline,
        merge,
        replace,
        append,
        args,
    } = a;
    // Refused as given (the words are split on whitespace below, which a newline would
    // pass as; ostree would write it into the entry).
    if let Some(bad) = replace
        .iter()
        .chain(&append)
        .chain(&args)
        .find(|a| a.chars().any(char::is_control))
    {
        bail!("kernel argument {bad:?} has control characters");
    }
    let sr = sysroot(g);
    let _lock = lock_sysroot(&sr)?;
    let list = sr.deployments()?;
    let Some(first) = list.first() else {
        bail!("Unable to find a deployment in sysroot");
    };
    let mut k = if import_proc_cmdline {
        let c = std::fs::read_to_string("/proc/cmdline")?;
        let mut k = KernelArgs::new();
        for a in KernelArgs::parse(&c).args() {
            if !a.starts_with("BOOT_IMAGE=") && !a.starts_with("initrd=") {
                k.append(a);
            }
        }
        k
    } else if merge {
        KernelArgs::parse(first.entry.get("options").unwrap_or_default())
    } else {
        KernelArgs::new()
    };
    for r in &replace {
        k.replace(r);
    }
    for a in append.iter().chain(&args) {
        k.append(a);
    }
    sr.set_kargs(0, k.into_args())?;
    print_pruned(&sr.prune_repo()?);
    Ok(())
}

/// Print a GRUB2 configuration of the given (default: the current) BLS entries. Run by
/// GRUB's `15_ostree`, which sets GRUB2_BOOT_DEVICE_ID and GRUB2_PREPARE_ROOT_CACHE.
#[derive(Args)]
pub struct Grub2Args {
    /// 0 or 1 (default: the current boot version).
    pub bootversion: Option<String>,
}

fn grub2_generate(g: &Global, a: Grub2Args) -> Result<()> {
    let sr = g.sysroot();
    let bootversion = match &a.bootversion {
        None => sr.bootversion()?.unwrap_or(0),
        Some(s) => match s.parse::<u32>() {
            Ok(v @ (0 | 1)) => v,
            _ => bail!("Invalid bootversion: {s}"),
        },
    };
    let env = |k: &str| -> Result<String> {
        std::env::var(k).map_err(|_| {
            anyhow::anyhow!(
                "{k} is not set: grub2-generate is run by GRUB's 15_ostree script, which sets it"
            )
        })
    };
    let (device_id, root_cache) = (
        env("GRUB2_BOOT_DEVICE_ID")?,
        env("GRUB2_PREPARE_ROOT_CACHE")?,
    );
    let mut out = String::new();
    for (i, e) in sr.bls_entries(bootversion)?.iter().enumerate() {
        let title = e.get("title").unwrap_or("(Untitled)");
        let Some(kernel) = e.get("linux") else {
            bail!("No \"linux\" key in bootloader config");
        };
        // A quote would end GRUB's quoted word: written as '\''.
        let quote = |s: &str| s.replace('\'', "'\\''");
        out.push_str(&format!(
            "menuentry '{}' --class gnu-linux --class gnu --class os --unrestricted '{}' {{\n",
            quote(title),
            quote(&format!("ostree-{i}-{device_id}"))
        ));
        out.push_str("load_video\nset gfxpayload=keep\ninsmod gzio\n");
        out.push_str(&root_cache);
        out.push('\n');
        out.push_str("linux ");
        out.push_str(kernel);
        if let Some(o) = e.get("options") {
            out.push(' ');
            out.push_str(o);
        }
        out.push('\n');
        let initrds: Vec<&str> = e
            .lines
            .iter()
            .filter(|(k, _)| k == "initrd")
            .map(|(_, v)| v.as_str())
            .collect();
        if !initrds.is_empty() {
            out.push_str("initrd ");
            out.push_str(&initrds.join(" "));
            out.push('\n');
        }
        if let Some(dt) = e.get("devicetree") {
            out.push_str("devicetree ");
            out.push_str(dt);
            out.push('\n');
        }
        out.push_str("}\n");
    }
    let mut stdout = crate::out::stdout();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
