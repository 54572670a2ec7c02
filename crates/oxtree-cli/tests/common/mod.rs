//! Test helpers: run oxtree and the real `ostree` (the oracle), build a tree with every kind
//! of entry OSTree stores, and snapshot a directory for comparison.
#![allow(dead_code)]

pub mod hostile;
pub mod sdboot;

use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn oxtree_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxtree"))
}

/// The real ostree must be installed: the README's test command installs it. A missing
/// oracle fails loudly instead of skipping.
pub fn require_ostree() {
    let ok = Command::new("ostree")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "the real `ostree` is not installed: run the README's test command, which installs it (apt-get install -y ostree)");
}

fn show(cmd: &str, args: &[&str], o: &Output) -> String {
    format!(
        "{cmd} {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn run_raw(prog: &Path, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", prog.display()))
}

/// Run a command that must succeed; returns trimmed stdout.
pub fn run_ok(prog: &Path, args: &[&str]) -> String {
    let o = run_raw(prog, args);
    assert!(
        o.status.success(),
        "{}",
        show(&prog.display().to_string(), args, &o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn ox(args: &[&str]) -> String {
    run_ok(&oxtree_bin(), args)
}

pub fn ostree(args: &[&str]) -> String {
    run_ok(Path::new("ostree"), args)
}

/// A command that must fail without panicking; returns (detailed exit code, stderr): run
/// with `OXTREE_DETAILED_EXIT_CODES=1` so tests can tell not-found (3) and verification (4)
/// apart (without it every failure exits 1, as ostree).
pub fn ox_fail(args: &[&str]) -> (i32, String) {
    let o = Command::new(oxtree_bin())
        .args(args)
        .env("OXTREE_DETAILED_EXIT_CODES", "1")
        .output()
        .expect("run oxtree");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success(),
        "expected failure:\n{}",
        show("oxtree", args, &o)
    );
    assert!(!err.contains("panicked"), "oxtree panicked:\n{err}");
    (o.status.code().unwrap_or(-1), err)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// `len` bytes of incompressible noise (xorshift from `seed`): a `.filez` as large as the file.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(len + 8);
    let mut x = seed;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data
}

pub fn write(p: &Path, data: &[u8], mode: u32) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(p, data).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
        .expect("setxattr (does the filesystem support user xattrs?)");
}

/// A tree with everything the interop issue lists. `big` adds a >100 MiB sparse-ish file.
pub fn build_tree(root: &Path, big: bool) {
    std::fs::create_dir_all(root).expect("mkdir");
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&root.join("bin/exe"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("bin/suid"), b"setuid binary\n", 0o4755);
    write(&root.join("bin/sgid"), b"setgid binary\n", 0o2755);
    write(&root.join("etc/conf"), b"key=value\n", 0o644);
    write(&root.join("etc/private"), b"secret\n", 0o600);
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir");
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    std::fs::create_dir_all(root.join("links")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/conf", root.join("links/abs")).expect("symlink");
    std::os::unix::fs::symlink("../etc/conf", root.join("links/rel")).expect("symlink");
    std::os::unix::fs::symlink("nowhere/missing", root.join("links/dangling")).expect("symlink");
    write(&root.join("hard/a"), b"hardlinked content\n", 0o644);
    std::fs::hard_link(root.join("hard/a"), root.join("hard/b")).expect("hardlink");
    std::fs::create_dir_all(root.join("empty/dir/deep")).expect("mkdir");
    write(&root.join("xattr/file"), b"with xattrs\n", 0o644);
    set_xattr(&root.join("xattr/file"), "user.test", b"hello");
    set_xattr(&root.join("xattr/file"), "user.another", b"\x00\x01binary");
    set_xattr(&root.join("xattr"), "user.dirattr", b"1");
    write(&root.join("zero"), b"", 0o644);
    write(
        &root.join("unicode/héllo wörld ✓.txt"),
        "ünïcödé\n".as_bytes(),
        0o644,
    );
    write(
        &root.join("unicode/日本語/ファイル"),
        "内容\n".as_bytes(),
        0o644,
    );
    write(&root.join("owned"), b"owned by someone else\n", 0o640);
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678))
        .expect("chown (tests run as root)");
    for i in 0..150 {
        write(
            &root.join(format!("many/f{i:03}")),
            format!("small file {i}\n").repeat(i % 7 + 1).as_bytes(),
            0o644,
        );
    }
    if big {
        use std::io::{Seek, SeekFrom, Write};
        let p = root.join("big/sparse.img");
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let mut f = std::fs::File::create(&p).expect("create");
        f.set_len(110 << 20).expect("set_len");
        for (off, data) in [
            (0u64, &b"begin"[..]),
            (50 << 20, b"middle"),
            ((110 << 20) - 3, b"end"),
        ] {
            f.seek(SeekFrom::Start(off)).expect("seek");
            f.write_all(data).expect("write");
        }
        // Text of ~3.3 MiB, an odd size: an archive repo deflates it in chunks on all cores,
        // with matches that cross the chunks' boundaries.
        let mut text = Vec::new();
        let mut x = 7u64;
        while text.len() < 3_456_789 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.extend_from_slice(format!("entry {} of {}\n", x >> 50, x >> 61).as_bytes());
        }
        text.truncate(3_456_789);
        write(&root.join("big/text"), &text, 0o644);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// SHA-256 of the content, or the symlink target.
    pub content: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Everything checkout must reproduce, by relative path (mtimes excluded).
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, Entry>) {
    let st = std::fs::symlink_metadata(p).expect("lstat");
    let rel = p
        .strip_prefix(root)
        .expect("prefix")
        .to_string_lossy()
        .into_owned();
    let ft = st.file_type();
    let (kind, content) = if ft.is_symlink() {
        (
            'l',
            std::fs::read_link(p)
                .expect("readlink")
                .to_string_lossy()
                .into_owned(),
        )
    } else if ft.is_dir() {
        ('d', String::new())
    } else {
        let mut h = sha2::Sha256::new();
        let mut f = std::fs::File::open(p).expect("open");
        std::io::copy(&mut f, &mut h).expect("read");
        ('f', format!("{:x}", h.finalize()))
    };
    let mut xattrs = Vec::new();
    let mut names = vec![0u8; 4096];
    if let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) {
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            let mut v = vec![0u8; 4096];
            if let Ok(l) = rustix::fs::lgetxattr(p, name.as_str(), &mut v[..]) {
                v.truncate(l);
                xattrs.push((name, v));
            }
        }
    }
    xattrs.sort();
    let mode = if ft.is_symlink() {
        0o777
    } else {
        st.mode() & 0o7777
    };
    out.insert(
        rel,
        Entry {
            kind,
            mode,
            uid: st.uid(),
            gid: st.gid(),
            content,
            xattrs,
        },
    );
    if ft.is_dir() {
        for e in std::fs::read_dir(p).expect("readdir") {
            walk(root, &e.expect("entry").path(), out);
        }
    }
}

