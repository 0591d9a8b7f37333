//! Errors as gRPC statuses (`docs/GRPC.md`, "Errors"): `INVALID_ARGUMENT` with
//! `google.rpc.BadRequest` details for bad bars, columns, configuration overrides and session
//! names; `RESOURCE_EXHAUSTED` for oversized requests; `UNAUTHENTICATED` without the token. Stream
//! messages get the same content in-band, as a `StreamError`.

use chan_core::{ChanError, Violation};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::convert::ColumnLengths;
use crate::pb;

/// The message of a missing or wrong bearer token.
pub const UNAUTHENTICATED: &str = "missing or invalid bearer token";

/// The message of the client token on an administrative call.
pub const PERMISSION_DENIED: &str = "operator credential required";

/// Field violations listed in one error; more are summed up in one last entry
/// ([`truncated`]): a thousand bad bars must not make a status too large for its trailers.
pub const MAX_VIOLATIONS: usize = 20;

/// The entry that stands for the violations beyond [`MAX_VIOLATIONS`].
fn truncated(more: usize) -> pb::BadRequestFieldViolation {
    pb::BadRequestFieldViolation {
        field: "bars".into(),
        description: format!("truncated: {more} more violations not listed"),
        reason: "truncated".into(),
        index: -1,
    }
}

/// A status with `google.rpc.BadRequest` details.
pub fn bad_request(message: impl Into<String>, violations: Vec<FieldViolation>) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    )
}

/// The field a bar violation names: `bars[<i>].<field>`, or `bars` for the whole series.
pub fn violation_field(v: &Violation) -> String {
    match v.index {
        Some(i) => format!("bars[{i}].{}", v.field),
        None => v.field.to_string(),
    }
}

/// The description of a bar violation: `<rule>: <message>`.
pub fn violation_description(v: &Violation) -> String {
    format!("{}: {}", v.rule, v.message)
}

/// A core error as a unary call's status.
pub fn from_chan(e: &ChanError) -> Status {
    match e {
        ChanError::InvalidBars(v) => {
            let mut listed: Vec<FieldViolation> = v
                .iter()
                .take(MAX_VIOLATIONS)
                .map(|x| FieldViolation::new(violation_field(x), violation_description(x)))
                .collect();
            if v.len() > MAX_VIOLATIONS {
                let t = truncated(v.len() - MAX_VIOLATIONS);
                listed.push(FieldViolation::new(t.field, t.description));
            }
            bad_request(e.to_string(), listed)
        }
        ChanError::Config { key, message } => bad_request(
            e.to_string(),
            vec![FieldViolation::new(
                format!("config.{key}"),
                message.clone(),
            )],
        ),
        ChanError::State(m) => Status::failed_precondition(m.clone()),
    }
}

/// Columns of different lengths: one violation per column that differs from `time`.
pub fn column_lengths(c: &ColumnLengths) -> Status {
    let (message, v) = column_violations(c, "bars");
    bad_request(
        message,
        v.into_iter()
            .map(|(field, description)| FieldViolation::new(field, description))
            .collect(),
    )
}

/// [`column_lengths`] of the columns of message field `field` (`base` in `Replica.CatchUp`),
/// in-band: the fields are `<field>.<column>`.
pub fn column_lengths_error(c: &ColumnLengths, field: &str) -> pb::StreamError {
    let (message, v) = column_violations(c, field);
    pb::StreamError {
        code: Code::InvalidArgument as i32,
        message,
        field_violations: v
            .into_iter()
            .map(|(field, description)| pb::BadRequestFieldViolation {
                field,
                description,
                reason: String::new(),
                index: -1,
            })
            .collect(),
        expected_seq: 0,
    }
}

/// The message and `(field, description)` violations of columns of different lengths.
fn column_violations(c: &ColumnLengths, field: &str) -> (String, Vec<(String, String)>) {
    let v: Vec<(String, String)> = c
        .mismatched
        .iter()
        .map(|&(col, n)| {
            (
                format!("{field}.{col}"),
                format!("has {n} values, {field}.time has {}", c.time),
            )
        })
        .collect();
    let text: Vec<String> = v.iter().map(|(f, d)| format!("{f} {d}")).collect();
    (
        format!(
            "invalid bars: columns of different lengths: {}",
            text.join("; ")
        ),
        v,
    )
}

/// A request over `server.max_message_bytes`.
pub fn too_large(size: usize, max: u64) -> Status {
    Status::resource_exhausted(format!(
        "request of {size} bytes exceeds server.max_message_bytes ({max})"
    ))
}

/// Checks a request's encoded size against `server.max_message_bytes`.
pub fn check_size(size: usize, max: u64) -> Result<(), Status> {
    if size as u64 > max {
        Err(too_large(size, max))
    } else {
        Ok(())
    }
}

/// The transport's own refusal of a message over its limit (twice `server.max_message_bytes`):
/// tonic reports it as `OUT_OF_RANGE`; the gRPC status for it is `RESOURCE_EXHAUSTED` (what
/// grpcio answers), so it is rewritten. Any other status is returned as it is.
pub fn transport_limit(s: Status) -> Status {
    if s.code() == Code::OutOfRange
        && s.message()
            .starts_with("Error, decoded message length too large")
    {
        Status::resource_exhausted(s.message().to_owned())
    } else {
        s
    }
}

