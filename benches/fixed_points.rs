//! Fixed-point search from 1,024 initial states on an N = 500 low-rank network (acceptance
//! 5 of the analysis issue): the time of the whole search (Newton-GMRES on all states at
//! once, deduplication, Newton polish and linearisation of each distinct point)
//! and the number of distinct points found, by stability.
//!
//! The default network is built here, so the bench needs nothing else: a rank-2 network
//! `W = g C + M Nᵀ/N` with `g = 0.8`, `N = 2.2 M` (each rank direction self-exciting, so
//! the overlaps `κ` have several fixed points), `τ = 1`, no input. `--run DIR` benches a
//! trained run's network instead (its first input condition of fresh trials, as
//! `neurode analyze` does).
//!
//! `cargo bench --bench fixed_points` (`-- --rounds 3`, `-- --run runs/lowrank_context_switch`).

use std::collections::BTreeMap;
use std::time::Instant;

use neurode::analysis::{find_fixed_points, FixedPointOptions, Probe};
use neurode::analyze::{analyze, AnalyzeOptions};
use neurode_models::{LeakyRnn, LowRank};
use neurode_solvers::{Normal, PiecewiseConstant};

const N: usize = 500;
const INITS: usize = 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize);
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--run")
        .and_then(|i| args.get(i + 1))
    {
        let opts = AnalyzeOptions {
            run_dir: dir.into(),
            out: Some(std::env::temp_dir().join("neurode-bench-fixed-points")),
            inits: INITS,
            ..AnalyzeOptions::default()
        };
        let start = Instant::now();
        let res = analyze(&opts, &|_, _| {}).expect("a run directory");
        let secs = start.elapsed().as_secs_f64();
        let points: usize = res.groups.iter().map(|g| g.found.points.len()).sum();
        println!(
            "fixed_points: {dir}: {} input conditions x {INITS} initial states (plus simulation and plots) in {secs:.2} s: {points} distinct points",
            res.groups.len()
        );
        return;
    }
    let mut rng = Normal::new(11);
    let c: Vec<f64> = (0..N * N)
        .map(|_| rng.sample() / (N as f64).sqrt())
        .collect();
    let m: Vec<f64> = (0..N * 2).map(|_| rng.sample()).collect();
    let nv: Vec<f64> = m.iter().map(|&v| 2.2 * v).collect();
    let conn = LowRank::new(N, 2, 0.8, c, m.clone(), nv).expect("valid arrays");
    let mut rnn = LeakyRnn::new(conn, 1.0, 1, vec![0.0; N]).expect("valid network");
    rnn.set_inputs(vec![
        PiecewiseConstant::new(1, vec![], vec![0.0]).expect("one piece")
    ])
    .expect("one channel");
    // Initial states spread over the κ plane (κ in [-2, 2]²) plus unit-scale noise.
    let mut inits = Vec::with_capacity(N * INITS);
    for _ in 0..INITS {
        let (k1, k2) = (4.0 * rng.uniform() - 2.0, 4.0 * rng.uniform() - 2.0);
        for i in 0..N {
            inits.push(k1 * m[i] + k2 * m[N + i] + 0.3 * rng.sample());
        }
    }
    let opts = FixedPointOptions::default();
    println!("fixed_points: {INITS} initial states, N = {N} rank-2 network, f64, {rounds} rounds");
    let mut times = Vec::new();
    for round in 0..rounds {
        let start = Instant::now();
        let found = find_fixed_points(&rnn, &Probe::new(0, 0.0), &inits, &opts).expect("search");
        let secs = start.elapsed().as_secs_f64();
        times.push(secs);
        if round == 0 {
            let mut kinds = BTreeMap::new();
            for p in found.points.iter().filter(|p| !p.slow) {
                *kinds.entry(format!("{:?}", p.stability)).or_insert(0) += 1;
            }
            let slow = found.points.iter().filter(|p| p.slow).count();
            println!(
                "  {} distinct points ({kinds:?} fixed points; {slow} slow points), {} of {INITS} states converged, {} outliers",
                found.points.len(),
                found.n_converged,
                found.n_outliers,
            );
            for p in &found.points {
                let kappa = |r: usize| -> f64 {
                    p.x.iter()
                        .zip(&m[r * N..(r + 1) * N])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                        / N as f64
                };
                println!(
                    "    {} {:?} at kappa ({:+.3}, {:+.3}), q {:.1e}, {} iterations, {} states",
                    if p.slow { "slow point " } else { "fixed point" },
                    p.stability,
                    kappa(0),
                    kappa(1),
                    p.q,
                    p.iterations,
                    p.count
                );
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  search time: median {:.2} s (min {:.2}, max {:.2})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
