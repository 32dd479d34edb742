//! The flow TOML loader and the checks `smsflow check` runs on a file (all but the plugin
//! checks, which need the plugins built): compile, the segment limits, the set checks.
//!
//! Input: a flow file.

use std::path::Path;
use std::sync::OnceLock;

use smsflow::flow::Diagnostic;
use smsflow::flow::check::{self, CheckLimits};
use smsflow::flow::compile::compile_with_problems;

/// The file name diagnostics carry.
const PATH: &str = "fuzz.toml";

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(PATH);
    let (flow, problems) = match compile_with_problems(path, source) {
        Ok(compiled) => compiled,
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            check_diagnostics(source, &errors);
            return;
        }
    };
    check_diagnostics(source, &problems);
    check_diagnostics(source, &flow.warnings);
    assert!(
        flow.steps.contains_key(&flow.start),
        "start {:?}",
        flow.start
    );
    let limits = limits();
    check_diagnostics(source, &check::check_segments(&flow, limits));
    let _ = check::segment_report(&flow, limits);
    let twice = check::check_set(&[flow.clone(), flow]);
    assert!(
        !twice.is_empty(),
        "the same flow twice passes the set checks"
    );
}

/// The gate's default limits, built once.
fn limits() -> &'static CheckLimits {
    static LIMITS: OnceLock<CheckLimits> = OnceLock::new();
    LIMITS.get_or_init(CheckLimits::default)
}

/// Every diagnostic points into the file.
fn check_diagnostics(source: &str, diagnostics: &[Diagnostic]) {
    let lines = source.split('\n').count();
    for diagnostic in diagnostics {
        let at = diagnostic.at;
        assert_eq!(diagnostic.path, Path::new(PATH));
        assert!(at.line >= 1 && at.column >= 1, "{diagnostic}");
        assert!(
            at.line <= lines,
            "{diagnostic} (the file has {lines} lines)"
        );
    }
}
