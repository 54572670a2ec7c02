//! Fetching files from a remote repository. The [`Fetcher`] trait keeps the pull logic
//! independent of the transport (tests inject faults through it); [`HttpFetcher`] is the
//! HTTP(S) implementation over one shared `ureq` agent, whose connection pool keeps
//! connections alive across the worker threads.

use crate::error::Error;
use std::io::Read;
use std::time::Duration;

/// A successful GET.
pub struct Response {
    pub body: Box<dyn Read + Send>,
    /// Bytes the server announced for this response, if any.
    pub len: Option<u64>,
    /// The server sent the whole file although a range was asked for: start over.
    pub restarted: bool,
}

#[derive(Debug)]
pub enum FetchError {
    /// Worth retrying: connection refused/reset, timeout, 5xx, 429.
    Transient(String),
    /// Retrying will not help (4xx other than 404, bad URL).
    Fatal(Error),
    /// HTTP 416 for a `Range` request: the bytes already on disk are the whole object (or
    /// more); the caller verifies them, and starts over if they are wrong.
    RangeNotSatisfiable,
}

pub trait Fetcher: Sync {
    /// GET `path` (relative to the repository URL). `from > 0` asks for the bytes from that
    /// offset on (`Range`). `Ok(None)` means 404.
    fn fetch(&self, path: &str, from: u64) -> Result<Option<Response>, FetchError>;
    /// The full URL of `path`, for messages.
    fn describe(&self, path: &str) -> String;
}

pub struct HttpFetcher {
    base: String,
    agent: ureq::Agent,
    /// Sent with every request (the remote's cookies).
    headers: Vec<(String, String)>,
}

impl HttpFetcher {
    /// `timeout` bounds connecting, waiting for a response, and every read of the body (a
    /// server that stalls mid-transfer — slowloris — fails the request, which is retried).
    pub fn new(url: &str, timeout: Duration) -> crate::Result<HttpFetcher> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::InvalidArgument(format!(
                "unsupported remote URL {url:?}: oxtree pulls over http://, https:// and file://"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .max_idle_connections(256)
            .max_idle_connections_per_host(128)
            .user_agent(concat!("oxtree/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpFetcher {
            base: url.trim_end_matches('/').to_string(),
            agent,
            headers: Vec::new(),
        })
    }

    /// Send `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpFetcher {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, path: &str, from: u64) -> Result<Option<Response>, FetchError> {
        let url = self.describe(path);
        let mut req = self.agent.get(&url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::BadUri(m)) => {
                return Err(FetchError::Fatal(Error::InvalidArgument(format!(
                    "{url}: bad URL: {m}"
                ))))
            }
            Err(e) => return Err(FetchError::Transient(e.to_string())),
        };
        let status = resp.status().as_u16();
        let len = resp.body().content_length();
        match status {
            200 | 206 => {}
            404 | 410 => return Ok(None),
            416 if from > 0 => {
                return Err(FetchError::RangeNotSatisfiable);
            }
            429 | 500..=599 | 408 => return Err(FetchError::Transient(format!("HTTP {status}"))),
            s => {
                return Err(FetchError::Fatal(Error::Other(format!("{url}: HTTP {s}"))));
            }
        }
        let body = resp.into_body().into_with_config().limit(u64::MAX).reader();
        Ok(Some(Response {
            body: Box::new(body),
            len,
            restarted: from > 0 && status == 200,
        }))
    }

    fn describe(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }
}

/// `file://` remotes: the files of a local archive repository, read directly (with the same
/// verification as over HTTP). Non-archive local repos are copied with `pull-local`.
pub struct FileFetcher {
    root: std::path::PathBuf,
}

impl FileFetcher {
    pub fn new(root: &std::path::Path) -> FileFetcher {
        FileFetcher {
            root: root.to_path_buf(),
        }
    }
}

impl Fetcher for FileFetcher {
    fn fetch(&self, path: &str, from: u64) -> Result<Option<Response>, FetchError> {
        use std::io::Seek;
        // Object paths come from our own formatting; still refuse anything that climbs out.
        if path.split('/').any(|c| c == "..") {
            return Err(FetchError::Fatal(Error::InvalidArgument(format!(
                "refusing path {path:?}"
            ))));
        }
        let p = self.root.join(path);
        let mut f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FetchError::Fatal(Error::Io {
                    op: "open",
                    path: p,
                    source: e,
                }))
            }
        };
        let len = f.metadata().map(|m| m.len()).ok();
        if from > 0 {
            if len.is_some_and(|l| from >= l) {
                return Err(FetchError::RangeNotSatisfiable);
            }
            f.seek(std::io::SeekFrom::Start(from)).map_err(|e| {
                FetchError::Fatal(Error::Io {
                    op: "seek",
                    path: p.clone(),
                    source: e,
                })
            })?;
        }
        Ok(Some(Response {
            body: Box::new(f),
            len: len.map(|l| l.saturating_sub(from)),
            restarted: false,
        }))
    }

    fn describe(&self, path: &str) -> String {
        format!(
            "file://{}/{}",
            self.root.display(),
            path.trim_start_matches('/')
        )
    }
}
