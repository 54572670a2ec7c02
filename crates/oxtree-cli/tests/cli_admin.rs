//! `oxtree admin …` against real `ostree admin …` (Debian's 2022.7, the oracle): two
//! sysroots made from the same commits, one driven by each tool, the same commands run on
//! each, and compared — stdout (what scripts read), success, the first `error:` line, the
//! boot entries, origins and the deployment list; `admin status` of each tool is also read
//! by the other. A booted system is made in a private mount and PID namespace (the
//! deployment bind-mounted as the root of a chroot, as the root switcher leaves it), so the
//! commands that act on the booted deployment (`unlock`, `status` markers, `set-origin`
//! without `--index`, `diff` without `--os`) run for real. Rows newer than ostree 2022.7
//! are checked for their effect.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Pair {
    _tmp: TestDir,
    t: PathBuf,
    tree: PathBuf,
    /// Driven by ostree.
    o: PathBuf,
    /// Driven by oxtree.
    x: PathBuf,
}

/// A tree that can also be booted in [`booted`]: the usual OS tree, with the links and
/// mount points a root needs (`/lib` for the loader, `/ostree` into the physical root).
fn bootable_tree(tree: &Path) {
    os_tree(tree);
    for (l, t) in [
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("ostree", "sysroot/ostree"),
    ] {
        std::os::unix::fs::symlink(t, tree.join(l)).expect("symlink");
    }
    for d in ["proc", "dev", "run", "tmp", "sys"] {
        std::fs::create_dir_all(tree.join(d)).expect("mkdir");
    }
}

fn pair() -> Pair {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path().to_path_buf();
    let tree = t.join("tree");
    bootable_tree(&tree);
    let (o, x) = (t.join("sr-o"), t.join("sr-x"));
    for sr in [&o, &x] {
        std::fs::create_dir_all(sr).expect("mkdir");
    }
    ostree(&["admin", "init-fs", s(&o)]);
    ox(&["admin", "init-fs", s(&x)]);
    ostree(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&o)),
        "testos",
    ]);
    ox(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&x)),
        "testos",
    ]);
    let p = Pair {
        _tmp: tmp,
        t,
        tree,
        o,
        x,
    };
    commit(&p, "testos/main", "1.0", "2020-01-01T00:00:00Z");
    p
}

/// The same commit in both system repos (same tree, metadata and time: same checksum).
fn commit(p: &Pair, branch: &str, version: &str, time: &str) -> String {
    let mut c = String::new();
    for sr in [&p.o, &p.x] {
        c = ostree(&[
            "commit",
            &format!("--repo={}", s(&sr.join("ostree/repo"))),
            "-b",
            branch,
            "-s",
            version,
            &format!("--timestamp={time}"),
            &format!("--add-metadata-string=version={version}"),
            s(&p.tree),
        ]);
    }
    c
}

fn run_tool(p: &Pair, oxtree: bool, sr: &Path, args: &[&str]) -> Output {
    let prog = if oxtree {
        oxtree_bin()
    } else {
        PathBuf::from("ostree")
    };
    std::process::Command::new(prog)
        .args(args)
        .arg(format!("--sysroot={}", s(sr)))
        .current_dir(&p.t)
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .output()
        .expect("run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn first_error(o: &Output) -> Option<String> {
    text(&o.stderr)
        .lines()
        .find(|l| l.starts_with("error:"))
        .map(str::to_string)
}

/// Run `args` with ostree on its sysroot and oxtree on its own: both succeed, with the
/// same stdout (sysroot paths replaced by `SYSROOT`). Returns ostree's stdout.
fn same(p: &Pair, args: &[&str]) -> String {
    same2(p, args, args)
}

/// [`same`] with oxtree given `args_x` where ostree gets `args`: a row newer than ostree
/// 2022.7 against the older spelling of the same thing.
fn same2(p: &Pair, args: &[&str], args_x: &[&str]) -> String {
    let (ok, out) = compare2(p, args, args_x);
    assert!(ok, "{args:?}: both failed");
    out
}

/// Run `args` with both tools: the same success, stdout and first error line. Returns
/// whether ostree succeeded, and its stdout.
fn compare(p: &Pair, args: &[&str]) -> (bool, String) {
    compare2(p, args, args)
}

fn compare2(p: &Pair, args: &[&str], args_x: &[&str]) -> (bool, String) {
    let a = run_tool(p, false, &p.o, args);
    let b = run_tool(p, true, &p.x, args_x);
    let norm = |t: String, sr: &Path| t.replace(s(sr), "SYSROOT");
    assert_eq!(
        a.status.success(),
        b.status.success(),
        "{args:?}: ostree {:?}, oxtree {:?}\nostree stderr: {}\noxtree stderr: {}",
        a.status,
        b.status,
        text(&a.stderr),
        text(&b.stderr)
    );
    assert!(
        !text(&b.stderr).contains("panicked"),
        "{args:?}: {}",
        text(&b.stderr)
    );
    let (so, sx) = (norm(text(&a.stdout), &p.o), norm(text(&b.stdout), &p.x));
    assert_eq!(so, sx, "{args:?}: stdout differs");
    if !a.status.success() {
        assert_eq!(
            first_error(&a).map(|e| norm(e, &p.o)),
            first_error(&b).map(|e| norm(e, &p.x)),
            "{args:?}: error line differs"
        );
    }
    (a.status.success(), so)
}

/// Both tools list both sysroots alike: ostree's `admin status` of each equals oxtree's of
/// the same sysroot, and the two sysroots list the same deployments.
fn status_same(p: &Pair) {
    let mut outs = Vec::new();
    for sr in [&p.o, &p.x] {
        let a = run_tool(p, false, sr, &["admin", "status"]);
        let b = run_tool(p, true, sr, &["admin", "status"]);
        assert!(a.status.success(), "{}", text(&a.stderr));
        assert_eq!(
            text(&a.stdout),
            text(&b.stdout),
            "admin status of {} differs",
            sr.display()
        );
        outs.push(text(&a.stdout));
    }
    assert_eq!(
        outs[0], outs[1],
        "the two sysroots list different deployments"
    );
}

/// Text of every file under boot/ (symlinks as "-> target"), and of every origin file.
fn layout(sr: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![sr.join("boot"), sr.join("ostree/deploy/testos/deploy")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
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
                if p.starts_with(sr.join("boot")) {
                    stack.push(p);
                } else {
                    out.push((rel, "dir".into()));
                }
            } else {
                let b = std::fs::read(&p).expect("read");
                let t = match String::from_utf8(b.clone()) {
                    Ok(t) if !t.contains(|c: char| c.is_control() && c != '\n') => t,
                    _ => format!("{} bytes", b.len()),
                };
                out.push((rel, t));
            }
        }
    }
    out.sort();
    out
}

