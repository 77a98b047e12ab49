//! Job control: cancels, and creates keyed for idempotency.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::claims::seconds;
use super::rows::dispatch_row;
use crate::domain::{JobStatus, NewJob};
use crate::store::{Cancelled, IdempotencyKey, Keyed, KeyedCreate, StoreError};

/// Cancels a job unless it has ended: it becomes `CANCELLED` with neither lease nor holder,
/// so that no run of it can be claimed any more, and the instance that held it (`runner`)
/// finds it among its cancellations at its next heartbeat. Returns the status before, and
/// whether its run was claimed (it showed `RUNNING`); no row when there is no such job.
static CANCEL: LazyLock<String> = LazyLock::new(|| {
    let finals = JobStatus::finals_sql();
    format!(
        "WITH target AS ( \
             SELECT id, status, runner, \
                 kairos_shown_status(status, run_lease_until) = 'RUNNING' AS running \
             FROM jobs WHERE id = $1 FOR UPDATE), \
         cancelled AS ( \
             UPDATE jobs SET status = 'CANCELLED', finished_at = now(), cancelled_at = now(), \
                 cancelled_by = $2, lease_until = NULL, run_lease_until = NULL, runner = NULL, \
                 updated_at = now() \
             FROM target WHERE jobs.id = target.id AND target.status NOT IN ({finals})), \
         told AS ( \
             INSERT INTO cancellations (job_id, runner) \
             SELECT id, runner FROM target \
             WHERE runner IS NOT NULL AND status NOT IN ({finals}) \
             ON CONFLICT (job_id) DO NOTHING) \
         SELECT status, running FROM target"
    )
});

/// Cancels the job `id` ([`CANCEL`]).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn cancel(
    pool: &Pool,
    id: Uuid,
    by: Option<&str>,
) -> Result<Option<Cancelled>, StoreError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&CANCEL).await?;
    let Some(row) = client.query_opt(&statement, &[&id, &by]).await? else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let final_before = JobStatus::parse(&status).is_some_and(JobStatus::is_final);
    Ok(Some(if final_before {
        Cancelled::AlreadyFinal
    } else if row.try_get("running")? {
        Cancelled::Running
    } else {
        Cancelled::Waiting
    }))
}

/// Stores `jobs` with their idempotency keys in one transaction (see
/// [`crate::store::Store::create_keyed`]). The keys are inserted first, in key order (so that
/// two calls sharing keys wait for each other rather than deadlock); a key another
/// transaction is inserting makes this one wait for it to end, then read what it stored.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses a row; nothing is stored.
pub async fn create_keyed(
    pool: &Pool,
    jobs: &[(NewJob, Option<IdempotencyKey>)],
    dispatch_before: DateTime<Utc>,
    grace: Duration,
    retention: Duration,
    instance: &str,
) -> Result<KeyedCreate, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let mut keyed: Vec<(&IdempotencyKey, Uuid)> = jobs
        .iter()
        .filter_map(|(job, key)| key.as_ref().map(|key| (key, job.id)))
        .collect();
    keyed.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let keys: Vec<&str> = keyed.iter().map(|(key, _)| key.key.as_str()).collect();
    let hashes: Vec<&str> = keyed
        .iter()
        .map(|(key, _)| key.request_hash.as_str())
        .collect();
    let ids: Vec<Uuid> = keyed.iter().map(|(_, id)| *id).collect();
    transaction
        .execute(
            "DELETE FROM idempotency_keys \
             WHERE key = ANY($1) AND created_at < now() - make_interval(secs => $2)",
            &[&keys, &seconds(retention)],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO idempotency_keys (key, request_hash, job_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[]) \
             ON CONFLICT (key) DO NOTHING",
            &[&keys, &hashes, &ids],
        )
        .await?;
    // What each key names now: this call's job, or one stored before.
    let named: HashMap<String, (String, Uuid)> = transaction
        .query(
            "SELECT key, request_hash, job_id FROM idempotency_keys WHERE key = ANY($1)",
            &[&keys],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?))))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let mut outcome = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<(&NewJob, Option<Duration>)> = Vec::new();
    for (index, (job, key)) in jobs.iter().enumerate() {
        let Some(key) = key else {
            outcome.push(Keyed::Created(job.id));
            fresh.push((job, (job.execute_at < dispatch_before).then_some(grace)));
            continue;
        };
        match named.get(&key.key) {
            Some((hash, _)) if *hash != key.request_hash => {
                return Ok(KeyedCreate::Reused { index });
            }
            Some((_, id)) if *id != job.id => outcome.push(Keyed::Existing(*id)),
            _ => {
                outcome.push(Keyed::Created(job.id));
                fresh.push((job, (job.execute_at < dispatch_before).then_some(grace)));
            }
        }
    }
    let rows = if fresh.is_empty() {
        Vec::new()
    } else {
        super::jobs::insert_rows_on(&transaction, &fresh, instance).await?
    };
    let dispatches = rows
        .iter()
        .filter(|row| row.try_get::<_, i64>("epoch").is_ok_and(|epoch| epoch > 0))
        .map(|row| dispatch_row(row)?.into_dispatch())
        .collect::<Result<_, StoreError>>()?;
    transaction.commit().await?;
    Ok(KeyedCreate::Stored {
        jobs: outcome,
        dispatches,
    })
}
