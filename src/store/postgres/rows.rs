//! The columns PostgreSQL's statements return, read into the rows both stores share
//! ([`crate::store::rows`]).

use tokio_postgres::Row;

use crate::store::StoreError;
use crate::store::rows::{AttemptRow, DispatchRow, JobRow};

/// A job's columns as the API shows it: a job whose run is claimed shows `RUNNING`
/// (migration V8).
pub const JOB_COLUMNS: &str = "id, name, kind, command, execute_at, \
     kairos_shown_status(status, run_lease_until) AS status, max_retries, timeout_secs, \
     metadata, attempts, epoch, exit_code, last_output, last_error, created_at, updated_at, \
     started_at, finished_at, spec, retry_backoff, rerun_of, cancelled_at, schedule_id, \
     scheduled_for, overlap, created_by, cancelled_by";

/// The columns of a dispatch, qualified for statements that join `jobs` to another table.
pub const DISPATCH_COLUMNS: &str = "jobs.id, jobs.epoch, jobs.attempts, jobs.lost_attempts, \
     jobs.kind, jobs.command, jobs.execute_at, jobs.max_retries, jobs.timeout_secs, \
     jobs.created_at, jobs.spec, jobs.retry_backoff, jobs.schedule_id, jobs.scheduled_for, \
     jobs.overlap";

/// An attempt's columns, from the view `job_history`.
pub const ATTEMPT_COLUMNS: &str = "attempt, epoch, status, scheduled_at, started_at, \
     finished_at, exit_code, stdout, stderr, error";

/// A row of [`JOB_COLUMNS`].
pub fn job_row(row: &Row) -> Result<JobRow, StoreError> {
    Ok(JobRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        command: row.try_get("command")?,
        execute_at: row.try_get("execute_at")?,
        status: row.try_get("status")?,
        max_retries: row.try_get("max_retries")?,
        timeout_secs: row.try_get("timeout_secs")?,
        metadata: row.try_get("metadata")?,
        attempts: row.try_get("attempts")?,
        epoch: row.try_get("epoch")?,
        exit_code: row.try_get("exit_code")?,
        last_output: row.try_get("last_output")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        spec: row.try_get("spec")?,
        retry_backoff: row.try_get("retry_backoff")?,
        rerun_of: row.try_get("rerun_of")?,
        cancelled_at: row.try_get("cancelled_at")?,
        created_by: row.try_get("created_by")?,
        cancelled_by: row.try_get("cancelled_by")?,
        schedule_id: row.try_get("schedule_id")?,
        scheduled_for: row.try_get("scheduled_for")?,
    })
}

/// A row holding [`DISPATCH_COLUMNS`].
pub fn dispatch_row(row: &Row) -> Result<DispatchRow, StoreError> {
    Ok(DispatchRow {
        id: row.try_get("id")?,
        epoch: row.try_get("epoch")?,
        attempts: row.try_get("attempts")?,
        lost_attempts: row.try_get("lost_attempts")?,
        kind: row.try_get("kind")?,
        command: row.try_get("command")?,
        execute_at: row.try_get("execute_at")?,
        max_retries: row.try_get("max_retries")?,
        timeout_secs: row.try_get("timeout_secs")?,
        created_at: row.try_get("created_at")?,
        spec: row.try_get("spec")?,
        retry_backoff: row.try_get("retry_backoff")?,
        schedule_id: row.try_get("schedule_id")?,
        scheduled_for: row.try_get("scheduled_for")?,
        overlap: row.try_get("overlap")?,
    })
}

/// A row of [`ATTEMPT_COLUMNS`].
pub fn attempt_row(row: &Row) -> Result<AttemptRow, StoreError> {
    Ok(AttemptRow {
        attempt: row.try_get("attempt")?,
        epoch: row.try_get("epoch")?,
        status: row.try_get("status")?,
        scheduled_at: row.try_get("scheduled_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        exit_code: row.try_get("exit_code")?,
        stdout: row.try_get("stdout")?,
        stderr: row.try_get("stderr")?,
        error: row.try_get("error")?,
    })
}
