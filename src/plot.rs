//! PNG plots of runs (plotters, bitmap backend, with an embedded font so that no system
//! fontconfig is needed): training curves and readout traces of example trials.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::metrics::Metrics;

/// DejaVu Sans, subset to ASCII (see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

pub(crate) fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (checked by the plot tests); a failure would only
        // leave text out.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A plotting failure, as text (plotters' errors are generic over the backend).
pub(crate) fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("cannot draw {}: {e}", path.display())
}

/// The palette of lines: twelve colours that are told apart at a glance (the ten of
/// matplotlib's `tab10`, then black and gold).
pub const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 193, 7),
];

/// Line styles told apart: each palette colour solid, then each dashed.
pub const STYLES: usize = 2 * PALETTE.len();

/// The colour of the `i`-th line and whether it is dashed: the palette's colours solid for
/// the first [`PALETTE`]`.len()` lines, then dashed; styles repeat after [`STYLES`] lines.
pub fn line_style(i: usize) -> (RGBColor, bool) {
    let i = i % STYLES;
    (PALETTE[i % PALETTE.len()], i >= PALETTE.len())
}

/// A tick label of `v` on an axis spanning `span`: as many decimals as ticks about
/// `span / 50` apart need (plotters puts about ten on an axis), trailing zeros dropped (`200`, not `200.0`; `0.3`, not
/// `0.30000000000000004`), and never `-0`.
pub fn tick_label(v: f64, span: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let step = (span.abs() / 50.0).max(f64::MIN_POSITIVE);
    let decimals = (-step.log10()).ceil().clamp(0.0, 12.0) as usize;
    let mut t = format!("{v:.decimals$}");
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if t.trim_start_matches('-').chars().all(|c| c == '0') {
        t = "0".to_string();
    }
    t
}

/// The legend label of a trial's target value `y`: `target +1`, `target -1`, `target 0`
/// (zero unsigned), other values signed with their digits (`target +0.5`).
pub fn target_label(y: f64) -> String {
    if y == 0.0 {
        "target 0".to_string()
    } else {
        format!("target {y:+}")
    }
}

/// Room right of a chart for the last tick label of its x axis (half the label's width).
const RIGHT_MARGIN: u32 = 30;

/// A named line.
pub type Series = (String, Vec<(f64, f64)>);

fn range(series: &[Series], pad: f64) -> (f64, f64, f64, f64) {
    let pts = series
        .iter()
        .flat_map(|s| s.1.iter())
        .filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let dy = (y1 - y0).max(1e-9) * pad;
    (x0, x1.max(x0 + 1e-9), y0 - dy, y1 + dy)
}

