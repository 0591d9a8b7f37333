//! Chan theory (缠论) core: K-line inclusion, fractals, pens, segments, pivots, MACD and
//! buy/sell points, batch and incremental. Pure computation: no I/O, no async, no logging.
//!
//! The rules are those of `docs/CHAN_THEORY.md` (the project's copy of the specification, with
//! the decisions it leaves open written down); section numbers in comments refer to it.

pub mod analysis;
pub mod config;
pub mod display;
pub mod document;
pub mod error;
pub mod fractal;
pub mod kline;
pub mod macd;
pub mod memory;
pub mod pen;
pub mod pivot;
pub mod segment;
pub mod signal;
pub mod timestamp;

pub use analysis::{analyze, Analysis, BarOp, BatchError, Engine, Session, Tail, Update};
pub use config::EngineConfig;
pub use document::{Document, UpdateDoc};
pub use error::{ChanError, Violation};
pub use kline::{Bar, Direction};
pub use memory::Column;
