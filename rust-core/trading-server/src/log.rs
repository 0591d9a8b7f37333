//! Logs: one JSON object per line on stderr (`logging.format: json`, the default) or tracing's
//! plain text (`text`). Every line has `ts` (UTC, milliseconds), `level` and `engine`; the line
//! of a call or stream message (target [`ACCESS`]) always has `method`, `session`, `seq`,
//! `latency_ms` and `status` too (`null` where they do not apply), then `message` when the call
//! failed.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tonic::Code;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::status::code_name;
use crate::ENGINE;

/// The target of the per-call lines.
pub const ACCESS: &str = "access";

/// The keys every per-call line carries, in this order.
const ACCESS_KEYS: [&str; 5] = ["method", "session", "seq", "latency_ms", "status"];

/// Sets the global subscriber: `level` is one of trace, debug, info, warn, error; `format` is
/// json or text. Does nothing when one is already set (tests start several servers).
pub fn init(level: &str, format: &str) -> Result<(), String> {
    let level: Level = match level {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        other => {
            return Err(format!(
                "logging.level must be one of trace, debug, info, warn, error, got {other:?}"
            ))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    let _ = match format {
        "json" => builder.event_format(JsonLines).try_init(),
        "text" => builder.with_ansi(false).try_init(),
        other => {
            return Err(format!(
                "logging.format must be json or text, got {other:?}"
            ))
        }
    };
    Ok(())
}

/// Logs one call or stream message: `ok` and client errors at info, server errors at error.
pub fn call(
    method: &str,
    session: Option<&str>,
    seq: Option<u64>,
    started: Instant,
    code: Code,
    message: Option<&str>,
) {
    let latency_ms = millis(started.elapsed());
    let status = code_name(code);
    // User text, shown by the project's one rule (checked names are shown as they are).
    let shown = session.map(chan_core::display::shown);
    let session = shown.as_deref();
    match code {
        Code::Internal | Code::Unknown | Code::DataLoss => tracing::error!(
            target: ACCESS, method, session, seq, latency_ms, status, message
        ),
        _ => tracing::info!(target: ACCESS, method, session, seq, latency_ms, status, message),
    }
}

/// Logs a batch call (`Replica.CatchUp`): the call's line with the sessions and bars it
/// carried (`null` when it was refused before they were read).
pub fn batch(
    method: &str,
    counts: Option<(usize, usize)>,
    started: Instant,
    code: Code,
    message: Option<&str>,
) {
    let latency_ms = millis(started.elapsed());
    let status = code_name(code);
    let (sessions, bars) = (counts.map(|c| c.0 as u64), counts.map(|c| c.1 as u64));
    tracing::info!(
        target: ACCESS,
        method,
        session = Option::<&str>::None,
        seq = Option::<u64>::None,
        latency_ms,
        status,
        message,
        sessions,
        bars
    );
}

/// Logs one request of a `Replica.Apply` stream (not its messages): the call's line with the
/// number of messages it carried (`null` for a stream ended before a request was read).
pub fn apply(messages: Option<usize>, started: Instant, code: Code, message: Option<&str>) {
    let latency_ms = millis(started.elapsed());
    let status = code_name(code);
    let messages = messages.map(|n| n as u64);
    let method = "Apply";
    let (session, seq) = (Option::<&str>::None, Option::<u64>::None);
    match code {
        Code::Internal | Code::Unknown | Code::DataLoss => tracing::error!(
            target: ACCESS, method, session, seq, latency_ms, status, message, messages
        ),
        _ => tracing::info!(
            target: ACCESS, method, session, seq, latency_ms, status, message, messages
        ),
    }
}

/// Logs a health call (at debug: probes come every second).
pub fn health(method: &str, service: &str, started: Instant, code: Code) {
    let latency_ms = millis(started.elapsed());
    let status = code_name(code);
    tracing::debug!(target: ACCESS, method, service, latency_ms, status);
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The JSON line formatter.
struct JsonLines;

/// The fields of an event in the order they were recorded, as JSON values.
#[derive(Default)]
struct Fields(Vec<(&'static str, serde_json::Value)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((
            field.name(),
            serde_json::Value::String(format!("{value:?}")),
        ));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), value.into()));
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn push(out: &mut String, key: &str, value: &serde_json::Value) {
    out.push(',');
    out.push_str(&serde_json::Value::String(key.to_owned()).to_string());
    out.push(':');
    out.push_str(&value.to_string());
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut out = String::with_capacity(192);
        write!(
            out,
            "{{\"ts\":\"{}\",\"level\":\"{}\",\"engine\":\"{ENGINE}\"",
            now(),
            meta.level().as_str().to_ascii_lowercase()
        )?;
        if meta.target() == ACCESS {
            for key in ACCESS_KEYS {
                let v = fields
                    .0
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or(serde_json::Value::Null, |(_, v)| v.clone());
                push(&mut out, key, &v);
            }
            for (k, v) in &fields.0 {
                if !ACCESS_KEYS.contains(k) {
                    push(&mut out, k, v);
                }
            }
        } else {
            for (k, v) in &fields.0 {
                push(&mut out, k, v);
            }
            push(&mut out, "target", &meta.target().into());
        }
        out.push('}');
        writeln!(writer, "{out}")
    }
}
