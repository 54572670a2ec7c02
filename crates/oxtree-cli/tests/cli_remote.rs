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
    // A remote with a collection ID contributes its refs.
    ok(&[
        "remote",
        "add",
        "--no-gpg-verify",
        "--collection-id=org.rem.D",
        "rem",
        "http://127.0.0.1:9/",
    ]);
    ok(&["refs", "--create=rem:fromremote", "main"]);
    ok(&["refs", "-c"]);
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

#[test]
fn remote_add_delete_options_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = t.join("repo");
    ostree(&["init", &format!("--repo={}", s(&r))]);
    let tw = Twins::new(t, &r, &["config"]);
    let ok = |args: &[&str]| tw.run(args);
    ok(&["remote", "add", "a", "http://a"]);
    ok(&["remote", "add", "--no-sign-verify", "b", "http://b"]);
    ok(&[
        "remote",
        "add",
        "--collection-id=org.a.B",
        "--custom-backend=foo",
        "--contenturl=http://y/",
        "--set=a=b",
        "--no-gpg-verify",
        "--sign-verify=dummy=inline:k",
        "--set=c=d",
        "g",
        "http://x/g",
        "m1",
        "m2",
    ]);
    ok(&["remote", "add", "a", "http://a2"]);
    ok(&["remote", "add", "--force", "a", "http://a3", "br"]);
    ok(&["remote", "add", "--if-not-exists", "a", "http://a4"]);
    ok(&[
        "remote",
        "add",
        "--if-not-exists",
        "--force",
        "a",
        "http://a4",
    ]);
    ok(&["remote", "add", "bad name", "http://x"]);
    ok(&["remote", "add", "p4", "metalink=http://x"]);
    ok(&["remote", "add", "p5", "mirrorlist=http://x"]);
    ok(&["remote", "add", "--set=novalue", "p6", "http://x"]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=inline:foo",
        "h",
        "http://x/h",
        "main",
    ]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=file:/tmp/foo",
        "--sign-verify=dummy=inline:bar",
        "i",
        "http://x/i",
    ]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=bogus:foo",
        "j",
        "http://x/j",
    ]);
    ok(&["remote", "add", "--sign-verify=dummy", "j", "http://x/j"]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=nope=inline:x",
        "j",
        "http://x/j",
    ]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=inline:a:b",
        "l",
        "http://x/l",
    ]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=inline:a",
        "--no-sign-verify",
        "m",
        "http://x/m",
    ]);
    ok(&[
        "remote",
        "add",
        "--sign-verify=dummy=inline:a",
        "--set=sign-verify=false",
        "n",
        "http://x/n",
    ]);
    ok(&[
        "remote",
        "add",
        "--set=sign-verify=false",
        "--no-sign-verify",
        "--no-gpg-verify",
        "--set=gpg-verify=true",
        "o",
        "http://x/o",
    ]);
    ok(&["remote", "add", "onlyname"]);
    ok(&["remote", "add"]);
    ok(&["remote", "list"]);
    ok(&["remote", "show-url", "a"]);
    ok(&["remote", "show-url", "nosuch"]);
    ok(&["remote", "show-url", "p4"]);
    ok(&["remote", "show-url"]);
    ok(&["remote", "delete", "nosuch"]);
    ok(&["remote", "delete", "--if-exists", "nosuch"]);
    ok(&["remote", "delete"]);
    ok(&["remote", "delete", "p4"]);
    ok(&["remote", "list", "-u"]);
    // ed25519 is compiled out of Debian's ostree 2022.7; oxtree has it and writes ostree's
    // keys for it.
    let rb = format!("--repo={}", s(&tw.b));
    ox(&[
        "remote",
        "add",
        &rb,
        "--sign-verify=ed25519=inline:KEY",
        "e",
        "http://e",
    ]);
    let cfg = std::fs::read_to_string(tw.b.join("config")).expect("config");
    assert!(
        cfg.contains(
            "[remote \"e\"]\nurl=http://e\nverification-ed25519-key=KEY\nsign-verify=ed25519\n"
        ),
        "{cfg}"
    );

    // --sysroot: the sysroot's repository.
    let (sa, sb) = (t.join("sysroot-a"), t.join("sysroot-b"));
    for sr in [&sa, &sb] {
        std::fs::create_dir_all(sr).expect("mkdir");
        ostree(&["admin", "init-fs", s(sr)]);
        ostree(&["admin", "os-init", &format!("--sysroot={}", s(sr)), "os"]);
    }
    for (tool, sr) in [("ostree", &sa), ("oxtree", &sb)] {
        let bin = if tool == "ostree" {
            PathBuf::from("ostree")
        } else {
            oxtree_bin()
        };
        let sysroot = format!("--sysroot={}", s(sr));
        run_ok(
            &bin,
            &[
                "remote",
                "add",
                &sysroot,
                "--no-gpg-verify",
                "sr",
                "http://sr",
                "os/main",
            ],
        );
        run_ok(&bin, &["remote", "add", &sysroot, "gone", "http://g"]);
        run_ok(&bin, &["remote", "delete", &sysroot, "gone"]);
    }
    assert_eq!(
        std::fs::read_to_string(sa.join("ostree/repo/config")).expect("config"),
        std::fs::read_to_string(sb.join("ostree/repo/config")).expect("config")
    );
    let (_, err) = ox_fail(&[
        "remote",
        "add",
        "--sysroot=/nonexistent/sysroot",
        "x",
        "http://x",
    ]);
    assert!(err.contains("/nonexistent/sysroot"), "{err}");
}

