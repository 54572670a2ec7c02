//! GVariant text format → [`Value`], as GLib's `g_variant_parse (NULL, text, …)` reads it:
//! what `ostree summary --add-metadata` and `commit --add-metadata` accept, with GLib's
//! type inference and its error texts (`0-3:unknown keyword`, `3:expected value`, …), which
//! ostree prints after its own prefix.
//!
//! The algorithm is GLib's (`gvariant-parser.c`): a tokenizer, a recursive parser building a
//! tree of nodes that remember their source range, a *pattern* per node (a type string
//! with wildcards: `N` any number, `S` any string type, `*` anything, `M` "maybe or not")
//! merged across array elements and dictionary keys, resolved to a definite type (numbers
//! default to `int32`, strings to `s`), and finally the value built against that type.
//! Maybe types (`just`, `nothing`, `@mi …`) as GLib: a value asked for as a maybe type
//! that is not written as one is just that value (`@mi 5` is just 5).

use oxtree::gvariant::{Type, Value};

/// GLib's `G_VARIANT_MAX_RECURSION_DEPTH`.
const MAX_DEPTH: usize = 128;

/// A source range (byte offsets), as GLib's `SourceRef`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
}

/// An error in GLib's format: `START[-END][,START2[-END2]]:message`.
fn error_at(at: Range, other: Option<Range>, msg: impl std::fmt::Display) -> String {
    let mut s = at.start.to_string();
    if at.end != at.start {
        s.push_str(&format!("-{}", at.end));
    }
    if let Some(o) = other {
        s.push_str(&format!(",{}", o.start));
        if o.end != o.start {
            s.push_str(&format!("-{}", o.end));
        }
    }
    format!("{s}:{msg}")
}

struct Tokens<'a> {
    src: &'a [u8],
    /// Where the next token starts (after the current one, once prepared).
    pos: usize,
    /// The current token, once prepared: `this..pos`.
    this: Option<usize>,
}

impl<'a> Tokens<'a> {
    fn byte(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    /// `token_stream_prepare`: find the current token; false at the end of the input.
    fn prepare(&mut self) -> bool {
        if let Some(t) = self.this {
            return self.pos > t;
        }
        while self.pos < self.src.len() && self.byte(self.pos).is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= self.src.len() || self.byte(start) == 0 {
            self.this = Some(start);
            return false;
        }
        let c = self.byte(start);
        let len = self.src.len();
        let mut end;
        let quoted = |from: usize, quote: u8| {
            let mut e = from;
            while e < len {
                let b = self.byte(e);
                if b == quote || b == 0 {
                    break;
                }
                if b == b'\\' {
                    e += 1;
                    if e >= len || self.byte(e) == 0 {
                        break;
                    }
                }
                e += 1;
            }
            if e < len && self.byte(e) != 0 {
                e += 1;
            }
            e.min(len)
        };
        match c {
            b'-' | b'+' | b'.' | b'0'..=b'9' => {
                end = start;
                while end < len {
                    let b = self.byte(end);
                    if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'+' || b == b'.') {
                        break;
                    }
                    end += 1;
                }
            }
            b'b' if matches!(self.byte(start + 1), b'\'' | b'"') && start + 1 < len => {
                end = quoted(start + 2, self.byte(start + 1));
            }
            b'a'..=b'z' => {
                end = start;
                while end < len && self.byte(end).is_ascii_alphanumeric() {
                    end += 1;
                }
            }
            b'\'' | b'"' => end = quoted(start + 1, c),
            b'@' | b'%' => {
                // Up to a space, comma, colon, '>' or ']', or an unmatched ')' / '}'.
                let mut brackets = 0i32;
                end = start + 1;
                while end < len {
                    let b = self.byte(end);
                    if b == 0 || b == b',' || b == b':' || b == b'>' || b == b']' {
                        break;
                    }
                    if b.is_ascii_whitespace() {
                        break;
                    }
                    if b == b'(' || b == b'{' {
                        brackets += 1;
                    } else if b == b')' || b == b'}' {
                        if brackets == 0 {
                            break;
                        }
                        brackets -= 1;
                    }
                    end += 1;
                }
            }
            _ => end = start + 1,
        }
        self.this = Some(start);
        self.pos = end;
        true
    }

    fn token(&mut self) -> &'a [u8] {
        self.prepare();
        let t = self.this.unwrap_or(self.pos);
        self.src.get(t..self.pos).unwrap_or_default()
    }

    fn next(&mut self) {
        self.this = None;
    }

    fn peek(&mut self, c: u8) -> bool {
        self.prepare() && self.token().first() == Some(&c)
    }

    fn peek2(&mut self, a: u8, b: u8) -> bool {
        self.prepare() && self.token().get(..2) == Some(&[a, b][..])
    }

    fn peek_string(&mut self, s: &str) -> bool {
        self.prepare() && self.token() == s.as_bytes()
    }

    fn consume(&mut self, s: &str) -> bool {
        if self.peek_string(s) {
            self.next();
            true
        } else {
            false
        }
    }

    fn is_keyword(&mut self) -> bool {
        let t = self.token();
        t.len() >= 2 && t[0].is_ascii_alphabetic() && t[1].is_ascii_alphabetic()
    }

    fn is_numeric(&mut self) -> bool {
        self.prepare()
            && self
                .token()
                .first()
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.'))
    }

    /// The current token's range (`this_token`), or an empty range at its start.
    fn range(&mut self, this_token: bool) -> Range {
        self.prepare();
        let start = self.this.unwrap_or(self.pos);
        Range {
            start,
            end: if this_token { self.pos } else { start },
        }
    }

    fn error(&mut self, this_token: bool, msg: impl std::fmt::Display) -> String {
        let r = self.range(this_token);
        error_at(r, None, msg)
    }

    fn require(&mut self, token: &str, purpose: &str) -> Result<(), String> {
        if self.consume(token) {
            Ok(())
        } else {
            Err(self.error(false, format!("expected '{token}'{purpose}")))
        }
    }
}

