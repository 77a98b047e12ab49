//! The sections of the configuration, one type each, with their documentation; the keys and
//! their defaults are in `config/default.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::kafka_security::{JOBS_CLUSTER, SaslMechanism, Security, SecurityProtocol};
use super::secrets::read_secret;
use super::shell::ShellSettings;

/// What a process does. Several processes with different roles share one PostgreSQL and one
/// Kafka cluster, as the seed's decoupled services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The jobs API.
    Api,
    /// The `ScannerActor`: claims due jobs and recovers lost ones.
    Scanner,
    /// The `DispatcherActor` and its `ExecutorActor`s.
    Executor,
    /// The `ResultWriterActor`.
    Writer,
}

impl Role {
    /// Parses a comma-separated list such as `scanner,executor`.
    ///
    /// # Errors
    /// A message naming the unknown role.
    pub fn parse_list(text: &str) -> Result<Vec<Role>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|role| !role.is_empty())
            .map(|role| match role {
                "api" => Ok(Role::Api),
                "scanner" => Ok(Role::Scanner),
                "executor" => Ok(Role::Executor),
                "writer" => Ok(Role::Writer),
                other => Err(format!(
                    "unknown role `{other}`; roles are api, scanner, executor, writer"
                )),
            })
            .collect()
    }
}

/// Finding jobs that a crash lost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySettings {
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    pub max_lost_attempts: i32,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How often an executor process records that it is alive (and takes its liveness lock
    /// again if its connection dropped).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

impl RecoverySettings {
    /// How long an instance whose liveness lock is gone may go without a beat before it is
    /// taken for dead: four beats, time to reconnect and lock again after a dropped
    /// connection.
    pub fn silent_after(&self) -> Duration {
        self.heartbeat.saturating_mul(4)
    }
}

/// Stopping on SIGTERM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

/// Where the HTTP API listens, and what a client may hold of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 asks the operating system for a free port (the tests do).
    pub port: u16,
    /// A second listener serving only `/healthz`, `/readyz` and `/metrics`, with
    /// connections of its own: probes keep answering while clients hold every connection of
    /// the API's listener. 0 asks for a free port.
    pub probe_port: u16,
    /// Connections the API's listener holds at once, at most (lowered at start-up to what
    /// the process's file limit leaves room for).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Bytes of request bodies held in memory at once, over all requests.
    pub max_body_memory: usize,
    /// The dashboard at `/ui`, on processes with the `api` role.
    pub ui: bool,
    /// A PEM certificate chain and its private key: both set, the API and the probes are
    /// served over TLS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// Which store and bus a process uses, decided by the configuration (see
/// [`Settings::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file under `standalone.data_dir` and an in-process bus: one
    /// process, no servers.
    Standalone,
    /// PostgreSQL (`database`) and Kafka (`kafka`), shared by any number of processes.
    Distributed,
}

impl Backend {
    /// The name used in logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Standalone => "standalone",
            Backend::Distributed => "distributed",
        }
    }
}

/// The standalone mode's storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandaloneSettings {
    /// Holds `kairos.db` (and SQLite's write-ahead log next to it).
    pub data_dir: PathBuf,
}

/// How Kairos logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The scanner that claims due jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSettings {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub batch_size: i64,
}

impl ScannerSettings {
    /// How far ahead a scan claims: the current window and the next one.
    pub fn horizon(&self) -> Duration {
        self.interval.saturating_mul(2)
    }
}

/// The executors that run jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    pub group_id: String,
    pub max_concurrent_runs: usize,
    /// Executors of due jobs (claiming, running or reporting) kept at once; further due
    /// dispatches wait in the dispatcher's queue, in order.
    pub max_due_executors: usize,
    pub max_output_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// How long before an attempt's time its run is claimed in the store, so that the claim's
    /// round trip is not paid at the start.
    #[serde(with = "humantime_serde")]
    pub claim_ahead: Duration,
    /// How long an attempt runs before its `RUNNING` report goes out; one that ends sooner
    /// reports only its result.
    #[serde(with = "humantime_serde")]
    pub running_report_after: Duration,
    /// How long a cancelled command has between SIGTERM and SIGKILL.
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
}

