//! The disk layout and its GPT: a protective MBR, the primary and backup GPT headers and
//! partition arrays, written with the `gpt` crate (see the parent module for why). Two
//! partitions, 1 MiB aligned: the ESP first, the root last so that it can grow into a
//! bigger disk (the backup GPT then moves to the new end, which `sfdisk`/`systemd-repart`
//! do, and `resize2fs` grows the filesystem online).

use crate::error::{Error, IoContext, Result};
use std::collections::BTreeMap;
use std::path::Path;

pub const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// Where everything goes, in bytes. The first MiB holds the MBR and the primary GPT, the
/// last MiB the backup GPT (33 sectors of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub esp_offset: u64,
    pub esp_size: u64,
    pub root_offset: u64,
    pub root_size: u64,
    pub total: u64,
}

impl Layout {
    /// Sizes are rounded down to whole MiB.
    pub fn new(esp_size: u64, root_size: u64) -> Layout {
        let esp_size = esp_size / MIB * MIB;
        let root_size = root_size / MIB * MIB;
        Layout {
            esp_offset: MIB,
            esp_size,
            root_offset: MIB + esp_size,
            root_size,
            total: MIB + esp_size + root_size + MIB,
        }
    }
}

/// The GUIDs of the disk and its partitions (derived from the build's seed, so the same
/// inputs give the same table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guids {
    pub disk: uuid::Uuid,
    pub esp: uuid::Uuid,
    pub root: uuid::Uuid,
}

/// The Discoverable Partitions Specification's root type for this architecture (so
/// `systemd-gpt-auto-generator` and `systemd-repart` know the partition), else "Linux
/// filesystem data".
fn root_type() -> gpt::partition_types::Type {
    if cfg!(target_arch = "x86_64") {
        gpt::partition_types::LINUX_ROOT_X64
    } else if cfg!(target_arch = "aarch64") {
        gpt::partition_types::LINUX_ROOT_ARM_64
    } else {
        gpt::partition_types::LINUX_FS
    }
}

/// Write the protective MBR and both GPTs of `layout` into the image at `path` (already
/// `layout.total` bytes long).
pub fn write_gpt(path: &Path, layout: &Layout, guids: &Guids) -> Result<()> {
    let gpt_err = |e: gpt::GptError| Error::Io {
        op: "write the partition table of",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx("open", path)?;
    let sectors = layout.total / SECTOR;
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(
        u32::try_from(sectors.saturating_sub(1)).unwrap_or(u32::MAX),
    );
    let mut raw = f.try_clone().ctx("open", path)?;
    mbr.overwrite_lba0(&mut raw).map_err(|e| Error::Io {
        op: "write the protective MBR of",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .change_partition_count(true)
        .create_from_device(f, Some(guids.disk))
        .map_err(gpt_err)?;
    let mut parts = BTreeMap::new();
    parts.insert(
        1,
        gpt::partition::Partition {
            part_type_guid: gpt::partition_types::EFI,
            part_guid: guids.esp,
            first_lba: layout.esp_offset / SECTOR,
            last_lba: (layout.esp_offset + layout.esp_size) / SECTOR - 1,
            flags: 0,
            name: "ESP".into(),
        },
    );
    parts.insert(
        2,
        gpt::partition::Partition {
            part_type_guid: root_type(),
            part_guid: guids.root,
            first_lba: layout.root_offset / SECTOR,
            last_lba: (layout.root_offset + layout.root_size) / SECTOR - 1,
            flags: 0,
            name: "root".into(),
        },
    );
    disk.update_partitions(parts).map_err(gpt_err)?;
    let f = disk.write().map_err(gpt_err)?;
    f.sync_all().ctx("fsync", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_leaves_the_last_mib_for_the_backup_gpt() {
        let l = Layout::new(512 * MIB + 7, 3000 * MIB + 12345);
        assert_eq!(l.esp_offset, MIB);
        assert_eq!(l.esp_size, 512 * MIB);
        assert_eq!(l.root_offset, 513 * MIB);
        assert_eq!(l.root_size, 3000 * MIB);
        assert_eq!(l.total, (1 + 512 + 3000 + 1) * MIB);
        assert_eq!(l.root_offset % MIB, 0);
    }

    #[test]
    fn gpt_bytes_depend_only_on_the_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Layout::new(40 * MIB, 20 * MIB);
        let g = Guids {
            disk: uuid::Uuid::from_u128(1),
            esp: uuid::Uuid::from_u128(2),
            root: uuid::Uuid::from_u128(3),
        };
        let mut heads = Vec::new();
        for n in ["a", "b"] {
            let p = dir.path().join(n);
            std::fs::File::create(&p)
                .and_then(|f| f.set_len(l.total))
                .expect("create");
            write_gpt(&p, &l, &g).expect("gpt");
            let b = std::fs::read(&p).expect("read");
            assert_eq!(&b[510..512], &[0x55, 0xaa], "protective MBR signature");
            assert_eq!(&b[512..520], b"EFI PART", "primary header");
            let backup = (l.total - 512) as usize;
            assert_eq!(&b[backup..backup + 8], b"EFI PART", "backup header");
            heads.push(b);
        }
        assert!(heads[0] == heads[1]);
    }
}
