//! The checks each fuzz target runs on one input, shared with the ordinary test
//! `crates/oxtree/tests/fuzz_regressions.rs` (which includes this file by path), so a
//! committed regression input is replayed through exactly the code the fuzzer ran.
//!
//! Decoders may return errors on any input; they must never panic. Where a target can
//! round-trip (GVariant, keyfile), what we wrote must be readable again.

use oxtree::fsutil::keyfile::KeyFile;
use oxtree::gvariant::{self, Type};
use oxtree::object::{Commit, DirMeta, DirTree, FileHeader};
use std::sync::OnceLock;

/// The GVariant types of OSTree's metadata formats, plus `a{sv}` (commit metadata,
/// summary) and `v` (which lets the input name any type it likes).
pub const GVARIANT_TYPES: &[&str] = &[
    "(a{sv}aya(say)sstayay)", // commit
    "(a(say)a(sayay))",       // dirtree
    "(uuua(ayay))",           // dirmeta, user.ostreemeta
    "(tuuuusa(ayay))",        // .filez header
    "a{sv}",
    "v",
];

fn gvariant_types() -> &'static [Type] {
    static T: OnceLock<Vec<Type>> = OnceLock::new();
    T.get_or_init(|| GVARIANT_TYPES.iter().map(|s| Type::of(s)).collect())
}

/// Decode `data` as every OSTree type, leniently and in normal form; re-encode whatever
/// decodes and require the result to decode again (as a value of the same type, and in
/// normal form, since `encode` claims to produce it).
pub fn check_gvariant(data: &[u8]) {
    for ty in gvariant_types() {
        let _ = gvariant::decode_normal(data, ty);
        let Ok(v) = gvariant::decode(data, ty) else {
            continue;
        };
        let bytes = gvariant::encode(&v);
        if let Err(e) = gvariant::decode(&bytes, ty) {
            panic!("re-encoded {ty} value does not decode: {e}\nvalue: {v:?}\nbytes: {bytes:02x?}");
        }
        if let Err(e) = gvariant::decode_normal(&bytes, ty) {
            panic!("encode() output is not normal form for {ty}: {e}\nvalue: {v:?}");
        }
    }
}

/// Feed `data` to every object parser.
pub fn check_objects(data: &[u8]) {
    let _ = Commit::parse(data);
    let _ = DirTree::parse(data);
    let _ = DirMeta::parse(data);
    let _ = FileHeader::parse_archive(data);
    let _ = FileHeader::parse_content_stream(data);
    let _ = FileHeader::from_filemeta(data);
}

/// Parse `data` (lossy UTF-8) as a GLib keyfile; what parses must still parse after
/// being written out.
pub fn check_keyfile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(kf) = KeyFile::parse(&text) else {
        return;
    };
    let out = kf.to_string();
    if let Err(e) = KeyFile::parse(&out) {
        panic!(
            "keyfile does not re-parse after to_string(): {e}\ninput: {text:?}\noutput: {out:?}"
        );
    }
}

/// Static deltas, the input read as (the first byte chooses): 0, a superblock; 1, a part
/// payload executed against a stand-in repository; 2, a part file as stored (`0`/`x` and
/// body); otherwise a bsdiff patch of a fixed old file. Executing a part must stay within
/// its output bound (`Payload::max_output`, security review M3): the stand-in sink counts
/// what reaches it, reading streamed objects through a small buffer as a real sink would.
pub fn check_delta(data: &[u8]) {
    use oxtree::delta;
    use oxtree::object::{Checksum, ObjectType};
    use std::cell::Cell;
    use std::io::Read;
    struct Sink(Cell<u64>);
    impl delta::ObjectSink for Sink {
        fn write_metadata(&self, _: ObjectType, _: &Checksum, d: &[u8]) -> oxtree::Result<()> {
            self.0.set(self.0.get() + d.len() as u64);
            Ok(())
        }
        fn write_content(&self, _: &FileHeader, d: &[u8], _: &Checksum) -> oxtree::Result<()> {
            self.0.set(self.0.get() + d.len() as u64);
            Ok(())
        }
        fn write_content_stream(
            &self,
            _: &FileHeader,
            _: u64,
            data: &mut dyn Read,
            _: &Checksum,
        ) -> oxtree::Result<()> {
            let mut buf = [0u8; 4096];
            loop {
                match data.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => self.0.set(self.0.get() + n as u64),
                    Err(e) => return Err(oxtree::Error::Other(e.to_string())),
                }
            }
        }
        fn read_content(&self, _: &Checksum) -> oxtree::Result<Vec<u8>> {
            Ok(b"the old content of a file".to_vec())
        }
    }
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    // A part header listing objects of every kind, metadata and content alternating.
    let objects: Vec<(ObjectType, Checksum)> = (0u8..8)
        .map(|i| {
            let ty = if i % 2 == 0 {
                ObjectType::File
            } else {
                ObjectType::DirTree
            };
            (ty, Checksum([i; 32]))
        })
        .collect();
    let execute = |p: &delta::Payload, objects: &[(ObjectType, Checksum)]| {
        let sink = Sink(Cell::new(0));
        let _ = delta::apply_part(p, objects, &sink, "fuzz");
        assert!(
            sink.0.get() <= p.max_output,
            "a part produced {} bytes, its bound is {}",
            sink.0.get(),
            p.max_output
        );
    };
    match kind {
        0 => {
            let _ = delta::Superblock::parse(rest, "fuzz");
        }
        1 => {
            if let Ok(p) = delta::parse_payload(rest, "fuzz") {
                execute(&p, &objects);
            }
        }
        2 => {
            let header = delta::PartHeader {
                version: 0,
                checksum: Checksum::digest(rest),
                size: rest.len() as u64,
                uncompressed_size: 4096,
                objects,
            };
            if let Ok(p) = delta::open_part(rest, &header, "fuzz") {
                execute(&p, &header.objects);
            }
        }
        _ => {
            let _ = delta::bspatch(b"the old content of a file", rest, u64::from(kind) * 64);
        }
    }
}

/// Dispatch by target name (the directory name under `fuzz/regressions/`).
pub fn check(target: &str, data: &[u8]) -> Option<()> {
    match target {
        "gvariant" => check_gvariant(data),
        "objects" => check_objects(data),
        "keyfile" => check_keyfile(data),
        "delta" => check_delta(data),
        _ => return None,
    }
    Some(())
}
