//! OpenPGP verification of OSTree's GPG signatures (spec §7.1): detached, binary signatures
//! over the exact commit (or summary) bytes, stored as `ostree.gpgsigs` → `aay` in the
//! detached metadata. Keys come from the remote's keyring `<repo>/<remote>.trustedkeys.gpg`
//! (written by `remote gpg-import`, ours or ostree's), `gpgkeypath`, and
//! `/usr/share/ostree/trusted.gpg.d/`.
//!
//! Why rpgp (`pgp`): pure Rust (no gpgme/gpg-agent, no C build), and it verifies signatures
//! made by subkeys. Expired and revoked keys are reported as such and never count as valid.

use crate::error::{Error, IoContext, Result};
use crate::gvariant::{self, Type, Value};
use crate::repo::Repo;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedSecretKey};
use pgp::types::KeyDetails;
use std::path::{Path, PathBuf};

/// The detached-metadata key for OpenPGP signatures.
pub const GPGSIGS_KEY: &str = "ostree.gpgsigs";

/// What one signature turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgSignature {
    /// Fingerprint (upper-case hex) of the key that made it, when known.
    pub key: Option<String>,
    /// Primary user id of that key, when it is in the keyring.
    pub user: Option<String>,
    /// Seconds since the epoch.
    pub created: Option<u64>,
    pub status: GpgStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpgStatus {
    Good,
    /// Made by a key we have, but the key expired before now.
    ExpiredKey,
    /// Made by a key that carries a revocation.
    RevokedKey,
    /// Does not verify with any key we have.
    Bad,
    /// Made by a key that is not in the keyring.
    UnknownKey,
}

/// Read every public key in a keyring file (binary or ASCII-armored; several concatenated).
pub fn load_keyring(path: &Path) -> Result<Vec<SignedPublicKey>> {
    let data = std::fs::read(path).ctx("read keyring", path)?;
    let parsed: Vec<SignedPublicKey> =
        SignedPublicKey::from_reader_many(std::io::Cursor::new(&data))
            .map_err(|e| {
                Error::InvalidArgument(format!("{}: not an OpenPGP keyring: {e}", path.display()))
            })?
            .0
            .filter_map(|k| k.ok())
            .collect();
    Ok(parsed)
}

/// Serialize keys as a binary keyring (the format of `*.trustedkeys.gpg`).
pub fn keyring_bytes(keys: &[SignedPublicKey]) -> Result<Vec<u8>> {
    use pgp::ser::Serialize;
    let mut out = Vec::new();
    for k in keys {
        k.to_writer(&mut out)
            .map_err(|e| Error::Other(format!("serializing key: {e}")))?;
    }
    Ok(out)
}

fn fingerprint(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

fn revoked(k: &SignedPublicKey) -> bool {
    !k.details.revocation_signatures.is_empty()
}

/// Key expiry (seconds since the epoch) from the newest self-signature that sets one.
fn expires(k: &SignedPublicKey) -> Option<u64> {
    let created = u64::from(k.primary_key.created_at().as_secs());
    k.details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(k.details.direct_signatures.iter())
        .filter_map(|s| s.key_expiration_time())
        .map(|d| created + u64::from(d.as_secs()))
        .max()
}

/// Check each signature in `sigs` (binary detached signature packets) over `data`.
pub fn verify_all(
    sigs: &[Vec<u8>],
    data: &[u8],
    keys: &[SignedPublicKey],
    now: u64,
) -> Vec<GpgSignature> {
    let mut out = Vec::new();
    for raw in sigs {
        let Ok(sig) = DetachedSignature::from_bytes(std::io::Cursor::new(raw)) else {
            out.push(GpgSignature {
                key: None,
                user: None,
                created: None,
                status: GpgStatus::Bad,
            });
            continue;
        };
        let created = sig.signature.created().map(|t| u64::from(t.as_secs()));
        let issuers: Vec<String> = sig
            .signature
            .issuer_fingerprint()
            .iter()
            .map(|f| format!("{f:X}"))
            .collect();
        let mut found = None;
        let mut known = false;
        'keys: for k in keys {
            let user = k
                .details
                .users
                .first()
                .map(|u| String::from_utf8_lossy(u.id.id()).into_owned());
            let mut candidates: Vec<(String, bool)> =
                vec![(fingerprint(&k.primary_key), sig.verify(k, data).is_ok())];
            for sk in &k.public_subkeys {
                candidates.push((fingerprint(&sk.key), sig.verify(sk, data).is_ok()));
            }
            for (fp, ok) in candidates {
                if issuers.contains(&fp) {
                    known = true;
                }
                if ok {
                    let status = if revoked(k) {
                        GpgStatus::RevokedKey
                    } else if expires(k).is_some_and(|e| e <= now) {
                        GpgStatus::ExpiredKey
                    } else {
                        GpgStatus::Good
                    };
                    found = Some(GpgSignature {
                        key: Some(fp),
                        user,
                        created,
                        status,
                    });
                    break 'keys;
                }
            }
        }
        out.push(found.unwrap_or(GpgSignature {
            key: issuers.first().cloned(),
            user: None,
            created,
            status: if known {
                GpgStatus::Bad
            } else {
                GpgStatus::UnknownKey
            },
        }));
    }
    out
}

