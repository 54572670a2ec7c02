//! The transport commands as ostree has them (issue 10): `pull`, `pull-local`,
//! `static-delta`, `summary` and `reset`. Each test runs real `ostree` and oxtree on the same
//! input (each on its own copy of a repository where the command changes it), against real
//! servers (`oxtree serve`, nginx), and compares what scripts see: stdout, success, the
//! `error:` line and the resulting repository.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

/// The first `error:` line of a run's stderr.
fn err_line(o: &Output) -> Option<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("error:"))
        .map(str::to_string)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show_output(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Run `prog args… --repo=REPO` in `cwd`.
fn run_repo(prog: &Path, cwd: &Path, repo: &Path, args: &[&str]) -> Output {
    run_repo_env(prog, cwd, repo, args, &[])
}

/// [`run_repo`] with extra environment variables.
fn run_repo_env(
    prog: &Path,
    cwd: &Path,
    repo: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.push(format!("--repo={}", s(repo)));
    std::process::Command::new(prog)
        .args(&a)
        .current_dir(cwd)
        .env("LC_ALL", "C.UTF-8")
        .envs(env.iter().copied())
        .output()
        .expect("run")
}

/// Run `args` with ostree against `ro` and oxtree against `rx` (`--repo=` is appended), both
/// in `cwd`; assert the same success, stdout (after `norm`) and error line.
fn both_norm(
    cwd: &Path,
    ro: &Path,
    rx: &Path,
    args: &[&str],
    norm: &dyn Fn(&str) -> String,
) -> (Output, Output) {
    both_env_norm(cwd, ro, rx, args, &[], norm)
}

/// [`both_norm`] with extra environment variables for both tools.
fn both_env_norm(
    cwd: &Path,
    ro: &Path,
    rx: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    norm: &dyn Fn(&str) -> String,
) -> (Output, Output) {
    let o = run_repo_env(Path::new("ostree"), cwd, ro, args, env);
    let x = run_repo_env(&oxtree_bin(), cwd, rx, args, env);
    same_success(args, &o, &x);
    assert_eq!(
        norm(&stdout(&o)),
        norm(&stdout(&x)),
        "{args:?}: stdout differs\nostree: {}\noxtree: {}",
        show_output(&o),
        show_output(&x)
    );
    if !o.status.success() {
        assert_eq!(
            err_line(&o),
            err_line(&x),
            "{args:?}: error line differs\noxtree: {}",
            show_output(&x)
        );
    }
    (o, x)
}

fn both(cwd: &Path, ro: &Path, rx: &Path, args: &[&str]) -> (Output, Output) {
    both_norm(cwd, ro, rx, args, &|s| s.to_string())
}

/// `cp -a src dst`.
fn copy_tree(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(dst);
    run_ok(Path::new("cp"), &["-a", s(src), s(dst)]);
}

fn repo_arg(p: &Path) -> String {
    format!("--repo={}", s(p))
}

/// Every ref of a repository (`ostree refs` of it, sorted), with its commit.
fn all_refs(repo: &Path) -> String {
    let r = repo_arg(repo);
    let mut v: Vec<String> = ostree(&["refs", &r])
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l} {}", ostree(&["rev-parse", &r, l])))
        .collect();
    v.sort();
    v.join("\n")
}

/// An archive repository made by ostree: `main` with two commits (v1, v2), `other` with
/// one, and a remote-tracking ref `origin:rmain`. Returns (repo, [v1, v2, other]).
fn fixture(t: &Path) -> (PathBuf, [String; 3]) {
    let r = t.join("fixture");
    let ra = repo_arg(&r);
    ostree(&["init", &ra, "--mode=archive"]);
    let tree = t.join("ftree");
    write(&tree.join("a/b/f"), b"hi\n", 0o644);
    write(&tree.join("c/g"), b"x\n", 0o644);
    write(&tree.join("top"), b"top\n", 0o755);
    let v1 = ostree(&["commit", &ra, "-b", "main", "-s", "v1", TS, s(&tree)]);
    write(&tree.join("c/new"), &vec![b'n'; 5000], 0o644);
    let v2 = ostree(&[
        "commit",
        &ra,
        "-b",
        "main",
        "-s",
        "v2",
        "--timestamp=2020-02-01T00:00:00Z",
        s(&tree),
    ]);
    write(&tree.join("only-other"), b"o\n", 0o644);
    let other = ostree(&["commit", &ra, "-b", "other", "-s", "o", TS, s(&tree)]);
    ostree(&["refs", &ra, "--create=origin:rmain", &v1]);
    (r, [v1, v2, other])
}

/// `reset`: ostree's checks and messages (REF must be a ref of the repository, COMMIT must
/// resolve; no ancestry check), the same refs afterwards, and refused input changes nothing.
#[test]
fn reset_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, [v1, v2, other]) = fixture(t);
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    copy_tree(&fx, &ro);
    copy_tree(&fx, &rx);
    let v1_short = &v1[..8];
    let cases: Vec<Vec<&str>> = vec![
        vec!["reset", "main", &v1],
        // Forward again and to an unrelated commit: ostree checks no ancestry.
        vec!["reset", "main", &v2],
        vec!["reset", "main", &other],
        vec!["reset", "main", "main"],
        vec!["reset", "main", v1_short],
        vec!["reset", "other", "main^"],
        vec!["reset", "origin:rmain", &v2],
        // Refused input.
        vec!["reset"],
        vec!["reset", "main"],
        vec!["reset", "nosuch", &v1],
        vec!["reset", "ma", &v1],
        vec!["reset", "rmain", &v1],
        vec!["reset", "bad..ref", &v1],
        vec!["reset", "main^", &v1],
        vec!["reset", "main", "nosuch"],
        vec!["reset", "main", "00000"],
        vec!["reset", "main", "other^"],
        vec!["reset", "nosuch", "nosuch2"],
    ];
    for args in &cases {
        let before = all_refs(&rx);
        let (_, x) = both(t, &ro, &rx, args);
        assert_eq!(all_refs(&ro), all_refs(&rx), "{args:?}");
        if !x.status.success() {
            assert_eq!(before, all_refs(&rx), "{args:?} changed refs");
        }
    }
    assert!(all_refs(&rx).contains(&format!("origin:rmain {v2}")));
    // A missing repository: an error naming it.
    let x = run_repo(&oxtree_bin(), t, &t.join("nope"), &["reset", "main", &v1]);
    assert!(
        !x.status.success() && stderr(&x).contains("nope"),
        "{}",
        show_output(&x)
    );
    // Deliberate difference: ostree writes a ref to a commit the repository does not have
    // (fsck then fails); oxtree refuses.
    let zeros = "0".repeat(64);
    let x = run_repo(&oxtree_bin(), t, &rx, &["reset", "main", &zeros]);
    assert!(!x.status.success());
    assert!(
        err_line(&x).is_some_and(|l| l.contains(&format!("{zeros}.commit"))),
        "{}",
        show_output(&x)
    );
    ox(&["fsck", &repo_arg(&rx)]);
}

/// `summary --raw` as real ostree prints it, with the last-modified time blanked.
fn summary_raw(repo: &Path) -> String {
    let raw = ostree(&["summary", &repo_arg(repo), "--raw"]);
    let key = "'ostree.summary.last-modified': <uint64 ";
    match raw.find(key) {
        Some(i) => {
            let rest = &raw[i + key.len()..];
            let end = rest.find('>').unwrap_or(0);
            format!("{}{key}T{}", &raw[..i], &rest[end..])
        }
        None => raw,
    }
}

/// `summary -u --add-metadata`: values parsed as GLib parses GVariant text, stored in the
/// summary in ostree's dictionary order (byte-identical `--raw`, the same `--view`), and
/// refused input (ostree's texts) changes nothing.
#[test]
fn summary_add_metadata_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    copy_tree(&fx, &ro);
    copy_tree(&fx, &rx);
    let view_norm = |s: &str| {
        s.lines()
            .map(|l| {
                if l.starts_with("Last-Modified") {
                    "Last-Modified"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let sets: Vec<Vec<&str>> = vec![
        vec!["summary", "-u"],
        vec![
            "summary",
            "-u",
            "-m",
            "foo='bar'",
            "-m",
            "n=42",
            "--add-metadata=b=true",
            "-m",
            "arr=['a', 'b']",
            "-m",
            "t=uint64 5",
            "-m",
            "d=[1, 2.5]",
            "-m",
            "foo=7",
        ],
        vec![
            "summary",
            "--update",
            "-m",
            "x=(1, 'a')",
            "-m",
            "y={'a': <1>}",
            "-m",
            "z=<'q'>",
            "-m",
            "w=@ay []",
            "-m",
            "bs=b'abc'",
            "-m",
            "e=",
            "-m",
            "=1",
        ],
        // ostree's own keys win over the user's.
        vec![
            "summary",
            "-u",
            "-m",
            "ostree.summary.mode='x'",
            "-m",
            "a1=1",
            "-m",
            "a2=2",
            "-m",
            "a3=3",
            "-m",
            "a4=4",
            "-m",
            "a5=5",
            "-m",
            "a6=6",
            "-m",
            "a7=7",
        ],
    ];
    for args in &sets {
        // e= (an empty value) is an error in GLib: the set fails as a whole in both.
        let (o, _) = both(t, &ro, &rx, args);
        if o.status.success() {
            assert_eq!(summary_raw(&ro), summary_raw(&rx), "{args:?}");
            both_norm(t, &ro, &rx, &["summary", "--view"], &view_norm);
        }
    }
    // Refused input: the same error line, nothing written.
    let before = std::fs::read(rx.join("summary")).expect("summary");
    for args in [
        vec!["summary", "-u", "-m", "nokey"],
        vec!["summary", "-u", "-m", "foo=bar"],
        vec!["summary", "-u", "-m", "e=[]"],
        vec!["summary", "-u", "-m", "a=[1, 'x']"],
        vec!["summary", "-u", "-m", "a=byte 300"],
        vec!["summary", "-u", "-m", "ok=1", "-m", "bad={1,"],
        vec!["summary", "-m", "a=1"],
        vec!["summary", "--gpg-sign=ABCDEF", "--gpg-homedir=/nonexistent"],
    ] {
        let (_, x) = both(t, &ro, &rx, &args);
        assert!(!x.status.success(), "{args:?}");
        assert_eq!(
            std::fs::read(rx.join("summary")).expect("summary"),
            before,
            "{args:?} changed the summary"
        );
    }
    // In a repository with a collection ID the metadata also goes into the ostree-metadata
    // commit, in ostree's order.
    let (co, cx) = (t.join("co"), t.join("cx"));
    for r in [&co, &cx] {
        ostree(&[
            "init",
            &repo_arg(r),
            "--mode=archive",
            "--collection-id=org.example.Os",
        ]);
    }
    for args in [
        vec!["summary", "-u"],
        vec!["summary", "-u", "-m", "foo='bar'", "-m", "zz=1"],
    ] {
        both(t, &co, &cx, &args);
        let meta = |r: &Path| {
            let raw = ostree(&["show", &repo_arg(r), "--raw", "ostree-metadata"]);
            let line = raw.lines().nth(1).unwrap_or("").to_string();
            let line = line.split(", @ay").next().unwrap_or("").to_string();
            // The commit's timestamp is the second each tool ran in: the two may differ by one,
            // and so then does the checksum of the next commit's parent (this one).
            let line = match (line.find("}, [byte "), line.find("], @a(say)")) {
                (Some(i), Some(j)) if i < j => {
                    format!("{}PARENT{}", &line[..i + 3], &line[j + 1..])
                }
                _ => line,
            };
            match line.split_once("uint64 ") {
                Some((a, b)) => {
                    let rest = b.trim_start_matches(|c: char| c.is_ascii_digit());
                    format!("{a}uint64 TIME{rest}")
                }
                None => line,
            }
        };
        assert_eq!(meta(&co), meta(&cx), "{args:?}");
        assert_eq!(summary_raw(&co).len(), summary_raw(&cx).len(), "{args:?}");
    }
}

/// A fresh GnuPG home with one signing key; returns (home, fingerprint).
fn gpg_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            &format!("{name} <{name}@example.com>"),
            "ed25519",
            "sign",
            "never",
        ],
    );
    let out = gpg(&home, &["--list-keys", "--with-colons"]);
    let fpr = out
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    (home, fpr)
}