fn fingerprint_of(home: &Path, who: &str) -> String {
    gpg(home, &["--list-keys", "--with-colons", who])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string()
}

/// A GnuPG home with one ed25519 signing key (fast to make); returns (home, fingerprint).
fn gpg_plain_key(t: &Path) -> (PathBuf, String) {
    let home = t.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Plain <plain@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let plain = fingerprint_of(&home, "plain@example.com");
    (home, plain)
}

/// Keys of every kind gpg-list-keys shows: a plain ed25519 key; an RSA key with an
/// encryption subkey, extra user IDs (no e-mail, mixed case, one revoked); a key that
/// expired (made in the past with gpg's faked clock); a revoked key. Returns the GnuPG home
/// and (plain, rich, expired, revoked) fingerprints.
fn gpg_keys(t: &Path) -> (PathBuf, [String; 4]) {
    let (home, plain) = gpg_plain_key(t);
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Rich <rich@example.org>",
            "rsa2048",
            "sign",
            "2y",
        ],
    );
    let rich = fingerprint_of(&home, "rich@example.org");
    gpg(&home, &["--quick-add-key", &rich, "rsa2048", "encr", "1y"]);
    gpg(&home, &["--quick-add-uid", &rich, "No Mail Person"]);
    gpg(
        &home,
        &["--quick-add-uid", &rich, "Upper <Mixed.Case+x@Example.ORG>"],
    );
    gpg(
        &home,
        &["--quick-add-uid", &rich, "Gone <gone@example.org>"],
    );
    gpg(
        &home,
        &["--quick-revoke-uid", &rich, "Gone <gone@example.org>"],
    );
    let past = "--faked-system-time=20200101T000000!";
    gpg(
        &home,
        &[
            past,
            "--quick-gen-key",
            "Old <old@example.net>",
            "ed25519",
            "sign",
            "1y",
        ],
    );
    let expired = fingerprint_of(&home, "old@example.net");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Revoked <rev@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let revoked = fingerprint_of(&home, "rev@example.com");
    let rev = std::fs::read_to_string(home.join(format!("openpgp-revocs.d/{revoked}.rev")))
        .expect("revocation certificate");
    let cert: String = rev
        .lines()
        .map(|l| l.strip_prefix(':').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(t.join("rev.asc"), cert).expect("write");
    gpg(&home, &["--import", s(&t.join("rev.asc"))]);
    (home, [plain, rich, expired, revoked])
}

#[test]
fn remote_gpg_import_and_list_keys_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (home, [plain, rich, expired, revoked]) = gpg_keys(t);
    let all = t.join("all.gpg");
    gpg(&home, &["--output", s(&all), "--export"]);
    let armored = t.join("all.asc");
    gpg(&home, &["--output", s(&armored), "--armor", "--export"]);
    std::fs::write(t.join("garbage"), b"not a key\n").expect("write");
    let r = t.join("repo");
    ostree(&["init", &format!("--repo={}", s(&r))]);
    for name in ["a", "b", "c", "d"] {
        ostree(&[
            "remote",
            "add",
            &format!("--repo={}", s(&r)),
            name,
            "http://x",
        ]);
    }
    let tw = Twins::new(t, &r, &["config"]);
    let ok = |args: &[&str]| tw.run(args);
    ok(&["remote", "gpg-list-keys", "a"]);
    ok(&["remote", "gpg-import", "a", "-k", s(&all)]);
    ok(&["remote", "gpg-list-keys", "a"]);
    ok(&["remote", "gpg-import", "a", "-k", s(&all)]);
    ok(&[
        "remote",
        "gpg-import",
        "b",
        "-k",
        s(&all),
        &plain[32..],
        &revoked,
    ]);
    ok(&["remote", "gpg-list-keys", "b"]);
    ok(&["remote", "gpg-import", "c", "-k", s(&all), "DEADBEEF"]);
    ok(&["remote", "gpg-import", "c", "-k", "/nonexistent.gpg"]);
    ok(&["remote", "gpg-import", "c", "-k", s(&t.join("garbage"))]);
    ok(&["remote", "gpg-import", "c", "--stdin", "-k", s(&all)]);
    ok(&["remote", "gpg-import", "nosuch", "-k", s(&all)]);
    ok(&["remote", "gpg-import"]);
    ok(&["remote", "gpg-list-keys", "nosuch"]);
    ok(&["remote", "gpg-list-keys"]);
    // --stdin, armored.
    let stdin_import = |bin: &Path, repo: &Path| {
        let out = std::process::Command::new(bin)
            .args([
                "remote",
                "gpg-import",
                &format!("--repo={}", s(repo)),
                "d",
                "--stdin",
                &rich,
            ])
            .stdin(std::fs::File::open(&armored).expect("open"))
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        stdin_import(Path::new("ostree"), &tw.a),
        stdin_import(&oxtree_bin(), &tw.b)
    );
    ok(&["remote", "gpg-list-keys", "d"]);
    // Each tool reads the keyring the other wrote (GnuPG's carry trust packets).
    for name in ["a", "b", "d"] {
        let ra = format!("--repo={}", s(&tw.a));
        let rb = format!("--repo={}", s(&tw.b));
        assert_eq!(
            ostree(&["remote", "gpg-list-keys", &rb, name]),
            ox(&["remote", "gpg-list-keys", &ra, name])
        );
    }
    let listed = ox(&[
        "remote",
        "gpg-list-keys",
        &format!("--repo={}", s(&tw.a)),
        "a",
    ]);
    assert!(
        listed.contains(&format!("Key: {revoked} (revoked)")),
        "{listed}"
    );
    assert!(listed.contains("  Expired: "), "{listed}");
    assert!(
        listed.contains(&expired) && listed.contains("  Subkey: "),
        "{listed}"
    );
    // Deleting the remote deletes its keyring.
    ok(&["remote", "delete", "a"]);
    assert!(!tw.a.join("a.trustedkeys.gpg").exists());
    assert!(!tw.b.join("a.trustedkeys.gpg").exists());
}

