//! The contextual switch task: channels, timings, labels, loss window, seeding, noise.

use neurode::tasks::contextual_switch::ContextualSwitch;
use neurode::tasks::{Target, Task};

#[test]
fn trials_follow_the_declaration() {
    let task = ContextualSwitch::default();
    let spec = task.spec();
    assert_eq!(spec.channels, ["s1", "s2", "ctx1", "ctx2"]);
    assert_eq!(spec.t_end, 100.0);
    // The last 10 ms every 0.1 ms: 90, 90.1, ..., 100 (101 samples, round numbers).
    assert_eq!(spec.loss_times.len(), 101);
    assert_eq!(spec.loss_times[0], 90.0);
    assert_eq!(spec.loss_times[100], 100.0);
    assert_eq!(spec.loss_times[37], 93.7);
    let batch = task.batch::<f64>(5, 0, 400);
    let mut per_ctx = [0usize; 2];
    for ((u, label), &ctx) in batch
        .inputs
        .iter()
        .zip(&batch.targets)
        .zip(&batch.conditions)
    {
        per_ctx[ctx] += 1;
        assert_eq!(u.times(), &[15.0]);
        let before = u.at(14.999);
        let after = u.at(15.0);
        assert_eq!(&before[..2], &[0.0, 0.0], "no stimulus before t_burn");
        let (c1, c2) = if ctx == 0 {
            (0.08, -0.14)
        } else {
            (-0.14, 0.08)
        };
        assert_eq!(&before[2..], &[c1, c2]);
        assert_eq!(&after[2..], &[c1, c2], "context cues stay on");
        assert!(after[0].abs() == 1.2 && after[1].abs() == 1.2);
        let cued = if ctx == 0 { after[0] } else { after[1] };
        assert_eq!(
            label,
            &Target::Mean(cued.signum()),
            "label = sign of the cued stimulus"
        );
    }
    assert!(per_ctx[0] > 150 && per_ctx[1] > 150, "{per_ctx:?}");
}

#[test]
fn trials_are_seeded_and_independent_of_the_batch() {
    let task = ContextualSwitch::default();
    let a = task.batch::<f64>(9, 0, 20);
    let b = task.batch::<f64>(9, 10, 10);
    assert_eq!(&a.inputs[10..], &b.inputs[..]);
    assert_eq!(&a.targets[10..], &b.targets[..]);
    let c = task.batch::<f64>(10, 0, 20);
    assert_ne!(a.targets, c.targets);
}

#[test]
fn stimulus_noise_is_piecewise_constant_per_bin() {
    let task = ContextualSwitch {
        stim_std: 0.3,
        sample_dt: 1.0,
        ..ContextualSwitch::default()
    };
    let trial = task.trial::<f64>(1, 0);
    let (u, label, ctx) = (trial.input, trial.label, trial.condition);
    // Jumps at t_burn and at every 1 ms bin edge after it: 15, 16, ..., 99.
    assert_eq!(u.times().len(), 85);
    assert_eq!(u.times()[1], 16.0);
    let cued: Vec<f64> = (15..100).map(|t| u.at(t as f64 + 0.5)[ctx]).collect();
    let mean = cued.iter().sum::<f64>() / cued.len() as f64;
    assert!(
        (mean - 1.2 * label).abs() < 0.2,
        "mean {mean}, label {label}"
    );
    assert!(
        cued.windows(2).any(|w| w[0] != w[1]),
        "noise varies between bins"
    );
    assert!(ContextualSwitch {
        t_avg: 90.0,
        ..task
    }
    .validate()
    .is_err());
}
