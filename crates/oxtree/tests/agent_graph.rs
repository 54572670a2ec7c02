//! The update agent's graph and decision engine, through real HTTP: the same graph served
//! as a signed static file and by a small Cincinnati-shaped server (which applies FCOS's
//! policy — rollout throttling and dead-end pruning — itself, written independently here)
//! must give the same choice over a table of cases; a 1,000-machine phased rollout must
//! follow its schedule; unsigned, tampered, expired and replayed graphs are refused.

use ed25519_dalek::SigningKey;
use oxtree::agent::decide::{decide, Decision, Policy};
use oxtree::agent::graph::{self, Graph, Rejection, Rollout, Seen};
use oxtree::agent::rollout::derived_wariness;
use oxtree::agent::source::{self, CincinnatiQuery};
use oxtree::Checksum;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STREAM: &str = "os/x86_64/stable";
const T0: i64 = 1_800_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);

fn csum(i: u8) -> Checksum {
    Checksum([i + 1; 32])
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn done() -> Option<Rollout> {
    Some(Rollout {
        start_epoch: 0,
        start_value: 1.0,
        duration_minutes: None,
    })
}

/// 1.0 → 2.0 → 3.0 (barrier) → 4.0 (rollout T0, 1 h) → 5.0 (rollout T0+1 h, 1 h; dead end)
/// → 6.0 (rollout from T0+2 h, paused at 50 %), plus a published downgrade edge 6.0 → 4.0.
fn table_graph() -> Graph {
    let mut g = Graph {
        stream: Some(STREAM.into()),
        ..Graph::default()
    };
    for (i, v) in ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0"]
        .iter()
        .enumerate()
    {
        g.add_release(v, &csum(i as u8)).expect("add");
    }
    for v in ["2.0", "3.0"] {
        g.node_mut(v).expect("node").set_rollout(done());
    }
    g.node_mut("3.0")
        .expect("node")
        .set_barrier(Some("new disk layout"));
    g.node_mut("4.0").expect("node").set_rollout(Some(Rollout {
        start_epoch: T0,
        start_value: 0.0,
        duration_minutes: Some(60),
    }));
    g.node_mut("5.0").expect("node").set_rollout(Some(Rollout {
        start_epoch: T0 + 3600,
        start_value: 0.0,
        duration_minutes: Some(60),
    }));
    g.node_mut("5.0")
        .expect("node")
        .set_deadend(Some("needs a manual migration"));
    g.node_mut("6.0").expect("node").set_rollout(Some(Rollout {
        start_epoch: T0 + 7200,
        start_value: 0.5,
        duration_minutes: None,
    }));
    g.compute_edges();
    g.edges.push([5, 3]);
    g
}

fn signed(g: &Graph, serial: u64, expires: i64) -> (Vec<u8>, Vec<u8>) {
    let mut g = g.clone();
    g.serial = Some(serial);
    g.expires = Some(
        jiff::Timestamp::from_second(expires)
            .expect("ts")
            .to_string(),
    );
    let bytes = g.to_json();
    let sig = graph::sign(&bytes, &key()).expect("sign");
    (bytes, sig)
}

/// A tiny HTTP/1.1 server on 127.0.0.1: static files from `files`, and `/v1/graph`
/// answered from `graph` with FCOS's policy applied for the request's wariness at `now`.
struct TestServer {
    url: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    now: Arc<AtomicI64>,
    queries: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

/// FCOS policy engine, written from its description (fcos-policy-engine `throttle_rollouts`
/// and dead-end pruning), not by calling the library: a second implementation to compare.
fn fcos_policy(g: &Graph, wariness: f64, now: i64) -> Graph {
    let throttle = |n: &graph::Node| -> f64 {
        let m = &n.metadata;
        if m.get(graph::ROLLOUT).map(String::as_str) != Some("true") {
            return 1.0;
        }
        let start: i64 = m
            .get(graph::START_EPOCH)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let value: f64 = m
            .get(graph::START_VALUE)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let dur: Option<i64> = m.get(graph::DURATION).and_then(|v| v.parse().ok());
        if now < start {
            0.0
        } else if let Some(d) = dur {
            let end = start + d * 60;
            if now >= end {
                1.0
            } else {
                value + (1.0 - value) * ((now - start) as f64 / (d * 60) as f64)
            }
        } else {
            value
        }
    };
    let hidden: BTreeSet<usize> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| wariness > throttle(n))
        .map(|(i, _)| i)
        .collect();
    let deadends: BTreeSet<usize> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.metadata.get(graph::DEADEND).map(String::as_str) == Some("true"))
        .map(|(i, _)| i)
        .collect();
    Graph {
        stream: None,
        serial: None,
        expires: None,
        nodes: g.nodes.clone(),
        edges: g
            .edges
            .iter()
            .filter(|[f, t]| !hidden.contains(t) && !deadends.contains(f))
            .copied()
            .collect(),
    }
}

