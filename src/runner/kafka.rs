//! The `kafka` kind: each attempt publishes the job's message, with an idempotent producer
//! (`acks=all`), to `runner.kafka.bootstrap_servers`, reached with `[runner.kafka]`'s security
//! keys (Kairos's own cluster, reached as Kairos reaches it, when unset in the distributed
//! mode). The attempt succeeds once the broker acknowledges the message and records its
//! partition and offset; Kairos's own topics are never a target.
//!
//! `runner.kafka.allowed_topics` (names, or prefixes ending in `*`) narrows the topics jobs
//! may publish to; a job naming another is refused at create and, should the list change
//! meanwhile, fails at its time without publishing.
//!
//! Besides the job's headers, the message carries `Kairos-Job-Id`, `Kairos-Attempt` and
//! `Kairos-Scheduled-At`, so that a consumer can deduplicate a message published again by a
//! retry (an attempt whose acknowledgement was lost).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use super::{AttemptContext, RunResult, Runner, Slot};
use crate::bus::kafka::Publisher;
use crate::config::Settings;
use crate::domain::KafkaSpec;

/// Runs `kafka` jobs with one producer; without a cluster configured, every attempt fails.
#[allow(
    missing_debug_implementations,
    reason = "librdkafka's producer has no Debug"
)]
pub struct KafkaRunner {
    producer: Option<Publisher>,
    /// Kairos's own topics, which jobs may not publish to.
    own_topics: Vec<String>,
    /// `runner.kafka.allowed_topics`.
    allowed_topics: Vec<String>,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for KafkaRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRunner")
            .field("configured", &self.producer.is_some())
            .finish()
    }
}

impl KafkaRunner {
    /// A runner publishing where `settings` say (see [`Settings::job_kafka_servers`]).
    ///
    /// # Errors
    /// When librdkafka refuses the producer's configuration.
    pub fn new(settings: &Settings) -> Result<Self, KafkaError> {
        let delivery_timeout = settings.runner.kafka.delivery_timeout;
        let producer = settings
            .job_kafka_servers()
            .map(|servers| {
                let mut config = ClientConfig::new();
                // Kairos's own cluster is reached as Kairos reaches it; another one with the
                // security keys of `[runner.kafka]`.
                let security = match settings.runner.kafka.bootstrap_servers {
                    None => settings.kafka.security(),
                    Some(_) => settings.runner.kafka.security(),
                };
                for (key, value) in security.connection_properties() {
                    config.set(key, value);
                }
                Publisher::create(
                    config
                        .set("bootstrap.servers", servers)
                        .set("client.id", "kairos-jobs")
                        .set("enable.idempotence", "true")
                        .set("acks", "all")
                        .set("linger.ms", "2")
                        .set(
                            "message.timeout.ms",
                            delivery_timeout.as_millis().max(1).to_string(),
                        ),
                )
            })
            .transpose()?;
        Ok(Self {
            producer,
            own_topics: settings.kafka.topic.all(),
            allowed_topics: settings.runner.kafka.allowed_topics.clone(),
            delivery_timeout,
        })
    }

    /// Whether `topic` is one of Kairos's own.
    pub fn is_own_topic(&self, topic: &str) -> bool {
        self.own_topics.iter().any(|own| own == topic)
    }
}

/// Whether jobs may publish to `topic` under `allowed` (names, or prefixes ending in `*`;
/// empty: any).
pub fn topic_allowed(topic: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => entry == topic,
        })
}

#[async_trait::async_trait]
impl Runner for KafkaRunner {
    type Spec = KafkaSpec;

    fn slot(&self) -> Slot {
        Slot::None
    }

    async fn run(&self, spec: &KafkaSpec, attempt: &AttemptContext) -> RunResult {
        let Some(producer) = &self.producer else {
            return RunResult::not_retried(
                "no Kafka cluster to publish to: set runner.kafka.bootstrap_servers",
            );
        };
        if self.is_own_topic(&spec.topic) {
            return RunResult::not_retried(format!(
                "`{}` is one of Kairos's own topics",
                spec.topic
            ));
        }
        if !topic_allowed(&spec.topic, &self.allowed_topics) {
            return RunResult::not_retried(format!(
                "`{}` is not among the topics runner.kafka.allowed_topics allows",
                spec.topic
            ));
        }
        let job_id = attempt.job_id.to_string();
        let attempt_number = attempt.attempt.to_string();
        let scheduled_at = attempt.scheduled_at.to_rfc3339();
        let mut headers = OwnedHeaders::new_with_capacity(spec.headers.len() + 3);
        for (name, value) in &spec.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        for (name, value) in [
            ("Kairos-Job-Id", &job_id),
            ("Kairos-Attempt", &attempt_number),
            ("Kairos-Scheduled-At", &scheduled_at),
        ] {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let (value, _) = spec.value.to_bytes();
        let mut record = FutureRecord::to(&spec.topic)
            .payload(&value)
            .headers(headers);
        if let Some(key) = &spec.key {
            record = record.key(key);
        }
        let sent = tokio::select! {
            sent = producer.send(record, self.delivery_timeout) => sent,
            () = attempt.cancelled() => return RunResult::cancelled(),
        };
        match sent {
            Ok((partition, offset)) => RunResult {
                stdout: serde_json::json!({
                    "topic": spec.topic,
                    "partition": partition,
                    "offset": offset,
                })
                .to_string(),
                ..RunResult::succeeded()
            },
            Err(error) => {
                let retryable = !matches!(
                    error.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::InvalidMessageSize
                            | RDKafkaErrorCode::TopicAuthorizationFailed
                            | RDKafkaErrorCode::InvalidTopic
                    )
                );
                RunResult {
                    retryable,
                    ..RunResult::failed(format!("the broker did not take the message: {error}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topic_allowed;

    #[test]
    fn topics_are_allowed_by_name_or_prefix() {
        let allowed = vec!["orders-due".to_owned(), "billing.*".to_owned()];
        assert!(topic_allowed("orders-due", &allowed));
        assert!(topic_allowed("billing.invoices", &allowed));
        assert!(!topic_allowed("orders-due-2", &allowed));
        assert!(!topic_allowed("billing", &allowed));
        assert!(!topic_allowed("payments", &allowed));
        assert!(topic_allowed("anything", &[]));
    }
}
