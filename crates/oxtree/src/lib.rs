//! oxtree: an OSTree-compatible, content-addressed store of operating-system trees.
//!
//! Layers, from the bottom: [`gvariant`] (the serialisation), [`object`] (OSTree's object
//! formats and checksums), [`fsutil`] (the only code that talks to the kernel), [`repo`]
//! (the repository: modes, objects, refs, commit, checkout, fsck, prune).

pub mod agent;
pub mod delta;
pub mod error;
pub mod fleetlock;
pub mod fsutil;
pub mod gvariant;
pub mod image;
pub mod object;
pub mod p2p;
pub mod progress;
pub mod pull;
pub mod repo;
pub mod serve;
pub mod sign;
pub mod stack;
pub mod sysroot;

pub use error::{Error, Result};
pub use object::{Checksum, Commit, DirMeta, DirTree, FileHeader, ObjectType};
/// The OpenPGP crate (rpgp) whose key types appear in `sign::gpg`'s API.
pub use pgp;
pub use repo::{Repo, RepoMode};
