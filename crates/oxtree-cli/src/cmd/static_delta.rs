//! `static-delta`: generate, list, show, delete, indexes, reindex, verify, apply-offline —
//! ostree's subcommands with its output (`show` line for line) and its messages.

use super::Global;
use crate::output::human_size;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use oxtree::repo::{DeltaSigner, DeltaVerify};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StaticDeltaCmd {
    /// List static delta files.
    List {
        /// (Ignored, as ostree ignores them.)
        #[arg(hide = true)]
        ignored: Vec<String>,
    },
    /// Dump information on a delta.
    Show(NameArgs),
    /// Remove a delta.
    Delete(NameArgs),
    /// Generate static delta files (then run `summary -u` so clients find them).
    Generate(GenerateArgs),
    /// Apply static delta file.
    ApplyOffline(ApplyOfflineArgs),
    /// Verify static delta signatures.
    Verify(VerifyArgs),
    /// List static delta indexes.
    Indexes,
    /// Regenerate static delta indexes.
    Reindex(ReindexArgs),
}

#[derive(Args)]
pub struct NameArgs {
    /// The delta: FROM-TO, or TO for a scratch delta (full checksums).
    pub delta: Option<String>,
    /// Ignored (as ostree).
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

/// Generate static delta files.
#[derive(Args)]
pub struct GenerateArgs {
    /// Create delta from revision REV (default: the parent of TO).
    #[arg(long, value_name = "REV")]
    pub from: Option<String>,
    /// Create delta from scratch.
    #[arg(long)]
    pub empty: bool,
    /// Inline delta parts into main delta.
    #[arg(long)]
    pub inline: bool,
    /// Create delta to revision REV.
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Disable use of bsdiff.
    #[arg(long)]
    pub disable_bsdiff: bool,
    /// Only generate if a delta does not already exist.
    #[arg(short = 'n', long)]
    pub if_not_exists: bool,
    /// Choose metadata endianness ('l' or 'B').
    #[arg(long, value_name = "ENDIAN")]
    pub set_endianness: Option<String>,
    /// Swap metadata endianness from host order.
    #[arg(long)]
    pub swap_endianness: bool,
    /// Minimum uncompressed size in megabytes for individual HTTP request (regular files
    /// above it are left out of the parts, fetched as plain objects).
    #[arg(long, value_name = "MB")]
    pub min_fallback_size: Option<String>,
    /// Maximum size in megabytes to consider bsdiff compression for input files (oxtree's
    /// default 32; bsdiff costs ~9× the old file's size in memory).
    #[arg(long, value_name = "MB")]
    pub max_bsdiff_size: Option<String>,
    /// Maximum size of delta chunks in megabytes.
    #[arg(long, value_name = "MB")]
    pub max_chunk_size: Option<String>,
    /// Write the superblock to PATH, and the parts (unless --inline) as 0, 1, … in PATH's
    /// directory, instead of into the repository.
    #[arg(long, value_name = "PATH")]
    pub filename: Option<PathBuf>,
    /// Sign the delta with this key (ed25519: a base64 secret key).
    #[arg(long, value_name = "KEY_ID")]
    pub sign: Vec<String>,
    /// Signature type to use (defaults to 'ed25519').
    #[arg(long, value_name = "NAME")]
    pub sign_type: Option<String>,
    /// Read signing key(s) from file (one per line).
    #[arg(long, value_name = "PATH")]
    pub keys_file: Option<PathBuf>,
    /// The target commit, when --to is not given.
    pub rev: Option<String>,
    /// Ignored (as ostree).
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

/// Keys that a delta's signatures are checked with.
#[derive(Args)]
pub struct VerifyKeyArgs {
    /// Signature type to use (defaults to 'ed25519').
    #[arg(long, value_name = "NAME")]
    pub sign_type: Option<String>,
    /// Read key(s) from file (one base64 public key per line).
    #[arg(long, value_name = "PATH")]
    pub keys_file: Option<PathBuf>,
    /// Use this directory's trusted.ed25519(.d) and revoked.ed25519(.d) instead of the
    /// system's (/etc/ostree, /usr/share/ostree).
    #[arg(long, value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,
}

/// Verify static delta signatures.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub keys: VerifyKeyArgs,
    /// The delta: FROM-TO, or TO.
    pub delta: Option<String>,
    /// Keys to verify with (ed25519: base64 public keys).
    pub key_ids: Vec<String>,
}

/// Apply static delta file.
#[derive(Args)]
pub struct ApplyOfflineArgs {
    #[command(flatten)]
    pub keys: VerifyKeyArgs,
    /// A delta directory (superblock and parts) or a superblock file (parts beside it).
    pub path: Option<PathBuf>,
    /// Keys the delta must be signed with (ed25519: base64 public keys).
    pub key_ids: Vec<String>,
}

/// Regenerate static delta indexes.
#[derive(Args)]
pub struct ReindexArgs {
    /// Only update delta index to revision REV (a full checksum).
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Ignored (as ostree).
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

pub fn run(g: &Global, cmd: StaticDeltaCmd) -> Result<()> {
    match cmd {
        StaticDeltaCmd::Generate(a) => generate(g, a),
        StaticDeltaCmd::List { .. } => {
            let deltas = g.open()?.list_static_deltas()?;
            if deltas.is_empty() {
                println!("(No static deltas)");
            }
            for (f, t) in deltas {
                println!("{}", oxtree::delta::delta_name(f.as_ref(), &t));
            }
            Ok(())
        }
        StaticDeltaCmd::Indexes => {
            let idx = g.open()?.list_delta_indexes()?;
            if idx.is_empty() {
                println!("(No static deltas indexes)");
            }
            for c in idx {
                println!("{c}");
            }
            Ok(())
        }
        StaticDeltaCmd::Reindex(a) => {
            let repo = g.open()?;
            let to = match &a.to {
                Some(t) => Some(
                    t.parse::<oxtree::Checksum>()
                        .ok()
                        .filter(|_| !t.bytes().any(|b| b.is_ascii_uppercase()))
                        .ok_or_else(|| anyhow!("Invalid rev {t}"))?,
                ),
                None => None,
            };
            let _lock = repo.lock(false)?;
            repo.reindex_static_deltas_for(to.as_ref())?;
            Ok(())
        }
        StaticDeltaCmd::Show(a) => show(g, a),
        StaticDeltaCmd::Delete(a) => {
            let Some(name) = &a.delta else {
                bail!("DELTA must be specified");
            };
            g.open()?.delete_static_delta(name)?;
            Ok(())
        }
        StaticDeltaCmd::Verify(a) => verify(g, a),
        StaticDeltaCmd::ApplyOffline(a) => apply_offline(g, a),
    }
}

/// `g_ascii_strtoull (s, NULL, 10)` as ostree reads the size options: leading digits, else 0.
fn megabytes(s: &Option<String>, default: u64) -> u64 {
    match s {
        None => default,
        Some(s) => {
            let digits: String = s
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits
                .parse()
                .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX })
        }
    }
}

