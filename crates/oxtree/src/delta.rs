//! Static deltas (spec §6): one superblock plus a few compressed parts that carry every
//! object a commit needs beyond another one (or all of them: a "scratch" delta), so an update
//! costs a handful of requests instead of one per changed file (pain point 1).
//!
//! This module reads the formats and executes parts: the op bytecode (`S`, `o`, `w`, `r`,
//! `R`, `c`, `B`) writes objects through an [`ObjectSink`], which verifies each one against
//! its checksum. Parts are xz (LZMA2) streams; `liblzma` (the xz library, built from source)
//! decodes them — the same code ostree uses, and far faster than a pure-Rust LZMA decoder.
//! `bspatch` is written here: ostree stores bare mendsley/bsdiff streams (no header), which
//! the bsdiff crates do not read.

use crate::error::{Error, Result};
use crate::gvariant::{self, Type, Value};
use crate::object::{Checksum, FileHeader, ObjectType, Xattrs};
use base64::Engine;
use std::io::Read;

/// The largest part (compressed or not) accepted from a server.
pub const MAX_PART_SIZE: u64 = 1 << 30;

const SUPERBLOCK_TYPE: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";
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
                    Value::U32(p.version),
                    Value::Bytes(p.checksum.as_bytes().to_vec()),
                    Value::U64(p.size),
                    Value::U64(p.uncompressed_size),
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
                    Value::U64(f.size),
                    Value::U64(f.uncompressed_size),
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

/// A part's contents: (uid, gid, mode) and xattr tables, the data blob and the op codes.
pub struct Payload {
    pub modes: Vec<(u32, u32, u32)>,
    pub xattrs: Vec<Xattrs>,
    pub blob: Vec<u8>,
    pub ops: Vec<u8>,
}

/// Verify a part as stored against its header, decompress and parse it.
pub fn open_part(stored: &[u8], h: &PartHeader, what: &str) -> Result<Payload> {
    let actual = Checksum::digest(stored);
    if actual != h.checksum {
        return Err(bad(
            what,
            format!(
                "part hashes to {actual}, the superblock says {}",
                h.checksum
            ),
        ));
    }
    let (&kind, body) = stored
        .split_first()
        .ok_or_else(|| bad(what, "empty part"))?;
    // The header's "uncompressed size" is what the part's objects add up to, not the
    // payload's length (tables, op codes and patches differ from it), so it only bounds
    // the decompression, against a part that inflates without end.
    let limit = h
        .uncompressed_size
        .saturating_mul(2)
        .saturating_add(16 << 20)
        .min(MAX_PART_SIZE);
    let raw = match kind {
        0 => body.to_vec(),
        b'x' => {
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new(body)
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| bad(what, format!("xz: {e}")))?;
            out
        }
        k => return Err(bad(what, format!("unknown compression {k:#04x}"))),
    };
    if raw.len() as u64 > limit {
        return Err(bad(
            what,
            format!(
                "part inflates past {limit} bytes (its objects total {})",
                h.uncompressed_size
            ),
        ));
    }
    parse_payload(&raw, what)
}

pub fn parse_payload(raw: &[u8], what: &str) -> Result<Payload> {
    let v = gvariant::decode(raw, &Type::of(PAYLOAD_TYPE)).map_err(|e| bad(what, e))?;
    // Take the members by value: the blob is most of a part, and is not copied again.
    let Value::Tuple(m) = v else {
        return Err(bad(what, "bad payload"));
    };
    let Ok::<[Value; 4], _>([mode_table, xattr_table, blob, ops]) = m.try_into() else {
        return Err(bad(what, "bad payload"));
    };
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
    let (Value::Bytes(blob), Value::Bytes(ops)) = (blob, ops) else {
        return Err(bad(what, "bad payload"));
    };
    Ok(Payload {
        modes,
        xattrs,
        blob,
        ops,
    })
}

/// Where executed parts put their objects.
pub trait ObjectSink {
    /// Store metadata object bytes; the caller has checked nothing yet.
    fn write_metadata(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()>;
    /// Store a content object, which must hash to `csum`.
    fn write_content(&self, header: &FileHeader, data: &[u8], csum: &Checksum) -> Result<()>;
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

fn slice<'a>(blob: &'a [u8], off: u64, len: u64, what: &str) -> Result<&'a [u8]> {
    let end = off
        .checked_add(len)
        .filter(|&e| e <= blob.len() as u64)
        .ok_or_else(|| bad(what, format!("range {off}+{len} is outside the data")))?;
    Ok(&blob[off as usize..end as usize])
}

