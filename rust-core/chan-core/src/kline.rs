//! K-lines (K线): raw bars, their validation and repair (spec §1), and inclusion handling
//! (包含处理, spec §3) that folds raw bars into merged bars.

use serde::Serialize;

use crate::config::ValidationConfig;
use crate::error::Violation;
use crate::timestamp::format_ms;

/// A raw bar (K线): one OHLCV period; `time` is epoch milliseconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// Builds a bar from its six fields (no checks: see [`check_bar`]).
    pub fn new(time: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) -> Self {
        Self {
            time,
            open,
            high,
            low,
            close,
            volume,
        }
    }
}

/// A direction: up (向上) or down (向下).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// Shown as its name in the document (`as_str`); width and alignment apply.
impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Direction {
    /// The other direction.
    #[inline]
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
        }
    }

    /// `"up"` or `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// A high/low repair made under `validation.repair: true` (reported as a warning).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Repair {
    pub index: usize,
    pub old_high: f64,
    pub old_low: f64,
    pub new_high: f64,
    pub new_low: f64,
}

/// Rule names of spec §1, stable across both engines.
pub mod rule {
    pub const NON_EMPTY: &str = "non_empty";
    pub const FINITE: &str = "finite";
    pub const POSITIVE_PRICE: &str = "positive_price";
    pub const NON_NEGATIVE_VOLUME: &str = "non_negative_volume";
    pub const HIGH_RANGE: &str = "high_range";
    pub const LOW_RANGE: &str = "low_range";
    pub const TIME_ORDER: &str = "time_order";
    pub const TIME_DUPLICATE: &str = "time_duplicate";
}

/// The violation for an empty series.
pub fn empty_series() -> Violation {
    Violation {
        index: None,
        field: "bars",
        rule: rule::NON_EMPTY,
        message: "the series is empty: at least one bar is required".into(),
    }
}

/// Whether a bar passes every rule of spec §1 (the fast path of [`check_bar`]).
// Always inlined: it runs for every bar, in the engine's loop.
#[allow(clippy::inline_always)]
#[inline(always)]
pub fn bar_ok(bar: &Bar, prev_time: Option<i64>, cfg: &ValidationConfig) -> bool {
    let Bar {
        open: o,
        high: h,
        low: l,
        close: c,
        volume: v,
        ..
    } = *bar;
    o.is_finite()
        && h.is_finite()
        && l.is_finite()
        && c.is_finite()
        && v.is_finite()
        && (cfg.allow_non_positive_prices || (o > 0.0 && h > 0.0 && l > 0.0 && c > 0.0))
        && v >= 0.0
        && l <= o.min(c)
        && h >= o.max(c)
        && prev_time.is_none_or(|t| bar.time > t)
}

/// Checks one bar against spec §1 given the previous bar's time, appending what it breaks to
/// `out`. Returns the repaired bar when `repair` is on and only the high/low rule was broken.
#[inline]
pub fn check_bar(
    index: usize,
    bar: &Bar,
    prev_time: Option<i64>,
    cfg: &ValidationConfig,
    out: &mut Vec<Violation>,
) -> Option<(Bar, Repair)> {
    if bar_ok(bar, prev_time, cfg) {
        return None;
    }
    check_bar_slow(index, bar, prev_time, cfg, out)
}

