//! A readable summary of an analysis document, for people at a terminal. Times are printed in
//! the series' zone (`--tz`), as dates when every bar is at midnight there (a daily series).

use std::io::Write;

use chan_core::document::{Point, SignalDoc};
use chan_core::timestamp::format_ms;
use chan_core::Document;

use crate::times::ZoneName;

const LAST: usize = 5;
const DAY_MS: i64 = 86_400_000;

/// How the summary prints a bar's time: in the zone of the series, dates for a daily series.
pub struct Clock<'a> {
    /// Each bar's time, epoch milliseconds UTC.
    times: &'a [i64],
    zone: &'a ZoneName,
    daily: bool,
}

impl<'a> Clock<'a> {
    pub fn new(times: &'a [i64], zone: &'a ZoneName) -> Self {
        let daily = !times.is_empty()
            && times
                .iter()
                .all(|&ms| (ms + i64::from(zone.offset_at(ms)) * 1000).rem_euclid(DAY_MS) == 0);
        Self { times, zone, daily }
    }

    /// Bar `index`'s time as printed: `2025-06-09` (daily), `2025-06-09T01:31:00Z` (UTC),
    /// `2025-06-09T09:31:00+08:00` (another zone).
    pub fn time(&self, index: u32) -> String {
        let ms = self.times[index as usize];
        let offset = self.zone.offset_at(ms);
        // The wall time written as if UTC, then the offset in place of the Z.
        let wall = format_ms(ms + i64::from(offset) * 1000);
        if self.daily {
            return wall[..10].to_owned();
        }
        if self.zone.is_utc() {
            return wall;
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        format!(
            "{}{sign}{:02}:{:02}",
            wall.trim_end_matches('Z'),
            minutes / 60,
            minutes % 60
        )
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
