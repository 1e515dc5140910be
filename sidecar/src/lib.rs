//! `maintenance-sidecar`: waits for a tracker's maintenance window, claims
//! it, snapshots the databases, lets the tracker resume, then compresses,
//! verifies, publishes and prunes backups, and reports the outcome.
//!
//! The binary (`src/main.rs`) is a thin front-end over these modules so
//! every piece can be tested on its own. The modules form three layers, and
//! imports point down only (ARCHITECTURE.md, "The sidecar's layers"):
//! - [`cmd`]: the entry points, one file per subcommand;
//! - the services at this level (backup, fleet, engines, remote, ...);
//! - [`base`]: the primitives (files, temporary names, hashing, cancel,
//!   progress).

#![warn(missing_docs)]

pub mod base;
pub mod cmd;

pub mod backup;
pub mod client;
pub mod compress;
pub mod config;
pub mod crypt;
pub mod discovery;
pub mod engine;
pub mod fleet;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod offsite;
pub mod online;
pub mod ops;
pub mod readback;
pub mod release;
pub mod remote;
pub mod retention;
pub mod single;
pub mod staging;
pub mod status_conn;
pub mod wake;
pub mod webhook;
pub mod zstd_workers;