/// Who made a signature, by its issuer subpackets: fingerprints and key ids, upper-case hex.
/// Empty when the packet does not parse.
pub fn signature_issuers(raw: &[u8]) -> Vec<String> {
    let Ok(sig) = DetachedSignature::from_bytes(std::io::Cursor::new(raw)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = sig
        .signature
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    out.extend(sig.signature.issuer_key_id().iter().map(|k| {
        k.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    }));
    out
}

/// Whether a signature was made by `key_id` (a fingerprint, long or short key id; `0x` and
/// case ignored): it is a suffix of one of the signature's issuers, as gpgme matches.
pub fn signature_by(raw: &[u8], key_id: &str) -> bool {
    let want = key_id.trim_start_matches("0x").to_ascii_uppercase();
    !want.is_empty()
        && signature_issuers(raw)
            .iter()
            .any(|i| i.ends_with(&want) || (want.len() > i.len() && want.ends_with(i.as_str())))
}

/// The `ostree.gpgsigs` entries of detached metadata bytes.
pub fn gpgsigs(meta: &[u8]) -> Result<Vec<Vec<u8>>> {
    let v = gvariant::decode_normal(meta, &Type::of("a{sv}"))
        .map_err(|e| Error::Other(format!("detached metadata is invalid: {e}")))?;
    Ok(v.lookup(GPGSIGS_KEY)
        .and_then(Value::items)
        .map(|i| {
            i.iter()
                .filter_map(|s| s.as_bytes().map(<[u8]>::to_vec))
                .collect()
        })
        .unwrap_or_default())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verify OpenPGP signatures in detached metadata; `Ok(report)` lists every signature.
pub fn verify_meta(
    meta: Option<&[u8]>,
    data: &[u8],
    keys: &[SignedPublicKey],
) -> Result<Vec<GpgSignature>> {
    let sigs = match meta {
        Some(m) => gpgsigs(m)?,
        None => Vec::new(),
    };
    Ok(verify_all(&sigs, data, keys, now()))
}

impl Repo {
    /// The remote's own keyring file.
    pub fn remote_keyring_path(&self, remote: &str) -> PathBuf {
        self.path().join(format!("{remote}.trustedkeys.gpg"))
    }

    /// Every key a remote trusts: its keyring, `gpgkeypath` files/dirs, and the global
    /// `/usr/share/ostree/trusted.gpg.d/` (OSTREE_GPG_HOME-free, as keys are read directly).
    pub fn remote_gpg_keys(&self, remote: &str) -> Result<Vec<SignedPublicKey>> {
        let mut files = vec![self.remote_keyring_path(remote)];
        if let Some(p) = self.remote_option(remote, "gpgkeypath") {
            files.extend(
                p.split([';', ','])
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| PathBuf::from(s.trim())),
            );
        }
        files.push(PathBuf::from("/usr/share/ostree/trusted.gpg.d"));
        let mut keys = Vec::new();
        for f in files {
            if f.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&f)
                    .ctx("read directory", &f)?
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                entries.sort();
                // Keyring directories hold `*.gpg` files (and READMEs): read only keyrings.
                let keyring = |e: &PathBuf| {
                    e.is_file() && e.extension().is_some_and(|x| x == "gpg" || x == "asc")
                };
                for e in entries.into_iter().filter(keyring) {
                    keys.extend(load_keyring(&e)?);
                }
            } else if f.is_file() {
                keys.extend(load_keyring(&f)?);
            }
        }
        Ok(keys)
    }

    /// Import the public keys in `keyfile` (binary or armored) into the remote's keyring.
    /// Returns how many keys were added.
    pub fn remote_gpg_import(&self, remote: &str, keyfile: &Path) -> Result<usize> {
        self.remote_url(remote)?;
        let new = load_keyring(keyfile)?;
        if new.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: no OpenPGP public keys found",
                keyfile.display()
            )));
        }
        let path = self.remote_keyring_path(remote);
        let mut keys = if path.is_file() {
            load_keyring(&path)?
        } else {
            Vec::new()
        };
        let have: Vec<String> = keys.iter().map(|k| fingerprint(&k.primary_key)).collect();
        let mut added = 0;
        for k in new {
            if !have.contains(&fingerprint(&k.primary_key)) {
                keys.push(k);
                added += 1;
            }
        }
        crate::fsutil::write_atomic(&path, &keyring_bytes(&keys)?, self.fsync_enabled())?;
        Ok(added)
    }
}

