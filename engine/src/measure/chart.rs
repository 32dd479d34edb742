//! The measurement report as an SVG picture (`smsflow report --svg FILE`).
//!
//! [`svg`] draws three panels with `plotters`' SVG backend: the funnel, the daily rates and the
//! A/B variants' conversion rates. Text is written as SVG `<text>` elements and laid out by
//! whatever displays the file, so no font file is read when the chart is made; plotters only
//! *estimates* text widths for its own layout, which is why the label areas here are sized with
//! some slack and long names are shortened.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// Everything one report picture shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartInput {
    /// The headline, e.g. "re-engagement · campaign spring-2026 · since 2026-03-01".
    pub title: String,
    /// The funnel stages in order (sent, delivered, replied, clicked, converted, opted out …);
    /// shares are taken of the first stage.
    pub funnel: Vec<FunnelStage>,
    /// One entry per day, in date order; may be empty.
    pub daily: Vec<DailyRates>,
    /// One entry per A/B variant (and "holdout"); may be empty.
    pub variants: Vec<VariantBar>,
}

/// One funnel stage: how many contacts reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelStage {
    /// The stage's name as the report prints it, e.g. "delivered".
    pub name: String,
    /// How many contacts (or messages) reached the stage.
    pub count: u64,
}

/// The rates of one day, each a fraction between 0 and 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyRates {
    /// The day as `YYYY-MM-DD`; printed as given on the x axis.
    pub day: String,
    /// Share of sent messages that were delivered.
    pub delivery_rate: f64,
    /// Share that got a reply.
    pub reply_rate: f64,
    /// Share whose link was clicked.
    pub click_rate: f64,
    /// Share that converted.
    pub conversion_rate: f64,
    /// Share that opted out.
    pub opt_out_rate: f64,
}

/// One variant's conversion rate with its Wilson interval, all fractions between 0 and 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantBar {
    /// The variant's name, e.g. "A" or "holdout".
    pub name: String,
    /// The measured conversion rate.
    pub rate: f64,
    /// The interval's lower bound.
    pub low: f64,
    /// The interval's upper bound.
    pub high: f64,
}

/// Why a chart could not be drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChartError {
    /// A rate was not a number between 0 and 1.
    #[error("{field} of {owner} is {value}, but rates must be numbers between 0 and 1")]
    RateOutOfRange {
        /// The day or variant the rate belongs to.
        owner: String,
        /// Which rate, e.g. "reply_rate".
        field: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A variant's interval does not contain its own rate.
    #[error("variant {name}: the interval {low}..{high} does not contain its rate {rate}")]
    IntervalMismatch {
        /// The variant's name.
        name: String,
        /// Its rate.
        rate: f64,
        /// Its lower bound.
        low: f64,
        /// Its upper bound.
        high: f64,
    },
    /// plotters failed while drawing (in practice: writing the SVG text).
    #[error("drawing the chart failed: {0}")]
    Draw(String),
}

// plotters' error type is generic over the backend; keeping only its message stops plotters
// types from leaking into this module's public error.
impl From<DrawingAreaErrorKind<std::io::Error>> for ChartError {
    fn from(err: DrawingAreaErrorKind<std::io::Error>) -> Self {
        ChartError::Draw(err.to_string())
    }
}

/// The canvas size, fixed so that reports look alike from run to run.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 760;
/// Height of the upper row (funnel and variants), below the title.
const TOP_ROW_H: u32 = 330;
/// Width of the funnel panel; the variants panel gets the rest of the upper row.
const FUNNEL_W: u32 = 570;
/// Width of the daily panel's legend column, kept outside the plot so lines never hide it.
const LEGEND_W: u32 = 170;
/// Daily charts up to this many days also get a marker per day.
const MARKER_DAYS: usize = 21;
/// Tolerance for interval checks: bounds computed in floating point may miss the rate by a hair.
const EPS: f64 = 1e-9;

