//! `HttpFetcher` against small misbehaving servers (plain `std::net` listeners in threads):
//! a server that trickles a byte every two seconds is cut off by the low-speed rule, one
//! that sends without end is cut off at the size the caller allows (nothing past it is
//! kept), one that announces too much is refused before reading, and a request has a
//! deadline (security review M1, H3).

use oxtree::pull::{FetchError, Fetcher, FileFetcher, HttpFetcher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accept one connection, read the request head, and hand the socket to `respond`.
fn server(respond: impl FnOnce(TcpStream) + Send + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if line == "\r\n" {
                break;
            }
            line.clear();
        }
        respond(s);
    });
    format!("http://127.0.0.1:{port}")
}

fn body_error(f: &HttpFetcher, max: u64) -> (String, usize) {
    let resp = match f.fetch_bounded("objects/ab/cd.filez", 0, max) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("404"),
        Err(FetchError::Transient(m)) => panic!("transient: {m}"),
        Err(FetchError::Fatal(e)) => panic!("fatal: {e}"),
        Err(FetchError::RangeNotSatisfiable) => panic!("416"),
    };
    let mut body = resp.body;
    let mut got = Vec::new();
    let e = body.read_to_end(&mut got).expect_err("the body must fail");
    (e.to_string(), got.len())
}

#[test]
fn defaults_are_ostrees() {
    let f = HttpFetcher::new("http://127.0.0.1:1", Duration::from_secs(30)).expect("fetcher");
    let o = f.options();
    assert_eq!(o.low_speed_limit_bytes, 1000);
    assert_eq!(o.low_speed_time, Duration::from_secs(30));
    assert_eq!(o.request_deadline, Some(Duration::from_secs(3600)));
}

