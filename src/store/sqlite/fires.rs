//! The fire pass, fires given outside a rule, a fire's claim and the retention pass:
//! `store::postgres::fires` and `store::postgres::retention`, in SQLite.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::rows::{micros, uuid};
use super::schedules::{SCHEDULE_COLUMNS, schedule_row};
use crate::domain::{Dispatch, Fire, JobStatus, NewJob, Overlap, Schedule};
use crate::store::{FireClaim, FireMoment, FirePass, Fired, RunKey, StoreError, plan_fires};

/// Stores the job of a fire, claimed when `claim` is given, unless its fire has one already;
/// returns its dispatch when it was stored.
fn insert_fire(
    connection: &Connection,
    job: &NewJob,
    claim: Option<(&str, Duration)>,
    now: DateTime<Utc>,
) -> Result<Option<Dispatch>, StoreError> {
    if let Some(fire) = job.fire {
        let exists = connection
            .prepare_cached("SELECT 1 FROM jobs WHERE schedule_id = ?1 AND scheduled_for = ?2")?
            .query_row(
                params![fire.schedule_id.to_string(), micros(fire.scheduled_for)],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Ok(None);
        }
    }
    let (_, dispatch) = super::jobs::insert(connection, job, claim, now)?;
    Ok(claim.map(|_| dispatch))
}

pub(super) fn fire_due(
    connection: &mut Connection,
    pass: FirePass,
    instance: &str,
) -> Result<Fired, StoreError> {
    let transaction = connection.transaction()?;
    let schedules: Vec<Schedule> = {
        let mut statement = transaction.prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules \
             WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at < ?1 \
             ORDER BY next_fire_at LIMIT ?2"
        ))?;
        let mut rows = statement.query(params![micros(pass.until), pass.schedules])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push(schedule_row(row)?);
        }
        found
    };
    let (jobs, moved) = plan_fires(&schedules, &pass);
    let now = Utc::now();
    let mut fired = Fired {
        schedules: schedules.len(),
        ..Fired::default()
    };
    for job in &jobs {
        if let Some(dispatch) = insert_fire(&transaction, job, Some((instance, pass.grace)), now)? {
            fired.dispatches.push(dispatch);
        }
    }
    for moved in &moved {
        transaction
            .prepare_cached(
                "UPDATE schedules SET next_fire_at = ?2, missed_fires = missed_fires + ?3, \
                     updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![
                moved.id.to_string(),
                moved.next.map(micros),
                moved.missed,
                micros(now)
            ])?;
        fired.missed += u64::try_from(moved.missed).unwrap_or(0);
    }
    transaction.commit()?;
    Ok(fired)
}

pub(super) fn create_fires(
    connection: &mut Connection,
    jobs: &[NewJob],
    dispatch_before: DateTime<Utc>,
    grace: Duration,
    instance: &str,
) -> Result<(Vec<Uuid>, Vec<Dispatch>), StoreError> {
    let transaction = connection.transaction()?;
    let now = Utc::now();
    let mut ids = Vec::with_capacity(jobs.len());
    let mut dispatches = Vec::new();
    for job in jobs {
        let claim = (job.execute_at < dispatch_before).then_some((instance, grace));
        if let Some(dispatch) = insert_fire(&transaction, job, claim, now)? {
            dispatches.push(dispatch);
        }
        let id = match job.fire {
            Some(fire) => {
                let id: String = transaction
                    .prepare_cached(
                        "SELECT id FROM jobs WHERE schedule_id = ?1 AND scheduled_for = ?2",
                    )?
                    .query_row(
                        params![fire.schedule_id.to_string(), micros(fire.scheduled_for)],
                        |row| row.get(0),
                    )?;
                uuid("jobs.id", id)?
            }
            None => job.id,
        };
        ids.push(id);
    }
    transaction.commit()?;
    Ok((ids, dispatches))
}

