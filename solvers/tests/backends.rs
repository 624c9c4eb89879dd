//! The backend seam's operations, each test written once and run on every backend: the CPU
//! always, CUDA where a device and its libraries are present (elsewhere the CUDA variants
//! print why they skip). The oracles are plain scalar loops in the stated order of
//! operations, so the Runge–Kutta term lists and the elementwise passes are checked bit for
//! bit; products are checked against a scalar triple loop within a stated tolerance, and
//! for independence of a column from its batch-mates bit for bit. With
//! `NEURODE_REQUIRE_CUDA=1` (as `scripts/gpu_check.sh` runs them) a CUDA variant that
//! cannot start fails instead of skipping.

// The oracles index like the formulas they state.
#![allow(clippy::needless_range_loop)]

use neurode_solvers::{Activation, Backend, Cpu, Cuda, Real, Terms, Transpose};

/// A deterministic value in about [-1, 1] for index `i` and salt `s`.
fn val<T: Real>(i: usize, s: usize) -> T {
    let x = ((i * 7919 + s * 104_729) % 2003) as f64 / 1001.5 - 1.0;
    T::from_f64(x * (1.0 + (i % 5) as f64 * 0.37))
}

fn vals<T: Real>(n: usize, s: usize) -> Vec<T> {
    (0..n).map(|i| val(i, s)).collect()
}

fn to_device<T: Real, B: Backend<T>>(b: &B, host: &[T]) -> B::Buffer {
    let mut buf = b.zeros(host.len()).expect("allocates");
    b.upload(host, b.view_mut(&mut buf, 0..host.len()));
    buf
}

fn to_host<T: Real, B: Backend<T>>(b: &B, buf: &B::Buffer) -> Vec<T> {
    let n = b.buffer_len(buf);
    let mut out = vec![T::zero(); n];
    b.download(b.view(buf, 0..n), &mut out)
        .expect("no device error");
    out
}

/// The bits of every value, any NaN as one value (a GPU's NaN payloads are its own).
fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter()
        .map(|x| {
            if x.is_nan() {
                u64::MAX
            } else {
                x.as_f64().to_bits()
            }
        })
        .collect()
}

/// Buffers hold what was uploaded, views address the right ranges (uploads, downloads and
/// operations on views that start inside a buffer), zeros are zeros.
fn transfers_round_trip<T: Real, B: Backend<T>>(b: &B) {
    let host = vals::<T>(1000, 1);
    let mut buf = to_device(b, &host);
    assert_eq!(to_host(b, &buf), host);
    let mut part = vec![T::zero(); 100];
    b.download(b.view(&buf, 300..400), &mut part).unwrap();
    assert_eq!(part, host[300..400]);
    // Upload into the middle; an operation from one range into another.
    let patch = vals::<T>(50, 19);
    b.upload(&patch, b.view_mut(&mut buf, 500..550));
    let src = to_device(b, &host);
    b.axpy(
        T::from_f64(2.0),
        b.view(&src, 10..60),
        b.view_mut(&mut buf, 700..750),
    );
    let got = to_host(b, &buf);
    let mut want = host.clone();
    want[500..550].copy_from_slice(&patch);
    for i in 0..50 {
        want[700 + i] += T::from_f64(2.0) * host[10 + i];
    }
    assert_eq!(bits(&got), bits(&want));
    let z = b.zeros(17).unwrap();
    assert!(to_host(b, &z).iter().all(|&v| v == T::zero()));
    b.synchronize().unwrap();
}

