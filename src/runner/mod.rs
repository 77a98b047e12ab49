//! What running a job means: one runner per kind of job ([`JobSpec`]'s variants), behind one
//! small trait. The executor knows none of them: it asks [`Runners`] which slot an attempt
//! takes ([`slots`]), and to run it. Adding a kind means a variant of [`JobSpec`], a runner here and
//! an arm in [`Runners`].

pub mod http;
pub mod kafka;
pub mod noop;
pub mod shell;
pub mod slots;

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Settings;
use crate::domain::{AttemptOutcome, JobSpec};
pub use slots::{RunSlots, Slot};

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
    /// Turns true when the job is cancelled: the run stops what it does.
    pub cancel: tokio::sync::watch::Receiver<bool>,
}

impl AttemptContext {
    /// Resolves once the job is cancelled (never, if the executor lets go of the sender
    /// without cancelling).
    pub async fn cancelled(&self) {
        let mut cancel = self.cancel.clone();
        if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
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
    /// Whether a failed run may be tried again (false: the job fails at once, whatever
    /// retries it has left, as an HTTP call answered with a client error does).
    pub retryable: bool,
    /// How long the run was asked to wait before the next attempt (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
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
            retryable: true,
            retry_after: None,
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
            retryable: true,
            retry_after: None,
        }
    }

    /// A failed run that is not tried again, whatever retries its job has left.
    pub fn not_retried(error: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::failed(error)
        }
    }

    /// A run stopped because its job was cancelled.
    pub fn cancelled() -> Self {
        Self {
            outcome: AttemptOutcome::Cancelled,
            ..Self::failed("cancelled")
        }
    }
}

/// Runs the attempts of one kind of job.
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// The fields of the kind's spec.
    type Spec: Sync;

    /// The slot an attempt holds while it runs (see [`slots`]).
    fn slot(&self) -> Slot {
        Slot::Command
    }

    /// Runs `attempt` of a job of this kind. Never fails: what goes wrong is a failed run.
    async fn run(&self, spec: &Self::Spec, attempt: &AttemptContext) -> RunResult;
}

/// The runner of every kind, made once at start-up.
#[derive(Debug)]
pub struct Runners {
    shell: shell::ShellRunner,
    noop: noop::NoopRunner,
    http: http::HttpRunner,
    kafka: kafka::KafkaRunner,
}

/// A runner that cannot be made from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Shell(String),
    #[error("the HTTP client of `http` jobs: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the threads of `http` jobs' calls: {0}")]
    Threads(std::io::Error),
    #[error("the Kafka producer of `kafka` jobs: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl Runners {
    /// The runners `settings` configure (`runner.*`, `executor.max_output_bytes`), reading what
    /// they need of this process's environment now.
    ///
    /// # Errors
    /// [`RunnerError`] when a runner's client cannot be made, or commands cannot run as
    /// `runner.shell.user`.
    pub fn new(settings: &Settings) -> Result<Self, RunnerError> {
        let shell = &settings.runner.shell;
        let mut environment = shell::Environment::from_process(shell);
        match &shell.user {
            Some(user) => {
                environment =
                    environment.run_as(shell::RunAs::resolve(user).map_err(RunnerError::Shell)?);
            }
            None if nix::unistd::Uid::effective().is_root() && shell.enabled => {
                tracing::warn!(
                    "Kairos runs as root and `runner.shell.user` is unset: shell jobs run as \
                     root and can read Kairos's secrets; set `runner.shell.user`"
                );
            }
            None => {}
        }
        Ok(Self {
            shell: shell::ShellRunner::new(
                environment,
                shell.clone(),
                settings.executor.max_output_bytes,
                settings.executor.cancel_grace,
            ),
            noop: noop::NoopRunner,
            http: http::HttpRunner::new(&settings.runner.http)?,
            kafka: kafka::KafkaRunner::new(settings)?,
        })
    }

    /// The slot an attempt of `spec` holds while it runs.
    pub fn slot(&self, spec: &JobSpec) -> Slot {
        match spec {
            JobSpec::Shell(_) => self.shell.slot(),
            JobSpec::Noop => self.noop.slot(),
            JobSpec::Http(_) => self.http.slot(),
            JobSpec::Kafka(_) => self.kafka.slot(),
        }
    }

    /// Runs `attempt` of a job of `spec` with its kind's runner.
    pub async fn run(&self, spec: &JobSpec, attempt: &AttemptContext) -> RunResult {
        match spec {
            JobSpec::Shell(shell) => self.shell.run(shell, attempt).await,
            JobSpec::Noop => self.noop.run(&(), attempt).await,
            JobSpec::Http(http) => self.http.run(http, attempt).await,
            JobSpec::Kafka(kafka) => self.kafka.run(kafka, attempt).await,
        }
    }
}
