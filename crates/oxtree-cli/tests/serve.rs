//! `oxtree serve` on a network (security review H5, M7): it serves only an archive
//! repository's client-facing files, never through a symlink, and slow, idle or too many
//! clients cannot hold it; real `ostree pull` still works against it.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One request on a fresh connection (raw, so nothing is normalised on the way): returns
/// the status, the header block and the body.
fn request(port: u16, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"
    )
    .expect("send");
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).expect("read response");
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, resp[end + 4..].to_vec())
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let (s, _, b) = request(port, "GET", path, "");
    (s, b)
}

/// An archive repository made by real ostree, with one commit on `main` and a summary.
fn archive_repo(t: &Path) -> PathBuf {
    let tree = t.join("tree");
    build_tree(&tree, false);
    let repo = t.join("repo");
    let r = format!("--repo={}", s(&repo));
    ostree(&["init", &r, "--mode=archive"]);
    ostree(&["commit", &r, "-b", "main", "-s", "one", s(&tree)]);
    ostree(&["summary", &r, "-u"]);
    repo
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

#[test]
fn serves_only_repository_files_and_never_through_a_symlink() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let repo = archive_repo(t);
    let commit = ostree(&["rev-parse", &format!("--repo={}", s(&repo)), "main"]);
    // Links out of the repository, at every level a request can name.
    let link = |target: &str, at: &str| {
        let p = repo.join(at);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).expect("symlink");
    };
    link("/etc/passwd", "leak");
    link("/etc/passwd", "objects/leak.filez");
    link("/", "objects/rootdir");
    link("/etc/passwd", "refs/heads/evil");
    link("/", "deltas");
    link("/etc", "extensions");
    link("../config", "objects/config");
    for (p, data) in [
        ("tmp/secret", "tmp"),
        ("state/secret", "state"),
        (".lock", ""),
    ] {
        std::fs::create_dir_all(repo.join(p).parent().expect("parent")).expect("mkdir");
        std::fs::write(repo.join(p), data).expect("write");
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        repo.join("objects/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let server = Server::start(&repo);
    let port = server.port;
    for refused in [
        "/leak",
        "/objects/leak.filez",
        "/objects/rootdir/etc/passwd",
        "/refs/heads/evil",
        "/deltas/etc/passwd",
        "/extensions/passwd",
        "/objects/config",
        "/tmp/secret",
        "/state/secret",
        "/.lock",
        "/objects/fifo",
        "/objects/",
        "/refs/heads",
        "/objects/%2e%2e/config",
        "/objects/../config",
        "/nonexistent",
    ] {
        let (status, body) = get(port, refused);
        assert_eq!(status, 404, "{refused}: {}", String::from_utf8_lossy(&body));
        assert!(body.is_empty(), "{refused}");
    }
    // What a client reads is there, with the right bytes, ranges and lengths.
    assert_eq!(
        get(port, "/config"),
        (200, std::fs::read(repo.join("config")).expect("config"))
    );
    assert_eq!(get(port, "/summary").0, 200);
    assert_eq!(
        get(port, "/refs/heads/main"),
        (200, format!("{commit}\n").into_bytes())
    );
    let commit_path = format!("objects/{}/{}.commit", &commit[..2], &commit[2..]);
    let bytes = std::fs::read(repo.join(&commit_path)).expect("commit object");
    assert_eq!(get(port, &format!("/{commit_path}")), (200, bytes.clone()));
    let (status, head, body) = request(
        port,
        "GET",
        &format!("/{commit_path}"),
        "Range: bytes=5-\r\n",
    );
    assert_eq!((status, body), (206, bytes[5..].to_vec()));
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "content-range: bytes 5-{}/{}",
            bytes.len() - 1,
            bytes.len()
        )),
        "{head}"
    );
    let (status, _, _) = request(
        port,
        "GET",
        &format!("/{commit_path}"),
        &format!("Range: bytes={}-\r\n", bytes.len()),
    );
    assert_eq!(status, 416);
    let (status, head, body) = request(port, "HEAD", "/config", "");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    let len = std::fs::metadata(repo.join("config"))
        .expect("config")
        .len();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {len}")),
        "{head}"
    );
    assert_eq!(
        request(port, "POST", "/config", "Content-Length: 0\r\n").0,
        405
    );
    assert_eq!(
        request(port, "PUT", "/refs/heads/main", "Content-Length: 0\r\n").0,
        405
    );

    // Real ostree pulls from it (and checks every object), and so does oxtree.
    let od = t.join("ostree-client");
    let oa = format!("--repo={}", s(&od));
    ostree(&["init", &oa, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &oa,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ostree(&["pull", &oa, "origin", "main"]);
    ostree(&["fsck", &oa]);
    assert_eq!(ostree(&["rev-parse", &oa, "origin:main"]), commit);
    let xd = t.join("oxtree-client");
    let xa = format!("--repo={}", s(&xd));
    ox(&["init", &xa, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &xa,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ox(&["pull", &xa, "origin", "main"]);
    ox(&["fsck", &xa]);
}

#[test]
fn non_archive_repositories_are_not_served() {
    let tmp = tempdir();
    for mode in ["bare", "bare-user", "bare-user-only"] {
        let repo = tmp.path().join(mode);
        let r = format!("--repo={}", s(&repo));
        ox(&["init", &r, &format!("--mode={mode}")]);
        // A server that starts would run forever: give it 30 s, then call it a failure.
        let mut child = std::process::Command::new(oxtree_bin())
            .args(["serve", &r, "--port=0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut waited = 0;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if waited >= 300 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oxtree serve started on a {mode} repository");
            }
            std::thread::sleep(Duration::from_millis(100));
            waited += 1;
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        assert_eq!(status.code(), Some(1), "{mode}: {err}");
        assert!(
            err.contains(&format!("is a {mode} repository"))
                && err.contains("only archive repositories can be served"),
            "{mode}: {err}"
        );
    }
}

/// A client that sends its request line and headers one byte at a time is disconnected
/// once the header timeout passes, long before its request is complete; the server keeps
/// serving others.
#[test]
fn headers_sent_byte_by_byte_are_cut_off() {
    require_ostree();
    let tmp = tempdir();
    let repo = archive_repo(tmp.path());
    let server = Server::start_args(
        &repo,
        &["--port=0", "--header-timeout=1", "--idle-timeout=60"],
    );
    let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    // 300 bytes at one per 100 ms would take 30 s.
    let req = format!(
        "GET /config HTTP/1.1\r\nHost: test\r\nX-Slow: {}\r\n\r\n",
        "x".repeat(260)
    );
    let mut sent = 0;
    let mut closed = false;
    for b in req.bytes() {
        if c.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            // Whatever the server says (a 408), it must then close.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed && sent < req.len(),
        "the server waited for all {sent} bytes of a trickled request"
    );
    assert_eq!(get(server.port, "/config").0, 200);
}

/// With `--max-connections=4`, eight clients that connect and send nothing hold at most four
/// descriptors of the server (the rest wait to be accepted); they are dropped as idle, and a
/// normal client that comes after them is served.
#[test]
fn idle_and_excess_connections_cannot_starve_the_server() {
    require_ostree();
    let tmp = tempdir();
    let repo = archive_repo(tmp.path());
    let server = Server::start_args(
        &repo,
        &[
            "--port=0",
            "--max-connections=4",
            "--header-timeout=1",
            "--idle-timeout=1",
        ],
    );
    let pid = server.child.id();
    assert_eq!(get(server.port, "/config").0, 200);
    let base = open_fds(pid);
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = open_fds(pid);
    assert!(
        held <= base + 4,
        "8 idle clients hold {} descriptors (cap 4)",
        held - base
    );
    // Served after the idle ones ahead of it are dropped.
    assert_eq!(
        get(server.port, "/config"),
        (200, std::fs::read(repo.join("config")).expect("config"))
    );
    // The idle clients were disconnected, not served.
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = Vec::new();
        let n = c.read_to_end(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf));
    }
}

/// Clients that hang up in the middle of a large object (a pull cutting a download short)
/// do not stop the server: its write to the gone peer fails with EPIPE instead of killing
/// it by SIGPIPE (which the CLI otherwise leaves at its default), and the next client is
/// served.
#[test]
fn clients_hanging_up_mid_download_do_not_stop_the_server() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("big"), &noise(16 << 20, 7), 0o644);
    let repo = t.join("repo");
    let r = format!("--repo={}", s(&repo));
    ox(&["init", &r, "--mode=archive"]);
    ox(&["commit", &r, "-b", "main", s(&tree)]);
    let big = walk_files(&repo.join("objects"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("an object");
    let rel = big
        .strip_prefix(&repo)
        .expect("prefix")
        .display()
        .to_string();
    let mut server = Server::start(&repo);
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        write!(c, "GET /{rel} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send");
        let mut first = [0u8; 4096];
        let _ = c.read(&mut first);
        // Gone with most of the body unread: the server's next writes meet a reset.
        drop(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "oxtree serve died: {:?}",
        server.log.lock().map(|l| l.clone())
    );
    assert_eq!(get(server.port, "/config").0, 200);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
