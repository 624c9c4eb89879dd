//! Training the low-rank RNN: the sanity config learns, runs are bit-identical, a run killed
//! with SIGKILL resumes to the same parameters, bad configs give clear errors, and the
//! parameter file is plain safetensors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use neurode::config::{ConfigError, TrainConfig};
use neurode::io::{read_safetensors, write_safetensors, NamedArray};
use neurode::models::LowRankRnn;
use neurode::network::load_lowrank;
use neurode::network::ModelConfig;
use neurode::run;
use neurode::train::Trainer;
use neurode_solvers::VectorField;

mod common;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn sanity() -> TrainConfig {
    TrainConfig::load("configs/lowrank_context_switch_sanity.toml").unwrap()
}

/// The sanity config trains to well above chance (0.5) in each context, in seconds.
#[test]
fn sanity_config_trains_well_above_chance() {
    let cfg = sanity();
    let dir = tmp("sanity");
    let start = Instant::now();
    let s = run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let wall = start.elapsed().as_secs_f64();
    let f = &s.json["final"];
    let (c1, c2) = (
        f["val_ctx1_accuracy"].as_f64().unwrap(),
        f["val_ctx2_accuracy"].as_f64().unwrap(),
    );
    println!("sanity: val accuracy ctx1 {c1:.3}, ctx2 {c2:.3} in {wall:.1} s");
    assert!(c1 >= 0.9 && c2 >= 0.9, "ctx1 {c1}, ctx2 {c2}");
    assert!(wall < 60.0, "{wall} s");
    // `neurode eval`: fresh trials, per context, written to eval.json.
    let ev = run::evaluate(&dir, 300, 99).unwrap();
    let (e1, e2) = (
        ev["ctx1_accuracy"].as_f64().unwrap(),
        ev["ctx2_accuracy"].as_f64().unwrap(),
    );
    println!("sanity eval on 300 fresh trials: ctx1 {e1:.3}, ctx2 {e2:.3}");
    assert!(e1 >= 0.9 && e2 >= 0.9, "eval ctx1 {e1}, ctx2 {e2}");
    assert!(dir.join("eval.json").exists());
    for f in [
        "config.toml",
        "params.safetensors",
        "best.safetensors",
        "metrics.csv",
        "summary.json",
        "structure.json",
        "training.png",
        "readout.png",
        "latent.png",
        "eval_readout.png",
        "eval_latent.png",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    for f in [
        "training.png",
        "readout.png",
        "latent.png",
        "eval_latent.png",
    ] {
        let png = std::fs::read(dir.join(f)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{f} is not a PNG");
        assert!(png.len() > 10_000, "{f} is nearly empty");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Same config, same seed: bit-identical parameters (f64, two threads).
#[test]
fn two_runs_give_bit_identical_parameters() {
    let mut cfg = sanity();
    cfg.training.n_train_trials = 16 * 20;
    let run = || {
        let mut t = Trainer::<f64>::new(&cfg).unwrap();
        while t.iteration() < t.total_iterations() {
            t.step().unwrap();
        }
        t.theta().to_vec()
    };
    let (a, b) = (run(), run());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let mut other = cfg.clone();
    other.seed += 1;
    let mut t = Trainer::<f64>::new(&other).unwrap();
    t.step().unwrap();
    assert_ne!(t.theta(), &a[..], "a different seed must change the run");
}

fn params(dir: &Path) -> Vec<(String, Vec<f64>)> {
    let (arrays, _) = read_safetensors::<f64>(&dir.join("params.safetensors")).unwrap();
    arrays.into_iter().map(|a| (a.name, a.data)).collect()
}

/// `neurode train <cfg> --quiet --out <out> [extra]`.
fn train_cmd(cfg: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_neurode"));
    c.args([
        "train",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
    .args(extra);
    c
}

/// Runs `cmd` and asserts that it succeeds, showing its stderr if not.
fn succeeds(mut cmd: Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGKILL after a checkpoint, then `--resume`: the same final parameters as a run that
/// was never interrupted.
#[test]
fn killed_run_resumes_to_the_same_parameters() {
    let cfg_path = tmp("resume-config.toml");
    let text = "name = \"resume\"\nseed = 3\n[model]\nkind = \"lowrank\"\nn = 300\n[task]\n\
                kind = \"contextual_switch\"\nt_burn = 15.0\nt_stim = 85.0\n\
                [solver]\nstepper = \"euler\"\ndt = 0.1\n[training]\nbatch_size = 4\n\
                n_train_trials = 100\nn_val_trials = 8\neval_every = 10\nsave_every = 2\nthreads = 2\n";
    std::fs::write(&cfg_path, text).unwrap();
    let (killed, whole) = (tmp("resume-killed"), tmp("resume-whole"));
    let mut child = train_cmd(&cfg_path, &killed, &[]).spawn().unwrap();
    let ckpt = run::checkpoint_path(&killed);
    let start = Instant::now();
    while !ckpt.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("summary.json").exists(),
        "the run finished before it was killed"
    );
    let (_, meta) = read_safetensors::<f64>(&ckpt).unwrap();
    let at: usize = meta["iteration"].parse().unwrap();
    println!("killed after the checkpoint of iteration {at} of 25");
    assert!(at < 25);

    succeeds(train_cmd(&cfg_path, &killed, &["--resume"]));
    succeeds(train_cmd(&cfg_path, &whole, &[]));
    let (a, b) = (params(&killed), params(&whole));
    assert_eq!(a.len(), 6);
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{na} differs"
        );
    }
    // A second plain run into a finished directory is refused, nothing is overwritten.
    let again = train_cmd(&cfg_path, &whole, &[]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    for d in [&killed, &whole] {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_file(&cfg_path);
}

fn parse_err(text: &str) -> String {
    TrainConfig::parse(text, "test.toml")
        .unwrap_err()
        .to_string()
}

/// Bad keys, wrong types, missing files and out-of-range values are errors that name the
/// problem; none panics, and the CLI exits with an error message.
#[test]
fn bad_configs_are_clear_errors() {
    let e = parse_err("name = \"x\"\n[model]\nkind = \"lowrank\"\nn = 10\nsize = 3\n");
    assert!(
        e.contains("unknown field `size`") && e.contains("line 5"),
        "{e}"
    );
    let e = parse_err("name = \"x\"\n[model]\nn = 10\n");
    assert!(
        e.contains("`kind`") && e.contains("\"lowrank\"") && e.contains("\"kim\""),
        "{e}"
    );
    let e = parse_err("name = \"x\"\n[task]\nkind = \"stroop\"\n");
    assert!(e.contains("stroop") && e.contains("go_nogo"), "{e}");
    let e = parse_err("name = \"x\"\n[training]\nbatch_size = \"many\"\n");
    assert!(e.contains("batch_size") && e.contains("line 3"), "{e}");
    let task = "[task]\nkind = \"contextual_switch\"\n";
    let e = parse_err(&format!(
        "name = \"x\"\n[model]\nkind = \"lowrank\"\nn = 0\n{task}"
    ));
    assert!(
        e.contains("`model.n` (line 4)") && e.contains("N = 0"),
        "{e}"
    );
    let e = parse_err(&format!(
        "name = \"x\"\n[solver]\nstepper = \"euler\"\ndt = -0.1\n[model]\nkind = \"lowrank\"\n{task}"
    ));
    assert!(
        e.contains("`solver.dt` (line 4)") && e.contains("positive"),
        "{e}"
    );
    let e = parse_err("name = \"x\"\n[solver]\nstepper = \"rk4\"\n");
    assert!(e.contains("rk4") && e.contains("euler"), "{e}");
    let e = parse_err("[model]\nkind = \"lowrank\"\nn = 5\n");
    assert!(e.contains("missing field `name`"), "{e}");
    let e = TrainConfig::load("configs/does_not_exist.toml").unwrap_err();
    assert!(
        matches!(e, ConfigError::Io { .. }) && e.to_string().contains("does_not_exist"),
        "{e}"
    );

    let err = fails_with(&["train", "configs/does_not_exist.toml"]);
    assert!(err.starts_with("error: cannot read config file"), "{err}");
}

/// Runs `neurode args`, checks that it exits with status 1 without a panic, and returns
/// its stderr.
fn fails_with(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Every shipped config parses and passes its checks: a training config, a mean-field
/// config (`neurode meanfield`; its populations in a `[network]` table), or a spiking-network
/// config (`neurode simulate`; an `[architecture]` table).
#[test]
fn shipped_configs_load() {
    let (mut meanfield, mut spiking) = (0, 0);
    for f in std::fs::read_dir("configs").unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let text: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if text.contains_key("network") {
                neurode::meanfield::MeanFieldConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                meanfield += 1;
            } else if text.contains_key("architecture") {
                neurode::spiking::SpikingConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
                spiking += 1;
            } else {
                TrainConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    assert_eq!((meanfield, spiking), (2, 2));
}

/// `params.safetensors` is plain safetensors: an 8-byte little-endian header length, a
/// JSON header with dtype, shape and offsets per array, then the raw row-major data (what
/// Python's `safetensors.numpy.load_file` reads).
#[test]
fn parameter_file_is_plain_safetensors() {
    let mut cfg = sanity();
    cfg.training.n_train_trials = 32;
    let dir = tmp("format");
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let bytes = std::fs::read(dir.join("params.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let expect = [
        ("C", vec![50, 50]),
        ("M", vec![50, 2]),
        ("N", vec![50, 2]),
        ("B", vec![50, 4]),
        ("w", vec![50]),
        ("b", vec![1]),
    ];
    let data = &bytes[8 + n..];
    for (name, shape) in expect {
        let h = &header[name];
        assert_eq!(h["dtype"], "F64", "{name}");
        let s: Vec<usize> = h["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(s, shape, "{name}");
        let off: Vec<usize> = h["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            off[1] - off[0],
            8 * shape.iter().product::<usize>(),
            "{name}"
        );
        assert!(off[1] <= data.len());
    }
    // Row-major: C[0, 1] in the file is the model's C(0, 1).
    let t = Trainer::<f64>::new(&cfg).unwrap();
    let Some(lr) = t.network().downcast_ref::<LowRankRnn<f64>>() else {
        panic!("a low-rank config")
    };
    let c = lr.connectivity().bulk();
    let off = header["C"]["data_offsets"][0].as_u64().unwrap() as usize;
    let c01 = f64::from_le_bytes(data[off + 8..off + 16].try_into().unwrap());
    assert_eq!(c01, c[50]);

    // The file alone rebuilds the network and readout.
    let (net, readout) = load_lowrank::<f64>(&dir.join("params.safetensors")).unwrap();
    let trained = {
        let mut tr = Trainer::<f64>::new(&cfg).unwrap();
        let (arrays, _) = read_safetensors::<f64>(&dir.join("params.safetensors")).unwrap();
        tr.load_param_arrays(&arrays, "params").unwrap();
        tr
    };
    let x: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
    let rhs = |f: &neurode_models::LowRankRnn<f64>| {
        let mut out = vec![0.0; 100];
        f.rhs(
            neurode_solvers::Columns::new(&[0.0, 0.0]),
            &x,
            &mut out,
            &mut f.workspace(2),
        );
        out
    };
    let Some(trained_net) = trained.network().downcast_ref::<LowRankRnn<f64>>() else {
        panic!("a low-rank config")
    };
    assert_eq!(rhs(&net), rhs(trained_net));
    assert_eq!(readout, *trained.readout());

    // A file that does not fit is refused with the array named, whatever the mismatch.
    let (arrays, meta) = read_safetensors::<f64>(&dir.join("params.safetensors")).unwrap();
    let bad = dir.join("bad.safetensors");
    type Spoil = fn(&mut NamedArray<f64>);
    let cases: [(&str, Spoil, &str); 4] = [
        (
            "w",
            |a| a.data.truncate(49),
            "array w has 49 values but C is 50 x 50",
        ),
        ("w", |a| a.shape.push(1), "array w has shape [50, 1]"),
        ("b", |a| a.data.push(1.0), "array b has 2 values"),
        ("M", |a| a.name = "Q".into(), "array M is missing"),
    ];
    let refused = |path: &Path| match load_lowrank::<f64>(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    };
    for (name, spoil, expect) in cases {
        let mut spoilt = arrays.clone();
        let a = spoilt.iter_mut().find(|a| a.name == name).unwrap();
        spoil(a);
        if a.shape.len() == 1 {
            a.shape[0] = a.data.len();
        }
        write_safetensors(&bad, &spoilt, meta.clone()).unwrap();
        let err = refused(&bad);
        assert!(err.contains(expect), "{name}: {err}");
    }
    let mut no_g = meta.clone();
    no_g.remove("g");
    write_safetensors(&bad, &arrays, no_g).unwrap();
    let err = refused(&bad);
    assert!(err.contains("metadata `g`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A NumPy `.npz` (compressed, one array in Fortran order, one in float32, `g` and `tau` as
/// 0-d arrays) loads to the same network as the safetensors file; a missing scalar is named.
#[test]
fn npz_parameters_load_like_safetensors() {
    use ndarray::{arr0, Array1, Array2, ShapeBuilder};
    use ndarray_npy::NpzWriter;
    let cfg = sanity();
    let tr = Trainer::<f64>::new(&cfg).unwrap();
    let arrays = tr.param_arrays(tr.theta());
    let dir = tmp("npz");
    std::fs::create_dir_all(&dir).unwrap();
    let st = dir.join("net.safetensors");
    let meta = [("g", "0.8"), ("tau", "1")].map(|(k, v)| (k.to_string(), v.to_string()));
    write_safetensors(&st, &arrays, meta.into_iter().collect()).unwrap();

    let get = |name: &str| arrays.iter().find(|a| a.name == name).unwrap();
    let c_order = |name: &str| {
        let a = get(name);
        Array2::from_shape_vec((a.shape[0], a.shape[1]), a.data.clone()).unwrap()
    };
    let write = |path: &Path, with_tau: bool| {
        let mut npz = NpzWriter::new_compressed(std::fs::File::create(path).unwrap());
        npz.add_array("C", &c_order("C")).unwrap();
        // M in Fortran order: the same logical matrix, column-major on disk.
        let m = get("M");
        let mut mf = Array2::<f64>::zeros((m.shape[0], m.shape[1]).f());
        mf.assign(&c_order("M"));
        npz.add_array("M", &mf).unwrap();
        npz.add_array("N", &c_order("N")).unwrap();
        npz.add_array("B", &c_order("B").mapv(|v| v as f32))
            .unwrap();
        npz.add_array("w", &Array1::from(get("w").data.clone()))
            .unwrap();
        npz.add_array("b", &arr0(get("b").data[0])).unwrap();
        npz.add_array("g", &arr0(0.8)).unwrap();
        if with_tau {
            npz.add_array("tau", &arr0(1.0)).unwrap();
        }
        npz.finish().unwrap();
    };
    let npz = dir.join("net.npz");
    write(&npz, true);
    let (a, ra) = load_lowrank::<f64>(&st).unwrap();
    let (b, rb) = load_lowrank::<f64>(&npz).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(a.connectivity().m(), b.connectivity().m());
    assert_eq!(a.connectivity().bulk(), b.connectivity().bulk());
    // B went through float32: equal to f32 rounding.
    for (x, y) in a.input_weights().iter().zip(b.input_weights()) {
        assert!((x - y).abs() <= 1e-7 * x.abs(), "{x} vs {y}");
    }
    let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
    let rhs = |f: &neurode_models::LowRankRnn<f64>| {
        let mut out = vec![0.0; 50];
        f.rhs(
            neurode_solvers::Columns::new(&[0.0]),
            &x,
            &mut out,
            &mut f.workspace(1),
        );
        out
    };
    assert_eq!(rhs(&a), rhs(&b));

    write(&npz, false);
    let err = load_lowrank::<f64>(&npz)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("array `tau` is missing"), "{err}");
    std::fs::write(&npz, b"not a zip").unwrap();
    let err = load_lowrank::<f64>(&npz)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("net.npz") && err.contains(".npz"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Python reads `params.safetensors` with the `safetensors` package alone and, re-simulating
/// the trained network with numpy, gets the right sign in every context. Skips (saying why)
/// where Python with `safetensors` and `numpy` is missing, but fails in CI, whose `.ci/run`
/// installs them.
#[test]
fn python_reads_the_parameters_without_neurode() {
    if !common::python_has("safetensors, numpy, tomllib") {
        return;
    }
    let cfg = sanity();
    let dir = tmp("python");
    run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let out = Command::new("python3")
        .args(["scripts/check_params.py", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "Python disagrees with the trained network"
    );
    assert!(text.contains("'M': ('float64', (50, 2))"), "{text}");

    // The other way: NumPy writes an .npz (as a user holding arrays would) and neurode loads
    // it to the same network.
    let npz = dir.join("from_numpy.npz");
    let script = "import sys, numpy as np\n\
                  from safetensors.numpy import load_file\n\
                  p = load_file(sys.argv[1])\n\
                  np.savez(sys.argv[2], **p, g=0.8, tau=1.0)\n";
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            dir.join("params.safetensors").to_str().unwrap(),
            npz.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, ra) = load_lowrank::<f64>(&dir.join("params.safetensors")).unwrap();
    let (b, rb) = load_lowrank::<f64>(&npz).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(a.connectivity().bulk(), b.connectivity().bulk());
    assert_eq!(a.connectivity().m(), b.connectivity().m());
    assert_eq!(a.connectivity().n_vectors(), b.connectivity().n_vectors());
    assert_eq!(a.input_weights(), b.input_weights());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Training runs in f32 too (same pipeline, single precision) and learns.
#[test]
fn f32_training_learns() {
    let mut cfg = sanity();
    cfg.precision = neurode::config::Precision::F32;
    let dir = tmp("f32");
    let s = run::train(&cfg, &dir, false, &mut |_, _, _| {}).unwrap();
    let acc = s.json["final"]["val_accuracy"].as_f64().unwrap();
    let best = s.json["best"]["val_accuracy"].as_f64().unwrap();
    println!("f32 sanity: final validation accuracy {acc:.3}, best {best:.3}");
    // lr 1e-2 makes the sanity run noisy: the final point may sit in a dip; keep-best holds
    // the best parameters.
    // Chance is 0.5; solving one context only gives 0.75.
    assert!(best >= 0.85 && acc >= 0.75, "final {acc}, best {best}");
    let (arrays, _) = read_safetensors::<f32>(&dir.join("params.safetensors")).unwrap();
    assert_eq!(arrays.len(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The training gradient (readout backward + discrete adjoint through the solver) against
/// central differences of the batch loss, along random directions of all parameters, for
/// both losses and both steppers.
#[test]
fn training_gradient_matches_finite_differences() {
    use neurode::config::{LossKind, StepperName};
    use neurode::tasks::Task;
    use neurode_solvers::Normal;
    for (loss, stepper) in [
        (LossKind::Mse, StepperName::Euler),
        (LossKind::Bce, StepperName::Euler),
        (LossKind::Mse, StepperName::Tsit5),
    ] {
        let mut cfg = sanity();
        let ModelConfig::Lowrank(m) = &mut cfg.model else {
            panic!("a low-rank config")
        };
        m.n = 20;
        m.m_init_std = 3.0;
        m.n_init_std = 3.0;
        cfg.training.loss = loss;
        cfg.solver.stepper = stepper;
        cfg.solver.rtol = 1e-10;
        cfg.solver.atol = 1e-10;
        let mut tr = Trainer::<f64>::new(&cfg).unwrap();
        let trials = cfg.task.batch::<f64>(11, 0, 6);
        let (_, grad) = tr.loss_and_gradient(&trials).unwrap();
        let theta = tr.theta().to_vec();
        let mut rng = Normal::new(5);
        for _ in 0..3 {
            let d: Vec<f64> = theta.iter().map(|_| rng.sample()).collect();
            let mut at = |s: f64| {
                let th: Vec<f64> = theta.iter().zip(&d).map(|(a, b)| a + s * b).collect();
                tr.set_theta(&th).unwrap();
                tr.loss_and_gradient(&trials).unwrap().0
            };
            let eps = 1e-4;
            let fd = (8.0 * (at(eps) - at(-eps)) - (at(2.0 * eps) - at(-2.0 * eps))) / (12.0 * eps);
            let ad: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
            let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            let err = (fd - ad).abs() / fd.abs().max(ad.abs()).max(norm);
            println!("{loss:?} {stepper:?}: fd {fd:.10e} adjoint {ad:.10e} rel {err:.1e}");
            assert!(err < 1e-8, "{loss:?} {stepper:?}: fd {fd} vs {ad}");
        }
    }
}

/// The Kim et al. rate RNN's training gradient (RMSE and L1 on trace targets, per-step
/// noise, random initial states, trained time constants, more steps than the dense weights
/// gather per product) against central differences of the batch loss along random
/// directions of the trained parameters.
#[test]
fn kim_training_gradient_matches_finite_differences() {
    use neurode::config::LossKind;
    use neurode::tasks::Task;
    use neurode_solvers::Normal;
    for (path, loss) in [
        ("configs/kim_xor.toml", LossKind::Rmse),
        ("configs/kim_go_nogo.toml", LossKind::L1),
        ("configs/kim_mante.toml", LossKind::Rmse),
    ] {
        let mut cfg = TrainConfig::load(path).unwrap();
        let ModelConfig::Kim(m) = &mut cfg.model else {
            panic!("a Kim config")
        };
        m.n = 16;
        m.p_rec = 1.0;
        cfg.training.loss = loss;
        let mut tr = Trainer::<f64>::new(&cfg).unwrap();
        let trials = cfg.task.batch::<f64>(11, 0, 2);
        let (_, grad) = tr.loss_and_gradient(&trials).unwrap();
        let theta = tr.theta().to_vec();
        let mask = tr.trained().to_vec();
        let mut rng = Normal::new(5);
        for _ in 0..2 {
            // Directions in the trained parameters only (W_in is fixed).
            let d: Vec<f64> = mask
                .iter()
                .map(|&on| if on { rng.sample() } else { 0.0 })
                .collect();
            let mut at = |s: f64| {
                let th: Vec<f64> = theta.iter().zip(&d).map(|(a, b)| a + s * b).collect();
                tr.set_theta(&th).unwrap();
                tr.loss_and_gradient(&trials).unwrap().0
            };
            let eps = 1e-5;
            let fd = (8.0 * (at(eps) - at(-eps)) - (at(2.0 * eps) - at(-2.0 * eps))) / (12.0 * eps);
            let ad: f64 = grad.iter().zip(&d).map(|(a, b)| a * b).sum();
            let err = (fd - ad).abs() / fd.abs().max(ad.abs());
            println!("{path} {loss:?}: fd {fd:.10e} adjoint {ad:.10e} rel {err:.1e}");
            assert!(err < 1e-6, "{path} {loss:?}: fd {fd} vs {ad}");
        }
    }
}

/// `neurode sweep` takes `train`'s options: `--n_trials` and `--N` reach every seed's run
/// (each seed in the JSON stops at the override), and a bad one is an error, not a sweep.
#[test]
fn sweep_applies_the_command_line_options() {
    let json = tmp("sweep_options").join("sweep.json");
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(["sweep", "configs/kim_xor.toml", "--seeds", "2", "--N", "20"])
        .args(["--n_trials", "30", "--decay_taus", "4", "20", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 of 2 seeds met the stop rule"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = results.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["trials"], 30, "{r}");
    }

    let err = fails_with(&["sweep", "configs/kim_xor.toml", "--decay_taus", "20", "4"]);
    assert!(err.contains("(from --decay_taus)"), "{err}");
}

/// Drawing the next batch on a helper thread (`training.prefetch`, one worker) gives the
/// same bits as drawing it in place: parameters, per-trial losses and validations over 250
/// steps of a noisy Kim network, with and without SOM units, in f32 and f64. Needs two
/// cores for the helper to start (CI has two); with one the test says so and checks nothing.
#[test]
fn prefetched_batches_train_the_same_bits() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("skipped: one core, so training draws its batches in place");
        return;
    }
    /// θ (widened to f64, exactly) and the losses of a run.
    fn run<T: neurode_solvers::Real>(cfg: &TrainConfig, prefetch: bool) -> (Vec<f64>, Vec<f64>) {
        let mut cfg = cfg.clone();
        cfg.training.prefetch = prefetch;
        let mut tr = Trainer::<T>::new(&cfg).unwrap();
        while !tr.finished() {
            tr.step().unwrap();
        }
        assert_eq!(tr.prefetching(), prefetch);
        let mut record = tr.losses().to_vec();
        record.extend(tr.metrics().iter().filter_map(|m| m.val_loss));
        (tr.theta().iter().map(|v| v.as_f64()).collect(), record)
    }
    for (path, som) in [("configs/kim_go_nogo.toml", 0), ("configs/kim_xor.toml", 3)] {
        let mut cfg = TrainConfig::load(path).unwrap();
        let ModelConfig::Kim(m) = &mut cfg.model else {
            panic!("{path} is a Kim config")
        };
        m.n = 24;
        m.som_n = som;
        cfg.training.n_train_trials = 250;
        cfg.training.eval_every = 100;
        cfg.training.n_val_trials = 20;
        assert_eq!(cfg.training.threads, 1);
        for (a, b) in [
            (run::<f32>(&cfg, true), run::<f32>(&cfg, false)),
            (run::<f64>(&cfg, true), run::<f64>(&cfg, false)),
        ] {
            assert!(
                a.0.iter()
                    .zip(&b.0)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{path}"
            );
            assert_eq!(a.1, b.1, "{path}");
            assert_eq!(a.1.len(), 253, "{path}: 250 losses and 3 validations");
        }
    }
}

/// `--set regions_file=...` would name a file that is never read (the regions come with the
/// config): it is refused, naming the key and where to change it.
#[test]
fn set_refuses_a_region_file_after_the_config_is_read() {
    for key in ["regions_file=other.json", "n=10"] {
        let err = fails_with(&["train", "configs/multiregion_go_nogo.toml", "--set", key]);
        let name = key.split('=').next().unwrap();
        assert!(err.contains(&format!("`model.{name}`")), "{err}");
        assert!(err.contains("edit"), "{err}");
    }
}
