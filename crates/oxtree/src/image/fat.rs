//! The EFI system partition: a FAT32 filesystem formatted and filled in place, at the
//! partition's offset in the image file, with the `fatfs` crate (see the parent module for
//! why): no loop device, no mount, no mtools.

use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A window `[start, start + len)` of the image file, which `fatfs` sees as the whole disk.
struct Slice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match p {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

/// The time every file and directory gets (DOS time: 1980..2107, local time unknown to FAT,
/// so UTC), from `SOURCE_DATE_EPOCH` or the build time.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

fn dos_time(epoch: i64) -> fatfs::DateTime {
    // 1980-01-01 and 2107-12-31 bound what FAT can store.
    let epoch = epoch.clamp(315_532_800, 4_354_819_199);
    let dt = jiff::Timestamp::from_second(epoch)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime();
    let u = |v: i8| u16::try_from(v).unwrap_or(0);
    fatfs::DateTime {
        date: fatfs::Date {
            year: u16::try_from(dt.year()).unwrap_or(1980),
            month: u(dt.month()),
            day: u(dt.day()),
        },
        time: fatfs::Time {
            hour: u(dt.hour()),
            min: u(dt.minute()),
            sec: u(dt.second()),
            millis: 0,
        },
    }
}

/// FAT32 needs at least 65525 clusters: the largest cluster size (up to 4 KiB) that gives
/// comfortably more, or `None` if the partition is too small for FAT32 even with 512-byte
/// clusters.
pub fn cluster_size(part_size: u64) -> Option<u32> {
    [4096u32, 2048, 1024, 512]
        .into_iter()
        .find(|c| part_size / u64::from(*c) >= 66_000)
}

/// The space `dir`'s files take on a FAT with `cluster`-byte clusters (each file and
/// directory rounded up to clusters), for the size check before anything is written.
pub fn usage(dir: &Path, cluster: u64) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        total += cluster; // the directory's own cluster
        for e in std::fs::read_dir(&d).ctx("read directory", &d)? {
            let e = e.ctx("read directory", &d)?;
            let m = e.metadata().ctx("stat", e.path())?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len().div_ceil(cluster) * cluster;
            }
        }
    }
    Ok(total)
}

/// Format `[offset, offset + size)` of `image` as FAT32 (label `ESP`, `volume_id`) and copy
/// the tree at `src` into it, in name order. Returns the bytes of file data written.
pub fn write_esp(
    image: &Path,
    offset: u64,
    size: u64,
    src: &Path,
    volume_id: u32,
    epoch: i64,
) -> Result<u64> {
    let io = |op: &'static str, p: PathBuf| {
        move |e: std::io::Error| Error::Io {
            op,
            path: p,
            source: e,
        }
    };
    let cluster = cluster_size(size).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "an ESP of {} MiB is too small for FAT32 (give at least 36 MiB)",
            size >> 20
        ))
    })?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .ctx("open", image)?;
    let slice = |f| Slice {
        file: f,
        start: offset,
        len: size,
        pos: 0,
    };
    let sectors = u32::try_from(size / 512).map_err(|_| {
        Error::InvalidArgument(format!(
            "an ESP of {} MiB is too large for FAT32",
            size >> 20
        ))
    })?;
    fatfs::format_volume(
        slice(&f),
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(cluster)
            .total_sectors(sectors)
            .volume_id(volume_id)
            .volume_label(*b"ESP        "),
    )
    .map_err(io("format the ESP in", image.to_path_buf()))?;
    // The BPB's "hidden sectors" is the partition's start, as mkfs.fat --offset writes it
    // (fatfs leaves 0): in the boot sector and its FAT32 backup (sector 6).
    let hidden = u32::try_from(offset / 512).unwrap_or(0).to_le_bytes();
    for sector in [0u64, 6] {
        f.write_at(&hidden, offset + sector * 512 + 0x1c)
            .ctx("write the ESP boot sector of", image)?;
    }
    // One provider per build: fatfs wants a `'static` one; it is a few bytes.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(dos_time(epoch))));
    let fs = fatfs::FileSystem::new(
        slice(&f),
        fatfs::FsOptions::new()
            .time_provider(time)
            .update_accessed_date(false),
    )
    .map_err(io("open the new ESP in", image.to_path_buf()))?;
    let mut bytes = 0u64;
    copy_dir(&fs.root_dir(), src, &mut bytes)?;
    fs.unmount()
        .map_err(io("finish the ESP in", image.to_path_buf()))?;
    fix_fatfs_output(&f, offset, size).map_err(io("finish the ESP in", image.to_path_buf()))?;
    f.sync_all().ctx("fsync", image)?;
    Ok(bytes)
}

