//! A small subset of GVariant text format, enough for `--add-metadata` values and for
//! printing metadata: strings ('…' or "…"), booleans, integers (int32 by default, or with a
//! type keyword such as `uint64 7`), doubles, byte strings (b'…') and arrays of strings.

use oxtree::gvariant::{Type, Value};

pub fn parse(s: &str) -> Result<Value, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "unsupported GVariant text {s:?} (use 'string', true/false, 42, uint64 42, ['a','b'])"
        )
    };
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items: Result<Vec<Value>, String> =
            split_list(inner).into_iter().map(|i| parse(&i)).collect();
        let items = items?;
        let ty = items.first().map(Value::ty).unwrap_or(Type::Str);
        if items.iter().any(|v| v.ty() != ty) {
            return Err(bad());
        }
        return Ok(Value::Array(ty, items));
    }
    if let Some(q) = quoted(s) {
        return Ok(Value::Str(q));
    }
    if let Some(q) = s.strip_prefix('b').and_then(quoted) {
        let mut b = q.into_bytes();
        b.push(0);
        return Ok(Value::Bytes(b));
    }
    match s {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some((kw, num)) = s.split_once(' ') {
        let num = num.trim();
        return Ok(match kw {
            "byte" => Value::Byte(num.parse().map_err(|_| bad())?),
            "int16" => Value::I16(num.parse().map_err(|_| bad())?),
            "uint16" => Value::U16(num.parse().map_err(|_| bad())?),
            "int32" => Value::I32(num.parse().map_err(|_| bad())?),
            "uint32" => Value::U32(num.parse().map_err(|_| bad())?),
            "int64" => Value::I64(num.parse().map_err(|_| bad())?),
            "uint64" => Value::U64(num.parse().map_err(|_| bad())?),
            "double" => Value::Double(num.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        });
    }
    if let Ok(i) = s.parse::<i32>() {
        return Ok(Value::I32(i));
    }
    if let Ok(d) = s.parse::<f64>() {
        return Ok(Value::Double(d));
    }
    Err(bad())
}

fn quoted(s: &str) -> Option<String> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            out.push(it.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn split_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q: Option<char> = None;
    for c in s.chars() {
        match (q, c) {
            (None, '\'' | '"') => {
                q = Some(c);
                cur.push(c);
            }
            (Some(qc), c) if c == qc => {
                q = None;
                cur.push(c);
            }
            (None, ',') => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Print a value roughly as `g_variant_print` does.
pub fn print(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => {
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        Value::Bool(b) => b.to_string(),
        Value::Byte(b) => format!("byte 0x{b:02x}"),
        Value::I16(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I32(x) | Value::Handle(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Variant(b) => format!("<{}>", print(b)),
        Value::Bytes(b) => format!(
            "[{}]",
            b.iter()
                .map(|x| format!("0x{x:02x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(_, items) => format!(
            "[{}]",
            items.iter().map(print).collect::<Vec<_>>().join(", ")
        ),
        Value::Tuple(m) => format!("({})", m.iter().map(print).collect::<Vec<_>>().join(", ")),
        Value::DictEntry(k, v) => format!("{{{}, {}}}", print(k), print(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("'v1'"), Ok(Value::str("v1")));
        assert_eq!(parse("true"), Ok(Value::Bool(true)));
        assert_eq!(parse("42"), Ok(Value::I32(42)));
        assert_eq!(parse("uint64 42"), Ok(Value::U64(42)));
        assert_eq!(
            parse("['a', 'b']"),
            Ok(Value::Array(
                Type::Str,
                vec![Value::str("a"), Value::str("b")]
            ))
        );
        assert!(parse("{").is_err());
    }
}
