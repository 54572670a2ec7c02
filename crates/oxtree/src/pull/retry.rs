//! Retries with exponential back-off for small GETs (metadata, summary, delta parts).

use super::{FetchError, Fetcher, PullOptions, PullProgress};
use crate::error::{Error, Result};
use std::io::{Read, Seek, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

/// Where [`fetch_retry_into`] puts a download: emptied (and told the length, when the
/// server says it) before each attempt.
pub(super) trait Download: Write {
    fn restart(&mut self, len: Option<u64>) -> std::io::Result<()>;
}

impl Download for Vec<u8> {
    fn restart(&mut self, len: Option<u64>) -> std::io::Result<()> {
        self.clear();
        // Sized from Content-Length (the caller's cap bounds it): a part of tens of MiB
        // grown by doubling would be copied and held twice for a moment.
        self.reserve(usize::try_from(len.unwrap_or(0)).unwrap_or(0));
        Ok(())
    }
}

impl Download for std::fs::File {
    fn restart(&mut self, _: Option<u64>) -> std::io::Result<()> {
        self.set_len(0)?;
        self.rewind()
    }
}

/// GET a small file with retries; `Ok(None)` on 404.
pub(super) fn fetch_retry(
    fetcher: &dyn Fetcher,
    path: &str,
    opts: &PullOptions,
    progress: &PullProgress,
    cap: u64,
) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    Ok(fetch_retry_into(fetcher, path, opts, progress, cap, &mut out)?.map(|_| out))
}

/// GET a file of at most `cap` bytes into `out`, with retries; its length, or `Ok(None)`
/// on 404.
pub(super) fn fetch_retry_into<D: Download>(
    fetcher: &dyn Fetcher,
    path: &str,
    opts: &PullOptions,
    progress: &PullProgress,
    cap: u64,
    out: &mut D,
) -> Result<Option<u64>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let err = match fetcher.fetch_bounded(path, 0, cap) {
            Ok(None) => return Ok(None),
            Ok(Some(mut r)) => {
                let got = out
                    .restart(r.len.map(|l| l.min(cap.saturating_add(1))))
                    .and_then(|()| std::io::copy(&mut (&mut r.body).take(cap + 1), out));
                match got {
                    Ok(n) if n > cap => {
                        return Err(Error::Other(format!(
                            "{}: larger than the {cap} bytes it may have",
                            fetcher.describe(path),
                        )))
                    }
                    Ok(n) => {
                        progress.bytes_fetched.fetch_add(n, Ordering::Relaxed);
                        return Ok(Some(n));
                    }
                    Err(e) => e.to_string(),
                }
            }
            Err(FetchError::Fatal(e)) => return Err(e),
            Err(FetchError::Transient(m)) => m,
            Err(FetchError::RangeNotSatisfiable) => "HTTP 416".to_string(),
        };
        if attempt > opts.retries {
            return Err(Error::Other(format!(
                "{}: {err} (gave up after {attempt} attempts)",
                fetcher.describe(path)
            )));
        }
        std::thread::sleep(backoff(attempt));
    }
}
