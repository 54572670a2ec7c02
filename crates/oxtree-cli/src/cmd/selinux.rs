//! SELinux policies, found as ostree's `OstreeSePolicy` finds them. oxtree labels nothing:
//! an option naming a policy root is accepted when that root has no policy (ostree labels
//! nothing then either), and refused, naming the policy, when it has one.

use anyhow::{bail, Result};
use oxtree::repo::{PathEntry, Repo};
use oxtree::Checksum;
use std::io::Read;
use std::path::Path;

/// `SELINUXTYPE=` of a `selinux/config` text, if it names a policy.
fn policy_type(config: &str) -> Option<String> {
    config
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SELINUXTYPE=")
                .map(|v| v.trim().to_string())
        })
        .filter(|ty| !ty.is_empty() && !ty.contains('/'))
}

/// The SELinux policy a root file system ships (`SELINUXTYPE=` in its `etc/selinux/config`
/// or `usr/etc/selinux/config`, with that policy's directory present).
pub fn policy_in_dir(dir: &Path) -> Option<String> {
    for etc in ["etc", "usr/etc"] {
        let base = dir.join(etc).join("selinux");
        let Ok(text) = std::fs::read_to_string(base.join("config")) else {
            continue;
        };
        let ty = policy_type(&text)?;
        if base.join(&ty).is_dir() {
            return Some(ty);
        }
    }
    None
}

/// `--selinux-policy=ROOT`: ROOT must be a directory (ostree's error otherwise); one with
/// a policy is refused.
pub fn check_no_policy_in_dir(root: &Path, opt: &str) -> Result<()> {
    if !root.is_dir() {
        bail!("opendir({}): No such file or directory", root.display());
    }
    if let Some(policy) = policy_in_dir(root) {
        bail!(
            "{opt}: SELinux labelling is not supported by oxtree, and the root has policy \
             '{policy}'; leave the option out, or label with setfiles from that policy"
        );
    }
    Ok(())
}

/// `--selinux-policy-from-base`: the policy of the commit the new one follows, refused
/// when it has one.
pub fn check_no_policy_in_commit(repo: &Repo, commit: &Checksum) -> Result<()> {
    for etc in ["etc", "usr/etc"] {
        let config = format!("{etc}/selinux/config");
        let Ok(PathEntry::File(c)) = repo.lookup_path(commit, &config) else {
            continue;
        };
        let mut text = String::new();
        repo.read_file(&c)?
            .payload
            .take(1 << 20)
            .read_to_string(&mut text)
            .ok();
        let Some(ty) = policy_type(&text) else {
            return Ok(());
        };
        if let Ok(PathEntry::Dir { .. }) = repo.lookup_path(commit, &format!("{etc}/selinux/{ty}"))
        {
            bail!(
                "--selinux-policy-from-base: SELinux labelling is not supported by oxtree, and \
                 the base commit has policy '{ty}'; leave the option out, or label with \
                 setfiles from that policy"
            );
        }
    }
    Ok(())
}
