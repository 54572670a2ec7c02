//! Before any object is fetched: the summary (checked against its signatures when the remote
//! demands it), the server's mode, and the refs to pull resolved to commit checksums.

use super::retry::fetch_retry;
use super::{Fetcher, PullOptions, PullProgress, MAX_METADATA_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, Summary};
use crate::repo::Repo;

/// A ref to pull (`None` for a bare commit checksum) and the commit it resolves to.
pub(super) type Target = (Option<String>, Checksum);

/// Fetch the summary, when the server has one, and verify its signatures as the options say.
/// A publisher replaces `summary` and `summary.sig` with two renames, so a client between
/// them sees a pair that does not match: a summary whose signature does not verify is
/// fetched once more (both files) before it is refused.
pub(crate) fn fetch_summary(
    fetcher: &dyn Fetcher,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<Option<Summary>> {
    Ok(fetch_summary_full(fetcher, opts, progress)?.map(|f| f.summary))
}

/// A summary as the server served it, once verified.
pub(crate) struct FetchedSummary {
    pub(crate) summary: Summary,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
    /// `summary.sig`, when it was fetched (to verify it): `Some(None)` if the server has
    /// none.
    pub(crate) sig: Option<Option<Vec<u8>>>,
}

/// [`fetch_summary`], with the bytes it verified (a mirror keeps them, `remote summary`
/// describes the signatures).
pub(crate) fn fetch_summary_full(
    fetcher: &dyn Fetcher,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<Option<FetchedSummary>> {
    // A refused summary is fetched once more from the server (never from the cache: a
    // damaged cached copy is replaced by the server's, once that one verifies).
    match fetch_summary_once(fetcher, opts, progress, true) {
        Err(Error::SummarySignature { .. } | Error::GpgSummaryUnsigned { .. }) => {
            fetch_summary_once(fetcher, opts, progress, false)
        }
        r => r,
    }
}

fn fetch_summary_once(
    fetcher: &dyn Fetcher,
    opts: &PullOptions,
    progress: &PullProgress,
    use_cache: bool,
) -> Result<Option<FetchedSummary>> {
    let fetch_small = |path: &str| fetch_retry(fetcher, path, opts, progress, MAX_METADATA_SIZE);
    // With a summary cache (`pull --cache-dir`), the signature comes first: when it is the
    // cached one, the cached summary is the server's current one and is not downloaded
    // (ostree's cache of signed summaries, `DIR/summaries/REMOTE` and `REMOTE.sig`).
    let mut early_sig: Option<Option<Vec<u8>>> = None;
    let mut cached = None;
    if let Some(cache) = &opts.summary_cache {
        let sig = fetch_small("summary.sig")?;
        let sig_path = sig_path(cache);
        if let (Some(sig), Ok(old_sig), true) = (&sig, std::fs::read(&sig_path), use_cache) {
            if *sig == old_sig {
                cached = std::fs::read(cache).ok();
            }
        }
        early_sig = Some(sig);
    }
    // The summary, when the server has one, resolves refs in one request.
    let from_cache = cached.is_some();
    let summary_bytes = match cached {
        Some(b) => Some(b),
        None => fetch_small("summary")?,
    };
    // Its signature, once, when a check needs it (or the cache fetched it already).
    let verifies = opts.signs_summary() || opts.gpg_summary_keys.is_some();
    let sig = match early_sig.clone() {
        Some(s) => Some(s),
        None if verifies && summary_bytes.is_some() => Some(fetch_small("summary.sig")?),
        None => None,
    };
    let sig_bytes = sig.clone().flatten();
    if let Err(e) = verify_summary(
        fetcher,
        opts,
        summary_bytes.as_deref(),
        sig_bytes.as_deref(),
    ) {
        // ostree's test hook: a cached summary that fails its check stops the pull here
        // instead of being fetched again (its suite checks the cache is left as it was).
        if from_cache && crate::repo::test_error("invalid-cache") {
            let remote = opts
                .summary_cache
                .as_deref()
                .and_then(std::path::Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(Error::Other(format!(
                "Remote {remote} cached summary invalid and OSTREE_REPO_TEST_ERROR_INVALID_CACHE specified"
            )));
        }
        return Err(e);
    }
    let parsed = match &summary_bytes {
        Some(b) => Some(Summary::parse(b).map_err(|e| Error::InvalidSummary {
            url: fetcher.describe("summary"),
            msg: e.to_string(),
        })?),
        None => None,
    };
    // Only a signed summary is cached (its signature tells whether it is current), and only
    // once it has passed every check above.
    // (A cached pair still current is left as it is, as ostree leaves it.)
    if let (Some(cache), Some(Some(sig)), Some(b), false) =
        (&opts.summary_cache, &early_sig, &summary_bytes, from_cache)
    {
        if let Some(dir) = cache.parent() {
            std::fs::create_dir_all(dir).ctx("create directory", dir)?;
        }
        crate::fsutil::write_atomic(cache, b, false)?;
        crate::fsutil::write_atomic(&sig_path(cache), sig, false)?;
    }
    Ok(parsed
        .zip(summary_bytes)
        .map(|(summary, bytes)| FetchedSummary {
            summary,
            bytes,
            sig,
        }))
}

/// Check a summary against its signatures, as the remote's options demand.
fn verify_summary(
    fetcher: &dyn Fetcher,
    opts: &PullOptions,
    summary_bytes: Option<&[u8]>,
    sig_bytes: Option<&[u8]>,
) -> Result<()> {
    let verifiers = opts.summary_verifiers();
    if !verifiers.is_empty() {
        let url = fetcher.describe("summary");
        let bytes = summary_bytes.ok_or_else(|| Error::SummarySignature {
            url: url.clone(),
            msg: "no summary on the server, but the remote has sign-verify-summary on".into(),
        })?;
        if sig_bytes.is_none() {
            return Err(Error::SummarySignature {
                url,
                msg: "Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)".into(),
            });
        }
        crate::sign::verify_for_remote(&verifiers, bytes, sig_bytes)
            .map_err(|msg| Error::SummarySignature { url, msg })?;
    }
    if let Some(keys) = &opts.gpg_summary_keys {
        let url = fetcher.describe("summary");
        let bytes = summary_bytes.ok_or_else(|| Error::SummarySignature {
            url: url.clone(),
            msg: "no summary on the server, but the remote has gpg-verify-summary on".into(),
        })?;
        if sig_bytes.is_none() {
            return Err(Error::GpgSummaryUnsigned { url });
        }
        let report = crate::sign::gpg::verify_meta(sig_bytes, bytes, keys)?;
        if report.is_empty() {
            return Err(Error::SummarySignature {
                url,
                msg: "GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)".into(),
            });
        }
        if !report
            .iter()
            .any(|r| r.status == crate::sign::gpg::GpgStatus::Good)
        {
            return Err(Error::SummarySignature {
                url,
                msg: format!(
                    "no good OpenPGP signature: {}",
                    crate::sign::gpg::describe(&report)
                ),
            });
        }
    }
    Ok(())
}

/// `REMOTE.sig` beside a cached summary (a remote's name may contain dots).
fn sig_path(cache: &std::path::Path) -> std::path::PathBuf {
    let mut p = cache.as_os_str().to_owned();
    p.push(".sig");
    std::path::PathBuf::from(p)
}

/// Refuse to pull from a server whose repository is not an archive (its `config`), or that
/// serves a summary but no `config` (ostree 2022.7 stops there at the 404; without a
/// summary it goes on without the config).
pub(super) fn check_remote_mode(
    fetcher: &dyn Fetcher,
    has_summary: bool,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<()> {
    let Some(cfg) = fetch_retry(fetcher, "config", opts, progress, MAX_METADATA_SIZE)? else {
        if has_summary {
            return Err(Error::ServerNotFound {
                url: fetcher.describe("config"),
            });
        }
        return Ok(());
    };
    let text = String::from_utf8_lossy(&cfg);
    let kf = crate::fsutil::keyfile::KeyFile::parse(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", fetcher.describe("config"))))?;
    let mode = kf.get("core", "mode").unwrap_or("bare");
    if !matches!(mode, "archive" | "archive-z2") {
        return Err(Error::Other(format!("can't pull from a repository of mode {mode:?} ({}): pull from an archive repository, or copy a local one with `oxtree pull-local`", fetcher.describe("config"))));
    }
    Ok(())
}

/// The refs to pull (`refs`, or the remote's `branches=`), each resolved through the summary
/// or, only when the server has none, through `refs/heads/REF` on the server.
pub(super) fn targets(
    repo: &Repo,
    fetcher: &dyn Fetcher,
    remote: &str,
    refs: &[String],
    summary: Option<&Summary>,
    opts: &PullOptions,
    progress: &PullProgress,
) -> Result<Vec<Target>> {
    let get_small = |path: &str| fetch_retry(fetcher, path, opts, progress, MAX_METADATA_SIZE);
    let wanted: Vec<String> = if refs.is_empty() && opts.mirror {
        // ostree's mirror of everything: every ref the summary lists (branches= aside).
        let Some(s) = summary else {
            return Err(Error::InvalidArgument(
                "Fetching all refs was requested in mirror mode, but remote repository does not have a summary".into(),
            ));
        };
        s.refs.iter().map(|r| r.name.clone()).collect()
    } else if refs.is_empty() {
        repo.remote_option(remote, "branches")
            .map(|b| {
                b.split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        refs.to_vec()
    };
    if wanted.is_empty() && !(refs.is_empty() && opts.mirror) {
        return Err(Error::NoBranches(remote.to_string()));
    }
    let mut targets: Vec<Target> = Vec::new();
    for r in &wanted {
        if let Ok(c) = r.parse::<Checksum>() {
            targets.push((None, c));
            continue;
        }
        // REF@CHECKSUM: that commit for the ref, whatever the server's ref says (ostree's
        // override; how a host pins or rolls back to a known version). Its ref binding is
        // still checked against REF.
        if let Some((name, rev)) = r.rsplit_once('@') {
            let c = rev
                .parse::<Checksum>()
                .map_err(|_| Error::InvalidArgument(format!("Invalid rev {rev}")))?;
            crate::object::validate_ref(name).map_err(Error::InvalidArgument)?;
            targets.push((Some(name.to_string()), c));
            continue;
        }
        crate::object::validate_ref(r).map_err(Error::InvalidArgument)?;
        // With a summary, refs resolve only through it (it may be signed, refs/heads/ never
        // is): a ref the summary does not list does not exist, as in ostree.
        let c = match summary.map(|s| s.find(r)) {
            Some(Some(sr)) => sr.checksum,
            Some(None) => {
                return Err(Error::RefNotInSummary {
                    remote: remote.to_string(),
                    refname: r.clone(),
                })
            }
            None => {
                let b = get_small(&format!("refs/heads/{r}"))?.ok_or_else(|| {
                    let url = fetcher.describe(&format!("refs/heads/{r}"));
                    // ostree reads a local repository's refs itself, and asks a server.
                    if url.starts_with("file:") {
                        Error::RefNotFound(r.clone())
                    } else {
                        Error::ServerNotFound { url }
                    }
                })?;
                let text = String::from_utf8_lossy(&b);
                let text = text.trim_end();
                text.parse().map_err(|_| {
                    // ostree's words: the first 64 bytes, unprintable ones as spaces.
                    let shown: String = text
                        .chars()
                        .take(64)
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    Error::Other(format!(
                        "Fetching checksum for ref ((empty), {r}): Invalid rev {shown}"
                    ))
                })?
            }
        };
        targets.push((Some(r.clone()), c));
    }
    Ok(targets)
}