struct Open {
    header: FileHeader,
    size: u64,
    data: Vec<u8>,
}

/// Execute a part: write each object of `objects` through `sink`. Returns how many.
pub fn apply_part(
    p: &Payload,
    objects: &[(ObjectType, Checksum)],
    sink: &dyn ObjectSink,
    what: &str,
) -> Result<usize> {
    let mut pos = 0usize;
    let mut next = 0usize;
    let mut open: Option<Open> = None;
    let mut source: Option<Vec<u8>> = None;
    let current = |next: usize| -> Result<(ObjectType, Checksum)> {
        objects
            .get(next)
            .copied()
            .ok_or_else(|| bad(what, "more objects in the op codes than in the part header"))
    };
    let header_for = |mode_i: u64, xattr_i: u64| -> Result<FileHeader> {
        let (uid, gid, mode) = *p
            .modes
            .get(mode_i as usize)
            .ok_or_else(|| bad(what, "mode index out of range"))?;
        let xattrs = p
            .xattrs
            .get(xattr_i as usize)
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
    while pos < p.ops.len() {
        let op = p.ops[pos];
        pos += 1;
        let mut v = || read_varint(&p.ops, &mut pos, what);
        match op {
            OP_OPEN_SPLICE_AND_CLOSE => {
                let (ty, c) = current(next)?;
                if ty.is_meta() {
                    let (len, off) = (v()?, v()?);
                    let data = slice(&p.blob, off, len, what)?;
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
                    let (mi, xi, size, off) = (v()?, v()?, v()?, v()?);
                    let mut h = header_for(mi, xi)?;
                    let data = slice(&p.blob, off, size, what)?;
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
                let (mi, xi, size) = (v()?, v()?, v()?);
                if open.is_some() {
                    return Err(bad(what, "open inside an open object"));
                }
                let (ty, _) = current(next)?;
                if ty.is_meta() {
                    return Err(bad(what, "open of a metadata object"));
                }
                open = Some(Open {
                    header: header_for(mi, xi)?,
                    size,
                    // Grown by the writes (all bounded by the part's data), not by the claim.
                    data: Vec::with_capacity(size.min(16 << 20) as usize),
                });
            }
            OP_WRITE => {
                let (len, off) = (v()?, v()?);
                let o = open
                    .as_mut()
                    .ok_or_else(|| bad(what, "write with no open object"))?;
                let src = source.as_deref().unwrap_or(&p.blob);
                o.data.extend_from_slice(slice(src, off, len, what)?);
                if o.data.len() as u64 > o.size {
                    return Err(bad(what, "object written past its size"));
                }
            }
            OP_SET_READ_SOURCE => {
                let off = v()?;
                let c = Checksum::from_slice(slice(&p.blob, off, 32, what)?)
                    .ok_or_else(|| bad(what, "bad read source"))?;
                source = Some(sink.read_content(&c)?);
            }
            OP_UNSET_READ_SOURCE => source = None,
            OP_BSPATCH => {
                let (off, len) = (v()?, v()?);
                let o = open
                    .as_mut()
                    .ok_or_else(|| bad(what, "bspatch with no open object"))?;
                let old = source
                    .as_deref()
                    .ok_or_else(|| bad(what, "bspatch with no read source"))?;
                let patch = slice(&p.blob, off, len, what)?;
                let want = o.size.saturating_sub(o.data.len() as u64);
                let out = bspatch(old, patch, want).map_err(|m| bad(what, m))?;
                o.data.extend_from_slice(&out);
            }
            OP_CLOSE => {
                let (_, c) = current(next)?;
                let o = open
                    .take()
                    .ok_or_else(|| bad(what, "close with no open object"))?;
                if o.data.len() as u64 != o.size {
                    return Err(bad(
                        what,
                        format!("object {c} has {} of its {} bytes", o.data.len(), o.size),
                    ));
                }
                sink.write_content(&o.header, &o.data, &c)?;
                next += 1;
            }
            op => return Err(bad(what, format!("unknown op code {op:#04x}"))),
        }
    }
    if open.is_some() || next != objects.len() {
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
        let p = Payload {
            modes: vec![],
            xattrs: vec![],
            blob: vec![],
            ops: vec![b'Z'],
        };
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
}
