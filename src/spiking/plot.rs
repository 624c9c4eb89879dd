//! The spiking run's pictures: the raster ordered by cluster and the population rates.

use std::path::Path;

use ndarray::Array2;
use neurode_models::spiking::{Blocks, Class};
use plotters::prelude::*;

use crate::plot::{err, font, panel, tick_label, Series, PALETTE};

/// The colour of block `b`: E clusters cycle through the palette, the E background is
/// grey, inhibitory blocks are dark red.
fn block_colour(blocks: &Blocks, b: usize) -> RGBColor {
    match (blocks.class(b), blocks.cluster(b)) {
        (Class::E, Some(k)) => PALETTE[k % 10],
        (Class::E, None) => RGBColor(110, 110, 110),
        (Class::I, _) => RGBColor(150, 20, 20),
    }
}

/// `raster.png`: one dot per spike, neurons top to bottom in block order (E clusters, E
/// background, I clusters, I background), coloured by block.
pub fn raster(
    path: &Path,
    spikes: &[(u32, u32)],
    blocks: &Blocks,
    dt: f64,
    steps: usize,
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let t1 = steps as f64 * dt;
    let n = blocks.neurons() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("spike raster ({} spikes), ordered by cluster", spikes.len()),
            ("sans-serif", 22),
        )
        .margin(10)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t1, n..0.0)
        .map_err(|e| e.to_string())?;
    let (fx, fy) = (|v: &f64| tick_label(*v, t1), |v: &f64| tick_label(*v, n));
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (s)")
        .y_desc("neuron")
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(|e| e.to_string())?;
    let labels = blocks.labels();
    let colours: Vec<RGBColor> = (0..blocks.len()).map(|b| block_colour(blocks, b)).collect();
    chart
        .draw_series(spikes.iter().map(|&(k, j)| {
            Pixel::new(
                ((k as f64 + 1.0) * dt, j as f64 + 0.5),
                colours[labels[j as usize] as usize],
            )
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(err(path))
}

/// Most columns of the heat map in `rates.png`.
const MAX_COLUMNS: usize = 2000;

/// `rates.png`: above, every block's rate over time as a heat map (blocks top to bottom,
/// darker = faster; the colour bar's top is the fastest bin); below, the mean rate of
/// each group of blocks (E clusters, E background, I clusters, I background).
pub fn rates(
    path: &Path,
    times: &[f64],
    rates: &Array2<f64>,
    blocks: &Blocks,
) -> Result<(), String> {
    font();
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (top, bottom) = root.split_vertically(450);
    let nb = blocks.len();
    let max = rates
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let t1 = times.last().copied().unwrap_or(1.0) + times.first().copied().unwrap_or(0.0);
    {
        let mut chart = ChartBuilder::on(&top)
            .caption(
                format!("rate per block (Hz; white 0, black {max:.1})"),
                ("sans-serif", 20),
            )
            .margin(10)
            .margin_right(30)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t1, nb as f64..0.0)
            .map_err(|e| e.to_string())?;
        // Block boundaries only: whole numbers, at most about 20 of them.
        let (fx, fy) = (
            |v: &f64| tick_label(*v, t1),
            |v: &f64| {
                if (v - v.round()).abs() < 1e-9 {
                    format!("{}", v.round() as i64)
                } else {
                    String::new()
                }
            },
        );
        chart
            .configure_mesh()
            .disable_mesh()
            .y_labels(nb.min(20) + 1)
            .x_desc("time (s)")
            .y_desc("block from its top (E clusters, E bg, I clusters, I bg)")
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .draw()
            .map_err(|e| e.to_string())?;
        // At most MAX_COLUMNS columns of cells: bins merged (their rates averaged) beyond.
        let merge = times.len().div_ceil(MAX_COLUMNS).max(1);
        let width = if times.len() > 1 {
            (times[1] - times[0]) * merge as f64
        } else {
            t1
        };
        let mut cells = Vec::with_capacity(times.len().div_ceil(merge) * nb);
        for (c, chunk) in times.chunks(merge).enumerate() {
            let t = chunk[0] - width / (2.0 * merge as f64);
            for b in 0..nb {
                let rows = c * merge..c * merge + chunk.len();
                let v = rows.map(|r| rates[[r, b]]).sum::<f64>() / chunk.len() as f64;
                let shade = if max > 0.0 && v.is_finite() {
                    (255.0 * (1.0 - v / max)).round() as u8
                } else {
                    255
                };
                let colour = RGBColor(shade, shade, shade);
                cells.push(Rectangle::new(
                    [(t, b as f64), (t + width, b as f64 + 1.0)],
                    colour.filled(),
                ));
            }
        }
        chart.draw_series(cells).map_err(|e| e.to_string())?;
    }
    let series: Vec<Series> = super::run::groups(blocks)
        .into_iter()
        .map(|(name, members)| {
            let pts = times
                .iter()
                .enumerate()
                .map(|(r, &t)| {
                    let row: Vec<f64> = (0..nb).map(|b| rates[[r, b]]).collect();
                    (t, super::run::group_mean(blocks, &members, &row))
                })
                .collect();
            (name.to_string(), pts)
        })
        .collect();
    panel(
        &bottom,
        "mean rate per group",
        "time (s)",
        "rate (Hz)",
        &series,
    )?;
    root.present().map_err(err(path))
}
