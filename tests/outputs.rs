//! What `simulate`, `analyze` and the plots show a user: the saved times of a simulation
//! (always the trial's end; a `--dt-save` the trial cannot hold refused), `analyze`'s short
//! per-point lines and its groups by task condition, and the plots' colours and labels.

use std::path::PathBuf;

use ndarray::{Array1, Array2};
use ndarray_npy::NpzReader;
use neurode::analyze::group_trials;
use neurode::config::TrainConfig;
use neurode::network::ModelConfig;
use neurode::plot::{line_style, target_label, tick_label, PALETTE, STYLES};
use neurode::run;
use neurode::simulate::save_times;
use neurode::tasks::Task;

mod common;
use common::{neurode, stdout_ok};

const SANITY: &str = "configs/lowrank_context_switch_sanity.toml";
const GO_NOGO: &str = "configs/kim_go_nogo.toml";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The saved times end at the trial's end, whether or not `--dt-save` divides the trial.
#[test]
fn saved_times_always_include_the_end_of_the_trial() {
    let t = save_times(3.0, 20.0, "ms").unwrap();
    assert_eq!(t, vec![0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 20.0]);
    let t = save_times(0.5, 20.0, "ms").unwrap();
    assert_eq!(t.len(), 41);
    assert_eq!(t[40], 20.0);
    // 0.1 does not add up to 0.3 exactly: the last time is the end, not 0.30000000000000004
    // nor a second time a rounding error after it.
    assert_eq!(
        save_times(0.1, 0.3, "ms").unwrap(),
        vec![0.0, 0.1, 0.2, 0.3]
    );
    // As long as the trial: its start and its end.
    assert_eq!(save_times(20.0, 20.0, "ms").unwrap(), vec![0.0, 20.0]);
}

/// A `--dt-save` longer than the trial, zero, negative or not a number is refused; the
/// error names the option, its value, the trial's length and the task's time unit.
#[test]
fn a_dt_save_the_trial_cannot_hold_is_refused() {
    let e = save_times(25.0, 20.0, "ms").unwrap_err().to_string();
    assert!(
        e.contains("--dt-save") && e.contains("25") && e.contains("20 ms"),
        "{e}"
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = save_times(bad, 300.0, "steps of 5 ms")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--dt-save") && e.contains(&format!("{bad}")) && e.contains("steps of 5 ms"),
            "{e}"
        );
    }
}

/// Through the CLI: the archive's last time is the end of the trial (20 ms for the sanity
/// config, where `--dt-save 3` does not divide it); a `--dt-save` longer than a Kim trial
/// is refused in the Kim task's unit (steps of 5 ms), as is `--trials 0`.
#[test]
fn simulate_saves_the_end_and_refuses_a_dt_save_longer_than_the_trial() {
    let out = tmp("dt-save");
    stdout_ok(&neurode(&[
        "simulate",
        SANITY,
        "--out",
        out.to_str().unwrap(),
        "--trials",
        "2",
        "--dt-save",
        "3",
    ]));
    let file = std::fs::File::open(out.join("trajectories.npz")).unwrap();
    let mut npz = NpzReader::new(file).unwrap();
    let times: Array1<f64> = npz.by_name("times").unwrap();
    assert_eq!(times.to_vec(), save_times(3.0, 20.0, "ms").unwrap());
    assert_eq!(times[times.len() - 1], 20.0);
    let readout: Array2<f64> = npz.by_name("readout").unwrap();
    assert_eq!(readout.dim(), (2, 8));
    let states: ndarray::Array3<f64> = npz.by_name("states").unwrap();
    assert_eq!(states.dim(), (2, 8, 50));
    let _ = std::fs::remove_dir_all(&out);

    let cfg = TrainConfig::load(GO_NOGO).unwrap();
    let t_end = cfg.task.spec().t_end;
    let long = format!("{}", 2.0 * t_end);
    for (args, want) in [
        (
            vec!["simulate", GO_NOGO, "--dt-save", long.as_str()],
            vec![
                "--dt-save",
                long.as_str(),
                "steps of 5 ms",
                "longer than the trial",
            ],
        ),
        (
            vec!["simulate", SANITY, "--dt-save", "1000"],
            vec!["--dt-save", "1000 ms", "20 ms"],
        ),
        (
            vec!["simulate", SANITY, "--trials", "0"],
            vec!["--trials must be at least 1"],
        ),
    ] {
        let r = neurode(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: want {w:?} in {err}");
        }
    }
}

/// `--help` says the unit of `--dt-save` is the task's (steps of 5 ms for Kim tasks).
#[test]
fn dt_save_help_names_the_task_time_unit() {
    let text = stdout_ok(&neurode(&["simulate", "--help"]));
    assert!(text.contains("steps of 5 ms"), "{text}");
}

/// Trials of different conditions are separate groups even where their inputs end alike
/// (go and no-go both end with input 0); trials of one condition and one end input share
/// one group.
#[test]
fn groups_separate_conditions_with_the_same_final_input() {
    let zero = vec![0.0];
    let groups = group_trials(
        &[0, 1, 0, 1, 1],
        &[
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            vec![1.0],
        ],
    );
    assert_eq!(
        groups,
        vec![
            (zero.clone(), vec![0, 2]),
            (zero, vec![1, 3]),
            (vec![1.0], vec![4]),
        ]
    );
}

