//! `ScannerActor`: finds the jobs that fall due soon, and the jobs a crash lost, and
//! publishes them for the executors.
//!
//! Owns two schedules. Every `scanner.interval` it claims, in batches, the `SCHEDULED` jobs
//! due before now + two intervals (the current window and the next) and publishes each claim
//! to `kafka.topic.jobs`. (A job created inside that horizon is claimed and published by the
//! API at once, so it never waits for a scan.) Every `recovery.interval` it looks for jobs
//! whose lease ran out (see [`crate::store::Store::recover_expired`]) and publishes them again under a new
//! epoch; a job that was running on a process that died is taken back only once the result
//! writers have written every report that process could have published (see
//! [`super::written_reports`]). Passes of one kind never overlap. Scanners of several
//! processes need no leader: claims use `FOR UPDATE SKIP LOCKED`.
//!
//! Receives: [`Shutdown`], [`Fail`]. Sends: dispatch records to Kafka.
//!
//! On failure: a pass that cannot reach the store is logged and retried at the next tick;
//! after [`FAILURES_BEFORE_RESTART`] failed passes in a row the actor stops and its supervisor
//! restarts it. A claimed job whose dispatch cannot be published is released (back to
//! `SCHEDULED`) so that the next scan claims it again.

use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::supervision::{self, Fail};
use super::written_reports::WrittenReports;
use super::{ActorKind, Runtime};
use crate::bus::Pace;
use crate::domain::Dispatch;
use crate::store::{Heartbeats, StoreError};

/// Consecutive failed passes after which the actor restarts itself.
pub const FAILURES_BEFORE_RESTART: u32 = 3;

const KIND: ActorKind = ActorKind::Scanner;

/// Stop claiming: the process is shutting down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Which of the two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Due,
    Recovery,
}

/// Claims due jobs and recovers lost ones.
#[allow(
    missing_debug_implementations,
    reason = "holds the runtime, which has no Debug"
)]
pub struct ScannerActor {
    runtime: Runtime,
    scanning: bool,
    recovering: bool,
    failures: u32,
    stopped: bool,
    /// Since when every pass reached the database (reset by a failed pass).
    reachable_since: std::time::Instant,
    /// How far the result writers have caught up; read by recovery passes, one at a time.
    written_reports: Arc<Mutex<WrittenReports>>,
}

impl ScannerActor {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            scanning: false,
            recovering: false,
            failures: 0,
            stopped: false,
            reachable_since: std::time::Instant::now(),
            written_reports: Arc::default(),
        }
    }

    fn run(&mut self, pass: Pass, ctx: &mut Context<Self>) {
        let busy = match pass {
            Pass::Due => &mut self.scanning,
            Pass::Recovery => &mut self.recovering,
        };
        if self.stopped || *busy {
            return;
        }
        *busy = true;
        let runtime = self.runtime.clone();
        let check_heartbeats = self.reachable_since.elapsed() > runtime.settings.recovery.grace;
        let written_reports = Arc::clone(&self.written_reports);
        let work = async move {
            match pass {
                Pass::Due => claim_until_caught_up(&runtime).await,
                Pass::Recovery => recover_lost(&runtime, check_heartbeats, &written_reports).await,
            }
        };
        ctx.spawn(actix::fut::wrap_future(work).map(
            move |result: Result<usize, StoreError>, actor: &mut Self, ctx: &mut Context<Self>| {
                match pass {
                    Pass::Due => actor.scanning = false,
                    Pass::Recovery => actor.recovering = false,
                }
                match result {
                    Ok(published) => {
                        actor.failures = 0;
                        if published > 0 {
                            tracing::debug!(published, ?pass, "scanner published dispatches");
                        }
                    }
                    Err(error) => {
                        actor.failures += 1;
                        actor.reachable_since = std::time::Instant::now();
                        tracing::error!(%error, failures = actor.failures, ?pass, "scan failed");
                        if actor.failures >= FAILURES_BEFORE_RESTART {
                            actor.failures = 0;
                            ctx.stop();
                        }
                    }
                }
            },
        ));
    }
}