const FONT: &str = "sans-serif";
const INK: RGBColor = RGBColor(33, 37, 41);
const MUTED: RGBColor = RGBColor(108, 117, 125);
const GRID: RGBColor = RGBColor(226, 230, 234);
const FUNNEL_BAR: RGBColor = RGBColor(0, 114, 178);
const HOLDOUT_BAR: RGBColor = RGBColor(160, 166, 172);
/// Okabe–Ito colours: distinguishable with the common kinds of colour blindness.
const VARIANT_BARS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// A daily series: legend entry, colour and how to read it from a day.
type Series = (&'static str, RGBColor, fn(&DailyRates) -> f64);
const DAILY_SERIES: [Series; 5] = [
    ("delivery rate", RGBColor(0, 114, 178), |d| d.delivery_rate),
    ("reply rate", RGBColor(0, 158, 115), |d| d.reply_rate),
    ("click rate", RGBColor(230, 159, 0), |d| d.click_rate),
    ("conversion rate", RGBColor(204, 121, 167), |d| {
        d.conversion_rate
    }),
    ("opt-out rate", RGBColor(213, 94, 0), |d| d.opt_out_rate),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws the whole report and returns the SVG document (1000×760 pixels).
///
/// Empty parts are not errors: a panel without data says so ("no data in this range" for the
/// funnel). Rates outside 0..=1 (or NaN) and intervals that miss their rate are rejected, since
/// they would otherwise draw a misleading picture.
pub fn svg(input: &ChartInput) -> Result<String, ChartError> {
    validate(input)?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = font(26.0).style(FontStyle::Bold).color(&INK);
        // A little air above the title; plotters puts it only 5 px from the edge.
        let body = root.margin(10, 0, 0, 0).titled(&input.title, title)?;
        let (top, daily) = body.split_vertically(TOP_ROW_H);
        let (funnel, variants) = top.split_horizontally(FUNNEL_W);
        draw_funnel(&funnel, &input.funnel)?;
        draw_variants(&variants, &input.variants)?;
        draw_daily(&daily, &input.daily)?;
        root.present()?;
    }
    Ok(out)
}

fn validate(input: &ChartInput) -> Result<(), ChartError> {
    for d in &input.daily {
        for (field, value) in [
            ("delivery_rate", d.delivery_rate),
            ("reply_rate", d.reply_rate),
            ("click_rate", d.click_rate),
            ("conversion_rate", d.conversion_rate),
            ("opt_out_rate", d.opt_out_rate),
        ] {
            check_rate(&d.day, field, value)?;
        }
    }
    for v in &input.variants {
        check_rate(&v.name, "rate", v.rate)?;
        check_rate(&v.name, "low", v.low)?;
        check_rate(&v.name, "high", v.high)?;
        if v.low > v.rate + EPS || v.rate > v.high + EPS {
            return Err(ChartError::IntervalMismatch {
                name: v.name.clone(),
                rate: v.rate,
                low: v.low,
                high: v.high,
            });
        }
    }
    Ok(())
}

fn check_rate(owner: &str, field: &'static str, value: f64) -> Result<(), ChartError> {
    // `contains` is false for NaN, so this also rejects it.
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ChartError::RateOutOfRange {
            owner: owner.to_owned(),
            field,
            value,
        })
    }
}

