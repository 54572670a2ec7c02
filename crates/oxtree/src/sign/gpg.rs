//! OpenPGP verification of OSTree's GPG signatures (spec §7.1): detached, binary signatures
//! over the exact commit (or summary) bytes, stored as `ostree.gpgsigs` → `aay` in the
//! detached metadata. Keys come from the remote's keyring `<repo>/<remote>.trustedkeys.gpg`
//! (written by `remote gpg-import`, ours or ostree's), `gpgkeypath`, and
//! `/usr/share/ostree/trusted.gpg.d/`.
//!
//! Why rpgp (`pgp`): pure Rust (no gpgme/gpg-agent, no C build), and it verifies signatures
//! made by subkeys. rpgp parses a keyring without judging it, so this module does what gpg
//! does when it imports a key (ostree verifies through gpg): a keyring file is only trusted
//! for what its primary key signed. Concretely —
//! - the primary key's expiry comes from its newest *verified* self-signature (a user-id
//!   certification or direct-key signature made by the primary key itself), and only a
//!   verified revocation revokes it; a key with no valid self-signature is not used;
//! - a subkey is used only with a valid binding signature by the primary key; a signing
//!   subkey also needs the binding's embedded back-signature made by the subkey ("cross
//!   certification", which gpg has required since 2.0), and key flags that allow signing.
//!   Anyone can append a subkey to a published key file; without these checks it would be
//!   trusted like the publisher (security review M2);
//! - subkey revocations and subkey expiry count, and so do the primary key's;
//! - data signatures made with MD5, SHA-1 or RIPEMD-160 are refused (practical collisions
//!   for the first two; the same 160-bit strength for the third), which gpg 2.2 still
//!   accepts. Self-signatures inside keys may still use SHA-1 (many long-lived keys have
//!   them), but not MD5.

use crate::error::{Error, IoContext, Result};
use crate::gvariant::{self, Type, Value};
use crate::repo::Repo;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};
use std::path::{Path, PathBuf};

/// The detached-metadata key for OpenPGP signatures.
pub const GPGSIGS_KEY: &str = "ostree.gpgsigs";

/// What one signature turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgSignature {
    /// Fingerprint (upper-case hex) of the key that made it, when known (else the issuer's
    /// fingerprint or key id the signature names).
    pub key: Option<String>,
    /// Primary user id of that key, when it is in the keyring.
    pub user: Option<String>,
    /// Seconds since the epoch.
    pub created: Option<u64>,
    pub status: GpgStatus,
    /// Why a signature is not good, when there is more to say than the status (a refused
    /// hash algorithm, a subkey without a valid binding, which key expired and when).
    pub detail: Option<String>,
    /// When the key that made it expires (or expired), if it does: the subkey's own for a
    /// subkey.
    pub key_expires: Option<u64>,
    /// For a subkey's signature, when its primary key expires (or expired), if it does.
    pub primary_expires: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpgStatus {
    Good,
    /// Made by a key we have, but the key (or the subkey that signed) expired before now.
    ExpiredKey,
    /// Made by a key (or subkey) that carries a valid revocation.
    RevokedKey,
    /// Does not verify with any key we have, or is refused (weak hash, expired signature).
    Bad,
    /// Made by a key that is not in the keyring (or a subkey that is not validly bound to a
    /// key in it).
    UnknownKey,
}

