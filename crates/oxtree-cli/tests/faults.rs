//! Faults: corrupt, truncated, missing and malformed objects give clear errors naming the
//! object (never a panic), fsck exits non-zero, and a commit that cannot read a file fails
//! naming it without writing a ref.

mod common;
use common::*;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: TestDir,
    repo: PathBuf,
    arg: String,
    commit: String,
}

fn fixture(mode: &str) -> Fixture {
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    build_tree(&tree, false);
    let repo = tmp.path().join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, &format!("--mode={mode}")]);
    let commit = ox(&[
        "commit",
        &arg,
        "-b",
        "main",
        "-s",
        "x",
        "--timestamp=2020-01-01T00:00:00Z",
        s(&tree),
    ]);
    Fixture {
        _tmp: tmp,
        repo,
        arg,
        commit,
    }
}

/// The object path of `/etc/conf`'s content in the fixture.
fn file_object(f: &Fixture, path: &str) -> (String, PathBuf) {
    let line = ox(&["ls", &f.arg, "-C", "main", path]);
    let csum = line
        .split_whitespace()
        .nth(4)
        .expect("checksum column")
        .to_string();
    let ext = if std::fs::read_to_string(f.repo.join("config"))
        .expect("config")
        .contains("archive")
    {
        "filez"
    } else {
        "file"
    };
    let p = f
        .repo
        .join(format!("objects/{}/{}.{ext}", &csum[..2], &csum[2..]));
    assert!(p.exists(), "{} missing", p.display());
    (csum, p)
}

fn flip_byte(p: &Path, at_end: bool) {
    let mut b = std::fs::read(p).expect("read");
    let i = if at_end { b.len() - 2 } else { b.len() / 2 };
    b[i] ^= 0x01;
    std::fs::write(p, b).expect("write");
}

#[test]
fn corrupt_file_object_is_named_by_fsck() {
    for mode in ["archive", "bare-user", "bare"] {
        let f = fixture(mode);
        ox(&["fsck", &f.arg]);
        let (csum, p) = file_object(&f, "/etc/conf");
        flip_byte(&p, true);
        let (code, err) = ox_fail(&["fsck", &f.arg]);
        assert_eq!(code, 1, "{mode}");
        assert!(
            err.contains(&csum),
            "{mode}: fsck did not name {csum}:\n{err}"
        );
        // --delete removes it; it is then reported as missing and the commit is partial.
        let (_, err) = ox_fail(&["fsck", &f.arg, "--delete"]);
        assert!(
            err.contains("deleted corrupt object") && !p.exists(),
            "{mode}: {err}"
        );
        let (_, err) = ox_fail(&["fsck", &f.arg]);
        assert!(
            err.contains(&csum) && err.contains("missing"),
            "{mode}: {err}"
        );
    }
}

#[test]
fn corrupt_metadata_object_is_named() {
    let f = fixture("archive");
    let line = ox(&["ls", &f.arg, "-dC", "main", "/etc"]);
    let tree_csum = line
        .split_whitespace()
        .nth(4)
        .expect("dirtree column")
        .to_string();
    let p = f.repo.join(format!(
        "objects/{}/{}.dirtree",
        &tree_csum[..2],
        &tree_csum[2..]
    ));
    flip_byte(&p, false);
    let (_, err) = ox_fail(&["fsck", &f.arg]);
    assert!(
        err.contains(&tree_csum),
        "fsck did not name the dirtree:\n{err}"
    );
    let (_, err) = ox_fail(&["ls", &f.arg, "-R", "main"]);
    assert!(
        err.contains(&tree_csum) && err.to_lowercase().contains("corrupted"),
        "{err}"
    );
    let (_, err) = ox_fail(&["checkout", &f.arg, "main", s(&f.repo.join("../co"))]);
    assert!(err.contains(&tree_csum), "{err}");
}

