//! Retries with exponential back-off for small GETs (metadata, summary, delta parts).

use super::{FetchError, Fetcher, PullOptions, PullProgress};
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

/// GET a small file with retries; `Ok(None)` on 404.
pub(super) fn fetch_retry(
    fetcher: &dyn Fetcher,
    path: &str,
    opts: &PullOptions,
    progress: &PullProgress,
    cap: u64,
) -> Result<Option<Vec<u8>>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let err = match fetcher.fetch_bounded(path, 0, cap) {
            Ok(None) => return Ok(None),
            Ok(Some(mut r)) => {
                let mut b = Vec::new();
                match (&mut r.body).take(cap + 1).read_to_end(&mut b) {
                    Ok(_) if b.len() as u64 > cap => {
                        return Err(Error::Other(format!(
                            "{}: larger than the {} MiB metadata limit",
                            fetcher.describe(path),
                            cap >> 20
                        )))
                    }
                    Ok(n) => {
                        progress
                            .bytes_fetched
                            .fetch_add(n as u64, Ordering::Relaxed);
                        return Ok(Some(b));
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
