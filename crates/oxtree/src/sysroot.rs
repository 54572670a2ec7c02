//! The sysroot: a physical root holding bootable deployments (`ostree admin`, spec §8).
//! This part lays out a sysroot (`init-fs`, `os-init`), reads its deployments from the
//! active Boot Loader Spec entries, as `ostree admin status` does, and holds the sysroot
//! lock ([`SysrootLock`], shared with ostree and rpm-ostree) that every operation changing
//! the deployments takes; `deploy` and `ops` change them.

pub mod bls;
pub mod bootloader;
mod deploy;
pub mod esp;
mod etc_merge;
pub mod kargs;
mod kexec;
mod live;
mod ops;
pub mod prepare_root;
pub mod remount;
pub(crate) mod tree;

pub use deploy::DeployOptions;
pub use ops::{UpgradeOptions, UpgradeOutcome};

/// What a sysroot operation reports as it goes: the messages ostree's library sends to the
/// journal and `ostree admin` prints on stdout, where scripts read them. The library only
/// reports them (to the sink given with [`Sysroot::with_events`]); the CLI words them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SysrootEvent {
    /// The stateroot's `/var` had no `.ostree-selabeled` stamp: it was prepared (and the
    /// stamp written) for the first deployment.
    RelabelingVar,
    /// The merge deployment's `/etc` changes (against its defaults) were copied into the
    /// new deployment; counted as `ostree admin config-diff` lists them.
    EtcMerged {
        modified: usize,
        removed: usize,
        added: usize,
    },
    /// A new deployment list was written. `swapped`: the bootloader entries changed
    /// (`boot/loader` now points at `loader.{bootversion}`); otherwise only the link farm
    /// `ostree/boot.{bootversion}` moved to `.{subbootversion}`. `atomic`: the bootloader
    /// switches atomically with the entries (a file of its own in `loader.N`), which
    /// ostree's report says ("Transaction complete").
    DeploymentsWritten {
        swapped: bool,
        atomic: bool,
        bootversion: u32,
        subbootversion: u32,
        count_change: i64,
    },
}

/// Where [`SysrootEvent`]s go.
type EventSink = Box<dyn Fn(&SysrootEvent) + Send + Sync>;

/// Whether `OSTREE_SYSROOT_DEBUG` (comma-separated, as ostree parses it) names `flag`:
/// `mutable-deployments` leaves deployment directories without the immutable bit, as
/// ostree's own test suite runs it.
pub(crate) fn debug_flag(flag: &str) -> bool {
    std::env::var("OSTREE_SYSROOT_DEBUG")
        .is_ok_and(|v| v.split([',', ' ', ':', ';']).any(|f| f.trim() == flag))
}

impl Sysroot {
    /// ostree's `_ostree_sysroot_bump_mtime`: `ostree/deploy` gets the current time each
    /// time the deployment list changes (daemons watch it to notice).
    pub(crate) fn bump_mtime(&self) -> Result<()> {
        let p = self.path.join("ostree/deploy");
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: now,
                last_modification: now,
            },
            rustix::fs::AtFlags::empty(),
        )
        .map_err(std::io::Error::from)
        .ctx("set times of", &p)
    }
}

/// A fault-injection point at a crash-relevant step, for the crash tests (zincati's
/// pattern: the `fail` crate, compiled in only with the `failpoints` feature and configured
/// from the `FAILPOINTS` environment variable by the CLI). `NAME=return` fails the operation
/// there, as a crash at that point would leave it; `NAME=return(hang)` stops there for good
/// after saying so on stderr, so a test can kill the process (or cut a VM's power) exactly
/// there. In a build without the feature this is a no-op and FAILPOINTS is never read.
pub(crate) fn failpoint(name: &str) -> Result<()> {
    fail::fail_point!(name, |arg: Option<String>| failpoint_hit(
        name,
        arg.as_deref()
    ));
    let _ = name;
    Ok(())
}

