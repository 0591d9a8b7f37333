//! The sections of the configuration file that the algorithm does not read: the process
//! (`system`, read by the monitor and the servers), the engine servers (`server`), how clients
//! connect (`client`) and logs (`logging`).

use chan_core::ChanError;
use serde::{Deserialize, Serialize};

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
    /// Deadline of the monitor's Analyze and `GetSnapshot` calls (their size is the client's).
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
    /// Non-zero: the server also listens on `host:health_port`, plaintext and without tokens,
    /// for `grpc.health.v1.Health` only (the same statuses as the main port): the kubelet's
    /// native gRPC probe cannot speak TLS. 0: off. Differs from every `*_port` above.
    pub health_port: u32,
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
    /// Non-empty: administrative calls (`UpdateConfig`, Replica, Admin) need this token, and
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
            health_port: 0,
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
        if self.health_port > 65535 {
            return Err(ChanError::config(
                "server.health_port",
                format!(
                    "must be a port from 1 to 65535, or 0 for none, got {}",
                    self.health_port
                ),
            ));
        }
        // Each process listens on one of these; a health listener on any of them would clash
        // with it (on one host) or be mistaken for it.
        for (k, v) in [
            ("server.rust_port", self.rust_port),
            ("server.python_port", self.python_port),
            ("server.monitor_port", self.monitor_port),
        ] {
            if self.health_port != 0 && self.health_port == v {
                return Err(ChanError::config(
                    "server.health_port",
                    format!("must differ from {k} (both are {v})"),
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
    #[must_use]
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