#[derive(Debug)]
enum Kind {
    Array(Vec<Node>),
    Tuple(Vec<Node>),
    Variant(Box<Node>),
    /// Entries; `entry` for a single dictionary entry `{k, v}`.
    Dict {
        keys: Vec<Node>,
        values: Vec<Node>,
        entry: bool,
    },
    Bool(bool),
    Number(String),
    Str(String),
    ByteString(Vec<u8>),
    /// `just X` (`Some`) or `nothing`.
    Maybe(Option<Box<Node>>),
    /// `@TYPE X` or a type keyword (`uint64 7`).
    TypeDecl(String, Box<Node>),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    at: Range,
}

fn parse_node(t: &mut Tokens<'_>, depth: usize) -> Result<Node, String> {
    if depth == 0 {
        return Err(t.error(false, "variant nested too deeply"));
    }
    t.prepare();
    let start = t.range(false).start;
    let kind = if t.peek(b'[') {
        parse_array(t, depth)?
    } else if t.peek(b'(') {
        parse_tuple(t, depth)?
    } else if t.peek(b'<') {
        t.next();
        let v = parse_node(t, depth - 1)?;
        t.require(">", " to follow variant value")?;
        Kind::Variant(Box::new(v))
    } else if t.peek(b'{') {
        parse_dict(t, depth)?
    } else if t.consume("true") {
        Kind::Bool(true)
    } else if t.consume("false") {
        Kind::Bool(false)
    } else if t.is_numeric() || t.peek_string("inf") || t.peek_string("nan") {
        let tok = String::from_utf8_lossy(t.token()).into_owned();
        t.next();
        Kind::Number(tok)
    } else if t.peek(b'n') || t.peek(b'j') {
        if t.consume("just") {
            Kind::Maybe(Some(Box::new(parse_node(t, depth - 1)?)))
        } else if t.consume("nothing") {
            Kind::Maybe(None)
        } else {
            return Err(t.error(true, "unknown keyword"));
        }
    } else if t.peek(b'@') || t.is_keyword() {
        parse_typedecl(t, depth)?
    } else if t.peek(b'\'') || t.peek(b'"') {
        parse_string(t)?
    } else if t.peek2(b'b', b'\'') || t.peek2(b'b', b'"') {
        parse_bytestring(t)?
    } else {
        return Err(t.error(false, "expected value"));
    };
    Ok(Node {
        kind,
        at: Range { start, end: t.pos },
    })
}

fn parse_array(t: &mut Tokens<'_>, depth: usize) -> Result<Kind, String> {
    t.next(); // [
    let mut items = Vec::new();
    while !t.consume("]") {
        if !items.is_empty() {
            t.require(",", " or ']' to follow array element")?;
        }
        items.push(parse_node(t, depth - 1)?);
    }
    Ok(Kind::Array(items))
}

fn parse_tuple(t: &mut Tokens<'_>, depth: usize) -> Result<Kind, String> {
    t.next(); // (
    let mut items = Vec::new();
    let mut need_comma = false;
    while !t.consume(")") {
        if need_comma {
            t.require(",", " or ')' to follow tuple element")?;
        }
        items.push(parse_node(t, depth - 1)?);
        // A 1-tuple needs its comma: "(1,)".
        if items.len() == 1 {
            t.require(",", " after first tuple element")?;
        } else {
            need_comma = true;
        }
    }
    Ok(Kind::Tuple(items))
}

fn parse_dict(t: &mut Tokens<'_>, depth: usize) -> Result<Kind, String> {
    t.next(); // {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    if t.consume("}") {
        return Ok(Kind::Dict {
            keys,
            values,
            entry: false,
        });
    }
    keys.push(parse_node(t, depth - 1)?);
    let only_one = t.consume(",");
    if !only_one {
        t.require(":", " or ',' to follow dictionary entry key")?;
    }
    values.push(parse_node(t, depth - 1)?);
    if only_one {
        t.require("}", " at end of dictionary entry")?;
        return Ok(Kind::Dict {
            keys,
            values,
            entry: true,
        });
    }
    while !t.consume("}") {
        t.require(",", " or '}' to follow dictionary entry")?;
        keys.push(parse_node(t, depth - 1)?);
        t.require(":", " to follow dictionary entry key")?;
        values.push(parse_node(t, depth - 1)?);
    }
    Ok(Kind::Dict {
        keys,
        values,
        entry: false,
    })
}

