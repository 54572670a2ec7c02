//! Write transactions: objects are staged in `tmp/staging-<bootid>-<random>/`, flushed with
//! one `syncfs`, then renamed into `objects/` (spec §3.6). An interrupted transaction leaves
//! only debris under `tmp/`, never a half-written object under `objects/`, and refs are
//! written only after the objects they name are durable.

use super::{Repo, RepoMode};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, FileHeader, ObjectType};
use sha2::Digest;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct Transaction<'r> {
    repo: &'r Repo,
    staging: PathBuf,
    staged: Mutex<HashSet<(ObjectType, Checksum)>>,
    done: bool,
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "noboot".into())
}

impl Repo {
    pub fn begin(&self) -> Result<Transaction<'_>> {
        let tmp = self.path.join("tmp");
        let staging = tempfile::Builder::new()
            .prefix(&format!("staging-{}-", boot_id()))
            .rand_bytes(8)
            .tempdir_in(&tmp)
            .ctx("create staging directory in", &tmp)?
            .keep();
        Ok(Transaction {
            repo: self,
            staging,
            staged: Mutex::new(HashSet::new()),
            done: false,
        })
    }
}

impl Transaction<'_> {
    pub fn repo(&self) -> &Repo {
        self.repo
    }

    fn staged_name(&self, ty: ObjectType, csum: &Checksum) -> PathBuf {
        let rel = self.repo.object_relpath(ty, csum);
        self.staging
            .join(rel.trim_start_matches("objects/").replace('/', "-"))
    }

    /// True if the object is in the repo or already staged in this transaction.
    pub fn has_object(&self, ty: ObjectType, csum: &Checksum) -> bool {
        self.staged
            .lock()
            .map(|s| s.contains(&(ty, *csum)))
            .unwrap_or(false)
            || self.repo.has_object(ty, csum)
    }

    /// Size on disk of an object staged in this transaction or already in the repo.
    pub fn stored_size(&self, ty: ObjectType, csum: &Checksum) -> Result<u64> {
        let staged = self.staged_name(ty, csum);
        match std::fs::symlink_metadata(&staged) {
            Ok(m) => Ok(m.len()),
            Err(_) => {
                let p = self.repo.object_path(ty, csum);
                Ok(std::fs::symlink_metadata(&p).ctx("stat", p)?.len())
            }
        }
    }

    /// Claim an object for writing; false if it exists or another thread is writing it.
    fn claim(&self, ty: ObjectType, csum: &Checksum) -> bool {
        if self.repo.has_object(ty, csum) {
            return false;
        }
        self.staged
            .lock()
            .map(|mut s| s.insert((ty, *csum)))
            .unwrap_or(false)
    }

    fn unclaim(&self, ty: ObjectType, csum: &Checksum) {
        if let Ok(mut s) = self.staged.lock() {
            s.remove(&(ty, *csum));
        }
    }

    /// Write a hashed metadata object (commit, dirtree, dirmeta) and return its checksum.
    pub fn write_metadata(&self, ty: ObjectType, data: &[u8]) -> Result<Checksum> {
        let csum = Checksum::digest(data);
        self.write_metadata_as(ty, &csum, data)?;
        Ok(csum)
    }

    /// Write a metadata object under a given name (commitmeta is named by its commit).
    /// Commitmeta is replaced if it exists; others are written once.
    pub fn write_metadata_as(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> Result<()> {
        if ty == ObjectType::CommitMeta {
            self.staged.lock().map(|mut s| s.insert((ty, *csum))).ok();
        } else if !self.claim(ty, csum) {
            return Ok(());
        }
        let dest = self.staged_name(ty, csum);
        let res = (|| {
            let mut tmp = crate::fsutil::tempfile_in(&self.staging)?;
            tmp.as_file_mut()
                .write_all(data)
                .ctx("write", tmp.path().to_path_buf())?;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .ctx("chmod", tmp.path().to_path_buf())?;
            tmp.persist(&dest).map_err(|e| Error::Io {
                op: "rename",
                path: dest.clone(),
                source: e.error,
            })?;
            Ok(())
        })();
        if res.is_err() {
            self.unclaim(ty, csum);
        }
        res
    }

    /// Write a file object from its header and payload, hashing as it goes. If `expected`
    /// is given, a mismatch fails and nothing is stored. Returns the checksum; if the object
    /// already exists nothing is read.
    pub fn write_file(
        &self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
        expected: Option<&Checksum>,
    ) -> Result<Checksum> {
        header
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("file object: {e}")))?;
        if let Some(c) = expected {
            if !self.claim(ObjectType::File, c) {
                return Ok(*c);
            }
        }
        let res = self.write_file_inner(header, payload, size, expected);
        if res.is_err() {
            if let Some(c) = expected {
                self.unclaim(ObjectType::File, c);
            }
        }
        res
    }

    fn write_file_inner(
        &self,
        header: &FileHeader,
        payload: &mut dyn Read,
        size: u64,
        expected: Option<&Checksum>,
    ) -> Result<Checksum> {
        let mut hasher = sha2::Sha256::new();
        hasher.update(header.content_stream_prefix());
        let mode = self.repo.mode;
        if header.is_symlink() && matches!(mode, RepoMode::Bare | RepoMode::BareUserOnly) {
            let csum = Checksum(hasher.finalize().into());
            check_expected(expected, &csum)?;
            let tmpname = self.staging.join(format!(".tmp-link-{}", csum.to_hex()));
            let _ = std::fs::remove_file(&tmpname);
            std::os::unix::fs::symlink(&header.symlink_target, &tmpname)
                .ctx("symlink", &tmpname)?;
            if mode == RepoMode::Bare {
                std::os::unix::fs::lchown(&tmpname, Some(header.uid), Some(header.gid))
                    .ctx("chown", &tmpname)?;
                for (k, v) in &header.xattrs {
                    crate::fsutil::lset_xattr(&tmpname, k, v)?;
                }
            }
            return self.finish_staged(&tmpname, &csum, expected.is_none());
        }
        let mut tmp = crate::fsutil::tempfile_in(&self.staging)?;
        let tmppath = tmp.path().to_path_buf();
        {
            let file = tmp.as_file_mut();
            match mode {
                RepoMode::Archive => {
                    file.write_all(&header.archive_prefix(if header.is_symlink() {
                        0
                    } else {
                        size
                    }))
                    .ctx("write", &tmppath)?;
                    if !header.is_symlink() {
                        let mut enc = flate2::write::DeflateEncoder::new(
                            std::io::BufWriter::with_capacity(256 * 1024, &mut *file),
                            flate2::Compression::new(6),
                        );
                        copy_hashing(payload, &mut enc, &mut hasher, size, &tmppath)?;
                        enc.finish()
                            .and_then(|mut w| w.flush())
                            .ctx("write", &tmppath)?;
                    }
                    file.set_permissions(std::fs::Permissions::from_mode(0o644))
                        .ctx("chmod", &tmppath)?;
                }
                RepoMode::BareUser => {
                    if header.is_symlink() {
                        file.write_all(header.symlink_target.as_bytes())
                            .ctx("write", &tmppath)?;
                        file.write_all(&[0]).ctx("write", &tmppath)?;
                    } else {
                        copy_to_file(payload, file, &mut hasher, size, &tmppath)?;
                    }
                    crate::fsutil::fset_xattr(
                        file,
                        b"user.ostreemeta",
                        &header.to_filemeta(),
                        &tmppath,
                    )?;
                    let m = if header.is_symlink() {
                        0o644
                    } else {
                        (header.mode & (S_IFREG | 0o775)) | 0o400
                    };
                    file.set_permissions(std::fs::Permissions::from_mode(m & 0o7777))
                        .ctx("chmod", &tmppath)?;
                }
                RepoMode::Bare | RepoMode::BareUserOnly => {
                    copy_to_file(payload, file, &mut hasher, size, &tmppath)?;
                    if mode == RepoMode::Bare {
                        rustix::fs::fchown(
                            &*file,
                            Some(rustix::fs::Uid::from_raw(header.uid)),
                            Some(rustix::fs::Gid::from_raw(header.gid)),
                        )
                        .ctx("chown", &tmppath)?;
                        for (k, v) in &header.xattrs {
                            crate::fsutil::fset_xattr(file, k, v, &tmppath)?;
                        }
                    }
                    // chmod after chown: chown clears setuid bits.
                    file.set_permissions(std::fs::Permissions::from_mode(header.mode & !S_IFMT))
                        .ctx("chmod", &tmppath)?;
                }
            }
            // Objects carry mtime 0 (OSTREE_TIMESTAMP), so hardlinked checkouts do too.
            let zero = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            };
            rustix::fs::futimens(&*file, &zero).ctx("set times of", &tmppath)?;
        }
        let csum = Checksum(hasher.finalize().into());
        check_expected(expected, &csum)?;
        let (_, path) = tmp.keep().map_err(|e| Error::Io {
            op: "keep",
            path: tmppath.clone(),
            source: e.error,
        })?;
        self.finish_staged(&path, &csum, expected.is_none())
    }

    fn finish_staged(&self, tmp: &Path, csum: &Checksum, need_claim: bool) -> Result<Checksum> {
        if need_claim && !self.claim(ObjectType::File, csum) {
            let _ = std::fs::remove_file(tmp);
            return Ok(*csum);
        }
        let dest = self.staged_name(ObjectType::File, csum);
        std::fs::rename(tmp, &dest).ctx("rename", &dest)?;
        Ok(*csum)
    }

    /// Make every staged object durable and move it into `objects/`.
    pub fn commit(mut self) -> Result<()> {
        let repo = self.repo;
        if repo.fsync {
            crate::fsutil::syncfs(&self.staging)?;
        }
        let staged: Vec<(ObjectType, Checksum)> = self
            .staged
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        // Fan-out directories first, then the renames in parallel (metadata operations on
        // many small objects dominate a commit of a typical OS tree).
        let dirs: HashSet<PathBuf> = staged
            .iter()
            .filter_map(|(ty, c)| repo.object_path(*ty, c).parent().map(Path::to_path_buf))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).ctx("create directory", d)?;
        }
        use rayon::prelude::*;
        staged.par_iter().try_for_each(|(ty, csum)| {
            let dest = repo.object_path(*ty, csum);
            std::fs::rename(self.staged_name(*ty, csum), &dest).ctx("rename", &dest)
        })?;
        if repo.fsync {
            crate::fsutil::syncfs(&repo.path)?;
        }
        self.done = true;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn check_expected(expected: Option<&Checksum>, actual: &Checksum) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(Error::ChecksumMismatch {
            ty: ObjectType::File,
            csum: *e,
            actual: *actual,
        }),
        _ => Ok(()),
    }
}

fn copy_to_file(
    src: &mut dyn Read,
    file: &mut std::fs::File,
    hasher: &mut sha2::Sha256,
    size: u64,
    path: &Path,
) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
    copy_hashing(src, &mut w, hasher, size, path)?;
    w.flush().ctx("write", path)
}

fn copy_hashing(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    hasher: &mut sha2::Sha256,
    size: u64,
    path: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("read content for", path),
        };
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).ctx("write", path)?;
        total += n as u64;
    }
    // No flush here: on a deflate encoder that would emit a sync block and change the
    // stored bytes (ostree.sizes records them). Callers finish/flush their writers.
    if total != size {
        return Err(Error::Other(format!(
            "{}: expected {size} bytes of content, read {total}",
            path.display()
        )));
    }
    Ok(())
}
