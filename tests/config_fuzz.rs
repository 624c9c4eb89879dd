//! The config fuzz test (issue 25): every key of every shipped config is mutated (a wrong
//! type, NaN, ±inf, 0, negatives, huge and tiny values, an empty list, the key deleted, its
//! table deleted) and the result goes through the path the CLI takes (`TrainConfig::load`
//! from a file, or `MeanFieldConfig::load`). Each case must end in one of two ways, never in
//! a panic or an abort:
//! - a clear error that names a key (a backticked key or a `[table]`), or
//! - a valid config that trains two iterations (and validates) to finite losses and
//!   parameters, or stops with a typed training error (divergence is reported, never
//!   silent); a mean-field config solves its fixed points or says why not.
//!
//! The cases are drawn by proptest from a fixed seed (the same cases on every run): the
//! count is `NEURODE_FUZZ_CASES` (default 256), the seed `NEURODE_FUZZ_SEED` (default 25;
//! other seeds explore other cases).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use neurode::config::{Precision, TrainConfig};
use neurode::train::Trainer;
use neurode_solvers::Real;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use toml::{Table, Value};

/// One step of a key's path: a table key or an array index.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The paths of every leaf of `t` (values that are not tables or arrays of tables).
fn leaves(t: &Table, prefix: &[Seg], out: &mut Vec<Vec<Seg>>) {
    for (k, v) in t {
        let mut p = prefix.to_vec();
        p.push(Seg::Key(k.clone()));
        walk(v, p, out);
    }
}

fn walk(v: &Value, p: Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Table(t) => leaves(t, &p, out),
        Value::Array(a) if a.iter().any(Value::is_table) => {
            for (i, x) in a.iter().enumerate() {
                let mut q = p.clone();
                q.push(Seg::Index(i));
                walk(x, q, out);
            }
        }
        Value::Array(a) => {
            // The list itself, and each of its entries.
            out.push(p.clone());
            for i in 0..a.len() {
                let mut q = p.clone();
                q.push(Seg::Index(i));
                out.push(q);
            }
        }
        _ => out.push(p),
    }
}

/// The mutations: a new value, or a deletion.
#[derive(Debug, Clone)]
enum Mutation {
    Set(Value),
    DeleteKey,
    DeleteTable,
}

fn mutations() -> Vec<Mutation> {
    use Mutation::*;
    let f = |x: f64| Set(Value::Float(x));
    let i = |x: i64| Set(Value::Integer(x));
    vec![
        Set(Value::String("x".into())),
        Set(Value::Boolean(true)),
        Set(Value::Array(vec![])),
        i(0),
        i(1),
        i(2),
        i(-1),
        i(1_000_000),
        i(i64::MAX),
        f(f64::NAN),
        f(f64::INFINITY),
        f(f64::NEG_INFINITY),
        f(0.0),
        f(-1.0),
        f(0.5),
        f(1e-300),
        f(1e300),
        DeleteKey,
        DeleteTable,
    ]
}

/// `t` with `m` applied at `path`; `None` where the path does not lead anywhere.
fn mutate(t: &Table, path: &[Seg], m: &Mutation) -> Option<Table> {
    let mut root = Value::Table(t.clone());
    let (last, parents) = path.split_last()?;
    if let (Mutation::DeleteTable, Value::Table(tb), Seg::Key(k)) = (m, &mut root, &path[0]) {
        tb.remove(k)?;
    } else {
        let mut cur = &mut root;
        for s in parents {
            cur = match (cur, s) {
                (Value::Table(tb), Seg::Key(k)) => tb.get_mut(k)?,
                (Value::Array(a), Seg::Index(i)) => a.get_mut(*i)?,
                _ => return None,
            };
        }
        match (cur, last, m) {
            (Value::Table(tb), Seg::Key(k), Mutation::DeleteKey) => {
                tb.remove(k)?;
            }
            (Value::Table(tb), Seg::Key(k), Mutation::Set(v)) => {
                tb.insert(k.clone(), v.clone());
            }
            (Value::Array(a), Seg::Index(i), Mutation::DeleteKey) if *i < a.len() => {
                a.remove(*i);
            }
            (Value::Array(a), Seg::Index(i), Mutation::Set(v)) => {
                *a.get_mut(*i)? = v.clone();
            }
            _ => return None,
        }
    }
    match root {
        Value::Table(t) => Some(t),
        _ => None,
    }
}

/// A loading error is clear when it names the key (`leaf`, as the parser's excerpt shows
/// it), a backticked key or a table.
fn names_a_key(e: &str, leaf: &str) -> bool {
    e.contains(leaf) || e.contains('`') || e.contains("table")
}

/// Trains `cfg` for two iterations (cut down: two batches, a small validation set) and
/// checks that every loss and parameter is finite, or that training stopped with an error.
fn trains_finitely<T: Real>(mut cfg: TrainConfig) -> Result<(), String> {
    let t = &mut cfg.training;
    t.n_train_trials = 2 * t.batch_size;
    t.n_val_trials = t.n_val_trials.min(4);
    t.stop_min_trials = 0;
    t.threads = t.threads.min(t.batch_size);
    let mut tr = match Trainer::<T>::new(&cfg) {
        Ok(tr) => tr,
        Err(_) => return Ok(()), // refused with a typed error
    };
    while !tr.finished() {
        match tr.step() {
            Err(_) => return Ok(()), // stopped with a typed error
            Ok(m) => {
                let losses = [Some(m.train_loss), m.val_loss];
                if losses.into_iter().flatten().any(|l| !l.is_finite()) {
                    return Err(format!("a non-finite loss without an error: {m:?}"));
                }
            }
        }
    }
    if let Some(i) = tr.theta().iter().position(|v| !v.as_f64().is_finite()) {
        return Err(format!(
            "parameter {i} is {} without an error",
            tr.theta()[i]
        ));
    }
    Ok(())
}

