//! The maintenance-window coordinator a BitTorrent tracker embeds.
//!
//! Inside a configured window (`[maintenance] window = "03:00-03:05"`) the
//! coordinator closes the tracker's [`AnnounceGate`] (or only pauses its
//! database writes), waits for in-flight requests, asks the tracker to
//! quiesce through [`MaintenanceHooks`], and then signals readiness through
//! a file and the HTTP API so a backup sidecar can claim the window, take
//! its snapshot and let the tracker resume. The window's end is a hard
//! deadline: whatever the sidecar does, the tracker serves normally again
//! by then.
//!
//! Embedding takes a few lines:
//!
//! ```
//! use std::sync::Arc;
//! use maintenance_coordinator::{Coordinator, MaintenanceConfig, NoopHooks};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let text = "[maintenance]\nenabled = true\nwindow = \"03:00-03:05\"\ntoken = \"0123456789abcdef-secret\"";
//! let config = MaintenanceConfig::from_tracker_toml(text, |k| std::env::var(k).ok()).unwrap();
//! let coordinator = Coordinator::start(config, Arc::new(NoopHooks)).await.unwrap();
//! let gate = coordinator.gate();
//! // in the announce handler:
//! match gate.admit_announce() {
//!     Ok(_pass) => { /* answer normally */ }
//!     Err(refusal) => { /* bencoded failure, interval = refusal.retry_after */ }
//! }
//! # coordinator.shutdown().await;
//! # }
//! ```

#![warn(missing_docs)]

mod api;
mod atomic_file;
mod config;
mod coordinator;
mod gate;
mod hooks;
mod last_window;
mod machine;
mod metrics;
mod readiness;
mod refusal;
mod runner;
mod shared;

pub use config::{parse_duration, ConfigError, MaintenanceConfig, Token, MIN_TOKEN_LEN};
pub use coordinator::{Coordinator, StartError};
pub use gate::{AnnounceGate, AnnouncePass, Refusal, WritePass};
pub use hooks::{HookError, MaintenanceHooks, NoopHooks, PinMode, WindowInfo};
pub use maintenance_schedule::Schedule;
pub use readiness::ReadinessFile;

pub use maintenance_proto as proto;