fn generate(g: &Global, a: GenerateArgs) -> Result<()> {
    let Some(to_rev) = a.to.clone().or_else(|| a.rev.clone()) else {
        bail!("TO revision must be specified");
    };
    if a.empty && a.from.is_some() {
        bail!("Cannot specify both --empty and --from=REV");
    }
    let mut big_endian = match a.set_endianness.as_deref() {
        None | Some("l") => false,
        Some("B") => true,
        Some(e) => bail!("Invalid endianness '{e}'"),
    };
    if a.swap_endianness {
        big_endian = !big_endian;
    }
    let repo = g.open()?;
    let from = match &a.from {
        Some(f) => Some(repo.resolve_rev(f)?),
        None => None,
    };
    let to = repo.resolve_rev(&to_rev)?;
    let from = match (from, a.empty) {
        (_, true) => None,
        (Some(f), false) => Some(f),
        (None, false) => Some(
            repo.load_commit(&to)?
                .parent
                .ok_or_else(|| anyhow!("Commit {to} has no parent"))?,
        ),
    };
    if a.if_not_exists && repo.has_static_delta(from.as_ref(), &to) {
        println!(
            "Delta {} already exists.",
            oxtree::delta::delta_name(from.as_ref(), &to)
        );
        return Ok(());
    }
    println!("Generating static delta:");
    println!(
        "  From: {}",
        from.map_or("empty".to_string(), |f| f.to_string())
    );
    println!("  To:   {to}");
    // Keys are read before anything is generated (ostree signs after): a bad key writes
    // nothing.
    let mut keys = a.sign.clone();
    if let Some(f) = &a.keys_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    let sign = if keys.is_empty() {
        None
    } else {
        Some(match a.sign_type.as_deref().unwrap_or("ed25519") {
            "ed25519" => DeltaSigner::Ed25519(
                keys.iter()
                    .map(|k| oxtree::sign::parse_secret_key(k))
                    .collect::<oxtree::Result<Vec<_>>>()?,
            ),
            "dummy" => {
                oxtree::sign::dummy::check_enabled()?;
                DeltaSigner::Dummy(keys)
            }
            _ => bail!("Requested signature type is not implemented"),
        })
    };
    let opts = oxtree::repo::DeltaOptions {
        max_chunk_size: megabytes(&a.max_chunk_size, 32)
            .max(1)
            .saturating_mul(1 << 20),
        min_fallback_size: megabytes(&a.min_fallback_size, 4).saturating_mul(1 << 20),
        max_bsdiff_size: if a.disable_bsdiff {
            0
        } else {
            megabytes(&a.max_bsdiff_size, 32).saturating_mul(1 << 20)
        },
        inline: a.inline,
        big_endian,
        sign,
        filename: a.filename.clone(),
    };
    let r = repo.generate_static_delta(from.as_ref(), &to, &opts)?;
    // ostree's statistics, on stderr.
    eprintln!("modified: {}", r.modified);
    eprintln!(
        "new reachable: metadata={} content regular={} symlink={}",
        r.new_metadata, r.new_regular, r.new_symlinks
    );
    eprintln!("rollsum for 0/{} modified", r.modified);
    for (i, (n, size, usize)) in r.part_sizes.iter().enumerate() {
        eprintln!(
            "part {} n:{n} compressed:{size} uncompressed:{usize}",
            i + 1
        );
    }
    eprintln!(
        "uncompressed={} compressed={} loose={}",
        r.uncompressed_size, r.size, r.loose_size
    );
    eprintln!("rollsum=0 objects, 0 bytes");
    eprintln!("bsdiff={} objects", r.patched);
    if r.fallbacks > 0 {
        eprintln!("fallbacks={} objects (fetched one by one)", r.fallbacks);
    }
    Ok(())
}