fn draw_funnel(area: &Area, stages: &[FunnelStage]) -> Result<(), ChartError> {
    let area = panel(area, "Funnel")?;
    let max = stages.iter().map(|s| s.count).max().unwrap_or(0);
    if max == 0 {
        return no_data(&area, "no data in this range");
    }
    let n = stages.len();
    let first = stages.first().map_or(0, |s| s.count);
    let names: Vec<String> = stages.iter().map(|s| shorten(&s.name, 18)).collect();
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    // Room to the right of the longest bar for its "1,640 · 91.1%" label.
    let x_top = max as f64 * 1.42;
    let mut chart = ChartBuilder::on(&area)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(44)
        .y_label_area_size(longest as u32 * 8 + 18)
        .build_cartesian_2d(0.0..x_top, IndexAxis::new(n, 1))?;
    // The first stage is drawn at the top, so row `i` sits at y = n-1-i.
    let row = |i: usize| (n - 1 - i) as f64;
    let name_of = |y: &f64| {
        names
            .get(index_from_top(n, *y))
            .cloned()
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(6)
        .x_label_formatter(&|v| whole_count(*v))
        .y_labels(n)
        .y_label_formatter(&name_of)
        .x_desc("contacts")
        .label_style(font(15.0).color(&INK))
        .axis_desc_style(font(15.0).color(&MUTED))
        .draw()?;
    chart.draw_series(stages.iter().enumerate().map(|(i, s)| {
        let y = row(i);
        Rectangle::new(
            [(0.0, y - 0.32), (s.count as f64, y + 0.32)],
            FUNNEL_BAR.filled(),
        )
    }))?;
    let beside = font(15.0)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(stages.iter().enumerate().map(|(i, s)| {
        EmptyElement::at((s.count as f64, row(i)))
            + Text::new(funnel_label(s.count, first), (6, 0), beside.clone())
    }))?;
    Ok(())
}

fn draw_variants(area: &Area, variants: &[VariantBar]) -> Result<(), ChartError> {
    let area = panel(area, "Conversion by variant")?;
    if variants.is_empty() {
        return no_data(&area, "no variants in this range");
    }
    let n = variants.len();
    let highest = variants.iter().map(|v| v.high).fold(0.0, f64::max);
    // Head room above the highest whisker for its rate label.
    let y_top = nice_top(highest * 1.25);
    // The category width decides how much of a name fits under its bar.
    let fit = (area.dim_in_pixel().0.saturating_sub(90) as usize / n / 8).max(4);
    let names: Vec<String> = variants.iter().map(|v| shorten(&v.name, fit)).collect();
    let mut chart = ChartBuilder::on(&area)
        .margin(8)
        .margin_right(20)
        .x_label_area_size(44)
        .y_label_area_size(58)
        .build_cartesian_2d(IndexAxis::new(n, 1), 0.0..y_top)?;
    let name_of = |x: &f64| names.get(index_of(*x)).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(n)
        .x_label_formatter(&name_of)
        .y_labels(6)
        .y_label_formatter(&|v| percent_tick(*v, y_top))
        .x_desc("whiskers: Wilson interval")
        .y_desc("conversion rate")
        .label_style(font(15.0).color(&INK))
        .axis_desc_style(font(15.0).color(&MUTED))
        .draw()?;
    chart.draw_series(variants.iter().enumerate().map(|(i, v)| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, v.rate)],
            variant_colour(i, v).filled(),
        )
    }))?;
    draw_whiskers(&mut chart, variants)?;
    Ok(())
}

type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

fn draw_whiskers(
    chart: &mut Chart<IndexAxis, plotters::coord::types::RangedCoordf64>,
    variants: &[VariantBar],
) -> Result<(), ChartError> {
    let ink = INK.stroke_width(2);
    for (i, v) in variants.iter().enumerate() {
        let x = i as f64;
        let cap = |y: f64| PathElement::new(vec![(x - 0.08, y), (x + 0.08, y)], ink);
        chart.draw_series([
            PathElement::new(vec![(x, v.low), (x, v.high)], ink),
            cap(v.low),
            cap(v.high),
        ])?;
    }
    let above = font(15.0)
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(variants.iter().enumerate().map(|(i, v)| {
        EmptyElement::at((i as f64, v.high)) + Text::new(percent(v.rate, 1), (0, -5), above.clone())
    }))?;
    Ok(())
}

