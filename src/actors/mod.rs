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

pub mod dispatcher;
pub mod executor;
pub mod result_writer;
pub mod scanner;
pub mod supervision;
pub mod written_reports;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::bus::Publisher;
use crate::config::Settings;
use crate::metrics::{KindLabel, Metrics};
use crate::runner::shell;
use crate::store::Store;

/// The four kinds of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Scanner,
    Dispatcher,
    Executor,
    ResultWriter,
}

impl ActorKind {
    pub const ALL: [ActorKind; 4] = [
        ActorKind::Scanner,
        ActorKind::Dispatcher,
        ActorKind::Executor,
        ActorKind::ResultWriter,
    ];

    /// The name used in metrics labels, the admin API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Scanner => "scanner",
            ActorKind::Dispatcher => "dispatcher",
            ActorKind::Executor => "executor",
            ActorKind::ResultWriter => "result_writer",
        }
    }

    /// Parses [`ActorKind::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The metrics label for this kind.
    pub fn label(self) -> KindLabel {
        KindLabel {
            kind: self.as_str(),
        }
    }
}

/// What every actor may use: the store, the bus, the configuration and the metrics. The
/// actors do not know which store and bus they use (see [`crate::store`] and
/// [`crate::bus`]).
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "the store and the bus are trait objects without Debug"
)]
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub publisher: Publisher,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Names this process in claims and logs.
    pub instance: Arc<str>,
    /// Bounds the commands running at once (`executor.max_concurrent_runs`). Closed when the
    /// process stops: a job still waiting for a slot is then handed back, not started.
    pub run_slots: Arc<Semaphore>,
    /// The environment and folder commands run with (`runner.shell`).
    pub shell_environment: Arc<shell::Environment>,
}
