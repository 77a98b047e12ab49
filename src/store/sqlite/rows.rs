//! How SQLite holds values (ids as UUID text, instants as INTEGER microseconds since the Unix
//! epoch, JSON as text), its rows read into the rows both stores share
//! ([`crate::store::rows`]), and its errors as [`StoreError`]s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, Row};
use uuid::Uuid;

use crate::domain::{Dispatch, JobStatus};
use crate::store::StoreError;
use crate::store::rows::{AttemptRow, DispatchRow, JobRow};

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match &error {
            rusqlite::Error::SqliteFailure(failure, _)
                if failure.code == ErrorCode::ConstraintViolation =>
            {
                StoreError::Refused(format!("SQLite: {error}"))
            }
            _ => StoreError::Unavailable(format!("SQLite: {error}")),
        }
    }
}

/// The statuses a job in flight may have.
pub const IN_FLIGHT: &str = "('DISPATCHED', 'RUNNING', 'RETRYING')";

/// The status a job shows: `RUNNING` while its run is claimed (it has a run lease and is not
/// final), whatever the row's status says until the attempt's first report; PostgreSQL's
/// `kairos_shown_status` (migration V8).
pub fn shown_status(status: &str, run_lease: &str) -> String {
    let finals: Vec<String> = JobStatus::ALL
        .iter()
        .filter(|status| status.is_final())
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!(
        "(CASE WHEN {run_lease} IS NOT NULL AND {status} NOT IN ({}) THEN 'RUNNING' ELSE {status} END)",
        finals.join(", ")
    )
}

/// A job's columns as the API shows it, and what its dispatch needs besides.
pub fn job_columns() -> String {
    format!(
        "id, name, kind, command, execute_at, {} AS status, max_retries, timeout_secs, \
         metadata, attempts, epoch, exit_code, last_output, last_error, created_at, \
         updated_at, started_at, finished_at, lost_attempts, spec, retry_backoff, rerun_of, \
         cancelled_at, schedule_id, scheduled_for, overlap, created_by, cancelled_by",
        shown_status("status", "run_lease_until")
    )
}

/// An attempt's columns, from the view `job_history`.
pub const ATTEMPT_COLUMNS: &str = "attempt, epoch, status, scheduled_at, started_at, \
     finished_at, exit_code, stdout, stderr, error";

pub fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

pub fn span(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

pub fn instant(column: &'static str, value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::corrupt(column, value.to_string()))
}

pub fn optional_instant(
    column: &'static str,
    value: Option<i64>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    value.map(|value| instant(column, value)).transpose()
}

pub fn uuid(column: &'static str, text: String) -> Result<Uuid, StoreError> {
    Uuid::parse_str(&text).map_err(|_| StoreError::corrupt(column, text))
}

fn optional_uuid(column: &'static str, text: Option<String>) -> Result<Option<Uuid>, StoreError> {
    text.map(|text| uuid(column, text)).transpose()
}

/// A column of JSON text, `NULL` as `None`.
fn optional_json(
    column: &'static str,
    text: Option<String>,
) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|text| serde_json::from_str(&text).map_err(|_| StoreError::corrupt(column, text)))
        .transpose()
}

/// A row of [`job_columns`].
pub fn job_row(row: &Row<'_>) -> Result<JobRow, StoreError> {
    let metadata: String = row.get("metadata")?;
    Ok(JobRow {
        id: uuid("jobs.id", row.get("id")?)?,
        name: row.get("name")?,
        kind: row.get("kind")?,
        command: row.get("command")?,
        execute_at: instant("jobs.execute_at", row.get("execute_at")?)?,
        status: row.get("status")?,
        max_retries: row.get("max_retries")?,
        timeout_secs: row.get("timeout_secs")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|_| StoreError::corrupt("jobs.metadata", metadata.clone()))?,
        attempts: row.get("attempts")?,
        epoch: row.get("epoch")?,
        exit_code: row.get("exit_code")?,
        last_output: row.get("last_output")?,
        last_error: row.get("last_error")?,
        created_at: instant("jobs.created_at", row.get("created_at")?)?,
        updated_at: instant("jobs.updated_at", row.get("updated_at")?)?,
        started_at: optional_instant("jobs.started_at", row.get("started_at")?)?,
        finished_at: optional_instant("jobs.finished_at", row.get("finished_at")?)?,
        spec: optional_json("jobs.spec", row.get("spec")?)?,
        retry_backoff: optional_json("jobs.retry_backoff", row.get("retry_backoff")?)?,
        rerun_of: optional_uuid("jobs.rerun_of", row.get("rerun_of")?)?,
        cancelled_at: optional_instant("jobs.cancelled_at", row.get("cancelled_at")?)?,
        created_by: row.get("created_by")?,
        cancelled_by: row.get("cancelled_by")?,
        schedule_id: optional_uuid("jobs.schedule_id", row.get("schedule_id")?)?,
        scheduled_for: optional_instant("jobs.scheduled_for", row.get("scheduled_for")?)?,
    })
}

/// The dispatch of a row of [`job_columns`].
pub fn dispatch_row(row: &Row<'_>) -> Result<DispatchRow, StoreError> {
    Ok(DispatchRow {
        id: uuid("jobs.id", row.get("id")?)?,
        epoch: row.get("epoch")?,
        attempts: row.get("attempts")?,
        lost_attempts: row.get("lost_attempts")?,
        kind: row.get("kind")?,
        command: row.get("command")?,
        execute_at: instant("jobs.execute_at", row.get("execute_at")?)?,
        max_retries: row.get("max_retries")?,
        timeout_secs: row.get("timeout_secs")?,
        created_at: instant("jobs.created_at", row.get("created_at")?)?,
        spec: optional_json("jobs.spec", row.get("spec")?)?,
        retry_backoff: optional_json("jobs.retry_backoff", row.get("retry_backoff")?)?,
        schedule_id: optional_uuid("jobs.schedule_id", row.get("schedule_id")?)?,
        scheduled_for: optional_instant("jobs.scheduled_for", row.get("scheduled_for")?)?,
        overlap: row.get("overlap")?,
    })
}

/// A row of [`ATTEMPT_COLUMNS`].
pub fn attempt_row(row: &Row<'_>) -> Result<AttemptRow, StoreError> {
    Ok(AttemptRow {
        attempt: row.get("attempt")?,
        epoch: row.get("epoch")?,
        status: row.get("status")?,
        scheduled_at: instant("job_attempts.scheduled_at", row.get("scheduled_at")?)?,
        started_at: instant("job_attempts.started_at", row.get("started_at")?)?,
        finished_at: optional_instant("job_attempts.finished_at", row.get("finished_at")?)?,
        exit_code: row.get("exit_code")?,
        stdout: row.get("stdout")?,
        stderr: row.get("stderr")?,
        error: row.get("error")?,
    })
}

/// The rows of `sql` (which returns [`job_columns`]) as dispatches.
pub fn dispatches(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Dispatch>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(dispatch_row(row)?.into_dispatch()?);
    }
    Ok(found)
}