/// The rules one by one, for a bar that failed [`bar_ok`].
#[cold]
// `cfg` by reference as in `check_bar`, whose slow path this is.
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn check_bar_slow(
    index: usize,
    bar: &Bar,
    prev_time: Option<i64>,
    cfg: &ValidationConfig,
    out: &mut Vec<Violation>,
) -> Option<(Bar, Repair)> {
    let mut push = |field: &'static str, rule: &'static str, message: String| {
        out.push(Violation {
            index: Some(index),
            field,
            rule,
            message: format!("bar {index}: {message}"),
        });
    };
    if let Some(t) = prev_time {
        if bar.time == t {
            push(
                "time",
                rule::TIME_DUPLICATE,
                format!(
                    "time {} duplicates the previous bar's time",
                    format_ms(bar.time)
                ),
            );
        } else if bar.time < t {
            push(
                "time",
                rule::TIME_ORDER,
                format!(
                    "time {} is not after the previous bar's time {}",
                    format_ms(bar.time),
                    format_ms(t)
                ),
            );
        }
    }
    let prices = [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
    ];
    let mut all_finite = true;
    for (field, x) in prices {
        if !x.is_finite() {
            all_finite = false;
            push(
                field,
                rule::FINITE,
                format!("{field} is {}, not a finite number", fmt_num(x)),
            );
        } else if !cfg.allow_non_positive_prices && x <= 0.0 {
            push(
                field,
                rule::POSITIVE_PRICE,
                format!("{field} {} must be > 0", fmt_num(x)),
            );
        }
    }
    if !bar.volume.is_finite() {
        push(
            "volume",
            rule::FINITE,
            format!("volume is {}, not a finite number", fmt_num(bar.volume)),
        );
    } else if bar.volume < 0.0 {
        push(
            "volume",
            rule::NON_NEGATIVE_VOLUME,
            format!("volume {} must be >= 0", fmt_num(bar.volume)),
        );
    }
    if !all_finite {
        return None;
    }
    let (o, h, l, c) = (bar.open, bar.high, bar.low, bar.close);
    let high_bad = h < o.max(c);
    let low_bad = l > o.min(c);
    if !(high_bad || low_bad) {
        return None;
    }
    if cfg.repair {
        let new_high = o.max(h).max(l).max(c);
        let new_low = o.min(h).min(l).min(c);
        let repaired = Bar {
            high: new_high,
            low: new_low,
            ..*bar
        };
        return Some((
            repaired,
            Repair {
                index,
                old_high: h,
                old_low: l,
                new_high,
                new_low,
            },
        ));
    }
    if high_bad {
        push(
            "high",
            rule::HIGH_RANGE,
            format!(
                "high {} is below max(open, close) {}",
                fmt_num(h),
                fmt_num(o.max(c))
            ),
        );
    }
    if low_bad {
        push(
            "low",
            rule::LOW_RANGE,
            format!(
                "low {} is above min(open, close) {}",
                fmt_num(l),
                fmt_num(o.min(c))
            ),
        );
    }
    None
}

/// Formats a number for messages: the shortest decimal that reads back to the same value, never
/// in exponent form (`10`, `0.1`, `0.0000001`, `NaN`, `inf`, `-inf`). The Python engine mirrors it.
pub fn fmt_num(x: f64) -> String {
    format!("{x}")
}

/// A valid series: the repairs made (empty unless `repair` is on) and, only when a repair
/// happened, the repaired copy of the bars.
pub type Validated = (Vec<Repair>, Option<Vec<Bar>>);

/// Validates a whole series (spec §1), naming every violation.
pub fn validate_series(bars: &[Bar], cfg: &ValidationConfig) -> Result<Validated, Vec<Violation>> {
    if bars.is_empty() {
        return Err(vec![empty_series()]);
    }
    let mut violations = Vec::new();
    let mut repairs = Vec::new();
    let mut fixed: Option<Vec<Bar>> = None;
    let mut prev = None;
    for (i, b) in bars.iter().enumerate() {
        if let Some((nb, r)) = check_bar(i, b, prev, cfg, &mut violations) {
            fixed.get_or_insert_with(|| bars.to_vec())[i] = nb;
            repairs.push(r);
        }
        prev = Some(b.time);
    }
    if violations.is_empty() {
        Ok((repairs, fixed))
    } else {
        Err(violations)
    }
}

/// A merged bar (合并K线): consecutive raw bars folded by inclusion handling. Its raw bars run
/// from the one after the previous merged bar's `last` (0 for the first) to its own `last`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergedBar {
    pub high: f64,
    pub low: f64,
    /// Index of the last raw bar in it.
    pub last: u32,
    /// The last raw bar whose high equals `high`.
    pub high_bar: u32,
    /// The last raw bar whose low equals `low`.
    pub low_bar: u32,
    /// Up or down from the previous merged bar; fixed at creation.
    pub dir: Direction,
}

/// The merged bars still needed, addressed by their absolute index. Only the pen builder reads
/// old merged bars, and only from the last pen's end on (or the oldest fractal kept before the
/// first pen), so older ones are dropped: the window stays small however long the series.
#[derive(Debug, Clone, Default)]
pub struct MergedBars {
    base: usize,
    bars: Vec<MergedBar>,
}

