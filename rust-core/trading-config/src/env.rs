//! Environment overrides: `TRADING_SYSTEM__SECTION__KEY=value`, applied between the file and
//! the `--set` assignments.

use chan_core::ChanError;

use crate::file::{set_key, FileConfig};

/// The prefix of environment variables that override the configuration:
/// `TRADING_SYSTEM__SECTION__KEY=value` (section and key matched lower-cased).
pub const ENV_PREFIX: &str = "TRADING_SYSTEM__";

impl FileConfig {
    /// Applies the `TRADING_SYSTEM__SECTION__KEY` variables among `vars` as one set (their
    /// order does not matter; ranges are checked once, at the end). An empty value changes
    /// nothing; an unknown key or a bad value is an error naming the key and the variable.
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(
        &mut self,
        vars: I,
    ) -> Result<(), ChanError> {
        let mut found: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        found.sort();
        let mut next = self.clone();
        for (name, raw) in &found {
            let parts: Vec<&str> = name[ENV_PREFIX.len()..].split("__").collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(ChanError::config(
                    name.as_str(),
                    format!("expected the form {ENV_PREFIX}SECTION__KEY"),
                ));
            }
            if raw.trim().is_empty() {
                continue;
            }
            let key = format!("{}.{}", parts[0].to_lowercase(), parts[1].to_lowercase());
            next = set_key(&next, &format!("{key}={raw}")).map_err(|e| from_env(e, name))?;
        }
        next.validate().map_err(|e| match e {
            ChanError::Config { key, message } => {
                let var = found
                    .iter()
                    .find(|(n, _)| n[ENV_PREFIX.len()..].to_lowercase().replace("__", ".") == key);
                let name = var.map_or(format!("{ENV_PREFIX}*"), |(n, _)| n.clone());
                ChanError::config(key, format!("{message} (from the environment: {name})"))
            }
            other => other,
        })?;
        *self = next;
        Ok(())
    }
}

/// `e` with the variable it came from added to its message.
fn from_env(e: ChanError, name: &str) -> ChanError {
    match e {
        ChanError::Config { key, message } => {
            ChanError::config(key, format!("{message} (from the environment: {name})"))
        }
        other => other,
    }
}
