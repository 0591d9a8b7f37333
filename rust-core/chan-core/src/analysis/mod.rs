//! The pipeline (spec §10): one incremental engine; batch analysis is a loop over it, so the two
//! cannot disagree. [`Session`] adds append / replace-last with change reports.
//!
//! - `engine`: the engine, bar by bar, with what a replaced bar undoes;
//! - `session`: the stream session and its change reports;
//! - `tail`: the non-final tail, derived from scratch or kept up to date by a session.

mod engine;
mod higher;
mod session;
mod tail;

pub use engine::Engine;
pub use higher::{higher_degrees, Degree, DegreeChange, LevelLists};
pub use session::{BarOp, BatchError, Session, Update};
pub use tail::Tail;

use crate::config::EngineConfig;
use crate::document::Document;
use crate::error::ChanError;
use crate::kline::{bar_ok, validate_series, Bar};

/// Bar indices are 32-bit.
const MAX_BARS: usize = u32::MAX as usize;

fn no_bar_to_replace() -> ChanError {
    ChanError::State("replace_last: the session has no bar to replace".into())
}

fn too_many_bars() -> ChanError {
    ChanError::State(format!("a series holds at most {MAX_BARS} bars"))
}

/// A batch analysis result: the engine after the whole series, with its tail.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub engine: Engine,
    pub tail: Tail,
    /// Degrees 2..=`structure.degrees` (spec §13).
    pub higher: Vec<Degree>,
}

impl Analysis {
    /// The analysis document (the JSON shape both engines produce).
    pub fn document(&self) -> Document {
        Document::build(&self.engine, &self.tail, &self.higher)
    }
}

/// Analyzes a whole series (spec §1–§9). Rejects it whole, naming every bad bar, unless valid.
pub fn analyze(bars: &[Bar], cfg: &EngineConfig, keep_macd: bool) -> Result<Analysis, ChanError> {
    cfg.validate()?;
    if bars.len() > MAX_BARS {
        return Err(too_many_bars());
    }
    if bars.is_empty() {
        // The rule-by-rule path names the error.
        return analyze_checked(bars, cfg, keep_macd);
    }
    // One pass: each bar is checked as it is applied (the input is read once, not twice). The
    // first bar that is not plainly valid hands the series to the rule-by-rule path, which names
    // every violation or applies the repairs; the partial engine is dropped, nothing escapes.
    let mut engine = Engine::with_capacity(*cfg, keep_macd, bars.len());
    let mut prev = None;
    for b in bars {
        if !bar_ok(b, prev, &cfg.validation) {
            drop(engine);
            return analyze_checked(bars, cfg, keep_macd);
        }
        prev = Some(b.time);
        engine.push(b);
    }
    let tail = engine.tail();
    let higher = higher_degrees(&engine, &tail);
    Ok(Analysis {
        engine,
        tail,
        higher,
    })
}

/// The whole series validated first (every violation named, repairs made), then analyzed.
#[cold]
#[inline(never)]
fn analyze_checked(
    bars: &[Bar],
    cfg: &EngineConfig,
    keep_macd: bool,
) -> Result<Analysis, ChanError> {
    let (repairs, fixed) =
        validate_series(bars, &cfg.validation).map_err(ChanError::InvalidBars)?;
    let bars = fixed.as_deref().unwrap_or(bars);
    let mut engine = Engine::with_capacity(*cfg, keep_macd, bars.len());
    engine.repairs = repairs;
    for b in bars {
        engine.push(b);
    }
    let tail = engine.tail();
    let higher = higher_degrees(&engine, &tail);
    Ok(Analysis {
        engine,
        tail,
        higher,
    })
}
