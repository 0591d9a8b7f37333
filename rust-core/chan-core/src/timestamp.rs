//! Times: integer milliseconds since the Unix epoch (UTC) inside, ISO-8601 in text.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};

/// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the span of four-digit years.
const FOUR_DIGIT_YEARS: std::ops::Range<i64> = -62_135_596_800_000..253_402_300_800_000;

/// Formats epoch milliseconds as ISO-8601 UTC: `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` only when the
/// milliseconds are not zero. Both engines use exactly this form.
///
/// Documents hold one such text per point (tens of thousands for a long series), so the
/// four-digit years are written digit by digit (the calendar from chrono); other years go
/// through chrono's formatter, which the fast path must equal (checked in debug builds).
pub fn format_ms(ms: i64) -> String {
    if !FOUR_DIGIT_YEARS.contains(&ms) {
        return format_ms_chrono(ms);
    }
    let days = ms.div_euclid(86_400_000);
    // rem_euclid is in 0..86_400_000: no sign to lose, nothing to truncate.
    #[allow(clippy::cast_sign_loss)]
    let in_day = ms.rem_euclid(86_400_000) as u32;
    // In range the day number fits i32 and the date exists (years 1..=9999).
    let Some(date) = NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32) else {
        return format_ms_chrono(ms);
    };
    let mut out = String::with_capacity(24);
    let mut put = |v: u32, width: u32, then: char| {
        for k in (0..width).rev() {
            out.push(char::from(b'0' + (v / 10u32.pow(k) % 10) as u8));
        }
        out.push(then);
    };
    put(date.year_ce().1, 4, '-');
    put(date.month(), 2, '-');
    put(date.day(), 2, 'T');
    put(in_day / 3_600_000, 2, ':');
    put(in_day / 60_000 % 60, 2, ':');
    if in_day.is_multiple_of(1000) {
        put(in_day / 1000 % 60, 2, 'Z');
    } else {
        put(in_day / 1000 % 60, 2, '.');
        put(in_day % 1000, 3, 'Z');
    }
    debug_assert_eq!(out, format_ms_chrono(ms), "the fast path is chrono's form");
    out
}

/// [`format_ms`] by chrono's formatter: any year.
fn format_ms_chrono(ms: i64) -> String {
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
    fn the_fast_form_is_chronos_at_the_edges() {
        for ms in [
            FOUR_DIGIT_YEARS.start - 1,
            FOUR_DIGIT_YEARS.start,
            -1,
            0,
            1,
            999,
            86_399_999,
            951_782_400_000, // 2000-02-29
            FOUR_DIGIT_YEARS.end - 1,
            FOUR_DIGIT_YEARS.end,
        ] {
            assert_eq!(format_ms(ms), format_ms_chrono(ms), "{ms}");
        }
        assert_eq!(format_ms(FOUR_DIGIT_YEARS.start), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_ms(FOUR_DIGIT_YEARS.end - 1),
            "9999-12-31T23:59:59.999Z"
        );
    }

    proptest::proptest! {
        /// Any instant of any year: the same text as chrono's formatter.
        #[test]
        fn format_is_chronos(ms in -100_000_000_000_000i64..400_000_000_000_000) {
            proptest::prop_assert_eq!(format_ms(ms), format_ms_chrono(ms));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2015-13-01").is_err());
        assert!(parse_time("").is_err());
    }
}
