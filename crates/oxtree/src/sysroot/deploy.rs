//! `admin deploy`: check out a commit as a new deployment, merge `/etc`, and switch the
//! bootloader configuration atomically (spec §8.2–§8.3).
//!
//! Crash safety comes from the order of the writes: the deployment directory, kernel copies,
//! the new `boot/loader.N'` entries, the `ostree/boot.N'.M'` link farm and the new list's
//! deployment refs are all built next to the live configuration, flushed (`/boot` frozen and
//! thawed when it is a filesystem of its own), and only then does one `rename` of
//! `boot/loader.tmp` over `boot/loader` switch to them. Until that rename the old entries
//! stay in force; after it, the old list's refs and directories go. Everything runs under
//! the sysroot lock, so no other oxtree, ostree or rpm-ostree changes the sysroot meanwhile;
//! whatever a crash leaves, the next `cleanup` removes or regenerates.

use super::bls::BlsEntry;
use super::tree::is_real_dir;
use super::{etc_merge, Deployment, Sysroot};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::Checksum;
use crate::repo::{CheckoutOptions, RefName};
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Stateroot; defaults to the only one, or the booted one.
    pub os: Option<String>,
    /// The kernel arguments to start from instead of the merge deployment's (`--karg-none`
    /// gives an empty list, `--karg-proc-cmdline` the running kernel's).
    pub kargs: Option<Vec<String>>,
    /// Set these kernel arguments (`--karg`: a key's value is replaced, ostree's rules in
    /// [`super::kargs`]).
    pub karg_replace: Vec<String>,
    /// Append these kernel arguments.
    pub karg_append: Vec<String>,
    /// Delete these kernel arguments (`KEY` or `KEY=VALUE`); one that is not there fails
    /// the deploy before anything is written.
    pub karg_delete: Vec<String>,
    /// Keep every existing deployment instead of only the merge/booted and pinned ones.
    pub retain: bool,
    /// Also keep the pending deployments (those before the booted, else the merge, one).
    pub retain_pending: bool,
    /// Also keep the rollback deployments: those after the booted (or merge) one, as
    /// ostree's `--retain-rollback` does, so `admin rollback` still has a target.
    pub retain_rollback: bool,
    /// Prepare the deployment now but switch to it only at `finalize_staged` (run at
    /// shutdown by the finalize service), with the /etc merge done then.
    pub stage: bool,
    /// With `stage`: leave it staged at shutdown until `lock-finalization --unlock`.
    pub lock_finalization: bool,
    /// Stage even when the sysroot is not the booted system (ostree refuses: "Cannot stage
    /// deployment: Not currently booted into an OSTree system"). The update agent manages
    /// the sysroot it is configured with, which is the booted one on a real machine.
    pub stage_unbooted: bool,
    /// No merge deployment: neither its /etc changes nor its kernel arguments are taken
    /// over, and it is not kept.
    pub no_merge: bool,
    /// Put the new deployment after the booted (else the merge) one instead of first.
    pub not_as_default: bool,
    /// The origin to write instead of one made from the refspec (`--origin-file`, and
    /// upgrades, which keep the merge deployment's). Its transient group (pinning) is
    /// dropped, as ostree drops it.
    pub origin: Option<KeyFile>,
    /// Overlay initramfs images (checksums from [`Sysroot::stage_overlay_initrd`]) loaded
    /// after the deployment's own.
    pub overlay_initrds: Vec<String>,
}

/// A file of a deployment's boot set: where it is in the tree, and its name in
/// `boot/ostree/<stateroot>-<bootcsum>/`.
#[derive(Debug, Clone)]
struct BootFile {
    src: String,
    name: String,
}

/// A deployment's device tree: one file (a `devicetree` entry line), or the tree's whole
/// `dtb/` directory, copied as `dtb/` (an `fdtdir` line), as ostree installs them.
#[derive(Debug, Clone)]
enum DeviceTree {
    File(BootFile),
    Dir(String),
}

/// The kernel of a deployment, found as ostree 2022.7's `get_kernel_from_tree` finds it.
/// Its files are read inside the deployment tree (see `tree`): a symlink in the commit
/// never reaches the host's files.
#[derive(Debug, Clone)]
struct Kernel {
    /// The deployment directory; every `src` is relative to it.
    root: PathBuf,
    vmlinuz: BootFile,
    initramfs: Option<BootFile>,
    devicetree: Option<DeviceTree>,
    /// The FIPS HMAC of the kernel (`.vmlinuz.hmac`), installed beside it as
    /// `.vmlinuz-VER.hmac` (not part of the boot checksum).
    hmac: Option<BootFile>,
    bootcsum: String,
}

/// ostree's test hook (`OSTREE_SYSROOT_DEBUG=test-fifreeze`, used by its installed tests):
/// a deployment fails where ostree's full system sync freezes `/boot`, once the freeze
/// watchdog runs, so the old boot configuration stays. (ostree then really freezes the
/// filesystem of `/boot`, in its tests the host's own; oxtree freezes nothing for it.)
fn test_fifreeze() -> Result<()> {
    if !super::debug_flag("test-fifreeze") {
        return Ok(());
    }
    crate::fsutil::freeze::run_test_watchdog()?;
    Err(Error::Other(
        "During fsfreeze-thaw: aborting due to test-fifreeze".into(),
    ))
}

/// ostree's words when a tree has no kernel in any of the places it looks.
const NO_KERNEL: &str = "Failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot";

/// The kernel of the tree at `deploy_dir`: the modern layout (`usr/lib/modules/VER/`), or
/// the legacy one (`usr/lib/ostree-boot/` or `boot/`, a kernel named with its boot
/// checksum). When a tree has both, the modern one is taken unless the legacy one has an
/// initramfs and the modern one none (ostree 2022.7's choice, checked against it case by
/// case; its test "legacy overrides /usr/lib/modules"). A distribution's plain
/// `/boot/vmlinuz-VER` (no checksum) is no legacy kernel.
fn find_kernel(deploy_dir: &Path) -> Result<Kernel> {
    let modern = kernel_from_modules(deploy_dir)?;
    let legacy = kernel_from_legacy(deploy_dir)?;
    match (modern, legacy) {
        (Some(m), Some(l)) if m.initramfs.is_none() && l.initramfs.is_some() => return Ok(l),
        (Some(m), _) => return Ok(m),
        (None, Some(l)) => return Ok(l),
        (None, None) => {}
    }
    Err(Error::Quoted {
        msg: NO_KERNEL.into(),
        path: deploy_dir.to_path_buf(),
    })
}

/// A name that goes into file names under /boot and into the entry's lines: nothing that
/// could end a line, split a value or leave the directory.
fn check_boot_name(dir: &Path, what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains('/')
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::InvalidArgument(format!(
            "{}: {what} {name:?} has whitespace or control characters",
            dir.display()
        )));
    }
    Ok(())
}

/// Feed the file `rel` of the tree to the boot checksum; `false` when it is not there.
fn hash_file(h: &mut sha2::Sha256, root: &Path, rel: &str) -> Result<bool> {
    let Some(mut f) = super::tree::open_file(root, rel)? else {
        return Ok(false);
    };
    std::io::copy(&mut f, h).ctx("read", root.join(rel))?;
    Ok(true)
}

/// Feed every file under the directory `rel` to the boot checksum as ostree's
/// `checksum_dir_recurse` does: names in byte order, a directory where its name sorts.
fn hash_dir(h: &mut sha2::Sha256, root: &Path, rel: &str) -> Result<()> {
    crate::stack::check(|| root.join(rel).display().to_string())?;
    let mut names = super::tree::list_dir(root, rel)?;
    names.sort();
    for n in names {
        let child = format!("{rel}/{n}");
        if super::tree::is_dir(root, &child)? {
            hash_dir(h, root, &child)?;
        } else if !hash_file(h, root, &child)? {
            return Err(Error::InvalidArgument(format!(
                "{}: not a regular file in the deployment",
                root.join(&child).display()
            )));
        }
    }
    Ok(())
}

