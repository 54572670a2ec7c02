//! `sign` (ed25519) and `gpg-sign` (OpenPGP).

use super::Exit;
use super::Global;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::object::Checksum;
use oxtree::Repo;
use std::path::{Path, PathBuf};

/// Sign a commit, verify its signatures (--verify) or delete some (--delete).
#[derive(Args)]
pub struct SignArgs {
    /// Delete signatures having any of the KEY-IDs.
    #[arg(short = 'd', long)]
    pub delete: bool,
    /// Verify signatures.
    #[arg(long)]
    pub verify: bool,
    /// Signature type to use: ed25519 (default) or dummy (for tests; needs
    /// OSTREE_DUMMY_SIGN_ENABLED in the environment, as in ostree).
    #[arg(short = 's', long, value_name = "NAME", default_value = "ed25519")]
    pub sign_type: String,
    /// Read key(s) from file (base64, one per line).
    #[arg(long, value_name = "NAME")]
    pub keys_file: Option<PathBuf>,
    /// Redefine system-wide directories with public and revoked keys for verification
    /// (DIR/trusted.ed25519, DIR/trusted.ed25519.d/, DIR/revoked.ed25519{,.d}).
    #[arg(long, value_name = "NAME")]
    pub keys_dir: Option<PathBuf>,
    /// Revoked public keys (base64, one per line) never accepted by --verify.
    #[arg(long, value_name = "FILE")]
    pub revoked_file: Option<PathBuf>,
    pub commit: Option<String>,
    /// Keys: for ed25519 base64 secret keys (64 bytes) to sign, public keys (32 bytes) to
    /// verify or delete; for dummy any string.
    pub keys: Vec<String>,
}

/// ostree's refusal of an unknown signature type.
fn check_sign_type(name: &str) -> Result<()> {
    if name != "ed25519" && name != "dummy" {
        bail!("Requested signature type is not implemented");
    }
    Ok(())
}

/// Verification failed: ostree's line, oxtree's exit code for verification failures.
fn verification_failed(msg: &str) -> anyhow::Error {
    eprintln!("error: {msg}");
    Exit(crate::EXIT_VERIFICATION).into()
}

