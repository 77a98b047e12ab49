//! Recovering what a crash lost.
//!
//! Every job in flight holds a lease: a `DISPATCHED` job must start by its time plus
//! `recovery.grace` (`jobs.lease_until`), a `RUNNING` attempt must end by its timeout plus the
//! grace (`jobs.run_lease_until`, set when its run is claimed; `lease_until` stays at or before
//! it, so the index on `lease_until` finds every lease that ran out), a `RETRYING` job must
//! start its next attempt by the longest backoff plus the grace. A job whose lease runs out
//! was lost with its dispatch, its executor or its process. And a job whose holder is known
//! dead ([`super::liveness`]) is lost at once, whatever its lease. [`recover`] dispatches lost
//! jobs again under a new epoch, which fences off anything a lost executor might still report.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::claims::seconds;
use super::rows::{DISPATCH_COLUMNS, dispatch_row};
use crate::domain::JobStatus;
use crate::store::{LostScope, Recovered, RunKey, StoreError};

/// The partition of the jobs topic a job's dispatch went to, in SQL: `bus::partition_of`
/// over the job's id, the last two bytes of the UUID modulo the partitions (`$n`, here the
/// 8th parameter).
pub const PARTITION_OF: &str =
    "((get_byte(uuid_send(jobs.id), 14) * 256 + get_byte(uuid_send(jobs.id), 15)) % $8)";

/// How many graces past its lease a job held by a live instance is taken back anyway: the
/// safety net for a holder that is alive but lost track of it.
const LIVE_HOLDER_GRACES: f64 = 10.0;

/// Finds up to `limit` jobs in flight that were lost, and dispatches them again under a new
/// epoch. A job is lost when:
///
/// - its lease ran out and no instance holds it (`runner`);
/// - its lease ran out [`LIVE_HOLDER_GRACES`] graces ago, whoever holds it;
/// - the instance that holds it is in `scope.dead`: at once, whatever its lease; but a job
///   whose run it claimed (shown `RUNNING`) only if the instance is in `scope.fenced` too
///   (every report it published is written, so a run still shown `RUNNING` has no result);
/// - it is dispatched and held by nobody, and the instance that dispatched it (`claimed_by`)
///   is in `scope.dead`: at once, as that instance may have died between its claim and the
///   publication of the dispatch, and no consumer would ever read it;
/// - it is dispatched, held by nobody, and its dispatch went, `scope.unheld_after` ago or
///   more, to a partition of the jobs topic in `scope.unheld_partitions` (no live instance's
///   dispatcher holds it: its holder died and Kafka has not given it to another yet).
///
/// (An overloaded but live instance keeps the jobs it holds: taking them back would only add
/// work.) The rules on dead instances and unheld partitions read every job in flight, so the
/// pass reads only the lease index up to now while neither applies.
///
/// A run counts as claimed when the job shows `RUNNING` (`kairos_shown_status`): it has a
/// run lease, or its row says `RUNNING` (as a process of the version before migration V8
/// claimed it, during an upgrade). A job lost with its run claimed has that attempt recorded
/// as `LOST`; one lost more than `max_lost` times ends `FAILED` instead.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; nothing changes then.
pub async fn recover(
    pool: &Pool,
    limit: i64,
    instance: &str,
    grace: Duration,
    max_lost: i32,
    scope: &LostScope,
) -> Result<Recovered, StoreError> {
    let client = pool.get().await?;
    let wide = !scope.dead.is_empty() || !scope.unheld_partitions.is_empty();
    // Implied by the lease rules: it bounds the scan of the lease index.
    let lease_ran_out = if wide { "" } else { "lease_until < now() AND " };
    let statement = client
        .prepare_cached(&format!(
            "WITH expired AS ( \
                 SELECT id, kairos_shown_status(status, run_lease_until) = 'RUNNING' AS was_claimed, \
                     attempts AS old_attempts, \
                     COALESCE(run_lease_until, lease_until) AS old_lease \
                 FROM jobs \
                 WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING') AND {lease_ran_out}( \
                     (lease_until < now() AND runner IS NULL) \
                     OR (lease_until < now() - make_interval(secs => $3::float8 * $6::float8) \
                       AND COALESCE(run_lease_until, lease_until) \
                           < now() - make_interval(secs => $3::float8 * $6::float8)) \
                     OR (runner = ANY($5) \
                       AND (kairos_shown_status(status, run_lease_until) <> 'RUNNING' \
                            OR runner = ANY($7))) \
                     OR (status = 'DISPATCHED' AND runner IS NULL AND run_lease_until IS NULL \
                       AND (claimed_by = ANY($5) \
                         OR (claimed_at < now() - make_interval(secs => $10) \
                           AND {PARTITION_OF} = ANY($9))))) \
                 ORDER BY lease_until LIMIT $1 \
                 FOR UPDATE SKIP LOCKED), \
             moved AS ( \
                 UPDATE jobs SET \
                     lost_attempts = jobs.lost_attempts + was_claimed::int, \
                     status = CASE WHEN was_claimed AND jobs.lost_attempts >= $4 \
                         THEN 'FAILED' ELSE 'DISPATCHED' END, \
                     finished_at = CASE WHEN was_claimed AND jobs.lost_attempts >= $4 \
                         THEN now() END, \
                     last_error = CASE WHEN was_claimed AND jobs.lost_attempts >= $4 \
                         THEN 'lost ' || (jobs.lost_attempts + 1) || ' attempts to crashes' \
                         ELSE jobs.last_error END, \
                     lease_until = CASE WHEN was_claimed AND jobs.lost_attempts >= $4 \
                         THEN NULL \
                         ELSE GREATEST(jobs.execute_at, now()) + make_interval(secs => $3) END, \
                     run_lease_until = NULL, \
                     epoch = jobs.epoch + 1, claimed_by = $2, claimed_at = now(), runner = NULL, \
                     updated_at = now() \
                 FROM expired WHERE jobs.id = expired.id \
                 RETURNING {DISPATCH_COLUMNS}, jobs.status, was_claimed, old_attempts, old_lease), \
             lost AS ( \
                 INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, \
                     started_at, finished_at, error) \
                 SELECT id, old_attempts, epoch - 1, 'LOST', execute_at, \
                     old_lease - make_interval(secs => timeout_secs + $3), now(), \
                     'lost: no result arrived by the lease; its executor or process died' \
                 FROM moved WHERE was_claimed \
                 ON CONFLICT (job_id, attempt) DO UPDATE SET status = 'LOST', \
                     finished_at = EXCLUDED.finished_at, error = EXCLUDED.error \
                 WHERE job_attempts.status = 'RUNNING') \
             SELECT * FROM moved"
        ))
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &limit,
                &instance,
                &seconds(grace),
                &max_lost,
                &scope.dead,
                &LIVE_HOLDER_GRACES,
                &scope.fenced,
                &scope.partitions.max(1),
                &scope.unheld_partitions,
                &seconds(scope.unheld_after),
            ],
        )
        .await?;
    let mut recovered = Recovered::default();
    for row in &rows {
        let was_claimed: bool = row.try_get("was_claimed")?;
        let status: String = row.try_get("status")?;
        if was_claimed {
            recovered.lost_attempts += 1;
        }
        if status == JobStatus::Failed.as_str() {
            recovered.failed += 1;
        } else {
            recovered
                .dispatches
                .push(dispatch_row(row)?.into_dispatch()?);
        }
    }
    Ok(recovered)
}

