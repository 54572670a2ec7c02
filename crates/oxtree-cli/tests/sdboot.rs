//! The systemd-boot backend: the ESP mirror follows every deploy, rollback, undeploy and
//! cleanup with stable entry names and the boot counters carried over; the counters that
//! systemd-boot decrements on the ESP are the ones `admin status`, `boot-complete` and
//! `rollback --if-failed` read; real ostree still reads the sysroot. The ESP is a plain
//! directory here (what sd-boot would see), checked with systemd-boot's own rules
//! (`common::sdboot`).

mod common;
use common::sdboot::{check_esp_boots, default_entry, entries};
use common::*;
use std::path::{Path, PathBuf};

struct Sr {
    _tmp: TestDir,
    tree: PathBuf,
    path: PathBuf,
    esp: PathBuf,
}

impl Sr {
    fn args(&self) -> [String; 2] {
        [
            format!("--sysroot={}", s(&self.path)),
            format!("--esp={}", s(&self.esp)),
        ]
    }
    fn admin(&self, cmd: &[&str]) -> String {
        let [a, b] = self.args();
        let mut v = vec!["admin", cmd[0], &a, &b];
        v.extend_from_slice(&cmd[1..]);
        ox(&v)
    }
    /// Commit VERSION; `kernel` changes the kernel (a new bootcsum).
    fn commit(&self, version: &str, kernel: bool) -> String {
        write(
            &self.tree.join("usr/share/version"),
            version.as_bytes(),
            0o644,
        );
        if kernel {
            write(
                &self.tree.join("usr/lib/modules/6.1.0/vmlinuz"),
                format!("kernel {version}").as_bytes(),
                0o644,
            );
        }
        // oxtree's commit: real ostree refuses a repo that says bootloader=systemd-boot.
        ox(&[
            "commit",
            &format!("--repo={}", s(&self.path.join("ostree/repo"))),
            "-b",
            "testos/main",
            "-s",
            version,
            &format!("--add-metadata-string=version={version}"),
            s(&self.tree),
        ])
    }
    fn base(&self, commit: &str) -> String {
        format!("ostree-testos-{commit}.0")
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = entries(&self.esp).into_iter().map(|e| e.file).collect();
        v.sort();
        v
    }
    fn kernel_dirs(&self) -> usize {
        std::fs::read_dir(self.esp.join("ostree"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }
    /// systemd-boot boots the default entry: one try is used (the file is renamed).
    fn sd_boot_boots(&self) -> String {
        let e = default_entry(&self.esp).expect("an entry");
        if let Some((left, done)) = e.tries.filter(|t| t.0 > 0) {
            let dir = self.esp.join("loader/entries");
            let new = format!("{}+{}-{}.conf", e.base(), left - 1, done + 1);
            std::fs::rename(dir.join(&e.file), dir.join(new)).expect("rename");
        }
        e.base().to_string()
    }
}

/// A sysroot with stateroot `testos` whose repo config says `config` (the bootloader and
/// boot counting), and an empty ESP directory.
fn sysroot(config: &str) -> Sr {
    require_ostree();
    let tmp = tempdir();
    let tree = tmp.path().join("tree");
    os_tree(&tree);
    let path = tmp.path().join("sr");
    let esp = tmp.path().join("esp");
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::create_dir_all(&esp).expect("mkdir");
    ox(&["admin", "init-fs", s(&path)]);
    ox(&[
        "admin",
        "os-init",
        &format!("--sysroot={}", s(&path)),
        "testos",
    ]);
    let cfg = path.join("ostree/repo/config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(config);
    std::fs::write(&cfg, text).expect("config");
    Sr {
        _tmp: tmp,
        tree,
        path,
        esp,
    }
}

fn deploy(sr: &Sr) {
    sr.admin(&[
        "deploy",
        "--os=testos",
        "--karg=root=LABEL=root",
        "testos/main",
    ]);
}

fn check(sr: &Sr, what: &str) -> String {
    match check_esp_boots(&sr.esp, &sr.path) {
        Ok(e) => e.base().to_string(),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn the_esp_follows_deploy_rollback_undeploy_with_stable_names_and_counters() {
    // The ostree-compatible spelling: real ostree reads this sysroot too.
    let sr = sysroot("\n[sysroot]\nbootloader=none\nboot-counting-tries=3\n\n[oxtree]\nbootloader=systemd-boot\n");
    let v1 = sr.commit("1.0", false);
    deploy(&sr);
    assert_eq!(sr.files(), [format!("{}+3.conf", sr.base(&v1))]);
    let conf = std::fs::read_to_string(sr.esp.join("loader/loader.conf")).expect("loader.conf");
    assert!(
        conf.contains("timeout 0\n") && conf.contains("default ostree-*\n"),
        "{conf}"
    );
    assert_eq!(check(&sr, "v1 deployed"), sr.base(&v1));
    // The entries under /boot keep ostree's names, with no counter: that lives on the ESP.
    let boot_entries: Vec<String> = std::fs::read_dir(sr.path.join("boot/loader/entries"))
        .expect("entries")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(boot_entries, ["ostree-1-testos.conf"]);

    // systemd-boot boots v1 once (3 -> 2 left, 1 done); then v2 (a new kernel) is deployed.
    assert_eq!(sr.sd_boot_boots(), sr.base(&v1));
    let v2 = sr.commit("2.0", true);
    deploy(&sr);
    assert_eq!(
        sr.files(),
        {
            let mut v = vec![
                format!("{}+2-1.conf", sr.base(&v1)),
                format!("{}+3.conf", sr.base(&v2)),
            ];
            v.sort();
            v
        },
        "v1 kept its counter, v2 got a fresh one"
    );
    assert_eq!(sr.kernel_dirs(), 2);
    assert_eq!(check(&sr, "v2 deployed"), sr.base(&v2));
    let st = sr.admin(&["status"]);
    assert!(
        st.contains("Boot: not yet confirmed (3 tries left)")
            && st.contains("Boot: not yet confirmed (2 tries left)"),
        "{st}"
    );
    // Real ostree reads the sysroot (the ESP is invisible to it).
    let ost = ostree(&["admin", "status", &format!("--sysroot={}", s(&sr.path))]);
    assert!(ost.contains(&v1) && ost.contains(&v2), "{ost}");

    // boot-complete for v1 (index 1): its ESP entry loses the counter, as bless-boot does it.
    sr.admin(&["boot-complete", "--index=1", "--skip-health-checks"]);
    assert!(
        sr.files().contains(&format!("{}.conf", sr.base(&v1))),
        "{:?}",
        sr.files()
    );

    // Rollback: v1 first; the names stay, the versions (the order) change.
    sr.admin(&["rollback"]);
    assert_eq!(check(&sr, "rollback"), sr.base(&v1));
    assert!(sr.files().contains(&format!("{}+3.conf", sr.base(&v2))));

    // Undeploy v2: its entry and its kernel leave the ESP.
    sr.admin(&["undeploy", "1"]);
    assert_eq!(sr.files(), [format!("{}.conf", sr.base(&v1))]);
    assert_eq!(sr.kernel_dirs(), 1);
    check(&sr, "undeploy");
    // Nothing half-written is left anywhere on the ESP.
    let mut stack = vec![sr.esp.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readdir").flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.ends_with(".tmp"), "left over: {}", e.path().display());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    ostree(&["admin", "status", &format!("--sysroot={}", s(&sr.path))]);
}

#[test]
fn counters_systemd_boot_decremented_drive_status_and_rollback_if_failed() {
    // The spelling, for sysroots only oxtree manages.
    let sr = sysroot("\n[sysroot]\nbootloader=systemd-boot\nboot-counting-tries=2\n");
    let v1 = sr.commit("1.0", false);
    deploy(&sr);
    sr.admin(&["boot-complete", "--index=0", "--skip-health-checks"]);
    let v2 = sr.commit("2.0", true);
    deploy(&sr);
    // v2 fails to boot twice: systemd-boot counts it down to 0 on the ESP...
    assert_eq!(sr.sd_boot_boots(), sr.base(&v2));
    assert_eq!(sr.sd_boot_boots(), sr.base(&v2));
    assert!(sr.files().contains(&format!("{}+0-2.conf", sr.base(&v2))));
    // ...and then boots v1 by itself: the entry out of tries sorts last.
    assert_eq!(default_entry(&sr.esp).expect("entry").base(), sr.base(&v1));
    let st = sr.admin(&["status"]);
    assert!(
        st.contains("Boot: FAILED (no good boot in 2 tries)"),
        "{st}"
    );
    // rollback --if-failed makes the boot configuration say what the bootloader did: v1
    // first, v2 kept last with its spent counter.
    sr.admin(&["rollback", "--if-failed"]);
    let deps = oxtree::sysroot::Sysroot::new(&sr.path)
        .with_esp(Some(sr.esp.clone()))
        .deployments()
        .expect("deployments");
    assert_eq!(deps[0].checksum.to_hex(), v1);
    assert_eq!(deps[1].checksum.to_hex(), v2);
    assert_eq!(deps[1].tries, Some((0, 2)));
    assert!(sr.files().contains(&format!("{}+0-2.conf", sr.base(&v2))));
    assert_eq!(check(&sr, "after rollback --if-failed"), sr.base(&v1));
    // Nothing to do a second time.
    let out = sr.admin(&["rollback", "--if-failed"]);
    assert!(!out.contains("Rolled back"), "{out}");
}

#[test]
fn cleanup_rebuilds_an_esp_that_lost_files_and_drops_strangers_it_owns() {
    let sr = sysroot("\n[oxtree]\nbootloader=systemd-boot\n");
    let v1 = sr.commit("1.0", false);
    deploy(&sr);
    // Another OS's entry is not ours: left alone. A stale entry of ours and a half-written
    // file are cleaned up; a lost kernel is copied again.
    let dir = sr.esp.join("loader/entries");
    std::fs::write(
        dir.join("other-os.conf"),
        "title Other\nlinux /other/vmlinuz\n",
    )
    .expect("write");
    std::fs::write(dir.join("ostree-testos-gone.0+1.conf"), "title gone\n").expect("write");
    std::fs::write(dir.join("ostree-x.conf.tmp"), "partial").expect("write");
    let e = default_entry(&sr.esp).expect("entry");
    let linux = e
        .get("linux")
        .expect("linux")
        .trim_start_matches('/')
        .to_string();
    std::fs::remove_file(sr.esp.join(&linux)).expect("rm");
    sr.admin(&["cleanup"]);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [format!("{}.conf", sr.base(&v1)), "other-os.conf".into()]
    );
    assert!(
        sr.esp.join(&linux).is_file(),
        "the kernel was not copied again"
    );
    // No ESP given and none mounted: a clear error, nothing changed.
    let (_, err) = ox_fail(&[
        "admin",
        "deploy",
        &format!("--sysroot={}", s(&sr.path)),
        "--os=testos",
        "testos/main",
    ]);
    assert!(
        err.contains("no EFI system partition was found") && err.contains("--esp"),
        "{err}"
    );
    let _ = Path::new(&sr.esp);
}

/// A kernel with a device tree: the entry's `devicetree` file is mirrored onto the ESP
/// beside the kernel, and the mirror boots as systemd-boot reads it.
#[test]
fn the_esp_mirrors_the_device_tree() {
    let sr = sysroot("\n[sysroot]\nbootloader=none\n\n[oxtree]\nbootloader=systemd-boot\n");
    write(
        &sr.tree.join("usr/lib/modules/6.1.0/devicetree"),
        b"device tree\n",
        0o644,
    );
    let v1 = sr.commit("1.0", false);
    deploy(&sr);
    assert_eq!(check(&sr, "deployed"), sr.base(&v1));
    let e = default_entry(&sr.esp).expect("an entry");
    let text = std::fs::read_to_string(sr.esp.join("loader/entries").join(&e.file)).expect("entry");
    let dt = text
        .lines()
        .find_map(|l| l.strip_prefix("devicetree /"))
        .expect("devicetree line");
    assert_eq!(
        std::fs::read(sr.esp.join(dt)).expect("device tree on the ESP"),
        b"device tree\n"
    );
}
