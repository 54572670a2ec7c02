//! The update graph: which releases exist on a stream and which updates between them are
//! allowed. The JSON is Cincinnati's shape (`nodes` with `version`, `payload` = the commit
//! checksum and string `metadata`; `edges` as `[from, to]` index pairs), so one decision
//! engine reads both a Cincinnati server's answer and the static file `oxtree graph` writes.
//! Per-release metadata uses Fedora CoreOS's keys verbatim (age index, barrier, dead-end,
//! rollout), so an existing FCOS-style Cincinnati deployment needs no translation.
//!
//! The static file adds three top-level fields Cincinnati does not have — `stream`,
//! `serial` and `expires` — and is signed: `FILE.sig` beside it holds ed25519 signatures
//! over the file's exact bytes, in the format ostree uses for `summary.sig` (an `a{sv}`
//! with `ostree.sign.ed25519` → `aay`), made with the same keys as the commits. Signing the
//! bytes rather than a re-serialisation means there is no canonical-JSON question.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// FCOS node metadata keys (fedora-coreos-cincinnati commons/src/metadata.rs).
pub const AGE_INDEX: &str = "org.fedoraproject.coreos.releases.age_index";
pub const SCHEME: &str = "org.fedoraproject.coreos.scheme";
pub const BARRIER: &str = "org.fedoraproject.coreos.updates.barrier";
pub const BARRIER_REASON: &str = "org.fedoraproject.coreos.updates.barrier_reason";
pub const DEADEND: &str = "org.fedoraproject.coreos.updates.deadend";
pub const DEADEND_REASON: &str = "org.fedoraproject.coreos.updates.deadend_reason";
pub const ROLLOUT: &str = "org.fedoraproject.coreos.updates.rollout";
pub const START_EPOCH: &str = "org.fedoraproject.coreos.updates.start_epoch";
pub const START_VALUE: &str = "org.fedoraproject.coreos.updates.start_value";
pub const DURATION: &str = "org.fedoraproject.coreos.updates.duration_minutes";

/// Larger graphs are refused before parsing (a hostile or broken server).
pub const MAX_GRAPH_SIZE: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub version: String,
    /// The commit checksum (scheme `checksum`, the only one oxtree deploys).
    pub payload: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Graph {
    /// The stream (a ref such as `os/x86_64/stable`) the graph is for; part of the signed
    /// bytes so a graph cannot be replayed onto another stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Increases with every signed edition: a lower one than already seen is a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// RFC 3339 instant after which the graph is stale (a freeze attack keeps serving an old
    /// graph to hold machines on a vulnerable release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub nodes: Vec<Node>,
    pub edges: Vec<[usize; 2]>,
}

/// The rollout schedule of a release (FCOS `rollout` in `updates/<stream>.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollout {
    pub start_epoch: i64,
    /// Fraction of the fleet (0.0–1.0) offered the release at `start_epoch`.
    pub start_value: f64,
    /// Minutes from `start_value` to the whole fleet; `None` = stays at `start_value`.
    pub duration_minutes: Option<u64>,
}

impl Node {
    pub fn age_index(&self) -> Option<u64> {
        self.metadata.get(AGE_INDEX).and_then(|v| v.parse().ok())
    }

    fn flag(&self, key: &str) -> bool {
        self.metadata.get(key).is_some_and(|v| v == "true")
    }

    pub fn is_barrier(&self) -> bool {
        self.flag(BARRIER)
    }

    /// `Some(reason)` when the release is a dead end (no automatic update out of it).
    pub fn deadend(&self) -> Option<String> {
        self.flag(DEADEND).then(|| {
            self.metadata
                .get(DEADEND_REASON)
                .cloned()
                .unwrap_or_else(|| "no reason given".into())
        })
    }

    pub fn rollout(&self) -> Option<Rollout> {
        if !self.flag(ROLLOUT) {
            return None;
        }
        Some(Rollout {
            start_epoch: self
                .metadata
                .get(START_EPOCH)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            start_value: self
                .metadata
                .get(START_VALUE)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .unwrap_or(0.0)
                .clamp(0.0, 1.0),
            duration_minutes: self
                .metadata
                .get(DURATION)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|d| d.max(1)),
        })
    }

    pub fn set_rollout(&mut self, r: Option<Rollout>) {
        for k in [ROLLOUT, START_EPOCH, START_VALUE, DURATION] {
            self.metadata.remove(k);
        }
        if let Some(r) = r {
            self.metadata.insert(ROLLOUT.into(), "true".into());
            self.metadata
                .insert(START_EPOCH.into(), r.start_epoch.to_string());
            self.metadata
                .insert(START_VALUE.into(), r.start_value.to_string());
            if let Some(d) = r.duration_minutes {
                self.metadata.insert(DURATION.into(), d.to_string());
            }
        }
    }

    fn set_flag(&mut self, key: &str, reason_key: &str, reason: Option<&str>) {
        self.metadata.remove(key);
        self.metadata.remove(reason_key);
        if let Some(r) = reason {
            self.metadata.insert(key.into(), "true".into());
            self.metadata.insert(reason_key.into(), r.into());
        }
    }

    pub fn set_barrier(&mut self, reason: Option<&str>) {
        self.set_flag(BARRIER, BARRIER_REASON, reason);
    }

    pub fn set_deadend(&mut self, reason: Option<&str>) {
        self.set_flag(DEADEND, DEADEND_REASON, reason);
    }
}