impl std::fmt::Display for GpgSignature {
    /// One line, for refusals: `good signature by FPR`, `signature by revoked key FPR: …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.key.as_deref().unwrap_or("unknown key");
        match self.status {
            GpgStatus::Good => write!(f, "good signature by {key}")?,
            GpgStatus::ExpiredKey => write!(f, "Key expired (signature by expired key {key})")?,
            GpgStatus::RevokedKey => write!(f, "Key revoked (signature by revoked key {key})")?,
            GpgStatus::Bad => write!(f, "BAD signature (key {key})")?,
            // (GPGME's words first, which ostree prints and scripts look for)
            GpgStatus::UnknownKey => write!(
                f,
                "Can't check signature: public key not found (signature by {key}, which is not in the remote's keyring)"
            )?,
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Every signature of a report on one line (`; ` between them), for error messages.
pub fn describe(report: &[GpgSignature]) -> String {
    if report.is_empty() {
        return "no ostree.gpgsigs signature".into();
    }
    report
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// GnuPG keyring files (`pubring.gpg`, and the `*.trustedkeys.gpg` ostree writes through
/// gpgme) put a trust packet (tag 12) after each user id and its signatures. rpgp expects
/// the signatures right after the user id, so it would drop them — and with them every
/// self-signature this module checks. Trust packets carry local trust settings only, never
/// anything signed: leave them out. Input this walk does not understand (armor, partial
/// lengths) is returned as it is.
pub(crate) fn strip_trust_packets(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const TRUST: u8 = 12;
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0usize;
    let mut stripped = false;
    let be = |s: &[u8]| s.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    while let Some(&ctb) = data.get(i) {
        if ctb & 0x80 == 0 {
            return data.into();
        }
        let (tag, body) = if ctb & 0x40 != 0 {
            let tag = ctb & 0x3f;
            match data.get(i + 1).copied() {
                Some(l @ 0..=191) => (tag, Some((i + 2, usize::from(l)))),
                Some(l @ 192..=223) => (
                    tag,
                    data.get(i + 2)
                        .map(|&b| (i + 3, (usize::from(l - 192) << 8) + usize::from(b) + 192)),
                ),
                Some(255) => (tag, data.get(i + 2..i + 6).map(|b| (i + 6, be(b)))),
                _ => (tag, None),
            }
        } else {
            let n = match ctb & 3 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => return data.into(),
            };
            (
                (ctb >> 2) & 0x0f,
                data.get(i + 1..i + 1 + n).map(|b| (i + 1 + n, be(b))),
            )
        };
        let Some(end) = body
            .and_then(|(start, len)| start.checked_add(len))
            .filter(|&e| e <= data.len())
        else {
            return data.into();
        };
        if tag == TRUST {
            stripped = true;
        } else {
            out.extend_from_slice(&data[i..end]);
        }
        i = end;
    }
    if stripped {
        out.into()
    } else {
        data.into()
    }
}

/// The keys of a keyring directory as ostree reads one (`trusted.gpg.d`, a GnuPG home):
/// every `*.gpg` (or `*.asc`) file, by name; a file that holds no keys (a GnuPG home's
/// `trustdb.gpg`) adds none, and a directory that is not there adds nothing.
pub fn keyrings_in_dir(dir: &Path) -> Vec<SignedPublicKey> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "gpg" || x == "asc"))
        .flat_map(|f| load_keyring(f).unwrap_or_default())
        .collect()
}

/// Read every public key in a keyring file (binary or ASCII-armored; several concatenated).
pub fn load_keyring(path: &Path) -> Result<Vec<SignedPublicKey>> {
    let raw = std::fs::read(path).ctx("read keyring", path)?;
    parse_public_keys(&raw).map_err(|e| {
        Error::InvalidArgument(format!("{}: not an OpenPGP keyring: {e}", path.display()))
    })
}

/// The public keys in `data`: a binary keyring, or ASCII armor, which may be several armored
/// blocks one after the other (`cat key1.asc key2.asc`, as gpg reads them all). Keys that do
/// not parse are left out.
pub fn parse_public_keys(data: &[u8]) -> std::result::Result<Vec<SignedPublicKey>, String> {
    const BEGIN: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let starts: Vec<usize> = data
        .windows(BEGIN.len())
        .enumerate()
        .filter(|(_, w)| *w == BEGIN)
        .map(|(i, _)| i)
        .collect();
    let parse = |chunk: &[u8]| -> std::result::Result<Vec<SignedPublicKey>, String> {
        let chunk = strip_trust_packets(chunk);
        let keys = SignedPublicKey::from_reader_many(std::io::Cursor::new(&*chunk))
            .map_err(|e| e.to_string())?
            .0
            .filter_map(|k| k.ok())
            .collect();
        Ok(keys)
    };
    if starts.len() < 2 {
        return parse(data);
    }
    let mut keys = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        keys.extend(parse(data.get(start..end).unwrap_or_default())?);
    }
    Ok(keys)
}