/// Claims and publishes batches until a batch comes back short; returns how many jobs were
/// published.
async fn claim_until_caught_up(runtime: &Runtime) -> Result<usize, StoreError> {
    let settings = &runtime.settings;
    let mut published = 0;
    loop {
        let horizon = Utc::now() + settings.scanner.horizon();
        let claimed = runtime
            .store
            .claim_due(
                horizon,
                settings.scanner.batch_size,
                settings.recovery.grace,
            )
            .await?;
        let count = i64::try_from(claimed.len()).unwrap_or(i64::MAX);
        published += publish_all(runtime, &claimed).await;
        if count < settings.scanner.batch_size {
            return Ok(published);
        }
    }
}

/// Reads where the result writers stand on the results topic; returns the instant before
/// which every report has been written, if one is known. `None` while the bus cannot be
/// read: recovery then leaves running jobs alone.
async fn reports_written_before(
    runtime: &Runtime,
    written_reports: &Mutex<WrittenReports>,
) -> Option<DateTime<Utc>> {
    let settings = &runtime.settings;
    let noted = Utc::now();
    match runtime
        .publisher
        .bus()
        .position(
            &settings.result_writer.group_id,
            &settings.kafka.topic.updated_jobs,
        )
        .await
    {
        Ok(position) => written_reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(noted, &position),
        Err(error) => {
            tracing::warn!(%error, "cannot read the result writers' position; running jobs of silent instances wait");
            None
        }
    }
}

/// Dispatches again the jobs whose lease ran out; returns how many were published.
async fn recover_lost(
    runtime: &Runtime,
    check_heartbeats: bool,
    written_reports: &Mutex<WrittenReports>,
) -> Result<usize, StoreError> {
    let heartbeats = if check_heartbeats {
        Heartbeats::Checked {
            reports_written_before: reports_written_before(runtime, written_reports).await,
        }
    } else {
        Heartbeats::Unchecked
    };
    let settings = &runtime.settings;
    let recovered = runtime
        .store
        .recover_expired(
            settings.scanner.batch_size,
            settings.recovery.grace,
            settings.recovery.max_lost_attempts,
            heartbeats,
        )
        .await?;
    let metrics = &runtime.metrics;
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
            "recovered jobs whose lease ran out"
        );
    }
    Ok(publish_all(runtime, &recovered.dispatches).await)
}

/// Publishes `dispatches`, releasing the claim of any that cannot be published; returns how
/// many were published. A lone dispatch leaves at once (a job created due soon waits for it);
/// several travel in batches ([`Pace::Batched`]).
pub async fn publish_all(runtime: &Runtime, dispatches: &[Dispatch]) -> usize {
    let pace = if dispatches.len() > 1 {
        Pace::Batched
    } else {
        Pace::Prompt
    };
    let sends = dispatches.iter().map(|dispatch| async move {
        match runtime.publisher.dispatch(dispatch, pace).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(job_id = %dispatch.job_id, %error, "cannot publish a dispatch; releasing the job");
                if let Err(error) = runtime
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
    let sent = join_all(sends)
        .await
        .into_iter()
        .filter(|sent| *sent)
        .count();
    runtime.metrics.jobs_dispatched.inc_by(sent as u64);
    sent
}

impl Actor for ScannerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.runtime.metrics, KIND);
        self.scanning = false;
        self.recovering = false;
        if self.stopped {
            return;
        }
        let settings = &self.runtime.settings;
        ctx.run_interval(settings.scanner.interval, |actor, ctx| {
            actor.run(Pass::Due, ctx)
        });
        ctx.run_interval(settings.recovery.interval, |actor, ctx| {
            actor.run(Pass::Recovery, ctx)
        });
        self.run(Pass::Due, ctx);
        self.run(Pass::Recovery, ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.runtime.metrics, KIND);
    }
}

impl Supervised for ScannerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.runtime.metrics, KIND);
    }
}

impl Handler<Shutdown> for ScannerActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        // Passes in flight finish; no new ones start.
        self.stopped = true;
    }
}

impl Handler<Fail> for ScannerActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}
