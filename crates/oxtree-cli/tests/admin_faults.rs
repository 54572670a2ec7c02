//! `oxtree admin` under concurrency and crashes: mutating commands exclude each other and
//! real ostree through the sysroot lock, and a deploy stopped at any durable step leaves
//! either the old or the new boot configuration, which the next run repairs. After every
//! round the sysroot must boot its default: see [`check_bootable`].

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A sysroot with stateroot `testos` and a commit `testos/main` (with a kernel) in its repo.
struct Sr {
    _tmp: TestDir,
    tree: PathBuf,
    path: PathBuf,
}

impl Sr {
    fn arg(&self) -> String {
        format!("--sysroot={}", s(&self.path))
    }
    fn repo(&self) -> PathBuf {
        self.path.join("ostree/repo")
    }
    fn commit(&self, version: &str) -> String {
        write(
            &self.tree.join("usr/share/version"),
            version.as_bytes(),
            0o644,
        );
        ostree(&[
            "commit",
            &format!("--repo={}", s(&self.repo())),
            "-b",
            "testos/main",
            "-s",
            version,
            &format!("--add-metadata-string=version={version}"),
            s(&self.tree),
        ])
    }
}

fn sysroot() -> Sr {
    require_ostree();
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    os_tree(&tree);
    let path = tmp.path().join("sr");
    std::fs::create_dir_all(&path).expect("mkdir");
    ox(&["admin", "init-fs", s(&path)]);
    ox(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&path)),
        "testos",
    ]);
    let sr = Sr {
        _tmp: tmp,
        tree,
        path,
    };
    sr.commit("1.0");
    sr
}

/// The refs in `repo` as (name, checksum), from the files under refs/heads.
fn heads(repo: &Path) -> Vec<(String, String)> {
    let base = repo.join("refs/heads");
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readdir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                let name = p.strip_prefix(&base).expect("prefix");
                out.push((name.to_string_lossy().into_owned(), t.trim().to_string()));
            }
        }
    }
    out.sort();
    out
}

/// What a bootloader and the initramfs need, checked as they would: `boot/loader` names
/// `loader.0` or `loader.1`; every entry there has its kernel and initramfs; its `ostree=`
/// argument resolves (through `ostree/boot.N` and the link farm) to a deployment directory
/// of the sysroot that holds `usr/`; the deployment has its origin, its commit is in the
/// repository and a deployment ref (`ostree/N/M/I`) keeps it there.
fn check_bootable(sr: &Path) -> Result<(), String> {
    let loader =
        std::fs::read_link(sr.join("boot/loader")).map_err(|e| format!("boot/loader: {e}"))?;
    let loader = loader.to_string_lossy().into_owned();
    if loader != "loader.0" && loader != "loader.1" {
        return Err(format!("boot/loader -> {loader}"));
    }
    let entries = sr.join("boot").join(&loader).join("entries");
    let mut confs: Vec<PathBuf> = std::fs::read_dir(&entries)
        .map_err(|e| format!("{}: {e}", entries.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    confs.sort();
    if confs.is_empty() {
        return Err(format!("{}: no entries", entries.display()));
    }
    let repo = sr.join("ostree/repo");
    let deployment_refs: Vec<String> = heads(&repo)
        .into_iter()
        .filter(|(n, _)| n.starts_with("ostree/") && n.split('/').count() == 4)
        .map(|(_, c)| c)
        .collect();
    let deploy_base = std::fs::canonicalize(sr.join("ostree/deploy")).expect("deploy dir");
    for conf in confs {
        let text = std::fs::read_to_string(&conf).map_err(|e| format!("{conf:?}: {e}"))?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(' ')))
                .map(str::trim)
        };
        let name = conf
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for k in ["linux", "initrd"] {
            let f = get(k).ok_or_else(|| format!("{name}: no {k}"))?;
            if !sr.join("boot").join(f.trim_start_matches('/')).is_file() {
                return Err(format!("{name}: {k} {f} is missing"));
            }
        }
        let options = get("options").ok_or_else(|| format!("{name}: no options"))?;
        let arg = options
            .split_whitespace()
            .find_map(|a| a.strip_prefix("ostree="))
            .ok_or_else(|| format!("{name}: no ostree= argument"))?;
        let dir = std::fs::canonicalize(sr.join(arg.trim_start_matches('/')))
            .map_err(|e| format!("{name}: ostree={arg} does not resolve: {e}"))?;
        if !dir.starts_with(&deploy_base) || !dir.join("usr").is_dir() {
            return Err(format!(
                "{name}: ostree={arg} -> {} is not a deployment",
                dir.display()
            ));
        }
        let dirname = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let origin = dir.with_file_name(format!("{dirname}.origin"));
        let origin = std::fs::read_to_string(&origin)
            .map_err(|e| format!("{name}: {}: {e}", origin.display()))?;
        if !origin.contains("refspec=") {
            return Err(format!("{name}: origin without refspec: {origin}"));
        }
        let csum = dirname.split('.').next().expect("checksum");
        let obj = repo.join(format!("objects/{}/{}.commit", &csum[..2], &csum[2..]));
        if !obj.is_file() {
            return Err(format!("{name}: commit {csum} is not in the repository"));
        }
        if !deployment_refs.iter().any(|c| c == csum) {
            return Err(format!("{name}: no ostree/N/M/I ref keeps commit {csum}"));
        }
    }
    Ok(())
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(oxtree_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oxtree")
}

