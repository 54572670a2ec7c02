//! `oxtree serve`: a static HTTP server for an archive repository, enough to serve a fleet
//! from one box, and safe to put on a network (security review H5, M7):
//!
//! - Only **archive** repositories are served. In the other modes a symlink object is a real
//!   symlink and a file object the file itself (owners and modes included), which are not
//!   what a client expects to download and can point anywhere on the server.
//! - Only what a client reads: `config`, `summary`, `summary.sig`, and files under
//!   `objects/`, `refs/heads/`, `refs/remotes/`, `refs/mirrors/`, `deltas/`,
//!   `delta-indexes/`, `extensions/` and `graph/` (the update agent's signed update graphs,
//!   published beside the repo). Nothing under `tmp/` or `state/`, not the `.lock`,
//!   no directory listings (404).
//! - Every file is opened with [`crate::fsutil::beneath::open_beneath`]: a symlink anywhere
//!   in the requested path — a file, a directory, or a whole `objects/` — is a 404, checked
//!   by the kernel during the open (no window between a check and the open).
//! - Connections: at most `max_connections` are served at once (more wait in the kernel's
//!   listen queue until one ends, so file descriptors stay bounded); a request's headers must
//!   arrive within `header_timeout` (hyper's timer; it also bounds how long an idle
//!   keep-alive connection waits for its next request); a connection on which no byte moves
//!   either way for `idle_timeout` is closed (a client that never sends, or stops reading a
//!   response). Together these keep slowloris clients from holding the server.
//!
//! Why hyper directly (with hyper-util's connection builder for HTTP/1.1 and HTTP/2)
//! rather than tower-http's `ServeDir`, used before: `ServeDir` opens files by path,
//! following symlinks, and has no hook to open them another way. What a repository server
//! needs is small: GET and HEAD, one byte range (`pull` resumes large objects with
//! `Range: bytes=N-`), and correct lengths. Each request opens the file on its connection's
//! task and, for files up to 1 MiB (nearly every object), reads it whole there; larger files
//! stream in 256 KiB reads. One access-log line per request goes to stderr.

use crate::error::{Error, IoContext, Result};
use crate::repo::{Repo, RepoMode};
use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: String,
    pub port: u16,
    /// Print one access-log line per request to stderr.
    pub log: bool,
    /// Connections served at once; more wait to be accepted (default 512).
    pub max_connections: usize,
    /// A request's headers must arrive within this (default 30 s, as hyper's default).
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: "127.0.0.1".into(),
            port: 8080,
            log: true,
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Files up to this size are read with their open, in one blocking task.
const SMALL_FILE: u64 = 1 << 20;
/// Larger files stream in reads of this size.
const CHUNK: usize = 256 << 10;

/// The repository files a client reads (see the module doc); `rel` has no leading `/`.
fn servable(rel: &str) -> bool {
    const DIRS: [&str; 8] = [
        "objects/",
        "refs/heads/",
        "refs/remotes/",
        "refs/mirrors/",
        "deltas/",
        "delta-indexes/",
        "extensions/",
        "graph/",
    ];
    matches!(rel, "config" | "summary" | "summary.sig") || DIRS.iter().any(|d| rel.starts_with(d))
}

