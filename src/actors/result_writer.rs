//! `ResultWriterActor`: records attempt reports from `kafka.topic.updatedJobs` in the store.
//!
//! Owns a batch of reports not yet written. A batch is written once it holds
//! `result_writer.batch_size` reports, or `result_writer.flush_interval` after its first one
//! arrived, and the batch's offsets are stored only after that transaction commits: a report is
//! never acknowledged before it is durable. Writes are idempotent and never move a job
//! backwards (see [`crate::store::Store::apply_reports`]), so a report delivered twice
//! changes nothing. A record that is not a report is set aside on `<topic>.dlt`.
//!
//! While the store is unreachable the batch is retried with backoff and consumption pauses:
//! reports wait on the bus.
//!
//! Receives: bus records (as a stream), [`Drain`], [`Fail`]. Sends: writes to the store, dead
//! letters to the bus.
//!
//! On failure: restarted by its supervisor with its batch, which it writes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::supervision::{self, Fail};
use super::{ActorKind, Runtime};
use crate::bus::{BusError, Record, Subscription};
use crate::domain::AttemptReport;
use crate::metrics::TopicLabel;
use crate::store::{Applied, Store};

const KIND: ActorKind = ActorKind::ResultWriter;

/// The first pause before writing a failed batch again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Write what has been read, commit the offsets and stop reading: the process is shutting
/// down. Answers once done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Reports waiting to be written, and the offsets to store once they are.
#[derive(Debug, Default)]
struct Batch {
    reports: Vec<AttemptReport>,
    /// The highest offset per partition covered by the batch.
    offsets: HashMap<i32, i64>,
    /// When the first record arrived.
    opened: Option<Instant>,
}

impl Batch {
    fn cover(&mut self, message: &Record) {
        let offset = self
            .offsets
            .entry(message.partition)
            .or_insert(message.offset);
        *offset = (*offset).max(message.offset);
    }

    fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.offsets.is_empty()
    }
}

/// Writes reports to the store.
#[allow(
    missing_debug_implementations,
    reason = "holds the runtime, which has no Debug"
)]
pub struct ResultWriterActor {
    runtime: Runtime,
    subscription: Arc<dyn Subscription>,
    topic: String,
    /// Being filled.
    batch: Batch,
    /// Being written; kept until committed, so a restart writes it again.
    writing: Option<Arc<Batch>>,
    /// A write is queued or under way in this context: a second flush meanwhile would queue
    /// the batch being written (`writing`) again.
    flushing: bool,
    /// Batches opened so far: a batch's flush timer finds it still open by its number.
    opened: u64,
    /// The record stream, while consuming.
    stream: Option<SpawnHandle>,
    stopped: bool,
}

impl ResultWriterActor {
    /// A writer consuming `kafka.topic.updatedJobs` in group `result_writer.group_id`.
    ///
    /// # Errors
    /// [`BusError`] when the subscription cannot be made.
    pub fn new(runtime: Runtime) -> Result<Self, BusError> {
        let settings = &runtime.settings;
        let topic = settings.kafka.topic.updated_jobs.clone();
        let subscription = runtime
            .publisher
            .bus()
            .subscribe(&settings.result_writer.group_id, &topic)?;
        runtime
            .metrics
            .watch_consumer("result_writer", Arc::clone(&subscription));
        Ok(Self {
            runtime,
            subscription,
            topic,
            batch: Batch::default(),
            writing: None,
            flushing: false,
            opened: 0,
            stream: None,
            stopped: false,
        })
    }

    /// Notes that the batch, empty until now, takes its first record: it is written
    /// `flush_interval` later unless it fills up first.
    fn open_batch(&mut self, ctx: &mut Context<Self>) {
        self.opened += 1;
        self.batch.opened = Some(Instant::now());
        self.arm_flush_timer(ctx);
    }

    /// Writes the open batch when its time comes, if it is still open then. (A timer per
    /// batch rather than an interval: an interval's ticks fall anywhere in a batch's life,
    /// and right after a long write they found batches of a few reports.)
    fn arm_flush_timer(&mut self, ctx: &mut Context<Self>) {
        let batch = self.opened;
        let waited = self
            .batch
            .opened
            .map_or(Duration::ZERO, |opened| opened.elapsed());
        let delay = self
            .runtime
            .settings
            .result_writer
            .flush_interval
            .saturating_sub(waited);
        ctx.run_later(delay, move |actor, ctx| {
            if actor.opened == batch {
                actor.flush(ctx);
            }
        });
    }

