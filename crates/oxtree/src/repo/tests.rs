//! Crash points inside repository operations, through the test-only `fail_point` hook: the
//! operation stops at a named step with the disk as a crash there would leave it; readers
//! then see the old state or the new (or, for the summary/signature pair, a pair that fails
//! verification), and the next run repairs it.

use super::*;
use crate::object::Summary;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("oxtree-unit-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir")
}

/// Run `f` with the crash point `name` armed on this thread.
fn crash_at<T>(name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    FAIL_AT.with(|c| c.set(Some(name)));
    let r = f();
    FAIL_AT.with(|c| c.set(None));
    r
}

fn commit_tree(repo: &Repo, dir: &Path, branch: &str, content: &str) -> Checksum {
    let tree = dir.join(format!("tree-{branch}-{}", content.len()));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("file"), content).expect("write");
    std::fs::write(tree.join("common"), "the same in every commit\n").expect("write");
    let b = RefName::parse(branch).expect("ref");
    repo.commit_dir(&tree, Some(&b), &CommitOptions::default())
        .expect("commit")
        .commit
}

/// The summary and the signature on disk, and whether the signature verifies the summary.
fn pair(repo: &Repo, key: &ed25519_dalek::SigningKey) -> (Vec<u8>, bool) {
    let summary = std::fs::read(repo.path().join("summary")).expect("summary");
    let sig = std::fs::read(repo.path().join("summary.sig")).ok();
    let ok = crate::sign::verify(sig.as_deref(), &summary, &[key.verifying_key()], &[])
        .expect("parse sig")
        .is_some();
    (summary, ok)
}

#[test]
fn summary_crash_between_summary_and_signature_never_verifies_and_is_repaired() {
    let tmp = scratch();
    let mut repo = Repo::create(&tmp.path().join("repo"), RepoMode::Archive).expect("init");
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let c1 = commit_tree(&repo, tmp.path(), "main", "v1\n");
    repo.regenerate_summary_signed(std::slice::from_ref(&key))
        .expect("summary");
    let (old, ok) = pair(&repo, &key);
    assert!(ok);
    let c2 = commit_tree(&repo, tmp.path(), "main", "v2, longer\n");

    // Crash after the summary, before its signature: the new summary with the old
    // signature, a pair no reader accepts.
    crash_at("summary-before-sig", || {
        repo.regenerate_summary_signed(std::slice::from_ref(&key))
    })
    .expect_err("crash point");
    let (mid, ok) = pair(&repo, &key);
    assert_ne!(mid, old);
    assert!(!ok, "a new summary verified with the old signature");
    let s = Summary::parse(&mid).expect("summary parses");
    assert!(s.refs.iter().any(|r| r.checksum == c2) && !s.refs.iter().any(|r| r.checksum == c1));

    // The next run repairs it: a matching pair, and the summary's mtime is the sig's.
    repo.regenerate_summary_signed(std::slice::from_ref(&key))
        .expect("summary");
    let (_, ok) = pair(&repo, &key);
    assert!(ok);
    let m = |n: &str| {
        std::fs::metadata(repo.path().join(n))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    assert_eq!(m("summary"), m("summary.sig"));

    // Unsigned again: the stale signature goes, after the new summary is in place.
    crash_at("summary-before-sig", || repo.regenerate_summary_signed(&[]))
        .expect_err("crash point");
    assert!(repo.path().join("summary.sig").exists());
    repo.regenerate_summary().expect("summary");
    assert!(!repo.path().join("summary.sig").exists());
}

#[test]
fn delta_reindex_crash_keeps_every_index_and_next_run_drops_stale_ones() {
    let tmp = scratch();
    let mut repo = Repo::create(&tmp.path().join("repo"), RepoMode::BareUser).expect("init");
    let a = commit_tree(&repo, tmp.path(), "a", "a1\n");
    let b = commit_tree(&repo, tmp.path(), "b", "b1, longer\n");
    let c = commit_tree(&repo, tmp.path(), "c", "c1, longer still\n");
    let opts = DeltaOptions::default();
    for to in [&a, &b, &c] {
        repo.generate_static_delta(None, to, &opts).expect("delta");
    }
    repo.regenerate_summary().expect("summary");
    let root = repo.path().to_path_buf();
    let index = |c: &Checksum| root.join(crate::delta::index_path(c));
    let before: Vec<Vec<u8>> = [&a, &b, &c]
        .iter()
        .map(|c| std::fs::read(index(c)).expect("index"))
        .collect();
    // c's delta goes away (its index becomes stale); a gets a second delta.
    std::fs::remove_dir_all(repo.path().join(crate::delta::delta_dir(None, &c))).expect("rm delta");
    repo.generate_static_delta(Some(&b), &a, &opts)
        .expect("delta");

    crash_at("delta-index-written", || repo.regenerate_summary()).expect_err("crash point");
    // Each index is the old one or the new one, never missing or torn.
    for (i, t) in [&a, &b, &c].iter().enumerate() {
        let bytes = std::fs::read(index(t)).expect("index still there");
        let v = crate::gvariant::decode_normal(&bytes, &crate::gvariant::Type::of("a{sv}"))
            .expect("index parses");
        assert!(v.lookup("ostree.static-deltas").is_some());
        if Some(&bytes) != before.get(i) {
            assert_eq!(*t, &a, "only a's index changes");
        }
    }
    repo.regenerate_summary().expect("summary");
    assert!(!index(&c).exists(), "stale index kept");
    let a_index = std::fs::read(index(&a)).expect("index");
    let names = crate::gvariant::decode_normal(&a_index, &crate::gvariant::Type::of("a{sv}"))
        .expect("parses");
    let deltas = names.lookup("ostree.static-deltas").expect("deltas");
    assert_eq!(deltas.sv_entries().map(|e| e.len()), Some(2));
    assert_eq!(std::fs::read(index(&b)).expect("index"), before[1]);
}

/// A pull-local stores the detached metadata a commit was verified with, not what the
/// source holds by the time it copies (security review s7 F3: the source swapped its
/// .commitmeta between the check and the copy); a commit verified without any stores none.
#[test]
fn pull_local_stores_the_detached_metadata_that_was_verified() {
    let d = scratch();
    let src = Repo::create(&d.path().join("src"), RepoMode::Archive).expect("init");
    let c = commit_tree(&src, d.path(), "main", "content\n");
    let meta = |k: &str| {
        crate::gvariant::encode(&crate::gvariant::Value::dict_sv(vec![(
            k.to_string(),
            crate::gvariant::Value::str("v"),
        )]))
    };
    src.write_commitmeta(&c, &meta("swapped-in")).expect("meta");
    for (verified, want) in [(Some(meta("checked")), Some(meta("checked"))), (None, None)] {
        let dst = Repo::create(
            &d.path().join(format!("dst-{}", want.is_some())),
            RepoMode::Archive,
        )
        .expect("init");
        let mut map = crate::pull::VerifiedMeta::new();
        map.insert(c, verified);
        dst.pull_local_verified(&src, &[c.to_hex()], &PullLocalOptions::default(), map)
            .expect("pull-local");
        assert_eq!(dst.load_commitmeta_bytes(&c).expect("read"), want);
    }
}
