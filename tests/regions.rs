//! Multi-region networks (mRNNTorch, `JohnLazzari/mRNNTorch@ae39d65`): the CBGTCL example
//! config, the oracles of `seed-numbers.md` §D, properties under training, bad configs.

use std::path::Path;

use neurode::analysis::{jacobian, Probe};
use neurode::models::{
    Activation, Connection, Dale, InputRegion, LeakyRnn, Rectifier, RecurrentRegion, RegionBuilder,
    RegionSettings, Sign,
};
use neurode::regions::RegionFile;
use neurode::solvers::{integrate, Normal, PiecewiseConstant, Stepper, VectorField, VjpParams};
use neurode::train::Adam;
use proptest::prelude::*;

fn load(
    path: &str,
) -> (
    neurode::models::MultiRegionRnn<f64>,
    neurode::models::Regions,
) {
    let file = RegionFile::load(Path::new(path)).unwrap();
    let mut b = file.builder().unwrap();
    b.finalize::<f64>(&RegionSettings::default(), 7).unwrap()
}

#[test]
fn the_cbgtcl_config_loads_with_the_reference_counts() {
    let (rnn, regions) = load("configs/regions/cbgtcl.json");
    let (h, i) = (rnn.dim(), rnn.n_in());
    assert_eq!((h, i), (350, 25));
    assert_eq!((regions.n_rec(), regions.n_inp()), (350, 25));
    let conn = rnn.connectivity();
    let rec_nonzero = conn.signed_mask().iter().filter(|&&s| s != 0.0).count();
    let inp_nonzero = rnn.input_weights().iter().filter(|&&w| w != 0.0).count();
    assert_eq!(rec_nonzero, 20_610);
    assert_eq!(inp_nonzero, 1_850);
    // Per source unit: 5 of 50 kept at sparsity 0.9, 37 of 50, 30 of 40, 7 of 10 at 0.25.
    let s = conn.signed_mask();
    let kept = |to: &str, from: &str| -> Vec<usize> {
        let (r, c) = (regions.indices(to).unwrap(), regions.indices(from).unwrap());
        c.map(|j| r.clone().filter(|&i| s[i + j * h] != 0.0).count())
            .collect()
    };
    assert!(kept("d1", "d1").iter().all(|&k| k == 5));
    assert!(kept("gpe", "d2").iter().all(|&k| k == 37));
    assert!(kept("alm_exc", "thal").iter().all(|&k| k == 30));
    assert!(kept("alm_inhib", "thal").iter().all(|&k| k == 7));
    assert!(
        kept("gpe", "d1").iter().all(|&k| k == 0),
        "an absent pair is a zero block"
    );
    // Signs are the source region's; the effective weights carry them.
    let eff = conn.effective();
    for (name, sign) in [
        ("d1", -1.0),
        ("stn", 1.0),
        ("alm_inhib", -1.0),
        ("thal", 1.0),
    ] {
        for j in regions.indices(name).unwrap() {
            assert!(
                (0..h).all(|i| eff[i + j * h] * sign >= 0.0),
                "{name} column {j}"
            );
        }
    }
    // Tonic input and initial state, concatenated per region.
    let tonic = regions.tonic();
    assert_eq!(&tonic[100..150], &[1.0; 50][..], "gpe's base_firing");
    assert_eq!(&tonic[0..100], &[0.0; 100][..]);
    assert_eq!(rnn.bias().unwrap(), tonic);
    assert_eq!(regions.initial_state()[100], 1.0);
    assert_eq!(regions.initial_state()[150], 0.0);
    // Constrained initial weights are half-normal with SD sqrt(1/(2H)) (recurrent) and
    // sqrt(1/(H + I)) (input): mean |w| = SD sqrt(2/pi), within 3 standard errors.
    let mean_abs = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let raw: Vec<f64> = conn
        .raw()
        .iter()
        .zip(s)
        .filter(|(_, &s)| s != 0.0)
        .map(|(w, _)| w.abs())
        .collect();
    // Half-normal of scale s: mean s sqrt(2/pi), SD s sqrt(1 - 2/pi).
    let half_sd = (1.0 - 2.0 / std::f64::consts::PI).sqrt();
    let s = (1.0f64 / 700.0).sqrt();
    let want = s * (2.0 / std::f64::consts::PI).sqrt();
    let se = 3.0 * s * half_sd / (raw.len() as f64).sqrt();
    assert!((mean_abs(raw) - want).abs() < se);
    let inp: Vec<f64> = rnn
        .input_weights()
        .iter()
        .filter(|&&w| w != 0.0)
        .map(|w| w.abs())
        .collect();
    let s = (1.0f64 / 375.0).sqrt();
    let want = s * (2.0 / std::f64::consts::PI).sqrt();
    let se = 3.0 * s * half_sd / (inp.len() as f64).sqrt();
    assert!((mean_abs(inp) - want).abs() < se);
    // The TOML form is the same network.
    let (toml, _) = load("configs/regions/cbgtcl.toml");
    assert_eq!(toml.connectivity().raw(), conn.raw());
    assert_eq!(toml.input_weights(), rnn.input_weights());
}

