//! The clustered spiking LIF network through the app: configs (TOML and the original's
//! YAML), outputs, the mean field against the network, bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{fails, neurode, stdout_ok};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzReader;
use neurode::spiking::{build, simulate, SpikingConfig, SpikingOptions};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-spiking-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

/// The original's template (VectorialNeuroModulators `4d271c6`,
/// `configs/spiking_network_simulation_config_template.yaml`), written out from its values
/// (`shared/reference/seed-systems.md` §4.5) in its layout, comments and null included.
const TEMPLATE_YAML: &str = "\
architecture:
  network:
    tau_membrane: 0.02
    tau_synaptic: 0.005
    tau_refractory: 0.005
    threshold:
      - 1.5
      - 0.75
    reset_voltage: 0.0
    j_ext:
      - 2.3
      - 2.3
      - 0.0
      - 0.0

  clusters:
    n_excitatory_background: 160
    n_inhibitory_background: 40
    n_clusters: 18
    connectivity_fraction_probs:
      - 0.2
      - 0.5
      - 0.5
      - 0.5
    j_baseline:
      - 0.63
      - 0.63
      - -1.9
      - -3.8
    j_potentiated:
      - 15.75
      - 5.45
      - 6.25
      - 5.0

stimulus:
  stimulus_shape: diff2exp  # or linear of box
  onset: 1.0
  duration: 10.0
  amplitude: 0.05
  stimulated_neurons:
  tau_rise: 0.075
  tau_decay: 0.1

external_currents:
  c_ext:
    - 320
    - 320
    - 0
    - 0
  nu_ext_baseline:
    - 7.0
    - 7.0
    - 0.0
    - 0.0

simulation:
  delta_t: 0.001
  duration_sec: 10.0
  mechanism: analytic  # or euler
  random_seed: 256
  n_neurons: 2000
  n_excitatory: 1600

settings:
  save_dir: test_sim
  sim_name: sim_name
";

fn steps_of(cfg: &SpikingConfig, steps: usize) -> Vec<Vec<u32>> {
    let mut b = build::<f64>(cfg).unwrap();
    (0..steps).map(|_| b.network.step().to_vec()).collect()
}

/// The original's YAML loads as it is and gives the same network and the same spikes as
/// `configs/lif_clustered.toml` (which adds only neurode's `record` section).
#[test]
fn the_originals_yaml_and_the_toml_template_are_the_same_network() {
    let dir = scratch("yaml");
    let yaml = dir.join("template.yaml");
    std::fs::write(&yaml, TEMPLATE_YAML).unwrap();
    let a = SpikingConfig::load(&yaml, &[]).unwrap();
    let b = SpikingConfig::load(&config("lif_clustered.toml"), &[]).unwrap();
    assert_eq!(a.cluster_spec().unwrap(), b.cluster_spec().unwrap());
    // The YAML's j_ext weighs the source classes (the original's LIFNet keeps its first two
    // entries): (2.3, 2.3, 2.3, 2.3) per pair, against the TOML's (2.3, 2.3, 0, 0); the
    // inhibitory sources are silent (c_ext = 0), so the input is the same.
    let (ea, eb) = (a.external().unwrap(), b.external().unwrap());
    assert_eq!(ea.j, [2.3; 4]);
    let skewed = dir.join("skewed.yaml");
    std::fs::write(
        &skewed,
        TEMPLATE_YAML.replace("      - 2.3\n      - 2.3\n", "      - 2.0\n      - -1.0\n"),
    )
    .unwrap();
    let skew = SpikingConfig::load(&skewed, &[]).unwrap();
    assert_eq!(skew.external().unwrap().j, [2.0, 2.0, -1.0, -1.0]);
    assert_eq!((ea.c, ea.nu, &ea.j[..2]), (eb.c, eb.nu, &eb.j[..2]));
    assert_eq!(a.neurons().unwrap(), b.neurons().unwrap());
    assert_eq!(a.settings.sim_name.as_deref(), Some("sim_name"));
    let (sa, sb) = (steps_of(&a, 300), steps_of(&b, 300));
    assert!(sa.iter().map(Vec::len).sum::<usize>() > 100);
    assert_eq!(sa, sb);
    // The same seed draws the same run; another seed another.
    assert_eq!(steps_of(&b, 300), sb);
    let c = SpikingConfig::load(
        &config("lif_clustered.toml"),
        &["simulation.random_seed=7".into()],
    )
    .unwrap();
    assert_ne!(steps_of(&c, 300), sb);
    // The template's blocks (seed-numbers.md §A4): 38 blocks at the reference offsets.
    let spec = b.cluster_spec().unwrap();
    let off = spec.blocks().offsets().to_vec();
    assert_eq!(
        (off.len(), off[18], off[19], off[37]),
        (39, 1440, 1600, 1960)
    );
}

