//! Writing attempt reports: the result writer's statements.
//!
//! A batch is written in one transaction, in **rounds**: a round holds at most one report per
//! job (each job's next report, in the order the reports arrived), and is applied with two
//! set statements, one moving the jobs and one upserting the attempts. A batch of N reports
//! over J jobs costs 2 × (the most reports any one job has) statements, not 2 × N.
//!
//! Before that, a report that a later report of the same attempt in the batch moves past
//! (`RUNNING`, then `SUCCESS`) is dropped: the later one alone leaves the same rows, so a job
//! that starts and ends within one batch costs one round, not two. The dropped report counts
//! as applied or ignored with the one that superseded it.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::domain::{AttemptOutcome, AttemptReport, JobStatus};
use crate::store::{Applied, StoreError};
use rounds::{rounds, supersede};

mod rounds;

/// A report moves its job only if it carries the job's current epoch and lies ahead of what
/// is stored (a later attempt, or a later status of the same attempt), and never moves a
/// finished job. A claimed attempt is stored `DISPATCHED` until its first report (see
/// `run_claims`), so every report of it moves the job. A `RUNNING` job's lease becomes its
/// run lease; a `RETRYING` job gets a lease for its next attempt, not yet claimed (from the
/// attempt's time, when the report gives it); a final one loses both.
///
/// The round drives the join: each of its jobs is looked up by id, whatever the statistics
/// say of the statuses (see `run_claims`).
pub static MOVE_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = r.status, attempts = r.attempt, \
        started_at = COALESCE(jobs.started_at, r.started_at), \
        finished_at = CASE WHEN r.status IN ('SUCCESS', 'FAILED') THEN r.finished_at END, \
        exit_code = CASE WHEN r.finished THEN r.exit_code ELSE jobs.exit_code END, \
        last_output = CASE WHEN r.finished THEN r.stdout ELSE jobs.last_output END, \
        last_error = CASE WHEN r.finished THEN r.error ELSE jobs.last_error END, \
        last_stderr = CASE WHEN r.finished THEN r.stderr ELSE jobs.last_stderr END, \
        last_outcome = CASE WHEN r.finished THEN r.outcome ELSE jobs.last_outcome END, \
        lease_until = CASE WHEN r.status = 'RETRYING' \
                THEN GREATEST(r.retry_at, now()) + make_interval(secs => $11) \
            WHEN r.status IN ('SUCCESS', 'FAILED') THEN NULL \
            ELSE COALESCE(jobs.run_lease_until, jobs.lease_until) END, \
        run_lease_until = CASE WHEN r.status = 'RUNNING' \
            THEN COALESCE(jobs.run_lease_until, jobs.lease_until) END, \
        runner = CASE WHEN r.status IN ('SUCCESS', 'FAILED') THEN NULL ELSE jobs.runner END, \
        updated_at = now() \
    FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::timestamptz[], \
        $6::timestamptz[], $7::bool[], $8::int4[], $9::text[], $10::text[], $12::text[], \
        $13::text[], $14::int4[], $15::timestamptz[]) \
        AS r(id, epoch, status, attempt, started_at, finished_at, finished, exit_code, stdout, error, \
             stderr, outcome, rank, retry_at) \
    WHERE jobs.id = r.id AND jobs.epoch = r.epoch \
      AND jobs.status NOT IN ({}) \
      AND (jobs.attempts < r.attempt OR (jobs.attempts = r.attempt \
           AND {} < r.rank)) \
    RETURNING jobs.id",
        JobStatus::finals_sql(),
        JobStatus::rank_sql("jobs.status")
    )
});

