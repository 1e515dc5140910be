//! torrust-actix 4.2.15, as published on crates.io, composed with the
//! maintenance-window coordinator: its HTTP routes behind our gate
//! middleware, its UDP packet handler behind our receive loop, its
//! write-behind save behind our write turnstile, and quiesce/unpin hooks
//! that flush with its own save functions and pin the SQLite file.
//!
//! Nothing of torrust-actix is patched or copied; where it offers no seam
//! the smallest adapter lives here, and README.md lists what an upstream
//! change would make simpler.

#![warn(missing_docs)]

pub mod config;
pub mod hooks;
pub mod http_gate;
pub mod http_listeners;
pub mod persistence;
pub mod server;
pub mod sqlite_pin;
pub mod udp_listener;