/// `summary -u --gpg-sign=KEY --gpg-homedir=DIR`: summary.sig in ostree's format, which real
/// ostree verifies (`gpg-verify-summary`) and so does oxtree; the ostree-metadata commit of a
/// collection repository is signed too; an unknown key is refused with ostree's text before
/// anything is written (ostree would leave an unsigned summary).
#[test]
fn summary_gpg_sign_verifies_in_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let (home, fpr) = gpg_key(t, "publisher");
    let pubkey = t.join("publisher.gpg");
    gpg(&home, &["--output", s(&pubkey), "--export", &fpr]);
    let r = repo_arg(&fx);
    ox(&[
        "summary",
        &r,
        "-u",
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
        "-m",
        "note='signed'",
    ]);
    let sig = std::fs::read(fx.join("summary.sig")).expect("summary.sig");
    assert!(sig.starts_with(b"ostree.gpgsigs\0"), "{sig:?}");
    // Real ostree verifies it, over file:// and over HTTP.
    let server = Server::start(&fx);
    for (name, url) in [
        ("file", format!("file://{}", s(&fx))),
        ("http", server.url.clone()),
    ] {
        let c = t.join(format!("client-{name}"));
        let ca = repo_arg(&c);
        ostree(&["init", &ca, "--mode=archive"]);
        ostree(&[
            "remote",
            "add",
            &ca,
            &format!("--gpg-import={}", s(&pubkey)),
            "--set=gpg-verify=false",
            "--set=gpg-verify-summary=true",
            "origin",
            &url,
        ]);
        let refs = ostree(&["remote", "refs", &ca, "origin"]);
        assert!(refs.contains("origin:main"), "{refs}");
        ostree(&["pull", &ca, "origin", "main"]);
        // And oxtree, with the same keyring.
        let cx = t.join(format!("oxclient-{name}"));
        let cxa = repo_arg(&cx);
        ox(&["init", &cxa, "--mode=archive"]);
        ox(&[
            "remote",
            "add",
            &cxa,
            &format!("--gpg-import={}", s(&pubkey)),
            "--set=gpg-verify=false",
            "--set=gpg-verify-summary=true",
            "origin",
            &url,
        ]);
        ox(&["pull", &cxa, "origin", "main"]);
        // `remote summary` shows the summary and then its signatures, as ostree does.
        assert_eq!(
            ox(&["remote", "summary", &cxa, "origin"]),
            ostree(&["remote", "summary", &ca, "origin"]),
            "{name}"
        );
    }
    // Two keys (the same one twice): two signatures, both verify.
    ox(&[
        "summary",
        &r,
        "-u",
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
    ]);
    assert!(std::fs::read(fx.join("summary.sig")).expect("sig").len() > sig.len() + 50);
    // Unknown key: ostree's error line; the signed pair stays as it was.
    let before = (
        std::fs::read(fx.join("summary")).expect("summary"),
        std::fs::read(fx.join("summary.sig")).expect("sig"),
    );
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    copy_tree(&fx, &ro);
    copy_tree(&fx, &rx);
    let (_, x) = both(
        t,
        &ro,
        &rx,
        &[
            "summary",
            "-u",
            "--gpg-sign=DEADBEEF",
            &format!("--gpg-homedir={}", s(&home)),
        ],
    );
    assert!(!x.status.success());
    assert_eq!(
        (
            std::fs::read(rx.join("summary")).expect("summary"),
            std::fs::read(rx.join("summary.sig")).expect("sig"),
        ),
        before
    );
    // A collection repository: the ostree-metadata commit carries the signature too.
    let cr = t.join("coll");
    let cra = repo_arg(&cr);
    ox(&[
        "init",
        &cra,
        "--mode=archive",
        "--collection-id=org.example.Os",
    ]);
    ox(&[
        "summary",
        &cra,
        "-u",
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
    ]);
    let shown = ostree(&[
        "show",
        &cra,
        "ostree-metadata",
        &format!("--gpg-homedir={}", s(&home)),
    ]);
    assert!(
        shown.contains("Found 1 signature") && shown.contains(&fpr[24..]),
        "{shown}"
    );
    let _ = std::process::Command::new("gpgconf")
        .args(["--homedir", s(&home), "--kill", "gpg-agent"])
        .status();
}

/// An archive repository for deltas (made by ostree): `main` at v1, then v2 with a file
/// modified in place (a bsdiff candidate), one added and a symlink. Returns (repo, v1, v2).
fn delta_fixture(t: &Path) -> (PathBuf, String, String) {
    let r = t.join("dfixture");
    let ra = repo_arg(&r);
    ostree(&["init", &ra, "--mode=archive"]);
    let tree = t.join("dtree");
    let mut data: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&tree.join("usr/lib/big"), &data, 0o644);
    write(&tree.join("usr/bin/tool"), b"#!/bin/sh\necho v1\n", 0o755);
    write(&tree.join("etc/conf"), b"a=1\n", 0o644);
    let v1 = ostree(&["commit", &ra, "-b", "main", "-s", "v1", TS, s(&tree)]);
    data[1000..1010].copy_from_slice(b"0123456789");
    write(&tree.join("usr/lib/big"), &data, 0o644);
    write(&tree.join("usr/bin/tool"), b"#!/bin/sh\necho v2\n", 0o755);
    write(&tree.join("usr/share/new"), b"new file\n", 0o644);
    std::os::unix::fs::symlink("../lib/big", tree.join("usr/bin/link")).expect("symlink");
    let v2 = ostree(&[
        "commit",
        &ra,
        "-b",
        "main",
        "-s",
        "v2",
        "--timestamp=2020-02-01T00:00:00Z",
        s(&tree),
    ]);
    (r, v1, v2)
}

/// Lines sorted (for listings whose order is the directory's, in ostree).
fn sorted_lines(s: &str) -> String {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v.join("\n")
}

/// `static-delta generate/list/indexes/reindex/show/delete`: the same stdout, success and
/// error lines as ostree on copies of one repository; `show` prints what ostree prints for
/// the same delta files, whichever tool made them.
#[test]
fn static_delta_commands_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, v1, v2) = delta_fixture(t);
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    copy_tree(&fx, &ro);
    copy_tree(&fx, &rx);
    let pair = format!("{v1}-{v2}");
    let zeros = "0".repeat(64);
    let to_v2 = format!("--to={v2}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["static-delta", "list"],
        vec!["static-delta", "indexes"],
        // TO as an argument; FROM defaults to its parent.
        vec!["static-delta", "generate", "main"],
        vec!["static-delta", "generate", "main", "-n"],
        vec!["static-delta", "generate", "--to=main", "--if-not-exists"],
        vec!["static-delta", "generate", "--empty", "--to=main", "-n"],
        vec!["static-delta", "generate", "--empty", "main", "-n"],
        vec![
            "static-delta",
            "generate",
            "--from=main",
            "--to=main^",
            "ignored",
        ],
        vec![
            "static-delta",
            "generate",
            "--to=main^",
            "--empty",
            "--disable-bsdiff",
        ],
        // Refused.
        vec!["static-delta", "generate"],
        vec!["static-delta", "generate", "--to=main^"],
        vec!["static-delta", "generate", "--to=nosuch"],
        vec!["static-delta", "generate", "--from=nosuch", "--to=main"],
        vec![
            "static-delta",
            "generate",
            "--from=main^",
            "--empty",
            "--to=main",
        ],
        vec![
            "static-delta",
            "generate",
            "--to=main",
            "--set-endianness=x",
        ],
        vec![
            "static-delta",
            "generate",
            "--to=main",
            "--sign-type=bogus",
            "--sign=k",
        ],
        // The test type, not enabled (OSTREE_DUMMY_SIGN_ENABLED unset): refused.
        vec![
            "static-delta",
            "generate",
            "--to=main",
            "--sign-type=dummy",
            "--sign=k",
        ],
        vec!["static-delta", "indexes"],
        vec!["static-delta", "reindex"],
        vec!["static-delta", "reindex", "--to=main"],
        vec!["static-delta", "reindex", "--to=abc"],
        vec!["static-delta", "reindex", &to_v2],
        vec!["static-delta", "show"],
        vec!["static-delta", "show", "nosuch"],
        vec!["static-delta", "show", "a", "b"],
        vec!["static-delta", "show", &zeros],
        vec!["static-delta", "delete"],
        vec!["static-delta", "delete", "nosuch"],
        vec!["static-delta", "delete", "3997653c-8afa84"],
        vec!["static-delta", "delete", &zeros],
    ];
    for args in &cases {
        let norm = |s: &str| {
            if args.get(1) == Some(&"list") || args.get(1) == Some(&"indexes") {
                sorted_lines(s)
            } else {
                s.to_string()
            }
        };
        let (_, x) = both_norm(t, &ro, &rx, args, &norm);
        if stdout(&x).starts_with("Generating") && x.status.success() {
            assert!(
                stderr(&x).contains("new reachable: metadata="),
                "statistics on stderr: {}",
                show_output(&x)
            );
        }
    }
    let listed = |r: &Path| sorted_lines(&ostree(&["static-delta", "list", &repo_arg(r)]));
    assert_eq!(listed(&ro), listed(&rx));
    assert!(listed(&rx).contains(&pair), "{}", listed(&rx));
    // show: the same text from both tools, on the deltas each tool made.
    let mut bsdiff_seen = false;
    for r in [&ro, &rx] {
        for name in ostree(&["static-delta", "list", &repo_arg(r)]).lines() {
            let (o, _) = both(t, r, r, &["static-delta", "show", name]);
            let out = stdout(&o);
            assert!(out.contains(&format!("Delta: {name}")), "{out}");
            if r == &rx && name == pair {
                bsdiff_seen = !out.contains("bspatch=0");
            }
        }
    }
    assert!(
        bsdiff_seen,
        "oxtree sends the file modified in place as a bsdiff patch"
    );
    // --disable-bsdiff: none.
    both(t, &ro, &rx, &["static-delta", "delete", &pair]);
    both(
        t,
        &ro,
        &rx,
        &["static-delta", "generate", "--disable-bsdiff", "main"],
    );
    let (o, _) = both(t, &rx, &rx, &["static-delta", "show", &pair]);
    assert!(stdout(&o).contains("bspatch=0"), "{}", stdout(&o));
    // delete: gone from the list, the rest kept, the index left for the next reindex.
    both(t, &ro, &rx, &["static-delta", "delete", &v2]);
    assert_eq!(listed(&ro), listed(&rx));
    assert!(!listed(&rx).lines().any(|l| l == v2));
    both(t, &ro, &rx, &["static-delta", "delete", &v2]);
    both_norm(t, &ro, &rx, &["static-delta", "indexes"], &sorted_lines);
    both(t, &ro, &rx, &["static-delta", "reindex"]);
    both_norm(t, &ro, &rx, &["static-delta", "indexes"], &sorted_lines);
    // Each tool's deltas pass the other's fsck, and oxtree's are used by ostree's pull.
    ostree(&["fsck", &repo_arg(&rx)]);
    ox(&["fsck", &repo_arg(&ro)]);
}

