//! Static deltas in a pull: choose a delta that fits, fetch its superblock and parts, and
//! execute them into the pull's transaction.

use super::retry::fetch_retry;
use super::walk::Shared;
use super::MAX_METADATA_SIZE;
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, Commit, DirTree, ObjectType, Summary};
use crate::repo::{RefName, Repo, Transaction};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

impl Shared<'_> {
    /// Pull `to` (for `refname`) with a static delta when the server lists one that fits:
    /// FROM-TO when the ref is at a complete FROM here, a scratch delta when the ref does not
    /// exist here yet (as ostree chooses). Without a summary, the FROM-TO delta is asked for
    /// directly (as ostree does). Returns the delta's name, or `None` if none fits.
    /// The superblock is checked against the digest the summary (or delta index) gives,
    /// the embedded commit against `to` and its signatures, each part against the
    /// superblock and each object against its checksum.
    pub(super) fn try_delta(
        &self,
        summary: Option<&Summary>,
        refname: &RefName,
        to: &Checksum,
    ) -> Result<Option<String>> {
        let complete =
            |c: &Checksum| self.repo.has_object(ObjectType::Commit, c) && !self.repo.is_partial(c);
        if complete(to) {
            return Ok(None);
        }
        let current = self.repo.read_ref(refname)?;
        let from = current.filter(|f| f != to && complete(f));
        let Some(summary) = summary else {
            // No summary, so no digest: the embedded commit must still hash to `to`.
            return match from {
                Some(f) => {
                    self.apply_delta(Some(f), to, crate::delta::delta_name(Some(&f), to), None)
                }
                None => Ok(None),
            };
        };
        let indexed = matches!(
            summary.meta("ostree.summary.indexed-deltas"),
            Some(crate::gvariant::Value::Bool(true))
        );
        let map = if indexed {
            let path = crate::delta::index_path(to);
            let Some(b) = fetch_retry(
                self.fetcher,
                &path,
                self.opts,
                self.progress,
                MAX_METADATA_SIZE,
            )?
            else {
                return Ok(None);
            };
            let v =
                crate::gvariant::decode(&b, &crate::gvariant::Type::of("a{sv}")).map_err(|e| {
                    Error::Other(format!(
                        "{}: invalid delta index: {e}",
                        self.fetcher.describe(&path)
                    ))
                })?;
            v.lookup("ostree.static-deltas")
                .map(crate::delta::parse_delta_map)
                .unwrap_or_default()
        } else {
            summary
                .meta("ostree.static-deltas")
                .map(crate::delta::parse_delta_map)
                .unwrap_or_default()
        };
        let pick = |f: Option<&Checksum>| {
            let name = crate::delta::delta_name(f, to);
            map.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| (name, *d))
        };
        let (from, (name, digest)) = match (from, current) {
            (Some(f), _) if pick(Some(&f)).is_some() => match pick(Some(&f)) {
                Some(x) => (Some(f), x),
                None => return Ok(None),
            },
            (_, None) => match pick(None) {
                Some(x) => (None, x),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        self.apply_delta(from, to, name, Some(digest))
    }

    /// Fetch and apply the delta `from` → `to` (see [`Self::try_delta`]); `None` if the
    /// server has no such superblock.
    fn apply_delta(
        &self,
        from: Option<Checksum>,
        to: &Checksum,
        name: String,
        digest: Option<Checksum>,
    ) -> Result<Option<String>> {
        let dir = crate::delta::delta_dir(from.as_ref(), to);
        let sb_path = format!("{dir}/superblock");
        let what = self.fetcher.describe(&sb_path);
        let Some(sb_bytes) = fetch_retry(
            self.fetcher,
            &sb_path,
            self.opts,
            self.progress,
            MAX_METADATA_SIZE,
        )?
        else {
            return Ok(None);
        };
        let actual = Checksum::digest(&sb_bytes);
        if let Some(digest) = digest.filter(|d| *d != actual) {
            return Err(Error::Other(format!(
                "{what}: superblock hashes to {actual}, the summary says {digest}"
            )));
        }
        let sb = crate::delta::Superblock::parse(&sb_bytes, &what)?;
        if sb.to != *to || sb.from != from {
            return Err(Error::Other(format!(
                "{what}: the superblock is for another pair of commits"
            )));
        }
        let meta = self.fetch_meta(ObjectType::CommitMeta, to, true)?;
        self.verify_commit(to, meta.as_deref(), &sb.commit)?;
        let sink = DeltaSink {
            repo: self.repo,
            txn: self.txn,
        };
        // Parts are independent: two at a time (as ostree), each fetched, decompressed and
        // executed by its own thread, which bounds memory to two parts.
        let todo: Vec<usize> = (0..sb.parts.len())
            .filter(|&i| {
                !sb.parts[i]
                    .objects
                    .iter()
                    .all(|(t, c)| self.txn.has_object(*t, c))
            })
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let run_part = |i: usize| -> Result<()> {
            let part = &sb.parts[i];
            let path = format!("{dir}/{i}");
            let what = self.fetcher.describe(&path);
            let stored = fetch_retry(
                self.fetcher,
                &path,
                self.opts,
                self.progress,
                crate::delta::MAX_PART_SIZE,
            )?
            .ok_or_else(|| Error::Other(format!("{what}: delta part not found on the server")))?;
            let payload = crate::delta::open_part(&stored, part, &what)?;
            drop(stored);
            let n = crate::delta::apply_part(&payload, &part.objects, &sink, &what)?;
            self.progress
                .objects_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
            Ok(())
        };
        std::thread::scope(|s| {
            for _ in 0..todo.len().min(2) {
                s.spawn(|| loop {
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = run_part(i) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().ok().flatten() {
            return Err(e);
        }
        if let Ok(mut p) = self.prefetched.lock() {
            p.insert(*to, (sb.commit, meta));
        }
        Ok(Some(name))
    }
}

/// Objects executed out of a static delta part go into the pull's transaction.
struct DeltaSink<'a> {
    repo: &'a Repo,
    txn: &'a Transaction<'a>,
}

impl crate::delta::ObjectSink for DeltaSink<'_> {
    fn write_metadata(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()> {
        // The hash was checked by the part executor; the structure is checked here, as
        // for objects fetched one by one.
        match ty {
            ObjectType::DirTree => {
                DirTree::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
            }
            ObjectType::DirMeta => {
                crate::object::DirMeta::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
            }
            ObjectType::Commit => {
                Commit::parse(data).map_err(|e| Error::corrupt(ty, *csum, e))?;
            }
            _ => {
                return Err(Error::corrupt(
                    ty,
                    *csum,
                    "a static delta may not carry this kind of object",
                ))
            }
        }
        self.txn.write_metadata_as(ty, csum, data)
    }

    fn write_content(
        &self,
        header: &crate::object::FileHeader,
        data: &[u8],
        csum: &Checksum,
    ) -> Result<()> {
        let mut r = data;
        self.txn
            .write_file(header, &mut r, data.len() as u64, Some(csum))
            .map(|_| ())
    }

    fn read_content(&self, csum: &Checksum) -> Result<Vec<u8>> {
        let mut f = self.repo.read_file(csum)?;
        let mut out = Vec::with_capacity(f.size.min(crate::delta::MAX_PART_SIZE) as usize);
        f.payload
            .read_to_end(&mut out)
            .ctx("read content for", f.path.clone())?;
        Ok(out)
    }
}