/// Merge `new` into `old`, the same primary key (as GnuPG's import merges a key it has):
/// revocations, direct and user-id signatures, user ids and subkeys (with their bindings)
/// that `old` lacks are added; so a key re-imported after its owner changed its expiry or
/// revoked it carries the newer self-signatures.
pub fn merge_key(old: &mut SignedPublicKey, new: SignedPublicKey) {
    fn add<T: PartialEq>(into: &mut Vec<T>, from: Vec<T>) {
        for x in from {
            if !into.contains(&x) {
                into.push(x);
            }
        }
    }
    let d = new.details;
    add(
        &mut old.details.revocation_signatures,
        d.revocation_signatures,
    );
    add(&mut old.details.direct_signatures, d.direct_signatures);
    for u in d.users {
        match old.details.users.iter_mut().find(|o| o.id == u.id) {
            Some(o) => add(&mut o.signatures, u.signatures),
            None => old.details.users.push(u),
        }
    }
    add(&mut old.details.user_attributes, d.user_attributes);
    for sk in new.public_subkeys {
        match old.public_subkeys.iter_mut().find(|o| o.key == sk.key) {
            Some(o) => add(&mut o.signatures, sk.signatures),
            None => old.public_subkeys.push(sk),
        }
    }
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

/// Hashes refused for data signatures (see the module doc).
fn weak_for_data(h: HashAlgorithm) -> bool {
    matches!(
        h,
        HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160
    )
}

/// Self-signatures and bindings made with MD5 are ignored, as gpg does.
fn usable_self_sig(s: &Signature) -> bool {
    s.hash_alg().is_some_and(|h| h != HashAlgorithm::Md5)
}

fn secs(s: &Signature) -> u64 {
    s.created().map(|t| u64::from(t.as_secs())).unwrap_or(0)
}

/// `created + key expiration time` of a self-signature or binding (0 means none).
fn expiry_from(created: u64, s: &Signature) -> Option<u64> {
    s.key_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        .filter(|&d| d > 0)
        .map(|d| created.saturating_add(d))
}

/// The key material that verifies a data signature.
#[derive(Clone, Copy)]
enum KeyRef<'a> {
    Primary(&'a PublicKey),
    Sub(&'a PublicSubkey),
}

/// A key that may have made a data signature, as its certificate's verified
/// self-signatures describe it.
struct Signer<'a> {
    fpr: String,
    key: KeyRef<'a>,
    user: Option<String>,
    /// `Good`, `ExpiredKey` or `RevokedKey` as of `now` (the primary's state included).
    status: GpgStatus,
    detail: Option<String>,
    key_expires: Option<u64>,
    primary_expires: Option<u64>,
}

/// A subkey (or primary key) in the keyring that is not used, and why.
struct Ignored {
    fpr: String,
    why: String,
}

/// What a keyring says once its self-signatures are checked: the keys that may sign and
/// the ones that were ignored.
struct Validated<'a> {
    signers: Vec<Signer<'a>>,
    ignored: Vec<Ignored>,
}

fn validate<'a>(keys: &'a [SignedPublicKey], now: u64) -> Validated<'a> {
    let mut v = Validated {
        signers: Vec::new(),
        ignored: Vec::new(),
    };
    for k in keys {
        validate_cert(k, now, &mut v);
    }
    v
}

