//! SQLite: the store of the standalone mode, one file under `standalone.data_dir`.
//!
//! One connection, in WAL mode with `synchronous = NORMAL` (a commit survives a crash of the
//! process; the last commits before a power cut may not), opened with an exclusive lock so
//! that a second process on the same data directory is refused rather than corrupting it.
//! Statements run on tokio's blocking threads, one at a time. The schema holds the same
//! columns as PostgreSQL's and the statements keep the same rules (`store::postgres`, module
//! for module: `jobs`, `claims`, `recovery`, `reports`, `control`); what PostgreSQL does in one set
//! statement over a batch is a loop inside one transaction here. Where they differ, and why:
//!
//! - the indexes and the storage settings PostgreSQL's migrations add for speed (fill factor,
//!   statistics) have no counterpart;
//! - instances are recognised by their heartbeat alone, and every job in flight when the file
//!   opens was lost (below).
//!
//! Because the lock admits one process, every job found in flight when the store opens was
//! lost with the previous process: opening expires their leases, so the first recovery pass
//! dispatches them again at once (a running attempt is recorded `LOST`, as in the
//! distributed mode), instead of waiting for their leases to run out.

mod claims;
mod control;
mod fires;
mod jobs;
mod recovery;
mod reports;
mod rows;
mod schedules;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode};

use uuid::Uuid;

use super::{
    Applied, Attempt, Cancelled, FireClaim, FireMoment, FirePass, FireRecord, Fired,
    IdempotencyKey, JobFilter, KeyedCreate, Liveness, LostScope, Recovered, RunKey, ScheduleStore,
    Store, StoreError,
};
use crate::domain::{AttemptReport, Dispatch, Fire, Job, JobStatus, NewJob, NewSchedule, Schedule};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "kairos.db";