/// Draws `series` as lines in one panel.
pub(crate) fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (x0, x1, y0, y1) = range(series, 0.05);
    let title = if series.len() > STYLES {
        format!("{title} (line styles repeat after {STYLES} lines)")
    } else {
        title.to_string()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let (fx, fy) = (
        |v: &f64| tick_label(*v, x1 - x0),
        |v: &f64| tick_label(*v, y1 - y0),
    );
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let (c, dashed) = line_style(i);
        let style = c.stroke_width(2);
        let drawn = if dashed {
            chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(pts.iter().copied(), style))
        };
        drawn
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                // Dashed: two short strokes with a gap between.
                let (a, b) = if dashed { (7, 11) } else { (18, 0) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (a, 0)], style)
                    + PathElement::new(vec![(b, 0), (18, 0)], style)
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// `training.png`: loss (training and validation) and accuracy (training, validation per
/// context) against the iteration.
pub fn training_curves(
    path: &Path,
    metrics: &[Metrics],
    conditions: &[&str],
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (1200, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (left, right) = root.split_horizontally(600);
    let it = |m: &Metrics| m.iteration as f64;
    let val: Vec<&Metrics> = metrics.iter().filter(|m| m.val_loss.is_some()).collect();
    let loss = vec![
        (
            "training batch".to_string(),
            metrics.iter().map(|m| (it(m), m.train_loss)).collect(),
        ),
        (
            "validation".to_string(),
            val.iter()
                .map(|m| (it(m), m.val_loss.unwrap_or(f64::NAN)))
                .collect(),
        ),
    ];
    panel(&left, "loss", "iteration", "loss", &loss)?;
    let mut acc = vec![(
        "training batch".to_string(),
        metrics
            .iter()
            .map(|m| (it(m), m.train_accuracy))
            .collect::<Vec<_>>(),
    )];
    for (c, name) in conditions.iter().enumerate() {
        acc.push((
            format!("validation {name}"),
            val.iter()
                .filter_map(|m| m.val_condition_accuracy.as_ref().map(|a| (it(m), a[c])))
                .collect(),
        ));
    }
    panel(&right, "accuracy", "iteration", "accuracy", &acc)?;
    root.present().map_err(err(path))
}

/// A PNG with one panel of lines.
pub fn lines(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    panel(&root, title, xlabel, ylabel, series)?;
    root.present().map_err(err(path))
}

/// One panel of [`flow_fields`].
#[derive(Debug, Clone)]
pub struct FlowPanel {
    /// Title.
    pub title: String,
    /// Axis names.
    pub axes: [String; 2],
    /// The flow on the panel's grid.
    pub field: crate::analysis::FlowField,
    /// Trajectories in plane coordinates.
    pub trajectories: Vec<Vec<(f64, f64)>>,
    /// Fixed points in plane coordinates, whether each is stable, and whether it is a slow
    /// point (`q` above the fixed-point tolerance).
    pub points: Vec<((f64, f64), bool, bool)>,
}

const STABLE: RGBColor = RGBColor(0, 0, 0);
const UNSTABLE: RGBColor = RGBColor(214, 39, 40);

/// `flow_field.png`: a legend of the point markers above panels (up to 4 per row) of flow
/// arrows (length growing with the speed), trajectories, and fixed points (filled black:
/// stable; open red: unstable or saddle; small grey crosses: slow points).
pub fn flow_fields(path: &Path, panels: &[FlowPanel]) -> Result<(), String> {
    font();
    let cols = panels.len().clamp(1, 4);
    let rows = panels.len().div_ceil(4).max(1);
    let root = BitMapBackend::new(path, (420 * cols as u32, 420 * rows as u32 + LEGEND))
        .into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (legend, grid) = root.split_vertically(LEGEND);
    marker_legend(&legend).map_err(err(path))?;
    let areas = grid.split_evenly((rows, cols));
    for (p, area) in panels.iter().zip(areas.iter()) {
        flow_panel(area, p).map_err(err(path))?;
    }
    root.present().map_err(err(path))
}

/// Height of the marker legend above the panels of `flow_field.png`.
const LEGEND: u32 = 30;

/// The legend of the fixed-point markers: one row of marker and name.
fn marker_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(120, 120, 120);
    let text = ("sans-serif", 15).into_font();
    let y = (LEGEND / 2) as i32;
    let entries: [(&str, u8); 3] = [
        ("stable fixed point", 0),
        ("unstable fixed point (or saddle)", 1),
        ("slow point (not a fixed point)", 2),
    ];
    let mut x = 20;
    for (name, kind) in entries {
        match kind {
            0 => area.draw(&Circle::new((x, y), 6, STABLE.filled())),
            1 => area.draw(&Circle::new((x, y), 6, UNSTABLE.stroke_width(2))),
            _ => area.draw(&Cross::new((x, y), 4, grey.stroke_width(2))),
        }
        .map_err(|e| e.to_string())?;
        area.draw(&Text::new(name, (x + 12, y - 8), text.clone()))
            .map_err(|e| e.to_string())?;
        x += 40 + 8 * name.len() as i32;
    }
    Ok(())
}

