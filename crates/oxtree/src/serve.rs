//! `oxtree serve`: a static HTTP server for a repository, enough to serve a fleet from one
//! box. Why axum + tower-http: `ServeDir` already does what a repo server must get right —
//! `Range` requests, correct `Content-Length`, keep-alive, HTTP/2, and refusing paths that
//! escape the directory — on tokio's multi-threaded runtime. We add an access log line per
//! request, and serve only the files an OSTree client reads (no directory listings).

use crate::error::{Error, IoContext, Result};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: String,
    pub port: u16,
    /// Print one access-log line per request to stderr.
    pub log: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: "127.0.0.1".into(),
            port: 8080,
            log: true,
        }
    }
}

async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let mut line = format!(
        "{method} {uri} {} {len} {:.1}ms",
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    if let Some(r) = range {
        line.push_str(&format!(" range={r}"));
    }
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    resp
}

/// Serve `repo_path` until the process is stopped (Ctrl-C/SIGTERM ends it cleanly).
/// `on_ready` receives the bound address (port 0 picks a free port).
pub fn serve(
    repo_path: &Path,
    opts: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    if !repo_path.join("objects").is_dir() || !repo_path.join("config").is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not an OSTree repository",
            repo_path.display()
        )));
    }
    let root: PathBuf = repo_path.canonicalize().ctx("resolve", repo_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx("start runtime for", &root)?;
    rt.block_on(async move {
        let files =
            tower_http::services::ServeDir::new(&root).append_index_html_on_directories(false);
        let mut app = axum::Router::new().fallback_service(files);
        if opts.log {
            app = app.layer(axum::middleware::from_fn(access_log));
        }
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
        // Small responses must not wait for Nagle's algorithm on kept-alive connections.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Io {
                op: "serve",
                path: root.clone(),
                source: e,
            })
    })
}
