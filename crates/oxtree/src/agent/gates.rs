//! Reboot gates: everything that must agree before the agent reboots into a staged
//! update. Staging never waits for them; only the reboot does. The local gates, checked
//! here in this order, are the operator's hold (`hold --until`, expires by itself), consent
//! (`[updates] consent`: wait for `oxtree agent reboot-now` or the consent file), the
//! maintenance windows, and systemd inhibitor locks. The state machine then runs the
//! pre-reboot hooks, takes the fleet lock, and warns logged-in users with a grace delay.
//!
//! Inhibitors and sessions come from logind through `busctl --json=short` (systemd's own
//! D-Bus client, in every systemd install): structured output, where `systemd-inhibit
//! --list` and `loginctl` print columns meant for people (a WHO or WHY with spaces breaks a
//! column parser), and no D-Bus library in the binary. When the system was booted with
//! systemd (`/run/systemd/system` exists) and logind cannot be asked, the gate stays
//! closed: Zincati once read a failed session query as "nobody logged in" and rebooted
//! under a user (fedora-coreos-tracker#1780). Without systemd there is no logind, so no
//! inhibitors and no sessions.

use super::windows::Schedule;
use jiff::Timestamp;
use std::path::Path;
use std::process::Command;

/// A logind inhibitor lock (`ListInhibitors` → `a(ssssuu)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inhibitor {
    pub what: String,
    pub who: String,
    pub why: String,
    pub mode: String,
    pub uid: u32,
    pub pid: u32,
}

impl Inhibitor {
    /// Only `block` locks on `shutdown` stop a reboot; `delay` locks only delay it.
    pub fn blocks_reboot(&self) -> bool {
        self.mode == "block" && self.what.split(':').any(|w| w == "shutdown")
    }
}

/// Parse `busctl --json=short call … ListInhibitors`: `{"type":"a(ssssuu)","data":[[…]]}`.
pub fn parse_inhibitors(json: &str) -> Result<Vec<Inhibitor>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("ListInhibitors reply: {e}"))?;
    let rows = v
        .get("data")
        .and_then(|d| d.get(0))
        .and_then(|d| d.as_array())
        .ok_or("ListInhibitors reply has no data array")?;
    rows.iter()
        .map(|r| {
            let s = |i: usize| r.get(i).and_then(|x| x.as_str()).map(str::to_string);
            let u = |i: usize| {
                r.get(i)
                    .and_then(|x| x.as_u64())
                    .and_then(|x| u32::try_from(x).ok())
            };
            let row = || {
                Some(Inhibitor {
                    what: s(0)?,
                    who: s(1)?,
                    why: s(2)?,
                    mode: s(3)?,
                    uid: u(4)?,
                    pid: u(5)?,
                })
            };
            row().ok_or_else(|| format!("ListInhibitors: unexpected row {r}"))
        })
        .collect()
}

fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn busctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("busctl")
        .arg("--json=short")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run busctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "busctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const LOGIN1: [&str; 2] = ["org.freedesktop.login1", "/org/freedesktop/login1"];

/// The inhibitor locks logind holds (none without systemd).
pub fn list_inhibitors() -> Result<Vec<Inhibitor>, String> {
    if !systemd_booted() {
        return Ok(Vec::new());
    }
    let out = busctl(&[
        "call",
        LOGIN1[0],
        LOGIN1[1],
        "org.freedesktop.login1.Manager",
        "ListInhibitors",
    ])?;
    parse_inhibitors(&out)
}

/// Logged-in user sessions (class `user`: a tty, SSH or graphical login; not greeters,
/// lock screens or the per-user service manager), as `(id, user)`.
pub fn user_sessions() -> Result<Vec<(String, String)>, String> {
    if !systemd_booted() {
        return Ok(Vec::new());
    }
    let out = busctl(&[
        "call",
        LOGIN1[0],
        LOGIN1[1],
        "org.freedesktop.login1.Manager",
        "ListSessions",
    ])?;
    // a(susso): id, uid, user, seat, object path.
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("ListSessions reply: {e}"))?;
    let rows = v
        .get("data")
        .and_then(|d| d.get(0))
        .and_then(|d| d.as_array())
        .ok_or("ListSessions reply has no data array")?;
    let mut users = Vec::new();
    for r in rows {
        let (Some(id), Some(user), Some(path)) = (
            r.get(0).and_then(|x| x.as_str()),
            r.get(2).and_then(|x| x.as_str()),
            r.get(4).and_then(|x| x.as_str()),
        ) else {
            return Err(format!("ListSessions: unexpected row {r}"));
        };
        let class = busctl(&[
            "get-property",
            LOGIN1[0],
            path,
            "org.freedesktop.login1.Session",
            "Class",
        ])?;
        let class: serde_json::Value =
            serde_json::from_str(&class).map_err(|e| format!("session {id} Class: {e}"))?;
        if class.get("data").and_then(|c| c.as_str()) == Some("user") {
            users.push((id.to_string(), user.to_string()));
        }
    }
    Ok(users)
}

