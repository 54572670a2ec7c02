//! What a remote's configuration demands of a pull: which keys must have signed the commits
//! and the summary (`sign-verify`, `gpg-verify`, `…-summary`), which keys are revoked, which
//! collection commits must be bound to (`collection-id`), and which transport to use. The
//! same policy serves `pull`, `remote refs`/`remote summary` (the summary only) and
//! `pull-local --remote` (the commits only).

use super::fetch::{FileFetcher, HttpFetcher};
use super::{Fetcher, PullOptions, PullProgress, PullResult};
use crate::error::{Error, Result};
use crate::object::Summary;
use crate::repo::Repo;

/// Which parts of a remote's policy an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Commits and summary (a pull).
    All,
    /// The summary only (`remote refs`, `remote summary`).
    Summary,
    /// Commits only (`pull-local`, whose source has no served summary to speak of).
    Commits,
}

impl Repo {
    /// Pull `refs` (or the remote's configured `branches`) from `remote`.
    pub fn pull(
        &self,
        remote: &str,
        refs: &[String],
        opts: &PullOptions,
        progress: &PullProgress,
    ) -> Result<PullResult> {
        if opts.require_static_deltas
            && !opts.commit_metadata_only
            && self.mode() == crate::repo::RepoMode::Archive
        {
            // ostree's refusal, before anything is fetched.
            return Err(Error::InvalidArgument(
                "Can't use static deltas in an archive repo".into(),
            ));
        }
        let mut opts = opts.clone();
        self.check_url_scheme(remote, &opts)?;
        self.remote_policy(remote, &mut opts, Verify::All)?;
        let fetcher = self.remote_fetcher(remote, &mut opts)?;
        self.pull_with(&*fetcher, remote, refs, &opts, progress)
    }

    /// The summary `remote` serves, fetched and verified exactly as a pull does
    /// (`sign-verify-summary`, `gpg-verify-summary`), over HTTP or from a `file://` remote:
    /// what `remote refs` and `remote summary` show.
    pub fn remote_summary(&self, remote: &str) -> Result<Summary> {
        Ok(self.remote_summary_signed(remote)?.0)
    }

    /// [`Repo::remote_summary`], and with `gpg-verify-summary` on, what its OpenPGP
    /// signatures were checked with: the summary's bytes, `summary.sig` and the keys (what
    /// `remote summary` describes after the summary, as ostree does). One fetch of each.
    #[allow(clippy::type_complexity)]
    pub fn remote_summary_signed(
        &self,
        remote: &str,
    ) -> Result<(
        Summary,
        Option<(
            Vec<u8>,
            Option<Vec<u8>>,
            Vec<pgp::composed::SignedPublicKey>,
        )>,
    )> {
        let mut opts = PullOptions::default();
        // (ostree reads the remote's URL first here: a remote with none, an ostree-rs-ext
        // one say, is `No "url" option`, not the custom backend's refusal pull gives.)
        self.remote_fetch_url(remote)?;
        self.check_url_scheme(remote, &opts)?;
        self.remote_policy(remote, &mut opts, Verify::Summary)?;
        let fetcher = self.remote_fetcher(remote, &mut opts)?;
        let f = super::resolve::fetch_summary_full(&*fetcher, &opts, &PullProgress::default())?
            .ok_or_else(|| Error::NoSummary {
                url: fetcher.describe("summary"),
            })?;
        let gpg = opts
            .gpg_summary_keys
            .map(|keys| (f.bytes, f.sig.flatten(), keys));
        Ok((f.summary, gpg))
    }

