//! Static deltas (spec §6): one superblock plus a few compressed parts that carry every
//! object a commit needs beyond another one (or all of them: a "scratch" delta), so an update
//! costs a handful of requests instead of one per changed file (pain point 1).
//!
//! This module reads the formats and executes parts: the op bytecode (`S`, `o`, `w`, `r`,
//! `R`, `c`, `B`) writes objects through an [`ObjectSink`], which verifies each one against
//! its checksum. Execution is bounded by what the part declares, not by what its op codes
//! claim (security review M3): a part is at most [`MAX_PART_SIZE`] stored and decompressed,
//! its objects together at most its header's uncompressed size (plus [`OUTPUT_SLACK`]), and
//! objects assembled by several ops stream to the sink as they are produced. Parts are xz (LZMA2) streams; `liblzma` (the xz library, built from source)
//! decodes them — the same code ostree uses, and far faster than a pure-Rust LZMA decoder.
//! `bspatch` is written here: ostree stores bare mendsley/bsdiff streams (no header), which
//! the bsdiff crates do not read.

use crate::error::{Error, Result};
use crate::gvariant::{self, Type, Value};
use crate::object::{Checksum, FileHeader, ObjectType, Xattrs};
use base64::Engine;
use std::io::Read;

/// The largest part (as stored, and decompressed) accepted from a server. ostree cuts parts
/// at 32 MiB of objects by default (`--max-chunk-size`), plus one object that does not fit
/// (new files above 4 MiB are fallbacks, bsdiff patches stay below `max-bsdiff-size`): real
/// parts are far below this. A pull executes two parts at a time, each holding its stored
/// bytes and its payload while it decompresses: at most 1 GiB together.
pub const MAX_PART_SIZE: u64 = 256 << 20;

const SUPERBLOCK_TYPE: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";
/// A payload's type (parsed from its framing by `payload_members`; tests decode it whole).
#[cfg(test)]
const PAYLOAD_TYPE: &str = "(a(uuu)aa(ayay)ayay)";

/// ostree's "modified base64" of a checksum: `/` becomes `_`, no padding (43 characters).
pub fn mbase64(c: &Checksum) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(c.as_bytes())
        .replace('/', "_")
}

/// The checksum back from [`mbase64`] (`None` if `s` is not one).
pub fn mbase64_decode(s: &str) -> Option<Checksum> {
    let b = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.replace('_', "/"))
        .ok()?;
    Checksum::from_slice(&b)
}

/// The delta's directory on the server: `deltas/XX/REST[-TO]`.
pub fn delta_dir(from: Option<&Checksum>, to: &Checksum) -> String {
    match from {
        Some(f) => {
            let f = mbase64(f);
            format!("deltas/{}/{}-{}", &f[..2], &f[2..], mbase64(to))
        }
        None => {
            let t = mbase64(to);
            format!("deltas/{}/{}", &t[..2], &t[2..])
        }
    }
}

/// The delta index listing the deltas that end at `to`.
pub fn index_path(to: &Checksum) -> String {
    let t = mbase64(to);
    format!("delta-indexes/{}/{}.index", &t[..2], &t[2..])
}

/// The name a summary or index uses: `FROMHEX-TOHEX`, or `TOHEX` for a scratch delta.
pub fn delta_name(from: Option<&Checksum>, to: &Checksum) -> String {
    match from {
        Some(f) => format!("{f}-{to}"),
        None => to.to_hex(),
    }
}

/// The deltas an `ostree.static-deltas` dictionary (summary metadata or a delta index)
/// lists: name → SHA-256 of the superblock.
pub fn parse_delta_map(v: &Value) -> Vec<(String, Checksum)> {
    v.sv_entries()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, d)| Some((k.to_string(), Checksum::from_slice(d.as_bytes()?)?)))
        .collect()
}

/// The delta to reach `to` from what `repo` has, as ostree chooses one
/// (`get_best_static_delta_start_for`): of the deltas in `map` that end at `to`, the one from
/// the newest commit complete in `repo` (whatever a ref points at); else the scratch delta,
/// when `allow_scratch` (the ref does not exist here yet). Returns (from, name, digest).
pub(crate) fn choose_delta(
    repo: &crate::repo::Repo,
    map: &[(String, Checksum)],
    to: &Checksum,
    allow_scratch: bool,
) -> Option<(Option<Checksum>, String, Checksum)> {
    let mut newest: Option<(u64, Checksum, &String, Checksum)> = None;
    let mut scratch = None;
    for (name, digest) in map {
        let Ok((from, t)) = parse_delta_name(name) else {
            continue;
        };
        if t != *to {
            continue;
        }
        let Some(from) = from else {
            scratch = Some((None, name.clone(), *digest));
            continue;
        };
        if !repo.has_object(ObjectType::Commit, &from) || repo.is_partial(&from) {
            continue;
        }
        let Ok(c) = repo.load_commit(&from) else {
            continue;
        };
        if newest.as_ref().is_none_or(|(ts, ..)| c.timestamp > *ts) {
            newest = Some((c.timestamp, from, name, *digest));
        }
    }
    match newest {
        Some((_, from, name, digest)) => Some((Some(from), name.clone(), digest)),
        None => scratch.filter(|_| allow_scratch),
    }
}

#[derive(Debug, Clone)]
pub struct PartHeader {
    pub version: u32,
    /// SHA-256 of the part as stored (compression byte and all).
    pub checksum: Checksum,
    pub size: u64,
    pub uncompressed_size: u64,
    /// The objects the part writes, in execution order.
    pub objects: Vec<(ObjectType, Checksum)>,
}

#[derive(Debug, Clone)]
pub struct Fallback {
    pub ty: ObjectType,
    pub checksum: Checksum,
    pub size: u64,
    pub uncompressed_size: u64,
}

#[derive(Debug, Clone)]
pub struct Superblock {
    pub metadata: Value,
    pub timestamp: u64,
    pub from: Option<Checksum>,
    pub to: Checksum,
    /// The to-commit object, verified to hash to `to`.
    pub commit: Vec<u8>,
    pub parts: Vec<PartHeader>,
    pub fallbacks: Vec<Fallback>,
}

fn bad(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::Other(format!("{what}: invalid static delta: {msg}"))
}

fn objects_list(b: &[u8], what: &str) -> Result<Vec<(ObjectType, Checksum)>> {
    if !b.len().is_multiple_of(33) {
        return Err(bad(what, "object list is not a multiple of 33 bytes"));
    }
    b.chunks_exact(33)
        .map(|r| {
            let ty = ObjectType::from_u8(r[0])
                .ok_or_else(|| bad(what, format!("unknown object type {}", r[0])))?;
            let c = Checksum::from_slice(&r[1..]).ok_or_else(|| bad(what, "bad checksum"))?;
            Ok((ty, c))
        })
        .collect()
}

