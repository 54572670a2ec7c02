//! FleetLock, Zincati's reboot-coordination protocol: a counting semaphore per group that
//! a machine takes (`POST /v1/pre-reboot`, a recursive lock) before rebooting into an
//! update and releases (`POST /v1/steady-state`, unlock-if-held) once it booted healthy, so
//! at most N machines of a group are down at once and a machine that never comes back
//! holds its slot and halts the rollout.
//!
//! Wire format (zincati:docs/development/fleetlock/protocol.md): header
//! `fleet-lock-protocol: true` (it guards against redirects and stray clients), body
//! `{"client_params": {"id": "…", "group": "…"}}`; success is HTTP 200 and nothing else;
//! errors carry `{"kind", "value"}` with a small set of kinds.
//!
//! This module is the client and the shared types; [`server`] is `oxtree fleetlock serve`
//! with its semaphore in etcd ([`etcd`]), compatible with airlock's keys, values and
//! config file.

pub mod config;
pub mod etcd;
pub mod server;

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const HEADER: &str = "fleet-lock-protocol";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientParams {
    pub id: String,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client_params: ClientParams,
}

/// The protocol's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: String,
    pub value: String,
}

/// A group name as the protocol allows it: `^[a-zA-Z0-9.-]+$`.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A failed request: the server's kind and message, or a transport failure
/// (`kind = "transport"`), with the HTTP status when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockError {
    pub status: Option<u16>,
    pub kind: String,
    pub value: String,
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s} {}: {}", self.kind, self.value),
            None => write!(f, "{}: {}", self.kind, self.value),
        }
    }
}

impl std::error::Error for LockError {}

/// A FleetLock client for one machine.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    params: ClientParams,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base_url: &str, id: &str, group: &str, timeout: Duration) -> crate::Result<Client> {
        if id.is_empty() {
            return Err(crate::Error::InvalidArgument(
                "FleetLock: the client id may not be empty".into(),
            ));
        }
        if !valid_group(group) {
            return Err(crate::Error::InvalidArgument(format!(
                "FleetLock: group {group:?} must match ^[a-zA-Z0-9.-]+$"
            )));
        }
        Ok(Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            params: ClientParams {
                id: id.to_string(),
                group: group.to_string(),
            },
            // Redirects are not followed: the protocol header is there so a client never
            // lands on something that is not a FleetLock server.
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(timeout))
                .user_agent(concat!("oxtree-agent/", env!("CARGO_PKG_VERSION")))
                .build()
                .into(),
        })
    }

    fn post(&self, op: &str) -> Result<(), LockError> {
        let url = format!("{}/v1/{op}", self.base_url);
        let body = Request {
            client_params: self.params.clone(),
        };
        let mut resp = self
            .agent
            .post(&url)
            .header(HEADER, "true")
            .header("content-type", "application/json")
            .send(&serde_json::to_vec(&body).unwrap_or_default()[..])
            .map_err(|e| LockError {
                status: None,
                kind: "transport".into(),
                value: format!("{url}: {e}"),
            })?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let (kind, value) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => (e.kind, e.value),
            Err(_) => ("unknown".into(), text.chars().take(200).collect()),
        };
        Err(LockError {
            status: Some(status),
            kind,
            value,
        })
    }

    /// `RecursiveLock`: take (or keep) this machine's slot before rebooting.
    pub fn pre_reboot(&self) -> Result<(), LockError> {
        self.post("pre-reboot")
    }

    /// `UnlockIfHeld`: release the slot after a healthy boot.
    pub fn steady_state(&self) -> Result<(), LockError> {
        self.post("steady-state")
    }
}
