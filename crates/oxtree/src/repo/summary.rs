//! Writing the repository's `summary` (`ostree summary -u`): the index a pull reads first.
//!
//! `summary` and `summary.sig` are two files, and no rename replaces both at once. They are
//! written in ostree's order: the summary first, then its signature (each atomically
//! replaced), then the summary's mtime is set to the signature's so HTTP caches see the two
//! change together. So a reader can meet a new summary with the previous signature, for
//! the moment between the two renames, or for good if the writer died there; the pair
//! then fails verification (a signature covers exact bytes), so it is never accepted.
//! The client rule: on a summary signature mismatch, fetch both files again once before
//! failing. The next `summary -u` repairs a pair left by a crash. Unsigned summaries remove
//! a stale `summary.sig` after the new summary is in place. The repository lock is held
//! (shared, as ostree) while the refs are read and the files written.

use super::Repo;
use crate::error::{IoContext, Result};
use crate::gvariant::Value;
use crate::object::ObjectType;
use crate::object::{Summary, SummaryRef};
use std::os::unix::fs::MetadataExt;

/// What `summary -u` adds to a plain regeneration.
#[derive(Default)]
pub struct SummaryOptions {
    /// `--add-metadata` entries, in the order given (a repeated key keeps its first place
    /// and its last value, as GLib's dictionary does). ostree's own keys win over these.
    pub additional_metadata: Vec<(String, Value)>,
    /// ed25519 keys to sign with (`--sign`).
    pub ed25519_keys: Vec<ed25519_dalek::SigningKey>,
    /// `dummy` signatures (ostree's test engine: the key string is the signature).
    pub dummy_keys: Vec<String>,
    /// OpenPGP keys to sign with (`--gpg-sign`): the secret keys and the key ID asked for.
    pub gpg_keys: Vec<(crate::repo::GpgSecretKeys, String)>,
}

impl SummaryOptions {
    /// The detached signatures of `bytes` (the summary's, or the metadata commit's) as
    /// `a{sv}`: ed25519 first, then dummy, then OpenPGP `ostree.gpgsigs`; `None` without keys.
    fn sign(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::sign::append_signatures(
            None,
            bytes,
            &self.ed25519_keys,
            &self.dummy_keys,
            self.gpg_keys.iter().map(|(keys, id)| (keys, id.as_str())),
        )
    }
}

impl Repo {
    /// Regenerate `summary` from the local branches (`refs/heads`), as ostree does: delete
    /// a stale `summary.sig`, set `core.indexed-deltas=true`, replace the file atomically.
    pub fn regenerate_summary(&mut self) -> Result<Summary> {
        self.regenerate_summary_signed(&[])
    }

    /// Regenerate the summary and, with `keys`, sign it into `summary.sig` (`a{sv}` with
    /// `ostree.sign.ed25519`, over the exact summary bytes); see the module doc for the
    /// order of the two writes.
    pub fn regenerate_summary_signed(
        &mut self,
        keys: &[ed25519_dalek::SigningKey],
    ) -> Result<Summary> {
        self.regenerate_summary_with(&SummaryOptions {
            ed25519_keys: keys.to_vec(),
            ..Default::default()
        })
    }