fn layout_same(p: &Pair) {
    let (a, b) = (layout(&p.o), layout(&p.x));
    let only = |x: &[(String, String)], y: &[(String, String)]| -> Vec<(String, String)> {
        x.iter().filter(|e| !y.contains(e)).cloned().collect()
    };
    assert!(
        a == b,
        "boot entries, kernels or origins differ\nostree only: {:#?}\noxtree only: {:#?}",
        only(&a, &b),
        only(&b, &a)
    );
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

fn refs(sr: &Path) -> String {
    ostree(&["refs", &format!("--repo={}", s(&sr.join("ostree/repo")))])
}

/// `admin deploy` with each option: the same stdout (ostree's journal lines: /var
/// relabelling, /etc changes, "Bootloader updated; bootconfig swap: …", "Freed objects"),
/// the same entries, kernels, origins and deployment list, and the same refusals.
#[test]
fn deploy_matches_ostree_option_by_option() {
    let p = pair();
    let d = |extra: &[&str]| {
        let mut a = vec!["admin", "deploy", "--os=testos"];
        a.extend_from_slice(extra);
        a.push("testos/main");
        let out = same(&p, &a);
        layout_same(&p);
        status_same(&p);
        out
    };
    let out = d(&[
        "--karg=root=LABEL=root",
        "--karg=quiet",
        "--karg=console=tty0",
    ]);
    assert!(
        out.starts_with("Relabeling /var (no stamp file 'var/.ostree-selabeled' found)\n")
            && out.contains("Bootloader updated; bootconfig swap: yes; bootversion: boot.1.1, deployment count change: 1"),
        "{out}"
    );
    // --karg replaces the inherited value of that key; --karg-append adds another.
    d(&["--karg=console=hvc0", "--karg-append=console=ttyS0"]);
    let out = d(&["--retain"]);
    assert!(out.contains("deployment count change: 1"), "{out}");
    d(&["--not-as-default"]);
    // The same entries again (same kernel, arguments, versions): ostree only moves the
    // link farm, "bootconfig swap: no".
    let out = d(&["--not-as-default"]);
    assert!(
        out.contains("Transaction complete; bootconfig swap: no; bootversion: boot."),
        "{out}"
    );
    // /etc changes of the merge deployment are counted as ostree counts them.
    for sr in [&p.o, &p.x] {
        let etc = deployment_dir(sr, 0).join("etc");
        std::fs::write(etc.join("modified"), "local\n").expect("edit");
        std::fs::remove_file(etc.join("deleted")).expect("rm");
        std::fs::create_dir_all(etc.join("newdir/sub")).expect("mkdir");
        std::fs::write(etc.join("newdir/sub/f"), "x\n").expect("add");
        std::fs::set_permissions(
            etc.join("modechange"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    // (One --karg-delete: ostree 2022.7 honours only the last of several; oxtree all.)
    let out = d(&["--karg-delete=console=ttyS0"]);
    assert!(
        out.contains("Copying /etc changes: 2 modified, 1 removed, 3 added"),
        "{out}"
    );
    // A --karg-delete of what is not there fails first, ostree's words.
    for bad in [
        "--karg-delete=nonexistent",
        "--karg-delete=root=LABEL=other",
    ] {
        let before = layout(&p.x);
        refused_same(&p, &["admin", "deploy", "--os=testos", bad, "testos/main"]);
        assert_eq!(layout(&p.x), before, "{bad} changed the sysroot");
    }
    d(&["--karg-none", "--karg=only=this"]);
    d(&["--retain-pending"]);
    // Three deployments, then one more with --retain-rollback: every deployment after the
    // merge one stays (ostree's "passed the crossover"), not only the first.
    d(&["--retain"]);
    d(&["--retain"]);
    let out = d(&["--retain-rollback"]);
    assert!(out.contains("deployment count change: 1"), "{out}");
    // --no-merge: neither /etc nor kernel arguments, and the old default is not kept.
    let out = d(&["--no-merge"]);
    assert!(!out.contains("Copying /etc"), "{out}");
    // A new commit, then one more: the dropped deployment's objects are pruned
    // ("Freed objects"), unless --no-prune.
    write(&p.tree.join("usr/etc/v2"), b"2\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    d(&["--no-prune"]);
    write(&p.tree.join("usr/etc/v3"), b"3\n", 0o644);
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    // --stateroot (newer than ostree 2022.7) is --os.
    same2(
        &p,
        &["admin", "deploy", "--os=testos", "testos/main"],
        &["admin", "deploy", "--stateroot=testos", "testos/main"],
    );
    layout_same(&p);
    status_same(&p);
    write(&p.tree.join("usr/etc/v4"), b"4\n", 0o644);
    commit(&p, "testos/main", "4.0", "2020-01-04T00:00:00Z");
    let out = d(&[]);
    assert!(out.contains("Freed objects: "), "{out}");
    assert_eq!(refs(&p.o), refs(&p.x), "deployment refs differ");
    // --origin-file: GLib's rewrite of the file (comments gone, `k=v`).
    let origin = p.t.join("custom.origin");
    std::fs::write(
        &origin,
        "# comment\n[origin]\nrefspec=other:testos/main\n\n[custom]\nkey = value  \nn=1\n",
    )
    .expect("write");
    d(&[&format!("--origin-file={}", s(&origin))]);
    // An overlay initramfs: copied under /boot by its checksum, a second initrd line.
    let img = p.t.join("overlay.img");
    std::fs::write(&img, b"overlay initramfs\n").expect("write");
    d(&[&format!("--overlay-initrd={}", s(&img))]);
    assert!(layout(&p.x)
        .iter()
        .any(|(k, _)| k.starts_with("boot/ostree/initramfs-overlays/")));
    // Kept for that deployment when another is written; dropped with it.
    d(&[]);
    // Refusals: the same error line, nothing changed.
    let before = layout(&p.x);
    for args in [
        &["admin", "deploy", "--os=testos"][..],
        &["admin", "deploy", "--os=testos", "nosuchref"],
        &["admin", "deploy", "--os=nosuchos", "testos/main"],
        &[
            "admin",
            "deploy",
            "--os=testos",
            "--origin-file=/nonexistent/origin",
            "testos/main",
        ],
        &[
            "admin",
            "deploy",
            "--os=testos",
            "--overlay-initrd=nonexistent.img",
            "testos/main",
        ],
    ] {
        refused_same(&p, args);
    }
    std::fs::write(&origin, "garbage\n").expect("write");
    refused_same(
        &p,
        &[
            "admin",
            "deploy",
            "--os=testos",
            &format!("--origin-file={}", s(&origin)),
            "testos/main",
        ],
    );
    assert_eq!(layout(&p.x), before, "a refused deploy changed the sysroot");
    ostree(&["fsck", &format!("--repo={}", s(&p.x.join("ostree/repo")))]);
}

/// The whole sysroot (repo included), to show a refused command changed nothing; less the
/// empty lock file, which taking the sysroot lock creates once.
fn tree_of(sr: &Path) -> std::collections::BTreeMap<String, Entry> {
    let mut t = snapshot(sr);
    t.remove("ostree/lock");
    t
}

/// `args` fails with both tools, with the same error line, and neither sysroot changes.
fn refused_same(p: &Pair, args: &[&str]) {
    let bx = tree_of(&p.x);
    let a = run_tool(p, false, &p.o, args);
    let b = run_tool(p, true, &p.x, args);
    assert!(!a.status.success(), "{args:?}: ostree accepted it");
    compare(p, args);
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "{args:?}: exit codes differ"
    );
    // (ostree's own sysroot is not checked: a refused upgrade leaves its repo's
    // tmp/ state changed.)
    let d = snapshot_diff(&bx, &tree_of(&p.x));
    assert!(d.is_empty(), "{args:?} changed oxtree's sysroot: {d}");
}

/// `args` fails with oxtree (a command ostree 2022.7 does not have), its error line
/// containing `want`, and the sysroot is unchanged.
fn refused_x(p: &Pair, args: &[&str], want: &str) {
    let before = tree_of(&p.x);
    let b = run_tool(p, true, &p.x, args);
    let err = text(&b.stderr);
    assert!(!b.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        first_error(&b).is_some_and(|e| e.contains(want)),
        "{args:?}: {err}"
    );
    let d = snapshot_diff(&before, &tree_of(&p.x));
    assert!(d.is_empty(), "{args:?} changed the sysroot: {d}");
}

/// Three deployments of three commits in both sysroots, each tool deploying into its own.
fn three_deployments(p: &Pair) {
    same(p, &["admin", "deploy", "--os=testos", "testos/main"]);
    for (i, v) in [(2, "2.0"), (3, "3.0")] {
        write(&p.tree.join(format!("usr/etc/v{i}")), b"x\n", 0o644);
        commit(p, "testos/main", v, &format!("2020-01-0{i}T00:00:00Z"));
        same(
            p,
            &["admin", "deploy", "--os=testos", "--retain", "testos/main"],
        );
    }
    layout_same(p);
    status_same(p);
}

/// A boot entry of another OS (not `ostree-*.conf`) beside ostree's: status, deploy,
/// kargs and cleanup go on as in ostree, which reads only its own entries (the new
/// `loader.N` holds only those, in both).
#[test]
fn foreign_boot_entries_are_left_to_the_bootloader() {
    let p = pair();
    three_deployments(&p);
    for sr in [&p.o, &p.x] {
        let entries = sr.join("boot/loader/entries");
        std::fs::write(
            entries.join("zz-custom.conf"),
            "title Custom\nlinux /vmlinuz\n",
        )
        .expect("write");
        std::fs::write(
            entries.join("other.conf"),
            "title Other\nlinux /x\noptions ostree=/ostree/boot.9/none/0/0\n",
        )
        .expect("write");
    }
    status_same(&p);
    same(
        &p,
        &["admin", "kargs", "edit-in-place", "--append-if-missing=x"],
    );
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    status_same(&p);
    // (Arguments after status's options are ignored, as by ostree.)
    same(&p, &["admin", "status", "extra-argument"]);
    // An initramfs overlay is kept 0600, as ostree keeps it.
    let overlay = p.t.join("overlay.img");
    std::fs::write(&overlay, b"overlay\n").expect("write");
    let o = format!("--overlay-initrd={}", s(&overlay));
    same(&p, &["admin", "deploy", "--os=testos", &o, "testos/main"]);
    layout_same(&p);
    let modes = |sr: &Path| -> Vec<u32> {
        let dir = sr.join("boot/ostree/initramfs-overlays");
        std::fs::read_dir(&dir)
            .expect("overlays")
            .flatten()
            .map(|e| {
                use std::os::unix::fs::PermissionsExt;
                e.metadata().expect("stat").permissions().mode() & 0o7777
            })
            .collect()
    };
    assert_eq!(modes(&p.o), modes(&p.x));
    assert_eq!(modes(&p.x), vec![0o600]);
}

/// `pin`/`pin --unpin`, `undeploy`, `set-default` (newer than 2022.7: its effect, read by
/// ostree's status) and `status` with its `Pinned: yes` line, against ostree; bad indexes
/// refused alike, nothing changed.
#[test]
fn pin_undeploy_set_default_status_match_ostree() {
    let p = pair();
    three_deployments(&p);
    // Where scripts find the deployed tree.
    assert!(same(&p, &["admin", "--print-current-dir"])
        .starts_with("SYSROOT/ostree/deploy/testos/deploy/"));
    // Options before the command's name, as ostree reads them anywhere.
    for args in [
        &["admin", "status"][..],
        &["admin", "config-diff", "--os=testos"][..],
    ] {
        let out = |prog: PathBuf, sr: &Path| {
            let o = std::process::Command::new(prog)
                .arg(format!("--sysroot={}", s(sr)))
                .args(args)
                .current_dir(&p.t)
                .env("TZ", "UTC")
                .output()
                .expect("run");
            (o.status.code(), text(&o.stdout).replace(s(sr), "SYSROOT"))
        };
        assert_eq!(
            out(PathBuf::from("ostree"), &p.o),
            out(oxtree_bin(), &p.x),
            "--sysroot before {args:?}"
        );
    }
    let out = same(&p, &["admin", "pin", "1"]);
    assert_eq!(out, "Deployment 1 is now pinned\n");
    // The sysroot lock's file goes when the lock is released (libglnx's protocol, which
    // waiters check), so neither tool leaves it.
    for sr in [&p.o, &p.x] {
        assert!(!sr.join("ostree/lock").exists(), "{sr:?}: ostree/lock left");
    }
    same(&p, &["admin", "pin", "1"]);
    layout_same(&p);
    let st = same(&p, &["admin", "status"]);
    assert!(st.contains("    Pinned: yes\n"), "{st}");
    status_same(&p);
    // Several indexes at once; one already pinned.
    same(&p, &["admin", "pin", "0", "1"]);
    same(&p, &["admin", "pin", "--unpin", "0"]);
    same(&p, &["admin", "pin", "-u", "0"]);
    layout_same(&p);
    status_same(&p);
    for bad in [
        &["admin", "pin", "7"][..],
        &["admin", "pin", "abc"],
        &["admin", "pin"],
        &["admin", "undeploy", "3"],
        &["admin", "undeploy"],
    ] {
        refused_same(&p, bad);
    }
    // ostree 2022.7 reads INDEX with atoi: `undeploy x` removes deployment 0. oxtree
    // refuses what is not a number, as its `pin` does.
    refused_x(&p, &["admin", "undeploy", "x"], "Invalid index: x");
    // ostree's option parser reads -1 as an option, and so does oxtree's, in its words.
    refused_x(&p, &["admin", "pin", "-1"], "error: Unknown option -1");
    // A pinned deployment survives a deploy that drops the others.
    write(&p.tree.join("usr/etc/v4"), b"x\n", 0o644);
    commit(&p, "testos/main", "4.0", "2020-01-04T00:00:00Z");
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    layout_same(&p);
    status_same(&p);
    let out = same(&p, &["admin", "undeploy", "1"]);
    assert!(out.contains("Deleted deployment "), "{out}");
    layout_same(&p);
    status_same(&p);
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    assert_eq!(refs(&p.o), refs(&p.x));

    // set-default (not in ostree 2022.7): the chosen deployment first, the others in
    // their order; ostree reads the result.
    let before: Vec<String> = oxtree::sysroot::Sysroot::new(&p.x)
        .deployments()
        .expect("list")
        .iter()
        .map(|d| d.dirname())
        .collect();
    assert!(before.len() >= 2, "{before:?}");
    let out = text(&run_tool(&p, true, &p.x, &["admin", "set-default", "1"]).stdout);
    assert!(!out.contains("already"), "{out}");
    let after: Vec<String> = oxtree::sysroot::Sysroot::new(&p.x)
        .deployments()
        .expect("list")
        .iter()
        .map(|d| d.dirname())
        .collect();
    let mut want = before.clone();
    let d = want.remove(1);
    want.insert(0, d);
    assert_eq!(after, want);
    let a = run_tool(&p, false, &p.x, &["admin", "status"]);
    let b = run_tool(&p, true, &p.x, &["admin", "status"]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout));
    assert!(
        text(&a.stdout)
            .lines()
            .next()
            .is_some_and(|l| l.contains(&want[0])),
        "{}",
        text(&a.stdout)
    );
    let out = text(&run_tool(&p, true, &p.x, &["admin", "set-default", "0"]).stdout);
    assert_eq!(out, "Deployment 0 is already the default\n");
    refused_x(
        &p,
        &["admin", "set-default", "9"],
        "Out of range deployment index 9",
    );
    refused_x(&p, &["admin", "set-default", "zero"], "Invalid index");
    refused_x(&p, &["admin", "set-default"], "INDEX must be specified");
    ostree(&["fsck", &format!("--repo={}", s(&p.x.join("ostree/repo")))]);
}

/// `kargs edit-in-place --append-if-missing` (every entry rewritten in place) and
/// `instutil set-kargs` (plain, `--merge`, `--replace`, `--append`, extra words) against
/// ostree: the same entries; refusals alike and changing nothing.
#[test]
fn kargs_and_set_kargs_match_ostree() {
    let p = pair();
    // Nothing deployed yet.
    refused_same(&p, &["admin", "instutil", "set-kargs", "quiet"]);
    refused_same(
        &p,
        &[
            "admin",
            "kargs",
            "edit-in-place",
            "--append-if-missing=quiet",
        ],
    );
    same(
        &p,
        &[
            "admin",
            "deploy",
            "--os=testos",
            "--karg=root=LABEL=root",
            "--karg-append=console=tty0",
            "--karg-append=console=ttyS0",
            "testos/main",
        ],
    );
    write(&p.tree.join("usr/etc/v2"), b"x\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    same(
        &p,
        &["admin", "deploy", "--os=testos", "--retain", "testos/main"],
    );
    layout_same(&p);
    for args in [
        &[
            "admin",
            "kargs",
            "edit-in-place",
            "--append-if-missing=quiet",
        ][..],
        // Present already (any value): left alone.
        &[
            "admin",
            "kargs",
            "edit-in-place",
            "--append-if-missing=root=LABEL=other",
            "--append-if-missing=rd.luks=0",
        ],
        &[
            "admin",
            "instutil",
            "set-kargs",
            "--merge",
            "--replace=console=hvc0",
        ],
        &[
            "admin",
            "instutil",
            "set-kargs",
            "--merge",
            "--append=console=ttyS1",
            "extra=1",
        ],
        &[
            "admin",
            "instutil",
            "set-kargs",
            "--replace=root=/dev/vda1",
            "ro",
        ],
        &[
            "admin",
            "instutil",
            "set-kargs",
            "only",
            "--append=a=1",
            "--append=a=2",
        ],
    ] {
        same(&p, args);
        layout_same(&p);
        status_same(&p);
    }
    let entries: String = layout(&p.x)
        .into_iter()
        .filter(|(k, _)| k.contains("/entries/"))
        .map(|(_, v)| v)
        .collect();
    // ostree appends --append before the free words.
    assert!(
        entries.contains("options a=1 a=2 only ostree="),
        "{entries}"
    );
    // A control character would start a new line in the entry: refused, nothing written.
    refused_x(
        &p,
        &["admin", "instutil", "set-kargs", "a\ninit=/bin/sh"],
        "control characters",
    );
    refused_x(
        &p,
        &[
            "admin",
            "kargs",
            "edit-in-place",
            "--append-if-missing=a\ninit=/bin/sh",
        ],
        "control characters",
    );
}

/// `set-origin` (with `--index`, `--set`, with and without BRANCH) and `config-diff` (`diff`
/// in newer ostree) against ostree: the same origin files, remotes and listing; unknown
/// indexes, stateroots and a missing remote URL refused alike, nothing changed.
#[test]
fn set_origin_and_config_diff_match_ostree() {
    let p = pair();
    three_deployments(&p);
    let remotes =
        |sr: &Path| std::fs::read_to_string(sr.join("ostree/repo/config")).expect("config");
    same(
        &p,
        &[
            "admin",
            "set-origin",
            "--index=1",
            "--set=gpg-verify=false",
            "-s",
            "tls-permissive=true",
            "upstream",
            "http://example.invalid/repo",
        ],
    );
    same(
        &p,
        &[
            "admin",
            "set-origin",
            "--index",
            "0",
            "upstream",
            "http://example.invalid/other",
            "testos/stable",
        ],
    );
    layout_same(&p);
    status_same(&p);
    assert_eq!(remotes(&p.o), remotes(&p.x));
    for bad in [
        &[
            "admin",
            "set-origin",
            "--index=9",
            "r2",
            "http://x.invalid/",
        ][..],
        &["admin", "set-origin", "--index=0", "r2"],
        &["admin", "set-origin", "--index=0"],
        // Not booted: no deployment to take by default.
        &["admin", "set-origin", "r2", "http://x.invalid/"],
    ] {
        refused_same(&p, bad);
    }
    // /etc of the deployment changed against its defaults: the same M/D/A listing.
    for sr in [&p.o, &p.x] {
        let etc = deployment_dir(sr, 0).join("etc");
        std::fs::write(etc.join("modified"), "local\n").expect("edit");
        std::fs::remove_file(etc.join("deleted")).expect("rm");
        std::fs::create_dir_all(etc.join("newdir")).expect("mkdir");
        std::fs::write(etc.join("newdir/f"), "x\n").expect("add");
    }
    let out = same(&p, &["admin", "config-diff", "--os=testos"]);
    assert!(
        out.contains("M    modified\n") && out.contains("D    deleted\n"),
        "{out}"
    );
    // `admin diff` (newer name) is the same listing.
    same2(
        &p,
        &["admin", "config-diff", "--os=testos"],
        &["admin", "diff", "--os=testos"],
    );
    refused_same(&p, &["admin", "config-diff", "--os=nosuchos"]);
    refused_same(&p, &["admin", "config-diff"]);
}

/// `init-fs` (plain, `--modern`, `--epoch`), `os-init` (and `stateroot-init`, newer) and
/// `cleanup` against ostree: the same directories and modes; a missing path or a bad
/// stateroot name refused alike.
#[test]
fn init_fs_os_init_cleanup_match_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let make = |name: &str| {
        let d = t.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };
    let modes = |sr: &Path| -> Vec<(String, char, u32)> {
        snapshot(sr)
            .into_iter()
            .map(|(k, e)| (k, e.kind, e.mode))
            .collect()
    };
    // --epoch is newer than ostree 2022.7: epoch 1 is its --modern, 0 the default.
    for (n, (eo, ex)) in [
        (&[][..], &[][..]),
        (&["--modern"], &["--modern"]),
        (&["--modern"], &["--epoch=1"]),
        (&[], &["-E", "0"]),
    ]
    .into_iter()
    .enumerate()
    {
        let (o, x) = (make(&format!("o{n}")), make(&format!("x{n}")));
        let a = ex;
        let run = |prog: &Path, dir: &Path, extra: &[&str]| {
            let mut a = vec!["admin", "init-fs"];
            a.extend_from_slice(extra);
            a.push(s(dir));
            run_raw(prog, &a)
        };
        let (ro, rx) = (run(Path::new("ostree"), &o, eo), run(&oxtree_bin(), &x, ex));
        assert!(ro.status.success(), "{a:?}: {}", text(&ro.stderr));
        assert!(rx.status.success(), "{a:?}: {}", text(&rx.stderr));
        assert_eq!(text(&ro.stdout), text(&rx.stdout), "{a:?}");
        let (mo, mx) = (modes(&o), modes(&x));
        // The repo's config is compared by content elsewhere (repo tests); here the layout.
        let strip = |v: Vec<(String, char, u32)>| -> Vec<(String, char, u32)> {
            v.into_iter()
                .filter(|(k, _, _)| !k.starts_with("ostree/repo/"))
                .collect()
        };
        assert_eq!(strip(mo), strip(mx), "{a:?}: layouts differ");
    }
    // status of a directory that is no sysroot (a mistyped --sysroot) fails as in ostree.
    for dir in [make("empty"), t.join("nonexistent")] {
        let sr = format!("--sysroot={}", s(&dir));
        let (ro, rx) = (
            run_raw(Path::new("ostree"), &["admin", "status", &sr]),
            run_raw(&oxtree_bin(), &["admin", "status", &sr]),
        );
        assert_eq!(ro.status.code(), rx.status.code(), "{dir:?}");
        assert_eq!(first_error(&ro), first_error(&rx), "{dir:?}");
        assert_eq!(text(&ro.stdout), text(&rx.stdout), "{dir:?}");
    }
    for args in [
        &["admin", "init-fs", "/nonexistent/sysroot"][..],
        &["admin", "init-fs"],
    ] {
        let a = run_raw(Path::new("ostree"), args);
        let b = run_raw(&oxtree_bin(), args);
        assert_eq!(a.status.success(), b.status.success(), "{args:?}");
        assert!(!b.status.success(), "{args:?}");
        assert!(!text(&b.stderr).contains("panicked"));
    }
    refused_x_path(&["admin", "init-fs", "--epoch=7"], t, "Invalid epoch: 7");
    let p = pair();
    // A second stateroot, and the same one again.
    let out = same(&p, &["admin", "os-init", "other"]);
    assert_eq!(out, "ostree/deploy/other initialized as OSTree root\n");
    // An existing stateroot: refused, as ostree refuses it.
    refused_same(&p, &["admin", "os-init", "other"]);
    same2(
        &p,
        &["admin", "os-init", "third"],
        &["admin", "stateroot-init", "third"],
    );
    let dirs = |sr: &Path| -> Vec<(String, char, u32)> {
        snapshot(&sr.join("ostree/deploy"))
            .into_iter()
            .map(|(k, e)| (k, e.kind, e.mode))
            .collect()
    };
    assert_eq!(dirs(&p.o), dirs(&p.x));
    refused_same(&p, &["admin", "os-init"]);
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    // A deployment directory no entry names any more (as an interrupted deploy leaves
    // it): cleanup removes it, as ostree's does.
    for sr in [&p.o, &p.x] {
        let d = deployment_dir(sr, 0);
        let stray = d.with_file_name(format!(
            "{}.7",
            d.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .expect("name")
        ));
        std::fs::create_dir_all(stray.join("etc")).expect("mkdir");
    }
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    status_same(&p);
}

/// `args DIR` (DIR a fresh directory under `t`) fails with oxtree with `want` in its error
/// line and leaves DIR empty.
fn refused_x_path(args: &[&str], t: &Path, want: &str) {
    let dir = t.join("refused");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut a = args.to_vec();
    a.push(s(&dir));
    let (_, err) = ox_fail(&a);
    assert!(err.contains(want), "{a:?}: {err}");
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        0,
        "{a:?} wrote"
    );
}

/// `upgrade` and `switch`: options parsed and refused as ostree refuses them, the same
/// deployments from a local origin; bad checksums and refs change nothing.
#[test]
fn upgrade_and_switch_match_ostree() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    for bad in [
        &["admin", "upgrade", "--pull-only", "--deploy-only"][..],
        &["admin", "upgrade", "--pull-only", "--reboot"],
        &["admin", "upgrade", "--os=nosuchos"],
        &[
            "admin",
            "upgrade",
            "--os=testos",
            "--override-commit=notachecksum",
        ],
        &["admin", "switch"],
        &["admin", "switch", "--os=testos", "testos/main"],
        &["admin", "switch", "--os=testos", "nosuch/ref"],
        &["admin", "switch", "--os=nosuchos", "testos/other"],
    ] {
        refused_same(&p, bad);
    }
    // Nothing new: the same answer.
    same(&p, &["admin", "upgrade", "--os=testos"]);
    same(&p, &["admin", "upgrade", "--os=testos", "--deploy-only"]);
    // A new commit on the origin's (local) ref: deployed, the same entries.
    write(&p.tree.join("usr/etc/v2"), b"x\n", 0o644);
    let c2 = commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    same(&p, &["admin", "upgrade", "--os=testos", "--pull-only"]);
    same(&p, &["admin", "upgrade", "--os=testos"]);
    layout_same(&p);
    status_same(&p);
    // Another branch: switched to, the origin follows it.
    commit(&p, "testos/other", "3.0", "2020-01-03T00:00:00Z");
    same(&p, &["admin", "switch", "--os=testos", "testos/other"]);
    layout_same(&p);
    status_same(&p);
    assert_eq!(refs(&p.o), refs(&p.x));
    // An older commit is refused unless allowed; --override-commit pins one.
    refused_same(
        &p,
        &[
            "admin",
            "upgrade",
            "--os=testos",
            &format!("--override-commit={c2}"),
        ],
    );
    same(
        &p,
        &[
            "admin",
            "upgrade",
            "--os=testos",
            "--allow-downgrade",
            &format!("--override-commit={c2}"),
        ],
    );
    layout_same(&p);
    status_same(&p);
    // A commit the repo does not have: refused. (Last: ostree 2022.7 has moved the
    // origin's ref to it by then, so its later upgrades fail too; oxtree changes nothing.)
    let unknown = "0".repeat(64);
    refused_same(
        &p,
        &[
            "admin",
            "upgrade",
            "--os=testos",
            &format!("--override-commit={unknown}"),
        ],
    );
}

