//! Golden files (`tests/golden/*.json` at the repository root): inputs with their expected
//! analysis document, shared with the Python engine. Each file may also hold `checks`, a
//! hand-derived partial expectation (`{"expected": {...}}` or `{"expected_error": [...]}`) that
//! must hold whatever `expected` says, so regenerating `expected`
//! (`GOLDEN_UPDATE=1 cargo test --test golden`) cannot hide a wrong result.
//!
//! A libtest-mimic harness (`harness = false`): one trial per golden file and check, named
//! `batch::FILE`, `incremental::FILE` and `update_documents::FILE` (FILE without `.json`), so a
//! failing file hides no other and `cargo test --test golden -- FILE` runs one file's trials.
//! With `GOLDEN_UPDATE` set only the batch trials run (they rewrite `expected`): the others
//! would compare against the files being rewritten, so run once more without it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chan_core::timestamp::parse_time;
use chan_core::{analyze, Bar, EngineConfig, Session};
use libtest_mimic::{Arguments, Failed, Trial};
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

/// One golden file: the analysis document (or the violations) matches `expected` (or
/// `expected_error`), and the hand-derived `checks` hold. With `update`, `expected` is rewritten
/// from the engine instead (the `checks` still have to hold).
fn batch(path: &Path, case: &Value, update: bool) -> Result<(), Failed> {
    let got = run_case(case);
    let (key, value) = got.as_object().unwrap().iter().next().unwrap();
    if let Some(checks) = case.get("checks") {
        if let Some(d) = check_subset(checks, &got, "") {
            return Err(format!("hand-derived check fails: {d}").into());
        }
    }
    if update {
        let mut case = case.clone();
        let obj = case.as_object_mut().unwrap();
        obj.remove("expected");
        obj.remove("expected_error");
        obj.insert(key.clone(), value.clone());
        let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    match case.get(key.as_str()) {
        None => Err(format!("no {key:?} (the engine gave that)").into()),
        Some(want) => match diff(want, value, key) {
            Some(d) => Err(d.into()),
            None => Ok(()),
        },
    }
}

fn session_of(case: &Value) -> (EngineConfig, bool) {
    let cfg = EngineConfig::from_json_overrides(case.get("config").unwrap_or(&json!({}))).unwrap();
    let with_macd = case
        .get("with_macd")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (cfg, with_macd)
}

/// The incremental engine gives the same document on a golden input, bar by bar, by appends
/// and by replacements of the last bar.
fn incremental(case: &Value) -> Result<(), Failed> {
    let (cfg, with_macd) = session_of(case);
    let mut s = Session::new(cfg, with_macd).unwrap();
    // Also through replacements: each bar first arrives as a provisional flat bar at its open.
    let mut r = Session::new(cfg, with_macd).unwrap();
    for b in bars_of(case) {
        s.append(b).unwrap();
        let o = b.open;
        r.append(Bar::new(b.time, o, o, o, o, 0.0)).unwrap();
        r.replace_last(b).unwrap();
    }
    for (how, session) in [("appends", &s), ("replacements", &r)] {
        let got = serde_json::to_value(session.document()).unwrap();
        if let Some(d) = diff(&case["expected"], &got, "expected") {
            return Err(format!("incremental ({how}) differs: {d}").into());
        }
    }
    Ok(())
}

/// Update documents applied by a JSON-only client rebuild the document after every call, on a
/// golden input, by appends and by replacements of the last bar.
fn update_documents(case: &Value) -> Result<(), Failed> {
    let (cfg, with_macd) = session_of(case);
    let mut s = Session::new(cfg, with_macd).unwrap();
    let mut client = update_client::Client::new(with_macd);
    let bars = bars_of(case);
    for (i, b) in bars.iter().enumerate() {
        // The whole document on small cases after every call, on the real series now and then.
        let full = bars.len() <= 200 || i % 97 == 0 || i + 1 == bars.len();
        let o = b.open;
        let u = s.append(Bar::new(b.time, o, o, o, o, 0.0)).unwrap();
        update_client::step(&mut client, &s, &u, full)?;
        let u = s.replace_last(*b).unwrap();
        update_client::step(&mut client, &s, &u, full)?;
    }
    let got = serde_json::to_value(s.document()).unwrap();
    match diff(&case["expected"], &got, "expected") {
        Some(d) => Err(d.into()),
        None => Ok(()),
    }
}

fn main() {
    let args = Arguments::from_args();
    let update = std::env::var_os("GOLDEN_UPDATE").is_some();
    let all = cases();
    let count = all.len();
    let mut trials = vec![Trial::test("golden_files_exist", move || {
        if count >= 10 {
            Ok(())
        } else {
            Err(format!("golden files are missing: {count} found").into())
        }
    })];
    for (path, case) in all {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let (path, case) = (Arc::new(path), Arc::new(case));
        let has_expected = case.get("expected").is_some();
        {
            let (path, case) = (Arc::clone(&path), Arc::clone(&case));
            trials.push(Trial::test(format!("batch::{name}"), move || {
                batch(&path, &case, update)
            }));
        }
        if update || !has_expected {
            continue;
        }
        {
            let case = Arc::clone(&case);
            trials.push(Trial::test(format!("incremental::{name}"), move || {
                incremental(&case)
            }));
        }
        trials.push(Trial::test(
            format!("update_documents::{name}"),
            move || update_documents(&case),
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
