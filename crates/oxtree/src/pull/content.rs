//! Content objects: fetch a `.filez` (into memory, or into `tmp/pull-partial/` with `Range`
//! resumption when large), verify it and store it.
//!
//! Bounds (security review H3): when the verified commit lists the object in `ostree.sizes`,
//! its download may not exceed what that size allows — the stored size, or what any DEFLATE
//! stream of the unpacked size can take (a mirror may have recompressed it) — and a longer
//! response is cut off and its partial file removed. Without sizes, a download that lands on
//! disk stops before the filesystem drops below `min-free-space-percent`/`-size`, as the
//! transaction's own writes do. A partial download is flocked for as long as a pull uses it
//! (download, verification, store), so two pulls of one object never interleave their bytes
//! and a verified file is the one stored (durability D3). An archive object (kept as
//! served) must end where its compressed stream ends: trailing bytes are refused, not kept
//! and served on to this repo's own clients (L5); other modes store the inflated content.

use super::retry::backoff;
use super::walk::Shared;
use super::{object_url_path, FetchError, Fetcher, PullOptions, PullProgress, UNBOUNDED};
use super::{MAX_METADATA_SIZE, RESUME_THRESHOLD};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType};
use crate::repo::Repo;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(super) fn process_file(sh: &Shared<'_>, c: &Checksum) -> Result<()> {
    if sh.txn.has_object(ObjectType::File, c) {
        return Ok(());
    }
    // A `--localcache-repo` copy, written with its checksum checked as for a download.
    for cache in &sh.caches {
        if cache.has_object(ObjectType::File, c) {
            let mut f = cache.read_file(c)?;
            sh.txn
                .write_file(&f.header.clone(), &mut f.payload, f.size, Some(c))?;
            sh.progress.objects_fetched.fetch_add(1, Ordering::Relaxed);
            sh.progress
                .localcache_content
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    let path = object_url_path(ObjectType::File, c);
    let described = || sh.fetcher.describe(&path);
    let partial = sh.partial_dir.join(format!("{}.filez", c.to_hex()));
    let bound = sh
        .sizes
        .lock()
        .ok()
        .and_then(|m| m.get(c).copied())
        .map_or(UNBOUNDED, |(stored, unpacked)| {
            download_bound(stored, unpacked)
        });
    let get = Get {
        fetcher: sh.fetcher,
        path: &path,
        partial: &partial,
        bound,
        opts: sh.opts,
        progress: sh.progress,
        repo: sh.repo,
        csum: c,
        budget: &sh.slices,
    };
    let (fetched, lock) = get.fetch()?;
    let res = sh.store_filez(c, fetched, &partial, &described);
    // A partial download is used once: verified and stored (renamed away), or found bad and
    // dropped (still under our lock) so the next attempt starts over. Only our file: once
    // ours was stored, another pull may have made a new one at the same path.
    if let Some(l) = &lock {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ours), Ok(now)) = (l.metadata(), std::fs::symlink_metadata(&partial)) {
            if ours.ino() == now.ino() && ours.dev() == now.dev() {
                let _ = std::fs::remove_file(&partial);
            }
        }
    }
    drop(lock);
    res?;
    sh.progress.objects_fetched.fetch_add(1, Ordering::Relaxed);
    sh.progress.content_fetched.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The most a `.filez` listed in `ostree.sizes` may take: the stored size, or a DEFLATE
/// stream of the unpacked size in stored blocks (5 bytes per 64 KiB) after a file header
/// (xattrs included) of up to 1 MiB, whichever is larger.
fn download_bound(stored: u64, unpacked: u64) -> u64 {
    stored.max(
        unpacked
            .saturating_add(unpacked / 8192)
            .saturating_add(1 << 20),
    )
}

impl Shared<'_> {
    /// Verify a `.filez` (parse, inflate within its declared size, hash) and store it. An
    /// archive repo keeps the downloaded bytes as they are (no recompression); other modes
    /// store the inflated content.
    fn store_filez(
        &self,
        c: &Checksum,
        fetched: Fetched,
        partial: &std::path::Path,
        described: &dyn Fn() -> String,
    ) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::corrupt(
                ObjectType::File,
                *c,
                format!("{e} (served by {})", described()),
            )
        };
        let (bytes, file) = match fetched {
            Fetched::Memory(b) => (Some(b), None),
            Fetched::Disk(f) => (None, Some(f)),
        };
        let total = match (&bytes, &file) {
            (Some(b), _) => b.len() as u64,
            (None, Some(f)) => f.metadata().ctx("stat", partial)?.len(),
            (None, None) => return Err(Error::Other("internal: nothing fetched".into())),
        };
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inner: Box<dyn std::io::BufRead + Send + '_> = match (&bytes, file) {
            (Some(b), _) => Box::new(std::io::Cursor::new(b.as_slice())),
            (None, Some(f)) => Box::new(BufReader::with_capacity(64 * 1024, f)),
            (None, None) => return Err(Error::Other("internal: nothing fetched".into())),
        };
        let mut r = Counted {
            inner,
            count: consumed.clone(),
        };
        let (header, size) = crate::repo::read::read_archive_header(&mut r).map_err(|e| bad(&e))?;
        let archive = self.repo.mode() == crate::repo::RepoMode::Archive;
        let map_err = |e: Error| {
            match e {
            Error::ChecksumMismatch { actual, .. } => Error::corrupt(
                ObjectType::File,
                *c,
                format!(
                    "Corrupted file object; checksum expected='{c}' actual='{actual}' (served by {})",
                    described()
                ),
            ),
            Error::Other(m) => bad(&m),
            // Inflate errors and size violations surface as read errors of the payload.
            Error::Io {
                source,
                op: "read content for",
                ..
            } => Error::corrupt(ObjectType::File, *c, source),
            e => e,
        }
        };
        // --bareuseronly-files holds for an archive repo too (the stored form keeps the
        // header), as in ostree: refused before anything of the object is stored.
        if archive {
            self.txn.check_bareuseronly(&header, c)?;
        }
        // A small object held in memory, for a repo that stores it inflated: inflated whole
        // (libdeflate), then verified and stored from memory. As below, bytes after the
        // stream are not read.
        if let (false, false, Some(b)) = (archive, header.is_symlink(), &bytes) {
            let head = usize::try_from(consumed.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
            let packed = b.get(head..).unwrap_or_default();
            if let Some(inflated) = crate::repo::read::inflate_whole(packed, size) {
                let content = inflated.map_err(|e| bad(&e))?;
                self.txn
                    .write_file(&header, &mut content.as_slice(), size, Some(c))
                    .map_err(map_err)?;
                self.progress
                    .content_bytes_written
                    .fetch_add(size, Ordering::Relaxed);
                return Ok(());
            }
        }
        let (mut payload, size): (Box<dyn Read + Send>, u64) = if header.is_symlink() {
            (Box::new(std::io::empty()), 0)
        } else {
            (
                crate::repo::read::archive_payload(
                    r,
                    size,
                    PathBuf::from(format!("served by {}", described())),
                ),
                size,
            )
        };
        let whole = |consumed: &std::sync::atomic::AtomicU64| {
            let used = consumed.load(Ordering::Relaxed);
            if used == total {
                Ok(())
            } else {
                Err(bad(&format!(
                    "{} bytes after the end of the compressed content",
                    total.saturating_sub(used)
                )))
            }
        };
        // The decoder stops at the end of the DEFLATE stream; one more read finds anything
        // after it (an error for more content, and `whole` counts bytes past the stream).
        let end_of_stream = |payload: &mut Box<dyn Read + Send>| -> Result<()> {
            let mut probe = [0u8; 1];
            match payload.read(&mut probe) {
                Ok(0) => whole(&consumed),
                Ok(_) => Err(bad(&"content longer than its header says")),
                Err(e) => Err(Error::corrupt(ObjectType::File, *c, e)),
            }
        };
        if !archive {
            // The inflated, verified content is what is stored: bytes the server added after
            // the stream are simply not read.
            self.txn
                .write_file(&header, &mut payload, size, Some(c))
                .map_err(map_err)?;
            self.progress
                .content_bytes_written
                .fetch_add(size, Ordering::Relaxed);
            return Ok(());
        }
        // Archive: verify by hashing the inflated stream, then keep the served bytes.
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(header.content_stream_prefix());
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = payload
                .read(&mut buf)
                .map_err(|e| Error::corrupt(ObjectType::File, *c, e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            h.update(&buf[..n]);
        }
        if total != size {
            return Err(bad(&format!(
                "content is {total} bytes, header says {size}"
            )));
        }
        let actual = Checksum(h.finalize().into());
        if actual != *c {
            return Err(bad(&format!(
                "Corrupted file object; checksum expected='{c}' actual='{actual}'"
            )));
        }
        end_of_stream(&mut payload)?;
        drop(payload);
        match &bytes {
            Some(b) => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::Bytes(b))?,
            None => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::File(partial))?,
        }
        self.progress
            .content_bytes_written
            .fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

