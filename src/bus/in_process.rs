//! The in-process bus of the standalone mode: one queue per topic, in memory.
//!
//! It keeps the contract the actors rely on from Kafka: records of a topic arrive in the
//! order they were published, a subscription resumes where its last stream stopped (an actor
//! restart loses nothing), and publishing returns once the record is queued. What it cannot
//! keep is a record across the end of the process. At a graceful stop the result writer takes
//! what is left in its queue ([`Subscription::take_volatile`]) and writes it before the
//! process exits. After a crash, every job in flight has a lease in the store and is
//! dispatched again (see `store::sqlite`, which expires them all when it opens, since the
//! process that held them is known to be gone).
//!
//! One process reads each topic: a topic's queue is shared by whoever subscribes to it,
//! whatever their group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use super::{Bus, BusError, GroupPosition, Pace, Record, Subscription};

/// Topics in memory, created on first use.
#[derive(Debug, Default)]
pub struct InProcessBus {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

#[derive(Debug)]
struct Topic {
    name: String,
    sender: mpsc::UnboundedSender<Record>,
    /// Shared by the topic's subscriptions; a stream holds the lock while it waits.
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Record>>>,
    next_offset: AtomicI64,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let topic = topics.entry(name.to_owned()).or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            Arc::new(Topic {
                name: name.to_owned(),
                sender,
                receiver: Arc::new(tokio::sync::Mutex::new(receiver)),
                next_offset: AtomicI64::new(0),
            })
        });
        Arc::clone(topic)
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    fn location(&self) -> String {
        "in-process queues".to_owned()
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn publish(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
        // Queued at once either way: there is no request to share.
        _pace: Pace,
    ) -> Result<(), BusError> {
        let topic = self.topic(topic);
        if let Some((_, reason)) = headers.iter().find(|(key, _)| *key == "kairos-error") {
            tracing::error!(topic = %topic.name, %reason, "record set aside");
        }
        let record = Record {
            topic: topic.name.clone(),
            partition: 0,
            offset: topic.next_offset.fetch_add(1, Ordering::Relaxed),
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
        };
        topic.sender.send(record).map_err(|_| BusError::Closed)
    }

    async fn position(&self, _group: &str, _topic: &str) -> Result<GroupPosition, BusError> {
        Ok(GroupPosition::default())
    }

    fn subscribe(&self, _group: &str, topic: &str) -> Result<Arc<dyn Subscription>, BusError> {
        Ok(Arc::new(InProcessSubscription {
            topic: self.topic(topic),
        }))
    }

    async fn partitions(&self, _topic: &str) -> Result<i32, BusError> {
        Ok(1)
    }

    async fn unhandled(&self, _group: &str, _topic: &str) -> Result<Vec<Record>, BusError> {
        Ok(Vec::new())
    }
}

/// A reader of one topic's queue.
struct InProcessSubscription {
    topic: Arc<Topic>,
}

impl Subscription for InProcessSubscription {
    fn records(&self) -> BoxStream<'static, Result<Record, BusError>> {
        Box::pin(futures_util::stream::unfold(
            Arc::clone(&self.topic.receiver),
            |receiver| async move {
                let record = receiver.lock().await.recv().await;
                // The sender lives in the topic, which the stream's owner keeps alive, so
                // the queue cannot close while it is read.
                record.map(|record| (Ok(record), receiver))
            },
        ))
    }

    fn acknowledge(&self, _partition: i32, _offset: i64) -> Result<(), BusError> {
        // A record is removed from the queue when it is read.
        Ok(())
    }

    fn commit(&self) {}

    fn take_volatile(&self) -> BoxFuture<'static, Vec<Record>> {
        let receiver = Arc::clone(&self.topic.receiver);
        Box::pin(async move {
            // Waits for the lock of the stream the consumer stopped, until its owner drops it.
            let mut receiver = receiver.lock().await;
            let mut records = Vec::new();
            while let Ok(record) = receiver.try_recv() {
                records.push(record);
            }
            records
        })
    }

    fn leave(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn assignment(&self) -> Vec<i32> {
        // The topic is one queue, and its only consumer holds it from the start.
        vec![0]
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn records_arrive_in_order_and_a_new_stream_resumes() {
        let bus = InProcessBus::new();
        let subscription = bus.subscribe("group", "topic").expect("subscribed");
        for n in 0..3u8 {
            bus.publish("topic", None, Some(&[n]), &[], Pace::Prompt)
                .await
                .expect("queued");
        }
        let mut first = subscription.records();
        let record = first.next().await.expect("a record").expect("no error");
        assert_eq!(record.payload.as_deref(), Some(&[0u8][..]));
        drop(first);
        let rest: Vec<u8> = subscription
            .records()
            .take(2)
            .map(|record| record.expect("no error").payload.expect("a payload")[0])
            .collect()
            .await;
        assert_eq!(rest, [1, 2]);
    }
}
