//! The time rules of `docs/DATA.md` ("Times: never guessed"): how one written time becomes
//! epoch milliseconds UTC, and how a column of numbers is given one reading.
//!
//! Text forms are parsed by a strict byte grammar (the loader's hot path: a whole file's times
//! go through it) and the calendar by chrono. Numbers are read as a whole
//! column: the reading of its first value (a `YYYYMMDD` date or an epoch unit, decided by
//! magnitude) must fit every value. Zones come from jiff.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// 1971-01-01T00:00:00Z: the first instant an undeclared number may name.
pub const AUTO_START_MS: i64 = 31_536_000_000;
/// 2101-01-01T00:00:00Z: the end (exclusive) of the years an undeclared number may name.
pub const AUTO_END_MS: i64 = 4_133_980_800_000;
/// 0001-01-01T00:00:00Z: the engines' first instant (a unit given, or a text time).
pub const ENGINE_START_MS: i64 = -62_135_596_800_000;
/// 10000-01-01T00:00:00Z: the end (exclusive) of the engines' years.
pub const ENGINE_END_MS: i64 = 253_402_300_800_000;

// The magnitude rule gives each number at most one unit: the accepted span of years is less
// than the factor 1000 between neighbouring units, so no value fits two of them.
const _: () = assert!(AUTO_END_MS / AUTO_START_MS < 1000);
// Nor is an 8-digit date in 1971..2100 (at most 21001231) ever epoch seconds in that span.
const _: () = assert!(21_001_231 < AUTO_START_MS / 1000);

/// How a number in the time column is read (`--time-unit`, or found from the first value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeUnit {
    /// Epoch seconds.
    #[value(name = "s")]
    Seconds,
    /// Epoch milliseconds.
    #[value(name = "ms")]
    Millis,
    /// Epoch microseconds.
    #[value(name = "us")]
    Micros,
    /// Epoch nanoseconds.
    #[value(name = "ns")]
    Nanos,
    /// `YYYYMMDD`: a day (00:00 in `--tz`).
    #[value(name = "date")]
    Date,
}

impl TimeUnit {
    /// The epoch units, smallest magnitude first.
    pub const EPOCH: [TimeUnit; 4] = [
        TimeUnit::Seconds,
        TimeUnit::Millis,
        TimeUnit::Micros,
        TimeUnit::Nanos,
    ];

    /// The name `--time-unit` takes.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
            TimeUnit::Date => "date",
        }
    }

    /// What the notice and the errors call it.
    pub fn words(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "epoch seconds",
            TimeUnit::Millis => "epoch milliseconds",
            TimeUnit::Micros => "epoch microseconds",
            TimeUnit::Nanos => "epoch nanoseconds",
            TimeUnit::Date => "YYYYMMDD dates",
        }
    }

    /// `v` read in this unit: an instant (epoch ms UTC) for the epoch units, a wall time for
    /// dates; `None` when it names no time (a date that does not exist, or out of i64).
    pub fn read(self, v: i64) -> Option<Moment> {
        let ms = match self {
            TimeUnit::Seconds => v.checked_mul(1000)?,
            TimeUnit::Millis => v,
            // Sub-millisecond parts are dropped (floor), as the engines keep milliseconds.
            TimeUnit::Micros => v.div_euclid(1000),
            TimeUnit::Nanos => v.div_euclid(1_000_000),
            TimeUnit::Date => return yyyymmdd(v).map(Moment::Wall),
        };
        Some(Moment::Instant(ms))
    }

    /// The one reading under which `v` names a time in 1971..2100 (the magnitude rule), if any.
    pub fn fitting(v: i64) -> Option<TimeUnit> {
        if let Some(Moment::Wall(ms)) = TimeUnit::Date.read(v) {
            if (AUTO_START_MS..AUTO_END_MS).contains(&ms) {
                return Some(TimeUnit::Date);
            }
        }
        TimeUnit::EPOCH.into_iter().find(|u| {
            matches!(u.read(v), Some(Moment::Instant(ms)) if (AUTO_START_MS..AUTO_END_MS).contains(&ms))
        })
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// A time as written: an instant, or a wall time still to be placed in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Epoch milliseconds UTC (an epoch number, or text with an offset).
    Instant(i64),
    /// Wall-clock milliseconds as if the zone were UTC (a date, or text without an offset).
    Wall(i64),
}

/// An 8-digit `YYYYMMDD` integer as a wall time at 00:00; `None` unless a real date.
pub fn yyyymmdd(v: i64) -> Option<i64> {
    if !(10_000_000..100_000_000).contains(&v) {
        return None;
    }
    let y = i32::try_from(v / 10_000).ok()?;
    let m = u32::try_from(v / 100 % 100).ok()?;
    let d = u32::try_from(v % 100).ok()?;
    NaiveDate::from_ymd_opt(y, m, d).map(|d| days_from_epoch(d) * DAY_MS)
}

