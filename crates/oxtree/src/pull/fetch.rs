//! Fetching files from a remote repository. The [`Fetcher`] trait keeps the pull logic
//! independent of the transport (tests inject faults through it); [`HttpFetcher`] is the
//! HTTP(S) implementation over one shared `ureq` agent, whose connection pool keeps
//! connections alive across the worker threads.
//!
//! A remote's settings that shape the transport, as ostree reads them: `contenturl`
//! (objects and deltas from another server than the metadata), `mirrorlist=` URLs (a list
//! of mirrors, each request going down it until one answers), `tls-permissive`,
//! `tls-ca-path`, `tls-client-cert-path`/`tls-client-key-path`, and `proxy`.
//!
//! A hostile or broken server must not be able to hold a pull forever or fill memory
//! (security review M1, H3), so every HTTP response is guarded:
//! - each read of the body has a timeout ([`FetchOptions::timeout`]);
//! - ostree's low-speed rule: a transfer that averages less than
//!   `low-speed-limit-bytes` per second over `low-speed-time-seconds` (1000 B/s over 30 s
//!   by default) is aborted — a server trickling one byte every two seconds never trips a
//!   per-read timeout;
//! - a whole request, headers and body, has a deadline ([`FetchOptions::request_deadline`]);
//! - a body is never longer than the `max_size` the caller gives [`Fetcher::fetch_bounded`]
//!   (the size it knows from verified metadata, or its own limit): a larger
//!   `Content-Length` fails before any byte is read, and a body without one fails as soon
//!   as it passes the bound (one byte past it is read, no more).

use crate::error::{Error, IoContext};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A successful GET.
pub struct Response {
    pub body: Box<dyn Read + Send>,
    /// Bytes the server announced for this response, if any.
    pub len: Option<u64>,
    /// The server sent the whole file although a range was asked for: start over.
    pub restarted: bool,
    /// The size of the whole file, when the server said it (`Content-Range`'s total, or a
    /// full response's length).
    pub total: Option<u64>,
}

#[derive(Debug)]
pub enum FetchError {
    /// Worth retrying: connection reset, timeout, 5xx, 429 (not a refused connection).
    Transient(String),
    /// Retrying will not help (4xx other than 404, bad URL, a body larger than allowed).
    Fatal(Error),
    /// HTTP 416 for a `Range` request: the bytes already on disk are the whole object (or
    /// more); the caller verifies them, and starts over if they are wrong.
    RangeNotSatisfiable,
}

/// No bound (a content object whose size no verified metadata gives).
pub const UNBOUNDED: u64 = u64::MAX;

pub trait Fetcher: Sync {
    /// GET `path` (relative to the repository URL). `from > 0` asks for the bytes from that
    /// offset on (`Range`). The file is at most `max_size` bytes long: a response that says
    /// or turns out otherwise fails (its body errors once past the bound). `Ok(None)`
    /// means 404.
    fn fetch_bounded(
        &self,
        path: &str,
        from: u64,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError>;

    /// GET at most `len` bytes of `path` from offset `from` on (a `Range: bytes=A-B`
    /// slice), otherwise as [`Fetcher::fetch_bounded`]. The body may hold fewer bytes (the
    /// file ends sooner) or, from a fetcher without slices (this default), the whole rest of
    /// the file.
    fn fetch_slice(
        &self,
        path: &str,
        from: u64,
        len: u64,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        let _ = len;
        self.fetch_bounded(path, from, max_size)
    }

    /// The full URL of `path`, for messages.
    fn describe(&self, path: &str) -> String;

    /// Bytes of the "not found" answers so far (their bodies are not otherwise counted).
    fn not_found_bytes(&self) -> u64 {
        0
    }

    /// The shortest wait for a response's headers so far (about one round trip on a
    /// kept-alive connection), when the fetcher measures it.
    fn round_trip(&self) -> Option<Duration> {
        None
    }
}

/// How HTTP requests are bounded in time (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Connecting, waiting for the response headers, and every read of the body.
    pub timeout: Duration,
    /// ostree's `low-speed-limit-bytes`: the average rate, in bytes per second, below which
    /// a transfer is aborted (0 turns the rule off).
    pub low_speed_limit_bytes: u64,
    /// ostree's `low-speed-time-seconds`: the window over which the rate is averaged.
    pub low_speed_time: Duration,
    /// The most a single request may take, headers and body (`None`: no deadline). A large
    /// object cut off by it resumes where it stopped on the next attempt.
    pub request_deadline: Option<Duration>,
    /// The User-Agent header (`pull --append-user-agent` adds to it).
    pub user_agent: String,
    /// Accept any server certificate (the remote's `tls-permissive`).
    pub tls_permissive: bool,
    /// Trust only the CA certificates in this PEM file, instead of the built-in roots (the
    /// remote's `tls-ca-path`; libcurl's CAINFO, which ostree sets from it, replaces the
    /// bundle too).
    pub tls_ca_path: Option<PathBuf>,
    /// A client certificate (PEM, its chain may follow) and its private key (the remote's
    /// `tls-client-cert-path` and `tls-client-key-path`).
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// Send every request through this HTTP proxy (the remote's `proxy`, as
    /// `http://HOST:PORT`); otherwise the environment's (`http_proxy`, …).
    pub proxy: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(30),
            low_speed_limit_bytes: 1000,
            low_speed_time: Duration::from_secs(30),
            request_deadline: Some(Duration::from_secs(3600)),
            // ostree's, with the version `--version` reports (servers match on it).
            user_agent: "libostree/2022.7".to_string(),
            tls_permissive: false,
            tls_ca_path: None,
            tls_client_cert: None,
            proxy: None,
        }
    }
}