enum Fetched {
    Memory(Vec<u8>),
    Disk(std::fs::File),
}

/// A `BufRead` that counts the bytes its reader consumed (to find trailing data).
struct Counted<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// Open and flock `partial` (exclusive, waiting for another pull that holds it), making
/// sure the locked file is still the one at that path (the holder may have stored it away).
fn lock_partial(partial: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(partial)
            .ctx("open", partial)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).ctx("lock", partial)?;
        let ours = f.metadata().ctx("stat", partial)?;
        match std::fs::symlink_metadata(partial) {
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => return Ok(f),
            _ => continue,
        }
    }
}

/// One content object's download.
struct Get<'a> {
    fetcher: &'a dyn Fetcher,
    path: &'a str,
    partial: &'a Path,
    /// The most the `.filez` may take ([`UNBOUNDED`] without `ostree.sizes`).
    bound: u64,
    opts: &'a PullOptions,
    progress: &'a PullProgress,
    repo: &'a Repo,
    csum: &'a Checksum,
    budget: &'a SliceBudget,
}

/// Free space is checked this often while a download of unknown size grows on disk.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

impl Get<'_> {
    fn too_big(&self, e: impl std::fmt::Display) -> Error {
        Error::corrupt(
            ObjectType::File,
            *self.csum,
            format!("{e} (served by {})", self.fetcher.describe(self.path)),
        )
    }

    /// Small objects come into memory; large ones (or ones of unknown size) into the
    /// partial file on disk, continuing a previous cut-off download with `Range` (the final
    /// checksum verifies the joined bytes). With a disk download, the partial's lock comes
    /// back too: hold it until the object is stored or the partial removed.
    ///
    /// Every request asks for a slice: the first [`RESUME_THRESHOLD`] bytes (a small
    /// object whole), then [`SLICE_MIN`], doubled while a slice takes less than a round
    /// trip to arrive, up to [`SLICE_MAX`]; and the slices of all large objects in flight
    /// together stay within a [`SliceBudget`]. What a server has sent — counted as served
    /// once it is in the socket's buffer, which the kernel autotunes to megabytes — is then
    /// never much more than what is on disk, and a killed pull loses little of it (issue
    /// 13: a kill during an 11.8 MB object lost 4.9 MB in the two sockets' buffers).
    fn fetch(&self) -> Result<(Fetched, Option<std::fs::File>)> {
        let mut lock: Option<std::fs::File> = None;
        let mut attempt = 0;
        let mut slice = SLICE_MIN;
        loop {
            attempt += 1;
            self.progress.requests.fetch_add(1, Ordering::Relaxed);
            if lock.is_none() && std::fs::symlink_metadata(self.partial).is_ok() {
                lock = Some(lock_partial(self.partial)?);
            }
            let mut have = match &lock {
                Some(f) => f.metadata().ctx("stat", self.partial)?.len(),
                None => 0,
            };
            if have > self.bound {
                // Left by an earlier, unbounded pull: start over.
                if let Some(f) = &lock {
                    f.set_len(0).ctx("truncate", self.partial)?;
                }
                have = 0;
            }
            // The first slice of every object is small (an eighth of a round trip's worth
            // when that is more); a large object's next ones are a quarter of a round
            // trip's worth at least, and share the budget, held until they are on disk.
            let rtt = self.fetcher.round_trip().unwrap_or_default();
            if have > 0 {
                slice = slice.max(bdp(rtt) / 4).min(SLICE_MAX);
            }
            let len = if have == 0 {
                RESUME_THRESHOLD.max(bdp(rtt) / 8)
            } else {
                slice
            };
            let held = (have > 0).then(|| self.budget.take(len, rtt));
            let asked = Instant::now();
            let resp = match self.fetcher.fetch_slice(self.path, have, len, self.bound) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(Error::ObjectNotOnServer {
                        object: format!("{}.file", self.csum),
                        url: self.fetcher.describe(self.path),
                    })
                }
                Err(FetchError::Fatal(e)) => return Err(self.fatal(e, lock)),
                // The partial download is already complete: use it (its checksum decides).
                Err(FetchError::RangeNotSatisfiable) => {
                    let f = std::fs::File::open(self.partial).ctx("open", self.partial)?;
                    return Ok((Fetched::Disk(f), lock));
                }
                Err(FetchError::Transient(m)) => {
                    drop(held);
                    self.retry_or_fail(attempt, &m)?;
                    continue;
                }
            };
            // A small object comes whole in the first slice.
            let small = have == 0
                && resp
                    .total
                    .or(resp.len)
                    .is_some_and(|l| l < RESUME_THRESHOLD);
            if small {
                match self.to_memory(resp) {
                    Ok(b) => return Ok((Fetched::Memory(b), lock)),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Err(self.fatal(self.too_big(e), lock))
                    }
                    Err(e) => {
                        self.retry_or_fail(attempt, &super::retry::read_failure(&e))?;
                        continue;
                    }
                }
            }
            let f = match lock.take() {
                Some(f) => f,
                None => lock_partial(self.partial)?,
            };
            let written = self.to_disk(&f, resp, have, len);
            drop(held);
            match written {
                Ok(Slice::Last(file)) => return Ok((Fetched::Disk(file), Some(f))),
                Ok(Slice::More) => {
                    lock = Some(f);
                    attempt = 0;
                    // Arrived within two round trips (one of them the request's): the
                    // round trip, not the bandwidth, paces this object; ask for more.
                    if have > 0 && asked.elapsed() < rtt.saturating_mul(2) {
                        slice = slice.saturating_mul(2).min(SLICE_MAX);
                    }
                }
                // The partial changed under a ranged request we made before locking it.
                Ok(Slice::Moved) => lock = Some(f),
                Err(e) if matches!(e, Error::Corrupt { .. } | Error::Other(_)) => {
                    return Err(self.fatal(e, Some(f)))
                }
                Err(Error::Io { source, .. }) => {
                    lock = Some(f);
                    self.retry_or_fail(
                        attempt,
                        &format!(
                            "{} (the bytes so far are kept for the next pull)",
                            super::retry::read_failure(&source)
                        ),
                    )?;
                }
                Err(e) => return Err(self.fatal(e, Some(f))),
            }
        }
    }

    /// A failure retrying cannot fix: the partial (if any) goes, under its lock.
    fn fatal(&self, e: Error, lock: Option<std::fs::File>) -> Error {
        if lock.is_some() {
            let _ = std::fs::remove_file(self.partial);
        }
        e
    }

    fn retry_or_fail(&self, attempt: u32, why: &str) -> Result<()> {
        if attempt > self.opts.retries {
            return Err(Error::Other(format!(
                "{}: {why} (gave up after {attempt} attempts)",
                self.fetcher.describe(self.path)
            )));
        }
        std::thread::sleep(backoff(attempt));
        Ok(())
    }

    fn to_memory(&self, mut resp: super::Response) -> std::io::Result<Vec<u8>> {
        let mut b = Vec::new();
        // The fetcher bounds the body; RESUME_THRESHOLD bounds what is announced as small.
        (&mut resp.body)
            .take(RESUME_THRESHOLD.max(MAX_METADATA_SIZE))
            .read_to_end(&mut b)?;
        self.progress
            .bytes_fetched
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    /// Append (or, for a full response, write from the start) to the locked partial file
    /// the body of a request for `asked` bytes from `have` on.
    fn to_disk(
        &self,
        f: &std::fs::File,
        mut resp: super::Response,
        have: u64,
        asked: u64,
    ) -> Result<Slice> {
        let p = self.partial;
        let len = f.metadata().ctx("stat", p)?.len();
        let full = have == 0 || resp.restarted;
        if full {
            f.set_len(0).ctx("truncate", p)?;
        } else if len != have {
            return Ok(Slice::Moved);
        }
        let mut w = f.try_clone().ctx("open", p)?;
        w.seek(std::io::SeekFrom::End(0)).ctx("seek", p)?;
        let start = if full { 0 } else { have };
        let mut written = start;
        // Free space is checked each time the file passes a multiple of SPACE_CHECK_EVERY,
        // however many slices it takes to get there.
        let mut next_check = (written / SPACE_CHECK_EVERY + 1) * SPACE_CHECK_EVERY;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match resp.body.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(self.too_big(e))
                }
                Err(e) => return Err(e).ctx("download", p),
            };
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).ctx("write", p)?;
            written += n as u64;
            self.progress
                .bytes_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
            if self.bound == UNBOUNDED && written >= next_check {
                next_check = (written / SPACE_CHECK_EVERY + 1) * SPACE_CHECK_EVERY;
                if let Some((left, limit)) = self.repo.space_left()? {
                    if left < SPACE_CHECK_EVERY {
                        return Err(Error::Other(format!(
                            "{}: downloading object {} ({written} bytes so far) would exceed {limit}",
                            self.fetcher.describe(self.path),
                            self.csum
                        )));
                    }
                }
            }
        }
        w.flush().ctx("write", p)?;
        // More to come when the server's total says so or, without one, when the slice
        // came as long as asked (a file that ends there answers the next one with 416).
        let more = match resp.total {
            Some(total) => written < total,
            None => !resp.restarted && written - start == asked,
        };
        if more {
            return Ok(Slice::More);
        }
        let mut r = f.try_clone().ctx("open", p)?;
        r.seek(std::io::SeekFrom::Start(0)).ctx("seek", p)?;
        Ok(Slice::Last(r))
    }
}