/// Secret keys from a file (armored or binary, as `gpg --export-secret-keys` writes).
pub fn load_secret_keys(data: &[u8], what: &str) -> Result<Vec<SignedSecretKey>> {
    let keys: Vec<SignedSecretKey> = SignedSecretKey::from_reader_many(std::io::Cursor::new(data))
        .map_err(|e| Error::InvalidArgument(format!("{what}: no OpenPGP secret key: {e}")))?
        .0
        .filter_map(|k| k.ok())
        .collect();
    if keys.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what}: no OpenPGP secret key found"
        )));
    }
    Ok(keys)
}

/// Export a secret key from a GnuPG home directory. GnuPG keeps secret keys in its agent's
/// private format, which only `gpg` itself reads, so this runs `gpg --export-secret-keys`
/// (keys must have no passphrase, as for unattended signing).
pub fn export_from_homedir(homedir: Option<&Path>, keyid: &str) -> Result<Vec<u8>> {
    let mut cmd = std::process::Command::new("gpg");
    if let Some(h) = homedir {
        cmd.arg("--homedir").arg(h);
    }
    cmd.args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--export-secret-keys",
        keyid,
    ]);
    let out = cmd
        .output()
        .map_err(|e| Error::Other(format!("running gpg to export secret key {keyid}: {e} (is GnuPG installed? or use --gpg-key-file)")))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "gpg could not export secret key {keyid}{}: {}",
            homedir
                .map(|h| format!(" from {}", h.display()))
                .unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// A detached binary signature over `data` by the key whose fingerprint (or key id) ends
/// with `keyid` (any key when empty): a signing subkey if it has one, as gpg does.
pub fn sign_detached(keys: &[SignedSecretKey], keyid: &str, data: &[u8]) -> Result<Vec<u8>> {
    use pgp::ser::Serialize;
    let want = keyid.trim_start_matches("0x").to_ascii_uppercase();
    let pw = pgp::types::Password::empty();
    let hash = pgp::crypto::hash::HashAlgorithm::Sha256;
    let ser = |sig: DetachedSignature| {
        sig.to_bytes()
            .map_err(|e| Error::Other(format!("serializing signature: {e}")))
    };
    for k in keys {
        let primary = fingerprint(&k.primary_key);
        let key_matches = want.is_empty() || primary.ends_with(&want);
        for sk in &k.secret_subkeys {
            if key_matches || fingerprint(&sk.key).ends_with(&want) {
                if let Ok(sig) = DetachedSignature::sign_binary_data(
                    rand::thread_rng(),
                    &sk.key,
                    &pw,
                    hash,
                    data,
                ) {
                    return ser(sig);
                }
            }
        }
        if key_matches {
            let sig = DetachedSignature::sign_binary_data(
                rand::thread_rng(),
                &k.primary_key,
                &pw,
                hash,
                data,
            )
            .map_err(|e| Error::Other(format!("signing with key {primary}: {e}")))?;
            return ser(sig);
        }
    }
    Err(Error::InvalidArgument(format!(
        "no secret key matching {keyid:?}"
    )))
}

impl Repo {
    /// Append an OpenPGP signature over the commit object to its detached metadata
    /// (concurrent signers are serialised, see [`Repo::update_commitmeta`]).
    pub fn gpg_sign_commit(
        &self,
        commit: &crate::object::Checksum,
        keys: &[SignedSecretKey],
        keyid: &str,
    ) -> Result<()> {
        self.update_commitmeta(commit, |data, existing| {
            crate::sign::append_to_aay(existing, GPGSIGS_KEY, sign_detached(keys, keyid, data)?)
        })
    }
}
