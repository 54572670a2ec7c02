//! OpenPGP: commits signed by real `ostree commit --gpg-sign` (keys made with `gpg --batch`)
//! verify in oxtree; pulls with gpg-verify on refuse unsigned, unknown-key, revoked-key and
//! expired-key commits, with keyrings imported by either tool.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const TS: &str = "--timestamp=2020-01-01T00:00:00Z";

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
        shown.contains("Good signature") && shown.contains(&fpr[fpr.len() - 16..]),
        "{shown}"
    );
    // Word for word as ostree describes it (date, algorithm, key ID, user), with the
    // remote's keyring and with every remote's (no remote named).
    assert_eq!(
        shown,
        ostree(&["show", &sa, "good", "--gpg-verify-remote=self"])
    );
    assert_eq!(ox(&["show", &sa, "good"]), ostree(&["show", &sa, "good"]));
    // --gpg-homedir: the `*.gpg` keyrings of a GnuPG home (its trustdb.gpg is none, and
    // its pubring.kbx is not read, as in ostree: "public key not found"), then with the
    // key exported as pubring.gpg.
    let hd = format!("--gpg-homedir={}", s(&home));
    assert!(home.join("trustdb.gpg").exists());
    assert_eq!(
        ox(&["show", &sa, "good", &hd]),
        ostree(&["show", &sa, "good", &hd])
    );
    export(&home, &fpr, &home.join("pubring.gpg"), false);
    let shown = ox(&["show", &sa, "good", &hd]);
    assert!(shown.contains("Good signature"), "{shown}");
    assert_eq!(shown, ostree(&["show", &sa, "good", &hd]));
    std::fs::remove_file(home.join("pubring.gpg")).expect("rm");
    // An unsigned commit: shown, no signature listed, no error (as ostree, which ignores
    // NO_SIGNATURE), even for a remote that does not exist.
    for remote in ["--gpg-verify-remote=self", "--gpg-verify-remote=nosuch"] {
        assert_eq!(
            ox(&["show", &sa, "unsigned", remote]),
            ostree(&["show", &sa, "unsigned", remote]),
            "{remote}"
        );
    }
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
        (
            "unsigned",
            "GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)",
        ),
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
    // An unsigned commit: ostree's error line, word for word.
    let first_error = |o: std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.starts_with("error:"))
            .map(str::to_string)
    };
    assert_eq!(
        first_error(run_raw(
            Path::new("ostree"),
            &["pull", &oa, "origin", "unsigned"]
        )),
        first_error(run_raw(&oxtree_bin(), &["pull", &d, "origin", "unsigned"]))
    );
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

/// The OpenPGP packets of a binary keyring, as (tag, whole packet with its header): enough
/// of RFC 4880 §4.2 (old and new headers, no partial lengths) to cut and splice keys.
fn packets(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    let be = |s: &[u8]| s.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    while i < b.len() {
        let (start, c) = (i, b[i]);
        assert!(c & 0x80 != 0, "not an OpenPGP packet at {i}");
        let (tag, len);
        if c & 0x40 != 0 {
            tag = c & 0x3f;
            let l = b[i + 1];
            (len, i) = match l {
                0..=191 => (usize::from(l), i + 2),
                192..=223 => (
                    (usize::from(l - 192) << 8) + usize::from(b[i + 2]) + 192,
                    i + 3,
                ),
                255 => (be(&b[i + 2..i + 6]), i + 6),
                _ => panic!("partial body length in a keyring"),
            };
        } else {
            tag = (c >> 2) & 0x0f;
            let n = [1, 2, 4][usize::from(c & 3)];
            len = be(&b[i + 1..i + 1 + n]);
            i += 1 + n;
        }
        out.push((tag, b[start..i + len].to_vec()));
        i += len;
    }
    out
}

const TAG_SIGNATURE: u8 = 2;
const TAG_PUBLIC_SUBKEY: u8 = 14;

/// Fingerprints of a home's keys: the primary first, then its subkeys in creation order.
fn fingerprints(home: &Path) -> Vec<String> {
    gpg(
        home,
        &["--list-keys", "--with-colons", "--with-subkey-fingerprints"],
    )
    .lines()
    .filter(|l| l.starts_with("fpr:"))
    .filter_map(|l| l.split(':').nth(9).map(str::to_string))
    .collect()
}

