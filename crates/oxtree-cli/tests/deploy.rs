//! `admin deploy` against real `ostree admin deploy` on identical inputs: the same boot
//! entries and layout, each tool reads the other's sysroot, the /etc merge gives the same
//! result, and a deploy that fails at any step leaves the previous boot configuration.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Pair {
    _tmp: TestDir,
    tree: PathBuf,
    ostree: PathBuf,
    oxtree: PathBuf,
}

fn pair() -> Pair {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path().to_path_buf();
    let tree = t.join("tree");
    os_tree(&tree);
    let (a, b) = (t.join("sr-ostree"), t.join("sr-oxtree"));
    for (tool_is_ox, sr) in [(false, &a), (true, &b)] {
        std::fs::create_dir_all(sr).expect("mkdir");
        let run = |args: &[&str]| if tool_is_ox { ox(args) } else { ostree(args) };
        run(&["admin", "init-fs", s(sr)]);
        run(&[
            "admin",
            "os-init",
            &format!("--sysroot={}", s(sr)),
            "testos",
        ]);
    }
    Pair {
        _tmp: tmp,
        tree,
        ostree: a,
        oxtree: b,
    }
}

fn commit(p: &Pair, subject: &str, version: &str) -> String {
    let mut c = String::new();
    for sr in [&p.ostree, &p.oxtree] {
        c = ostree(&[
            "commit",
            &format!("--repo={}", s(&sr.join("ostree/repo"))),
            "-b",
            "testos/main",
            "-s",
            subject,
            "--timestamp=2020-01-01T00:00:00Z",
            &format!("--add-metadata-string=version={version}"),
            s(&p.tree),
        ]);
    }
    c
}

fn deploy_both(p: &Pair, extra: &[&str]) {
    let mut a = vec!["admin", "deploy"];
    a.extend_from_slice(extra);
    let sa = format!("--sysroot={}", s(&p.ostree));
    let sb = format!("--sysroot={}", s(&p.oxtree));
    let mut ao = a.clone();
    ao.extend_from_slice(&[&sa, "--os=testos", "testos/main"]);
    ostree(&ao);
    let mut ax = a.clone();
    ax.extend_from_slice(&[&sb, "--os=testos", "testos/main"]);
    ox(&ax);
}

/// Text of every file under boot/ (symlinks as "-> target").
fn boot_files(sr: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![sr.join("boot")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readdir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(sr)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(&p).expect("readlink").display()),
                ));
            } else if m.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&p).expect("read")).into_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Tests that inject failures need a binary built with the `failpoints` feature.
fn require_failpoints() {
    if !cfg!(feature = "failpoints") {
        panic!("this test injects failures: run it with `--features oxtree-cli/failpoints` (scripts/test.sh does)");
    }
}

fn deployment_dir(sr: &Path, index: usize) -> PathBuf {
    let d = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments");
    sr.join("ostree/deploy")
        .join(&d[index].stateroot)
        .join("deploy")
        .join(d[index].dirname())
}

#[test]
fn deploy_matches_ostree() {
    let p = pair();
    let c1 = commit(&p, "v1", "1.0");
    deploy_both(&p, &["--karg=root=LABEL=root", "--karg=quiet"]);
    assert_eq!(
        boot_files(&p.oxtree),
        boot_files(&p.ostree),
        "boot entries or kernels differ"
    );
    let sa = format!("--sysroot={}", s(&p.oxtree));
    assert_eq!(
        ostree(&["admin", "status", &sa]),
        ostree(&["admin", "status", &format!("--sysroot={}", s(&p.ostree))])
    );
    let d1 = deployment_dir(&p.oxtree, 0);
    assert!(d1.ends_with(format!("{c1}.0")));
    assert_eq!(
        std::fs::read(d1.join("etc/modified")).expect("etc copied"),
        b"m\n"
    );
    // /var is the stateroot's: both tools leave it in the same state (os-init already
    // populated it, so the tree's /var is not copied up).
    let var = |sr: &Path| {
        let mut v: Vec<(String, Entry)> = snapshot(&sr.join("ostree/deploy/testos/var"))
            .into_iter()
            .collect();
        v.retain(|(k, _)| !k.is_empty());
        v
    };
    assert_eq!(var(&p.oxtree), var(&p.ostree));
    // Second deployment: kargs inherited, v1 kept as rollback, entries still identical.
    write(&p.tree.join("usr/bin/new-in-v2"), b"v2\n", 0o755);
    let c2 = commit(&p, "v2", "2.0");
    deploy_both(&p, &[]);
    assert_eq!(boot_files(&p.oxtree), boot_files(&p.ostree));
    assert_eq!(
        ostree(&["admin", "status", &sa]),
        ox(&["admin", "status", &sa])
    );
    let d = oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deployments()
        .expect("deployments");
    assert_eq!(
        (d[0].checksum.to_hex(), d[1].checksum.to_hex()),
        (c2.clone(), c1.clone())
    );
    // Deployments share storage with the repo and each other by hardlinks.
    let ino = |dir: &Path| {
        std::fs::metadata(dir.join("usr/bin/hello"))
            .expect("stat")
            .ino()
    };
    assert_eq!(
        ino(&deployment_dir(&p.oxtree, 0)),
        ino(&deployment_dir(&p.oxtree, 1))
    );
    // A third deploy drops the oldest unpinned deployment, and cleanup removed its files.
    deploy_both(&p, &[]);
    assert_eq!(boot_files(&p.oxtree), boot_files(&p.ostree));
    assert!(!p
        .oxtree
        .join(format!("ostree/deploy/testos/deploy/{c1}.0"))
        .exists());
    ostree(&[
        "fsck",
        &format!("--repo={}", s(&p.oxtree.join("ostree/repo"))),
    ]);
    // admin cleanup also prunes the system repo of what neither a ref nor a deployment
    // needs: v1 was dropped from the boot configuration, so its commit goes.
    ox(&["admin", "cleanup", &sa]);
    assert!(
        !p.oxtree
            .join(format!(
                "ostree/repo/objects/{}/{}.commit",
                &c1[..2],
                &c1[2..]
            ))
            .exists(),
        "the dropped deployment's commit was not pruned"
    );
    ox(&[
        "fsck",
        &format!("--repo={}", s(&p.oxtree.join("ostree/repo"))),
    ]);
}