/// `seed-numbers.md` §D: the noise-free leaky update, three steps from zero.
#[test]
fn the_leaky_update_convention_check_passes() {
    let w = vec![0.5, 0.1, -0.2, 0.3]; // [[0.5, -0.2], [0.1, 0.3]], column-major
    let conn = Dale::masked(2, w, vec![1.0; 4], Rectifier::Identity).unwrap();
    let mut rnn = LeakyRnn::new(conn, 100.0, 1, vec![1.0, 0.5])
        .unwrap()
        .with_activation(Activation::Relu)
        .unwrap()
        .with_bias(vec![0.0, 1.0])
        .unwrap();
    rnn.set_inputs(vec![PiecewiseConstant::new(1, vec![], vec![1.0]).unwrap()])
        .unwrap();
    let sol = integrate(&rnn, (0.0, 30.0))
        .stepper(Stepper::Euler)
        .fixed_dt(10.0)
        .save_at(vec![10.0, 20.0, 30.0])
        .run()
        .unwrap();
    let want: [[f64; 2]; 3] = [[0.1, 0.15], [0.192, 0.2905], [0.27659, 0.422085]];
    for (k, w) in want.iter().enumerate() {
        let x = sol.state(k, 0);
        assert!(
            (x[0] - w[0]).abs() < 1e-12 && (x[1] - w[1]).abs() < 1e-12,
            "step {k}: {x:?}"
        );
    }
}

/// The Elman variant `x ← W φ(x) + W_in u + b` is Euler with `dt = τ`.
#[test]
fn the_elman_update_is_euler_with_dt_equal_to_tau() {
    let w = vec![0.5, 0.1, -0.2, 0.3];
    let conn = Dale::masked(2, w.clone(), vec![1.0; 4], Rectifier::Identity).unwrap();
    let mut rnn = LeakyRnn::new(conn, 3.0, 1, vec![1.0, 0.5])
        .unwrap()
        .with_activation(Activation::Tanh)
        .unwrap()
        .with_bias(vec![0.2, -0.1])
        .unwrap();
    rnn.set_inputs(vec![PiecewiseConstant::new(1, vec![], vec![0.7]).unwrap()])
        .unwrap();
    let sol = integrate(&rnn, (0.0, 3.0))
        .stepper(Stepper::Euler)
        .fixed_dt(3.0)
        .x0(vec![0.4, -0.6])
        .save_at(vec![3.0])
        .run()
        .unwrap();
    let (h0, h1) = (0.4f64.tanh(), (-0.6f64).tanh());
    let want = [
        w[0] * h0 + w[2] * h1 + 0.7 + 0.2,
        w[1] * h0 + w[3] * h1 + 0.35 - 0.1,
    ];
    let x = sol.state(0, 0);
    assert!((x[0] - want[0]).abs() < 1e-15 && (x[1] - want[1]).abs() < 1e-15);
}

fn region(name: &str, units: usize) -> RecurrentRegion {
    RecurrentRegion::new(name, units)
}

fn conn(src: &str, dst: &str, sparsity: Option<f64>) -> Connection {
    Connection {
        src: src.into(),
        dst: dst.into(),
        sparsity,
        zero: false,
    }
}

fn input(name: &str, units: usize) -> InputRegion {
    InputRegion {
        name: name.into(),
        units,
        sign: Sign::Pos,
    }
}