fn add_signing_subkey(home: &Path, fpr: &str, extra: &[&str], expiry: &str) -> String {
    let before = fingerprints(home);
    let mut args = extra.to_vec();
    args.extend_from_slice(&["--quick-add-key", fpr, "ed25519", "sign", expiry]);
    gpg(home, &args);
    fingerprints(home)
        .into_iter()
        .find(|f| !before.contains(f))
        .expect("new subkey")
}

fn ostree_gpg_commit(repo: &str, branch: &str, keyid: &str, home: &Path, tree: &Path) -> String {
    ostree(&[
        "commit",
        repo,
        "-b",
        branch,
        "-s",
        branch,
        TS,
        &format!("--gpg-sign={keyid}"),
        &format!("--gpg-homedir={}", s(home)),
        s(tree),
    ])
}

/// Security review M2: anyone can append a subkey to a published key file. A subkey with no
/// binding signature, or with a binding signature the publisher's primary key did not make,
/// must not be trusted: a commit it signs is refused (real ostree refuses it too), while a
/// commit signed by the publisher's own, properly bound, signing subkey is accepted.
#[test]
fn appended_attacker_subkeys_are_not_trusted() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (home, fpr) = gpg_key(t, "publisher", "never");
    let good_sub = add_signing_subkey(&home, &fpr, &[], "never");
    let (ahome, afpr) = gpg_key(t, "attacker", "never");
    let evil_sub = add_signing_subkey(&ahome, &afpr, &[], "never");
    // A second attacker key, without subkeys, whose primary key packet is appended as a
    // subkey of the publisher's.
    let (a2home, a2fpr) = gpg_key(t, "attacker2", "never");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    // gpg signs with a key's newest signing subkey: `bysub` by the publisher's subkey,
    // `evil` by the attacker's.
    let bysub = ostree_gpg_commit(&sa, "bysub", &fpr, &home, &tree);
    ostree_gpg_commit(&sa, "evil", &afpr, &ahome, &tree);
    ostree_gpg_commit(&sa, "evilprimary", &a2fpr, &a2home, &tree);

    export(&home, &fpr, &t.join("publisher.gpg"), false);
    export(&ahome, &afpr, &t.join("attacker.gpg"), false);
    export(&a2home, &a2fpr, &t.join("attacker2.gpg"), false);
    let publisher = std::fs::read(t.join("publisher.gpg")).expect("read");
    let attacker = packets(&std::fs::read(t.join("attacker.gpg")).expect("read"));
    let attacker2 = packets(&std::fs::read(t.join("attacker2.gpg")).expect("read"));
    let pubpk = packets(&publisher);
    let pos = attacker
        .iter()
        .position(|(tag, _)| *tag == TAG_PUBLIC_SUBKEY)
        .expect("attacker subkey");
    let evil_subkey = attacker[pos].1.clone();
    let attacker_binding = attacker[pos + 1].1.clone();
    assert_eq!(attacker[pos + 1].0, TAG_SIGNATURE);
    let ppos = pubpk
        .iter()
        .position(|(tag, _)| *tag == TAG_PUBLIC_SUBKEY)
        .expect("publisher subkey");
    let publisher_binding = pubpk[ppos + 1].1.clone();
    // The second attacker key's primary key packet, re-tagged as a public subkey
    // (old-format header: tag 6 → 14, same length type), followed by a binding signature
    // (made by another key).
    let mut primary_as_sub = attacker2[0].1.clone();
    assert_eq!(
        primary_as_sub[0] & 0xfc,
        0x98,
        "old-format public key header"
    );
    primary_as_sub[0] = 0x80 | (TAG_PUBLIC_SUBKEY << 2) | (primary_as_sub[0] & 3);
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nosig", [&publisher[..], &evil_subkey].concat(), "evil"),
        (
            "ownbinding",
            [&publisher[..], &evil_subkey, &attacker_binding].concat(),
            "evil",
        ),
        (
            "copiedbinding",
            [&publisher[..], &evil_subkey, &publisher_binding].concat(),
            "evil",
        ),
        (
            "primaryassub",
            [&publisher[..], &primary_as_sub, &attacker_binding].concat(),
            "evilprimary",
        ),
    ];

    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    for (name, keyring, branch) in &variants {
        let file = t.join(format!("{name}.gpg"));
        std::fs::write(&file, keyring).expect("write keyring");
        ox(&[
            "remote",
            "add",
            &d,
            &format!("--gpg-import={}", s(&file)),
            name,
            &server.url,
        ]);
        let (code, err) = ox_fail(&["pull", &d, name, branch]);
        assert_eq!(code, 4, "{name}: {err}");
        assert!(
            err.contains("not in the remote's keyring") && !err.contains("good signature"),
            "{name}: {err}"
        );
        assert!(!dst.join(format!("refs/remotes/{name}/{branch}")).exists());
        // The publisher's own subkey still verifies through the same keyring.
        ox(&["pull", &d, name, "bysub"]);
        assert_eq!(ox(&["rev-parse", &d, &format!("{name}:bysub")]), bysub);
    }
    let shown = ox(&["show", &d, &bysub, "--gpg-verify-remote=nosig"]);
    assert!(
        shown.contains(&good_sub[good_sub.len() - 16..]) && shown.contains("Good signature"),
        "{shown}"
    );
    // `show` says why the appended subkey was ignored (gpg drops it on import, so the
    // keyring here is written by oxtree, which keeps what it was given).
    let evil = ostree(&["rev-parse", &sa, "evil"]);
    for tool in [oxtree_bin(), PathBuf::from("ostree")] {
        let name = if tool == oxtree_bin() {
            "self"
        } else {
            "oself"
        };
        run_ok(
            &tool,
            &[
                "remote",
                "add",
                &sa,
                &format!("--gpg-import={}", s(&t.join("ownbinding.gpg"))),
                name,
                "http://127.0.0.1:1/",
            ],
        );
    }
    let o = run_raw(
        &oxtree_bin(),
        &["show", &sa, &evil, "--gpg-verify-remote=self"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}"); // as ostree (4 with OXTREE_DETAILED_EXIT_CODES)
    assert!(
        out.contains(&evil_sub)
            && out.contains("public key not found")
            && out.contains("no valid binding signature"),
        "{out}"
    );
    // Real ostree (gpg) refuses the same commit with the same key file.
    let o = run_raw(
        Path::new("ostree"),
        &["show", &sa, &evil, "--gpg-verify-remote=oself"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("public key not found") && !out.contains("Good signature"),
        "{out}"
    );
}

/// A revoked signing subkey and an expired one sign nothing, though the primary key is
/// fine (ostree: "Key revoked" / "Key expired"), while a third subkey of the same key does.
/// The expired subkey is made and used with gpg's faked clock in 2020, so the test waits
/// for nothing.
#[test]
fn revoked_and_expired_subkeys_are_refused() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let home = t.join("gnupg-pub");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let past = "--faked-system-time=20200101T000000";
    gpg(
        &home,
        &[
            past,
            "--quick-gen-key",
            "pub <pub@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let fpr = fingerprints(&home).remove(0);
    let expired = add_signing_subkey(&home, &fpr, &[past], "1d");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    // gpg signs with the newest signing subkey, here the one that expires. gpgme has no
    // clock option: the home's gpg.conf fakes it while the subkey is valid.
    std::fs::write(home.join("gpg.conf"), "faked-system-time 20200101T120000\n").expect("conf");
    ostree_gpg_commit(&sa, "byexpired", &fpr, &home, &tree);
    std::fs::remove_file(home.join("gpg.conf")).expect("rm conf");
    // Two more subkeys, made in the same second: sign with each by name (oxtree gpg-sign
    // picks the subkey it is given; gpg would pick either).
    let revoked = add_signing_subkey(&home, &fpr, &[], "never");
    let good = add_signing_subkey(&home, &fpr, &[], "never");
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
    let key_file = format!("--gpg-key-file={}", s(&secret));
    ostree(&["commit", &sa, "-b", "byrevoked", "-s", "r", TS, s(&tree)]);
    ox(&["gpg-sign", &sa, &key_file, "byrevoked", &revoked]);
    let bygood = ostree(&["commit", &sa, "-b", "bygood", "-s", "g", TS, s(&tree)]);
    ox(&["gpg-sign", &sa, &key_file, "bygood", &good]);
    // Revoke that subkey (selected by fingerprint), reason 0, empty description.
    let o = std::process::Command::new("gpg")
        .args([
            "--homedir",
            s(&home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--command-fd",
            "0",
            "--edit-key",
            &fpr,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("key {revoked}\nrevkey\ny\n0\n\ny\nsave\n").as_bytes())?;
            c.wait()
        })
        .expect("gpg --edit-key");
    assert!(o.success());
    let listing = gpg(
        &home,
        &["--list-keys", "--with-colons", "--with-subkey-fingerprints"],
    );
    assert_eq!(
        listing.matches("sub:r:").count(),
        1,
        "one subkey revoked:\n{listing}"
    );
    export(&home, &fpr, &t.join("pub.gpg"), false);

    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        &format!("--gpg-import={}", s(&t.join("pub.gpg"))),
        "origin",
        &server.url,
    ]);
    let (code, err) = ox_fail(&["pull", &d, "origin", "byrevoked"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("revoked key {revoked}")), "{err}");
    let (code, err) = ox_fail(&["pull", &d, "origin", "byexpired"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("expired key {expired}")), "{err}");
    ox(&["pull", &d, "origin", "bygood"]);
    assert_eq!(ox(&["rev-parse", &d, "origin:bygood"]), bygood);
    for r in ["byrevoked", "byexpired"] {
        assert!(!dst.join(format!("refs/remotes/origin/{r}")).exists());
    }
    // The oracle agrees on all three.
    let od = t.join("odst");
    let oa = format!("--repo={}", s(&od));
    ostree(&["init", &oa, "--mode=archive"]);
    ostree(&[
        "remote",
        "add",
        &oa,
        &format!("--gpg-import={}", s(&t.join("pub.gpg"))),
        "origin",
        &server.url,
    ]);
    ostree(&["pull", &oa, "origin", "bygood"]);
    for r in ["byrevoked", "byexpired"] {
        let o = run_raw(Path::new("ostree"), &["pull", &oa, "origin", r]);
        assert!(!o.status.success(), "ostree pulled {r}");
    }
}

