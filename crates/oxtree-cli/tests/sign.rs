//! ed25519 signatures, proven against independent code (OpenSSL), and enforced on pull.
//! Debian's ostree 2022.7 is built without ed25519, so OpenSSL is the oracle here.

mod common;
use common::*;
use std::path::Path;

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

fn commit_bytes(repo: &Path, c: &str) -> Vec<u8> {
    std::fs::read(repo.join(format!("objects/{}/{}.commit", &c[..2], &c[2..])))
        .expect("commit object")
}

fn commitmeta_path(repo: &Path, c: &str) -> std::path::PathBuf {
    repo.join(format!("objects/{}/{}.commitmeta", &c[..2], &c[2..]))
}

#[test]
fn oxtree_signatures_verify_with_openssl_and_back() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (pem, pubpem, secret, public) = openssl_key(t, "k");
    let repo = t.join("repo");
    let a = format!("--repo={}", s(&repo));
    ox(&["init", &a, "--mode=archive"]);
    let c = ox(&[
        "commit",
        &a,
        "-b",
        "main",
        "-s",
        "signed",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    // oxtree's signature, checked by OpenSSL over the commit object bytes.
    let meta = std::fs::read(commitmeta_path(&repo, &c)).expect("commitmeta written");
    let sigs = oxtree::sign::signatures(&meta).expect("sigs");
    assert_eq!(sigs.len(), 1);
    std::fs::write(t.join("commit.bin"), commit_bytes(&repo, &c)).expect("write");
    std::fs::write(t.join("sig.bin"), sigs[0]).expect("write");
    let out = run_ok(
        Path::new("openssl"),
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            s(&pubpem),
            "-rawin",
            "-in",
            s(&t.join("commit.bin")),
            "-sigfile",
            s(&t.join("sig.bin")),
        ],
    );
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    assert!(ox(&["sign", &a, "--verify", "main", &public]).contains("verified successfully"));
    // A signature made by OpenSSL, stored as OSTree stores it, verifies in oxtree.
    let c2 = ox(&["commit", &a, "-b", "other", "-s", "unsigned", TS, s(&tree)]);
    std::fs::write(t.join("c2.bin"), commit_bytes(&repo, &c2)).expect("write");
    run_ok(
        Path::new("openssl"),
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&pem),
            "-rawin",
            "-in",
            s(&t.join("c2.bin")),
            "-out",
            s(&t.join("c2.sig")),
        ],
    );
    let sig = std::fs::read(t.join("c2.sig")).expect("sig");
    let value = oxtree::gvariant::Value::dict_sv(vec![(
        "ostree.sign.ed25519".into(),
        oxtree::gvariant::Value::Array(
            oxtree::gvariant::Type::of("ay"),
            vec![oxtree::gvariant::Value::Bytes(sig)],
        ),
    )]);
    std::fs::write(
        commitmeta_path(&repo, &c2),
        oxtree::gvariant::encode(&value),
    )
    .expect("write commitmeta");
    ox(&["sign", &a, "--verify", "other", &public]);
    ox(&["fsck", &a]);
    ostree(&["fsck", &a]);
    // Wrong key and revoked key fail with the verification exit code.
    let (_, _, _, other_public) = openssl_key(t, "other");
    let (code, err) = ox_fail(&["sign", &a, "--verify", "other", &other_public]);
    assert_eq!(code, 4, "{err}");
    std::fs::write(t.join("revoked"), format!("{public}\n")).expect("write");
    let (code, _) = ox_fail(&[
        "sign",
        &a,
        "--verify",
        &format!("--revoked-file={}", s(&t.join("revoked"))),
        "other",
        &public,
    ]);
    assert_eq!(code, 4);
    // `oxtree sign` appends a second signature.
    let (_, _, secret2, public2) = openssl_key(t, "second");
    ox(&["sign", &a, "main", &secret2]);
    assert_eq!(
        oxtree::sign::signatures(&std::fs::read(commitmeta_path(&repo, &c)).expect("meta"))
            .expect("sigs")
            .len(),
        2
    );
    ox(&["sign", &a, "--verify", "main", &public2]);
}

