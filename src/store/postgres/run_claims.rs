//! Run claims and holds, batched.
//!
//! An attempt costs small writes on the `jobs` row:
//!
//! - the **hold**, when an executor takes a dispatch: the job's `runner` names this
//!   instance, so that while it beats nobody takes the job back, however long it waits for a
//!   free run slot, and once it stops beating the job is recovered at once rather than at its
//!   time plus the grace;
//! - the **claim** of its run, shortly before it starts (`executor.claim_ahead`): the job
//!   shows `RUNNING` on this instance with a run lease (`run_lease_until`) covering the wait
//!   for its time, its timeout and the recovery grace, only if the dispatch's epoch is still
//!   current and the attempt has not started yet. So however often, and wherever, a dispatch
//!   is delivered, each attempt starts once, and a superseded dispatch never starts. (A prior
//!   `RUNNING` or `RETRYING` is accepted because the report that the previous attempt failed
//!   may not be written yet.) The job keeps naming this instance as its runner until the
//!   result writer records the final report; a claimed job of a dead instance is recovered
//!   only once every report on the bus is written (see `recovery::recover`), so an
//!   attempt whose report is out is never run again.
//!
//! The claim changes no indexed column on a first attempt: `status` stays `DISPATCHED` (the
//! run lease is what makes it show `RUNNING`, migration V8) and `lease_until` stays below the
//! run lease. PostgreSQL then rewrites the row within its page and adds no index entry (a
//! HOT update): the claim had been the largest statement per job, three index entries each.
//!
//! Executed one by one they cost a round trip and a commit each.
//!
//! The statements join the batch (`UNNEST`) to `jobs` on the id alone, so that on a large
//! table the batch drives the join and each of its jobs is looked up by primary key. The
//! planner has no statistics of `status` (migration V10): those of the last `ANALYZE` rarely
//! hold for long, and on a table of finished jobs they count almost none in flight. Both
//! matter; each was seen to go wrong:
//!
//! - with such statistics and `jobs.id = ANY($1)` beside the join, the planner expected a
//!   single row in flight among the batch's ids, read them first and read the whole batch
//!   again for each of them (W1 fell from 17,000 to 6,000 jobs/s after an `ANALYZE`);
//! - a condition such as `status IN ('DISPATCHED', 'RUNNING', 'RETRYING')` matches the
//!   predicate of the partial index `jobs_in_flight_lease_idx`: the planner read that whole
//!   index (every job in flight, 200,000 during a burst) for each batch. So the statements
//!   name the statuses they accept by the ones they exclude.
//!
//! They are queued ([`BatchQueue`]), and the workers execute whatever has queued as one
//! `UPDATE … FROM UNNEST` per kind: a lone request goes out at once (nothing waits for a batch
//! to fill), and under load many share a commit.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::store::batch_queue::{Asked, BatchQueue};
use crate::store::{RunKey, StoreError};

/// Claims executed per statement, at most.
const CLAIMS_PER_STATEMENT: usize = 256;

/// Holds written per statement, at most.
const HOLDS_PER_STATEMENT: usize = 500;

/// Claim workers taking turns, each with a connection: nothing else delays the start of a due
/// job, and a herd's claims are written two statements at a time.
const CLAIM_WORKERS: usize = 2;

/// A claim: the run, and its lease.
type Claim = (RunKey, Duration);

/// Run claims and holds, each queued for its own workers.
#[derive(Debug, Clone)]
pub struct RunClaims {
    claims: BatchQueue<Asked<Claim, Result<bool, StoreError>>>,
    holds: BatchQueue<RunKey>,
}

impl RunClaims {
    /// Starts the workers on the current runtime, writing through `pool` on behalf of
    /// `instance`.
    pub fn start(pool: Pool, instance: String) -> Self {
        let claims = {
            let (pool, instance) = (pool.clone(), instance.clone());
            BatchQueue::start(
                "run claim",
                CLAIM_WORKERS,
                CLAIMS_PER_STATEMENT,
                move |batch| {
                    let (pool, instance) = (pool.clone(), instance.clone());
                    async move { execute_claims(&pool, &instance, batch).await }
                },
            )
        };
        let holds = BatchQueue::start("hold", 1, HOLDS_PER_STATEMENT, move |mut batch| {
            let (pool, instance) = (pool.clone(), instance.clone());
            async move {
                // Sorted by job id, the order in which the result writer locks its batch
                // (see `reports`), so that the two cannot deadlock.
                batch.sort_unstable_by_key(|key: &RunKey| key.job_id);
                if let Err(error) = hold_runs(&pool, &instance, &batch).await {
                    tracing::warn!(%error, jobs = batch.len(), "cannot record held dispatches");
                }
            }
        });
        RunClaims { claims, holds }
    }

