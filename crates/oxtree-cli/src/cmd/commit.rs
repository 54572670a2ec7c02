//! `commit`: directories, tar archives and commits, layered, as a new commit.

use super::Global;
use crate::cmd::checkout::parse_bool;
use crate::cmd::sign::load_gpg_secret_keys;
use crate::progress::with_progress;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use oxtree::gvariant::Value;
use oxtree::repo::{CommitOptions, Devino, RefName, StatOverride, TreeSource};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Commit a new revision.
#[derive(Args)]
pub struct CommitArgs {
    /// Parent commit checksum, or "none".
    #[arg(long, value_name = "COMMIT")]
    pub parent: Option<String>,
    /// One line subject.
    #[arg(short = 's', long)]
    pub subject: Option<String>,
    /// Full description.
    #[arg(short = 'm', long)]
    pub body: Option<String>,
    /// Commit message from FILE path.
    #[arg(short = 'F', long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Use an editor to write the commit message ($OSTREE_EDITOR, $VISUAL, $EDITOR, vi).
    #[arg(short = 'e', long)]
    pub editor: bool,
    /// Branch.
    #[arg(short = 'b', long)]
    pub branch: Option<String>,
    /// Create a commit without writing a ref.
    #[arg(long)]
    pub orphan: bool,
    /// Do not write any ref bindings.
    #[arg(long)]
    pub no_bindings: bool,
    /// Add a ref to ref binding commit metadata.
    #[arg(long, value_name = "BRANCH")]
    pub bind_ref: Vec<String>,
    /// Start from the given commit as a base (no modifiers apply).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Overlay the given argument as a tree (repeatable; later ones overlay earlier ones).
    #[arg(long, value_name = "dir=PATH or tar=TARFILE or ref=COMMIT")]
    pub tree: Vec<String>,
    /// Add a key/value pair to metadata.
    #[arg(long, value_name = "KEY=VALUE")]
    pub add_metadata_string: Vec<String>,
    /// Add a key/value pair to metadata, where the KEY is a string, and VALUE is in GVariant
    /// Text Format.
    #[arg(long, value_name = "KEY=VALUE")]
    pub add_metadata: Vec<String>,
    /// Keep metadata KEY and its associated VALUE from parent.
    #[arg(long, value_name = "KEY")]
    pub keep_metadata: Vec<String>,
    /// Add a key/value pair to detached metadata.
    #[arg(long, value_name = "KEY=VALUE")]
    pub add_detached_metadata_string: Vec<String>,
    /// Set file ownership user id.
    #[arg(long, value_name = "UID", allow_hyphen_values = true)]
    pub owner_uid: Option<String>,
    /// Set file ownership group id.
    #[arg(long, value_name = "GID", allow_hyphen_values = true)]
    pub owner_gid: Option<String>,
    /// Canonicalize permissions in the same way bare-user does for hardlinked files.
    #[arg(long)]
    pub canonical_permissions: bool,
    /// Flag this commit as a bootable OSTree (e.g. contains a Linux kernel).
    #[arg(long)]
    pub bootable: bool,
    /// Ensure executable files are not writable.
    #[arg(long)]
    pub mode_ro_executables: bool,
    /// Do not import extended attributes.
    #[arg(long)]
    pub no_xattrs: bool,
    /// Set SELinux labels based on policy in root filesystem PATH (refused: oxtree does not
    /// label).
    #[arg(long, value_name = "PATH")]
    pub selinux_policy: Option<PathBuf>,
    /// Set SELinux labels based on first --tree argument (refused, as --selinux-policy).
    #[arg(short = 'P', long)]
    pub selinux_policy_from_base: bool,
    /// SELinux labeling epoch: 0 (default) or 1 (also label /usr/etc as /etc); only used
    /// with a policy.
    #[arg(long, value_name = "EPOCH")]
    pub selinux_labeling_epoch: Option<String>,
    /// Optimize for commits of trees composed of hardlinks into the repository.
    #[arg(long)]
    pub link_checkout_speedup: bool,
    /// Assume hardlinked objects are unmodified. Implies --link-checkout-speedup.
    #[arg(short = 'I', long)]
    pub devino_canonical: bool,
    /// When loading tar archives, automatically create parent directories as needed.
    #[arg(long)]
    pub tar_autocreate_parents: bool,
    /// When loading tar archives, use REGEX,REPLACEMENT against path names.
    #[arg(long, value_name = "REGEX,REPLACEMENT")]
    pub tar_pathname_filter: Option<String>,
    /// If the contents are unchanged from previous commit, do nothing.
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// File containing list of modifications to make to permissions: lines `+MODE /path`
    /// (add bits) or `=MODE /path` (set), MODE in decimal.
    #[arg(long, value_name = "PATH")]
    pub statoverride: Option<PathBuf>,
    /// File containing list of files to skip.
    #[arg(long, value_name = "PATH")]
    pub skip_list: Option<PathBuf>,
    /// Consume (delete) content after commit (for local directories).
    #[arg(long)]
    pub consume: bool,
    /// Output more information in a KEY: VALUE format.
    #[arg(long)]
    pub table_output: bool,
    /// GPG Key ID to sign the commit with.
    #[arg(long, value_name = "KEY-ID")]
    pub gpg_sign: Vec<String>,
    /// GPG Homedir to use when looking for keyrings.
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<PathBuf>,
    /// Read --gpg-sign secret keys from this file (armored or binary) instead of GnuPG.
    #[arg(long, value_name = "FILE")]
    pub gpg_key_file: Option<PathBuf>,
    /// Sign the commit with this key (base64 ed25519 secret key; repeatable).
    #[arg(long, value_name = "KEY_ID")]
    pub sign: Vec<String>,
    /// Sign the commit with the keys in this file (one per line).
    #[arg(long, value_name = "PATH")]
    pub sign_from_file: Option<PathBuf>,
    /// Signature type to use (defaults to 'ed25519'; 'dummy' for tests).
    #[arg(long, value_name = "NAME", default_value = "ed25519")]
    pub sign_type: String,
    /// Generate size information along with commit metadata.
    #[arg(long)]
    pub generate_sizes: bool,
    /// Store the composefs digest of the tree in the commit metadata (refused: composefs
    /// is not supported yet).
    #[arg(long)]
    pub generate_composefs_metadata: bool,
    /// Disable fsync (same as --fsync=false).
    #[arg(long)]
    pub disable_fsync: bool,
    /// Specify how to invoke fsync(): true or false.
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// Override the timestamp of the commit.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Directory to commit (the current directory if none; ignored with --tree).
    pub path: Option<PathBuf>,
    /// (Arguments after these are ignored, as ostree ignores them.)
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

/// GOption's integer parsing, with its message.
/// An owner option as ostree reads it (GLib's 32-bit int): a negative value means none
/// given (ostree's default is -1), a value beyond 32 bits is refused.
fn goption_u32(v: &str, opt: &str) -> Result<Option<u32>> {
    let n = v
        .trim()
        .parse::<i64>()
        .map_err(|_| anyhow!("Cannot parse integer value \u{201c}{v}\u{201d} for {opt}"))?;
    let n = i32::try_from(n)
        .map_err(|_| anyhow!("Integer value \u{201c}{v}\u{201d} for {opt} out of range"))?;
    Ok(u32::try_from(n).ok())
}

/// A file an option names, read as ostree reports failures (`openat(PATH): ERROR`).
fn read_option_file(p: &Path) -> Result<String> {
    std::fs::read_to_string(p)
        .map_err(|e| anyhow!("openat({}): {}", p.display(), crate::output::strerror(&e)))
}

/// `KEY=VALUE` as ostree splits it (its error text).
fn key_value(kv: &str) -> Result<(&str, &str)> {
    kv.split_once('=')
        .ok_or_else(|| anyhow!("Missing '=' in KEY=VALUE metadata '{kv}'"))
}

/// The message template ostree gives the editor.
fn editor_template(branch: Option<&str>) -> String {
    let mut s = String::from(
        "\n# Please enter the commit message for your changes. The first line will\n\
         # become the subject, and the remainder the body. Lines starting\n\
         # with '#' will be ignored, and an empty message aborts the commit.",
    );
    if let Some(b) = branch {
        s.push_str("\n#\n# Branch: ");
        s.push_str(b);
    }
    s.push('\n');
    s
}

/// ostree's choice of editor: $OSTREE_EDITOR, then $VISUAL (unless the terminal is dumb),
/// then $EDITOR, then vi (unless the terminal is dumb).
fn editor_command() -> Result<String> {
    let term = std::env::var("TERM").ok();
    let dumb = term.as_deref().is_none_or(|t| t == "dumb");
    let get = |k: &str| std::env::var(k).ok();
    let ed = get("OSTREE_EDITOR")
        .or_else(|| if dumb { None } else { get("VISUAL") })
        .or_else(|| get("EDITOR"));
    match ed {
        Some(e) => Ok(e),
        None if dumb => bail!("Terminal is dumb, but EDITOR unset"),
        None => Ok("vi".into()),
    }
}

/// `--editor`: the message written in an editor, split as ostree splits it: `#` lines
/// dropped, the first non-empty line the subject, the rest (from its first non-empty line)
/// the body, trailing blanks trimmed.
fn edit_message(branch: Option<&str>) -> Result<(String, String)> {
    let editor = editor_command()?;
    let mut f = tempfile::Builder::new()
        .prefix(".")
        .tempfile()
        .map_err(|e| anyhow!("creating the message file: {e}"))?;
    std::io::Write::write_all(&mut f, editor_template(branch).as_bytes())?;
    let path = f.path().to_path_buf();
    let quoted = format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} {quoted}"))
        .status()
        .map_err(|e| anyhow!("There was a problem with the editor '{editor}': {e}"))?;
    if !status.success() {
        let code = status.code().unwrap_or(-1);
        bail!(
            "There was a problem with the editor '{editor}'Child process exited with code {code}"
        );
    }
    let text = std::fs::read_to_string(&path)?;
    let mut subject: Option<String> = None;
    let mut body: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end();
        if line.starts_with('#') || (subject.is_none() && line.is_empty()) {
            continue;
        }
        match (&subject, &mut body) {
            (None, _) => subject = Some(line.to_string()),
            (Some(_), None) if line.is_empty() => {}
            (Some(_), None) => body = Some(line.to_string()),
            (Some(_), Some(b)) => {
                b.push('\n');
                b.push_str(line);
            }
        }
    }
    let Some(subject) = subject else {
        bail!("Aborting commit due to empty commit subject.");
    };
    Ok((
        subject,
        body.map(|b| b.trim_end().to_string()).unwrap_or_default(),
    ))
}

