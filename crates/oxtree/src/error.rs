//! The library's one public error type. Every variant names the path, object or ref it is
//! about, so the CLI can print a message a user can act on.

use crate::object::{Checksum, ObjectType};
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object {csum}.{ty} is missing")]
    ObjectMissing { ty: ObjectType, csum: Checksum },
    #[error("corrupted object {csum}.{ty}: checksum is actually {actual}")]
    ChecksumMismatch {
        ty: ObjectType,
        csum: Checksum,
        actual: Checksum,
    },
    #[error("corrupted object {csum}.{ty}: {reason}")]
    Corrupt {
        ty: ObjectType,
        csum: Checksum,
        reason: String,
    },
    /// ostree's wording, which scripts match.
    #[error("Refspec '{0}' not found")]
    RefNotFound(String),
    /// Something else that was asked for does not exist (a path in a commit, a parent).
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{path}: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("commit {commit}: {msg}")]
    Signature { commit: Checksum, msg: String },
    #[error("summary {url}: {msg}")]
    SummarySignature { url: String, msg: String },
    #[error("commit {new} is older than {old} (the current {refname}); pass --allow-downgrade to accept it")]
    Downgrade {
        refname: String,
        old: Checksum,
        new: Checksum,
    },
    /// An update graph (the agent's) that must not be trusted: unsigned, tampered, expired,
    /// replayed, for another stream, or malformed.
    #[error("update graph {url}: {msg}")]
    UpdateGraph { url: String, msg: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A suggestion for what to do next, where we know one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::ChecksumMismatch { .. } | Error::Corrupt { .. } => Some(
                "run `oxtree fsck --delete` to remove corrupt objects, then pull or commit again"
                    .into(),
            ),
            Error::ObjectMissing { .. } => Some(
                "the repository is incomplete: pull the commit again, or run `oxtree fsck`".into(),
            ),
            Error::RefNotFound(_) => Some("list the available refs with `oxtree refs`".into()),
            Error::SummarySignature { .. } => Some(
                "the server's summary is not signed by a key this remote trusts: check verification-ed25519-key/-file, \
                 or ask the publisher to run `oxtree summary -u --sign=KEY`"
                    .into(),
            ),
            Error::Downgrade { .. } => Some(
                "the server offers an older commit than the one you have (a rollback or a replay attack); \
                 if that is intended, pull again with --allow-downgrade"
                    .into(),
            ),
            Error::Signature { .. } => Some(
                "the commit is not signed by a key this remote trusts: check verification-ed25519-key/-file in the remote's config, \
                 or ask the publisher to sign it (oxtree sign --sign-type=ed25519 COMMIT SECRET-KEY)"
                    .into(),
            ),
            Error::UpdateGraph { .. } => Some(
                "the graph is refused and nothing is staged: the publisher re-signs it with `oxtree graph sign` \
                 (a higher serial, a later expiry); check the remote's verification-ed25519-key"
                    .into(),
            ),
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                Some("the disk is full: free space (e.g. `oxtree prune`) and try again".into())
            }
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some("check the permissions of that path (bare repos need root)".into())
            }
            _ => None,
        }
    }

    /// True for signature verification failures (exit code 4 in the CLI).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            Error::Signature { .. }
                | Error::SummarySignature { .. }
                | Error::Downgrade { .. }
                | Error::UpdateGraph { .. }
        )
    }

    /// True for "the thing asked for does not exist" errors (exit code 3 in the CLI).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::RefNotFound(_) | Error::NotFound(_) | Error::ObjectMissing { .. }
        )
    }

    pub(crate) fn corrupt(ty: ObjectType, csum: Checksum, reason: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            ty,
            csum,
            reason: reason.to_string(),
        }
    }
}

/// Attach an operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::Io {
            op,
            path: path.into(),
            source: e.into(),
        })
    }
}