/// Seconds since the epoch as a UTC date (the civil-from-days algorithm), for messages.
fn when(t: u64) -> String {
    let (days, rem) = ((t / 86400) as i64, t % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn validate_cert<'a>(k: &'a SignedPublicKey, now: u64, v: &mut Validated<'a>) {
    let primary = &k.primary_key;
    let pfpr = fingerprint(primary);
    // Newest verified self-signature: it says when the primary key expires.
    let mut newest: Option<(u64, &Signature)> = None;
    let mut user: Option<(bool, String)> = None;
    for u in &k.details.users {
        for s in u.signatures.iter().filter(|s| usable_self_sig(s)) {
            if s.typ() == Some(SignatureType::CertRevocation)
                || s.verify_certification(primary, Tag::UserId, &u.id).is_err()
            {
                continue;
            }
            if newest.is_none_or(|(t, _)| secs(s) >= t) {
                newest = Some((secs(s), s));
            }
            let name = String::from_utf8_lossy(u.id.id()).into_owned();
            // The user id flagged primary, else the first certified one.
            if user.as_ref().is_none_or(|(p, _)| !p && s.is_primary()) {
                user = Some((s.is_primary(), name));
            }
        }
    }
    for s in k
        .details
        .direct_signatures
        .iter()
        .filter(|s| usable_self_sig(s))
    {
        if s.typ() == Some(SignatureType::Key)
            && s.verify_key(primary).is_ok()
            && newest.is_none_or(|(t, _)| secs(s) >= t)
        {
            newest = Some((secs(s), s));
        }
    }
    let Some((_, selfsig)) = newest else {
        v.ignored.push(Ignored {
            fpr: pfpr.clone(),
            why: format!("key {pfpr} has no valid self-signature, so nothing in it is used"),
        });
        for sk in &k.public_subkeys {
            v.ignored.push(Ignored {
                fpr: fingerprint(&sk.key),
                why: format!("its primary key {pfpr} has no valid self-signature"),
            });
        }
        return;
    };
    let user = user.map(|(_, n)| n);
    let revoked = k.details.revocation_signatures.iter().any(|s| {
        s.typ() == Some(SignatureType::KeyRevocation)
            && usable_self_sig(s)
            && s.verify_key(primary).is_ok()
    });
    let created = u64::from(primary.created_at().as_secs());
    let expires = expiry_from(created, selfsig);
    let (pstatus, pdetail) = if revoked {
        (
            GpgStatus::RevokedKey,
            Some(format!("key {pfpr} is revoked")),
        )
    } else if let Some(e) = expires.filter(|&e| e <= now) {
        (
            GpgStatus::ExpiredKey,
            Some(format!("key {pfpr} expired at {}", when(e))),
        )
    } else {
        (GpgStatus::Good, None)
    };
    v.signers.push(Signer {
        fpr: pfpr.clone(),
        key: KeyRef::Primary(primary),
        user: user.clone(),
        status: pstatus,
        detail: pdetail.clone(),
        key_expires: expires,
        primary_expires: None,
    });
    for sk in &k.public_subkeys {
        let sfpr = fingerprint(&sk.key);
        let mut ignore = |why: String| {
            v.ignored.push(Ignored {
                fpr: sfpr.clone(),
                why,
            })
        };
        let binding = sk
            .signatures
            .iter()
            .filter(|s| {
                s.typ() == Some(SignatureType::SubkeyBinding)
                    && usable_self_sig(s)
                    && s.verify_subkey_binding(primary, &sk.key).is_ok()
            })
            .max_by_key(|s| secs(s));
        let Some(binding) = binding else {
            ignore(format!(
                "subkey {sfpr} has no valid binding signature by its primary key {pfpr}"
            ));
            continue;
        };
        // Key flags, when present, must allow signing (an encryption subkey does not sign).
        let has_flags = binding.config().is_some_and(|c| {
            c.hashed_subpackets()
                .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
        });
        if has_flags && !binding.key_flags().sign() {
            ignore(format!("subkey {sfpr} of {pfpr} is not a signing key"));
            continue;
        }
        let backsig = binding.embedded_signature().is_some_and(|b| {
            usable_self_sig(b) && b.verify_primary_key_binding(&sk.key, primary).is_ok()
        });
        if !backsig {
            ignore(format!(
                "signing subkey {sfpr} of {pfpr} has no valid back-signature (it is not cross-certified)"
            ));
            continue;
        }
        let revoked = sk.signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::SubkeyRevocation)
                && usable_self_sig(s)
                && s.verify_subkey_binding(primary, &sk.key).is_ok()
        });
        let sexpires = expiry_from(u64::from(sk.key.created_at().as_secs()), binding);
        let (status, detail) = if pstatus != GpgStatus::Good {
            (pstatus, pdetail.clone())
        } else if revoked {
            (
                GpgStatus::RevokedKey,
                Some(format!("subkey {sfpr} of {pfpr} is revoked")),
            )
        } else if let Some(e) = sexpires.filter(|&e| e <= now) {
            (
                GpgStatus::ExpiredKey,
                Some(format!("subkey {sfpr} of {pfpr} expired at {}", when(e))),
            )
        } else {
            (GpgStatus::Good, None)
        };
        v.signers.push(Signer {
            fpr: sfpr.clone(),
            key: KeyRef::Sub(&sk.key),
            user: user.clone(),
            status,
            detail,
            key_expires: sexpires,
            primary_expires: expires,
        });
    }
}