impl MergedBar {
    /// A placeholder value (no raw bar).
    pub const EMPTY: MergedBar = MergedBar {
        high: f64::NAN,
        low: f64::NAN,
        last: u32::MAX,
        high_bar: u32::MAX,
        low_bar: u32::MAX,
        dir: Direction::Up,
    };
}

impl MergedBars {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many merged bars there have been (dropped ones included).
    #[inline]
    pub fn len(&self) -> usize {
        self.base + self.bars.len()
    }

    /// No merged bar yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last merged bar (still growing).
    #[inline]
    pub fn last(&self) -> Option<&MergedBar> {
        self.bars.last()
    }

    #[inline]
    fn last_mut(&mut self) -> Option<&mut MergedBar> {
        self.bars.last_mut()
    }

    #[inline]
    fn push(&mut self, b: MergedBar) {
        self.bars.push(b);
    }

    /// Merged bar `i`, if it is still kept.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&MergedBar> {
        i.checked_sub(self.base).and_then(|j| self.bars.get(j))
    }

    /// Merged bars `a..b` (all kept).
    #[inline]
    pub fn range(&self, a: usize, b: usize) -> &[MergedBar] {
        &self.bars[a - self.base..b - self.base]
    }

    /// Keeps the first `len` merged bars (an undo; `len` is never below the kept window).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.bars.truncate(len - self.base);
    }

    /// Replaces the last merged bar (an undo).
    pub(crate) fn set_last(&mut self, b: MergedBar) {
        if let Some(slot) = self.last_mut() {
            *slot = b;
        }
    }

    /// Drops the bars before `keep_from` once enough of them piled up (amortized O(1) a bar).
    #[inline]
    pub(crate) fn forget_before(&mut self, keep_from: usize) {
        let dead = keep_from.saturating_sub(self.base);
        // Small enough that the tests reach it; each drain moves no more bars than it drops.
        if dead >= 64 && dead >= self.bars.len() / 2 {
            self.bars.drain(..dead);
            self.base += dead;
        }
    }
}

impl std::ops::Index<usize> for MergedBars {
    type Output = MergedBar;

    #[inline]
    fn index(&self, i: usize) -> &MergedBar {
        &self.bars[i - self.base]
    }
}

