//! `oxtree image build`: a bootable GPT disk image from a commit, as every image-based OS
//! ships one (coreos-assembler, bootc `install to-disk`, mkosi), built with no loop device,
//! no mount and no root-only kernel feature (what breaks those tools in containers):
//!
//! 1. a sysroot made by oxtree in a work directory: `init-fs`, `os-init`, the remote and its
//!    signing keys, the commit pulled (verified as a pull verifies it) and deployed with
//!    the systemd-boot backend on, which mirrors the entries and kernels onto an ESP
//!    directory (`sysroot::esp`); systemd-boot's EFI binary at `EFI/BOOT/BOOTX64.EFI`, the
//!    removable-media path firmware boots with no boot variable set;
//! 2. sizes computed from that content (and checked against `--size` before anything is
//!    written, naming the size needed);
//! 3. the image file, sparse: GPT ([`disk`]), the ESP as FAT32 written in place ([`fat`]),
//!    the root as ext4 by `mkfs.ext4 -d` at the partition's offset with an explicit size
//!    ([`ext4`]); qcow2 by `qemu-img convert` when asked.
//!
//! Crates, measured here (2 cores, release build of a scratch crate):
//! - GPT: `gpt` 4.1 (bitflags, crc, simple-bytes, uuid; 4 s to build) takes explicit disk
//!   and partition GUIDs and gives byte-identical tables for identical inputs, verified by
//!   `sfdisk --verify` and `sgdisk -v`. `gptman` 3.1 is as capable but brings a derive-macro
//!   serializer (wincode, darling, a second syn: 24 crates, 14 s). Writing GPT by hand would
//!   be ~150 lines of CRC-checked layout that `gpt` already has right. Chosen: `gpt`.
//! - FAT: `fatfs` 0.3.6 (bitflags 1, byteorder, log; no chrono: our time provider) formats
//!   FAT32 and writes long names; the alternative is shelling out to `mkfs.fat --offset` and
//!   mtools' `mcopy -i img@@OFFSET` (two more packages on the build host). It is the crate
//!   the Rust OS-dev tools (the `bootloader` crate) use, but its last release is from 2022
//!   and, measured, `fsck.fat -n` rejects what 0.3.6 writes: long-name entries before each
//!   directory's `.`/`..`, a `..` naming the root's cluster instead of 0, no FSInfo free
//!   count (fixed in its unreleased 0.4). `fat::fix_fatfs_output` repairs exactly those
//!   after the write (and leaves a correct volume alone), and the images then pass
//!   `fsck.fat -n`: chosen, since the alternative adds two tools to every build host.
//! - ext4: no crate writes it; `mkfs.ext4 -d` (e2fsprogs) is the one external tool.
//!
//! Reproducibility: every GUID/UUID, the ext4 hash seed and the FAT volume id derive from a
//! seed (the commit, stateroot, kernel arguments and `SOURCE_DATE_EPOCH`, or `--seed`), and
//! every FAT timestamp and the ext4 superblock times come from `SOURCE_DATE_EPOCH`: the GPT
//! and the ESP are byte-identical across builds. The ext4 partition is not: mkfs.ext4 1.47
//! copies each file's ctime (which no tool can set) and allocates inodes in the order the
//! build directory lists them; the files, owners, modes and xattrs in it are identical.

mod disk;
mod ext4;
mod fat;

pub use disk::{Guids, Layout, MIB};

use crate::error::{Error, IoContext, Result};
use crate::object::Checksum;
use crate::repo::Repo;
use crate::sysroot::Sysroot;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Raw,
    /// Converted from raw by `qemu-img`.
    Qcow2,
}

