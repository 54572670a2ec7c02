//! GVariant serialisation in GLib's *normal form*, the byte format of every OSTree metadata
//! object (commit, dirtree, dirmeta, file headers, summary, detached metadata).
//!
//! Why our own codec: checksums are SHA-256 over these exact bytes, so the encoder must be
//! byte-identical to GLib, and OSTree's `a{sv}` dictionaries are order-preserving (a serde
//! map would reorder them). The crates on crates.io either bind GLib (a heavy C dependency)
//! or do not guarantee normal form. The format is small: see spec §2.1.
//!
//! Decoding is for untrusted bytes: every offset is bounds-checked with checked arithmetic,
//! nesting depth is limited, and [`decode_normal`] re-encodes the value and compares bytes,
//! which proves normal form (zero padding, minimal offsets, no trailing data).
//!
//! Numbers are stored in host (little-endian) order here; OSTree's big-endian fields are
//! swapped by the `object` layer, never by this module.
#![deny(clippy::indexing_slicing)]

mod dict;
mod ty;
mod value;

pub use dict::glib_dict_order;
pub use ty::Type;
pub use value::Value;

/// A decoding failure. Carries a short reason; callers add which object it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid GVariant type string {0:?}")]
    BadType(String),
    #[error("GVariant data does not match type {ty}: {why}")]
    Invalid { ty: String, why: &'static str },
    #[error("GVariant is not in normal form (type {0})")]
    NotNormal(String),
    #[error("GVariant nesting deeper than {0} levels")]
    TooDeep(usize),
}

/// Maximum nesting of containers/variants we accept from untrusted input.
pub const MAX_DEPTH: usize = 64;

/// Serialise `value` in normal form.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value::encode_into(value, &mut out);
    out
}

/// Decode `data` as `ty`. Accepts any well-framed data (GLib would too); use
/// [`decode_normal`] for metadata objects, which must be in normal form.
pub fn decode(data: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    value::decode(data, ty, 0)
}

/// Decode and insist the bytes are exactly the normal-form serialisation of the result.
pub fn decode_normal(data: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let v = decode(data, ty)?;
    if encode(&v) != data {
        return Err(DecodeError::NotNormal(ty.to_string()));
    }
    Ok(v)
}

/// Width of framing offsets for a container whose total size (with offsets) is `size`.
fn offset_width(size: usize) -> usize {
    if size == 0 {
        0
    } else if size <= 0xff {
        1
    } else if size <= 0xffff {
        2
    } else if size <= 0xffff_ffff {
        4
    } else {
        8
    }
}

/// Append `n` framing offsets to a container body so that the width fits the final size.
fn append_offsets(out: &mut Vec<u8>, start: usize, offsets: &[usize]) {
    if offsets.is_empty() {
        return;
    }
    let body = out.len().saturating_sub(start);
    let mut w = 1usize;
    loop {
        let total = body.saturating_add(w.saturating_mul(offsets.len()));
        if offset_width(total) <= w {
            break;
        }
        w = w.saturating_mul(2);
    }
    for &o in offsets {
        let bytes = (o as u64).to_le_bytes();
        out.extend_from_slice(bytes.get(..w).unwrap_or(&bytes));
    }
}

/// Pad `out` with zeros so that `out.len() - start` is a multiple of `align`.
fn pad_to(out: &mut Vec<u8>, start: usize, align: usize) {
    while !out.len().saturating_sub(start).is_multiple_of(align) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests;
