//! The standalone store's statements. Each function is one transaction (or one statement)
//! and keeps the rule of its PostgreSQL twin in `store::postgres`, named in its comment.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::domain::{AttemptOutcome, AttemptReport, Dispatch, Job, JobKind, JobStatus, NewJob};
use crate::store::{Applied, Attempt, Heartbeats, Recovered, RunKey, StoreError};

const JOB_COLUMNS: &str = "id, name, kind, command, execute_at, status, max_retries, \
     timeout_secs, metadata, attempts, epoch, exit_code, last_output, last_error, created_at, \
     updated_at, started_at, finished_at, lost_attempts";

const IN_FLIGHT: &str = "('DISPATCHED', 'RUNNING', 'RETRYING')";

/// See `store::postgres::dispatch::LIVE_HOLDER_GRACES`.
const LIVE_HOLDER_GRACES: i64 = 10;

fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

fn span(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn instant(column: &'static str, value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value).ok_or(StoreError::Corrupt {
        column,
        value: value.to_string(),
    })
}

fn optional_instant(
    column: &'static str,
    value: Option<i64>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    value.map(|value| instant(column, value)).transpose()
}

fn uuid(column: &'static str, text: String) -> Result<Uuid, StoreError> {
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt {
        column,
        value: text,
    })
}

fn job_from_row(row: &Row<'_>) -> Result<Job, StoreError> {
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    let metadata: String = row.get("metadata")?;
    Ok(Job {
        id: uuid("jobs.id", row.get("id")?)?,
        name: row.get("name")?,
        kind: JobKind::parse(&kind).ok_or(StoreError::Corrupt {
            column: "jobs.kind",
            value: kind.clone(),
        })?,
        command: row.get("command")?,
        execute_at: instant("jobs.execute_at", row.get("execute_at")?)?,
        status: JobStatus::parse(&status).ok_or(StoreError::Corrupt {
            column: "jobs.status",
            value: status.clone(),
        })?,
        max_retries: row.get("max_retries")?,
        timeout_secs: row.get("timeout_secs")?,
        metadata: serde_json::from_str(&metadata).map_err(|_| StoreError::Corrupt {
            column: "jobs.metadata",
            value: metadata.clone(),
        })?,
        attempts: row.get("attempts")?,
        epoch: row.get("epoch")?,
        exit_code: row.get("exit_code")?,
        last_output: row.get("last_output")?,
        last_error: row.get("last_error")?,
        created_at: instant("jobs.created_at", row.get("created_at")?)?,
        updated_at: instant("jobs.updated_at", row.get("updated_at")?)?,
        started_at: optional_instant("jobs.started_at", row.get("started_at")?)?,
        finished_at: optional_instant("jobs.finished_at", row.get("finished_at")?)?,
    })
}

/// The dispatch of a job row (selected with [`JOB_COLUMNS`]).
fn dispatch_of(job: &Job, lost_attempts: i32) -> Dispatch {
    Dispatch {
        job_id: job.id,
        epoch: job.epoch,
        attempt: job.attempts + 1,
        failures: job.attempts - lost_attempts,
        kind: job.kind,
        command: job.command.clone(),
        execute_at: job.execute_at,
        max_retries: job.max_retries,
        timeout_secs: job.timeout_secs,
        created_at: Some(job.created_at),
    }
}

fn dispatch_from_row(row: &Row<'_>) -> Result<Dispatch, StoreError> {
    Ok(dispatch_of(&job_from_row(row)?, row.get("lost_attempts")?))
}

/// Rows of `sql` (which returns [`JOB_COLUMNS`]) as dispatches.
fn dispatches(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Dispatch>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(dispatch_from_row(row)?);
    }
    Ok(found)
}

/// Every job in flight gets an expired lease and no runner: the process that held them is
/// gone (the store's lock admits one process).
pub(super) fn expire_leases(
    connection: &Connection,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    connection.execute("DELETE FROM instances", [])?;
    Ok(connection.execute(
        &format!("UPDATE jobs SET lease_until = ?1, runner = NULL WHERE status IN {IN_FLIGHT}"),
        [micros(now)],
    )?)
}

