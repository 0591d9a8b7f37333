//! Golden files (`tests/golden/*.json` at the repository root): inputs with their expected
//! analysis document, shared with the Python engine. Each file may also hold `checks`, a
//! hand-derived partial expectation (`{"expected": {...}}` or `{"expected_error": [...]}`) that
//! must hold whatever `expected` says, so regenerating `expected`
//! (`GOLDEN_UPDATE=1 cargo test --test golden`) cannot hide a wrong result.

use std::path::{Path, PathBuf};

use chan_core::timestamp::parse_time;
use chan_core::{analyze, Bar, EngineConfig, Session};
use serde_json::{json, Value};

mod update_client;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

fn bars_of(case: &Value) -> Vec<Bar> {
    if let Some(rel) = case.get("bars_csv").and_then(Value::as_str) {
        return read_csv(&golden_dir().join(rel));
    }
    case["bars"]
        .as_array()
        .expect("bars: an array of [time, open, high, low, close, volume]")
        .iter()
        .map(|row| {
            let r = row.as_array().expect("a bar is an array");
            let time = match &r[0] {
                Value::String(s) => parse_time(s).expect("time"),
                v => v.as_i64().expect("time: string or integer ms"),
            };
            let num = |v: &Value| match v {
                Value::String(s) => s.parse::<f64>().expect("number"),
                v => v.as_f64().expect("number"),
            };
            Bar::new(
                time,
                num(&r[1]),
                num(&r[2]),
                num(&r[3]),
                num(&r[4]),
                num(&r[5]),
            )
        })
        .collect()
}

/// A CSV of real bars (header `time,open,high,low,close,volume`) kept beside the golden files.
fn read_csv(path: &Path) -> Vec<Bar> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].trim().parse::<f64>().expect("number");
            Bar::new(
                parse_time(f[0]).expect("time"),
                n(1),
                n(2),
                n(3),
                n(4),
                n(5),
            )
        })
        .collect()
}

/// The document, or the violations, as JSON.
fn run_case(case: &Value) -> Value {
    let cfg = EngineConfig::from_json_overrides(case.get("config").unwrap_or(&json!({})))
        .expect("config");
    let with_macd = case
        .get("with_macd")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match analyze(&bars_of(case), &cfg, with_macd) {
        Ok(a) => json!({"expected": serde_json::to_value(a.document()).unwrap()}),
        Err(e) => json!({"expected_error": serde_json::to_value(e.violations()).unwrap()}),
    }
}

/// Exact equality with numbers compared as f64 (so `10` equals `10.0`); returns the first
/// differing path.
fn diff(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64() != y.as_f64()).then(|| format!("{path}: {x} != {y}"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: length {} != {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| diff(p, q, &format!("{path}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = diff(p, q, &format!("{path}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        _ => (a != b).then(|| format!("{path}: {a} != {b}")),
    }
}

/// `checks` is a partial expectation: object keys it names must match; arrays must have the
/// same length, element by element partially.
fn check_subset(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, v)| {
            check_subset(v, g.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))
        }),
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{path}: length {} expected, got {}",
                    w.len(),
                    g.len()
                ));
            }
            w.iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (p, q))| check_subset(p, q, &format!("{path}[{i}]")))
        }
        _ => diff(want, got, path),
    }
}

fn cases() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

#[test]
fn golden_files_match_the_engine() {
    let update = std::env::var_os("GOLDEN_UPDATE").is_some();
    let all = cases();
    assert!(all.len() >= 10, "golden files are missing");
    let mut failures = Vec::new();
    for (path, mut case) in all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let got = run_case(&case);
        let (key, value) = got.as_object().unwrap().iter().next().unwrap();
        if let Some(checks) = case.get("checks") {
            if let Some(d) = check_subset(checks, &got, "") {
                failures.push(format!("{name}: hand-derived check fails: {d}"));
                continue;
            }
        }
        if update {
            let obj = case.as_object_mut().unwrap();
            obj.remove("expected");
            obj.remove("expected_error");
            obj.insert(key.clone(), value.clone());
            let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            continue;
        }
        match case.get(key.as_str()) {
            None => failures.push(format!("{name}: no {key:?} (the engine gave that)")),
            Some(want) => {
                if let Some(d) = diff(want, value, key) {
                    failures.push(format!("{name}: {d}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden failures:\n{}",
        failures.join("\n")
    );
}

/// The incremental engine gives the same documents on the golden inputs, bar by bar, by appends
/// and by replacements of the last bar.
#[test]
fn golden_files_incrementally() {
    for (path, case) in cases() {
        if case.get("expected").is_none() {
            continue;
        }
        let cfg =
            EngineConfig::from_json_overrides(case.get("config").unwrap_or(&json!({}))).unwrap();
        let with_macd = case
            .get("with_macd")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut s = Session::new(cfg, with_macd).unwrap();
        // Also through replacements: each bar first arrives as a provisional flat bar at its open.
        let mut r = Session::new(cfg, with_macd).unwrap();
        for b in bars_of(&case) {
            s.append(b).unwrap();
            let o = b.open;
            r.append(Bar::new(b.time, o, o, o, o, 0.0)).unwrap();
            r.replace_last(b).unwrap();
        }
        for (how, session) in [("appends", &s), ("replacements", &r)] {
            let got = serde_json::to_value(session.document()).unwrap();
            if let Some(d) = diff(&case["expected"], &got, "expected") {
                panic!("{}: incremental ({how}) differs: {d}", path.display());
            }
        }
    }
}

/// Update documents applied by a JSON-only client rebuild the document after every call, on the
/// golden inputs, by appends and by replacements of the last bar.
#[test]
fn golden_files_through_update_documents() {
    for (path, case) in cases() {
        if case.get("expected").is_none() {
            continue;
        }
        let cfg =
            EngineConfig::from_json_overrides(case.get("config").unwrap_or(&json!({}))).unwrap();
        let with_macd = case
            .get("with_macd")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut s = Session::new(cfg, with_macd).unwrap();
        let mut client = update_client::Client::new(with_macd);
        let bars = bars_of(&case);
        for (i, b) in bars.iter().enumerate() {
            // The whole document on small cases after every call, on the real series now and then.
            let full = bars.len() <= 200 || i % 97 == 0 || i + 1 == bars.len();
            let o = b.open;
            let u = s.append(Bar::new(b.time, o, o, o, o, 0.0)).unwrap();
            update_client::step(&mut client, &s, &u, full)
                .unwrap_or_else(|d| panic!("{}: {d}", path.display()));
            let u = s.replace_last(*b).unwrap();
            update_client::step(&mut client, &s, &u, full)
                .unwrap_or_else(|d| panic!("{}: {d}", path.display()));
        }
        let got = serde_json::to_value(s.document()).unwrap();
        assert!(
            diff(&case["expected"], &got, "expected").is_none(),
            "{}",
            path.display()
        );
    }
}
