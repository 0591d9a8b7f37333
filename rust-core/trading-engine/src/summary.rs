//! A readable summary of an analysis document, for people at a terminal.

use std::io::Write;

use chan_core::document::{Point, SignalDoc};
use chan_core::timestamp::format_ms;
use chan_core::Document;

const LAST: usize = 5;

fn at(p: &Point) -> String {
    format!("{} {}", format_ms(p.time), p.price)
}

fn tail<T>(v: &[T]) -> &[T] {
    &v[v.len().saturating_sub(LAST)..]
}

fn signal_line(s: &SignalDoc) -> String {
    let kind = if s.is_final { "final" } else { "may change" };
    format!(
        "  type {} {:<4} at {} {} (pen {}, {kind})",
        s.kind,
        s.side,
        format_ms(s.time),
        s.price,
        s.pen
    )
}

/// Writes counts and the last few pens, segments, pivots and buy/sell points.
pub fn write(out: &mut impl Write, name: &str, d: &Document) -> std::io::Result<()> {
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
            at(&p.start),
            at(&p.end)
        )?;
    }
    if let Some(p) = &d.forming_pen {
        writeln!(
            out,
            "  forming {} {} -> {}",
            p.direction,
            at(&p.start),
            at(&p.end)
        )?;
    }
    writeln!(out, "last segments (线段):")?;
    for s in tail(&d.segments) {
        let state = if s.confirmed { "confirmed" } else { "forming" };
        writeln!(
            out,
            "  {:<4} {} -> {}  pens {}..{}  {state}{}",
            s.direction,
            at(&s.start),
            at(&s.end),
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
            format_ms(z.start.time),
            format_ms(z.end.time),
            z.first_pen,
            z.last_pen
        )?;
    }
    writeln!(out, "last buy/sell points (买卖点):")?;
    for s in tail(&d.signals) {
        writeln!(out, "{}", signal_line(s))?;
    }
    Ok(())
}