#[test]
fn etc_merge_matches_ostree() {
    let p = pair();
    commit(&p, "v1", "1.0");
    deploy_both(&p, &["--karg=root=LABEL=root"]);
    // The same local changes in both sysroots.
    for sr in [&p.ostree, &p.oxtree] {
        let etc = deployment_dir(sr, 0).join("etc");
        std::fs::write(etc.join("modified"), "local edit\n").expect("edit");
        std::fs::remove_file(etc.join("deleted")).expect("rm");
        std::fs::write(etc.join("added"), "local addition\n").expect("add");
        std::fs::write(etc.join("both"), "local b\n").expect("edit");
        std::fs::remove_file(etc.join("typechange")).expect("rm");
        std::os::unix::fs::symlink("unchanged", etc.join("typechange")).expect("symlink");
        std::fs::set_permissions(
            etc.join("modechange"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        std::fs::create_dir_all(etc.join("newdir/deeper")).expect("mkdir");
        std::fs::write(etc.join("newdir/deeper/file"), "x\n").expect("write");
        std::fs::remove_dir_all(etc.join("sub")).expect("rm dir");
        std::fs::remove_file(etc.join("unchanged2")).expect("rm");
        std::fs::create_dir(etc.join("unchanged2")).expect("file became a directory");
        std::fs::write(etc.join("unchanged2/inside"), "in a dir\n").expect("write");
    }
    // v2 changes defaults: "both" and "unchanged" get new contents, a new default appears.
    write(&p.tree.join("usr/etc/both"), b"b2\n", 0o644);
    write(&p.tree.join("usr/etc/unchanged"), b"u2\n", 0o644);
    write(&p.tree.join("usr/etc/newdefault"), b"new\n", 0o644);
    commit(&p, "v2", "2.0");
    deploy_both(&p, &[]);
    let (a, b) = (
        snapshot(&deployment_dir(&p.ostree, 0).join("etc")),
        snapshot(&deployment_dir(&p.oxtree, 0).join("etc")),
    );
    assert!(
        a == b,
        "/etc after the merge differs from ostree's:\n{}",
        snapshot_diff(&a, &b)
    );
    let etc = deployment_dir(&p.oxtree, 0).join("etc");
    assert_eq!(
        std::fs::read_to_string(etc.join("modified")).expect("read"),
        "local edit\n"
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("both")).expect("read"),
        "local b\n",
        "local edits win"
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("unchanged")).expect("read"),
        "u2\n",
        "untouched files follow the new default"
    );
    assert!(
        !etc.join("deleted").exists() && !etc.join("sub").exists(),
        "deletions stay deleted"
    );
    assert!(etc.join("newdefault").exists() && etc.join("added").exists());
}

#[test]
fn failed_deploy_keeps_the_previous_boot_configuration() {
    require_failpoints();
    let p = pair();
    commit(&p, "v1", "1.0");
    deploy_both(&p, &["--karg=root=LABEL=root"]);
    let before = boot_files(&p.oxtree);
    let status = ox(&["admin", "status", &format!("--sysroot={}", s(&p.oxtree))]);
    write(&p.tree.join("usr/bin/v2"), b"2\n", 0o755);
    commit(&p, "v2", "2.0");
    let sa = format!("--sysroot={}", s(&p.oxtree));
    for step in ["checkout", "etc", "kernel", "entries", "bootlinks", "swap"] {
        let out = std::process::Command::new(oxtree_bin())
            .args(["admin", "deploy", &sa, "--os=testos", "testos/main"])
            .env("FAILPOINTS", format!("deploy::{step}=return"))
            .output()
            .expect("run");
        assert!(
            !out.status.success(),
            "{step}: deploy succeeded despite the injected failure"
        );
        let now = boot_files(&p.oxtree);
        // What the bootloader reads: the `loader` link and the entries it points to.
        let target = std::fs::read_link(p.oxtree.join("boot/loader")).expect("loader link");
        let live = p.oxtree.join("boot").join(&target).join("entries");
        let entries_now: Vec<_> = now
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("boot/{}/", target.display())))
            .collect();
        let entries_before: Vec<_> = before
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("boot/{}/", target.display())))
            .collect();
        assert!(live.is_dir(), "{step}: live loader dir gone");
        assert_eq!(
            entries_now, entries_before,
            "{step}: the live entries changed"
        );
        let live_now: Vec<_> = now
            .iter()
            .filter(|(k, _)| k.starts_with("boot/loader/") || k == "boot/loader")
            .collect();
        let live_before: Vec<_> = before
            .iter()
            .filter(|(k, _)| k.starts_with("boot/loader/") || k == "boot/loader")
            .collect();
        assert_eq!(
            live_now, live_before,
            "{step}: the live boot configuration changed"
        );
        assert_eq!(
            ox(&["admin", "status", &sa]),
            status,
            "{step}: status changed"
        );
        assert_eq!(
            ostree(&["admin", "status", &sa]),
            status,
            "{step}: ostree sees a changed status"
        );
    }
    ox(&["admin", "cleanup", &sa]);
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    let d = oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deployments()
        .expect("deployments");
    assert_eq!(d.len(), 2);
    // Debris of the failed attempts is gone: only the two live deployments remain.
    let dirs = std::fs::read_dir(p.oxtree.join("ostree/deploy/testos/deploy"))
        .expect("dir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(dirs, 2);
}

#[test]
fn bad_deploy_input_changes_nothing() {
    let p = pair();
    commit(&p, "v1", "1.0");
    deploy_both(&p, &["--karg=root=LABEL=root"]);
    let sa = format!("--sysroot={}", s(&p.oxtree));
    let before = boot_files(&p.oxtree);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "no/such/ref"]);
    assert!(err.contains("no/such/ref"), "{err}");
    // A commit without a kernel.
    let nokernel = p.tree.join("../nokernel");
    write(&nokernel.join("usr/lib/os-release"), b"ID=testos\n", 0o644);
    ostree(&[
        "commit",
        &format!("--repo={}", s(&p.oxtree.join("ostree/repo"))),
        "-b",
        "testos/nokernel",
        "-s",
        "x",
        s(&nokernel),
    ]);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "testos/nokernel"]);
    assert!(err.contains("Failed to find kernel"), "{err}");
    ox(&["admin", "cleanup", &sa]);
    assert_eq!(boot_files(&p.oxtree), before);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=nosuchos", "testos/main"]);
    assert!(err.contains("os-init"), "{err}");
}

