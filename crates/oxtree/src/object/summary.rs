//! The `summary` file: `(a(s(taya{sv}))a{sv})` — every branch with its commit size (in
//! *host* byte order, an OSTree quirk), checksum and metadata, then repository metadata
//! (spec §4.4). Also used as the index a pull reads first. Refs of collections other than
//! the repository's own (`ostree.summary.collection-id`) are listed in the metadata under
//! `ostree.summary.collection-map` (`a{sa(s(taya{sv}))}`: per collection ID, refs in the
//! same form); a USB stick made by `create-usb` lists all its refs there.

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

/// The metadata key of the refs of other collections.
pub const COLLECTION_MAP_KEY: &str = "ostree.summary.collection-map";
/// The metadata key of the repository's own collection ID.
pub const COLLECTION_ID_KEY: &str = "ostree.summary.collection-id";

/// Refs as the summary lists them: `a(s(taya{sv}))`.
pub fn refs_value(refs: &[SummaryRef]) -> Value {
    let refs = refs
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
    Value::Array(Type::of("(s(taya{sv}))"), refs)
}

/// Parse (and validate) an `a(s(taya{sv}))` list of refs.
fn parse_refs(v: &Value) -> Result<Vec<SummaryRef>, ObjectError> {
    let bad = || invalid("bad summary");
    let mut out = Vec::new();
    for r in v.items().ok_or_else(bad)? {
        let r = r.items().ok_or_else(bad)?;
        let name = r.first().and_then(Value::as_str).ok_or_else(bad)?;
        super::validate_ref(name).map_err(|e| invalid(format!("summary: {e}")))?;
        let inner = r.get(1).and_then(Value::items).ok_or_else(bad)?;
        out.push(SummaryRef {
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
    Ok(out)
}

impl Summary {
    pub fn encode(&self) -> Vec<u8> {
        gvariant::encode(&Value::Tuple(vec![
            refs_value(&self.refs),
            Value::dict_sv(self.metadata.clone()),
        ]))
    }

    /// Parse untrusted summary bytes (normal form required, refs validated).
    pub fn parse(data: &[u8]) -> Result<Summary, ObjectError> {
        let v = gvariant::decode_normal(data, &Type::of(SUMMARY_TYPE))?;
        let bad = || invalid("bad summary");
        let m = v.items().ok_or_else(bad)?;
        let mut out = Summary {
            refs: parse_refs(m.first().ok_or_else(bad)?)?,
            ..Default::default()
        };
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

    /// The collection ID of the main refs list (`ostree.summary.collection-id`).
    pub fn collection_id(&self) -> Option<&str> {
        self.meta(COLLECTION_ID_KEY).and_then(Value::as_str)
    }

    /// The refs of other collections (`ostree.summary.collection-map`), by collection ID in
    /// stored order; empty if there is none. Refs and collection IDs are validated.
    pub fn collection_map(&self) -> Result<Vec<(String, Vec<SummaryRef>)>, ObjectError> {
        let Some(map) = self.meta(COLLECTION_MAP_KEY) else {
            return Ok(Vec::new());
        };
        let bad = || invalid("bad summary collection map");
        let mut out = Vec::new();
        for e in map.items().ok_or_else(bad)? {
            let Value::DictEntry(k, v) = e else {
                return Err(bad());
            };
            let cid = k.as_str().ok_or_else(bad)?;
            super::validate_collection_id(cid).map_err(|e| invalid(format!("summary: {e}")))?;
            out.push((cid.to_string(), parse_refs(v)?));
        }
        Ok(out)
    }

    /// The entry for `ref_name` in collection `collection_id`: from the main refs if that is
    /// the summary's own collection, else from the collection map.
    pub fn find_in_collection(
        &self,
        collection_id: &str,
        ref_name: &str,
    ) -> Result<Option<SummaryRef>, ObjectError> {
        if self.collection_id() == Some(collection_id) {
            return Ok(self.find(ref_name).cloned());
        }
        Ok(self
            .collection_map()?
            .into_iter()
            .find(|(c, _)| c == collection_id)
            .and_then(|(_, refs)| refs.into_iter().find(|r| r.name == ref_name)))
    }
}
