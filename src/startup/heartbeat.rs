//! The heartbeat of a process without executors.
//!
//! A process with the executor role beats from its dispatcher, which also records the
//! partitions of the jobs topic it holds (`actors::dispatcher`). A process without that role
//! still dispatches: its API stores a job due soon already claimed and publishes it, its
//! scanner claims the due jobs and publishes them. It beats too, holding no partition, so that
//! once it dies the recovery passes know it dead and take back at once the jobs it claimed and
//! may not have published (`store::postgres::recovery::recover`); otherwise they would wait
//! for their lease, their time plus `recovery.grace`.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use crate::actors::Services;

/// Beats every `recovery.heartbeat` until the process exits. A failed beat is logged; the next
/// one connects again.
pub fn beat_without_executors(services: &Services) {
    let store = Arc::clone(&services.store);
    let every = services.settings.recovery.heartbeat;
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = store.heartbeat(&[]).await {
                tracing::warn!(%error, "cannot record the heartbeat");
            }
        }
    });
}
