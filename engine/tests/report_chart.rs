//! The report chart as a reader of the SVG sees it: well-formed XML, the right size, and the
//! names and numbers it is supposed to show.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use smsflow::measure::chart::{ChartInput, DailyRates, FunnelStage, VariantBar, svg};

const LEGEND: [&str; 5] = [
    "delivery rate",
    "reply rate",
    "click rate",
    "conversion rate",
    "opt-out rate",
];

fn stages(counts: &[(&str, u64)]) -> Vec<FunnelStage> {
    counts
        .iter()
        .map(|(name, count)| FunnelStage {
            name: (*name).to_owned(),
            count: *count,
        })
        .collect()
}

fn days(n: u32) -> Vec<DailyRates> {
    (0..n)
        .map(|i| DailyRates {
            // Days run on past the end of March into April, May…: the chart prints them as given.
            day: format!("2026-{:02}-{:02}", 3 + i / 28, 1 + i % 28),
            delivery_rate: 0.9 + f64::from(i % 3) / 100.0,
            reply_rate: 0.12 + f64::from(i % 5) / 100.0,
            click_rate: 0.08,
            conversion_rate: 0.03,
            opt_out_rate: 0.01,
        })
        .collect()
}

fn variant(name: &str, rate: f64) -> VariantBar {
    VariantBar {
        name: name.to_owned(),
        rate,
        low: rate * 0.7,
        high: rate * 1.4,
    }
}

fn sample(n_days: u32) -> ChartInput {
    ChartInput {
        title: "re-engagement · campaign spring-2026 · since 2026-03-01".to_owned(),
        funnel: stages(&[
            ("sent", 1800),
            ("delivered", 1640),
            ("replied", 312),
            ("clicked", 205),
            ("converted", 61),
            ("opted out", 18),
        ]),
        daily: days(n_days),
        variants: vec![
            variant("A", 0.037),
            variant("B", 0.03),
            variant("holdout", 0.02),
        ],
    }
}

fn empty() -> ChartInput {
    ChartInput {
        title: "nothing yet".to_owned(),
        funnel: vec![],
        daily: vec![],
        variants: vec![],
    }
}

/// Renders, keeps a copy under the target folder for a person to look at, and returns the text.
fn render(name: &str, input: &ChartInput) -> String {
    let out = svg(input).unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.svg"));
    std::fs::write(path, &out).unwrap();
    out
}

/// All text content of the document, one entry per `<text>` element.
fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let all: String = n
                .descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect();
            all.trim().to_owned()
        })
        .collect()
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.chars().filter(char::is_ascii_digit).count() == 8
}

fn assert_svg_root(doc: &roxmltree::Document) {
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1000"));
    assert_eq!(root.attribute("height"), Some("760"));
}

#[test]
fn sample_is_an_svg_of_the_right_size() {
    let out = render("sample", &sample(14));
    let doc = roxmltree::Document::parse(&out).unwrap();
    assert_svg_root(&doc);
}

#[test]
fn sample_shows_stages_counts_variants_and_legend() {
    let input = sample(14);
    let out = render("sample", &input);
    let doc = roxmltree::Document::parse(&out).unwrap();
    let texts = texts(&doc);
    let has = |want: &str| texts.iter().any(|t| t == want);
    for stage in &input.funnel {
        assert!(has(&stage.name), "stage {} missing", stage.name);
    }
    for label in [
        "1,800 · 100.0%",
        "1,640 · 91.1%",
        "312 · 17.3%",
        "18 · 1.0%",
    ] {
        assert!(has(label), "funnel label {label} missing");
    }
    for v in &input.variants {
        assert!(has(&v.name), "variant {} missing", v.name);
    }
    for entry in LEGEND {
        assert!(has(entry), "legend entry {entry} missing");
    }
    assert!(has(&input.title));
}

#[test]
fn empty_input_says_there_is_no_data() {
    let out = render("empty", &empty());
    let doc = roxmltree::Document::parse(&out).unwrap();
    assert_svg_root(&doc);
    assert!(texts(&doc).iter().any(|t| t == "no data in this range"));
}

#[test]
fn all_zero_counts_say_there_is_no_data() {
    let mut input = empty();
    input.funnel = stages(&[("sent", 0), ("delivered", 0)]);
    let out = render("zeros", &input);
    let doc = roxmltree::Document::parse(&out).unwrap();
    assert!(texts(&doc).iter().any(|t| t == "no data in this range"));
}

#[test]
fn sixty_days_get_thinned_labels() {
    let out = render("sixty", &sample(60));
    let doc = roxmltree::Document::parse(&out).unwrap();
    let dates = texts(&doc).into_iter().filter(|t| is_date(t)).count();
    assert!((4..=12).contains(&dates), "{dates} date labels");
}

#[test]
fn one_day_still_draws() {
    let out = render("one-day", &sample(1));
    let doc = roxmltree::Document::parse(&out).unwrap();
    let texts = texts(&doc);
    assert!(texts.iter().any(|t| t == "2026-03-01"));
    assert!(!texts.iter().any(|t| t.starts_with("no daily data")));
    // One marker per series stands in for the lines.
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count()
            >= 5
    );
}

#[test]
fn no_daily_data_is_said() {
    let out = render("no-days", &sample(0));
    let doc = roxmltree::Document::parse(&out).unwrap();
    assert!(
        texts(&doc)
            .iter()
            .any(|t| t == "no daily data in this range")
    );
}

#[test]
fn markup_in_names_is_escaped() {
    let mut input = sample(3);
    input.funnel[0].name = "<sent & co>".to_owned();
    let out = render("escaped", &input);
    let doc = roxmltree::Document::parse(&out).unwrap();
    assert!(texts(&doc).iter().any(|t| t == "<sent & co>"));
}

#[test]
fn one_variant_and_long_names_draw() {
    let mut input = sample(7);
    input.variants = vec![variant("holdout", 0.0)];
    input.funnel[1].name = "delivered to a handset after retries".to_owned();
    let out = render("one-variant", &input);
    roxmltree::Document::parse(&out).unwrap();
}

#[test]
fn out_of_range_rates_are_errors() {
    let mut input = sample(3);
    input.daily[1].reply_rate = 1.5;
    let err = svg(&input).unwrap_err().to_string();
    assert!(err.contains("reply_rate of 2026-03-02 is 1.5"), "{err}");
}
