//! File object headers: the checksum header `(uuuusa(ayay))`, the archive `.filez` header
//! `(tuuuusa(ayay))` and the bare-user `user.ostreemeta` xattr `(uuua(ayay))` (spec §2.3, §3).

use super::{invalid, ObjectError};
use crate::gvariant::{self, Type, Value};
use std::sync::OnceLock;

/// Extended attributes: (name without trailing NUL, value), kept sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

pub const CONTENT_HEADER_TYPE: &str = "(uuuusa(ayay))";
pub const ARCHIVE_HEADER_TYPE: &str = "(tuuuusa(ayay))";
const FILEMETA_TYPE: &str = "(uuua(ayay))";

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Everything about a file object except its payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FileHeader {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode`, including the file type bits.
    pub mode: u32,
    /// Symlink target; empty for regular files.
    pub symlink_target: String,
    pub xattrs: Xattrs,
}

pub fn xattrs_value(x: &Xattrs) -> Value {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = x.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(
        Type::of("(ayay)"),
        sorted
            .into_iter()
            .map(|(k, v)| {
                let mut name = k.clone();
                name.push(0);
                Value::Tuple(vec![Value::Bytes(name), Value::Bytes(v.clone())])
            })
            .collect(),
    )
}

/// Parse `a(ayay)` xattrs, requiring NUL-terminated, non-empty, strictly sorted names.
pub(crate) fn parse_xattrs(v: &Value) -> Result<Xattrs, ObjectError> {
    let items = v
        .items()
        .ok_or_else(|| invalid("xattrs are not an array"))?;
    let mut out: Xattrs = Vec::with_capacity(items.len());
    for it in items {
        let (Some(Value::Bytes(k)), Some(Value::Bytes(val))) = (
            it.items().and_then(|m| m.first()),
            it.items().and_then(|m| m.get(1)),
        ) else {
            return Err(invalid("malformed xattr entry"));
        };
        let Some((&0, name)) = k.split_last() else {
            return Err(invalid("xattr name is not NUL-terminated"));
        };
        if name.is_empty() || name.contains(&0) {
            return Err(invalid("invalid xattr name"));
        }
        if let Some(prev) = out.last() {
            if prev.0.as_slice() >= name {
                return Err(invalid("xattrs are not sorted by name"));
            }
        }
        out.push((name.to_vec(), val.clone()));
    }
    Ok(out)
}

fn types() -> &'static (Type, Type, Type) {
    static T: OnceLock<(Type, Type, Type)> = OnceLock::new();
    T.get_or_init(|| {
        (
            Type::of(CONTENT_HEADER_TYPE),
            Type::of(ARCHIVE_HEADER_TYPE),
            Type::of(FILEMETA_TYPE),
        )
    })
}

impl FileHeader {
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
    pub fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// A regular file or symlink; device nodes, FIFOs and sockets are not file objects.
    pub fn validate(&self) -> Result<(), ObjectError> {
        if !self.is_regular() && !self.is_symlink() {
            return Err(invalid(format!(
                "unsupported file type in mode {:o}",
                self.mode
            )));
        }
        if self.is_regular() && !self.symlink_target.is_empty() {
            return Err(invalid("regular file with a symlink target"));
        }
        if self.is_symlink() && self.symlink_target.is_empty() {
            return Err(invalid("symlink with an empty target"));
        }
        Ok(())
    }

    /// The header hashed into the content checksum.
    pub fn content_header(&self) -> Vec<u8> {
        gvariant::encode(&Value::Tuple(vec![
            Value::U32(self.uid.to_be()),
            Value::U32(self.gid.to_be()),
            Value::U32(self.mode.to_be()),
            Value::U32(0),
            Value::Str(self.symlink_target.clone()),
            xattrs_value(&self.xattrs),
        ]))
    }

    /// `BE u32 len ‖ 4 zero bytes ‖ header`: the start of the checksummed content stream.
    pub fn content_stream_prefix(&self) -> Vec<u8> {
        frame(self.content_header())
    }

    /// The `.filez` prefix: framed `(tuuuusa(ayay))` with the uncompressed size.
    pub fn archive_prefix(&self, size: u64) -> Vec<u8> {
        frame(gvariant::encode(&Value::Tuple(vec![
            Value::U64(size.to_be()),
            Value::U32(self.uid.to_be()),
            Value::U32(self.gid.to_be()),
            Value::U32(self.mode.to_be()),
            Value::U32(0),
            Value::Str(self.symlink_target.clone()),
            xattrs_value(&self.xattrs),
        ])))
    }

    /// Parse the start of a `.filez` file. Returns the header, the declared uncompressed
    /// size, and the offset where the deflate stream starts.
    pub fn parse_archive(data: &[u8]) -> Result<(FileHeader, u64, usize), ObjectError> {
        let (hdr, end) = unframe(data)?;
        let v = gvariant::decode_normal(hdr, &types().1)?;
        let m = v.items().ok_or_else(|| invalid("bad archive header"))?;
        let size = m
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("bad archive header"))?;
        let h = Self::from_members(m.get(1..).unwrap_or_default())?;
        Ok((h, u64::from_be(size), end))
    }

    /// Parse a framed content-stream header (as produced by [`Self::content_stream_prefix`]).
    pub fn parse_content_stream(data: &[u8]) -> Result<(FileHeader, usize), ObjectError> {
        let (hdr, end) = unframe(data)?;
        let v = gvariant::decode_normal(hdr, &types().0)?;
        let h = Self::from_members(v.items().ok_or_else(|| invalid("bad file header"))?)?;
        Ok((h, end))
    }

    fn from_members(m: &[Value]) -> Result<FileHeader, ObjectError> {
        let bad = || invalid("bad file header");
        let u = |i: usize| {
            m.get(i)
                .and_then(Value::as_u32)
                .map(u32::from_be)
                .ok_or_else(bad)
        };
        if u(3)? != 0 {
            return Err(invalid("file header has rdev != 0"));
        }
        let h = FileHeader {
            uid: u(0)?,
            gid: u(1)?,
            mode: u(2)?,
            symlink_target: m
                .get(4)
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
            xattrs: parse_xattrs(m.get(5).ok_or_else(bad)?)?,
        };
        h.validate()?;
        Ok(h)
    }

    /// The bare-user `user.ostreemeta` value: `(uuua(ayay))` with uid, gid, mode BE.
    pub fn to_filemeta(&self) -> Vec<u8> {
        gvariant::encode(&Value::Tuple(vec![
            Value::U32(self.uid.to_be()),
            Value::U32(self.gid.to_be()),
            Value::U32(self.mode.to_be()),
            xattrs_value(&self.xattrs),
        ]))
    }

    /// Parse `user.ostreemeta`; the symlink target (if any) is filled in by the caller.
    pub fn from_filemeta(data: &[u8]) -> Result<FileHeader, ObjectError> {
        // Without xattrs (nearly every file), `(uuua(ayay))` is the three big-endian
        // numbers and an empty array, which takes no bytes: read them as they are.
        if let Ok(b) = <&[u8; 12]>::try_from(data) {
            let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            return Ok(FileHeader {
                uid: u(0),
                gid: u(4),
                mode: u(8),
                symlink_target: String::new(),
                xattrs: Vec::new(),
            });
        }
        let v = gvariant::decode(data, &types().2)?;
        let m = v.items().ok_or_else(|| invalid("bad user.ostreemeta"))?;
        let u = |i: usize| {
            m.get(i)
                .and_then(Value::as_u32)
                .map(u32::from_be)
                .ok_or_else(|| invalid("bad user.ostreemeta"))
        };
        Ok(FileHeader {
            uid: u(0)?,
            gid: u(1)?,
            mode: u(2)?,
            symlink_target: String::new(),
            xattrs: parse_xattrs(m.get(3).ok_or_else(|| invalid("bad user.ostreemeta"))?)?,
        })
    }
}

fn frame(h: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(h.len() + 8);
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&h);
    out
}

fn unframe(data: &[u8]) -> Result<(&[u8], usize), ObjectError> {
    let len_bytes: [u8; 4] = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("file header truncated"))?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if data.get(4..8) != Some(&[0u8; 4][..]) {
        return Err(invalid("file header padding is not zero"));
    }
    if len == 0 {
        return Err(invalid("file header length is 0"));
    }
    let end = 8usize
        .checked_add(len)
        .ok_or_else(|| invalid("file header length overflows"))?;
    let hdr = data
        .get(8..end)
        .ok_or_else(|| invalid("file header length exceeds the object size"))?;
    Ok((hdr, end))
}
