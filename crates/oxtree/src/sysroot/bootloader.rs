//! The bootloader backend a deploy writes configuration for, chosen as ostree 2022.7's
//! `_ostree_sysroot_query_bootloader` chooses it from `[sysroot] bootloader` of the system
//! repo's config (spec §4.3, §8.2 step 4). Every backend gets the BLS entries in
//! `boot/loader.N/entries`; some also get a file of their own in `boot/loader.N`, written
//! before the `boot/loader` swap so that it switches with the entries:
//!
//! - `auto` (the default) probes, in ostree's order: `boot/syslinux/syslinux.cfg` present
//!   (usually a link to `../loader/syslinux.cfg`) → syslinux; `boot/grub2/grub.cfg` → GRUB;
//!   `boot/loader/uEnv.txt` → U-Boot; else entries only.
//! - `syslinux`: `loader.N/syslinux.cfg` = the current `boot/syslinux/syslinux.cfg` less
//!   ostree's own labels (those whose `KERNEL` is under `/ostree/` or `/boot/ostree/`) and
//!   `DEFAULT` lines, then a `LABEL` per entry ([`syslinux_cfg`]).
//! - `uboot`: `loader.N/uEnv.txt` = `kernel_image=`, `ramdisk_image=`, `fdt_file=`,
//!   `fdtdir=`, `bootargs=` for the default entry, numbered from 2 for the others, and the
//!   default deployment's own `usr/lib/ostree-boot/uEnv.txt` ([`uenv_txt`]). The current
//!   `boot/loader/uEnv.txt` must exist (it is how U-Boot was detected) but is not kept.
//! - `none`, `grub2`, `zipl`: entries only. **Not done**: ostree runs `grub2-mkconfig` (or
//!   `ostree-grub-generator`) into `loader.N/grub.cfg` for GRUB, and `zipl` after the swap
//!   on a booted s390x; oxtree leaves that to a GRUB that reads BLS entries itself
//!   (`blscfg`) and to the zipl tooling.
//! - `systemd-boot` (oxtree's own, also as `[oxtree] bootloader`, which ostree ignores): the
//!   ESP mirror (see `esp`).
//!
//! Any other value is refused as ostree refuses it when it opens the repository.

use super::bls::BlsEntry;
use super::Sysroot;
use crate::error::{Error, IoContext, Result};
use std::path::Path;

/// The bootloader a sysroot's boot configuration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootloader {
    /// Boot Loader Specification entries under `/boot` only (ostree's `none`, `grub2`,
    /// `zipl`, or nothing detected): a bootloader that reads them there (or a host that
    /// plays the bootloader).
    Bls,
    /// The systemd-boot ESP mirror.
    SystemdBoot,
    /// `boot/loader.N/syslinux.cfg`.
    Syslinux,
    /// `boot/loader.N/uEnv.txt`.
    Uboot,
}

impl Bootloader {
    /// Whether ostree counts the backend's switch as atomic, which its report of a new
    /// boot configuration says ("Transaction complete" rather than "Bootloader updated").
    pub fn atomic(self) -> bool {
        matches!(self, Bootloader::Syslinux | Bootloader::Uboot)
    }
}

