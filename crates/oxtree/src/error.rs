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
    /// Worded as ostree words it (scripts match these lines).
    #[error("{}", missing_message(*ty, csum))]
    ObjectMissing { ty: ObjectType, csum: Checksum },
    /// ostree's words (scripts and its own tests match `Corrupted.*CHECKSUM`).
    #[error("Corrupted {ty} object; checksum expected='{csum}' actual='{actual}'")]
    ChecksumMismatch {
        ty: ObjectType,
        csum: Checksum,
        actual: Checksum,
    },
    /// `CHECKSUM.TYPE: what is wrong`, as ostree reports a malformed object.
    #[error("{csum}.{ty}: {reason}")]
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
    /// `commit --skip-list` paths that named nothing in the committed trees (ostree refuses
    /// the commit; its message, the paths for the caller to list).
    #[error("Unmatched skip-list paths")]
    UnmatchedSkipList(Vec<String>),
    #[error("Unmatched statoverride paths")]
    UnmatchedStatOverride(Vec<String>),
    #[error("{path}: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("commit {commit}: {msg}")]
    Signature { commit: Checksum, msg: String },
    /// gpg-verify is on and the commit carries no OpenPGP signature at all (ostree's words).
    #[error("Commit {0}: GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)")]
    GpgUnsigned(Checksum),
    /// The commit's `ostree.ref-binding` / `ostree.collection-binding` do not match what
    /// was asked for (ostree's `verify_bindings`; its wording).
    #[error("Commit {commit}: {msg}")]
    Binding { commit: Checksum, msg: String },
    /// A static delta that does not match its signed commit (parts writing objects the
    /// commit does not reference, or commit objects), or whose signed superblock does not
    /// verify: refused, never fallen back from.
    #[error("static delta {delta}: {msg}")]
    DeltaRefused { delta: String, msg: String },
    #[error("summary {url}: {msg}")]
    SummarySignature { url: String, msg: String },
    /// gpg-verify-summary is on and the server has no `summary.sig` (ostree's words).
    #[error("GPG verification enabled, but no summary.sig found (use gpg-verify-summary=false in remote config to disable)")]
    GpgSummaryUnsigned { url: String },
    /// A static delta's superblock signatures do not verify (`static-delta verify`,
    /// `apply-offline` with keys); ostree's wording.
    #[error("{0}")]
    DeltaSignature(String),
    /// A system call on a path failed, worded as ostree words it (`opendir(DIR): No such
    /// file or directory`, `Opening deltapart '0': …`), which scripts match; `path` is the
    /// full path, given as the hint where ostree's text does not name it.
    #[error("{msg}")]
    Quoted { msg: String, path: PathBuf },
    /// The server's summary does not list the ref (ostree's wording); refs are never looked
    /// up unauthenticated in `refs/heads/` when there is a summary.
    #[error("No such branch '{refname}' in repository summary")]
    RefNotInSummary { remote: String, refname: String },
    /// The timestamp (downgrade) check of a pull, in ostree's words: the new commit is
    /// older than the one the ref points at (or than `--timestamp-check-from-rev`).
    #[error(
        "Upgrade target revision '{new}' with timestamp '{}' is chronologically older than current revision '{old}' with timestamp '{}'; use --allow-downgrade to permit",
        ctime(*new_timestamp),
        ctime(*old_timestamp)
    )]
    TimestampCheck {
        new: Checksum,
        new_timestamp: u64,
        old: Checksum,
        old_timestamp: u64,
    },
    /// An update graph (the agent's) that must not be trusted: unsigned, tampered, expired,
    /// replayed, for another stream, or malformed.
    #[error("update graph {url}: {msg}")]
    UpdateGraph { url: String, msg: String },
    /// No remote of that name is configured (ostree's wording).
    #[error("Remote \"{0}\" not found")]
    RemoteNotFound(String),
    /// `remote add` of a remote that exists (ostree's wording).
    #[error("Remote configuration for \"{0}\" already exists: (in config)")]
    RemoteExists(String),
    /// A file the pull needs is not on the server (ostree's words: the HTTP status).
    #[error("Server returned HTTP 404")]
    ServerNotFound { url: String },
    /// An object the pull needs is not on the server: over HTTP ostree's words (the status),
    /// the object and its URL in the hint; from a local remote, all in the line.
    #[error("{}", object_not_on_server(object, url))]
    ObjectNotOnServer { object: String, url: String },
    /// `pull REMOTE` with no ref named and no `branches=` (ostree's words).
    #[error("No configured branches for remote {0}")]
    NoBranches(String),
    /// A summary that does not parse (a pull of pinned commits goes on without it, as
    /// ostree's does).
    #[error("{url}: invalid summary: {msg}")]
    InvalidSummary { url: String, msg: String },
    /// `remote refs`/`remote summary` of a server without a summary (ostree's words).
    #[error("Remote refs not available; server has no summary file")]
    NoSummary { url: String },
    /// A device, FIFO or socket in a tree to commit (ostree's words: the name only).
    #[error("Not a regular file or symlink: {name}")]
    UnsupportedFileType { name: String, path: PathBuf },
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
            Error::ObjectNotOnServer { object, url } if is_http(url) => Some(format!(
                "the server has no object {object} ({url}): its repository is incomplete (its \
                 owner can check it with `ostree fsck`), or this mirror is out of date"
            )),
            Error::ServerNotFound { url } => Some(format!(
                "{url} is not on the server: check the ref's name with `oxtree remote refs REMOTE` (the server may have no summary), and the remote's URL"
            )),
            Error::NoBranches(r) => Some(format!(
                "name the refs to pull (`oxtree pull {r} REF`), or set them with `oxtree config set 'remote \"{r}\".branches' 'REF;'`"
            )),
            Error::NoSummary { url } => Some(format!(
                "{url} is not there: the repository's owner can create it with `oxtree summary -u`"
            )),
            Error::UnsupportedFileType { path, .. } => Some(format!(
                "{} is a device, FIFO or socket, which a commit cannot hold; add it to --skip-list",
                path.display()
            )),
            Error::RemoteNotFound(_) => {
                Some("list the configured remotes with `oxtree remote list`".into())
            }
            Error::RemoteExists(r) => Some(format!(
                "replace it with `oxtree remote add --force {r} …`, or keep it with --if-not-exists"
            )),
            Error::RefNotInSummary { remote, .. } => Some(format!(
                "`oxtree remote refs {remote}` lists the refs the server's summary offers"
            )),
            Error::GpgSummaryUnsigned { url } => Some(format!(
                "{url} has no OpenPGP signature: the publisher signs it with `oxtree summary -u --gpg-sign=KEY-ID`"
            )),
            Error::SummarySignature { .. } => Some(
                "the server's summary is not signed by a key this remote trusts: check verification-ed25519-key/-file, \
                 or ask the publisher to run `oxtree summary -u --sign=KEY`"
                    .into(),
            ),
            Error::TimestampCheck { .. } => Some(
                "the server offers an older commit than the one you have (a rollback or a replay attack); \
                 if that is intended, pull again with --allow-downgrade"
                    .into(),
            ),
            Error::Binding { .. } => Some(
                "the server offers a commit made for another branch or collection (a mix-and-match \
                 attack, or a misconfigured server); --disable-verify-bindings skips this check"
                    .into(),
            ),
            Error::DeltaRefused { .. } => Some(
                "the server's static delta does not match the commit it claims to deliver (an attack, \
                 or a broken delta); nothing of it was kept. --disable-static-deltas fetches the \
                 commit's objects one by one, each verified against the signed tree"
                    .into(),
            ),
            Error::GpgUnsigned(_) => Some(
                "the remote verifies OpenPGP signatures and this commit has none: ask the publisher to sign it \
                 (oxtree gpg-sign COMMIT KEY-ID), or pull from a remote that does not require them"
                    .into(),
            ),
            Error::Signature { msg, .. } if msg.contains("OpenPGP") => Some(
                "the commit is not signed by a key this remote trusts: import the publisher's key with \
                 `oxtree remote gpg-import REMOTE --keyring=FILE`"
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
            Error::Quoted { path, .. } => Some(format!("the path is {}", path.display())),
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                Some("the disk is full: free space (e.g. `oxtree prune`) and try again".into())
            }
            // (A flush refused is no permission of the path's: a file system, or a sandbox's
            // filter, that refuses `fsync`/`syncfs`; `--fsync=false` goes without them.)
            Error::Io { op, source, .. }
                if op.contains("sync") && source.raw_os_error() == Some(libc::EPERM) =>
            {
                Some(
                    "the file system refused to flush to disk; `--fsync=false` (or \
                     core.fsync=false) goes without"
                        .into(),
                )
            }
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some("check the permissions of that path (bare repos need root)".into())
            }
            _ => None,
        }
    }

    /// True for verification failures: signatures, bindings, downgrades (exit code 4 in the
    /// CLI).
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            Error::Signature { .. }
                | Error::GpgUnsigned(_)
                | Error::SummarySignature { .. }
                | Error::GpgSummaryUnsigned { .. }
                | Error::DeltaSignature(_)
                | Error::TimestampCheck { .. }
                | Error::Binding { .. }
                | Error::DeltaRefused { .. }
                | Error::UpdateGraph { .. }
        )
    }

    /// True for "the thing asked for does not exist" errors (exit code 3 in the CLI).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::RefNotFound(_)
                | Error::NotFound(_)
                | Error::RefNotInSummary { .. }
                | Error::ObjectMissing { .. }
                | Error::ServerNotFound { .. }
                | Error::ObjectNotOnServer { .. }
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