impl Superblock {
    /// Parse a superblock; `what` names it in errors. The embedded commit must hash to the
    /// delta's target.
    pub fn parse(data: &[u8], what: &str) -> Result<Superblock> {
        let v = gvariant::decode(data, &Type::of(SUPERBLOCK_TYPE)).map_err(|e| bad(what, e))?;
        let m = v.items().ok_or_else(|| bad(what, "not a tuple"))?;
        let get = |i: usize| m.get(i).ok_or_else(|| bad(what, "missing member"));
        let metadata = get(0)?.clone();
        // Part sizes are in the generator's byte order, named by ostree.endianness.
        let swap = match metadata.lookup("ostree.endianness") {
            Some(Value::Byte(b'B')) => cfg!(target_endian = "little"),
            Some(Value::Byte(b'l')) => cfg!(target_endian = "big"),
            _ => false,
        };
        let u32s = |x: u32| if swap { x.swap_bytes() } else { x };
        let u64s = |x: u64| if swap { x.swap_bytes() } else { x };
        let timestamp = get(1)?
            .as_u64()
            .map(u64::from_be)
            .ok_or_else(|| bad(what, "bad timestamp"))?;
        let from = match get(2)?.as_bytes() {
            Some([]) => None,
            Some(b) => Some(Checksum::from_slice(b).ok_or_else(|| bad(what, "bad from"))?),
            None => return Err(bad(what, "bad from")),
        };
        let to = get(3)?
            .as_bytes()
            .and_then(Checksum::from_slice)
            .ok_or_else(|| bad(what, "bad to"))?;
        let commit = gvariant::encode(get(4)?);
        if Checksum::digest(&commit) != to {
            return Err(bad(
                what,
                format!("the embedded commit does not hash to {to}"),
            ));
        }
        let mut parts = Vec::new();
        for p in get(6)?.items().unwrap_or_default() {
            let f = p.items().ok_or_else(|| bad(what, "bad part header"))?;
            let field = |i: usize| f.get(i).ok_or_else(|| bad(what, "bad part header"));
            parts.push(PartHeader {
                version: u32s(field(0)?.as_u32().ok_or_else(|| bad(what, "bad version"))?),
                checksum: field(1)?
                    .as_bytes()
                    .and_then(Checksum::from_slice)
                    .ok_or_else(|| bad(what, "bad part checksum"))?,
                size: u64s(field(2)?.as_u64().ok_or_else(|| bad(what, "bad size"))?),
                uncompressed_size: u64s(field(3)?.as_u64().ok_or_else(|| bad(what, "bad size"))?),
                objects: objects_list(
                    field(4)?
                        .as_bytes()
                        .ok_or_else(|| bad(what, "bad objects"))?,
                    what,
                )?,
            });
        }
        let mut fallbacks = Vec::new();
        for p in get(7)?.items().unwrap_or_default() {
            let f = p.items().ok_or_else(|| bad(what, "bad fallback"))?;
            let (Some(Value::Byte(t)), Some(c), Some(s), Some(u)) =
                (f.first(), f.get(1), f.get(2), f.get(3))
            else {
                return Err(bad(what, "bad fallback"));
            };
            fallbacks.push(Fallback {
                ty: ObjectType::from_u8(*t).ok_or_else(|| bad(what, "bad fallback type"))?,
                checksum: c
                    .as_bytes()
                    .and_then(Checksum::from_slice)
                    .ok_or_else(|| bad(what, "bad fallback checksum"))?,
                size: u64s(s.as_u64().ok_or_else(|| bad(what, "bad fallback size"))?),
                uncompressed_size: u64s(u.as_u64().ok_or_else(|| bad(what, "bad size"))?),
            });
        }
        Ok(Superblock {
            metadata,
            timestamp,
            from,
            to,
            commit,
            parts,
            fallbacks,
        })
    }

    /// Serialize (ostree's layout; sizes little-endian with `ostree.endianness` = `l`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.encode_as(false)
    }

    /// Serialize with the part and fallback sizes in big-endian order when `big_endian`
    /// (ostree's `--set-endianness=B`; `metadata` must then say `ostree.endianness` = `B`).
    pub fn encode_as(&self, big_endian: bool) -> Result<Vec<u8>> {
        let u32s = |x: u32| if big_endian { x.to_be() } else { x.to_le() };
        let u64s = |x: u64| if big_endian { x.to_be() } else { x.to_le() };
        let commit = gvariant::decode_normal(&self.commit, &Type::of("(a{sv}aya(say)sstayay)"))
            .map_err(|e| Error::Other(format!("delta target commit: {e}")))?;
        let parts = self
            .parts
            .iter()
            .map(|p| {
                let mut objs = Vec::with_capacity(p.objects.len() * 33);
                for (t, c) in &p.objects {
                    objs.push(*t as u8);
                    objs.extend_from_slice(c.as_bytes());
                }
                Value::Tuple(vec![
                    Value::U32(u32s(p.version)),
                    Value::Bytes(p.checksum.as_bytes().to_vec()),
                    Value::U64(u64s(p.size)),
                    Value::U64(u64s(p.uncompressed_size)),
                    Value::Bytes(objs),
                ])
            })
            .collect();
        let fallbacks = self
            .fallbacks
            .iter()
            .map(|f| {
                Value::Tuple(vec![
                    Value::Byte(f.ty as u8),
                    Value::Bytes(f.checksum.as_bytes().to_vec()),
                    Value::U64(u64s(f.size)),
                    Value::U64(u64s(f.uncompressed_size)),
                ])
            })
            .collect();
        Ok(gvariant::encode(&Value::Tuple(vec![
            self.metadata.clone(),
            Value::U64(self.timestamp.to_be()),
            Value::Bytes(self.from.map(|c| c.as_bytes().to_vec()).unwrap_or_default()),
            Value::Bytes(self.to.as_bytes().to_vec()),
            commit,
            Value::Bytes(Vec::new()),
            Value::Array(Type::of("(uayttay)"), parts),
            Value::Array(Type::of("(yaytt)"), fallbacks),
        ])))
    }
}

/// A signed superblock (`static-delta generate --sign`) starts with this magic (a `t` whose
/// bytes spell it) and is `(taya{sv})`: magic, the superblock bytes, signatures over them
/// (spec §6.2).
pub const SIGNED_MAGIC: &[u8; 8] = b"OSTSGNDT";
/// The type of a signed superblock.
pub const SIGNED_TYPE: &str = "(taya{sv})";

/// A superblock file's contents: the superblock bytes, and the signatures dictionary when
/// it is a signed one.
pub fn unwrap_signed(raw: &[u8], what: &str) -> Result<(Vec<u8>, Option<Value>)> {
    if !raw.starts_with(SIGNED_MAGIC) {
        return Ok((raw.to_vec(), None));
    }
    let v = gvariant::decode(raw, &Type::of(SIGNED_TYPE))
        .map_err(|e| bad(what, format!("invalid signed superblock: {e}")))?;
    let Value::Tuple(m) = v else {
        return Err(bad(what, "invalid signed superblock"));
    };
    match <[Value; 3]>::try_from(m) {
        Ok([_, Value::Bytes(inner), sigs]) => Ok((inner, Some(sigs))),
        _ => Err(bad(what, "invalid signed superblock")),
    }
}

/// Wrap superblock bytes with their signatures (`a{sv}`, e.g. `ostree.sign.ed25519` →
/// `aay`), as ostree writes a signed superblock.
pub fn wrap_signed(inner: Vec<u8>, sigs: Value) -> Vec<u8> {
    gvariant::encode(&Value::Tuple(vec![
        Value::U64(u64::from_le_bytes(*SIGNED_MAGIC)),
        Value::Bytes(inner),
        sigs,
    ]))
}