/// One case: the outcome must be a clear error or a finite run.
fn check_case(origin: &Path, table: &Table, file: &Path, leaf: &str) -> Result<(), String> {
    let text = toml::to_string(table).map_err(|e| format!("cannot write the case: {e}"))?;
    std::fs::write(file, &text).map_err(|e| e.to_string())?;
    let meanfield = table.contains_key("network") || origin.to_string_lossy().contains("meanfield");
    let spiking = table.contains_key("architecture") || origin.to_string_lossy().contains("lif_");
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if spiking {
            // Loaded and built, then 200 steps: every voltage and current finite.
            return match neurode::spiking::SpikingConfig::load(file, &[]) {
                Err(e) if names_a_key(&e.to_string(), leaf) => Ok(()),
                Err(e) => Err(format!("an error that names no key: {e}")),
                Ok(cfg) => match neurode::spiking::build::<f64>(&cfg) {
                    Err(e) if !e.to_string().is_empty() => Ok(()),
                    Err(_) => Err("an empty error".into()),
                    Ok(mut b) => {
                        for _ in 0..cfg.steps().min(200) {
                            b.network.step();
                        }
                        let n = b.network;
                        match n
                            .voltage()
                            .iter()
                            .chain(n.current())
                            .find(|v| !v.is_finite())
                        {
                            Some(v) => Err(format!("a state of {v} without an error")),
                            None => Ok(()),
                        }
                    }
                },
            };
        }
        if meanfield {
            return match neurode::meanfield::MeanFieldConfig::load(file) {
                Err(e) if names_a_key(&e.to_string(), leaf) => Ok(()),
                Err(e) => Err(format!("an error that names no key: {e}")),
                Ok(_) => {
                    let out = file.with_extension("out");
                    let opts = neurode::meanfield::MeanFieldOptions {
                        config: file.to_path_buf(),
                        sweeps: vec![],
                        modes: vec![],
                        set: vec![],
                        out: Some(out.clone()),
                        problems: None,
                        threads: Some(1),
                    };
                    let r = neurode::meanfield::run(&opts, &|_, _| {});
                    let _ = std::fs::remove_dir_all(&out);
                    match r {
                        Ok(_) => Ok(()),
                        Err(e) if !e.to_string().is_empty() => Ok(()),
                        Err(_) => Err("an empty error".into()),
                    }
                }
            };
        }
        match TrainConfig::load(file) {
            Err(e) if names_a_key(&e.to_string(), leaf) => Ok(()),
            Err(e) => Err(format!("an error that names no key: {e}")),
            Ok(cfg) => match cfg.precision {
                Precision::F64 => trains_finitely::<f64>(cfg),
                Precision::F32 => trains_finitely::<f32>(cfg),
            },
        }
    }));
    match outcome {
        Ok(r) => r.map_err(|e| format!("{e}\n--- the case:\n{text}")),
        Err(_) => Err(format!("panicked\n--- the case:\n{text}")),
    }
}

#[test]
fn mutated_configs_give_clear_errors_or_finite_runs() {
    let mut configs: Vec<(PathBuf, Table)> = std::fs::read_dir("configs")
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let t: Table = std::fs::read_to_string(&p).unwrap().parse().unwrap();
            (p, t)
        })
        .collect();
    configs.sort_by(|a, b| a.0.cmp(&b.0));
    let cases: Vec<(usize, Vec<Seg>)> = configs
        .iter()
        .enumerate()
        .flat_map(|(i, (_, t))| {
            let mut out = Vec::new();
            leaves(t, &[], &mut out);
            out.into_iter().map(move |p| (i, p))
        })
        .collect();
    let muts = mutations();
    let n_cases: u32 = std::env::var("NEURODE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = std::env::temp_dir().join(format!("neurode_fuzz_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("case.toml");
    // Quiet panics: a panic is caught and reported as the case's failure.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut runner = TestRunner::new(Config {
        cases: n_cases,
        rng_seed: RngSeed::Fixed(
            std::env::var("NEURODE_FUZZ_SEED")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(25),
        ),
        failure_persistence: None,
        ..Config::default()
    });
    let start = std::time::Instant::now();
    let slowest = std::sync::Mutex::new((0.0f64, String::new()));
    let result = runner.run(&(0..cases.len(), 0..muts.len()), |(c, m)| {
        let (ci, path) = &cases[c];
        let (origin, table) = &configs[*ci];
        let Some(edited) = mutate(table, path, &muts[m]) else {
            return Ok(());
        };
        let leaf = path
            .iter()
            .rev()
            .find_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .unwrap_or("");
        let t0 = std::time::Instant::now();
        let r = check_case(origin, &edited, &file, leaf);
        let secs = t0.elapsed().as_secs_f64();
        let mut s = slowest.lock().unwrap();
        if secs > s.0 {
            *s = (
                secs,
                format!("{}: {:?} of {:?}", origin.display(), muts[m], path),
            );
        }
        r.map_err(|e| {
            TestCaseError::fail(format!(
                "{}: {:?} of {:?}: {e}",
                origin.display(),
                muts[m],
                path
            ))
        })
    });
    std::panic::set_hook(hook);
    let _ = std::fs::remove_dir_all(&dir);
    let (secs, case) = slowest.into_inner().unwrap();
    println!(
        "{n_cases} cases over {} keys of {} configs and {} mutations in {:.1} s (slowest \
         {secs:.2} s: {case})",
        cases.len(),
        configs.len(),
        muts.len(),
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
