//! The state machine and the daemon around it. [`Agent::step`] is the one transition
//! function (as Zincati's `update_agent` actor): it reads the persisted state and the
//! operator's controls, does one step's work (check, stage, gate, reboot, verify), and
//! persists the next state before anything irreversible happens after it, so a kill at any
//! point resumes where it was:
//!
//! - killed while checking or staging: the step runs again; a staged deployment that is
//!   already there for the target is adopted, never staged twice;
//! - killed after the fleet lock was asked for but before `rebooting` was written:
//!   `lock_maybe_held` is set first, and a gate that later says no releases the slot;
//! - killed in `rebooting`: the boot id tells whether the reboot happened; if not, the
//!   reboot command is issued once more (not again within five minutes of the last);
//! - after the reboot: booted the target → `verifying`, which releases the slot only once
//!   the boot is confirmed good (`oxtree admin boot-complete` cleared boot counting) and
//!   the post-boot hooks pass; booted something else → `rolled-back`, the payload is never
//!   offered again, and the slot is kept (by default) so a bad canary halts the fleet.

use super::config::Loaded;
use super::decide::{decide, Policy};
use super::gates::{self, Blocked};
use super::hooks::{self, Outcome};
use super::metrics::{bump, Metrics};
use super::rollout;
use super::source::{self, CincinnatiQuery};
use super::state::{self, Controls, Denied, Persisted, State, Target};
use crate::error::{Error, IoContext, Result};
use crate::repo::RefName;
use crate::sysroot::{DeployOptions, Deployment, Sysroot};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Test hooks (set from the environment by the CLI, as `admin deploy`'s are).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Right after persisting this state (by name), stop and wait forever, so a test can
    /// kill -9 the agent in that state.
    pub hang_in: Option<String>,
}

