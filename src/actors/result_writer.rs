//! `ResultWriterActor`: records attempt reports from `kafka.topic.updatedJobs` in the store.
//!
//! Owns a batch of reports not yet written. A batch is written once it holds
//! `result_writer.batch_size` reports or `result_writer.batch_bytes` of records (long outputs
//! close it sooner), or `result_writer.flush_interval` after its first one arrived, and the
//! batch's offsets are stored only after that transaction commits: a report is never
//! acknowledged before it is durable. Writes are idempotent and never move a job backwards
//! (see [`crate::store::Store::apply_reports`]), so a report delivered twice changes nothing.
//! A record that is not a report is set aside on `<topic>.dlt`.
//!
//! Up to [`WRITES_AT_ONCE`] batches are written at a time while the next one fills: reading
//! and decoding the next batch overlaps the writes, and a batch's write starts as soon as a
//! slot is free, instead of after the whole write before it. A next batch that is full (or due)
//! while every slot is taken waits for the oldest write, and reading pauses until then. So
//! while the store is unreachable, the batches are retried with backoff, at most one more
//! batch is read, and the rest of the reports wait on the bus. Offsets are stored in the
//! order the batches were read: a batch's only once it and every batch before it committed.
//! Writes may commit out of order; each job's reports apply the same in any order (see
//! [`crate::store::Store::apply_reports`]).
//!
//! Receives: bus records (as a stream), [`Drain`], [`Fail`]. Sends: writes to the store, dead
//! letters to the bus.
//!
//! On failure: restarted by its supervisor with its batches. The writes under way go on (each
//! is a task of its own), and the restarted actor waits for the oldest one's commit before it
//! reads on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use futures_util::FutureExt;

use super::consumer::Consumer;
use super::supervision::{self, Fail};
use super::{ActorKind, Services};
use crate::bus::{BusError, Record};
use crate::domain::AttemptReport;
use crate::store::Applied;
use batch::{Batch, Write, write_until_committed};

mod batch;

const KIND: ActorKind = ActorKind::ResultWriter;

/// The first pause before writing a failed batch again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Batches written at once, at most. With two, the store's connections never wait for the
/// slower transaction of a batch before the next batch's start: after a burst, while the
/// writer caught up alone, a fifth of the two cores idled with one.
const WRITES_AT_ONCE: usize = 2;

/// Write what has been read, commit the offsets and stop reading: the process is shutting
/// down. Answers once done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Writes reports to the store.
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct ResultWriterActor {
    services: Services,
    consumer: Consumer,
    /// Being filled.
    batch: Batch,
    /// The writes under way or committed out of turn, oldest first.
    writes: VecDeque<Write>,
    /// The open batch is full or due, and is written once the oldest write commits.
    next_due: bool,
    /// Batches opened so far: a batch's flush timer finds it still open by its number.
    opened: u64,
    stopped: bool,
}

impl ResultWriterActor {
    /// A writer consuming `kafka.topic.updatedJobs` in group `result_writer.group_id`.
    ///
    /// # Errors
    /// [`BusError`] when the subscription cannot be made.
    pub fn new(services: Services) -> Result<Self, BusError> {
        let settings = &services.settings;
        let consumer = Consumer::subscribe(
            &services,
            "result_writer",
            &settings.result_writer.group_id,
            &settings.kafka.topic.updated_jobs,
        )?;
        Ok(Self {
            services,
            consumer,
            batch: Batch::default(),
            writes: VecDeque::new(),
            next_due: false,
            opened: 0,
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
            .services
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
                self.batch.bytes += message.payload.as_ref().map_or(0, Vec::len);
                self.batch.cover(&message);
                self.services.metrics.writer_pending.inc();
                let limits = &self.services.settings.result_writer;
                if self.batch.reports.len() >= limits.batch_size
                    || self.batch.bytes >= limits.batch_bytes
                {
                    self.flush(ctx);
                    if self.next_due {
                        // Full behind the writes under way: read on once the oldest commits.
                        self.wait_for_oldest(ctx);
                    }
                }
            }
            Err(reason) => self.dead_letter(message, reason, ctx),
        }
    }