/// `store::postgres::jobs::insert`: `SCHEDULED`, or with a `claim` (instance, grace)
/// already `DISPATCHED`.
pub(super) fn insert_job(
    connection: &Connection,
    job: &NewJob,
    claim: Option<(&str, Duration)>,
    now: DateTime<Utc>,
) -> Result<(Job, Dispatch), StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "INSERT INTO jobs (id, name, kind, command, execute_at, max_retries, timeout_secs, \
             metadata, created_at, updated_at, status, epoch, claimed_by, claimed_at, \
             lease_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, \
             CASE WHEN ?10 IS NULL THEN 'SCHEDULED' ELSE 'DISPATCHED' END, \
             CASE WHEN ?10 IS NULL THEN 0 ELSE 1 END, ?10, \
             CASE WHEN ?10 IS NOT NULL THEN ?9 END, \
             CASE WHEN ?10 IS NOT NULL THEN max(?5, ?9) + ?11 END) \
         RETURNING {JOB_COLUMNS}"
    ))?;
    let (instance, grace) = claim.unzip();
    let (job, lost) = statement.query_row(
        params![
            job.id.to_string(),
            job.name,
            job.kind.as_str(),
            job.command,
            micros(job.execute_at),
            job.max_retries,
            job.timeout_secs,
            job.metadata.to_string(),
            micros(now),
            instance,
            grace.map_or(0, span),
        ],
        |row| Ok((job_from_row(row), row.get::<_, i32>("lost_attempts")?)),
    )?;
    let job = job?;
    let dispatch = dispatch_of(&job, lost);
    Ok((job, dispatch))
}

/// `store::postgres::dispatch::insert_batch`: all or none.
pub(super) fn insert_batch(
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
            claimed.push(insert_job(&transaction, job, Some((instance, grace)), now)?.1);
        } else {
            insert_job(&transaction, job, None, now)?;
        }
    }
    transaction.commit()?;
    Ok(claimed)
}

/// `store::postgres::jobs::get`.
pub(super) fn get_job(
    connection: &Connection,
    id: Uuid,
) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
    let job = connection
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([id.to_string()], |row| Ok(job_from_row(row)))
        .optional()?
        .transpose()?;
    let Some(job) = job else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(
        "SELECT attempt, epoch, status, scheduled_at, started_at, finished_at, exit_code, \
             stdout, stderr, error \
         FROM job_attempts WHERE job_id = ?1 ORDER BY attempt",
    )?;
    let mut rows = statement.query([id.to_string()])?;
    let mut attempts = Vec::new();
    while let Some(row) = rows.next()? {
        attempts.push(Attempt {
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
        });
    }
    Ok(Some((job, attempts)))
}

/// `store::postgres::jobs::list`.
pub(super) fn list_jobs(
    connection: &Connection,
    status: Option<JobStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2) \
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let mut rows = statement.query(params![
        status.map(JobStatus::as_str),
        after.map(|id| id.to_string()),
        limit
    ])?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_from_row(row)?);
    }
    Ok(jobs)
}

/// `store::postgres::dispatch::claim_due`.
pub(super) fn claim_due(
    connection: &Connection,
    horizon: DateTime<Utc>,
    limit: i64,
    instance: &str,
    grace: Duration,
) -> Result<Vec<Dispatch>, StoreError> {
    dispatches(
        connection,
        &format!(
            "UPDATE jobs SET status = 'DISPATCHED', epoch = epoch + 1, claimed_by = ?3, \
                 claimed_at = ?4, updated_at = ?4, lease_until = max(execute_at, ?4) + ?5 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'SCHEDULED' AND execute_at < ?1 \
                 ORDER BY execute_at LIMIT ?2) \
             RETURNING {JOB_COLUMNS}"
        ),
        params![
            micros(horizon),
            limit,
            instance,
            micros(Utc::now()),
            span(grace)
        ],
    )
}

/// `store::postgres::dispatch::release`.
pub(super) fn release_claim(
    connection: &Connection,
    job_id: Uuid,
    epoch: i64,
) -> Result<(), StoreError> {
    connection.execute(
        "UPDATE jobs SET status = 'SCHEDULED', lease_until = NULL, updated_at = ?3 \
         WHERE id = ?1 AND epoch = ?2 AND status = 'DISPATCHED'",
        params![job_id.to_string(), epoch, micros(Utc::now())],
    )?;
    Ok(())
}