fn key_id_hex(id: &pgp::types::KeyId) -> String {
    id.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Does `fpr` name the issuer `sig` claims (by fingerprint, or by 64-bit key id)?
fn names_issuer(sig: &Signature, fpr: &str) -> bool {
    sig.issuer_fingerprint()
        .iter()
        .any(|f| format!("{f:X}") == fpr)
        || sig
            .issuer_key_id()
            .iter()
            .any(|id| fpr.ends_with(&key_id_hex(id)))
}

fn verify_one(raw: &[u8], data: &[u8], keys: &Validated<'_>, now: u64) -> GpgSignature {
    let Ok(sig) = DetachedSignature::from_bytes(std::io::Cursor::new(raw)) else {
        return GpgSignature {
            key: None,
            user: None,
            created: None,
            status: GpgStatus::Bad,
            detail: Some("not an OpenPGP signature packet".into()),
            key_expires: None,
            primary_expires: None,
        };
    };
    let s = &sig.signature;
    let created = s.created().map(|t| u64::from(t.as_secs()));
    let issuer = s
        .issuer_fingerprint()
        .first()
        .map(|f| format!("{f:X}"))
        .or_else(|| s.issuer_key_id().first().map(|id| key_id_hex(id)));
    let known = keys.signers.iter().find(|k| names_issuer(s, &k.fpr));
    let refuse = |detail: String| GpgSignature {
        key: known.map(|k| k.fpr.clone()).or(issuer.clone()),
        user: known.and_then(|k| k.user.clone()),
        created,
        status: GpgStatus::Bad,
        detail: Some(detail),
        key_expires: known.and_then(|k| k.key_expires),
        primary_expires: known.and_then(|k| k.primary_expires),
    };
    if !matches!(s.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return refuse(format!(
            "a {:?} signature is not a signature over data",
            s.typ()
        ));
    }
    match s.hash_alg() {
        Some(h) if weak_for_data(h) => {
            return refuse(format!(
                "made with {h}, which oxtree refuses for signatures (collisions): re-sign with SHA-256 or stronger (gpg --digest-algo SHA256)"
            ))
        }
        None => return refuse("unknown hash algorithm".into()),
        Some(_) => {}
    }
    if let (Some(c), Some(d)) = (created, s.signature_expiration_time()) {
        let end = c.saturating_add(u64::from(d.as_secs()));
        if d.as_secs() > 0 && end <= now {
            return refuse(format!("the signature expired at {}", when(end)));
        }
    }
    for k in &keys.signers {
        let ok = match k.key {
            KeyRef::Primary(p) => sig.verify(p, data).is_ok(),
            KeyRef::Sub(p) => sig.verify(p, data).is_ok(),
        };
        if ok {
            return GpgSignature {
                key: Some(k.fpr.clone()),
                user: k.user.clone(),
                created,
                status: k.status,
                detail: k.detail.clone(),
                key_expires: k.key_expires,
                primary_expires: k.primary_expires,
            };
        }
    }
    if known.is_some() {
        return refuse("it does not verify with the key it names".into());
    }
    let ignored = keys.ignored.iter().find(|k| names_issuer(s, &k.fpr));
    GpgSignature {
        key: issuer,
        user: None,
        created,
        status: GpgStatus::UnknownKey,
        detail: ignored.map(|i| format!("the keyring has it, but ignores it: {}", i.why)),
        key_expires: None,
        primary_expires: None,
    }
}

/// Check each signature in `sigs` (binary detached signature packets) over `data`.
pub fn verify_all(
    sigs: &[Vec<u8>],
    data: &[u8],
    keys: &[SignedPublicKey],
    now: u64,
) -> Vec<GpgSignature> {
    if sigs.is_empty() {
        return Vec::new();
    }
    let valid = validate(keys, now);
    sigs.iter()
        .map(|raw| verify_one(raw, data, &valid, now))
        .collect()
}

/// Whether one of `keys` (a primary key or a subkey) is `key_id` (a fingerprint or key id,
/// matched as its suffix; `0x` and case ignored).
pub fn keyring_has(keys: &[SignedPublicKey], key_id: &str) -> bool {
    let want = key_id.trim_start_matches("0x").to_ascii_uppercase();
    !want.is_empty()
        && keys.iter().any(|k| {
            fingerprint(&k.primary_key).ends_with(&want)
                || k.public_subkeys
                    .iter()
                    .any(|s| fingerprint(&s.key).ends_with(&want))
        })
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

/// The `ostree.gpgsigs` entries of detached metadata bytes. Bytes that are no `a{sv}` (a
/// `summary.sig` holding garbage) carry no signature, as GLib reads them (its default value
/// for data not in normal form): the caller then says "no signatures found", as ostree does.
pub fn gpgsigs(meta: &[u8]) -> Result<Vec<Vec<u8>>> {
    let Ok(v) = gvariant::decode_normal(meta, &Type::of("a{sv}")) else {
        return Ok(Vec::new());
    };
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
        // (in the parent repository for a remote configured there: `core.parent`)
        self.remote_home(remote)
            .path()
            .join(format!("{remote}.trustedkeys.gpg"))
    }

    /// Every key a remote trusts: its keyring, `gpgkeypath` files/dirs, and the global
    /// keyring directory ([`global_keyring_dir`]).
    pub fn remote_gpg_keys(&self, remote: &str) -> Result<Vec<SignedPublicKey>> {
        let mut files = vec![self.remote_keyring_path(remote)];
        // `gpgkeypath`: files and directories, `;` or `,` between them (not both, as
        // GLib's list reader refuses), each of which must exist.
        let mut named = Vec::new();
        if let Some(p) = self.remote_option(remote, "gpgkeypath") {
            if p.contains(';') && p.contains(',') {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!(
                        "remote {remote:?}: gpgkeypath {p:?}: key value list contains more than one separator"
                    ),
                });
            }
            // (GLib's list: a separator at the end ends the list, one at the start begins
            // it with an empty path)
            let mut items: Vec<&str> = p.split([';', ',']).map(str::trim).collect();
            if items.last().is_some_and(|l| l.is_empty()) {
                items.pop();
            }
            named.extend(items.into_iter().map(PathBuf::from));
        }
        for f in &named {
            if let Err(e) = std::fs::metadata(f) {
                // ostree's words: `openat(PATH): No such file or directory`.
                let msg = e.to_string();
                let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
                return Err(Error::Other(format!("openat({}): {msg}", f.display())));
            }
        }
        files.extend(named);
        files.push(global_keyring_dir());
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
                // (what is no keyring there, as GnuPG's trustdb.gpg, is passed over: GPGME
                // imports nothing from it)
                for e in entries.into_iter().filter(keyring) {
                    keys.extend(load_keyring(&e).unwrap_or_default());
                }
            } else if f.is_file() {
                keys.extend(load_keyring(&f)?);
            }
        }
        Ok(keys)
    }
}

