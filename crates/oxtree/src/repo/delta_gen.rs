//! Writing static deltas (`static-delta generate`) and their indexes (spec §6.4–§6.5).
//!
//! New objects travel whole ('S' ops), except a regular file that replaces one at the same
//! path in FROM: it travels as a bsdiff patch against the old file, which the client already
//! has ('r' 'o' 'B' 'c' 'R'), when the patch is clearly smaller. (ostree also tries rsync-like
//! rollsum matching first; bsdiff covers the same cases, at some CPU cost here.) Files above
//! `min_fallback_size` become fallbacks that clients fetch as plain objects.
//!
//! Also the rest of `static-delta`: the options of generate (parts inlined into the
//! superblock's metadata under their `deltas/…/N` path, big-endian sizes, a signed
//! `OSTSGNDT` superblock, a superblock written elsewhere with `--filename`), `show`'s
//! reading of a delta (parts opened without their checksum, as ostree's dump does),
//! `delete`, `indexes`, `reindex --to`, `verify` of the superblock's signatures, and
//! `apply-offline`, which runs a delta from a directory through the same quarantine as a
//! pull (`crate::pull::execute_parts`): only objects the delta's commit reaches are kept.

use super::commit::varint;
use super::Repo;
use crate::delta::{delta_dir, index_path, Fallback, PartHeader, Superblock};
use crate::error::{Error, IoContext, Result};
use crate::gvariant::{self, Type, Value};
use crate::object::{Checksum, ObjectType};
use std::collections::HashMap;
use std::io::{Read, Write};

