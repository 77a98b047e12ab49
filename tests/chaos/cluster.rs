//! Several Kairos processes with one database and one set of topics, and the run log their
//! jobs write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use serde_json::json;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::instance::{Instance, free_port, wait_ready};
use crate::outcome::{Outcome, slowest_attempts};

/// Chaos scenarios change the shared broker and database: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a cluster may take to finish every job after the last fault.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(240);

/// How long [`Cluster::wait_for_metric`] waits.
const METRIC_LIMIT: Duration = Duration::from_secs(30);

/// The processes of one scenario and what they share.
pub struct Cluster {
    pub name: String,
    pub instances: Vec<Instance>,
    pub run_log: PathBuf,
    database: String,
    env: Vec<(String, String)>,
    logs: PathBuf,
    http: reqwest::Client,
    started: usize,
    /// The roles of the process on each port, which a restart keeps.
    roles: HashMap<u16, String>,
    /// The kills and restarts so far, with their times.
    timeline: Vec<String>,
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn admin_client() -> tokio_postgres::Client {
    connect("postgres").await
}

async fn connect(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(5432)
        .user("kairos")
        .password("kairos")
        .dbname(database)
        .connect(NoTls)
        .await
        .expect("PostgreSQL is up (scripts/services up)");
    actix_web::rt::spawn(connection);
    client
}

impl Cluster {
    /// Starts `size` instances with every role, a fresh database and fresh topics.
    pub async fn start(name: &str, size: usize) -> Cluster {
        Self::start_with_roles(name, &vec!["api,scanner,executor,writer"; size]).await
    }

    /// Starts one instance per entry of `roles` (each a `--roles` list), with a fresh
    /// database and fresh topics. The first must have the `api` role.
    pub async fn start_with_roles(name: &str, roles: &[&str]) -> Cluster {
        Self::start_with(name, roles, &[]).await
    }

