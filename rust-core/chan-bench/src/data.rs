//! Input series: a CSV file (parsed before any timing) and a deterministic synthetic random walk.

use std::path::Path;

use anyhow::{Context, Result};
use chan_core::Bar;

/// Reads a file of bars with the engine's own loader (`docs/DATA.md`; UTC, units by magnitude).
pub fn read_csv(path: &Path) -> Result<Vec<Bar>> {
    let options = trading_engine::csv_input::Options::default();
    let loaded = trading_engine::csv_input::read_file(path, &options)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(loaded.bars)
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for a benchmark walk.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 random bits.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Approximately standard normal (Irwin–Hall: sum of 4 uniforms, rescaled).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 3f64.sqrt()
    }
}

/// A deterministic one-minute random walk of `n` bars, in integer ticks of 0.01 so that equal
/// highs and lows (ties) happen as they do in real quotes. Its scale follows the one-minute
/// 000001.SH data: price about 3000, moves of about 0.05% with a lag-1 autocorrelation of 0.28.
///
/// Each bar: open = previous close; close = open + an AR(1) normal move (a weak pull of the log
/// price back toward the start keeps a long walk in a sane range); wicks above max(open, close)
/// and below min(open, close) are random, zero a third of the time, about a quarter of the body
/// on average; about 1% of bars are flat (open = high = low = close). Prices stay ≥ 0.01;
/// times step by one minute, with an overnight gap after every 240 bars.
pub fn random_walk(n: usize, seed: u64) -> Vec<Bar> {
    const TICK: f64 = 0.01;
    const START: i64 = 300_000; // 3000.00
    const PHI: f64 = 0.28;
    const T0: i64 = 1_420_075_860_000; // 2015-01-01T01:31:00Z
    let mut rng = SplitMix64::new(seed);
    let mut bars = Vec::with_capacity(n);
    let mut close: i64 = START;
    let mut time = T0;
    let ln_start = (START as f64).ln();
    let innovation = (1.0 - PHI * PHI).sqrt();
    let mut eps = 0.0;
    for i in 0..n {
        let open = close;
        let p = open as f64;
        let flat = rng.unit() < 0.01;
        let (c, hi, lo);
        if flat {
            (c, hi, lo) = (open, open, open);
        } else {
            let sigma = (p * 0.0005).max(1.0);
            let pull = -(p.ln() - ln_start) * 1e-6 * p;
            eps = PHI * eps + innovation * rng.normal();
            c = (open + (eps * sigma + pull).round() as i64).max(1);
            let body_hi = open.max(c);
            let body_lo = open.min(c);
            let wick = |r: &mut SplitMix64| {
                let u = r.unit();
                if u < 0.35 {
                    0
                } else {
                    (u * u * 0.6 * sigma).round() as i64
                }
            };
            hi = body_hi + wick(&mut rng);
            lo = (body_lo - wick(&mut rng)).max(1);
        }
        let volume = (1000.0 + rng.unit() * 99_000.0).round();
        bars.push(Bar::new(
            time,
            open as f64 * TICK,
            hi as f64 * TICK,
            lo as f64 * TICK,
            c as f64 * TICK,
            volume,
        ));
        close = c;
        time += if (i + 1) % 240 == 0 {
            // overnight
            64_860_000
        } else {
            60_000
        };
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;
    use chan_core::config::ValidationConfig;
    use chan_core::kline::validate_series;

    #[test]
    fn walk_is_valid_deterministic_and_has_ties() {
        let a = random_walk(100_000, 7);
        assert_eq!(a, random_walk(100_000, 7));
        assert!(validate_series(&a, &ValidationConfig::default()).is_ok());
        assert!(a.windows(2).all(|w| w[1].open == w[0].close));
        let flat = a.iter().filter(|b| b.high == b.low).count();
        assert!(flat > 1_000, "{flat} flat bars");
        let tied_highs = a.windows(2).filter(|w| w[0].high == w[1].high).count();
        assert!(tied_highs > 100, "{tied_highs} tied highs");
    }
}