/// The result writer that records reports in PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultWriterSettings {
    pub group_id: String,
    pub batch_size: usize,
    /// A batch is written once its records reach this size, whatever their number.
    pub batch_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

/// Limits and defaults of the jobs people create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub default_timeout_secs: i32,
    pub max_timeout_secs: i32,
    pub max_body_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_batch_size: usize,
    pub max_batch_body_bytes: usize,
    /// How long an `Idempotency-Key` names the job it created.
    #[serde(with = "humantime_serde")]
    pub idempotency_retention: Duration,
    /// Finished jobs older than this are deleted (zero: never).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the retention pass runs, and how many jobs it deletes at most each time.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    pub retention_batch: i64,
}

/// How schedules' fires are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// How often each scanner makes the fires due soon.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How far ahead of their time fires are made.
    #[serde(with = "humantime_serde")]
    pub lookahead: Duration,
    /// Schedules per fire statement.
    pub batch_size: i64,
}

/// What the job runners may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    pub shell: ShellSettings,
    pub http: HttpRunnerSettings,
    pub kafka: KafkaRunnerSettings,
}

/// Where and how `http` jobs call.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRunnerSettings {
    /// Hosts jobs may call (`host` or `host:port`); empty: any.
    pub allowed_hosts: Vec<String>,
    /// Signs every request (`Kairos-Signature`) when set.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// Bytes of a response body kept per attempt.
    pub max_response_bytes: usize,
    /// Calls under way at once in a process; further due `http` jobs wait for one to end.
    pub max_concurrent_calls: usize,
}

// Written by hand so that the signing secret never reaches a log.
impl std::fmt::Debug for HttpRunnerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRunnerSettings")
            .field("allowed_hosts", &self.allowed_hosts)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .finish()
    }
}

/// The Kafka cluster `kafka` jobs publish to, and how it is reached when it is not Kairos's
/// own (whose `[kafka]` security keys apply otherwise).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaRunnerSettings {
    /// Unset: Kairos's own cluster (`kafka.bootstrap_servers`) in the distributed mode; in
    /// the standalone mode `kafka` jobs are refused.
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
    /// Any other librdkafka setting of the jobs' producer (the ones Kairos owns are refused).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// How long a publish may wait for the broker's acknowledgement.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Topics `kafka` jobs may publish to: names, or prefixes ending in `*`; empty: any but
    /// Kairos's own.
    #[serde(default)]
    pub allowed_topics: Vec<String>,
}

// Written by hand so that the SASL password, and the values of pass-through properties (which
// may be keys or passwords), never reach a log.
impl std::fmt::Debug for KafkaRunnerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRunnerSettings")
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
            .field("delivery_timeout", &self.delivery_timeout)
            .field("allowed_topics", &self.allowed_topics)
            .finish()
    }
}

impl KafkaRunnerSettings {
    /// How the jobs' producer reaches a cluster of its own: these security keys, read together.
    pub fn security(&self) -> Security<'_> {
        Security {
            keys: &JOBS_CLUSTER,
            protocol: self.security_protocol,
            mechanism: self.sasl_mechanism,
            username: self.sasl_username.as_deref(),
            password: self.sasl_password.as_deref(),
            ca: self.ssl_ca_location.as_deref(),
            properties: &self.properties,
        }
    }

    /// Reads `sasl_password_file`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the file cannot be read.
    pub(super) fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = &self.sasl_password_file {
            self.sasl_password = Some(read_secret(JOBS_CLUSTER.password_file, file)?);
        }
        Ok(())
    }
}

/// Administration switches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub fault_injection: bool,
}
