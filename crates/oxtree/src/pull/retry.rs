//! Retries with exponential back-off for small GETs (metadata, summary, delta parts).

use super::{FetchError, Fetcher, PullOptions, PullProgress};
use crate::error::{Error, Result};
use std::io::{Read, Seek, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

/// What a failed read of a response body says: libcurl's words (what ostree reports, and
/// scripts match) for a body that ends before its length.
pub(super) fn read_failure(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "Transferred a partial file".to_string()
    } else {
        e.to_string()
    }
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
/// on 404. A transfer cut short is resumed where it stopped (a `Range` request for the
/// rest), not started over: a server or proxy that drops long transfers still gets the
/// file through, a piece per attempt.
pub(super) fn fetch_retry_into<D: Download>(
    fetcher: &dyn Fetcher,
    path: &str,
    opts: &PullOptions,
    progress: &PullProgress,
    cap: u64,
    out: &mut D,
) -> Result<Option<u64>> {
    let mut attempt = 0;
    // Bytes of the file already in `out`.
    let mut have = 0u64;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let err = match fetcher.fetch_bounded(path, have, cap) {
            Ok(None) => return Ok(None),
            Ok(Some(mut r)) => {
                let fresh = have == 0 || r.restarted;
                let mut counted = crate::fsutil::Counted {
                    inner: &mut *out,
                    n: 0,
                };
                let start = if fresh {
                    have = 0;
                    counted
                        .inner
                        .restart(r.len.map(|l| l.min(cap.saturating_add(1))))
                } else {
                    Ok(())
                };
                let got = start.and_then(|()| {
                    std::io::copy(
                        &mut (&mut r.body).take(cap.saturating_add(1).saturating_sub(have)),
                        &mut counted,
                    )
                });
                have += counted.n;
                progress
                    .bytes_fetched
                    .fetch_add(counted.n, Ordering::Relaxed);
                match got {
                    Ok(_) if have > cap => {
                        return Err(Error::Other(format!(
                            "{}: larger than the {cap} bytes it may have",
                            fetcher.describe(path),
                        )))
                    }
                    Ok(_) => return Ok(Some(have)),
                    Err(e) => read_failure(&e),
                }
            }
            Err(FetchError::Fatal(e)) => return Err(e),
            Err(FetchError::Transient(m)) => m,
            Err(FetchError::RangeNotSatisfiable) => {
                // The server no longer has what was started: start over.
                have = 0;
                "HTTP 416".to_string()
            }
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
