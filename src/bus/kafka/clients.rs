//! How Kairos's Kafka clients are configured: every client, the idempotent producers, the
//! consumers, and the topics created at start-up.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::bus::BusError;
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
/// record ([`crate::bus::Pace::Prompt`]).
///
/// # Errors
/// [`BusError::Client`] when librdkafka rejects the configuration.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, BusError> {
    lingering_producer(settings, PROMPT_LINGER_MS)
}

/// [`producer`], waiting up to `linger_ms` for more records before it sends a batch. Fewer,
/// larger batches cost the broker and librdkafka less per record ([`crate::bus::Pace::Batched`]).
///
/// Batches are LZ4-compressed: the broker decompresses every batch it validates, and LZ4
/// costs it (and librdkafka) about half what zstd does, for JSON records that both shrink
/// well (docs/performance.md, item 56).
pub fn lingering_producer(
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
    topics.all()
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
