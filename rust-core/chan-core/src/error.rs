//! Errors of the core: bad bars and bad configuration.

use std::fmt::Write;

use serde::Serialize;

/// One broken rule of spec §1: which bar, which field, which rule, and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// 0-based index of the offending bar; `None` when the rule concerns the whole series.
    pub index: Option<usize>,
    /// The field at fault: `time`, `open`, `high`, `low`, `close`, `volume` or `bars`.
    pub field: &'static str,
    /// The rule's stable name (`kline::rule`; the list is in `docs/CHAN_THEORY.md` §12.1).
    pub rule: &'static str,
    /// A sentence naming the bar, the value and the rule.
    pub message: String,
}

/// Every error the core returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChanError {
    /// The request broke one or more rules of spec §1; nothing of it was applied.
    #[error("invalid bars: {}", summarize(.0))]
    InvalidBars(Vec<Violation>),
    /// A configuration key is unknown, has the wrong type or is out of range.
    #[error("invalid configuration: {key}: {message}")]
    Config { key: String, message: String },
    /// An incremental call that needs a bar when the session has none (replace on an empty session).
    #[error("{0}")]
    State(String),
}

fn summarize(v: &[Violation]) -> String {
    let mut s = v
        .iter()
        .take(20)
        .map(|x| x.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if v.len() > 20 {
        // Writing to a String cannot fail.
        let _ = write!(s, "; … and {} more", v.len() - 20);
    }
    s
}

impl ChanError {
    /// The violations of an `InvalidBars` error (empty for other kinds).
    pub fn violations(&self) -> &[Violation] {
        match self {
            ChanError::InvalidBars(v) => v,
            _ => &[],
        }
    }

    /// A configuration error naming `key` (also built by the trading-config crate).
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        ChanError::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}
