//! The release adapter: the fleet's side of [`backup::Release`], called
//! from the backup thread to release (and later unpin) every claimed
//! window at once.

use futures_util::future::join_all;
use maintenance_proto::{Participation, WindowId};

use super::round::{lock, Phase, SharedRound};
use crate::backup;
use crate::client::Coordinator;
use crate::config::Require;

/// The fleet's side of [`backup::Release`], called from the backup
/// thread: releases every held window at once right after the snapshot,
/// unpins every pinned one after the read.
pub(super) struct FleetRelease {
    pub(super) rt: tokio::runtime::Handle,
    pub(super) round: SharedRound,
    /// Every claimed window offered a pin (protocol 2).
    pub(super) pin_offered: bool,
    /// Windows released with their pin kept.
    pub(super) pinned: Vec<(Coordinator, WindowId)>,
}

impl backup::Release for FleetRelease {
    fn pin_offered(&self) -> bool {
        self.pin_offered
    }

    fn release(&mut self, keep_pin: bool) -> anyhow::Result<bool> {
        let held: Vec<(usize, Coordinator, WindowId)> = lock(&self.round)
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| s.phase == Phase::Held)
                    .map(|s| (i, s.coord.clone(), s.window.clone()))
            })
            .collect();
        let results = self.rt.block_on(join_all(
            held.iter()
                .map(|(_, c, w)| crate::release::release(c, w, keep_pin)),
        ));
        let mut r = lock(&self.round);
        if let Some(why) = &r.cancelled {
            anyhow::bail!("backup cancelled: {why}");
        }
        let mut kept = true;
        for ((i, coord, window), result) in held.into_iter().zip(results) {
            let Some(slot) = r.slots[i].as_mut() else {
                continue;
            };
            match result {
                Ok(pinned) => {
                    if slot.phase == Phase::Held {
                        slot.phase = Phase::Released;
                    }
                    if pinned {
                        self.pinned.push((coord, window));
                    }
                    kept &= pinned;
                }
                Err(e) => {
                    slot.phase = Phase::Lost(format!("{e:#}"));
                    // A pinned read needs every pin; `all` needs everyone.
                    if keep_pin || r.require == Require::All || !r.has_live() {
                        return Err(e);
                    }
                    tracing::warn!("{}: {e:#}; it is missing from the backup", r.urls[i]);
                }
            }
        }
        Ok(keep_pin && kept)
    }

    fn unpin(&mut self) -> anyhow::Result<()> {
        let results = self.rt.block_on(join_all(
            self.pinned.iter().map(|(c, w)| crate::release::unpin(c, w)),
        ));
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        Ok(())
    }

    fn participation(&self) -> Option<Participation> {
        Some(lock(&self.round).participation())
    }
}
