//! The semaphore in etcd, through etcd's v3 JSON gateway (`POST /v3/kv/range`,
//! `/v3/kv/txn` over plain HTTP): no gRPC stack, no protoc, one small blocking HTTP client.
//! Keys and values are airlock's, so airlock and `oxtree fleetlock serve` can serve one
//! fleet: `com.coreos.airlock/groups/<group>/v1/semaphore` holding
//! `{"total_slots": N, "holders": [sorted ids]}`. Every change is a transaction that
//! compares the key's version with the one read (optimistic compare-and-swap); creation
//! compares it with 0.
//!
//! proto3 JSON quirks handled here: 64-bit integers are strings, and fields with their zero
//! value are left out (`succeeded` absent means false, a missing `kvs` means no key).

use crate::error::{Error, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// airlock's key for a group's semaphore (the group is URL-escaped; valid group names
/// need no escaping).
pub fn semaphore_key(group: &str) -> String {
    let mut g = String::new();
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            g.push(b as char);
        } else {
            g.push_str(&format!("%{b:02X}"));
        }
    }
    format!("com.coreos.airlock/groups/{g}/v1/semaphore")
}

/// airlock's semaphore value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Semaphore {
    pub total_slots: u64,
    /// Go's nil slice is `null`: read it as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub holders: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One key as the gateway returns it.
#[derive(Debug, Clone)]
pub struct Kv {
    pub value: Vec<u8>,
    pub version: u64,
    pub mod_revision: u64,
    pub create_revision: u64,
}

#[derive(Debug, Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

impl Etcd {
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Etcd> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument("[etcd3] endpoints is empty".into()));
        }
        for e in endpoints {
            if !e.starts_with("http://") {
                return Err(Error::InvalidArgument(format!(
                    "etcd endpoint {e:?}: only http:// is supported (put etcd's TLS behind a local proxy)"
                )));
            }
        }
        Ok(Etcd {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build()
                .into(),
        })
    }

    /// POST to the first endpoint that answers.
    fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let mut last = String::new();
        for ep in &self.endpoints {
            let url = format!("{ep}{path}");
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            match self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(&bytes[..])
            {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let text = r
                        .body_mut()
                        .with_config()
                        .limit(4 << 20)
                        .read_to_string()
                        .map_err(|e| Error::Other(format!("etcd {url}: {e}")))?;
                    if status != 200 {
                        return Err(Error::Other(format!("etcd {url}: HTTP {status}: {text}")));
                    }
                    return serde_json::from_str(&text)
                        .map_err(|e| Error::Other(format!("etcd {url}: bad reply: {e}")));
                }
                Err(e) => last = format!("etcd {url}: {e}"),
            }
        }
        Err(Error::Other(last))
    }

    /// The key, or `None`; with `revision`, as it was at that revision.
    pub fn get(&self, key: &str, revision: Option<u64>) -> Result<Option<Kv>> {
        let mut body = serde_json::json!({ "key": B64.encode(key) });
        if let Some(r) = revision {
            body["revision"] = serde_json::Value::String(r.to_string());
        }
        let v = self.post("/v3/kv/range", &body)?;
        let Some(kv) = v.get("kvs").and_then(|k| k.get(0)) else {
            return Ok(None);
        };
        let value = kv
            .get("value")
            .and_then(|x| x.as_str())
            .map(|s| B64.decode(s))
            .transpose()
            .map_err(|e| Error::Other(format!("etcd: value of {key} is not base64: {e}")))?
            .unwrap_or_default();
        Ok(Some(Kv {
            value,
            version: num(kv, "version"),
            mod_revision: num(kv, "mod_revision"),
            create_revision: num(kv, "create_revision"),
        }))
    }

    /// Put `value` only if the key's version is still `version` (0: the key is absent).
    /// `Ok(false)`: someone else changed it first.
    pub fn put_if_version(&self, key: &str, version: u64, value: &[u8]) -> Result<bool> {
        let k = B64.encode(key);
        let body = serde_json::json!({
            "compare": [{
                "key": k, "result": "EQUAL", "target": "VERSION", "version": version.to_string()
            }],
            "success": [{ "request_put": { "key": k, "value": B64.encode(value) } }],
            "failure": []
        });
        let v = self.post("/v3/kv/txn", &body)?;
        Ok(v.get("succeeded")
            .and_then(|s| s.as_bool())
            .unwrap_or(false))
    }

    /// The current revision of the store (from a read's header).
    pub fn revision(&self) -> Result<u64> {
        let v = self.post(
            "/v3/kv/range",
            &serde_json::json!({ "key": B64.encode("\0") }),
        )?;
        Ok(v.get("header").map(|h| num(h, "revision")).unwrap_or(0))
    }
}

