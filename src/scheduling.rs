//! When a job is handed to the executors, in one place: the API, the scanner and the executors
//! all follow these rules.
//!
//! - **The horizon.** The scanner claims, every `scanner.interval`, the jobs due before now
//!   plus two intervals (the current window and the next). A job created due before that
//!   horizon would wait for the next scan; so it is stored already claimed and published at
//!   once ([`create`], [`create_many`]).
//! - **Claim, then publish.** A claim gives the job a new epoch and commits before its
//!   dispatch is published; a dispatch that cannot be published is handed back (released to
//!   `SCHEDULED`) so that the next scan claims it again ([`publish_all`]).
//! - **Recovered jobs run where they are found.** A job taken back from a dead instance goes
//!   to this process's own executors when it has some ([`run_recovered`]): the dead
//!   instance's Kafka partitions may not have moved to another yet.
//! - **Hand back.** An executor that stops before its attempt starts gives the job back,
//!   under a new epoch and with its lease run out, so that the next recovery pass of any
//!   instance runs it ([`hand_back`]).

use actix::Recipient;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actors::Services;
use crate::actors::dispatcher::RunDispatches;
use crate::bus::Pace;
use crate::domain::{Dispatch, Job, NewJob};
use crate::store::{FirePass, IdempotencyKey, KeyedCreate, Recovered, RunKey, StoreError};

/// The end of the horizon already scanned: a job due before it is claimed as it is stored.
pub fn claim_before(services: &Services) -> DateTime<Utc> {
    Utc::now() + services.settings.scanner.horizon()
}

/// Stores `job`, claimed and published at once if it is due before the horizon.
///
/// # Errors
/// [`StoreError`] when the job is not stored.
pub async fn create(services: &Services, job: NewJob) -> Result<Job, StoreError> {
    if job.execute_at >= claim_before(services) {
        return services.store.create(job).await;
    }
    let (job, dispatch) = services
        .store
        .create_claimed(job, services.settings.recovery.grace)
        .await?;
    publish_all(services, std::slice::from_ref(&dispatch)).await;
    Ok(job)
}

/// Stores `jobs`, all or none; those due before the horizon are claimed and published at once.
///
/// # Errors
/// [`StoreError`] when the jobs are not stored (none is).
pub async fn create_many(services: &Services, jobs: Vec<NewJob>) -> Result<(), StoreError> {
    let dispatches = services
        .store
        .create_many(
            jobs,
            claim_before(services),
            services.settings.recovery.grace,
        )
        .await?;
    publish_all(services, &dispatches).await;
    Ok(())
}

/// Stores `jobs` with their idempotency keys (see `Store::create_keyed`), all or none; those
/// stored due before the horizon are claimed and published at once.
///
/// # Errors
/// [`StoreError`] when the jobs are not stored (none is).
pub async fn create_keyed(
    services: &Services,
    jobs: Vec<(NewJob, Option<IdempotencyKey>)>,
) -> Result<KeyedCreate, StoreError> {
    let created = services
        .store
        .create_keyed(
            jobs,
            claim_before(services),
            services.settings.recovery.grace,
            services.settings.jobs.idempotency_retention,
        )
        .await?;
    if let KeyedCreate::Stored { dispatches, .. } = &created {
        publish_all(services, dispatches).await;
    }
    Ok(created)
}

/// Stores the jobs of fires given outside their schedule's rule (a trigger, a backfill), one
/// per fire, and publishes those due before the horizon. Returns each fire's job.
///
/// # Errors
/// [`StoreError`] when the jobs are not stored (none is).
pub async fn create_fires(services: &Services, jobs: Vec<NewJob>) -> Result<Vec<Uuid>, StoreError> {
    let (ids, dispatches) = services
        .store
        .create_fires(
            jobs,
            claim_before(services),
            services.settings.recovery.grace,
        )
        .await?;
    services
        .metrics
        .jobs_created
        .inc_by(dispatches.len() as u64);
    publish_all(services, &dispatches).await;
    Ok(ids)
}

/// Fires per schedule per pass, at most: an `every: 1s` schedule makes `schedules.lookahead`
/// worth of fires in its first pass, a few in each after.
const FIRES_PER_SCHEDULE: usize = 1000;

/// Makes the schedules' fires due within `schedules.lookahead`, in batches of
/// `schedules.batch_size` schedules until a batch comes back short, and publishes their jobs
/// (stored claimed). A fire is made once whichever process makes it (see
/// `Store::fire_due`). Returns how many jobs were made.
///
/// # Errors
/// [`StoreError`] when a batch cannot be made; the batches before it stay made.
pub async fn fire_due(services: &Services) -> Result<usize, StoreError> {
    let settings = &services.settings.schedules;
    let mut made = 0;
    loop {
        let now = Utc::now();
        let pass = FirePass {
            until: now + settings.lookahead,
            now,
            // A fire passed by less than the lookahead was only late: its pass was slow, or
            // the process making it died. Older ones were missed: everything was down.
            late: settings.lookahead,
            schedules: settings.batch_size,
            fires: FIRES_PER_SCHEDULE,
            grace: services.settings.recovery.grace,
        };
        let fired = services.store.fire_due(pass).await?;
        let metrics = &services.metrics;
        metrics.fires_made.inc_by(fired.dispatches.len() as u64);
        metrics.fires_missed.inc_by(fired.missed);
        metrics.jobs_created.inc_by(fired.dispatches.len() as u64);
        made += publish_all(services, &fired.dispatches).await;
        if i64::try_from(fired.schedules).unwrap_or(i64::MAX) < settings.batch_size {
            return Ok(made);
        }
    }
}