/// `combine_columns` against `x + Σ (h_c w_t) k` summed in order per element, and the
/// columns with `h = 0` left as they were.
fn combine_columns_matches_the_scalar_order<T: Real, B: Backend<T>>(b: &B) {
    let (dim, cols, stages) = (37, 9, 7);
    let stride = dim * cols;
    let x = vals::<T>(stride, 2);
    let k = vals::<T>(stride * stages, 3);
    let mut h = vals::<T>(cols, 4);
    h[3] = T::zero();
    let before = vals::<T>(stride, 5);
    let terms = Terms::from_pairs([
        (0, T::from_f64(0.2)),
        (2, T::from_f64(-1.7)),
        (6, T::from_f64(0.0625)),
    ]);
    let (xd, kd, hd) = (to_device(b, &x), to_device(b, &k), to_device(b, &h));
    let mut out = to_device(b, &before);
    b.combine_columns(
        &terms,
        dim,
        cols,
        b.view(&hd, 0..cols),
        b.view(&xd, 0..stride),
        b.view(&kd, 0..stride * stages),
        stride,
        b.view_mut(&mut out, 0..stride),
    );
    let got = to_host(b, &out);
    for c in 0..cols {
        for e in 0..dim {
            let i = c * dim + e;
            let want = if h[c] == T::zero() {
                before[i]
            } else {
                let mut acc = x[i];
                for (s, w) in terms.iter() {
                    acc += (h[c] * w) * k[s * stride + i];
                }
                acc
            };
            assert_eq!(
                got[i].as_f64().to_bits(),
                want.as_f64().to_bits(),
                "column {c}, element {e}"
            );
        }
    }
}

/// `error_norms` against the weighted RMS norm summed in element order.
fn error_norms_match_the_scalar_order<T: Real, B: Backend<T>>(b: &B) {
    let (dim, cols, stages) = (150, 6, 7);
    let stride = dim * cols;
    let x = vals::<T>(stride, 6);
    let xn = vals::<T>(stride, 7);
    let k = vals::<T>(stride * stages, 8);
    let mut h = vals::<T>(cols, 9);
    h[1] = T::zero();
    let e: Vec<T> = (0..stages)
        .map(|j| T::from_f64(0.01 * j as f64 - 0.02))
        .collect();
    let terms = Terms::from_pairs(e.iter().copied().enumerate());
    let (rtol, atol) = (T::from_f64(1e-3), T::from_f64(1e-6));
    let (xd, xnd, kd, hd) = (
        to_device(b, &x),
        to_device(b, &xn),
        to_device(b, &k),
        to_device(b, &h),
    );
    let mut out = to_device(b, &vec![T::from_f64(-1.0); cols]);
    b.error_norms(
        &terms,
        dim,
        cols,
        b.view(&hd, 0..cols),
        rtol,
        atol,
        b.view(&xd, 0..stride),
        b.view(&xnd, 0..stride),
        b.view(&kd, 0..stride * stages),
        stride,
        b.view_mut(&mut out, 0..cols),
    );
    let got = to_host(b, &out);
    for c in 0..cols {
        let want = if h[c] == T::zero() {
            T::from_f64(-1.0)
        } else {
            let mut acc = T::zero();
            for el in 0..dim {
                let i = c * dim + el;
                let mut d = T::zero();
                for (s, w) in terms.iter() {
                    d += w * k[s * stride + i];
                }
                let sc = atol + rtol * x[i].abs().max(xn[i].abs());
                let q = h[c] * d / sc;
                acc += q * q;
            }
            (acc / T::from_usize(dim)).sqrt()
        };
        assert_eq!(
            got[c].as_f64().to_bits(),
            want.as_f64().to_bits(),
            "column {c}"
        );
    }
}

/// `non_finite`: the first NaN or infinity of each column, -1 for a finite column, the
/// columns with `h = 0` untouched.
fn non_finite_finds_the_first_bad_value<T: Real, B: Backend<T>>(b: &B) {
    let (dim, cols) = (300, 6);
    let mut x = vals::<T>(dim * cols, 18);
    x[dim + 17] = T::nan();
    x[dim + 200] = T::infinity();
    x[2 * dim + 299] = T::neg_infinity();
    x[3 * dim + 5] = T::nan(); // column 3 is masked
    x[5 * dim] = T::infinity();
    let mut h = vec![T::one(); cols];
    h[3] = T::zero();
    let (xd, hd) = (to_device(b, &x), to_device(b, &h));
    let mut out = to_device(b, &vec![T::from_f64(7.0); cols]);
    b.non_finite(
        dim,
        cols,
        b.view(&hd, 0..cols),
        b.view(&xd, 0..dim * cols),
        b.view_mut(&mut out, 0..cols),
    );
    let want = [-1.0, 17.0, 299.0, 7.0, -1.0, 0.0];
    let got: Vec<f64> = to_host(b, &out).iter().map(|v| v.as_f64()).collect();
    assert_eq!(got, want);
}

