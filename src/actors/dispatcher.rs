//! `DispatcherActor`: reads dispatches from `kafka.topic.jobs` (on the bus) and starts one
//! [`ExecutorActor`] per job.
//!
//! Owns the executors of this process: their addresses (which keep them supervised while
//! they live) and a memory of recently finished dispatches. A dispatch delivered again,
//! whether its executor is still alive or has finished, is not run again: dispatches are
//! told apart by job id and epoch. A record that is not a dispatch is set aside on
//! `<topic>.dlt` and consumption goes on.
//!
//! At most `executor.max_due_executors` executors of due jobs (due within
//! `executor.claim_ahead`) live at once. During a burst the further dispatches wait in a queue,
//! in the order they were read, and start as executors end: the queue keeps only the
//! dispatches, and the executors in flight claim, run and report without hundreds of
//! thousands of others beside them (docs/performance.md, item 40). A queued job still waiting
//! half a grace after its time is held, as an executor would hold it.
//!
//! Receives: bus records (as a stream), [`RunDispatches`], [`ExecutorFinished`],
//! [`StopDispatching`], [`CountExecutors`], [`FailExecutor`], [`Fail`]. Its heartbeat (every
//! `recovery.heartbeat`) records that the process lives and brings back the jobs it holds
//! that were cancelled: their executors get [`Cancel`].
//! Sends: starts executors; dead letters to the bus.
//!
//! Offsets: a record's offset is stored once its executor is started (or its dead letter is
//! acknowledged), so a queued dispatch is read again by whoever consumes its partition after
//! this process. On failure the actor stops and is restarted with its executors, its queue
//! and its consumer, which resumes where it was.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
// Job ids are hashed for every dispatch a few times over; SipHash showed in the profile.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use uuid::Uuid;

use super::consumer::Consumer;
use super::executor::{Cancel, ExecutorActor, ExecutorFinished, Release};
use super::supervision::{self, Fail};
use super::{ActorKind, Services};
use crate::bus::{BusError, Record};
use crate::domain::Dispatch;
use crate::store::RunKey;
use recent::RecentDispatches;

mod recent;

const KIND: ActorKind = ActorKind::Dispatcher;

/// How often queued dispatches are looked at to hold those still waiting half a grace after
/// their time (see [`DispatcherActor::hold_queued`]).
fn hold_interval(grace: Duration) -> Duration {
    (grace / 5).max(Duration::from_millis(100))
}

/// Pause between attempts to publish a dead letter.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(1);

/// Run these jobs here, now: a recovery pass of this process took them back from a dead
/// instance (see [`crate::scheduling::run_recovered`]). They come with no record to
/// acknowledge.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RunDispatches(pub Vec<Dispatch>);

/// Makes one live executor fail (fault injection); answers whether there was one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct FailExecutor(pub Fail);

/// Stop starting attempts and consuming, commit offsets, leave the group and release the
/// executors whose attempt has not started: the process is shutting down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopDispatching;

/// How many executors live.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct CountExecutors;

/// Consumes dispatches and starts executors.
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct DispatcherActor {
    /// Shared with every executor: one allocation, not one copy each.
    services: Arc<Services>,
    consumer: Consumer,
    live: HashMap<Uuid, (i64, Addr<ExecutorActor>)>,
    /// The live executors (job id and epoch) started for a due job: at most
    /// `executor.max_due_executors`.
    due: HashSet<(Uuid, i64)>,
    /// Dispatches read and not started yet, in the order they were read.
    queue: VecDeque<Queued>,
    recent: RecentDispatches,
    stopped: bool,
}

impl DispatcherActor {
    /// A dispatcher consuming `kafka.topic.jobs` in group `executor.group_id`.
    ///
    /// # Errors
    /// [`BusError`] when the subscription cannot be made.
    pub fn new(services: Services) -> Result<Self, BusError> {
        let settings = &services.settings;
        let consumer = Consumer::subscribe(
            &services,
            "dispatcher",
            &settings.executor.group_id,
            &settings.kafka.topic.jobs,
        )?;
        Ok(Self {
            services: Arc::new(services),
            consumer,
            live: HashMap::new(),
            due: HashSet::new(),
            queue: VecDeque::new(),
            recent: RecentDispatches::default(),
            stopped: false,
        })
    }

    fn on_record(&mut self, message: Record, ctx: &mut Context<Self>) {
        let parsed = message.decode::<Dispatch>();
        match parsed {
            // Once one dispatch waits, the ones read after it wait behind it, so that offsets
            // are stored in order.
            Ok(dispatch) if self.queue.is_empty() && self.may_start(&dispatch) => {
                self.start_executor(dispatch, ctx);
                self.store_offset(message.partition, message.offset);
            }
            Ok(dispatch) => {
                self.queue.push_back(Queued {
                    dispatch,
                    record: Some((message.partition, message.offset)),
                    held: false,
                });
                self.count_queued();
            }
            Err(reason) => self.dead_letter(message, reason, ctx),
        }
    }

