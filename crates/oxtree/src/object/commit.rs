//! `commit` objects: `(a{sv}aya(say)sstayay)` — metadata, parent, related objects, subject,
//! body, timestamp (big-endian), root dirtree and root dirmeta checksums (spec §1.2).

use super::{invalid, Checksum, ObjectError};
use crate::gvariant::{self, Type, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// `a{sv}` entries in stored order; values are the unboxed inner values.
    pub metadata: Vec<(String, Value)>,
    pub parent: Option<Checksum>,
    pub related: Vec<(String, Checksum)>,
    pub subject: String,
    pub body: String,
    /// Seconds since the epoch.
    pub timestamp: u64,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
}

pub const COMMIT_TYPE: &str = "(a{sv}aya(say)sstayay)";

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        gvariant::encode(&Value::Tuple(vec![
            Value::dict_sv(self.metadata.clone()),
            Value::Bytes(self.parent.map(|p| p.0.to_vec()).unwrap_or_default()),
            Value::Array(
                Type::of("(say)"),
                self.related
                    .iter()
                    .map(|(n, c)| {
                        Value::Tuple(vec![Value::str(n.clone()), Value::Bytes(c.0.to_vec())])
                    })
                    .collect(),
            ),
            Value::str(self.subject.clone()),
            Value::str(self.body.clone()),
            Value::U64(self.timestamp.to_be()),
            Value::Bytes(self.root_tree.0.to_vec()),
            Value::Bytes(self.root_meta.0.to_vec()),
        ]))
    }

    pub fn checksum(&self) -> Checksum {
        Checksum::digest(&self.encode())
    }

    pub fn parse(data: &[u8]) -> Result<Commit, ObjectError> {
        let v = gvariant::decode_normal(data, &Type::of(COMMIT_TYPE))?;
        let m = v.items().ok_or_else(|| invalid("bad commit"))?;
        let bad = || invalid("bad commit");
        let csum = |v: Option<&Value>, what: &str| -> Result<Checksum, ObjectError> {
            v.and_then(Value::as_bytes)
                .and_then(Checksum::from_slice)
                .ok_or_else(|| invalid(format!("commit {what} checksum is not 32 bytes")))
        };
        let metadata = m
            .first()
            .and_then(Value::sv_entries)
            .ok_or_else(bad)?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>();
        if metadata.iter().any(|(k, _)| k.is_empty()) {
            return Err(invalid("commit metadata has an empty key"));
        }
        let parent_bytes = m.get(1).and_then(Value::as_bytes).ok_or_else(bad)?;
        let parent = if parent_bytes.is_empty() {
            None
        } else {
            Some(csum(m.get(1), "parent")?)
        };
        let mut related = Vec::new();
        for r in m.get(2).and_then(Value::items).ok_or_else(bad)? {
            let r = r.items().ok_or_else(bad)?;
            related.push((
                r.first()
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_string(),
                csum(r.get(1), "related")?,
            ));
        }
        Ok(Commit {
            metadata,
            parent,
            related,
            subject: m
                .get(3)
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
            body: m
                .get(4)
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
            timestamp: u64::from_be(m.get(5).and_then(Value::as_u64).ok_or_else(bad)?),
            root_tree: csum(m.get(6), "root dirtree")?,
            root_meta: csum(m.get(7), "root dirmeta")?,
        })
    }

    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `version` metadata, if a string.
    /// The `ostree.sizes` metadata (`--generate-sizes`): each object's stored (archived) and
    /// unpacked size. `Ok(None)` when the commit has none.
    pub fn object_sizes(&self) -> Result<Option<Vec<ObjectSize>>, ObjectError> {
        let Some(v) = self.meta("ostree.sizes") else {
            return Ok(None);
        };
        let items = v
            .items()
            .ok_or_else(|| invalid("ostree.sizes is not an array of byte strings"))?;
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let b = it
                .as_bytes()
                .ok_or_else(|| invalid("ostree.sizes entry is not a byte string"))?;
            let (csum, mut rest) = b
                .split_first_chunk::<32>()
                .ok_or_else(|| invalid("ostree.sizes entry shorter than a checksum"))?;
            let archived = read_varint(&mut rest)?;
            let unpacked = read_varint(&mut rest)?;
            // Older ostree wrote no object type (all entries were content objects).
            let ty = match rest.first() {
                Some(&t) => Some(
                    super::ObjectType::from_u8(t)
                        .ok_or_else(|| invalid("ostree.sizes entry has an unknown object type"))?,
                ),
                None => None,
            };
            out.push(ObjectSize {
                csum: Checksum(*csum),
                archived,
                unpacked,
                ty,
            });
        }
        Ok(Some(out))
    }

    pub fn version(&self) -> Option<&str> {
        self.meta("version").and_then(Value::as_str)
    }

    /// SHA-256(root dirtree ‖ root dirmeta): OSTree's "content checksum".
    pub fn content_checksum(&self) -> Checksum {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.root_tree.0);
        b.extend_from_slice(&self.root_meta.0);
        Checksum::digest(&b)
    }
}

/// One entry of `ostree.sizes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSize {
    pub csum: Checksum,
    /// Bytes as stored in an archive repo (compressed).
    pub archived: u64,
    pub unpacked: u64,
    pub ty: Option<super::ObjectType>,
}

fn read_varint(b: &mut &[u8]) -> Result<u64, ObjectError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b
            .split_first()
            .ok_or_else(|| invalid("ostree.sizes entry: truncated varint"))?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(invalid("ostree.sizes entry: varint too long"))
}
