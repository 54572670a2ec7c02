//! Remotes: `[remote "NAME"]` groups in the repo `config`, written exactly as `ostree remote
//! add` writes them (url, branches, contenturl, custom-backend, `--set` options, the
//! verification switches and keys, then collection-id) so each tool reads the other's
//! configuration (spec §4.2); the remote's OpenPGP keyring (`NAME.trustedkeys.gpg`) as
//! `gpg-import`/`gpg-list-keys` see it; and its cookie jar (`NAME.cookies.txt`, the
//! Netscape format ostree's libcurl backend reads), whose cookies pulls send.

use super::Repo;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::keyfile::KeyFile;
use crate::object::validate_remote_name;
use std::path::PathBuf;

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
    /// Replace the remote if it exists (`--force`).
    pub force: bool,
    /// Fetch content (objects, deltas) from this URL, metadata from the main one.
    pub contenturl: Option<String>,
    /// The remote's content is fetched by something other than libostree (`custom-backend`).
    pub custom_backend: Option<String>,
    /// The collection this remote serves (`collection-id`): its commits must be bound to it.
    pub collection_id: Option<String>,
    /// `--no-sign-verify`: neither signature kind is verified.
    pub no_sign_verify: bool,
    /// `--sign-verify=TYPE=inline:KEY` or `TYPE=file:PATH`, in order.
    pub sign_verify: Vec<String>,
}

/// Signature types `--sign-verify` knows (ostree's `ostree_sign_get_by_name`).
pub(crate) const SIGN_TYPES: &[&str] = &["ed25519", "dummy"];

/// One `--sign-verify` spec as (config key, value, type).
fn parse_sign_verify(spec: &str) -> Result<(String, String, String)> {
    let bad = || {
        Error::InvalidArgument(format!(
            "Failed to parse KEYTYPE=[inline|file]:DATA in {spec}"
        ))
    };
    let (ty, rest) = spec.split_once('=').ok_or_else(bad)?;
    if !SIGN_TYPES.contains(&ty) {
        return Err(Error::InvalidArgument(
            "Requested signature type is not implemented".into(),
        ));
    }
    let (mode, data) = rest.split_once(':').unwrap_or((rest, ""));
    let key = match mode {
        "inline" => format!("verification-{ty}-key"),
        "file" => format!("verification-{ty}-file"),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "Invalid key reference {mode}, expected inline|file"
            )))
        }
    };
    if !rest.contains(':') {
        return Err(bad());
    }
    Ok((key, data.to_string(), ty.to_string()))
}

/// A cookie in a remote's jar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub domain: String,
    /// The jar's "include subdomains" flag (`TRUE` for a domain starting with `.`).
    pub include_subdomains: bool,
    pub path: String,
    /// Send only over https.
    pub secure: bool,
    /// Seconds since the epoch (0: a session cookie).
    pub expires: u64,
    pub name: String,
    pub value: String,
    /// The line as stored, kept verbatim when other cookies are deleted.
    line: String,
}

impl Cookie {
    /// Parse a jar line as ostree does (`sscanf("%ms\t%ms\t%ms\t%ms\t%llu\t%ms\t%ms")`:
    /// seven whitespace-separated fields, the fifth a number); `None` for comments, blank
    /// and malformed lines.
    fn parse(line: &str) -> Option<Cookie> {
        let mut f = line.split_whitespace();
        let domain = f.next()?.to_string();
        let flag = f.next()?;
        let path = f.next()?.to_string();
        let secure = f.next()?;
        let expires = f.next()?.parse().ok()?;
        let name = f.next()?.to_string();
        let value = f.next()?.to_string();
        Some(Cookie {
            domain,
            include_subdomains: flag == "TRUE",
            path,
            secure: secure == "TRUE",
            expires,
            name,
            value,
            line: line.to_string(),
        })
    }

    /// Whether a request to `host` and `path` over `https` carries this cookie (the
    /// Netscape rules curl applies to a jar): domain match (subdomains only with the flag
    /// or a leading `.`), path prefix, `secure` only over https, not expired.
    fn matches(&self, host: &str, path: &str, https: bool, now: u64) -> bool {
        let d = self.domain.trim_start_matches('.').to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let domain_ok = host == d
            || ((self.include_subdomains || self.domain.starts_with('.'))
                && host.ends_with(&format!(".{d}")));
        let path_ok = path.starts_with(&self.path)
            && (self.path.ends_with('/')
                || path.len() == self.path.len()
                || path[self.path.len()..].starts_with('/'));
        domain_ok && path_ok && (https || !self.secure) && (self.expires == 0 || self.expires > now)
    }
}

