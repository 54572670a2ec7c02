//! Transport: pull over HTTP between oxtree and real ostree, through `oxtree serve` and
//! nginx, incremental pulls, and a hostile or failing server.

mod common;
use common::*;
use std::path::Path;

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

fn repo_arg(p: &Path) -> String {
    format!("--repo={}", s(p))
}

/// Run `args` with `tool` ("ostree" or "oxtree"); it must succeed. Returns its stdout.
fn run_as(tool: &str, args: &[&str]) -> String {
    if tool == "ostree" {
        ostree(args)
    } else {
        ox(args)
    }
}

/// An archive repo at `dst`, made by `tool`, with remote "origin" at `url` (no GPG).
fn client(tool: &str, dst: &Path, url: &str) {
    let d = repo_arg(dst);
    run_as(tool, &["init", &d, "--mode=archive"]);
    run_as(
        tool,
        &["remote", "add", &d, "--no-gpg-verify", "origin", url],
    );
}

/// Nothing listening at the remote's URL: both tools fail at the first refusal, without
/// retrying (ostree does not retry a refused connection), and store nothing.
#[test]
fn refused_connection_fails_at_once_as_in_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let url = format!("http://127.0.0.1:{}/repo", free_port());
    for tool in ["ostree", "oxtree"] {
        let dst = t.join(tool);
        client(tool, &dst, &url);
        let out = std::process::Command::new(if tool == "ostree" {
            std::path::PathBuf::from("ostree")
        } else {
            oxtree_bin()
        })
        .args(["pull", &repo_arg(&dst), "origin", "main"])
        .output()
        .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tool}: {err}");
        if tool == "oxtree" {
            assert!(err.contains("Connection refused"), "{err}");
            assert!(!err.contains("attempts"), "retried: {err}");
        }
        assert!(object_set(&dst).is_empty(), "{tool}");
    }
}

/// Real `ostree pull` from `oxtree serve` fetches a repo oxtree wrote; oxtree pulls it too.
#[test]
fn ostree_pulls_from_oxtree_serve() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "os/main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    ox(&["summary", &repo_arg(&src), "-u"]);
    let server = Server::start(&src);
    for (tool, mode) in [
        ("ostree", "archive"),
        ("ostree", "bare-user"),
        ("oxtree", "bare-user"),
        ("oxtree", "archive"),
    ] {
        let dst = t.join(format!("dst-{tool}-{mode}"));
        let d = repo_arg(&dst);
        let run = |args: &[&str]| {
            if tool == "ostree" {
                ostree(args)
            } else {
                ox(args)
            }
        };
        run(&["init", &d, &format!("--mode={mode}")]);
        run(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        run(&["pull", &d, "origin", "os/main"]);
        assert_eq!(
            run(&["rev-parse", &d, "origin:os/main"]),
            c,
            "{tool} {mode}"
        );
        ostree(&["fsck", &d]);
        ox(&["fsck", &d]);
        if mode == "archive" {
            assert_eq!(
                object_set(&dst),
                object_set(&src),
                "{tool} pulled a different object set"
            );
        }
        let co = t.join(format!("co-{tool}-{mode}"));
        ox(&["checkout", &d, "origin:os/main", s(&co)]);
        let (a, b) = (snapshot(&tree), snapshot(&co));
        let strip = |m: std::collections::BTreeMap<String, Entry>| {
            m.into_iter()
                .filter(|(k, _)| !k.is_empty())
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let (a, b) = (strip(a), strip(b));
        assert!(
            a == b,
            "{tool} {mode}: checkout differs:\n{}",
            snapshot_diff(&a, &b)
        );
    }
    // Each tool reads the other's remote configuration.
    let dx = repo_arg(&t.join("dst-oxtree-archive"));
    assert!(ostree(&["remote", "list", &dx, "-u"]).contains(&server.url));
    assert_eq!(
        ox(&[
            "remote",
            "show-url",
            &repo_arg(&t.join("dst-ostree-archive")),
            "origin"
        ]),
        server.url
    );
    assert_eq!(ox(&["remote", "refs", &dx, "origin"]), "origin:os/main");
}

/// Both tools pull a repo real ostree wrote, served by nginx, and get the same refs and
/// objects.
#[test]
fn pull_from_nginx_serving_an_ostree_repo() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ostree(&["init", &repo_arg(&src), "--mode=archive"]);
    let c1 = ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    write(&tree.join("etc/conf"), b"v2\n", 0o644);
    let c2 = ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v2",
        TS,
        s(&tree),
    ]);
    ostree(&["summary", &repo_arg(&src), "-u"]);
    let nginx = Nginx::start(&src, &t.join("nginx"));
    let ox_dst = t.join("ox");
    let os_dst = t.join("os");
    for (tool, dst) in [("oxtree", &ox_dst), ("ostree", &os_dst)] {
        let d = repo_arg(dst);
        let run = |args: &[&str]| run_as(tool, args);
        client(tool, dst, &nginx.url);
        run(&["pull", &d, "--depth=-1", "origin", "main"]);
        assert_eq!(run(&["rev-parse", &d, "origin:main"]), c2);
        assert_eq!(run(&["rev-parse", &d, "origin:main^"]), c1);
    }
    assert_eq!(object_set(&ox_dst), object_set(&src));
    assert_eq!(object_set(&ox_dst), object_set(&os_dst));
    ostree(&["fsck", &repo_arg(&ox_dst)]);
    let co = t.join("co");
    ox(&["checkout", &repo_arg(&ox_dst), "origin:main", s(&co)]);
    let strip = |m: std::collections::BTreeMap<String, Entry>| {
        m.into_iter()
            .filter(|(k, _)| !k.is_empty())
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (strip(snapshot(&tree)), strip(snapshot(&co)));
    assert!(
        a == b,
        "checkout differs from the tree:\n{}",
        snapshot_diff(&a, &b)
    );
}