/// `usr/lib/modules/VER/vmlinuz` (the first VER, by name, that has one), with
/// `initramfs.img` (or `initramfs`), `devicetree` (or a `dtb/` directory) and
/// `.vmlinuz.hmac` beside it. The boot checksum is SHA-256 over the kernel, the initramfs
/// and the device tree(s), in that order.
fn kernel_from_modules(root: &Path) -> Result<Option<Kernel>> {
    let modules = root.join("usr/lib/modules");
    let mut kvers = super::tree::list_dir(root, "usr/lib/modules")?;
    kvers.sort();
    for kver in kvers {
        check_boot_name(&modules, "kernel version directory name", &kver)?;
        let dir = format!("usr/lib/modules/{kver}");
        let file = |name: &str, installed: String| BootFile {
            src: format!("{dir}/{name}"),
            name: installed,
        };
        let vmlinuz = file("vmlinuz", format!("vmlinuz-{kver}"));
        let mut h = sha2::Sha256::new();
        if !hash_file(&mut h, root, &vmlinuz.src)? {
            continue;
        }
        let mut initramfs = None;
        for name in ["initramfs.img", "initramfs"] {
            let f = file(name, format!("initramfs-{kver}.img"));
            if hash_file(&mut h, root, &f.src)? {
                initramfs = Some(f);
                break;
            }
        }
        let dt = file("devicetree", format!("devicetree-{kver}"));
        // (`OSTREE_SYSROOT_DEBUG=no-dtb`: device trees are not looked for, as in ostree)
        let devicetree = if super::debug_flag("no-dtb") {
            None
        } else if hash_file(&mut h, root, &dt.src)? {
            Some(DeviceTree::File(dt))
        } else if super::tree::is_dir(root, &format!("{dir}/dtb"))? {
            hash_dir(&mut h, root, &format!("{dir}/dtb"))?;
            Some(DeviceTree::Dir(format!("{dir}/dtb")))
        } else {
            None
        };
        let hmac = file(".vmlinuz.hmac", format!(".vmlinuz-{kver}.hmac"));
        let hmac = super::tree::open_file(root, &hmac.src)?.map(|_| hmac);
        return Ok(Some(Kernel {
            root: root.to_path_buf(),
            vmlinuz,
            initramfs,
            devicetree,
            hmac,
            bootcsum: Checksum(h.finalize().into()).to_hex(),
        }));
    }
    Ok(None)
}

/// The legacy layout: `vmlinuz-VER-CSUM` and optionally `initramfs-VER.img-CSUM` and
/// `devicetree-VER-CSUM` in the first of `usr/lib/ostree-boot/` and `boot/` that exists.
/// The suffix after the last `-` *is* the boot checksum (all three must carry the same),
/// and the installed names drop it. A name whose suffix is no checksum is not a kernel.
fn kernel_from_legacy(root: &Path) -> Result<Option<Kernel>> {
    let mut found = None;
    for dir in ["usr/lib/ostree-boot", "boot"] {
        if super::tree::is_dir(root, dir)? {
            found = Some((dir, super::tree::list_dir(root, dir)?));
            break;
        }
    }
    let Some((dir, mut names)) = found else {
        return Ok(None);
    };
    // (ostree takes readdir's order; with one kernel, as trees have, it is the same.)
    names.sort();
    let split = |n: &str| -> Option<(BootFile, String)> {
        let (namever, csum) = n.rsplit_once('-')?;
        let hex = csum.len() == 64 && csum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| {
            let f = BootFile {
                src: format!("{dir}/{n}"),
                name: namever.to_string(),
            };
            (f, csum.to_string())
        })
    };
    let (mut kernel, mut initramfs, mut devicetree) = (None, None, None);
    for n in &names {
        if kernel.is_none() && n.starts_with("vmlinuz-") {
            kernel = split(n);
        } else if initramfs.is_none() && n.starts_with("initramfs-") {
            initramfs = split(n);
        } else if devicetree.is_none() && n.starts_with("devicetree-") {
            devicetree = split(n);
        }
    }
    let Some((vmlinuz, bootcsum)) = kernel else {
        return Ok(None);
    };
    let mismatch = |msg: &str| Error::Quoted {
        msg: msg.into(),
        path: root.join(dir),
    };
    if initramfs.as_ref().is_some_and(|(_, c)| *c != bootcsum) {
        return Err(mismatch("Mismatched kernel checksum vs initrd"));
    }
    if devicetree.as_ref().is_some_and(|(_, c)| *c != bootcsum) {
        return Err(mismatch(
            "Mismatched kernel checksum vs device tree in tree",
        ));
    }
    let files = [
        Some(&vmlinuz),
        initramfs.as_ref().map(|(f, _)| f),
        devicetree.as_ref().map(|(f, _)| f),
    ];
    for f in files.into_iter().flatten() {
        check_boot_name(&root.join(dir), "kernel file name", &f.name)?;
    }
    Ok(Some(Kernel {
        root: root.to_path_buf(),
        vmlinuz,
        initramfs: initramfs.map(|(f, _)| f),
        devicetree: devicetree.map(|(f, _)| DeviceTree::File(f)),
        hmac: None,
        bootcsum,
    }))
}

fn os_release_pretty_name(deploy_dir: &Path) -> Result<String> {
    for p in ["usr/lib/os-release", "etc/os-release"] {
        let path = deploy_dir.join(p);
        if let Some(f) = super::tree::open_file(deploy_dir, p)? {
            let mut text = String::new();
            // A few lines of KEY=value: no need to read more than this of whatever it is.
            std::io::Read::read_to_string(&mut std::io::Read::take(f, 64 << 10), &mut text)
                .ctx("read", &path)?;
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                    .map(|v| v.trim().trim_matches('"').to_string())
            };
            return Ok(get("PRETTY_NAME")
                .or_else(|| get("ID"))
                .unwrap_or_else(|| "Linux".into()));
        }
    }
    Err(Error::InvalidArgument(format!(
        "{}: no usr/lib/os-release or etc/os-release in the deployment",
        deploy_dir.display()
    )))
}

/// A deployment in the list being written.
pub(super) struct Planned {
    stateroot: String,
    checksum: Checksum,
    deployserial: u32,
    kernel: Kernel,
    pub(super) kargs: Vec<String>,
    version: Option<String>,
    pretty: String,
    /// Boot counting state carried into the entry's file name.
    pub(super) tries: Option<(u32, u32)>,
    /// Checksums of the overlay initramfs images of this deployment.
    overlay_initrds: Vec<String>,
}

impl Planned {
    /// An existing deployment, kept in a rewritten list with its current kernel arguments.
    pub(super) fn from_deployment(
        sr: &Sysroot,
        repo: &crate::repo::Repo,
        d: &Deployment,
    ) -> Result<Planned> {
        let ddir = sr.deploy_dir(&d.stateroot, &d.checksum, d.deployserial);
        // The kernel's files are found again in the tree, but it keeps the boot checksum it
        // was deployed with (its directory in /boot and its boot link), as ostree names an
        // existing deployment's kernel by its recorded bootcsum.
        let mut kernel = find_kernel(&ddir)?;
        if !d.bootcsum.is_empty() {
            kernel.bootcsum = d.bootcsum.clone();
        }
        Ok(Planned {
            stateroot: d.stateroot.clone(),
            checksum: d.checksum,
            deployserial: d.deployserial,
            kernel,
            kargs: kargs_of(&d.entry),
            version: repo
                .load_commit(&d.checksum)
                .ok()
                .and_then(|c| c.version().map(str::to_string)),
            pretty: os_release_pretty_name(&ddir)?,
            tries: d.tries,
            overlay_initrds: overlays_of(&d.entry),
        })
    }
}

impl Sysroot {
    fn deploy_dir(&self, os: &str, c: &Checksum, serial: u32) -> PathBuf {
        self.path
            .join("ostree/deploy")
            .join(os)
            .join("deploy")
            .join(format!("{c}.{serial}"))
    }