/// What `remote gpg-list-keys` shows of a key (ostree's `ot_dump_gpg_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgKeyInfo {
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    pub created: u64,
    /// Seconds since the epoch; `None` if the key does not expire.
    pub expires: Option<u64>,
    pub revoked: bool,
    /// User IDs, the primary one first (as GnuPG lists them).
    pub uids: Vec<GpgUid>,
    pub subkeys: Vec<GpgSubkey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgUid {
    pub uid: String,
    pub revoked: bool,
    /// Web Key Directory URLs for the e-mail address (advanced, direct), if it has one.
    pub wkd_urls: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgSubkey {
    pub fingerprint: String,
    pub created: u64,
    pub expires: Option<u64>,
    pub revoked: bool,
}

impl Repo {
    /// The keyfile that configures `remote`: the repo's config, else a remotes.d file.
    fn remote_keyfile(&self, remote: &str) -> Option<&KeyFile> {
        self.own_remote_keyfile(remote)
            .or_else(|| self.parent().and_then(|p| p.remote_keyfile(remote)))
    }

    fn own_remote_keyfile(&self, remote: &str) -> Option<&KeyFile> {
        let g = group(remote);
        if self.config().has_group(&g) {
            return Some(self.config());
        }
        self.remotes_d_files
            .iter()
            .map(|(_, kf)| kf)
            .find(|kf| kf.has_group(&g))
    }

    /// The repository that configures `remote`: this one, or the parent repository
    /// (`core.parent`) whose remote this one uses, as ostree (its keyring is there).
    pub(crate) fn remote_home(&self, remote: &str) -> &Repo {
        if self.own_remote_keyfile(remote).is_some() {
            return self;
        }
        match self.parent() {
            Some(p) if p.remote_keyfile(remote).is_some() => p.remote_home(remote),
            _ => self,
        }
    }

    /// The remotes configured here and in the parent repositories (`core.parent`).
    pub fn remote_names(&self) -> Vec<String> {
        let parent = self.parent().map(Repo::remote_names).unwrap_or_default();
        let mut v: Vec<String> = std::iter::once(self.config())
            .chain(self.remotes_d_files.iter().map(|(_, kf)| kf))
            .flat_map(|kf| kf.groups())
            .filter_map(|g| {
                g.strip_prefix("remote \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_string)
            })
            .chain(parent)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn remote_option(&self, remote: &str, key: &str) -> Option<String> {
        self.remote_keyfile(remote)?
            .get(&group(remote), key)
            .map(str::to_string)
    }

    pub fn remote_bool(&self, remote: &str, key: &str, default: bool) -> bool {
        self.remote_keyfile(remote)
            .and_then(|kf| kf.get_bool(&group(remote), key))
            .unwrap_or(default)
    }

    /// `Remote "NAME" not found` (ostree's text) unless the remote is configured.
    pub fn require_remote(&self, remote: &str) -> Result<()> {
        if self.remote_keyfile(remote).is_some() {
            Ok(())
        } else {
            Err(Error::RemoteNotFound(remote.to_string()))
        }
    }

    pub fn remote_url(&self, remote: &str) -> Result<String> {
        self.require_remote(remote)?;
        self.remote_option(remote, "url")
            .ok_or_else(|| Error::Other(format!("No \"url\" option in remote \"{remote}\"")))
    }

    /// The remote's collection ID (`collection-id`), if it has one.
    pub fn remote_collection_id(&self, remote: &str) -> Option<String> {
        self.remote_option(remote, "collection-id")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    }

    /// `ostree remote add`: the remote's group, written in ostree's key order. A URL
    /// `metalink=URL` is stored as `metalink` (oxtree does not pull through metalinks).
    pub fn remote_add(&mut self, name: &str, url: &str, opts: &RemoteAddOptions) -> Result<()> {
        validate_remote_name(name)
            .map_err(|_| Error::InvalidArgument(format!("Invalid remote name {name}")))?;
        if opts.if_not_exists && opts.force {
            return Err(Error::InvalidArgument(
                "Can only specify one of --if-not-exists and --force".into(),
            ));
        }
        if opts.no_sign_verify && !opts.sign_verify.is_empty() {
            return Err(Error::InvalidArgument(
                "Cannot specify both --sign-verify and --no-sign-verify".into(),
            ));
        }
        let sign = opts
            .sign_verify
            .iter()
            .map(|s| parse_sign_verify(s))
            .collect::<Result<Vec<_>>>()?;
        let g = group(name);
        if !self.config().has_group(&g) && self.remote_keyfile(name).is_some() {
            // Configured in remotes.d: the same rules as for the repo's own remotes.
            if opts.if_not_exists {
                return Ok(());
            }
            if !opts.force {
                return Err(Error::RemoteExists(name.to_string()));
            }
            self.remote_delete(name, true)?;
        }
        let mut kf = self.config().clone();
        if kf.has_group(&g) {
            if opts.if_not_exists {
                return Ok(());
            }
            if !opts.force {
                return Err(Error::RemoteExists(name.to_string()));
            }
            kf.remove_group(&g);
        }
        match url.strip_prefix("metalink=") {
            Some(m) => kf.set(&g, "metalink", m),
            None if url.is_empty() && opts.custom_backend.is_some() => {}
            None => kf.set(&g, "url", url),
        }
        if !opts.branches.is_empty() {
            kf.set_list(&g, "branches", &opts.branches);
        }
        if let Some(c) = &opts.contenturl {
            kf.set(&g, "contenturl", c);
        }
        if let Some(c) = &opts.custom_backend {
            kf.set(&g, "custom-backend", c);
        }
        for (k, v) in &opts.set {
            // GLib refuses an empty key (and ostree goes on without it).
            if !k.is_empty() {
                kf.set(&g, k, v);
            }
        }
        if opts.no_gpg_verify {
            kf.set(&g, "gpg-verify", "false");
        }
        if opts.no_sign_verify {
            kf.set(&g, "gpg-verify", "false");
            kf.set(&g, "sign-verify", "false");
        }
        for (k, v, _) in &sign {
            kf.set(&g, k, v);
        }
        if !sign.is_empty() {
            let types: Vec<&str> = sign.iter().map(|(_, _, t)| t.as_str()).collect();
            kf.set(&g, "sign-verify", &types.join(","));
        }
        if let Some(c) = &opts.collection_id {
            kf.set(&g, "collection-id", c);
        }
        // The system repo's new remotes go to /etc/ostree/remotes.d/NAME.conf, as ostree's.
        if let Some(dir) = self.system_remotes_d.clone() {
            let mut file = KeyFile::new();
            for k in kf.keys(&g) {
                if let Some(v) = kf.get(&g, k) {
                    file.set(&g, k, v);
                }
            }
            kf.remove_group(&g);
            if self.config().has_group(&g) {
                self.write_config(kf)?;
            }
            std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
            let path = dir.join(format!("{name}.conf"));
            crate::fsutil::write_atomic(&path, file.to_string().as_bytes(), true)?;
            return self.set_remotes_d(&dir);
        }
        self.write_config(kf)
    }

    /// `ostree remote delete`: the group and the remote's keyring go (its cookies stay, as
    /// in ostree).
    pub fn remote_delete(&mut self, name: &str, if_exists: bool) -> Result<()> {
        let g = group(name);
        if !self.config().has_group(&g) {
            // A remote of remotes.d: its group goes from its file (the file with it when
            // nothing else is left in it), as ostree does.
            if let Some(i) = self
                .remotes_d_files
                .iter()
                .position(|(_, kf)| kf.has_group(&g))
            {
                let (path, kf) = &mut self.remotes_d_files[i];
                kf.remove_group(&g);
                if kf.groups().next().is_none() {
                    std::fs::remove_file(&*path).ctx("remove", &*path)?;
                    self.remotes_d_files.remove(i);
                } else {
                    crate::fsutil::write_atomic(path, kf.to_string().as_bytes(), true)?;
                }
                return Ok(());
            }
            if if_exists {
                return Ok(());
            }
            return self.require_remote(name);
        }
        let mut kf = self.config().clone();
        kf.remove_group(&g);
        self.write_config(kf)?;
        let keyring = self.path().join(format!("{name}.trustedkeys.gpg"));
        match std::fs::remove_file(&keyring) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("remove", keyring),
        }
    }

    fn cookie_jar(&self, remote: &str) -> Result<PathBuf> {
        // ostree takes any name here; a name with `/` would put the jar outside the repo.
        validate_remote_name(remote)
            .map_err(|_| Error::InvalidArgument(format!("Invalid remote name {remote}")))?;
        Ok(self.path().join(format!("{remote}.cookies.txt")))
    }

    /// The cookies in a remote's jar, in file order (a missing jar is empty).
    pub fn remote_list_cookies(&self, remote: &str) -> Result<Vec<Cookie>> {
        let p = self.cookie_jar(remote)?;
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(s.lines().filter_map(Cookie::parse).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).ctx("read", p),
        }
    }

    /// Append a cookie to a remote's jar (`remote add-cookie`), expiring at `expires`.
    pub fn remote_add_cookie(
        &self,
        remote: &str,
        domain: &str,
        path: &str,
        name: &str,
        value: &str,
        expires: u64,
    ) -> Result<()> {
        use std::io::Write;
        let p = self.cookie_jar(remote)?;
        let line = format!(
            "{domain}\t{}\t{path}\tFALSE\t{expires}\t{name}\t{value}\n",
            if domain.starts_with('.') {
                "TRUE"
            } else {
                "FALSE"
            }
        );
        use std::os::unix::fs::OpenOptionsExt;
        // 0644 less the umask, as libsoup's jar
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&p)
            .ctx("open", &p)?;
        f.write_all(line.as_bytes()).ctx("write", &p)?;
        if self.fsync_enabled() {
            f.sync_all().ctx("fsync", &p)?;
        }
        Ok(())
    }

    /// Remove the cookies of that domain, path and name from a remote's jar (`remote
    /// delete-cookie`), rewriting it atomically with the other cookies' lines unchanged.
    /// `Cookie not found in jar` (ostree's text) if there was none; the jar is rewritten
    /// either way, as ostree does.
    pub fn remote_delete_cookie(
        &self,
        remote: &str,
        domain: &str,
        path: &str,
        name: &str,
    ) -> Result<()> {
        let p = self.cookie_jar(remote)?;
        let mut found = false;
        let mut out = String::new();
        for c in self.remote_list_cookies(remote)? {
            if c.domain == domain && c.path == path && c.name == name {
                found = true;
            } else {
                out.push_str(&c.line);
                out.push('\n');
            }
        }
        // (ostree's rewrite of the jar, through libsoup, is 0600 less the umask)
        crate::fsutil::write_atomic_umask(&p, out.as_bytes(), self.fsync_enabled(), 0o600)?;
        if found {
            Ok(())
        } else {
            Err(Error::Other("Cookie not found in jar".into()))
        }
    }

    /// The `Cookie:` header value a request to `url` for `remote` carries, if any cookie in
    /// its jar matches.
    pub(crate) fn remote_cookie_header(&self, remote: &str, url: &str) -> Result<Option<String>> {
        let (https, rest) = match url.split_once("://") {
            Some(("https", r)) => (true, r),
            Some((_, r)) => (false, r),
            None => return Ok(None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cookies: Vec<String> = self
            .remote_list_cookies(remote)?
            .into_iter()
            .filter(|c| c.matches(host, path, https, now))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        Ok((!cookies.is_empty()).then(|| cookies.join("; ")))
    }

    /// Import the OpenPGP public keys in `data` (binary or armored keyrings; `what` names
    /// the source in messages) into the remote's keyring; with `key_ids`, only the keys
    /// whose fingerprint or key ID (of the key or a subkey) ends with one of them, each of
    /// which must be found. Returns how many keys were new. ostree's texts for the errors
    /// scripts see.
    pub fn remote_gpg_import_data(
        &self,
        remote: &str,
        data: &[u8],
        key_ids: &[String],
    ) -> Result<usize> {
        use pgp::composed::SignedPublicKey;
        use pgp::types::KeyDetails;
        if self.require_remote(remote).is_err() {
            return Err(Error::Other(format!("GPG: Remote \"{remote}\" not found")));
        }
        let parsed: Vec<SignedPublicKey> =
            crate::sign::gpg::parse_public_keys(data).unwrap_or_default();
        let fpr = |k: &dyn KeyDetails| format!("{:X}", k.fingerprint());
        let matches = |k: &SignedPublicKey, id: &str| {
            let id = id.trim_start_matches("0x").to_ascii_uppercase();
            !id.is_empty()
                && (fpr(&k.primary_key).ends_with(&id)
                    || k.public_subkeys.iter().any(|s| fpr(&s.key).ends_with(&id)))
        };
        let chosen: Vec<SignedPublicKey> = if key_ids.is_empty() {
            parsed
        } else {
            for id in key_ids {
                if !parsed.iter().any(|k| matches(k, id)) {
                    return Err(Error::Other(format!(
                        "GPG: Unable to find key \"{id}\": GPGME: End of file"
                    )));
                }
            }
            parsed
                .into_iter()
                .filter(|k| key_ids.iter().any(|id| matches(k, id)))
                .collect()
        };
        if chosen.is_empty() {
            return Err(Error::Other(
                "GPG: Unable to export keys: GPGME: No data".into(),
            ));
        }
        let path = self.remote_keyring_path(remote);
        let mut keys = if path.is_file() {
            crate::sign::gpg::load_keyring(&path)?
        } else {
            Vec::new()
        };
        let mut added = 0;
        for k in chosen {
            let f = fpr(&k.primary_key);
            // A key already there takes the new signatures (a changed expiry, a
            // revocation); only new keys count, as in ostree.
            match keys.iter_mut().find(|h| fpr(&h.primary_key) == f) {
                Some(h) => crate::sign::gpg::merge_key(h, k),
                None => {
                    keys.push(k);
                    added += 1;
                }
            }
        }
        // (a keyring is GnuPG's file in ostree: 0644 less the umask)
        crate::fsutil::write_atomic_umask(
            &path,
            &crate::sign::gpg::keyring_bytes(&keys)?,
            self.fsync_enabled(),
            0o644,
        )?;
        Ok(added)
    }

    /// The keys a remote's own keyring (and `gpgkeypath`) holds, as `remote gpg-list-keys`
    /// shows them; without a remote, the global keyrings (`/usr/share/ostree/trusted.gpg.d`).
    pub fn remote_gpg_key_info(&self, remote: Option<&str>) -> Result<Vec<GpgKeyInfo>> {
        let mut files = Vec::new();
        match remote {
            Some(remote) => {
                self.require_remote(remote)?;
                files.push(self.remote_keyring_path(remote));
                if let Some(p) = self.remote_option(remote, "gpgkeypath") {
                    files.extend(
                        p.split([';', ','])
                            .filter(|s| !s.trim().is_empty())
                            .map(|s| PathBuf::from(s.trim())),
                    );
                }
            }
            None => files.push(crate::sign::gpg::global_keyring_dir()),
        }
        let mut out = Vec::new();
        for f in files {
            let mut paths = Vec::new();
            if f.is_dir() {
                for e in std::fs::read_dir(&f).ctx("read directory", &f)? {
                    let p = e.ctx("read directory", &f)?.path();
                    if p.is_file() && p.extension().is_some_and(|x| x == "gpg" || x == "asc") {
                        paths.push(p);
                    }
                }
                paths.sort();
            } else if f.is_file() {
                paths.push(f);
            }
            for p in paths {
                out.extend(crate::sign::gpg::load_keyring(&p)?.iter().map(key_info));
            }
        }
        Ok(out)
    }
}

fn secs(t: pgp::types::Timestamp) -> u64 {
    u64::from(t.as_secs())
}

/// What GnuPG (through GPGME) reports of a key, for `gpg-list-keys`.
fn key_info(k: &pgp::composed::SignedPublicKey) -> GpgKeyInfo {
    use pgp::packet::SignatureType;
    use pgp::types::KeyDetails;
    let created = secs(k.primary_key.created_at());
    let expires = k
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(k.details.direct_signatures.iter())
        .filter(|s| s.typ() != Some(SignatureType::CertRevocation))
        .filter_map(|s| s.key_expiration_time())
        .map(|d| created + u64::from(d.as_secs()))
        .max();
    let revoked = !k.details.revocation_signatures.is_empty();
    // GnuPG lists the primary user ID first: the one flagged primary, else the one with the
    // newest self-signature (ties: the longer, then the greater ID), then the rest in order.
    let uid_date = |u: &pgp::types::SignedUser| {
        u.signatures
            .iter()
            .filter_map(|s| s.created())
            .map(secs)
            .max()
            .unwrap_or(0)
    };
    let user_revoked = |u: &pgp::types::SignedUser| {
        u.signatures
            .iter()
            .any(|s| s.typ() == Some(SignatureType::CertRevocation))
    };
    let candidates: Vec<usize> = (0..k.details.users.len())
        .filter(|&i| k.details.users.get(i).is_some_and(|u| !user_revoked(u)))
        .collect();
    let pick = |flagged: bool| {
        candidates
            .iter()
            .copied()
            .filter(|&i| {
                k.details
                    .users
                    .get(i)
                    .is_some_and(|u| u.is_primary() == flagged)
            })
            .max_by(|&a, &b| {
                let (ua, ub) = (&k.details.users[a], &k.details.users[b]);
                uid_date(ua)
                    .cmp(&uid_date(ub))
                    .then(ua.id.id().len().cmp(&ub.id.id().len()))
                    .then(ua.id.id().cmp(ub.id.id()))
                    .then(b.cmp(&a))
            })
    };
    let primary = pick(true).or_else(|| pick(false));
    let mut order: Vec<usize> = primary.into_iter().collect();
    order.extend((0..k.details.users.len()).filter(|i| Some(*i) != primary));
    let uids = order
        .into_iter()
        .filter_map(|i| k.details.users.get(i))
        .map(|u| {
            let uid = String::from_utf8_lossy(u.id.id()).into_owned();
            GpgUid {
                wkd_urls: wkd_urls(&uid),
                revoked: revoked || user_revoked(u),
                uid,
            }
        })
        .collect();
    let subkeys = k
        .public_subkeys
        .iter()
        .map(|s| {
            let created = secs(s.key.created_at());
            GpgSubkey {
                fingerprint: format!("{:X}", s.key.fingerprint()),
                created,
                expires: s
                    .signatures
                    .iter()
                    .filter(|g| g.typ() == Some(SignatureType::SubkeyBinding))
                    .filter_map(|g| g.key_expiration_time())
                    .map(|d| created + u64::from(d.as_secs()))
                    .max(),
                revoked: s
                    .signatures
                    .iter()
                    .any(|g| g.typ() == Some(SignatureType::SubkeyRevocation)),
            }
        })
        .collect();
    GpgKeyInfo {
        fingerprint: format!("{:X}", k.primary_key.fingerprint()),
        created,
        expires,
        revoked,
        uids,
        subkeys,
    }
}

/// The Web Key Directory URLs (advanced, direct) of the e-mail address in a user ID, as
/// ostree's `ot_gpg_wkd_urls` builds them: the lower-cased local part hashed with SHA-1 and
/// encoded in z-base-32, the domain lower-cased, the local part percent-encoded as `l=`.
fn wkd_urls(uid: &str) -> Option<(String, String)> {
    let email = match (uid.rfind('<'), uid.rfind('>')) {
        (Some(a), Some(b)) if a < b => &uid[a + 1..b],
        _ if uid.contains('@') && !uid.contains(' ') => uid,
        _ => return None,
    };
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let local = local.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    let digest = pgp::crypto::hash::HashAlgorithm::Sha1
        .digest(local.as_bytes())
        .ok()?;
    let hash = zbase32(&digest);
    let escaped: String = local
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Some((
        format!(
            "https://openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{hash}?l={escaped}"
        ),
        format!("https://{domain}/.well-known/openpgpkey/hu/{hash}?l={escaped}"),
    ))
}

/// z-base-32 (RFC 6189 §5.1.6), as WKD uses it.
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wkd_urls_as_ostree() {
        // From `ostree remote gpg-list-keys` for these user IDs.
        assert_eq!(
            super::wkd_urls("Test Key <test@example.com>"),
            Some((
                "https://openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test".into(),
                "https://example.com/.well-known/openpgpkey/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test".into()
            ))
        );
        assert_eq!(
            super::wkd_urls("Upper <Mixed.Case+x@Example.ORG>").map(|u| u.1),
            Some("https://example.org/.well-known/openpgpkey/hu/ipk8hbgs79h5thte7jeax55r1e4ci4jw?l=mixed.case%2Bx".into())
        );
        assert_eq!(super::wkd_urls("NoMail Person"), None);
    }

    #[test]
    fn cookies_match_as_curl_sends_them() {
        let c = super::Cookie::parse(".example.org\tTRUE\t/repo\tTRUE\t0\tn\tv").expect("parse");
        assert!(c.matches("cdn.example.org", "/repo/objects/x", true, 5));
        assert!(c.matches("example.org", "/repo", true, 5));
        assert!(!c.matches("cdn.example.org", "/repo/x", false, 5), "secure");
        assert!(!c.matches("example.org", "/repository", true, 5), "path");
        assert!(!c.matches("badexample.org", "/repo", true, 5), "domain");
        let old = super::Cookie::parse("h\tFALSE\t/\tFALSE\t10\tn\tv").expect("parse");
        assert!(old.matches("h", "/", false, 9));
        assert!(!old.matches("h", "/", false, 11), "expired");
        assert!(!old.matches("x.h", "/", false, 9), "no subdomains");
        assert!(super::Cookie::parse("# Netscape HTTP Cookie File").is_none());
    }
}
