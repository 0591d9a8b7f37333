//! The configuration files of the Rust engine's programs: `config/default.yaml` read into
//! [`FileConfig`] (the algorithm's keys, which `chan-core`'s [`EngineConfig`] holds, beside the
//! `system`, `server`, `client` and `logging` sections), `TRADING_SYSTEM__SECTION__KEY`
//! environment overrides, `section.key=value` assignments (`--set`), the MACD presets file, and
//! the redaction of secrets for printing.
//!
//! Errors are `chan_core::ChanError::Config`, naming the key, as the algorithm's own
//! configuration errors do: the same key reads the same however it was given.

mod env;
mod file;
mod presets;
mod sections;
#[cfg(test)]
mod tests;

#[cfg(doc)]
use chan_core::EngineConfig;

pub use env::ENV_PREFIX;
pub use file::{FileConfig, YamlConfig};
pub use presets::MacdPresets;
pub use sections::{ClientConfig, EngineName, LoggingConfig, ServerConfig, SystemConfig, REDACTED};
