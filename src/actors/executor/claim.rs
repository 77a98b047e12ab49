//! Claiming an attempt's run in the store before its time, under its fire's overlap rule
//! when it is a schedule's fire: claimed, wait for an earlier fire, skipped, or not to run.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::{ExecutorActor, OVERLAP_WAIT, Phase, START_RETRY};
use crate::domain::{Fire, Overlap};
use crate::store::{FireClaim, FireMoment, RunKey};

impl ExecutorActor {
    /// The fire whose overlap rule decides this attempt's claim: a schedule's fire, its first
    /// attempt, under a rule that looks at the earlier fires.
    pub(super) fn overlap_guarded(&self) -> Option<Fire> {
        self.dispatch
            .fire
            .filter(|fire| fire.overlap != Overlap::AllowAll && self.attempt == 1)
    }

    /// Claims the waiting attempt's run, then waits for its time ([`Phase::Claimed`]).
    pub(super) fn claim_attempt(&mut self, ctx: &mut Context<Self>) {
        let services = self.services.clone();
        let attempt = self.attempt;
        let (job_id, epoch) = (self.dispatch.job_id, self.dispatch.epoch);
        let grace = services.settings.recovery.grace;
        // The lease runs from the claim: the wait for the attempt's time, then its timeout,
        // then the grace.
        let until_due = (self.due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let lease = until_due + self.run_timeout() + grace;
        let hold_after = until_due + grace / 2;
        let key = RunKey {
            job_id,
            epoch,
            attempt,
        };
        let guarded = self.overlap_guarded();
        let moment = if Utc::now() < self.due {
            FireMoment::Ahead
        } else {
            FireMoment::Due
        };
        let claim = async move {
            let claim = async {
                match guarded {
                    Some(fire) => {
                        services
                            .store
                            .claim_fire_run(key, lease, fire, moment)
                            .await
                    }
                    None => services.store.claim_run(key, lease).await.map(|claimed| {
                        if claimed {
                            FireClaim::Claimed
                        } else {
                            FireClaim::NotRun
                        }
                    }),
                }
            };
            tokio::pin!(claim);
            tokio::select! {
                claimed = &mut claim => claimed,
                () = tokio::time::sleep(hold_after) => {
                    // Still unclaimed half a grace after its time (the store is slow or away):
                    // hold the job, so that its lease running out does not make it look lost
                    // while this process lives.
                    services.store.hold_run(key);
                    claim.await
                }
            }
        };
        // Spawned, not awaited with `ctx.wait`: a `Release` meanwhile must reach the actor.
        ctx.spawn(actix::fut::wrap_future(claim).map(move |claimed, actor: &mut Self, ctx: &mut Context<Self>| {
            if actor.attempt != attempt || actor.phase != Phase::Waiting {
                return;
            }
            match claimed {
                Ok(FireClaim::Claimed) => {
                    actor.enter(Phase::Claimed);
                    actor.arm_start(ctx);
                }
                Ok(FireClaim::Wait) => {
                    // An earlier fire of its schedule has not ended: ahead of its time, the rule
                    // decides at its time; at its time, the rule is to wait for it.
                    let again = (actor.due - Utc::now()).to_std().unwrap_or(OVERLAP_WAIT);
                    actor.later(again, ctx, move |actor, ctx| {
                        if actor.phase == Phase::Waiting && actor.attempt == attempt {
                            actor.claim_attempt(ctx);
                        }
                    });
                }
                Ok(FireClaim::Skipped) => {
                    tracing::info!(%job_id, "an earlier fire of its schedule has not ended; skipped");
                    actor.services.metrics.fires_skipped.inc();
                    actor.enter(Phase::Finishing);
                    actor.drain_outbox(ctx);
                }
                Ok(FireClaim::NotRun) => {
                    tracing::info!(%job_id, epoch, attempt, "dispatch superseded or attempt already started; not running it");
                    actor.services.metrics.dispatches_superseded.inc();
                    actor.enter(Phase::Finishing);
                    actor.drain_outbox(ctx);
                }
                Err(error) => {
                    tracing::warn!(%job_id, %error, "cannot claim the run; trying again");
                    actor.later(START_RETRY, ctx, move |actor, ctx| {
                        if actor.phase == Phase::Waiting && actor.attempt == attempt {
                            actor.claim_attempt(ctx);
                        }
                    });
                }
            }
        }));
    }
}