/// `pull --subpath=A --subpath=B` fetches what ostree fetches (the directories leading to
/// each path and everything below it; a path may name a file), leaves the commit partial in
/// both tools, and a later full pull completes it.
#[test]
fn pull_subpaths_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ostree(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    ostree(&["summary", &repo_arg(&src), "-u"]);
    let nginx = Nginx::start(&src, &t.join("nginx"));
    let subs = [
        "--subpath=/etc",
        "--subpath=/unicode/日本語",
        "--subpath=/bin/exe",
    ];
    let ox_dst = t.join("ox");
    let os_dst = t.join("os");
    for (tool, dst) in [("oxtree", &ox_dst), ("ostree", &os_dst)] {
        let d = repo_arg(dst);
        let run = |args: &[&str]| run_as(tool, args);
        client(tool, dst, &nginx.url);
        let mut args = vec!["pull", &d, "origin", "main"];
        args.extend(subs);
        run(&args);
        assert_eq!(run(&["rev-parse", &d, "origin:main"]), c);
        assert!(
            dst.join("state")
                .join(format!("{c}.commitpartial"))
                .exists(),
            "{tool}: a subpath pull leaves the commit partial"
        );
    }
    let (xo, oo) = (object_set(&ox_dst), object_set(&os_dst));
    assert_eq!(xo, oo, "the same objects as ostree's subpath pull");
    assert!(xo.len() < object_set(&src).len(), "only part of the commit");
    // The pulled part checks out; fsck of either tool accepts the partial commit.
    let co = t.join("co");
    ox(&[
        "checkout",
        &repo_arg(&ox_dst),
        "--subpath=/etc",
        "origin:main",
        s(&co),
    ]);
    assert_eq!(
        std::fs::read(co.join("conf")).expect("conf"),
        b"key=value\n"
    );
    ostree(&["fsck", &repo_arg(&ox_dst)]);
    ox(&["fsck", &repo_arg(&ox_dst)]);
    // A full pull completes it.
    ox(&["pull", &repo_arg(&ox_dst), "origin", "main"]);
    assert!(!ox_dst
        .join("state")
        .join(format!("{c}.commitpartial"))
        .exists());
    assert_eq!(object_set(&ox_dst), object_set(&src));
    ostree(&["fsck", &repo_arg(&ox_dst)]);
}

/// The line a pull prints is ostree's, counters and all: fresh, up to date, history only,
/// from a local cache, over file:// and by pull-local (seconds normalised).
#[test]
fn pull_prints_ostree_summary_line() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ostree(&["init", &repo_arg(&src), "--mode=archive"]);
    ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    write(&tree.join("etc/conf"), b"v2\n", 0o644);
    ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "other",
        "-s",
        "v2",
        TS,
        s(&tree),
    ]);
    ostree(&["summary", &repo_arg(&src), "-u"]);
    let nginx = Nginx::start(&src, &t.join("nginx"));
    let file_url = format!("file://{}", s(&src));
    let norm = |out: String| -> String {
        // "in 0 seconds": the one figure that depends on the clock.
        out.split("; ")
            .map(|p| match p.find(" transferred in ") {
                Some(i) => format!("{} transferred in N seconds", &p[..i]),
                None => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    for tool in ["ostree", "oxtree"] {
        let run = |args: &[&str]| norm(run_as(tool, args));
        let base = t.join(tool);
        std::fs::create_dir_all(&base).expect("mkdir");
        let r = |n: &str| repo_arg(&base.join(n));
        let mut out = Vec::new();
        for n in ["a", "b", "c", "d"] {
            run(&["init", &r(n), "--mode=archive"]);
            run(&[
                "remote",
                "add",
                &r(n),
                "--no-gpg-verify",
                "origin",
                &nginx.url,
            ]);
            run(&[
                "remote",
                "add",
                &r(n),
                "--no-gpg-verify",
                "local",
                &file_url,
            ]);
        }
        out.push(run(&["pull", &r("a"), "origin", "main"]));
        out.push(run(&["pull", &r("a"), "origin", "main"]));
        out.push(run(&["pull", &r("a"), "origin", "main", "other"]));
        out.push(run(&[
            "pull",
            &r("b"),
            "--commit-metadata-only",
            "origin",
            "other",
        ]));
        let cache = format!("--localcache-repo={}", s(&base.join("a")));
        out.push(run(&["pull", &r("c"), &cache, "origin", "main"]));
        out.push(run(&["pull", &r("d"), "local", "main"]));
        out.push(run(&["pull-local", &r("d"), s(&src), "other"]));
        lines.push(out);
    }
    assert_eq!(lines[1], lines[0], "oxtree's pull lines (left) vs ostree's");
    assert!(
        lines[0][0].contains("content objects fetched"),
        "{:?}",
        lines[0]
    );
}

/// An update v1→v2 fetches exactly the objects that are new in v2.
#[test]
fn incremental_pull_fetches_only_new_objects() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    ox(&["summary", &repo_arg(&src), "-u"]);
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
        "main",
    ]);
    ox(&["pull", &d, "origin"]);
    let before: std::collections::BTreeSet<String> = object_set(&src).into_iter().collect();
    write(&tree.join("etc/conf"), b"changed in v2\n", 0o644);
    write(&tree.join("new/file"), b"new in v2\n", 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v2",
        TS,
        s(&tree),
    ]);
    ox(&["summary", &repo_arg(&src), "-u"]);
    let after: std::collections::BTreeSet<String> = object_set(&src).into_iter().collect();
    let new: std::collections::BTreeSet<String> = after
        .difference(&before)
        .map(|o| format!("/objects/{o}"))
        .collect();
    server.clear_log();
    ox(&["pull", &d, "origin"]);
    let fetched: std::collections::BTreeSet<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/objects/") && !r.ends_with(".commitmeta"))
        .collect();
    assert_eq!(
        fetched, new,
        "fetched objects differ from the objects new in v2"
    );
    ox(&["fsck", &d]);
}

