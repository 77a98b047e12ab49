//! Kafka: the bus of the distributed mode. Clients are configured the same way everywhere
//! ([`clients`]); [`KafkaBus::connect`] creates the topics Kairos needs.

mod clients;
mod positions;
mod publisher;
mod subscription;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use clients::lingering_producer;
pub use clients::{
    check_connection, client_config, consumer, ensure_topics, producer, topic_names,
};
use positions::{read_between, read_position};
pub use publisher::{Delivered, Publisher};
use subscription::KafkaSubscription;

use super::{Bus, BusError, GroupPosition, Pace, Record, Subscription, partition_of};
use crate::config::KafkaSettings;

/// The Kafka cluster, through two idempotent producers shared by the whole process: one that
/// sends at once and one that waits `kafka.linger_ms` to fill its batches (see [`Pace`]).
#[allow(
    missing_debug_implementations,
    reason = "rdkafka's producer has no Debug"
)]
pub struct KafkaBus {
    producer: Publisher,
    batching_producer: Publisher,
    settings: KafkaSettings,
    /// Per group, a consumer that never subscribes: it only reads the group's positions.
    position_readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
    /// The partitions of each topic Kairos places records in, read once.
    partition_counts: Mutex<HashMap<String, i32>>,
}

impl KafkaBus {
    /// Creates the topics of `settings.topic` (and their dead-letter topics) that are missing,
    /// and the producer.
    ///
    /// # Errors
    /// [`BusError`] when the cluster cannot be reached or refuses a topic.
    pub async fn connect(settings: &KafkaSettings) -> Result<Self, BusError> {
        check_connection(settings).await?;
        ensure_topics(settings, &topic_names(&settings.topic)).await?;
        let bus = Self {
            producer: producer(settings)?,
            batching_producer: lingering_producer(settings, settings.linger_ms)?,
            settings: settings.clone(),
            position_readers: Mutex::new(HashMap::new()),
            partition_counts: Mutex::new(HashMap::new()),
        };
        // Records of a job are placed by the job's id (`partition_of`): the topics'
        // partition counts are needed before the first record goes out. A topic just created
        // may take a moment to show its partitions in the cluster's metadata.
        let deadline = tokio::time::Instant::now() + settings.request_timeout();
        for topic in [&settings.topic.jobs, &settings.topic.updated_jobs] {
            loop {
                match bus.partitions(topic).await {
                    Ok(_) => break,
                    Err(BusError::NoPartitions(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(bus)
    }

    /// The partition of a record keyed by `key` on `topic`: by the job id the key names
    /// ([`partition_of`]), on the topics whose partitions are known; otherwise librdkafka's.
    fn place(&self, topic: &str, key: Option<&[u8]>) -> Option<i32> {
        let id = std::str::from_utf8(key?).ok()?.parse::<uuid::Uuid>().ok()?;
        let partitions = *self
            .partition_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)?;
        Some(partition_of(id, partitions))
    }

    fn position_reader(&self, group: &str) -> Result<Arc<BaseConsumer>, BusError> {
        let mut readers = self
            .position_readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reader) = readers.get(group) {
            return Ok(Arc::clone(reader));
        }
        let reader: Arc<BaseConsumer> = Arc::new(
            client_config(&self.settings)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()?,
        );
        readers.insert(group.to_owned(), Arc::clone(&reader));
        Ok(reader)
    }
}

#[async_trait::async_trait]
impl Bus for KafkaBus {
    fn location(&self) -> String {
        format!("Kafka at {}", self.settings.bootstrap_servers())
    }

    async fn ping(&self) -> Result<(), BusError> {
        let producer = self.producer.clone();
        let timeout = self.settings.request_timeout();
        // librdkafka's metadata call blocks its thread.
        tokio::task::spawn_blocking(move || producer.fetch_metadata(None, timeout).map(|_| ()))
            .await??;
        Ok(())
    }

    async fn publish(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
        pace: Pace,
    ) -> Result<(), BusError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if !headers.is_empty() {
            let owned = headers
                .iter()
                .fold(OwnedHeaders::new(), |owned, (key, value)| {
                    owned.insert(Header {
                        key,
                        value: Some(*value),
                    })
                });
            record = record.headers(owned);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = self.place(topic, key) {
            record = record.partition(partition);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        let producer = match pace {
            Pace::Prompt => &self.producer,
            Pace::Batched => &self.batching_producer,
        };
        producer
            .send(record, self.settings.request_timeout())
            .await?;
        Ok(())
    }

    async fn position(&self, group: &str, topic: &str) -> Result<GroupPosition, BusError> {
        let reader = self.position_reader(group)?;
        let (group, topic) = (group.to_owned(), topic.to_owned());
        let timeout = self.settings.request_timeout();
        // librdkafka's offset and metadata calls block their thread.
        tokio::task::spawn_blocking(move || read_position(&reader, &group, &topic, timeout)).await?
    }

    fn subscribe(&self, group: &str, topic: &str) -> Result<Arc<dyn Subscription>, BusError> {
        Ok(Arc::new(KafkaSubscription {
            consumer: Arc::new(consumer(&self.settings, group, topic)?),
            topic: topic.to_owned(),
        }))
    }

    async fn partitions(&self, topic: &str) -> Result<i32, BusError> {
        let known = self
            .partition_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .copied();
        if let Some(count) = known {
            return Ok(count);
        }
        let producer = self.producer.clone();
        let (name, timeout) = (topic.to_owned(), self.settings.request_timeout());
        // librdkafka's metadata call blocks its thread.
        let metadata =
            tokio::task::spawn_blocking(move || producer.fetch_metadata(Some(&name), timeout))
                .await??;
        let count = metadata
            .topics()
            .iter()
            .find(|found| found.name() == topic)
            .map_or(0, |found| found.partitions().len());
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(BusError::NoPartitions(topic.to_owned()));
        }
        self.partition_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), count);
        Ok(count)
    }

    async fn unhandled(&self, group: &str, topic: &str) -> Result<Vec<Record>, BusError> {
        let position = self.position(group, topic).await?;
        let settings = self.settings.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_between(&settings, &topic, &position)).await?
    }
}
