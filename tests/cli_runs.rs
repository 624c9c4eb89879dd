//! The run commands as a new user meets them (issue 25): every command's bad arguments,
//! a closed stdout (`| head`) and an unwritable output are clear errors, never a panic;
//! output paths are checked before the work; a run refused at setup leaves no directory;
//! `--resume` of a finished run changes nothing; `eval` prints its result before writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

mod common;
use common::neurode;

const SANITY: &str = "configs/lowrank_context_switch_sanity.toml";
const MEANFIELD: &str = "configs/meanfield_two_pop.toml";

/// A fresh path under the temporary directory, unique to this process and `name`.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(&d);
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts an error exit (1, or clap's 2) without a panic, whose stderr holds every
/// one of `needles`; returns stderr.
fn fails_clearly(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "exit {:?}: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    err
}

/// A tiny trained run (10 iterations of the sanity config), shared by the tests that
/// read a run.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tmp("shared-run");
        train_into(&dir, &[]);
        dir
    })
}

/// `neurode train <sanity> --quiet --n_trials 160 --out <dir> [extra]`, asserted to
/// succeed.
fn train_into(dir: &Path, extra: &[&str]) -> Output {
    let out = neurode(
        &[
            &["train", SANITY, "--quiet", "--n_trials", "160"][..],
            &["--out", dir.to_str().unwrap()][..],
            extra,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// A regular file, so that any path under it cannot be written, even by root.
fn a_file(name: &str) -> PathBuf {
    let f = tmp(name);
    std::fs::write(&f, "not a directory").unwrap();
    f
}

/// Runs `args` with stdout closed before the command writes to it: the command must end
/// quietly (success, no panic message; it stops printing but finishes its work).
fn survives_closed_stdout(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
}

/// Every file under `dir` (recursively) with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
            }
        }
    }
    out
}

// ---- train ----

#[test]
fn train_bad_arguments_are_clear_errors() {
    let o = neurode(&["train", "no/such/config.toml", "--quiet"]);
    fails_clearly(&o, &["no/such/config.toml"]);
    let o = neurode(&["train", SANITY, "--quiet", "--n_trials", "0"]);
    fails_clearly(&o, &["n_train_trials"]);
    let o = neurode(&["train", SANITY, "--quiet", "--N", "-3"]);
    fails_clearly(&o, &["-3"]);
}

