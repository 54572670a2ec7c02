//! ed25519 signatures, proven against independent code (OpenSSL), and enforced on pull.
//! Debian's ostree 2022.7 is built without ed25519, so OpenSSL is the oracle here.

mod common;
use base64::Engine;
use common::*;
use std::path::Path;

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A key pair made by OpenSSL: (PEM path, public PEM path, secret b64 (seed‖pub), public b64).
fn openssl_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String, String) {
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
    (pem, pubpem, B64.encode(secret), B64.encode(public))
}

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
        ("unsigned", "no ed25519 signature"),
        ("wrongkey", "none of its 1"),
        ("flippedsig", "none of its 1"),
        ("tampered", ""),
    ] {
        let (code, err) = ox_fail(&["pull", &d, "origin", r]);
        if r == "tampered" {
            // The served commit no longer hashes to its name: refused as corrupt.
            assert!(
                err.contains(&tampered) && err.contains("corrupted"),
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
    // Tampered summary: refused.
    let mut b = std::fs::read(src.join("summary")).expect("summary");
    let n = b.len();
    b[n - 20] ^= 1;
    std::fs::write(src.join("summary"), &b).expect("write");
    let (code, err) = ox_fail(&["pull", &d, "origin", "main"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("summary") && err.contains("verifies"), "{err}");
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
