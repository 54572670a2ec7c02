//! OSTree's on-disk objects: checksums, object types, and the typed views of commit,
//! dirtree, dirmeta and file headers over their GVariant encodings (spec §1–§3).
//!
//! OSTree stores uid/gid/mode and the commit timestamp big-endian inside GVariant; that byte
//! swapping happens here, so `gvariant` stays a plain codec.

mod checksum;
mod commit;
mod dirmeta;
mod dirtree;
mod file;
mod names;
mod summary;

pub use checksum::{Checksum, ParseChecksumError};
pub use commit::{Commit, ObjectSize};
pub use dirmeta::DirMeta;
pub use dirtree::DirTree;
pub(crate) use file::parse_xattrs;
pub use file::xattrs_value;
pub use file::{FileHeader, Xattrs, ARCHIVE_HEADER_TYPE, CONTENT_HEADER_TYPE};
pub use names::{validate_collection_id, validate_filename, validate_ref, validate_remote_name};
pub use summary::{
    refs_value, Summary, SummaryRef, COLLECTION_ID_KEY, COLLECTION_MAP_KEY, SUMMARY_TYPE,
};

use crate::gvariant::DecodeError;

/// OSTree object types with their numeric ids (`OstreeObjectType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    File = 1,
    DirTree = 2,
    DirMeta = 3,
    Commit = 4,
    TombstoneCommit = 5,
    CommitMeta = 6,
    PayloadLink = 7,
    FileXattrs = 8,
    FileXattrsLink = 9,
}

/// A loose object's identity from its place under `objects/`: the two-hex-digit directory
/// and the file name `REST.EXT` (`None` for anything else).
pub fn parse_loose_name(prefix: &str, name: &str) -> Option<(ObjectType, Checksum)> {
    let (rest, ext) = name.split_once('.')?;
    let ty = ObjectType::from_extension(ext)?;
    let csum = format!("{prefix}{rest}").parse::<Checksum>().ok()?;
    Some((ty, csum))
}

impl ObjectType {
    /// The loose-object file extension (without the archive-mode `z`).
    pub fn extension(self) -> &'static str {
        match self {
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::TombstoneCommit => "tombstone-commit",
            ObjectType::CommitMeta => "commitmeta",
            ObjectType::PayloadLink => "payload-link",
            ObjectType::FileXattrs => "file-xattrs",
            ObjectType::FileXattrsLink => "file-xattrs-link",
        }
    }

    pub fn from_extension(ext: &str) -> Option<ObjectType> {
        Some(match ext {
            "file" | "filez" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "tombstone-commit" => ObjectType::TombstoneCommit,
            "commitmeta" => ObjectType::CommitMeta,
            "payload-link" => ObjectType::PayloadLink,
            "file-xattrs" => ObjectType::FileXattrs,
            "file-xattrs-link" => ObjectType::FileXattrsLink,
            _ => return None,
        })
    }

    pub fn from_u8(v: u8) -> Option<ObjectType> {
        Some(match v {
            1 => ObjectType::File,
            2 => ObjectType::DirTree,
            3 => ObjectType::DirMeta,
            4 => ObjectType::Commit,
            5 => ObjectType::TombstoneCommit,
            6 => ObjectType::CommitMeta,
            7 => ObjectType::PayloadLink,
            8 => ObjectType::FileXattrs,
            9 => ObjectType::FileXattrsLink,
            _ => return None,
        })
    }

    /// Metadata objects are stored as raw GVariant and named by the hash of their bytes
    /// (or, for commitmeta/tombstones, by their commit).
    pub fn is_meta(self) -> bool {
        matches!(
            self,
            ObjectType::DirTree
                | ObjectType::DirMeta
                | ObjectType::Commit
                | ObjectType::TombstoneCommit
                | ObjectType::CommitMeta
        )
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// Structural problems in an object, beyond GVariant framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    GVariant(#[from] DecodeError),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn invalid(msg: impl Into<String>) -> ObjectError {
    ObjectError::Invalid(msg.into())
}

#[cfg(test)]
mod tests;
