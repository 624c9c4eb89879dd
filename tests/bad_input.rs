//! Bad input as a new user would try it (acceptance 8 of the Kim issue): sizes that would
//! exhaust memory, sampling intervals and steps that cannot be represented against the
//! trial, a step longer than the trial. Each is refused before anything large is
//! allocated, with a message that says what and what to do, for every config kind; none
//! panics, and the CLI exits with the message.

use std::process::Command;

use neurode::config::{Overrides, TrainConfig};

fn load(path: &str) -> TrainConfig {
    TrainConfig::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of `path`'s config with `edit` applied to its text.
fn err_with(path: &str, edit: &dyn Fn(&str) -> String) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match TrainConfig::parse(&edit(&text), path) {
        Ok(_) => panic!("{path}: the edited config was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Replaces the line `key = ...` of `text` (its first) by `key = value`.
fn set(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                done = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const LOWRANK: &str = "configs/lowrank_context_switch.toml";
const KIM: [&str; 3] = [
    "configs/kim_go_nogo.toml",
    "configs/kim_xor.toml",
    "configs/kim_mante.toml",
];

#[test]
fn a_network_too_large_for_memory_is_refused_with_the_estimate() {
    for path in [LOWRANK, KIM[0], KIM[1], KIM[2]] {
        let e = err_with(path, &|t| set(t, "n", "10000000"));
        assert!(
            e.contains("`model.n`") && e.contains("GiB") && e.contains("smaller network"),
            "{path}: {e}"
        );
    }
    // The CLI override too: an error exit, no allocation abort.
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args([
            "train",
            KIM[0],
            "--N",
            "10000000",
            "--out",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("GiB") && !err.contains("panicked"), "{err}");
    // And through `neurode sweep`, which takes the same options.
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(["sweep", KIM[1], "--N", "10000000", "--seeds", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("GiB") && !err.contains("panicked"), "{err}");
}

#[test]
fn a_sampling_interval_finer_than_the_trial_can_hold_is_refused() {
    let e = err_with(LOWRANK, &|t| set(t, "sample_dt", "1e-300"));
    assert!(
        e.contains("`task.sample_dt`") && e.contains("at least"),
        "{e}"
    );
    // The Kim models' noise step is their sampling interval.
    for path in KIM {
        let e = err_with(path, &|t| set(t, "x0_sd", "0.01\nnoise_dt = 1e-300"));
        assert!(
            e.contains("`model.noise_dt`") && e.contains("at least"),
            "{path}: {e}"
        );
    }
}

#[test]
fn steps_that_cannot_be_taken_are_refused_with_the_remedy() {
    for path in [LOWRANK, KIM[0], KIM[1], KIM[2]] {
        // Longer than the trial: not "the loss is NaN".
        let e = err_with(path, &|t| set(t, "dt", "100000.0"));
        assert!(
            e.contains("`solver.dt`") && e.contains("longer than the trial"),
            "{path}: {e}"
        );
        // So short that the trial would take more steps than allowed.
        let e = err_with(path, &|t| set(t, "dt", "1e-300"));
        assert!(
            e.contains("`solver.dt`") && e.contains("use a larger step"),
            "{path}: {e}"
        );
    }
}

#[test]
fn kim_settings_out_of_range_name_the_key() {
    let cases = [
        ("p_inh", "1.5", "model.p_inh"),
        ("p_rec", "0.0", "model.p_rec"),
        ("taus", "[20.0, 4.0]", "model.taus"),
        ("gain", "-1.0", "model.gain"),
        ("noise_sd", "-0.1", "model.noise_sd"),
    ];
    for (key, value, name) in cases {
        let e = err_with(KIM[0], &|t| set(t, key, value));
        assert!(e.contains(&format!("`{name}`")), "{key} = {value}: {e}");
    }
    // A loss that does not fit the task's targets.
    let e = err_with(KIM[1], &|t| set(t, "loss", "\"bce\""));
    assert!(e.contains("`training.loss`") && e.contains("trace"), "{e}");
    let e = err_with(LOWRANK, &|t| set(t, "loss", "\"rmse\""));
    assert!(e.contains("`training.loss`"), "{e}");
    // Overrides that do not fit the model are refused, the config left as it was.
    let mut cfg = load(LOWRANK);
    let before = cfg.clone();
    let e = cfg
        .apply(&Overrides {
            p_inh: Some(0.3),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("Kim"), "{e}");
    assert_eq!(cfg, before);
    let mut cfg = load(KIM[0]);
    let e = cfg
        .apply(&Overrides {
            act: Some("tanhh".into()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("--act") && e.contains("sigmoid"), "{e}");
}

/// `--set key=value` sets any key of the config's `[model]` table (the Kim knobs are its
/// aliases: the same config either way); a key the kind does not have, or a value that
/// does not fit, is refused with the key and the option named, the config left as it was.
#[test]
fn set_overrides_name_the_key_and_the_option() {
    let set = |pairs: &[(&str, &str)]| Overrides {
        set: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Overrides::default()
    };
    let mut by_set = load(KIM[0]);
    by_set
        .apply(&set(&[
            ("taus", "[4, 25]"),
            ("model.act", "softplus"),
            ("n", "60"),
        ]))
        .unwrap();
    let mut by_alias = load(KIM[0]);
    by_alias
        .apply(&Overrides {
            decay_taus: Some(vec![4.0, 25.0]),
            act: Some("softplus".into()),
            n: Some(60),
            ..Overrides::default()
        })
        .unwrap();
    assert_eq!(by_set, by_alias);
    assert_ne!(by_set, load(KIM[0]));

    let mut cfg = load(KIM[0]);
    let before = cfg.clone();
    let e = cfg
        .apply(&set(&[("tau_max", "30")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`model.tau_max`") && e.contains("--set tau_max") && e.contains("`kim`"),
        "{e}"
    );
    let e = cfg
        .apply(&set(&[("p_rec", "\"dense\"")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`model.p_rec`") && e.contains("--set p_rec"),
        "{e}"
    );
    let e = cfg
        .apply(&set(&[("p_rec", "1.5")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.p_rec") && e.contains("(from --set p_rec)"),
        "{e}"
    );
    assert_eq!(cfg, before);

    // The CLI: a bad key exits with the message.
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(["train", LOWRANK, "--set", "p_inh=0.3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`model.p_inh`") && err.contains("Kim"),
        "{err}"
    );
}