impl FetchOptions {
    /// The defaults with `timeout`, and a remote's `low-speed-limit-bytes` and
    /// `low-speed-time-seconds` from the repository config when it sets them (ostree's
    /// names for the same rule).
    pub fn for_remote(
        repo: &crate::repo::Repo,
        remote: &str,
        timeout: Duration,
    ) -> crate::Result<FetchOptions> {
        let mut o = FetchOptions {
            timeout,
            ..FetchOptions::default()
        };
        let num = |key: &str| -> crate::Result<Option<u64>> {
            repo.remote_option(remote, key)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| Error::Config {
                        path: repo.path().join("config"),
                        msg: format!(
                            "remote {remote:?}: {key}={v:?} is not a non-negative integer"
                        ),
                    })
                })
                .transpose()
        };
        if let Some(v) = num("low-speed-limit-bytes")? {
            o.low_speed_limit_bytes = v;
        }
        if let Some(v) = num("low-speed-time-seconds")? {
            o.low_speed_time = Duration::from_secs(v.max(1));
        }
        o.tls_permissive = repo.remote_bool(remote, "tls-permissive", false);
        let path = |key: &str| {
            repo.remote_option(remote, key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        o.tls_ca_path = path("tls-ca-path");
        o.tls_client_cert = match (path("tls-client-cert-path"), path("tls-client-key-path")) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                // ostree's words.
                return Err(Error::Other(format!(
                    "Remote \"{remote}\" must specify both \"tls-client-cert-path\" and \"tls-client-key-path\""
                )));
            }
        };
        o.proxy = repo
            .remote_option(remote, "proxy")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Ok(o)
    }
}

/// A response body held to the request's bounds: its size, the low-speed rule and the
/// deadline. Errors name the URL and the rule.
struct Guarded<R> {
    inner: R,
    url: String,
    max: u64,
    read: u64,
    low_speed_limit: u64,
    low_speed_time: Duration,
    window_start: Instant,
    window_bytes: u64,
    deadline: Option<(Instant, Duration)>,
}

impl<R: Read> Guarded<R> {
    fn new(inner: R, url: String, max: u64, opts: &FetchOptions, started: Instant) -> Self {
        Guarded {
            inner,
            url,
            max,
            read: 0,
            low_speed_limit: opts.low_speed_limit_bytes,
            low_speed_time: opts.low_speed_time,
            window_start: Instant::now(),
            window_bytes: 0,
            deadline: opts.request_deadline.map(|d| (started + d, d)),
        }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error as IoError, ErrorKind};
        let past_deadline = |deadline: Option<(Instant, Duration)>, url: &str| {
            deadline
                .filter(|(at, _)| Instant::now() >= *at)
                .map(|(_, d)| {
                    IoError::new(
                        ErrorKind::TimedOut,
                        format!(
                            "{url}: the request took longer than its {} s deadline",
                            d.as_secs()
                        ),
                    )
                })
        };
        if let Some(e) = past_deadline(self.deadline, &self.url) {
            return Err(e);
        }
        // Ask for at most one byte past the bound: enough to know the body is too long.
        let room = self.max.saturating_sub(self.read).saturating_add(1);
        let cap = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let n = match self.inner.read(buf.get_mut(..cap).unwrap_or_default()) {
            Ok(n) => n,
            // The transport enforces the deadline too (during a read): say which rule.
            Err(e) => return Err(past_deadline(self.deadline, &self.url).unwrap_or(e)),
        };
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.max {
            return Err(IoError::new(
                ErrorKind::InvalidData,
                // ostree's words
                format!(
                    "URI {} exceeded maximum size of {} bytes",
                    self.url, self.max
                ),
            ));
        }
        if self.low_speed_limit > 0 && n > 0 {
            self.window_bytes = self.window_bytes.saturating_add(n as u64);
            let elapsed = self.window_start.elapsed();
            if elapsed >= self.low_speed_time {
                let secs = elapsed.as_secs_f64();
                if (self.window_bytes as f64) < self.low_speed_limit as f64 * secs {
                    return Err(IoError::new(
                        ErrorKind::TimedOut,
                        format!(
                            "{}: the transfer averaged {:.0} bytes/s over {:.0} s, below the low-speed limit of {} bytes/s (low-speed-limit-bytes, low-speed-time-seconds)",
                            self.url,
                            self.window_bytes as f64 / secs,
                            secs,
                            self.low_speed_limit
                        ),
                    ));
                }
                self.window_start = Instant::now();
                self.window_bytes = 0;
            }
        }
        Ok(n)
    }
}

