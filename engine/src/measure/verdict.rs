//! The statistics behind an A/B test report for SMS campaign variants.
//!
//! Everything here is a pure function of counts: how many messages each variant
//! delivered (`trials`) and how many of those converted or got a reply
//! (`successes`). [`verdict`] combines the pieces into the decision a report shows.
//!
//! # Why two kinds of evidence
//!
//! A winner is *named* by the Bayesian probability to be best ([`probability_best`],
//! independent Beta(1 + s, 1 + f) posteriors, i.e. uniform priors) and *guarded* by a
//! frequentist interval for its difference against the control ([`two_proportion`],
//! or [`confidence_sequence`] when the report is looked at every day).
//!
//! - The probability to be best answers the question the campaign owner asks ("which
//!   message should we send?"), ranks any number of variants at once, and does not
//!   need a pairwise test per variant to pick one. On its own it is a weak guard: with
//!   two arms, P(best) = 0.90 is about a one-sided p-value of 0.10, and it says nothing
//!   about how often the rule would name a winner between two identical messages.
//! - The interval controls exactly that error rate: at 95 % a winner is named between
//!   identical variants at most 2.5 % of the time (per comparison), and the sequential
//!   version keeps that promise however often the report is refreshed. It cannot rank
//!   three variants by itself, and a fixed-n interval loses its promise under peeking.
//!
//! Requiring both names a variant only when the ranking is confident *and* the
//! difference is distinguishable from noise. With two arms and the defaults the
//! interval is the binding condition (an interval excluding 0 implies P(best) ≈ 0.975);
//! `win_probability` bites with three or more variants, where the leader must also
//! beat the other challengers, not only the control. The intervals are not corrected
//! for multiple comparisons: each challenger is compared with the control at the
//! stated level.
//!
//! A sample-ratio mismatch ([`srm`]) overrides everything: if the delivered counts do
//! not match the configured split, the assignment (or delivery) differs by variant in
//! a way no test here models, so no winner is named however strong the numbers look.
//!
//! Counts are `u64`; a `successes` larger than its `trials` is read as `trials`, so
//! that a bad row cannot produce a rate above 1. Probabilities given as parameters
//! (confidence, alpha, power) are clamped into `[1e-12, 1 - 1e-12]` so that no input
//! makes a quantile infinite; a NaN one gives the widest interval (`[0, 1]` for a rate,
//! `[-1, 1]` for a difference) or a NaN minimum detectable effect, never a panic.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The p-value below which [`srm`] reports a mismatch. Deliberately strict: the SRM
/// check runs on every report refresh, so a lenient level would cry wolf weekly.
pub const SRM_ALPHA: f64 = 0.001;

/// The total sample size (both arms together) at which [`confidence_sequence`] is
/// tightest: two arms of 500, the default `min_per_variant`, when a verdict first
/// becomes possible.
pub const SEQUENCE_TUNED_FOR_N: f64 = 1000.0;

/// The power at which [`verdict`] reports the minimum detectable effect, the
/// conventional 80 %.
pub const MDE_POWER: f64 = 0.8;

/// Keeps quantile arguments away from 0 and 1, where the normal quantile is infinite.
const PROBABILITY_FLOOR: f64 = 1e-12;

/// A two-sided interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The difference `p_b - p_a` between two success rates, from [`two_proportion`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// `p_b - p_a`, the observed difference in rates.
    pub estimate: f64,
    /// Lower end of the Wald (unpooled) interval, clamped to -1.
    pub low: f64,
    /// Upper end of the Wald (unpooled) interval, clamped to 1.
    pub high: f64,
    /// The pooled two-proportion z statistic.
    pub z: f64,
    /// Two-sided p-value of the pooled z-test (statsmodels `proportions_ztest`).
    pub p_value: f64,
}

/// The result of the sample-ratio-mismatch test, from [`srm`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Pearson's chi-squared statistic of the observed counts against the weights.
    pub chi2: f64,
    /// Its p-value with (arms - 1) degrees of freedom.
    pub p_value: f64,
    /// `p_value < SRM_ALPHA`: the split is broken.
    pub mismatch: bool,
}

/// Reads a count as a float.
#[allow(
    clippy::cast_precision_loss,
    reason = "counts up to 2^53 convert exactly; beyond, the rounding is far below sampling error"
)]
fn real(count: u64) -> f64 {
    count as f64
}

/// `(successes, trials)` with successes capped at trials, so a rate is never above 1.
fn capped((successes, trials): (u64, u64)) -> (u64, u64) {
    (successes.min(trials), trials)
}

/// The observed rate; 0 for no trials (callers handle that case before relying on it).
fn rate(successes: u64, trials: u64) -> f64 {
    if trials == 0 {
        0.0
    } else {
        real(successes.min(trials)) / real(trials)
    }
}

/// Clamps a probability parameter into `[1e-12, 1 - 1e-12]`; NaN stays NaN (and the
/// interval clamps downstream, `f64::max`/`min` ignoring NaN, widen it to the limits).
fn clamp_probability(p: f64) -> f64 {
    p.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
}

/// The standard normal quantile; NaN for NaN (statrs would panic on it).
fn normal_quantile(p: f64) -> f64 {
    // statrs' `try_inverse_cdf` for the normal still panics on NaN, so check first.
    if p.is_nan() {
        return f64::NAN;
    }
    Normal::standard().inverse_cdf(clamp_probability(p))
}

/// The two-sided critical value `z_{(1 + confidence) / 2}`.
fn critical_z(confidence: f64) -> f64 {
    normal_quantile(0.5 + clamp_probability(confidence) / 2.0)
}

/// Two-sided normal tail probability `2 (1 - Φ(|z|))`, via the survival function so
/// that tiny p-values keep their digits.
fn two_sided_normal_p(z: f64) -> f64 {
    2.0 * Normal::standard().sf(z.abs())
}

/// The Wilson score interval for a success rate.
///
/// `centre ± half` with `centre = (p + z²/2n) / (1 + z²/n)` and
/// `half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)`: statsmodels'
/// `proportion_confint(method="wilson")`. Chosen over the Wald interval because it
/// stays inside `[0, 1]` and keeps its coverage at 0 or all successes, which small SMS
/// tests hit often. No trials means nothing is known: `{0, 1}`.
#[must_use]
pub fn wilson(successes: u64, trials: u64, confidence: f64) -> Interval {
    if trials == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = real(trials);
    let p = rate(successes, trials);
    let z = critical_z(confidence);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // The clamps only absorb rounding (centre - half is 0 up to an ulp at p = 0).
    Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    }
}