fn flow_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &FlowPanel,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let f = &p.field;
    let (x0, x1) = (f.xs[0], f.xs[f.xs.len() - 1]);
    let (y0, y1) = (f.ys[0], f.ys[f.ys.len() - 1]);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 16))
        .margin(8)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let (fx, fy) = (
        |v: &f64| tick_label(*v, x1 - x0),
        |v: &f64| tick_label(*v, y1 - y0),
    );
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(p.axes[0].as_str())
        .y_desc(p.axes[1].as_str())
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(|e| e.to_string())?;
    // Arrows: the in-plane velocity's direction on screen (each axis in units of its
    // range), their length growing with the speed.
    let (wx, wy) = (x1 - x0, y1 - y0);
    let screen = |k: usize| (f.u[k] / wx, f.v[k] / wy);
    let smax = (0..f.u.len())
        .map(|k| {
            let (a, b) = screen(k);
            a.hypot(b)
        })
        .filter(|s| s.is_finite())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let cell = 0.9 / f.xs.len().max(f.ys.len()) as f64;
    let grey = RGBColor(120, 120, 120);
    for (j, &y) in f.ys.iter().enumerate() {
        for (i, &x) in f.xs.iter().enumerate() {
            let k = j * f.xs.len() + i;
            let (a, b) = screen(k);
            let s = a.hypot(b);
            if !(s.is_finite() && s > 0.0) {
                continue;
            }
            let len = cell * (0.25 + 0.75 * (s / smax).sqrt());
            let (dx, dy) = (a / s * len * wx, b / s * len * wy);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y), (x + dx, y + dy)],
                    grey.stroke_width(1),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x + dx, y + dy),
                    2,
                    grey.filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    for (t, tr) in p.trajectories.iter().enumerate() {
        let c = line_style(t).0;
        chart
            .draw_series(LineSeries::new(tr.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    for &((x, y), stable, slow) in &p.points {
        if slow {
            chart
                .draw_series(std::iter::once(Cross::new((x, y), 4, grey.stroke_width(2))))
                .map_err(|e| e.to_string())?;
            continue;
        }
        let style = if stable {
            STABLE.filled()
        } else {
            UNSTABLE.stroke_width(2)
        };
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 6, style)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `spectrum.png`: the eigenvalues of every fixed point in the complex plane (black:
/// stable points, red: the others), with the imaginary axis.
pub fn spectrum(path: &Path, points: &[(Vec<(f64, f64)>, bool)]) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (700, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let all = points
        .iter()
        .flat_map(|p| p.0.iter())
        .filter(|e| e.0.is_finite() && e.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (-0.1f64, 0.1f64, -0.1f64, 0.1f64);
    for &(re, im) in all {
        x0 = x0.min(re);
        x1 = x1.max(re);
        y0 = y0.min(im);
        y1 = y1.max(im);
    }
    let (dx, dy) = ((x1 - x0) * 0.05, (y1 - y0) * 0.05);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Jacobian eigenvalues at the fixed points (black: stable, red: unstable)",
            ("sans-serif", 18),
        )
        .margin(10)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d((x0 - dx)..(x1 + dx), (y0 - dy)..(y1 + dy))
        .map_err(err(path))?;
    let (fx, fy) = (
        |v: &f64| tick_label(*v, x1 - x0 + 2.0 * dx),
        |v: &f64| tick_label(*v, y1 - y0 + 2.0 * dy),
    );
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("Re(lambda)")
        .y_desc("Im(lambda)")
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(err(path))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, y0 - dy), (0.0, y1 + dy)],
            BLACK.stroke_width(1),
        )))
        .map_err(err(path))?;
    for (ev, stable) in points {
        let c = if *stable { STABLE } else { UNSTABLE };
        chart
            .draw_series(
                ev.iter()
                    .map(|&(re, im)| Circle::new((re, im), 3, c.filled())),
            )
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))
}

