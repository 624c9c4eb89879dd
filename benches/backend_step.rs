//! One adaptive Tsit5 step of a batch, built from the backend seam's operations alone, on
//! any backend, beside the step's stage GEMMs timed alone on the same backend (acceptance 5
//! of the CUDA issue asks for a step within 2x its GEMMs on the GPU).
//!
//! The network is the leaky tanh RNN `x' = (-x + W tanh(x)) / tau` with a dense `N x N`
//! weight matrix kept for products: the bulk product of the low-rank network
//! (`g C`, `N x N`) has the same shape, and its rank-r terms are thin. One step: for the
//! six stages after the first (first same as last), the stage state
//! (`combine_columns` with the tableau's terms and each trial's step size), `tanh`, the
//! product and the leak (`gemm_panels` scaled by `1/tau`, then `axpy`); the error norms
//! (`error_norms`), downloaded to the host (the one batch-length vector that crosses per
//! step); the accepted trials' states copied (`combine_columns` with no terms, masked by the
//! accept flags, uploaded). Every trial takes the same step here (the bench measures the
//! arithmetic, not the controller).
//!
//! `cargo bench --bench backend_step -- [--backend cpu|cuda] [--n 500] [--batch 4096]
//! [--precision f32,f64] [--reps 5]` (CUDA needs `--features cuda` and a device; without one
//! the CUDA run says why and exits with status 1).

use std::time::Instant;

use neurode_solvers::{Activation, Backend, Cpu, Cuda, Real, Terms, TSIT5};

struct Args {
    backend: String,
    n: usize,
    batch: usize,
    precisions: Vec<String>,
    reps: usize,
}

fn args() -> Args {
    let mut a = Args {
        backend: "cpu".into(),
        n: 500,
        batch: 4096,
        precisions: vec!["f32".into(), "f64".into()],
        reps: 5,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || {
            argv.get(i + 1)
                .unwrap_or_else(|| panic!("{} needs a value", argv[i]))
                .clone()
        };
        let number = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{}: not a whole number: {v}", argv[i]))
        };
        match argv[i].as_str() {
            "--bench" => {
                i += 1;
                continue;
            }
            "--backend" => a.backend = value(),
            "--n" => a.n = number(value()),
            "--batch" => a.batch = number(value()),
            "--reps" => a.reps = number(value()).max(1),
            "--precision" => a.precisions = value().split(',').map(String::from).collect(),
            other => panic!("unknown option {other}; see the header of benches/backend_step.rs"),
        }
        i += 2;
    }
    a
}

/// The time constant, and the step every trial takes.
const TAU: f64 = 10.0;
const H: f64 = 0.25;

/// A deterministic value in about [-1, 1].
fn val(i: usize, s: usize) -> f64 {
    ((i * 7919 + s * 104_729) % 2003) as f64 / 1001.5 - 1.0
}

