//! The agent's configuration: TOML drop-ins read from `/usr/lib/oxtree/agent.d/`,
//! `/etc/oxtree/agent.d/` and `/run/oxtree/agent.d/` (Zincati's scheme under oxtree's
//! names). Files are merged in lexicographic order of their names; a file in a later
//! directory replaces one of the same name in an earlier one, so `/etc` overrides what the
//! OS ships and `/run` overrides both for this boot; a symlink to `/dev/null` masks a file;
//! later keys win, except arrays of tables (`[[updates.periodic.window]]`), which add up.
//!
//! Anything in those directories that is not a `*.toml` file is reported loudly (a
//! warning, a metric, `status` and `config --dump`): a Zincati user's `.yaml` drop-in was
//! silently ignored and the host rebooted (coreos/zincati#1160). Every fragment is checked
//! on its own, so an unknown key or a bad value names its file.

use super::windows::PeriodicConfig;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_DIRS: [&str; 3] = [
    "/usr/lib/oxtree/agent.d",
    "/etc/oxtree/agent.d",
    "/run/oxtree/agent.d",
];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentSection,
    pub identity: Identity,
    pub cincinnati: Cincinnati,
    pub graph: GraphSection,
    pub updates: Updates,
    pub reboot: Reboot,
    pub preflight: Preflight,
    pub hooks: Hooks,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// Seconds between update checks in steady state (Zincati's `[agent.timing]`).
    pub steady_interval_secs: u64,
    /// The persisted state (`state.json`) and the operator's controls (`controls.json`).
    pub state_dir: PathBuf,
    /// The control and metrics sockets.
    pub run_dir: PathBuf,
    pub sysroot: PathBuf,
    /// Where the current boot's id is read (a reboot changes it).
    pub boot_id_path: PathBuf,
    pub machine_id_path: PathBuf,
    /// Failed staging attempts before an update is abandoned until the next check.
    pub max_attempts: u32,
    /// First retry delay; doubles with each failure (capped at the steady interval).
    pub retry_secs: u64,
    /// Network timeout for the graph, FleetLock and Cincinnati requests.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    pub group: String,
    /// Default: the app-specific id derived from /etc/machine-id.
    pub node_uuid: Option<String>,
    /// 0.0 (eager, a canary) … 1.0 (cautious); default derived from the node id.
    pub rollout_wariness: Option<f64>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cincinnati {
    /// Use a Cincinnati server instead of the static graph.
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSection {
    /// The static graph; default `{remote url}/graph/{stream}.json`.
    pub url: Option<String>,
    /// Extra base64 ed25519 keys (the remote's `verification-ed25519-*` keys always count).
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Updates {
    pub enabled: bool,
    pub allow_downgrade: bool,
    /// `immediate`, `periodic` or `fleet_lock`.
    pub strategy: String,
    /// Stage, then reboot only after `oxtree agent reboot-now` or the consent file.
    pub consent: bool,
    /// Never update past this version (a fleet-wide pin).
    pub max_version: Option<String>,
    pub fleet_lock: FleetLockSection,
    pub periodic: PeriodicConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetLockSection {
    pub base_url: Option<String>,
    /// A machine that rolled back keeps its slot, so a bad canary halts the rollout
    /// (Zincati releases it on any healthy boot). `oxtree agent unblock` releases it.
    pub keep_slot_on_rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reboot {
    pub command: Vec<String>,
    pub respect_inhibitors: bool,
    pub warn_users: bool,
    /// Minutes between warning logged-in users and rebooting.
    pub grace_minutes: u64,
    pub motd_path: PathBuf,
    /// Consent file for `[updates] consent` (its existence is consent; removed when used).
    pub consent_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preflight {
    /// Free space /boot must keep beyond a copy of the booted kernel and initramfs.
    pub min_free_boot_mib: u64,
    /// Free space the repository's filesystem must have before a pull.
    pub min_free_repo_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    /// Holds `pre-stage.d/`, `pre-reboot.d/`, `post-boot.d/`.
    pub dir: PathBuf,
    pub timeout_secs: u64,
    /// Delay after a hook asked to retry later (exit 21).
    pub retry_secs: u64,
    /// Retries before a hook's "later" counts as an abort.
    pub max_retries: u32,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            steady_interval_secs: 300,
            state_dir: "/var/lib/oxtree/agent".into(),
            run_dir: "/run/oxtree/agent".into(),
            sysroot: "/".into(),
            boot_id_path: "/proc/sys/kernel/random/boot_id".into(),
            machine_id_path: "/etc/machine-id".into(),
            max_attempts: 12,
            retry_secs: 30,
            timeout_secs: 60,
        }
    }
}
impl Default for Identity {
    fn default() -> Self {
        Identity {
            group: "default".into(),
            node_uuid: None,
            rollout_wariness: None,
            platform: None,
        }
    }
}
impl Default for Updates {
    fn default() -> Self {
        Updates {
            enabled: true,
            allow_downgrade: false,
            strategy: "immediate".into(),
            consent: false,
            max_version: None,
            fleet_lock: FleetLockSection::default(),
            periodic: PeriodicConfig::default(),
        }
    }
}
impl Default for FleetLockSection {
    fn default() -> Self {
        FleetLockSection {
            base_url: None,
            keep_slot_on_rollback: true,
        }
    }
}
impl Default for Reboot {
    fn default() -> Self {
        Reboot {
            command: vec!["systemctl".into(), "reboot".into()],
            respect_inhibitors: true,
            warn_users: true,
            grace_minutes: 10,
            motd_path: "/run/motd.d/85-oxtree-agent.motd".into(),
            consent_file: "/run/oxtree/agent/reboot-consent".into(),
        }
    }
}
impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            min_free_boot_mib: 16,
            min_free_repo_mib: 256,
        }
    }
}
impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            dir: "/etc/oxtree/agent".into(),
            timeout_secs: 600,
            retry_secs: 300,
            max_retries: 12,
        }
    }
}