/// `boot/loader` may only name loader.0 or loader.1 (ostree refuses the rest): anything else
/// is a clear error for every command, never arithmetic on it; and a deployment serial that
/// cannot grow is refused instead of wrapping around.
#[test]
fn bad_bootversion_and_serial_overflow_are_refused() {
    let p = pair();
    let c = commit(&p, "v1", "1.0");
    let sa = format!("--sysroot={}", s(&p.oxtree));
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    let loader = p.oxtree.join("boot/loader");
    let good = std::fs::read_link(&loader).expect("loader");
    for bad in [
        "loader.2",
        "loader.4294967295",
        "loader.-1",
        "loader.01",
        "../x",
    ] {
        std::fs::remove_file(&loader).expect("rm");
        std::os::unix::fs::symlink(bad, &loader).expect("symlink");
        for args in [
            vec!["admin", "status", &sa],
            vec!["admin", "deploy", &sa, "--os=testos", "testos/main"],
            vec!["admin", "cleanup", &sa],
            vec!["admin", "rollback", &sa],
        ] {
            let (_, err) = ox_fail(&args);
            assert!(
                err.contains("must point to loader.0 or loader.1") && err.contains(bad),
                "{bad} {args:?}: {err}"
            );
        }
    }
    std::fs::remove_file(&loader).expect("rm");
    std::os::unix::fs::symlink(&good, &loader).expect("symlink");
    // The last serial is taken: deploying the same commit again cannot pick the next one.
    let last = p
        .oxtree
        .join(format!("ostree/deploy/testos/deploy/{c}.4294967295"));
    std::fs::create_dir(&last).expect("mkdir");
    let before = boot_files(&p.oxtree);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    assert!(err.contains("serials"), "{err}");
    assert_eq!(boot_files(&p.oxtree), before);
    ox(&["admin", "cleanup", &sa]);
    assert!(!last.exists(), "cleanup removes the stray directory");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    ostree(&["admin", "status", &sa]);
}

/// Commit metadata and tree contents that reach a boot entry cannot add lines to it (M6):
/// a `version` with a newline stays in the title line; a kernel directory name or a kernel
/// argument with control characters is refused; status, deploy and rollback keep working,
/// for oxtree and real ostree.
#[test]
fn boot_entries_take_no_injected_lines() {
    let p = pair();
    let sa = format!("--sysroot={}", s(&p.oxtree));
    commit(&p, "v1", "1.0\noptions init=/bin/sh");
    ox(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
    let entries = || -> Vec<(String, String)> {
        boot_files(&p.oxtree)
            .into_iter()
            .filter(|(k, _)| k.starts_with("boot/loader/entries/"))
            .collect()
    };
    for (name, text) in entries() {
        let options: Vec<&str> = text.lines().filter(|l| l.starts_with("options")).collect();
        assert_eq!(options.len(), 1, "{name}: {text}");
        assert!(!options[0].contains("init=/bin/sh"), "{name}: {text}");
        assert!(text.lines().count() == 5, "{name}: {text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("title ") && l.contains("1.0 options init=/bin/sh")),
            "{name}: {text}"
        );
    }
    let status = ox(&["admin", "status", &sa]);
    assert!(status.contains("Version: 1.0\\noptions"), "{status}");
    ostree(&["admin", "status", &sa]);
    write(&p.tree.join("usr/bin/v2"), b"2\n", 0o755);
    commit(&p, "v2", "2.0");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    ox(&["admin", "rollback", &sa]);
    ox(&["admin", "status", &sa]);
    ostree(&["admin", "status", &sa]);

    let before = boot_files(&p.oxtree);
    let (_, err) = ox_fail(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg=quiet\ninit=/bin/sh",
        "testos/main",
    ]);
    assert!(err.contains("control characters"), "{err}");
    assert_eq!(boot_files(&p.oxtree), before);
    // A kernel directory whose name would end the `linux` line.
    let evil = p.tree.join("../evil-kver");
    os_tree(&evil);
    std::fs::rename(
        evil.join("usr/lib/modules/6.1.0"),
        evil.join("usr/lib/modules/6.1.0\noptions init=sh"),
    )
    .expect("rename");
    ostree(&[
        "commit",
        &format!("--repo={}", s(&p.oxtree.join("ostree/repo"))),
        "-b",
        "testos/evil",
        "-s",
        "evil",
        s(&evil),
    ]);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "testos/evil"]);
    assert!(err.contains("kernel version directory name"), "{err}");
    ox(&["admin", "cleanup", &sa]);
    assert_eq!(boot_files(&p.oxtree), before);
    ostree(&["admin", "status", &sa]);
}

