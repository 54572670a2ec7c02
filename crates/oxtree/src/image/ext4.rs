//! The root filesystem: `mkfs.ext4 -d SYSROOT` writes ext4 straight into the image file at
//! the root partition's offset (`-E offset=`), populated from the sysroot directory, with
//! no loop device and no mount. It is the one external tool: no crate writes ext4.

use crate::error::{Error, IoContext, Result};
use std::path::Path;
use std::process::Command;

/// The `mkfs.ext4` to run (`MKFS_EXT4` overrides it, for tests of a missing tool).
fn mkfs() -> String {
    std::env::var("MKFS_EXT4").unwrap_or_else(|_| "mkfs.ext4".into())
}

/// Fail early, before anything is built, when `mkfs.ext4` is missing.
pub fn check_tool() -> Result<()> {
    match Command::new(mkfs()).arg("-V").output() {
        Ok(o) if o.status.success() || !o.stderr.is_empty() => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "{} is needed to write the root filesystem (Debian: apt-get install e2fsprogs)",
            mkfs()
        ))),
    }
}

/// What the sysroot needs on ext4: its allocated bytes (each inode counted once, however
/// many hardlinks the deployments share with the repository) and its inode count.
pub fn usage(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ctx("read directory", &d)? {
            let e = e.ctx("read directory", &d)?;
            let m = e.metadata().ctx("stat", e.path())?;
            if m.is_dir() {
                stack.push(e.path());
            }
            if seen.insert(m.ino()) {
                inodes += 1;
                // Allocated blocks, at least one 4 KiB block per file with data.
                bytes += (m.blocks() * 512).max(if m.len() > 0 { 4096 } else { 0 });
            }
        }
    }
    Ok((bytes, inodes + 1))
}

/// The smallest root partition that holds `bytes` in `inodes` inodes: the data, 4 KiB of
/// directory/metadata slack per inode, the inode tables (256 B per inode, one inode per
/// 16 KiB by default), the journal (64 MiB for filesystems of a few GiB) and the 5 %
/// reserved for root.
pub fn min_size(bytes: u64, inodes: u64) -> u64 {
    let data = bytes + inodes * 512;
    let with_tables = data + data / 64;
    let with_journal = with_tables + (64 << 20) + (16 << 20);
    with_journal + with_journal / 19
}

/// Run `mkfs.ext4 -d` for the partition `[offset, offset + size)` of `image`. UUID and
/// htree hash seed are the build's; `E2FSPROGS_FAKE_TIME` pins the superblock's times
/// (e2fsprogs 1.47.0 has no `SOURCE_DATE_EPOCH`). The explicit size keeps it off the
/// backup GPT, which it would otherwise overwrite.
pub fn mkfs_ext4(
    image: &Path,
    offset: u64,
    size: u64,
    sysroot: &Path,
    uuid: &uuid::Uuid,
    epoch: i64,
    min_inodes: u64,
) -> Result<()> {
    let mut cmd = Command::new(mkfs());
    cmd.args(["-q", "-F", "-t", "ext4", "-L", "root", "-U"])
        .arg(uuid.to_string())
        .arg("-E")
        .arg(format!(
            "offset={offset},nodiscard,hash_seed={uuid},root_owner=0:0"
        ));
    // Enough inodes for twice the sysroot (an upgrade beside it) if the default ratio
    // would give fewer.
    if size / 16384 < min_inodes * 2 {
        cmd.arg("-N").arg((min_inodes * 2).to_string());
    }
    cmd.arg("-d")
        .arg(sysroot)
        .arg(image)
        .arg(format!("{}k", size / 1024))
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .stdin(std::process::Stdio::null());
    let o = cmd.output().ctx("run mkfs.ext4 for", image)?;
    if !o.status.success() {
        return Err(Error::Other(format!(
            "mkfs.ext4 -d {} {} failed ({}): {}",
            sysroot.display(),
            image.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}
