//! Kafka clients, configured the same way everywhere, and the topics Kairos needs.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{KafkaSettings, TopicSettings};

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