fn le16(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 2)
        .map_or(0, |x| u32::from(u16::from_le_bytes([x[0], x[1]])))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// Repair what fatfs 0.3.6 gets wrong on a fresh volume (fixed in its unreleased 0.4), so
/// that `fsck.fat -n` finds nothing: each subdirectory's `.` and `..` come with a long-name
/// entry in front (FAT has none there), `..` of a directory in the root names the root's
/// cluster (FAT says 0), and the FSInfo free-cluster count is left unset. The `.`/`..`
/// pair moves to the first two slots, the two long-name slots become deleted entries; the
/// other entries keep their places. A volume without those defects is left as it is.
fn fix_fatfs_output(f: &File, offset: u64, size: u64) -> std::io::Result<()> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut bs = [0u8; 512];
    f.read_exact_at(&mut bs, offset)?;
    let bps = u64::from(le16(&bs, 11));
    let spc = u64::from(bs[13]);
    let reserved = u64::from(le16(&bs, 14));
    let fats = u64::from(bs[16]);
    let fat_sectors = u64::from(le32(&bs, 36));
    let root = le32(&bs, 44);
    let fsinfo = u64::from(le16(&bs, 48));
    if bps == 0 || spc == 0 || fat_sectors == 0 {
        return Err(bad("not a FAT32 boot sector"));
    }
    let cluster_bytes = bps * spc;
    let fat_at = offset + reserved * bps;
    let data_at = fat_at + fats * fat_sectors * bps;
    let clusters = (size - (data_at - offset)) / cluster_bytes;
    let mut fat_raw = vec![0u8; usize::try_from(fat_sectors * bps).map_err(|_| bad("FAT size"))?];
    f.read_exact_at(&mut fat_raw, fat_at)?;
    let fat: Vec<u32> = fat_raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x0fff_ffff)
        .collect();
    let chain = |start: u32| -> std::io::Result<Vec<u32>> {
        let mut v = vec![start];
        let mut c = start;
        loop {
            let next = *fat
                .get(c as usize)
                .ok_or_else(|| bad("cluster out of range"))?;
            if next >= 0x0fff_fff8 {
                return Ok(v);
            }
            if next < 2 || v.len() as u64 > clusters {
                return Err(bad("broken cluster chain"));
            }
            v.push(next);
            c = next;
        }
    };
    let at = |c: u32| data_at + u64::from(c - 2) * cluster_bytes;
    let mut stack = vec![(root, 0u32)];
    while let Some((dir, parent)) = stack.pop() {
        let cl = chain(dir)?;
        let mut data = vec![0u8; cl.len() * usize::try_from(cluster_bytes).unwrap_or(0)];
        for (i, c) in cl.iter().enumerate() {
            let n = usize::try_from(cluster_bytes).unwrap_or(0);
            f.read_exact_at(&mut data[i * n..(i + 1) * n], at(*c))?;
        }
        let slot = |i: usize| i * 32..i * 32 + 32;
        let is_lfn = |d: &[u8], i: usize| d.get(i * 32 + 11) == Some(&0x0f);
        let name_is =
            |d: &[u8], i: usize, n: &[u8; 11]| d.get(slot(i)).is_some_and(|e| &e[..11] == n);
        let (dot, dotdot) = (*b".          ", *b"..         ");
        let mut changed = false;
        if dir != root
            && is_lfn(&data, 0)
            && name_is(&data, 1, &dot)
            && is_lfn(&data, 2)
            && name_is(&data, 3, &dotdot)
        {
            let (e_dot, e_dotdot) = (data[slot(1)].to_vec(), data[slot(3)].to_vec());
            data[slot(0)].copy_from_slice(&e_dot);
            data[slot(1)].copy_from_slice(&e_dotdot);
            for i in [2, 3] {
                data[slot(i)].fill(0);
                data[i * 32] = 0xe5;
            }
            changed = true;
        }
        if dir != root && name_is(&data, 1, &dotdot) {
            let want = if parent == root { 0 } else { parent };
            let s = slot(1);
            if le16(&data[s.clone()], 20) << 16 | le16(&data[s.clone()], 26) != want {
                data[s.start + 20..s.start + 22]
                    .copy_from_slice(&((want >> 16) as u16).to_le_bytes());
                data[s.start + 26..s.start + 28].copy_from_slice(&(want as u16).to_le_bytes());
                changed = true;
            }
        }
        if changed {
            let n = usize::try_from(cluster_bytes).unwrap_or(0);
            for (i, c) in cl.iter().enumerate() {
                f.write_at(&data[i * n..(i + 1) * n], at(*c))?;
            }
        }
        for e in data.chunks_exact(32) {
            if e[0] == 0 {
                break;
            }
            let attr = e[11];
            if e[0] == 0xe5 || attr == 0x0f || attr & 0x10 == 0 || e[0] == b'.' {
                continue;
            }
            let c = le16(e, 20) << 16 | le16(e, 26);
            if c >= 2 {
                stack.push((c, dir));
            }
        }
    }
    // FSInfo: the free count and the next free cluster.
    let limit = usize::try_from(clusters + 2)
        .unwrap_or(usize::MAX)
        .min(fat.len());
    let free: Vec<usize> = (2..limit).filter(|c| fat[*c] == 0).collect();
    let info_at = offset + fsinfo * bps;
    f.write_at(&(free.len() as u32).to_le_bytes(), info_at + 488)?;
    f.write_at(
        &(free.first().copied().unwrap_or(0xffff_ffff) as u32).to_le_bytes(),
        info_at + 492,
    )?;
    Ok(())
}

