//! Operations on the deployment list that need no new checkout: rollback, undeploy, pin,
//! kernel-argument edits; and `upgrade`/`switch`, which pull and then deploy.

use super::deploy::Planned;
use super::{DeployOptions, Deployment, Sysroot};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::Checksum;

/// How many `ostree.endoflife-rebase` redirections one upgrade follows.
const MAX_ENDOFLIFE_REBASES: usize = 8;

impl Sysroot {
    pub(super) fn origin_path(&self, d: &Deployment) -> std::path::PathBuf {
        self.path
            .join("ostree/deploy")
            .join(&d.stateroot)
            .join("deploy")
            .join(format!("{}.origin", d.dirname()))
    }

    fn rewrite(
        &self,
        list: Vec<Deployment>,
        kargs_override: Option<(usize, Vec<String>)>,
    ) -> Result<()> {
        let repo = self.repo()?;
        let mut plan = Vec::new();
        for (i, d) in list.iter().enumerate() {
            let mut p = Planned::from_deployment(self, &repo, d)?;
            if let Some((idx, k)) = &kargs_override {
                if *idx == i {
                    p.kargs = k.clone();
                }
            }
            plan.push(p);
        }
        // A staged deployment stays staged, but ostree counts it in the old list.
        let staged = usize::from(self.read_staged()?.is_some());
        self.write_deployments_counted(&repo, &plan, staged)?;
        self.cleanup()
    }

