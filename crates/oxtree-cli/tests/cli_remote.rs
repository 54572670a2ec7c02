//! Refs, remotes, collection IDs and offline updates, against real ostree: `refs` (aliases,
//! `--collections`, `--force`), `rev-parse` (partial checksums, `--single`), `remote`
//! (every `add` option, cookies, GPG keys, `refs`/`summary`), the summary's collection map,
//! and `create-usb` / `find-remotes` in both directions.
//!
//! ostree lists refs in GLib hash-table order; those listings are compared sorted.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

fn oxtree_out(dir: &Path, args: &[&str]) -> Output {
    run_in(dir, &oxtree_bin(), args)
}

fn ostree_out(dir: &Path, args: &[&str]) -> Output {
    run_in(dir, Path::new("ostree"), args)
}

fn first_error(o: &Output) -> Option<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find(|l| l.starts_with("error:"))
        .map(str::to_string)
}

fn sorted_lines(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(b)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Compare two runs: success, stdout (as sorted lines: ostree's hash-table order), and the
/// first `error:` line of a failure.
fn assert_same_outputs(what: &str, o: &Output, x: &Output) {
    assert_eq!(
        o.status.success(),
        x.status.success(),
        "{what}: ostree {:?} vs oxtree {:?}\nostree stderr: {}\noxtree stderr: {}",
        o.status,
        x.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&x.stderr)
    );
    assert_eq!(
        sorted_lines(&o.stdout),
        sorted_lines(&x.stdout),
        "{what}: stdout differs"
    );
    assert!(
        !String::from_utf8_lossy(&x.stderr).contains("panicked"),
        "{what}: oxtree panicked"
    );
    if !o.status.success() {
        assert_eq!(first_error(o), first_error(x), "{what}: error line differs");
    }
}

/// `same`, with stdout compared as sorted lines.
fn same_sorted(dir: &Path, args: &[&str]) -> String {
    let o = ostree_out(dir, args);
    let x = oxtree_out(dir, args);
    assert_same_outputs(&format!("{args:?}"), &o, &x);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Everything under `dir` (relative path, kind, symlink target or file content), sorted.
fn tree_state(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(base)
                .expect("prefix")
                .display()
                .to_string();
            let ft = e.file_type().expect("file type");
            if ft.is_symlink() {
                let t = std::fs::read_link(&path).expect("readlink");
                out.push(format!("{rel} -> {}", t.display()));
            } else if ft.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                let c = std::fs::read(&path).expect("read");
                out.push(format!("{rel} = {}", String::from_utf8_lossy(&c).trim()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Two copies of a repository: every step runs ostree on one and oxtree on the other, and
/// compares their outputs and the state of the named parts of each repository afterwards.
struct Twins {
    a: PathBuf,
    b: PathBuf,
    /// Paths inside each repository whose state must stay the same (`refs`, `config`…).
    watch: Vec<&'static str>,
}

impl Twins {
    fn new(t: &Path, repo: &Path, watch: &[&'static str]) -> Twins {
        let (a, b) = (t.join("twin-a"), t.join("twin-b"));
        for d in [&a, &b] {
            let st = std::process::Command::new("cp")
                .args(["-a", s(repo), s(d)])
                .status()
                .expect("cp");
            assert!(st.success());
        }
        Twins {
            a,
            b,
            watch: watch.to_vec(),
        }
    }

    fn state(&self, repo: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for w in &self.watch {
            let p = repo.join(w);
            if p.is_dir() {
                out.extend(tree_state(&p).into_iter().map(|l| format!("{w}/{l}")));
            } else if let Ok(c) = std::fs::read(&p) {
                out.push(format!("{w}: {}", String::from_utf8_lossy(&c)));
            }
        }
        out
    }

    /// Run `args` (then `--repo=` of each twin) with both tools; returns ostree's stdout.
    fn run(&self, args: &[&str]) -> String {
        let ra = format!("--repo={}", s(&self.a));
        let rb = format!("--repo={}", s(&self.b));
        let mut aa = args.to_vec();
        aa.push(&ra);
        let mut ab = args.to_vec();
        ab.push(&rb);
        let o = ostree_out(self.a.parent().expect("parent"), &aa);
        let x = oxtree_out(self.b.parent().expect("parent"), &ab);
        assert_same_outputs(&format!("{args:?}"), &o, &x);
        assert_eq!(
            self.state(&self.a),
            self.state(&self.b),
            "{args:?}: the repositories differ afterwards"
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// A tree to commit.
fn small_tree(t: &Path) -> PathBuf {
    let tree = t.join("tree");
    write(&tree.join("a/f"), b"hello\n", 0o644);
    write(&tree.join("b"), b"more\n", 0o755);
    tree
}

/// A repository with commits on `main` (two), `other/x` and twelve on `many` (so that short
/// checksum prefixes are shared by several commits).
fn refs_fixture(t: &Path) -> PathBuf {
    let r = t.join("repo");
    let repo = format!("--repo={}", s(&r));
    ostree(&["init", &repo, "--mode=archive"]);
    let tree = small_tree(t);
    ostree(&["commit", &repo, "-b", "main", "-s", "one", s(&tree)]);
    ostree(&["commit", &repo, "-b", "main", "-s", "two", s(&tree)]);
    ostree(&["commit", &repo, "-b", "other/x", "-s", "x", s(&tree)]);
    for i in 0..12 {
        ostree(&[
            "commit",
            &repo,
            "-b",
            "many",
            "-s",
            &format!("c{i}"),
            s(&tree),
        ]);
    }
    r
}

/// The shortest prefix of `c` no other commit in `all` shares, and a prefix that several
/// commits share (if any do).
fn prefixes(all: &[String], c: &str) -> (String, Option<String>) {
    let unique = (1..=64)
        .map(|n| &c[..n])
        .find(|p| all.iter().filter(|o| o.starts_with(p)).count() == 1)
        .expect("a unique prefix")
        .to_string();
    let shared = (b'0'..=b'f')
        .filter(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        .map(|b| (b as char).to_string())
        .find(|p| all.iter().filter(|o| o.starts_with(p.as_str())).count() > 1);
    (unique, shared)
}

fn commits_in(repo: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .flatten()
    {
        for f in std::fs::read_dir(d.path()).expect("dir").flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            if let Some(rest) = n.strip_suffix(".commit") {
                v.push(format!("{}{rest}", d.file_name().to_string_lossy()));
            }
        }
    }
    v
}

#[test]
fn rev_parse_partial_checksums_single_and_errors_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = refs_fixture(t);
    let repo = format!("--repo={}", s(&r));
    let all = commits_in(&r);
    let main = ostree(&["rev-parse", &repo, "main"]);
    let (unique, shared) = prefixes(&all, &main);
    let shared = shared.expect("13+ commits share a first hex digit");
    for args in [
        vec![repo.as_str(), "rev-parse", "main"],
        vec![&repo, "rev-parse", "main^"],
        vec![&repo, "rev-parse", "main^^"],
        vec![&repo, "rev-parse", "main", "other/x"],
        vec![&repo, "rev-parse", "main", "nosuch", "other/x"],
        vec![&repo, "rev-parse", &unique],
        vec![&repo, "rev-parse", &format!("{unique}^")],
        vec![&repo, "rev-parse", &main[..40]],
        vec![&repo, "rev-parse", &shared],
        vec![&repo, "rev-parse", ""],
        vec![&repo, "rev-parse", &main.to_uppercase()[..8]],
        vec![&repo, "rev-parse", &format!("{main}0")],
        vec![&repo, "rev-parse", "nosuch"],
        vec![&repo, "rev-parse", "../x"],
        vec![&repo, "rev-parse", "a:b:c"],
        vec![&repo, "rev-parse", "x/"],
        vec![&repo, "rev-parse", "--single"],
        vec![&repo, "rev-parse", "--single", "main"],
        vec![&repo, "rev-parse"],
    ] {
        same(t, &args);
    }
    // A hex prefix that names a commit wins over a ref of the same name, as in ostree.
    let x = ostree(&["rev-parse", &repo, "other/x"]);
    // (Neither tool creates such a ref: `--create` finds the commit already there.)
    same(t, &[&repo, "refs", "--create", &unique, "other/x"]);
    std::fs::write(r.join("refs/heads").join(&unique), format!("{x}\n")).expect("write ref");
    assert_eq!(same(t, &[&repo, "rev-parse", &unique]).trim(), main);
    assert_ne!(x, main);
    // --single: one commit, or none.
    let one = t.join("one");
    let one_repo = format!("--repo={}", s(&one));
    ostree(&["init", &one_repo]);
    same(t, &[&one_repo, "rev-parse", "--single"]);
    ostree(&["commit", &one_repo, "-b", "b", s(&small_tree(t))]);
    let single = same(t, &[&one_repo, "rev-parse", "--single"]);
    assert_eq!(single.len(), 65);
    // Other commands resolve partial checksums too.
    same(t, &[&repo, "log", &unique]);
}

#[test]
fn refs_listing_prefixes_and_errors_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = refs_fixture(t);
    let repo = format!("--repo={}", s(&r));
    // Remote refs, from a pull.
    let c = t.join("clone");
    let crepo = format!("--repo={}", s(&c));
    ostree(&["init", &crepo, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &crepo,
        "--no-gpg-verify",
        "origin",
        &format!("file://{}", s(&r)),
    ]);
    ostree(&["pull", &crepo, "origin", "main", "other/x"]);
    ostree(&["refs", &crepo, "--create=loc", "origin:main"]);
    for args in [
        vec![repo.as_str(), "refs"],
        vec![&repo, "refs", "--list"],
        vec![&repo, "refs", "other"],
        vec![&repo, "refs", "--list", "other"],
        vec![&repo, "refs", "main"],
        vec![&repo, "refs", "--list", "main"],
        vec![&repo, "refs", "ma"],
        vec![&repo, "refs", "nosuch"],
        vec![&repo, "refs", "main", "other"],
        vec![&repo, "refs", "other/"],
        vec![&repo, "refs", "--delete"],
        vec![&repo, "refs", "--create=z"],
        vec![&repo, "refs", "--create=z", "a", "b"],
        vec![&repo, "refs", "--create=z", "nosuch"],
        vec![&repo, "refs", "--create=../z", "main"],
        vec![&repo, "refs", "--create=main", "other/x"],
        vec![&crepo, "refs"],
        vec![&crepo, "refs", "origin:"],
        vec![&crepo, "refs", "origin:main"],
        vec![&crepo, "refs", "--list", "origin:main"],
        vec![&crepo, "refs", "origin:other"],
        vec![&crepo, "refs", "--list", "origin:other"],
        vec![&crepo, "refs", "nosuch:"],
        vec![&crepo, "refs", "--alias"],
    ] {
        same_sorted(t, &args);
    }
    // --revision (newer than ostree 2022.7): each ref and its commit, tab-separated.
    let main = ostree(&["rev-parse", &repo, "main"]);
    let listed = ox(&[&repo, "refs", "--revision"]);
    assert!(
        listed.lines().any(|l| l == format!("main\t{main}")),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 3, "{listed}");
}

#[test]
fn refs_create_delete_alias_force_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = refs_fixture(t);
    let tw = Twins::new(t, &r, &["refs"]);
    let ok = |args: &[&str]| tw.run(args);
    ok(&["refs", "--create=al", "--alias", "main"]);
    ok(&["refs", "--alias"]);
    ok(&["refs", "--list"]);
    ok(&["rev-parse", "al"]);
    // An alias is replaced without --force; a real ref is not.
    ok(&["refs", "--create=al", "--alias", "other/x"]);
    ok(&["refs", "--create=al", "main"]);
    ok(&["refs", "--create=main", "--alias", "other/x"]);
    ok(&["refs", "--create=many", "--alias", "main", "--force"]);
    ok(&["refs", "--create=x/y", "--alias", "main"]);
    ok(&["refs", "--alias"]);
    ok(&["refs", "--alias", "x"]);
    ok(&["refs", "--alias", "al"]);
    ok(&["refs", "--create=al2", "--alias", "nosuch"]);
    ok(&["refs", "--create=al2", "--alias", "origin:main"]);
    ok(&["refs", "--create=al3", "--alias", "al"]);
    // A ref an alias names cannot be deleted; the alias can.
    ok(&["refs", "--delete", "main"]);
    ok(&["refs", "--delete", "al3"]);
    ok(&["refs", "--delete", "x"]);
    ok(&["refs", "--delete", "nosuch"]);
    ok(&["refs"]);
    // Plain --create and --force.
    ok(&["refs", "--create=new", "al"]);
    ok(&["refs", "--create=new", "main"]);
    ok(&["refs", "--create=new", "main^", "--force"]);
    ok(&["refs", "--create=origin:remote-ref", "main"]);
    // A ref where a directory of refs is: a conflict if the directory has refs, and the
    // empty directory deleted refs leave behind is replaced.
    ok(&["refs", "--create=other", "main"]);
    ok(&["refs", "--create=q/r", "main"]);
    ok(&["refs", "--delete", "q"]);
    ok(&["refs", "--create=q", "main"]);
    ok(&["refs", "--create=main/sub", "main"]);
    ok(&["refs", "--delete", "origin:remote-ref"]);
    ok(&["refs"]);
    // An alias loop is refused by oxtree (ostree writes `al -> al`, and can then no longer
    // list its refs).
    let rb = format!("--repo={}", s(&tw.b));
    let (_, err) = ox_fail(&[&rb, "refs", "--create=al", "--alias", "al"]);
    assert!(err.contains("loop"), "{err}");
    assert!(ox(&[&rb, "refs", "--alias"]).contains("al -> other/x"));
}

#[test]
fn collection_refs_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = refs_fixture(t);
    let tw = Twins::new(t, &r, &["refs", "config"]);
    let ok = |args: &[&str]| tw.run(args);
    ok(&["refs", "-c"]);
    ok(&["refs", "-c", "--create=org.a.B:x", "main"]);
    ok(&[
        "refs",
        "-c",
        "--create=org.a.B:deep/y",
        "--alias",
        "other/x",
    ]);
    ok(&["refs", "-c", "--create=org.a.B:x", "other/x"]);
    ok(&["refs", "-c", "--create=foo", "main"]);
    ok(&["refs", "-c", "--create=org.a.B:", "main"]);
    ok(&["refs", "-c", "--create=org.a.B:../x", "main"]);
    ok(&["refs", "-c", "--create=org.a.B:z", "nosuch"]);
    ok(&["refs", "-c"]);
    ok(&["refs", "--collections", "--list", "org.a.B"]);
    ok(&["refs", "-c", "os"]);
    ok(&["refs"]);
    // The repository's own collection: its local refs are collection refs, and a collection
    // ref of it is a local ref.
    ok(&["config", "set", "core.collection-id", "org.own.C"]);
    ok(&["refs", "-c"]);
    ok(&["refs", "-c", "--create=org.own.C:viaown", "main"]);
    ok(&["refs"]);
    ok(&["refs", "-c", "org.own.C"]);
    ok(&["refs", "-c", "--delete", "org.a.B"]);
    ok(&["refs", "-c"]);
    // --revision (newer than ostree 2022.7).
    let rb = format!("--repo={}", s(&tw.b));
    let main = ox(&[&rb, "rev-parse", "main"]);
    let listed = ox(&[&rb, "refs", "-c", "--revision", "org.own.C"]);
    assert!(
        listed
            .lines()
            .any(|l| l == format!("(org.own.C, main)\t{main}")),
        "{listed}"
    );
}
