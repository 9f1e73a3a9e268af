//! Charts of a port's history (sources and targets per day) for write-ups: SVG and PNG.
//!
//! Both renderers draw the same [`Layout`], computed once in chart units (the SVG's
//! `viewBox`; the PNG is [`PNG_SCALE`] pixels per unit): a title and the date range at the
//! top left, the legend at the top right, a plot area with a y axis from 0 with 4-6 "nice"
//! ticks (1, 2, 5 x 10^k) and light grid lines, date labels under the x axis at day, month
//! or year steps (whichever is the finest that fits), and one line per series.
//!
//! The PNG needs no system font: its text is drawn from the `font8x8` crate's public-domain
//! 8x8 glyphs (ASCII; other characters show as `?`), its lines are anti-aliased by
//! `tiny-skia`, which also encodes the PNG.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{Datelike, NaiveDate};

use super::DayRow;

/// Width of the chart in chart units (the SVG's `width` and `viewBox`).
pub const WIDTH: f64 = 1000.0;
/// Height of the chart in chart units.
pub const HEIGHT: f64 = 480.0;
/// PNG pixels per chart unit: the PNG is `WIDTH * PNG_SCALE` x `HEIGHT * PNG_SCALE`.
pub const PNG_SCALE: u32 = 2;

/// Series colours: sources blue, targets orange, then others in order.
const PALETTE: [Rgb; 6] = [
    Rgb(0x1f, 0x77, 0xb4),
    Rgb(0xff, 0x7f, 0x0e),
    Rgb(0x2c, 0xa0, 0x2c),
    Rgb(0xd6, 0x27, 0x28),
    Rgb(0x94, 0x67, 0xbd),
    Rgb(0x8c, 0x56, 0x4b),
];
const BACKGROUND: Rgb = Rgb(0xff, 0xff, 0xff);
const GRID: Rgb = Rgb(0xe4, 0xe4, 0xe4);
const AXIS: Rgb = Rgb(0x99, 0x99, 0x99);
const TITLE_INK: Rgb = Rgb(0x22, 0x22, 0x22);
const LABEL_INK: Rgb = Rgb(0x55, 0x55, 0x55);
const SUBTITLE_INK: Rgb = Rgb(0x6e, 0x6e, 0x6e);

const MARGIN: f64 = 20.0;
const RIGHT_MARGIN: f64 = 40.0;
const PLOT_TOP: f64 = 72.0;
const PLOT_BOTTOM: f64 = HEIGHT - 48.0;
const TICK_LEN: f64 = 5.0;
/// Gap kept between two neighbouring x labels.
const LABEL_GAP: f64 = 10.0;

/// A two-series daily chart.
pub struct Chart {
    pub title: String,
    pub dates: Vec<String>,
    pub series: Vec<(String, Vec<i64>)>,
}

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Where a text's `x` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// The kinds of text, each with its size and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextStyle {
    Title,
    Subtitle,
    Tick,
    Legend,
}

impl TextStyle {
    /// Chart units per pixel of an 8x8 glyph: a character is `8 * unit` wide, capitals are
    /// `7 * unit` tall above the baseline.
    fn unit(self) -> f64 {
        match self {
            TextStyle::Title => 1.5,
            _ => 1.0,
        }
    }

    /// The SVG font size whose capitals are about as tall as the PNG's glyphs.
    fn svg_size(self) -> f64 {
        match self {
            TextStyle::Title => 16.0,
            TextStyle::Subtitle | TextStyle::Legend => 12.0,
            TextStyle::Tick => 11.0,
        }
    }

    fn ink(self) -> Rgb {
        match self {
            TextStyle::Title => TITLE_INK,
            TextStyle::Subtitle => SUBTITLE_INK,
            TextStyle::Tick | TextStyle::Legend => LABEL_INK,
        }
    }

    /// Width of `s` in chart units (exact for the PNG, generous for the SVG's sans-serif).
    fn width(self, s: &str) -> f64 {
        s.chars().count() as f64 * 8.0 * self.unit()
    }
}

/// A text at its anchor point and baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub text: String,
    pub x: f64,
    pub baseline: f64,
    pub anchor: Anchor,
    pub style: TextStyle,
}

impl Text {
    /// The left edge of the text.
    fn left(&self) -> f64 {
        match self.anchor {
            Anchor::Start => self.x,
            Anchor::Middle => self.x - self.style.width(&self.text) / 2.0,
            Anchor::End => self.x - self.style.width(&self.text),
        }
    }
}

/// The plot area, in chart units (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotArea {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// A y axis tick with its grid line.
#[derive(Clone, Debug, PartialEq)]
pub struct YTick {
    pub value: i64,
    pub y: f64,
    pub label: Text,
}

/// An x axis tick (a day) with its grid line.
#[derive(Clone, Debug, PartialEq)]
pub struct XTick {
    pub index: usize,
    pub x: f64,
    pub label: Text,
}

/// One series' line: one point per day.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesLine {
    pub name: String,
    pub color: Rgb,
    pub points: Vec<(f64, f64)>,
}

/// A legend entry: a short line in the series' colour from `x0` to `x1` at `y`, and its name.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendItem {
    pub color: Rgb,
    pub x0: f64,
    pub x1: f64,
    pub y: f64,
    pub label: Text,
}

/// Everything a renderer draws, in chart units.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub plot: PlotArea,
    /// The value at the top of the y axis (the last tick); the bottom is 0.
    pub y_top: i64,
    pub y_ticks: Vec<YTick>,
    pub x_ticks: Vec<XTick>,
    pub series: Vec<SeriesLine>,
    pub stroke_width: f64,
    /// Radius of a dot at each day's value, 0 for none (only short ranges have them).
    pub marker_radius: f64,
    pub legend: Vec<LegendItem>,
    pub title: Text,
    pub subtitle: Text,
}