/// Run `args` (`--repo=` appended) with ostree against `ro` and oxtree against `rx`; assert
/// the same success and, for failures, the same first `error:` line (stdout is each tool's
/// own summary line for a pull, so it is not compared). Returns (ostree, oxtree).
fn both_status(cwd: &Path, ro: &Path, rx: &Path, args: &[&str]) -> (Output, Output) {
    let (o, x) = both_status_only(cwd, ro, rx, args);
    if !o.status.success() {
        assert_eq!(
            err_line(&o),
            err_line(&x),
            "{args:?}: error line differs\noxtree: {}",
            show_output(&x)
        );
    }
    (o, x)
}

/// What a repository holds that a command may change: its objects, refs and partial
/// markers.
fn repo_state(r: &Path) -> String {
    let mut partial: Vec<String> = std::fs::read_dir(r.join("state"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    partial.sort();
    format!(
        "objects:\n{}\nrefs:\n{}\nstate:\n{}",
        object_set(r).join("\n"),
        all_refs(r),
        partial.join("\n")
    )
}

/// An empty bare-user repository with `v1` of `src` pulled into it (the delta source).
fn bare_user_with(t: &Path, name: &str, src: &Path, rev: &str) -> PathBuf {
    let r = t.join(name);
    let _ = std::fs::remove_dir_all(&r);
    ostree(&["init", &repo_arg(&r), "--mode=bare-user"]);
    if !rev.is_empty() {
        ostree(&["pull-local", &repo_arg(&r), s(src), rev]);
    }
    r
}

/// The delta directory of the only delta under `repo/deltas`.
fn the_delta_dir(repo: &Path) -> PathBuf {
    let mut found = Vec::new();
    for p in std::fs::read_dir(repo.join("deltas"))
        .expect("deltas")
        .flatten()
    {
        for d in std::fs::read_dir(p.path()).expect("deltas/XX").flatten() {
            found.push(d.path());
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().expect("one delta")
}

/// Deltas made by each tool — plain, `--inline`, big-endian (`--set-endianness=B`,
/// `--swap-endianness`), written elsewhere with `--filename`, dummy-signed — are applied by
/// the other tool's `apply-offline` (and its own) with the same result, `show` prints the
/// same text for them in both tools, and `verify` agrees; bad input (a missing part, a
/// malformed superblock, a missing path, a wrong key, a malformed keys file, an unknown
/// delta) fails with ostree's error line and leaves the repository as it was, fsck clean.
#[test]
fn static_delta_apply_offline_and_show_interop() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, v1, v2) = delta_fixture(t);
    let pair = format!("{v1}-{v2}");
    let dummy = [("OSTREE_DUMMY_SIGN_ENABLED", "1")];
    let variants: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--inline", "--swap-endianness"],
        vec!["--disable-bsdiff", "--set-endianness=B"],
        vec!["--sign-type=dummy", "--sign=secret"],
    ];
    for extra in &variants {
        for (maker, made) in [("ostree", "do"), ("oxtree", "dx")] {
            let r = t.join(made);
            copy_tree(&fx, &r);
            let mut args = vec!["static-delta", "generate", "main"];
            args.extend(extra.iter().copied());
            let prog = if maker == "ostree" {
                PathBuf::from("ostree")
            } else {
                oxtree_bin()
            };
            let g = run_repo_env(&prog, t, &r, &args, &dummy);
            assert!(g.status.success(), "{maker} {args:?}: {}", show_output(&g));
            // show: the same text from both tools.
            let (o, _) = both(t, &r, &r, &["static-delta", "show", &pair]);
            if extra.contains(&"--inline") {
                assert!(!o.status.success(), "ostree's show stops at an inline part");
            }
            if extra.iter().any(|a| a.contains("endianness")) {
                assert!(stdout(&o).contains("Endianness: big"), "{}", stdout(&o));
            }
            // verify (dummy): the same verdict from both tools.
            if extra.contains(&"--sign-type=dummy") {
                for key in ["secret", "wrong"] {
                    both_env_norm(
                        t,
                        &r,
                        &r,
                        &["static-delta", "verify", "--sign-type=dummy", &pair, key],
                        &dummy,
                        &|s| s.to_string(),
                    );
                }
            }
            // apply-offline by both tools, into repositories holding v1.
            let dir = the_delta_dir(&r);
            let ao = bare_user_with(t, "apply-o", &fx, &v1);
            let ax = bare_user_with(t, "apply-x", &fx, &v1);
            let mut args = vec!["static-delta", "apply-offline", s(&dir)];
            if extra.contains(&"--sign-type=dummy") {
                args.extend(["--sign-type=dummy", "secret"]);
            }
            let (o, _) = both_env_norm(t, &ao, &ax, &args, &dummy, &|s| s.to_string());
            assert!(o.status.success(), "{maker} {extra:?}: {}", show_output(&o));
            assert_eq!(repo_state(&ao), repo_state(&ax), "{maker} {extra:?}");
            let commit_file = format!("{}/{}.commit", &v2[..2], &v2[2..]);
            assert!(object_set(&ax).contains(&commit_file), "{maker} {extra:?}");
            ostree(&["fsck", &repo_arg(&ax)]);
            // A wrong key: refused by both, nothing written.
            if extra.contains(&"--sign-type=dummy") {
                let bo = bare_user_with(t, "bad-o", &fx, &v1);
                let bx = bare_user_with(t, "bad-x", &fx, &v1);
                let before = repo_state(&bx);
                let a = [
                    "static-delta",
                    "apply-offline",
                    s(&dir),
                    "--sign-type=dummy",
                    "wrong",
                ];
                let (o, _) = both_env_norm(t, &bo, &bx, &a, &dummy, &|s| s.to_string());
                assert!(!o.status.success());
                assert_eq!(before, repo_state(&bx));
            }
        }
    }
    // --filename: the superblock where asked, its parts beside it; applied from there by
    // both tools (a superblock file as PATH).
    for (maker, name) in [("ostree", "fo"), ("oxtree", "fx")] {
        let out = t.join(format!("out-{name}"));
        std::fs::create_dir_all(&out).expect("mkdir");
        let sb = out.join("delta.sb");
        let prog = if maker == "ostree" {
            PathBuf::from("ostree")
        } else {
            oxtree_bin()
        };
        let fname = format!("--filename={}", s(&sb));
        let g = run_repo(&prog, t, &fx, &["static-delta", "generate", "main", &fname]);
        assert!(g.status.success(), "{}", show_output(&g));
        assert!(
            sb.is_file() && out.join("0").is_file(),
            "{maker}: {:?}",
            out
        );
        let ao = bare_user_with(t, "fapply-o", &fx, &v1);
        let ax = bare_user_with(t, "fapply-x", &fx, &v1);
        let (o, _) = both(t, &ao, &ax, &["static-delta", "apply-offline", s(&sb)]);
        assert!(o.status.success());
        assert_eq!(repo_state(&ao), repo_state(&ax));
    }
    assert!(
        !fx.join("deltas").exists(),
        "--filename wrote into the repository"
    );
    // --filename into a directory that does not exist: ostree's error, nothing written.
    let (ro, rx) = (t.join("fro"), t.join("frx"));
    copy_tree(&fx, &ro);
    copy_tree(&fx, &rx);
    let (o, _) = both(
        t,
        &ro,
        &rx,
        &["static-delta", "generate", "main", "--filename=nodir/sb"],
    );
    assert!(!o.status.success());
    assert!(!t.join("nodir").exists() && !rx.join("deltas").exists());
    // Bad input to apply-offline: each refused, the repository unchanged and fsck clean.
    let good = t.join("good");
    copy_tree(&fx, &good);
    ox(&["static-delta", "generate", &repo_arg(&good), "main"]);
    let gdir = the_delta_dir(&good);
    let no_part = t.join("no-part");
    std::fs::create_dir_all(&no_part).expect("mkdir");
    std::fs::copy(gdir.join("superblock"), no_part.join("superblock")).expect("copy");
    let garbage = t.join("garbage");
    write(&garbage.join("superblock"), b"not a superblock", 0o644);
    let missing = t.join("missing");
    let bad_keys = t.join("bad-keys");
    write(&bad_keys, b"this is not base64!\n", 0o644);
    let keys_arg = format!("--keys-file={}", s(&bad_keys));
    let cases: Vec<(Vec<&str>, bool)> = vec![
        // (args, compare with ostree)
        (vec!["static-delta", "apply-offline", s(&no_part)], true),
        (vec!["static-delta", "apply-offline", s(&missing)], true),
        (vec!["static-delta", "apply-offline"], true),
        (vec!["static-delta", "apply-offline", s(&garbage)], false),
        (
            vec!["static-delta", "apply-offline", s(&gdir), &keys_arg],
            false,
        ),
    ];
    for (args, compare) in &cases {
        let bo = bare_user_with(t, "bi-o", &fx, &v1);
        let bx = bare_user_with(t, "bi-x", &fx, &v1);
        let before = repo_state(&bx);
        let x = if *compare {
            both(t, &bo, &bx, args).1
        } else {
            run_repo(&oxtree_bin(), t, &bx, args)
        };
        assert!(!x.status.success(), "{args:?}: {}", show_output(&x));
        assert!(err_line(&x).is_some(), "{args:?}: {}", show_output(&x));
        assert_eq!(before, repo_state(&bx), "{args:?} changed the repository");
        ostree(&["fsck", &repo_arg(&bx)]);
    }
    // The source commit missing: ostree's message.
    let empty_o = bare_user_with(t, "e-o", &fx, "");
    let empty_x = bare_user_with(t, "e-x", &fx, "");
    let (o, _) = both(
        t,
        &empty_o,
        &empty_x,
        &["static-delta", "apply-offline", s(&gdir)],
    );
    assert!(!o.status.success());
    assert!(object_set(&empty_x).is_empty());
}

/// ed25519-signed deltas (oxtree's sign-ed25519; Debian's ostree is built without it):
/// `generate --sign` / `--keys-file`, `verify` with KEY-IDs, `--keys-file` and
/// `--keys-dir` (trusted and revoked lists), `apply-offline` with keys; a malformed keys
/// file and a revoked key are refused, nothing applied.
#[test]
fn static_delta_ed25519_sign_verify() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, v1, _v2) = delta_fixture(t);
    let (_, _, secret, public) = openssl_key(t, "delta");
    let (_, _, _, other_public) = openssl_key(t, "other");
    let r = t.join("signed");
    copy_tree(&fx, &r);
    let ra = repo_arg(&r);
    let sec_file = t.join("secret.keys");
    write(&sec_file, format!("{secret}\n").as_bytes(), 0o600);
    ox(&[
        "static-delta",
        "generate",
        &ra,
        "main",
        &format!("--keys-file={}", s(&sec_file)),
    ]);
    let name = ostree(&["static-delta", "list", &ra]).trim().to_string();
    // ostree reads the signed superblock.
    assert!(ostree(&["static-delta", "show", &ra, &name]).contains("Signed: yes"));
    let pub_file = t.join("public.keys");
    write(&pub_file, format!("{public}\n").as_bytes(), 0o644);
    let keys_dir = t.join("keys");
    write(
        &keys_dir.join("trusted.ed25519.d/publisher"),
        format!("{public}\n").as_bytes(),
        0o644,
    );
    let ok_cases: Vec<Vec<String>> = vec![
        vec![public.clone()],
        vec![other_public.clone(), public.clone()],
        vec![format!("--keys-file={}", s(&pub_file))],
        vec![format!("--keys-dir={}", s(&keys_dir))],
    ];
    for extra in &ok_cases {
        let mut args = vec!["static-delta", "verify", &ra, &name];
        args.extend(extra.iter().map(String::as_str));
        let out = ox(&args);
        assert!(out.contains("Verification OK"), "{extra:?}: {out}");
    }
    // Refused: another key, a revoked key, a malformed keys file.
    write(
        &keys_dir.join("revoked.ed25519"),
        format!("{public}\n").as_bytes(),
        0o644,
    );
    let bad_keys = t.join("bad.keys");
    write(&bad_keys, b"not-a-key\n", 0o644);
    let bad_cases: Vec<Vec<String>> = vec![
        vec![other_public.clone()],
        vec![format!("--keys-dir={}", s(&keys_dir))],
        vec![format!("--keys-file={}", s(&bad_keys))],
        vec![format!("--keys-file={}", s(&t.join("nosuch")))],
    ];
    for extra in &bad_cases {
        let mut args = vec!["static-delta", "verify", &ra, &name];
        args.extend(extra.iter().map(String::as_str));
        let (code, err) = ox_fail(&args);
        assert_ne!(code, 0, "{extra:?}");
        assert!(err.contains("error:"), "{extra:?}: {err}");
        // apply-offline with the same keys: refused, nothing written.
        let c = bare_user_with(t, "target", &fx, &v1);
        let before = repo_state(&c);
        let dir = the_delta_dir(&r);
        let mut a = vec!["static-delta", "apply-offline", s(&dir)];
        a.extend(extra.iter().map(String::as_str));
        let x = run_repo(&oxtree_bin(), t, &c, &a);
        assert!(!x.status.success(), "{extra:?}: {}", show_output(&x));
        assert_eq!(before, repo_state(&c), "{extra:?}");
    }
    // The right key applies it; ostree fscks the result.
    let c = bare_user_with(t, "target", &fx, &v1);
    let dir = the_delta_dir(&r);
    let x = run_repo(
        &oxtree_bin(),
        t,
        &c,
        &["static-delta", "apply-offline", s(&dir), &public],
    );
    assert!(x.status.success(), "{}", show_output(&x));
    ostree(&["fsck", &repo_arg(&c)]);
    // A malformed secret keys file: refused before anything is generated.
    let r2 = t.join("unsigned");
    copy_tree(&fx, &r2);
    let (code, _) = ox_fail(&[
        "static-delta",
        "generate",
        &repo_arg(&r2),
        "main",
        &format!("--keys-file={}", s(&bad_keys)),
    ]);
    assert_ne!(code, 0);
    assert!(!r2.join("deltas").exists());
}

