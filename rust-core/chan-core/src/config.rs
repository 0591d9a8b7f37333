//! The algorithm's configuration (spec §11): strict serde types, defaults, range checks, and
//! the JSON overrides that golden files and requests carry.
//!
//! `EngineConfig` holds every key the algorithm reads. Configuration files, environment
//! variables and the servers' own sections are the `trading-config` crate's. Unknown keys are
//! errors everywhere.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ChanError;

/// Bar validation and repair (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    pub allow_non_positive_prices: bool,
    pub repair: bool,
}

/// How the MACD EMAs start (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacdSeed {
    /// Chinese charting convention: every EMA starts at the first close.
    FirstClose,
    /// TA-Lib convention: each EMA starts at a simple mean; values before the lookback are absent.
    Sma,
}

/// MACD parameters (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacdConfig {
    pub fast_period: u32,
    pub slow_period: u32,
    pub signal_period: u32,
    pub histogram_scale: f64,
    pub seed: MacdSeed,
}

impl Default for MacdConfig {
    fn default() -> Self {
        Self {
            fast_period: 12,
            slow_period: 26,
            signal_period: 9,
            histogram_scale: 2.0,
            seed: MacdSeed::FirstClose,
        }
    }
}

/// Which pen (笔) definition applies (spec §5.1 rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PenDefinition {
    /// New pen (新笔): merged span ≥ 3 and ≥ 3 raw bars strictly between the extremes.
    #[serde(rename = "new_3kline")]
    New3Kline,
    /// Traditional pen (老笔): merged span ≥ 4.
    #[serde(rename = "traditional")]
    Traditional,
}

/// Pen parameters (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PenConfig {
    pub definition: PenDefinition,
    pub strict_validation: bool,
}

impl Default for PenConfig {
    fn default() -> Self {
        Self {
            definition: PenDefinition::New3Kline,
            strict_validation: true,
        }
    }
}

/// Segment parameters (spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    pub feature_sequence_strict: bool,
    pub handle_inclusion: bool,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            feature_sequence_strict: true,
            handle_inclusion: true,
        }
    }
}

/// Divergence (背驰) strength measure (spec §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    Area,
    Peak,
    Slope,
    Amplitude,
}

/// Buy/sell point parameters (spec §8, §9).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    pub strength: Strength,
    pub divergence_rate: f64,
    pub min_pivots: u32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            strength: Strength::Area,
            divergence_rate: 1.0,
            min_pivots: 1,
        }
    }
}

/// Higher degrees (spec §13): how many degrees of segments are built.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StructureConfig {
    /// Degree 1 is segments of pens; degree n+1 segments of degree-n segments (1..=4).
    pub degrees: u32,
}

impl Default for StructureConfig {
    fn default() -> Self {
        Self { degrees: 2 }
    }
}

/// The largest `structure.degrees`.
pub const MAX_DEGREES: u32 = 4;

/// Every algorithm key of spec §11.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub validation: ValidationConfig,
    pub macd: MacdConfig,
    pub pen: PenConfig,
    pub segment: SegmentConfig,
    pub signal: SignalConfig,
    pub structure: StructureConfig,
}