#[test]
fn a_trickling_server_is_cut_off_by_the_low_speed_rule() {
    // One byte every 2 s of a 100 kB body (55 hours), for at most a minute.
    let url = server(|mut s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let f = HttpFetcher::new(&url, Duration::from_secs(10))
        .expect("fetcher")
        .low_speed_limit(1000, Duration::from_secs(4));
    let (e, got) = body_error(&f, 100_000);
    assert!(
        e.contains("below the low-speed limit of 1000 bytes/s") && e.contains(&url),
        "{e}"
    );
    assert!(got < 10, "{got} bytes");
}

#[test]
fn an_endless_body_stops_at_the_callers_bound() {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    // No Content-Length: the body ends when the server closes, which it never does.
    let url = server(move |mut s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![0u8; 64 << 10];
        while s.write_all(&chunk).is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let f = HttpFetcher::new(&url, Duration::from_secs(10)).expect("fetcher");
    let (e, got) = body_error(&f, 1 << 20);
    // (ostree's words)
    assert!(e.contains("exceeded maximum size of 1048576 bytes"), "{e}");
    assert!(got <= 1 << 20, "{got} bytes kept");
    assert!(sent.load(Ordering::Relaxed) < 64 << 20);
}

#[test]
fn an_announced_length_past_the_bound_is_refused_before_reading() {
    let url = server(|mut s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n");
        let _ = s.write_all(&[0u8; 4096]);
        std::thread::sleep(Duration::from_secs(5));
    });
    let f = HttpFetcher::new(&url, Duration::from_secs(10)).expect("fetcher");
    match f.fetch_bounded("summary", 0, 1 << 20) {
        Err(FetchError::Fatal(e)) => assert!(
            e.to_string().contains(
                "exceeded maximum size of 1048576 bytes (the server announces 10000000000)"
            ),
            "{e}"
        ),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a 10 GB response was accepted for a 1 MiB file"),
    }
}

#[test]
fn a_request_has_a_deadline() {
    // 4000 bytes/s, above the low-speed limit, of a 10 MB body.
    let url = server(|mut s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if s.write_all(&[0u8; 2000]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let f = HttpFetcher::new(&url, Duration::from_secs(10))
        .expect("fetcher")
        .request_deadline(Some(Duration::from_secs(3)));
    let (e, got) = body_error(&f, 10_000_000);
    assert!(e.contains("3 s deadline"), "{e}");
    assert!(got < 100_000, "{got} bytes");
}

#[test]
fn file_remotes_are_bounded_too() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("summary"), vec![7u8; 100]).expect("write");
    let f = FileFetcher::new(tmp.path());
    match f.fetch_bounded("summary", 0, 50) {
        Err(FetchError::Fatal(e)) => assert!(
            e.to_string()
                .contains("100 bytes, more than the 50 expected"),
            "{e}"
        ),
        _ => panic!("a 100-byte file was accepted for at most 50"),
    }
    let Ok(Some(r)) = f.fetch_bounded("summary", 10, 100) else {
        panic!("fetch")
    };
    let mut b = Vec::new();
    let mut body = r.body;
    body.read_to_end(&mut b).expect("read");
    assert_eq!(b.len(), 90);
}

#[test]
fn low_speed_settings_come_from_the_remote_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo =
        oxtree::Repo::create(&tmp.path().join("repo"), oxtree::RepoMode::Archive).expect("repo");
    let mut cfg = std::fs::read_to_string(repo.path().join("config")).expect("config");
    cfg.push_str(
        "\n[remote \"origin\"]\nurl=http://127.0.0.1:1\nlow-speed-limit-bytes=5\nlow-speed-time-seconds=7\n\n[remote \"bad\"]\nurl=http://127.0.0.1:1\nlow-speed-limit-bytes=fast\n",
    );
    std::fs::write(repo.path().join("config"), cfg).expect("write");
    let repo = oxtree::Repo::open(repo.path()).expect("reopen");
    let f = HttpFetcher::new("http://127.0.0.1:1", Duration::from_secs(30))
        .expect("fetcher")
        .remote_options(&repo, "origin")
        .expect("options");
    assert_eq!(f.options().low_speed_limit_bytes, 5);
    assert_eq!(f.options().low_speed_time, Duration::from_secs(7));
    let e = HttpFetcher::new("http://127.0.0.1:1", Duration::from_secs(30))
        .expect("fetcher")
        .remote_options(&repo, "bad")
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("low-speed-limit-bytes=\"fast\""),
        "{e}"
    );
}

/// Accept one connection and answer its one request with `response`; the request head
/// comes back through the channel.
fn answer(response: &'static [u8]) -> (String, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let (mut head, mut line) = (String::new(), String::new());
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            head.push_str(&line);
            line.clear();
        }
        let _ = tx.send(head);
        let _ = s.write_all(response);
        std::thread::sleep(Duration::from_millis(200));
    });
    (format!("http://127.0.0.1:{port}"), rx)
}

