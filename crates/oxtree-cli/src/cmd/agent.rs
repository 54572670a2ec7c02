//! `agent`: the update agent daemon (`oxtree agent` / `oxtree agent run`) and the
//! operator's commands that see and steer it. The commands write the agent's controls file
//! and wake the running daemon through its control socket; they work (and are kept) when
//! no daemon runs.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use oxtree::agent::config::{self, Loaded};
use oxtree::agent::machine;
use oxtree::agent::state;
use std::path::PathBuf;

#[derive(Args)]
pub struct AgentArgs {
    /// Drop-in directories, lowest precedence first (default: /usr/lib/oxtree/agent.d,
    /// /etc/oxtree/agent.d, /run/oxtree/agent.d).
    #[arg(long = "config-dir", global = true, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    #[command(subcommand)]
    pub cmd: Option<AgentCmd>,
}

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Run the daemon (the default).
    Run,
    /// Show the state, the staged update, what the reboot waits for, held-back releases.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check for an update now.
    CheckNow,
    /// Reboot into the staged update now: gives consent and overrides the hold and the
    /// maintenance windows (not inhibitor locks, not the fleet lock).
    RebootNow,
    /// Do not reboot for updates until a time (`2 hours`, `2026-12-24T00:00:00Z`); the
    /// hold ends by itself. Staging goes on.
    Hold {
        #[arg(long, required_unless_present = "clear")]
        until: Option<String>,
        #[arg(long, conflicts_with = "until")]
        clear: bool,
    },
    /// Never update to VERSION (until `unblock`).
    Skip { version: String },
    /// Offer again the releases this machine rolled back from, skipped or aborted, and
    /// release a fleet lock slot kept after a rollback.
    Unblock,
    /// Show the configuration.
    Config {
        /// Every effective key with the file that set it.
        #[arg(long)]
        dump: bool,
    },
}

/// Holds longer than this are refused: a forgotten hold leaves a machine unpatched.
const MAX_HOLD_DAYS: u64 = 90;

fn load(a: &AgentArgs) -> Result<Loaded> {
    let dirs: Vec<PathBuf> = if a.config_dir.is_empty() {
        config::DEFAULT_DIRS.iter().map(PathBuf::from).collect()
    } else {
        a.config_dir.clone()
    };
    let l = config::load(&dirs)?;
    for w in &l.warnings {
        eprintln!("warning: {w}");
    }
    Ok(l)
}

fn poke(l: &Loaded, what: &str) -> Result<()> {
    if machine::poke(&l.config.agent.run_dir)? {
        println!("{what}");
    } else {
        println!("{what} (the agent is not running: it acts on this when it starts)");
    }
    Ok(())
}

pub fn run(a: AgentArgs) -> Result<()> {
    let l = load(&a)?;
    let dir = l.config.agent.state_dir.clone();
    match a.cmd.unwrap_or(AgentCmd::Run) {
        AgentCmd::Run => {
            super::ignore_sigpipe();
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
            let opts = machine::Options {
                hang_in: std::env::var("OXTREE_AGENT_HANG_IN").ok(),
            };
            machine::run_daemon(l, opts)?;
            Ok(())
        }
        AgentCmd::Status { json } => status(&l, json),
        AgentCmd::CheckNow => {
            state::update_controls(&dir, |c| c.check_now += 1)?;
            poke(&l, "update check requested")
        }
        AgentCmd::RebootNow => {
            state::update_controls(&dir, |c| c.reboot_now += 1)?;
            poke(&l, "reboot into the staged update requested")
        }
        AgentCmd::Hold { until, clear } => {
            let t = match (until, clear) {
                (_, true) => None,
                (Some(u), false) => {
                    let t = crate::timefmt::parse(&u).map_err(anyhow::Error::msg)?;
                    let now = jiff::Timestamp::now().as_second().max(0) as u64;
                    if t <= now {
                        bail!("--until {u:?} is in the past");
                    }
                    if t - now > MAX_HOLD_DAYS * 86400 {
                        bail!("--until {u:?} is more than {MAX_HOLD_DAYS} days away; a forgotten hold leaves the machine unpatched");
                    }
                    Some(i64::try_from(t)?)
                }
                (None, false) => bail!("give --until TIME or --clear"),
            };
            state::update_controls(&dir, |c| c.hold_until = t)?;
            match t {
                Some(t) => poke(
                    &l,
                    &format!("reboots held until {}", jiff::Timestamp::from_second(t)?),
                ),
                None => poke(&l, "hold cleared"),
            }
        }
        AgentCmd::Skip { version } => {
            state::update_controls(&dir, |c| {
                c.skipped.insert(version.clone());
            })?;
            poke(
                &l,
                &format!("{version} will not be installed (until `oxtree agent unblock`)"),
            )
        }
        AgentCmd::Unblock => {
            state::update_controls(&dir, |c| {
                c.unblock += 1;
                c.skipped.clear();
            })?;
            poke(
                &l,
                "rolled-back, skipped and aborted releases are offered again",
            )
        }
        AgentCmd::Config { dump } => {
            for f in &l.files {
                println!("# read {}", f.display());
            }
            for f in &l.masked {
                println!("# masked {}", f.display());
            }
            if dump {
                for (k, v, src) in l.dump() {
                    println!("{k} = {v}    # {src}");
                }
            } else {
                print!("{}", l.to_toml());
            }
            Ok(())
        }
    }
}

