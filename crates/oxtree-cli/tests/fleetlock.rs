//! `oxtree fleetlock serve` against a real etcd (Debian's etcd-server) started by each test
//! on free loopback ports with a private data dir: the semaphore never has more holders
//! than slots (audited in etcd's key history), locks are recursive, protocol errors are
//! `{kind, value}`, a stopped etcd is an error (never a granted lock), and etcd holds
//! airlock's key and JSON.

#[path = "common/agent.rs"]
mod agent_common;
mod common;

use agent_common::{http, Etcd, FleetLockServer};
use common::*;
use oxtree::fleetlock::etcd::{semaphore_key, Etcd as EtcdClient, Semaphore};
use oxtree::fleetlock::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "com.coreos.airlock/groups/default/v1/semaphore";
const GROUPS: &str = "[lock]\ndefault_group_name = \"default\"\ndefault_slots = 2\n\n[[lock.groups]]\nname = \"workers\"\nslots = 1\n";

fn client(url: &str, id: &str) -> Client {
    Client::new(url, id, "default", Duration::from_secs(10)).expect("client")
}

#[test]
fn ten_clients_two_slots_never_more_than_two_holders_in_etcd_history() {
    let tmp = tempdir();
    let etcd = Etcd::start(&tmp.path().join("etcd"));
    let srv = FleetLockServer::start(&tmp.path().join("srv"), &etcd.url, GROUPS);
    let holding = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let (url, holding, max_seen, granted, refused) = (
                srv.url.clone(),
                holding.clone(),
                max_seen.clone(),
                granted.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                let c = client(&url, &format!("machine-{i:02}"));
                let mut rounds = 0;
                while Instant::now() < deadline && rounds < 500 {
                    rounds += 1;
                    match c.pre_reboot() {
                        Ok(()) => {
                            granted.fetch_add(1, Ordering::SeqCst);
                            let h = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            max_seen.fetch_max(h, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            holding.fetch_sub(1, Ordering::SeqCst);
                            c.steady_state().expect("unlock");
                        }
                        Err(e) => {
                            assert_eq!(e.status, Some(500), "{e}");
                            assert_eq!(e.kind, "failed_lock", "{e}");
                            refused.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let (g, r) = (
        granted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    assert!(
        g >= 20 && r >= 1,
        "the test needs contention: {g} granted, {r} refused"
    );
    assert!(max_seen.load(Ordering::SeqCst) <= 2);
    // Every revision of the key, from its creation on, as etcd kept it.
    let e =
        EtcdClient::new(std::slice::from_ref(&etcd.url), Duration::from_secs(10)).expect("etcd");
    let now = e.get(KEY, None).expect("get").expect("semaphore exists");
    let mut revisions = 0;
    let mut max_holders = 0;
    for rev in now.create_revision..=now.mod_revision {
        let Some(kv) = e.get(KEY, Some(rev)).expect("get at revision") else {
            continue;
        };
        if kv.mod_revision != rev {
            continue; // another key changed at this revision
        }
        revisions += 1;
        let sem: Semaphore = serde_json::from_slice(&kv.value).expect("airlock JSON");
        assert_eq!(sem.total_slots, 2);
        assert!(sem.holders.len() <= 2, "revision {rev}: {:?}", sem.holders);
        let mut sorted = sem.holders.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, sem.holders, "holders sorted and unique");
        max_holders = max_holders.max(sem.holders.len());
    }
    // Each grant and each release is one write.
    assert!(revisions >= 2 * g, "{revisions} revisions for {g} grants");
    assert_eq!(max_holders, 2, "the two slots were used");
    let last: Semaphore = serde_json::from_slice(&now.value).expect("json");
    assert!(last.holders.is_empty(), "every client unlocked: {last:?}");
}

#[test]
fn recursive_lock_protocol_errors_and_airlock_json() {
    let tmp = tempdir();
    let etcd = Etcd::start(&tmp.path().join("etcd"));
    let srv = FleetLockServer::start(&tmp.path().join("srv"), &etcd.url, GROUPS);
    let a = client(&srv.url, "node-a");
    a.pre_reboot().expect("lock");
    let v1 = etcd.etcdctl(&["get", KEY, "-w", "json"]);
    a.pre_reboot().expect("lock again: recursive");
    let v2 = etcd.etcdctl(&["get", KEY, "-w", "json"]);
    assert_eq!(v1, v2, "a recursive lock writes nothing");
    // etcdctl shows airlock's key and JSON value.
    let value = etcd.etcdctl(&["get", KEY, "--print-value-only"]);
    let json: serde_json::Value = serde_json::from_str(value.trim()).expect("JSON value");
    assert_eq!(
        json,
        serde_json::json!({"total_slots": 2, "holders": ["node-a"]})
    );
    assert_eq!(semaphore_key("default"), KEY);
    // Unlock twice: the second is a no-op success.
    a.steady_state().expect("unlock");
    a.steady_state().expect("unlock again");
    let value = etcd.etcdctl(&["get", KEY, "--print-value-only"]);
    assert_eq!(value.trim(), r#"{"total_slots":2,"holders":[]}"#);
    // The other group has one slot.
    let w1 = Client::new(&srv.url, "w1", "workers", Duration::from_secs(10)).expect("client");
    let w2 = Client::new(&srv.url, "w2", "workers", Duration::from_secs(10)).expect("client");
    w1.pre_reboot().expect("lock");
    let e = w2.pre_reboot().expect_err("one slot");
    assert_eq!((e.status, e.kind.as_str()), (Some(500), "failed_lock"));
    assert!(e.value.contains("w1"), "{e}");
    // No header: 400 with {kind, value}.
    let body = br#"{"client_params":{"id":"x","group":"default"}}"#;
    let (st, b) = http(&srv.url, "POST", "/v1/pre-reboot", &[], body).expect("request");
    assert_eq!(st, 400, "{b}");
    let err: serde_json::Value = serde_json::from_str(&b).expect("JSON error body");
    assert_eq!(err["kind"], "invalid_client_identity");
    assert!(
        err["value"]
            .as_str()
            .is_some_and(|v| v.contains("fleet-lock-protocol")),
        "{b}"
    );
    // A wrong header value, a bad body, an empty id, an unknown group.
    let hdr = [("fleet-lock-protocol", "true")];
    for (headers, body, kind) in [
        (
            &[("fleet-lock-protocol", "yes")][..],
            &body[..],
            "invalid_client_identity",
        ),
        (&hdr[..], &b"{}"[..], "invalid_client_identity"),
        (
            &hdr[..],
            &br#"{"client_params":{"id":"","group":"default"}}"#[..],
            "invalid_client_identity",
        ),
        (
            &hdr[..],
            &br#"{"client_params":{"id":"x","group":"a/b"}}"#[..],
            "invalid_client_identity",
        ),
        (
            &hdr[..],
            &br#"{"client_params":{"id":"x","group":"other"}}"#[..],
            "unknown_group",
        ),
    ] {
        let (st, b) = http(&srv.url, "POST", "/v1/steady-state", headers, body).expect("request");
        assert_eq!(st, 400, "{b}");
        let err: serde_json::Value = serde_json::from_str(&b).expect("JSON error body");
        assert_eq!(err["kind"], kind, "{b}");
        assert!(err["value"].is_string());
    }
    // The CLI's admin view and release of a dead holder.
    let status = ox(&["fleetlock", "status", "--config", s(&srv.config)]);
    assert!(status.contains("workers: 1/1 held: w1"), "{status}");
    ox(&[
        "fleetlock",
        "release",
        "--config",
        s(&srv.config),
        "--group",
        "workers",
        "w1",
    ]);
    w2.pre_reboot().expect("the slot is free again");
}

#[test]
fn etcd_stopped_is_an_error_never_a_lock_and_service_recovers() {
    let tmp = tempdir();
    let mut etcd = Etcd::start(&tmp.path().join("etcd"));
    let srv = FleetLockServer::start(&tmp.path().join("srv"), &etcd.url, GROUPS);
    let a = client(&srv.url, "node-a");
    a.pre_reboot().expect("lock while etcd runs");
    a.steady_state().expect("unlock");
    etcd.stop();
    let e = a.pre_reboot().expect_err("no etcd, no lock");
    assert_eq!(e.status, Some(500), "{e}");
    assert!(
        e.kind == "failed_sem_init" || e.kind == "failed_lock",
        "{e}"
    );
    assert!(
        e.value.contains("127.0.0.1"),
        "the error names the etcd endpoint: {e}"
    );
    let e = a.steady_state().expect_err("no etcd, no unlock either");
    assert_eq!(e.status, Some(500), "{e}");
    // The CLI reports it as a failure (what a script or the agent sees).
    let (code, err) = ox_fail(&["fleetlock", "lock", "--url", &srv.url, "--id", "node-b"]);
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 500"), "{err}");
    etcd.restart();
    a.pre_reboot().expect("etcd back: lock works again");
    let value = etcd.etcdctl(&["get", KEY, "--print-value-only"]);
    assert_eq!(value.trim(), r#"{"total_slots":2,"holders":["node-a"]}"#);
}

#[test]
fn airlock_example_config_is_read_as_is() {
    // airlock's dist/examples/config.toml (TLS off), with every section it documents.
    let text = r#"
[service]
address = "0.0.0.0"
port = 3333
tls = false

[status]
enabled = true
address = "0.0.0.0"
port = 2222
tls = false

[etcd3]
endpoints = [ "http://127.0.0.1:2379" ]
transaction_timeout_ms = 3000

[lock]
default_group_name = "default"
default_slots = 2

[[lock.groups]]
name = "workers"
slots = 1

[[lock.groups]]
name = "controllers"
slots = 1
"#;
    let c = oxtree::fleetlock::config::Config::parse(text, std::path::Path::new("airlock.toml"))
        .expect("airlock config");
    assert_eq!(c.service.port, 3333);
    assert_eq!(c.slots("default"), Some(2));
    assert_eq!(c.slots("controllers"), Some(1));
    assert_eq!(c.slots("nope"), None);
    assert_eq!(c.groups().len(), 3);
    let tls = text.replacen("tls = false", "tls = true", 1);
    let e = oxtree::fleetlock::config::Config::parse(&tls, std::path::Path::new("airlock.toml"))
        .expect_err("TLS refused loudly");
    assert!(e.to_string().contains("tls"), "{e}");
}