pub struct HttpFetcher {
    /// Where the metadata comes from (the remote's `url`): `config`, `summary`,
    /// `summary.sig`, `refs/` and detached commit metadata.
    meta: Vec<String>,
    /// Where everything else comes from (the remote's `contenturl`, by default `url`):
    /// objects, delta indexes, superblocks and parts. Fedora serves the small signed
    /// metadata from one host and the content from a CDN; ostree splits them the same way.
    content: Vec<String>,
    agent: ureq::Agent,
    opts: FetchOptions,
    /// Built from `opts` once (the certificate files read, the proxy URL parsed).
    transport: Transport,
    /// Sent with every request (the remote's cookies).
    headers: Vec<(String, String)>,
    /// Bytes of 404 bodies (ostree counts them in its "transferred" figure).
    not_found_bytes: std::sync::atomic::AtomicU64,
    /// The shortest wait for response headers so far, in microseconds (u64::MAX: none yet).
    min_wait_us: std::sync::atomic::AtomicU64,
    /// The server answered a `Range` past a file's end with bytes past it (ostree's own
    /// trivial-httpd, on libsoup 2, does): from then on no range has an end, only a start
    /// (`bytes=N-`, the rest of the file, which such a server answers right), as libcurl
    /// asks when ostree resumes a download.
    ranges_broken: std::sync::atomic::AtomicBool,
    /// The summary a metalink named and verified: served for `summary` instead of fetching
    /// it again (a second fetch could bring other bytes than the ones checked).
    pinned_summary: Option<Vec<u8>>,
}

impl HttpFetcher {
    /// [`HttpFetcher::with_options`] with the default low-speed rule and deadline.
    pub fn new(url: &str, timeout: Duration) -> crate::Result<HttpFetcher> {
        HttpFetcher::with_options(
            url,
            FetchOptions {
                timeout,
                ..FetchOptions::default()
            },
        )
    }

    pub fn with_options(url: &str, opts: FetchOptions) -> crate::Result<HttpFetcher> {
        let base = http_base(url)?;
        HttpFetcher::build(vec![base.clone()], vec![base], opts)
    }

    /// A remote's fetcher: metadata from `url`, content from `contenturl` (when given),
    /// each either an HTTP(S) URL or `mirrorlist=URL`, a list of mirrors fetched (with
    /// `headers`, and up to `retries` retries) before this returns (see
    /// [`HttpFetcher::mirrors`]).
    pub fn for_urls(
        url: &str,
        contenturl: Option<&str>,
        opts: FetchOptions,
        headers: Vec<(String, String)>,
        retries: u32,
    ) -> crate::Result<HttpFetcher> {
        let mut f = HttpFetcher::build(Vec::new(), Vec::new(), opts)?;
        f.headers = headers;
        if let Some(ml) = url.strip_prefix("metalink=") {
            let (base, summary) = f.metalink(ml, retries)?;
            f.meta = vec![base];
            f.pinned_summary = Some(summary);
        } else {
            f.meta = f.mirrors(url, retries)?;
        }
        f.content = match contenturl {
            Some(c) => f.mirrors(c, retries)?,
            None => f.meta.clone(),
        };
        Ok(f)
    }