/// prepare-root (and remount) boot only a boot link inside the sysroot (L3): `ostree=` must
/// be a symbolic link, as ostree-prepare-root checks, that resolves into ostree/deploy;
/// nothing is mounted otherwise.
#[test]
fn prepare_root_refuses_an_ostree_argument_that_is_no_boot_link() {
    let p = pair();
    commit(&p, "v1", "1.0");
    ox(&[
        "admin",
        "deploy",
        &format!("--sysroot={}", s(&p.oxtree)),
        "--os=testos",
        "testos/main",
    ]);
    let sr = &p.oxtree;
    let d = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments");
    let good = d[0].entry.karg("ostree").expect("ostree=").to_string();
    let dir = format!("/ostree/deploy/testos/deploy/{}", d[0].dirname());
    let farm = sr
        .join("ostree")
        .join(std::fs::read_link(sr.join("ostree/boot.1")).expect("boot.1"))
        .join("testos");
    std::os::unix::fs::symlink("/", farm.join("to-root")).expect("symlink");
    std::os::unix::fs::symlink("../../../../..", farm.join("up")).expect("symlink");
    std::os::unix::fs::symlink("../../deploy/testos/var", farm.join("var")).expect("symlink");
    for (arg, why) in [
        ("/../..".to_string(), "not a plain path"),
        ("/ostree/boot.1/../../..".to_string(), "not a plain path"),
        (dir, "not a symbolic link"),
        (
            "/ostree/boot.1/testos/to-root".to_string(),
            "not a deployment",
        ),
        ("/ostree/boot.1/testos/up".to_string(), "not a deployment"),
        ("/ostree/boot.1/testos/var".to_string(), "not a deployment"),
    ] {
        // In a private mount namespace: were the check missing, nothing leaks out.
        let script = format!(
            "{ox} admin prepare-root --sysroot={sr} --cmdline='rw ostree={arg}' --run-dir={sr}/../run-x",
            ox = s(&oxtree_bin()),
            sr = s(sr),
        );
        let o = run_raw(
            Path::new("unshare"),
            &["-m", "--propagation", "private", "sh", "-c", &script],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(why),
            "ostree={arg}: {err}"
        );
    }
    let var = oxtree::sysroot::remount::stateroot_var(sr, &format!("ostree={good}"))
        .expect("the real boot link");
    assert!(var.ends_with("ostree/deploy/testos/var"));
    assert!(oxtree::sysroot::remount::stateroot_var(sr, "ostree=/../..").is_err());
}

/// A commit's symlinks never lead deploy or the /etc merge to the host's files (L2): an
/// `etc` or `usr/etc` that is a link is refused; kernel links resolve inside the tree (a
/// link to a host file or /dev/zero finds nothing, an absolute link within the tree works);
/// an /etc change under a directory that the new tree made a link to a host directory is
/// refused, and a deletion there does not reach through it.
#[test]
fn deploy_and_etc_merge_do_not_follow_the_trees_links_to_the_host() {
    let p = pair();
    let sa = format!("--sysroot={}", s(&p.oxtree));
    commit(&p, "v1", "1.0");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    let host = p.tree.join("../host");
    write(&host.join("secret"), b"host secret\n", 0o600);
    write(&host.join("nested"), b"host file\n", 0o644);
    let snapshot_host = || {
        let mut v: Vec<(String, String)> = std::fs::read_dir(&host)
            .expect("host dir")
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let host_before = snapshot_host();
    let commit_tree = |name: &str, tree: &Path| {
        ostree(&[
            "commit",
            &format!("--repo={}", s(&p.oxtree.join("ostree/repo"))),
            "-b",
            &format!("testos/{name}"),
            "-s",
            name,
            s(tree),
        ]);
    };
    let variant = |name: &str, edit: &dyn Fn(&Path)| {
        let t = p.tree.join(format!("../{name}"));
        os_tree(&t);
        edit(&t);
        commit_tree(name, &t);
    };
    let link = |target: &Path, at: &Path| {
        let _ = std::fs::remove_dir_all(at);
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(target, at).expect("symlink");
    };
    // etc (and usr/etc) as links to a host directory.
    variant("etc-link", &|t| {
        std::fs::remove_dir_all(t.join("usr/etc")).expect("rm");
        link(&host, &t.join("etc"));
    });
    variant("usr-etc-link", &|t| link(&host, &t.join("usr/etc")));
    // Kernels linked to host files.
    variant("vmlinuz-host", &|t| {
        link(
            &host.join("secret"),
            &t.join("usr/lib/modules/6.1.0/vmlinuz"),
        )
    });
    variant("vmlinuz-zero", &|t| {
        link(
            Path::new("/dev/zero"),
            &t.join("usr/lib/modules/6.1.0/vmlinuz"),
        )
    });
    let before = boot_files(&p.oxtree);
    for (name, why) in [
        ("etc-link", "/etc is not a directory (a symbolic link)"),
        (
            "usr-etc-link",
            "/usr/etc is not a directory (a symbolic link)",
        ),
        ("vmlinuz-host", "Failed to find kernel"),
        ("vmlinuz-zero", "Failed to find kernel"),
    ] {
        let (_, err) = ox_fail(&[
            "admin",
            "deploy",
            &sa,
            "--os=testos",
            &format!("testos/{name}"),
        ]);
        assert!(err.contains(why), "{name}: {err}");
        ox(&["admin", "cleanup", &sa]);
        assert_eq!(boot_files(&p.oxtree), before, "{name}");
        assert_eq!(snapshot_host(), host_before, "{name}");
    }
    assert!(!boot_files(&p.oxtree)
        .iter()
        .any(|(_, text)| text.contains("host secret")));
    // An absolute link inside the tree is the tree's own file (as the deployment sees it).
    variant("vmlinuz-abs", &|t| {
        std::fs::rename(
            t.join("usr/lib/modules/6.1.0/vmlinuz"),
            t.join("usr/lib/modules/6.1.0/vmlinuz.real"),
        )
        .expect("mv");
        link(
            Path::new("/usr/lib/modules/6.1.0/vmlinuz.real"),
            &t.join("usr/lib/modules/6.1.0/vmlinuz"),
        );
    });
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/vmlinuz-abs"]);
    let kernel = boot_files(&p.oxtree)
        .into_iter()
        .find(|(k, _)| k.contains("vmlinuz-6.1.0"))
        .expect("kernel copied");
    assert_eq!(kernel.1.len(), 4096, "the tree's kernel was copied");
    // The /etc merge: the admin changed etc/sub/nested; the new defaults make etc/sub a
    // link to a host directory.
    let dep = deployment_dir(&p.oxtree, 0);
    std::fs::write(dep.join("etc/sub/nested"), "admin edit\n").expect("edit");
    variant("sub-link", &|t| link(&host, &t.join("usr/etc/sub")));
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "testos/sub-link"]);
    assert!(err.contains("cannot merge /etc/sub/nested"), "{err}");
    assert_eq!(snapshot_host(), host_before);
    // The admin deleted it instead: nothing to delete through the link either.
    std::fs::remove_file(dep.join("etc/sub/nested")).expect("rm");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/sub-link"]);
    assert_eq!(snapshot_host(), host_before);
    ostree(&["admin", "status", &sa]);
}

