//! `oxtree fleetlock serve`: a FleetLock server whose semaphores live in etcd, stateless
//! like airlock (any number of servers can share one etcd), on the hyper/tokio stack
//! `oxtree serve` already uses. etcd is reached with blocking HTTP calls on tokio's
//! blocking pool. Errors are airlock's: 400 `invalid_client_identity` (missing header,
//! bad body, empty id, bad group), 400 `unknown_group`, 500 `failed_sem_init`,
//! `failed_lock` (also a full semaphore), `failed_unlock`. With `[status] enabled`, airlock's
//! metrics are served on the status port at `/metrics`.

use super::config::Config;
use super::etcd::{Etcd, SemError};
use super::{ErrorBody, Request, HEADER};
use crate::error::{Error, IoContext, Result};
use crate::serve::FileBody;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Shared {
    config: Config,
    etcd: Etcd,
}

type Response = hyper::Response<FileBody>;

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = hyper::Response::new(FileBody::Full(Some(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    response(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// Requests are tiny JSON documents: anything larger is refused.
const MAX_BODY: usize = 64 << 10;

/// The request body, or `None` when it is larger than [`MAX_BODY`] or breaks off.
async fn read_body(mut body: Incoming) -> Option<Vec<u8>> {
    use http_body::Body as _;
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Some(out),
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    out.extend_from_slice(d);
                    if out.len() > MAX_BODY {
                        return None;
                    }
                }
            }
            Some(Err(_)) => return None,
        }
    }
}

/// Route a request: the two FleetLock operations, and `/metrics` on the status listener.
async fn route(st: Arc<Shared>, status_port: bool, req: hyper::Request<Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    match (status_port, &parts.method, parts.uri.path()) {
        (true, &Method::GET, "/metrics") => {
            let m = tokio::task::spawn_blocking(move || metrics(&st))
                .await
                .unwrap_or_default();
            response(StatusCode::OK, "text/plain; version=0.0.4", m.into_bytes())
        }
        (false, &Method::POST, p @ ("/v1/pre-reboot" | "/v1/steady-state")) => {
            let op = if p == "/v1/pre-reboot" {
                Op::Lock
            } else {
                Op::Unlock
            };
            let Some(body) = read_body(body).await else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client_identity",
                    "request body too large or cut off",
                );
            };
            handle(st, op, parts.headers, Bytes::from(body)).await
        }
        (_, _, p) => response(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no such endpoint: {} {p}\n", parts.method).into_bytes(),
        ),
    }
}

/// Serve `listener` with `route` until `stop` (one task per connection, HTTP/1.1 and 2).
async fn accept_loop(listener: tokio::net::TcpListener, st: Arc<Shared>, status_port: bool) {
    let builder = Arc::new(hyper_util::server::conn::auto::Builder::new(
        hyper_util::rt::TokioExecutor::new(),
    ));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (st, builder) = (st.clone(), builder.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, std::convert::Infallible>(route(st, status_port, req).await) }
            });
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn error(status: StatusCode, kind: &str, value: impl Into<String>) -> Response {
    let value = value.into();
    tracing::info!("fleetlock: {} {kind}: {value}", status.as_u16());
    json_response(
        status,
        &ErrorBody {
            kind: kind.to_string(),
            value,
        },
    )
}

#[derive(Clone, Copy)]
enum Op {
    Lock,
    Unlock,
}

