//! Schedules: every statement on `schedules` but the fire pass (`fires`).

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::{JobStatus, NewSchedule, Recurrence, Schedule};
use crate::store::rows::ScheduleRow;
use crate::store::{FireRecord, StoreError};

/// A schedule's columns.
pub(super) const SCHEDULE_COLUMNS: &str = "id, name, cron, every_ms, timezone, job, overlap, \
     catchup_window_secs, jitter_secs, start_at, end_at, paused, pause_note, keep_last, \
     next_fire_at, missed_fires, created_at, updated_at, created_by";

pub(super) fn schedule_row(row: &Row) -> Result<Schedule, StoreError> {
    ScheduleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        cron: row.try_get("cron")?,
        every_ms: row.try_get("every_ms")?,
        timezone: row.try_get("timezone")?,
        job: row.try_get("job")?,
        overlap: row.try_get("overlap")?,
        catchup_window_secs: row.try_get("catchup_window_secs")?,
        jitter_secs: row.try_get("jitter_secs")?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("end_at")?,
        paused: row.try_get("paused")?,
        pause_note: row.try_get("pause_note")?,
        keep_last: row.try_get("keep_last")?,
        next_fire_at: row.try_get("next_fire_at")?,
        missed_fires: row.try_get("missed_fires")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        created_by: row.try_get("created_by")?,
    }
    .into_schedule()
}

/// The columns a schedule is given, as bind values.
struct Given {
    cron: Option<String>,
    every_ms: Option<i64>,
    job: serde_json::Value,
}

impl Given {
    fn of(schedule: &NewSchedule) -> Result<Self, StoreError> {
        let (cron, every_ms) = match &schedule.recurrence {
            Recurrence::Cron(cron) => (Some(cron.clone()), None),
            Recurrence::Every(every) => (
                None,
                Some(i64::try_from(every.as_millis()).unwrap_or(i64::MAX)),
            ),
        };
        let job = serde_json::to_value(&schedule.job)
            .map_err(|error| StoreError::Refused(format!("the job template: {error}")))?;
        Ok(Self {
            cron,
            every_ms,
            job,
        })
    }
}

/// Stores `schedule`.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses the row.
pub async fn create(pool: &Pool, schedule: &NewSchedule) -> Result<Schedule, StoreError> {
    let given = Given::of(schedule)?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO schedules (id, name, cron, every_ms, timezone, job, overlap, \
                 catchup_window_secs, jitter_secs, start_at, end_at, paused, keep_last, \
                 next_fire_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING {SCHEDULE_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &schedule.id,
                &schedule.name,
                &given.cron,
                &given.every_ms,
                &schedule.timezone,
                &given.job,
                &schedule.overlap.as_str(),
                &schedule.catchup_window_secs,
                &schedule.jitter_secs,
                &schedule.start_at,
                &schedule.end_at,
                &schedule.paused,
                &schedule.keep_last,
                &schedule.next_fire_at,
                &schedule.created_by,
            ],
        )
        .await?;
    schedule_row(&row)
}

/// Replaces the schedule `schedule.id`, keeping its creation, pause note and missed fires.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses the row.
pub async fn replace(pool: &Pool, schedule: &NewSchedule) -> Result<Option<Schedule>, StoreError> {
    let given = Given::of(schedule)?;
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "UPDATE schedules SET name = $2, cron = $3, every_ms = $4, timezone = $5, job = $6, \
                 overlap = $7, catchup_window_secs = $8, jitter_secs = $9, start_at = $10, \
                 end_at = $11, keep_last = $12, next_fire_at = $13, updated_at = now() \
             WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &schedule.id,
                &schedule.name,
                &given.cron,
                &given.every_ms,
                &schedule.timezone,
                &given.job,
                &schedule.overlap.as_str(),
                &schedule.catchup_window_secs,
                &schedule.jitter_secs,
                &schedule.start_at,
                &schedule.end_at,
                &schedule.keep_last,
                &schedule.next_fire_at,
            ],
        )
        .await?;
    row.as_ref().map(schedule_row).transpose()
}

/// The schedule `id`.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    row.as_ref().map(schedule_row).transpose()
}

/// Up to `limit` schedules, newest first, after the schedule `after`.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn list(
    pool: &Pool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Schedule>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id < $1 ORDER BY id DESC LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&after.unwrap_or(Uuid::max()), &limit])
        .await?;
    rows.iter().map(schedule_row).collect()
}

/// Cancels the jobs of `schedule`'s fires that are made and have not started (their run not
/// claimed), saying `why`.
const CANCEL_UNSTARTED: &str = "\
    WITH unstarted AS ( \
        SELECT id, runner FROM jobs \
        WHERE schedule_id = $1 AND status IN ('SCHEDULED', 'DISPATCHED') \
          AND run_lease_until IS NULL \
        FOR UPDATE), \
    cancelled AS ( \
        UPDATE jobs SET status = 'CANCELLED', finished_at = now(), cancelled_at = now(), \
            lease_until = NULL, runner = NULL, last_error = $2, updated_at = now() \
        FROM unstarted WHERE jobs.id = unstarted.id) \
    INSERT INTO cancellations (job_id, runner) \
    SELECT id, runner FROM unstarted WHERE runner IS NOT NULL ON CONFLICT (job_id) DO NOTHING";

/// Pauses or resumes the schedule `id` (see `Store::pause_schedule`).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn pause(
    pool: &Pool,
    id: Uuid,
    paused: bool,
    note: Option<String>,
) -> Result<Option<Schedule>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(&format!(
            "UPDATE schedules SET paused = $2, pause_note = $3, updated_at = now() \
             WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}"
        ))
        .await?;
    let Some(row) = transaction
        .query_opt(&statement, &[&id, &paused, &note])
        .await?
    else {
        return Ok(None);
    };
    if paused {
        transaction
            .execute(CANCEL_UNSTARTED, &[&id, &"its schedule was paused"])
            .await?;
    }
    transaction.commit().await?;
    schedule_row(&row).map(Some)
}

/// Deletes the schedule `id`, cancelling its fires made ahead.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn delete(pool: &Pool, id: Uuid) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let deleted = transaction
        .execute("DELETE FROM schedules WHERE id = $1", &[&id])
        .await?
        > 0;
    if deleted {
        transaction
            .execute(CANCEL_UNSTARTED, &[&id, &"its schedule was deleted"])
            .await?;
    }
    transaction.commit().await?;
    Ok(deleted)
}

/// The latest `limit` fires of the schedule `id`, newest first.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn recent_fires(
    pool: &Pool,
    id: Uuid,
    limit: i64,
) -> Result<Vec<FireRecord>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT scheduled_for, id, kairos_shown_status(status, run_lease_until) \
             FROM jobs WHERE schedule_id = $1 \
             ORDER BY scheduled_for DESC LIMIT $2",
        )
        .await?;
    client
        .query(&statement, &[&id, &limit])
        .await?
        .iter()
        .map(|row| {
            let status: String = row.try_get(2)?;
            Ok(FireRecord {
                scheduled_for: row.try_get(0)?,
                job_id: row.try_get(1)?,
                status: JobStatus::parse(&status)
                    .ok_or_else(|| StoreError::corrupt("jobs.status", status))?,
            })
        })
        .collect()
}
