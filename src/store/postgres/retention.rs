//! The retention pass: finished jobs, and idempotency keys, older than their retention.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::domain::JobStatus;
use crate::store::StoreError;

/// The retention's batch ([`purge`]): `$1` the end of the retention, `$2` the first UUIDv7 of
/// that instant, `$3` the batch's size.
///
/// The jobs are found through the listing index (`status, id`), one final status at a time so
/// that each scan stops at the batch's size: a finished job ended after it was created, and
/// its UUIDv7 id grows with its creation, so every job to delete has an id below the first
/// id of the retention's end. (One scan of every final status at once is a bitmap scan, which
/// reads the entry of every old job before it stops: 0.1 s a pass beside a million of them.)
static PURGE: LazyLock<String> = LazyLock::new(|| {
    let finals = JobStatus::finals_sql();
    let scans: Vec<String> = JobStatus::ALL
        .iter()
        .filter(|status| status.is_final())
        .map(|status| {
            format!(
                "(SELECT id, schedule_id, scheduled_for, finished_at FROM jobs \
                  WHERE status = '{}' AND id < $2 ORDER BY status, id DESC LIMIT $3)",
                status.as_str()
            )
        })
        .collect();
    format!(
        "WITH old AS ({}), \
         doomed AS ( \
             SELECT jobs.id FROM old JOIN jobs ON jobs.id = old.id \
                 LEFT JOIN schedules s ON s.id = old.schedule_id \
             WHERE old.finished_at < $1 \
               AND (s.id IS NULL OR s.keep_last = 0 OR old.scheduled_for < ( \
                   SELECT min(k.scheduled_for) FROM ( \
                       SELECT p.scheduled_for FROM jobs p \
                       WHERE p.schedule_id = s.id AND p.status IN ({finals}) \
                       ORDER BY p.scheduled_for DESC LIMIT s.keep_last) k)) \
             LIMIT $3 FOR UPDATE OF jobs SKIP LOCKED) \
         DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)",
        scans.join(" UNION ALL ")
    )
});

/// Deletes finished jobs older than `before` in a bounded batch ([`PURGE`]), but the latest
/// `keep_last` of each schedule, and idempotency keys older than `keys_before` (see
/// `Store::purge`).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn purge(
    pool: &Pool,
    before: DateTime<Utc>,
    keys_before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let first_id_at = first_uuid_at(before);
    let client = pool.get().await?;
    let statement = client.prepare_cached(&PURGE).await?;
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