/// `axpy` and `combine` against the scalar loop, bit for bit.
fn axpy_and_combine_match_the_scalar_order<T: Real, B: Backend<T>>(b: &B) {
    let n = 1001;
    let (x, y, k1, k2) = (
        vals::<T>(n, 10),
        vals::<T>(n, 11),
        vals::<T>(n, 12),
        vals::<T>(n, 13),
    );
    let (xd, k1d, k2d) = (to_device(b, &x), to_device(b, &k1), to_device(b, &k2));
    let mut yd = to_device(b, &y);
    let a = T::from_f64(0.3);
    b.axpy(a, b.view(&xd, 0..n), b.view_mut(&mut yd, 0..n));
    let want: Vec<T> = y.iter().zip(&x).map(|(&y, &x)| y + a * x).collect();
    assert_eq!(bits(&to_host(b, &yd)), bits(&want));
    let (c1, c2) = (T::from_f64(-0.7), T::from_f64(1.3));
    let mut out = b.zeros(n).unwrap();
    b.combine(
        b.view(&xd, 0..n),
        &[(c1, b.view(&k1d, 0..n)), (c2, b.view(&k2d, 0..n))],
        b.view_mut(&mut out, 0..n),
    );
    let want: Vec<T> = (0..n).map(|i| x[i] + c1 * k1[i] + c2 * k2[i]).collect();
    assert_eq!(bits(&to_host(b, &out)), bits(&want));
}

/// Activations: close to the library functions (an oracle independent of both
/// backends), derivatives consistent with them, identical for in place and copying calls.
fn activations_are_close_to_the_library_functions<T: Real, B: Backend<T>>(b: &B) {
    let n = 4001;
    let x: Vec<T> = (0..n)
        .map(|i| T::from_f64((i as f64 - 2000.0) * 0.01))
        .collect();
    let xd = to_device(b, &x);
    let tol = if std::mem::size_of::<T>() == 8 {
        1e-14
    } else {
        3e-6
    };
    for act in [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::ClippedRelu { cap: 2.0 },
    ] {
        let mut phi = b.zeros(n).unwrap();
        b.activate_to(act, b.view(&xd, 0..n), b.view_mut(&mut phi, 0..n));
        let mut inplace = to_device(b, &x);
        b.activate(act, b.view_mut(&mut inplace, 0..n));
        let mut grad = b.zeros(n).unwrap();
        b.activate_grad(
            act,
            b.view(&xd, 0..n),
            b.view(&phi, 0..n),
            b.view_mut(&mut grad, 0..n),
        );
        let (phi, inplace, grad) = (to_host(b, &phi), to_host(b, &inplace), to_host(b, &grad));
        assert_eq!(bits(&phi), bits(&inplace), "{act:?}");
        for i in 0..n {
            let xi = x[i].as_f64();
            let (f, df) = match act {
                Activation::Tanh => (xi.tanh(), 1.0 - xi.tanh().powi(2)),
                Activation::Sigmoid => {
                    let s = 1.0 / (1.0 + (-xi).exp());
                    (s, s * (1.0 - s))
                }
                Activation::Softplus => ((1.0 + xi.exp()).ln(), 1.0 / (1.0 + (-xi).exp())),
                _ => (
                    xi.clamp(0.0, 2.0),
                    if xi > 0.0 && xi < 2.0 { 1.0 } else { 0.0 },
                ),
            };
            assert!(
                (phi[i].as_f64() - f).abs() <= tol * (1.0 + f.abs()),
                "{act:?}({xi}) = {:e}, want {f:e}",
                phi[i].as_f64()
            );
            assert!(
                (grad[i].as_f64() - df).abs() <= 10.0 * tol,
                "{act:?}'({xi}) = {:e}, want {df:e}",
                grad[i].as_f64()
            );
        }
    }
}

