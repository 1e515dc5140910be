//! A string that never shows up in logs or debug output.
//!
//! Tokens and database passwords travel through the config structs; wrapping
//! them makes an accidental `{:?}` print `***` instead of the secret.

use std::fmt;

/// A secret value: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, trimming surrounding whitespace (secret files often end
    /// with a newline).
    pub fn new(value: impl AsRef<str>) -> Self {
        Secret(value.as_ref().trim().to_owned())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is empty after trimming.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_trimmed_and_hidden() {
        let s = Secret::new("  abc\n");
        assert_eq!(s.expose(), "abc");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
    }
}
