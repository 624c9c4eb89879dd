//! The P1 family over a grid of sizes (`benches/problems/mod.rs`: P1's formulas with `N`
//! units and `nb` trials): Tsit5 forward solves and gradients (`L = ½ |x(100)|²` w.r.t.
//! M, N, B and x0), f64 and f32, one line per cell in the format of
//! `benches/external/grid_diffrax.py`, so that `benches/external/compare_grid.sh` can set
//! the two side by side. Also the work–precision sweep (`--work-precision`): for each
//! rtol, the median time and the saved states, written as `.npy` files
//! (`neurode_<controller>_<prec>_rtol<rtol>.npy`, shape `(10, nb, N)`) for
//! `benches/external/wp_table.py` (through `benches/external/compare_wp.sh`) to score
//! against one reference.
//!
//! ```text
//! cargo bench --bench grid -- [--sizes 100,500,2000] [--trials 1,32,256]
//!     [--precisions f64,f32] [--modes forward,gradient] [--reps 7] [--max-seconds 20]
//!     [--rtol 1e-6] [--atol 1e-8] [--threads 2] [--controller i|pi]
//! cargo bench --bench grid -- --floor [--sizes ...]   # the products alone
//! cargo bench --bench grid -- --work-precision --sizes 500 --trials 32
//!     --rtols 1e-3,1e-4,...,1e-10 [--atol-ratio 1e-2] --save-states DIR
//! ```
//!
//! Each line: `neurode grid N=.. nb=.. prec=.. mode=.. median_ms=.. min_ms=.. reps=..
//! steps=.. accepted=.. rejected=.. check=..`, where `steps` are the most any trial took
//! (accepted + rejected), `check` is the exact sum of x(100) (forward) or of dL/dx0
//! (gradient). Each cell is warmed up once, then timed `--reps` times (fewer, but at least
//! 3, when a run takes over `--max-seconds`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use neurode_models::LowRankRnn;
use neurode_solvers::{integrate, Integrate, PiController, Real};

#[allow(dead_code)]
mod problems;
use problems::{fsum, T1};

struct Args {
    sizes: Vec<usize>,
    trials: Vec<usize>,
    precisions: Vec<String>,
    modes: Vec<String>,
    reps: usize,
    max_seconds: f64,
    rtol: f64,
    atol: f64,
    threads: usize,
    work_precision: bool,
    rtols: Vec<f64>,
    atol_ratio: f64,
    save_states: Option<PathBuf>,
    controller: PiController,
    floor: bool,
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> Vec<T> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{what}: cannot read {v:?}"))
        })
        .collect()
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![100, 500, 2000],
        trials: vec![1, 32, 256],
        precisions: vec!["f64".into(), "f32".into()],
        modes: vec!["forward".into(), "gradient".into()],
        reps: 7,
        max_seconds: 20.0,
        rtol: 1e-6,
        atol: 1e-8,
        threads: 2,
        work_precision: false,
        rtols: (3..=10).map(|k| 10f64.powi(-k)).collect(),
        atol_ratio: 1e-2,
        save_states: None,
        controller: PiController::default(),
        floor: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = || {
            v.get(i + 1)
                .unwrap_or_else(|| panic!("{} needs a value", v[i]))
                .clone()
        };
        let mut took = true;
        match v[i].as_str() {
            "--sizes" => a.sizes = list(&next(), "--sizes"),
            "--trials" => a.trials = list(&next(), "--trials"),
            "--precisions" => a.precisions = list(&next(), "--precisions"),
            "--modes" => a.modes = list(&next(), "--modes"),
            "--reps" => a.reps = list(&next(), "--reps")[0],
            "--max-seconds" => a.max_seconds = list(&next(), "--max-seconds")[0],
            "--rtol" => a.rtol = list(&next(), "--rtol")[0],
            "--atol" => a.atol = list(&next(), "--atol")[0],
            "--threads" => a.threads = list(&next(), "--threads")[0],
            "--rtols" => a.rtols = list(&next(), "--rtols"),
            "--atol-ratio" => a.atol_ratio = list(&next(), "--atol-ratio")[0],
            "--save-states" => a.save_states = Some(PathBuf::from(next())),
            "--controller" => {
                a.controller = match next().as_str() {
                    "i" => PiController::default(),
                    // Tsit5: q = embedded order + 1 = 5.
                    "pi" => PiController::pi(5.0),
                    other => panic!("--controller: {other:?} is not i or pi"),
                }
            }
            "--beta1" => a.controller.beta1 = Some(list(&next(), "--beta1")[0]),
            "--beta2" => a.controller.beta2 = Some(list(&next(), "--beta2")[0]),
            "--safety" => a.controller.safety = list(&next(), "--safety")[0],
            "--work-precision" => {
                a.work_precision = true;
                took = false;
            }
            "--floor" => {
                a.floor = true;
                took = false;
            }
            // cargo bench passes `--bench`.
            "--bench" => took = false,
            other => panic!("unknown option {other:?} (see the options in benches/grid.rs)"),
        }
        i += if took { 2 } else { 1 };
    }
    a
}