/// `show`: ostree's `_ostree_repo_static_delta_dump`, line for line. Like ostree, a part
/// that is not a file beside the superblock (an inlined one) ends the listing with an
/// error.
fn show(g: &Global, a: NameArgs) -> Result<()> {
    let Some(name) = &a.delta else {
        bail!("DELTA must be specified");
    };
    let repo = g.open()?;
    let info = repo.static_delta_info(name)?;
    let sb = &info.superblock;
    println!("Delta: {}", info.name);
    println!("Signed: {}", if info.signed { "yes" } else { "no" });
    match &sb.from {
        Some(f) => println!("From: {f}"),
        None => println!("From <scratch>"),
    }
    println!("To: {}", sb.to);
    println!("Endianness: {}", info.endianness);
    println!("Timestamp: {}", sb.timestamp);
    println!("Number of parents: {}", info.parents);
    println!("Number of fallback entries: {}", sb.fallbacks.len());
    let (mut fsize, mut fusize) = (0u64, 0u64);
    for f in &sb.fallbacks {
        println!("  {}", f.checksum);
        fsize = fsize.saturating_add(f.size);
        fusize = fusize.saturating_add(f.uncompressed_size);
    }
    println!("Total Fallback Size: {fsize} ({})", human_size(fsize));
    println!(
        "Total Fallback Uncompressed Size: {fusize} ({})",
        human_size(fusize)
    );
    println!("Number of parts: {}", sb.parts.len());
    let (mut size, mut usize) = (0u64, 0u64);
    for (i, p) in sb.parts.iter().enumerate() {
        size = size.saturating_add(p.size);
        usize = usize.saturating_add(p.uncompressed_size);
        println!(
            "PartMeta{i}: nobjects={} size={} usize={}",
            p.objects.len(),
            p.size,
            p.uncompressed_size
        );
        let pi = repo.static_delta_part_info(&info, i)?;
        println!(
            "PartPayload{i}: nmodes={} nxattrs={} blobsize={} opsize={}",
            pi.modes, pi.xattrs, pi.blob_size, pi.ops_size
        );
        let n = pi.ops;
        println!(
            "PartPayloadOps{i}: openspliceclose={} open={} write={} setread={} unsetread={} close={} bspatch={}",
            n[0], n[1], n[2], n[3], n[4], n[5], n[6]
        );
    }
    println!("Total Part Size: {size} ({})", human_size(size));
    println!(
        "Total Part Uncompressed Size: {usize} ({})",
        human_size(usize)
    );
    let (all, uall) = (size.saturating_add(fsize), usize.saturating_add(fusize));
    println!("Total Size: {all} ({})", human_size(all));
    println!("Total Uncompressed Size: {uall} ({})", human_size(uall));
    Ok(())
}

