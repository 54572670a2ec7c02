//! Every command and option of ostree's CLI (`tests/data/ostree-cli.tsv`, a copy of the
//! project's spec table) must be offered by oxtree: `oxtree CMD --help` lists the command and
//! each option (with its short form). Rows not done yet are listed in
//! `tests/data/cli-missing.txt`; the test fails on any other missing row, and on a listed row
//! that now exists (so the list only shrinks).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

struct Row {
    cmd: String,
    opt: String,
    short: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ostree-cli.tsv"),
    )
    .expect("read ostree-cli.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            Row {
                cmd: f.next().unwrap_or_default().to_string(),
                opt: f.next().unwrap_or_default().to_string(),
                short: f.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn key(r: &Row) -> String {
    if r.opt.is_empty() {
        r.cmd.clone()
    } else {
        format!("{} {}", r.cmd, r.opt)
    }
}

/// Whether `help` (clap's `--help` text) lists `--opt` (and `-s, --opt` with a short form).
fn offers(help: &str, opt: &str, short: &str) -> bool {
    help.lines().any(|l| {
        let l = l.trim_start();
        let long = l.split([' ', '=', ',', '[', '<']).any(|w| w == opt);
        let short_ok = short.is_empty() || l.starts_with(&format!("-{short}, "));
        long && short_ok
    })
}

#[test]
fn every_ostree_command_and_option_is_offered() {
    let missing_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cli-missing.txt");
    let allowed: BTreeSet<String> = std::fs::read_to_string(&missing_file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut help: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    let rows = rows();
    for r in &rows {
        let h = help.entry(r.cmd.clone()).or_insert_with(|| {
            let mut args: Vec<&str> = r.cmd.split(' ').collect();
            args.push("--help");
            let o = common::run_raw(&common::oxtree_bin(), &args);
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).to_string())
        });
        let ok = match h {
            None => false,
            Some(_) if r.opt.is_empty() => true,
            Some(h) => offers(h, &r.opt, &r.short),
        };
        if !ok {
            missing.insert(key(r));
        }
    }
    let unexpected: Vec<_> = missing.difference(&allowed).collect();
    let done: Vec<_> = allowed.difference(&missing).collect();
    let total = rows.len();
    eprintln!(
        "ostree CLI rows offered: {}/{} ({} listed as not done yet)",
        total - missing.len(),
        total,
        allowed.len()
    );
    assert!(
        unexpected.is_empty(),
        "ostree commands/options oxtree does not offer: {unexpected:#?}"
    );
    assert!(
        done.is_empty(),
        "now offered, remove from tests/data/cli-missing.txt: {done:#?}"
    );
}

#[test]
fn man_pages_and_completions_cover_every_command() {
    let t = common::tempdir();
    let man = t.path().join("man");
    common::ox(&["generate", "man", common::s(&man)]);
    // One page per command in the table that oxtree offers.
    let missing_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cli-missing.txt");
    let not_yet = std::fs::read_to_string(missing_file).unwrap_or_default();
    for r in rows().iter().filter(|r| r.opt.is_empty()) {
        if not_yet.lines().any(|l| l.trim() == r.cmd) {
            continue;
        }
        let page = man.join(format!("oxtree-{}.1", r.cmd.replace(' ', "-")));
        assert!(page.is_file(), "no man page {}", page.display());
    }
    let bash = common::ox(&["generate", "completions", "bash"]);
    let f = t.path().join("oxtree.bash");
    std::fs::write(&f, &bash).expect("write");
    let o = std::process::Command::new("bash")
        .arg("-n")
        .arg(&f)
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(bash.contains("pull-local") && bash.contains("--timestamp-check"));
}

/// The README's "Out of scope" table: each refused row prints exactly its message, exits 1
/// and leaves the repository as it was; and the table stays under 5 % of the rows.
#[test]
fn out_of_scope_rows_are_refused_with_the_readme_message() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("read README.md");
    let section = readme
        .split("### Out of scope")
        .nth(1)
        .expect("README has an Out of scope section");
    let section = section.split("\n#").next().unwrap_or(section);
    let table: Vec<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).filter(|c| !c.is_empty());
            let row = cells.next()?.trim_matches('`').to_string();
            let msg = cells.next()?;
            let msg = msg.strip_prefix('`')?.split('`').next()?.to_string();
            Some((row, msg))
        })
        .collect();
    assert!(!table.is_empty(), "the Out of scope table is empty");
    let total = rows().len();
    assert!(
        table.len() * 100 < total * 5,
        "{} refused rows of {total}",
        table.len()
    );
    let t = common::tempdir();
    let repo = t.path().join("repo");
    let r = format!("--repo={}", common::s(&repo));
    let tree = t.path().join("tree");
    common::write(&tree.join("f"), b"x", 0o644);
    // A policy to label with (without one, the SELinux rows label nothing and succeed).
    common::write(
        &tree.join("etc/selinux/config"),
        b"SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        0o644,
    );
    std::fs::create_dir_all(tree.join("etc/selinux/targeted/policy")).expect("mkdir");
    common::ox(&["init", &r, "--mode=bare-user"]);
    common::ox(&["commit", &r, "-b", "main", "-s", "m", common::s(&tree)]);
    let before = common::snapshot(&repo);
    for (row, msg) in &table {
        let offered = rows().iter().any(|x| key(x) == *row);
        assert!(offered, "{row}: not a row of ostree-cli.tsv");
        let (cmd, opt) = row.split_once(' ').expect("a command and an option");
        let opt_arg = match opt {
            "--selinux-policy" => format!("{opt}={}", common::s(&tree)),
            "--selinux-prefix" => format!("{opt}=/"),
            _ => opt.to_string(),
        };
        let dest = t.path().join("co");
        let args: Vec<&str> = match cmd {
            // (-P labels with the policy of the branch's head)
            "commit" if opt == "--selinux-policy-from-base" => {
                vec![cmd, &r, "-b", "main", &opt_arg, common::s(&tree)]
            }
            "commit" => vec![cmd, &r, "-b", "other", &opt_arg, common::s(&tree)],
            "checkout" => vec![cmd, &r, &opt_arg, "main", common::s(&dest)],
            other => panic!("no invocation for {other}"),
        };
        let o = common::run_raw(&common::oxtree_bin(), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{row}: {err}");
        assert_eq!(err.lines().next(), Some(msg.as_str()), "{row}");
        assert!(!dest.exists(), "{row}: nothing checked out");
    }
    assert!(
        common::snapshot(&repo) == before,
        "a refused row changed the repository"
    );
}
