//! `ScannerActor`: finds the jobs that fall due soon, and the jobs a crash lost, and
//! publishes them for the executors.
//!
//! Owns two schedules. Every `scanner.interval` it claims, in batches, the `SCHEDULED` jobs
//! due before the horizon (now + two intervals: the current window and the next) and
//! publishes each claim to `kafka.topic.jobs` ([`scheduling::claim_due`]; a job created inside
//! that horizon is claimed and published by the API at once, so it never waits for a scan). Every `recovery.interval` it looks for jobs
//! whose lease ran out (see [`crate::store::Store::recover_expired`]) and publishes them again under a new
//! epoch; a job that was running on a process that died is taken back only once the result
//! writers have written every report that process could have published (see
//! [`super::written_reports`]). Passes of one kind never overlap. Scanners of several
//! processes need no leader: claims use `FOR UPDATE SKIP LOCKED`.
//!
//! Receives: [`StopClaiming`], [`Fail`]. Sends: dispatch records to Kafka (through
//! [`crate::scheduling`], which holds the rules of claiming and publishing).
//!
//! On failure: a pass that cannot reach the store is logged and retried at the next tick;
//! after [`FAILURES_BEFORE_RESTART`] failed passes in a row the actor stops and its supervisor
//! restarts it. A claimed job whose dispatch cannot be published is released (back to
//! `SCHEDULED`) so that the next scan claims it again.

use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::supervision::{self, Fail};
use super::written_reports::WrittenReports;
use super::{ActorKind, Services};
use crate::scheduling;
use crate::store::{Heartbeats, StoreError};

/// Consecutive failed passes after which the actor restarts itself.
pub const FAILURES_BEFORE_RESTART: u32 = 3;

const KIND: ActorKind = ActorKind::Scanner;

/// Stop claiming: the process is shutting down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopClaiming;

/// Which of the two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Due,
    Recovery,
}

/// Claims due jobs and recovers lost ones.
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct ScannerActor {
    services: Services,
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
    pub fn new(services: Services) -> Self {
        Self {
            services,
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
        let services = self.services.clone();
        let check_heartbeats = self.reachable_since.elapsed() > services.settings.recovery.grace;
        let written_reports = Arc::clone(&self.written_reports);
        let work = async move {
            match pass {
                Pass::Due => scheduling::claim_due(&services).await,
                Pass::Recovery => recover_lost(&services, check_heartbeats, &written_reports).await,
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

/// Reads where the result writers stand on the results topic; returns the instant before
/// which every report has been written, if one is known. `None` while the bus cannot be
/// read: recovery then leaves running jobs alone.
async fn reports_written_before(
    services: &Services,
    written_reports: &Mutex<WrittenReports>,
) -> Option<DateTime<Utc>> {
    let settings = &services.settings;
    let noted = Utc::now();
    match services
        .bus
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
    services: &Services,
    check_heartbeats: bool,
    written_reports: &Mutex<WrittenReports>,
) -> Result<usize, StoreError> {
    let heartbeats = if check_heartbeats {
        Heartbeats::Checked {
            reports_written_before: reports_written_before(services, written_reports).await,
        }
    } else {
        Heartbeats::Unchecked
    };
    let settings = &services.settings;
    let recovered = services
        .store
        .recover_expired(
            settings.scanner.batch_size,
            settings.recovery.grace,
            settings.recovery.max_lost_attempts,
            heartbeats,
        )
        .await?;
    Ok(scheduling::publish_recovered(services, &recovered).await)
}

impl Actor for ScannerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.services.metrics, KIND);
        self.scanning = false;
        self.recovering = false;
        if self.stopped {
            return;
        }
        let settings = &self.services.settings;
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
        supervision::on_stopped(&self.services.metrics, KIND);
    }
}

impl Supervised for ScannerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.services.metrics, KIND);
    }
}

impl Handler<StopClaiming> for ScannerActor {
    type Result = ();

    fn handle(&mut self, _: StopClaiming, _: &mut Context<Self>) {
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