/// A source for pulls: an archive repository (made by ostree) with `main` (v1, v2),
/// `bad` (a setuid file) and a summary. Returns (repo, v1, v2).
fn pull_source(t: &Path) -> (PathBuf, String, String) {
    let (r, v1, v2) = delta_fixture(t);
    let ra = repo_arg(&r);
    let tree = t.join("badtree");
    // One offending file: which of several a parallel copy meets first is not fixed.
    write(&tree.join("suid"), b"s\n", 0o4755);
    ostree(&["commit", &ra, "-b", "bad", "-s", "bad", TS, s(&tree)]);
    ostree(&["summary", "-u", &ra]);
    (r, v1, v2)
}

/// Two empty bare-user repositories (one per tool) with remote `o` at `url`.
fn clients(t: &Path, name: &str, url: &str) -> (PathBuf, PathBuf) {
    let (co, cx) = (t.join(format!("{name}-o")), t.join(format!("{name}-x")));
    for c in [&co, &cx] {
        let _ = std::fs::remove_dir_all(c);
        ostree(&["init", &repo_arg(c), "--mode=bare-user"]);
        ostree(&["remote", "add", &repo_arg(c), "--no-gpg-verify", "o", url]);
    }
    (co, cx)
}

/// `pull REMOTE REF@CHECKSUM` pins the ref to that commit (ostree's override), with or
/// without --commit-metadata-only and --mirror, over HTTP; a later plain pull moves it on;
/// a bad checksum or a ref the commit is not bound to fail as in ostree, storing nothing.
#[test]
fn pull_ref_at_commit_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, v1, v2) = pull_source(t);
    let server = Server::start(&src);
    let at_v1 = format!("main@{v1}");
    for extra in [None, Some("--commit-metadata-only"), Some("--mirror")] {
        let (co, cx) = clients(t, "at", &server.url);
        let mut args = vec!["pull", "o", at_v1.as_str()];
        args.extend(extra);
        let (o, _) = both_status(t, &co, &cx, &args);
        assert!(o.status.success(), "{args:?}");
        assert_eq!(repo_state(&co), repo_state(&cx), "{args:?}");
        let rev = if extra == Some("--mirror") {
            "main"
        } else {
            "o:main"
        };
        assert_eq!(
            ox(&["rev-parse", &repo_arg(&cx), rev]).trim(),
            v1,
            "{args:?}"
        );
        if extra.is_none() {
            ox(&["fsck", &repo_arg(&cx)]);
            let (o, _) = both_status(t, &co, &cx, &["pull", "o", "main"]);
            assert!(o.status.success());
            assert_eq!(repo_state(&co), repo_state(&cx));
            assert_eq!(ox(&["rev-parse", &repo_arg(&cx), "o:main"]).trim(), v2);
        }
    }
    let bad_binding = format!("other@{v1}");
    for args in [
        vec!["pull", "o", "main@xyz"],
        vec!["pull", "o", bad_binding.as_str()],
    ] {
        let (co, cx) = clients(t, "bad", &server.url);
        let (o, _) = both_status(t, &co, &cx, &args);
        assert!(!o.status.success(), "{args:?}");
        assert!(object_set(&cx).is_empty(), "{args:?}");
        assert_eq!(all_refs(&cx), all_refs(&co), "{args:?}");
    }
}

