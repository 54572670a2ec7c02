//! Exit codes are ostree's (1 for every failure, usage errors included), so scripts that test
//! `$? -eq 1` behave the same; `OXTREE_DETAILED_EXIT_CODES=1` tells failures apart (2 usage,
//! 3 not found, 4 verification).

mod common;

use common::{oxtree_bin, s, tempdir};
use std::path::Path;
use std::process::Command;

fn code(prog: &Path, dir: &Path, args: &[&str], detailed: bool) -> Option<i32> {
    let mut c = Command::new(prog);
    c.args(args).current_dir(dir).env("LC_ALL", "C.UTF-8");
    if detailed {
        c.env("OXTREE_DETAILED_EXIT_CODES", "1");
    } else {
        c.env_remove("OXTREE_DETAILED_EXIT_CODES");
    }
    c.output().expect("run").status.code()
}

#[test]
fn failures_exit_as_ostree_and_detailed_codes_on_request() {
    let tmp = tempdir();
    let t = tmp.path();
    let repo = t.join("repo");
    let r = format!("--repo={}", s(&repo));
    let ok = Command::new("ostree")
        .args(["init", &r, "--mode=archive"])
        .status()
        .expect("ostree init");
    assert!(ok.success());
    let tree = t.join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("f"), b"x").expect("write");
    let ok = Command::new("ostree")
        .args(["commit", &r, "-b", "main", "-s", "m", s(&tree)])
        .status()
        .expect("ostree commit");
    assert!(ok.success());
    let bad_csum = "0".repeat(64);
    // (args, oxtree's detailed code)
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec![], 2),                                  // no command
        (vec!["no-such-command"], 2),                 // unknown command
        (vec!["refs", &r, "--no-such-option"], 2),    // unknown option
        (vec!["rev-parse", &r], 1),                   // missing argument (ostree's own check)
        (vec!["rev-parse", &r, "nosuchref"], 3),      // unknown ref
        (vec!["show", &r, &bad_csum], 3),             // unknown commit
        (vec!["log", &r, "nosuchref"], 3),            // unknown ref
        (vec!["checkout", &r, "nosuchref", "co"], 3), // unknown ref
        (vec!["fsck", "--repo=/nonexistent"], 1),     // not a repository
    ];
    for (args, detailed) in &cases {
        let o = code(Path::new("ostree"), t, args, false);
        let x = code(&oxtree_bin(), t, args, false);
        assert_eq!(o, Some(1), "ostree {args:?}");
        assert_eq!(x, o, "oxtree {args:?} exits as ostree");
        let d = code(&oxtree_bin(), t, args, true);
        assert_eq!(d, Some(*detailed), "oxtree {args:?} with detailed codes");
    }
    // GLib's words for the usage errors scripts meet most.
    for args in [
        vec!["refs", &r, "--no-such-option"],
        vec!["no-such-command"],
        vec!["commit", &r, "--timestamp"],
        vec!["pull", &r, "--depth=abc", "origin"],
        // No (sub)command, an unknown one: the usage on stderr, ostree's error line.
        vec![],
        vec!["admin"],
        vec!["remote"],
        vec!["static-delta"],
        vec!["admin", "bogus"],
        vec!["remote", "bogus"],
        vec!["static-delta", "bogus"],
        // Missing arguments.
        vec!["log", &r],
        vec!["ls", &r],
        vec!["cat", &r],
        vec!["pull", &r],
        vec!["pull-local", &r],
        vec!["config", &r, "set", "core.x"],
        vec!["config", &r, "set", "--group=core", "x"],
        vec!["config", &r, "get", "--group=core"],
        vec!["checksum"],
        vec!["admin", "kargs"],
        vec!["summary", &r, "-u", "--view"],
        vec!["static-delta", &r, "list", "extra"],
        // Not a repository.
        vec!["refs", "--repo=/nonexistent"],
        vec!["log", &format!("--repo={}", s(t)), "main"],
    ] {
        common::same(t, &args);
    }
    // Help and version succeed for both; --version after any command too (before its
    // arguments are checked), with ostree's first lines.
    for args in [
        vec!["--help"],
        vec!["refs", "--help"],
        vec!["--version"],
        vec!["refs", "--version"],
        vec!["log", "--version"],
        vec!["admin", "status", "--version"],
        vec!["remote", "add", "--version"],
    ] {
        assert_eq!(code(Path::new("ostree"), t, &args, false), Some(0));
        assert_eq!(code(&oxtree_bin(), t, &args, false), Some(0), "{args:?}");
        if args.contains(&"--version") {
            let first = |o: std::process::Output| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(
                first(common::run_raw(Path::new("ostree"), &args)),
                first(common::run_raw(&oxtree_bin(), &args)),
                "{args:?}"
            );
        }
    }
}
