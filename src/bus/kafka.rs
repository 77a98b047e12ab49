//! Kafka clients, configured the same way everywhere, and the topics Kairos needs.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::config::{KafkaSettings, TopicSettings};
use crate::domain::{AttemptReport, Dispatch};

/// A failure at the Kafka boundary.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Kafka client error: {0}")]
    Client(#[from] KafkaError),
    #[error("creating Kafka topic `{topic}` failed: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("a blocking Kafka call could not complete: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The settings every Kairos client shares.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", "kairos")
        // Fail a request rather than hang on a broker that does not answer.
        .set(
            "socket.timeout.ms",
            settings.request_timeout_ms.max(10).to_string(),
        );
    config
}

/// A producer that does not lose or duplicate records when a broker or the network fails:
/// idempotence makes the broker drop the retries of a batch it already wrote, and `acks=all`
/// confirms a record only once it is replicated.
///
/// # Errors
/// [`BusError::Client`] when librdkafka rejects the configuration.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, BusError> {
    let producer = client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "zstd")
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

/// Fetches the cluster's metadata, for the readiness probe: it proves a broker answers.
///
/// # Errors
/// [`BusError::Client`] when no broker answered within `timeout`.
pub async fn ping(producer: &FutureProducer, timeout: Duration) -> Result<(), BusError> {
    let producer = producer.clone();
    // librdkafka's metadata call blocks its thread.
    tokio::task::spawn_blocking(move || {
        producer.client().fetch_metadata(None, timeout).map(|_| ())
    })
    .await??;
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

/// The consumer's records, detached from it, as a stream an actor can own
/// (`ctx.add_stream`). Broker errors arrive as `Err` items; the stream never ends.
pub fn records(
    consumer: Arc<StreamConsumer>,
) -> impl futures_util::Stream<Item = Result<OwnedMessage, KafkaError>> + 'static {
    futures_util::stream::unfold(consumer, |consumer| async move {
        let record = consumer.recv().await.map(|message| message.detach());
        Some((record, consumer))
    })
}

/// Decodes a record's JSON payload, or says why it cannot.
///
/// # Errors
/// The reason, in words, for the dead-letter header.
pub fn decode<T: DeserializeOwned>(message: &OwnedMessage) -> Result<T, String> {
    let payload = message
        .payload()
        .ok_or_else(|| "the record has no payload".to_owned())?;
    serde_json::from_slice(payload).map_err(|error| error.to_string())
}

/// Commits the offsets `consumer` stored, at shutdown. Having nothing new to commit is fine.
pub fn commit_stored(consumer: &StreamConsumer, topic: &str) {
    match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, topic, "cannot commit offsets at shutdown"),
    }
}

/// Publishes Kairos's records: dispatches, attempt reports and dead letters. Records are JSON
/// and keyed by job id, so all records of a job land on one partition, in order.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "rdkafka's producer has no Debug"
)]
pub struct Publisher {
    producer: FutureProducer,
    topics: TopicSettings,
    /// How long a send may wait in librdkafka's queue when it is full.
    queue_timeout: Duration,
}

impl Publisher {
    /// A publisher on `producer` for the configured topics.
    pub fn new(producer: FutureProducer, topics: TopicSettings, queue_timeout: Duration) -> Self {
        Self {
            producer,
            topics,
            queue_timeout,
        }
    }

    /// The underlying producer, for the readiness probe.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Publishes a job for the executors on `kafka.topic.jobs`.
    ///
    /// # Errors
    /// [`BusError`] when the broker does not acknowledge the record.
    pub async fn dispatch(&self, dispatch: &Dispatch) -> Result<(), BusError> {
        self.send_json(&self.topics.jobs, &dispatch.job_id.to_string(), dispatch)
            .await
    }

    /// Publishes an attempt's progress or result on `kafka.topic.updatedJobs`.
    ///
    /// # Errors
    /// [`BusError`] when the broker does not acknowledge the record.
    pub async fn report(&self, report: &AttemptReport) -> Result<(), BusError> {
        self.send_json(
            &self.topics.updated_jobs,
            &report.job_id.to_string(),
            report,
        )
        .await
    }

    /// Sets a record that could not be understood aside on `<topic>.dlt`, unchanged, with the
    /// reason in a `kairos-error` header.
    ///
    /// # Errors
    /// [`BusError`] when the broker does not acknowledge the record.
    pub async fn dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        reason: &str,
    ) -> Result<(), BusError> {
        let dead_letter_topic = TopicSettings::dead_letter(topic);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "kairos-error",
                value: Some(reason),
            })
            .insert(Header {
                key: "kairos-source-topic",
                value: Some(topic),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&dead_letter_topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record, self.queue_timeout)
            .await
            .map_err(|(error, _)| error)?;
        Ok(())
    }

    /// [`Publisher::dead_letter`] for `message`, read from `topic`, retried every `pause`
    /// until acknowledged: a record is never dropped, even when it cannot be read.
    pub async fn dead_letter_until_acknowledged(
        &self,
        topic: &str,
        message: &OwnedMessage,
        reason: &str,
        pause: Duration,
    ) {
        while let Err(error) = self
            .dead_letter(topic, message.key(), message.payload(), reason)
            .await
        {
            tracing::error!(%error, topic, "cannot publish a dead letter; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn send_json(
        &self,
        topic: &str,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(value)?;
        let record = FutureRecord::to(topic).key(key).payload(&payload);
        self.producer
            .send(record, self.queue_timeout)
            .await
            .map_err(|(error, _)| error)?;
        Ok(())
    }
}