/// mRNNTorch's `tests/`: region indices and the tonic input's concatenation.
#[test]
fn region_indices_and_helpers_match_the_original_oracles() {
    let mut b = RegionBuilder::new();
    let mut r1 = region("r1", 2);
    r1.base_firing = vec![0.5];
    r1.parent = Some("area".into());
    let mut r2 = region("r2", 3);
    r2.base_firing = vec![1.0, 2.0, 3.0];
    r2.parent = Some("area".into());
    b.add_recurrent_region(r1).unwrap();
    b.add_recurrent_region(r2).unwrap();
    b.add_recurrent_region(region("r3", 1)).unwrap();
    b.add_input_region(input("inp", 4)).unwrap();
    b.add_recurrent_connection(conn("r1", "r2", None)).unwrap();
    b.add_input_connection(conn("inp", "r1", None)).unwrap();
    let (rnn, regions) = b.finalize::<f64>(&RegionSettings::default(), 1).unwrap();
    assert_eq!(regions.indices("r1").unwrap(), 0..2);
    assert_eq!(regions.indices("r2").unwrap(), 2..5);
    assert_eq!(regions.indices("inp").unwrap(), 0..4);
    assert_eq!(regions.tonic(), &[0.5, 0.5, 1.0, 2.0, 3.0, 0.0]);
    // A parent name stands for its children; `indices` of a parent says what to do.
    assert_eq!(regions.units(&["area"]).unwrap(), vec![0, 1, 2, 3, 4]);
    assert!(regions
        .indices("area")
        .unwrap_err()
        .to_string()
        .contains("parent"));
    let act: Vec<f64> = (0..12).map(|v| v as f64).collect(); // 6 units x 2 columns
    assert_eq!(
        regions.activity(&act, &["r3", "r1"]).unwrap(),
        vec![5.0, 0.0, 1.0, 11.0, 6.0, 7.0]
    );
    // Weight blocks: the projection r1 -> r2 is rows r2, columns r1 of W_eff.
    let eff = rnn.connectivity().effective();
    let p = regions
        .projection(eff, rnn.input_weights(), "r2", "r1")
        .unwrap();
    assert_eq!(p.len(), 6);
    assert_eq!(p[0], eff[2]);
    assert!(p.iter().all(|&w| w > 0.0));
    assert!(regions
        .projection(eff, rnn.input_weights(), "r1", "r2")
        .unwrap()
        .iter()
        .all(|&w| w == 0.0));
    let pin = regions
        .projection(eff, rnn.input_weights(), "r1", "inp")
        .unwrap();
    assert_eq!(pin.len(), 8);
    assert_eq!(regions.weight_subset(eff, &["r1"]).unwrap().len(), 4);
    assert!(regions.activity(&act, &["nowhere"]).is_err());
}

/// A linear network (`φ = identity`) with weights `w` (row-major 2 x 2), no mask.
fn linear(w: [f64; 4], tau: f64, b_in: Vec<f64>) -> neurode::models::MultiRegionRnn<f64> {
    let cm = vec![w[0], w[2], w[1], w[3]];
    let conn = Dale::masked(2, cm, vec![1.0; 4], Rectifier::Identity).unwrap();
    let n_in = b_in.len() / 2;
    let mut rnn = LeakyRnn::new(conn, tau, n_in, b_in)
        .unwrap()
        .with_activation(Activation::Identity)
        .unwrap();
    rnn.set_inputs(vec![
        PiecewiseConstant::new(n_in, vec![], vec![0.0; n_in]).unwrap()
    ])
    .unwrap();
    rnn
}

/// mRNNTorch's linearisation tests use `α D W` (`D = diag(φ')`, no `-I`): the Jacobian of
/// its discrete update. Ours is the continuous `J = (-I + W D)/τ`; the two are related by
/// `α D W = α D (τ J + I) D⁻¹` (for `φ = identity`, `D = I`: `α (τ J + I)`).
#[test]
fn the_original_jacobian_tests_through_the_continuous_jacobian() {
    let mrnn_jacobian = |rnn: &neurode::models::MultiRegionRnn<f64>, alpha: f64| {
        let j = jacobian(rnn, &Probe::new(0, 0.0), &[0.0, 0.0]).unwrap();
        let tau = 10.0;
        let mut out = [0.0; 4];
        for (k, o) in out.iter_mut().enumerate() {
            let id = if k % 3 == 0 { 1.0 } else { 0.0 };
            *o = alpha * (tau * j[k] + id);
        }
        out // column-major
    };
    // W = [[1, 2], [3, 4]], α = 0.5: J = 0.5 W.
    let rnn = linear([1.0, 2.0, 3.0, 4.0], 10.0, vec![0.0, 0.0]);
    let close = |a: [f64; 4], b: [f64; 4]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-14);
    assert!(close(mrnn_jacobian(&rnn, 0.5), [0.5, 1.5, 1.0, 2.0]));
    // W = diag(2, 3), α = 1: eigenvalues 2 and 3 (real).
    let rnn = linear([2.0, 0.0, 0.0, 3.0], 10.0, vec![0.0, 0.0]);
    let jm = mrnn_jacobian(&rnn, 1.0);
    let ev = neurode::analysis::eigenvalues(2, &jm).unwrap();
    assert!(
        (ev[0].0 - 3.0).abs() < 1e-14 && (ev[1].0 - 2.0).abs() < 1e-14,
        "{ev:?}"
    );
    assert!(ev.iter().all(|e| e.1 == 0.0), "{ev:?}");
    // W = I, W_in = [[1, 0, 2], [0, 1, 3]], α = 1: the input Jacobian α D W_in = W_in, and
    // ours is ∂f/∂u = W_in / τ, so α τ ∂f/∂u reproduces it.
    let b_in = vec![1.0, 0.0, 0.0, 1.0, 2.0, 3.0];
    let rnn = linear([1.0, 0.0, 0.0, 1.0], 10.0, b_in.clone());
    // ∂f/∂u by differences of f in u (f is affine in u: exact up to rounding).
    let f_at = |u: Vec<f64>| {
        let mut r = rnn.clone();
        r.set_inputs(vec![PiecewiseConstant::new(3, vec![], u).unwrap()])
            .unwrap();
        let mut out = vec![0.0; 2];
        let mut ws = r.workspace(1);
        r.rhs(
            neurode::solvers::Columns::new(&[0.0]),
            &[0.0, 0.0],
            &mut out,
            &mut ws,
        );
        out
    };
    let base = f_at(vec![0.0; 3]);
    for c in 0..3 {
        let mut u = vec![0.0; 3];
        u[c] = 1.0;
        let d = f_at(u);
        for r in 0..2 {
            let jm = 1.0 * 10.0 * (d[r] - base[r]);
            assert!((jm - b_in[r + 2 * c]).abs() < 1e-14, "({r}, {c}): {jm}");
        }
    }
}

