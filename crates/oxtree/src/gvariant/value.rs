//! Dynamically typed GVariant values and their (de)serialisation.
#![deny(clippy::arithmetic_side_effects)]

use super::{append_offsets, offset_width, pad_to, DecodeError, Type, MAX_DEPTH};

/// A GVariant value. `ay` has its own variant (`Bytes`) because OSTree uses it everywhere
/// (checksums, xattrs, file names in headers) and a `Vec<Value>` of bytes would be wasteful.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Byte(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    Handle(i32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// A boxed value of any type (`v`).
    Variant(Box<Value>),
    /// `ay`.
    Bytes(Vec<u8>),
    /// An array of any element type except `y`; the element type is kept for empty arrays.
    Array(Type, Vec<Value>),
    /// A maybe of the given element type: nothing (`None`) or just a value.
    Maybe(Type, Option<Box<Value>>),
    Tuple(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Byte(_) => Type::Byte,
            Value::I16(_) => Type::I16,
            Value::U16(_) => Type::U16,
            Value::I32(_) => Type::I32,
            Value::U32(_) => Type::U32,
            Value::Handle(_) => Type::Handle,
            Value::I64(_) => Type::I64,
            Value::U64(_) => Type::U64,
            Value::Double(_) => Type::Double,
            Value::Str(_) => Type::Str,
            Value::ObjectPath(_) => Type::ObjectPath,
            Value::Signature(_) => Type::Signature,
            Value::Variant(_) => Type::Variant,
            Value::Bytes(_) => Type::Array(Box::new(Type::Byte)),
            Value::Array(t, _) => Type::Array(Box::new(t.clone())),
            Value::Maybe(t, _) => Type::Maybe(Box::new(t.clone())),
            Value::Tuple(m) => Type::Tuple(m.iter().map(Value::ty).collect()),
            Value::DictEntry(k, v) => Type::DictEntry(Box::new(k.ty()), Box::new(v.ty())),
        }
    }

    /// Convenience: `s` value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Convenience: an `a{sv}` dictionary in the given order.
    pub fn dict_sv(entries: Vec<(String, Value)>) -> Value {
        Value::Array(
            Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
            entries
                .into_iter()
                .map(|(k, v)| {
                    Value::DictEntry(
                        Box::new(Value::Str(k)),
                        Box::new(Value::Variant(Box::new(v))),
                    )
                })
                .collect(),
        )
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }
    /// Members of a tuple, elements of an array.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(m) | Value::Array(_, m) => Some(m),
            _ => None,
        }
    }
    /// The inner value of a `v`.
    /// The child of one `v` (a value that is not a variant is returned as is). Only one
    /// level: nested variants are data, and unwrapping them would change the bytes.
    pub fn unboxed(&self) -> &Value {
        match self {
            Value::Variant(v) => v,
            v => v,
        }
    }
    /// Entries of an `a{sv}` as (key, inner value) pairs, in stored order.
    pub fn sv_entries(&self) -> Option<Vec<(&str, &Value)>> {
        let Value::Array(_, items) = self else {
            return None;
        };
        items
            .iter()
            .map(|e| match e {
                Value::DictEntry(k, v) => Some((k.as_str()?, v.unboxed())),
                _ => None,
            })
            .collect()
    }
    /// Every number with its bytes reversed (`g_variant_byteswap`): what a big-endian value
    /// (commit timestamps, dirmeta uid/gid/mode) reads as on this little-endian encoding.
    pub fn byteswap(&self) -> Value {
        match self {
            Value::I16(x) => Value::I16(x.swap_bytes()),
            Value::U16(x) => Value::U16(x.swap_bytes()),
            Value::I32(x) => Value::I32(x.swap_bytes()),
            Value::Handle(x) => Value::Handle(x.swap_bytes()),
            Value::U32(x) => Value::U32(x.swap_bytes()),
            Value::I64(x) => Value::I64(x.swap_bytes()),
            Value::U64(x) => Value::U64(x.swap_bytes()),
            Value::Double(x) => Value::Double(f64::from_bits(x.to_bits().swap_bytes())),
            Value::Variant(v) => Value::Variant(Box::new(v.byteswap())),
            Value::Array(t, items) => {
                Value::Array(t.clone(), items.iter().map(Value::byteswap).collect())
            }
            Value::Maybe(t, v) => {
                Value::Maybe(t.clone(), v.as_ref().map(|v| Box::new(v.byteswap())))
            }
            Value::Tuple(items) => Value::Tuple(items.iter().map(Value::byteswap).collect()),
            Value::DictEntry(k, v) => {
                Value::DictEntry(Box::new(k.byteswap()), Box::new(v.byteswap()))
            }
            v => v.clone(),
        }
    }
    /// Linear key lookup in an `a{sv}` (OSTree writes some dicts in hash order).
    pub fn lookup(&self, key: &str) -> Option<&Value> {
        self.sv_entries()?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

pub(super) fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Byte(b) => out.push(*b),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) | Value::Handle(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Double(x) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Variant(inner) => {
            // The child starts at the variant's start, which is 8-aligned in the parent; since
            // every alignment divides 8, encoding it from a fresh start is exact.
            encode_into(inner, out);
            out.push(0);
            out.extend_from_slice(inner.ty().to_string().as_bytes());
        }
        Value::Array(elem, items) => {
            let start = out.len();
            let align = elem.alignment();
            if elem.fixed_size().is_some() {
                for it in items {
                    pad_to(out, start, align);
                    encode_into(it, out);
                }
            } else {
                let mut ends = Vec::with_capacity(items.len());
                for it in items {
                    pad_to(out, start, align);
                    encode_into(it, out);
                    ends.push(out.len().saturating_sub(start));
                }
                append_offsets(out, start, &ends);
            }
        }
        // Nothing is no bytes; just a fixed-size value is that value, just a variable-size
        // one is that value and a zero byte (which tells just `""`/`[]` from nothing).
        Value::Maybe(elem, just) => {
            if let Some(x) = just {
                encode_into(x, out);
                if elem.fixed_size().is_none() {
                    out.push(0);
                }
            }
        }
        Value::Tuple(members) => encode_members(members.iter(), out),
        Value::DictEntry(k, v) => encode_members([&**k, &**v].into_iter(), out),
    }
}

