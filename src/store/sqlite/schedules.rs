//! Schedules: `store::postgres::schedules`, in SQLite (the fire pass is in `fires`).

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::rows::{instant, micros, optional_instant, uuid};
use crate::domain::{JobStatus, NewSchedule, Recurrence, Schedule};
use crate::store::rows::ScheduleRow;
use crate::store::{FireRecord, StoreError};

/// A schedule's columns.
pub(super) const SCHEDULE_COLUMNS: &str = "id, name, cron, every_ms, timezone, job, overlap, \
     catchup_window_secs, jitter_secs, start_at, end_at, paused, pause_note, keep_last, \
     next_fire_at, missed_fires, created_at, updated_at, created_by";

pub(super) fn schedule_row(row: &Row<'_>) -> Result<Schedule, StoreError> {
    let job: String = row.get("job")?;
    ScheduleRow {
        id: uuid("schedules.id", row.get("id")?)?,
        name: row.get("name")?,
        cron: row.get("cron")?,
        every_ms: row.get("every_ms")?,
        timezone: row.get("timezone")?,
        job: serde_json::from_str(&job).map_err(|_| StoreError::corrupt("schedules.job", job))?,
        overlap: row.get("overlap")?,
        catchup_window_secs: row.get("catchup_window_secs")?,
        jitter_secs: row.get("jitter_secs")?,
        start_at: optional_instant("schedules.start_at", row.get("start_at")?)?,
        end_at: optional_instant("schedules.end_at", row.get("end_at")?)?,
        paused: row.get("paused")?,
        pause_note: row.get("pause_note")?,
        keep_last: row.get("keep_last")?,
        next_fire_at: optional_instant("schedules.next_fire_at", row.get("next_fire_at")?)?,
        missed_fires: row.get("missed_fires")?,
        created_at: instant("schedules.created_at", row.get("created_at")?)?,
        updated_at: instant("schedules.updated_at", row.get("updated_at")?)?,
        created_by: row.get("created_by")?,
    }
    .into_schedule()
}

/// The columns a schedule is given, as bind values.
fn given(schedule: &NewSchedule) -> Result<(Option<String>, Option<i64>, String), StoreError> {
    let (cron, every_ms) = match &schedule.recurrence {
        Recurrence::Cron(cron) => (Some(cron.clone()), None),
        Recurrence::Every(every) => (
            None,
            Some(i64::try_from(every.as_millis()).unwrap_or(i64::MAX)),
        ),
    };
    let job = serde_json::to_string(&schedule.job)
        .map_err(|error| StoreError::Refused(format!("the job template: {error}")))?;
    Ok((cron, every_ms, job))
}

fn read(connection: &Connection, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    let found = connection
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1"
        ))?
        .query_row([id.to_string()], |row| Ok(schedule_row(row)))
        .optional()?;
    found.transpose()
}

pub(super) fn create(
    connection: &Connection,
    schedule: &NewSchedule,
) -> Result<Schedule, StoreError> {
    let (cron, every_ms, job) = given(schedule)?;
    let now = micros(Utc::now());
    connection
        .prepare_cached(
            "INSERT INTO schedules (id, name, cron, every_ms, timezone, job, overlap, \
                 catchup_window_secs, jitter_secs, start_at, end_at, paused, keep_last, \
                 next_fire_at, created_at, updated_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16)",
        )?
        .execute(params![
            schedule.id.to_string(),
            schedule.name,
            cron,
            every_ms,
            schedule.timezone,
            job,
            schedule.overlap.as_str(),
            schedule.catchup_window_secs,
            schedule.jitter_secs,
            schedule.start_at.map(micros),
            schedule.end_at.map(micros),
            schedule.paused,
            schedule.keep_last,
            schedule.next_fire_at.map(micros),
            now,
            schedule.created_by,
        ])?;
    read(connection, schedule.id)?
        .ok_or_else(|| StoreError::corrupt("schedules.id", schedule.id.to_string()))
}

