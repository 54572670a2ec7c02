//! The systemd-boot backend (`[sysroot] bootloader=systemd-boot`): the **ESP mirror**.
//!
//! systemd-boot reads only the EFI system partition (FAT), while the ostree layout keeps
//! `boot/loader.N/entries` and the kernels on the root filesystem behind the `boot/loader`
//! symlink swap, which FAT cannot hold. Upstream ostree has no systemd-boot support (its
//! issue #1719); we keep the ostree layout exactly as it is (real ostree still reads the
//! sysroot) and project it onto the ESP after every change of the boot configuration:
//!
//! - kernels and initramfs images at the same relative paths as under `/boot`
//!   (`/ostree/<stateroot>-<bootcsum>/…`), so an entry's `linux`/`initrd` lines mean the
//!   same file on both filesystems;
//! - one entry per deployment under a **stable name**, `loader/entries/ostree-<stateroot>-
//!   <checksum>.<deployserial>[+LEFT[-DONE]].conf`: ostree's own names (`ostree-<N>-<os>`)
//!   change at every deploy, and the boot counter lives in the file name (systemd's
//!   automatic boot assessment), so only a stable name can carry the counter over. The
//!   entry's text is ostree's plus `sort-key ostree`: systemd-boot then orders entries by
//!   ostree's `version` (newest first), with the ones out of tries last;
//! - `loader/loader.conf` with `timeout 0` and `default ostree-*`: the first entry in that
//!   order that still has tries, so when a deployment's tries run out, systemd-boot boots the
//!   previous one by itself. (systemd-boot 252's entry id includes the counter, so the
//!   default must be a pattern; a pattern that matched only the bad entry would still pick
//!   it.)
//!
//! The counters belong to the bootloader: systemd-boot decrements them by renaming the file
//! before it boots it, and `systemd-bless-boot` (or `oxtree admin boot-complete`) drops the
//! counter once the boot is good. The mirror never resets one: a deployment keeps its
//! entry's suffix for as long as it exists, a deployment new to the ESP gets
//! `+boot-counting-tries`, and with counting on, `Deployment::tries` is read from the ESP.
//!
//! Crash safety: an update writes new files before old ones go, each file under a name
//! systemd-boot ignores (`*.tmp`) until it is complete and flushed: kernels first, then the
//! entries (each replaced by one rename), then the stale entries, then the stale kernels.
//! An entry's `ostree=` argument names `ostree/boot.N/…`, which a deploy replaces, so the
//! mirror runs at the start of every change of the boot configuration (it then names the
//! live links, which the change leaves alone until after its swap), again right after the
//! swap, and before `cleanup` removes the old links. Whatever step a crash stops at, every
//! entry on the ESP names a kernel that is there and a boot link that resolves.

use super::{bls, Deployment, Sysroot};
use crate::error::{Error, IoContext, Result};
use crate::object::Checksum;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A boot counter: `(LEFT, DONE)`, `None` for an entry known good.
type Tries = Option<(u32, u32)>;

/// The `sort-key` of every mirrored entry: one key, so systemd-boot orders them by version.
pub const SORT_KEY: &str = "ostree";

pub use super::bootloader::Bootloader;

/// `loader/loader.conf` as oxtree writes it: no menu, no editor, only our entries, the
/// first one that still has tries as the default.
pub fn loader_conf() -> String {
    "# Written by oxtree (the systemd-boot mirror of the ostree boot entries); \
     rewritten at every deploy.\n\
     timeout 0\n\
     editor no\n\
     auto-entries no\n\
     auto-firmware no\n\
     console-mode keep\n\
     random-seed-mode off\n\
     default ostree-*\n"
        .to_string()
}

/// The stable name (without counter and `.conf`) of a deployment's entry on the ESP.
pub fn entry_base(stateroot: &str, checksum: &Checksum, deployserial: u32) -> String {
    format!("ostree-{stateroot}-{checksum}.{deployserial}")
}

/// One of oxtree's entries on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspEntry {
    /// The file name in `loader/entries`.
    pub file: String,
    /// The name without counter and `.conf` (see [`entry_base`]).
    pub base: String,
    /// The boot counter (`+LEFT[-DONE]`), `None` for an entry known good.
    pub tries: Tries,
}