/// The global keyring directory, whose keyrings every remote trusts: `$OSTREE_GPG_HOME`
/// when set (as ostree reads it), else `/usr/share/ostree/trusted.gpg.d`.
pub fn global_keyring_dir() -> PathBuf {
    std::env::var_os("OSTREE_GPG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/ostree/trusted.gpg.d"))
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

/// What makes an OpenPGP signature for `commit --gpg-sign`, `gpg-sign` and `summary
/// --gpg-sign`.
#[derive(Debug, Clone)]
pub enum GpgSigner {
    /// Secret keys in memory: from `--gpg-key-file`, or exported from GnuPG (a key without
    /// a passphrase), signed with here.
    Keys(Vec<SignedSecretKey>),
    /// GnuPG signs, as ostree has it sign through GPGME: the key stays with `gpg-agent`
    /// (a passphrase it has cached, e.g. by `gpg-preset-passphrase`, or asks for through
    /// pinentry; a smartcard). `homedir`: `--gpg-homedir`, or GnuPG's default.
    Gpg { homedir: Option<std::path::PathBuf> },
}

/// A detached binary signature over `data` by `keyid` (see [`sign_detached`]).
pub fn sign_with(signer: &GpgSigner, keyid: &str, data: &[u8]) -> Result<Vec<u8>> {
    match signer {
        GpgSigner::Keys(keys) => sign_detached(keys, keyid, data),
        GpgSigner::Gpg { homedir } => gpg_detach_sign(homedir.as_deref(), keyid, data),
    }
}

