//! What a remote's configuration demands of a pull: which keys must have signed the commits
//! and the summary (`sign-verify`, `gpg-verify`, `…-summary`), which collection commits
//! must be bound to (`collection-id`), and which transport to use.

use super::fetch::{FileFetcher, HttpFetcher};
use super::{PullOptions, PullProgress, PullResult};
use crate::error::{Error, Result};
use crate::repo::Repo;

impl Repo {
    /// Pull `refs` (or the remote's configured `branches`) from `remote`.
    pub fn pull(
        &self,
        remote: &str,
        refs: &[String],
        opts: &PullOptions,
        progress: &PullProgress,
    ) -> Result<PullResult> {
        let url = self.remote_url(remote)?;
        if let Some(state) = self.remote_option(remote, "unconfigured-state") {
            return Err(Error::InvalidArgument(format!("remote {remote}: {state}")));
        }
        let mut opts = opts.clone();
        let sign_verify = self
            .remote_option(remote, "sign-verify")
            .map(|v| v.trim() != "false")
            .unwrap_or(false);
        if sign_verify {
            let keys = self.remote_ed25519_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!("remote {remote:?} has sign-verify on but no verification-ed25519-key or verification-ed25519-file"),
                });
            }
            opts.ed25519_keys = Some(keys);
        }
        if self.remote_bool(remote, "sign-verify-summary", false) {
            let keys = self.remote_ed25519_keys(remote)?;
            if keys.is_empty() {
                return Err(Error::Config {
                    path: self.path().join("config"),
                    msg: format!("remote {remote:?} has sign-verify-summary on but no verification-ed25519-key or verification-ed25519-file"),
                });
            }
            opts.summary_keys = Some(keys);
        }
        let gpg_verify = self.remote_bool(remote, "gpg-verify", true);
        let gpg_verify_summary = self.remote_bool(remote, "gpg-verify-summary", false);
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
            if gpg_verify {
                opts.gpg_keys = Some(keys.clone());
            }
            if gpg_verify_summary {
                opts.gpg_summary_keys = Some(keys);
            }
        }
        // Commits must be bound to the remote's collection, if it has one; for a local
        // repository without `collection-id` in the remote, that repository's own (as ostree).
        if opts.collection_id.is_none() {
            opts.collection_id = self
                .remote_option(remote, "collection-id")
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .or_else(|| {
                    let path = url.strip_prefix("file://")?;
                    Repo::open(std::path::Path::new(path))
                        .ok()?
                        .config()
                        .get("core", "collection-id")
                        .map(str::to_string)
                });
        }
        let opts = &opts;
        if let Some(path) = url.strip_prefix("file://") {
            // A local archive repo: the same pull (and the same verification) over files.
            let fetcher = FileFetcher::new(std::path::Path::new(path));
            return self.pull_with(&fetcher, remote, refs, opts, progress);
        }
        let fetcher = HttpFetcher::new(&url, opts.timeout)?;
        self.pull_with(&fetcher, remote, refs, opts, progress)
    }
}
