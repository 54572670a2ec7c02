//! `graph`: write, edit, sign and inspect a static update graph (the file the update agent
//! reads next to the repository; see `oxtree::agent::graph`).

use super::Global;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use oxtree::agent::graph::{Graph, Rollout};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum GraphCmd {
    /// Create an empty graph for STREAM (a ref such as os/x86_64/stable).
    Init {
        file: PathBuf,
        #[arg(long)]
        stream: String,
    },
    /// Add a release (the newest): REV is a ref or commit in --repo; its version is the
    /// commit's `version` metadata unless --version is given.
    Add(AddArgs),
    /// Set a release's phased rollout (or --clear it: the release then gets no edges).
    Rollout(RolloutArgs),
    /// Make a release a barrier: older machines must update to it first.
    Barrier(FlagArgs),
    /// Mark a release a dead end: machines on it are not updated automatically.
    Deadend(FlagArgs),
    /// Sign the graph: bump its serial, set its expiry and write FILE.sig.
    Sign(SignArgs),
    /// Show the releases and edges (and verify the signature with --verify-key).
    Show(ShowArgs),
}

#[derive(Args)]
pub struct AddArgs {
    pub file: PathBuf,
    pub rev: String,
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(Args)]
pub struct RolloutArgs {
    pub file: PathBuf,
    pub version: String,
    /// When the rollout starts (`now`, RFC 3339, `@SECONDS`, `2 hours`).
    #[arg(long, default_value = "now")]
    pub start: String,
    /// Fraction of the fleet (0.0–1.0) offered the release at the start.
    #[arg(long, default_value_t = 0.0)]
    pub start_fraction: f64,
    /// Minutes until the whole fleet is offered it (without: stays at --start-fraction,
    /// i.e. a paused rollout).
    #[arg(long)]
    pub duration_minutes: Option<u64>,
    /// Remove the rollout.
    #[arg(long, conflicts_with_all = ["duration_minutes"])]
    pub clear: bool,
}

#[derive(Args)]
pub struct FlagArgs {
    pub file: PathBuf,
    pub version: String,
    #[arg(long, required_unless_present = "clear")]
    pub reason: Option<String>,
    #[arg(long, conflicts_with = "reason")]
    pub clear: bool,
}

#[derive(Args)]
pub struct SignArgs {
    pub file: PathBuf,
    /// Base64 ed25519 secret keys (ostree's format).
    pub keys: Vec<String>,
    /// Read secret keys (base64, one per line) from FILE.
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// When the graph expires (`7 days`, RFC 3339, `@SECONDS`): clients refuse it after.
    #[arg(long, default_value = "7 days")]
    pub expires: String,
    /// Set this serial instead of the current one plus one (it may not go down).
    #[arg(long)]
    pub serial: Option<u64>,
}

#[derive(Args)]
pub struct ShowArgs {
    pub file: PathBuf,
    /// Verify FILE.sig with this base64 public key (also the expiry).
    #[arg(long)]
    pub verify_key: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

fn load(file: &Path) -> Result<Graph> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    Ok(Graph::parse(&bytes, &file.display().to_string())?)
}

/// `write_atomic` fsyncs the parent directory, which a bare file name does not name.
fn absolute(file: &Path) -> Result<PathBuf> {
    std::path::absolute(file).with_context(|| format!("resolve {}", file.display()))
}

fn save(file: &Path, g: &Graph) -> Result<()> {
    let file = &absolute(file)?;
    oxtree::fsutil::write_atomic(file, &g.to_json(), true)?;
    // An edit invalidates the signature: remove it rather than leave a stale one.
    let sig = sig_path(file);
    match std::fs::remove_file(&sig) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", sig.display())),
    }
    Ok(())
}

fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn time(s: &str) -> Result<i64> {
    let t = crate::timefmt::parse(s).map_err(anyhow::Error::msg)?;
    Ok(i64::try_from(t)?)
}