/// A served object with one flipped byte fails the pull naming it; nothing corrupt is stored.
#[test]
fn corrupt_served_object_is_rejected() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let line = ox(&["ls", &repo_arg(&src), "-C", "main", "/etc/conf"]);
    let csum = line.split_whitespace().nth(4).expect("csum").to_string();
    let obj = src.join(format!("objects/{}/{}.filez", &csum[..2], &csum[2..]));
    let mut b = std::fs::read(&obj).expect("read");
    let n = b.len();
    b[n - 3] ^= 0x20;
    std::fs::write(&obj, b).expect("write");
    let server = Server::start(&src);
    for mode in ["bare-user", "archive"] {
        let dst = t.join(format!("dst-{mode}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        let (_, err) = ox_fail(&["pull", &d, "origin", "main"]);
        assert!(
            err.contains(&csum),
            "{mode}: error does not name the object:\n{err}"
        );
        assert!(!dst.join("refs/remotes/origin/main").exists());
        ox(&["fsck", &d]);
        assert!(
            !object_set(&dst).iter().any(|o| o.contains(&csum[2..])),
            "corrupt object stored"
        );
    }
}

/// A server killed in the middle of a pull: the repo stays fsck-clean, and once the server
/// is back the same pull completes without refetching what it already has.
#[test]
fn pull_resumes_after_the_server_dies() {
    let tmp = tempdir();
    let t = tmp.path();
    let (src, c) = bulk_source(t);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    let mut server = Server::start(&src);
    let port = server.port;
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    let child = std::process::Command::new(oxtree_bin())
        .args(["pull", &d, "--fetchers=2", "--timeout=2", "origin", "main"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pull");
    // Let it fetch part of the tree, then take the server away.
    for _ in 0..200 {
        if server.requests().len() > 300 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    let out = child.wait_with_output().expect("pull");
    assert!(
        !out.status.success(),
        "pull succeeded although the server died"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dst.join("refs/remotes/origin/main").exists());
    ox(&["fsck", &d]);
    let kept = object_set(&dst).len();
    assert!(kept > 0, "the interrupted pull kept nothing");
    // Back up on the same port: the rerun completes and fetches only what is missing.
    drop(server);
    let server = Server::start_on(&src, port);
    ox(&["pull", &d, "origin", "main"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:main"]), c);
    ox(&["fsck", &d]);
    let refetched = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("/objects/") && !r.contains(".commit"))
        .count();
    assert!(
        refetched <= object_set(&src).len() - kept + 5,
        "rerun refetched {refetched} objects, {kept} were already there"
    );
    assert!(!dst.join(format!("state/{c}.commitpartial")).exists());
}

/// A missing object (404), hostile dirtree names and a decompression bomb are refused.
#[test]
fn hostile_server_is_refused() {
    use oxtree::object::{DirTree, ObjectType};
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let repo = oxtree::Repo::open(&src).expect("open");
    let good = repo.resolve_rev("main").expect("main");
    let commit = repo.load_commit(&good).expect("commit");
    // Hostile names: a root dirtree pointing a file named `..`, `a/b` or "" at real content.
    let content = repo.load_dirtree(&commit.root_tree).expect("tree").files[0].1;
    for (i, bad) in ["..", "a/b", "", "nul\0inside"].iter().enumerate() {
        let dt = DirTree {
            files: vec![(bad.to_string(), content)],
            dirs: vec![],
        };
        let txn = repo.begin().expect("txn");
        let tc = txn
            .write_metadata(ObjectType::DirTree, &dt.encode())
            .expect("dirtree");
        let mut c = commit.clone();
        c.root_tree = tc;
        c.subject = format!("hostile {i}");
        c.metadata.clear(); // no ref binding to main: these are pulled under other refs
        let cc = txn
            .write_metadata(ObjectType::Commit, &c.encode())
            .expect("commit");
        txn.commit().expect("commit txn");
        repo.set_ref(
            &oxtree::repo::RefName::parse(&format!("hostile{i}")).expect("ref"),
            Some(&cc),
        )
        .expect("ref");
    }
    // A decompression bomb: a .filez whose deflate stream inflates past its declared size.
    let bomb_csum = {
        use std::io::Write;
        let h = oxtree::FileHeader {
            mode: 0o100644,
            ..Default::default()
        };
        let mut data = h.archive_prefix(10);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
        enc.write_all(&vec![0u8; 64 << 20]).expect("deflate");
        data.extend(enc.finish().expect("deflate"));
        let mut stream = h.content_stream_prefix();
        stream.extend(std::iter::repeat_n(0u8, 10));
        let csum = oxtree::Checksum::digest(&stream);
        let p = src.join(format!(
            "objects/{}/{}.filez",
            &csum.to_hex()[..2],
            &csum.to_hex()[2..]
        ));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write bomb");
        let dt = DirTree {
            files: vec![("bomb".into(), csum)],
            dirs: vec![],
        };
        let txn = repo.begin().expect("txn");
        let tc = txn
            .write_metadata(ObjectType::DirTree, &dt.encode())
            .expect("dirtree");
        let mut c = commit.clone();
        c.root_tree = tc;
        c.metadata.clear();
        let cc = txn
            .write_metadata(ObjectType::Commit, &c.encode())
            .expect("commit");
        txn.commit().expect("commit txn");
        repo.set_ref(
            &oxtree::repo::RefName::parse("bomb").expect("ref"),
            Some(&cc),
        )
        .expect("ref");
        csum
    };
    // A missing object.
    let line = ox(&["ls", &repo_arg(&src), "-C", "main", "/bin/exe"]);
    let missing = line.split_whitespace().nth(4).expect("csum").to_string();
    std::fs::remove_file(src.join(format!("objects/{}/{}.filez", &missing[..2], &missing[2..])))
        .expect("rm");

    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    for i in 0..4 {
        let (_, err) = ox_fail(&["pull", &d, "origin", &format!("hostile{i}")]);
        assert!(err.contains("dirtree"), "hostile{i}: {err}");
    }
    let (_, err) = ox_fail(&["pull", &d, "origin", "bomb"]);
    assert!(
        err.contains(&bomb_csum.to_hex()) && err.contains("larger than its declared size"),
        "{err}"
    );
    let (_, err) = ox_fail(&["pull", &d, "origin", "main"]);
    assert!(
        err.contains(&missing) && err.contains("Server returned HTTP 404"),
        "{err}"
    );
    ox(&["fsck", &d]);
    assert!(!dst.join("refs/remotes/origin").join("main").exists());
    // Nothing escaped the repository.
    assert!(!t.join("a").exists() && !dst.join("..").join("b").exists());
}

/// Remote configuration written by each tool is read by the other; errors are clear.
#[test]
fn remote_config_interop() {
    require_ostree();
    let tmp = tempdir();
    let r = tmp.path().join("r");
    let a = repo_arg(&r);
    ox(&["init", &a, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &a,
        "--no-gpg-verify",
        "--set=foo=bar",
        "origin",
        "http://example.com/repo",
        "main",
        "other",
    ]);
    ostree(&["remote", "add", &a, "plain", "http://x/y"]);
    let cfg = std::fs::read_to_string(r.join("config")).expect("config");
    assert!(cfg.contains("[remote \"origin\"]\nurl=http://example.com/repo\nbranches=main;other;\nfoo=bar\ngpg-verify=false\n"), "{cfg}");
    assert_eq!(
        ox(&["remote", "list", &a, "-u"]),
        ostree(&["remote", "list", &a, "-u"])
    );
    assert_eq!(
        ostree(&["remote", "show-url", &a, "origin"]),
        "http://example.com/repo"
    );
    let (_, err) = ox_fail(&["remote", "add", &a, "origin", "http://dup"]);
    assert!(err.contains("already exists"), "{err}");
    ox(&[
        "remote",
        "add",
        &a,
        "--if-not-exists",
        "origin",
        "http://dup",
    ]);
    ox(&["remote", "delete", &a, "plain"]);
    assert_eq!(ostree(&["remote", "list", &a]), "origin");
    let (_, err) = ox_fail(&["pull", &a, "nosuch", "main"]);
    assert!(err.contains("not found"), "{err}");
    // gpg-verify defaults to true, which oxtree cannot honour yet: refuse, don't skip.
    ox(&["remote", "add", &a, "signed", "http://127.0.0.1:1/"]);
    let (_, err) = ox_fail(&["pull", &a, "signed", "main"]);
    assert!(err.contains("gpg-verify"), "{err}");
}

/// A tiny misbehaving HTTP server: `mode` "500" answers every request with HTTP 500,
/// "stall" sends headers and then nothing (slowloris). Returns its URL.
fn bad_server(mode: &'static str) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in l.incoming().take(64) {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                if mode == "500" {
                    let _ = c.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops");
                } else {
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nab");
                    std::thread::sleep(std::time::Duration::from_secs(30));
                }
            });
        }
    });
    url
}

