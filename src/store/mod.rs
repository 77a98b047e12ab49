//! Where jobs live: the [`Store`] trait and its two implementations.
//!
//! - [`postgres`]: PostgreSQL, shared by every process of a distributed deployment (the
//!   scanners of several processes claim with `FOR UPDATE SKIP LOCKED`).
//! - [`sqlite`]: an embedded SQLite file, for the standalone mode: one process, no servers.
//!
//! Both keep the same rules, in the same columns (see `docs/state-machine.md` and
//! `docs/guarantees.md`): a job is claimed under a new epoch for every dispatch, every
//! attempt's run is claimed once before it starts, a report moves a job only forward and only
//! under its current epoch, and a job in flight carries a lease after which it is recovered.
//! The store contract suite (`tests/store`) drives this trait with the same tests on both; the
//! behavioural contract suite (`tests/api/contract.rs`) does the same through the API.
//!
//! Rows are mapped to the domain's types once, in [`rows`]; errors are [`StoreError`], the
//! same for both.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{AttemptOutcome, AttemptReport, Dispatch, Job, JobStatus, NewJob};

pub mod batch_queue;
mod error;
pub mod postgres;
pub mod rows;
mod schedules;
pub mod sqlite;

pub use error::StoreError;
pub use schedules::{
    FireClaim, FireMoment, FirePass, FireRecord, Fired, Moved, ScheduleStore, fire_job, plan_fires,
};

/// One attempt of a job, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub epoch: i64,
    pub status: AttemptOutcome,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
}

/// What applying a batch of reports did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reports that moved a job or an attempt forward.
    pub applied: u64,
    /// Reports of an older dispatch, or repeating or going behind what is stored.
    pub ignored: u64,
}

/// Which instances are alive, as the store knows it (see `store::postgres::liveness`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// The live instances, each with the partitions of the jobs topic its dispatcher holds.
    pub alive: Vec<(String, Vec<i32>)>,
    /// The dead ones: gone with their process, or silent for the recovery grace.
    pub dead: Vec<String>,
}

/// What a recovery pass may take back besides the jobs whose lease ran out (see
/// `store::postgres::recovery::recover`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LostScope {
    /// Dead instances: the jobs they hold, and those they dispatched that nobody holds, are
    /// lost at once.
    pub dead: Vec<String>,
    /// Those of `dead` every report of which is written: the runs they claimed are lost too.
    pub fenced: Vec<String>,
    /// Partitions of the jobs topic no live instance's dispatcher holds: a dispatched job that
    /// nobody holds, on one of them, is lost once it was dispatched `unheld_after` ago (a
    /// partition moving between live dispatchers has no holder for a moment).
    pub unheld_partitions: Vec<i32>,
    pub unheld_after: Duration,
    /// How many partitions the jobs topic has (`bus::partition_of`).
    pub partitions: i32,
}

/// What a recovery pass did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Jobs to publish again, under their new epoch.
    pub dispatches: Vec<Dispatch>,
    /// Attempts found lost (their job was `RUNNING`).
    pub lost_attempts: u64,
    /// Jobs ended `FAILED` because they were lost more than `recovery.max_lost_attempts` times.
    pub failed: u64,
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Of this status (as shown) only.
    pub status: Option<JobStatus>,
    /// Made by this schedule's fires only.
    pub schedule_id: Option<Uuid>,
    /// Whose name contains this text, in any case (ASCII).
    pub name: Option<String>,
    /// Created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this time.
    pub created_before: Option<DateTime<Utc>>,
}