/// The `google.rpc.Code` name of a status code (`INVALID_ARGUMENT`), as logs show it.
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An in-band stream error without field violations.
pub fn stream_error(code: Code, message: impl Into<String>) -> pb::StreamError {
    pb::StreamError {
        code: code as i32,
        message: message.into(),
        field_violations: Vec::new(),
        expected_seq: 0,
    }
}

/// A core error of one stream message, in-band: bad bars with their field violations (rule and
/// bar index kept), a call the session's state does not allow as `FAILED_PRECONDITION`.
pub fn stream_error_from_chan(e: &ChanError, expected_seq: u64) -> pb::StreamError {
    match e {
        ChanError::InvalidBars(v) => pb::StreamError {
            code: Code::InvalidArgument as i32,
            message: e.to_string(),
            field_violations: v
                .iter()
                .take(MAX_VIOLATIONS)
                .map(|x| pb::BadRequestFieldViolation {
                    field: violation_field(x),
                    description: violation_description(x),
                    reason: x.rule.to_string(),
                    index: x.index.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
                })
                .chain((v.len() > MAX_VIOLATIONS).then(|| truncated(v.len() - MAX_VIOLATIONS)))
                .collect(),
            expected_seq: 0,
        },
        ChanError::Config { key, message } => pb::StreamError {
            code: Code::InvalidArgument as i32,
            message: e.to_string(),
            field_violations: vec![pb::BadRequestFieldViolation {
                field: format!("config.{key}"),
                description: message.clone(),
                reason: String::new(),
                index: -1,
            }],
            expected_seq: 0,
        },
        ChanError::State(m) => pb::StreamError {
            code: Code::FailedPrecondition as i32,
            message: m.clone(),
            field_violations: Vec::new(),
            expected_seq,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chan_core::config::ValidationConfig;
    use chan_core::kline::{empty_series, validate_series};
    use chan_core::Bar;

    #[test]
    fn bad_bars_carry_one_violation_per_rule() {
        let bars = [
            Bar::new(0, 1.0, 2.0, 0.5, 1.5, 1.0),
            Bar::new(0, 1.0, 1.2, 0.5, 1.5, -1.0),
        ];
        let v = validate_series(&bars, &ValidationConfig::default()).unwrap_err();
        let e = ChanError::InvalidBars(v);
        let s = from_chan(&e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), e.to_string());
        assert!(s.message().starts_with("invalid bars: bar 1: time"));
        let d = s.get_details_bad_request().unwrap();
        let got: Vec<(&str, &str)> = d
            .field_violations
            .iter()
            .map(|f| (f.field.as_str(), f.description.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "bars[1].time",
                    "time_duplicate: bar 1: time 1970-01-01T00:00:00Z duplicates the previous \
                     bar's time"
                ),
                (
                    "bars[1].volume",
                    "non_negative_volume: bar 1: volume -1 must be >= 0"
                ),
                (
                    "bars[1].high",
                    "high_range: bar 1: high 1.2 is below max(open, close) 1.5"
                ),
            ]
        );
        let s = from_chan(&ChanError::InvalidBars(vec![empty_series()]));
        let d = s.get_details_bad_request().unwrap();
        assert_eq!(d.field_violations[0].field, "bars");
        assert_eq!(
            d.field_violations[0].description,
            "non_empty: the series is empty: at least one bar is required"
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = ChanError::Config {
            key: "macd.fast_period".into(),
            message: "must be >= 1, got 0".into(),
        };
        let s = from_chan(&e);
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = s.get_details_bad_request().unwrap();
        assert_eq!(d.field_violations[0].field, "config.macd.fast_period");
        assert_eq!(d.field_violations[0].description, "must be >= 1, got 0");
    }

    #[test]
    fn sizes_and_names() {
        assert!(check_size(1024, 1024).is_ok());
        let s = check_size(1025, 1024).unwrap_err();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "request of 1025 bytes exceeds server.max_message_bytes (1024)"
        );
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn violations_beyond_twenty_are_summed_up() {
        let bars: Vec<Bar> = (0..25)
            .map(|i| Bar::new(i * 60, 1.0, 0.5, 1.0, 1.0, 1.0))
            .collect();
        let v = validate_series(&bars, &ValidationConfig::default()).unwrap_err();
        let n = v.len();
        assert!(n > MAX_VIOLATIONS);
        let e = ChanError::InvalidBars(v);
        let d = from_chan(&e).get_details_bad_request().unwrap();
        assert_eq!(d.field_violations.len(), MAX_VIOLATIONS + 1);
        let last = &d.field_violations[MAX_VIOLATIONS];
        assert_eq!(last.field, "bars");
        assert_eq!(
            last.description,
            format!(
                "truncated: {} more violations not listed",
                n - MAX_VIOLATIONS
            )
        );
        let s = stream_error_from_chan(&e, 0);
        assert_eq!(s.field_violations.len(), MAX_VIOLATIONS + 1);
        let t = &s.field_violations[MAX_VIOLATIONS];
        assert_eq!((t.reason.as_str(), t.index), ("truncated", -1));
    }
}
