//! Prometheus metrics in the text format, served on a unix socket (as Zincati's
//! `/run/zincati/public/metrics.promsock`: connect, read, the server closes). Names follow
//! Zincati's with an `oxtree_agent_` prefix; counters live for the daemon's lifetime.

use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub state: String,
    pub latest_state_change_timestamp: i64,
    pub last_refresh_timestamp: i64,
    pub updates_enabled: bool,
    pub allow_downgrade: bool,
    pub graph_nodes: usize,
    pub graph_edges: usize,
    pub booted_release_is_deadend: bool,
    pub rollout_wariness: f64,
    pub update_checks_total: u64,
    pub update_checks_errors_total: BTreeMap<String, u64>,
    pub graph_rejected_total: BTreeMap<String, u64>,
    pub ignored_update_targets: u64,
    pub stage_attempts_total: u64,
    pub stage_failures_total: u64,
    pub reboot_blocked_total: BTreeMap<String, u64>,
    pub reboots_total: u64,
    pub fleet_lock_requests_total: u64,
    pub fleet_lock_errors_total: BTreeMap<String, u64>,
    pub rollbacks_detected_total: u64,
    pub config_ignored_files: usize,
    pub denied_releases: usize,
}

pub fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    *m.entry(k.to_string()).or_default() += 1;
}

const STATES: [&str; 10] = [
    "steady",
    "checking",
    "available",
    "staged",
    "waiting",
    "held",
    "rebooting",
    "verifying",
    "rolled-back",
    "dead-end",
];

impl Metrics {
    pub fn render(&self) -> String {
        let mut o = String::new();
        let mut g = |name: &str, help: &str, v: String| {
            let _ = writeln!(o, "# HELP oxtree_agent_{name} {help}\n# TYPE oxtree_agent_{name} gauge\noxtree_agent_{name} {v}");
        };
        g(
            "latest_state_change_timestamp",
            "When the state last changed.",
            self.latest_state_change_timestamp.to_string(),
        );
        g(
            "last_refresh_timestamp",
            "When the graph was last fetched and accepted.",
            self.last_refresh_timestamp.to_string(),
        );
        g(
            "updates_enabled",
            "Whether updates are enabled.",
            u8::from(self.updates_enabled).to_string(),
        );
        g(
            "updates_allow_downgrade",
            "Whether downgrades are allowed.",
            u8::from(self.allow_downgrade).to_string(),
        );
        g(
            "graph_nodes_count",
            "Releases in the last graph.",
            self.graph_nodes.to_string(),
        );
        g(
            "graph_edges_count",
            "Update edges in the last graph.",
            self.graph_edges.to_string(),
        );
        g(
            "booted_release_is_deadend",
            "The booted release is a dead end.",
            u8::from(self.booted_release_is_deadend).to_string(),
        );
        g(
            "rollout_wariness",
            "This machine's rollout wariness.",
            self.rollout_wariness.to_string(),
        );
        g(
            "ignored_update_targets",
            "Targets left out at the last check.",
            self.ignored_update_targets.to_string(),
        );
        g(
            "config_ignored_files",
            "Files in the drop-in directories that are not read.",
            self.config_ignored_files.to_string(),
        );
        g(
            "denied_releases",
            "Releases never offered again (rolled back or failed).",
            self.denied_releases.to_string(),
        );
        let _ = writeln!(
            o,
            "# HELP oxtree_agent_state The current state.\n# TYPE oxtree_agent_state gauge"
        );
        for s in STATES {
            let _ = writeln!(
                o,
                "oxtree_agent_state{{state=\"{s}\"}} {}",
                u8::from(self.state == s)
            );
        }
        let mut c = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP oxtree_agent_{name} {help}\n# TYPE oxtree_agent_{name} counter\noxtree_agent_{name} {v}");
        };
        c(
            "update_checks_total",
            "Update checks.",
            self.update_checks_total,
        );
        c(
            "stage_attempts_total",
            "Staging attempts.",
            self.stage_attempts_total,
        );
        c(
            "stage_failures_total",
            "Failed staging attempts.",
            self.stage_failures_total,
        );
        c("reboots_total", "Reboots issued.", self.reboots_total);
        c(
            "fleet_lock_requests_total",
            "FleetLock requests.",
            self.fleet_lock_requests_total,
        );
        c(
            "rollbacks_detected_total",
            "Boots that came back on another deployment.",
            self.rollbacks_detected_total,
        );
        for (name, help, label, map) in [
            (
                "update_checks_errors_total",
                "Failed update checks.",
                "kind",
                &self.update_checks_errors_total,
            ),
            (
                "graph_rejected_total",
                "Graphs refused.",
                "reason",
                &self.graph_rejected_total,
            ),
            (
                "reboot_blocked_total",
                "Reboots held back, by gate.",
                "gate",
                &self.reboot_blocked_total,
            ),
            (
                "fleet_lock_errors_total",
                "FleetLock errors.",
                "kind",
                &self.fleet_lock_errors_total,
            ),
        ] {
            let _ = writeln!(
                o,
                "# HELP oxtree_agent_{name} {help}\n# TYPE oxtree_agent_{name} counter"
            );
            for (k, v) in map {
                let _ = writeln!(o, "oxtree_agent_{name}{{{label}=\"{k}\"}} {v}");
            }
        }
        o
    }
}