/// What a canonical-permissions (bare-user-only) commit keeps of a snapshot.
pub fn canonicalize(snap: &BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    snap.iter()
        .map(|(k, e)| {
            let mut e = e.clone();
            e.uid = 0;
            e.gid = 0;
            e.xattrs.clear();
            if e.kind != 'l' {
                e.mode &= 0o755;
            }
            (k.clone(), e)
        })
        .collect()
}

/// Diff two snapshots in a readable way for assertion messages.
pub fn snapshot_diff(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> String {
    let mut d = String::new();
    for (k, e) in a {
        match b.get(k) {
            None => d.push_str(&format!("only in left: {k}\n")),
            Some(f) if f != e => {
                d.push_str(&format!("differs: {k}\n  left:  {e:?}\n  right: {f:?}\n"))
            }
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push_str(&format!("only in right: {k}\n"));
    }
    d
}

/// Sorted list of object files under a repo's objects/.
pub fn object_set(repo: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let objs = repo.join("objects");
    for d in std::fs::read_dir(&objs).expect("objects") {
        let d = d.expect("entry");
        for e in std::fs::read_dir(d.path()).expect("objdir") {
            let e = e.expect("entry");
            v.push(format!(
                "{}/{}",
                d.file_name().to_string_lossy(),
                e.file_name().to_string_lossy()
            ));
        }
    }
    v.sort();
    v
}

pub fn tempdir() -> TestDir {
    // Under /var/tmp: a real disk filesystem with user xattrs (a tmpfs /tmp may lack them).
    std::fs::create_dir_all("/var/tmp").expect("mkdir /var/tmp");
    TestDir(Some(
        tempfile::Builder::new()
            .prefix("oxtree-test-")
            .tempdir_in("/var/tmp")
            .expect("tempdir"),
    ))
}

/// A test's scratch directory, removed on drop even when it holds deployments, which both
/// tools mark immutable (`chattr +i`).
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("live").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = Command::new("chattr")
                .arg("-R")
                .arg("-i")
                .arg(t.path())
                .stderr(std::process::Stdio::null())
                .status();
            drop(t);
        }
    }
}

