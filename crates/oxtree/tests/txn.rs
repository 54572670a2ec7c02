//! Transactions never let unverified content into the repository, not even for a moment:
//! a file object whose bytes do not match its name is refused, and while it is being
//! written (and after) no file under `objects/` or `tmp/` has setuid/setgid bits or a foreign
//! owner, no staging directory is reachable by other users, and nothing that fails its hash
//! is left. bare-user-only refuses setuid/setgid/sticky/world-writable content as ostree does.
//! These run as root (like the CLI tests), so that chown and setuid are real.

use oxtree::object::FileHeader;
use oxtree::{Checksum, ObjectType, Repo, RepoMode};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn tempdir() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp").expect("mkdir /var/tmp");
    tempfile::Builder::new()
        .prefix("oxtree-txn-")
        .tempdir_in("/var/tmp")
        .expect("tempdir")
}

const MODES: [RepoMode; 4] = [
    RepoMode::Archive,
    RepoMode::Bare,
    RepoMode::BareUser,
    RepoMode::BareUserOnly,
];

/// Everything under `objects/` and `tmp/` that a hostile server must never get there:
/// setuid/setgid files, files owned by someone else, staging dirs others can enter.
fn violations(repo: &Path) -> Vec<String> {
    let me = rustix::process::geteuid().as_raw();
    let mut out = Vec::new();
    let mut stack = vec![repo.join("objects"), repo.join("tmp")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue; // renamed or removed meanwhile
            };
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if m.is_dir() {
                if name.is_some_and(|n| n.starts_with("staging-") && !n.ends_with("-lock"))
                    && m.mode() & 0o077 != 0
                {
                    out.push(format!("{}: staging dir mode {:o}", p.display(), m.mode()));
                }
                stack.push(p);
            } else if !m.file_type().is_symlink() {
                if m.mode() & 0o6000 != 0 {
                    out.push(format!("{}: mode {:o}", p.display(), m.mode()));
                }
                if m.uid() != me {
                    out.push(format!("{}: owned by {}", p.display(), m.uid()));
                }
            }
        }
    }
    out
}

/// A payload that looks at the repository each time it is read, i.e. while the
/// transaction is writing it.
struct Watching {
    data: std::io::Cursor<Vec<u8>>,
    repo: PathBuf,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Read for Watching {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.seen
            .lock()
            .expect("lock")
            .extend(violations(&self.repo));
        // Small reads: the repository is looked at several times per object.
        let n = buf.len().min(4096);
        self.data.read(&mut buf[..n])
    }
}

fn file_checksum(h: &FileHeader, content: &[u8]) -> Checksum {
    let mut b = h.content_stream_prefix();
    b.extend_from_slice(content);
    Checksum::digest(&b)
}

/// Every object in the repo verifies against its name.
fn all_objects_verify(repo: &Repo) {
    for (ty, c) in repo.list_objects().expect("list") {
        repo.verify_object(ty, &c)
            .unwrap_or_else(|e| panic!("{ty:?} {c} does not verify: {e}"));
    }
}

