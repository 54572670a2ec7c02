//! ed25519 signatures compatible with `ostree sign` (spec §7.2): signatures over the exact
//! commit (or summary) bytes, stored as `ostree.sign.ed25519` → `aay` in the detached
//! metadata (`.commitmeta`) or `summary.sig`. Keys use OSTree's base64 formats: a public key
//! is 32 bytes, a secret key 64 bytes (seed ‖ public key, libsodium's layout).
//!
//! Revoked keys (`revoked.ed25519[.d]` in /etc/ostree and /usr/share/ostree, as
//! `ostree-sign(1)` lists them) never count, wherever a signature is checked on pull.
//!
//! Why ed25519-dalek: a pure-Rust, audited implementation; `verify_strict` rejects the
//! malleable and small-order encodings libsodium also rejects.

pub mod gpg;

use crate::error::{Error, IoContext, Result};
use crate::gvariant::{self, Type, Value};
use crate::object::{Checksum, ObjectType};
use crate::repo::Repo;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::path::Path;

/// An ed25519 public key as ostree holds it: 32 bytes, which need not be a point of the
/// curve (such a key verifies nothing, but counts among the keys tried).
pub type PublicKey = [u8; 32];

/// The detached-metadata key ostree uses for ed25519 signatures.
pub const ED25519_KEY: &str = "ostree.sign.ed25519";

fn b64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| Error::InvalidArgument(format!("invalid base64 key {:?}: {e}", abbreviate(s))))
}

fn abbreviate(s: &str) -> String {
    let s = s.trim();
    if s.len() > 12 {
        format!("{}…", &s[..12])
    } else {
        s.to_string()
    }
}

/// A secret key in ostree's format: base64 of the 64-byte seed ‖ public key.
pub fn parse_secret_key(text: &str) -> Result<SigningKey> {
    let raw = b64(text)?;
    let bytes: [u8; 64] = raw.as_slice().try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "ed25519 secret key must be 64 bytes (seed and public key), got {}",
            raw.len()
        ))
    })?;
    SigningKey::from_keypair_bytes(&bytes)
        .map_err(|e| Error::InvalidArgument(format!("invalid ed25519 secret key: {e}")))
}

/// A public key: base64 of 32 bytes.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let raw = b64(text)?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "ed25519 public key must be 32 bytes, got {}",
            raw.len()
        ))
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| Error::InvalidArgument(format!("invalid ed25519 public key: {e}")))
}

/// [`parse_public_key`], except that 32 bytes that are no point of the curve are a key
/// that verifies nothing (None), as libsodium takes them in ostree, not an error.
pub fn parse_public_key_lenient(text: &str) -> Result<Option<VerifyingKey>> {
    match parse_public_key(text) {
        Ok(k) => Ok(Some(k)),
        Err(_) if b64(text).is_ok_and(|raw| raw.len() == 32) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A public key's 32 bytes as ostree takes them (`ostree_sign_ed25519_add_pk`): base64 of
/// 32 bytes, whether or not they are a point of the curve; `None` otherwise.
pub fn public_key_raw(text: &str) -> Option<PublicKey> {
    b64(text)
        .ok()
        .and_then(|raw| <[u8; 32]>::try_from(raw.as_slice()).ok())
}

/// Keys from a file, one base64 key per line (ostree's `--keys-file` format: blank lines
/// are errors, as in ostree).
pub fn read_key_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).ctx("read keys file", path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}:{}: empty line in keys file",
                path.display(),
                i + 1
            )));
        }
        out.push(line.trim().to_string());
    }
    Ok(out)
}

/// Where ostree looks for ed25519 key lists (`trusted.ed25519`, `revoked.ed25519` and their
/// `.d` directories): the administrator's, then the OS vendor's.
pub const SYSTEM_KEY_DIRS: [&str; 2] = ["/etc/ostree", "/usr/share/ostree"];

/// The files of a key list under `bases`, in ostree's layout: `BASE/KIND.ed25519` and the
/// files of `BASE/KIND.ed25519.d/` (KIND `trusted` or `revoked`).
fn key_list_files(bases: &[&Path], kind: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for base in bases {
        let single = base.join(format!("{kind}.ed25519"));
        if single.is_file() {
            files.push(single);
        }
        let dir = base.join(format!("{kind}.ed25519.d"));
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                let mut v: Vec<_> = rd
                    .map(|e| e.map(|e| e.path()))
                    .collect::<std::io::Result<_>>()
                    .ctx("read directory", &dir)?;
                v.retain(|p| p.is_file());
                v.sort();
                files.extend(v);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("read directory", &dir),
        }
    }
    Ok(files)
}

