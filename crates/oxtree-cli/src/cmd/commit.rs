//! `commit`: a directory or tar archive as a new commit.

use super::Global;
use crate::cmd::sign::load_gpg_secret_keys;
use crate::progress::with_progress;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oxtree::repo::{CommitOptions, RefName, StatOverride};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CommitArgs {
    /// Branch (ref) to point at the new commit.
    #[arg(short = 'b', long)]
    pub branch: Option<String>,
    /// One-line subject.
    #[arg(short = 's', long)]
    pub subject: Option<String>,
    /// Full description.
    #[arg(short = 'm', long)]
    pub body: Option<String>,
    /// Read the description from FILE.
    #[arg(short = 'F', long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Parent commit checksum, or "none".
    #[arg(long)]
    pub parent: Option<String>,
    /// Create a commit without writing a ref.
    #[arg(long)]
    pub orphan: bool,
    /// Do not add the ostree.ref-binding metadata.
    #[arg(long)]
    pub no_bindings: bool,
    /// Add a ref to the ref binding.
    #[arg(long, value_name = "BRANCH")]
    pub bind_ref: Vec<String>,
    /// dir=PATH or tar=TARFILE: the tree to commit.
    #[arg(long, value_name = "dir=PATH|tar=FILE")]
    pub tree: Vec<String>,
    /// Add a KEY=VALUE string to the commit metadata.
    #[arg(long, value_name = "KEY=VALUE")]
    pub add_metadata_string: Vec<String>,
    /// Add KEY=VALUE metadata, VALUE in GVariant text format (e.g. true, 42, 'str', uint64 7).
    #[arg(long, value_name = "KEY=VALUE")]
    pub add_metadata: Vec<String>,
    /// Set every file's uid.
    #[arg(long)]
    pub owner_uid: Option<u32>,
    /// Set every file's gid.
    #[arg(long)]
    pub owner_gid: Option<u32>,
    /// Canonical permissions (uid/gid 0, modes masked to 0755, no xattrs), as bare-user-only.
    #[arg(long)]
    pub canonical_permissions: bool,
    /// Do not import extended attributes.
    #[arg(long)]
    pub no_xattrs: bool,
    /// File of paths (one per line, from the tree root) to leave out.
    #[arg(long, value_name = "PATH")]
    pub skip_list: Option<PathBuf>,
    /// File of mode changes: lines `+MODE /path` (add bits) or `=MODE /path` (set), MODE in decimal.
    #[arg(long, value_name = "PATH")]
    pub statoverride: Option<PathBuf>,
    /// Commit timestamp (ISO 8601, e.g. 2020-01-01T00:00:00Z), instead of now.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// fsync policy: true or false.
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// Add ostree.sizes metadata.
    #[arg(long)]
    pub generate_sizes: bool,
    /// Print KEY: VALUE lines instead of just the checksum.
    #[arg(long)]
    pub table_output: bool,
    /// Sign the commit with this base64 ed25519 secret key (repeatable).
    #[arg(long, value_name = "KEY")]
    pub sign: Vec<String>,
    /// Signature type for --sign (only ed25519).
    #[arg(long, default_value = "ed25519")]
    pub sign_type: String,
    /// Sign the commit with this OpenPGP key (fingerprint or key id; repeatable).
    #[arg(long, value_name = "KEY-ID")]
    pub gpg_sign: Vec<String>,
    /// GnuPG home directory holding the --gpg-sign keys (exported with gpg).
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<PathBuf>,
    /// Read --gpg-sign secret keys from this file (armored or binary) instead of GnuPG.
    #[arg(long, value_name = "FILE")]
    pub gpg_key_file: Option<PathBuf>,
    /// Directory to commit (instead of --tree=dir=).
    pub path: Option<PathBuf>,
}