fn upload<T: Real, B: Backend<T>>(b: &B, host: &[T]) -> B::Buffer {
    let mut buf = b.zeros(host.len()).expect("the backend holds the buffer");
    b.upload(host, b.view_mut(&mut buf, 0..host.len()));
    buf
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times a Tsit5 step and its GEMMs alone; returns (step ms, GEMMs ms, mean error norm).
fn measure<T: Real, B: Backend<T>>(b: &B, n: usize, nb: usize, reps: usize) -> (f64, f64, f64) {
    let s = TSIT5.stages;
    let len = n * nb;
    let scale = 1.5 / (n as f64).sqrt();
    let w: Vec<T> = (0..n * n).map(|i| T::from_f64(val(i, 1) * scale)).collect();
    let x0: Vec<T> = (0..len).map(|i| T::from_f64(val(i, 2))).collect();
    let w = b.matrix(n, n, &w).expect("the backend holds W");
    let mut x = upload(b, &x0);
    let mut x_new = b.zeros(len).unwrap();
    let mut xs = b.zeros(len).unwrap();
    let mut phi = b.zeros(len).unwrap();
    let mut k = b.zeros(len * s).unwrap();
    let mut norms = b.zeros(nb).unwrap();
    let hbuf = upload(b, &vec![T::from_f64(H); nb]);
    let mut accept = b.zeros(nb).unwrap();
    let mut norms_host = vec![T::zero(); nb];
    let mut accept_host = vec![T::zero(); nb];
    let inv_tau = T::from_f64(1.0 / TAU);
    let (rtol, atol) = (T::from_f64(1e-6), T::from_f64(1e-8));
    let stage_terms: Vec<Terms<T>> = (0..s).map(|i| TSIT5.stage_terms(i)).collect();
    let solution = TSIT5.solution_terms::<T>();
    let error = TSIT5
        .error_terms::<T>()
        .expect("Tsit5 has an error estimate");

    // k_i = (W tanh(X) - X) / tau for the stage state `src` into stage block `i`.
    let rhs = |b: &B, src: &B::Buffer, phi: &mut B::Buffer, k: &mut B::Buffer, i: usize| {
        b.activate_to(
            Activation::Tanh,
            b.view(src, 0..len),
            b.view_mut(phi, 0..len),
        );
        let ki = i * len..(i + 1) * len;
        b.gemm_panels(
            &w,
            nb,
            inv_tau,
            b.view(phi, 0..len),
            n,
            T::zero(),
            b.view_mut(k, ki.clone()),
            n,
        );
        b.axpy(-inv_tau, b.view(src, 0..len), b.view_mut(k, ki));
    };
    rhs(b, &x, &mut phi, &mut k, 0);
    let mut step = |x: &mut B::Buffer, k: &mut B::Buffer| {
        for (i, terms) in stage_terms.iter().enumerate().skip(1) {
            b.combine_columns(
                terms,
                n,
                nb,
                b.view(&hbuf, 0..nb),
                b.view(x, 0..len),
                b.view(k, 0..len * s),
                len,
                b.view_mut(&mut xs, 0..len),
            );
            rhs(b, &xs, &mut phi, k, i);
        }
        b.combine_columns(
            &solution,
            n,
            nb,
            b.view(&hbuf, 0..nb),
            b.view(x, 0..len),
            b.view(k, 0..len * s),
            len,
            b.view_mut(&mut x_new, 0..len),
        );
        b.error_norms(
            &error,
            n,
            nb,
            b.view(&hbuf, 0..nb),
            rtol,
            atol,
            b.view(x, 0..len),
            b.view(&x_new, 0..len),
            b.view(k, 0..len * s),
            len,
            b.view_mut(&mut norms, 0..nb),
        );
        b.download(b.view(&norms, 0..nb), &mut norms_host)
            .expect("no device error");
        for (a, &e) in accept_host.iter_mut().zip(&norms_host) {
            *a = if e <= T::one() { T::one() } else { T::zero() };
        }
        b.upload(&accept_host, b.view_mut(&mut accept, 0..nb));
        b.combine_columns(
            &Terms::new(),
            n,
            nb,
            b.view(&accept, 0..nb),
            b.view(&x_new, 0..len),
            b.view(k, 0..len * s),
            len,
            b.view_mut(x, 0..len),
        );
        b.synchronize().expect("no device error");
    };
    step(&mut x, &mut k); // warm-up
    let mut step_ms = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        step(&mut x, &mut k);
        step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let mean_norm = norms_host.iter().map(|v| v.as_f64()).sum::<f64>() / nb as f64;
    let mut gemm_ms = Vec::new();
    for _ in 0..=reps {
        let t0 = Instant::now();
        for i in 1..s {
            let ki = i * len..(i + 1) * len;
            b.gemm_panels(
                &w,
                nb,
                inv_tau,
                b.view(&phi, 0..len),
                n,
                T::zero(),
                b.view_mut(&mut k, ki),
                n,
            );
        }
        b.synchronize().expect("no device error");
        gemm_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    gemm_ms.remove(0);
    (median(step_ms), median(gemm_ms), mean_norm)
}

fn report<T: Real, B: Backend<T>>(b: &B, prec: &str, a: &Args) {
    let (step, gemms, norm) = measure::<T, B>(b, a.n, a.batch, a.reps);
    let flops = 2.0 * (TSIT5.stages - 1) as f64 * (a.n * a.n * a.batch) as f64;
    println!(
        "backend_step backend={} N={} batch={} prec={prec} step_ms={step:.3} gemms_ms={gemms:.3} \
         step/gemms={:.2} gemm_gflops={:.1} trial_steps_per_s={:.0} mean_error_norm={norm:.4e}",
        b.name(),
        a.n,
        a.batch,
        step / gemms,
        flops / gemms / 1e6,
        a.batch as f64 / step * 1e3,
    );
}

fn run_on<B: Backend<f32> + Backend<f64>>(b: &B, a: &Args) {
    for p in &a.precisions {
        match p.as_str() {
            "f32" => report::<f32, B>(b, "f32", a),
            "f64" => report::<f64, B>(b, "f64", a),
            other => panic!("--precision: f32 or f64, not {other}"),
        }
    }
}

fn main() {
    let a = args();
    match a.backend.as_str() {
        "cpu" => run_on(&Cpu, &a),
        "cuda" => match Cuda::new(0) {
            Ok(gpu) => {
                println!("# {gpu:?}");
                run_on(&gpu, &a)
            }
            Err(e) => {
                eprintln!("backend_step: the CUDA backend cannot run here: {e}");
                std::process::exit(1);
            }
        },
        other => panic!("--backend: cpu or cuda, not {other}"),
    }
}
