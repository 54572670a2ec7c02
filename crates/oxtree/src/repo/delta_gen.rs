//! Writing static deltas (`static-delta generate`) and their indexes (spec §6.4–§6.5).
//!
//! The generator writes every new object whole ('S' ops, as ostree's scratch deltas and its
//! generator for files without a similar predecessor do); it does not compute rollsum or
//! bsdiff patches for modified files. Files above `min_fallback_size` become fallbacks that
//! clients fetch as plain objects.

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
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            max_chunk_size: 32 << 20,
            min_fallback_size: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeltaReport {
    pub name: String,
    pub parts: usize,
    pub objects: usize,
    pub fallbacks: usize,
    /// Bytes of the parts as stored, and of what they carry uncompressed.
    pub size: u64,
    pub uncompressed_size: u64,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
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

    fn add_content(&mut self, c: Checksum, h: &crate::object::FileHeader, data: &[u8]) {
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

    /// The static deltas in `deltas/`: (from, to), scratch deltas without `from`.
    pub fn list_static_deltas(&self) -> Result<Vec<(Option<Checksum>, Checksum)>> {
        let root = self.path().join("deltas");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&root) else {
            return Ok(out);
        };
        let decode = |s: &str| -> Option<Checksum> {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(s.replace('_', "/"))
                .ok()?;
            Checksum::from_slice(&b)
        };
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
        let idx_root = self.path().join("delta-indexes");
        if idx_root.exists() {
            std::fs::remove_dir_all(&idx_root).ctx("remove", &idx_root)?;
        }
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
        }
        Ok(map)
    }
}
