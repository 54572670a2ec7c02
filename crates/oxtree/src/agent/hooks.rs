//! Hooks: executables in `pre-stage.d/`, `pre-reboot.d/` and `post-boot.d/` under the hook
//! directory, run in name order with the release in the environment
//! (`OXTREE_AGENT_PHASE`, `OXTREE_AGENT_VERSION`, `OXTREE_AGENT_CHECKSUM`). Exit codes are
//! Mender's state-script codes: 0 go on, 1 abort, 21 retry later; any other code, a crash
//! or a timeout counts as an abort, except a timeout, which is a retry. The first hook that
//! does not say "go" decides.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const RETRY_LATER: i32 = 21;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Go,
    Abort { hook: String, why: String },
    Retry { hook: String },
}

/// The hooks of a phase, in name order (a missing directory has none). Files that are not
/// executable are skipped and returned apart, so the caller can warn.
pub fn list(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut all: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    all.sort();
    all.into_iter()
        .partition(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0))
}

pub fn run(dir: &Path, phase: &str, version: &str, checksum: &str, timeout: Duration) -> Outcome {
    let (hooks, _) = list(&dir.join(format!("{phase}.d")));
    for h in hooks {
        let name = h.display().to_string();
        let mut child = match Command::new(&h)
            .env("OXTREE_AGENT_PHASE", phase)
            .env("OXTREE_AGENT_VERSION", version)
            .env("OXTREE_AGENT_CHECKSUM", checksum)
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Abort {
                    hook: name,
                    why: format!("could not run: {e}"),
                }
            }
        };
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Ok(st),
                Ok(None) if start.elapsed() >= timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    return Outcome::Abort {
                        hook: name,
                        why: format!("wait: {e}"),
                    }
                }
            }
        };
        match status.map(|s| s.code()) {
            Ok(Some(0)) => {}
            Ok(Some(RETRY_LATER)) | Err(()) => return Outcome::Retry { hook: name },
            Ok(Some(c)) => {
                return Outcome::Abort {
                    hook: name,
                    why: format!("exited with {c}"),
                }
            }
            Ok(None) => {
                return Outcome::Abort {
                    hook: name,
                    why: "killed by a signal".into(),
                }
            }
        }
    }
    Outcome::Go
}
