//! Replays every input under `fuzz/regressions/<target>/` through the same checks the
//! cargo-fuzz target `<target>` runs, so crashes the fuzzer once found (and hand-made tricky
//! inputs) stay fixed under a plain `cargo test`, without nightly or libFuzzer.
//!
//! The checks live in `fuzz/src/checks.rs` and are included here by path, so the fuzz
//! targets and this test cannot drift apart.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let rd = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (the fuzz regression corpus must exist)",
            dir.display()
        )
    });
    let mut v: Vec<PathBuf> = rd
        .map(|e| {
            e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let root = regressions_dir();
    let mut replayed = 0usize;
    let mut failures = Vec::new();
    for target_dir in sorted_entries(&root) {
        if !target_dir.is_dir() {
            continue;
        }
        let target = target_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let inputs: Vec<PathBuf> = sorted_entries(&target_dir)
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        assert!(
            !inputs.is_empty(),
            "{} has no inputs: remove it or add some",
            target_dir.display()
        );
        for input in inputs {
            let data = std::fs::read(&input)
                .unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
            let outcome = std::panic::catch_unwind(|| checks::check(&target, &data));
            match outcome {
                Ok(Some(())) => replayed += 1,
                Ok(None) => panic!(
                    "{}: no fuzz target named {target:?} (expected gvariant, objects or keyfile)",
                    target_dir.display()
                ),
                Err(_) => failures.push(input.display().to_string()),
            }
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs found under {}",
        root.display()
    );
    assert!(
        failures.is_empty(),
        "{} regression input(s) panicked (messages above):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("replayed {replayed} fuzz regression inputs");
}
