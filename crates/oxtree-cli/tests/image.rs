//! `oxtree image build`: the disk image passes the tools that check GPT, FAT and ext4
//! (`sfdisk --verify`, `fsck.fat -n`, `e2fsck -fn`), real `ostree admin status` reads the
//! sysroot in it (copied out with `debugfs`, no mount), the ESP holds systemd-boot and the
//! mirrored entries (read with mtools), the same inputs give the same GPT and ESP bytes and
//! an ext4 partition holding the same files (its bytes differ in ctimes and inode order),
//! and a size too small fails before anything is written.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// A repo with `os/main` (a tree with a kernel, `/efi`, and a stand-in systemd-boot EFI
/// binary), made by real ostree.
struct Src {
    tmp: TestDir,
    repo: PathBuf,
    efi: Vec<u8>,
}

fn source(with_efi: bool) -> Src {
    require_ostree();
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    os_tree(&tree);
    std::fs::create_dir_all(tree.join("efi")).expect("mkdir");
    write(&tree.join("usr/etc/fstab"), b"# the tree's fstab\n", 0o644);
    // Not a real EFI program: only its bytes are checked (it starts with MZ, as a PE does).
    let efi = b"MZ stand-in for systemd-bootx64.efi\n".repeat(100);
    if with_efi {
        write(
            &tree.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
            &efi,
            0o644,
        );
    }
    let repo = tmp.path().join("repo");
    ostree(&["init", &format!("--repo={}", s(&repo)), "--mode=archive"]);
    ostree(&[
        "commit",
        &format!("--repo={}", s(&repo)),
        "-b",
        "os/main",
        "-s",
        "v1",
        "--timestamp=2020-01-01T00:00:00Z",
        "--add-metadata-string=version=1.0",
        s(&tree),
    ]);
    Src { tmp, repo, efi }
}