/// Products: against a scalar triple loop (tolerance 1e-13 in f64, 1e-5 in f32, relative
/// to the sum of magnitudes), every transpose; a column's bits do not depend on the
/// values of the other columns; the kept matrix gives the plain product's result.
fn products_are_right_and_columns_independent<T: Real, B: Backend<T>>(b: &B) {
    let (m, k, n) = (53, 41, 7);
    let tol = if std::mem::size_of::<T>() == 8 {
        1e-13
    } else {
        1e-5
    };
    for (ta, tb) in [
        (Transpose::No, Transpose::No),
        (Transpose::Yes, Transpose::No),
        (Transpose::No, Transpose::Yes),
    ] {
        let (lda, ldb) = (
            if ta == Transpose::No { m } else { k },
            if tb == Transpose::No { k } else { n },
        );
        let a = vals::<T>(m * k, 14);
        let bm = vals::<T>(k * n, 15);
        let at = |i: usize, l: usize| {
            if ta == Transpose::No {
                a[i + l * lda]
            } else {
                a[l + i * lda]
            }
        };
        let bt = |l: usize, j: usize| {
            if tb == Transpose::No {
                bm[l + j * ldb]
            } else {
                bm[j + l * ldb]
            }
        };
        let (ad, bd) = (to_device(b, &a), to_device(b, &bm));
        let mut c = b.zeros(m * n).unwrap();
        let (one, zero) = (T::one(), T::zero());
        b.gemm(
            ta,
            tb,
            m,
            n,
            k,
            one,
            b.view(&ad, 0..m * k),
            lda,
            b.view(&bd, 0..k * n),
            ldb,
            zero,
            b.view_mut(&mut c, 0..m * n),
            m,
        );
        let got = to_host(b, &c);
        for j in 0..n {
            for i in 0..m {
                let (mut s, mut mag) = (0.0, 0.0);
                for l in 0..k {
                    let p = at(i, l).as_f64() * bt(l, j).as_f64();
                    s += p;
                    mag += p.abs();
                }
                assert!(
                    (got[i + j * m].as_f64() - s).abs() <= tol * mag,
                    "{ta:?}{tb:?} ({i},{j})"
                );
            }
        }
    }
    // Column independence and the kept matrix.
    let a = vals::<T>(m * k, 16);
    let mat = b.matrix(m, k, &a).unwrap();
    let ad = to_device(b, &a);
    let mut x = vals::<T>(k * n, 17);
    let run = |x: &[T]| {
        let xd = to_device(b, x);
        let mut c = b.zeros(m * n).unwrap();
        b.gemm_panels(
            &mat,
            n,
            T::one(),
            b.view(&xd, 0..k * n),
            k,
            T::zero(),
            b.view_mut(&mut c, 0..m * n),
            m,
        );
        let mut plain = b.zeros(m * n).unwrap();
        let no = Transpose::No;
        b.gemm(
            no,
            no,
            m,
            n,
            k,
            T::one(),
            b.view(&ad, 0..m * k),
            m,
            b.view(&xd, 0..k * n),
            k,
            T::zero(),
            b.view_mut(&mut plain, 0..m * n),
            m,
        );
        let mut y = b.zeros(m).unwrap();
        b.gemv_panels(&mat, b.view(&xd, 0..k), b.view_mut(&mut y, 0..m));
        (to_host(b, &c), to_host(b, &plain), to_host(b, &y))
    };
    let (c0, p0, y0) = run(&x);
    for (i, (&c, &p)) in c0.iter().zip(&p0).enumerate() {
        assert!(
            (c - p).abs().as_f64() <= tol * 50.0,
            "kept matrix, element {i}"
        );
    }
    for i in 0..m {
        assert!(
            (y0[i] - c0[i]).abs().as_f64() <= tol * 50.0,
            "gemv, row {i}"
        );
    }
    for v in x[k..].iter_mut() {
        *v = *v * T::from_f64(-3.0) + T::one();
    }
    let (c1, _, _) = run(&x);
    assert_eq!(
        bits(&c0[..m]),
        bits(&c1[..m]),
        "column 0 changed with its batch-mates"
    );
}