/// A keyring written by ostree (GnuPG's format, with trust packets) still tells oxtree that
/// a key is revoked: a commit it signed is refused.
#[test]
fn revoked_key_in_an_ostree_written_keyring_is_refused() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (home, plain) = gpg_plain_key(t);
    // A second home that signs with `plain` and does not know it was revoked later.
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "main",
        &format!("--gpg-sign={plain}"),
        &format!("--gpg-homedir={}", s(&home)),
        s(&small_tree(t)),
    ]);
    // Revoke `plain` and hand the revoked key to ostree's gpg-import.
    let rev = std::fs::read_to_string(home.join(format!("openpgp-revocs.d/{plain}.rev")))
        .expect("revocation certificate");
    let cert: String = rev
        .lines()
        .map(|l| l.strip_prefix(':').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(t.join("plain-rev.asc"), cert).expect("write");
    gpg(&home, &["--import", s(&t.join("plain-rev.asc"))]);
    let key = t.join("plain.gpg");
    gpg(&home, &["--output", s(&key), "--export", &plain]);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ostree(&["init", &d, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &d,
        "origin",
        &format!("file://{}", s(&src)),
    ]);
    ostree(&["remote", "gpg-import", &d, "origin", "-k", s(&key)]);
    let (code, err) = ox_fail(&["pull", &d, "origin", "main"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("revoked key"), "{err}");
    assert!(ox(&["refs", &d]).is_empty());
}

#[test]
fn remote_cookies_as_ostree_and_sent_with_pulls() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = t.join("repo");
    ostree(&["init", &format!("--repo={}", s(&r))]);
    let tw = Twins::new(t, &r, &[]);
    // ostree 2022.7's list-cookies reads the jar relative to the current directory, so
    // both run inside their repository.
    let both = |args: &[&str]| {
        let mut o = ostree_out(&tw.a, &[&["--repo=."], args].concat());
        let mut x = oxtree_out(&tw.b, &[&["--repo=."], args].concat());
        // Expiry dates are computed from each tool's own clock: compare them to the day.
        for out in [&mut o, &mut x] {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.stdout = text
                .lines()
                .map(|l| match l.strip_prefix("Expires: ") {
                    Some(d) => format!("Expires: {}\n", d.get(..10).unwrap_or(d)),
                    None => format!("{l}\n"),
                })
                .collect::<String>()
                .into_bytes();
        }
        assert_same_outputs(&format!("{args:?}"), &o, &x);
        // Same jars, up to the second the expiry was computed from.
        let jar = |repo: &Path| -> Vec<Vec<String>> {
            let name = args.get(1).copied().unwrap_or("");
            std::fs::read_to_string(repo.join(format!("{name}.cookies.txt")))
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    let mut f: Vec<String> = l.split('\t').map(str::to_string).collect();
                    if let Some(e) = f.get_mut(4) {
                        *e = e.len().to_string();
                    }
                    f
                })
                .collect()
        };
        assert_eq!(jar(&tw.a), jar(&tw.b), "{args:?}: the jars differ");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    both(&["remote", "add", "origin", "http://x"]);
    both(&[
        "remote",
        "add-cookie",
        "origin",
        "example.com",
        "/",
        "name1",
        "val1",
    ]);
    both(&[
        "remote",
        "add-cookie",
        "origin",
        ".example.org",
        "/sub",
        "n2",
        "v 2",
    ]);
    both(&[
        "remote",
        "add-cookie",
        "origin",
        "h",
        "/",
        "extra",
        "v",
        "ignored",
    ]);
    both(&["remote", "add-cookie", "origin", "h", "/", "novalue"]);
    let listed = both(&["remote", "list-cookies", "origin"]);
    assert!(listed.contains("Domain: .example.org\nPath: /sub\nName: n2\nSecure: FALSE\n"));
    both(&[
        "remote",
        "delete-cookie",
        "origin",
        "example.com",
        "/",
        "name1",
    ]);
    both(&[
        "remote",
        "delete-cookie",
        "origin",
        "example.com",
        "/",
        "name1",
    ]);
    both(&["remote", "delete-cookie", "origin", "example.com", "/"]);
    both(&["remote", "list-cookies", "origin"]);
    both(&["remote", "list-cookies", "nosuch"]);
    both(&["remote", "list-cookies"]);

    // Pulls send the jar's cookies for the server's host and path, as ostree does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for conn in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(&conn);
            let mut cookie = String::from("(none)");
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("cookie:") {
                    cookie = line[line.len() - v.len()..].trim().to_string();
                }
                line.clear();
            }
            seen2.lock().expect("lock").push(cookie);
            let _ = (&conn).write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/repo");
    for (bin, repo) in [(PathBuf::from("ostree"), &tw.a), (oxtree_bin(), &tw.b)] {
        let ra = format!("--repo={}", s(repo));
        run_ok(
            &bin,
            &["remote", "add", &ra, "--no-gpg-verify", "srv", &url],
        );
        run_ok(
            &bin,
            &[
                "remote",
                "add-cookie",
                &ra,
                "srv",
                "127.0.0.1",
                "/repo",
                "session",
                "s3cret",
            ],
        );
        run_ok(
            &bin,
            &[
                "remote",
                "add-cookie",
                &ra,
                "srv",
                "127.0.0.1",
                "/elsewhere",
                "other",
                "no",
            ],
        );
        let out = run_raw(&bin, &["pull", &ra, "srv", "main"]);
        assert!(!out.status.success());
        let got = std::mem::take(&mut *seen.lock().expect("lock"));
        assert!(!got.is_empty(), "{bin:?} made no request");
        assert!(
            got.iter().all(|c| c == "session=s3cret"),
            "{bin:?} sent {got:?}"
        );
    }
}

