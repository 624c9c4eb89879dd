//! The LIF mean field's costs: the transfer function (a rate, and a rate with its
//! derivatives) per evaluation, beside one `erfcx` call (its floor: the closed-form
//! part costs two special functions, the tabulated integral a few look-ups); and the
//! template's sweep of 1,000 parameter sets (every fixed point of each) on all cores and on
//! one. The original's solver on the same sets: `benches/external/compare_meanfield.sh`.
//!
//! `cargo bench --bench meanfield` (`-- --rounds 5`).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use errorfunctions::RealErrorFunctions;
use neurode::meanfield::MeanFieldConfig;
use neurode_models::meanfield::{sweep, Lif, Mode, SolveOptions, Sweep};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize);
    // Inputs spread over the template's range: μ in [0, 12], σ in [2, 4].
    let lif = Lif {
        threshold: 4.86,
        reset: 0.0,
        tau_m: 0.02,
        tau_s: 0.005,
        tau_ref: 0.005,
    };
    let m = 200_000;
    let inputs: Vec<(f64, f64)> = (0..m)
        .map(|k| {
            (
                12.0 * (k as f64 / m as f64),
                2.0 + 2.0 * ((k * 7919) % m) as f64 / m as f64,
            )
        })
        .collect();
    let per = |f: &dyn Fn(f64, f64) -> f64| {
        median(
            (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    let mut acc = 0.0;
                    for &(mu, s) in &inputs {
                        acc += f(mu, s);
                    }
                    black_box(acc);
                    t.elapsed().as_secs_f64() / m as f64 * 1e9
                })
                .collect(),
        )
    };
    let erfcx = per(&|mu, s| ((lif.threshold - mu) / s).abs().erfcx());
    let rate = per(&|mu, s| lif.rate(mu, s));
    let response = per(&|mu, s| lif.response(mu, s).d_sigma);
    println!("meanfield/transfer: erfcx {erfcx:.1} ns, rate {rate:.1} ns ({:.1}x), rate with derivatives {response:.1} ns ({:.1}x)", rate / erfcx, response / erfcx);

    let cfg = MeanFieldConfig::load(Path::new("configs/meanfield_four_pop.toml"))
        .expect("the template config");
    let base = cfg.params().expect("valid parameters");
    let sw = Sweep::parse("nu_ext=5:9:1000", Mode::Replace).expect("a sweep");
    for threads in [0, 1] {
        let opts = SolveOptions {
            threads,
            ..SolveOptions::default()
        };
        let mut times = Vec::new();
        let mut summary = String::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let r = sweep(
                &base,
                std::slice::from_ref(&sw),
                &cfg.starts(),
                &opts,
                &|_| {},
            )
            .expect("a sweep");
            times.push(t.elapsed().as_secs_f64());
            let points: usize = r.solutions.iter().map(|s| s.points.len()).sum();
            let starts: usize = r.starts.iter().map(|s| s.len()).sum();
            summary = format!("{points} points from {starts} starts");
        }
        let med = median(times);
        println!(
            "meanfield/sweep_1000: {} thread(s): {med:.3} s ({:.1} µs per start; {summary})",
            if threads == 0 {
                "all".to_string()
            } else {
                threads.to_string()
            },
            med / 38_000.0 * 1e6
        );
    }
}