async fn handle(st: Arc<Shared>, op: Op, headers: HeaderMap, body: Bytes) -> Response {
    let bad = |v: String| error(StatusCode::BAD_REQUEST, "invalid_client_identity", v);
    if headers.get(HEADER).and_then(|v| v.to_str().ok()) != Some("true") {
        return bad(format!(
            "missing or wrong {HEADER:?} header (must be \"true\")"
        ));
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("malformed body: {e}")),
    };
    let p = req.client_params;
    if p.id.is_empty() {
        return bad("empty client id".into());
    }
    if !super::valid_group(&p.group) {
        return bad(format!("group {:?} must match ^[a-zA-Z0-9.-]+$", p.group));
    }
    let Some(slots) = st.config.slots(&p.group) else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown_group",
            format!("group {:?} is not configured", p.group),
        );
    };
    let st2 = st.clone();
    let (id, group) = (p.id.clone(), p.group.clone());
    let res = tokio::task::spawn_blocking(move || match op {
        Op::Lock => st2.etcd.recursive_lock(&group, slots, &id),
        Op::Unlock => st2.etcd.unlock_if_held(&group, slots, &id),
    })
    .await
    .unwrap_or_else(|e| Err(SemError::Lock(format!("internal error: {e}"))));
    let what = match op {
        Op::Lock => "pre-reboot",
        Op::Unlock => "steady-state",
    };
    match res {
        Ok(()) => {
            tracing::info!("fleetlock: {what} {} in {}: ok", p.id, p.group);
            json_response(StatusCode::OK, &serde_json::json!({}))
        }
        Err(SemError::Init(v)) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed_sem_init", v),
        Err(SemError::Lock(v)) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed_lock", v),
        Err(SemError::Unlock(v)) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed_unlock", v),
    }
}

/// airlock's metrics, read from etcd at each scrape.
fn metrics(st: &Shared) -> String {
    let groups = st.config.groups();
    let mut out = String::new();
    out.push_str("# TYPE airlock_config_groups gauge\n");
    out.push_str(&format!("airlock_config_groups {}\n", groups.len()));
    out.push_str("# TYPE airlock_config_semaphore_slots gauge\n");
    for (g, s) in &groups {
        out.push_str(&format!(
            "airlock_config_semaphore_slots{{group=\"{g}\"}} {s}\n"
        ));
    }
    out.push_str("# TYPE airlock_database_semaphore_lock_holders gauge\n");
    out.push_str("# TYPE airlock_database_semaphore_slots gauge\n");
    for (g, _) in &groups {
        if let Ok(Some(sem)) = st.etcd.semaphore(g) {
            out.push_str(&format!(
                "airlock_database_semaphore_lock_holders{{group=\"{g}\"}} {}\n",
                sem.holders.len()
            ));
            out.push_str(&format!(
                "airlock_database_semaphore_slots{{group=\"{g}\"}} {}\n",
                sem.total_slots
            ));
        }
    }
    out
}

/// Serve until SIGINT. `on_ready` gets the service address and the status address (when
/// `[status] enabled`); port 0 picks a free port.
pub fn serve(
    config: Config,
    on_ready: impl FnOnce(SocketAddr, Option<SocketAddr>) + Send,
) -> Result<()> {
    let etcd = Etcd::new(
        &config.etcd3.endpoints,
        Duration::from_millis(config.etcd3.transaction_timeout_ms.max(100)),
    )?;
    let st = Arc::new(Shared { config, etcd });
    let addr = format!("{}:{}", st.config.service.address, st.config.service.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ctx("start runtime for", &addr)?;
    rt.block_on(async move {
        let listen = |a: String| async move {
            tokio::net::TcpListener::bind(&a)
                .await
                .map_err(|e| Error::Io {
                    op: "listen on",
                    path: PathBuf::from(&a),
                    source: e,
                })
        };
        let listener = listen(addr.clone()).await?;
        let local = listener.local_addr().ctx("listen on", &addr)?;
        let mut status_local = None;
        if st.config.status.enabled {
            let saddr = format!("{}:{}", st.config.status.address, st.config.status.port);
            let sl = listen(saddr.clone()).await?;
            status_local = Some(sl.local_addr().ctx("listen on", &saddr)?);
            tokio::spawn(accept_loop(sl, st.clone(), true));
        }
        on_ready(local, status_local);
        tokio::select! {
            _ = accept_loop(listener, st, false) => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
