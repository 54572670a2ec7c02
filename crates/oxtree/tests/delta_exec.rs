//! Static deltas made by real `ostree` (scratch, and FROM→TO with rollsum and bsdiff ops)
//! execute within the bounds `delta::apply_part` enforces against amplification (security
//! review M3): every part produces no more than its header declares, and objects assembled
//! by `o`…`c` stream into a repository transaction without being held in memory.

use oxtree::delta::{self, ObjectSink, Superblock};
use oxtree::object::{Checksum, FileHeader, ObjectType};
use oxtree::repo::Transaction;
use oxtree::{Repo, RepoMode};
use std::cell::Cell;
use std::io::Read;
use std::process::Command;

fn ostree(args: &[&str]) -> String {
    let o = Command::new("ostree")
        .args(args)
        .output()
        .expect("the real `ostree` must be installed (apt-get install -y ostree)");
    assert!(
        o.status.success(),
        "ostree {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Deterministic incompressible bytes.
fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Stores what a part writes into a transaction, streaming `o`…`c` objects; reads old
/// objects from the source repository; counts what goes through it.
struct TxnSink<'a> {
    src: &'a Repo,
    txn: &'a Transaction<'a>,
    bytes: Cell<u64>,
    streamed: Cell<u64>,
}

impl ObjectSink for TxnSink<'_> {
    fn write_metadata(&self, ty: ObjectType, csum: &Checksum, data: &[u8]) -> oxtree::Result<()> {
        self.bytes.set(self.bytes.get() + data.len() as u64);
        self.txn.write_metadata_as(ty, csum, data)
    }

    fn write_content(&self, h: &FileHeader, data: &[u8], csum: &Checksum) -> oxtree::Result<()> {
        // ostree counts a symlink as 0 bytes in a part's uncompressed size (the executor
        // counts its target, within OUTPUT_SLACK).
        self.bytes.set(self.bytes.get() + data.len() as u64);
        let mut r = data;
        self.txn
            .write_file(h, &mut r, data.len() as u64, Some(csum))
            .map(|_| ())
    }

    fn write_content_stream(
        &self,
        h: &FileHeader,
        size: u64,
        data: &mut dyn Read,
        csum: &Checksum,
    ) -> oxtree::Result<()> {
        self.bytes.set(self.bytes.get() + size);
        self.streamed.set(self.streamed.get() + 1);
        self.txn.write_file(h, data, size, Some(csum)).map(|_| ())
    }

    fn read_content(&self, csum: &Checksum) -> oxtree::Result<Vec<u8>> {
        let mut f = self.src.read_file(csum)?;
        let mut out = Vec::new();
        f.payload.read_to_end(&mut out).expect("read old object");
        Ok(out)
    }
}

/// Execute every part of the delta `from`→`to` in `src` into `dst`; returns, per part, the
/// bytes it wrote and its declared uncompressed size, and how many objects streamed.
fn execute(
    src: &Repo,
    dst: &Repo,
    from: Option<&Checksum>,
    to: &Checksum,
) -> (Vec<(u64, u64)>, u64) {
    let dir = src.path().join(delta::delta_dir(from, to));
    let sb = Superblock::parse(
        &std::fs::read(dir.join("superblock")).expect("superblock"),
        "superblock",
    )
    .expect("parse superblock");
    let txn = dst.begin().expect("begin");
    let sink = TxnSink {
        src,
        txn: &txn,
        bytes: Cell::new(0),
        streamed: Cell::new(0),
    };
    let mut sizes = Vec::new();
    for (i, part) in sb.parts.iter().enumerate() {
        let stored = std::fs::read(dir.join(i.to_string())).expect("part");
        // In memory and through an unlinked file (as pulls do): the same payload.
        let in_mem = delta::open_part(&stored, part, "part").expect("open part");
        // (positioned at its end, as a download leaves it)
        let mut file = std::fs::File::open(dir.join(i.to_string())).expect("part");
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).expect("seek");
        let payload = delta::open_part_in(delta::StoredPart::File(file), part, "part", src.path())
            .expect("open part");
        assert_eq!(in_mem.ops(), payload.ops());
        let len = in_mem.blob_len() as u64;
        assert_eq!(
            in_mem.blob_range(0, len, "part").expect("blob"),
            payload.blob_range(0, len, "part").expect("blob")
        );
        let before = sink.bytes.get();
        let n = delta::apply_part(&payload, &part.objects, &sink, "part").expect("apply part");
        assert_eq!(n, part.objects.len());
        sizes.push((sink.bytes.get() - before, part.uncompressed_size));
    }
    let streamed = sink.streamed.get();
    txn.commit().expect("commit");
    (sizes, streamed)
}

