//! `neurode simulate`: a config or a run directory in, `trajectories.npz` and a PNG out;
//! NumPy reads the archive; bad input gives clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use neurode::config::TrainConfig;
use neurode::run;

mod common;
use common::stdout_ok as ok;

const SANITY: &str = "configs/lowrank_context_switch_sanity.toml";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neurode"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap()
}

fn written(dir: &Path) {
    for f in ["trajectories.npz", "simulation.png"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f} missing or empty in {}", dir.display());
    }
}

/// A config (its untrained network) and a trained run directory both simulate; the archive
/// holds what the README says, and NumPy reads it and recomputes the readout from the
/// states and the run's parameters.
#[test]
fn simulate_writes_trajectories_numpy_reads() {
    let out = tmp("config");
    let text = ok(&simulate(&[
        SANITY,
        "--out",
        out.to_str().unwrap(),
        "--trials",
        "3",
    ]));
    assert!(text.contains("simulated 3 trials"), "{text}");
    written(&out);

    let dir = tmp("run");
    let cfg = TrainConfig::load(SANITY).unwrap();
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    ok(&simulate(&[
        dir.to_str().unwrap(),
        "--trials",
        "5",
        "--dt-save",
        "0.25",
    ]));
    let sim = dir.join("simulation");
    written(&sim);
    if common::python_has("numpy, safetensors") {
        let out = Command::new("python3")
            .args([
                "scripts/check_trajectories.py",
                dir.to_str().unwrap(),
                sim.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "NumPy disagrees with the archive");
        assert!(
            text.contains("'states': ('float64', (5, 81, 50))"),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad input: each error names what is wrong, the command exits 1, nothing panics.
#[test]
fn bad_simulate_input_is_a_clear_error() {
    let empty = tmp("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (args, want) in [
        (vec![SANITY, "--trials", "0"], "--trials must be at least 1"),
        (vec![SANITY, "--dt-save=-1"], "--dt-save must be a positive"),
        (
            vec![SANITY, "--threads", "0"],
            "--threads must be at least 1",
        ),
        (vec!["configs/no_such.toml"], "no_such.toml"),
        (vec![empty.to_str().unwrap()], "not a run directory"),
    ] {
        let out = simulate(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&empty);
}