/// Where key lists are looked for: `custom` (`--keys-dir`), else [`SYSTEM_KEY_DIRS`].
pub fn key_bases(custom: Option<&Path>) -> Vec<&Path> {
    match custom {
        Some(d) => vec![d],
        None => SYSTEM_KEY_DIRS.iter().map(Path::new).collect(),
    }
}

/// The revoked ed25519 keys listed under `bases`: `BASE/revoked.ed25519` and every file in
/// `BASE/revoked.ed25519.d/`, one base64 public key (32 bytes) per line (ostree's layout;
/// blank lines are skipped). An entry that is not a key is an error naming it: a
/// revocation list that cannot be read must not be silently ignored.
pub fn revoked_keys_in(bases: &[&Path]) -> Result<Vec<PublicKey>> {
    let mut keys = Vec::new();
    for f in key_list_files(bases, "revoked")? {
        let text = std::fs::read_to_string(&f).ctx("read revoked keys", &f)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            keys.push(public_key_raw(line).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}:{}: not an ed25519 public key (base64 of 32 bytes)",
                    f.display(),
                    i + 1
                ))
            })?);
        }
    }
    Ok(keys)
}

/// The trusted ed25519 keys listed under `bases` (`BASE/trusted.ed25519` and the files of
/// `BASE/trusted.ed25519.d/`, ostree's layout for `sign --verify` without keys and for
/// `--keys-dir`), one base64 public key per line, blank lines skipped. As in ostree, a file
/// with a line that is no key is passed over (the others still count).
pub fn trusted_keys_in(bases: &[&Path]) -> Result<Vec<PublicKey>> {
    let mut keys = Vec::new();
    for f in key_list_files(bases, "trusted")? {
        let text = std::fs::read_to_string(&f).ctx("read trusted keys", &f)?;
        let file_keys: Option<Vec<PublicKey>> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(public_key_raw)
            .collect();
        keys.extend(file_keys.unwrap_or_default());
    }
    Ok(keys)
}

/// The system's revoked ed25519 keys ([`SYSTEM_KEY_DIRS`]).
pub fn system_revoked_keys() -> Result<Vec<PublicKey>> {
    revoked_keys_in(&SYSTEM_KEY_DIRS.map(Path::new))
}

/// Every detached signature of `data` appended to `existing` (an `a{sv}`, or none): the
/// ed25519 keys' first, then the dummy engine's, then OpenPGP's `ostree.gpgsigs`, in the
/// order ostree adds them. What a commit's `.commitmeta`, a summary's `summary.sig` and the
/// `ostree-metadata` commit carry; `None` when there was nothing and no key.
pub fn append_signatures<'a>(
    existing: Option<Vec<u8>>,
    data: &[u8],
    ed25519: &[SigningKey],
    dummy_keys: &[String],
    gpg_keys: impl IntoIterator<Item = (&'a crate::repo::GpgSecretKeys, &'a str)>,
) -> Result<Option<Vec<u8>>> {
    let mut out = existing;
    for k in ed25519 {
        out = Some(append_signature(out.as_deref(), data, k)?);
    }
    for k in dummy_keys {
        dummy::check_enabled()?;
        out = Some(append_to_aay(
            out.as_deref(),
            DUMMY_KEY,
            k.as_bytes().to_vec(),
        )?);
    }
    for (keys, id) in gpg_keys {
        let sig = gpg::sign_with(keys, id, data)?;
        out = Some(append_to_aay(out.as_deref(), gpg::GPGSIGS_KEY, sig)?);
    }
    Ok(out)
}

/// Sign `data` and append the signature under `ostree.sign.ed25519` in the `a{sv}`
/// `existing` (other keys and earlier signatures are kept, in order). Returns the new bytes.
pub fn append_signature(existing: Option<&[u8]>, data: &[u8], key: &SigningKey) -> Result<Vec<u8>> {
    append_to_aay(existing, ED25519_KEY, key.sign(data).to_bytes().to_vec())
}