    /// Starts writing the open batch, or notes it due if every write slot is taken (it
    /// follows once the oldest write commits).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writes.len() >= WRITES_AT_ONCE {
            self.next_due = !self.batch.is_empty();
            return;
        }
        if self.batch.is_empty() {
            return;
        }
        // No longer open: its timer must not flush the next batch.
        self.opened += 1;
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.writes.push_back(self.start_write(batch));
        self.watch_newest(ctx);
    }

    /// Starts the task that writes `batch` until it commits.
    fn start_write(&self, batch: Arc<Batch>) -> Write {
        let store = Arc::clone(&self.services.store);
        let retry_lease = self.services.settings.retry_lease();
        let reports = Arc::clone(&batch);
        let task = actix::spawn(async move {
            write_until_committed(&*store, &reports.reports, retry_lease).await
        });
        Write {
            batch,
            committed: task.map(Result::ok).boxed().shared(),
            watcher: None,
            applied: None,
        }
    }

    /// Notes the commit of the newest write when it comes, while the actor goes on.
    fn watch_newest(&mut self, ctx: &mut Context<Self>) {
        if let Some(write) = self.writes.back_mut() {
            write.watcher = Some(ctx.spawn(await_commit(write)));
        }
    }

    /// Waits for the oldest write to commit, and notes it, before the actor does anything
    /// else (reads no record, handles no message).
    fn wait_for_oldest(&mut self, ctx: &mut Context<Self>) {
        if let Some(write) = self.writes.front_mut() {
            if let Some(watcher) = write.watcher.take() {
                ctx.cancel_future(watcher);
            }
            ctx.wait(await_commit(write));
        }
    }

    /// Notes that `batch` is written. Stores the offsets of the writes committed so far in the
    /// order read, then writes the next batch if it is due and a slot is free.
    fn committed(&mut self, batch: &Arc<Batch>, applied: Option<Applied>, ctx: &mut Context<Self>) {
        let Some(index) = self
            .writes
            .iter()
            .position(|write| Arc::ptr_eq(&write.batch, batch))
        else {
            // Noted already (by the watcher or a wait, whichever came first).
            return;
        };
        let Some(applied) = applied else {
            tracing::error!(
                reports = batch.reports.len(),
                "a report write died; writing the batch again"
            );
            let mut write = self.start_write(Arc::clone(batch));
            write.watcher = Some(ctx.spawn(await_commit(&write)));
            self.writes[index] = write;
            return;
        };
        let write = &mut self.writes[index];
        if write.applied.is_some() {
            return;
        }
        write.applied = Some(applied);
        write.watcher = None;
        let mut freed = false;
        while let Some(applied) = self.writes.front().and_then(|write| write.applied) {
            if let Some(write) = self.writes.pop_front() {
                self.store_offsets(&write.batch, applied);
                freed = true;
            }
        }
        if freed && std::mem::take(&mut self.next_due) && !self.stopped {
            self.flush(ctx);
        }
    }

    /// Counts a committed batch's reports and stores its offsets.
    fn store_offsets(&self, batch: &Batch, applied: Applied) {
        let metrics = &self.services.metrics;
        metrics.reports_ignored.inc_by(applied.ignored);
        metrics.reports_written.inc_by(batch.reports.len() as u64);
        metrics
            .writer_pending
            .dec_by(i64::try_from(batch.reports.len()).unwrap_or(i64::MAX));
        for (partition, offset) in &batch.offsets {
            self.consumer.acknowledge(*partition, *offset);
        }
    }

    /// Writes whatever was read (the writes under way, then the open batch), each to its
    /// commit, before the actor does anything else: when draining.
    fn write_everything(&mut self, ctx: &mut Context<Self>) -> LocalBoxActorFuture<Self, ()> {
        for write in &mut self.writes {
            if let Some(watcher) = write.watcher.take() {
                ctx.cancel_future(watcher);
            }
        }
        if self.writes.len() < WRITES_AT_ONCE && !self.batch.is_empty() {
            self.opened += 1;
            let batch = Arc::new(std::mem::take(&mut self.batch));
            self.writes.push_back(self.start_write(batch));
        }
        match self.writes.front() {
            Some(write) => Box::pin(
                await_commit(write).then(|(), actor: &mut Self, ctx| actor.write_everything(ctx)),
            ),
            None => Box::pin(actix::fut::ready(())),
        }
    }

    /// Adds `records`, read at shutdown, to the open batch, whatever its size.
    fn take_in(&mut self, records: Vec<Record>) {
        for message in records {
            match message.decode::<AttemptReport>() {
                Ok(report) => {
                    self.batch.cover(&message);
                    self.batch.bytes += message.payload.as_ref().map_or(0, Vec::len);
                    self.batch.reports.push(report);
                    self.services.metrics.writer_pending.inc();
                }
                Err(reason) => tracing::error!(
                    topic = %self.consumer.topic(),
                    offset = message.offset,
                    %reason,
                    "malformed report read at shutdown; left unwritten"
                ),
            }
        }
    }

    /// Sets `message` aside on the dead-letter topic, then lets its offset be stored with the
    /// batch.
    fn dead_letter(&mut self, message: Record, reason: String, ctx: &mut Context<Self>) {
        self.consumer.dead_letter(
            &self.services,
            message,
            reason,
            RETRY_MAX,
            ctx,
            |actor: &mut Self, record| actor.batch.cover(record),
        );
    }
}

/// The commit of `write`, as a future of the actor that notes it.
fn await_commit(write: &Write) -> impl ActorFuture<ResultWriterActor, Output = ()> + use<> {
    let batch = Arc::clone(&write.batch);
    actix::fut::wrap_future(write.committed.clone()).map(
        move |applied, actor: &mut ResultWriterActor, ctx: &mut Context<ResultWriterActor>| {
            actor.committed(&batch, applied, ctx);
        },
    )
}

impl Actor for ResultWriterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.services.metrics, KIND);
        // After a restart: the writes under way outlived the old context (their tasks go on),
        // and the actor waits for the oldest one's commit before it reads anything else.
        for write in self.writes.iter_mut().skip(1) {
            write.watcher = Some(ctx.spawn(await_commit(write)));
        }
        if let Some(write) = self.writes.front_mut() {
            write.watcher = None;
        }
        self.wait_for_oldest(ctx);
        if self.stopped {
            return;
        }
        // The open batch's timer died with the old context.
        if self.batch.opened.is_some() {
            self.arm_flush_timer(ctx);
        }
        self.consumer.read(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.services.metrics, KIND);
    }
}

impl Supervised for ResultWriterActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.services.metrics, KIND);
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
    /// Answers once everything read is written and committed and the group is left.
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.consumer.pause(ctx);
        self.stopped = true;
        // In order: what only this process's memory holds (the in-process bus) joins the open
        // batch, or it would end with the process; every report read is written; the offsets
        // are committed; the group is left.
        Box::pin(
            actix::fut::wrap_future(self.consumer.take_volatile())
                .then(|records, actor: &mut Self, ctx| {
                    actor.take_in(records);
                    actor.write_everything(ctx)
                })
                .then(|(), actor: &mut Self, _| actix::fut::wrap_future(actor.consumer.finish())),
        )
    }
}

impl Handler<Fail> for ResultWriterActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}
