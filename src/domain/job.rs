//! A job as people create and read it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Fire, JobSpec, RetryPolicy};

/// Where a job is in its life. `docs/state-machine.md` draws the transitions.
///
/// `SCHEDULED → RUNNING → SUCCESS`, or `FAILED` once the retries are used up, as the seed
/// describes; `DISPATCHED` (claimed and handed to an executor, waiting for its time) and
/// `RETRYING` (an attempt failed, the next waits for its backoff) show what happens between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Scheduled,
    Dispatched,
    Running,
    Retrying,
    Success,
    Failed,
    /// Cancelled through the API: it never runs again, and a command it was running is
    /// stopped.
    Cancelled,
    /// A schedule's fire that did not run because an earlier fire's job had not ended (its
    /// schedule's `overlap`).
    Skipped,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Scheduled,
        JobStatus::Dispatched,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Skipped,
    ];

    /// The spelling stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scheduled => "SCHEDULED",
            JobStatus::Dispatched => "DISPATCHED",
            JobStatus::Running => "RUNNING",
            JobStatus::Retrying => "RETRYING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Skipped => "SKIPPED",
        }
    }

    /// Parses [`JobStatus::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// How far along an attempt the status is: a report moves a job only to a later attempt,
    /// or to a higher rank within the same attempt. The stores' statements take the order
    /// from here ([`JobStatus::rank_sql`]).
    pub fn rank(self) -> i32 {
        match self {
            JobStatus::Scheduled | JobStatus::Dispatched => 0,
            JobStatus::Running => 1,
            JobStatus::Retrying => 2,
            JobStatus::Success | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Skipped => 3,
        }
    }

    /// [`JobStatus::rank`] of the status in `column`, as an SQL expression both stores run.
    pub fn rank_sql(column: &str) -> String {
        let arms: String = Self::ALL
            .iter()
            .map(|status| format!("WHEN '{}' THEN {} ", status.as_str(), status.rank()))
            .collect();
        format!("(CASE {column} {arms}END)")
    }

    /// `SUCCESS`, `FAILED`, `CANCELLED` and `SKIPPED` end a job: nothing moves it on.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Skipped
        )
    }

    /// Whether an attempt's report of this status ends the job with the attempt's own result
    /// (`SUCCESS` or `FAILED`), which the job's row then holds. A `CANCELLED` report comes
    /// after the job was ended by its cancel.
    pub fn ends_by_result(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Failed)
    }

    /// The final statuses as an SQL list (`'SUCCESS', 'FAILED', 'CANCELLED'`), for the stores'
    /// statements.
    pub fn finals_sql() -> String {
        Self::ALL
            .iter()
            .filter(|status| status.is_final())
            .map(|status| format!("'{}'", status.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The kinds of job: what [`super::JobSpec`]'s variants are called.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Shell,
    Noop,
    Http,
    Kafka,
}

impl JobKind {
    /// The spelling stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Shell => "shell",
            JobKind::Noop => "noop",
            JobKind::Http => "http",
            JobKind::Kafka => "kafka",
        }
    }

    /// Every kind.
    pub const ALL: [JobKind; 4] = [JobKind::Shell, JobKind::Noop, JobKind::Http, JobKind::Kafka];

    /// Parses [`JobKind::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A job to store, checked by the API.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub name: Option<String>,
    pub spec: JobSpec,
    pub execute_at: DateTime<Utc>,
    pub max_retries: i32,
    pub timeout_secs: i32,
    pub metadata: serde_json::Value,
    /// The job's own retry backoff (the configured one when `None`).
    pub retry_backoff: Option<RetryPolicy>,
    /// The job this one re-runs.
    pub rerun_of: Option<Uuid>,
    /// The schedule's fire this job was made for.
    pub fire: Option<Fire>,
    /// The name of the API token that created it (or its schedule).
    pub created_by: Option<String>,
}

/// A stored job, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub name: Option<String>,
    /// Shown as `kind` and the kind's fields.
    #[serde(flatten)]
    pub spec: JobSpec,
    pub execute_at: DateTime<Utc>,
    pub status: JobStatus,
    pub max_retries: i32,
    pub timeout_secs: i32,
    pub metadata: serde_json::Value,
    /// The job's own retry backoff, when it has one.
    pub retry_backoff: Option<RetryPolicy>,
    /// The job this one re-runs.
    pub rerun_of: Option<Uuid>,
    /// Attempts started so far.
    pub attempts: i32,
    /// The current dispatch; results of older dispatches are ignored.
    pub epoch: i64,
    pub exit_code: Option<i32>,
    pub last_output: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The schedule whose fire made this job, and the fire's nominal time.
    pub schedule_id: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The names of the API tokens that created it (or its schedule) and cancelled it.
    pub created_by: Option<String>,
    pub cancelled_by: Option<String>,
}
