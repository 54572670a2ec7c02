//! A hostile update server for the security regression tests: a small HTTP/1.1 server
//! (std::net, one thread per connection, keep-alive) that serves an archive repository
//! directory as any static web server would, except where a test told it to attack a path:
//! swap the body for other bytes (another object's `.filez`, an attacker-made summary,
//! `summary.sig` or `.commitmeta`), stretch it (declare and send more than the file has,
//! up to endlessly), trickle it (one byte per interval), or fail with a status. Every
//! request is logged, so a test can assert what the client fetched and what it did not.
//!
//! No framework: the point is to misbehave at the byte level (wrong Content-Length, a body
//! that never ends), which real servers do not let a test do.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does instead of serving a path honestly.
#[derive(Clone, Debug)]
pub enum Attack {
    /// Serve these bytes as if they were the file (a swapped object, a re-signed summary).
    Body(Vec<u8>),
    /// Send the file, then zeros, `serve` bytes in all (`u64::MAX`: until the client hangs
    /// up), declaring `declared` in Content-Length (`None`: no length, the body ends when
    /// the connection closes).
    Stretch { declared: Option<u64>, serve: u64 },
    /// Send the file honestly but one byte per `every`.
    Trickle { every: Duration },
    /// Answer with this HTTP status and an empty body.
    Status(u16),
}

/// One request, as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The path below the repository root, without the leading `/`.
    pub path: String,
    /// The `Range: bytes=N-` start, if one was asked for.
    pub range_from: Option<u64>,
    /// The `Accept-Encoding` header, if the client sent one.
    pub accept_encoding: Option<String>,
    pub status: u16,
    /// Body bytes written before the response ended (or the client went away).
    pub sent: u64,
    /// The whole body was sent.
    pub complete: bool,
}

struct State {
    root: PathBuf,
    /// Attacks by path, and whether each is for the next request only.
    attacks: Mutex<HashMap<String, (Attack, bool)>>,
    log: Mutex<Vec<Request>>,
    stop: AtomicBool,
}

/// A running hostile server; stopped (and every connection dropped) on drop.
pub struct HostileServer {
    pub url: String,
    addr: std::net::SocketAddr,
    state: Arc<State>,
}

