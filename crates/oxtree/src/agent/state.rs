//! What the agent persists, and what the operator's commands leave for it.
//!
//! `state.json` (written only by the daemon, atomically: temp file, fsync, rename) holds the
//! state machine's state and what must survive a reboot or a kill: the graph serial last
//! accepted per stream (replay protection), the releases this machine must never be
//! offered again, and which operator requests it already acted on. `controls.json`
//! (written only by `oxtree agent hold/skip/unblock/reboot-now/check-now`, under a lock)
//! holds the operator's wishes; requests are counters, so the daemon acts on each exactly
//! once by remembering the last value it saw. Two files, one writer each: no lost update.

use super::graph::Seen;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A release chosen from the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub version: String,
    /// Commit checksum (lowercase hex).
    pub payload: String,
}

/// The documented states (the daemon's transition function is `Agent::step`).
///
/// steady → checking → available → staged → waiting (a gate says no; `held` when it is the
/// operator's hold) → rebooting → verifying → steady; or checking → dead-end; or
/// rebooting → rolled-back (the machine came back on another deployment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Up to date (or waiting for the next check).
    Steady,
    /// Fetching the graph and choosing (persisted so a kill here simply checks again).
    Checking,
    /// An update was chosen; staging it (retried with back-off).
    Available {
        target: Target,
        attempts: u32,
        retry_at: i64,
        #[serde(default)]
        last_error: Option<String>,
    },
    /// Staged: the deployment is prepared and switches at the next reboot.
    Staged { target: Target },
    /// Staged, and a reboot gate says not yet.
    Waiting {
        target: Target,
        gate: String,
        reason: String,
        #[serde(default)]
        hook_retries: u32,
    },
    /// The reboot was decided (and the fleet lock taken); `issued_at` once the reboot
    /// command ran. `boot_id` tells after a restart whether the reboot happened.
    Rebooting {
        target: Target,
        boot_id: String,
        from: String,
        #[serde(default)]
        issued_at: Option<i64>,
    },
    /// Booted into the update; releasing the fleet lock once the boot is known good.
    Verifying {
        target: Target,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The machine came back on another deployment: the update failed and is never
    /// offered again (until the graph changes its payload or `oxtree agent unblock`).
    RolledBack { target: Target, lock_kept: bool },
    /// The booted release is a dead end: no automatic update out of it.
    DeadEnd { reason: String },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Steady => "steady",
            State::Checking => "checking",
            State::Available { .. } => "available",
            State::Staged { .. } => "staged",
            State::Waiting { gate, .. } if gate == "hold" => "held",
            State::Waiting { .. } => "waiting",
            State::Rebooting { .. } => "rebooting",
            State::Verifying { .. } => "verifying",
            State::RolledBack { .. } => "rolled-back",
            State::DeadEnd { .. } => "dead-end",
        }
    }

    pub fn target(&self) -> Option<&Target> {
        match self {
            State::Available { target, .. }
            | State::Staged { target }
            | State::Waiting { target, .. }
            | State::Rebooting { target, .. }
            | State::Verifying { target, .. }
            | State::RolledBack { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// Why a payload is never offered again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    pub version: String,
    pub reason: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub state: Option<State>,
    /// When the state last changed (seconds since the epoch).
    pub since: i64,
    pub last_check: Option<i64>,
    pub last_error: Option<String>,
    /// The booted release when last seen (for status).
    pub booted_version: Option<String>,
    pub graph_seen: BTreeMap<String, Seen>,
    /// Payload → why it is never offered again.
    pub denied: BTreeMap<String, Denied>,
    /// Versions a pre-stage or pre-reboot hook aborted (like `skip`, until `unblock`).
    pub aborted: BTreeSet<String>,
    /// The last value of each control counter acted on.
    pub seen_reboot_now: u64,
    pub seen_unblock: u64,
    pub seen_check_now: u64,
    /// Set before asking for the fleet lock and cleared once it is known not to be held:
    /// a kill in between must not leak the slot.
    pub lock_maybe_held: bool,
    /// When logged-in users were warned of the reboot.
    pub warned_at: Option<i64>,
    /// The last update this machine rolled back from (reported until `unblock` or a
    /// later update boots healthy).
    pub rolled_back: Option<Target>,
    /// The fleet lock slot is kept on purpose after that rollback (a halted rollout).
    pub slot_kept: bool,
}

impl Persisted {
    pub fn state(&self) -> State {
        self.state.clone().unwrap_or(State::Steady)
    }
}

/// The operator's wishes (written by the CLI).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Controls {
    pub hold_until: Option<i64>,
    pub skipped: BTreeSet<String>,
    pub reboot_now: u64,
    pub unblock: u64,
    pub check_now: u64,
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(p: &Path) -> Result<T> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config {
            path: p.to_path_buf(),
            msg: format!("invalid JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).ctx("read", p),
    }
}

fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).ctx("create directory", d)?;
    }
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Other(e.to_string()))?;
    bytes.push(b'\n');
    crate::fsutil::write_atomic(p, &bytes, true)
}

pub fn load_state(dir: &Path) -> Result<Persisted> {
    read_json(&dir.join("state.json"))
}

pub fn save_state(dir: &Path, s: &Persisted) -> Result<()> {
    write_json(&dir.join("state.json"), s)
}

pub fn load_controls(dir: &Path) -> Result<Controls> {
    read_json(&dir.join("controls.json"))
}

/// Change the controls under an exclusive lock (two operators at once lose nothing).
pub fn update_controls(dir: &Path, f: impl FnOnce(&mut Controls)) -> Result<Controls> {
    std::fs::create_dir_all(dir).ctx("create directory", dir)?;
    let lockp = dir.join("controls.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lockp)
        .ctx("open", &lockp)?;
    crate::fsutil::ofd_lock(&lock, true, true).ctx("lock", &lockp)?;
    let mut c: Controls = load_controls(dir)?;
    f(&mut c);
    write_json(&dir.join("controls.json"), &c)?;
    Ok(c)
}
