//! The fire pass, the jobs of fires given outside a schedule's rule, and a fire's claim
//! under its overlap rule.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use super::claims::seconds;
use super::rows::dispatch_row;
use super::schedules::{SCHEDULE_COLUMNS, schedule_row};
use crate::domain::{Dispatch, Fire, JobStatus, NewJob, Schedule};
use crate::store::{FireClaim, FireMoment, FirePass, Fired, RunKey, StoreError, plan_fires};

/// The fire pass (see `Store::fire_due`), in one transaction.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; nothing is made then.
pub async fn fire_due(pool: &Pool, pass: FirePass, instance: &str) -> Result<Fired, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules \
             WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at < $1 \
             ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    let schedules: Vec<Schedule> = transaction
        .query(&statement, &[&pass.until, &pass.schedules])
        .await?
        .iter()
        .map(schedule_row)
        .collect::<Result<_, _>>()?;
    if schedules.is_empty() {
        return Ok(Fired::default());
    }
    let (jobs, moved) = plan_fires(&schedules, &pass);
    let dispatches = insert_fires(&transaction, &jobs, pass.grace, instance).await?;
    let ids: Vec<Uuid> = moved.iter().map(|moved| moved.id).collect();
    let next: Vec<Option<DateTime<Utc>>> = moved.iter().map(|moved| moved.next).collect();
    let missed: Vec<i64> = moved.iter().map(|moved| moved.missed).collect();
    transaction
        .execute(
            "UPDATE schedules SET next_fire_at = m.next, \
                 missed_fires = schedules.missed_fires + m.missed, updated_at = now() \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int8[]) AS m(id, next, missed) \
             WHERE schedules.id = m.id",
            &[&ids, &next, &missed],
        )
        .await?;
    transaction.commit().await?;
    Ok(Fired {
        dispatches,
        missed: missed
            .iter()
            .map(|missed| u64::try_from(*missed).unwrap_or(0))
            .sum(),
        schedules: schedules.len(),
    })
}

/// Stores the jobs of fires, claimed (a fire that has a job makes none); returns the
/// dispatches of those stored.
async fn insert_fires(
    client: &impl GenericClient,
    jobs: &[NewJob],
    grace: Duration,
    instance: &str,
) -> Result<Vec<Dispatch>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let claimed: Vec<(&NewJob, Option<Duration>)> =
        jobs.iter().map(|job| (job, Some(grace))).collect();
    super::jobs::insert_fires_on(client, &claimed, instance)
        .await?
        .iter()
        .map(|row| dispatch_row(row)?.into_dispatch())
        .collect()
}

/// Stores the jobs of fires given outside the rule (see `Store::create_fires`).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses a row.
pub async fn create_fires(
    pool: &Pool,
    jobs: &[NewJob],
    dispatch_before: DateTime<Utc>,
    grace: Duration,
    instance: &str,
) -> Result<(Vec<Uuid>, Vec<Dispatch>), StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let rows: Vec<(&NewJob, Option<Duration>)> = jobs
        .iter()
        .map(|job| (job, (job.execute_at < dispatch_before).then_some(grace)))
        .collect();
    let inserted = super::jobs::insert_fires_on(&transaction, &rows, instance).await?;
    let mut dispatches = Vec::new();
    for row in &inserted {
        let epoch: i64 = row.try_get("epoch")?;
        if epoch > 0 {
            dispatches.push(dispatch_row(row)?.into_dispatch()?);
        }
    }
    // Each fire's job: the one just stored, or the one its fire had.
    let schedules: Vec<Uuid> = jobs
        .iter()
        .filter_map(|job| job.fire.map(|fire| fire.schedule_id))
        .collect();
    let times: Vec<DateTime<Utc>> = jobs
        .iter()
        .filter_map(|job| job.fire.map(|fire| fire.scheduled_for))
        .collect();
    let found = transaction
        .query(
            "SELECT f.n, jobs.id FROM UNNEST($1::uuid[], $2::timestamptz[]) WITH ORDINALITY \
                 AS f(schedule_id, scheduled_for, n) \
             JOIN jobs ON jobs.schedule_id = f.schedule_id AND jobs.scheduled_for = f.scheduled_for",
            &[&schedules, &times],
        )
        .await?;
    transaction.commit().await?;
    let mut ids = vec![Uuid::nil(); jobs.len()];
    for row in &found {
        let n: i64 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|n| ids.get_mut(n)) {
            *slot = row.try_get(1)?;
        }
    }
    Ok((ids, dispatches))
}