/// A running `oxtree serve`, with its access log collected; killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub url: String,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(repo: &Path) -> Server {
        Server::start_on(repo, 0)
    }

    pub fn start_on(repo: &Path, port: u16) -> Server {
        Server::start_args(repo, &[&format!("--port={port}")])
    }

    /// `oxtree serve --repo=REPO ARGS…` (give `--port=0` for a free port).
    pub fn start_args(repo: &Path, args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(oxtree_bin())
            .arg("serve")
            .arg(format!("--repo={}", s(repo)))
            .args(args)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn oxtree serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("http://").nth(1) {
                    let _ = tx.send(
                        rest.trim_end_matches(['/', ')', ' ', '('])
                            .split('/')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
                log2.lock().expect("log").push(line);
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("oxtree serve did not start");
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Server {
            child,
            url: format!("http://{addr}"),
            port,
            log,
        }
    }

    /// Request paths logged so far.
    pub fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.starts_with("GET "))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    }

    pub fn clear_log(&self) {
        self.log.lock().expect("log").clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving `root` on a free loopback port; stopped on drop.
pub struct Nginx {
    child: std::process::Child,
    pub url: String,
    pub access_log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Nginx {
    pub fn start(root: &Path, workdir: &Path) -> Nginx {
        let port = free_port();
        Nginx::start_servers(
            workdir,
            &format!("server {{ listen 127.0.0.1:{port}; root {}; }}", s(root)),
            port,
        )
    }

    /// nginx with these `server { … }` blocks (TLS, a proxy, …); `url` is
    /// `http://127.0.0.1:PORT`, and nginx is taken to be up once `port` accepts.
    pub fn start_servers(workdir: &Path, servers: &str, port: u16) -> Nginx {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "nginx is not installed: run the README's test command (it installs nginx)"
        );
        std::fs::create_dir_all(workdir).expect("mkdir");
        let access_log = workdir.join("access.log");
        let conf = workdir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off; user root; worker_processes 2; pid {w}/nginx.pid; error_log {w}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{ access_log {log}; client_body_temp_path {w}; proxy_temp_path {w}; fastcgi_temp_path {w}; uwsgi_temp_path {w}; scgi_temp_path {w};\n\
                 {servers} }}\n",
                w = s(workdir),
                log = s(&access_log),
            ),
        )
        .expect("write nginx.conf");
        let child = Command::new("/usr/sbin/nginx")
            .args(["-c", s(&conf), "-p", s(workdir)])
            .spawn()
            .expect("start nginx");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            access_log,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must take its workers down with it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A minimal bootable OS tree: kernel and initramfs in usr/lib/modules, os-release,
