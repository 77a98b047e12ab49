//! PostgreSQL: the store of a distributed deployment, shared by every process.
//!
//! Every PostgreSQL statement Kairos runs lives in this module: `jobs` (create), `reads`
//! (read, list), `schedules` (schedules), `fires` (their fires), `retention` (old jobs),
//! `claims` (claims for dispatch), `recovery` (leases and recovery), `liveness` (heartbeats),
//! `run_claims` (run claims and holds, batched), `create_queue` (single creates, batched),
//! `control` (cancels and keyed creates) and `reports` (the result writer's writes).
//! `connection` makes the connections (settings, TLS, pools), `rows` reads their columns and
//! `errors` turns the driver's errors into [`StoreError`]s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use super::{
    Applied, Attempt, Cancelled, FireClaim, FireMoment, FirePass, FireRecord, Fired,
    IdempotencyKey, JobFilter, KeyedCreate, Liveness, LostScope, Recovered, RunKey, ScheduleStore,
    Store, StoreError,
};
use crate::config::DatabaseSettings;
use crate::domain::{AttemptReport, Dispatch, Fire, Job, JobStatus, NewJob, NewSchedule, Schedule};
pub use connection::{client_config, connect, tls};
use create_queue::CreateQueue;
use run_claims::RunClaims;

pub mod claims;
mod connection;
mod control;
mod create_queue;
mod errors;
mod fires;
pub mod jobs;
pub mod liveness;
mod reads;
pub mod recovery;
pub mod reports;
mod retention;
pub mod rows;
pub mod run_claims;
mod schedules;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory-lock key that serialises migrations across instances ("kairos" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b61_6972_6f73;

/// Applies the migrations in `migrations/postgres/` that the database has not seen yet.
///
/// # Errors
/// [`StoreError::Unavailable`] when no connection can be had, [`StoreError::Migration`] when
/// a migration fails (it is rolled back).
pub async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    // Instances starting together would otherwise race to apply the same migration; the
    // lock is held by this session until it is released below (or the session ends).
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    for migration in report?.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "applied migration"
        );
    }
    Ok(())
}

/// Checks that the database answers a query, for the readiness probe.
///
/// # Errors
/// The reason it does not.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

/// The PostgreSQL store of one instance.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    /// The heartbeat, on a connection of its own that holds this instance's liveness lock
    /// (and that a busy pool cannot delay).
    heartbeat: liveness::Heartbeat,
    /// The result writer's connections, one per concurrent transaction. Each pooled connection does its I/O on the thread
    /// that opened it; opened by the writer (which runs on a thread of its own), these are not
    /// queued behind the executors, as the shared pool's are.
    reports_pool: Pool,
    run_claims: RunClaims,
    creates: CreateQueue,
    instance: String,
    location: String,
}

impl PostgresStore {
    /// Connects for `instance` and applies the migrations. Must run on a tokio runtime (the
    /// queues' workers start on it).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or a migration fails.
    pub async fn open(settings: &DatabaseSettings, instance: &str) -> Result<Self, StoreError> {
        let pool = connect(settings)?;
        migrate(&pool).await?;
        let reports_pool = connect(&DatabaseSettings {
            pool_size: reports::WRITERS,
            ..settings.clone()
        })?;
        Ok(Self {
            run_claims: RunClaims::start(pool.clone(), instance.to_owned()),
            creates: CreateQueue::start(pool.clone(), instance.to_owned()),
            pool,
            heartbeat: liveness::Heartbeat::new(settings, instance),
            reports_pool,
            instance: instance.to_owned(),
            location: settings.location(),
        })
    }

