//! The decision engine: given a graph, the booted commit, the clock and this machine's
//! wariness, which release (if any) to update to. One engine for both sources: a static
//! graph is throttled and pruned here, a Cincinnati server's answer (already throttled by
//! the server for the wariness we sent) is only pruned.
//!
//! As Zincati's `find_update`, and stricter: targets are the edges out of the booted node;
//! a dead end's edges are ignored (and reported); releases this machine rolled back from,
//! versions the operator skipped and payloads that other deployments already failed with
//! are never offered; the winner is the highest by (age index, version, payload); anything
//! not newer than the booted release is refused unless downgrades are allowed.

use super::graph::{Graph, Node};
use super::rollout;
use crate::sysroot::bls::version_cmp;
use std::cmp::Ordering;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Policy {
    /// Seconds since the epoch (injected: the tests drive the clock).
    pub now: i64,
    pub wariness: f64,
    pub allow_downgrade: bool,
    /// Apply rollout throttling here (static graphs), or trust the server (Cincinnati).
    pub throttle: bool,
    /// Payloads (commit checksums) never to offer: rolled back from, or failed to boot.
    pub denied_payloads: BTreeSet<String>,
    /// Versions the operator skipped (`oxtree agent skip`).
    pub skipped_versions: BTreeSet<String>,
    /// The highest version to update to (`[updates] max_version`), inclusive.
    pub max_version: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            now: 0,
            wariness: 1.0,
            allow_downgrade: false,
            throttle: true,
            denied_payloads: BTreeSet::new(),
            skipped_versions: BTreeSet::new(),
            max_version: None,
        }
    }
}

/// A release the engine chose, or considered and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub payload: String,
    pub age_index: Option<u64>,
}

impl Release {
    fn of(n: &Node) -> Release {
        Release {
            version: n.version.clone(),
            payload: n.payload.clone(),
            age_index: n.age_index(),
        }
    }

    /// Zincati's order: age index, then version, then payload.
    fn cmp_key(&self, other: &Release) -> Ordering {
        self.age_index
            .cmp(&other.age_index)
            .then_with(|| version_cmp(&self.version, &other.version))
            .then_with(|| self.payload.cmp(&other.payload))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not yet offered to this machine by the phased rollout.
    Throttled,
    RolledBack,
    Skipped,
    Downgrade,
    AboveMaxVersion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The booted release as the graph knows it (`None`: not in the graph).
    pub booted: Option<Release>,
    /// `Some(reason)` when the booted release is a dead end.
    pub deadend: Option<String>,
    pub target: Option<Release>,
    /// Targets considered and left out, with why.
    pub ignored: Vec<(Release, Ignored)>,
}

/// Choose the update out of the booted commit `booted_payload` (lowercase hex).
pub fn decide(graph: &Graph, booted_payload: &str, policy: &Policy) -> Decision {
    let mut d = Decision {
        booted: None,
        deadend: None,
        target: None,
        ignored: Vec::new(),
    };
    let Some((bi, bnode)) = graph
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.payload == booted_payload)
    else {
        return d;
    };
    let booted = Release::of(bnode);
    d.booted = Some(booted.clone());
    if let Some(reason) = bnode.deadend() {
        d.deadend = Some(reason);
        return d;
    }
    let targets: BTreeSet<usize> = graph
        .edges
        .iter()
        .filter(|[from, to]| *from == bi && *to != bi)
        .map(|[_, to]| *to)
        .collect();
    let mut best: Option<Release> = None;
    for t in targets {
        let Some(node) = graph.nodes.get(t) else {
            continue;
        };
        let rel = Release::of(node);
        let why = if policy.denied_payloads.contains(&node.payload) {
            Some(Ignored::RolledBack)
        } else if policy.skipped_versions.contains(&node.version) {
            Some(Ignored::Skipped)
        } else if policy
            .max_version
            .as_deref()
            .is_some_and(|m| version_cmp(&node.version, m) == Ordering::Greater)
        {
            Some(Ignored::AboveMaxVersion)
        } else if policy.throttle
            && !rollout::offered(node.rollout().as_ref(), policy.wariness, policy.now)
        {
            Some(Ignored::Throttled)
        } else if !policy.allow_downgrade && rel.cmp_key(&booted) != Ordering::Greater {
            Some(Ignored::Downgrade)
        } else {
            None
        };
        match why {
            Some(w) => d.ignored.push((rel, w)),
            None => {
                let better = match &best {
                    None => true,
                    Some(b) => rel.cmp_key(b) == Ordering::Greater,
                };
                if better {
                    best = Some(rel);
                }
            }
        }
    }
    d.target = best;
    d
}
