//! What the store keeps of schedules, and the fire pass: [`ScheduleStore`], which every
//! [`super::Store`] is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{RunKey, StoreError};
use crate::domain::schedule::fires::{self, Fires};
use crate::domain::{Dispatch, Fire, JobStatus, NewJob, NewSchedule, Schedule};

/// A fire of a schedule and the job it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FireRecord {
    pub scheduled_for: DateTime<Utc>,
    pub job_id: Uuid,
    pub status: JobStatus,
}

/// How a fire pass makes fires (see [`ScheduleStore::fire_due`]).
#[derive(Debug, Clone, Copy)]
pub struct FirePass {
    /// Fires due before this are made.
    pub until: DateTime<Utc>,
    /// Now, as the pass sees it.
    pub now: DateTime<Utc>,
    /// A fire that passed more than this long ago was missed (the catch-up rule applies); a
    /// later one is made as any other.
    pub late: Duration,
    /// Schedules per pass, at most.
    pub schedules: i64,
    /// Fires per schedule per pass, at most.
    pub fires: usize,
    /// The lease of a job made claimed: its time plus this.
    pub grace: Duration,
}

/// What a fire pass did.
#[derive(Debug, Default)]
pub struct Fired {
    /// The jobs made, claimed, to publish.
    pub dispatches: Vec<Dispatch>,
    /// Fires skipped by the catch-up rule.
    pub missed: u64,
    /// Schedules the pass took (fewer than [`FirePass::schedules`]: none is left for now).
    pub schedules: usize,
}

/// What the claim of a fire's first attempt found (see [`ScheduleStore::claim_fire_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireClaim {
    /// The run is claimed: start it.
    Claimed,
    /// An earlier fire's job has not ended and the rule waits for it: ask again later.
    Wait,
    /// An earlier fire's job has not ended and the rule skips this one: its job ended
    /// `SKIPPED`.
    Skipped,
    /// The dispatch was superseded, or the attempt has started elsewhere.
    NotRun,
}

/// When a fire's first run is claimed (see [`ScheduleStore::claim_fire_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireMoment {
    /// Ahead of its time: the run is claimed only when no earlier fire's job of its schedule
    /// is unended; otherwise the answer is [`FireClaim::Wait`] and nothing changes, for the
    /// rule to decide at its time.
    Ahead,
    /// At its time: the overlap rule decides.
    Due,
}

