//! The Kim et al. rate RNN's run directory and MATLAB export (acceptance 5 of its issue):
//! a short go/no-go training writes the original's `.mat`, which SciPy reads back with the
//! right shapes and values (`scripts/check_kim_mat.py` checks it against the run's
//! `params.safetensors`, including the spiking code's `W_eff = (w * m) .* som_m`). In CI
//! (`CI=true`) SciPy must be importable (`.ci/run` installs it).

use neurode::config::TrainConfig;
use neurode::run;

mod common;

#[test]
fn the_mat_export_reads_back_with_scipy() {
    let mut cfg = TrainConfig::load("configs/kim_go_nogo.toml").unwrap();
    let neurode::network::ModelConfig::Kim(m) = &mut cfg.model else {
        panic!("a Kim config")
    };
    m.n = 30;
    cfg.training.n_train_trials = 120;
    cfg.training.n_val_trials = 20;
    cfg.training.eval_every = 60;
    cfg.training.save_every = 0;
    let dir = std::env::temp_dir().join(format!("neurode-kim-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let mats: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".mat"))
        .collect();
    assert_eq!(mats.len(), 1, "{mats:?}");
    // The original's name: Task_go-nogo_N_30_Taus_4_20_Act_sigmoid_YYYY_MM_DD_HHMMSS.mat.
    let name = &mats[0];
    let prefix = "Task_go-nogo_N_30_Taus_4_20_Act_sigmoid_";
    let stamp = &name[prefix.len().min(name.len())..];
    assert!(
        name.starts_with(prefix)
            && stamp.len() == "2026_11_30_210842.mat".len()
            && stamp.ends_with(".mat")
            && stamp[..17].chars().all(|c| c.is_ascii_digit() || c == '_'),
        "{name}"
    );
    assert_eq!(
        s.json["mat_file"]
            .as_str()
            .map(|p| p.ends_with(name.as_str())),
        Some(true)
    );
    for f in [
        "metrics.csv",
        "summary.json",
        "structure.json",
        "training.png",
        "readout.png",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("iteration,train_loss,train_accuracy,val_loss,val_accuracy,val_go_accuracy,val_nogo_accuracy,"), "{csv}");
    if !common::python_has("scipy.io, numpy, safetensors") {
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["scripts/check_kim_mat.py", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "SciPy disagrees with the export");
    assert!(text.contains("all checks passed"), "{text}");
}