/// With sign-verify on, unsigned, wrongly signed and tampered commits are refused before any
/// ref moves; a properly signed one is accepted.
#[test]
fn pull_enforces_ed25519() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (_, _, secret, public) = openssl_key(t, "good");
    let (_, _, wrong_secret, _) = openssl_key(t, "wrong");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let good = ox(&[
        "commit",
        &sa,
        "-b",
        "good",
        "-s",
        "good",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    ox(&[
        "commit",
        &sa,
        "-b",
        "unsigned",
        "-s",
        "unsigned",
        TS,
        s(&tree),
    ]);
    ox(&[
        "commit",
        &sa,
        "-b",
        "wrongkey",
        "-s",
        "wrong",
        TS,
        &format!("--sign={wrong_secret}"),
        s(&tree),
    ]);
    let flipped = ox(&[
        "commit",
        &sa,
        "-b",
        "flippedsig",
        "-s",
        "flipped",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let mp = commitmeta_path(&src, &flipped);
    let mut m = std::fs::read(&mp).expect("meta");
    let i = m.len() / 2;
    m[i] ^= 1;
    std::fs::write(&mp, m).expect("write");
    let tampered = ox(&[
        "commit",
        &sa,
        "-b",
        "tampered",
        "-s",
        "tampered",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let cp = src.join(format!(
        "objects/{}/{}.commit",
        &tampered[..2],
        &tampered[2..]
    ));
    let mut cb = std::fs::read(&cp).expect("commit");
    let j = cb.len() - 70;
    cb[j] ^= 1;
    std::fs::write(&cp, cb).expect("write");
    let server = Server::start(&src);

    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        &format!("--set=verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    ox(&["pull", &d, "origin", "good"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:good"]), good);
    for (r, expect) in [
        ("unsigned", "Can't verify commit without detached metadata"),
        (
            "wrongkey",
            "ed25519: Signature couldn't be verified with: key",
        ),
        (
            "flippedsig",
            "ed25519: Signature couldn't be verified with: key",
        ),
        ("tampered", ""),
    ] {
        let (code, err) = ox_fail(&["pull", &d, "origin", r]);
        if r == "tampered" {
            // The served commit no longer hashes to its name: refused as corrupt.
            assert!(
                err.contains(&tampered) && err.to_lowercase().contains("corrupted"),
                "{r}: {err}"
            );
        } else {
            assert_eq!(code, 4, "{r}: {err}");
            assert!(err.contains(expect) && err.contains("hint:"), "{r}: {err}");
        }
        assert!(
            !dst.join(format!("refs/remotes/origin/{r}")).exists(),
            "{r}: ref written"
        );
    }
    ox(&["fsck", &d]);
    // Keys from a file work too; a remote with sign-verify and no key is a config error.
    std::fs::write(t.join("keys"), format!("{public}\n")).expect("write");
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        &format!("--set=verification-ed25519-file={}", s(&t.join("keys"))),
        "viafile",
        &server.url,
    ]);
    ox(&["pull", &d, "viafile", "good"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        "nokeys",
        &server.url,
    ]);
    let (_, err) = ox_fail(&["pull", &d, "nokeys", "good"]);
    assert!(err.contains("verification-ed25519-key"), "{err}");
}

/// Signed summaries: OpenSSL verifies oxtree's summary.sig, and a pull with
/// sign-verify-summary refuses an unsigned or tampered summary.
#[test]
fn signed_summary() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (pem, pubpem, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    ox(&["commit", &sa, "-b", "main", "-s", "v1", TS, s(&tree)]);
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    let sig =
        oxtree::sign::signatures(&std::fs::read(src.join("summary.sig")).expect("summary.sig"))
            .expect("sigs");
    std::fs::write(t.join("sum.sig"), sig[0]).expect("write");
    let out = run_ok(
        Path::new("openssl"),
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            s(&pubpem),
            "-rawin",
            "-in",
            s(&src.join("summary")),
            "-sigfile",
            s(&t.join("sum.sig")),
        ],
    );
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    // ostree still reads the summary.
    require_ostree();
    assert!(ostree(&["summary", &sa, "--view"]).contains("main"));

    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify-summary=true",
        &format!("--set=verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    ox(&["pull", &d, "origin", "main"]);
    // A summary signed by OpenSSL directly (stored as OSTree stores it) is accepted too.
    run_ok(
        Path::new("openssl"),
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&pem),
            "-rawin",
            "-in",
            s(&src.join("summary")),
            "-out",
            s(&t.join("o.sig")),
        ],
    );
    let value = oxtree::gvariant::Value::dict_sv(vec![(
        "ostree.sign.ed25519".into(),
        oxtree::gvariant::Value::Array(
            oxtree::gvariant::Type::of("ay"),
            vec![oxtree::gvariant::Value::Bytes(
                std::fs::read(t.join("o.sig")).expect("sig"),
            )],
        ),
    )]);
    std::fs::write(src.join("summary.sig"), oxtree::gvariant::encode(&value)).expect("write");
    ox(&["pull", &d, "origin", "main"]);
    // Tampered summary (its signature unchanged): the cached summary, verified when it was
    // fetched, is the one its signature names, so it is used and the server's is not even
    // read (ostree's summary cache); without the cache the tampered one is refused.
    let mut b = std::fs::read(src.join("summary")).expect("summary");
    let n = b.len();
    b[n - 20] ^= 1;
    std::fs::write(src.join("summary"), &b).expect("write");
    ox(&["pull", &d, "origin", "main"]);
    let o = std::process::Command::new(oxtree_bin())
        .args(["pull", &d, "origin", "main"])
        .env("OSTREE_SKIP_CACHE", "1")
        .env("OXTREE_DETAILED_EXIT_CODES", "1")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("summary") && err.contains("ed25519: Signature couldn't be verified"),
        "{err}"
    );
    // A damaged cached summary is verified like any other, refused, and replaced by the
    // server's once that one verifies.
    let cached = dst.join("tmp/cache/summaries/origin");
    let good = std::fs::read(&cached).expect("cached summary");
    std::fs::write(src.join("summary"), &good).expect("restore");
    let mut c = good.clone();
    let n = c.len();
    c[n - 20] ^= 1;
    std::fs::write(&cached, &c).expect("write");
    ox(&["pull", &d, "origin", "main"]);
    assert_eq!(std::fs::read(&cached).expect("cached summary"), good);
    // Unsigned: refused.
    ox(&["summary", &sa, "-u"]);
    assert!(
        !src.join("summary.sig").exists(),
        "a stale summary.sig was kept"
    );
    let (code, err) = ox_fail(&["pull", &d, "origin", "main"]);
    assert_eq!(code, 4);
    assert!(err.contains("not signed"), "{err}");
}