impl Layout {
    /// The y of `value` on the axis (values outside 0..=top are clamped to the plot).
    pub fn y_of(&self, value: i64) -> f64 {
        y_of(self.plot, self.y_top, value)
    }

    /// The x of day `index` of `days`.
    pub fn x_of(&self, index: usize, days: usize) -> f64 {
        x_of(self.plot, index, days)
    }
}

fn y_of(plot: PlotArea, top: i64, value: i64) -> f64 {
    let top = top.max(1) as f64;
    let v = (value as f64).clamp(0.0, top);
    plot.bottom - v / top * (plot.bottom - plot.top)
}

fn x_of(plot: PlotArea, index: usize, days: usize) -> f64 {
    if days <= 1 {
        (plot.left + plot.right) / 2.0
    } else {
        plot.left + index as f64 * (plot.right - plot.left) / (days - 1) as f64
    }
}

/// The y axis for values up to `max`: `(step, intervals)` with `step` 1, 2 or 5 x 10^k and
/// 3 to 5 intervals, the smallest such step whose top `step * intervals` is at least `max`.
pub fn nice_scale(max: i64) -> (i64, i64) {
    // Large enough for any count; keeps `5 * step` far from overflowing.
    let max = max.clamp(0, i64::MAX / 64);
    let mut magnitude: i64 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            let intervals = (max + step - 1) / step;
            if intervals <= 5 {
                return (step, intervals.max(3));
            }
        }
        magnitude *= 10;
    }
}

/// `1234567` as `1,234,567`.
fn grouped(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let head = (digits.len() + 2) % 3 + 1;
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0 {
        out.push('-');
    }
    out.push_str(&digits[..head]);
    let mut rest = &digits[head..];
    while !rest.is_empty() {
        out.push(',');
        out.push_str(&rest[..3]);
        rest = &rest[3..];
    }
    out
}

/// The steps tried for x labels, finest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XStep {
    Days(usize),
    Months(u32),
    Years(i32),
}

const X_STEPS: [XStep; 16] = [
    XStep::Days(1),
    XStep::Days(2),
    XStep::Days(7),
    XStep::Days(14),
    XStep::Months(1),
    XStep::Months(2),
    XStep::Months(3),
    XStep::Months(6),
    XStep::Years(1),
    XStep::Years(2),
    XStep::Years(5),
    XStep::Years(10),
    XStep::Years(20),
    XStep::Years(25),
    XStep::Years(50),
    XStep::Years(100),
];

/// The x ticks: `(day index, label)`.
fn x_ticks(dates: &[String], plot_width: f64) -> Vec<(usize, String)> {
    let n = dates.len();
    if n == 0 {
        return Vec::new();
    }
    let per_day = if n == 1 {
        plot_width
    } else {
        plot_width / (n - 1) as f64
    };
    let need = |label: &str| TextStyle::Tick.width(label) + LABEL_GAP;
    let parsed: Option<Vec<NaiveDate>> = dates
        .iter()
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect();
    let Some(parsed) = parsed else {
        // Not dates: label every k-th day with its text as it is.
        let widest = dates.iter().map(|d| need(d)).fold(0.0, f64::max);
        let k = ((widest / per_day).ceil() as usize).max(1);
        return (0..n).step_by(k).map(|i| (i, dates[i].clone())).collect();
    };
    for step in X_STEPS {
        let ticks: Vec<(usize, String)> = match step {
            XStep::Days(k) => {
                if (k as f64) * per_day < need("03-01") {
                    continue;
                }
                let full = (k as f64) * per_day >= need("2026-03-01");
                (0..n)
                    .step_by(k)
                    .map(|i| {
                        let d = parsed[i];
                        let label = if full {
                            d.format("%Y-%m-%d").to_string()
                        } else {
                            d.format("%m-%d").to_string()
                        };
                        (i, label)
                    })
                    .collect()
            }
            XStep::Months(k) => {
                if f64::from(28 * k) * per_day < need("2026-03") {
                    continue;
                }
                parsed
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| {
                        d.day() == 1
                            && (d.year() as i64 * 12 + d.month0() as i64).rem_euclid(k as i64) == 0
                    })
                    .map(|(i, d)| (i, d.format("%Y-%m").to_string()))
                    .collect()
            }
            XStep::Years(k) => {
                if f64::from(365 * k) * per_day < need("2026") {
                    continue;
                }
                parsed
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.ordinal() == 1 && d.year().rem_euclid(k) == 0)
                    .map(|(i, d)| (i, d.format("%Y").to_string()))
                    .collect()
            }
        };
        if !ticks.is_empty() {
            return ticks;
        }
        break;
    }
    // Nothing fitted (or the step found no tick in range): the first day alone.
    vec![(0, dates[0].clone())]
}