    /// Deploy `refspec` (a ref in the system repo, or a commit checksum) as the new default.
    pub fn deploy(&self, refspec: &str, opts: &DeployOptions) -> Result<Deployment> {
        if opts.lock_finalization && !opts.stage {
            return Err(Error::InvalidArgument(
                "--lock-finalization requires --stage".into(),
            ));
        }
        let _lock = self.lock(|| {})?;
        // An unknown `sysroot.bootloader` is refused first, as ostree refuses to open the repo.
        self.bootloader()?;
        let repo = self.repo()?;
        let checksum = repo.resolve_rev(refspec)?;
        repo.load_commit(&checksum)?; // must exist and parse before anything is written
        let current = self.deployments()?;
        if opts.stage && !opts.stage_unbooted && !current.iter().any(|d| d.booted) {
            return Err(Error::Other(
                "Cannot stage deployment: Not currently booted into an OSTree system".into(),
            ));
        }
        let os = match &opts.os {
            Some(os) => os.clone(),
            None => match current.iter().find(|d| d.booted).or(current.first()) {
                Some(d) => d.stateroot.clone(),
                None => {
                    let roots: Vec<String> = std::fs::read_dir(self.path.join("ostree/deploy"))
                        .ctx("read directory", self.path.join("ostree/deploy"))?
                        .flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect();
                    match roots.as_slice() {
                        [one] => one.clone(),
                        _ => {
                            return Err(Error::InvalidArgument(
                                "several or no stateroots: choose one with --os=STATEROOT".into(),
                            ))
                        }
                    }
                }
            },
        };
        let os_dir = self.path.join("ostree/deploy").join(&os);
        if !os_dir.join("var").is_dir() {
            return Err(Error::InvalidArgument(format!(
                "stateroot {os:?} does not exist; create it with `oxtree admin os-init {os}`"
            )));
        }
        let merge = if opts.no_merge {
            None
        } else {
            current
                .iter()
                .find(|d| d.booted && d.stateroot == os)
                .or_else(|| current.iter().find(|d| d.stateroot == os))
                .cloned()
        };
        // The kernel arguments, settled before anything is written (a --karg-delete of an
        // argument that is not there refuses the deploy).
        let kargs = resolve_kargs(opts, merge.as_ref())?;
        let opts = &DeployOptions {
            kargs,
            karg_replace: Vec::new(),
            karg_append: Vec::new(),
            karg_delete: Vec::new(),
            ..opts.clone()
        };

        // 1. Check out, by hardlinks, into deploy/<csum>.<serial>.
        let deploy_root = os_dir.join("deploy");
        let new_root = !deploy_root.is_dir();
        std::fs::create_dir_all(&deploy_root).ctx("create directory", &deploy_root)?;
        let serial = std::fs::read_dir(&deploy_root)
            .ctx("read directory", &deploy_root)?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let (c, s) = n.split_once('.')?;
                (c == checksum.to_hex())
                    .then(|| s.parse::<u32>().ok())
                    .flatten()
            })
            .max()
            .map_or(Some(0), |m| m.checked_add(1))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: deployment serials of {checksum} are used up (remove old deployment directories)",
                    deploy_root.display()
                ))
            })?;
        let dir = self.deploy_dir(&os, &checksum, serial);
        self.check_free_space()?;
        // As ostree's deployment checkout: `.ostree-wh.NAME` files (container layers kept
        // in the tree) become the overlayfs whiteouts they stand for.
        let co = CheckoutOptions {
            passthrough_whiteouts: true,
            ..CheckoutOptions::default()
        };
        repo.checkout(&checksum, &dir, &co)?;
        super::failpoint("deploy::checkout")?;
        // The kernel before anything else: a tree without one is refused with the sysroot
        // as it was (ostree leaves the checkout behind for the next cleanup; nothing else).
        let kernel = match find_kernel(&dir) {
            Ok(k) => k,
            Err(e) => {
                std::fs::remove_dir_all(&dir).ctx("remove", &dir)?;
                if new_root {
                    std::fs::remove_dir(&deploy_root).ctx("remove", &deploy_root)?;
                }
                return Err(e);
            }
        };

        // 2. /etc: usr/etc holds the defaults; etc is a real copy, then the 3-way merge.
        // Both must be real directories: the merge writes into etc, and a link there
        // (etc -> /etc) would make it write into the host's files.
        let (etc, usr_etc) = (dir.join("etc"), dir.join("usr/etc"));
        for (p, name) in [
            (&etc, "/etc"),
            (&usr_etc, "/usr/etc"),
            (&dir.join("usr"), "/usr"),
        ] {
            if let Ok(m) = std::fs::symlink_metadata(p) {
                if !m.is_dir() {
                    return Err(Error::InvalidArgument(format!(
                        "commit {checksum}: {name} is not a directory ({}); refusing to deploy it",
                        if m.file_type().is_symlink() {
                            "a symbolic link"
                        } else {
                            "a file"
                        }
                    )));
                }
            }
        }
        if etc.is_dir() && !usr_etc.exists() {
            std::fs::rename(&etc, &usr_etc).ctx("rename", &usr_etc)?;
        } else if etc.is_dir() && usr_etc.exists() {
            if std::fs::read_dir(&etc)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
            {
                return Err(Error::InvalidArgument(format!(
                    "commit {checksum} has both /etc and /usr/etc"
                )));
            }
            std::fs::remove_dir(&etc).ctx("remove", &etc)?;
        }
        if usr_etc.is_dir() {
            etc_merge::copy_tree(&usr_etc, &etc)?;
        }
        if let (Some(m), false) = (&merge, opts.stage) {
            let mdir = self.deploy_dir(&m.stateroot, &m.checksum, m.deployserial);
            self.merge_etc(&repo, &mdir, &etc)?;
        }
        if !opts.stage {
            remove_updated_stamps(&etc, &os_dir)?;
        }
        super::failpoint("deploy::etc")?;

        // 3. /var: copied from the tree into the stateroot once, like a volume (a link
        // there is not followed: nothing of the host is copied).
        let var = os_dir.join("var");
        if is_real_dir(&dir.join("var"))
            && std::fs::read_dir(&var)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        {
            etc_merge::copy_tree(&dir.join("var"), &var)?;
        }

        // ostree marks a stateroot's /var as labelled once it prepared it; do the same so
        // both tools treat the sysroot alike.
        let stamp = var.join(".ostree-selabeled");
        if !stamp.exists() {
            self.emit(super::SysrootEvent::RelabelingVar);
            std::fs::write(&stamp, b"").ctx("create", &stamp)?;
        }

        // 4. The origin.
        let origin = match &opts.origin {
            Some(o) => normalized_origin(o),
            None => {
                let mut o = KeyFile::new();
                o.set("origin", "refspec", refspec);
                o
            }
        };
        let origin_path = deploy_root.join(format!("{checksum}.{serial}.origin"));
        crate::fsutil::write_atomic(&origin_path, origin.to_string().as_bytes(), true)?;

        if opts.stage {
            let marker = super::StagedMarker {
                stateroot: os.clone(),
                checksum,
                deployserial: serial,
                bootcsum: kernel.bootcsum.clone(),
                merge: merge
                    .as_ref()
                    .map(|m| (m.stateroot.clone(), m.checksum, m.deployserial)),
                kargs: opts.kargs.clone(),
                karg_append: Vec::new(),
                retain_rollback: opts.retain_rollback,
                overlay_initrds: opts.overlay_initrds.clone(),
            };
            self.write_staged(&marker)?;
            if opts.lock_finalization {
                self.set_finalization_locked(true)?;
            } else {
                self.set_finalization_locked(false)?;
            }
            return Ok(Deployment {
                index: 0,
                stateroot: os,
                checksum,
                deployserial: serial,
                bootcsum: kernel.bootcsum,
                bootserial: 0,
                origin: Some(origin),
                booted: false,
                entry: BlsEntry::default(),
                tries: None,
                unlocked: super::Unlocked::None,
            });
        }
        self.finish_deploy(
            &repo,
            &current,
            &os,
            &checksum,
            serial,
            merge.as_ref(),
            opts,
        )
    }

    /// Step 5 of a deploy: put the new deployment first in the boot configuration, keeping
    /// the merge (rollback) deployment, pinned ones and other stateroots' (all with --retain).
    #[allow(clippy::too_many_arguments)]
    fn finish_deploy(
        &self,
        repo: &crate::repo::Repo,
        current: &[Deployment],
        os: &str,
        checksum: &Checksum,
        serial: u32,
        merge: Option<&Deployment>,
        opts: &DeployOptions,
    ) -> Result<Deployment> {
        let dir = self.deploy_dir(os, checksum, serial);
        let same = |a: &Deployment, b: &Deployment| {
            a.checksum == b.checksum
                && a.deployserial == b.deployserial
                && a.stateroot == b.stateroot
        };
        // The crossover: the booted deployment, else the merge one.
        let anchor = current
            .iter()
            .position(|d| d.booted)
            .or_else(|| merge.and_then(|m| current.iter().position(|d| same(m, d))));
        // Which deployments stay, as ostree's `simple_write_deployment` decides: the booted
        // and merge ones, pinned ones, other stateroots', and with the options the pending
        // ones (before the booted, else the merge, deployment: the "crossover"), the
        // rollback ones (from the crossover on), or all. Without a crossover, keeping
        // pending or rollback ones means keeping all, as in ostree.
        let retain =
            opts.retain || (anchor.is_none() && (opts.retain_pending || opts.retain_rollback));
        let mut keep: Vec<&Deployment> = Vec::new();
        // Where the new deployment goes: first, or (not as default) right after the
        // crossover, or last when there is none.
        let mut insert_at = (!opts.not_as_default).then_some(0);
        for (i, d) in current.iter().enumerate() {
            let passed_crossover = anchor.is_some_and(|a| i >= a);
            if retain
                || (opts.retain_pending && !passed_crossover)
                || (opts.retain_rollback && passed_crossover)
                || merge.is_some_and(|m| same(m, d))
                || d.booted
                || d.pinned()
                || d.stateroot != os
            {
                keep.push(d);
            }
            if insert_at.is_none() && passed_crossover {
                insert_at = Some(keep.len());
            }
        }
        let insert_at = insert_at.unwrap_or(keep.len());
        let mut kargs: Vec<String> = match (&opts.kargs, merge) {
            (Some(k), _) => k.clone(),
            (None, Some(m)) => kargs_of(&m.entry),
            (None, None) => Vec::new(),
        };
        kargs.extend(opts.karg_append.iter().cloned());
        let new = Planned {
            stateroot: os.to_string(),
            checksum: *checksum,
            deployserial: serial,
            kernel: find_kernel(&dir)?,
            kargs,
            version: repo.load_commit(checksum)?.version().map(str::to_string),
            pretty: os_release_pretty_name(&dir)?,
            // `[sysroot] boot-counting-tries=N` in the system repo config: new deployments
            // must prove themselves (boot-complete) within N boots.
            tries: repo
                .config()
                .get("sysroot", "boot-counting-tries")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|n| *n > 0)
                .map(|n| (n, 0)),
            overlay_initrds: opts.overlay_initrds.clone(),
        };
        super::failpoint("deploy::kernel")?;
        // Complete: as ostree does, nothing may be added to or removed from its top directory.
        if !super::debug_flag("mutable-deployments") {
            crate::fsutil::set_immutable(&dir, true)?;
        }
        let mut plan = Vec::new();
        for d in keep {
            plan.push(Planned::from_deployment(self, repo, d)?);
        }
        plan.insert(insert_at, new);
        self.write_deployments(repo, &plan)?;
        // A deployment written now replaces a staged one, as ostree's write of a new list
        // drops it (the cleanup below removes its directory); finalizing clears it anyway.
        self.clear_staged()?;
        self.set_finalization_locked(false)?;
        super::failpoint("deploy::cleanup")?;
        self.cleanup()?;
        self.deployments()?
            .into_iter()
            .find(|d| d.checksum == *checksum && d.deployserial == serial && d.stateroot == os)
            .ok_or_else(|| {
                Error::Other("the new deployment is not in the boot configuration".into())
            })
    }

    /// Finalize a staged deployment (`admin finalize-staged`, run at shutdown): merge /etc
    /// with the edits made since staging, then write the boot configuration. Without a
    /// staged deployment this does nothing and returns `None`.
    ///
    /// A failure is recorded in `boot/ostree/finalize-failure.stamp` (ostree's name), so the
    /// next boot can say why the upgrade did not happen instead of failing silently; the
    /// next successful finalize removes it.
    pub fn finalize_staged(&self, opts: &DeployOptions) -> Result<Option<Deployment>> {
        let _lock = self.lock(|| {})?;
        if self.finalization_locked() {
            // Locked (`deploy --lock-finalization`): stays staged, as with ostree; /run
            // forgets it at the reboot.
            return Ok(None);
        }
        let stamp = self.finalize_failure_path();
        match self.finalize_staged_inner(opts) {
            Ok(d) => {
                if d.is_some() && stamp.exists() {
                    std::fs::remove_file(&stamp).ctx("remove", &stamp)?;
                }
                Ok(d)
            }
            Err(e) => {
                // Best effort: the error itself is what the caller must see.
                let _ = crate::fsutil::write_atomic(&stamp, format!("{e}\n").as_bytes(), true);
                Err(e)
            }
        }
    }

    fn finalize_failure_path(&self) -> PathBuf {
        self.path.join("boot/ostree/finalize-failure.stamp")
    }

    /// Why the last finalize of a staged deployment failed, if it did (see
    /// [`Self::finalize_staged`]).
    pub fn finalize_failure(&self) -> Option<String> {
        std::fs::read_to_string(self.finalize_failure_path())
            .ok()
            .map(|t| t.trim().to_string())
    }

    fn finalize_staged_inner(&self, opts: &DeployOptions) -> Result<Option<Deployment>> {
        let Some(m) = self.read_staged()? else {
            return Ok(None);
        };
        let repo = self.repo()?;
        let current = self.deployments()?;
        let merge = m.merge.as_ref().and_then(|(os, c, s)| {
            current
                .iter()
                .find(|d| &d.stateroot == os && d.checksum == *c && d.deployserial == *s)
        });
        let dir = self.deploy_dir(&m.stateroot, &m.checksum, m.deployserial);
        if !dir.is_dir() {
            self.clear_staged()?;
            return Err(Error::Other(format!(
                "staged deployment {} is gone; deploy again",
                dir.display()
            )));
        }
        // A finalize that failed after marking the deployment complete left it immutable.
        crate::fsutil::set_immutable(&dir, false)?;
        let etc = dir.join("etc");
        if let (Some(md), true) = (merge, is_real_dir(&dir.join("usr/etc"))) {
            let mdir = self.deploy_dir(&md.stateroot, &md.checksum, md.deployserial);
            if let Ok(m) = std::fs::symlink_metadata(&etc) {
                if m.is_dir() {
                    std::fs::remove_dir_all(&etc).ctx("remove", &etc)?;
                } else {
                    std::fs::remove_file(&etc).ctx("remove", &etc)?;
                }
            }
            etc_merge::copy_tree(&dir.join("usr/etc"), &etc)?;
            self.merge_etc(&repo, &mdir, &etc)?;
        }
        remove_updated_stamps(&etc, &self.path.join("ostree/deploy").join(&m.stateroot))?;
        let o = DeployOptions {
            kargs: m.kargs.clone(),
            karg_append: m.karg_append.clone(),
            overlay_initrds: m.overlay_initrds.clone(),
            retain_rollback: m.retain_rollback || opts.retain_rollback,
            stage: false,
            ..opts.clone()
        };
        let d = self.finish_deploy(
            &repo,
            &current,
            &m.stateroot,
            &m.checksum,
            m.deployserial,
            merge,
            &o,
        )?;
        self.clear_staged()?;
        Ok(Some(d))
    }

    /// The /etc three-way merge from the merge deployment at `mdir` into `etc`, reported
    /// with ostree's counts (its `config-diff` of the merge deployment). Skipped when any of
    /// the three is not a real directory: a link there would make it write into the host.
    fn merge_etc(&self, repo: &crate::repo::Repo, mdir: &Path, etc: &Path) -> Result<()> {
        let (old_defaults, old_etc) = (mdir.join("usr/etc"), mdir.join("etc"));
        if !(is_real_dir(&old_defaults) && is_real_dir(&old_etc) && is_real_dir(etc)) {
            return Ok(());
        }
        let d = repo.diff(
            &crate::repo::DiffSide::Dir(old_defaults.clone()),
            &crate::repo::DiffSide::Dir(old_etc.clone()),
            &crate::repo::LocalChecksumOptions {
                ignore_xattrs: true,
                ..Default::default()
            },
        )?;
        self.emit(super::SysrootEvent::EtcMerged {
            modified: d.modified.len(),
            removed: d.removed.len(),
            added: d.added.len(),
        });
        etc_merge::merge(&old_defaults, &old_etc, etc)
    }

    /// Lock (or unlock) finalization of the staged deployment: ostree's
    /// `/run/ostree/staged-deployment-locked`, which `finalize-staged` respects.
    pub(super) fn set_finalization_locked(&self, locked: bool) -> Result<()> {
        let p = self.staged_locked_path();
        if locked {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).ctx("create directory", d)?;
            }
            crate::fsutil::write_atomic(&p, b"", true)
        } else {
            match std::fs::remove_file(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).ctx("remove", p),
            }
        }
    }

    /// Copy an overlay initramfs image into `/boot/ostree/initramfs-overlays/SHA256.img`
    /// (ostree's place and name) and return its checksum, for
    /// [`DeployOptions::overlay_initrds`]. Copied through a temporary file, flushed, then
    /// renamed: a crash leaves the image whole or absent.
    pub fn stage_overlay_initrd(&self, file: &Path) -> Result<String> {
        use std::io::{Read, Write};
        let _lock = self.lock(|| {})?;
        let mut f = std::fs::File::open(file).ctx("open", file)?;
        if !f.metadata().ctx("stat", file)?.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a regular file",
                file.display()
            )));
        }
        let dir = self.path.join("boot/ostree/initramfs-overlays");
        std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let mut tmp = crate::fsutil::tempfile_in(&dir)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = f.read(&mut buf).ctx("read", file)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            tmp.write_all(&buf[..n]).ctx("write", tmp.path())?;
        }
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        let sum = Checksum(h.finalize().into()).to_hex();
        let dst = dir.join(format!("{sum}.img"));
        // (Mode 0600, as ostree leaves it: an overlay may carry secrets, e.g. keys.)
        tmp.persist(&dst).map_err(|e| e.error).ctx("rename", &dst)?;
        crate::fsutil::fsync_dir(&dir)?;
        Ok(sum)
    }

    /// Refuse cleanly when the filesystem cannot hold the new deployment's copies (/etc
    /// and the kernel; the rest are hardlinks): returns the bytes estimated.
    fn check_free_space(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(self.path.as_path()).ctx("statvfs", &self.path)?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let need: u64 = 16 << 20;
        if free < need {
            return Err(Error::Io {
                op: "deploy into",
                path: self.path.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            });
        }
        Ok(need)
    }

    /// Write `plan` as the boot configuration: new `loader.N'` entries and `boot.N'.M'` link
    /// farm next to the live ones, then one atomic rename of the `loader` symlink. When the
    /// entries would not change (same kernels, kernel arguments, titles, in the same order:
    /// ostree's "bootconfig swap: no"), only a new link farm `boot.N.M'` is made and the
    /// `ostree/boot.N` link renamed onto it; the bootloader's files are left alone.
    pub(super) fn write_deployments(
        &self,
        repo: &crate::repo::Repo,
        plan: &[Planned],
    ) -> Result<()> {
        self.write_deployments_counted(repo, plan, 0)
    }

    /// [`Self::write_deployments`], reporting the change in the number of deployments
    /// against `extra_old` more than the boot entries (a staged deployment the new list
    /// drops, which ostree counts).
    pub(super) fn write_deployments_counted(
        &self,
        repo: &crate::repo::Repo,
        plan: &[Planned],
        extra_old: usize,
    ) -> Result<()> {
        let _lock = self.lock(|| {})?;
        // systemd-boot: first make the ESP name the live boot links (an earlier run may
        // have stopped between its swap and its mirror update), since this run replaces
        // the other ones (see `esp`).
        self.sync_esp()?;
        // Its boot counters live on the ESP, not in these entries' names.
        let bootloader = self.bootloader()?;
        let counters_here = bootloader != super::bootloader::Bootloader::SystemdBoot;
        if let Some(bad) = plan
            .iter()
            .flat_map(|p| p.kargs.iter())
            .find(|a| a.chars().any(char::is_control))
        {
            return Err(Error::InvalidArgument(format!(
                "kernel argument {bad:?} has control characters"
            )));
        }
        let current = self.deployments()?;
        let count_change = plan.len() as i64 - (current.len() + extra_old) as i64;
        let multi_os = {
            let mut roots: Vec<&str> = plan.iter().map(|p| p.stateroot.as_str()).collect();
            roots.sort_unstable();
            roots.dedup();
            roots.len() > 1
        };
        let commits: Vec<Checksum> = plan.iter().map(|p| p.checksum).collect();
        let old = self.bootversion()?;
        if let Some(bv) = old.filter(|_| same_bootconfigs(&current, plan, multi_os)) {
            let sub = 1 - self.subbootversion(bv);
            self.build_link_farm(plan, bv, sub)?;
            super::failpoint("deploy::entries")?;
            crate::fsutil::syncfs(&self.path)?;
            test_fifreeze()?;
            replace_symlink(
                &self.path.join(format!("ostree/boot.{bv}")),
                &format!("boot.{bv}.{sub}"),
            )?;
            crate::fsutil::fsync_dir(&self.path.join("ostree"))?;
            super::failpoint("deploy::bootlinks")?;
            // systemd-boot: the ESP follows the swap (its entries are per deployment).
            self.sync_esp()?;
            self.write_deployment_refs(repo, bv, sub, &commits, false)?;
            super::failpoint("deploy::refs")?;
            self.write_deployment_refs(repo, bv, sub, &commits, true)?;
            self.bump_mtime()?;
            self.emit(super::SysrootEvent::DeploymentsWritten {
                swapped: false,
                atomic: true,
                bootversion: bv,
                subbootversion: sub,
                count_change,
            });
            return Ok(());
        }
        let new = 1 - old.unwrap_or(0);
        let boot = self.path.join("boot");
        let loader_new = boot.join(format!("loader.{new}"));
        if loader_new.exists() {
            std::fs::remove_dir_all(&loader_new).ctx("remove", &loader_new)?;
        }
        let entries = loader_new.join("entries");
        std::fs::create_dir_all(&entries).ctx("create directory", &entries)?;
        let link = self.path.join(format!("ostree/boot.{new}"));
        let new_sub = 1 - self.subbootversion(new);
        let bootserials = self.build_link_farm(plan, new, new_sub)?;
        let n = plan.len();
        let mut written = Vec::with_capacity(n);
        for (i, (p, bootserial)) in plan.iter().zip(bootserials).enumerate() {
            let k = &p.kernel;
            let kdir_rel = format!("ostree/{}-{}", p.stateroot, k.bootcsum);
            let version_no = n - i;
            // The boot link replaces an inherited `ostree=` where it was, as ostree's
            // kernel-argument replace does; otherwise it goes last.
            let boot_link = format!(
                "/ostree/boot.{new}/{}/{}/{bootserial}",
                p.stateroot, k.bootcsum
            );
            let mut options = super::kargs::KernelArgs::from_args(&p.kargs);
            // Without an initramfs the kernel itself must start ostree-prepare-root (from
            // the deployment, through the boot link), as ostree sets it.
            if k.initramfs.is_none() {
                options.replace(&format!(
                    "init={boot_link}/usr/lib/ostree/ostree-prepare-root"
                ));
            }
            options.replace(&format!("ostree={boot_link}"));
            let options = options.into_args();
            // ostree's order: title, version, options, devicetree, linux, initrd(s), fdtdir.
            let mut e = BlsEntry::default();
            e.set("title", &entry_title(p, i, multi_os));
            e.set("version", &version_no.to_string());
            e.set("options", &options.join(" "));
            if let Some(DeviceTree::File(f)) = &k.devicetree {
                e.set("devicetree", &format!("/{kdir_rel}/{}", f.name));
            }
            e.set("linux", &format!("/{kdir_rel}/{}", k.vmlinuz.name));
            if let Some(f) = &k.initramfs {
                e.set("initrd", &format!("/{kdir_rel}/{}", f.name));
            }
            // Overlay images: more `initrd` lines, loaded after the deployment's own.
            for o in &p.overlay_initrds {
                e.lines.push((
                    "initrd".into(),
                    super::bls::one_line(&format!("/ostree/initramfs-overlays/{o}.img")),
                ));
            }
            if let Some(DeviceTree::Dir(_)) = &k.devicetree {
                e.set("fdtdir", &format!("/{kdir_rel}/dtb"));
            }
            let name = entries.join(format!(
                "ostree-{version_no}-{}{}.conf",
                p.stateroot,
                super::bls::tries_suffix(p.tries.filter(|_| counters_here))
            ));
            crate::fsutil::write_atomic(&name, e.to_string().as_bytes(), false)?;
            written.push(e);
        }
        super::failpoint("deploy::entries")?;
        // Swap ostree/boot.N' to the new farm.
        replace_symlink(&link, &format!("boot.{new}.{new_sub}"))?;
        // The bootloader's own file beside the entries (after the link swap, as in ostree:
        // U-Boot's takes the default deployment's uEnv.txt through it).
        let system_uenv = match (bootloader, plan.first()) {
            (super::bootloader::Bootloader::Uboot, Some(p)) => {
                read_tree_text(&p.kernel.root, "usr/lib/ostree-boot/uEnv.txt")?
            }
            _ => None,
        };
        self.write_bootloader_config(bootloader, new, &written, system_uenv.as_deref())?;
        super::failpoint("deploy::bootlinks")?;
        // The refs of the new list, beside the old list's: from here on both lists' commits
        // are kept, whichever of them the next boot uses.
        self.write_deployment_refs(repo, new, new_sub, &commits, false)?;
        super::failpoint("deploy::refs")?;
        let bb = boot.join("boot");
        if std::fs::symlink_metadata(&bb).is_err() {
            std::os::unix::fs::symlink(".", &bb).ctx("symlink", &bb)?;
        }
        crate::fsutil::syncfs(&self.path)?;
        test_fifreeze()?;
        self.flush_boot("deploy::frozen-before-swap")?;
        super::failpoint("deploy::swap")?;
        // The switch: one rename.
        replace_symlink(&boot.join("loader"), &format!("loader.{new}"))?;
        crate::fsutil::fsync_dir(&boot)?;
        self.flush_boot("deploy::frozen-after-swap")?;
        super::failpoint("deploy::swapped")?;
        // systemd-boot: the ESP follows the swap before anything old is removed.
        self.sync_esp()?;
        // Only now may the old list's refs go.
        self.write_deployment_refs(repo, new, new_sub, &commits, true)?;
        self.bump_mtime()?;
        self.emit(super::SysrootEvent::DeploymentsWritten {
            swapped: true,
            atomic: bootloader.atomic(),
            bootversion: new,
            subbootversion: new_sub,
            count_change,
        });
        Ok(())
    }

    /// The kernels (copied into /boot once per bootcsum) and the link farm
    /// `ostree/boot.N.M/<os>/<bootcsum>/<bootserial> -> deployment` of `plan`, made beside
    /// the live one; returns each deployment's boot serial.
    fn build_link_farm(&self, plan: &[Planned], bootversion: u32, sub: u32) -> Result<Vec<u32>> {
        let boot = self.path.join("boot");
        let farm = self.path.join(format!("ostree/boot.{bootversion}.{sub}"));
        if farm.exists() {
            std::fs::remove_dir_all(&farm).ctx("remove", &farm)?;
        }
        let mut serials: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for p in plan {
            let k = &p.kernel;
            let bootserial = {
                let s = serials.entry(k.bootcsum.clone()).or_insert(0);
                let v = *s;
                *s += 1;
                v
            };
            // Kernel and initramfs, copied once per bootcsum.
            let kdir = boot.join(format!("ostree/{}-{}", p.stateroot, k.bootcsum));
            std::fs::create_dir_all(&kdir).ctx("create directory", &kdir)?;
            let dt_file = match &k.devicetree {
                Some(DeviceTree::File(f)) => Some(f),
                _ => None,
            };
            let files = [
                Some(&k.vmlinuz),
                k.initramfs.as_ref(),
                dt_file,
                k.hmac.as_ref(),
            ];
            for f in files.into_iter().flatten() {
                copy_if_missing(&k.root, &f.src, &kdir.join(&f.name))?;
            }
            if let Some(DeviceTree::Dir(src)) = &k.devicetree {
                copy_dir_if_missing(&k.root, src, &kdir.join("dtb"))?;
            }
            let fdir = farm.join(&p.stateroot).join(&k.bootcsum);
            std::fs::create_dir_all(&fdir).ctx("create directory", &fdir)?;
            let target = format!(
                "../../../deploy/{}/deploy/{}.{}",
                p.stateroot, p.checksum, p.deployserial
            );
            let l = fdir.join(bootserial.to_string());
            std::os::unix::fs::symlink(&target, &l).ctx("symlink", &l)?;
            out.push(bootserial);
        }
        Ok(out)
    }

    /// Flush `/boot` around the loader swap, as ostree's `full_system_sync` (before) and
    /// `swap_bootloader` (after) do: a freeze/thaw cycle, so that a bootloader that does not
    /// replay the journal (GRUB on XFS) sees the new entries and kernels in place; `syncfs`
    /// where the filesystem cannot be frozen. Only a `/boot` that is a filesystem of its own
    /// (a mount point: another device than the sysroot's, and not the one of `/`) is ever
    /// frozen; on the sysroot's own filesystem (one partition, and every test sysroot) the
    /// sysroot's `syncfs` covers it and `/boot` gets a `syncfs`. `failpoint` runs while the
    /// filesystem is frozen.
    fn flush_boot(&self, failpoint: &str) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let boot = self.path.join("boot");
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ctx("stat", p);
        let boot_dev = dev(&boot)?;
        let own_fs = boot_dev != dev(&self.path)? && boot_dev != dev(Path::new("/"))?;
        if own_fs {
            crate::fsutil::freeze::freeze_thaw_cycle(&boot, || super::failpoint(failpoint))?;
            Ok(())
        } else {
            crate::fsutil::syncfs(&boot)
        }
    }

    /// The sub-bootversion M of `ostree/boot.N -> boot.N.M` (0 when there is no link yet).
    fn subbootversion(&self, bootversion: u32) -> u32 {
        std::fs::read_link(self.path.join(format!("ostree/boot.{bootversion}")))
            .ok()
            .and_then(|t| {
                t.to_string_lossy()
                    .rsplit('.')
                    .next()
                    .and_then(|s| s.parse::<u32>().ok())
            })
            .unwrap_or(0)
            .min(1)
    }

    /// The deployment refs `ostree/N/M/I` (bootversion N, sub-bootversion M, index I) that
    /// keep the deployed commits (and a staged one) from being pruned, as ostree names
    /// them. New before old: the new set is written (and flushed, whatever `core.fsync`
    /// says) before, with `remove_stale`, every other `ostree/N/M/I` ref is deleted, so at
    /// no point does a deployed commit lack a ref.
    fn write_deployment_refs(
        &self,
        repo: &crate::repo::Repo,
        bootversion: u32,
        subbootversion: u32,
        commits: &[Checksum],
        remove_stale: bool,
    ) -> Result<()> {
        let mut want: Vec<(String, Checksum)> = commits
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("ostree/{bootversion}/{subbootversion}/{i}"), *c))
            .collect();
        if let Some(m) = self.read_staged()? {
            if !commits.contains(&m.checksum) {
                let i = want.len();
                want.push((
                    format!("ostree/{bootversion}/{subbootversion}/{i}"),
                    m.checksum,
                ));
            }
        }
        let existing = repo.list_refs()?;
        // In one repository transaction, as ostree writes them (its test hooks stop there).
        let txn = repo.begin()?;
        for (name, c) in &want {
            let r = RefName {
                remote: None,
                name: name.clone(),
            };
            if existing.get(&r) != Some(c) {
                txn.set_ref(&r, Some(c))?;
            }
        }
        txn.commit()?;
        crate::fsutil::syncfs(repo.path())?;
        if remove_stale {
            for r in existing.keys() {
                let deployment_ref = r.remote.is_none()
                    && r.name.starts_with("ostree/")
                    && r.name.split('/').count() == 4;
                if deployment_ref && !want.iter().any(|(n, _)| *n == r.name) {
                    match repo.set_ref(r, None) {
                        Ok(()) | Err(Error::RefNotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// `admin cleanup`: [`Self::cleanup`], then prune the system repo of every object that
    /// no ref (including the `ostree/N/M/I` deployment refs) reaches, as ostree does.
    ///
    /// Every deployment's commit (and a staged one's) is kept whatever the refs say: the
    /// prune adds them to what the refs reach, under its exclusive repository lock, as
    /// ostree's `ostree_sysroot_cleanup_prune_repo` does; the sysroot lock keeps the list
    /// from changing meanwhile.
    pub fn cleanup_and_prune(&self) -> Result<crate::repo::PruneReport> {
        let _lock = self.lock(|| {})?;
        self.cleanup()?;
        self.prune_repo()
    }

    /// The prune half of [`Self::cleanup_and_prune`] (what ostree does after writing a new
    /// deployment list, unless `--no-prune`): every object no ref and no deployment (staged
    /// or not) reaches goes.
    pub fn prune_repo(&self) -> Result<crate::repo::PruneReport> {
        let _lock = self.lock(|| {})?;
        let mut keep: Vec<Checksum> = self.deployments()?.iter().map(|d| d.checksum).collect();
        if let Some(m) = self.read_staged()? {
            keep.push(m.checksum);
        }
        self.repo()?.prune_keeping(
            &crate::repo::PruneOptions {
                refs_only: true,
                depth: 0,
                ..Default::default()
            },
            &keep,
        )
    }

    /// Remove what no deployment uses: old loader/link-farm generations, deployment
    /// directories not in the boot configuration, unused kernels.
    pub fn cleanup(&self) -> Result<()> {
        let _lock = self.lock(|| {})?;
        let Some(cur) = self.bootversion()? else {
            return Ok(());
        };
        let deps = self.deployments()?;
        // systemd-boot: the ESP entries must name the live boot links before the old ones go.
        self.sync_esp()?;
        // The deployment refs follow the live list, whatever an interrupted deploy left.
        let commits: Vec<Checksum> = deps.iter().map(|d| d.checksum).collect();
        self.write_deployment_refs(&self.repo()?, cur, self.subbootversion(cur), &commits, true)?;
        let other = 1 - cur;
        let stale_loader = self.path.join(format!("boot/loader.{other}"));
        if stale_loader.exists() {
            std::fs::remove_dir_all(&stale_loader).ctx("remove", &stale_loader)?;
        }
        let live_farm = std::fs::read_link(self.path.join(format!("ostree/boot.{cur}")))
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        for e in std::fs::read_dir(self.path.join("ostree"))
            .ctx("read directory", self.path.join("ostree"))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("boot.") else {
                continue;
            };
            let keep = rest == cur.to_string() || Some(&name) == live_farm.as_ref();
            if !keep {
                let p = e.path();
                if std::fs::symlink_metadata(&p)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false)
                {
                    std::fs::remove_file(&p).ctx("remove", &p)?;
                } else {
                    std::fs::remove_dir_all(&p).ctx("remove", &p)?;
                }
            }
        }
        let mut live: std::collections::HashSet<String> = deps
            .iter()
            .map(|d| format!("{}/{}", d.stateroot, d.dirname()))
            .collect();
        // A staged deployment is not in the boot configuration yet, but must survive.
        if let Some(m) = self.read_staged()? {
            live.insert(format!("{}/{}.{}", m.stateroot, m.checksum, m.deployserial));
        }
        let deploy = self.path.join("ostree/deploy");
        for os in std::fs::read_dir(&deploy)
            .ctx("read directory", &deploy)?
            .flatten()
        {
            let osname = os.file_name().to_string_lossy().into_owned();
            let dd = os.path().join("deploy");
            let Ok(rd) = std::fs::read_dir(&dd) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let base = name.trim_end_matches(".origin");
                if !live.contains(&format!("{osname}/{base}")) {
                    let p = e.path();
                    if p.is_dir() {
                        // Deployments are immutable at the top (ours and ostree's).
                        crate::fsutil::set_immutable(&p, false)?;
                        std::fs::remove_dir_all(&p).ctx("remove", &p)?;
                    } else {
                        std::fs::remove_file(&p).ctx("remove", &p)?;
                    }
                }
            }
        }
        let live_kernels: std::collections::HashSet<String> = deps
            .iter()
            .map(|d| format!("{}-{}", d.stateroot, d.bootcsum))
            .collect();
        let kdir = self.path.join("boot/ostree");
        if let Ok(rd) = std::fs::read_dir(&kdir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir()
                    && name.contains('-')
                    && !live_kernels.contains(&name)
                    && name != "initramfs-overlays"
                {
                    std::fs::remove_dir_all(e.path()).ctx("remove", e.path())?;
                }
            }
        }
        // Overlay initramfs images no deployment (staged or not) loads.
        let mut live_overlays: std::collections::HashSet<String> =
            deps.iter().flat_map(|d| overlays_of(&d.entry)).collect();
        if let Some(m) = self.read_staged()? {
            live_overlays.extend(m.overlay_initrds);
        }
        let odir = kdir.join("initramfs-overlays");
        if let Ok(rd) = std::fs::read_dir(&odir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let used = name
                    .strip_suffix(".img")
                    .is_some_and(|c| live_overlays.contains(c));
                if !used {
                    std::fs::remove_file(e.path()).ctx("remove", e.path())?;
                }
            }
        }
        Ok(())
    }
}

