//! The Kafka cluster: where it is, how Kairos authenticates to it, and the topics it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::kafka_security::{OWN_CLUSTER, SaslMechanism, Security, SecurityProtocol};
use super::secrets::read_secret;

/// The Kafka cluster and the topics Kairos uses.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Unset: no Kafka is configured (the standalone mode).
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    #[serde(default)]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// A file holding the SASL password; it replaces `sasl_password`.
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// PEM certificates of the authorities that sign the brokers' certificates; unset, the
    /// system's roots.
    #[serde(default)]
    pub ssl_ca_location: Option<PathBuf>,
    /// Any other librdkafka setting, given to every client (the ones Kairos owns are refused).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub partitions: i32,
    pub replication_factor: i32,
    pub request_timeout_ms: u64,
    pub session_timeout_ms: u64,
    /// How long records published in numbers wait for others to share a batch.
    pub linger_ms: u64,
    pub topic: TopicSettings,
}

// Written by hand so that the SASL password, and the values of pass-through properties (which
// may be keys or passwords), never reach a log.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("sasl_password_file", &self.sasl_password_file)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("linger_ms", &self.linger_ms)
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaSettings {
    /// The configured brokers (empty when none are, which validation allows only standalone).
    pub fn bootstrap_servers(&self) -> &str {
        self.bootstrap_servers.as_deref().unwrap_or_default()
    }

    /// The bound on one round trip to the brokers.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How Kairos's clients reach the cluster: its security keys, read together.
    pub fn security(&self) -> Security<'_> {
        Security {
            keys: &OWN_CLUSTER,
            protocol: self.security_protocol,
            mechanism: self.sasl_mechanism,
            username: self.sasl_username.as_deref(),
            password: self.sasl_password.as_deref(),
            ca: self.ssl_ca_location.as_deref(),
            properties: &self.properties,
        }
    }

    /// The librdkafka settings of the connection: protocol, SASL, trusted authorities and
    /// the pass-through `properties`.
    pub fn connection_properties(&self) -> Vec<(String, String)> {
        self.security().connection_properties()
    }

    /// Reads `sasl_password_file`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the file cannot be read.
    pub(super) fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = &self.sasl_password_file {
            self.sasl_password = Some(read_secret(OWN_CLUSTER.password_file, file)?);
        }
        Ok(())
    }
}
/// Topic names, under the seed's keys `kafka.topic.jobs` and `kafka.topic.updatedJobs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Jobs due soon, from the scanner to the executors.
    pub jobs: String,
    /// Attempt progress and results, from the executors to the result writer.
    #[serde(rename = "updatedJobs")]
    pub updated_jobs: String,
}

impl TopicSettings {
    /// The dead-letter topic where malformed records read from `topic` are set aside.
    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}.dlt")
    }

    /// The topics Kairos reads and writes: the two configured and their dead-letter topics.
    pub fn all(&self) -> Vec<String> {
        vec![
            self.jobs.clone(),
            Self::dead_letter(&self.jobs),
            self.updated_jobs.clone(),
            Self::dead_letter(&self.updated_jobs),
        ]
    }
}