/// `FROM-TO` or `TO` back into checksums; anything else is refused with ostree's text
/// (`Invalid rev X`, naming the first part that is not a full checksum).
pub fn parse_delta_name(name: &str) -> Result<(Option<Checksum>, Checksum)> {
    let parse = |s: &str| -> Result<Checksum> {
        s.parse::<Checksum>()
            .ok()
            .filter(|_| s.len() == 64 && !s.bytes().any(|b| b.is_ascii_uppercase()))
            .ok_or_else(|| Error::InvalidArgument(format!("Invalid rev {s}")))
    };
    match name.split_once('-') {
        Some((f, t)) => {
            let f = parse(f)?;
            Ok((Some(f), parse(t)?))
        }
        None => Ok((None, parse(name)?)),
    }
}

/// The superblock metadata key under which an inlined part is stored (`--inline`): its
/// path relative to the repository, `deltas/XX/REST/N`; the value is `(yay)`, the part as
/// stored (compression byte, then the compressed payload).
pub fn inline_part_key(from: Option<&Checksum>, to: &Checksum, i: usize) -> String {
    format!("{}/{i}", delta_dir(from, to))
}

/// The part bytes (as stored) inlined in a superblock's metadata, if part `i` is.
pub fn inline_part(sb: &Superblock, i: usize) -> Option<Vec<u8>> {
    let key = inline_part_key(sb.from.as_ref(), &sb.to, i);
    match sb.metadata.lookup(&key)?.unboxed() {
        Value::Tuple(m) => match m.as_slice() {
            [Value::Byte(kind), Value::Bytes(body)] => {
                let mut out = Vec::with_capacity(body.len() + 1);
                out.push(*kind);
                out.extend_from_slice(body);
                Some(out)
            }
            _ => None,
        },
        _ => None,
    }
}

/// How many ops of each kind a part runs, in ostree's order (`static-delta show`):
/// open-splice-and-close, open, write, set-read-source, unset-read-source, close, bspatch.
/// Counted by walking the op codes as the executor reads them, without executing any.
pub fn count_ops(p: &Payload, objects: &[(ObjectType, Checksum)], what: &str) -> Result<[u32; 7]> {
    let mut n = [0u32; 7];
    let mut pos = 0usize;
    let mut next = 0usize;
    let skip = |pos: &mut usize, k: usize| -> Result<()> {
        for _ in 0..k {
            read_varint(p.ops(), pos, what)?;
        }
        Ok(())
    };
    while let Some(&op) = p.ops().get(pos) {
        pos += 1;
        let (slot, args) = match op {
            OP_OPEN_SPLICE_AND_CLOSE => {
                let meta = objects.get(next).is_some_and(|(t, _)| t.is_meta());
                next += 1;
                (0, if meta { 2 } else { 4 })
            }
            OP_OPEN => {
                next += 1;
                (1, 3)
            }
            OP_WRITE => (2, 2),
            OP_SET_READ_SOURCE => (3, 1),
            OP_UNSET_READ_SOURCE => (4, 0),
            OP_CLOSE => (5, 0),
            OP_BSPATCH => (6, 2),
            op => return Err(bad(what, format!("unknown op code {op:#04x}"))),
        };
        skip(&mut pos, args)?;
        if let Some(c) = n.get_mut(slot) {
            *c = c.saturating_add(1);
        }
    }
    Ok(n)
}

/// How many parent commits a superblock lists (its `ay` of concatenated checksums, which
/// ostree leaves empty).
pub fn superblock_parents(data: &[u8], what: &str) -> Result<usize> {
    let v = gvariant::decode(data, &Type::of(SUPERBLOCK_TYPE)).map_err(|e| bad(what, e))?;
    Ok(v.items()
        .and_then(|m| m.get(5))
        .and_then(Value::as_bytes)
        .map_or(0, |b| b.len() / 64))
}

/// Decompress and parse a part as stored without checking it against a header (what
/// `static-delta show` reads: ostree opens parts with `SKIP_CHECKSUM` there).
pub fn open_part_unchecked(stored: &[u8], what: &str) -> Result<Payload> {
    let raw = decompress_part(stored, MAX_PART_SIZE, what)?;
    if raw.len() as u64 > MAX_PART_SIZE {
        return Err(bad(what, "part inflates past the size limit"));
    }
    parse_payload_owned(raw, what)
}

/// A stored part decompressed, at most `limit` + 1 bytes of it (the caller refuses more).
/// The buffer is reserved once at `limit` + 1: pages never written are never resident, and
/// growing by doubling would copy the part and hold it twice for a moment.
fn decompress_part(stored: &[u8], limit: u64, what: &str) -> Result<Vec<u8>> {
    let (&kind, body) = stored
        .split_first()
        .ok_or_else(|| bad(what, "empty part"))?;
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(cap.min(if kind == 0 { body.len() } else { cap }));
    decoder(kind, body, what)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| bad(what, format!("xz: {e}")))?;
    out.shrink_to_fit();
    Ok(out)
}

/// The bytes of a part's body, by its compression byte (0: stored as is, `x`: xz).
fn decoder<'a>(kind: u8, body: impl Read + 'a, what: &str) -> Result<Box<dyn Read + 'a>> {
    match kind {
        0 => Ok(Box::new(body)),
        b'x' => Ok(Box::new(liblzma::read::XzDecoder::new(body))),
        k => Err(bad(what, format!("unknown compression {k:#04x}"))),
    }
}

/// A part's contents: (uid, gid, mode) and xattr tables, the data blob and the op codes.
/// The blob stays where decompression put it: in memory (`data`, not copied again), or in
/// an unlinked temporary file that ops read with `pread` ([`open_part_in`]), so executing
/// a part holds only the object at hand, not the part.
pub struct Payload {
    pub modes: Vec<(u32, u32, u32)>,
    pub xattrs: Vec<Xattrs>,
    data: Data,
    blob_at: std::ops::Range<usize>,
    ops: Vec<u8>,
    /// The most bytes executing the part may produce, all objects together (see
    /// [`apply_part`]): from the part header's uncompressed size when the part was opened
    /// with [`open_part`], else [`default_max_output`] of the payload.
    pub max_output: u64,
}

/// Where a payload's bytes are.
enum Data {
    Mem(Vec<u8>),
    File(std::fs::File),
}

