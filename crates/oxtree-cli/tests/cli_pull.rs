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
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.push(format!("--repo={}", s(repo)));
    std::process::Command::new(prog)
        .args(&a)
        .current_dir(cwd)
        .env("LC_ALL", "C.UTF-8")
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
    let o = run_repo(Path::new("ostree"), cwd, ro, args);
    let x = run_repo(&oxtree_bin(), cwd, rx, args);
    assert_eq!(
        o.status.success(),
        x.status.success(),
        "{args:?}\nostree: {}\noxtree: {}",
        show_output(&o),
        show_output(&x)
    );
    assert!(!stderr(&x).contains("panicked"), "{}", show_output(&x));
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
