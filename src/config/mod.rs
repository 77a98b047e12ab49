//! Typed configuration, read once at start-up.
//!
//! Three layers, each overriding the one before: `config/default.toml`, then a named
//! environment file (`config/<KAIROS_ENV>.toml`, or a file given on the command line), then
//! environment variables `KAIROS__SECTION__KEY`. The result is deserialised into [`Settings`]
//! (unknown keys are errors, so a typo cannot be silently ignored) and then checked by
//! [`Settings::validate`]. Every error names the key it is about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod sections;

pub use sections::*;

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
    /// The folder holding `default.toml`; `./config` when `None`.
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

    /// Reads the three layers and validates the result.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a value of the wrong type, an unknown key, or a
    /// value that fails [`Settings::validate`]; the message names the key.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let directory = sources
            .directory
            .clone()
            .unwrap_or_else(|| PathBuf::from("config"));
        let mut builder = config::Config::builder()
            .add_source(config::File::from(directory.join("default.toml")).required(true));

        let named = sources.file.clone().or_else(|| {
            std::env::var("KAIROS_ENV")
                .ok()
                .map(|env| directory.join(format!("{env}.toml")))
        });
        if let Some(file) = named {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }

        let environment = match &sources.environment {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        for (key, value) in environment_overrides(&environment) {
            builder = if LIST_KEYS.contains(&key.as_str()) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(String::from)
                    .collect();
                builder.set_override(key, items)?
            } else {
                builder.set_override(key, value)?
            };
        }

        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key whose value is not acceptable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.http.host.parse::<std::net::IpAddr>().is_err() && self.http.host != "localhost" {
            return invalid("http.host", "must be an IP address or `localhost`");
        }
        match (&self.database.host, &self.kafka.bootstrap_servers) {
            (Some(_), None) => {
                return invalid(
                    "kafka.bootstrap_servers",
                    "must be set when `database.host` is: the distributed mode needs both \
                     PostgreSQL and Kafka (set neither for the standalone mode)",
                );
            }
            (None, Some(_)) => {
                return invalid(
                    "database.host",
                    "must be set when `kafka.bootstrap_servers` is: the distributed mode \
                     needs both PostgreSQL and Kafka (set neither for the standalone mode)",
                );
            }
            _ => {}
        }
        if self
            .database
            .host
            .as_deref()
            .is_some_and(|host| host.trim().is_empty())
        {
            return invalid("database.host", "must not be empty");
        }
        if self.backend() == Backend::Standalone {
            if self.standalone.data_dir.as_os_str().is_empty() {
                return invalid("standalone.data_dir", "must not be empty");
            }
            let all = [Role::Api, Role::Scanner, Role::Executor, Role::Writer];
            if !all.iter().all(|role| self.has_role(*role)) {
                return invalid(
                    "roles",
                    "must be all four in the standalone mode: deploying roles apart needs \
                     PostgreSQL and Kafka (`database.host` and `kafka.bootstrap_servers`)",
                );
            }
        }
        if self.http.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.http.header_timeout.is_zero() || self.http.body_timeout.is_zero() {
            return invalid(
                "http.body_timeout",
                "and `http.header_timeout` must be longer than zero",
            );
        }
        if self.http.max_body_memory < self.jobs.max_batch_body_bytes {
            return invalid(
                "http.max_body_memory",
                "must be at least `jobs.max_batch_body_bytes`, or no batch could be read",
            );
        }
        if self.http.port != 0 && self.http.port == self.http.probe_port {
            return invalid("http.probe_port", "must differ from `http.port`");
        }
        for entry in &self.runner.shell.env {
            check_env_entry(entry)?;
        }
        if self
            .runner
            .http
            .signing_secret
            .as_deref()
            .is_some_and(|secret| secret.len() < 16)
        {
            return invalid(
                "runner.http.signing_secret",
                "must be at least 16 bytes long when set",
            );
        }
        if self
            .runner
            .kafka
            .bootstrap_servers
            .as_deref()
            .is_some_and(|servers| servers.trim().is_empty())
        {
            return invalid(
                "runner.kafka.bootstrap_servers",
                "must name at least one broker (host:port) when set",
            );
        }
        if self.schedules.interval.is_zero() || self.schedules.lookahead <= self.schedules.interval
        {
            return invalid(
                "schedules.lookahead",
                "must be longer than `schedules.interval` (and that longer than zero), or fires would be made late",
            );
        }
        if self.schedules.batch_size < 1 || self.jobs.retention_batch < 1 {
            return invalid(
                "schedules.batch_size",
                "and `jobs.retention_batch` must be at least 1",
            );
        }
        if self.jobs.retention_interval.is_zero() {
            return invalid("jobs.retention_interval", "must be longer than zero");
        }
        if self.database.port == 0 {
            return invalid("database.port", "must be a port number between 1 and 65535");
        }
        if self.database.name.trim().is_empty() {
            return invalid("database.name", "must not be empty");
        }
        if self.database.pool_size == 0 {
            return invalid("database.pool_size", "must be at least 1");
        }
        if self.database.connect_timeout_ms == 0 {
            return invalid("database.connect_timeout_ms", "must be at least 1");
        }
        if self
            .kafka
            .bootstrap_servers
            .as_deref()
            .is_some_and(|servers| servers.trim().is_empty())
        {
            return invalid(
                "kafka.bootstrap_servers",
                "must name at least one broker (host:port)",
            );
        }
        if self.kafka.partitions < 1 {
            return invalid("kafka.partitions", "must be at least 1");
        }
        if self.kafka.replication_factor < 1 {
            return invalid("kafka.replication_factor", "must be at least 1");
        }
        if self.kafka.request_timeout_ms == 0 {
            return invalid("kafka.request_timeout_ms", "must be at least 1");
        }
        if self.kafka.linger_ms > MAX_LINGER_MS {
            return invalid(
                "kafka.linger_ms",
                &format!("must be at most {MAX_LINGER_MS}"),
            );
        }
        check_topic_name("kafka.topic.jobs", &self.kafka.topic.jobs)?;
        check_topic_name("kafka.topic.updatedJobs", &self.kafka.topic.updated_jobs)?;
        if self.kafka.topic.jobs == self.kafka.topic.updated_jobs {
            return invalid(
                "kafka.topic.updatedJobs",
                "must differ from `kafka.topic.jobs`",
            );
        }
        if self.roles.is_empty() {
            return invalid(
                "roles",
                "must name at least one of api, scanner, executor, writer",
            );
        }
        if self.recovery.grace.is_zero() || self.recovery.interval.is_zero() {
            return invalid(
                "recovery.grace",
                "and `recovery.interval` must be longer than zero",
            );
        }
        if self.recovery.heartbeat.is_zero() || self.recovery.silent_after() >= self.recovery.grace
        {
            return invalid(
                "recovery.heartbeat",
                "must be longer than zero and under a quarter of `recovery.grace`",
            );
        }
        if self.recovery.max_lost_attempts < 0 {
            return invalid("recovery.max_lost_attempts", "must not be negative");
        }
        if self.scanner.interval.is_zero() {
            return invalid("scanner.interval", "must be longer than zero");
        }
        if self.scanner.batch_size < 1 {
            return invalid("scanner.batch_size", "must be at least 1");
        }
        if self.executor.group_id.trim().is_empty() {
            return invalid("executor.group_id", "must not be empty");
        }
        if self.executor.max_concurrent_runs == 0 {
            return invalid("executor.max_concurrent_runs", "must be at least 1");
        }
        if self.executor.max_due_executors == 0 {
            return invalid("executor.max_due_executors", "must be at least 1");
        }
        if self.executor.retry_backoff_max < self.executor.retry_backoff_base {
            return invalid(
                "executor.retry_backoff_max",
                "must not be shorter than `executor.retry_backoff_base`",
            );
        }
        if self.result_writer.group_id.trim().is_empty() {
            return invalid("result_writer.group_id", "must not be empty");
        }
        if self.result_writer.batch_size == 0 {
            return invalid("result_writer.batch_size", "must be at least 1");
        }
        if self.result_writer.batch_bytes == 0 {
            return invalid("result_writer.batch_bytes", "must be at least 1");
        }
        if self.jobs.max_timeout_secs < 1 {
            return invalid("jobs.max_timeout_secs", "must be at least 1");
        }
        if !(1..=self.jobs.max_timeout_secs).contains(&self.jobs.default_timeout_secs) {
            return invalid(
                "jobs.default_timeout_secs",
                "must be between 1 and `jobs.max_timeout_secs`",
            );
        }
        if self.auth.tokens.iter().any(|token| token.trim().is_empty()) {
            return invalid("auth.tokens", "must not contain an empty token");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                "is not a valid filter (for example `info` or `kairos=debug`)",
            );
        }
        Ok(())
    }
}