fn draw_daily(area: &Area, daily: &[DailyRates]) -> Result<(), ChartError> {
    let area = panel(area, "Daily rates")?;
    if daily.is_empty() {
        return no_data(&area, "no daily data in this range");
    }
    let n = daily.len();
    let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0.saturating_sub(LEGEND_W));
    let highest = daily
        .iter()
        .flat_map(|d| DAILY_SERIES.map(|(_, _, get)| get(d)));
    let y_top = nice_top(highest.fold(0.0, f64::max) * 1.05);
    let label_len = daily
        .iter()
        .map(|d| d.day.chars().count())
        .max()
        .unwrap_or(10);
    let step = day_step(n, plot.dim_in_pixel().0.saturating_sub(90), label_len);
    let mut chart = ChartBuilder::on(&plot)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(IndexAxis::new(n, step), 0.0..y_top)?;
    let day_of = |x: &f64| {
        daily
            .get(index_of(*x))
            .map(|d| d.day.clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(n)
        .x_label_formatter(&day_of)
        .y_labels(6)
        .y_label_formatter(&|v| percent_tick(*v, y_top))
        .x_desc("day")
        .y_desc("rate")
        .label_style(font(15.0).color(&INK))
        .axis_desc_style(font(15.0).color(&MUTED))
        .draw()?;
    for (_, colour, get) in DAILY_SERIES {
        let points = daily.iter().enumerate().map(|(i, d)| (i as f64, get(d)));
        chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        // A single day has no line to draw, and a few days read better with markers.
        if n <= MARKER_DAYS {
            chart.draw_series(points.map(|p| Circle::new(p, 3, colour.filled())))?;
        }
    }
    draw_legend(&legend)
}

/// The legend sits in its own column beside the plot, so it can never cover a line.
fn draw_legend(area: &Area) -> Result<(), ChartError> {
    let style = font(15.0)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, colour, _)) in DAILY_SERIES.iter().enumerate() {
        let y = 30 + 26 * i as i32;
        area.draw(&PathElement::new(
            vec![(6, y), (34, y)],
            colour.stroke_width(3),
        ))?;
        area.draw(&Circle::new((20, y), 3, colour.filled()))?;
        area.draw(&Text::new(*name, (42, y), style.clone()))?;
    }
    Ok(())
}

/// Writes the panel's heading and returns the area below it.
fn panel<'a>(area: &Area<'a>, heading: &str) -> Result<Area<'a>, ChartError> {
    let style = font(19.0).style(FontStyle::Bold).color(&INK);
    Ok(area.titled(heading, style)?)
}

fn no_data(area: &Area, message: &str) -> Result<(), ChartError> {
    let (w, h) = area.dim_in_pixel();
    // A faint frame keeps an empty panel recognisable as a panel.
    let frame = [(10, 6), (w as i32 - 10, h as i32 - 10)];
    area.draw(&Rectangle::new(frame, GRID.stroke_width(1)))?;
    let style = font(18.0)
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let centre = ((w / 2) as i32, (h / 2) as i32);
    area.draw(&Text::new(message, centre, style))?;
    Ok(())
}

fn font(size: f64) -> FontDesc<'static> {
    (FONT, size).into_font()
}

/// A category (or day) axis: `count` slots centred on 0, 1, …, `count - 1`, labelled every
/// `step` slots. plotters' own integer and segmented axes break down with a single category
/// and pick "nice" numbers rather than every n-th day, hence this small axis of our own.
#[derive(Debug, Clone, Copy)]
struct IndexAxis {
    count: usize,
    step: usize,
}

impl IndexAxis {
    fn new(count: usize, step: usize) -> Self {
        IndexAxis {
            count: count.max(1),
            step: step.max(1),
        }
    }
}

impl Ranged for IndexAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Each slot is one unit wide, from -0.5 to count - 0.5.
        let t = (value + 0.5) / self.count as f64;
        limit.0 + (f64::from(limit.1 - limit.0) * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points().max(1);
        let step = self.step.max(self.count.div_ceil(max));
        (0..self.count).step_by(step).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.count as f64 - 0.5
    }
}

/// Every how many days to label the x axis so that labels of `label_len` characters fit in
/// `width_px`. Weekly steps are preferred once daily labels no longer fit.
fn day_step(days: usize, width_px: u32, label_len: usize) -> usize {
    // About 8 px per character at the label size, plus a gap between labels.
    let per_label = label_len as u32 * 8 + 24;
    let fits = (width_px / per_label).max(1) as usize;
    [1, 2, 3, 7, 14, 28]
        .into_iter()
        .find(|step| days.div_ceil(*step) <= fits)
        .unwrap_or_else(|| days.div_ceil(fits))
}

/// The top of a rate axis: `highest` rounded up to a whole 10% (or 1% for small rates) so the
/// axis ends on a labelled tick; never below 1% nor above 100%.
fn nice_top(highest: f64) -> f64 {
    let per = if highest > 0.1 { 10.0 } else { 100.0 };
    ((highest * per).ceil() / per).clamp(0.01, 1.0)
}