    fn build(
        meta: Vec<String>,
        content: Vec<String>,
        opts: FetchOptions,
    ) -> crate::Result<HttpFetcher> {
        let transport = Transport::new(&opts)?;
        Ok(HttpFetcher {
            meta,
            content,
            agent: agent(&opts, &transport),
            transport,
            opts,
            headers: Vec::new(),
            not_found_bytes: std::sync::atomic::AtomicU64::new(0),
            min_wait_us: std::sync::atomic::AtomicU64::new(u64::MAX),
            ranges_broken: std::sync::atomic::AtomicBool::new(false),
            pinned_summary: None,
        })
    }

    /// The servers `url` names, in order: itself, or for `mirrorlist=LIST` the mirrors
    /// listed there, one URL per line, as ostree 2022.7 reads them: blank lines and `#`
    /// comments skipped, and so are lines that are not http(s) URLs; mirrors are checked in
    /// order by fetching their `config` until one serves it, and those before it are
    /// dropped (so no request waits on a dead first mirror). Errors are ostree's.
    fn mirrors(&self, url: &str, retries: u32) -> crate::Result<Vec<String>> {
        let Some(list) = url.strip_prefix("mirrorlist=") else {
            return Ok(vec![http_base(url)?]);
        };
        http_base(list)?;
        let text = self
            .fetch_whole(list, retries)
            .map_err(|m| Error::Other(format!("While fetching mirrorlist '{list}': {m}")))?;
        let mut mirrors = Vec::new();
        for line in String::from_utf8_lossy(&text).split('\n') {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Ok(base) = http_base(line) else {
                tracing::debug!("mirrorlist {list}: not an http(s) URL: {line:?}");
                continue;
            };
            if mirrors.is_empty() {
                if let Err(e) = self.fetch_whole(&format!("{base}/config"), retries) {
                    tracing::debug!("mirrorlist {list}: no config from {base}: {e}");
                    continue;
                }
            }
            mirrors.push(base);
        }
        if mirrors.is_empty() {
            return Err(Error::Other(format!(
                "No valid mirrors were found in mirrorlist '{list}'"
            )));
        }
        Ok(mirrors)
    }

    /// A metalink remote: fetch the document, then each URL it names in turn until one
    /// serves the summary it describes (size and digest); that URL's directory is the
    /// repository. Returns it with the verified summary. Errors are ostree's.
    fn metalink(&self, url: &str, retries: u32) -> crate::Result<(String, Vec<u8>)> {
        http_base(url)?;
        let text = self
            .fetch_whole(url, retries)
            .map_err(|m| Error::Other(format!("While fetching metalink '{url}': {m}")))?;
        let ml = super::metalink::parse(&String::from_utf8_lossy(&text), "summary")?;
        let mut last = String::new();
        for target in &ml.urls {
            // Only http(s) targets (the document may name anything).
            let base = target.rsplit_once('/').map_or(target.as_str(), |(b, _)| b);
            let attempt = http_base(base).map_err(|e| e.to_string()).and_then(|base| {
                let b = self.fetch_whole(target, retries)?;
                ml.check(&b).map(|()| (base, b))
            });
            match attempt {
                Ok((base, summary)) => return Ok((base, summary)),
                Err(e) => {
                    tracing::debug!("metalink {url}: {target}: {e}");
                    last = e;
                }
            }
        }
        Err(Error::Other(format!(
            "Exhausted {} metalink targets, last error: {last}",
            ml.urls.len()
        )))
    }

    /// GET a small file (a mirror list, a mirror's config) whole, with up to `retries`
    /// retries of transient failures; the error in ostree's words where it has them.
    fn fetch_whole(&self, url: &str, retries: u32) -> Result<Vec<u8>, String> {
        const CAP: u64 = 16 << 20;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.get_url(url, 0, None, CAP) {
                Ok(Some(mut r)) => {
                    let mut out = Vec::new();
                    match r.body.read_to_end(&mut out) {
                        Ok(_) => return Ok(out),
                        Err(e) => e.to_string(),
                    }
                }
                Ok(None) => return Err("Server returned HTTP 404".into()),
                Err(FetchError::Fatal(e)) => return Err(e.to_string()),
                Err(FetchError::Transient(m)) => m,
                Err(FetchError::RangeNotSatisfiable) => "HTTP 416".into(),
            };
            if attempt > retries {
                return Err(format!("{url}: {err}"));
            }
            std::thread::sleep(super::retry::backoff(attempt));
        }
    }

    /// Whether `path` comes from the remote's `url` rather than its `contenturl`: what
    /// ostree 2022.7 fetches from its metadata mirrors (the summary and its signature, the
    /// config, refs of a server without a summary, and a commit's detached metadata).
    pub fn is_metadata(path: &str) -> bool {
        let path = path.trim_start_matches('/');
        matches!(path, "config" | "summary" | "summary.sig")
            || path.starts_with("refs/")
            || (path.starts_with("objects/") && path.ends_with(".commitmeta"))
    }

    fn bases_for(&self, path: &str) -> &[String] {
        if Self::is_metadata(path) {
            &self.meta
        } else {
            &self.content
        }
    }

    /// Send `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpFetcher {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the low-speed rule: abort a transfer averaging below `bytes_per_second` over
    /// `window` (0 bytes turns it off).
    pub fn low_speed_limit(mut self, bytes_per_second: u64, window: Duration) -> Self {
        self.opts.low_speed_limit_bytes = bytes_per_second;
        self.opts.low_speed_time = window.max(Duration::from_millis(1));
        self
    }

    /// Set the deadline of a whole request (`None`: none).
    pub fn request_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.opts.request_deadline = deadline;
        self.agent = agent(&self.opts, &self.transport);
        self
    }

    /// Apply a remote's `low-speed-limit-bytes` / `low-speed-time-seconds` from the
    /// repository config (see [`FetchOptions::for_remote`]).
    pub fn remote_options(mut self, repo: &crate::repo::Repo, remote: &str) -> crate::Result<Self> {
        let o = FetchOptions::for_remote(repo, remote, self.opts.timeout)?;
        self.opts.low_speed_limit_bytes = o.low_speed_limit_bytes;
        self.opts.low_speed_time = o.low_speed_time;
        Ok(self)
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }
}