/// The two arms of a comparison, as rates, once both have trials.
#[derive(Debug, Clone, Copy)]
struct Arms {
    /// Rate of arm a (the control).
    pa: f64,
    /// Rate of arm b (the challenger).
    pb: f64,
    /// Trials of arm a.
    na: f64,
    /// Trials of arm b.
    nb: f64,
    /// Pooled rate, the common rate under "no difference".
    pooled: f64,
}

impl Arms {
    /// `None` when an arm has no trials: then no difference can be estimated.
    fn new(a: (u64, u64), b: (u64, u64)) -> Option<Self> {
        let ((sa, na), (sb, nb)) = (capped(a), capped(b));
        if na == 0 || nb == 0 {
            return None;
        }
        Some(Self {
            pa: rate(sa, na),
            pb: rate(sb, nb),
            na: real(na),
            nb: real(nb),
            pooled: real(sa + sb) / (real(na) + real(nb)),
        })
    }

    /// `p_b - p_a`.
    fn estimate(&self) -> f64 {
        self.pb - self.pa
    }

    /// The unpooled variance of the estimate, `p_a(1-p_a)/n_a + p_b(1-p_b)/n_b`.
    fn variance(&self) -> f64 {
        self.pa * (1.0 - self.pa) / self.na + self.pb * (1.0 - self.pb) / self.nb
    }

    /// The pooled z statistic; 0 when both arms are all-failure or all-success, where
    /// the data carry no evidence of a difference (statsmodels returns NaN there).
    fn pooled_z(&self) -> f64 {
        let se = (self.pooled * (1.0 - self.pooled) * (1.0 / self.na + 1.0 / self.nb)).sqrt();
        if se > 0.0 { self.estimate() / se } else { 0.0 }
    }

    /// `estimate ± half`, clamped to `[-1, 1]` where a difference of rates lives.
    fn interval(&self, half: f64) -> Interval {
        Interval {
            low: (self.estimate() - half).max(-1.0),
            high: (self.estimate() + half).min(1.0),
        }
    }
}

/// The interval for a difference when one arm has no trials: anything is possible.
const UNINFORMATIVE: Interval = Interval {
    low: -1.0,
    high: 1.0,
};

/// The difference `p_b - p_a` with a Wald (unpooled) interval and the pooled z-test.
///
/// The interval is `estimate ± z · sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b)` (statsmodels
/// `confint_proportions_2indep(method="wald")`), clamped to `[-1, 1]`; the p-value is
/// the two-sided pooled test (statsmodels `proportions_ztest`). The two use different
/// standard errors, as is conventional: the pooled one is right under the null that
/// the test assumes, the unpooled one is right for the interval around the estimate.
/// An arm with no trials gives estimate 0, `[-1, 1]`, z 0 and p-value 1.
#[must_use]
pub fn two_proportion(a: (u64, u64), b: (u64, u64), confidence: f64) -> Difference {
    let Some(arms) = Arms::new(a, b) else {
        return Difference {
            estimate: 0.0,
            low: UNINFORMATIVE.low,
            high: UNINFORMATIVE.high,
            z: 0.0,
            p_value: 1.0,
        };
    };
    let interval = arms.interval(critical_z(confidence) * arms.variance().sqrt());
    let z = arms.pooled_z();
    Difference {
        estimate: arms.estimate(),
        low: interval.low,
        high: interval.high,
        z,
        p_value: two_sided_normal_p(z),
    }
}

/// The number of intervals each knot-to-knot segment of the quadrature grid is split
/// into (even, for Simpson's rule).
const SUBDIVISIONS: usize = 4;

/// A Beta(1 + s, 1 + f) posterior, as needed by the quadrature.
#[derive(Debug, Clone, Copy)]
struct Posterior {
    /// First shape minus one: the successes.
    a1: f64,
    /// Second shape minus one: the failures.
    b1: f64,
    /// Posterior mean.
    mean: f64,
    /// Posterior standard deviation.
    sd: f64,
    /// The mode, where the unnormalised density below is 1.
    mode: f64,
}

impl Posterior {
    /// The posterior after `successes` out of `trials` under a uniform prior.
    fn new((successes, trials): (u64, u64)) -> Self {
        let (s, n) = capped((successes, trials));
        let (a1, b1) = (real(s), real(n - s));
        let (a, b) = (a1 + 1.0, b1 + 1.0);
        let mean = a / (a + b);
        let sd = (mean * (1.0 - mean) / (a + b + 1.0)).sqrt();
        // With no trials the density is flat; any point serves as the reference.
        let mode = if n == 0 { 0.5 } else { a1 / (a1 + b1) };
        Self {
            a1,
            b1,
            mean,
            sd,
            mode,
        }
    }

    /// The density divided by its value at the mode, so it is at most 1 and never
    /// overflows; the quadrature normalises it. `ln_1p` of the ratio to the mode keeps
    /// the digits that `a ln x` with a ~ 1e6 would otherwise lose to cancellation.
    fn relative_density(&self, x: f64) -> f64 {
        let left = if self.a1 == 0.0 {
            0.0
        } else {
            self.a1 * ((x - self.mode) / self.mode).ln_1p()
        };
        let right = if self.b1 == 0.0 {
            0.0
        } else {
            self.b1 * ((self.mode - x) / (1.0 - self.mode)).ln_1p()
        };
        (left + right).exp()
    }
}

/// Distances from a posterior's mean, in standard deviations, at which to place grid
/// knots: every quarter up to 8, where virtually all mass lies, then 25 % further
/// each step until the whole of `[0, 1]` is covered, so tails (exponential ones for a
/// Beta(1, n)) are still sampled on their own scale.
fn knot_offsets(sd: f64) -> Vec<f64> {
    let mut offsets: Vec<f64> = (0..=32).map(|i| f64::from(i) * 0.25).collect();
    let mut t = 8.0;
    while t * sd < 1.0 {
        t *= 1.25;
        offsets.push(t);
    }
    offsets
}

