//! `ostree export`: a commit (or a subpath of it) as a tar stream, in the form ostree writes
//! with libarchive: GNU tar headers (long names as `././@LongLink`), the root as `./` (or the
//! prefix), directories with a trailing `/`, each directory's files before its
//! subdirectories, every entry's mtime the commit's timestamp, numeric owners without names.
//! GNU tar has no place for extended attributes, so none are written (as ostree's).
//! Written with the `tar` crate (already used to commit tarballs).

use super::checkout::PathEntry;
use super::Repo;
use crate::error::{Error, Result};
use crate::object::Checksum;
use std::io::Write;

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Export only this path of the commit (`--subpath`).
    pub subpath: Option<String>,
    /// Put this in front of every name (`--prefix`; as ostree, `pre` gives `pre/` for the root
    /// and `prefile` for a file: add the slash yourself).
    pub prefix: Option<String>,
    /// End the stream on a whole record of 10240 bytes, as libarchive does when ostree
    /// writes to its standard output (not with `--output=FILE`).
    pub pad_records: bool,
}

impl Repo {
    /// Write `commit` as a tar stream to `out`.
    pub fn export_tar(
        &self,
        commit: &Checksum,
        out: impl Write,
        opts: &ExportOptions,
    ) -> Result<()> {
        let mtime = self.load_commit(commit)?.timestamp;
        let sub = opts.subpath.as_deref().unwrap_or("/");
        let entry = self.lookup_path(commit, sub)?;
        let mut w = Writer {
            repo: self,
            tar: tar::Builder::new(crate::fsutil::Counted { inner: out, n: 0 }),
            mtime,
            prefix: opts.prefix.clone().unwrap_or_default(),
        };
        match entry {
            PathEntry::Dir { tree, meta } => {
                let root = if w.prefix.is_empty() {
                    "./".to_string()
                } else if w.prefix.ends_with('/') {
                    w.prefix.clone()
                } else {
                    format!("{}/", w.prefix)
                };
                w.dir_header(&root, &meta)?;
                w.dir(&tree, "")?;
            }
            PathEntry::File(f) => {
                let name = sub.rsplit('/').find(|c| !c.is_empty()).unwrap_or(sub);
                w.file(&format!("{}{name}", w.prefix), &f)?;
            }
        }
        let err = |e: std::io::Error| Error::Other(format!("writing the tar stream: {e}"));
        let mut out = w.tar.into_inner().map_err(err)?;
        // libarchive (ostree) writes whole records of 20 blocks to a stream: pad with zeros.
        let pad = if opts.pad_records {
            (RECORD - out.n % RECORD) % RECORD
        } else {
            0
        };
        out.write_all(&vec![0u8; pad as usize]).map_err(err)?;
        out.flush().map_err(err)?;
        Ok(())
    }
}

/// libarchive's default record size (20 blocks of 512 bytes).
const RECORD: u64 = 10240;

struct Writer<'a, W: Write> {
    repo: &'a Repo,
    tar: tar::Builder<W>,
    mtime: u64,
    prefix: String,
}

impl<W: Write> Writer<'_, W> {
    fn header(&self, mode: u32, uid: u32, gid: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode & 0o7777);
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(self.mtime);
        h.set_size(0);
        h
    }

    /// Write one entry as libarchive's gnutar writer does: a name longer than the 100-byte
    /// field goes first as a `././@LongLink` entry (`L`; link targets as `K`, see `file`),
    /// and the header checksum is six octal digits, NUL, space.
    fn append(&mut self, mut h: tar::Header, name: &str, data: impl std::io::Read) -> Result<()> {
        let err =
            |e: std::io::Error| Error::Other(format!("writing {name} to the tar stream: {e}"));
        if name.len() > 100 {
            self.long_link(b'L', name.as_bytes()).map_err(err)?;
        }
        let field = &mut h.as_old_mut().name;
        let n = name.len().min(field.len());
        field.fill(0);
        field[..n].copy_from_slice(&name.as_bytes()[..n]);
        set_cksum(&mut h);
        self.tar.append(&h, data).map_err(err)
    }

    fn long_link(&mut self, kind: u8, value: &[u8]) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(value.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_username("root")?;
        // libarchive's choice ("the values GNU tar happens to use").
        h.set_groupname("wheel")?;
        let name = b"././@LongLink";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if kind == b'K' {
            let lf = &mut h.as_old_mut().linkname;
            let n = value.len().min(lf.len());
            lf[..n].copy_from_slice(&value[..n]);
        }
        set_cksum(&mut h);
        let mut data = value.to_vec();
        data.push(0);
        self.tar.append(&h, data.as_slice())
    }

    fn dir_header(&mut self, name: &str, meta: &Checksum) -> Result<()> {
        let dm = self.repo.load_dirmeta(meta)?;
        let mut h = self.header(dm.mode, dm.uid, dm.gid);
        h.set_entry_type(tar::EntryType::Directory);
        self.append(h, name, std::io::empty())
    }

    fn dir(&mut self, tree: &Checksum, rel: &str) -> Result<()> {
        crate::stack::check(|| rel.to_string())?;
        let dt = self.repo.load_dirtree(tree)?;
        for (name, f) in &dt.files {
            self.file(&format!("{}{rel}{name}", self.prefix), f)?;
        }
        for (name, t, m) in &dt.dirs {
            let sub = format!("{rel}{name}/");
            self.dir_header(&format!("{}{sub}", self.prefix), m)?;
            self.dir(t, &sub)?;
        }
        Ok(())
    }

    fn file(&mut self, name: &str, csum: &Checksum) -> Result<()> {
        let fc = self.repo.read_file(csum)?;
        let h = &fc.header;
        let mut th = self.header(h.mode, h.uid, h.gid);
        if h.is_symlink() {
            th.set_entry_type(tar::EntryType::Symlink);
            // The link name goes into the header here; long ones are split off in append().
            let target = h.symlink_target.as_bytes();
            let lf = &mut th.as_old_mut().linkname;
            let n = target.len().min(lf.len());
            lf[..n].copy_from_slice(&target[..n]);
            if target.len() > lf.len() {
                // Remember the whole target for the long-link entry.
                self.long_link(b'K', target)
                    .map_err(|e| Error::Other(format!("writing {name} to the tar stream: {e}")))?;
            }
            self.append(th, name, std::io::empty())
        } else {
            th.set_entry_type(tar::EntryType::Regular);
            th.set_size(fc.size);
            self.append(th, name, fc.payload)
        }
    }
}

/// The header checksum as libarchive writes it: six octal digits, NUL, space.
fn set_cksum(h: &mut tar::Header) {
    let bytes = h.as_mut_bytes();
    bytes[148..156].fill(b' ');
    let sum: u32 = bytes.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}");
    bytes[148..154].copy_from_slice(&s.as_bytes()[s.len() - 6..]);
    bytes[154] = 0;
    bytes[155] = b' ';
}