#[test]
fn truncated_object_gives_clear_error() {
    let f = fixture("archive");
    let (csum, p) = file_object(&f, "/bin/exe");
    let b = std::fs::read(&p).expect("read");
    std::fs::write(&p, &b[..b.len() / 2]).expect("write");
    let (_, err) = ox_fail(&["fsck", &f.arg]);
    assert!(err.contains(&csum), "{err}");
    let (_, err) = ox_fail(&["cat", &f.arg, "main", "/bin/exe"]);
    assert!(err.contains("bin/exe") || err.contains(&csum), "{err}");
    // Truncated to a few bytes: the header itself is cut.
    std::fs::write(&p, &b[..3]).expect("write");
    let (_, err) = ox_fail(&["cat", &f.arg, "main", "/bin/exe"]);
    assert!(err.contains(&csum) && err.contains("truncated"), "{err}");
    // And a truncated commit.
    let cp = f.repo.join(format!(
        "objects/{}/{}.commit",
        &f.commit[..2],
        &f.commit[2..]
    ));
    let c = std::fs::read(&cp).expect("read");
    std::fs::write(&cp, &c[..c.len() - 5]).expect("write");
    let (_, err) = ox_fail(&["log", &f.arg, "main"]);
    assert!(err.contains(&f.commit), "{err}");
}

#[test]
fn missing_object_is_reported_and_commit_marked_partial() {
    let f = fixture("bare-user");
    let (csum, p) = file_object(&f, "/etc/conf");
    std::fs::remove_file(&p).expect("rm");
    let (code, err) = ox_fail(&["fsck", &f.arg]);
    assert_eq!(code, 1);
    assert!(err.contains(&csum) && err.contains("missing"), "{err}");
    assert!(f
        .repo
        .join(format!("state/{}.commitpartial", f.commit))
        .exists());
    let (code, err) = ox_fail(&["cat", &f.arg, "main", "/etc/conf"]);
    assert_eq!(code, 3, "missing object exit code");
    assert!(err.contains(&csum), "{err}");
    let (code, _) = ox_fail(&["rev-parse", &f.arg, "no-such-ref"]);
    assert_eq!(code, 3);
}

#[test]
fn malformed_gvariant_is_an_error_not_a_panic() {
    let f = fixture("archive");
    // Detached metadata is not hashed: garbage there must be caught by the decoder.
    let cm = f.repo.join(format!(
        "objects/{}/{}.commitmeta",
        &f.commit[..2],
        &f.commit[2..]
    ));
    std::fs::write(&cm, b"\xff\xff\xff\xff\x07garbage\x99").expect("write");
    let (_, err) = ox_fail(&["fsck", &f.arg]);
    assert!(
        err.contains(&f.commit) && err.contains("commitmeta"),
        "{err}"
    );
    // A dirtree whose bytes hash to its name but whose names are hostile.
    for bad in ["..", "a/b", ""] {
        let repo = oxtree::Repo::open(&f.repo).expect("open");
        let t = oxtree::DirTree {
            files: vec![(bad.to_string(), oxtree::Checksum::default())],
            dirs: vec![],
        };
        let bytes = t.encode();
        let txn = repo.begin().expect("txn");
        let c = txn
            .write_metadata(oxtree::ObjectType::DirTree, &bytes)
            .expect("write");
        txn.commit().expect("commit");
        let err = repo
            .load_dirtree(&c)
            .expect_err("hostile dirtree must be rejected");
        assert!(err.to_string().contains(&c.to_hex()), "{err}");
    }
    // A config that is not a keyfile.
    std::fs::write(f.repo.join("config"), "not a keyfile\n").expect("write");
    let (_, err) = ox_fail(&["refs", &f.arg]);
    assert!(err.contains("config") && err.contains("line 1"), "{err}");
}

#[test]
fn unreadable_file_fails_commit_naming_it() {
    let tmp = tempdir();
    let t = tmp.path();
    std::fs::set_permissions(t, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let tree = t.join("tree");
    write(&tree.join("ok"), b"fine\n", 0o644);
    write(&tree.join("secret/unreadable"), b"no\n", 0o600);
    let repo = t.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, "--mode=bare-user-only"]);
    run_ok(Path::new("chown"), &["-R", "65534:65534", s(&repo)]);
    // Root reads everything, so run the commit as `nobody`.
    let out = run_raw(
        Path::new("setpriv"),
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            s(&oxtree_bin()),
            "commit",
            &arg,
            "-b",
            "main",
            s(&tree),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "commit of an unreadable file succeeded"
    );
    assert!(
        err.contains("secret/unreadable"),
        "error does not name the file:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!repo.join("refs/heads/main").exists(), "a ref was written");
    ox(&["fsck", &arg]);
}

