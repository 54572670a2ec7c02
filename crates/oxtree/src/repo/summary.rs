//! Writing the repository's `summary` (`ostree summary -u`): the index a pull reads first.

use super::Repo;
use crate::error::{IoContext, Result};
use crate::gvariant::Value;
use crate::object::ObjectType;
use crate::object::{Summary, SummaryRef};

impl Repo {
    /// Regenerate `summary` from the local branches (`refs/heads`), as ostree does: delete
    /// a stale `summary.sig`, set `core.indexed-deltas=true`, replace the file atomically.
    pub fn regenerate_summary(&mut self) -> Result<Summary> {
        self.regenerate_summary_signed(&[])
    }

    /// Regenerate the summary and, with `keys`, sign it into `summary.sig` (`a{sv}` with
    /// `ostree.sign.ed25519`, over the exact summary bytes). The summary is renamed into
    /// place after its signature, so a reader never sees a new summary with an old sig.
    pub fn regenerate_summary_signed(
        &mut self,
        keys: &[ed25519_dalek::SigningKey],
    ) -> Result<Summary> {
        let mut refs = Vec::new();
        for (r, c) in self.list_refs()? {
            if r.remote.is_some() {
                continue;
            }
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
            refs.push(SummaryRef {
                name: r.name,
                commit_size: bytes.len() as u64,
                checksum: c,
                metadata,
            });
        }
        refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut metadata = vec![
            (
                "ostree.summary.mode".to_string(),
                Value::str(self.mode().config_name()),
            ),
            (
                "ostree.summary.last-modified".to_string(),
                Value::U64(now.to_be()),
            ),
            (
                "ostree.summary.tombstone-commits".to_string(),
                Value::Bool(
                    self.config()
                        .get_bool("core", "tombstone-commits")
                        .unwrap_or(false),
                ),
            ),
            (
                "ostree.summary.indexed-deltas".to_string(),
                Value::Bool(true),
            ),
        ];
        if let Some(cid) = self.config().get("core", "collection-id") {
            metadata.push(("ostree.summary.collection-id".to_string(), Value::str(cid)));
        }
        // Static deltas: indexed per target, and listed here too unless the repo says not.
        let deltas = self.reindex_static_deltas()?;
        if !deltas.is_empty()
            && !self
                .config()
                .get_bool("core", "no-deltas-in-summary")
                .unwrap_or(false)
        {
            metadata.push(("ostree.static-deltas".to_string(), Value::dict_sv(deltas)));
        }
        let summary = Summary { refs, metadata };
        if self.config().get("core", "indexed-deltas") != Some("true") {
            let mut kf = self.config().clone();
            kf.set("core", "indexed-deltas", "true");
            self.write_config(kf)?;
        }
        let sig = self.path().join("summary.sig");
        let bytes = summary.encode();
        if keys.is_empty() {
            match std::fs::remove_file(&sig) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("remove stale", sig),
            }
        } else {
            let mut meta: Option<Vec<u8>> = None;
            for k in keys {
                meta = Some(crate::sign::append_signature(meta.as_deref(), &bytes, k)?);
            }
            crate::fsutil::write_atomic(&sig, &meta.unwrap_or_default(), self.fsync_enabled())?;
        }
        crate::fsutil::write_atomic(&self.path().join("summary"), &bytes, self.fsync_enabled())?;
        Ok(summary)
    }

    /// The repository's own summary, if one was generated.
    pub fn read_summary(&self) -> Result<Option<Summary>> {
        let p = self.path().join("summary");
        match std::fs::read(&p) {
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
