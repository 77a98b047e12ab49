//! Claiming jobs for dispatch: the scanner's claims, jobs stored already claimed, a claim
//! handed back, and a dispatch handed over at shutdown.
//!
//! Every claim gives the job a new epoch and a lease (its time plus `recovery.grace`); see
//! [`super::recovery`] for what happens when the lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::rows::{DISPATCH_COLUMNS, dispatch_row};
use crate::domain::{Dispatch, NewJob};
use crate::store::StoreError;

/// A duration as the seconds PostgreSQL's `make_interval` takes.
pub(super) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Claims up to `limit` scheduled jobs due before `horizon`, earliest first, for
/// `instance`: each becomes `DISPATCHED` with its epoch increased and a lease until its time
/// plus `grace`. `SKIP LOCKED` lets scanners of several processes claim at once without
/// waiting for, or claiming, each other's rows.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; nothing is claimed then.
pub async fn claim_due(
    pool: &Pool,
    horizon: DateTime<Utc>,
    limit: i64,
    instance: &str,
    grace: Duration,
) -> Result<Vec<Dispatch>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH due AS ( \
                 SELECT id FROM jobs \
                 WHERE status = 'SCHEDULED' AND execute_at < $1 \
                 ORDER BY execute_at LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET status = 'DISPATCHED', epoch = jobs.epoch + 1, \
                 claimed_by = $3, claimed_at = now(), updated_at = now(), \
                 lease_until = GREATEST(jobs.execute_at, now()) + make_interval(secs => $4) \
             FROM due WHERE jobs.id = due.id \
             RETURNING {DISPATCH_COLUMNS}"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&horizon, &limit, &instance, &seconds(grace)])
        .await?;
    rows.iter()
        .map(|row| dispatch_row(row)?.into_dispatch())
        .collect()
}

/// Stores `jobs` in one statement, all or none. Those due before `dispatch_before` are
/// stored already claimed, as [`super::jobs::insert_returning`] does with a claim, and returned
/// for publishing.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses a row; nothing is stored.
pub async fn create_many(
    pool: &Pool,
    jobs: Vec<NewJob>,
    dispatch_before: DateTime<Utc>,
    instance: &str,
    grace: Duration,
) -> Result<Vec<Dispatch>, StoreError> {
    let rows: Vec<(&NewJob, Option<Duration>)> = jobs
        .iter()
        .map(|job| (job, (job.execute_at < dispatch_before).then_some(grace)))
        .collect();
    let Some(created_at) = super::jobs::copy_in(pool, &rows, instance).await? else {
        return Ok(Vec::new());
    };
    Ok(jobs
        .into_iter()
        .filter(|job| job.execute_at < dispatch_before)
        .map(|job| Dispatch::first(job, created_at))
        .collect())
}

/// Hands a claim back (its dispatch could not be published), so that the next scan claims
/// the job again. Only the claim of `epoch` is released, and only while no executor has
/// claimed its run (a publish reported failed may have been delivered all the same).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn release(pool: &Pool, job_id: Uuid, epoch: i64) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE jobs SET status = 'SCHEDULED', lease_until = NULL, run_lease_until = NULL, \
                 updated_at = now() \
             WHERE id = $1 AND epoch = $2 AND status = 'DISPATCHED' AND run_lease_until IS NULL",
            &[&job_id, &epoch],
        )
        .await?;
    Ok(())
}