/// oxtree's entries (`ostree-*.conf`) in `ESP/loader/entries`, by name. Other entries (of
/// other operating systems sharing the ESP) are not ours and are left alone.
pub fn read_entries(esp: &Path) -> Result<Vec<EspEntry>> {
    let dir = esp.join("loader/entries");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read directory", &dir),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx("read directory", &dir)?;
        let Ok(file) = e.file_name().into_string() else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".conf") else {
            continue;
        };
        if !stem.starts_with("ostree-") {
            continue;
        }
        let tries = bls::parse_tries(stem);
        let base = match tries {
            Some(_) => stem.rsplit_once('+').map_or(stem, |(b, _)| b),
            None => stem,
        }
        .to_string();
        out.push(EspEntry { file, base, tries });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// What one mirror update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspSyncReport {
    pub esp: PathBuf,
    pub kernels_copied: usize,
    pub bytes_copied: u64,
    pub entries_written: usize,
    pub entries_removed: usize,
    pub kernel_dirs_removed: usize,
}

/// An EFI variable of systemd's boot loader interface (vendor
/// 4a67b082-0a4c-41cf-b6c7-440b29bb8c4f), e.g. `LoaderInfo`, `LoaderBootCountPath`: a
/// UTF-16 string after the 4 bytes of attributes. `None` when not booted through
/// systemd-boot (or not by UEFI at all).
pub fn loader_variable(name: &str) -> Option<String> {
    let p = format!("/sys/firmware/efi/efivars/{name}-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f");
    // Read whole: efivarfs files cannot be seeked.
    let b = std::fs::read(p).ok()?;
    let units: Vec<u16> = b
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

/// The FAT superblock magic (`MSDOS_SUPER_MAGIC`).
const MSDOS_SUPER_MAGIC: i64 = 0x4d44;

// `f_type`'s integer type differs between architectures.
#[allow(clippy::useless_conversion)]
fn is_fat_mount(p: &Path) -> bool {
    rustix::fs::statfs(p).is_ok_and(|st| i64::from(st.f_type) == MSDOS_SUPER_MAGIC)
}

/// Create `path` with `data` crash-safely on FAT: a `NAME.tmp` file (which systemd-boot
/// ignores) written and flushed, then renamed over `path`. No chmod (FAT has no modes).
fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_name(path);
    let mut f = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(data).ctx("write", &tmp)?;
    f.sync_all().ctx("fsync", &tmp)?;
    drop(f);
    rename_durably(&tmp, path)
}

/// Rename `from` to `to` and make the result durable on FAT. Linux's vfat writes the new
/// directory entry with no first cluster and size 0 and fills them in only when the file's
/// inode is written back: a power cut after a plain rename and a directory fsync left an
/// empty entry file, which systemd-boot skips (seen in the OVMF e2e). So the renamed file
/// itself is fsynced (that writes its entry), then the directory.
fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).ctx("rename", to)?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .ctx("fsync", to)?;
    if let Some(dir) = to.parent() {
        crate::fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut n = path.file_name().unwrap_or_default().to_os_string();
    n.push(".tmp");
    path.with_file_name(n)
}

fn copy_file(src: &Path, dst: &Path) -> Result<u64> {
    let tmp = tmp_name(dst);
    let mut from = std::fs::File::open(src).ctx("open", src)?;
    let mut to = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    let n = std::io::copy(&mut from, &mut to).ctx("copy to", &tmp)?;
    to.sync_all().ctx("fsync", &tmp)?;
    drop(to);
    rename_durably(&tmp, dst)?;
    Ok(n)
}

/// A `linux`/`initrd` path of an entry: relative to the boot filesystem, under `/ostree/`,
/// with no way out of it.
fn boot_relpath(entry_file: &str, key: &str, v: &str) -> Result<String> {
    let rel = v.strip_prefix('/').unwrap_or(v);
    let ok = rel.starts_with("ostree/")
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && !rel.chars().any(|c| c.is_control() || c == '\\');
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "boot entry {entry_file}: {key} {v:?} is not a path under /ostree/ of the boot filesystem"
        )));
    }
    Ok(rel.to_string())
}