pub(super) fn replace(
    connection: &Connection,
    schedule: &NewSchedule,
) -> Result<Option<Schedule>, StoreError> {
    let (cron, every_ms, job) = given(schedule)?;
    let changed = connection
        .prepare_cached(
            "UPDATE schedules SET name = ?2, cron = ?3, every_ms = ?4, timezone = ?5, job = ?6, \
                 overlap = ?7, catchup_window_secs = ?8, jitter_secs = ?9, start_at = ?10, \
                 end_at = ?11, keep_last = ?12, next_fire_at = ?13, updated_at = ?14 \
             WHERE id = ?1",
        )?
        .execute(params![
            schedule.id.to_string(),
            schedule.name,
            cron,
            every_ms,
            schedule.timezone,
            job,
            schedule.overlap.as_str(),
            schedule.catchup_window_secs,
            schedule.jitter_secs,
            schedule.start_at.map(micros),
            schedule.end_at.map(micros),
            schedule.keep_last,
            schedule.next_fire_at.map(micros),
            micros(Utc::now()),
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    read(connection, schedule.id)
}

pub(super) fn get(connection: &Connection, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    read(connection, id)
}

pub(super) fn list(
    connection: &Connection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Schedule>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE (?1 IS NULL OR id < ?1) \
         ORDER BY id DESC LIMIT ?2"
    ))?;
    let mut rows = statement.query(params![after.map(|id| id.to_string()), limit])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(schedule_row(row)?);
    }
    Ok(found)
}

/// Cancels the jobs of the schedule's fires that are made and have not started.
fn cancel_unstarted(connection: &Connection, id: Uuid, why: &str) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    connection
        .prepare_cached(
            "INSERT INTO cancellations (job_id, runner, requested_at) \
             SELECT id, runner, ?2 FROM jobs \
             WHERE schedule_id = ?1 AND status IN ('SCHEDULED', 'DISPATCHED') \
               AND run_lease_until IS NULL AND runner IS NOT NULL \
             ON CONFLICT (job_id) DO NOTHING",
        )?
        .execute(params![id.to_string(), now])?;
    connection
        .prepare_cached(
            "UPDATE jobs SET status = 'CANCELLED', finished_at = ?2, cancelled_at = ?2, \
                 lease_until = NULL, runner = NULL, last_error = ?3, updated_at = ?2 \
             WHERE schedule_id = ?1 AND status IN ('SCHEDULED', 'DISPATCHED') \
               AND run_lease_until IS NULL",
        )?
        .execute(params![id.to_string(), now, why])?;
    Ok(())
}

pub(super) fn pause(
    connection: &mut Connection,
    id: Uuid,
    paused: bool,
    note: Option<String>,
) -> Result<Option<Schedule>, StoreError> {
    let transaction = connection.transaction()?;
    let changed = transaction
        .prepare_cached(
            "UPDATE schedules SET paused = ?2, pause_note = ?3, updated_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id.to_string(), paused, note, micros(Utc::now())])?;
    if changed == 0 {
        return Ok(None);
    }
    if paused {
        cancel_unstarted(&transaction, id, "its schedule was paused")?;
    }
    let schedule = read(&transaction, id)?;
    transaction.commit()?;
    Ok(schedule)
}

pub(super) fn delete(connection: &mut Connection, id: Uuid) -> Result<bool, StoreError> {
    let transaction = connection.transaction()?;
    let deleted = transaction
        .prepare_cached("DELETE FROM schedules WHERE id = ?1")?
        .execute([id.to_string()])?
        > 0;
    if deleted {
        cancel_unstarted(&transaction, id, "its schedule was deleted")?;
    }
    transaction.commit()?;
    Ok(deleted)
}

pub(super) fn recent_fires(
    connection: &Connection,
    id: Uuid,
    limit: i64,
) -> Result<Vec<FireRecord>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT scheduled_for, id, {} AS status FROM jobs WHERE schedule_id = ?1 \
         ORDER BY scheduled_for DESC LIMIT ?2",
        super::rows::shown_status("status", "run_lease_until")
    ))?;
    let mut rows = statement.query(params![id.to_string(), limit])?;
    let mut fires = Vec::new();
    while let Some(row) = rows.next()? {
        let status: String = row.get("status")?;
        fires.push(FireRecord {
            scheduled_for: instant("jobs.scheduled_for", row.get("scheduled_for")?)?,
            job_id: uuid("jobs.id", row.get("id")?)?,
            status: JobStatus::parse(&status)
                .ok_or_else(|| StoreError::corrupt("jobs.status", status))?,
        });
    }
    Ok(fires)
}
