//! Filesystem helpers: the only module that calls the kernel beyond `std::fs` — xattrs,
//! atomic replace (tmp → fsync → rename), syncfs — and the GLib keyfile format that OSTree
//! uses for `config`, `.origin` and remotes.

pub mod keyfile;

use crate::error::{Error, IoContext, Result};
use crate::object::Xattrs;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Read all extended attributes of `path` without following a final symlink, sorted by name.
/// Filesystems without xattr support give an empty list.
pub fn read_xattrs(path: &Path) -> Result<Xattrs> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path).ctx("listxattr", path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx("listxattr", path),
        }
    };
    let mut out = Xattrs::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or_default());
        if cname.is_empty() {
            continue; // non-UTF-8 xattr names are not representable through rustix's path::Arg here
        }
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut val[..]) {
                Ok(l) => break l,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr_query(path, cname).ctx("getxattr", path)?;
                    val.resize(need.max(val.len() * 2), 0);
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(e).ctx("getxattr", path),
            }
        };
        if len == usize::MAX {
            continue;
        }
        val.truncate(len);
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

/// Read one xattr of an open file; `None` if it is absent.
pub fn fget_xattr(file: &File, name: &str, path: &Path) -> Result<Option<Vec<u8>>> {
    let mut val = vec![0u8; 512];
    loop {
        match rustix::fs::fgetxattr(file, name, &mut val[..]) {
            Ok(l) => {
                val.truncate(l);
                return Ok(Some(val));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::fgetxattr_query(file, name).ctx("getxattr", path)?;
                val.resize(need.max(val.len() * 2), 0);
            }
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e).ctx("getxattr", path),
        }
    }
}

pub fn fset_xattr(file: &File, name: &[u8], value: &[u8], path: &Path) -> Result<()> {
    let name = std::str::from_utf8(name)
        .map_err(|_| Error::InvalidArgument(format!("{}: non-UTF-8 xattr name", path.display())))?;
    rustix::fs::fsetxattr(file, name, value, rustix::fs::XattrFlags::empty()).ctx("setxattr", path)
}

pub fn lset_xattr(path: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let name = std::str::from_utf8(name)
        .map_err(|_| Error::InvalidArgument(format!("{}: non-UTF-8 xattr name", path.display())))?;
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).ctx("setxattr", path)
}

/// Replace `path` atomically with `data`: write a temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8], fsync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.as_file_mut()
        .write_all(data)
        .ctx("write", tmp.path().to_path_buf())?;
    if fsync {
        tmp.as_file().sync_all().ctx("fsync", path)?;
    }
    tmp.persist(path).map_err(|e| Error::Io {
        op: "rename",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

pub fn tempfile_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create temporary file in", dir)
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

/// Flush the whole filesystem that holds `path` (cheaper than fsync per object).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = File::open(path).ctx("open", path)?;
    rustix::fs::syncfs(&f).ctx("syncfs", path)
}