/// How long opening waits for a lock held by another process.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// The SQLite store of the (single) standalone instance.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    instance: Arc<str>,
    path: PathBuf,
    /// Set by [`Store::retire_instance`], under the connection's lock: no beat is recorded
    /// after it.
    retired: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating when missing) `kairos.db` in `data_dir`, applies the migrations,
    /// takes the file's exclusive lock and expires the leases of the jobs a previous process
    /// left in flight.
    ///
    /// # Errors
    /// [`StoreError::DataDirectory`] when the folder cannot be created or another process
    /// uses it; [`StoreError`] when a migration fails.
    pub async fn open(data_dir: &Path, instance: &str) -> Result<Self, StoreError> {
        // Relative to the working directory, as configured; logs and errors show it whole.
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let instance: Arc<str> = instance.into();
        tokio::task::spawn_blocking(move || Self::open_blocking(&data_dir, instance))
            .await
            .map_err(|error| StoreError::Unavailable(error.to_string()))?
    }

    fn open_blocking(data_dir: &Path, instance: Arc<str>) -> Result<Self, StoreError> {
        let directory_error = |reason: std::io::Error| StoreError::DataDirectory {
            path: data_dir.display().to_string(),
            reason: reason.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(directory_error)?;
        // Kairos's own: a job running as another user cannot open it.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(directory_error)?;
        }
        let path = data_dir.join(DATABASE_FILE);
        let mut connection = Connection::open(&path)?;
        connection.busy_timeout(LOCK_WAIT)?;
        let locked = connection.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; \
             PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; \
             BEGIN EXCLUSIVE; COMMIT;",
        );
        if let Err(rusqlite::Error::SqliteFailure(failure, _)) = &locked
            && failure.code == ErrorCode::DatabaseBusy
        {
            return Err(directory_error(std::io::Error::other(
                "it is in use by another Kairos process",
            )));
        }
        locked?;
        let report = embedded::migrations::runner()
            .run(&mut connection)
            .map_err(|error| StoreError::Migration(error.to_string()))?;
        for migration in report.applied_migrations() {
            tracing::info!(
                version = migration.version(),
                name = migration.name(),
                "applied migration"
            );
        }
        // Only now: a migration that makes a table again drops the old one, which would
        // delete the rows referring to it if foreign keys were on (SQLite's advice).
        connection.execute_batch("PRAGMA foreign_keys = ON;")?;
        let expired = recovery::expire_leases(&connection, Utc::now())?;
        if expired > 0 {
            tracing::warn!(
                jobs = expired,
                "jobs were in flight when the previous process stopped; dispatching them again"
            );
        }
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            instance,
            path,
            retired: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = store
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            work(&mut connection, &store.instance)
        })
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn location(&self) -> String {
        format!("SQLite at {}", self.path.display())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(|connection, _| {
            connection.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn create(&self, job: NewJob) -> Result<Job, StoreError> {
        let inserted =
            self.call(move |connection, _| jobs::insert(connection, &job, None, Utc::now()));
        Ok(inserted.await?.0)
    }

    async fn create_claimed(
        &self,
        job: NewJob,
        grace: Duration,
    ) -> Result<(Job, Dispatch), StoreError> {
        self.call(move |connection, instance| {
            jobs::insert(connection, &job, Some((instance, grace)), Utc::now())
        })
        .await
    }

    async fn create_many(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError> {
        self.call(move |connection, instance| {
            jobs::insert_many(connection, &jobs, dispatch_before, instance, grace)
        })
        .await
    }

    async fn create_keyed(
        &self,
        jobs: Vec<(NewJob, Option<IdempotencyKey>)>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
        retention: Duration,
    ) -> Result<KeyedCreate, StoreError> {
        self.call(move |connection, instance| {
            control::create_keyed(
                connection,
                &jobs,
                dispatch_before,
                grace,
                retention,
                instance,
            )
        })
        .await
    }

    async fn cancel(&self, id: Uuid, by: Option<String>) -> Result<Option<Cancelled>, StoreError> {
        self.call(move |connection, _| control::cancel(connection, id, by.as_deref()))
            .await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
        self.call(move |connection, _| jobs::get(connection, id))
            .await
    }

    async fn list_jobs(
        &self,
        filter: JobFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        self.call(move |connection, _| jobs::list(connection, &filter, after, limit))
            .await
    }

    async fn count_jobs(&self, up_to: i64) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        self.call(move |connection, _| jobs::count(connection, up_to))
            .await
    }

    async fn claim_due(
        &self,
        horizon: DateTime<Utc>,
        limit: i64,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError> {
        self.call(move |connection, instance| {
            claims::claim_due(connection, horizon, limit, instance, grace)
        })
        .await
    }

    async fn release_claim(&self, job_id: Uuid, epoch: i64) -> Result<(), StoreError> {
        self.call(move |connection, _| claims::release(connection, job_id, epoch))
            .await
    }

    async fn hand_back(&self, run: RunKey) -> Result<bool, StoreError> {
        self.call(move |connection, instance| recovery::hand_back(connection, run, instance))
            .await
    }

    async fn recover(
        &self,
        limit: i64,
        grace: Duration,
        max_lost: i32,
        scope: &LostScope,
    ) -> Result<Recovered, StoreError> {
        let scope = scope.clone();
        self.call(move |connection, instance| {
            recovery::recover(connection, limit, instance, grace, max_lost, &scope)
        })
        .await
    }

    async fn forget(&self, fenced: &[String]) -> Result<(), StoreError> {
        let fenced = fenced.to_vec();
        self.call(move |connection, _| recovery::forget(connection, &fenced))
            .await
    }

    async fn heartbeat(&self, partitions: &[i32]) -> Result<Vec<Uuid>, StoreError> {
        let partitions = partitions.to_vec();
        let retired = Arc::clone(&self.retired);
        self.call(move |connection, instance| {
            if retired.load(Ordering::Relaxed) {
                return Ok(Vec::new());
            }
            recovery::heartbeat(connection, instance, &partitions)?;
            control::take_cancellations(connection, instance)
        })
        .await
    }

    async fn liveness(
        &self,
        _silent_after: Duration,
        grace: Duration,
    ) -> Result<Liveness, StoreError> {
        self.call(move |connection, _| recovery::liveness(connection, grace))
            .await
    }

    async fn retire_instance(&self, grace: Duration) -> Result<(), StoreError> {
        let retired = Arc::clone(&self.retired);
        self.call(move |connection, instance| {
            retired.store(true, Ordering::Relaxed);
            recovery::retire_instance(connection, instance, grace)
        })
        .await
    }

    async fn apply_reports(
        &self,
        reports: &[AttemptReport],
        retry_lease: Duration,
    ) -> Result<Applied, StoreError> {
        let reports = reports.to_vec();
        self.call(move |connection, _| reports::apply(connection, &reports, retry_lease))
            .await
    }

    fn hold_run(&self, run: RunKey) {
        let store = self.clone();
        tokio::spawn(async move {
            let held = store
                .call(move |connection, instance| claims::hold(connection, run, instance))
                .await;
            if let Err(error) = held {
                tracing::warn!(%error, job_id = %run.job_id, "cannot record a held dispatch");
            }
        });
    }

    async fn claim_run(&self, run: RunKey, lease: Duration) -> Result<bool, StoreError> {
        self.call(move |connection, instance| claims::claim_run(connection, run, lease, instance))
            .await
    }
}

#[async_trait::async_trait]
impl ScheduleStore for SqliteStore {
    async fn create_schedule(&self, schedule: NewSchedule) -> Result<Schedule, StoreError> {
        self.call(move |connection, _| schedules::create(connection, &schedule))
            .await
    }

    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        self.call(move |connection, _| schedules::get(connection, id))
            .await
    }

    async fn list_schedules(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.call(move |connection, _| schedules::list(connection, after, limit))
            .await
    }

    async fn replace_schedule(
        &self,
        schedule: NewSchedule,
    ) -> Result<Option<Schedule>, StoreError> {
        self.call(move |connection, _| schedules::replace(connection, &schedule))
            .await
    }

    async fn pause_schedule(
        &self,
        id: Uuid,
        paused: bool,
        note: Option<String>,
    ) -> Result<Option<Schedule>, StoreError> {
        self.call(move |connection, _| schedules::pause(connection, id, paused, note))
            .await
    }

    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError> {
        self.call(move |connection, _| schedules::delete(connection, id))
            .await
    }

    async fn recent_fires(&self, id: Uuid, limit: i64) -> Result<Vec<FireRecord>, StoreError> {
        self.call(move |connection, _| schedules::recent_fires(connection, id, limit))
            .await
    }

    async fn fire_due(&self, pass: FirePass) -> Result<Fired, StoreError> {
        self.call(move |connection, instance| fires::fire_due(connection, pass, instance))
            .await
    }

    async fn create_fires(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<(Vec<Uuid>, Vec<Dispatch>), StoreError> {
        self.call(move |connection, instance| {
            fires::create_fires(connection, &jobs, dispatch_before, grace, instance)
        })
        .await
    }

    async fn claim_fire_run(
        &self,
        run: RunKey,
        lease: Duration,
        fire: Fire,
        moment: FireMoment,
    ) -> Result<FireClaim, StoreError> {
        self.call(move |connection, instance| {
            fires::claim_fire_run(connection, run, lease, fire, moment, instance)
        })
        .await
    }

    async fn purge(
        &self,
        before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError> {
        self.call(move |connection, _| fires::purge(connection, before, keys_before, limit))
            .await
    }
}
