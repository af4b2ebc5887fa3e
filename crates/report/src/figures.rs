//! The report's figures, drawn to SVG strings with plotters' SVG backend (no
//! fonts, no system libraries; plotters escapes every text it writes):
//!
//! - [`waterfall`]: where a method's total comes from, block by block, with
//!   each part's confidence interval;
//! - [`forest`]: detailed terms with their intervals;
//! - [`caterpillar`]: risk-standardized rates of the hospitals, ranked;
//! - [`curves`]: line charts (concentration curve, ρ-sensitivity curve).
//!
//! Values come in already scaled (percentage points for binary outcomes).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ReportError;

/// Colours of the factor blocks, in block order.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GREY: RGBColor = RGBColor(150, 150, 150);
const DARK: RGBColor = RGBColor(60, 60, 60);
const WIDTH: u32 = 760;

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Figure(e.to_string())
}

/// One horizontal row of a waterfall or forest plot.
#[derive(Debug, Clone)]
pub struct Row {
    /// Label at the left.
    pub label: String,
    /// A bar from `bar.0` to `bar.1` (waterfall), if any.
    pub bar: Option<(f64, f64)>,
    /// A point estimate (forest), if any.
    pub point: Option<f64>,
    /// Confidence limits drawn as a whisker.
    pub ci: Option<(f64, f64)>,
    /// Colour index into [`PALETTE`]; None for grey (what is left), and
    /// `Some(usize::MAX)` for the dark total bar.
    pub colour: Option<usize>,
}

fn colour(c: Option<usize>) -> RGBColor {
    match c {
        None => GREY,
        Some(usize::MAX) => DARK,
        Some(i) => PALETTE[i % PALETTE.len()],
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// An axis tick: at most 3 decimals, trailing zeros dropped, never `-0`.
pub fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "-0" | "" => "0".into(),
        s => s.to_string(),
    }
}

fn range_of(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let pad = 0.06 * (hi - lo).max(1e-9);
    (lo - pad, hi + pad)
}