/// `unlock` (all modes) needs a booted deployment: refused alike on a sysroot that is not
/// booted. The hotfix state is recorded in the origin as ostree records it
/// (`[origin] unlocked=hotfix`), which both tools' `status` read alike.
#[test]
fn unlock_refused_unbooted_and_hotfix_state_read_alike() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    for bad in [
        &["admin", "unlock"][..],
        &["admin", "unlock", "--hotfix"],
        &["admin", "unlock", "--transient"],
    ] {
        refused_same(&p, bad);
    }
    refused_x(
        &p,
        &["admin", "unlock", "--hotfix", "--transient"],
        "Cannot specify both --hotfix and --transient",
    );
    // The record oxtree's unlock --hotfix writes (Sysroot::unlock: GLib's keyfile form
    // with the key added), in both sysroots.
    for sr in [&p.o, &p.x] {
        let d = deployment_dir(sr, 0);
        let origin = d.with_file_name(format!(
            "{}.origin",
            d.file_name().and_then(|n| n.to_str()).expect("name")
        ));
        let t = std::fs::read_to_string(&origin).expect("origin");
        std::fs::write(
            &origin,
            format!(
                "{}unlocked=hotfix\n",
                t.trim_end_matches('\n').to_owned() + "\n"
            ),
        )
        .expect("write");
    }
    let st = same(&p, &["admin", "status"]);
    assert!(st.contains("    Unlocked: hotfix\n"), "{st}");
    status_same(&p);
    // An upgrade leaves the hotfix behind (the new deployment is not unlocked).
    write(&p.tree.join("usr/etc/v2"), b"x\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    same(&p, &["admin", "upgrade", "--os=testos"]);
    layout_same(&p);
    status_same(&p);
}

