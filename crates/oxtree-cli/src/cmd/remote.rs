//! `remote`: add, delete, list, gpg-import, show-url, refs, summary.

use super::Global;
use crate::cmd::summary::print_summary;
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RemoteCmd {
    Add(AddArgs),
    Delete(DeleteArgs),
    List(ListArgs),
    GpgImport(GpgImportArgs),
    ShowUrl(ShowUrlArgs),
    Refs(RefsArgs),
    Summary(SummaryArgs),
}

pub fn run(g: &Global, cmd: RemoteCmd) -> Result<()> {
    match cmd {
        RemoteCmd::Add(a) => add(g, a),
        RemoteCmd::Delete(a) => g
            .open()?
            .remote_delete(&a.name, a.if_exists)
            .map_err(Into::into),
        RemoteCmd::List(a) => list(g, a),
        RemoteCmd::GpgImport(a) => gpg_import(g, a),
        RemoteCmd::ShowUrl(a) => {
            println!("{}", g.open()?.remote_url(&a.name)?);
            Ok(())
        }
        RemoteCmd::Refs(a) => refs(g, a),
        RemoteCmd::Summary(a) => summary(g, a),
    }
}

/// Add a remote: NAME URL [BRANCH…].
#[derive(Args)]
pub struct AddArgs {
    /// Do not verify GPG signatures (needed until oxtree verifies signatures).
    #[arg(long)]
    pub no_gpg_verify: bool,
    /// Do nothing if the remote exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// Set a config option KEY=VALUE for the remote.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Import OpenPGP public keys from FILE into the remote's keyring.
    #[arg(long, value_name = "FILE")]
    pub gpg_import: Option<PathBuf>,
    pub name: String,
    pub url: String,
    pub branches: Vec<String>,
}

pub fn add(g: &Global, a: AddArgs) -> Result<()> {
    let AddArgs {
        no_gpg_verify,
        if_not_exists,
        set,
        gpg_import,
        name,
        url,
        branches,
    } = a;
    let mut repo = g.open()?;
    let set = set
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--set {kv:?}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    repo.remote_add(
        &name,
        &url,
        &oxtree::repo::RemoteAddOptions {
            branches,
            set,
            no_gpg_verify,
            if_not_exists,
        },
    )?;
    if let Some(f) = gpg_import {
        let n = repo.remote_gpg_import(&name, &f)?;
        println!(
            "Imported {n} GPG key{} to remote \"{name}\"",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// Delete a remote.
#[derive(Args)]
pub struct DeleteArgs {
    /// Do nothing if the remote does not exist.
    #[arg(long)]
    pub if_exists: bool,
    pub name: String,
}

/// List remotes.
#[derive(Args)]
pub struct ListArgs {
    /// Show URLs too.
    #[arg(short = 'u', long = "show-urls")]
    pub show_urls: bool,
}

pub fn list(g: &Global, a: ListArgs) -> Result<()> {
    let ListArgs { show_urls } = a;
    let repo = g.open()?;
    let names = repo.remote_names();
    let w = names.iter().map(String::len).max().unwrap_or(0);
    for n in names {
        if show_urls {
            println!(
                "{n:<w$}  {}",
                repo.remote_option(&n, "url").unwrap_or_default()
            );
        } else {
            println!("{n}");
        }
    }
    Ok(())
}

/// Import OpenPGP public keys (binary or armored) into a remote's keyring.
#[derive(Args)]
pub struct GpgImportArgs {
    /// Key file to import (repeatable).
    #[arg(short = 'k', long = "keyring", value_name = "FILE", required = true)]
    pub keyring: Vec<PathBuf>,
    pub name: String,
}

pub fn gpg_import(g: &Global, a: GpgImportArgs) -> Result<()> {
    let GpgImportArgs { keyring, name } = a;
    let repo = g.open()?;
    let mut n = 0;
    for k in &keyring {
        n += repo.remote_gpg_import(&name, k)?;
    }
    println!(
        "Imported {n} GPG key{} to remote \"{name}\"",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Print a remote's URL.
#[derive(Args)]
pub struct ShowUrlArgs {
    pub name: String,
}

/// List the refs a remote's summary offers (verified as a pull verifies it).
#[derive(Args)]
pub struct RefsArgs {
    pub name: String,
}

pub fn refs(g: &Global, a: RefsArgs) -> Result<()> {
    let RefsArgs { name } = a;
    let s = g.open()?.remote_summary(&name)?;
    for r in &s.refs {
        println!("{name}:{}", r.name);
    }
    Ok(())
}

/// Show a remote's summary (verified as a pull verifies it).
#[derive(Args)]
pub struct SummaryArgs {
    pub name: String,
}

pub fn summary(g: &Global, a: SummaryArgs) -> Result<()> {
    let SummaryArgs { name } = a;
    print_summary(&g.open()?.remote_summary(&name)?);
    Ok(())
}
