use super::*;
use proptest::prelude::*;

fn sv(entries: Vec<(&str, Value)>) -> Value {
    Value::dict_sv(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

#[test]
fn basic_encodings() {
    assert_eq!(encode(&Value::str("")), [0]);
    assert_eq!(encode(&Value::Tuple(vec![])), [0]);
    // dirmeta (uuua(ayay)) with no xattrs: no framing offset since the variable member is last
    let dm = Value::Tuple(vec![
        Value::U32(0),
        Value::U32(0),
        Value::U32(0o40755u32.swap_bytes()),
        Value::Array(Type::of("(ayay)"), vec![]),
    ]);
    assert_eq!(encode(&dm), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xed]);
    // a variant holding "as"
    let v = Value::Variant(Box::new(Value::Array(Type::Str, vec![Value::str("main")])));
    assert_eq!(encode(&v), b"main\0\x05\0as");
}

#[test]
fn empty_dirtree_is_one_zero_byte() {
    let t = Type::of("(a(say)a(sayay))");
    let v = Value::Tuple(vec![
        Value::Array(Type::of("(say)"), vec![]),
        Value::Array(Type::of("(sayay)"), vec![]),
    ]);
    assert_eq!(encode(&v), [0]);
    assert_eq!(decode_normal(&[0], &t), Ok(v));
}

#[test]
fn lookup_in_dict() {
    let d = sv(vec![("a", Value::U32(1)), ("b", Value::str("x"))]);
    let bytes = encode(&d);
    let back = decode_normal(&bytes, &Type::of("a{sv}")).expect("decodes");
    assert_eq!(back.lookup("b").and_then(Value::as_str), Some("x"));
    assert_eq!(back.lookup("c"), None);
}

#[test]
fn non_normal_is_rejected() {
    // "a" with a non-zero padding-free but over-wide offset table: (ss) "a\0b\0" + offset 2 as 2 bytes
    let t = Type::of("(ss)");
    assert!(decode_normal(b"a\0b\0\x02", &t).is_ok());
    assert!(decode(b"a\0b\0\x02\0", &t).is_err() || decode_normal(b"a\0b\0\x02\0", &t).is_err());
    // trailing garbage in a fixed tuple
    assert!(decode_normal(&[0; 13], &Type::of("(uuu)")).is_err());
}

#[test]
fn hostile_offsets_do_not_panic() {
    let types = [
        "(a{sv}aya(say)sstayay)",
        "(a(say)a(sayay))",
        "(uuua(ayay))",
        "a{sv}",
        "(tuuuusa(ayay))",
        "v",
        "aav",
    ];
    let samples: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0xff; 9],
        vec![1, 2, 3, 0xfe],
        b"x\0\0(((((((((((((".to_vec(),
        vec![0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f],
    ];
    for t in types {
        let ty = Type::of(t);
        for s in &samples {
            let _ = decode(s, &ty);
        }
    }
}

#[test]
fn deep_variants_are_bounded() {
    let mut v = Value::Byte(1);
    for _ in 0..(MAX_DEPTH + 5) {
        v = Value::Variant(Box::new(v));
    }
    let bytes = encode(&v);
    assert_eq!(
        decode(&bytes, &Type::Variant),
        Err(DecodeError::TooDeep(MAX_DEPTH))
    );
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        "[a-z\u{e9}\u{4e2d}]{0,12}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            inner.clone().prop_map(|v| Value::Variant(Box::new(v))),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            // arrays of variants keep every element the same type
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|xs| Value::Array(
                Type::Variant,
                xs.into_iter()
                    .map(|v| Value::Variant(Box::new(v)))
                    .collect()
            )),
            proptest::collection::vec(("[a-z]{1,8}", inner.clone()), 0..5).prop_map(Value::dict_sv),
            // just a value (its own type), and nothing of that type
            inner
                .clone()
                .prop_map(|v| Value::Maybe(v.ty(), Some(Box::new(v)))),
            inner.prop_map(|v| Value::Maybe(v.ty(), None)),
        ]
    })
}

proptest! {
    #[test]
    fn roundtrip(v in arb_value()) {
        let ty = v.ty();
        let bytes = encode(&v);
        let back = decode_normal(&bytes, &ty).expect("round trip decodes");
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for t in ["(a{sv}aya(say)sstayay)", "(a(say)a(sayay))", "(uuua(ayay))", "(tuuuusa(ayay))", "v", "a{sv}", "(msmiay)", "amv", "mmas"] {
            let _ = decode(&data, &Type::of(t));
        }
    }
}

/// Maybes as GLib frames them (bytes checked against GLib 2.74): nothing is empty, just a
/// fixed-size value is the value, just a variable-size one is the value and a zero byte.
/// Bytes that are no maybe of the type are refused, and non-normal ones by `decode_normal`.
#[test]
fn maybes() {
    let mi = Type::of("mi");
    let ms = Type::of("ms");
    let just5 = Value::Maybe(Type::I32, Some(Box::new(Value::I32(5))));
    assert_eq!(encode(&just5), [5, 0, 0, 0]);
    assert_eq!(decode_normal(&[5, 0, 0, 0], &mi), Ok(just5));
    assert_eq!(decode_normal(&[], &mi), Ok(Value::Maybe(Type::I32, None)));
    assert!(
        decode(&[5, 0], &mi).is_err(),
        "a fixed-size maybe of the wrong size"
    );
    let just_empty = Value::Maybe(Type::Str, Some(Box::new(Value::str(""))));
    assert_eq!(encode(&just_empty), [0, 0]);
    assert_eq!(decode_normal(&[0, 0], &ms), Ok(just_empty));
    assert!(
        decode_normal(&[b'a', 0, 7], &ms).is_err(),
        "the byte after a just is not zero"
    );
    // `@mmi just nothing` and an array of maybes, `[@ms 'a', nothing]`.
    let mmi = Type::of("mmi");
    let just_nothing = Value::Maybe(mi.clone(), Some(Box::new(Value::Maybe(Type::I32, None))));
    assert_eq!(encode(&just_nothing), [0]);
    assert_eq!(decode_normal(&[0], &mmi), Ok(just_nothing));
    let ams = Value::Array(
        ms.clone(),
        vec![
            Value::Maybe(Type::Str, Some(Box::new(Value::str("a")))),
            Value::Maybe(Type::Str, None),
        ],
    );
    assert_eq!(encode(&ams), [0x61, 0, 0, 3, 3]);
    assert_eq!(
        decode_normal(&[0x61, 0, 0, 3, 3], &Type::of("ams")),
        Ok(ams)
    );
}
