//! Parsers for single configuration values, shared by the TOML and the
//! environment sources so both reject bad values with the same words.

use std::path::PathBuf;

use super::{Compression, ConfigError, Mode, Require, Resolve, Secret};

/// Parses a boolean the way container environments write them.
pub fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::new(
            key,
            value,
            "true/false, yes/no, on/off or 1/0",
        )),
    }
}

/// Parses a non-negative integer of type `T`.
pub fn number<T: std::str::FromStr>(
    key: &str,
    value: &str,
    allowed: &str,
) -> Result<T, ConfigError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| ConfigError::new(key, value, allowed))
}

/// Parses `zstd` or `gzip`.
pub fn compression(key: &str, value: &str) -> Result<Compression, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "zstd" | "zst" => Ok(Compression::Zstd),
        "gzip" | "gz" => Ok(Compression::Gzip),
        _ => Err(ConfigError::new(key, value, "zstd or gzip")),
    }
}

/// Parses `single` or `continuous`.
pub fn mode(key: &str, value: &str) -> Result<Mode, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "single" | "once" => Ok(Mode::Single),
        "continuous" | "run" => Ok(Mode::Continuous),
        _ => Err(ConfigError::new(key, value, "single or continuous")),
    }
}

/// Parses `first` or `each-address`.
pub fn resolve(key: &str, value: &str) -> Result<Resolve, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "first" => Ok(Resolve::First),
        "each-address" => Ok(Resolve::EachAddress),
        _ => Err(ConfigError::new(
            key,
            value,
            "first (one tracker instance per URL) or each-address (every address a URL's host name resolves to is an instance, e.g. a headless Service)",
        )),
    }
}

/// Parses `all` or `reachable`.
pub fn require(key: &str, value: &str) -> Result<Require, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(Require::All),
        "reachable" => Ok(Require::Reachable),
        _ => Err(ConfigError::new(
            key,
            value,
            "all (a missing tracker instance fails the backup) or reachable (go on without it)",
        )),
    }
}

/// Parses a comma-separated URL list, dropping empty entries and trailing slashes.
pub fn url_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Reads a secret from a file (Docker secrets), trimming whitespace.
pub fn secret_file(key: &str, path: &str) -> Result<Secret, ConfigError> {
    maintenance_preflight::readable_file(key, std::path::Path::new(path))
        .map_err(|problem| ConfigError::new(key, path, problem.to_string()))?;
    let text = std::fs::read_to_string(PathBuf::from(path))
        .map_err(|e| ConfigError::new(key, path, format!("a readable file ({e})")))?;
    let secret = Secret::new(text);
    if secret.is_empty() {
        return Err(ConfigError::new(
            key,
            path,
            "a file holding a non-empty secret",
        ));
    }
    Ok(secret)
}

/// Treats empty strings as unset.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A metrics listen address: `host:port`; `off` or empty disables it.
pub fn listen_addr(key: &str, value: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| {
        ConfigError::new(
            key,
            v.to_owned(),
            "an IP:port listen address such as 0.0.0.0:9187 or 127.0.0.1:9187, or `off`",
        )
    })
}

/// A secret from `key`, else from the file named by `file_key` (e.g. a
/// Docker secret); `None` when neither is set.
pub fn env_secret(
    get: &dyn Fn(&str) -> Option<String>,
    key: &str,
    file_key: &str,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = get(key) {
        return Ok(Some(Secret::new(v)));
    }
    match get(file_key) {
        Some(f) => Ok(Some(secret_file(file_key, &f)?)),
        None => Ok(None),
    }
}
