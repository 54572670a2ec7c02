//! Progress counters that long operations (commit, checkout, fsck) update as they go; the
//! CLI reads them to draw a status line. The library never prints.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    /// Items (files, objects) finished so far.
    pub done: AtomicU64,
    /// Items known so far (may grow while scanning).
    pub total: AtomicU64,
    /// Bytes processed.
    pub bytes: AtomicU64,
    /// Set when the operation ends, successfully or not.
    pub finished: AtomicBool,
}

impl Progress {
    pub fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }
    pub fn item(&self, bytes: u64) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}