/// Locks the jobs of a batch, in id order.
const LOCK_JOBS: &str = "SELECT 1 FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// An attempt's row is written only under the job's current epoch, and a finished attempt is
/// never changed again (nor set back to `RUNNING`). A job that ended with its first attempt
/// and has no row for it keeps that attempt in its own row (migration V9, the view
/// `job_history`): no report of it makes a row then, not even a late `RUNNING`. The jobs
/// moved by the round are already moved when this runs. (The first condition, on the report
/// alone, spares the job's lookup for the common case: a first attempt's result that ends
/// the job.)
const UPSERT_ATTEMPTS: &str = "\
    INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, started_at, \
        finished_at, exit_code, stdout, stderr, error) \
    SELECT r.job_id, r.attempt, r.epoch, r.status, r.scheduled_at, r.started_at, r.finished_at, \
        r.exit_code, r.stdout, r.stderr, r.error \
    FROM UNNEST($1::uuid[], $2::int4[], $3::int8[], $4::text[], $5::timestamptz[], \
        $6::timestamptz[], $7::timestamptz[], $8::int4[], $9::text[], $10::text[], $11::text[], \
        $12::bool[]) \
        AS r(job_id, attempt, epoch, status, scheduled_at, started_at, finished_at, exit_code, \
             stdout, stderr, error, ends_job) \
    WHERE (r.attempt <> 1 OR NOT r.ends_job OR EXISTS (SELECT 1 FROM job_attempts a \
               WHERE a.job_id = r.job_id AND a.attempt = 1)) \
      AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = r.job_id AND jobs.epoch = r.epoch \
        AND (r.attempt <> 1 OR NOT (jobs.attempts = 1 AND jobs.status IN ('SUCCESS', 'FAILED')) \
             OR EXISTS (SELECT 1 FROM job_attempts a WHERE a.job_id = r.job_id AND a.attempt = 1))) \
    ON CONFLICT (job_id, attempt) DO UPDATE SET \
        epoch = EXCLUDED.epoch, status = EXCLUDED.status, \
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, \
        exit_code = EXCLUDED.exit_code, stdout = EXCLUDED.stdout, \
        stderr = EXCLUDED.stderr, error = EXCLUDED.error \
    WHERE job_attempts.epoch < EXCLUDED.epoch \
       OR (job_attempts.epoch = EXCLUDED.epoch AND job_attempts.status = 'RUNNING' \
           AND EXCLUDED.status <> 'RUNNING') \
    RETURNING job_id";

/// Whether any of the jobs has a row for its first attempt: asked instead of upserting a
/// round whose every report ends its job at its first attempt (a burst's results, the
/// common round), which would make no row unless one exists already.
const HAS_FIRST_ATTEMPT_ROW: &str = "\
    SELECT EXISTS (SELECT 1 FROM job_attempts WHERE job_id = ANY($1) AND attempt = 1)";

/// Transactions a batch is split into, written at once: the result writer's pool holds as
/// many connections. One transaction at a time left a core idle while the writer caught up
/// after a burst.
pub(super) const WRITERS: usize = 2;

/// Applies `reports` in [`WRITERS`] concurrent transactions, each job's reports in the same
/// one and in arrival order, so that a repeated, reordered or stale report changes nothing.
/// The transactions hold disjoint sets of jobs, so they neither wait for nor deadlock with
/// each other.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; the reports of some jobs may be
/// applied then, and applying them again changes nothing.
pub async fn apply_reports(
    pool: &Pool,
    reports: &[AttemptReport],
    retry_lease: std::time::Duration,
) -> Result<Applied, StoreError> {
    let mut parts: [Vec<&AttemptReport>; WRITERS] = Default::default();
    for report in reports {
        let (_, low) = report.job_id.as_u64_pair();
        parts[usize::try_from(low % WRITERS as u64).unwrap_or_default()].push(report);
    }
    let written = futures_util::future::try_join_all(
        parts
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| apply_in_transaction(pool, part, retry_lease)),
    )
    .await?;
    Ok(written
        .into_iter()
        .fold(Applied::default(), |total, part| Applied {
            applied: total.applied + part.applied,
            ignored: total.ignored + part.ignored,
        }))
}

