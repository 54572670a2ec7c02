//! `admin upgrade/switch --kexec`: load a deployment's kernel, initramfs and command line
//! with `kexec_file_load(2)`, so that `systemctl kexec` (or `--reboot`) starts it without
//! going through the firmware and the bootloader. The files are the ones its boot entry
//! names under `/boot`, so what is loaded is exactly what the bootloader would boot.
//!
//! The call needs `CAP_SYS_BOOT` and a kernel that allows it (not `kexec_load_disabled`,
//! not locked down without a signed kernel); where it is refused the error says why, and
//! the deployment stays written: a normal reboot boots it.

use super::{Deployment, Sysroot};
use crate::error::{Error, IoContext, Result};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// `KEXEC_FILE_NO_INITRAMFS` from `<linux/kexec.h>`.
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 0x4;

impl Sysroot {
    /// Load deployment `d`'s kernel for the next `kexec`.
    pub fn kexec_load(&self, d: &Deployment) -> Result<()> {
        let boot = self.path.join("boot");
        let in_boot = |p: &str| -> Result<PathBuf> {
            let rel = std::path::Path::new(p.trim_start_matches('/'));
            if rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(Error::InvalidArgument(format!(
                    "boot entry path {p:?} is not a plain path under /boot"
                )));
            }
            Ok(boot.join(rel))
        };
        let linux = d.entry.get("linux").ok_or_else(|| {
            Error::InvalidArgument(format!(
                "deployment {}: its boot entry names no kernel (linux)",
                d.dirname()
            ))
        })?;
        let kernel_path = in_boot(linux)?;
        let kernel = std::fs::File::open(&kernel_path).ctx("open", &kernel_path)?;
        let initrds: Vec<PathBuf> = d
            .entry
            .lines
            .iter()
            .filter(|(k, _)| k == "initrd")
            .map(|(_, v)| in_boot(v))
            .collect::<Result<_>>()?;
        // One initramfs for the kernel: several (the deployment's and overlays) are cpio
        // archives, which concatenate.
        let initrd = match initrds.as_slice() {
            [] => None,
            [one] => Some(std::fs::File::open(one).ctx("open", one)?),
            many => {
                let fd = rustix::fs::memfd_create(
                    "oxtree-kexec-initrd",
                    rustix::fs::MemfdFlags::CLOEXEC,
                )
                .map_err(std::io::Error::from)
                .ctx("create a memory file for", &many[0])?;
                let mut out = std::fs::File::from(fd);
                for p in many {
                    let mut f = std::fs::File::open(p).ctx("open", p)?;
                    std::io::copy(&mut f, &mut out).ctx("read", p)?;
                }
                Some(out)
            }
        };
        let cmdline = std::ffi::CString::new(d.entry.get("options").unwrap_or_default())
            .map_err(|_| Error::InvalidArgument("kernel command line has a NUL byte".into()))?;
        let bytes = cmdline.as_bytes_with_nul();
        let flags = if initrd.is_none() {
            KEXEC_FILE_NO_INITRAMFS
        } else {
            0
        };
        // SAFETY: the descriptors are open for the duration of the call; the command line
        // is a NUL-terminated buffer of the length given; the kernel only reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                kernel.as_raw_fd(),
                initrd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                bytes.len() as libc::c_ulong,
                bytes.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => {
                "loading a kernel needs CAP_SYS_BOOT, and the kernel must allow kexec (kernel.kexec_load_disabled, lockdown, or a container forbids it)"
            }
            Some(libc::ENOEXEC) => "it is not a kernel image this machine can boot",
            Some(libc::ENOSYS) => "this kernel has no kexec_file_load",
            Some(libc::EKEYREJECTED) | Some(libc::EBADMSG) => {
                "the kernel's signature is not trusted here (secure boot)"
            }
            _ => "the kernel refused it",
        };
        Err(Error::Other(format!(
            "kexec: loading {} failed: {e}: {why}; the deployment is written, a normal reboot boots it",
            kernel_path.display()
        )))
    }
}