/// The schedules' part of the store contract.
#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule.
    async fn create_schedule(&self, schedule: NewSchedule) -> Result<Schedule, StoreError>;

    /// The schedule `id`.
    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError>;

    /// Up to `limit` schedules, newest first, after the schedule `after`.
    async fn list_schedules(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// Replaces the schedule `schedule.id` with `schedule` (its fires made so far stay; its
    /// missed fires and creation are kept); `None` when there is no such schedule.
    async fn replace_schedule(&self, schedule: NewSchedule)
    -> Result<Option<Schedule>, StoreError>;

    /// Pauses (with `note`) or resumes the schedule `id`. Pausing cancels the jobs of its
    /// fires made ahead that have not started; resuming leaves its next fire where it was, so
    /// that the catch-up rule decides what the pause missed.
    async fn pause_schedule(
        &self,
        id: Uuid,
        paused: bool,
        note: Option<String>,
    ) -> Result<Option<Schedule>, StoreError>;

    /// Deletes the schedule `id` and cancels the jobs of its fires made ahead that have not
    /// started; its other jobs stay. False when there is no such schedule.
    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError>;

    /// The latest `limit` fires of the schedule `id`, newest first.
    async fn recent_fires(&self, id: Uuid, limit: i64) -> Result<Vec<FireRecord>, StoreError>;

    /// Makes the fires due before `pass.until` of the schedules that have some, each with its
    /// job stored claimed, and moves each schedule's next fire on, in one transaction per
    /// pass: whatever process makes a fire, at most one job exists for it. Schedules another
    /// process is firing are skipped (`FOR UPDATE SKIP LOCKED`).
    async fn fire_due(&self, pass: FirePass) -> Result<Fired, StoreError>;

    /// Stores the jobs of fires given outside the schedule's rule (a trigger, a backfill),
    /// claimed when due before `dispatch_before`: a fire that has a job already makes none.
    /// Returns each fire's job id (the existing one for those), and the dispatches to publish.
    async fn create_fires(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<(Vec<Uuid>, Vec<Dispatch>), StoreError>;

    /// Claims the run of a fire's first attempt under its overlap rule, as
    /// [`super::Store::claim_run`] does otherwise. When an earlier fire's job of its schedule
    /// has not ended: ahead of the fire's time, nothing is decided yet ([`FireClaim::Wait`]);
    /// at its time `skip` ends this one `SKIPPED`, `buffer_one` waits behind one and skips
    /// behind two, and `cancel_previous` cancels the earlier ones first.
    async fn claim_fire_run(
        &self,
        run: RunKey,
        lease: Duration,
        fire: Fire,
        moment: FireMoment,
    ) -> Result<FireClaim, StoreError>;

    /// Deletes up to `limit` jobs (with their attempts) that ended before `before`, but the
    /// latest `keep_last` finished jobs of each schedule; and the idempotency keys created
    /// before `keys_before`. Returns the jobs deleted.
    async fn purge(
        &self,
        before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError>;
}

/// A schedule's state after a fire pass: its next fire, and the fires it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub id: Uuid,
    pub next: Option<DateTime<Utc>>,
    pub missed: i64,
}

/// The jobs of the fires `pass` makes for `schedules` (each locked by the caller), and where
/// each schedule stands after them. A schedule whose rule no longer parses (stored by a
/// release that read it otherwise) fires no more, and says why in the log.
pub fn plan_fires(schedules: &[Schedule], pass: &FirePass) -> (Vec<NewJob>, Vec<Moved>) {
    let mut jobs = Vec::new();
    let mut moved = Vec::with_capacity(schedules.len());
    for schedule in schedules {
        let Some(next) = schedule.next_fire_at else {
            continue;
        };
        let fires = match Fires::new(
            &schedule.recurrence(),
            &schedule.timezone,
            schedule.anchor(),
            schedule.start_at,
            schedule.end_at,
        ) {
            Ok(fires) => fires,
            Err(error) => {
                tracing::error!(schedule_id = %schedule.id, %error, "a schedule's rule does not parse; it fires no more");
                moved.push(Moved {
                    id: schedule.id,
                    next: None,
                    missed: 0,
                });
                continue;
            }
        };
        let catchup = Duration::from_secs(u64::try_from(schedule.catchup_window_secs).unwrap_or(0));
        let plan = fires::plan(
            &fires, next, pass.until, pass.now, pass.late, catchup, pass.fires,
        );
        jobs.extend(plan.make.iter().map(|at| fire_job(schedule, *at)));
        moved.push(Moved {
            id: schedule.id,
            next: plan.next,
            missed: plan.missed,
        });
    }
    (jobs, moved)
}

/// The job of the fire at `at` of `schedule`: its template, due at the fire's time plus its
/// jitter, named after the schedule unless the template names it.
pub fn fire_job(schedule: &Schedule, at: DateTime<Utc>) -> NewJob {
    let template = &schedule.job;
    NewJob {
        created_by: schedule.created_by.clone(),
        id: Uuid::now_v7(),
        name: template.name.clone().or_else(|| schedule.name.clone()),
        spec: template.spec.clone(),
        execute_at: at + fires::jitter(schedule.id, at, schedule.jitter_secs),
        max_retries: template.max_retries,
        timeout_secs: template.timeout_secs,
        metadata: template.metadata.clone(),
        retry_backoff: template.retry_backoff,
        rerun_of: None,
        fire: Some(Fire {
            schedule_id: schedule.id,
            scheduled_for: at,
            overlap: schedule.overlap,
        }),
    }
}
