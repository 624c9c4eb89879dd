//! The settings in which two configs differ, by dotted key, for the `--resume` error.

use serde_json::Value;

use crate::config::TrainConfig;

/// Every dotted key whose value differs between the config a run was written with
/// (`run`) and the one given now (`now`), as `key: <run's> in the run, <now's> now`;
/// array elements are compared one by one (`key[i]`) when both arrays have the same
/// length. Empty if the two serialise alike.
pub fn config_differences(run: &TrainConfig, now: &TrainConfig) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(run), serde_json::to_value(now)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "unset".into(),
        Some(v) => v.to_string(),
    }
}

fn walk(key: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(&join(k), p, q, out),
                    (p, q) if show(p) != show(q) => out.push(format!(
                        "{}: {} in the run, {} now",
                        join(k),
                        show(p),
                        show(q)
                    )),
                    _ => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(&format!("{key}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{key}: {a} in the run, {b} now")),
        _ => {}
    }
}