/// Deletes up to `jobs.retention_batch` finished jobs older than `jobs.retention` (but the
/// latest `keep_last` of each schedule), and idempotency keys past
/// `jobs.idempotency_retention`. A retention of zero keeps every job. Returns how many jobs
/// were deleted.
///
/// # Errors
/// [`StoreError`] when the store cannot be reached.
pub async fn purge(services: &Services) -> Result<u64, StoreError> {
    let jobs = &services.settings.jobs;
    let now = Utc::now();
    let ago = |span: std::time::Duration| {
        chrono::Duration::from_std(span)
            .ok()
            .and_then(|span| now.checked_sub_signed(span))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let before = if jobs.retention.is_zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        ago(jobs.retention)
    };
    let keys_before = ago(jobs.idempotency_retention);
    let purged = services
        .store
        .purge(before, keys_before, jobs.retention_batch)
        .await?;
    services.metrics.jobs_purged.inc_by(purged);
    Ok(purged)
}

/// Claims and publishes the jobs due before the horizon, in batches of `scanner.batch_size`,
/// until a batch comes back short; returns how many were published.
///
/// # Errors
/// [`StoreError`] when a claim fails; what was published before stays published.
pub async fn claim_due(services: &Services) -> Result<usize, StoreError> {
    let settings = &services.settings;
    let mut published = 0;
    loop {
        let claimed = services
            .store
            .claim_due(
                claim_before(services),
                settings.scanner.batch_size,
                settings.recovery.grace,
            )
            .await?;
        let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= settings.scanner.batch_size;
        published += publish_all(services, &claimed).await;
        if !full {
            return Ok(published);
        }
    }
}

/// Hands what a recovery pass dispatched again to `local` (this process's dispatcher), or
/// publishes it when there is none or it cannot take them; counts it and returns how many
/// were handed on.
pub async fn run_recovered(
    services: &Services,
    recovered: &Recovered,
    local: Option<&Recipient<RunDispatches>>,
) -> usize {
    let metrics = &services.metrics;
    metrics.attempts_lost.inc_by(recovered.lost_attempts);
    metrics
        .jobs_recovered
        .inc_by(recovered.dispatches.len() as u64);
    metrics.jobs_failed.inc_by(recovered.failed);
    if !recovered.dispatches.is_empty() || recovered.failed > 0 {
        tracing::warn!(
            redispatched = recovered.dispatches.len(),
            lost_attempts = recovered.lost_attempts,
            failed = recovered.failed,
            "recovered lost jobs"
        );
    }
    if recovered.dispatches.is_empty() {
        return 0;
    }
    if let Some(local) = local {
        match local.try_send(RunDispatches(recovered.dispatches.clone())) {
            Ok(()) => {
                services
                    .metrics
                    .jobs_dispatched
                    .inc_by(recovered.dispatches.len() as u64);
                return recovered.dispatches.len();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot hand recovered jobs to this process's executors; publishing them");
            }
        }
    }
    publish_all(services, &recovered.dispatches).await
}

/// Gives back the job whose `run` has not started here (its executor is stopping): under a
/// new epoch, held by nobody, its lease run out, so that the next recovery pass of any
/// instance runs it (standalone: the next start). A run this instance claimed goes back with
/// it, unstarted. Failures are logged: the job's lease recovers it.
pub async fn hand_back(services: &Services, run: RunKey) {
    if let Err(error) = services.store.hand_back(run).await {
        tracing::warn!(job_id = %run.job_id, %error, "cannot hand the job over");
    }
}

/// Publishes `dispatches`, releasing the claim of any that cannot be published; returns how
/// many were published. A lone dispatch leaves at once (a job created due soon waits for it);
/// several travel in batches ([`Pace::Batched`]).
pub async fn publish_all(services: &Services, dispatches: &[Dispatch]) -> usize {
    let pace = if dispatches.len() > 1 {
        Pace::Batched
    } else {
        Pace::Prompt
    };
    let sends = dispatches.iter().map(|dispatch| async move {
        match services.publisher.dispatch(dispatch, pace).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(job_id = %dispatch.job_id, %error, "cannot publish a dispatch; releasing the job");
                if let Err(error) = services
                    .store
                    .release_claim(dispatch.job_id, dispatch.epoch)
                    .await
                {
                    // The lease recovers it.
                    tracing::error!(job_id = %dispatch.job_id, %error, "cannot release the job");
                }
                false
            }
        }
    });
    let sent = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .filter(|sent| *sent)
        .count();
    services.metrics.jobs_dispatched.inc_by(sent as u64);
    sent
}
