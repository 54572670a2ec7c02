//! `remote`: add, delete, list, show-url, gpg-import, gpg-list-keys, add-cookie,
//! delete-cookie, list-cookies, refs, summary — with ostree's arguments, output and messages.

use super::Global;
use crate::cmd::summary::{print_summary, show_summary};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use oxtree::Repo;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Add a remote repository: NAME [metalink=|mirrorlist=]URL [BRANCH…].
    Add(AddArgs),
    /// Delete a remote repository.
    Delete(DeleteArgs),
    /// List remote repository names.
    List(ListArgs),
    /// Import GPG keys.
    GpgImport(GpgImportArgs),
    /// Show remote GPG keys.
    GpgListKeys(NameArgs),
    /// Add a cookie to remote: NAME DOMAIN PATH COOKIE_NAME VALUE.
    AddCookie(CookieArgs),
    /// Remove one cookie from remote: NAME DOMAIN PATH COOKIE_NAME.
    DeleteCookie(CookieArgs),
    /// Show remote repository cookies.
    ListCookies(NameArgs),
    /// Show remote repository URL.
    ShowUrl(NameArgs),
    /// List remote refs.
    Refs(RefsArgs),
    /// Show remote summary.
    Summary(SummaryArgs),
}

pub fn run(g: &Global, cmd: RemoteCmd) -> Result<()> {
    match cmd {
        RemoteCmd::Add(a) => add(g, a),
        RemoteCmd::Delete(a) => delete(g, a),
        RemoteCmd::List(a) => list(g, a),
        RemoteCmd::GpgImport(a) => gpg_import(g, a),
        RemoteCmd::GpgListKeys(a) => gpg_list_keys(g, a),
        RemoteCmd::AddCookie(a) => add_cookie(g, a),
        RemoteCmd::DeleteCookie(a) => delete_cookie(g, a),
        RemoteCmd::ListCookies(a) => list_cookies(g, a),
        RemoteCmd::ShowUrl(a) => {
            let name = a.name()?;
            println!("{}", g.open()?.remote_url(name)?);
            Ok(())
        }
        RemoteCmd::Refs(a) => refs(g, a),
        RemoteCmd::Summary(a) => summary(g, a),
    }
}

/// Commands that take a remote NAME (ostree checks it itself, with its own message).
#[derive(Args)]
pub struct NameArgs {
    pub args: Vec<String>,
}

impl NameArgs {
    fn name(&self) -> Result<&str> {
        self.args
            .first()
            .map(String::as_str)
            .ok_or_else(|| anyhow!("NAME must be specified"))
    }
}

/// The repository of `--sysroot=PATH` (`PATH/ostree/repo`), else the usual one.
fn open_repo(g: &Global, sysroot: Option<&PathBuf>) -> Result<Repo> {
    match sysroot {
        Some(s) => {
            if !s.is_dir() {
                bail!("opendir({}): No such file or directory", s.display());
            }
            Ok(oxtree::sysroot::Sysroot::new(s).repo()?)
        }
        None => g.open(),
    }
}

/// Add a remote: NAME [metalink=|mirrorlist=]URL [BRANCH…].
#[derive(Args)]
pub struct AddArgs {
    /// Set config option KEY=VALUE for remote.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Disable GPG verification.
    #[arg(long)]
    pub no_gpg_verify: bool,
    /// Disable signature verification.
    #[arg(long)]
    pub no_sign_verify: bool,
    /// Verify signatures using KEYTYPE=inline:PUBKEY or KEYTYPE=file:/path/to/key.
    #[arg(long, value_name = "KEYTYPE=[inline|file]:PUBKEY")]
    pub sign_verify: Vec<String>,
    /// Do nothing if the provided remote exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// Replace the provided remote if it exists.
    #[arg(long)]
    pub force: bool,
    /// Import GPG key from FILE.
    #[arg(long, value_name = "FILE")]
    pub gpg_import: Option<PathBuf>,
    /// This remote has content not fetched via libostree.
    #[arg(long, value_name = "NAME")]
    pub custom_backend: Option<String>,
    /// Use URL when fetching content.
    #[arg(long, value_name = "URL")]
    pub contenturl: Option<String>,
    /// Globally unique ID for this repository as a collection of refs for redistribution to
    /// other repositories.
    #[arg(long, value_name = "COLLECTION-ID")]
    pub collection_id: Option<String>,
    /// Use sysroot at PATH (overrides --repo).
    #[arg(long, value_name = "PATH")]
    pub sysroot: Option<PathBuf>,
    /// NAME URL [BRANCH…].
    pub args: Vec<String>,
}