    fn on_record(&mut self, message: Record, ctx: &mut Context<Self>) {
        if self.batch.is_empty() {
            self.open_batch(ctx);
        }
        let parsed = message.decode::<AttemptReport>();
        match parsed {
            Ok(report) => {
                self.batch.reports.push(report);
                self.batch.cover(&message);
                self.runtime.metrics.writer_pending.inc();
                if self.batch.reports.len() >= self.runtime.settings.result_writer.batch_size {
                    self.flush(ctx);
                }
            }
            Err(reason) => self.dead_letter(message, reason, ctx),
        }
    }

    /// Writes the batch (or the one a restart interrupted). The actor reads nothing else
    /// until the write commits, which is the backpressure while the store is away.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        let batch = match self.writing.clone() {
            Some(batch) => batch,
            None if self.batch.is_empty() => return,
            None => {
                // No longer open: its timer must not flush the next batch.
                self.opened += 1;
                let batch = Arc::new(std::mem::take(&mut self.batch));
                self.writing = Some(Arc::clone(&batch));
                batch
            }
        };
        let store = Arc::clone(&self.runtime.store);
        let retry_lease = self.runtime.settings.retry_lease();
        let write = {
            let batch = Arc::clone(&batch);
            async move { write_until_committed(&*store, &batch.reports, retry_lease).await }
        };
        self.flushing = true;
        ctx.wait(actix::fut::wrap_future(write).map(
            move |applied: Applied, actor: &mut Self, _| {
                actor.flushing = false;
                actor.writing = None;
                let metrics = &actor.runtime.metrics;
                metrics.reports_ignored.inc_by(applied.ignored);
                metrics
                    .writer_pending
                    .dec_by(i64::try_from(batch.reports.len()).unwrap_or(i64::MAX));
                for (partition, offset) in &batch.offsets {
                    if let Err(error) = actor.subscription.acknowledge(*partition, *offset) {
                        tracing::warn!(%error, partition, "cannot store a results-topic offset");
                    }
                }
            },
        ));
    }

    /// Publishes `message` to the dead-letter topic, retrying until acknowledged, then lets
    /// its offset be stored with the batch.
    fn dead_letter(&mut self, message: Record, reason: String, ctx: &mut Context<Self>) {
        tracing::warn!(topic = %self.topic, offset = message.offset, %reason, "malformed report; setting it aside");
        let publisher = self.runtime.publisher.clone();
        let record = message.clone();
        let publish = async move {
            publisher
                .dead_letter_until_acknowledged(&record, &reason, RETRY_MAX)
                .await;
        };
        ctx.wait(
            actix::fut::wrap_future(publish).map(move |(), actor: &mut Self, _| {
                actor
                    .runtime
                    .metrics
                    .dead_letters
                    .get_or_create(&TopicLabel {
                        topic: actor.topic.clone(),
                    })
                    .inc();
                actor.batch.cover(&message);
            }),
        );
    }
}

/// Applies `reports` in one transaction, retrying with backoff until it commits.
async fn write_until_committed(
    store: &dyn Store,
    reports: &[AttemptReport],
    retry_lease: Duration,
) -> Applied {
    let mut pause = RETRY_FIRST;
    loop {
        match store.apply_reports(reports, retry_lease).await {
            Ok(applied) => return applied,
            Err(error) => {
                tracing::error!(%error, reports = reports.len(), retry_in = ?pause, "cannot write reports; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

impl Actor for ResultWriterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.runtime.metrics, KIND);
        // A write under way died with the old context; its batch is written again before
        // anything else is read.
        self.flushing = false;
        if self.writing.is_some() {
            self.flush(ctx);
        }
        if self.stopped {
            return;
        }
        // The open batch's timer died with the old context.
        if self.batch.opened.is_some() {
            self.arm_flush_timer(ctx);
        }
        self.stream = Some(ctx.add_stream(self.subscription.records()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.runtime.metrics, KIND);
    }
}

impl Supervised for ResultWriterActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.runtime.metrics, KIND);
    }
}

impl StreamHandler<Result<Record, BusError>> for ResultWriterActor {
    fn handle(&mut self, record: Result<Record, BusError>, ctx: &mut Context<Self>) {
        match record {
            Ok(message) => {
                supervision::guarded(KIND, self, ctx, |actor, ctx| actor.on_record(message, ctx))
            }
            Err(error) => tracing::warn!(%error, "results-topic consumer error"),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Drain> for ResultWriterActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        if let Some(stream) = self.stream.take() {
            ctx.cancel_future(stream);
        }
        self.stopped = true;
        // `flush` waits on the context, so this handler's answer follows the commit.
        self.flush(ctx);
        ctx.wait(
            actix::fut::wrap_future(async {})
                .map(|(), actor: &mut Self, _| {
                    actor.subscription.commit();
                    actor.subscription.leave()
                })
                .then(|leaving, _, _| actix::fut::wrap_future(leaving)),
        );
    }
}

impl Handler<Fail> for ResultWriterActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}