pub fn run(g: &Global, a: CommitArgs) -> Result<()> {
    let mut repo = g.open()?;
    if let Some(f) = &a.fsync {
        repo.set_fsync(!matches!(f.as_str(), "false" | "no" | "0"));
    }
    let mut trees: Vec<String> = a.tree.clone();
    if let Some(p) = &a.path {
        trees.push(format!("dir={}", p.display()));
    }
    let tree = match trees.as_slice() {
        [] => bail!("no tree to commit: give a directory or --tree=dir=PATH"),
        [one] => one.clone(),
        _ => {
            bail!("several --tree arguments (overlays) are not supported yet; commit a single tree")
        }
    };
    if a.branch.is_none() && !a.orphan {
        bail!("a branch is required: use -b BRANCH, or --orphan for a commit without a ref");
    }
    let branch = a.branch.as_deref().map(RefName::parse).transpose()?;
    let mut body = a.body.clone().unwrap_or_default();
    if let Some(f) = &a.body_file {
        body = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    }
    let mut metadata = Vec::new();
    for kv in &a.add_metadata_string {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--add-metadata-string {kv:?}: expected KEY=VALUE"))?;
        metadata.push((k.to_string(), oxtree::gvariant::Value::str(v)));
    }
    for kv in &a.add_metadata {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--add-metadata {kv:?}: expected KEY=VALUE"))?;
        metadata.push((
            k.to_string(),
            gvtext::parse(v).map_err(|e| anyhow!("--add-metadata {k}: {e}"))?,
        ));
    }
    if !a.no_bindings {
        let mut binds: Vec<String> = a.branch.iter().cloned().collect();
        binds.extend(a.bind_ref.iter().cloned());
        binds.sort();
        binds.dedup();
        if !binds.is_empty() {
            metadata.push((
                "ostree.ref-binding".into(),
                oxtree::gvariant::Value::Array(
                    oxtree::gvariant::Type::Str,
                    binds
                        .into_iter()
                        .map(oxtree::gvariant::Value::Str)
                        .collect(),
                ),
            ));
        }
        // After the ref binding, as ostree adds them.
        if let Some(cid) = repo.config().get("core", "collection-id") {
            metadata.push((
                "ostree.collection-binding".into(),
                oxtree::gvariant::Value::str(cid),
            ));
        }
    }
    let parent = match a.parent.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(p) => Some(Some(repo.resolve_rev(p)?)),
    };
    let mut opts = CommitOptions {
        subject: a.subject.clone().unwrap_or_default(),
        body,
        timestamp: a
            .timestamp
            .as_deref()
            .map(timefmt::parse)
            .transpose()
            .map_err(|e| anyhow!(e))?,
        parent: parent.flatten(),
        metadata,
        owner_uid: a.owner_uid,
        owner_gid: a.owner_gid,
        canonical_permissions: a.canonical_permissions,
        no_xattrs: a.no_xattrs,
        generate_sizes: a.generate_sizes,
        progress: Some(std::sync::Arc::new(oxtree::progress::Progress::default())),
        ed25519_keys: Vec::new(),
        gpg_keys: Vec::new(),
        skip_list: HashSet::new(),
        statoverride: HashMap::new(),
    };
    if let Some(f) = &a.skip_list {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading skip list {}", f.display()))?;
        opts.skip_list = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(f) = &a.statoverride {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading statoverride file {}", f.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let (m, p) = line.split_once(' ').ok_or_else(|| {
                anyhow!(
                    "{}:{}: malformed statoverride line (no space)",
                    f.display(),
                    i + 1
                )
            })?;
            let ov = if let Some(v) = m.strip_prefix('=') {
                StatOverride::Set(
                    v.parse()
                        .with_context(|| format!("{}:{}: bad mode", f.display(), i + 1))?,
                )
            } else {
                StatOverride::Add(
                    m.trim_start_matches('+')
                        .parse()
                        .with_context(|| format!("{}:{}: bad mode", f.display(), i + 1))?,
                )
            };
            opts.statoverride.insert(p.to_string(), ov);
        }
    }
    if !a.sign.is_empty() && a.sign_type != "ed25519" {
        bail!("--sign-type={}: only ed25519 is supported", a.sign_type);
    }
    opts.ed25519_keys = a
        .sign
        .iter()
        .map(|k| oxtree::sign::parse_secret_key(k))
        .collect::<oxtree::Result<_>>()?;
    // OpenPGP keys are loaded first and the signature is made inside the commit's
    // transaction, before the branch moves (as ostree): a bad key id fails the commit and
    // leaves the branch where it was.
    for id in &a.gpg_sign {
        opts.gpg_keys.push((
            id.clone(),
            load_gpg_secret_keys(id, a.gpg_homedir.as_deref(), a.gpg_key_file.as_deref())?,
        ));
    }
    let bind = if a.orphan { None } else { branch.as_ref() };
    // Like ostree: without --parent, a commit to an existing branch follows its head.
    if parent.is_none() {
        if let Some(b) = bind {
            opts.parent = repo.read_ref(b)?;
        }
    }
    let progress = opts.progress.clone().unwrap_or_default();
    let res = with_progress("committing files", &progress, true, || -> Result<_> {
        if let Some(tarfile) = tree.strip_prefix("tar=") {
            Ok(repo.commit_tar(Path::new(tarfile), bind, &opts)?)
        } else if let Some(dir) = tree.strip_prefix("dir=") {
            Ok(repo.commit_dir(Path::new(dir), bind, &opts)?)
        } else {
            bail!("--tree={tree}: expected dir=PATH or tar=FILE");
        }
    })?;
    if a.table_output {
        println!("Commit: {}", res.commit);
        println!("Metadata Total: {}", res.files + 2);
        println!("Content Total: {}", res.files);
        println!("Content Written: {}", res.files_written);
    } else {
        println!("{}", res.commit);
    }
    Ok(())
}