/// Do not issue the reboot command again within this many seconds of the last time.
const REBOOT_REISSUE_SECS: i64 = 300;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn ts(t: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The booted deployment and what the agent needs from it.
#[derive(Debug, Clone)]
pub struct Booted {
    pub deployment: Deployment,
    pub payload: String,
    pub version: Option<String>,
    pub remote: String,
    pub refname: String,
}

impl Booted {
    pub fn stream(&self) -> &str {
        &self.refname
    }
}

pub struct Agent {
    pub loaded: Loaded,
    sysroot: Sysroot,
    pub p: Persisted,
    pub metrics: Arc<Mutex<Metrics>>,
    opts: Options,
}

impl Agent {
    pub fn new(loaded: Loaded, opts: Options) -> Result<Agent> {
        let c = &loaded.config;
        let p = state::load_state(&c.agent.state_dir)?;
        let sysroot = Sysroot::new(&c.agent.sysroot);
        let m = Metrics {
            state: p.state().name().to_string(),
            latest_state_change_timestamp: p.since,
            updates_enabled: c.updates.enabled,
            allow_downgrade: c.updates.allow_downgrade,
            config_ignored_files: loaded.warnings.len(),
            denied_releases: p.denied.len(),
            ..Metrics::default()
        };
        Ok(Agent {
            sysroot,
            p,
            metrics: Arc::new(Mutex::new(m)),
            opts,
            loaded,
        })
    }

    fn cfg(&self) -> &super::config::Config {
        &self.loaded.config
    }

    fn m(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg().agent.timeout_secs.max(1))
    }

    fn save(&self) -> Result<()> {
        state::save_state(&self.cfg().agent.state_dir, &self.p)
    }

    /// Persist a new state (the only way the state changes).
    fn set(&mut self, s: State) -> Result<()> {
        let changed = self.p.state.as_ref() != Some(&s);
        if changed {
            tracing::info!("agent: {} -> {}", self.p.state().name(), s.name());
            self.p.since = now();
        }
        self.p.state = Some(s.clone());
        self.save()?;
        {
            let since = self.p.since;
            let denied = self.p.denied.len();
            let mut m = self.m();
            m.state = s.name().to_string();
            m.latest_state_change_timestamp = since;
            m.denied_releases = denied;
        }
        if changed {
            self.hang_point(s.name());
        }
        Ok(())
    }

    /// The test hook: stop here for good when asked to (`Options::hang_in`).
    fn hang_point(&self, name: &str) {
        if self.opts.hang_in.as_deref() == Some(name) {
            tracing::warn!("agent: test hook: hanging in {name}");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    pub fn booted(&self) -> Result<Booted> {
        let list = self.sysroot.deployments()?;
        // On the running system the booted one; on an offline sysroot (tests, image
        // builders) the default, which is what would boot.
        let d = list
            .iter()
            .find(|d| d.booted)
            .or(list.first())
            .cloned()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: no deployments: nothing to update",
                    self.sysroot.path().display()
                ))
            })?;
        let refspec = d.refspec().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "deployment {}: no origin refspec to follow",
                d.dirname()
            ))
        })?;
        let (remote, refname) = refspec.split_once(':').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "deployment {}: origin {refspec:?} names no remote (REMOTE:REF)",
                d.dirname()
            ))
        })?;
        let version = self
            .sysroot
            .repo()
            .ok()
            .and_then(|r| r.load_commit(&d.checksum).ok())
            .and_then(|c| c.version().map(str::to_string));
        Ok(Booted {
            payload: d.checksum.to_hex(),
            version,
            remote: remote.to_string(),
            refname: refname.to_string(),
            deployment: d,
        })
    }

    fn boot_id(&self) -> Result<String> {
        let p = &self.cfg().agent.boot_id_path;
        Ok(std::fs::read_to_string(p)
            .ctx("read", p)?
            .trim()
            .to_string())
    }

    fn node_uuid(&self) -> Result<String> {
        if let Some(u) = &self.cfg().identity.node_uuid {
            return Ok(u.clone());
        }
        let p = &self.cfg().agent.machine_id_path;
        let mid = std::fs::read_to_string(p).ctx("read", p)?;
        rollout::app_specific_id(&mid, &rollout::APP_ID).ok_or_else(|| Error::Config {
            path: p.clone(),
            msg: "not a machine id (32 hex digits)".into(),
        })
    }

    pub fn wariness(&self, stream: &str) -> Result<f64> {
        Ok(match self.cfg().identity.rollout_wariness {
            Some(w) => rollout::round_wariness(w),
            None => rollout::derived_wariness(&self.node_uuid()?, stream),
        })
    }

    fn fleet_lock(&self) -> Result<Option<crate::fleetlock::Client>> {
        match self.cfg().fleet_lock_url() {
            None => Ok(None),
            Some(url) => Ok(Some(crate::fleetlock::Client::new(
                url,
                &self.node_uuid()?,
                &self.cfg().identity.group,
                self.timeout(),
            )?)),
        }
    }

    /// Release the fleet lock; true when it is known not to be held any more.
    fn unlock(&mut self) -> bool {
        match self.fleet_lock() {
            Ok(None) => true,
            Ok(Some(c)) => {
                self.m().fleet_lock_requests_total += 1;
                match c.steady_state() {
                    Ok(()) => true,
                    Err(e) => {
                        bump(&mut self.m().fleet_lock_errors_total, &e.kind);
                        tracing::warn!("agent: FleetLock steady-state: {e}");
                        self.p.last_error = Some(format!("FleetLock steady-state: {e}"));
                        false
                    }
                }
            }
            Err(e) => {
                self.p.last_error = Some(e.to_string());
                false
            }
        }
    }

    fn motd(&self, text: Option<String>) {
        let p = self.cfg().reboot.motd_path.clone();
        if let Err(e) = gates::set_motd(&p, text.as_deref()) {
            tracing::warn!("agent: MOTD: {e}");
        }
    }

    /// Once at start: like Zincati's "report steady", release a slot this machine may hold
    /// from an earlier boot — unless it is kept on purpose after a rollback, or the state
    /// machine is in the middle of a reboot and owns it.
    pub fn resume(&mut self) -> Result<()> {
        let st = self.p.state();
        let idle = matches!(
            st,
            State::Steady | State::Checking | State::Available { .. } | State::DeadEnd { .. }
        );
        if idle && !self.p.slot_kept && self.cfg().fleet_lock_url().is_some() && self.unlock() {
            self.p.lock_maybe_held = false;
            self.save()?;
        }
        Ok(())
    }

    /// One transition. Returns how long to wait before the next one.
    pub fn step(&mut self) -> Result<Duration> {
        let c = state::load_controls(&self.cfg().agent.state_dir)?;
        let interval = Duration::from_secs(self.cfg().agent.steady_interval_secs.max(1));
        // `unblock`: forget rolled-back and aborted releases, release a slot kept after a
        // rollback, and look again.
        if c.unblock > self.p.seen_unblock {
            if self.p.slot_kept && !self.unlock() {
                return Ok(Duration::from_secs(self.cfg().agent.retry_secs.max(1)));
            }
            self.p.slot_kept = false;
            self.p.rolled_back = None;
            self.p.denied.clear();
            self.p.aborted.clear();
            self.p.seen_unblock = c.unblock;
            self.p.lock_maybe_held = false;
            self.p.last_check = None;
            if matches!(self.p.state(), State::RolledBack { .. }) {
                self.set(State::Steady)?;
            } else {
                self.save()?;
            }
        }
        match self.p.state() {
            State::Steady | State::DeadEnd { .. } | State::RolledBack { .. } => {
                let due = c.check_now > self.p.seen_check_now
                    || match self.p.last_check {
                        None => true,
                        Some(t) => now() - t >= interval.as_secs() as i64,
                    };
                if !self.cfg().updates.enabled && c.check_now <= self.p.seen_check_now {
                    return Ok(interval);
                }
                if !due {
                    let left = interval.as_secs() as i64 - (now() - self.p.last_check.unwrap_or(0));
                    return Ok(Duration::from_secs(
                        left.clamp(1, interval.as_secs() as i64) as u64,
                    ));
                }
                self.p.seen_check_now = c.check_now;
                self.set(State::Checking)?;
                Ok(Duration::ZERO)
            }
            State::Checking => {
                let previous_rolled_back = self.p.rolled_back.is_some();
                match self.check(&c) {
                    Ok(next) => {
                        self.p.last_error = None;
                        let next = match (next, previous_rolled_back) {
                            // Nothing new: keep reporting the rollback.
                            (State::Steady, true) => self.rolled_back_state(),
                            (n, _) => n,
                        };
                        self.set(next)?;
                        Ok(Duration::ZERO)
                    }
                    Err(e) => {
                        tracing::warn!("agent: update check failed: {e}");
                        let kind = match &e {
                            Error::UpdateGraph { .. } => "graph_rejected",
                            Error::NotFound(_) => "not_found",
                            _ => "error",
                        };
                        bump(&mut self.m().update_checks_errors_total, kind);
                        self.p.last_error = Some(e.to_string());
                        self.p.last_check = Some(now());
                        let next = if previous_rolled_back {
                            self.rolled_back_state()
                        } else {
                            State::Steady
                        };
                        self.set(next)?;
                        Ok(interval)
                    }
                }
            }
            State::Available {
                target,
                attempts,
                retry_at,
                ..
            } => {
                if now() < retry_at {
                    return Ok(Duration::from_secs((retry_at - now()).max(1) as u64));
                }
                self.stage_step(target, attempts)
            }
            State::Staged { target } | State::Waiting { target, .. } => {
                let hook_retries = match self.p.state() {
                    State::Waiting { hook_retries, .. } => hook_retries,
                    _ => 0,
                };
                self.gate_step(target, &c, hook_retries)
            }
            State::Rebooting {
                target,
                boot_id,
                from,
                issued_at,
            } => self.rebooting_step(target, boot_id, from, issued_at),
            State::Verifying { target, .. } => self.verify_step(target),
        }
    }

    fn rolled_back_state(&self) -> State {
        match &self.p.rolled_back {
            Some(t) => State::RolledBack {
                target: t.clone(),
                lock_kept: self.p.slot_kept,
            },
            None => State::Steady,
        }
    }

    /// Fetch the graph (verified) and decide.
    fn check(&mut self, c: &Controls) -> Result<State> {
        self.m().update_checks_total += 1;
        let booted = self.booted()?;
        self.p.booted_version = booted.version.clone();
        // Deployments that failed to boot (boot counting) are never offered again.
        for d in self.sysroot.deployments()? {
            if d.failed() {
                let payload = d.checksum.to_hex();
                if !self.p.denied.contains_key(&payload) {
                    let version = self
                        .sysroot
                        .repo()
                        .ok()
                        .and_then(|r| r.load_commit(&d.checksum).ok())
                        .and_then(|c| c.version().map(str::to_string))
                        .unwrap_or_default();
                    self.p.denied.insert(
                        payload,
                        Denied {
                            version,
                            reason: "failed to boot (boot counting)".into(),
                            at: now(),
                        },
                    );
                }
            }
        }
        let stream = booted.stream().to_string();
        let wariness = self.wariness(&stream)?;
        self.m().rollout_wariness = wariness;
        let t = now();
        let cfg = self.cfg().clone();
        let (graph, throttle) = match &cfg.cincinnati.base_url {
            Some(base) => {
                let q = CincinnatiQuery {
                    basearch: std::env::consts::ARCH.to_string(),
                    stream: stream.clone(),
                    os_version: booted.version.clone().unwrap_or_default(),
                    os_checksum: booted.payload.clone(),
                    group: cfg.identity.group.clone(),
                    node_uuid: self.node_uuid()?,
                    platform: cfg
                        .identity
                        .platform
                        .clone()
                        .unwrap_or_else(platform_from_cmdline),
                    rollout_wariness: Some(wariness),
                };
                (source::fetch_cincinnati(base, &q, self.timeout())?, false)
            }
            None => {
                let url = self.graph_url(&booted)?;
                // (a graph signed only by a revoked key verifies with none)
                let mut keys = self.graph_keys(&booted)?;
                let revoked = crate::sign::system_revoked_keys()?;
                keys.retain(|k| !revoked.contains(k.as_bytes()));
                let seen = self.p.graph_seen.get(&stream).cloned();
                match source::fetch_static(
                    &url,
                    &keys,
                    &stream,
                    ts(t),
                    seen.as_ref(),
                    self.timeout(),
                )? {
                    Ok((g, seen)) => {
                        self.p.graph_seen.insert(stream.clone(), seen);
                        (g, true)
                    }
                    Err(r) => {
                        bump(&mut self.m().graph_rejected_total, r.kind());
                        return Err(Error::UpdateGraph {
                            url,
                            msg: r.to_string(),
                        });
                    }
                }
            }
        };
        self.p.last_check = Some(t);
        {
            let mut m = self.m();
            m.last_refresh_timestamp = t;
            m.graph_nodes = graph.nodes.len();
            m.graph_edges = graph.edges.len();
        }
        let mut skipped = c.skipped.clone();
        skipped.extend(self.p.aborted.iter().cloned());
        let policy = Policy {
            now: t,
            wariness,
            allow_downgrade: cfg.updates.allow_downgrade,
            throttle,
            denied_payloads: self.p.denied.keys().cloned().collect(),
            skipped_versions: skipped,
            max_version: cfg.updates.max_version.clone(),
        };
        let d = decide(&graph, &booted.payload, &policy);
        {
            let mut m = self.m();
            m.ignored_update_targets = d.ignored.len() as u64;
            m.booted_release_is_deadend = d.deadend.is_some();
        }
        if let Some(reason) = d.deadend {
            self.motd(Some(format!(
                "oxtree agent: the running release {} is a dead end and is not updated automatically: {reason}\n",
                booted.version.as_deref().unwrap_or(&booted.payload)
            )));
            return Ok(State::DeadEnd { reason });
        }
        if matches!(self.p.state(), State::Checking) && d.booted.is_none() {
            tracing::info!(
                "agent: the booted commit {} is not in the graph",
                booted.payload
            );
        }
        Ok(match d.target {
            Some(r) => State::Available {
                target: Target {
                    version: r.version,
                    payload: r.payload,
                },
                attempts: 0,
                retry_at: t,
                last_error: None,
            },
            None => {
                self.motd(None);
                State::Steady
            }
        })
    }

    fn graph_url(&self, booted: &Booted) -> Result<String> {
        if let Some(u) = &self.cfg().graph.url {
            return Ok(u.replace("{stream}", booted.stream()));
        }
        let repo = self.sysroot.repo()?;
        let base = repo.remote_url(&booted.remote)?;
        if base.starts_with("mirrorlist=") {
            // No one URL to put the graph beside: it must be named.
            return Err(Error::Other(format!(
                "remote {} lists its mirrors ({base}): set the update graph's url in the \
                 agent's configuration ([graph] url)",
                booted.remote
            )));
        }
        Ok(format!(
            "{}/graph/{}.json",
            base.trim_end_matches('/'),
            booted.stream()
        ))
    }

    fn graph_keys(&self, booted: &Booted) -> Result<Vec<ed25519_dalek::VerifyingKey>> {
        let mut keys =
            crate::sign::usable_keys(&self.sysroot.repo()?.remote_ed25519_keys(&booted.remote)?);
        for k in &self.cfg().graph.keys {
            keys.push(crate::sign::parse_public_key(k)?);
        }
        Ok(keys)
    }

    /// Enough room for a new kernel in /boot and for the pull in the repository?
    fn preflight(&self, booted: &Booted) -> std::result::Result<(), String> {
        let free = |p: &Path| -> std::result::Result<u64, String> {
            let st = rustix::fs::statvfs(p).map_err(|e| format!("statvfs {}: {e}", p.display()))?;
            Ok(st.f_bavail.saturating_mul(st.f_frsize))
        };
        let root = self.sysroot.path();
        let boot = root.join("boot");
        let mut kernel = 0u64;
        for k in ["linux", "initrd"] {
            if let Some(rel) = booted.deployment.entry.get(k) {
                kernel += std::fs::metadata(boot.join(rel.trim_start_matches('/')))
                    .map(|m| m.len())
                    .unwrap_or(0);
            }
        }
        let pf = &self.cfg().preflight;
        let need_boot = kernel + pf.min_free_boot_mib * (1 << 20);
        let have = free(&boot)?;
        if have < need_boot {
            return Err(format!(
                "{} has {} MiB free; a new kernel and initramfs need {} MiB (plus [preflight] min_free_boot_mib): not staging",
                boot.display(),
                have >> 20,
                need_boot.div_ceil(1 << 20)
            ));
        }
        let repo = root.join("ostree/repo");
        let have = free(&repo)?;
        if have < pf.min_free_repo_mib * (1 << 20) {
            return Err(format!(
                "{} has {} MiB free, less than [preflight] min_free_repo_mib = {}: not staging",
                repo.display(),
                have >> 20,
                pf.min_free_repo_mib
            ));
        }
        Ok(())
    }

    fn backoff(&self, attempts: u32) -> i64 {
        let base = self.cfg().agent.retry_secs.max(1) as i64;
        let cap = self.cfg().agent.steady_interval_secs.max(1) as i64;
        base.saturating_mul(1i64 << attempts.min(20))
            .min(cap.max(base))
    }

    fn stage_step(&mut self, target: Target, attempts: u32) -> Result<Duration> {
        // Already staged (a kill after staging, before the state was written): adopt it.
        if let Some(m) = self.sysroot.read_staged()? {
            if m.checksum.to_hex() == target.payload {
                self.set(State::Staged { target })?;
                return Ok(Duration::ZERO);
            }
        }
        let fail = |this: &mut Agent, msg: String| -> Result<Duration> {
            tracing::warn!("agent: staging {} failed: {msg}", target.version);
            this.m().stage_failures_total += 1;
            let attempts = attempts + 1;
            if attempts >= this.cfg().agent.max_attempts {
                this.p.last_error = Some(format!(
                    "gave up staging {} after {attempts} attempts: {msg}",
                    target.version
                ));
                this.p.last_check = Some(now());
                this.set(State::Steady)?;
                return Ok(Duration::from_secs(
                    this.cfg().agent.steady_interval_secs.max(1),
                ));
            }
            let delay = this.backoff(attempts - 1);
            this.p.last_error = Some(msg.clone());
            this.set(State::Available {
                target: target.clone(),
                attempts,
                retry_at: now() + delay,
                last_error: Some(msg),
            })?;
            Ok(Duration::from_secs(delay as u64))
        };
        let booted = self.booted()?;
        if let Err(msg) = self.preflight(&booted) {
            return fail(self, msg);
        }
        let cfg = self.cfg().clone();
        match hooks::run(
            &cfg.hooks.dir,
            "pre-stage",
            &target.version,
            &target.payload,
            Duration::from_secs(cfg.hooks.timeout_secs),
        ) {
            Outcome::Go => {}
            Outcome::Retry { hook } => {
                return fail(self, format!("pre-stage hook {hook} asked to retry later"))
            }
            Outcome::Abort { hook, why } => {
                self.p.aborted.insert(target.version.clone());
                self.p.last_error = Some(format!(
                    "pre-stage hook {hook} aborted {} ({why}); `oxtree agent unblock` offers it again",
                    target.version
                ));
                self.set(State::Steady)?;
                return Ok(Duration::from_secs(cfg.agent.steady_interval_secs.max(1)));
            }
        }
        self.m().stage_attempts_total += 1;
        match self.stage(&booted, &target) {
            Ok(()) => {
                // A kill here: staged, but the state still says available.
                self.hang_point("staged-unrecorded");
                self.p.last_error = None;
                self.set(State::Staged {
                    target: target.clone(),
                })?;
                self.motd(Some(format!(
                    "oxtree agent: update {} is staged and will be booted when the reboot gates allow\n",
                    target.version
                )));
                Ok(Duration::ZERO)
            }
            Err(e) => fail(self, e.to_string()),
        }
    }

    /// Pull the payload, check it is the signed commit the graph names, and stage it with
    /// the sysroot's own deploy (never writing deployment files here).
    fn stage(&self, booted: &Booted, target: &Target) -> Result<()> {
        // The sysroot lock (ostree's), held from the pull to the staged deploy, as `admin
        // upgrade` holds it: no other admin command or ostree runs in between.
        let _lock = self
            .sysroot
            .lock(|| tracing::info!("agent: waiting for the sysroot lock"))?;
        let repo = self.sysroot.repo()?;
        let payload: crate::Checksum = target.payload.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "graph payload {:?} is not a checksum",
                target.payload
            ))
        })?;
        repo.pull(
            &booted.remote,
            std::slice::from_ref(&target.payload),
            &crate::pull::PullOptions::default(),
            &crate::pull::PullProgress::default(),
        )?;
        let keys = self.graph_keys(booted)?;
        // A static graph is only as trustworthy as the commits it names: they must be
        // signed by the remote's keys (so must a Cincinnati one's, when keys exist), and a
        // signature by a key in revoked.ed25519 counts for nothing, as in a pull.
        let revoked = crate::sign::system_revoked_keys()?;
        let must_verify = self.cfg().cincinnati.base_url.is_none() || !keys.is_empty();
        if must_verify
            && repo
                .verify_commit_ed25519(&payload, &keys, &revoked)?
                .is_none()
        {
            return Err(Error::Signature {
                commit: payload,
                msg: format!(
                    "the graph offers it as {}, but it is not signed by the remote's ed25519 keys (revoked keys not counted)",
                    target.version
                ),
            });
        }
        let commit = repo.load_commit(&payload)?;
        // The payload is pulled by checksum, so the pull's own checks that follow a ref
        // did not run: the commit must be one made for the stream the machine follows
        // (its ref binding, as a pull of the ref checks it) and, unless downgrades are
        // allowed, no older than the booted one (as `admin upgrade`): a graph, and a
        // Cincinnati one is unsigned, cannot move the machine to another stream or back.
        crate::pull::check_ref_binding(&payload, &commit, &booted.refname)?;
        if !self.cfg().updates.allow_downgrade {
            repo.check_timestamps(&booted.deployment.checksum, &payload)?;
        }
        if commit.version() != Some(target.version.as_str()) {
            return Err(Error::Signature {
                commit: payload,
                msg: format!(
                    "the graph calls it {}, the commit says {:?}",
                    target.version,
                    commit.version()
                ),
            });
        }
        // The origin keeps following REMOTE:REF; the remote-tracking ref points at the
        // chosen commit so the deploy resolves to it (the graph may hold the machine back
        // on an older commit than the ref's latest).
        repo.set_ref(
            &RefName {
                remote: Some(booted.remote.clone()),
                name: booted.refname.clone(),
            },
            Some(&payload),
        )?;
        let opts = DeployOptions {
            os: Some(booted.deployment.stateroot.clone()),
            stage: true,
            // (the sysroot it is configured with: the booted one on a real machine)
            stage_unbooted: true,
            retain_rollback: true,
            ..DeployOptions::default()
        };
        self.sysroot
            .deploy(&format!("{}:{}", booted.remote, booted.refname), &opts)?;
        match self.sysroot.read_staged()? {
            Some(m) if m.checksum == payload => Ok(()),
            other => Err(Error::Other(format!(
                "after staging {}, the staged deployment is {:?}",
                target.version,
                other.map(|m| m.checksum.to_hex())
            ))),
        }
    }

    fn wait_in(&mut self, target: Target, b: Blocked, hook_retries: u32) -> Result<Duration> {
        bump(&mut self.m().reboot_blocked_total, b.kind());
        // A slot may be held from a try that did not reach `rebooting`: give it back.
        if self.p.lock_maybe_held && !matches!(b, Blocked::Users { .. }) && self.unlock() {
            self.p.lock_maybe_held = false;
        }
        let interval = self.cfg().agent.steady_interval_secs.max(1) as i64;
        let until = match &b {
            Blocked::Hold { until } => until.as_second() - now(),
            Blocked::Window { next: Some(n) } => n.as_second() - now(),
            Blocked::Users { until, .. } => until.as_second() - now(),
            Blocked::Hook { .. } => self.cfg().hooks.retry_secs as i64,
            Blocked::FleetLock(_) => self.cfg().agent.retry_secs as i64,
            _ => interval,
        };
        self.motd(Some(format!(
            "oxtree agent: update {} is staged; reboot waits: {b}\n",
            target.version
        )));
        self.set(State::Waiting {
            target,
            gate: b.kind().to_string(),
            reason: b.to_string(),
            hook_retries,
        })?;
        Ok(Duration::from_secs(until.clamp(1, interval.max(1)) as u64))
    }

    fn gate_step(&mut self, target: Target, c: &Controls, hook_retries: u32) -> Result<Duration> {
        // The staged deployment must still be there (it lives in /run).
        match self.sysroot.read_staged()? {
            Some(m) if m.checksum.to_hex() == target.payload => {}
            _ => {
                tracing::warn!(
                    "agent: the staged deployment of {} is gone; staging again",
                    target.version
                );
                self.set(State::Available {
                    target,
                    attempts: 0,
                    retry_at: now(),
                    last_error: None,
                })?;
                return Ok(Duration::ZERO);
            }
        }
        let cfg = self.cfg().clone();
        let t = now();
        let reboot_now = c.reboot_now > self.p.seen_reboot_now;
        let consent_file = cfg.reboot.consent_file.exists();
        let windows = cfg.windows()?;
        let inhibitors = if cfg.reboot.respect_inhibitors {
            gates::list_inhibitors()
        } else {
            Ok(Vec::new())
        };
        let local = gates::Local {
            now: ts(t),
            enabled: cfg.updates.enabled,
            hold_until: c.hold_until.map(ts),
            consent_required: cfg.updates.consent,
            consent_given: consent_file,
            reboot_now,
            windows: windows.as_ref(),
            respect_inhibitors: cfg.reboot.respect_inhibitors,
            inhibitors: &inhibitors,
        };
        if let Err(b) = gates::check_local(&local) {
            return self.wait_in(target, b, hook_retries);
        }
        if self.p.aborted.contains(&target.version) && !reboot_now {
            let b = Blocked::Hook {
                hook: "(aborted earlier; `oxtree agent reboot-now` or `unblock`)".into(),
            };
            return self.wait_in(target, b, hook_retries);
        }
        match hooks::run(
            &cfg.hooks.dir,
            "pre-reboot",
            &target.version,
            &target.payload,
            Duration::from_secs(cfg.hooks.timeout_secs),
        ) {
            Outcome::Go => {}
            Outcome::Retry { hook } if hook_retries < cfg.hooks.max_retries => {
                return self.wait_in(target, Blocked::Hook { hook }, hook_retries + 1);
            }
            Outcome::Retry { hook } | Outcome::Abort { hook, .. } => {
                // Abort: keep the staged deployment, do not reboot into it by ourselves.
                self.p.aborted.insert(target.version.clone());
                return self.wait_in(target, Blocked::Hook { hook }, hook_retries);
            }
        }
        if let Some(client) = self.fleet_lock()? {
            self.p.lock_maybe_held = true;
            self.save()?;
            self.m().fleet_lock_requests_total += 1;
            if let Err(e) = client.pre_reboot() {
                bump(&mut self.m().fleet_lock_errors_total, &e.kind);
                self.p.lock_maybe_held = false;
                return self.wait_in(target, Blocked::FleetLock(e.to_string()), hook_retries);
            }
        }
        if cfg.reboot.warn_users {
            match gates::user_sessions() {
                Err(e) => {
                    return self.wait_in(
                        target,
                        Blocked::InhibitorQuery(format!("cannot list user sessions: {e}")),
                        hook_retries,
                    )
                }
                Ok(users) if !users.is_empty() && cfg.reboot.grace_minutes > 0 => {
                    let warned = *self.p.warned_at.get_or_insert(t);
                    let at = warned + cfg.reboot.grace_minutes as i64 * 60;
                    if t < at {
                        if warned == t {
                            let msg = format!(
                                "oxtree agent: this machine reboots at {} to install update {}.",
                                ts(at),
                                target.version
                            );
                            if let Err(e) = gates::wall(&msg) {
                                tracing::warn!("agent: {e}");
                            }
                        }
                        let b = Blocked::Users {
                            until: ts(at),
                            users: users.into_iter().map(|(_, u)| u).collect(),
                        };
                        return self.wait_in(target, b, hook_retries);
                    }
                }
                Ok(_) => {}
            }
        }
        // Everything agrees: record the decision, then reboot (next step).
        self.p.seen_reboot_now = c.reboot_now;
        self.p.warned_at = None;
        if consent_file {
            let _ = std::fs::remove_file(&cfg.reboot.consent_file);
        }
        let boot_id = self.boot_id()?;
        let from = self.booted()?.payload;
        self.set(State::Rebooting {
            target,
            boot_id,
            from,
            issued_at: None,
        })?;
        Ok(Duration::ZERO)
    }

    fn rebooting_step(
        &mut self,
        target: Target,
        boot_id: String,
        from: String,
        issued_at: Option<i64>,
    ) -> Result<Duration> {
        let current = self.boot_id()?;
        if current != boot_id {
            // The machine rebooted.
            let booted = self.booted()?;
            self.p.booted_version = booted.version.clone();
            self.p.lock_maybe_held = false;
            if booted.payload == target.payload {
                self.set(State::Verifying {
                    target,
                    reason: None,
                })?;
                return Ok(Duration::ZERO);
            }
            return self.rolled_back(target, &booted);
        }
        if issued_at.is_some_and(|t| now() - t < REBOOT_REISSUE_SECS) {
            // Issued; the system is going down.
            return Ok(Duration::from_secs(30));
        }
        let cmd = &self.cfg().reboot.command;
        tracing::info!("agent: rebooting into {} ({:?})", target.version, cmd);
        self.motd(Some(format!(
            "oxtree agent: rebooting into update {}\n",
            target.version
        )));
        let st = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(std::process::Stdio::null())
            .status();
        match st {
            Ok(s) if s.success() => {
                self.m().reboots_total += 1;
                self.set(State::Rebooting {
                    target,
                    boot_id,
                    from,
                    issued_at: Some(now()),
                })?;
                Ok(Duration::from_secs(30))
            }
            other => {
                let msg = format!("reboot command {:?} failed: {other:?}", cmd);
                tracing::warn!("agent: {msg}");
                // Back to waiting: the gates run again (and give the slot back if they
                // now say no).
                self.p.lock_maybe_held = true;
                self.wait_in(target, Blocked::Hook { hook: msg }, 0)
            }
        }
    }

    fn rolled_back(&mut self, target: Target, booted: &Booted) -> Result<Duration> {
        tracing::warn!(
            "agent: rebooted into {} but {} is running: rolled back; {} is not offered again",
            target.version,
            booted.version.as_deref().unwrap_or(&booted.payload),
            target.version
        );
        self.m().rollbacks_detected_total += 1;
        self.p.denied.insert(
            target.payload.clone(),
            Denied {
                version: target.version.clone(),
                reason: format!(
                    "rolled back: rebooted into it, came back on {}",
                    booted.version.as_deref().unwrap_or(&booted.payload)
                ),
                at: now(),
            },
        );
        let keep = self.cfg().fleet_lock_url().is_some()
            && self.cfg().updates.fleet_lock.keep_slot_on_rollback;
        if !keep {
            self.unlock();
        }
        self.p.slot_kept = keep;
        self.p.rolled_back = Some(target.clone());
        self.motd(Some(format!(
            "oxtree agent: update {} failed and was rolled back; it will not be installed again{}\n",
            target.version,
            if keep { " (this machine keeps its fleet lock slot: `oxtree agent unblock` releases it)" } else { "" }
        )));
        self.set(State::RolledBack {
            target,
            lock_kept: keep,
        })?;
        Ok(Duration::ZERO)
    }

    fn verify_step(&mut self, target: Target) -> Result<Duration> {
        let booted = self.booted()?;
        if booted.payload != target.payload {
            return self.rolled_back(target, &booted);
        }
        let wait = |this: &mut Agent, reason: String, secs: u64| -> Result<Duration> {
            this.set(State::Verifying {
                target: target.clone(),
                reason: Some(reason),
            })?;
            Ok(Duration::from_secs(secs.max(1)))
        };
        if booted.deployment.tries.is_some() {
            return wait(
                self,
                "waiting for `oxtree admin boot-complete` to confirm the boot".into(),
                30,
            );
        }
        let cfg = self.cfg().clone();
        match hooks::run(
            &cfg.hooks.dir,
            "post-boot",
            &target.version,
            &target.payload,
            Duration::from_secs(cfg.hooks.timeout_secs),
        ) {
            Outcome::Go => {}
            Outcome::Retry { hook } => {
                return wait(
                    self,
                    format!("post-boot hook {hook} asked to retry later"),
                    cfg.hooks.retry_secs,
                )
            }
            Outcome::Abort { hook, why } => {
                // The fleet lock stays held: this machine's update is not healthy.
                return wait(
                    self,
                    format!("post-boot hook {hook} failed ({why}): keeping the fleet lock slot"),
                    cfg.agent.steady_interval_secs,
                );
            }
        }
        if !self.unlock() {
            return wait(
                self,
                "could not release the fleet lock; retrying".into(),
                cfg.agent.retry_secs,
            );
        }
        self.p.lock_maybe_held = false;
        self.p.slot_kept = false;
        self.p.rolled_back = None;
        self.p.last_check = None;
        self.motd(None);
        self.set(State::Steady)?;
        Ok(Duration::ZERO)
    }
}

