//! The text scripts read: the same command run by real `ostree` and by oxtree on the same
//! repository gives the same stdout, the same success or failure, and (for refused input)
//! the same `error:` line. One test per command family.

mod common;

use common::*;
use std::path::Path;

/// A repository with two commits of a small tree (xattrs, a symlink, sizes metadata) and two
/// more trees that differ in every way `diff` reports.
fn fixture(t: &Path) {
    let r = t.join("repo");
    ostree(&["init", &format!("--repo={}", s(&r)), "--mode=archive"]);
    let tree = t.join("t");
    write(&tree.join("a/f"), b"hi\n", 0o644);
    std::os::unix::fs::symlink("f", tree.join("a/l")).expect("symlink");
    set_xattr(&tree.join("a/f"), "user.foo", b"bar");
    let repo = format!("--repo={}", s(&r));
    ostree(&[
        "commit",
        &repo,
        "-b",
        "main",
        "-s",
        "s1",
        "--add-metadata-string=version=1.0",
        "--generate-sizes",
        s(&tree),
    ]);
    write(&tree.join("a/f"), b"hi\nx\n", 0o644);
    write(&tree.join("new"), b"n\n", 0o644);
    ostree(&["commit", &repo, "-b", "main", "-s", "s2", s(&tree)]);
    let (u1, u2) = (t.join("u1"), t.join("u2"));
    for (p, d) in [
        ("d1/sub/x", "a"),
        ("keep/y", "b"),
        ("gone", "c"),
        ("mode", "m"),
        ("typechange", "t"),
        ("td/q", "q"),
    ] {
        write(&u1.join(p), d.as_bytes(), 0o644);
    }
    for (p, d, m) in [
        ("keep/y", "b2", 0o644),
        ("mode", "m", 0o600),
        ("td", "f", 0o644),
        ("newdir/deep/z", "n", 0o644),
    ] {
        write(&u2.join(p), d.as_bytes(), m);
    }
    std::fs::create_dir_all(u2.join("typechange")).expect("mkdir");
    ostree(&["commit", &repo, "-b", "u1", s(&u1)]);
    ostree(&["commit", &repo, "-b", "u2", s(&u2)]);
}

