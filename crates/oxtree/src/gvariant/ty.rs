//! GVariant type strings: parsing, alignment and fixed sizes.

use super::DecodeError;
use std::fmt;

/// A GVariant type. No OSTree format uses maybe types, but commit and summary metadata may
/// hold them (`--add-metadata=KEY='just 5'`), so they are read and written as GLib does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Byte,
    I16,
    U16,
    I32,
    U32,
    Handle,
    I64,
    U64,
    Double,
    Str,
    ObjectPath,
    Signature,
    Variant,
    Array(Box<Type>),
    /// `mT`: nothing, or just a `T`.
    Maybe(Box<Type>),
    Tuple(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    /// Parse a complete type string such as `(a{sv}aya(say)sstayay)`.
    pub fn parse(s: &str) -> Result<Type, DecodeError> {
        let bytes = s.as_bytes();
        let (t, used) = parse_one(bytes, 0)?;
        if used != bytes.len() {
            return Err(DecodeError::BadType(s.to_string()));
        }
        Ok(t)
    }

    /// Parse a type string known at compile time. Panics on a bad literal (a programming
    /// error, never input-dependent).
    #[allow(clippy::expect_used)]
    pub fn of(s: &'static str) -> Type {
        Type::parse(s).expect("static GVariant type string is valid")
    }

    pub fn alignment(&self) -> usize {
        match self {
            Type::Bool | Type::Byte | Type::Str | Type::ObjectPath | Type::Signature => 1,
            Type::I16 | Type::U16 => 2,
            Type::I32 | Type::U32 | Type::Handle => 4,
            Type::I64 | Type::U64 | Type::Double | Type::Variant => 8,
            Type::Array(e) | Type::Maybe(e) => e.alignment(),
            Type::Tuple(m) => m.iter().map(Type::alignment).max().unwrap_or(1),
            Type::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// Size in bytes if every value of this type has the same size.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Type::Bool | Type::Byte => Some(1),
            Type::I16 | Type::U16 => Some(2),
            Type::I32 | Type::U32 | Type::Handle => Some(4),
            Type::I64 | Type::U64 | Type::Double => Some(8),
            Type::Str
            | Type::ObjectPath
            | Type::Signature
            | Type::Variant
            | Type::Array(_)
            | Type::Maybe(_) => None,
            Type::Tuple(m) => fixed_members(m.iter(), self.alignment()),
            Type::DictEntry(k, v) => fixed_members([&**k, &**v].into_iter(), self.alignment()),
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self {
            Type::Bool => "b",
            Type::Byte => "y",
            Type::I16 => "n",
            Type::U16 => "q",
            Type::I32 => "i",
            Type::U32 => "u",
            Type::Handle => "h",
            Type::I64 => "x",
            Type::U64 => "t",
            Type::Double => "d",
            Type::Str => "s",
            Type::ObjectPath => "o",
            Type::Signature => "g",
            Type::Variant => "v",
            Type::Array(e) => {
                f.write_str("a")?;
                return e.write(f);
            }
            Type::Maybe(e) => {
                f.write_str("m")?;
                return e.write(f);
            }
            Type::Tuple(m) => {
                f.write_str("(")?;
                for t in m {
                    t.write(f)?;
                }
                return f.write_str(")");
            }
            Type::DictEntry(k, v) => {
                f.write_str("{")?;
                k.write(f)?;
                v.write(f)?;
                return f.write_str("}");
            }
        };
        f.write_str(c)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

/// A tuple is fixed-size when all members are; its size is the aligned end of the last member
/// rounded up to the tuple's alignment. `()` is 1 byte.
fn fixed_members<'a>(members: impl Iterator<Item = &'a Type>, align: usize) -> Option<usize> {
    let mut off = 0usize;
    let mut any = false;
    for m in members {
        any = true;
        let a = m.alignment();
        off = off.checked_add(a - 1)? / a * a;
        off = off.checked_add(m.fixed_size()?)?;
    }
    if !any {
        return Some(1);
    }
    Some(off.checked_add(align - 1)? / align * align)
}

/// Longest type string we parse (GLib allows 255 nesting levels; OSTree needs a handful).
const MAX_TYPE_DEPTH: usize = 32;

fn parse_one(s: &[u8], depth: usize) -> Result<(Type, usize), DecodeError> {
    let bad = || DecodeError::BadType(String::from_utf8_lossy(s).into_owned());
    if depth > MAX_TYPE_DEPTH {
        return Err(bad());
    }
    let (&c, rest) = s.split_first().ok_or_else(bad)?;
    let basic = |t: Type| Ok((t, 1));
    match c {
        b'b' => basic(Type::Bool),
        b'y' => basic(Type::Byte),
        b'n' => basic(Type::I16),
        b'q' => basic(Type::U16),
        b'i' => basic(Type::I32),
        b'u' => basic(Type::U32),
        b'h' => basic(Type::Handle),
        b'x' => basic(Type::I64),
        b't' => basic(Type::U64),
        b'd' => basic(Type::Double),
        b's' => basic(Type::Str),
        b'o' => basic(Type::ObjectPath),
        b'g' => basic(Type::Signature),
        b'v' => basic(Type::Variant),
        b'a' => {
            let (e, n) = parse_one(rest, depth + 1)?;
            Ok((Type::Array(Box::new(e)), n + 1))
        }
        b'm' => {
            let (e, n) = parse_one(rest, depth + 1)?;
            Ok((Type::Maybe(Box::new(e)), n + 1))
        }
        b'(' => {
            let mut members = Vec::new();
            let mut pos = 0usize;
            loop {
                match rest.get(pos) {
                    None => return Err(bad()),
                    Some(b')') => return Ok((Type::Tuple(members), pos + 2)),
                    Some(_) => {
                        let (t, n) = parse_one(rest.get(pos..).ok_or_else(bad)?, depth + 1)?;
                        members.push(t);
                        pos += n;
                    }
                }
            }
        }
        b'{' => {
            let (k, n1) = parse_one(rest, depth + 1)?;
            if !matches!(
                k,
                Type::Bool
                    | Type::Byte
                    | Type::I16
                    | Type::U16
                    | Type::I32
                    | Type::U32
                    | Type::Handle
                    | Type::I64
                    | Type::U64
                    | Type::Double
                    | Type::Str
                    | Type::ObjectPath
                    | Type::Signature
            ) {
                return Err(bad());
            }
            let (v, n2) = parse_one(rest.get(n1..).ok_or_else(bad)?, depth + 1)?;
            if rest.get(n1 + n2) != Some(&b'}') {
                return Err(bad());
            }
            Ok((Type::DictEntry(Box::new(k), Box::new(v)), n1 + n2 + 2))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_roundtrip() {
        for s in [
            "(a{sv}aya(say)sstayay)",
            "(uuua(ayay))",
            "(tuuuusa(ayay))",
            "a{sv}",
            "()",
            "v",
            "mi",
            "a{sms}",
            "(mmaymv)",
        ] {
            assert_eq!(Type::parse(s).map(|t| t.to_string()), Ok(s.to_string()));
        }
    }

    #[test]
    fn rejects_bad_types() {
        for s in ["", "(", "a", "{vs}", "(u", "z", "ss", "{sss}", "m", "{msv}"] {
            assert!(Type::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(Type::of("(uuu)").fixed_size(), Some(12));
        assert_eq!(Type::of("(ty)").fixed_size(), Some(16));
        assert_eq!(Type::of("()").fixed_size(), Some(1));
        assert_eq!(Type::of("(say)").fixed_size(), None);
        assert_eq!(Type::of("(yt)").alignment(), 8);
        assert_eq!(Type::of("mt").alignment(), 8);
        assert_eq!(Type::of("mi").fixed_size(), None);
        assert_eq!(Type::of("(mi)").fixed_size(), None);
    }
}
