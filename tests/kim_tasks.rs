//! The Kim et al. (2019) tasks: declarations, input and target timing in the step
//! convention (output index `k` at time `k + 1`), label frequencies, seeding, the Mante
//! noise and the scoring windows.

use neurode::tasks::{GoNogo, Mante, Target, Task, TaskConfig, Xor};

fn trace(t: &Target) -> &[f64] {
    match t {
        Target::Trace { values, mask } => {
            assert_eq!(values.len(), mask.len());
            assert!(mask.iter().all(|&m| m), "every output enters the loss");
            values
        }
        Target::Mean(_) => panic!("the Kim tasks have trace targets"),
    }
}

fn check_loss_times<S: Task>(task: &S, t_steps: usize) {
    let spec = task.spec();
    assert_eq!(spec.t_end, (t_steps - 1) as f64);
    assert_eq!(spec.loss_times.len(), t_steps - 1);
    for (k, &t) in spec.loss_times.iter().enumerate() {
        assert_eq!(t, (k + 1) as f64);
    }
    assert_eq!(spec.plot_dt, 1.0);
    assert_eq!(spec.epochs.first().unwrap().start, 0.0);
    assert_eq!(spec.epochs.last().unwrap().end, spec.t_end);
    for w in spec.epochs.windows(2) {
        assert_eq!(w[0].end, w[1].start, "epochs are contiguous");
    }
}

/// Fraction of `n` trials with condition 0 and with a positive label.
fn frequencies<S: Task>(task: &S, n: usize) -> (f64, f64) {
    let b = task.batch::<f64>(3, 0, n);
    let c0 = b.conditions.iter().filter(|&&c| c == 0).count() as f64 / n as f64;
    let pos = b.labels.iter().filter(|&&l| l > 0.0).count() as f64 / n as f64;
    (c0, pos)
}

fn check_seeding<S: Task>(task: &S) {
    let a = task.trial::<f64>(11, 7);
    let b = task.trial::<f64>(11, 7);
    assert_eq!(a, b, "same seed and index, same trial");
    let x = task.batch::<f64>(11, 0, 20);
    let y = task.batch::<f64>(11, 10, 10);
    assert_eq!(&x.inputs[10..], &y.inputs[..]);
    assert_eq!(&x.targets[10..], &y.targets[..]);
    assert_eq!(&x.conditions[10..], &y.conditions[..]);
    assert_eq!(&x.labels[10..], &y.labels[..]);
    let z = task.batch::<f64>(12, 0, 20);
    assert_ne!(x.inputs, z.inputs, "another seed, other trials");
}

/// A perfect trace (the target) is correct on every trial.
fn check_perfect_is_correct<S: Task>(task: &S) {
    let b = task.batch::<f64>(5, 0, 100);
    for (t, &c) in b.targets.iter().zip(&b.conditions) {
        assert!(task.correct(trace(t), t, c), "condition {c}");
    }
}

// ---------------------------------------------------------------------------------------
// Go/no-go
// ---------------------------------------------------------------------------------------