impl Payload {
    /// A payload of these parts (tests, tools).
    pub fn new(
        modes: Vec<(u32, u32, u32)>,
        xattrs: Vec<Xattrs>,
        blob: Vec<u8>,
        ops: &[u8],
    ) -> Payload {
        Payload {
            modes,
            xattrs,
            max_output: default_max_output(blob.len()),
            blob_at: 0..blob.len(),
            data: Data::Mem(blob),
            ops: ops.to_vec(),
        }
    }
    /// The op codes.
    pub fn ops(&self) -> &[u8] {
        &self.ops
    }
    /// The length of the data the op codes copy from.
    pub fn blob_len(&self) -> usize {
        self.blob_at.len()
    }
    /// Bytes `off..off + len` of the blob (an error naming `what` when outside it).
    pub fn blob_range(&self, off: u64, len: u64, what: &str) -> Result<std::borrow::Cow<'_, [u8]>> {
        let r = range_of(self.blob_len(), off, len, what)?;
        match &self.data {
            Data::Mem(v) => Ok(std::borrow::Cow::Borrowed(
                &v[self.blob_at.start + r.start..self.blob_at.start + r.end],
            )),
            Data::File(f) => {
                let mut out = vec![0u8; r.len()];
                std::os::unix::fs::FileExt::read_exact_at(
                    f,
                    &mut out,
                    (self.blob_at.start + r.start) as u64,
                )
                .map_err(|e| bad(what, format!("read the decompressed part: {e}")))?;
                Ok(std::borrow::Cow::Owned(out))
            }
        }
    }
    /// Copy the start of blob range `r` (inside the blob) into `buf`; how many bytes.
    fn copy_blob(&self, r: &std::ops::Range<usize>, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(r.len());
        let at = self.blob_at.start + r.start;
        match &self.data {
            Data::Mem(v) => {
                buf[..n].copy_from_slice(&v[at..at + n]);
                Ok(n)
            }
            Data::File(f) => {
                std::os::unix::fs::FileExt::read_exact_at(f, &mut buf[..n], at as u64)?;
                Ok(n)
            }
        }
    }
}

/// Slack over a part header's declared uncompressed size before its output is refused.
/// ostree and oxtree declare exactly the bytes of the objects a part writes; the slack only
/// absorbs a generator that counts a little differently.
pub const OUTPUT_SLACK: u64 = 1 << 20;

/// The output bound of a payload whose header is not known (fuzzing, tests): what its data
/// can produce without reusing any byte more than 16 times.
pub fn default_max_output(blob_len: usize) -> u64 {
    (blob_len as u64)
        .saturating_mul(16)
        .saturating_add(OUTPUT_SLACK)
}

/// Verify a part as stored against its header, decompress and parse it.
pub fn open_part(stored: &[u8], h: &PartHeader, what: &str) -> Result<Payload> {
    let limit = check_part(stored, h, what)?;
    let raw = decompress_part(stored, limit, what)?;
    if raw.len() as u64 > limit {
        return Err(too_large(limit, h, what));
    }
    let mut p = parse_payload_owned(raw, what)?;
    p.max_output = h.uncompressed_size.saturating_add(OUTPUT_SLACK);
    Ok(p)
}

/// Check a stored part against its header; the most bytes it may decompress to.
fn check_part(stored: &[u8], h: &PartHeader, what: &str) -> Result<u64> {
    check_digest(Checksum::digest(stored), h, what)?;
    Ok(part_limit(h))
}

fn check_digest(actual: Checksum, h: &PartHeader, what: &str) -> Result<()> {
    if actual != h.checksum {
        return Err(bad(
            what,
            format!(
                "part hashes to {actual}, the superblock says {}",
                h.checksum
            ),
        ));
    }
    Ok(())
}

/// The most bytes a part may decompress to. The header's "uncompressed size" is what the
/// part's objects add up to, not the payload's length (tables, op codes and patches differ
/// from it), so it only bounds the decompression, against a part that inflates without end.
fn part_limit(h: &PartHeader) -> u64 {
    h.uncompressed_size
        .saturating_mul(2)
        .saturating_add(16 << 20)
        .min(MAX_PART_SIZE)
}

fn too_large(limit: u64, h: &PartHeader, what: &str) -> Error {
    bad(
        what,
        format!(
            "part inflates past {limit} bytes (its objects total {})",
            h.uncompressed_size
        ),
    )
}

/// A part as stored (its first byte the compression, then the body): in memory (inlined
/// in a superblock), or in a file (a download, or a part of a local repository).
pub enum StoredPart {
    Mem(Vec<u8>),
    File(std::fs::File),
}

/// As [`open_part`], reading the stored part from memory or a file and decompressing it
/// into an unlinked temporary file in `dir` (a repository's `tmp/`): the blob is read back
/// op by op, so two parts executing at once hold little more than an xz decoder each.
pub fn open_part_in(
    stored: StoredPart,
    h: &PartHeader,
    what: &str,
    dir: &std::path::Path,
) -> Result<Payload> {
    use sha2::Digest;
    let limit = part_limit(h);
    let mut body: Box<dyn Read> = match stored {
        StoredPart::Mem(v) => {
            check_digest(Checksum::digest(&v), h, what)?;
            Box::new(std::io::Cursor::new(v))
        }
        StoredPart::File(mut f) => {
            // (from the start: a download leaves the file at its end)
            let mut hasher = sha2::Sha256::new();
            std::io::Seek::rewind(&mut f)
                .and_then(|()| std::io::copy(&mut f, &mut hasher))
                .and_then(|_| std::io::Seek::rewind(&mut f))
                .map_err(|e| bad(what, format!("read: {e}")))?;
            check_digest(Checksum(hasher.finalize().into()), h, what)?;
            Box::new(std::io::BufReader::with_capacity(256 << 10, f))
        }
    };
    let mut kind = [0u8; 1];
    body.read_exact(&mut kind)
        .map_err(|_| bad(what, "empty part"))?;
    let f = crate::fsutil::anonymous_tempfile_in(dir)?;
    let mut w = std::io::BufWriter::with_capacity(256 << 10, f);
    let n = std::io::copy(
        &mut decoder(kind[0], body, what)?.take(limit.saturating_add(1)),
        &mut w,
    )
    .map_err(|e| bad(what, format!("xz: {e}")))?;
    if n > limit {
        return Err(too_large(limit, h, what));
    }
    let f = w
        .into_inner()
        .map_err(|e| bad(what, format!("write the decompressed part: {}", e.error())))?;
    let mut p = parse_payload_file(f, n as usize, what)?;
    p.max_output = h.uncompressed_size.saturating_add(OUTPUT_SLACK);
    Ok(p)
}

/// Parse a decompressed part (borrowed: copied once; see [`parse_payload_owned`]).
pub fn parse_payload(raw: &[u8], what: &str) -> Result<Payload> {
    parse_payload_owned(raw.to_vec(), what)
}