/// The grid knots: 0, 1 and, for every posterior, points around its mass. Between
/// knots the integrand is smooth on the scale of the spacing, however different the
/// posteriors' widths are (a 1e6-trial posterior next to a 100-trial one).
fn knots(posteriors: &[Posterior]) -> Vec<f64> {
    let mut knots = vec![0.0, 1.0];
    for p in posteriors {
        for t in knot_offsets(p.sd) {
            for x in [p.mean - t * p.sd, p.mean + t * p.sd] {
                if x > 0.0 && x < 1.0 {
                    knots.push(x);
                }
            }
        }
    }
    knots.sort_by(f64::total_cmp);
    knots.dedup();
    knots
}

/// The quadrature nodes: each knot-to-knot segment split into `SUBDIVISIONS` equal
/// steps; segment `k` owns nodes `k * SUBDIVISIONS ..= (k + 1) * SUBDIVISIONS`.
fn nodes(knots: &[f64]) -> Vec<f64> {
    let mut nodes = Vec::with_capacity(knots.len() * SUBDIVISIONS);
    for pair in knots.windows(2) {
        let h = (pair[1] - pair[0]) / real(SUBDIVISIONS as u64);
        nodes.extend((0..SUBDIVISIONS).map(|i| pair[0] + h * real(i as u64)));
    }
    nodes.push(1.0);
    nodes
}

/// The running integral of `y` over the nodes: Simpson's rule to the even nodes and
/// the matching third-order rule `h/12 (5 y0 + 8 y1 - y2)` to the odd ones, so that
/// every node gets a CDF value as accurate as the Simpson total.
fn cumulative(nodes: &[f64], y: &[f64]) -> Vec<f64> {
    let mut total = vec![0.0; nodes.len()];
    for start in (0..nodes.len().saturating_sub(2)).step_by(2) {
        let h = (nodes[start + 1] - nodes[start] + nodes[start + 2] - nodes[start + 1]) / 2.0;
        let (y0, y1, y2) = (y[start], y[start + 1], y[start + 2]);
        total[start + 1] = total[start] + h / 12.0 * (5.0 * y0 + 8.0 * y1 - y2);
        total[start + 2] = total[start] + h / 3.0 * (y0 + 4.0 * y1 + y2);
    }
    total
}

/// A posterior's density and CDF at every node, both normalised by the quadrature's
/// own total so the CDF ends at exactly 1.
fn tabulate(posterior: &Posterior, nodes: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut density: Vec<f64> = nodes
        .iter()
        .map(|&x| posterior.relative_density(x))
        .collect();
    let mut cdf = cumulative(nodes, &density);
    let total = cdf.last().copied().unwrap_or(0.0);
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    for value in density.iter_mut().chain(cdf.iter_mut()) {
        *value /= total;
    }
    Some((density, cdf))
}

/// `∫ pdf_i(x) Π_{j≠i} cdf_j(x) dx` by Simpson's rule over the nodes.
fn integrate_best(i: usize, nodes: &[f64], tables: &[(Vec<f64>, Vec<f64>)]) -> f64 {
    let integrand: Vec<f64> = (0..nodes.len())
        .map(|node| {
            let others: f64 = tables
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, (_, cdf))| cdf[node])
                .product();
            tables[i].0[node] * others
        })
        .collect();
    cumulative(nodes, &integrand).last().copied().unwrap_or(0.0)
}

/// The probability that each variant has the highest true rate, under independent
/// Beta(1 + successes, 1 + failures) posteriors (uniform priors). Input: `(successes,
/// trials)` per variant. Sums to 1.
///
/// Deterministic: `P(i best) = ∫₀¹ pdf_i(x) Π_{j≠i} cdf_j(x) dx` by composite Simpson
/// quadrature on a grid with knots every quarter posterior standard deviation within
/// 8 sd of every posterior's mean (geometrically spaced beyond), four steps per knot
/// interval, so a 1e6-trial posterior 1e-4 wide is resolved as well as a flat one.
/// The CDFs come from the same quadrature rather than from statrs' `Beta::cdf`: its
/// incomplete beta stops after 140 continued-fraction terms and is off by 1e-3 at
/// Beta(5e5, 5e5). Checked against scipy's adaptive quadrature to 1e-4 (within 2e-7
/// on every fixture case) up to 1e6 trials. The results are finally divided by their
/// sum, which only removes the quadrature's residue (a few 1e-8) so the report's
/// column adds up.
#[must_use]
pub fn probability_best(variants: &[(u64, u64)]) -> Vec<f64> {
    if variants.len() < 2 {
        return vec![1.0; variants.len()];
    }
    let posteriors: Vec<Posterior> = variants.iter().copied().map(Posterior::new).collect();
    let nodes = nodes(&knots(&posteriors));
    let tables: Option<Vec<_>> = posteriors.iter().map(|p| tabulate(p, &nodes)).collect();
    let equal = vec![1.0 / real(variants.len() as u64); variants.len()];
    let Some(tables) = tables else {
        // Unreachable for real counts (every density is 1 at its mode, a node's
        // neighbour); an even split is the honest answer if it ever happened.
        return equal;
    };
    let raw: Vec<f64> = (0..variants.len())
        .map(|i| integrate_best(i, &nodes, &tables))
        .collect();
    let sum: f64 = raw.iter().sum();
    if sum.is_finite() && sum > 0.0 {
        raw.iter().map(|p| p / sum).collect()
    } else {
        equal
    }
}

/// The chi-squared statistic and its number of cells over the arms that can hold
/// traffic; an arm with traffic but no weight makes the statistic infinite.
fn chi2_cells(observed: &[u64], weights: &[f64]) -> (f64, u64) {
    let arms = observed.len().max(weights.len());
    let weight = |i: usize| {
        weights
            .get(i)
            .copied()
            .filter(|w| w.is_finite() && *w > 0.0)
            .unwrap_or(0.0)
    };
    let count = |i: usize| real(observed.get(i).copied().unwrap_or(0));
    let total_weight: f64 = (0..arms).map(weight).sum();
    let total: f64 = (0..arms).map(count).sum();
    let (mut chi2, mut cells) = (0.0, 0);
    for i in 0..arms {
        let expected = total * weight(i) / total_weight;
        if expected > 0.0 {
            chi2 += (count(i) - expected).powi(2) / expected;
            cells += 1;
        } else if count(i) > 0.0 {
            chi2 = f64::INFINITY;
            cells += 1;
        }
    }
    (chi2, cells)
}

