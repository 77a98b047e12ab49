//! The checks of a configuration that its types alone cannot make.

use super::*;

impl Settings {
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
        if self.database.ssl_root_cert.is_some() && self.database.ssl_mode != SslMode::VerifyFull {
            return invalid(
                "database.ssl_root_cert",
                "is read only with `database.ssl_mode = \"verify-full\"` (prefer and require \
                 encrypt without verifying the server)",
            );
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
        self.kafka.security().validate()?;
        let jobs_kafka = &self.runner.kafka;
        if jobs_kafka.bootstrap_servers.is_none() && jobs_kafka.security().is_set() {
            return invalid(
                "runner.kafka.bootstrap_servers",
                "must be set with the other keys of [runner.kafka]: without it, `kafka` jobs \
                 publish to Kairos's own cluster, reached with the keys of [kafka]",
            );
        }
        jobs_kafka.security().validate()?;
        for entry in &jobs_kafka.allowed_topics {
            check_topic_name(
                "runner.kafka.allowed_topics",
                entry.strip_suffix('*').unwrap_or(entry),
            )?;
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return invalid(
                "http.tls_cert",
                "and `http.tls_key` must be set together (a certificate chain and its key)",
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
        if self.runner.http.max_concurrent_calls == 0 {
            return invalid("runner.http.max_concurrent_calls", "must be at least 1");
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
        let credentials = self
            .auth
            .credentials()
            .map_err(|(key, problem)| ConfigError::Invalid { key, problem })?;
        let mut names: Vec<&str> = credentials.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return invalid("auth.tokens", "two tokens have the same `name`");
        }
        let loopback = self
            .http
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || self.http.host == "localhost";
        if credentials.is_empty() && !loopback && !self.auth.allow_anonymous {
            return invalid(
                "http.host",
                "is not a loopback address and `auth.tokens` is empty: anyone reaching the API \
                 could run commands. Add tokens (`kairos token new --name <who> --role <role>`), \
                 or set `auth.allow_anonymous = true` to serve it open",
            );
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
