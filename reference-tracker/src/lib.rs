//! `reference-tracker`: a small but real BitTorrent HTTP and UDP tracker
//! that embeds the maintenance-window coordinator.
//!
//! It is both the embedding example (see `server.rs`, `hooks.rs` and the
//! gate call in `tracker.rs`) and the subject of the end-to-end tests:
//! announce (BEP 3, compact peers BEP 23), scrape (BEP 48), a health check,
//! and completed counts persisted behind a write-behind buffer in the
//! upstream Torrust `torrents` table, on SQLite or MySQL/MariaDB.

#![warn(missing_docs)]

pub mod bencode;
pub mod config;
pub mod durability;
pub mod hooks;
pub mod http;
pub mod journal;
pub mod peers;
pub mod query;
pub mod server;
pub mod store;
pub mod tracker;
pub mod udp;
pub mod writebehind;
