//! `ScannerActor`: finds the jobs that fall due soon, and the jobs a crash lost, and
//! publishes them for the executors.
//!
//! Runs four passes. Every `scanner.interval` it claims, in batches, the `SCHEDULED` jobs
//! due before the horizon (now + two intervals: the current window and the next) and
//! publishes each claim to `kafka.topic.jobs` ([`scheduling::claim_due`]; a job created inside
//! that horizon is claimed and published by the API at once, so it never waits for a scan).
//!
//! Every `recovery.interval` it takes back the jobs that were lost
//! ([`crate::store::Store::recover`]): those whose lease ran out, and those of the instances
//! that died, told apart by their liveness lock and heartbeat
//! ([`crate::store::Store::liveness`]). Before it records a dead instance's claimed runs
//! `LOST`, it writes every report still unwritten on the results topic itself (the writers'
//! group may have lost a member too), so that an attempt whose result reached Kafka is never
//! run again. The jobs it takes back go to this process's own executors at once, when it has
//! the executor role, rather than to a Kafka partition that may still belong to the dead
//! process.
//!
//! Every `schedules.interval` it makes the schedules' fires due within `schedules.lookahead`
//! ([`scheduling::fire_due`]): their jobs are stored claimed and published at once, so a
//! schedule's job starts as precisely as a one-off job. Every `jobs.retention_interval` it
//! deletes a batch of finished jobs older than `jobs.retention` ([`scheduling::purge`]).
//! Passes of one kind never overlap. Scanners of several processes need no leader:
//! claims use `FOR UPDATE SKIP LOCKED`.
//!
//! Receives: [`StopClaiming`], [`Fail`]. Sends: dispatch records to Kafka (through
//! [`crate::scheduling`], which holds the rules of claiming and publishing), recovered
//! dispatches to the dispatcher ([`RunDispatches`]).
//!
//! On failure: a pass that cannot reach the store is logged and retried at the next tick;
//! after [`FAILURES_BEFORE_RESTART`] failed passes in a row the actor stops and its supervisor
//! restarts it. A claimed job whose dispatch cannot be published is released (back to
//! `SCHEDULED`) so that the next scan claims it again.

use std::collections::HashSet;
use std::time::Instant;

use actix::prelude::*;

use super::dispatcher::RunDispatches;
use super::supervision::{self, Fail};
use super::{ActorKind, Services};
use crate::domain::AttemptReport;
use crate::scheduling;
use crate::store::{LostScope, Recovered, StoreError};

/// Consecutive failed passes after which the actor restarts itself.
pub const FAILURES_BEFORE_RESTART: u32 = 3;

const KIND: ActorKind = ActorKind::Scanner;

/// Stop claiming: the process is shutting down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopClaiming;

/// Which of the passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Due,
    Recovery,
    Fires,
    Retention,
}

impl Pass {
    fn index(self) -> usize {
        match self {
            Pass::Due => 0,
            Pass::Recovery => 1,
            Pass::Fires => 2,
            Pass::Retention => 3,
        }
    }
}

/// Claims due jobs and recovers lost ones.
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct ScannerActor {
    services: Services,
    /// Which passes are under way ([`Pass::index`]): one of each kind at a time.
    busy: [bool; 4],
    failures: u32,
    stopped: bool,
    /// Since when every pass reached the database (reset by a failed pass).
    reachable_since: Instant,
    /// This process's dispatcher, which runs recovered jobs at once (none without the
    /// executor role: they are published then).
    local: Option<Recipient<RunDispatches>>,
}

impl ScannerActor {
    pub fn new(services: Services, local: Option<Recipient<RunDispatches>>) -> Self {
        Self {
            services,
            busy: [false; 4],
            failures: 0,
            stopped: false,
            reachable_since: Instant::now(),
            local,
        }
    }