/// Days since 1970-01-01 of a date.
fn days_from_epoch(d: NaiveDate) -> i64 {
    // 719,163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
    i64::from(d.num_days_from_ce()) - 719_163
}

/// A number as the time column holds it: an integer, or a float with no fractional part.
/// `None` for anything else (text, a fraction, not finite).
pub fn integral(s: &[u8]) -> Option<i64> {
    let digits = match s.first() {
        Some(b'-' | b'+') => &s[1..],
        _ => s,
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        // Up to 18 digits always fit; longer ones go through the checked parse.
        return std::str::from_utf8(s).ok()?.parse::<i64>().ok();
    }
    // A float form ("1718000000.0", "1.718e9") is a number only when it has no fraction.
    let starts_like_number = digits
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.');
    if !starts_like_number {
        return None;
    }
    let x: f64 = fast_float2::parse(s).ok()?;
    // Exactly integral and inside i64 (2^63 is exactly representable; the range is half-open).
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 2f64.powi(63) {
        Some(x as i64)
    } else {
        None
    }
}

/// Whether a time cell is one that no reading of a column takes, text or number: empty, or
/// written as a number but no integer of 64 bits (a fraction, `1e30`, 20 digits). It names its
/// own row, whatever the column is (docs/DATA.md, "Times").
pub fn unreadable_number(s: &[u8]) -> bool {
    if s.is_empty() {
        return true;
    }
    let digits = match s.first() {
        Some(b'-' | b'+') => &s[1..],
        _ => s,
    };
    let starts_like_number = digits
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.');
    starts_like_number && fast_float2::parse::<f64, _>(s).is_ok() && integral(s).is_none()
}

/// Parses a text time (docs/DATA.md, "Times"): `YYYY-MM-DD` or `YYYY/MM/DD` (month and day of
/// one or two digits), optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]`,
/// optionally followed by `Z` or an offset `±HH:MM`, `±HHMM` or `±HH`. `None` when it does not
/// fit this grammar or names no real date and time.
pub fn parse_text(s: &[u8]) -> Option<Moment> {
    parse_text_cached(s, &mut DayCache::default())
}

/// The last date [`parse_text_cached`] read, as written, and its day: the rows of a file
/// mostly share their date with the row before (an intraday series), so the calendar is
/// consulted once a day.
#[derive(Debug, Default)]
pub struct DayCache {
    written: [u8; 10],
    len: usize,
    day_ms: i64,
}

/// [`parse_text`], reusing the date of the time before when it is written the same way.
pub fn parse_text_cached(s: &[u8], cache: &mut DayCache) -> Option<Moment> {
    let mut p = Cursor { s, at: 0 };
    let same_day = cache.len > 0
        && s.get(..cache.len) == Some(&cache.written[..cache.len])
        // "2025/6/1" is not the start of "2025/6/12".
        && !s.get(cache.len).is_some_and(u8::is_ascii_digit);
    let mut ms = if same_day {
        p.at = cache.len;
        cache.day_ms
    } else {
        let year = p.digits(4, 4)?;
        let sep = p.one_of(b"-/")?;
        let month = p.digits(1, 2)?;
        p.expect(sep)?;
        let day = p.digits(1, 2)?;
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        let day_ms = days_from_epoch(date) * DAY_MS;
        // A date is 8 to 10 bytes: it always fits.
        cache.written[..p.at].copy_from_slice(&s[..p.at]);
        cache.len = p.at;
        cache.day_ms = day_ms;
        day_ms
    };
    debug_assert!(
        !same_day || parse_text(&s[..cache.len]) == Some(Moment::Wall(ms)),
        "a cached day is the day its text reads"
    );
    if p.done() {
        return Some(Moment::Wall(ms));
    }
    p.one_of(b"T ")?;
    let hour = p.digits(1, 2)?;
    p.expect(b':')?;
    let minute = p.digits(2, 2)?;
    let mut second = 0;
    let mut milli = 0;
    if p.peek() == Some(b':') {
        p.at += 1;
        second = p.digits(2, 2)?;
        if p.peek() == Some(b'.') {
            p.at += 1;
            let start = p.at;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.at += 1;
            }
            let frac = &s[start..p.at];
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            // The first three digits are the milliseconds; finer digits are dropped (floor).
            for k in 0..3 {
                milli = milli * 10 + frac.get(k).map_or(0, |b| u32::from(b - b'0'));
            }
        }
    }
    let time = NaiveTime::from_hms_milli_opt(hour, minute, second, milli)?;
    ms += i64::from(time.num_seconds_from_midnight()) * 1000 + i64::from(milli);
    if p.done() {
        return Some(Moment::Wall(ms));
    }
    let offset_minutes = match p.one_of(b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let h = p.digits(2, 2)?;
            let m = if p.done() {
                0
            } else {
                if p.peek() == Some(b':') {
                    p.at += 1;
                }
                p.digits(2, 2)?
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = i64::from(h * 60 + m);
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
    };
    if !p.done() {
        return None;
    }
    Some(Moment::Instant(ms - offset_minutes * 60_000))
}

