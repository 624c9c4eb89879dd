//! Parameter files and checkpoints that cannot be trusted, and training that blows up:
//! a non-finite value in a parameter file or a checkpoint is refused by every command that
//! loads it (naming the file, the array and the entry); huge weights and a time constant
//! far below the step are reported as a divergence (iteration, trial, time) instead of
//! training on; `best.safetensors` is the best validation accuracy, ties to the lower
//! loss; `scripts/check_params.py` without a run directory prints its usage.

use std::path::{Path, PathBuf};
use std::process::Command;

use neurode::config::TrainConfig;
use neurode::io::{read_safetensors, write_safetensors};
use neurode::network::ModelConfig;
use neurode::run;
use neurode::tasks::Task;
use neurode::train::{better_validation, Blowup, Phase, TrainError, Trainer};

mod common;
use common::fails;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The sanity config, cut to `iterations` iterations with a small validation set.
fn tiny(iterations: usize) -> TrainConfig {
    let mut cfg = TrainConfig::load("configs/lowrank_context_switch_sanity.toml").unwrap();
    let t = &mut cfg.training;
    t.n_train_trials = iterations * t.batch_size;
    t.n_val_trials = 20;
    t.eval_every = 2;
    cfg
}

/// Rewrites the safetensors file `path`, applying `edit` to each array's name and data.
fn edit(path: &Path, edit: &dyn Fn(&str, &mut Vec<f64>)) {
    let (mut arrays, meta) = read_safetensors::<f64>(path).unwrap();
    for a in &mut arrays {
        edit(&a.name, &mut a.data);
    }
    write_safetensors(path, &arrays, meta).unwrap();
}

/// A run directory holding a checkpoint after 2 of the run's 6 iterations (and its
/// `config.toml`), as a run interrupted there leaves it.
fn interrupted_run(name: &str) -> (PathBuf, PathBuf) {
    let cfg = tiny(6);
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut tr = Trainer::<f64>::new(&cfg).unwrap();
    tr.step().unwrap();
    tr.step().unwrap();
    tr.save_checkpoint(&run::checkpoint_path(&dir)).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    (dir, config)
}