#[cfg(feature = "failpoints")]
fn failpoint_hit(name: &str, arg: Option<&str>) -> Result<()> {
    if arg == Some("hang") {
        // Test builds only (the shipped library has no failpoints): the e2e test watches the
        // console for this line to cut the power at this step.
        eprintln!("oxtree: failpoint {name}: hanging here (test build)");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    Err(Error::Other(format!(
        "injected failure at failpoint {name}"
    )))
}

use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::Checksum;
use crate::repo::{Repo, RepoMode};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One deployment, as listed by the bootloader entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub index: usize,
    pub stateroot: String,
    pub checksum: Checksum,
    pub deployserial: u32,
    pub bootcsum: String,
    pub bootserial: u32,
    /// The `.origin` keyfile, if present.
    pub origin: Option<KeyFile>,
    /// Whether this is the running system (only when the sysroot is `/`).
    pub booted: bool,
    /// The BLS entry that boots it.
    pub entry: bls::BlsEntry,
    /// Boot counting state from the entry's file name (`+LEFT[-DONE]`, systemd-boot's boot
    /// assessment): `None` when the entry is not being counted (it is known good).
    pub tries: Option<(u32, u32)>,
    /// Whether `/usr` has a writable overlay (`admin unlock`).
    pub unlocked: Unlocked,
}

/// The `admin unlock` state of a deployment, with ostree's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unlocked {
    #[default]
    None,
    /// A writable overlay on `/usr` until the next reboot (`/run` records it).
    Development,
    /// As development, but mounted read-only (`--transient`).
    Transient,
    /// A writable overlay kept across reboots, stored in the deployment (`--hotfix`; the
    /// origin records it).
    Hotfix,
}

impl Unlocked {
    /// ostree's name (`ostree_deployment_unlocked_state_to_string`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unlocked::None => "none",
            Unlocked::Development => "development",
            Unlocked::Transient => "transient",
            Unlocked::Hotfix => "hotfix",
        }
    }
}

impl Deployment {
    pub fn refspec(&self) -> Option<&str> {
        self.origin
            .as_ref()
            .and_then(|o| o.get("origin", "refspec"))
    }
    /// Tries ran out without `boot-complete`: the deployment failed to boot.
    pub fn failed(&self) -> bool {
        matches!(self.tries, Some((0, _)))
    }

    pub fn pinned(&self) -> bool {
        self.origin
            .as_ref()
            .and_then(|o| o.get_bool("libostree-transient", "pinned"))
            .unwrap_or(false)
    }
    /// `deploy/<csum>.<serial>` relative to the stateroot.
    pub fn dirname(&self) -> String {
        format!("{}.{}", self.checksum, self.deployserial)
    }
}

pub struct Sysroot {
    path: PathBuf,
    /// The sysroot lock while this process holds it, shared by nested guards (an upgrade
    /// locks, then deploys, which locks, then cleans up, which locks).
    lock: std::sync::Mutex<HeldLock>,
    events: Option<EventSink>,
    /// The EFI system partition, when given (see [`Sysroot::esp`]).
    esp: Option<PathBuf>,
}

impl std::fmt::Debug for Sysroot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysroot")
            .field("path", &self.path)
            .field("lock", &self.lock)
            .field("esp", &self.esp)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct HeldLock {
    file: Option<std::fs::File>,
    guards: usize,
}

/// The sysroot lock, held until the last guard of this process is dropped.
///
/// It is ostree's lock: an exclusive OFD (open file description) `fcntl` write lock on the
/// whole of `ostree/lock`, the lock `ostree admin` and rpm-ostree take (libglnx's
/// `glnx_make_lock_file`; ostree 2022.7 was seen taking `F_OFD_SETLK` `F_WRLCK` there, and
/// an `flock` on the file does not stop it). Every operation that changes the deployments
/// or the boot configuration holds it from its first read of the sysroot to its last
/// write, so oxtree, ostree and rpm-ostree exclude one another; reading (`status`) takes
/// none. Guards in one process share the lock: it excludes other processes, not threads.
#[derive(Debug)]
#[must_use = "the sysroot lock is released when the guard is dropped"]
pub struct SysrootLock<'a> {
    sysroot: &'a Sysroot,
}

impl Drop for SysrootLock<'_> {
    fn drop(&mut self) {
        let mut held = self.sysroot.lock.lock().unwrap_or_else(|e| e.into_inner());
        held.guards = held.guards.saturating_sub(1);
        if held.guards == 0 {
            // As libglnx (ostree): remove the file while the lock is held, then close the
            // only descriptor of the open file description, which releases the lock. A
            // process that was waiting on this file then finds it unlinked and starts over
            // (see `still_linked`), so no two holders ever coexist.
            if held.file.is_some() {
                let _ = std::fs::remove_file(self.sysroot.path.join("ostree/lock"));
            }
            held.file = None;
        }
    }
}