/// Remove the temporary files an interrupted update left in `dir` (only `ostree*` ones
/// when `prefix`: the entries directory is shared with other operating systems).
fn remove_tmp_files(dir: &Path, prefix: bool) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        // Any case: after a power cut FAT may show only the short name (`OSTREE~1.TMP`).
        let n = e.file_name().to_string_lossy().to_ascii_lowercase();
        if n.ends_with(".tmp") && (!prefix || n.starts_with("ostree")) {
            let p = e.path();
            std::fs::remove_file(&p).ctx("remove", &p)?;
        }
    }
    Ok(())
}

impl Sysroot {
    /// Where the ESP is: the one given ([`Sysroot::with_esp`]), else, on the running
    /// system (sysroot `/`), the first of `/efi`, `/boot/efi`, `/boot` that is a FAT
    /// mount (where `systemd-bless-boot` looks too). `None` if there is none.
    pub fn esp(&self) -> Option<PathBuf> {
        if let Some(e) = &self.esp {
            return Some(e.clone());
        }
        if self.path == Path::new("/") {
            return ["/efi", "/boot/efi", "/boot"]
                .iter()
                .map(PathBuf::from)
                .find(|p| is_fat_mount(p));
        }
        None
    }

    fn require_esp(&self) -> Result<PathBuf> {
        let esp = self.esp().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: the bootloader is systemd-boot, but no EFI system partition was found \
                 (mount it at /efi or /boot/efi, or give --esp=PATH)",
                self.path.display()
            ))
        })?;
        if !esp.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: the EFI system partition is not a directory",
                esp.display()
            )));
        }
        Ok(esp)
    }

    /// `[sysroot] boot-counting-tries` of the system repo: tries a new deployment gets.
    pub(super) fn boot_counting_tries(&self) -> Option<u32> {
        let p = self.path.join("ostree/repo/config");
        let kf = crate::fsutil::keyfile::KeyFile::parse(&std::fs::read_to_string(p).ok()?).ok()?;
        kf.get("sysroot", "boot-counting-tries")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
    }

    /// The boot counters of the ESP entries, by entry base name, when the bootloader is
    /// systemd-boot and the ESP is there; `None` otherwise.
    pub(super) fn esp_tries(&self) -> Result<Option<BTreeMap<String, Tries>>> {
        if self.bootloader()? != Bootloader::SystemdBoot {
            return Ok(None);
        }
        let Some(esp) = self.esp() else {
            return Ok(None);
        };
        let mut map = BTreeMap::new();
        for e in read_entries(&esp)? {
            map.entry(e.base).or_insert(e.tries);
        }
        Ok(Some(map))
    }

    /// Mirror the boot configuration onto the ESP (see the module doc); nothing when the
    /// bootloader is not systemd-boot. Takes the sysroot lock.
    pub fn sync_esp(&self) -> Result<Option<EspSyncReport>> {
        if self.bootloader()? != Bootloader::SystemdBoot {
            return Ok(None);
        }
        let _lock = self.lock(|| {})?;
        let esp = self.require_esp()?;
        let mut rep = EspSyncReport {
            esp: esp.clone(),
            ..Default::default()
        };
        let deps = self.bls_deployments()?;
        let boot = self.path.join("boot");
        let entries_dir = esp.join("loader/entries");
        std::fs::create_dir_all(&entries_dir).ctx("create directory", &entries_dir)?;
        remove_tmp_files(&entries_dir, true)?;

        // 1. loader.conf.
        let conf = esp.join("loader/loader.conf");
        let want = loader_conf();
        if std::fs::read_to_string(&conf).ok().as_deref() != Some(want.as_str()) {
            write_file(&conf, want.as_bytes())?;
        }
        super::failpoint("esp::loader")?;

        // 2. Kernels, initramfs images and device trees, new ones only (their directory is
        // named by the checksum of them all, so an existing file is the right one).
        let mut live_kernel_dirs = BTreeSet::new();
        let mut plan = Vec::new();
        for d in &deps {
            let entry_file = format!("ostree entry of {}", d.dirname());
            let mut files = Vec::new();
            // (systemd-boot reads a `devicetree` line too; it has no `fdtdir`.)
            for key in ["linux", "initrd", "devicetree"] {
                if let Some(v) = d.entry.get(key) {
                    files.push(boot_relpath(&entry_file, key, v)?);
                }
            }
            if files.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{entry_file}: no linux line"
                )));
            }
            for rel in &files {
                let dst = esp.join(rel);
                if let Some(parent) = dst.parent() {
                    if let Ok(r) = parent.strip_prefix(&esp) {
                        live_kernel_dirs.insert(r.to_path_buf());
                    }
                    if !parent.is_dir() {
                        std::fs::create_dir_all(parent).ctx("create directory", parent)?;
                        crate::fsutil::fsync_dir(parent.parent().unwrap_or(&esp))?;
                    }
                    remove_tmp_files(parent, false)?;
                }
                if std::fs::symlink_metadata(&dst).is_err() {
                    rep.bytes_copied += copy_file(&boot.join(rel), &dst)?;
                    rep.kernels_copied += 1;
                }
            }
            plan.push(d);
        }
        super::failpoint("esp::kernels")?;

        // 3. The entries, in boot order; each keeps its counter.
        let existing = read_entries(&esp)?;
        let mut by_base: BTreeMap<&str, &EspEntry> = BTreeMap::new();
        for e in &existing {
            // Never two names for one entry (systemd #33504: blessing would fail): keep the
            // good one, else the one with the most tries left.
            let better = match by_base.get(e.base.as_str()) {
                None => true,
                Some(o) => match (o.tries, e.tries) {
                    (Some(_), None) => true,
                    (Some((a, _)), Some((b, _))) => b > a,
                    _ => false,
                },
            };
            if better {
                by_base.insert(&e.base, e);
            }
        }
        let new_tries = self.boot_counting_tries().map(|n| (n, 0));
        let mut wanted_files = BTreeSet::new();
        for d in &plan {
            let base = entry_base(&d.stateroot, &d.checksum, d.deployserial);
            let tries = match by_base.get(base.as_str()) {
                Some(e) => e.tries,
                None => new_tries,
            };
            let file = format!("{base}{}.conf", bls::tries_suffix(tries));
            let mut e = d.entry.clone();
            e.set("sort-key", SORT_KEY);
            let text = e.to_string();
            let path = entries_dir.join(&file);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // Each entry durable before the next (`rename_durably`).
                write_file(&path, text.as_bytes())?;
                rep.entries_written += 1;
                super::failpoint("esp::entry")?;
            }
            wanted_files.insert(file);
        }
        crate::fsutil::fsync_dir(&entries_dir)?;
        super::failpoint("esp::entries")?;

        // 4. Entries of deployments that are gone (and duplicates).
        for e in &existing {
            if !wanted_files.contains(&e.file) {
                let p = entries_dir.join(&e.file);
                match std::fs::remove_file(&p) {
                    Ok(()) => rep.entries_removed += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err).ctx("remove", &p),
                }
            }
        }
        crate::fsutil::fsync_dir(&entries_dir)?;
        super::failpoint("esp::stale")?;

        // 5. Kernels no entry names any more.
        let kroot = esp.join("ostree");
        if let Ok(rd) = std::fs::read_dir(&kroot) {
            for e in rd.flatten() {
                let rel = Path::new("ostree").join(e.file_name());
                if !live_kernel_dirs.contains(&rel) {
                    let p = e.path();
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p).ctx("remove", &p)?;
                    } else {
                        std::fs::remove_file(&p).ctx("remove", &p)?;
                    }
                    rep.kernel_dirs_removed += 1;
                }
            }
            crate::fsutil::fsync_dir(&kroot)?;
        }
        Ok(Some(rep))
    }

    /// `boot-complete` with systemd-boot: drop the counter from the deployment's ESP entry,
    /// as `systemd-bless-boot good` does (one rename). Returns whether it was counted.
    pub(super) fn esp_mark_good(&self, d: &Deployment) -> Result<bool> {
        let esp = self.require_esp()?;
        let base = entry_base(&d.stateroot, &d.checksum, d.deployserial);
        let dir = esp.join("loader/entries");
        let entries = read_entries(&esp)?;
        if entries.iter().any(|e| e.base == base && e.tries.is_none()) {
            return Ok(false);
        }
        let Some(e) = entries.iter().find(|e| e.base == base) else {
            return Err(Error::NotFound(format!(
                "{}: no entry for deployment {} (run `oxtree admin cleanup` to mirror the boot configuration)",
                dir.display(),
                d.dirname()
            )));
        };
        rename_durably(&dir.join(&e.file), &dir.join(format!("{base}.conf")))?;
        Ok(true)
    }
}