#[test]
fn version_and_help() {
    let v = ox(&["--version"]);
    assert!(v.contains("Version:") && v.contains("Features:"), "{v}");
    // ostree's first key and the release oxtree follows, as scripts read them; then oxtree's.
    let ostree_v = std::process::Command::new("ostree")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .take(2)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    if !ostree_v.is_empty() {
        assert!(v.starts_with(&ostree_v), "{v}\nvs ostree's\n{ostree_v}");
    }
    assert!(v.contains("\noxtree:\n Version: '"), "{v}");
    for cmd in [
        "init",
        "commit",
        "checkout",
        "refs",
        "rev-parse",
        "log",
        "show",
        "ls",
        "cat",
        "diff",
        "fsck",
        "prune",
        "pull-local",
    ] {
        let h = ox(&[cmd, "--help"]);
        assert!(h.contains("--repo"), "{cmd} --help lacks --repo:\n{h}");
    }
    let (code, _) = ox_fail(&["commit", "--no-such-flag"]);
    assert_eq!(code, 2);
}

/// `kill -9` at several points of a commit: the repo stays fsck-clean (for oxtree and
/// ostree), no ref points at a missing commit, and the next commit succeeds and removes the
/// killed one's staging debris.
#[test]
fn killed_commit_leaves_a_clean_repo() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, true);
    for i in 0..300 {
        write(
            &tree.join(format!("more/{i:03}")),
            format!("{i}\n").repeat(200).as_bytes(),
            0o644,
        );
    }
    for mode in ["archive", "bare-user"] {
        let repo = t.join(format!("repo-{mode}"));
        let arg = format!("--repo={}", s(&repo));
        ox(&["init", &arg, &format!("--mode={mode}")]);
        for delay_ms in [20u64, 80, 200, 500] {
            let mut child = std::process::Command::new(oxtree_bin())
                .args(["commit", &arg, "-b", "main", "-s", "killed", s(&tree)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            // Whatever the ref says (nothing, or a finished commit), the repo is consistent.
            ox(&["fsck", &arg]);
            ostree(&["fsck", &arg]);
            if let Ok(r) = std::fs::read_to_string(repo.join("refs/heads/main")) {
                ox(&["ls", &arg, r.trim()]);
            }
        }
        let c = ox(&["commit", &arg, "-b", "main", "-s", "after kills", s(&tree)]);
        assert_eq!(ox(&["rev-parse", &arg, "main"]), c);
        ox(&["fsck", &arg]);
        ostree(&["fsck", &arg]);
        let debris: Vec<_> = std::fs::read_dir(repo.join("tmp"))
            .expect("tmp")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
            .collect();
        assert!(
            debris.is_empty(),
            "staging debris left after a successful commit: {debris:?}"
        );
    }
}

/// Prune waits for the exclusive lock that a writer's shared lock blocks, and says so.
#[test]
fn prune_respects_the_repo_lock() {
    let f = fixture("archive");
    let mut kf = std::fs::read_to_string(f.repo.join("config")).expect("config");
    kf.push_str("lock-timeout-secs=1\n");
    std::fs::write(f.repo.join("config"), kf).expect("config");
    let repo = oxtree::Repo::open(&f.repo).expect("open");
    let txn = repo.begin().expect("begin holds a shared lock");
    let (_, err) = ox_fail(&["prune", &f.arg, "--refs-only"]);
    assert!(err.contains("locked by another process"), "{err}");
    drop(txn);
    ox(&["prune", &f.arg, "--refs-only"]);
}

/// A full disk: commit fails with a clear ENOSPC error and a hint, writes no ref, and the
/// repository stays fsck-clean. Needs a small tmpfs (tests run as root).
#[test]
fn full_disk_fails_cleanly() {
    let tmp = tempdir();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2M", "tmpfs", s(&mnt)])
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "could not mount a 2 MiB tmpfs (tests need root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let tree = tmp.path().join("tree");
    for i in 0..8 {
        // Incompressible-ish content, 512 KiB per file: 4 MiB in all.
        let data: Vec<u8> = (0..512 * 1024u32)
            .map(|j| (j.wrapping_mul(2654435761).wrapping_add(i) >> 13) as u8)
            .collect();
        write(&tree.join(format!("f{i}")), &data, 0o644);
    }
    let repo = mnt.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, "--mode=bare-user-only"]);
    // The free-space reserve (min_free_space_is_kept_like_ostree) would refuse first.
    let mut kf = std::fs::read_to_string(repo.join("config")).expect("config");
    kf.push_str("min-free-space-percent=0\n");
    std::fs::write(repo.join("config"), kf).expect("config");
    let (code, err) = ox_fail(&["commit", &arg, "-b", "main", "-s", "too big", s(&tree)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("No space left on device") && err.contains("hint:"),
        "{err}"
    );
    assert!(!repo.join("refs/heads/main").exists());
    ox(&["fsck", &arg]);
    // Space freed: a smaller commit now works, and the failed one's debris is gone.
    std::fs::remove_dir_all(&tree).expect("rm");
    write(&tree.join("small"), b"fits\n", 0o644);
    ox(&["commit", &arg, "-b", "main", "-s", "fits", s(&tree)]);
    ox(&["fsck", &arg]);
}