/// `store::postgres::dispatch::redispatch`.
pub(super) fn redispatch(
    connection: &Connection,
    run: RunKey,
    instance: &str,
    grace: Duration,
) -> Result<Option<Dispatch>, StoreError> {
    let found = dispatches(
        connection,
        &format!(
            "UPDATE jobs SET status = 'DISPATCHED', epoch = epoch + 1, claimed_by = ?4, \
                 runner = NULL, attempts = min(attempts, ?3 - 1), claimed_at = ?5, updated_at = ?5, \
                 lease_until = max(execute_at, ?5) + ?6 \
             WHERE id = ?1 AND epoch = ?2 AND status IN {IN_FLIGHT} \
                 AND (attempts < ?3 OR (attempts = ?3 AND runner = ?4)) \
             RETURNING {JOB_COLUMNS}"
        ),
        params![
            run.job_id.to_string(),
            run.epoch,
            run.attempt,
            instance,
            micros(Utc::now()),
            span(grace)
        ],
    )?;
    Ok(found.into_iter().next())
}

/// `store::postgres::dispatch::recover_expired`, with the same rules.
pub(super) fn recover_expired(
    connection: &mut Connection,
    limit: i64,
    instance: &str,
    grace: Duration,
    max_lost: i32,
    heartbeats: Heartbeats,
) -> Result<Recovered, StoreError> {
    let (check_heartbeats, written_before) = heartbeats.parameters();
    let written_before = written_before.map(micros);
    let transaction = connection.transaction()?;
    let now = micros(Utc::now());
    let grace = span(grace);
    let expired: Vec<(String, String, i32, i64, i32)> = {
        let mut statement = transaction.prepare_cached(&format!(
            "SELECT id, status, attempts, lease_until, lost_attempts FROM jobs \
             WHERE status IN {IN_FLIGHT} AND ( \
                 (lease_until < ?1 AND runner IS NULL) \
                 OR lease_until < ?1 - ?2 * {LIVE_HOLDER_GRACES} \
                 OR (?3 AND runner IS NOT NULL AND NOT EXISTS ( \
                     SELECT 1 FROM instances \
                     WHERE instances.id = jobs.runner AND instances.heartbeat_at > ?1 - ?2) \
                   AND (status <> 'RUNNING' OR (?5 IS NOT NULL AND NOT EXISTS ( \
                     SELECT 1 FROM instances \
                     WHERE instances.id = jobs.runner AND instances.heartbeat_at > ?5 - ?2))))) \
             ORDER BY lease_until LIMIT ?4"
        ))?;
        statement
            .query_map(
                params![now, grace, check_heartbeats, limit, written_before],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )?
            .collect::<Result<_, _>>()?
    };
    let mut recovered = Recovered::default();
    for (id, old_status, old_attempts, old_lease, lost) in expired {
        let was_running = old_status == JobStatus::Running.as_str();
        let gives_up = was_running && lost >= max_lost;
        let job = {
            let mut statement = transaction.prepare_cached(&format!(
                "UPDATE jobs SET lost_attempts = lost_attempts + ?2, \
                     status = CASE WHEN ?3 THEN 'FAILED' ELSE 'DISPATCHED' END, \
                     finished_at = CASE WHEN ?3 THEN ?4 END, \
                     last_error = CASE WHEN ?3 \
                         THEN 'lost ' || (lost_attempts + 1) || ' attempts to crashes' \
                         ELSE last_error END, \
                     lease_until = CASE WHEN ?3 THEN NULL ELSE max(execute_at, ?4) + ?5 END, \
                     epoch = epoch + 1, claimed_by = ?6, claimed_at = ?4, runner = NULL, \
                     updated_at = ?4 \
                 WHERE id = ?1 RETURNING {JOB_COLUMNS}"
            ))?;
            statement.query_row(
                params![id, i32::from(was_running), gives_up, now, grace, instance],
                |row| Ok((job_from_row(row), row.get::<_, i32>("lost_attempts")?)),
            )?
        };
        let (job, lost_now) = (job.0?, job.1);
        if was_running {
            recovered.lost_attempts += 1;
            transaction
                .prepare_cached(
                    "INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, \
                         started_at, finished_at, error) \
                     VALUES (?1, ?2, ?3, 'LOST', ?4, ?5, ?6, \
                         'lost: no result arrived by the lease; its executor or process died') \
                     ON CONFLICT (job_id, attempt) DO UPDATE SET status = 'LOST', \
                         finished_at = excluded.finished_at, error = excluded.error \
                     WHERE job_attempts.status = 'RUNNING'",
                )?
                .execute(params![
                    id,
                    old_attempts,
                    job.epoch - 1,
                    micros(job.execute_at),
                    old_lease - (i64::from(job.timeout_secs) * 1_000_000 + grace),
                    now,
                ])?;
        }
        if gives_up {
            recovered.failed += 1;
        } else {
            recovered.dispatches.push(dispatch_of(&job, lost_now));
        }
    }
    transaction.commit()?;
    Ok(recovered)
}