/// The entries of detached metadata bytes (an `a{sv}`), in stored order.
pub fn meta_entries(existing: Option<&[u8]>) -> Result<Vec<(String, Value)>> {
    Ok(match existing {
        Some(b) => gvariant::decode_normal(b, &Type::of("a{sv}"))
            .map_err(|e| Error::Other(format!("existing detached metadata is invalid: {e}")))?
            .sv_entries()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        None => Vec::new(),
    })
}

/// Append `sig` to the `aay` under `name` in an `a{sv}` (created if absent), keeping every
/// other entry: how ostree adds signatures to detached metadata. ostree rebuilds the
/// dictionary through a `GVariantDict`, so the entries come out in GLib's hash-table order
/// ([`gvariant::glib_dict_order`]), which this reproduces byte for byte.
pub fn append_to_aay(existing: Option<&[u8]>, name: &str, sig: Vec<u8>) -> Result<Vec<u8>> {
    let mut entries = meta_entries(existing)?;
    match entries.iter_mut().find(|(k, _)| k == name) {
        Some((_, Value::Array(_, sigs))) => sigs.push(Value::Bytes(sig)),
        Some((_, other)) => *other = Value::Array(Type::of("ay"), vec![Value::Bytes(sig)]),
        None => entries.push((
            name.to_string(),
            Value::Array(Type::of("ay"), vec![Value::Bytes(sig)]),
        )),
    }
    Ok(gvariant::encode(&Value::dict_sv(
        gvariant::glib_dict_order(entries),
    )))
}

/// Remove from the `aay` under `name` every signature `doomed` selects; the key goes when
/// none is left. Returns the new bytes and how many were removed (ostree's gpg-sign
/// `--delete` rebuilds the dictionary the same way, through a `GVariantDict`).
pub fn remove_from_aay(
    existing: Option<&[u8]>,
    name: &str,
    doomed: &dyn Fn(&[u8]) -> bool,
) -> Result<(Vec<u8>, usize)> {
    let mut entries = meta_entries(existing)?;
    let mut removed = 0;
    let mut now_empty = false;
    if let Some((_, Value::Array(_, sigs))) = entries.iter_mut().find(|(k, _)| k == name) {
        let before = sigs.len();
        sigs.retain(|s| !s.as_bytes().is_some_and(doomed));
        removed = before - sigs.len();
        now_empty = sigs.is_empty();
    }
    if now_empty {
        entries.retain(|(k, _)| k != name);
    }
    Ok((
        gvariant::encode(&Value::dict_sv(gvariant::glib_dict_order(entries))),
        removed,
    ))
}

/// The detached-metadata key of the `dummy` signature type.
pub const DUMMY_KEY: &str = "ostree.sign.dummy";

/// The `dummy` signature type of `ostree sign` (for testing signing paths without keys):
/// the "signature" is the key string itself, and it verifies when a signature equals a
/// given key. ostree refuses it unless `OSTREE_DUMMY_SIGN_ENABLED` is set; so does oxtree.
pub mod dummy {
    use super::*;

    /// ostree's refusal, when the environment does not enable the test type.
    pub fn check_enabled() -> Result<()> {
        if std::env::var_os("OSTREE_DUMMY_SIGN_ENABLED").is_some() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "dummy signature type is only for ostree testing".into(),
            ))
        }
    }

    /// Whether any dummy signature in the detached metadata equals one of `keys`.
    pub fn verify(meta: Option<&[u8]>, keys: &[String]) -> Result<bool> {
        let Some(meta) = meta else { return Ok(false) };
        let v = gvariant::decode_normal(meta, &Type::of("a{sv}"))
            .map_err(|e| Error::Other(format!("detached metadata is invalid: {e}")))?;
        let sigs: Vec<&[u8]> = v
            .lookup(DUMMY_KEY)
            .and_then(Value::items)
            .map(|i| i.iter().filter_map(Value::as_bytes).collect())
            .unwrap_or_default();
        Ok(keys.iter().any(|k| sigs.contains(&k.as_bytes())))
    }
}

/// The ed25519 signatures stored in detached metadata bytes.
pub fn signatures(meta: &[u8]) -> Result<Vec<[u8; 64]>> {
    let v = gvariant::decode_normal(meta, &Type::of("a{sv}"))
        .map_err(|e| Error::Other(format!("detached metadata is invalid: {e}")))?;
    Ok(signatures_in(&v))
}

