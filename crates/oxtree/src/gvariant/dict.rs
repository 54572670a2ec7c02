//! The entry order of a `GVariantDict`, so that `a{sv}` values ostree builds through one
//! come out byte-identical (and commits checksum-identical).
//!
//! ostree assembles some dictionaries with a `GVariantDict` — a `GHashTable` keyed by
//! `g_str_hash` — and serialises them in the table's iteration order: commit metadata once
//! `--bootable` adds its keys, detached metadata each time a signature is added. This module
//! replays GLib 2.74's table (open addressing, quadratic probing, the prime modulus and the
//! in-place resize) on the keys in insertion order and returns the entries in the order
//! GLib would iterate them.

use super::Value;

const UNUSED: u32 = 0;
const MIN_SHIFT: u32 = 3;
/// `prime_mod[]` of ghash.c, indexed by the table's shift.
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
    268435399, 536870909, 1073741789, 2147483647,
];

/// `g_str_hash`: djb2 over the bytes as *signed* chars.
fn str_hash(s: &str) -> u32 {
    s.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33).wrapping_add(b as i8 as u32)
    })
}

struct Table {
    size: usize,
    modulus: u32,
    mask: usize,
    nnodes: usize,
    noccupied: usize,
    hashes: Vec<u32>,
    /// Index into the caller's entries.
    slots: Vec<usize>,
}

impl Table {
    fn new() -> Table {
        let mut t = Table {
            size: 0,
            modulus: 1,
            mask: 0,
            nnodes: 0,
            noccupied: 0,
            hashes: Vec::new(),
            slots: Vec::new(),
        };
        t.set_shift(MIN_SHIFT);
        t.hashes = vec![UNUSED; t.size];
        t.slots = vec![0; t.size];
        t
    }

    fn set_shift(&mut self, shift: u32) {
        self.size = 1 << shift;
        self.modulus = PRIME_MOD.get(shift as usize).copied().unwrap_or(2147483647);
        self.mask = self.size - 1;
    }

    fn to_index(&self, hash: u32) -> usize {
        (hash.wrapping_mul(11) % self.modulus) as usize
    }

    /// `g_hash_table_lookup_node`: the slot holding `key`, else where it would go.
    fn lookup(&self, key: &str, hash: u32, names: &[&str]) -> usize {
        let mut i = self.to_index(hash);
        let mut step = 0;
        let mut tombstone = None;
        loop {
            let h = self.hashes.get(i).copied().unwrap_or(UNUSED);
            if h == UNUSED {
                return tombstone.unwrap_or(i);
            }
            if h == hash {
                let k = self.slots.get(i).and_then(|&e| names.get(e));
                if k == Some(&key) {
                    return i;
                }
            } else if h == 1 && tombstone.is_none() {
                tombstone = Some(i);
            }
            step += 1;
            i = (i + step) & self.mask;
        }
    }

    fn insert(&mut self, entry: usize, names: &[&str]) {
        let Some(key) = names.get(entry) else { return };
        let hash = str_hash(key).max(2);
        let i = self.lookup(key, hash, names);
        let old = self.hashes.get(i).copied().unwrap_or(UNUSED);
        if old >= 2 {
            return; // the key is there: its value is replaced, its place kept
        }
        if let (Some(h), Some(s)) = (self.hashes.get_mut(i), self.slots.get_mut(i)) {
            *h = hash;
            *s = entry;
        }
        self.nnodes += 1;
        if old == UNUSED {
            self.noccupied += 1;
        }
        self.maybe_resize();
    }

    fn maybe_resize(&mut self) {
        let (n, occ, size) = (self.nnodes, self.noccupied, self.size);
        if (size > n * 4 && size > 1 << MIN_SHIFT) || size <= occ + occ / 16 {
            self.resize();
        }
    }

