//! What all four actor kinds share about failing and restarting.
//!
//! actix restarts a [`Supervised`](actix::Supervised) actor when it *stops* while its address
//! is still held; it does not restart an actor whose handler panicked (the actor's task just
//! ends). So handlers that could panic run under [`guarded`], which turns a panic into a stop,
//! and thus into a restart. Restarts are counted per kind in the metrics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::{Actor, ActorContext, Context, Message};

use super::ActorKind;
use crate::metrics::{KindLabel, Metrics};

/// Makes an actor fail on purpose, to observe its supervision (fault injection, enabled by
/// `admin.fault_injection`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Fail {
    /// Panic inside the handler rather than stopping.
    pub panic: bool,
}

/// Runs `body`; if it panics, logs the panic and stops the actor so that its supervisor
/// restarts it.
pub fn guarded<A>(
    kind: ActorKind,
    actor: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>),
) where
    A: Actor<Context = Context<A>>,
{
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(actor, ctx))) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        tracing::error!(actor = kind.as_str(), %message, "actor failed; stopping it for a restart");
        ctx.stop();
    }
}

/// Handles [`Fail`]: panics (caught by [`guarded`]) or stops.
pub fn fail<A>(kind: ActorKind, actor: &mut A, ctx: &mut Context<A>, how: Fail)
where
    A: Actor<Context = Context<A>>,
{
    guarded(kind, actor, ctx, |_, ctx| {
        if how.panic {
            panic!("fault injected into the {} actor", kind.as_str());
        }
        tracing::warn!(actor = kind.as_str(), "fault injected; stopping");
        ctx.stop();
    });
}

/// Bookkeeping for `started`: one more actor of `kind` alive.
pub fn on_started(metrics: &Metrics, kind: ActorKind) {
    metrics
        .actors_alive
        .get_or_create(&KindLabel::of(kind))
        .inc();
}

/// Bookkeeping for `stopped`: one fewer alive.
pub fn on_stopped(metrics: &Metrics, kind: ActorKind) {
    metrics
        .actors_alive
        .get_or_create(&KindLabel::of(kind))
        .dec();
}

/// Bookkeeping for `restarting`: one more restart.
pub fn on_restarting(metrics: &Metrics, kind: ActorKind) {
    metrics
        .actor_restarts
        .get_or_create(&KindLabel::of(kind))
        .inc();
    tracing::warn!(actor = kind.as_str(), "restarting actor");
}