impl EngineConfig {
    /// Builds a configuration from a JSON object of overrides (nested sections), as golden files
    /// and gRPC requests carry them. Each key is applied on its own, so an error names it.
    pub fn from_json_overrides(v: &Value) -> Result<Self, ChanError> {
        let mut leaves = Vec::new();
        collect_leaves(v, "", &mut leaves)?;
        let mut cfg = EngineConfig::default();
        for (key, value) in leaves {
            cfg = set_value(&cfg, &key, value)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every range of spec §11; the error names the key.
    pub fn validate(&self) -> Result<(), ChanError> {
        let m = &self.macd;
        for (k, v) in [
            ("macd.fast_period", m.fast_period),
            ("macd.slow_period", m.slow_period),
            ("macd.signal_period", m.signal_period),
        ] {
            if v < 1 {
                return Err(ChanError::config(k, format!("must be >= 1, got {v}")));
            }
        }
        if m.fast_period >= m.slow_period {
            return Err(ChanError::config(
                "macd.fast_period",
                format!(
                    "must be < macd.slow_period ({}), got {}",
                    m.slow_period, m.fast_period
                ),
            ));
        }
        if !(m.histogram_scale.is_finite() && m.histogram_scale > 0.0) {
            return Err(ChanError::config(
                "macd.histogram_scale",
                format!("must be a finite number > 0, got {}", m.histogram_scale),
            ));
        }
        let d = self.structure.degrees;
        if !(1..=MAX_DEGREES).contains(&d) {
            return Err(ChanError::config(
                "structure.degrees",
                format!("must be from 1 to {MAX_DEGREES}, got {d}"),
            ));
        }
        let r = self.signal.divergence_rate;
        if !(r.is_finite() && r > 0.0) {
            return Err(ChanError::config(
                "signal.divergence_rate",
                format!("must be a finite number > 0, got {r}"),
            ));
        }
        Ok(())
    }
}

/// Replaces the value at the dotted `key` of a configuration (a serde tree such as
/// [`EngineConfig`]); unknown keys, sections and wrong types are errors naming the key. Ranges are
/// not checked: that is the caller's `validate`. Every override goes through here (JSON
/// overrides, and the `section.key=value` assignments of the configuration files), so an error
/// reads the same whichever way the key came.
pub fn set_value<T: Serialize + serde::de::DeserializeOwned>(
    cfg: &T,
    key: &str,
    value: Value,
) -> Result<T, ChanError> {
    let mut tree = serde_json::to_value(cfg).map_err(|e| ChanError::config(key, e.to_string()))?;
    let mut node = &mut tree;
    for part in key.split('.') {
        node = node
            .as_object_mut()
            .and_then(|o| o.get_mut(part))
            .ok_or_else(|| ChanError::config(key, "unknown configuration key"))?;
    }
    if node.is_object() {
        return Err(ChanError::config(key, "is a section, not a key"));
    }
    *node = value;
    serde_json::from_value(tree).map_err(|e| ChanError::config(key, e.to_string()))
}

/// The dotted paths and values of every leaf of a JSON object of overrides.
fn collect_leaves(v: &Value, path: &str, out: &mut Vec<(String, Value)>) -> Result<(), ChanError> {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_leaves(x, &p, out)?;
            }
            Ok(())
        }
        // An empty override (`macd: null`) changes nothing.
        Value::Null => Ok(()),
        _ if path.is_empty() => Err(ChanError::config("config", "expected a mapping")),
        x => {
            out.push((path.to_string(), x.clone()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec_table() {
        let c = EngineConfig::default();
        assert_eq!(c.macd.fast_period, 12);
        assert_eq!(c.macd.slow_period, 26);
        assert_eq!(c.macd.signal_period, 9);
        assert_eq!(c.macd.histogram_scale, 2.0);
        assert_eq!(c.macd.seed, MacdSeed::FirstClose);
        assert_eq!(c.pen.definition, PenDefinition::New3Kline);
        assert!(c.pen.strict_validation);
        assert!(c.segment.feature_sequence_strict && c.segment.handle_inclusion);
        assert_eq!(c.signal.strength, Strength::Area);
        assert_eq!(c.signal.divergence_rate, 1.0);
        assert_eq!(c.signal.min_pivots, 1);
        assert!(!c.validation.repair && !c.validation.allow_non_positive_prices);
        assert_eq!(c.structure.degrees, 2);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e =
            set_value(&EngineConfig::default(), "macd.fastt", serde_json::json!(3)).unwrap_err();
        assert_eq!(
            e,
            ChanError::config("macd.fastt", "unknown configuration key")
        );
        let e = EngineConfig::from_json_overrides(&serde_json::json!({"pen": {"kind": 1}}))
            .unwrap_err();
        assert_eq!(
            e,
            ChanError::config("pen.kind", "unknown configuration key")
        );
        let e = EngineConfig::from_json_overrides(&serde_json::json!({"pen": 3})).unwrap_err();
        assert_eq!(e, ChanError::config("pen", "is a section, not a key"));
        let e = EngineConfig::from_json_overrides(&serde_json::json!(3)).unwrap_err();
        assert_eq!(e, ChanError::config("config", "expected a mapping"));
    }

    #[test]
    fn json_overrides_name_the_key() {
        use serde_json::json;
        for (v, key) in [
            (json!({"macd": {"fast_period": -1}}), "macd.fast_period"),
            (json!({"pen": {"definition": "old"}}), "pen.definition"),
            (json!({"signal": {"min_pivots": 1.5}}), "signal.min_pivots"),
            (
                json!({"macd": {"histogram_scale": "x"}}),
                "macd.histogram_scale",
            ),
            (json!({"macd": {"fast_period": 40}}), "macd.fast_period"),
        ] {
            let e = EngineConfig::from_json_overrides(&v).unwrap_err();
            assert!(
                matches!(&e, ChanError::Config { key: k, .. } if k == key),
                "{v}: {e}"
            );
        }
        let c = EngineConfig::from_json_overrides(
            &json!({"macd": {"fast_period": 5}, "segment": null}),
        )
        .unwrap();
        assert_eq!(c.macd.fast_period, 5);
    }

    #[test]
    fn ranges_name_the_key() {
        let with = |f: fn(&mut EngineConfig)| {
            let mut c = EngineConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        for (e, key) in [
            (with(|c| c.macd.fast_period = 30), "macd.fast_period"),
            (with(|c| c.macd.fast_period = 0), "macd.fast_period"),
            (with(|c| c.macd.signal_period = 0), "macd.signal_period"),
            (
                with(|c| c.macd.histogram_scale = f64::NAN),
                "macd.histogram_scale",
            ),
            (
                with(|c| c.macd.histogram_scale = -1.0),
                "macd.histogram_scale",
            ),
            (
                with(|c| c.signal.divergence_rate = 0.0),
                "signal.divergence_rate",
            ),
            (with(|c| c.structure.degrees = 0), "structure.degrees"),
            (with(|c| c.structure.degrees = 5), "structure.degrees"),
        ] {
            assert!(
                matches!(&e, ChanError::Config { key: k, .. } if k == key),
                "{key}: {e}"
            );
        }
        assert_eq!(EngineConfig::default().validate(), Ok(()));
    }
}