    /// The connection pool (the benchmark reads statistics through it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        ping(&self.pool).await
    }

    async fn create(&self, job: NewJob) -> Result<Job, StoreError> {
        Ok(self.creates.create(job, None).await?.0)
    }

    async fn create_claimed(
        &self,
        job: NewJob,
        grace: Duration,
    ) -> Result<(Job, Dispatch), StoreError> {
        self.creates.create(job, Some(grace)).await
    }

    async fn create_many(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError> {
        claims::create_many(&self.pool, jobs, dispatch_before, &self.instance, grace).await
    }

    async fn create_keyed(
        &self,
        jobs: Vec<(NewJob, Option<IdempotencyKey>)>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
        retention: Duration,
    ) -> Result<KeyedCreate, StoreError> {
        control::create_keyed(
            &self.pool,
            &jobs,
            dispatch_before,
            grace,
            retention,
            &self.instance,
        )
        .await
    }

    async fn cancel(&self, id: Uuid, by: Option<String>) -> Result<Option<Cancelled>, StoreError> {
        control::cancel(&self.pool, id, by.as_deref()).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
        reads::get(&self.pool, id).await
    }

    async fn list_jobs(
        &self,
        filter: JobFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        reads::list(&self.pool, filter, after, limit).await
    }

    async fn count_jobs(&self, up_to: i64) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        reads::count(&self.pool, up_to).await
    }

    async fn claim_due(
        &self,
        horizon: DateTime<Utc>,
        limit: i64,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError> {
        claims::claim_due(&self.pool, horizon, limit, &self.instance, grace).await
    }

    async fn release_claim(&self, job_id: Uuid, epoch: i64) -> Result<(), StoreError> {
        claims::release(&self.pool, job_id, epoch).await
    }

    async fn hand_back(&self, run: RunKey) -> Result<bool, StoreError> {
        recovery::hand_back(&self.pool, run, &self.instance).await
    }

    async fn recover(
        &self,
        limit: i64,
        grace: Duration,
        max_lost: i32,
        scope: &LostScope,
    ) -> Result<Recovered, StoreError> {
        recovery::recover(&self.pool, limit, &self.instance, grace, max_lost, scope).await
    }

    async fn forget(&self, fenced: &[String]) -> Result<(), StoreError> {
        recovery::forget(&self.pool, fenced).await
    }

    async fn heartbeat(&self, partitions: &[i32]) -> Result<Vec<Uuid>, StoreError> {
        self.heartbeat.beat(partitions).await
    }

    async fn liveness(
        &self,
        silent_after: Duration,
        grace: Duration,
    ) -> Result<Liveness, StoreError> {
        liveness::liveness(&self.pool, silent_after, grace).await
    }

    async fn retire_instance(&self, grace: Duration) -> Result<(), StoreError> {
        self.heartbeat.retire().await;
        recovery::retire_instance(&self.pool, &self.instance, grace).await
    }

    async fn apply_reports(
        &self,
        reports: &[AttemptReport],
        retry_lease: Duration,
    ) -> Result<Applied, StoreError> {
        reports::apply_reports(&self.reports_pool, reports, retry_lease).await
    }

    fn hold_run(&self, run: RunKey) {
        self.run_claims.hold(run);
    }

    async fn claim_run(&self, run: RunKey, lease: Duration) -> Result<bool, StoreError> {
        self.run_claims.claim(run, lease).await
    }
}

#[async_trait::async_trait]
impl ScheduleStore for PostgresStore {
    async fn create_schedule(&self, schedule: NewSchedule) -> Result<Schedule, StoreError> {
        schedules::create(&self.pool, &schedule).await
    }

    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        schedules::get(&self.pool, id).await
    }

    async fn list_schedules(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Schedule>, StoreError> {
        schedules::list(&self.pool, after, limit).await
    }

    async fn replace_schedule(
        &self,
        schedule: NewSchedule,
    ) -> Result<Option<Schedule>, StoreError> {
        schedules::replace(&self.pool, &schedule).await
    }

    async fn pause_schedule(
        &self,
        id: Uuid,
        paused: bool,
        note: Option<String>,
    ) -> Result<Option<Schedule>, StoreError> {
        schedules::pause(&self.pool, id, paused, note).await
    }

    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError> {
        schedules::delete(&self.pool, id).await
    }

    async fn recent_fires(&self, id: Uuid, limit: i64) -> Result<Vec<FireRecord>, StoreError> {
        schedules::recent_fires(&self.pool, id, limit).await
    }

    async fn fire_due(&self, pass: FirePass) -> Result<Fired, StoreError> {
        fires::fire_due(&self.pool, pass, &self.instance).await
    }

    async fn create_fires(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<(Vec<Uuid>, Vec<Dispatch>), StoreError> {
        fires::create_fires(&self.pool, &jobs, dispatch_before, grace, &self.instance).await
    }

    async fn claim_fire_run(
        &self,
        run: RunKey,
        lease: Duration,
        fire: Fire,
        moment: FireMoment,
    ) -> Result<FireClaim, StoreError> {
        fires::claim_fire_run(&self.pool, run, lease, fire, moment, &self.instance).await
    }

    async fn purge(
        &self,
        before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError> {
        retention::purge(&self.pool, before, keys_before, limit).await
    }
}