/// Says why a CUDA test does not run here, or fails with `NEURODE_REQUIRE_CUDA=1`.
fn skip(test: &str, e: neurode_solvers::BackendError) {
    if std::env::var_os("NEURODE_REQUIRE_CUDA").is_some_and(|v| v == "1") {
        panic!("{test}: NEURODE_REQUIRE_CUDA=1, but {e}");
    }
    eprintln!("skipping {test} on CUDA: {e}");
}

/// Runs a generic test body on the CPU and, where it can run, on CUDA, in f32 and f64.
macro_rules! on_every_backend {
    ($($body:ident),* $(,)?) => {
        mod cpu {
            use super::*;
            $(
                #[test]
                fn $body() {
                    super::$body::<f64, Cpu>(&Cpu);
                    super::$body::<f32, Cpu>(&Cpu);
                }
            )*
        }
        mod cuda {
            use super::*;
            $(
                #[test]
                fn $body() {
                    match Cuda::new(0) {
                        Ok(gpu) => {
                            super::$body::<f64, Cuda>(&gpu);
                            super::$body::<f32, Cuda>(&gpu);
                        }
                        Err(e) => skip(stringify!($body), e),
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    transfers_round_trip,
    combine_columns_matches_the_scalar_order,
    error_norms_match_the_scalar_order,
    non_finite_finds_the_first_bad_value,
    axpy_and_combine_match_the_scalar_order,
    activations_are_close_to_the_library_functions,
    products_are_right_and_columns_independent,
);

/// On a GPU, the element arithmetic is the CPU's, bit for bit (tanh, sigmoid and the
/// piecewise-linear activations; softplus goes through each platform's own exp / log1p).
#[test]
fn cuda_activations_are_the_cpus_bits() {
    let gpu = match Cuda::new(0) {
        Ok(g) => g,
        Err(e) => return skip("cuda_activations_are_the_cpus_bits", e),
    };
    fn check<T: Real>(gpu: &Cuda)
    where
        Cuda: Backend<T>,
    {
        // A sweep over [-40, 40], both sides of every clamp (10, 20, 80, 700) and the
        // tanh switch at 0.625, large values, signed zeros, infinities and NaN.
        let mut xs: Vec<f64> = (0..=20000).map(|i| (i as f64 - 10000.0) * 0.004).collect();
        for c in [0.625, 2.0, 10.0, 20.0, 80.0, 700.0, 1e10, 1e300] {
            for d in [-1e-6, 0.0, 1e-6] {
                xs.extend([c * (1.0 + d), -c * (1.0 + d)]);
            }
        }
        xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
        let x: Vec<T> = xs.into_iter().map(T::from_f64).collect();
        let n = x.len();
        for act in [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Relu,
            Activation::ClippedRelu { cap: 2.0 },
            Activation::Identity,
        ] {
            let mut cpu = x.clone();
            Cpu.activate(act, &mut cpu[..]);
            let mut cgrad = vec![T::zero(); n];
            Cpu.activate_grad(act, &x[..], &cpu[..], &mut cgrad[..]);
            let xd = to_device(gpu, &x);
            let mut phi = gpu.zeros(n).unwrap();
            gpu.activate_to(act, gpu.view(&xd, 0..n), gpu.view_mut(&mut phi, 0..n));
            let mut grad = gpu.zeros(n).unwrap();
            gpu.activate_grad(
                act,
                gpu.view(&xd, 0..n),
                gpu.view(&phi, 0..n),
                gpu.view_mut(&mut grad, 0..n),
            );
            assert_eq!(bits(&to_host(gpu, &phi)), bits(&cpu), "{act:?}");
            assert_eq!(bits(&to_host(gpu, &grad)), bits(&cgrad), "{act:?}'");
        }
    }
    check::<f64>(&gpu);
    check::<f32>(&gpu);
}

/// Without a usable CUDA device, asking for one is a clear error that says what is
/// missing and what to use instead, never a panic.
#[test]
fn asking_for_cuda_without_a_device_is_a_clear_error() {
    match Cuda::new(0) {
        Ok(gpu) => eprintln!("a CUDA device is present ({gpu:?}): nothing to check"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("Cpu"), "{msg}");
            assert!(msg.contains("CUDA"), "{msg}");
        }
    }
    // A device that does not exist, on any machine.
    assert!(Cuda::new(1 << 20).is_err());
}