pub(super) fn claim_fire_run(
    connection: &mut Connection,
    run: RunKey,
    lease: Duration,
    fire: Fire,
    moment: FireMoment,
    instance: &str,
) -> Result<FireClaim, StoreError> {
    let transaction = connection.transaction()?;
    let finals = JobStatus::finals_sql();
    let current = transaction
        .prepare_cached(&format!(
            "SELECT 1 FROM jobs WHERE id = ?1 AND epoch = ?2 AND attempts < ?3 \
               AND status NOT IN ('SCHEDULED', {finals})"
        ))?
        .query_row(
            params![run.job_id.to_string(), run.epoch, run.attempt],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !current {
        return Ok(FireClaim::NotRun);
    }
    let earlier: Vec<(String, Option<String>)> = {
        let mut statement = transaction.prepare_cached(
            "SELECT id, runner FROM jobs WHERE schedule_id = ?1 AND scheduled_for < ?2 \
               AND status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING')",
        )?;
        let mut rows = statement.query(params![
            fire.schedule_id.to_string(),
            micros(fire.scheduled_for)
        ])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push((row.get(0)?, row.get(1)?));
        }
        found
    };
    let now = micros(Utc::now());
    let verdict = match (fire.overlap, earlier.len()) {
        (_, 0) => FireClaim::Claimed,
        _ if moment == FireMoment::Ahead => FireClaim::Wait,
        (Overlap::AllowAll | Overlap::CancelPrevious, _) => FireClaim::Claimed,
        (Overlap::BufferOne, 1) => FireClaim::Wait,
        _ => FireClaim::Skipped,
    };
    match verdict {
        FireClaim::Wait | FireClaim::NotRun => return Ok(verdict),
        FireClaim::Skipped => {
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'SKIPPED', finished_at = ?2, lease_until = NULL, \
                         run_lease_until = NULL, runner = NULL, \
                         last_error = 'skipped: an earlier fire''s job of its schedule had not ended', \
                         updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![run.job_id.to_string(), now])?;
            transaction.commit()?;
            return Ok(FireClaim::Skipped);
        }
        FireClaim::Claimed => {}
    }
    if fire.overlap == Overlap::CancelPrevious {
        for (id, runner) in &earlier {
            transaction
                .prepare_cached(
                    "UPDATE jobs SET status = 'CANCELLED', finished_at = ?2, cancelled_at = ?2, \
                         lease_until = NULL, run_lease_until = NULL, runner = NULL, \
                         last_error = 'cancelled by a later fire of its schedule (overlap cancel_previous)', \
                         updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now])?;
            if let Some(runner) = runner {
                transaction
                    .prepare_cached(
                        "INSERT INTO cancellations (job_id, runner, requested_at) \
                         VALUES (?1, ?2, ?3) ON CONFLICT (job_id) DO NOTHING",
                    )?
                    .execute(params![id, runner, now])?;
            }
        }
    }
    let claimed = super::claims::claim_run(&transaction, run, lease, instance)?;
    transaction.commit()?;
    Ok(if claimed {
        FireClaim::Claimed
    } else {
        FireClaim::NotRun
    })
}

pub(super) fn purge(
    connection: &Connection,
    before: DateTime<Utc>,
    keys_before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let finals = JobStatus::finals_sql();
    let deleted = connection.execute(
        &format!(
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE schedule_id IS NULL AND status IN ({finals}) \
                   AND finished_at < ?1 \
                 UNION ALL \
                 SELECT id FROM ( \
                     SELECT p.id, p.finished_at, s.keep_last, row_number() OVER ( \
                         PARTITION BY p.schedule_id ORDER BY p.scheduled_for DESC) AS newer \
                     FROM jobs p LEFT JOIN schedules s ON s.id = p.schedule_id \
                     WHERE p.schedule_id IS NOT NULL AND p.status IN ({finals})) \
                 WHERE finished_at < ?1 \
                   AND (keep_last IS NULL OR keep_last = 0 OR newer > keep_last) \
                 LIMIT ?2)"
        ),
        params![micros(before), limit],
    )?;
    connection.execute(
        "DELETE FROM idempotency_keys WHERE key IN ( \
             SELECT key FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)",
        params![micros(keys_before), limit],
    )?;
    Ok(u64::try_from(deleted).unwrap_or(0))
}
