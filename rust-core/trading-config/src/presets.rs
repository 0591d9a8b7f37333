//! Named MACD parameter sets (`config/macd_params.yaml`).

use std::collections::BTreeMap;

use chan_core::config::MacdConfig;
use chan_core::{ChanError, EngineConfig};
use serde::{Deserialize, Serialize};

/// Named MACD parameter sets (`config/macd_params.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacdPresets {
    pub presets: BTreeMap<String, MacdConfig>,
}

impl MacdPresets {
    /// Parses the presets file; each preset is range-checked like `macd`.
    pub fn from_yaml(text: &str) -> Result<Self, ChanError> {
        let p: MacdPresets = serde_yaml_ng::from_str(text)
            .map_err(|e| ChanError::config("presets", e.to_string()))?;
        for (name, m) in &p.presets {
            let cfg = EngineConfig {
                macd: *m,
                ..Default::default()
            };
            cfg.validate().map_err(|e| match e {
                ChanError::Config { key, message } => {
                    ChanError::config(format!("presets.{name}.{key}"), message)
                }
                other => other,
            })?;
        }
        Ok(p)
    }
}
