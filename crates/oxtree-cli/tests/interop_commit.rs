//! Interop with the real `ostree`: the same tree committed by both tools gives the same
//! commit checksum in every repo mode; each tool fscks, lists and checks out the other's
//! repo, and every checkout reproduces the tree.

mod common;
use common::*;
use std::path::Path;

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

fn commit_args<'a>(repo: &'a str, tree: &'a str) -> Vec<&'a str> {
    vec![
        "commit",
        repo,
        "-b",
        "main",
        "-s",
        "interop subject",
        "-m",
        "a body\nwith two lines",
        TS,
        "--add-metadata-string=version=1.0",
        "--add-metadata-string=custom=value",
        tree,
    ]
}

fn interop(mode: &str) {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, true);
    let (ro, rx) = (t.join("repo-ostree"), t.join("repo-oxtree"));
    let (ro_arg, rx_arg) = (format!("--repo={}", s(&ro)), format!("--repo={}", s(&rx)));
    ostree(&["init", &ro_arg, &format!("--mode={mode}")]);
    ox(&["init", &rx_arg, &format!("--mode={mode}")]);
    assert_eq!(
        std::fs::read(ro.join("config")).expect("config"),
        std::fs::read(rx.join("config")).expect("config"),
        "config differs"
    );

    // Same checksum.
    let co = ostree(&commit_args(&ro_arg, s(&tree)));
    let cx = ox(&commit_args(&rx_arg, s(&tree)));
    assert_eq!(co, cx, "commit checksums differ in mode {mode}");
    assert_eq!(ox(&["rev-parse", &rx_arg, "main"]), cx);
    // The objects themselves match too (metadata is byte-identical; file objects by name).
    let (so, sx) = (object_set(&ro), object_set(&rx));
    assert_eq!(so, sx, "object sets differ in mode {mode}");

    // Each tool verifies the other's repo.
    ostree(&["fsck", &rx_arg]);
    ox(&["fsck", &ro_arg]);
    ox(&["fsck", &rx_arg]);

    // Each tool lists the other's repo the same way.
    assert_eq!(
        ox(&["ls", &ro_arg, "-R", "main"]),
        ostree(&["ls", &ro_arg, "-R", "main"])
    );
    assert_eq!(ox(&["cat", &ro_arg, "main", "/etc/conf"]), "key=value");
    assert!(ox(&["log", &ro_arg, "main"]).contains("interop subject"));

    // Checkouts by either tool, from either repo, reproduce the tree.
    let user = mode == "bare-user-only";
    let flags: &[&str] = if user { &["-U"] } else { &[] };
    let src = snapshot(&tree);
    let expected = if mode == "bare-user-only" {
        canonicalize(&src)
    } else {
        src
    };
    for (tool_is_ox, repo_arg, name) in [
        (false, &rx_arg, "ostree-from-oxtree"),
        (true, &ro_arg, "oxtree-from-ostree"),
        (true, &rx_arg, "oxtree-from-oxtree"),
    ] {
        let dest = t.join(name);
        let mut args = vec!["checkout", repo_arg.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["main", s(&dest)]);
        if tool_is_ox {
            ox(&args);
        } else {
            ostree(&args);
        }
        let got = snapshot(&dest);
        // The checkout root is a directory we created; only compare what is below it.
        let strip = |m: &std::collections::BTreeMap<String, Entry>| {
            m.iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let (g, e) = (strip(&got), strip(&expected));
        assert!(
            g == e,
            "checkout {name} in mode {mode} differs from the tree:\n{}",
            snapshot_diff(&e, &g)
        );
    }

    // Hardlink checkouts share inodes with the objects where the mode allows it.
    if mode == "bare" || mode == "bare-user" {
        let dest = t.join("hardlinked");
        let mut args = vec!["checkout", rx_arg.as_str(), "--require-hardlinks"];
        if mode == "bare-user" {
            args.push("-U");
        }
        args.extend_from_slice(&["main", s(&dest)]);
        ox(&args);
        use std::os::unix::fs::MetadataExt;
        assert!(
            std::fs::metadata(dest.join("etc/conf"))
                .expect("stat")
                .nlink()
                > 1,
            "not hardlinked"
        );
    }
}

#[test]
fn same_commit_archive() {
    interop("archive");
}

#[test]
fn same_commit_bare() {
    interop("bare");
}

#[test]
fn same_commit_bare_user() {
    interop("bare-user");
}

#[test]
fn same_commit_bare_user_only() {
    interop("bare-user-only");
}