/// The kernel arguments a deploy writes, as ostree's `admin deploy` settles them: from
/// `opts.kargs` (`--karg-none`, `--karg-proc-cmdline`), else the merge deployment's when
/// there are edits, then `--karg` (replace), `--karg-append`, `--karg-delete`. `None`: no
/// option given, the merge deployment's are inherited.
fn resolve_kargs(opts: &DeployOptions, merge: Option<&Deployment>) -> Result<Option<Vec<String>>> {
    use super::kargs::KernelArgs;
    // Refused as given: split on whitespace later, a newline would pass as a separator
    // while ostree would write it into the entry (an injected `init=` line).
    if let Some(bad) = opts
        .kargs
        .iter()
        .flatten()
        .chain(&opts.karg_replace)
        .chain(&opts.karg_append)
        .chain(&opts.karg_delete)
        .find(|a| a.chars().any(char::is_control))
    {
        return Err(Error::InvalidArgument(format!(
            "kernel argument {bad:?} has control characters"
        )));
    }
    let edits = !opts.karg_replace.is_empty()
        || !opts.karg_append.is_empty()
        || !opts.karg_delete.is_empty();
    let mut k = match (&opts.kargs, merge) {
        (Some(base), _) => Some(KernelArgs::from_args(base)),
        (None, Some(m)) if edits => Some(KernelArgs::from_args(&kargs_of(&m.entry))),
        _ => None,
    };
    if edits {
        let k = k.get_or_insert_with(KernelArgs::new);
        for a in &opts.karg_replace {
            k.replace(a);
        }
        for a in &opts.karg_append {
            k.append(a);
        }
        for a in &opts.karg_delete {
            k.delete(a)?;
        }
    }
    Ok(k.map(KernelArgs::into_args))
}