fn encode_members<'a>(members: impl ExactSizeIterator<Item = &'a Value>, out: &mut Vec<u8>) {
    let start = out.len();
    let n = members.len();
    if n == 0 {
        out.push(0); // the unit tuple is one zero byte
        return;
    }
    let mut ends = Vec::new();
    let mut max_align = 1;
    let mut all_fixed = true;
    for (i, m) in members.enumerate() {
        let t = m.ty();
        let align = t.alignment();
        max_align = max_align.max(align);
        pad_to(out, start, align);
        encode_into(m, out);
        if t.fixed_size().is_none() {
            all_fixed = false;
            if i.saturating_add(1) != n {
                ends.push(out.len().saturating_sub(start));
            }
        }
    }
    if all_fixed {
        pad_to(out, start, max_align);
    } else {
        ends.reverse();
        append_offsets(out, start, &ends);
    }
}

fn invalid(ty: &Type, why: &'static str) -> DecodeError {
    DecodeError::Invalid {
        ty: ty.to_string(),
        why,
    }
}

fn read_le(data: &[u8], at: usize, w: usize) -> Option<usize> {
    let b = data.get(at..at.checked_add(w)?)?;
    let mut buf = [0u8; 8];
    buf.get_mut(..w)?.copy_from_slice(b);
    usize::try_from(u64::from_le_bytes(buf)).ok()
}

fn align_up(off: usize, align: usize) -> Option<usize> {
    off.checked_add(align.checked_sub(1)?)?
        .checked_div(align)?
        .checked_mul(align)
}

