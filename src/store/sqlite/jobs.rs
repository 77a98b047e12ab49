//! Creating, reading and listing jobs: `store::postgres::jobs`, in SQLite.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::rows::{ATTEMPT_COLUMNS, attempt_row, dispatch_row, job_columns, job_row, micros, span};
use crate::domain::{Dispatch, Job, JobStatus, NewJob};
use crate::store::{Attempt, JobFilter, StoreError};

/// Stores `job` as `SCHEDULED`, or with a `claim` (instance, grace) already `DISPATCHED` under
/// epoch 1 with a lease until its time plus the grace; returns it and its dispatch.
pub(super) fn insert(
    connection: &Connection,
    job: &NewJob,
    claim: Option<(&str, Duration)>,
    now: DateTime<Utc>,
) -> Result<(Job, Dispatch), StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "INSERT INTO jobs (id, name, kind, command, execute_at, max_retries, timeout_secs, \
             metadata, created_at, updated_at, status, epoch, claimed_by, claimed_at, \
             lease_until, spec, retry_backoff, rerun_of, schedule_id, scheduled_for, overlap, \
             created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, \
             CASE WHEN ?10 IS NULL THEN 'SCHEDULED' ELSE 'DISPATCHED' END, \
             CASE WHEN ?10 IS NULL THEN 0 ELSE 1 END, ?10, \
             CASE WHEN ?10 IS NOT NULL THEN ?9 END, \
             CASE WHEN ?10 IS NOT NULL THEN max(?5, ?9) + ?11 END, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18) \
         RETURNING {}",
        job_columns()
    ))?;
    let (instance, grace) = claim.unzip();
    let (job, dispatch) = statement.query_row(
        params![
            job.id.to_string(),
            job.name,
            job.spec.kind().as_str(),
            job.spec.command(),
            micros(job.execute_at),
            job.max_retries,
            job.timeout_secs,
            job.metadata.to_string(),
            micros(now),
            instance,
            grace.map_or(0, span),
            job.spec.stored_fields().map(|fields| fields.to_string()),
            job.retry_backoff
                .as_ref()
                .and_then(|policy| serde_json::to_string(policy).ok()),
            job.rerun_of.map(|id| id.to_string()),
            job.fire.map(|fire| fire.schedule_id.to_string()),
            job.fire.map(|fire| micros(fire.scheduled_for)),
            job.fire.map(|fire| fire.overlap.as_str()),
            job.created_by,
        ],
        |row| Ok((job_row(row), dispatch_row(row))),
    )?;
    Ok((job?.into_job()?, dispatch?.into_dispatch()?))
}

/// Stores `jobs`, all or none; those due before `dispatch_before` claimed, as [`insert`]
/// does. Returns their dispatches.
pub(super) fn insert_many(
    connection: &mut Connection,
    jobs: &[NewJob],
    dispatch_before: DateTime<Utc>,
    instance: &str,
    grace: Duration,
) -> Result<Vec<Dispatch>, StoreError> {
    let transaction = connection.transaction()?;
    let now = Utc::now();
    let mut claimed = Vec::new();
    for job in jobs {
        if job.execute_at < dispatch_before {
            claimed.push(insert(&transaction, job, Some((instance, grace)), now)?.1);
        } else {
            insert(&transaction, job, None, now)?;
        }
    }
    transaction.commit()?;
    Ok(claimed)
}

/// The job `id` and its attempts, oldest first.
pub(super) fn get(
    connection: &Connection,
    id: Uuid,
) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
    let job = connection
        .prepare_cached(&format!("SELECT {} FROM jobs WHERE id = ?1", job_columns()))?
        .query_row([id.to_string()], |row| Ok(job_row(row)))
        .optional()?;
    let Some(job) = job else {
        return Ok(None);
    };
    let job = job?.into_job()?;
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM job_history WHERE job_id = ?1 ORDER BY attempt"
    ))?;
    let mut rows = statement.query([id.to_string()])?;
    let mut attempts = Vec::new();
    while let Some(row) = rows.next()? {
        attempts.push(attempt_row(row)?.into_attempt()?);
    }
    Ok(Some((job, attempts)))
}

/// Up to `limit` jobs, newest first, those `filter` lets through, after the job `after`.
pub(super) fn list(
    connection: &Connection,
    filter: &JobFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    // As PostgreSQL's: a creation time range is an id range. Ids are stored as lowercase
    // hyphenated text, which orders as their bytes do.
    let status = shown_as(filter.status);
    let (low, high) = filter.id_range(after);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {} FROM jobs WHERE {status} AND id < ?1 AND id >= ?4 \
             AND (?3 IS NULL OR schedule_id = ?3) \
             AND (?5 IS NULL OR name LIKE ?5 ESCAPE '\\') \
         ORDER BY id DESC LIMIT ?2",
        job_columns()
    ))?;
    let mut rows = statement.query(params![
        high.to_string(),
        limit,
        filter.schedule_id.map(|id| id.to_string()),
        low.to_string(),
        filter.name_pattern(),
    ])?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_row(row)?.into_job()?);
    }
    Ok(jobs)
}

/// The condition of the jobs showing `status` (all for `None`): as PostgreSQL's, a claimed
/// run shows `RUNNING` whatever its row's status.
fn shown_as(status: Option<JobStatus>) -> String {
    match status {
        None => "1".to_owned(),
        Some(JobStatus::Running) => "(status = 'RUNNING' OR (status = 'DISPATCHED' \
             AND run_lease_until IS NOT NULL))"
            .to_owned(),
        Some(JobStatus::Dispatched) => {
            "status = 'DISPATCHED' AND run_lease_until IS NULL".to_owned()
        }
        Some(other) => format!("status = '{}'", other.as_str()),
    }
}

/// How many jobs there are of each status, as shown, in the order of [`JobStatus::ALL`],
/// each counted up to `up_to`.
pub(super) fn count(
    connection: &Connection,
    up_to: i64,
) -> Result<Vec<(JobStatus, i64)>, StoreError> {
    let columns: Vec<String> = JobStatus::ALL
        .iter()
        .map(|status| {
            format!(
                "(SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {} LIMIT ?1))",
                shown_as(Some(*status))
            )
        })
        .collect();
    let mut statement = connection.prepare_cached(&format!("SELECT {}", columns.join(", ")))?;
    let counts = statement.query_row(params![up_to], |row| {
        JobStatus::ALL
            .iter()
            .enumerate()
            .map(|(column, status)| Ok((*status, row.get::<_, i64>(column)?.min(up_to))))
            .collect::<Result<Vec<_>, rusqlite::Error>>()
    })?;
    Ok(counts)
}
