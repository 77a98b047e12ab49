//! Job control: `store::postgres::control`, in SQLite.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::rows::{micros, shown_status, span};
use crate::domain::{JobStatus, NewJob};
use crate::store::{Cancelled, IdempotencyKey, Keyed, KeyedCreate, StoreError};

/// Cancels the job `id` unless it has ended; tells the instance holding it.
pub(super) fn cancel(
    connection: &mut Connection,
    id: Uuid,
    by: Option<&str>,
) -> Result<Option<Cancelled>, StoreError> {
    let transaction = connection.transaction()?;
    let found = transaction
        .prepare_cached(&format!(
            "SELECT status, runner, {} = 'RUNNING' FROM jobs WHERE id = ?1",
            shown_status("status", "run_lease_until")
        ))?
        .query_row([id.to_string()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .optional()?;
    let Some((status, runner, running)) = found else {
        return Ok(None);
    };
    if JobStatus::parse(&status).is_some_and(JobStatus::is_final) {
        return Ok(Some(Cancelled::AlreadyFinal));
    }
    let now = micros(Utc::now());
    transaction
        .prepare_cached(
            "UPDATE jobs SET status = 'CANCELLED', finished_at = ?2, cancelled_at = ?2, \
                 cancelled_by = ?3, lease_until = NULL, run_lease_until = NULL, runner = NULL, \
                 updated_at = ?2 \
             WHERE id = ?1",
        )?
        .execute(params![id.to_string(), now, by])?;
    if let Some(runner) = runner {
        transaction
            .prepare_cached(
                "INSERT INTO cancellations (job_id, runner, requested_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (job_id) DO NOTHING",
            )?
            .execute(params![id.to_string(), runner, now])?;
    }
    transaction.commit()?;
    Ok(Some(if running {
        Cancelled::Running
    } else {
        Cancelled::Waiting
    }))
}

/// Takes the cancellations of the jobs `instance` holds.
pub(super) fn take_cancellations(
    connection: &Connection,
    instance: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let mut statement = connection
        .prepare_cached("DELETE FROM cancellations WHERE runner = ?1 RETURNING job_id")?;
    let mut rows = statement.query([instance])?;
    let mut taken = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        taken.push(
            Uuid::parse_str(&id).map_err(|_| StoreError::corrupt("cancellations.job_id", id))?,
        );
    }
    Ok(taken)
}

/// Stores `jobs` with their idempotency keys in one transaction
/// (`store::postgres::control::create_keyed`).
pub(super) fn create_keyed(
    connection: &mut Connection,
    jobs: &[(NewJob, Option<IdempotencyKey>)],
    dispatch_before: DateTime<Utc>,
    grace: Duration,
    retention: Duration,
    instance: &str,
) -> Result<KeyedCreate, StoreError> {
    let transaction = connection.transaction()?;
    let now = Utc::now();
    let expired_before = micros(now) - span(retention);
    let mut outcome = Vec::with_capacity(jobs.len());
    let mut dispatches = Vec::new();
    for (index, (job, key)) in jobs.iter().enumerate() {
        if let Some(key) = key {
            transaction
                .prepare_cached("DELETE FROM idempotency_keys WHERE key = ?1 AND created_at < ?2")?
                .execute(params![key.key, expired_before])?;
            let named = transaction
                .prepare_cached("SELECT request_hash, job_id FROM idempotency_keys WHERE key = ?1")?
                .query_row([&key.key], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .optional()?;
            match named {
                Some((hash, _)) if hash != key.request_hash => {
                    return Ok(KeyedCreate::Reused { index });
                }
                Some((_, id)) => {
                    let id = Uuid::parse_str(&id)
                        .map_err(|_| StoreError::corrupt("idempotency_keys.job_id", id))?;
                    outcome.push(Keyed::Existing(id));
                    continue;
                }
                None => {
                    transaction
                        .prepare_cached(
                            "INSERT INTO idempotency_keys (key, request_hash, job_id, created_at) \
                             VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![
                            key.key,
                            key.request_hash,
                            job.id.to_string(),
                            micros(now)
                        ])?;
                }
            }
        }
        let claim = (job.execute_at < dispatch_before).then_some((instance, grace));
        let (_, dispatch) = super::jobs::insert(&transaction, job, claim, now)?;
        if claim.is_some() {
            dispatches.push(dispatch);
        }
        outcome.push(Keyed::Created(job.id));
    }
    transaction.commit()?;
    Ok(KeyedCreate::Stored {
        jobs: outcome,
        dispatches,
    })
}