/// Run `cmd` as if deployment `dep` of sysroot `sr` were booted, as the root switcher
/// leaves a booted system: in private mount and PID namespaces, `dep` is the root of a
/// chroot with the physical root at /sysroot, the stateroot's /var, /boot, `run` as /run
/// (with `ostree-booted`), the host's /usr (for the tools and their libraries; both tools
/// find the booted deployment by the root directory's inode, which is `dep`'s) and
/// oxtree's build directory at /tmp. Nothing leaves the namespaces but the files written.
fn booted_run(sr: &Path, dep: &Path, run: &Path, cmd: &[&str]) -> Output {
    const SCRIPT: &str = r#"set -e
sr=$1 dep=$2 run=$3 bin=$4; shift 4
mount --make-rprivate /
mount --bind "$sr" "$dep/sysroot"
mount --bind /usr "$dep/usr"
mount --bind "$sr/ostree/deploy/testos/var" "$dep/var"
mount --rbind /dev "$dep/dev"
mount -t proc proc "$dep/proc"
mount --bind "$run" "$dep/run"
touch "$dep/run/ostree-booted"
mount --bind "$bin" "$dep/tmp"
mount --bind "$sr/boot" "$dep/boot"
exec chroot "$dep" "$@"
"#;
    std::fs::create_dir_all(run).expect("mkdir run");
    let bin = oxtree_bin();
    let bindir = bin.parent().expect("build dir");
    std::process::Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "sh", "-c", SCRIPT, "sh"])
        .args([s(sr), s(dep), s(run), s(bindir)])
        .args(cmd)
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .output()
        .expect("unshare")
}

/// The tools' program names inside [`booted_run`]'s root.
fn booted_prog(oxtree: bool) -> String {
    if oxtree {
        format!(
            "/tmp/{}",
            oxtree_bin()
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
        )
    } else {
        "ostree".into()
    }
}

