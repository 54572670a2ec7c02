//! The /boot freeze/thaw cycle on real filesystems of its own: an ext4 image on a loop
//! device is frozen (checked from outside while it is) and always thawed, even when the step
//! run while frozen fails; a tmpfs cannot be frozen and is flushed with syncfs instead.
//! Needs root (mount), as the README's test command runs.

use oxtree::fsutil::freeze::{freeze_thaw_cycle, Flushed};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A filesystem mounted for one test, unmounted (and thawed, should a test have failed
/// while it was frozen) on drop.
struct Mount {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e} (util-linux and e2fsprogs are needed)"))
}

impl Mount {
    fn new(kind: &str) -> Mount {
        std::fs::create_dir_all("/var/tmp").expect("mkdir");
        let tmp = tempfile::Builder::new()
            .prefix("oxtree-freeze-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).expect("mkdir");
        let d = dir.to_str().expect("utf-8");
        let o = if kind == "ext4" {
            let img = tmp.path().join("fs.img");
            let img = img.to_str().expect("utf-8");
            assert!(run("truncate", &["-s", "32M", img]).status.success());
            let o = run("mkfs.ext4", &["-q", "-F", img]);
            assert!(o.status.success(), "mkfs.ext4: {o:?}");
            run("mount", &["-o", "loop", img, d])
        } else {
            run("mount", &["-t", "tmpfs", "none", d])
        };
        assert!(
            o.status.success(),
            "mounting a {kind} for the test failed (root and loop devices are needed): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Mount { dir, _tmp: tmp }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether the filesystem is frozen, asked without blocking: freezing a frozen
    /// filesystem fails with EBUSY; if it was not frozen, it is thawed again at once.
    fn frozen(&self) -> bool {
        let d = self.dir.to_str().expect("utf-8");
        let o = run("fsfreeze", &["--freeze", d]);
        if o.status.success() {
            assert!(run("fsfreeze", &["--unfreeze", d]).status.success());
            return false;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("busy"), "fsfreeze --freeze: {err}");
        true
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap_or_default().to_string();
        let _ = run("fsfreeze", &["--unfreeze", &d]);
        if !run("umount", &[&d]).status.success() {
            let _ = run("umount", &["-l", &d]);
        }
    }
}

#[test]
fn an_own_filesystem_is_frozen_then_always_thawed() {
    let m = Mount::new("ext4");
    std::fs::write(m.path().join("entry.conf"), "title x\n").expect("write");
    let mut seen = None;
    let r = freeze_thaw_cycle(m.path(), || {
        seen = Some(m.frozen());
        Ok(())
    })
    .expect("freeze/thaw");
    assert_eq!(r, Flushed::FreezeThaw);
    assert_eq!(seen, Some(true), "the filesystem was not frozen in between");
    assert!(!m.frozen(), "left frozen");
    // A failure while frozen is reported, after the thaw.
    let r = freeze_thaw_cycle(m.path(), || {
        Err(oxtree::Error::Other("injected while frozen".into()))
    });
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("injected while frozen")),
        "{r:?}"
    );
    assert!(!m.frozen(), "left frozen after a failure");
    std::fs::write(m.path().join("after"), "writable\n").expect("write after the cycle");
}

#[test]
fn a_filesystem_that_cannot_be_frozen_is_synced() {
    let m = Mount::new("tmpfs");
    let mut ran = false;
    let r = freeze_thaw_cycle(m.path(), || {
        ran = true;
        Ok(())
    })
    .expect("syncfs fallback");
    assert_eq!(r, Flushed::Syncfs(libc::EOPNOTSUPP));
    assert!(!ran, "nothing was frozen, so nothing runs while frozen");
}