    /// Regenerate the summary with `opts`: additional metadata, then signatures into
    /// `summary.sig` (ed25519 first, then OpenPGP `ostree.gpgsigs`, every one over the exact
    /// summary bytes). Every signature is made before either file is written, so a key that
    /// cannot sign leaves the previous pair as it was.
    ///
    /// The metadata is assembled as ostree assembles it, in a `GVariantDict` seeded with
    /// the additional keys, then `ostree.static-deltas`, `last-modified`, `mode`,
    /// `tombstone-commits`, `indexed-deltas`, `collection-id` and `collection-map`
    /// inserted in that order, so the dictionary comes out in GLib's hash-table order.
    pub fn regenerate_summary_with(&mut self, opts: &SummaryOptions) -> Result<Summary> {
        let _lock = self.lock(false)?;
        let entry = |name: String, c: crate::object::Checksum| -> Result<SummaryRef> {
            let bytes = self.load_metadata(ObjectType::Commit, &c)?;
            let commit = self.load_commit(&c)?;
            let mut metadata = Vec::new();
            if let Some(v) = commit.version() {
                metadata.push(("ostree.commit.version".to_string(), Value::str(v)));
            }
            metadata.push((
                "ostree.commit.timestamp".to_string(),
                Value::U64(commit.timestamp.to_be()),
            ));
            Ok(SummaryRef {
                name,
                commit_size: bytes.len() as u64,
                checksum: c,
                metadata,
            })
        };
        let mut refs = Vec::new();
        for (r, c) in self.list_refs()? {
            if r.remote.is_none() {
                refs.push(entry(r.name, c)?);
            }
        }
        refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        // Refs of other collections (`refs/mirrors/`): the collection map, by collection ID.
        let own = self.collection_id().map(str::to_string);
        let mut map: std::collections::BTreeMap<String, Vec<SummaryRef>> = Default::default();
        // (remote refs too, of remotes with a collection ID, as ostree lists them)
        for (cr, c) in self.list_collection_refs(None, false)? {
            if Some(&cr.collection_id) != own.as_ref() {
                map.entry(cr.collection_id)
                    .or_default()
                    .push(entry(cr.ref_name, c)?);
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut metadata = opts.additional_metadata.clone();
        // Static deltas: indexed per target, and listed here too unless the repo says not.
        let deltas = self.reindex_static_deltas()?;
        if !deltas.is_empty()
            && !self
                .config()
                .get_bool("core", "no-deltas-in-summary")
                .unwrap_or(false)
        {
            metadata.push((
                "ostree.static-deltas".to_string(),
                Value::dict_sv(crate::gvariant::glib_dict_order(deltas)),
            ));
        }
        metadata.push((
            "ostree.summary.last-modified".to_string(),
            Value::U64(now.to_be()),
        ));
        metadata.push((
            "ostree.summary.mode".to_string(),
            Value::str(self.mode().config_name()),
        ));
        metadata.push((
            "ostree.summary.tombstone-commits".to_string(),
            Value::Bool(
                self.config()
                    .get_bool("core", "tombstone-commits")
                    .unwrap_or(false),
            ),
        ));
        metadata.push((
            "ostree.summary.indexed-deltas".to_string(),
            Value::Bool(true),
        ));
        if let Some(cid) = &own {
            metadata.push((
                crate::object::COLLECTION_ID_KEY.to_string(),
                Value::str(cid.clone()),
            ));
        }
        if !map.is_empty() {
            let entries = map
                .into_iter()
                .map(|(cid, mut refs)| {
                    refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
                    Value::DictEntry(
                        Box::new(Value::str(cid)),
                        Box::new(crate::object::refs_value(&refs)),
                    )
                })
                .collect();
            metadata.push((
                crate::object::COLLECTION_MAP_KEY.to_string(),
                Value::Array(crate::gvariant::Type::of("{sa(s(taya{sv}))}"), entries),
            ));
        }
        // A user key that ostree also sets gets ostree's value (GVariantDict replaces the
        // value and keeps the first place).
        let metadata = crate::gvariant::glib_dict_order(metadata);
        let summary = Summary { refs, metadata };
        if self.config().get("core", "indexed-deltas") != Some("true") {
            let mut kf = self.config().clone();
            kf.set("core", "indexed-deltas", "true");
            self.write_config(kf)?;
        }
        let sig = self.path().join("summary.sig");
        let bytes = summary.encode();
        let signature = opts.sign(&bytes)?;
        let fsync = self.fsync_enabled();
        let summary_path = self.path().join("summary");
        crate::fsutil::write_atomic(&summary_path, &bytes, fsync)?;
        super::fail_point("summary-before-sig")?;
        match signature {
            Some(m) => {
                crate::fsutil::write_atomic(&sig, &m, fsync)?;
                // HTTP caches key on Last-Modified: the pair changes as one (ostree does
                // the same).
                let mtime = std::fs::metadata(&sig).ctx("stat", &sig)?;
                let ts = rustix::fs::Timespec {
                    tv_sec: mtime.mtime(),
                    tv_nsec: mtime.mtime_nsec(),
                };
                rustix::fs::utimensat(
                    rustix::fs::CWD,
                    &summary_path,
                    &rustix::fs::Timestamps {
                        last_access: ts,
                        last_modification: ts,
                    },
                    rustix::fs::AtFlags::empty(),
                )
                .ctx("set times of", &summary_path)?;
            }
            None => match std::fs::remove_file(&sig) {
                Ok(()) => {
                    if fsync {
                        crate::fsutil::fsync_dir(self.path())?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("remove stale", sig),
            },
        }
        Ok(summary)
    }

    /// The repository's own summary, if one was generated.
    pub fn read_summary(&self) -> Result<Option<Summary>> {
        let p = self.path().join("summary");
        match crate::fsutil::read_regular(&p, crate::pull::MAX_METADATA_SIZE) {
            Ok(b) => Summary::parse(&b)
                .map(Some)
                .map_err(|e| crate::Error::Config {
                    path: p,
                    msg: format!("invalid summary: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", p),
        }
    }
}

/// The ref of the repository-metadata commit (ostree's `OSTREE_REPO_METADATA_REF`).
pub const METADATA_REF: &str = "ostree-metadata";

impl Repo {
    /// What `ostree summary -u` does first in a repository with a collection ID: commit the
    /// repository's metadata (`additional`, the summary's `--add-metadata` keys) as an
    /// empty tree on the `ostree-metadata` ref, bound to the collection and that ref, the
    /// previous such commit as parent. Peers distribute it like any collection ref. `None`
    /// (and nothing written) without a collection ID.
    pub fn commit_metadata_ref(
        &self,
        additional: &[(String, Value)],
    ) -> Result<Option<crate::object::Checksum>> {
        self.commit_metadata_ref_with(&SummaryOptions {
            additional_metadata: additional.to_vec(),
            ..Default::default()
        })
    }

    /// [`Repo::commit_metadata_ref`] with the additional metadata of `opts`, the commit
    /// signed by its keys (as ostree signs it) before the ref moves.
    pub fn commit_metadata_ref_with(
        &self,
        opts: &SummaryOptions,
    ) -> Result<Option<crate::object::Checksum>> {
        use crate::object::{Commit, DirMeta, DirTree};
        let additional = &opts.additional_metadata;
        let Some(cid) = self.collection_id().map(str::to_string) else {
            return Ok(None);
        };
        let r = super::RefName {
            remote: None,
            name: METADATA_REF.to_string(),
        };
        let parent = self.read_ref(&r)?;
        // A GVariantDict seeded with the additional keys, the bindings inserted after
        // them (and winning over a user key of the same name): GLib's order, as ostree.
        let mut metadata = additional.to_vec();
        metadata.push(("ostree.collection-binding".to_string(), Value::str(cid)));
        metadata.push((
            "ostree.ref-binding".to_string(),
            Value::Array(crate::gvariant::Type::Str, vec![Value::str(METADATA_REF)]),
        ));
        let metadata = crate::gvariant::glib_dict_order(metadata);
        let txn = self.begin()?;
        let root_meta = txn.write_metadata(
            ObjectType::DirMeta,
            &DirMeta {
                uid: 0,
                gid: 0,
                mode: 0o40755,
                xattrs: Default::default(),
            }
            .encode(),
        )?;
        let root_tree = txn.write_metadata(
            ObjectType::DirTree,
            &DirTree {
                files: Vec::new(),
                dirs: Vec::new(),
            }
            .encode(),
        )?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let commit = Commit {
            metadata,
            parent,
            related: Vec::new(),
            subject: String::new(),
            body: String::new(),
            timestamp,
            root_tree,
            root_meta,
        };
        let bytes = commit.encode();
        let c = txn.write_metadata(ObjectType::Commit, &bytes)?;
        let detached = opts.sign(&bytes)?;
        if let Some(meta) = &detached {
            txn.write_metadata_as(ObjectType::CommitMeta, &c, meta)?;
        }
        txn.set_ref(&r, Some(&c))?;
        txn.commit()?;
        Ok(Some(c))
    }
}
