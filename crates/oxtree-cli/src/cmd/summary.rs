//! `summary`: regenerate (-u, optionally signed) or show the summary file.

use super::Global;
use crate::output::human_size;
use crate::{gvtext, timefmt};
use anyhow::{anyhow, bail, Result};
use clap::Args;

/// Regenerate (-u) or show (--view) the repository summary.
#[derive(Args)]
pub struct SummaryArgs {
    /// Regenerate the summary file.
    #[arg(short = 'u', long)]
    pub update: bool,
    /// View the local summary file.
    #[arg(short = 'v', long)]
    pub view: bool,
    /// View the raw bytes of the summary file (as a GVariant).
    #[arg(long)]
    pub raw: bool,
    /// List the keys of the summary's metadata.
    #[arg(long)]
    pub list_metadata_keys: bool,
    /// Print the value of a summary metadata key.
    #[arg(long, value_name = "KEY")]
    pub print_metadata_key: Option<String>,
    /// Sign the summary with this base64 ed25519 secret key (writes summary.sig).
    #[arg(long, value_name = "KEY")]
    pub sign: Vec<String>,
    /// Signature type for --sign: ed25519, or dummy (ostree's test engine, with
    /// OSTREE_DUMMY_SIGN_ENABLED set).
    #[arg(long, default_value = "ed25519")]
    pub sign_type: String,
    /// GPG Key ID to sign the summary with (writes `ostree.gpgsigs` into summary.sig).
    #[arg(long, value_name = "KEY-ID")]
    pub gpg_sign: Vec<String>,
    /// GPG Homedir to use when looking for keyrings.
    #[arg(long, value_name = "HOMEDIR")]
    pub gpg_homedir: Option<std::path::PathBuf>,
    /// Additional metadata field to add to the summary (VALUE in GVariant text format,
    /// e.g. `'text'`, `42`, `uint64 7`, `['a', 'b']`).
    #[arg(short = 'm', long, value_name = "KEY=VALUE")]
    pub add_metadata: Vec<String>,
    /// Print debug information during command processing (-v is --view here, as in
    /// ostree).
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(g: &Global, a: SummaryArgs) -> Result<()> {
    let mut repo = g.open()?;
    if a.sign_type != "ed25519" && a.sign_type != "dummy" {
        bail!("Requested signature type is not implemented");
    }
    let dummy = a.sign_type == "dummy";
    if dummy && !a.sign.is_empty() {
        oxtree::sign::dummy::check_enabled()?;
    }
    let shows = a.view || a.raw || a.list_metadata_keys || a.print_metadata_key.is_some();
    if a.update {
        // Everything that can be refused is checked before anything is written.
        let additional = additional_metadata(&a.add_metadata)?;
        let (ed25519_keys, dummy_keys) = if dummy {
            (Vec::new(), a.sign.clone())
        } else {
            let keys = a
                .sign
                .iter()
                .map(|k| oxtree::sign::parse_secret_key(k))
                .collect::<oxtree::Result<Vec<_>>>()?;
            (keys, Vec::new())
        };
        let gpg_keys = a
            .gpg_sign
            .iter()
            .map(|id| {
                Ok((
                    super::sign::load_gpg_secret_keys(id, a.gpg_homedir.as_deref(), None)?,
                    id.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = oxtree::repo::SummaryOptions {
            additional_metadata: additional,
            ed25519_keys,
            dummy_keys,
            gpg_keys,
        };
        // With a collection ID, ostree first commits the repository metadata on the
        // `ostree-metadata` ref, which the summary then lists.
        repo.commit_metadata_ref_with(&opts)?;
        repo.regenerate_summary_with(&opts)?;
    } else if !a.sign.is_empty() {
        bail!("--sign goes with -u (the summary is signed when it is regenerated)");
    } else if !shows {
        bail!("No option specified; use -u to update summary");
    }
    // As ostree: -u only updates, whatever else is asked (its options are an if/else chain).
    if !shows || a.update {
        return Ok(());
    }
    let path = repo.path().join("summary");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => bail!("openat(summary): {}", super::show::io_message(&e)),
    };
    show(&bytes, &a, &path.display().to_string())
}

/// `--add-metadata KEY=VALUE` arguments, VALUE parsed as GLib parses GVariant text; the
/// errors are ostree's.
fn additional_metadata(args: &[String]) -> Result<Vec<(String, oxtree::gvariant::Value)>> {
    args.iter()
        .map(|kv| {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("Missing '=' in KEY=VALUE metadata '{kv}'");
            };
            let value =
                gvtext::parse(v).map_err(|e| anyhow!("Error parsing variant ‘{v}’: : {e}"))?;
            Ok((k.to_string(), value))
        })
        .collect()
}

/// What `--view`, `--raw`, `--list-metadata-keys` and `--print-metadata-key` print of a
/// summary (the local one, or a remote's).
pub fn show(bytes: &[u8], a: &SummaryArgs, what: &str) -> Result<()> {
    if !a.raw && !a.list_metadata_keys && a.print_metadata_key.is_none() {
        let s = oxtree::object::Summary::parse(bytes)
            .map_err(|e| anyhow!("{what}: invalid summary: {e}"))?;
        print_summary(&s);
        return Ok(());
    }
    show_summary(
        bytes,
        a.raw,
        a.list_metadata_keys,
        a.print_metadata_key.as_deref(),
        what,
    )
}

/// `--raw`, `--list-metadata-keys` or `--print-metadata-key` of a summary (the local one,
/// or a remote's).
pub fn show_summary(
    bytes: &[u8],
    raw: bool,
    list_metadata_keys: bool,
    print_metadata_key: Option<&str>,
    what: &str,
) -> Result<()> {
    let s = oxtree::object::Summary::parse(bytes)
        .map_err(|e| anyhow!("{what}: invalid summary: {e}"))?;
    if raw {
        let v = oxtree::gvariant::decode(
            bytes,
            &oxtree::gvariant::Type::of(oxtree::object::SUMMARY_TYPE),
        )
        .map_err(|e| anyhow!("{what}: invalid summary: {e}"))?;
        println!("{}", gvtext::print(&v.byteswap()));
    } else if list_metadata_keys {
        for (k, _) in &s.metadata {
            println!("{k}");
        }
    } else if let Some(k) = print_metadata_key {
        let v = s
            .metadata
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("No such metadata key '{k}'"))?;
        println!("{}", gvtext::print(&v.byteswap()));
    } else {
        print_summary(&s);
    }
    Ok(())
}

/// `--view`, as ostree's `ot_dump_summary_bytes`: the main refs, then those of each other
/// collection (the collection map), then the metadata in stored order.
pub fn print_summary(s: &oxtree::object::Summary) {
    let cid = s.collection_id();
    print_summary_refs(cid, &s.refs);
    // A map that does not parse is shown only as metadata (as ostree skips it).
    for (c, refs) in s.collection_map().unwrap_or_default() {
        print_summary_refs(Some(&c), &refs);
    }
    print_summary_metadata(s);
}

fn print_summary_refs(cid: Option<&str>, refs: &[oxtree::object::SummaryRef]) {
    use oxtree::gvariant::Value;
    for r in refs {
        match cid {
            Some(c) => println!("* ({c}, {})", r.name),
            None => println!("* {}", r.name),
        }
        println!("    Latest Commit ({}):", human_size(r.commit_size));
        println!("      {}", r.checksum);
        for (k, v) in &r.metadata {
            match (k.as_str(), v) {
                ("ostree.commit.timestamp", Value::U64(t)) => println!(
                    "    Timestamp (ostree.commit.timestamp): {}",
                    timefmt::iso8601(u64::from_be(*t))
                ),
                ("ostree.commit.version", Value::Str(v)) => {
                    println!("    Version (ostree.commit.version): {v}")
                }
                _ => println!("    {k}: {}", gvtext::print_unannotated(v)),
            }
        }
        println!();
    }
}

fn print_summary_metadata(s: &oxtree::object::Summary) {
    use oxtree::gvariant::Value;
    for (k, v) in &s.metadata {
        let time = |v: &Value| v.as_u64().map(|t| timefmt::iso8601(u64::from_be(t)));
        let (pretty, shown) = match (k.as_str(), v) {
            ("ostree.summary.collection-id", Value::Str(c)) => (Some("Collection ID"), c.clone()),
            ("ostree.summary.collection-map", _) => {
                (Some("Collection Map"), "(printed above)".to_string())
            }
            ("ostree.summary.last-modified", v) if time(v).is_some() => {
                (Some("Last-Modified"), time(v).unwrap_or_default())
            }
            ("ostree.summary.expires", v) if time(v).is_some() => {
                (Some("Expires"), time(v).unwrap_or_default())
            }
            ("ostree.summary.tombstone-commits", Value::Bool(b)) => (
                Some("Has Tombstone Commits"),
                if *b { "Yes" } else { "No" }.to_string(),
            ),
            ("ostree.summary.mode", Value::Str(m)) => (Some("Repository Mode"), m.clone()),
            ("ostree.static-deltas", v) => (Some("Static Deltas"), gvtext::print_unannotated(v)),
            (_, v) => (None, gvtext::print_unannotated(v)),
        };
        match pretty {
            Some(p) => println!("{p} ({k}): {shown}"),
            None => println!("{k}: {shown}"),
        }
    }
}