    /// Fill `opts` with what `remote`'s configuration demands (keeping anything the caller
    /// already demanded): commit keys, summary keys, revoked keys, the collection ID.
    pub(crate) fn remote_policy(
        &self,
        remote: &str,
        opts: &mut PullOptions,
        what: Verify,
    ) -> Result<()> {
        self.remote_fetch_url(remote)?; // the remote must exist
        let commits = what != Verify::Summary;
        let summary = what != Verify::Commits;
        if let Some(state) = self.remote_option(remote, "unconfigured-state") {
            return Err(Error::InvalidArgument(format!("remote {remote}: {state}")));
        }
        if commits && opts.ed25519_keys.is_none() && opts.dummy_keys.is_none() {
            (opts.ed25519_keys, opts.dummy_keys) =
                self.remote_sign_engines(remote, "sign-verify")?;
        }
        if summary && opts.summary_keys.is_none() && opts.summary_dummy_keys.is_none() {
            (opts.summary_keys, opts.summary_dummy_keys) =
                self.remote_sign_engines(remote, "sign-verify-summary")?;
        }
        let gpg_verify = commits && self.remote_bool(remote, "gpg-verify", true);
        let gpg_verify_summary = summary && self.remote_bool(remote, "gpg-verify-summary", false);
        if gpg_verify || gpg_verify_summary {
            let keys = self.remote_gpg_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!(
                        "remote {remote:?} verifies OpenPGP signatures (gpg-verify is on by default) but has no keys: \
                         import the publisher's key with `oxtree remote gpg-import {remote} --keyring=FILE`, \
                         or add the remote with --no-gpg-verify"
                    ),
                });
            }
            if gpg_verify && opts.gpg_keys.is_none() {
                opts.gpg_keys = Some(keys.clone());
            }
            if gpg_verify_summary && opts.gpg_summary_keys.is_none() {
                opts.gpg_summary_keys = Some(keys);
            }
        }
        // Signatures by revoked keys never count (ostree's system revocation lists).
        if (opts.ed25519_keys.is_some() || opts.summary_keys.is_some())
            && opts.ed25519_revoked.is_empty()
        {
            opts.ed25519_revoked = crate::sign::system_revoked_keys()?;
        }
        // Commits must be bound to the remote's collection, if it has one.
        if commits && opts.collection_id.is_none() {
            opts.collection_id = self
                .remote_option(remote, "collection-id")
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty());
        }
        Ok(())
    }

    /// The signature engines `remote`'s `option` (`sign-verify`, `sign-verify-summary`)
    /// turns on, with their keys (ed25519, dummy), as ostree's `_signapi_init_for_remote`:
    /// `true` turns on every engine with the keys configured for it (ed25519 without any
    /// falls back to the system's `trusted.ed25519` lists); a list of engine names turns on
    /// those, each of which must have keys (`No keys found for required signapi type T`).
    #[allow(clippy::type_complexity)]
    fn remote_sign_engines(
        &self,
        remote: &str,
        option: &str,
    ) -> Result<(Option<Vec<crate::sign::PublicKey>>, Option<Vec<String>>)> {
        let Some(value) = self.remote_option(remote, option) else {
            return Ok((None, None));
        };
        let value = value.trim();
        let (names, required): (Vec<&str>, bool) = match value {
            "true" | "1" => (crate::repo::SIGN_TYPES.to_vec(), false),
            "false" | "0" | "" => return Ok((None, None)),
            list => (
                list.split([',', ';'])
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect(),
                true,
            ),
        };
        let (mut ed25519, mut dummy) = (None, None);
        for name in names {
            if !crate::repo::SIGN_TYPES.contains(&name) {
                return Err(Error::InvalidArgument(
                    "Requested signature type is not implemented".into(),
                ));
            }
            let has_config = self
                .remote_option(remote, &format!("verification-{name}-key"))
                .is_some()
                || self
                    .remote_option(remote, &format!("verification-{name}-file"))
                    .is_some();
            if required && !has_config {
                return Err(Error::InvalidArgument(format!(
                    "No keys found for required signapi type {name}"
                )));
            }
            match name {
                "ed25519" => {
                    let mut keys = self.remote_ed25519_keys(remote)?;
                    if !has_config {
                        keys = crate::sign::trusted_keys_in(&crate::sign::key_bases(None))?;
                    }
                    ed25519 = Some(keys);
                }
                "dummy" => {
                    let mut keys = Vec::new();
                    if let Some(k) = self.remote_option(remote, "verification-dummy-key") {
                        keys.push(k);
                    }
                    if let Some(f) = self.remote_option(remote, "verification-dummy-file") {
                        // ostree's dummy engine cannot load keys from a file.
                        return Err(Error::InvalidArgument(format!(
                            "Failed loading 'dummy' keys from '{f}"
                        )));
                    }
                    dummy = Some(keys);
                }
                _ => {
                    return Err(Error::InvalidArgument(
                        "Requested signature type is not implemented".into(),
                    ))
                }
            }
        }
        Ok((ed25519, dummy))
    }

    /// Where `remote`'s metadata comes from: its `metalink` (as `metalink=URL`; it wins
    /// over `url`, as in ostree), else its `url`.
    fn remote_fetch_url(&self, remote: &str) -> Result<String> {
        match self.remote_option(remote, "metalink") {
            Some(m) => Ok(format!("metalink={}", m.trim())),
            None => self.remote_url(remote),
        }
    }

    /// A URL oxtree cannot fetch from is ostree's error before anything else is checked
    /// (its keys, say): `Invalid URI scheme in URL`.
    fn check_url_scheme(&self, remote: &str, opts: &PullOptions) -> Result<()> {
        // A remote another tool fetches (ostree-rs-ext's containers): ostree's refusal.
        if let Some(b) = self.remote_option(remote, "custom-backend") {
            return Err(Error::Other(format!(
                "Cannot fetch via libostree - remote '{remote}' uses custom backend '{b}'"
            )));
        }
        let url = match &opts.url {
            Some(u) => u.clone(),
            None => self.remote_fetch_url(remote)?,
        };
        let u = url
            .strip_prefix("mirrorlist=")
            .or_else(|| url.strip_prefix("metalink="))
            .unwrap_or(&url);
        let scheme = u.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https" | "file") => Ok(()),
            Some(_) => Err(Error::InvalidArgument(format!("Invalid URI scheme in {u}"))),
            None => Err(Error::InvalidArgument(
                "URI is not absolute, and no base URI was provided".into(),
            )),
        }
    }

    /// The transport for `remote`'s URL. For a local repository without `collection-id` in
    /// the remote, commits must be bound to that repository's own collection (as ostree).
    pub(crate) fn remote_fetcher(
        &self,
        remote: &str,
        opts: &mut PullOptions,
    ) -> Result<Box<dyn Fetcher>> {
        let url = match &opts.url {
            Some(u) => u.clone(),
            None => self.remote_fetch_url(remote)?,
        };
        if let Some(path) = super::file_url_path(&url) {
            let path = std::path::Path::new(path);
            // ostree's words for a local remote that is not there.
            if let Err(e) = std::fs::read_dir(path) {
                let s = e.to_string();
                let s = s.split(" (os error").next().unwrap_or(&s);
                return Err(Error::Quoted {
                    msg: format!("opening repo: opendir({}): {s}", path.display()),
                    path: path.to_path_buf(),
                });
            }
            if opts.collection_id.is_none() {
                opts.collection_id = Repo::open(path)
                    .ok()
                    .and_then(|r| r.config().get("core", "collection-id").map(str::to_string));
            }
            // A local archive repo: the same pull (and the same verification) over files.
            return Ok(Box::new(FileFetcher::new(path)));
        }
        // The remote's low-speed rule (ostree's keys), overridden by the pull's options.
        let mut fo = super::FetchOptions::for_remote(self, remote, opts.timeout)?;
        if let Some(b) = opts.low_speed_limit_bytes {
            fo.low_speed_limit_bytes = b;
        }
        if let Some(t) = opts.low_speed_time {
            fo.low_speed_time = t.max(std::time::Duration::from_secs(1));
        }
        if let Some(extra) = &opts.append_user_agent {
            fo.user_agent = format!("{} {extra}", fo.user_agent);
        }
        let mut headers = opts.http_headers.clone();
        // The remote's cookie jar (`remote add-cookie`), as ostree's libcurl backend sends it.
        let cookie_url = url
            .strip_prefix("mirrorlist=")
            .or_else(|| url.strip_prefix("metalink="))
            .unwrap_or(&url);
        if let Some(c) = self.remote_cookie_header(remote, cookie_url)? {
            headers.push(("Cookie".into(), c));
        }
        // Objects and deltas from `contenturl` when the remote has one; `--url` replaces
        // both, as in ostree. Either may be `mirrorlist=URL`.
        let contenturl = match opts.url {
            Some(_) => None,
            None => self.remote_option(remote, "contenturl"),
        };
        let fetcher =
            HttpFetcher::for_urls(&url, contenturl.as_deref(), fo, headers, opts.retries)?;
        Ok(Box::new(fetcher))
    }
}