/// A random region layout: up to 4 recurrent regions with random signs, random
/// connections (some sparse), one input region.
fn random_regions(seed: u64, n_regions: usize, dense: f64) -> RegionBuilder {
    let mut rng = Normal::new(seed);
    let mut b = RegionBuilder::new();
    let names: Vec<String> = (0..n_regions).map(|k| format!("r{k}")).collect();
    for name in &names {
        let mut r = region(name, 1 + (rng.uniform() * 12.0) as usize);
        r.sign = if rng.uniform() < 0.5 {
            Sign::Pos
        } else {
            Sign::Neg
        };
        r.base_firing = vec![rng.sample()];
        b.add_recurrent_region(r).unwrap();
    }
    b.add_input_region(input("in", 2)).unwrap();
    for s in &names {
        for d in &names {
            if rng.uniform() < dense {
                let sp = (rng.uniform() < 0.5).then(|| rng.uniform() * 0.9);
                b.add_recurrent_connection(conn(s, d, sp)).unwrap();
            }
        }
    }
    b.add_input_connection(conn("in", &names[0], Some(0.5)))
        .unwrap();
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Masked entries stay exactly zero and every column keeps its region's sign after
    /// any number of Adam steps with gradients of any scale; the true gradient of a
    /// masked entry is exactly zero.
    #[test]
    fn masks_and_signs_survive_training(
        seed in any::<u64>(),
        n_regions in 1usize..=4,
        steps in 1usize..=20,
        scale_exp in -3i32..=3,
        constrained in any::<bool>(),
    ) {
        let settings = RegionSettings { rec_constrained: constrained, ..RegionSettings::default() };
        let (mut rnn, regions) = random_regions(seed, n_regions, 0.6).finalize::<f64>(&settings, seed).unwrap();
        let n = rnn.dim();
        let mask: Vec<f64> = rnn.connectivity().signed_mask().to_vec();
        // The input weights' mask and signs, as the initial effective weights show them
        // (half-normal values are never exactly zero).
        let inp_sign: Vec<f64> = rnn.input_weights().iter().map(|&w| if w == 0.0 { 0.0 } else { w.signum() }).collect();
        // The true gradient at a random state (input bound: one trial).
        rnn.set_inputs(vec![PiecewiseConstant::new(2, vec![], vec![1.0, -1.0]).unwrap()]).unwrap();
        let mut rng = Normal::new(seed ^ 1);
        let x: Vec<f64> = (0..n).map(|_| rng.sample()).collect();
        let v: Vec<f64> = (0..n).map(|_| rng.sample()).collect();
        let g = rnn.vjp_params_alloc(neurode::solvers::Columns::new(&[0.0]), &x, &v);
        for k in 0..n * n {
            if mask[k] == 0.0 {
                prop_assert_eq!(g[k], 0.0, "gradient of masked entry {}", k);
            }
        }
        let np = rnn.n_params();
        let mut theta = vec![0.0; np];
        rnn.params(&mut theta);
        let mut adam = Adam::<f64>::new(np);
        let train = vec![true; np];
        let scale = 10f64.powi(scale_exp);
        for _ in 0..steps {
            let grad: Vec<f64> = (0..np).map(|_| scale * rng.sample()).collect();
            adam.step(&mut theta, &grad, 0.1, &train);
            rnn.set_params(&theta);
            let eff = rnn.connectivity().effective();
            for j in 0..n {
                for i in 0..n {
                    let (w, s) = (eff[i + j * n], mask[i + j * n]);
                    if s == 0.0 {
                        prop_assert_eq!(w, 0.0, "masked entry ({}, {}) moved", i, j);
                    } else if constrained {
                        prop_assert!(w == 0.0 || w.signum() == s, "W_eff[{}, {}] = {} against sign {}", i, j, w, s);
                    }
                }
            }
            for (k, (&w, &s)) in rnn.input_weights().iter().zip(&inp_sign).enumerate() {
                if s == 0.0 {
                    prop_assert_eq!(w, 0.0, "masked input weight {} moved", k);
                } else {
                    prop_assert!(w == 0.0 || w.signum() == s, "input weight {} = {} against sign {}", k, w, s);
                }
            }
        }
        prop_assert_eq!(regions.n_rec(), n);
    }

    /// After finalisation the spectral radius of `W_eff` is the target.
    #[test]
    fn spectral_radius_is_the_target(
        seed in any::<u64>(),
        n_regions in 1usize..=4,
        target in 0.1f64..3.0,
        constrained in any::<bool>(),
    ) {
        let settings = RegionSettings {
            rec_constrained: constrained,
            spectral_radius: Some(target),
            ..RegionSettings::default()
        };
        let (rnn, _) = match random_regions(seed, n_regions, 1.0).finalize::<f64>(&settings, seed) {
            Ok(built) => built,
            Err(e) => {
                // Only a network whose W_eff has no eigenvalue off zero cannot be scaled.
                prop_assert!(e.to_string().contains("spectral_radius"), "{}", e);
                let plain = RegionSettings { spectral_radius: None, ..settings };
                let (rnn, _) = random_regions(seed, n_regions, 1.0).finalize::<f64>(&plain, seed).unwrap();
                let rho = neurode::models::spectral_radius(rnn.dim(), rnn.connectivity().effective());
                prop_assert!(rho < 1e-12, "refused although rho = {}", rho);
                return Ok(());
            }
        };
        let n = rnn.dim();
        let rho = neurode::models::spectral_radius(n, rnn.connectivity().effective());
        prop_assert!((rho - target).abs() <= 1e-9 * target, "rho {} vs {}", rho, target);
    }

    /// Regions with no connection between them evolve independently: perturbing one
    /// region's initial state leaves the other's trajectory bit-identical.
    #[test]
    fn uncoupled_regions_evolve_independently(seed in any::<u64>(), kick in -2.0f64..2.0) {
        let mut b = RegionBuilder::new();
        b.add_recurrent_region(region("a", 7)).unwrap();
        let mut rb = region("b", 5);
        rb.sign = Sign::Neg;
        rb.base_firing = vec![0.3];
        b.add_recurrent_region(rb).unwrap();
        b.add_input_region(input("in", 2)).unwrap();
        b.add_recurrent_connection(conn("a", "a", Some(0.3))).unwrap();
        b.add_recurrent_connection(conn("b", "b", None)).unwrap();
        b.add_input_connection(conn("in", "a", None)).unwrap();
        b.add_input_connection(conn("in", "b", Some(0.5))).unwrap();
        let settings = RegionSettings { act: Activation::Tanh, tau: 10.0, ..RegionSettings::default() };
        let (mut rnn, regions) = b.finalize::<f64>(&settings, seed).unwrap();
        rnn.set_inputs(vec![PiecewiseConstant::new(2, vec![5.0], vec![0.0, 0.0, 1.0, -0.5]).unwrap()]).unwrap();
        let b_units = regions.indices("b").unwrap();
        // Euler: with adaptive steps the shared step size would carry region a's error
        // estimate into region b's trajectory (one trial, one step size).
        let run = |kick: f64| {
            integrate(&rnn, (0.0, 40.0))
                .stepper(Stepper::Euler).fixed_dt(0.5)
                .x0(x0_of(seed, kick))
                .save_at(vec![10.0, 20.0, 40.0])
                .run()
                .unwrap()
        };
        let (a, c) = (run(0.0), run(kick));
        for k in 0..3 {
            for i in b_units.clone() {
                prop_assert_eq!(a.state(k, 0)[i].to_bits(), c.state(k, 0)[i].to_bits(), "unit {} at save {}", i, k);
            }
        }
        // Region a did change.
        prop_assert!(kick == 0.0 || a.state(2, 0)[3] != c.state(2, 0)[3] || a.state(0, 0)[3] != c.state(0, 0)[3]);
    }
}

