//! Recovering what a crash lost, and the heartbeats that tell a live instance from a dead one.
//!
//! Every job in flight holds a lease: a `DISPATCHED` job must start by its time plus
//! `recovery.grace` (`jobs.lease_until`), a `RUNNING` attempt must end by its timeout plus the
//! grace (`jobs.run_lease_until`, set when its run is claimed; `lease_until` stays at or before
//! it, so the index on `lease_until` finds every lease that ran out), a `RETRYING` job must
//! start its next attempt by the longest backoff plus the grace. A job whose lease runs out
//! was lost with its dispatch, its executor or its process; [`recover_expired`] dispatches it
//! again under a new epoch, which fences off anything the lost executor might still report.

use std::time::Duration;

use deadpool_postgres::{Client, Pool};

use super::claims::seconds;
use super::rows::{DISPATCH_COLUMNS, dispatch_row};
use crate::store::{Heartbeats, Recovered, StoreError};

/// How many graces past its lease a job held by a live instance is taken back anyway: the
/// safety net for a holder that is alive but lost track of it.
const LIVE_HOLDER_GRACES: f64 = 10.0;

/// Finds up to `limit` jobs in flight that were lost, and dispatches them again under a new
/// epoch. A job is lost when its lease ran out and no instance holds it (`runner`); or when
/// its lease ran out [`LIVE_HOLDER_GRACES`] graces ago whoever holds it; or, with
/// [`Heartbeats::Checked`], when the instance that holds or runs it has been silent for
/// longer than `grace`. (An overloaded but live instance keeps the jobs it holds: taking them
/// back would only add work.) The caller checks heartbeats only once it has itself reached
/// the database for longer than `grace`: after an outage, live instances need time to beat
/// again.
///
/// A job whose run is claimed (`RUNNING`) of a silent instance may have its final report
/// on the bus, not yet written: it is taken back only if its instance was silent for the grace already at
/// `reports_written_before` (it beats every fifth of a grace, so it had died by then, and
/// every report it published is written). That instant comes from the caller's clock and the
/// heartbeats from the database's: a skew of up to four fifths of the grace is absorbed.
///
/// A run counts as claimed when the job shows `RUNNING` (`kairos_shown_status`): it has a
/// run lease, or its row says `RUNNING` (as a process of the version before migration V8
/// claimed it, during an upgrade).
///
/// A job lost with its run claimed has that attempt recorded as `LOST`; one lost more than
/// `max_lost` times ends `FAILED` instead.
///
/// The heartbeat rule costs a read of every job in flight (nothing leads from an instance to
/// its jobs but a scan: 200,000 jobs during a burst, every `recovery.interval`, on every
/// scanner). So it is applied only while the row of some instance shows it silent (one
/// that died or stopped within the hour, see [`retire_instance`]); otherwise only a lease can
/// have run out, and the pass reads the lease index up to now. A job held by an instance
/// whose row is gone (silent for over an hour) is left to the lease rules.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached; nothing changes then.
pub async fn recover_expired(
    pool: &Pool,
    limit: i64,
    instance: &str,
    grace: Duration,
    max_lost: i32,
    heartbeats: Heartbeats,
) -> Result<Recovered, StoreError> {
    let client = pool.get().await?;
    let heartbeats = match heartbeats {
        Heartbeats::Checked { .. } if !any_silent(&client, grace).await? => Heartbeats::Unchecked,
        heartbeats => heartbeats,
    };
    let (check_heartbeats, reports_written_before) = heartbeats.parameters();
    // Implied by the lease rules: it bounds the scan of the lease index.
    let lease_ran_out = if check_heartbeats {
        ""
    } else {
        "lease_until < now() AND "
    };
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
                     OR ($5 AND runner IS NOT NULL AND NOT EXISTS ( \
                         SELECT 1 FROM instances \
                         WHERE instances.id = jobs.runner \
                           AND instances.heartbeat_at > now() - make_interval(secs => $3)) \
                       AND (kairos_shown_status(status, run_lease_until) <> 'RUNNING' OR ($7::timestamptz IS NOT NULL AND NOT EXISTS ( \
                         SELECT 1 FROM instances \
                         WHERE instances.id = jobs.runner \
                           AND instances.heartbeat_at > $7 - make_interval(secs => $3)))))) \
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
                &check_heartbeats,
                &LIVE_HOLDER_GRACES,
                &reports_written_before,
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
        if status == "FAILED" {
            recovered.failed += 1;
        } else {
            recovered
                .dispatches
                .push(dispatch_row(row)?.into_dispatch()?);
        }
    }
    Ok(recovered)
}

/// Whether the row of some instance shows it silent for `grace`.
async fn any_silent(client: &Client, grace: Duration) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM instances \
                 WHERE heartbeat_at <= now() - make_interval(secs => $1))",
        )
        .await?;
    Ok(client
        .query_one(&statement, &[&seconds(grace)])
        .await?
        .try_get(0)?)
}

/// Records that `instance` is alive.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn heartbeat(pool: &Pool, instance: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO instances (id) VALUES ($1) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        )
        .await?;
    client.execute(&statement, &[&instance]).await?;
    Ok(())
}

/// Records that `instance` stopped cleanly: its heartbeat goes `grace` back, so that it
/// counts as silent from now on (and as having stopped now, for the rule on running jobs in
/// [`recover_expired`]). Instances silent for over an hour are removed.
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