/// The TLS settings and proxy of a fetcher's agent.
#[derive(Debug, Clone)]
struct Transport {
    tls: ureq::tls::TlsConfig,
    /// `None`: the environment's, as ureq reads it.
    proxy: Option<ureq::Proxy>,
}

impl Transport {
    fn new(opts: &FetchOptions) -> crate::Result<Transport> {
        use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder().disable_verification(opts.tls_permissive);
        if let Some(p) = &opts.tls_ca_path {
            let certs = pem_certs(p)?;
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if let Some((cert, key)) = &opts.tls_client_cert {
            let chain = pem_certs(cert)?;
            let bytes = read_pem_file(key)?;
            let key = ureq::tls::parse_pem(&bytes)
                .find_map(|i| match i {
                    Ok(PemItem::PrivateKey(k)) => Some(k),
                    _ => None,
                })
                .ok_or_else(|| Error::Config {
                    path: key.clone(),
                    msg: "no PEM private key in the file (tls-client-key-path)".into(),
                })?;
            check_client_cert(&chain, &bytes, cert)?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let proxy = opts
            .proxy
            .as_deref()
            .map(|p| {
                let proxy = ureq::Proxy::new(p).map_err(|e| {
                    Error::InvalidArgument(format!("proxy {p:?}: {e} (expected http://HOST:PORT)"))
                })?;
                // ureq is built without SOCKS support (it would panic on such a proxy).
                match proxy.protocol() {
                    ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https => Ok(proxy),
                    _ => Err(Error::InvalidArgument(format!(
                        "proxy {p:?}: oxtree supports only HTTP proxies (http://HOST:PORT)"
                    ))),
                }
            })
            .transpose()?;
        Ok(Transport {
            tls: tls.build(),
            proxy,
        })
    }
}

/// Refuse a client certificate and key that rustls will not use (an X.509 v1 certificate,
/// a key of an unsupported kind): ureq would panic on them when it first connects.
fn check_client_cert(
    chain: &[ureq::tls::Certificate<'static>],
    key_pem: &[u8],
    path: &Path,
) -> crate::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let refuse = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg: format!(
            "unusable client certificate or key (tls-client-cert-path, tls-client-key-path): {msg}"
        ),
    };
    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| refuse(format!("{e:?}")))?;
    let chain = chain
        .iter()
        .map(|c| CertificateDer::from(c.der()).into_owned())
        .collect();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| refuse(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key_der)
        .map(|_| ())
        .map_err(|e| refuse(e.to_string()))
}

/// A certificate or key file named by the remote's config: a regular file of at most
/// 16 MiB (not `/dev/zero`, which would fill memory, nor a FIFO, which would hang the pull).
fn read_pem_file(p: &Path) -> crate::Result<Vec<u8>> {
    const MAX: u64 = 16 << 20;
    use std::os::unix::fs::OpenOptionsExt;
    // (Non-blocking: opening a FIFO must not wait for a writer.)
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .ctx("open", p)?;
    let m = f.metadata().ctx("stat", p)?;
    if !m.is_file() || m.len() > MAX {
        return Err(Error::Config {
            path: p.to_path_buf(),
            msg: "not a PEM file (a regular file of at most 16 MiB)".into(),
        });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX), &mut bytes).ctx("read", p)?;
    Ok(bytes)
}

