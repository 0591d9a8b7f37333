//! Times: integer milliseconds since the Unix epoch (UTC) inside, ISO-8601 in text.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Formats epoch milliseconds as ISO-8601 UTC: `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` only when the
/// milliseconds are not zero. Both engines use exactly this form.
pub fn format_ms(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) if ms.rem_euclid(1000) == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Out of chrono's range (±262,000 years): keep the number rather than fail.
        None => ms.to_string(),
    }
}

/// Parses a time given as epoch milliseconds, an ISO date (00:00 UTC), or an ISO date-time
/// (`T` or space separated, optional fraction, `Z`, an offset, or nothing meaning UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !s[1..].contains('-')
    {
        return s
            .parse::<i64>()
            .map_err(|e| format!("bad epoch milliseconds {s:?}: {e}"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(format!(
        "unparsable time {s:?}: expected epoch milliseconds, YYYY-MM-DD or an ISO-8601 date-time"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates_and_datetimes() {
        let d = parse_time("1990-12-19").unwrap();
        assert_eq!(format_ms(d), "1990-12-19T00:00:00Z");
        let t = parse_time("2015-01-05T01:31:00Z").unwrap();
        assert_eq!(format_ms(t), "2015-01-05T01:31:00Z");
        assert_eq!(parse_time("2015-01-05 01:31:00").unwrap(), t);
        assert_eq!(parse_time("2015-01-05T09:31:00+08:00").unwrap(), t);
        assert_eq!(parse_time(&t.to_string()).unwrap(), t);
        assert_eq!(format_ms(t + 5), "2015-01-05T01:31:00.005Z");
        assert_eq!(format_ms(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2015-13-01").is_err());
        assert!(parse_time("").is_err());
    }
}
