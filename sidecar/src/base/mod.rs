//! The primitives at the bottom of the sidecar: files and folders, owned
//! temporary names, hashing, cancellation, progress, read-ahead, read pacing, reading
//! a file while it is written, stage threads and backoff. They import
//! nothing from the layers above (only each other).

pub mod backoff;
pub mod cancel;
pub mod follow;
pub mod fs;
pub mod hashing;
pub mod io_priority;
pub mod pipeline;
pub mod progress;
pub mod read_ahead;
pub mod read_pace;
pub mod regular_file;
pub mod replace;
pub mod restore_lock;
pub mod temp;
pub mod writeback;