/// Forgets the instances of `fenced` (dead, their reports written) that hold no job in
/// flight any more, and left none dispatched that nobody holds, so that later passes no
/// longer read the jobs in flight for them.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn forget(pool: &Pool, fenced: &[String]) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "WITH gone AS ( \
                 DELETE FROM instances WHERE id = ANY($1) AND NOT EXISTS ( \
                     SELECT 1 FROM jobs WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING') \
                       AND (runner = instances.id \
                         OR (runner IS NULL AND claimed_by = instances.id))) \
                 RETURNING id) \
             DELETE FROM cancellations WHERE runner IN (SELECT id FROM gone)",
            &[&fenced],
        )
        .await?;
    Ok(())
}

/// Hands back the job whose dispatch `run.epoch` has not started `run.attempt` here (its
/// executor is stopping): a new epoch, no holder, its lease run out, so that the next
/// recovery pass of any instance dispatches it at once. A run of it that `instance` claimed
/// goes back with it, unstarted, not recorded lost. False when the job has moved on.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn hand_back(pool: &Pool, run: RunKey, instance: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let handed = client
        .execute(
            "UPDATE jobs SET status = 'DISPATCHED', epoch = epoch + 1, runner = NULL, \
                 attempts = LEAST(attempts, $3 - 1), run_lease_until = NULL, \
                 lease_until = now(), updated_at = now() \
             WHERE id = $1 AND epoch = $2 \
                 AND (attempts < $3 OR (attempts = $3 AND runner = $4)) \
                 AND status IN ('DISPATCHED', 'RUNNING', 'RETRYING')",
            &[&run.job_id, &run.epoch, &run.attempt, &instance],
        )
        .await?;
    Ok(handed == 1)
}

/// Records that `instance` stopped cleanly: its heartbeat goes `grace` back, so that it
/// counts as dead once its lock goes with its connection, and what it abandoned is
/// recovered at once. Instances silent for over an hour are removed.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn retire_instance(
    pool: &Pool,
    instance: &str,
    grace: Duration,
) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE instances SET heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1",
            &[&instance, &seconds(grace)],
        )
        .await?;
    client
        .execute(
            "DELETE FROM instances WHERE heartbeat_at < now() - interval '1 hour'",
            &[],
        )
        .await?;
    Ok(())
}