/// Modifier options change checksums the same way in both tools.
#[test]
fn same_commit_with_modifiers() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    std::fs::write(t.join("skip"), "/many/f001\n/etc/private\n").expect("write");
    std::fs::write(t.join("statoverride"), "+2048 /bin/exe\n=420 /etc/conf\n").expect("write");
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    let (ro_arg, rx_arg) = (format!("--repo={}", s(&ro)), format!("--repo={}", s(&rx)));
    ostree(&["init", &ro_arg, "--mode=archive"]);
    ox(&["init", &rx_arg, "--mode=archive"]);
    let variants: Vec<Vec<String>> = vec![
        vec!["--owner-uid=0".into(), "--owner-gid=0".into()],
        vec!["--canonical-permissions".into()],
        vec!["--no-xattrs".into()],
        vec![format!("--skip-list={}", s(&t.join("skip")))],
        vec![format!("--statoverride={}", s(&t.join("statoverride")))],
        vec![
            "--add-metadata=flag=true".into(),
            "--add-metadata=count=uint64 42".into(),
            "--no-bindings".into(),
        ],
        vec!["--generate-sizes".into()],
    ];
    for (i, extra) in variants.iter().enumerate() {
        let b = format!("b{i}");
        let mut args: Vec<&str> = vec!["commit", "-b", &b, "-s", "modifiers", TS];
        args.extend(extra.iter().map(String::as_str));
        args.push(s(&tree));
        let mut a1 = args.clone();
        a1.insert(1, &ro_arg);
        let mut a2 = args.clone();
        a2.insert(1, &rx_arg);
        assert_eq!(ox(&a2), ostree(&a1), "checksums differ with {extra:?}");
    }
    ostree(&["fsck", &rx_arg]);
    // A second commit on a branch gets the first as its parent in both tools.
    let again_o = ostree(&[
        "commit",
        &ro_arg,
        "-b",
        "b0",
        "-s",
        "second",
        TS,
        "--owner-uid=0",
        s(&tree),
    ]);
    let again_x = ox(&[
        "commit",
        &rx_arg,
        "-b",
        "b0",
        "-s",
        "second",
        TS,
        "--owner-uid=0",
        s(&tree),
    ]);
    assert_eq!(again_o, again_x);
    assert_eq!(
        ox(&["rev-parse", &rx_arg, "b0^"]),
        ostree(&["rev-parse", &ro_arg, "b0^"])
    );
}

/// `--tree=tar=` commits the same tree as the directory it was made from.
#[test]
fn commit_from_tar_matches_dir() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let tar = t.join("tree.tar");
    run_ok(
        Path::new("tar"),
        &["--xattrs", "-C", s(&tree), "-cf", s(&tar), "."],
    );
    let rx = t.join("rx");
    let rx_arg = format!("--repo={}", s(&rx));
    ox(&["init", &rx_arg, "--mode=bare-user"]);
    let from_dir = ox(&[
        "commit",
        &rx_arg,
        "--orphan",
        "-s",
        "x",
        TS,
        &format!("--tree=dir={}", s(&tree)),
    ]);
    let from_tar = ox(&[
        "commit",
        &rx_arg,
        "--orphan",
        "-s",
        "x",
        TS,
        &format!("--tree=tar={}", s(&tar)),
    ]);
    let ls = |c: &str| ox(&["ls", &rx_arg, "-RC", c]);
    assert_eq!(ls(&from_dir), ls(&from_tar));
    assert_eq!(from_dir, from_tar);
}

/// `prune` deletes exactly what ostree's prune deletes, on identical repos.
#[test]
fn prune_matches_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let base = t.join("base");
    let base_arg = format!("--repo={}", s(&base));
    ostree(&["init", &base_arg, "--mode=archive"]);
    ostree(&["commit", &base_arg, "-b", "main", "-s", "v1", TS, s(&tree)]);
    write(&tree.join("etc/conf"), b"changed\n", 0o644);
    write(&tree.join("new-in-v2"), b"new\n", 0o644);
    ostree(&["commit", &base_arg, "-b", "main", "-s", "v2", TS, s(&tree)]);
    write(&tree.join("orphan-only"), b"orphan\n", 0o644);
    ostree(&[
        "commit",
        &base_arg,
        "--orphan",
        "-s",
        "orphan",
        TS,
        s(&tree),
    ]);
    ostree(&[
        "commit",
        &base_arg,
        "-b",
        "other",
        "-s",
        "other",
        TS,
        s(&tree),
    ]);
    ostree(&["refs", &base_arg, "--delete", "other"]);
    for flags in [
        vec![],
        vec!["--refs-only"],
        vec!["--refs-only", "--depth=0"],
    ] {
        let (a, b) = (t.join("a"), t.join("b"));
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
        run_ok(Path::new("cp"), &["-a", s(&base), s(&a)]);
        run_ok(Path::new("cp"), &["-a", s(&base), s(&b)]);
        let (aa, ba) = (format!("--repo={}", s(&a)), format!("--repo={}", s(&b)));
        let mut oa = vec!["prune", aa.as_str()];
        oa.extend(flags.iter());
        ostree(&oa);
        let mut xa = vec!["prune", ba.as_str()];
        xa.extend(flags.iter());
        ox(&xa);
        assert_eq!(
            object_set(&a),
            object_set(&b),
            "prune {flags:?} kept different objects"
        );
        assert!(object_set(&b).len() < object_set(&base).len() || flags.is_empty());
        ox(&["fsck", &ba]);
        ostree(&["fsck", &ba]);
    }
}