/// HTTP 500 is retried, then reported; a stalling server times out: no hang.
#[test]
fn failing_and_stalling_servers_give_clear_errors() {
    let tmp = tempdir();
    let r = tmp.path().join("r");
    let a = repo_arg(&r);
    ox(&["init", &a, "--mode=bare-user"]);
    for (mode, expect) in [("500", "HTTP 500"), ("stall", "gave up")] {
        let url = bad_server(mode);
        ox(&["remote", "add", &a, "--no-gpg-verify", mode, &url]);
        let start = std::time::Instant::now();
        let (_, err) = ox_fail(&["pull", &a, "--timeout=1", mode, "main"]);
        let took = start.elapsed();
        assert!(err.contains(expect) && err.contains(&url), "{mode}: {err}");
        // 6 attempts with back-off (0.4+0.8+1.6+3.2+6.4 s) plus 1 s timeouts: bounded.
        assert!(
            took < std::time::Duration::from_secs(40),
            "{mode}: took {took:?}"
        );
    }
    ox(&["fsck", &a]);
}

/// --mirror, --commit-metadata-only, --depth and --dry-run behave as in ostree.
#[test]
fn pull_options() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let c1 = ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    write(&tree.join("v2"), b"v2\n", 0o644);
    let c2 = ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v2",
        TS,
        s(&tree),
    ]);
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    // Dry run: refs resolved (no summary: refs/heads/main is read), nothing stored.
    let out = ox(&["pull", &d, "--dry-run", "origin", "main"]);
    assert!(out.contains(&c2) && out.contains("dry run"), "{out}");
    assert!(object_set(&dst).is_empty());
    // History only: both commits, no trees, marked partial.
    ox(&[
        "pull",
        &d,
        "--commit-metadata-only",
        "--depth=-1",
        "origin",
        "main",
    ]);
    let objs = object_set(&dst);
    assert_eq!(
        objs.iter().filter(|o| o.ends_with(".commit")).count(),
        2,
        "{objs:?}"
    );
    assert!(!objs.iter().any(|o| o.ends_with(".filez")));
    assert!(ox(&["log", &d, "origin:main"]).contains("v1"));
    ox(&["fsck", &d]);
    // Then the full pull completes the head commit; --mirror writes refs/heads.
    ox(&["pull", &d, "--mirror", "origin", "main"]);
    assert_eq!(ox(&["rev-parse", &d, "main"]), c2);
    assert!(!dst.join(format!("state/{c2}.commitpartial")).exists());
    assert!(
        dst.join(format!("state/{c1}.commitpartial")).exists(),
        "v1 has no tree locally: it stays partial"
    );
    ox(&["fsck", &d]);
}