fn build<'a, T: Real>(
    m: &'a LowRankRnn<T>,
    x0: &[T],
    rtol: f64,
    atol: f64,
    a: &Args,
) -> Integrate<'a, LowRankRnn<T>> {
    integrate(m, (T::zero(), T::from_f64(T1)))
        .x0(x0.to_vec())
        .save_at(problems::save_times::<T>())
        .tolerances(T::from_f64(rtol), T::from_f64(atol))
        .controller(a.controller)
        .threads(a.threads)
}

/// What one cell solves: a forward solve or a gradient, at these tolerances.
#[derive(Clone, Copy)]
struct Case {
    gradient: bool,
    rtol: f64,
    atol: f64,
}

/// One run: (seconds, most steps of a trial, accepted, rejected, check).
fn run_once<T: Real>(
    m: &LowRankRnn<T>,
    x0: &[T],
    a: &Args,
    case: Case,
) -> (f64, usize, usize, usize, f64) {
    let Case {
        gradient,
        rtol,
        atol,
    } = case;
    let start = Instant::now();
    let b = build(m, x0, rtol, atol, a);
    let (sol, check) = if gradient {
        let (sol, tape) = b.run_with_gradient().expect("P1-family solve");
        let dl = problems::loss_grad_sized(sol.states(), x0.len());
        let g = tape.backward(&dl).expect("P1-family backward");
        black_box(&g.params);
        let c = fsum(g.x0.iter().map(|v| v.as_f64()));
        (sol, c)
    } else {
        let sol = b.run().expect("P1-family solve");
        black_box(sol.final_states());
        (sol, f64::NAN)
    };
    let el = start.elapsed().as_secs_f64();
    let check = if gradient {
        check
    } else {
        fsum(sol.final_states().iter().map(|v| v.as_f64()))
    };
    let nb = sol.batch();
    let st: Vec<_> = (0..nb).map(|b| sol.trial_stats(b)).collect();
    let most = st
        .iter()
        .map(|s| s.accepted + s.rejected)
        .max()
        .unwrap_or(0);
    let acc = st.iter().map(|s| s.accepted).max().unwrap_or(0);
    let rej = st.iter().map(|s| s.rejected).max().unwrap_or(0);
    (el, most, acc, rej, check)
}

/// (median ms, min ms, reps, the last run's stats)
fn time_cell<T: Real>(
    m: &LowRankRnn<T>,
    x0: &[T],
    a: &Args,
    case: Case,
) -> (f64, f64, usize, (usize, usize, usize, f64)) {
    let first = run_once(m, x0, a, case);
    let mut ts = Vec::new();
    let mut last = first;
    for k in 0..a.reps.max(3) {
        last = run_once(m, x0, a, case);
        ts.push(last.0 * 1e3);
        if k >= 2 && last.0 > a.max_seconds {
            break;
        }
    }
    let n = ts.len();
    let mut s = ts.clone();
    s.sort_by(f64::total_cmp);
    (s[n / 2], s[0], n, (last.1, last.2, last.3, last.4))
}