#[test]
fn a_slice_asks_for_a_byte_range_and_gets_the_total() {
    let (url, head) =
        answer(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-109/5000\r\nContent-Length: 10\r\n\r\n0123456789");
    let f = HttpFetcher::new(&url, Duration::from_secs(10)).expect("fetcher");
    let Ok(Some(r)) = f.fetch_slice("objects/ab/cd.filez", 100, 10, 1 << 20) else {
        panic!("fetch")
    };
    let head = head.recv().expect("head").to_ascii_lowercase();
    assert!(head.contains("range: bytes=100-109\r\n"), "{head}");
    assert_eq!((r.total, r.len, r.restarted), (Some(5000), Some(10), false));
    let mut b = Vec::new();
    let mut body = r.body;
    body.read_to_end(&mut b).expect("read");
    assert_eq!(b, b"0123456789");
}

#[test]
fn a_part_from_another_offset_is_refused() {
    // Bytes from 0 when 100 on were asked for: appended, they would land at the wrong place.
    let (url, _head) =
        answer(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/5000\r\nContent-Length: 10\r\n\r\n0123456789");
    let f = HttpFetcher::new(&url, Duration::from_secs(10)).expect("fetcher");
    match f.fetch_slice("objects/ab/cd.filez", 100, 10, 1 << 20) {
        Err(FetchError::Fatal(e)) => {
            let e = e.to_string();
            assert!(
                e.contains("objects/ab/cd.filez") && e.contains("bytes 0-9/5000"),
                "{e}"
            );
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a part from offset 0 was taken for one from 100"),
    }
}

#[test]
fn a_server_without_ranges_sends_the_whole_file_for_a_slice() {
    let (url, _head) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    let f = HttpFetcher::new(&url, Duration::from_secs(10)).expect("fetcher");
    let Ok(Some(r)) = f.fetch_slice("objects/ab/cd.filez", 0, 10, 1 << 20) else {
        panic!("fetch")
    };
    // From byte 0, a whole file is not a restart; its length is the total.
    assert_eq!((r.total, r.restarted), (Some(20), false));
}

/// A server answering every request by `respond(path)` with (status, body), one request per
/// connection; runs until the test ends.
fn routes(respond: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = respond(&path);
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn read_all(f: &HttpFetcher, path: &str) -> Option<String> {
    match f.fetch_bounded(path, 0, 1 << 20) {
        Ok(Some(r)) => {
            let mut b = String::new();
            let mut body = r.body;
            body.read_to_string(&mut b).expect("read");
            Some(b)
        }
        Ok(None) => None,
        Err(FetchError::Transient(m)) => panic!("transient: {m}"),
        Err(FetchError::Fatal(e)) => panic!("fatal: {e}"),
        Err(FetchError::RangeNotSatisfiable) => panic!("416"),
    }
}

/// `mirrorlist=`: mirrors before the first that serves its config are dropped (a dead one
/// here), and a request one mirror fails (HTTP 500, 404) goes to the next; a file no
/// mirror has is not found. A list that is not there is ostree's error, naming it.
#[test]
fn mirrors_are_tried_in_order() {
    let a = routes(|p| match p {
        "/config" => (200, "[core]\nmode=archive-z2\n".into()),
        "/summary" => (200, "from a".into()),
        "/objects/ab/cd.filez" => (500, String::new()),
        _ => (404, String::new()),
    });
    let b = routes(|p| match p {
        "/config" | "/summary" => (200, "from b".into()),
        "/objects/ab/cd.filez" => (200, "abc".into()),
        _ => (404, String::new()),
    });
    let list_text = format!("# mirrors\n\nhttp://127.0.0.1:1/dead\n{a}\n{b}/\n");
    let list = routes(move |p| match p {
        "/mlist" => (200, list_text.clone()),
        _ => (404, String::new()),
    });
    let opts = oxtree::pull::FetchOptions::default();
    let f = HttpFetcher::for_urls(
        &format!("mirrorlist={list}/mlist"),
        None,
        opts.clone(),
        Vec::new(),
        0,
    )
    .expect("fetcher");
    assert_eq!(f.describe("summary"), format!("{a}/summary"));
    assert_eq!(read_all(&f, "summary").as_deref(), Some("from a"));
    assert_eq!(read_all(&f, "objects/ab/cd.filez").as_deref(), Some("abc"));
    assert_eq!(read_all(&f, "objects/ff/ff.filez"), None);
    // contenturl a mirror list, url one server.
    let f = HttpFetcher::for_urls(
        &b,
        Some(&format!("mirrorlist={list}/mlist")),
        opts.clone(),
        Vec::new(),
        0,
    )
    .expect("fetcher");
    assert_eq!(f.describe("summary"), format!("{b}/summary"));
    assert_eq!(
        f.describe("objects/ab/cd.filez"),
        format!("{a}/objects/ab/cd.filez")
    );
    let e = HttpFetcher::for_urls(
        &format!("mirrorlist={list}/nolist"),
        None,
        opts,
        Vec::new(),
        0,
    )
    .err()
    .expect("no list");
    assert_eq!(
        e.to_string(),
        format!("While fetching mirrorlist '{list}/nolist': Server returned HTTP 404")
    );
}