    /// Make the rollback deployment the default: the first one after the booted deployment
    /// (or after the first one when nothing is booted: a sysroot being prepared) that has
    /// not failed to boot.
    pub fn rollback(&self) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let mut list = self.deployments()?;
        let from = list.iter().position(|d| d.booted).unwrap_or(0);
        let Some(target) = (from + 1..list.len()).find(|&i| !list[i].failed()) else {
            return Err(Error::InvalidArgument(if list.len() <= from + 1 {
                "no rollback deployment: none comes after the booted one".into()
            } else {
                "no rollback deployment: the ones after the booted one failed to boot".into()
            }));
        };
        let d = list.remove(target);
        list.insert(0, d.clone());
        self.rewrite(list, None)?;
        Ok(d)
    }

    /// `boot-complete`: the health checks passed, so the deployment at `index` (the booted
    /// one by default) stops being counted: its entry loses the `+LEFT-DONE` suffix.
    pub fn boot_complete(&self, index: Option<usize>) -> Result<Option<Deployment>> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let i = match index.or_else(|| list.iter().position(|d| d.booted)) {
            Some(i) => i,
            None => {
                return Err(Error::InvalidArgument(
                    "no booted deployment (give --index when not running on the sysroot)".into(),
                ))
            }
        };
        let d = list
            .get(i)
            .ok_or_else(|| Error::InvalidArgument(format!("no deployment with index {i}")))?
            .clone();
        if d.tries.is_none() {
            return Ok(None); // already known good
        }
        if self.bootloader()? == super::esp::Bootloader::SystemdBoot {
            // The counter is the ESP entry's, as systemd-bless-boot sees it.
            return Ok(self.esp_mark_good(&d)?.then_some(d));
        }
        let Some(n) = self.bootversion()? else {
            return Ok(None);
        };
        let dir = self.path.join(format!("boot/loader.{n}/entries"));
        let counted = format!(
            "ostree-{}-{}{}.conf",
            list.len() - i,
            d.stateroot,
            super::bls::tries_suffix(d.tries)
        );
        let good = format!("ostree-{}-{}.conf", list.len() - i, d.stateroot);
        // One rename in the live entries directory: atomic, as systemd-bless-boot does it.
        std::fs::rename(dir.join(&counted), dir.join(&good)).ctx("rename", dir.join(&counted))?;
        crate::fsutil::fsync_dir(&dir)?;
        Ok(Some(d))
    }

    /// Early at boot: if the default deployment ran out of boot tries, make the boot
    /// configuration say what the bootloader already did: the deployments that did not fail
    /// come first, in their order (the newest good one becomes the default), and the failed
    /// ones go last, kept for inspection. Returns the new default, or `None` if nothing to do.
    pub fn rollback_if_failed(&self) -> Result<Option<Deployment>> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        // A deployment on its last try (LEFT=0) that is running right now has not failed yet.
        if !list.first().is_some_and(|d| d.failed() && !d.booted) {
            return Ok(None);
        }
        let (good, failed): (Vec<Deployment>, Vec<Deployment>) =
            list.into_iter().partition(|d| !d.failed() || d.booted);
        let Some(first) = good.first().cloned() else {
            return Err(Error::Other(
                "every deployment failed to boot; nothing to roll back to".into(),
            ));
        };
        self.rewrite(good.into_iter().chain(failed).collect(), None)?;
        Ok(Some(first))
    }

    /// Run the health checks in `dir` (executables, in name order; a missing directory
    /// means none) and return those that failed, each with the reason. Used by
    /// `boot-complete`: a boot is good only when every check passes.
    pub fn run_health_checks(dir: &std::path::Path) -> Result<Vec<(String, String)>> {
        let mut checks: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx("read directory", dir),
        };
        checks.sort();
        let mut failed = Vec::new();
        for c in checks {
            let name = c.display().to_string();
            match std::process::Command::new(&c)
                .stdin(std::process::Stdio::null())
                .status()
            {
                Ok(st) if st.success() => {}
                Ok(st) => failed.push((name, format!("exited with {st}"))),
                Err(e) => failed.push((name, format!("could not run: {e}"))),
            }
        }
        Ok(failed)
    }

    /// Remove the deployment at `index` (refused for the booted one).
    pub fn undeploy(&self, index: usize) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let (i, mut list) = match self.indexed(index)? {
            Indexed::Listed(i, list) => (i, list),
            Indexed::Staged(d) => {
                // The staged deployment goes without a new boot configuration, as with
                // ostree; the cleanup removes its directory.
                self.clear_staged()?;
                self.set_finalization_locked(false)?;
                self.cleanup()?;
                return Ok(d);
            }
        };
        if list.get(i).is_some_and(|d| d.booted) {
            return Err(Error::InvalidArgument(format!(
                "Cannot undeploy currently booted deployment {index}"
            )));
        }
        let d = list.remove(i);
        self.rewrite(list, None)?;
        Ok(d)
    }

    /// What an `admin` INDEX names, counted as ostree counts (`ostree_sysroot_get_
    /// deployments`): a staged deployment is 0, the boot entries follow.
    pub(super) fn indexed(&self, index: usize) -> Result<Indexed> {
        let list = self.deployments()?;
        match self.staged_deployment()? {
            Some(s) => {
                check_index(index, list.len() + 1)?;
                match index.checked_sub(1) {
                    None => Ok(Indexed::Staged(s)),
                    Some(i) => Ok(Indexed::Listed(i, list)),
                }
            }
            None => {
                check_index(index, list.len())?;
                Ok(Indexed::Listed(index, list))
            }
        }
    }

    /// Pin (or unpin) the deployment at `index`: pinned deployments are never dropped.
    /// `false` when it already was (not) pinned. The origin is rewritten as ostree writes
    /// it (GLib's keyfile form; unpinning leaves the empty transient group, as ostree's).
    pub fn pin(&self, index: usize, pinned: bool) -> Result<bool> {
        let _lock = self.lock(|| {})?;
        let (i, list) = match self.indexed(index)? {
            Indexed::Listed(i, list) => (i, list),
            Indexed::Staged(_) => {
                return Err(Error::InvalidArgument(
                    "Cannot pin staged deployment".into(),
                ))
            }
        };
        let d = &list[i];
        if d.pinned() == pinned {
            return Ok(false);
        }
        let path = self.origin_path(d);
        let mut kf = match &d.origin {
            Some(o) => super::deploy::glib_keyfile(o),
            None => KeyFile::new(),
        };
        if pinned {
            kf.set("libostree-transient", "pinned", "true");
        } else {
            kf.remove_key("libostree-transient", "pinned");
        }
        crate::fsutil::write_atomic(&path, kf.to_string().as_bytes(), true)?;
        self.bump_mtime()?;
        Ok(true)
    }

    /// Edit the default deployment's kernel arguments (`kargs edit-in-place`).
    pub fn kargs_edit(
        &self,
        append: &[String],
        delete: &[String],
        replace: &[String],
    ) -> Result<Vec<String>> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let d = list
            .first()
            .ok_or_else(|| Error::InvalidArgument("no deployments".into()))?;
        let mut kargs: Vec<String> = d
            .entry
            .get("options")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|a| !a.starts_with("ostree="))
            .map(str::to_string)
            .collect();
        for del in delete {
            kargs.retain(|k| k != del && k.split('=').next() != Some(del.as_str()));
        }
        for rep in replace {
            let key = rep.split('=').next().unwrap_or(rep);
            match kargs.iter_mut().find(|k| k.split('=').next() == Some(key)) {
                Some(k) => *k = rep.clone(),
                None => kargs.push(rep.clone()),
            }
        }
        kargs.extend(append.iter().cloned());
        self.rewrite(list, Some((0, kargs.clone())))?;
        Ok(kargs)
    }

    /// The deployment whose /etc, kernel arguments and origin a deploy into `os` builds on,
    /// as ostree chooses it: the booted one when it is of that stateroot, else the first of
    /// that stateroot. Without `os`: the booted one, or (oxtree, on a sysroot that is not
    /// booted, where ostree wants `--os`) the default one.
    pub fn merge_deployment(&self, os: Option<&str>) -> Result<Deployment> {
        let list = self.deployments()?;
        let found = match os {
            Some(os) => list
                .iter()
                .find(|d| d.booted && d.stateroot == os)
                .or_else(|| list.iter().find(|d| d.stateroot == os)),
            None => list.iter().find(|d| d.booted).or(list.first()),
        };
        match (found, os) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(os)) => Err(Error::InvalidArgument(format!(
                "No previous deployment for OS '{os}'"
            ))),
            (None, None) => Err(Error::InvalidArgument(
                "Not currently booted into an OSTree system and no OS specified".into(),
            )),
        }
    }

    /// `switch`: deploy `refspec` in the merge deployment's stateroot as ostree's `admin
    /// switch` does: a refspec without a remote keeps the current origin's remote, and
    /// `REMOTE:` switches only the remote; it is pulled first when it names a remote; the
    /// new deployment's origin is the new refspec, so later upgrades follow it. Then, with
    /// `prune`, the system repo is pruned, and the old origin's ref is deleted, as ostree
    /// does.
    pub fn switch(
        &self,
        refspec: &str,
        os: Option<&str>,
        prune: bool,
        opts: &DeployOptions,
    ) -> Result<SwitchOutcome> {
        let _lock = self.lock(|| {})?;
        let current = self.merge_deployment(os)?;
        let old_refspec = current
            .refspec()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "deployment {} has no origin refspec to switch from",
                    current.dirname()
                ))
            })?
            .to_string();
        let old = crate::repo::RefName::parse(&old_refspec)?;
        let new = match refspec.strip_suffix(':') {
            Some(remote) => {
                crate::object::validate_remote_name(remote)
                    .map_err(|_| Error::InvalidArgument(format!("Invalid refspec {refspec}")))?;
                crate::repo::RefName {
                    remote: Some(remote.to_string()),
                    name: old.name.clone(),
                }
            }
            None => {
                let r = crate::repo::RefName::parse(refspec)?;
                crate::repo::RefName {
                    remote: r.remote.or_else(|| old.remote.clone()),
                    name: r.name,
                }
            }
        };
        let new_refspec = new.to_string();
        if new_refspec == old_refspec {
            return Err(Error::InvalidArgument(format!(
                "Old and new refs are equal: {new_refspec}"
            )));
        }
        let repo = self.repo()?;
        if let Some(remote) = &new.remote {
            // As ostree's upgrader, with the downgrade check of M4: the new commit may not
            // be older than the deployment it replaces (checked as soon as it is fetched,
            // before anything is stored).
            repo.pull(
                remote,
                std::slice::from_ref(&new.name),
                &crate::pull::PullOptions {
                    timestamp_check_from_rev: Some(current.checksum),
                    ..Default::default()
                },
                &crate::pull::PullProgress::default(),
            )?;
        }
        let mut o = opts.clone();
        o.os = Some(current.stateroot.clone());
        o.origin = None;
        let deployment = self.deploy(&new_refspec, &o)?;
        let pruned = if prune {
            Some(self.prune_repo()?)
        } else {
            None
        };
        match repo.set_ref(&old, None) {
            Ok(()) | Err(Error::RefNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(SwitchOutcome {
            deployment,
            pruned,
            deleted_ref: old,
        })
    }

    /// `upgrade`: pull the merge deployment's origin (following `ostree.endoflife-rebase`) (when it names a remote), then deploy
    /// the new commit if it differs, with that origin (less its transient state, an
    /// `unlocked` mark and any `override-commit`, unless one is given). Downgrades are
    /// refused unless `allow_downgrade`.
    pub fn upgrade(&self, opts: &UpgradeOptions) -> Result<UpgradeOutcome> {
        let _lock = self.lock(|| {})?;
        let current = self.merge_deployment(opts.os.as_deref())?;
        let mut origin = current
            .origin
            .as_ref()
            .map(super::deploy::normalized_origin)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "No origin known for deployment {}.{}",
                    current.checksum, current.deployserial
                ))
            })?;
        // An origin its maker marked as not set up yet (e.g. "register with
        // subscription-manager first"): ostree's sysroot upgrader refuses it with the text.
        if let Some(msg) = origin.get("origin", "unconfigured-state") {
            return Err(Error::InvalidArgument(format!(
                "origin unconfigured-state: {msg}"
            )));
        }
        origin.remove_key("origin", "unlocked");
        match &opts.override_commit {
            Some(c) => origin.set("origin", "override-commit", c),
            None => {
                origin.remove_key("origin", "override-commit");
            }
        }
        let mut refspec = origin
            .get("origin", "refspec")
            .ok_or_else(|| {
                Error::InvalidArgument("the default deployment has no origin refspec".into())
            })?
            .to_string();
        let mut r = crate::repo::RefName::parse(&refspec)?;
        let override_commit = match &opts.override_commit {
            Some(c) => Some(
                c.parse::<Checksum>()
                    .map_err(|_| Error::InvalidArgument(format!("Invalid rev {c}")))?,
            ),
            None => None,
        };
        let repo = self.repo()?;
        let mut pulled = None;
        // A commit that ends its branch may name the branch to follow instead
        // (`ostree.endoflife-rebase`): the upgrade then pulls that one and the new
        // deployment's origin names it, as ostree's upgrader does (a chain of them too).
        let mut rebases = 0;
        let new = loop {
            if !opts.deploy_only {
                if let Some(remote) = &r.remote {
                    // Compared with the deployed commit (not the remote-tracking ref), before
                    // anything is stored.
                    let popts = crate::pull::PullOptions {
                        timestamp_check_from_rev: (!opts.allow_downgrade)
                            .then_some(current.checksum),
                        ..Default::default()
                    };
                    let what = match &override_commit {
                        Some(c) => c.to_hex(),
                        None => r.name.clone(),
                    };
                    pulled = Some(repo.pull(
                        remote,
                        &[what],
                        &popts,
                        &crate::pull::PullProgress::default(),
                    )?);
                }
            }
            let new = match &override_commit {
                Some(c) => {
                    repo.load_commit(c).map_err(|e| match e {
                        // ostree's words for a commit it does not have.
                        Error::ObjectMissing { .. } => {
                            Error::NotFound(format!("No such metadata object {c}.commit"))
                        }
                        e => e,
                    })?;
                    break *c;
                }
                None => repo.resolve_rev(&refspec)?,
            };
            let rebase = repo
                .load_commit(&new)?
                .meta("ostree.endoflife-rebase")
                .and_then(|v| v.as_str().map(str::to_string))
                .filter(|n| *n != r.name);
            let Some(next) = rebase else {
                break new;
            };
            rebases += 1;
            if rebases > MAX_ENDOFLIFE_REBASES {
                return Err(Error::InvalidArgument(format!(
                    "{refspec}: more than {MAX_ENDOFLIFE_REBASES} end-of-life rebases in a row (a loop?)"
                )));
            }
            crate::object::validate_ref(&next).map_err(|_| {
                Error::InvalidArgument(format!(
                    "Commit {new} names an invalid ref to rebase to (ostree.endoflife-rebase): {next}"
                ))
            })?;
            r = crate::repo::RefName {
                remote: r.remote.clone(),
                name: next,
            };
            refspec = match &r.remote {
                Some(rem) => format!("{rem}:{}", r.name),
                None => r.name.clone(),
            };
            origin.set("origin", "refspec", &refspec);
        };
        let changed = new != current.checksum;
        if changed && !opts.allow_downgrade {
            repo.check_timestamps(&current.checksum, &new)?;
        }
        if override_commit.is_some() {
            // The ref follows the commit asked for, as ostree's upgrader sets it; only
            // once it is accepted, so a refused upgrade changes nothing.
            repo.set_ref(&r, Some(&new))?;
        }
        if !changed || opts.pull_only {
            return Ok(UpgradeOutcome {
                changed,
                deployed: None,
                pulled,
            });
        }
        let mut o = opts.deploy.clone();
        o.os = Some(current.stateroot.clone());
        o.origin = Some(origin);
        Ok(UpgradeOutcome {
            changed,
            deployed: Some(self.deploy(&new.to_hex(), &o)?),
            pulled,
        })
    }

    /// `instutil set-kargs`: replace the kernel arguments of the deployment at `index` (a
    /// new boot configuration; an `ostree=` among them keeps its place, with the new boot
    /// link).
    pub fn set_kargs(&self, index: usize, kargs: Vec<String>) -> Result<()> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        check_index(index, list.len())?;
        self.rewrite(list, Some((index, kargs)))
    }

    /// Make the deployment at `index` the default (`admin set-default`); `false` when it
    /// already is.
    pub fn set_default(&self, index: usize) -> Result<bool> {
        let _lock = self.lock(|| {})?;
        let (i, mut list) = match self.indexed(index)? {
            Indexed::Listed(i, list) => (i, list),
            Indexed::Staged(_) => {
                return Err(Error::InvalidArgument(format!(
                    "Deployment {index} is staged: it becomes the default when it is finalized"
                )))
            }
        };
        if i == 0 {
            return Ok(false);
        }
        let d = list.remove(i);
        list.insert(0, d);
        self.rewrite(list, None)?;
        Ok(true)
    }

    /// `admin set-origin`: add the remote `name` (unless it exists; `options` are its
    /// `--set` keys) and point the origin of the deployment at `index` (else the booted
    /// one) at `name:BRANCH` (the branch of its current origin when not given). The origin
    /// is written anew, as ostree does.
    pub fn set_origin(
        &self,
        index: Option<usize>,
        name: &str,
        url: &str,
        branch: Option<&str>,
        options: &[(String, String)],
    ) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let d = match index {
            Some(i) => match self.indexed(i)? {
                Indexed::Staged(d) => d,
                Indexed::Listed(i, list) => list[i].clone(),
            },
            None => list.iter().find(|d| d.booted).cloned().ok_or_else(|| {
                Error::InvalidArgument("Not currently booted into an OSTree system".into())
            })?,
        };
        let mut repo = self.repo()?;
        repo.remote_add(
            name,
            url,
            &crate::repo::RemoteAddOptions {
                set: options.to_vec(),
                if_not_exists: true,
                ..Default::default()
            },
        )?;
        let old_ref = match branch {
            Some(_) => String::new(),
            None => {
                let old = d.refspec().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "deployment {} has no origin refspec",
                        d.dirname()
                    ))
                })?;
                crate::repo::RefName::parse(old)?.name
            }
        };
        let mut origin = KeyFile::new();
        origin.set(
            "origin",
            "refspec",
            &format!("{name}:{}", branch.unwrap_or(&old_ref)),
        );
        crate::fsutil::write_atomic(&self.origin_path(&d), origin.to_string().as_bytes(), true)?;
        Ok(d)
    }

    /// `kargs edit-in-place --append-if-missing`: add each argument whose key is absent to
    /// every deployment's entry, rewritten in place (no new boot configuration, as ostree
    /// does; each entry is replaced atomically), and to a staged deployment's.
    pub fn kargs_append_if_missing(&self, args: &[String]) -> Result<()> {
        use super::kargs::KernelArgs;
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        if list.is_empty() {
            return Err(Error::InvalidArgument(
                "Unable to find a deployment in sysroot".into(),
            ));
        }
        if let Some(bad) = args.iter().find(|a| a.chars().any(char::is_control)) {
            return Err(Error::InvalidArgument(format!(
                "kernel argument {bad:?} has control characters"
            )));
        }
        let Some(n) = self.bootversion()? else {
            return Ok(());
        };
        let dir = self.path.join(format!("boot/loader.{n}/entries"));
        for (i, d) in list.iter().enumerate() {
            let mut k = KernelArgs::parse(d.entry.get("options").unwrap_or_default());
            for a in args {
                k.append_if_missing(a);
            }
            let mut e = d.entry.clone();
            e.set("options", &k.to_string());
            let name = dir.join(format!(
                "ostree-{}-{}{}.conf",
                list.len() - i,
                d.stateroot,
                super::bls::tries_suffix(d.tries)
            ));
            crate::fsutil::write_atomic(&name, e.to_string().as_bytes(), true)?;
        }
        crate::fsutil::fsync_dir(&dir)?;
        if let Some(mut m) = self.read_staged()? {
            let base = match &m.kargs {
                Some(k) => k.clone(),
                None => {
                    let merge = m.merge.as_ref().and_then(|(os, c, s)| {
                        list.iter().find(|d| {
                            &d.stateroot == os && d.checksum == *c && d.deployserial == *s
                        })
                    });
                    let mut k: Vec<String> = merge
                        .map(|d| {
                            KernelArgs::parse(d.entry.get("options").unwrap_or_default())
                                .into_args()
                        })
                        .unwrap_or_default();
                    k.append(&mut m.karg_append);
                    k
                }
            };
            let mut k = KernelArgs::from_args(&base);
            for a in args {
                k.append_if_missing(a);
            }
            m.kargs = Some(k.into_args());
            self.write_staged(&m)?;
        }
        Ok(())
    }
}

