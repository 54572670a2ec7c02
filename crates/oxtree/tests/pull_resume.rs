//! Pull resumes a large object cut off mid-transfer with a `Range` request instead of
//! starting over, through a fault-injecting [`Fetcher`] over a local archive repo.

use oxtree::pull::{FetchError, Fetcher, PullOptions, PullProgress, Response};
use oxtree::repo::{CommitOptions, RefName, RemoteAddOptions};
use oxtree::{Repo, RepoMode};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Serves files of a directory; the first GET of `cut_path` fails after `cut_at` bytes.
struct FlakyFiles {
    root: PathBuf,
    cut_path: String,
    cut_at: u64,
    cut_done: Mutex<bool>,
    served: Arc<AtomicU64>,
    ranged: Mutex<Vec<(String, u64)>>,
}

/// A body that counts what it serves and can fail like a reset connection.
struct Body {
    inner: std::io::Cursor<Vec<u8>>,
    served: Arc<AtomicU64>,
    fail_after: Option<u64>,
    sent: u64,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let max = match self.fail_after {
            Some(limit) if self.sent >= limit => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by test",
                ))
            }
            Some(limit) => buf.len().min((limit - self.sent) as usize),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..max])?;
        self.sent += n as u64;
        self.served.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Fetcher for FlakyFiles {
    fn fetch_bounded(
        &self,
        path: &str,
        from: u64,
        _max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        let Ok(mut data) = std::fs::read(self.root.join(path)) else {
            return Ok(None);
        };
        if from > 0 {
            self.ranged
                .lock()
                .expect("lock")
                .push((path.to_string(), from));
            data.drain(..(from as usize).min(data.len()));
        }
        let mut fail_after = None;
        if path == self.cut_path {
            let mut done = self.cut_done.lock().expect("lock");
            if !*done {
                *done = true;
                fail_after = Some(self.cut_at);
            }
        }
        let len = data.len() as u64;
        let body = Body {
            inner: std::io::Cursor::new(data),
            served: self.served.clone(),
            fail_after,
            sent: 0,
        };
        Ok(Some(Response {
            body: Box::new(body),
            len: Some(len),
            restarted: false,
            total: None,
        }))
    }

    fn describe(&self, path: &str) -> String {
        format!("test://{path}")
    }
}

#[test]
fn cut_off_large_object_resumes_with_range() {
    let tmp = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or_else(|_| "/var/tmp".into()))
        .expect("tmp");
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    // 6 MiB of incompressible bytes: its .filez is well above the resume threshold.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(tree.join("big.bin"), &big).expect("write");
    std::fs::write(tree.join("small"), b"small\n").expect("write");
    let src = Repo::create(&tmp.path().join("src"), RepoMode::Archive).expect("src");
    let main = RefName::parse("main").expect("ref");
    let res = src
        .commit_dir(
            &tree,
            Some(&main),
            &CommitOptions {
                subject: "big".into(),
                ..Default::default()
            },
        )
        .expect("commit");
    let big_csum = src.lookup_path(&res.commit, "/big.bin").expect("lookup");
    let oxtree::repo::PathEntry::File(big_csum) = big_csum else {
        panic!("not a file")
    };
    let hex = big_csum.to_hex();
    let cut_path = format!("objects/{}/{}.filez", &hex[..2], &hex[2..]);
    let filez_len = std::fs::metadata(src.path().join(&cut_path))
        .expect("stat")
        .len();

    let mut dst = Repo::create(&tmp.path().join("dst"), RepoMode::BareUser).expect("dst");
    dst.remote_add(
        "origin",
        "test://",
        &RemoteAddOptions {
            no_gpg_verify: true,
            ..Default::default()
        },
    )
    .expect("remote");
    let fetcher = FlakyFiles {
        root: src.path().to_path_buf(),
        cut_path: cut_path.clone(),
        cut_at: filez_len * 2 / 5,
        cut_done: Mutex::new(false),
        served: Arc::new(AtomicU64::new(0)),
        ranged: Mutex::new(Vec::new()),
    };
    let opts = PullOptions {
        retries: 3,
        ..Default::default()
    };
    let out = dst
        .pull_with(
            &fetcher,
            "origin",
            &["main".to_string()],
            &opts,
            &PullProgress::default(),
        )
        .expect("pull completes after the cut");
    assert_eq!(out.refs[0].2, res.commit);
    let ranged = fetcher.ranged.lock().expect("lock").clone();
    assert_eq!(
        ranged,
        vec![(cut_path, filez_len * 2 / 5)],
        "expected exactly one Range request continuing at the cut"
    );
    // Everything served once, plus nothing re-sent for the big object.
    let served = fetcher.served.load(Ordering::Relaxed);
    let src_total: u64 = walk_size(&src.path().join("objects"));
    assert!(
        served <= src_total + 4096,
        "served {served} bytes for a {src_total}-byte repo"
    );
    assert!(dst.fsck(&Default::default()).expect("fsck").ok());
    assert!(
        !dst.path()
            .join("tmp/pull-partial")
            .read_dir()
            .expect("dir")
            .any(|_| true),
        "partial download left behind"
    );
}

fn walk_size(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).expect("dir").flatten() {
        let m = e.metadata().expect("meta");
        n += if m.is_dir() {
            walk_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}