    /// Whether `dispatch` is due within `executor.claim_ahead`, so that its executor claims
    /// at once.
    fn is_due(&self, dispatch: &Dispatch) -> bool {
        self.is_due_at(dispatch.execute_at)
    }

    /// Whether a job due at `due` is due within `executor.claim_ahead`.
    fn is_due_at(&self, due: chrono::DateTime<chrono::Utc>) -> bool {
        let ahead = chrono::Duration::from_std(self.services.settings.executor.claim_ahead)
            .unwrap_or_default();
        due <= chrono::Utc::now() + ahead
    }

    /// Whether an executor may start for `dispatch` now: it is not due yet, or fewer than
    /// `executor.max_due_executors` executors of due jobs live.
    fn may_start(&self, dispatch: &Dispatch) -> bool {
        self.due.len() < self.services.settings.executor.max_due_executors || !self.is_due(dispatch)
    }

    /// Starts the queued dispatches, oldest first, while executors may start.
    fn start_queued(&mut self, ctx: &mut Context<Self>) {
        while let Some(next) = self.queue.front()
            && self.may_start(&next.dispatch)
        {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            self.start_executor(next.dispatch, ctx);
            if let Some((partition, offset)) = next.record {
                self.store_offset(partition, offset);
            }
        }
        self.count_queued();
    }

    /// Holds the queued jobs still waiting half a grace after their time, as their executors
    /// would (see [`ExecutorActor`]): their lease (their time plus the grace) would otherwise
    /// run out while this process lives.
    fn hold_queued(&mut self) {
        let grace = self.services.settings.recovery.grace;
        let hold_from = chrono::Utc::now() - grace / 2;
        let store = &self.services.store;
        for queued in self.queue.iter_mut() {
            if !queued.held && queued.dispatch.execute_at <= hold_from {
                store.hold_run(RunKey {
                    job_id: queued.dispatch.job_id,
                    epoch: queued.dispatch.epoch,
                    attempt: queued.dispatch.attempt,
                });
                queued.held = true;
            }
        }
    }

    fn count_queued(&self) {
        let queued = i64::try_from(self.queue.len()).unwrap_or(i64::MAX);
        self.services.metrics.dispatches_queued.set(queued);
    }

    fn start_executor(&mut self, dispatch: Dispatch, ctx: &mut Context<Self>) {
        let key = (dispatch.job_id, dispatch.epoch);
        let running_same_or_newer = self
            .live
            .get(&dispatch.job_id)
            .is_some_and(|(epoch, _)| *epoch >= dispatch.epoch);
        if running_same_or_newer || self.recent.contains(&key) {
            tracing::info!(job_id = %dispatch.job_id, epoch = dispatch.epoch, "dispatch delivered again; not running it twice");
            self.services.metrics.dispatches_duplicate.inc();
            return;
        }
        let services = self.services.clone();
        let dispatcher = ctx.address().recipient();
        let job_id = dispatch.job_id;
        let epoch = dispatch.epoch;
        let attempt = dispatch.attempt;
        let due = dispatch.execute_at;
        if self.is_due(&dispatch) {
            self.due.insert(key);
        }
        let executor =
            Supervisor::start(move |_| ExecutorActor::new(services, dispatcher, dispatch));
        self.live.insert(job_id, (epoch, executor));
        // A job due within `executor.claim_ahead` has its run claimed at once, which names
        // this process as its runner. One that waits longer is held, so that it is taken back
        // at once if this process dies, and left alone while it lives.
        if !self.is_due_at(due) {
            self.services.store.hold_run(RunKey {
                job_id,
                epoch,
                attempt,
            });
        }
    }

    /// Records that this process, whose executors run jobs, is alive.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let services = self.services.clone();
        let partitions = self.consumer.assignment();
        let beat = async move { services.store.heartbeat(&partitions).await };
        ctx.spawn(actix::fut::wrap_future(beat).map(
            |beaten, actor: &mut Self, _: &mut Context<Self>| match beaten {
                // The jobs cancelled while this process held them.
                Ok(cancelled) => actor.cancel(&cancelled),
                Err(error) => tracing::warn!(%error, "cannot record the heartbeat"),
            },
        ));
    }

    /// Tells the executors of `jobs`, cancelled, to stop them.
    fn cancel(&self, jobs: &[Uuid]) {
        for job in jobs {
            if let Some((_, executor)) = self.live.get(job)
                && let Err(error) = executor.try_send(Cancel)
            {
                tracing::warn!(%error, job_id = %job, "cannot cancel an executor");
            }
        }
    }

    fn store_offset(&self, partition: i32, offset: i64) {
        self.consumer.acknowledge(partition, offset);
    }

    /// Sets `message` aside on the dead-letter topic, then stores its offset; the actor reads
    /// nothing else meanwhile, so offsets stay in order.
    fn dead_letter(&mut self, message: Record, reason: String, ctx: &mut Context<Self>) {
        self.consumer.dead_letter(
            &self.services,
            message,
            reason,
            DEAD_LETTER_RETRY,
            ctx,
            |actor: &mut Self, record| actor.store_offset(record.partition, record.offset),
        );
    }
}

