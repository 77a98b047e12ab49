//! `spawn_app()` and the helpers every test shares.

pub mod kafka;
mod requests;
pub mod schedules;
pub mod servers;
mod services;

pub use services::{Record, create_database, drop_database, read_until, tls_file};

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use deadpool_postgres::Pool;
use kairos::bus::{Bus, Publisher};
use kairos::config::{Backend, Settings, Sources, crate_config_dir};
use kairos::startup::Application;
use kairos::store;
use serde_json::Value;
use uuid::Uuid;

/// How long a test waits for something to happen before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// A running application with a store and topics of its own.
pub struct TestApp {
    pub address: String,
    /// The process's instance name (the `runner` of the jobs it holds).
    pub instance: String,
    pub settings: Settings,
    /// A pool on the test's database (distributed mode only; see [`TestApp::pool`]).
    pool: Option<Pool>,
    /// The application's own bus, Kafka or in-process.
    pub bus: Arc<dyn Bus>,
    /// Publishes Kairos's records on [`TestApp::bus`].
    pub publisher: Publisher,
    pub client: reqwest::Client,
    handle: ServerHandle,
    /// The application's run, which ends once it has shut down.
    running: Option<tokio::task::JoinHandle<Result<(), kairos::startup::RunError>>>,
    /// Whether its store outlives it (it is restarted).
    keep_data: bool,
    /// Whether it made its PostgreSQL database (a peer shares another's).
    owns_database: bool,
}

impl Drop for TestApp {
    /// Stops the server, and removes the store it made unless the test failed (its store is
    /// left to be looked at; `scripts/services up` drops the databases left).
    fn drop(&mut self) {
        // Stop the server without waiting; the test's runtime is ending anyway.
        drop(self.handle.stop(false));
        if self.keep_data || std::thread::panicking() {
            return;
        }
        match self.settings.backend() {
            Backend::Standalone => {
                let _ = std::fs::remove_dir_all(&self.settings.standalone.data_dir);
            }
            Backend::Distributed if self.owns_database => {
                services::drop_database_now(&self.settings.database);
            }
            Backend::Distributed => {}
        }
    }
}

/// The configuration a test runs with in the distributed mode: the defaults with
/// `config/distributed.toml` (and any `KAIROS__…` variables of the environment), on a free
/// port, with a fresh database name and fresh topic names.
pub fn test_settings() -> Settings {
    settings_for(Backend::Distributed)
}

/// The test configuration for `backend`; a standalone one has a fresh data directory.
pub fn settings_for(backend: Backend) -> Settings {
    let file = match backend {
        Backend::Distributed => Some(crate_config_dir().join("distributed.toml")),
        Backend::Standalone => None,
    };
    let mut settings = Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file,
        ..Sources::default()
    })
    .expect("the test configuration is valid");
    assert_eq!(settings.backend(), backend, "the test configuration's mode");
    let id = Uuid::new_v4().simple().to_string();
    settings.http.port = 0;
    settings.http.probe_port = 0;
    settings.standalone.data_dir = std::env::temp_dir().join(format!("kairos-test-{id}"));
    settings.database.name = format!("kairos_test_{id}");
    settings.database.pool_size = 4;
    settings.kafka.topic.jobs = format!("test-{id}-jobs");
    settings.kafka.topic.updated_jobs = format!("test-{id}-updated-jobs");
    settings.executor.group_id = format!("test-{id}-executors");
    settings.result_writer.group_id = format!("test-{id}-writers");
    // Quick retries keep the retry tests short; the policy itself is unit-tested.
    settings.executor.retry_backoff_base = Duration::from_millis(50);
    settings.executor.retry_backoff_max = Duration::from_millis(200);
    settings.admin.fault_injection = true;
    // Lost jobs are looked for often, and a lease runs out soon, so recovery shows quickly.
    settings.recovery.interval = Duration::from_millis(200);
    settings.recovery.grace = Duration::from_secs(3);
    settings
}

/// Starts the application with [`test_settings`] and an empty database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

/// Starts the application with `settings`, first creating its database.
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let owns_database = settings.backend() == Backend::Distributed;
    if owns_database {
        create_database(&settings.database).await;
    }
    start_app(settings, owns_database).await
}

/// Starts a second process of `app`'s distributed deployment: the same database, topics and
/// consumer groups.
pub async fn spawn_peer(app: &TestApp) -> TestApp {
    assert_eq!(
        app.settings.backend(),
        Backend::Distributed,
        "a peer shares Kafka"
    );
    start_app(app.settings.clone(), false).await
}

