//! Configuration errors that name the key, the bad value and what is allowed.
//!
//! An operator reading the log at 03:00 must be able to fix the setting
//! without reading source code, so every validation failure carries all
//! three pieces of information.

use std::fmt;

/// A configuration value that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key as the operator wrote it: an env variable name or a TOML path.
    pub key: String,
    /// The rejected value (secrets are never echoed: they show as `***`).
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
}

impl ConfigError {
    /// Builds an error for `key` = `value`, with a description of what is allowed.
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        ConfigError {
            key: key.into(),
            value: value.into(),
            allowed: allowed.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {} = {:?}; allowed: {}",
            self.key, self.value, self.allowed
        )
    }
}

impl std::error::Error for ConfigError {}