/// Horizontal rows with labels at the left: bars (waterfall) or points
/// (forest), each with an optional whisker, and a zero line.
pub fn rows(title: &str, x_label: &str, rows: &[Row]) -> Result<String, ReportError> {
    let mut svg = String::new();
    let n = rows.len().max(1);
    let height = (70 + 24 * n + 50) as u32;
    let labels: Vec<String> = rows.iter().map(|r| shorten(&r.label, 38)).collect();
    let label_width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 38) as u32
        * 8
        + 16;
    let (x0, x1) = range_of(rows.iter().flat_map(|r| {
        let mut v = Vec::new();
        if let Some((a, b)) = r.bar {
            v.extend([a, b]);
        }
        if let Some(p) = r.point {
            v.push(p);
        }
        if let Some((a, b)) = r.ci {
            v.extend([a, b]);
        }
        v
    }));
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .margin_left(label_width)
            .x_label_area_size(40)
            .build_cartesian_2d(x0..x1, 0f64..n as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc(x_label)
            .x_labels(8)
            .x_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (0.0, n as f64)],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            // Row 0 at the top.
            let y = (n - 1 - i) as f64;
            let c = colour(r.colour);
            if let Some((a, b)) = r.bar {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(a.min(b), y + 0.2), (a.max(b), y + 0.8)],
                        c.filled(),
                    )))
                    .map_err(err)?;
            }
            if let Some((lo, hi)) = r.ci {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(lo, y + 0.5), (hi, y + 0.5)],
                        BLACK.stroke_width(1),
                    )))
                    .map_err(err)?;
                for x in [lo, hi] {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x, y + 0.35), (x, y + 0.65)],
                            BLACK.stroke_width(1),
                        )))
                        .map_err(err)?;
                }
            }
            if let Some(p) = r.point {
                chart
                    .draw_series(std::iter::once(Circle::new((p, y + 0.5), 4, c.filled())))
                    .map_err(err)?;
            }
            let (px, py) = chart.plotting_area().map_coordinate(&(x0, y + 0.5));
            root.draw(&Text::new(
                labels[i].clone(),
                (px - 8, py),
                ("sans-serif", 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One component of a waterfall or one term of a forest plot: label, value,
/// interval, colour.
pub type Step = (String, f64, Option<(f64, f64)>, Option<usize>);

/// A waterfall: each component as a floating bar from the running sum, then
/// the total as a dark bar from zero.
pub fn waterfall(
    title: &str,
    x_label: &str,
    steps: &[Step],
    total: (&str, f64, Option<(f64, f64)>),
) -> Result<String, ReportError> {
    let mut at = 0.0;
    let mut out: Vec<Row> = Vec::new();
    for (label, v, ci, c) in steps {
        out.push(Row {
            label: label.clone(),
            bar: Some((at, at + v)),
            point: None,
            // The whisker is the part's own interval, placed at the bar's end.
            ci: ci.map(|(lo, hi)| (at + lo, at + hi)),
            colour: *c,
        });
        at += v;
    }
    out.push(Row {
        label: total.0.to_string(),
        bar: Some((0.0, total.1)),
        point: None,
        ci: total.2,
        colour: Some(usize::MAX),
    });
    rows(title, x_label, &out)
}

/// A forest plot of terms with their intervals.
pub fn forest(title: &str, x_label: &str, terms: &[Step]) -> Result<String, ReportError> {
    let out: Vec<Row> = terms
        .iter()
        .map(|(label, v, ci, c)| Row {
            label: label.clone(),
            bar: None,
            point: Some(*v),
            ci: *ci,
            colour: *c,
        })
        .collect();
    rows(title, x_label, &out)
}

/// A caterpillar plot: hospitals ranked by their rate, each with its interval.
pub fn caterpillar(
    title: &str,
    y_label: &str,
    rates: &[(f64, Option<(f64, f64)>)],
) -> Result<String, ReportError> {
    ranked(
        title,
        "hospitals ranked by risk-standardized rate",
        y_label,
        rates,
        true,
    )
}

/// Points with intervals ranked by value (a caterpillar plot); `nonnegative`
/// starts the axis at 0 or below, otherwise it fits the data and draws a
/// line at 0.
pub fn ranked(
    title: &str,
    x_desc: &str,
    y_label: &str,
    rates: &[(f64, Option<(f64, f64)>)],
    nonnegative: bool,
) -> Result<String, ReportError> {
    let mut sorted: Vec<(f64, Option<(f64, f64)>)> = rates.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (y0, y1) = range_of(
        sorted
            .iter()
            .flat_map(|(v, ci)| [Some(*v), ci.map(|c| c.0), ci.map(|c| c.1)])
            .flatten(),
    );
    let n = sorted.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                0f64..n + 1.0,
                if nonnegative { y0.max(0.0) } else { y0 }..y1,
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|v| tick(*v))
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        if !nonnegative && y0 < 0.0 && y1 > 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (n + 1.0, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(err)?;
        }
        for (i, (v, ci)) in sorted.iter().enumerate() {
            let x = i as f64 + 1.0;
            if let Some((lo, hi)) = ci {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, *lo), (x, *hi)],
                        GREY.stroke_width(1),
                    )))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x, *v),
                    2,
                    PALETTE[0].filled(),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A funnel plot: each hospital's rate against its number of patients, with
