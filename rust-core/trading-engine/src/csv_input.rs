//! Reads bars from CSV: header `time,open,high,low,close,volume`; time as epoch milliseconds,
//! an ISO date or an ISO date-time. Errors name the line and the column.

use std::io::Read;

use anyhow::{bail, Context, Result};
use chan_core::timestamp::parse_time;
use chan_core::Bar;

const COLUMNS: [&str; 6] = ["time", "open", "high", "low", "close", "volume"];

/// Parses every row; the first error stops with its line number (1-based, header is line 1).
pub fn read_bars(reader: impl Read) -> Result<Vec<Bar>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header = rdr.headers().context("reading the CSV header")?.clone();
    let mut at = [0usize; 6];
    for (k, name) in COLUMNS.iter().enumerate() {
        at[k] = header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| {
                format!(
                    "line 1: missing column {name:?} (need {})",
                    COLUMNS.join(",")
                )
            })?;
    }
    let mut bars = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 2;
        let rec = rec.with_context(|| format!("line {line}: unreadable CSV row"))?;
        let field = |k: usize| rec.get(at[k]).unwrap_or("");
        let time = parse_time(field(0)).map_err(|e| anyhow::anyhow!("line {line}: time: {e}"))?;
        let mut v = [0f64; 5];
        for k in 1..6 {
            let s = field(k);
            v[k - 1] = match s.parse::<f64>() {
                Ok(x) => x,
                Err(_) => bail!("line {line}: {}: not a number: {s:?}", COLUMNS[k]),
            };
        }
        bars.push(Bar::new(time, v[0], v[1], v[2], v[3], v[4]));
    }
    Ok(bars)
}