/// `sign --verify`, as ostree's builtin goes about it: each key of the command line on its
/// own first; then (ed25519) the keys of `--keys-file`, or of the trusted lists under
/// `--keys-dir` or the system directories, with the last command-line key, whose failure
/// is the one reported (`ed25519: Signature couldn't be verified; tried N keys`, …).
fn verify(repo: &Repo, c: &Checksum, a: &SignArgs) -> Result<()> {
    let data = repo.load_metadata(oxtree::ObjectType::Commit, c)?;
    let meta = repo.load_commitmeta_bytes(c)?;
    let meta_value = meta
        .as_deref()
        .and_then(|m| oxtree::gvariant::decode_normal(m, &oxtree::gvariant::Type::of("a{sv}")).ok())
        .unwrap_or_else(|| {
            oxtree::gvariant::Value::Array(oxtree::gvariant::Type::of("{sv}"), Vec::new())
        });
    if a.sign_type == "dummy" {
        if a.keys.is_empty() {
            // (ostree's dummy engine loads no keys from files or directories)
            bail!("not implemented");
        }
        for k in &a.keys {
            if let Ok(msg) =
                oxtree::sign::Verifier::Dummy(vec![k.clone()]).verify(&data, &meta_value)
            {
                println!("{msg}");
                return Ok(());
            }
        }
        return Err(verification_failed("No valid signatures found"));
    }
    let sigs: Option<Vec<Vec<u8>>> = meta_value
        .lookup(oxtree::sign::ED25519_KEY)
        .and_then(oxtree::gvariant::Value::items)
        .map(|i| {
            i.iter()
                .filter_map(|s| s.as_bytes().map(<[u8]>::to_vec))
                .collect()
        });
    let mut revoked = match &a.revoked_file {
        Some(f) => oxtree::sign::read_key_lines(f)?
            .iter()
            .map(|k| oxtree::sign::parse_public_key(k).map(|k| *k.as_bytes()))
            .collect::<oxtree::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let bases = oxtree::sign::key_bases(a.keys_dir.as_deref());
    // (the trusted lists' revocations count for the command line's keys too)
    revoked.extend(oxtree::sign::revoked_keys_in(&bases)?);
    let mut last = None;
    for k in &a.keys {
        let Some(raw) = oxtree::sign::public_key_raw(k) else {
            continue;
        };
        last = Some(raw);
        if let Ok(msg) =
            oxtree::sign::ed25519_verify_report(&data, sigs.as_deref(), &[raw], &revoked)
        {
            println!("{msg}");
            return Ok(());
        }
    }
    let mut keys: Vec<[u8; 32]> = last.into_iter().collect();
    if let Some(f) = &a.keys_file {
        for k in load_key_file(f)? {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    } else {
        let trusted = oxtree::sign::trusted_keys_in(&bases)?;
        if trusted.is_empty() {
            return Err(verification_failed("No valid signatures found"));
        }
        for k in trusted {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    match oxtree::sign::ed25519_verify_report(&data, sigs.as_deref(), &keys, &revoked) {
        Ok(msg) => {
            println!("{msg}");
            Ok(())
        }
        Err(msg) => Err(verification_failed(&msg)),
    }
}

/// ostree's `--keys-file` for verification: a regular file of base64 public keys, one per
/// line, at least one.
fn load_key_file(f: &Path) -> Result<Vec<[u8; 32]>> {
    if !f.is_file() {
        bail!("File object '{}' is not a regular file", f.display());
    }
    let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    let mut keys = Vec::new();
    for line in text.lines() {
        match oxtree::sign::public_key_raw(line) {
            Some(k) => keys.push(k),
            None => bail!("Incorrect ed25519 public key"),
        }
    }
    if keys.is_empty() {
        bail!(
            "signature: ed25519: no valid keys in file '{}'",
            f.display()
        );
    }
    Ok(keys)
}

pub fn sign(g: &Global, a: SignArgs) -> Result<()> {
    let Some(commit) = a.commit.as_deref() else {
        bail!("Need a COMMIT to sign or verify");
    };
    check_sign_type(&a.sign_type)?;
    let repo = g.open()?;
    let c = repo.resolve_rev(commit)?;
    if a.verify {
        return verify(&repo, &c, &a);
    }
    let mut keys = a.keys.clone();
    if let Some(f) = &a.keys_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    if keys.is_empty() {
        bail!("Need at least one KEY-ID to sign with");
    }
    let dummy = a.sign_type == "dummy";
    if a.delete {
        // As ostree documents it ("Delete signatures having any of the KEY-IDs"); ostree
        // 2022.7 ignores --delete and signs instead. ed25519 keys may be given as public
        // or secret keys: a signature goes when it verifies with one of them.
        let n = if dummy {
            oxtree::sign::dummy::check_enabled()?;
            repo.delete_commit_signatures(&c, oxtree::sign::DUMMY_KEY, &|sig| {
                keys.iter().any(|k| k.as_bytes() == sig)
            })?
        } else {
            let pks = keys
                .iter()
                .map(|k| match oxtree::sign::parse_secret_key(k) {
                    Ok(sk) => Ok(sk.verifying_key()),
                    Err(_) => oxtree::sign::parse_public_key(k),
                })
                .collect::<oxtree::Result<Vec<_>>>()?;
            let data = repo.load_metadata(oxtree::ObjectType::Commit, &c)?;
            repo.delete_commit_signatures(&c, oxtree::sign::ED25519_KEY, &|sig| {
                <[u8; 64]>::try_from(sig)
                    .is_ok_and(|s| oxtree::sign::verify_sigs(&[s], &data, &pks, &[]).is_some())
            })?
        };
        println!("Signatures deleted: {n}");
        Ok(())
    } else {
        for k in &keys {
            if dummy {
                repo.sign_commit_dummy(&c, k)?;
            } else {
                repo.sign_commit(&c, &oxtree::sign::parse_secret_key(k)?)?;
            }
        }
        Ok(())
    }
}

/// Add OpenPGP signatures to a commit (`gpg-sign COMMIT KEY-ID…`), or delete them (-d).
#[derive(Args)]
pub struct GpgSignArgs {
    /// Delete signatures having any of the GPG KEY-IDs.
    #[arg(short = 'd', long)]
    pub delete: bool,
    /// GPG Homedir to use when looking for keyrings.
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<PathBuf>,
    /// Read secret keys from this file (armored or binary) instead of GnuPG.
    #[arg(long, value_name = "FILE")]
    pub gpg_key_file: Option<PathBuf>,
    pub commit: Option<String>,
    pub key_ids: Vec<String>,
}

pub fn gpg_sign_cmd(g: &Global, a: GpgSignArgs) -> Result<()> {
    let GpgSignArgs {
        delete,
        gpg_homedir,
        gpg_key_file,
        commit,
        key_ids,
    } = a;
    let Some(commit) = commit else {
        bail!("Need a COMMIT to sign");
    };
    if key_ids.is_empty() {
        bail!("Need at least one GPG KEY-ID to sign with");
    }
    let repo = g.open()?;
    let c = repo.resolve_rev(&commit)?;
    if delete {
        // Signatures are matched by the issuer recorded in them (fingerprint or key id
        // suffix), so no public key is needed; ostree 2022.7 only finds those whose key is
        // in its verification keyring.
        let n = repo.delete_commit_signatures(&c, oxtree::sign::gpg::GPGSIGS_KEY, &|sig| {
            key_ids
                .iter()
                .any(|k| oxtree::sign::gpg::signature_by(sig, k))
        })?;
        println!("Signatures deleted: {n}");
        return Ok(());
    }
    gpg_sign(
        &repo,
        &c,
        &key_ids,
        gpg_homedir.as_deref(),
        gpg_key_file.as_deref(),
    )?;
    Ok(())
}

/// Sign `commit` with OpenPGP keys from a key file or a GnuPG home.
pub fn gpg_sign(
    repo: &Repo,
    commit: &Checksum,
    key_ids: &[String],
    homedir: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<()> {
    for id in key_ids {
        if signed_verifiably(repo, commit, id, homedir)? {
            bail!("Commit is already signed with GPG key {id}");
        }
        let keys = load_gpg_secret_keys(id, homedir, key_file)?;
        repo.gpg_sign_commit(commit, &keys, id)?;
    }
    Ok(())
}

/// ostree refuses a second signature by a key when it can verify the first: with the
/// `*.gpg` keyrings of the --gpg-homedir (not a `pubring.kbx`, so a modern GnuPG home lets
/// it sign again), as its verifier reads them.
fn signed_verifiably(
    repo: &Repo,
    commit: &Checksum,
    id: &str,
    homedir: Option<&Path>,
) -> Result<bool> {
    use oxtree::sign::gpg;
    let Some(home) = homedir else {
        return Ok(false);
    };
    let Some(meta) = repo.load_commitmeta_bytes(commit)? else {
        return Ok(false);
    };
    let sigs = gpg::gpgsigs(&meta)?;
    if !sigs.iter().any(|s| gpg::signature_by(s, id)) {
        return Ok(false);
    }
    Ok(gpg::keyring_has(&gpg::keyrings_in_dir(home), id))
}

/// The OpenPGP secret keys to sign with as `id`: from a key file, or exported from GnuPG.
pub fn load_gpg_secret_keys(
    id: &str,
    homedir: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<oxtree::repo::GpgSecretKeys> {
    use oxtree::sign::gpg::{self, GpgSigner};
    Ok(match key_file {
        Some(f) => GpgSigner::Keys(gpg::load_secret_keys(
            &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
            &f.display().to_string(),
        )?),
        None => match gpg::export_from_homedir(homedir, id) {
            Ok(exported) => GpgSigner::Keys(gpg::load_secret_keys(&exported, id)?),
            // A key gpg-agent keeps (a passphrase, a smartcard): gpg signs with it.
            Err(_) if gpg::gpg_has_secret_key(homedir, id) => GpgSigner::Gpg {
                homedir: homedir.map(Path::to_path_buf),
            },
            Err(e) => {
                return Err(super::Hinted {
                    msg: format!(
                        "No gpg key found with ID {id} (homedir: {})",
                        homedir.map_or("<default>".to_string(), |h| h.display().to_string())
                    ),
                    hint: e.to_string(),
                }
                .into())
            }
        },
    })
}
