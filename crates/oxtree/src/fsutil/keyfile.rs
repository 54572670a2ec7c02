//! GLib's keyfile format (`config`, `.origin`, remotes): `[group]` headers and `key=value`
//! lines. Hand-rolled so that comments, blank lines and key order round-trip unchanged, the
//! way GLib rewrites a file it loaded (users edit these files by hand).

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// Comment or blank line, kept verbatim.
    Other(String),
    Entry {
        key: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyFile {
    /// Lines before the first group (comments only).
    head: Vec<String>,
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct KeyFileError {
    pub line: usize,
    pub msg: String,
}

impl KeyFile {
    pub fn new() -> KeyFile {
        KeyFile::default()
    }

    pub fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        let mut kf = KeyFile::default();
        // Split on '\n' only: a '\r' is kept as content (and written back verbatim), so a
        // file round-trips byte for byte.
        let text = text.strip_suffix('\n').unwrap_or(text);
        for (i, raw) in text
            .split('\n')
            .enumerate()
            .filter(|(_, l)| !text.is_empty() || !l.is_empty())
        {
            // GLib's g_strchug: a line of ASCII whitespace (\r included) is blank.
            let line = raw.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let err = |msg: &str| KeyFileError {
                line: i + 1,
                msg: msg.to_string(),
            };
            if line.is_empty() || line.starts_with('#') {
                match kf.groups.last_mut() {
                    Some(g) => g.lines.push(Line::Other(raw.to_string())),
                    None => kf.head.push(raw.to_string()),
                }
            } else if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .trim_end()
                    .strip_suffix(']')
                    .ok_or_else(|| err("unterminated group header"))?;
                if name.is_empty() || name.contains(['[', ']']) {
                    return Err(err("invalid group name"));
                }
                kf.groups.push(Group {
                    name: name.to_string(),
                    lines: Vec::new(),
                });
            } else if let Some((k, v)) = line.split_once('=') {
                let g = kf
                    .groups
                    .last_mut()
                    .ok_or_else(|| err("key outside any group"))?;
                let key = k.trim_end_matches([' ', '\t']);
                if key.is_empty() {
                    return Err(err("empty key"));
                }
                // GLib strips only ASCII space and tab around `=`; a value that really starts
                // with a space is written as `\s`.
                g.lines.push(Line::Entry {
                    key: key.to_string(),
                    value: unescape(v.trim_start_matches([' ', '\t'])),
                });
            } else {
                return Err(err("expected `key=value`, `[group]` or a comment"));
            }
        }
        Ok(kf)
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.group(name).is_some()
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// Keys of a group in file order.
    pub fn keys(&self, group: &str) -> Vec<&str> {
        self.group(group)
            .map(|g| {
                g.lines
                    .iter()
                    .filter_map(|l| {
                        if let Line::Entry { key, .. } = l {
                            Some(key.as_str())
                        } else {
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last value of `key` in `group` (GLib lets later duplicates win).
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.group(group)?.lines.iter().rev().find_map(|l| match l {
            Line::Entry { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// A boolean as GLib reads it (`true`/`false`, also `1`/`0`); `None` if absent or invalid.
    pub fn get_bool(&self, group: &str, key: &str) -> Option<bool> {
        match self.get(group, key)?.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// A `;`-separated list (the trailing `;` is optional).
    pub fn get_list(&self, group: &str, key: &str) -> Option<Vec<String>> {
        let v = self.get(group, key)?;
        Some(
            v.split(';')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Add an empty group at the end (nothing when it exists), as GLib adds one.
    pub fn add_group(&mut self, group: &str) {
        if !self.has_group(group) {
            // GLib separates a new group from the previous one with a blank line.
            if let Some(last) = self.groups.last_mut() {
                if !matches!(last.lines.last(), Some(Line::Other(s)) if s.trim().is_empty()) {
                    last.lines.push(Line::Other(String::new()));
                }
            }
            self.groups.push(Group {
                name: group.to_string(),
                lines: Vec::new(),
            });
        }
    }

    pub fn set(&mut self, group: &str, key: &str, value: &str) {
        self.add_group(group);
        let Some(g) = self.groups.iter_mut().find(|g| g.name == group) else {
            return;
        };
        for l in g.lines.iter_mut().rev() {
            if let Line::Entry { key: k, value: v } = l {
                if k == key {
                    *v = value.to_string();
                    return;
                }
            }
        }
        // Insert after the last entry so trailing blank lines stay between groups.
        let pos = g
            .lines
            .iter()
            .rposition(|l| matches!(l, Line::Entry { .. }))
            .map_or(0, |p| p + 1);
        g.lines.insert(
            pos,
            Line::Entry {
                key: key.to_string(),
                value: value.to_string(),
            },
        );
    }

    pub fn set_list(&mut self, group: &str, key: &str, values: &[String]) {
        let mut s = String::new();
        for v in values {
            s.push_str(v);
            s.push(';');
        }
        self.set(group, key, &s);
    }

    pub fn remove_key(&mut self, group: &str, key: &str) -> bool {
        let Some(g) = self.groups.iter_mut().find(|g| g.name == group) else {
            return false;
        };
        let before = g.lines.len();
        g.lines
            .retain(|l| !matches!(l, Line::Entry { key: k, .. } if k == key));
        before != g.lines.len()
    }

    pub fn remove_group(&mut self, group: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.name != group);
        // The blank line that separated the removed group from the one before it ends the
        // file if that was the last group: GLib writes no blank line there.
        if let Some(last) = self.groups.last_mut() {
            while matches!(last.lines.last(), Some(Line::Other(s)) if s.trim().is_empty()) {
                last.lines.pop();
            }
        }
        before != self.groups.len()
    }
}

impl KeyFile {
    /// The file as GLib's `g_key_file_to_data` writes one it loaded without
    /// `G_KEY_FILE_KEEP_COMMENTS` (how ostree rewrites a repository's config): groups and
    /// their entries only, one blank line between groups, comments and other blank lines
    /// gone.
    pub fn to_glib_data(&self) -> String {
        let mut s = String::new();
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let _ = writeln!(s, "[{}]", g.name);
            for l in &g.lines {
                if let Line::Entry { key, value } = l {
                    let _ = writeln!(s, "{key}={}", escape(value));
                }
            }
        }
        s
    }
}

impl std::fmt::Display for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        for l in &self.head {
            let _ = writeln!(s, "{l}");
        }
        for g in &self.groups {
            let _ = writeln!(s, "[{}]", g.name);
            for l in &g.lines {
                match l {
                    Line::Other(t) => {
                        let _ = writeln!(s, "{t}");
                    }
                    Line::Entry { key, value } => {
                        let _ = writeln!(s, "{key}={}", escape(value));
                    }
                }
            }
        }
        f.write_str(&s)
    }
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            ' ' | '\t' if i == 0 => out.push_str(if c == ' ' { "\\s" } else { "\\t" }),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_preserves_comments_and_order() {
        let text = "# top\n[core]\nrepo_version=1\nmode=archive-z2\n\n# remote\n[remote \"o\"]\nurl=http://x/\nbranches=a;b;\n";
        let kf = KeyFile::parse(text).expect("parses");
        assert_eq!(kf.to_string(), text);
        assert_eq!(kf.get("core", "mode"), Some("archive-z2"));
        assert_eq!(
            kf.get_list("remote \"o\"", "branches"),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn set_appends_group_with_blank_line() {
        let mut kf = KeyFile::parse("[core]\nrepo_version=1\n").expect("parses");
        kf.set("remote \"r\"", "url", "http://h/");
        kf.set("core", "mode", "bare");
        assert_eq!(
            kf.to_string(),
            "[core]\nrepo_version=1\nmode=bare\n\n[remote \"r\"]\nurl=http://h/\n"
        );
        assert!(kf.remove_group("remote \"r\""));
    }

    #[test]
    fn odd_bytes_round_trip() {
        for text in ["\n\r\n", "[g]\n# c\r\nk=\u{a0}x\n"] {
            let kf = KeyFile::parse(text).expect("parses");
            assert_eq!(kf.to_string(), text);
        }
        let kf = KeyFile::parse("[g]\nk=v\r\n").expect("parses");
        assert_eq!(
            KeyFile::parse(&kf.to_string())
                .expect("parses")
                .get("g", "k"),
            Some("v\r")
        );
        let mut kf = KeyFile::new();
        kf.set("g", "k", " \u{2003}lead");
        let back = KeyFile::parse(&kf.to_string()).expect("parses");
        assert_eq!(back.get("g", "k"), Some(" \u{2003}lead"));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            KeyFile::parse("[a]\nnot a pair\n").map_err(|e| e.line),
            Err(2)
        );
        assert!(KeyFile::parse("k=v\n").is_err());
    }
}
