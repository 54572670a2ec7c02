//! Sysroot, first part: `admin init-fs`/`os-init` lay out what ostree lays out, and `admin
//! status` reads sysroots deployed by real `ostree admin deploy`.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// (relative path, mode, symlink target) of everything under `root`.
fn layout(root: &Path) -> Vec<(String, u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p
            .strip_prefix(root)
            .expect("prefix")
            .to_string_lossy()
            .into_owned();
        let target = if m.file_type().is_symlink() {
            std::fs::read_link(&p)
                .expect("readlink")
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        out.push((rel, m.mode(), target));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).expect("readdir") {
                stack.push(e.expect("entry").path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_fs_and_os_init_match_ostree() {
    require_ostree();
    let tmp = tempdir();
    let (a, b) = (tmp.path().join("ostree"), tmp.path().join("oxtree"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    ostree(&["admin", "init-fs", s(&a)]);
    ostree(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&a)),
        "testos",
    ]);
    ox(&["admin", "init-fs", s(&b)]);
    ox(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&b)),
        "testos",
    ]);
    // The repo's .lock is created on first use by either tool; compare the rest.
    let strip = |v: Vec<(String, u32, String)>| {
        v.into_iter()
            .filter(|e| !e.0.ends_with(".lock"))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(layout(&b)), strip(layout(&a)));
    assert_eq!(
        std::fs::read(b.join("ostree/repo/config")).expect("config"),
        std::fs::read(a.join("ostree/repo/config")).expect("config")
    );
    assert_eq!(
        ox(&["admin", "status", &format!("--sysroot={}", s(&b))]),
        "No deployments."
    );
}

#[test]
fn status_reads_sysroots_deployed_by_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let sr = t.join("sysroot");
    std::fs::create_dir_all(&sr).expect("mkdir");
    let sra = format!("--sysroot={}", s(&sr));
    ostree(&["admin", "init-fs", s(&sr)]);
    ostree(&["admin", "os-init", &sra, "testos"]);
    let tree = t.join("tree");
    os_tree(&tree);
    write(&tree.join("usr/etc/aconfig"), b"v1\n", 0o644);
    let repo = format!("--repo={}", s(&sr.join("ostree/repo")));
    let c1 = ostree(&[
        "commit",
        &repo,
        "-b",
        "testos/main",
        "-s",
        "v1",
        "--add-metadata-string=version=1.0",
        s(&tree),
    ]);
    ostree(&[
        "admin",
        "deploy",
        &sra,
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
    write(&tree.join("usr/etc/aconfig"), b"v2\n", 0o644);
    let c2 = ostree(&[
        "commit",
        &repo,
        "-b",
        "testos/main",
        "-s",
        "v2",
        "--add-metadata-string=version=2.0",
        s(&tree),
    ]);
    ostree(&["admin", "deploy", &sra, "--os=testos", "testos/main"]);
    ostree(&["admin", "pin", &sra, "1"]);
    assert_eq!(
        ox(&["admin", "status", &sra]),
        ostree(&["admin", "status", &sra])
    );
    let json = ox(&["admin", "status", &sra, "--json"]);
    let i1 = json.find(&c1).expect("v1 listed");
    let i2 = json.find(&c2).expect("v2 listed");
    assert!(i2 < i1, "the newest deployment must come first: {json}");
    assert!(
        json.contains("\"pinned\":true") && json.contains("\"version\":\"2.0\""),
        "{json}"
    );
    let d = oxtree::sysroot::Sysroot::new(&sr)
        .deployments()
        .expect("deployments");
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0].entry.karg("root"),
        Some("LABEL=root"),
        "kargs are inherited by the second deployment"
    );
}