/// pull-local works in both directions and across modes.
#[test]
fn pull_local_both_ways() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (ro, rx, rx2) = (t.join("ro"), t.join("rx"), t.join("rx2"));
    let (ro_arg, rx_arg, rx2_arg) = (
        format!("--repo={}", s(&ro)),
        format!("--repo={}", s(&rx)),
        format!("--repo={}", s(&rx2)),
    );
    ostree(&["init", &ro_arg, "--mode=archive"]);
    let c = ostree(&["commit", &ro_arg, "-b", "main", "-s", "x", TS, s(&tree)]);
    ox(&["init", &rx_arg, "--mode=bare-user"]);
    ox(&["pull-local", &rx_arg, s(&ro), "main"]);
    assert_eq!(ox(&["rev-parse", &rx_arg, "main"]), c);
    ox(&["fsck", &rx_arg]);
    ostree(&["fsck", &rx_arg]);
    ostree(&["init", &rx2_arg, "--mode=archive"]);
    ostree(&["pull-local", &rx2_arg, s(&rx), "main"]);
    ostree(&["fsck", &rx2_arg]);
    ox(&["fsck", &rx2_arg]);
}

/// `checkout --subpath` of a directory and of a single file matches ostree.
#[test]
fn checkout_subpath_matches_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let repo = t.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ostree(&["init", &arg, "--mode=archive"]);
    ostree(&["commit", &arg, "-b", "main", "-s", "x", TS, s(&tree)]);
    for sub in ["/etc", "/unicode/日本語", "/bin/exe"] {
        let (a, b) = (
            t.join(format!("o{}", sub.replace('/', "_"))),
            t.join(format!("x{}", sub.replace('/', "_"))),
        );
        let sp = format!("--subpath={sub}");
        ostree(&["checkout", &arg, &sp, "main", s(&a)]);
        ox(&["checkout", &arg, &sp, "main", s(&b)]);
        let strip = |m: std::collections::BTreeMap<String, Entry>| {
            m.into_iter()
                .filter(|(k, _)| !k.is_empty())
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let (sa, sb) = (strip(snapshot(&a)), strip(snapshot(&b)));
        assert!(
            sa == sb,
            "--subpath={sub} differs:\n{}",
            snapshot_diff(&sa, &sb)
        );
    }
    let (code, err) = ox_fail(&[
        "checkout",
        &arg,
        "--subpath=/nope",
        "main",
        s(&t.join("nope")),
    ]);
    assert_eq!(code, 3, "{err}");
}

/// bare-user-only refuses setuid, setgid, sticky and world-writable content with ostree's
/// message. A commit canonicalises modes first (0755 at most), as ostree's does, so both
/// tools give the same commit; pull-local of such content from a bare repo is refused by
/// both, naming the same object and bits.
#[test]
fn bare_user_only_refuses_setuid_like_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("suid"), b"setuid\n", 0o4755);
    write(&tree.join("ww"), b"world-writable\n", 0o666);
    let (ro, rx) = (t.join("ro"), t.join("rx"));
    let (ro_arg, rx_arg) = (format!("--repo={}", s(&ro)), format!("--repo={}", s(&rx)));
    ostree(&["init", &ro_arg, "--mode=bare-user-only"]);
    ox(&["init", &rx_arg, "--mode=bare-user-only"]);
    let co = ostree(&["commit", &ro_arg, "-b", "main", TS, s(&tree)]);
    let cx = ox(&["commit", &rx_arg, "-b", "main", TS, s(&tree)]);
    assert_eq!(co, cx);
    assert!(ox(&["ls", &rx_arg, "main", "/suid"]).starts_with("-00755 "));
    // A bare source keeps the setuid bit; pulling it into bare-user-only fails in both.
    let bare = t.join("bare");
    let bare_arg = format!("--repo={}", s(&bare));
    ostree(&["init", &bare_arg, "--mode=bare"]);
    write(&tree.join("ww"), b"world-writable\n", 0o644);
    ostree(&["commit", &bare_arg, "-b", "main", TS, s(&tree)]);
    let ro2 = t.join("ro2");
    ostree(&[
        "init",
        &format!("--repo={}", s(&ro2)),
        "--mode=bare-user-only",
    ]);
    let o = run_raw(
        Path::new("ostree"),
        &[
            "pull-local",
            &format!("--repo={}", s(&ro2)),
            s(&bare),
            "main",
        ],
    );
    assert!(!o.status.success());
    let oerr = String::from_utf8_lossy(&o.stderr);
    let want = oerr
        .split("Content object ")
        .nth(1)
        .map(|rest| format!("Content object {}", rest.trim()))
        .unwrap_or_else(|| panic!("unexpected ostree message: {oerr}"));
    let rx2 = t.join("rx2");
    let rx2_arg = format!("--repo={}", s(&rx2));
    ox(&["init", &rx2_arg, "--mode=bare-user-only"]);
    let (_, err) = ox_fail(&["pull-local", &rx2_arg, s(&bare), "main"]);
    assert!(err.contains(&want), "oxtree: {err}\nostree: {oerr}");
    assert!(!rx2.join("refs/heads/main").exists());
    ox(&["fsck", &rx2_arg]);
}