/// Data signatures made with SHA-1 are refused with a message that says so (gpg 2.2, and
/// so ostree, still accept them).
#[test]
fn sha1_signatures_are_refused() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let (home, fpr) = gpg_key(t, "publisher", "never");
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    let sha256 = ostree_gpg_commit(&sa, "sha256", &fpr, &home, &tree);
    std::fs::write(home.join("gpg.conf"), "digest-algo SHA1\n").expect("conf");
    let sha1 = ostree_gpg_commit(&sa, "sha1", &fpr, &home, &tree);
    export(&home, &fpr, &t.join("pub.gpg"), false);
    ostree(&[
        "remote",
        "add",
        &sa,
        &format!("--gpg-import={}", s(&t.join("pub.gpg"))),
        "self",
        "http://127.0.0.1:1/",
    ]);
    let o = run_raw(
        &oxtree_bin(),
        &["show", &sa, &sha1, "--gpg-verify-remote=self"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}"); // as ostree (4 with OXTREE_DETAILED_EXIT_CODES)
    assert!(
        out.contains("BAD signature") && out.contains("made with SHA1"),
        "{out}"
    );
    assert!(ox(&["show", &sa, &sha256, "--gpg-verify-remote=self"]).contains("Good signature"));
    let server = Server::start(&src);
    let dst = t.join("dst");
    let d = format!("--repo={}", s(&dst));
    ox(&["init", &d, "--mode=archive"]);
    ox(&[
        "remote",
        "add",
        &d,
        &format!("--gpg-import={}", s(&t.join("pub.gpg"))),
        "origin",
        &server.url,
    ]);
    let (code, err) = ox_fail(&["pull", &d, "origin", "sha1"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("BAD signature"), "{err}");
    assert!(!dst.join("refs/remotes/origin/sha1").exists());
    ox(&["pull", &d, "origin", "sha256"]);
}

/// A key's expiry comes from its verified self-signatures only: a copy of the user-id
/// self-signature with the key-expiration subpacket pushed to 2088, appended to an expired
/// key, does not bring it back (the copy no longer verifies).
#[test]
fn forged_self_signatures_do_not_extend_a_key() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let home = t.join("gnupg-old");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    gpg(
        &home,
        &[
            "--faked-system-time=20200101T000000",
            "--quick-gen-key",
            "old <old@example.com>",
            "ed25519",
            "sign",
            "1d",
        ],
    );
    let fpr = fingerprints(&home).remove(0);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ostree(&["init", &sa, "--mode=archive"]);
    std::fs::write(home.join("gpg.conf"), "faked-system-time 20200101T120000\n").expect("conf");
    let c = ostree_gpg_commit(&sa, "old", &fpr, &home, &tree);
    std::fs::remove_file(home.join("gpg.conf")).expect("rm conf");
    export(&home, &fpr, &t.join("old.gpg"), false);
    let pk = packets(&std::fs::read(t.join("old.gpg")).expect("read"));
    let uid = pk.iter().position(|(tag, _)| *tag == 13).expect("user id");
    let (tag, sig) = &pk[uid + 1];
    assert_eq!(*tag, TAG_SIGNATURE);
    // v4 signature: header, version, type, algorithms, 2-byte hashed length, subpackets
    // (1-byte length, type, data); key expiration is type 9 with 4 bytes.
    let hdr = if sig[0] & 0x40 != 0 {
        2
    } else {
        1 + [1, 2, 4][usize::from(sig[0] & 3)]
    };
    assert_eq!(sig[hdr], 4, "v4 signature");
    let hashed = usize::from(sig[hdr + 4]) << 8 | usize::from(sig[hdr + 5]);
    let mut forged = sig.clone();
    let mut i = hdr + 6;
    let mut found = false;
    while i < hdr + 6 + hashed {
        let len = usize::from(forged[i]);
        assert!(len < 192, "short subpackets only");
        if forged[i + 1] & 0x7f == 9 {
            forged[i + 2..i + 6].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
            found = true;
        }
        i += 1 + len;
    }
    assert!(found, "key expiration subpacket");
    let mut keyring: Vec<u8> = Vec::new();
    for (j, (_, p)) in pk.iter().enumerate() {
        keyring.extend_from_slice(p);
        if j == uid + 1 {
            keyring.extend_from_slice(&forged);
        }
    }
    std::fs::write(t.join("forged.gpg"), &keyring).expect("write");
    ox(&[
        "remote",
        "add",
        &sa,
        &format!("--gpg-import={}", s(&t.join("forged.gpg"))),
        "self",
        "http://127.0.0.1:1/",
    ]);
    let o = run_raw(
        &oxtree_bin(),
        &["show", &sa, &c, "--gpg-verify-remote=self"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}"); // as ostree (4 with OXTREE_DETAILED_EXIT_CODES)
    assert!(
        // (ostree's lines: "BAD signature from …", "Key expired DATE"; then oxtree's detail)
        out.contains("BAD signature from")
            && out.contains("Key expired ")
            && out.contains("expired at 2020-01-02 00:00:00 UTC"),
        "{out}"
    );
}

/// `gpg-sign` with an RSA key that has an RSA encryption subkey signs with the primary key
/// (it used to sign with the encryption subkey, which gpg — so ostree — reports as BAD).
#[test]
fn oxtree_never_signs_with_an_encryption_subkey() {
    require_ostree();
    let tmp = tempdir();
    let t = tmp.path();
    let tree = t.join("tree");
    build_tree(&tree, false);
    let home = t.join("gnupg-rsa");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    gpg(
        &home,
        &[
            "--quick-gen-key",
            "rsa <rsa@example.com>",
            "rsa2048",
            "sign",
            "never",
        ],
    );
    let fpr = fingerprints(&home).remove(0);
    gpg(
        &home,
        &["--quick-add-key", &fpr, "rsa2048", "encr", "never"],
    );
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
    export(&home, &fpr, &t.join("pub.gpg"), false);
    let src = t.join("src");
    let sa = format!("--repo={}", s(&src));
    ox(&["init", &sa, "--mode=archive"]);
    ox(&["commit", &sa, "-b", "main", "-s", "x", TS, s(&tree)]);
    ox(&[
        "gpg-sign",
        &sa,
        &format!("--gpg-key-file={}", s(&secret)),
        "main",
        &fpr,
    ]);
    ostree(&[
        "remote",
        "add",
        &sa,
        &format!("--gpg-import={}", s(&t.join("pub.gpg"))),
        "self",
        "http://127.0.0.1:1/",
    ]);
    let out = ostree(&["show", &sa, "main", "--gpg-verify-remote=self"]);
    assert!(out.contains("Good signature"), "{out}");
    let x = ox(&["show", &sa, "main", "--gpg-verify-remote=self"]);
    assert!(
        x.contains("Good signature") && x.contains(&fpr[fpr.len() - 16..]),
        "{x}"
    );
    assert_eq!(x, out);
}

/// A passphrase-protected key whose passphrase gpg-agent holds (`gpg-preset-passphrase`,
/// as signing pipelines set it up) signs commits (`commit --gpg-sign`, `gpg-sign`) and the
/// summary as with ostree: gpg signs, the key never leaves the agent. The signatures verify
/// in ostree. A key GnuPG does not have gets ostree's error.
#[test]
fn agent_held_passphrase_keys_sign_as_with_ostree() {
    require_ostree();
    let preset = Path::new("/usr/lib/gnupg/gpg-preset-passphrase");
    assert!(
        preset.exists(),
        "gpg-preset-passphrase is missing (Debian package gpg-agent)"
    );
    let tmp = tempdir();
    let t = tmp.path();
    let home = t.join("gnupg");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    std::fs::write(home.join("gpg-agent.conf"), "allow-preset-passphrase\n").expect("write");
    let gpg_pw = |args: &[&str]| {
        let mut a = vec![
            "--homedir",
            s(&home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "secret words",
        ];
        a.extend_from_slice(args);
        run_ok(Path::new("gpg"), &a)
    };
    gpg_pw(&[
        "--quick-gen-key",
        "P <p@example.com>",
        "ed25519",
        "sign",
        "never",
    ]);
    let colons = gpg_pw(&["--list-secret-keys", "--with-colons", "--with-keygrip"]);
    let field = |tag: &str| {
        colons
            .lines()
            .find(|l| l.starts_with(tag))
            .and_then(|l| l.split(':').nth(9))
            .expect("field")
            .to_string()
    };
    let (fpr, grip) = (field("fpr:"), field("grp:"));
    let o = std::process::Command::new(preset)
        .args(["--preset", "-P", "secret words", &grip])
        .env("GNUPGHOME", &home)
        .output()
        .expect("gpg-preset-passphrase");
    assert!(o.status.success(), "{o:?}");
    // Exporting the key now fails (it needs the passphrase): the case this test is about.
    let exported = std::process::Command::new("gpg")
        .args([
            "--homedir",
            s(&home),
            "--batch",
            "--pinentry-mode",
            "loopback",
        ])
        .args(["--passphrase", "", "--export-secret-keys", &fpr])
        .output()
        .expect("gpg");
    assert!(!exported.status.success() || exported.stdout.is_empty());

    let tree = t.join("tree");
    build_tree(&tree, false);
    let repo = t.join("repo");
    let ra = format!("--repo={}", s(&repo));
    let hd = format!("--gpg-homedir={}", s(&home));
    ox(&["init", &ra, "--mode=archive"]);
    let signed = ox(&[
        "commit",
        &ra,
        "-b",
        "signed",
        TS,
        &format!("--gpg-sign={fpr}"),
        &hd,
        s(&tree),
    ]);
    let later = ox(&["commit", &ra, "-b", "later", TS, "-s", "later", s(&tree)]);
    ox(&["gpg-sign", &ra, &later, &fpr, &hd]);
    ox(&["summary", &ra, "-u", &format!("--gpg-sign={fpr}"), &hd]);
    assert!(repo.join("summary.sig").exists());

    let pubkey = t.join("pub.gpg");
    export(&home, &fpr, &pubkey, false);
    ostree(&[
        "remote",
        "add",
        &ra,
        &format!("--gpg-import={}", s(&pubkey)),
        "--set=gpg-verify-summary=true",
        "self",
        &format!("file://{}", s(&repo)),
    ]);
    for c in [&signed, &later] {
        let out = ostree(&["show", &ra, "--gpg-verify-remote=self", c]);
        assert!(out.contains("Good signature"), "{c}: {out}");
    }
    // (fails unless summary.sig verifies)
    ostree(&["remote", "summary", &ra, "self"]);

    let (code, err) = ox_fail(&["gpg-sign", &ra, &later, "0xDEADBEEF", &hd]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "No gpg key found with ID 0xDEADBEEF (homedir: {})",
            s(&home)
        )),
        "{err}"
    );
    let _ = std::process::Command::new("gpgconf")
        .args(["--homedir", s(&home), "--kill", "gpg-agent"])
        .output();
}