/// Upgrade v1→v2 from an HTTP remote, then roll back; /var is untouched throughout, and real
/// ostree reads every state. Pin, undeploy, kargs and downgrade refusal too.
#[test]
fn upgrade_rollback_pin_undeploy() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    os_tree(&tree);
    let server_repo = t.join("server");
    let sv = format!("--repo={}", s(&server_repo));
    ox(&["init", &sv, "--mode=archive"]);
    let c1 = ox(&[
        "commit",
        &sv,
        "-b",
        "testos/main",
        "-s",
        "v1",
        "--timestamp=2020-01-01T00:00:00Z",
        "--add-metadata-string=version=1.0",
        s(&tree),
    ]);
    let server = Server::start(&server_repo);
    let sr = t.join("sysroot");
    std::fs::create_dir_all(&sr).expect("mkdir");
    let sa = format!("--sysroot={}", s(&sr));
    let ra = format!("--repo={}", s(&sr.join("ostree/repo")));
    ox(&["admin", "init-fs", s(&sr)]);
    ox(&["admin", "os-init", &sa, "testos"]);
    ox(&[
        "remote",
        "add",
        &ra,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ox(&["pull", &ra, "origin", "testos/main"]);
    ox(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg=root=LABEL=root",
        "origin:testos/main",
    ]);
    let var_file = sr.join("ostree/deploy/testos/var/lib/state");
    std::fs::write(&var_file, "persistent\n").expect("write var");
    assert!(ox(&["admin", "upgrade", &sa]).contains("No update available"));

    write(&tree.join("usr/bin/new-in-v2"), b"v2\n", 0o755);
    let c2 = ox(&[
        "commit",
        &sv,
        "-b",
        "testos/main",
        "-s",
        "v2",
        "--timestamp=2021-01-01T00:00:00Z",
        "--add-metadata-string=version=2.0",
        s(&tree),
    ]);
    let loader_before = std::fs::read_link(sr.join("boot/loader")).expect("loader");
    assert!(ox(&["admin", "upgrade", &sa]).contains("Bootloader updated; bootconfig swap: yes"));
    let d = oxtree::sysroot::Sysroot::new(&sr)
        .deployments()
        .expect("deployments");
    assert_eq!(
        (d[0].checksum.to_hex(), d[1].checksum.to_hex()),
        (c2.clone(), c1.clone())
    );
    assert_ne!(
        std::fs::read_link(sr.join("boot/loader")).expect("loader"),
        loader_before,
        "the loader link did not switch"
    );
    assert_eq!(d[0].entry.get("version"), Some("2"));
    assert_eq!(d[0].entry.karg("root"), Some("LABEL=root"));
    let ino = |i: usize| {
        std::fs::metadata(deployment_dir(&sr, i).join("usr/bin/hello"))
            .expect("stat")
            .ino()
    };
    assert_eq!(ino(0), ino(1), "deployments do not share storage");
    assert_eq!(
        ostree(&["admin", "status", &sa]),
        ox(&["admin", "status", &sa])
    );

    // Rollback: v1 becomes the default again.
    ox(&["admin", "rollback", &sa]);
    let d = oxtree::sysroot::Sysroot::new(&sr)
        .deployments()
        .expect("deployments");
    assert_eq!(
        (d[0].checksum.to_hex(), d[1].checksum.to_hex()),
        (c1.clone(), c2.clone())
    );
    assert_eq!(
        ostree(&["admin", "status", &sa]),
        ox(&["admin", "status", &sa])
    );
    assert_eq!(
        std::fs::read_to_string(&var_file).expect("var"),
        "persistent\n",
        "/var changed"
    );

    // Pin, kargs, undeploy.
    ox(&["admin", "pin", &sa, "1"]);
    assert!(ostree(&["admin", "status", &sa]).contains("Pinned: yes"));
    let k = ox(&[
        "admin",
        "kargs",
        "edit-in-place",
        &sa,
        "--append=quiet",
        "--replace=root=LABEL=newroot",
    ]);
    assert_eq!(k.lines().last(), Some("root=LABEL=newroot quiet"), "{k}");
    let (_, err) = ox_fail(&["admin", "undeploy", &sa, "5"]);
    assert!(
        err.contains("Out of range deployment index 5, expected < 2"),
        "{err}"
    );
    ox(&["admin", "undeploy", &sa, "1"]);
    assert_eq!(
        oxtree::sysroot::Sysroot::new(&sr)
            .deployments()
            .expect("deployments")
            .len(),
        1
    );
    assert!(
        !sr.join(format!("ostree/deploy/testos/deploy/{c2}.0"))
            .exists(),
        "undeployed files left behind"
    );

    // The server goes back to v1's older commit: upgrade refuses to downgrade.
    ox(&["admin", "deploy", &sa, "--os=testos", "origin:testos/main"]);
    let c0 = ox(&[
        "commit",
        &sv,
        "-b",
        "testos/main",
        "-s",
        "old",
        "--timestamp=2019-01-01T00:00:00Z",
        s(&tree),
    ]);
    let (code, err) = ox_fail(&["admin", "upgrade", &sa]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("older"), "{err}");
    let _ = c0;
    assert_eq!(
        std::fs::read_to_string(&var_file).expect("var"),
        "persistent\n"
    );
    // Switch to another branch: pulled, deployed, and the origin follows it.
    let c3 = ox(&[
        "commit",
        &sv,
        "-b",
        "testos/other",
        "-s",
        "other",
        "--timestamp=2022-01-01T00:00:00Z",
        s(&tree),
    ]);
    ox(&["admin", "switch", &sa, "origin:testos/other"]);
    let d = oxtree::sysroot::Sysroot::new(&sr)
        .deployments()
        .expect("deployments");
    assert_eq!(d[0].checksum.to_hex(), c3);
    assert_eq!(d[0].refspec(), Some("origin:testos/other"));
    assert!(ox(&["admin", "upgrade", &sa]).contains("No update available"));
}