/// A NaN in `params.safetensors` (as a run that diverged writes it) is refused by `eval`,
/// `simulate` and `analyze`, naming the file, the array and its entry, and saying what to
/// do; before, they reported `"loss": null` and a 'StableNode (readout NaN)' with exit 0.
#[test]
fn nan_in_a_parameter_file_is_refused_by_eval_simulate_and_analyze() {
    let dir = tmp("nan-params");
    run::train(&tiny(4), &dir, false, &mut |_, _, _| {}).unwrap();
    // M is N x R = 50 x 2, row-major: entry [3, 1] is the 8th value.
    edit(&dir.join("params.safetensors"), &|name, data| {
        if name == "M" {
            data[3 * 2 + 1] = f64::NAN;
        }
    });
    let d = dir.to_str().unwrap();
    let sim_out = dir.join("sim");
    let ana_out = dir.join("ana");
    for args in [
        vec!["eval", d, "--trials", "8"],
        vec![
            "simulate",
            d,
            "--trials",
            "2",
            "--out",
            sim_out.to_str().unwrap(),
        ],
        vec!["analyze", d, "--out", ana_out.to_str().unwrap()],
    ] {
        let err = fails(&args);
        for want in [
            "parameter file",
            "params.safetensors",
            "array M holds NaN at index [3, 1]",
            "Train the run again",
        ] {
            assert!(err.contains(want), "{} lacks {want:?}: {err}", args[0]);
        }
    }
    assert!(!dir.join("eval.json").exists(), "eval wrote a result");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An infinite value in a checkpoint is refused by `--resume` (it trained on before, Adam's
/// infinite second moment silently freezing the weight), naming the array and its entry.
#[test]
fn a_non_finite_checkpoint_is_refused_on_resume() {
    let (dir, config) = interrupted_run("inf-ckpt");
    edit(&run::checkpoint_path(&dir), &|name, data| {
        if name == "adam_v" {
            data[5] = f64::INFINITY;
        }
    });
    let d = dir.to_str().unwrap();
    let err = fails(&[
        "train",
        config.to_str().unwrap(),
        "--quiet",
        "--out",
        d,
        "--resume",
    ]);
    for want in [
        "checkpoint",
        "checkpoint.safetensors",
        "array adam_v holds inf at index [5]",
        "Resume from an earlier copy",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
    assert!(!dir.join("summary.json").exists(), "the run went on");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint edited to hold weights of 1e30 resumes into a divergence error at its
/// first iteration (the third), naming the trial and the time; before, it trained on to a
/// useless network without a word.
#[test]
fn huge_checkpoint_weights_are_a_divergence_on_resume() {
    let (dir, config) = interrupted_run("huge-ckpt");
    edit(&run::checkpoint_path(&dir), &|name, data| {
        if name == "theta" {
            data.iter_mut().for_each(|v| *v = 1e30);
        }
    });
    let d = dir.to_str().unwrap();
    let err = fails(&[
        "train",
        config.to_str().unwrap(),
        "--quiet",
        "--out",
        d,
        "--resume",
    ]);
    for want in [
        "iteration 3 (training batch)",
        "the network diverged",
        "trial 0's state",
        "at t = ",
        "smaller solver.dt",
        "larger time constants",
        "smaller training.learning_rate",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
    assert!(
        !dir.join("params.safetensors").exists(),
        "parameters written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Weights of 1e30 in `params.safetensors` are refused by `eval` as a divergence, not
/// reported as a loss.
#[test]
fn huge_weights_in_a_parameter_file_are_a_divergence_in_eval() {
    let dir = tmp("huge-params");
    run::train(&tiny(2), &dir, false, &mut |_, _, _| {}).unwrap();
    edit(&dir.join("params.safetensors"), &|name, data| {
        if name == "M" || name == "N" {
            data.iter_mut().for_each(|v| *v = 1e30);
        }
    });
    let err = fails(&["eval", dir.to_str().unwrap(), "--trials", "8"]);
    for want in [
        "evaluation: the network diverged",
        "trial 0's state",
        "at t = ",
    ] {
        assert!(err.contains(want), "lacks {want:?}: {err}");
    }
    assert!(!dir.join("eval.json").exists(), "eval wrote a result");
    // simulate and analyze of the same run: an error naming the trial and the time, not
    // trajectories of 1e60 written with exit code 0.
    for (cmd, wrote) in [("simulate", "simulation"), ("analyze", "analysis")] {
        let err = fails(&[cmd, dir.to_str().unwrap(), "--trials", "8"]);
        assert!(
            err.contains("diverged") && err.contains("trial 0's state") && err.contains("at t = "),
            "{cmd}: {err}"
        );
        assert!(!dir.join(wrote).exists(), "{cmd} wrote its outputs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A time constant far below the step (`tau = 1e-3` with `dt = 1`: Euler multiplies the
/// state by about -999 a step; config checking refuses it, the trainer is built here
/// without that check) stops training at its first iteration with the trial and the first
/// saved time past the bound; validation and evaluation likewise refuse to report a loss.
#[test]
fn a_time_constant_far_below_the_step_is_a_divergence_naming_iteration_and_trial() {
    let mut cfg = tiny(4);
    match &mut cfg.model {
        ModelConfig::Lowrank(m) => m.tau = 1e-3,
        other => panic!("the sanity config is low-rank, not {}", other.name()),
    }
    let first_loss_time = cfg.task.spec().loss_times[0];
    let mut tr = Trainer::<f64>::new(&cfg).unwrap();
    let err = tr.step().unwrap_err();
    match &err {
        TrainError::Diverged {
            phase: Phase::Training { iteration: 1 },
            what:
                Blowup::State {
                    trial: 0,
                    time,
                    unit,
                    value,
                },
        } => {
            assert_eq!(*time, first_loss_time);
            assert_eq!(*unit, "ms");
            assert!(value.abs() > 1e10 || !value.is_finite(), "{value}");
        }
        e => panic!("not a divergence of trial 0 at iteration 1: {e}"),
    }
    let msg = err.to_string();
    let at = format!("at t = {first_loss_time} ms");
    for want in [
        "iteration 1 (training batch)",
        "trial 0's state",
        &at,
        "smaller solver.dt",
    ] {
        assert!(msg.contains(want), "lacks {want:?}: {msg}");
    }
    assert_eq!(tr.iteration(), 0, "the parameters were stepped");
    assert!(matches!(
        tr.validate(),
        Err(TrainError::Diverged {
            phase: Phase::Validation { iteration: 0 },
            what: Blowup::State { .. },
        })
    ));
    assert!(matches!(
        tr.evaluate_fresh(5, 4),
        Err(TrainError::Diverged {
            phase: Phase::Evaluation,
            ..
        })
    ));
}

/// The selection rule of `best.safetensors`: a higher validation accuracy wins; at the
/// same accuracy, the lower validation loss (a later 100 % with a lower loss replaces an
/// earlier 100 %); an equal one keeps the earlier.
#[test]
fn best_is_the_highest_accuracy_then_the_lowest_loss() {
    assert!(better_validation(0.5, 9.0, None));
    assert!(better_validation(1.0, 0.2, Some((1.0, 0.5))));
    assert!(!better_validation(1.0, 0.5, Some((1.0, 0.2))));
    assert!(!better_validation(1.0, 0.5, Some((1.0, 0.5))));
    assert!(better_validation(1.0, 0.9, Some((0.95, 0.1))));
    assert!(!better_validation(0.95, 0.1, Some((1.0, 0.9))));
}

/// A run whose validation reaches its top accuracy several times keeps the one of lowest
/// loss among them, and `summary.json` reports its loss; before, the first one was kept.
#[test]
fn best_of_a_run_is_the_lowest_loss_among_its_top_accuracies() {
    let mut cfg = TrainConfig::load("configs/lowrank_context_switch_sanity.toml").unwrap();
    cfg.training.eval_every = 50;
    cfg.training.n_val_trials = 50;
    let dir = tmp("best");
    let s = run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    // metrics.csv: iteration, train_loss, train_accuracy, val_loss, val_accuracy, ...
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let vals: Vec<(usize, f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| !c[4].is_empty())
        .map(|c| {
            (
                c[0].parse().unwrap(),
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
            )
        })
        .collect();
    let top = vals.iter().map(|v| v.2).fold(f64::MIN, f64::max);
    let at_top: Vec<_> = vals.iter().filter(|v| v.2 == top).collect();
    let lowest = at_top.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    println!(
        "top validation accuracy {top} at iterations {:?}; lowest loss at {}",
        at_top.iter().map(|v| v.0).collect::<Vec<_>>(),
        lowest.0
    );
    assert_ne!(
        at_top[0].0, lowest.0,
        "the run no longer tells the rules apart: its first top validation has the lowest loss"
    );
    let best = &s.json["best"];
    assert_eq!(best["iteration"].as_u64().unwrap() as usize, lowest.0);
    assert_eq!(best["val_accuracy"].as_f64().unwrap(), top);
    let loss = best["val_loss"].as_f64().unwrap();
    assert!(
        (loss - lowest.1).abs() <= 1e-12 * lowest.1.abs(),
        "{loss} vs {}",
        lowest.1
    );
    // best.safetensors holds that iteration's parameters: evaluating them on the
    // validation set gives its loss.
    let mut tr = Trainer::<f64>::new(&cfg).unwrap();
    tr.load_params_file(&dir.join("best.safetensors")).unwrap();
    let v = tr.validate().unwrap();
    assert_eq!(v.accuracy, top);
    assert!(
        (v.loss - lowest.1).abs() <= 1e-9 * lowest.1.abs(),
        "{} vs {}",
        v.loss,
        lowest.1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scripts/check_params.py` without a run directory prints its usage and exits 2 (it
/// died with a traceback); with a directory that is not a run, it says which file is
/// missing. Skips (saying why) where python3 is missing, except in CI.
#[test]
fn check_params_script_without_a_run_directory_prints_its_usage() {
    if !common::python_has("sys") {
        return;
    }
    let out = Command::new("python3")
        .arg("scripts/check_params.py")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("usage: python3 scripts/check_params.py RUN_DIR"),
        "{err}"
    );
    assert!(!err.contains("Traceback"), "{err}");
    let missing = tmp("no-run");
    let out = Command::new("python3")
        .args(["scripts/check_params.py", missing.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("params.safetensors does not exist"), "{err}");
    assert!(!err.contains("Traceback"), "{err}");
}

/// The library's loader of a low-rank parameter file refuses a NaN too, naming the array.
#[test]
fn the_library_loader_refuses_a_non_finite_parameter_file() {
    let dir = tmp("nan-lib");
    run::train(&tiny(2), &dir, false, &mut |_, _, _| {}).unwrap();
    let params = dir.join("params.safetensors");
    assert!(neurode::network::load_lowrank::<f64>(&params).is_ok());
    edit(&params, &|name, data| {
        if name == "N" {
            data[0] = f64::NAN;
        }
    });
    let e = match neurode::network::load_lowrank::<f64>(&params) {
        Ok(_) => panic!("a NaN parameter file was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("array N holds NaN"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
