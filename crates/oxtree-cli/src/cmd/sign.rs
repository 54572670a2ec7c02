//! `sign` (ed25519) and `gpg-sign` (OpenPGP).

use super::Global;
use anyhow::{bail, Context, Result};
use clap::Args;
use oxtree::object::Checksum;
use oxtree::Repo;
use std::path::{Path, PathBuf};

/// Sign a commit with ed25519 keys, or verify its signatures (--verify).
#[derive(Args)]
pub struct SignArgs {
    /// Verify instead of sign: KEYs are base64 public keys.
    #[arg(long)]
    pub verify: bool,
    /// Signature type (only ed25519).
    #[arg(short = 's', long, default_value = "ed25519")]
    pub sign_type: String,
    /// Read keys (base64, one per line) from FILE.
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// Revoked public keys (base64, one per line) never accepted by --verify.
    #[arg(long, value_name = "FILE")]
    pub revoked_file: Option<PathBuf>,
    pub commit: String,
    /// Base64 keys: secret keys (64 bytes) to sign, public keys (32 bytes) to verify.
    pub keys: Vec<String>,
}

pub fn sign(g: &Global, a: SignArgs) -> Result<()> {
    let SignArgs {
        verify,
        sign_type,
        keys_file,
        revoked_file,
        commit,
        keys,
    } = a;
    if sign_type != "ed25519" {
        bail!("signature type {sign_type:?} is not supported (only ed25519)");
    }
    let repo = g.open()?;
    let c = repo.resolve_rev(&commit)?;
    let mut keys = keys;
    if let Some(f) = &keys_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    if keys.is_empty() {
        bail!("no keys: give them as arguments or with --keys-file");
    }
    if verify {
        let pks = keys
            .iter()
            .map(|k| oxtree::sign::parse_public_key(k))
            .collect::<oxtree::Result<Vec<_>>>()?;
        let revoked = match &revoked_file {
            Some(f) => oxtree::sign::read_key_lines(f)?
                .iter()
                .map(|k| oxtree::sign::parse_public_key(k))
                .collect::<oxtree::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        match repo.verify_commit_ed25519(&c, &pks, &revoked)? {
            Some(k) => println!(
                "Signature verified successfully with key '{}'",
                oxtree::sign::public_key_base64(&k)
            ),
            None => {
                return Err(oxtree::Error::Signature {
                    commit: c,
                    msg: "no valid ed25519 signature from the given keys".into(),
                }
                .into());
            }
        }
    } else {
        for k in &keys {
            repo.sign_commit(&c, &oxtree::sign::parse_secret_key(k)?)?;
        }
    }
    Ok(())
}

/// Add OpenPGP signatures to a commit: `gpg-sign COMMIT KEY-ID…`.
#[derive(Args)]
pub struct GpgSignArgs {
    /// GnuPG home directory holding the keys.
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<PathBuf>,
    /// Read secret keys from this file (armored or binary) instead of GnuPG.
    #[arg(long, value_name = "FILE")]
    pub gpg_key_file: Option<PathBuf>,
    pub commit: String,
    #[arg(required = true)]
    pub key_ids: Vec<String>,
}

pub fn gpg_sign_cmd(g: &Global, a: GpgSignArgs) -> Result<()> {
    let GpgSignArgs {
        gpg_homedir,
        gpg_key_file,
        commit,
        key_ids,
    } = a;
    let repo = g.open()?;
    let c = repo.resolve_rev(&commit)?;
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
        let keys = load_gpg_secret_keys(id, homedir, key_file)?;
        repo.gpg_sign_commit(commit, &keys, id)?;
    }
    Ok(())
}

/// The OpenPGP secret keys to sign with as `id`: from a key file, or exported from GnuPG.
pub fn load_gpg_secret_keys(
    id: &str,
    homedir: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<oxtree::repo::GpgSecretKeys> {
    Ok(match key_file {
        Some(f) => oxtree::sign::gpg::load_secret_keys(
            &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
            &f.display().to_string(),
        )?,
        None => oxtree::sign::gpg::load_secret_keys(
            &oxtree::sign::gpg::export_from_homedir(homedir, id)?,
            id,
        )?,
    })
}