/// --timestamp-check refuses a validly signed but older commit unless --allow-downgrade.
#[test]
fn downgrade_is_refused() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (_, _, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let old = ox(&[
        "commit",
        &sa,
        "-b",
        "main",
        "-s",
        "old",
        "--timestamp=2020-01-01T00:00:00Z",
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let new = ox(&[
        "commit",
        &sa,
        "-b",
        "main",
        "-s",
        "new",
        "--timestamp=2021-01-01T00:00:00Z",
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        &format!("--set=verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    ox(&["pull", &d, "origin", "main"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:main"]), new);
    // The server now offers the old (validly signed) commit for the ref.
    ox(&["refs", &sa, "--delete", "main"]);
    ox(&["refs", &sa, "--create=main", &old]);
    let (code, err) = ox_fail(&["pull", &d, "--timestamp-check", "origin", "main"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("older") && err.contains("--allow-downgrade"),
        "{err}"
    );
    assert_eq!(ox(&["rev-parse", &d, "origin:main"]), new, "ref moved");
    ox(&[
        "pull",
        &d,
        "--timestamp-check",
        "--allow-downgrade",
        "origin",
        "main",
    ]);
    assert_eq!(ox(&["rev-parse", &d, "origin:main"]), old);
}

/// C2: with a summary, refs resolve only through it. A ref the (signed) summary does not
/// list is "No such branch" (as ostree), and the unauthenticated refs/heads/REF is
/// never asked for, so an unsigned commit planted there is not fetched. Without any summary
/// the refs/heads/ lookup stays (as ostree).
#[test]
fn ref_missing_from_signed_summary_is_refused() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("usr/bin/app"), b"genuine\n", 0o755);
    let (_, _, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    ox(&["commit", &sa, "-b", "other", "-s", "genuine", TS, s(&tree)]);
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    // The attacker's commit: only in refs/heads/, not in the signed summary.
    write(&tree.join("usr/bin/evil"), b"evil payload\n", 0o755);
    let evil = ox(&["commit", &sa, "-b", "os/main", "-s", "EVIL", TS, s(&tree)]);
    let server = hostile::HostileServer::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=bare-user"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify-summary=true",
        &format!("--set=verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    ox(&["remote", "add", &d, "--no-gpg-verify", "plain", &server.url]);
    for remote in ["origin", "plain"] {
        server.clear_log();
        let (code, err) = ox_fail(&["pull", &d, remote, "os/main"]);
        assert_eq!(code, 3, "{remote}: {err}");
        assert!(
            err.contains("No such branch 'os/main' in repository summary"),
            "{remote}: {err}"
        );
        let asked = server.requests();
        assert!(
            !asked
                .iter()
                .any(|p| p.starts_with("refs/") || p.contains(&evil[2..])),
            "{remote}: fetched unauthenticated refs or the planted commit: {asked:?}"
        );
        let scan = assert_repo_clean(&dst);
        assert!(!scan.has(&evil), "{remote}: the planted commit was stored");
        assert!(!dst.join(format!("refs/remotes/{remote}/os/main")).exists());
    }
    ox(&["pull", &d, "origin", "other"]);
    // No summary at all: a remote that demands a signed one refuses; otherwise refs/heads/
    // resolves the ref, as in ostree.
    std::fs::remove_file(src.join("summary")).expect("rm summary");
    std::fs::remove_file(src.join("summary.sig")).expect("rm summary.sig");
    let (code, err) = ox_fail(&["pull", &d, "origin", "os/main"]);
    assert_eq!(code, 4, "{err}");
    ox(&["pull", &d, "plain", "os/main"]);
    assert_eq!(ox(&["rev-parse", &d, "plain:os/main"]), evil);
}

/// H1: mix-and-match. Two channels signed with one key; the server points os/stable at the
/// os/devel commit. Its `ostree.ref-binding` says os/devel, so the pull refuses it (exit 4)
/// before storing anything, by objects and by static delta alike, and the ref stays.
#[test]
fn commit_for_another_ref_is_refused() {
    let tmp = tempdir();
    let t = tmp.path();
    let (_, _, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("usr/bin/app"), b"stable\n", 0o755);
    let sign = format!("--sign={secret}");
    let stable = ox(&[
        "commit",
        &sa,
        "-b",
        "os/stable",
        "-s",
        "s",
        TS,
        &sign,
        s(&tree),
    ]);
    write(&tree.join("usr/bin/devel-only"), b"devel build\n", 0o755);
    let devel = ox(&[
        "commit",
        &sa,
        "-b",
        "os/devel",
        "-s",
        "d",
        TS,
        &sign,
        s(&tree),
    ]);
    ox(&["static-delta", "generate", &sa, "--empty", "--to=os/devel"]);
    ox(&["summary", &sa, "-u"]);
    let server = hostile::HostileServer::start(&src);
    let add = |d: &str| {
        ox(&[
            "remote",
            "add",
            d,
            "--no-gpg-verify",
            "--set=sign-verify=true",
            &format!("--set=verification-ed25519-key={public}"),
            "origin",
            &server.url,
        ])
    };
    let c1 = t.join("c1");
    let d1 = format!("--repo={}", s(&c1));
    ox(&["init", &d1, "--mode=bare-user"]);
    add(&d1);
    ox(&["pull", &d1, "origin", "os/stable"]);
    // The attack: os/stable now names the (validly signed) devel commit.
    ox(&["refs", &sa, "--delete", "os/stable"]);
    ox(&["refs", &sa, "--create=os/stable", &devel]);
    ox(&["summary", &sa, "-u"]);
    let c2 = t.join("c2");
    let d2 = format!("--repo={}", s(&c2));
    ox(&["init", &d2, "--mode=bare-user"]);
    add(&d2);
    let devel_only = ox(&["ls", &sa, "-C", "os/devel", "/usr/bin/devel-only"])
        .split_whitespace()
        .nth(4)
        .expect("checksum")
        .to_string();
    for (dir, d, before) in [(&c1, &d1, Some(&stable)), (&c2, &d2, None)] {
        server.clear_log();
        let (code, err) = ox_fail(&["pull", d, "origin", "os/stable"]);
        assert_eq!(code, 4, "{err}");
        assert!(
            err.contains(&format!(
                "Commit {devel}: Commit has no requested ref ‘os/stable’ in ref binding metadata (‘os/devel’)"
            )) && err.contains("hint:"),
            "{err}"
        );
        let scan = assert_repo_clean(dir);
        assert!(
            !scan.has(&devel) && !scan.has(&devel_only),
            "{:?}",
            scan.objects
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("refs/remotes/origin/os/stable"))
                .ok()
                .map(|s| s.trim().to_string())
                .as_ref(),
            before,
            "the ref moved"
        );
        // The fresh client found the scratch delta: refused at its superblock, no part fetched.
        assert_eq!(
            server.requests().iter().any(|p| p.ends_with("superblock")),
            before.is_none(),
            "{:?}",
            server.requests()
        );
        assert!(
            !server
                .requests()
                .iter()
                .any(|p| p.starts_with("deltas/") && !p.ends_with("superblock")),
            "{:?}",
            server.requests()
        );
    }
    // --disable-verify-bindings accepts it (the signature is good).
    ox(&[
        "pull",
        &d2,
        "--disable-verify-bindings",
        "origin",
        "os/stable",
    ]);
    assert_eq!(ox(&["rev-parse", &d2, "origin:os/stable"]), devel);
}

/// H1: ref and collection bindings on commits real ostree made, refused with the same
/// words as real ostree's pull, which runs beside oxtree against the same server.
#[test]
fn binding_errors_match_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&[
        "init",
        &sa,
        "--mode=archive",
        "--collection-id=org.example.Os",
    ]);
    let main = ostree(&["commit", &sa, "-b", "main", "-s", "m", TS, s(&tree)]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "nobind",
        "--no-bindings",
        "-s",
        "n",
        TS,
        s(&tree),
    ]);
    ostree(&["refs", &sa, "--create=evil", &main]);
    ostree(&["summary", &sa, "-u"]);
    let server = hostile::HostileServer::start(&src);
    // (remote collection ID, ref, accepted)
    let cases = [
        (None, "evil", false),
        (Some("org.other.Os"), "main", false),
        (Some("org.example.Os"), "nobind", false),
        (Some("org.example.Os"), "main", true),
        (None, "nobind", true),
    ];
    for (i, (cid, r, ok)) in cases.into_iter().enumerate() {
        let mut msgs = Vec::new();
        for tool in ["ostree", "oxtree"] {
            let dst = t.join(format!("{tool}{i}"));
            let d = format!("--repo={}", s(&dst));
            let mut add = vec!["remote", "add", &d, "--no-gpg-verify"];
            let set;
            if let Some(cid) = cid {
                set = if tool == "ostree" {
                    format!("--collection-id={cid}")
                } else {
                    format!("--set=collection-id={cid}")
                };
                add.push(&set);
            }
            add.extend(["origin", &server.url]);
            let run = |args: &[&str]| {
                if tool == "ostree" {
                    run_raw(Path::new("ostree"), args)
                } else {
                    run_raw(&oxtree_bin(), args)
                }
            };
            assert!(run(&["init", &d, "--mode=archive"]).status.success());
            assert!(run(&add).status.success(), "{tool} remote add");
            let o = run(&["pull", &d, "origin", r]);
            assert_eq!(o.status.success(), ok, "{tool} case {i}: {o:?}");
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            msgs.push(
                err.lines()
                    .find_map(|l| l.strip_prefix("error: "))
                    .unwrap_or("")
                    .to_string(),
            );
            if !ok {
                assert_eq!(o.status.code(), Some(1), "{tool}: ostree's exit code");
                assert!(!dst.join("refs/remotes/origin").join(r).exists());
            }
        }
        assert_eq!(msgs[0], msgs[1], "case {i}: ostree and oxtree differ");
        assert_eq!(msgs[0].is_empty(), ok, "case {i}: {msgs:?}");
    }
}