/// A reader over the bytes of one time.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at == self.s.len()
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    fn one_of(&mut self, set: &[u8]) -> Option<u8> {
        let b = self.peek()?;
        set.contains(&b).then(|| {
            self.at += 1;
            b
        })
    }

    /// Between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut n = 0u32;
        let start = self.at;
        while self.at - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    n = n * 10 + u32::from(b - b'0');
                    self.at += 1;
                }
                _ => break,
            }
        }
        (self.at - start >= min).then_some(n)
    }
}

/// Why a wall time has no single instant in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneGap {
    /// Skipped by a clock change (spring forward).
    Nonexistent,
    /// Happens twice (fall back).
    Ambiguous,
}

impl fmt::Display for ZoneGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZoneGap::Nonexistent => "does not exist",
            ZoneGap::Ambiguous => "happens twice",
        })
    }
}

/// A time zone named by `--tz`: an IANA name (the system's zone database, else the one
/// compiled in) or `UTC`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneName {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl ZoneName {
    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    pub fn is_utc(&self) -> bool {
        self.tz == jiff::tz::TimeZone::UTC
    }

    /// The offset from UTC, in seconds, at an instant (epoch ms).
    pub fn offset_at(&self, ms: i64) -> i32 {
        jiff::Timestamp::from_millisecond(ms).map_or(0, |t| self.tz.to_offset(t).seconds())
    }

    /// The offset at a wall time (ms as if UTC): one, or why there is none.
    fn offset_of_wall(&self, wall: i64) -> Result<i32, ZoneGap> {
        let at = jiff::Timestamp::from_millisecond(wall).map_err(|_| ZoneGap::Nonexistent)?;
        let civil = jiff::tz::TimeZone::UTC.to_datetime(at);
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            jiff::tz::AmbiguousOffset::Unambiguous { offset } => Ok(offset.seconds()),
            jiff::tz::AmbiguousOffset::Gap { .. } => Err(ZoneGap::Nonexistent),
            jiff::tz::AmbiguousOffset::Fold { .. } => Err(ZoneGap::Ambiguous),
        }
    }
}

impl std::str::FromStr for ZoneName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("UTC") {
            // The default: no zone database to open.
            return Ok(Self::utc());
        }
        let tz = jiff::tz::TimeZone::get(s).map_err(|_| {
            format!("{s:?} is not an IANA time zone (e.g. UTC, Asia/Shanghai, America/New_York)")
        })?;
        Ok(Self {
            name: s.to_owned(),
            tz,
        })
    }
}

impl fmt::Display for ZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Places wall times in a zone. UTC is the identity; other zones remember the last offset and
/// the span of wall time it holds for, so a file's consecutive times cost a comparison each.
pub struct Zone {
    name: ZoneName,
    utc: bool,
    /// Wall-time span `[start, end)` (ms) over which `offset_ms` is known to hold, and it.
    cached: Option<(i64, i64, i64)>,
}

impl Zone {
    pub fn new(name: ZoneName) -> Self {
        Self {
            utc: name.is_utc(),
            name,
            cached: None,
        }
    }

    pub fn name(&self) -> &ZoneName {
        &self.name
    }

    /// The instant of a moment: instants as they are, wall times in this zone.
    pub fn instant(&mut self, m: Moment) -> Result<i64, ZoneGap> {
        match m {
            Moment::Instant(ms) => Ok(ms),
            Moment::Wall(ms) if self.utc => Ok(ms),
            Moment::Wall(ms) => self.place(ms),
        }
    }