/// `name` as a CSS class: lowercase letters, digits, `-` and `_`.
fn class_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Escapes `s` for XML text and attribute values; drops characters XML 1.0 forbids.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` characters, with `...` where it was cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(3);
    let mut t: String = s.chars().take(keep).collect();
    t.push_str("...");
    t
}

/// A coordinate for the SVG: at most two decimals, no `-0`.
fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let r = (v * 100.0).round() / 100.0;
    let s = format!("{r:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Chart {
    /// Sources and targets per day of port `port`.
    pub fn port(port: u16, rows: &[DayRow]) -> Chart {
        Chart {
            title: format!("TCP/UDP port {port}: sources and targets per day"),
            dates: rows.iter().map(|r| r.date.clone()).collect(),
            series: vec![
                ("sources".into(), rows.iter().map(|r| r.sources).collect()),
                ("targets".into(), rows.iter().map(|r| r.targets).collect()),
            ],
        }
    }

    /// The colour of series `i` named `name`: sources blue, targets orange.
    fn color(i: usize, name: &str) -> Rgb {
        match name {
            "sources" => PALETTE[0],
            "targets" => PALETTE[1],
            _ => PALETTE[i % PALETTE.len()],
        }
    }

    /// Where everything goes; both renderers draw this.
    pub fn layout(&self) -> Layout {
        let days = self.dates.len();
        let max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().take(days))
            .copied()
            .max()
            .unwrap_or(0);
        let (step, intervals) = nice_scale(max);
        let y_top = step * intervals;

        // The left margin fits the widest y label; the plot's height is a whole number of
        // units per interval so that the grid lines fall on whole units (crisp in the PNG).
        let labels: Vec<String> = (0..=intervals).map(|i| grouped(i * step)).collect();
        let widest = labels
            .iter()
            .map(|l| TextStyle::Tick.width(l))
            .fold(0.0, f64::max);
        let left = (MARGIN + widest + TICK_LEN + 6.0).round();
        let right = WIDTH - RIGHT_MARGIN;
        let per_interval = ((PLOT_BOTTOM - PLOT_TOP) / intervals as f64).floor();
        let bottom = PLOT_BOTTOM;
        let top = bottom - per_interval * intervals as f64;
        let plot = PlotArea {
            left,
            top,
            right,
            bottom,
        };

        let y_ticks = labels
            .into_iter()
            .enumerate()
            .map(|(i, label)| {
                let value = i as i64 * step;
                let y = y_of(plot, y_top, value);
                YTick {
                    value,
                    y,
                    label: Text {
                        text: label,
                        x: left - TICK_LEN - 4.0,
                        baseline: y + 3.5,
                        anchor: Anchor::End,
                        style: TextStyle::Tick,
                    },
                }
            })
            .collect();

        let x_ticks = x_ticks(&self.dates, right - left)
            .into_iter()
            .map(|(index, label)| {
                let x = x_of(plot, index, days).round();
                // Keep the label inside the chart.
                let half = TextStyle::Tick.width(&label) / 2.0;
                let cx = x.clamp(half + 4.0, WIDTH - half - 4.0);
                XTick {
                    index,
                    x,
                    label: Text {
                        text: label,
                        x: cx,
                        baseline: bottom + TICK_LEN + 14.0,
                        anchor: Anchor::Middle,
                        style: TextStyle::Tick,
                    },
                }
            })
            .collect();

        let series: Vec<SeriesLine> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, (name, values))| SeriesLine {
                name: name.clone(),
                color: Self::color(i, name),
                points: values
                    .iter()
                    .take(days)
                    .enumerate()
                    .map(|(d, &v)| (x_of(plot, d, days), y_of(plot, y_top, v)))
                    .collect(),
            })
            .collect();
        let per_day = if days > 1 {
            (right - left) / (days - 1) as f64
        } else {
            right - left
        };
        let stroke_width = if per_day >= 3.0 { 1.75 } else { 1.0 };
        let marker_radius = if per_day >= 14.0 { 2.75 } else { 0.0 };

        // Legend: right-aligned with the plot, on the title's line.
        let title_baseline = 30.0;
        let swatch = 18.0;
        let mut legend = Vec::new();
        let mut x = right;
        for s in series.iter().rev() {
            let name = truncate(&s.name, 24);
            let w = TextStyle::Legend.width(&name);
            let text_x = x - w;
            let x1 = text_x - 6.0;
            let x0 = x1 - swatch;
            legend.push(LegendItem {
                color: s.color,
                x0,
                x1,
                y: title_baseline - 3.5,
                label: Text {
                    text: name,
                    x: text_x,
                    baseline: title_baseline,
                    anchor: Anchor::Start,
                    style: TextStyle::Legend,
                },
            });
            x = x0 - 18.0;
        }
        legend.reverse();

        let room = (x - MARGIN).max(0.0);
        let title_chars = (room / (8.0 * TextStyle::Title.unit())).floor() as usize;
        let title = Text {
            text: truncate(&self.title, title_chars.max(8)),
            x: MARGIN,
            baseline: title_baseline,
            anchor: Anchor::Start,
            style: TextStyle::Title,
        };
        let range = match (self.dates.first(), self.dates.last()) {
            (Some(a), Some(_)) if days == 1 => format!("{a}, 1 day"),
            (Some(a), Some(b)) => format!("{a} to {b}, {} days", grouped(days as i64)),
            _ => "no data".to_string(),
        };
        let subtitle = Text {
            text: range,
            x: MARGIN,
            baseline: title_baseline + 20.0,
            anchor: Anchor::Start,
            style: TextStyle::Subtitle,
        };

        Layout {
            width: WIDTH,
            height: HEIGHT,
            plot,
            y_top,
            y_ticks,
            x_ticks,
            series,
            stroke_width,
            marker_radius,
            legend,
            title,
            subtitle,
        }
    }

    /// The chart as a standalone SVG 1.1 document.
    ///
    /// Each series is a `<polyline class="series NAME" data-series="NAME">` with one point
    /// per day; each y grid line is a `<line class="y-grid" data-value="V">`, so the values
    /// can be read back from the drawing.
    pub fn svg(&self) -> String {
        let l = self.layout();
        let p = l.plot;
        let mut s = String::with_capacity(4096 + l.series.len() * self.dates.len() * 16);
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#,
            w = num(l.width),
            h = num(l.height)
        );
        let _ = writeln!(s, "<title>{}</title>", xml_escape(&self.title));
        let _ = writeln!(
            s,
            r#"<rect class="background" x="0" y="0" width="{}" height="{}" fill="{}"/>"#,
            num(l.width),
            num(l.height),
            BACKGROUND.hex()
        );

        // Grid.
        let _ = writeln!(
            s,
            r#"<g class="grid" stroke="{}" stroke-width="1" shape-rendering="crispEdges">"#,
            GRID.hex()
        );
        for t in &l.x_ticks {
            let _ = writeln!(
                s,
                r#"<line class="x-grid" data-date="{}" x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                xml_escape(self.dates.get(t.index).map_or("", |d| d.as_str())),
                num(p.top),
                num(p.bottom),
                x = num(t.x)
            );
        }
        for t in &l.y_ticks {
            let _ = writeln!(
                s,
                r#"<line class="y-grid" data-value="{}" x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
                t.value,
                num(p.left),
                num(p.right),
                y = num(t.y)
            );
        }
        let _ = writeln!(s, "</g>");

        // Axes.
        let _ = writeln!(
            s,
            r#"<g class="axes" stroke="{}" stroke-width="1" shape-rendering="crispEdges">"#,
            AXIS.hex()
        );
        let _ = writeln!(
            s,
            r#"<line class="x-axis" x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
            num(p.left - TICK_LEN),
            num(p.right),
            y = num(p.bottom)
        );
        for t in &l.x_ticks {
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                num(p.bottom),
                num(p.bottom + TICK_LEN),
                x = num(t.x)
            );
        }
        for t in &l.y_ticks {
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
                num(p.left - TICK_LEN),
                num(p.left),
                y = num(t.y)
            );
        }
        let _ = writeln!(s, "</g>");

        let _ = writeln!(
            s,
            r#"<g class="y-labels" data-min="0" data-max="{}">"#,
            l.y_top
        );
        for t in &l.y_ticks {
            svg_text(&mut s, &t.label, "");
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(s, r#"<g class="x-labels">"#);
        for t in &l.x_ticks {
            svg_text(&mut s, &t.label, "");
        }
        let _ = writeln!(s, "</g>");

        // Series.
        let _ = writeln!(
            s,
            r#"<g class="lines" fill="none" stroke-width="{}" stroke-linejoin="round" stroke-linecap="round">"#,
            num(l.stroke_width)
        );
        for line in &l.series {
            let _ = write!(
                s,
                r#"<polyline class="series {}" data-series="{}" stroke="{}" points=""#,
                class_name(&line.name),
                xml_escape(&line.name),
                line.color.hex()
            );
            for (i, (x, y)) in line.points.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{},{}", num(*x), num(*y));
            }
            let _ = writeln!(s, r#""/>"#);
        }
        let _ = writeln!(s, "</g>");
        if l.marker_radius > 0.0 {
            let _ = writeln!(s, r#"<g class="markers">"#);
            for line in &l.series {
                for (x, y) in &line.points {
                    let _ = writeln!(
                        s,
                        r#"<circle class="marker {}" cx="{}" cy="{}" r="{}" fill="{}"/>"#,
                        class_name(&line.name),
                        num(*x),
                        num(*y),
                        num(l.marker_radius),
                        line.color.hex()
                    );
                }
            }
            let _ = writeln!(s, "</g>");
        }

        // Legend and title.
        let _ = writeln!(s, r#"<g class="legend">"#);
        for item in &l.legend {
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3" stroke-linecap="round"/>"#,
                num(item.x0),
                num(item.x1),
                item.color.hex(),
                y = num(item.y)
            );
            svg_text(&mut s, &item.label, "");
        }
        let _ = writeln!(s, "</g>");
        svg_text(&mut s, &l.title, r#" class="title" font-weight="bold""#);
        svg_text(&mut s, &l.subtitle, r#" class="subtitle""#);
        let _ = writeln!(s, "</svg>");
        s
    }

    /// The chart as PNG bytes, `WIDTH * PNG_SCALE` x `HEIGHT * PNG_SCALE` pixels.
    pub fn png_bytes(&self) -> Vec<u8> {
        let l = self.layout();
        let k = PNG_SCALE as f32;
        let k64 = f64::from(PNG_SCALE);
        let (w, h) = ((l.width as u32) * PNG_SCALE, (l.height as u32) * PNG_SCALE);
        let Some(mut pm) = tiny_skia::Pixmap::new(w, h) else {
            return Vec::new();
        };
        let c = BACKGROUND;
        pm.fill(tiny_skia::Color::from_rgba8(c.0, c.1, c.2, 255));
        let p = l.plot;

        // Grid and axes: one unit wide, on whole units, so crisp.
        for t in &l.x_ticks {
            rect(&mut pm, GRID, t.x - 0.5, p.top, 1.0, p.bottom - p.top);
        }
        for t in &l.y_ticks {
            rect(&mut pm, GRID, p.left, t.y - 0.5, p.right - p.left, 1.0);
        }
        rect(
            &mut pm,
            AXIS,
            p.left - TICK_LEN,
            p.bottom - 0.5,
            p.right - p.left + TICK_LEN,
            1.0,
        );
        for t in &l.x_ticks {
            rect(&mut pm, AXIS, t.x - 0.5, p.bottom, 1.0, TICK_LEN);
        }
        for t in &l.y_ticks {
            rect(&mut pm, AXIS, p.left - TICK_LEN, t.y - 0.5, TICK_LEN, 1.0);
        }
        for t in &l.y_ticks {
            text(&mut pm, &t.label);
        }
        for t in &l.x_ticks {
            text(&mut pm, &t.label);
        }

        // Series.
        let stroke = tiny_skia::Stroke {
            width: l.stroke_width as f32,
            line_join: tiny_skia::LineJoin::Round,
            line_cap: tiny_skia::LineCap::Round,
            ..Default::default()
        };
        let dense = (l.plot.right - l.plot.left) * k64 < self.dates.len() as f64;
        for line in &l.series {
            if dense {
                dense_line(&mut pm, line.color, &line.points, l.stroke_width);
                continue;
            }
            let mut pb = tiny_skia::PathBuilder::new();
            for (i, &(x, y)) in line.points.iter().enumerate() {
                if i == 0 {
                    pb.move_to(x as f32, y as f32);
                } else {
                    pb.line_to(x as f32, y as f32);
                }
            }
            let mut paint = tiny_skia::Paint::default();
            paint.set_color_rgba8(line.color.0, line.color.1, line.color.2, 255);
            paint.anti_alias = true;
            if let Some(path) = pb.finish() {
                pm.stroke_path(
                    &path,
                    &paint,
                    &stroke,
                    tiny_skia::Transform::from_scale(k, k),
                    None,
                );
            }
            if l.marker_radius > 0.0 {
                let mut pb = tiny_skia::PathBuilder::new();
                for &(x, y) in &line.points {
                    pb.push_circle(x as f32, y as f32, l.marker_radius as f32);
                }
                if let Some(path) = pb.finish() {
                    pm.fill_path(
                        &path,
                        &paint,
                        tiny_skia::FillRule::Winding,
                        tiny_skia::Transform::from_scale(k, k),
                        None,
                    );
                }
            }
        }

        // Legend and title.
        for item in &l.legend {
            rect(
                &mut pm,
                item.color,
                item.x0,
                item.y - 1.5,
                item.x1 - item.x0,
                3.0,
            );
            text(&mut pm, &item.label);
        }
        text(&mut pm, &l.title);
        text(&mut pm, &l.subtitle);
        pm.encode_png().unwrap_or_default()
    }

    /// Writes the chart as a PNG file.
    pub fn png(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.png_bytes();
        if bytes.is_empty() {
            return Err(std::io::Error::other("could not encode the chart as PNG"));
        }
        std::fs::write(path, bytes)
    }
}

fn svg_text(s: &mut String, t: &Text, extra: &str) {
    let anchor = match t.anchor {
        Anchor::Start => "start",
        Anchor::Middle => "middle",
        Anchor::End => "end",
    };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="{}" fill="{}" text-anchor="{anchor}"{extra}>{}</text>"#,
        num(t.x),
        num(t.baseline),
        num(t.style.svg_size()),
        t.style.ink().hex(),
        xml_escape(&t.text)
    );
}

/// Draws a line through `points` (chart units) that has more than one point per pixel
/// column as one vertical span per column, from its lowest to its highest point and to
/// the previous column's last point, `width` units wide: what an anti-aliased stroke
/// would show there, at a fraction of the cost.
fn dense_line(pm: &mut tiny_skia::Pixmap, c: Rgb, points: &[(f64, f64)], width: f64) {
    let k = f64::from(PNG_SCALE);
    let w = (width * k).round().max(1.0);
    let mut paint = tiny_skia::Paint::default();
    paint.set_color_rgba8(c.0, c.1, c.2, 255);
    paint.anti_alias = false;
    let mut previous: Option<f64> = None;
    for run in points.chunk_by(|a, b| (a.0 * k).floor() == (b.0 * k).floor()) {
        let column = (run[0].0 * k).floor();
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in run.iter().map(|p| p.1 * k).chain(previous) {
            lo = lo.min(p);
            hi = hi.max(p);
        }
        previous = run.last().map(|p| p.1 * k);
        let x0 = (column + 0.5 - w / 2.0).round();
        let (y0, y1) = ((lo - w / 2.0).round(), (hi + w / 2.0).round());
        if let Some(r) =
            tiny_skia::Rect::from_ltrb(x0 as f32, y0 as f32, (x0 + w) as f32, y1 as f32)
        {
            pm.fill_rect(r, &paint, tiny_skia::Transform::identity(), None);
        }
    }
}

/// Fills a rectangle given in chart units, snapped to whole pixels, without anti-aliasing.
fn rect(pm: &mut tiny_skia::Pixmap, c: Rgb, x: f64, y: f64, w: f64, h: f64) {
    let k = f64::from(PNG_SCALE);
    let (x0, y0) = ((x * k).round(), (y * k).round());
    let (x1, y1) = (((x + w) * k).round(), ((y + h) * k).round());
    if let Some(r) = tiny_skia::Rect::from_ltrb(x0 as f32, y0 as f32, x1 as f32, y1 as f32) {
        let mut paint = tiny_skia::Paint::default();
        paint.set_color_rgba8(c.0, c.1, c.2, 255);
        paint.anti_alias = false;
        pm.fill_rect(r, &paint, tiny_skia::Transform::identity(), None);
    }
}

/// Draws `t` with the 8x8 glyphs, each glyph pixel a square of `unit` chart units.
fn text(pm: &mut tiny_skia::Pixmap, t: &Text) {
    let unit = t.style.unit();
    let px = (unit * f64::from(PNG_SCALE)).round().max(1.0);
    let k = f64::from(PNG_SCALE);
    let left = (t.left() * k).round();
    let top = ((t.baseline - 7.0 * unit) * k).round();
    let ink = t.style.ink();
    let mut paint = tiny_skia::Paint::default();
    paint.set_color_rgba8(ink.0, ink.1, ink.2, 255);
    paint.anti_alias = false;
    let mut pb = tiny_skia::PathBuilder::new();
    for (i, ch) in t.text.chars().enumerate() {
        let code = if ch.is_ascii() && !ch.is_ascii_control() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let gx = left + i as f64 * 8.0 * px;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let x = gx + col as f64 * px;
                    let y = top + row as f64 * px;
                    if let Some(r) =
                        tiny_skia::Rect::from_xywh(x as f32, y as f32, px as f32, px as f32)
                    {
                        pb.push_rect(r);
                    }
                }
            }
        }
    }
    if let Some(path) = pb.finish() {
        pm.fill_path(
            &path,
            &paint,
            tiny_skia::FillRule::Winding,
            tiny_skia::Transform::identity(),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(first: &str, n: usize) -> Vec<String> {
        let d0 = NaiveDate::parse_from_str(first, "%Y-%m-%d").expect("date");
        (0..n)
            .map(|i| {
                (d0 + chrono::Days::new(i as u64))
                    .format("%Y-%m-%d")
                    .to_string()
            })
            .collect()
    }

    /// Ten days; sources rise to 40 (a tick), targets stay at 3.
    fn ten_days() -> Chart {
        Chart {
            title: "Port 26 <&> \"test\" 'chart'".into(),
            dates: dates("2026-03-01", 10),
            series: vec![
                ("sources".into(), vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 40]),
                ("targets".into(), vec![3; 10]),
            ],
        }
    }

    fn points(attr: &str) -> Vec<(f64, f64)> {
        attr.split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    fn has_class(n: &roxmltree::Node, class: &str) -> bool {
        n.attribute("class")
            .is_some_and(|c| c.split_whitespace().any(|w| w == class))
    }

    #[test]
    fn nice_scale_has_4_to_6_nice_ticks() {
        for max in (0..2000).chain([9_999, 10_000, 10_001, 123_456_789, i64::MAX]) {
            let (step, n) = nice_scale(max);
            assert!((3..=5).contains(&n), "max {max}: {n} intervals");
            assert!(
                step * n >= max.min(i64::MAX / 64),
                "max {max}: top {}",
                step * n
            );
            let mut m = step;
            while m % 10 == 0 {
                m /= 10;
            }
            assert!([1, 2, 5].contains(&m), "max {max}: step {step}");
            // The smallest such step: one step less would not reach max.
            if max > 3 {
                assert!(step * (n - 1) < max, "max {max}: step {step} x {n}");
            }
        }
        assert_eq!(nice_scale(40), (10, 4));
        assert_eq!(nice_scale(45), (10, 5));
        assert_eq!(nice_scale(0), (1, 3));
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(-12_345), "-12,345");
        assert_eq!(grouped(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn svg_is_well_formed_and_maps_values_back() {
        let chart = ten_days();
        let svg = chart.svg();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert_eq!(root.attribute("viewBox"), Some("0 0 1000 480"));
        assert_eq!(root.attribute("width"), Some("1000"));
        assert_eq!(root.attribute("font-family"), Some("sans-serif"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));

        // The y scale, from the grid lines: 0, 10, 20, 30, 40.
        let ticks: Vec<(i64, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("line") && has_class(n, "y-grid"))
            .map(|n| {
                let v = n
                    .attribute("data-value")
                    .expect("value")
                    .parse()
                    .expect("int");
                let y1: f64 = n.attribute("y1").expect("y1").parse().expect("y1");
                assert_eq!(n.attribute("y2"), n.attribute("y1"));
                (v, y1)
            })
            .collect();
        assert_eq!(
            ticks.iter().map(|t| t.0).collect::<Vec<_>>(),
            [0, 10, 20, 30, 40]
        );
        let (v0, y0) = ticks[0];
        let (vt, yt) = ticks[ticks.len() - 1];
        assert_eq!(v0, 0);
        assert!(yt < y0, "top tick above the baseline");
        let y_for = |v: i64| y0 + (v - v0) as f64 * (yt - y0) / (vt - v0) as f64;
        for &(v, y) in &ticks {
            assert!((y - y_for(v)).abs() < 0.01, "ticks evenly spaced");
        }
        // Their labels.
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("g") && has_class(n, "y-labels"))
            .flat_map(|g| g.children().filter(|n| n.has_tag_name("text")))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(labels, ["0", "10", "20", "30", "40"]);

        // One polyline per series, one point per day, x increasing, y on the scale.
        let lines: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && has_class(n, "series"))
            .collect();
        assert_eq!(lines.len(), 2);
        for (node, (name, values)) in lines.iter().zip(&chart.series) {
            assert!(has_class(node, name), "class names the series");
            assert_eq!(node.attribute("data-series"), Some(name.as_str()));
            let pts = points(node.attribute("points").expect("points"));
            assert_eq!(pts.len(), 10, "{name}: one point per day");
            assert!(pts.windows(2).all(|w| w[1].0 > w[0].0), "x increases");
            for (&(_, y), &v) in pts.iter().zip(values) {
                assert!((y - y_for(v)).abs() <= 1.0, "{name} {v}: y {y}");
            }
        }
        let src = points(lines[0].attribute("points").expect("points"));
        assert!((src[8].1 - yt).abs() <= 1.0, "max at the top tick");
        assert!((src[0].1 - y0).abs() <= 1.0, "zero at the baseline");
        assert_ne!(
            lines[0].attribute("stroke"),
            lines[1].attribute("stroke"),
            "distinct colours"
        );

        // Title (escaped in the text, intact once parsed) and legend.
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("text") && has_class(n, "title"))
            .expect("title");
        assert_eq!(title.text(), Some(chart.title.as_str()));
        assert!(svg.contains("Port 26 &lt;&amp;&gt; &quot;test&quot; &apos;chart&apos;"));
        let legend: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("g") && has_class(n, "legend"))
            .flat_map(|g| g.descendants().filter(|n| n.has_tag_name("text")))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(legend, ["sources", "targets"]);

        // Ten days fit a full date under each day.
        let xl: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("g") && has_class(n, "x-labels"))
            .flat_map(|g| g.children().filter(|n| n.has_tag_name("text")))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(xl.len(), 10);
        assert_eq!(xl[0], "2026-03-01");
        assert_eq!(xl[9], "2026-03-10");
    }

    #[test]
    fn svg_escapes_series_names_and_drops_control_characters() {
        let chart = Chart {
            title: "a\u{1}b".into(),
            dates: dates("2026-01-01", 3),
            series: vec![("x<y> & \"z\"".into(), vec![1, 2, 3])],
        };
        let svg = chart.svg();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let line = doc
            .descendants()
            .find(|n| n.has_tag_name("polyline"))
            .expect("line");
        assert_eq!(line.attribute("data-series"), Some("x<y> & \"z\""));
        assert_eq!(line.attribute("class"), Some("series x-y-----z-"));
    }

    #[test]
    fn x_labels_follow_the_range() {
        let months: Vec<String> = x_ticks(&dates("2026-01-01", 365), 900.0)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(months.len(), 12, "{months:?}");
        assert_eq!(months[0], "2026-01");
        assert_eq!(months[2], "2026-03");
        let years = x_ticks(&dates("2000-01-01", 36_500), 900.0);
        assert!((5..=25).contains(&years.len()), "{years:?}");
        assert!(years.iter().all(|t| t.1.len() == 4));
        let weeks = x_ticks(&dates("2026-03-01", 60), 900.0);
        assert!((5..=12).contains(&weeks.len()), "{weeks:?}");
        assert_eq!(x_ticks(&dates("2026-03-01", 1), 900.0)[0].1, "2026-03-01");
        // Labels do not overlap.
        for n in [1, 2, 10, 30, 60, 90, 200, 365, 730, 3650, 36_500] {
            let chart = Chart {
                title: "t".into(),
                dates: dates("2020-02-17", n),
                series: vec![],
            };
            let l = chart.layout();
            assert!(!l.x_ticks.is_empty(), "{n} days");
            for w in l.x_ticks.windows(2) {
                let a = w[0].label.left() + TextStyle::Tick.width(&w[0].label.text);
                assert!(a + 4.0 <= w[1].label.left(), "{n} days: {w:?}");
            }
        }
    }

    #[test]
    fn svg_of_one_zero_day_and_of_a_century() {
        for (n, v) in [(1usize, 0i64), (36_500, 7)] {
            let chart = Chart {
                title: "t".into(),
                dates: dates("2000-01-01", n),
                series: vec![
                    (
                        "sources".into(),
                        (0..n as i64).map(|i| i % 13 * v).collect(),
                    ),
                    ("targets".into(), vec![0; n]),
                ],
            };
            let svg = chart.svg();
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
            let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
            for line in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
                let pts = points(line.attribute("points").expect("points"));
                assert_eq!(pts.len(), n);
                assert!(pts.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
            }
        }
        // No days at all still makes a document.
        let empty = Chart {
            title: "t".into(),
            dates: vec![],
            series: vec![("sources".into(), vec![])],
        };
        roxmltree::Document::parse(&empty.svg()).expect("well-formed SVG");
    }

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_draws_each_series_in_its_colour_at_its_height() {
        let chart = ten_days();
        let l = chart.layout();
        let (w, h, buf) = decode(&chart.png_bytes());
        assert_eq!((w, h), (1000 * PNG_SCALE, 480 * PNG_SCALE));
        let k = f64::from(PNG_SCALE);
        let at = |x: u32, y: u32| {
            let i = ((y * w + x) * 4) as usize;
            Rgb(buf[i], buf[i + 1], buf[i + 2])
        };
        let near = |a: Rgb, b: Rgb| {
            (a.0 as i32 - b.0 as i32).abs() <= 8
                && (a.1 as i32 - b.1 as i32).abs() <= 8
                && (a.2 as i32 - b.2 as i32).abs() <= 8
        };
        let (blue, orange) = (l.series[0].color, l.series[1].color);
        assert_ne!(blue, orange);
        let plot_rows = (l.plot.top * k) as u32 - 4..(l.plot.bottom * k) as u32 + 4;
        for c in [blue, orange] {
            let count = plot_rows
                .clone()
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| near(at(x, y), c))
                .count();
            assert!(count > 500, "{c:?}: {count} pixels");
        }
        // Day 5: 25 sources over 3 targets.
        let x = (l.series[0].points[5].0 * k).round() as u32;
        let topmost = |c: Rgb| plot_rows.clone().find(|&y| near(at(x, y), c));
        let ys = topmost(blue).expect("sources in day 5's column");
        let yt = topmost(orange).expect("targets in day 5's column");
        assert!(ys < yt, "sources at {ys} above targets at {yt}");
        // The topmost pixel is the dot's or the line's edge, within a few pixels of the value.
        let reach = (l.marker_radius.max(l.stroke_width / 2.0) + 1.0) * k;
        assert!(
            (f64::from(ys) - l.y_of(25) * k).abs() <= reach,
            "sources at {ys}"
        );
        assert!(
            (f64::from(yt) - l.y_of(3) * k).abs() <= reach,
            "targets at {yt}"
        );
        // Some text was drawn: the title's ink left of the legend.
        let title_rows = 10 * PNG_SCALE..32 * PNG_SCALE;
        let inked = title_rows
            .flat_map(|y| (0..300 * PNG_SCALE).map(move |x| (x, y)))
            .filter(|&(x, y)| at(x, y) == TITLE_INK)
            .count();
        assert!(inked > 200, "title pixels: {inked}");
    }

    #[test]
    fn png_of_a_century_and_of_one_zero_day() {
        let n = 36_500;
        let century = Chart {
            title: "t".into(),
            dates: dates("2000-01-01", n),
            series: vec![
                ("sources".into(), (0..n as i64).map(|i| i % 97).collect()),
                ("targets".into(), vec![0; n]),
            ],
        };
        let one = Chart {
            title: "t".into(),
            dates: dates("2000-01-01", 1),
            series: vec![("sources".into(), vec![0]), ("targets".into(), vec![0])],
        };
        let k = f64::from(PNG_SCALE);
        for chart in [century, one] {
            let l = chart.layout();
            let (w, h, buf) = decode(&chart.png_bytes());
            assert_eq!((w, h), (1000 * PNG_SCALE, 480 * PNG_SCALE));
            let column = |x: f64, c: Rgb| -> Vec<u32> {
                let x = (x * k).round() as u32;
                (0..h)
                    .filter(|&y| {
                        let i = ((y * w + x) * 4) as usize;
                        Rgb(buf[i], buf[i + 1], buf[i + 2]) == c
                    })
                    .collect()
            };
            let last = &l.series[1];
            // The last series drawn (targets, all zero) lies on the baseline.
            let mid = last.points[last.points.len() / 2].0;
            let ys = column(mid, last.color);
            assert!(!ys.is_empty(), "targets drawn");
            assert!(ys
                .iter()
                .all(|&y| (f64::from(y) - l.plot.bottom * k).abs() <= 6.0));
            if chart.dates.len() > 1 {
                // Sources reach up to their highest value, 96.
                // (Below the legend's swatch of the same colour.)
                let rows = (l.plot.top * k) as u32 - 8..h;
                let top = (0..w)
                    .flat_map(|x| rows.clone().map(move |y| (x, y)))
                    .filter(|&(x, y)| {
                        let i = ((y * w + x) * 4) as usize;
                        Rgb(buf[i], buf[i + 1], buf[i + 2]) == l.series[0].color
                    })
                    .map(|(_, y)| y)
                    .min()
                    .expect("sources drawn");
                assert!((f64::from(top) - l.y_of(96) * k).abs() <= 3.0, "top {top}");
            }
        }
    }

    #[test]
    fn png_writes_a_png_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("port26.png");
        ten_days().png(&path).expect("write PNG");
        let bytes = std::fs::read(&path).expect("read PNG");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(ten_days().png(&dir.path().join("no/such/dir.png")).is_err());
    }

    /// Writes sample charts to `$HONEYPORT_CHART_SAMPLES/port26.{svg,png}` for a look:
    /// `HONEYPORT_CHART_SAMPLES=/tmp cargo test -p honeyport --lib chart -- --ignored`.
    #[test]
    #[ignore]
    fn write_samples() {
        let Some(dir) = std::env::var_os("HONEYPORT_CHART_SAMPLES") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let n = 365;
        let mut seed: u64 = 26;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64 % 100
        };
        let mut sources = Vec::new();
        let mut targets = Vec::new();
        for d in 0..n as i64 {
            let base = 140 + d / 3 + if d % 7 < 2 { -25 } else { 0 };
            let burst = if (200..214).contains(&d) {
                900 - (d - 200) * 55
            } else {
                0
            };
            let s = base + burst + rnd();
            sources.push(s);
            targets.push(s / 3 + 20 + rnd() / 2);
        }
        let chart = Chart {
            title: "TCP/UDP port 26: sources and targets per day".into(),
            dates: dates("2025-11-26", n),
            series: vec![("sources".into(), sources), ("targets".into(), targets)],
        };
        std::fs::write(dir.join("port26.svg"), chart.svg()).expect("svg");
        chart.png(&dir.join("port26.png")).expect("png");
        let short = ten_days();
        std::fs::write(dir.join("port26-10days.svg"), short.svg()).expect("svg");
        short.png(&dir.join("port26-10days.png")).expect("png");
        let n = 36_500;
        let century = Chart {
            title: "A century".into(),
            dates: dates("1930-01-01", n),
            series: vec![
                (
                    "sources".into(),
                    (0..n as i64).map(|d| d % 365 / 30).collect(),
                ),
                ("targets".into(), vec![0; n]),
            ],
        };
        std::fs::write(dir.join("port26-century.svg"), century.svg()).expect("svg");
        century.png(&dir.join("port26-century.png")).expect("png");
        let one = Chart {
            title: "One day".into(),
            dates: dates("2026-03-01", 1),
            series: vec![("sources".into(), vec![0]), ("targets".into(), vec![0])],
        };
        std::fs::write(dir.join("port26-1day.svg"), one.svg()).expect("svg");
        one.png(&dir.join("port26-1day.png")).expect("png");
    }
}