#[test]
fn show_log_ls_cat_as_ostree() {
    require_ostree();
    let t = tempdir();
    fixture(t.path());
    let d = t.path();
    let repo = format!("--repo={}", s(&d.join("repo")));
    let r = repo.as_str();
    for args in [
        vec![r, "log", "main"],
        vec![r, "log", "--raw", "main"],
        vec![r, "log", "nosuch"],
        vec![r, "show", "main"],
        vec![r, "show", "main^"],
        vec![r, "show", "--raw", "main"],
        vec![r, "show", "-B", "main^"],
        vec![r, "show", "--raw", "-B", "main^"],
        vec![r, "show", "--print-sizes", "main^"],
        vec![r, "show", "--print-sizes", "main"],
        vec![r, "show", "--print-metadata-key=version", "main^"],
        vec![r, "show", "--print-metadata-key=ostree.ref-binding", "main"],
        vec![r, "show", "--print-metadata-key=ostree.sizes", "main^"],
        vec![r, "show", "--print-metadata-key=nope", "main"],
        vec![r, "show", "--print-detached-metadata-key=x", "main"],
        vec![r, "show", "--print-related", "main"],
        vec![r, "show", "nosuch"],
        vec![r, "rev-parse", "main"],
        vec![r, "rev-parse", "main^"],
        vec![r, "rev-parse", "main^^"],
        vec![r, "rev-parse", "nosuch"],
        vec![r, "ls", "main"],
        vec![r, "ls", "-R", "main"],
        vec![r, "ls", "-RC", "main"],
        vec![r, "ls", "-X", "main", "/a"],
        vec![r, "ls", "-XC", "main", "/a/f"],
        vec![r, "ls", "-d", "main", "/a"],
        vec![r, "ls", "-R", "-d", "main", "/a"],
        vec![r, "ls", "-R", "--nul-filenames-only", "main"],
        vec![r, "ls", "main", "/a/f", "/a"],
        vec![r, "ls", "main", "/nonexist"],
        vec![r, "cat", "main", "/a/f", "/new"],
        vec![r, "cat", "main", "/a"],
        vec![r, "cat", "main", "/nonexist"],
        // Paths from the root, empty components, the first missing component named.
        vec![r, "ls", "main", "a"],
        vec![r, "ls", "-R", "main", "a"],
        vec![r, "ls", "main", "/a/"],
        vec![r, "ls", "main", ""],
        vec![r, "ls", "main", "//a"],
        vec![r, "ls", "main", "nonexist/x"],
        vec![r, "ls", "main", "/a/f/x"],
        vec![r, "cat", "main", "/nonexist/x"],
        vec![r, "cat", "main", "/a/f/x"],
        vec![r, "cat", "main"],
        // Arguments after the ones a command takes are ignored, as ostree ignores them.
        vec![r, "log", "main", "main^"],
        vec![r, "show", "main", "nosuch"],
        vec![r, "fsck", "extra"],
        vec![r, "prune", "--no-prune", "extra"],
        // Options before the command's name (ostree reads them anywhere).
        vec![r, "-R", "ls", "main"],
        vec![r, "--raw", "show", "main"],
        vec![r, "--single", "rev-parse", "main"],
    ] {
        same(d, &args);
    }
    // A checksum of another object, or of nothing (a log of it fails: "does this commit
    // exist" checks rely on it).
    let rc = |rev: &str, path: &str| {
        ostree(&[r, "ls", "-C", "-d", rev, path])
            .split_whitespace()
            .rev()
            .find(|w| w.len() == 64)
            .map(str::to_string)
            .expect("a checksum")
    };
    let root = ostree(&[r, "ls", "-C", "-d", "main", "/"]);
    let words: Vec<&str> = root.split_whitespace().collect();
    let (tree, meta) = (words[4].to_string(), words[5].to_string());
    let file = rc("main", "/a/f");
    let none = "1".repeat(64);
    for obj in [&tree, &meta, &file, &none] {
        for args in [
            vec![r, "show", obj],
            vec![r, "show", "--raw", obj],
            vec![r, "log", obj],
            vec![r, "ls", obj],
        ] {
            same(d, &args);
        }
    }
    // cat follows a symlink inside the commit: relative, absolute, dangling, through `..`
    // (which ostree looks up as a name), and a loop (ostree crashes; oxtree says why).
    let links = d.join("links");
    write(&links.join("usr/bin/a"), b"hi\n", 0o644);
    for (name, target) in [
        ("usr/bin/rel", "a"),
        ("usr/bin/abs", "/usr/bin/a"),
        ("usr/bin/chain", "rel"),
        ("usr/bin/dangling", "nosuch"),
        ("usr/bin/dirlink", "/usr/bin"),
        ("usr/bin/loop1", "loop2"),
        ("usr/bin/loop2", "loop1"),
        ("etc/up", "../usr/bin/a"),
    ] {
        std::fs::create_dir_all(links.join(name).parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, links.join(name)).expect("symlink");
    }
    ostree(&[
        "commit",
        r,
        "-b",
        "links",
        "--timestamp=2020-01-01T00:00:00Z",
        s(&links),
    ]);
    for p in [
        "/usr/bin/rel",
        "/usr/bin/abs",
        "/usr/bin/chain",
        "/usr/bin/dangling",
        "/usr/bin/dirlink",
        "/etc/up",
    ] {
        same(d, &[r, "cat", "links", p]);
    }
    let (_, err) = ox_fail(&[r, "cat", "links", "/usr/bin/loop1"]);
    assert!(err.contains("Too many levels of symbolic links"), "{err}");
    // --print-variant-type reads any file as that GVariant type.
    let dirmeta = std::fs::read_dir(d.join("repo/objects"))
        .expect("objects")
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dirmeta"))
        .expect("a dirmeta object");
    same(
        d,
        &[r, "show", "--print-variant-type=(uuua(ayay))", s(&dirmeta)],
    );
}

