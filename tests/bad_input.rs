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

/// `text` with `line` added right after the header `[section]`.
fn add(text: &str, section: &str, line: &str) -> String {
    text.replacen(
        &format!("[{section}]\n"),
        &format!("[{section}]\n{line}\n"),
        1,
    )
}

/// The exit code and stderr of `neurode args` (no panic, no abort).
fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (out.status.code(), err)
}

const MULTIREGION: &str = "configs/multiregion_go_nogo.toml";
const SANITY: &str = "configs/lowrank_context_switch_sanity.toml";

/// Issue 25, panics: a multi-region `base_firing` or `init` of NaN or inf was read as absent
/// and then panicked when the run's config.toml was written. Now the region entry is named.
#[test]
fn non_finite_region_values_are_refused_naming_the_region_and_key() {
    for key in ["base_firing", "init"] {
        for v in ["nan", "inf", "-inf", "[0.1, nan]"] {
            let e = err_with(MULTIREGION, &|t| {
                t.replacen(
                    "name = \"thal\"\n",
                    &format!("name = \"thal\"\n{key} = {v}\n"),
                    1,
                )
                .replacen(
                    "base_firing = 0.1\n",
                    "",
                    usize::from(key == "base_firing"),
                )
            });
            assert!(
                e.contains(key) && e.contains("thal") && e.contains("finite"),
                "{key} = {v}: {e}"
            );
        }
    }
}

