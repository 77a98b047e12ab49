//! The supervised actors that move jobs from the database to execution and back.
//!
//! ```text
//!  ScannerActor ──(kafka.topic.jobs)──▶ DispatcherActor ──starts──▶ ExecutorActor (one per job)
//!      │ claims due and lost jobs                                      │ claims each run, runs, retries
//!      ▼                                                               ▼
//!    store ◀────── ResultWriterActor ◀──(kafka.topic.updatedJobs)─────┘
//! ```
//!
//! (The API claims and publishes a job itself when it is due before the next scan.) The store
//! is PostgreSQL or SQLite and the topics are Kafka's or in-process queues, depending on the
//! mode; the actors are the same.
//!
//! Every actor runs under an actix [`Supervisor`](actix::Supervisor): when it stops because
//! it cannot go on, it is restarted with its state, and the restart is counted per kind (see
//! [`supervision`] and `docs/runtime-semantics.md`).

mod consumer;
pub mod dispatcher;
pub mod executor;
mod kind;
pub mod result_writer;
pub mod scanner;
pub mod supervision;

use std::sync::Arc;

pub use kind::ActorKind;

use crate::bus::{Bus, Publisher};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::runner::{RunSlots, Runners};
use crate::store::Store;

/// What every actor may use: the store, the bus, the configuration, the metrics and the job
/// runners. The actors do not know which store and bus they use (see [`crate::store`] and
/// [`crate::bus`]).
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "the store and the bus are trait objects without Debug"
)]
pub struct Services {
    pub store: Arc<dyn Store>,
    /// Where consumers subscribe and positions are read.
    pub bus: Arc<dyn Bus>,
    /// Publishes Kairos's records on [`Services::bus`].
    pub publisher: Publisher,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Names this process in claims and logs.
    pub instance: Arc<str>,
    /// Bound the commands and the calls running at once (see [`crate::runner::slots`]).
    /// Closed when the process stops: a job still waiting for a slot is then handed back,
    /// not started.
    pub run_slots: RunSlots,
    /// The runner of each kind of job.
    pub runners: Arc<Runners>,
}
