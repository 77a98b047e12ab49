//! What reaches an executor from outside its job's life: a cancel of the job ([`Cancel`]), and
//! the process's shutdown ([`Release`]), which hands a job that has not started to another
//! instance.

use std::sync::Arc;

use actix::prelude::*;

use super::{ExecutorActor, Phase};
use crate::scheduling;
use crate::store::RunKey;

/// The job was cancelled: an attempt that has not started never does, and a running one is
/// stopped (its command gets SIGTERM, then SIGKILL after `executor.cancel_grace`) and
/// reported `CANCELLED`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// The process is shutting down: a job still waiting is handed to another instance; a
/// running one finishes as usual.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Release;

impl ExecutorActor {
    /// Hands a job whose attempt has not started to another instance: dispatches it again
    /// under a new epoch (so this executor can no longer start it; a run this executor
    /// claimed is handed back with it, unstarted, not recorded lost) and ends. A running
    /// attempt finishes here first.
    pub(super) fn release(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Waiting | Phase::Claimed) {
            return;
        }
        let services = Arc::clone(&self.services);
        let run = RunKey {
            job_id: self.dispatch.job_id,
            epoch: self.dispatch.epoch,
            attempt: self.attempt,
        };
        let hand_over = async move { scheduling::hand_back(&services, run).await };
        self.enter(Phase::Finishing);
        ctx.wait(actix::fut::wrap_future(hand_over).map(
            |(), actor: &mut Self, ctx: &mut Context<Self>| {
                actor.drain_outbox(ctx);
            },
        ));
    }
}

impl Handler<Cancel> for ExecutorActor {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Running(_) => {
                if let Some(stop) = &self.stop {
                    let _ = stop.send(true);
                }
            }
            // The store has ended the job: nothing starts, and nothing is left to report.
            Phase::Waiting | Phase::Claimed => {
                tracing::info!(job_id = %self.dispatch.job_id, "cancelled before its attempt started");
                self.enter(Phase::Finishing);
                self.drain_outbox(ctx);
            }
            Phase::Finishing => {}
        }
    }
}

impl Handler<Release> for ExecutorActor {
    type Result = ();

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        self.releasing = true;
        self.release(ctx);
    }
}