fn build(src: &Src, out: &Path, extra: &[&str], epoch: &str) -> std::process::Output {
    let mut args = vec![
        "image".to_string(),
        "build".into(),
        format!("--repo={}", s(&src.repo)),
        "os/main".into(),
        s(out).into(),
        "--stateroot=testos".into(),
        "--esp-size=64M".into(),
        "--karg=console=ttyS0".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Command::new(oxtree_bin())
        .args(&args)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .expect("run oxtree")
}

fn build_ok(src: &Src, out: &Path, extra: &[&str]) -> String {
    let o = build(src, out, extra, "1700000000");
    assert!(
        o.status.success(),
        "image build failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tool(prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("{prog} is needed (the README's test command installs it): {e}")
        });
    assert!(
        o.status.success(),
        "{prog} {args:?} failed ({:?}):\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (start, size) in bytes of partition `n` (1-based), from `sfdisk --json`.
fn partition(img: &Path, n: usize) -> (u64, u64) {
    let j = tool("sfdisk", &["--json", s(img)]);
    let v: serde_json::Value = serde_json::from_str(&j).expect("sfdisk json");
    let p = &v["partitiontable"]["partitions"][n - 1];
    (
        p["start"].as_u64().expect("start") * 512,
        p["size"].as_u64().expect("size") * 512,
    )
}

fn bytes(img: &Path, off: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(img).expect("open");
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, off).expect("read");
    b
}

/// The ESP partition copied into a file of its own (sparse), for fsck.fat.
fn esp_copy(img: &Path, dir: &Path) -> PathBuf {
    let (off, size) = partition(img, 1);
    let p = dir.join("esp.part");
    tool(
        "dd",
        &[
            &format!("if={}", s(img)),
            &format!("of={}", s(&p)),
            "bs=1M",
            &format!("skip={}", off / MIB),
            &format!("count={}", size / MIB),
            "conv=sparse",
            "status=none",
        ],
    );
    p
}

#[test]
fn image_passes_sfdisk_fsck_fat_e2fsck_and_real_ostree_reads_its_sysroot() {
    let src = source(true);
    let dir = src.tmp.path();
    let img = dir.join("disk.img");
    let out = build_ok(&src, &img, &["--boot-counting-tries=3"]);
    assert!(out.contains("systemd-boot from the tree's"), "{out}");

    // GPT: both headers and the table are valid; ESP first, root (DPS x86-64 root) last.
    let v = tool("sfdisk", &["--verify", s(&img)]);
    assert!(v.contains("No errors detected"), "{v}");
    let d = tool("sfdisk", &["--dump", s(&img)]);
    assert!(
        d.contains("type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B") && d.contains("name=\"ESP\""),
        "{d}"
    );
    assert!(
        d.contains("type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") && d.contains("name=\"root\""),
        "{d}"
    );
    let (esp_off, esp_size) = partition(&img, 1);
    let (root_off, root_size) = partition(&img, 2);
    assert_eq!((esp_off, esp_size), (MIB, 64 * MIB));
    assert_eq!(root_off, 65 * MIB);
    let total = std::fs::metadata(&img).expect("stat").len();
    assert_eq!(
        root_off + root_size + MIB,
        total,
        "the last MiB holds the backup GPT"
    );

    // FAT: clean.
    let part = esp_copy(&img, dir);
    let f = tool("fsck.fat", &["-n", s(&part)]);
    assert!(!f.contains("FSCK"), "{f}");

    // ext4: clean, and real ostree reads the sysroot copied out of it.
    let spec = format!("{}?offset={root_off}", s(&img));
    tool("e2fsck", &["-fn", &spec]);
    let copy = dir.join("sysroot-copy");
    std::fs::create_dir(&copy).expect("mkdir");
    tool("debugfs", &["-R", &format!("rdump / {}", s(&copy)), &spec]);
    let st = ostree(&["admin", "status", &format!("--sysroot={}", s(&copy))]);
    let commit = ostree(&["rev-parse", &format!("--repo={}", s(&src.repo)), "os/main"]);
    assert!(
        st.contains(&format!("testos {commit}.0")) && st.contains("Version: 1.0"),
        "{st}"
    );
    let cfg = std::fs::read_to_string(copy.join("ostree/repo/config")).expect("config");
    assert!(
        cfg.contains("bootloader=none") && cfg.contains("[oxtree]\nbootloader=systemd-boot"),
        "{cfg}"
    );

    // The ESP: systemd-boot at the removable-media path, loader.conf, the mirrored entry
    // with its counter, and the kernel and initramfs it names.
    let at = format!("{}@@{esp_off}", s(&img));
    let list = tool("mdir", &["-/", "-b", "-i", &at, "::/"]);
    for f in [
        "::/EFI/BOOT/BOOTX64.EFI",
        "::/EFI/systemd/systemd-bootx64.efi",
        "::/loader/loader.conf",
    ] {
        assert!(list.lines().any(|l| l == f), "{f} missing:\n{list}");
    }
    let esp_dir = dir.join("esp-copy");
    std::fs::create_dir(&esp_dir).expect("mkdir");
    tool(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            &at,
            "::/EFI",
            "::/loader",
            "::/ostree",
            s(&esp_dir),
        ],
    );
    assert_eq!(
        std::fs::read(esp_dir.join("EFI/BOOT/BOOTX64.EFI")).expect("efi"),
        src.efi,
        "BOOTX64.EFI is the tree's systemd-boot"
    );
    let conf = std::fs::read_to_string(esp_dir.join("loader/loader.conf")).expect("loader.conf");
    assert!(
        conf.contains("timeout 0\n") && conf.contains("default ostree-*\n"),
        "{conf}"
    );
    let entries: Vec<String> = std::fs::read_dir(esp_dir.join("loader/entries"))
        .expect("entries")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        [format!("ostree-testos-{commit}.0+3.conf")],
        "one entry, stable name, 3 tries"
    );
    let entry =
        std::fs::read_to_string(esp_dir.join("loader/entries").join(&entries[0])).expect("entry");
    let (_, root_uuid) = d
        .lines()
        .find(|l| l.contains("name=\"root\""))
        .and_then(|l| l.split_once("uuid="))
        .expect("root uuid");
    let root_uuid = root_uuid.split(',').next().expect("uuid").to_lowercase();
    assert!(
        entry.contains(&format!(
            "options root=PARTUUID={root_uuid} rw console=ttyS0 ostree=/ostree/boot.1/testos/"
        )) && entry.contains("sort-key ostree\n"),
        "{entry}"
    );
    for key in ["linux", "initrd"] {
        let p = entry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .expect(key);
        assert!(
            esp_dir.join(p.trim_start_matches('/')).is_file(),
            "{key} {p} is not on the ESP"
        );
    }
    // The deployment mounts the ESP at /efi (the tree has /efi).
    let deploy = copy
        .join("ostree/deploy/testos/deploy")
        .join(format!("{commit}.0"));
    let fstab = std::fs::read_to_string(deploy.join("etc/fstab")).expect("fstab");
    assert!(
        fstab.starts_with("# the tree's fstab\n") && fstab.contains(" /efi vfat umask=0077"),
        "{fstab}"
    );
    // oxtree reads the counters from that ESP.
    let st = ox(&[
        "admin",
        "status",
        &format!("--sysroot={}", s(&copy)),
        &format!("--esp={}", s(&esp_dir)),
    ]);
    assert!(
        st.contains("Boot: not yet confirmed (3 tries left)"),
        "{st}"
    );
}