fn x0_of(seed: u64, kick: f64) -> Vec<f64> {
    let mut rng = Normal::new(seed);
    let mut x: Vec<f64> = (0..12).map(|_| rng.sample()).collect();
    x[3] += kick;
    x
}

/// A region file made of the CBGTCL example with one JSON edit applied.
fn cbgtcl_with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<(), String> {
    let text = std::fs::read_to_string("configs/regions/cbgtcl.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    let file = RegionFile::parse(&v.to_string(), true)?;
    let mut b = file.builder()?;
    b.finalize::<f64>(&RegionSettings::default(), 1)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One edit of a region file.
type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

#[test]
fn bad_region_configs_name_the_entry() {
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "unknown region",
            Box::new(|v| v["recurrent_connections"][3]["dst_region"] = "striatum".into()),
            &["recurrent_connections[3]", "striatum", "known regions"],
        ),
        (
            "negative units",
            Box::new(|v| v["recurrent_regions"][2]["num_units"] = (-5).into()),
            &["recurrent_regions[2] (gpe)", "num_units = -5"],
        ),
        (
            "fractional units",
            Box::new(|v| v["input_regions"][0]["num_units"] = 2.5.into()),
            &["input_regions[0] (iti)", "num_units"],
        ),
        (
            "sparsity 1",
            Box::new(|v| v["recurrent_connections"][5]["sparsity"] = 1.0.into()),
            &[
                "recurrent_connections[5] (d1 -> snr)",
                "sparsity = 1",
                "[0, 1)",
            ],
        ),
        (
            "negative sparsity",
            Box::new(|v| v["input_connections"][1]["sparsity"] = (-0.1).into()),
            &["input_connections[1] (iti -> d2)", "sparsity = -0.1"],
        ),
        (
            "duplicate edge",
            Box::new(|v| {
                let e = v["recurrent_connections"][0].clone();
                v["recurrent_connections"].as_array_mut().unwrap().push(e);
            }),
            &["recurrent_connections[19] (d1 -> d1)", "twice"],
        ),
        (
            "into an input region",
            Box::new(|v| v["recurrent_connections"][0]["dst_region"] = "iti".into()),
            &["recurrent_connections[0] (d1 -> iti)", "input region"],
        ),
        (
            "recurrent source of an input connection",
            Box::new(|v| v["input_connections"][0]["src_region"] = "thal".into()),
            &["input_connections[0] (thal -> d1)", "recurrent region"],
        ),
        (
            "bad sign",
            Box::new(|v| v["recurrent_regions"][0]["sign"] = "excitatory".into()),
            &["recurrent_regions[0] (d1)", "\"pos\""],
        ),
        (
            "misspelt key",
            Box::new(|v| v["recurrent_regions"][1]["num_unit"] = 5.into()),
            &["recurrent_regions[1] (d2)", "unknown key `num_unit`"],
        ),
        (
            "duplicate region name",
            Box::new(|v| v["recurrent_regions"][1]["name"] = "d1".into()),
            &["recurrent_regions[1] (d1)", "unique"],
        ),
        (
            "base_firing of the wrong length",
            Box::new(|v| v["recurrent_regions"][3]["base_firing"] = serde_json::json!([1, 2])),
            &["recurrent_regions[3] (stn)", "base_firing has 2 values"],
        ),
    ];
    for (what, edit, needles) in cases {
        let e = cbgtcl_with(edit).expect_err(what);
        for n in needles {
            assert!(e.contains(n), "{what}: `{e}` does not mention `{n}`");
        }
    }
    // Comments anywhere, the original's `device` and a connection's `sign` are ignored.
    cbgtcl_with(|v| {
        v["recurrent_regions"][0]["__comment_why"] = "striatal D1 cells".into();
        v["recurrent_regions"][0]["device"] = "cuda".into();
        v["recurrent_connections"][0]["sign"] = "neg".into();
    })
    .unwrap();
    // A missing file and broken JSON are errors with the path.
    let e = RegionFile::load(Path::new("configs/regions/nope.json")).unwrap_err();
    assert!(e.to_string().contains("nope.json"));
    assert!(RegionFile::parse("{\"recurrent_regions\": [", true).is_err());
}

