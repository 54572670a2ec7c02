//! Writing static deltas (`static-delta generate`) and their indexes (spec §6.4–§6.5).
//!
//! New objects travel whole ('S' ops), except a regular file that replaces one at the same
//! path in FROM: it travels as a bsdiff patch against the old file, which the client already
//! has ('r' 'o' 'B' 'c' 'R'), when the patch is clearly smaller. (ostree also tries rsync-like
//! rollsum matching first; bsdiff covers the same cases, at some CPU cost here.) Files above
//! `min_fallback_size` become fallbacks that clients fetch as plain objects.

use super::commit::varint;
use super::Repo;
use crate::delta::{delta_dir, index_path, Fallback, PartHeader, Superblock};
use crate::error::{Error, IoContext, Result};
use crate::gvariant::{self, Type, Value};
use crate::object::{Checksum, ObjectType};
use std::collections::HashMap;
use std::io::{Read, Write};

#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Start a new part once this much data is in the current one (ostree: 32 MiB).
    pub max_chunk_size: u64,
    /// Regular files larger than this are fallbacks (ostree: 4 MiB; 0 = none).
    pub min_fallback_size: u64,
    /// Modified files up to this size (old and new each) are sent as bsdiff patches; 0 =
    /// never. bsdiff needs about 9 bytes of memory per byte of the old file.
    pub max_bsdiff_size: u64,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            max_chunk_size: 32 << 20,
            min_fallback_size: 4 << 20,
            max_bsdiff_size: 32 << 20,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeltaReport {
    pub name: String,
    pub parts: usize,
    pub objects: usize,
    pub fallbacks: usize,
    /// Objects sent as bsdiff patches.
    pub patched: usize,
    /// Bytes of the parts as stored, and of what they carry uncompressed.
    pub size: u64,
    pub uncompressed_size: u64,
}

/// One part being built.
#[derive(Default)]
struct PartBuilder {
    modes: Vec<(u32, u32, u32)>,
    mode_index: HashMap<(u32, u32, u32), u64>,
    xattrs: Vec<Value>,
    xattr_index: HashMap<Vec<u8>, u64>,
    blob: Vec<u8>,
    ops: Vec<u8>,
    objects: Vec<(ObjectType, Checksum)>,
    uncompressed: u64,
}

impl PartBuilder {
    fn add_meta(&mut self, ty: ObjectType, c: Checksum, data: &[u8]) {
        self.ops.push(b'S');
        varint(&mut self.ops, data.len() as u64);
        varint(&mut self.ops, self.blob.len() as u64);
        self.blob.extend_from_slice(data);
        self.objects.push((ty, c));
        self.uncompressed += data.len() as u64;
    }

    /// Indexes of the header's (uid, gid, mode) and xattrs in this part's tables.
    fn tables(&mut self, h: &crate::object::FileHeader) -> (u64, u64) {
        let key = (h.uid, h.gid, h.mode);
        let next = self.modes.len() as u64;
        let mi = *self.mode_index.entry(key).or_insert_with(|| {
            self.modes.push(key);
            next
        });
        let xv = crate::object::xattrs_value(&h.xattrs);
        let xkey = gvariant::encode(&xv);
        let next = self.xattrs.len() as u64;
        let xi = *self.xattr_index.entry(xkey).or_insert_with(|| {
            self.xattrs.push(xv);
            next
        });
        (mi, xi)
    }

    fn add_content(&mut self, c: Checksum, h: &crate::object::FileHeader, data: &[u8]) {
        let (mi, xi) = self.tables(h);
        let body: &[u8] = if h.is_symlink() {
            h.symlink_target.as_bytes()
        } else {
            data
        };
        self.ops.push(b'S');
        for v in [mi, xi, body.len() as u64, self.blob.len() as u64] {
            varint(&mut self.ops, v);
        }
        self.blob.extend_from_slice(body);
        self.objects.push((ObjectType::File, c));
        self.uncompressed += body.len() as u64;
    }