/// An origin as ostree writes it: what GLib's keyfile writer makes of it (comments and
/// blank lines dropped, `key=value`, a blank line between groups), without the transient
/// group (pinning belongs to the deployment it was set on).
pub(super) fn normalized_origin(o: &KeyFile) -> KeyFile {
    let mut out = glib_keyfile(o);
    out.remove_group("libostree-transient");
    out
}

/// `o` as GLib writes a keyfile it loaded without keeping comments: groups and keys in
/// order, `key=value`, a blank line between groups (an empty group stays).
pub(super) fn glib_keyfile(o: &KeyFile) -> KeyFile {
    let mut out = KeyFile::new();
    for g in o.groups() {
        out.add_group(g);
        for k in o.keys(g) {
            if let Some(v) = o.get(g, k) {
                out.set(g, k, v);
            }
        }
    }
    out
}

/// The `title` of a deployment's entry: the OS's pretty name, its version, and its place
/// in the list (with the stateroot when there are several), as ostree writes it.
fn entry_title(p: &Planned, i: usize, multi_os: bool) -> String {
    let mut title = p.pretty.clone();
    if let Some(v) = &p.version {
        if !title.contains(v.as_str()) {
            title = format!("{title} {v}");
        }
    }
    let osname = if multi_os {
        format!("{}:", p.stateroot)
    } else {
        String::new()
    };
    format!("{title} (ostree:{osname}{i})")
}