impl HostileServer {
    /// Serve `root` (an archive repository directory) on a free loopback port.
    pub fn start(root: &Path) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            root: root.to_path_buf(),
            attacks: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve_connection(conn, &st));
            }
        });
        HostileServer {
            url: format!("http://{addr}"),
            addr,
            state,
        }
    }

    /// Attack `path` (relative to the repository, e.g. `objects/ab/cd….filez`).
    pub fn attack(&self, path: &str, a: Attack) {
        self.state
            .attacks
            .lock()
            .expect("attacks")
            .insert(path.trim_start_matches('/').to_string(), (a, false));
    }

    /// Attack only the next request for `path`; later ones are served honestly.
    pub fn attack_once(&self, path: &str, a: Attack) {
        self.state
            .attacks
            .lock()
            .expect("attacks")
            .insert(path.trim_start_matches('/').to_string(), (a, true));
    }

    /// Serve `bytes` for `path`.
    pub fn swap(&self, path: &str, bytes: Vec<u8>) {
        self.attack(path, Attack::Body(bytes));
    }

    /// Serve the bytes of the repository file `other` for `path` (a swapped object).
    pub fn swap_file(&self, path: &str, other: &str) {
        let b = std::fs::read(self.state.root.join(other)).expect("read the swapped-in file");
        self.swap(path, b);
    }

    /// Replace a signed file (summary, summary.sig, a .commitmeta) with attacker-made bytes.
    pub fn resign(&self, path: &str, bytes: Vec<u8>) {
        self.swap(path, bytes);
    }

    /// Declare `declared` bytes and send `serve` (see [`Attack::Stretch`]).
    pub fn stretch(&self, path: &str, declared: Option<u64>, serve: u64) {
        self.attack(path, Attack::Stretch { declared, serve });
    }

    /// A body that never ends, with no Content-Length.
    pub fn endless(&self, path: &str) {
        self.stretch(path, None, u64::MAX);
    }

    /// Send `path` one byte per `every`.
    pub fn trickle(&self, path: &str, every: Duration) {
        self.attack(path, Attack::Trickle { every });
    }

    /// Answer `path` with `status`.
    pub fn fail(&self, path: &str, status: u16) {
        self.attack(path, Attack::Status(status));
    }

    /// Serve `path` honestly again.
    pub fn heal(&self, path: &str) {
        self.state
            .attacks
            .lock()
            .expect("attacks")
            .remove(path.trim_start_matches('/'));
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Request> {
        self.state.log.lock().expect("log").clone()
    }

    /// The paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.log().into_iter().map(|r| r.path).collect()
    }

    /// Whether `path` was requested.
    pub fn requested(&self, path: &str) -> bool {
        let p = path.trim_start_matches('/');
        self.log().iter().any(|r| r.path == p)
    }

    /// Whether a response for `path` was sent in full.
    pub fn served(&self, path: &str) -> bool {
        let p = path.trim_start_matches('/');
        self.log().iter().any(|r| r.path == p && r.complete)
    }

    pub fn clear_log(&self) {
        self.state.log.lock().expect("log").clear();
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Read one request head (up to the blank line); `None` when the client closed the
/// connection or the server is stopping.
fn read_head(c: &mut TcpStream, st: &State) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if st.stop.load(Ordering::Relaxed) {
            return None;
        }
        match c.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => {
                head.push(byte[0]);
                if head.ends_with(b"\r\n\r\n") {
                    return Some(String::from_utf8_lossy(&head).into_owned());
                }
                if head.len() > 64 << 10 {
                    return None;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_connection(mut c: TcpStream, st: &State) {
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = c.set_nodelay(true);
    while let Some(head) = read_head(&mut c, st) {
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default().to_string();
        let mut parts = first.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let path = percent_decode(target.split('?').next().unwrap_or("/"))
            .trim_start_matches('/')
            .to_string();
        let headers: Vec<(&str, &str)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let accept_encoding = header("accept-encoding").map(str::to_string);
        // `bytes=A-` or `bytes=A-B`.
        let range = header("range").and_then(|v| {
            let (a, b) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
            let last = match b.trim() {
                "" => None,
                b => Some(b.parse::<u64>().ok()?),
            };
            Some((a.trim().parse::<u64>().ok()?, last))
        });
        let range_from = range.map(|(a, _)| a);
        let idx = {
            let mut log = st.log.lock().expect("log");
            log.push(Request {
                path: path.clone(),
                range_from,
                accept_encoding,
                status: 0,
                sent: 0,
                complete: false,
            });
            log.len() - 1
        };
        let record = |status: u16, sent: u64, complete: bool| {
            if let Some(r) = st.log.lock().expect("log").get_mut(idx) {
                r.status = status;
                r.sent = sent;
                r.complete = complete;
            }
        };
        if method != "GET" {
            let _ = respond_plain(&mut c, 405, b"");
            record(405, 0, true);
            continue;
        }
        let attack = {
            let mut attacks = st.attacks.lock().expect("attacks");
            match attacks.get(&path).cloned() {
                Some((a, true)) => {
                    attacks.remove(&path);
                    Some(a)
                }
                Some((a, false)) => Some(a),
                None => None,
            }
        };
        let real = || -> Option<Vec<u8>> {
            if path.split('/').any(|p| p == "..") {
                return None;
            }
            let p = st.root.join(&path);
            if !p.is_file() {
                return None;
            }
            std::fs::read(p).ok()
        };
        let keep_alive = match attack {
            None => serve_bytes(&mut c, real(), range, &record),
            Some(Attack::Body(b)) => serve_bytes(&mut c, Some(b), range, &record),
            Some(Attack::Status(s)) => {
                let ok = respond_plain(&mut c, s, b"").is_ok();
                record(s, 0, true);
                ok
            }
            Some(Attack::Stretch { declared, serve }) => {
                let body = real().unwrap_or_default();
                let mut h = "HTTP/1.1 200 OK\r\nConnection: close\r\n".to_string();
                if let Some(n) = declared {
                    h.push_str(&format!("Content-Length: {n}\r\n"));
                }
                h.push_str("\r\n");
                let mut sent = 0u64;
                if c.write_all(h.as_bytes()).is_ok() {
                    let take = (body.len() as u64).min(serve) as usize;
                    if c.write_all(&body[..take]).is_ok() {
                        sent = take as u64;
                        let zeros = vec![0u8; 64 << 10];
                        while sent < serve && !st.stop.load(Ordering::Relaxed) {
                            let n = (serve - sent).min(zeros.len() as u64) as usize;
                            if c.write_all(&zeros[..n]).is_err() {
                                break;
                            }
                            sent += n as u64;
                            record(200, sent, false);
                        }
                    }
                }
                record(200, sent, sent >= serve);
                false
            }
            Some(Attack::Trickle { every }) => {
                let body = real().unwrap_or_default();
                let h = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let mut sent = 0u64;
                if c.write_all(h.as_bytes()).is_ok() {
                    for b in &body {
                        if st.stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                            break;
                        }
                        sent += 1;
                        record(200, sent, false);
                        std::thread::sleep(every);
                    }
                }
                record(200, sent, sent == body.len() as u64);
                false
            }
        };
        if !keep_alive {
            return;
        }
    }
}

fn respond_plain(c: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    };
    c.write_all(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )?;
    c.write_all(body)
}

/// Serve `bytes` (404 for `None`), honouring `Range: bytes=A-` and `bytes=A-B`; true to
/// keep the connection alive.
fn serve_bytes(
    c: &mut TcpStream,
    bytes: Option<Vec<u8>>,
    range: Option<(u64, Option<u64>)>,
    record: &dyn Fn(u16, u64, bool),
) -> bool {
    let Some(b) = bytes else {
        let ok = respond_plain(c, 404, b"").is_ok();
        record(404, 0, true);
        return ok;
    };
    let ok = match range {
        Some((from, _)) if from >= b.len() as u64 => {
            let ok = c
                .write_all(
                    format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n",
                        b.len()
                    )
                    .as_bytes(),
                )
                .is_ok();
            record(416, 0, true);
            return ok;
        }
        Some((from, last)) => {
            let end = last
                .map_or(b.len(), |l| (l as usize).saturating_add(1).min(b.len()))
                .max(from as usize + 1);
            let rest = &b[from as usize..end];
            let ok = c
                .write_all(
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\n\r\n",
                        end - 1,
                        b.len(),
                        rest.len()
                    )
                    .as_bytes(),
                )
                .and_then(|()| c.write_all(rest))
                .is_ok();
            record(206, if ok { rest.len() as u64 } else { 0 }, ok);
            ok
        }
        None => {
            let ok = respond_plain(c, 200, &b).is_ok();
            record(200, if ok { b.len() as u64 } else { 0 }, ok);
            ok
        }
    };
    ok
}