#[test]
fn remote_refs_and_summary_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let src = refs_fixture(t);
    let sa = format!("--repo={}", s(&src));
    ostree(&["summary", &sa, "-u"]);
    let r = t.join("client");
    let ra = format!("--repo={}", s(&r));
    ostree(&["init", &ra]);
    ostree(&[
        "remote",
        "add",
        &ra,
        "--no-gpg-verify",
        "origin",
        &format!("file://{}", s(&src)),
    ]);
    ostree(&[
        "remote",
        "add",
        &ra,
        "--no-gpg-verify",
        "nosummary",
        "file:///nonexistent/repo",
    ]);
    let cache = t.join("cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    let cd = format!("--cache-dir={}", s(&cache));
    for args in [
        vec![ra.as_str(), "remote", "refs", "origin"],
        vec![&ra, "remote", "refs", &cd, "origin"],
        vec![
            &ra,
            "remote",
            "refs",
            "--cache-dir=/nonexistent/cache",
            "origin",
        ],
        vec![&ra, "remote", "refs", "nosuch"],
        vec![&ra, "remote", "refs"],
        vec![&ra, "remote", "summary", "origin"],
        vec![&ra, "remote", "summary", "--raw", "origin"],
        vec![&ra, "remote", "summary", &cd, "origin"],
        vec![&ra, "remote", "summary", "nosuch"],
        vec![&ra, "remote", "summary"],
    ] {
        same(t, &args);
    }
    // Newer than ostree 2022.7: --revision, --list-metadata-keys, --print-metadata-key.
    let main = ostree(&["rev-parse", &sa, "main"]);
    let refs = ox(&[&ra, "remote", "refs", "--revision", "origin"]);
    assert!(
        refs.lines().any(|l| l == format!("origin:main\t{main}")),
        "{refs}"
    );
    let keys = ox(&[&ra, "remote", "summary", "--list-metadata-keys", "origin"]);
    assert_eq!(keys, ox(&[&sa, "summary", "--list-metadata-keys"]));
    assert!(keys.lines().any(|k| k == "ostree.summary.mode"), "{keys}");
    assert_eq!(
        ox(&[
            &ra,
            "remote",
            "summary",
            "--print-metadata-key=ostree.summary.mode",
            "origin"
        ]),
        "'archive-z2'"
    );
    let (_, err) = ox_fail(&[
        &ra,
        "remote",
        "summary",
        "--print-metadata-key=nope",
        "origin",
    ]);
    assert!(err.contains("nope"), "{err}");
}

/// Run `body` (sh) in a private mount namespace with a fresh tmpfs on `/run` and, for each
/// name in `mounts`, a `ramfs` at `/run/media/NAME` — filesystems a desktop (and so ostree's
/// mount finder, through GIO) shows. Nothing outside the namespace sees them; they vanish
/// with it. `$OX` is oxtree, `$T` the test directory; stdout and stderr are returned.
fn in_mount_namespace(t: &Path, mounts: &[&str], body: &str) -> Output {
    let mut script =
        String::from("set -e\nmount --make-rprivate /\nmount -t tmpfs oxtree-test-run /run\n");
    for m in mounts {
        script.push_str(&format!(
            "mkdir -p /run/media/{m}\nmount -t ramfs oxtree-test-{m} /run/media/{m}\n"
        ));
    }
    script.push_str(body);
    std::fs::write(t.join("ns.sh"), &script).expect("write script");
    std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            s(&t.join("ns.sh")),
        ])
        .env("OX", oxtree_bin())
        .env("T", t)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("unshare (tests run as root)")
}