/// Kafka's rule for topic names: 1 to 249 characters of `[a-zA-Z0-9._-]`. The limit leaves
/// room for the `.dlt` suffix of the dead-letter topic.
fn check_topic_name(key: &'static str, name: &str) -> Result<(), ConfigError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 245 || !valid_chars || name == "." || name == ".." {
        return Err(ConfigError::Invalid {
            key,
            problem: format!(
                "`{name}` is not a valid Kafka topic name (1 to 245 characters of letters, digits, `.`, `_` and `-`)"
            ),
        });
    }
    Ok(())
}

/// The variables every job gets from Kairos itself, which `runner.shell.env` may not set.
pub const JOB_VARIABLES: [&str; 3] = ["KAIROS_JOB_ID", "KAIROS_ATTEMPT", "KAIROS_SCHEDULED_AT"];

/// Checks an entry of `runner.shell.env`: `NAME` or `NAME=value`, a name of letters, digits
/// and `_` not starting with a digit, and not one of [`JOB_VARIABLES`].
fn check_env_entry(entry: &str) -> Result<(), ConfigError> {
    let name = entry.split_once('=').map_or(entry, |(name, _)| name);
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let problem = if !valid {
        format!(
            "entry `{entry}` is not `NAME` or `NAME=value` with a name of letters, digits and `_`"
        )
    } else if JOB_VARIABLES.contains(&name) {
        format!("entry `{entry}` sets `{name}`, which Kairos gives every job itself")
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid {
        key: "runner.shell.env",
        problem,
    })
}

/// Turns `KAIROS__SECTION__KEY=value` variables into `(section.key, value)` overrides.
fn environment_overrides(vars: &[(String, String)]) -> Vec<(String, String)> {
    vars.iter()
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
            Some((key, value.clone()))
        })
        .collect()
}

/// The folder of the crate's own `config/`, for tools and tests run from anywhere.
pub fn crate_config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

#[cfg(test)]
mod tests;
