//! cpio archives for `commit --tree=tar=`: ostree reads any archive libarchive reads, cpio
//! included (`find . | cpio -o -H newc`, initramfs images). The `newc`/`crc` (`070701`,
//! `070702`) and `odc` (`070707`) formats are read here and handed to the tar import as
//! the tar stream they describe, written on a thread into a pipe: one import path, with its
//! filters, overrides and checks, for both kinds of archive.
//!
//! Hard links: `newc` stores a multiply-linked file's data once, with the last of its names
//! (the others come first, with size 0). As libarchive's reader and ostree's import make of
//! it, every name of the inode gets that data: the names seen before the data are held back
//! and written as tar hard links to the entry that carries it. Hand-written because it is
//! small (two header layouts) and no maintained crate reads both formats.

use std::collections::HashMap;
use std::io::{Read, Write};

/// Whether `magic` (the stream's first bytes) starts a cpio archive this module reads.
pub(crate) fn is_cpio(magic: &[u8]) -> bool {
    magic.starts_with(b"070701") || magic.starts_with(b"070702") || magic.starts_with(b"070707")
}

/// A tar stream of the cpio archive read from `input`. A malformed archive makes the
/// stream fail with an error that says what is wrong.
pub(crate) fn as_tar(input: Box<dyn Read + Send>) -> std::io::Result<TarOfCpio> {
    let (reader, writer) = std::io::pipe()?;
    let handle = std::thread::Builder::new()
        .name("cpio".into())
        .spawn(move || {
            block_sigpipe();
            convert(input, writer)
        })?;
    Ok(TarOfCpio {
        reader,
        handle: Some(handle),
    })
}

/// The reading end of [`as_tar`]: at the end of the stream, the converting thread's error
/// (if any) is returned instead of a short archive.
pub(crate) struct TarOfCpio {
    reader: std::io::PipeReader,
    handle: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Read for TarOfCpio {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(h) = self.handle.take() {
                match h.join() {
                    Ok(r) => r?,
                    Err(_) => return Err(std::io::Error::other("cpio reader panicked")),
                }
            }
        }
        Ok(n)
    }
}

/// When the import stops early (a refused entry), the reading end goes away while this
/// thread still writes: the write must fail with `EPIPE`, not raise `SIGPIPE`, which the
/// CLI leaves at its default (it would kill the process before the error is printed). A
/// write's `SIGPIPE` goes to the thread that wrote, so blocking it here is enough.
fn block_sigpipe() {
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset; the calls only change
    // this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// One cpio header.
struct Entry {
    name: String,
    mode: u32,
    uid: u64,
    gid: u64,
    nlink: u64,
    mtime: u64,
    size: u64,
    /// (device, inode): what ties the names of one file together.
    key: (u64, u64),
    /// `newc` pads names and data to 4 bytes; `odc` does not.
    padded: bool,
}

fn field(b: &[u8], radix: u32) -> std::io::Result<u64> {
    let s = std::str::from_utf8(b).map_err(|_| bad("cpio header: a field is not ASCII"))?;
    u64::from_str_radix(s, radix).map_err(|_| bad(format!("cpio header: bad number {s:?}")))
}

/// Read exactly `buf.len()` bytes; `false` at a clean end of input (nothing read).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(bad("cpio archive ends inside a header")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn skip(r: &mut dyn Read, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if copied != n {
        return Err(bad("cpio archive ends inside an entry"));
    }
    Ok(())
}

