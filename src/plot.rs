//! PNG plots of runs (plotters, bitmap backend, with an embedded font so that no system
//! fontconfig is needed): training curves and readout traces of example trials.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::train::Metrics;

/// DejaVu Sans, subset to ASCII (see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font (checked by the plot tests); a failure would only
        // leave text out.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A plotting failure, as text (plotters' errors are generic over the backend).
fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("cannot draw {}: {e}", path.display())
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

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
fn panel<DB: DrawingBackend>(
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
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
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