    /// [`Cluster::start_with_roles`], with `settings` (environment variables) over the
    /// scenarios' usual ones.
    pub async fn start_with(name: &str, roles: &[&str], settings: &[(&str, &str)]) -> Cluster {
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("kairos_test_{id}");
        admin_client()
            .await
            .batch_execute(&format!(r#"CREATE DATABASE "{database}""#))
            .await
            .expect("database");
        let logs = crate_dir().join("target").join("chaos").join(&id);
        std::fs::create_dir_all(&logs).expect("log folder");
        let run_log = logs.join("runs.log");
        let env: Vec<(String, String)> = [
            ("KAIROS_ENV".into(), "distributed".into()),
            ("KAIROS__DATABASE__NAME".into(), database.clone()),
            ("KAIROS__DATABASE__POOL_SIZE".into(), "8".into()),
            ("KAIROS__HTTP__PROBE_PORT".into(), "0".into()),
            (
                "KAIROS__KAFKA__TOPIC__JOBS".into(),
                format!("chaos-{id}-jobs"),
            ),
            (
                "KAIROS__KAFKA__TOPIC__UPDATEDJOBS".into(),
                format!("chaos-{id}-updated"),
            ),
            (
                "KAIROS__EXECUTOR__GROUP_ID".into(),
                format!("chaos-{id}-executors"),
            ),
            (
                "KAIROS__RESULT_WRITER__GROUP_ID".into(),
                format!("chaos-{id}-writers"),
            ),
            (
                "KAIROS__EXECUTOR__RETRY_BACKOFF_BASE".into(),
                "100ms".into(),
            ),
            ("KAIROS__EXECUTOR__RETRY_BACKOFF_MAX".into(), "1s".into()),
            ("KAIROS__SHUTDOWN__GRACE".into(), "20s".into()),
            ("RUST_LOG".into(), "warn,kairos=info".into()),
        ]
        .into_iter()
        .chain(
            settings
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        )
        .collect();
        let mut cluster = Cluster {
            name: name.to_owned(),
            instances: Vec::new(),
            run_log,
            database,
            env,
            logs,
            http: reqwest::Client::new(),
            started: 0,
            roles: HashMap::new(),
            timeline: Vec::new(),
        };
        for roles in roles {
            let instance = cluster.spawn_with_roles(free_port(), roles).await;
            cluster.instances.push(instance);
        }
        cluster
    }

    /// Starts one process with `roles` on `port` and waits until it reports ready.
    pub async fn spawn_with_roles(&mut self, port: u16, roles: &str) -> Instance {
        self.started += 1;
        self.roles.insert(port, roles.to_owned());
        let stderr = std::fs::File::create(
            self.logs
                .join(format!("instance-{}-{port}.log", self.started)),
        )
        .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kairos"))
            .arg("--config-dir")
            .arg(crate_dir().join("config"))
            .arg("serve")
            .envs(self.env.iter().cloned())
            .env("KAIROS__HTTP__PORT", port.to_string())
            .env("KAIROS_ROLES", roles)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("kairos starts");
        let instance = Instance::new(port, child);
        wait_ready(&self.http, port, &self.logs).await;
        instance
    }

    /// `GET /api/v1/admin/actors` of instance `index`.
    pub async fn actors(&self, index: usize) -> serde_json::Value {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/admin/actors",
            self.instances[index].port
        );
        self.http
            .get(url)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until the sample `name` of instance `index`'s `/metrics` satisfies `condition`,
    /// within [`METRIC_LIMIT`].
    pub async fn wait_for_metric(&self, index: usize, name: &str, condition: impl Fn(f64) -> bool) {
        let url = format!("http://127.0.0.1:{}/metrics", self.instances[index].port);
        let deadline = Instant::now() + METRIC_LIMIT;
        loop {
            let text = match self.http.get(&url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let value = text.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            });
            if value.is_some_and(&condition) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: instance {index} never showed the expected {name} (last: {value:?})",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A connection to the cluster's database.
    pub async fn database(&self) -> tokio_postgres::Client {
        connect(&self.database).await
    }

    /// The lines of the run log: one `<job id> <attempt>` per run.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.run_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Kills instance `index` with SIGKILL and starts a new process with its roles on its port.
    pub async fn kill_and_restart(&mut self, index: usize) {
        let port = self.instances[index].port;
        let at = || chrono::Utc::now().format("%H:%M:%S%.3f");
        let killed = self.instances[index].pid();
        self.instances[index].kill_hard();
        self.timeline
            .push(format!("{} killed kairos-{killed} (port {port})", at()));
        let roles = self.roles[&port].clone();
        let replacement = self.spawn_with_roles(port, &roles).await;
        self.timeline.push(format!(
            "{} kairos-{} ready on port {port}",
            at(),
            replacement.pid()
        ));
        self.instances[index] = replacement;
    }

    /// Creates `count` jobs through instance 0, due `lead` from now and spread over `spread`,
    /// each appending `<job id> <attempt>` to the run log after `work` (a shell snippet).
    pub async fn create_jobs(&self, count: usize, lead: Duration, spread: Duration, work: &str) {
        let start = chrono::Utc::now() + chrono::Duration::from_std(lead).expect("duration");
        let step = spread.as_secs_f64() / count.max(1) as f64;
        let command = format!(
            "{work}echo \"$KAIROS_JOB_ID $KAIROS_ATTEMPT\" >> {}",
            self.run_log.display()
        );
        let url = format!("http://127.0.0.1:{}/api/v1/jobs", self.instances[0].port);
        let created = stream::iter(0..count)
            .map(|n| {
                let due = start + chrono::Duration::milliseconds((n as f64 * step * 1000.0) as i64);
                let body =
                    json!({"command": command, "execute_at": due.to_rfc3339(), "timeout_secs": 60});
                let request = self.http.post(&url).json(&body).send();
                async move { request.await.is_ok_and(|response| response.status() == 201) }
            })
            .buffer_unordered(16)
            .filter(|created| std::future::ready(*created))
            .count()
            .await;
        assert_eq!(created, count, "not every job was created");
    }

    /// Waits until all `count` jobs are final (ended or cancelled), within [`SETTLE_LIMIT`].
    pub async fn settle(&self, count: usize) {
        let client = connect(&self.database).await;
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let finished: i64 = client
                .query_one(
                    "SELECT count(*) FROM jobs WHERE status IN ('SUCCESS', 'FAILED', 'CANCELLED')",
                    &[],
                )
                .await
                .map(|row| row.get(0))
                .unwrap_or(0);
            if finished == i64::try_from(count).expect("count") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: only {finished} of {count} jobs final after {SETTLE_LIMIT:?}; logs in {}",
                self.name,
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The lateness of the jobs due after `instant`, sorted.
    pub async fn lateness_of_jobs_due_after(
        &self,
        instant: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Duration> {
        let client = connect(&self.database).await;
        let mut lateness: Vec<Duration> = client
            .query(
                "SELECT EXTRACT(EPOCH FROM h.started_at - h.scheduled_at)::float8 \
                 FROM job_history h JOIN jobs ON jobs.id = h.job_id \
                 WHERE h.status = 'SUCCEEDED' AND jobs.execute_at > $1",
                &[&instant],
            )
            .await
            .expect("lateness query")
            .iter()
            .map(|row| Duration::from_secs_f64(row.get::<_, f64>(0).max(0.0)))
            .collect();
        lateness.sort_unstable();
        lateness
    }

    /// Counts what happened: from the database and from the run log.
    pub async fn outcome(&self, jobs: usize) -> Outcome {
        let client = connect(&self.database).await;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'SUCCESS'), \
                     (SELECT count(*) FROM job_history WHERE status = 'LOST'), \
                     COALESCE((SELECT EXTRACT(EPOCH FROM max(finished_at - execute_at))::float8 \
                          FROM jobs WHERE epoch > 1), 0) \
                 FROM jobs",
                &[],
            )
            .await
            .expect("outcome query");
        let succeeded: i64 = row.get(0);
        let lost_attempts: i64 = row.get(1);
        let mut lateness: Vec<Duration> = client
            .query(
                "SELECT EXTRACT(EPOCH FROM started_at - scheduled_at)::float8 \
                 FROM job_history WHERE status = 'SUCCEEDED'",
                &[],
            )
            .await
            .expect("lateness query")
            .iter()
            .map(|row| Duration::from_secs_f64(row.get::<_, f64>(0).max(0.0)))
            .collect();
        lateness.sort_unstable();
        let log = std::fs::read_to_string(&self.run_log).unwrap_or_default();
        let mut runs: HashMap<(String, String), usize> = HashMap::new();
        let mut per_job: HashMap<String, usize> = HashMap::new();
        for line in log.lines() {
            let mut parts = line.split_whitespace();
            let (Some(job), Some(attempt)) = (parts.next(), parts.next()) else {
                continue;
            };
            *runs
                .entry((job.to_owned(), attempt.to_owned()))
                .or_default() += 1;
            *per_job.entry(job.to_owned()).or_default() += 1;
        }
        Outcome {
            jobs,
            lost: jobs - usize::try_from(succeeded).expect("count"),
            duplicate_runs: per_job.values().map(|runs| runs - 1).sum(),
            same_attempt_runs: runs.values().map(|runs| runs - 1).sum(),
            jobs_run: per_job.len(),
            lost_attempts: usize::try_from(lost_attempts).expect("count"),
            lateness,
            recovery: Duration::from_secs_f64(row.get::<_, f64>(2).max(0.0)),
            slowest: slowest_attempts(&client).await,
            timeline: self.timeline.clone(),
        }
    }
}

/// Runs `scripts/services <command>` (a broker or database restart).
pub fn services(command: &str) {
    let status = Command::new(crate_dir().join("scripts").join("services"))
        .arg(command)
        .status()
        .expect("scripts/services runs");
    assert!(status.success(), "scripts/services {command} failed");
}