impl Graph {
    /// Parse and check the structure (edge indices in range, versions unique).
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Graph> {
        let bad = |msg: String| Error::UpdateGraph {
            url: origin.to_string(),
            msg,
        };
        if bytes.len() > MAX_GRAPH_SIZE {
            return Err(bad(format!(
                "{} bytes, more than the {MAX_GRAPH_SIZE} allowed",
                bytes.len()
            )));
        }
        let g: Graph =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        g.check().map_err(bad)?;
        Ok(g)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let n = self.nodes.len();
        if let Some([a, b]) = self.edges.iter().find(|[a, b]| *a >= n || *b >= n) {
            return Err(format!(
                "edge [{a}, {b}] names a node that does not exist ({n} nodes)"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !seen.insert(node.version.as_str()) {
                return Err(format!("version {:?} appears twice", node.version));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn node(&self, version: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.version == version)
    }

    pub fn node_mut(&mut self, version: &str) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.version == version)
            .ok_or_else(|| Error::NotFound(format!("release {version:?} is not in the graph")))
    }

    /// Add a release as the newest (its age index is one more than the highest so far).
    /// It receives edges only once it has a rollout (as in FCOS).
    pub fn add_release(&mut self, version: &str, payload: &crate::object::Checksum) -> Result<()> {
        if self.node(version).is_some() {
            return Err(Error::InvalidArgument(format!(
                "release {version:?} is already in the graph"
            )));
        }
        let age = self
            .nodes
            .iter()
            .filter_map(Node::age_index)
            .max()
            .map_or(0, |a| a + 1);
        let mut metadata = BTreeMap::new();
        metadata.insert(AGE_INDEX.to_string(), age.to_string());
        metadata.insert(SCHEME.to_string(), "checksum".to_string());
        self.nodes.push(Node {
            version: version.to_string(),
            payload: payload.to_hex(),
            metadata,
        });
        self.compute_edges();
        Ok(())
    }

    /// Recompute the edges from the releases' metadata, by fedora-coreos-cincinnati's rule
    /// (commons/src/graph.rs): a release with a rollout entry (even a finished one) gets an
    /// edge from every older release back to and including the newest barrier older than
    /// it; a release older than that barrier must go through the barrier first. Dead ends
    /// keep their edges here: the decision engine ignores a dead end's outgoing edges, as
    /// FCOS's policy engine drops them when serving.
    pub fn compute_edges(&mut self) {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by_key(|&i| (self.nodes.get(i).and_then(Node::age_index), i));
        let mut edges = Vec::new();
        let mut last_barrier = 0usize; // position in `order`
        for (pos, &to) in order.iter().enumerate() {
            let Some(node) = self.nodes.get(to) else {
                continue;
            };
            if node.rollout().is_some() {
                for &from in order.get(last_barrier..pos).unwrap_or_default() {
                    edges.push([from, to]);
                }
            }
            if node.is_barrier() {
                last_barrier = pos;
            }
        }
        edges.sort_unstable();
        self.edges = edges;
    }
}

/// Why a signed graph is refused; `kind()` is the metric label.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    Unsigned,
    BadSignature,
    NoKeys,
    Expired { expires: String },
    NoExpiry,
    NoSerial,
    Replayed { serial: u64, seen: u64 },
    SameSerialDifferentContent { serial: u64 },
    WrongStream { want: String, got: Option<String> },
    Malformed(String),
}

impl Rejection {
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignature => "bad_signature",
            Rejection::NoKeys => "no_keys",
            Rejection::Expired { .. } | Rejection::NoExpiry => "expired",
            Rejection::NoSerial
            | Rejection::Replayed { .. }
            | Rejection::SameSerialDifferentContent { .. } => "replayed",
            Rejection::WrongStream { .. } => "wrong_stream",
            Rejection::Malformed(_) => "malformed",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unsigned => write!(f, "refused: not signed (no .sig file beside it)"),
            Rejection::BadSignature => write!(
                f,
                "refused: no signature verifies with the remote's ed25519 keys (tampered, or signed by another key)"
            ),
            Rejection::NoKeys => write!(
                f,
                "refused: no ed25519 key to verify it with (set verification-ed25519-key on the remote, or [graph] keys)"
            ),
            Rejection::Expired { expires } => {
                write!(f, "refused: expired at {expires} (a stale graph may be a freeze attack)")
            }
            Rejection::NoExpiry => write!(f, "refused: it has no \"expires\" field"),
            Rejection::NoSerial => write!(f, "refused: it has no \"serial\" field"),
            Rejection::Replayed { serial, seen } => write!(
                f,
                "refused: serial {serial} is lower than {seen}, already seen (a replayed older graph)"
            ),
            Rejection::SameSerialDifferentContent { serial } => write!(
                f,
                "refused: serial {serial} was already seen with different content (re-sign with a higher serial)"
            ),
            Rejection::WrongStream { want, got } => write!(
                f,
                "refused: it is for stream {got:?}, this machine follows {want:?}"
            ),
            Rejection::Malformed(m) => write!(f, "refused: {m}"),
        }
    }
}

