//! `verify <backup>`: re-hashes every artifact against the manifest and runs
//! each engine's content check (SQLite integrity_check, dump trailer, tar
//! listing), so an operator can trust a backup before needing it. An
//! encrypted artifact's ciphertext hash is always checked; its content only
//! with an identity.

use std::path::Path;

use anyhow::Context;

use crate::base::hashing::sha256_file;
use crate::crypt::{self, Identities};
use crate::engine;
use crate::manifest::Manifest;

/// Outcome of verifying one backup.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// One line per artifact checked successfully.
    pub ok: Vec<String>,
    /// One line per problem found.
    pub problems: Vec<String>,
}

/// Verifies the backup folder `dir`; `keys` decrypt encrypted artifacts
/// for the content check.
pub fn verify(dir: &Path, keys: Option<&Identities>) -> anyhow::Result<VerifyReport> {
    let manifest = Manifest::load(dir)?;
    let mut report = VerifyReport::default();
    if manifest.artifacts.is_empty() {
        report.problems.push("manifest lists no artifacts".into());
    }
    for a in &manifest.artifacts {
        let path = dir.join(&a.path);
        let (size, sha) = match sha256_file(&path).with_context(|| format!("read {}", a.path)) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(format!("{}: {e:#}", a.path));
                continue;
            }
        };
        if size != a.size_bytes {
            report.problems.push(format!(
                "{}: size {size} differs from manifest {}",
                a.path, a.size_bytes
            ));
            continue;
        }
        if sha != a.sha256 {
            report.problems.push(format!(
                "{}: sha256 {sha} differs from manifest {}",
                a.path, a.sha256
            ));
            continue;
        }
        if crypt::is_encrypted(&path) && keys.is_none() {
            report.ok.push(format!(
                "{}: sha256 ok (ciphertext); content not checked: encrypted, give --identity FILE to check it",
                a.path
            ));
            continue;
        }
        match engine::check_artifact(&a.engine, &path, keys) {
            Ok(detail) => report.ok.push(format!("{}: sha256 ok, {detail}", a.path)),
            Err(e) => report.problems.push(format!("{}: {e:#}", a.path)),
        }
    }
    Ok(report)
}
