//! `keygen --out FILE`: writes a new age identity and prints its public
//! key, the recipient to configure.

use std::path::Path;
use std::process::ExitCode;

use super::EXIT_FAILED;

/// Writes the identity to `out`; prints the public key.
pub fn keygen(out: &Path) -> ExitCode {
    match crate::crypt::keygen(out) {
        Ok(public) => {
            println!("{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keygen failed: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