impl Config {
    /// Semantic checks serde cannot do.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.updates.strategy.as_str() {
            "immediate" => {}
            "periodic" => {
                super::windows::Schedule::parse(&self.updates.periodic)
                    .map_err(|e| e.to_string())?;
            }
            "fleet_lock" => {
                if self.updates.fleet_lock.base_url.is_none() {
                    return Err(
                        "strategy \"fleet_lock\" needs [updates.fleet_lock] base_url".into(),
                    );
                }
            }
            s => {
                return Err(format!(
                "[updates] strategy {s:?}: expected \"immediate\", \"periodic\" or \"fleet_lock\""
            ))
            }
        }
        if let Some(w) = self.identity.rollout_wariness {
            if !(0.0..=1.0).contains(&w) {
                return Err(format!("[identity] rollout_wariness {w} is not in 0.0…1.0"));
            }
        }
        if !crate::fleetlock::valid_group(&self.identity.group) {
            return Err(format!(
                "[identity] group {:?} must match ^[a-zA-Z0-9.-]+$",
                self.identity.group
            ));
        }
        if self.reboot.command.is_empty() {
            return Err("[reboot] command is empty".into());
        }
        Ok(())
    }

    /// Maintenance windows apply with `periodic`, and also with `fleet_lock` when some are
    /// configured (Zincati allows only one strategy; combining both was a common request).
    pub fn windows(&self) -> Result<Option<super::windows::Schedule>> {
        let use_windows = self.updates.strategy == "periodic"
            || (self.updates.strategy == "fleet_lock" && !self.updates.periodic.window.is_empty());
        use_windows
            .then(|| super::windows::Schedule::parse(&self.updates.periodic))
            .transpose()
    }

    /// The FleetLock server, with `fleet_lock`, or with `periodic` when one is configured.
    pub fn fleet_lock_url(&self) -> Option<&str> {
        match self.updates.strategy.as_str() {
            "fleet_lock" | "periodic" => self.updates.fleet_lock.base_url.as_deref(),
            _ => None,
        }
    }
}

