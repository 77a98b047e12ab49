//! A consumer in a group, as the actors see it ([`Subscription`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::bus::{BusError, Record, Subscription};

/// How long leaving a group may take before the process goes on without it.
const LEAVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long each poll of a leaving consumer waits.
const LEAVE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A consumer in a group, subscribed to one topic.
pub struct KafkaSubscription {
    pub consumer: Arc<StreamConsumer>,
    pub topic: String,
}

impl Subscription for KafkaSubscription {
    fn records(&self) -> BoxStream<'static, Result<Record, BusError>> {
        Box::pin(futures_util::stream::unfold(
            Arc::clone(&self.consumer),
            |consumer| async move {
                let record = consumer
                    .recv()
                    .await
                    .map(|message| Record {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    })
                    .map_err(BusError::from);
                Some((record, consumer))
            },
        ))
    }

    fn acknowledge(&self, partition: i32, offset: i64) -> Result<(), BusError> {
        // librdkafka stores the record's own offset and commits offset + 1.
        self.consumer.store_offset(&self.topic, partition, offset)?;
        Ok(())
    }

    fn commit(&self) {
        match self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                tracing::warn!(%error, topic = %self.topic, "cannot commit offsets at shutdown");
            }
        }
    }

    fn take_volatile(&self) -> BoxFuture<'static, Vec<Record>> {
        Box::pin(std::future::ready(Vec::new()))
    }

    fn leave(&self) -> BoxFuture<'static, ()> {
        let consumer = Arc::clone(&self.consumer);
        Box::pin(async move {
            consumer.unsubscribe();
            // librdkafka gives the partitions up, and then tells the group coordinator that
            // this member leaves, only while the consumer is polled; nothing reads its records
            // any more (the owner stopped its stream), so poll here until the assignment is
            // empty. Unserved, the group would wait for this member's session to time out
            // before handing its partitions to anyone: seconds without dispatches. A record
            // read meanwhile is not acknowledged: the partition's next owner reads it.
            let deadline = tokio::time::Instant::now() + LEAVE_LIMIT;
            while tokio::time::Instant::now() < deadline
                && consumer
                    .assignment()
                    .is_ok_and(|assignment| assignment.count() > 0)
            {
                let _ = tokio::time::timeout(LEAVE_POLL, consumer.recv()).await;
            }
        })
    }

    fn assignment(&self) -> Vec<i32> {
        self.consumer.assignment().map_or_else(
            |_| Vec::new(),
            |assignment| {
                assignment
                    .elements()
                    .iter()
                    .map(|element| element.partition())
                    .collect()
            },
        )
    }
}