fn time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn status(l: &Loaded, json: bool) -> Result<()> {
    let dir = &l.config.agent.state_dir;
    let p = state::load_state(dir)?;
    let c = state::load_controls(dir)?;
    let running =
        std::os::unix::net::UnixStream::connect(machine::control_socket(&l.config.agent.run_dir))
            .is_ok();
    let st = p.state();
    if json {
        let v = serde_json::json!({
            "state": st.name(),
            "detail": st,
            "since": p.since,
            "running": running,
            "booted_version": p.booted_version,
            "last_check": p.last_check,
            "last_error": p.last_error,
            "hold_until": c.hold_until,
            "skipped": c.skipped,
            "aborted": p.aborted,
            "denied": p.denied,
            "rolled_back": p.rolled_back,
            "graph_seen": p.graph_seen,
            "fleet_lock_slot_kept": p.slot_kept,
            "config_warnings": l.warnings,
        });
        return crate::output::print_json(&v);
    }
    println!(
        "State: {} (since {}){}",
        st.name(),
        time(p.since),
        if running {
            ""
        } else {
            " — the agent is not running"
        }
    );
    if let Some(t) = st.target() {
        println!("  Update: {} ({})", t.version, t.payload);
    }
    match &st {
        state::State::Waiting { reason, .. } => println!("  Reboot waits: {reason}"),
        state::State::Verifying {
            reason: Some(r), ..
        } => println!("  {r}"),
        state::State::DeadEnd { reason } => {
            println!("  The booted release is a dead end: {reason}")
        }
        state::State::Available {
            attempts,
            last_error: Some(e),
            ..
        } => println!("  Staging failed {attempts} time(s): {e}"),
        _ => {}
    }
    if let Some(v) = &p.booted_version {
        println!("Booted: {v}");
    }
    if let Some(t) = p.last_check {
        println!("Last check: {}", time(t));
    }
    if let Some(e) = &p.last_error {
        println!("Last error: {e}");
    }
    if let Some(h) = c.hold_until {
        if h > jiff::Timestamp::now().as_second() {
            println!("Held until: {}", time(h));
        }
    }
    if let Some(rb) = &p.rolled_back {
        println!(
            "Rolled back: {} — never offered again (`oxtree agent unblock`){}",
            rb.version,
            if p.slot_kept {
                "; this machine keeps its fleet lock slot"
            } else {
                ""
            }
        );
    }
    for (payload, d) in &p.denied {
        println!("Not offered: {} ({payload}): {}", d.version, d.reason);
    }
    for v in &c.skipped {
        println!("Skipped: {v}");
    }
    for v in &p.aborted {
        println!("Aborted by a hook: {v}");
    }
    for w in &l.warnings {
        println!("Config warning: {w}");
    }
    Ok(())
}
