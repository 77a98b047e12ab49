//! The figures read at each scrape rather than kept up to date: the process's resident
//! memory, the partitions each consumer holds and the run slots taken.

use std::sync::{Arc, Mutex, PoisonError};

use super::{ConsumerLabel, Metrics, SlotLabel};
use crate::bus::Subscription;
use crate::runner::RunSlots;

/// The consumers whose partitions each scrape reads.
#[derive(Default)]
pub(super) struct Consumers(Mutex<Vec<(ConsumerLabel, Arc<dyn Subscription>)>>);

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let consumers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(consumers.iter().map(|(label, _)| label.consumer))
            .finish()
    }
}

impl Metrics {
    /// Shows the partitions `subscription` holds, as `kairos_consumer_partitions{consumer}`.
    pub fn watch_consumer(&self, consumer: &'static str, subscription: Arc<dyn Subscription>) {
        let label = ConsumerLabel { consumer };
        drop(self.consumer_partitions.get_or_create(&label));
        self.consumers
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((label, subscription));
    }

    /// Shows how many of `slots` are taken, as `kairos_run_slots_taken{slot}` beside
    /// `kairos_run_slots_limit{slot}`.
    pub fn watch_slots(&self, slots: &RunSlots) {
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = Some(slots.clone());
    }

    /// Sets the watched figures to what they are now.
    pub(super) fn read_watched(&self) {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        if let Some(slots) = &*self.slots.lock().unwrap_or_else(PoisonError::into_inner) {
            for (slot, taken, limit) in slots.usage() {
                let label = SlotLabel { slot };
                let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
                self.run_slots_taken.get_or_create(&label).set(count(taken));
                self.run_slots_limit.get_or_create(&label).set(count(limit));
            }
        }
        for (label, subscription) in self
            .consumers
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let partitions = i64::try_from(subscription.assignment().len()).unwrap_or(i64::MAX);
            self.consumer_partitions
                .get_or_create(label)
                .set(partitions);
        }
    }
}

/// This process's resident set size, from `/proc/self/statm` (Linux).
fn resident_memory_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * page_size)
}