/// `checkout -U` never hardlinks a setuid/setgid object (one an older version stored in a
/// bare-user-only repo): it is copied, without those bits; other files stay hardlinked.
#[test]
fn user_checkout_never_hardlinks_a_setuid_object() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("suid"), b"setuid\n", 0o755);
    write(&tree.join("plain"), b"plain\n", 0o755);
    let rx = t.join("rx");
    let rx_arg = format!("--repo={}", s(&rx));
    ox(&["init", &rx_arg, "--mode=bare-user-only"]);
    ox(&["commit", &rx_arg, "-b", "main", TS, s(&tree)]);
    let line = ox(&["ls", &rx_arg, "-C", "main", "/suid"]);
    let csum = line.split_whitespace().nth(4).expect("checksum");
    let obj = rx.join(format!("objects/{}/{}.file", &csum[..2], &csum[2..]));
    std::fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
        .expect("chmod");
    let dest = t.join("co");
    ox(&["checkout", &rx_arg, "-U", "main", s(&dest)]);
    let st = std::fs::metadata(dest.join("suid")).expect("stat");
    assert_ne!(
        st.ino(),
        std::fs::metadata(&obj).expect("stat").ino(),
        "hardlinked"
    );
    assert_eq!(st.mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read(dest.join("suid")).expect("read"), b"setuid\n");
    assert!(std::fs::metadata(dest.join("plain")).expect("stat").nlink() > 1);
    let (_, err) = ox_fail(&[
        "checkout",
        &rx_arg,
        "-U",
        "--require-hardlinks",
        "main",
        s(&t.join("co2")),
    ]);
    assert!(err.contains(csum) && err.contains("setuid"), "{err}");
}

/// A `.tmp-XXXXXX` file beside the refs (what an atomic ref write killed between its write
/// and its rename leaves) is not a ref: `refs` does not list it, `prune --refs-only` does not
/// keep what it names, `summary -u` does not publish it, and real ostree reads our summary.
#[test]
fn temp_files_in_refs_are_not_refs() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let repo = t.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, "--mode=archive"]);
    let main = ox(&["commit", &arg, "-b", "main", TS, s(&tree)]);
    write(&tree.join("b"), b"only in the orphan\n", 0o644);
    let orphan = ox(&["commit", &arg, "--orphan", TS, s(&tree)]);
    write(
        &repo.join("refs/heads/.tmp-abc123"),
        format!("{orphan}\n").as_bytes(),
        0o600,
    );
    write(
        &repo.join("refs/remotes/origin/.tmp-def456"),
        format!("{orphan}\n").as_bytes(),
        0o600,
    );
    assert_eq!(ox(&["refs", &arg]), "main");
    ox(&["summary", &arg, "-u"]);
    let view = ostree(&["summary", &arg, "--view"]);
    assert!(view.contains(&main) && !view.contains(&orphan), "{view}");
    assert!(!view.contains(".tmp"), "{view}");
    assert!(!ox(&["summary", &arg, "--view"]).contains(".tmp"));
    ox(&["prune", &arg, "--refs-only"]);
    let c = repo.join(format!("objects/{}/{}.commit", &orphan[..2], &orphan[2..]));
    assert!(!c.exists(), "the temp file pinned the orphan commit");
    ox(&["fsck", &arg]);
    ostree(&["fsck", &arg]);
}
