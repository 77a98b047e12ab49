//! Rows as both stores read them, and the one mapping from them to the domain's types: a
//! kind, a status or an outcome that Kairos does not write is [`StoreError::Corrupt`] in
//! either store, never a silent default.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Attempt, StoreError};
use crate::domain::{
    AttemptOutcome, Dispatch, Fire, Job, JobSpec, JobStatus, Overlap, RetryPolicy, Schedule,
};

/// A job's row, its text columns not yet checked.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub name: Option<String>,
    pub kind: String,
    pub command: String,
    pub execute_at: DateTime<Utc>,
    /// As shown: `RUNNING` for a claimed run (see `kairos_shown_status`).
    pub status: String,
    pub max_retries: i32,
    pub timeout_secs: i32,
    pub metadata: serde_json::Value,
    pub attempts: i32,
    pub epoch: i64,
    pub exit_code: Option<i32>,
    pub last_output: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The fields of the kinds that keep them as JSON (`http`, `kafka`).
    pub spec: Option<serde_json::Value>,
    pub retry_backoff: Option<serde_json::Value>,
    pub rerun_of: Option<Uuid>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub schedule_id: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    pub cancelled_by: Option<String>,
}

impl JobRow {
    /// The job, as the API shows it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a kind or a status Kairos does not write.
    pub fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            id: self.id,
            name: self.name,
            spec: spec(&self.kind, self.command, self.spec)?,
            execute_at: self.execute_at,
            status: status(&self.status)?,
            max_retries: self.max_retries,
            timeout_secs: self.timeout_secs,
            metadata: self.metadata,
            attempts: self.attempts,
            epoch: self.epoch,
            exit_code: self.exit_code,
            last_output: self.last_output,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            retry_backoff: retry_backoff(self.retry_backoff)?,
            rerun_of: self.rerun_of,
            cancelled_at: self.cancelled_at,
            schedule_id: self.schedule_id,
            scheduled_for: self.scheduled_for,
            created_by: self.created_by,
            cancelled_by: self.cancelled_by,
        })
    }
}

/// The columns a dispatch is made of, its kind not yet checked.
#[derive(Debug, Clone)]
pub struct DispatchRow {
    pub id: Uuid,
    pub epoch: i64,
    pub attempts: i32,
    pub lost_attempts: i32,
    pub kind: String,
    pub command: String,
    pub execute_at: DateTime<Utc>,
    pub max_retries: i32,
    pub timeout_secs: i32,
    pub created_at: DateTime<Utc>,
    pub spec: Option<serde_json::Value>,
    pub retry_backoff: Option<serde_json::Value>,
    pub schedule_id: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub overlap: Option<String>,
}

impl DispatchRow {
    /// The dispatch of the job's current epoch: its next attempt is `attempts + 1`, and the
    /// attempts lost to crashes do not count as failures.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a kind Kairos does not write.
    pub fn into_dispatch(self) -> Result<Dispatch, StoreError> {
        Ok(Dispatch {
            job_id: self.id,
            epoch: self.epoch,
            attempt: self.attempts + 1,
            failures: self.attempts - self.lost_attempts,
            spec: spec(&self.kind, self.command, self.spec)?,
            execute_at: self.execute_at,
            max_retries: self.max_retries,
            timeout_secs: self.timeout_secs,
            created_at: Some(self.created_at),
            retry_backoff: retry_backoff(self.retry_backoff)?,
            fire: fire(self.schedule_id, self.scheduled_for, self.overlap)?,
        })
    }
}

/// The fire a job was made for, from its columns.
fn fire(
    schedule_id: Option<Uuid>,
    scheduled_for: Option<DateTime<Utc>>,
    overlap: Option<String>,
) -> Result<Option<Fire>, StoreError> {
    let (Some(schedule_id), Some(scheduled_for)) = (schedule_id, scheduled_for) else {
        return Ok(None);
    };
    let overlap = match overlap {
        None => Overlap::AllowAll,
        Some(text) => {
            Overlap::parse(&text).ok_or_else(|| StoreError::corrupt("jobs.overlap", text))?
        }
    };
    Ok(Some(Fire {
        schedule_id,
        scheduled_for,
        overlap,
    }))
}

/// An attempt's row (from the view `job_history`), its status not yet checked.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempt: i32,
    pub epoch: i64,
    pub status: String,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
}

impl AttemptRow {
    /// The attempt, as the API shows it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a status Kairos does not write.
    pub fn into_attempt(self) -> Result<Attempt, StoreError> {
        Ok(Attempt {
            attempt: self.attempt,
            epoch: self.epoch,
            status: AttemptOutcome::parse(&self.status)
                .ok_or_else(|| StoreError::corrupt("job_attempts.status", self.status))?,
            scheduled_at: self.scheduled_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            stdout: self.stdout,
            stderr: self.stderr,
            error: self.error,
        })
    }
}

fn spec(
    kind: &str,
    command: String,
    fields: Option<serde_json::Value>,
) -> Result<JobSpec, StoreError> {
    JobSpec::from_stored(kind, command, fields)
        .map_err(|problem| StoreError::corrupt("jobs.spec", problem))
}

fn retry_backoff(value: Option<serde_json::Value>) -> Result<Option<RetryPolicy>, StoreError> {
    value
        .map(|value| {
            serde_json::from_value(value.clone())
                .map_err(|_| StoreError::corrupt("jobs.retry_backoff", value.to_string()))
        })
        .transpose()
}

fn status(text: &str) -> Result<JobStatus, StoreError> {
    JobStatus::parse(text).ok_or_else(|| StoreError::corrupt("jobs.status", text))
}

/// A schedule's row, its text columns not yet checked.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub name: Option<String>,
    pub cron: Option<String>,
    pub every_ms: Option<i64>,
    pub timezone: String,
    pub job: serde_json::Value,
    pub overlap: String,
    pub catchup_window_secs: i32,
    pub jitter_secs: i32,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub paused: bool,
    pub pause_note: Option<String>,
    pub keep_last: i32,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub missed_fires: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

impl ScheduleRow {
    /// The schedule, as the API shows it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an overlap rule or a job template Kairos does not write.
    pub fn into_schedule(self) -> Result<Schedule, StoreError> {
        Ok(Schedule {
            id: self.id,
            name: self.name,
            cron: self.cron,
            every: self
                .every_ms
                .map(|ms| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            timezone: self.timezone,
            job: serde_json::from_value(self.job.clone())
                .map_err(|_| StoreError::corrupt("schedules.job", self.job.to_string()))?,
            overlap: Overlap::parse(&self.overlap)
                .ok_or_else(|| StoreError::corrupt("schedules.overlap", self.overlap))?,
            catchup_window_secs: self.catchup_window_secs,
            jitter_secs: self.jitter_secs,
            start_at: self.start_at,
            end_at: self.end_at,
            paused: self.paused,
            pause_note: self.pause_note,
            keep_last: self.keep_last,
            next_fire_at: self.next_fire_at,
            missed_fires: self.missed_fires,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
        })
    }
}