    /// Records that this instance holds the dispatch `key` (best effort: without it the job is
    /// only recovered later, by its lease).
    pub fn hold(&self, key: RunKey) {
        let _ = self.holds.push(key);
    }

    /// Claims the run of `key`: true if this caller may start it.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached.
    pub async fn claim(&self, key: RunKey, lease: Duration) -> Result<bool, StoreError> {
        self.claims
            .ask((key, lease))
            .await
            .map_err(|stopped| StoreError::Unavailable(stopped.to_string()))?
    }
}

async fn execute_claims(
    pool: &Pool,
    instance: &str,
    mut claims: Vec<Asked<Claim, Result<bool, StoreError>>>,
) {
    // Sorted by job id, the order in which the result writer locks its batch (see
    // `reports`), so that the two cannot deadlock.
    claims.sort_unstable_by_key(|((key, _), _)| key.job_id);
    // A dispatch's run is claimed once per statement: a second claim of the same job under
    // the same epoch in one batch loses (it is a repeated delivery of the first). Claims of
    // one job under different epochs (a recovered dispatch beside the one it supersedes) go
    // together: only the current epoch's matches.
    let mut seen = HashSet::new();
    let (first, repeated): (Vec<_>, Vec<_>) = claims
        .into_iter()
        .partition(|((key, _), _)| seen.insert((key.job_id, key.epoch)));
    for (_, answer) in repeated {
        let _ = answer.send(Ok(false));
    }
    let keys: Vec<Claim> = first.iter().map(|(claim, _)| *claim).collect();
    match claim_runs(pool, instance, &keys).await {
        Ok(won) => {
            for ((key, _), answer) in first {
                let _ = answer.send(Ok(won.contains(&(key.job_id, key.epoch))));
            }
        }
        Err(error) => {
            for (_, answer) in first {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

/// Records many held dispatches at once: the jobs (`$1`) under their epochs (`$2`) that are
/// dispatched and held by no one name instance `$3` as their runner.
pub const HOLD_RUNS: &str = "\
    UPDATE jobs SET runner = $3 \
    FROM UNNEST($1::uuid[], $2::int8[]) AS r(id, epoch) \
    WHERE jobs.id = r.id AND jobs.epoch = r.epoch \
      AND jobs.status NOT IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED', \
          'CANCELLED', 'SKIPPED') \
      AND jobs.runner IS NULL";

/// Claims many runs at once: the jobs (`$1`) under their epochs (`$2`) whose attempt `$3`
/// has not started get run leases of `$4` seconds on instance `$5`; returns their ids.
pub const CLAIM_RUNS: &str = "\
    UPDATE jobs SET status = 'DISPATCHED', attempts = r.attempt, runner = $5, \
        run_lease_until = now() + make_interval(secs => r.lease), \
        lease_until = LEAST(jobs.lease_until, now() + make_interval(secs => r.lease)), \
        updated_at = now() \
    FROM UNNEST($1::uuid[], $2::int8[], $3::int4[], $4::float8[]) \
        AS r(id, epoch, attempt, lease) \
    WHERE jobs.id = r.id AND jobs.epoch = r.epoch \
      AND jobs.attempts < r.attempt \
      AND jobs.status NOT IN ('SCHEDULED', 'SUCCESS', 'FAILED', 'CANCELLED', 'SKIPPED') \
    RETURNING jobs.id, jobs.epoch";

/// Records many held dispatches at once ([`HOLD_RUNS`]).
async fn hold_runs(pool: &Pool, instance: &str, runs: &[RunKey]) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|key| key.job_id).collect();
    let epochs: Vec<i64> = runs.iter().map(|key| key.epoch).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(HOLD_RUNS).await?;
    client
        .execute(&statement, &[&ids, &epochs, &instance])
        .await?;
    Ok(())
}

/// Claims many runs at once ([`CLAIM_RUNS`]); returns the jobs whose run was claimed.
///
/// `status` becomes `DISPATCHED`, which it already is for a first attempt (an unchanged
/// value keeps the update HOT): after a failed attempt it held `RETRYING` or `RUNNING` of the
/// previous attempt, and the result writer ranks a report against the claimed attempt's
/// stored status.
async fn claim_runs(
    pool: &Pool,
    instance: &str,
    runs: &[(RunKey, Duration)],
) -> Result<HashSet<(Uuid, i64)>, StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|(key, _)| key.job_id).collect();
    let epochs: Vec<i64> = runs.iter().map(|(key, _)| key.epoch).collect();
    let attempts: Vec<i32> = runs.iter().map(|(key, _)| key.attempt).collect();
    let leases: Vec<f64> = runs.iter().map(|(_, lease)| lease.as_secs_f64()).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(CLAIM_RUNS).await?;
    let rows = client
        .query(&statement, &[&ids, &epochs, &attempts, &leases, &instance])
        .await?;
    Ok(rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?)
}