/// A UTC time as GLib's `g_date_time_format("%c")` in the C locale, which is how ostree's
/// messages show commit timestamps: "Fri Jan 1 00:00:00 2021" where GLib pads a one-digit
/// day with a FIGURE SPACE (U+2007), not an ASCII space.
fn ctime(t: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t / 86400;
    let secs = t % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{} {} {}{d} {:02}:{:02}:{:02} {}",
        DAYS.get((days % 7) as usize).copied().unwrap_or("?"),
        MONTHS.get((m - 1) as usize).copied().unwrap_or("?"),
        if d < 10 { "\u{2007}" } else { "" },
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
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

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn object_not_on_server(object: &str, url: &str) -> String {
    if is_http(url) {
        "Server returned HTTP 404".into()
    } else {
        format!("object {object} not found on the server ({url})")
    }
}

/// ostree's words for an absent object: `ostree_repo_load_variant` for metadata,
/// `ostree_repo_load_file` for content.
fn missing_message(ty: ObjectType, csum: &Checksum) -> String {
    match ty {
        ObjectType::File => format!("Couldn't find file object '{csum}'"),
        _ => format!("No such metadata object {csum}.{ty}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ctime_is_c_locale_percent_c() {
        assert_eq!(
            super::ctime(1_609_459_200),
            "Fri Jan \u{2007}1 00:00:00 2021"
        );
        assert_eq!(super::ctime(0), "Thu Jan \u{2007}1 00:00:00 1970");
        assert_eq!(super::ctime(951_825_599), "Tue Feb 29 11:59:59 2000");
        assert_eq!(super::ctime(1_767_225_599), "Wed Dec 31 23:59:59 2025");
    }
}