fn copy_dir<T: fatfs::ReadWriteSeek>(
    dst: &fatfs::Dir<'_, T>,
    src: &Path,
    bytes: &mut u64,
) -> Result<()> {
    let mut names: Vec<(String, PathBuf, bool)> = Vec::new();
    for e in std::fs::read_dir(src).ctx("read directory", src)? {
        let e = e.ctx("read directory", src)?;
        let p = e.path();
        let name = e.file_name().into_string().map_err(|_| {
            Error::InvalidArgument(format!("{}: not a UTF-8 file name", p.display()))
        })?;
        let m = std::fs::symlink_metadata(&p).ctx("stat", &p)?;
        if m.file_type().is_symlink() {
            return Err(Error::InvalidArgument(format!(
                "{}: a symbolic link cannot go onto the FAT ESP",
                p.display()
            )));
        }
        names.push((name, p, m.is_dir()));
    }
    // Name order: the same tree gives the same directory layout, byte for byte.
    names.sort();
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| Error::Io {
            op: "write into the ESP",
            path: p,
            source: e,
        }
    };
    for (name, p, is_dir) in names {
        if is_dir {
            let d = dst.create_dir(&name).map_err(err(&p))?;
            copy_dir(&d, &p, bytes)?;
        } else {
            let mut from = File::open(&p).ctx("open", &p)?;
            let mut to = dst.create_file(&name).map_err(err(&p))?;
            to.truncate().map_err(err(&p))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = from.read(&mut buf).ctx("read", &p)?;
                if n == 0 {
                    break;
                }
                to.write_all(&buf[..n]).map_err(err(&p))?;
                *bytes += n as u64;
            }
            to.flush().map_err(err(&p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_sizes_keep_fat32_legal() {
        assert_eq!(cluster_size(512 << 20), Some(4096));
        assert_eq!(cluster_size(256 << 20), Some(2048));
        assert_eq!(cluster_size(40 << 20), Some(512));
        assert_eq!(cluster_size(20 << 20), None);
    }

    #[test]
    fn dos_times_are_clamped_and_utc() {
        let t = dos_time(0);
        assert_eq!((t.date.year, t.date.month, t.date.day), (1980, 1, 1));
        let t = dos_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
    }
}
