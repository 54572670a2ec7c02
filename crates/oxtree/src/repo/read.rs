//! Reading file objects back in every repo mode, and verifying their checksums.

use super::{Repo, RepoMode};
use crate::error::{Error, IoContext, Result};
use crate::object::{Checksum, FileHeader, ObjectType};
use sha2::Digest;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A file object: its header and a reader over its payload (empty for symlinks).
pub struct FileContent {
    pub header: FileHeader,
    /// Uncompressed payload size.
    pub size: u64,
    pub payload: Box<dyn Read + Send>,
    /// Where it is stored (for error messages and hardlinking).
    pub path: PathBuf,
}

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContent")
            .field("header", &self.header)
            .field("size", &self.size)
            .finish()
    }
}

/// Reads at most `limit` bytes and fails if the inner stream has more: a `.filez` that
/// inflates past its declared size is a decompression bomb, not a file.
pub(crate) struct Limited<R> {
    inner: R,
    remaining: u64,
    path: PathBuf,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: content is larger than its declared size",
                        self.path.display()
                    ),
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: content is shorter than its declared size",
                    self.path.display()
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Read the framed header at the start of a `.filez` stream: (header, declared uncompressed
/// size). The reader is left at the start of the deflate data. Errors are short reasons for
/// the caller to attach to the object.
pub(crate) fn read_archive_header(
    r: &mut dyn Read,
) -> std::result::Result<(FileHeader, u64), String> {
    let mut lenbuf = [0u8; 8];
    r.read_exact(&mut lenbuf)
        .map_err(|_| "truncated file header".to_string())?;
    let hlen = u32::from_be_bytes([lenbuf[0], lenbuf[1], lenbuf[2], lenbuf[3]]) as usize;
    if hlen == 0 || hlen > 16 << 20 {
        return Err(format!("invalid file header length {hlen}"));
    }
    let mut hdr = lenbuf.to_vec();
    hdr.resize(8 + hlen, 0);
    r.read_exact(&mut hdr[8..])
        .map_err(|_| "truncated file header".to_string())?;
    let (header, size, _) = FileHeader::parse_archive(&hdr).map_err(|e| e.to_string())?;
    Ok((header, size))
}

/// The payload of a `.filez` after its header: raw deflate, at most `size` bytes inflated.
pub(crate) fn archive_payload<'a, R: std::io::BufRead + Send + 'a>(
    r: R,
    size: u64,
    path: PathBuf,
) -> Box<dyn Read + Send + 'a> {
    Box::new(Limited {
        inner: flate2::bufread::DeflateDecoder::new(r),
        remaining: size,
        path,
    })
}

impl Repo {
    /// Open a file object for reading.
    pub fn read_file(&self, csum: &Checksum) -> Result<FileContent> {
        self.read_file_at(self.object_path(ObjectType::File, csum), csum)
    }