fn parse_typedecl(t: &mut Tokens<'_>, depth: usize) -> Result<Kind, String> {
    let ty = if t.peek(b'@') {
        let tok = String::from_utf8_lossy(t.token()).into_owned();
        let ty = tok.get(1..).unwrap_or_default().to_string();
        if !type_string_is_valid(&ty) {
            return Err(t.error(true, "invalid type declaration"));
        }
        if ty.contains(['*', '?', 'r']) {
            return Err(t.error(true, "type declarations must be definite"));
        }
        t.next();
        ty
    } else {
        let keywords = [
            ("boolean", "b"),
            ("byte", "y"),
            ("int16", "n"),
            ("uint16", "q"),
            ("int32", "i"),
            ("uint32", "u"),
            ("handle", "h"),
            ("int64", "x"),
            ("uint64", "t"),
            ("double", "d"),
            ("string", "s"),
            ("objectpath", "o"),
            ("signature", "g"),
        ];
        let Some(ty) = keywords
            .iter()
            .find(|(k, _)| t.peek_string(k))
            .map(|(_, ty)| *ty)
        else {
            return Err(t.error(true, "unknown keyword"));
        };
        t.next();
        ty.to_string()
    };
    let value = parse_node(t, depth - 1)?;
    Ok(Kind::TypeDecl(ty, Box::new(value)))
}

/// `\uXXXX` / `\UXXXXXXXX` at `tok[*i]` (the `u`): the character, or GLib's error.
fn unicode_escape(tok: &[u8], i: &mut usize, n: usize, at: Range) -> Result<char, String> {
    *i += 1;
    let digits = tok.get(*i..).unwrap_or_default();
    let valid = digits
        .iter()
        .take(n)
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    let value = if valid == n {
        std::str::from_utf8(&digits[..n])
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    } else {
        0
    };
    match char::from_u32(value).filter(|_| value != 0) {
        Some(c) => {
            *i += n;
            Ok(c)
        }
        None => {
            let start = at.start + *i;
            Err(error_at(
                Range {
                    start,
                    end: start + valid,
                },
                None,
                format!("invalid {n}-character unicode escape"),
            ))
        }
    }
}