/// `pull` options with ostree 2022.7's meaning, over file:// and HTTP (nginx): the same
/// success, error line and repository afterwards; refused input changes nothing.
#[test]
fn pull_options_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, _, v2) = pull_source(t);
    let file_url = format!("file://{}", s(&src));
    let nginx = Nginx::start(&src, &t.join("nginx"));
    // Accepted and honoured without changing the result.
    let plain: Vec<Vec<&str>> = vec![
        vec!["pull", "o", "main", "--disable-fsync"],
        vec!["pull", "o", "main", "--per-object-fsync"],
        vec!["pull", "o", "main", "--untrusted"],
        vec!["pull", "o", "main", "--http-trusted"],
        vec!["pull", "o", "main", "--network-retries=2"],
        vec!["pull", "o", "main", "--update-frequency=100"],
        vec!["pull", "o", "main", "--update-frequency=0"],
        vec!["pull", "o", "main", "--http-header=X-Test=1"],
        vec!["pull", "o", "main", "--depth=1", "--disable-static-deltas"],
    ];
    for url in [&file_url, &nginx.url] {
        for args in &plain {
            let (co, cx) = clients(t, "c", url);
            let (o, _) = both_status(t, &co, &cx, args);
            assert!(o.status.success(), "{url} {args:?}");
            assert_eq!(repo_state(&co), repo_state(&cx), "{url} {args:?}");
            // Every object verified where the options speak of verification.
            if args.iter().any(|a| a.contains("trusted")) {
                assert_repo_clean(&cx);
            }
        }
    }
    // Options newer than ostree 2022.7: oxtree alone, same result as a plain pull.
    for args in [
        vec!["pull", "o", "main", "--disable-retry-on-network-errors"],
        vec!["pull", "o", "main", "--max-outstanding-fetcher-requests=1"],
        vec!["pull", "o", "main", "--append-user-agent=tester/1"],
    ] {
        let (co, cx) = clients(t, "n", &nginx.url);
        ostree(&["pull", &repo_arg(&co), "o", "main"]);
        let x = run_repo(&oxtree_bin(), t, &cx, &args);
        assert!(x.status.success(), "{args:?}: {}", show_output(&x));
        assert_eq!(repo_state(&co), repo_state(&cx), "{args:?}");
    }
    // --append-user-agent reaches the server (nginx logs the User-Agent).
    let log = std::fs::read_to_string(&nginx.access_log).expect("access log");
    assert!(log.contains("tester/1"), "{log}");
    // --url: the remote's configured URL is wrong, --url names the right one.
    let (co, cx) = clients(t, "u", "http://127.0.0.1:9/nothing");
    let url_arg = format!("--url={}", nginx.url);
    let (o, _) = both_status(t, &co, &cx, &["pull", "o", "main", &url_arg]);
    assert!(o.status.success());
    assert_eq!(repo_state(&co), repo_state(&cx));
    // --localcache-repo: objects the cache has are not requested from the server.
    let cache = t.join("cache");
    ostree(&["init", &repo_arg(&cache), "--mode=archive"]);
    ostree(&["pull-local", &repo_arg(&cache), s(&src), "main"]);
    let (co, cx) = clients(t, "l", &nginx.url);
    std::fs::write(&nginx.access_log, b"").expect("truncate log");
    let l_arg = format!("--localcache-repo={}", s(&cache));
    let (o, _) = both_status(t, &co, &cx, &["pull", "o", "main", &l_arg]);
    assert!(o.status.success());
    assert_eq!(repo_state(&co), repo_state(&cx));
    let log = std::fs::read_to_string(&nginx.access_log).expect("access log");
    // (Detached metadata, which the cache does not have, may still be asked for.)
    assert!(
        !log.lines()
            .any(|l| l.contains("/objects/") && !l.contains(".commitmeta ")),
        "objects fetched despite the cache:\n{log}"
    );
    assert_repo_clean(&cx);
    // --require-static-deltas: none on the server → ostree's error, nothing stored; with
    // a delta → used.
    let (co, cx) = clients(t, "d", &file_url);
    for args in [
        vec!["pull", "o", "main", "--require-static-deltas"],
        vec!["pull", "o", &v2, "--require-static-deltas"],
    ] {
        let (o, x) = both_status(t, &co, &cx, &args);
        assert!(!o.status.success());
        assert!(err_line(&x).is_some_and(|l| l.contains("Static deltas required")));
        assert!(object_set(&cx).is_empty());
    }
    // Bad input: the same error line, nothing stored.
    let bad: Vec<Vec<&str>> = vec![
        vec!["pull", "o", "bad", "--bareuseronly-files"],
        vec!["pull", "o", "main", "--http-header=novalue"],
        vec!["pull", "o", "main", "--update-frequency=soon"],
        vec!["pull", "o", "main", "--network-retries=x"],
        vec!["pull", "o", "main", "--cache-dir=/nonexistent-dir"],
        vec!["pull", "o", "main", "--url=file:///nonexistent-dir"],
        vec!["pull", "o", "nosuchref", "--bareuseronly-files"],
        vec!["pull", "o", "main", "-L", "/nonexistent-dir"],
    ];
    for args in &bad {
        let (co, cx) = clients(t, "b", &file_url);
        let (o, _) = both_status(t, &co, &cx, args);
        assert!(!o.status.success(), "{args:?}");
        // No ref moves and no content lands; a refused pull may keep the verified
        // metadata it fetched (the commit marked partial), for the next pull to resume.
        assert_eq!(all_refs(&cx), "", "{args:?}");
        assert!(
            !object_set(&cx).iter().any(|o| o.ends_with(".file")),
            "{args:?}"
        );
        ostree(&["fsck", &repo_arg(&cx)]);
    }
    // --bareuseronly-files holds for an archive repo too (ostree refuses the setuid file).
    let (ao, ax) = (t.join("ba-o"), t.join("ba-x"));
    for r in [&ao, &ax] {
        ostree(&["init", &repo_arg(r), "--mode=archive"]);
        ostree(&[
            "remote",
            "add",
            &repo_arg(r),
            "--no-gpg-verify",
            "o",
            &file_url,
        ]);
    }
    let (o, _) = both_status(t, &ao, &ax, &["pull", "o", "bad", "--bareuseronly-files"]);
    assert!(!o.status.success());
    assert_eq!(all_refs(&ax), "");
    assert!(!object_set(&ax).iter().any(|o| o.ends_with(".filez")));
    // Without the option the same commit is accepted by both (bare-user stores it).
    let (co, cx) = clients(t, "b", &file_url);
    let (o, _) = both_status(t, &co, &cx, &["pull", "o", "bad"]);
    assert!(o.status.success());
    // With a delta on the server, --require-static-deltas pulls it (ostree's scratch delta,
    // its part inlined and its sizes big-endian).
    ostree(&["static-delta", "generate", &repo_arg(&src), "main"]);
    ostree(&[
        "static-delta",
        "generate",
        &repo_arg(&src),
        "--empty",
        "main",
        "--inline",
        "--set-endianness=B",
    ]);
    ostree(&["summary", "-u", &repo_arg(&src)]);
    let (co, cx) = clients(t, "dd", &file_url);
    let (o, x) = both_status(
        t,
        &co,
        &cx,
        &["pull", "o", "main", "--require-static-deltas"],
    );
    assert!(o.status.success());
    assert!(x.status.success(), "{}", show_output(&x));
    let (_, cj) = clients(t, "dj", &file_url);
    let json = ox(&[
        "pull",
        &repo_arg(&cj),
        "--json",
        "o",
        "main",
        "--require-static-deltas",
    ]);
    assert!(
        json.contains("\"deltas\":[\""),
        "the delta was used: {json}"
    );
    assert_eq!(repo_state(&co), repo_state(&cx));
    // --cache-dir: a signed summary is cached as DIR/summaries/REMOTE (+ .sig) by both
    // tools, and a second pull with an unchanged signature does not download it again.
    let (_, _, secret, _) = openssl_key(t, "summary");
    ox(&[
        "summary",
        "-u",
        &repo_arg(&src),
        &format!("--sign={secret}"),
    ]);
    for prog in [PathBuf::from("ostree"), oxtree_bin()] {
        let (c, _) = clients(t, "cache", &nginx.url);
        let dir = t.join("cache-dir");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let arg = format!("--cache-dir={}", s(&dir));
        let pull = |c: &Path| {
            let o = run_repo(&prog, t, c, &["pull", "o", "main", &arg]);
            assert!(o.status.success(), "{prog:?}: {}", show_output(&o));
        };
        pull(&c);
        assert_eq!(
            std::fs::read(dir.join("summaries/o")).expect("cached summary"),
            std::fs::read(src.join("summary")).expect("summary"),
            "{prog:?}"
        );
        assert_eq!(
            std::fs::read(dir.join("summaries/o.sig")).expect("cached signature"),
            std::fs::read(src.join("summary.sig")).expect("summary.sig"),
            "{prog:?}"
        );
        std::fs::write(&nginx.access_log, b"").expect("truncate log");
        pull(&c);
        let log = std::fs::read_to_string(&nginx.access_log).expect("access log");
        assert!(log.contains("GET /summary.sig "), "{prog:?}: {log}");
        assert!(!log.contains("GET /summary "), "{prog:?}: {log}");
    }
}

/// `pull-local` options with ostree 2022.7's meaning: the same success, error line and
/// repository afterwards (objects, refs, partial markers).
#[test]
fn pull_local_options_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, v1, _) = pull_source(t);
    let fresh = |name: &str, mode: &str| -> (PathBuf, PathBuf) {
        let (co, cx) = (t.join(format!("{name}-o")), t.join(format!("{name}-x")));
        for c in [&co, &cx] {
            let _ = std::fs::remove_dir_all(c);
            ostree(&["init", &repo_arg(c), &format!("--mode={mode}")]);
        }
        (co, cx)
    };
    let ok: Vec<Vec<&str>> = vec![
        vec!["pull-local", s(&src), "main", "--disable-fsync"],
        vec!["pull-local", s(&src), "main", "--per-object-fsync"],
        vec!["pull-local", s(&src), "main", "--untrusted"],
        vec!["pull-local", s(&src), "main", "--commit-metadata-only"],
        vec![
            "pull-local",
            s(&src),
            "main",
            "--commit-metadata-only",
            "--depth=1",
        ],
        vec!["pull-local", s(&src), "main", "--bareuseronly-files"],
        vec![
            "pull-local",
            s(&src),
            "main",
            "--require-static-deltas",
            "--commit-metadata-only",
        ],
    ];
    for args in &ok {
        let (co, cx) = fresh("ok", "bare-user");
        let (o, _) = both_status(t, &co, &cx, args);
        assert!(o.status.success(), "{args:?}");
        assert_eq!(repo_state(&co), repo_state(&cx), "{args:?}");
        ostree(&["fsck", &repo_arg(&cx)]);
    }
    // After a metadata-only pull, a full one completes the commit (its marker goes).
    let (co, cx) = fresh("meta", "bare-user");
    for args in [
        vec![
            "pull-local",
            s(&src),
            "main",
            "--commit-metadata-only",
            "--depth=1",
        ],
        vec!["pull-local", s(&src), "main"],
    ] {
        both_status(t, &co, &cx, &args);
        assert_eq!(repo_state(&co), repo_state(&cx), "{args:?}");
    }
    ostree(&["fsck", &repo_arg(&cx)]);
    // Refused: the same error line, nothing copied.
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["pull-local", s(&src), "bad", "--bareuseronly-files"],
            "bare-user",
        ),
        (
            vec!["pull-local", s(&src), "main", "--require-static-deltas"],
            "bare-user",
        ),
        (
            vec!["pull-local", s(&src), "main", "--require-static-deltas"],
            "archive",
        ),
        (
            vec!["pull-local", "/nonexistent-dir", "main", "--untrusted"],
            "bare-user",
        ),
    ];
    for (args, mode) in &bad {
        let (co, cx) = fresh("bad", mode);
        let (o, _) = both_status(t, &co, &cx, args);
        assert!(!o.status.success(), "{args:?}");
        // ostree may leave a commitpartial marker behind (--bareuseronly-files); oxtree
        // leaves nothing.
        assert!(object_set(&co).is_empty(), "{args:?}");
        assert_eq!(repo_state(&cx), "objects:\n\nrefs:\n\nstate:\n", "{args:?}");
    }
    // With the source's deltas: a scratch delta, then FROM-TO from the ref's commit.
    let sa = repo_arg(&src);
    ostree(&["static-delta", "generate", &sa, "--empty", &v1]);
    ostree(&["static-delta", "generate", &sa, "main"]);
    // ostree finds a source's deltas through its summary.
    ostree(&["summary", "-u", &sa]);
    let (co, cx) = fresh("delta", "bare-user");
    // v1 by its scratch delta (a checksum: no ref moves), then main from the ref's v1.
    ostree(&["refs", &repo_arg(&co), "--create=main", &v1]);
    let (o, _) = both_status(
        t,
        &co,
        &cx,
        &["pull-local", s(&src), &v1, "--require-static-deltas"],
    );
    assert!(o.status.success());
    ox(&["refs", &repo_arg(&cx), "--create=main", &v1]);
    let (o, _) = both_status(
        t,
        &co,
        &cx,
        &["pull-local", s(&src), "main", "--require-static-deltas"],
    );
    assert!(o.status.success());
    assert_eq!(repo_state(&co), repo_state(&cx));
    ostree(&["fsck", &repo_arg(&cx)]);
    // --disable-static-deltas is newer than ostree 2022.7: oxtree alone.
    let (_, cx) = fresh("nd", "bare-user");
    let x = run_repo(
        &oxtree_bin(),
        t,
        &cx,
        &["pull-local", s(&src), "main", "--disable-static-deltas"],
    );
    assert!(x.status.success(), "{}", show_output(&x));
}

/// `--disable-fsync` and `--per-object-fsync` of pull and pull-local, seen in the system
/// calls oxtree makes (strace): by default one `syncfs` per transaction step and no
/// per-object flush; `--per-object-fsync` flushes each object as it is written;
/// `--disable-fsync` flushes nothing. The result is the same repository each time.
#[test]
fn fsync_options_change_the_flushes() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, _, _) = pull_source(t);
    let file_url = format!("file://{}", s(&src));
    let mut states = Vec::new();
    for cmd in ["pull-local", "pull"] {
        for opt in ["", "--per-object-fsync", "--disable-fsync"] {
            let (_, c) = clients(t, "fs", &file_url);
            let trace = t.join("strace.txt");
            let ra = repo_arg(&c);
            let mut args = vec![
                "-f",
                "-qq",
                "-e",
                "trace=fsync,fdatasync,syncfs",
                "-o",
                s(&trace),
            ];
            let bin = oxtree_bin();
            args.push(s(&bin));
            if cmd == "pull-local" {
                args.extend(["pull-local", &ra, s(&src), "main"]);
            } else {
                args.extend(["pull", &ra, "o", "main"]);
            }
            if !opt.is_empty() {
                args.push(opt);
            }
            run_ok(Path::new("strace"), &args);
            let log = std::fs::read_to_string(&trace).expect("strace output");
            let count = |call: &str| log.lines().filter(|l| l.contains(call)).count();
            let objects = object_set(&c).len();
            match opt {
                "" => {
                    assert!(count("syncfs(") > 0, "{cmd}: {log}");
                    assert_eq!(count("fdatasync("), 0, "{cmd}: {log}");
                }
                "--per-object-fsync" => {
                    assert!(count("fdatasync(") >= objects, "{cmd} {objects}: {log}");
                }
                _ => assert_eq!(
                    count("fsync(") + count("fdatasync(") + count("syncfs("),
                    0,
                    "{cmd}: {log}"
                ),
            }
            states.push(object_set(&c));
        }
    }
    assert!(states.windows(2).all(|w| w[0] == w[1]));
}

