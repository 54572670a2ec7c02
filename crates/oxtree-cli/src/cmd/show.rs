//! Reading commits: log, show, ls, cat, diff.

use super::Global;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oxtree::object::{Checksum, ObjectType};
use oxtree::repo::PathEntry;
use oxtree::Repo;
use std::io::Write;

/// Show the history of a ref.
#[derive(Args)]
pub struct LogArgs {
    /// Also show each commit's OpenPGP signatures, checked with this remote's keys.
    #[arg(long, value_name = "REMOTE")]
    pub gpg_verify_remote: Option<String>,
    pub rev: String,
}

pub fn log(g: &Global, a: LogArgs) -> Result<()> {
    let LogArgs {
        gpg_verify_remote,
        rev,
    } = a;
    let repo = g.open()?;
    let mut cur = Some(repo.resolve_rev(&rev)?);
    while let Some(c) = cur {
        match repo.load_commit(&c) {
            Ok(cm) => {
                print_commit(&c, &cm);
                if let Some(remote) = &gpg_verify_remote {
                    print_gpg_report(&repo, &c, remote)?;
                    println!();
                }
                cur = cm.parent;
            }
            Err(oxtree::Error::ObjectMissing { .. }) => {
                println!("<< History beyond this commit not fetched >>");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Show a commit.
#[derive(Args)]
pub struct ShowArgs {
    /// Print only the value of this commit metadata key.
    #[arg(long, value_name = "KEY")]
    pub print_metadata_key: Option<String>,
    /// Verify the commit's OpenPGP signatures with this remote's keys and print them.
    #[arg(long, value_name = "REMOTE")]
    pub gpg_verify_remote: Option<String>,
    pub rev: String,
}

pub fn show(g: &Global, a: ShowArgs) -> Result<()> {
    let ShowArgs {
        print_metadata_key,
        gpg_verify_remote,
        rev,
    } = a;
    let repo = g.open()?;
    let c = repo.resolve_rev(&rev)?;
    let cm = repo.load_commit(&c)?;
    if let Some(k) = print_metadata_key {
        let v = cm
            .meta(&k)
            .ok_or_else(|| anyhow!("no such metadata key {k:?} in commit {c}"))?;
        println!("{}", gvtext::print(v));
    } else {
        print_commit(&c, &cm);
        if let Some(remote) = gpg_verify_remote {
            if !print_gpg_report(&repo, &c, &remote)? {
                return Err(oxtree::Error::Signature {
                    commit: c,
                    msg: "no good OpenPGP signature".into(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// List the files in a commit.
#[derive(Args)]
pub struct LsArgs {
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Only list the directory itself, not its contents.
    #[arg(short = 'd', long)]
    pub dironly: bool,
    /// Print object checksums.
    #[arg(short = 'C', long)]
    pub checksum: bool,
    pub rev: String,
    pub paths: Vec<String>,
}

pub fn ls(g: &Global, a: LsArgs) -> Result<()> {
    let LsArgs {
        recursive,
        dironly,
        checksum,
        rev,
        paths,
    } = a;
    let repo = g.open()?;
    let c = repo.resolve_rev(&rev)?;
    let paths = if paths.is_empty() {
        vec!["/".to_string()]
    } else {
        paths
    };
    for p in paths {
        cmd_ls(&repo, &c, &p, recursive, dironly, checksum)?;
    }
    Ok(())
}

/// Print the contents of a file in a commit.
#[derive(Args)]
pub struct CatArgs {
    pub rev: String,
    pub paths: Vec<String>,
}

pub fn cat(g: &Global, a: CatArgs) -> Result<()> {
    let CatArgs { rev, paths } = a;
    let repo = g.open()?;
    let c = repo.resolve_rev(&rev)?;
    let mut out = std::io::stdout().lock();
    for p in paths {
        let (ty, csum, _) = lookup_path(&repo, &c, &p)?;
        if ty != ObjectType::File {
            bail!("{p}: is a directory");
        }
        let mut fc = repo.read_file(&csum)?;
        std::io::copy(&mut fc.payload, &mut out).with_context(|| format!("reading {p}"))?;
    }
    out.flush()?;
    Ok(())
}

/// Compare two commits: A added, D deleted, M modified.
#[derive(Args)]
pub struct DiffArgs {
    pub rev1: String,
    pub rev2: String,
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<()> {
    let DiffArgs { rev1, rev2 } = a;
    let repo = g.open()?;
    let a = repo.load_commit(&repo.resolve_rev(&rev1)?)?;
    let b = repo.load_commit(&repo.resolve_rev(&rev2)?)?;
    let mut out = Vec::new();
    diff_dirs(
        &repo,
        Some((a.root_tree, a.root_meta)),
        Some((b.root_tree, b.root_meta)),
        "",
        &mut out,
    )?;
    for (k, p) in out {
        println!("{k}    {p}");
    }
    Ok(())
}

fn print_commit(c: &Checksum, cm: &oxtree::Commit) {
    println!("commit {c}");
    if let Some(p) = cm.parent {
        println!("Parent:  {p}");
    }
    println!("ContentChecksum:  {}", cm.content_checksum());
    println!("Date:  {}", timefmt::format(cm.timestamp));
    if let Some(v) = cm.version() {
        println!("Version: {v}");
    }
    println!();
    if !cm.subject.is_empty() {
        println!("    {}", cm.subject);
        println!();
    }
    if !cm.body.is_empty() {
        for l in cm.body.lines() {
            println!("    {l}");
        }
        println!();
    }
}

/// Find a path inside a commit: (type, checksum, dirmeta checksum for dirs).
fn lookup_path(
    repo: &Repo,
    commit: &Checksum,
    path: &str,
) -> Result<(ObjectType, Checksum, Checksum)> {
    Ok(match repo.lookup_path(commit, path)? {
        PathEntry::File(f) => (ObjectType::File, f, Checksum::default()),
        PathEntry::Dir { tree, meta } => (ObjectType::DirTree, tree, meta),
    })
}

fn ls_line(
    repo: &Repo,
    path: &str,
    ty: ObjectType,
    csum: &Checksum,
    meta: &Checksum,
    show_csum: bool,
) -> Result<()> {
    let p = if path.is_empty() { "/" } else { path };
    if ty == ObjectType::File {
        let fc = repo.read_file(csum)?;
        let h = &fc.header;
        let c = if h.is_symlink() { 'l' } else { '-' };
        let cs = if show_csum {
            format!("{csum} ")
        } else {
            String::new()
        };
        let tgt = if h.is_symlink() {
            format!(" -> {}", h.symlink_target)
        } else {
            String::new()
        };
        println!(
            "{c}0{:04o} {} {} {:6} {cs}{p}{tgt}",
            h.mode & 0o7777,
            h.uid,
            h.gid,
            fc.size
        );
    } else {
        let dm = repo.load_dirmeta(meta)?;
        let cs = if show_csum {
            format!("{csum} {meta} ")
        } else {
            String::new()
        };
        println!(
            "d0{:04o} {} {} {:6} {cs}{p}",
            dm.mode & 0o7777,
            dm.uid,
            dm.gid,
            0
        );
    }
    Ok(())
}

fn cmd_ls(
    repo: &Repo,
    commit: &Checksum,
    path: &str,
    recursive: bool,
    dironly: bool,
    show_csum: bool,
) -> Result<()> {
    let (ty, csum, meta) = lookup_path(repo, commit, path)?;
    let norm = path.trim_end_matches('/');
    ls_line(repo, norm, ty, &csum, &meta, show_csum)?;
    if ty == ObjectType::DirTree && !dironly {
        ls_dir(repo, &csum, norm, recursive, show_csum)?;
    }
    Ok(())
}

fn ls_dir(
    repo: &Repo,
    tree: &Checksum,
    prefix: &str,
    recursive: bool,
    show_csum: bool,
) -> Result<()> {
    let dt = repo.load_dirtree(tree)?;
    // ostree lists a directory's files, then its subdirectories, each in dirtree order.
    for (name, c) in &dt.files {
        ls_line(
            repo,
            &format!("{prefix}/{name}"),
            ObjectType::File,
            c,
            &Checksum::default(),
            show_csum,
        )?;
    }
    for (name, t, m) in &dt.dirs {
        let p = format!("{prefix}/{name}");
        ls_line(repo, &p, ObjectType::DirTree, t, m, show_csum)?;
        if recursive {
            ls_dir(repo, t, &p, true, show_csum)?;
        }
    }
    Ok(())
}

type DirRef = Option<(Checksum, Checksum)>;

fn diff_dirs(
    repo: &Repo,
    a: DirRef,
    b: DirRef,
    prefix: &str,
    out: &mut Vec<(char, String)>,
) -> Result<()> {
    let load = |d: DirRef| -> Result<oxtree::DirTree> {
        Ok(match d {
            Some((t, _)) => repo.load_dirtree(&t)?,
            None => oxtree::DirTree::default(),
        })
    };
    let (da, db) = (load(a)?, load(b)?);
    let mut names: Vec<&str> = da
        .files
        .iter()
        .map(|f| f.0.as_str())
        .chain(da.dirs.iter().map(|d| d.0.as_str()))
        .collect();
    names.extend(
        db.files
            .iter()
            .map(|f| f.0.as_str())
            .chain(db.dirs.iter().map(|d| d.0.as_str())),
    );
    names.sort_unstable();
    names.dedup();
    for n in names {
        let p = format!("{prefix}/{n}");
        let fa = da.files.iter().find(|f| f.0 == n).map(|f| f.1);
        let fb = db.files.iter().find(|f| f.0 == n).map(|f| f.1);
        let sa = da.dirs.iter().find(|d| d.0 == n).map(|d| (d.1, d.2));
        let sb = db.dirs.iter().find(|d| d.0 == n).map(|d| (d.1, d.2));
        match (fa, fb, sa, sb) {
            (Some(x), Some(y), _, _) if x != y => out.push(('M', p)),
            (Some(_), Some(_), _, _) => {}
            (None, None, Some(x), Some(y)) => {
                if x.1 != y.1 {
                    out.push(('M', p.clone()));
                }
                if x.0 != y.0 {
                    diff_dirs(repo, Some(x), Some(y), &p, out)?;
                }
            }
            (Some(_), None, None, Some(_)) | (None, Some(_), Some(_), None) => out.push(('M', p)),
            (Some(_), None, None, None) | (None, None, Some(_), None) => out.push(('D', p)),
            (None, Some(_), None, None) | (None, None, None, Some(_)) => out.push(('A', p)),
            _ => {}
        }
    }
    Ok(())
}

/// Print a commit's OpenPGP signatures as `ostree show --gpg-verify-remote` does; whether
/// one of them is good.
fn print_gpg_report(repo: &Repo, c: &Checksum, remote: &str) -> Result<bool> {
    use oxtree::sign::gpg::GpgStatus;
    let keys = repo.remote_gpg_keys(remote)?;
    let meta = repo.load_commitmeta_bytes(c)?;
    let data = repo.load_metadata(oxtree::ObjectType::Commit, c)?;
    let report = oxtree::sign::gpg::verify_meta(meta.as_deref(), &data, &keys)?;
    println!(
        "Found {} signature{}:",
        report.len(),
        if report.len() == 1 { "" } else { "s" }
    );
    for r in &report {
        println!();
        if let Some(t) = r.created {
            println!(
                "  Signature made {} using key ID {}",
                timefmt::format(t),
                r.key.as_deref().unwrap_or("?")
            );
        }
        let who = r
            .user
            .as_deref()
            .or(r.key.as_deref())
            .unwrap_or("unknown key");
        let status = match r.status {
            GpgStatus::Good => format!("Good signature from \"{who}\""),
            GpgStatus::ExpiredKey => format!("Signature from \"{who}\" made by an EXPIRED key"),
            GpgStatus::RevokedKey => format!("Signature from \"{who}\" made by a REVOKED key"),
            GpgStatus::Bad => format!("BAD signature from \"{who}\""),
            GpgStatus::UnknownKey => "Can't check signature: public key not found".to_string(),
        };
        println!("  {status}");
    }
    Ok(report.iter().any(|r| r.status == GpgStatus::Good))
}