/// Files under `objects/` and `tmp/` that must never be there after refused content: setuid
/// or setgid files, files owned by someone else (tests run as root), and objects that do
/// not verify (checked by fsck).
fn setid_or_foreign(repo: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![repo.join("objects"), repo.join("tmp")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = std::fs::symlink_metadata(e.path()).expect("lstat");
            if m.is_dir() {
                stack.push(e.path());
            } else if !m.file_type().is_symlink() && (m.mode() & 0o6000 != 0 || m.uid() != 0) {
                out.push(format!(
                    "{} mode {:o} uid {}",
                    e.path().display(),
                    m.mode(),
                    m.uid()
                ));
            }
        }
    }
    out
}

/// A source repo whose setuid object holds other bytes than its name says: pull-local
/// refuses it naming the object, and the destination (bare, i.e. with real owners and
/// setuid bits, and bare-user-only) holds no setuid or foreign-owned file anywhere in
/// objects/ or tmp/, and stays fsck-clean.
#[test]
fn pull_local_of_a_corrupt_setuid_object_stores_nothing() {
    let f = fixture("bare");
    let (csum, p) = file_object(&f, "/bin/suid");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&p).expect("stat").mode() & 0o7777, 0o4755);
    // Same size, other bytes; root writing keeps the setuid bit.
    std::fs::write(&p, b"evil  binary\n\n").expect("write");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
        .expect("chmod");
    for mode in ["bare", "bare-user-only"] {
        let dst = f.repo.join(format!("../dst-{mode}"));
        let darg = format!("--repo={}", s(&dst));
        ox(&["init", &darg, &format!("--mode={mode}")]);
        let (_, err) = ox_fail(&["pull-local", &darg, s(&f.repo), "main"]);
        // bare-user-only may refuse another setuid/setgid object of the tree first.
        assert!(
            err.contains(&csum) || (mode == "bare-user-only" && err.contains("invalid mode")),
            "{mode}: {err}"
        );
        let bad = setid_or_foreign(&dst);
        assert!(bad.is_empty(), "{mode}: {bad:#?}");
        assert!(!dst.join("refs/heads/main").exists(), "{mode}: ref written");
        ox(&["fsck", &darg]);
    }
}