/// On a booted system (deployment 1 of 3 booted: 0 is pending, 2 the rollback): `status`
/// with its markers, `config-diff` and `set-origin` without naming a deployment, `unlock`
/// (development, transient, hotfix) — each run by ostree on its sysroot and by oxtree on
/// its own; the same stdout, success and error line, the same deployments, origins and
/// /run records, and each tool's `status` of the other's sysroot alike.
#[test]
fn booted_system_commands_match_ostree() {
    let p = pair();
    three_deployments(&p);
    let (dep_o, dep_x) = (deployment_dir(&p.o, 1), deployment_dir(&p.x, 1));
    // `boot`: the name of this boot's /run (a new name is a reboot).
    let b_same = |boot: &str, args: &[&str]| -> String {
        let mut a = vec![booted_prog(false)];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = booted_run(&p.o, &dep_o, &p.t.join(format!("run-o-{boot}")), &a);
        let mut b = vec![booted_prog(true)];
        b.extend(args.iter().map(|s| s.to_string()));
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let x = booted_run(&p.x, &dep_x, &p.t.join(format!("run-x-{boot}")), &b);
        assert_eq!(
            o.status.success(),
            x.status.success(),
            "{args:?}: ostree {:?}, oxtree {:?}\nostree stderr: {}\noxtree stderr: {}",
            o.status,
            x.status,
            text(&o.stderr),
            text(&x.stderr)
        );
        assert!(!text(&x.stderr).contains("panicked"), "{}", text(&x.stderr));
        assert_eq!(text(&o.stdout), text(&x.stdout), "{args:?}: stdout differs");
        if !o.status.success() {
            assert_eq!(first_error(&o), first_error(&x), "{args:?}: error differs");
        }
        text(&o.stdout)
    };
    // Both tools' status of both booted sysroots: one text.
    let b_status_same = |boot: &str| {
        let mut outs = Vec::new();
        for (sr, dep, tag) in [(&p.o, &dep_o, "o"), (&p.x, &dep_x, "x")] {
            let run = p.t.join(format!("run-{tag}-{boot}"));
            let a = booted_run(sr, dep, &run, &[&booted_prog(false), "admin", "status"]);
            let b = booted_run(sr, dep, &run, &[&booted_prog(true), "admin", "status"]);
            assert!(a.status.success(), "{}", text(&a.stderr));
            assert_eq!(
                text(&a.stdout),
                text(&b.stdout),
                "status of {}",
                sr.display()
            );
            outs.push(text(&a.stdout));
        }
        assert_eq!(outs[0], outs[1]);
        outs.remove(0)
    };
    let st = b_same("1", &["admin", "status"]);
    assert!(
        st.contains(" (pending)\n") && st.contains(" (rollback)\n") && st.contains("\n* testos "),
        "{st}"
    );
    b_status_same("1");
    // oxtree's --is-default (newer than 2022.7): the booted one is not the default.
    let x = booted_run(
        &p.x,
        &dep_x,
        &p.t.join("run-x-1"),
        &[&booted_prog(true), "admin", "status", "--is-default"],
    );
    assert_eq!(text(&x.stdout), "not-default\n", "{}", text(&x.stderr));
    // --json (newer than 2022.7): the same facts as the listing.
    let x = booted_run(
        &p.x,
        &dep_x,
        &p.t.join("run-x-1"),
        &[&booted_prog(true), "admin", "status", "--json"],
    );
    let j: serde_json::Value = serde_json::from_slice(&x.stdout).expect("json");
    let ds = j["deployments"].as_array().expect("deployments");
    assert_eq!(ds.len(), 3, "{j}");
    assert_eq!(
        ds.iter()
            .map(|d| (
                d["index"].as_u64(),
                d["booted"].as_bool(),
                d["pending"].as_bool(),
                d["rollback"].as_bool()
            ))
            .collect::<Vec<_>>(),
        [
            (Some(0), Some(false), Some(true), Some(false)),
            (Some(1), Some(true), Some(false), Some(false)),
            (Some(2), Some(false), Some(false), Some(true)),
        ],
        "{j}"
    );
    assert_eq!(ds[1]["version"], "2.0", "{j}");
    // /etc of the booted deployment against its defaults, without --os.
    for sr in [&p.o, &p.x] {
        let etc = deployment_dir(sr, 1).join("etc");
        std::fs::write(etc.join("modified"), "local\n").expect("edit");
        std::fs::write(etc.join("added"), "new\n").expect("add");
    }
    let out = b_same("1", &["admin", "config-diff"]);
    assert!(
        out.contains("M    modified\n") && out.contains("A    added\n"),
        "{out}"
    );
    // set-origin of the booted deployment.
    // (gpg-verify off: ostree 2022.7's plain status checks the signatures of a booted
    // deployment whose remote verifies, and fails on an unsigned commit; oxtree's checks
    // them with --verify.)
    b_same(
        "1",
        &[
            "admin",
            "set-origin",
            "--set=gpg-verify=false",
            "upstream",
            "http://example.invalid/repo",
        ],
    );
    layout_same(&p);
    let st = b_status_same("1");
    assert!(st.contains("origin refspec: upstream:testos/main"), "{st}");
    // Both write a booted system's new remote to /etc/ostree/remotes.d/NAME.conf, alike
    // (the system repo's config keeps no group for it); dropped so /etc matches again.
    let mut confs = Vec::new();
    for sr in [&p.o, &p.x] {
        let conf = deployment_dir(sr, 1).join("etc/ostree");
        let f = conf.join("remotes.d/upstream.conf");
        confs.push(std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        std::fs::remove_dir_all(&conf).expect("rm");
        let cfg = std::fs::read_to_string(sr.join("ostree/repo/config")).expect("config");
        assert!(!cfg.contains("upstream"), "{cfg}");
    }
    assert_eq!(confs[0], confs[1]);
    assert!(
        confs[0].contains("url=http://example.invalid/repo"),
        "{}",
        confs[0]
    );

    // unlock: development, then (a reboot later) transient; recorded in /run as ostree
    // records it, read alike.
    let out = b_same("2", &["admin", "unlock"]);
    assert!(out.starts_with("Development mode enabled."), "{out}");
    let st = b_status_same("2");
    assert!(st.contains("    Unlocked: development\n"), "{st}");
    b_same("2", &["admin", "unlock"]);
    b_same("3", &["admin", "unlock", "--transient"]);
    let st = b_status_same("3");
    assert!(st.contains("    Unlocked: transient\n"), "{st}");
    for (tag, mode) in [("2", "development"), ("3", "transient")] {
        for side in ["o", "x"] {
            let dir =
                p.t.join(format!("run-{side}-{tag}/ostree/deployment-state"));
            let rec: Vec<String> = std::fs::read_dir(&dir)
                .expect("deployment-state")
                .flatten()
                .map(|e| {
                    let f = e.path().join(format!("unlocked-{mode}"));
                    std::fs::read_to_string(&f).expect("record")
                })
                .collect();
            assert_eq!(rec.len(), 1, "{side} {mode}");
            assert!(
                rec[0].starts_with("/var/tmp/ostree-unlock-ovl."),
                "{side}: {rec:?}"
            );
        }
    }
    // hotfix: a clone becomes the rollback, the origin records it, the overlay's
    // directories are in the deployment; kept across reboots.
    let out = b_same("4", &["admin", "unlock", "--hotfix"]);
    assert!(out.contains("Hotfix mode enabled."), "{out}");
    layout_same(&p);
    status_same(&p);
    let st = b_status_same("5");
    assert!(st.contains("    Unlocked: hotfix\n"), "{st}");
    for dep in [&dep_o, &dep_x] {
        for d in [".usr-ovl-upper", ".usr-ovl-work"] {
            assert!(dep.join(d).is_dir(), "{}/{d}", dep.display());
        }
    }
    b_same("5", &["admin", "unlock", "--hotfix"]);
    // The next boot: oxtree's root switcher mounts the hotfix overlay on /usr (writable,
    // its changes in the deployment's .usr-ovl-upper), for ostree's hotfix as for its own.
    for sr in [&p.o, &p.x] {
        let d = oxtree::sysroot::Sysroot::new(sr)
            .deployments()
            .expect("deployments");
        let hot = d
            .iter()
            .find(|d| d.unlocked == oxtree::sysroot::Unlocked::Hotfix)
            .expect("the hotfixed deployment");
        let options = hot.entry.get("options").expect("options").to_string();
        let run = p.t.join(format!(
            "prepare-run-{}",
            sr.file_name().and_then(|n| n.to_str()).expect("name")
        ));
        let script = format!(
            "set -e; mount --bind {sr} {sr}; {ox} admin prepare-root --sysroot={sr} \
             --cmdline='{options}' --run-dir={run} >/dev/null; touch {sr}/usr/hotfixed; echo OK",
            sr = s(sr),
            ox = s(&oxtree_bin()),
            run = s(&run),
        );
        let out = run_ok(
            Path::new("unshare"),
            &["-m", "--propagation", "private", "sh", "-c", &script],
        );
        assert!(out.ends_with("OK"), "{out}");
        let dir = sr
            .join("ostree/deploy")
            .join(&hot.stateroot)
            .join("deploy")
            .join(hot.dirname());
        assert!(
            dir.join(".usr-ovl-upper/hotfixed").is_file(),
            "{}",
            dir.display()
        );
        assert!(!dir.join("usr/hotfixed").exists());
    }
}

/// On a booted system: `deploy --stage` (ostree's `(staged)` line, read by both tools),
/// `deploy --lock-finalization` and `lock-finalization [--unlock]` (newer than 2022.7:
/// ostree's /run record), the booted deployment refused by `undeploy`, and `upgrade` /
/// `deploy` without `--os` (the booted stateroot).
#[test]
fn booted_staging_matches_ostree() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    let (dep_o, dep_x) = (deployment_dir(&p.o, 0), deployment_dir(&p.x, 0));
    let run = |oxtree: bool, args: &[&str]| -> Output {
        let mut a = vec![booted_prog(oxtree)];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        if oxtree {
            booted_run(&p.x, &dep_x, &p.t.join("run-x"), &a)
        } else {
            booted_run(&p.o, &dep_o, &p.t.join("run-o"), &a)
        }
    };
    let b_same = |args: &[&str]| -> String {
        let (o, x) = (run(false, args), run(true, args));
        assert_eq!(
            o.status.success(),
            x.status.success(),
            "{args:?}\nostree stderr: {}\noxtree stderr: {}",
            text(&o.stderr),
            text(&x.stderr)
        );
        assert!(!text(&x.stderr).contains("panicked"), "{}", text(&x.stderr));
        assert_eq!(text(&o.stdout), text(&x.stdout), "{args:?}: stdout differs");
        if !o.status.success() {
            assert_eq!(first_error(&o), first_error(&x), "{args:?}: error differs");
        }
        text(&o.stdout)
    };
    b_same(&["admin", "undeploy", "0"]);
    b_same(&["admin", "status"]);
    write(&p.tree.join("usr/etc/v2"), b"x\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    b_same(&["admin", "deploy", "--stage", "testos/main"]);
    let st = b_same(&["admin", "status"]);
    assert!(st.contains(" (staged)\n"), "{st}");
    // Each tool reads the other's staged deployment.
    for oxtree in [false, true] {
        let a = run(oxtree, &["admin", "status"]);
        let sr = if oxtree { &p.x } else { &p.o };
        let dep = if oxtree { &dep_x } else { &dep_o };
        let tag = if oxtree { "run-x" } else { "run-o" };
        let other = booted_run(
            sr,
            dep,
            &p.t.join(tag),
            &[&booted_prog(!oxtree), "admin", "status"],
        );
        assert_eq!(
            text(&a.stdout),
            text(&other.stdout),
            "status of {}",
            sr.display()
        );
    }
    // upgrade --stage and switch of the booted stateroot (no --os), staged again.
    write(&p.tree.join("usr/etc/v3"), b"x\n", 0o644);
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    b_same(&["admin", "upgrade", "--stage"]);
    let st = b_same(&["admin", "status"]);
    assert!(st.contains(" (staged)\n"), "{st}");
    commit(&p, "testos/other", "4.0", "2020-01-04T00:00:00Z");
    b_same(&["admin", "switch", "testos/other"]);
    b_same(&["admin", "status"]);
    layout_same(&p);
    // (switch deleted the old ref, as ostree does.)
    assert_eq!(b_same(&["admin", "deploy", "--stage", "testos/main"]), "");
    b_same(&["admin", "deploy", "--stage", "testos/other"]);
    let st = b_same(&["admin", "status"]);
    assert!(st.contains(" (staged)\n"), "{st}");
    // Indexes while a deployment is staged: pin and undeploy as ostree counts.
    b_same(&["admin", "pin", "0"]);
    b_same(&["admin", "pin", "1"]);
    b_same(&["admin", "pin", "--unpin", "1"]);
    b_same(&["admin", "undeploy", "1"]);
    b_same(&["admin", "status"]);
    layout_same(&p);
    b_same(&["admin", "deploy", "--os=testos", "--retain", "testos/other"]);
    b_same(&["admin", "deploy", "--stage", "testos/other"]);
    let out = b_same(&["admin", "undeploy", "0"]);
    assert!(out.starts_with("Deleted deployment "), "{out}");
    let st = b_same(&["admin", "status"]);
    assert!(!st.contains("(staged)"), "{st}");
    layout_same(&p);
    b_same(&["admin", "deploy", "--stage", "testos/other"]);
    // Finalization lock (oxtree only; ostree's record).
    let lock = p.t.join("run-x/ostree/staged-deployment-locked");
    let x = run(true, &["admin", "lock-finalization"]);
    assert_eq!(
        text(&x.stdout),
        "Staged deployment is now finalization locked\n",
        "{}",
        text(&x.stderr)
    );
    assert!(lock.exists());
    let x = run(true, &["admin", "lock-finalization"]);
    assert_eq!(
        text(&x.stdout),
        "Staged deployment is already finalization locked\n"
    );
    // ostree reads the lock: its status still lists the staged deployment.
    let o = booted_run(
        &p.x,
        &dep_x,
        &p.t.join("run-x"),
        &["ostree", "admin", "status"],
    );
    assert!(
        text(&o.stdout).contains(" (staged)\n"),
        "{}",
        text(&o.stdout)
    );
    let x = run(true, &["admin", "lock-finalization", "--unlock"]);
    assert_eq!(
        text(&x.stdout),
        "Staged deployment is now queued to apply on shutdown\n"
    );
    assert!(!lock.exists());
    // A new staged deployment with the lock at once.
    let x = run(
        true,
        &[
            "admin",
            "deploy",
            "--stage",
            "--lock-finalization",
            "testos/other",
        ],
    );
    assert!(x.status.success(), "{}", text(&x.stderr));
    assert!(lock.exists());
    // Without a staged deployment: refused.
    let x = booted_run(
        &p.x,
        &dep_x,
        &p.t.join("run-x-none"),
        &[&booted_prog(true), "admin", "lock-finalization"],
    );
    assert!(!x.status.success());
    assert!(
        text(&x.stderr).contains("No deployment is staged"),
        "{}",
        text(&x.stderr)
    );
    // Not without --stage.
    let before = tree_of(&p.x);
    let x = run(
        true,
        &["admin", "deploy", "--lock-finalization", "testos/other"],
    );
    assert!(!x.status.success());
    assert!(
        text(&x.stderr).contains("--lock-finalization requires --stage"),
        "{}",
        text(&x.stderr)
    );
    assert!(snapshot_diff(&before, &tree_of(&p.x)).is_empty());
}

fn immutable(p: &Path) -> bool {
    let o = std::process::Command::new("lsattr")
        .arg("-d")
        .arg(p)
        .output()
        .expect("lsattr");
    text(&o.stdout)
        .split_whitespace()
        .next()
        .is_some_and(|f| f.contains('i'))
}

/// `instutil grub2-generate` and `selinux-ensure-labeled` (no policy) print what ostree
/// prints; rows newer than 2022.7 by their effect: `post-copy` marks deployments immutable
/// again, `prepare-soft-reboot` assembles /run/nextroot and `--reset` takes it down,
/// `state-overlay` keeps its changes in /var; `upgrade --kexec` with a kernel the machine
/// cannot boot fails naming kexec, the deployment written.
#[test]
fn instutil_and_newer_rows_work() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    same(
        &p,
        &["admin", "deploy", "--os=testos", "--retain", "testos/main"],
    );
    let gen = |oxtree: bool, sr: &Path, env: bool| {
        let mut c = std::process::Command::new(if oxtree {
            oxtree_bin()
        } else {
            PathBuf::from("ostree")
        });
        c.args(["admin", "instutil", "grub2-generate"])
            .arg(format!("--sysroot={}", s(sr)));
        if env {
            c.env("GRUB2_BOOT_DEVICE_ID", "dev-id")
                .env("GRUB2_PREPARE_ROOT_CACHE", "search --set=root x");
        }
        c.output().expect("run")
    };
    let (a, b) = (gen(false, &p.o, true), gen(true, &p.x, true));
    assert!(
        a.status.success() && b.status.success(),
        "{}",
        text(&b.stderr)
    );
    assert!(
        text(&a.stdout).contains("menuentry "),
        "{}",
        text(&a.stdout)
    );
    assert_eq!(text(&a.stdout), text(&b.stdout));
    // ostree 2022.7 aborts on an assertion without the variables; oxtree says which.
    let b = gen(true, &p.x, false);
    assert!(!b.status.success());
    assert!(
        text(&b.stderr).contains("GRUB2_BOOT_DEVICE_ID is not set"),
        "{}",
        text(&b.stderr)
    );
    let out = same(&p, &["admin", "instutil", "selinux-ensure-labeled"]);
    assert!(
        out.starts_with("No SELinux policy found in deployment"),
        "{out}"
    );
    // A deployment with a policy: oxtree loads none, so it refuses, saying why.
    let etc = deployment_dir(&p.x, 0).join("etc/selinux");
    std::fs::create_dir_all(etc.join("targeted")).expect("mkdir");
    std::fs::write(
        etc.join("config"),
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    )
    .expect("write");
    refused_x(
        &p,
        &["admin", "instutil", "selinux-ensure-labeled"],
        "SELinux labelling is not supported by oxtree",
    );
    std::fs::remove_dir_all(&etc).expect("rm");

    // post-copy: what a copy loses.
    let dirs = [deployment_dir(&p.x, 0), deployment_dir(&p.x, 1)];
    for d in &dirs {
        assert!(immutable(d), "{}", d.display());
        let st = std::process::Command::new("chattr")
            .arg("-i")
            .arg(d)
            .status()
            .expect("chattr");
        assert!(st.success());
    }
    let o = run_tool(&p, true, &p.x, &["admin", "post-copy"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for d in &dirs {
        assert!(immutable(d), "{} not immutable again", d.display());
    }

    // prepare-soft-reboot and state-overlay, in the booted namespaces.
    let dep = deployment_dir(&p.x, 0);
    let oxb = booted_prog(true);
    let script = format!(
        "{oxb} admin prepare-soft-reboot 1 && \
         grep -q ' /run/nextroot ' /proc/self/mountinfo && \
         test -e /run/nextroot/usr/bin/hello && \
         {oxb} admin prepare-soft-reboot --reset && \
         ! grep -q ' /run/nextroot ' /proc/self/mountinfo && \
         {oxb} admin prepare-soft-reboot --reset && \
         {oxb} admin state-overlay keep /etc && \
         echo kept > /etc/overlay-file && \
         echo prepared"
    );
    let o = booted_run(&p.x, &dep, &p.t.join("run-x"), &["/bin/sh", "-c", &script]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("Prepared soft-reboot into testos ")
            && out.contains("No soft-reboot is prepared.\n")
            && out.ends_with("prepared\n"),
        "{out}"
    );
    let upper =
        p.x.join("ostree/deploy/testos/var/ostree/state-overlays/keep/upper/overlay-file");
    assert_eq!(std::fs::read_to_string(&upper).expect("upper"), "kept\n");
    assert!(!dep.join("etc/overlay-file").exists());
    let o = booted_run(
        &p.x,
        &dep,
        &p.t.join("run-x"),
        &[&oxb, "admin", "prepare-soft-reboot", "7"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("Out of range deployment index 7"),
        "{}",
        text(&o.stderr)
    );

    // kexec: the test kernel is no kernel; the load is refused, the deployment stays.
    write(&p.tree.join("usr/etc/v2"), b"x\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    let o = run_tool(
        &p,
        true,
        &p.x,
        &["admin", "upgrade", "--os=testos", "--kexec"],
    );
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("kexec: loading ")
            && text(&o.stderr).contains("a normal reboot boots it"),
        "{}",
        text(&o.stderr)
    );
    let st = ox(&["admin", "status", &format!("--sysroot={}", s(&p.x))]);
    assert!(st.contains("Version: 2.0"), "{st}");
}

/// `status --verify`: the GPG lines of each deployment's commit against its origin's
/// remote keys, as ostree prints them; `--skip-signatures` (newer) leaves them out; an
/// unsigned commit or a remote without keys refused alike.
#[test]
fn status_verify_matches_ostree() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    // A second deployment whose origin names no remote: --verify refuses it.
    same(
        &p,
        &["admin", "deploy", "--os=testos", "--retain", "testos/main"],
    );
    let home = p.t.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "Signer <signer@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let fpr = gpg(&home, &["--list-keys", "--with-colons", "Signer"])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    let public = p.t.join("signer.asc");
    gpg(
        &home,
        &["--armor", "--output", s(&public), "--export", &fpr],
    );
    same(
        &p,
        &[
            "admin",
            "set-origin",
            "--index=0",
            "upstream",
            "http://example.invalid/repo",
        ],
    );
    // No keys, no signature: refused alike.
    refused_same(&p, &["admin", "status", "--verify"]);
    // ostree's plain status also wants a signature when the remote verifies them.
    refused_same(&p, &["admin", "status"]);
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        ostree(&["remote", "gpg-import", &repo, "-k", s(&public), "upstream"]);
    }
    refused_same(&p, &["admin", "status", "--verify"]);
    // Signed once, the signature copied: both repos carry the same one (same time).
    let repo_o = format!("--repo={}", s(&p.o.join("ostree/repo")));
    ostree(&[
        "gpg-sign",
        &repo_o,
        &format!("--gpg-homedir={}", s(&home)),
        "testos/main",
        &fpr,
    ]);
    let c = ostree(&["rev-parse", &repo_o, "testos/main"]);
    let c = c.trim();
    let meta = format!("ostree/repo/objects/{}/{}.commitmeta", &c[..2], &c[2..]);
    std::fs::copy(p.o.join(&meta), p.x.join(&meta)).expect("copy the signature");
    refused_same(&p, &["admin", "status", "--verify"]);
    same(
        &p,
        &[
            "admin",
            "set-origin",
            "--index=1",
            "upstream",
            "http://example.invalid/repo",
        ],
    );
    let out = same(&p, &["admin", "status", "--verify"]);
    assert!(
        out.contains("GPG: Signature made ")
            && out.contains("GPG: Good signature from \"Signer <signer@example.com>\""),
        "{out}"
    );
    // Without --verify: the same listing (no GPG lines).
    let plain = same(&p, &["admin", "status"]);
    assert!(!plain.contains("GPG"), "{plain}");
    // The key gone: the description is the error.
    let keyfile = |sr: &Path| sr.join("ostree/repo/upstream.trustedkeys.gpg");
    for sr in [&p.o, &p.x] {
        std::fs::rename(keyfile(sr), sr.join("keys.bak")).expect("mv");
    }
    refused_same(&p, &["admin", "status", "--verify"]);
    same(&p, &["admin", "status"]);
    for sr in [&p.o, &p.x] {
        std::fs::rename(sr.join("keys.bak"), keyfile(sr)).expect("mv");
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        ostree(&[
            "config",
            &repo,
            "set",
            "remote \"upstream\".gpg-verify",
            "false",
        ]);
    }
    // Verification off for the remote: --verify refused, plain status fine.
    refused_same(&p, &["admin", "status", "--verify"]);
    same(&p, &["admin", "status"]);
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        ostree(&[
            "config",
            &repo,
            "set",
            "remote \"upstream\".gpg-verify",
            "true",
        ]);
    }
    let x = text(
        &run_tool(
            &p,
            true,
            &p.x,
            &["admin", "status", "--verify", "--skip-signatures"],
        )
        .stdout,
    );
    assert!(
        !x.contains("GPG:") && x.contains("origin refspec: upstream:testos/main"),
        "{x}"
    );
}

