//! Reading commits: log, show, ls, cat, diff.

use super::Global;
use crate::output::human_size;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oxtree::object::{Checksum, ObjectType};
use oxtree::repo::PathEntry;
use oxtree::Repo;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Show the history of a ref.
#[derive(Args)]
pub struct LogArgs {
    /// Show raw variant data.
    #[arg(long)]
    pub raw: bool,
    /// Also show each commit's OpenPGP signatures, checked with this remote's keys.
    #[arg(long, value_name = "REMOTE")]
    pub gpg_verify_remote: Option<String>,
    pub rev: String,
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn log(g: &Global, a: LogArgs) -> Result<()> {
    let repo = g.open()?;
    let mut cur = Some(repo.resolve_rev(&a.rev)?);
    let mut first = true;
    while let Some(c) = cur {
        let is_first = std::mem::take(&mut first);
        match repo.load_commit(&c) {
            Ok(cm) => {
                if a.raw {
                    println!("commit {c}");
                    dump_variant(&repo, ObjectType::Commit, &c, true)?;
                } else {
                    print_commit(&c, &cm);
                }
                if let Some(remote) = &a.gpg_verify_remote {
                    print_gpg_report(&repo, &c, &GpgKeys::Remote(remote))?;
                    println!();
                }
                cur = cm.parent;
            }
            // The rev's own commit must be there (ostree fails); a missing parent is a
            // shallow history.
            Err(oxtree::Error::ObjectMissing { .. }) if !is_first => {
                println!("<< History beyond this commit not fetched >>");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Output a metadata object: a commit (by ref or checksum), or with --print-variant-type any
/// file read as a GVariant of that type.
#[derive(Args)]
pub struct ShowArgs {
    /// Show the "related" commits.
    #[arg(long)]
    pub print_related: bool,
    /// Memory map OBJECT (in this case a filename) to the GVariant type string.
    #[arg(long, value_name = "TYPE")]
    pub print_variant_type: Option<String>,
    /// Print the value of a commit metadata key.
    #[arg(long, value_name = "KEY")]
    pub print_metadata_key: Option<String>,
    /// Print the value of a detached metadata key.
    #[arg(long, value_name = "KEY")]
    pub print_detached_metadata_key: Option<String>,
    /// List the keys of the commit metadata.
    #[arg(long)]
    pub list_metadata_keys: bool,
    /// List the keys of the detached metadata.
    #[arg(long)]
    pub list_detached_metadata_keys: bool,
    /// With --print-(detached-)metadata-key: print a byte-string value as hex.
    #[arg(long)]
    pub print_hex: bool,
    /// Show the commit size metadata (ostree.sizes).
    #[arg(long)]
    pub print_sizes: bool,
    /// Show raw variant data.
    #[arg(long)]
    pub raw: bool,
    /// Do not automatically convert variant data from big endian.
    #[arg(short = 'B', long)]
    pub no_byteswap: bool,
    /// GnuPG home directory whose keyrings (*.gpg) check the commit's signatures.
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<PathBuf>,
    /// Verify the commit's OpenPGP signatures with this remote's keys and print them.
    #[arg(long, value_name = "REMOTE")]
    pub gpg_verify_remote: Option<String>,
    /// The commit (REV), or a file with --print-variant-type.
    pub object: Option<String>,
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn show(g: &Global, a: ShowArgs) -> Result<()> {
    let Some(object) = a.object.as_deref() else {
        bail!("An object argument is required");
    };
    let swap = !a.no_byteswap;
    if let Some(ty) = &a.print_variant_type {
        let ty =
            oxtree::gvariant::Type::parse(ty).map_err(|e| anyhow!("invalid type {ty:?}: {e}"))?;
        let data = std::fs::read(object).with_context(|| format!("reading {object}"))?;
        let v = oxtree::gvariant::decode(&data, &ty)
            .map_err(|e| anyhow!("{object}: not a valid {ty} variant: {e}"))?;
        println!("{}", gvtext::print(&if swap { v.byteswap() } else { v }));
        return Ok(());
    }
    let repo = g.open()?;
    let c = repo.resolve_rev(object)?;
    let cm = match repo.load_commit(&c) {
        Ok(cm) => cm,
        // A checksum of another object: shown as ostree shows it. (Only a checksum given
        // whole: a ref, `REV^` or a prefix names a commit, and a missing one is that.)
        Err(oxtree::Error::ObjectMissing {
            ty: ObjectType::Commit,
            ..
        }) if object.len() == 64 && object.parse::<Checksum>().is_ok() => {
            return show_other_object(&repo, &c, a.raw, swap)
        }
        Err(e) => return Err(e.into()),
    };
    let print_value = |v: &oxtree::gvariant::Value| match (a.print_hex, v) {
        (true, oxtree::gvariant::Value::Bytes(b)) => {
            println!(
                "{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            )
        }
        _ => println!(
            "{}",
            gvtext::print(&if swap { v.byteswap() } else { v.clone() })
        ),
    };
    if let Some(k) = &a.print_metadata_key {
        let v = cm
            .meta(k)
            .ok_or_else(|| anyhow!("No such metadata key '{k}'"))?;
        print_value(v);
        return Ok(());
    }
    if a.list_metadata_keys {
        for (k, _) in &cm.metadata {
            println!("{k}");
        }
        return Ok(());
    }
    if a.print_detached_metadata_key.is_some() || a.list_detached_metadata_keys {
        let meta = repo
            .load_commitmeta_bytes(&c)?
            .ok_or_else(|| anyhow!("No detached metadata for commit {c}"))?;
        let meta = oxtree::gvariant::decode(&meta, &oxtree::gvariant::Type::of("a{sv}"))
            .map_err(|e| anyhow!("commit {c}: invalid detached metadata: {e}"))?;
        let entries = meta.sv_entries().unwrap_or_default();
        if let Some(k) = &a.print_detached_metadata_key {
            let v = entries
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| anyhow!("No such metadata key '{k}'"))?;
            print_value(v);
        } else {
            for (k, _) in entries {
                println!("{k}");
            }
        }
        return Ok(());
    }
    if a.print_sizes {
        return print_sizes(&repo, &cm);
    }
    if a.print_related {
        for (name, rc) in &cm.related {
            println!("{name} {rc}");
        }
        return Ok(());
    }
    if a.no_byteswap {
        // As ostree's ot_dump_object: the variant as stored, then the usual fields.
        println!("commit {c}");
        dump_variant(&repo, ObjectType::Commit, &c, false)?;
        print_commit_fields(&cm);
    } else if a.raw {
        println!("commit {c}");
        dump_variant(&repo, ObjectType::Commit, &c, true)?;
    } else {
        print_commit(&c, &cm);
    }
    let keys = match (&a.gpg_verify_remote, &a.gpg_homedir) {
        (Some(r), _) => GpgKeys::Remote(r),
        (None, Some(h)) => GpgKeys::Homedir(h),
        (None, None) => GpgKeys::Global,
    };
    // Like ostree: signatures are listed when the commit has any. An unsigned commit shows
    // none and is no error, whichever remote was named (ostree ignores NO_SIGNATURE).
    let signed = repo
        .load_commitmeta_bytes(&c)?
        .and_then(|m| oxtree::gvariant::decode(&m, &oxtree::gvariant::Type::of("a{sv}")).ok())
        .is_some_and(|m| m.lookup("ostree.gpgsigs").is_some());
    if signed && !print_gpg_report(&repo, &c, &keys)? && a.gpg_verify_remote.is_some() {
        return Err(oxtree::Error::Signature {
            commit: c,
            msg: "no good OpenPGP signature".into(),
        }
        .into());
    }
    Ok(())
}

/// `show CHECKSUM` of a dirmeta, a dirtree or a file object (ostree's `print_object` and
/// `print_file_object`); a checksum of nothing is "Couldn't find file object".
fn show_other_object(repo: &Repo, c: &Checksum, raw: bool, swap: bool) -> Result<()> {
    for ty in [ObjectType::DirMeta, ObjectType::DirTree] {
        if repo.has_object(ty, c) {
            println!("{ty} {c}");
            if raw {
                dump_variant(repo, ty, c, swap)?;
            }
            return Ok(());
        }
    }
    // (ostree's bare modes say which object they were opening.)
    let f = match repo.read_file(c) {
        Err(e) if repo.mode() != oxtree::repo::RepoMode::Archive => {
            return Err(anyhow::Error::from(e).context(format!("Opening content object {c}")))
        }
        r => r?,
    };
    let h = &f.header;
    println!("Object: {c}");
    println!("Type: file");
    if h.is_symlink() {
        println!("File Type: symlink");
        println!("Target: {}", h.symlink_target);
    } else {
        println!("File Type: regular");
        println!("Size: {}", f.size);
    }
    println!("Mode: 0{:o}", h.mode);
    println!("Uid: {}", h.uid);
    println!("Gid: {}", h.gid);
    println!(
        "Extended Attributes: {{ {} }}",
        gvtext::print(&oxtree::object::xattrs_value(&h.xattrs))
    );
    Ok(())
}

/// `commit CSUM` already printed; the object as `g_variant_print` shows it, byteswapped
/// from big endian unless `swap` is off (as ostree's `ot_dump_variant`).
fn dump_variant(repo: &Repo, ty: ObjectType, c: &Checksum, swap: bool) -> Result<()> {
    let bytes = repo.load_metadata(ty, c)?;
    let vty = oxtree::gvariant::Type::of(match ty {
        ObjectType::Commit => "(a{sv}aya(say)sstayay)",
        ObjectType::DirTree => "(a(say)a(sayay))",
        ObjectType::DirMeta => "(uuua(ayay))",
        _ => "a{sv}",
    });
    let v = oxtree::gvariant::decode(&bytes, &vty)
        .map_err(|e| anyhow!("{c}.{ty}: invalid object: {e}"))?;
    println!("{}", gvtext::print(&if swap { v.byteswap() } else { v }));
    Ok(())
}

/// `--print-sizes`: what the commit's objects take, and what of that this repo still lacks.
fn print_sizes(repo: &Repo, cm: &oxtree::Commit) -> Result<()> {
    let sizes = cm
        .object_sizes()
        .map_err(|e| anyhow!("Invalid ostree.sizes metadata: {e}"))?
        .ok_or_else(|| anyhow!("No metadata key ostree.sizes in commit"))?;
    let (mut arch, mut unp, mut new_arch, mut new_unp, mut new_n) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for s in &sizes {
        arch += s.archived;
        unp += s.unpacked;
        let ty = s.ty.unwrap_or(ObjectType::File);
        if !repo.has_object(ty, &s.csum) {
            new_arch += s.archived;
            new_unp += s.unpacked;
            new_n += 1;
        }
    }
    println!(
        "Compressed size (needed/total): {}/{}",
        human_size(new_arch),
        human_size(arch)
    );
    println!(
        "Unpacked size (needed/total): {}/{}",
        human_size(new_unp),
        human_size(unp)
    );
    println!("Number of objects (needed/total): {new_n}/{}", sizes.len());
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
    /// Print extended attributes.
    #[arg(short = 'X', long)]
    pub xattrs: bool,
    /// Print only the file names, each followed by a NUL byte.
    #[arg(long)]
    pub nul_filenames_only: bool,
    pub rev: String,
    pub paths: Vec<String>,
}

pub fn ls(g: &Global, a: LsArgs) -> Result<()> {
    let repo = g.open()?;
    let c = repo.resolve_rev(&a.rev)?;
    // A missing commit fails before any path is inspected (ostree's words, no prefix).
    repo.load_commit(&c)?;
    let paths = if a.paths.is_empty() {
        vec!["/".to_string()]
    } else {
        a.paths.clone()
    };
    let mut out = crate::out::stdout();
    for p in paths {
        // As ostree: a path is looked up from the root (`sub` is `/sub`, and printed so); an
        // empty component (`""`, `/sub/`, `//sub`) names nothing.
        let rel = p.strip_prefix('/').unwrap_or(&p);
        if p != "/" {
            let comps: Vec<&str> = rel.split('/').collect();
            if let Some(i) = comps.iter().position(|c| c.is_empty()) {
                bail!(
                    "Inspecting path '{p}': No such file or directory: /{}",
                    comps[..=i].join("/")
                );
            }
        }
        let abs = format!("/{rel}");
        let (ty, csum, meta) =
            lookup_path(&repo, &c, &abs).with_context(|| format!("Inspecting path '{p}'"))?;
        let norm = abs.trim_end_matches('/');
        ls_line(&repo, &a, &mut out, norm, ty, &csum, &meta)?;
        // (-R lists below a directory even with -d, as ostree)
        if ty == ObjectType::DirTree && (a.recursive || !a.dironly) {
            ls_dir(&repo, &a, &mut out, &csum, norm)?;
        }
    }
    out.flush()?;
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
    if paths.is_empty() {
        bail!("A COMMIT and at least one PATH argument are required");
    }
    let c = repo.resolve_rev(&rev)?;
    let mut out = crate::out::stdout();
    for p in paths {
        // A symlink is followed inside the commit, as ostree's `cat` does: a relative
        // target from the link's directory, an absolute one from the commit's root.
        let mut path = p.clone();
        let mut links = 0;
        let mut fc = loop {
            let (ty, csum, _) = lookup_path(&repo, &c, &path)?;
            if ty != ObjectType::File {
                return Err(super::Hinted {
                    msg: "Can't open directory".into(),
                    hint: format!("{path} is a directory; list it with `oxtree ls {rev} {path}`"),
                }
                .into());
            }
            let fc = repo.read_file(&csum)?;
            if !fc.header.is_symlink() {
                break fc;
            }
            links += 1;
            if links > 40 {
                bail!("{p}: Too many levels of symbolic links");
            }
            path = link_target_path(&path, &fc.header.symlink_target)?;
        };
        std::io::copy(&mut fc.payload, &mut out).with_context(|| format!("reading {p}"))?;
    }
    out.flush()?;
    Ok(())
}

/// The path in a commit that the symlink at `link` names with `target`. Like ostree, a `..`
/// is looked up as a name, which no directory has.
fn link_target_path(link: &str, target: &str) -> Result<String> {
    let mut comps: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut c: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
        c.pop();
        c
    };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(oxtree::Error::NotFound(format!(
                    "No such file or directory: /{}",
                    comps
                        .iter()
                        .chain(&[".."])
                        .copied()
                        .collect::<Vec<_>>()
                        .join("/")
                ))
                .into())
            }
            c => comps.push(c),
        }
    }
    Ok(format!("/{}", comps.join("/")))
}

/// Compare two commits, or a commit and a directory: M modified, D removed, A added.
#[derive(Args)]
pub struct DiffArgs {
    /// Print object statistics of the two commits.
    #[arg(long)]
    pub stats: bool,
    /// Print the file differences (the default without --stats).
    #[arg(long)]
    pub fs_diff: bool,
    /// Leave extended attributes out of the checksums of files on disk.
    #[arg(long)]
    pub no_xattrs: bool,
    /// Take files on disk as owned by this user id.
    #[arg(long, value_name = "UID")]
    pub owner_uid: Option<u32>,
    /// Take files on disk as owned by this group id.
    #[arg(long, value_name = "GID")]
    pub owner_gid: Option<u32>,
    /// REV, or a directory (starting with / or ./); alone, REV is compared with its parent.
    #[arg(value_name = "REV_OR_DIR")]
    pub args: Vec<String>,
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<()> {
    let repo = g.open()?;
    let (src, dst) = match a.args.as_slice() {
        [] => bail!("REV must be specified"),
        [one] => (format!("{one}^"), one.clone()),
        [x, y, ..] => (x.clone(), y.clone()),
    };
    if a.fs_diff || !a.stats {
        let side = |r: &str| -> Result<oxtree::repo::DiffSide> {
            if r.starts_with('/') || r.starts_with("./") {
                let p = PathBuf::from(r);
                if let Err(e) = std::fs::symlink_metadata(&p) {
                    let abs = std::path::absolute(&p).unwrap_or(p);
                    bail!(
                        "Error when getting information for file \u{201c}{}\u{201d}: {}",
                        abs.display(),
                        io_message(&e)
                    );
                }
                Ok(oxtree::repo::DiffSide::Dir(PathBuf::from(r)))
            } else {
                Ok(oxtree::repo::DiffSide::Commit(repo.resolve_rev(r)?))
            }
        };
        let d = repo.diff(
            &side(&src)?,
            &side(&dst)?,
            &oxtree::repo::LocalChecksumOptions {
                ignore_xattrs: a.no_xattrs,
                owner_uid: a.owner_uid,
                owner_gid: a.owner_gid,
            },
        )?;
        let mut out = crate::out::stdout();
        for p in &d.modified {
            writeln!(out, "M    {p}")?;
        }
        for p in &d.removed {
            writeln!(out, "D    {p}")?;
        }
        for p in &d.added {
            writeln!(out, "A    {p}")?;
        }
        out.flush()?;
    }
    if a.stats {
        let resolve = |r: &str| {
            repo.resolve_rev(r)
                .map_err(|_| anyhow!("Invalid refspec {r}"))
        };
        let (ca, cb) = (resolve(&src)?, resolve(&dst)?);
        let objects = |c: &Checksum| -> Result<std::collections::HashSet<(ObjectType, Checksum)>> {
            let mut r = oxtree::repo::Reachable::default();
            repo.traverse_commit(c, 0, &mut r, false)?;
            Ok(r.objects
                .into_iter()
                .filter(|(t, _)| *t != ObjectType::CommitMeta)
                .collect())
        };
        let (oa, ob) = (objects(&ca)?, objects(&cb)?);
        let mut common_size = 0u64;
        let common: Vec<_> = oa.intersection(&ob).collect();
        for (t, c) in &common {
            let p = repo.object_path(*t, c);
            common_size += std::fs::symlink_metadata(&p)
                .with_context(|| format!("stat {}", p.display()))?
                .len();
        }
        println!("[A] Object Count: {}", oa.len());
        println!("[B] Object Count: {}", ob.len());
        println!("Common Object Count: {}", common.len());
        println!("Common Object Size: {}", human_size(common_size));
    }
    Ok(())
}

/// An I/O error as GLib words it (`strerror` without Rust's " (os error N)").
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn print_commit(c: &Checksum, cm: &oxtree::Commit) {
    println!("commit {c}");
    print_commit_fields(cm);
}

/// What `ostree show` prints of a commit after its `commit CSUM` line.
fn print_commit_fields(cm: &oxtree::Commit) {
    if let Some(p) = cm.parent {
        println!("Parent:  {p}");
    }
    println!("ContentChecksum:  {}", cm.content_checksum());
    println!("Date:  {}", timefmt::format(cm.timestamp));
    if let Some(v) = cm.version() {
        println!("Version: {v}");
    }
    // As ostree's dump_commit: every line of subject and body indented.
    let indented = |text: &str| {
        for l in text.split_inclusive('\n') {
            print!("    {l}");
        }
        if !text.ends_with('\n') {
            println!();
        }
    };
    if cm.subject.is_empty() {
        println!("(no subject)");
    } else {
        println!();
        indented(&cm.subject);
    }
    if !cm.body.is_empty() {
        println!();
        indented(&cm.body);
    }
    println!();
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
    a: &LsArgs,
    out: &mut dyn Write,
    path: &str,
    ty: ObjectType,
    csum: &Checksum,
    meta: &Checksum,
) -> Result<()> {
    let p = if path.is_empty() { "/" } else { path };
    if a.nul_filenames_only {
        write!(out, "{p}\0")?;
        return Ok(());
    }
    let xattrs = |x: &oxtree::object::Xattrs| {
        if a.xattrs {
            format!("{{ {} }} ", gvtext::print(&oxtree::object::xattrs_value(x)))
        } else {
            String::new()
        }
    };
    if ty == ObjectType::File {
        let fc = repo.read_file(csum)?;
        let h = &fc.header;
        let c = if h.is_symlink() { 'l' } else { '-' };
        let cs = if a.checksum {
            format!("{csum} ")
        } else {
            String::new()
        };
        let tgt = if h.is_symlink() {
            format!(" -> {}", h.symlink_target)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{c}0{:04o} {} {} {:6} {cs}{}{p}{tgt}",
            h.mode & 0o7777,
            h.uid,
            h.gid,
            fc.size,
            xattrs(&h.xattrs)
        )?;
    } else {
        let dm = repo.load_dirmeta(meta)?;
        let cs = if a.checksum {
            format!("{csum} {meta} ")
        } else {
            String::new()
        };
        writeln!(
            out,
            "d0{:04o} {} {} {:6} {cs}{}{p}",
            dm.mode & 0o7777,
            dm.uid,
            dm.gid,
            0,
            xattrs(&dm.xattrs)
        )?;
    }
    Ok(())
}

fn ls_dir(
    repo: &Repo,
    a: &LsArgs,
    out: &mut dyn Write,
    tree: &Checksum,
    prefix: &str,
) -> Result<()> {
    oxtree::stack::check(|| prefix.to_string())?;
    let dt = repo.load_dirtree(tree)?;
    // ostree lists a directory's files, then its subdirectories, each in dirtree order.
    for (name, c) in &dt.files {
        let p = format!("{prefix}/{name}");
        ls_line(repo, a, out, &p, ObjectType::File, c, &Checksum::default())?;
    }
    for (name, t, m) in &dt.dirs {
        let p = format!("{prefix}/{name}");
        ls_line(repo, a, out, &p, ObjectType::DirTree, t, m)?;
        if a.recursive {
            ls_dir(repo, a, out, t, &p)?;
        }
    }
    Ok(())
}

/// Print a commit's OpenPGP signatures as `ostree show --gpg-verify-remote` does; whether
/// one of them is good.
fn print_gpg_report(repo: &Repo, c: &Checksum, keys: &GpgKeys) -> Result<bool> {
    use oxtree::sign::gpg::GpgStatus;
    let keys = keys.load(repo)?;
    let meta = repo.load_commitmeta_bytes(c)?;
    let data = repo.load_metadata(oxtree::ObjectType::Commit, c)?;
    let report = oxtree::sign::gpg::verify_meta(meta.as_deref(), &data, &keys)?;
    println!(
        "Found {} signature{}:",
        report.len(),
        if report.len() == 1 { "" } else { "s" }
    );
    // As ostree's `describe`, each signature indented; oxtree adds why one is not good.
    let described = super::admin::status::describe_signatures(&keys, meta.as_deref(), &report)?;
    for (r, lines) in report.iter().zip(described) {
        println!();
        for l in lines {
            println!("  {l}");
        }
        if let Some(d) = &r.detail {
            println!("  ({d})");
        }
    }
    Ok(report.iter().any(|r| r.status == GpgStatus::Good))
}

/// Where the keys that check a commit's OpenPGP signatures come from.
enum GpgKeys<'a> {
    /// A remote's keyring (and the global one), as pull uses.
    Remote(&'a str),
    /// The keyrings (`*.gpg`) of a GnuPG home directory, with those of `Global`.
    Homedir(&'a Path),
    /// Every remote's keyring and `/usr/share/ostree/trusted.gpg.d` (ostree's
    /// `OSTREE_ALL_REMOTES`).
    Global,
}

impl GpgKeys<'_> {
    fn load(&self, repo: &Repo) -> Result<Vec<oxtree::pgp::composed::SignedPublicKey>> {
        let mut keys = Vec::new();
        let global = oxtree::sign::gpg::global_keyring_dir();
        let dirs: &[&Path] = match self {
            GpgKeys::Remote(r) => return Ok(repo.remote_gpg_keys(r)?),
            // ostree's OSTREE_ALL_REMOTES: every remote's keyring, and the global one (and
            // the `*.gpg` files of a --gpg-homedir).
            GpgKeys::Homedir(_) | GpgKeys::Global => {
                for r in repo.remote_names() {
                    keys.extend(repo.remote_gpg_keys(&r)?);
                }
                match self {
                    GpgKeys::Homedir(h) => &[h, &global],
                    _ => &[&global],
                }
            }
        };
        for d in dirs {
            keys.extend(oxtree::sign::gpg::keyrings_in_dir(d));
        }
        Ok(keys)
    }
}
