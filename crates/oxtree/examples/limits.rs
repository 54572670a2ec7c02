//! `limits TREE SCRATCH`: what this machine can do at best for the work `bench/bench.sh`
//! times, measured on the same tree: the floor under each row, whatever the tool.
//!
//! - CPU: SHA-256 (the `sha2` crate oxtree hashes with; SHA-NI where the CPU has it), raw
//!   deflate as oxtree does it (libdeflate level 3 for files from 4 KiB to 2 MiB, zlib-rs
//!   level 4 for the others) and inflate (zlib-rs through `flate2`, as oxtree), over
//!   every regular file of TREE held in memory, on one thread and on all cores.
//! - File system: in SCRATCH (put it on the disk the bench writes to), the calls a commit or
//!   a checkout cannot avoid: create + write + close one file per regular file of TREE, rename
//!   each into a directory of its own (the move from staging to `objects/`), read each one's
//!   xattr and size (a checkout's look at an object before it links it), hard-link each
//!   into a new tree, one `mkdir` per directory and one `symlink` per symbolic link. Each on
//!   all cores. And the write-back a durable commit or pull waits for (both tools `syncfs`
//!   at the end of a transaction): a `syncfs` after the files are created (their data, raw
//!   and deflated) and one after they are renamed and given their xattr (the metadata).
//!
//! It prints one `floor NAME SECONDS` line per bench row (the sum of the pieces that row must
//! do, CPU on all cores) for `bench.sh` to set beside ostree's time: ostree's time over the
//! floor is the best ratio any tool could reach here. Everything is warm (the tree is read
//! once first); file-system figures other than `syncfs` are the kernel's work only.
//! `cargo run --release -p oxtree --example limits -- TREE SCRATCH`.

use rayon::prelude::*;
use sha2::Digest;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a tree holds: the regular files' bytes, how many directories and symlinks, and
/// where each of them is (relative paths; directories by depth, from 1), for the floor of
/// a checkout in the tree's own shape.
struct Tree {
    files: Vec<Vec<u8>>,
    dirs: usize,
    links: usize,
    file_paths: Vec<PathBuf>,
    dir_paths: Vec<(usize, PathBuf)>,
    link_paths: Vec<PathBuf>,
}

fn walk(root: &Path, p: &Path, depth: usize, t: &mut Tree) -> std::io::Result<()> {
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let ft = e.file_type()?;
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("below the root")
            .to_path_buf();
        if ft.is_dir() {
            t.dirs += 1;
            t.dir_paths.push((depth, rel));
            walk(root, &e.path(), depth + 1, t)?;
        } else if ft.is_symlink() {
            t.links += 1;
            t.link_paths.push(rel);
        } else if ft.is_file() {
            t.files.push(std::fs::read(e.path())?);
            t.file_paths.push(rel);
        }
    }
    Ok(())
}