fn finish(name: &str, c: std::process::Child) -> Result<(), String> {
    let o = c.wait_with_output().expect("wait");
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// `admin deploy`, a second `admin deploy` and `admin cleanup` at the same time, 20 times:
/// each must succeed and leave a sysroot that boots its default, which real ostree reads.
#[test]
fn concurrent_deploys_and_cleanup_keep_the_sysroot_bootable() {
    let sr = sysroot();
    let a = sr.arg();
    ox(&[
        "admin",
        "deploy",
        &a,
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
    for round in 0..20 {
        if round % 5 == 4 {
            sr.commit(&format!("1.{round}"));
        }
        let d1 = spawn(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
        let d2 = spawn(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
        let c = spawn(&["admin", "cleanup", &a]);
        let results = [
            finish("deploy 1", d1),
            finish("deploy 2", d2),
            finish("cleanup", c),
        ];
        for r in results {
            if let Err(e) = r {
                panic!("round {round}: {e}");
            }
        }
        if let Err(e) = check_bootable(&sr.path) {
            panic!("round {round}: the sysroot does not boot its default: {e}");
        }
        ostree(&["admin", "status", &a]);
    }
}

/// An HTTP server that accepts connections and never answers until released, then
/// answers 404 to everything: a pull from it blocks, so `admin upgrade` (which holds the
/// sysroot lock across its pull, in oxtree as in ostree) holds the lock for as long as the
/// test wants, then fails at once.
struct StallServer {
    url: String,
    accepted: std::sync::mpsc::Receiver<()>,
    release: Option<std::sync::mpsc::Sender<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StallServer {
    fn start() -> StallServer {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let (acc_tx, accepted) = std::sync::mpsc::channel();
        let (release, rel_rx) = std::sync::mpsc::channel::<()>();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            const NOT_FOUND: &[u8] =
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let mut held = None;
            if let Ok((c, _)) = l.accept() {
                held = Some(c);
                let _ = acc_tx.send(());
            }
            let _ = rel_rx.recv();
            if let Some(mut c) = held {
                let _ = c.write_all(NOT_FOUND);
            }
            let _ = l.set_nonblocking(true);
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let mut buf = [0u8; 4096];
                        let _ = std::io::Read::read(&mut c, &mut buf);
                        let _ = c.write_all(NOT_FOUND);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        StallServer {
            url,
            accepted,
            release: Some(release),
            stop,
            thread: Some(thread),
        }
    }

    /// Blocks until a client is connected (and so stuck in its pull).
    fn wait_connected(&self) {
        self.accepted
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("no client connected to the stalling server");
    }

    /// From now on, answer (404).
    fn release(&mut self) {
        if self.release.take().is_some() {
            // A server nobody connected to is still in accept(): connect to move it on.
            let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        }
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running process whose output (stdout and stderr: ostree says it waits for the lock
/// on stdout, oxtree on stderr) is collected line by line.
struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    fn start(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Watched {
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let (tx, lines) = std::sync::mpsc::channel();
        fn pump(r: impl std::io::Read + Send + 'static, tx: std::sync::mpsc::Sender<String>) {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        pump(child.stdout.take().expect("stdout"), tx.clone());
        pump(child.stderr.take().expect("stderr"), tx);
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Blocks until an output line contains `text` (fails if the process ends first).
    fn wait_for(&mut self, text: &str) {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(l) => {
                    let hit = l.contains(text);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "never printed {text:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the end; returns whether it succeeded, and all of its output.
    fn finish(mut self) -> (bool, String) {
        let ok = self.child.wait().expect("wait").success();
        while let Ok(l) = self.lines.recv_timeout(std::time::Duration::from_secs(10)) {
            self.seen.push(l);
        }
        (ok, self.seen.join("\n"))
    }
}

/// Point the sysroot's deployments at a remote that stalls: `admin upgrade` then holds
/// the sysroot lock in its pull until the server is released.
fn stalling_origin(sr: &Sr, server: &StallServer) {
    let repo = format!("--repo={}", s(&sr.repo()));
    ostree(&[
        "remote",
        "add",
        &repo,
        "--no-gpg-verify",
        "stall",
        &server.url,
        "testos/main",
    ]);
    if !sr.repo().join("refs/remotes/stall/testos/main").exists() {
        let c = ostree(&["rev-parse", &repo, "testos/main"]);
        ostree(&["refs", &repo, "--create=stall:testos/main", &c]);
    }
}

/// oxtree and real ostree take the same sysroot lock: each waits while the other holds
/// it (each says "Waiting for sysroot lock..."), and goes on once it is released.
#[test]
fn oxtree_and_ostree_wait_for_each_others_sysroot_lock() {
    let sr = sysroot();
    let a = sr.arg();
    // ostree holds the lock (its upgrade is stuck pulling); oxtree's deploy waits.
    let mut server = StallServer::start();
    stalling_origin(&sr, &server);
    ox(&["admin", "deploy", &a, "--os=testos", "stall:testos/main"]);
    let holder = Watched::start(
        Path::new("ostree"),
        &["admin", "upgrade", &a, "--os=testos"],
        &[],
    );
    server.wait_connected();
    let mut waiter = Watched::start(
        &oxtree_bin(),
        &["admin", "deploy", &a, "--os=testos", "testos/main"],
        &[],
    );
    waiter.wait_for("Waiting for sysroot lock");
    assert!(
        waiter.running(),
        "oxtree went on while ostree held the lock"
    );
    server.release();
    let (ok, err) = holder.finish();
    assert!(
        !ok,
        "ostree's upgrade was to fail at the released server: {err}"
    );
    let (ok, err) = waiter.finish();
    assert!(ok, "oxtree deploy after ostree released the lock: {err}");
    check_bootable(&sr.path).expect("bootable after oxtree's deploy");

    // oxtree holds the lock (its upgrade is stuck pulling); ostree's deploy waits.
    let mut server = StallServer::start();
    let repo = format!("--repo={}", s(&sr.repo()));
    ostree(&["remote", "delete", &repo, "stall"]);
    stalling_origin(&sr, &server);
    ox(&["admin", "deploy", &a, "--os=testos", "stall:testos/main"]);
    let holder = Watched::start(&oxtree_bin(), &["admin", "upgrade", &a], &[]);
    server.wait_connected();
    let mut waiter = Watched::start(
        Path::new("ostree"),
        &["admin", "deploy", &a, "--os=testos", "testos/main"],
        &[],
    );
    waiter.wait_for("Waiting for sysroot lock");
    assert!(
        waiter.running(),
        "ostree went on while oxtree held the lock"
    );
    server.release();
    let (ok, err) = holder.finish();
    assert!(
        !ok,
        "oxtree's upgrade was to fail at the released server: {err}"
    );
    let (ok, err) = waiter.finish();
    assert!(ok, "ostree deploy after oxtree released the lock: {err}");
    check_bootable(&sr.path).expect("bootable after ostree's deploy");
    ox(&["admin", "status", &a]);
}

/// Tests that inject failures need a binary built with the `failpoints` feature.
fn require_failpoints() {
    if !cfg!(feature = "failpoints") {
        panic!("this test injects failures: run it with `--features oxtree-cli/failpoints` (scripts/test.sh does)");
    }
}

/// The deployments' commits, default first.
fn deployed(sr: &Path) -> Vec<String> {
    oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .expect("deployments")
        .iter()
        .map(|d| d.checksum.to_hex())
        .collect()
}

/// What a complete `admin cleanup` leaves: besides a bootable default, exactly one
/// deployment ref per deployment, all under the live `ostree/N/M/` prefix; no deployment
/// directory, loader or link farm that the boot configuration does not use.
fn check_clean(sr: &Path) -> Result<(), String> {
    check_bootable(sr)?;
    let deps = oxtree::sysroot::Sysroot::new(sr)
        .deployments()
        .map_err(|e| e.to_string())?;
    let loader = std::fs::read_link(sr.join("boot/loader")).map_err(|e| e.to_string())?;
    let n = loader
        .to_string_lossy()
        .trim_start_matches("loader.")
        .to_string();
    let farm = std::fs::read_link(sr.join(format!("ostree/boot.{n}")))
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .into_owned();
    let prefix = format!(
        "ostree/{}/",
        farm.trim_start_matches("boot.").replace('.', "/")
    );
    let mut refs: Vec<(String, String)> = heads(&sr.join("ostree/repo"))
        .into_iter()
        .filter(|(n, _)| n.starts_with("ostree/") && n.split('/').count() == 4)
        .collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, String)> = deps
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("{prefix}{i}"), d.checksum.to_hex()))
        .collect();
    if refs != want {
        return Err(format!("deployment refs {refs:?}, expected {want:?}"));
    }
    let mut dirs: Vec<String> = std::fs::read_dir(sr.join("ostree/deploy/testos/deploy"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut live: Vec<String> = deps
        .iter()
        .flat_map(|d| [d.dirname(), format!("{}.origin", d.dirname())])
        .collect();
    live.sort();
    if dirs != live {
        return Err(format!(
            "deployment directories {dirs:?}, expected {live:?}"
        ));
    }
    let mut boots: Vec<String> = std::fs::read_dir(sr.join("ostree"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("boot."))
        .collect();
    boots.sort();
    if boots != [format!("boot.{n}"), farm.clone()] {
        return Err(format!(
            "link farms {boots:?}, expected boot.{n} and {farm}"
        ));
    }
    let other = if n == "0" { "loader.1" } else { "loader.0" };
    if sr.join("boot").join(other).exists() {
        return Err(format!("stale boot/{other}"));
    }
    Ok(())
}

/// A deploy stopped at each durable step, by an injected failure or by kill -9 while it
/// waits there: the sysroot boots the old default (before the loader swap) or the new one
/// (after it), never a mix; real ostree reads it; `admin cleanup` then repairs every
/// leftover (deployment refs, directories, link farms), and the next deploy works.
#[test]
fn a_deploy_stopped_at_any_step_leaves_old_or_new_and_cleanup_repairs_it() {
    require_failpoints();
    let sr = sysroot();
    let a = sr.arg();
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    let mut version = 1;
    for kill in [false, true] {
        for step in [
            "checkout",
            "etc",
            "kernel",
            "entries",
            "bootlinks",
            "refs",
            "swap",
            "swapped",
            "cleanup",
        ] {
            let what = format!(
                "{} at deploy::{step}",
                if kill { "kill -9" } else { "failure" }
            );
            version += 1;
            let c = sr.commit(&format!("{version}.0"));
            let before = deployed(&sr.path);
            let args = ["admin", "deploy", &a, "--os=testos", "testos/main"];
            if kill {
                let fp = format!("deploy::{step}=return(hang)");
                let mut p = Watched::start(&oxtree_bin(), &args, &[("FAILPOINTS", &fp)]);
                p.wait_for(&format!("failpoint deploy::{step}: hanging"));
                p.child.kill().expect("kill -9");
                let _ = p.finish();
            } else {
                let o = Command::new(oxtree_bin())
                    .args(args)
                    .env("FAILPOINTS", format!("deploy::{step}=return"))
                    .output()
                    .expect("run");
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    !o.status.success()
                        && err.contains(&format!("injected failure at failpoint deploy::{step}")),
                    "{what}: {err}"
                );
            }
            if let Err(e) = check_bootable(&sr.path) {
                panic!("{what}: the sysroot does not boot its default: {e}");
            }
            let now = deployed(&sr.path);
            let swapped = matches!(step, "swapped" | "cleanup");
            let expected = if swapped {
                vec![c.clone(), before[0].clone()]
            } else {
                before.clone()
            };
            assert_eq!(now, expected, "{what}: neither the old nor the new list");
            ostree(&["admin", "status", &a]);
            ox(&["admin", "cleanup", &a]);
            if let Err(e) = check_clean(&sr.path) {
                panic!("{what}: admin cleanup did not repair: {e}");
            }
            assert_eq!(
                deployed(&sr.path),
                expected,
                "{what}: cleanup changed the list"
            );
        }
    }
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    check_clean(&sr.path).expect("clean after a complete deploy");
    ostree(&["admin", "status", &a]);
}

/// `admin cleanup` prunes, but never a deployed commit, even one no ref reaches any more
/// (here: the deployment refs lost, as the old unfixed deploy could lose them): it
/// regenerates the refs and keeps every deployment's commit, run after run.
#[test]
fn admin_cleanup_keeps_every_deployed_commit() {
    let sr = sysroot();
    let a = sr.arg();
    let c1 = sr.commit("1.0");
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    let c2 = sr.commit("2.0");
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    assert_eq!(deployed(&sr.path), [c2.clone(), c1.clone()]);
    // testos/main is at c2: only the deployment refs keep c1.
    std::fs::remove_dir_all(sr.repo().join("refs/heads/ostree")).expect("rm refs");
    for _ in 0..2 {
        ox(&["admin", "cleanup", &a]);
        for c in [&c1, &c2] {
            let obj = sr
                .repo()
                .join(format!("objects/{}/{}.commit", &c[..2], &c[2..]));
            assert!(obj.is_file(), "admin cleanup deleted deployed commit {c}");
        }
        check_clean(&sr.path).expect("clean");
    }
    let status = ox(&["admin", "status", &a]);
    assert!(status.contains("Version: 1.0"), "{status}");
    ostree(&["admin", "status", &a]);
    ostree(&["fsck", &format!("--repo={}", s(&sr.repo()))]);
}

/// A filesystem mounted over a test sysroot's `boot/`, as a separate /boot partition is;
/// unmounted (and thawed, should a test fail while it is frozen) on drop.
struct BootMount {
    dir: PathBuf,
    _img: TestDir,
}

fn run_tool(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e} (util-linux and e2fsprogs are needed)"))
}

impl BootMount {
    /// `kind` is "ext4" (an image on a loop device: can be frozen) or "tmpfs" (cannot).
    fn new(sr: &Sr, kind: &str) -> BootMount {
        let img = tempdir();
        let dir = sr.path.join("boot");
        let o = if kind == "ext4" {
            let f = img.path().join("boot.img");
            assert!(run_tool("truncate", &["-s", "32M", s(&f)]).status.success());
            let o = run_tool("mkfs.ext4", &["-q", "-F", s(&f)]);
            assert!(o.status.success(), "mkfs.ext4: {o:?}");
            run_tool("mount", &["-o", "loop", s(&f), s(&dir)])
        } else {
            run_tool("mount", &["-t", "tmpfs", "none", s(&dir)])
        };
        assert!(
            o.status.success(),
            "mounting a {kind} /boot failed (root and loop devices are needed): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        BootMount { dir, _img: img }
    }

    /// Whether it is frozen, asked without blocking: freezing a frozen filesystem fails
    /// with EBUSY; one that was not frozen is thawed again at once.
    fn frozen(&self) -> bool {
        let o = run_tool("fsfreeze", &["--freeze", s(&self.dir)]);
        if o.status.success() {
            assert!(run_tool("fsfreeze", &["--unfreeze", s(&self.dir)])
                .status
                .success());
            return false;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("busy"), "fsfreeze --freeze: {err}");
        true
    }
}

impl Drop for BootMount {
    fn drop(&mut self) {
        let _ = run_tool("fsfreeze", &["--unfreeze", s(&self.dir)]);
        if !run_tool("umount", &[s(&self.dir)]).status.success() {
            let _ = run_tool("umount", &["-l", s(&self.dir)]);
        }
    }
}

/// The child processes of `pid` (from /proc/*/stat).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(n) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(n);
        }
    }
    out
}

/// Blocks until process `pid` has exited (gone, or a zombie nobody reaps).
fn wait_exit(pid: u32) {
    let stat = format!("/proc/{pid}/stat");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match std::fs::read_to_string(&stat) {
            Err(_) => return,
            Ok(s)
                if s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z')) =>
            {
                return
            }
            Ok(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A /boot of its own is frozen and thawed around the loader swap, as ostree does; killed
/// (-9) while it is frozen, before or after the swap, the deploy's watchdog thaws it, and
/// the sysroot boots the old or the new default; a failure while frozen thaws it too.
#[test]
fn boot_is_frozen_around_the_swap_and_always_thawed() {
    require_failpoints();
    let sr = sysroot();
    let boot = BootMount::new(&sr, "ext4");
    let a = sr.arg();
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    check_clean(&sr.path).expect("deployed on a /boot of its own");
    let mut version = 1;
    for (fp, kill, swapped) in [
        ("deploy::frozen-before-swap", true, false),
        ("deploy::frozen-after-swap", true, true),
        ("deploy::frozen-before-swap", false, false),
        ("deploy::frozen-after-swap", false, true),
    ] {
        let what = format!("{} at {fp}", if kill { "kill -9" } else { "failure" });
        version += 1;
        let c = sr.commit(&format!("{version}.0"));
        let before = deployed(&sr.path);
        let args = ["admin", "deploy", &a, "--os=testos", "testos/main"];
        if kill {
            let spec = format!("{fp}=return(hang)");
            let mut p = Watched::start(&oxtree_bin(), &args, &[("FAILPOINTS", &spec)]);
            p.wait_for(&format!("failpoint {fp}: hanging"));
            assert!(boot.frozen(), "{what}: /boot is not frozen at {fp}");
            let watchdogs = children(p.child.id());
            assert_eq!(watchdogs.len(), 1, "{what}: one watchdog: {watchdogs:?}");
            p.child.kill().expect("kill -9");
            let _ = p.finish();
            wait_exit(watchdogs[0]);
        } else {
            let o = Command::new(oxtree_bin())
                .args(args)
                .env("FAILPOINTS", format!("{fp}=return"))
                .output()
                .expect("run");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success() && err.contains(&format!("injected failure at failpoint {fp}")),
                "{what}: {err}"
            );
        }
        assert!(!boot.frozen(), "{what}: /boot was left frozen");
        if let Err(e) = check_bootable(&sr.path) {
            panic!("{what}: the sysroot does not boot its default: {e}");
        }
        let expected = if swapped {
            vec![c, before[0].clone()]
        } else {
            before
        };
        assert_eq!(deployed(&sr.path), expected, "{what}");
        ox(&["admin", "cleanup", &a]);
        if let Err(e) = check_clean(&sr.path) {
            panic!("{what}: admin cleanup did not repair: {e}");
        }
    }
    ostree(&["admin", "status", &a]);
}

/// A /boot that cannot be frozen (tmpfs: EOPNOTSUPP) is flushed with syncfs: deploys,
/// rollbacks and cleanups work as on one filesystem.
#[test]
fn boot_that_cannot_be_frozen_is_synced() {
    let sr = sysroot();
    let _boot = BootMount::new(&sr, "tmpfs");
    let a = sr.arg();
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    sr.commit("2.0");
    ox(&["admin", "deploy", &a, "--os=testos", "testos/main"]);
    check_clean(&sr.path).expect("deployed on a tmpfs /boot");
    ox(&["admin", "rollback", &a]);
    ox(&["admin", "cleanup", &a]);
    check_clean(&sr.path).expect("rolled back on a tmpfs /boot");
    ostree(&["admin", "status", &a]);
}

/// The systemd-boot ESP mirror stopped at each of its steps, by an injected failure or by
/// kill -9 while it waits there, in the mirror update a deploy runs before it changes
/// anything and in the one right after its loader swap (`1*off->`: the second time the
/// step is reached), and around the swap itself: systemd-boot, reading only the ESP, still
/// boots a deployment that is there and has tries left, and every entry on the ESP can
/// boot (its kernel on the ESP, its `ostree=` resolving in the sysroot). The next `admin
/// cleanup` makes the ESP mirror the boot configuration exactly, counters carried.
#[test]
fn an_esp_mirror_stopped_at_any_step_leaves_an_esp_that_systemd_boot_boots() {
    use common::sdboot::{check_esp_boots, entries};
    require_failpoints();
    let sr = sysroot();
    let esp = sr.path.with_file_name("esp");
    std::fs::create_dir_all(&esp).expect("mkdir");
    let cfg = sr.repo().join("config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[sysroot]\nbootloader=none\nboot-counting-tries=2\n\n[oxtree]\nbootloader=systemd-boot\n");
    std::fs::write(&cfg, text).expect("config");
    let (a, e) = (sr.arg(), format!("--esp={}", s(&esp)));
    let deploy = ["admin", "deploy", &a, &e, "--os=testos", "testos/main"];
    ox(&deploy);
    let mut version = 1;
    for kill in [false, true] {
        for step in [
            "esp::loader",
            "esp::kernels",
            "esp::entry",
            "esp::entries",
            "esp::stale",
            "deploy::entries",
            "deploy::swap",
            "deploy::swapped",
            "deploy::cleanup",
        ] {
            for skip in ["", "1*off->"] {
                if step.starts_with("deploy::") && !skip.is_empty() {
                    continue;
                }
                let what = format!(
                    "{} at {skip}{step}",
                    if kill { "kill -9" } else { "failure" }
                );
                version += 1;
                // Each version has its own kernel: the ESP gains and loses kernel directories.
                write(
                    &sr.tree.join("usr/lib/modules/6.1.0/vmlinuz"),
                    format!("kernel {version}").as_bytes(),
                    0o644,
                );
                sr.commit(&format!("{version}.0"));
                if kill {
                    let fp = format!("{step}={skip}return(hang)");
                    let mut p = Watched::start(&oxtree_bin(), &deploy, &[("FAILPOINTS", &fp)]);
                    p.wait_for(&format!("failpoint {step}: hanging"));
                    p.child.kill().expect("kill -9");
                    let _ = p.finish();
                } else {
                    let o = Command::new(oxtree_bin())
                        .args(deploy)
                        .env("FAILPOINTS", format!("{step}={skip}return"))
                        .output()
                        .expect("run");
                    let err = String::from_utf8_lossy(&o.stderr);
                    assert!(
                        !o.status.success()
                            && err.contains(&format!("injected failure at failpoint {step}")),
                        "{what}: {err}"
                    );
                }
                if let Err(msg) = check_esp_boots(&esp, &sr.path) {
                    panic!("{what}: systemd-boot cannot boot from the ESP: {msg}");
                }
                check_bootable(&sr.path).unwrap_or_else(|m| panic!("{what}: {m}"));
                ox(&["admin", "cleanup", &a, &e]);
                // Exactly the deployments, in their order, with no stray file.
                let deps = oxtree::sysroot::Sysroot::new(&sr.path)
                    .with_esp(Some(esp.clone()))
                    .deployments()
                    .expect("deployments");
                let mut want: Vec<String> = deps
                    .iter()
                    .map(|d| format!("ostree-testos-{}.{}", d.checksum, d.deployserial))
                    .collect();
                let got: Vec<String> = entries(&esp).iter().map(|x| x.base().to_string()).collect();
                assert_eq!(got, want, "{what}: the ESP after cleanup");
                want.sort();
                let mut kdirs: Vec<String> = std::fs::read_dir(esp.join("ostree"))
                    .expect("readdir")
                    .flatten()
                    .map(|x| x.file_name().to_string_lossy().into_owned())
                    .collect();
                kdirs.sort();
                let mut live: Vec<String> = deps
                    .iter()
                    .map(|d| format!("testos-{}", d.bootcsum))
                    .collect();
                live.sort();
                live.dedup();
                assert_eq!(kdirs, live, "{what}: kernel directories on the ESP");
                for x in entries(&esp) {
                    assert!(
                        x.tries.is_some_and(|t| t.0 > 0),
                        "{what}: {} lost its counter",
                        x.file
                    );
                }
                check_esp_boots(&esp, &sr.path).unwrap_or_else(|m| panic!("{what}: {m}"));
            }
        }
    }
}