/// `outputs.npz` has the original's keys in their documented layout: the spike events
/// agree with the rates, the sparse weights with the block weights of §A4, and no
/// neuron connects to itself.
#[test]
fn outputs_hold_the_spikes_weights_rates_and_traces() {
    let dir = scratch("outputs");
    let out = dir.join("run");
    let o = neurode(&[
        "simulate",
        config("lif_clustered.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "simulation.duration_sec=1.5",
        "--quiet",
    ]);
    let text = stdout_ok(&o);
    assert!(text.contains("simulated s per wall s"), "{text}");
    let mut npz = NpzReader::new(std::fs::File::open(out.join("outputs.npz")).unwrap()).unwrap();
    let spikes: Array2<i64> = npz.by_name("spikes").unwrap();
    let clusters: Array1<u32> = npz.by_name("clusters").unwrap();
    let data: Array1<f64> = npz.by_name("weights_data").unwrap();
    let indices: Array1<i32> = npz.by_name("weights_indices").unwrap();
    let indptr: Array1<i64> = npz.by_name("weights_indptr").unwrap();
    let rates: Array2<f64> = npz.by_name("rates").unwrap();
    let table: Array2<f64> = npz.by_name("weights_block").unwrap();
    let voltage: Array2<f64> = npz.by_name("voltage").unwrap();
    let recorded: Array1<i64> = npz.by_name("recorded").unwrap();
    let stimulus: Array1<f64> = npz.by_name("stimulus").unwrap();
    let n_steps: ndarray::Array0<i64> = npz.by_name("n_steps").unwrap();
    assert_eq!(n_steps[()], 1500);
    assert_eq!(stimulus.len(), 1500);
    // The diff2exp stimulus starts at step 1000 (onset 1 s) and peaks at its amplitude.
    assert!(stimulus.iter().take(1000).all(|&s| s == 0.0));
    let peak = stimulus.iter().copied().fold(0.0, f64::max);
    assert!((peak - 0.05).abs() < 1e-5, "{peak}");
    assert_eq!(clusters.len(), 2000);
    assert_eq!((clusters[0], clusters[1440], clusters[1999]), (1, 19, 38));
    assert_eq!(voltage.dim(), (1500, recorded.len()));
    // Spike events → block rates.
    let mut counts = vec![0.0; 38];
    for r in spikes.rows() {
        assert!((0..1500).contains(&r[0]) && (0..2000).contains(&r[1]));
        counts[clusters[r[1] as usize] as usize - 1] += 1.0;
    }
    let sizes: Vec<f64> = (0..38)
        .map(|b| clusters.iter().filter(|&&c| c as usize == b + 1).count() as f64)
        .collect();
    for b in 0..38 {
        let from_rates: f64 = rates.column(b).iter().sum::<f64>() * 0.05;
        assert!(
            (from_rates - counts[b] / sizes[b]).abs() < 1e-9,
            "block {b}"
        );
    }
    // Weights: column j = presynaptic j; no autapses; the §A4 values.
    assert_eq!(indptr.len(), 2001);
    let mut seen = std::collections::BTreeSet::new();
    for j in 0..2000 {
        for k in indptr[j] as usize..indptr[j + 1] as usize {
            let i = indices[k] as usize;
            assert_ne!(i, j);
            let (a, b) = (clusters[i] as usize - 1, clusters[j] as usize - 1);
            assert_eq!(data[k], table[[a, b]]);
            if clusters[i] == 1 && clusters[j] == 1 {
                assert!((data[k] - 9.9225).abs() < 1e-12);
            }
            if clusters[i] == 1 && clusters[j] == 2 {
                assert!((data[k] - 0.1875).abs() < 1e-12);
            }
            seen.insert((data[k] * 1e6).round() as i64);
        }
    }
    assert!(seen.len() > 10);
    for f in ["rates.csv", "summary.json", "raster.png", "rates.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

/// Acceptance: on the non-clustered E/I network the mean field and the network agree within
/// 10 % per population (over 10 s; the mean field uses the network's dead time).
#[test]
fn on_the_ei_network_the_mean_field_matches_the_spiking_rates() {
    let dir = scratch("ei");
    let o = simulate(
        &SpikingOptions {
            config: config("lif_ei.toml"),
            out: Some(dir.join("run")),
            mean_field: true,
            ..Default::default()
        },
        &|_, _, _| {},
    )
    .unwrap();
    let c = o.comparison.unwrap();
    assert_eq!(c.rows.len(), 2);
    for (g, _, spiking, mf) in &c.rows {
        assert!(*spiking > 2.0, "{g}: {spiking} Hz, not an active state");
        assert!(
            ((mf - spiking) / spiking).abs() < 0.10,
            "{g}: spiking {spiking}, mean field {mf}"
        );
    }
    assert!(c.nearest.0.starts_with("stable"), "{:?}", c.nearest);
    assert!(dir.join("run/mean_field.json").is_file());
}

/// On the clustered template the mean field has multistable cluster states and the
/// network's dominant state is one of its stable points, with the active clusters' rate
/// within 10 %.
#[test]
fn on_the_template_the_network_sits_in_a_stable_mean_field_cluster_state() {
    let dir = scratch("clustered");
    let o = simulate(
        &SpikingOptions {
            config: config("lif_clustered.toml"),
            out: Some(dir.join("run")),
            mean_field: true,
            set: vec!["simulation.duration_sec=3.0".into()],
            ..Default::default()
        },
        &|_, _, _| {},
    )
    .unwrap();
    let c = o.comparison.unwrap();
    let stable: Vec<_> = c
        .points
        .iter()
        .filter(|p| p.stability.starts_with("stable"))
        .collect();
    assert!(stable.len() > 1, "multistable");
    let (k, frac, active, _) = c
        .visited
        .iter()
        .copied()
        .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap())
        .unwrap();
    assert!(frac > 0.5);
    let p = stable
        .iter()
        .find(|p| p.active == k)
        .unwrap_or_else(|| panic!("no stable mean-field point with {k} active clusters"));
    assert!(
        ((p.active_rate - active) / active).abs() < 0.1,
        "{} vs {active}",
        p.active_rate
    );
}

/// --mean-field works with a refractory period long enough to bring the rate ceiling
/// below the default starts (its cluster starts stay under 1/τ_ref).
#[test]
fn the_mean_field_starts_stay_below_a_low_ceiling() {
    let dir = scratch("ceiling");
    let o = simulate(
        &SpikingOptions {
            config: config("lif_clustered.toml"),
            out: Some(dir.join("run")),
            mean_field: true,
            set: vec![
                "simulation.duration_sec=0.5".into(),
                "stimulus.stimulus_shape=\"none\"".into(),
                "architecture.network.tau_refractory=0.2".into(),
            ],
            ..Default::default()
        },
        &|_, _, _| {},
    )
    .unwrap();
    assert!(o.comparison.is_some());
}

/// f32 runs the same network with rates close to f64's.
#[test]
fn f32_rates_are_close_to_f64() {
    let dir = scratch("f32");
    let run = |p: &str| {
        simulate(
            &SpikingOptions {
                config: config("lif_ei.toml"),
                out: Some(dir.join(p)),
                set: vec![
                    format!("simulation.precision=\"{p}\""),
                    "simulation.duration_sec=3.0".into(),
                ],
                ..Default::default()
            },
            &|_, _, _| {},
        )
        .unwrap()
        .run
    };
    let (a, b) = (run("f64"), run("f32"));
    let ra = a.recording.spikes.len() as f64;
    let rb = b.recording.spikes.len() as f64;
    assert!((ra / rb - 1.0).abs() < 0.05, "{ra} vs {rb} spikes");
}

/// The mean field of the spiking network with the original's dead time is the mean field
/// of a refractory period τ_ref + dt.
#[test]
fn the_original_dead_time_reaches_the_mean_field() {
    let mut cfg = SpikingConfig::load(&config("lif_ei.toml"), &[]).unwrap();
    let b = build::<f64>(&cfg).unwrap();
    let red = |b: &neurode::spiking::Built<f64>| {
        neurode_models::spiking::reduce(&b.blocks, &b.weights, &b.probs, b.spec.mask, &b.setup)
            .unwrap()
    };
    assert!((red(&b).tau_ref[0] - 0.005).abs() < 1e-15);
    cfg.set("simulation.refractory=original").unwrap();
    let b = build::<f64>(&cfg).unwrap();
    assert!((red(&b).tau_ref[0] - 0.006).abs() < 1e-15);
    assert_eq!(b.network.hold_steps()[0], 5);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn template_with(dir: &Path, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(config("lif_clustered.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    write(dir, name, &text.replacen(from, to, 1))
}

/// Bad input, as a new user would try it: each a clear error naming the setting, never a
/// panic, and no output folder.
#[test]
fn bad_spiking_configs_are_refused_naming_the_setting() {
    let dir = scratch("bad");
    let out = dir.join("never");
    let cases: Vec<(String, &[&str])> = vec![
        // 1440 clustered E neurons do not split into 7 clusters.
        (
            template_with(&dir, "q7.toml", "n_clusters = 18", "n_clusters = 7"),
            &["n_clusters = 7", "1440", "divides"],
        ),
        // A background larger than its class.
        (
            template_with(
                &dir,
                "bg.toml",
                "n_inhibitory_background = 40",
                "n_inhibitory_background = 500",
            ),
            &["n_inhibitory_background", "400"],
        ),
        // A probability outside [0, 1].
        (
            template_with(
                &dir,
                "p.toml",
                "[0.2, 0.5, 0.5, 0.5]",
                "[0.2, 0.5, 1.5, 0.5]",
            ),
            &["connectivity_fraction_probs[2]", "1.5", "[0, 1]"],
        ),
        (
            template_with(
                &dir,
                "pneg.toml",
                "[0.2, 0.5, 0.5, 0.5]",
                "[-0.2, 0.5, 0.5, 0.5]",
            ),
            &["connectivity_fraction_probs[0]", "-0.2"],
        ),
        // A step longer than the refractory period, and than τs.
        (
            template_with(
                &dir,
                "ref.toml",
                "tau_refractory = 0.005",
                "tau_refractory = 0.0005",
            ),
            &["tau_refractory", "delta_t", "smaller delta_t"],
        ),
        (
            template_with(&dir, "dt.toml", "delta_t = 0.001", "delta_t = 0.008"),
            &["tau_synaptic", "0.005", "delta_t = 0.008"],
        ),
        // Negative rates and counts.
        (
            template_with(
                &dir,
                "nu.toml",
                "[7.0, 7.0, 0.0, 0.0]",
                "[7.0, -7.0, 0.0, 0.0]",
            ),
            &["nu_ext_baseline[1]", "-7", "not negative"],
        ),
        // A stimulus onset past the end of the run.
        (
            template_with(&dir, "onset.toml", "onset = 1.0", "onset = 12.0"),
            &["stimulus.onset", "12", "past the end", "10 s"],
        ),
        // Wrong lengths and words.
        (
            template_with(
                &dir,
                "thr.toml",
                "threshold = [1.5, 0.75]",
                "threshold = [1.5, 0.75, 1.0]",
            ),
            &["threshold", "3 entries", "n_neurons = 2000"],
        ),
        (
            template_with(
                &dir,
                "mech.toml",
                "mechanism = \"analytic\"",
                "mechanism = \"rk4\"",
            ),
            &["simulation.mechanism", "rk4", "analytic or euler"],
        ),
        (
            template_with(
                &dir,
                "key.toml",
                "amplitude = 0.05",
                "amplitude = 0.05\nampltude = 1",
            ),
            &["ampltude", "line"],
        ),
        (
            template_with(
                &dir,
                "thr2.toml",
                "threshold = [1.5, 0.75]",
                "threshold = [-1.5, 0.75]",
            ),
            &["threshold", "above the reset"],
        ),
        (
            template_with(
                &dir,
                "jp.toml",
                "[15.75, 5.45, 6.25, 5.0]",
                "[35.0, 5.45, 6.25, 5.0]",
            ),
            &["j_potentiated[0]", "depression factor"],
        ),
        (
            template_with(
                &dir,
                "rec.toml",
                "neurons = [0, 80, 1440, 1600, 1960]",
                "neurons = [0, 2000]",
            ),
            &["record.neurons", "2000"],
        ),
    ];
    for (path, needles) in &cases {
        let err = fails(&["simulate", path, "--out", out.to_str().unwrap(), "--quiet"]);
        for n in *needles {
            assert!(err.contains(n), "{path}: `{n}` not in: {err}");
        }
        assert!(!out.exists(), "{path}: an output folder was made");
    }
    // Overrides and options that do not apply.
    let t = config("lif_clustered.toml");
    let t = t.to_str().unwrap();
    let err = fails(&[
        "simulate",
        t,
        "--set",
        "simulation.duration_sec=-1",
        "--quiet",
    ]);
    assert!(err.contains("simulation.duration_sec"), "{err}");
    let err = fails(&[
        "simulate",
        t,
        "--set",
        "simulaton.duration_sec=1",
        "--quiet",
    ]);
    assert!(err.contains("simulaton"), "{err}");
    let err = fails(&["simulate", t, "--trials", "3"]);
    assert!(
        err.contains("--trials") && err.contains("duration_sec"),
        "{err}"
    );
    let err = fails(&[
        "simulate",
        config("kim_xor.toml").to_str().unwrap(),
        "--mean-field",
    ]);
    assert!(
        err.contains("--mean-field") && err.contains("spiking"),
        "{err}"
    );
    // A network that would not fit in memory is refused up front with the estimate.
    let err = fails(&[
        "simulate",
        t,
        "--set",
        "simulation.n_neurons=2000000",
        "--set",
        "simulation.n_excitatory=1600000",
        "--set",
        "architecture.clusters.n_excitatory_background=160000",
        "--set",
        "architecture.clusters.n_inhibitory_background=40000",
        "--quiet",
    ]);
    assert!(
        err.contains("GiB") && err.contains("2000000 neurons"),
        "{err}"
    );
    // The other commands name the one that runs a spiking config.
    let err = fails(&["train", t]);
    assert!(err.contains("neurode simulate"), "{err}");
    let err = fails(&["train", config("meanfield_two_pop.toml").to_str().unwrap()]);
    assert!(err.contains("neurode meanfield"), "{err}");
}