#[test]
fn diff_and_checksum_as_ostree() {
    require_ostree();
    let t = tempdir();
    fixture(t.path());
    let d = t.path();
    let repo = format!("--repo={}", s(&d.join("repo")));
    let r = repo.as_str();
    for args in [
        vec![r, "diff", "u1", "u2"],
        vec![r, "diff", "u1", "./u2"],
        vec![r, "diff", "./u1", "u2"],
        vec![r, "diff", "./u1", "./u2"],
        vec![r, "diff", "main"],
        vec![r, "diff", "--stats", "u1", "u2"],
        vec![r, "diff", "--stats", "--fs-diff", "main^", "main"],
        vec![r, "diff", "--no-xattrs", "main", "./t"],
        vec![r, "diff", "--owner-uid=0", "--owner-gid=0", "main", "./t"],
        vec![r, "diff", "nosuch", "main"],
        vec![r, "diff", "--stats", "u1", "./u2"],
        vec![r, "diff", "./nosuchdir", "main"],
        vec!["checksum", "t/a/f"],
        vec!["checksum", "--ignore-xattrs", "t/a/f"],
        vec!["checksum", "t/a/l"],
        vec!["checksum", "t/a"],
        vec!["checksum", "nosuch"],
    ] {
        same(d, &args);
    }
    // The checksum of a file on disk is the object a commit of it stores.
    let c = ox(&["checksum", s(&d.join("t/new"))]);
    let listed = ox(&[r, "ls", "-C", "main", "/new"]);
    assert!(listed.contains(c.trim()), "{listed} vs {c}");
}

#[test]
fn export_is_byte_identical_to_ostree() {
    require_ostree();
    let t = tempdir();
    fixture(t.path());
    let d = t.path();
    // Long names and link targets go through GNU long-link entries.
    let long = d.join("lt").join("d".repeat(60)).join("e".repeat(60));
    write(&long.join("f".repeat(70)), b"x\n", 0o644);
    std::os::unix::fs::symlink("T".repeat(150), d.join("lt/longlink")).expect("symlink");
    let repo = format!("--repo={}", s(&d.join("repo")));
    ostree(&["commit", &repo, "-b", "lt", s(&d.join("lt"))]);
    for extra in [
        vec!["main"],
        vec!["u2"],
        vec!["lt"],
        vec!["main", "--subpath=/a", "--prefix=pre"],
        vec!["u1", "--prefix=x/y/"],
    ] {
        let (o, x) = (d.join("o.tar"), d.join("x.tar"));
        let mut a = vec![repo.as_str(), "export"];
        a.extend(&extra);
        let oo = format!("--output={}", s(&o));
        let xo = format!("--output={}", s(&x));
        ostree(&[a.as_slice(), &[oo.as_str()]].concat());
        ox(&[a.as_slice(), &[xo.as_str()]].concat());
        assert!(
            std::fs::read(&o).expect("read") == std::fs::read(&x).expect("read"),
            "export {extra:?}: the tar streams differ"
        );
        // To standard output (ostree's libarchive then pads to a whole 10240-byte record).
        let piped = |prog: &Path| {
            let out = std::process::Command::new(prog)
                .args(&a)
                .output()
                .expect("run");
            assert!(out.status.success(), "{prog:?} export {extra:?}");
            out.stdout
        };
        assert!(
            piped(Path::new("ostree")) == piped(&oxtree_bin()),
            "export {extra:?} to stdout: the tar streams differ"
        );
    }
    // Refused input: nothing written.
    let out = d.join("none.tar");
    let (_, err) = ox_fail(&[&repo, "export", "nosuch", &format!("--output={}", s(&out))]);
    assert!(err.contains("Refspec 'nosuch' not found"), "{err}");
    assert!(!out.exists());
    // A failed export into an existing file leaves it there (it may be /dev/null).
    let keep = d.join("keep.tar");
    std::fs::write(&keep, b"old").expect("write");
    same(
        d,
        &[
            &repo,
            "export",
            "main",
            "--subpath=/nope",
            &format!("--output={}", s(&keep)),
        ],
    );
    assert!(keep.exists());
}

