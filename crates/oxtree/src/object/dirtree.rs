//! `dirtree` objects: a directory listing, `(a(say)a(sayay))` — files as (name, content csum),
//! then subdirectories as (name, dirtree csum, dirmeta csum), each sorted by byte-wise strcmp.

use super::names::validate_filename;
use super::{invalid, Checksum, ObjectError};
use crate::gvariant::{self, Type, Value};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirTree {
    pub files: Vec<(String, Checksum)>,
    /// (name, dirtree checksum, dirmeta checksum)
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

impl DirTree {
    /// Serialise, sorting entries by name first (as OSTree's tree builder does).
    pub fn encode(&self) -> Vec<u8> {
        let mut files: Vec<&(String, Checksum)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut dirs: Vec<&(String, Checksum, Checksum)> = self.dirs.iter().collect();
        dirs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        gvariant::encode(&Value::Tuple(vec![
            Value::Array(
                Type::of("(say)"),
                files
                    .into_iter()
                    .map(|(n, c)| {
                        Value::Tuple(vec![Value::str(n.clone()), Value::Bytes(c.0.to_vec())])
                    })
                    .collect(),
            ),
            Value::Array(
                Type::of("(sayay)"),
                dirs.into_iter()
                    .map(|(n, t, m)| {
                        Value::Tuple(vec![
                            Value::str(n.clone()),
                            Value::Bytes(t.0.to_vec()),
                            Value::Bytes(m.0.to_vec()),
                        ])
                    })
                    .collect(),
            ),
        ]))
    }

    pub fn checksum(&self) -> Checksum {
        Checksum::digest(&self.encode())
    }

    /// Parse and validate untrusted bytes: normal form, 32-byte checksums, safe names
    /// (no `/`, `.`, `..`, empty), strictly sorted, and no name both a file and a directory.
    pub fn parse(data: &[u8]) -> Result<DirTree, ObjectError> {
        let v = gvariant::decode_normal(data, &Type::of("(a(say)a(sayay))"))?;
        let m = v.items().ok_or_else(|| invalid("bad dirtree"))?;
        let bad = || invalid("bad dirtree");
        let csum = |v: Option<&Value>| -> Result<Checksum, ObjectError> {
            v.and_then(Value::as_bytes)
                .and_then(Checksum::from_slice)
                .ok_or_else(|| invalid("dirtree checksum is not 32 bytes"))
        };
        let mut t = DirTree::default();
        for e in m.first().and_then(Value::items).ok_or_else(bad)? {
            let e = e.items().ok_or_else(bad)?;
            let name = e.first().and_then(Value::as_str).ok_or_else(bad)?;
            t.files.push((name.to_string(), csum(e.get(1))?));
        }
        for e in m.get(1).and_then(Value::items).ok_or_else(bad)? {
            let e = e.items().ok_or_else(bad)?;
            let name = e.first().and_then(Value::as_str).ok_or_else(bad)?;
            t.dirs
                .push((name.to_string(), csum(e.get(1))?, csum(e.get(2))?));
        }
        check_sorted(t.files.iter().map(|f| f.0.as_str()))?;
        check_sorted(t.dirs.iter().map(|d| d.0.as_str()))?;
        let mut all: Vec<&str> = t
            .files
            .iter()
            .map(|f| f.0.as_str())
            .chain(t.dirs.iter().map(|d| d.0.as_str()))
            .collect();
        all.sort_unstable();
        if all.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(invalid(
                "dirtree has a name that is both a file and a directory",
            ));
        }
        Ok(t)
    }
}

fn check_sorted<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ObjectError> {
    let mut prev: Option<&str> = None;
    for n in names {
        validate_filename(n).map_err(invalid)?;
        if let Some(p) = prev {
            if p.as_bytes() >= n.as_bytes() {
                return Err(invalid(format!(
                    "dirtree entries are not sorted or duplicated at {n:?}"
                )));
            }
        }
        prev = Some(n);
    }
    Ok(())
}
