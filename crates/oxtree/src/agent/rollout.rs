//! Phased rollouts: how much of the fleet a release is offered to at an instant (FCOS's
//! policy engine `throttle_rollouts`), and where this machine stands in the fleet (its
//! wariness). A release is offered once `wariness <= throttling(now)`, so machines with a
//! low wariness get it first and an explicit wariness of 0.0 (a canary) sees it even
//! before the rollout starts.
//!
//! FCOS derives the default wariness with Rust's `DefaultHasher`, which is not stable
//! across Rust versions: a rebuilt server reshuffles the fleet. Here it is SHA-256 of the
//! node id and the stream, the same for every build, and computed on the machine, so a
//! static graph on a CDN needs no server to phase a rollout.

use super::graph::Rollout;
use sha2::{Digest, Sha256};

/// Fraction of the fleet (0.0–1.0) a release with `rollout` is offered to at `now`
/// (seconds since the epoch): 0 before the start, then linear from `start_value` to 1
/// over `duration_minutes`, 1 after; without a duration it stays at `start_value`.
pub fn throttling(rollout: Option<&Rollout>, now: i64) -> f64 {
    let Some(r) = rollout else {
        // A release without rollout metadata (a Cincinnati server that already throttled)
        // is not throttled again.
        return 1.0;
    };
    if now < r.start_epoch {
        return 0.0;
    }
    match r.duration_minutes {
        None => r.start_value,
        Some(d) => {
            let total = d.saturating_mul(60) as f64;
            let elapsed = now.saturating_sub(r.start_epoch) as f64;
            if elapsed >= total {
                1.0
            } else {
                r.start_value + (1.0 - r.start_value) * elapsed / total
            }
        }
    }
}

/// Is a release offered to a machine of this wariness at `now`? (FCOS hides the edge when
/// `wariness > throttling`.)
pub fn offered(rollout: Option<&Rollout>, wariness: f64, now: i64) -> bool {
    wariness <= throttling(rollout, now)
}

/// Round to the 6 decimals the Cincinnati query carries, upwards so the result stays in
/// (0, 1] and a static graph and a server compare the same number.
pub fn round_wariness(w: f64) -> f64 {
    if !w.is_finite() {
        return 1.0;
    }
    ((w.clamp(0.0, 1.0) * 1e6).ceil() / 1e6).clamp(0.0, 1.0)
}

/// The wariness of a machine that did not configure one: SHA-256 of the node id and the
/// stream, mapped uniformly onto (0, 1] (53 bits, what an f64 holds exactly), rounded up to
/// 6 decimals. Per stream, so a machine is not always last on every stream.
pub fn derived_wariness(node_id: &str, stream: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(b"oxtree rollout wariness\0");
    h.update(node_id.as_bytes());
    h.update(b"\0");
    h.update(stream.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    let x = u64::from_be_bytes(first) >> 11;
    round_wariness((x as f64 + 1.0) / (1u64 << 53) as f64).max(0.000_001)
}

/// oxtree's application id for `sd_id128_get_machine_app_specific()`: the node id sent to
/// servers is derived from the machine id but does not reveal it (as Zincati does with
/// its own id).
pub const APP_ID: [u8; 16] = [
    0x6f, 0x78, 0x74, 0x72, 0x65, 0x65, 0x4a, 0x61, 0x9d, 0x1b, 0x5c, 0x27, 0x40, 0xe2, 0x83, 0x11,
];

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// systemd's app-specific machine id (`systemd-id128 machine-id -a APP`): HMAC-SHA256
/// keyed by the machine id over the app id, truncated to 128 bits and marked as a v4
/// UUID; 32 lowercase hex digits. `None` if `machine_id` is not 32 hex digits.
pub fn app_specific_id(machine_id: &str, app: &[u8; 16]) -> Option<String> {
    let m = machine_id.trim();
    if m.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(m.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let h = hmac_sha256(&key, app);
    let mut id = [0u8; 16];
    id.copy_from_slice(h.get(..16)?);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_follows_the_schedule() {
        let r = Rollout {
            start_epoch: 1000,
            start_value: 0.2,
            duration_minutes: Some(10),
        };
        assert_eq!(throttling(Some(&r), 999), 0.0);
        assert!((throttling(Some(&r), 1000) - 0.2).abs() < 1e-12);
        assert!((throttling(Some(&r), 1300) - 0.6).abs() < 1e-12);
        assert_eq!(throttling(Some(&r), 1600), 1.0);
        let paused = Rollout {
            duration_minutes: None,
            ..r
        };
        assert_eq!(throttling(Some(&paused), 1_000_000), 0.2);
        assert!(
            offered(Some(&r), 0.0, 0),
            "a 0.0 canary sees it before the start"
        );
        assert!(!offered(Some(&r), 0.000_001, 0));
        assert_eq!(throttling(None, 0), 1.0);
    }

    #[test]
    fn wariness_is_stable_and_in_range() {
        let w = derived_wariness("0123456789abcdef0123456789abcdef", "os/x86_64/stable");
        // Pinned: a change here reshuffles every fleet.
        assert_eq!(
            w,
            derived_wariness("0123456789abcdef0123456789abcdef", "os/x86_64/stable")
        );
        assert!(w > 0.0 && w <= 1.0);
        assert_ne!(
            w,
            derived_wariness("0123456789abcdef0123456789abcdef", "os/x86_64/next")
        );
        assert_eq!(round_wariness(0.1234561), 0.123457);
        assert_eq!(round_wariness(f64::NAN), 1.0);
    }

    #[test]
    fn app_specific_id_matches_systemd() {
        // RFC 4231 test case 2 checks the HMAC; the id itself was printed by the real
        // `systemd-id128 machine-id -a 6f78747265654a619d1b5c2740e28311` (systemd 252) on a
        // machine whose /etc/machine-id is the one below.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            app_specific_id("3d1219c7c4c5404aaa1f6d2a48adfda4", &APP_ID).as_deref(),
            Some("5ed292ac17314cd799f0ae5cf31c3929")
        );
        assert!(app_specific_id("xyz", &APP_ID).is_none());
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }
}
