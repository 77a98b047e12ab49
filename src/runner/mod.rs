//! What running a job means: one runner per kind of job ([`JobSpec`]'s variants), behind one
//! small trait. The executor knows none of them: it asks [`Runners`] whether an attempt takes
//! a run slot, and to run it. Adding a kind means a variant of [`JobSpec`], a runner here and
//! an arm in [`Runners`].

pub mod noop;
pub mod shell;

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Settings;
use crate::domain::{AttemptOutcome, JobSpec};

/// The attempt a runner runs.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    pub job_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When the attempt was due.
    pub scheduled_at: DateTime<Utc>,
    /// How long it may run.
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Why the run failed, in words; `None` on success.
    pub error: Option<String>,
}

impl RunResult {
    /// A run that succeeded with no output.
    pub fn succeeded() -> Self {
        Self {
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
        }
    }

    /// A run that failed before or without output, for `error`.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            outcome: AttemptOutcome::Failed,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            error: Some(error.into()),
        }
    }
}

/// Runs the attempts of one kind of job.
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// The fields of the kind's spec.
    type Spec: Sync;

    /// Whether an attempt takes one of the process's run slots (`executor.max_concurrent_runs`)
    /// while it runs.
    fn takes_run_slot(&self) -> bool {
        true
    }

    /// Runs `attempt` of a job of this kind. Never fails: what goes wrong is a failed run.
    async fn run(&self, spec: &Self::Spec, attempt: &AttemptContext) -> RunResult;
}

/// The runner of every kind, made once at start-up.
#[derive(Debug)]
pub struct Runners {
    shell: shell::ShellRunner,
    noop: noop::NoopRunner,
}

impl Runners {
    /// The runners `settings` configure (`runner.*`, `executor.max_output_bytes`), reading what
    /// they need of this process's environment now.
    pub fn new(settings: &Settings) -> Self {
        Self {
            shell: shell::ShellRunner::new(
                shell::Environment::from_process(&settings.runner.shell),
                settings.executor.max_output_bytes,
            ),
            noop: noop::NoopRunner,
        }
    }

    /// Whether an attempt of `spec` takes a run slot.
    pub fn takes_run_slot(&self, spec: &JobSpec) -> bool {
        match spec {
            JobSpec::Shell(_) => self.shell.takes_run_slot(),
            JobSpec::Noop => self.noop.takes_run_slot(),
        }
    }

    /// Runs `attempt` of a job of `spec` with its kind's runner.
    pub async fn run(&self, spec: &JobSpec, attempt: &AttemptContext) -> RunResult {
        match spec {
            JobSpec::Shell(shell) => self.shell.run(shell, attempt).await,
            JobSpec::Noop => self.noop.run(&(), attempt).await,
        }
    }
}