/// The client killed (SIGKILL) mid-pull: the rerun adopts what the killed run had verified
/// and fetches only the rest — far fewer requests than a second full pull.
#[test]
fn killed_client_pull_resumes_without_refetching() {
    let tmp = tempdir();
    let t = tmp.path();
    let (src, c) = bulk_source(t);
    let total = object_set(&src).len();
    let server = Server::start(&src);
    for mode in ["bare-user", "archive"] {
        let dst = t.join(format!("dst-{mode}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        server.clear_log();
        let mut child = std::process::Command::new(oxtree_bin())
            .args(["pull", &d, "--fetchers=2", "origin", "main"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn pull");
        for _ in 0..500 {
            if server.requests().len() > total / 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        let first = server
            .requests()
            .iter()
            .filter(|r| r.starts_with("/objects/"))
            .count();
        ox(&["fsck", &d]);
        ox(&["pull", &d, "origin", "main"]);
        assert_eq!(ox(&["rev-parse", &d, "origin:main"]), c);
        ox(&["fsck", &d]);
        let all = server
            .requests()
            .iter()
            .filter(|r| r.starts_with("/objects/"))
            .count();
        // Requests in flight when the kill landed may be repeated, nothing more.
        assert!(
            all <= total + 40,
            "{mode}: {all} object requests for {total} objects ({first} before the kill)"
        );
    }
}

/// An archive repo with the usual test tree plus 1,500 small files in 40 directories, enough
/// for a pull to be interrupted part way: (repo, commit).
fn bulk_source(t: &Path) -> (std::path::PathBuf, String) {
    let tree = t.join("tree");
    build_tree(&tree, false);
    for i in 0..1500 {
        write(
            &tree.join(format!("bulk/{:02}/{i}", i % 40)),
            format!("bulk file {i}\n").repeat(50).as_bytes(),
            0o644,
        );
    }
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    (src, c)
}

/// `file://` remotes pull a local archive repo with the same verification as HTTP; a
/// non-archive one is refused with advice.
#[test]
fn file_remote() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "local",
        &format!("file://{}", s(&src)),
    ]);
    ox(&["pull", &d, "local", "main"]);
    assert_eq!(ox(&["rev-parse", &d, "local:main"]), c);
    ox(&["fsck", &d]);
    let other = t.join("other");
    let o = repo_arg(&other);
    ox(&["init", &o, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &o,
        "--no-gpg-verify",
        "bu",
        &format!("file://{}", s(&dst)),
    ]);
    // A bare-user repo is imported from (as ostree does), by its branches only: its
    // remote-tracking refs are not offered.
    let (_, err) = ox_fail(&["pull", &o, "bu", "local/main"]);
    assert!(
        err.starts_with("error: Refspec 'local/main' not found"),
        "{err}"
    );
    ox(&["refs", &d, "--create=main", &c]);
    ox(&["pull", &o, "bu", "main"]);
    assert_eq!(ox(&["rev-parse", &o, "bu:main"]), c);
    ox(&["fsck", &o]);
}

/// Wait for `child` up to `secs` seconds; kill it (and fail) if it is still running then.
fn wait_or_kill(mut child: std::process::Child, secs: u64, what: &str) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let o = child.wait_with_output().expect("output");
    panic!(
        "{what}: still running after {secs} s, killed; stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn spawn_ox(args: &[&str]) -> std::process::Child {
    std::process::Command::new(oxtree_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn oxtree")
}

/// The `objects/XX/REST.filez` path of the file at `path` in `rev` of the archive `repo`.
fn filez_path(repo: &Path, rev: &str, path: &str) -> (String, String) {
    let c = ox(&["ls", &repo_arg(repo), "-C", rev, path])
        .split_whitespace()
        .nth(4)
        .expect("checksum")
        .to_string();
    (format!("objects/{}/{}.filez", &c[..2], &c[2..]), c)
}

/// C1: the server swaps a genuine file's `.filez` for the bytes of a setuid-root file
/// (pulled into a bare repo, as root: what `admin upgrade` does) and trickles another object
/// to hold the pull open. At no point — while the pull runs, after it is killed, after the
/// next transaction — is there a setuid file in the repository (objects/, tmp/, staging),
/// nor a staged object that fails its hash; the ref does not move.
#[test]
fn swapped_setuid_object_never_lands_anywhere() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("usr/bin/tool"), b"genuine tool\n", 0o755);
    write(&tree.join("usr/lib/big"), &vec![7u8; 256 << 10], 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let evil_tree = t.join("evil");
    write(
        &evil_tree.join("sh"),
        b"#!/bin/sh\nexec /bin/sh -p\n",
        0o4755,
    );
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "evil",
        "-s",
        "e",
        TS,
        s(&evil_tree),
    ]);
    let (tool, _) = filez_path(&src, "main", "/usr/bin/tool");
    let (big, _) = filez_path(&src, "main", "/usr/lib/big");
    let (evil, evil_csum) = filez_path(&src, "evil", "/sh");
    let server = hostile::HostileServer::start(&src);
    server.swap_file(&tool, &evil);
    server.trickle(&big, std::time::Duration::from_millis(100));
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    let mut child = spawn_ox(&["pull", &d, "origin", "main"]);
    let start = std::time::Instant::now();
    // Until the window is open (or the pull already refused the swapped object and ended).
    while !(server.served(&tool) && server.requested(&big)) {
        if child.try_wait().expect("wait").is_some() {
            assert!(server.served(&tool), "{:?}", server.log());
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "{:?}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The window the review found: the swapped object was received, the pull still runs.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.extend(setid_files(&dst));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.is_empty(), "setuid files while the pull ran: {seen:?}");
    let scan = assert_repo_clean(&dst);
    assert!(!scan.has(&evil_csum), "the swapped-in object was stored");
    assert!(!dst.join("refs/remotes/origin/main").exists());
    // The next transaction (an honest pull) adopts nothing of it.
    server.heal(&tool);
    server.heal(&big);
    ox(&["pull", &d, "origin", "main"]);
    let scan = assert_repo_clean(&dst);
    assert!(!scan.has(&evil_csum));
}

/// H3: a small object served with a huge declared length and a body that does not end (or
/// with no length at all) is refused: the download stops near the size the verified commit
/// declares for it (`ostree.sizes`), nothing large is left in tmp/, and the ref stays.
#[test]
fn endless_object_is_cut_off() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("small"), b"abc", 0o644);
    write(&tree.join("other"), b"other\n", 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        "--generate-sizes",
        TS,
        s(&tree),
    ]);
    let (small, small_csum) = filez_path(&src, "main", "/small");
    let server = hostile::HostileServer::start(&src);
    for (mode, declared) in [("bare-user", Some(1u64 << 40)), ("archive", None)] {
        server.clear_log();
        server.stretch(&small, declared, 64 << 20);
        let dst = t.join(format!("dst-{mode}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        let o = wait_or_kill(spawn_ox(&["pull", &d, "origin", "main"]), 120, mode);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{mode}: the pull succeeded");
        assert!(
            err.contains(&small_csum) || err.contains(&small),
            "{mode}: {err}"
        );
        let sent: u64 = server
            .log()
            .iter()
            .filter(|r| r.path == small)
            .map(|r| r.sent)
            .sum();
        assert!(
            sent < 16 << 20,
            "{mode}: the client read {sent} bytes of a 3-byte object"
        );
        assert!(
            dir_size(&dst.join("tmp")) < 1 << 20,
            "{mode}: tmp/ holds {} bytes",
            dir_size(&dst.join("tmp"))
        );
        let scan = assert_repo_clean(&dst);
        assert!(!scan.has(&small_csum), "{mode}");
        assert!(!dst.join("refs/remotes/origin/main").exists());
    }
}

