//! The bounds on what runs at once in a process, one per kind of resource an attempt holds:
//! commands (`executor.max_concurrent_runs`: processes, their pipes and memory) and calls
//! (`runner.http.max_concurrent_calls`: connections waiting for an answer). Apart, so that a
//! flood of calls to a host that never answers cannot hold back the commands due meanwhile,
//! nor the other way round. A `noop` or `kafka` attempt takes neither (librdkafka's queue bounds
//! the messages waiting for the broker).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::Settings;

/// What an attempt of a kind holds while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Nothing that needs a bound of its own.
    None,
    /// A command's process (`executor.max_concurrent_runs`).
    Command,
    /// An HTTP call (`runner.http.max_concurrent_calls`).
    Call,
}

/// The process's slots, shared by its executors.
#[derive(Debug, Clone)]
pub struct RunSlots {
    commands: Arc<Semaphore>,
    calls: Arc<Semaphore>,
    /// `executor.max_concurrent_runs` and `runner.http.max_concurrent_calls`.
    limits: [usize; 2],
}

impl RunSlots {
    /// The slots `settings` allow.
    pub fn new(settings: &Settings) -> Self {
        let limits = [
            settings.executor.max_concurrent_runs,
            settings.runner.http.max_concurrent_calls,
        ];
        Self {
            commands: Arc::new(Semaphore::new(limits[0])),
            calls: Arc::new(Semaphore::new(limits[1])),
            limits,
        }
    }

    /// Each kind of slot by name (`command`, `call`), with how many are taken now and how many
    /// there are.
    pub fn usage(&self) -> [(&'static str, usize, usize); 2] {
        let taken =
            |slots: &Semaphore, limit: usize| limit.saturating_sub(slots.available_permits());
        [
            (
                "command",
                taken(&self.commands, self.limits[0]),
                self.limits[0],
            ),
            ("call", taken(&self.calls, self.limits[1]), self.limits[1]),
        ]
    }

    /// The bound an attempt holding `slot` waits on; `None` when it runs at once.
    pub fn bound(&self, slot: Slot) -> Option<Arc<Semaphore>> {
        match slot {
            Slot::None => None,
            Slot::Command => Some(Arc::clone(&self.commands)),
            Slot::Call => Some(Arc::clone(&self.calls)),
        }
    }

    /// Nothing starts from now on: the attempts waiting for a slot see it closed (the process
    /// is stopping, and hands their jobs back). The running ones keep theirs.
    pub fn close(&self) {
        self.commands.close();
        self.calls.close();
    }
}