/// The next header, or `None` at the trailer (or the end of input).
fn next(r: &mut dyn Read) -> std::io::Result<Option<Entry>> {
    let mut magic = [0u8; 6];
    if !read_full(r, &mut magic)? {
        return Ok(None);
    }
    let (e, namesize) = match &magic {
        b"070701" | b"070702" => {
            let mut h = [0u8; 104];
            if !read_full(r, &mut h)? {
                return Err(bad("cpio archive ends inside a header"));
            }
            let f = |i: usize| field(&h[i * 8..i * 8 + 8], 16);
            let e = Entry {
                name: String::new(),
                key: ((f(7)? << 32) | f(8)?, f(0)?),
                mode: u32::try_from(f(1)?).map_err(|_| bad("cpio header: bad mode"))?,
                uid: f(2)?,
                gid: f(3)?,
                nlink: f(4)?,
                mtime: f(5)?,
                size: f(6)?,
                padded: true,
            };
            (e, f(11)?)
        }
        b"070707" => {
            let mut h = [0u8; 70];
            if !read_full(r, &mut h)? {
                return Err(bad("cpio archive ends inside a header"));
            }
            let f = |a: usize, b: usize| field(&h[a..b], 8);
            let e = Entry {
                name: String::new(),
                key: (f(0, 6)?, f(6, 12)?),
                mode: u32::try_from(f(12, 18)?).map_err(|_| bad("cpio header: bad mode"))?,
                uid: f(18, 24)?,
                gid: f(24, 30)?,
                nlink: f(30, 36)?,
                mtime: f(42, 53)?,
                size: f(59, 70)?,
                padded: false,
            };
            (e, f(53, 59)?)
        }
        _ => return Err(bad("Unrecognized archive format (not a cpio header)")),
    };
    if namesize == 0 || namesize > 64 * 1024 {
        return Err(bad(format!("cpio header: bad name size {namesize}")));
    }
    let mut name = vec![0u8; namesize as usize];
    if !read_full(r, &mut name)? {
        return Err(bad("cpio archive ends inside a name"));
    }
    if e.padded {
        skip(r, pad4(110 + namesize))?;
    }
    if name.last() == Some(&0) {
        name.pop();
    }
    let name =
        String::from_utf8(name).map_err(|_| bad("a path in the archive is not valid UTF-8"))?;
    if name == "TRAILER!!!" {
        return Ok(None);
    }
    Ok(Some(Entry { name, ..e }))
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// A tar header for `e` (type, mode, owner, time; the size and path are set by the caller).
fn tar_header(e: &Entry, ty: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(e.mode & 0o7777);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(size);
    h
}

/// A path as the tar crate takes it: relative (the import makes every path relative anyway).
fn rel(name: &str) -> &str {
    let t = name.trim_start_matches('/');
    if t.is_empty() {
        "."
    } else {
        t
    }
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn convert(mut input: Box<dyn Read + Send>, out: std::io::PipeWriter) -> std::io::Result<()> {
    let mut ar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 16, out));
    // Names of multiply-linked files waiting for their data, and the name that carries it
    // once seen, by (device, inode).
    let mut waiting: HashMap<(u64, u64), (Entry, Vec<String>)> = HashMap::new();
    let mut carrier: HashMap<(u64, u64), String> = HashMap::new();
    let r: &mut dyn Read = &mut input;
    while let Some(e) = next(r)? {
        let pad = if e.padded { pad4(e.size) } else { 0 };
        match e.mode & S_IFMT {
            S_IFDIR => {
                skip(r, e.size)?;
                let mut h = tar_header(&e, tar::EntryType::Directory, 0);
                ar.append_data(&mut h, rel(&e.name), std::io::empty())?;
            }
            S_IFLNK => {
                if e.size > 64 * 1024 {
                    return Err(bad(format!("{}: symlink target too long", e.name)));
                }
                let mut t = vec![0u8; e.size as usize];
                r.read_exact(&mut t)?;
                let target = String::from_utf8(t)
                    .map_err(|_| bad(format!("{}: symlink target is not UTF-8", e.name)))?;
                let mut h = tar_header(&e, tar::EntryType::Symlink, 0);
                ar.append_link(&mut h, rel(&e.name), &target)?;
            }
            S_IFREG if e.nlink > 1 => {
                if let Some(first) = carrier.get(&e.key) {
                    // A name after the data: a link to the name that had it.
                    skip(r, e.size)?;
                    let mut h = tar_header(&e, tar::EntryType::Link, 0);
                    ar.append_link(&mut h, rel(&e.name), rel(first))?;
                } else if e.size == 0 {
                    // The data comes with a later name (newc): held back until then.
                    let name = e.name.clone();
                    waiting
                        .entry(e.key)
                        .or_insert_with(|| (e, Vec::new()))
                        .1
                        .push(name);
                } else {
                    let mut h = tar_header(&e, tar::EntryType::Regular, e.size);
                    ar.append_data(&mut h, rel(&e.name), (&mut *r).take(e.size))?;
                    if let Some((_, names)) = waiting.remove(&e.key) {
                        for n in names {
                            let mut h = tar_header(&e, tar::EntryType::Link, 0);
                            ar.append_link(&mut h, rel(&n), rel(&e.name))?;
                        }
                    }
                    carrier.insert(e.key, e.name.clone());
                }
            }
            S_IFREG => {
                let mut h = tar_header(&e, tar::EntryType::Regular, e.size);
                ar.append_data(&mut h, rel(&e.name), (&mut *r).take(e.size))?;
            }
            _ => {
                return Err(bad(format!(
                    "Unsupported file type for path \"{}\"",
                    e.name.trim_start_matches("./")
                )))
            }
        }
        skip(r, pad)?;
    }
    // Linked names whose data never came: empty files, one inode.
    let mut rest: Vec<_> = waiting.into_values().collect();
    rest.sort_by(|a, b| a.1.cmp(&b.1));
    for (e, names) in rest {
        let Some((first, others)) = names.split_first() else {
            continue;
        };
        let mut h = tar_header(&e, tar::EntryType::Regular, 0);
        ar.append_data(&mut h, rel(first), std::io::empty())?;
        for n in others {
            let mut h = tar_header(&e, tar::EntryType::Link, 0);
            ar.append_link(&mut h, rel(n), rel(first))?;
        }
    }
    ar.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newc entry: header, name (padded), data (padded).
    fn newc(out: &mut Vec<u8>, name: &str, mode: u32, nlink: u32, ino: u32, data: &[u8]) {
        let namesize = name.len() + 1;
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len() + pad4(110 + namesize as u64) as usize, 0);
        out.extend_from_slice(data);
        out.resize(out.len() + pad4(data.len() as u64) as usize, 0);
    }

    #[test]
    fn newc_links_share_the_data_of_their_last_name() {
        let mut a = Vec::new();
        newc(&mut a, ".", 0o040755, 2, 1, b"");
        newc(&mut a, "bar", 0o100644, 2, 7, b"");
        newc(&mut a, "foo", 0o100644, 2, 7, b"contents\n");
        newc(&mut a, "sl", 0o120777, 1, 8, b"foo");
        newc(&mut a, "lonely", 0o100600, 2, 9, b"");
        newc(&mut a, "TRAILER!!!", 0, 1, 0, b"");
        let mut t = as_tar(Box::new(std::io::Cursor::new(a))).expect("pipe");
        let mut tar_bytes = Vec::new();
        t.read_to_end(&mut tar_bytes).expect("convert");
        let mut ar = tar::Archive::new(std::io::Cursor::new(tar_bytes));
        let mut seen = Vec::new();
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            let link = e
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let mut data = String::new();
            e.read_to_string(&mut data).expect("data");
            seen.push(format!(
                "{path} {:?} {link} {data:?}",
                e.header().entry_type()
            ));
        }
        assert_eq!(
            seen,
            [
                ". Directory  \"\"",
                "foo Regular  \"contents\\n\"",
                "bar Link foo \"\"",
                "sl Symlink foo \"\"",
                "lonely Regular  \"\"",
            ]
        );
    }

    #[test]
    fn a_path_that_leaves_the_tree_is_an_error() {
        for name in ["../evil", "a/../../evil"] {
            let mut a = Vec::new();
            newc(&mut a, name, 0o100644, 1, 3, b"x");
            newc(&mut a, "TRAILER!!!", 0, 1, 0, b"");
            let mut t = as_tar(Box::new(std::io::Cursor::new(a))).expect("pipe");
            let mut v = Vec::new();
            assert!(t.read_to_end(&mut v).is_err(), "{name}");
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for input in [&b"070701zzzz"[..], b"0707010000", b"070707"] {
            let mut t = as_tar(Box::new(std::io::Cursor::new(input.to_vec()))).expect("pipe");
            let mut v = Vec::new();
            assert!(t.read_to_end(&mut v).is_err(), "{input:?}");
        }
    }
}
