//! MACD (spec §2): per raw bar on the close, with the Chinese `first_close` seed or the TA-Lib
//! `sma` seed. Incremental: one `push` per bar, state small enough to copy for undo.

use crate::config::{MacdConfig, MacdSeed};

/// MACD values of one bar; NaN marks "absent" (before the lookback with the `sma` seed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdPoint {
    pub dif: f64,
    pub dea: f64,
    pub histogram: f64,
}

/// The running MACD state (指数平滑异同移动平均线).
#[derive(Debug, Clone, Copy)]
pub struct MacdState {
    count: u64,
    ema_fast: f64,
    ema_slow: f64,
    dea: f64,
    // `sma` seed: running sums of the first inputs of each EMA.
    sum_fast: f64,
    sum_slow: f64,
    sum_dif: f64,
}

impl Default for MacdState {
    fn default() -> Self {
        Self::new()
    }
}

impl MacdState {
    /// A fresh state. The parameters are passed to each `push` (kept out of the state, which is
    /// copied for undo on every streamed bar).
    pub fn new() -> Self {
        Self {
            count: 0,
            ema_fast: 0.0,
            ema_slow: 0.0,
            dea: 0.0,
            sum_fast: 0.0,
            sum_slow: 0.0,
            sum_dif: 0.0,
        }
    }

    /// Feeds the next close and returns this bar's values.
    #[inline]
    pub fn push(&mut self, cfg: &MacdConfig, close: f64) -> MacdPoint {
        let i = self.count;
        self.count += 1;
        match cfg.seed {
            MacdSeed::FirstClose => self.push_first_close(cfg, i, close),
            MacdSeed::Sma => self.push_sma(cfg, i, close),
        }
    }

    #[inline]
    fn push_first_close(&mut self, c: &MacdConfig, i: u64, x: f64) -> MacdPoint {
        if i == 0 {
            self.ema_fast = x;
            self.ema_slow = x;
            self.dea = 0.0;
        } else {
            self.ema_fast = ema_cn(x, self.ema_fast, c.fast_period);
            self.ema_slow = ema_cn(x, self.ema_slow, c.slow_period);
            let dif = self.ema_fast - self.ema_slow;
            self.dea = ema_cn(dif, self.dea, c.signal_period);
        }
        let dif = self.ema_fast - self.ema_slow;
        MacdPoint {
            dif,
            dea: self.dea,
            histogram: c.histogram_scale * (dif - self.dea),
        }
    }

    /// TA-Lib's MACD: the slow EMA seeds on the mean of closes `0..slow`, the fast EMA on the mean
    /// of closes `slow-fast..slow` (so both start at bar `slow-1`), the signal EMA on the mean of
    /// the first `signal` dif values; everything before bar `slow+signal-2` is absent.
    #[inline]
    fn push_sma(&mut self, cfg: &MacdConfig, i: u64, x: f64) -> MacdPoint {
        let (fast, slow, signal) = (
            u64::from(cfg.fast_period),
            u64::from(cfg.slow_period),
            u64::from(cfg.signal_period),
        );
        let absent = MacdPoint {
            dif: f64::NAN,
            dea: f64::NAN,
            histogram: f64::NAN,
        };
        if i < slow {
            self.sum_slow += x;
            if i >= slow - fast {
                self.sum_fast += x;
            }
            if i + 1 < slow {
                return absent;
            }
            self.ema_slow = self.sum_slow / slow as f64;
            self.ema_fast = self.sum_fast / fast as f64;
        } else {
            self.ema_fast = ema_k(x, self.ema_fast, fast);
            self.ema_slow = ema_k(x, self.ema_slow, slow);
        }
        let dif = self.ema_fast - self.ema_slow;
        let lookback = slow - 1 + signal - 1;
        if i < lookback {
            self.sum_dif += dif;
            return absent;
        }
        if i == lookback {
            self.sum_dif += dif;
            self.dea = self.sum_dif / signal as f64;
        } else {
            self.dea = ema_k(dif, self.dea, signal);
        }
        MacdPoint {
            dif,
            dea: self.dea,
            histogram: cfg.histogram_scale * (dif - self.dea),
        }
    }
}

/// `(2·x + (N − 1)·prev) / (N + 1)`, in exactly this order (spec §2).
#[inline]
fn ema_cn(x: f64, prev: f64, n: u32) -> f64 {
    (2.0 * x + (f64::from(n) - 1.0) * prev) / (f64::from(n) + 1.0)
}

/// TA-Lib's `((x − prev) · k) + prev` with `k = 2 / (N + 1)`.
#[inline]
fn ema_k(x: f64, prev: f64, n: u64) -> f64 {
    let k = 2.0 / (n as f64 + 1.0);
    ((x - prev) * k) + prev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_close_seed_starts_at_zero() {
        let cfg = MacdConfig::default();
        let mut m = MacdState::new();
        let p0 = m.push(&cfg, 10.0);
        assert_eq!((p0.dif, p0.dea, p0.histogram), (0.0, 0.0, 0.0));
        let p1 = m.push(&cfg, 11.0);
        let f = (2.0 * 11.0 + 11.0 * 10.0) / 13.0;
        let s = (2.0 * 11.0 + 25.0 * 10.0) / 27.0;
        assert_eq!(p1.dif, f - s);
        assert_eq!(p1.dea, (2.0 * (f - s) + 8.0 * 0.0) / 10.0);
        assert_eq!(p1.histogram, 2.0 * (p1.dif - p1.dea));
    }

    #[test]
    fn sma_seed_has_talib_lookback() {
        let cfg = MacdConfig {
            fast_period: 3,
            slow_period: 5,
            signal_period: 2,
            histogram_scale: 1.0,
            seed: MacdSeed::Sma,
        };
        let mut m = MacdState::new();
        let closes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let pts: Vec<_> = closes.iter().map(|&c| m.push(&cfg, c)).collect();
        // lookback = 5 - 1 + 2 - 1 = 5
        assert!(pts[..5]
            .iter()
            .all(|p| p.dif.is_nan() && p.histogram.is_nan()));
        // bar 4: slow = mean(1..5) = 3, fast = mean(3,4,5) = 4 → dif 1
        // bar 5: fast = (6-4)*0.5+4 = 5, slow = (6-3)/3+3 = 4 → dif 1; dea = mean(1, 1) = 1
        assert_eq!((pts[5].dif, pts[5].dea, pts[5].histogram), (1.0, 1.0, 0.0));
        assert!(!pts[6].dif.is_nan());
    }
}
