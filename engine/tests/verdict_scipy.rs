//! Checks every number in `fixtures/verdict_scipy.json`, which
//! `fixtures/gen_verdict_fixture.py` computed with scipy, statsmodels and numpy.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::Value;
use smsflow::measure::verdict::{
    minimum_detectable_effect, probability_best, srm, two_proportion, wilson,
};

/// Closed forms must agree to 1e-6 relative; values that are 0 in exact arithmetic
/// come out of either side as rounding dust, hence an absolute floor.
const RELATIVE: f64 = 1e-6;
/// Rounding dust around 0 (statsmodels' Wilson low end at 0 successes is 7e-18).
const ABSOLUTE_FLOOR: f64 = 1e-15;
/// Monte Carlo with 2e6 draws: a standard error of at most 3.5e-4.
const MONTE_CARLO: f64 = 3e-3;
/// Against scipy's adaptive quadrature the claim is 1e-4.
const QUADRATURE: f64 = 1e-4;

fn fixture() -> Value {
    let text = include_str!("fixtures/verdict_scipy.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(what: &str, got: f64, want: f64, relative: f64) {
    let tolerance = (relative * want.abs()).max(ABSOLUTE_FLOOR);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got:e}, scipy says {want:e} (diff {:e})",
        (got - want).abs()
    );
}

fn near(what: &str, got: f64, want: f64, absolute: f64) {
    assert!(
        (got - want).abs() <= absolute,
        "{what}: got {got}, reference {want} (diff {:e})",
        (got - want).abs()
    );
}

fn counts(case: &Value) -> Vec<(u64, u64)> {
    case["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["successes"].as_u64().unwrap(),
                v["trials"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn cases() -> Vec<Value> {
    let cases = fixture()["cases"].as_array().unwrap().clone();
    assert!(
        cases.len() >= 12,
        "the fixture should hold at least 12 cases"
    );
    cases
}

#[test]
fn wilson_matches_statsmodels() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let confidence = num(&case["confidence"]);
        for (i, ((s, n), want)) in counts(&case)
            .iter()
            .zip(case["wilson"].as_array().unwrap())
            .enumerate()
        {
            let got = wilson(*s, *n, confidence);
            // statsmodels does not clamp; its ends can stray an ulp outside [0, 1].
            close(
                &format!("{name}[{i}] wilson low"),
                got.low,
                num(&want["low"]).max(0.0),
                RELATIVE,
            );
            close(
                &format!("{name}[{i}] wilson high"),
                got.high,
                num(&want["high"]).min(1.0),
                RELATIVE,
            );
        }
    }
}

#[test]
fn two_proportion_matches_statsmodels() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let confidence = num(&case["confidence"]);
        let variants = counts(&case);
        for (i, want) in case["comparisons"].as_array().unwrap().iter().enumerate() {
            let got = two_proportion(variants[0], variants[i + 1], confidence);
            let what = format!("{name}: variant {} vs control", i + 1);
            close(&format!("{what} z"), got.z, num(&want["z"]), RELATIVE);
            close(
                &format!("{what} p"),
                got.p_value,
                num(&want["p_value"]),
                RELATIVE,
            );
            // Our Wald interval is clamped to [-1, 1]; statsmodels' is not.
            close(
                &format!("{what} wald low"),
                got.low,
                num(&want["wald_low"]).max(-1.0),
                RELATIVE,
            );
            close(
                &format!("{what} wald high"),
                got.high,
                num(&want["wald_high"]).min(1.0),
                RELATIVE,
            );
        }
    }
}

#[test]
fn srm_matches_scipy_chisquare() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let trials: Vec<u64> = counts(&case).iter().map(|&(_, n)| n).collect();
        let weights: Vec<f64> = case["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let got = srm(&trials, &weights);
        close(
            &format!("{name} chi2"),
            got.chi2,
            num(&case["srm"]["chi2"]),
            RELATIVE,
        );
        let p = num(&case["srm"]["p_value"]);
        close(&format!("{name} srm p"), got.p_value, p, RELATIVE);
        assert_eq!(got.mismatch, p < 0.001, "{name}: mismatch flag");
    }
}

#[test]
fn probability_best_matches_monte_carlo_and_quadrature() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let got = probability_best(&counts(&case));
        let mc = case["probability_best_mc"].as_array().unwrap();
        let quad = case["probability_best_quad"].as_array().unwrap();
        for (i, p) in got.iter().enumerate() {
            near(
                &format!("{name}[{i}] vs Monte Carlo"),
                *p,
                num(&mc[i]),
                MONTE_CARLO,
            );
            near(
                &format!("{name}[{i}] vs quadrature"),
                *p,
                num(&quad[i]),
                QUADRATURE,
            );
        }
        near(&format!("{name} sum"), got.iter().sum(), 1.0, 1e-6);
    }
}

#[test]
fn minimum_detectable_effect_matches_scipy() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let m = &case["mde"];
        let n = m["n"].as_u64().unwrap();
        let got =
            minimum_detectable_effect(num(&m["p_base"]), n, num(&m["alpha"]), num(&m["power"]));
        close(&format!("{name} mde"), got, num(&m["value"]), RELATIVE);
        // statsmodels' power solver also counts the far tail and stops at its own
        // tolerance, so it agrees only to ~1e-4.
        close(
            &format!("{name} mde vs NormalIndPower"),
            got,
            num(&m["statsmodels"]),
            5e-4,
        );
    }
}
