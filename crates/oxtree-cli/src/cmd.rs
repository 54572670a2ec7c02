//! One module per command family, each holding its clap arguments and its handler. Handlers
//! take the global options ([`Global`]) and their own arguments, and print their output.

pub mod admin;
pub mod agent;
pub mod checkout;
pub mod checksum;
pub mod commit;
pub mod config;
pub mod export;
pub mod fleetlock;
pub mod generate;
pub mod graph;
pub mod image;
pub mod p2p;
pub mod pull;
pub mod refs;
pub mod remote;
pub mod repo;
pub mod reset;
pub mod selinux;
pub mod serve;
pub mod show;
pub mod sign;
pub mod static_delta;
pub mod summary;

use oxtree::Repo;
use std::path::{Path, PathBuf};

/// Options ostree accepts before or after any command (`ostree --repo=R refs`,
/// `ostree refs --repo=R`, `ostree admin --sysroot=S status`).
#[derive(Debug, Default, Clone)]
pub struct Global {
    pub repo: Option<PathBuf>,
    pub sysroot: Option<PathBuf>,
    /// `admin --esp`: the EFI system partition of the systemd-boot backend.
    pub esp: Option<PathBuf>,
}

/// For the long-running commands that write to sockets (`serve`, the agent): a write to a
/// peer that went away must fail with EPIPE, not kill the process. (The CLI restores
/// SIGPIPE's default at start, so that `oxtree refs | head` ends quietly as ostree does;
/// hyper's vectored writes (`writev`) do not ask the kernel to spare the signal, and a
/// client that cut a download short stopped `oxtree serve` for every other client.)
pub fn ignore_sigpipe() {
    // (These commands run until stopped: what they print goes out a line at a time.)
    crate::out::line_buffered();
    // SAFETY: setting a signal's disposition to SIG_IGN is async-signal-safe and affects
    // no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

impl Global {
    /// `--repo`, else the current directory if it is a repository, else `$OSTREE_REPO`,
    /// else the system repository `$OSTREE_SYSROOT/ostree/repo` (`/ostree/repo` without it;
    /// ostree's `ostree_repo_new_default`).
    pub fn repo_path(&self) -> PathBuf {
        if let Some(p) = &self.repo {
            return p.clone();
        }
        if Path::new("objects").is_dir() && Path::new("config").is_file() {
            return PathBuf::from(".");
        }
        match std::env::var_os("OSTREE_REPO") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            // The default sysroot's: `$OSTREE_SYSROOT` when set, else `/`.
            _ => match std::env::var_os("OSTREE_SYSROOT").filter(|v| !v.is_empty()) {
                Some(sr) => PathBuf::from(sr).join("ostree/repo"),
                None => PathBuf::from("/ostree/repo"),
            },
        }
    }

    pub fn open(&self) -> anyhow::Result<Repo> {
        let path = self.repo_path();
        // Not a repository: ostree's error line, then what to do.
        let missing = std::fs::read_dir(&path)
            .map(|_| ())
            .map_err(|e| (path.display().to_string(), e))
            .and_then(|()| {
                std::fs::read_dir(path.join("objects"))
                    .map(|_| ())
                    .map_err(|e| ("objects".to_string(), e))
            });
        if let Err((what, e)) = missing {
            return Err(Hinted {
                msg: if self.repo.is_none() {
                    "Command requires a --repo argument".into()
                } else {
                    format!(
                        "opening repo: opendir({what}): {}",
                        crate::output::strerror(&e)
                    )
                },
                hint: format!(
                    "{} is not an OSTree repository (no objects/ directory); create one with `oxtree init --repo={}`, or name another with --repo",
                    path.display(),
                    path.display()
                ),
            }
            .into());
        }
        Ok(Repo::open(&path)?)
    }

    /// `--sysroot`, else `$OSTREE_SYSROOT`, else `/`.
    pub fn sysroot_path(&self) -> PathBuf {
        self.sysroot
            .clone()
            .or_else(|| std::env::var_os("OSTREE_SYSROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The sysroot (`--sysroot`), with the ESP given by `--esp`, if any.
    pub fn sysroot(&self) -> oxtree::sysroot::Sysroot {
        oxtree::sysroot::Sysroot::new(&self.sysroot_path()).with_esp(self.esp.clone())
    }
}

/// An error that has already been reported: exit with this code and print nothing more.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// An error with ostree's exact message (which scripts match) and a hint of ours, printed
/// on a line of its own after it.
#[derive(Debug)]
pub struct Hinted {
    pub msg: String,
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Hinted {}