/// Broadcast to every terminal (`wall`).
pub fn wall(message: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("wall")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wall: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(message.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("wall: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wall: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Write (or with `None` remove) the agent's MOTD fragment (`/run/motd.d/…`).
pub fn set_motd(path: &Path, text: Option<&str>) -> crate::Result<()> {
    use crate::error::IoContext;
    match text {
        Some(t) => {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).ctx("create directory", d)?;
            }
            crate::fsutil::write_atomic(path, t.as_bytes(), false)
        }
        None => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("remove", path),
        },
    }
}

/// Why a reboot waits; `kind()` is the metric label and the status word.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocked {
    Disabled,
    Hold {
        until: Timestamp,
    },
    Consent,
    Window {
        next: Option<Timestamp>,
    },
    Inhibitor {
        who: String,
        why: String,
    },
    InhibitorQuery(String),
    Hook {
        hook: String,
    },
    FleetLock(String),
    Users {
        until: Timestamp,
        users: Vec<String>,
    },
}

impl Blocked {
    pub fn kind(&self) -> &'static str {
        match self {
            Blocked::Disabled => "disabled",
            Blocked::Hold { .. } => "hold",
            Blocked::Consent => "consent",
            Blocked::Window { .. } => "window",
            Blocked::Inhibitor { .. } | Blocked::InhibitorQuery(_) => "inhibitor",
            Blocked::Hook { .. } => "hook",
            Blocked::FleetLock(_) => "fleet_lock",
            Blocked::Users { .. } => "users",
        }
    }
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Disabled => write!(f, "updates are disabled ([updates] enabled = false)"),
            Blocked::Hold { until } => write!(f, "held until {until} (oxtree agent hold)"),
            Blocked::Consent => write!(
                f,
                "waiting for consent: run `oxtree agent reboot-now` (or create the consent file)"
            ),
            Blocked::Window { next: Some(n) } => {
                write!(f, "outside the maintenance windows; the next opens at {n}")
            }
            Blocked::Window { next: None } => write!(f, "outside the maintenance windows"),
            Blocked::Inhibitor { who, why } => {
                write!(f, "a shutdown inhibitor lock is held by {who}: {why}")
            }
            Blocked::InhibitorQuery(e) => write!(
                f,
                "cannot ask logind for inhibitor locks, so not rebooting: {e}"
            ),
            Blocked::Hook { hook } => write!(f, "pre-reboot hook {hook} asked to retry later"),
            Blocked::FleetLock(e) => write!(f, "fleet lock not granted: {e}"),
            Blocked::Users { until, users } => write!(
                f,
                "users logged in ({}): warned, rebooting at {until}",
                users.join(", ")
            ),
        }
    }
}

/// The local gates, pure so the tests can drive every combination with an injected clock.
#[derive(Debug, Clone)]
pub struct Local<'a> {
    pub now: Timestamp,
    pub enabled: bool,
    pub hold_until: Option<Timestamp>,
    pub consent_required: bool,
    /// Consent given (`reboot-now` or the consent file) for the staged release.
    pub consent_given: bool,
    /// `reboot-now`: the operator overrides the hold and the windows (not inhibitors nor
    /// the fleet lock: those protect others).
    pub reboot_now: bool,
    pub windows: Option<&'a Schedule>,
    pub respect_inhibitors: bool,
    pub inhibitors: &'a Result<Vec<Inhibitor>, String>,
}