fn must(o: &Output) -> String {
    assert!(
        o.status.success(),
        "script failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A source repository with collection ID org.example.Os and GPG-signed commits on `main`
/// and `os/amd64`, its summary made; a second key's public part (untrusted) is returned
/// too. Returns (repo, signer's public keyring, home, fingerprint).
fn p2p_source(t: &Path) -> (PathBuf, PathBuf, PathBuf, String) {
    let (home, plain) = gpg_plain_key(t);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&[
        "init",
        &sa,
        "--mode=archive",
        "--collection-id=org.example.Os",
    ]);
    let tree = small_tree(t);
    for b in ["main", "os/amd64"] {
        ostree(&[
            "commit",
            &sa,
            "-b",
            b,
            "-s",
            b,
            &format!("--gpg-sign={plain}"),
            &format!("--gpg-homedir={}", s(&home)),
            s(&tree),
        ]);
    }
    ostree(&["summary", &sa, "-u"]);
    let key = t.join("signer.gpg");
    gpg(&home, &["--output", s(&key), "--export", &plain]);
    (src, key, home, plain)
}

/// A local repository whose remote `myremote` serves collection org.example.Os with the
/// signer's key (the keyring find-remotes verifies with).
fn p2p_client(t: &Path, name: &str, key: &Path) -> PathBuf {
    let r = t.join(name);
    let ra = format!("--repo={}", s(&r));
    ostree(&["init", &ra, "--mode=bare-user"]);
    ostree(&[
        "remote",
        "add",
        &ra,
        &format!("--gpg-import={}", s(key)),
        "--collection-id=org.example.Os",
        "myremote",
        "http://127.0.0.1:9/unreachable",
    ]);
    r
}

/// The lines of find-remotes output with each result's ref lines sorted (ostree lists them
/// in hash-table order).
fn normalise_results(out: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut refs: Vec<String> = Vec::new();
    for l in out.lines() {
        if l.starts_with("    - ") {
            refs.push(l.to_string());
            continue;
        }
        refs.sort();
        lines.append(&mut refs);
        lines.push(l.to_string());
    }
    refs.sort();
    lines.append(&mut refs);
    lines.join("\n")
}

#[test]
fn create_usb_and_find_remotes_interoperate_with_ostree_both_ways() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, key, _, _) = p2p_source(t);
    let clients: Vec<PathBuf> = ["o1", "x1", "o2", "x2"]
        .iter()
        .map(|n| p2p_client(t, n, &key))
        .collect();
    let out = in_mount_namespace(
        t,
        &["byostree", "byoxtree"],
        &format!(
            r#"
S={src}
ostree create-usb --repo=$S /run/media/byostree org.example.Os main org.example.Os os/amd64 > $T/create-ostree.out
$OX create-usb --repo=$S /run/media/byoxtree org.example.Os main org.example.Os os/amd64 > $T/create-oxtree.out
for m in byostree byoxtree; do
  R=/run/media/$m/.ostree/repo
  ostree refs --repo=$R -c | sort > $T/$m.refs
  ostree summary --repo=$R --view | grep -v Last-Modified > $T/$m.view
  cat $R/config > $T/$m.config
  (cd $R/objects && find . -type f | sort) > $T/$m.objects
  ostree fsck --repo=$R > /dev/null
  $OX fsck --repo=$R > /dev/null
done
# The stick ostree made: found and pulled by oxtree (and by ostree, to compare).
umount /run/media/byoxtree
ostree find-remotes --repo=$T/o1 --finders=mount --pull org.example.Os main org.example.Os os/amd64 org.example.Os nosuch > $T/find-o1.out
$OX find-remotes --repo=$T/x1 --finders=mount --pull org.example.Os main org.example.Os os/amd64 org.example.Os nosuch > $T/find-x1.out
# The stick oxtree made: found and pulled by ostree (and by oxtree), as mirrors.
umount /run/media/byostree
mkdir -p /run/media/again && mount -t ramfs oxtree-test-again /run/media/again
$OX create-usb --repo=$S /run/media/again org.example.Os main org.example.Os os/amd64 > /dev/null
ostree find-remotes --repo=$T/o2 --finders=mount --pull --mirror org.example.Os main org.example.Os os/amd64 > $T/find-o2.out
$OX find-remotes --repo=$T/x2 --finders=mount --pull --mirror org.example.Os main org.example.Os os/amd64 > $T/find-x2.out
"#,
            src = s(&src)
        ),
    );
    must(&out);
    let read = |n: &str| std::fs::read_to_string(t.join(n)).expect(n);
    assert_eq!(
        read("create-ostree.out").replace("byostree", "X"),
        read("create-oxtree.out").replace("byoxtree", "X")
    );
    for part in ["refs", "view", "config", "objects"] {
        assert_eq!(
            read(&format!("byostree.{part}")),
            read(&format!("byoxtree.{part}")),
            "the two sticks' {part} differ"
        );
    }
    assert!(read("byoxtree.refs").contains("(org.example.Os, os/amd64)"));
    for (o, x) in [
        ("find-o1.out", "find-x1.out"),
        ("find-o2.out", "find-x2.out"),
    ] {
        let (o, x) = (read(o), read(x));
        assert_eq!(normalise_results(&o), normalise_results(&x));
        assert!(x.contains(" - Finder: OstreeRepoFinderMount\n"), "{x}");
        assert!(x.contains("Pulled "), "{x}");
    }
    assert!(read("find-x1.out")
        .contains("Refs not found in any remote:\n - (org.example.Os, nosuch)\n"));
    // Same refs, same commits, complete.
    for (a, b) in [(&clients[0], &clients[1]), (&clients[2], &clients[3])] {
        assert_eq!(tree_state(&a.join("refs")), tree_state(&b.join("refs")));
        ostree(&["fsck", &format!("--repo={}", s(b))]);
    }
    let main = ostree(&["rev-parse", &format!("--repo={}", s(&src)), "main"]);
    assert_eq!(
        ox(&[
            "rev-parse",
            &format!("--repo={}", s(&clients[1])),
            "myremote:main"
        ]),
        main
    );
    let mirrored = ox(&[&format!("--repo={}", s(&clients[3])), "refs", "-c"]);
    assert!(
        mirrored.contains("(org.example.Os, os/amd64)"),
        "{mirrored}"
    );
}