/// Two fresh repositories of `mode` (`ro` for ostree, `rx` for oxtree, below `t`), each with
/// the remote `name` at `url` (no OpenPGP verification), made by ostree.
fn twin_clients(t: &Path, mode: &str, name: &str, url: &str) -> (PathBuf, PathBuf) {
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    for r in [&ro, &rx] {
        let _ = std::fs::remove_dir_all(r);
        ostree(&["init", &repo_arg(r), &format!("--mode={mode}")]);
        ostree(&["remote", "add", &repo_arg(r), "--no-gpg-verify", name, url]);
    }
    (ro, rx)
}

/// A `file://` remote that is a bare or bare-user repository: ostree opens it as a
/// repository and imports its objects (oxtree refused: "can't pull from a repository of
/// mode bare"). Into every mode: the same summary line (the content written is 0 where
/// ostree copies objects as they are), the same refs, and `ostree fsck` clean; pull-local
/// prints the same line.
#[test]
fn pull_from_a_local_bare_repository_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, [_, v2, _]) = fixture(t);
    let mut sources = Vec::new();
    for mode in ["bare", "bare-user"] {
        let src = t.join(format!("src-{mode}"));
        let sa = repo_arg(&src);
        ostree(&["init", &sa, &format!("--mode={mode}")]);
        ostree(&["pull-local", &sa, s(&fx), "main", "other", "--depth=-1"]);
        sources.push(src);
    }
    for src in &sources {
        for mode in ["archive", "bare", "bare-user", "bare-user-only"] {
            let (ro, rx) = twin_clients(t, mode, "loc", &format!("file://{}", s(src)));
            // (First: ostree 2022.7's pull-local moves no ref when it has nothing to copy.)
            both(t, &ro, &rx, &["pull-local", s(src), "other"]);
            both(t, &ro, &rx, &["pull", "loc", "main"]);
            both(t, &ro, &rx, &["pull", "--depth=1", "loc", "main", "other"]);
            assert_eq!(all_refs(&ro), all_refs(&rx), "{src:?} into {mode}");
            assert_eq!(
                ostree(&["rev-parse", &repo_arg(&rx), "loc:main"]),
                v2,
                "{src:?} into {mode}"
            );
            if mode != "bare-user-only" {
                ostree(&["fsck", &repo_arg(&rx)]);
            }
        }
    }
}

/// `file:` URLs in every form GIO takes (`file:/PATH`, `file://localhost/PATH`), and how a
/// local remote uses static deltas: ostree imports objects one by one unless
/// --require-static-deltas, which an archive repository refuses. The same output, refs and
/// exit codes as ostree.
#[test]
fn file_urls_and_local_deltas_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    ostree(&["static-delta", "generate", &repo_arg(&fx), "--to=main"]);
    ostree(&["summary", "-u", &repo_arg(&fx)]);
    let path = s(&fx).to_string();
    for url in [
        format!("file:{path}"),
        format!("file://localhost{path}"),
        format!("file://{path}"),
    ] {
        for (mode, args) in [
            ("bare-user", vec!["pull", "loc", "main"]),
            (
                "bare-user",
                vec!["pull", "--require-static-deltas", "loc", "main"],
            ),
            ("archive", vec!["pull", "loc", "main"]),
            (
                "archive",
                vec!["pull", "--require-static-deltas", "loc", "main"],
            ),
        ] {
            let (ro, rx) = twin_clients(t, mode, "loc", &url);
            both(t, &ro, &rx, &args);
            both(t, &ro, &rx, &["remote", "refs", "loc"]);
            assert_eq!(all_refs(&ro), all_refs(&rx), "{url} {mode} {args:?}");
        }
    }
}

/// `remote refs` and `remote summary` of a repository without a summary: ostree's two
/// error lines (oxtree's explanation follows as a hint).
#[test]
fn remote_without_a_summary_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let (ro, rx) = twin_clients(t, "archive", "o", &format!("file://{}", s(&fx)));
    both_status(t, &ro, &rx, &["remote", "refs", "o"]);
    both_status(t, &ro, &rx, &["remote", "summary", "o"]);
}

/// `pull --mirror REMOTE` without refs mirrors every ref of the summary (and keeps the
/// summary), and `pull REMOTE` without refs or branches= fails: as ostree, over file://
/// and HTTP.
#[test]
fn mirror_everything_and_refusals_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let srv = Server::start(&fx);
    for url in [format!("file://{}", s(&fx)), srv.url.clone()] {
        // Without a summary first, then with one.
        for summary in [false, true] {
            if summary {
                ostree(&["summary", "-u", &repo_arg(&fx)]);
            }
            let (ro, rx) = twin_clients(t, "archive", "o", &url);
            both_status(t, &ro, &rx, &["pull", "--mirror", "o"]);
            assert_eq!(all_refs(&ro), all_refs(&rx), "{url} summary={summary}");
            assert_eq!(
                std::fs::read(ro.join("summary")).ok(),
                std::fs::read(rx.join("summary")).ok(),
                "{url} summary={summary}: the mirrored summary"
            );
            both_status(t, &ro, &rx, &["pull", "o"]);
            // A ref the server does not have (with and without a summary).
            both_status(t, &ro, &rx, &["pull", "o", "nosuch"]);
        }
        let _ = std::fs::remove_file(fx.join("summary"));
    }
}

/// `pull --mirror` from a remote with a collection ID keeps the refs as collection refs
/// (`refs/mirrors/COLLECTION-ID/REF`), one ref or all of them, as ostree does.
#[test]
fn mirror_of_a_collection_remote_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let src = t.join("csrc");
    let sa = repo_arg(&src);
    ostree(&[
        "init",
        &sa,
        "--mode=archive",
        "--collection-id=org.example.Os",
    ]);
    let tree = t.join("ctree");
    write(&tree.join("a"), b"a\n", 0o644);
    ostree(&["commit", &sa, "-b", "main", TS, s(&tree)]);
    ostree(&["commit", &sa, "-b", "other", TS, s(&tree)]);
    ostree(&["summary", "-u", &sa]);
    let server = Server::start(&src);
    let files = |r: &Path| {
        let mut v: Vec<String> = walk_files(&r.join("refs"))
            .into_iter()
            .map(|p| p.strip_prefix(r).expect("prefix").display().to_string())
            .collect();
        v.sort();
        v
    };
    // (Without the remote's collection-id too: the summary's collection ID is used.)
    for (url, configured) in [
        (format!("file://{}", s(&src)), true),
        (server.url.clone(), true),
        (format!("file://{}", s(&src)), false),
        (server.url.clone(), false),
    ] {
        for refs in [&["main"][..], &[][..]] {
            let (ro, rx) = twin_clients(t, "archive", "oc", &url);
            for r in [&ro, &rx].into_iter().filter(|_| configured) {
                let ra = repo_arg(r);
                ostree(&[
                    "config",
                    &ra,
                    "set",
                    "remote \"oc\".collection-id",
                    "org.example.Os",
                ]);
            }
            let mut args = vec!["pull", "--mirror", "oc"];
            args.extend_from_slice(refs);
            both_status(t, &ro, &rx, &args);
            assert_eq!(files(&ro), files(&rx), "{url} {refs:?} {configured}");
            // (ostree lists them in hash-table order.)
            both_norm(t, &ro, &rx, &["refs", "--collections"], &sorted_lines);
        }
    }
}

/// Every file below `dir`.
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

/// The requests nginx logged since `log` was last truncated: (path, status) each. Truncates
/// it again.
fn take_requests(log: &Path) -> Vec<(String, u16)> {
    let text = std::fs::read_to_string(log).expect("access log");
    std::fs::write(log, b"").expect("truncate log");
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('"').nth(1)?.split(' ');
            let path = f.nth(1)?.to_string();
            let status = l
                .split('"')
                .nth(2)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((path, status))
        })
        .collect()
}

/// `contenturl`: ostree fetches the summary, its signature, the config (and refs and
/// detached metadata) from `url`, and objects, delta indexes, superblocks and parts from
/// `contenturl`. With `url` a directory holding only the config and summary and
/// `contenturl` the repository, both tools pull (objects into an archive repository, a
/// static delta into a bare-user one), take every object and delta from `contenturl`, and
/// end with the same refs; the other way round both fail (oxtree naming the object's URL
/// below `contenturl`). `--url`
/// replaces both URLs, as in ostree.
#[test]
fn contenturl_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (_, v2, _) = fixture_with_delta_and_meta(t);
    let ng = Nginx::start(t, &t.join("nginx"));
    let (srv_url, meta_url) = (format!("{}/fixture", ng.url), format!("{}/meta", ng.url));
    for mode in ["archive", "bare-user"] {
        for (url, content, ok) in [(&meta_url, &srv_url, true), (&srv_url, &meta_url, false)] {
            let (ro, rx) = twin_clients(t, mode, "origin", url);
            for r in [&ro, &rx] {
                ostree(&[
                    "config",
                    &repo_arg(r),
                    "set",
                    "remote \"origin\".contenturl",
                    content,
                ]);
            }
            let _ = take_requests(&ng.access_log);
            let o = run_repo(Path::new("ostree"), t, &ro, &["pull", "origin", "main"]);
            let log_o = take_requests(&ng.access_log);
            let x = run_repo(&oxtree_bin(), t, &rx, &["pull", "origin", "main"]);
            let log_x = take_requests(&ng.access_log);
            let what = format!("{mode} url={url} contenturl={content}");
            outcomes_are(&what, &o, &x, ok);
            if !ok {
                // (ostree's words depend on nginx's 404 page: "Server returned HTTP 404", or
                // "exceeded maximum size of 150 bytes" where it reads the page as the
                // commit.) oxtree says ostree's "Server returned HTTP 404", and names the
                // object's URL below contenturl in its hint.
                let e = err_line(&x).unwrap_or_default();
                assert_eq!(e, "error: Server returned HTTP 404", "{what}");
                assert!(
                    stderr(&x).contains(&format!("{content}/objects/")),
                    "{what}: {}",
                    show_output(&x)
                );
                continue;
            }
            assert_eq!(all_refs(&ro), all_refs(&rx), "{what}");
            assert_eq!(
                ostree(&["rev-parse", &repo_arg(&rx), "origin:main"]),
                v2,
                "{what}"
            );
            for (tool, log) in [("ostree", &log_o), ("oxtree", &log_x)] {
                let served: Vec<&String> = log
                    .iter()
                    .filter(|(_, st)| *st == 200 || *st == 206)
                    .map(|(p, _)| p)
                    .collect();
                for p in &served {
                    let from_meta = p.starts_with("/meta/");
                    let metadata = p.ends_with("/summary") || p.ends_with("/config");
                    assert_eq!(from_meta, metadata, "{what}: {tool} fetched {p}: {log:?}");
                }
                let delta = served.iter().any(|p| p.contains("/deltas/"));
                assert_eq!(delta, mode == "bare-user", "{what}: {tool}: {log:?}");
            }
        }
    }
    // --url replaces both.
    let (ro, rx) = twin_clients(t, "archive", "origin", &meta_url);
    set_remote_option(&[&ro, &rx], "origin", "contenturl", &meta_url);
    let url_arg = format!("--url={srv_url}");
    both_status(t, &ro, &rx, &["pull", &url_arg, "origin", "main"]);
    assert_eq!(all_refs(&ro), all_refs(&rx));
}