/// The certificates of a PEM file (at least one).
fn pem_certs(p: &Path) -> crate::Result<Vec<ureq::tls::Certificate<'static>>> {
    let bytes = read_pem_file(p)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Config {
                    path: p.to_path_buf(),
                    msg: format!("not a PEM file: {e}"),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::Config {
            path: p.to_path_buf(),
            msg: "no PEM certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn agent(opts: &FetchOptions, transport: &Transport) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .tls_config(transport.tls.clone())
        .http_status_as_error(false)
        .timeout_connect(Some(opts.timeout))
        .timeout_recv_response(Some(opts.timeout))
        .timeout_per_read(Some(opts.timeout))
        .timeout_per_call(opts.request_deadline)
        .max_idle_connections(256)
        .max_idle_connections_per_host(192)
        // Per connection, zero-filled when first used: the defaults (128 KiB each way)
        // cost 32 MiB at 128 connections. Requests are small; responses stream through,
        // and 64 KiB still holds the largest response head ureq accepts.
        .input_buffer_size(64 << 10)
        .output_buffer_size(16 << 10)
        .user_agent(opts.user_agent.as_str());
    if transport.proxy.is_some() {
        config = config.proxy(transport.proxy.clone());
    }
    let config = config.build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        CachingResolver::<ureq::unversioned::resolver::DefaultResolver>::default(),
    )
}