/// defaults in usr/etc and some /var content.
pub fn os_tree(tree: &Path) {
    // Mount points every OS tree ships (ostree marks deployments immutable, so they must
    // exist in the commit).
    std::fs::create_dir_all(tree.join("sysroot")).expect("mkdir");
    std::fs::create_dir_all(tree.join("boot")).expect("mkdir");
    write(
        &tree.join("usr/lib/modules/6.1.0/vmlinuz"),
        &[7u8; 4096],
        0o644,
    );
    write(
        &tree.join("usr/lib/modules/6.1.0/initramfs.img"),
        &[9u8; 2048],
        0o644,
    );
    write(
        &tree.join("usr/lib/os-release"),
        b"NAME=TestOS\nID=testos\nPRETTY_NAME=\"TestOS 42\"\n",
        0o644,
    );
    write(
        &tree.join("usr/bin/hello"),
        b"#!/bin/sh\necho hello\n",
        0o755,
    );
    for (name, data) in [
        ("unchanged", "u\n"),
        ("unchanged2", "u2\n"),
        ("modified", "m\n"),
        ("deleted", "d\n"),
        ("both", "b1\n"),
        ("typechange", "t\n"),
        ("modechange", "mc\n"),
    ] {
        write(&tree.join("usr/etc").join(name), data.as_bytes(), 0o644);
    }
    write(&tree.join("usr/etc/sub/nested"), b"n\n", 0o644);
    write(&tree.join("var/lib/initial"), b"copied once\n", 0o644);
}

/// What [`assert_repo_clean`] found.
#[derive(Debug, Default)]
pub struct RepoScan {
    /// Every loose object under objects/, as `CHECKSUM.EXT`.
    pub objects: BTreeSet<String>,
    /// Object-named files left under tmp/ (staging of an interrupted transaction).
    pub staged: BTreeSet<String>,
}

impl RepoScan {
    /// Whether any object (of any type) named `csum` is in objects/.
    pub fn has(&self, csum: &str) -> bool {
        self.objects
            .iter()
            .any(|o| o.starts_with(&format!("{csum}.")))
    }
}

/// Every regular file below `dir` whose mode has setuid or setgid (symlinks not followed).
pub fn setid_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(st) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if st.is_dir() {
            out.extend(setid_files(&e.path()));
        } else if st.is_file() && st.mode() & 0o6000 != 0 {
            out.push(e.path());
        }
    }
    out
}

/// Bytes in regular files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match std::fs::symlink_metadata(e.path()) {
            Ok(st) if st.is_dir() => dir_size(&e.path()),
            Ok(st) if st.is_file() => st.len(),
            _ => 0,
        })
        .sum()
}

/// After an attack, the repository holds nothing the attack brought in unverified:
/// - no setuid or setgid file anywhere in it (objects/, tmp/ and its staging directories,
///   state/): the trees these tests pull carry none, so any such file is the attacker's;
/// - every loose object under objects/ verifies against its name (content objects by
///   rebuilding their checksum from the stored form);
/// - every object-named file left in tmp/ (the staging of an interrupted transaction, which
///   the next transaction would adopt) verifies too;
/// - `oxtree fsck` passes.
///
/// Returns what it found, for assertions about particular objects.
pub fn assert_repo_clean(repo: &Path) -> RepoScan {
    use oxtree::object::{parse_loose_name, ObjectType};
    let setid = setid_files(repo);
    assert!(
        setid.is_empty(),
        "setuid/setgid files in {}: {setid:?}",
        repo.display()
    );
    let r = oxtree::Repo::open(repo).expect("open repo");
    let mut scan = RepoScan::default();
    for d in std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .flatten()
    {
        let prefix = d.file_name().to_string_lossy().into_owned();
        for e in std::fs::read_dir(d.path()).expect("objects/XX").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let (ty, c) = parse_loose_name(&prefix, &name)
                .unwrap_or_else(|| panic!("stray file objects/{prefix}/{name}"));
            if ty != ObjectType::CommitMeta {
                r.verify_object(ty, &c)
                    .unwrap_or_else(|e| panic!("objects/{prefix}/{name} does not verify: {e}"));
            }
            scan.objects.insert(format!("{c}.{}", ty.extension()));
        }
    }
    // Staged objects: metadata by their hash; content objects by hardlinking them into a
    // scratch repository of the same mode and verifying them there.
    let mut scratch: Option<(tempfile::TempDir, oxtree::Repo)> = None;
    let mut staged_files = Vec::new();
    fn find_staged(dir: &Path, out: &mut Vec<(String, String, PathBuf)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(st) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if st.is_dir() {
                find_staged(&p, out);
            } else if let Some(prefix) = p
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| n.len() == 2)
            {
                out.push((prefix, e.file_name().to_string_lossy().into_owned(), p));
            }
        }
    }
    find_staged(&repo.join("tmp"), &mut staged_files);
    for (prefix, name, path) in staged_files {
        let Some((ty, c)) = parse_loose_name(&prefix, &name) else {
            continue;
        };
        scan.staged.insert(format!("{c}.{}", ty.extension()));
        match ty {
            ObjectType::CommitMeta => {}
            ObjectType::File => {
                let (_, sr) = scratch.get_or_insert_with(|| {
                    let d = tempfile::Builder::new()
                        .prefix(".scan-")
                        .tempdir_in(repo.parent().expect("parent"))
                        .expect("scratch dir");
                    let sr = oxtree::Repo::create(&d.path().join("r"), r.mode()).expect("scratch");
                    (d, sr)
                });
                let dest = sr.object_path(ty, &c);
                std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
                std::fs::hard_link(&path, &dest).expect("hardlink staged object");
                sr.verify_object(ty, &c)
                    .unwrap_or_else(|e| panic!("staged {} does not verify: {e}", path.display()));
            }
            _ => {
                let b = std::fs::read(&path).expect("read staged");
                assert_eq!(
                    oxtree::Checksum::digest(&b),
                    c,
                    "staged {} does not hash to its name",
                    path.display()
                );
            }
        }
    }
    ox(&["fsck", &format!("--repo={}", s(repo))]);
    scan
}