#[test]
fn go_nogo_declaration_inputs_and_targets() {
    let task = GoNogo::default();
    task.validate().unwrap();
    let spec = task.spec();
    assert_eq!(spec.channels, ["stimulus"]);
    assert_eq!(spec.conditions, ["go", "nogo"]);
    check_loss_times(&task, 200);
    let b = task.batch::<f64>(1, 0, 40);
    let mut seen = [false; 2];
    for i in 0..b.len() {
        let (u, z, c, l) = (
            &b.inputs[i],
            trace(&b.targets[i]),
            b.conditions[i],
            b.labels[i],
        );
        seen[c] = true;
        assert_eq!(z.len(), 199);
        if c == 0 {
            assert_eq!(l, 1.0);
            assert_eq!(u.times(), &[50.0, 75.0]);
            assert_eq!(u.at(0.0), &[0.0]);
            assert_eq!(u.at(49.5), &[0.0]);
            assert_eq!(u.at(50.0), &[1.0]);
            assert_eq!(u.at(74.9), &[1.0]);
            assert_eq!(u.at(75.0), &[0.0]);
            assert_eq!(u.at(199.0), &[0.0]);
            // Target at time 75 (index 74) is 0, from time 76 (index 75) on 1.
            assert!(z[..75].iter().all(|&v| v == 0.0));
            assert!(z[75..].iter().all(|&v| v == 1.0));
        } else {
            assert_eq!(c, 1);
            assert_eq!(l, 0.0);
            assert!(u.times().is_empty());
            assert_eq!(u.at(60.0), &[0.0]);
            assert!(z.iter().all(|&v| v == 0.0));
        }
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn go_nogo_frequencies_seeding_and_precision() {
    let task = GoNogo::default();
    let (go, pos) = frequencies(&task, 400);
    assert!((go - 0.5).abs() < 0.1, "go fraction {go}");
    assert_eq!(go, pos, "label 1 exactly for go trials");
    check_seeding(&task);
    // f32 trials carry the same jumps and values.
    let a = task.trial::<f64>(2, 3);
    let b = task.trial::<f32>(2, 3);
    assert_eq!(
        a.input.times(),
        b.input
            .times()
            .iter()
            .map(|&t| t as f64)
            .collect::<Vec<_>>()
    );
    assert_eq!(a.target, b.target);
}

#[test]
fn go_nogo_scoring() {
    let task = GoNogo::default();
    check_perfect_is_correct(&task);
    let go = task.trial::<f64>(0, 0);
    let target = go.target.clone();
    let zero = vec![0.0; 199];
    // Zero readout: wrong on go, right on nogo.
    assert!(!task.correct(&zero, &target, 0));
    assert!(task.correct(&zero, &target, 1));
    // A single value 1 just before the response window: wrong for go, still fine for nogo.
    let mut o = zero.clone();
    o[74] = 1.0;
    assert!(!task.correct(&o, &target, 0));
    assert!(task.correct(&o, &target, 1));
    // ... and at the window's first index: right for go, wrong for nogo.
    let mut o = zero.clone();
    o[75] = 1.0;
    assert!(task.correct(&o, &target, 0));
    assert!(!task.correct(&o, &target, 1));
    // NoGo checks |o|; thresholds are strict.
    let mut o = zero.clone();
    o[198] = -0.3;
    assert!(!task.correct(&o, &target, 1));
    o[198] = -0.29;
    assert!(task.correct(&o, &target, 1));
    let mut o = zero.clone();
    o[198] = 0.7;
    assert!(!task.correct(&o, &target, 0));
    o[198] = 0.71;
    assert!(task.correct(&o, &target, 0));
    // A diverged (NaN) readout is wrong, as NumPy's max would make it.
    o[100] = f64::NAN;
    assert!(!task.correct(&o, &target, 0));
    assert!(!task.correct(&vec![f64::NAN; 199], &target, 1));
}

// ---------------------------------------------------------------------------------------
// XOR
// ---------------------------------------------------------------------------------------

#[test]
fn xor_declaration_inputs_and_targets() {
    let task = Xor::default();
    task.validate().unwrap();
    let spec = task.spec();
    assert_eq!(spec.channels, ["first", "second"]);
    assert_eq!(spec.conditions, ["same", "diff"]);
    check_loss_times(&task, 300);
    let b = task.batch::<f64>(1, 0, 40);
    let mut seen = [false; 2];
    for i in 0..b.len() {
        let (u, z, c, l) = (
            &b.inputs[i],
            trace(&b.targets[i]),
            b.conditions[i],
            b.labels[i],
        );
        seen[c] = true;
        assert_eq!(u.times(), &[50.0, 100.0, 110.0, 160.0]);
        let s1 = u.at(50.0)[0];
        let s2 = u.at(110.0)[1];
        assert_eq!(s1.abs(), 1.0);
        assert_eq!(s2.abs(), 1.0);
        assert_eq!(u.at(49.9), &[0.0, 0.0]);
        assert_eq!(u.at(99.9), &[s1, 0.0]);
        assert_eq!(u.at(100.0), &[0.0, 0.0]);
        assert_eq!(u.at(109.9), &[0.0, 0.0]);
        assert_eq!(u.at(159.9), &[0.0, s2]);
        assert_eq!(u.at(160.0), &[0.0, 0.0]);
        assert_eq!(l, s1 * s2);
        assert_eq!(c, usize::from(l < 0.0));
        assert_eq!(z.len(), 299);
        // Target on original indices [170, 270): times 171..=270.
        assert!(z[..170].iter().all(|&v| v == 0.0));
        assert!(z[170..270].iter().all(|&v| v == l));
        assert!(z[270..].iter().all(|&v| v == 0.0));
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn xor_frequencies_and_seeding() {
    let task = Xor::default();
    let (same, pos) = frequencies(&task, 400);
    assert!((same - 0.5).abs() < 0.1, "same fraction {same}");
    assert_eq!(same, pos);
    // The two signs are independent: each sign near 0.5.
    let b = task.batch::<f64>(3, 0, 400);
    let first_pos = b.inputs.iter().filter(|u| u.at(60.0)[0] > 0.0).count() as f64 / 400.0;
    let second_pos = b.inputs.iter().filter(|u| u.at(120.0)[1] > 0.0).count() as f64 / 400.0;
    assert!((first_pos - 0.5).abs() < 0.1, "{first_pos}");
    assert!((second_pos - 0.5).abs() < 0.1, "{second_pos}");
    check_seeding(&task);
}

#[test]
fn xor_scoring() {
    let task = Xor::default();
    check_perfect_is_correct(&task);
    let t = task.trial::<f64>(0, 0).target;
    let zero = vec![0.0; 299];
    assert!(!task.correct(&zero, &t, 0));
    assert!(!task.correct(&zero, &t, 1));
    for (c, v) in [(0, 1.0), (1, -1.0)] {
        let mut o = zero.clone();
        o[199] = v;
        assert!(!task.correct(&o, &t, c), "index 199 is outside the window");
        let mut o = zero.clone();
        o[200] = v;
        assert!(task.correct(&o, &t, c), "index 200 is inside");
        // The wrong sign does not count.
        assert!(!task.correct(&o, &t, 1 - c));
        // The window runs to the last output.
        let mut o = zero.clone();
        o[298] = v;
        assert!(task.correct(&o, &t, c));
    }
}

// ---------------------------------------------------------------------------------------
// Mante
// ---------------------------------------------------------------------------------------

#[test]
fn mante_declaration_inputs_and_targets() {
    let task = Mante::default();
    task.validate().unwrap();
    let spec = task.spec();
    assert_eq!(spec.channels.len(), 4);
    assert_eq!(spec.conditions, ["ctx_motion", "ctx_color"]);
    check_loss_times(&task, 500);
    let b = task.batch::<f64>(1, 0, 40);
    let mut seen = [false; 2];
    for i in 0..b.len() {
        let (u, z, c, l) = (
            &b.inputs[i],
            trace(&b.targets[i]),
            b.conditions[i],
            b.labels[i],
        );
        seen[c] = true;
        // A jump at every integer time in [50, 250].
        let expect: Vec<f64> = (50..=250).map(|t| t as f64).collect();
        assert_eq!(u.times(), &expect[..]);
        let ctx = if c == 0 { [1.0, 0.0] } else { [0.0, 1.0] };
        for t in [0.0, 49.9, 50.0, 149.5, 249.9, 250.0, 499.0] {
            assert_eq!(&u.at(t)[2..], &ctx, "context on the whole trial (t = {t})");
        }
        assert_eq!(&u.at(49.9)[..2], &[0.0, 0.0]);
        assert_eq!(&u.at(250.0)[..2], &[0.0, 0.0]);
        assert_ne!(u.at(50.0)[0], 0.0);
        assert_ne!(u.at(249.9)[1], 0.0);
        // Constant within a step.
        assert_eq!(u.at(120.0), u.at(120.99));
        assert_ne!(u.at(120.0)[0], u.at(121.0)[0]);
        assert_eq!(l.abs(), 1.0);
        assert_eq!(z.len(), 499);
        // Target from original index 250 (time 251) on.
        assert!(z[..250].iter().all(|&v| v == 0.0));
        assert!(z[250..].iter().all(|&v| v == l));
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn mante_noise_statistics_and_labels() {
    let task = Mante::default();
    let n = 100;
    let b = task.batch::<f64>(4, 0, n);
    let mut resid = Vec::new();
    for i in 0..n {
        let u = &b.inputs[i];
        for ch in 0..2 {
            let xs: Vec<f64> = (50..250).map(|t| u.at(t as f64 + 0.5)[ch]).collect();
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            // The sample mean of 200 draws has SD 1/√200 ≈ 0.071: its sign is the
            // channel's offset sign (|offset| = 0.5 is 7 SDs away from 0) and it lies
            // within 0.35 (5 SDs) of ±0.5.
            let sign = mean.signum();
            assert!(
                (mean - 0.5 * sign).abs() < 0.35,
                "trial {i} channel {ch}: {mean}"
            );
            if ch == b.conditions[i] {
                assert_eq!(sign, b.labels[i], "label = sign of the cued channel");
            }
            resid.extend(xs.iter().map(|x| x - 0.5 * sign));
        }
    }
    // 40 000 residuals: their mean is 0 within 5/√40000 = 0.025, their SD 1 within
    // about 5/√80000 ≈ 0.018.
    let m = resid.len() as f64;
    let mean = resid.iter().sum::<f64>() / m;
    let sd = (resid.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
    assert!(mean.abs() < 0.025, "residual mean {mean}");
    assert!((sd - 1.0).abs() < 0.02, "noise SD {sd}");
    // Noise scales with noise_sd, and noise_sd = 0 leaves two jumps.
    let quiet = Mante {
        noise_sd: 0.0,
        ..Mante::default()
    };
    let (u, c, l) = {
        let t = quiet.trial::<f64>(4, 0);
        (t.input, t.condition, t.label)
    };
    assert_eq!(u.times(), &[50.0, 250.0]);
    assert_eq!(u.at(100.0)[c], 0.5 * l);
    let (ctx, pos) = frequencies(&task, 400);
    assert!((ctx - 0.5).abs() < 0.1, "context 0 fraction {ctx}");
    assert!((pos - 0.5).abs() < 0.1, "positive label fraction {pos}");
    // Each channel's sign near 0.5, independently of the other's (quiet trials show the
    // signs exactly).
    let b = quiet.batch::<f64>(3, 0, 400);
    let frac = |f: &dyn Fn(&[f64]) -> bool| {
        b.inputs.iter().filter(|u| f(u.at(100.0))).count() as f64 / 400.0
    };
    for (what, p) in [
        ("motion > 0", frac(&|v| v[0] > 0.0)),
        ("color > 0", frac(&|v| v[1] > 0.0)),
        ("same signs", frac(&|v| v[0] * v[1] > 0.0)),
    ] {
        assert!((p - 0.5).abs() < 0.1, "{what}: {p}");
    }
}

#[test]
fn mante_seeding() {
    check_seeding(&Mante::default());
}

#[test]
fn mante_scoring() {
    let task = Mante::default();
    check_perfect_is_correct(&task);
    let b = task.batch::<f64>(6, 0, 40);
    let zero = vec![0.0; 499];
    for (t, &c) in b.targets.iter().zip(&b.conditions) {
        assert!(!task.correct(&zero, t, c));
    }
    // The window is the last 200 outputs: indices 299..=498.
    for sign in [1.0, -1.0] {
        let i = b.labels.iter().position(|&l| l == sign).unwrap();
        let (t, c) = (&b.targets[i], b.conditions[i]);
        let mut o = zero.clone();
        o[298] = sign;
        assert!(!task.correct(&o, t, c), "index 298 is outside the window");
        let mut o = zero.clone();
        o[299] = sign;
        assert!(task.correct(&o, t, c), "index 299 is inside");
        o[299] = -sign;
        assert!(!task.correct(&o, t, c), "the wrong sign does not count");
    }
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/// The key a failed check names.
#[track_caller]
fn key(r: Result<(), neurode::invalid::Invalid>) -> String {
    r.expect_err("the check should fail").key
}

#[test]
fn settings_are_validated_with_the_key() {
    let g = GoNogo::default();
    assert_eq!(
        key(GoNogo {
            t_steps: 1,
            ..g.clone()
        }
        .validate()),
        "t_steps"
    );
    assert_eq!(
        key(GoNogo {
            stim_dur: 0,
            ..g.clone()
        }
        .validate()),
        "stim_dur"
    );
    assert_eq!(
        key(GoNogo {
            stim_dur: 150,
            ..g.clone()
        }
        .validate()),
        "stim_dur"
    );
    GoNogo {
        stim_dur: 149,
        response_from: 198,
        ..g.clone()
    }
    .validate()
    .unwrap();
    assert_eq!(
        key(GoNogo {
            response_from: 199,
            ..g.clone()
        }
        .validate()),
        "response_from"
    );
    assert_eq!(
        key(GoNogo {
            response_from: 49,
            ..g.clone()
        }
        .validate()),
        "response_from"
    );
    assert_eq!(
        key(GoNogo {
            threshold: 0.0,
            ..g.clone()
        }
        .validate()),
        "threshold"
    );
    assert_eq!(
        key(GoNogo {
            threshold: f64::INFINITY,
            ..g.clone()
        }
        .validate()),
        "threshold"
    );
    assert_eq!(
        key(GoNogo {
            nogo_threshold: -0.3,
            ..g.clone()
        }
        .validate()),
        "nogo_threshold"
    );
    assert_eq!(
        key(GoNogo {
            nogo_threshold: f64::NAN,
            ..g
        }
        .validate()),
        "nogo_threshold"
    );

    let x = Xor::default();
    assert_eq!(
        key(Xor {
            t_steps: 160,
            ..x.clone()
        }
        .validate()),
        "stim_dur"
    );
    assert_eq!(
        key(Xor {
            stim_dur: 0,
            ..x.clone()
        }
        .validate()),
        "stim_dur"
    );
    assert_eq!(
        key(Xor {
            target_off: 170,
            ..x.clone()
        }
        .validate()),
        "target_off"
    );
    assert_eq!(
        key(Xor {
            target_off: 300,
            ..x.clone()
        }
        .validate()),
        "target_off"
    );
    Xor {
        target_off: 299,
        ..x.clone()
    }
    .validate()
    .unwrap();
    assert_eq!(
        key(Xor {
            target_on: 109,
            ..x.clone()
        }
        .validate()),
        "target_on"
    );
    assert_eq!(
        key(Xor {
            eval_from: 270,
            ..x.clone()
        }
        .validate()),
        "eval_from"
    );
    assert_eq!(
        key(Xor {
            threshold: -1.0,
            ..x
        }
        .validate()),
        "threshold"
    );

    let m = Mante::default();
    assert_eq!(
        key(Mante {
            t_steps: 0,
            ..m.clone()
        }
        .validate()),
        "t_steps"
    );
    assert_eq!(
        key(Mante {
            stim_dur: 449,
            ..m.clone()
        }
        .validate()),
        "stim_dur"
    );
    Mante {
        stim_dur: 448,
        ..m.clone()
    }
    .validate()
    .unwrap();
    assert_eq!(
        key(Mante {
            offset: 0.0,
            ..m.clone()
        }
        .validate()),
        "offset"
    );
    assert_eq!(
        key(Mante {
            noise_sd: -1.0,
            ..m.clone()
        }
        .validate()),
        "noise_sd"
    );
    assert_eq!(
        key(Mante {
            eval_last: 0,
            ..m.clone()
        }
        .validate()),
        "eval_last"
    );
    assert_eq!(
        key(Mante {
            eval_last: 500,
            ..m.clone()
        }
        .validate()),
        "eval_last"
    );
    Mante {
        eval_last: 499,
        ..m.clone()
    }
    .validate()
    .unwrap();
    assert_eq!(
        key(Mante {
            threshold: 0.0,
            ..m
        }
        .validate()),
        "threshold"
    );
}

#[test]
fn settings_read_from_toml() {
    let cfg: TaskConfig = toml::from_str("kind = \"go_nogo\"\nthreshold = 0.5").unwrap();
    assert_eq!(
        cfg,
        TaskConfig::GoNogo(GoNogo {
            threshold: 0.5,
            ..GoNogo::default()
        })
    );
    let cfg: TaskConfig = toml::from_str("kind = \"xor\"").unwrap();
    assert_eq!(cfg, TaskConfig::Xor(Xor::default()));
    let cfg: TaskConfig = toml::from_str("kind = \"mante\"\nnoise_sd = 0.5").unwrap();
    assert_eq!(cfg.spec().name, "mante");
    assert!(
        toml::from_str::<Mante>("noise = 0.5").is_err(),
        "unknown keys are refused"
    );
}

#[test]
fn odd_settings_do_not_panic() {
    // Trials of unchecked settings are still built (the config check reports them).
    let g = GoNogo {
        t_steps: 2,
        stim_on: 10,
        response_from: 5,
        ..GoNogo::default()
    };
    assert!(g.validate().is_err());
    let _ = g.batch::<f64>(0, 0, 4);
    let x = Xor {
        t_steps: 120,
        ..Xor::default()
    };
    assert!(x.validate().is_err());
    let _ = x.batch::<f32>(0, 0, 4);
    let m = Mante {
        t_steps: 100,
        ..Mante::default()
    };
    assert!(m.validate().is_err());
    let t = m.trial::<f64>(0, 0);
    assert!(!m.correct(&[0.0; 3], &t.target, t.condition));
}
