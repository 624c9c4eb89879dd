//! The analysis toolkit on systems whose fixed points are known in closed form.

use neurode::analysis::{
    find_fixed_points, flow_field, linearize, pca_plane, FixedPointOptions, Plane, Probe, Stability,
};
use neurode_solvers::{Columns, JvpState, VectorField, VjpState};

/// The damped Duffing oscillator `x' = y`, `y' = x - x³ - δ y`: a saddle at the origin
/// and foci at `(±1, 0)` (stable for `δ > 0`, unstable for `δ < 0`). Its Jacobian is
/// `[[0, 1], [1 - 3x², -δ]]`.
struct Duffing {
    delta: f64,
}

impl VectorField for Duffing {
    type Scalar = f64;
    type Workspace = ();
    fn dim(&self) -> usize {
        2
    }
    fn workspace(&self, _: usize) {}
    fn rhs(&self, _: Columns<'_, f64>, x: &[f64], out: &mut [f64], _: &mut ()) {
        for (s, o) in x.chunks_exact(2).zip(out.chunks_exact_mut(2)) {
            o[0] = s[1];
            o[1] = s[0] - s[0].powi(3) - self.delta * s[1];
        }
    }
}

impl JvpState for Duffing {
    fn jvp_state(&self, _: Columns<'_, f64>, x: &[f64], v: &[f64], out: &mut [f64], _: &mut ()) {
        for ((s, v), o) in x
            .chunks_exact(2)
            .zip(v.chunks_exact(2))
            .zip(out.chunks_exact_mut(2))
        {
            o[0] = v[1];
            o[1] = (1.0 - 3.0 * s[0] * s[0]) * v[0] - self.delta * v[1];
        }
    }
}

impl VjpState for Duffing {
    fn vjp_state(&self, _: Columns<'_, f64>, x: &[f64], v: &[f64], out: &mut [f64], _: &mut ()) {
        for ((s, v), o) in x
            .chunks_exact(2)
            .zip(v.chunks_exact(2))
            .zip(out.chunks_exact_mut(2))
        {
            o[0] += (1.0 - 3.0 * s[0] * s[0]) * v[1];
            o[1] += v[0] - self.delta * v[1];
        }
    }
}

/// A grid of initial states over [-2, 2]².
fn grid_states(k: usize) -> Vec<f64> {
    let mut x = Vec::new();
    for i in 0..k {
        for j in 0..k {
            x.push(-2.0 + 4.0 * i as f64 / (k - 1) as f64 + 0.013);
            x.push(-2.0 + 4.0 * j as f64 / (k - 1) as f64 - 0.007);
        }
    }
    x
}

#[test]
fn finds_and_labels_every_fixed_point_of_the_duffing_oscillator() {
    for (delta, focus) in [
        (0.3, Stability::StableFocus),
        (-0.3, Stability::UnstableFocus),
    ] {
        let f = Duffing { delta };
        let opts = FixedPointOptions {
            outlier_distance_scale: None,
            ..FixedPointOptions::default()
        };
        let found = find_fixed_points(&f, &Probe::new(0, 0.0), &grid_states(9), &opts).unwrap();
        let fixed: Vec<_> = found.points.iter().filter(|p| !p.slow).collect();
        assert_eq!(fixed.len(), 3, "delta {delta}: {:#?}", found.points);
        for (x0, label) in [(-1.0, focus), (0.0, Stability::Saddle), (1.0, focus)] {
            let p = fixed
                .iter()
                .find(|p| (p.x[0] - x0).abs() < 1e-3)
                .unwrap_or_else(|| panic!("no point near ({x0}, 0): {fixed:#?}"));
            assert!((p.x[0] - x0).abs() < 1e-8 && p.x[1].abs() < 1e-8, "{p:?}");
            assert_eq!(p.stability, label, "delta {delta}, at ({x0}, 0): {p:?}");
        }
        assert!(
            found.n_converged >= 70,
            "{} of 81 converged",
            found.n_converged
        );
    }
}

