//! `ScannerActor`: finds the jobs that fall due soon and publishes them for the executors.
//!
//! Owns the scan schedule. Every `scanner.interval` (and at once on [`ScanNow`], which the API
//! sends when a job is created inside the horizon already scanned) it claims, in batches,
//! the `SCHEDULED` jobs due before now + two intervals (the current window and the next) and
//! publishes each claim to `kafka.topic.jobs`. Scans never overlap: a `ScanNow` that arrives
//! during a scan makes the scan run once more when it ends, so a burst of creations costs a
//! few scans, not one each.
//!
//! Receives: [`ScanNow`], [`Fail`]. Sends: dispatch records to Kafka.
//!
//! On failure: a scan that cannot reach PostgreSQL is logged and retried at the next tick;
//! after [`FAILURES_BEFORE_RESTART`] failed scans in a row the actor stops and its supervisor
//! restarts it. A claimed job whose dispatch cannot be published is released (back to
//! `SCHEDULED`) so that the next scan claims it again.

use actix::prelude::*;
use chrono::Utc;
use futures_util::future::join_all;

use super::supervision::{self, Fail};
use super::{ActorKind, Runtime};
use crate::store::{self, StoreError};

/// Consecutive failed scans after which the actor restarts itself.
pub const FAILURES_BEFORE_RESTART: u32 = 3;

const KIND: ActorKind = ActorKind::Scanner;

/// Scan now rather than at the next tick.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ScanNow;

/// Claims due jobs and publishes them.
#[allow(
    missing_debug_implementations,
    reason = "holds the runtime, which has no Debug"
)]
pub struct ScannerActor {
    runtime: Runtime,
    scanning: bool,
    scan_again: bool,
    failures: u32,
}

impl ScannerActor {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            scanning: false,
            scan_again: false,
            failures: 0,
        }
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.scanning {
            self.scan_again = true;
            return;
        }
        self.scanning = true;
        let runtime = self.runtime.clone();
        ctx.spawn(actix::fut::wrap_future(scan_until_caught_up(runtime)).map(
            |result: Result<usize, StoreError>, actor: &mut Self, ctx: &mut Context<Self>| {
                actor.scanning = false;
                match result {
                    Ok(published) => {
                        actor.failures = 0;
                        if published > 0 {
                            tracing::debug!(published, "scan dispatched jobs");
                        }
                    }
                    Err(error) => {
                        actor.failures += 1;
                        tracing::error!(%error, failures = actor.failures, "scan failed");
                        if actor.failures >= FAILURES_BEFORE_RESTART {
                            actor.failures = 0;
                            ctx.stop();
                            return;
                        }
                    }
                }
                if std::mem::take(&mut actor.scan_again) {
                    actor.scan(ctx);
                }
            },
        ));
    }
}

/// Claims and publishes batches until a batch comes back short; returns how many jobs were
/// published.
async fn scan_until_caught_up(runtime: Runtime) -> Result<usize, StoreError> {
    let scanner = &runtime.settings.scanner;
    let mut published = 0;
    loop {
        let horizon = Utc::now() + scanner.horizon();
        let claimed = store::jobs::claim_due(
            &runtime.pool,
            horizon,
            scanner.batch_size,
            &runtime.instance,
        )
        .await?;
        let count = claimed.len();
        let sends = claimed.iter().map(|dispatch| async {
            match runtime.publisher.dispatch(dispatch).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::error!(job_id = %dispatch.job_id, %error, "cannot publish a dispatch; releasing the job");
                    if let Err(error) = store::jobs::release(&runtime.pool, dispatch.job_id, dispatch.epoch).await {
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
        published += sent;
        if i64::try_from(count).unwrap_or(i64::MAX) < scanner.batch_size {
            return Ok(published);
        }
    }
}

impl Actor for ScannerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.runtime.metrics, KIND);
        self.scanning = false;
        ctx.run_interval(self.runtime.settings.scanner.interval, |actor, ctx| {
            actor.scan(ctx)
        });
        self.scan(ctx);
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

impl Handler<ScanNow> for ScannerActor {
    type Result = ();

    fn handle(&mut self, _: ScanNow, ctx: &mut Context<Self>) {
        self.scan(ctx);
    }
}

impl Handler<Fail> for ScannerActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}
