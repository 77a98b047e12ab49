//! Writing attempt reports: `store::postgres::reports`, in SQLite, one report at a time in
//! arrival order within one transaction, by the same rules (see there): a report moves its job
//! only under the job's current epoch and only forward, never moves a final job, and an attempt
//! that ended its job at once keeps its result in the job's row alone.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use rusqlite::{Connection, params};

use super::rows::{micros, span};
use crate::domain::{AttemptOutcome, AttemptReport, JobStatus};
use crate::store::{Applied, StoreError};

/// PostgreSQL's `MOVE_JOBS` for one report.
static MOVE_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = ?3, attempts = ?4, \
             started_at = COALESCE(started_at, ?5), \
             finished_at = CASE WHEN ?3 IN ('SUCCESS', 'FAILED') THEN ?6 END, \
             exit_code = CASE WHEN ?7 THEN ?8 ELSE exit_code END, \
             last_output = CASE WHEN ?7 THEN ?9 ELSE last_output END, \
             last_error = CASE WHEN ?7 THEN ?10 ELSE last_error END, \
             last_stderr = CASE WHEN ?7 THEN ?14 ELSE last_stderr END, \
             last_outcome = CASE WHEN ?7 THEN ?15 ELSE last_outcome END, \
             lease_until = CASE WHEN ?3 = 'RETRYING' THEN max(?11, COALESCE(?16, ?11)) + ?12 \
                 WHEN ?3 IN ('SUCCESS', 'FAILED') THEN NULL \
                 ELSE COALESCE(run_lease_until, lease_until) END, \
             run_lease_until = CASE WHEN ?3 = 'RUNNING' \
                 THEN COALESCE(run_lease_until, lease_until) END, \
             runner = CASE WHEN ?3 IN ('SUCCESS', 'FAILED') THEN NULL ELSE runner END, \
             updated_at = ?11 \
         WHERE id = ?1 AND epoch = ?2 AND status NOT IN ({}) \
           AND (attempts < ?4 OR (attempts = ?4 AND {} < ?13))",
        JobStatus::finals_sql(),
        JobStatus::rank_sql("status")
    )
});

/// PostgreSQL's `UPSERT_ATTEMPTS` for one report (`?12`: the report ends its job).
const UPSERT_ATTEMPT: &str = "\
    INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, started_at, \
        finished_at, exit_code, stdout, stderr, error) \
    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 \
    WHERE (?2 <> 1 OR NOT ?12 OR EXISTS (SELECT 1 FROM job_attempts a \
               WHERE a.job_id = ?1 AND a.attempt = 1)) \
      AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = ?1 AND jobs.epoch = ?3 \
        AND (?2 <> 1 OR NOT (jobs.attempts = 1 AND jobs.status IN ('SUCCESS', 'FAILED')) \
             OR EXISTS (SELECT 1 FROM job_attempts a WHERE a.job_id = ?1 AND a.attempt = 1))) \
    ON CONFLICT (job_id, attempt) DO UPDATE SET \
        epoch = excluded.epoch, status = excluded.status, \
        started_at = excluded.started_at, finished_at = excluded.finished_at, \
        exit_code = excluded.exit_code, stdout = excluded.stdout, \
        stderr = excluded.stderr, error = excluded.error \
    WHERE job_attempts.epoch < excluded.epoch \
       OR (job_attempts.epoch = excluded.epoch AND job_attempts.status = 'RUNNING' \
           AND excluded.status <> 'RUNNING')";

/// Applies `reports` in one transaction, in arrival order.
pub(super) fn apply(
    connection: &mut Connection,
    reports: &[AttemptReport],
    retry_lease: Duration,
) -> Result<Applied, StoreError> {
    let transaction = connection.transaction()?;
    let now = micros(Utc::now());
    let mut outcome = Applied::default();
    for report in reports {
        let id = report.job_id.to_string();
        let finished = report.outcome != AttemptOutcome::Running;
        let moved_job = transaction.prepare_cached(&MOVE_JOB)?.execute(params![
            id,
            report.epoch,
            report.status.as_str(),
            report.attempt,
            micros(report.started_at),
            report.finished_at.map(micros),
            finished,
            report.exit_code,
            report.stdout,
            report.error,
            now,
            span(retry_lease),
            report.status.rank(),
            report.stderr,
            report.outcome.as_str(),
            report.retry_at.map(micros),
        ])? > 0;
        let moved_attempt = transaction
            .prepare_cached(UPSERT_ATTEMPT)?
            .execute(params![
                id,
                report.attempt,
                report.epoch,
                report.outcome.as_str(),
                micros(report.scheduled_at),
                micros(report.started_at),
                report.finished_at.map(micros),
                report.exit_code,
                report.stdout,
                report.stderr,
                report.error,
                report.status.ends_by_result(),
            ])?
            > 0;
        if moved_job || moved_attempt {
            outcome.applied += 1;
        } else {
            outcome.ignored += 1;
        }
    }
    transaction.commit()?;
    Ok(outcome)
}
