//! The repository commands as ostree has them (issue 10): `init`, `commit`, `checkout`,
//! `fsck`, `prune`, `sign`/`gpg-sign`. Each test runs real `ostree` and oxtree on the same
//! input (each on its own copy of a repository where the command changes it) and compares
//! what scripts see: stdout, success, the `error:` line and the resulting repository.

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

/// Run `args` with ostree against `ro` and oxtree against `rx` (`--repo=` is appended), both
/// in `cwd` with the same environment; assert the same success, stdout (after `norm`) and
/// error line. Returns both outputs.
fn both_norm(
    cwd: &Path,
    ro: &Path,
    rx: &Path,
    args: &[&str],
    norm: &dyn Fn(&str) -> String,
) -> (Output, Output) {
    let run = |prog: &Path, repo: &Path| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.push(format!("--repo={}", s(repo)));
        std::process::Command::new(prog)
            .args(&a)
            .current_dir(cwd)
            .env("LC_ALL", "C.UTF-8")
            .env("OSTREE_DUMMY_SIGN_ENABLED", "1")
            .output()
            .expect("run")
    };
    let o = run(Path::new("ostree"), ro);
    let x = run(&oxtree_bin(), rx);
    let show = |o: &Output| {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            stdout(o),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(
        o.status.success(),
        x.status.success(),
        "{args:?}\nostree: {}\noxtree: {}",
        show(&o),
        show(&x)
    );
    assert!(
        !String::from_utf8_lossy(&x.stderr).contains("panicked"),
        "{}",
        show(&x)
    );
    assert_eq!(
        norm(&stdout(&o)),
        norm(&stdout(&x)),
        "{args:?}: stdout differs\nostree: {}\noxtree: {}",
        show(&o),
        show(&x)
    );
    if !o.status.success() {
        assert_eq!(
            err_line(&o),
            err_line(&x),
            "{args:?}: error line differs\noxtree: {}",
            show(&x)
        );
    }
    (o, x)
}

fn both(cwd: &Path, ro: &Path, rx: &Path, args: &[&str]) -> (Output, Output) {
    both_norm(cwd, ro, rx, args, &|s| s.to_string())
}

/// `ostree-repo` and `oxtree-repo` below `t`, made by each tool with `init_args`.
fn pair(t: &Path, init_args: &[&str]) -> (PathBuf, PathBuf) {
    let (ro, rx) = (t.join("ostree-repo"), t.join("oxtree-repo"));
    let mut a = vec!["init"];
    a.extend_from_slice(init_args);
    both(t, &ro, &rx, &a);
    (ro, rx)
}

/// Refs (name → checksum) of a repository, as ostree lists them.
fn refs_of(repo: &Path) -> String {
    let r = format!("--repo={}", s(repo));
    let mut out = String::new();
    for name in ostree(&["refs", &r]).lines() {
        out.push_str(&format!("{name} {}\n", ostree(&["rev-parse", &r, name])));
    }
    out
}

#[test]
fn init_collection_id_and_refused_input() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (ro, rx) = pair(t, &["--mode=archive", "--collection-id=org.example.Os"]);
    let cfg = |r: &Path| std::fs::read_to_string(r.join("config")).expect("config");
    assert_eq!(cfg(&ro), cfg(&rx));
    assert!(cfg(&rx).contains("collection-id=org.example.Os\n"));
    // An existing repository is left as it is, whatever the new mode or ID.
    both(
        t,
        &ro,
        &rx,
        &["init", "--mode=bare", "--collection-id=org.other.Id"],
    );
    assert_eq!(cfg(&ro), cfg(&rx));
    assert!(cfg(&rx).contains("mode=archive-z2\n"));
    // Refused input creates nothing.
    for bad in [
        vec!["init", "--collection-id=org"],
        vec!["init", "--collection-id=org.Ex_1.c-2"],
        vec!["init", "--collection-id=1org.x"],
        vec!["init", "--collection-id="],
        vec!["init", "--mode=foo"],
    ] {
        let (o2, x2) = (t.join("o2"), t.join("x2"));
        let (_, x) = both(t, &o2, &x2, &bad);
        assert!(!x.status.success());
        assert!(!x2.exists(), "{bad:?} created {}", x2.display());
    }
    // Commits in a repository with a collection ID are bound to it (ostree.collection-binding
    // after ostree.ref-binding), and get the same checksum from both tools.
    let tree = t.join("tree");
    write(&tree.join("f"), b"x\n", 0o644);
    let (o, _) = both(
        t,
        &ro,
        &rx,
        &[
            "commit",
            "-b",
            "main",
            TS,
            "--add-metadata-string=c=1",
            s(&tree),
        ],
    );
    let c = stdout(&o).trim().to_string();
    let shown = ostree(&["show", &format!("--repo={}", s(&rx)), "--raw", &c]);
    assert!(
        shown.contains(
            "{'c': <'1'>, 'ostree.ref-binding': <['main']>, 'ostree.collection-binding': <'org.example.Os'>}"
        ),
        "{shown}"
    );
}