fn query_params(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%2f", "/")))
        .collect()
}

impl TestServer {
    fn start(graph: Graph) -> TestServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let now = Arc::new(AtomicI64::new(0));
        let queries: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
        let (f2, n2, q2) = (files.clone(), now.clone(), queries.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut accept = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("accept:") {
                        accept = v.trim().to_string();
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (path, q) = target.split_once('?').unwrap_or((&target, ""));
                let (status, body) = if path == "/v1/graph" {
                    let p = query_params(q);
                    q2.lock().expect("lock").push(p.clone());
                    if accept != "application/json" {
                        (
                            406,
                            br#"{"kind":"invalid_accept","value":"want application/json"}"#
                                .to_vec(),
                        )
                    } else if p.get("stream").map(|s| s.is_empty()).unwrap_or(true) {
                        (
                            400,
                            br#"{"kind":"missing_stream","value":"stream is required"}"#.to_vec(),
                        )
                    } else {
                        let w: f64 = p
                            .get("rollout_wariness")
                            .and_then(|w| w.parse().ok())
                            .unwrap_or(1.0);
                        (
                            200,
                            fcos_policy(&graph, w, n2.load(Ordering::SeqCst)).to_json(),
                        )
                    }
                } else {
                    match f2.lock().expect("lock").get(path) {
                        Some(b) => (200, b.clone()),
                        None => (404, b"not found".to_vec()),
                    }
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
                let _ = conn.flush();
                let mut rest = Vec::new();
                let _ = conn.set_read_timeout(Some(Duration::from_millis(10)));
                let _ = conn.read_to_end(&mut rest);
            }
        });
        TestServer {
            url,
            files,
            now,
            queries,
        }
    }

    fn put(&self, path: &str, data: Option<Vec<u8>>) {
        let mut f = self.files.lock().expect("lock");
        match data {
            Some(d) => f.insert(path.to_string(), d),
            None => f.remove(path),
        };
    }
}

struct Case {
    booted: u8,
    now: i64,
    wariness: f64,
    allow_downgrade: bool,
    denied: Option<u8>,
    skipped: Option<&'static str>,
    want: Option<&'static str>,
}

const fn case(booted: u8, now: i64, wariness: f64, want: Option<&'static str>) -> Case {
    Case {
        booted,
        now,
        wariness,
        allow_downgrade: false,
        denied: None,
        skipped: None,
        want,
    }
}