/// How long a looked-up host's addresses are used before it is looked up again.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// ureq's resolver, remembering each `scheme://host:port` for [`RESOLVE_TTL`]. ureq
/// resolves the host of every request before it looks in its connection pool, and with a
/// timeout set its default resolver runs each lookup on a new thread: a pull of 6,000
/// objects made 6,000 threads and `getaddrinfo` calls (a third of its system time on
/// loopback). A lookup that fails is not remembered.
#[derive(Debug, Default)]
struct CachingResolver<R = ureq::unversioned::resolver::DefaultResolver> {
    inner: R,
    cache: Mutex<HashMap<String, (Instant, ureq::unversioned::resolver::ResolvedSocketAddrs)>>,
}

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver
    for CachingResolver<R>
{
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        if let Some((at, addrs)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            if at.elapsed() < RESOLVE_TTL {
                return Ok(addrs);
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

impl Fetcher for HttpFetcher {
    fn not_found_bytes(&self) -> u64 {
        self.not_found_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn round_trip(&self) -> Option<Duration> {
        match self.min_wait_us.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn fetch_bounded(
        &self,
        path: &str,
        from: u64,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        self.get(path, from, None, max_size)
    }

    fn fetch_slice(
        &self,
        path: &str,
        from: u64,
        len: u64,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        let last = from.saturating_add(len.max(1)).saturating_sub(1);
        self.get(path, from, Some(last), max_size)
    }

    fn describe(&self, path: &str) -> String {
        let base = self.bases_for(path).first().map_or("", String::as_str);
        format!("{base}/{}", path.trim_start_matches('/'))
    }
}

/// `url` without its trailing slashes, if it is an HTTP(S) URL.
fn http_base(url: &str) -> crate::Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::InvalidArgument(format!(
            "unsupported remote URL {url:?}: oxtree pulls over http://, https:// and file://"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

impl HttpFetcher {
    /// GET `path` from byte `from` on, up to byte `last` when given (both inclusive).
    fn get(
        &self,
        path: &str,
        from: u64,
        last: Option<u64>,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        if let (Some(b), "summary") = (&self.pinned_summary, path.trim_start_matches('/')) {
            let end = last.map_or(b.len(), |l| (l as usize + 1).min(b.len()));
            let start = (from as usize).min(end);
            let part = b[start..end].to_vec();
            return Ok(Some(Response {
                len: Some(part.len() as u64),
                body: Box::new(std::io::Cursor::new(part)),
                restarted: false,
                total: Some(b.len() as u64),
            }));
        }
        // Each mirror in turn, until one serves the file: a mirror that is down or answers
        // with an HTTP error (404 too) hands the request to the next, as in ostree; the
        // last one's answer stands.
        let mut result = Ok(None);
        for base in self.bases_for(path) {
            let url = format!("{base}/{}", path.trim_start_matches('/'));
            result = self.get_url(&url, from, last, max_size);
            if matches!(result, Ok(Some(_)) | Err(FetchError::RangeNotSatisfiable)) {
                break;
            }
        }
        result
    }

    /// [`HttpFetcher::get`] of one URL.
    fn get_url(
        &self,
        url: &str,
        from: u64,
        last: Option<u64>,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
        let url = url.to_string();
        let started = Instant::now();
        let mut req = self.agent.get(&url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let broken = self
            .ranges_broken
            .load(std::sync::atomic::Ordering::Relaxed);
        match last {
            // `bytes=0-` too: the whole file, as a part (such a server may cut off a reply
            // to no range, as ostree's test server does on purpose, yet not a part).
            _ if broken => req = req.header("Range", format!("bytes={from}-")),
            Some(last) => req = req.header("Range", format!("bytes={from}-{last}")),
            None if from > 0 => req = req.header("Range", format!("bytes={from}-")),
            None => {}
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::BadUri(m)) => {
                return Err(FetchError::Fatal(Error::InvalidArgument(format!(
                    "{url}: bad URL: {m}"
                ))))
            }
            // Nothing listens there: as ostree, say so at once instead of retrying for
            // seconds (a server that went away mid-pull fails the pull the same way; the
            // next pull resumes from what was stored).
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(FetchError::Fatal(Error::Other(format!("{url}: {e}"))))
            }
            // A certificate the client does not trust (or a handshake the server refuses)
            // fails the same way every time: at once, not after the retries.
            Err(e) => {
                let Some(why) = tls_failure(&e) else {
                    return Err(FetchError::Transient(format!("{url}: {e}")));
                };
                // A self-signed server certificate (openssl req -x509 makes it a CA) is not
                // taken as its own trust anchor here, as libcurl takes it.
                let self_signed = if why.contains("CaUsedAsEndEntity") {
                    "; the server's certificate is a CA's (a self-signed one?): give the server \
                     a certificate signed by a CA, and that CA in tls-ca-path"
                } else {
                    ""
                };
                return Err(FetchError::Fatal(Error::Other(format!(
                    "{url}: TLS: {why} (check the server's certificate, or the remote's \
                     tls-ca-path{self_signed})"
                ))));
            }
        };
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.min_wait_us
            .fetch_min(waited, std::sync::atomic::Ordering::Relaxed);
        let status = resp.status().as_u16();
        let mut len = resp.body().content_length();
        match status {
            200 | 206 => {}
            404 | 410 => {
                self.not_found_bytes
                    .fetch_add(len.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
                return Ok(None);
            }
            416 if from > 0 => {
                return Err(FetchError::RangeNotSatisfiable);
            }
            429 | 500..=599 | 408 => return Err(FetchError::Transient(format!("HTTP {status}"))),
            s => {
                return Err(FetchError::Fatal(Error::Other(format!("{url}: HTTP {s}"))));
            }
        }
        let restarted = from > 0 && status == 200;
        // The bytes of the body to read, when the server says fewer are the file's than it
        // sends (a range past the end, answered as asked for).
        let mut clamp = None;
        let total = if status == 206 {
            // The part must begin where it was asked to: bytes from elsewhere would be
            // appended at the wrong offset (the checksum would catch it, after the download).
            let range = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok());
            match range.map(parse_content_range) {
                Some(Some((start, end, total))) if start == from => {
                    if let Some(t) = total.filter(|&t| end >= t) {
                        self.ranges_broken
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        clamp = Some(t - start);
                        len = len.map(|l| l.min(t - start));
                    }
                    total
                }
                Some(_) => {
                    return Err(FetchError::Fatal(Error::Other(format!(
                        "{url}: asked for the bytes from {from} on, the server answered with Content-Range {:?}",
                        range.unwrap_or_default()
                    ))))
                }
                None => None,
            }
        } else {
            len
        };
        // A 206 carries the file from `from` on; a 200 the whole file.
        let max_body = if from > 0 && !restarted {
            max_size.saturating_sub(from)
        } else {
            max_size
        };
        if let Some(l) = len.filter(|&l| l > max_body) {
            return Err(FetchError::Fatal(Error::Other(format!(
                "URI {url} exceeded maximum size of {max_body} bytes (the server announces {l})"
            ))));
        }
        let body = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let body: Box<dyn Read + Send> = match clamp {
            Some(n) => Box::new(body.take(n)),
            None => Box::new(body),
        };
        Ok(Some(Response {
            body: Box::new(Guarded::new(body, url, max_body, &self.opts, started)),
            len,
            restarted,
            total,
        }))
    }
}

/// What went wrong in a TLS handshake, if `e` is such a failure.
fn tls_failure(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Rustls(r) => Some(r.to_string()),
        ureq::Error::Tls(m) => Some(m.to_string()),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        _ => None,
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`): the first and last bytes and
/// the total. `None` when the header is not of that form.
fn parse_content_range(h: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = h.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    // (A LAST past the end is taken: some servers, ostree's own trivial-httpd among them,
    // echo the end of the range asked for. The body's length and the checksum decide.)
    let fits = last >= first && total.is_none_or(|t| first < t || first == 0);
    fits.then_some((first, last, total))
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
    fn fetch_bounded(
        &self,
        path: &str,
        from: u64,
        max_size: u64,
    ) -> Result<Option<Response>, FetchError> {
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
        if let Some(l) = len.filter(|&l| l > max_size) {
            return Err(FetchError::Fatal(Error::Other(format!(
                "{}: {l} bytes, more than the {max_size} expected",
                self.describe(path)
            ))));
        }
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
        // A file that grows while it is read is held to the bound too.
        let max_body = max_size.saturating_sub(from);
        Ok(Some(Response {
            body: Box::new(Guarded::new(
                f,
                self.describe(path),
                max_body,
                &FetchOptions {
                    low_speed_limit_bytes: 0,
                    request_deadline: None,
                    ..FetchOptions::default()
                },
                Instant::now(),
            )),
            len: len.map(|l| l.saturating_sub(from)),
            restarted: false,
            total: len,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use ureq::unversioned::resolver::{DefaultResolver, Resolver};

    /// Counts lookups; fails those of hosts named "bad".
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Resolver for Counting {
        fn resolve(
            &self,
            uri: &ureq::http::Uri,
            config: &ureq::config::Config,
            timeout: ureq::unversioned::transport::NextTimeout,
        ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error>
        {
            self.0.fetch_add(1, Ordering::Relaxed);
            if uri.host() == Some("bad") {
                return Err(ureq::Error::HostNotFound);
            }
            DefaultResolver::default().resolve(uri, config, timeout)
        }
    }

    fn lookup(r: &CachingResolver<Counting>, url: &str) -> bool {
        let uri: ureq::http::Uri = url.parse().expect("uri");
        let config = ureq::config::Config::default();
        let timeout = ureq::unversioned::transport::NextTimeout::default();
        r.resolve(&uri, &config, timeout).is_ok()
    }

    #[test]
    fn content_ranges_give_their_first_byte_and_total() {
        assert_eq!(
            parse_content_range("bytes 0-262143/11800000"),
            Some((0, 262_143, Some(11_800_000)))
        );
        assert_eq!(
            parse_content_range("bytes 100-199/*"),
            Some((100, 199, None))
        );
        assert_eq!(parse_content_range(" bytes  5-5/6 "), Some((5, 5, Some(6))));
        assert_eq!(
            parse_content_range("bytes 0-100/100"),
            Some((0, 100, Some(100)))
        );
        assert_eq!(
            parse_content_range("bytes 0-65535/42"),
            Some((0, 65535, Some(42)))
        );
        for bad in [
            "bytes 10-5/100",
            "bytes 200-300/100",
            "bytes */100",
            "items 0-1/2",
            "bytes 0-1",
            "bytes a-b/c",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn metadata_comes_from_url_and_the_rest_from_contenturl() {
        for p in [
            "config",
            "summary",
            "summary.sig",
            "/summary",
            "refs/heads/main",
            "objects/ab/cdef.commitmeta",
        ] {
            assert!(HttpFetcher::is_metadata(p), "{p}");
        }
        for p in [
            "objects/ab/cdef.commit",
            "objects/ab/cdef.dirtree",
            "objects/ab/cdef.dirmeta",
            "objects/ab/cdef.filez",
            "delta-indexes/Ay/xyz.index",
            "deltas/Ay/xyz/superblock",
            "deltas/Ay/xyz/0",
            "summary.sig.tmp",
        ] {
            assert!(!HttpFetcher::is_metadata(p), "{p}");
        }
    }

    #[test]
    fn each_host_is_looked_up_once_and_failures_are_not_remembered() {
        let r = CachingResolver::<Counting>::default();
        for _ in 0..100 {
            assert!(lookup(&r, "http://127.0.0.1:8080/objects/ab/cd.filez"));
        }
        assert_eq!(r.inner.0.load(Ordering::Relaxed), 1);
        // Another port or scheme is another entry.
        assert!(lookup(&r, "http://127.0.0.1:8081/config"));
        assert_eq!(r.inner.0.load(Ordering::Relaxed), 2);
        assert!(!lookup(&r, "http://bad:80/config"));
        assert!(!lookup(&r, "http://bad:80/config"));
        assert_eq!(r.inner.0.load(Ordering::Relaxed), 4);
    }
}
