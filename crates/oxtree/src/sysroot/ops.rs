//! Operations on the deployment list that need no new checkout: rollback, undeploy, pin,
//! kernel-argument edits; and `upgrade`/`switch`, which pull and then deploy.

use super::deploy::Planned;
use super::{DeployOptions, Deployment, Sysroot};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;

impl Sysroot {
    fn origin_path(&self, d: &Deployment) -> std::path::PathBuf {
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
        self.write_deployments(&repo, &plan)?;
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
        let mut list = self.deployments()?;
        if index >= list.len() {
            return Err(Error::InvalidArgument(format!(
                "no deployment with index {index} (there are {})",
                list.len()
            )));
        }
        if list.get(index).is_some_and(|d| d.booted) {
            return Err(Error::InvalidArgument(format!(
                "deployment {index} is the booted one; boot another one first"
            )));
        }
        let d = list.remove(index);
        self.rewrite(list, None)?;
        Ok(d)
    }

    /// Pin (or unpin) the deployment at `index`: pinned deployments are never dropped.
    pub fn pin(&self, index: usize, pinned: bool) -> Result<()> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let d = list
            .get(index)
            .ok_or_else(|| Error::InvalidArgument(format!("no deployment with index {index}")))?;
        let path = self.origin_path(d);
        let mut kf = match std::fs::read_to_string(&path) {
            Ok(t) => KeyFile::parse(&t).map_err(|e| Error::Config {
                path: path.clone(),
                msg: e.to_string(),
            })?,
            Err(_) => KeyFile::new(),
        };
        if pinned {
            kf.set("libostree-transient", "pinned", "true");
        } else {
            kf.remove_key("libostree-transient", "pinned");
            if kf.keys("libostree-transient").is_empty() {
                kf.remove_group("libostree-transient");
            }
        }
        crate::fsutil::write_atomic(&path, kf.to_string().as_bytes(), true)
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

    /// `switch`: deploy `refspec` (pulled first when it names a remote) in the default
    /// deployment's stateroot; its origin becomes `refspec`, so later upgrades follow it.
    pub fn switch(&self, refspec: &str, opts: &DeployOptions) -> Result<Deployment> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let current = list
            .iter()
            .find(|d| d.booted)
            .or(list.first())
            .ok_or_else(|| Error::InvalidArgument("no deployments: use admin deploy".into()))?;
        if let Some((remote, r)) = refspec.split_once(':') {
            // As ostree's upgrader: the new commit may not be older than the deployment it
            // replaces (checked as soon as it is fetched, before anything is stored).
            let repo = self.repo()?;
            repo.pull(
                remote,
                &[r.to_string()],
                &crate::pull::PullOptions {
                    timestamp_check_from_rev: Some(current.checksum),
                    ..Default::default()
                },
                &crate::pull::PullProgress::default(),
            )?;
        }
        let mut o = opts.clone();
        o.os = Some(current.stateroot.clone());
        self.deploy(refspec, &o)
    }

    /// `upgrade`: pull the default deployment's origin (when it names a remote), then deploy
    /// the new commit if it differs. Downgrades are refused unless `allow_downgrade`.
    /// Returns the new deployment (`None` when already up to date) and what the pull did.
    pub fn upgrade(
        &self,
        pull_only: bool,
        deploy_only: bool,
        allow_downgrade: bool,
        opts: &DeployOptions,
    ) -> Result<(Option<Deployment>, Option<crate::pull::PullResult>)> {
        let _lock = self.lock(|| {})?;
        let list = self.deployments()?;
        let current = list
            .iter()
            .find(|d| d.booted)
            .or(list.first())
            .ok_or_else(|| Error::InvalidArgument("no deployments to upgrade".into()))?
            .clone();
        let refspec = current
            .refspec()
            .ok_or_else(|| {
                Error::InvalidArgument("the default deployment has no origin refspec".into())
            })?
            .to_string();
        let repo = self.repo()?;
        let mut pulled = None;
        if !deploy_only {
            if let Some((remote, r)) = refspec.split_once(':') {
                // Compared with the deployed commit (not the remote-tracking ref), before
                // anything is stored.
                let popts = crate::pull::PullOptions {
                    timestamp_check_from_rev: (!allow_downgrade).then_some(current.checksum),
                    ..Default::default()
                };
                pulled = Some(repo.pull(
                    remote,
                    &[r.to_string()],
                    &popts,
                    &crate::pull::PullProgress::default(),
                )?);
            }
        }
        if pull_only {
            return Ok((None, pulled));
        }
        let new = repo.resolve_rev(&refspec)?;
        if new == current.checksum {
            return Ok((None, pulled));
        }
        if !allow_downgrade {
            repo.check_timestamps(&current.checksum, &new)?;
        }
        let mut o = opts.clone();
        o.os = Some(current.stateroot.clone());
        Ok((Some(self.deploy(&refspec, &o)?), pulled))
    }
}