/// The outcome of a semaphore operation, in airlock's error kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemError {
    /// The semaphore could not be created or read (`failed_sem_init`).
    Init(String),
    /// The lock was not taken: slots full, a store error, or too much contention
    /// (`failed_lock`).
    Lock(String),
    /// The unlock failed (`failed_unlock`).
    Unlock(String),
}

/// Retries of a compare-and-swap that lost a race, before giving up.
const CAS_ATTEMPTS: usize = 50;

impl Etcd {
    /// The semaphore of `group`, created with `slots` if it does not exist yet.
    fn read_or_init(
        &self,
        key: &str,
        slots: u64,
    ) -> std::result::Result<(Semaphore, u64), SemError> {
        for _ in 0..CAS_ATTEMPTS {
            match self
                .get(key, None)
                .map_err(|e| SemError::Init(e.to_string()))?
            {
                Some(kv) => {
                    let sem: Semaphore = serde_json::from_slice(&kv.value).map_err(|e| {
                        SemError::Init(format!("semaphore {key} is not airlock's JSON: {e}"))
                    })?;
                    return Ok((sem, kv.version));
                }
                None => {
                    let sem = Semaphore {
                        total_slots: slots,
                        holders: Vec::new(),
                    };
                    let bytes =
                        serde_json::to_vec(&sem).map_err(|e| SemError::Init(e.to_string()))?;
                    self.put_if_version(key, 0, &bytes)
                        .map_err(|e| SemError::Init(e.to_string()))?;
                    // Created by us or by a concurrent server: read it back either way.
                }
            }
        }
        Err(SemError::Init(format!(
            "semaphore {key}: too much contention"
        )))
    }

    /// airlock's `RecursiveLock`: take a slot for `id`, or succeed if it holds one.
    pub fn recursive_lock(
        &self,
        group: &str,
        slots: u64,
        id: &str,
    ) -> std::result::Result<(), SemError> {
        let key = semaphore_key(group);
        for _ in 0..CAS_ATTEMPTS {
            let (mut sem, version) = self.read_or_init(&key, slots)?;
            if sem.holders.iter().any(|h| h == id) {
                return Ok(());
            }
            // The configured slot count wins (an operator changed it).
            sem.total_slots = slots;
            if sem.holders.len() as u64 >= sem.total_slots {
                return Err(SemError::Lock(format!(
                    "semaphore is full: all {} slots of group {group:?} are held ({})",
                    sem.total_slots,
                    sem.holders.join(", ")
                )));
            }
            sem.holders.push(id.to_string());
            sem.holders.sort();
            let bytes = serde_json::to_vec(&sem).map_err(|e| SemError::Lock(e.to_string()))?;
            if self
                .put_if_version(&key, version, &bytes)
                .map_err(|e| SemError::Lock(e.to_string()))?
            {
                return Ok(());
            }
        }
        Err(SemError::Lock(format!(
            "semaphore {key}: too much contention"
        )))
    }

    /// airlock's `UnlockIfHeld`: release `id`'s slot, or succeed if it holds none.
    pub fn unlock_if_held(
        &self,
        group: &str,
        slots: u64,
        id: &str,
    ) -> std::result::Result<(), SemError> {
        let key = semaphore_key(group);
        for _ in 0..CAS_ATTEMPTS {
            let (mut sem, version) = self.read_or_init(&key, slots)?;
            if !sem.holders.iter().any(|h| h == id) {
                return Ok(());
            }
            sem.holders.retain(|h| h != id);
            let bytes = serde_json::to_vec(&sem).map_err(|e| SemError::Unlock(e.to_string()))?;
            if self
                .put_if_version(&key, version, &bytes)
                .map_err(|e| SemError::Unlock(e.to_string()))?
            {
                return Ok(());
            }
        }
        Err(SemError::Unlock(format!(
            "semaphore {key}: too much contention"
        )))
    }

    /// The semaphore as stored (for `oxtree fleetlock status`).
    pub fn semaphore(&self, group: &str) -> Result<Option<Semaphore>> {
        let key = semaphore_key(group);
        match self.get(&key, None)? {
            None => Ok(None),
            Some(kv) => serde_json::from_slice(&kv.value)
                .map(Some)
                .map_err(|e| Error::Other(format!("etcd {key}: not airlock's JSON: {e}"))),
        }
    }
}
