//! The retention pass: finished jobs, and idempotency keys, older than their retention.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::domain::JobStatus;
use crate::store::StoreError;

/// Deletes finished jobs older than `before` in a bounded batch, but the latest `keep_last`
/// of each schedule, and idempotency keys older than `keys_before` (see `Store::purge`).
/// The jobs are found through the listing index (`status, id`): a finished job ended after
/// it was created, and its UUIDv7 id grows with its creation, so every job to delete has an
/// id below the first id of `before`.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn purge(
    pool: &Pool,
    before: DateTime<Utc>,
    keys_before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let finals = JobStatus::finals_sql();
    let first_id_at = first_uuid_at(before);
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH doomed AS ( \
                 SELECT jobs.id FROM jobs LEFT JOIN schedules s ON s.id = jobs.schedule_id \
                 WHERE jobs.status IN ({finals}) AND jobs.id < $2 AND jobs.finished_at < $1 \
                   AND (s.id IS NULL OR s.keep_last = 0 OR jobs.scheduled_for < ( \
                       SELECT min(k.scheduled_for) FROM ( \
                           SELECT p.scheduled_for FROM jobs p \
                           WHERE p.schedule_id = s.id AND p.status IN ({finals}) \
                           ORDER BY p.scheduled_for DESC LIMIT s.keep_last) k)) \
                 LIMIT $3 FOR UPDATE OF jobs SKIP LOCKED) \
             DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)"
        ))
        .await?;
    let deleted = client
        .execute(&statement, &[&before, &first_id_at, &limit])
        .await?;
    client
        .execute(
            "DELETE FROM idempotency_keys WHERE key IN ( \
                 SELECT key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
            &[&keys_before, &limit],
        )
        .await?;
    Ok(deleted)
}

/// The smallest UUIDv7 of the millisecond `at`: every job created before `at` has a smaller id.
pub fn first_uuid_at(at: DateTime<Utc>) -> Uuid {
    let millis = u128::try_from(at.timestamp_millis()).unwrap_or(0);
    Uuid::from_u128(millis << 80)
}