/// M4: with --timestamp-check (or --timestamp-check-from-rev) an older, validly signed
/// commit is refused as soon as it is fetched and verified: before its tree is fetched,
/// before a static delta's parts are, before anything is stored. The message is real
/// ostree's, compared with its own pull of the same server.
#[test]
fn downgrade_is_refused_before_anything_is_stored() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (_, _, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let sign = format!("--sign={secret}");
    let tree = t.join("tree");
    write(
        &tree.join("usr/bin/old-only"),
        b"vulnerable old build\n",
        0o755,
    );
    let old = ox(&[
        "commit",
        &sa,
        "-b",
        "main",
        "-s",
        "old",
        "--timestamp=2020-01-01T00:00:00Z",
        &sign,
        s(&tree),
    ]);
    std::fs::remove_file(tree.join("usr/bin/old-only")).expect("rm");
    write(&tree.join("usr/bin/app"), b"new build\n", 0o755);
    let new = ox(&[
        "commit",
        &sa,
        "-b",
        "main",
        "-s",
        "new",
        "--timestamp=2021-01-01T00:00:00Z",
        &sign,
        s(&tree),
    ]);
    let old_only = ox(&["ls", &sa, "-C", &old, "/usr/bin/old-only"])
        .split_whitespace()
        .nth(4)
        .expect("checksum")
        .to_string();
    let server = hostile::HostileServer::start(&src);
    let client = |name: &str| {
        let dir = t.join(name);
        let d = format!("--repo={}", s(&dir));
        ox(&["init", &d, "--mode=bare-user"]);
        ox(&[
            "remote",
            "add",
            &d,
            "--no-gpg-verify",
            "--set=sign-verify=true",
            &format!("--set=verification-ed25519-key={public}"),
            "origin",
            &server.url,
        ]);
        ox(&["pull", &d, "origin", "main"]);
        (dir, d)
    };
    let (c1, d1) = client("c1");
    let (c2, d2) = client("c2");
    let os = t.join("os");
    let dos = format!("--repo={}", s(&os));
    ostree(&["init", &dos, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &dos,
        "--no-gpg-verify",
        "origin",
        &server.url,
    ]);
    ostree(&["pull", &dos, "origin", "main"]);
    // The replay: the server offers the old commit again, with a delta to it from new.
    ox(&["refs", &sa, "--delete", "main"]);
    ox(&["refs", &sa, "--create=main", &old]);
    ox(&[
        "static-delta",
        "generate",
        &sa,
        &format!("--from={new}"),
        &format!("--to={old}"),
    ]);
    ox(&["summary", &sa, "-u"]);
    let want = format!(
        "Upgrade target revision '{old}' with timestamp 'Wed Jan \u{2007}1 00:00:00 2020' is chronologically older than current revision '{new}' with timestamp 'Fri Jan \u{2007}1 00:00:00 2021'; use --allow-downgrade to permit"
    );
    let o = run_raw(Path::new("ostree"), &["pull", &dos, "-T", "origin", "main"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("error: {want}")),
        "real ostree says: {o:?}"
    );
    for (dir, args) in [
        (&c1, vec![d1.as_str(), "-T"]),
        (&c1, vec![d1.as_str(), "-T", "--disable-static-deltas"]),
        (&c2, vec![d2.as_str(), "--timestamp-check-from-rev", &new]),
    ] {
        server.clear_log();
        let mut argv = vec!["pull"];
        argv.extend(args.iter().copied());
        argv.extend(["origin", "main"]);
        let (code, err) = ox_fail(&argv);
        assert_eq!(code, 4, "{argv:?}: {err}");
        assert!(err.contains(&format!("error: {want}")), "{argv:?}: {err}");
        // Nothing of the old commit was fetched beyond the commit (or superblock) itself.
        let asked = server.requests();
        assert!(
            !asked.iter().any(|p| p.ends_with(".dirtree")
                || p.ends_with(".filez")
                || (p.starts_with("deltas/") && !p.ends_with("superblock"))),
            "{argv:?}: {asked:?}"
        );
        let scan = assert_repo_clean(dir);
        assert!(
            !scan.has(&old) && !scan.has(&old_only),
            "{argv:?}: {:?}",
            scan.objects
        );
        assert_eq!(ox(&["rev-parse", &d1, "origin:main"]), new, "the ref moved");
        assert_eq!(ox(&["rev-parse", &d2, "origin:main"]), new, "the ref moved");
    }
    // Without the check (ostree's default for pull) the old commit is accepted.
    ox(&["pull", &d1, "origin", "main"]);
    assert_eq!(ox(&["rev-parse", &d1, "origin:main"]), old);
}