/// What a slice written to the partial file leaves.
enum Slice {
    /// The object is whole (or as whole as the server will make it): the file, from its start.
    Last(std::fs::File),
    /// Ask for the next slice.
    More,
    /// The file is not at the offset the ranged request assumed: ask again.
    Moved,
}

/// A large object's slices after its first, to begin with.
const SLICE_MIN: u64 = 128 << 10;
/// The largest slice, however long the round trip.
const SLICE_MAX: u64 = 64 << 20;
/// The bytes of large objects' slices in flight at once, at least.
const BUDGET_MIN: u64 = 2 * SLICE_MIN;
/// About the rate at which this machine verifies and stores a pull (61.7 MB in 1.2 s into
/// bare-user on loopback): what the budget lets through per second of round trip.
const BUDGET_RATE: u64 = 64 << 20;

/// A round trip's worth of bytes at [`BUDGET_RATE`].
fn bdp(rtt: std::time::Duration) -> u64 {
    u64::try_from(rtt.as_micros().saturating_mul(u128::from(BUDGET_RATE)) / 1_000_000)
        .unwrap_or(u64::MAX)
}

/// The bytes of large objects asked for and not yet written, shared by a pull's fetch
/// threads: a slice waits while the others in flight would take more than the budget, the
/// largest of [`BUDGET_MIN`], twice its own length, and a round trip's worth at
/// [`BUDGET_RATE`] (the bandwidth-delay product: a long round trip still has its pipe
/// full). One slice alone always goes.
#[derive(Default)]
pub(super) struct SliceBudget {
    used: std::sync::Mutex<u64>,
    cv: std::sync::Condvar,
}