/// `prune --refs-only` running over and over while commits and pull-locals move refs: a
/// ref never names a commit that is not there (refs move inside the transaction, under the
/// repo lock that prune takes exclusively), and the repo is fsck-clean at the end, for
/// both tools. Bounded: about 10 s.
#[test]
fn concurrent_prune_never_leaves_a_dangling_ref() {
    require_ostree();
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempdir();
    let t = tmp.path().to_path_buf();
    let src = t.join("src");
    let sarg = format!("--repo={}", s(&src));
    ox(&["init", &sarg, "--mode=archive"]);
    for k in 0..4 {
        let tree = t.join(format!("stree{k}"));
        for i in 0..40 {
            write(
                &tree.join(format!("f{i}")),
                format!("source {k} file {i}\n").as_bytes(),
                0o644,
            );
        }
        ox(&["commit", &sarg, "-b", &format!("s{k}"), s(&tree)]);
    }
    let dst = t.join("dst");
    let darg = format!("--repo={}", s(&dst));
    ox(&["init", &darg, "--mode=archive"]);
    let commit_of = |r: &str| -> Option<String> {
        std::fs::read_to_string(dst.join("refs/heads").join(r))
            .ok()
            .map(|c| c.trim().to_string())
    };
    let present = |c: &str| {
        dst.join(format!("objects/{}/{}.commit", &c[..2], &c[2..]))
            .exists()
    };
    let stop = AtomicBool::new(false);
    // Stops the pruner when a worker ends, also by a failed assertion.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    // Pulls over HTTP too (refs/remotes/origin/…).
    let server = Server::start(&src);
    ox(&[
        "remote",
        "add",
        &darg,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    let remote_commit_of = |r: &str| -> Option<String> {
        std::fs::read_to_string(dst.join("refs/remotes/origin").join(r))
            .ok()
            .map(|c| c.trim().to_string())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (commits, pulls, prunes) = std::thread::scope(|sc| {
        let pruner = sc.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                ox(&["prune", &darg, "--refs-only"]);
                n += 1;
            }
            n
        });
        let committer = sc.spawn(|| {
            let _stop = StopOnDrop(&stop);
            let tree = t.join("ctree");
            for i in 0..30 {
                write(&tree.join("shared"), b"in every commit\n", 0o644);
                write(
                    &tree.join("changing"),
                    format!("round {i}\n").as_bytes(),
                    0o644,
                );
                // (Not a hex name: `rev-parse c` would look for commits starting with c.)
                let c = ox(&["commit", &darg, "-b", "cmt", "--parent=none", s(&tree)]);
                assert_eq!(commit_of("cmt").as_deref(), Some(c.as_str()));
                assert!(present(&c), "round {i}: ref c names missing commit {c}");
                if std::time::Instant::now() > deadline {
                    return i + 1;
                }
            }
            30
        });
        let puller = sc.spawn(|| {
            let _stop = StopOnDrop(&stop);
            for i in 0..40 {
                let r = format!("s{}", i % 4);
                if commit_of(&r).is_some() {
                    ox(&["refs", &darg, "--delete", &r]);
                }
                ox(&["pull-local", &darg, s(&src), &r]);
                let c = commit_of(&r).expect("pulled ref");
                assert!(present(&c), "round {i}: ref {r} names missing commit {c}");
                if std::time::Instant::now() > deadline {
                    return i + 1;
                }
            }
            40
        });
        let http_puller = sc.spawn(|| {
            let _stop = StopOnDrop(&stop);
            for i in 0..40 {
                let r = format!("s{}", i % 4);
                if remote_commit_of(&r).is_some() {
                    ox(&["refs", &darg, "--delete", &format!("origin:{r}")]);
                }
                ox(&["pull", &darg, "origin", &r]);
                let c = remote_commit_of(&r).expect("pulled ref");
                assert!(
                    present(&c),
                    "round {i}: ref origin:{r} names missing commit {c}"
                );
                if std::time::Instant::now() > deadline {
                    return i + 1;
                }
            }
            40
        });
        let commits = committer.join().expect("committer");
        let pulls = puller.join().expect("puller") + http_puller.join().expect("http puller");
        stop.store(true, Ordering::Relaxed);
        (commits, pulls, pruner.join().expect("pruner"))
    });
    assert!(commits > 0 && pulls > 0 && prunes > 0);
    for (r, c) in ox(&["refs", &darg])
        .lines()
        .map(|r| (r.to_string(), ox(&["rev-parse", &darg, r])))
    {
        assert!(present(&c), "ref {r} names missing commit {c}");
    }
    ox(&["fsck", &darg]);
    ostree(&["fsck", &darg]);
}