impl Sysroot {
    /// The bootloader the boot configuration is written for: `[oxtree] bootloader` in the
    /// system repo's config, else `[sysroot] bootloader` (see the module doc). (Real ostree
    /// 2022.7 refuses to open a repository whose `[sysroot] bootloader` it does not know,
    /// so a sysroot that ostree must still read says `[sysroot] bootloader=none` and
    /// `[oxtree] bootloader=systemd-boot`, as `oxtree image build` writes it.)
    pub fn bootloader(&self) -> Result<Bootloader> {
        let p = self.path.join("ostree/repo/config");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Bootloader::Bls),
            Err(e) => return Err(e).ctx("read", p),
        };
        let kf = crate::fsutil::keyfile::KeyFile::parse(&text).map_err(|e| Error::Config {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let v = kf
            .get("oxtree", "bootloader")
            .or_else(|| kf.get("sysroot", "bootloader"))
            .map_or("auto", str::trim);
        Ok(match v {
            "auto" => self.probe_bootloader(),
            "none" | "grub2" | "zipl" => Bootloader::Bls,
            "syslinux" => Bootloader::Syslinux,
            "uboot" => Bootloader::Uboot,
            "systemd-boot" => Bootloader::SystemdBoot,
            other => {
                return Err(Error::Quoted {
                    msg: format!(
                        "loading sysroot: opening repo: Invalid bootloader configuration: '{other}'"
                    ),
                    path: p,
                })
            }
        })
    }

    /// `auto`: the first backend whose file is there, in ostree's order.
    fn probe_bootloader(&self) -> Bootloader {
        let there = |rel: &str| std::fs::symlink_metadata(self.path.join(rel)).is_ok();
        if there("boot/syslinux/syslinux.cfg") {
            Bootloader::Syslinux
        } else if there("boot/grub2/grub.cfg") {
            Bootloader::Bls
        } else if there("boot/loader/uEnv.txt") {
            Bootloader::Uboot
        } else {
            Bootloader::Bls
        }
    }

    /// Write the backend's own file into `boot/loader.{bootversion}` from `entries` (the new
    /// entries, default first). `system_uenv`: the default deployment's
    /// `usr/lib/ostree-boot/uEnv.txt`, for U-Boot.
    pub(super) fn write_bootloader_config(
        &self,
        bl: Bootloader,
        bootversion: u32,
        entries: &[BlsEntry],
        system_uenv: Option<&str>,
    ) -> Result<()> {
        let (current, name, text) = match bl {
            Bootloader::Bls | Bootloader::SystemdBoot => return Ok(()),
            Bootloader::Syslinux => {
                let current = "boot/syslinux/syslinux.cfg";
                let old = read_current(&self.path, current)?;
                (current, "syslinux.cfg", syslinux_cfg(&old, entries))
            }
            Bootloader::Uboot => {
                let current = "boot/loader/uEnv.txt";
                read_current(&self.path, current)?;
                (current, "uEnv.txt", uenv_txt(entries, system_uenv))
            }
        };
        let text = text.map_err(|msg| Error::Quoted {
            msg: format!("Bootloader write config: {msg}"),
            path: self.path.join(current),
        })?;
        let dst = self.path.join(format!("boot/loader.{bootversion}/{name}"));
        crate::fsutil::write_atomic(&dst, text.as_bytes(), true)
    }
}

/// The backend's current file (through the `boot/loader` link), in ostree's words when it
/// cannot be read.
fn read_current(sysroot: &Path, rel: &str) -> Result<String> {
    let p = sysroot.join(rel);
    std::fs::read_to_string(&p).map_err(|e| Error::Quoted {
        msg: format!(
            "Bootloader write config: openat({rel}): {}",
            crate::repo::strerror(&e)
        ),
        path: p,
    })
}