pub fn add(g: &Global, a: AddArgs) -> Result<()> {
    // A remote whose content something else fetches (--custom-backend) needs no URL.
    let (name, url, branches) = match a.args.as_slice() {
        [name, url, branches @ ..] => (name, url.as_str(), branches),
        [name] if a.custom_backend.is_some() => (name, "", &[][..]),
        _ => bail!("NAME and URL must be specified"),
    };
    let set = a
        .set
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("Missing '=' in KEY=VALUE for --set"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut repo = open_repo(g, a.sysroot.as_ref())?;
    repo.remote_add(
        name,
        url,
        &oxtree::repo::RemoteAddOptions {
            branches: branches.to_vec(),
            set,
            no_gpg_verify: a.no_gpg_verify,
            if_not_exists: a.if_not_exists,
            force: a.force,
            contenturl: a.contenturl,
            custom_backend: a.custom_backend,
            collection_id: a.collection_id,
            no_sign_verify: a.no_sign_verify,
            sign_verify: a.sign_verify,
        },
    )?;
    if let Some(f) = a.gpg_import {
        let data = read_key_file(&f)?;
        let n = repo.remote_gpg_import_data(name, &data, &[])?;
        print_imported(n, name);
    }
    Ok(())
}

/// Delete a remote.
#[derive(Args)]
pub struct DeleteArgs {
    /// Do nothing if the provided remote does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// Use sysroot at PATH (overrides --repo).
    #[arg(long, value_name = "PATH")]
    pub sysroot: Option<PathBuf>,
    pub args: Vec<String>,
}

pub fn delete(g: &Global, a: DeleteArgs) -> Result<()> {
    let Some(name) = a.args.first() else {
        bail!("NAME must be specified");
    };
    open_repo(g, a.sysroot.as_ref())?.remote_delete(name, a.if_exists)?;
    Ok(())
}

/// List remotes.
#[derive(Args)]
pub struct ListArgs {
    /// Show remote URLs in list.
    #[arg(short = 'u', long = "show-urls")]
    pub show_urls: bool,
}

pub fn list(g: &Global, a: ListArgs) -> Result<()> {
    let repo = g.open()?;
    let names = repo.remote_names();
    if !a.show_urls {
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    let w = names.iter().map(String::len).max().unwrap_or(0);
    for n in names {
        println!("{n:<w$}  {}", repo.remote_url(&n)?);
    }
    Ok(())
}

fn print_imported(n: usize, name: &str) {
    println!(
        "Imported {n} GPG key{} to remote \"{name}\"",
        if n == 1 { "" } else { "s" }
    );
}

fn read_key_file(f: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(f).map_err(|e| {
        anyhow!(
            "Error opening file {}: {}",
            f.display(),
            super::show::io_message(&e)
        )
    })
}

/// Import OpenPGP public keys (binary or armored) into a remote's keyring: from keyring
/// files, standard input, or (neither) the user's GnuPG keyring; only KEY-IDs if given.
#[derive(Args)]
pub struct GpgImportArgs {
    /// Import keys from a keyring file (repeatable).
    #[arg(short = 'k', long = "keyring", value_name = "FILE")]
    pub keyring: Vec<PathBuf>,
    /// Import keys from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// NAME [KEY-ID…].
    pub args: Vec<String>,
}

pub fn gpg_import(g: &Global, a: GpgImportArgs) -> Result<()> {
    let Some((name, key_ids)) = a.args.split_first() else {
        bail!("NAME must be specified");
    };
    if a.stdin && !a.keyring.is_empty() {
        bail!("--keyring and --stdin are mutually exclusive");
    }
    let repo = g.open()?;
    let mut data = Vec::new();
    if a.stdin {
        use std::io::Read;
        std::io::stdin().read_to_end(&mut data)?;
    } else if a.keyring.is_empty() {
        data = user_keyring_export(key_ids)?;
    }
    for k in &a.keyring {
        data.extend(read_key_file(k)?);
    }
    let n = repo.remote_gpg_import_data(name, &data, key_ids)?;
    print_imported(n, name);
    Ok(())
}

/// The public keys of the user's GnuPG keyring (`gpg --export`), as ostree's GPGME default.
fn user_keyring_export(key_ids: &[String]) -> Result<Vec<u8>> {
    let out = std::process::Command::new("gpg")
        .args(["--batch", "--export"])
        .args(key_ids)
        .output()
        .map_err(|e| anyhow!("GPG: Unable to export keys: running gpg: {e}"))?;
    Ok(out.stdout)
}

/// GLib's `%c` in the C locale, UTC: `Thu Dec  3 10:38:01 2026`, where a one-digit day is
/// padded with a FIGURE SPACE (U+2007), as GLib does.
fn glib_ctime(t: u64) -> String {
    let z = jiff::Timestamp::from_second(i64::try_from(t).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_zoned(jiff::tz::TimeZone::UTC);
    let day = z.day();
    format!(
        "{}{}{day} {}",
        z.strftime("%a %b"),
        if day < 10 { " \u{2007}" } else { " " },
        z.strftime("%H:%M:%S %Y")
    )
}

pub fn gpg_list_keys(g: &Global, a: NameArgs) -> Result<()> {
    // Without a NAME: the global keyrings, as ostree.
    let name = a.args.first().map(String::as_str);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expiry = |indent: &str, e: Option<u64>| {
        if let Some(e) = e {
            let word = if e <= now { "Expired" } else { "Expires" };
            println!("{indent}{word}: {}", glib_ctime(e));
        }
    };
    let flag = |revoked: bool| if revoked { " (revoked)" } else { "" };
    for k in g.open()?.remote_gpg_key_info(name)? {
        println!("Key: {}{}", k.fingerprint, flag(k.revoked));
        println!("  Created: {}", glib_ctime(k.created));
        expiry("  ", k.expires);
        for u in &k.uids {
            println!("  UID: {}{}", u.uid, flag(u.revoked));
            let (adv, direct) = u.wkd_urls.clone().unwrap_or_default();
            println!("  Advanced update URL: {adv}");
            println!("  Direct update URL: {direct}");
        }
        for s in &k.subkeys {
            // (a subkey of a revoked key is revoked too, as GPGME lists it)
            println!(
                "  Subkey: {}{}",
                s.fingerprint,
                flag(s.revoked || k.revoked)
            );
            println!("    Created: {}", glib_ctime(s.created));
            expiry("    ", s.expires);
        }
    }
    Ok(())
}

/// NAME DOMAIN PATH COOKIE_NAME [VALUE].
#[derive(Args)]
pub struct CookieArgs {
    pub args: Vec<String>,
}

pub fn add_cookie(g: &Global, a: CookieArgs) -> Result<()> {
    let [name, domain, path, cookie, value, ..] = a.args.as_slice() else {
        bail!("NAME, DOMAIN, PATH, COOKIE_NAME and VALUE must be specified");
    };
    // Expires 25 years from now, as ostree sets it.
    let expires = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .checked_add(jiff::Span::new().years(25))
        .map(|z| z.timestamp().as_second())
        .unwrap_or(i64::MAX);
    g.open()?.remote_add_cookie(
        name,
        domain,
        path,
        cookie,
        value,
        u64::try_from(expires).unwrap_or(0),
    )?;
    Ok(())
}

pub fn delete_cookie(g: &Global, a: CookieArgs) -> Result<()> {
    let [name, domain, path, cookie, ..] = a.args.as_slice() else {
        bail!("NAME, DOMAIN, PATH and COOKIE_NAME must be specified");
    };
    g.open()?.remote_delete_cookie(name, domain, path, cookie)?;
    Ok(())
}

pub fn list_cookies(g: &Global, a: NameArgs) -> Result<()> {
    let name = a.name()?;
    for c in g.open()?.remote_list_cookies(name)? {
        println!("--");
        println!("Domain: {}", c.domain);
        println!("Path: {}", c.path);
        println!("Name: {}", c.name);
        println!("Secure: {}", if c.secure { "TRUE" } else { "FALSE" });
        if let Ok(t) = jiff::Timestamp::from_second(i64::try_from(c.expires).unwrap_or(i64::MAX)) {
            println!(
                "Expires: {}",
                t.to_zoned(jiff::tz::TimeZone::UTC)
                    .strftime("%Y-%m-%d %H:%M:%S +0000")
            );
        }
        println!("Value: {}", c.value);
    }
    Ok(())
}

/// `--cache-dir=DIR` must name a directory (ostree keeps summaries there; oxtree fetches
/// the summary each time, verified, and needs no cache).
fn check_cache_dir(d: Option<&PathBuf>) -> Result<()> {
    if let Some(d) = d {
        if !d.is_dir() {
            bail!("opendir({}): No such file or directory", d.display());
        }
    }
    Ok(())
}

/// List the refs a remote's summary offers (verified as a pull verifies it).
#[derive(Args)]
pub struct RefsArgs {
    /// Use custom cache dir.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Show the commit checksum beside each ref (tab-separated).
    #[arg(short = 'r', long)]
    pub revision: bool,
    pub args: Vec<String>,
}

pub fn refs(g: &Global, a: RefsArgs) -> Result<()> {
    let name = a
        .args
        .first()
        .ok_or_else(|| anyhow!("NAME must be specified"))?;
    check_cache_dir(a.cache_dir.as_ref())?;
    let s = g.open()?.remote_summary(name)?;
    let mut refs: Vec<_> = s.refs.iter().collect();
    refs.sort_by(|x, y| x.name.cmp(&y.name));
    for r in refs {
        if a.revision {
            println!("{name}:{}\t{}", r.name, r.checksum);
        } else {
            println!("{name}:{}", r.name);
        }
    }
    Ok(())
}

/// Show a remote's summary (verified as a pull verifies it).
#[derive(Args)]
pub struct SummaryArgs {
    /// Use custom cache dir.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Show raw variant data.
    #[arg(long)]
    pub raw: bool,
    /// List the keys of the summary's metadata.
    #[arg(long)]
    pub list_metadata_keys: bool,
    /// Print the value of a summary metadata key.
    #[arg(long, value_name = "KEY")]
    pub print_metadata_key: Option<String>,
    pub args: Vec<String>,
}

pub fn summary(g: &Global, a: SummaryArgs) -> Result<()> {
    let name = a
        .args
        .first()
        .ok_or_else(|| anyhow!("NAME must be specified"))?;
    check_cache_dir(a.cache_dir.as_ref())?;
    let (s, gpg) = match g.open()?.remote_summary_signed(name) {
        // (ostree's words differ from `remote refs`' here.)
        Err(oxtree::Error::GpgSummaryUnsigned { url }) => {
            return Err(super::Hinted {
                msg: "GPG verification enabled, but no summary signatures found (use gpg-verify-summary=false in remote config to disable)".into(),
                hint: format!("{url} has no OpenPGP signature"),
            }
            .into())
        }
        Err(e @ oxtree::Error::NoSummary { .. }) => {
            return Err(super::Hinted {
                msg: "Remote server has no summary file".into(),
                hint: e.hint().unwrap_or_default(),
            }
            .into())
        }
        r => r?,
    };
    if a.raw || a.list_metadata_keys || a.print_metadata_key.is_some() {
        return show_summary(
            &s.encode(),
            a.raw,
            a.list_metadata_keys,
            a.print_metadata_key.as_deref(),
            &format!("remote {name}"),
        );
    }
    print_summary(&s);
    // As ostree: with gpg-verify-summary on, the summary's signatures after it.
    if let Some((summary, sig, keys)) = gpg {
        let report = oxtree::sign::gpg::verify_meta(sig.as_deref(), &summary, &keys)?;
        println!();
        println!(
            "GPG: Verification enabled, found {} signature{}:",
            report.len(),
            if report.len() == 1 { "" } else { "s" }
        );
        let described = super::admin::status::describe_signatures(&keys, sig.as_deref(), &report)?;
        for lines in described {
            println!();
            for l in lines {
                println!("  {l}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glib_ctime_pads_with_figure_space() {
        assert_eq!(
            super::glib_ctime(1_796_294_281),
            "Thu Dec \u{2007}3 10:38:01 2026"
        );
        assert_eq!(
            super::glib_ctime(1_859_366_281),
            "Sat Dec \u{2007}2 10:38:01 2028"
        );
    }
}
