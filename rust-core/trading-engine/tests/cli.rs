//! The `trading-engine` binary as a user runs it: real files in, JSON or errors out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use trading_config::YamlConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trading-engine"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A CSV in a fresh temporary directory.
fn csv(name: &str, rows: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trading-engine-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut text = String::from("time,open,high,low,close,volume\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &[&str] = &[
    "2024-01-01,10,11,9,10.5,100",
    "2024-01-02,10.5,12,10,11.5,100",
    "2024-01-03,11.5,13,11,12.5,100",
    "2024-01-04,12.5,12.8,10.2,10.4,100",
    "2024-01-05,10.4,10.6,8.5,8.8,100",
];

#[test]
fn analyze_prints_the_document() {
    let f = csv("good.csv", GOOD);
    let out = engine(&["analyze", f.to_str().unwrap(), "--with-macd"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["bars"], 5);
    assert_eq!(d["macd"]["dif"].as_array().unwrap().len(), 5);
    assert_eq!(d["config"]["pen"]["definition"], "new_3kline");
    assert_eq!(d["fractals"][0]["kind"], "top");
    assert_eq!(d["fractals"][0]["time"], "2024-01-03T00:00:00Z");
}

#[test]
fn set_and_config_file_apply() {
    let f = csv("set.csv", GOOD);
    let out = engine(&[
        "analyze",
        f.to_str().unwrap(),
        "--config",
        "config/default.yaml",
        "--set",
        "pen.definition=traditional",
        "--set",
        "macd.fast_period=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["config"]["pen"]["definition"], "traditional");
    assert_eq!(d["config"]["macd"]["fast_period"], 5);
}

#[test]
fn every_macd_preset_loads() {
    let f = csv("preset.csv", GOOD);
    let text = std::fs::read_to_string(repo().join("config/macd_params.yaml")).unwrap();
    let presets = trading_config::MacdPresets::from_yaml(&text).unwrap();
    assert!(presets.presets.len() >= 3);
    for (name, m) in &presets.presets {
        let out = engine(&["analyze", f.to_str().unwrap(), "--macd-preset", name]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["config"]["macd"]["slow_period"], m.slow_period);
    }
}

#[test]
fn default_yaml_parses_to_the_spec_defaults() {
    let text = std::fs::read_to_string(repo().join("config/default.yaml")).unwrap();
    let cfg = trading_config::FileConfig::from_yaml(&text).unwrap();
    assert_eq!(cfg.engine(), chan_core::EngineConfig::default());
}

/// Bad bars: non-zero exit, the message names line, bar, field and rule, nothing on stdout.
#[test]
fn bad_bars_fail_whole_with_named_errors() {
    let mut rows = GOOD.to_vec();
    rows[2] = "2024-01-03,11.5,11,11,12.5,100"; // high below close
    rows[4] = "2024-01-04,10.4,10.6,8.5,8.8,100"; // same time as the bar before
    let f = csv("bad.csv", &rows);
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no partial result");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4: bar 2: high 11 is below max(open, close) 12.5"),
        "{err}"
    );
    assert!(err.contains("rule high_range"), "{err}");
    assert!(
        err.contains("line 6: bar 4: time 2024-01-04T00:00:00Z duplicates"),
        "{err}"
    );
    assert!(err.contains("rule time_duplicate"), "{err}");
}

#[test]
fn bad_files_and_keys_name_the_problem() {
    let f = csv("cols.csv", &[]);
    std::fs::write(&f, "time,open,high,low,volume\n2024-01-01,1,1,1,1\n").unwrap();
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: no column for close"), "{err}");
    assert!(err.contains("[field close, rule column_missing]"), "{err}");

    let f = csv("time.csv", &["yesterday,1,1,1,1,1"]);
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: not a time: \"yesterday\""), "{err}");
    assert!(err.contains("[field time, rule time_unparseable]"), "{err}");

    let f = csv("num.csv", &["2024-01-01,1,x,1,1,1"]);
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: not a number: \"x\" [field high, rule number]"),
        "{err}"
    );

    let f = csv("empty.csv", &[]);
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the series is empty"));

    let g = csv("keys.csv", GOOD);
    let out = engine(&["analyze", g.to_str().unwrap(), "--set", "pen.colour=red"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pen.colour: unknown configuration key"));
    let out = engine(&[
        "analyze",
        g.to_str().unwrap(),
        "--set",
        "macd.slow_period=3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("macd.fast_period"));
}

#[test]
fn summary_is_readable() {
    assert!(repo().join("tests/data/BTCUSD-BITSTAMP_30m.csv").exists());
    let out = engine(&["analyze", "tests/data/BTCUSD-BITSTAMP_30m.csv", "--summary"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1968 bars ->"), "{text}");
    assert!(text.contains("last segments (线段):"));
}

/// `config` never prints a token: a set one shows "<redacted>", an unset one stays empty.
#[test]
fn config_redacts_tokens() {
    let out = engine(&["config", "--set", "server.operator_token=op-s3cret"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("op-s3cret"), "{text}");
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["config"]["server"]["operator_token"], "<redacted>");
    assert_eq!(d["config"]["server"]["auth_token"], "");
    assert_eq!(d["config"]["client"]["tls_ca_file"], "");
    assert_eq!(d["config"]["server"]["replay_window"], 256);
}

/// A probe whose TLS settings cannot be used does not run: exit status 2, the key named.
#[test]
fn probe_with_unreadable_tls_files_cannot_run() {
    let out = engine(&[
        "probe",
        "--address",
        "127.0.0.1:1",
        "--set",
        "client.tls_ca_file=/nonexistent/ca.pem",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("client.tls_ca_file"), "{err}");
}

/// Disorder that is not newest-first is left to the engine: its errors, 20 lines then a count.
#[test]
fn many_violations_are_capped_at_twenty_lines() {
    // 50 bars, each day twice: 25 duplicated times (bars 1, 3, 5, ...; lines 3, 5, 7, ...).
    let rows: Vec<String> = (0..50)
        .map(|i| format!("2024-02-{:02},10,11,9,10.5,100", i / 2 + 1))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let f = csv("dups.csv", &rows);
    let out = engine(&["analyze", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("25 bar rule violation(s)"), "{err}");
    assert_eq!(err.matches("rule time_duplicate").count(), 20, "{err}");
    assert!(err.contains("  line 3: bar 1: "), "{err}");
    assert!(err.contains("… and 5 more"), "{err}");
    assert!(!err.contains("reversed"), "{err}");
}