/// Issue 25, aborts: `simulate --dt-save 1e-9`, `simulate --trials 10000000`, `analyze --grid
/// 100000` and a mean-field sweep of 10^9 values are refused with the estimate and the
/// option to change, before anything large is allocated.
#[test]
fn every_command_checks_memory_before_it_allocates() {
    let (code, e) = run_cli(&[
        "simulate",
        SANITY,
        "--dt-save",
        "1e-9",
        "--out",
        "/nonexistent/s",
    ]);
    assert!(
        code == Some(1) && e.contains("GiB") && e.contains("--dt-save"),
        "{e}"
    );
    let (code, e) = run_cli(&[
        "simulate",
        SANITY,
        "--trials",
        "10000000",
        "--out",
        "/nonexistent/s",
    ]);
    assert!(
        code == Some(1) && e.contains("GiB") && e.contains("--trials"),
        "{e}"
    );
    let (code, e) = run_cli(&[
        "meanfield",
        "configs/meanfield_two_pop.toml",
        "--sweep",
        "j_ext=1:3:1000000000",
        "--out",
        "/nonexistent/m",
    ]);
    assert!(code == Some(1) && e.contains("1000000"), "{e}");
    let (code, e) = run_cli(&[
        "meanfield",
        "configs/meanfield_two_pop.toml",
        "--sweep",
        "j_ext=1:3:900000",
        "--sweep",
        "nu_ext=1:3:900000",
        "--out",
        "/nonexistent/m",
    ]);
    assert!(code == Some(1) && e.contains("GiB"), "{e}");
    let (code, e) = run_cli(&["sweep", KIM[0], "--seeds", "100000000000"]);
    assert!(code == Some(1) && e.contains("--seeds"), "{e}");
    let (code, e) = run_cli(&[
        "sweep",
        KIM[0],
        "--N",
        "20000",
        "--seeds",
        "4",
        "--parallel",
        "4",
    ]);
    assert!(code == Some(1) && e.contains("GiB"), "{e}");

    // analyze needs a trained run: a few iterations of the sanity config.
    let dir = std::env::temp_dir().join(format!("neurode_mem_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (code, e) = run_cli(&["train", SANITY, "--n_trials", "32", "--out", d, "--quiet"]);
    assert_eq!(code, Some(0), "{e}");
    let (code, e) = run_cli(&["eval", d, "--trials", "1000000000"]);
    assert!(
        code == Some(1) && e.contains("GiB") && e.contains("--trials"),
        "{e}"
    );
    let (code, e) = run_cli(&["analyze", d, "--grid", "100000", "--quiet"]);
    assert!(
        code == Some(1) && e.contains("GiB") && e.contains("--grid"),
        "{e}"
    );
    assert!(!dir.join("analysis").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 25, silent garbage in configs: each of these was accepted and ran.
#[test]
fn settings_that_ran_silently_are_refused_naming_the_key() {
    // Kim som_N larger than N (structure.json and the .mat disagreed).
    let e = err_with(KIM[0], &|t| set(t, "som_n", "300"));
    assert!(
        e.contains("`model.som_n`") && e.contains("at most N"),
        "{e}"
    );
    // Time constants far below the Euler step diverged to 1e119.
    let e = err_with(LOWRANK, &|t| set(t, "tau", "1e-6"));
    assert!(e.contains("`model.tau`") && e.contains("dt = 0.1"), "{e}");
    let e = err_with(SANITY, &|t| set(t, "tau", "0.5"));
    assert!(e.contains("`model.tau`"), "{e}");
    let e = err_with(KIM[0], &|t| set(t, "taus", "[0.5, 20.0]"));
    assert!(
        e.contains("`model.taus`") && e.contains("Euler step"),
        "{e}"
    );
    let e = err_with(MULTIREGION, &|t| set(t, "tau", "0.5"));
    assert!(e.contains("`model.tau`"), "{e}");
    // A rank above the size.
    for r in ["600", "100000", "0"] {
        let e = err_with(LOWRANK, &|t| set(t, "rank", r));
        assert!(
            e.contains("`model.rank`") && e.contains("1..=N"),
            "{r}: {e}"
        );
    }
    // Stop rules that cannot be met.
    let e = err_with(KIM[0], &|t| set(t, "stop_accuracy_above", "2.0"));
    assert!(e.contains("`training.stop_accuracy_above`"), "{e}");
    let e = err_with(KIM[0], &|t| set(t, "stop_loss_below", "0.0"));
    assert!(e.contains("`training.stop_loss_below`"), "{e}");
    let e = err_with(KIM[0], &|t| set(t, "stop_min_trials", "7000"));
    assert!(
        e.contains("`training.stop_min_trials`") && e.contains("n_train_trials = 6000"),
        "{e}"
    );
    // A region file whose input region reaches no unit.
    let text = std::fs::read_to_string(MULTIREGION).unwrap();
    let cut = text.find("[[model.regions.input_connections]]").unwrap();
    let end = text[cut..].find("\n\n").map_or(text.len(), |e| cut + e);
    let no_input = format!("{}{}", &text[..cut], &text[end..]);
    assert!(!no_input.contains("input_connections"), "{no_input}");
    let e = TrainConfig::parse(&no_input, MULTIREGION)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input region `cue`") && e.contains("input_connections"),
        "{e}"
    );
}

/// Issue 25: a config without `[task]` or `[model]` took the defaults (the sanity config
/// became a 32 s N = 500 run).
#[test]
fn a_missing_model_or_task_table_is_an_error() {
    let text = std::fs::read_to_string(SANITY).unwrap();
    let cut = |from: &str, to: &str| {
        let (a, b) = (text.find(from).unwrap(), text.find(to).unwrap());
        format!("{}{}", &text[..a], &text[b..])
    };
    for (edited, table) in [
        (cut("[task]", "[solver]"), "[task]"),
        (cut("[model]", "[task]"), "[model]"),
    ] {
        let e = TrainConfig::parse(&edited, SANITY).unwrap_err().to_string();
        assert!(e.contains(&format!("no {table} table")), "{e}");
    }
}

/// Issue 25: run names that would write outside runs/<name>.
#[test]
fn a_name_that_is_not_one_file_name_is_refused() {
    for name in ["\"\"", "\"../escape\"", "\"/abs/run\"", "\"a/b\"", "\"..\""] {
        let e = err_with(SANITY, &|t| set(t, "name", name));
        assert!(
            e.contains("`name`") && e.contains("runs/<name>"),
            "{name}: {e}"
        );
    }
    assert!(TrainConfig::parse(
        &set(
            &std::fs::read_to_string(SANITY).unwrap(),
            "name",
            "\"ok-name_2\""
        ),
        SANITY
    )
    .is_ok());
}

/// Issue 25, misleading messages: each now names the key (and its line) that is wrong.
#[test]
fn messages_name_the_key_at_fault() {
    // A wrong type in [model] or [task] (the parser pointed at the table header).
    let e = err_with(LOWRANK, &|t| set(t, "n", "\"many\""));
    assert!(
        e.contains("`model.n` (line ") && e.contains("invalid type"),
        "{e}"
    );
    let e = err_with(KIM[0], &|t| set(t, "taus", "\"fast\""));
    assert!(e.contains("`model.taus` (line "), "{e}");
    let e = err_with(KIM[0], &|t| add(t, "task", "stim_on = \"late\""));
    assert!(e.contains("`task.stim_on` (line "), "{e}");
    // A huge validation set or batch blamed model.n.
    let e = err_with(SANITY, &|t| set(t, "n_val_trials", "100000000"));
    assert!(
        e.contains("`training.n_val_trials`") && e.contains("GiB"),
        "{e}"
    );
    let e = err_with(SANITY, &|t| {
        set(
            &set(t, "batch_size", "100000000"),
            "n_train_trials",
            "100000000",
        )
    });
    assert!(
        e.contains("`training.batch_size`") && e.contains("GiB"),
        "{e}"
    );
    // Kim stim_on = 500 blamed task.stim_dur (without a line).
    for task in KIM {
        let e = err_with(task, &|t| add(t, "task", "stim_on = 500"));
        assert!(e.contains("`task.stim_on` (line "), "{task}: {e}");
    }
    // Kim t_steps = 1000000 told the user to raise solver.dt.
    let e = err_with(KIM[0], &|t| add(t, "task", "t_steps = 1000000"));
    assert!(
        e.contains("`task.t_steps` (line ") && !e.contains("solver.dt"),
        "{e}"
    );
    // --P_inh -0.5 was cut to -0 with a tip about `--`.
    let (code, e) = run_cli(&["train", KIM[0], "--P_inh", "-0.5"]);
    assert!(
        code == Some(1) && e.contains("model.p_inh") && e.contains("-0.5") && e.contains("[0, 1]"),
        "{e}"
    );
    // --act on a low-rank config names --act and the kinds that have it, once each.
    let (code, e) = run_cli(&["train", LOWRANK, "--act", "softplus"]);
    assert!(code == Some(1) && e.contains("--act"), "{e}");
    assert_eq!(e.matches("`kim`").count(), 1, "{e}");
    assert!(!e.contains("--P_inh") && e.lines().count() <= 2, "{e}");
}