#[test]
fn find_remotes_pull_refuses_wrong_bindings_and_unsigned_commits() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, key, home, plain) = p2p_source(t);
    let sa = format!("--repo={}", s(&src));
    // A commit of another collection, signed by the same key, and an unsigned one.
    let other = t.join("other");
    let oa = format!("--repo={}", s(&other));
    ostree(&[
        "init",
        &oa,
        "--mode=archive",
        "--collection-id=org.other.Os",
    ]);
    ostree(&[
        "commit",
        &oa,
        "-b",
        "foreign",
        &format!("--gpg-sign={plain}"),
        &format!("--gpg-homedir={}", s(&home)),
        s(&small_tree(t)),
    ]);
    ostree(&["commit", &sa, "-b", "unsigned", s(&small_tree(t))]);
    ostree(&["summary", &sa, "-u"]);
    let client = p2p_client(t, "client", &key);
    let ca = format!("--repo={}", s(&client));
    let out = in_mount_namespace(
        t,
        &["stick"],
        &format!(
            r#"
R=/run/media/stick/.ostree/repo
$OX create-usb --repo={src} /run/media/stick org.example.Os main org.example.Os unsigned > /dev/null
# A ref the commit was not made for, and a commit of another collection, put there by hand.
cp $R/refs/mirrors/org.example.Os/main $R/refs/mirrors/org.example.Os/evil
ostree pull-local --repo=$R {other} foreign > /dev/null
mv $R/refs/heads/foreign $R/refs/mirrors/org.example.Os/foreign
ostree summary --repo=$R -u
for r in evil foreign unsigned main; do
  set +e
  $OX find-remotes --repo={client} --finders=mount --pull org.example.Os $r > $T/$r.out 2> $T/$r.err
  echo $? > $T/$r.code
  set -e
done

"#,
            src = s(&src),
            other = s(&other),
            client = s(&client)
        ),
    );
    must(&out);
    let read = |n: &str| std::fs::read_to_string(t.join(n)).unwrap_or_default();
    for (r, why) in [
        ("evil", "ref binding"),
        ("foreign", "collection ID ‘org.other.Os’"),
        (
            "unsigned",
            "GPG verification enabled, but no signatures found",
        ),
    ] {
        let err = read(&format!("{r}.err"));
        assert_eq!(read(&format!("{r}.code")).trim(), "1", "{r}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: Failed to pull some refs from the remotes: (org.example.Os, {r})\n"
            )),
            "{r}: {err}"
        );
        assert!(err.contains(why), "{r}: {err}");
        assert!(read(&format!("{r}.out")).contains(&format!("(org.example.Os, {r}) = ")));
    }
    // Nothing of the refused commits was stored or referenced; the good one pulled.
    assert_eq!(read("main.code").trim(), "0", "{}", read("main.err"));
    let refs = ox(&[&ca, "refs"]);
    assert_eq!(refs, "myremote:main");
    let main = ostree(&["rev-parse", &sa, "main"]);
    let commits = commits_in(&client);
    assert_eq!(commits, vec![main], "only the verified commit is stored");
}

#[test]
fn create_usb_bad_input_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, _, _, _) = p2p_source(t);
    let sa = format!("--repo={}", s(&src));
    let os_amd64 = ostree(&["rev-parse", &sa, "os/amd64"]);
    let (a, b) = (t.join("stick-a"), t.join("stick-b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    let run = |args: &[&str]| {
        let mut oa = vec![sa.as_str(), "create-usb", s(&a)];
        oa.extend_from_slice(args);
        let mut xa = vec![sa.as_str(), "create-usb", s(&b)];
        xa.extend_from_slice(args);
        let o = ostree_out(t, &oa);
        let x = oxtree_out(t, &xa);
        assert_same_outputs(&format!("{args:?}"), &o, &x);
        // (ostree may leave an empty repository behind; oxtree checks everything first.)
        assert!(tree_state(&b).is_empty(), "{args:?}: {:?}", tree_state(&b));
    };
    run(&[]);
    run(&["org.example.Os"]);
    run(&["bad", "main"]);
    run(&["org.example.Os", "../bad"]);
    run(&["org.example.Os", "nosuch"]);
    run(&["org.other.Os", "main"]);
    run(&[
        "--commit=main",
        "org.example.Os",
        "main",
        "org.example.Os",
        "os/amd64",
    ]);
    run(&[&format!("--commit={os_amd64}"), "org.example.Os", "main"]);
    // Without a summary the refs are looked up directly, with ostree's other message.
    std::fs::remove_file(src.join("summary")).expect("rm summary");
    run(&["org.example.Os", "nosuch"]);
    let missing = format!("{}/nonexistent", s(t));
    same(t, &[&sa, "create-usb", &missing, "org.example.Os", "main"]);
    // --destination-repo: the repository elsewhere, linked from .ostree/repos.d.
    for (bin, d) in [(PathBuf::from("ostree"), &a), (oxtree_bin(), &b)] {
        run_ok(
            &bin,
            &[
                &sa,
                "create-usb",
                "--destination-repo=my/repo",
                s(d),
                "org.example.Os",
                "main",
            ],
        );
        run_ok(
            &bin,
            &[
                &sa,
                "create-usb",
                "--destination-repo=my/repo",
                s(d),
                "org.example.Os",
                "os/amd64",
            ],
        );
    }
    assert_eq!(
        std::fs::read_link(b.join(".ostree/repos.d/00-generated")).expect("link"),
        PathBuf::from("../../my/repo")
    );
    // One link however often the repository is written (ostree 2022.7 adds 01-generated
    // the second time, to the same place).
    assert_eq!(
        tree_state(&b.join(".ostree")),
        ["repos.d/", "repos.d/00-generated -> ../../my/repo"]
    );
    assert_eq!(
        tree_state(&a.join("my/repo/refs")),
        tree_state(&b.join("my/repo/refs"))
    );
}