/// M1: a server that trickles an object (one byte per 200 ms: a slow-retrieval / freeze
/// attack that never trips a per-read timeout) makes the pull fail under the low-speed
/// limit, instead of holding it open for days; nothing partial stays and the ref stays.
#[test]
fn trickled_object_fails_the_pull() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("data"), &vec![3u8; 64 << 10], 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let (data, data_csum) = filez_path(&src, "main", "/data");
    let server = hostile::HostileServer::start(&src);
    server.trickle(&data, std::time::Duration::from_millis(200));
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    let o = wait_or_kill(
        spawn_ox(&[
            "pull",
            &d,
            "--low-speed-limit-bytes=1000",
            "--low-speed-time-seconds=2",
            "origin",
            "main",
        ]),
        120,
        "trickled pull",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the pull succeeded");
    assert!(
        err.contains(&server.url) && !err.contains("panicked"),
        "{err}"
    );
    let scan = assert_repo_clean(&dst);
    assert!(!scan.has(&data_csum));
    assert!(!dst.join("refs/remotes/origin/main").exists());
}

/// D3: two pulls of the same large object into one archive repository at once share its
/// partial download only through its lock: both end, the repository is fsck-clean and the
/// stored `.filez` is byte for byte the served one (no interleaved or foreign bytes).
#[test]
fn concurrent_pulls_of_one_large_object_do_not_mix_bytes() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    // Incompressible, so the .filez is large too.
    let data = noise(12 << 20, 0x9e37_79b9_7f4a_7c15);
    write(&tree.join("big"), &data, 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let (big, _) = filez_path(&src, "main", "/big");
    let served = std::fs::read(src.join(&big)).expect("read");
    let server = Server::start(&src);
    for round in 0..3 {
        let dst = t.join(format!("dst{round}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, "--mode=archive"]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        let a = spawn_ox(&["pull", &d, "origin", "main"]);
        let b = spawn_ox(&["pull", &d, "origin", "main"]);
        let (oa, ob) = (
            wait_or_kill(a, 120, "first pull"),
            wait_or_kill(b, 120, "second pull"),
        );
        assert!(
            oa.status.success() || ob.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&oa.stderr),
            String::from_utf8_lossy(&ob.stderr)
        );
        // Whatever one of them left unfinished, a third pull completes.
        ox(&["pull", &d, "origin", "main"]);
        ox(&["fsck", &d]);
        assert_eq!(
            std::fs::read(dst.join(&big)).expect("stored object"),
            served,
            "round {round}: the stored .filez differs from the served one"
        );
    }
}

/// L5: bytes after a `.filez`'s compressed stream are refused by an archive repo (which keeps
/// the served bytes and would serve them on to its own clients): nothing of the object is
/// stored and the ref does not move; a clean server then works. A bare-user repo stores the
/// inflated, verified content and never the extra bytes.
#[test]
fn trailing_bytes_after_compressed_content_are_refused() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("small"), b"small file\n", 0o644);
    write(&tree.join("large"), &vec![5u8; 512 << 10], 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let server = hostile::HostileServer::start(&src);
    for (file, mode) in [("/small", "archive"), ("/large", "archive")] {
        let (path, csum) = filez_path(&src, "main", file);
        let mut bytes = std::fs::read(src.join(&path)).expect("read");
        bytes.extend_from_slice(b"JUNK AFTER THE STREAM");
        server.swap(&path, bytes);
        let dst = t.join(format!("dst-{mode}{}", file.replace('/', "-")));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        let (_, err) = ox_fail(&["pull", &d, "origin", "main"]);
        assert!(
            err.contains("after the end of the compressed content"),
            "{mode}: {err}"
        );
        let scan = assert_repo_clean(&dst);
        assert!(!scan.has(&csum), "{mode}: the padded object was stored");
        assert!(!dst.join("refs/remotes/origin/main").exists());
        server.heal(&path);
        ox(&["pull", &d, "origin", "main"]);
        ox(&["fsck", &d]);
        assert_eq!(
            std::fs::read(dst.join(&path)).expect("stored"),
            std::fs::read(src.join(&path)).expect("served")
        );
    }
    let (path, _) = filez_path(&src, "main", "/large");
    let mut bytes = std::fs::read(src.join(&path)).expect("read");
    bytes.extend_from_slice(b"JUNK AFTER THE STREAM");
    server.swap(&path, bytes);
    let dst = t.join("dst-bare-user");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ox(&["pull", &d, "origin", "main"]);
    assert_repo_clean(&dst);
    ox(&["checkout", &d, "-U", "origin:main", s(&t.join("co"))]);
    assert_eq!(
        std::fs::read(t.join("co/large")).expect("co"),
        vec![5u8; 512 << 10]
    );
}

/// pull-local resolves refs through the source's summary when it has one, as ostree does: a
/// stale summary gives its (older) commit, a ref it does not list is "No such branch".
#[test]
fn pull_local_resolves_refs_through_the_source_summary() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"1\n", 0o644);
    let src = t.join("src");
    ostree(&["init", &repo_arg(&src), "--mode=archive"]);
    let c1 = ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "1",
        TS,
        s(&tree),
    ]);
    ostree(&["summary", "-u", &repo_arg(&src)]);
    write(&tree.join("a"), b"2\n", 0o644);
    ostree(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "2",
        TS,
        s(&tree),
    ]);
    for tool in ["ostree", "oxtree"] {
        let d = t.join(format!("d-{tool}"));
        run_as(tool, &["init", &repo_arg(&d), "--mode=archive"]);
        run_as(tool, &["pull-local", &repo_arg(&d), s(&src), "main"]);
        assert_eq!(ostree(&["rev-parse", &repo_arg(&d), "main"]), c1, "{tool}");
    }
    let d = repo_arg(&t.join("d-oxtree"));
    let out = same(t, &["pull-local", &d, s(&src), "nosuch"]);
    assert!(out.is_empty());
}