    fn run(&mut self, pass: Pass, ctx: &mut Context<Self>) {
        if self.stopped || self.busy[pass.index()] {
            return;
        }
        self.busy[pass.index()] = true;
        let services = self.services.clone();
        // After an outage, live instances need a few beats to lock and beat again before any
        // can be taken for dead.
        let liveness_known = self.reachable_since.elapsed()
            > services.settings.recovery.silent_after().saturating_mul(2);
        let local = self.local.clone();
        let work = async move {
            match pass {
                Pass::Due => scheduling::claim_due(&services).await,
                Pass::Recovery => {
                    let recovered =
                        recover_lost(&services, liveness_known, local.is_some()).await?;
                    Ok(scheduling::run_recovered(&services, &recovered, local.as_ref()).await)
                }
                Pass::Fires => scheduling::fire_due(&services).await,
                Pass::Retention => scheduling::purge(&services)
                    .await
                    .map(|purged| usize::try_from(purged).unwrap_or(usize::MAX)),
            }
        };
        ctx.spawn(actix::fut::wrap_future(work).map(
            move |result: Result<usize, StoreError>, actor: &mut Self, ctx: &mut Context<Self>| {
                actor.busy[pass.index()] = false;
                match result {
                    Ok(published) => {
                        actor.failures = 0;
                        if published > 0 {
                            tracing::debug!(published, ?pass, "scanner published dispatches");
                        }
                    }
                    Err(error) => {
                        actor.failures += 1;
                        actor.reachable_since = Instant::now();
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

/// Takes back the jobs that were lost. With `liveness_known`, also those of dead instances,
/// and, when this process runs jobs itself (`runs_locally`), the dispatches left on
/// partitions of the jobs topic that no live instance holds.
async fn recover_lost(
    services: &Services,
    liveness_known: bool,
    runs_locally: bool,
) -> Result<Recovered, StoreError> {
    let settings = &services.settings;
    let recovery = &settings.recovery;
    let mut scope = LostScope::default();
    if liveness_known {
        let liveness = services
            .store
            .liveness(recovery.silent_after(), recovery.grace)
            .await?;
        scope.dead = liveness.dead;
        if runs_locally {
            match services.bus.partitions(&settings.kafka.topic.jobs).await {
                Ok(partitions) => {
                    let held: HashSet<i32> = liveness
                        .alive
                        .iter()
                        .flat_map(|(_, partitions)| partitions.iter().copied())
                        .collect();
                    scope.partitions = partitions;
                    scope.unheld_after = recovery.silent_after();
                    scope.unheld_partitions = (0..partitions)
                        .filter(|partition| !held.contains(partition))
                        .collect();
                }
                Err(error) => tracing::warn!(%error, "cannot read the jobs topic's partitions"),
            }
        }
        if !scope.dead.is_empty() && write_unwritten_reports(services).await {
            scope.fenced = scope.dead.clone();
        }
    }
    let recovered = services
        .store
        .recover(
            settings.scanner.batch_size,
            recovery.grace,
            recovery.max_lost_attempts,
            &scope,
        )
        .await?;
    if !scope.fenced.is_empty() {
        services.store.forget(&scope.fenced).await?;
    }
    Ok(recovered)
}

/// Writes the reports the result writers have not handled yet (read from the results topic
/// up to its end now), as a writer would: after this, every report a dead instance published
/// is in the store. True once done; false when the bus or the store cannot be read, and a
/// dead instance's claimed runs then wait for a later pass.
async fn write_unwritten_reports(services: &Services) -> bool {
    let settings = &services.settings;
    let records = match services
        .bus
        .unhandled(
            &settings.result_writer.group_id,
            &settings.kafka.topic.updated_jobs,
        )
        .await
    {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, "cannot read the unwritten reports; the dead instances' running jobs wait");
            return false;
        }
    };
    // A record that is not a report is the result writers' to set aside.
    let reports: Vec<AttemptReport> = records
        .iter()
        .filter_map(|record| record.decode().ok())
        .collect();
    if reports.is_empty() {
        return true;
    }
    match services
        .store
        .apply_reports(&reports, settings.retry_lease())
        .await
    {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot write the unwritten reports; the dead instances' running jobs wait");
            false
        }
    }
}

impl Actor for ScannerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.services.metrics, KIND);
        self.busy = [false; 4];
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
        ctx.run_interval(settings.schedules.interval, |actor, ctx| {
            actor.run(Pass::Fires, ctx)
        });
        ctx.run_interval(settings.jobs.retention_interval, |actor, ctx| {
            actor.run(Pass::Retention, ctx)
        });
        self.run(Pass::Due, ctx);
        self.run(Pass::Recovery, ctx);
        self.run(Pass::Fires, ctx);
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
