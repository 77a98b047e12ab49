//! The bus edge of an actor that consumes a topic (the dispatcher and the result writer):
//! joining its consumer group, reading records into the actor's stream handler, setting aside
//! the records it cannot read, acknowledging what it has handled, and committing and leaving
//! the group when the process stops.
//!
//! At least once, as rust-rdkafka's `at_least_once` example does it: the actor acknowledges a
//! record only once its effect is safe (an executor started, a batch committed); the
//! acknowledgements are committed in the background and at the end.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Services;
use crate::bus::{BusError, Record, Subscription};
use crate::metrics::TopicLabel;

/// One actor's place in its topic's consumer group.
pub struct Consumer {
    subscription: Arc<dyn Subscription>,
    topic: String,
    /// The record stream, while reading.
    stream: Option<SpawnHandle>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.topic)
            .field("reading", &self.stream.is_some())
            .finish()
    }
}

impl Consumer {
    /// Joins `group` on `topic`; the partitions it holds are shown as
    /// `kairos_consumer_partitions{consumer="<label>"}`.
    ///
    /// # Errors
    /// [`BusError`] when the subscription cannot be made.
    pub fn subscribe(
        services: &Services,
        label: &'static str,
        group: &str,
        topic: &str,
    ) -> Result<Self, BusError> {
        let subscription = services.bus.subscribe(group, topic)?;
        services
            .metrics
            .watch_consumer(label, Arc::clone(&subscription));
        Ok(Self {
            subscription,
            topic: topic.to_owned(),
            stream: None,
        })
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads the records into the actor's stream handler, from where the last stream stopped
    /// (an actor restart loses nothing).
    pub fn read<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>> + StreamHandler<Result<Record, BusError>>,
    {
        self.stream = Some(ctx.add_stream(self.subscription.records()));
    }

    /// The partitions of the topic this consumer holds now.
    pub fn assignment(&self) -> Vec<i32> {
        self.subscription.assignment()
    }

    /// Stops reading.
    pub fn pause<A: Actor<Context = Context<A>>>(&mut self, ctx: &mut Context<A>) {
        if let Some(stream) = self.stream.take() {
            ctx.cancel_future(stream);
        }
    }

    /// Marks the record at (`partition`, `offset`), and those before it, handled.
    pub fn acknowledge(&self, partition: i32, offset: i64) {
        if let Err(error) = self.subscription.acknowledge(partition, offset) {
            // Happens when the partition was revoked meanwhile; its new owner resumes from
            // the last committed offset, and handling a record twice changes nothing.
            tracing::warn!(%error, topic = %self.topic, partition, "cannot store an offset");
        }
    }

    /// Sets `record`, which cannot be read, aside on `<topic>.dlt` with `reason`, retrying
    /// every `retry` until acknowledged: a record is never dropped. The actor handles nothing
    /// else meanwhile (so that offsets stay in order); then `handled` runs, which acknowledges
    /// the record, alone or with the others it goes with.
    pub fn dead_letter<A>(
        &self,
        services: &Services,
        record: Record,
        reason: String,
        retry: Duration,
        ctx: &mut Context<A>,
        handled: impl FnOnce(&mut A, &Record) + 'static,
    ) where
        A: Actor<Context = Context<A>>,
    {
        tracing::warn!(topic = %self.topic, offset = record.offset, %reason, "malformed record; setting it aside");
        let publisher = services.publisher.clone();
        let metrics = Arc::clone(&services.metrics);
        let label = TopicLabel {
            topic: self.topic.clone(),
        };
        let publish = async move {
            publisher
                .dead_letter_until_acknowledged(&record, &reason, retry)
                .await;
            metrics.dead_letters.get_or_create(&label).inc();
            record
        };
        ctx.wait(
            actix::fut::wrap_future(publish)
                .map(move |record, actor: &mut A, _| handled(actor, &record)),
        );
    }

    /// Takes what only this process's memory holds of the topic (see
    /// [`Subscription::take_volatile`]).
    pub fn take_volatile(&self) -> BoxFuture<'static, Vec<Record>> {
        self.subscription.take_volatile()
    }

    /// Commits every acknowledgement, then leaves the group so that its other members take the
    /// partitions at once. Resolves once they are given up (or after a few seconds).
    pub fn finish(&self) -> BoxFuture<'static, ()> {
        self.subscription.commit();
        self.subscription.leave().boxed()
    }
}
