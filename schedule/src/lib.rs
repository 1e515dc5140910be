//! Daily windows in local time, shared by the two programs that run on a
//! schedule: the coordinator (`[maintenance] window`) and the sidecar's
//! online mode for trackers without a coordinator (`BACKUP_WINDOW`). One
//! crate, so both read `"HH:MM-HH:MM"` and a zone the same way and follow
//! the same DST rules; it depends only on the wire types (`WindowSpan`),
//! never on either program.

#![warn(missing_docs)]

mod parse;
mod schedule;

pub use parse::{parse_timezone, parse_window, TIMEZONE_SYNTAX, WINDOW_SYNTAX};
pub use schedule::Schedule;