/// What the agent remembers of the last graph it accepted on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Seen {
    pub serial: u64,
    /// SHA-256 of the accepted bytes: the same serial must mean the same graph.
    pub sha256: String,
}

/// Sign the exact bytes of a graph file: the contents of `FILE.sig`.
pub fn sign(bytes: &[u8], key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>> {
    crate::sign::append_signature(None, bytes, key)
}

/// Verify a signed static graph: signature over the exact bytes, stream, expiry, serial.
/// Returns the graph and what to remember of it.
pub fn verify(
    bytes: &[u8],
    sig: Option<&[u8]>,
    keys: &[ed25519_dalek::VerifyingKey],
    stream: &str,
    now: jiff::Timestamp,
    seen: Option<&Seen>,
) -> std::result::Result<(Graph, Seen), Rejection> {
    use sha2::Digest;
    let sig = sig.ok_or(Rejection::Unsigned)?;
    if keys.is_empty() {
        return Err(Rejection::NoKeys);
    }
    match crate::sign::verify(Some(sig), bytes, keys, &[]) {
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => return Err(Rejection::BadSignature),
    }
    // Only signed bytes are parsed.
    let g = Graph::parse(bytes, "").map_err(|e| match e {
        Error::UpdateGraph { msg, .. } => Rejection::Malformed(msg),
        e => Rejection::Malformed(e.to_string()),
    })?;
    if g.stream.as_deref() != Some(stream) {
        return Err(Rejection::WrongStream {
            want: stream.to_string(),
            got: g.stream.clone(),
        });
    }
    let expires = g.expires.as_deref().ok_or(Rejection::NoExpiry)?;
    let exp: jiff::Timestamp = expires
        .parse()
        .map_err(|e| Rejection::Malformed(format!("expires {expires:?}: {e}")))?;
    if now >= exp {
        return Err(Rejection::Expired {
            expires: expires.to_string(),
        });
    }
    let serial = g.serial.ok_or(Rejection::NoSerial)?;
    let sha256 = format!("{:x}", sha2::Sha256::digest(bytes));
    if let Some(s) = seen {
        if serial < s.serial {
            return Err(Rejection::Replayed {
                serial,
                seen: s.serial,
            });
        }
        if serial == s.serial && sha256 != s.sha256 {
            return Err(Rejection::SameSerialDifferentContent { serial });
        }
    }
    Ok((g, Seen { serial, sha256 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Checksum;

    fn csum(i: u8) -> Checksum {
        Checksum([i; 32])
    }

    #[test]
    fn edges_follow_fcos_rules() {
        let mut g = Graph::default();
        for (i, v) in ["1", "2", "3", "4", "5"].iter().enumerate() {
            g.add_release(v, &csum(i as u8)).expect("add");
        }
        assert!(g.edges.is_empty(), "no rollout, no edges");
        let done = Some(Rollout {
            start_epoch: 0,
            start_value: 1.0,
            duration_minutes: None,
        });
        for v in ["2", "3", "4", "5"] {
            g.node_mut(v).expect("node").set_rollout(done);
        }
        g.node_mut("3").expect("node").set_barrier(Some("migrate"));
        g.compute_edges();
        // 2 from 1; 3 (barrier) from 1, 2; 4 and 5 only from the barrier on.
        assert_eq!(
            g.edges,
            vec![[0, 1], [0, 2], [1, 2], [2, 3], [2, 4], [3, 4]]
        );
    }

    #[test]
    fn parse_refuses_bad_edges_and_duplicates() {
        let bad = br#"{"nodes":[{"version":"1","payload":"x"}],"edges":[[0,1]]}"#;
        assert!(Graph::parse(bad, "t").is_err());
        let dup = br#"{"nodes":[{"version":"1","payload":"x"},{"version":"1","payload":"y"}],"edges":[]}"#;
        assert!(Graph::parse(dup, "t").is_err());
        assert!(Graph::parse(b"{", "t").is_err());
    }
}