/// Applies `reports` in one transaction, in arrival order per job.
async fn apply_in_transaction(
    pool: &Pool,
    reports: &[&AttemptReport],
    retry_lease: std::time::Duration,
) -> Result<Applied, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let kept = supersede(reports);
    let rounds = rounds(&kept);
    // Row locks are taken in id order, so that a concurrent multi-row update (a batch of run
    // claims or holds, whose keys are sorted by id too) cannot deadlock with this transaction.
    // One round's statement takes them in that order by itself: its rows are sorted by id,
    // and every plan of the join (either side driving, hashed or merged) then yields them in
    // that order. Several rounds would take them round by round, so the batch's jobs are
    // locked first; that costs each row a lock record of its own, which a batch of distinct
    // jobs (the usual one) is spared.
    if rounds.len() > 1 {
        let mut ids: Vec<Uuid> = reports.iter().map(|report| report.job_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let lock = transaction.prepare_cached(LOCK_JOBS).await?;
        transaction.execute(&lock, &[&ids]).await?;
    }
    let move_jobs = transaction.prepare_cached(&MOVE_JOBS).await?;
    let upsert_attempts = transaction.prepare_cached(UPSERT_ATTEMPTS).await?;
    let has_first_attempt_row = transaction.prepare_cached(HAS_FIRST_ATTEMPT_ROW).await?;
    let retry_lease = retry_lease.as_secs_f64();
    let mut outcome = Applied::default();
    for round in rounds {
        let (round, weights): (Vec<&AttemptReport>, Vec<u64>) = round.into_iter().unzip();
        let ids: Vec<Uuid> = round.iter().map(|r| r.job_id).collect();
        let epochs: Vec<i64> = round.iter().map(|r| r.epoch).collect();
        let statuses: Vec<&str> = round.iter().map(|r| r.status.as_str()).collect();
        let attempts: Vec<i32> = round.iter().map(|r| r.attempt).collect();
        let started: Vec<DateTime<Utc>> = round.iter().map(|r| r.started_at).collect();
        let finished_at: Vec<Option<DateTime<Utc>>> = round.iter().map(|r| r.finished_at).collect();
        let finished: Vec<bool> = round
            .iter()
            .map(|r| r.outcome != AttemptOutcome::Running)
            .collect();
        let exit_codes: Vec<Option<i32>> = round.iter().map(|r| r.exit_code).collect();
        let stdouts: Vec<Option<&str>> = round.iter().map(|r| r.stdout.as_deref()).collect();
        let stderrs: Vec<Option<&str>> = round.iter().map(|r| r.stderr.as_deref()).collect();
        // Why the attempt failed (stderr is kept apart).
        let errors: Vec<Option<&str>> = round.iter().map(|r| r.error.as_deref()).collect();
        let outcomes: Vec<&str> = round.iter().map(|r| r.outcome.as_str()).collect();
        let ends_job: Vec<bool> = round.iter().map(|r| r.status.ends_by_result()).collect();
        let scheduled: Vec<DateTime<Utc>> = round.iter().map(|r| r.scheduled_at).collect();
        let ranks: Vec<i32> = round.iter().map(|r| r.status.rank()).collect();
        let retry_at: Vec<Option<DateTime<Utc>>> = round.iter().map(|r| r.retry_at).collect();

        let moved_jobs = returned_job_ids(
            &transaction,
            &move_jobs,
            &[
                &ids,
                &epochs,
                &statuses,
                &attempts,
                &started,
                &finished_at,
                &finished,
                &exit_codes,
                &stdouts,
                &errors,
                &retry_lease,
                &stderrs,
                &outcomes,
                &ranks,
                &retry_at,
            ],
        )
        .await?;
        let upsert = !ends_job
            .iter()
            .zip(&attempts)
            .all(|(&ends, &attempt)| ends && attempt == 1)
            || transaction
                .query_one(&has_first_attempt_row, &[&ids])
                .await?
                .try_get(0)?;
        let moved_attempts = if upsert {
            returned_job_ids(
                &transaction,
                &upsert_attempts,
                &[
                    &ids,
                    &attempts,
                    &epochs,
                    &outcomes,
                    &scheduled,
                    &started,
                    &finished_at,
                    &exit_codes,
                    &stdouts,
                    &stderrs,
                    &errors,
                    &ends_job,
                ],
            )
            .await?
        } else {
            HashSet::new()
        };
        for (report, weight) in round.iter().zip(weights) {
            if moved_jobs.contains(&report.job_id) || moved_attempts.contains(&report.job_id) {
                outcome.applied += weight;
            } else {
                outcome.ignored += weight;
            }
        }
    }
    transaction.commit().await?;
    Ok(outcome)
}

/// The job ids `statement` returns, one per row.
async fn returned_job_ids(
    transaction: &Transaction<'_>,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<HashSet<Uuid>, StoreError> {
    let rows = transaction.query(statement, params).await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}