#[test]
fn real_ostree_deltas_stay_within_their_declared_output() {
    let tmp = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or_else(|_| "/var/tmp".into()))
        .expect("tmp");
    let t = tmp.path();
    let (v1, v2) = (t.join("v1"), t.join("v2"));
    for v in [&v1, &v2] {
        std::fs::create_dir_all(v.join("small")).expect("mkdir");
        for i in 0..50 {
            std::fs::write(
                v.join(format!("small/f{i}")),
                format!("file {i}\n").repeat(i + 1),
            )
            .expect("write");
        }
        std::os::unix::fs::symlink("small/f1", v.join("link")).expect("symlink");
    }
    // A large file changed in a few places (rollsum: 'w' ops from the old object) and a
    // smaller one changed throughout in small steps (bsdiff: a 'B' op).
    let big = noise(3 << 20, 7);
    let mut big2 = big.clone();
    big2[1 << 20..(1 << 20) + 4096].copy_from_slice(&noise(4096, 9));
    big2.extend_from_slice(&noise(100_000, 11));
    let mid: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let mid2: Vec<u8> = mid
        .iter()
        .enumerate()
        .map(|(i, b)| if i % 4000 == 0 { b.wrapping_add(1) } else { *b })
        .collect();
    std::fs::write(v1.join("big"), &big).expect("write");
    std::fs::write(v2.join("big"), &big2).expect("write");
    std::fs::write(v1.join("mid"), &mid).expect("write");
    std::fs::write(v2.join("mid"), &mid2).expect("write");
    std::fs::write(v2.join("small/new"), b"new file\n").expect("write");

    let src_path = t.join("src");
    let r = format!("--repo={}", src_path.display());
    ostree(&["init", &r, "--mode=archive"]);
    let c1 = ostree(&[
        "commit",
        &r,
        "-b",
        "main",
        "-s",
        "v1",
        &v1.display().to_string(),
    ]);
    let c2 = ostree(&[
        "commit",
        &r,
        "-b",
        "main",
        "-s",
        "v2",
        &v2.display().to_string(),
    ]);
    ostree(&[
        "static-delta",
        "generate",
        &r,
        "--empty",
        &format!("--to={c1}"),
    ]);
    ostree(&[
        "static-delta",
        "generate",
        &r,
        &format!("--from={c1}"),
        &format!("--to={c2}"),
    ]);
    let (c1, c2): (Checksum, Checksum) = (c1.parse().expect("c1"), c2.parse().expect("c2"));
    let src = Repo::open(&src_path).expect("open src");

    // Which ops ostree used, so the test covers what it says it does.
    let ops_of = |from: Option<&Checksum>, to: &Checksum| -> Vec<u8> {
        let dir = src.path().join(delta::delta_dir(from, to));
        let sb = Superblock::parse(&std::fs::read(dir.join("superblock")).expect("sb"), "sb")
            .expect("sb");
        let mut ops = Vec::new();
        for (i, part) in sb.parts.iter().enumerate() {
            let stored = std::fs::read(dir.join(i.to_string())).expect("part");
            ops.extend_from_slice(delta::open_part(&stored, part, "p").expect("open").ops());
        }
        ops
    };
    let update_ops = ops_of(Some(&c1), &c2);
    for op in [b'o', b'w', b'r', b'c', b'B'] {
        assert!(
            update_ops.contains(&op),
            "no {:?} op in ostree's delta",
            op as char
        );
    }

    let dst_path = t.join("dst");
    let dst = Repo::create(&dst_path, RepoMode::Archive).expect("dst");
    let (scratch, _) = execute(&src, &dst, None, &c1);
    let (update, streamed) = execute(&src, &dst, Some(&c1), &c2);
    assert!(streamed > 0, "no object went through o…c");
    for (written, declared) in scratch.iter().chain(&update) {
        // ostree declares exactly what a part writes; the bound allows OUTPUT_SLACK more.
        assert!(
            written <= declared,
            "a part wrote {written} bytes, its header declares {declared}"
        );
    }
    // Every object the parts list is stored (each was verified against its checksum).
    for (from, to) in [(None, &c1), (Some(&c1), &c2)] {
        let dir = src.path().join(delta::delta_dir(from, to));
        let sb = Superblock::parse(&std::fs::read(dir.join("superblock")).expect("sb"), "sb")
            .expect("sb");
        for (ty, c) in sb.parts.iter().flat_map(|p| &p.objects) {
            assert!(dst.has_object(*ty, c), "{c}.{ty:?} missing");
        }
    }
}