/// `remote refs` and `remote summary` show only a summary that verifies as a pull would
/// verify it (sign-verify-summary), over HTTP and from file:// remotes alike.
#[test]
fn remote_refs_verify_the_summary() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let (_, _, secret, public) = openssl_key(t, "k");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    ox(&["commit", &sa, "-b", "main", "-s", "v1", TS, s(&tree)]);
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    let good_sig = std::fs::read(src.join("summary.sig")).expect("sig");
    let server = hostile::HostileServer::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    let file_url = format!("file://{}", s(&src));
    for (name, url, verify) in [
        ("http", server.url.as_str(), true),
        ("file", file_url.as_str(), true),
        ("plainfile", file_url.as_str(), false),
    ] {
        let mut args = vec!["remote", "add", &d, "--no-gpg-verify"];
        let key = format!("--set=verification-ed25519-key={public}");
        if verify {
            args.extend(["--set=sign-verify-summary=true", &key]);
        }
        args.extend([name, url]);
        ox(&args);
        assert_eq!(ox(&["remote", "refs", &d, name]), format!("{name}:main"));
        assert!(ox(&["remote", "summary", &d, name]).contains("* main"));
    }
    // The server adds a ref and publishes an unsigned summary with the old signature.
    ox(&["commit", &sa, "-b", "evil", "-s", "evil", TS, s(&tree)]);
    ox(&["summary", &sa, "-u"]);
    std::fs::write(src.join("summary.sig"), &good_sig).expect("stale sig");
    for name in ["http", "file"] {
        for cmd in ["refs", "summary"] {
            let (code, err) = ox_fail(&["remote", cmd, &d, name]);
            assert_eq!(code, 4, "{name} {cmd}: {err}");
            assert!(err.contains("summary") && !err.contains("evil"), "{err}");
        }
    }
    assert!(ox(&["remote", "refs", &d, "plainfile"]).contains("plainfile:evil"));
    std::fs::remove_file(src.join("summary")).expect("rm");
    let (_, err) = ox_fail(&["remote", "refs", &d, "plainfile"]);
    assert!(err.contains("Remote refs not available"), "{err}");
}