#[test]
fn find_remotes_config_finder_and_errors_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, key, _, _) = p2p_source(t);
    let (a, b) = (p2p_client(t, "a", &key), p2p_client(t, "b", &key));
    let url = format!("file://{}", s(&src));
    for c in [&a, &b] {
        let ca = format!("--repo={}", s(c));
        ostree(&["remote", "delete", &ca, "myremote"]);
        ostree(&[
            "remote",
            "add",
            &ca,
            &format!("--gpg-import={}", s(&key)),
            "--collection-id=org.example.Os",
            "myremote",
            &url,
        ]);
        // A remote of another collection is not asked.
        ostree(&[
            "remote",
            "add",
            &ca,
            "--no-gpg-verify",
            "--collection-id=org.other.Os",
            "other",
            "file:///nonexistent/other",
        ]);
    }
    let run = |args: &[&str], pull: bool| {
        let mut oa = vec!["find-remotes", "--finders=config"];
        let mut xa = oa.clone();
        let (ra, rb) = (format!("--repo={}", s(&a)), format!("--repo={}", s(&b)));
        oa.push(&ra);
        xa.push(&rb);
        if pull {
            oa.push("--pull");
            xa.push("--pull");
        }
        oa.extend_from_slice(args);
        xa.extend_from_slice(args);
        let o = ostree_out(t, &oa);
        let x = oxtree_out(t, &xa);
        assert_same_outputs(&format!("{args:?}"), &o, &x);
        assert_eq!(
            normalise_results(&String::from_utf8_lossy(&o.stdout)),
            normalise_results(&String::from_utf8_lossy(&x.stdout))
        );
    };
    run(
        &["org.example.Os", "main", "org.example.Os", "nosuch"],
        false,
    );
    run(&["org.other.Os", "main"], false);
    run(
        &["org.example.Os", "main", "org.example.Os", "os/amd64"],
        true,
    );
    run(&["org.example.Os"], false);
    run(&["org.example.Os", "main", "org.example.Os"], false);
    run(&["bad", "main"], false);
    run(&["org.example.Os", "../bad"], false);
    run(&["--finders=", "org.example.Os", "main"], false);
    run(&["--finders=foo", "org.example.Os", "main"], false);
    run(&["--finders=mount,mount", "org.example.Os", "main"], false);
    run(&["--mirror", "org.example.Os", "main"], false);
    run(
        &["--cache-dir=/nonexistent/cache", "org.example.Os", "main"],
        false,
    );
    assert_eq!(tree_state(&a.join("refs")), tree_state(&b.join("refs")));
    assert!(tree_state(&b.join("refs"))
        .iter()
        .any(|l| l.starts_with("remotes/myremote/os/amd64 = ")));
    ostree(&["fsck", &format!("--repo={}", s(&b))]);
}

