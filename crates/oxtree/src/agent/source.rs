//! Where the graph comes from: a static signed file (over HTTP(S), `file://` or a plain
//! path — the QEMU test reads it from the update disk), or a Cincinnati server's
//! `GET /v1/graph` with Zincati's query parameters. Both end in a [`Graph`] for the one
//! decision engine.

use super::graph::{self, Graph, Rejection, Seen, MAX_GRAPH_SIZE};
use crate::error::{Error, IoContext, Result};
use std::time::Duration;

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent(concat!("oxtree-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// GET a small file: `Ok(None)` for 404 (or a missing local file).
pub fn fetch_url(url: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
    if let Some(path) = url
        .strip_prefix("file://")
        .or_else(|| url.strip_prefix('/').map(|_| url))
    {
        return match std::fs::read(path) {
            Ok(b) if b.len() > MAX_GRAPH_SIZE => Err(Error::Other(format!(
                "{url}: larger than {MAX_GRAPH_SIZE} bytes"
            ))),
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", path),
        };
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::InvalidArgument(format!(
            "unsupported graph URL {url:?}: use http://, https://, file:// or an absolute path"
        )));
    }
    let mut resp = agent(timeout)
        .get(url)
        .call()
        .map_err(|e| Error::Other(format!("{url}: {e}")))?;
    match resp.status().as_u16() {
        200 => {}
        404 | 410 => return Ok(None),
        s => return Err(Error::Other(format!("{url}: HTTP {s}"))),
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_GRAPH_SIZE as u64)
        .read_to_vec()
        .map(Some)
        .map_err(|e| Error::Other(format!("{url}: {e}")))
}

/// A static graph, verified: fetched with its `.sig`, checked against `keys`, the stream,
/// the clock and the last serial seen. A refusal carries its [`Rejection`] for metrics.
pub fn fetch_static(
    url: &str,
    keys: &[ed25519_dalek::VerifyingKey],
    stream: &str,
    now: jiff::Timestamp,
    seen: Option<&Seen>,
    timeout: Duration,
) -> Result<std::result::Result<(Graph, Seen), Rejection>> {
    let bytes = fetch_url(url, timeout)?
        .ok_or_else(|| Error::NotFound(format!("update graph {url}: not found")))?;
    let sig = fetch_url(&format!("{url}.sig"), timeout)?;
    Ok(graph::verify(
        &bytes,
        sig.as_deref(),
        keys,
        stream,
        now,
        seen,
    ))
}

/// Zincati's query (zincati:src/identity/mod.rs `cincinnati_params`).
#[derive(Debug, Clone, Default)]
pub struct CincinnatiQuery {
    pub basearch: String,
    pub stream: String,
    pub os_version: String,
    pub os_checksum: String,
    pub group: String,
    pub node_uuid: String,
    pub platform: String,
    /// Sent with 6 decimals; oxtree always sends it (derived or configured), so the server
    /// and a static graph place the machine at the same point of a rollout.
    pub rollout_wariness: Option<f64>,
}

impl CincinnatiQuery {
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("basearch", self.basearch.clone()),
            ("stream", self.stream.clone()),
            ("os_version", self.os_version.clone()),
            ("os_checksum", self.os_checksum.clone()),
            ("group", self.group.clone()),
            ("node_uuid", self.node_uuid.clone()),
            ("platform", self.platform.clone()),
        ];
        if let Some(w) = self.rollout_wariness {
            v.push(("rollout_wariness", format!("{w:.6}")));
        }
        v
    }
}

/// `GET {base_url}/v1/graph?…` with `Accept: application/json`. Error bodies are
/// Cincinnati's `{kind, value}`; both are quoted in the error.
pub fn fetch_cincinnati(base_url: &str, q: &CincinnatiQuery, timeout: Duration) -> Result<Graph> {
    let url = format!("{}/v1/graph", base_url.trim_end_matches('/'));
    let mut req = agent(timeout)
        .get(&url)
        .header("Accept", "application/json");
    for (k, v) in q.params() {
        req = req.query(k, v);
    }
    let mut resp = req
        .call()
        .map_err(|e| Error::Other(format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_GRAPH_SIZE as u64)
        .read_to_vec()
        .map_err(|e| Error::Other(format!("{url}: {e}")))?;
    if status != 200 {
        #[derive(serde::Deserialize)]
        struct Err {
            kind: String,
            value: String,
        }
        let msg = match serde_json::from_slice::<Err>(&body) {
            Ok(e) => format!("{}: {}", e.kind, e.value),
            Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
        };
        return Err(Error::Other(format!("{url}: HTTP {status}: {msg}")));
    }
    Graph::parse(&body, &url)
}