/// The plotted lines get pairwise distinct styles up to [`STYLES`] lines, and the
/// palette's colours are far apart (no two alike, as the sixth and the first trial were).
#[test]
fn plotted_lines_have_pairwise_distinct_colours() {
    for i in 0..STYLES {
        for j in 0..i {
            assert_ne!(line_style(i), line_style(j), "lines {i} and {j}");
        }
    }
    for (i, a) in PALETTE.iter().enumerate() {
        for b in &PALETTE[..i] {
            let d = [(a.0, b.0), (a.1, b.1), (a.2, b.2)]
                .iter()
                .map(|&(x, y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(d > 60.0, "{a:?} and {b:?} are alike");
        }
    }
    // The eight trials `simulate` plots by default: eight colours, all solid.
    let eight: Vec<_> = (0..8).map(line_style).collect();
    assert!(eight.iter().all(|s| !s.1));
    for i in 0..8 {
        for j in 0..i {
            assert_ne!(eight[i].0, eight[j].0);
        }
    }
}

/// Tick labels: iterations as integers (`200`, not `200.0`), no `-0`, no rounding noise.
#[test]
fn tick_labels_are_short_and_never_negative_zero() {
    assert_eq!(tick_label(200.0, 2000.0), "200");
    assert_eq!(tick_label(1800.0, 2000.0), "1800");
    assert_eq!(tick_label(0.0, 2000.0), "0");
    assert_eq!(tick_label(-0.0, 2.0), "0");
    assert_eq!(tick_label(-1e-17, 2.0), "0");
    assert_eq!(tick_label(-0.004, 2.0), "0");
    assert_eq!(tick_label(0.30000000000000004, 1.0), "0.3");
    assert_eq!(tick_label(-0.25, 1.0), "-0.25");
    assert_eq!(tick_label(-0.5, 2.0), "-0.5");
    assert_eq!(tick_label(12.5, 40.0), "12.5");
    assert_eq!(tick_label(0.0015, 0.01), "0.0015");
}

/// Legend labels of the targets: `target +1`, `target -1`, `target 0` (not `+0`).
#[test]
fn target_labels_have_no_signed_zero() {
    assert_eq!(target_label(1.0), "target +1");
    assert_eq!(target_label(-1.0), "target -1");
    assert_eq!(target_label(0.0), "target 0");
    assert_eq!(target_label(-0.0), "target 0");
}

/// `analyze` on a (briefly trained, small) Kim go/no-go run: go and no-go are separate
/// groups though both end with input 0; every printed line is short (no full state or
/// input vectors); slow points carry no stability label; no two fixed points of a group
/// are the same point.
#[test]
fn analyze_prints_short_lines_and_separates_go_from_nogo() {
    let dir = tmp("go-nogo");
    let mut cfg = TrainConfig::load(GO_NOGO).unwrap();
    let ModelConfig::Kim(m) = &mut cfg.model else {
        panic!("{GO_NOGO} is a Kim config")
    };
    m.n = 40;
    cfg.training.n_train_trials = 30;
    cfg.training.eval_every = 30;
    cfg.training.n_val_trials = 10;
    cfg.training.stop_min_trials = 0;
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let text = stdout_ok(&neurode(&[
        "analyze",
        dir.to_str().unwrap(),
        "--quiet",
        "--trials",
        "16",
        "--inits",
        "48",
        "--grid",
        "9",
    ]));
    println!("{text}");
    for line in text.lines() {
        assert!(line.len() <= 100, "a long line: {line}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("analysis/fixed_points.json")).unwrap(),
    )
    .unwrap();
    let groups = json["groups"].as_array().unwrap();
    let conditions: Vec<&str> = groups
        .iter()
        .map(|g| g["condition"].as_str().unwrap())
        .collect();
    assert!(
        conditions.contains(&"go") && conditions.contains(&"nogo"),
        "{conditions:?}"
    );
    for g in groups {
        // One condition per group.
        let trials: Vec<u64> = g["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert!(!trials.is_empty());
        let points = g["points"].as_array().unwrap();
        let fixed: Vec<Vec<f64>> = points
            .iter()
            .filter(|p| !p["slow"].as_bool().unwrap())
            .map(|p| {
                p["x"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect();
        for p in points {
            if p["slow"].as_bool().unwrap() {
                assert_eq!(p["stability"], "slow_point");
            }
        }
        // No duplicates: fixed points of a group at least 1 % of the points' scale apart.
        let scale = fixed
            .iter()
            .map(|x| x.iter().map(|v| v * v).sum::<f64>().sqrt())
            .fold(1.0, f64::max);
        for (i, a) in fixed.iter().enumerate() {
            for b in &fixed[..i] {
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>()
                    .sqrt();
                assert!(d > 1e-2 * scale, "two copies of a point {d} apart: {text}");
            }
        }
    }
    // Printed: a header per group and one line per listed point, each naming its kind.
    let headers = text.lines().filter(|l| l.starts_with("input ")).count();
    assert_eq!(headers, groups.len(), "{text}");
    assert!(
        !text.contains("Slow") && !text.contains("StableNode"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `analyze` on the trained sanity run: a valley where the search stalls (`q` about 20,
/// states spread along it) is one slow point, not 28; every line is short (the old output
/// printed each group's points on one line of about 2,000 characters).
#[test]
fn analyze_merges_copies_and_prints_one_short_line_per_point() {
    let dir = tmp("sanity");
    let cfg = TrainConfig::load(SANITY).unwrap();
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let text = stdout_ok(&neurode(&["analyze", dir.to_str().unwrap(), "--quiet"]));
    println!("{text}");
    for line in text.lines() {
        assert!(line.len() <= 100, "a long line: {line}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("analysis/fixed_points.json")).unwrap(),
    )
    .unwrap();
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 8);
    let mut lines = 0;
    for g in groups {
        let points = g["points"].as_array().unwrap();
        assert!(
            points.len() <= 6,
            "{} points for one input: {text}",
            points.len()
        );
        lines += 1 + points.len();
    }
    // A header per group and a line per point (at most three slow points listed).
    assert!(text.lines().count() <= lines + 2, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