fn fixed<const N: usize>(data: &[u8], ty: &Type) -> Result<[u8; N], DecodeError> {
    data.try_into()
        .map_err(|_| invalid(ty, "wrong size for fixed-size value"))
}

fn decode_string(data: &[u8], ty: &Type) -> Result<String, DecodeError> {
    let Some((&0, body)) = data.split_last() else {
        return Err(invalid(ty, "string is not NUL-terminated"));
    };
    if body.contains(&0) {
        return Err(invalid(ty, "string contains NUL"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| invalid(ty, "string is not UTF-8"))
}

pub(super) fn decode(data: &[u8], ty: &Type, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    let deeper = depth.saturating_add(1);
    Ok(match ty {
        Type::Bool => match fixed::<1>(data, ty)? {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(invalid(ty, "boolean is not 0 or 1")),
        },
        Type::Byte => Value::Byte(fixed::<1>(data, ty)?[0]),
        Type::I16 => Value::I16(i16::from_le_bytes(fixed(data, ty)?)),
        Type::U16 => Value::U16(u16::from_le_bytes(fixed(data, ty)?)),
        Type::I32 => Value::I32(i32::from_le_bytes(fixed(data, ty)?)),
        Type::Handle => Value::Handle(i32::from_le_bytes(fixed(data, ty)?)),
        Type::U32 => Value::U32(u32::from_le_bytes(fixed(data, ty)?)),
        Type::I64 => Value::I64(i64::from_le_bytes(fixed(data, ty)?)),
        Type::U64 => Value::U64(u64::from_le_bytes(fixed(data, ty)?)),
        Type::Double => Value::Double(f64::from_bits(u64::from_le_bytes(fixed(data, ty)?))),
        Type::Str => Value::Str(decode_string(data, ty)?),
        Type::ObjectPath => Value::ObjectPath(decode_string(data, ty)?),
        Type::Signature => Value::Signature(decode_string(data, ty)?),
        Type::Variant => {
            let sep = data
                .iter()
                .rposition(|&b| b == 0)
                .ok_or_else(|| invalid(ty, "variant has no type separator"))?;
            let (child, tystr) = data.split_at(sep);
            let tystr = tystr.get(1..).unwrap_or_default();
            let tystr =
                std::str::from_utf8(tystr).map_err(|_| invalid(ty, "variant type is not ASCII"))?;
            let child_ty = Type::parse(tystr)?;
            Value::Variant(Box::new(decode(child, &child_ty, deeper)?))
        }
        Type::Array(elem) => decode_array(data, ty, elem, deeper)?,
        Type::Maybe(elem) => {
            let child = match (data.is_empty(), elem.fixed_size()) {
                (true, _) => None,
                (false, Some(size)) if data.len() == size => Some(data),
                (false, Some(_)) => return Err(invalid(ty, "maybe of the wrong size")),
                (false, None) => data.split_last().map(|(_, body)| body),
            };
            let just = match child {
                Some(c) => Some(Box::new(decode(c, elem, deeper)?)),
                None => None,
            };
            Value::Maybe((**elem).clone(), just)
        }
        Type::Tuple(members) => {
            if members.is_empty() {
                if data != [0] {
                    return Err(invalid(ty, "unit tuple is not one zero byte"));
                }
                return Ok(Value::Tuple(Vec::new()));
            }
            Value::Tuple(decode_members(data, ty, members, deeper)?)
        }
        Type::DictEntry(k, v) => {
            let members = [(**k).clone(), (**v).clone()];
            let mut m = decode_members(data, ty, &members, deeper)?.into_iter();
            match (m.next(), m.next()) {
                (Some(k), Some(v)) => Value::DictEntry(Box::new(k), Box::new(v)),
                _ => return Err(invalid(ty, "dict entry")),
            }
        }
    })
}

fn decode_array(data: &[u8], ty: &Type, elem: &Type, depth: usize) -> Result<Value, DecodeError> {
    if *elem == Type::Byte {
        return Ok(Value::Bytes(data.to_vec()));
    }
    let align = elem.alignment();
    let mut items = Vec::new();
    if let Some(size) = elem.fixed_size() {
        if !data.len().is_multiple_of(size) {
            return Err(invalid(
                ty,
                "array length is not a multiple of the element size",
            ));
        }
        for chunk in data.chunks_exact(size) {
            items.push(decode(chunk, elem, depth)?);
        }
        return Ok(Value::Array(elem.clone(), items));
    }
    if data.is_empty() {
        return Ok(Value::Array(elem.clone(), items));
    }
    let w = offset_width(data.len());
    let last_start = data
        .len()
        .checked_sub(w)
        .ok_or_else(|| invalid(ty, "array too short"))?;
    let offsets_start =
        read_le(data, last_start, w).ok_or_else(|| invalid(ty, "bad framing offset"))?;
    if offsets_start > last_start {
        return Err(invalid(ty, "framing offset out of range"));
    }
    let table = data
        .get(offsets_start..)
        .ok_or_else(|| invalid(ty, "framing offset out of range"))?;
    if w == 0 || !table.len().is_multiple_of(w) {
        return Err(invalid(ty, "framing offsets do not fill the table"));
    }
    let mut pos = 0usize;
    for i in 0..table.len().checked_div(w).unwrap_or(0) {
        let end = read_le(table, i.saturating_mul(w), w)
            .ok_or_else(|| invalid(ty, "bad framing offset"))?;
        let start = align_up(pos, align).ok_or_else(|| invalid(ty, "offset overflow"))?;
        if start > end || end > offsets_start {
            return Err(invalid(ty, "array element out of range"));
        }
        let bytes = data
            .get(start..end)
            .ok_or_else(|| invalid(ty, "array element out of range"))?;
        items.push(decode(bytes, elem, depth)?);
        pos = end;
    }
    Ok(Value::Array(elem.clone(), items))
}

fn decode_members(
    data: &[u8],
    ty: &Type,
    members: &[Type],
    depth: usize,
) -> Result<Vec<Value>, DecodeError> {
    let w = offset_width(data.len());
    let mut out = Vec::with_capacity(members.len());
    let mut pos = 0usize;
    // Framing offsets are read from the end of the container, one per non-last variable member.
    let mut offsets_used = 0usize;
    let n = members.len();
    for (i, m) in members.iter().enumerate() {
        let start = align_up(pos, m.alignment()).ok_or_else(|| invalid(ty, "offset overflow"))?;
        let end = if let Some(size) = m.fixed_size() {
            start
                .checked_add(size)
                .ok_or_else(|| invalid(ty, "offset overflow"))?
        } else if i.saturating_add(1) == n {
            let table = offsets_used
                .checked_mul(w)
                .ok_or_else(|| invalid(ty, "offset overflow"))?;
            data.len()
                .checked_sub(table)
                .ok_or_else(|| invalid(ty, "tuple too short"))?
        } else {
            offsets_used = offsets_used.saturating_add(1);
            let at = offsets_used
                .checked_mul(w)
                .and_then(|t| data.len().checked_sub(t))
                .ok_or_else(|| invalid(ty, "tuple too short for its framing offsets"))?;
            read_le(data, at, w).ok_or_else(|| invalid(ty, "bad framing offset"))?
        };
        let table_start = offsets_used
            .checked_mul(w)
            .and_then(|t| data.len().checked_sub(t))
            .ok_or_else(|| invalid(ty, "tuple too short"))?;
        if start > end || end > table_start {
            return Err(invalid(ty, "tuple member out of range"));
        }
        let bytes = data
            .get(start..end)
            .ok_or_else(|| invalid(ty, "tuple member out of range"))?;
        out.push(decode(bytes, m, depth)?);
        pos = end;
    }
    if let Some(size) = ty.fixed_size() {
        if data.len() != size {
            return Err(invalid(ty, "wrong size for fixed-size tuple"));
        }
    }
    Ok(out)
}
