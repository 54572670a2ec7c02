//! Remotes: `[remote "NAME"]` groups in the repo `config`, written exactly as `ostree remote
//! add` writes them (url, branches, `--set` options, then `gpg-verify=false`) so each tool
//! reads the other's configuration (spec §4.2).

use super::Repo;
use crate::error::{Error, Result};
use crate::object::validate_remote_name;

fn group(name: &str) -> String {
    format!("remote \"{name}\"")
}

#[derive(Debug, Clone, Default)]
pub struct RemoteAddOptions {
    pub branches: Vec<String>,
    /// `--set=KEY=VALUE`, in order.
    pub set: Vec<(String, String)>,
    pub no_gpg_verify: bool,
    pub if_not_exists: bool,
}

impl Repo {
    pub fn remote_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .config()
            .groups()
            .filter_map(|g| {
                g.strip_prefix("remote \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_string)
            })
            .collect();
        v.sort();
        v
    }

    pub fn remote_option(&self, remote: &str, key: &str) -> Option<String> {
        self.config().get(&group(remote), key).map(str::to_string)
    }

    pub fn remote_bool(&self, remote: &str, key: &str, default: bool) -> bool {
        self.config()
            .get_bool(&group(remote), key)
            .unwrap_or(default)
    }

    fn require_remote(&self, remote: &str) -> Result<()> {
        if self.config().has_group(&group(remote)) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "remote {remote:?} not found; list remotes with `oxtree remote list`"
            )))
        }
    }

    pub fn remote_url(&self, remote: &str) -> Result<String> {
        self.require_remote(remote)?;
        self.remote_option(remote, "url")
            .ok_or_else(|| Error::Config {
                path: self.path().join("config"),
                msg: format!("remote {remote:?} has no url"),
            })
    }

    pub fn remote_add(&mut self, name: &str, url: &str, opts: &RemoteAddOptions) -> Result<()> {
        validate_remote_name(name).map_err(Error::InvalidArgument)?;
        if self.config().has_group(&group(name)) {
            if opts.if_not_exists {
                return Ok(());
            }
            return Err(Error::InvalidArgument(format!("remote {name:?} already exists; delete it first with `oxtree remote delete {name}`")));
        }
        let mut kf = self.config().clone();
        let g = group(name);
        kf.set(&g, "url", url);
        if !opts.branches.is_empty() {
            kf.set_list(&g, "branches", &opts.branches);
        }
        for (k, v) in &opts.set {
            kf.set(&g, k, v);
        }
        if opts.no_gpg_verify {
            kf.set(&g, "gpg-verify", "false");
        }
        self.write_config(kf)
    }

    pub fn remote_delete(&mut self, name: &str, if_exists: bool) -> Result<()> {
        if !self.config().has_group(&group(name)) {
            if if_exists {
                return Ok(());
            }
            return self.require_remote(name);
        }
        let mut kf = self.config().clone();
        kf.remove_group(&group(name));
        self.write_config(kf)
    }
}
