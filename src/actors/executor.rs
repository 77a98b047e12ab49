//! `ExecutorActor`: one per dispatched job. Holds the job's timer and retry counter, runs each
//! attempt at its time and reports every change.
//!
//! Life: `executor.claim_ahead` before the attempt's time, claims its run in the store (so
//! that however often, and wherever, a dispatch is delivered, each attempt starts once, and a
//! superseded dispatch never starts; from the claim on, the job reads `RUNNING`); at its
//! time (never earlier) takes its kind's slot (a command's or a call's, see
//! [`crate::runner::slots`]; a no-op needs none) and runs the attempt under its timeout;
//! reports `RUNNING` if it is still running after `executor.running_report_after`, then
//! reports `SUCCESS`, or `RETRYING` and waits for its backoff before the next attempt, or
//! `FAILED` once `1 + max_retries` attempts have failed.
//! Reports go out in order through an outbox that retries each until the bus acknowledges
//! it. When the final report is acknowledged the executor cancels its timers and waits that
//! are left (a cancelled job's claim timer, the `RUNNING` report of an attempt that ended
//! sooner) and tells the dispatcher, which drops its address, and it ends.
//!
//! Receives: [`Cancel`], [`Release`], [`Fail`]. Sends: attempt reports to the bus, [`ExecutorFinished`] to
//! the dispatcher.
//!
//! On failure: restarted by its supervisor with its state. An attempt that was running is
//! cut short (its process group is killed when the run is dropped) and counts as a failed
//! attempt; a waiting job keeps its time; unacknowledged reports are sent again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::supervision::{self, Fail};
use super::{ActorKind, Services};
use crate::domain::{AttemptOutcome, AttemptReport, Dispatch, JobStatus};
use crate::runner::{AttemptContext, RunResult};

mod claim;
mod control;
mod reports;

pub use control::{Cancel, Release};

const KIND: ActorKind = ActorKind::Executor;

/// Pause between attempts to publish a report that the bus did not acknowledge.
const REPORT_RETRY: Duration = Duration::from_millis(500);

/// Pause before trying again to claim a run while the store cannot be reached.
const START_RETRY: Duration = Duration::from_millis(500);

/// How often a fire waiting behind an earlier one of its schedule (`buffer_one`) asks again.
const OVERLAP_WAIT: Duration = Duration::from_millis(100);

/// An executor is done with its dispatch: its final report is acknowledged.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ExecutorFinished {
    pub job_id: Uuid,
    pub epoch: i64,
}

/// Where the executor is in its job's life.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting for `due` (the job's time, or the end of a retry backoff), the run not yet
    /// claimed.
    Waiting,
    /// The run is claimed; waiting for `due` to start it.
    Claimed,
    /// The attempt's command runs, since the given instant.
    Running(DateTime<Utc>),
    /// The final report is queued; nothing is left to run.
    Finishing,
}

/// Runs one job.
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct ExecutorActor {
    services: Arc<Services>,
    /// Told when the job is done here (the dispatcher).
    dispatcher: Recipient<ExecutorFinished>,
    dispatch: Dispatch,
    /// The attempt waiting or running.
    attempt: i32,
    /// Failed attempts so far (lost ones excluded).
    failures: i32,
    /// When that attempt may start.
    due: DateTime<Utc>,
    phase: Phase,
    /// Reports not yet acknowledged by the bus, oldest first.
    outbox: VecDeque<AttemptReport>,
    publishing: bool,
    /// Set by [`Release`]: hand the job over rather than wait for its next attempt.
    releasing: bool,
    /// Tells the running attempt that its job was cancelled ([`Cancel`]).
    stop: Option<tokio::sync::watch::Sender<bool>>,
    /// Timers and waits that may outlive the job: cancelled once it is done, since actix keeps
    /// an actor alive while its context holds any.
    pending: Vec<SpawnHandle>,
}

impl ExecutorActor {
    pub fn new(
        services: Arc<Services>,
        dispatcher: Recipient<ExecutorFinished>,
        dispatch: Dispatch,
    ) -> Self {
        services.metrics.executors_waiting.inc();
        Self {
            attempt: dispatch.attempt,
            failures: dispatch.failures,
            due: dispatch.execute_at,
            phase: Phase::Waiting,
            services,
            dispatcher,
            dispatch,
            outbox: VecDeque::new(),
            publishing: false,
            releasing: false,
            stop: None,
            pending: Vec::new(),
        }
    }

    /// Runs `then` after `delay`, unless the job is done first.
    fn later(
        &mut self,
        delay: Duration,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let timer = ctx.run_later(delay, then);
        self.pending.push(timer);
    }

    /// Cancels what [`ExecutorActor::pending`] holds: the job is done.
    fn cancel_pending(&mut self, ctx: &mut Context<Self>) {
        for handle in self.pending.drain(..) {
            ctx.cancel_future(handle);
        }
    }

    /// Moves to `phase`, keeping the waiting and running gauges in step.
    fn enter(&mut self, phase: Phase) {
        let metrics = &self.services.metrics;
        match self.phase {
            Phase::Waiting | Phase::Claimed => metrics.executors_waiting.dec(),
            Phase::Running(_) => metrics.executors_running.dec(),
            Phase::Finishing => 0,
        };
        match phase {
            Phase::Waiting | Phase::Claimed => metrics.executors_waiting.inc(),
            Phase::Running(_) => metrics.executors_running.inc(),
            Phase::Finishing => 0,
        };
        self.phase = phase;
    }

