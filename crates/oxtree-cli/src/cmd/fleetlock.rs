//! `fleetlock`: the FleetLock reboot-coordination server (semaphores in etcd, airlock's
//! config, keys and values), its client calls, and admin verbs on the semaphores.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use oxtree::fleetlock::config::Config;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum FleetlockCmd {
    /// Serve the FleetLock protocol (POST /v1/pre-reboot, /v1/steady-state).
    Serve(ServeArgs),
    /// Take (or keep) a slot: what a machine does before rebooting.
    Lock(ClientArgs),
    /// Release a slot if held: what a machine does after a healthy boot.
    Unlock(ClientArgs),
    /// Show every configured group's semaphore as stored in etcd.
    Status(AdminArgs),
    /// Remove a holder from a semaphore (a machine that will never come back).
    Release(ReleaseArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// airlock's TOML config file (default: airlock's defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override [service] address.
    #[arg(long)]
    pub address: Option<String>,
    /// Override [service] port (0 = a free port).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub id: String,
    #[arg(long, default_value = "default")]
    pub group: String,
}

#[derive(Args)]
pub struct AdminArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReleaseArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub group: Option<String>,
    pub id: String,
}

fn load(p: &Option<PathBuf>) -> Result<Config> {
    Ok(match p {
        Some(p) => Config::load(p)?,
        None => Config::default_config(),
    })
}

fn etcd(c: &Config) -> Result<oxtree::fleetlock::etcd::Etcd> {
    Ok(oxtree::fleetlock::etcd::Etcd::new(
        &c.etcd3.endpoints,
        Duration::from_millis(c.etcd3.transaction_timeout_ms.max(100)),
    )?)
}

pub fn run(cmd: FleetlockCmd) -> Result<()> {
    match cmd {
        FleetlockCmd::Serve(a) => {
            let mut c = load(&a.config)?;
            if let Some(addr) = a.address {
                c.service.address = addr;
            }
            if let Some(p) = a.port {
                c.service.port = p;
            }
            // The server logs one line per request (info level) unless -v asked for more.
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
            oxtree::fleetlock::server::serve(c, |addr, status| {
                eprintln!("oxtree fleetlock: listening on http://{addr}");
                if let Some(s) = status {
                    eprintln!("oxtree fleetlock: metrics on http://{s}/metrics");
                }
            })?;
            Ok(())
        }
        FleetlockCmd::Lock(a) => {
            let c =
                oxtree::fleetlock::Client::new(&a.url, &a.id, &a.group, Duration::from_secs(30))?;
            c.pre_reboot()?;
            println!("locked: {} holds a slot in {}", a.id, a.group);
            Ok(())
        }
        FleetlockCmd::Unlock(a) => {
            let c =
                oxtree::fleetlock::Client::new(&a.url, &a.id, &a.group, Duration::from_secs(30))?;
            c.steady_state()?;
            println!("unlocked: {} holds no slot in {}", a.id, a.group);
            Ok(())
        }
        FleetlockCmd::Status(a) => {
            let c = load(&a.config)?;
            let e = etcd(&c)?;
            let mut rows = Vec::new();
            for (g, slots) in c.groups() {
                let sem = e.semaphore(&g)?;
                rows.push(serde_json::json!({
                    "group": g,
                    "configured_slots": slots,
                    "semaphore": sem,
                }));
                if !a.json {
                    match sem {
                        Some(s) => println!(
                            "{g}: {}/{} held: {}",
                            s.holders.len(),
                            s.total_slots,
                            s.holders.join(" ")
                        ),
                        None => println!("{g}: 0/{slots} (no semaphore yet)"),
                    }
                }
            }
            if a.json {
                crate::output::print_json(&rows)?;
            }
            Ok(())
        }
        FleetlockCmd::Release(a) => {
            let c = load(&a.config)?;
            let group = a.group.unwrap_or_else(|| c.lock.default_group_name.clone());
            let Some(slots) = c.slots(&group) else {
                bail!("group {group:?} is not in the config");
            };
            etcd(&c)?
                .unlock_if_held(&group, slots, &a.id)
                .map_err(|e| anyhow::anyhow!("release {} in {group}: {e:?}", a.id))?;
            println!("released: {} holds no slot in {group}", a.id);
            Ok(())
        }
    }
}
