//! `neurode meanfield` as a user runs it: the README example and the four-population
//! template from their configs, the original's YAML template as it is, sweeps and their
//! files, and bad input (each a clear error that names the key, exit code 1, no panic, no
//! NaN in an output).

use std::path::{Path, PathBuf};

mod common;
use common::{fails, neurode};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurode-mf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(args: &[&str]) -> String {
    let out = neurode(args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_readme_example_prints_its_fixed_point_and_writes_json() {
    let out = scratch("two");
    let text = ok(&[
        "meanfield",
        "configs/meanfield_two_pop.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("nu* = [188.2719249891, 193.9813688852] Hz, stable node"),
        "{text}"
    );
    assert!(text.contains("eigenvalues: -0.99965"), "{text}");
    let j = json(&out.join("fixed_points.json"));
    let p = &j["points"][0];
    assert_eq!(p["label"], "stable node");
    assert!((p["rates"][0].as_f64().unwrap() - 188.2719249891).abs() < 1e-8 * 188.27);
    assert_eq!(j["points"].as_array().unwrap().len(), 1);
    assert!(j["starts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["converged"] == true));
}

/// The four-population template: from the original's start [60, 0, 1, 16] to
/// [52.3189, 5.2140, 2.2586, 13.7834] Hz; the template has three fixed points (either
/// cluster active, both stable foci, and the symmetric saddle between them).
#[test]
fn the_four_population_template_finds_three_points() {
    let out = scratch("four");
    let text = ok(&[
        "meanfield",
        "configs/meanfield_four_pop.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("3 fixed point(s)"), "{text}");
    let j = json(&out.join("fixed_points.json"));
    let labels: Vec<&str> = j["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["stable focus", "saddle", "stable focus"]);
    let first = &j["starts"][0];
    assert_eq!(first["start"], serde_json::json!([60.0, 0.0, 1.0, 16.0]));
    let p = &j["points"][first["point"].as_u64().unwrap() as usize]["rates"];
    assert!(
        (p[0].as_f64().unwrap() - 52.31891557854763).abs() < 1e-8 * 52.3,
        "{p}"
    );
}

/// The original's YAML template (its keys, nesting, block and flow lists, a scalar
/// `tau_refractory`, integer counts, and the unused `effective`/`sweep` sections) loads as
/// it is and gives the TOML config's parameters.
#[test]
fn the_originals_yaml_template_loads_as_it_is() {
    let dir = scratch("yaml");
    let yaml = dir.join("mf_simulation_config_template.yaml");
    std::fs::write(&yaml, ORIGINAL_LAYOUT).unwrap();
    let from_yaml = neurode::meanfield::MeanFieldConfig::load(&yaml).unwrap();
    let from_toml =
        neurode::meanfield::MeanFieldConfig::load(Path::new("configs/meanfield_four_pop.toml"))
            .unwrap();
    assert_eq!(from_yaml.params().unwrap(), from_toml.params().unwrap());
    assert_eq!(from_yaml.starts(), vec![vec![60.0, 0.0, 1.0, 16.0]]);
    let text = ok(&[
        "meanfield",
        yaml.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert!(text.contains("3 fixed point(s)"), "{text}");
    // Its sweep names `j`, the efficacy matrix here; `range` reads [0, 30, 0.5] as NumPy's
    // arange: 60 values.
    let sw = from_yaml
        .config_sweep(from_yaml.sweep.as_ref().unwrap())
        .unwrap();
    assert_eq!(sw.values.len(), 60);
    assert_eq!(sw.values[59], 29.5);
}

/// A sweep of the four-population template writes every file, with the same points as
/// solving one of its sets alone.
#[test]
fn a_sweep_writes_csv_npz_json_and_the_bifurcation_picture() {
    let out = scratch("sweep");
    let o = out.to_str().unwrap();
    let problems = out.join("problems.json");
    let text = ok(&[
        "meanfield",
        "configs/meanfield_four_pop.toml",
        "--sweep",
        "nu_ext=5:9:21",
        "--out",
        o,
        "--problems",
        problems.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(text.contains("nu_ext: 21 values, 63 fixed points (42 stable), 21 values multistable, 0 starts unconverged"), "{text}");
    for f in ["sweep.csv", "sweep.npz", "sweep.json", "bifurcation.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 63);
    assert!(!csv.to_lowercase().contains("nan"));
    // The middle value (nu_ext = 7) is the config's own set: same points as a plain solve.
    let plain = scratch("plain");
    ok(&[
        "meanfield",
        "configs/meanfield_four_pop.toml",
        "--out",
        plain.to_str().unwrap(),
    ]);
    let j = json(&plain.join("fixed_points.json"));
    for (k, p) in j["points"].as_array().unwrap().iter().enumerate() {
        let row = csv
            .lines()
            .find(|l| l.starts_with(&format!("10,7,{k},")))
            .unwrap();
        let r0: f64 = row.split(',').nth(5).unwrap().parse().unwrap();
        assert!(
            (r0 - p["rates"][0].as_f64().unwrap()).abs() < 1e-9 * (1.0 + r0),
            "{row} vs {p}"
        );
    }
    let pj = json(&problems);
    assert_eq!(pj["sets"].as_array().unwrap().len(), 21);
    assert_eq!(
        pj["sets"][0]["kwargs"]["c_matrix"][3],
        serde_json::json!([40.0, 40.0, 240.0, 80.0])
    );
    assert!(pj["ours"]["seconds"].as_f64().unwrap() > 0.0);
    // The config's own [sweep] section, and an indexed parameter in shift mode.
    let text = ok(&[
        "meanfield",
        "configs/meanfield_two_pop.toml",
        "--sweep",
        "--out",
        o,
        "--quiet",
    ]);
    assert!(text.contains("nu_ext: 101 values"), "{text}");
    let text = ok(&[
        "meanfield",
        "configs/meanfield_two_pop.toml",
        "--sweep",
        "threshold[1]=0:2:5",
        "--mode",
        "shift",
        "--out",
        o,
        "--quiet",
    ]);
    assert!(text.contains("threshold[1]: 5 values"), "{text}");
}

fn edited(name: &str, from: &str, edit: &dyn Fn(&str) -> String) -> PathBuf {
    let dir = scratch(name);
    let p = dir.join("config.toml");
    std::fs::write(&p, edit(&std::fs::read_to_string(from).unwrap())).unwrap();
    p
}

const TWO: &str = "configs/meanfield_two_pop.toml";

/// A bad-input case: its name, the edit of the config's text, extra arguments, and what
/// the error must say.
type Case = (
    &'static str,
    Box<dyn Fn(&str) -> String>,
    &'static [&'static str],
    &'static str,
);

/// Bad input as a new user would try it: each a clear error naming the key.
#[test]
fn bad_input_is_a_clear_error() {
    let run = |p: &Path, extra: &[&str]| {
        let out = p.parent().unwrap().join("out");
        let mut args = vec![
            "meanfield",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let cases: Vec<Case> = vec![
        (
            "tau0",
            Box::new(|t: &str| {
                t.replace("tau_membrane = [0.02, 0.02]", "tau_membrane = [0.02, 0.0]")
            }),
            &[],
            "`tau_membrane[1]` = 0 is invalid",
        ),
        (
            "tauneg",
            Box::new(|t: &str| t.replace("tau_synaptic = [0.005, 0.005]", "tau_synaptic = -0.005")),
            &[],
            "`tau_synaptic[0]` = -0.005 is invalid",
        ),
        (
            "taurate",
            Box::new(|t: &str| {
                t.replace(
                    "tau_refractory = 0.005",
                    "tau_refractory = 0.005\ntau_rate = [1.0, -1.0]",
                )
            }),
            &[],
            "`tau_rate[1]` = -1 is invalid",
        ),
        (
            "shape",
            Box::new(|t: &str| {
                t.replace(
                    "j_matrix = [[0.1, 0.1], [0.1, 0.1]]",
                    "j_matrix = [[0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]",
                )
            }),
            &[],
            "`j_matrix row 0` has 3 values",
        ),
        (
            "rows",
            Box::new(|t: &str| {
                t.replace(
                    "c_matrix = [[1, 1], [1, 1]]",
                    "c_matrix = [[1, 1], [1, 1], [1, 1]]",
                )
            }),
            &[],
            "`c_matrix` has 6 values",
        ),
        (
            "vec",
            Box::new(|t: &str| {
                t.replace("threshold = [1.5, 0.75]", "threshold = [1.5, 0.75, 1.0]")
            }),
            &[],
            "`threshold` has 3 values",
        ),
        (
            "refractory",
            Box::new(|t: &str| {
                t.replace("tau_refractory = 0.005", "tau_refractory = 0.02")
                    .replace("nu_init = [0.0, 0.0]", "nu_init = [60.0, 10.0]")
            }),
            &[],
            "above its ceiling 1/tau_refractory = 50 Hz",
        ),
        (
            "unknown",
            Box::new(|t: &str| t.replace("j_ext = [2.3, 2.3]", "j_ext = [2.3, 2.3]\nj_extt = 1")),
            &[],
            "unknown field `j_extt`",
        ),
        (
            "emptysweep",
            Box::new(|t: &str| t.to_string()),
            &["--sweep", "nu_ext=5:9:0"],
            "has no points: the count n is 0",
        ),
        (
            "flatsweep",
            Box::new(|t: &str| t.to_string()),
            &["--sweep", "nu_ext=5:5:10"],
            "start and stop are equal",
        ),
        (
            "badkey",
            Box::new(|t: &str| t.to_string()),
            &["--sweep", "nu_exp=5:9:3"],
            "unknown parameter `nu_exp`",
        ),
        (
            "badrange",
            Box::new(|t: &str| {
                t.replace(
                    "sweep_vals = [0.0, 10.0, 101]",
                    "sweep_vals = [0.0, 10.0, 0]",
                )
                .replace("\"linspace\"", "\"range\"")
            }),
            &[],
            "arange(0, 10, 0) is empty",
        ),
        (
            "negsweep",
            Box::new(|t: &str| t.to_string()),
            &["--sweep", "tau_m=0.02:-0.02:3"],
            "`tau_membrane[0]` = 0 is invalid",
        ),
        (
            "set",
            Box::new(|t: &str| t.to_string()),
            &["--set", "threshold[0]=-1"],
            "`threshold[0]` = -1 is invalid: the threshold must lie above the reset_voltage",
        ),
        (
            "setfmt",
            Box::new(|t: &str| t.to_string()),
            &["--set", "threshold[0]"],
            "--set threshold[0]: write key=value",
        ),
        (
            "index",
            Box::new(|t: &str| t.to_string()),
            &["--set", "nu_ext[2]=3"],
            "`nu_ext[2]` indexes population 2, but there are 2",
        ),
        (
            "mode",
            Box::new(|t: &str| t.to_string()),
            &["--sweep", "nu_ext=1:2:3", "--mode", "rotate"],
            "--mode rotate: use replace",
        ),
        // A start from which nothing converges: one Newton step and almost no relaxation.
        (
            "noconv",
            Box::new(|t: &str| {
                format!("{t}\n[solver]\nmax_newton = 1\nrelax_time = 1e-9\ncorners = false\nrandom_starts = 0\n").replace("nu_init = [0.0, 0.0]", "nu_init = [1.0, 150.0]")
            }),
            &[],
            "no start converged for the config's parameters",
        ),
    ];
    for (name, edit, extra, want) in cases {
        let p = edited(name, TWO, &*edit);
        let err = run(&p, extra);
        assert!(err.contains(want), "{name}: `{want}` not in: {err}");
        assert!(
            !p.parent().unwrap().join("out/fixed_points.json").exists(),
            "{name}: wrote results"
        );
    }
    let err = fails(&["meanfield", "configs/no_such.toml"]);
    assert!(err.contains("cannot read configs/no_such.toml"), "{err}");
}

/// The layout of VectorialNeuroModulators' `configs/mf_simulation_config_template.yaml`
/// (its keys, nesting and value types, written out here).
const ORIGINAL_LAYOUT: &str = "
network:
  n_clusters: 4

  c_matrix:
    - [16, 16, 96, 80]
    - [16, 16, 96, 80]
    - [16, 16, 96, 80]
    - [40, 40, 240, 80]

  j_matrix:
    - [0.56568542, 0.02828427, 0.02828427, -0.37476659]
    - [0.02828427, 0.56568542, 0.02828427, -0.37476659]
    - [0.02828427, 0.02828427, 0.02828427, -0.37476659]
    - [0.08838835, 0.08838835, 0.08838835, -0.34294679]

  j_ext:
    - 0.51265242
    - 0.51265242
    - 0.51265242
    - 0.45608387

  c_ext:
    - 128
    - 128
    - 128
    - 128

  nu_ext:
    - 7.0
    - 7.0
    - 7.0
    - 7.0

  tau_membrane:
    - 0.02
    - 0.02
    - 0.02
    - 0.02

  tau_synaptic:
    - 0.005
    - 0.005
    - 0.005
    - 0.005

  threshold:
    - 4.86
    - 4.86
    - 4.86
    - 5.98

  reset_voltage:
    - 0.0
    - 0.0
    - 0.0
    - 0.0

  tau_refractory: 0.005

runner:
  mode: effective
  effective:
    focus_pops:
      - 0
      - 1
    focus_nu_limits:
      - [0., 60.]
      - [0., 60.]
    focus_nu_density:
      - 0.5
      - 0.5
    ambient_nu_init:
      - 3.
      - 4.
  simple:
    nu_init:
      - 60.
      - 0.
      - 1.
      - 16.

sweep:
  sweep_param: j
  sweep_mode: shift
  sweep_vals: [0, 30, 0.5]
  read_vals_as: range
";

/// The grid of two parameters: where cluster 0 of the template is bistable.
#[test]
fn a_grid_of_two_parameters_maps_multistability() {
    let grid = scratch("grid");
    let g = grid.to_str().unwrap();
    let text = ok(&[
        "meanfield",
        "configs/meanfield_four_pop.toml",
        "--sweep",
        "nu_ext=3:12:6",
        "--sweep",
        "j_matrix[0,0]=0.3:0.8:5",
        "--out",
        g,
        "--quiet",
    ]);
    assert!(text.contains("nu_ext x j_matrix[0,0]: 30 values"), "{text}");
    assert!(grid.join("multistability.png").metadata().unwrap().len() > 100);
    let sj = json(&grid.join("sweep.json"));
    assert_eq!(sj["shape"], serde_json::json!([6, 5]));
    let m = sj["multistable_sets"].as_u64().unwrap();
    assert!(m > 0 && m < 30, "{sj}");
    let csv = std::fs::read_to_string(grid.join("sweep.csv")).unwrap();
    assert!(
        csv.starts_with("value_index,nu_ext,j_matrix[0,0],point,"),
        "{csv}"
    );
    let err = fails(&[
        "meanfield",
        "configs/meanfield_four_pop.toml",
        "--sweep",
        "nu_ext=3:12:6",
        "--sweep",
        "j_ext=0:1:2",
        "--sweep",
        "theta=1:2:2",
    ]);
    assert!(err.contains("the grid of two"), "{err}");
}

/// The mean field is a model kind of the app (`[model] kind = "meanfield"`): its settings
/// are checked like any kind's, and the commands it cannot serve refuse it, naming its own.
#[test]
fn the_generic_commands_refuse_the_mean_field_kind_naming_its_command() {
    let text = std::fs::read_to_string("configs/lowrank_context_switch_sanity.toml").unwrap();
    let (a, b) = (text.find("[model]").unwrap(), text.find("[task]").unwrap());
    let model = "[model]\nkind = \"meanfield\"\nn_clusters = 2\nc_matrix = 1.0\nj_matrix = 0.1\nj_ext = 2.3\nc_ext = 320\nnu_ext = 7.0\ntau_membrane = 0.02\nthreshold = [1.5, 0.75]\n\n";
    let dir = scratch("kind");
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, format!("{}{model}{}", &text[..a], &text[b..])).unwrap();
    let c = cfg.to_str().unwrap();
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    for (args, verb) in [
        (vec!["train", c, "--out", o], "be trained"),
        (vec!["simulate", c, "--out", o], "be simulated on a task"),
        (vec!["sweep", c], "be trained"),
    ] {
        let err = fails(&args);
        assert!(
            err.contains(&format!(
                "model kind `meanfield` cannot {verb}; use `neurode meanfield`"
            )),
            "{args:?}: {err}"
        );
    }
    let err = fails(&["train", c, "--set", "tau_membrane=0"]);
    assert!(
        err.contains("`model.tau_membrane[0]`") && err.contains("must be finite and > 0"),
        "{err}"
    );
}
