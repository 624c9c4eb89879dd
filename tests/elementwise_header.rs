//! The CUDA kernels' element arithmetic (`solvers/src/backend/cuda/elementwise.h`),
//! compiled for the host by `solvers/build.rs` without fused multiply-adds, against the
//! CPU backend: the same bits for every activation and its derivative over a sweep of
//! inputs that crosses every branch (the polynomial / exponential switch of `tanh` at
//! 0.625, the caps, the clamps at 10 / 20 / 80 / 700, signed zeros, infinities and NaN).
//! Softplus calls the platform's `exp` / `log1p` on both sides here (the GPU's differ;
//! that is why they sit in the `nd_libm_*` functions the kernel check allows to fuse).

use neurode_solvers::{Activation, Backend, Cpu};

extern "C" {
    fn nd_host_activate_f64(act: i32, cap: f64, x: f64) -> f64;
    fn nd_host_activate_f32(act: i32, cap: f64, x: f32) -> f32;
    fn nd_host_activate_grad_f64(act: i32, cap: f64, x: f64, phi: f64) -> f64;
    fn nd_host_activate_grad_f32(act: i32, cap: f64, x: f32, phi: f32) -> f32;
    fn nd_host_max_abs_f64(a: f64, b: f64) -> f64;
    fn nd_host_max_abs_f32(a: f32, b: f32) -> f32;
}

const ACTIVATIONS: [Activation; 7] = [
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Relu,
    Activation::ClippedRelu { cap: 2.5 },
    Activation::ClippedSoftplus { cap: 20.0 },
    Activation::Identity,
];

/// Inputs: a dense grid over [-40, 40], a fine one around the branch points, a log sweep
/// out to 1e300 on both sides, and the special values.
fn inputs() -> Vec<f64> {
    let mut xs: Vec<f64> = (-40_000..=40_000).map(|i| i as f64 * 1e-3).collect();
    for b in [0.625, 2.5, 10.0, 20.0, 80.0, 700.0] {
        for i in -200..=200 {
            xs.push(b + i as f64 * 1e-9 * b);
            xs.push(-(b + i as f64 * 1e-9 * b));
        }
    }
    for e in -300..=300 {
        let v = 10f64.powi(e) * 1.2345;
        xs.extend([v, -v]);
    }
    xs.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e-320,
        -1e-320,
    ]);
    xs
}

/// Runs `header(code, cap, x)` and `header_grad(code, cap, x, φ(x))` against the CPU
/// backend's `activate` / `activate_grad` on every input, for every activation.
fn check<T: neurode_solvers::Real + Into<f64>>(
    xs: &[T],
    header: impl Fn(i32, f64, T) -> T,
    header_grad: impl Fn(i32, f64, T, T) -> T,
    bits: impl Fn(T) -> u64,
) {
    for act in ACTIVATIONS {
        let (code, cap) = act.kernel_code();
        let mut phi = xs.to_vec();
        Cpu.activate(act, &mut phi[..]);
        let mut grad = vec![T::zero(); xs.len()];
        Cpu.activate_grad(act, xs, &phi[..], &mut grad[..]);
        for (i, &x) in xs.iter().enumerate() {
            let (h, g) = (header(code, cap, x), header_grad(code, cap, x, phi[i]));
            let x: f64 = x.into();
            assert_eq!(
                bits(h),
                bits(phi[i]),
                "{act:?}({x:e}): header {:e}, cpu {:e}",
                h.into(),
                phi[i].into()
            );
            assert_eq!(
                bits(g),
                bits(grad[i]),
                "{act:?}'({x:e}): header {:e}, cpu {:e}",
                g.into(),
                grad[i].into()
            );
        }
    }
}

#[test]
fn the_kernel_header_computes_the_cpu_backends_bits_in_f64() {
    let xs = inputs();
    // SAFETY (all calls below): plain C functions of plain values (solvers/build.rs).
    check(
        &xs,
        |c, cap, x| unsafe { nd_host_activate_f64(c, cap, x) },
        |c, cap, x, p| unsafe { nd_host_activate_grad_f64(c, cap, x, p) },
        f64::to_bits,
    );
    for w in xs.windows(2) {
        let m = unsafe { nd_host_max_abs_f64(w[0], w[1]) };
        assert_eq!(m.to_bits(), w[0].abs().max(w[1].abs()).to_bits());
    }
}

#[test]
fn the_kernel_header_computes_the_cpu_backends_bits_in_f32() {
    let xs: Vec<f32> = inputs().into_iter().map(|x| x as f32).collect();
    // SAFETY (all calls below): plain C functions of plain values (solvers/build.rs).
    check(
        &xs,
        |c, cap, x| unsafe { nd_host_activate_f32(c, cap, x) },
        |c, cap, x, p| unsafe { nd_host_activate_grad_f32(c, cap, x, p) },
        |v| u64::from(v.to_bits()),
    );
    for w in xs.windows(2) {
        let m = unsafe { nd_host_max_abs_f32(w[0], w[1]) };
        assert_eq!(m.to_bits(), w[0].abs().max(w[1].abs()).to_bits());
    }
}
