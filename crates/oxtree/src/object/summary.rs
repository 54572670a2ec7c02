//! The `summary` file: `(a(s(taya{sv}))a{sv})` — every branch with its commit size (in
//! *host* byte order, an OSTree quirk), checksum and metadata, then repository metadata
//! (spec §4.4). Also used as the index a pull reads first.

use super::{invalid, Checksum, ObjectError};
use crate::gvariant::{self, Type, Value};

pub const SUMMARY_TYPE: &str = "(a(s(taya{sv}))a{sv})";

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRef {
    pub name: String,
    /// Size of the commit object in bytes.
    pub commit_size: u64,
    pub checksum: Checksum,
    pub metadata: Vec<(String, Value)>,
}

impl SummaryRef {
    /// `ostree.commit.timestamp` (stored big-endian).
    pub fn timestamp(&self) -> Option<u64> {
        self.metadata
            .iter()
            .find(|(k, _)| k == "ostree.commit.timestamp")
            .and_then(|(_, v)| v.as_u64())
            .map(u64::from_be)
    }
    pub fn version(&self) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == "ostree.commit.version")
            .and_then(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Sorted by name.
    pub refs: Vec<SummaryRef>,
    pub metadata: Vec<(String, Value)>,
}

impl Summary {
    pub fn encode(&self) -> Vec<u8> {
        let refs = self
            .refs
            .iter()
            .map(|r| {
                Value::Tuple(vec![
                    Value::str(r.name.clone()),
                    Value::Tuple(vec![
                        Value::U64(r.commit_size),
                        Value::Bytes(r.checksum.0.to_vec()),
                        Value::dict_sv(r.metadata.clone()),
                    ]),
                ])
            })
            .collect();
        gvariant::encode(&Value::Tuple(vec![
            Value::Array(Type::of("(s(taya{sv}))"), refs),
            Value::dict_sv(self.metadata.clone()),
        ]))
    }

    /// Parse untrusted summary bytes (normal form required, refs validated).
    pub fn parse(data: &[u8]) -> Result<Summary, ObjectError> {
        let v = gvariant::decode_normal(data, &Type::of(SUMMARY_TYPE))?;
        let bad = || invalid("bad summary");
        let m = v.items().ok_or_else(bad)?;
        let mut out = Summary::default();
        for r in m.first().and_then(Value::items).ok_or_else(bad)? {
            let r = r.items().ok_or_else(bad)?;
            let name = r.first().and_then(Value::as_str).ok_or_else(bad)?;
            super::validate_ref(name).map_err(|e| invalid(format!("summary: {e}")))?;
            let inner = r.get(1).and_then(Value::items).ok_or_else(bad)?;
            out.refs.push(SummaryRef {
                name: name.to_string(),
                commit_size: inner.first().and_then(Value::as_u64).ok_or_else(bad)?,
                checksum: inner
                    .get(1)
                    .and_then(Value::as_bytes)
                    .and_then(Checksum::from_slice)
                    .ok_or_else(|| invalid("summary checksum is not 32 bytes"))?,
                metadata: inner
                    .get(2)
                    .and_then(Value::sv_entries)
                    .ok_or_else(bad)?
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            });
        }
        out.metadata = m
            .get(1)
            .and_then(Value::sv_entries)
            .ok_or_else(bad)?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Ok(out)
    }

    pub fn find(&self, name: &str) -> Option<&SummaryRef> {
        self.refs.iter().find(|r| r.name == name)
    }

    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}