/// Folds one raw bar (index `i`) into the merged list (spec §3). Returns true when the bar
/// started a new merged bar.
#[inline]
pub fn fold_bar(merged: &mut MergedBars, i: u32, high: f64, low: f64) -> bool {
    let Some(c) = merged.last_mut() else {
        merged.push(MergedBar {
            high,
            low,
            last: i,
            high_bar: i,
            low_bar: i,
            dir: Direction::Up,
        });
        return true;
    };
    let inclusion = (c.high >= high && c.low <= low) || (high >= c.high && low <= c.low);
    if !inclusion {
        let dir = if high > c.high {
            Direction::Up
        } else {
            Direction::Down
        };
        merged.push(MergedBar {
            high,
            low,
            last: i,
            high_bar: i,
            low_bar: i,
            dir,
        });
        return true;
    }
    c.last = i;
    let flat_at_edge = high == low
        && match c.dir {
            Direction::Up => high == c.high,
            Direction::Down => low == c.low,
        };
    if !flat_at_edge {
        match c.dir {
            Direction::Up => {
                c.high = c.high.max(high);
                c.low = c.low.max(low);
            }
            Direction::Down => {
                c.high = c.high.min(high);
                c.low = c.low.min(low);
            }
        }
    }
    // The last raw bar at the merged extreme is the one that carries it.
    if high == c.high {
        c.high_bar = i;
    }
    if low == c.low {
        c.low_bar = i;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(t: i64, o: f64, h: f64, l: f64, c: f64) -> Bar {
        Bar::new(t, o, h, l, c, 1.0)
    }

    #[test]
    fn every_rule_names_bar_field_and_rule() {
        let cfg = ValidationConfig::default();
        let bars = [
            b(0, 1.0, 2.0, 0.5, 1.5),
            b(0, 1.0, 2.0, 0.5, 1.5),       // duplicate time
            b(-5, 1.0, 2.0, 0.5, 1.5),      // time order
            b(10, f64::NAN, 2.0, 0.5, 1.5), // NaN open
            b(11, 1.0, f64::INFINITY, 0.5, 1.5),
            b(12, -1.0, 2.0, 0.5, 1.5), // negative open, also low above min
            b(13, 1.0, 1.2, 0.5, 1.5),  // high below close
            b(14, 1.0, 2.0, 1.1, 1.5),  // low above open
            Bar::new(15, 1.0, 2.0, 0.5, 1.5, -3.0),
            b(16, 1.0, 0.5, 2.0, 1.5), // high < low
        ];
        let v = validate_series(&bars, &cfg).unwrap_err();
        let got: Vec<(usize, &str, &str)> = v
            .iter()
            .map(|x| (x.index.unwrap(), x.field, x.rule))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "time", rule::TIME_DUPLICATE),
                (2, "time", rule::TIME_ORDER),
                (3, "open", rule::FINITE),
                (4, "high", rule::FINITE),
                (5, "open", rule::POSITIVE_PRICE),
                (5, "low", rule::LOW_RANGE),
                (6, "high", rule::HIGH_RANGE),
                (7, "low", rule::LOW_RANGE),
                (8, "volume", rule::NON_NEGATIVE_VOLUME),
                (9, "high", rule::HIGH_RANGE),
                (9, "low", rule::LOW_RANGE),
            ]
        );
        assert_eq!(
            v[6].message,
            "bar 6: high 1.2 is below max(open, close) 1.5"
        );
        assert_eq!(
            validate_series(&[], &cfg).unwrap_err(),
            vec![empty_series()]
        );
    }

    #[test]
    fn repair_fixes_only_high_low() {
        let cfg = ValidationConfig {
            repair: true,
            ..Default::default()
        };
        let bars = [b(0, 1.0, 0.5, 2.0, 1.5), b(1, 1.0, 2.0, 0.5, 1.5)];
        let (rep, fixed) = validate_series(&bars, &cfg).unwrap();
        assert_eq!(rep.len(), 1);
        assert_eq!((rep[0].new_high, rep[0].new_low), (2.0, 0.5));
        assert_eq!(fixed.unwrap()[0], b(0, 1.0, 2.0, 0.5, 1.5));
        let bad = [b(0, f64::NAN, 0.5, 2.0, 1.5)];
        assert_eq!(
            validate_series(&bad, &cfg).unwrap_err()[0].rule,
            rule::FINITE
        );
    }

    #[test]
    fn non_positive_prices_can_be_allowed() {
        let cfg = ValidationConfig {
            allow_non_positive_prices: true,
            ..Default::default()
        };
        assert!(validate_series(&[b(0, -1.0, 0.0, -2.0, -1.5)], &cfg).is_ok());
    }

    #[test]
    fn inclusion_up_down_and_flat() {
        let mut m = MergedBars::new();
        assert!(fold_bar(&mut m, 0, 10.0, 5.0));
        assert!(fold_bar(&mut m, 1, 12.0, 6.0)); // up
        assert!(!fold_bar(&mut m, 2, 11.0, 7.0)); // inside, up merge: high max, low max
        assert_eq!(
            (m[1].high, m[1].low, m[1].high_bar, m[1].low_bar),
            (12.0, 7.0, 1, 2)
        );
        assert!(!fold_bar(&mut m, 3, 12.0, 12.0)); // flat at the up bar's high: prices kept
        assert_eq!(
            (m[1].high, m[1].low, m[1].high_bar, m[1].low_bar),
            (12.0, 7.0, 3, 2)
        );
        assert!(fold_bar(&mut m, 4, 8.0, 4.0)); // down
        assert!(!fold_bar(&mut m, 5, 9.0, 3.0)); // outside, down merge: min, min
        assert_eq!((m[2].high, m[2].low, m[2].low_bar), (8.0, 3.0, 5));
        assert_eq!(m[2].dir, Direction::Down);
        assert!(!fold_bar(&mut m, 6, 3.0, 3.0)); // flat at the down bar's low: prices kept
        assert_eq!(
            (m[2].high, m[2].low, m[2].low_bar, m[2].last),
            (8.0, 3.0, 6, 6)
        );
    }
}
