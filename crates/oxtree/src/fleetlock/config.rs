//! airlock's TOML configuration, read as it is (airlock:dist/examples/config.toml), so an
//! airlock deployment switches to `oxtree fleetlock serve` by swapping the binary:
//!
//! ```toml
//! [service]
//! address = "0.0.0.0"
//! port = 3333
//! tls = false
//! [status]
//! enabled = true
//! address = "0.0.0.0"
//! port = 2222
//! [etcd3]
//! endpoints = ["http://127.0.0.1:2379"]
//! transaction_timeout_ms = 3000
//! [lock]
//! default_group_name = "default"
//! default_slots = 2
//! [[lock.groups]]
//! name = "workers"
//! slots = 1
//! ```
//!
//! TLS (`tls = true`, etcd client certificates) is refused with a clear error rather than
//! silently served in clear text: put a TLS-terminating proxy in front.

use crate::error::{Error, IoContext, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub etcd3: Etcd3,
    #[serde(default)]
    pub lock: Lock,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default = "any_address")]
    pub address: String,
    #[serde(default = "service_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_cert_path: Option<String>,
    #[serde(default)]
    pub tls_key_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "any_address")]
    pub address: String,
    #[serde(default = "status_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Etcd3 {
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    #[serde(default = "default_txn_timeout")]
    pub transaction_timeout_ms: u64,
    #[serde(default)]
    pub client_cert_pub_path: Option<String>,
    #[serde(default)]
    pub client_cert_key_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    #[serde(default = "default_group")]
    pub default_group_name: String,
    #[serde(default = "one")]
    pub default_slots: u64,
    #[serde(default)]
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub slots: u64,
}

fn any_address() -> String {
    "0.0.0.0".into()
}
fn service_port() -> u16 {
    9090
}
fn status_port() -> u16 {
    9091
}
fn default_endpoints() -> Vec<String> {
    vec!["http://127.0.0.1:2379".into()]
}
fn default_txn_timeout() -> u64 {
    3000
}
fn default_group() -> String {
    "default".into()
}
fn one() -> u64 {
    1
}

impl Default for Service {
    fn default() -> Self {
        Service {
            address: any_address(),
            port: service_port(),
            tls: false,
            tls_cert_path: None,
            tls_key_path: None,
        }
    }
}
impl Default for Status {
    fn default() -> Self {
        Status {
            enabled: false,
            address: any_address(),
            port: status_port(),
            tls: false,
        }
    }
}
impl Default for Etcd3 {
    fn default() -> Self {
        Etcd3 {
            endpoints: default_endpoints(),
            transaction_timeout_ms: default_txn_timeout(),
            client_cert_pub_path: None,
            client_cert_key_path: None,
        }
    }
}
impl Default for Lock {
    fn default() -> Self {
        Lock {
            default_group_name: default_group(),
            default_slots: one(),
            groups: Vec::new(),
        }
    }
}

impl Config {
    pub fn default_config() -> Config {
        Config {
            service: Service::default(),
            status: Status::default(),
            etcd3: Etcd3::default(),
            lock: Lock::default(),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let c: Config = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if c.service.tls || c.status.tls {
            return Err(bad(
                "tls = true is not supported: serve over a TLS-terminating proxy".into(),
            ));
        }
        if c.etcd3.client_cert_pub_path.is_some() || c.etcd3.client_cert_key_path.is_some() {
            return Err(bad("etcd client certificates are not supported".into()));
        }
        for g in std::iter::once(c.lock.default_group_name.as_str())
            .chain(c.lock.groups.iter().map(|g| g.name.as_str()))
        {
            if !super::valid_group(g) {
                return Err(bad(format!("group {g:?} must match ^[a-zA-Z0-9.-]+$")));
            }
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).ctx("read", path)?;
        Config::parse(&text, path)
    }

    /// The slots of a known group; `None` for a group the config does not name.
    pub fn slots(&self, group: &str) -> Option<u64> {
        if let Some(g) = self.lock.groups.iter().find(|g| g.name == group) {
            return Some(g.slots);
        }
        (group == self.lock.default_group_name).then_some(self.lock.default_slots)
    }

    /// Every group the server serves, with its slots.
    pub fn groups(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .lock
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.slots))
            .collect();
        if !v.iter().any(|(n, _)| *n == self.lock.default_group_name) {
            v.insert(
                0,
                (
                    self.lock.default_group_name.clone(),
                    self.lock.default_slots,
                ),
            );
        }
        v
    }
}