/// How a delta's superblock is signed (`static-delta generate --sign-type=… --sign=…`).
#[derive(Debug, Clone)]
pub enum DeltaSigner {
    /// `ostree.sign.ed25519` signatures by these secret keys.
    Ed25519(Vec<ed25519_dalek::SigningKey>),
    /// ostree's test type: the "signatures" are the key strings (`ostree.sign.dummy`).
    Dummy(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Start a new part once this much data is in the current one (ostree: 32 MiB).
    pub max_chunk_size: u64,
    /// Regular files larger than this are fallbacks (ostree: 4 MiB; 0 = none).
    pub min_fallback_size: u64,
    /// Modified files up to this size (old and new each) are sent as bsdiff patches; 0 =
    /// never (`--disable-bsdiff`). bsdiff needs about 9 bytes of memory per byte of the old
    /// file.
    pub max_bsdiff_size: u64,
    /// Put the parts into the superblock (`--inline`) instead of files beside it.
    pub inline: bool,
    /// Part and fallback sizes in big-endian order (`--set-endianness=B`, or
    /// `--swap-endianness` on a little-endian machine); readers swap them back by the
    /// superblock's `ostree.endianness`.
    pub big_endian: bool,
    /// Sign the superblock.
    pub sign: Option<DeltaSigner>,
    /// Write the superblock to this file, and the parts (unless inline) as `0`, `1`, … in
    /// its directory, instead of into the repository's `deltas/` (`--filename`; what
    /// `static-delta apply-offline` reads).
    pub filename: Option<std::path::PathBuf>,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            max_chunk_size: 32 << 20,
            min_fallback_size: 4 << 20,
            max_bsdiff_size: 32 << 20,
            inline: false,
            big_endian: false,
            sign: None,
            filename: None,
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
    /// Files that replace one at the same path (bsdiff candidates).
    pub modified: usize,
    /// New objects the delta carries: metadata, regular files, symlinks.
    pub new_metadata: usize,
    pub new_regular: usize,
    pub new_symlinks: usize,
    /// Bytes of the parts as stored, and of what they carry uncompressed.
    pub size: u64,
    pub uncompressed_size: u64,
    /// What the carried objects take as loose objects in this repository.
    pub loose_size: u64,
    /// Per part: objects, stored size, uncompressed size.
    pub part_sizes: Vec<(usize, u64, u64)>,
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
        let mut enc =
            liblzma::write::XzEncoder::new_stream(&mut stored, xz_encoder(payload.len())?);
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

/// `path` with each run of digits replaced by `#`: the shape two versions of a file share.
fn digit_stem(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_digits = false;
    for ch in path.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// The xz encoder of a part: preset 6 as before, on every core. A part (up to 32 MiB) is
/// one xz block per core's share, so a single part — what most updates make — compresses on
/// all of them; blocks of at least 4 MiB keep the ratio close to one block's. Any xz
/// decoder reads a multi-block stream (ostree's does).
fn xz_encoder(len: usize) -> Result<liblzma::stream::Stream> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let len = len as u64;
    let block = len.div_ceil(cores.max(1)).max(4 << 20);
    let threads = len.div_ceil(block).clamp(1, cores.max(1));
    let err = |e: liblzma::stream::Error| Error::Other(format!("xz encoder: {e}"));
    if threads <= 1 {
        return liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc64)
            .map_err(err);
    }
    liblzma::stream::MtStreamBuilder::new()
        .preset(6)
        .threads(threads as u32)
        .block_size(block)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(err)
}

/// Where a file at `path` goes in a delta part: by the extension of its name, then the
/// name, then the path (see `generate_static_delta`).
fn part_order(path: &str) -> (String, String, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    (ext.to_string(), name.to_string(), path.to_string())
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
        // Every path of TO's files: bsdiff candidates go by path, and the part's order too.
        let to_paths = self.file_paths(to)?;
        // Files that replace one at the same path in FROM: bsdiff candidates.
        let mut similar: HashMap<Checksum, Checksum> = HashMap::new();
        if let (Some(f), true) = (from, opts.max_bsdiff_size > 0) {
            let old_paths = self.file_paths(f)?;
            // A package update renames versioned files (libfoo.so.1.2.3 -> 1.2.4,
            // modules/6.1.0-13 -> 6.1.0-15): failing the same path, the same path with its
            // digits blurred names the old file, when only one old file has that shape.
            let mut stems: HashMap<String, Option<Checksum>> = HashMap::new();
            for (path, c) in &old_paths {
                stems
                    .entry(digit_stem(path))
                    .and_modify(|e| *e = None)
                    .or_insert(Some(*c));
            }
            let old: HashMap<String, Checksum> = old_paths.into_iter().collect();
            for (path, new) in &to_paths {
                if !want.objects.contains(&(ObjectType::File, *new)) {
                    continue;
                }
                let o = old
                    .get(path)
                    .copied()
                    .or_else(|| stems.get(&digit_stem(path)).copied().flatten());
                if let Some(o) = o.filter(|o| o != new) {
                    similar.entry(*new).or_insert(o);
                }
            }
        }
        // The bsdiff patches, on every core (bsdiff is the costly part of a modified file).
        let patches: HashMap<Checksum, Vec<u8>> = {
            use rayon::prelude::*;
            let cands: Vec<(Checksum, Checksum)> = similar.iter().map(|(n, o)| (*n, *o)).collect();
            cands
                .par_iter()
                .map(|(new, old)| -> Result<Option<(Checksum, Vec<u8>)>> {
                    let mut f = self.read_file(new)?;
                    if !f.header.is_regular()
                        || f.size > opts.max_bsdiff_size
                        || (opts.min_fallback_size > 0 && f.size > opts.min_fallback_size)
                    {
                        return Ok(None);
                    }
                    let mut data = Vec::with_capacity(f.size as usize);
                    f.payload
                        .read_to_end(&mut data)
                        .ctx("read content for", f.path.clone())?;
                    Ok(self
                        .bsdiff_against(old, &data, opts.max_bsdiff_size)?
                        .map(|p| (*new, p)))
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect()
        };
        let mut objs: Vec<(ObjectType, Checksum)> = want
            .objects
            .into_iter()
            .filter(|(t, c)| !(*t == ObjectType::Commit && c == to) && *t != ObjectType::CommitMeta)
            .collect();
        // Metadata first (the client can walk trees while files arrive), then files by their
        // name's extension, then name, then path: like files sit next to each other, inside
        // xz's window and in the same block. On the Debian pair (v1 → v2) the part shrank
        // from 7.69 to 7.25 MB (ostree's: 7.38 MB) against checksum order; by path alone it
        // was 7.32 MB.
        let mut names: HashMap<Checksum, &str> = HashMap::with_capacity(to_paths.len());
        for (path, c) in &to_paths {
            names.entry(*c).or_insert(path);
        }
        objs.sort_by_cached_key(|(t, c)| {
            (
                *t != ObjectType::DirTree && *t != ObjectType::DirMeta,
                *t as u8,
                names.get(c).map(|p| part_order(p)),
                *c,
            )
        });
        let mut parts: Vec<(Vec<u8>, PartHeader)> = Vec::new();
        let mut fallbacks = Vec::new();
        let mut report = DeltaReport {
            name: crate::delta::delta_name(from, to),
            modified: similar.len(),
            // The commit counts as new metadata (it travels in the superblock), as ostree
            // counts it.
            new_metadata: 1,
            ..Default::default()
        };
        let mut cur = PartBuilder::default();
        for (ty, c) in objs {
            if cur.blob.len() as u64 >= opts.max_chunk_size {
                parts.push(std::mem::take(&mut cur).finish()?);
            }
            if let Ok(m) = std::fs::symlink_metadata(self.object_path(ty, &c)) {
                report.loose_size += m.len();
            }
            if ty.is_meta() {
                let data = self.load_metadata(ty, &c)?;
                cur.add_meta(ty, c, &data);
                report.new_metadata += 1;
                continue;
            }
            let mut f = self.read_file(&c)?;
            if f.header.is_symlink() {
                report.new_symlinks += 1;
            } else {
                report.new_regular += 1;
            }
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
            if let (Some(old), Some(patch)) = (similar.get(&c), patches.get(&c)) {
                cur.add_patched(c, &f.header, f.size, old, patch);
                report.patched += 1;
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
        // ostree's superblock metadata: the endianness, then any inlined parts.
        let mut metadata = vec![(
            "ostree.endianness".to_string(),
            Value::Byte(if opts.big_endian { b'B' } else { b'l' }),
        )];
        if opts.inline {
            for (i, (stored, _)) in parts.iter().enumerate() {
                let (kind, body) = stored.split_first().unwrap_or((&0, &[]));
                metadata.push((
                    crate::delta::inline_part_key(from, to, i),
                    Value::Tuple(vec![Value::Byte(*kind), Value::Bytes(body.to_vec())]),
                ));
            }
        }
        let sb = Superblock {
            metadata: Value::dict_sv(metadata),
            timestamp: now,
            from: from.copied(),
            to: *to,
            commit: self.load_metadata(ObjectType::Commit, to)?,
            parts: parts.iter().map(|(_, h)| h.clone()).collect(),
            fallbacks,
        };
        let mut superblock = sb.encode_as(opts.big_endian)?;
        if let Some(signer) = &opts.sign {
            superblock = sign_superblock(superblock, signer)?;
        }
        report.parts = parts.len();
        report.fallbacks = sb.fallbacks.len();
        for (_, h) in &parts {
            report.objects += h.objects.len();
            report.size += h.size;
            report.uncompressed_size += h.uncompressed_size;
            report
                .part_sizes
                .push((h.objects.len(), h.size, h.uncompressed_size));
        }
        let fsync = self.fsync_enabled();
        let (dir, superblock_path) = match &opts.filename {
            Some(f) => {
                let parent = match f.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => std::path::PathBuf::from("."),
                };
                std::fs::read_dir(&parent)
                    .map_err(|e| quoted(format!("opendir({})", parent.display()), &e, &parent))?;
                // ostree writes the parts, then fails to rename the superblock over a
                // directory; refuse before anything is written.
                if std::fs::symlink_metadata(f).is_ok_and(|m| m.is_dir()) {
                    return Err(Error::Quoted {
                        msg: format!(
                            "renameat({}): Is a directory (--filename names the superblock \
                             file; its parts are written beside it)",
                            f.display()
                        ),
                        path: f.clone(),
                    });
                }
                (parent, f.clone())
            }
            None => {
                let dir = self.path().join(delta_dir(from, to));
                std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
                let sb = dir.join("superblock");
                (dir, sb)
            }
        };
        // Parts before the superblock: a reader that finds the superblock finds its parts.
        if !opts.inline {
            for (i, (stored, _)) in parts.iter().enumerate() {
                crate::fsutil::write_atomic(&dir.join(i.to_string()), stored, fsync)?;
            }
        }
        crate::fsutil::write_atomic(&superblock_path, &superblock, fsync)?;
        Ok(report)
    }

    /// Whether the delta `from` → `to` is in the repository (`generate --if-not-exists`).
    pub fn has_static_delta(&self, from: Option<&Checksum>, to: &Checksum) -> bool {
        self.path()
            .join(delta_dir(from, to))
            .join("superblock")
            .is_file()
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
        self.reindex_static_deltas_for(None)
    }

    /// `static-delta reindex [--to=CHECKSUM]`: rewrite the delta indexes (only the one of
    /// `only` when given) to match `deltas/`. Returns the summary's `ostree.static-deltas`
    /// entries (of every delta, whatever `only` says).
    pub fn reindex_static_deltas_for(
        &self,
        only: Option<&Checksum>,
    ) -> Result<Vec<(String, Value)>> {
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
            if only.is_some_and(|o| *o != to) {
                continue;
            }
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
                let mine = only.is_none_or(|o| p == self.path().join(index_path(o)));
                let stale =
                    mine && p.extension().is_some_and(|x| x == "index") && !written.contains(&p);
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

    /// The targets of the delta indexes in `delta-indexes/` (`static-delta indexes`),
    /// sorted.
    pub fn list_delta_indexes(&self) -> Result<Vec<Checksum>> {
        let root = self.path().join("delta-indexes");
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).ctx("read directory", &root),
        };
        for prefix in rd {
            let prefix = prefix.ctx("read directory", &root)?;
            let p = prefix.file_name().to_string_lossy().into_owned();
            let Ok(inner) = std::fs::read_dir(prefix.path()) else {
                continue;
            };
            for e in inner.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(c) = name
                    .strip_suffix(".index")
                    .and_then(|rest| crate::delta::mbase64_decode(&format!("{p}{rest}")))
                {
                    out.push(c);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove the delta named `name` (`FROM-TO` or `TO`) from `deltas/`, as `static-delta
    /// delete` (its index is left for the next `summary -u` or `reindex`, as ostree).
    pub fn delete_static_delta(&self, name: &str) -> Result<()> {
        let (from, to) = crate::delta::parse_delta_name(name)?;
        let dir = self.path().join(delta_dir(from.as_ref(), &to));
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("Can't find delta {name}")))
            }
            Err(e) => return Err(e).ctx("stat", dir),
        }
        let _lock = self.lock(false)?;
        std::fs::remove_dir_all(&dir).ctx("remove", &dir)?;
        if self.fsync_enabled() {
            if let Some(parent) = dir.parent() {
                crate::fsutil::fsync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// What `static-delta show NAME` prints of a delta in this repository, down to the
    /// parts (each part's payload is read by [`Repo::static_delta_part_info`]).
    pub fn static_delta_info(&self, name: &str) -> Result<DeltaInfo> {
        let (from, to) = crate::delta::parse_delta_name(name)?;
        let rel = format!("{}/superblock", delta_dir(from.as_ref(), &to));
        let path = self.path().join(&rel);
        let raw = std::fs::read(&path).map_err(|e| quoted(format!("openat({rel})"), &e, &path))?;
        DeltaInfo::read(name, &raw, &path.display().to_string())
    }

    /// The payload of part `i` of a delta in this repository (`static-delta show`): its
    /// tables' sizes and how many ops of each kind it runs.
    pub fn static_delta_part_info(&self, info: &DeltaInfo, i: usize) -> Result<PartInfo> {
        let sb = &info.superblock;
        let rel = format!("{}/{i}", delta_dir(sb.from.as_ref(), &sb.to));
        let path = self.path().join(&rel);
        let stored =
            std::fs::read(&path).map_err(|e| quoted(format!("openat({rel})"), &e, &path))?;
        let what = path.display().to_string();
        let payload = crate::delta::open_part_unchecked(&stored, &what)?;
        let objects = sb.parts.get(i).map(|p| p.objects.as_slice()).unwrap_or(&[]);
        Ok(PartInfo {
            modes: payload.modes.len(),
            xattrs: payload.xattrs.len(),
            blob_size: payload.blob_len(),
            ops_size: payload.ops().len(),
            ops: crate::delta::count_ops(&payload, objects, &what)?,
        })
    }

    /// `static-delta verify NAME`: check the signatures of a delta's superblock. Returns
    /// ostree's success message.
    pub fn verify_static_delta(&self, name: &str, how: &DeltaVerify) -> Result<String> {
        let (from, to) = crate::delta::parse_delta_name(name)?;
        let rel = format!("{}/superblock", delta_dir(from.as_ref(), &to));
        let path = self.path().join(&rel);
        let raw = std::fs::read(&path).map_err(|e| quoted(format!("openat({rel})"), &e, &path))?;
        verify_superblock(&raw, how, &path.display().to_string())
    }

    /// `static-delta apply-offline PATH`: execute a delta from a directory (its
    /// `superblock` and parts `0`, `1`, …, as in `deltas/`) or from a superblock file (parts
    /// beside it, or inlined), writing its objects and its commit, no ref. With `verify`,
    /// the superblock must carry a signature that verifies (ostree 2022.7 also accepts an
    /// unsigned one then; oxtree does not). The parts run into a quarantine and their
    /// objects are kept only if the commit reaches every one, as in a pull.
    pub fn apply_static_delta_offline(
        &self,
        path: &std::path::Path,
        verify: Option<&DeltaVerify>,
    ) -> Result<Checksum> {
        let (sb_path, dir) = if path.is_dir() {
            (path.join("superblock"), path.to_path_buf())
        } else {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            (path.to_path_buf(), parent)
        };
        let what = sb_path.display().to_string();
        let raw = std::fs::read(&sb_path).ctx("read", &sb_path)?;
        if let Some(how) = verify {
            verify_superblock(&raw, how, &what)?;
        }
        let (inner, sigs) = crate::delta::unwrap_signed(&raw, &what)?;
        // A signed delta in a repository that demands their signatures be checked needs a
        // key (ostree's `core.sign-verify-deltas`, its words).
        if verify.is_none()
            && sigs.is_some()
            && self.config().get_bool("core", "sign-verify-deltas") == Some(true)
        {
            return Err(Error::InvalidArgument(
                "Key is mandatory to check delta signature".into(),
            ));
        }
        let sb = Superblock::parse(&inner, &what)?;
        if let Some(f) = &sb.from {
            if !self.has_object(ObjectType::Commit, f) || self.is_partial(f) {
                return Err(Error::NotFound(format!(
                    "Commit {f}, which is the delta source, is not in repository"
                )));
            }
        }
        let to = sb.to;
        if self.has_object(ObjectType::Commit, &to) && !self.is_partial(&to) {
            return Ok(to);
        }
        if !sb.fallbacks.is_empty() {
            return Err(Error::InvalidArgument(
                "Cannot execute delta offline: contains nonempty http fallback entries".into(),
            ));
        }
        let commit = crate::object::Commit::parse(&sb.commit)
            .map_err(|e| Error::corrupt(ObjectType::Commit, to, e))?;
        let name = crate::delta::delta_name(sb.from.as_ref(), &to);
        let refused = |msg: String| Error::DeltaRefused {
            delta: format!("{name} ({what})"),
            msg,
        };
        let part = |i: usize| -> Result<crate::delta::StoredPart> {
            if let Some(b) = crate::delta::inline_part(&sb, i) {
                return Ok(crate::delta::StoredPart::Mem(b));
            }
            let p = dir.join(i.to_string());
            let size = std::fs::metadata(&p)
                .map_err(|e| quoted(format!("Opening deltapart '{i}'"), &e, &p))?
                .len();
            if size > crate::delta::MAX_PART_SIZE {
                return Err(Error::Other(format!(
                    "{}: delta part larger than {} MiB",
                    p.display(),
                    crate::delta::MAX_PART_SIZE >> 20
                )));
            }
            Ok(crate::delta::StoredPart::File(
                std::fs::File::open(&p).ctx("open", &p)?,
            ))
        };
        crate::pull::execute_parts(
            self,
            &sb,
            &commit,
            &|t, c| self.has_object(t, c),
            &part,
            &|i| dir.join(i.to_string()).display().to_string(),
            &|_| {},
            &refused,
        )?;
        // A delta that leaves out objects its commit reaches (ostree 2022.7 stores such a
        // commit as complete): the commit is kept, marked partial, and the apply fails
        // naming what is missing.
        let missing: Vec<(ObjectType, Checksum)> = crate::pull::reachable_tree(&commit, &[self])?
            .into_iter()
            .filter(|(t, c)| !self.has_object(*t, c))
            .collect();
        if !missing.is_empty() {
            self.mark_partial(&to)?;
        }
        // The commit last, once everything it reaches is in (or marked partial): a reader
        // never meets it incomplete.
        let txn = self.begin()?;
        txn.write_metadata_as(ObjectType::Commit, &to, &sb.commit)?;
        if missing.is_empty() {
            txn.remove_commitpartial(&to);
        }
        txn.commit()?;
        if let Some((t, c)) = missing.first() {
            return Err(Error::Other(format!(
                "{what}: commit {to} reaches {} object(s) the delta does not hold and the \
                 repository lacks (such as {c}.{t}); the commit is kept, marked partial: pull \
                 it to complete it",
                missing.len()
            )));
        }
        Ok(to)
    }
}
/// Wrap a superblock with signatures over it (ostree's `OSTSGNDT` format).
fn sign_superblock(inner: Vec<u8>, signer: &DeltaSigner) -> Result<Vec<u8>> {
    let mut sigs: Option<Vec<u8>> = None;
    match signer {
        DeltaSigner::Ed25519(keys) => {
            for k in keys {
                sigs = Some(crate::sign::append_signature(sigs.as_deref(), &inner, k)?);
            }
        }
        DeltaSigner::Dummy(keys) => {
            for k in keys {
                sigs = Some(crate::sign::append_to_aay(
                    sigs.as_deref(),
                    crate::sign::DUMMY_KEY,
                    k.as_bytes().to_vec(),
                )?);
            }
        }
    }
    let sigs = match sigs {
        Some(b) => gvariant::decode_normal(&b, &Type::of("a{sv}"))
            .map_err(|e| Error::Other(format!("delta signatures: {e}")))?,
        None => Value::dict_sv(Vec::new()),
    };
    Ok(crate::delta::wrap_signed(inner, sigs))
}

/// How a delta's signatures are checked (`static-delta verify`, `apply-offline` with keys).
#[derive(Debug, Clone)]
pub enum DeltaVerify {
    /// Some `ostree.sign.ed25519` signature must verify with one of `keys`, none revoked.
    Ed25519 {
        keys: Vec<ed25519_dalek::VerifyingKey>,
        revoked: Vec<crate::sign::PublicKey>,
    },
    /// ostree's test type: some `ostree.sign.dummy` signature must equal the key (ostree
    /// keeps only the last key given).
    Dummy(String),
}

/// Check a superblock file's signatures; ostree's messages.
fn verify_superblock(raw: &[u8], how: &DeltaVerify, what: &str) -> Result<String> {
    let (inner, sigs) = crate::delta::unwrap_signed(raw, what)?;
    let no_sigs = || Error::DeltaSignature("no signatures in static-delta".into());
    let sigs = sigs.ok_or_else(no_sigs)?;
    let fail = Error::DeltaSignature;
    match how {
        DeltaVerify::Dummy(key) => {
            let found: Vec<&[u8]> = sigs
                .lookup(crate::sign::DUMMY_KEY)
                .and_then(Value::items)
                .map(|i| i.iter().filter_map(Value::as_bytes).collect())
                .unwrap_or_default();
            if found.is_empty() {
                return Err(no_sigs());
            }
            if found.contains(&key.as_bytes()) {
                return Ok("dummy: Signature verified".into());
            }
            Err(fail(format!(
                "signature: dummy: incorrect signatures found: {}",
                found.len()
            )))
        }
        DeltaVerify::Ed25519 { keys, revoked } => {
            let found = crate::sign::signatures_in(&sigs);
            if found.is_empty() {
                return Err(no_sigs());
            }
            match crate::sign::verify_sigs(&found, &inner, keys, revoked) {
                Some(k) => Ok(format!(
                    "ed25519: Signature verified successfully with key '{}'",
                    k.as_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )),
                None => Err(fail(format!(
                    "ed25519: none of the {} signature(s) verifies with the {} key(s) given{}",
                    found.len(),
                    keys.len(),
                    if revoked.is_empty() {
                        ""
                    } else {
                        " (revoked keys do not count)"
                    }
                ))),
            }
        }
    }
}

/// A delta's superblock as `static-delta show` prints it.
#[derive(Debug, Clone)]
pub struct DeltaInfo {
    pub name: String,
    pub signed: bool,
    pub superblock: Superblock,
    /// ostree's words: `little`, `big`, `host`, or `… (heuristic)` when the superblock
    /// does not say.
    pub endianness: String,
    /// Parent commits the superblock lists (ostree writes none).
    pub parents: usize,
}

impl DeltaInfo {
    fn read(name: &str, raw: &[u8], what: &str) -> Result<DeltaInfo> {
        let (inner, sigs) = crate::delta::unwrap_signed(raw, what)?;
        let mut sb = Superblock::parse(&inner, what)?;
        let parents = crate::delta::superblock_parents(&inner, what)?;
        let endianness = match sb.metadata.lookup("ostree.endianness") {
            Some(Value::Byte(b'l')) => "little".to_string(),
            Some(Value::Byte(b'B')) => "big".to_string(),
            Some(Value::Byte(_)) => "host".to_string(),
            _ => {
                // ostree's guess: sizes that make no sense read this way were written the
                // other way round.
                let swapped = sb.parts.iter().any(|p| {
                    p.size > p.uncompressed_size
                        && p.size as f64 / p.uncompressed_size.max(1) as f64 > 1.2
                }) || {
                    let objs: u64 = sb.parts.iter().map(|p| p.objects.len() as u64).sum();
                    let total: u64 = sb.parts.iter().map(|p| p.size).sum();
                    objs > 0 && total / objs > u64::from(u32::MAX)
                };
                if swapped {
                    for p in &mut sb.parts {
                        p.size = p.size.swap_bytes();
                        p.uncompressed_size = p.uncompressed_size.swap_bytes();
                    }
                    for f in &mut sb.fallbacks {
                        f.size = f.size.swap_bytes();
                        f.uncompressed_size = f.uncompressed_size.swap_bytes();
                    }
                    if cfg!(target_endian = "little") {
                        "big (heuristic)".to_string()
                    } else {
                        "little (heuristic)".to_string()
                    }
                } else {
                    "host".to_string()
                }
            }
        };
        Ok(DeltaInfo {
            name: name.to_string(),
            signed: sigs.is_some(),
            superblock: sb,
            endianness,
            parents,
        })
    }
}

/// A part's payload as `static-delta show` prints it.
#[derive(Debug, Clone)]
pub struct PartInfo {
    pub modes: usize,
    pub xattrs: usize,
    pub blob_size: usize,
    pub ops_size: usize,
    /// Ops run, in ostree's order (see [`crate::delta::count_ops`]).
    pub ops: [u32; 7],
}

/// ostree's `WHAT: strerror` for a failed system call on `path`.
fn quoted(what: String, e: &std::io::Error, path: &std::path::Path) -> Error {
    Error::Quoted {
        msg: format!("{what}: {}", strerror(e)),
        path: path.to_path_buf(),
    }
}

/// An I/O error as C's `strerror` words it, for messages that quote ostree's.
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod stem_tests {
    #[test]
    fn versions_blur_to_one_shape() {
        use super::digit_stem;
        assert_eq!(
            digit_stem("/usr/lib/x86_64-linux-gnu/libssl.so.3.0.11"),
            digit_stem("/usr/lib/x86_64-linux-gnu/libssl.so.3.0.13")
        );
        assert_eq!(
            digit_stem("/usr/lib/modules/6.1.0-13-amd64/vmlinuz"),
            "/usr/lib/modules/#.#.#-#-amd#/vmlinuz"
        );
        assert_ne!(digit_stem("/etc/a.conf"), digit_stem("/etc/b.conf"));
    }
}

#[cfg(test)]
mod order_tests {
    #[test]
    fn a_part_groups_files_by_extension_then_name() {
        let mut paths = vec![
            "/usr/share/doc/b/copyright",
            "/usr/lib/libz.so",
            "/usr/share/man/man1/a.1.gz",
            "/usr/share/doc/a/copyright",
            "/usr/lib/liba.so",
            "/usr/share/doc/a/changelog.gz",
        ];
        paths.sort_by_key(|p| super::part_order(p));
        assert_eq!(
            paths,
            [
                "/usr/share/doc/a/copyright",
                "/usr/share/doc/b/copyright",
                "/usr/share/man/man1/a.1.gz",
                "/usr/share/doc/a/changelog.gz",
                "/usr/lib/liba.so",
                "/usr/lib/libz.so",
            ]
        );
    }
}