#[test]
fn config_as_ostree() {
    require_ostree();
    let t = tempdir();
    let d = t.path();
    // Two repos, one changed by each tool: the same answers and the same files.
    for r in ["ro", "rx"] {
        ostree(&[
            "init",
            &format!("--repo={}", s(&d.join(r))),
            "--mode=bare-user",
        ]);
        // Comments and blank lines a person added: ostree's rewrite (GKeyFile) drops them.
        let cfg = d.join(r).join("config");
        let mut text = std::fs::read_to_string(&cfg).expect("config");
        text = format!("# written by hand\n{text}\n\n# the end\n[extra]\n# note\nk=v\n");
        std::fs::write(&cfg, text).expect("config");
    }
    let steps: Vec<Vec<&str>> = vec![
        vec!["config", "get", "core.mode"],
        vec!["config", "get", "core.nope"],
        vec!["config", "get", "nosect.key"],
        vec!["config", "get", "nodot"],
        vec!["config", "set", "core.foo", "bar"],
        vec!["config", "get", "core.foo"],
        vec!["config", "set", "--group=remote \"x\"", "url", "http://a"],
        vec!["config", "get", "--group=remote \"x\"", "url"],
        vec!["config", "unset", "core.foo"],
        vec!["config", "unset", "core.foo"],
        vec!["config", "unset", "nosect.foo"],
        vec!["config", "get"],
        vec!["config", "bogus"],
    ];
    for st in &steps {
        let ro = format!("--repo={}", s(&d.join("ro")));
        let rx = format!("--repo={}", s(&d.join("rx")));
        let o = run_raw(
            Path::new("ostree"),
            &[&[ro.as_str()], st.as_slice()].concat(),
        );
        let x = run_raw(&oxtree_bin(), &[&[rx.as_str()], st.as_slice()].concat());
        assert_eq!(o.status.success(), x.status.success(), "{st:?}");
        assert_eq!(o.stdout, x.stdout, "{st:?}");
        let first = |e: &[u8]| {
            String::from_utf8_lossy(e)
                .lines()
                .find(|l| l.starts_with("error:"))
                .map(str::to_string)
        };
        assert_eq!(first(&o.stderr), first(&x.stderr), "{st:?}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("ro/config")).expect("config"),
        std::fs::read_to_string(d.join("rx/config")).expect("config")
    );
}

#[test]
fn summary_view_as_ostree() {
    require_ostree();
    let t = tempdir();
    fixture(t.path());
    let d = t.path();
    let repo = format!("--repo={}", s(&d.join("repo")));
    let r = repo.as_str();
    // No summary yet; then one made by ostree (with a delta listed in it) viewed by both.
    same(d, &[r, "summary", "--view"]);
    same(d, &[r, "summary"]);
    ostree(&[r, "static-delta", "generate", "--to=main"]);
    ostree(&[r, "summary", "-u"]);
    for args in [
        vec![r, "summary", "--view"],
        vec![r, "summary", "-v"],
        vec![r, "summary", "--raw"],
    ] {
        same(d, &args);
    }
    // A commit over 1000 bytes shows its size as GLib does ("1.1 kB").
    let big = "x".repeat(1100);
    ostree(&[r, "commit", "-b", "big", "-s", &big, s(&d.join("u1"))]);
    ostree(&[r, "summary", "-u"]);
    assert!(same(d, &[r, "summary", "--view"]).contains("Latest Commit (1.2\u{a0}kB)"));
    // The same summary regenerated by oxtree reads the same to ostree, but for the time.
    ox(&[r, "summary", "-u"]);
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with("Last-Modified"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut a = strip(ostree(&[r, "summary", "--view"]));
    let mut b = strip(ox(&[r, "summary", "--view"]));
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn closed_pipe_and_verbose_as_ostree() {
    require_ostree();
    let t = tempdir();
    fixture(t.path());
    let d = t.path();
    // A reader that goes away ends the command quietly (SIGPIPE), as it does ostree.
    let sh = format!(
        "{} --repo={} ls -R main | head -c1 >/dev/null",
        s(&oxtree_bin()),
        s(&d.join("repo"))
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .expect("sh");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A short output into a pipe is written in one go at exit, as ostree's stdio writes it:
    // a reader that takes one line and goes does not fail the pipeline under pipefail
    // (line-by-line writes died of SIGPIPE, 141, where ostree exits 0).
    for tool in [s(&oxtree_bin()), "ostree"] {
        for cmd in ["log main", "ls -R main", "show main"] {
            let sh = format!(
                "set -o pipefail; {tool} --repo={} {cmd} | head -n1 >/dev/null",
                s(&d.join("repo"))
            );
            let o = std::process::Command::new("bash")
                .args(["-c", &sh])
                .output()
                .expect("bash");
            assert!(
                o.status.success(),
                "{tool} {cmd} | head -n1: {:?}",
                o.status
            );
        }
    }
    // --verbose/-v before or after the command: debug lines on stderr, the same stdout.
    let repo = format!("--repo={}", s(&d.join("repo")));
    let plain = ox(&[&repo, "rev-parse", "main"]);
    for args in [
        vec!["-v", &repo, "rev-parse", "main"],
        vec![&repo, "rev-parse", "main", "--verbose"],
    ] {
        let o = run_raw(&oxtree_bin(), &args);
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), plain.trim());
        assert!(String::from_utf8_lossy(&o.stderr).contains("DEBUG"));
    }
    // summary: -v is --view.
    ox(&[&repo, "summary", "-u"]);
    assert!(ox(&[&repo, "summary", "-v"]).contains("* main"));
}

/// `show` of a commit that is missing, as ostree words it: named by a ref or `REV^`, "No
/// such metadata object C.commit"; by its whole checksum, "Couldn't find file object" (it
/// may name another kind of object). A detached metadata key not there: "No such metadata
/// key".
#[test]
fn show_of_missing_commits_and_keys_as_ostree() {
    require_ostree();
    let t = tempdir();
    let d = t.path();
    let repo = d.join("repo");
    let r = format!("--repo={}", s(&repo));
    write(&d.join("tree/a"), b"a\n", 0o644);
    ostree(&["init", &r, "--mode=archive"]);
    ostree(&["commit", &r, "-b", "m", s(&d.join("tree"))]);
    ostree(&[
        "commit",
        &r,
        "-b",
        "m",
        "--add-detached-metadata-string=k=v",
        s(&d.join("tree")),
    ]);
    let p = ostree(&["rev-parse", &r, "m^"]);
    std::fs::remove_file(repo.join(format!("objects/{}/{}.commit", &p[..2], &p[2..]))).expect("rm");
    for args in [
        vec![r.as_str(), "show", "m^"],
        vec![r.as_str(), "show", p.as_str()],
        vec![r.as_str(), "show", "--print-detached-metadata-key=zz", "m"],
        vec![r.as_str(), "show", "--print-detached-metadata-key=k", "m"],
        vec![r.as_str(), "log", "m"],
    ] {
        common::same(d, &args);
    }
}

/// ostree and oxtree writing one repository at once, as ostree's own processes do: each
/// round runs an ostree commit, an oxtree commit, an oxtree commit killed at a random
/// moment and an ostree commit stopped by its `pre-commit` test hook, all together. Both
/// tools use staging directories of the same name and lock (`tmp/staging-BOOTID-*`, an OFD
/// lock on `NAME-lock`), so neither takes the other's live one; the dead ones (killed,
/// stopped) are adopted or reused. After every round both fsck the repository clean; at the
/// end every finished commit has its ref and no staging directory is left after one more
/// commit.
#[test]
fn ostree_and_oxtree_commit_into_one_repository_at_once() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let repo = t.join("repo");
    let r = format!("--repo={}", s(&repo));
    ostree(&["init", &r, "--mode=bare-user"]);
    let src = t.join("src");
    for i in 0..200 {
        write(
            &src.join(format!("d{}/f{i}", i % 7)),
            &noise(512 + i * 37, i as u64),
            0o644,
        );
    }
    let tree = format!("--tree=dir={}", s(&src));
    let spawn = |prog: &Path, branch: &str, env: Option<(&str, &str)>| {
        let mut c = std::process::Command::new(prog);
        c.args([r.as_str(), "commit", "-b", branch, tree.as_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c.spawn().expect("spawn")
    };
    let mut finished = Vec::new();
    for round in 0..6u64 {
        write(&src.join("round"), format!("{round}\n").as_bytes(), 0o644);
        let a = spawn(Path::new("ostree"), &format!("o{round}"), None);
        let b = spawn(&oxtree_bin(), &format!("x{round}"), None);
        let mut k = spawn(&oxtree_bin(), &format!("k{round}"), None);
        let e = spawn(
            Path::new("ostree"),
            &format!("e{round}"),
            Some(("OSTREE_REPO_TEST_ERROR", "pre-commit")),
        );
        std::thread::sleep(std::time::Duration::from_millis(5 + (round * 17) % 60));
        let _ = k.kill();
        let _ = k.wait();
        for (mut child, branch) in [(a, format!("o{round}")), (b, format!("x{round}"))] {
            assert!(child.wait().expect("wait").success(), "{branch} failed");
            finished.push(branch);
        }
        let mut e = e;
        assert!(
            !e.wait().expect("wait").success(),
            "the pre-commit hook stops it"
        );
        ostree(&["fsck", &r]);
        ox(&["fsck", &r]);
    }
    ox(&["commit", &r, "-b", "last", &tree]);
    let refs = ox(&["refs", &r]);
    for b in &finished {
        assert!(refs.lines().any(|l| l == b), "{b} missing from {refs}");
    }
    let left: Vec<_> = std::fs::read_dir(repo.join("tmp"))
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staging-"))
        .collect();
    assert!(left.is_empty(), "staging left: {left:?}");
    ostree(&["fsck", &r]);
}