    /// Read a file object stored in this repo's format at `path` (e.g. still staged).
    pub(crate) fn read_file_at(&self, path: PathBuf, csum: &Checksum) -> Result<FileContent> {
        let missing = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::ObjectMissing {
                    ty: ObjectType::File,
                    csum: *csum,
                }
            } else {
                Error::Io {
                    op: "open",
                    path: path.clone(),
                    source: e,
                }
            }
        };
        let corrupt = |r: &dyn std::fmt::Display| Error::corrupt(ObjectType::File, *csum, r);
        match self.mode {
            RepoMode::Archive => {
                let f = File::open(&path).map_err(missing)?;
                let mut r = BufReader::new(f);
                let (header, size) = read_archive_header(&mut r).map_err(|e| corrupt(&e))?;
                let payload: Box<dyn Read + Send> = if header.is_symlink() {
                    Box::new(std::io::empty())
                } else {
                    Box::new(Limited {
                        inner: flate2::bufread::DeflateDecoder::new(r),
                        remaining: size,
                        path: path.clone(),
                    })
                };
                Ok(FileContent {
                    size: if header.is_symlink() { 0 } else { size },
                    header,
                    payload,
                    path,
                })
            }
            RepoMode::BareUser => {
                let f = File::open(&path).map_err(missing)?;
                let meta = crate::fsutil::fget_xattr(&f, "user.ostreemeta", &path)?
                    .ok_or_else(|| corrupt(&"bare-user object has no user.ostreemeta xattr"))?;
                let mut header = FileHeader::from_filemeta(&meta).map_err(|e| corrupt(&e))?;
                let len = f.metadata().ctx("stat", &path)?.len();
                if header.is_symlink() {
                    let mut t = Vec::new();
                    (&f).take(1 << 16).read_to_end(&mut t).ctx("read", &path)?;
                    if t.pop() != Some(0) {
                        return Err(corrupt(&"bare-user symlink object is not NUL-terminated"));
                    }
                    header.symlink_target = String::from_utf8(t)
                        .map_err(|_| corrupt(&"symlink target is not UTF-8"))?;
                    header.validate().map_err(|e| corrupt(&e))?;
                    return Ok(FileContent {
                        header,
                        size: 0,
                        payload: Box::new(std::io::empty()),
                        path,
                    });
                }
                header.validate().map_err(|e| corrupt(&e))?;
                Ok(FileContent {
                    header,
                    size: len,
                    payload: Box::new(Limited {
                        inner: f,
                        remaining: len,
                        path: path.clone(),
                    }),
                    path,
                })
            }
            RepoMode::Bare | RepoMode::BareUserOnly => {
                let st = std::fs::symlink_metadata(&path).map_err(missing)?;
                let bare = self.mode == RepoMode::Bare;
                let mut header = FileHeader {
                    uid: if bare { st.uid() } else { 0 },
                    gid: if bare { st.gid() } else { 0 },
                    mode: st.mode(),
                    symlink_target: String::new(),
                    xattrs: if bare && !self.xattrs_disabled() {
                        crate::fsutil::read_xattrs(&path)?
                    } else {
                        Vec::new()
                    },
                };
                if st.file_type().is_symlink() {
                    let t = std::fs::read_link(&path).ctx("readlink", &path)?;
                    header.symlink_target = t
                        .into_os_string()
                        .into_string()
                        .map_err(|_| corrupt(&"symlink target is not UTF-8"))?;
                    return Ok(FileContent {
                        header,
                        size: 0,
                        payload: Box::new(std::io::empty()),
                        path,
                    });
                }
                let f = File::open(&path).ctx("open", &path)?;
                Ok(FileContent {
                    header,
                    size: st.len(),
                    payload: Box::new(Limited {
                        inner: f,
                        remaining: st.len(),
                        path: path.clone(),
                    }),
                    path,
                })
            }
        }
    }

    /// Recompute a file object's checksum from its stored form.
    pub fn checksum_file_object(&self, csum: &Checksum) -> Result<Checksum> {
        self.checksum_file_at(self.object_path(ObjectType::File, csum), csum)
    }

    /// Recompute the checksum of a file object stored at `path`.
    pub(crate) fn checksum_file_at(&self, path: PathBuf, csum: &Checksum) -> Result<Checksum> {
        let mut fc = self.read_file_at(path, csum)?;
        let mut h = sha2::Sha256::new();
        h.update(fc.header.content_stream_prefix());
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = fc
                .payload
                .read(&mut buf)
                .map_err(|e| Error::corrupt(ObjectType::File, *csum, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Checksum(h.finalize().into()))
    }

    /// Verify one object of any type; `Ok(())` if its content matches its name.
    pub fn verify_object(&self, ty: ObjectType, csum: &Checksum) -> Result<()> {
        let actual = match ty {
            ObjectType::File => self.checksum_file_object(csum)?,
            ObjectType::Commit => {
                self.load_commit(csum)?;
                *csum
            }
            ObjectType::DirTree => {
                self.load_dirtree(csum)?;
                *csum
            }
            ObjectType::DirMeta => {
                self.load_dirmeta(csum)?;
                *csum
            }
            ObjectType::CommitMeta => {
                self.load_commitmeta(csum)?;
                *csum
            }
            _ => *csum,
        };
        if actual != *csum {
            return Err(Error::ChecksumMismatch {
                ty,
                csum: *csum,
                actual,
            });
        }
        Ok(())
    }
}