#[test]
fn decision_table_static_and_cincinnati_agree() {
    let g = table_graph();
    let srv = TestServer::start(g.clone());
    let (bytes, sig) = signed(&g, 1, T0 + 365 * 86400);
    let path = format!("/graph/{STREAM}.json");
    srv.put(&path, Some(bytes));
    srv.put(&format!("{path}.sig"), Some(sig));
    let static_url = format!("{}{path}", srv.url);
    let keys = [key().verifying_key()];
    let h = 3600;
    let cases = [
        case(0, T0 - 1, 0.5, Some("3.0")), // highest edge out of 1.0 is the barrier
        case(1, T0 - 1, 0.5, Some("3.0")), // 2.0 → barrier
        case(0, T0 + 5 * h, 1.0, Some("3.0")), // older than the barrier: through it first
        case(2, T0 - 1, 0.5, None),        // nothing started yet
        case(2, T0 - 1, 0.0, Some("6.0")), // a 0.0 canary sees every release at once
        case(2, T0 + 1800, 0.4, Some("4.0")), // 4.0 at 50 %
        case(2, T0 + 1800, 0.6, None),     // … not yet for 0.6
        case(2, T0 + h - 1, 1.0, None),    // 99.97 % is not everyone
        case(2, T0 + h, 1.0, Some("4.0")), // the end of the rollout is everyone
        case(2, T0 + h + 1800, 0.4, Some("5.0")), // 5.0 at 50 % wins over 4.0
        case(2, T0 + h + 1800, 0.6, Some("4.0")),
        case(3, T0 + h + 1800, 0.4, Some("5.0")),
        case(4, T0 + 10 * h, 0.0, None), // 5.0 is a dead end
        case(3, T0 + 2 * h + 1, 0.4, Some("6.0")), // 6.0 paused at 50 %
        case(3, T0 + 2 * h + 1, 0.5, Some("6.0")), // 0.5 <= 0.5
        case(3, T0 + 2 * h + 1, 0.6, Some("5.0")),
        case(3, T0 + 1000 * h, 0.6, Some("5.0")), // a paused rollout stays paused
        case(5, T0 + 10 * h, 1.0, None),          // 6.0 → 4.0 is a downgrade
        Case {
            allow_downgrade: true,
            ..case(5, T0 + 10 * h, 1.0, Some("4.0"))
        },
        Case {
            denied: Some(3),
            ..case(2, T0 + h, 0.5, None) // rolled back from 4.0: never again
        },
        Case {
            denied: Some(3),
            ..case(2, T0 + h + 1800, 0.4, Some("5.0"))
        },
        Case {
            denied: Some(4),
            ..case(2, T0 + h + 1800, 0.4, Some("4.0"))
        },
        Case {
            skipped: Some("5.0"),
            ..case(2, T0 + h + 1800, 0.4, Some("4.0"))
        },
        case(9, T0, 0.5, None), // booted commit not in the graph
        case(2, T0 + 3 * h, 1.0, Some("5.0")),
    ];
    assert!(cases.len() >= 20);
    for (i, c) in cases.iter().enumerate() {
        srv.now.store(c.now, Ordering::SeqCst);
        let booted = csum(c.booted).to_hex();
        let mut policy = Policy {
            now: c.now,
            wariness: c.wariness,
            allow_downgrade: c.allow_downgrade,
            ..Policy::default()
        };
        if let Some(d) = c.denied {
            policy.denied_payloads.insert(csum(d).to_hex());
        }
        if let Some(s) = c.skipped {
            policy.skipped_versions.insert(s.to_string());
        }
        // Static: verified, then throttled here.
        let now = jiff::Timestamp::from_second(c.now).expect("ts");
        let (sg, _) = source::fetch_static(&static_url, &keys, STREAM, now, None, TIMEOUT)
            .expect("fetch")
            .expect("verified");
        let a: Decision = decide(
            &sg,
            &booted,
            &Policy {
                throttle: true,
                ..policy.clone()
            },
        );
        // Cincinnati: the server throttles for the wariness we send.
        let q = CincinnatiQuery {
            basearch: "x86_64".into(),
            stream: STREAM.into(),
            os_version: "x".into(),
            os_checksum: booted.clone(),
            group: "default".into(),
            node_uuid: "0123".into(),
            platform: "qemu".into(),
            rollout_wariness: Some(c.wariness),
        };
        let cg = source::fetch_cincinnati(&srv.url, &q, TIMEOUT).expect("cincinnati");
        let b = decide(
            &cg,
            &booted,
            &Policy {
                throttle: false,
                ..policy
            },
        );
        let got_a = a.target.as_ref().map(|r| r.version.as_str());
        let got_b = b.target.as_ref().map(|r| r.version.as_str());
        assert_eq!(got_a, c.want, "case {i} (static graph): {a:?}");
        assert_eq!(got_b, c.want, "case {i} (Cincinnati): {b:?}");
        assert_eq!(a.deadend, b.deadend, "case {i}");
        if c.booted == 4 {
            assert_eq!(a.deadend.as_deref(), Some("needs a manual migration"));
        }
        if let Some(r) = &a.target {
            assert_eq!(
                r.payload,
                csum(match r.version.as_str() {
                    "3.0" => 2,
                    "4.0" => 3,
                    "5.0" => 4,
                    "6.0" => 5,
                    _ => 99,
                })
                .to_hex()
            );
        }
    }
    // Zincati's query parameters, with the wariness at 6 decimals.
    let q = srv
        .queries
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .expect("a query");
    for k in [
        "basearch",
        "stream",
        "os_version",
        "os_checksum",
        "group",
        "node_uuid",
        "platform",
        "rollout_wariness",
    ] {
        assert!(q.contains_key(k), "query lacks {k}: {q:?}");
    }
    assert_eq!(
        q.get("rollout_wariness").map(String::as_str),
        Some("0.500000")
    );
    assert_eq!(q.get("stream").map(String::as_str), Some(STREAM));
    // A Cincinnati error is reported with its kind and value.
    let e = source::fetch_cincinnati(&srv.url, &CincinnatiQuery::default(), TIMEOUT)
        .expect_err("no stream");
    assert!(
        e.to_string().contains("missing_stream: stream is required"),
        "{e}"
    );
}