/// An ed25519 key pair made by OpenSSL (independent of the code under test): (PEM path, public PEM path, secret b64 (seed‖pub), public b64).
pub fn openssl_key(
    dir: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, String, String) {
    use base64::Engine;
    let pem = dir.join(format!("{name}.pem"));
    let pubpem = dir.join(format!("{name}.pub.pem"));
    run_ok(
        Path::new("openssl"),
        &["genpkey", "-algorithm", "ed25519", "-out", s(&pem)],
    );
    run_ok(
        Path::new("openssl"),
        &["pkey", "-in", s(&pem), "-pubout", "-out", s(&pubpem)],
    );
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-in", s(&pem), "-outform", "DER"])
        .output()
        .expect("openssl")
        .stdout;
    let pubder = std::process::Command::new("openssl")
        .args(["pkey", "-in", s(&pem), "-pubout", "-outform", "DER"])
        .output()
        .expect("openssl")
        .stdout;
    let seed = &der[der.len() - 32..];
    let public = &pubder[pubder.len() - 32..];
    let mut secret = seed.to_vec();
    secret.extend_from_slice(public);
    (
        pem,
        pubpem,
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::STANDARD.encode(public),
    )
}

/// Run `args` with both tools; compare stdout and the exit code, and for failures the first
/// `error:` line of stderr (oxtree may add `hint:` lines after it).
pub fn same(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, Path::new("ostree"), args);
    let x = run_in(dir, &oxtree_bin(), args);
    let err_line = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.starts_with("error:"))
            .map(str::to_string)
    };
    assert_eq!(
        o.status.code(),
        x.status.code(),
        "{args:?}: ostree {:?} vs oxtree {:?}\nostree stderr: {}\noxtree stderr: {}",
        o.status,
        x.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&x.stderr)
    );
    let (so, sx) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&x.stdout).to_string(),
    );
    assert_eq!(so, sx, "{args:?}: stdout differs");
    if !o.status.success() {
        assert_eq!(err_line(&o), err_line(&x), "{args:?}: error line differs");
    }
    so
}

pub fn run_in(dir: &Path, prog: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run")
}

/// Run gpg in a private home (batch mode, empty passphrase).
pub fn gpg(home: &Path, args: &[&str]) -> String {
    let mut a = vec![
        "--homedir",
        s(home),
        "--batch",
        "--yes",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ];
    a.extend_from_slice(args);
    run_ok(Path::new("gpg"), &a)
}