/// `tmp/` expires as ostree's does (`tmp-expiry-secs`, default one day): a transaction
/// removes old partial downloads, tar imports and temp files, and dead staging dirs; it
/// keeps recent ones, anything whose lock is held (live staging and tar-import dirs),
/// and what is not ours (ostree's staging dirs, its cache).
#[test]
fn tmp_expires_but_live_dirs_stay() {
    let f = fixture("bare-user");
    let tmp = f.repo.join("tmp");
    let mk_dir = |n: &str| {
        let d = tmp.join(n);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("content"), b"x").expect("write");
        d
    };
    let mk_file = |n: &str| {
        let p = tmp.join(n);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"partial").expect("write");
        p
    };
    let age = |p: &Path, when: &str| run_ok(Path::new("touch"), &["-h", "-d", when, s(p)]);
    let lock = |p: &Path| {
        let d = std::fs::File::open(p).expect("open");
        rustix::fs::flock(&d, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("flock");
        d
    };
    let old_partial = mk_file("pull-partial/0123.filez");
    let new_partial = mk_file("pull-partial/4567.filez");
    let old_tmpfile = mk_file(".tmp-Ab12Cd");
    let dead_tar = mk_dir("tar-import-dead");
    let live_tar = mk_dir("tar-import-live");
    let dead_staging = mk_dir("oxtree-staging-00000000-0000-0000-0000-000000000000-dead");
    let live_staging = mk_dir("oxtree-staging-00000000-0000-0000-0000-000000000000-live");
    // ostree's: dead (its lock file free) or live (its lock file held).
    let ostree_dead = mk_dir("staging-00000000-0000-0000-0000-000000000000-abc");
    let ostree_live = mk_dir("staging-00000000-0000-0000-0000-000000000000-def");
    let ostree_live_lock = mk_file("staging-00000000-0000-0000-0000-000000000000-def-lock");
    let stray_lock = mk_file("staging-00000000-0000-0000-0000-000000000000-gone-lock");
    for p in [
        &old_partial,
        &old_tmpfile,
        &dead_tar,
        &live_tar,
        &dead_staging,
        &live_staging,
        &ostree_dead,
        &ostree_live,
    ] {
        age(p, "3 days ago");
    }
    age(&new_partial, "1 hour ago");
    // ostree (libglnx) holds its staging lock as an open-file-description lock.
    let ofd_lock = |p: &Path| {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .expect("open");
        // SAFETY: a zeroed flock is a valid whole-file description; `f` is open.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: a valid fd and a pointer to an initialised flock outliving the call.
        let r = unsafe {
            libc::fcntl(
                f.as_raw_fd(),
                libc::F_OFD_SETLK,
                &mut fl as *mut libc::flock,
            )
        };
        assert_eq!(r, 0, "F_OFD_SETLK");
        f
    };
    let _held = (
        lock(&live_tar),
        lock(&live_staging),
        ofd_lock(&ostree_live_lock),
    );
    let tree = f.repo.join("../tree");
    ox(&["commit", &f.arg, "-b", "other", s(&tree)]);
    for gone in [
        &old_partial,
        &old_tmpfile,
        &dead_tar,
        &dead_staging,
        &ostree_dead,
        &stray_lock,
    ] {
        assert!(!gone.exists(), "{} not expired", gone.display());
    }
    for kept in [
        &new_partial,
        &live_tar,
        &live_staging,
        &ostree_live,
        &ostree_live_lock,
    ] {
        assert!(kept.exists(), "{} removed", kept.display());
    }
    // A shorter tmp-expiry-secs expires the hour-old download too.
    let mut kf = std::fs::read_to_string(f.repo.join("config")).expect("config");
    kf.push_str("tmp-expiry-secs=600\n");
    std::fs::write(f.repo.join("config"), kf).expect("config");
    ox(&["commit", &f.arg, "-b", "other", s(&tree)]);
    assert!(!new_partial.exists());
    assert!(live_tar.exists() && live_staging.exists());
    ox(&["fsck", &f.arg]);
}