/// `url=mirrorlist=LIST` and `contenturl=mirrorlist=LIST`: both tools fetch the list, skip
/// its comments, blank lines, non-HTTP lines and the mirrors before the first one that
/// serves a `config` (a dead one, one without a repository), and pull from the rest, into
/// an archive repository (objects) and a bare-user one (a static delta), with the same
/// refs; `remote refs` goes through the list too. A list that is not there, or holds no
/// usable mirror, fails with ostree's error line. A request a mirror fails (404 here) goes
/// to the next one: oxtree pulls; ostree 2022.7 appends the first mirror's 404 page to the
/// next mirror's answer and fails, so that case checks oxtree alone.
#[test]
fn mirrorlists_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (_, v2, _) = fixture_with_delta_and_meta(t);
    std::fs::create_dir_all(t.join("empty")).expect("mkdir");
    let ng = Nginx::start(t, &t.join("nginx"));
    let h = &ng.url;
    let lists = [
        (
            "mlist",
            format!(
                "# mirrors of the fixture\n\nhttp://127.0.0.1:1/dead\nftp://example.org/x\n{h}/empty\n{h}/fixture/\n"
            ),
        ),
        ("emptylist", "# nothing yet\n\n".to_string()),
        (
            "badlist",
            format!("http://127.0.0.1:1/dead\nftp://example.org/x\n{h}/empty\n"),
        ),
        ("metafirst", format!("{h}/meta\n{h}/fixture\n")),
    ];
    for (name, text) in &lists {
        std::fs::write(t.join(name), text).expect("write list");
    }
    let ml = |name: &str| format!("mirrorlist={h}/{name}");
    for mode in ["archive", "bare-user"] {
        // url a mirror list; then url the metadata only and contenturl a mirror list.
        for (url, content) in [
            (ml("mlist"), None),
            (format!("{h}/meta"), Some(ml("mlist"))),
        ] {
            let (ro, rx) = twin_clients(t, mode, "origin", &url);
            if let Some(c) = &content {
                for r in [&ro, &rx] {
                    let ra = repo_arg(r);
                    ostree(&["config", &ra, "set", "remote \"origin\".contenturl", c]);
                }
            }
            let what = format!("{mode} url={url} contenturl={content:?}");
            let (o, _) = both_status(t, &ro, &rx, &["pull", "origin", "main"]);
            assert!(o.status.success(), "{what}: {}", show_output(&o));
            assert_eq!(all_refs(&ro), all_refs(&rx), "{what}");
            assert_eq!(
                ostree(&["rev-parse", &repo_arg(&rx), "origin:main"]),
                v2,
                "{what}"
            );
            both_norm(t, &ro, &rx, &["remote", "refs", "origin"], &sorted_lines);
        }
    }
    // Lists that are not there or list no usable mirror: ostree's words.
    for name in ["nolist", "emptylist", "badlist"] {
        let (ro, rx) = twin_clients(t, "archive", "origin", &ml(name));
        let (o, _) = both_status(t, &ro, &rx, &["pull", "origin", "main"]);
        assert!(!o.status.success(), "{name}");
        let (ro, rx) = twin_clients(t, "archive", "origin", &format!("{h}/meta"));
        set_remote_option(&[&ro, &rx], "origin", "contenturl", &ml(name));
        both_status(t, &ro, &rx, &["pull", "origin", "main"]);
    }
    // A list on a server that is not there: both fail, oxtree naming the list.
    let dead = "mirrorlist=http://127.0.0.1:1/list";
    let (ro, rx) = twin_clients(t, "archive", "origin", dead);
    let (_, x) = both_status_only(t, &ro, &rx, &["pull", "origin", "main"]);
    let e = err_line(&x).unwrap_or_default();
    assert!(
        e.contains("While fetching mirrorlist 'http://127.0.0.1:1/list'"),
        "{}",
        show_output(&x)
    );
    // The first mirror has only the config and summary: every object request moves on
    // to the second.
    for mode in ["archive", "bare-user"] {
        let (_, rx) = twin_clients(t, mode, "origin", &ml("metafirst"));
        let x = run_repo(&oxtree_bin(), t, &rx, &["pull", "origin", "main"]);
        assert!(x.status.success(), "{mode}: {}", show_output(&x));
        assert_eq!(
            ostree(&["rev-parse", &repo_arg(&rx), "origin:main"]),
            v2,
            "{mode}"
        );
        ostree(&["fsck", &repo_arg(&rx)]);
    }
}

/// Both tools fail or succeed alike (error lines not compared).
fn both_status_only(cwd: &Path, ro: &Path, rx: &Path, args: &[&str]) -> (Output, Output) {
    let o = run_repo(Path::new("ostree"), cwd, ro, args);
    let x = run_repo(&oxtree_bin(), cwd, rx, args);
    same_success(args, &o, &x);
    (o, x)
}

/// Run `openssl ARGS…` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(o.status.success(), "openssl {args:?}: {}", show_output(&o));
}

/// A CA (`ca.pem`), another CA (`other-ca.pem`), a server certificate for 127.0.0.1
/// (`server.pem`, `server.key`) and a client certificate (`client.pem`, `client.key`), both
/// signed by the first CA, in `dir`.
fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, cn) in [("ca", "oxtree test CA"), ("other-ca", "another CA")] {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
                "-days", "2", "-subj", &subj,
            ],
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("write");
    // (client-v1: without extensions openssl makes an X.509 v1 certificate, which rustls
    // does not use.)
    for (name, ext) in [
        ("server", Some("san.ext")),
        ("client", Some("client.ext")),
        ("client-v1", None),
    ] {
        let (key, csr, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                &subj,
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
        ];
        if let Some(e) = ext {
            args.extend(["-extfile", e]);
        }
        openssl(dir, &args);
    }
}

/// The TLS options of a remote, over HTTPS served by nginx with a certificate from a
/// private CA: without options both tools refuse the certificate (oxtree at once, naming
/// the URL, without its retries); `tls-permissive=true` and `tls-ca-path=CA` pull; a
/// `tls-ca-path` of another CA is refused (only that CA is trusted); a server that
/// demands a client certificate refuses a client without one (HTTP 400) and takes
/// `tls-client-cert-path` + `tls-client-key-path`; one of the two alone is ostree's error.
/// The same outcome and refs as ostree each time.
#[test]
fn tls_options_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, [_, v2, _]) = fixture(t);
    ostree(&["summary", "-u", &repo_arg(&fx)]);
    let pki = t.join("pki");
    make_pki(&pki);
    let p = |f: &str| s(&pki.join(f)).to_string();
    let (port, port_client) = (free_port(), free_port());
    let ng = Nginx::start_servers(
        &t.join("nginx"),
        &format!(
            "ssl_certificate {}; ssl_certificate_key {};\n\
             server {{ listen 127.0.0.1:{port} ssl; root {root}; }}\n\
             server {{ listen 127.0.0.1:{port_client} ssl; root {root}; ssl_client_certificate {}; ssl_verify_client on; }}",
            p("server.pem"),
            p("server.key"),
            p("ca.pem"),
            root = s(t),
        ),
        port,
    );
    let _ = &ng;
    let url = format!("https://127.0.0.1:{port}/fixture");
    let url_client = format!("https://127.0.0.1:{port_client}/fixture");
    let ca = format!("tls-ca-path={}", p("ca.pem"));
    let other_ca = format!("tls-ca-path={}", p("other-ca.pem"));
    let cert = format!("tls-client-cert-path={}", p("client.pem"));
    let key = format!("tls-client-key-path={}", p("client.key"));
    let cases: Vec<(&str, Vec<&str>, bool)> = vec![
        (&url, vec![], false),
        (&url, vec!["tls-permissive=true"], true),
        (&url, vec![&ca], true),
        (&url, vec![&other_ca], false),
        (&url_client, vec![&ca], false),
        (&url_client, vec![&ca, &cert, &key], true),
        (&url_client, vec![&ca, &cert], false),
    ];
    let cert_v1 = format!("tls-client-cert-path={}", p("client-v1.pem"));
    let key_v1 = format!("tls-client-key-path={}", p("client-v1.key"));
    for (url, opts, ok) in cases {
        let (ro, rx) = twin_clients(t, "archive", "origin", url);
        for r in [&ro, &rx] {
            for kv in &opts {
                let (k, v) = kv.split_once('=').expect("KEY=VALUE");
                ostree(&[
                    "config",
                    &repo_arg(r),
                    "set",
                    &format!("remote \"origin\".{k}"),
                    v,
                ]);
            }
        }
        let what = format!("{url} {opts:?}");
        let (o, x) = both_status_only(t, &ro, &rx, &["pull", "origin", "main"]);
        assert_eq!(o.status.success(), ok, "{what}: {}", show_output(&o));
        if ok {
            assert_eq!(all_refs(&ro), all_refs(&rx), "{what}");
            assert_eq!(
                ostree(&["rev-parse", &repo_arg(&rx), "origin:main"]),
                v2,
                "{what}"
            );
            continue;
        }
        let e = err_line(&x).unwrap_or_default();
        if opts.len() == 2 {
            assert_eq!(err_line(&o), err_line(&x), "{what}");
        } else if url.contains(&port_client.to_string()) {
            assert!(e.contains("HTTP 400"), "{what}: {}", show_output(&x));
        } else {
            // A certificate error is permanent: no retries.
            assert!(
                e.contains(&format!("{url}/"))
                    && e.contains("certificate")
                    && !e.contains("gave up"),
                "{what}: {}",
                show_output(&x)
            );
        }
    }
    // An X.509 v1 client certificate (ostree's OpenSSL takes it, rustls does not): a
    // clear error naming the file, no panic.
    let (_, rx) = twin_clients(t, "archive", "origin", &url_client);
    for kv in [&ca, &cert_v1, &key_v1] {
        let (k, v) = kv.split_once('=').expect("KEY=VALUE");
        ostree(&[
            "config",
            &repo_arg(&rx),
            "set",
            &format!("remote \"origin\".{k}"),
            v,
        ]);
    }
    let (_, e) = ox_fail(&["pull", &repo_arg(&rx), "origin", "main"]);
    assert!(
        e.contains("client-v1.pem") && e.contains("unusable client certificate"),
        "{e}"
    );
}