/// The merged configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Dotted key → the file that set it (keys not listed have their default).
    pub sources: BTreeMap<String, PathBuf>,
    /// Files read, in merge order.
    pub files: Vec<PathBuf>,
    /// Files masked by a /dev/null symlink.
    pub masked: Vec<PathBuf>,
    /// Loud warnings: files that were ignored and why.
    pub warnings: Vec<String>,
}

fn is_dev_null(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::read_link(p).is_ok_and(|t| t == Path::new("/dev/null"))
        || std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    prefix: &str,
    file: &Path,
    sources: &mut BTreeMap<String, PathBuf>,
) {
    for (k, v) in from {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
                merge(a, b, &key, file, sources)
            }
            (Some(toml::Value::Array(a)), toml::Value::Array(b))
                if b.iter().all(toml::Value::is_table) && a.iter().all(toml::Value::is_table) =>
            {
                for item in b {
                    record(&format!("{key}[{}]", a.len()), &item, file, sources);
                    a.push(item);
                }
            }
            (_, v) => {
                record(&key, &v, file, sources);
                into.insert(k, v);
            }
        }
    }
}

fn record(key: &str, v: &toml::Value, file: &Path, sources: &mut BTreeMap<String, PathBuf>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                record(&format!("{key}.{k}"), v, file, sources);
            }
        }
        toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
            for (i, item) in a.iter().enumerate() {
                record(&format!("{key}[{i}]"), item, file, sources);
            }
        }
        _ => {
            sources.insert(key.to_string(), file.to_path_buf());
        }
    }
}

/// Read the drop-ins of `dirs` (in precedence order, lowest first).
pub fn load(dirs: &[PathBuf]) -> Result<Loaded> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut warnings = Vec::new();
    for d in dirs {
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx("read directory", d),
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".toml") {
                by_name.insert(name, p);
            } else if p.is_dir() && !is_dev_null(&p) {
                warnings.push(format!(
                    "ignoring directory {}: only *.toml files are read from {}",
                    p.display(),
                    d.display()
                ));
            } else {
                warnings.push(format!(
                    "IGNORED {}: not a *.toml file, so none of its settings apply (rename it to .toml)",
                    p.display()
                ));
            }
        }
    }
    let mut table = toml::Table::new();
    let mut sources = BTreeMap::new();
    let (mut files, mut masked) = (Vec::new(), Vec::new());
    for (_, p) in by_name {
        if is_dev_null(&p) {
            masked.push(p);
            continue;
        }
        let text = std::fs::read_to_string(&p).ctx("read", &p)?;
        let frag: toml::Table = toml::from_str(&text).map_err(|e| Error::Config {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        // Each fragment must make sense on its own: errors name their file.
        Config::deserialize(toml::Value::Table(frag.clone())).map_err(|e| Error::Config {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        merge(&mut table, frag, "", &p, &mut sources);
        files.push(p);
    }
    let config = Config::deserialize(toml::Value::Table(table)).map_err(|e| Error::Config {
        path: files.last().cloned().unwrap_or_default(),
        msg: e.to_string(),
    })?;
    config.validate().map_err(|msg| Error::Config {
        path: files
            .last()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("(defaults)")),
        msg,
    })?;
    Ok(Loaded {
        config,
        sources,
        files,
        masked,
        warnings,
    })
}

impl Loaded {
    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.config).unwrap_or_default()
    }

    /// Every effective key as `key = value`, with the file that set it (or `default`).
    pub fn dump(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let v =
            toml::Value::try_from(&self.config).unwrap_or(toml::Value::Table(toml::Table::new()));
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
                    for (i, item) in a.iter().enumerate() {
                        walk(&format!("{prefix}[{i}]"), item, out);
                    }
                }
                _ => out.push((prefix.to_string(), v.clone())),
            }
        }
        let mut flat = Vec::new();
        walk("", &v, &mut flat);
        for (k, v) in flat {
            let src = self
                .sources
                .get(&k)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "default".into());
            out.push((k, v.to_string(), src));
        }
        out
    }
}