impl Actor for DispatcherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.services.metrics, KIND);
        if !self.stopped {
            self.consumer.read(ctx);
        }
        self.beat(ctx);
        ctx.run_interval(self.services.settings.recovery.heartbeat, |actor, ctx| {
            actor.beat(ctx)
        });
        ctx.run_interval(
            hold_interval(self.services.settings.recovery.grace),
            |actor, _| actor.hold_queued(),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.services.metrics, KIND);
    }
}

impl Supervised for DispatcherActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.services.metrics, KIND);
    }
}

impl StreamHandler<Result<Record, BusError>> for DispatcherActor {
    fn handle(&mut self, record: Result<Record, BusError>, ctx: &mut Context<Self>) {
        match record {
            Ok(message) => {
                supervision::guarded(KIND, self, ctx, |actor, ctx| actor.on_record(message, ctx))
            }
            // Broker errors are reported here and librdkafka recovers by itself.
            Err(error) => tracing::warn!(%error, "jobs-topic consumer error"),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The record stream never ends; nothing to do if it somehow does.
    }
}

impl Handler<ExecutorFinished> for DispatcherActor {
    type Result = ();

    fn handle(&mut self, finished: ExecutorFinished, ctx: &mut Context<Self>) {
        let key = (finished.job_id, finished.epoch);
        if self
            .live
            .get(&finished.job_id)
            .is_some_and(|(epoch, _)| *epoch == finished.epoch)
        {
            // Dropping the last address lets the executor stop for good.
            self.live.remove(&finished.job_id);
        }
        self.recent.insert(key);
        if self.due.remove(&key) {
            self.start_queued(ctx);
        }
    }
}

impl Handler<StopDispatching> for DispatcherActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopDispatching, ctx: &mut Context<Self>) -> Self::Result {
        self.stopped = true;
        // No command starts from now on: the executors waiting for a run slot see the slots
        // close and hand their jobs back; the running ones finish.
        self.services.run_slots.close();
        self.consumer.pause(ctx);
        // Their offsets are not stored: the partitions' next owners read them again.
        self.queue.clear();
        self.count_queued();
        // Commit what was handled, then leave the group so that the partitions move to the
        // other instances before the waiting jobs are handed over.
        Box::pin(self.consumer.finish().into_actor(self).map(|(), actor, _| {
            for (_, executor) in actor.live.values() {
                if let Err(error) = executor.try_send(Release) {
                    tracing::warn!(%error, "cannot release an executor");
                }
            }
        }))
    }
}

impl Handler<RunDispatches> for DispatcherActor {
    type Result = ();

    fn handle(&mut self, RunDispatches(dispatches): RunDispatches, ctx: &mut Context<Self>) {
        if self.stopped {
            // Their leases bring them back to whoever recovers next.
            return;
        }
        for dispatch in dispatches {
            if self.queue.is_empty() && self.may_start(&dispatch) {
                self.start_executor(dispatch, ctx);
            } else {
                self.queue.push_back(Queued {
                    dispatch,
                    record: None,
                    held: false,
                });
            }
        }
        self.count_queued();
    }
}

impl Handler<FailExecutor> for DispatcherActor {
    type Result = bool;

    fn handle(&mut self, FailExecutor(how): FailExecutor, _: &mut Context<Self>) -> bool {
        match self.live.values().next() {
            Some((_, executor)) => executor.try_send(how).is_ok(),
            None => false,
        }
    }
}

impl Handler<CountExecutors> for DispatcherActor {
    type Result = usize;

    fn handle(&mut self, _: CountExecutors, _: &mut Context<Self>) -> usize {
        self.live.len()
    }
}

impl Handler<Fail> for DispatcherActor {
    type Result = ();

    fn handle(&mut self, how: Fail, ctx: &mut Context<Self>) {
        supervision::fail(KIND, self, ctx, how);
    }
}

/// A dispatch waiting for an executor, and where its record lies.
#[derive(Debug)]
struct Queued {
    dispatch: Dispatch,
    /// Where its record lies (none for a job this process's recovery handed it).
    record: Option<(i32, i64)>,
    /// Held for this process (see [`DispatcherActor::hold_queued`]).
    held: bool,
}