/// Whether writing `plan` would leave every bootloader entry as it is: the same number of
/// deployments, each with the same stateroot, kernel, kernel arguments, overlay images,
/// boot counting state and title (ostree compares kernel, arguments and version; the title
/// holds the version).
fn same_bootconfigs(current: &[Deployment], plan: &[Planned], multi_os: bool) -> bool {
    current.len() == plan.len()
        && current.iter().zip(plan).enumerate().all(|(i, (d, p))| {
            let kdir = format!("/ostree/{}-{}", p.stateroot, p.kernel.bootcsum);
            d.stateroot == p.stateroot
                && d.bootcsum == p.kernel.bootcsum
                && without_ostree_arg(&kargs_of(&d.entry)) == without_ostree_arg(&p.kargs)
                && overlays_of(&d.entry) == p.overlay_initrds
                && d.tries == p.tries
                && d.entry.get("title") == Some(entry_title(p, i, multi_os).as_str())
                && d.entry.get("linux")
                    == Some(format!("{kdir}/{}", p.kernel.vmlinuz.name).as_str())
        })
}

/// Checksums of the overlay initramfs images an entry loads (`initrd` lines after the
/// first, under `/ostree/initramfs-overlays/`).
fn overlays_of(e: &BlsEntry) -> Vec<String> {
    e.lines
        .iter()
        .filter(|(k, _)| k == "initrd")
        .filter_map(|(_, v)| {
            v.strip_prefix("/ostree/initramfs-overlays/")
                .and_then(|n| n.strip_suffix(".img"))
                .map(str::to_string)
        })
        .collect()
}

