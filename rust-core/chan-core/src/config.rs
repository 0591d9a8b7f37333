//! Configuration (spec §11): strict serde types, defaults, range checks, `key=value` overrides.
//!
//! `EngineConfig` holds the algorithm keys; `FileConfig` is the whole `config/default.yaml`
//! (the servers and the monitor read the other sections). Unknown keys are errors everywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ChanError;

/// Bar validation and repair (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    pub allow_non_positive_prices: bool,
    pub repair: bool,
}

/// How the MACD EMAs start (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacdSeed {
    /// Chinese charting convention: every EMA starts at the first close.
    FirstClose,
    /// TA-Lib convention: each EMA starts at a simple mean; values before the lookback are absent.
    Sma,
}

/// MACD parameters (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacdConfig {
    pub fast_period: u32,
    pub slow_period: u32,
    pub signal_period: u32,
    pub histogram_scale: f64,
    pub seed: MacdSeed,
}

impl Default for MacdConfig {
    fn default() -> Self {
        Self {
            fast_period: 12,
            slow_period: 26,
            signal_period: 9,
            histogram_scale: 2.0,
            seed: MacdSeed::FirstClose,
        }
    }
}

/// Which pen (笔) definition applies (spec §5.1 rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PenDefinition {
    /// New pen (新笔): merged span ≥ 3 and ≥ 3 raw bars strictly between the extremes.
    #[serde(rename = "new_3kline")]
    New3Kline,
    /// Traditional pen (老笔): merged span ≥ 4.
    #[serde(rename = "traditional")]
    Traditional,
}

/// Pen parameters (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PenConfig {
    pub definition: PenDefinition,
    pub strict_validation: bool,
}

impl Default for PenConfig {
    fn default() -> Self {
        Self {
            definition: PenDefinition::New3Kline,
            strict_validation: true,
        }
    }
}

/// Segment parameters (spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    pub feature_sequence_strict: bool,
    pub handle_inclusion: bool,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            feature_sequence_strict: true,
            handle_inclusion: true,
        }
    }
}

/// Divergence (背驰) strength measure (spec §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    Area,
    Peak,
    Slope,
    Amplitude,
}

/// Buy/sell point parameters (spec §8, §9).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    pub strength: Strength,
    pub divergence_rate: f64,
    pub min_pivots: u32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            strength: Strength::Area,
            divergence_rate: 1.0,
            min_pivots: 1,
        }
    }
}

/// Every algorithm key of spec §11.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub validation: ValidationConfig,
    pub macd: MacdConfig,
    pub pen: PenConfig,
    pub segment: SegmentConfig,
    pub signal: SignalConfig,
}

/// Which engine serves when both are healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineName {
    Rust,
    Python,
}

/// Process-level settings (used by the servers and the monitor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SystemConfig {
    pub primary_engine: EngineName,
    pub failover_enabled: bool,
    pub health_check_interval_ms: u64,
    /// Deadline of probes, stream messages and small calls: how soon a hang is found.
    pub call_timeout_ms: u64,
    /// Deadline of the monitor's Analyze and GetSnapshot calls (their size is the client's).
    pub batch_timeout_ms: u64,
    pub latency_budget_ms: u64,
    pub auto_failback: bool,
    /// Consecutive good health checks before an engine takes traffic again.
    pub rise: u64,
    /// Consecutive latency checks over budget before an engine is declared slow.
    pub fall: u64,
    /// Least time between two switches the monitor chooses (latency, failback): no ping-pong.
    pub hold_down_ms: u64,
    /// The span of recent calls and probes the latency percentiles cover.
    pub latency_window_ms: u64,
    /// The monitor's SQLite file for its epoch, mode and session journals ("" = memory only).
    pub state_file: String,
    /// The monitor's SQLite file of the streams' buy/sell points ("" = not kept).
    pub signals_file: String,
    /// How old a standby's oldest unapplied bar may be before acknowledgements wait.
    pub max_standby_lag_ms: u64,
    /// Bars a standby may lag in all before acknowledgements wait.
    pub max_standby_lag_bars: u64,
    /// Bars per session in one `Replica.CatchUp`.
    pub catch_up_batch_bars: u64,
    /// A stream message's deadline: this many times the engine's recent p99 ...
    pub hang_deadline_factor: u64,
    /// ... but never below this (and never above `call_timeout_ms`).
    pub min_deadline_ms: u64,
    /// Concurrent client streams the monitor takes; more: `RESOURCE_EXHAUSTED`.
    pub max_streams: u64,
    /// Concurrent unary calls the monitor takes; more: `RESOURCE_EXHAUSTED`.
    pub max_calls: u64,
    /// Stream opens per second the monitor takes; more: `RESOURCE_EXHAUSTED`.
    pub max_opens_per_s: u64,
    /// Sessions the monitor keeps: the least recently used idle one is closed on both engines.
    pub max_sessions: u64,
    /// A session with no stream for this long is closed on both engines (0: never).
    pub session_idle_ms: u64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            primary_engine: EngineName::Rust,
            failover_enabled: true,
            health_check_interval_ms: 1000,
            call_timeout_ms: 400,
            batch_timeout_ms: 60_000,
            latency_budget_ms: 250,
            auto_failback: false,
            rise: 3,
            fall: 3,
            hold_down_ms: 10_000,
            latency_window_ms: 10_000,
            state_file: String::new(),
            signals_file: "var/signals.sqlite".into(),
            max_standby_lag_ms: 250,
            max_standby_lag_bars: 100_000,
            catch_up_batch_bars: 4096,
            hang_deadline_factor: 3,
            min_deadline_ms: 50,
            max_streams: 2000,
            max_calls: 256,
            max_opens_per_s: 500,
            max_sessions: 10_000,
            session_idle_ms: 3_600_000,
        }
    }
}