/// the overall rate and its control limits p₀ ± z√(p₀(1 − p₀)/n) for z = 1.96
/// and 3.09 (95% and 99.8%; Spiegelhalter 2005) for a binary outcome.
pub fn funnel(
    title: &str,
    y_label: &str,
    points: &[(f64, f64)],
    overall: f64,
    scale: f64,
) -> Result<String, ReportError> {
    let n_max = points.iter().map(|p| p.0).fold(1.0_f64, f64::max) * 1.05;
    let n_min = points
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    let limit = |n: f64, z: f64| z * (overall * (1.0 - overall) / n).max(0.0).sqrt();
    let (y0, y1) = range_of(points.iter().map(|p| p.1).chain([
        (overall - limit(n_min, 3.09)) * scale,
        (overall + limit(n_min, 3.09)) * scale,
    ]));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n_max, y0.max(0.0)..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("patients at the hospital")
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        let grid: Vec<f64> = (0..=200)
            .map(|k| n_min + (n_max - n_min) * f64::from(k) / 200.0)
            .collect();
        for (z, colour) in [(1.96, GREY), (3.09, BLACK)] {
            for sign in [-1.0, 1.0] {
                let line: Vec<(f64, f64)> = grid
                    .iter()
                    .map(|&n| (n, (overall + sign * limit(n, z)) * scale))
                    .collect();
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        line,
                        colour.stroke_width(1),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, overall * scale), (n_max, overall * scale)],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(n, r)| Circle::new((n, r), 2, PALETTE[0].filled())),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One named line of a line chart.
pub type Line = (String, Vec<(f64, f64)>);

/// A line chart with a legend; `diagonal` adds the line y = x (the curve of
/// equal shares), `zero` a horizontal line at 0; with neither, both axes fit
/// the data.
pub fn curves(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    diagonal: bool,
    zero: bool,
) -> Result<String, ReportError> {
    let xs = || lines.iter().flat_map(|l| l.1.iter().map(|p| p.0));
    let ys = || lines.iter().flat_map(|l| l.1.iter().map(|p| p.1));
    let (mut x0, mut x1) = range_of(xs());
    let (mut y0, mut y1) = range_of(ys());
    if diagonal {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if !zero && !diagonal {
        // Neither a diagonal nor a zero line: the axes fit the data (a
        // trace near 0.64 is not flattened against an axis from 0).
        x0 = xs().fold(f64::INFINITY, f64::min);
        x1 = xs().fold(f64::NEG_INFINITY, f64::max);
        let lo = ys().fold(f64::INFINITY, f64::min);
        let hi = ys().fold(f64::NEG_INFINITY, f64::max);
        let pad = 0.1 * (hi - lo).max(1e-9 * hi.abs().max(1.0));
        (y0, y1) = (lo - pad, hi + pad);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE)
            .draw()
            .map_err(err)?;
        if diagonal {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (1.0, 1.0)],
                    GREY.stroke_width(1),
                )))
                .map_err(err)?;
        }
        if zero {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x0, 0.0), (x1, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(err)?;
        }
        for (k, (name, points)) in lines.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waterfall_draws_every_label_escaped() {
        let svg = waterfall(
            "gap <b>",
            "percentage points",
            &[
                ("clinical".into(), 0.5, Some((0.3, 0.7)), Some(0)),
                ("<script>alert(1)</script>".into(), 0.3, None, Some(1)),
                ("unexplained".into(), 1.2, Some((0.9, 1.5)), None),
            ],
            ("gap", 2.0, Some((1.5, 2.5))),
        )
        .unwrap_or_default();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("clinical") && svg.contains("unexplained"));
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(svg.contains("gap &lt;b&gt;"));
        // Four bars.
        assert!(svg.matches("<rect").count() >= 4);
    }

    #[test]
    fn curves_and_caterpillar_render() {
        let c = curves(
            "concentration",
            "share of hospitals",
            "share of patients",
            &[("B".into(), vec![(0.0, 0.0), (0.5, 0.8), (1.0, 1.0)])],
            true,
            false,
        )
        .unwrap_or_default();
        assert!(c.contains("<polyline") || c.contains("<path"));
        let k = caterpillar("rates", "percent", &[(2.0, Some((1.0, 3.0))), (1.0, None)])
            .unwrap_or_default();
        assert!(k.contains("<circle"));
    }
}