/// The request path as a relative path of plain components, percent-decoded; `None` for
/// anything else (`..`, `.`, empty components, NUL, bad escapes, not UTF-8).
fn request_path(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix('/')?;
    let mut bytes = Vec::with_capacity(rest.len());
    let mut it = rest.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            let s = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(s, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let p = String::from_utf8(bytes).ok()?;
    let plain = !p.contains('\0') && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    plain.then_some(p)
}

/// What a `Range` header asks of a file of `len` bytes: `None` to ignore it (not a single
/// byte range: the whole file is sent, as RFC 9110 allows), `Some(None)` if it cannot be
/// satisfied, else the first and last byte.
fn parse_range(h: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = h.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: Option<u64> = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    if start >= len {
        return Some(None);
    }
    Some(Some((start, end.unwrap_or(u64::MAX).min(len - 1))))
}

/// A response body: bytes read with the open, or the rest of a file read as it is sent.
pub enum FileBody {
    Full(Option<Bytes>),
    Stream {
        file: tokio::fs::File,
        left: u64,
        buf: BytesMut,
    },
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            FileBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            FileBody::Stream { file, left, buf } => {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                let want = usize::try_from(*left).unwrap_or(CHUNK).min(CHUNK);
                if buf.capacity() < want {
                    buf.reserve(want);
                }
                let mut limited = (&mut *buf).limit(want);
                match tokio_util::io::poll_read_buf(Pin::new(file), cx, &mut limited) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(0)) => Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was being sent",
                    )))),
                    Poll::Ready(Ok(n)) => {
                        *left = left.saturating_sub(n as u64);
                        Poll::Ready(Some(Ok(Frame::data(buf.split().freeze()))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FileBody::Full(b) => b.is_none(),
            FileBody::Stream { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FileBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            FileBody::Stream { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// What the blocking part of a request found.
enum Found {
    Status(StatusCode),
    Unsatisfiable(u64),
    File {
        len: u64,
        range: Option<(u64, u64)>,
        body: Option<std::result::Result<Vec<u8>, std::fs::File>>,
    },
}

/// Open `rel` under the repository (no symlinks), and read it when it is small.
fn open_file(root: &std::fs::File, rel: &str, range: Option<&str>, head: bool) -> Found {
    use std::io::ErrorKind as K;
    let status_of = |e: &std::io::Error| match (e.kind(), e.raw_os_error()) {
        (K::PermissionDenied, _) => StatusCode::FORBIDDEN,
        (K::NotFound | K::InvalidInput, _) => StatusCode::NOT_FOUND,
        (_, Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV | libc::ENAMETOOLONG)) => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut f = match crate::fsutil::beneath::open_beneath(root, rel) {
        Ok(f) => f,
        Err(e) => return Found::Status(status_of(&e)),
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Found::Status(StatusCode::NOT_FOUND),
        Err(e) => return Found::Status(status_of(&e)),
    };
    let range = match range.and_then(|h| parse_range(h, len)) {
        None => None,
        Some(None) => return Found::Unsatisfiable(len),
        Some(Some(r)) => Some(r),
    };
    let (start, count) = match range {
        Some((a, b)) => (a, b - a + 1),
        None => (0, len),
    };
    if head {
        return Found::File {
            len,
            range,
            body: None,
        };
    }
    if start > 0 && f.seek(std::io::SeekFrom::Start(start)).is_err() {
        return Found::Status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let body = if count <= SMALL_FILE {
        let mut b = Vec::with_capacity(count as usize);
        match (&mut f).take(count).read_to_end(&mut b) {
            Ok(n) if n as u64 == count => Ok(b),
            _ => return Found::Status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    } else {
        Err(f)
    };
    Found::File {
        len,
        range,
        body: Some(body),
    }
}

struct Shared {
    root: std::fs::File,
    log: bool,
}

fn empty(status: StatusCode) -> Response<FileBody> {
    let mut r = Response::new(FileBody::Full(None));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn hv(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn respond(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<FileBody> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let Some(rel) = request_path(req.uri().path()).filter(|p| servable(p)) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Opened and (up to 1 MiB) read right here, on the connection's task, as nginx reads
    // files in its event loop: objects come from the page cache in microseconds, and a
    // hop to the blocking pool and back for each one cost more than the read. Server CPU
    // for six pulls of the Debian rootfs (ostree and oxtree clients): 2.50 s with the hop,
    // 1.28 s without, nginx 1.13 s.
    let found = open_file(&shared.root, &rel, range.as_deref(), head);
    match found {
        Found::Status(s) => empty(s),
        Found::Unsatisfiable(len) => {
            let mut r = empty(StatusCode::RANGE_NOT_SATISFIABLE);
            r.headers_mut()
                .insert(header::CONTENT_RANGE, hv(format!("bytes */{len}")));
            r
        }
        Found::File { len, range, body } => {
            let count = range.map_or(len, |(a, b)| b - a + 1);
            let body = match body {
                None => FileBody::Full(None),
                Some(Ok(b)) => FileBody::Full(Some(Bytes::from(b))),
                Some(Err(f)) => FileBody::Stream {
                    file: tokio::fs::File::from_std(f),
                    left: count,
                    buf: BytesMut::new(),
                },
            };
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Some((a, b)) = range {
                h.insert(header::CONTENT_RANGE, hv(format!("bytes {a}-{b}/{len}")));
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            r
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<FileBody>, Infallible> {
    let start = Instant::now();
    let resp = respond(&shared, &req).await;
    if shared.log {
        let len = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let mut line = format!(
            "{} {} {} {len} {:.1}ms",
            req.method(),
            req.uri(),
            resp.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        if let Some(r) = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
        {
            line.push_str(&format!(" range={r}"));
        }
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
    Ok(resp)
}

/// A connection's socket, counting reads and writes that moved bytes, so a watchdog can
/// tell an idle connection from a busy one without a clock call per read.
struct Tracked {
    io: tokio::net::TcpStream,
    moved: Arc<AtomicU64>,
}

impl Tracked {
    fn note<T>(&self, r: &Poll<std::io::Result<T>>, moved: bool) {
        if moved && matches!(r, Poll::Ready(Ok(_))) {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.note(&r, buf.filled().len() > before);
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        this.note(&r, matches!(r, Poll::Ready(Ok(n)) if n > 0));
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(&r, matches!(r, Poll::Ready(Ok(n)) if n > 0));
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Refuse what must not be served: anything but an archive repository.
fn check_repo(repo_path: &Path) -> Result<()> {
    if !repo_path.join("objects").is_dir() || !repo_path.join("config").is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not an OSTree repository",
            repo_path.display()
        )));
    }
    let mode = Repo::open(repo_path)?.mode();
    if mode != RepoMode::Archive {
        return Err(Error::InvalidArgument(format!(
            "{} is a {mode} repository: only archive repositories can be served (in the other \
             modes symlink objects are real symlinks and files are stored as they are); make an \
             archive copy to serve: `oxtree init --repo=DIR --mode=archive` then \
             `oxtree pull-local --repo=DIR {}`",
            repo_path.display(),
            repo_path.display()
        )));
    }
    Ok(())
}

/// Serve `repo_path` until the process is stopped (Ctrl-C ends it cleanly).
/// `on_ready` receives the bound address (port 0 picks a free port).
pub fn serve(
    repo_path: &Path,
    opts: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    check_repo(repo_path)?;
    let root = std::fs::File::open(repo_path).ctx("open", repo_path)?;
    let shared = Arc::new(Shared {
        root,
        log: opts.log,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx("start runtime for", repo_path)?;
    rt.block_on(async move {
        let addr = format!("{}:{}", opts.bind, opts.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Io {
                op: "listen on",
                path: PathBuf::from(&addr),
                source: e,
            })?;
        let local = listener.local_addr().ctx("listen on", &addr)?;
        on_ready(local);
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .keep_alive(true);
        builder.http2().timer(hyper_util::rt::TokioTimer::new());
        let builder = Arc::new(builder);
        let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1)));
        let idle = opts.idle_timeout.max(Duration::from_millis(100));
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            // Take a slot before accepting: past the cap, clients wait in the listen queue.
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
                _ = &mut stop => return Ok(()),
            };
            let tcp = tokio::select! {
                r = listener.accept() => match r {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: not
                        // fatal for the server; pause so a full table is not spun on.
                        if shared.log {
                            let _ = writeln!(std::io::stderr().lock(), "accept: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut stop => return Ok(()),
            };
            // Small responses must not wait for Nagle's algorithm on kept-alive connections.
            let _ = tcp.set_nodelay(true);
            let moved = Arc::new(AtomicU64::new(0));
            let io = hyper_util::rt::TokioIo::new(Tracked {
                io: tcp,
                moved: moved.clone(),
            });
            let shared = shared.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                let conn = builder.serve_connection(io, svc);
                tokio::pin!(conn);
                let mut seen = moved.load(Ordering::Relaxed);
                loop {
                    tokio::select! {
                        _ = conn.as_mut() => break,
                        _ = tokio::time::sleep(idle) => {
                            let now = moved.load(Ordering::Relaxed);
                            if now == seen {
                                break; // idle for a whole period: drop the connection
                            }
                            seen = now;
                        }
                    }
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_paths_are_served() {
        for ok in [
            "config",
            "summary",
            "summary.sig",
            "objects/ab/cdef.filez",
            "refs/heads/os/main",
            "refs/remotes/origin/main",
            "refs/mirrors/org.example/main",
            "deltas/ab/cd-ef/superblock",
            "delta-indexes/ab/cd.index",
            "extensions/rpmostree/x",
        ] {
            assert!(servable(ok), "{ok}");
        }
        for no in [
            "tmp/x",
            "state/x",
            ".lock",
            "refs/",
            "refs/remotes",
            "config.bak",
            "objects",
            "",
            "summary/x",
        ] {
            assert!(!servable(no), "{no}");
        }
    }

    #[test]
    fn request_paths_are_plain() {
        assert_eq!(
            request_path("/objects/ab/c.filez").as_deref(),
            Some("objects/ab/c.filez")
        );
        assert_eq!(request_path("/deltas/a%2Bb").as_deref(), Some("deltas/a+b"));
        for bad in [
            "objects/x",
            "/objects/../config",
            "/objects/%2e%2e/x",
            "/objects//x",
            "/objects/./x",
            "/refs/heads/",
            "/x%00y",
            "/x%zz",
            "/x%2",
            "/%ff",
        ] {
            assert_eq!(request_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Some(Some((0, 9))));
        assert_eq!(parse_range("bytes=3-", 10), Some(Some((3, 9))));
        assert_eq!(parse_range("bytes=3-5", 10), Some(Some((3, 5))));
        assert_eq!(parse_range("bytes=3-50", 10), Some(Some((3, 9))));
        assert_eq!(parse_range("bytes=-4", 10), Some(Some((6, 9))));
        assert_eq!(parse_range("bytes=-40", 10), Some(Some((0, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(None));
        assert_eq!(parse_range("bytes=-0", 10), Some(None));
        assert_eq!(parse_range("bytes=0-", 0), Some(None));
        // Not one byte range: ignored, the whole file is sent.
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-3",
            "bytes=x-",
            "bytes=1",
        ] {
            assert_eq!(parse_range(ignored, 10), None, "{ignored}");
        }
    }
}