/// Whether the lock file just locked is still the one at its path: its last holder (oxtree,
/// or ostree through libglnx) unlinks it before releasing, and a lock on an unlinked file
/// excludes nobody.
fn still_linked(f: &std::fs::File, p: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(f.metadata().ctx("stat", p)?.nlink() > 0)
}

fn mkdir_mode(p: &Path, mode: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).ctx("create directory", p),
    }
    // The umask must not change modes that matter (/tmp is 1777).
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).ctx("chmod", p)
}

impl Sysroot {
    pub fn new(path: &Path) -> Sysroot {
        Sysroot {
            path: path.to_path_buf(),
            lock: std::sync::Mutex::new(HeldLock::default()),
            events: None,
            esp: None,
        }
    }

    /// Report [`SysrootEvent`]s to `sink` as operations go.
    pub fn with_events(mut self, sink: impl Fn(&SysrootEvent) + Send + Sync + 'static) -> Sysroot {
        self.events = Some(Box::new(sink));
        self
    }

    pub(crate) fn emit(&self, e: SysrootEvent) {
        if let Some(sink) = &self.events {
            sink(&e);
        }
    }

    /// Use `esp` as the EFI system partition (a mounted ESP, or the directory an image
    /// build fills), instead of looking for one (see [`Sysroot::esp`]).
    pub fn with_esp(mut self, esp: Option<PathBuf>) -> Sysroot {
        if esp.is_some() {
            self.esp = esp;
        }
        self
    }