/// `--tar-pathname-filter=REGEX,REPLACEMENT`; GLib's `\N`/`\g<N>` group references in the
/// replacement become the regex crate's `${N}`.
fn pathname_filter(spec: &str) -> Result<(regex::Regex, String)> {
    let (re, rep) = spec
        .split_once(',')
        .ok_or_else(|| anyhow!("Missing ',' in --tar-pathname-filter"))?;
    let regex = regex::Regex::new(re).map_err(|e| {
        let why = match e {
            regex::Error::Syntax(s) => s
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .trim_start_matches("error: ")
                .to_string(),
            e => e.to_string(),
        };
        anyhow!("--tar-pathname-filter: Error while compiling regular expression \u{2018}{re}\u{2019}: {why}")
    })?;
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('g') => {
                    chars.next();
                    let mut name = String::new();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        for n in chars.by_ref() {
                            if n == '>' {
                                break;
                            }
                            name.push(n);
                        }
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some(o) => {
                    chars.next();
                    out.push(o);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Ok((regex, out))
}

/// ostree's checksum argument check (`--parent`).
fn checksum_arg(v: &str) -> Result<oxtree::Checksum> {
    if v.len() != 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("Invalid rev {v}");
    }
    v.parse().map_err(|_| anyhow!("Invalid rev {v}"))
}

pub fn run(g: &Global, a: CommitArgs) -> Result<()> {
    // Refused rows first: nothing is read or written for them. A policy root without a
    // policy labels nothing, in ostree as here (image scripts pass it unconditionally).
    if let Some(root) = &a.selinux_policy {
        super::selinux::check_no_policy_in_dir(root, "--selinux-policy")?;
    }
    if let Some(e) = &a.selinux_labeling_epoch {
        // Only meaningful with a policy (refused above); the value is still checked.
        if e != "0" && e != "1" {
            bail!("Unknown SELinux labeling epoch {e}: use 0 or 1");
        }
    }
    if a.generate_composefs_metadata {
        bail!("--generate-composefs-metadata: composefs is not supported by oxtree yet; commit without it");
    }
    let owner_uid = a
        .owner_uid
        .as_deref()
        .map(|v| goption_u32(v, "--owner-uid"))
        .transpose()?
        .flatten();
    let owner_gid = a
        .owner_gid
        .as_deref()
        .map(|v| goption_u32(v, "--owner-gid"))
        .transpose()?
        .flatten();
    let fsync = match (&a.fsync, a.disable_fsync) {
        (_, true) => Some(false),
        (Some(f), false) => Some(parse_bool(f)?),
        (None, false) => None,
    };
    let tar_filter = a
        .tar_pathname_filter
        .as_deref()
        .map(pathname_filter)
        .transpose()?;
    if a.branch.is_none() && !a.orphan {
        bail!("A branch must be specified with --branch, or use --orphan");
    }
    let branch = a
        .branch
        .as_deref()
        .map(|b| RefName::parse(b).map_err(|_| anyhow!("Invalid refspec {b}")))
        .transpose()?;
    let parent_arg = match a.parent.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(p) => Some(Some(checksum_arg(p)?)),
    };
    let mut repo = g.open()?;
    if let Some(f) = fsync {
        repo.set_fsync(f);
    }

    let mut sources = Vec::new();
    for t in &a.tree {
        let (kind, value) = t
            .split_once('=')
            .ok_or_else(|| anyhow!("Missing type in tree specification '{t}'"))?;
        sources.push(match kind {
            "dir" => TreeSource::Dir(PathBuf::from(value)),
            "tar" => TreeSource::Tar(PathBuf::from(value)),
            "ref" => TreeSource::Ref(repo.resolve_rev(value)?),
            k => bail!("Invalid tree type specification '{k}'"),
        });
    }
    // Like ostree: without --tree, the PATH argument or else the current directory.
    if sources.is_empty() {
        sources.push(TreeSource::Dir(
            a.path.clone().unwrap_or_else(|| PathBuf::from(".")),
        ));
    }
    let base = a.base.as_deref().map(|b| repo.resolve_rev(b)).transpose()?;

    let bind = if a.orphan { None } else { branch.as_ref() };
    // Like ostree: without --parent, a commit to an existing branch follows its head,
    // resolved as a revision (so a branch only a remote has, `refs/remotes/R/BRANCH`, is
    // the parent too).
    let parent = match parent_arg {
        Some(p) => p,
        None => match bind {
            Some(b) if b.remote.is_none() => repo.resolve_rev_opt(&b.name)?,
            Some(b) => repo.read_ref(b)?,
            None => None,
        },
    };

    // -P labels with the policy of the branch's current commit: none there, nothing to do.
    if a.selinux_policy_from_base {
        if let Some(p) = parent {
            super::selinux::check_no_policy_in_commit(&repo, &p)?;
        }
    }

    let (mut subject, mut body) = (a.subject.clone().unwrap_or_default(), a.body.clone());
    if let Some(f) = &a.body_file {
        body = Some(read_option_file(f)?);
    }
    if a.editor {
        let (s, b) = edit_message(if a.orphan { None } else { a.branch.as_deref() })?;
        subject = s;
        body = Some(b);
    }

    // Metadata in ostree's order: strings, variants, kept keys, then the bindings.
    let mut metadata = Vec::new();
    // (ostree refuses an empty key here, not in the detached metadata.)
    let commit_key_value = |kv| match key_value(kv)? {
        ("", _) => bail!("Empty metadata key"),
        kv => Ok(kv),
    };
    for kv in &a.add_metadata_string {
        let (k, v) = commit_key_value(kv)?;
        metadata.push((k.to_string(), Value::str(v)));
    }
    for kv in &a.add_metadata {
        let (k, v) = commit_key_value(kv)?;
        metadata.push((
            k.to_string(),
            gvtext::parse(v).map_err(|e| anyhow!("Parsing {kv}: {e}"))?,
        ));
    }
    if !a.keep_metadata.is_empty() {
        let Some(p) = parent else {
            bail!("Either --branch or --parent must be specified when using --keep-metadata");
        };
        let pc = repo.load_commit(&p)?;
        for k in &a.keep_metadata {
            let v = pc
                .meta(k)
                .ok_or_else(|| anyhow!("Missing metadata key '{k}' from commit '{p}'"))?;
            metadata.push((k.clone(), v.clone()));
        }
    }
    if !a.no_bindings {
        let mut binds: Vec<String> = a.branch.iter().cloned().collect();
        binds.extend(a.bind_ref.iter().cloned());
        binds.sort();
        binds.dedup();
        // Also with no ref at all (--orphan): ostree 2022.7 writes the key with an empty
        // list then, and the commit's checksum depends on it.
        metadata.push((
            "ostree.ref-binding".into(),
            Value::Array(
                oxtree::gvariant::Type::Str,
                binds.into_iter().map(Value::Str).collect(),
            ),
        ));
        if let Some(cid) = repo.config().get("core", "collection-id") {
            metadata.push(("ostree.collection-binding".into(), Value::str(cid)));
        }
    }
    let mut detached_metadata = Vec::new();
    for kv in &a.add_detached_metadata_string {
        let (k, v) = key_value(kv)?;
        detached_metadata.push((k.to_string(), Value::str(v)));
    }

    let mut opts = CommitOptions {
        subject,
        body: body.unwrap_or_default(),
        timestamp: match a.timestamp.as_deref() {
            Some(t) => Some(timefmt::parse(t).map_err(|e| anyhow!(e))?),
            None => source_date_epoch()?,
        },
        parent,
        metadata,
        detached_metadata,
        base,
        owner_uid,
        owner_gid,
        canonical_permissions: a.canonical_permissions,
        consume: a.consume,
        no_xattrs: a.no_xattrs,
        mode_ro_executables: a.mode_ro_executables,
        generate_sizes: a.generate_sizes,
        bootable: a.bootable,
        skip_if_unchanged: a.skip_if_unchanged,
        tar_autocreate_parents: a.tar_autocreate_parents,
        tar_pathname_filter: tar_filter,
        devino: if a.devino_canonical {
            Devino::Canonical
        } else if a.link_checkout_speedup {
            Devino::Speedup
        } else {
            Devino::Off
        },
        progress: Some(std::sync::Arc::new(oxtree::progress::Progress::default())),
        ..Default::default()
    };
    if let Some(f) = &a.skip_list {
        opts.skip_list = read_option_file(f)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<HashSet<_>>();
    }
    if let Some(f) = &a.statoverride {
        opts.statoverride = parse_statoverride(&read_option_file(f)?)?;
    }
    let mut keys = a.sign.clone();
    if let Some(f) = &a.sign_from_file {
        keys.extend(oxtree::sign::read_key_lines(f)?);
    }
    if !keys.is_empty() {
        match a.sign_type.as_str() {
            "ed25519" => {
                opts.ed25519_keys = keys
                    .iter()
                    .map(|k| oxtree::sign::parse_secret_key(k))
                    .collect::<oxtree::Result<_>>()?
            }
            "dummy" => {
                oxtree::sign::dummy::check_enabled()?;
                opts.dummy_keys = keys;
            }
            _ => bail!("Requested signature type is not implemented"),
        }
    }
    // OpenPGP keys are loaded first and the signature is made inside the commit's
    // transaction, before the branch moves (as ostree): a bad key id fails the commit and
    // leaves the branch where it was.
    for id in &a.gpg_sign {
        opts.gpg_keys.push((
            id.clone(),
            load_gpg_secret_keys(id, a.gpg_homedir.as_deref(), a.gpg_key_file.as_deref())?,
        ));
    }
    let progress = opts.progress.clone().unwrap_or_default();
    let res = with_progress("committing files", &progress, true, || {
        repo.commit_trees(&sources, branch.as_ref(), &opts)
    })
    .inspect_err(|e| {
        // ostree lists each one before its error line.
        match e {
            oxtree::Error::UnmatchedSkipList(paths) => {
                for p in paths {
                    eprintln!("Unmatched skip-list path: {p}");
                }
            }
            oxtree::Error::UnmatchedStatOverride(paths) => {
                for p in paths {
                    eprintln!("Unmatched statoverride path: {p}");
                }
            }
            _ => {}
        }
    })?;
    if a.consume {
        consume(&sources)?;
    }
    if a.table_output {
        let st = &res.stats;
        println!("Commit: {}", res.commit);
        println!("Metadata Total: {}", st.metadata_total);
        println!("Metadata Written: {}", st.metadata_written);
        println!("Content Total: {}", st.content_total);
        println!("Content Written: {}", st.content_written);
        println!("Content Cache Hits: {}", st.content_cache_hits);
        println!("Content Bytes Written: {}", st.content_bytes_written);
    } else {
        println!("{}", res.commit);
    }
    Ok(())
}

