//! systemd-boot's view of an ESP, for the tests of the ESP mirror: which entry it boots
//! (its 252 rules: `default` from loader.conf as a glob over the entry ids, entries out of
//! tries sorted last, then by `sort-key` and `version` descending), and whether an entry
//! can boot (its kernel and initramfs on the ESP, its `ostree=` resolving in the sysroot to
//! a deployment).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Entry {
    pub file: String,
    pub id: String,
    pub text: String,
    /// `(LEFT, DONE)` from `+LEFT[-DONE]`.
    pub tries: Option<(u32, u32)>,
}

impl Entry {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
            .map(str::trim)
    }
    /// The entry name without counter and `.conf`.
    pub fn base(&self) -> &str {
        let stem = self.file.trim_end_matches(".conf");
        match self.tries {
            Some(_) => stem.rsplit_once('+').map_or(stem, |(b, _)| b),
            None => stem,
        }
    }
}

fn tries(stem: &str) -> Option<(u32, u32)> {
    let (_, c) = stem.rsplit_once('+')?;
    match c.split_once('-') {
        Some((l, d)) => Some((l.parse().ok()?, d.parse().ok()?)),
        None => Some((c.parse().ok()?, 0)),
    }
}

/// Every `*.conf` in `ESP/loader/entries`, in systemd-boot's menu order.
pub fn entries(esp: &Path) -> Vec<Entry> {
    let dir = esp.join("loader/entries");
    let mut v: Vec<Entry> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let stem = file.strip_suffix(".conf")?.to_string();
            Some(Entry {
                id: file.to_lowercase(),
                text: std::fs::read_to_string(e.path()).ok()?,
                tries: tries(&stem),
                file,
            })
        })
        .collect();
    v.sort_by(|a, b| {
        let bad = |e: &Entry| matches!(e.tries, Some((0, _)));
        bad(a)
            .cmp(&bad(b))
            .then_with(|| match (a.get("sort-key"), b.get("sort-key")) {
                (Some(x), Some(y)) => x.cmp(y).then_with(|| {
                    oxtree::sysroot::bls::version_cmp(
                        b.get("version").unwrap_or(""),
                        a.get("version").unwrap_or(""),
                    )
                }),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| oxtree::sysroot::bls::version_cmp(&b.id, &a.id))
    });
    v
}

/// `fnmatch` with `*` and `?` only (all loader.conf patterns here use).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// The entry systemd-boot boots (no EFI variables set: a fresh NVRAM).
pub fn default_entry(esp: &Path) -> Option<Entry> {
    let all = entries(esp);
    let conf = std::fs::read_to_string(esp.join("loader/loader.conf")).unwrap_or_default();
    if let Some(pat) = conf
        .lines()
        .find_map(|l| l.strip_prefix("default "))
        .map(|p| p.trim().to_lowercase())
    {
        if let Some(e) = all.iter().find(|e| glob(pat.as_bytes(), e.id.as_bytes())) {
            return Some(e.clone());
        }
    }
    all.into_iter().next()
}

/// Why `e` cannot boot, if it cannot: its files on the ESP, and its `ostree=` argument
/// through the sysroot's boot links to a deployment holding `usr/`. Returns the deployment
/// directory.
pub fn bootable(esp: &Path, sysroot: &Path, e: &Entry) -> Result<PathBuf, String> {
    for key in ["linux", "initrd"] {
        let p = e.get(key).ok_or_else(|| format!("{}: no {key}", e.file))?;
        if !esp.join(p.trim_start_matches('/')).is_file() {
            return Err(format!("{}: {key} {p} is not on the ESP", e.file));
        }
    }
    let arg = e
        .get("options")
        .and_then(|o| o.split_whitespace().find_map(|a| a.strip_prefix("ostree=")))
        .ok_or_else(|| format!("{}: no ostree= argument", e.file))?;
    let dir = std::fs::canonicalize(sysroot.join(arg.trim_start_matches('/')))
        .map_err(|err| format!("{}: ostree={arg} does not resolve: {err}", e.file))?;
    if !dir.join("usr").is_dir() {
        return Err(format!("{}: ostree={arg} is not a deployment", e.file));
    }
    Ok(dir)
}

/// The ESP boots: systemd-boot's choice has tries left (or is good) and boots, and so does
/// every other entry on it. Returns the default entry.
pub fn check_esp_boots(esp: &Path, sysroot: &Path) -> Result<Entry, String> {
    let d = default_entry(esp).ok_or("no entry on the ESP")?;
    if matches!(d.tries, Some((0, _))) {
        return Err(format!(
            "systemd-boot would boot {}, which is out of tries",
            d.file
        ));
    }
    for e in entries(esp) {
        bootable(esp, sysroot, &e)?;
    }
    Ok(d)
}