#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// Repository holding the commit (any mode); without it, the commit is pulled from
    /// `remote`.
    pub repo: Option<PathBuf>,
    /// The ref (or commit checksum) to deploy.
    pub refspec: String,
    pub output: PathBuf,
    /// The whole disk; `None`: twice what the root filesystem needs, plus the ESP.
    pub size: Option<u64>,
    pub esp_size: u64,
    pub format: ImageFormat,
    pub stateroot: String,
    /// Kernel arguments, after `root=PARTUUID=<root partition> rw` (unless they set
    /// `root=` themselves).
    pub kargs: Vec<String>,
    /// `NAME=URL`: the remote the machine updates from; the deployment then follows
    /// `NAME:REF`.
    pub remote: Option<(String, String)>,
    /// `remote add --set` options (e.g. `sign-verify=true`,
    /// `verification-ed25519-key=…`): the remote's signing keys.
    pub remote_options: Vec<(String, String)>,
    pub no_gpg_verify: bool,
    /// `[sysroot] boot-counting-tries`: tries each new deployment gets.
    pub boot_counting_tries: Option<u32>,
    /// systemd-boot's EFI binary when the tree has none.
    pub efi_binary: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH`: the time written everywhere a time is written.
    pub source_date_epoch: Option<i64>,
    /// Seed for every GUID (default: derived from the inputs).
    pub seed: Option<String>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            repo: None,
            refspec: String::new(),
            output: PathBuf::new(),
            size: None,
            esp_size: 512 * MIB,
            format: ImageFormat::Raw,
            stateroot: "default".into(),
            kargs: Vec::new(),
            remote: None,
            remote_options: Vec::new(),
            no_gpg_verify: false,
            boot_counting_tries: None,
            efi_binary: None,
            source_date_epoch: None,
            seed: None,
        }
    }
}

/// What a build made, how big and how long each step took.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub output: PathBuf,
    pub format: ImageFormat,
    pub commit: Checksum,
    pub deployment: String,
    pub kargs: Vec<String>,
    pub layout: Layout,
    pub guids: Guids,
    /// Allocated bytes and inodes of the sysroot that went into the root filesystem.
    pub sysroot_bytes: u64,
    pub sysroot_inodes: u64,
    /// The smallest root partition that holds it.
    pub root_min: u64,
    /// File data on the ESP.
    pub esp_bytes: u64,
    /// Where systemd-boot came from.
    pub efi_binary: String,
    /// Where the booted system mounts the ESP (`/efi`, or `/boot/efi` when the tree has no
    /// `/efi`).
    pub esp_mount_point: String,
    /// Bytes the output file occupies on disk (it is sparse).
    pub allocated: u64,
    pub steps: Vec<(&'static str, Duration)>,
}

/// The EFI architecture names: (`BOOTX64.EFI` suffix, systemd-boot file suffix).
fn efi_arch() -> Option<(&'static str, &'static str)> {
    if cfg!(target_arch = "x86_64") {
        Some(("X64", "x64"))
    } else if cfg!(target_arch = "aarch64") {
        Some(("AA64", "aa64"))
    } else {
        None
    }
}

/// The work directory, removed however the build ends (deployments are immutable at the
/// top, so that flag goes first).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let deploy = self.0.join("sysroot/ostree/deploy");
        if let Ok(roots) = std::fs::read_dir(&deploy) {
            for r in roots.flatten() {
                if let Ok(ds) = std::fs::read_dir(r.path().join("deploy")) {
                    for d in ds.flatten() {
                        if d.path().is_dir() {
                            let _ = crate::fsutil::set_immutable(&d.path(), false);
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A partial output file, removed unless the build completed.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn uuid_from(seed: &[u8; 32], what: &str) -> uuid::Uuid {
    let mut h = sha2::Sha256::new();
    h.update(seed);
    h.update(what.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

fn is_checksum(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `qemu-img`, when the output is qcow2 (`QEMU_IMG` overrides the name).
fn qemu_img() -> String {
    std::env::var("QEMU_IMG").unwrap_or_else(|_| "qemu-img".into())
}

/// Build the image (see the module doc). `step` is told what is being done, as it starts.
pub fn build(opts: &ImageOptions, step: &dyn Fn(&str)) -> Result<ImageReport> {
    let t_all = Instant::now();
    let mut steps = Vec::new();
    crate::object::validate_remote_name(&opts.stateroot).map_err(|_| {
        Error::InvalidArgument(format!("invalid stateroot name {:?}", opts.stateroot))
    })?;
    let Some((efi_upper, efi_lower)) = efi_arch() else {
        return Err(Error::InvalidArgument(
            "oxtree image build knows the EFI file names of x86_64 and aarch64 only".into(),
        ));
    };
    if opts.output.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: is a directory; give the image file to write",
            opts.output.display()
        )));
    }
    ext4::check_tool()?;
    if opts.format == ImageFormat::Qcow2
        && !std::process::Command::new(qemu_img())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Err(Error::InvalidArgument(format!(
            "--format=qcow2 needs {} (Debian: apt-get install qemu-utils)",
            qemu_img()
        )));
    }
    if opts.repo.is_none() && opts.remote.is_none() {
        return Err(Error::InvalidArgument(
            "give the repository holding the commit (--repo) or the remote to pull it from (--remote=NAME=URL)".into(),
        ));
    }
    let epoch = opts.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    });
    let out_dir = opts
        .output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let out_name = opts
        .output
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: no file name", opts.output.display())))?
        .to_string_lossy()
        .into_owned();
    let work = WorkDir(
        tempfile::Builder::new()
            .prefix(".oxtree-image-")
            .tempdir_in(&out_dir)
            .ctx("create a work directory in", &out_dir)?
            .keep(),
    );
    let sysroot_dir = work.0.join("sysroot");
    let esp_dir = work.0.join("esp");
    for d in [&sysroot_dir, &esp_dir] {
        std::fs::create_dir(d).ctx("create directory", d)?;
    }

    // 1. The sysroot, deployed with the ESP mirror on.
    step("sysroot: init-fs, os-init, pull, deploy");
    let t = Instant::now();
    Sysroot::init_fs(&sysroot_dir)?;
    let sr = Sysroot::new(&sysroot_dir).with_esp(Some(esp_dir.clone()));
    sr.os_init(&opts.stateroot)?;
    let mut repo = sr.repo()?;
    let mut kf = repo.config().clone();
    // Real ostree (2022.7) refuses bootloader values it does not know: it reads `none`
    // (entries only, which is what it would write), oxtree reads its own key.
    kf.set("sysroot", "bootloader", "none");
    kf.set("oxtree", "bootloader", "systemd-boot");
    if let Some(n) = opts.boot_counting_tries {
        kf.set("sysroot", "boot-counting-tries", &n.to_string());
    }
    repo.write_config(kf)?;
    if let Some((name, url)) = &opts.remote {
        repo.remote_add(
            name,
            url,
            &crate::repo::RemoteAddOptions {
                set: opts.remote_options.clone(),
                no_gpg_verify: opts.no_gpg_verify,
                ..Default::default()
            },
        )?;
    }
    let remote_name = opts.remote.as_ref().map(|(n, _)| n.clone());
    let deploy_ref = match &opts.repo {
        Some(src) => {
            let src = Repo::open(src)?;
            repo.pull_local(
                &src,
                std::slice::from_ref(&opts.refspec),
                &crate::repo::PullLocalOptions {
                    remote: remote_name.clone(),
                    ..Default::default()
                },
            )?;
            match &remote_name {
                Some(n) if !is_checksum(&opts.refspec) => format!("{n}:{}", opts.refspec),
                _ => opts.refspec.clone(),
            }
        }
        None => {
            let n = remote_name.clone().unwrap_or_default();
            repo.pull(
                &n,
                std::slice::from_ref(&opts.refspec),
                &crate::pull::PullOptions::default(),
                &crate::pull::PullProgress::default(),
            )?;
            if is_checksum(&opts.refspec) {
                opts.refspec.clone()
            } else {
                format!("{n}:{}", opts.refspec)
            }
        }
    };
    let commit = repo.resolve_rev(&deploy_ref)?;
    let seed: [u8; 32] = {
        let mut h = sha2::Sha256::new();
        match &opts.seed {
            Some(s) => h.update(s.as_bytes()),
            None => h.update(
                format!(
                    "oxtree image\0{commit}\0{}\0{epoch}\0{}",
                    opts.stateroot,
                    opts.kargs.join(" ")
                )
                .as_bytes(),
            ),
        }
        h.finalize().into()
    };
    let guids = Guids {
        disk: uuid_from(&seed, "disk"),
        esp: uuid_from(&seed, "esp"),
        root: uuid_from(&seed, "root"),
    };
    let fs_uuid = uuid_from(&seed, "root filesystem");
    let mut kargs = Vec::new();
    if !opts.kargs.iter().any(|k| k.starts_with("root=")) {
        kargs.push(format!("root=PARTUUID={}", guids.root));
    }
    if !opts.kargs.iter().any(|k| k == "ro" || k == "rw") {
        kargs.push("rw".into());
    }
    kargs.extend(opts.kargs.iter().cloned());
    let d = sr.deploy(
        &deploy_ref,
        &crate::sysroot::DeployOptions {
            os: Some(opts.stateroot.clone()),
            kargs: Some(kargs.clone()),
            ..Default::default()
        },
    )?;
    let deploy_dir = sysroot_dir
        .join("ostree/deploy")
        .join(&d.stateroot)
        .join("deploy")
        .join(d.dirname());

    // The booted system mounts the ESP where systemd-bless-boot and oxtree look for it.
    let esp_mount_point = if crate::sysroot::tree::list_dir(&deploy_dir, "efi").is_ok()
        && std::fs::symlink_metadata(deploy_dir.join("efi")).is_ok_and(|m| m.is_dir())
    {
        "/efi"
    } else {
        let p = sysroot_dir.join("boot/efi");
        std::fs::create_dir_all(&p).ctx("create directory", &p)?;
        "/boot/efi"
    };
    append_fstab(
        &deploy_dir,
        &format!(
            "PARTUUID={} {esp_mount_point} vfat umask=0077,nofail 0 0\n",
            guids.esp
        ),
    )?;

    // systemd-boot: the tree's (its version matches the tree's systemd-bless-boot), else
    // the one given, else the host's.
    let tree_rel = format!("usr/lib/systemd/boot/efi/systemd-boot{efi_lower}.efi");
    let host = PathBuf::from("/").join(&tree_rel);
    let (efi_from, efi_data) =
        if let Some(mut f) = crate::sysroot::tree::open_file(&deploy_dir, &tree_rel)? {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).ctx("read", deploy_dir.join(&tree_rel))?;
            (format!("the tree's /{tree_rel}"), b)
        } else if let Some(p) = &opts.efi_binary {
            (p.display().to_string(), std::fs::read(p).ctx("read", p)?)
        } else if host.is_file() {
            (
                format!("the host's {}", host.display()),
                std::fs::read(&host).ctx("read", &host)?,
            )
        } else {
            return Err(Error::InvalidArgument(format!(
                "no systemd-boot EFI binary: not in the tree (/{tree_rel}), no --efi-binary, \
                 not on this host ({}; Debian: apt-get install systemd-boot-efi)",
                host.display()
            )));
        };
    if efi_data.get(..2) != Some(b"MZ") {
        return Err(Error::InvalidArgument(format!(
            "{efi_from}: not an EFI (PE) binary"
        )));
    }
    for (dir, name) in [
        ("EFI/BOOT", format!("BOOT{efi_upper}.EFI")),
        ("EFI/systemd", format!("systemd-boot{efi_lower}.efi")),
    ] {
        let p = esp_dir.join(dir);
        std::fs::create_dir_all(&p).ctx("create directory", &p)?;
        std::fs::write(p.join(&name), &efi_data).ctx("write", p.join(&name))?;
    }
    steps.push(("sysroot", t.elapsed()));

    // 2. Sizes, checked before anything is written.
    let t = Instant::now();
    let (sysroot_bytes, sysroot_inodes) = ext4::usage(&sysroot_dir)?;
    let root_min = ext4::min_size(sysroot_bytes, sysroot_inodes).div_ceil(MIB) * MIB;
    let esp_size = opts.esp_size / MIB * MIB;
    let cluster = fat::cluster_size(esp_size).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "--esp-size: {} MiB is too small for FAT32 (give at least 36 MiB)",
            esp_size / MIB
        ))
    })?;
    let esp_need = fat::usage(&esp_dir, u64::from(cluster))? + esp_size / 64 + MIB;
    if esp_need > esp_size {
        return Err(Error::InvalidArgument(format!(
            "the ESP needs at least {} MiB (kernels, initramfs images and systemd-boot): --esp-size={}M",
            esp_need.div_ceil(MIB),
            esp_need.div_ceil(MIB)
        )));
    }
    let root_size = match opts.size {
        Some(total) => {
            let root = total.saturating_sub(esp_size + 2 * MIB) / MIB * MIB;
            if root < root_min {
                return Err(Error::InvalidArgument(format!(
                    "--size: the root filesystem needs at least {} MiB (sysroot: {} MiB in {} inodes, \
                     plus ext4 metadata, journal and reserve), and the ESP {} MiB: give --size={}M or more",
                    root_min / MIB,
                    sysroot_bytes.div_ceil(MIB),
                    sysroot_inodes,
                    esp_size / MIB,
                    (root_min + esp_size + 2 * MIB) / MIB
                )));
            }
            root
        }
        // Room for one upgrade beside what is there.
        None => (2 * root_min).max(root_min + 512 * MIB),
    };
    let layout = Layout::new(esp_size, root_size);
    steps.push(("sizes", t.elapsed()));

    // 3. The image.
    let raw_path = match opts.format {
        ImageFormat::Raw => out_dir.join(format!(".{out_name}.oxtree-partial")),
        ImageFormat::Qcow2 => work.0.join("disk.raw"),
    };
    let mut partial = Partial(Some(raw_path.clone()));
    {
        let f = std::fs::File::create(&raw_path).ctx("create", &raw_path)?;
        f.set_len(layout.total).ctx("size", &raw_path)?;
    }
    step("partition table");
    let t = Instant::now();
    disk::write_gpt(&raw_path, &layout, &guids)?;
    steps.push(("gpt", t.elapsed()));
    step("ESP (FAT32)");
    let t = Instant::now();
    let volume_id = u32::from_le_bytes(
        uuid_from(&seed, "esp volume").as_bytes()[..4]
            .try_into()
            .unwrap_or([0; 4]),
    );
    let esp_bytes = fat::write_esp(
        &raw_path,
        layout.esp_offset,
        layout.esp_size,
        &esp_dir,
        volume_id,
        epoch,
    )?;
    steps.push(("esp", t.elapsed()));
    step("root filesystem (mkfs.ext4 -d)");
    let t = Instant::now();
    ext4::mkfs_ext4(
        &raw_path,
        layout.root_offset,
        layout.root_size,
        &sysroot_dir,
        &fs_uuid,
        epoch,
        sysroot_inodes,
    )?;
    steps.push(("mkfs.ext4", t.elapsed()));
    // Self-check: mkfs stayed inside its partition (both GPT headers are intact).
    check_gpt_headers(&raw_path, &layout)?;
    let final_tmp = match opts.format {
        ImageFormat::Raw => raw_path.clone(),
        ImageFormat::Qcow2 => {
            step("qcow2 (qemu-img convert)");
            let t = Instant::now();
            let q = out_dir.join(format!(".{out_name}.oxtree-partial"));
            // The raw file goes with the work directory.
            partial.0.replace(q.clone());
            let o = std::process::Command::new(qemu_img())
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&raw_path)
                .arg(&q)
                .output()
                .ctx("run qemu-img for", &q)?;
            if !o.status.success() {
                return Err(Error::Other(format!(
                    "qemu-img convert to {} failed: {}",
                    q.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
            steps.push(("qcow2", t.elapsed()));
            q
        }
    };
    // mkfs.ext4 leaves its writes in the page cache: most of this is writing them out.
    let t = Instant::now();
    std::fs::File::open(&final_tmp)
        .and_then(|f| f.sync_all())
        .ctx("fsync", &final_tmp)?;
    std::fs::rename(&final_tmp, &opts.output).ctx("rename", &opts.output)?;
    partial.0.take();
    crate::fsutil::fsync_dir(&out_dir)?;
    steps.push(("fsync", t.elapsed()));
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&opts.output)
            .ctx("stat", &opts.output)?
            .blocks()
            * 512
    };
    // The work directory (the sysroot that went into the image).
    let t = Instant::now();
    drop(work);
    steps.push(("cleanup", t.elapsed()));
    steps.push(("total", t_all.elapsed()));
    Ok(ImageReport {
        output: opts.output.clone(),
        format: opts.format,
        commit,
        deployment: format!("{} {}", d.stateroot, d.dirname()),
        kargs,
        layout,
        guids,
        sysroot_bytes,
        sysroot_inodes,
        root_min,
        esp_bytes,
        efi_binary: efi_from,
        esp_mount_point: esp_mount_point.into(),
        allocated,
        steps,
    })
}

/// Append `line` to the deployment's `/etc/fstab` (a local change of /etc, which the
/// three-way merge carries into later deployments), never through a symlink.
fn append_fstab(deploy_dir: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = deploy_dir.join("etc/fstab");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .ctx("open", &p)?;
    f.write_all(line.as_bytes()).ctx("write", &p)
}

fn check_gpt_headers(path: &Path, layout: &Layout) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).ctx("open", path)?;
    for at in [512, layout.total - 512] {
        let mut sig = [0u8; 8];
        f.read_exact_at(&mut sig, at).ctx("read", path)?;
        if &sig != b"EFI PART" {
            return Err(Error::Other(format!(
                "{}: the GPT header at byte {at} was overwritten while the filesystems were written",
                path.display()
            )));
        }
    }
    Ok(())
}
