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
//! Receives: bus records (as a stream), [`ExecutorFinished`], [`Shutdown`],
//! [`CountExecutors`], [`FailExecutor`], [`Fail`].
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

use super::executor::{ExecutorActor, Release};
use super::supervision::{self, Fail};
use super::{ActorKind, Runtime};
use crate::bus::{BusError, Record, Subscription};
use crate::domain::Dispatch;
use crate::store::RunKey;

const KIND: ActorKind = ActorKind::Dispatcher;

/// Finished dispatches remembered to recognise repeated deliveries.
const RECENT_CAPACITY: usize = 100_000;

/// How often this process records that it is alive (see [`crate::store::Store::heartbeat`]); a
/// fraction of the recovery grace, so that a live process is never taken for dead.
fn heartbeat_interval(grace: Duration) -> Duration {
    (grace / 5).max(Duration::from_millis(100))
}

/// Pause between attempts to publish a dead letter.
const DEAD_LETTER_RETRY: Duration = Duration::from_secs(1);

/// An executor is done with its dispatch: its final report is acknowledged.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ExecutorFinished {
    pub job_id: Uuid,
    pub epoch: i64,
}

/// Makes one live executor fail (fault injection); answers whether there was one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "bool")]
pub struct FailExecutor(pub Fail);

/// Stop starting commands and consuming, commit offsets, leave the group and release the
/// executors whose attempt has not started: the process is shutting down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How many executors live.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct CountExecutors;

/// Consumes dispatches and starts executors.
#[allow(
    missing_debug_implementations,
    reason = "holds the runtime, which has no Debug"
)]
pub struct DispatcherActor {
    /// Shared with every executor: one allocation, not one copy each.
    runtime: Arc<Runtime>,
    subscription: Arc<dyn Subscription>,
    topic: String,
    live: HashMap<Uuid, (i64, Addr<ExecutorActor>)>,
    /// The live executors (job id and epoch) started for a due job: at most
    /// `executor.max_due_executors`.
    due: HashSet<(Uuid, i64)>,
    /// Dispatches read and not started yet, in the order they were read.
    queue: VecDeque<Queued>,
    recent: RecentDispatches,
    /// The record stream, while consuming.
    stream: Option<SpawnHandle>,
    stopped: bool,
}