/// Maps a y value on the funnel axis back to the stage index (the first stage is on top).
fn index_from_top(count: usize, y: f64) -> usize {
    count.saturating_sub(1).saturating_sub(index_of(y))
}

fn index_of(value: f64) -> usize {
    value.round().max(0.0) as usize
}

fn variant_colour(i: usize, v: &VariantBar) -> RGBColor {
    if v.name.eq_ignore_ascii_case("holdout") {
        HOLDOUT_BAR
    } else {
        VARIANT_BARS[i % VARIANT_BARS.len()]
    }
}

/// "1,640 · 91.1%": the count and its share of the first stage (just the count when the first
/// stage is empty, as a share of nothing means nothing).
fn funnel_label(count: u64, first: u64) -> String {
    if first == 0 {
        group_thousands(count)
    } else {
        let share = count as f64 / first as f64;
        format!("{} · {}", group_thousands(count), percent(share, 1))
    }
}

/// Axis ticks for counts: only whole numbers get a label, so small ranges do not repeat one.
fn whole_count(v: f64) -> String {
    if v >= 0.0 && (v - v.round()).abs() < EPS {
        group_thousands(v.round() as u64)
    } else {
        String::new()
    }
}

/// Axis ticks for rates: a decimal place only when the axis is short enough to need it.
fn percent_tick(v: f64, axis_top: f64) -> String {
    percent(v, if axis_top <= 0.1 { 1 } else { 0 })
}

fn percent(fraction: f64, decimals: usize) -> String {
    format!("{:.*}%", decimals, fraction * 100.0)
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cuts a name to `max` characters with an ellipsis, so a long name cannot run into its
/// neighbour (plotters cannot measure real text widths for SVG).
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        let kept: String = name.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1640), "1,640");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn funnel_label_has_count_and_share() {
        assert_eq!(funnel_label(1640, 1800), "1,640 · 91.1%");
        assert_eq!(funnel_label(1800, 1800), "1,800 · 100.0%");
        assert_eq!(funnel_label(5, 0), "5");
    }

    #[test]
    fn day_step_keeps_labels_apart() {
        assert_eq!(day_step(14, 740, 10), 2);
        assert_eq!(day_step(5, 700, 10), 1);
        let step = day_step(60, 650, 10);
        assert!(60usize.div_ceil(step) <= 6, "step {step}");
    }

    #[test]
    fn index_axis_handles_one_category() {
        let axis = IndexAxis::new(1, 1);
        assert_eq!(axis.map(&0.0, (0, 100)), 50);
        assert_eq!(axis.key_points(10usize), vec![0.0]);
    }

    #[test]
    fn index_axis_respects_the_hint() {
        let axis = IndexAxis::new(60, 1);
        assert!(axis.key_points(12usize).len() <= 12);
    }

    #[test]
    fn rate_axes_end_on_a_tick() {
        assert_eq!(nice_top(0.99), 1.0);
        assert_eq!(nice_top(0.945), 1.0);
        assert_eq!(nice_top(0.42), 0.5);
        assert_eq!(nice_top(0.065), 0.07);
        assert_eq!(nice_top(0.0), 0.01);
        assert_eq!(nice_top(1.2), 1.0);
    }

    #[test]
    fn shorten_cuts_long_names_only() {
        assert_eq!(shorten("holdout", 10), "holdout");
        assert_eq!(shorten("a-very-long-variant", 8), "a-very-…");
    }

    #[test]
    fn whole_counts_only() {
        assert_eq!(whole_count(2000.0), "2,000");
        assert_eq!(whole_count(0.5), "");
    }

    #[test]
    fn bad_rates_are_rejected() {
        let mut input = ChartInput {
            title: String::new(),
            funnel: vec![],
            daily: vec![],
            variants: vec![VariantBar {
                name: "A".into(),
                rate: 0.5,
                low: 0.6,
                high: 0.7,
            }],
        };
        let err = svg(&input).unwrap_err();
        assert!(matches!(err, ChartError::IntervalMismatch { .. }), "{err}");
        input.variants[0].low = f64::NAN;
        let err = svg(&input).unwrap_err();
        assert!(err.to_string().contains("low of A is NaN"), "{err}");
    }
}
