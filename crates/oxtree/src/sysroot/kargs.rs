//! Kernel arguments as ostree edits them (`OstreeKernelArgs`): an ordered list of `KEY` or
//! `KEY=VALUE` words where a key may repeat (`console=tty0 console=ttyS0`). `admin deploy
//! --karg/--karg-append/--karg-delete`, `kargs edit-in-place --append-if-missing` and
//! `instutil set-kargs` all go through these rules, so the same edit gives the same command
//! line with oxtree as with ostree:
//! - *replace* (`--karg`) sets the value of a key: the first occurrence takes the new value
//!   in its place and the other occurrences go; a new key is appended;
//! - *append* adds the word even when the key is there already;
//! - *append if missing* adds it only when the key is absent;
//! - *delete* by `KEY` only when the key has one value; `KEY=VALUE` removes that one.
//!
//! Keys compare with `-` and `_` as the same character, as the kernel does.

use crate::error::{Error, Result};

/// An ordered kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs {
    args: Vec<String>,
}

fn key(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

fn value(arg: &str) -> Option<&str> {
    arg.split_once('=').map(|(_, v)| v)
}

fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
}

impl KernelArgs {
    pub fn new() -> KernelArgs {
        KernelArgs::default()
    }

    /// Split a command line on spaces, keeping a double-quoted value (`a="b c"`) whole, as
    /// ostree does.
    pub fn parse(cmdline: &str) -> KernelArgs {
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in cmdline.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                c if c.is_ascii_whitespace() && !quoted => {
                    if !cur.is_empty() {
                        args.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            args.push(cur);
        }
        KernelArgs { args }
    }

    pub fn from_args<S: AsRef<str>>(args: &[S]) -> KernelArgs {
        let mut k = KernelArgs::new();
        for a in args {
            k.append(a.as_ref());
        }
        k
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn into_args(self) -> Vec<String> {
        self.args
    }

    pub fn contains_key(&self, k: &str) -> bool {
        self.args.iter().any(|a| same_key(key(a), k))
    }

    /// Add `arg` at the end (a key may repeat).
    pub fn append(&mut self, arg: &str) {
        // A word of its own: an embedded space would split it when the line is read back.
        self.args.extend(KernelArgs::parse(arg).args);
    }

    /// Add `arg` only when its key is not there yet.
    pub fn append_if_missing(&mut self, arg: &str) {
        if !self.contains_key(key(arg)) {
            self.append(arg);
        }
    }

    /// Set `arg`'s key to its value: in place of the key's first occurrence (which keeps its
    /// spelling of the key), dropping the others; appended when the key is new.
    pub fn replace(&mut self, arg: &str) {
        let k = key(arg);
        match self.args.iter().position(|a| same_key(key(a), k)) {
            Some(first) => {
                let old_key = key(&self.args[first]).to_string();
                let new = match value(arg) {
                    Some(v) => format!("{old_key}={v}"),
                    None => old_key,
                };
                let mut i = 0;
                self.args.retain(|a| {
                    let keep = i == first || !same_key(key(a), k);
                    i += 1;
                    keep
                });
                if let Some(slot) = self.args.get_mut(first) {
                    *slot = new;
                }
            }
            None => self.append(arg),
        }
    }

    /// Delete `arg` with ostree's rules and messages: `KEY` needs the key to have exactly
    /// one value; `KEY=VALUE` deletes that value.
    pub fn delete(&mut self, arg: &str) -> Result<()> {
        let (k, v) = (key(arg), value(arg));
        let found: Vec<usize> = (0..self.args.len())
            .filter(|&i| same_key(key(&self.args[i]), k))
            .collect();
        let idx = match found.as_slice() {
            [] => return Err(Error::InvalidArgument(format!("No key '{k}' found"))),
            [only] => {
                if v.is_some_and(|v| value(&self.args[*only]) != Some(v)) {
                    return Err(Error::InvalidArgument(format!(
                        "No karg '{k}={}' found",
                        v.unwrap_or_default()
                    )));
                }
                *only
            }
            // Several values: the one equal to what was given goes (a bare `KEY` matches
            // a bare `KEY`, as in ostree); a bare `KEY` among only `KEY=…` says too little.
            many => match many.iter().find(|&&i| value(&self.args[i]) == v) {
                Some(&i) => i,
                None if v.is_none() => {
                    return Err(Error::InvalidArgument(format!(
                        "Multiple values for key '{k}' found"
                    )))
                }
                None => return Err(Error::InvalidArgument(format!("No karg '{arg}' found"))),
            },
        };
        self.args.remove(idx);
        Ok(())
    }
}

impl std::fmt::Display for KernelArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_follow_ostree() {
        let mut k = KernelArgs::parse("root=LABEL=x quiet console=tty0 console=ttyS0");
        k.replace("console=hvc0");
        assert_eq!(k.to_string(), "root=LABEL=x quiet console=hvc0");
        k.replace("new=1");
        k.append("quiet");
        k.append_if_missing("quiet");
        k.append_if_missing("rd_luks=1");
        assert_eq!(
            k.to_string(),
            "root=LABEL=x quiet console=hvc0 new=1 quiet rd_luks=1"
        );
        // `-` and `_` are the same in keys; the old spelling stays.
        k.replace("rd-luks=2");
        assert!(k.to_string().ends_with("rd_luks=2"), "{k}");
        // Several values: a bare key names a bare one (the first), never a `KEY=…` one.
        k.append("console=ttyS0");
        assert_eq!(
            k.delete("console").expect_err("refused").to_string(),
            "Multiple values for key 'console' found"
        );
        k.delete("console=ttyS0").expect("that value");
        k.delete("quiet").expect("the first bare one");
        k.append("quiet");
        assert_eq!(
            k.delete("nope").expect_err("refused").to_string(),
            "No key 'nope' found"
        );
        assert_eq!(
            k.delete("new=2").expect_err("refused").to_string(),
            "No karg 'new=2' found"
        );
        k.delete("new").expect("one value");
        k.delete("root=LABEL=x").expect("that value");
        assert_eq!(k.to_string(), "console=hvc0 quiet rd_luks=2 quiet");
        let q = KernelArgs::parse(r#"a="b c" d"#);
        assert_eq!(q.args(), [r#"a="b c""#, "d"]);
    }
}