#[test]
fn the_builder_refuses_changes_after_finalising() {
    let mut b = RegionBuilder::new();
    b.add_recurrent_region(region("a", 3)).unwrap();
    b.add_input_region(input("in", 1)).unwrap();
    b.add_input_connection(conn("in", "a", None)).unwrap();
    b.finalize::<f32>(&RegionSettings::default(), 0).unwrap();
    let e = b
        .add_recurrent_region(region("b", 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already finalised") && e.contains("`b`"), "{e}");
    let e = b
        .add_recurrent_connection(conn("a", "a", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already finalised"), "{e}");
    assert!(b.finalize::<f32>(&RegionSettings::default(), 0).is_err());
    // No input region, or a parent that is itself a region: errors, not panics.
    let mut b = RegionBuilder::new();
    b.add_recurrent_region(region("a", 3)).unwrap();
    assert!(b
        .finalize::<f64>(&RegionSettings::default(), 0)
        .unwrap_err()
        .to_string()
        .contains("input region"));
    let mut b = RegionBuilder::new();
    b.add_recurrent_region(region("a", 3)).unwrap();
    let mut c = region("c", 1);
    c.parent = Some("a".into());
    b.add_recurrent_region(c).unwrap();
    b.add_input_region(input("in", 1)).unwrap();
    assert!(b
        .finalize::<f64>(&RegionSettings::default(), 0)
        .unwrap_err()
        .to_string()
        .contains("parent"));
}

/// The multi-region config trains end to end through the shared pipeline to the task's
/// criterion; its masks and signs hold in the trained weights; the run directory's
/// config keeps the regions inline.
#[test]
fn a_multi_region_network_trains_on_go_nogo() {
    use neurode::config::TrainConfig;
    let cfg = TrainConfig::load("configs/multiregion_go_nogo.toml").unwrap();
    let dir = std::env::temp_dir().join(format!("neurode-mr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = neurode::run::train(&cfg, &dir, false, &mut |_, _, _| {})
        .unwrap()
        .json;
    assert_eq!(summary["stopped_early"], true, "{summary:#}");
    assert!(summary["final"]["val_accuracy"].as_f64().unwrap() > 0.95);
    let (arrays, _) =
        neurode::io::read_safetensors::<f32>(&dir.join("params.safetensors")).unwrap();
    let get = |name: &str| arrays.iter().find(|a| a.name == name).unwrap();
    let (mask, eff) = (get("signed_mask"), get("W_eff"));
    for (m, w) in mask.data.iter().zip(&eff.data) {
        assert!(if *m == 0.0 {
            *w == 0.0
        } else {
            *w == 0.0 || w.signum() == m.signum()
        });
    }
    let again = TrainConfig::load(dir.join("config.toml")).unwrap();
    assert_eq!(again.model, cfg.model);
}

/// A config may name a region file; its size must fit the task.
#[test]
fn a_config_can_name_a_region_file() {
    use neurode::config::TrainConfig;
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml").unwrap();
    let head = text.split("[[model.regions").next().unwrap();
    let dir = std::env::temp_dir().join(format!("neurode-mrf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tail = text.split("[task]").nth(1).unwrap();
    let cfg_text = format!(
        "{}regions_file = \"{}\"\n\n[task]{tail}",
        head,
        std::fs::canonicalize("configs/regions/cbgtcl.json")
            .unwrap()
            .display()
    );
    let path = dir.join("cbgtcl_go_nogo.toml");
    std::fs::write(&path, cfg_text).unwrap();
    let cfg = TrainConfig::load(&path).unwrap();
    assert_eq!(cfg.model.n(), 350);
    // CBGTCL has 25 input units; go/no-go gives one channel.
    let e = neurode::train::Trainer::<f64>::new(&cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("25 input units") && e.contains("1 input channels"),
        "{e}"
    );
    // Both a file and inline regions, or no regions at all: errors, not panics.
    let both = std::fs::read_to_string(&path).unwrap().replace(
        "[task]",
        "[[model.regions.input_regions]]\nname = \"cue\"\nnum_units = 1\n\n[task]",
    );
    std::fs::write(&path, both).unwrap();
    let e = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("keep one"), "{e}");
    let only_inputs = text
        .split("[[model.regions.recurrent_regions]]")
        .next()
        .unwrap()
        .to_string()
        + "[[model.regions.input_regions]]\nname = \"cue\"\nnum_units = 1\n\n[task]"
        + tail;
    let e = TrainConfig::parse(&only_inputs, "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("at least one recurrent and one input region"),
        "{e}"
    );
    let path_text = format!(
        "{}regions_file = \"{}\"\n\n[task]{tail}",
        head,
        std::fs::canonicalize("configs/regions/cbgtcl.json")
            .unwrap()
            .display()
    );
    std::fs::write(&path, path_text).unwrap();
    // A missing region file is named.
    let missing = std::fs::read_to_string(&path)
        .unwrap()
        .replace("cbgtcl.json", "nope.json");
    std::fs::write(&path, missing).unwrap();
    let e = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("nope.json") && e.contains("regions_file"), "{e}");
}

/// The per-step noise of a multi-region run: `sqrt(2 dt/τ) σ_rec` on every unit plus
/// `sqrt(2 dt/τ) σ_inp` on every input channel before the input weights, so its
/// covariance per step is `s_rec² I + s_inp² B Bᵀ` (checked on 20,000 steps to 5 %).
#[test]
fn recurrent_and_input_noise_have_the_original_scales() {
    use neurode::network::{noise_signals, TrialDraws};
    let (dt, tau, s_rec, s_inp) = (10.0, 100.0, 0.01, 0.02);
    let alpha: f64 = dt / tau;
    let draws = TrialDraws {
        x0_sd: 0.0,
        noise_sd: (2.0 * alpha).sqrt() * s_rec,
        noise_dt: dt,
        input_noise_sd: (2.0 * alpha).sqrt() * s_inp,
    };
    let b = [1.0, 0.5, 0.0, 0.0, -1.0, 2.0]; // 3 units x 2 channels
    let steps = 20_000;
    let sig = noise_signals::<f64>(&draws, 3, steps as f64 * dt, &[5], &b);
    let mut cov = [[0.0; 3]; 3];
    for k in 0..steps {
        let e = sig[0].at(k as f64 * dt + 0.5 * dt);
        // A step of dt adds dt * e to x.
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] += dt * e[i] * dt * e[j] / steps as f64;
            }
        }
    }
    let (sr, si) = (draws.noise_sd, draws.input_noise_sd);
    for i in 0..3 {
        for j in 0..3 {
            let bb: f64 = (0..2).map(|c| b[i + 3 * c] * b[j + 3 * c]).sum();
            let want = if i == j { sr * sr } else { 0.0 } + si * si * bb;
            let scale = sr * sr + si * si * 5.0;
            assert!(
                (cov[i][j] - want).abs() < 0.05 * scale,
                "cov[{i}][{j}] = {} vs {want}",
                cov[i][j]
            );
        }
    }
    // A config's draws carry the original's per-step scales: at its defaults (dt 10,
    // tau 100, sigma 0.01) sqrt(2 alpha) sigma = 0.0044721360 (seed-numbers.md §D).
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml").unwrap();
    let text = text
        .replace("tau = 10.0", "tau = 100.0")
        .replace("noise_dt = 1.0", "noise_dt = 10.0\nnoise_inp = 0.01")
        .replace("dt = 1.0\n", "dt = 10.0\n");
    let cfg = neurode::config::TrainConfig::parse(&text, "noise.toml").unwrap();
    let d = cfg.model.kind().draws();
    assert!((d.noise_sd - 0.004_472_136_0).abs() < 1e-10, "{d:?}");
    assert!((d.input_noise_sd - 0.004_472_136_0).abs() < 1e-10, "{d:?}");
    assert_eq!(d.noise_dt, 10.0);
    // Noise drawn once per noise_dt needs the solver's step to be noise_dt.
    let bad = text.replace("dt = 10.0\n\n[training]", "dt = 5.0\n\n[training]");
    let e = neurode::config::TrainConfig::parse(&bad, "noise.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.noise_dt"), "{e}");
}

/// `elman = true` needs Euler with `dt = tau`, and then one step is `W φ(x) + W_in u + b`.
#[test]
fn the_elman_option_of_a_config() {
    use neurode::config::TrainConfig;
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml").unwrap();
    let elman = text.replace("tau = 10.0", "tau = 10.0\nelman = true");
    let e = TrainConfig::parse(&elman, "elman.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.elman") && e.contains("dt = 10"), "{e}");
    let ok = elman.replace("tau = 10.0\n", "tau = 1.0\n");
    let cfg = TrainConfig::parse(&ok, "elman.toml").unwrap();
    let neurode::network::ModelConfig::Multiregion(m) = &cfg.model else {
        panic!("a multi-region config")
    };
    let (mut rnn, _) = m.network::<f64>(3).unwrap();
    rnn.set_inputs(vec![PiecewiseConstant::new(1, vec![], vec![0.7]).unwrap()])
        .unwrap();
    let n = rnn.dim();
    let mut rng = Normal::new(2);
    let x0: Vec<f64> = (0..n).map(|_| rng.sample()).collect();
    let sol = integrate(&rnn, (0.0, 1.0))
        .stepper(Stepper::Euler)
        .fixed_dt(1.0)
        .x0(x0.clone())
        .save_at(vec![1.0])
        .run()
        .unwrap();
    let w = rnn.connectivity().effective();
    let b = rnn.bias().unwrap();
    for i in 0..n {
        let rec: f64 = (0..n).map(|j| w[i + j * n] * x0[j].max(0.0)).sum();
        let want = rec + rnn.input_weights()[i] * 0.7 + b[i];
        assert!((sol.state(0, 0)[i] - want).abs() < 1e-12);
    }
}

/// `learnable_bias` is per region: training moves the tonic input of the learnable
/// region's units and leaves the others' exactly as they were.
#[test]
fn the_tonic_input_trains_per_region() {
    use neurode::config::TrainConfig;
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml").unwrap();
    let text = text.replace(
        "name = \"thal\"\nnum_units = 20\nsign = \"pos\"\nbase_firing = 0.1",
        "name = \"thal\"\nnum_units = 20\nsign = \"pos\"\nbase_firing = 0.1\nlearnable_bias = true",
    );
    assert!(text.contains("learnable_bias = true"));
    let cfg = TrainConfig::parse(&text, "bias.toml").unwrap();
    let mut tr = neurode::train::Trainer::<f64>::new(&cfg).unwrap();
    let views = tr.network().param_views();
    let bias = views.iter().find(|v| v.name == "bias").unwrap();
    let before = tr.theta()[bias.offset..bias.offset + bias.len()].to_vec();
    for _ in 0..20 {
        tr.step().unwrap();
    }
    let after = &tr.theta()[bias.offset..bias.offset + bias.len()];
    // ctx_exc and ctx_inh (units 0..50) fixed, thal (50..70) trained.
    assert_eq!(&after[..50], &before[..50]);
    assert!(after[50..].iter().zip(&before[50..]).any(|(a, b)| a != b));
    assert_eq!(tr.trained()[bias.offset..bias.offset + 50], [false; 50]);
}