/// The keys a delta's signatures are checked with: `key_ids`, then --keys-file; for
/// ed25519 without any, the trusted keys of --keys-dir or of the system directories
/// (/etc/ostree, /usr/share/ostree). `None` when nothing asks for verification (no keys
/// anywhere: apply-offline then applies without checking, as ostree).
fn delta_keys(
    k: &VerifyKeyArgs,
    key_ids: &[String],
    load_default: bool,
) -> Result<Option<DeltaVerify>> {
    let mut keys = key_ids.to_vec();
    if let Some(f) = &k.keys_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    match k.sign_type.as_deref().unwrap_or("ed25519") {
        "dummy" => {
            // apply-offline refuses the test type unless enabled (verify does not), as
            // ostree 2022.7.
            if !load_default && !keys.is_empty() {
                oxtree::sign::dummy::check_enabled()?;
            }
            // ostree's dummy engine keeps only the last key it is given.
            match keys.pop() {
                Some(key) => Ok(Some(DeltaVerify::Dummy(key))),
                None if load_default => bail!("not implemented"),
                None => Ok(None),
            }
        }
        "ed25519" => {
            let bases = oxtree::sign::key_bases(k.keys_dir.as_deref());
            // (32 bytes that are no curve point verify nothing, as in ostree)
            let given = keys.len();
            let mut pks: Vec<_> = keys
                .iter()
                .map(|s| oxtree::sign::parse_public_key_lenient(s))
                .collect::<oxtree::Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            // Given keys of which none is a curve point: a verification that fails (with
            // "Verification fails" from `verify`), as with libsodium in ostree.
            if pks.is_empty() && given == 0 {
                // No KEY-IDs: the trusted keys of --keys-dir or of the system directories,
                // as ostree loads them. Where there are none, apply-offline applies
                // without verification (ostree drops the engine then) unless --keys-dir
                // was given; verify needs keys.
                pks = oxtree::sign::usable_keys(&oxtree::sign::trusted_keys_in(&bases)?);
                if pks.is_empty() {
                    if load_default || k.keys_dir.is_some() {
                        bail!(
                            "ed25519: no public keys: give KEY-IDs, --keys-file, or --keys-dir with a trusted.ed25519 list"
                        );
                    }
                    return Ok(None);
                }
            }
            let revoked = oxtree::sign::revoked_keys_in(&bases)?;
            Ok(Some(DeltaVerify::Ed25519 { keys: pks, revoked }))
        }
        _ => bail!("Requested signature type is not implemented"),
    }
}

fn verify(g: &Global, a: VerifyArgs) -> Result<()> {
    let Some(name) = &a.delta else {
        bail!("DELTA must be specified");
    };
    if !matches!(
        a.keys.sign_type.as_deref().unwrap_or("ed25519"),
        "ed25519" | "dummy"
    ) {
        println!("Sign-type not supported");
        bail!("Requested signature type is not implemented");
    }
    let how =
        delta_keys(&a.keys, &a.key_ids, true)?.ok_or_else(|| anyhow!("no keys to verify with"))?;
    let res = g
        .open()
        .and_then(|repo| Ok(repo.verify_static_delta(name, &how)?));
    match res {
        Ok(_) => {
            println!("Verification OK");
            Ok(())
        }
        Err(e) => {
            println!("Verification fails");
            Err(e)
        }
    }
}

fn apply_offline(g: &Global, a: ApplyOfflineArgs) -> Result<()> {
    let Some(path) = &a.path else {
        bail!("PATH must be specified");
    };
    let how = delta_keys(&a.keys, &a.key_ids, false)?;
    let repo = g.open()?;
    if std::fs::symlink_metadata(path).is_err() {
        return Err(super::Hinted {
            msg: "openat(O_DIRECTORY): No such file or directory".into(),
            hint: format!("{} does not exist", path.display()),
        }
        .into());
    }
    repo.apply_static_delta_offline(path, how.as_ref())?;
    Ok(())
}