/// The value of `"key":N` in a `pull --json` line.
fn json_number(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    json[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("number")
}

/// `bench/delay-proxy.py` in front of `port`, adding `ms` each way; killed on drop.
struct DelayProxy {
    child: std::process::Child,
    url: String,
}

impl DelayProxy {
    fn start(port: u16, ms: u32) -> DelayProxy {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/delay-proxy.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args(["0", &port.to_string(), &ms.to_string(), "300"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 bench/delay-proxy.py (the README's test command installs python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let listen: u16 = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("delay-proxy said {line:?}"))
            .parse()
            .expect("port");
        DelayProxy {
            child,
            url: format!("http://127.0.0.1:{listen}"),
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests in flight follow the round trip: 16 on loopback, more when each request takes
/// +20 ms each way (Little's law), and exactly N with `--fetchers=N`. Every pull ends with the
/// whole commit, fsck-clean for ostree.
#[test]
fn requests_in_flight_follow_the_round_trip() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    for i in 0..400 {
        let d = tree.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join(format!("f{i}")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )
        .expect("write");
    }
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ox(&["commit", &repo_arg(&src), "-b", "main", TS, s(&tree)]);
    let c = c.trim();
    ox(&["summary", &repo_arg(&src), "-u"]);
    let server = Server::start(&src);
    let proxy = DelayProxy::start(server.port, 20);
    let pull = |name: &str, url: &str, extra: &[&str]| -> String {
        let d = t.join(name);
        let r = repo_arg(&d);
        ox(&["init", &r, "--mode=bare-user"]);
        ox(&["remote", "add", &r, "--no-gpg-verify", "origin", url]);
        let mut args = vec!["pull", r.as_str(), "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["origin", "main"]);
        let out = ox(&args);
        assert_eq!(ox(&["rev-parse", &r, "origin:main"]).trim(), c);
        ostree(&["fsck", &r]);
        out
    };
    let near = pull("near", &server.url, &[]);
    assert_eq!(json_number(&near, "fetchers"), 16, "{near}");
    let far = pull("far", &proxy.url, &[]);
    let n = json_number(&far, "fetchers");
    assert!((64..=192).contains(&n), "at +20 ms each way: {far}");
    let fixed = pull("fixed", &proxy.url, &["--fetchers=4"]);
    assert_eq!(json_number(&fixed, "fetchers"), 4, "{fixed}");
}

/// A large object comes in `Range` slices, each starting where the one before ended, so
/// that what the server has sent is never much more than what is on disk (a kill loses at
/// most a slice); the whole is served once, and the pull is the same as in one piece.
#[test]
fn large_objects_come_in_contiguous_range_slices() {
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    let tree = t.join("tree");
    let data = noise(3 << 20, 0x2545_f491_4f6c_dd1d);
    write(&tree.join("big"), &data, 0o644);
    write(&tree.join("small"), b"small\n", 0o644);
    ox(&[
        "commit",
        &repo_arg(&src),
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        s(&tree),
    ]);
    let (big, _) = filez_path(&src, "main", "/big");
    let size = std::fs::metadata(src.join(&big)).expect("stat").len();
    let server = hostile::HostileServer::start(&src);
    for mode in ["bare-user", "archive"] {
        server.clear_log();
        let dst = t.join(format!("dst-{mode}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "origin",
            &server.url,
        ]);
        ox(&["pull", &d, "origin", "main"]);
        ox(&["fsck", &d]);
        let parts: Vec<_> = server.log().into_iter().filter(|r| r.path == big).collect();
        assert!(parts.len() > 1, "{mode}: {parts:?}");
        let mut next = 0;
        for p in &parts {
            assert_eq!(
                (p.status, p.range_from),
                (206, Some(next)),
                "{mode}: {parts:?}"
            );
            next += p.sent;
        }
        assert_eq!(next, size, "{mode}: {parts:?}");
        assert!(dir_size(&dst.join("tmp")) < 64 << 10, "{mode}");
    }
    // A checkout of what came in slices is the file.
    let out = t.join("co");
    ox(&[
        "checkout",
        &repo_arg(&t.join("dst-bare-user")),
        "-U",
        "origin:main",
        s(&out),
    ]);
    assert!(std::fs::read(out.join("big")).expect("read") == data);
}

/// A server cannot make a small response inflate before any checksum is checked (a gzip
/// bomb as `Content-Encoding`): oxtree asks for no compressed encoding, as ostree asks for
/// none, so whatever comes is taken as the bytes they are and verified as such. A dirtree
/// swapped for a gzip stream is refused by its checksum.
#[test]
fn no_content_encoding_is_asked_for() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let src = t.join("src");
    ox(&["init", &repo_arg(&src), "--mode=archive"]);
    ox(&["commit", &repo_arg(&src), "-b", "main", TS, s(&tree)]);
    let server = hostile::HostileServer::start(&src);
    let dst = t.join("dst");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ox(&["pull", &d, "origin", "main"]);
    let log = server.log();
    assert!(!log.is_empty());
    for r in &log {
        assert!(
            r.accept_encoding
                .as_deref()
                .is_none_or(|e| !e.contains("gzip") && !e.contains("deflate")),
            "{r:?}"
        );
    }
    // The root dirtree served as a gzip stream of zeros (what a bomb looks like).
    let fresh = t.join("fresh");
    let f = repo_arg(&fresh);
    ox(&["init", &f, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &f,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    let dirtree = log
        .iter()
        .find(|r| r.path.ends_with(".dirtree"))
        .expect("a dirtree")
        .path
        .clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 8 << 20]).expect("gzip");
    server.swap(&dirtree, gz.finish().expect("gzip"));
    let (code, err) = ox_fail(&["pull", &f, "origin", "main"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Corrupted dirtree object")
            && err.contains(&dirtree[dirtree.len() - 70..dirtree.len() - 8]),
        "{err}"
    );
    assert!(!fresh.join("refs/remotes/origin/main").exists());
}

/// A hostile source repository for `pull-local` (or a `file://` remote): a ref, a dirtree,
/// detached metadata or the config that is `/dev/zero` or a FIFO is an error at once, naming
/// the file: not a read that fills memory, nor one that waits forever. (ostree 2022.7 has
/// both problems.)
#[test]
fn pull_local_refuses_devices_and_fifos_in_the_source_at_once() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let c = ox(&["commit", &sa, "-b", "main", s(&tree)]);
    let obj = |ext: &str| {
        let dir = src.join("objects");
        std::fs::read_dir(&dir)
            .expect("objects")
            .flat_map(|d| std::fs::read_dir(d.expect("entry").path()).expect("readdir"))
            .map(|e| e.expect("entry").path())
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .expect("object")
    };
    let fifo = |p: &Path| {
        let _ = std::fs::remove_file(p);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
    };
    let zero = |p: &Path| {
        let _ = std::fs::remove_file(p);
        std::os::unix::fs::symlink("/dev/zero", p).expect("symlink");
    };
    let meta = src.join(format!("objects/{}/{}.commitmeta", &c[..2], &c[2..]));
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a ref that is /dev/zero",
            Box::new(|| zero(&src.join("refs/heads/zero"))),
            Box::new(|| {}),
            "zero",
        ),
        (
            "a ref that is a FIFO",
            Box::new(|| fifo(&src.join("refs/heads/fifo"))),
            Box::new(|| {}),
            "fifo",
        ),
        (
            "detached metadata that is /dev/zero",
            Box::new(|| zero(&meta)),
            Box::new(|| {
                let _ = std::fs::remove_file(&meta);
            }),
            "main",
        ),
    ];
    let dirtree = obj("dirtree");
    let saved = std::fs::read(&dirtree).expect("dirtree");
    let config = src.join("config");
    let saved_config = std::fs::read(&config).expect("config");
    let run = |what: &str, rev: &str| {
        let dst = t.join(format!("dst-{}", what.replace([' ', '/'], "-")));
        ox(&["init", &format!("--repo={}", s(&dst)), "--mode=archive"]);
        let mut child = std::process::Command::new(oxtree_bin())
            .args([&format!("--repo={}", s(&dst)), "pull-local", s(&src), rev])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what}: pull-local still running after 20 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("stderr");
        assert!(!status.success(), "{what}: accepted");
        assert!(err.contains("not a regular file"), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    };
    for (what, set, reset, rev) in &cases {
        set();
        run(what, rev);
        reset();
    }
    for (what, set) in [
        ("a dirtree that is /dev/zero", &zero as &dyn Fn(&Path)),
        ("a dirtree that is a FIFO", &fifo),
    ] {
        set(&dirtree);
        run(what, "main");
        std::fs::remove_file(&dirtree).expect("rm");
        std::fs::write(&dirtree, &saved).expect("restore");
    }
    for (what, set) in [
        ("a config that is /dev/zero", &zero as &dyn Fn(&Path)),
        ("a config that is a FIFO", &fifo),
    ] {
        set(&config);
        run(what, "main");
        std::fs::remove_file(&config).expect("rm");
        std::fs::write(&config, &saved_config).expect("restore");
    }
}

/// ostree's own test server with `--force-range-requests` cuts off every reply to a request
/// without `Range` half-way (`Connection: close`), and answers a closed range past a file's
/// end with as many bytes as asked for: a pull must still finish in one go, resuming each
/// cut-off file where it stopped with an open range, and say libcurl's words for a cut-off
/// reply when it cannot (test-pull-resume in ostree's suite; CI once failed it with
/// "Peer disconnected" after the fetcher had stopped sending ranges at all).
#[test]
fn pull_through_a_server_that_only_serves_ranges() {
    require_ostree();
    let httpd = Path::new("/usr/libexec/libostree/ostree-trivial-httpd");
    assert!(
        httpd.exists(),
        "ostree-trivial-httpd is not installed: run the README's test command (it installs ostree-tests)"
    );
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, true);
    // No empty directory: its dirtree is one byte, half of which is none, and the server
    // then neither sends nor closes (ostree's pull waits for it too).
    let empty = std::process::Command::new("find")
        .args([s(&tree), "-type", "d", "-empty"])
        .output()
        .expect("find");
    for d in String::from_utf8_lossy(&empty.stdout).lines() {
        write(&Path::new(d).join("keep"), b"", 0o644);
    }
    for i in 0..40u64 {
        let len = 1 + (i * 7919) as usize % 300_000;
        write(&tree.join(format!("many/f{i}")), &noise(len, i), 0o644);
    }
    let src = t.join("www/repo");
    std::fs::create_dir_all(t.join("www")).expect("mkdir");
    ostree(&["init", &repo_arg(&src), "--mode=archive"]);
    let c = ostree(&["commit", &repo_arg(&src), "-b", "main", TS, s(&tree)]);
    ostree(&["summary", &repo_arg(&src), "-u"]);
    let port_file = t.join("port");
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Killed(
        std::process::Command::new(httpd)
            .args([
                "--force-range-requests",
                "-p",
                s(&port_file),
                s(&t.join("www")),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ostree-trivial-httpd"),
    );
    let mut port = String::new();
    for _ in 0..100 {
        port = std::fs::read_to_string(&port_file).unwrap_or_default();
        if port.trim().parse::<u16>().is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{}/repo", port.trim());
    for mode in ["archive", "bare-user"] {
        let dst = t.join(format!("dst-{mode}"));
        let d = repo_arg(&dst);
        ox(&["init", &d, &format!("--mode={mode}")]);
        ox(&["remote", "add", &d, "--no-gpg-verify", "origin", &url]);
        ox(&["pull", &d, "origin", "main"]);
        assert_eq!(ox(&["rev-parse", &d, "origin:main"]), c);
        ox(&["fsck", &d]);
        ostree(&["fsck", &d]);
        if mode == "archive" {
            assert_eq!(object_set(&dst), object_set(&src));
        }
    }
    // With no retries, the cut-off reply to the first request fails the pull in libcurl's
    // words, which ostree's scripts match.
    let dst = t.join("dst-noretry");
    let d = repo_arg(&dst);
    ox(&["init", &d, "--mode=archive"]);
    ox(&["remote", "add", &d, "--no-gpg-verify", "origin", &url]);
    let (code, err) = ox_fail(&["pull", &d, "--network-retries=0", "origin", "main"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Transferred a partial file"),
        "a cut-off reply is not reported as libcurl reports it: {err}"
    );
}