/// One point of a bifurcation picture: `(parameter value, rate, population, stable)`.
pub type BranchPoint = (f64, f64, usize, bool);

/// `bifurcation.png`: the rates of every fixed point against the swept parameter, one
/// colour per population, filled dots for stable points and open circles for unstable ones
/// (saddles included).
pub fn bifurcation(
    path: &Path,
    parameter: &str,
    populations: usize,
    points: &[BranchPoint],
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, 1.0f64);
    for &(x, y, _, _) in points {
        (x0, x1, y1) = (x0.min(x), x1.max(x), y1.max(y));
        y0 = y0.min(y);
    }
    if x0.partial_cmp(&x1) != Some(std::cmp::Ordering::Less) {
        (x0, x1) = (x0 - 0.5, x0 + 0.5);
    }
    let pad = 0.03 * (x1 - x0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("fixed points against {parameter} (filled: stable, open: unstable)"),
            ("sans-serif", 20),
        )
        .margin(10)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0 - pad..x1 + pad, y0..y1 * 1.05)
        .map_err(|e| e.to_string())?;
    let (fx, fy) = (
        |v: &f64| tick_label(*v, x1 - x0 + 2.0 * pad),
        |v: &f64| tick_label(*v, y1 * 1.05 - y0),
    );
    chart
        .configure_mesh()
        .x_desc(parameter)
        .y_desc("rate (Hz)")
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(|e| e.to_string())?;
    for pop in 0..populations {
        let c = line_style(pop).0;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.2 == pop)
                    .map(|&(x, y, _, stable)| {
                        let style = if stable {
                            c.filled()
                        } else {
                            c.stroke_width(1)
                        };
                        Circle::new((x, y), if stable { 2 } else { 3 }, style)
                    }),
            )
            .map_err(|e| e.to_string())?
            .label(format!("population {pop}"))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(err(path))
}

/// `multistability.png`: a two-parameter sweep's grid, each cell shaded by its number of
/// stable fixed points (white: none, light to dark: one, two, three or more) and labelled
/// with it.
pub fn stability_map(
    path: &Path,
    names: [&str; 2],
    axes: [&[f64]; 2],
    stable_counts: &[i64],
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let edges = |v: &[f64]| -> Vec<f64> {
        if v.len() == 1 {
            return vec![v[0] - 0.5, v[0] + 0.5];
        }
        let mut e = vec![v[0] - 0.5 * (v[1] - v[0])];
        e.extend(v.windows(2).map(|w| 0.5 * (w[0] + w[1])));
        e.push(v[v.len() - 1] + 0.5 * (v[v.len() - 1] - v[v.len() - 2]));
        e
    };
    let (ex, ey) = (edges(axes[0]), edges(axes[1]));
    let (x0, x1) = (ex[0].min(ex[ex.len() - 1]), ex[0].max(ex[ex.len() - 1]));
    let (y0, y1) = (ey[0].min(ey[ey.len() - 1]), ey[0].max(ey[ey.len() - 1]));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "stable fixed points per set (white 0, light 1, mid 2, dark 3 or more)",
            ("sans-serif", 20),
        )
        .margin(10)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let (fx, fy) = (
        |v: &f64| tick_label(*v, x1 - x0),
        |v: &f64| tick_label(*v, y1 - y0),
    );
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(names[0])
        .y_desc(names[1])
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(|e| e.to_string())?;
    let ny = axes[1].len();
    let shade = |c: i64| match c {
        0 => RGBColor(255, 255, 255),
        1 => RGBColor(198, 219, 239),
        2 => RGBColor(107, 174, 214),
        _ => RGBColor(33, 113, 181),
    };
    chart
        .draw_series(stable_counts.iter().enumerate().map(|(k, &c)| {
            let (i, j) = (k / ny, k % ny);
            Rectangle::new([(ex[i], ey[j]), (ex[i + 1], ey[j + 1])], shade(c).filled())
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(err(path))
}
