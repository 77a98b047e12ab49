//! Claims for dispatch, run claims and holds: `store::postgres::claims` and
//! `store::postgres::run_claims`, in SQLite, one request at a time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::rows::{dispatches, job_columns, micros, span};
use crate::domain::Dispatch;
use crate::store::{RunKey, StoreError};

/// Claims up to `limit` scheduled jobs due before `horizon`, earliest first.
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
             RETURNING {}",
            job_columns()
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

/// Hands the claim of `epoch` back (its dispatch could not be published).
pub(super) fn release(connection: &Connection, job_id: Uuid, epoch: i64) -> Result<(), StoreError> {
    connection.execute(
        "UPDATE jobs SET status = 'SCHEDULED', lease_until = NULL, run_lease_until = NULL, \
             updated_at = ?3 \
         WHERE id = ?1 AND epoch = ?2 AND status = 'DISPATCHED' AND run_lease_until IS NULL",
        params![job_id.to_string(), epoch, micros(Utc::now())],
    )?;
    Ok(())
}

/// Records that `instance` holds the dispatch `run` while it waits.
pub(super) fn hold(connection: &Connection, run: RunKey, instance: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE jobs SET runner = ?3 \
             WHERE id = ?1 AND epoch = ?2 AND status = 'DISPATCHED' AND runner IS NULL",
        )?
        .execute(params![run.job_id.to_string(), run.epoch, instance])?;
    Ok(())
}

/// Claims the run of `run` for `instance`, with a run lease of `lease`: true if the run is
/// this caller's to start. As in PostgreSQL, the row keeps `DISPATCHED` (the run lease makes
/// it show `RUNNING`) until the attempt's first report.
pub(super) fn claim_run(
    connection: &Connection,
    run: RunKey,
    lease: Duration,
    instance: &str,
) -> Result<bool, StoreError> {
    let now = micros(Utc::now());
    let claimed = connection
        .prepare_cached(
            "UPDATE jobs SET status = 'DISPATCHED', attempts = ?3, runner = ?4, \
                 run_lease_until = ?5 + ?6, \
                 lease_until = min(COALESCE(lease_until, ?5 + ?6), ?5 + ?6), \
                 updated_at = ?5 \
             WHERE id = ?1 AND epoch = ?2 AND attempts < ?3 \
               AND status NOT IN ('SCHEDULED', 'SUCCESS', 'FAILED', 'CANCELLED', 'SKIPPED')",
        )?
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