/// `gpg`, with `--homedir` when one is given (else GnuPG's default home).
fn gpg_command(homedir: Option<&Path>) -> std::process::Command {
    let mut cmd = std::process::Command::new("gpg");
    if let Some(h) = homedir {
        cmd.arg("--homedir").arg(h);
    }
    cmd
}

/// Whether GnuPG (`homedir` or its default) has a secret key `keyid`.
pub fn gpg_has_secret_key(homedir: Option<&Path>, keyid: &str) -> bool {
    let mut cmd = gpg_command(homedir);
    cmd.args([
        "--batch",
        "--with-colons",
        "--list-secret-keys",
        "--",
        keyid,
    ])
    .stdin(std::process::Stdio::null())
    .output()
    .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// `gpg --detach-sign` of `data` by `keyid` (its signing subkey, as gpg picks it), the
/// signature read from gpg's standard output.
fn gpg_detach_sign(homedir: Option<&Path>, keyid: &str, data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = gpg_command(homedir);
    cmd.args([
        "--batch",
        "--yes",
        "--local-user",
        keyid,
        "--detach-sign",
        "--output",
        "-",
        "-",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::Other(format!(
            "running gpg to sign with key {keyid}: {e} (is GnuPG installed? or use --gpg-key-file)"
        ))
    })?;
    // Written from another thread: gpg may write (its signature, or errors) before it has
    // read everything, and a full pipe each way would hang both.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Other(format!("waiting for gpg: {e}")))?;
    let _ = writer.join();
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "gpg could not sign with key {keyid}{}: {}",
            homedir
                .map(|h| format!(" (homedir {})", h.display()))
                .unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Export a secret key from a GnuPG home directory. GnuPG keeps secret keys in its agent's
/// private format, which only `gpg` itself reads, so this runs `gpg --export-secret-keys`
/// (keys must have no passphrase, as for unattended signing).
pub fn export_from_homedir(homedir: Option<&Path>, keyid: &str) -> Result<Vec<u8>> {
    let mut cmd = gpg_command(homedir);
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
/// with `keyid` (any key when empty): its newest signing subkey if it has one, as gpg does.
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
        // Only subkeys bound for signing (an RSA encryption subkey could make a signature,
        // which gpg — and `verify_all` — refuse), the newest first, as gpg picks.
        let mut signing: Vec<_> = k
            .secret_subkeys
            .iter()
            .filter(|sk| {
                sk.signatures
                    .iter()
                    .any(|s| s.typ() == Some(SignatureType::SubkeyBinding) && s.key_flags().sign())
            })
            .collect();
        signing.sort_by_key(|sk| std::cmp::Reverse(sk.key.created_at()));
        for sk in signing {
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
        keys: &GpgSigner,
        keyid: &str,
    ) -> Result<()> {
        self.update_commitmeta(commit, |data, existing| {
            crate::sign::append_to_aay(existing, GPGSIGS_KEY, sign_with(keys, keyid, data)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_messages_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_577_923_200), "2020-01-02 00:00:00 UTC");
        assert_eq!(when(951_827_696), "2000-02-29 12:34:56 UTC");
    }

    #[test]
    fn trust_packets_are_left_out_of_keyrings() {
        // user id "a" (new header), a trust packet (old header, tag 12), a signature stub.
        let uid = [0xcd, 0x01, b'a'];
        let trust = [0xb0, 0x02, 0x00, 0x00];
        let sig = [0xc2, 0x03, 4, 0x13, 22];
        let ring = [&uid[..], &trust, &sig].concat();
        assert_eq!(&*strip_trust_packets(&ring), &[&uid[..], &sig].concat()[..]);
        // Nothing to strip, armor, or a truncated packet: the input as it is.
        let plain = [&uid[..], &sig].concat();
        assert_eq!(&*strip_trust_packets(&plain), &plain[..]);
        let armor = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n";
        assert_eq!(&*strip_trust_packets(armor), &armor[..]);
        assert_eq!(&*strip_trust_packets(&ring[..6]), &ring[..6]);
    }
}