impl JobFilter {
    /// The `LIKE` pattern of `name` (with `\` as its escape), when there is one.
    pub fn name_pattern(&self) -> Option<String> {
        self.name.as_ref().map(|name| {
            let mut pattern = String::with_capacity(name.len() + 2);
            pattern.push('%');
            for character in name.chars() {
                if matches!(character, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(character);
            }
            pattern.push('%');
            pattern
        })
    }

    /// The ids a listing reads lie in `[low, high)`: job ids are UUIDv7, whose first 48 bits
    /// are the creation time in milliseconds, so a creation time range is an id range (read
    /// from the listing indexes), and the cursor `after` lowers the upper end.
    pub fn id_range(&self, after: Option<Uuid>) -> (Uuid, Uuid) {
        let low = self.created_after.map_or(Uuid::nil(), first_id_at);
        let high = self
            .created_before
            .map_or(Uuid::max(), first_id_at)
            .min(after.unwrap_or(Uuid::max()));
        (low, high)
    }
}

/// The smallest UUIDv7 made at `at`'s millisecond (none before the epoch).
fn first_id_at(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The job had not started its attempt: it is `CANCELLED` and never runs.
    Waiting,
    /// Its attempt's run was claimed (it shows `RUNNING`): it is `CANCELLED`, and the
    /// instance running it stops the attempt at its next heartbeat.
    Running,
    /// The job had ended already: nothing changed.
    AlreadyFinal,
}

/// An idempotency key, with the hash of the job its request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// What a keyed create did with each job (see [`Store::create_keyed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// Stored now.
    Created(Uuid),
    /// Its key names a job stored before for the same request: that one stands for it.
    Existing(Uuid),
}

/// The answer of [`Store::create_keyed`].
#[derive(Debug, Clone)]
pub enum KeyedCreate {
    /// Each job, in the order given, and the dispatches of those stored claimed.
    Stored {
        jobs: Vec<Keyed>,
        dispatches: Vec<Dispatch>,
    },
    /// The key of job `index` names a job created for another request: nothing is stored.
    Reused { index: usize },
}

/// One attempt of one dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub job_id: Uuid,
    pub epoch: i64,
    pub attempt: i32,
}

/// Everything the API and the actors ask of the store. Implementations are shared by every
/// actor of a process (`Arc<dyn Store>`); each belongs to one instance (named in claims and
/// heartbeats) and is safe to call from many tasks at once.
#[async_trait::async_trait]
pub trait Store: ScheduleStore + Send + Sync {
    /// Where the data lives, for logs.
    fn location(&self) -> String;

    /// Checks that the store answers, for the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new job as `SCHEDULED`.
    async fn create(&self, job: NewJob) -> Result<Job, StoreError>;

    /// Stores a new job already claimed for dispatch (`DISPATCHED`, epoch 1, a lease until
    /// its time plus `grace`), because it is due within the horizon already scanned.
    async fn create_claimed(
        &self,
        job: NewJob,
        grace: Duration,
    ) -> Result<(Job, Dispatch), StoreError>;