/// A forward HTTP proxy on a loopback port, enough for both clients: `CONNECT host:port`
/// tunnels (ureq sends every request so) and absolute-form `GET http://…` requests
/// (libcurl's way for http:// URLs), each forwarded on a new connection. Counts the
/// requests it has taken; runs until the test ends.
struct Proxy {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    fn start() -> Proxy {
        use std::io::{BufRead, BufReader, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = requests.clone();
        let pump = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let end = line == "\r\n" || line == "\n";
                        head.push(line);
                        if end {
                            break;
                        }
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut first = head[0].split_whitespace();
                    let (method, target) = (
                        first.next().unwrap_or_default().to_string(),
                        first.next().unwrap_or_default().to_string(),
                    );
                    let mut client = conn;
                    if method == "CONNECT" {
                        let Ok(upstream) = TcpStream::connect(&target) else {
                            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                            return;
                        };
                        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                        // (Anything the client sent after the head is in the reader's
                        // buffer: a TLS-less tunnel client waits for the 200 first.)
                        pump(
                            upstream.try_clone().expect("clone"),
                            client.try_clone().expect("clone"),
                        );
                        pump(client, upstream).join().ok();
                        return;
                    }
                    let Some(rest) = target.strip_prefix("http://") else {
                        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                        return;
                    };
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let Ok(mut upstream) = TcpStream::connect(authority) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    let mut req = format!(
                        "{method} {} HTTP/1.1\r\n",
                        if path.is_empty() { "/" } else { path }
                    );
                    for h in &head[1..head.len() - 1] {
                        let name = h.split(':').next().unwrap_or_default().to_ascii_lowercase();
                        if name != "connection" && name != "proxy-connection" {
                            req.push_str(h);
                        }
                    }
                    req.push_str("Connection: close\r\n\r\n");
                    if upstream.write_all(req.as_bytes()).is_err() {
                        return;
                    }
                    let _ = std::io::copy(&mut upstream, &mut client);
                });
            }
        });
        Proxy { port, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A remote's `proxy=`: through a proxy that is not there both tools fail (oxtree naming
/// the URL); through a working one both pull the same refs, each having sent its requests
/// through it (the proxy counts them: CONNECT tunnels from oxtree, absolute-form GETs
/// from ostree's libcurl). A SOCKS proxy or a value that is no URL is refused by oxtree
/// with the setting named.
#[test]
fn proxy_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, [_, v2, _]) = fixture(t);
    ostree(&["summary", "-u", &repo_arg(&fx)]);
    let ng = Nginx::start(t, &t.join("nginx"));
    let url = format!("{}/fixture", ng.url);
    let proxy = Proxy::start();
    for (proxy_url, ok) in [
        ("http://127.0.0.1:1".to_string(), false),
        (format!("http://127.0.0.1:{}", proxy.port), true),
    ] {
        for mode in ["archive", "bare-user"] {
            let (ro, rx) = twin_clients(t, mode, "origin", &url);
            for r in [&ro, &rx] {
                ostree(&[
                    "config",
                    &repo_arg(r),
                    "set",
                    "remote \"origin\".proxy",
                    &proxy_url,
                ]);
            }
            let what = format!("{mode} proxy={proxy_url}");
            let before = proxy.requests();
            let o = run_repo(Path::new("ostree"), t, &ro, &["pull", "origin", "main"]);
            let through_o = proxy.requests() - before;
            let x = run_repo(&oxtree_bin(), t, &rx, &["pull", "origin", "main"]);
            let through_x = proxy.requests() - before - through_o;
            outcomes_are(&what, &o, &x, ok);
            if !ok {
                let e = err_line(&x).unwrap_or_default();
                assert!(
                    e.contains(&format!("{url}/")),
                    "{what}: {}",
                    show_output(&x)
                );
                continue;
            }
            assert!(
                through_o > 0 && through_x > 0,
                "{what}: {through_o} {through_x}"
            );
            assert_eq!(all_refs(&ro), all_refs(&rx), "{what}");
            assert_eq!(
                ostree(&["rev-parse", &repo_arg(&rx), "origin:main"]),
                v2,
                "{what}"
            );
        }
    } // What oxtree cannot use is refused with the setting named, no panic: a SOCKS proxy
      // (ostree's libcurl has them) and a value that is no URL.
    for bad in ["socks5://127.0.0.1:1", "not a url"] {
        let (_, rx) = twin_clients(t, "archive", "origin", &url);
        ostree(&[
            "config",
            &repo_arg(&rx),
            "set",
            "remote \"origin\".proxy",
            bad,
        ]);
        let (_, e) = ox_fail(&["pull", &repo_arg(&rx), "origin", "main"]);
        assert!(e.contains(&format!("proxy {bad:?}")), "{bad}: {e}");
    }
}

/// A server with a summary but no `config`: ostree stops at the 404 ("Server returned HTTP
/// 404"; without a summary it pulls); oxtree pulled from it.
#[test]
fn a_server_without_config_is_refused_as_by_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let nocfg = t.join("nocfg");
    copy_tree(&fx, &nocfg);
    let ng = Nginx::start(t, &t.join("nginx"));
    let url = format!("{}/nocfg", ng.url);
    for summary in [false, true] {
        if summary {
            ostree(&["summary", "-u", &repo_arg(&nocfg)]);
        }
        let _ = std::fs::remove_file(nocfg.join("config"));
        for mode in ["archive", "bare-user"] {
            let (ro, rx) = twin_clients(t, mode, "origin", &url);
            let o = run_repo(Path::new("ostree"), t, &ro, &["pull", "origin", "main"]);
            let x = run_repo(&oxtree_bin(), t, &rx, &["pull", "origin", "main"]);
            assert_eq!(o.status.success(), !summary, "{}", show_output(&o));
            assert_eq!(x.status.success(), !summary, "{}", show_output(&x));
            assert_eq!(err_line(&o), err_line(&x));
            if summary {
                assert_eq!(
                    err_line(&x).as_deref(),
                    Some("error: Server returned HTTP 404")
                );
                assert!(ostree(&["refs", &repo_arg(&rx)]).is_empty());
            }
        }
        std::fs::copy(fx.join("config"), nocfg.join("config")).expect("config back");
    }
}

/// The counts a pull ends with, as ostree counts them over HTTP: in a bare-user repository
/// (where static deltas are looked for) its request for a delta index or a scratch
/// superblock counts as a metadata fetch even when the server has none; not in archive mode,
/// nor with --disable-static-deltas. (The bytes transferred are left out: ostree counts the
/// 404 pages it was sent.)
#[test]
fn pull_counts_as_ostree_over_http() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let ng = Nginx::start(t, &t.join("nginx"));
    let url = format!("{}/fixture", ng.url);
    let counts = |o: &Output| -> String {
        let line = stdout(o).lines().last().unwrap_or_default().to_string();
        let parts: Vec<&str> = line.split("; ").collect();
        format!("{} / {}", parts[0], parts.last().unwrap_or(&""))
    };
    for summary in [false, true] {
        if summary {
            ostree(&["summary", "-u", &repo_arg(&fx)]);
        }
        for mode in ["archive", "bare-user"] {
            for args in [
                &["pull", "origin", "main"][..],
                &["pull", "--disable-static-deltas", "origin", "main"],
                &["pull", "--depth=-1", "origin", "main", "other"],
                &["pull", "--commit-metadata-only", "origin", "main"],
            ] {
                let (ro, rx) = twin_clients(t, mode, "origin", &url);
                let o = run_repo(Path::new("ostree"), t, &ro, args);
                let x = run_repo(&oxtree_bin(), t, &rx, args);
                assert!(
                    o.status.success() && x.status.success(),
                    "{}",
                    show_output(&x)
                );
                assert_eq!(
                    counts(&o),
                    counts(&x),
                    "{mode}, summary {summary}, {args:?}"
                );
            }
        }
    }
}

/// Both tools succeeded (or both failed) as `ok` says, and oxtree did not panic.
fn outcomes_are(what: &str, o: &Output, x: &Output, ok: bool) {
    assert_eq!(o.status.success(), ok, "{what}: ostree: {}", show_output(o));
    assert_eq!(x.status.success(), ok, "{what}: oxtree: {}", show_output(x));
    assert!(!stderr(x).contains("panicked"), "{}", show_output(x));
}

/// The fixture with a scratch delta to `main` and a summary, and `meta`: a directory with
/// only its config and summary (a metadata server). Returns (fixture, v2, meta).
fn fixture_with_delta_and_meta(t: &Path) -> (PathBuf, String, PathBuf) {
    let (fx, [_, v2, _]) = fixture(t);
    let fa = repo_arg(&fx);
    ostree(&["static-delta", "generate", &fa, "--empty", "--to=main"]);
    ostree(&["summary", "-u", &fa]);
    let meta = t.join("meta");
    std::fs::create_dir_all(&meta).expect("mkdir");
    for f in ["config", "summary"] {
        std::fs::copy(fx.join(f), meta.join(f)).expect("copy");
    }
    (fx, v2, meta)
}

/// Both tools succeeded, or both failed; oxtree did not panic.
fn same_success(args: &[&str], o: &Output, x: &Output) {
    assert_eq!(
        o.status.success(),
        x.status.success(),
        "{args:?}\nostree: {}\noxtree: {}",
        show_output(o),
        show_output(x)
    );
    assert!(!stderr(x).contains("panicked"), "{}", show_output(x));
}

/// `config set 'remote "REMOTE".KEY' VALUE` in each of `repos`.
fn set_remote_option(repos: &[&Path], remote: &str, key: &str, value: &str) {
    for r in repos {
        ostree(&[
            "config",
            &repo_arg(r),
            "set",
            &format!("remote \"{remote}\".{key}"),
            value,
        ]);
    }
}

/// An object the server lacks: ostree's error line ("Server returned HTTP 404") over HTTP,
/// for content and metadata alike; oxtree names the object and its URL in a hint.
#[test]
fn an_object_missing_on_the_server_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (fx, _) = fixture(t);
    let ng = Nginx::start(t, &t.join("nginx"));
    for ext in ["filez", "dirmeta"] {
        let holed = t.join(format!("holed-{ext}"));
        copy_tree(&fx, &holed);
        let victim = walk_files(&holed.join("objects"))
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .expect("an object");
        std::fs::remove_file(&victim).expect("rm");
        let url = format!("{}/holed-{ext}", ng.url);
        let (ro, rx) = twin_clients(t, "bare-user", "origin", &url);
        let (o, x) = both_status(t, &ro, &rx, &["pull", "origin", "main"]);
        assert!(!o.status.success(), "{ext}");
        assert_eq!(
            err_line(&x).as_deref(),
            Some("error: Server returned HTTP 404")
        );
        let name = victim
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let stem = name.split('.').next().unwrap_or_default().to_string();
        assert!(stderr(&x).contains(&stem), "{}", show_output(&x));
    }
}
