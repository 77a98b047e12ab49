//! Leases, heartbeats and recovery: `store::postgres::recovery`, in SQLite, with the same
//! rules (see there).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::rows::{IN_FLIGHT, dispatch_row, job_columns, micros, shown_status, span};
use crate::store::{Liveness, LostScope, Recovered, RunKey, StoreError};

/// See `store::postgres::recovery::LIVE_HOLDER_GRACES`.
const LIVE_HOLDER_GRACES: i64 = 10;

/// Every job in flight gets an expired lease and no holder: the process that held them is
/// gone (the store's lock admits one process). A claimed run keeps its run lease, so that
/// recovery records its attempt `LOST`.
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

/// Finds up to `limit` jobs in flight that were lost and dispatches them again under a new
/// epoch; a claimed run is recorded `LOST`, and a job lost more than `max_lost` times ends
/// `FAILED`. The rules are PostgreSQL's (`store::postgres::recovery::recover`); the
/// in-process bus has one partition, so an unheld partition is every unheld dispatch.
pub(super) fn recover(
    connection: &mut Connection,
    limit: i64,
    instance: &str,
    grace: Duration,
    max_lost: i32,
    scope: &LostScope,
) -> Result<Recovered, StoreError> {
    let dead = serde_json::to_string(&scope.dead).unwrap_or_else(|_| "[]".into());
    let fenced = serde_json::to_string(&scope.fenced).unwrap_or_else(|_| "[]".into());
    let unheld = !scope.unheld_partitions.is_empty();
    let transaction = connection.transaction()?;
    let now = micros(Utc::now());
    let grace = span(grace);
    let shown = shown_status("status", "run_lease_until");
    let expired: Vec<(String, bool, i32, i64)> = {
        let mut statement = transaction.prepare_cached(&format!(
            "SELECT id, {shown} = 'RUNNING', attempts, \
                 COALESCE(run_lease_until, lease_until) FROM jobs \
             WHERE status IN {IN_FLIGHT} AND ( \
                 (lease_until < ?1 AND runner IS NULL) \
                 OR (lease_until < ?1 - ?2 * {LIVE_HOLDER_GRACES} \
                   AND COALESCE(run_lease_until, lease_until) < ?1 - ?2 * {LIVE_HOLDER_GRACES}) \
                 OR (runner IN (SELECT value FROM json_each(?3)) \
                   AND ({shown} <> 'RUNNING' OR runner IN (SELECT value FROM json_each(?5)))) \
                 OR (status = 'DISPATCHED' AND runner IS NULL AND run_lease_until IS NULL \
                   AND (claimed_by IN (SELECT value FROM json_each(?3)) \
                     OR (?6 AND claimed_at < ?1 - ?7)))) \
             ORDER BY lease_until LIMIT ?4"
        ))?;
        statement
            .query_map(
                params![
                    now,
                    grace,
                    dead,
                    limit,
                    fenced,
                    unheld,
                    span(scope.unheld_after)
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )?
            .collect::<Result<_, _>>()?
    };
    let mut recovered = Recovered::default();
    for (id, was_claimed, old_attempts, old_lease) in expired {
        let lost: i32 = transaction.query_row(
            "SELECT lost_attempts FROM jobs WHERE id = ?1",
            [&id],
            |row| row.get(0),
        )?;
        let gives_up = was_claimed && lost >= max_lost;
        let (dispatch, timeout_secs, epoch, execute_at) = transaction
            .prepare_cached(&format!(
                "UPDATE jobs SET lost_attempts = lost_attempts + ?2, \
                     status = CASE WHEN ?3 THEN 'FAILED' ELSE 'DISPATCHED' END, \
                     finished_at = CASE WHEN ?3 THEN ?4 END, \
                     last_error = CASE WHEN ?3 \
                         THEN 'lost ' || (lost_attempts + 1) || ' attempts to crashes' \
                         ELSE last_error END, \
                     lease_until = CASE WHEN ?3 THEN NULL ELSE max(execute_at, ?4) + ?5 END, \
                     run_lease_until = NULL, \
                     epoch = epoch + 1, claimed_by = ?6, claimed_at = ?4, runner = NULL, \
                     updated_at = ?4 \
                 WHERE id = ?1 RETURNING {}, timeout_secs",
                job_columns()
            ))?
            .query_row(
                params![id, i32::from(was_claimed), gives_up, now, grace, instance],
                |row| {
                    Ok((
                        dispatch_row(row),
                        row.get::<_, i64>("timeout_secs")?,
                        row.get::<_, i64>("epoch")?,
                        row.get::<_, i64>("execute_at")?,
                    ))
                },
            )?;
        if was_claimed {
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
                    epoch - 1,
                    execute_at,
                    old_lease - (timeout_secs * 1_000_000 + grace),
                    now,
                ])?;
        }
        if gives_up {
            recovered.failed += 1;
        } else {
            recovered.dispatches.push(dispatch?.into_dispatch()?);
        }
    }
    transaction.commit()?;
    Ok(recovered)
}