impl SystemConfig {
    /// Checks the ranges; the error names the key (`system.rise`).
    pub fn validate(&self) -> Result<(), ChanError> {
        for (k, v) in [
            (
                "system.health_check_interval_ms",
                self.health_check_interval_ms,
            ),
            ("system.call_timeout_ms", self.call_timeout_ms),
            ("system.batch_timeout_ms", self.batch_timeout_ms),
            ("system.rise", self.rise),
            ("system.fall", self.fall),
            ("system.latency_window_ms", self.latency_window_ms),
            ("system.max_standby_lag_ms", self.max_standby_lag_ms),
            ("system.max_standby_lag_bars", self.max_standby_lag_bars),
            ("system.catch_up_batch_bars", self.catch_up_batch_bars),
            ("system.hang_deadline_factor", self.hang_deadline_factor),
            ("system.min_deadline_ms", self.min_deadline_ms),
            ("system.max_streams", self.max_streams),
            ("system.max_calls", self.max_calls),
            ("system.max_opens_per_s", self.max_opens_per_s),
            ("system.max_sessions", self.max_sessions),
        ] {
            if v < 1 {
                return Err(ChanError::config(k, format!("must be >= 1, got {v}")));
            }
        }
        Ok(())
    }
}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub level: String,
    pub format: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "json".into(),
        }
    }
}

/// The engine servers (`docs/GRPC.md`): where they listen, request limits, exactly-once replay,
/// shutdown, authentication and TLS. Empty strings mean "not set".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    /// 0: any free port (the server prints the one it got).
    pub rust_port: u32,
    pub python_port: u32,
    pub monitor_port: u32,
    /// The largest request accepted; the transport refuses anything beyond twice this.
    pub max_message_bytes: u64,
    /// Stream answers kept per session, resent for duplicates.
    pub replay_window: u64,
    /// How long in-flight calls may run on after SIGTERM/SIGINT.
    pub shutdown_grace_ms: u64,
    /// Non-empty: every call but health needs `authorization: Bearer <token>`.
    pub auth_token: String,
    /// The client token read from this file when the server starts (trailing whitespace
    /// stripped); not together with `auth_token`.
    pub auth_token_file: String,
    /// Non-empty: administrative calls (UpdateConfig, Replica, Admin) need this token, and
    /// the client token is refused for them.
    pub operator_token: String,
    /// `operator_token` read from this file (as `auth_token_file`).
    pub operator_token_file: String,
    /// Sessions an engine holds: opening one more closes the least recently used one with no
    /// stream attached, else `RESOURCE_EXHAUSTED`.
    pub max_sessions: u64,
    /// With `tls_key_file`: serve TLS (PEM).
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// Also set: mutual TLS, client certificates signed by this CA (PEM).
    pub tls_client_ca_file: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            rust_port: 50051,
            python_port: 50052,
            monitor_port: 50050,
            max_message_bytes: 64 * 1024 * 1024,
            replay_window: 256,
            shutdown_grace_ms: 5000,
            auth_token: String::new(),
            auth_token_file: String::new(),
            operator_token: String::new(),
            operator_token_file: String::new(),
            max_sessions: 20_000,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_client_ca_file: String::new(),
        }
    }
}

