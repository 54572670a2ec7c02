//! The worked byte examples of spec §2.4, verified against ostree 2022.7.

use super::*;
use crate::gvariant::Value;

fn hex(c: &str) -> Checksum {
    c.parse().expect("valid hex")
}

fn regular(mode: u32) -> FileHeader {
    FileHeader {
        mode,
        ..Default::default()
    }
}

fn content_checksum(h: &FileHeader, payload: &[u8]) -> Checksum {
    let mut s = h.content_stream_prefix();
    s.extend_from_slice(payload);
    Checksum::digest(&s)
}

#[test]
fn dirmeta_example() {
    let dm = DirMeta {
        uid: 0,
        gid: 0,
        mode: 0o40755,
        xattrs: vec![],
    };
    assert_eq!(dm.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xed]);
    assert_eq!(
        dm.checksum(),
        hex("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488")
    );
    assert_eq!(DirMeta::parse(&dm.encode()), Ok(dm));
}

#[test]
fn regular_file_example() {
    let h = regular(0o100644);
    assert_eq!(
        h.content_header(),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0xa4, 0, 0, 0, 0, 0, 0x11]
    );
    assert_eq!(
        content_checksum(&h, b"hi\n"),
        hex("fbf7cf77a1b50d9f074cb6e9ef6ddb65b6532ea89e4f4ca1b07a05b4cd1be259")
    );
}

#[test]
fn symlink_example() {
    let h = FileHeader {
        mode: 0o120777,
        symlink_target: "hello".into(),
        ..Default::default()
    };
    assert_eq!(h.content_header().len(), 23);
    assert_eq!(
        content_checksum(&h, b""),
        hex("73baaba0102e9154b8522687d33eedb8ed1bc78eadb82428b2616144ec502934")
    );
}

fn example_root() -> DirTree {
    DirTree {
        files: vec![
            (
                "link".into(),
                hex("73baaba0102e9154b8522687d33eedb8ed1bc78eadb82428b2616144ec502934"),
            ),
            (
                "hello".into(),
                hex("fbf7cf77a1b50d9f074cb6e9ef6ddb65b6532ea89e4f4ca1b07a05b4cd1be259"),
            ),
        ],
        dirs: vec![(
            "sub".into(),
            hex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            hex("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"),
        )],
    }
}

#[test]
fn dirtree_examples() {
    assert_eq!(DirTree::default().encode(), [0]);
    assert_eq!(
        DirTree::default().checksum(),
        hex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    let bytes = example_root().encode();
    assert_eq!(bytes.len(), 151);
    assert_eq!(&bytes[bytes.len() - 1..], [0x4f]);
    let parsed = DirTree::parse(&bytes).expect("parses");
    assert_eq!(parsed.files[0].0, "hello");
}

#[test]
fn commit_example() {
    let root = example_root();
    let c = Commit {
        metadata: vec![(
            "ostree.ref-binding".into(),
            Value::Array(crate::gvariant::Type::Str, vec![Value::str("main")]),
        )],
        parent: None,
        related: vec![],
        subject: "subj".into(),
        body: String::new(),
        timestamp: 1577836800,
        root_tree: root.checksum(),
        root_meta: DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: vec![],
        }
        .checksum(),
    };
    let b = c.encode();
    assert_eq!(b.len(), 126);
    assert_eq!(&b[b.len() - 6..], [0x58, 0x29, 0x28, 0x23, 0x23, 0x23]);
    assert_eq!(&b[48..56], [0, 0, 0, 0, 0x5e, 0x0b, 0xe1, 0x00]);
    assert_eq!(Commit::parse(&b).expect("parses"), c);
}

#[test]
fn archive_header_example() {
    let h = regular(0o100644);
    let p = h.archive_prefix(3);
    assert_eq!(&p[..4], [0, 0, 0, 0x1a]);
    let (back, size, end) = FileHeader::parse_archive(&p).expect("parses");
    assert_eq!((back, size, end), (h, 3, p.len()));
}

#[test]
fn bad_dirtree_names_rejected() {
    for name in ["..", ".", "a/b", ""] {
        let t = DirTree {
            files: vec![(name.into(), Checksum::default())],
            dirs: vec![],
        };
        assert!(DirTree::parse(&t.encode()).is_err(), "{name:?}");
    }
}

#[test]
fn mbase64() {
    let c = Checksum([0xff; 32]);
    assert_eq!(c.to_mbase64().len(), 43);
    assert!(c.to_mbase64().starts_with("____"));
}

#[test]
fn ref_names() {
    assert!(validate_ref("fedora/x86_64/coreos/stable").is_ok());
    assert!(validate_ref("main").is_ok());
    for bad in ["", "/a", "a//b", "-a", "a b", "a/"] {
        assert!(validate_ref(bad).is_err(), "{bad}");
    }
}

#[test]
fn nested_variant_metadata_round_trips() {
    let mut c = Commit {
        metadata: vec![("k".into(), Value::Variant(Box::new(Value::str("inner"))))],
        parent: None,
        related: vec![],
        subject: String::new(),
        body: String::new(),
        timestamp: 0,
        root_tree: Checksum::default(),
        root_meta: Checksum::default(),
    };
    let b = c.encode();
    let back = Commit::parse(&b).expect("parses");
    assert_eq!(back.encode(), b);
    c.metadata.clear();
    assert_ne!(c.encode(), b);
}

#[test]
fn collection_ids_follow_dbus_interface_names() {
    use super::validate_collection_id as v;
    for ok in ["org.example.Os", "org._x.y1", "a.b", "A_1.b_2.C"] {
        assert!(v(ok).is_ok(), "{ok} should be valid");
    }
    for bad in [
        "",
        "org",
        "1org.x",
        "org..x",
        ".org.x",
        "org.x.",
        "org.Ex_1.c-2",
        "org.x/y",
    ] {
        assert_eq!(v(bad), Err(format!("Invalid collection ID {bad}")));
    }
    assert!(v(&format!("a.{}", "b".repeat(253))).is_ok());
    assert!(v(&format!("a.{}", "b".repeat(254))).is_err());
}

#[test]
fn filemeta_without_xattrs_reads_as_the_decoder_does() {
    // The 12-byte fast path and the GVariant decoder agree: the bytes ostree writes for
    // (uid, gid, mode, []) and those with one xattr both round-trip.
    let mut h = FileHeader {
        uid: 1000,
        gid: 0x0102_0304,
        mode: 0o100_755,
        symlink_target: String::new(),
        xattrs: Vec::new(),
    };
    let bytes = h.to_filemeta();
    assert_eq!(bytes.len(), 12);
    assert_eq!(&bytes[..4], &1000u32.to_be_bytes());
    assert_eq!(
        FileHeader::from_filemeta(&bytes).expect("test setup or call"),
        h
    );
    h.xattrs = vec![(b"security.selinux".to_vec(), b"x\0".to_vec())];
    assert_eq!(
        FileHeader::from_filemeta(&h.to_filemeta()).expect("test setup or call"),
        h
    );
    // Too short for the fixed part: refused, as before.
    assert!(FileHeader::from_filemeta(&bytes[..11]).is_err());
}
