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

thread_local! {
    /// libdeflate's inflater for [`inflate_whole`], one per thread.
    static WHOLE_INFLATER: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// Inflate the raw DEFLATE stream `data` whole with libdeflate (faster than zlib-rs's
/// streaming), to exactly `size` bytes (at most [`WHOLE_INFLATE`]): `None` for a larger
/// size (the caller streams it), an error naming what is wrong with the content. Bytes
/// after the end of the stream are not looked at.
pub(crate) fn inflate_whole(
    data: &[u8],
    size: u64,
) -> Option<std::result::Result<Vec<u8>, String>> {
    if size > WHOLE_INFLATE {
        return None;
    }
    // One byte of room past the declared size tells a longer content.
    let mut out = vec![0u8; size as usize + 1];
    let r = WHOLE_INFLATER.with(|d| d.borrow_mut().deflate_decompress(data, &mut out));
    Some(match r {
        Ok(n) if n as u64 == size => {
            out.truncate(n);
            Ok(out)
        }
        Ok(n) if (n as u64) < size => Err(format!(
            "content is shorter than its declared size ({n} of {size} bytes)"
        )),
        Ok(_) | Err(libdeflater::DecompressionError::InsufficientSpace) => Err(format!(
            "content is larger than its declared size ({size} bytes)"
        )),
        Err(e) => Err(format!("invalid deflate stream: {e}")),
    })
}

/// The rest of a bare-user object `f` at `path` once its `user.ostreemeta` header is read:
/// a symlink's target (the file's NUL-terminated content) or a regular file's payload.
fn bare_user_content(
    f: File,
    mut header: FileHeader,
    path: PathBuf,
    csum: &Checksum,
) -> Result<FileContent> {
    let corrupt = |r: &dyn std::fmt::Display| Error::corrupt(ObjectType::File, *csum, r);
    if header.is_symlink() {
        let mut t = Vec::new();
        (&f).take(1 << 16).read_to_end(&mut t).ctx("read", &path)?;
        if t.pop() != Some(0) {
            return Err(corrupt(&"bare-user symlink object is not NUL-terminated"));
        }
        header.symlink_target =
            String::from_utf8(t).map_err(|_| corrupt(&"symlink target is not UTF-8"))?;
        header.validate().map_err(|e| corrupt(&e))?;
        return Ok(FileContent {
            header,
            size: 0,
            payload: Box::new(std::io::empty()),
            path,
        });
    }
    header.validate().map_err(|e| corrupt(&e))?;
    let len = f.metadata().ctx("stat", &path)?.len();
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

impl Repo {
    /// Open a file object for reading.
    pub fn read_file(&self, csum: &Checksum) -> Result<FileContent> {
        // (else from the parent repository, `core.parent`)
        match (
            self.read_file_at(self.object_path(ObjectType::File, csum), csum),
            self.parent(),
        ) {
            (Err(Error::ObjectMissing { .. }), Some(p)) => p.read_file(csum),
            (r, _) => r,
        }
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
                let header = FileHeader::from_filemeta(&meta).map_err(|e| corrupt(&e))?;
                bare_user_content(f, header, path, csum)
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
        if self.mode == RepoMode::Archive {
            if let Some(c) = checksum_small_filez(&path, csum)? {
                return Ok(c);
            }
        }
        self.checksum_file_streamed(path, csum)
    }

    /// [`Repo::checksum_file_at`] through [`Repo::read_file_at`]'s reader (any size, any mode).
    fn checksum_file_streamed(&self, path: PathBuf, csum: &Checksum) -> Result<Checksum> {
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
        // An object of the parent repository (`core.parent`) is verified there.
        if let Some(p) = self.parent() {
            if !self.has_own_object(ty, csum) && p.has_object(ty, csum) {
                return p.verify_object(ty, csum);
            }
        }
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

/// `.filez` objects up to this size are verified from one read into memory.
const SMALL_FILEZ: u64 = 4 << 20;

/// Per-thread buffers for [`checksum_small_filez`]: the compressed object, the inflated
/// chunk, and the inflater (reset per object instead of allocated); content up to
/// [`WHOLE_INFLATE`] takes [`inflate_whole`].
struct FilezScratch {
    input: Vec<u8>,
    output: Vec<u8>,
    inflate: flate2::Decompress,
}

thread_local! {
    static FILEZ_SCRATCH: std::cell::RefCell<FilezScratch> = std::cell::RefCell::new(FilezScratch {
        input: Vec::new(),
        output: vec![0u8; 256 * 1024],
        inflate: flate2::Decompress::new(false),
    });
}

/// Content up to this size is inflated whole, by libdeflate (1.5× zlib-rs's speed on the
/// Debian rootfs: 0.22 s against 0.34 s on one core); larger content (a small object can
/// declare, and hold, far more: deflate packs up to 1032:1) in 256 KiB steps by zlib-rs.
const WHOLE_INFLATE: u64 = 4 << 20;

/// The checksum of an archive-mode file object of at most [`SMALL_FILEZ`] bytes, or `None`
/// for a larger one (streamed by the caller). fsck of an archive repo is bound by inflate
/// and SHA-256; this path saves what is around them: one read instead of 8 KiB ones, no
/// zeroed 128 KiB buffer and no inflater allocated per object. The checks are those of the
/// streamed path: the payload must inflate to exactly the declared size.
fn checksum_small_filez(path: &std::path::Path, csum: &Checksum) -> Result<Option<Checksum>> {
    let corrupt = |r: &dyn std::fmt::Display| Error::corrupt(ObjectType::File, *csum, r);
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ObjectMissing {
                ty: ObjectType::File,
                csum: *csum,
            })
        }
        Err(e) => return Err(e).ctx("open", path),
    };
    let len = f.metadata().ctx("stat", path)?.len();
    if len > SMALL_FILEZ {
        return Ok(None);
    }
    FILEZ_SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let FilezScratch {
            input,
            output,
            inflate,
        } = &mut *guard;
        input.clear();
        (&mut f)
            .take(SMALL_FILEZ + 1)
            .read_to_end(input)
            .ctx("read", path)?;
        let mut cur: &[u8] = input;
        let (header, size) = read_archive_header(&mut cur).map_err(|e| corrupt(&e))?;
        let mut h = sha2::Sha256::new();
        h.update(header.content_stream_prefix());
        if header.is_symlink() {
            return Ok(Some(Checksum(h.finalize().into())));
        }
        let larger = || {
            corrupt(&format!(
                "{}: content is larger than its declared size",
                path.display()
            ))
        };
        let shorter = || {
            corrupt(&format!(
                "{}: content is shorter than its declared size",
                path.display()
            ))
        };
        if let Some(inflated) = inflate_whole(cur, size) {
            let content = inflated.map_err(|e| corrupt(&format!("{}: {e}", path.display())))?;
            h.update(&content);
            return Ok(Some(Checksum(h.finalize().into())));
        }
        inflate.reset(false);
        let mut total = 0u64;
        loop {
            let (in0, out0) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress(cur, output, flate2::FlushDecompress::None)
                .map_err(|e| corrupt(&e))?;
            let used = usize::try_from(inflate.total_in() - in0).unwrap_or(usize::MAX);
            let made = usize::try_from(inflate.total_out() - out0).unwrap_or(usize::MAX);
            cur = cur.get(used..).unwrap_or_default();
            total += made as u64;
            if total > size {
                return Err(larger());
            }
            h.update(output.get(..made).unwrap_or_default());
            if status == flate2::Status::StreamEnd || used == 0 && made == 0 {
                break;
            }
        }
        if total < size {
            return Err(shorter());
        }
        Ok(Some(Checksum(h.finalize().into())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A `.filez`: the header declaring `declared` bytes, then `payload` deflated.
    fn filez(header: &FileHeader, declared: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = header.archive_prefix(declared);
        let mut enc = flate2::write::DeflateEncoder::new(&mut v, flate2::Compression::new(6));
        enc.write_all(payload).expect("deflate");
        enc.finish().expect("deflate");
        v
    }

    /// A pull's whole inflate: exactly the declared size, or an error saying which way it
    /// is off; a size past the limit is left to the streamed path.
    #[test]
    fn inflate_whole_holds_content_to_its_declared_size() {
        let data = b"some content, some content, some content\n".repeat(100);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&data).expect("deflate");
        let packed = enc.finish().expect("deflate");
        let n = data.len() as u64;
        let ok = inflate_whole(&packed, n).expect("small").expect("inflate");
        assert!(ok == data);
        let e = inflate_whole(&packed, n + 1)
            .expect("small")
            .expect_err("short");
        assert!(e.contains("shorter than its declared size"), "{e}");
        let e = inflate_whole(&packed, n - 1)
            .expect("small")
            .expect_err("long");
        assert!(e.contains("larger than its declared size"), "{e}");
        let e = inflate_whole(b"not deflate at all", n)
            .expect("small")
            .expect_err("bad");
        assert!(e.contains("invalid deflate stream"), "{e}");
        assert!(inflate_whole(&packed, WHOLE_INFLATE + 1).is_none());
    }

    /// The in-memory path fsck takes for small `.filez` objects accepts and refuses exactly
    /// what the streamed reader does: the right size, more or fewer bytes than declared,
    /// a broken deflate stream, a truncated one, a symlink.
    #[test]
    fn small_filez_path_agrees_with_the_streamed_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repo::create(&tmp.path().join("repo"), RepoMode::Archive).expect("init");
        let file = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: String::new(),
            xattrs: Vec::new(),
        };
        let link = FileHeader {
            mode: 0o120777,
            symlink_target: "target".into(),
            ..file.clone()
        };
        let data = b"hello world, some content\n".repeat(20_000);
        let big = b"0123456789abcdef".repeat((WHOLE_INFLATE as usize) / 16 + 1000);
        let n = data.len() as u64;
        let good = filez(&file, n, &data);
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 40);
        let mut broken = file.archive_prefix(n);
        broken.extend_from_slice(b"this is not a deflate stream at all");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("good", good.clone()),
            ("larger than declared", filez(&file, n - 1, &data)),
            ("smaller than declared", filez(&file, n + 1, &data)),
            ("truncated", truncated),
            ("broken deflate", broken),
            ("symlink", filez(&link, 0, b"")),
            ("header only", good.get(..4).unwrap_or_default().to_vec()),
            ("empty", filez(&file, 0, b"")),
            ("empty declared one byte", filez(&file, 1, b"")),
            // Past the whole-inflate size: the stepped path, both ways.
            ("large", filez(&file, big.len() as u64, &big)),
            (
                "large, one byte more",
                filez(&file, big.len() as u64 - 1, &big),
            ),
            (
                "large, one byte less",
                filez(&file, big.len() as u64 + 1, &big),
            ),
            // Declared at the whole-inflate size, holding one byte more.
            (
                "at the limit, one byte more",
                filez(
                    &file,
                    WHOLE_INFLATE,
                    &vec![b'x'; WHOLE_INFLATE as usize + 1],
                ),
            ),
        ];
        let csum = Checksum([7u8; 32]);
        for (what, bytes) in cases {
            let p = tmp.path().join(what.replace(' ', "-"));
            std::fs::write(&p, &bytes).expect("write");
            let fast = checksum_small_filez(&p, &csum)
                .map(|c| c.expect("small enough for the in-memory path"));
            let slow = repo.checksum_file_streamed(p.clone(), &csum);
            match (&fast, &slow) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: checksums differ"),
                (Err(_), Err(_)) => {}
                _ => panic!("{what}: in-memory {fast:?}, streamed {slow:?}"),
            }
            if what == "large" || what == "empty" {
                assert!(fast.is_ok(), "{what}: refused: {fast:?}");
            }
            if what == "good" {
                let mut h = sha2::Sha256::new();
                h.update(file.content_stream_prefix());
                h.update(&data);
                assert_eq!(fast.ok(), Some(Checksum(h.finalize().into())));
            }
            if what.contains("declared")
                || what.contains("more")
                || what.contains("less")
                || what == "broken deflate"
            {
                assert!(slow.is_err(), "{what}: accepted");
            }
        }
    }
}