/// M5: offline update media. `pull-local --remote R` applies R's signature policy, so an
/// unsigned commit never lands under refs/remotes/R/ (exit 4, nothing stored);
/// `--gpg-verify` uses R's keyring (and needs --remote, in ostree's words);
/// sign-verify-summary makes refs resolve only through the media's verified summary.
#[test]
fn pull_local_verifies_signatures() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let (_, _, secret, public) = openssl_key(t, "k");
    // An OpenPGP publisher key made by GnuPG.
    let home = t.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let gpg = |args: &[&str]| {
        let mut a = vec!["--homedir", s(&home), "--batch", "--yes", "--pinentry-mode"];
        a.extend(["loopback", "--passphrase", ""]);
        a.extend_from_slice(args);
        run_ok(Path::new("gpg"), &a)
    };
    gpg(&[
        "--quick-gen-key",
        "pub <pub@example.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    let asc = t.join("pub.asc");
    gpg(&["--armor", "--output", s(&asc), "--export", &fpr]);

    let usb = t.join("usb");
    let ua = format!("--repo={}", s(&usb));
    ox(&["init", &ua, "--mode=archive"]);
    let tree = t.join("tree");
    write(&tree.join("usr/bin/app"), b"signed\n", 0o755);
    let signed = ox(&[
        "commit",
        &ua,
        "-b",
        "os/signed",
        "-s",
        "s",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let gpgsigned = ox(&[
        "commit",
        &ua,
        "-b",
        "os/gpg",
        "-s",
        "g",
        TS,
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
        s(&tree),
    ]);
    ox(&["summary", &ua, "-u", &format!("--sign={secret}")]);
    write(&tree.join("usr/bin/unsigned-only"), b"unsigned\n", 0o755);
    let unsigned = ox(&["commit", &ua, "-b", "os/main", "-s", "u", TS, s(&tree)]);
    let unsigned_only = ox(&["ls", &ua, "-C", "os/main", "/usr/bin/unsigned-only"])
        .split_whitespace()
        .nth(4)
        .expect("checksum")
        .to_string();

    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=bare-user"]);
    let key = format!("--set=verification-ed25519-key={public}");
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        &key,
        "origin",
        "http://127.0.0.1:1/",
    ]);
    ox(&[
        "remote",
        "add",
        &d,
        &format!("--gpg-import={}", s(&asc)),
        "gorigin",
        "http://127.0.0.1:1/",
    ]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "loose",
        "http://127.0.0.1:1/",
    ]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify-summary=true",
        &key,
        "sorigin",
        "http://127.0.0.1:1/",
    ]);
    let refused = |args: &[&str], code: i32, expect: &str| {
        let mut argv = vec!["pull-local", &d];
        argv.extend_from_slice(args);
        let (c, err) = ox_fail(&argv);
        assert_eq!(c, code, "{argv:?}: {err}");
        assert!(err.contains(expect), "{argv:?}: {err}");
        let scan = assert_repo_clean(&dst);
        assert!(
            !scan.has(&unsigned) && !scan.has(&unsigned_only),
            "{argv:?}: stored"
        );
        err
    };
    let usb_s = s(&usb);
    // os/main came after the media's summary, which (as in ostree) resolves its refs: the
    // unsigned commit is asked for by checksum.
    refused(
        &["--remote=origin", usb_s, &unsigned],
        4,
        "Can't verify commit without detached metadata",
    );
    assert!(!dst.join("refs/remotes/origin/os/main").exists());
    refused(
        &["--remote=gorigin", usb_s, &unsigned],
        4,
        "GPG verification enabled, but no signatures found",
    );
    refused(
        &["--remote=origin", usb_s, "os/main"],
        3,
        "No such branch 'os/main'",
    );
    refused(
        &["--remote=loose", "--gpg-verify", usb_s, "os/gpg"],
        1,
        "no OpenPGP keys",
    );
    let err = refused(
        &["--gpg-verify", usb_s, "os/gpg"],
        1,
        "Must specify remote name",
    );
    let o = run_raw(
        Path::new("ostree"),
        &["pull-local", &d, "--gpg-verify", usb_s, "os/gpg"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("error: Must specify remote name to enable gpg verification")
            && err.contains("error: Must specify remote name to enable gpg verification"),
        "ostree: {o:?}\noxtree: {err}"
    );
    // Not in the media's signed summary: no such branch (the media's refs/ are not trusted).
    refused(
        &["--remote=sorigin", usb_s, "os/main"],
        3,
        "No such branch 'os/main'",
    );
    // What the policies accept.
    ox(&["pull-local", &d, "--remote=origin", usb_s, "os/signed"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:os/signed"]), signed);
    ox(&[
        "pull-local",
        &d,
        "--remote=gorigin",
        "--gpg-verify",
        usb_s,
        "os/gpg",
    ]);
    assert_eq!(ox(&["rev-parse", &d, "gorigin:os/gpg"]), gpgsigned);
    ox(&["pull-local", &d, "--remote=sorigin", usb_s, "os/signed"]);
    // Without a remote, as ostree: no verification (by checksum: see above).
    ox(&["pull-local", &d, usb_s, &unsigned]);
    assert!(assert_repo_clean(&dst).has(&unsigned));
}

/// Run oxtree with `dir` mounted over the system key directory ostree reads revocation
/// lists from (/etc/ostree, or /usr/share/ostree), in a private mount namespace: the real
/// lookup, without touching the host's configuration. Returns (detailed exit code, stderr).
fn ox_with_system_keys(dir: &Path, args: &[&str]) -> (i32, String) {
    let target = ["/etc/ostree", "/usr/share/ostree"]
        .into_iter()
        .find(|p| Path::new(p).is_dir())
        .expect("neither /etc/ostree nor /usr/share/ostree exists (is ostree installed?)");
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
        .arg("sh")
        .arg(dir)
        .arg(target)
        .arg(oxtree_bin())
        .args(args)
        .env("OXTREE_DETAILED_EXIT_CODES", "1")
        .output()
        .expect("unshare (the tests run as root)");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !err.contains("unshare:") && !err.contains("mount:"),
        "{err}"
    );
    (o.status.code().unwrap_or(-1), err)
}

/// L4: a signature by a key listed in ostree's revocation lists (revoked.ed25519 and
/// revoked.ed25519.d/ in /etc/ostree or /usr/share/ostree) does not count, for commits and
/// for summaries, although the remote still lists the key as trusted.
#[test]
fn revoked_keys_do_not_count() {
    let tmp = tempdir();
    let t = tmp.path();
    let (_, _, secret, public) = openssl_key(t, "k");
    let (_, _, _, other_public) = openssl_key(t, "other");
    let tree = t.join("tree");
    write(
        &tree.join("usr/bin/app"),
        b"signed with a key since revoked\n",
        0o755,
    );
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let c = ox(&[
        "commit",
        &sa,
        "-b",
        "main",
        "-s",
        "v1",
        TS,
        &format!("--sign={secret}"),
        s(&tree),
    ]);
    let app = ox(&["ls", &sa, "-C", "main", "/usr/bin/app"])
        .split_whitespace()
        .nth(4)
        .expect("checksum")
        .to_string();
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    let server = hostile::HostileServer::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=bare-user"]);
    let key = format!("--set=verification-ed25519-key={public}");
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify=true",
        &key,
        "commits",
        &server.url,
    ]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify-summary=true",
        &key,
        "summary",
        &server.url,
    ]);
    // The revocation list: another key in revoked.ed25519, ours in revoked.ed25519.d/.
    let keys = t.join("system-keys");
    write(
        &keys.join("revoked.ed25519"),
        format!("{other_public}\n").as_bytes(),
        0o644,
    );
    let revoked = keys.join("revoked.ed25519.d/compromised");
    write(&revoked, format!("{public}\n").as_bytes(), 0o644);
    let (code, err) = ox_with_system_keys(&keys, &["pull", &d, "commits", "main"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("revoked key") && err.contains(&public),
        "{err}"
    );
    let (code, err) = ox_with_system_keys(&keys, &["pull", &d, "summary", "main"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("summary"), "{err}");
    let scan = assert_repo_clean(&dst);
    assert!(!scan.has(&c) && !scan.has(&app), "{:?}", scan.objects);
    assert!(!dst.join("refs/remotes/commits/main").exists());
    assert!(!dst.join("refs/remotes/summary/main").exists());
    // Only the other key revoked: accepted.
    std::fs::remove_file(&revoked).expect("rm");
    let (code, err) = ox_with_system_keys(&keys, &["pull", &d, "commits", "main"]);
    assert_eq!(code, 0, "{err}");
    // An unreadable revocation list is an error, not an empty list.
    write(&revoked, b"not a key\n", 0o644);
    let (code, err) = ox_with_system_keys(&keys, &["pull", &d, "summary", "main"]);
    assert_ne!(code, 0);
    assert!(err.contains("compromised:1"), "{err}");
}

/// S4, client side: a summary.sig that does not match the summary (a publisher between its
/// two renames) is fetched again, with the summary, once before the pull gives up; a
/// mismatch that persists is refused after that one retry.
#[test]
fn mismatched_summary_signature_is_fetched_again_once() {
    let tmp = tempdir();
    let t = tmp.path();
    let (_, _, secret, public) = openssl_key(t, "k");
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    ox(&["commit", &sa, "-b", "main", "-s", "v1", TS, s(&tree)]);
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    let old_sig = std::fs::read(src.join("summary.sig")).expect("sig");
    let c2 = ox(&["commit", &sa, "-b", "main", "-s", "v2", TS, s(&tree)]);
    ox(&["summary", &sa, "-u", &format!("--sign={secret}")]);
    let server = hostile::HostileServer::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        "--no-gpg-verify",
        "--set=sign-verify-summary=true",
        &format!("--set=verification-ed25519-key={public}"),
        "origin",
        &server.url,
    ]);
    let count = |p: &str| server.requests().iter().filter(|r| *r == p).count();
    server.attack_once("summary.sig", hostile::Attack::Body(old_sig.clone()));
    ox(&["pull", &d, "origin", "main"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:main"]), c2);
    assert_eq!(
        (count("summary"), count("summary.sig")),
        (2, 2),
        "{:?}",
        server.requests()
    );
    server.clear_log();
    server.swap("summary.sig", old_sig);
    let (code, err) = ox_fail(&["pull", &d, "origin", "main"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(
        (count("summary"), count("summary.sig")),
        (2, 2),
        "{:?}",
        server.requests()
    );
}

/// A GnuPG home with one ed25519 signing key and its secret key exported to a file:
/// (home, fingerprint, secret key file, public key file).
fn gpg_key_files(
    dir: &Path,
) -> (
    std::path::PathBuf,
    String,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let gpg = |args: &[&str]| {
        let mut a = vec!["--homedir", s(&home), "--batch", "--yes", "--pinentry-mode"];
        a.extend_from_slice(&["loopback", "--passphrase", ""]);
        a.extend_from_slice(args);
        run_ok(Path::new("gpg"), &a)
    };
    gpg(&[
        "--quick-gen-key",
        "signer <signer@example.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    let (secret, public) = (dir.join("secret.asc"), dir.join("public.gpg"));
    gpg(&[
        "--armor",
        "--output",
        s(&secret),
        "--export-secret-keys",
        &fpr,
    ]);
    gpg(&["--output", s(&public), "--export", &fpr]);
    (home, fpr, secret, public)
}

/// `commit --gpg-sign` signs inside the commit's transaction, before the branch moves: a
/// key id that matches no key (in a key file or a GnuPG home) fails the commit, leaves the
/// branch where it was and stores nothing; a good one moves it to a signed commit.
#[test]
fn failed_gpg_sign_leaves_the_branch_alone() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (home, fpr, secret, public) = gpg_key_files(t);
    let repo = t.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, "--mode=archive"]);
    let c0 = ox(&["commit", &arg, "-b", "main", "-s", "base", TS, s(&tree)]);
    let objects = object_set(&repo);
    write(
        &tree.join("new-file"),
        b"only in the failed commits\n",
        0o644,
    );
    let key_file = format!("--gpg-key-file={}", s(&secret));
    let homedir = format!("--gpg-homedir={}", s(&home));
    for source in [&key_file, &homedir] {
        let (code, err) = ox_fail(&[
            "commit",
            &arg,
            "-b",
            "main",
            "-s",
            "unsigned",
            TS,
            "--gpg-sign=0123456789ABCDEF",
            source,
            s(&tree),
        ]);
        assert_ne!(code, 0);
        assert!(err.contains("0123456789ABCDEF"), "{err}");
        assert_eq!(
            ox(&["rev-parse", &arg, "main"]),
            c0,
            "{source}: branch moved"
        );
        assert_eq!(object_set(&repo), objects, "{source}: objects stored");
    }
    let c1 = ox(&[
        "commit",
        &arg,
        "-b",
        "main",
        "-s",
        "signed",
        TS,
        &format!("--gpg-sign={fpr}"),
        &key_file,
        s(&tree),
    ]);
    assert_eq!(ox(&["rev-parse", &arg, "main"]), c1);
    ox(&[
        "remote",
        "add",
        &arg,
        &format!("--gpg-import={}", s(&public)),
        "self",
        "http://127.0.0.1:1/",
    ]);
    let out = ox(&["show", &arg, "main", "--gpg-verify-remote=self"]);
    assert!(out.contains("Good signature"), "{out}");
}

/// Signers racing on one commit: each `sign` reads the detached metadata, appends its
/// signature and writes it back; they are serialised on the commit, so no signature is
/// lost (durability D4).
#[test]
fn concurrent_signers_keep_every_signature() {
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    write(&tree.join("a"), b"a\n", 0o644);
    let repo = t.join("repo");
    let arg = format!("--repo={}", s(&repo));
    ox(&["init", &arg, "--mode=archive"]);
    let keys: Vec<(String, String)> = (0..6)
        .map(|i| {
            let (_, _, secret, public) = openssl_key(t, &format!("k{i}"));
            (secret, public)
        })
        .collect();
    for round in 0..4 {
        write(
            &tree.join("a"),
            format!("round {round}\n").as_bytes(),
            0o644,
        );
        let c = ox(&["commit", &arg, "-b", "main", TS, s(&tree)]);
        let children: Vec<_> = keys
            .iter()
            .map(|(secret, _)| {
                std::process::Command::new(oxtree_bin())
                    .args(["sign", &arg, &c, secret])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn sign")
            })
            .collect();
        for mut ch in children {
            assert!(ch.wait().expect("wait").success());
        }
        for (_, public) in &keys {
            ox(&["sign", &arg, "--verify", &c, public]);
        }
    }
}