fn parse_string(t: &mut Tokens<'_>) -> Result<Kind, String> {
    let at = t.range(true);
    let tok = t.token();
    let quote = tok.first().copied().unwrap_or(b'\'');
    let unterminated = || error_at(at, None, "unterminated string constant");
    let mut out: Vec<u8> = Vec::new();
    let mut i = 1;
    loop {
        let c = tok.get(i).copied().unwrap_or(0);
        if c == quote {
            break;
        }
        match c {
            0 => return Err(unterminated()),
            b'\\' => {
                i += 1;
                let e = tok.get(i).copied().unwrap_or(0);
                let simple = match e {
                    0 => return Err(unterminated()),
                    b'u' | b'U' => {
                        let ch = unicode_escape(tok, &mut i, if e == b'u' { 4 } else { 8 }, at)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        continue;
                    }
                    b'a' => Some(7),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'v' => Some(11),
                    b'\n' => {
                        i += 1;
                        continue;
                    }
                    _ => None,
                };
                match simple {
                    Some(b) => {
                        out.push(b);
                        i += 1;
                    }
                    None => {
                        out.push(e);
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    t.next();
    Ok(Kind::Str(String::from_utf8_lossy(&out).into_owned()))
}

fn parse_bytestring(t: &mut Tokens<'_>) -> Result<Kind, String> {
    let at = t.range(true);
    let tok = t.token();
    let quote = tok.get(1).copied().unwrap_or(b'\'');
    let unterminated = || error_at(at, None, "unterminated string constant");
    let mut out: Vec<u8> = Vec::new();
    let mut i = 2;
    loop {
        let c = tok.get(i).copied().unwrap_or(0);
        if c == quote {
            break;
        }
        match c {
            0 => return Err(unterminated()),
            b'\\' => {
                i += 1;
                let e = tok.get(i).copied().unwrap_or(0);
                match e {
                    0 => return Err(unterminated()),
                    b'0'..=b'7' => {
                        // Up to three octal digits.
                        let mut val = e - b'0';
                        i += 1;
                        for _ in 0..2 {
                            match tok.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    val = (val << 3) | (d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(val);
                    }
                    b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' => {
                        out.push(match e {
                            b'a' => 7,
                            b'b' => 8,
                            b'f' => 12,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            _ => 11,
                        });
                        i += 1;
                    }
                    b'\n' => i += 1,
                    e => {
                        out.push(e);
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    t.next();
    // `g_variant_new_bytestring` stops at the first NUL, and adds one.
    if let Some(n) = out.iter().position(|&b| b == 0) {
        out.truncate(n);
    }
    out.push(0);
    Ok(Kind::ByteString(out))
}

/// `g_variant_type_string_is_valid` (one complete type, wildcards allowed).
fn type_string_is_valid(s: &str) -> bool {
    fn one(b: &[u8], i: &mut usize, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let Some(&c) = b.get(*i) else { return false };
        *i += 1;
        match c {
            b'b' | b'y' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o'
            | b'g' | b'v' | b'r' | b'*' | b'?' => true,
            b'a' | b'm' => one(b, i, depth + 1),
            b'(' => loop {
                match b.get(*i) {
                    Some(b')') => {
                        *i += 1;
                        break true;
                    }
                    Some(_) => {
                        if !one(b, i, depth + 1) {
                            break false;
                        }
                    }
                    None => break false,
                }
            },
            b'{' => {
                let basic = matches!(
                    b.get(*i),
                    Some(
                        b'b' | b'y'
                            | b'n'
                            | b'q'
                            | b'i'
                            | b'u'
                            | b'x'
                            | b't'
                            | b'h'
                            | b'd'
                            | b's'
                            | b'o'
                            | b'g'
                            | b'?'
                    )
                );
                if !basic {
                    return false;
                }
                *i += 1;
                if !one(b, i, depth + 1) {
                    return false;
                }
                if b.get(*i) != Some(&b'}') {
                    return false;
                }
                *i += 1;
                true
            }
            _ => false,
        }
    }
    let b = s.as_bytes();
    let mut i = 0;
    one(b, &mut i, 0) && i == b.len()
}

/// The length of the one complete pattern element at the start of `p` (prefixes `M`, `m`,
/// `a` included, brackets matched).
fn element_len(p: &[u8]) -> usize {
    let mut i = 0;
    let mut depth = 0i32;
    while let Some(&c) = p.get(i) {
        i += 1;
        match c {
            b'M' | b'm' | b'a' => continue,
            b'(' | b'{' => depth += 1,
            b')' | b'}' => depth -= 1,
            _ => {}
        }
        if depth <= 0 {
            break;
        }
    }
    i
}

/// GLib's `pattern_coalesce`: the most specific pattern both match, if any.
fn coalesce(left: &[u8], right: &[u8]) -> Option<Vec<u8>> {
    let (mut l, mut r) = (0usize, 0usize);
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    while l < left.len() && r < right.len() {
        let (a, b) = (left[l], right[r]);
        if a == b {
            out.push(a);
            l += 1;
            r += 1;
            continue;
        }
        // Try with left as "one", then with right as "one".
        let mut done = false;
        for swap in [false, true] {
            let (one, oi, other, ti) = if swap {
                (right, &mut r, left, &mut l)
            } else {
                (left, &mut l, right, &mut r)
            };
            let (x, y) = (one[*oi], other[*ti]);
            if x == b'*' && y != b')' {
                let n = element_len(&other[*ti..]);
                out.extend_from_slice(&other[*ti..*ti + n]);
                *ti += n;
                *oi += 1;
            } else if x == b'M' && y == b'm' {
                out.push(b'm');
                *ti += 1;
                *oi += 1;
            } else if x == b'M' && y != b'm' && y != b'*' {
                *oi += 1;
            } else if (x == b'N' && b"ynqiuxthd".contains(&y)) || (x == b'S' && b"sog".contains(&y))
            {
                out.push(y);
                *ti += 1;
                *oi += 1;
            } else {
                continue;
            }
            done = true;
            break;
        }
        if !done {
            return None;
        }
    }
    (l == left.len() && r == right.len()).then_some(out)
}

fn array_pattern(items: &[Node]) -> Result<Vec<u8>, String> {
    let Some(first) = items.first() else {
        return Ok(b"*".to_vec());
    };
    let mut pattern = pattern_of(first)?;
    for (i, item) in items.iter().enumerate().skip(1) {
        let p = pattern_of(item)?;
        match coalesce(&pattern, &p) {
            Some(m) => pattern = m,
            None => {
                // Name the first earlier element that does not go with this one.
                let culprit = items[..i]
                    .iter()
                    .find(|e| {
                        pattern_of(e)
                            .ok()
                            .is_none_or(|q| coalesce(&p, &q).is_none())
                    })
                    .map(|e| e.at);
                return Err(match culprit {
                    Some(c) => error_at(c, Some(item.at), "unable to find a common type"),
                    None => error_at(item.at, None, "unable to find a common type"),
                });
            }
        }
    }
    Ok(pattern)
}

fn pattern_of(n: &Node) -> Result<Vec<u8>, String> {
    Ok(match &n.kind {
        Kind::Array(items) if items.is_empty() => b"Ma*".to_vec(),
        Kind::Array(items) => [b"Ma".to_vec(), array_pattern(items)?].concat(),
        Kind::Tuple(items) => {
            let mut p = b"M(".to_vec();
            for i in items {
                p.extend(pattern_of(i)?);
            }
            p.push(b')');
            p
        }
        Kind::Variant(_) => b"Mv".to_vec(),
        Kind::Dict { keys, .. } if keys.is_empty() => b"Ma{**}".to_vec(),
        Kind::Dict {
            keys,
            values,
            entry,
        } => {
            let kp = array_pattern(keys)?;
            let key_char = if kp.first() == Some(&b'M') {
                kp.get(1)
            } else {
                kp.first()
            }
            .copied()
            .unwrap_or(b'*');
            if !b"bynqiuxthdsogNS".contains(&key_char) {
                return Err(error_at(
                    n.at,
                    None,
                    "dictionary keys must have basic types",
                ));
            }
            let vp = match values.first() {
                Some(v) => pattern_of(v)?,
                None => b"*".to_vec(),
            };
            let mut p = if *entry {
                b"M{".to_vec()
            } else {
                b"Ma{".to_vec()
            };
            p.push(key_char);
            p.extend(vp);
            p.push(b'}');
            p
        }
        Kind::Bool(_) => b"Mb".to_vec(),
        Kind::Number(tok) => {
            let float = tok.contains('.')
                || (!tok.starts_with("0x") && tok.contains('e'))
                || tok.contains("inf")
                || tok.contains("nan");
            if float {
                b"Md".to_vec()
            } else {
                b"MN".to_vec()
            }
        }
        Kind::Str(_) => b"MS".to_vec(),
        Kind::ByteString(_) => b"May".to_vec(),
        Kind::Maybe(None) => b"m*".to_vec(),
        Kind::Maybe(Some(c)) => [b"m".to_vec(), pattern_of(c)?].concat(),
        Kind::TypeDecl(ty, _) => ty.as_bytes().to_vec(),
    })
}

fn type_error(n: &Node, ty: &str) -> String {
    error_at(n.at, None, format!("can not parse as value of type '{ty}'"))
}

/// The complete type at the start of `ty` and what follows it.
fn split_type(ty: &str) -> (&str, &str) {
    let n = element_len(ty.as_bytes()).min(ty.len());
    ty.split_at(n)
}

/// The value of `n` as type `ty` (a definite type string).
fn value_of(n: &Node, ty: &str) -> Result<Value, String> {
    // A typed declaration only annotates its child.
    if let Kind::TypeDecl(_, child) = &n.kind {
        return value_of(child, ty);
    }
    // GLib's `maybe_get_value`, and its `maybe_wrapper` for any other node: a maybe type
    // asked of a value that is no `just`/`nothing` makes it just that value.
    if let Some(elem) = ty.strip_prefix('m') {
        let et = Type::parse(elem).map_err(|_| type_error(n, ty))?;
        let just = match &n.kind {
            Kind::Maybe(None) => None,
            Kind::Maybe(Some(child)) => Some(Box::new(value_of(child, elem)?)),
            _ => Some(Box::new(value_of(n, elem)?)),
        };
        return Ok(Value::Maybe(et, just));
    }
    let first = ty.as_bytes().first().copied().unwrap_or(0);
    match &n.kind {
        Kind::Array(items) => {
            let Some(elem) = ty.strip_prefix('a') else {
                return Err(type_error(n, ty));
            };
            let values = items
                .iter()
                .map(|i| value_of(i, elem))
                .collect::<Result<Vec<_>, _>>()?;
            array_value(elem, values).ok_or_else(|| type_error(n, ty))
        }
        Kind::Tuple(items) => {
            let Some(mut rest) = ty.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
                return Err(type_error(n, ty));
            };
            let mut out = Vec::new();
            for i in items {
                if rest.is_empty() {
                    return Err(type_error(n, ty));
                }
                let (t, r) = split_type(rest);
                out.push(value_of(i, t)?);
                rest = r;
            }
            if !rest.is_empty() {
                return Err(type_error(n, ty));
            }
            Ok(Value::Tuple(out))
        }
        Kind::Variant(child) => {
            if ty != "v" {
                return Err(type_error(n, ty));
            }
            Ok(Value::Variant(Box::new(resolve(child)?)))
        }
        Kind::Dict {
            keys,
            values,
            entry,
        } => {
            let inner = if *entry {
                ty.strip_prefix('{')
            } else {
                ty.strip_prefix("a{")
            }
            .and_then(|r| r.strip_suffix('}'));
            let Some(inner) = inner else {
                return Err(type_error(n, ty));
            };
            let (kt, vt) = split_type(inner);
            let mut entries = Vec::new();
            for (k, v) in keys.iter().zip(values) {
                entries.push(Value::DictEntry(
                    Box::new(value_of(k, kt)?),
                    Box::new(value_of(v, vt)?),
                ));
            }
            if *entry {
                return entries.pop().ok_or_else(|| type_error(n, ty));
            }
            let et = Type::parse(&format!("{{{inner}}}")).map_err(|_| type_error(n, ty))?;
            Ok(Value::Array(et, entries))
        }
        Kind::Bool(b) if ty == "b" => Ok(Value::Bool(*b)),
        Kind::Bool(_) => Err(type_error(n, ty)),
        Kind::Number(tok) => number_value(n, tok, first, ty),
        Kind::Str(s) => match first {
            b's' if ty == "s" => Ok(Value::Str(s.clone())),
            b'o' if ty == "o" => {
                if is_object_path(s) {
                    Ok(Value::ObjectPath(s.clone()))
                } else {
                    Err(error_at(n.at, None, "not a valid object path"))
                }
            }
            b'g' if ty == "g" => {
                if is_signature(s) {
                    Ok(Value::Signature(s.clone()))
                } else {
                    Err(error_at(n.at, None, "not a valid signature"))
                }
            }
            _ => Err(type_error(n, ty)),
        },
        Kind::ByteString(b) if ty == "ay" => Ok(Value::Bytes(b.clone())),
        Kind::ByteString(_) => Err(type_error(n, ty)),
        Kind::Maybe(_) => Err(type_error(n, ty)),
        Kind::TypeDecl(..) => Err(type_error(n, ty)),
    }
}

/// An array of `elem` values: `ay` is a byte string, everything else a typed array.
fn array_value(elem: &str, values: Vec<Value>) -> Option<Value> {
    if elem == "y" {
        let bytes = values
            .into_iter()
            .map(|v| match v {
                Value::Byte(b) => Some(b),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?;
        return Some(Value::Bytes(bytes));
    }
    Some(Value::Array(Type::parse(elem).ok()?, values))
}

/// C's `strtoull (s, &end, 0)`: optional sign, then hex (`0x`), octal (leading `0`) or
/// decimal digits. Returns (value, bytes used, overflowed); a `-` negates (wrapping, as C).
fn strtoull(s: &[u8]) -> (u64, usize, bool) {
    let mut i = 0;
    let mut neg = false;
    if let Some(&c @ (b'+' | b'-')) = s.first() {
        neg = c == b'-';
        i = 1;
    }
    let (radix, digits_at) = match (s.get(i), s.get(i + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) if s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit()) => {
            (16, i + 2)
        }
        (Some(b'0'), _) => (8, i),
        _ => (10, i),
    };
    let mut v: u64 = 0;
    let mut overflow = false;
    let mut j = digits_at;
    while let Some(d) = s.get(j).and_then(|c| (*c as char).to_digit(radix)) {
        match v
            .checked_mul(radix as u64)
            .and_then(|x| x.checked_add(d as u64))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        j += 1;
    }
    if j == digits_at {
        return (0, 0, false); // no digits: nothing parsed
    }
    if overflow {
        return (u64::MAX, j, true);
    }
    (if neg { v.wrapping_neg() } else { v }, j, false)
}

/// `g_ascii_strtod`: the longest prefix that reads as a double.
fn strtod(s: &str) -> (f64, usize) {
    let lower = s.to_ascii_lowercase();
    for special in ["infinity", "inf", "nan"] {
        for sign in ["", "+", "-"] {
            let w = format!("{sign}{special}");
            if lower.starts_with(&w) {
                let v = if special == "nan" {
                    f64::NAN
                } else if sign == "-" {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
                return (v, w.len());
            }
        }
    }
    let mut best = (0.0, 0);
    for end in 1..=s.len() {
        if let Some(v) = s.get(..end).and_then(|p| p.parse::<f64>().ok()) {
            // Rust accepts forms C does not ("1e" no, but "inf"-like handled above).
            best = (v, end);
        }
    }
    best
}

fn number_value(n: &Node, tok: &str, first: u8, ty: &str) -> Result<Value, String> {
    let invalid_at = |used: usize| {
        let start = n.at.start + used;
        error_at(
            Range {
                start,
                end: start + 1,
            },
            None,
            "invalid character in number",
        )
    };
    if ty == "d" {
        let (v, used) = strtod(tok);
        if used != tok.len() {
            return Err(invalid_at(used));
        }
        if v.is_infinite() && !tok.to_ascii_lowercase().contains("inf") {
            return Err(error_at(n.at, None, "number too big for any type"));
        }
        return Ok(Value::Double(v));
    }
    let bytes = tok.as_bytes();
    let negative = bytes.first() == Some(&b'-');
    let digits = if negative { &bytes[1..] } else { bytes };
    let (abs, used, overflow) = strtoull(digits);
    if overflow {
        return Err(error_at(n.at, None, "integer too big for any type"));
    }
    let used = used + usize::from(negative);
    if used != bytes.len() {
        return Err(invalid_at(used));
    }
    let negative = negative && abs != 0;
    let out_of_range = || {
        error_at(
            n.at,
            None,
            format!("number out of range for type '{}'", first as char),
        )
    };
    // Signed: |min| is one more than max.
    let signed = |max: u64| -> Result<i64, String> {
        if abs.saturating_sub(u64::from(negative)) > max {
            return Err(out_of_range());
        }
        Ok(if negative {
            (abs as i128).wrapping_neg() as i64
        } else {
            abs as i64
        })
    };
    let unsigned = |max: u64| -> Result<u64, String> {
        if negative || abs > max {
            return Err(out_of_range());
        }
        Ok(abs)
    };
    Ok(match ty {
        "y" => Value::Byte(unsigned(u8::MAX as u64)? as u8),
        "n" => Value::I16(signed(i16::MAX as u64)? as i16),
        "q" => Value::U16(unsigned(u16::MAX as u64)? as u16),
        "i" => Value::I32(signed(i32::MAX as u64)? as i32),
        "u" => Value::U32(unsigned(u32::MAX as u64)? as u32),
        "x" => Value::I64(signed(i64::MAX as u64)?),
        "t" => Value::U64(unsigned(u64::MAX)?),
        "h" => Value::Handle(signed(i32::MAX as u64)? as i32),
        _ => return Err(type_error(n, ty)),
    })
}

fn is_object_path(s: &str) -> bool {
    if s == "/" {
        return true;
    }
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split('/')
            .all(|e| !e.is_empty() && e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
}

fn is_signature(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let n = element_len(&b[i..]);
        let Some(t) = s.get(i..i + n) else {
            return false;
        };
        if !type_string_is_valid(t) || t.contains(['*', '?', 'r']) {
            return false;
        }
        i += n;
    }
    true
}

/// GLib's `ast_resolve`: the node's pattern made definite, then its value.
fn resolve(n: &Node) -> Result<Value, String> {
    let pattern = pattern_of(n)?;
    let mut ty = String::with_capacity(pattern.len());
    for c in pattern {
        match c {
            b'*' => return Err(error_at(n.at, None, "unable to infer type")),
            b'M' => {}
            b'S' => ty.push('s'),
            b'N' => ty.push('i'),
            c => ty.push(c as char),
        }
    }
    value_of(n, &ty)
}

/// Parse GVariant text as `g_variant_parse (NULL, text, NULL, NULL, &error)`; the error is
/// GLib's message (`POSITION:text`).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut t = Tokens {
        src: text.as_bytes(),
        pos: 0,
        this: None,
    };
    let node = parse_node(&mut t, MAX_DEPTH)?;
    let value = resolve(&node)?;
    // The position right after the last token read.
    let mut end = t.pos;
    while end < text.len() && text.as_bytes()[end].is_ascii_whitespace() {
        end += 1;
    }
    if end < text.len() && text.as_bytes()[end] != 0 {
        return Err(error_at(
            Range { start: end, end },
            None,
            "expected end of input",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maybe types, each through GLib 2.74 (`GLib.Variant.parse`, `print_(True)`,
    /// `get_data_as_bytes`): the printed text, the type and the serialised bytes.
    #[test]
    fn maybes_as_glib() {
        for (text, printed, ty, hex) in [
            ("just 5", "@mi 5", "mi", "05000000"),
            ("@mi 5", "@mi 5", "mi", "05000000"),
            ("@ms nothing", "@ms nothing", "ms", ""),
            (
                "[just 'a', nothing]",
                "[@ms 'a', nothing]",
                "ams",
                "6100000303",
            ),
            ("@mmi nothing", "@mmi nothing", "mmi", ""),
            ("@mmi just nothing", "@mmi just nothing", "mmi", "00"),
            ("@mmi 5", "@mmi 5", "mmi", "0500000000"),
            ("just just 5", "@mmi 5", "mmi", "0500000000"),
            ("@mas []", "@mas []", "mas", "00"),
            (
                "just (1, 'x')",
                "@m(is) (1, 'x')",
                "m(is)",
                "01000000780000",
            ),
            (
                "{'a': just 1}",
                "{'a': @mi 1}",
                "a{smi}",
                "61000000010000000209",
            ),
            ("@maay [[1]]", "@maay [[0x01]]", "maay", "010100"),
            ("[@mi 1, 2]", "[@mi 1, 2]", "ami", "01000000020000000408"),
            ("just <5>", "@mv <5>", "mv", "05000000006900"),
            ("@mb true", "@mb true", "mb", "01"),
            ("just b'x'", "@may b'x'", "may", "780000"),
            ("just ''", "@ms ''", "ms", "0000"),
            ("@m(ii) (1,2)", "@m(ii) (1, 2)", "m(ii)", "0100000002000000"),
            (
                "[@ms 'a', nothing, 'b']",
                "[@ms 'a', nothing, 'b']",
                "ams",
                "610000620000030306",
            ),
        ] {
            let v = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(crate::gvtext::print(&v), printed, "{text}");
            assert_eq!(v.ty().to_string(), ty, "{text}");
            let bytes = oxtree::gvariant::encode(&v);
            let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text}");
            // And back: GLib's bytes decode, in normal form, to the same value.
            let back = oxtree::gvariant::decode_normal(&bytes, &v.ty()).expect("decode");
            assert_eq!(back, v, "{text}");
        }
    }

    /// Every case was run through GLib 2.74's `g_variant_parse` and `g_variant_print`.
    #[test]
    fn as_glib_parses() {
        let ok = |text: &str, printed: &str| {
            let v = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(crate::gvtext::print(&v), printed, "{text}");
        };
        ok("'bar'", "'bar'");
        ok("42", "42");
        ok("(1,)", "(1,)");
        ok("[1, 2.5]", "[1.0, 2.5]");
        ok("uint64 5", "uint64 5");
        ok("{'a': 1}", "{'a': 1}");
        ok("{'a', 1}", "{'a', 1}");
        ok("<1>", "<1>");
        ok("0x10", "16");
        ok("010", "8");
        ok("-5", "-5");
        ok("1e3", "1000.0");
        ok("b'abc'", "b'abc'");
        ok("'a\\n'", "'a\\n'");
        ok("@ay []", "@ay []");
        ok("@as ['a']", "['a']");
        ok("[@s 'a', 'b']", "['a', 'b']");
        ok("objectpath '/a'", "objectpath '/a'");
        ok("signature 'as'", "signature 'as'");
        ok("{1: 'a', 2: 'b'}", "{1: 'a', 2: 'b'}");
        ok("[(1, 'a'), (2, 'b')]", "[(1, 'a'), (2, 'b')]");
        ok("inf", "inf");
        ok("-inf", "-inf");
        ok("1.5e10", "15000000000.0");
        ok(".5", "0.5");
        ok("+3", "3");
        ok("int64 -9223372036854775808", "int64 -9223372036854775808");
        ok(
            "('a', [1, 2], {'k': <true>})",
            "('a', [1, 2], {'k': <true>})",
        );
        ok("[[1], [2.5]]", "[[1.0], [2.5]]");
        ok("[b'a', [byte 1]]", "[b'a', [0x01]]");
        ok("\"dq\"", "'dq'");
        ok("[[], [1]]", "[@ai [], [1]]");
        ok("[<1>, <'a'>]", "[<1>, <'a'>]");
        ok("'\\u00e9'", "'é'");
        ok("'\\x41'", "'x41'");
        ok("b'\\101\\0x'", "b'A'");
        ok("0x1e", "30");
        ok("@a{sv} {}", "@a{sv} {}");
        ok("[{}, {'a': 1}]", "[@a{si} {}, {'a': 1}]");
        ok("[1, 2, 3.0]", "[1.0, 2.0, 3.0]");
        ok("@(ii) (1, 2)", "(1, 2)");
        ok("int16 -32768", "int16 -32768");
        ok("handle 5", "handle 5");
        ok("double 5", "5.0");
        ok("  5  ", "5");
        ok("b\"q\"", "b'q'");
        ok("'a\\\nb'", "'ab'");
        ok("{'a': <1>, 'b': <'x'>}", "{'a': <1>, 'b': <'x'>}");
        ok("()", "()");
    }

    #[test]
    fn errors_are_glibs() {
        let err = |text: &str, msg: &str| {
            assert_eq!(parse(text), Err(msg.to_string()), "{text}");
        };
        err("bar", "0-3:unknown keyword");
        err("(1)", "2:expected ',' after first tuple element");
        err("[]", "0-2:unable to infer type");
        err("@s x", "3:expected value");
        err("[1,", "3:expected value");
        err("byte 300", "5-8:number out of range for type 'y'");
        err("[1,]", "3:expected value");
        err("{}", "0-2:unable to infer type");
        err("[1, 'a']", "1-2,4-7:unable to find a common type");
        err("true false", "5:expected end of input");
        err("int32 3000000000", "6-16:number out of range for type 'i'");
        err("uint32 -1", "7-9:number out of range for type 'u'");
        err("'unterminated", "0-13:unterminated string constant");
        err("[1, 2", "5:expected ',' or ']' to follow array element");
        err("@i", "2:expected value");
        err("[b'a', 'b']", "1-5,7-10:unable to find a common type");
        err("FOO", "0:expected value");
        err("'it''s'", "4:expected end of input");
        err("{'a': 1, 'b': 2.5}", "15-16:invalid character in number");
        err("@s 5", "3-4:can not parse as value of type 's'");
        err("[1, []]", "1-2,4-6:unable to find a common type");
        err("n", "0-1:unknown keyword");
        err("null", "0-4:unknown keyword");
        err("just", "4:expected value");
        err("trueish", "0-7:unknown keyword");
        err("{<1>: 2}", "0-8:dictionary keys must have basic types");
        err("{[1]: 2}", "0-8:dictionary keys must have basic types");
        err("(1, 2", "5:expected ',' or ')' to follow tuple element");
        err("<1", "2:expected '>' to follow variant value");
        err(
            "{'a' 1}",
            "5:expected ':' or ',' to follow dictionary entry key",
        );
        err(
            "{'a': 1 'b': 2}",
            "8:expected ',' or '}' to follow dictionary entry",
        );
        err("{'a', 1, 2}", "7:expected '}' at end of dictionary entry");
        err("'\\u00zz'", "3-5:invalid 4-character unicode escape");
        err("--3", "0-3:number out of range for type 'i'");
        err("1.2.3", "3-4:invalid character in number");
        err("99999999999999999999", "0-20:integer too big for any type");
        err("@r (1,)", "0-2:type declarations must be definite");
        err("('a' 'b')", "5:expected ',' after first tuple element");
        err("uint16 65536", "7-12:number out of range for type 'q'");
        err("byte 'a'", "5-8:can not parse as value of type 'y'");
        err("'a' 'b'", "4:expected end of input");
        err("", "0:expected value");
        err("@ ", "0-1:invalid type declaration");
        err("'\\'", "0-3:unterminated string constant");
        err("(1, 'a', )", "9:expected value");
        err("(,)", "1:expected value");
        err("<>", "1:expected value");
        err("<1 2>", "3:expected '>' to follow variant value");
        err("[1 2]", "3:expected ',' or ']' to follow array element");
        err("objectpath 'bad'", "11-16:not a valid object path");
        err("signature 'z'", "10-13:not a valid signature");
        err("nothing", "0-7:unable to infer type");
        err("just []", "0-7:unable to infer type");
        err("(just 1, nothing)", "0-17:unable to infer type");
        // Deep nesting is an error, not a stack overflow.
        let deep = "[".repeat(200);
        assert!(parse(&deep).is_err_and(|e| e.contains("nested too deeply")));
    }
}