/// An entry's kernel arguments, `ostree=` included: ostree keeps its place in the list when
/// the arguments are carried over (the new value replaces it there).
fn kargs_of(e: &BlsEntry) -> Vec<String> {
    super::kargs::KernelArgs::parse(e.get("options").unwrap_or_default()).into_args()
}

/// `args` without ostree's own `ostree=`.
fn without_ostree_arg(args: &[String]) -> Vec<&String> {
    args.iter().filter(|a| !a.starts_with("ostree=")).collect()
}

/// Copy `rel` of the deployment tree `root` (read inside the tree) to `dst` under /boot,
/// unless a copy is there already: tmp file, fsync, rename.
fn copy_if_missing(root: &Path, rel: &str, dst: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    let tmp = dst.with_extension("tmp");
    copy_file(root, rel, &tmp)?;
    std::fs::rename(&tmp, dst).ctx("rename", dst)
}

/// Copy `rel` of the deployment tree `root` (read inside the tree) to `to`, flushed.
fn copy_file(root: &Path, rel: &str, to: &Path) -> Result<()> {
    let mut from = super::tree::open_file(root, rel)?.ok_or_else(|| Error::Io {
        op: "open",
        path: root.join(rel),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let mut f = std::fs::File::create(to).ctx("create", to)?;
    std::io::copy(&mut from, &mut f).ctx("copy kernel to", to)?;
    f.sync_all().ctx("fsync", to)
}

/// Copy the directory `rel` of the deployment tree `root` (a device tree's `dtb/`) to `dst`
/// under /boot, unless it is there already: built as `dst.tmp`, every file flushed, then
/// renamed into place, so `dst` is whole or absent.
fn copy_dir_if_missing(root: &Path, rel: &str, dst: &Path) -> Result<()> {
    fn copy_dir(root: &Path, rel: &str, to: &Path) -> Result<()> {
        crate::stack::check(|| root.join(rel).display().to_string())?;
        std::fs::create_dir(to).ctx("create directory", to)?;
        for n in super::tree::list_dir(root, rel)? {
            let child = format!("{rel}/{n}");
            if super::tree::is_dir(root, &child)? {
                copy_dir(root, &child, &to.join(&n))?;
            } else {
                copy_file(root, &child, &to.join(&n))?;
            }
        }
        Ok(())
    }
    if std::fs::symlink_metadata(dst).is_ok() {
        return Ok(());
    }
    let tmp = dst.with_extension("tmp");
    if std::fs::symlink_metadata(&tmp).is_ok() {
        std::fs::remove_dir_all(&tmp).ctx("remove", &tmp)?;
    }
    copy_dir(root, rel, &tmp)?;
    std::fs::rename(&tmp, dst).ctx("rename", dst)
}

/// The text of the small configuration file `rel` of the deployment tree `root` (read
/// inside the tree), if it is there; one of more than 1 MiB is refused.
fn read_tree_text(root: &Path, rel: &str) -> Result<Option<String>> {
    let Some(f) = super::tree::open_file(root, rel)? else {
        return Ok(None);
    };
    let path = root.join(rel);
    if f.metadata().ctx("stat", &path)?.len() > 1 << 20 {
        return Err(Error::InvalidArgument(format!(
            "{}: larger than 1 MiB",
            path.display()
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 1 << 20), &mut text)
        .ctx("read", &path)?;
    Ok(Some(text))
}

/// Point `link` at `target` atomically (a new symlink renamed over the old one).
fn replace_symlink(link: &Path, target: &str) -> Result<()> {
    let tmp = link.with_file_name(format!(
        "{}.tmp",
        link.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).ctx("symlink", &tmp)?;
    std::fs::rename(&tmp, link).ctx("rename", link)
}

/// ostree's finalization: a new deployment starts without `etc/.updated`, and its
/// stateroot without `var/.updated`, so systemd's `ConditionNeedsUpdate=` units run once
/// after the boot into it.
fn remove_updated_stamps(etc: &Path, os_dir: &Path) -> Result<()> {
    for p in [etc.join(".updated"), os_dir.join("var/.updated")] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("remove", &p),
        }
    }
    Ok(())
}