/// Seconds `f` takes, best of three (the floor: the least the machine needed).
fn best<R>(mut f: impl FnMut() -> R) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn deflate(data: &[u8], comp: &mut flate2::Compress) -> Vec<u8> {
    comp.reset();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let used = usize::try_from(comp.total_in()).unwrap_or(data.len());
        let status = comp
            .compress_vec(
                data.get(used..).unwrap_or_default(),
                &mut out,
                flate2::FlushCompress::Finish,
            )
            .expect("deflate");
        if status == flate2::Status::StreamEnd {
            return out;
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn inflate(data: &[u8], size: usize, d: &mut flate2::Decompress) -> usize {
    d.reset(false);
    let mut out = Vec::with_capacity(size);
    d.decompress_vec(data, &mut out, flate2::FlushDecompress::Finish)
        .expect("inflate");
    out.len()
}

fn level4() -> flate2::Compress {
    flate2::Compress::new(flate2::Compression::new(4), false)
}

/// Files below this size oxtree deflates whole with libdeflate; larger ones in pieces with
/// zlib-rs (`repo/txn.rs`: `PAR_DEFLATE_MIN`).
const WHOLE_MAX: usize = 2 << 20;

/// Both deflaters, as one thread of oxtree's commit holds them.
struct Packer {
    z: flate2::Compress,
    ld: libdeflater::Compressor,
}

fn packer() -> Packer {
    let level = libdeflater::CompressionLvl::new(3).expect("level 3");
    Packer {
        z: level4(),
        ld: libdeflater::Compressor::new(level),
    }
}

/// Deflate `data` as oxtree does for its size: whole with libdeflate level 3 below
/// [`WHOLE_MAX`] (zlib-rs below 4 KiB), else (a large file's piece) with zlib-rs level 4.
fn pack(data: &[u8], p: &mut Packer) -> Vec<u8> {
    if data.len() >= WHOLE_MAX || data.len() < 4096 {
        return deflate(data, &mut p.z);
    }
    let mut out = vec![0u8; p.ld.deflate_compress_bound(data.len())];
    let n = p.ld.deflate_compress(data, &mut out).expect("deflate");
    out.truncate(n);
    out
}

/// Seconds to run `f(i)` for every `i < n` on all cores.
fn fs_rate(n: usize, f: impl Fn(usize) + Sync + Send) -> f64 {
    let t = Instant::now();
    (0..n).into_par_iter().for_each(f);
    t.elapsed().as_secs_f64()
}

/// `i`'s place in a fan-out of 256 subdirectories of `base` (as objects/ is laid out).
fn spread(base: &Path, i: usize) -> PathBuf {
    base.join(format!("{:02x}", i % 256))
        .join(format!("{i:08}"))
}

fn mkdirs(base: &Path) {
    std::fs::create_dir_all(base).expect("mkdir");
    for b in 0..256 {
        std::fs::create_dir_all(base.join(format!("{b:02x}"))).expect("mkdir");
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [tree, scratch] = args.as_slice() else {
        eprintln!("usage: limits TREE SCRATCH");
        std::process::exit(2);
    };
    let (tree, scratch) = (Path::new(tree), Path::new(scratch));
    let mut t = Tree {
        files: Vec::new(),
        dirs: 0,
        links: 0,
        file_paths: Vec::new(),
        dir_paths: Vec::new(),
        link_paths: Vec::new(),
    };
    walk(tree, tree, 1, &mut t).expect("read the tree");
    t.dir_paths.sort_by_key(|(d, _)| *d);
    let bytes: usize = t.files.iter().map(Vec::len).sum();
    let cores = rayon::current_num_threads();
    println!(
        "tree: {} regular files ({:.1} MiB), {} directories, {} symlinks; {cores} cores",
        t.files.len(),
        bytes as f64 / 1048576.0,
        t.dirs,
        t.links
    );

    // CPU.
    let sha1 = best(|| {
        t.files
            .iter()
            .map(|f| u64::from(sha2::Sha256::digest(f)[0]))
            .sum::<u64>()
    });
    let sha = best(|| {
        t.files
            .par_iter()
            .map(|f| u64::from(sha2::Sha256::digest(f)[0]))
            .sum::<u64>()
    });
    let comp1 = best(|| {
        let mut c = packer();
        t.files.iter().map(|f| pack(f, &mut c).len()).sum::<usize>()
    });
    // On all cores, large files in 1 MiB pieces with zlib-rs (as oxtree deflates them),
    // the others whole with libdeflate: the floor is the CPU's, not one file's.
    let pieces: Vec<(&[u8], bool)> = t
        .files
        .iter()
        .flat_map(|f| {
            let whole = f.len() < WHOLE_MAX;
            f.chunks(if whole { WHOLE_MAX } else { 1 << 20 })
                .map(move |c| (c, whole))
        })
        .collect();
    let comp = best(|| {
        pieces
            .par_iter()
            .map_init(packer, |c, (f, whole)| {
                if *whole {
                    pack(f, c).len()
                } else {
                    deflate(f, &mut c.z).len()
                }
            })
            .sum::<usize>()
    });
    let packed: Vec<Vec<u8>> = t
        .files
        .par_iter()
        .map_init(packer, |c, f| pack(f, c))
        .collect();
    let pairs: Vec<(&Vec<u8>, usize)> = packed.iter().zip(t.files.iter().map(Vec::len)).collect();
    let inf1 = best(|| {
        let mut d = flate2::Decompress::new(false);
        pairs
            .iter()
            .map(|(z, n)| inflate(z, *n, &mut d))
            .sum::<usize>()
    });
    let inf = best(|| {
        pairs
            .par_iter()
            .map_init(
                || flate2::Decompress::new(false),
                |d, (z, n)| inflate(z, *n, d),
            )
            .sum::<usize>()
    });
    let mib = bytes as f64 / 1048576.0;
    for (name, one, all) in [
        ("SHA-256", sha1, sha),
        (
            "deflate (libdeflate level 3 from 4 KiB to 2 MiB, zlib-rs level 4 else)",
            comp1,
            comp,
        ),
        ("inflate", inf1, inf),
    ] {
        println!(
            "{name}: {one:.3} s on one core ({:.0} MiB/s), {all:.3} s on {cores} ({:.0} MiB/s)",
            mib / one,
            mib / all
        );
    }

    // File system, in fresh directories under SCRATCH; best of three rounds per call.
    let n = t.files.len();
    let dirs = t.dirs.max(1);
    let mut fsb = [f64::INFINITY; 17];
    // Removed only at the end: ext4 skips inodes freed in the last minute when it allocates
    // (`recently_deleted()`), which would slow the rounds after the first.
    let bases: Vec<PathBuf> = (0..3)
        .map(|r| scratch.join(format!("limits-{}-{r}", std::process::id())))
        .collect();
    for base in &bases {
        let r = fs_round(base, &t, &packed);
        for (b, x) in fsb.iter_mut().zip(r) {
            *b = b.min(x);
        }
    }
    for base in &bases {
        std::fs::remove_dir_all(base).expect("clean up");
    }
    let [create, read, createz, readz, rename, xattr, getxattr, stat, mkdir, link, symlink, sync, syncz, syncmeta, mkdir_t, link_t, symlink_t] =
        fsb;
    for (name, s, count) in [
        ("read (warm)", read, n),
        ("create+write+close", create, n),
        ("syncfs after creating them (data written back)", sync, n),
        ("syncfs after creating them deflated", syncz, n),
        (
            "syncfs after renaming them and setting the xattr",
            syncmeta,
            n,
        ),
        ("create+write+close, deflated", createz, n),
        ("read (warm), deflated", readz, n),
        ("rename", rename, n),
        ("setxattr", xattr, n),
        ("lgetxattr", getxattr, n),
        ("lstat", stat, n),
        ("mkdir", mkdir, dirs),
        ("link", link, n),
        ("symlink", symlink, t.links),
        ("mkdir, the tree's own shape", mkdir_t, dirs),
        ("link, the tree's own shape", link_t, n),
        ("symlink, the tree's own shape", symlink_t, t.links),
    ] {
        println!(
            "{name}: {count} in {s:.3} s on {cores} cores ({:.0}/s)",
            count as f64 / s.max(1e-9)
        );
    }

    // The floors: what each bench row must at least do here.
    let floors = [
        (
            "commit-archive",
            read + sha + comp + createz + syncz + rename + syncmeta,
        ),
        (
            "commit-bare-user",
            read + sha + create + sync + rename + xattr + syncmeta,
        ),
        // In the tree's own directories: a large directory costs more per entry than the
        // even spread above (ext4 scans a directory block for the name, and for room).
        (
            "checkout-bare-user",
            getxattr + stat + mkdir_t + link_t + symlink_t,
        ),
        ("fsck", readz + sha + inf),
        // A pull of the archive repo into bare-user: every object inflated, hashed, written,
        // named and given its xattr, and synced (the HTTP requests and the server not counted).
        (
            "pull-bare-user",
            inf + sha + create + sync + rename + xattr + syncmeta,
        ),
    ];
    for (row, s) in floors {
        println!("floor {row} {s:.3}");
    }
}

/// One round of the file-system calls in a fresh `base`: the seconds each
/// kind took on all cores, in the order `main` unpacks them.
fn fs_round(base: &Path, t: &Tree, packed: &[Vec<u8>]) -> [f64; 17] {
    let _ = std::fs::remove_dir_all(base);
    let (made, madez) = (base.join("made"), base.join("madez"));
    let (moved, linked) = (base.join("moved"), base.join("linked"));
    mkdirs(&made);
    mkdirs(&madez);
    mkdirs(&moved);
    let n = t.files.len();
    // What others left dirty is not ours to time.
    sync_secs(base);
    let create = fs_rate(n, |i| {
        std::fs::write(spread(&made, i), &t.files[i]).expect("create");
    });
    let sync = sync_secs(base);
    // Reading back (warm), as a commit reads its tree and fsck its objects.
    let read = fs_rate(n, |i| {
        std::hint::black_box(std::fs::read(spread(&made, i)).ok());
    });
    let createz = fs_rate(n, |i| {
        std::fs::write(spread(&madez, i), &packed[i]).expect("create");
    });
    let syncz = sync_secs(base);
    let readz = fs_rate(n, |i| {
        std::hint::black_box(std::fs::read(spread(&madez, i)).ok());
    });
    let rename = fs_rate(n, |i| {
        std::fs::rename(spread(&made, i), spread(&moved, i)).expect("rename");
    });
    // bare-user objects carry their owner and mode in an xattr.
    let xattr = fs_rate(n, |i| {
        rustix::fs::setxattr(
            spread(&moved, i),
            "user.ostreemeta",
            &[0u8; 40],
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr");
    });
    let syncmeta = sync_secs(base);
    // A bare-user checkout learns each object's type (symlinks are files there) from its
    // xattr before it links it.
    let getxattr = fs_rate(n, |i| {
        let mut v = [0u8; 64];
        std::hint::black_box(
            rustix::fs::lgetxattr(spread(&moved, i), "user.ostreemeta", &mut v).ok(),
        );
    });
    // ... and, as ostree, copies a zero-sized file instead of linking it: it learns each
    // object's size.
    let stat = fs_rate(n, |i| {
        std::hint::black_box(std::fs::symlink_metadata(spread(&moved, i)).ok());
    });
    // A checkout tree: the directories first (each with a share of the links), then the
    // links and symlinks into them.
    // They spread over 256 parents as a tree's do (all in one parent, they would queue on
    // its lock).
    let dirs = t.dirs.max(1);
    let sub = |i: usize| spread(&linked, i % dirs);
    mkdirs(&linked);
    let mkdir = fs_rate(dirs, |d| {
        std::fs::create_dir(spread(&linked, d)).expect("mkdir");
    });
    let link = fs_rate(n, |i| {
        std::fs::hard_link(spread(&moved, i), sub(i).join(format!("f{i}"))).expect("link");
    });
    let symlink = fs_rate(t.links, |i| {
        let target = std::ffi::OsStr::from_bytes(b"../some/target");
        std::os::unix::fs::symlink(target, sub(i).join(format!("l{i}"))).expect("symlink");
    });
    // The same in the tree's own shape: its directories (parents first, each depth on all
    // cores), each file linked and each symlink made at its own path.
    let shaped = base.join("shaped");
    std::fs::create_dir(&shaped).expect("mkdir");
    let t0 = Instant::now();
    for depth in t.dir_paths.chunk_by(|a, b| a.0 == b.0) {
        depth.par_iter().for_each(|(_, p)| {
            std::fs::create_dir(shaped.join(p)).expect("mkdir");
        });
    }
    let mkdir_t = t0.elapsed().as_secs_f64();
    let link_t = fs_rate(n, |i| {
        std::fs::hard_link(spread(&moved, i), shaped.join(&t.file_paths[i])).expect("link");
    });
    let symlink_t = fs_rate(t.links, |i| {
        let target = std::ffi::OsStr::from_bytes(b"../some/target");
        std::os::unix::fs::symlink(target, shaped.join(&t.link_paths[i])).expect("symlink");
    });
    [
        create, read, createz, readz, rename, xattr, getxattr, stat, mkdir, link, symlink, sync,
        syncz, syncmeta, mkdir_t, link_t, symlink_t,
    ]
}

/// Seconds a `syncfs` of the file system holding `base` takes.
fn sync_secs(base: &Path) -> f64 {
    let d = std::fs::File::open(base).expect("open scratch");
    let t = Instant::now();
    rustix::fs::syncfs(&d).expect("syncfs");
    t.elapsed().as_secs_f64()
}