/// A deployment INDEX resolved (see [`Sysroot::indexed`]).
pub(super) enum Indexed {
    Staged(Deployment),
    /// The index into the boot entries, and the entries.
    Listed(usize, Vec<Deployment>),
}

/// ostree's message for an index past the end of the list.
fn check_index(index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(Error::InvalidArgument(format!(
            "Out of range deployment index {index}, expected < {len}"
        )));
    }
    Ok(())
}

/// What [`Sysroot::upgrade`] should do.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// The stateroot (default: the booted deployment's).
    pub os: Option<String>,
    /// Only pull; do not deploy.
    pub pull_only: bool,
    /// Do not pull; deploy what the origin's ref points at already.
    pub deploy_only: bool,
    /// Accept a commit older than the deployed one.
    pub allow_downgrade: bool,
    /// Deploy this commit (a full checksum) instead of the newest; recorded in the origin.
    pub override_commit: Option<String>,
    pub deploy: DeployOptions,
}

/// What [`Sysroot::upgrade`] did.
#[derive(Debug)]
pub struct UpgradeOutcome {
    /// A commit other than the merge deployment's is there to deploy ("No update
    /// available." when not).
    pub changed: bool,
    pub deployed: Option<Deployment>,
    pub pulled: Option<crate::pull::PullResult>,
}

/// What [`Sysroot::switch`] did.
#[derive(Debug)]
pub struct SwitchOutcome {
    pub deployment: Deployment,
    /// The prune after the deploy, when asked for.
    pub pruned: Option<crate::repo::PruneReport>,
    /// The old origin's ref, deleted from the system repo.
    pub deleted_ref: crate::repo::RefName,
}