/// The ed25519 signatures in a decoded `a{sv}` (detached metadata, a signed delta's).
pub fn signatures_in(meta: &Value) -> Vec<[u8; 64]> {
    meta.lookup(ED25519_KEY)
        .and_then(Value::items)
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_bytes().and_then(|b| <[u8; 64]>::try_from(b).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Does any signature in `meta` verify `data` with any of `keys` (none of them revoked)?
pub fn verify(
    meta: Option<&[u8]>,
    data: &[u8],
    keys: &[VerifyingKey],
    revoked: &[PublicKey],
) -> Result<Option<VerifyingKey>> {
    let Some(meta) = meta else { return Ok(None) };
    Ok(verify_sigs(&signatures(meta)?, data, keys, revoked))
}

/// Does any of `sigs` verify `data` with any of `keys` (none of them revoked)?
pub fn verify_sigs(
    sigs: &[[u8; 64]],
    data: &[u8],
    keys: &[VerifyingKey],
    revoked: &[PublicKey],
) -> Option<VerifyingKey> {
    for sig in sigs {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        for k in keys.iter().filter(|k| !revoked.contains(k.as_bytes())) {
            if k.verify_strict(data, &sig).is_ok() {
                return Some(*k);
            }
        }
    }
    None
}

/// ostree's `ostree_sign_ed25519_data_verify`, with its texts: `sigs` are the entries of
/// `ostree.sign.ed25519` (`None`: the metadata has none), `keys` raw 32-byte public keys as
/// ostree holds them (one that is no point of the curve verifies nothing but is tried).
/// `Ok` is the success line (the key that verified), `Err` ostree's failure text.
pub fn ed25519_verify_report(
    data: &[u8],
    sigs: Option<&[Vec<u8>]>,
    keys: &[PublicKey],
    revoked: &[PublicKey],
) -> std::result::Result<String, String> {
    let Some(sigs) = sigs else {
        return Err("ed25519: commit have no signatures of my type".into());
    };
    if keys.is_empty() {
        return Err("signature: ed25519: no keys loaded".into());
    }
    let hex = |k: &PublicKey| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut invalid = Vec::new();
    for sig in sigs {
        let Ok(raw) = <[u8; 64]>::try_from(sig.as_slice()) else {
            return Err(format!(
                "Invalid signature length of {} bytes, expected 64",
                sig.len()
            ));
        };
        let sig = ed25519_dalek::Signature::from_bytes(&raw);
        for k in keys.iter().filter(|k| !revoked.contains(k)) {
            let ok =
                VerifyingKey::from_bytes(k).is_ok_and(|vk| vk.verify_strict(data, &sig).is_ok());
            if ok {
                return Ok(format!(
                    "ed25519: Signature verified successfully with key '{}'",
                    hex(k)
                ));
            }
            invalid.push(hex(k));
        }
    }
    // Say so when a revoked key is what made it fail (ostree does not: the key is skipped).
    let revoked_signer = sigs.iter().find_map(|sig| {
        let sig = ed25519_dalek::Signature::from_bytes(&<[u8; 64]>::try_from(sig.as_slice()).ok()?);
        keys.iter().filter(|k| revoked.contains(k)).find(|k| {
            VerifyingKey::from_bytes(k).is_ok_and(|vk| vk.verify_strict(data, &sig).is_ok())
        })
    });
    let why = match revoked_signer {
        Some(k) => format!(
            " (it is signed by the revoked key {}, listed in a revoked.ed25519 file)",
            base64::engine::general_purpose::STANDARD.encode(k)
        ),
        None => String::new(),
    };
    match invalid.as_slice() {
        // (every key revoked)
        [] => Err(format!("no valid ed25519 signatures found{why}")),
        [one] => Err(format!(
            "ed25519: Signature couldn't be verified with: key '{one}'{why}"
        )),
        many => Err(format!(
            "ed25519: Signature couldn't be verified; tried {} keys{why}",
            many.len()
        )),
    }
}

/// Keys as ostree loads them (`ostree_sign_ed25519_add_pk`): in order, without repeats.
pub fn dedup(keys: &[PublicKey]) -> Vec<PublicKey> {
    let mut out: Vec<PublicKey> = Vec::new();
    for k in keys {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}

/// The keys of `keys` that are points of the curve (the others verify nothing).
pub fn usable_keys(keys: &[PublicKey]) -> Vec<VerifyingKey> {
    keys.iter()
        .filter_map(|k| VerifyingKey::from_bytes(k).ok())
        .collect()
}

/// A signature engine a remote's `sign-verify` names, with the keys it verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    Ed25519 {
        keys: Vec<PublicKey>,
        revoked: Vec<PublicKey>,
    },
    /// The test engine: a signature verifies when it equals one of the keys.
    Dummy(Vec<String>),
}

impl Verifier {
    /// The detached-metadata key of this engine's signatures.
    fn meta_key(&self) -> &'static str {
        match self {
            Verifier::Ed25519 { .. } => ED25519_KEY,
            Verifier::Dummy(_) => DUMMY_KEY,
        }
    }

    /// ostree's `ostree_sign_data_verify` for this engine, over the signatures in `meta`.
    pub fn verify(&self, data: &[u8], meta: &Value) -> std::result::Result<String, String> {
        let sigs: Option<Vec<Vec<u8>>> =
            meta.lookup(self.meta_key())
                .and_then(Value::items)
                .map(|i| {
                    i.iter()
                        .filter_map(|s| s.as_bytes().map(<[u8]>::to_vec))
                        .collect()
                });
        match self {
            Verifier::Ed25519 { keys, revoked } => {
                ed25519_verify_report(data, sigs.as_deref(), &dedup(keys), revoked)
            }
            Verifier::Dummy(keys) => {
                dummy::check_enabled().map_err(|e| e.to_string())?;
                let Some(sigs) = sigs else {
                    return Err("signature: dummy: commit have no signatures of my type".into());
                };
                if sigs.is_empty() {
                    return Err("signature: dummy: no signatures".into());
                }
                if sigs
                    .iter()
                    .any(|s| keys.iter().any(|k| k.as_bytes() == s.as_slice()))
                {
                    return Ok("dummy: Signature verified".into());
                }
                Err(format!(
                    "signature: dummy: incorrect signatures found: {}",
                    sigs.len()
                ))
            }
        }
    }
}

