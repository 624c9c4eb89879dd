//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Least-squares slope of `log2(err)` against `log2(dt)`.
pub fn fitted_slope(dts: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = dts.iter().map(|d| d.log2()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.log2()).collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Whether `python3` can import `modules` (comma-separated). Where it cannot, a test skips
/// with the printed reason, except in CI (`CI=true`), where `.ci/run` installs the packages
/// and a missing one is a failure.
pub fn python_has(modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!("python3 with {modules} is not available");
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{msg}, but CI must run this check (.ci/run installs the packages)"
        );
        println!("skipped: {msg}");
    }
    ok
}

/// `neurode <args>`, run to its end.
pub fn neurode(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_neurode"))
        .args(args)
        .output()
        .expect("the neurode binary runs")
}

/// The standard output of a run that must succeed (its stderr in the failure message).
pub fn stdout_ok(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs `neurode <args>`, asserts that it fails cleanly (exit code 1, no panic) and returns
/// its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = neurode(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "neurode {args:?}: {err}");
    assert!(
        !err.contains("panicked"),
        "neurode {args:?} panicked: {err}"
    );
    err
}