/// The byte ranges of the four members of a payload, a `(a(uuu)aa(ayay)ayay)` tuple:
/// GVariant ends a tuple with the end offsets of its variable-size members but the last,
/// in reverse order, each as wide as the tuple's size needs (1, 2, 4 or 8 bytes). The
/// first member is 4-aligned at 0, the others are byte arrays (alignment 1).
fn payload_members(n: usize, tail: &[u8]) -> Option<[std::ops::Range<usize>; 4]> {
    // `tail`: the payload's last bytes (at least 24 of them, or all when shorter).
    let w = match n as u64 {
        0 => return None,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    let frame = n.checked_sub(3 * w)?;
    let offset = |k: usize| -> Option<usize> {
        // the k-th member's end: k = 0 is stored last
        let at = tail.len().checked_sub((k + 1) * w)?;
        let mut v = [0u8; 8];
        v[..w].copy_from_slice(tail.get(at..at + w)?);
        usize::try_from(u64::from_le_bytes(v)).ok()
    };
    let (e0, e1, e2) = (offset(0)?, offset(1)?, offset(2)?);
    (e0 <= e1 && e1 <= e2 && e2 <= frame).then_some([0..e0, e0..e1, e1..e2, e2..frame])
}

/// The payload's tables, from their bytes.
type Tables = (Vec<(u32, u32, u32)>, Vec<Xattrs>);
fn parse_tables(modes_raw: &[u8], xattrs_raw: &[u8], what: &str) -> Result<Tables> {
    let mode_table = gvariant::decode(modes_raw, &Type::of("a(uuu)")).map_err(|e| bad(what, e))?;
    let xattr_table =
        gvariant::decode(xattrs_raw, &Type::of("aa(ayay)")).map_err(|e| bad(what, e))?;
    let mut modes = Vec::new();
    for t in mode_table.items().unwrap_or_default() {
        let f = t.items().unwrap_or_default();
        let u = |i: usize| {
            f.get(i)
                .and_then(Value::as_u32)
                .map(u32::from_be)
                .ok_or_else(|| bad(what, "bad mode table"))
        };
        modes.push((u(0)?, u(1)?, u(2)?));
    }
    let mut xattrs = Vec::new();
    for x in xattr_table.items().unwrap_or_default() {
        xattrs.push(crate::object::parse_xattrs(x).map_err(|e| bad(what, e))?);
    }
    Ok((modes, xattrs))
}

/// Parse a decompressed part held in an (unlinked) file of `n` bytes: the tables and op
/// codes are read into memory, the blob stays in the file.
fn parse_payload_file(f: std::fs::File, n: usize, what: &str) -> Result<Payload> {
    use std::os::unix::fs::FileExt;
    let read = |r: std::ops::Range<usize>| -> Result<Vec<u8>> {
        let mut out = vec![0u8; r.len()];
        f.read_exact_at(&mut out, r.start as u64)
            .map_err(|e| bad(what, format!("read the decompressed part: {e}")))?;
        Ok(out)
    };
    let tail = read(n.saturating_sub(24)..n)?;
    let [modes_at, xattrs_at, blob_at, ops_at] =
        payload_members(n, &tail).ok_or_else(|| bad(what, "bad payload (framing)"))?;
    let (modes, xattrs) = parse_tables(&read(modes_at)?, &read(xattrs_at)?, what)?;
    let ops = read(ops_at)?;
    Ok(Payload {
        modes,
        xattrs,
        max_output: default_max_output(blob_at.len()),
        data: Data::File(f),
        blob_at,
        ops,
    })
}

/// Parse a decompressed part, keeping its blob and op codes in `raw` (no copy).
pub fn parse_payload_owned(raw: Vec<u8>, what: &str) -> Result<Payload> {
    let n = raw.len();
    let [modes_at, xattrs_at, blob_at, ops_at] =
        payload_members(n, &raw[n.saturating_sub(24)..])
            .ok_or_else(|| bad(what, "bad payload (framing)"))?;
    let (modes, xattrs) = parse_tables(&raw[modes_at], &raw[xattrs_at], what)?;
    let ops = raw[ops_at].to_vec();
    Ok(Payload {
        modes,
        xattrs,
        max_output: default_max_output(blob_at.len()),
        data: Data::Mem(raw),
        blob_at,
        ops,
    })
}

/// Where executed parts put their objects.
pub trait ObjectSink {
    /// Store metadata object bytes; the caller has checked nothing yet.
    fn write_metadata(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()>;
    /// Store a content object, which must hash to `csum`.
    fn write_content(&self, header: &FileHeader, data: &[u8], csum: &Checksum) -> Result<()>;
    /// Store a content object of `size` bytes read from `data` (to its end), which must
    /// hash to `csum`. Objects assembled by `o`…`c` ops come this way, produced as they are
    /// read, so a sink that streams them to disk holds none of them in memory. This default
    /// collects them and calls [`ObjectSink::write_content`].
    fn write_content_stream(
        &self,
        header: &FileHeader,
        size: u64,
        data: &mut dyn Read,
        csum: &Checksum,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(size.min(16 << 20) as usize);
        data.take(size)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Other(format!("content object {csum}: {e}")))?;
        self.write_content(header, &buf, csum)
    }
    /// The content (payload) of a file object already in the repository.
    fn read_content(&self, csum: &Checksum) -> Result<Vec<u8>>;
}

/// Ops of the delta bytecode.
const OP_OPEN_SPLICE_AND_CLOSE: u8 = b'S';
const OP_OPEN: u8 = b'o';
const OP_WRITE: u8 = b'w';
const OP_SET_READ_SOURCE: u8 = b'r';
const OP_UNSET_READ_SOURCE: u8 = b'R';
const OP_CLOSE: u8 = b'c';
const OP_BSPATCH: u8 = b'B';

fn read_varint(ops: &[u8], pos: &mut usize, what: &str) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *ops
            .get(*pos)
            .ok_or_else(|| bad(what, "op codes end inside a number"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad(what, "number too long in op codes"))
}

fn range_of(len: usize, off: u64, n: u64, what: &str) -> Result<std::ops::Range<usize>> {
    let end = off
        .checked_add(n)
        .filter(|&e| e <= len as u64)
        .ok_or_else(|| bad(what, format!("range {off}+{n} is outside the data")))?;
    Ok(off as usize..end as usize)
}

/// Bytes of an open object produced by one op and not yet read by the sink.
enum Pending {
    None,
    Blob(std::ops::Range<usize>),
    Source(std::ops::Range<usize>),
    Patched(Vec<u8>, usize),
}

/// The state of a part being executed.
struct Exec<'a> {
    p: &'a Payload,
    sink: &'a dyn ObjectSink,
    what: &'a str,
    pos: usize,
    source: Option<Vec<u8>>,
    /// Bytes produced so far, all objects together, against `p.max_output`.
    produced: u64,
}

impl Exec<'_> {
    fn varint(&mut self) -> Result<u64> {
        read_varint(self.p.ops(), &mut self.pos, self.what)
    }

    /// Account for `n` more bytes of output.
    fn produce(&mut self, n: u64) -> Result<()> {
        self.produced = self.produced.saturating_add(n);
        if self.produced > self.p.max_output {
            return Err(bad(
                self.what,
                format!(
                    "the part writes more than the {} bytes its header declares (ops reuse their data)",
                    self.p.max_output.saturating_sub(OUTPUT_SLACK)
                ),
            ));
        }
        Ok(())
    }

    fn set_source(&mut self) -> Result<()> {
        let off = self.varint()?;
        let c = Checksum::from_slice(&self.p.blob_range(off, 32, self.what)?)
            .ok_or_else(|| bad(self.what, "bad read source"))?;
        // The old object is the client's own, verified content: its size is what it is.
        self.source = Some(self.sink.read_content(&c)?);
        Ok(())
    }
}

/// An object opened by `o`: produces its bytes by executing the following ops as the sink
/// reads them, up to its `c`.
struct OpenObject<'e, 'a> {
    ex: &'e mut Exec<'a>,
    id: Checksum,
    size: u64,
    written: u64,
    pending: Pending,
    closed: bool,
    /// The real error behind an `io::Error` the sink saw.
    error: Option<Error>,
}