fn platform_from_cmdline() -> String {
    std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .find_map(|a| a.strip_prefix("ignition.platform.id=").map(str::to_string))
        })
        .unwrap_or_else(|| "metal".into())
}

/// The sockets of a running agent.
pub fn control_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

pub fn metrics_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("metrics.promsock")
}

/// Wake a running agent (after `check-now`, `reboot-now`, …). `Ok(false)`: none runs.
pub fn poke(run_dir: &Path) -> Result<bool> {
    use std::io::{Read, Write};
    let p = control_socket(run_dir);
    let mut s = match std::os::unix::net::UnixStream::connect(&p) {
        Ok(s) => s,
        Err(_) => return Ok(false),
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .ctx("configure", &p)?;
    s.write_all(b"wake\n").ctx("write", &p)?;
    let mut buf = [0u8; 16];
    let _ = s.read(&mut buf);
    Ok(true)
}

fn bind(p: &Path, mode: u32) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(p);
    let l = std::os::unix::net::UnixListener::bind(p).ctx("bind", p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).ctx("chmod", p)?;
    Ok(l)
}

/// Run the agent until killed: control socket (wake-ups), metrics socket, and the loop
/// that calls [`Agent::step`]. Idle between steps it blocks on a channel, using no CPU.
pub fn run_daemon(loaded: Loaded, opts: Options) -> Result<()> {
    use std::io::{BufRead, Write};
    for w in &loaded.warnings {
        tracing::warn!("agent config: {w}");
    }
    let run_dir = loaded.config.agent.run_dir.clone();
    std::fs::create_dir_all(&run_dir).ctx("create directory", &run_dir)?;
    // One agent per machine: a second one would drive the same state machine.
    let state_dir = loaded.config.agent.state_dir.clone();
    std::fs::create_dir_all(&state_dir).ctx("create directory", &state_dir)?;
    let lockp = state_dir.join("agent.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lockp)
        .ctx("open", &lockp)?;
    if !crate::fsutil::ofd_lock(&lock, true, false).ctx("lock", &lockp)? {
        return Err(Error::Other(format!(
            "another oxtree agent is running (it holds {})",
            lockp.display()
        )));
    }
    let mut agent = Agent::new(loaded, opts)?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let control = bind(&control_socket(&run_dir), 0o600)?;
    std::thread::spawn(move || {
        for conn in control.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            let _ = std::io::BufReader::new(&conn).read_line(&mut line);
            let _ = tx.send(());
            let _ = conn.write_all(b"ok\n");
        }
    });
    let metrics_l = bind(&metrics_socket(&run_dir), 0o644)?;
    let metrics = agent.metrics.clone();
    std::thread::spawn(move || {
        for conn in metrics_l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let text = metrics.lock().map(|m| m.render()).unwrap_or_default();
            let _ = conn.write_all(text.as_bytes());
        }
    });
    agent.resume()?;
    loop {
        let wait = match agent.step() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("agent: {e}");
                agent.p.last_error = Some(e.to_string());
                let _ = agent.save();
                Duration::from_secs(agent.cfg().agent.retry_secs.max(1))
            }
        };
        if wait.is_zero() {
            continue;
        }
        // Up to 10 % jitter on long waits, so a fleet does not poll in lockstep.
        let jitter = if wait.as_secs() >= 60 {
            Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 10).max(1))
        } else {
            Duration::ZERO
        };
        if wait >= Duration::from_secs(60) {
            shed_idle_memory();
        }
        match rx.recv_timeout(wait + jitter) {
            Ok(()) => while rx.try_recv().is_ok() {},
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Between checks the agent runs no code for minutes, yet keeps mapped every page of the
/// binary it ever ran — the CLI's argument tables, the HTTP client, TOML and JSON parsing:
/// about 7 MiB of a 13 MiB code segment, all counted in its RSS. Before a long wait it asks
/// the kernel to unmap its executable's code pages (`MADV_DONTNEED` on the read-only,
/// never-written code mapping: the pages stay in the page cache, reclaimable, and the next
/// check faults back in, unchanged from the file, only what it runs; `MADV_PAGEOUT` would
/// evict them too but the kernel declines it for a running executable) and returns freed
/// heap to the system (`malloc_trim`). bench/agent-idle.sh measures the effect.
pub(crate) fn shed_idle_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = line.find('/').map(|i| &line[i..]);
        if perms != "r-xp" || path != exe.to_str() {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: advice on this process's own executable code mapping (read-only, never
        // written, backed by the file): the kernel only drops resident pages, which fault
        // back in unchanged from the file on the next use. A failure is harmless.
        unsafe {
            libc::madvise(
                a as *mut libc::c_void,
                b.saturating_sub(a),
                libc::MADV_DONTNEED,
            );
        }
    }
}

#[cfg(test)]
mod shed_tests {
    /// The code still runs after its pages were dropped (they fault back in from the file),
    /// again and again. (What it saves is measured by bench/agent-idle.sh on the real agent:
    /// a test's own RSS readings would run, and so map back, the very code they measure.)
    #[test]
    fn code_runs_after_its_pages_are_dropped() {
        for round in 0..3u64 {
            super::shed_idle_memory();
            let v: Vec<u64> = (0..1000).map(|i| i * 3 + round).collect();
            assert_eq!(v.iter().sum::<u64>(), 1_498_500 + 1000 * round);
            assert!(serde_json::to_string(&v).is_ok_and(|j| j.starts_with('[')));
        }
    }
}
