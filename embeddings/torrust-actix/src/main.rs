//! The `torrust-actix-maintained` binary: `--config PATH` (default
//! `./config.toml`, as upstream), torrust-actix's logging, then the
//! composed tracker until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use torrust_actix::config::structs::configuration::Configuration;
use torrust_actix_maintained::config::EmbeddingConfig;

/// torrust-actix (BitTorrent tracker, HTTP and UDP) with maintenance
/// windows for consistent database backups.
#[derive(Parser, Debug)]
#[command(name = "torrust-actix-maintained", version, about, long_about = None)]
struct Args {
    /// torrust-actix's config.toml plus a [maintenance] table; see
    /// config.example.toml.
    #[arg(short, long, value_name = "PATH", default_value = "config.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // As upstream's main: sqlx and reqwest link rustls with two crypto
    // providers, so one has to be chosen before any TLS is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match EmbeddingConfig::load(&args.config, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("torrust-actix-maintained: {e}");
            return ExitCode::from(2);
        }
    };
    // torrust-actix's own checks (they print warnings, and stop on names
    // its SQL cannot use).
    Configuration::validate((*config.tracker).clone());
    torrust_actix::common::common::setup_logging(&config.tracker);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("torrust-actix-maintained: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(torrust_actix_maintained::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torrust-actix-maintained: {e}");
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
