//! The primitives at the bottom of the sidecar: files and folders, owned
//! temporary names, hashing, cancellation, progress, read-ahead and
//! backoff. They import nothing from the layers above (only each other).

pub mod backoff;
pub mod cancel;
pub mod fs;
pub mod hashing;
pub mod progress;
pub mod read_ahead;
pub mod regular_file;
pub mod replace;
pub mod restore_lock;
pub mod temp;