impl OpenObject<'_, '_> {
    /// Run ops until one produces bytes, or the `c` that closes the object.
    fn step(&mut self) -> Result<()> {
        let what = self.ex.what;
        let op = *self
            .ex
            .p
            .ops()
            .get(self.ex.pos)
            .ok_or_else(|| bad(what, format!("object {} is never closed", self.id)))?;
        self.ex.pos += 1;
        let room = self.size - self.written;
        match op {
            OP_WRITE => {
                let (len, off) = (self.ex.varint()?, self.ex.varint()?);
                if len > room {
                    return Err(bad(
                        what,
                        format!("object {} written past its size", self.id),
                    ));
                }
                self.ex.produce(len)?;
                self.pending = match &self.ex.source {
                    Some(s) => Pending::Source(range_of(s.len(), off, len, what)?),
                    None => Pending::Blob(range_of(self.ex.p.blob_len(), off, len, what)?),
                };
                self.written += len;
            }
            OP_BSPATCH => {
                let (off, len) = (self.ex.varint()?, self.ex.varint()?);
                let old = self
                    .ex
                    .source
                    .as_deref()
                    .ok_or_else(|| bad(what, "bspatch with no read source"))?;
                let patch = self.ex.p.blob_range(off, len, what)?;
                // bspatch output grows with the patch (each byte comes out of it), so
                // one op holds at most a patch's worth in memory.
                let out = bspatch(old, &patch, room).map_err(|m| bad(what, m))?;
                self.ex.produce(out.len() as u64)?;
                self.written += out.len() as u64;
                self.pending = Pending::Patched(out, 0);
            }
            OP_SET_READ_SOURCE => self.ex.set_source()?,
            OP_UNSET_READ_SOURCE => self.ex.source = None,
            OP_CLOSE => {
                if self.written != self.size {
                    return Err(bad(
                        what,
                        format!(
                            "object {} has {} of its {} bytes",
                            self.id, self.written, self.size
                        ),
                    ));
                }
                self.closed = true;
            }
            OP_OPEN | OP_OPEN_SPLICE_AND_CLOSE => {
                return Err(bad(what, "open inside an open object"))
            }
            op => return Err(bad(what, format!("unknown op code {op:#04x}"))),
        }
        Ok(())
    }
}

impl OpenObject<'_, '_> {
    /// Copy what the last op produced and the sink has not read yet.
    fn copy_pending(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        fn take(data: &[u8], buf: &mut [u8], at: &mut usize) -> usize {
            let n = buf.len().min(data.len());
            if let (Some(to), Some(from)) = (buf.get_mut(..n), data.get(..n)) {
                to.copy_from_slice(from);
            }
            *at += n;
            n
        }
        let source = self.ex.source.as_deref().unwrap_or_default();
        Ok(match &mut self.pending {
            Pending::None => 0,
            Pending::Blob(r) => {
                let n = self.ex.p.copy_blob(r, buf)?;
                r.start += n;
                n
            }
            Pending::Source(r) => {
                take(source.get(r.clone()).unwrap_or_default(), buf, &mut r.start)
            }
            Pending::Patched(v, i) => take(v.get(*i..).unwrap_or_default(), buf, i),
        })
    }
}

impl Read for OpenObject<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.copy_pending(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.pending = Pending::None;
            if self.closed {
                return Ok(0);
            }
            if let Err(e) = self.step() {
                let msg = e.to_string();
                self.error = Some(e);
                return Err(std::io::Error::other(msg));
            }
        }
    }
}

/// Execute a part: write each object of `objects` through `sink`. Returns how many.
///
/// Bounded by the data, whatever the op codes claim: all objects together may produce at
/// most `p.max_output` bytes — the part header's declared uncompressed size, which `w` and
/// `B` ops reusing the same data could otherwise multiply without end (security review
/// M3) — so an object's size (`o`) may not exceed what is left of it either; objects
/// assembled by `o`…`c` are produced as the sink reads them
/// ([`ObjectSink::write_content_stream`]), and a bspatch op holds at most its own output.
pub fn apply_part(
    p: &Payload,
    objects: &[(ObjectType, Checksum)],
    sink: &dyn ObjectSink,
    what: &str,
) -> Result<usize> {
    let mut ex = Exec {
        p,
        sink,
        what,
        pos: 0,
        source: None,
        produced: 0,
    };
    let mut next = 0usize;
    let current = |next: usize| -> Result<(ObjectType, Checksum)> {
        objects
            .get(next)
            .copied()
            .ok_or_else(|| bad(what, "more objects in the op codes than in the part header"))
    };
    let header_for = |mode_i: u64, xattr_i: u64| -> Result<FileHeader> {
        let (uid, gid, mode) = *usize::try_from(mode_i)
            .ok()
            .and_then(|i| p.modes.get(i))
            .ok_or_else(|| bad(what, "mode index out of range"))?;
        let xattrs = usize::try_from(xattr_i)
            .ok()
            .and_then(|i| p.xattrs.get(i))
            .ok_or_else(|| bad(what, "xattr index out of range"))?
            .clone();
        Ok(FileHeader {
            uid,
            gid,
            mode,
            symlink_target: String::new(),
            xattrs,
        })
    };
    while let Some(&op) = p.ops().get(ex.pos) {
        ex.pos += 1;
        match op {
            OP_OPEN_SPLICE_AND_CLOSE => {
                let (ty, c) = current(next)?;
                if ty.is_meta() {
                    let (len, off) = (ex.varint()?, ex.varint()?);
                    range_of(p.blob_len(), off, len, what)?;
                    ex.produce(len)?;
                    let data = p.blob_range(off, len, what)?;
                    let data = &data[..];
                    let actual = Checksum::digest(data);
                    if actual != c {
                        return Err(Error::ChecksumMismatch {
                            ty,
                            csum: c,
                            actual,
                        });
                    }
                    sink.write_metadata(ty, &c, data)?;
                } else {
                    let (mi, xi, size, off) =
                        (ex.varint()?, ex.varint()?, ex.varint()?, ex.varint()?);
                    let mut h = header_for(mi, xi)?;
                    range_of(p.blob_len(), off, size, what)?;
                    ex.produce(size)?;
                    let data = p.blob_range(off, size, what)?;
                    let data = &data[..];
                    if h.is_symlink() {
                        h.symlink_target = String::from_utf8(data.to_vec())
                            .map_err(|_| bad(what, "symlink target is not UTF-8"))?;
                        sink.write_content(&h, &[], &c)?;
                    } else {
                        sink.write_content(&h, data, &c)?;
                    }
                }
                next += 1;
            }
            OP_OPEN => {
                let (mi, xi, size) = (ex.varint()?, ex.varint()?, ex.varint()?);
                let (ty, c) = current(next)?;
                if ty.is_meta() {
                    return Err(bad(what, "open of a metadata object"));
                }
                let left = p.max_output.saturating_sub(ex.produced);
                if size > left {
                    return Err(bad(
                        what,
                        format!(
                            "object {c} claims {size} bytes, more than the {left} left of what the part header declares"
                        ),
                    ));
                }
                let h = header_for(mi, xi)?;
                let mut o = OpenObject {
                    ex: &mut ex,
                    id: c,
                    size,
                    written: 0,
                    pending: Pending::None,
                    closed: false,
                    error: None,
                };
                let res = sink.write_content_stream(&h, size, &mut o, &c);
                // The sink may stop early (a wrong hash, a full disk): the executor's own
                // error, if it had one, says more than the sink's.
                if let Some(e) = o.error.take() {
                    return Err(e);
                }
                res?;
                // The sink read `size` bytes; run the ops up to the object's `c` (which
                // checks nothing more was written).
                let mut rest = [0u8; 64];
                while !o.closed {
                    match o.read(&mut rest) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            return Err(o.error.take().unwrap_or_else(|| bad(what, e.to_string())))
                        }
                    }
                }
                next += 1;
            }
            OP_SET_READ_SOURCE => ex.set_source()?,
            OP_UNSET_READ_SOURCE => ex.source = None,
            OP_WRITE => return Err(bad(what, "write with no open object")),
            OP_BSPATCH => return Err(bad(what, "bspatch with no open object")),
            OP_CLOSE => return Err(bad(what, "close with no open object")),
            op => return Err(bad(what, format!("unknown op code {op:#04x}"))),
        }
    }
    if next != objects.len() {
        return Err(bad(
            what,
            format!("the op codes wrote {next} of {} objects", objects.len()),
        ));
    }
    Ok(next)
}