/// Sample-ratio mismatch: Pearson's chi-squared goodness of fit of the observed
/// assignment counts against the configured weights (normalised to sum to 1), with
/// `arms - 1` degrees of freedom, as `scipy.stats.chisquare`. `mismatch` is
/// `p_value < SRM_ALPHA` (0.001).
///
/// An arm missing from either slice counts as 0; a non-positive or non-finite weight
/// counts as 0, and traffic on a zero-weight arm is an infinite mismatch (p = 0).
/// With no traffic, no positive weight or fewer than two arms there is nothing to
/// test: chi2 0, p-value 1.
#[must_use]
pub fn srm(observed: &[u64], weights: &[f64]) -> Srm {
    let no_test = Srm {
        chi2: 0.0,
        p_value: 1.0,
        mismatch: false,
    };
    let positive_weight = weights.iter().any(|w| w.is_finite() && *w > 0.0);
    if observed.iter().all(|&o| o == 0) || !positive_weight {
        return no_test;
    }
    let (chi2, cells) = chi2_cells(observed, weights);
    let p_value = if chi2.is_infinite() {
        0.0
    } else if cells < 2 {
        return no_test;
    } else {
        ChiSquared::new(real(cells - 1)).map_or(f64::NAN, |d| d.sf(chi2))
    };
    Srm {
        chi2,
        p_value,
        mismatch: p_value < SRM_ALPHA,
    }
}

/// The mixture's prior precision `r` in units of samples, chosen so the boundary is
/// tightest at `SEQUENCE_TUNED_FOR_N` samples: `r = n* / (2 ln(1/α) + ln(1 + 2 ln(1/α)))`,
/// the approximate optimum of Waudby-Smith et al. (2024), their ρ² being `1/r`.
fn sequence_tuning(alpha: f64) -> f64 {
    let l = 2.0 * (1.0 / alpha).ln();
    SEQUENCE_TUNED_FOR_N / (l + (1.0 + l).ln())
}

/// The factor by which the normal-mixture boundary widens the standard error at `n`
/// samples: `sqrt((n + r)/n · ln((n + r)/(r α²)))`.
fn sequence_multiplier(n: f64, alpha: f64) -> f64 {
    let r = sequence_tuning(alpha);
    ((n + r) / n * ((n + r) / (r * alpha * alpha)).ln()).sqrt()
}

/// An always-valid (anytime) `1 - alpha` confidence sequence for `p_b - p_a`: the
/// chance that it *ever* excludes the true difference, however often it is looked at
/// (daily, after every message) and whenever the test stops, is at most `alpha`
/// (asymptotically). `a`, `b` are `(successes, trials)`.
///
/// # Formula
///
/// With `n = n_a + n_b` units so far, `Var = p_a(1-p_a)/n_a + p_b(1-p_b)/n_b` the
/// estimated variance of the difference and `V = n · Var` the per-unit variance:
///
/// ```text
/// half-width = sqrt( (V·n + ρ²)/n² · ln( (V·n + ρ²) / (ρ² α²) ) ),   ρ² = V·r
///            = sqrt(Var) · sqrt( (n + r)/n · ln( (n + r) / (r α²) ) )
/// r          = 1000 / (2 ln(1/α) + ln(1 + 2 ln(1/α)))      (≈ 126 at α = 0.05)
/// ```
///
/// This is the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe &
/// Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence sequences",
/// Ann. Statist. 49(2), 1055–1080: mixing `exp(λS - λ²V/2)` over `λ ~ N(0, 1/ρ²)` and
/// applying Ville's inequality gives `|S_n| < sqrt((V_n + ρ²) ln((V_n + ρ²)/(ρ² α²)))`
/// for all n with probability `1 - alpha`; the symmetric mixture covers both signs,
/// so α is not halved. Plugging in the estimated variance makes it the Gaussian-mixture
/// asymptotic CS of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024), "Time-uniform
/// central limit theory and asymptotic confidence sequences", Ann. Statist. 52(6)
/// (arXiv:2103.06476), section 2 (their ρ² is `1/r`). `ρ² = V·r` fixes the tuning in
/// samples, not variance units, so it is tightest at n = 1000 units (500 per arm)
/// whatever the rate.
///
/// It is always wider than the Wald interval at the same alpha: `(n + r)/n > 1` and
/// `ln(1/α²) ≥ z²_{1-α/2}` because `2(1 - Φ(z)) ≤ exp(-z²/2)`. An arm with no trials
/// gives `[-1, 1]`; the ends are clamped to `[-1, 1]`.
#[allow(clippy::doc_markdown, reason = "author names, not code")]
#[must_use]
pub fn confidence_sequence(a: (u64, u64), b: (u64, u64), alpha: f64) -> Interval {
    let Some(arms) = Arms::new(a, b) else {
        return UNINFORMATIVE;
    };
    let alpha = clamp_probability(alpha);
    let n = arms.na + arms.nb;
    arms.interval(arms.variance().sqrt() * sequence_multiplier(n, alpha))
}

/// The always-valid p-value dual to [`confidence_sequence`] at design level `alpha`
/// (which sets the tuning `r`): `min(1, sqrt((n + r)/r) · exp(-n d² / (2 (n + r) Var)))`
/// with `d = p_b - p_a`, the reciprocal of the mixture martingale at "no difference".
/// 0 lies outside the sequence exactly when this is below `alpha`, so the report's
/// p-value and interval never disagree. An arm with no trials gives 1.
#[must_use]
pub fn sequential_p_value(a: (u64, u64), b: (u64, u64), alpha: f64) -> f64 {
    let Some(arms) = Arms::new(a, b) else {
        return 1.0;
    };
    let tuning = sequence_tuning(clamp_probability(alpha));
    let units = arms.na + arms.nb;
    let (difference, variance) = (arms.estimate(), arms.variance());
    if variance == 0.0 {
        // Both arms all-failure/all-success: no spread, so any difference is exact.
        return if difference == 0.0 { 1.0 } else { 0.0 };
    }
    let exponent = -units * difference * difference / (2.0 * (units + tuning) * variance);
    (((units + tuning) / tuning).sqrt() * exponent.exp()).min(1.0)
}

/// The smallest absolute difference in rates that a two-sided two-proportion test at
/// `alpha` with `n_per_variant` in each arm detects with probability `power`, by the
/// normal approximation `(z_{1-α/2} + z_power) · sqrt(2 p(1-p) / n)`.
///
/// It assumes both arms have the baseline's variance, which slightly understates the
/// MDE for an improvement; it is 0 for a baseline of 0 or 1, where the approximation
/// has nothing to say. No trials: infinite.
#[must_use]
pub fn minimum_detectable_effect(p_base: f64, n_per_variant: u64, alpha: f64, power: f64) -> f64 {
    if n_per_variant == 0 {
        return f64::INFINITY;
    }
    let p = p_base.clamp(0.0, 1.0);
    let z = normal_quantile(1.0 - clamp_probability(alpha) / 2.0) + normal_quantile(power);
    z * (2.0 * p * (1.0 - p) / real(n_per_variant)).sqrt()
}

