//! `admin status`: ostree's listing, line for line (a staged deployment first, then the
//! boot order; `*` marks the booted one, `(pending)`/`(rollback)` the first of its stateroot
//! before/after it). oxtree adds lines, never changes ostree's: boot counting (`Boot: …`)
//! and a locked finalization. `--json` is a typed, versioned document with the same facts.

use super::boot::warn_finalize_failure;
use crate::cmd::Global;
use anyhow::{bail, Result};
use clap::Args;
use oxtree::object::Checksum;
use oxtree::sysroot::{Deployment, Sysroot, Unlocked};
use serde::Serialize;

/// List deployments: the default first, with their version and origin.
#[derive(Args)]
pub struct StatusArgs {
    /// Print the commit verification status.
    #[arg(long, short = 'V')]
    pub verify: bool,
    /// Print the deployments as JSON.
    #[arg(long, short = 'J')]
    pub json: bool,
    /// Print "default" if the booted deployment is the default one, else "not-default".
    #[arg(long, short = 'D')]
    pub is_default: bool,
    /// Leave the signature lines (of --verify) out.
    #[arg(long, short = 'S')]
    pub skip_signatures: bool,
    /// (Arguments after the options are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

/// `admin status --json`, version 1.
#[derive(Serialize)]
struct StatusJson {
    /// The version of this document's layout.
    version: u32,
    deployments: Vec<DeploymentJson>,
}

#[derive(Serialize)]
struct DeploymentJson {
    /// The index `pin`, `undeploy`, `set-default` take (none for a staged deployment).
    index: Option<usize>,
    stateroot: String,
    checksum: String,
    serial: u32,
    booted: bool,
    pending: bool,
    rollback: bool,
    staged: bool,
    pinned: bool,
    /// `none`, `development`, `transient` or `hotfix` (`admin unlock`).
    unlocked: &'static str,
    /// The origin's refspec.
    origin: Option<String>,
    version: Option<String>,
    /// The commit's timestamp (seconds since the epoch).
    timestamp: Option<u64>,
    bootcsum: String,
    /// Boot counting: tries left before the bootloader falls back (none: not counted).
    tries_left: Option<u32>,
    /// Boot counting: it used up its tries without being marked good.
    failed: bool,
    /// A staged deployment whose finalization is locked.
    finalization_locked: bool,
}

/// Bold red on a terminal, as ostree marks an unlocked deployment.
fn red_bold(s: &str) -> String {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(1) } == 1 {
        format!("\x1b[31m\x1b[1m{s}\x1b[22m\x1b[39m")
    } else {
        s.to_string()
    }
}