    /// `g_hash_table_resize` with `resize_map`: reinsert in place, evicting as it goes.
    fn resize(&mut self) {
        let old_size = self.size;
        let want = (self.nnodes as f64 * 1.333) as u64;
        let shift = (64 - want.leading_zeros()).max(MIN_SHIFT);
        self.set_shift(shift);
        let len = self.size.max(old_size);
        self.hashes.resize(len, UNUSED);
        self.slots.resize(len, 0);
        let mut placed = vec![false; len];
        for i in 0..old_size {
            let h = self.hashes.get(i).copied().unwrap_or(UNUSED);
            if h < 2 {
                if let Some(x) = self.hashes.get_mut(i) {
                    *x = UNUSED;
                }
                continue;
            }
            if placed.get(i).copied().unwrap_or(false) {
                continue;
            }
            if let Some(x) = self.hashes.get_mut(i) {
                *x = UNUSED;
            }
            let (mut node_hash, mut entry) = (h, self.slots.get(i).copied().unwrap_or(0));
            loop {
                let mut j = self.to_index(node_hash);
                let mut step = 0;
                while placed.get(j).copied().unwrap_or(false) {
                    step += 1;
                    j = (j + step) & self.mask;
                }
                if let Some(p) = placed.get_mut(j) {
                    *p = true;
                }
                let replaced = self.hashes.get(j).copied().unwrap_or(UNUSED);
                let replaced_entry = self.slots.get(j).copied().unwrap_or(0);
                if let (Some(x), Some(s)) = (self.hashes.get_mut(j), self.slots.get_mut(j)) {
                    *x = node_hash;
                    *s = entry;
                }
                if replaced < 2 {
                    break;
                }
                node_hash = replaced;
                entry = replaced_entry;
            }
        }
        self.hashes.truncate(self.size);
        self.slots.truncate(self.size);
        self.noccupied = self.nnodes;
    }
}

/// `g_variant_dict_init` from `entries` (inserted in order; a repeated key replaces the
/// value but keeps the first one's place), then `g_variant_dict_end`: the entries in GLib's
/// iteration order.
pub fn glib_dict_order(entries: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let names: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let mut t = Table::new();
    for i in 0..entries.len() {
        t.insert(i, &names);
    }
    // The value a key ends up with is the last one inserted for it.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, k) in names.iter().enumerate() {
        last.insert(k, i);
    }
    let order: Vec<usize> = t
        .hashes
        .iter()
        .zip(&t.slots)
        .filter(|(h, _)| **h >= 2)
        .filter_map(|(_, &e)| names.get(e).and_then(|k| last.get(k)).copied())
        .collect();
    let mut slots: Vec<Option<(String, Value)>> = entries.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(keys: &[&str]) -> Vec<String> {
        glib_dict_order(
            keys.iter()
                .map(|k| (k.to_string(), Value::Bool(true)))
                .collect(),
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect()
    }

    /// Orders ostree 2022.7 (GLib 2.74) wrote, read back with `ostree show --raw`.
    #[test]
    fn matches_glib() {
        assert_eq!(
            order(&[
                "zz",
                "version",
                "aa",
                "ostree.ref-binding",
                "ostree.bootable",
                "ostree.linux"
            ]),
            [
                "aa",
                "version",
                "ostree.bootable",
                "ostree.linux",
                "zz",
                "ostree.ref-binding"
            ]
        );
        assert_eq!(
            order(&[
                "new",
                "zz",
                "version",
                "ostree.ref-binding",
                "ostree.bootable",
                "ostree.linux"
            ]),
            [
                "ostree.linux",
                "new",
                "version",
                "ostree.bootable",
                "zz",
                "ostree.ref-binding"
            ]
        );
        assert_eq!(
            order(&["zz", "aa", "ostree.sign.dummy"]),
            ["aa", "zz", "ostree.sign.dummy"]
        );
        // 20 keys: two resizes (8 → 16 → 32 buckets).
        let keys = [
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "zeta",
            "eta",
            "theta",
            "iota",
            "kappa",
            "lambda",
            "mu",
            "nu",
            "xi",
            "omicron",
            "pi",
            "rho",
            "ostree.ref-binding",
            "ostree.bootable",
            "ostree.linux",
        ];
        assert_eq!(
            order(&keys),
            [
                "epsilon",
                "rho",
                "nu",
                "eta",
                "pi",
                "delta",
                "alpha",
                "ostree.bootable",
                "mu",
                "gamma",
                "iota",
                "beta",
                "kappa",
                "omicron",
                "zeta",
                "theta",
                "lambda",
                "ostree.ref-binding",
                "ostree.linux",
                "xi"
            ]
        );
    }

    #[test]
    fn repeated_keys_keep_their_place_and_take_the_last_value() {
        let out = glib_dict_order(vec![
            ("b".into(), Value::str("1")),
            ("a".into(), Value::str("x")),
            ("b".into(), Value::str("2")),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out.contains(&("b".to_string(), Value::str("2"))));
    }
}