/// Bad input to the admin commands: a directory as `--origin-file`, a malformed origin of
/// a deployment, `state-overlay` names and paths that cannot be, `set-kargs
/// --import-proc-cmdline` (both read this machine's command line) — ostree's outcome where
/// it has the command, nothing changed where refused.
#[test]
fn admin_bad_input_is_refused_alike() {
    let p = pair();
    same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    let dir = p.t.join("a-directory");
    std::fs::create_dir_all(&dir).expect("mkdir");
    refused_same(
        &p,
        &[
            "admin",
            "deploy",
            "--os=testos",
            &format!("--origin-file={}", s(&dir)),
            "testos/main",
        ],
    );
    same(
        &p,
        &["admin", "instutil", "set-kargs", "--import-proc-cmdline"],
    );
    layout_same(&p);
    // A malformed origin: the commands that read the deployments refuse, naming it.
    for sr in [&p.o, &p.x] {
        let d = deployment_dir(sr, 0);
        let origin = d.with_file_name(format!(
            "{}.origin",
            d.file_name().and_then(|n| n.to_str()).expect("name")
        ));
        std::fs::write(&origin, "garbage\n").expect("write");
    }
    let before = tree_of(&p.x);
    for args in [
        &["admin", "status"][..],
        &["admin", "pin", "0"],
        &["admin", "upgrade", "--os=testos"],
        &["admin", "set-origin", "--index=0", "r", "http://x.invalid/"],
    ] {
        refused_same(&p, args);
    }
    let d = snapshot_diff(&before, &tree_of(&p.x));
    assert!(d.is_empty(), "{d}");
    // state-overlay: a name that is a path, a relative or missing mount path.
    for (args, want) in [
        (
            &["admin", "state-overlay", "a/b", "/etc"][..],
            "invalid state overlay name",
        ),
        (
            &["admin", "state-overlay", "..", "/etc"],
            "invalid state overlay name",
        ),
        (
            &["admin", "state-overlay", "n", "etc"],
            "not an absolute path to a directory",
        ),
        (
            &["admin", "state-overlay", "n", "/nonexistent"],
            "not an absolute path to a directory",
        ),
        (
            &["admin", "state-overlay", "n"],
            "NAME and MOUNTPATH must be specified",
        ),
    ] {
        refused_x(&p, args, want);
    }
}

/// `upgrade` and `switch` from a remote (served over HTTP): the pull, the deploy, `switch
/// REMOTE:` (only the remote changes), `--pull-only` then `--deploy-only`, and a downgrade
/// refused in ostree's words unless `--allow-downgrade` — ostree and oxtree each on their
/// own sysroot, the same stdout, entries, origins and refs.
#[test]
fn upgrade_and_switch_from_a_remote_match_ostree() {
    let p = pair();
    let served = p.t.join("served");
    ostree(&["init", "--mode=archive", &format!("--repo={}", s(&served))]);
    let publish = |version: &str, time: &str| {
        ostree(&[
            "commit",
            &format!("--repo={}", s(&served)),
            "-b",
            "testos/main",
            "-s",
            version,
            &format!("--timestamp={time}"),
            &format!("--add-metadata-string=version={version}"),
            s(&p.tree),
        ])
    };
    let c1 = publish("1.0", "2021-01-01T00:00:00Z");
    let server = Server::start(&served);
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        for name in ["origin", "mirror"] {
            ostree(&["remote", "add", &repo, "--no-gpg-verify", name, &server.url]);
        }
        ostree(&["pull", &repo, "origin", "testos/main"]);
    }
    same(
        &p,
        &["admin", "deploy", "--os=testos", "origin:testos/main"],
    );
    same(&p, &["admin", "upgrade", "--os=testos"]);
    write(&p.tree.join("usr/etc/v2"), b"2\n", 0o644);
    publish("2.0", "2021-01-02T00:00:00Z");
    same(&p, &["admin", "upgrade", "--os=testos", "--pull-only"]);
    layout_same(&p);
    same(&p, &["admin", "upgrade", "--os=testos", "--deploy-only"]);
    layout_same(&p);
    status_same(&p);
    // Only the remote changes.
    same(&p, &["admin", "switch", "--os=testos", "mirror:"]);
    layout_same(&p);
    status_same(&p);
    assert_eq!(refs(&p.o), refs(&p.x));
    // The server goes back in time: refused (nothing deployed), then allowed.
    ostree(&[
        "reset",
        &format!("--repo={}", s(&served)),
        "testos/main",
        &c1,
    ]);
    ostree(&["summary", "-u", &format!("--repo={}", s(&served))]);
    let before = tree_of(&p.x);
    let a = run_tool(&p, false, &p.o, &["admin", "upgrade", "--os=testos"]);
    let b = run_tool(&p, true, &p.x, &["admin", "upgrade", "--os=testos"]);
    assert!(
        !a.status.success() && !b.status.success(),
        "{}",
        text(&b.stdout)
    );
    let norm = |e: Option<String>| e.unwrap_or_default();
    assert_eq!(norm(first_error(&a)), norm(first_error(&b)));
    assert!(
        norm(first_error(&b)).contains("is chronologically older"),
        "{:?}",
        first_error(&b)
    );
    let d = snapshot_diff(&before, &tree_of(&p.x));
    assert!(d.is_empty(), "a refused downgrade changed the sysroot: {d}");
    same(
        &p,
        &["admin", "upgrade", "--os=testos", "--allow-downgrade"],
    );
    layout_same(&p);
    status_same(&p);
}

