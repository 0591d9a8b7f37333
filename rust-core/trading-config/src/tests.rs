//! The file, environment and `--set` readings, key for key.

use chan_core::config::{MacdSeed, PenConfig, PenDefinition};
use chan_core::{ChanError, EngineConfig};

use crate::{ClientConfig, FileConfig, ServerConfig, SystemConfig, YamlConfig, REDACTED};

fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn environment_overrides_as_one_set() {
    let mut cfg = FileConfig::default();
    // fast 30 alone is out of range against slow 26: together with slow 40 it is fine.
    cfg.apply_env(vars(&[
        ("TRADING_SYSTEM__MACD__FAST_PERIOD", "30"),
        ("TRADING_SYSTEM__MACD__SLOW_PERIOD", "40"),
        ("TRADING_SYSTEM__SERVER__AUTH_TOKEN", "12345"),
        ("TRADING_SYSTEM__PEN__DEFINITION", ""),
        ("HOME", "/"),
    ]))
    .unwrap();
    assert_eq!((cfg.macd.fast_period, cfg.macd.slow_period), (30, 40));
    assert_eq!(cfg.server.auth_token, "12345");
    assert_eq!(cfg.pen, PenConfig::default());
    let e = FileConfig::default()
        .apply_env(vars(&[("TRADING_SYSTEM__MACD__FAST", "3")]))
        .unwrap_err();
    assert!(
        e.to_string().contains("macd.fast") && e.to_string().contains("TRADING_SYSTEM__MACD__FAST"),
        "{e}"
    );
    let e = FileConfig::default()
        .apply_env(vars(&[("TRADING_SYSTEM__MACD__FAST_PERIOD", "30")]))
        .unwrap_err();
    assert!(e.to_string().contains("from the environment"), "{e}");
    let mut cfg = FileConfig::default();
    cfg.set("server.auth_token=007").unwrap();
    assert_eq!(cfg.server.auth_token, "007");
}

#[test]
fn unknown_keys_are_errors() {
    let e = EngineConfig::from_yaml("macd:\n  fastt: 3\n").unwrap_err();
    assert!(e.to_string().contains("fastt"), "{e}");
    let e = EngineConfig::default().set("macd.fastt=3").unwrap_err();
    assert_eq!(
        e,
        ChanError::config("macd.fastt", "unknown configuration key")
    );
    // The same key given as JSON reads the same.
    assert_eq!(
        e,
        EngineConfig::from_json_overrides(&serde_json::json!({"macd": {"fastt": 3}})).unwrap_err()
    );
}

#[test]
fn ranges_name_the_key() {
    let mut c = EngineConfig::default();
    let e = c.set("macd.fast_period=30").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "macd.fast_period"));
    let e = c.set("macd.signal_period=0").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "macd.signal_period"));
    let e = c.set("signal.divergence_rate=0").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "signal.divergence_rate"));
    let e = c.set("macd.histogram_scale=-1").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "macd.histogram_scale"));
    let e = c.set("signal.min_pivots=-1").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "signal.min_pivots"));
    assert_eq!(
        c,
        EngineConfig::default(),
        "a rejected override changes nothing"
    );
    let e = c.set("pen.definition=old").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "pen.definition"));
    c.set("pen.definition=traditional").unwrap();
    assert_eq!(c.pen.definition, PenDefinition::Traditional);
    c.set("macd.seed=sma").unwrap();
    assert_eq!(c.macd.seed, MacdSeed::Sma);
}

#[test]
fn server_section_defaults_equal_the_yaml() {
    let s = ServerConfig::default();
    assert_eq!(s.host, "127.0.0.1");
    assert_eq!(
        (s.rust_port, s.python_port, s.monitor_port),
        (50051, 50052, 50050)
    );
    assert_eq!(s.max_message_bytes, 67_108_864);
    assert_eq!((s.replay_window, s.shutdown_grace_ms), (256, 5000));
    assert_eq!(s.max_sessions, 20_000);
    assert!(s.auth_token_file.is_empty() && s.operator_token.is_empty());
    assert!(s.operator_token_file.is_empty());
    assert_eq!(FileConfig::default().client, ClientConfig::default());
    assert!(s.auth_token.is_empty() && s.tls_cert_file.is_empty());
    assert!(s.tls_key_file.is_empty() && s.tls_client_ca_file.is_empty());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/default.yaml"
    ))
    .unwrap();
    assert_eq!(FileConfig::from_yaml(&text).unwrap(), FileConfig::default());
    // A missing section or key takes its default.
    let c = FileConfig::from_yaml("server:\n  rust_port: 0\n").unwrap();
    assert_eq!(c.server.rust_port, 0);
    assert_eq!(c.server.replay_window, 256);
}