fn parse_statoverride(text: &str) -> Result<HashMap<String, StatOverride>> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (m, p) = line
            .split_once(' ')
            .ok_or_else(|| anyhow!("Malformed statoverride file (no space found)"))?;
        // ostree reads the mode with g_ascii_strtod: decimal, what follows a number ignored,
        // 0 when there is none.
        let ov = if let Some(v) = m.strip_prefix('=') {
            StatOverride::Set(strtod_u32(v))
        } else {
            StatOverride::Add(strtod_u32(m))
        };
        out.insert(p.to_string(), ov);
    }
    Ok(out)
}

/// A mode as `g_ascii_strtod` reads it and ostree casts it: the leading decimal number
/// (sign and fraction allowed), 0 when there is none.
fn strtod_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut end = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'.') {
        end += 1;
    }
    let v: f64 = s[..end].parse().unwrap_or(0.0);
    // (guint32)(gint32)value
    (v as i32) as u32
}

/// `--consume`: the committed directories are deleted (their contents, and the directory
/// itself unless it is `.`), as ostree consumes them; tar archives stay.
fn consume(sources: &[TreeSource]) -> Result<()> {
    for s in sources {
        let TreeSource::Dir(d) = s else { continue };
        for e in std::fs::read_dir(d).map_err(|e| anyhow!("{}: {e}", d.display()))? {
            let p = e?.path();
            let st = std::fs::symlink_metadata(&p)?;
            if st.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            }
            .map_err(|e| anyhow!("consuming {}: {e}", p.display()))?;
        }
        let is_dot = d
            .components()
            .next_back()
            .is_some_and(|c| matches!(c, std::path::Component::CurDir))
            || d.as_os_str() == ".";
        if !is_dot {
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), as ostree reads it when `--timestamp` is not
/// given: leading decimal digits as `strtoll` takes them; none is ostree's "Failed to
/// convert SOURCE_DATE_EPOCH", more than 63 bits its "Numerical result out of range".
fn source_date_epoch() -> Result<Option<u64>> {
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let v = v.to_string_lossy();
    let t = v.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        bail!("Failed to convert SOURCE_DATE_EPOCH");
    }
    // (a signed 64-bit value, as g_ascii_strtoll reads it)
    digits
        .parse::<i64>()
        .map(|v| Some(v as u64))
        .map_err(|_| anyhow!("Parsing SOURCE_DATE_EPOCH: Numerical result out of range"))
}
