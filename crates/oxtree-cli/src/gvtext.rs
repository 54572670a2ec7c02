//! GVariant text format: parsing `--add-metadata` values as GLib's `g_variant_parse` does
//! (`parse`), and printing values as `g_variant_print` does.

use oxtree::gvariant::{Type, Value};

mod parse;

pub use parse::parse;

/// Print a value as `g_variant_print (value, TRUE)` does, byte for byte: types annotated where
/// the text alone would not tell them (`uint64 7`, `byte 0x01`, `@as []`), the first element of
/// an array annotated and the rest not, NUL-terminated byte strings as `b'…'`.
pub fn print(v: &Value) -> String {
    let mut out = String::new();
    print_into(v, true, &mut out);
    out
}

/// `g_variant_print (value, FALSE)`: no annotation at the top level (a variant's child is
/// still annotated, as GLib does).
pub fn print_unannotated(v: &Value) -> String {
    let mut out = String::new();
    print_into(v, false, &mut out);
    out
}

fn print_into(v: &Value, annotate: bool, out: &mut String) {
    use std::fmt::Write;
    let num = |prefix: &str, n: &dyn std::fmt::Display, out: &mut String| {
        if annotate {
            out.push_str(prefix);
            out.push(' ');
        }
        let _ = write!(out, "{n}");
    };
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Byte(b) => {
            if annotate {
                out.push_str("byte ");
            }
            let _ = write!(out, "0x{b:02x}");
        }
        Value::I16(x) => num("int16", x, out),
        Value::U16(x) => num("uint16", x, out),
        // int32 is the default type of a number: never annotated.
        Value::I32(x) => {
            let _ = write!(out, "{x}");
        }
        Value::U32(x) => num("uint32", x, out),
        Value::Handle(x) => num("handle", x, out),
        Value::I64(x) => num("int64", x, out),
        Value::U64(x) => num("uint64", x, out),
        Value::Double(x) => out.push_str(&print_double(*x)),
        Value::Str(s) => print_str(s, out),
        Value::ObjectPath(s) => {
            if annotate {
                out.push_str("objectpath ");
            }
            print_str(s, out);
        }
        Value::Signature(s) => {
            if annotate {
                out.push_str("signature ");
            }
            print_str(s, out);
        }
        Value::Variant(b) => {
            out.push('<');
            print_into(b, true, out);
            out.push('>');
        }
        Value::Bytes(b) => {
            // A byte string: exactly one NUL, at the end.
            if b.iter().position(|&c| c == 0) == Some(b.len().wrapping_sub(1)) {
                let body = &b[..b.len() - 1];
                let q = if body.contains(&b'\'') { '"' } else { '\'' };
                out.push('b');
                out.push(q);
                out.push_str(&strescape(body));
                out.push(q);
                return;
            }
            if b.is_empty() {
                if annotate {
                    out.push_str("@ay ");
                }
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_into(&Value::Byte(*x), annotate && i == 0, out);
            }
            out.push(']');
        }
        Value::Array(t, items) => {
            let dict = matches!(t, Type::DictEntry(..));
            if items.is_empty() {
                if annotate {
                    let _ = write!(out, "@{} ", Type::Array(Box::new(t.clone())));
                }
                out.push_str(if dict { "{}" } else { "[]" });
                return;
            }
            out.push(if dict { '{' } else { '[' });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let ann = annotate && i == 0;
                match (dict, item) {
                    (true, Value::DictEntry(k, val)) => {
                        print_into(k, ann, out);
                        out.push_str(": ");
                        print_into(val, ann, out);
                    }
                    _ => print_into(item, ann, out),
                }
            }
            out.push(if dict { '}' } else { ']' });
        }
        Value::Maybe(elem, just) => {
            if annotate {
                let _ = write!(out, "@{} ", Type::Maybe(Box::new(elem.clone())));
            }
            // GLib leaves out `just` where the text is unambiguous without it: a chain of
            // justs down to a value prints as the value (unannotated); one that ends in a
            // nothing nested inside keeps the justs above it (`just nothing`).
            let mut depth = 1;
            let mut t = elem;
            while let Type::Maybe(e) = t {
                depth += 1;
                t = e;
            }
            let mut element = Some(v);
            let mut i = 0;
            if just.is_some() {
                while i < depth && element.is_some() {
                    element = match element {
                        Some(Value::Maybe(_, c)) => c.as_deref(),
                        _ => None,
                    };
                    i += 1;
                }
            } else {
                element = None;
            }
            match element {
                Some(e) => print_into(e, false, out),
                None => {
                    for _ in 1..i {
                        out.push_str("just ");
                    }
                    out.push_str("nothing");
                }
            }
        }
        Value::Tuple(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_into(item, annotate, out);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Value::DictEntry(k, val) => {
            out.push('{');
            print_into(k, annotate, out);
            out.push_str(", ");
            print_into(val, annotate, out);
            out.push('}');
        }
    }
}