#[test]
fn phased_rollout_of_a_thousand_machines_follows_the_schedule() {
    use sha2::Digest;
    let mut g = Graph {
        stream: Some(STREAM.into()),
        ..Graph::default()
    };
    g.add_release("1", &csum(0)).expect("add");
    g.add_release("2", &csum(1)).expect("add");
    g.node_mut("2").expect("node").set_rollout(Some(Rollout {
        start_epoch: T0,
        start_value: 0.0,
        duration_minutes: Some(60),
    }));
    g.compute_edges();
    // Machine ids as systemd makes them: 32 hex digits, here from a counter through SHA-256.
    let ids: Vec<String> = (0..1000u32)
        .map(|i| format!("{:x}", sha2::Sha256::digest(i.to_be_bytes()))[..32].to_string())
        .collect();
    let warinesses: Vec<f64> = ids.iter().map(|id| derived_wariness(id, STREAM)).collect();
    let booted = csum(0).to_hex();
    let mut worst: f64 = 0.0;
    for minute in 0..=60i64 {
        let now = T0 + minute * 60;
        let offered = warinesses
            .iter()
            .filter(|w| {
                let p = Policy {
                    now,
                    wariness: **w,
                    ..Policy::default()
                };
                decide(&g, &booted, &p).target.is_some()
            })
            .count();
        let share = offered as f64 / 1000.0;
        let schedule = minute as f64 / 60.0;
        worst = worst.max((share - schedule).abs());
        assert!(
            (share - schedule).abs() <= 0.03,
            "minute {minute}: {share:.3} of the fleet offered, schedule {schedule:.3}"
        );
    }
    // Before the start nobody, at the end everybody.
    let before = warinesses
        .iter()
        .filter(|w| {
            decide(
                &g,
                &booted,
                &Policy {
                    now: T0 - 1,
                    wariness: **w,
                    ..Policy::default()
                },
            )
            .target
            .is_some()
        })
        .count();
    assert_eq!(before, 0);
    eprintln!("largest deviation from the schedule: {:.4}", worst);
}

#[test]
fn unsigned_tampered_expired_replayed_graphs_are_refused() {
    let g = table_graph();
    let keys = [key().verifying_key()];
    let now = jiff::Timestamp::from_second(T0).expect("ts");
    let (bytes, sig) = signed(&g, 5, T0 + 86400);
    let (ok, seen) = graph::verify(&bytes, Some(&sig), &keys, STREAM, now, None).expect("valid");
    assert_eq!(ok.nodes.len(), 6);
    assert_eq!(seen.serial, 5);
    let reason = |r: std::result::Result<(Graph, Seen), Rejection>| r.expect_err("refused");
    // Unsigned.
    let r = reason(graph::verify(&bytes, None, &keys, STREAM, now, None));
    assert_eq!(r, Rejection::Unsigned);
    assert!(r.to_string().contains("not signed"), "{r}");
    // Tampered: one payload changed after signing.
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    let evil = text.replacen(&csum(3).to_hex(), &csum(9).to_hex(), 1);
    assert_ne!(evil, text);
    let r = reason(graph::verify(
        evil.as_bytes(),
        Some(&sig),
        &keys,
        STREAM,
        now,
        None,
    ));
    assert_eq!(r, Rejection::BadSignature);
    assert!(r.to_string().contains("tampered"), "{r}");
    // Signed by another key.
    let other = SigningKey::from_bytes(&[7u8; 32]);
    let osig = graph::sign(&bytes, &other).expect("sign");
    assert_eq!(
        reason(graph::verify(&bytes, Some(&osig), &keys, STREAM, now, None)),
        Rejection::BadSignature
    );
    // Expired (freeze attack).
    let later = jiff::Timestamp::from_second(T0 + 86400).expect("ts");
    let r = reason(graph::verify(
        &bytes,
        Some(&sig),
        &keys,
        STREAM,
        later,
        None,
    ));
    assert!(matches!(r, Rejection::Expired { .. }), "{r:?}");
    assert!(r.to_string().contains("expired at"), "{r}");
    // Replayed: an older serial after a newer one was seen.
    let newer = Seen {
        serial: 6,
        sha256: "x".into(),
    };
    let r = reason(graph::verify(
        &bytes,
        Some(&sig),
        &keys,
        STREAM,
        now,
        Some(&newer),
    ));
    assert_eq!(r, Rejection::Replayed { serial: 5, seen: 6 });
    assert!(r.to_string().contains("replayed"), "{r}");
    // The same serial with other content.
    let (b2, s2) = signed(&table_graph(), 5, T0 + 2 * 86400);
    assert_eq!(
        reason(graph::verify(
            &b2,
            Some(&s2),
            &keys,
            STREAM,
            now,
            Some(&seen)
        )),
        Rejection::SameSerialDifferentContent { serial: 5 }
    );
    // The same graph again is fine.
    graph::verify(&bytes, Some(&sig), &keys, STREAM, now, Some(&seen)).expect("same graph");
    // Another stream's graph.
    let r = reason(graph::verify(
        &bytes,
        Some(&sig),
        &keys,
        "os/x86_64/next",
        now,
        None,
    ));
    assert!(matches!(r, Rejection::WrongStream { .. }), "{r:?}");
    // No keys configured: refused, not accepted.
    assert_eq!(
        reason(graph::verify(&bytes, Some(&sig), &[], STREAM, now, None)),
        Rejection::NoKeys
    );
}
