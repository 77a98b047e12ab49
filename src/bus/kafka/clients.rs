//! How Kairos's Kafka clients are configured: every client, the idempotent producers, the
//! consumers, and the topics created at start-up.

use rdkafka::ClientConfig;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::publisher::Publisher;
use crate::bus::BusError;
use crate::config::{KafkaSettings, TopicSettings};

/// The settings every Kairos client shares: the cluster, how to authenticate to it (and any
/// pass-through `kafka.properties`), and the bound on a round trip.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in settings.connection_properties() {
        config.set(key, value);
    }
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
pub fn producer(settings: &KafkaSettings) -> Result<Publisher, BusError> {
    lingering_producer(settings, PROMPT_LINGER_MS)
}

/// [`producer`], waiting up to `linger_ms` for more records before it sends a batch. Fewer,
/// larger batches cost the broker and librdkafka less per record ([`crate::bus::Pace::Batched`]).
///
/// Batches are LZ4-compressed: the broker decompresses every batch it validates, and LZ4
/// costs it (and librdkafka) about half what zstd does, for JSON records that both shrink
/// well (docs/performance.md, item 56).
pub fn lingering_producer(settings: &KafkaSettings, linger_ms: u64) -> Result<Publisher, BusError> {
    let producer = Publisher::create(
        client_config(settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", linger_ms.to_string())
            .set("compression.type", "lz4"),
    )?;
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

/// Remembers the errors librdkafka reported about its connections, so that a request that
/// times out can say why (librdkafka retries a failed handshake or login until then).
#[derive(Debug, Default)]
struct ConnectionErrors {
    reasons: std::sync::Mutex<Vec<String>>,
}

impl ConnectionErrors {
    /// The reasons heard, each once, in order (say, a failed login, then "1/1 brokers are
    /// down").
    fn reasons(&self) -> Option<String> {
        let reasons = self.reasons.lock().ok()?;
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

impl rdkafka::ClientContext for ConnectionErrors {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
        if let Ok(mut reasons) = self.reasons.lock()
            && !reasons.iter().any(|known| known == reason)
        {
            reasons.push(reason.to_owned());
        }
    }
}

impl rdkafka::producer::ProducerContext for ConnectionErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Checks that the brokers can be reached and accept Kairos's login, within
/// `kafka.request_timeout_ms`.
///
/// # Errors
/// [`BusError::Connection`] saying why not, as librdkafka reported it (a refused TLS
/// handshake, failed authentication, a host that does not resolve).
pub async fn check_connection(settings: &KafkaSettings) -> Result<(), BusError> {
    let producer: BaseProducer<ConnectionErrors> =
        client_config(settings).create_with_context(ConnectionErrors::default())?;
    let timeout = settings.request_timeout();
    // librdkafka's metadata call blocks its thread.
    tokio::task::spawn_blocking(move || {
        let Err(error) = producer.client().fetch_metadata(None, timeout) else {
            return Ok(());
        };
        // Serves the events queued meanwhile: the context hears the reason.
        producer.poll(Duration::from_millis(100));
        Err(match producer.context().reasons() {
            Some(reason) => BusError::Connection { error, reason },
            None => BusError::Client(error),
        })
    })
    .await?
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