/// A sysroot's `etc/ostree/remotes.d/*.conf` configures remotes of its repo, as Fedora
/// CoreOS ships its remote: `admin upgrade` pulls through one (and fails the same way
/// without it), and `remote delete --sysroot` removes its file. Compared with ostree.
#[test]
fn remotes_d_of_the_sysroot_as_ostree() {
    let p = pair();
    // The update server: an archive repo with a newer commit of the same branch.
    let srv = p.t.join("srv");
    ostree(&["init", &format!("--repo={}", s(&srv)), "--mode=archive"]);
    let v1 = commit(&p, "testos/main", "1.0", "2020-01-01T00:00:00Z");
    let v2 = ostree(&[
        "commit",
        &format!("--repo={}", s(&srv)),
        "-b",
        "testos/main",
        "-s",
        "2.0",
        "--timestamp=2021-01-01T00:00:00Z",
        "--add-metadata-string=version=2.0",
        s(&p.tree),
    ]);
    ostree(&["summary", "-u", &format!("--repo={}", s(&srv))]);
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        // The deployment's origin names remote "fleet", which only remotes.d configures.
        ostree(&["refs", &repo, "--create=fleet:testos/main", &v1]);
    }
    same(&p, &["admin", "deploy", "--os=testos", "fleet:testos/main"]);
    // Without the remotes.d file: "Remote "fleet" not found", from both.
    let (ok, _) = compare(&p, &["admin", "upgrade", "--os=testos", "--pull-only"]);
    assert!(!ok);
    for sr in [&p.o, &p.x] {
        write(
            &sr.join("etc/ostree/remotes.d/fleet.conf"),
            format!(
                "[remote \"fleet\"]\nurl=file://{}\ngpg-verify=false\n",
                s(&srv)
            )
            .as_bytes(),
            0o644,
        );
    }
    let (ok, _) = compare(&p, &["admin", "upgrade", "--os=testos", "--pull-only"]);
    assert!(ok, "both pull through the remotes.d remote");
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        assert_eq!(ostree(&["rev-parse", &repo, "fleet:testos/main"]), v2);
    }
    // The repo opened by path does not see the sysroot's remotes.d (as ostree).
    for sr in [&p.o, &p.x] {
        let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
        assert_eq!(
            ox(&["remote", "list", &repo]),
            ostree(&["remote", "list", &repo])
        );
    }
    // remote delete --sysroot removes the file.
    let (ok, _) = compare(&p, &["remote", "delete", "fleet"]);
    assert!(ok);
    for sr in [&p.o, &p.x] {
        assert!(
            !sr.join("etc/ostree/remotes.d/fleet.conf").exists(),
            "{}",
            s(sr)
        );
    }
    // A malformed remotes.d file is an error naming it.
    write(
        &p.x.join("etc/ostree/remotes.d/bad.conf"),
        b"[remote \"x\"\nurl=\n",
        0o644,
    );
    let o = run_tool(
        &p,
        true,
        &p.x,
        &["admin", "upgrade", "--os=testos", "--pull-only"],
    );
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.conf"), "{}", text(&o.stderr));
}

/// The entry of the default deployment (version = the number of deployments) of `sr`.
fn default_entry(sr: &Path) -> String {
    let dir = sr.join("boot/loader/entries");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("entries")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let texts: Vec<String> = names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    let n = texts.len();
    texts
        .into_iter()
        .find(|t| t.lines().any(|l| l == format!("version {n}")))
        .expect("default entry")
}

/// Deploy the current commit of `testos/main` with both tools: same output, entries,
/// kernels, origins and status. Returns ostree's stdout.
fn deploy_same(p: &Pair, extra: &[&str]) -> String {
    let mut a = vec!["admin", "deploy", "--os=testos"];
    a.extend_from_slice(extra);
    a.push("testos/main");
    let out = same(p, &a);
    layout_same(p);
    status_same(p);
    out
}

/// A kernel without an initramfs: the entry also gets ostree's
/// `init=/ostree/boot.N/…/usr/lib/ostree/ostree-prepare-root`, before `ostree=`, and it is
/// rewritten (in place) for a kept deployment; a deployment with an initramfs keeps the
/// inherited one as ostree does.
#[test]
fn deploy_without_initramfs_sets_init_as_ostree() {
    let p = pair();
    let initramfs = p.tree.join("usr/lib/modules/6.1.0/initramfs.img");
    std::fs::remove_file(&initramfs).expect("rm");
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    deploy_same(&p, &["--karg=root=LABEL=root", "--karg=quiet"]);
    let e = default_entry(&p.x);
    let options = e
        .lines()
        .find(|l| l.starts_with("options "))
        .expect("options");
    assert!(
        options.starts_with("options root=LABEL=root quiet init=/ostree/boot.1/testos/")
            && options
                .contains("/0/usr/lib/ostree/ostree-prepare-root ostree=/ostree/boot.1/testos/"),
        "{e}"
    );
    assert!(!e.contains("\ninitrd "), "{e}");
    // Kept: its init= follows the new boot link.
    deploy_same(&p, &["--karg-append=second"]);
    // With an initramfs again.
    write(&initramfs, &[9u8; 2048], 0o644);
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    deploy_same(&p, &[]);
}

/// `devicetree` beside the kernel: copied as `devicetree-VER`, a `devicetree` line, and
/// in the boot checksum (kernel, initramfs, device tree: the directory name is ostree's);
/// `.vmlinuz.hmac` installed as `.vmlinuz-VER.hmac` (not in the checksum). A `dtb/`
/// directory instead: copied whole as `dtb/`, an `fdtdir` line, its files in the checksum
/// in ostree's order (names sorted bytewise, a directory where its name sorts).
#[test]
fn deploy_device_tree_and_hmac_as_ostree() {
    let p = pair();
    let m = p.tree.join("usr/lib/modules/6.1.0");
    write(&m.join("devicetree"), b"device tree\n", 0o644);
    write(&m.join(".vmlinuz.hmac"), b"hmac\n", 0o644);
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    deploy_same(&p, &[]);
    let kdirs = |sr: &Path| -> Vec<String> {
        layout(sr)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("boot/ostree/testos-"))
            .collect()
    };
    let k = kdirs(&p.x);
    assert!(k.iter().any(|f| f.ends_with("/devicetree-6.1.0")), "{k:?}");
    assert!(
        k.iter().any(|f| f.ends_with("/.vmlinuz-6.1.0.hmac")),
        "{k:?}"
    );
    assert!(default_entry(&p.x).contains("\ndevicetree /ostree/testos-"));
    std::fs::remove_file(m.join("devicetree")).expect("rm");
    std::fs::remove_file(m.join(".vmlinuz.hmac")).expect("rm");
    for (f, data) in [
        ("dtb/b.dtb", "b\n"),
        ("dtb/B.dtb", "B\n"),
        ("dtb/a/x.dtb", "x\n"),
        ("dtb/vendor/board.dtb", "board\n"),
        ("dtb/vendor/sub/s.dtb", "s\n"),
    ] {
        write(&m.join(f), data.as_bytes(), 0o644);
    }
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    deploy_same(&p, &[]);
    let e = default_entry(&p.x);
    assert!(
        e.trim_end().ends_with("/dtb") && e.contains("\nfdtdir /ostree/testos-"),
        "{e}"
    );
    assert!(kdirs(&p.x)
        .iter()
        .any(|f| f.ends_with("/dtb/vendor/sub/s.dtb")));
}

/// The legacy layouts, when there is no `usr/lib/modules` kernel: `vmlinuz-VER-CSUM`,
/// `initramfs-VER.img-CSUM` and `devicetree-VER-CSUM` in `usr/lib/ostree-boot/`, else in
/// `boot/` (only the first of the two that exists is looked in); the suffix is the boot
/// checksum and the installed names drop it. Different suffixes are refused alike.
#[test]
fn deploy_legacy_kernel_layouts_as_ostree() {
    use sha2::Digest;
    let p = pair();
    std::fs::remove_dir_all(p.tree.join("usr/lib/modules")).expect("rm");
    let csum = hex(&sha2::Sha256::digest(b"legacy"));
    let ob = p.tree.join("usr/lib/ostree-boot");
    write(
        &ob.join(format!("vmlinuz-5.0.0-{csum}")),
        b"legacy kernel\n",
        0o644,
    );
    write(
        &ob.join(format!("initramfs-5.0.0.img-{csum}")),
        b"legacy initramfs\n",
        0o644,
    );
    write(
        &ob.join(format!("devicetree-5.0.0-{csum}")),
        b"legacy dt\n",
        0o644,
    );
    // Not a kernel: the suffix is no checksum.
    write(&ob.join("vmlinuz-4.0.0-old"), b"old\n", 0o644);
    // Never looked at: usr/lib/ostree-boot exists.
    write(
        &p.tree
            .join(format!("boot/vmlinuz-9.0.0-{}", "0".repeat(64))),
        b"x\n",
        0o644,
    );
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    deploy_same(&p, &[]);
    assert!(
        layout(&p.x)
            .iter()
            .any(|(k, _)| *k == format!("boot/ostree/testos-{csum}/initramfs-5.0.0.img")),
        "{:#?}",
        layout(&p.x)
    );
    // Under boot/.
    std::fs::remove_dir_all(&ob).expect("rm");
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    deploy_same(&p, &[]);
    // The modern layout wins over the legacy one, whatever the legacy kernel is.
    write(
        &p.tree.join("usr/lib/modules/6.2.0/vmlinuz"),
        b"modern\n",
        0o644,
    );
    commit(&p, "testos/main", "4.0", "2020-01-04T00:00:00Z");
    deploy_same(&p, &[]);
    // ... in usr/lib/ostree-boot too, unless the legacy kernel has an initramfs and the
    // modern one has none.
    let csum2 = hex(&sha2::Sha256::digest(b"legacy2"));
    write(
        &ob.join(format!("vmlinuz-5.1.0-{csum2}")),
        b"legacy kernel 2\n",
        0o644,
    );
    commit(&p, "testos/main", "4.5", "2020-01-04T12:00:00Z");
    deploy_same(&p, &[]);
    write(
        &ob.join(format!("initramfs-5.1.0.img-{csum2}")),
        b"legacy initramfs 2\n",
        0o644,
    );
    commit(&p, "testos/main", "4.6", "2020-01-04T13:00:00Z");
    deploy_same(&p, &[]);
    std::fs::remove_dir_all(&ob).expect("rm");
    // Mismatched suffixes.
    std::fs::remove_dir_all(p.tree.join("usr/lib/modules")).expect("rm");
    write(
        &p.tree
            .join(format!("boot/initramfs-9.0.0.img-{}", "1".repeat(64))),
        b"i\n",
        0o644,
    );
    commit(&p, "testos/main", "5.0", "2020-01-05T00:00:00Z");
    refused_same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A commit without a kernel is refused with ostree's error before anything is printed or
/// written: oxtree's sysroot is as it was (repo, deployments, /boot, origins); ostree's too,
/// but for the checkout it leaves for the next cleanup.
#[test]
fn deploy_without_kernel_changes_nothing() {
    let p = pair();
    deploy_same(&p, &["--karg=root=LABEL=root"]);
    std::fs::remove_dir_all(p.tree.join("usr/lib/modules")).expect("rm");
    let c = commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    let (lo, lx) = (layout(&p.o), layout(&p.x));
    refused_same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    assert_eq!(layout(&p.x), lx);
    let mut left = layout(&p.o);
    left.retain(|e| !lo.contains(e));
    assert_eq!(
        left,
        [(
            format!("ostree/deploy/testos/deploy/{}.0", c.trim()),
            "dir".to_string()
        )]
    );
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    assert_eq!(layout(&p.o), lo);
    // A fresh stateroot (no deploy/ directory yet) is left without one.
    ostree(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&p.o)),
        "other",
    ]);
    ox(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&p.x)),
        "other",
    ]);
    refused_same(&p, &["admin", "deploy", "--os=other", "testos/main"]);
    status_same(&p);
}

