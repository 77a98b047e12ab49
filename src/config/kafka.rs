//! The Kafka cluster: where it is, how Kairos authenticates to it, and the topics it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::read_secret;

/// How Kairos's clients talk to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SecurityProtocol {
    #[default]
    #[serde(rename = "plaintext", alias = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "ssl", alias = "SSL")]
    Ssl,
    #[serde(rename = "sasl_plaintext", alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "sasl_ssl", alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// How a SASL client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// librdkafka settings that Kairos sets itself, so `kafka.properties` may not: its delivery
/// and offset guarantees rest on them, or a key of Kairos's own configures them.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `kafka.bootstrap_servers`"),
    ("client.id", "Kairos names its clients"),
    ("security.protocol", "set `kafka.security_protocol`"),
    ("sasl.mechanism", "set `kafka.sasl_mechanism`"),
    ("sasl.mechanisms", "set `kafka.sasl_mechanism`"),
    ("sasl.username", "set `kafka.sasl_username`"),
    (
        "sasl.password",
        "set `kafka.sasl_password` or `kafka.sasl_password_file`",
    ),
    ("ssl.ca.location", "set `kafka.ssl_ca_location`"),
    ("socket.timeout.ms", "set `kafka.request_timeout_ms`"),
    ("session.timeout.ms", "set `kafka.session_timeout_ms`"),
    (
        "heartbeat.interval.ms",
        "it follows `kafka.session_timeout_ms`",
    ),
    ("linger.ms", "set `kafka.linger_ms`"),
    ("queue.buffering.max.ms", "set `kafka.linger_ms`"),
    (
        "enable.idempotence",
        "no record may be lost or written twice",
    ),
    ("acks", "no record may be lost or written twice"),
    (
        "request.required.acks",
        "no record may be lost or written twice",
    ),
    (
        "max.in.flight.requests.per.connection",
        "no record may be lost or written twice",
    ),
    ("max.in.flight", "no record may be lost or written twice"),
    ("retries", "no record may be lost or written twice"),
    (
        "message.send.max.retries",
        "no record may be lost or written twice",
    ),
    ("transactional.id", "no record may be lost or written twice"),
    (
        "group.id",
        "set `executor.group_id` or `result_writer.group_id`",
    ),
    (
        "group.instance.id",
        "a process that dies must give its partitions up",
    ),
    (
        "enable.auto.commit",
        "offsets are committed once records are handled",
    ),
    (
        "auto.commit.interval.ms",
        "offsets are committed once records are handled",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed once records are handled",
    ),
    ("auto.offset.reset", "no record may be skipped"),
    ("isolation.level", "no record may be skipped"),
    (
        "partition.assignment.strategy",
        "Kairos's hand-over relies on it",
    ),
    (
        "enable.partition.eof",
        "Kairos's readers set it where they need it",
    ),
];

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

    /// The librdkafka settings of the connection: protocol, SASL, trusted authorities and
    /// the pass-through `properties`.
    pub fn connection_properties(&self) -> Vec<(String, String)> {
        let mut properties = vec![(
            "security.protocol".to_owned(),
            self.security_protocol.as_str().to_owned(),
        )];
        if let Some(mechanism) = self.sasl_mechanism {
            properties.push(("sasl.mechanism".into(), mechanism.as_str().into()));
        }
        if let Some(username) = &self.sasl_username {
            properties.push(("sasl.username".into(), username.clone()));
        }
        if let Some(password) = &self.sasl_password {
            properties.push(("sasl.password".into(), password.clone()));
        }
        if let Some(authorities) = &self.ssl_ca_location {
            properties.push((
                "ssl.ca.location".into(),
                authorities.to_string_lossy().into_owned(),
            ));
        }
        properties.extend(
            self.properties
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        properties
    }

    /// Reads `sasl_password_file`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the file cannot be read.
    pub(super) fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = &self.sasl_password_file {
            self.sasl_password = Some(read_secret("kafka.sasl_password_file", file)?);
        }
        Ok(())
    }

    /// Checks the security keys and the pass-through properties.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key that is not acceptable.
    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: String| Err(ConfigError::Invalid { key, problem });
        let protocol = self.security_protocol;
        if protocol.uses_sasl() {
            if self.sasl_mechanism.is_none() {
                return invalid(
                    "kafka.sasl_mechanism",
                    format!(
                        "must be set with `kafka.security_protocol = \"{}\"`: PLAIN, \
                         SCRAM-SHA-256 or SCRAM-SHA-512",
                        protocol.as_str()
                    ),
                );
            }
            if self.sasl_username.as_deref().is_none_or(str::is_empty) {
                return invalid(
                    "kafka.sasl_username",
                    format!(
                        "must be set with `kafka.security_protocol = \"{}\"`",
                        protocol.as_str()
                    ),
                );
            }
            if self.sasl_password.as_deref().is_none_or(str::is_empty) {
                return invalid(
                    "kafka.sasl_password",
                    format!(
                        "(or `kafka.sasl_password_file`) must be set with \
                         `kafka.security_protocol = \"{}\"`",
                        protocol.as_str()
                    ),
                );
            }
        } else if self.sasl_mechanism.is_some() || self.sasl_username.is_some() {
            return invalid(
                "kafka.security_protocol",
                "must be sasl_plaintext or sasl_ssl when SASL credentials are set".into(),
            );
        }
        for key in self.properties.keys() {
            if let Some((_, reason)) = OWNED_PROPERTIES.iter().find(|(owned, _)| owned == key) {
                return invalid("kafka.properties", format!("may not set `{key}`: {reason}"));
            }
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