    /// Arms the timer for the waiting attempt: its run is claimed `executor.claim_ahead`
    /// before its time (at once if that is past), so that the claim's round trip to the store
    /// is not paid at the start.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        // A fire whose overlap rule looks at the earlier fires is claimed half as far ahead,
        // and only if no earlier fire's job is unended by then (else its rule decides at its
        // time): the previous fire of an every-second schedule has ended by then.
        let claim_ahead = self.services.settings.executor.claim_ahead;
        let ahead = if self.overlap_guarded().is_some() {
            claim_ahead / 2
        } else {
            claim_ahead
        };
        let ahead = chrono::Duration::from_std(ahead).unwrap_or_default();
        let Ok(delay) = (self.due - ahead - Utc::now()).to_std() else {
            self.claim_attempt(ctx);
            return;
        };
        let attempt = self.attempt;
        self.later(delay, ctx, move |actor, ctx| {
            if actor.phase == Phase::Waiting && actor.attempt == attempt {
                actor.claim_attempt(ctx);
            }
        });
    }

    /// Starts the claimed attempt at its time (at once if that is past).
    fn arm_start(&mut self, ctx: &mut Context<Self>) {
        let Ok(delay) = (self.due - Utc::now()).to_std() else {
            self.start_attempt(ctx);
            return;
        };
        let attempt = self.attempt;
        self.later(delay, ctx, move |actor, ctx| {
            if actor.phase == Phase::Claimed && actor.attempt == attempt {
                actor.start_attempt(ctx);
            }
        });
    }

    fn start_attempt(&mut self, ctx: &mut Context<Self>) {
        let slot = self.services.runners.slot(&self.dispatch.spec);
        let Some(slots) = self.services.run_slots.bound(slot) else {
            self.run_attempt(None, ctx);
            return;
        };
        // The attempt takes its slot first, so that its start time (and the lateness) is when
        // it really starts. The wait is spawned, so that a `Release` reaches a job still
        // waiting for its slot; and the slots close when the process stops, which hands every
        // such job back rather than starting it.
        let attempt = self.attempt;
        let slot = slots.acquire_owned();
        let wait = ctx.spawn(actix::fut::wrap_future(slot).map(
            move |permit, actor: &mut Self, ctx: &mut Context<Self>| {
                if actor.attempt != attempt || actor.phase != Phase::Claimed {
                    return;
                }
                match permit {
                    Ok(permit) if !actor.releasing => actor.run_attempt(Some(permit), ctx),
                    _ => {
                        actor.releasing = true;
                        actor.release(ctx);
                    }
                }
            },
        ));
        // A job cancelled while it waits for a slot is done without it.
        self.pending.push(wait);
    }

    /// Runs the claimed attempt now with its kind's runner, holding `permit` (its run slot)
    /// while it runs.
    fn run_attempt(&mut self, permit: Option<OwnedSemaphorePermit>, ctx: &mut Context<Self>) {
        let started_at = Utc::now();
        // The scheduler cannot start a job before it exists: a job created for a time already
        // past counts as due at its creation.
        let due = self.due.max(self.dispatch.created_at.unwrap_or(self.due));
        if let Ok(lateness) = (started_at - due).to_std() {
            let metrics = &self.services.metrics;
            metrics.fire_lateness.observe(lateness.as_secs_f64());
            metrics.trends.lateness(started_at, lateness.as_secs_f64());
        }
        self.enter(Phase::Running(started_at));
        let runners = Arc::clone(&self.services.runners);
        let spec = self.dispatch.spec.clone();
        let (stop, cancel) = tokio::sync::watch::channel(false);
        self.stop = Some(stop);
        let attempt = AttemptContext {
            job_id: self.dispatch.job_id,
            attempt: self.attempt,
            scheduled_at: self.dispatch.execute_at,
            timeout: self.run_timeout(),
            cancel,
        };
        let mut run = Box::pin(async move {
            let result = runners.run(&spec, &attempt).await;
            drop(permit);
            result
        });
        // A run that ends as it starts (a no-op) is handled at once: no task, no timer.
        if let Some(result) = (&mut run).now_or_never() {
            self.attempt_ended(started_at, result, ctx);
            return;
        }
        // A short attempt reports only its result: one record and one write fewer.
        self.later(
            self.services.settings.executor.running_report_after,
            ctx,
            move |actor, ctx| {
                if actor.phase == Phase::Running(started_at) {
                    actor.send_report(
                        actor.report(
                            JobStatus::Running,
                            AttemptOutcome::Running,
                            started_at,
                            None,
                        ),
                        ctx,
                    );
                }
            },
        );
        ctx.spawn(actix::fut::wrap_future(run).map(
            move |result, actor: &mut Self, ctx: &mut Context<Self>| {
                if actor.phase == Phase::Running(started_at) {
                    actor.attempt_ended(started_at, result, ctx);
                }
            },
        ));
    }

    fn run_timeout(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.dispatch.timeout_secs)
                .unwrap_or(1)
                .max(1),
        )
    }
}

impl Actor for ExecutorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.services.metrics, KIND);
        self.publishing = false;
        // A restart cancelled them all.
        self.pending.clear();
        match self.phase.clone() {
            Phase::Waiting => self.arm_timer(ctx),
            Phase::Claimed => self.arm_start(ctx),
            Phase::Running(started_at) => {
                // Restarted mid-run: the run was dropped and its process group killed.
                let interrupted = RunResult::failed(
                    "interrupted: the executor failed and was restarted while the command ran",
                );
                self.attempt_ended(started_at, interrupted, ctx);
            }
            Phase::Finishing => {}
        }
        self.drain_outbox(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.services.metrics, KIND);
    }
}

impl Supervised for ExecutorActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.services.metrics, KIND);
    }
}

impl Handler<Fail> for ExecutorActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}
