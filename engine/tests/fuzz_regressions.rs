//! The fuzz targets' checks (`fuzz/src/`) over their seed corpora (`fuzz/corpus/<target>/`) and
//! every crashing input the fuzzer found (`fuzz/regressions/<target>/`): a crash, once fixed,
//! stays fixed in an ordinary `cargo test`, without cargo-fuzz or a nightly compiler.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The fuzz crate at the repository's root.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Feeds every seed and kept crash of `target` to `check`, naming each input that fails.
fn passes(target: &str, check: fn(&[u8])) {
    let inputs: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| files(&fuzz_dir().join(kind).join(target)))
        .collect();
    assert!(!inputs.is_empty(), "fuzz/corpus/{target}/ has no seeds");
    let failed: Vec<&PathBuf> = inputs
        .iter()
        .filter(|input| {
            let data = std::fs::read(input).unwrap();
            panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail: {failed:#?}"
    );
}

/// A test module per target, and the list of the targets tested.
macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        $(
            mod $target {
                #[test]
                fn its_seeds_and_kept_crashes_pass_the_fuzz_targets_checks() {
                    super::passes(stringify!($target), super::harness::$target::run);
                }
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($target)),*];
    };
}

targets!(
    contacts_csv,
    flow_check,
    keywords,
    phone,
    segment_query,
    sms_segments,
    telnyx,
    template,
    twilio,
    webhook_signing,
);

#[test]
fn every_fuzz_target_is_tested_here_and_has_a_target_file() {
    let names: Vec<&str> = harness::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, TESTED, "add the new target to `targets!` above");
    for name in names {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
}