    /// A modified file as a bsdiff patch against `old`, a file object the client has.
    fn add_patched(
        &mut self,
        c: Checksum,
        h: &crate::object::FileHeader,
        size: u64,
        old: &Checksum,
        patch: &[u8],
    ) {
        let (mi, xi) = self.tables(h);
        self.ops.push(b'r');
        varint(&mut self.ops, self.blob.len() as u64);
        self.blob.extend_from_slice(old.as_bytes());
        self.ops.push(b'o');
        for v in [mi, xi, size] {
            varint(&mut self.ops, v);
        }
        self.ops.push(b'B');
        varint(&mut self.ops, self.blob.len() as u64);
        varint(&mut self.ops, patch.len() as u64);
        self.blob.extend_from_slice(patch);
        self.ops.push(b'c');
        self.ops.push(b'R');
        self.objects.push((ObjectType::File, c));
        self.uncompressed += size;
    }

    /// The part file: `x` ‖ xz(payload).
    fn finish(self) -> Result<(Vec<u8>, PartHeader)> {
        let payload = gvariant::encode(&Value::Tuple(vec![
            Value::Array(
                Type::of("(uuu)"),
                self.modes
                    .iter()
                    .map(|(u, g, m)| {
                        Value::Tuple(vec![
                            Value::U32(u.to_be()),
                            Value::U32(g.to_be()),
                            Value::U32(m.to_be()),
                        ])
                    })
                    .collect(),
            ),
            Value::Array(Type::of("a(ayay)"), self.xattrs),
            Value::Bytes(self.blob),
            Value::Bytes(self.ops),
        ]));
        let mut stored = vec![b'x'];
        let mut enc = liblzma::write::XzEncoder::new(&mut stored, 6);
        enc.write_all(&payload)
            .and_then(|_| enc.finish().map(|_| ()))
            .map_err(|e| Error::Other(format!("xz compression of a delta part: {e}")))?;
        let header = PartHeader {
            version: 0,
            checksum: Checksum::digest(&stored),
            size: stored.len() as u64,
            uncompressed_size: self.uncompressed,
            objects: self.objects,
        };
        Ok((stored, header))
    }
}