/// ostree's `_sign_verify_for_remote`: the first engine whose signatures verify `data`
/// wins; engines that find none of their signatures in `meta` (detached metadata or
/// `summary.sig` bytes; bytes that are no `a{sv}` hold none) are passed over. `Err` is
/// ostree's text: `No signatures found`, or the first engine's failure.
pub fn verify_for_remote(
    verifiers: &[Verifier],
    data: &[u8],
    meta: Option<&[u8]>,
) -> std::result::Result<String, String> {
    let meta = meta
        .and_then(|m| gvariant::decode_normal(m, &Type::of("a{sv}")).ok())
        .unwrap_or_else(|| Value::Array(Type::of("{sv}"), Vec::new()));
    let mut first_error = None;
    let mut invalid = 0usize;
    for v in verifiers {
        if meta.lookup(v.meta_key()).is_none() {
            continue;
        }
        match v.verify(data, &meta) {
            Ok(msg) => return Ok(msg),
            Err(e) => {
                invalid += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Err("No signatures found".into()),
        Some(e) if invalid > 1 => Err(format!(
            "(and {} other invalid signatures): {e}",
            invalid - 1
        )),
        Some(e) => Err(e),
    }
}

/// Base64 of a public key, as ostree prints and reads it.
pub fn public_key_base64(k: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(k.as_bytes())
}

impl Repo {
    /// Sign a commit: append an ed25519 signature over the commit object to its detached
    /// metadata (replaced atomically through a transaction; concurrent signers of the same
    /// commit are serialised, see [`Repo::update_commitmeta`]).
    pub fn sign_commit(&self, commit: &Checksum, key: &SigningKey) -> Result<()> {
        self.update_commitmeta(commit, |data, existing| {
            append_signature(existing, data, key)
        })
    }

    /// Add a `dummy` signature (the key string) to a commit's detached metadata.
    pub fn sign_commit_dummy(&self, commit: &Checksum, key: &str) -> Result<()> {
        dummy::check_enabled()?;
        self.update_commitmeta(commit, |_, existing| {
            append_to_aay(existing, DUMMY_KEY, key.as_bytes().to_vec())
        })
    }

    /// Delete signatures of one type from a commit's detached metadata: those `doomed`
    /// selects among the `aay` under `name`. Returns how many went.
    pub fn delete_commit_signatures(
        &self,
        commit: &Checksum,
        name: &str,
        doomed: &dyn Fn(&[u8]) -> bool,
    ) -> Result<usize> {
        let mut n = 0;
        if self.load_commitmeta_bytes(commit)?.is_none() {
            // Still verify the commit exists, as ostree does.
            self.load_metadata(ObjectType::Commit, commit)?;
            return Ok(0);
        }
        self.update_commitmeta(commit, |_, existing| {
            let (bytes, removed) = remove_from_aay(existing, name, doomed)?;
            n = removed;
            // Nothing deleted: the metadata stays byte for byte as it was.
            Ok(match (removed, existing) {
                (0, Some(old)) => old.to_vec(),
                _ => bytes,
            })
        })?;
        Ok(n)
    }

    /// Verify a commit's ed25519 signatures; the key that verified, if any.
    pub fn verify_commit_ed25519(
        &self,
        commit: &Checksum,
        keys: &[VerifyingKey],
        revoked: &[PublicKey],
    ) -> Result<Option<VerifyingKey>> {
        let data = self.load_metadata(ObjectType::Commit, commit)?;
        verify(
            self.load_commitmeta_bytes(commit)?.as_deref(),
            &data,
            keys,
            revoked,
        )
    }

    /// The ed25519 keys a remote trusts: `verification-ed25519-key` and the lines of
    /// `verification-ed25519-file` (32 bytes each, points of the curve or not, as ostree
    /// loads them).
    pub fn remote_ed25519_keys(&self, remote: &str) -> Result<Vec<PublicKey>> {
        let mut keys = Vec::new();
        let bad = |k: &str| {
            Error::InvalidArgument(format!(
                "remote {remote}: invalid ed25519 public key {:?}: not base64 of 32 bytes",
                abbreviate(k)
            ))
        };
        if let Some(k) = self.remote_option(remote, "verification-ed25519-key") {
            keys.push(public_key_raw(&k).ok_or_else(|| bad(&k))?);
        }
        if let Some(f) = self.remote_option(remote, "verification-ed25519-file") {
            for line in read_key_lines(Path::new(&f))? {
                keys.push(public_key_raw(&line).ok_or_else(|| bad(&line))?);
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_roundtrip() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let b64sk = base64::engine::general_purpose::STANDARD.encode(sk.to_keypair_bytes());
        let parsed = parse_secret_key(&b64sk).expect("parses");
        let meta = append_signature(None, b"commit bytes", &parsed).expect("sign");
        let meta2 = append_signature(Some(&meta), b"commit bytes", &parsed).expect("sign again");
        assert_eq!(signatures(&meta2).expect("sigs").len(), 2);
        let pk = parse_public_key(&public_key_base64(&sk.verifying_key())).expect("pk");
        assert_eq!(
            verify(Some(&meta), b"commit bytes", &[pk], &[]).expect("verify"),
            Some(pk)
        );
        assert_eq!(
            verify(Some(&meta), b"other bytes", &[pk], &[]).expect("verify"),
            None
        );
        assert_eq!(
            verify(Some(&meta), b"commit bytes", &[pk], &[*pk.as_bytes()]).expect("verify"),
            None,
            "revoked key"
        );
        assert!(parse_public_key("AAAA").is_err());
    }

    #[test]
    fn revocation_lists() {
        let d = tempfile::tempdir().expect("tmp");
        let k = |b: u8| SigningKey::from_bytes(&[b; 32]).verifying_key();
        std::fs::create_dir_all(d.path().join("a/revoked.ed25519.d")).expect("mkdir");
        std::fs::write(
            d.path().join("a/revoked.ed25519"),
            format!("{}\n\n", public_key_base64(&k(1))),
        )
        .expect("write");
        std::fs::write(
            d.path().join("a/revoked.ed25519.d/x"),
            format!(
                "{}\n{}\n",
                public_key_base64(&k(2)),
                public_key_base64(&k(3))
            ),
        )
        .expect("write");
        let got = revoked_keys_in(&[&d.path().join("a"), &d.path().join("missing")]).expect("read");
        assert_eq!(
            got,
            vec![*k(1).as_bytes(), *k(2).as_bytes(), *k(3).as_bytes()]
        );
        std::fs::write(d.path().join("a/revoked.ed25519.d/y"), "not a key\n").expect("write");
        let e = revoked_keys_in(&[&d.path().join("a")]).expect_err("bad entry");
        assert!(e.to_string().contains("revoked.ed25519.d/y:1"), "{e}");
    }
}