/// `sysroot.bootloader` in both system repos (written by hand: `ostree config` itself
/// refuses to open a repo whose value is unknown).
fn set_bootloader(p: &Pair, value: &str) {
    for sr in [&p.o, &p.x] {
        let cfg = sr.join("ostree/repo/config");
        let text: String = std::fs::read_to_string(&cfg)
            .expect("config")
            .lines()
            .filter(|l| !l.starts_with("bootloader=") && *l != "[sysroot]")
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&cfg, format!("{text}\n[sysroot]\nbootloader={value}\n")).expect("write");
    }
}

/// U-Boot, found by `boot/loader/uEnv.txt`: `loader.N/uEnv.txt` as ostree writes it
/// (`kernel_image=`, `ramdisk_image=`, `fdt_file=`/`fdtdir=`, `bootargs=` and the default
/// deployment's `usr/lib/ostree-boot/uEnv.txt`, then the other deployments numbered from 2),
/// switched with the entries, and ostree's "Transaction complete" report.
#[test]
fn deploy_uboot_as_ostree() {
    let p = pair();
    let m = p.tree.join("usr/lib/modules/6.1.0");
    write(&m.join("devicetree"), b"device tree\n", 0o644);
    write(
        &p.tree.join("usr/lib/ostree-boot/uEnv.txt"),
        b"bootdelay=0\nx=1\n",
        0o644,
    );
    commit(&p, "testos/main", "2.0", "2020-01-02T00:00:00Z");
    deploy_same(&p, &["--karg=root=LABEL=root"]);
    for sr in [&p.o, &p.x] {
        std::fs::write(sr.join("boot/loader/uEnv.txt"), "old=1\n").expect("write");
        std::os::unix::fs::symlink("loader/uEnv.txt", sr.join("boot/uEnv.txt")).expect("ln");
    }
    let out = deploy_same(&p, &[]);
    assert!(
        out.contains("Transaction complete; bootconfig swap: yes"),
        "{out}"
    );
    let uenv = std::fs::read_to_string(p.x.join("boot/loader/uEnv.txt")).expect("uEnv");
    assert!(
        uenv.starts_with("kernel_image=/boot/ostree/testos-")
            && uenv.contains("\nbootdelay=0\nx=1\n\nkernel_image2=")
            && uenv.contains("\nfdt_file2=/boot/ostree/testos-"),
        "{uenv}"
    );
    // A dtb/ directory: fdtdir=; and no swap, no rewrite.
    std::fs::remove_file(m.join("devicetree")).expect("rm");
    write(&m.join("dtb/board.dtb"), b"board\n", 0o644);
    commit(&p, "testos/main", "3.0", "2020-01-03T00:00:00Z");
    deploy_same(&p, &["--karg-append=x"]);
    deploy_same(&p, &["--not-as-default", "--retain"]);
    assert!(std::fs::read_to_string(p.x.join("boot/loader/uEnv.txt"))
        .expect("uEnv")
        .contains("\nfdtdir=/boot/ostree/testos-"));
    // Every other writer of the boot configuration rewrites it too.
    same(
        &p,
        &[
            "admin",
            "kargs",
            "edit-in-place",
            "--append-if-missing=edited",
        ],
    );
    layout_same(&p);
    same(&p, &["admin", "undeploy", "1"]);
    layout_same(&p);
    status_same(&p);
    // Forced without its file: ostree's error, then cleanup brings both back alike.
    set_bootloader(&p, "uboot");
    for sr in [&p.o, &p.x] {
        std::fs::remove_file(sr.join("boot/loader/uEnv.txt")).expect("rm");
    }
    let (ok, _) = compare(
        &p,
        &["admin", "deploy", "--os=testos", "--karg=y", "testos/main"],
    );
    assert!(!ok);
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    status_same(&p);
}

/// syslinux, found by `boot/syslinux/syslinux.cfg` (a link to `../loader/syslinux.cfg`):
/// `loader.N/syslinux.cfg` keeps the other labels and lines of the current file as ostree
/// does (its `DEFAULT` and empty lines included), replaces ostree's own labels, and
/// refuses a label without `KERNEL` in ostree's words.
#[test]
fn deploy_syslinux_as_ostree() {
    let p = pair();
    deploy_same(&p, &["--karg=root=LABEL=root"]);
    for sr in [&p.o, &p.x] {
        std::fs::create_dir_all(sr.join("boot/syslinux")).expect("mkdir");
        std::os::unix::fs::symlink(
            "../loader/syslinux.cfg",
            sr.join("boot/syslinux/syslinux.cfg"),
        )
        .expect("ln");
        std::fs::write(
            sr.join("boot/loader/syslinux.cfg"),
            "PROMPT 1\nTIMEOUT 50\nDEFAULT Other\n\nLABEL Other\n\tKERNEL /vmlinuz-other\n\tAPPEND root=y\n\nLABEL Stale (ostree:0)\n\tKERNEL /ostree/gone/vmlinuz\n\nLABEL Last\n\tKERNEL /x\n",
        )
        .expect("write");
    }
    let out = deploy_same(&p, &[]);
    assert!(
        out.contains("Transaction complete; bootconfig swap: yes"),
        "{out}"
    );
    deploy_same(&p, &["--karg-append=again"]);
    same(&p, &["admin", "undeploy", "1"]);
    layout_same(&p);
    deploy_same(&p, &["--retain"]);
    let cfg = std::fs::read_to_string(p.x.join("boot/loader/syslinux.cfg")).expect("cfg");
    assert!(
        cfg.contains("LABEL Other\n")
            && !cfg.contains("Stale")
            && cfg.matches("LABEL TestOS 42 1.0 (ostree:0)").count() == 1,
        "{cfg}"
    );
    // A default of ostree's is regenerated; without KERNEL, ostree's error.
    for sr in [&p.o, &p.x] {
        std::fs::write(
            sr.join("boot/loader/syslinux.cfg"),
            "DEFAULT x (ostree:1)\n",
        )
        .expect("write");
    }
    deploy_same(&p, &["--karg-append=third"]);
    for sr in [&p.o, &p.x] {
        std::fs::write(sr.join("boot/loader/syslinux.cfg"), "LABEL broken\n").expect("write");
    }
    let (ok, _) = compare(
        &p,
        &["admin", "deploy", "--os=testos", "--karg=z", "testos/main"],
    );
    assert!(!ok);
}

/// `sysroot.bootloader`: an unknown value is refused before anything happens, in ostree's
/// words (by deploy, status, undeploy); `syslinux` forces that backend (and fails alike without its file); `none` writes
/// only the entries even with U-Boot's file there; `auto` probes again.
#[test]
fn sysroot_bootloader_config_as_ostree() {
    let p = pair();
    deploy_same(&p, &[]);
    set_bootloader(&p, "bogus");
    refused_same(&p, &["admin", "deploy", "--os=testos", "testos/main"]);
    refused_same(&p, &["admin", "status"]);
    refused_same(&p, &["admin", "undeploy", "0"]);
    set_bootloader(&p, "syslinux");
    let (ok, _) = compare(
        &p,
        &["admin", "deploy", "--os=testos", "--karg=a", "testos/main"],
    );
    assert!(!ok);
    same(&p, &["admin", "cleanup"]);
    layout_same(&p);
    for sr in [&p.o, &p.x] {
        std::fs::write(sr.join("boot/loader/uEnv.txt"), "old=1\n").expect("write");
    }
    set_bootloader(&p, "none");
    let out = deploy_same(&p, &["--karg=b"]);
    assert!(
        out.contains("Bootloader updated; bootconfig swap: yes"),
        "{out}"
    );
    assert!(!p.x.join("boot/loader/uEnv.txt").exists());
    set_bootloader(&p, "auto");
    deploy_same(&p, &["--karg=c"]);
}

/// Smaller admin cases against ostree: `upgrade` of an origin marked `unconfigured-state`
/// (refused with its text), `undeploy 1x` (atoi: index 1), `--karg-delete` of one of two
/// bare `KEY`s, `boot-complete` on a sysroot not booted (nothing to do).
#[test]
fn unconfigured_origin_atoi_index_repeated_karg_as_ostree() {
    let p = pair();
    three_deployments(&p);
    same(&p, &["admin", "boot-complete"]);
    for sr in [&p.o, &p.x] {
        let dir = deployment_dir(sr, 0);
        let origin = dir.with_file_name(format!(
            "{}.origin",
            dir.file_name().expect("name").to_string_lossy()
        ));
        let text = std::fs::read_to_string(&origin).expect("origin");
        std::fs::write(
            &origin,
            format!("{text}unconfigured-state=Use subscription-manager to register\n"),
        )
        .expect("write");
    }
    refused_same(&p, &["admin", "upgrade", "--os=testos"]);
    same(&p, &["admin", "undeploy", "1x"]);
    layout_same(&p);
    same(
        &p,
        &[
            "admin",
            "deploy",
            "--os=testos",
            "--karg=dup",
            "--karg=dup",
            "--karg=a=1",
            "testos/main",
        ],
    );
    same(
        &p,
        &[
            "admin",
            "deploy",
            "--os=testos",
            "--karg-delete=dup",
            "testos/main",
        ],
    );
    layout_same(&p);
    status_same(&p);
}