/// `summary -u` in a repository with a collection ID and mirrors: the collection map, the
/// collection ID and the `ostree-metadata` commit as ostree writes them (the summary is
/// byte-identical up to its timestamps), and `--view` shows them as ostree does.
#[test]
fn summary_collection_map_as_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let r = t.join("repo");
    let ra = format!("--repo={}", s(&r));
    ostree(&[
        "init",
        &ra,
        "--mode=archive",
        "--collection-id=org.example.Os",
    ]);
    let tree = small_tree(t);
    ostree(&[
        "commit",
        &ra,
        "-b",
        "main",
        "--timestamp=2020-01-01T00:00:00Z",
        s(&tree),
    ]);
    ostree(&["refs", &ra, "-c", "--create=org.other.Os:foo", "main"]);
    ostree(&["refs", &ra, "-c", "--create=org.third.Os:bar/baz", "main"]);
    let tw = Twins::new(t, &r, &[]);
    let view = |repo: &Path, bin: &Path| -> String {
        let out = run_ok(bin, &["summary", &format!("--repo={}", s(repo)), "--view"]);
        // Times and the ostree-metadata commit (made now) differ between runs.
        out.lines()
            .filter(|l| !l.contains("Last-Modified"))
            .map(|l| {
                if l.starts_with("      ") || l.contains("Timestamp") {
                    "<varies>".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    run_ok(
        Path::new("ostree"),
        &["summary", &format!("--repo={}", s(&tw.a)), "-u"],
    );
    run_ok(
        &oxtree_bin(),
        &["summary", &format!("--repo={}", s(&tw.b)), "-u"],
    );
    let expected = view(&tw.a, Path::new("ostree"));
    assert!(expected.contains("* (org.other.Os, foo)"), "{expected}");
    assert!(
        expected.contains("* (org.example.Os, ostree-metadata)"),
        "{expected}"
    );
    // Each tool shows the other's summary the same way.
    assert_eq!(view(&tw.b, Path::new("ostree")), expected);
    assert_eq!(view(&tw.a, &oxtree_bin()), expected);
    assert_eq!(view(&tw.b, &oxtree_bin()), expected);
    // The same metadata commit: bound to the collection and the ref, an empty tree.
    for repo in [&tw.a, &tw.b] {
        let shown = ostree(&[
            "show",
            &format!("--repo={}", s(repo)),
            "--raw",
            "ostree-metadata",
        ]);
        assert!(
            shown.contains("{'ostree.collection-binding': <'org.example.Os'>, 'ostree.ref-binding': <['ostree-metadata']>}, @ay [], @a(say) [], '', ''"),
            "{shown}"
        );
        ostree(&["fsck", &format!("--repo={}", s(repo))]);
    }
    // Made in the same second, the summaries are the same bytes.
    let (sa, sb) = (
        std::fs::read(tw.a.join("summary")).expect("summary"),
        std::fs::read(tw.b.join("summary")).expect("summary"),
    );
    assert_eq!(sa.len(), sb.len());
    // A second update chains the metadata commit to the first.
    run_ok(
        &oxtree_bin(),
        &["summary", &format!("--repo={}", s(&tw.b)), "-u"],
    );
    let log = ostree(&["log", &format!("--repo={}", s(&tw.b)), "ostree-metadata"]);
    assert_eq!(log.matches("commit ").count(), 2, "{log}");
}

/// Two sticks with different versions of `main`: only the newer one is offered for it (and
/// pulled), as ostree decides, and the results come in ostree's order.
#[test]
fn find_remotes_prefers_the_newest_commit_across_mounts() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (src, key, home, plain) = p2p_source(t);
    let sa = format!("--repo={}", s(&src));
    let (o, x) = (p2p_client(t, "o", &key), p2p_client(t, "x", &key));
    std::fs::write(t.join("commit-v2.sh"), format!(
        "ostree commit {sa} -b main -s v2 --gpg-sign={plain} --gpg-homedir={} {} > /dev/null && ostree summary {sa} -u\n",
        s(&home),
        s(&small_tree(t))
    ))
    .expect("write");
    let out = in_mount_namespace(
        t,
        &["old", "new"],
        &format!(
            r#"
$OX create-usb --repo={src} /run/media/old org.example.Os main org.example.Os os/amd64 > /dev/null
sleep 1
sh $T/commit-v2.sh
ostree create-usb --repo={src} /run/media/new org.example.Os main > /dev/null
ostree find-remotes --repo={o} --finders=mount --pull org.example.Os main org.example.Os os/amd64 > $T/o.out
$OX find-remotes --repo={x} --finders=mount --pull org.example.Os main org.example.Os os/amd64 > $T/x.out
"#,
            src = s(&src),
            o = s(&o),
            x = s(&x)
        ),
    );
    must(&out);
    let read = |n: &str| std::fs::read_to_string(t.join(n)).expect(n);
    let (oo, xo) = (read("o.out"), read("x.out"));
    assert_eq!(normalise_results(&oo), normalise_results(&xo));
    let main = ostree(&["rev-parse", &sa, "main"]);
    assert!(
        xo.contains("Result 1: file:///run/media/new/.ostree/repo"),
        "{xo}"
    );
    assert!(
        xo.contains("    - (org.example.Os, main) = (not found)\n"),
        "{xo}"
    );
    assert_eq!(
        ox(&["rev-parse", &format!("--repo={}", s(&x)), "myremote:main"]),
        main
    );
    assert_eq!(tree_state(&o.join("refs")), tree_state(&x.join("refs")));
}

/// A remote's keyring (`remote add --gpg-import`, `remote gpg-import`) and cookie jar
/// (`add-cookie`, `delete-cookie`) get 0644 less the umask, as ostree's (GnuPG and libsoup
/// create them); the config stays 0644 whatever the umask, as ostree writes it.
#[test]
fn remote_keyring_and_cookie_modes_follow_the_umask_as_ostree() {
    use std::os::unix::fs::PermissionsExt;
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (home, fpr) = gpg_plain_key(t);
    let key = t.join("pub.gpg");
    gpg(&home, &["--output", s(&key), "--export", &fpr]);
    for umask in ["077", "002", "027"] {
        let mut modes = Vec::new();
        for (tool, bin) in [
            ("ostree", PathBuf::from("ostree")),
            ("oxtree", oxtree_bin()),
        ] {
            let r = t.join(format!("{tool}-{umask}"));
            let script = format!(
                "umask {umask}; set -e; B=\"$0\"; R=--repo=\"$1\"; K=\"$2\"
                 \"$B\" init $R --mode=archive
                 \"$B\" remote add $R --gpg-import=\"$K\" a http://a.example
                 \"$B\" remote add $R b http://b.example
                 \"$B\" remote gpg-import $R b -k \"$K\"
                 \"$B\" remote add-cookie $R a h.example / n v
                 \"$B\" remote add-cookie $R b h.example / n v
                 \"$B\" remote delete-cookie $R b h.example / n"
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(&bin)
                .arg(&r)
                .arg(&key)
                .output()
                .expect("sh");
            assert!(o.status.success(), "{tool} umask {umask}: {o:?}");
            let mut m: Vec<(String, u32)> = std::fs::read_dir(&r)
                .expect("readdir")
                .map(|e| e.expect("entry"))
                // (`.lock`: the repository lock, which oxtree takes for more commands)
                .filter(|e| e.file_type().is_ok_and(|f| f.is_file()) && e.file_name() != ".lock")
                .map(|e| {
                    let mode = e.metadata().expect("stat").permissions().mode() & 0o7777;
                    (e.file_name().to_string_lossy().into_owned(), mode)
                })
                .collect();
            m.sort();
            modes.push(m);
        }
        assert_eq!(modes[0], modes[1], "umask {umask}: ostree's, then oxtree's");
    }
}