/// `store::postgres::dispatch::heartbeat`.
pub(super) fn heartbeat(connection: &Connection, instance: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )?
        .execute(params![instance, micros(Utc::now())])?;
    Ok(())
}

/// `store::postgres::dispatch::retire_instance`.
pub(super) fn retire_instance(
    connection: &Connection,
    instance: &str,
    grace: Duration,
) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    connection.execute(
        "UPDATE instances SET heartbeat_at = ?2 WHERE id = ?1",
        params![instance, now - span(grace)],
    )?;
    connection.execute(
        "DELETE FROM instances WHERE heartbeat_at < ?1",
        params![now - span(Duration::from_secs(3600))],
    )?;
    Ok(())
}

/// How far along an attempt a status is (`kairos_status_rank` in PostgreSQL).
const STATUS_RANK: &str = "CASE status WHEN 'RUNNING' THEN 1 WHEN 'RETRYING' THEN 2 \
     WHEN 'SUCCESS' THEN 3 WHEN 'FAILED' THEN 3 ELSE 0 END";

/// `store::postgres::reports::apply_reports`: one transaction, reports in arrival order.
pub(super) fn apply_reports(
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
        let moved_job = transaction
            .prepare_cached(&format!(
                "UPDATE jobs SET status = ?3, attempts = ?4, \
                     started_at = COALESCE(started_at, ?5), \
                     finished_at = CASE WHEN ?3 IN ('SUCCESS', 'FAILED') THEN ?6 END, \
                     exit_code = CASE WHEN ?7 THEN ?8 ELSE exit_code END, \
                     last_output = CASE WHEN ?7 THEN ?9 ELSE last_output END, \
                     last_error = CASE WHEN ?7 THEN ?10 ELSE last_error END, \
                     lease_until = CASE WHEN ?3 = 'RETRYING' THEN ?11 + ?12 \
                         WHEN ?3 IN ('SUCCESS', 'FAILED') THEN NULL ELSE lease_until END, \
                     runner = CASE WHEN ?3 IN ('SUCCESS', 'FAILED') THEN NULL ELSE runner END, \
                     updated_at = ?11 \
                 WHERE id = ?1 AND epoch = ?2 AND status NOT IN ('SUCCESS', 'FAILED') \
                   AND (attempts < ?4 OR (attempts = ?4 AND {STATUS_RANK} < ?13))"
            ))?
            .execute(params![
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
            ])?
            > 0;
        let moved_attempt = transaction
            .prepare_cached(
                "INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, \
                     started_at, finished_at, exit_code, stdout, stderr, error) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 \
                 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND epoch = ?3) \
                 ON CONFLICT (job_id, attempt) DO UPDATE SET \
                     epoch = excluded.epoch, status = excluded.status, \
                     started_at = excluded.started_at, finished_at = excluded.finished_at, \
                     exit_code = excluded.exit_code, stdout = excluded.stdout, \
                     stderr = excluded.stderr, error = excluded.error \
                 WHERE job_attempts.epoch < excluded.epoch \
                    OR (job_attempts.epoch = excluded.epoch AND job_attempts.status = 'RUNNING' \
                        AND excluded.status <> 'RUNNING')",
            )?
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

/// `store::postgres::run_ledger`'s hold.
pub(super) fn hold_run(
    connection: &Connection,
    run: RunKey,
    instance: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE jobs SET runner = ?3 \
             WHERE id = ?1 AND epoch = ?2 AND status = 'DISPATCHED' AND runner IS NULL",
        )?
        .execute(params![run.job_id.to_string(), run.epoch, instance])?;
    Ok(())
}

/// `store::postgres::run_ledger`'s claim: true if the run is this caller's to start.
pub(super) fn claim_run(
    connection: &Connection,
    run: RunKey,
    lease: Duration,
    instance: &str,
) -> Result<bool, StoreError> {
    let now = micros(Utc::now());
    let claimed = connection
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'RUNNING', attempts = ?3, runner = ?4, \
                 lease_until = ?5 + ?6, updated_at = ?5 \
             WHERE id = ?1 AND epoch = ?2 AND attempts < ?3 AND status IN {IN_FLIGHT}"
        ))?
        .execute(params![
            run.job_id.to_string(),
            run.epoch,
            run.attempt,
            instance,
            now,
            span(lease)
        ])?;
    Ok(claimed == 1)
}