    /// Take the sysroot lock (see [`SysrootLock`]), waiting for as long as another process
    /// holds it, as ostree does. `waiting` is called once, before blocking, when the lock
    /// is busy: the CLI says "Waiting for sysroot lock..." then, as `ostree admin` does.
    pub fn lock(&self, waiting: impl FnOnce()) -> Result<SysrootLock<'_>> {
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if held.file.is_none() {
            // (Blocking: never `None`.)
            held.file = self.acquire(true, waiting)?;
        }
        held.guards += 1;
        Ok(SysrootLock { sysroot: self })
    }

    /// Take the sysroot lock if no other process holds it; `None` if one does.
    pub fn try_lock(&self) -> Result<Option<SysrootLock<'_>>> {
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if held.file.is_none() {
            let Some(f) = self.acquire(false, || {})? else {
                return Ok(None);
            };
            held.file = Some(f);
        }
        held.guards += 1;
        Ok(Some(SysrootLock { sysroot: self }))
    }

    /// Open and lock `ostree/lock`, by libglnx's protocol: a lock taken on a file its last
    /// holder unlinked meanwhile is worthless, so it starts over on the file now at the path.
    /// `block`: wait for another holder (calling `waiting` first, once); else `None` when
    /// another process holds it.
    fn acquire(&self, block: bool, waiting: impl FnOnce()) -> Result<Option<std::fs::File>> {
        let p = self.path.join("ostree/lock");
        let mut waiting = Some(waiting);
        loop {
            let f = self.open_lock_file(&p)?;
            if !crate::fsutil::ofd_lock(&f, true, false).ctx("lock", &p)? {
                if !block {
                    return Ok(None);
                }
                if let Some(w) = waiting.take() {
                    w();
                }
                crate::fsutil::ofd_lock(&f, true, true).ctx("lock", &p)?;
            }
            if still_linked(&f, &p)? {
                return Ok(Some(f));
            }
        }
    }

    /// `ostree/lock`, opened as ostree opens it (created 0600, never through a symlink).
    fn open_lock_file(&self, p: &Path) -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        if !self.path.join("ostree").is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: not an OSTree sysroot (no ostree/ directory; run `oxtree admin init-fs` first)",
                self.path.display()
            )));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(p)
            .ctx("open", p)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `admin init-fs`: the top-level directories of a physical root and a bare system repo.
    pub fn init_fs(path: &Path) -> Result<Sysroot> {
        Sysroot::init_fs_with(path, false)
    }

    /// `admin init-fs [--modern]`: with `modern` (ostree's `--modern`, layout epoch 1) only
    /// `boot/` and `ostree/`; otherwise also the legacy mount points and `/tmp`, `/root`.
    pub fn init_fs_with(path: &Path, modern: bool) -> Result<Sysroot> {
        if !path.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a directory (create it first)",
                path.display()
            )));
        }
        let legacy: &[(&str, u32)] = if modern {
            &[("boot", 0o755)]
        } else {
            &[
                ("boot", 0o755),
                ("dev", 0o755),
                ("home", 0o755),
                ("proc", 0o755),
                ("run", 0o755),
                ("sys", 0o755),
                ("root", 0o700),
                ("tmp", 0o1777),
            ]
        };
        for &(d, mode) in legacy {
            mkdir_mode(&path.join(d), mode)?;
        }
        mkdir_mode(&path.join("ostree"), 0o755)?;
        mkdir_mode(&path.join("ostree/deploy"), 0o755)?;
        Repo::create(&path.join("ostree/repo"), RepoMode::Bare)?;
        mkdir_mode(&path.join("ostree/repo/tmp/cache"), 0o755)?;
        Ok(Sysroot::new(path))
    }

    /// The system repository.
    /// The sysroot's repository, with the remotes of its `etc/ostree/remotes.d` (as ostree
    /// reads them for a sysroot's repo: Fedora CoreOS configures its remote there).
    pub fn repo(&self) -> Result<Repo> {
        let mut repo = Repo::open(&self.path.join("ostree/repo"))?;
        let remotes_d = self.path.join("etc/ostree/remotes.d");
        repo.set_remotes_d(&remotes_d)?;
        if std::fs::metadata(self.path.join("sysroot")).is_ok() {
            repo.use_remotes_d_for_new(&remotes_d);
        }
        Ok(repo)
    }

    /// `admin os-init STATEROOT`: `ostree/deploy/STATEROOT/{deploy,var}` with the legacy /var
    /// directories ostree creates.
    pub fn os_init(&self, stateroot: &str) -> Result<()> {
        crate::object::validate_remote_name(stateroot)
            .map_err(|_| Error::InvalidArgument(format!("invalid stateroot name {stateroot:?}")))?;
        if !self.path.join("ostree/deploy").is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: not an OSTree sysroot; run `oxtree admin init-fs` first",
                self.path.display()
            )));
        }
        // No sysroot lock, as with ostree: os-init leaves the layout exactly as ostree's
        // does (no ostree/lock yet). A stateroot that exists is refused, as ostree refuses
        // it (its directory is made with mkdir, not mkdir -p).
        let base = self.path.join("ostree/deploy").join(stateroot);
        if std::fs::symlink_metadata(&base).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "Creating ostree/deploy/{stateroot}: File exists"
            )));
        }
        mkdir_mode(&base, 0o755)?;
        mkdir_mode(&base.join("var"), 0o755)?;
        for d in ["var/tmp", "var/lib", "var/log"] {
            mkdir_mode(&base.join(d), if d == "var/tmp" { 0o1777 } else { 0o755 })?;
        }
        for (link, target) in [("var/run", "../run"), ("var/lock", "../run/lock")] {
            let p = base.join(link);
            if std::fs::symlink_metadata(&p).is_err() {
                std::os::unix::fs::symlink(target, &p).ctx("symlink", &p)?;
            }
        }
        Ok(())
    }

    /// The active boot version N (`boot/loader -> loader.N`), if any deployment was written.
    /// Only `loader.0` and `loader.1` exist (the swap alternates between them), so anything
    /// else is refused, as ostree refuses it, instead of being computed with.
    pub fn bootversion(&self) -> Result<Option<u32>> {
        let l = self.path.join("boot/loader");
        match std::fs::read_link(&l) {
            Ok(t) if t == Path::new("loader.0") => Ok(Some(0)),
            Ok(t) if t == Path::new("loader.1") => Ok(Some(1)),
            Ok(t) => Err(Error::Config {
                path: l,
                msg: format!(
                    "points to {:?}; it must point to loader.0 or loader.1",
                    t.display().to_string()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("readlink", l),
        }
    }

    /// The Boot Loader Spec entries of `boot/loader.N` (none when it does not exist) that
    /// ostree reads (`ostree-*.conf`), in boot order: by `version`, highest first.
    pub fn bls_entries(&self, bootversion: u32) -> Result<Vec<bls::BlsEntry>> {
        Ok(self
            .bls_entry_files(bootversion)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    fn bls_entry_files(&self, n: u32) -> Result<Vec<(PathBuf, bls::BlsEntry)>> {
        let dir = self.path.join(format!("boot/loader.{n}/entries"));
        let mut entries = Vec::new();
        if dir.is_dir() {
            for e in std::fs::read_dir(&dir).ctx("read directory", &dir)? {
                let e = e.ctx("read directory", &dir)?;
                let p = e.path();
                // As ostree: only its own entries (`ostree-*.conf`, regular files); others
                // (another OS's, memtest's) are the bootloader's business, not deployments.
                let ours = e.file_name().to_str().is_some_and(|n| {
                    n.starts_with("ostree-") && n.ends_with(".conf") && n.len() > 12
                });
                if ours && std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                    let text = std::fs::read_to_string(&p).ctx("read", &p)?;
                    entries.push((p, bls::BlsEntry::parse(&text)));
                }
            }
        }
        entries.sort_by(|a, b| {
            bls::version_cmp(
                b.1.get("version").unwrap_or("0"),
                a.1.get("version").unwrap_or("0"),
            )
        });
        Ok(entries)
    }

    /// Deployments in boot order (default first), from the active loader entries. With
    /// the systemd-boot backend, the boot counters are the ones on the ESP, which the
    /// bootloader itself counts down (see [`esp`]).
    pub fn deployments(&self) -> Result<Vec<Deployment>> {
        let mut out = self.bls_deployments()?;
        if let Some(tries) = self.esp_tries()? {
            for d in &mut out {
                let base = esp::entry_base(&d.stateroot, &d.checksum, d.deployserial);
                d.tries = tries.get(&base).copied().flatten();
            }
        }
        Ok(out)
    }

    /// Deployments as the entries under `/boot` list them (counters from their names).
    pub(crate) fn bls_deployments(&self) -> Result<Vec<Deployment>> {
        let Some(n) = self.bootversion()? else {
            return Ok(Vec::new());
        };
        let entries = self.bls_entry_files(n)?;
        let root_ids = std::fs::metadata("/").ok().map(|m| (m.dev(), m.ino()));
        let mut out = Vec::new();
        for (i, (p, entry)) in entries.into_iter().enumerate() {
            let bad = |msg: &str| Error::Config {
                path: p.clone(),
                msg: msg.to_string(),
            };
            let ostree_arg = entry
                .karg("ostree")
                .ok_or_else(|| bad("no ostree= kernel argument"))?
                .to_string();
            // /ostree/boot.N/<stateroot>/<bootcsum>/<bootserial>
            let parts: Vec<&str> = ostree_arg.trim_start_matches('/').split('/').collect();
            let [_, _, stateroot, bootcsum, bootserial] = parts.as_slice() else {
                return Err(bad("malformed ostree= argument"));
            };
            if crate::object::validate_remote_name(stateroot).is_err() {
                return Err(bad("invalid stateroot in the ostree= argument"));
            }
            let link = self.path.join(ostree_arg.trim_start_matches('/'));
            let target = std::fs::read_link(&link).ctx("readlink", &link)?;
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad("boot link has no target name"))?
                .to_string();
            let (csum, serial) = name
                .split_once('.')
                .ok_or_else(|| bad("deployment directory is not CHECKSUM.SERIAL"))?;
            let checksum: Checksum = csum
                .parse()
                .map_err(|_| bad("deployment directory has an invalid checksum"))?;
            let deploy_dir = self
                .path
                .join("ostree/deploy")
                .join(stateroot)
                .join("deploy")
                .join(&name);
            let origin_path = self
                .path
                .join("ostree/deploy")
                .join(stateroot)
                .join("deploy")
                .join(format!("{name}.origin"));
            let origin = match std::fs::read_to_string(&origin_path) {
                // ostree's words, GLib's for the line (it names the origin file).
                Ok(t) => Some(KeyFile::parse(&t).map_err(|e| {
                    let line = t.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
                    Error::Other(format!(
                        "loading sysroot: Parsing deployment {ostree_arg} in stateroot \
                         '{stateroot}': Parsing ostree/deploy/{stateroot}/deploy/{name}.origin: \
                         Key file contains line \u{201c}{line}\u{201d} which is not a \
                         key-value pair, group, or comment"
                    ))
                })?),
                Err(_) => None,
            };
            let booted = self.path == Path::new("/")
                && std::fs::metadata(&deploy_dir)
                    .ok()
                    .map(|m| (m.dev(), m.ino()))
                    == root_ids;
            let deployserial: u32 = serial
                .parse()
                .map_err(|_| bad("invalid deployment serial"))?;
            let unlocked = self.unlocked_state(&checksum, deployserial, origin.as_ref());
            out.push(Deployment {
                index: i,
                stateroot: stateroot.to_string(),
                checksum,
                deployserial,
                bootcsum: bootcsum.to_string(),
                bootserial: bootserial.parse().map_err(|_| bad("invalid boot serial"))?,
                origin,
                booted,
                entry,
                tries: p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(bls::parse_tries),
                unlocked,
            });
        }
        Ok(out)
    }

    /// `/run` of the system this sysroot belongs to: the real one for `/`, else the
    /// sysroot's own `run/` (a sysroot being prepared, tests).
    pub(crate) fn run_dir(&self) -> PathBuf {
        if self.path == Path::new("/") {
            PathBuf::from("/run")
        } else {
            self.path.join("run")
        }
    }

    /// ostree's per-deployment runtime state: `/run/ostree/deployment-state/CSUM.SERIAL/`.
    pub(crate) fn runstate_dir(&self, c: &Checksum, serial: u32) -> PathBuf {
        self.run_dir()
            .join(format!("ostree/deployment-state/{c}.{serial}"))
    }

    fn unlocked_state(&self, c: &Checksum, serial: u32, origin: Option<&KeyFile>) -> Unlocked {
        let rs = self.runstate_dir(c, serial);
        if std::fs::symlink_metadata(rs.join("unlocked-development")).is_ok() {
            Unlocked::Development
        } else if std::fs::symlink_metadata(rs.join("unlocked-transient")).is_ok() {
            Unlocked::Transient
        } else if origin.and_then(|o| o.get("origin", "unlocked")) == Some("hotfix") {
            Unlocked::Hotfix
        } else {
            Unlocked::None
        }
    }

    /// The staged deployment as a [`Deployment`] (with its origin), if one is waiting. It
    /// has no boot entry yet; `index` is 0, as ostree lists it first.
    pub fn staged_deployment(&self) -> Result<Option<Deployment>> {
        let Some(m) = self.read_staged()? else {
            return Ok(None);
        };
        let origin_path = self
            .path
            .join("ostree/deploy")
            .join(&m.stateroot)
            .join("deploy")
            .join(format!("{}.{}.origin", m.checksum, m.deployserial));
        let origin = match std::fs::read_to_string(&origin_path) {
            Ok(t) => Some(KeyFile::parse(&t).map_err(|e| Error::Config {
                path: origin_path.clone(),
                msg: e.to_string(),
            })?),
            Err(_) => None,
        };
        let unlocked = self.unlocked_state(&m.checksum, m.deployserial, origin.as_ref());
        Ok(Some(Deployment {
            index: 0,
            stateroot: m.stateroot,
            checksum: m.checksum,
            deployserial: m.deployserial,
            bootcsum: m.bootcsum,
            bootserial: 0,
            origin,
            booted: false,
            entry: bls::BlsEntry::default(),
            tries: None,
            unlocked,
        }))
    }
}

/// A deployment prepared by `deploy --stage`, waiting for `finalize-staged`. Stored like
/// ostree's `/run/ostree/staged-deployment`: a GVariant `a{sv}` with `target` and
/// `merge-deployment` (`{name, osname, bootcsum}`) and `kargs`. It lives in `/run`, so a
/// reboot without finalization forgets it, as with ostree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedMarker {
    pub stateroot: String,
    pub checksum: Checksum,
    pub deployserial: u32,
    pub bootcsum: String,
    pub merge: Option<(String, Checksum, u32)>,
    pub kargs: Option<Vec<String>>,
    pub karg_append: Vec<String>,
    /// Keep the rollback deployment when finalizing (`--retain-rollback` at staging).
    pub retain_rollback: bool,
    /// Checksums of its overlay initramfs images (ostree's `overlay-initrds`).
    pub overlay_initrds: Vec<String>,
}

impl Sysroot {
    fn staged_path(&self) -> PathBuf {
        self.run_dir().join("ostree/staged-deployment")
    }

    /// ostree's finalization lock: while this file exists, `finalize-staged` leaves the
    /// staged deployment alone (`deploy --lock-finalization`, `admin lock-finalization`).
    pub(crate) fn staged_locked_path(&self) -> PathBuf {
        self.run_dir().join("ostree/staged-deployment-locked")
    }

    /// Whether finalization of the staged deployment is locked.
    pub fn finalization_locked(&self) -> bool {
        std::fs::symlink_metadata(self.staged_locked_path()).is_ok()
    }

    pub(crate) fn write_staged(&self, m: &StagedMarker) -> Result<()> {
        use crate::gvariant::{Type, Value};
        let dep = |os: &str, c: &Checksum, serial: u32, bootcsum: &str| {
            Value::dict_sv(vec![
                ("name".into(), Value::str(format!("{c}.{serial}"))),
                ("osname".into(), Value::str(os)),
                ("bootcsum".into(), Value::str(bootcsum)),
            ])
        };
        let strs =
            |v: &[String]| Value::Array(Type::Str, v.iter().cloned().map(Value::Str).collect());
        let mut entries = vec![(
            "target".to_string(),
            dep(&m.stateroot, &m.checksum, m.deployserial, &m.bootcsum),
        )];
        if let Some((os, c, s)) = &m.merge {
            entries.push(("merge-deployment".into(), dep(os, c, *s, "")));
        }
        if let Some(k) = &m.kargs {
            entries.push(("kargs".into(), strs(k)));
        }
        entries.push(("oxtree.karg-append".into(), strs(&m.karg_append)));
        if m.retain_rollback {
            entries.push(("oxtree.retain-rollback".into(), Value::Bool(true)));
        }
        if !m.overlay_initrds.is_empty() {
            entries.push(("overlay-initrds".into(), strs(&m.overlay_initrds)));
        }
        let p = self.staged_path();
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
        }
        crate::fsutil::write_atomic(&p, &crate::gvariant::encode(&Value::dict_sv(entries)), true)
    }

    /// The staged deployment, if one is waiting.
    pub fn read_staged(&self) -> Result<Option<StagedMarker>> {
        use crate::gvariant::Type;
        let p = self.staged_path();
        let b = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", p),
        };
        let bad = || Error::Config {
            path: p.clone(),
            msg: "invalid staged-deployment record".into(),
        };
        let v = crate::gvariant::decode_normal(&b, &Type::of("a{sv}")).map_err(|_| bad())?;
        let dep = |key: &str| -> Option<(String, Checksum, u32, String)> {
            let d = v.lookup(key)?;
            let name = d.lookup("name")?.as_str()?;
            let (c, s) = name.split_once('.')?;
            Some((
                d.lookup("osname")?.as_str()?.to_string(),
                c.parse().ok()?,
                s.parse().ok()?,
                d.lookup("bootcsum")?.as_str()?.to_string(),
            ))
        };
        let strs = |key: &str| -> Option<Vec<String>> {
            Some(
                v.lookup(key)?
                    .items()?
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            )
        };
        let (os, c, s, bootcsum) = dep("target").ok_or_else(bad)?;
        Ok(Some(StagedMarker {
            stateroot: os,
            checksum: c,
            deployserial: s,
            bootcsum,
            merge: dep("merge-deployment").map(|(o, c, s, _)| (o, c, s)),
            kargs: strs("kargs"),
            karg_append: strs("oxtree.karg-append").unwrap_or_default(),
            retain_rollback: v
                .lookup("oxtree.retain-rollback")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            // Only checksums: they name files under /boot.
            overlay_initrds: strs("overlay-initrds")
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.parse::<Checksum>().is_ok())
                .collect(),
        }))
    }

    pub(crate) fn clear_staged(&self) -> Result<()> {
        let p = self.staged_path();
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("remove", p),
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::Sysroot;

    /// libglnx's protocol, as ostree uses it: the holder unlinks `ostree/lock` before it
    /// releases the lock, and a waiter that then gets the lock on the unlinked file starts
    /// over, so it holds the lock on the file at the path and excludes the next process.
    #[test]
    fn a_waiter_retakes_the_lock_on_the_file_at_the_path() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("ostree")).expect("mkdir");
        let a = Sysroot::new(t.path());
        let held = a.lock(|| {}).expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = t.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let b = Sysroot::new(&path);
            let mut waited = false;
            let _g = b.lock(|| waited = true).expect("lock");
            tx.send(waited).expect("send");
            // Held by B: a third instance is excluded, on the file now at the path.
            let c = Sysroot::new(&path);
            assert!(c.try_lock().expect("try_lock").is_none());
            assert!(path.join("ostree/lock").exists());
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(held);
        assert!(rx.recv().expect("recv"), "the waiter did not wait");
        waiter.join().expect("waiter");
        // Released by everyone: the file is gone, as ostree leaves it.
        assert!(!t.path().join("ostree/lock").exists());
        assert!(a.try_lock().expect("try_lock").is_some());
    }
}