impl Repo {
    /// Write the static delta `from` → `to` (a scratch delta without `from`) into
    /// `deltas/`: every object reachable from `to` and not from `from`, the commit itself in
    /// the superblock. Run `summary -u` afterwards so clients find it.
    pub fn generate_static_delta(
        &self,
        from: Option<&Checksum>,
        to: &Checksum,
        opts: &DeltaOptions,
    ) -> Result<DeltaReport> {
        let mut want = super::traverse::Reachable::default();
        self.traverse_commit(to, 0, &mut want, false)?;
        if let Some(f) = from {
            let mut have = super::traverse::Reachable::default();
            self.traverse_commit(f, 0, &mut have, false)?;
            want.objects.retain(|o| !have.objects.contains(o));
        }
        // Files that replace one at the same path in FROM: bsdiff candidates.
        let mut similar: HashMap<Checksum, Checksum> = HashMap::new();
        if let (Some(f), true) = (from, opts.max_bsdiff_size > 0) {
            let old: HashMap<String, Checksum> = self.file_paths(f)?.into_iter().collect();
            for (path, new) in self.file_paths(to)? {
                if let Some(o) = old.get(&path) {
                    if *o != new && want.objects.contains(&(ObjectType::File, new)) {
                        similar.entry(new).or_insert(*o);
                    }
                }
            }
        }
        let mut objs: Vec<(ObjectType, Checksum)> = want
            .objects
            .into_iter()
            .filter(|(t, c)| !(*t == ObjectType::Commit && c == to) && *t != ObjectType::CommitMeta)
            .collect();
        // Metadata first (the client can walk trees while files arrive), then files.
        objs.sort_by_key(|(t, c)| {
            (
                *t != ObjectType::DirTree && *t != ObjectType::DirMeta,
                *t as u8,
                *c,
            )
        });
        let mut parts: Vec<(Vec<u8>, PartHeader)> = Vec::new();
        let mut fallbacks = Vec::new();
        let mut patched = 0;
        let mut cur = PartBuilder::default();
        for (ty, c) in objs {
            if cur.blob.len() as u64 >= opts.max_chunk_size {
                parts.push(std::mem::take(&mut cur).finish()?);
            }
            if ty.is_meta() {
                let data = self.load_metadata(ty, &c)?;
                cur.add_meta(ty, c, &data);
                continue;
            }
            let mut f = self.read_file(&c)?;
            if f.header.is_regular()
                && opts.min_fallback_size > 0
                && f.size > opts.min_fallback_size
            {
                let stored = std::fs::metadata(&f.path).ctx("stat", &f.path)?.len();
                fallbacks.push(Fallback {
                    ty,
                    checksum: c,
                    size: stored,
                    uncompressed_size: f.size,
                });
                continue;
            }
            let mut data = Vec::with_capacity(f.size as usize);
            f.payload
                .read_to_end(&mut data)
                .ctx("read content for", f.path.clone())?;
            if let Some(old) = similar.get(&c).filter(|_| f.header.is_regular()) {
                if let Some(patch) = self.bsdiff_against(old, &data, opts.max_bsdiff_size)? {
                    cur.add_patched(c, &f.header, f.size, old, &patch);
                    patched += 1;
                    continue;
                }
            }
            cur.add_content(c, &f.header, &data);
        }
        if !cur.objects.is_empty() || parts.is_empty() {
            parts.push(cur.finish()?);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sb = Superblock {
            metadata: Value::dict_sv(vec![("ostree.endianness".into(), Value::Byte(b'l'))]),
            timestamp: now,
            from: from.copied(),
            to: *to,
            commit: self.load_metadata(ObjectType::Commit, to)?,
            parts: parts.iter().map(|(_, h)| h.clone()).collect(),
            fallbacks,
        };
        let dir = self.path().join(delta_dir(from, to));
        std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let fsync = self.fsync_enabled();
        let mut report = DeltaReport {
            name: crate::delta::delta_name(from, to),
            parts: parts.len(),
            fallbacks: sb.fallbacks.len(),
            patched,
            ..Default::default()
        };
        // Parts before the superblock: a reader that finds the superblock finds its parts.
        for (i, (stored, h)) in parts.iter().enumerate() {
            crate::fsutil::write_atomic(&dir.join(i.to_string()), stored, fsync)?;
            report.objects += h.objects.len();
            report.size += h.size;
            report.uncompressed_size += h.uncompressed_size;
        }
        crate::fsutil::write_atomic(&dir.join("superblock"), &sb.encode()?, fsync)?;
        Ok(report)
    }

    /// Regular files of a commit by path (the first path of each checksum's is enough).
    fn file_paths(&self, commit: &Checksum) -> Result<Vec<(String, Checksum)>> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), self.load_commit(commit)?.root_tree)];
        while let Some((prefix, tree)) = stack.pop() {
            let bytes = self.load_metadata(ObjectType::DirTree, &tree)?;
            let dt = crate::object::DirTree::parse(&bytes)
                .map_err(|e| Error::corrupt(ObjectType::DirTree, tree, e))?;
            for (name, c) in &dt.files {
                out.push((format!("{prefix}/{name}"), *c));
            }
            for (name, t, _) in &dt.dirs {
                stack.push((format!("{prefix}/{name}"), *t));
            }
        }
        Ok(out)
    }

    /// A bsdiff patch turning file object `old` into `new`, if both are small enough and
    /// the patch is worth it.
    fn bsdiff_against(&self, old: &Checksum, new: &[u8], max: u64) -> Result<Option<Vec<u8>>> {
        let mut f = self.read_file(old)?;
        if !f.header.is_regular() || f.size > max || new.len() as u64 > max {
            return Ok(None);
        }
        let mut old_data = Vec::with_capacity(f.size as usize);
        f.payload
            .read_to_end(&mut old_data)
            .ctx("read content for", f.path.clone())?;
        let mut patch = Vec::new();
        bsdiff::diff(&old_data, new, &mut patch)
            .map_err(|e| Error::Other(format!("bsdiff against {old}: {e}")))?;
        // The raw patch is about as long as the new file, but its diff block is mostly
        // zeros that the part's compression removes: judge it by what is left.
        let information = patch.iter().filter(|b| **b != 0).count();
        Ok((information < new.len() / 2).then_some(patch))
    }

    /// The static deltas in `deltas/`: (from, to), scratch deltas without `from`.
    pub fn list_static_deltas(&self) -> Result<Vec<(Option<Checksum>, Checksum)>> {
        let root = self.path().join("deltas");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&root) else {
            return Ok(out);
        };
        let decode = crate::delta::mbase64_decode;
        for prefix in rd.flatten() {
            let p = prefix.file_name().to_string_lossy().into_owned();
            let Ok(inner) = std::fs::read_dir(prefix.path()) else {
                continue;
            };
            for d in inner.flatten() {
                if !d.path().join("superblock").is_file() {
                    continue;
                }
                let rest = d.file_name().to_string_lossy().into_owned();
                let name = format!("{p}{rest}");
                let parsed = match name.split_once('-') {
                    Some((f, t)) => decode(f).zip(decode(t)).map(|(f, t)| (Some(f), t)),
                    None => decode(&name).map(|t| (None, t)),
                };
                if let Some(x) = parsed {
                    out.push(x);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// `ostree.static-deltas` for the summary (name → digest of the superblock), and the
    /// per-target delta indexes (`delta-indexes/`), rewritten to match `deltas/`.
    pub(crate) fn reindex_static_deltas(&self) -> Result<Vec<(String, Value)>> {
        let mut map = Vec::new();
        let mut by_target: HashMap<Checksum, Vec<(String, Value)>> = HashMap::new();
        for (from, to) in self.list_static_deltas()? {
            let sb = self
                .path()
                .join(delta_dir(from.as_ref(), &to))
                .join("superblock");
            let digest = Checksum::digest(&std::fs::read(&sb).ctx("read", &sb)?);
            let entry = (
                crate::delta::delta_name(from.as_ref(), &to),
                Value::Bytes(digest.as_bytes().to_vec()),
            );
            by_target.entry(to).or_default().push(entry.clone());
            map.push(entry);
        }
        // Each index is replaced in place, then only indexes no delta needs any more are
        // unlinked (as ostree): a reader or a crash never meets a missing index for a
        // delta that has one (there was an rm -rf window here).
        let idx_root = self.path().join("delta-indexes");
        let mut written = std::collections::HashSet::new();
        for (to, entries) in by_target {
            let p = self.path().join(index_path(&to));
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).ctx("create directory", d)?;
            }
            let index = Value::dict_sv(vec![(
                "ostree.static-deltas".into(),
                Value::dict_sv(entries),
            )]);
            crate::fsutil::write_atomic(&p, &gvariant::encode(&index), self.fsync_enabled())?;
            super::fail_point("delta-index-written")?;
            written.insert(p);
        }
        let Ok(prefixes) = std::fs::read_dir(&idx_root) else {
            return Ok(map);
        };
        for pd in prefixes {
            let pd = pd.ctx("read directory", &idx_root)?;
            let dir = pd.path();
            if !pd.file_type().ctx("stat", &dir)?.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(&dir).ctx("read directory", &dir)? {
                let p = e.ctx("read directory", &dir)?.path();
                let stale = p.extension().is_some_and(|x| x == "index") && !written.contains(&p);
                if stale {
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).ctx("remove stale", p),
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir); // only if now empty
        }
        Ok(map)
    }
}
