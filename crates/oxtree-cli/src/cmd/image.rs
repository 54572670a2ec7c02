//! `image`: bootable disk images (`image build`).

use super::Global;
use crate::output::{human_size, json_str};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use oxtree::image::{ImageFormat, ImageOptions, MIB};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Build a bootable GPT disk image from a commit: an EFI system partition with
    /// systemd-boot and the boot entries, and an ext4 root holding a sysroot with the
    /// commit deployed. No loop devices or mounts; run as root (the files keep their
    /// owners).
    Build(BuildArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Raw,
    Qcow2,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The ref (or commit checksum) to deploy, from --repo (or pulled from --remote).
    pub refspec: String,
    /// The image file to write.
    pub output: PathBuf,
    /// Size of the whole disk (e.g. 4G, 3500M; default: twice what the root filesystem
    /// needs, plus the ESP). Too small a size fails before anything is written, naming
    /// the size needed.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Size of the EFI system partition.
    #[arg(long, value_name = "SIZE", default_value = "512M")]
    pub esp_size: String,
    #[arg(long, value_enum, default_value = "raw")]
    pub format: Format,
    /// The stateroot (OS name) to deploy into.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub stateroot: String,
    /// Kernel arguments, after `root=PARTUUID=<root partition> rw` (repeatable).
    #[arg(long, value_name = "ARG")]
    pub karg: Vec<String>,
    /// The remote the machine updates from (NAME=URL); the deployment follows NAME:REF.
    /// Without --repo, the commit is pulled from it.
    #[arg(long, value_name = "NAME=URL")]
    pub remote: Option<String>,
    /// An option of that remote, as `remote add --set` (repeatable), e.g.
    /// sign-verify=true, verification-ed25519-key=KEY.
    #[arg(long = "remote-set", value_name = "KEY=VALUE")]
    pub remote_set: Vec<String>,
    /// Do not verify the remote's OpenPGP signatures (`remote add --no-gpg-verify`).
    #[arg(long)]
    pub no_gpg_verify: bool,
    /// Boot counting: each new deployment gets N tries (systemd-boot counts them down).
    #[arg(long, value_name = "N")]
    pub boot_counting_tries: Option<u32>,
    /// systemd-boot's EFI binary, when the tree has none
    /// (usr/lib/systemd/boot/efi/systemd-bootx64.efi); else the host's.
    #[arg(long, value_name = "PATH")]
    pub efi_binary: Option<PathBuf>,
    /// Seed for the disk, partition and filesystem UUIDs (default: from the inputs).
    #[arg(long)]
    pub seed: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `4G`, `3500M`, `512MiB`, `1024K`, or bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid size {s:?} (e.g. 4G, 3500M)"))?;
    if !(n.is_finite() && n > 0.0) {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as u64)
}

fn pair(s: &str, what: &str) -> Result<(String, String)> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| anyhow!("{what}: {s:?} is not KEY=VALUE"))
}

pub fn run(g: &Global, cmd: ImageCmd) -> Result<()> {
    let ImageCmd::Build(a) = cmd;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        Err(_) => None,
    };
    let opts = ImageOptions {
        repo: g
            .repo
            .clone()
            .or_else(|| std::env::var_os("OSTREE_REPO").map(PathBuf::from)),
        refspec: a.refspec,
        output: a.output,
        size: a.size.as_deref().map(parse_size).transpose()?,
        esp_size: parse_size(&a.esp_size)?,
        format: match a.format {
            Format::Raw => ImageFormat::Raw,
            Format::Qcow2 => ImageFormat::Qcow2,
        },
        stateroot: a.stateroot,
        kargs: a.karg,
        remote: a
            .remote
            .as_deref()
            .map(|r| pair(r, "--remote"))
            .transpose()?,
        remote_options: a
            .remote_set
            .iter()
            .map(|r| pair(r, "--remote-set"))
            .collect::<Result<_>>()?,
        no_gpg_verify: a.no_gpg_verify,
        boot_counting_tries: a.boot_counting_tries,
        efi_binary: a.efi_binary,
        source_date_epoch: epoch,
        seed: a.seed,
    };
    let json = a.json;
    let r = oxtree::image::build(&opts, &|s| {
        if !json {
            eprintln!("{s}…");
        }
    })?;
    let l = &r.layout;
    let secs = |d: &std::time::Duration| format!("{:.1}", d.as_secs_f64());
    if json {
        let steps: Vec<String> = r
            .steps
            .iter()
            .map(|(n, d)| format!("{}:{}", json_str(n), d.as_secs_f64()))
            .collect();
        println!(
            "{{\"output\":{},\"format\":\"{}\",\"commit\":\"{}\",\"deployment\":{},\"kargs\":[{}],\
             \"size\":{},\"allocated\":{},\"esp\":{{\"offset\":{},\"size\":{},\"partuuid\":\"{}\",\"bytes\":{},\"mount_point\":{}}},\
             \"root\":{{\"offset\":{},\"size\":{},\"partuuid\":\"{}\",\"min_size\":{},\"sysroot_bytes\":{},\"sysroot_inodes\":{}}},\
             \"disk_guid\":\"{}\",\"efi_binary\":{},\"seconds\":{{{}}}}}",
            json_str(&r.output.display().to_string()),
            match r.format {
                ImageFormat::Raw => "raw",
                ImageFormat::Qcow2 => "qcow2",
            },
            r.commit,
            json_str(&r.deployment),
            r.kargs
                .iter()
                .map(|k| json_str(k))
                .collect::<Vec<_>>()
                .join(","),
            l.total,
            r.allocated,
            l.esp_offset,
            l.esp_size,
            r.guids.esp,
            r.esp_bytes,
            json_str(&r.esp_mount_point),
            l.root_offset,
            l.root_size,
            r.guids.root,
            r.root_min,
            r.sysroot_bytes,
            r.sysroot_inodes,
            r.guids.disk,
            json_str(&r.efi_binary),
            steps.join(",")
        );
        return Ok(());
    }
    println!(
        "Wrote {} ({}, {} disk, {} allocated)",
        r.output.display(),
        match r.format {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        },
        human_size(l.total),
        human_size(r.allocated)
    );
    println!(
        "  ESP   at {} MiB, {} MiB FAT32, {} of files, PARTUUID {}, mounted at {}",
        l.esp_offset / MIB,
        l.esp_size / MIB,
        human_size(r.esp_bytes),
        r.guids.esp,
        r.esp_mount_point
    );
    println!("        systemd-boot from {}", r.efi_binary);
    println!(
        "  root  at {} MiB, {} MiB ext4, PARTUUID {}: sysroot {} in {} inodes needs {} MiB{}",
        l.root_offset / MIB,
        l.root_size / MIB,
        r.guids.root,
        human_size(r.sysroot_bytes),
        r.sysroot_inodes,
        r.root_min / MIB,
        if opts.size.is_none() {
            " (twice that, at least +512 MiB, for upgrades)"
        } else {
            ""
        }
    );
    println!("  deployment {}", r.deployment);
    println!("  kernel arguments: {}", r.kargs.join(" "));
    println!(
        "  time: {}",
        r.steps
            .iter()
            .map(|(n, d)| format!("{n} {} s", secs(d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").ok(), Some(4 << 30));
        assert_eq!(parse_size("3500M").ok(), Some(3500 << 20));
        assert_eq!(parse_size("512MiB").ok(), Some(512 << 20));
        assert_eq!(parse_size("1024").ok(), Some(1024));
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("big").is_err());
    }
}