#[test]
fn same_inputs_and_source_date_epoch_give_the_same_gpt_and_esp_bytes() {
    let src = source(true);
    let dir = src.tmp.path();
    let (a, b, c) = (dir.join("a.img"), dir.join("b.img"), dir.join("c.img"));
    build_ok(&src, &a, &[]);
    build_ok(&src, &b, &[]);
    let o = build(&src, &c, &[], "1800000000");
    assert!(o.status.success());
    let total = std::fs::metadata(&a).expect("stat").len();
    assert_eq!(total, std::fs::metadata(&b).expect("stat").len());
    let (esp_off, esp_size) = partition(&a, 1);
    let (root_off, _) = partition(&a, 2);
    // Everything before the root filesystem (MBR, GPT, ESP) and the backup GPT.
    assert!(
        bytes(&a, 0, root_off) == bytes(&b, 0, root_off),
        "GPT or ESP differ between two builds of the same inputs"
    );
    assert!(bytes(&a, total - MIB, MIB) == bytes(&b, total - MIB, MIB));
    // The root filesystem's UUID and superblock times too.
    let sb = |img: &Path| {
        let o = tool(
            "dumpe2fs",
            &["-h", &format!("{}?offset={root_off}", s(img))],
        );
        o.lines()
            .filter(|l| {
                l.starts_with("Filesystem UUID")
                    || l.starts_with("Filesystem created")
                    || l.starts_with("Directory Hash Seed")
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(sb(&a), sb(&b));
    assert_eq!(sb(&a).len(), 3, "{:?}", sb(&a));
    // What differs: the ext4 partition's bytes, because mkfs.ext4 1.47 copies each file's
    // ctime (no tool sets a ctime) and allocates inodes in the order the build directory
    // lists them. What it holds does not: the same files, modes, owners and contents.
    let root_size = total - MIB - root_off;
    let (ra, rb) = (
        bytes(&a, root_off, root_size),
        bytes(&b, root_off, root_size),
    );
    let differing = ra
        .chunks(4096)
        .zip(rb.chunks(4096))
        .filter(|(x, y)| x != y)
        .count();
    eprintln!(
        "ext4: {differing} of {} blocks differ between two builds",
        root_size / 4096
    );
    let files = |img: &Path, name: &str| {
        let d = dir.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        let spec = format!("{}?offset={root_off}", s(img));
        tool("debugfs", &["-R", &format!("rdump / {}", s(&d)), &spec]);
        snapshot(&d)
    };
    let (fa, fb) = (files(&a, "files-a"), files(&b, "files-b"));
    assert!(
        fa.keys().any(|k| k.ends_with("/usr/lib/os-release")),
        "no deployment in the copy: {:?}",
        fa.keys().take(20).collect::<Vec<_>>()
    );
    assert_eq!(
        fa, fb,
        "the two images' root filesystems hold different files"
    );
    // Another SOURCE_DATE_EPOCH: other UUIDs and times.
    assert!(bytes(&a, 0, 34 * 512) != bytes(&c, 0, 34 * 512));
    assert!(bytes(&a, esp_off, esp_size) != bytes(&c, esp_off, esp_size));
}

#[test]
fn a_size_too_small_fails_before_writing_and_names_the_size_needed() {
    let src = source(true);
    let dir = src.tmp.path();
    let img = dir.join("small.img");
    let o = build(&src, &img, &["--size=100M"], "1700000000");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("the root filesystem needs at least") && err.contains("give --size="),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Nothing left behind: no image, no partial file, no work directory.
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "tree" && n != "repo")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The size it names is enough.
    let need = err
        .split("give --size=")
        .nth(1)
        .and_then(|r| r.split('M').next())
        .expect("size in the message");
    build_ok(&src, &img, &[&format!("--size={need}M")]);
    tool("sfdisk", &["--verify", s(&img)]);
}

#[test]
fn efi_binary_comes_from_the_option_when_the_tree_has_none_and_qcow2_is_converted() {
    let src = source(false);
    let dir = src.tmp.path();
    let efi = dir.join("sd-boot.efi");
    write(&efi, b"MZ the given systemd-boot\n", 0o644);
    let img = dir.join("disk.qcow2");
    let out = build_ok(
        &src,
        &img,
        &[&format!("--efi-binary={}", s(&efi)), "--format=qcow2"],
    );
    assert!(
        out.contains(&format!("systemd-boot from {}", s(&efi))),
        "{out}"
    );
    let info = tool("qemu-img", &["info", "--output=json", s(&img)]);
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    let raw = dir.join("back.raw");
    tool("qemu-img", &["convert", "-O", "raw", s(&img), s(&raw)]);
    tool("sfdisk", &["--verify", s(&raw)]);
    let (esp_off, _) = partition(&raw, 1);
    let got = tool(
        "mtype",
        &[
            "-i",
            &format!("{}@@{esp_off}", s(&raw)),
            "::/EFI/BOOT/BOOTX64.EFI",
        ],
    );
    assert_eq!(got, "MZ the given systemd-boot\n");
    // Not an EFI binary: refused.
    write(&efi, b"#!/bin/sh\n", 0o644);
    let o = build(
        &src,
        &dir.join("x.img"),
        &[&format!("--efi-binary={}", s(&efi))],
        "1700000000",
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an EFI (PE) binary"));
}

/// The Debian package (dist/deb/build.sh, which the OVMF e2e installs into its tree with
/// dpkg): the binary under all of ostree's names, units, initramfs-tools hook, man pages,
/// root-owned files with sane modes, and maintainer scripts that parse.
#[test]
fn the_debian_package_carries_oxtree_under_ostrees_names_with_its_units() {
    let tmp = tempdir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/deb/build.sh");
    let o = Command::new(&script)
        .arg(tmp.path())
        .arg(oxtree_bin())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("DEB_COMPRESS", "none")
        .output()
        .expect("run build.sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let info = tool("dpkg-deb", &["-I", &deb]);
    for f in [
        "Package: oxtree",
        "Conflicts: ostree, ostree-boot",
        "Provides: ostree",
    ] {
        assert!(info.contains(f), "{f}:\n{info}");
    }
    let list = tool("dpkg-deb", &["-c", &deb]);
    let has = |mode: &str, path: &str| {
        list.lines().any(|l| {
            l.starts_with(mode)
                && l.contains(" root/root ")
                && l.split_whitespace().nth(5) == Some(path)
        })
    };
    assert!(has("drwxr-xr-x", "./"), "{list}");
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/oxtree"),
        ("lrwxrwxrwx", "./usr/bin/ostree"),
        ("lrwxrwxrwx", "./usr/lib/ostree/ostree-prepare-root"),
        ("-rwxr-xr-x", "./usr/share/initramfs-tools/hooks/oxtree"),
        (
            "-rwxr-xr-x",
            "./usr/share/initramfs-tools/scripts/local-bottom/oxtree",
        ),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/oxtree-boot-complete.service",
        ),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/oxtree-finalize-staged.service",
        ),
        ("-rw-r--r--", "./usr/share/man/man1/oxtree-image-build.1.gz"),
        ("drwxr-xr-x", "./etc/oxtree/health.d/"),
    ] {
        assert!(has(mode, path), "{mode} {path} missing:\n{list}");
    }
    assert!(
        !list.contains("./etc/systemd/"),
        "units are enabled by postinst, not shipped as links"
    );
    let ctl = tmp.path().join("control");
    tool("dpkg-deb", &["-e", &deb, s(&ctl)]);
    for script in ["postinst", "postrm"] {
        tool("sh", &["-n", s(&ctl.join(script))]);
    }
    // Reproducible: the same binary and SOURCE_DATE_EPOCH give the same package.
    let again = tmp.path().join("again");
    let o2 = Command::new(&script)
        .arg(&again)
        .arg(oxtree_bin())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("DEB_COMPRESS", "none")
        .output()
        .expect("run build.sh");
    let deb2 = String::from_utf8_lossy(&o2.stdout).trim().to_string();
    if std::fs::read(&deb).expect("deb") != std::fs::read(&deb2).expect("deb") {
        // Say what differs: the control fields or the members' list (sizes, modes, times).
        let show = |d: &str| {
            format!(
                "{}{}",
                tool("dpkg-deb", &["-I", d]),
                tool("dpkg-deb", &["--verbose", "-c", d])
            )
        };
        let (a, b) = (show(&deb), show(&deb2));
        let differ: Vec<_> = a
            .lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .map(|(x, y)| format!("- {x}\n+ {y}"))
            .collect();
        panic!(
            "two builds of the package differ:\n{}\n(first build's listing:\n{a})",
            differ.join("\n")
        );
    }
}
