//! The whole configuration file (`config/default.yaml`), read from YAML and changed by
//! `section.key=value` assignments (`--set`).

use chan_core::config::{
    set_value, MacdConfig, PenConfig, SegmentConfig, SignalConfig, StructureConfig,
    ValidationConfig,
};
use chan_core::{ChanError, EngineConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sections::{ClientConfig, LoggingConfig, ServerConfig, SystemConfig};

/// The whole configuration file (`config/default.yaml`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub system: SystemConfig,
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub logging: LoggingConfig,
    pub validation: ValidationConfig,
    pub macd: MacdConfig,
    pub pen: PenConfig,
    pub segment: SegmentConfig,
    pub signal: SignalConfig,
    pub structure: StructureConfig,
}

/// A configuration read from YAML text and changed by `section.key=value` assignments: the
/// whole file ([`FileConfig`]) or the algorithm's keys alone ([`EngineConfig`], a file holding
/// only those sections).
pub trait YamlConfig: Serialize + DeserializeOwned + Default {
    /// Checks every range; the error names the key.
    fn validate(&self) -> Result<(), ChanError>;

    /// Parses YAML text (blank: the defaults), rejecting unknown keys and out-of-range values.
    fn from_yaml(text: &str) -> Result<Self, ChanError> {
        let cfg: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ChanError::config("file", e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies one `section.key=value` override (value read as a YAML scalar); a rejected one
    /// changes nothing.
    fn set(&mut self, assignment: &str) -> Result<(), ChanError> {
        let next = set_key(self, assignment)?;
        next.validate()?;
        *self = next;
        Ok(())
    }
}

impl YamlConfig for EngineConfig {
    fn validate(&self) -> Result<(), ChanError> {
        EngineConfig::validate(self)
    }
}

impl YamlConfig for FileConfig {
    fn validate(&self) -> Result<(), ChanError> {
        FileConfig::validate(self)
    }
}

impl FileConfig {
    /// Checks every range: the algorithm keys (spec §11), then the server's, then the system's.
    pub fn validate(&self) -> Result<(), ChanError> {
        self.engine().validate()?;
        self.server.validate()?;
        self.system.validate()
    }

    /// The algorithm part.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            validation: self.validation,
            macd: self.macd,
            pen: self.pen,
            segment: self.segment,
            signal: self.signal,
            structure: self.structure,
        }
    }

    /// A copy fit to print: the tokens that are set show [`REDACTED`](crate::REDACTED).
    #[must_use]
    pub fn redacted(&self) -> Self {
        Self {
            server: self.server.redacted(),
            ..self.clone()
        }
    }
}

/// `cfg` with one `section.key=value` assignment applied; ranges are not checked.
pub(crate) fn set_key<T: Serialize + DeserializeOwned>(
    cfg: &T,
    assignment: &str,
) -> Result<T, ChanError> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| {
        ChanError::config(
            assignment,
            "an override must have the form section.key=value",
        )
    })?;
    let key = key.trim();
    let value: Value = serde_yaml_ng::from_str(raw.trim())
        .map_err(|e| ChanError::config(key, format!("unreadable value {raw:?}: {e}")))?;
    // A text key takes the text as written, even when it reads as a number (`auth_token=123`)
    // or as nothing.
    let value = if is_text_key(cfg, key) && !value.is_string() {
        Value::String(raw.trim().to_string())
    } else {
        value
    };
    set_value(cfg, key, value)
}

/// Whether the value at the dotted `key` is text.
fn is_text_key<T: Serialize>(cfg: &T, key: &str) -> bool {
    let Ok(tree) = serde_json::to_value(cfg) else {
        return false;
    };
    key.split('.')
        .try_fold(&tree, |node, part| node.get(part))
        .is_some_and(Value::is_string)
}
