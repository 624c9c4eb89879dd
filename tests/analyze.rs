//! `neurode analyze`: a trained run directory in; fixed points (JSON, npz), eigenvalues
//! and two plots out. The points are checked against the network itself, not against the
//! finder's own report.

use std::path::PathBuf;
use std::process::Command;

use neurode::config::TrainConfig;
use neurode::io::read_safetensors;
use neurode::network::Net;
use neurode::run;
use neurode::solvers::{Columns, VectorField};
use neurode::train::Trainer;

const SANITY: &str = "configs/lowrank_context_switch_sanity.toml";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-analyze-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neurode"))
        .arg("analyze")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn analyze_finds_true_fixed_points_of_a_trained_run() {
    let dir = tmp("run");
    let cfg = TrainConfig::load(SANITY).unwrap();
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let out = analyze(&[
        dir.to_str().unwrap(),
        "--quiet",
        "--inits",
        "96",
        "--trials",
        "32",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let an = dir.join("analysis");
    for f in [
        "fixed_points.json",
        "fixed_points.npz",
        "eigenvalues.json",
        "flow_field.png",
        "spectrum.png",
    ] {
        let len = std::fs::metadata(an.join(f)).map_or(0, |m| m.len());
        assert!(len > 200, "{f} missing or empty");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(an.join("fixed_points.json")).unwrap())
            .unwrap();
    let groups = json["groups"].as_array().unwrap();
    // Two contexts x two stimulus signs x two stimulus signs: eight distinct inputs.
    assert_eq!(groups.len(), 8, "{text}");
    // The network of the run, rebuilt here, with each group's input held.
    let (arrays, _) = read_safetensors::<f64>(&dir.join("params.safetensors")).unwrap();
    let mut tr = Trainer::<f64>::new(&cfg).unwrap();
    tr.load_param_arrays(&arrays, "params").unwrap();
    let mut net: Net<f64> = tr.network().clone();
    let inputs: Vec<_> = groups
        .iter()
        .map(|g| {
            let u: Vec<f64> = g["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            neurode::solvers::PiecewiseConstant::new(u.len(), vec![], u).unwrap()
        })
        .collect();
    net.bind(inputs, vec![]).unwrap();
    let n = net.dim();
    let mut stable_fixed = 0;
    for (gi, g) in groups.iter().enumerate() {
        for p in g["points"].as_array().unwrap() {
            let x: Vec<f64> = p["x"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(x.len(), n);
            let mut f = vec![0.0; n];
            let Some(field) = net.downcast_ref::<neurode::models::LowRankRnn<f64>>() else {
                panic!("the sanity run is a low-rank network")
            };
            let mut ws = field.workspace(1);
            field.rhs(Columns::with_trials(&[0.0], &[gi]), &x, &mut f, &mut ws);
            let norm = f.iter().map(|v| v * v).sum::<f64>().sqrt();
            let q = p["q"].as_f64().unwrap();
            assert!(
                (0.5 * norm * norm - q).abs() <= 1e-9 * q + 1e-24,
                "reported q {q} vs {}",
                0.5 * norm * norm
            );
            if !p["slow"].as_bool().unwrap() {
                assert!(
                    norm < 1e-10,
                    "group {gi}: |f(x*)| = {norm} at a fixed point"
                );
                if p["stability"] == "stable_node" || p["stability"] == "stable_focus" {
                    stable_fixed += 1;
                    // Stable: every eigenvalue's real part is negative.
                    let ev = p["leading_eigenvalues"][0][0].as_f64().unwrap();
                    assert!(ev < 0.0);
                }
            }
        }
    }
    assert!(
        stable_fixed >= 8,
        "{stable_fixed} stable fixed points over 8 inputs: {text}"
    );
    // eigenvalues.json lists each point's full spectrum (N values).
    let eig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(an.join("eigenvalues.json")).unwrap())
            .unwrap();
    assert!(eig
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["eigenvalues"].as_array().unwrap().len() == n));
}

#[test]
fn analyze_refuses_bad_input() {
    let out = analyze(&["configs", "--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a run directory"), "{err}");
    let dir = tmp("bad");
    let cfg = TrainConfig::load(SANITY).unwrap();
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let out = analyze(&[dir.to_str().unwrap(), "--quiet", "--regions", "thal"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a multi-region network"));
    for (flag, value) in [("--inits", "0"), ("--grid", "1"), ("--init-noise", "-1")] {
        let arg = format!("{flag}={value}");
        let out = analyze(&[dir.to_str().unwrap(), "--quiet", &arg]);
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

/// A region-restricted analysis of a multi-region run moves only the named regions; the
/// others stay cancelled (zero). `--regions` needs a multi-region run.
#[test]
fn region_restricted_analysis_holds_the_other_regions() {
    let dir = tmp("regions");
    let cfg = TrainConfig::load("configs/multiregion_go_nogo.toml").unwrap();
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let out = analyze(&[
        dir.to_str().unwrap(),
        "--quiet",
        "--inits",
        "64",
        "--regions",
        "thal",
        "--cancel-others",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("analysis/fixed_points.json")).unwrap(),
    )
    .unwrap();
    let mut points = 0;
    for g in json["groups"].as_array().unwrap() {
        for p in g["points"].as_array().unwrap() {
            points += 1;
            let x = p["x"].as_array().unwrap();
            assert_eq!(x.len(), 70);
            // ctx_exc (0..40) and ctx_inh (40..50) cancelled; thal (50..70) free.
            assert!(x[..50].iter().all(|v| v.as_f64() == Some(0.0)));
            assert!(x[50..].iter().any(|v| v.as_f64() != Some(0.0)));
            // The restricted Jacobian is 20 x 20.
            assert_eq!(p["leading_eigenvalues"].as_array().unwrap().len(), 5);
        }
    }
    assert!(points >= 1);
    let eig: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("analysis/eigenvalues.json")).unwrap(),
    )
    .unwrap();
    assert!(eig
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["eigenvalues"].as_array().unwrap().len() == 20));
    let out = analyze(&[dir.to_str().unwrap(), "--quiet", "--regions", "striatum"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown region `striatum`"));
}