    /// Stores `jobs` all or none; those due before `dispatch_before` are stored claimed, as
    /// [`Store::create_claimed`] does, and returned for publishing.
    async fn create_many(
        &self,
        jobs: Vec<NewJob>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError>;

    /// Stores `jobs` as [`Store::create_many`] does, all or none, honouring their idempotency
    /// keys: a key that names a job stored within `retention` for the same request (the same
    /// hash) stands for that job, which is not stored again; one that names a job of another
    /// request refuses the whole call. The key is recorded in the same transaction as its job,
    /// so two calls with one key, at once on two processes, store one job.
    async fn create_keyed(
        &self,
        jobs: Vec<(NewJob, Option<IdempotencyKey>)>,
        dispatch_before: DateTime<Utc>,
        grace: Duration,
        retention: Duration,
    ) -> Result<KeyedCreate, StoreError>;

    /// Cancels the job `id` unless it has ended (`None` when there is no such job): it becomes
    /// `CANCELLED` at once, with no lease, and an instance holding it is told at its next
    /// heartbeat ([`Store::heartbeat`]). A run not yet claimed can no longer be. `by` names
    /// who cancelled it (`cancelled_by`).
    async fn cancel(&self, id: Uuid, by: Option<String>) -> Result<Option<Cancelled>, StoreError>;

    /// The job `id` and its attempts, oldest first.
    async fn get_job(&self, id: Uuid) -> Result<Option<(Job, Vec<Attempt>)>, StoreError>;

    /// Up to `limit` jobs, newest first, those `filter` lets through, after the job `after`.
    async fn list_jobs(
        &self,
        filter: JobFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError>;

    /// How many jobs there are of each status (as shown: a claimed run is `RUNNING`), in the
    /// order of [`JobStatus::ALL`], each counted up to `up_to` at most: the cost of a count is
    /// bounded by `up_to` entries of the listing index per status, whatever the table holds.
    async fn count_jobs(&self, up_to: i64) -> Result<Vec<(JobStatus, i64)>, StoreError>;

    /// Claims up to `limit` scheduled jobs due before `horizon`, earliest first: each becomes
    /// `DISPATCHED` under a new epoch with a lease until its time plus `grace`.
    async fn claim_due(
        &self,
        horizon: DateTime<Utc>,
        limit: i64,
        grace: Duration,
    ) -> Result<Vec<Dispatch>, StoreError>;

    /// Hands back the claim of `epoch` (its dispatch could not be published), so that the
    /// next scan claims the job again.
    async fn release_claim(&self, job_id: Uuid, epoch: i64) -> Result<(), StoreError>;

    /// Hands back a job whose dispatch `run.epoch` has not started `run.attempt` here (an
    /// instance shutting down): a new epoch, no holder, its lease run out, so that the next
    /// recovery pass dispatches it at once; a run of it this instance claimed goes back with
    /// it, unstarted. False when the job has moved on meanwhile.
    async fn hand_back(&self, run: RunKey) -> Result<bool, StoreError>;

    /// Finds up to `limit` jobs in flight that were lost and dispatches them again under a
    /// new epoch (the rules are in `store::postgres::recovery::recover`).
    async fn recover(
        &self,
        limit: i64,
        grace: Duration,
        max_lost: i32,
        scope: &LostScope,
    ) -> Result<Recovered, StoreError>;

    /// Forgets the instances of `fenced` that hold no job in flight any more and left none
    /// dispatched that nobody holds.
    async fn forget(&self, fenced: &[String]) -> Result<(), StoreError>;

    /// Records that this instance is alive, and the partitions of the jobs topic its
    /// dispatcher holds; returns the jobs it holds that were cancelled since the last beat.
    /// Once the instance is retired ([`Store::retire_instance`]), records nothing.
    async fn heartbeat(&self, partitions: &[i32]) -> Result<Vec<Uuid>, StoreError>;

    /// Which instances are alive: beaten within `grace`, and holding their liveness lock or
    /// beaten within `silent_after`.
    async fn liveness(
        &self,
        silent_after: Duration,
        grace: Duration,
    ) -> Result<Liveness, StoreError>;

    /// Records that this instance stopped cleanly: its heartbeat is set `grace` back and it
    /// beats no more (a beat still under way when the process stops cannot make it alive
    /// again), so that it counts as dead at once, and what it still holds is recovered at once.
    async fn retire_instance(&self, grace: Duration) -> Result<(), StoreError>;

    /// Applies `reports`, each job's atomically and in arrival order, so that a repeated,
    /// reordered or stale report changes nothing. On an error some jobs' reports may be
    /// applied: applying the batch again is safe.
    async fn apply_reports(
        &self,
        reports: &[AttemptReport],
        retry_lease: Duration,
    ) -> Result<Applied, StoreError>;

    /// Records, best effort, that this instance holds the dispatch `run` while it waits.
    fn hold_run(&self, run: RunKey);

    /// Claims the run of `run` before it starts: true if this caller may start it (the
    /// dispatch is current and the attempt has not started). The job reads `RUNNING` from
    /// then, with a lease of `lease` (PostgreSQL records it as a run lease on a row that stays
    /// `DISPATCHED`, migration V8); its `started_at` comes later, from the attempt's report.
    async fn claim_run(&self, run: RunKey, lease: Duration) -> Result<bool, StoreError>;
}