#[test]
fn linearisation_matches_the_closed_form_jacobian() {
    let f = Duffing { delta: 0.5 };
    let lin = linearize(&f, &Probe::new(0, 0.0), &[0.5, -0.25]).unwrap();
    let expect = [[0.0, 1.0], [1.0 - 0.75, -0.5]];
    for (row, want) in lin.jacobian.iter().zip(expect) {
        for (got, want) in row.iter().zip(want) {
            assert!((got - want).abs() < 1e-15);
        }
    }
    // λ² + 0.5 λ - 0.25 = 0.
    let disc = (0.25f64 + 1.0).sqrt();
    let roots = [(-0.5 + disc) / 2.0, (-0.5 - disc) / 2.0];
    for (ev, r) in lin.eigenvalues.iter().zip(roots) {
        assert!(
            (ev.0 - r).abs() < 1e-12 && ev.1.abs() < 1e-12,
            "{:?}",
            lin.eigenvalues
        );
    }
    assert_eq!(lin.stability, Stability::Saddle);
    // J v = λ v for every eigenpair (real here).
    for (ev, v) in lin.eigenvalues.iter().zip(&lin.eigenvectors) {
        for (i, row) in lin.jacobian.iter().enumerate() {
            let jv: f64 = row.iter().zip(v).map(|(a, b)| a * b.0).sum();
            assert!((jv - ev.0 * v[i].0).abs() < 1e-12, "{lin:?}");
        }
        assert!((v.iter().map(|c| c.0 * c.0 + c.1 * c.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn stability_labels_cover_every_case() {
    let of = |e: &[(f64, f64)]| Stability::of(e, 1e-9);
    assert_eq!(of(&[(-1.0, 0.0), (-2.0, 0.0)]), Stability::StableNode);
    assert_eq!(of(&[(-1.0, 2.0), (-1.0, -2.0)]), Stability::StableFocus);
    assert_eq!(of(&[(1.0, 0.0), (2.0, 0.0)]), Stability::UnstableNode);
    assert_eq!(of(&[(1.0, 2.0), (1.0, -2.0)]), Stability::UnstableFocus);
    assert_eq!(of(&[(1.0, 0.0), (-2.0, 0.0)]), Stability::Saddle);
    assert_eq!(of(&[(0.0, 1.0), (0.0, -1.0)]), Stability::Marginal);
    assert_eq!(of(&[(-1.0, 0.0), (f64::NAN, 0.0)]), Stability::Marginal);
}

#[test]
fn region_restricted_search_holds_the_other_units() {
    // With x held at 0.5, y' = 0 gives y = (0.5 - 0.125) / δ.
    let f = Duffing { delta: 0.3 };
    let probe = Probe {
        trial: 0,
        t: 0.0,
        free: Some(vec![1]),
    };
    let inits = vec![0.5, -1.0, 0.5, 3.0];
    let found = find_fixed_points(&f, &probe, &inits, &FixedPointOptions::default()).unwrap();
    assert_eq!(found.points.len(), 1, "{:?}", found.points);
    let p = &found.points[0];
    assert_eq!(p.x[0], 0.5);
    assert!((p.x[1] - 0.375 / 0.3).abs() < 1e-10, "{p:?}");
    // The restricted Jacobian is the 1 x 1 block -δ.
    assert!((p.eigenvalues[0].0 + 0.3).abs() < 1e-12);
    assert_eq!(p.stability, Stability::StableNode);
}

#[test]
fn flow_field_and_planes() {
    let f = Duffing { delta: 0.3 };
    // The identity plane: velocities are f itself.
    let plane = Plane::new(vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0], ["x", "y"]).unwrap();
    let ff = flow_field(
        &f,
        &Probe::new(0, 0.0),
        &plane,
        (-1.0, 1.0),
        (-1.0, 1.0),
        5,
        None,
    )
    .unwrap();
    for (j, &y) in ff.ys.iter().enumerate() {
        for (i, &x) in ff.xs.iter().enumerate() {
            let k = j * 5 + i;
            assert!((ff.u[k] - y).abs() < 1e-15);
            assert!((ff.v[k] - (x - x * x * x - 0.3 * y)).abs() < 1e-15);
        }
    }
    // A skewed plane maps states to coordinates and back.
    let plane = Plane::new(vec![1.0, 2.0], vec![1.0, 1.0], vec![0.0, 2.0], ["a", "b"]).unwrap();
    let c = plane.coords(&plane.point(0.3, -0.7));
    assert!((c[0] - 0.3).abs() < 1e-14 && (c[1] + 0.7).abs() < 1e-14);
    // Principal components of points on a line (plus a little spread) find the line.
    let mut s = Vec::new();
    for k in 0..20 {
        let t = k as f64 - 10.0;
        s.extend([t, 2.0 * t + if k % 2 == 0 { 0.01 } else { -0.01 }]);
    }
    let pca = pca_plane(2, &s).unwrap();
    let e = &pca.axes[0];
    assert!((e[1] / e[0] - 2.0).abs() < 1e-3, "{e:?}");
    assert!(pca.explained.unwrap()[0] > 0.999);
    assert!(Plane::new(vec![0.0; 2], vec![1.0, 1.0], vec![2.0, 2.0], ["a", "b"]).is_err());
}

#[test]
fn bad_analysis_input_is_an_error() {
    let f = Duffing { delta: 0.3 };
    let opts = FixedPointOptions::default();
    let probe = Probe::new(0, 0.0);
    assert!(find_fixed_points(&f, &probe, &[1.0, 2.0, 3.0], &opts).is_err());
    assert!(find_fixed_points(&f, &probe, &[], &opts).is_err());
    assert!(find_fixed_points(&f, &probe, &[f64::NAN, 0.0], &opts).is_err());
    let bad = Probe {
        free: Some(vec![5]),
        ..probe.clone()
    };
    let e = find_fixed_points(&f, &bad, &[0.0, 0.0], &opts).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}
