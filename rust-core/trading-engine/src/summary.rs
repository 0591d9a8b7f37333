//! A readable summary of an analysis document, for people at a terminal. Times are printed in
//! the series' zone (`--tz`), as dates when every bar is at midnight there (a daily series).

use std::io::Write;

use chan_core::document::{Point, SignalDoc};
use chan_core::Document;
use chrono::{DateTime, Timelike};
use chrono_tz::Tz;

const LAST: usize = 5;

/// How the summary prints a bar's time: in the zone of the series, dates for a daily series.
pub struct Clock<'a> {
    /// Each bar's time, epoch milliseconds UTC.
    times: &'a [i64],
    tz: Tz,
    daily: bool,
}

impl<'a> Clock<'a> {
    pub fn new(times: &'a [i64], tz: Tz) -> Self {
        let daily = !times.is_empty()
            && times.iter().all(|&ms| {
                DateTime::from_timestamp_millis(ms).is_some_and(|t| {
                    let local = t.with_timezone(&tz);
                    local.num_seconds_from_midnight() == 0 && local.nanosecond() == 0
                })
            });
        Self { times, tz, daily }
    }

    /// Bar `index`'s time as printed.
    pub fn time(&self, index: u32) -> String {
        let ms = self.times[index as usize];
        let Some(t) = DateTime::from_timestamp_millis(ms) else {
            return ms.to_string();
        };
        let local = t.with_timezone(&self.tz);
        if self.daily {
            local.format("%Y-%m-%d").to_string()
        } else if self.tz == Tz::UTC {
            chan_core::timestamp::format_ms(ms)
        } else if ms.rem_euclid(1000) == 0 {
            local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
        } else {
            local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
        }
    }

    fn at(&self, p: &Point) -> String {
        format!("{} {}", self.time(p.index), p.price)
    }
}

fn tail<T>(v: &[T]) -> &[T] {
    &v[v.len().saturating_sub(LAST)..]
}

fn signal_line(clock: &Clock, s: &SignalDoc) -> String {
    let kind = if s.is_final { "final" } else { "may change" };
    format!(
        "  type {} {:<4} at {} {} (pen {}, {kind})",
        s.kind,
        s.side,
        clock.time(s.index),
        s.price,
        s.pen
    )
}

/// Writes counts and the last few pens, segments, pivots and buy/sell points.
pub fn write(out: &mut impl Write, name: &str, d: &Document, clock: &Clock) -> std::io::Result<()> {
    let confirmed = d.segments.iter().filter(|s| s.confirmed).count();
    writeln!(out, "{name}")?;
    writeln!(
        out,
        "  {} bars -> {} merged bars, {} fractals, {} pens, {} segments ({} confirmed), {} pivots, {} buy/sell points",
        d.bars,
        d.merged_bars,
        d.fractals.len(),
        d.pens.len(),
        d.segments.len(),
        confirmed,
        d.pivots.len(),
        d.signals.len()
    )?;
    if !d.repairs.is_empty() {
        writeln!(
            out,
            "  {} bars repaired (high/low widened)",
            d.repairs.len()
        )?;
    }
    writeln!(out, "last pens (笔):")?;
    for p in tail(&d.pens) {
        let state = if p.is_final == Some(true) {
            ""
        } else {
            "  (may extend)"
        };
        writeln!(
            out,
            "  {:<4} {} -> {}{state}",
            p.direction,
            clock.at(&p.start),
            clock.at(&p.end)
        )?;
    }
    if let Some(p) = &d.forming_pen {
        writeln!(
            out,
            "  forming {} {} -> {}",
            p.direction,
            clock.at(&p.start),
            clock.at(&p.end)
        )?;
    }
    writeln!(out, "last segments (线段):")?;
    for s in tail(&d.segments) {
        let state = if s.confirmed { "confirmed" } else { "forming" };
        writeln!(
            out,
            "  {:<4} {} -> {}  pens {}..{}  {state}{}",
            s.direction,
            clock.at(&s.start),
            clock.at(&s.end),
            s.first_pen,
            s.last_pen,
            if s.gap { ", gap" } else { "" }
        )?;
    }
    writeln!(out, "last pivots (中枢):")?;
    for z in tail(&d.pivots) {
        writeln!(
            out,
            "  ZD {} ZG {} (DD {} GG {})  {} -> {}  pens {}..{}",
            z.zd,
            z.zg,
            z.dd,
            z.gg,
            clock.time(z.start.index),
            clock.time(z.end.index),
            z.first_pen,
            z.last_pen
        )?;
    }
    writeln!(out, "last buy/sell points (买卖点):")?;
    for s in tail(&d.signals) {
        writeln!(out, "{}", signal_line(clock, s))?;
    }
    Ok(())
}