/// Starts the application with `settings` on its existing database (which it drops when it
/// ends if it `owns_database`), and waits for its consumers.
async fn start_app(settings: Settings, owns_database: bool) -> TestApp {
    // `TEST_LOG=1 cargo test` shows the application's logs.
    if std::env::var_os("TEST_LOG").is_some() {
        kairos::telemetry::init(&settings.log);
    }
    let pool = match settings.backend() {
        Backend::Distributed => Some(
            store::postgres::connect(&settings.database).expect("a pool for the test database"),
        ),
        Backend::Standalone => None,
    };
    let application = Application::build(settings.clone())
        .await
        .expect("the application starts");
    let (scheme, client) = match settings.http.tls_cert {
        Some(_) => ("https", services::trusting_client()),
        None => ("http", reqwest::Client::new()),
    };
    let address = format!("{scheme}://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let instance = application.instance();
    let bus = application.bus();
    let publisher = Publisher::new(Arc::clone(&bus), settings.kafka.topic.clone());
    let running = actix_web::rt::spawn(application.run_until_stopped());
    let app = TestApp {
        address,
        instance,
        settings,
        pool,
        bus,
        publisher,
        client,
        handle,
        running: Some(running),
        keep_data: false,
        owns_database,
    };
    app.wait_for_consumers().await;
    app
}

impl TestApp {
    /// Stops the application as SIGTERM does and waits (bounded) until its shutdown is over.
    /// Returns a future, so that a test can act while the shutdown runs.
    pub fn stop(&mut self) -> impl std::future::Future<Output = ()> + use<> {
        let handle = self.handle.clone();
        let running = self.running.take().expect("the application runs");
        async move {
            handle.stop(true).await;
            let stopped = tokio::time::timeout(WAIT_LIMIT * 2, running).await;
            let result = stopped.expect("the shutdown ends in time");
            result
                .expect("the run did not panic")
                .expect("the run ends cleanly");
        }
    }

    /// Stops the application as SIGTERM does, and starts it again at `at` on the same store
    /// and topics: the whole deployment is down until then. Distributed mode only: the
    /// stopped application's actors still hold a standalone data directory.
    pub async fn restart_at(self, at: chrono::DateTime<chrono::Utc>) -> TestApp {
        self.restart(Some(at), |_| {}).await
    }

    /// Stops the application as SIGTERM does, and starts it again at once on the same store
    /// and topics with its settings changed by `change`, as an operator changing the
    /// configuration would. Distributed mode only, as [`TestApp::restart_at`].
    pub async fn restart_with(self, change: impl FnOnce(&mut Settings)) -> TestApp {
        self.restart(None, change).await
    }

    /// Stops the application, keeps it down until `at` (if given) and starts it again on its
    /// store with its settings changed by `change`.
    async fn restart(
        mut self,
        at: Option<chrono::DateTime<chrono::Utc>>,
        change: impl FnOnce(&mut Settings),
    ) -> TestApp {
        self.stop().await;
        self.keep_data = true;
        let mut settings = self.settings.clone();
        change(&mut settings);
        let owns_database = self.owns_database;
        drop(self);
        if let Some(down) = at.and_then(|at| (at - chrono::Utc::now()).to_std().ok()) {
            tokio::time::sleep(down).await;
        }
        start_app(settings, owns_database).await
    }
}

/// An RFC 3339 instant `seconds` from now.
pub fn in_secs(seconds: f64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds((seconds * 1000.0) as i64)).to_rfc3339()
}

/// The instant in a JSON string.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// Asserts that the first attempt of `job` (as `GET /api/v1/jobs/{id}` shows it) started at
/// its time: never early, and less than a second late.
pub fn assert_started_on_time(job: &Value) {
    let lateness = time(&job["attempts"][0]["started_at"]) - time(&job["job"]["execute_at"]);
    assert!(
        lateness >= chrono::Duration::zero(),
        "started {lateness} early"
    );
    assert!(
        lateness < chrono::Duration::seconds(1),
        "started {lateness} late"
    );
}

/// How often a waiting test looks again.
pub const POLL: Duration = Duration::from_millis(50);

/// Reads with `read` every [`POLL`] until `done` holds for what it read, and returns that,
/// within [`WAIT_LIMIT`]; otherwise panics naming `what` was awaited and the last reading.
pub async fn poll_until<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    loop {
        let reading = read().await;
        if done(&reading) {
            return reading;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not seen within {WAIT_LIMIT:?}; last read: {reading:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text, if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `kairos_reports_ignored_total` of `app` now.
pub async fn ignored_reports(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    metric(&text, "kairos_reports_ignored_total").unwrap_or(0.0)
}

/// The statuses of a job's attempts, in order, from its `GET /api/v1/jobs/{id}` body.
pub fn attempt_statuses(job: &Value) -> Vec<&str> {
    job["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|attempt| attempt["status"].as_str().expect("a status"))
        .collect()
}

/// Publishes `report` to the results topic, keyed by its job, and waits until the result
/// writer has ignored it.
pub async fn publish_ignored_report(app: &TestApp, report: &kairos::domain::AttemptReport) {
    let ignored_before = ignored_reports(app).await;
    let payload = serde_json::to_vec(report).expect("JSON");
    app.publish(
        &app.settings.kafka.topic.updated_jobs,
        &report.job_id.to_string(),
        &payload,
    )
    .await;
    app.wait_for_metrics("the report ignored", |text| {
        metric(text, "kairos_reports_ignored_total")
            .is_some_and(|ignored| ignored >= ignored_before + 1.0)
    })
    .await;
}