    fn place(&mut self, wall: i64) -> Result<i64, ZoneGap> {
        if let Some((start, end, off)) = self.cached {
            if (start..end).contains(&wall) {
                return Ok(wall - off);
            }
        }
        let off = i64::from(self.name.offset_of_wall(wall)?) * 1000;
        // The offset holds for the whole wall-clock day when it is the same at both ends of the
        // day (a clock change moves it by an hour or so, never back to the same value within a
        // day); remember it for the day's other times.
        let day = wall.div_euclid(DAY_MS) * DAY_MS;
        let same_all_day = [day, day + DAY_MS - 1].iter().all(|&w| {
            self.name
                .offset_of_wall(w)
                .is_ok_and(|o| i64::from(o) * 1000 == off)
        });
        if same_all_day {
            self.cached = Some((day, day + DAY_MS, off));
        }
        Ok(wall - off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn text_forms() {
        let day = ms("2025-06-09T00:00:00Z");
        assert_eq!(parse_text(b"2025-06-09"), Some(Moment::Wall(day)));
        assert_eq!(parse_text(b"2025/06/09"), Some(Moment::Wall(day)));
        assert_eq!(parse_text(b"2025/6/9"), Some(Moment::Wall(day)));
        let t = ms("2025-06-09T09:31:00Z");
        assert_eq!(parse_text(b"2025-06-09T09:31"), Some(Moment::Wall(t)));
        assert_eq!(parse_text(b"2025-06-09 09:31:00"), Some(Moment::Wall(t)));
        assert_eq!(
            parse_text(b"2025-06-09T09:31:00.1239"),
            Some(Moment::Wall(t + 123))
        );
        assert_eq!(
            parse_text(b"2025-06-09T09:31:00Z"),
            Some(Moment::Instant(t))
        );
        let offset = ms("2025-06-09T09:31:00-04:00");
        for s in [
            "2025-06-09T09:31:00-04:00",
            "2025-06-09 09:31:00-0400",
            "2025-06-09T09:31-04",
        ] {
            assert_eq!(
                parse_text(s.as_bytes()),
                Some(Moment::Instant(offset)),
                "{s}"
            );
        }
        assert_eq!(
            parse_text(b"2025-06-09T09:31:00+08:00"),
            Some(Moment::Instant(ms("2025-06-09T01:31:00Z")))
        );
    }

    #[test]
    fn the_day_cache_reads_what_the_text_says() {
        let mut cache = DayCache::default();
        let rows = [
            "2025/6/1 09:31",
            "2025/6/1 09:32",
            "2025/6/12 09:31",
            "2025/6/12",
            "2025/6/1",
            "2025-06-01T10:00:00+08:00",
            "2025-06-01 x",
        ];
        for r in rows {
            assert_eq!(
                parse_text_cached(r.as_bytes(), &mut cache),
                parse_text(r.as_bytes()),
                "{r}"
            );
        }
    }

    #[test]
    fn text_garbage_is_refused() {
        for s in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-02-30",
            "2025-06-09T",
            "2025-06-09T24:00",
            "2025-06-09 09:31:61",
            "2025-06-09T09:31:00.",
            "2025-06-09T09:31:00+8",
            "2025-06/09",
            "20250609",
            "2025-06-09T09:31:00 UTC",
            "25-06-09",
        ] {
            assert_eq!(parse_text(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn integral_numbers() {
        assert_eq!(integral(b"1718000000"), Some(1_718_000_000));
        assert_eq!(integral(b"-5"), Some(-5));
        assert_eq!(integral(b"1718000000.0"), Some(1_718_000_000));
        assert_eq!(integral(b"1.718e9"), Some(1_718_000_000));
        assert_eq!(integral(b"1718000000.5"), None);
        assert_eq!(integral(b"nan"), None);
        assert_eq!(integral(b"inf"), None);
        assert_eq!(integral(b"2025-06-09"), None);
        assert_eq!(integral(b"99999999999999999999"), None);
    }

    #[test]
    fn dates_and_units() {
        let day = ms("2025-06-09T00:00:00Z");
        assert_eq!(TimeUnit::fitting(20_250_609), Some(TimeUnit::Date));
        assert_eq!(TimeUnit::Date.read(20_250_609), Some(Moment::Wall(day)));
        assert_eq!(TimeUnit::fitting(20_251_332), None);
        assert_eq!(TimeUnit::fitting(19_700_101), None);
        let t = ms("2024-06-10T06:00:00Z");
        for (v, unit) in [
            (1_717_999_200, TimeUnit::Seconds),
            (1_717_999_200_000, TimeUnit::Millis),
            (1_717_999_200_000_000, TimeUnit::Micros),
            (1_717_999_200_000_000_000, TimeUnit::Nanos),
        ] {
            assert_eq!(TimeUnit::fitting(v), Some(unit), "{v}");
            assert_eq!(unit.read(v), Some(Moment::Instant(t)));
        }
        // 1970 and 2101 fit nothing; nor does a negative number.
        assert_eq!(TimeUnit::fitting(1_000_000), None);
        assert_eq!(TimeUnit::fitting(AUTO_END_MS), None);
        assert_eq!(TimeUnit::fitting(AUTO_END_MS - 1), Some(TimeUnit::Millis));
        assert_eq!(TimeUnit::fitting(AUTO_START_MS - 1), None);
        assert_eq!(TimeUnit::fitting(-1_717_999_200), None);
    }

    #[test]
    fn zones_place_wall_times() {
        let mut shanghai = Zone::new("Asia/Shanghai".parse().unwrap());
        let wall = ms("2025-06-09T09:31:00Z");
        assert_eq!(
            shanghai.instant(Moment::Wall(wall)),
            Ok(ms("2025-06-09T01:31:00Z"))
        );
        // The cached day gives the same answer.
        assert_eq!(
            shanghai.instant(Moment::Wall(wall + 60_000)),
            Ok(ms("2025-06-09T01:32:00Z"))
        );
        assert_eq!(shanghai.instant(Moment::Instant(5)), Ok(5));
        let mut ny = Zone::new("America/New_York".parse().unwrap());
        // 2025-03-09: 02:00 → 03:00; 2025-11-02: 01:00–02:00 twice.
        let before = ms("2025-03-09T01:59:00Z");
        assert_eq!(
            ny.instant(Moment::Wall(before)),
            Ok(ms("2025-03-09T06:59:00Z"))
        );
        assert_eq!(
            ny.instant(Moment::Wall(ms("2025-03-09T02:30:00Z"))),
            Err(ZoneGap::Nonexistent)
        );
        assert_eq!(
            ny.instant(Moment::Wall(ms("2025-03-09T03:00:00Z"))),
            Ok(ms("2025-03-09T07:00:00Z"))
        );
        assert_eq!(
            ny.instant(Moment::Wall(ms("2025-11-02T01:30:00Z"))),
            Err(ZoneGap::Ambiguous)
        );
        assert_eq!(
            ny.instant(Moment::Wall(ms("2025-11-02T02:30:00Z"))),
            Ok(ms("2025-11-02T07:30:00Z"))
        );
    }

    /// The slow, obvious reading of the magnitude rule: every unit tried, by real dates.
    fn fitting_by_calendar(v: i64) -> Vec<TimeUnit> {
        let in_range = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .is_some_and(|t| (1971..=2100).contains(&t.year()))
        };
        let mut out: Vec<TimeUnit> = TimeUnit::EPOCH
            .into_iter()
            .filter(|u| match u.read(v) {
                Some(Moment::Instant(ms)) => in_range(ms),
                _ => false,
            })
            .collect();
        if let Some(Moment::Wall(ms)) = TimeUnit::Date.read(v) {
            if in_range(ms) {
                out.insert(0, TimeUnit::Date);
            }
        }
        out
    }

    proptest! {
        /// Every number has at most one reading, the one the calendar gives.
        #[test]
        fn magnitude_rule_gives_one_unit(v in any::<i64>()) {
            let all = fitting_by_calendar(v);
            prop_assert!(all.len() <= 1, "{v}: {all:?}");
            prop_assert_eq!(TimeUnit::fitting(v), all.first().copied());
        }

        /// Any instant of 1971..2100 written in any epoch unit is found in that unit.
        #[test]
        fn every_unit_is_found(ms in AUTO_START_MS..AUTO_END_MS, k in 0usize..4) {
            let unit = TimeUnit::EPOCH[k];
            let v = match unit {
                TimeUnit::Seconds => ms / 1000,
                TimeUnit::Millis => ms,
                TimeUnit::Micros => ms * 1000,
                _ => ms * 1_000_000,
            };
            prop_assert_eq!(TimeUnit::fitting(v), Some(unit));
            let Some(Moment::Instant(back)) = unit.read(v) else { unreachable!() };
            let expected = if unit == TimeUnit::Seconds { ms / 1000 * 1000 } else { ms };
            prop_assert_eq!(back, expected);
        }

        /// The byte grammar agrees with chrono's own parser on generated date-times.
        #[test]
        fn text_agrees_with_chrono(secs in -62_135_596_800i64..253_402_300_799, milli in 0u32..1000, sep in prop::sample::select(vec!['T', ' '])) {
            let t = chrono::DateTime::from_timestamp(secs, milli * 1_000_000).unwrap().naive_utc();
            let text = format!("{}{sep}{}", t.format("%Y-%m-%d"), t.format("%H:%M:%S%.3f"));
            prop_assert_eq!(parse_text(text.as_bytes()), Some(Moment::Wall(t.and_utc().timestamp_millis())));
        }
    }
}