#[test]
fn server_keys_are_checked_and_set() {
    let e = FileConfig::from_yaml("server:\n  port: 1\n").unwrap_err();
    assert!(e.to_string().contains("port"), "{e}");
    for (yaml, key) in [
        ("server:\n  rust_port: 65536\n", "server.rust_port"),
        ("server:\n  python_port: 70000\n", "server.python_port"),
        ("server:\n  monitor_port: 100000\n", "server.monitor_port"),
        (
            "server:\n  max_message_bytes: 1023\n",
            "server.max_message_bytes",
        ),
        ("server:\n  replay_window: 0\n", "server.replay_window"),
    ] {
        let e = FileConfig::from_yaml(yaml).unwrap_err();
        assert!(
            matches!(&e, ChanError::Config { key: k, .. } if k == key),
            "{yaml}: {e}"
        );
    }
    let e = FileConfig::from_yaml("server:\n  rust_port: -1\n").unwrap_err();
    assert!(e.to_string().contains("rust_port"), "{e}");
    // Limits themselves are fine.
    let c = FileConfig::from_yaml(
        "server:\n  rust_port: 65535\n  max_message_bytes: 1024\n  replay_window: 1\n",
    )
    .unwrap();
    assert_eq!(c.server.rust_port, 65535);

    let mut c = FileConfig::default();
    c.set("server.rust_port=0").unwrap();
    c.set("server.host=0.0.0.0").unwrap();
    c.set("server.auth_token=s3cret").unwrap();
    c.set("server.tls_cert_file=certs/server.pem").unwrap();
    assert_eq!(c.server.rust_port, 0);
    assert_eq!(c.server.host, "0.0.0.0");
    assert_eq!(c.server.auth_token, "s3cret");
    assert_eq!(c.server.tls_cert_file, "certs/server.pem");
    let before = c.clone();
    for (assignment, key) in [
        ("server.rust_port=65536", "server.rust_port"),
        ("server.max_message_bytes=10", "server.max_message_bytes"),
        ("server.replay_window=0", "server.replay_window"),
        ("server.replay_window=-3", "server.replay_window"),
        ("server.colour=red", "server.colour"),
        ("server.shutdown_grace_ms=soon", "server.shutdown_grace_ms"),
    ] {
        let e = c.set(assignment).unwrap_err();
        assert!(
            matches!(&e, ChanError::Config { key: k, .. } if k == key),
            "{assignment}: {e}"
        );
    }
    assert_eq!(c, before, "a rejected override changes nothing");
    // The engine keys are still checked through the file configuration.
    let e = c.set("macd.fast_period=40").unwrap_err();
    assert!(matches!(&e, ChanError::Config { key, .. } if key == "macd.fast_period"));
}

