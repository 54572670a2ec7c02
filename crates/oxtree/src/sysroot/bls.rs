//! Boot Loader Specification entries (`boot/loader.N/entries/*.conf`): `key value` lines,
//! kept in order so entries round-trip (spec §8.2).

/// One BLS entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlsEntry {
    pub lines: Vec<(String, String)>,
}

impl BlsEntry {
    pub fn parse(text: &str) -> BlsEntry {
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.split_once(char::is_whitespace) {
                Some((k, v)) => (k.to_string(), v.trim().to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect();
        BlsEntry { lines }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The kernel argument `name=VALUE` from `options`.
    pub fn karg(&self, name: &str) -> Option<&str> {
        self.get("options")?
            .split_whitespace()
            .find_map(|a| a.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    }

    /// Set `key` to `value`. An entry is one `key value` per line, so a control character
    /// (a newline above all) in a value would start a line of the attacker's choosing
    /// (`options init=/bin/sh`): every control character becomes a space. Values that must
    /// not change (paths, kernel arguments) are validated before they get here; this is the
    /// last line of defence, and what makes free text (the title) safe.
    pub fn set(&mut self, key: &str, value: &str) {
        let value = one_line(value);
        let key = one_line(key).replace(' ', "_");
        match self.lines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.lines.push((key, value)),
        }
    }
}

impl std::fmt::Display for BlsEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in &self.lines {
            writeln!(f, "{k} {v}")?;
        }
        Ok(())
    }
}

/// `s` with every control character replaced by a space.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Boot counting in an entry file stem: `name+LEFT` or `name+LEFT-DONE` → (LEFT, DONE).
pub fn parse_tries(stem: &str) -> Option<(u32, u32)> {
    let (_, counter) = stem.rsplit_once('+')?;
    match counter.split_once('-') {
        Some((l, d)) => Some((l.parse().ok()?, d.parse().ok()?)),
        None => Some((counter.parse().ok()?, 0)),
    }
}

/// The file-name suffix for a boot counter.
pub fn tries_suffix(tries: Option<(u32, u32)>) -> String {
    match tries {
        None => String::new(),
        Some((left, 0)) => format!("+{left}"),
        Some((left, done)) => format!("+{left}-{done}"),
    }
}

/// `strverscmp`-style comparison for BLS `version` values: digit runs compare numerically.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let strip = |d: &[u8]| -> usize { d.iter().take_while(|c| **c == b'0').count() };
                let (tx, ty) = (&dx[strip(dx)..], &dy[strip(dy)..]);
                let o = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let text = "title TestOS 42 1.0 (ostree:0)\nversion 1\noptions root=LABEL=root ostree=/ostree/boot.1/testos/abc/0\nlinux /ostree/testos-abc/vmlinuz-6.1.0\n";
        let e = BlsEntry::parse(text);
        assert_eq!(e.get("version"), Some("1"));
        assert_eq!(e.karg("ostree"), Some("/ostree/boot.1/testos/abc/0"));
        assert_eq!(e.karg("root"), Some("LABEL=root"));
        assert_eq!(e.to_string(), text);
        assert_eq!(version_cmp("10", "9"), std::cmp::Ordering::Greater);
        assert_eq!(version_cmp("2", "2"), std::cmp::Ordering::Equal);
    }

    #[test]
    fn values_cannot_add_lines() {
        let mut e = BlsEntry::default();
        e.set("title", "TestOS 1.0\noptions init=/bin/sh\r\x1b[2J");
        e.set("version", "1");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 2, "{text:?}");
        let back = BlsEntry::parse(&text);
        assert_eq!(back.get("options"), None);
        assert_eq!(
            back.get("title"),
            Some("TestOS 1.0 options init=/bin/sh  [2J")
        );
    }
}
