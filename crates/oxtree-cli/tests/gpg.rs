//! OpenPGP: commits signed by real `ostree commit --gpg-sign` (keys made with `gpg --batch`)
//! verify in oxtree; pulls with gpg-verify on refuse unsigned, unknown-key, revoked-key and
//! expired-key commits, with keyrings imported by either tool.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

fn gpg(home: &Path, args: &[&str]) -> String {
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

/// A fresh GnuPG home with one signing key; returns (home, fingerprint).
fn gpg_key(dir: &Path, name: &str, expiry: &str) -> (PathBuf, String) {
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            &format!("{name} <{name}@example.com>"),
            "ed25519",
            "sign",
            expiry,
        ],
    );
    let out = gpg(&home, &["--list-keys", "--with-colons"]);
    let fpr = out
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    (home, fpr)
}

fn export(home: &Path, fpr: &str, out: &Path, armor: bool) {
    let mut args = vec!["--output", s(out)];
    if armor {
        args.push("--armor");
    }
    args.extend_from_slice(&["--export", fpr]);
    gpg(home, &args);
}

#[test]
fn ostree_gpg_signed_commits_verify_and_are_enforced_on_pull() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (home, fpr) = gpg_key(t, "publisher", "never");
    let (other_home, other_fpr) = gpg_key(t, "stranger", "never");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    let good = ostree(&[
        "commit",
        &sa,
        "-b",
        "good",
        "-s",
        "signed",
        TS,
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
        s(&tree),
    ]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "unsigned",
        "-s",
        "unsigned",
        TS,
        s(&tree),
    ]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "stranger",
        "-s",
        "stranger",
        TS,
        &format!("--gpg-sign={other_fpr}"),
        &format!("--gpg-homedir={}", s(&other_home)),
        s(&tree),
    ]);
    let pubkey = t.join("publisher.asc");
    export(&home, &fpr, &pubkey, true);

    // `show --gpg-verify-remote` with a keyring that real ostree imported.
    ostree(&[
        "remote",
        "add",
        &sa,
        &format!("--gpg-import={}", s(&pubkey)),
        "self",
        "http://127.0.0.1:1/",
    ]);
    let shown = ox(&["show", &sa, "good", "--gpg-verify-remote=self"]);
    assert!(
        shown.contains("Good signature") && shown.contains(&fpr),
        "{shown}"
    );
    let (code, _) = ox_fail(&["show", &sa, "unsigned", "--gpg-verify-remote=self"]);
    assert_eq!(code, 4);
    let log = ox(&["log", &sa, "good", "--gpg-verify-remote=self"]);
    assert!(
        log.contains("Good signature") && log.contains("signed"),
        "{log}"
    );

    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=bare-user"]);
    // gpg-verify is on by default; with no key imported the pull is refused with advice.
    ox(&["remote", "add", &d, "nokeys", &server.url]);
    let (_, err) = ox_fail(&["pull", &d, "nokeys", "good"]);
    assert!(err.contains("gpg-import"), "{err}");
    // Keys imported by oxtree.
    ox(&[
        "remote",
        "add",
        &d,
        &format!("--gpg-import={}", s(&pubkey)),
        "origin",
        &server.url,
    ]);
    assert!(std::fs::metadata(dst.join("origin.trustedkeys.gpg")).is_ok());
    ox(&["pull", &d, "origin", "good"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:good"]), good);
    for (r, expect) in [
        ("unsigned", "no ostree.gpgsigs signature"),
        ("stranger", "not in the remote's keyring"),
    ] {
        let (code, err) = ox_fail(&["pull", &d, "origin", r]);
        assert_eq!(code, 4, "{r}: {err}");
        assert!(err.contains(expect), "{r}: {err}");
        assert!(!dst.join(format!("refs/remotes/origin/{r}")).exists());
    }
    // The keyring oxtree wrote is read by real ostree too.
    let od = t.join("odst");
    let oa = format!("--repo={}", s(&od));
    ostree(&["init", &oa, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &oa,
        &format!("--gpg-import={}", s(&pubkey)),
        "origin",
        &server.url,
    ]);
    std::fs::copy(
        dst.join("origin.trustedkeys.gpg"),
        od.join("origin.trustedkeys.gpg"),
    )
    .expect("copy keyring");
    ostree(&["pull", &oa, "origin", "good"]);
    ox(&["fsck", &d]);
}

#[test]
fn revoked_and_expired_keys_are_refused() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (rhome, rfpr) = gpg_key(t, "revoked", "never");
    let (ehome, efpr) = gpg_key(t, "expiring", "seconds=4");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "byrevoked",
        "-s",
        "r",
        TS,
        &format!("--gpg-sign={rfpr}"),
        &format!("--gpg-homedir={}", s(&rhome)),
        s(&tree),
    ]);
    ostree(&[
        "commit",
        &sa,
        "-b",
        "byexpired",
        "-s",
        "e",
        TS,
        &format!("--gpg-sign={efpr}"),
        &format!("--gpg-homedir={}", s(&ehome)),
        s(&tree),
    ]);
    // Revoke the first key with the certificate gpg made at key creation.
    let rev = std::fs::read_to_string(rhome.join(format!("openpgp-revocs.d/{rfpr}.rev")))
        .expect("revocation certificate");
    let cert: String = rev
        .lines()
        .map(|l| l.strip_prefix(':').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(t.join("rev.asc"), cert).expect("write");
    gpg(&rhome, &["--import", s(&t.join("rev.asc"))]);
    export(&rhome, &rfpr, &t.join("revoked.gpg"), false);
    export(&ehome, &efpr, &t.join("expiring.gpg"), false);
    std::thread::sleep(std::time::Duration::from_secs(5)); // let the second key expire
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&["remote", "add", &d, "origin", &server.url]);
    ox(&[
        "remote",
        "gpg-import",
        &d,
        "origin",
        "-k",
        s(&t.join("revoked.gpg")),
        "-k",
        s(&t.join("expiring.gpg")),
    ]);
    let (code, err) = ox_fail(&["pull", &d, "origin", "byrevoked"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("revoked key"), "{err}");
    let (code, err) = ox_fail(&["pull", &d, "origin", "byexpired"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("expired key"), "{err}");
    ox(&["fsck", &d]);
}

/// A commit GPG-signed by oxtree verifies in real ostree (show --gpg-verify-remote, and a
/// pull with gpg-verify on), whether the key comes from a GnuPG home or a key file.
#[test]
fn oxtree_gpg_signatures_verify_in_ostree() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (home, fpr) = gpg_key(t, "oxsigner", "never");
    let pubkey = t.join("pub.gpg");
    export(&home, &fpr, &pubkey, false);
    let secret = t.join("secret.asc");
    gpg(
        &home,
        &[
            "--armor",
            "--output",
            s(&secret),
            "--export-secret-keys",
            &fpr,
        ],
    );
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    let c1 = ox(&[
        "commit",
        &sa,
        "-b",
        "fromhome",
        "-s",
        "x",
        TS,
        &format!("--gpg-sign={fpr}"),
        &format!("--gpg-homedir={}", s(&home)),
        s(&tree),
    ]);
    let c2 = ox(&["commit", &sa, "-b", "fromfile", "-s", "y", TS, s(&tree)]);
    ox(&[
        "gpg-sign",
        &sa,
        &format!("--gpg-key-file={}", s(&secret)),
        "fromfile",
        &fpr,
    ]);
    ox(&["summary", &sa, "-u"]);
    ostree(&[
        "remote",
        "add",
        &sa,
        &format!("--gpg-import={}", s(&pubkey)),
        "self",
        "http://127.0.0.1:1/",
    ]);
    for r in ["fromhome", "fromfile"] {
        let out = ostree(&["show", &sa, r, "--gpg-verify-remote=self"]);
        assert!(out.contains("Good signature"), "{r}: {out}");
    }
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ostree(&["init", &d, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &d,
        &format!("--gpg-import={}", s(&pubkey)),
        "origin",
        &server.url,
    ]);
    ostree(&["pull", &d, "origin", "fromhome", "fromfile"]);
    assert_eq!(ostree(&["rev-parse", &d, "origin:fromhome"]), c1);
    assert_eq!(ostree(&["rev-parse", &d, "origin:fromfile"]), c2);
    ostree(&["fsck", &d]);
}
