//! How a Kafka client reaches a cluster securely: the keys `[kafka]` (Kairos's own cluster) and
//! `[runner.kafka]` (the one `kafka` jobs publish to) share, checked and turned into
//! librdkafka settings in one place.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// How a client talks to the brokers (librdkafka's `security.protocol`).
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

/// The keys of one section's security settings, as its errors name them, and the librdkafka
/// settings its `properties` may not hold beyond those every section refuses.
pub(super) struct Keys {
    pub servers: &'static str,
    pub protocol: &'static str,
    pub mechanism: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub password_file: &'static str,
    pub ca: &'static str,
    pub properties: &'static str,
    owned: &'static [(&'static str, &'static str)],
}

/// The guarantees of Kairos's delivery and offsets rest on these.
const NO_LOSS: &str = "no record may be lost or written twice";
const HANDLED: &str = "offsets are committed once records are handled";

/// `[kafka]`: Kairos's own cluster, its producers and its consumers.
pub(super) const OWN_CLUSTER: Keys = Keys {
    servers: "kafka.bootstrap_servers",
    protocol: "kafka.security_protocol",
    mechanism: "kafka.sasl_mechanism",
    username: "kafka.sasl_username",
    password: "kafka.sasl_password",
    password_file: "kafka.sasl_password_file",
    ca: "kafka.ssl_ca_location",
    properties: "kafka.properties",
    owned: &[
        ("socket.timeout.ms", "set `kafka.request_timeout_ms`"),
        ("session.timeout.ms", "set `kafka.session_timeout_ms`"),
        (
            "heartbeat.interval.ms",
            "it follows `kafka.session_timeout_ms`",
        ),
        ("linger.ms", "set `kafka.linger_ms`"),
        ("queue.buffering.max.ms", "set `kafka.linger_ms`"),
        (
            "group.id",
            "set `executor.group_id` or `result_writer.group_id`",
        ),
        (
            "group.instance.id",
            "a process that dies must give its partitions up",
        ),
        ("enable.auto.commit", HANDLED),
        ("auto.commit.interval.ms", HANDLED),
        ("enable.auto.offset.store", HANDLED),
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
    ],
};

/// `[runner.kafka]`: the cluster `kafka` jobs publish to, when it is not Kairos's own.
pub(super) const JOBS_CLUSTER: Keys = Keys {
    servers: "runner.kafka.bootstrap_servers",
    protocol: "runner.kafka.security_protocol",
    mechanism: "runner.kafka.sasl_mechanism",
    username: "runner.kafka.sasl_username",
    password: "runner.kafka.sasl_password",
    password_file: "runner.kafka.sasl_password_file",
    ca: "runner.kafka.ssl_ca_location",
    properties: "runner.kafka.properties",
    owned: &[
        ("message.timeout.ms", "set `runner.kafka.delivery_timeout`"),
        ("delivery.timeout.ms", "set `runner.kafka.delivery_timeout`"),
        ("linger.ms", "Kairos sets it for `kafka` jobs"),
        ("queue.buffering.max.ms", "Kairos sets it for `kafka` jobs"),
    ],
};

/// What no section's `properties` may set besides its security keys: Kairos names its
/// clients, and its producers are idempotent.
const ALWAYS_OWNED: &[(&str, &str)] = &[
    ("client.id", "Kairos names its clients"),
    ("enable.idempotence", NO_LOSS),
    ("acks", NO_LOSS),
    ("request.required.acks", NO_LOSS),
    ("max.in.flight.requests.per.connection", NO_LOSS),
    ("max.in.flight", NO_LOSS),
    ("retries", NO_LOSS),
    ("message.send.max.retries", NO_LOSS),
    ("transactional.id", NO_LOSS),
];

/// One section's security settings, read together.
pub struct Security<'a> {
    pub(super) keys: &'static Keys,
    pub(super) protocol: SecurityProtocol,
    pub(super) mechanism: Option<SaslMechanism>,
    pub(super) username: Option<&'a str>,
    pub(super) password: Option<&'a str>,
    pub(super) ca: Option<&'a Path>,
    pub(super) properties: &'a BTreeMap<String, String>,
}

// Written by hand so that the SASL password, and the values of pass-through properties (which
// may be keys or passwords), never reach a log.
impl std::fmt::Debug for Security<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field(
                "section",
                &self.keys.properties.trim_end_matches(".properties"),
            )
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("ca", &self.ca)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Security<'_> {
    /// The librdkafka settings of the connection: protocol, SASL, trusted authorities and
    /// the pass-through `properties`.
    pub fn connection_properties(&self) -> Vec<(String, String)> {
        let mut properties = vec![(
            "security.protocol".to_owned(),
            self.protocol.as_str().to_owned(),
        )];
        if let Some(mechanism) = self.mechanism {
            properties.push(("sasl.mechanism".into(), mechanism.as_str().into()));
        }
        if let Some(username) = self.username {
            properties.push(("sasl.username".into(), username.to_owned()));
        }
        if let Some(password) = self.password {
            properties.push(("sasl.password".into(), password.to_owned()));
        }
        if let Some(authorities) = self.ca {
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

    /// Whether any key differs from its default (plain text, no SASL, the system's roots, no
    /// properties).
    pub(super) fn is_set(&self) -> bool {
        self.protocol != SecurityProtocol::Plaintext
            || self.mechanism.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.ca.is_some()
            || !self.properties.is_empty()
    }

    /// Checks the security keys and the pass-through properties.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key that is not acceptable.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: String| Err(ConfigError::Invalid { key, problem });
        let keys = self.keys;
        let with_protocol = || {
            format!(
                "must be set with `{} = \"{}\"`",
                keys.protocol,
                self.protocol.as_str()
            )
        };
        if self.protocol.uses_sasl() {
            if self.mechanism.is_none() {
                return invalid(
                    keys.mechanism,
                    format!("{}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", with_protocol()),
                );
            }
            if self.username.is_none_or(str::is_empty) {
                return invalid(keys.username, with_protocol());
            }
            if self.password.is_none_or(str::is_empty) {
                return invalid(
                    keys.password,
                    format!("(or `{}`) {}", keys.password_file, with_protocol()),
                );
            }
        } else if self.mechanism.is_some() || self.username.is_some() {
            return invalid(
                keys.protocol,
                "must be sasl_plaintext or sasl_ssl when SASL credentials are set".into(),
            );
        }
        for key in self.properties.keys() {
            if let Some(reason) = self.owned_reason(key) {
                return invalid(keys.properties, format!("may not set `{key}`: {reason}"));
            }
        }
        Ok(())
    }

    /// Why `property` may not be passed through, if it may not.
    fn owned_reason(&self, property: &str) -> Option<String> {
        let keys = self.keys;
        let security = match property {
            "bootstrap.servers" => Some(keys.servers),
            "security.protocol" => Some(keys.protocol),
            "sasl.mechanism" | "sasl.mechanisms" => Some(keys.mechanism),
            "sasl.username" => Some(keys.username),
            "sasl.password" => Some(keys.password),
            "ssl.ca.location" => Some(keys.ca),
            _ => None,
        };
        if let Some(key) = security {
            return Some(format!("set `{key}`"));
        }
        ALWAYS_OWNED
            .iter()
            .chain(keys.owned)
            .find(|(owned, _)| *owned == property)
            .map(|(_, reason)| (*reason).to_owned())
    }
}