pub fn check_local(g: &Local) -> Result<(), Blocked> {
    if !g.enabled && !g.reboot_now {
        return Err(Blocked::Disabled);
    }
    if let Some(until) = g.hold_until {
        if g.now < until && !g.reboot_now {
            return Err(Blocked::Hold { until });
        }
    }
    if g.consent_required && !g.consent_given && !g.reboot_now {
        return Err(Blocked::Consent);
    }
    if let Some(s) = g.windows {
        if !s.allows(g.now) && !g.reboot_now {
            return Err(Blocked::Window {
                next: s.next_open(g.now),
            });
        }
    }
    if g.respect_inhibitors {
        match g.inhibitors {
            Err(e) => return Err(Blocked::InhibitorQuery(e.clone())),
            Ok(list) => {
                if let Some(i) = list.iter().find(|i| i.blocks_reboot()) {
                    return Err(Blocked::Inhibitor {
                        who: i.who.clone(),
                        why: i.why.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::windows::{PeriodicConfig, WindowConfig};

    /// The shape `busctl --json=short call … ListInhibitors` prints (`data` holds the
    /// return values, a struct is an array). Written by hand: this test machine has no
    /// logind; the QEMU e2e is where a real one answers.
    const LIST: &str = r#"{"type":"a(ssssuu)","data":[[["shutdown:sleep","ModemManager","ModemManager needs to reset devices","delay",0,621],["shutdown","backup job","nightly backup, do not reboot","block",0,4242],["sleep","UPower","Pause device polling","delay",0,800]]]}"#;

    #[test]
    fn inhibitors_parse_and_only_block_shutdown_counts() {
        let l = parse_inhibitors(LIST).expect("parse");
        assert_eq!(l.len(), 3);
        assert_eq!(
            l.iter()
                .filter(|i| i.blocks_reboot())
                .map(|i| i.who.as_str())
                .collect::<Vec<_>>(),
            ["backup job"]
        );
        assert!(parse_inhibitors(r#"{"type":"a(ssssuu)","data":[[]]}"#)
            .expect("empty")
            .is_empty());
        assert!(parse_inhibitors("not json").is_err());
        assert!(parse_inhibitors(r#"{"data":[[["x"]]]}"#).is_err());
    }

    #[test]
    fn gate_matrix() {
        let sched = Schedule::parse(&PeriodicConfig {
            time_zone: Some("UTC".into()),
            window: vec![WindowConfig {
                days: vec!["Sat".into()],
                start_time: "02:00".into(),
                length_minutes: 120,
            }],
        })
        .expect("schedule");
        let in_window: Timestamp = "2026-12-05T03:00:00Z".parse().expect("ts");
        let outside: Timestamp = "2026-12-05T05:00:00Z".parse().expect("ts");
        let none = Ok(Vec::new());
        let blocking = parse_inhibitors(LIST);
        let broken: Result<Vec<Inhibitor>, String> = Err("no bus".into());
        let base = Local {
            now: in_window,
            enabled: true,
            hold_until: None,
            consent_required: false,
            consent_given: false,
            reboot_now: false,
            windows: Some(&sched),
            respect_inhibitors: true,
            inhibitors: &none,
        };
        let kind = |l: &Local| check_local(l).err().map(|b| b.kind());
        assert_eq!(kind(&base), None);
        assert_eq!(
            kind(&Local {
                now: outside,
                ..base.clone()
            }),
            Some("window")
        );
        assert_eq!(
            kind(&Local {
                enabled: false,
                ..base.clone()
            }),
            Some("disabled")
        );
        let later = in_window
            .checked_add(jiff::SignedDuration::from_hours(1))
            .expect("ts");
        assert_eq!(
            kind(&Local {
                hold_until: Some(later),
                ..base.clone()
            }),
            Some("hold")
        );
        // A hold in the past has expired by itself.
        let earlier = in_window
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .expect("ts");
        assert_eq!(
            kind(&Local {
                hold_until: Some(earlier),
                ..base.clone()
            }),
            None
        );
        assert_eq!(
            kind(&Local {
                consent_required: true,
                ..base.clone()
            }),
            Some("consent")
        );
        assert_eq!(
            kind(&Local {
                consent_required: true,
                consent_given: true,
                ..base.clone()
            }),
            None
        );
        assert_eq!(
            kind(&Local {
                inhibitors: &blocking,
                ..base.clone()
            }),
            Some("inhibitor")
        );
        assert_eq!(
            kind(&Local {
                inhibitors: &broken,
                ..base.clone()
            }),
            Some("inhibitor")
        );
        assert_eq!(
            kind(&Local {
                inhibitors: &blocking,
                respect_inhibitors: false,
                ..base.clone()
            }),
            None
        );
        // reboot-now overrides hold, consent and windows, never an inhibitor.
        let now_req = Local {
            reboot_now: true,
            now: outside,
            hold_until: Some(later),
            consent_required: true,
            ..base.clone()
        };
        assert_eq!(kind(&now_req), None);
        assert_eq!(
            kind(&Local {
                inhibitors: &blocking,
                ..now_req
            }),
            Some("inhibitor")
        );
        let e = check_local(&Local {
            now: outside,
            ..base
        })
        .expect_err("blocked");
        assert!(e.to_string().contains("2026-12-12T02:00:00Z"), "{e}");
    }
}