#[test]
fn content_that_does_not_match_its_name_never_lands() {
    for mode in MODES {
        let tmp = tempdir();
        let repo = Repo::create(&tmp.path().join("repo"), mode).expect("init");
        // What a hostile server would like to plant: a setuid-root (or foreign-owned)
        // executable, under the checksum of a genuine file with the same header.
        let header = FileHeader {
            uid: if mode == RepoMode::Bare { 1234 } else { 0 },
            gid: if mode == RepoMode::Bare { 5678 } else { 0 },
            mode: if mode == RepoMode::BareUserOnly {
                0o100755
            } else {
                0o104755
            },
            symlink_target: String::new(),
            xattrs: if mode == RepoMode::Bare {
                vec![(b"user.planted".to_vec(), b"1".to_vec())]
            } else {
                Vec::new()
            },
        };
        let genuine = vec![b'g'; 100_000];
        let evil = vec![b'e'; 100_000];
        let name = file_checksum(&header, &genuine);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let txn = repo.begin().expect("begin");
        let mut payload = Watching {
            data: std::io::Cursor::new(evil.clone()),
            repo: repo.path().to_path_buf(),
            seen: seen.clone(),
        };
        let err = txn
            .write_file(&header, &mut payload, evil.len() as u64, Some(&name))
            .expect_err("wrong bytes must be refused");
        assert!(
            matches!(err, oxtree::Error::ChecksumMismatch { .. }),
            "{mode}: {err}"
        );
        assert!(!txn.has_object(ObjectType::File, &name), "{mode}");
        let during = seen.lock().expect("lock").clone();
        assert!(during.is_empty(), "{mode}: while writing: {during:#?}");
        let after = violations(repo.path());
        assert!(after.is_empty(), "{mode}: after the refusal: {after:#?}");
        // Nothing named after the object anywhere, staged or stored.
        let hex = name.to_hex();
        let found: Vec<_> = walk(repo.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&hex[2..]))
            .collect();
        assert!(found.is_empty(), "{mode}: {found:?}");
        txn.commit().expect("commit");
        assert!(!repo.has_object(ObjectType::File, &name), "{mode}");
        all_objects_verify(&repo);

        // The genuine bytes are stored, with the header's owner and mode once verified (so
        // the checks above could see a setuid file if one were there).
        let txn = repo.begin().expect("begin");
        let mut payload = Watching {
            data: std::io::Cursor::new(genuine.clone()),
            repo: repo.path().to_path_buf(),
            seen: seen.clone(),
        };
        txn.write_file(&header, &mut payload, genuine.len() as u64, Some(&name))
            .expect("genuine bytes");
        txn.commit().expect("commit");
        let during = seen.lock().expect("lock").clone();
        assert!(during.is_empty(), "{mode}: while writing: {during:#?}");
        all_objects_verify(&repo);
        let st = std::fs::metadata(repo.object_path(ObjectType::File, &name)).expect("stored");
        match mode {
            RepoMode::Bare => {
                assert_eq!(st.mode() & 0o7777, 0o4755, "bare keeps setuid");
                assert_eq!((st.uid(), st.gid()), (1234, 5678));
            }
            _ => assert_eq!(st.mode() & 0o6000, 0, "{mode}: {:o}", st.mode()),
        }
        assert_eq!(st.mtime(), 0, "{mode}: objects have mtime 0");
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn bare_user_only_refuses_setuid_setgid_sticky_and_world_writable() {
    let tmp = tempdir();
    let repo = Repo::create(&tmp.path().join("repo"), RepoMode::BareUserOnly).expect("init");
    let txn = repo.begin().expect("begin");
    for (mode, bits) in [
        (0o104755, "04000"),
        (0o102755, "02000"),
        (0o101755, "01000"),
        (0o100666, "00002"),
    ] {
        let header = FileHeader {
            uid: 0,
            gid: 0,
            mode,
            symlink_target: String::new(),
            xattrs: Vec::new(),
        };
        let content = b"content\n";
        let c = file_checksum(&header, content);
        let err = txn
            .write_file(&header, &mut &content[..], content.len() as u64, Some(&c))
            .expect_err("refused");
        // ostree's message: "Content object C: invalid mode 0104755 with bits 04000".
        let want = format!("Content object {c}: invalid mode 0{mode:o} with bits {bits}");
        assert!(err.to_string().contains(&want), "{err}\nwant: {want}");
        let err = txn
            .write_file_prehashed(&header, content, &c)
            .expect_err("refused");
        assert!(err.to_string().contains(&want), "{err}");
    }
    // 0775 and below are fine, symlinks whatever their mode.
    let header = FileHeader {
        uid: 0,
        gid: 0,
        mode: 0o100775,
        symlink_target: String::new(),
        xattrs: Vec::new(),
    };
    let c = file_checksum(&header, b"x");
    txn.write_file(&header, &mut &b"x"[..], 1, Some(&c))
        .expect("0775 is valid");
    txn.commit().expect("commit");
    assert!(violations(repo.path()).is_empty());
    all_objects_verify(&repo);
}

/// Transactions begun concurrently clean each other's dead staging directories while they
/// create their own: none loses its directory to another's cleanup (the review's S5: a
/// spurious ENOENT) and every object lands.
#[test]
fn concurrent_transactions_keep_their_staging_dirs() {
    let tmp = tempdir();
    let path = tmp.path().join("repo");
    Repo::create(&path, RepoMode::BareUserOnly).expect("init");
    std::thread::scope(|sc| {
        for t in 0..6u32 {
            let path = &path;
            sc.spawn(move || {
                let repo = Repo::open(path).expect("open");
                for i in 0..60u32 {
                    let txn = repo.begin().expect("begin");
                    let data = format!("thread {t} round {i}").into_bytes();
                    let c = txn
                        .write_metadata(ObjectType::DirMeta, &data)
                        .unwrap_or_else(|e| panic!("thread {t} round {i}: {e}"));
                    txn.commit()
                        .unwrap_or_else(|e| panic!("thread {t} round {i}: {e}"));
                    assert!(repo.has_object(ObjectType::DirMeta, &c));
                }
            });
        }
    });
}

/// Refs and `.commitpartial` removals queued in a transaction happen only when it commits.
#[test]
fn queued_refs_and_markers_apply_on_commit_only() {
    use oxtree::repo::RefName;
    let tmp = tempdir();
    let repo = Repo::create(&tmp.path().join("repo"), RepoMode::Archive).expect("init");
    let main = RefName::parse("os/main").expect("ref");
    let txn = repo.begin().expect("begin");
    let c = txn
        .write_metadata(ObjectType::DirMeta, b"not really a commit")
        .expect("write");
    txn.set_ref(&main, Some(&c)).expect("queue");
    drop(txn);
    assert_eq!(
        repo.read_ref(&main).expect("read"),
        None,
        "dropped txn moved a ref"
    );
    let marker = repo.path().join(format!("state/{c}.commitpartial"));
    std::fs::write(&marker, b"").expect("marker");
    let txn = repo.begin().expect("begin");
    txn.write_metadata(ObjectType::DirMeta, b"not really a commit")
        .expect("write");
    txn.set_ref(&main, Some(&Checksum::default()))
        .expect("queue");
    txn.set_ref(&main, Some(&c)).expect("the later one wins");
    txn.delete_ref(&RefName::parse("gone").expect("ref"))
        .expect("deleting a missing ref is fine");
    txn.remove_commitpartial(&c);
    assert!(txn
        .set_ref(
            &RefName {
                remote: None,
                name: ".tmp-x".into()
            },
            Some(&c)
        )
        .is_err());
    assert!(marker.exists() && repo.read_ref(&main).expect("read").is_none());
    txn.commit().expect("commit");
    assert_eq!(repo.read_ref(&main).expect("read"), Some(c));
    assert!(!marker.exists());
    let txn = repo.begin().expect("begin");
    txn.delete_ref(&main).expect("queue");
    txn.commit().expect("commit");
    assert_eq!(repo.read_ref(&main).expect("read"), None);
}
