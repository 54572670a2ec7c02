//! `config`: read and change the repository's `config` keyfile (`get`, `set`, `unset`).

use super::Global;
use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ConfigArgs {
    /// Group name: KEY is then a key of this group (for group names with a dot or quotes,
    /// such as `remote "origin"`).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// get KEY | set KEY VALUE | unset KEY, KEY as SECTION.KEY.
    #[arg(value_name = "OPERATION")]
    pub args: Vec<String>,
}

pub fn run(g: &Global, a: ConfigArgs) -> Result<()> {
    let Some(op) = a.args.first() else {
        bail!("OPERATION must be one of get, set, unset");
    };
    if !matches!(op.as_str(), "get" | "set" | "unset") {
        bail!("Unknown operation {op}");
    }
    // ostree's words for what is missing, by operation and --group.
    let needed = if op == "set" { 3 } else { 2 };
    if a.args.len() < needed {
        bail!(match (op.as_str(), a.group.is_some()) {
            ("set", false) => "KEY and VALUE must be specified",
            ("set", true) => "GROUP name, KEY and VALUE must be specified",
            (_, false) => "KEY must be specified",
            (_, true) => "Group name and key must be specified",
        });
    }
    // ostree refuses (and writes nothing) when more follows.
    if a.args.len() > needed {
        bail!("Too many arguments given");
    }
    let key = &a.args[1];
    let (group, key) = match &a.group {
        Some(g) => (g.clone(), key.clone()),
        None => match key.split_once('.') {
            // ostree splits at the first dot, as GLib key names may hold dots.
            Some((s, k)) if !s.is_empty() && !k.is_empty() => (s.to_string(), k.to_string()),
            _ => bail!("Key must be of the form \"sectionname.keyname\""),
        },
    };
    let mut repo = g.open()?;
    let mut kf = repo.config().clone();
    match op.as_str() {
        "get" => {
            if !kf.has_group(&group) {
                bail!("Key file does not have group \u{201c}{group}\u{201d}");
            }
            let v = kf.get(&group, &key).ok_or_else(|| {
                anyhow::anyhow!(
                    "Key file does not have key \u{201c}{key}\u{201d} in group \u{201c}{group}\u{201d}"
                )
            })?;
            println!("{v}");
        }
        "set" => {
            kf.set(&group, &key, &a.args[2]);
            repo.write_config(kf)?;
        }
        _ => {
            // Like ostree: unsetting what is not there is not an error.
            if kf.remove_key(&group, &key) {
                repo.write_config(kf)?;
            }
        }
    }
    Ok(())
}