/// One variant's counts, as the caller collected them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantCounts {
    /// The variant's name, as shown in the report.
    pub name: String,
    /// Messages delivered.
    pub trials: u64,
    /// Delivered messages that converted or got a reply (the caller picks which).
    pub successes: u64,
}

/// How strict [`verdict`] is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerdictSettings {
    /// Delivered messages every variant needs before any verdict (default 500).
    pub min_per_variant: u64,
    /// Probability to be best a winner needs (default 0.90).
    pub win_probability: f64,
    /// Level of the intervals (default 0.95); 1 - confidence is the alpha.
    pub confidence: f64,
    /// Use the always-valid [`confidence_sequence`] instead of the fixed-n Wald
    /// interval: set it when the report is looked at before the planned end.
    pub sequential: bool,
}

impl Default for VerdictSettings {
    fn default() -> Self {
        Self {
            min_per_variant: 500,
            win_probability: 0.90,
            confidence: 0.95,
            sequential: false,
        }
    }
}

/// What the report concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A variant is below `min_per_variant`, or there are fewer than two.
    NotEnoughData,
    /// Enough data, but no variant meets both winning conditions.
    NoWinnerYet,
    /// `winner` meets both conditions.
    Winner,
    /// The delivered counts do not match the weights; nothing else is trusted.
    SampleRatioMismatch,
}

/// Which interval a [`Comparison`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// Fixed-n Wald interval and pooled z-test p-value ([`two_proportion`]).
    Wald,
    /// Always-valid [`confidence_sequence`] and [`sequential_p_value`].
    ConfidenceSequence,
}

/// A variant's difference against the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The control's name (the first variant).
    pub control: String,
    /// `rate - control rate`.
    pub estimate: f64,
    /// Lower end of the interval for the difference.
    pub low: f64,
    /// Upper end of the interval for the difference.
    pub high: f64,
    /// The pooled z statistic (the same in both methods).
    pub z: f64,
    /// The p-value that matches the interval: the pooled z-test for `wald`, the
    /// always-valid one for `confidence_sequence`.
    pub p_value: f64,
    /// Which interval and p-value these are.
    pub method: IntervalMethod,
}

/// One variant's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// The variant's name.
    pub name: String,
    /// Messages delivered.
    pub trials: u64,
    /// Successes (capped at `trials`).
    pub successes: u64,
    /// `successes / trials` (0 with no trials).
    pub rate: f64,
    /// Wilson interval for the rate at the settings' confidence.
    pub interval: Interval,
    /// Probability that this variant's true rate is the highest.
    pub probability_best: f64,
    /// Difference against the control; `None` for the control itself.
    pub comparison: Option<Comparison>,
}

/// The report's conclusion and the numbers behind it. Serialised as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The conclusion.
    pub status: Status,
    /// The winning variant's name, only with `status == winner`.
    pub winner: Option<String>,
    /// One plain English sentence saying why.
    pub reason: String,
    /// Per variant, in the caller's order (the first is the control).
    pub variants: Vec<VariantReport>,
    /// The sample-ratio-mismatch check of the delivered counts.
    pub srm: Srm,
    /// Smallest absolute difference detectable at 80 % power with the current smallest
    /// arm and the control's rate as baseline; `None` without a delivered message.
    pub minimum_detectable_effect: Option<f64>,
}

/// The comparison of `variant` against `control` by the settings' method.
fn compare(
    control: &VariantCounts,
    variant: &VariantCounts,
    settings: &VerdictSettings,
) -> Comparison {
    let a = (control.successes, control.trials);
    let b = (variant.successes, variant.trials);
    let fixed = two_proportion(a, b, settings.confidence);
    let (low, high, p_value, method) = if settings.sequential {
        let alpha = 1.0 - settings.confidence;
        let cs = confidence_sequence(a, b, alpha);
        let p = sequential_p_value(a, b, alpha);
        (cs.low, cs.high, p, IntervalMethod::ConfidenceSequence)
    } else {
        (fixed.low, fixed.high, fixed.p_value, IntervalMethod::Wald)
    };
    Comparison {
        control: control.name.clone(),
        estimate: fixed.estimate,
        low,
        high,
        z: fixed.z,
        p_value,
        method,
    }
}

/// Every variant's line: rate, Wilson interval, probability best, comparison.
fn variant_reports(variants: &[VariantCounts], settings: &VerdictSettings) -> Vec<VariantReport> {
    let counts: Vec<(u64, u64)> = variants
        .iter()
        .map(|v| capped((v.successes, v.trials)))
        .collect();
    let best = probability_best(&counts);
    variants
        .iter()
        .zip(counts.iter().zip(best))
        .enumerate()
        .map(|(i, (v, (&(s, n), p)))| VariantReport {
            name: v.name.clone(),
            trials: n,
            successes: s,
            rate: rate(s, n),
            interval: wilson(s, n, settings.confidence),
            probability_best: p,
            comparison: (i > 0).then(|| compare(&variants[0], v, settings)),
        })
        .collect()
}

