//! Verification before storage: object hashes, commit signatures (ed25519 and OpenPGP).

use super::walk::Shared;
use crate::error::{Error, Result};
use crate::object::{Checksum, ObjectType};

impl Shared<'_> {
    pub(super) fn verify_hash(&self, ty: ObjectType, c: &Checksum, b: &[u8]) -> Result<()> {
        let actual = Checksum::digest(b);
        if actual != *c {
            return Err(Error::ChecksumMismatch {
                ty,
                csum: *c,
                actual,
            });
        }
        Ok(())
    }

    /// Signatures are checked before the commit (or its metadata) is stored, so an
    /// unsigned or tampered commit never enters the repo and no ref moves.
    pub(super) fn check_signatures(
        &self,
        c: &Checksum,
        meta: Option<&[u8]>,
        bytes: &[u8],
    ) -> Result<()> {
        if let Some(keys) = &self.opts.ed25519_keys {
            if crate::sign::verify(meta, bytes, keys, &[])?.is_none() {
                let n = meta
                    .map(crate::sign::signatures)
                    .transpose()?
                    .map_or(0, |s| s.len());
                let msg = if n == 0 {
                    "no ed25519 signature (ostree.sign.ed25519) in its detached metadata, and the remote has sign-verify on".to_string()
                } else {
                    format!(
                        "none of its {n} ed25519 signature(s) verifies with the {} key(s) configured for the remote (verification-ed25519-key/-file)",
                        keys.len()
                    )
                };
                return Err(Error::Signature { commit: *c, msg });
            }
        }
        if let Some(keys) = &self.opts.gpg_keys {
            let report = crate::sign::gpg::verify_meta(meta, bytes, keys)?;
            if !report
                .iter()
                .any(|r| r.status == crate::sign::gpg::GpgStatus::Good)
            {
                return Err(Error::Signature {
                    commit: *c,
                    msg: format!(
                        "no good OpenPGP signature (gpg-verify is on): {}",
                        describe_gpg(&report)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One line about each signature, for refusals.
pub(super) fn describe_gpg(report: &[crate::sign::gpg::GpgSignature]) -> String {
    use crate::sign::gpg::GpgStatus;
    if report.is_empty() {
        return "no ostree.gpgsigs signature".into();
    }
    report
        .iter()
        .map(|r| {
            let key = r.key.as_deref().unwrap_or("unknown key");
            match r.status {
                GpgStatus::Good => format!("good signature by {key}"),
                GpgStatus::ExpiredKey => format!("signature by expired key {key}"),
                GpgStatus::RevokedKey => format!("signature by revoked key {key}"),
                GpgStatus::Bad => format!("BAD signature (key {key})"),
                GpgStatus::UnknownKey => {
                    format!("signature by {key}, which is not in the remote's keyring")
                }
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