impl DispatcherActor {
    /// A dispatcher consuming `kafka.topic.jobs` in group `executor.group_id`.
    ///
    /// # Errors
    /// [`BusError`] when the subscription cannot be made.
    pub fn new(runtime: Runtime) -> Result<Self, BusError> {
        let settings = &runtime.settings;
        let topic = settings.kafka.topic.jobs.clone();
        let subscription = runtime
            .publisher
            .bus()
            .subscribe(&settings.executor.group_id, &topic)?;
        runtime
            .metrics
            .watch_consumer("dispatcher", Arc::clone(&subscription));
        Ok(Self {
            runtime: Arc::new(runtime),
            subscription,
            topic,
            live: HashMap::new(),
            due: HashSet::new(),
            queue: VecDeque::new(),
            recent: RecentDispatches::default(),
            stream: None,
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
                    partition: message.partition,
                    offset: message.offset,
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
        let ahead = chrono::Duration::from_std(self.runtime.settings.executor.claim_ahead)
            .unwrap_or_default();
        dispatch.execute_at <= chrono::Utc::now() + ahead
    }

    /// Whether an executor may start for `dispatch` now: it is not due yet, or fewer than
    /// `executor.max_due_executors` executors of due jobs live.
    fn may_start(&self, dispatch: &Dispatch) -> bool {
        self.due.len() < self.runtime.settings.executor.max_due_executors || !self.is_due(dispatch)
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
            self.store_offset(next.partition, next.offset);
        }
        self.count_queued();
    }

    /// Holds the queued jobs still waiting half a grace after their time, as their executors
    /// would (see [`ExecutorActor`]): their lease (their time plus the grace) would otherwise
    /// run out while this process lives.
    fn hold_queued(&mut self) {
        let grace = self.runtime.settings.recovery.grace;
        let hold_from = chrono::Utc::now() - grace / 2;
        let store = &self.runtime.store;
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
        self.runtime.metrics.dispatches_queued.set(queued);
    }

    fn start_executor(&mut self, dispatch: Dispatch, ctx: &mut Context<Self>) {
        let key = (dispatch.job_id, dispatch.epoch);
        let running_same_or_newer = self
            .live
            .get(&dispatch.job_id)
            .is_some_and(|(epoch, _)| *epoch >= dispatch.epoch);
        if running_same_or_newer || self.recent.contains(&key) {
            tracing::info!(job_id = %dispatch.job_id, epoch = dispatch.epoch, "dispatch delivered again; not running it twice");
            self.runtime.metrics.dispatches_duplicate.inc();
            return;
        }
        let runtime = self.runtime.clone();
        let dispatcher = ctx.address();
        let job_id = dispatch.job_id;
        let epoch = dispatch.epoch;
        let attempt = dispatch.attempt;
        let due = dispatch.execute_at;
        if self.is_due(&dispatch) {
            self.due.insert(key);
        }
        let executor =
            Supervisor::start(move |_| ExecutorActor::new(runtime, dispatcher, dispatch));
        self.live.insert(job_id, (epoch, executor));
        // A job due within the grace is covered by its lease (its time plus the grace);
        // holding it would only cost a write. One that waits longer is held, so that it is
        // taken back at once if this process dies, and left alone while it lives.
        let grace = self.runtime.settings.recovery.grace;
        if due > chrono::Utc::now() + grace {
            self.runtime.store.hold_run(RunKey {
                job_id,
                epoch,
                attempt,
            });
        }
    }

    /// Records that this process, whose executors run jobs, is alive.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let runtime = self.runtime.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            if let Err(error) = runtime.store.heartbeat().await {
                tracing::warn!(%error, "cannot record the heartbeat");
            }
        }));
    }

    fn store_offset(&self, partition: i32, offset: i64) {
        if let Err(error) = self.subscription.acknowledge(partition, offset) {
            // Happens when the partition was revoked meanwhile; its new owner resumes from
            // the last committed offset and the repeat is recognised by the result writer.
            tracing::warn!(%error, "cannot store a jobs-topic offset");
        }
    }

    /// Publishes `message` to the dead-letter topic, retrying until acknowledged; the actor
    /// reads nothing else meanwhile, so offsets stay in order.
    fn dead_letter(&mut self, message: Record, reason: String, ctx: &mut Context<Self>) {
        tracing::warn!(topic = %self.topic, offset = message.offset, %reason, "malformed dispatch; setting it aside");
        let publisher = self.runtime.publisher.clone();
        let record = message.clone();
        let publish = async move {
            publisher
                .dead_letter_until_acknowledged(&record, &reason, DEAD_LETTER_RETRY)
                .await;
        };
        ctx.wait(
            actix::fut::wrap_future(publish).map(move |(), actor: &mut Self, _| {
                actor
                    .runtime
                    .metrics
                    .dead_letters
                    .get_or_create(&crate::metrics::TopicLabel {
                        topic: actor.topic.clone(),
                    })
                    .inc();
                actor.store_offset(message.partition, message.offset);
            }),
        );
    }
}

impl Actor for DispatcherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        supervision::on_started(&self.runtime.metrics, KIND);
        if !self.stopped {
            self.stream = Some(ctx.add_stream(self.subscription.records()));
        }
        self.beat(ctx);
        ctx.run_interval(
            heartbeat_interval(self.runtime.settings.recovery.grace),
            |actor, ctx| {
                actor.beat(ctx);
                actor.hold_queued();
            },
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        supervision::on_stopped(&self.runtime.metrics, KIND);
    }
}

impl Supervised for DispatcherActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        supervision::on_restarting(&self.runtime.metrics, KIND);
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

impl Handler<Shutdown> for DispatcherActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.stopped = true;
        // No command starts from now on: the executors waiting for a run slot see the slots
        // close and hand their jobs back; the running ones finish.
        self.runtime.run_slots.close();
        if let Some(stream) = self.stream.take() {
            ctx.cancel_future(stream);
        }
        // Their offsets are not stored: the partitions' next owners read them again.
        self.queue.clear();
        self.count_queued();
        // Commit what was handled, then leave the group so that the partitions move to the
        // other instances before the waiting jobs are handed over.
        self.subscription.commit();
        Box::pin(
            self.subscription
                .leave()
                .into_actor(self)
                .map(|(), actor, _| {
                    for (_, executor) in actor.live.values() {
                        if let Err(error) = executor.try_send(Release) {
                            tracing::warn!(%error, "cannot release an executor");
                        }
                    }
                }),
        )
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
    partition: i32,
    offset: i64,
    /// Held for this process (see [`DispatcherActor::hold_queued`]).
    held: bool,
}

/// A bounded memory of finished dispatches; the oldest are forgotten first.
#[derive(Debug, Default)]
struct RecentDispatches {
    order: VecDeque<(Uuid, i64)>,
    members: HashSet<(Uuid, i64)>,
}

impl RecentDispatches {
    fn contains(&self, key: &(Uuid, i64)) -> bool {
        self.members.contains(key)
    }

    fn insert(&mut self, key: (Uuid, i64)) {
        if self.members.insert(key) {
            self.order.push_back(key);
            if self.order.len() > RECENT_CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.members.remove(&oldest);
            }
        }
    }
}