/// A fraction as a percentage without trailing zeros: 0.95 → "95", 1/3 → "33.3".
fn percent(fraction: f64) -> String {
    let text = format!("{:.1}", fraction * 100.0);
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// A difference of rates in percentage points, signed: 0.0123 → "+1.23".
fn points(difference: f64) -> String {
    format!("{:+.2}", difference * 100.0)
}

/// The SRM sentence: counts, normalised weights and p-value.
fn srm_reason(variants: &[VariantCounts], weights: &[f64], srm: &Srm) -> String {
    let counts: Vec<String> = variants.iter().map(|v| v.trials.to_string()).collect();
    let usable = |w: &f64| if w.is_finite() && *w > 0.0 { *w } else { 0.0 };
    let total: f64 = weights.iter().map(usable).sum();
    let split: Vec<String> = weights.iter().map(|w| percent(usable(w) / total)).collect();
    let p = if srm.p_value > 0.0 {
        format!("p = {:.1e}", srm.p_value)
    } else {
        "p < 1e-300".to_owned()
    };
    format!(
        "sample ratio mismatch: {} delivered against weights {} ({p}): \
         the assignment is broken, so no winner is named",
        counts.join(" vs "),
        split.join("/"),
    )
}

/// Why there is not enough data, if there is not.
fn data_shortfall(variants: &[VariantCounts], settings: &VerdictSettings) -> Option<String> {
    if variants.len() < 2 {
        return Some(format!(
            "an A/B test needs at least two variants; this one has {}",
            variants.len()
        ));
    }
    let thinnest = variants.iter().min_by_key(|v| v.trials)?;
    (thinnest.trials < settings.min_per_variant).then(|| {
        format!(
            "variant {} has {} delivered; a verdict needs {} per variant",
            thinnest.name, thinnest.trials, settings.min_per_variant
        )
    })
}

/// A probability for sentences, without claiming a certainty rounding would show:
/// 0.9997 → "over 0.999".
fn chance(p: f64) -> String {
    if p > 0.999 {
        "over 0.999".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// The interval of a comparison, for sentences: "+0.40 to +2.10 points".
fn span(c: &Comparison) -> String {
    format!("{} to {} points", points(c.low), points(c.high))
}

/// The control leads: it wins only if every challenger's interval lies below 0.
fn control_decision(
    reports: &[VariantReport],
    settings: &VerdictSettings,
) -> (Status, Option<String>, String) {
    let control = &reports[0];
    let level = percent(settings.confidence);
    let blocker = reports[1..]
        .iter()
        .find(|r| r.comparison.as_ref().is_none_or(|c| c.high >= 0.0));
    match blocker.and_then(|r| r.comparison.as_ref().map(|c| (r, c))) {
        Some((r, c)) => (
            Status::NoWinnerYet,
            None,
            format!(
                "the control {} leads with probability {} of being best, but the {level}% \
                 interval for {} minus it, {}, does not lie below 0",
                control.name,
                chance(control.probability_best),
                r.name,
                span(c)
            ),
        ),
        None => (
            Status::Winner,
            Some(control.name.clone()),
            format!(
                "the control {} wins with probability {} of being best, and every other \
                 variant's {level}% interval against it lies below 0",
                control.name,
                chance(control.probability_best)
            ),
        ),
    }
}

/// A challenger leads: it wins only if its interval against the control lies above 0.
fn challenger_decision(
    leader: &VariantReport,
    settings: &VerdictSettings,
) -> (Status, Option<String>, String) {
    let level = percent(settings.confidence);
    let Some(c) = leader.comparison.as_ref() else {
        return (
            Status::NoWinnerYet,
            None,
            format!("{} has no comparison with the control", leader.name),
        );
    };
    if c.low > 0.0 {
        let reason = format!(
            "{} beats the control {} with probability {} of being best, and its {level}% \
             interval for the difference, {}, lies above 0",
            leader.name,
            c.control,
            chance(leader.probability_best),
            span(c)
        );
        return (Status::Winner, Some(leader.name.clone()), reason);
    }
    let reason = format!(
        "{} leads with probability {} of being best, but its {level}% interval \
         against the control {}, {}, does not lie above 0",
        leader.name,
        chance(leader.probability_best),
        c.control,
        span(c)
    );
    (Status::NoWinnerYet, None, reason)
}

/// The leader by probability best, and whether it clears both conditions.
fn decide_winner(
    reports: &[VariantReport],
    settings: &VerdictSettings,
) -> (Status, Option<String>, String) {
    let Some((index, leader)) = reports
        .iter()
        .enumerate()
        .max_by(|(_, x), (_, y)| x.probability_best.total_cmp(&y.probability_best))
    else {
        return (
            Status::NotEnoughData,
            None,
            "there are no variants".to_owned(),
        );
    };
    if leader.probability_best < settings.win_probability {
        let who = if index == 0 { "the control " } else { "" };
        let reason = format!(
            "{who}{} leads with probability {} of being best; a winner needs {:.3}",
            leader.name,
            chance(leader.probability_best),
            settings.win_probability
        );
        return (Status::NoWinnerYet, None, reason);
    }
    if index == 0 {
        control_decision(reports, settings)
    } else {
        challenger_decision(leader, settings)
    }
}

/// The A/B verdict for `variants` (the first is the control) assigned with `weights`
/// (one per variant, same order; empty means an even split).
///
/// Rules, in order: a sample-ratio mismatch of the delivered counts against the
/// weights names no winner, whatever else holds; a variant below `min_per_variant`
/// (or fewer than two variants) is `not_enough_data`; a winner needs probability to
/// be best ≥ `win_probability` *and* an interval against the control that excludes 0
/// (above 0 for a challenger; for the control, every challenger's interval below 0);
/// otherwise `no_winner_yet`. The module documentation explains why both conditions.
///
/// The SRM check uses delivered counts, so a variant whose messages fail to deliver
/// more often (a longer text split into more parts, a blocked sender) trips it too:
/// differential attrition biases the rates just as broken assignment does.
#[must_use]
pub fn verdict(variants: &[VariantCounts], weights: &[f64], settings: &VerdictSettings) -> Verdict {
    let even = vec![1.0; variants.len()];
    let weights = if weights.is_empty() {
        &even[..]
    } else {
        weights
    };
    let trials: Vec<u64> = variants.iter().map(|v| v.trials).collect();
    let srm = srm(&trials, weights);
    let reports = variant_reports(variants, settings);
    let (status, winner, reason) = if srm.mismatch {
        (
            Status::SampleRatioMismatch,
            None,
            srm_reason(variants, weights, &srm),
        )
    } else if let Some(reason) = data_shortfall(variants, settings) {
        (Status::NotEnoughData, None, reason)
    } else {
        decide_winner(&reports, settings)
    };
    let smallest = trials.iter().copied().min().filter(|&n| n > 0);
    let minimum_detectable_effect = smallest.zip(reports.first()).map(|(n, control)| {
        minimum_detectable_effect(control.rate, n, 1.0 - settings.confidence, MDE_POWER)
    });
    Verdict {
        status,
        winner,
        reason,
        variants: reports,
        srm,
        minimum_detectable_effect,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    #![allow(
        clippy::float_cmp,
        reason = "the exact values of clamps and degenerate cases"
    )]

    use super::*;

    fn counts(name: &str, successes: u64, trials: u64) -> VariantCounts {
        VariantCounts {
            name: name.to_owned(),
            trials,
            successes,
        }
    }

    fn run(variants: &[VariantCounts], weights: &[f64]) -> Verdict {
        verdict(variants, weights, &VerdictSettings::default())
    }

    #[test]
    fn wilson_without_trials_knows_nothing() {
        assert_eq!(
            wilson(0, 0, 0.95),
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
        // A success count above the trials is read as all successes, not a rate > 1.
        assert_eq!(wilson(12, 10, 0.95), wilson(10, 10, 0.95));
    }

    #[test]
    fn degenerate_comparisons_carry_no_evidence() {
        let empty = two_proportion((0, 0), (5, 10), 0.95);
        assert_eq!((empty.low, empty.high, empty.p_value), (-1.0, 1.0, 1.0));
        let flat = two_proportion((0, 100), (0, 100), 0.95);
        assert_eq!((flat.estimate, flat.z, flat.p_value), (0.0, 0.0, 1.0));
        // A NaN level must not panic; the clamps turn it into "nothing known".
        let unknown = two_proportion((5, 100), (10, 100), f64::NAN);
        assert_eq!((unknown.low, unknown.high), (-1.0, 1.0));
        assert_eq!(
            wilson(5, 100, f64::NAN),
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
        assert!(minimum_detectable_effect(0.1, 100, f64::NAN, 0.8).is_nan());
    }

    #[test]
    fn srm_pads_missing_arms_and_flags_traffic_on_a_zero_weight() {
        assert_eq!(srm(&[], &[]).p_value, 1.0);
        assert_eq!(srm(&[0, 0], &[1.0, 1.0]).p_value, 1.0);
        assert!(!srm(&[500], &[1.0]).mismatch);
        let disabled = srm(&[500, 500, 20], &[1.0, 1.0, 0.0]);
        assert!(disabled.mismatch && disabled.chi2.is_infinite());
        // A third weight with no traffic at all is an arm that received nothing.
        assert!(srm(&[500, 500], &[1.0, 1.0, 1.0]).mismatch);
        assert!(!srm(&[500, 500], &[1.0, 1.0, 0.0]).mismatch);
    }

    #[test]
    fn probability_best_edge_cases() {
        assert!(probability_best(&[]).is_empty());
        assert_eq!(probability_best(&[(3, 10)]), vec![1.0]);
        let even = probability_best(&[(0, 0), (0, 0), (0, 0)]);
        assert!(
            even.iter().all(|p| (p - 1.0 / 3.0).abs() < 1e-9),
            "{even:?}"
        );
        let mirrored = probability_best(&[(30, 100), (70, 100)]);
        let flipped = probability_best(&[(70, 100), (30, 100)]);
        assert!((mirrored[0] - flipped[1]).abs() < 1e-12);
        assert_eq!(probability_best(&[(30, 100), (70, 100)]), mirrored);
        // Beta(1,1) vs Beta(2,1): P(X > U) = ∫ 2x · x dx = 2/3.
        let one = probability_best(&[(0, 0), (1, 1)]);
        assert!((one[1] - 2.0 / 3.0).abs() < 1e-6, "{one:?}");
    }

    #[test]
    fn confidence_sequence_is_wider_than_wald() {
        let arms = [
            (1, 10),
            (3, 40),
            (120, 1000),
            (5_000, 9_000),
            (20_000, 200_000),
            (0, 1_000_000),
        ];
        for alpha in [0.001, 0.01, 0.05, 0.1, 0.3] {
            for a in arms {
                for b in arms {
                    let wald = two_proportion(a, b, 1.0 - alpha);
                    let cs = confidence_sequence(a, b, alpha);
                    let (wald_width, cs_width) = (wald.high - wald.low, cs.high - cs.low);
                    let clamped = cs.low == -1.0 || cs.high == 1.0;
                    assert!(
                        cs_width > wald_width || clamped || wald_width == 0.0,
                        "{a:?} {b:?} at {alpha}: sequence {cs:?} vs wald {wald:?}"
                    );
                    assert!(cs.low <= wald.low && cs.high >= wald.high);
                }
            }
        }
    }

    #[test]
    fn sequential_p_value_agrees_with_the_sequence() {
        for b in [
            (100, 1000),
            (120, 1000),
            (135, 1000),
            (140, 1000),
            (160, 1000),
            (60, 1000),
        ] {
            let a = (100, 1000);
            let cs = confidence_sequence(a, b, 0.05);
            let excludes_zero = cs.low > 0.0 || cs.high < 0.0;
            assert_eq!(
                excludes_zero,
                sequential_p_value(a, b, 0.05) < 0.05,
                "{b:?}"
            );
        }
    }

    /// xorshift64*: a few lines of deterministic randomness for the coverage check.
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            real(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) / real(1 << 53)
        }
    }

    /// Runs A/A tests at rate 0.1 with 100 more messages per arm each "day" for 40
    /// days; counts the runs in which the interval ever excluded the true 0.
    fn ever_misses(interval: impl Fn((u64, u64), (u64, u64)) -> Interval) -> f64 {
        let mut rng = Rng(0x5EED_0FA1_1DA7_A5E5);
        let runs = 500;
        let mut misses = 0;
        for _ in 0..runs {
            let (mut a, mut b) = ((0, 0), (0, 0));
            let mut strayed = false;
            for _day in 0..40 {
                for _ in 0..100 {
                    a = (a.0 + u64::from(rng.uniform() < 0.1), a.1 + 1);
                    b = (b.0 + u64::from(rng.uniform() < 0.1), b.1 + 1);
                }
                let i = interval(a, b);
                strayed |= i.low > 0.0 || i.high < 0.0;
            }
            misses += u64::from(strayed);
        }
        real(misses) / real(runs)
    }

    #[test]
    fn confidence_sequence_survives_daily_peeking_where_wald_does_not() {
        let sequence = ever_misses(|a, b| confidence_sequence(a, b, 0.05));
        let wald = ever_misses(|a, b| {
            let d = two_proportion(a, b, 0.95);
            Interval {
                low: d.low,
                high: d.high,
            }
        });
        assert!(
            sequence <= 0.05,
            "sequence ever missed in {sequence} of runs"
        );
        assert!(
            wald > 0.10,
            "peeking at Wald should inflate its error; got {wald}"
        );
    }

    #[test]
    fn minimum_detectable_effect_shrinks_with_n() {
        assert!(minimum_detectable_effect(0.1, 0, 0.05, 0.8).is_infinite());
        let small = minimum_detectable_effect(0.1, 500, 0.05, 0.8);
        let large = minimum_detectable_effect(0.1, 2000, 0.05, 0.8);
        assert!((small / large - 2.0).abs() < 1e-12);
    }

    #[test]
    fn too_few_delivered_is_not_enough_data() {
        let v = run(&[counts("A", 23, 230), counts("B", 30, 212)], &[1.0, 1.0]);
        assert_eq!(v.status, Status::NotEnoughData);
        assert_eq!(
            v.reason,
            "variant B has 212 delivered; a verdict needs 500 per variant"
        );
        assert_eq!(v.winner, None);
        let single = run(&[counts("A", 60, 600)], &[]);
        assert_eq!(single.status, Status::NotEnoughData);
        let none = run(&[], &[]);
        assert_eq!(
            (none.status, none.minimum_detectable_effect),
            (Status::NotEnoughData, None)
        );
    }

    #[test]
    fn close_rates_are_no_winner_yet() {
        let v = run(
            &[counts("A", 100, 1000), counts("B", 110, 1000)],
            &[1.0, 1.0],
        );
        assert_eq!(v.status, Status::NoWinnerYet, "{}", v.reason);
        assert_eq!(v.winner, None);
        assert!(v.reason.contains("a winner needs 0.900"), "{}", v.reason);
    }

    #[test]
    fn a_clearly_better_challenger_wins() {
        let v = run(
            &[counts("A", 100, 1000), counts("B", 160, 1000)],
            &[1.0, 1.0],
        );
        assert_eq!(v.status, Status::Winner, "{}", v.reason);
        assert_eq!(v.winner.as_deref(), Some("B"));
        assert!(
            v.reason.starts_with("B beats the control A"),
            "{}",
            v.reason
        );
        let c = v.variants[1].comparison.as_ref().unwrap();
        assert!(c.low > 0.0 && c.method == IntervalMethod::Wald);
        assert!(v.variants[0].comparison.is_none());
        let mde = v.minimum_detectable_effect.unwrap();
        assert!((mde - minimum_detectable_effect(0.1, 1000, 0.05, 0.8)).abs() < 1e-15);
    }

    #[test]
    fn the_control_wins_when_every_challenger_is_worse() {
        let variants = [
            counts("A", 160, 1000),
            counts("B", 100, 1000),
            counts("C", 105, 1000),
        ];
        let v = run(&variants, &[1.0, 1.0, 1.0]);
        assert_eq!(v.status, Status::Winner, "{}", v.reason);
        assert_eq!(v.winner.as_deref(), Some("A"));
        // One challenger level with the control blocks it.
        let tied = [
            counts("A", 160, 1000),
            counts("B", 100, 1000),
            counts("C", 150, 1000),
        ];
        assert_eq!(run(&tied, &[1.0, 1.0, 1.0]).status, Status::NoWinnerYet);
    }

    #[test]
    fn beating_the_control_is_not_enough_when_another_challenger_is_as_good() {
        let variants = [
            counts("A", 100, 1000),
            counts("B", 150, 1000),
            counts("C", 148, 1000),
        ];
        let v = run(&variants, &[1.0, 1.0, 1.0]);
        assert!(v.variants[1].comparison.as_ref().unwrap().low > 0.0);
        assert_eq!(v.status, Status::NoWinnerYet, "{}", v.reason);
    }

    #[test]
    fn sample_ratio_mismatch_beats_a_clear_winner() {
        let variants = [counts("A", 96, 1200), counts("B", 300, 800)];
        let v = run(&variants, &[50.0, 50.0]);
        assert!(v.variants[1].probability_best > 0.999);
        assert_eq!(v.status, Status::SampleRatioMismatch);
        assert_eq!(v.winner, None);
        assert_eq!(
            v.reason,
            "sample ratio mismatch: 1200 vs 800 delivered against weights 50/50 (p = 3.7e-19): \
             the assignment is broken, so no winner is named"
        );
        // It also beats "not enough data": a broken split is news at any size.
        let tiny = run(&[counts("A", 1, 300), counts("B", 1, 100)], &[1.0, 1.0]);
        assert_eq!(tiny.status, Status::SampleRatioMismatch, "{}", tiny.reason);
    }

    #[test]
    fn a_weight_changed_mid_test_is_flagged() {
        // Ten days at 50/50 (5000 each), then five at 80/20 (4000 and 1000); the
        // configuration now says 80/20.
        let variants = [counts("A", 900, 9000), counts("B", 700, 6000)];
        let v = run(&variants, &[80.0, 20.0]);
        assert_eq!(v.status, Status::SampleRatioMismatch);
        assert!(
            v.reason
                .contains("9000 vs 6000 delivered against weights 80/20"),
            "{}",
            v.reason
        );
        // Against the original weights it is flagged too: neither split produced it.
        assert_eq!(
            run(&variants, &[50.0, 50.0]).status,
            Status::SampleRatioMismatch
        );
    }

    #[test]
    fn peeking_mode_demands_more_evidence() {
        let variants = [counts("A", 100, 1000), counts("B", 135, 1000)];
        assert_eq!(run(&variants, &[1.0, 1.0]).status, Status::Winner);
        let settings = VerdictSettings {
            sequential: true,
            ..VerdictSettings::default()
        };
        let v = verdict(&variants, &[1.0, 1.0], &settings);
        assert_eq!(v.status, Status::NoWinnerYet, "{}", v.reason);
        let c = v.variants[1].comparison.as_ref().unwrap();
        assert_eq!(c.method, IntervalMethod::ConfidenceSequence);
        assert!(c.low < 0.0 && c.p_value > 0.05);
    }

    #[test]
    fn verdict_serialises_in_snake_case() {
        let v = run(&[counts("A", 96, 1200), counts("B", 300, 800)], &[1.0, 1.0]);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["status"], "sample_ratio_mismatch");
        assert_eq!(json["variants"][1]["comparison"]["method"], "wald");
        assert!(json["srm"]["mismatch"].as_bool().unwrap());
        let settings: VerdictSettings = serde_json::from_str(r#"{"sequential": true}"#).unwrap();
        assert_eq!(settings.min_per_variant, 500);
        assert_eq!(
            serde_json::to_value(Status::NotEnoughData).unwrap(),
            "not_enough_data"
        );
    }
}
