//! Content objects: fetch a `.filez` (into memory, or into `tmp/pull-partial/` with `Range`
//! resumption when large), verify it and store it.

use super::retry::backoff;
use super::walk::Shared;
use super::{object_url_path, FetchError, Fetcher, PullOptions, PullProgress};
use super::{MAX_METADATA_SIZE, RESUME_THRESHOLD};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, ObjectType};
use std::io::{BufReader, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

pub(super) fn process_file(sh: &Shared<'_>, c: &Checksum) -> Result<()> {
    if sh.txn.has_object(ObjectType::File, c) {
        return Ok(());
    }
    let path = object_url_path(ObjectType::File, c);
    let described = || sh.fetcher.describe(&path);
    let partial = sh.partial_dir.join(format!("{}.filez", c.to_hex()));
    let fetched = fetch_file_object(sh.fetcher, &path, &partial, sh.opts, sh.progress)?;
    let on_disk = matches!(fetched, Fetched::Disk(_));
    let res = sh.store_filez(c, fetched, &partial, &described);
    // A partial download is used once: verified and stored, or found bad and dropped so
    // the next attempt starts over.
    if on_disk {
        let _ = std::fs::remove_file(&partial);
    }
    res?;
    sh.progress.objects_fetched.fetch_add(1, Ordering::Relaxed);
    Ok(())
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
        let mut r: Box<dyn std::io::BufRead + Send + '_> = match (&bytes, file) {
            (Some(b), _) => Box::new(std::io::Cursor::new(b.as_slice())),
            (None, Some(f)) => Box::new(BufReader::with_capacity(64 * 1024, f)),
            (None, None) => return Err(Error::Other("internal: nothing fetched".into())),
        };
        let (header, size) = crate::repo::read::read_archive_header(&mut r).map_err(|e| bad(&e))?;
        let archive = self.repo.mode() == crate::repo::RepoMode::Archive;
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
        let map_err = |e: Error| match e {
            Error::ChecksumMismatch { actual, .. } => Error::corrupt(
                ObjectType::File,
                *c,
                format!("content hashes to {actual} (served by {})", described()),
            ),
            Error::Other(m) => bad(&m),
            // Inflate errors and size violations surface as read errors of the payload.
            Error::Io {
                source,
                op: "read content for",
                ..
            } => Error::corrupt(ObjectType::File, *c, source),
            e => e,
        };
        if !archive {
            self.txn
                .write_file(&header, &mut payload, size, Some(c))
                .map_err(map_err)?;
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
            return Err(bad(&format!("content hashes to {actual}")));
        }
        drop(payload);
        match &bytes {
            Some(b) => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::Bytes(b)),
            None => self
                .txn
                .store_verified_archive_object(c, crate::repo::RawObject::File(partial)),
        }
    }
}

enum Fetched {
    Memory(Vec<u8>),
    Disk(std::fs::File),
}

/// Small objects come into memory; large ones into `partial` on disk, continuing a previous
/// cut-off download with `Range` (the final checksum verifies the joined bytes).
fn fetch_file_object(
    fetcher: &dyn Fetcher,
    path: &str,
    partial: &std::path::Path,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<Fetched> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let res = fetcher.fetch(path, have);
        let mut resp = match res {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(Error::Other(format!(
                    "object {}.file not found on the server ({})",
                    path.trim_start_matches("objects/")
                        .replace('/', "")
                        .split('.')
                        .next()
                        .unwrap_or(path),
                    fetcher.describe(path)
                )))
            }
            Err(FetchError::Fatal(e)) => return Err(e),
            // The partial download is already complete: use it (its checksum decides).
            Err(FetchError::RangeNotSatisfiable) => {
                let f = std::fs::File::open(partial).ctx("open", partial)?;
                return Ok(Fetched::Disk(f));
            }
            Err(FetchError::Transient(m)) => {
                if attempt > opts.retries {
                    return Err(Error::Other(format!(
                        "{}: {m} (gave up after {attempt} attempts)",
                        fetcher.describe(path)
                    )));
                }
                std::thread::sleep(backoff(attempt));
                continue;
            }
        };
        let big = have > 0 || resp.len.unwrap_or(0) >= RESUME_THRESHOLD;
        if !big {
            let mut b = Vec::new();
            match (&mut resp.body)
                .take(MAX_METADATA_SIZE.max(RESUME_THRESHOLD * 64))
                .read_to_end(&mut b)
            {
                Ok(n) => {
                    progress
                        .bytes_fetched
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(Fetched::Memory(b));
                }
                Err(e) => {
                    if attempt > opts.retries {
                        return Err(Error::Other(format!(
                            "{}: {e} (gave up after {attempt} attempts)",
                            fetcher.describe(path)
                        )));
                    }
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(!resp.restarted)
            .write(true)
            .truncate(resp.restarted)
            .read(true)
            .open(partial)
            .ctx("open", partial)?;
        let mut buf = vec![0u8; 64 * 1024];
        let copied: std::io::Result<()> = (|| loop {
            let n = resp.body.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            f.write_all(&buf[..n])?;
            progress
                .bytes_fetched
                .fetch_add(n as u64, Ordering::Relaxed);
        })();
        match copied {
            Ok(()) => {
                f.flush().ctx("write", partial)?;
                f.seek(std::io::SeekFrom::Start(0)).ctx("seek", partial)?;
                return Ok(Fetched::Disk(f));
            }
            Err(e) => {
                if attempt > opts.retries {
                    return Err(Error::Other(format!("{}: {e} (gave up after {attempt} attempts; the bytes so far are kept for the next pull)", fetcher.describe(path))));
                }
                std::thread::sleep(backoff(attempt));
            }
        }
    }
}
