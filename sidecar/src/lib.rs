//! `maintenance-sidecar`: waits for a tracker's maintenance window, claims
//! it, snapshots the databases, lets the tracker resume, then compresses,
//! verifies, publishes and prunes backups, and reports the outcome.
//!
//! The binary (`src/main.rs`) is a thin clap front-end over these modules so
//! every piece can be tested on its own.

#![warn(missing_docs)]

pub mod backup;
pub mod cancel;
pub mod cli;
pub mod client;
pub mod commands;
pub mod compress;
pub mod config;
pub mod crypt;
pub mod engine;
pub mod fleet;
pub mod fsutil;
pub mod hashing;
pub mod lease;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod offsite;
pub mod ops;
pub mod owned_temp;
pub mod progress;
pub mod read_ahead;
pub mod readback;
pub mod release;
pub mod remote;
pub mod replace;
pub mod retention;
pub mod runner;
pub mod staging;
pub mod status;
pub mod status_conn;
pub mod wake;
pub mod webhook;