impl SliceBudget {
    fn take(&self, len: u64, rtt: std::time::Duration) -> SliceHeld<'_> {
        let cap = BUDGET_MIN.max(len.saturating_mul(2)).max(bdp(rtt));
        if let Ok(mut used) = self.used.lock() {
            while *used > 0 && used.saturating_add(len) > cap {
                used = match self.cv.wait(used) {
                    Ok(u) => u,
                    Err(_) => {
                        return SliceHeld {
                            budget: self,
                            len: 0,
                        }
                    }
                };
            }
            *used = used.saturating_add(len);
        }
        SliceHeld { budget: self, len }
    }
}

/// A slice's share of the [`SliceBudget`], given back on drop.
struct SliceHeld<'a> {
    budget: &'a SliceBudget,
    len: u64,
}

impl Drop for SliceHeld<'_> {
    fn drop(&mut self) {
        if let Ok(mut used) = self.budget.used.lock() {
            *used = used.saturating_sub(self.len);
        }
        self.budget.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn slices_past_the_budget_wait_until_one_is_on_disk() {
        let b = SliceBudget::default();
        let loopback = std::time::Duration::from_micros(100);
        let first = b.take(SLICE_MIN, loopback);
        let second = b.take(SLICE_MIN, loopback);
        let third_went = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _third = b.take(SLICE_MIN, loopback);
                third_went.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(
                !third_went.load(Ordering::SeqCst),
                "a third slice went past the budget"
            );
            drop(first);
        });
        assert!(third_went.load(Ordering::SeqCst));
        drop(second);
        // One slice alone always goes, however large (grown to a long round trip's worth).
        let big = b.take(SLICE_MAX, loopback);
        assert_eq!(*b.used.lock().expect("lock"), SLICE_MAX);
        drop(big);
        // At 100 ms, many slices are in flight at once: the pipe holds more.
        let far = std::time::Duration::from_millis(100);
        let held: Vec<_> = (0..20).map(|_| b.take(SLICE_MIN, far)).collect();
        assert_eq!(*b.used.lock().expect("lock"), 20 * SLICE_MIN);
        drop(held);
    }
}