impl ServerConfig {
    /// The smallest `max_message_bytes` accepted.
    pub const MIN_MESSAGE_BYTES: u64 = 1024;

    /// Checks the ranges; the error names the key (`server.rust_port`).
    pub fn validate(&self) -> Result<(), ChanError> {
        for (k, v) in [
            ("server.rust_port", self.rust_port),
            ("server.python_port", self.python_port),
            ("server.monitor_port", self.monitor_port),
        ] {
            if v > 65535 {
                return Err(ChanError::config(
                    k,
                    format!("must be a port from 1 to 65535, or 0 for any free port, got {v}"),
                ));
            }
        }
        if self.max_message_bytes < Self::MIN_MESSAGE_BYTES {
            return Err(ChanError::config(
                "server.max_message_bytes",
                format!(
                    "must be >= {}, got {}",
                    Self::MIN_MESSAGE_BYTES,
                    self.max_message_bytes
                ),
            ));
        }
        if self.replay_window < 1 {
            return Err(ChanError::config(
                "server.replay_window",
                format!("must be >= 1, got {}", self.replay_window),
            ));
        }
        if self.max_sessions < 1 {
            return Err(ChanError::config(
                "server.max_sessions",
                format!("must be >= 1, got {}", self.max_sessions),
            ));
        }
        for (key, value, file_key, file) in [
            (
                "server.auth_token",
                &self.auth_token,
                "server.auth_token_file",
                &self.auth_token_file,
            ),
            (
                "server.operator_token",
                &self.operator_token,
                "server.operator_token_file",
                &self.operator_token_file,
            ),
        ] {
            if !value.is_empty() && !file.is_empty() {
                return Err(ChanError::config(
                    file_key,
                    format!("cannot be set together with {key}"),
                ));
            }
        }
        Ok(())
    }

    /// A copy with the secrets replaced by [`REDACTED`] (those that are set), for printing.
    pub fn redacted(&self) -> Self {
        let hide = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                REDACTED.to_owned()
            }
        };
        Self {
            auth_token: hide(&self.auth_token),
            operator_token: hide(&self.operator_token),
            ..self.clone()
        }
    }
}

/// What a printed configuration shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// How every client connects (the monitor to the engines, the commands, the probes, the client
/// library): TLS when `tls_ca_file` or `server.tls_cert_file` is set. Empty strings: not set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Trust this CA (PEM).
    pub tls_ca_file: String,
    /// With `tls_key_file`: present this client certificate (mutual TLS, PEM).
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// The name to verify in the server's certificate (default: the host connected to).
    pub tls_server_name: String,
}

/// The whole configuration file (`config/default.yaml`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub system: SystemConfig,
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub logging: LoggingConfig,
    pub validation: ValidationConfig,
    pub macd: MacdConfig,
    pub pen: PenConfig,
    pub segment: SegmentConfig,
    pub signal: SignalConfig,
}

impl FileConfig {
    /// Parses YAML text, rejecting unknown keys and out-of-range values.
    pub fn from_yaml(text: &str) -> Result<Self, ChanError> {
        let cfg: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ChanError::config("file", e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every range: the algorithm keys (spec §11), then the server's, then the system's.
    pub fn validate(&self) -> Result<(), ChanError> {
        self.engine().validate()?;
        self.server.validate()?;
        self.system.validate()
    }

    /// The algorithm part.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            validation: self.validation,
            macd: self.macd,
            pen: self.pen,
            segment: self.segment,
            signal: self.signal,
        }
    }