/// ostree's `_ostree_sysroot_join_lines`: each line and a newline, with the empty lines
/// dropped but the first one not at the start (its "previous line was empty" flag is never
/// reset, so only one empty line survives in the whole file).
fn join_lines<S: AsRef<str>>(lines: &[S]) -> String {
    let mut out = String::new();
    let mut kept_empty = false;
    for (i, l) in lines.iter().enumerate() {
        let l = l.as_ref();
        if l.is_empty() {
            if kept_empty || i == 0 {
                continue;
            }
            kept_empty = true;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// `syslinux.cfg` as ostree 2022.7 rewrites it: the lines of `old` outside ostree's labels,
/// less every `DEFAULT` line, then `DEFAULT <first title>` (unless `old` had a `DEFAULT` of
/// its own, which is dropped all the same, as in ostree) and a `LABEL` per entry. A label
/// runs from `LABEL ` to the first line that does not start with a tab; its `KERNEL` (the
/// last one seen, carried over to a label without one) says whose it is. Paths get
/// `/boot` in front: syslinux reads them from the boot partition's root.
pub fn syslinux_cfg(old: &str, entries: &[BlsEntry]) -> std::result::Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    let mut label: Option<Vec<&str>> = None;
    let mut kernel: Option<&str> = None;
    let (mut saw_default, mut regenerate_default) = (false, false);
    for line in old.split('\n').map(Some).chain([None]) {
        if label.is_some() && line.is_none_or(|l| !l.starts_with('\t')) {
            let k = kernel.ok_or("No KERNEL argument found after LABEL")?;
            let lines = label.take().unwrap_or_default();
            if !(k.starts_with("/ostree/") || k.starts_with("/boot/ostree/")) {
                out.extend(lines.into_iter().map(str::to_string));
            }
        }
        let Some(line) = line else { break };
        if label.is_none() && line.starts_with("LABEL ") {
            label = Some(Vec::new());
        } else if let (Some(_), Some(k)) = (&label, line.strip_prefix("\tKERNEL ")) {
            kernel = Some(k);
        } else if label.is_none() && line.starts_with("DEFAULT ") {
            saw_default = true;
            // ostree recognises its own default by the title it writes.
            if line.starts_with("DEFAULT ostree:") || line.contains("(ostree") {
                regenerate_default = true;
            }
            continue;
        }
        match &mut label {
            Some(l) => l.push(line),
            None => out.push(line.to_string()),
        }
    }
    if !saw_default {
        regenerate_default = true;
    }
    for (i, e) in entries.iter().enumerate() {
        let title = e.get("title").unwrap_or("(Untitled)");
        if regenerate_default && i == 0 {
            out.push(format!("DEFAULT {title}"));
        }
        out.push(format!("LABEL {title}"));
        let linux = e
            .get("linux")
            .ok_or("No \"linux\" key in bootloader config")?;
        out.push(format!("\tKERNEL /boot{linux}"));
        for (key, word) in [("initrd", "INITRD"), ("devicetree", "DEVICETREE")] {
            if let Some(v) = e.get(key) {
                out.push(format!("\t{word} /boot{v}"));
            }
        }
        if let Some(v) = e.get("options") {
            out.push(format!("\tAPPEND {v}"));
        }
    }
    Ok(join_lines(&out))
}

/// `uEnv.txt` as ostree 2022.7 writes it: U-Boot has no menu, so the default entry's
/// values under plain names and every other entry's under names numbered from 2, paths
/// with `/boot` in front; after the default's `bootargs`, the lines of its deployment's
/// `usr/lib/ostree-boot/uEnv.txt` (`system_uenv`).
pub fn uenv_txt(
    entries: &[BlsEntry],
    system_uenv: Option<&str>,
) -> std::result::Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let n = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        let linux = e
            .get("linux")
            .ok_or("No \"linux\" key in bootloader config")?;
        out.push(format!("kernel_image{n}=/boot{linux}"));
        for (key, name) in [
            ("initrd", "ramdisk_image"),
            ("devicetree", "fdt_file"),
            ("fdtdir", "fdtdir"),
        ] {
            if let Some(v) = e.get(key) {
                out.push(format!("{name}{n}=/boot{v}"));
            }
        }
        if let Some(v) = e.get("options") {
            out.push(format!("bootargs{n}={v}"));
            if i == 0 {
                out.extend(
                    system_uenv
                        .into_iter()
                        .flat_map(|t| t.split('\n'))
                        .map(str::to_string),
                );
            }
        }
    }
    Ok(join_lines(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(title: &str, dir: &str) -> BlsEntry {
        BlsEntry::parse(&format!(
            "title {title}\nversion 1\noptions root=x ostree=/ostree/boot.1/os/c/0\nlinux /ostree/{dir}/vmlinuz-1\ninitrd /ostree/{dir}/initramfs-1.img\n"
        ))
    }

    #[test]
    fn syslinux_keeps_foreign_labels_once() {
        let old = "PROMPT 1\nDEFAULT Other\n\nLABEL Other\n\tKERNEL /o\n\nLABEL Old\n\tKERNEL /ostree/x\n\nX\n";
        let e = [entry("OS (ostree:0)", "os-c")];
        let new = syslinux_cfg(old, &e).expect("cfg");
        assert_eq!(
            new,
            "PROMPT 1\n\nLABEL Other\n\tKERNEL /o\nX\nLABEL OS (ostree:0)\n\tKERNEL /boot/ostree/os-c/vmlinuz-1\n\tINITRD /boot/ostree/os-c/initramfs-1.img\n\tAPPEND root=x ostree=/ostree/boot.1/os/c/0\n"
        );
        // Rewritten again: ostree's labels are recognised, the default comes back.
        let again = syslinux_cfg(&new, &e).expect("cfg");
        assert_eq!(again.matches("LABEL OS").count(), 1, "{again}");
        assert!(again.contains("DEFAULT OS (ostree:0)\n"), "{again}");
        assert!(syslinux_cfg("LABEL a\n", &e).is_err());
    }

    #[test]
    fn uenv_numbers_the_others() {
        let e = [entry("A", "a"), entry("B", "b")];
        let t = uenv_txt(&e, Some("x=1\n")).expect("uenv");
        assert_eq!(
            t,
            "kernel_image=/boot/ostree/a/vmlinuz-1\nramdisk_image=/boot/ostree/a/initramfs-1.img\nbootargs=root=x ostree=/ostree/boot.1/os/c/0\nx=1\n\nkernel_image2=/boot/ostree/b/vmlinuz-1\nramdisk_image2=/boot/ostree/b/initramfs-1.img\nbootargs2=root=x ostree=/ostree/boot.1/os/c/0\n"
        );
    }
}