fn grid<T: Real>(a: &Args, n: usize, nb: usize) {
    let (m, x0) = problems::problem_sized::<T>(n, nb);
    for mode in &a.modes {
        let gradient = mode == "gradient";
        let (med, min, reps, (steps, acc, rej, check)) = time_cell(
            &m,
            &x0,
            a,
            Case {
                gradient,
                rtol: a.rtol,
                atol: a.atol,
            },
        );
        println!(
            "neurode grid N={n} nb={nb} prec={} mode={mode} median_ms={med:.3} min_ms={min:.3} \
             reps={reps} steps={steps} accepted={acc} rejected={rej} check={check:.17e}",
            T::NAME
        );
    }
}

/// Writes `saved` (`10` saves of `n x nb` column-major) as a `(10, nb, n)` array.
fn write_states<T: Real>(path: &std::path::Path, saved: &[T], n: usize, nb: usize) {
    let v: Vec<f64> = saved.iter().map(|v| v.as_f64()).collect();
    let arr = ndarray::Array3::from_shape_vec((saved.len() / (n * nb), nb, n), v)
        .expect("saves x trials x units");
    ndarray_npy::write_npy(path, &arr).expect("writing the saved states");
}

/// Per trial, the largest `|x - ref|` over the saves and units: (worst, median) over trials.
fn errors<T: Real>(saved: &[T], reference: &[f64], n: usize, nb: usize) -> (f64, f64) {
    let mut e = vec![0f64; nb];
    for (k, (x, r)) in saved.iter().zip(reference).enumerate() {
        let b = (k / n) % nb;
        e[b] = e[b].max((x.as_f64() - r).abs());
    }
    e.sort_by(f64::total_cmp);
    (e[nb - 1], e[nb / 2])
}

fn work_precision<T: Real>(a: &Args, n: usize, nb: usize) {
    let (m, x0) = problems::problem_sized::<T>(n, nb);
    // A tight f64 solve of the same problem (default controller), for a first look;
    // `benches/external/wp_table.py` scores the saved states against an independent
    // reference (diffrax's Dopri8) instead.
    let (m64, x64) = problems::problem_sized::<f64>(n, nb);
    let reference = integrate(&m64, (0.0, T1))
        .x0(x64)
        .save_at(problems::save_times::<f64>())
        .tolerances(1e-12, 1e-14)
        .threads(a.threads)
        .run()
        .expect("the reference solve")
        .states()
        .to_vec();
    for &rtol in &a.rtols {
        let atol = rtol * a.atol_ratio;
        let (med, _, _, (steps, _, _, _)) = time_cell(
            &m,
            &x0,
            a,
            Case {
                gradient: false,
                rtol,
                atol,
            },
        );
        let sol = build(&m, &x0, rtol, atol, a)
            .run()
            .expect("P1-family solve");
        let ctl = if a.controller == PiController::pi(5.0) {
            "pi"
        } else {
            "i"
        };
        let file = format!("neurode_{ctl}_{}_rtol{rtol:e}.npy", T::NAME);
        if let Some(dir) = &a.save_states {
            std::fs::create_dir_all(dir).expect("the states' folder");
            write_states(&dir.join(&file), sol.states(), n, nb);
        }
        let (worst, median) = errors(sol.states(), &reference, n, nb);
        println!(
            "neurode wp controller={ctl} N={n} nb={nb} prec={} rtol={rtol:e} atol={atol:e} median_ms={med:.3} \
             steps={steps} worst_err={worst:.3e} median_err={median:.3e} (against neurode \
             rtol 1e-12) states={file}",
            T::NAME
        );
    }
}