/// Forgets the instances of `fenced` that hold no job in flight any more, and left none
/// dispatched that nobody holds.
pub(super) fn forget(connection: &Connection, fenced: &[String]) -> Result<(), StoreError> {
    let fenced = serde_json::to_string(fenced).unwrap_or_else(|_| "[]".into());
    connection.execute(
        &format!(
            "DELETE FROM instances WHERE id IN (SELECT value FROM json_each(?1)) \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE status IN {IN_FLIGHT} \
                 AND (runner = instances.id \
                   OR (runner IS NULL AND claimed_by = instances.id)))"
        ),
        [&fenced],
    )?;
    connection.execute(
        "DELETE FROM cancellations WHERE runner IN (SELECT value FROM json_each(?1)) \
         AND runner NOT IN (SELECT id FROM instances)",
        [&fenced],
    )?;
    Ok(())
}

/// Hands back the job whose dispatch `run.epoch` has not started `run.attempt` here: a new
/// epoch, no holder, its lease run out (`store::postgres::recovery::hand_back`).
pub(super) fn hand_back(
    connection: &Connection,
    run: RunKey,
    instance: &str,
) -> Result<bool, StoreError> {
    let now = micros(Utc::now());
    let handed = connection.execute(
        &format!(
            "UPDATE jobs SET status = 'DISPATCHED', epoch = epoch + 1, runner = NULL, \
                 attempts = min(attempts, ?3 - 1), run_lease_until = NULL, lease_until = ?5, \
                 updated_at = ?5 \
             WHERE id = ?1 AND epoch = ?2 AND status IN {IN_FLIGHT} \
                 AND (attempts < ?3 OR (attempts = ?3 AND runner = ?4))"
        ),
        params![
            run.job_id.to_string(),
            run.epoch,
            run.attempt,
            instance,
            now
        ],
    )?;
    Ok(handed == 1)
}

/// Records that `instance` is alive, and the partitions its dispatcher holds.
pub(super) fn heartbeat(
    connection: &Connection,
    instance: &str,
    partitions: &[i32],
) -> Result<(), StoreError> {
    let partitions = serde_json::to_string(partitions).unwrap_or_else(|_| "[]".into());
    connection
        .prepare_cached(
            "INSERT INTO instances (id, started_at, heartbeat_at, dispatch_partitions) \
                 VALUES (?1, ?2, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
                 dispatch_partitions = excluded.dispatch_partitions",
        )?
        .execute(params![instance, micros(Utc::now()), partitions])?;
    Ok(())
}

/// Which instances are alive: beaten within `grace` (SQLite has no locks, and one process).
pub(super) fn liveness(connection: &Connection, grace: Duration) -> Result<Liveness, StoreError> {
    let since = micros(Utc::now()) - span(grace);
    let mut statement = connection
        .prepare_cached("SELECT id, heartbeat_at > ?1, dispatch_partitions FROM instances")?;
    let rows: Vec<(String, bool, String)> = statement
        .query_map([since], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut liveness = Liveness::default();
    for (id, alive, partitions) in rows {
        if alive {
            let partitions = serde_json::from_str(&partitions)
                .map_err(|_| StoreError::corrupt("instances.dispatch_partitions", partitions))?;
            liveness.alive.push((id, partitions));
        } else {
            liveness.dead.push(id);
        }
    }
    Ok(liveness)
}

/// Records that `instance` stopped cleanly: its heartbeat goes `grace` back.
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