/// A sysroot on a nearly full filesystem: deploy refuses cleanly before touching anything.
#[test]
fn deploy_on_a_full_disk_is_refused() {
    require_ostree();
    let tmp = tempdir();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12M", "tmpfs", s(&mnt)])
        .status()
        .expect("mount");
    assert!(ok.success(), "could not mount a tmpfs (tests need root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let tree = tmp.path().join("tree");
    os_tree(&tree);
    let sa = format!("--sysroot={}", s(&mnt));
    ox(&["admin", "init-fs", s(&mnt)]);
    ox(&["admin", "os-init", &sa, "testos"]);
    ox(&[
        "commit",
        &format!("--repo={}", s(&mnt.join("ostree/repo"))),
        "-b",
        "testos/main",
        "-s",
        "v1",
        s(&tree),
    ]);
    let (_, err) = ox_fail(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    assert!(
        err.contains("No space left on device") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        !mnt.join("boot/loader").exists(),
        "a boot configuration was written"
    );
    assert_eq!(ox(&["admin", "status", &sa]), "No deployments.");
    let deploy_dir = mnt.join("ostree/deploy/testos/deploy");
    assert!(
        !deploy_dir.exists()
            || std::fs::read_dir(&deploy_dir)
                .expect("dir")
                .next()
                .is_none(),
        "a deployment was checked out"
    );
}

/// `deploy --stage` prepares without touching the boot configuration; /etc edits made
/// after staging are carried over by `finalize-staged`, which then switches atomically. A
/// failed finalization leaves the old configuration and can be run again.
#[test]
fn staged_deploy_and_finalize() {
    require_failpoints();
    let p = pair();
    let c1 = commit(&p, "v1", "1.0");
    let sa = format!("--sysroot={}", s(&p.oxtree));
    ox(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
    write(&p.tree.join("usr/bin/v2"), b"2\n", 0o755);
    let c2 = commit(&p, "v2", "2.0");
    let before = boot_files(&p.oxtree);
    // Not the booted system: `deploy --stage` refuses, as ostree, writing nothing.
    let (code, err) = ox_fail(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--stage",
        "testos/main",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Cannot stage deployment: Not currently booted into an OSTree system"),
        "{err}"
    );
    assert!(oxtree::sysroot::Sysroot::new(&p.oxtree)
        .read_staged()
        .expect("staged")
        .is_none());
    // Staged as the update agent stages the sysroot it manages; staging writes no boot
    // configuration.
    oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deploy(
            "testos/main",
            &oxtree::sysroot::DeployOptions {
                os: Some("testos".into()),
                stage: true,
                stage_unbooted: true,
                ..Default::default()
            },
        )
        .expect("stage");
    assert_eq!(
        boot_files(&p.oxtree),
        before,
        "staging changed the boot configuration"
    );
    let status = ox(&["admin", "status", &sa]);
    assert!(
        status.starts_with(&format!("testos {c2}.0 (staged)")),
        "{status}"
    );
    ox(&["admin", "cleanup", &sa]);
    assert!(
        p.oxtree
            .join(format!("ostree/deploy/testos/deploy/{c2}.0"))
            .is_dir(),
        "cleanup removed the staged deployment"
    );
    // An /etc edit after staging, in the running (v1) deployment.
    std::fs::write(
        deployment_dir(&p.oxtree, 0).join("etc/after-stage"),
        "edited later\n",
    )
    .expect("write");
    // A failed finalization (say, at shutdown) changes nothing and can be retried.
    let out = std::process::Command::new(oxtree_bin())
        .args(["admin", "finalize-staged", &sa])
        .env("FAILPOINTS", "deploy::entries=return")
        .output()
        .expect("run");
    assert!(!out.status.success());
    // The failure is kept for the next boot to report.
    let stamp = p.oxtree.join("boot/ostree/finalize-failure.stamp");
    assert!(std::fs::read_to_string(&stamp)
        .expect("stamp")
        .contains("injected failure at failpoint deploy::entries"));
    let st = run_raw(&oxtree_bin(), &["admin", "status", &sa]);
    assert!(String::from_utf8_lossy(&st.stderr).contains("failed to finalize"));
    let live = |b: &[(String, String)]| {
        b.iter()
            .filter(|(k, _)| k == "boot/loader" || k.starts_with("boot/loader/"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(live(&boot_files(&p.oxtree)), live(&before));
    assert!(ox(&["admin", "finalize-staged", &sa]).contains("Finalized"));
    assert!(!stamp.exists(), "a successful finalize clears the failure");
    let d = oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deployments()
        .expect("deployments");
    assert_eq!((d[0].checksum.to_hex(), d[1].checksum.to_hex()), (c2, c1));
    assert_eq!(d[0].entry.karg("root"), Some("LABEL=root"));
    assert_eq!(
        std::fs::read_to_string(deployment_dir(&p.oxtree, 0).join("etc/after-stage"))
            .expect("merged"),
        "edited later\n"
    );
    // Nothing staged: nothing to do and nothing said, as ostree.
    assert_eq!(ox(&["admin", "finalize-staged", &sa]), "");
    assert_eq!(
        ostree(&["admin", "status", &sa]),
        ox(&["admin", "status", &sa])
    );
}

/// The host plays systemd-boot's boot counting: among the entries (newest `version` first)
/// it boots the first that still has tries (`+LEFT[-DONE]` in the file name; no counter =
/// known good), decrementing LEFT and incrementing DONE in the name before booting. Returns
/// the checksum of the deployment booted.
fn bootloader_boot(sr: &Path) -> String {
    let loader = sr.join("boot/loader/entries");
    let mut entries: Vec<(u64, PathBuf)> = std::fs::read_dir(&loader)
        .expect("entries")
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("read entry");
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix("version "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            (v, e.path())
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in entries {
        let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
        let (base, tries) = match stem.rsplit_once('+') {
            Some((b, c)) => {
                let (l, d) = c
                    .split_once('-')
                    .map(|(l, d)| {
                        (
                            l.parse::<u32>().expect("left"),
                            d.parse::<u32>().expect("done"),
                        )
                    })
                    .unwrap_or_else(|| (c.parse().expect("left"), 0));
                (b.to_string(), Some((l, d)))
            }
            None => (stem.clone(), None),
        };
        let target = match tries {
            Some((0, _)) => continue, // bad: tries exhausted
            Some((l, d)) => {
                let new = loader.join(format!("{base}+{}-{}.conf", l - 1, d + 1));
                std::fs::rename(&p, &new).expect("count the boot attempt");
                new
            }
            None => p.clone(),
        };
        let text = std::fs::read_to_string(&target).expect("entry");
        let ostree_arg = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ostree="))
            .expect("ostree= karg")
            .to_string();
        let link =
            std::fs::read_link(sr.join(ostree_arg.trim_start_matches('/'))).expect("boot link");
        return link
            .file_name()
            .expect("name")
            .to_string_lossy()
            .split('.')
            .next()
            .expect("csum")
            .to_string();
    }
    panic!("no bootable entry");
}

/// Boot counting and automatic rollback, end to end on a directory sysroot: a good v1 is
/// blessed; a v2 whose health check fails uses up its 3 tries, the bootloader falls back to
/// v1 with no manual step, `rollback --if-failed` makes v1 the default again, and status
/// reports v2 as failed.
#[test]
fn boot_counting_rolls_back_a_failing_deployment() {
    let p = pair();
    let sa = format!("--sysroot={}", s(&p.oxtree));
    let cfg = p.oxtree.join("ostree/repo/config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[sysroot]\nboot-counting-tries=3\n");
    std::fs::write(&cfg, text).expect("config");
    let c1 = commit(&p, "v1", "1.0");
    ox(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
    assert!(p
        .oxtree
        .join("boot/loader/entries/ostree-1-testos+3.conf")
        .exists());
    // Boot 1: v1 comes up, its health checks pass.
    assert_eq!(bootloader_boot(&p.oxtree), c1);
    assert!(ox(&["admin", "rollback", &sa, "--if-failed"]).contains("nothing to do"));
    ox(&["admin", "boot-complete", &sa, "--index=0"]);
    assert!(
        p.oxtree
            .join("boot/loader/entries/ostree-1-testos.conf")
            .exists(),
        "v1 not blessed"
    );
    // v2 is deployed; its health check will fail.
    write(&p.tree.join("usr/bin/broken"), b"exit 1\n", 0o755);
    let c2 = commit(&p, "v2", "2.0");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    assert!(ox(&["admin", "status", &sa]).contains("3 tries left"));
    for attempt in 1..=3 {
        assert_eq!(
            bootloader_boot(&p.oxtree),
            c2,
            "attempt {attempt} should boot v2"
        );
        // The health check fails: no boot-complete, and the machine is reset.
    }
    // Tries exhausted: the bootloader falls back to v1 by itself.
    assert_eq!(bootloader_boot(&p.oxtree), c1);
    assert!(ox(&["admin", "rollback", &sa, "--if-failed"]).contains("rolled back"));
    let d = oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deployments()
        .expect("deployments");
    assert_eq!(
        (d[0].checksum.to_hex(), d[1].checksum.to_hex()),
        (c1.clone(), c2.clone())
    );
    assert!(d[1].failed() && !d[0].failed());
    let status = ox(&["admin", "status", &sa]);
    assert!(status.contains("FAILED"), "{status}");
    assert!(ox(&["admin", "status", &sa, "--json"]).contains("\"failed\":true"));
    // The next boot is v1, and real ostree still reads the sysroot.
    assert_eq!(bootloader_boot(&p.oxtree), c1);
    ostree(&["admin", "status", &sa]);
}

/// --karg-proc-cmdline takes the running kernel's arguments (minus the bootloader's own).
#[test]
fn karg_proc_cmdline() {
    let p = pair();
    commit(&p, "v1", "1.0");
    let sa = format!("--sysroot={}", s(&p.oxtree));
    ox(&[
        "admin",
        "deploy",
        &sa,
        "--os=testos",
        "--karg-proc-cmdline",
        "testos/main",
    ]);
    let cmdline = std::fs::read_to_string("/proc/cmdline").expect("cmdline");
    let d = oxtree::sysroot::Sysroot::new(&p.oxtree)
        .deployments()
        .expect("deployments");
    let options = d[0].entry.get("options").expect("options").to_string();
    for a in cmdline.split_whitespace().filter(|a| {
        !a.starts_with("BOOT_IMAGE=") && !a.starts_with("initrd=") && !a.starts_with("ostree=")
    }) {
        assert!(
            options.split_whitespace().any(|o| o == a),
            "{a} missing from {options}"
        );
    }
}

/// The early-boot root switch, run in a private mount namespace: the deployment becomes the
/// root at the sysroot mount point, /usr read-only, the stateroot's /var bound in, the
/// physical root at /sysroot — for sysroots deployed by oxtree and by real ostree.
#[test]
fn prepare_root_switches_to_the_deployment() {
    let p = pair();
    commit(&p, "v1", "1.0");
    deploy_both(&p, &["--karg=root=LABEL=root"]);
    for sr in [&p.oxtree, &p.ostree] {
        std::fs::create_dir_all(sr.join("ostree/deploy/testos/var/lib")).expect("mkdir");
        std::fs::write(
            sr.join("ostree/deploy/testos/var/lib/state"),
            "persistent\n",
        )
        .expect("write");
        let d = oxtree::sysroot::Sysroot::new(sr)
            .deployments()
            .expect("deployments");
        let options = d[0].entry.get("options").expect("options").to_string();
        let run = sr.join("../run-".to_string() + &sr.file_name().expect("name").to_string_lossy());
        let script = format!(
            "set -e; mount --bind {sr} {sr}; {ox} admin prepare-root --sysroot={sr} --cmdline='{options}' --run-dir={run}; \
             test -x {sr}/usr/bin/hello; if touch {sr}/usr/written 2>/dev/null; then echo USR-WRITABLE; exit 1; fi; \
             cat {sr}/var/lib/state; test -d {sr}/sysroot/ostree/deploy; test -d {sr}/boot/loader/entries; \
             test $(grep -c ' {sr} ' /proc/self/mounts) = 1; test -f {run}/ostree-booted; echo SWITCHED",
            sr = s(sr),
            ox = s(&oxtree_bin()),
            run = s(&run),
        );
        let out = run_ok(
            Path::new("unshare"),
            &["-m", "--propagation", "private", "sh", "-c", &script],
        );
        assert!(
            out.contains("persistent") && out.ends_with("SWITCHED"),
            "{out}"
        );
        // Outside the namespace nothing changed.
        assert!(sr.join("ostree").is_dir() && !sr.join("usr").exists());
    }
    // As `ostree-prepare-root` (argv[0]) it reads /proc/cmdline; here there is no ostree=.
    let link = p.oxtree.join("../ostree-prepare-root");
    std::os::unix::fs::symlink(oxtree_bin(), &link).expect("symlink");
    let out = run_raw(&link, &[s(&p.oxtree)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no ostree= argument"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As `ostree-remount` (the stock ostree-remount.service) on a host not booted into a
    // deployment: a clear refusal, nothing mounted. (In QEMU: tests/e2e.)
    if !Path::new("/run/ostree-booted").exists() {
        let link = p.oxtree.join("../ostree-remount");
        std::os::unix::fs::symlink(oxtree_bin(), &link).expect("symlink");
        let out = run_raw(&link, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("not booted"), "{err}");
    }
}

/// `boot-complete` marks a deployment good only when every health check passes; `deploy
/// --retain-rollback` keeps the rollback; `rollback` skips a deployment that failed to boot.
/// Also: ostree's option placement (`--repo` before the command, `admin --sysroot=`).
#[test]
fn health_checks_retain_rollback_and_rollback_past_failures() {
    let p = pair();
    let sr = &p.oxtree;
    let repo = sr.join("ostree/repo");
    let cfg = repo.join("config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[sysroot]\nboot-counting-tries=2\n");
    std::fs::write(&cfg, text).expect("config");
    let admin = |cmd: &str, rest: &[&str]| {
        let sa = format!("--sysroot={}", s(sr));
        let mut a = vec!["admin", &sa, cmd];
        a.extend_from_slice(rest);
        ox(&a)
    };
    let entries = || {
        let mut v: Vec<String> = std::fs::read_dir(sr.join("boot/loader/entries"))
            .expect("entries")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let checks = sr.join("../health.d");
    write(&checks.join("10-ok"), b"#!/bin/sh\nexit 0\n", 0o755);
    let hd = format!("--health-dir={}", s(&checks));

    let c1 = commit(&p, "v1", "1.0");
    admin("deploy", &["--os=testos", "testos/main"]);
    admin("boot-complete", &["--index=0", &hd]);
    assert_eq!(entries(), ["ostree-1-testos.conf"]);

    let _c2 = commit(&p, "v2", "2.0");
    admin("deploy", &["--os=testos", "testos/main"]);
    write(
        &checks.join("50-broken"),
        b"#!/bin/sh\necho broken >&2\nexit 3\n",
        0o755,
    );
    let sa = format!("--sysroot={}", s(sr));
    let (code, err) = ox_fail(&["admin", "boot-complete", &sa, "--index=0", &hd]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("50-broken") && err.contains("not marked good"),
        "{err}"
    );
    assert!(entries().contains(&"ostree-2-testos+2.conf".to_string()));

    // Without --retain-rollback a new deployment keeps only the merge one; with it, the
    // rollback (v1) stays too.
    let c3 = commit(&p, "v3", "3.0");
    admin(
        "deploy",
        &["--os=testos", "--retain-rollback", "testos/main"],
    );
    let d = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments");
    assert_eq!(d.len(), 3, "{:?}", entries());
    assert_eq!(d[2].checksum.to_hex(), c1);

    // v2 (index 1) used up its tries: rollback from v3 goes past it, to v1.
    let dir = std::fs::read_link(sr.join("boot/loader")).expect("loader");
    let edir = sr.join("boot").join(dir).join("entries");
    std::fs::rename(
        edir.join("ostree-2-testos+2.conf"),
        edir.join("ostree-2-testos+0-2.conf"),
    )
    .expect("rename");
    assert!(admin("status", &[]).contains("FAILED"));
    admin("rollback", &[]);
    let d = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments");
    assert_eq!(d[0].checksum.to_hex(), c1);
    assert!(d.iter().any(|x| x.failed()), "the failed one is kept");
    assert_eq!(d.iter().filter(|x| x.checksum.to_hex() == c3).count(), 1);

    // `--repo` before the command, as ostree scripts write it.
    let r = format!("--repo={}", s(&repo));
    assert!(ox(&[&r, "refs"]).contains("testos/main"));
    assert!(ox(&[&r, "remote", "list"]).is_empty());
    // The real ostree still reads this sysroot.
    ostree(&["admin", "status", &sa]);
}

/// Taking over a sysroot real ostree deployed: its deployments are immutable (`chattr +i`),
/// and oxtree's cleanup still removes them; oxtree marks its own deployments the same way.
#[test]
fn oxtree_takes_over_an_ostree_sysroot() {
    let p = pair();
    let sr = &p.ostree; // deployed by ostree first
    let sa = format!("--sysroot={}", s(sr));
    commit(&p, "v1", "1.0");
    ostree(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    let first = deployment_dir(sr, 0);
    let lsattr = |d: &Path| run_ok(Path::new("lsattr"), &["-d", s(d)]);
    let immutable = |d: &Path| {
        lsattr(d)
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('i'))
    };
    if !immutable(&first) {
        eprintln!("skipped: this filesystem has no immutable flag");
        return;
    }
    write(&p.tree.join("usr/bin/v2"), b"v2\n", 0o755);
    commit(&p, "v2", "2.0");
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    assert!(
        immutable(&deployment_dir(sr, 0)),
        "oxtree marks its deployment"
    );
    // Again: the ostree-made v1 deployment is no longer kept, and must go.
    ox(&["admin", "deploy", &sa, "--os=testos", "testos/main"]);
    assert!(!first.exists(), "{} was not removed", first.display());
    let d = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments");
    assert_eq!(d.len(), 2);
    ostree(&["admin", "status", &sa]);
}
