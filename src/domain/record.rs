//! The two records that cross Kafka: a dispatch (scanner to executors) and an attempt report
//! (executors to the result writer). Both are JSON, keyed by job id; their instants are
//! RFC 3339 text in UTC ([`super::timestamp`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Fire, JobSpec, JobStatus, NewJob, RetryPolicy};

/// What an executor needs to run a job, published on `kafka.topic.jobs`. Fields it does not
/// know are ignored, so that a process reads the records of a later release that adds one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    pub job_id: Uuid,
    /// Increases with every claim of the job; reports carry it back so that the result
    /// writer can ignore those of an older dispatch.
    pub epoch: i64,
    /// The number of the first attempt this dispatch runs (attempts already made + 1).
    pub attempt: i32,
    /// Attempts that failed so far (lost attempts excluded): retries left are
    /// `max_retries + 1 - failures`.
    pub failures: i32,
    /// What to run: `kind` and its fields, beside the others (`shell` when `kind` is
    /// absent, as in records written before kinds existed).
    #[serde(flatten)]
    pub spec: JobSpec,
    #[serde(with = "super::timestamp")]
    pub execute_at: DateTime<Utc>,
    pub max_retries: i32,
    pub timeout_secs: i32,
    /// When the job was created: its lateness counts from the later of this and its time
    /// (absent in records of releases before it).
    #[serde(default, with = "super::timestamp::option")]
    pub created_at: Option<DateTime<Utc>>,
    /// The job's own retry backoff (the configured one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryPolicy>,
    /// The schedule's fire the job was made for: its first attempt is claimed under the
    /// schedule's overlap rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire: Option<Fire>,
}

impl Dispatch {
    /// The first dispatch of `job`, created and claimed at `created_at` (epoch 1, attempt 1,
    /// nothing failed yet).
    pub fn first(job: NewJob, created_at: DateTime<Utc>) -> Self {
        Dispatch {
            job_id: job.id,
            epoch: 1,
            attempt: 1,
            failures: 0,
            spec: job.spec,
            execute_at: job.execute_at,
            max_retries: job.max_retries,
            timeout_secs: job.timeout_secs,
            created_at: Some(created_at),
            retry_backoff: job.retry_backoff,
            fire: job.fire,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptOutcome {
    /// Started, not finished.
    Running,
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit code, or the command could not be started.
    Failed,
    /// Killed, with its process group, when it ran past its timeout.
    TimedOut,
    /// Its executor or process died while it ran (recorded by recovery, never reported).
    Lost,
    /// Stopped because its job was cancelled.
    Cancelled,
}

impl AttemptOutcome {
    /// The spelling stored in `job_attempts.status` and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "RUNNING",
            AttemptOutcome::Succeeded => "SUCCEEDED",
            AttemptOutcome::Failed => "FAILED",
            AttemptOutcome::TimedOut => "TIMED_OUT",
            AttemptOutcome::Lost => "LOST",
            AttemptOutcome::Cancelled => "CANCELLED",
        }
    }

    /// Every outcome.
    pub const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Running,
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::TimedOut,
        AttemptOutcome::Lost,
        AttemptOutcome::Cancelled,
    ];

    /// Parses [`AttemptOutcome::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// A change in a job's run, published on `kafka.topic.updatedJobs`: an attempt started, an
/// attempt failed and will be retried, or the job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptReport {
    pub job_id: Uuid,
    pub epoch: i64,
    pub attempt: i32,
    /// The job's status after this change: `RUNNING`, `RETRYING`, `SUCCESS` or `FAILED`.
    pub status: JobStatus,
    pub outcome: AttemptOutcome,
    #[serde(with = "super::timestamp")]
    pub scheduled_at: DateTime<Utc>,
    #[serde(with = "super::timestamp")]
    pub started_at: DateTime<Utc>,
    #[serde(default, with = "super::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Why the attempt failed, in words (`exit code 3`, `timed out after 5 s`, …).
    pub error: Option<String>,
    /// With `RETRYING`: when the next attempt is due (its lease runs from then).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::timestamp::option"
    )]
    pub retry_at: Option<DateTime<Utc>>,
}
