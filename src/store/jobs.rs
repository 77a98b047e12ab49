//! The `jobs` and `job_attempts` tables: every statement that touches them.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AttemptOutcome, AttemptReport, Job, JobKind, JobStatus, NewJob};

pub(super) const JOB_COLUMNS: &str = "id, name, kind, command, execute_at, status, max_retries, timeout_secs, \
     metadata, attempts, epoch, exit_code, last_output, last_error, created_at, updated_at, \
     started_at, finished_at";

/// One attempt of a job, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
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

/// What applying a batch of reports did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reports that moved a job or an attempt forward.
    pub applied: u64,
    /// Reports of an older dispatch, or repeating or going behind what is stored.
    pub ignored: u64,
}

pub(super) fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Job {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: {
            let kind: String = row.try_get("kind")?;
            JobKind::parse(&kind).ok_or(StoreError::Corrupt {
                column: "jobs.kind",
                value: kind,
            })?
        },
        command: row.try_get("command")?,
        execute_at: row.try_get("execute_at")?,
        status: JobStatus::parse(&status).ok_or(StoreError::Corrupt {
            column: "jobs.status",
            value: status,
        })?,
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
    })
}

/// Stores a new job as `SCHEDULED`.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses the row.
pub async fn insert(pool: &Pool, job: &NewJob) -> Result<Job, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO jobs (id, name, command, execute_at, max_retries, timeout_secs, metadata, \
                 kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {JOB_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &job.id,
                &job.name,
                &job.command,
                &job.execute_at,
                &job.max_retries,
                &job.timeout_secs,
                &job.metadata,
                &job.kind.as_str(),
            ],
        )
        .await?;
    job_from_row(&row)
}

/// The job `id` and its attempts, oldest first; `None` when there is no such job.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let job = job_from_row(&row)?;
    let rows = client
        .query(
            "SELECT attempt, epoch, status, scheduled_at, started_at, finished_at, exit_code, \
                 stdout, stderr, error \
             FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
            &[&id],
        )
        .await?;
    let attempts = rows
        .iter()
        .map(|row| {
            Ok(Attempt {
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
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some((job, attempts)))
}

/// Up to `limit` jobs, newest first, optionally of one status, starting after the job
/// `after` (keyset pagination: the cursor is the last id of the previous page).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn list(
    pool: &Pool,
    status: Option<JobStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let client = pool.get().await?;
    let status = status.map(JobStatus::as_str);
    // UUIDv7 ids grow with creation time: ordering by id is ordering by age.
    let statement = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .await?;
    let rows = client.query(&statement, &[&status, &after, &limit]).await?;
    rows.iter().map(job_from_row).collect()
}

/// Applies attempt reports in one transaction. A report moves its job only if it carries the
/// job's current epoch and lies ahead of what is stored (a later attempt, or a later status of
/// the same attempt), and never moves a finished job: so a repeated, reordered or stale report
/// changes nothing.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; nothing is applied then.
///
/// A `RETRYING` job gets a lease of `retry_lease` for its next attempt to start; a final one
/// loses its lease.
pub async fn apply_reports(
    pool: &Pool,
    reports: &[AttemptReport],
    retry_lease: std::time::Duration,
) -> Result<Applied, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let update_job = transaction
        .prepare_cached(
            "UPDATE jobs SET status = $3::text, attempts = $4::integer, \
                 started_at = COALESCE(started_at, $5::timestamptz), \
                 finished_at = CASE WHEN $3 IN ('SUCCESS', 'FAILED') THEN $6::timestamptz END, \
                 exit_code = CASE WHEN $7::boolean THEN $8::integer ELSE exit_code END, \
                 last_output = CASE WHEN $7 THEN $9::text ELSE last_output END, \
                 last_error = CASE WHEN $7 THEN $10::text ELSE last_error END, \
                 lease_until = CASE WHEN $3 = 'RETRYING' \
                     THEN now() + make_interval(secs => $11::double precision) \
                     WHEN $3 IN ('SUCCESS', 'FAILED') THEN NULL ELSE lease_until END, \
                 updated_at = now() \
             WHERE id = $1 AND epoch = $2 AND status NOT IN ('SUCCESS', 'FAILED') \
               AND (attempts < $4 OR (attempts = $4 \
                    AND kairos_status_rank(status) < kairos_status_rank($3)))",
        )
        .await?;
    let upsert_attempt = transaction
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, started_at, \
                 finished_at, exit_code, stdout, stderr, error) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND epoch = $3) \
             ON CONFLICT (job_id, attempt) DO UPDATE SET \
                 epoch = EXCLUDED.epoch, status = EXCLUDED.status, \
                 started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, \
                 exit_code = EXCLUDED.exit_code, stdout = EXCLUDED.stdout, \
                 stderr = EXCLUDED.stderr, error = EXCLUDED.error \
             WHERE job_attempts.epoch < EXCLUDED.epoch \
                OR (job_attempts.epoch = EXCLUDED.epoch AND job_attempts.status = 'RUNNING' \
                    AND EXCLUDED.status <> 'RUNNING')",
        )
        .await?;

    let mut outcome = Applied::default();
    for report in reports {
        let finished = report.outcome != AttemptOutcome::Running;
        let last_output = report.stdout.as_deref();
        // Why the attempt failed; stderr stays in the attempt's row.
        let last_error = report.error.as_deref();
        let moved_job = transaction
            .execute(
                &update_job,
                &[
                    &report.job_id,
                    &report.epoch,
                    &report.status.as_str(),
                    &report.attempt,
                    &report.started_at,
                    &report.finished_at,
                    &finished,
                    &report.exit_code,
                    &last_output,
                    &last_error,
                    &retry_lease.as_secs_f64(),
                ],
            )
            .await?;
        let moved_attempt = transaction
            .execute(
                &upsert_attempt,
                &[
                    &report.job_id,
                    &report.attempt,
                    &report.epoch,
                    &report.outcome.as_str(),
                    &report.scheduled_at,
                    &report.started_at,
                    &report.finished_at,
                    &report.exit_code,
                    &report.stdout,
                    &report.stderr,
                    &report.error,
                ],
            )
            .await?;
        if moved_job + moved_attempt > 0 {
            outcome.applied += 1;
        } else {
            outcome.ignored += 1;
        }
    }
    transaction.commit().await?;
    Ok(outcome)
}
