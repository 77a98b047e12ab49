//! Typed configuration, read once at start-up.
//!
//! Layers, each overriding the one before (see [`Layers`]): the defaults compiled into the
//! binary (`config/default.toml`), then a named file (`--config FILE`, or
//! `config/<KAIROS_ENV>.toml`), then environment variables `KAIROS__SECTION__KEY`. Kairos
//! needs no file to run. The result is deserialised into [`Settings`]
//! (unknown keys are errors, so a typo cannot be silently ignored) and then checked by
//! [`Settings::validate`]. Every error names the key it is about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod auth;
mod database;
mod kafka;
mod kafka_security;
mod layers;
mod secrets;
mod sections;
mod shell;
mod show;
mod validate;

pub use auth::{AccessRole, AuthSettings, Credential, TokenEntry, hash_token};
pub use database::{DatabaseSettings, SslMode};
pub use kafka::{KafkaSettings, TopicSettings};
pub use kafka_security::{SaslMechanism, Security, SecurityProtocol};
pub use layers::{DEFAULTS, Layers, Origin};
pub use sections::*;
pub use shell::{CommandPatterns, ShellSettings};

/// The prefix of environment variables that override configuration keys.
const ENV_PREFIX: &str = "KAIROS__";
/// Separates the sections of a key in an environment variable's name.
const ENV_SEPARATOR: &str = "__";

/// Keys whose canonical spelling is not all lowercase. Environment variable names are
/// case-insensitive by convention, so `KAIROS__KAFKA__TOPIC__UPDATEDJOBS` must land on the
/// seed's `kafka.topic.updatedJobs`.
const MIXED_CASE_KEYS: &[&str] = &["kafka.topic.updatedJobs"];

/// Keys holding lists; their environment variables are comma-separated.
const LIST_KEYS: &[&str] = &[
    "auth.tokens",
    "roles",
    "runner.shell.env",
    "runner.http.allowed_hosts",
    "runner.kafka.allowed_topics",
];
/// A longer wait would hold every report and every batch of dispatches as long.
const MAX_LINGER_MS: u64 = 1000;

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or parsed, or a value has the wrong type.
    #[error("configuration error: {0}")]
    Load(#[from] config::ConfigError),
    /// A value has the right type but is not acceptable.
    #[error("configuration error: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// Everything Kairos can be configured with. See `config/default.toml` for each key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub roles: Vec<Role>,
    pub http: HttpSettings,
    pub standalone: StandaloneSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub log: LogSettings,
    pub scanner: ScannerSettings,
    pub executor: ExecutorSettings,
    pub result_writer: ResultWriterSettings,
    pub jobs: JobSettings,
    pub schedules: ScheduleSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub runner: RunnerSettings,
    pub recovery: RecoverySettings,
    pub shutdown: ShutdownSettings,
}

/// Where to read configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A folder whose `default.toml` (when there is one) is layered over the compiled
    /// defaults, and where `<KAIROS_ENV>.toml` is looked for (`./config` when `None`).
    pub directory: Option<PathBuf>,
    /// A file layered over the defaults; `config/<KAIROS_ENV>.toml` when `None` and
    /// `KAIROS_ENV` is set.
    pub file: Option<PathBuf>,
    /// `KAIROS__…` variables to apply; the process environment when `None`.
    pub environment: Option<Vec<(String, String)>>,
}

impl Settings {
    /// Standalone unless both PostgreSQL (`database.host`) and Kafka
    /// (`kafka.bootstrap_servers`) are configured; [`Settings::validate`] refuses one without
    /// the other.
    pub fn backend(&self) -> Backend {
        match (&self.database.host, &self.kafka.bootstrap_servers) {
            (Some(_), Some(_)) => Backend::Distributed,
            _ => Backend::Standalone,
        }
    }

    /// Whether this process plays `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The lease of a `RETRYING` job: the longest backoff (with jitter) plus the grace.
    pub fn retry_lease(&self) -> Duration {
        self.executor.retry_backoff_max.mul_f64(1.25) + self.recovery.grace
    }

    /// The Kafka cluster `kafka` jobs publish to: `runner.kafka.bootstrap_servers`, else
    /// Kairos's own in the distributed mode; none in the standalone mode without the former.
    pub fn job_kafka_servers(&self) -> Option<&str> {
        self.runner
            .kafka
            .bootstrap_servers
            .as_deref()
            .or(match self.backend() {
                Backend::Distributed => self.kafka.bootstrap_servers.as_deref(),
                Backend::Standalone => None,
            })
    }

    /// Reads the layers (see [`Layers`]), then the secrets named by `…_file` keys and
    /// `database.url`, and validates the result.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a value of the wrong type, an unknown key, or a
    /// value that fails [`Settings::validate`]; the message names the key.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        Layers::read(sources)?.settings()
    }
}

/// Turns `KAIROS__SECTION__KEY=value` variables into `(variable, section.key, value)`.
fn environment_overrides(vars: &[(String, String)]) -> Vec<(String, String, String)> {
    let mut overrides: Vec<_> = vars
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let key = rest
                .split(ENV_SEPARATOR)
                .collect::<Vec<_>>()
                .join(".")
                .to_lowercase();
            let key = MIXED_CASE_KEYS
                .iter()
                .find(|canonical| canonical.to_lowercase() == key)
                .map_or(key, |canonical| (*canonical).to_owned());
            Some((name.clone(), key, value.clone()))
        })
        .collect();
    // The environment's order is arbitrary; sorted, two spellings of one key resolve the same
    // way every time.
    overrides.sort();
    overrides
}

/// The folder of the crate's own `config/`, for tools and tests run from anywhere.
pub fn crate_config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

#[cfg(test)]
mod tests;