#[test]
fn system_defaults_and_ranges() {
    let s = SystemConfig::default();
    assert_eq!(
        (s.max_standby_lag_ms, s.max_standby_lag_bars),
        (250, 100_000)
    );
    assert_eq!((s.catch_up_batch_bars, s.hang_deadline_factor), (4096, 3));
    assert_eq!(
        (s.min_deadline_ms, s.max_streams, s.max_calls),
        (50, 2000, 256)
    );
    assert_eq!((s.max_opens_per_s, s.max_sessions), (500, 10_000));
    assert_eq!(s.session_idle_ms, 3_600_000);
    for key in [
        "max_standby_lag_ms",
        "max_standby_lag_bars",
        "catch_up_batch_bars",
        "hang_deadline_factor",
        "min_deadline_ms",
        "max_streams",
        "max_calls",
        "max_opens_per_s",
        "max_sessions",
    ] {
        let e = FileConfig::from_yaml(&format!("system:\n  {key}: 0\n")).unwrap_err();
        assert_eq!(
            e,
            ChanError::config(format!("system.{key}"), "must be >= 1, got 0"),
        );
        let c = FileConfig::from_yaml(&format!("system:\n  {key}: 1\n")).unwrap();
        assert_eq!(c.system.validate(), Ok(()));
    }
    // 0 is "never".
    let c = FileConfig::from_yaml("system:\n  session_idle_ms: 0\n").unwrap();
    assert_eq!(c.system.session_idle_ms, 0);
    let e = FileConfig::from_yaml("server:\n  max_sessions: 0\n").unwrap_err();
    assert_eq!(
        e,
        ChanError::config("server.max_sessions", "must be >= 1, got 0")
    );
}

#[test]
fn client_section_and_token_keys() {
    let c = FileConfig::from_yaml(
        "client:\n  tls_ca_file: ca.pem\n  tls_server_name: engine\n\
         server:\n  operator_token_file: /run/op\n  auth_token: abc\n",
    )
    .unwrap();
    assert_eq!(c.client.tls_ca_file, "ca.pem");
    assert_eq!(c.client.tls_server_name, "engine");
    assert_eq!(c.server.operator_token_file, "/run/op");
    let e = FileConfig::from_yaml("client:\n  tls_ca: x\n").unwrap_err();
    assert!(e.to_string().contains("tls_ca"), "{e}");
    for (yaml, key, other) in [
        (
            "server:\n  auth_token: a\n  auth_token_file: f\n",
            "server.auth_token_file",
            "server.auth_token",
        ),
        (
            "server:\n  operator_token: a\n  operator_token_file: f\n",
            "server.operator_token_file",
            "server.operator_token",
        ),
    ] {
        assert_eq!(
            FileConfig::from_yaml(yaml).unwrap_err(),
            ChanError::config(key, format!("cannot be set together with {other}")),
        );
    }
    let mut c = FileConfig::default();
    c.apply_env(vars(&[("TRADING_SYSTEM__SERVER__OPERATOR_TOKEN", "0042")]))
        .unwrap();
    assert_eq!(c.server.operator_token, "0042");
    c.set("client.tls_cert_file=c.pem").unwrap();
    assert_eq!(c.client.tls_cert_file, "c.pem");
    let e = c.set("server.operator_token_file=/x").unwrap_err();
    assert!(
        matches!(&e, ChanError::Config { key, .. } if key == "server.operator_token_file"),
        "{e}"
    );
}

#[test]
fn secrets_are_redacted() {
    let mut c = FileConfig::default();
    c.set("server.operator_token=op-secret").unwrap();
    let r = c.redacted();
    assert_eq!(r.server.operator_token, REDACTED);
    assert_eq!(r.server.auth_token, "", "an empty token stays empty");
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("op-secret"), "{text}");
    assert_eq!(r.server.rust_port, c.server.rust_port);
}

#[test]
fn the_health_port_is_off_by_default_and_clashes_with_no_port() {
    assert_eq!(FileConfig::default().server.health_port, 0);
    let mut c = FileConfig::default();
    c.set("server.health_port=8081").unwrap();
    assert_eq!(c.server.health_port, 8081);
    c.set("server.health_port=0").unwrap();
    for (assignment, names) in [
        ("server.health_port=65536", "server.health_port"),
        ("server.health_port=50051", "server.rust_port"),
        ("server.health_port=50052", "server.python_port"),
        ("server.health_port=50050", "server.monitor_port"),
    ] {
        let e = c.set(assignment).unwrap_err();
        assert!(
            matches!(&e, ChanError::Config { key, message } if key == "server.health_port"
                && (message.contains(names) || names == "server.health_port")),
            "{assignment}: {e}"
        );
    }
    // A main port of 0 (any free port) clashes with nothing.
    let c = FileConfig::from_yaml("server:\n  rust_port: 0\n  health_port: 9000\n").unwrap();
    assert_eq!(c.server.health_port, 9000);
}