pub fn status(g: &Global, a: StatusArgs) -> Result<()> {
    let StatusArgs {
        verify,
        json,
        is_default,
        skip_signatures,
        ..
    } = a;
    let sr = g.sysroot();
    // Not a sysroot at all (a mistyped --sysroot): ostree fails loading it, it does not
    // report an empty one.
    if let Err(e) = std::fs::read_dir(sr.path()) {
        bail!(
            "opendir({}): {}",
            sr.path().display(),
            crate::output::strerror(&e)
        );
    }
    let repo = sr.path().join("ostree/repo");
    if let Err(e) = std::fs::read_dir(&repo) {
        bail!(
            "loading sysroot: opendir(ostree/repo): {}",
            crate::output::strerror(&e)
        );
    }
    let deps = sr.deployments()?;
    let staged = sr.staged_deployment()?;
    if is_default {
        // The default is what the next boot starts: a staged deployment when there is one.
        let booted_is_default = staged.is_none() && deps.first().is_some_and(|d| d.booted);
        println!(
            "{}",
            if booted_is_default {
                "default"
            } else {
                "not-default"
            }
        );
        return Ok(());
    }
    if !json {
        warn_finalize_failure(&sr);
    }
    // ostree's list: the staged deployment first.
    let list: Vec<(Option<usize>, &Deployment)> = staged
        .iter()
        .map(|d| (None, d))
        .chain(deps.iter().map(|d| (Some(d.index), d)))
        .collect();
    let booted = list.iter().position(|(_, d)| d.booted);
    // ostree_sysroot_query_deployments_for: in the booted deployment's stateroot, the first
    // one before it is pending, the first one after it the rollback.
    let (mut pending, mut rollback) = (None, None);
    if let Some(b) = booted {
        let os = &list[b].1.stateroot;
        for (i, (_, d)) in list.iter().enumerate() {
            if i == b || &d.stateroot != os {
                continue;
            }
            if i < b && pending.is_none() {
                pending = Some(i);
            } else if i > b && rollback.is_none() {
                rollback = Some(i);
            }
        }
    }
    let repo = sr.repo().ok();
    let commit = |c: &Checksum| repo.as_ref().and_then(|r| r.load_commit(c).ok());
    let locked = sr.finalization_locked();
    if json {
        let out = StatusJson {
            version: 1,
            deployments: list
                .iter()
                .enumerate()
                .map(|(i, (index, d))| {
                    let cm = commit(&d.checksum);
                    let staged = index.is_none();
                    DeploymentJson {
                        index: *index,
                        stateroot: d.stateroot.clone(),
                        checksum: d.checksum.to_hex(),
                        serial: d.deployserial,
                        booted: d.booted,
                        pending: pending == Some(i),
                        rollback: rollback == Some(i),
                        staged,
                        pinned: d.pinned(),
                        unlocked: d.unlocked.as_str(),
                        origin: d.refspec().map(str::to_string),
                        version: cm.as_ref().and_then(|c| c.version().map(str::to_string)),
                        timestamp: cm.as_ref().map(|c| c.timestamp),
                        bootcsum: d.bootcsum.clone(),
                        tries_left: d.tries.map(|t| t.0),
                        failed: d.failed(),
                        finalization_locked: staged && locked,
                    }
                })
                .collect(),
        };
        return crate::output::print_json(&out);
    }
    if list.is_empty() {
        println!("No deployments.");
        return Ok(());
    }
    for (i, (index, d)) in list.iter().enumerate() {
        let cm = commit(&d.checksum);
        let mark = if index.is_none() {
            " (staged)"
        } else if pending == Some(i) {
            " (pending)"
        } else if rollback == Some(i) {
            " (rollback)"
        } else {
            ""
        };
        println!(
            "{} {} {}{mark}",
            if d.booted { "*" } else { " " },
            d.stateroot,
            d.dirname()
        );
        let meta_str = |k: &str| {
            cm.as_ref()
                .and_then(|c| c.meta(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        // Commit metadata: printed as ostree prints it, except that no control character
        // reaches the terminal (a newline there would forge status lines).
        if let Some(v) = meta_str("version") {
            println!("    Version: {}", v.escape_debug());
        }
        if d.unlocked != Unlocked::None {
            println!(
                "    {}",
                red_bold(&format!("Unlocked: {}", d.unlocked.as_str()))
            );
        }
        if d.pinned() {
            println!("    Pinned: yes");
        }
        // oxtree's additions.
        if index.is_none() && locked {
            println!("    Finalization: locked (admin lock-finalization --unlock releases it)");
        }
        match d.tries {
            Some((0, n)) => println!("    Boot: FAILED (no good boot in {n} tries)"),
            Some((left, _)) => println!("    Boot: not yet confirmed ({left} tries left)"),
            None => {}
        }
        match &d.origin {
            None => println!("    origin: none"),
            Some(o) => {
                match o.get("origin", "refspec") {
                    Some(r) => println!("    origin refspec: {r}"),
                    None => println!("    origin: <unknown origin type>"),
                }
                if let Some(t) = meta_str("ostree.source-title") {
                    println!("    `- {}", t.escape_debug());
                }
            }
        }
        if verify {
            print!("{}", verify_text(&sr, d, skip_signatures)?);
            println!();
        } else if let Some(repo) = &repo {
            plain_gpg_check(repo, d)?;
        }
    }
    Ok(())
}

/// The remote of a deployment's origin, when it names one that is configured.
fn origin_remote(repo: &oxtree::repo::Repo, d: &Deployment) -> Option<String> {
    let refspec = d.origin.as_ref()?.get("origin", "refspec")?;
    let remote = oxtree::repo::RefName::parse(refspec).ok()?.remote?;
    repo.remote_names().contains(&remote).then_some(remote)
}

/// Whether commits from `remote` are GPG-verified (`gpg-verify`, true by default).
fn remote_gpg_verify(repo: &oxtree::repo::Repo, remote: &str) -> bool {
    repo.remote_option(remote, "gpg-verify")
        .map(|v| !matches!(v.trim(), "false" | "0"))
        .unwrap_or(true)
}

/// What ostree's plain `status` shows of each deployment whose origin's remote verifies
/// signatures: the commit must carry some, and each is described under the deployment,
/// its lines prefixed `    GPG: `.
fn plain_gpg_check(repo: &oxtree::repo::Repo, d: &Deployment) -> Result<()> {
    let Some(remote) = origin_remote(repo, d) else {
        return Ok(());
    };
    if !remote_gpg_verify(repo, &remote) {
        return Ok(());
    }
    let meta = repo.load_commitmeta_bytes(&d.checksum)?;
    let data = repo.load_metadata(oxtree::ObjectType::Commit, &d.checksum)?;
    let keys = repo.remote_gpg_keys(&remote)?;
    let report = match meta.as_deref() {
        Some(m) => oxtree::sign::gpg::verify_meta(Some(m), &data, &keys)?,
        None => Vec::new(),
    };
    if report.is_empty() {
        bail!(
            "GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)"
        );
    }
    // The signatures are described as ostree describes them, checked with the keys of the
    // remote named after the stateroot (`ostree_repo_verify_commit_for_remote (repo, ref,
    // osname, …)`); where there is no such remote, it shows none (observed with 2022.7).
    if !repo.remote_names().contains(&d.stateroot) {
        return Ok(());
    }
    let keys = repo.remote_gpg_keys(&d.stateroot)?;
    let report = oxtree::sign::gpg::verify_meta(meta.as_deref(), &data, &keys)?;
    for lines in describe_signatures(&keys, meta.as_deref(), &report)? {
        for l in lines {
            println!("    GPG: {l}");
        }
    }
    Ok(())
}

/// `--verify`: the signature report of a deployment's commit against its origin's remote,
/// as ostree's `ostree_repo_signature_verify_commit_data` words it (`GPG: ` lines).
fn verify_text(sr: &Sysroot, d: &Deployment, skip_signatures: bool) -> Result<String> {
    use oxtree::sign::gpg::GpgStatus;
    let repo = sr.repo()?;
    if repo.load_commit(&d.checksum).is_err() {
        bail!("Cannot verify, failed to load commit");
    }
    let Some(origin) = &d.origin else {
        bail!("Cannot verify deployment with no origin");
    };
    let refspec = origin.get("origin", "refspec").unwrap_or_default();
    let Some(remote) = oxtree::repo::RefName::parse(refspec)?.remote else {
        bail!("Cannot verify deployment without remote");
    };
    if !remote_gpg_verify(&repo, &remote) {
        bail!(
            "Cannot verify commit for remote {remote}; GPG verification disabled, and no signapi verifiers configured"
        );
    }
    let keys = repo.remote_gpg_keys(&remote)?;
    let meta = repo.load_commitmeta_bytes(&d.checksum)?;
    if meta.is_none() {
        bail!("Can't verify commit without detached metadata");
    }
    let data = repo.load_metadata(oxtree::ObjectType::Commit, &d.checksum)?;
    let report = oxtree::sign::gpg::verify_meta(meta.as_deref(), &data, &keys)?;
    if report.is_empty() {
        bail!(
            "GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)"
        );
    }
    // GPGME's description of each signature, as ostree's `describe` words it.
    let mut out = String::new();
    for lines in describe_signatures(&keys, meta.as_deref(), &report)? {
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    if !report.iter().any(|s| s.status == GpgStatus::Good) {
        // ostree's error is the description itself.
        bail!("{}", out.trim_end());
    }
    if skip_signatures {
        return Ok(String::new());
    }
    Ok(out.lines().map(|l| format!("GPG: {l}\n")).collect())
}

/// Each signature of `report` as ostree's `ostree_gpg_verify_result_describe` words it (what
/// `admin status` and `show` print): "Signature made WHEN using ALGO key ID ID", then its
/// status, then the primary key's ID when a subkey signed.
pub(crate) fn describe_signatures(
    keys: &[oxtree::pgp::composed::SignedPublicKey],
    meta: Option<&[u8]>,
    report: &[oxtree::sign::gpg::GpgSignature],
) -> Result<Vec<Vec<String>>> {
    use oxtree::sign::gpg::GpgStatus;
    let raws = oxtree::sign::gpg::gpgsigs(meta.unwrap_or_default())?;
    let mut out = Vec::new();
    for (i, s) in report.iter().enumerate() {
        let mut lines = Vec::new();
        let fpr = s.key.clone().unwrap_or_default();
        let key_id = &fpr[fpr.len().saturating_sub(16)..];
        let (algo, primary) = key_algorithm(keys, &fpr, raws.get(i).map(Vec::as_slice));
        let when = s
            .created
            .map(crate::timefmt::ctime_local)
            .unwrap_or_default();
        lines.push(format!(
            "Signature made {when} using {algo} key ID {key_id}"
        ));
        let who = s.user.as_deref().map_or(key_id.to_string(), gpgme_user);
        // ostree's lines: the verdict, the primary key of a subkey, then the expiry of the
        // key and of its primary key (past or to come).
        lines.push(match s.status {
            GpgStatus::Good => format!("Good signature from \"{who}\""),
            GpgStatus::RevokedKey => "Key revoked".into(),
            GpgStatus::ExpiredKey | GpgStatus::Bad => format!("BAD signature from \"{who}\""),
            GpgStatus::UnknownKey => "Can't check signature: public key not found".into(),
        });
        if let Some(p) = primary {
            lines.push(format!(
                "Primary key ID {}",
                &p[p.len().saturating_sub(16)..]
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tense = |t: u64| if t <= now { "expired" } else { "expires" };
        if let Some(t) = s.key_expires {
            lines.push(format!(
                "Key {} {}",
                tense(t),
                crate::timefmt::ctime_local(t)
            ));
        }
        if let Some(t) = s.primary_expires {
            lines.push(format!(
                "Primary key {} {}",
                tense(t),
                crate::timefmt::ctime_local(t)
            ));
        }
        out.push(lines);
    }
    Ok(out)
}

/// A user id as ostree prints it from GPGME's parts, "NAME <EMAIL>", whichever is empty: a
/// bare address has an empty name (` <a@example.com>`), a bare name an empty address
/// (`Test Key <>`); a comment (`Name (comment) <a@b>`) is not printed.
fn gpgme_user(uid: &str) -> String {
    let (name, email) = match (uid.find('<'), uid.rfind('>')) {
        (Some(a), Some(b)) if a < b => (uid[..a].trim(), &uid[a + 1..b]),
        _ if uid.contains('@') && !uid.contains(' ') => ("", uid),
        _ => (uid.trim(), ""),
    };
    let name = match (name.find('('), name.ends_with(')')) {
        (Some(i), true) => name[..i].trim(),
        _ => name,
    };
    format!("{name} <{email}>")
}

/// GPGME's name for the algorithm of the key (or subkey) with fingerprint `fpr`, and the
/// primary key's fingerprint when it is a subkey.
/// A key not in the keyring is named by the algorithm its signature packet (`raw`) gives.
fn key_algorithm(
    keys: &[oxtree::pgp::composed::SignedPublicKey],
    fpr: &str,
    raw: Option<&[u8]>,
) -> (&'static str, Option<String>) {
    use oxtree::pgp::composed::{Deserializable, DetachedSignature};
    use oxtree::pgp::crypto::public_key::PublicKeyAlgorithm as A;
    use oxtree::pgp::types::KeyDetails;
    let name = |a: A| match a {
        A::RSA | A::RSAEncrypt | A::RSASign => "RSA",
        A::DSA => "DSA",
        A::ECDSA => "ECDSA",
        A::ECDH => "ECDH",
        A::Elgamal | A::ElgamalEncrypt => "ELG",
        _ => "EdDSA",
    };
    for k in keys {
        let primary = format!("{:X}", k.primary_key.fingerprint());
        if primary == fpr {
            return (name(k.primary_key.algorithm()), None);
        }
        for sk in &k.public_subkeys {
            if format!("{:X}", sk.key.fingerprint()) == fpr {
                return (name(sk.key.algorithm()), Some(primary));
            }
        }
    }
    let sig_alg = raw
        .and_then(|r| DetachedSignature::from_bytes(std::io::Cursor::new(r)).ok())
        .and_then(|d| d.signature.config().map(|c| c.pub_alg));
    (sig_alg.map_or("unknown", name), None)
}