/// A stray `.file` in an archive repo (alone, or beside the `.filez` of the same object)
/// is not an object there, as in ostree: prune and fsck neither trip over it nor act on it.
#[test]
fn stray_file_objects_in_an_archive_repo_do_not_break_prune() {
    let f = fixture("archive");
    let tree = f.repo.join("../tree");
    write(&tree.join("orphan-only"), b"orphan\n", 0o644);
    ox(&["commit", &f.arg, "--orphan", s(&tree)]);
    let (_, filez) = file_object(&f, "/etc/conf");
    let beside = filez.with_extension("file");
    std::fs::write(&beside, b"stray").expect("write");
    let alone = f.repo.join(format!("objects/ab/{}.file", "c".repeat(62)));
    write(&alone, b"stray", 0o644);
    ox(&["fsck", &f.arg]);
    ox(&["prune", &f.arg, "--refs-only"]);
    ox(&["prune", &f.arg]);
    assert!(beside.exists() && alone.exists() && filez.exists());
    ox(&["fsck", &f.arg]);
}

/// `min-free-space-percent` (default 3) and `min-free-space-size` are kept as ostree keeps
/// them, with its messages: a commit that would eat into the reserve fails before writing,
/// exit non-zero, no ref, fsck-clean; one that fits passes; invalid values are refused
/// when the repo is opened. Each case is run by real ostree on the same 4 MiB tmpfs first.
#[test]
fn min_free_space_is_kept_like_ostree() {
    require_ostree();
    let tmp = tempdir();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4M", "tmpfs", s(&mnt)])
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "could not mount a tmpfs (tests need root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let tree = |size: usize| {
        let d = tmp.path().join(format!("tree-{size}"));
        // Incompressible: archive repos store about this much too.
        let data: Vec<u8> = (0..size as u32)
            .map(|j| (j.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        write(&d.join("big"), &data, 0o644);
        d
    };
    let repo = mnt.join("repo");
    let arg = format!("--repo={}", s(&repo));
    // (mode, extra config, file size, expected: Ok or the message after ostree's prefix)
    let cases: [(&str, &str, usize, Option<&str>); 5] = [
        ("bare-user-only", "", 4_100_000, Some("min-free-space-percent '3%' would be exceeded, at least 4.1 MB requested")),
        ("archive", "min-free-space-size=2MB\n", 3_000_000, Some("min-free-space-size 2MB would be exceeded, at least 3.0 MB requested")),
        ("bare-user-only", "", 1_000_000, None),
        ("archive", "min-free-space-size=2mb\n", 1000, Some("Invalid min-free-space-size '2mb': It should be of the format '123MB', '123GB' or '123TB'")),
        ("archive", "min-free-space-percent=100\n", 1000, Some("Invalid min-free-space-percent '100'")),
    ];
    for (mode, extra, size, want) in cases {
        let t = tree(size);
        for real_ostree in [true, false] {
            let _ = std::fs::remove_dir_all(&repo);
            if real_ostree {
                ostree(&["init", &arg, &format!("--mode={mode}")]);
            } else {
                ox(&["init", &arg, &format!("--mode={mode}")]);
            }
            let mut kf = std::fs::read_to_string(repo.join("config")).expect("config");
            kf.push_str(extra);
            std::fs::write(repo.join("config"), kf).expect("config");
            let args = ["commit", &arg, "-b", "main", s(&t)];
            let o = if real_ostree {
                run_raw(Path::new("ostree"), &args)
            } else {
                run_raw(&oxtree_bin(), &args)
            };
            let who = if real_ostree { "ostree" } else { "oxtree" };
            // GLib's g_format_size puts a no-break space between number and unit.
            let err = String::from_utf8_lossy(&o.stderr).replace('\u{a0}', " ");
            match want {
                None => assert!(o.status.success(), "{who} {mode} {extra}: {err}"),
                Some(msg) => {
                    assert!(
                        !o.status.success(),
                        "{who} {mode} {extra}: commit succeeded"
                    );
                    assert!(err.contains(msg), "{who} {mode} {extra}: {err}");
                    assert!(!repo.join("refs/heads/main").exists());
                    if !msg.starts_with("Invalid") {
                        ox(&["fsck", &arg]);
                    }
                }
            }
        }
    }
}
