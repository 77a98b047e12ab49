//! How an attempt ends and what the executor reports of it: the decision that follows an
//! attempt (success, a retry after its backoff, or failure), and the outbox that publishes
//! the reports in order, each until the bus acknowledges it.

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::{ExecutorActor, ExecutorFinished, Phase, REPORT_RETRY};
use crate::domain::{AttemptOutcome, AttemptReport, JobStatus, RetryPolicy};
use crate::runner::RunResult;

impl ExecutorActor {
    /// Decides what follows an attempt: success, a retry after backoff, or failure.
    pub(super) fn attempt_ended(
        &mut self,
        started_at: DateTime<Utc>,
        result: RunResult,
        ctx: &mut Context<Self>,
    ) {
        let finished_at = Utc::now();
        if let Ok(ran) = (finished_at - started_at).to_std() {
            self.services
                .metrics
                .run_duration
                .observe(ran.as_secs_f64());
        }
        let status = match result.outcome {
            AttemptOutcome::Succeeded => JobStatus::Success,
            AttemptOutcome::Cancelled => JobStatus::Cancelled,
            _ => {
                self.failures += 1;
                if result.retryable && self.failures <= self.dispatch.max_retries {
                    JobStatus::Retrying
                } else {
                    JobStatus::Failed
                }
            }
        };
        // The next attempt's time, when there is one: the job's own backoff, or the configured
        // one; a `Retry-After` the attempt was given, up to the backoff's cap.
        let retry_at = (status == JobStatus::Retrying).then(|| {
            let executor = &self.services.settings.executor;
            let policy = self.dispatch.retry_backoff.unwrap_or(RetryPolicy {
                base: executor.retry_backoff_base,
                max: executor.retry_backoff_max,
                jitter: RetryPolicy::JITTER,
            });
            let wait = match result.retry_after {
                Some(asked) => asked.min(policy.max),
                None => policy.backoff(u32::try_from(self.attempt).unwrap_or(1)),
            };
            finished_at + chrono::Duration::from_std(wait).unwrap_or_default()
        });
        let mut report = self.report(status, result.outcome, started_at, Some(finished_at));
        report.exit_code = result.exit_code;
        report.stdout = Some(result.stdout);
        report.stderr = Some(result.stderr);
        report.error = result.error;
        report.retry_at = retry_at;
        tracing::info!(job_id = %self.dispatch.job_id, attempt = self.attempt, status = status.as_str(), error = ?report.error, "attempt ended");
        self.send_report(report, ctx);

        if let Some(retry_at) = retry_at {
            self.services.metrics.jobs_retried.inc();
            self.due = retry_at;
            self.attempt += 1;
            self.enter(Phase::Waiting);
            if self.releasing {
                self.release(ctx);
            } else {
                self.arm_timer(ctx);
            }
        } else {
            match status {
                JobStatus::Success => {
                    self.services.metrics.jobs_succeeded.inc();
                    self.services.metrics.trends.succeeded();
                }
                JobStatus::Cancelled => {
                    self.services.metrics.attempts_cancelled.inc();
                }
                _ => {
                    self.services.metrics.jobs_failed.inc();
                    self.services.metrics.trends.failed();
                }
            }
            self.enter(Phase::Finishing);
        }
    }

    pub(super) fn report(
        &self,
        status: JobStatus,
        outcome: AttemptOutcome,
        started_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
    ) -> AttemptReport {
        AttemptReport {
            job_id: self.dispatch.job_id,
            epoch: self.dispatch.epoch,
            attempt: self.attempt,
            status,
            outcome,
            scheduled_at: self.due,
            started_at,
            finished_at,
            exit_code: None,
            stdout: None,
            stderr: None,
            error: None,
            retry_at: None,
        }
    }

    pub(super) fn send_report(&mut self, report: AttemptReport, ctx: &mut Context<Self>) {
        self.outbox.push_back(report);
        self.drain_outbox(ctx);
    }

    /// Publishes the oldest unacknowledged report, then the next, in order, retrying each
    /// until the bus acknowledges it. Tells the dispatcher once the final one is out.
    pub(super) fn drain_outbox(&mut self, ctx: &mut Context<Self>) {
        if self.publishing {
            return;
        }
        let Some(report) = self.outbox.front().cloned() else {
            if self.phase == Phase::Finishing {
                self.cancel_pending(ctx);
                let finished = ExecutorFinished {
                    job_id: self.dispatch.job_id,
                    epoch: self.dispatch.epoch,
                };
                if let Err(error) = self.dispatcher.try_send(finished) {
                    // The dispatcher is gone or full; our address is dropped with it.
                    tracing::warn!(%error, job_id = %self.dispatch.job_id, "cannot tell the dispatcher that the job finished");
                }
            }
            return;
        };
        self.publishing = true;
        let services = self.services.clone();
        let publish = async move {
            while let Err(error) = services.publisher.report(&report).await {
                tracing::error!(%error, job_id = %report.job_id, "cannot publish a report; retrying");
                tokio::time::sleep(REPORT_RETRY).await;
            }
        };
        ctx.spawn(actix::fut::wrap_future(publish).map(
            |(), actor: &mut Self, ctx: &mut Context<Self>| {
                actor.publishing = false;
                actor.outbox.pop_front();
                actor.drain_outbox(ctx);
            },
        ));
    }
}