/// Claims a fire's first run under its overlap rule (see `Store::claim_fire_run`), in one
/// statement: the verdict, the cancels of `cancel_previous`, the skip, and the claim. `$7`:
/// whether the rule decides (at the fire's time) or only a fire with no earlier job unended
/// is claimed (ahead of it).
static CLAIM_FIRE: LazyLock<String> = LazyLock::new(|| {
    let finals = JobStatus::finals_sql();
    format!(
        "WITH job AS ( \
             SELECT id, schedule_id, scheduled_for FROM jobs \
             WHERE id = $1 AND epoch = $2 AND attempts < $3 \
               AND status NOT IN ('SCHEDULED', {finals})), \
         earlier AS ( \
             SELECT p.id, p.runner FROM jobs p JOIN job ON p.schedule_id = job.schedule_id \
             WHERE p.scheduled_for < job.scheduled_for \
               AND p.status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING')), \
         verdict AS ( \
             SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM job) THEN 'not_run' \
                 WHEN NOT EXISTS (SELECT 1 FROM earlier) THEN 'claim' \
                 WHEN NOT $7 THEN 'wait' \
                 WHEN $6 IN ('allow_all', 'cancel_previous') THEN 'claim' \
                 WHEN $6 = 'buffer_one' AND (SELECT count(*) FROM earlier) = 1 THEN 'wait' \
                 ELSE 'skip' END AS v), \
         cancelled AS ( \
             UPDATE jobs SET status = 'CANCELLED', finished_at = now(), cancelled_at = now(), \
                 lease_until = NULL, run_lease_until = NULL, runner = NULL, \
                 last_error = 'cancelled by a later fire of its schedule (overlap cancel_previous)', \
                 updated_at = now() \
             FROM earlier WHERE jobs.id = earlier.id AND $6 = 'cancel_previous' \
               AND (SELECT v FROM verdict) = 'claim'), \
         told AS ( \
             INSERT INTO cancellations (job_id, runner) \
             SELECT id, runner FROM earlier \
             WHERE runner IS NOT NULL AND $6 = 'cancel_previous' \
               AND (SELECT v FROM verdict) = 'claim' \
             ON CONFLICT (job_id) DO NOTHING), \
         skipped AS ( \
             UPDATE jobs SET status = 'SKIPPED', finished_at = now(), lease_until = NULL, \
                 run_lease_until = NULL, runner = NULL, \
                 last_error = 'skipped: an earlier fire''s job of its schedule had not ended', \
                 updated_at = now() \
             FROM job WHERE jobs.id = job.id AND (SELECT v FROM verdict) = 'skip'), \
         claimed AS ( \
             UPDATE jobs SET status = 'DISPATCHED', attempts = $3, runner = $5, \
                 run_lease_until = now() + make_interval(secs => $4), \
                 lease_until = LEAST(jobs.lease_until, now() + make_interval(secs => $4)), \
                 updated_at = now() \
             FROM job WHERE jobs.id = job.id AND (SELECT v FROM verdict) = 'claim' \
             RETURNING jobs.id) \
         SELECT (SELECT v FROM verdict), EXISTS (SELECT 1 FROM claimed)"
    )
});

/// Claims a fire's first run ([`CLAIM_FIRE`]).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn claim_fire_run(
    pool: &Pool,
    run: RunKey,
    lease: Duration,
    fire: Fire,
    moment: FireMoment,
    instance: &str,
) -> Result<FireClaim, StoreError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&CLAIM_FIRE).await?;
    let decides = moment == FireMoment::Due;
    let row = client
        .query_one(
            &statement,
            &[
                &run.job_id,
                &run.epoch,
                &run.attempt,
                &seconds(lease),
                &instance,
                &fire.overlap.as_str(),
                &decides,
            ],
        )
        .await?;
    let verdict: String = row.try_get(0)?;
    let claimed: bool = row.try_get(1)?;
    Ok(match verdict.as_str() {
        "wait" => FireClaim::Wait,
        "skip" => FireClaim::Skipped,
        "claim" if claimed => FireClaim::Claimed,
        _ => FireClaim::NotRun,
    })
}