    /// Applies one `section.key=value` override (value read as a YAML scalar).
    pub fn set(&mut self, assignment: &str) -> Result<(), ChanError> {
        let next = set_key(self, assignment)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// A copy fit to print: the tokens that are set show [`REDACTED`].
    pub fn redacted(&self) -> Self {
        Self {
            server: self.server.redacted(),
            ..self.clone()
        }
    }
}

impl EngineConfig {
    /// Parses the algorithm keys from YAML (a file holding only these sections).
    pub fn from_yaml(text: &str) -> Result<Self, ChanError> {
        let cfg: EngineConfig = if text.trim().is_empty() {
            EngineConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ChanError::config("file", e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Builds a configuration from a JSON object of overrides (nested sections), as golden files
    /// and gRPC requests carry them. Each key is applied on its own, so an error names it.
    pub fn from_json_overrides(v: &Value) -> Result<Self, ChanError> {
        let mut leaves = Vec::new();
        collect_leaves(v, "", &mut leaves)?;
        let mut cfg = EngineConfig::default();
        for (key, value) in leaves {
            cfg = set_value(&cfg, &key, value)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies one `section.key=value` override (value read as a YAML scalar).
    pub fn set(&mut self, assignment: &str) -> Result<(), ChanError> {
        let next = set_key(self, assignment)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Checks every range of spec §11; the error names the key.
    pub fn validate(&self) -> Result<(), ChanError> {
        let m = &self.macd;
        for (k, v) in [
            ("macd.fast_period", m.fast_period),
            ("macd.slow_period", m.slow_period),
            ("macd.signal_period", m.signal_period),
        ] {
            if v < 1 {
                return Err(ChanError::config(k, format!("must be >= 1, got {v}")));
            }
        }
        if m.fast_period >= m.slow_period {
            return Err(ChanError::config(
                "macd.fast_period",
                format!(
                    "must be < macd.slow_period ({}), got {}",
                    m.slow_period, m.fast_period
                ),
            ));
        }
        if !(m.histogram_scale.is_finite() && m.histogram_scale > 0.0) {
            return Err(ChanError::config(
                "macd.histogram_scale",
                format!("must be a finite number > 0, got {}", m.histogram_scale),
            ));
        }
        let r = self.signal.divergence_rate;
        if !(r.is_finite() && r > 0.0) {
            return Err(ChanError::config(
                "signal.divergence_rate",
                format!("must be a finite number > 0, got {r}"),
            ));
        }
        Ok(())
    }
}

/// Named MACD parameter sets (`config/macd_params.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacdPresets {
    pub presets: BTreeMap<String, MacdConfig>,
}

impl MacdPresets {
    /// Parses the presets file; each preset is range-checked like `macd`.
    pub fn from_yaml(text: &str) -> Result<Self, ChanError> {
        let p: MacdPresets = serde_yaml_ng::from_str(text)
            .map_err(|e| ChanError::config("presets", e.to_string()))?;
        for (name, m) in &p.presets {
            let cfg = EngineConfig {
                macd: *m,
                ..Default::default()
            };
            cfg.validate().map_err(|e| match e {
                ChanError::Config { key, message } => {
                    ChanError::config(format!("presets.{name}.{key}"), message)
                }
                other => other,
            })?;
        }
        Ok(p)
    }
}

fn set_key<T: Serialize + serde::de::DeserializeOwned>(
    cfg: &T,
    assignment: &str,
) -> Result<T, ChanError> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| {
        ChanError::config(
            assignment,
            "an override must have the form section.key=value",
        )
    })?;
    let key = key.trim();
    let value: Value = serde_yaml_ng::from_str(raw.trim())
        .map_err(|e| ChanError::config(key, format!("unreadable value {raw:?}: {e}")))?;
    // A text key takes the text as written, even when it reads as a number (`auth_token=123`)
    // or as nothing.
    let value = if is_text_key(cfg, key) && !value.is_string() {
        Value::String(raw.trim().to_string())
    } else {
        value
    };
    set_value(cfg, key, value)
}

fn is_text_key<T: Serialize>(cfg: &T, key: &str) -> bool {
    let tree = serde_json::to_value(cfg).expect("serializable");
    key.split('.')
        .try_fold(&tree, |node, part| node.get(part))
        .is_some_and(Value::is_string)
}

/// The prefix of environment variables that override the configuration:
/// `TRADING_SYSTEM__SECTION__KEY=value` (section and key matched lower-cased).
pub const ENV_PREFIX: &str = "TRADING_SYSTEM__";

impl FileConfig {
    /// Applies the `TRADING_SYSTEM__SECTION__KEY` variables among `vars` as one set (their
    /// order does not matter; ranges are checked once, at the end). An empty value changes
    /// nothing; an unknown key or a bad value is an error naming the key and the variable.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        vars: I,
    ) -> Result<(), ChanError> {
        let mut found: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        found.sort();
        let mut next = self.clone();
        for (name, raw) in &found {
            let parts: Vec<&str> = name[ENV_PREFIX.len()..].split("__").collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(ChanError::config(
                    name.as_str(),
                    format!("expected the form {ENV_PREFIX}SECTION__KEY"),
                ));
            }
            if raw.trim().is_empty() {
                continue;
            }
            let key = format!("{}.{}", parts[0].to_lowercase(), parts[1].to_lowercase());
            next = set_key(&next, &format!("{key}={raw}")).map_err(|e| from_env(e, name))?;
        }
        next.validate().map_err(|e| match e {
            ChanError::Config { key, message } => {
                let var = found
                    .iter()
                    .find(|(n, _)| n[ENV_PREFIX.len()..].to_lowercase().replace("__", ".") == key);
                let name = var.map_or(format!("{ENV_PREFIX}*"), |(n, _)| n.clone());
                ChanError::config(key, format!("{message} (from the environment: {name})"))
            }
            other => other,
        })?;
        *self = next;
        Ok(())
    }
}

fn from_env(e: ChanError, name: &str) -> ChanError {
    match e {
        ChanError::Config { key, message } => {
            ChanError::config(key, format!("{message} (from the environment: {name})"))
        }
        other => other,
    }
}

/// Replaces the value at the dotted `key`; unknown keys and wrong types are errors naming it.
fn set_value<T: Serialize + serde::de::DeserializeOwned>(
    cfg: &T,
    key: &str,
    value: Value,
) -> Result<T, ChanError> {
    let mut tree = serde_json::to_value(cfg).expect("serializable");
    let mut node = &mut tree;
    for part in key.split('.') {
        node = node
            .as_object_mut()
            .and_then(|o| o.get_mut(part))
            .ok_or_else(|| ChanError::config(key, "unknown configuration key"))?;
    }
    if node.is_object() {
        return Err(ChanError::config(key, "is a section, not a key"));
    }
    *node = value;
    serde_json::from_value(tree).map_err(|e| ChanError::config(key, e.to_string()))
}

/// The dotted paths and values of every leaf of a JSON object of overrides.
fn collect_leaves(v: &Value, path: &str, out: &mut Vec<(String, Value)>) -> Result<(), ChanError> {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_leaves(x, &p, out)?;
            }
            Ok(())
        }
        // An empty override (`macd: null`) changes nothing.
        Value::Null => Ok(()),
        _ if path.is_empty() => Err(ChanError::config("config", "expected a mapping")),
        x => {
            out.push((path.to_string(), x.clone()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            e.to_string().contains("macd.fast")
                && e.to_string().contains("TRADING_SYSTEM__MACD__FAST"),
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
    fn defaults_match_the_spec_table() {
        let c = EngineConfig::default();
        assert_eq!(c.macd.fast_period, 12);
        assert_eq!(c.macd.slow_period, 26);
        assert_eq!(c.macd.signal_period, 9);
        assert_eq!(c.macd.histogram_scale, 2.0);
        assert_eq!(c.macd.seed, MacdSeed::FirstClose);
        assert_eq!(c.pen.definition, PenDefinition::New3Kline);
        assert!(c.pen.strict_validation);
        assert!(c.segment.feature_sequence_strict && c.segment.handle_inclusion);
        assert_eq!(c.signal.strength, Strength::Area);
        assert_eq!(c.signal.divergence_rate, 1.0);
        assert_eq!(c.signal.min_pivots, 1);
        assert!(!c.validation.repair && !c.validation.allow_non_positive_prices);
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
        let e = EngineConfig::from_json_overrides(&serde_json::json!({"pen": {"kind": 1}}))
            .unwrap_err();
        assert_eq!(
            e,
            ChanError::config("pen.kind", "unknown configuration key")
        );
        let e = EngineConfig::from_json_overrides(&serde_json::json!({"pen": 3})).unwrap_err();
        assert_eq!(e, ChanError::config("pen", "is a section, not a key"));
    }

    #[test]
    fn json_overrides_name_the_key() {
        use serde_json::json;
        for (v, key) in [
            (json!({"macd": {"fast_period": -1}}), "macd.fast_period"),
            (json!({"pen": {"definition": "old"}}), "pen.definition"),
            (json!({"signal": {"min_pivots": 1.5}}), "signal.min_pivots"),
            (
                json!({"macd": {"histogram_scale": "x"}}),
                "macd.histogram_scale",
            ),
            (json!({"macd": {"fast_period": 40}}), "macd.fast_period"),
        ] {
            let e = EngineConfig::from_json_overrides(&v).unwrap_err();
            assert!(
                matches!(&e, ChanError::Config { key: k, .. } if k == key),
                "{v}: {e}"
            );
        }
        let c = EngineConfig::from_json_overrides(
            &json!({"macd": {"fast_period": 5}, "segment": null}),
        )
        .unwrap();
        assert_eq!(c.macd.fast_period, 5);
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
}