/// A string in quotes: single, or double when it holds a single quote; the quote and `\`
/// escaped, unprintable characters as `\n`, `\uXXXX`, … (GLib's rules).
fn print_str(s: &str, out: &mut String) {
    use std::fmt::Write;
    let q = if s.contains('\'') { '"' } else { '\'' };
    out.push(q);
    for c in s.chars() {
        if c == q || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
            continue;
        }
        out.push('\\');
        match c {
            '\u{7}' => out.push('a'),
            '\u{8}' => out.push('b'),
            '\u{c}' => out.push('f'),
            '\n' => out.push('n'),
            '\r' => out.push('r'),
            '\t' => out.push('t'),
            '\u{b}' => out.push('v'),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "U{:08x}", c as u32);
            }
        }
    }
    out.push(q);
}

/// `g_strescape`: C escapes for `\b \f \n \r \t \v " \\`, octal for other control bytes and
/// bytes from 0x7f up.
fn strescape(b: &[u8]) -> String {
    let mut o = String::new();
    for &c in b {
        match c {
            8 => o.push_str("\\b"),
            12 => o.push_str("\\f"),
            b'\n' => o.push_str("\\n"),
            b'\r' => o.push_str("\\r"),
            b'\t' => o.push_str("\\t"),
            11 => o.push_str("\\v"),
            b'\\' => o.push_str("\\\\"),
            b'"' => o.push_str("\\\""),
            c if !(0x20..0x7f).contains(&c) => o.push_str(&format!("\\{c:03o}")),
            c => o.push(c as char),
        }
    }
    o
}

/// `g_ascii_dtostr`, which is C's `%.17g`, with `.0` added when the result would read as an
/// integer (as `g_variant_print`).
fn print_double(x: f64) -> String {
    let mut s = if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        let sci = format!("{x:.16e}");
        let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let trim = |m: &str| -> String {
            if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                m.to_string()
            }
        };
        if (-4..17).contains(&exp) {
            trim(&format!("{x:.*}", (16 - exp).max(0) as usize))
        } else {
            format!(
                "{}e{}{:02}",
                trim(mant),
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            )
        }
    };
    if !s.contains(['.', 'e', 'n', 'N']) {
        s.push_str(".0");
    }
    s
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

    #[test]
    fn prints_as_g_variant_print() {
        let v = |s: &str| print(&parse(s).expect(s));
        assert_eq!(print(&Value::U64(7)), "uint64 7");
        assert_eq!(print(&Value::Bytes(vec![1, 2])), "[byte 0x01, 0x02]");
        assert_eq!(print(&Value::Bytes(b"ab\0".to_vec())), "b'ab'");
        assert_eq!(print(&Value::Bytes(vec![])), "@ay []");
        assert_eq!(v("['a', 'b']"), "['a', 'b']");
        assert_eq!(print(&Value::str("it's")), "\"it's\"");
        assert_eq!(print(&Value::str("a\nb")), "'a\\nb'");
        assert_eq!(print(&Value::Double(1.0)), "1.0");
        assert_eq!(print(&Value::Double(0.1)), "0.10000000000000001");
        assert_eq!(print(&Value::Double(1e20)), "1e+20");
        assert_eq!(print(&Value::Tuple(vec![Value::U32(1)])), "(uint32 1,)");
        assert_eq!(
            print(&Value::dict_sv(vec![
                ("a".into(), Value::U64(1)),
                ("b".into(), Value::str("x")),
            ])),
            "{'a': <uint64 1>, 'b': <'x'>}"
        );
        assert_eq!(print(&Value::Array(Type::Str, vec![])), "@as []");
    }
}