#[test]
fn train_survives_a_closed_stdout() {
    let dir = tmp("train-pipe");
    survives_closed_stdout(&[
        "train",
        SANITY,
        "--quiet",
        "--n_trials",
        "160",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(dir.join("summary.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--out` under a regular file: refused before training, naming the path.
#[test]
fn train_into_an_unwritable_out_is_refused_before_training() {
    let f = a_file("train-out-file");
    let out = f.join("run");
    let o = neurode(&["train", SANITY, "--quiet", "--out", out.to_str().unwrap()]);
    fails_clearly(&o, &[out.to_str().unwrap(), "not a directory"]);
    let _ = std::fs::remove_file(&f);
}

/// A config that cannot be saved (a multi-region base_firing of NaN) is an error, not a
/// panic, and leaves no run directory behind.
#[test]
fn a_run_refused_at_setup_leaves_no_directory() {
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml")
        .unwrap()
        .replace("base_firing = 0.1", "base_firing = nan");
    let cfg = tmp("nan-config.toml");
    std::fs::write(&cfg, text).unwrap();
    let dir = tmp("nan-run");
    let o = neurode(&[
        "train",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    fails_clearly(&o, &["config.toml"]);
    assert!(!dir.exists(), "{} was left behind", dir.display());
    // A network the trainer cannot build (3 input units for the task's 1 channel)
    // leaves none either.
    let text = std::fs::read_to_string("configs/multiregion_go_nogo.toml")
        .unwrap()
        .replace(
            "name = \"cue\"\nnum_units = 1",
            "name = \"cue\"\nnum_units = 3",
        );
    std::fs::write(&cfg, text).unwrap();
    let o = neurode(&[
        "train",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    fails_clearly(&o, &["3 input units"]);
    assert!(!dir.exists(), "{} was left behind", dir.display());
    let _ = std::fs::remove_file(&cfg);
}

/// An existing directory with other files is not reused as a run; an empty one is.
#[test]
fn train_refuses_a_non_empty_directory_that_is_no_run() {
    let dir = tmp("foreign-dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("metrics.csv"), "my own data").unwrap();
    let o = neurode(&["train", SANITY, "--quiet", "--out", dir.to_str().unwrap()]);
    fails_clearly(&o, &["not empty", "metrics.csv", "--out"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        "my own data"
    );
    let empty = tmp("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    train_into(&empty, &[]);
    assert!(empty.join("summary.json").exists());
    for d in [dir, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `--resume` of a finished run: no file's bytes or time change, no file is added, and
/// the run's summary is printed with a note that it is finished.
#[test]
fn resuming_a_finished_run_changes_nothing() {
    let dir = tmp("finished");
    train_into(&dir, &["--set", "n=20"]);
    let before = snapshot(&dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = train_into(&dir, &["--set", "n=20", "--resume"]);
    assert_eq!(snapshot(&dir), before, "the run directory changed");
    assert!(stderr(&o).contains("already finished"), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let printed = stdout(&o);
    let json_end = printed.rfind('}').unwrap() + 1;
    let shown: serde_json::Value = serde_json::from_str(&printed[..json_end]).unwrap();
    assert_eq!(shown, summary);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--resume` with a changed option names the key and both values.
#[test]
fn resume_with_a_changed_option_names_the_key() {
    let dir = tmp("changed");
    train_into(&dir, &["--set", "n=20"]);
    let o = neurode(&[
        "train",
        SANITY,
        "--quiet",
        "--n_trials",
        "160",
        "--set",
        "n=30",
        "--resume",
        "--out",
        dir.to_str().unwrap(),
    ]);
    fails_clearly(&o, &["model.n: 20 in the run, 30 now"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The progress message stays short, so the whole line fits about 100 columns.
#[test]
fn the_train_progress_message_is_short() {
    let m = neurode::metrics::Metrics {
        iteration: 1234,
        train_loss: 12.345_678_9,
        train_accuracy: 0.987_654_3,
        val_loss: Some(0.123_456),
        val_accuracy: Some(0.987_654),
        val_condition_accuracy: Some(vec![0.987_654, 0.912_345]),
        learning_rate: 1e-3,
        steps_per_trial: 20.0,
    };
    let msg = neurode::run::progress_message(&m, Some((0.987_654, 0.912_345)));
    assert_eq!(msg, "loss 12.346 acc 0.988 val 0.988 (min 0.912)");
    // The bar (20), "pos/len" of a 5-digit run (11), the rate (11), the eta (8) and the
    // spaces leave the message 48 columns of 100.
    assert!(msg.len() <= 48, "{} columns: {msg}", msg.len());
    assert_eq!(
        neurode::run::progress_message(&m, None),
        "loss 12.346 acc 0.988"
    );
}

// ---- eval ----

#[test]
fn eval_bad_arguments_are_clear_errors() {
    let o = neurode(&["eval", "no/such/run"]);
    fails_clearly(&o, &["no/such/run"]);
    let run = trained_run().to_str().unwrap();
    let o = neurode(&["eval", run, "--trials", "0"]);
    fails_clearly(&o, &["--trials"]);
    let o = neurode(&["eval", run, "--trials", "-5"]);
    fails_clearly(&o, &["-5"]);
}

#[test]
fn eval_survives_a_closed_stdout() {
    let out = tmp("eval-pipe-out");
    survives_closed_stdout(&[
        "eval",
        trained_run().to_str().unwrap(),
        "--trials",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    // The files are written all the same.
    assert!(out.join("eval.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// An `--out` that cannot be written: the result is still printed, the error names the
/// path and suggests `--out`; a writable `--out` gets the files, not the run directory.
#[test]
fn eval_prints_its_result_before_writing_and_writes_to_out() {
    let f = a_file("eval-out-file");
    let bad = f.join("eval");
    let run = trained_run();
    let o = neurode(&[
        "eval",
        run.to_str().unwrap(),
        "--trials",
        "20",
        "--out",
        bad.to_str().unwrap(),
    ]);
    fails_clearly(&o, &[bad.to_str().unwrap(), "--out"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["trials"], 20);
    assert!(shown["accuracy"].is_number());

    let good = tmp("eval-out");
    let o = neurode(&[
        "eval",
        run.to_str().unwrap(),
        "--trials",
        "20",
        "--seed",
        "4242",
        "--out",
        good.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(good.join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        written,
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    );
    assert!(good.join("eval_readout.png").exists());
    let _ = std::fs::remove_file(&f);
    let _ = std::fs::remove_dir_all(&good);
}

// ---- simulate ----

#[test]
fn simulate_bad_arguments_are_clear_errors() {
    let o = neurode(&["simulate", "no/such/config.toml"]);
    fails_clearly(&o, &["no/such/config.toml"]);
    let o = neurode(&["simulate", SANITY, "--trials", "0"]);
    fails_clearly(&o, &["--trials"]);
    let o = neurode(&["simulate", SANITY, "--trials", "-1"]);
    fails_clearly(&o, &["-1"]);
}

#[test]
fn simulate_survives_a_closed_stdout() {
    let out = tmp("simulate-pipe");
    survives_closed_stdout(&[
        "simulate",
        SANITY,
        "--trials",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn simulate_into_an_unwritable_out_is_a_clear_error() {
    let f = a_file("simulate-out-file");
    let out = f.join("sim");
    let o = neurode(&[
        "simulate",
        SANITY,
        "--trials",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    fails_clearly(&o, &[out.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
}

// ---- analyze ----

#[test]
fn analyze_bad_arguments_are_clear_errors() {
    let o = neurode(&["analyze", "no/such/run", "--quiet"]);
    fails_clearly(&o, &["no/such/run"]);
    let o = neurode(&["analyze", trained_run().to_str().unwrap(), "--grid", "-2"]);
    fails_clearly(&o, &["-2"]);
}

#[test]
fn analyze_survives_a_closed_stdout() {
    let out = tmp("analyze-pipe");
    survives_closed_stdout(&[
        "analyze",
        trained_run().to_str().unwrap(),
        "--quiet",
        "--trials",
        "4",
        "--inits",
        "4",
        "--grid",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn analyze_into_an_unwritable_out_is_a_clear_error() {
    let f = a_file("analyze-out-file");
    let out = f.join("analysis");
    let o = neurode(&[
        "analyze",
        trained_run().to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    fails_clearly(&o, &[out.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
}

// ---- sweep ----

/// `neurode sweep <sanity> --seeds 2 --n_trials 160 [extra]`.
fn sweep_args(extra: &[&str]) -> Vec<String> {
    ["sweep", SANITY, "--seeds", "2", "--n_trials", "160"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn sweep_bad_arguments_are_clear_errors() {
    let o = neurode(&["sweep", "no/such/config.toml"]);
    fails_clearly(&o, &["no/such/config.toml"]);
    let o = neurode(&["sweep", SANITY, "--seeds", "0"]);
    fails_clearly(&o, &["--seeds"]);
    let o = neurode(&["sweep", SANITY, "--seeds", "-2"]);
    fails_clearly(&o, &["-2"]);
    let o = neurode(&["sweep", SANITY, "--seeds", "2", "--parallel", "0"]);
    fails_clearly(&o, &["--parallel"]);
}

#[test]
fn sweep_survives_a_closed_stdout() {
    let args = sweep_args(&["--quiet"]);
    survives_closed_stdout(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// `--json` under a missing directory or a regular file fails before any seed trains
/// (the sweep's full size would take minutes), naming the path.
#[test]
fn sweep_checks_its_json_path_before_training() {
    let f = a_file("sweep-json-file");
    let missing = tmp("sweep-no-dir").join("results.json");
    for p in [f.join("results.json"), missing] {
        let start = std::time::Instant::now();
        let o = neurode(&[
            "sweep",
            "configs/lowrank_context_switch.toml",
            "--seeds",
            "8",
            "--json",
            p.to_str().unwrap(),
        ]);
        let err = fails_clearly(&o, &[p.to_str().unwrap()]);
        assert!(!err.contains("seed 1"), "a seed trained first: {err}");
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    }
    let _ = std::fs::remove_file(&f);
}

/// `--quiet` hides the progress; the table is printed either way, on stdout alone.
#[test]
fn sweep_quiet_prints_the_table_and_progress_stays_on_stderr() {
    for extra in [&["--quiet"][..], &[][..]] {
        let args = sweep_args(extra);
        let o = neurode(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.starts_with("lowrank_context_switch_sanity\n\n| seed |"),
            "{out}"
        );
        assert!(out.contains("seeds met the stop rule"), "{out}");
        assert!(!out.contains("it/s") && !out.contains("seed 1:"), "{out}");
        assert!(stderr(&o).contains("seed 1:"), "{}", stderr(&o));
    }
}

// ---- meanfield ----

#[test]
fn meanfield_bad_arguments_are_clear_errors() {
    let o = neurode(&["meanfield", "no/such/config.toml"]);
    fails_clearly(&o, &["no/such/config.toml"]);
    let o = neurode(&["meanfield", MEANFIELD, "--threads", "-1"]);
    fails_clearly(&o, &["-1"]);
    let o = neurode(&["meanfield", MEANFIELD, "--set", "nokey"]);
    fails_clearly(&o, &["nokey"]);
}

#[test]
fn meanfield_survives_a_closed_stdout() {
    let out = tmp("meanfield-pipe");
    survives_closed_stdout(&[
        "meanfield",
        MEANFIELD,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn meanfield_into_an_unwritable_out_is_a_clear_error() {
    let f = a_file("meanfield-out-file");
    let out = f.join("mf");
    let o = neurode(&["meanfield", MEANFIELD, "--out", out.to_str().unwrap()]);
    fails_clearly(&o, &[out.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
}