/// The products alone: a solve's weight products (`C h`, `N x N` by the columns it
/// evaluated, at the solve's own column counts) timed bare on the same threads, against
/// the solve. With blocks each thread multiplies its half of the columns; a team shares
/// each product by rows; one trial takes the matrix-vector kernel.
fn floor<T: Real>(a: &Args, n: usize, nb: usize) {
    use neurode_solvers::{with_team, Backend, Cpu, Panels, VectorField};
    let (m, x0) = problems::problem_sized::<T>(n, nb);
    let (med, _, _, _) = time_cell(
        &m,
        &x0,
        a,
        Case {
            gradient: false,
            rtol: a.rtol,
            atol: a.atol,
        },
    );
    let sol = build(&m, &x0, a.rtol, a.atol, a)
        .run()
        .expect("P1-family solve");
    let cols = sol.stats().columns;
    let panels = Panels::from_col_major(n, n, m.connectivity().bulk());
    // The solver's own layout on these threads: blocks of trials, or one solver and a team.
    let (parts, team) = neurode_solvers::layout(nb, n, m.work_per_column(), a.threads);
    let blocks = parts.len() > 1;
    let threads = if blocks { parts.len() } else { team };
    let per = if blocks { nb / threads } else { nb };
    let h: Vec<T> = (0..n * per)
        .map(|k| T::from_f64(((k % 7) as f64 - 3.0) * 0.1))
        .collect();
    let product = |out: &mut [T]| {
        if per == 1 {
            Cpu.gemv_panels(&panels, &h, out);
        } else {
            Cpu.gemm_panels(&panels, per, T::one(), &h, n, T::zero(), out, n);
        }
    };
    let reps = (2_000_000_000 / (n * n * per)).clamp(5, 2000);
    let time = || {
        let mut out = vec![T::zero(); n * per];
        product(&mut out);
        let start = Instant::now();
        for _ in 0..reps {
            product(&mut out);
            black_box(&out);
        }
        start.elapsed().as_secs_f64() / reps as f64
    };
    let one = if blocks {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(time)).collect();
            hs.into_iter()
                .map(|h| h.join().expect("a product thread"))
                .fold(0f64, f64::max)
        })
    } else {
        with_team(threads, time)
    };
    // Products of `per` columns the solve needed: its columns over `per` (blocks: each
    // thread's share).
    let products = cols as f64 / (per * if blocks { threads } else { 1 }) as f64;
    let fl = one * products * 1e3;
    println!(
        "neurode floor N={n} nb={nb} prec={} solve_ms={med:.3} columns={cols} \
         products_alone_ms={fl:.3} ({}) solve/products={:.2}",
        T::NAME,
        if blocks {
            format!("{threads} blocks of {per} columns")
        } else if per == 1 {
            format!("matrix-vector, team of {threads}")
        } else {
            format!("{per} columns, team of {threads}")
        },
        med / fl
    );
}

fn main() {
    let a = args();
    problems::check_generator();
    println!(
        "# neurode grid: threads {} reps {} rtol {:e} atol {:e}",
        a.threads, a.reps, a.rtol, a.atol
    );
    for &n in &a.sizes {
        for &nb in &a.trials {
            let ar = problems::arrays_sized(n, nb);
            println!(
                "neurode grid inputs N={n} nb={nb} sum_C={:.17e} sum_x0={:.17e}",
                fsum(ar.c.iter().copied()),
                fsum(ar.x0.iter().copied())
            );
            for p in &a.precisions {
                match (p.as_str(), a.work_precision) {
                    ("f64", false) if a.floor => floor::<f64>(&a, n, nb),
                    ("f32", false) if a.floor => floor::<f32>(&a, n, nb),
                    ("f64", false) => grid::<f64>(&a, n, nb),
                    ("f32", false) => grid::<f32>(&a, n, nb),
                    ("f64", true) => work_precision::<f64>(&a, n, nb),
                    ("f32", true) => work_precision::<f32>(&a, n, nb),
                    (other, _) => panic!("--precisions: {other:?} is not f64 or f32"),
                }
            }
        }
    }
}
