//! `run` across N >= 1 coordinators: one backup for every tracker instance
//! that writes to the same database.
//!
//! Each instance buffers its own writes, so a snapshot is complete only if
//! every instance has flushed and stays quiesced until it is taken. The
//! sidecar therefore treats the instances' windows as one:
//!
//! 1. **Watch.** One task per coordinator long-polls its status on one
//!    kept connection (`watch.rs`); the ready file, when configured,
//!    is a wake-up hint for the instance that wrote it.
//! 2. **Gather.** Every instance that reports `ready` is claimed at once
//!    and its lease heartbeated ([`crate::lease::LeaseKeeper`]). From the first claim the
//!    others have `gather_timeout_secs` to become ready (their clocks,
//!    drains and quiesces differ). Past that, as soon as a missing
//!    instance is unreachable under `reachable`, or as soon as a missing
//!    instance's own window ended (its quiesce failed, say), [`crate::config::Require`]
//!    decides: `all` fails the backup, `reachable` goes on without it.
//! 3. **Snapshot once, release each.** The snapshot is taken with every
//!    claimed instance quiesced; then each is released, concurrently. When
//!    every claim offered a snapshot pin (protocol 2, SQLite) each release
//!    keeps its pin and each is unpinned after the read (`release.rs`).
//! 4. **Complete each** with the same report, which (like the manifest)
//!    lists every instance, its window and whether it took part.
//!
//! **One window ending ends them all.** When an instance's window ends
//! before the backup is done (abort, deadline, lost lease, restart), or,
//! with several instances, its coordinator becomes unreachable, the backup
//! is cancelled and every other claimed window is completed as failed at
//! once (the trackers resume; nothing is published). Under `reachable` an
//! instance lost before the snapshot is only marked missing, and the backup
//! goes on while at least one instance remains.
//!
//! With one coordinator this is exactly the single-instance loop: claim as
//! soon as it is ready, an unreachable coordinator is left to the lease
//! keeper (retry until the lease expires).
//!
//! The files, one concept each: [`watch`] (the status watchers and what
//! they saw), [`round`] (the round and its policy), [`orchestrator`] (the
//! loop), [`release`] (the release adapter the backup thread calls) and
//! [`complete`] (`complete` to every window, per-instance metrics).

mod complete;
mod orchestrator;
mod release;
mod round;
mod watch;

pub use orchestrator::run;
