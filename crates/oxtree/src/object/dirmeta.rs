//! `dirmeta` objects: a directory's uid, gid, mode and xattrs, `(uuua(ayay))` (spec §1.2).

use super::file::{parse_xattrs, xattrs_value, Xattrs};
use super::{invalid, Checksum, ObjectError};
use crate::gvariant::{self, Type, Value};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    /// Full `st_mode` (with `S_IFDIR`).
    pub mode: u32,
    pub xattrs: Xattrs,
}

impl DirMeta {
    pub fn encode(&self) -> Vec<u8> {
        gvariant::encode(&Value::Tuple(vec![
            Value::U32(self.uid.to_be()),
            Value::U32(self.gid.to_be()),
            Value::U32(self.mode.to_be()),
            xattrs_value(&self.xattrs),
        ]))
    }

    pub fn checksum(&self) -> Checksum {
        Checksum::digest(&self.encode())
    }

    /// Parse and validate: normal form, `S_ISDIR`, only permission/suid/sgid/sticky bits,
    /// sorted xattrs.
    pub fn parse(data: &[u8]) -> Result<DirMeta, ObjectError> {
        let v = gvariant::decode_normal(data, &Type::of("(uuua(ayay))"))?;
        let m = v.items().ok_or_else(|| invalid("bad dirmeta"))?;
        let u = |i: usize| {
            m.get(i)
                .and_then(Value::as_u32)
                .map(u32::from_be)
                .ok_or_else(|| invalid("bad dirmeta"))
        };
        let dm = DirMeta {
            uid: u(0)?,
            gid: u(1)?,
            mode: u(2)?,
            xattrs: parse_xattrs(m.get(3).ok_or_else(|| invalid("bad dirmeta"))?)?,
        };
        if dm.mode & 0o170000 != 0o040000 {
            return Err(invalid(format!(
                "dirmeta mode {:o} is not a directory",
                dm.mode
            )));
        }
        if dm.mode & !0o170000 & !0o7777 != 0 {
            return Err(invalid(format!(
                "dirmeta mode {:o} has invalid bits",
                dm.mode
            )));
        }
        Ok(dm)
    }
}
