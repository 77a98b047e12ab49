//! Kafka: the bus of the distributed mode. Clients are configured the same way everywhere;
//! [`KafkaBus::connect`] creates the topics Kairos needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{Bus, BusError, GroupPosition, Pace, PartitionPosition, Record, Subscription};
use crate::config::{KafkaSettings, TopicSettings};

/// The settings every Kairos client shares.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", settings.bootstrap_servers())
        .set("client.id", "kairos")
        // Fail a request rather than hang on a broker that does not answer.
        .set(
            "socket.timeout.ms",
            settings.request_timeout_ms.max(10).to_string(),
        );
    config
}

/// How long the prompt producer waits for more records before it sends a batch.
const PROMPT_LINGER_MS: u64 = 2;

/// A producer that does not lose or duplicate records when a broker or the network fails:
/// idempotence makes the broker drop the retries of a batch it already wrote, and `acks=all`
/// confirms a record only once it is replicated. It sends a batch within 2 ms of its first
/// record ([`Pace::Prompt`]).
///
/// # Errors
/// [`BusError::Client`] when librdkafka rejects the configuration.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, BusError> {
    lingering_producer(settings, PROMPT_LINGER_MS)
}

/// [`producer`], waiting up to `linger_ms` for more records before it sends a batch. Fewer,
/// larger batches cost the broker and librdkafka less per record ([`Pace::Batched`]).
///
/// Batches are LZ4-compressed: the broker decompresses every batch it validates, and LZ4
/// costs it (and librdkafka) about half what zstd does, for JSON records that both shrink
/// well (docs/performance.md, item 56).
fn lingering_producer(
    settings: &KafkaSettings,
    linger_ms: u64,
) -> Result<FutureProducer, BusError> {
    let producer = client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("compression.type", "lz4")
        .create()?;
    Ok(producer)
}

/// The topics Kairos reads and writes: the two from the configuration and their dead-letter
/// topics.
pub fn topic_names(topics: &TopicSettings) -> Vec<String> {
    vec![
        topics.jobs.clone(),
        TopicSettings::dead_letter(&topics.jobs),
        topics.updated_jobs.clone(),
        TopicSettings::dead_letter(&topics.updated_jobs),
    ]
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
///
/// # Errors
/// [`BusError`] when the cluster cannot be reached or refuses to create a topic.
pub async fn ensure_topics(settings: &KafkaSettings, names: &[String]) -> Result<(), BusError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(settings.request_timeout()));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(BusError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// A consumer in group `group_id` subscribed to `topic`, which reads from the beginning when
/// the group has no committed offset. Offsets are stored by Kairos only once a record's
/// effect is safe (`enable.auto.offset.store=false`) and committed in the background.
///
/// # Errors
/// [`BusError::Client`] when librdkafka rejects the configuration or the subscription.
pub fn consumer(
    settings: &KafkaSettings,
    group_id: &str,
    topic: &str,
) -> Result<StreamConsumer, BusError> {
    let consumer: StreamConsumer = client_config(settings)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 3).max(100).to_string(),
        )
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// The Kafka cluster, through two idempotent producers shared by the whole process: one that
/// sends at once and one that waits `kafka.linger_ms` to fill its batches (see [`Pace`]).
#[allow(
    missing_debug_implementations,
    reason = "rdkafka's producer has no Debug"
)]
pub struct KafkaBus {
    producer: FutureProducer,
    batching_producer: FutureProducer,
    settings: KafkaSettings,
    /// Per group, a consumer that never subscribes: it only reads the group's positions.
    position_readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl KafkaBus {
    /// Creates the topics of `settings.topic` (and their dead-letter topics) that are missing,
    /// and the producer.
    ///
    /// # Errors
    /// [`BusError`] when the cluster cannot be reached or refuses a topic.
    pub async fn connect(settings: &KafkaSettings) -> Result<Self, BusError> {
        ensure_topics(settings, &topic_names(&settings.topic)).await?;
        Ok(Self {
            producer: producer(settings)?,
            batching_producer: lingering_producer(settings, settings.linger_ms)?,
            settings: settings.clone(),
            position_readers: Mutex::new(HashMap::new()),
        })
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

/// Reads where `group` stands in `topic`: the committed positions first, then the ends.
fn read_position(
    reader: &BaseConsumer,
    group: &str,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<GroupPosition, BusError> {
    let metadata = reader.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(BusError::NoPartitions(topic.to_owned()));
    }
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = reader.committed_offsets(wanted, timeout)?;
    let mut position = GroupPosition::default();
    for partition in partitions {
        let (start, end) = reader.fetch_watermarks(topic, partition, timeout)?;
        let committed =
            committed
                .find_partition(topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
        position.partitions.insert(
            partition,
            PartitionPosition {
                start,
                end,
                committed,
            },
        );
    }
    tracing::trace!(group, topic, ?position, "consumer group position");
    Ok(position)
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
        tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, timeout).map(|_| ())
        })
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
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        let producer = match pace {
            Pace::Prompt => &self.producer,
            Pace::Batched => &self.batching_producer,
        };
        producer
            .send(record, self.settings.request_timeout())
            .await
            .map_err(|(error, _)| error)?;
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
}

/// How long leaving a group may take before the process goes on without it.
const LEAVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long each poll of a leaving consumer waits.
const LEAVE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A consumer in a group, subscribed to one topic.
struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    topic: String,
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

    fn assigned_partitions(&self) -> usize {
        self.consumer
            .assignment()
            .map_or(0, |assignment| assignment.count())
    }
}