/// bsdiff's sign-magnitude little-endian 64-bit integer.
fn offtin(b: &[u8]) -> i64 {
    let mut y: i64 = 0;
    for i in (0..8).rev() {
        let byte = if i == 7 { b[i] & 0x7f } else { b[i] };
        y = y.wrapping_mul(256).wrapping_add(i64::from(byte));
    }
    if b[7] & 0x80 != 0 {
        -y
    } else {
        y
    }
}

/// Apply a bsdiff patch stream (mendsley/bsdiff: control triples, diff and extra bytes
/// interleaved, no header) to `old`, producing `new_size` bytes. Every output byte comes out
/// of the patch, so the output grows with the patch, whatever size is claimed.
pub fn bspatch(old: &[u8], patch: &[u8], new_size: u64) -> std::result::Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::with_capacity(new_size.min(patch.len() as u64) as usize);
    let mut p = 0usize;
    let mut take = |n: u64| -> std::result::Result<&[u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| p.checked_add(n))
            .filter(|&e| e <= patch.len())
            .ok_or("bsdiff patch ends early")?;
        let s = &patch[p..end];
        p = end;
        Ok(s)
    };
    let mut oldpos: i64 = 0;
    while (out.len() as u64) < new_size {
        let ctrl = take(24)?;
        let (c0, c1, c2) = (
            offtin(&ctrl[0..8]),
            offtin(&ctrl[8..16]),
            offtin(&ctrl[16..24]),
        );
        if c0 < 0 || c1 < 0 {
            return Err("bsdiff control data is negative".into());
        }
        let (c0, c1) = (c0 as u64, c1 as u64);
        if (out.len() as u64).saturating_add(c0) > new_size {
            return Err("bsdiff patch writes past the new file".into());
        }
        let start = out.len();
        out.extend_from_slice(take(c0)?);
        for (i, b) in out[start..].iter_mut().enumerate() {
            let o = oldpos.wrapping_add(i as i64);
            if o >= 0 && (o as u64) < old.len() as u64 {
                *b = b.wrapping_add(old[o as usize]);
            }
        }
        oldpos = oldpos.wrapping_add(c0 as i64);
        if (out.len() as u64).saturating_add(c1) > new_size {
            return Err("bsdiff patch writes past the new file".into());
        }
        out.extend_from_slice(take(c1)?);
        oldpos = oldpos.wrapping_add(c2);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_ostree() {
        // The spec's verified path: deltas/SL/r_ytj…-aYJe15… for these two commits.
        let from: Checksum = "48baffcad8f4aa4ac53be9b9ce2e79a9196a7bec74885f65150b4d1efc6c22da"
            .parse()
            .expect("csum");
        let to: Checksum = "69825ed79b25d8166b185b0afea35fdc512a23cb16834501df2ea5d0c6b0704e"
            .parse()
            .expect("csum");
        assert_eq!(
            delta_dir(Some(&from), &to),
            "deltas/SL/r_ytj0qkrFO+m5zi55qRlqe+x0iF9lFQtNHvxsIto-aYJe15sl2BZrGFsK_qNf3FEqI8sWg0UB3y6l0MawcE4"
        );
        assert_eq!(
            delta_dir(None, &to),
            "deltas/aY/Je15sl2BZrGFsK_qNf3FEqI8sWg0UB3y6l0MawcE4"
        );
        assert_eq!(
            index_path(&to),
            "delta-indexes/aY/Je15sl2BZrGFsK_qNf3FEqI8sWg0UB3y6l0MawcE4.index"
        );
        assert_eq!(delta_name(Some(&from), &to), format!("{from}-{to}"));
        assert_eq!(mbase64_decode(&mbase64(&from)), Some(from));
        assert_eq!(mbase64_decode("not base64!"), None);
    }

    #[test]
    fn bspatch_applies_control_triples() {
        // new = old with byte 1 incremented, then "XY" appended from the extra block.
        let old = b"abcd";
        let mut patch = Vec::new();
        let le = |v: i64| {
            let mut b = (v.unsigned_abs()).to_le_bytes();
            if v < 0 {
                b[7] |= 0x80;
            }
            b
        };
        patch.extend_from_slice(&le(4));
        patch.extend_from_slice(&le(2));
        patch.extend_from_slice(&le(0));
        patch.extend_from_slice(&[0, 1, 0, 0]);
        patch.extend_from_slice(b"XY");
        assert_eq!(bspatch(old, &patch, 6).expect("patch"), b"accdXY");
        assert!(bspatch(old, &patch[..10], 6).is_err());
        assert!(bspatch(old, &patch, 5).is_err());
    }

    #[test]
    fn bspatch_reads_what_bsdiff_writes() {
        let old: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[100..110].copy_from_slice(b"0123456789");
        new.splice(3000..3000, b"inserted".iter().copied());
        new.truncate(45_000);
        let mut patch = Vec::new();
        bsdiff::diff(&old, &new, &mut patch).expect("diff");
        assert_eq!(bspatch(&old, &patch, new.len() as u64).expect("patch"), new);
    }

    #[test]
    fn varints_and_bad_ops_are_errors() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x96, 0x01], &mut pos, "t").expect("v"), 150);
        assert!(read_varint(&[0x80], &mut 0, "t").is_err());
        let mut p = Payload::new(vec![], vec![], vec![], b"Z");
        p.max_output = 0;
        struct Nothing;
        impl ObjectSink for Nothing {
            fn write_metadata(&self, _: ObjectType, _: &Checksum, _: &[u8]) -> Result<()> {
                Ok(())
            }
            fn write_content(&self, _: &FileHeader, _: &[u8], _: &Checksum) -> Result<()> {
                Ok(())
            }
            fn read_content(&self, _: &Checksum) -> Result<Vec<u8>> {
                Ok(Vec::new())
            }
        }
        assert!(apply_part(&p, &[], &Nothing, "t").is_err());
    }

    /// Streams objects through a small buffer, keeping only a count.
    struct Counting(std::cell::Cell<u64>);

    impl ObjectSink for Counting {
        fn write_metadata(&self, _: ObjectType, _: &Checksum, d: &[u8]) -> Result<()> {
            self.0.set(self.0.get() + d.len() as u64);
            Ok(())
        }
        fn write_content(&self, _: &FileHeader, d: &[u8], _: &Checksum) -> Result<()> {
            self.0.set(self.0.get() + d.len() as u64);
            Ok(())
        }
        fn write_content_stream(
            &self,
            _: &FileHeader,
            _: u64,
            data: &mut dyn Read,
            _: &Checksum,
        ) -> Result<()> {
            let mut buf = [0u8; 64 << 10];
            loop {
                let n = data
                    .read(&mut buf)
                    .map_err(|e| Error::Other(e.to_string()))?;
                if n == 0 {
                    return Ok(());
                }
                self.0.set(self.0.get() + n as u64);
            }
        }
        fn read_content(&self, _: &Checksum) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
    }

    fn push_varint(out: &mut Vec<u8>, mut v: u64) {
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

    #[test]
    fn payload_framing_matches_the_full_decode() {
        // Payloads whose sizes need 1-, 2- and 4-byte framing offsets: the members found
        // from the framing are the ones the GVariant decoder finds, and truncated or
        // garbled framing is an error, never a panic.
        for (blob_len, ops_len, modes) in [(0, 0, 0), (3, 1, 1), (200, 20, 2), (70_000, 900, 3)] {
            let blob: Vec<u8> = (0..blob_len).map(|i| (i * 7 % 251) as u8).collect();
            let ops: Vec<u8> = (0..ops_len).map(|i| (i % 13) as u8).collect();
            let mode_rows = (0..modes)
                .map(|i| Value::Tuple(vec![Value::U32(i), Value::U32(i + 1), Value::U32(0o100644)]))
                .collect();
            let xattr_rows = vec![Value::Array(
                Type::of("(ayay)"),
                vec![Value::Tuple(vec![
                    Value::Bytes(b"user.a\0".to_vec()),
                    Value::Bytes(b"v".to_vec()),
                ])],
            )];
            let raw = gvariant::encode(&Value::Tuple(vec![
                Value::Array(Type::of("(uuu)"), mode_rows),
                Value::Array(Type::of("a(ayay)"), xattr_rows),
                Value::Bytes(blob.clone()),
                Value::Bytes(ops.clone()),
            ]));
            let p = parse_payload(&raw, "p").expect("parse");
            let whole = gvariant::decode(&raw, &Type::of(PAYLOAD_TYPE)).expect("decode");
            let m = whole.items().expect("tuple");
            assert_eq!(m[2].as_bytes(), Some(&blob[..]));
            assert_eq!(m[3].as_bytes(), Some(&ops[..]));
            assert_eq!(
                &p.blob_range(0, blob.len() as u64, "p").expect("blob")[..],
                &blob[..]
            );
            assert_eq!(p.ops(), &ops[..]);
            assert_eq!(p.modes.len(), modes as usize);
            assert_eq!(p.xattrs.len(), 1);
            for cut in [1, 2, raw.len() / 2, raw.len() - 1] {
                let _ = parse_payload(&raw[..raw.len() - cut.min(raw.len())], "p");
            }
            let mut bad_frame = raw.clone();
            let n = bad_frame.len();
            bad_frame[n - 1] = 0xff;
            let _ = parse_payload(&bad_frame, "p");
        }
        assert!(parse_payload(&[], "p").is_err());
    }

    /// The M3 amplification payload: 4 KiB of zeros, one file object opened with `size`
    /// bytes and written by `writes` `w` ops over the same 4 KiB (the `c` never comes).
    pub(crate) fn amplification_payload(size: u64, writes: usize) -> Vec<u8> {
        let mut ops = vec![OP_OPEN, 0, 0];
        push_varint(&mut ops, size);
        for _ in 0..writes {
            ops.push(OP_WRITE);
            push_varint(&mut ops, 4096);
            ops.push(0);
        }
        ops.push(OP_CLOSE);
        gvariant::encode(&Value::Tuple(vec![
            Value::Array(
                Type::of("(uuu)"),
                vec![Value::Tuple(vec![
                    Value::U32(0),
                    Value::U32(0),
                    Value::U32(0o100644u32.to_be()),
                ])],
            ),
            Value::Array(
                Type::of("a(ayay)"),
                vec![Value::Array(Type::of("(ayay)"), vec![])],
            ),
            Value::Bytes(vec![0; 4096]),
            Value::Bytes(ops),
        ]))
    }

    #[test]
    fn reused_data_cannot_amplify_a_part() {
        // A part of a few KB that would write 4 GiB (a million `w` over the same 4 KiB),
        // declaring 64 KiB: refused once its output passes the declaration, having streamed
        // no more than that through the sink.
        let raw = amplification_payload(4 << 30, 1 << 20);
        let mut stored = vec![b'x'];
        let mut enc = liblzma::write::XzEncoder::new(&mut stored, 9);
        std::io::Write::write_all(&mut enc, &raw).expect("xz");
        enc.finish().expect("xz");
        assert!(stored.len() < 16 << 10, "{} bytes", stored.len());
        let objects = vec![(ObjectType::File, Checksum([1; 32]))];
        let header = PartHeader {
            version: 0,
            checksum: Checksum::digest(&stored),
            size: stored.len() as u64,
            uncompressed_size: 64 << 10,
            objects: objects.clone(),
        };
        let p = open_part(&stored, &header, "part 0").expect("open");
        assert_eq!(p.max_output, (64 << 10) + OUTPUT_SLACK);
        let sink = Counting(std::cell::Cell::new(0));
        let e = apply_part(&p, &objects, &sink, "part 0").expect_err("refused");
        assert!(
            e.to_string()
                .contains("claims 4294967296 bytes, more than the"),
            "{e}"
        );
        assert_eq!(sink.0.get(), 0);
        // An object that claims no more than the declaration is held to its own size.
        let raw = amplification_payload(p.max_output, 1 << 20);
        let mut p = parse_payload(&raw, "part 0").expect("parse");
        p.max_output = (64 << 10) + OUTPUT_SLACK;
        let e = apply_part(&p, &objects, &sink, "part 0").expect_err("refused");
        assert!(e.to_string().contains("written past its size"), "{e}");
        assert!(sink.0.get() <= p.max_output, "{}", sink.0.get());
        // Many objects spliced (`S`) out of the same 4 KiB: refused once they add up to
        // more than the declaration.
        let many: Vec<(ObjectType, Checksum)> = (0..1000u32)
            .map(|i| {
                let mut c = [0u8; 32];
                c[..4].copy_from_slice(&i.to_be_bytes());
                (ObjectType::File, Checksum(c))
            })
            .collect();
        let mut ops = Vec::new();
        for _ in 0..many.len() {
            ops.extend_from_slice(&[OP_OPEN_SPLICE_AND_CLOSE, 0, 0]);
            push_varint(&mut ops, 4096);
            ops.push(0);
        }
        let max_output = p.max_output;
        let blob = p
            .blob_range(0, p.blob_len() as u64, "t")
            .expect("blob")
            .to_vec();
        let mut p = Payload::new(p.modes, p.xattrs, blob, &ops);
        p.max_output = max_output;
        sink.0.set(0);
        let e = apply_part(&p, &many, &sink, "part 0").expect_err("refused");
        assert!(
            e.to_string()
                .contains("writes more than the 65536 bytes its header declares"),
            "{e}"
        );
        assert!(sink.0.get() <= p.max_output, "{}", sink.0.get());
        // Without a header, a payload may reuse its data at most 16 times.
        let p = parse_payload(&amplification_payload(1 << 30, 1 << 20), "p").expect("parse");
        assert_eq!(p.max_output, default_max_output(4096));
        assert!(apply_part(&p, &objects, &sink, "p").is_err());
    }
}