pub fn run(g: &Global, cmd: GraphCmd) -> Result<()> {
    match cmd {
        GraphCmd::Init { file, stream } => {
            oxtree::object::validate_ref(&stream).map_err(anyhow::Error::msg)?;
            if file.exists() {
                bail!("{} exists already", file.display());
            }
            save(
                &file,
                &Graph {
                    stream: Some(stream),
                    ..Graph::default()
                },
            )
        }
        GraphCmd::Add(a) => {
            let mut graph = load(&a.file)?;
            let (csum, version) = match (a.rev.parse::<oxtree::Checksum>(), &a.version) {
                (Ok(c), Some(v)) => (c, v.clone()),
                _ => {
                    let repo = g.open()?;
                    let c = repo.resolve_rev(&a.rev)?;
                    let v = match &a.version {
                        Some(v) => v.clone(),
                        None => repo
                            .load_commit(&c)?
                            .version()
                            .map(str::to_string)
                            .with_context(|| {
                                format!("commit {c} has no `version` metadata: pass --version")
                            })?,
                    };
                    (c, v)
                }
            };
            graph.add_release(&version, &csum)?;
            save(&a.file, &graph)?;
            println!("{version} {csum}");
            Ok(())
        }
        GraphCmd::Rollout(a) => {
            let mut graph = load(&a.file)?;
            let r = if a.clear {
                None
            } else {
                if !(0.0..=1.0).contains(&a.start_fraction) {
                    bail!("--start-fraction must be between 0.0 and 1.0");
                }
                Some(Rollout {
                    start_epoch: time(&a.start)?,
                    start_value: a.start_fraction,
                    duration_minutes: a.duration_minutes,
                })
            };
            graph.node_mut(&a.version)?.set_rollout(r);
            graph.compute_edges();
            save(&a.file, &graph)
        }
        GraphCmd::Barrier(a) => {
            let mut graph = load(&a.file)?;
            graph.node_mut(&a.version)?.set_barrier(a.reason.as_deref());
            graph.compute_edges();
            save(&a.file, &graph)
        }
        GraphCmd::Deadend(a) => {
            let mut graph = load(&a.file)?;
            graph.node_mut(&a.version)?.set_deadend(a.reason.as_deref());
            save(&a.file, &graph)
        }
        GraphCmd::Sign(a) => sign(a),
        GraphCmd::Show(a) => show(a),
    }
}

fn sign(a: SignArgs) -> Result<()> {
    let mut graph = load(&a.file)?;
    if graph.stream.is_none() {
        bail!(
            "{}: the graph names no stream (create it with `oxtree graph init --stream`)",
            a.file.display()
        );
    }
    let mut keys = a.keys.clone();
    if let Some(f) = &a.keys_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    if keys.is_empty() {
        bail!("no keys: give them as arguments or with --keys-file");
    }
    let keys = keys
        .iter()
        .map(|k| oxtree::sign::parse_secret_key(k))
        .collect::<oxtree::Result<Vec<_>>>()?;
    let old = graph.serial.unwrap_or(0);
    let serial = match a.serial {
        Some(s) if s < old => bail!("--serial {s} is lower than the graph's serial {old}"),
        Some(s) => s,
        None => old + 1,
    };
    let expires = jiff::Timestamp::from_second(time(&a.expires)?)?;
    graph.serial = Some(serial);
    graph.expires = Some(expires.to_string());
    let bytes = graph.to_json();
    let mut sig: Option<Vec<u8>> = None;
    for k in &keys {
        sig = Some(oxtree::sign::append_signature(sig.as_deref(), &bytes, k)?);
    }
    let file = absolute(&a.file)?;
    oxtree::fsutil::write_atomic(&file, &bytes, true)?;
    oxtree::fsutil::write_atomic(&sig_path(&file), &sig.unwrap_or_default(), true)?;
    println!("serial {serial}, expires {expires}");
    Ok(())
}

fn show(a: ShowArgs) -> Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("read {}", a.file.display()))?;
    let graph = Graph::parse(&bytes, &a.file.display().to_string())?;
    if !a.verify_key.is_empty() {
        let keys = a
            .verify_key
            .iter()
            .map(|k| oxtree::sign::parse_public_key(k))
            .collect::<oxtree::Result<Vec<_>>>()?;
        let sig = std::fs::read(sig_path(&a.file)).ok();
        let stream = graph.stream.clone().unwrap_or_default();
        if let Err(r) = oxtree::agent::graph::verify(
            &bytes,
            sig.as_deref(),
            &keys,
            &stream,
            jiff::Timestamp::now(),
            None,
        ) {
            return Err(oxtree::Error::UpdateGraph {
                url: a.file.display().to_string(),
                msg: r.to_string(),
            }
            .into());
        }
    }
    if a.json {
        return crate::output::print_json(&graph);
    }
    println!(
        "stream {}  serial {}  expires {}",
        graph.stream.as_deref().unwrap_or("-"),
        graph.serial.map_or("-".into(), |s| s.to_string()),
        graph.expires.as_deref().unwrap_or("-")
    );
    for (i, n) in graph.nodes.iter().enumerate() {
        let mut notes = Vec::new();
        if let Some(r) = n.rollout() {
            let start = jiff::Timestamp::from_second(r.start_epoch)
                .map(|t| t.to_string())
                .unwrap_or_default();
            notes.push(match r.duration_minutes {
                Some(d) => format!(
                    "rollout from {start} at {:.0}% over {d} min",
                    r.start_value * 100.0
                ),
                None => format!("rollout held at {:.0}% from {start}", r.start_value * 100.0),
            });
        }
        if n.is_barrier() {
            notes.push("barrier".into());
        }
        if let Some(r) = n.deadend() {
            notes.push(format!("dead end: {r}"));
        }
        let from: Vec<String> = graph
            .edges
            .iter()
            .filter(|[_, to]| *to == i)
            .filter_map(|[f, _]| graph.nodes.get(*f).map(|n| n.version.clone()))
            .collect();
        println!(
            "{} {} {}{}",
            n.version,
            n.payload,
            notes.join(", "),
            if from.is_empty() {
                String::new()
            } else {
                format!(" (from {})", from.join(" "))
            }
        );
    }
    Ok(())
}
