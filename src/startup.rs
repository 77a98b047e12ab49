//! Builds the whole application from a configuration: the pool, the schema, the topics, the
//! actors and the HTTP server. Tests start exactly this, on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Supervisor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::actors::Runtime;
use crate::actors::dispatcher::{CountExecutors, DispatcherActor, Shutdown as DispatcherShutdown};
use crate::actors::result_writer::{Drain, ResultWriterActor};
use crate::actors::scanner::{ScannerActor, Shutdown as ScannerShutdown};
use crate::api::{self, AppState};
use crate::bus::kafka::{self as kafka, BusError, Publisher};
use crate::config::{Role, Settings};
use crate::metrics::Metrics;
use crate::store::run_ledger::RunLedger;
use crate::store::{self, StoreError};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("PostgreSQL at {address}: {source}")]
    Store { address: String, source: StoreError },
    #[error("Kafka at {address}: {source}")]
    Bus { address: String, source: BusError },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// A built application: actors running, HTTP listener bound, serving once
/// [`Application::run_until_stopped`] is awaited.
#[allow(
    missing_debug_implementations,
    reason = "actix-web's Server has no Debug"
)]
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Connects to PostgreSQL and applies the migrations, creates the Kafka topics that are
    /// missing, starts the supervised actors and binds the HTTP listener. Must run inside an
    /// actix system.
    ///
    /// # Errors
    /// [`StartupError`] naming the dependency that failed and where it was looked for.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let pg_address = format!(
            "{}:{}/{}",
            settings.database.host, settings.database.port, settings.database.name
        );
        let store_error = |source| StartupError::Store {
            address: pg_address.clone(),
            source,
        };
        let pool = store::connect(&settings.database).map_err(store_error)?;
        store::migrate(&pool).await.map_err(store_error)?;

        let bus_error = |source| StartupError::Bus {
            address: settings.kafka.bootstrap_servers.clone(),
            source,
        };
        kafka::ensure_topics(&settings.kafka, &kafka::topic_names(&settings.kafka.topic))
            .await
            .map_err(bus_error)?;
        let producer = kafka::producer(&settings.kafka).map_err(bus_error)?;
        let publisher = Publisher::new(
            producer,
            settings.kafka.topic.clone(),
            settings.kafka.request_timeout(),
        );

        let instance = format!(
            "kairos-{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let heartbeat_settings = crate::config::DatabaseSettings {
            pool_size: 1,
            ..settings.database.clone()
        };
        let heartbeat_pool = store::connect(&heartbeat_settings).map_err(store_error)?;
        let runtime = Runtime {
            heartbeat_pool,
            ledger: RunLedger::start(pool.clone(), instance.clone()),
            instance: instance.into(),
            pool,
            publisher,
            metrics: Arc::new(Metrics::new()),
            run_slots: Arc::new(Semaphore::new(settings.executor.max_concurrent_runs)),
            settings: Arc::clone(&settings),
        };
        // Build the consumers before starting anything, so that a bad configuration fails
        // start-up rather than a restart loop.
        let dispatcher = match settings.has_role(Role::Executor) {
            true => Some(DispatcherActor::new(runtime.clone()).map_err(bus_error)?),
            false => None,
        };
        let result_writer = match settings.has_role(Role::Writer) {
            true => Some(ResultWriterActor::new(runtime.clone()).map_err(bus_error)?),
            false => None,
        };
        let scanner = settings.has_role(Role::Scanner).then(|| {
            let runtime = runtime.clone();
            Supervisor::start(move |_| ScannerActor::new(runtime))
        });
        let state = AppState {
            scanner,
            dispatcher: dispatcher.map(|actor| Supervisor::start(move |_| actor)),
            result_writer: result_writer.map(|actor| Supervisor::start(move |_| actor)),
            runtime,
        };

        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listen_error = |source| StartupError::Listen {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let with_jobs = settings.has_role(Role::Api);
        let server = {
            let state = state.clone();
            HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(state.clone()))
                    .app_data(api::query_config())
                    .app_data(api::json_config())
                    .configure(|config| api::routes(config, with_jobs))
            })
            // Kairos orders its own shutdown (see `shutdown`); the server stops on request.
            .shutdown_timeout(5)
            .listen(listener)
            .map_err(listen_error)?
            .run()
        };
        Ok(Self {
            port,
            server,
            state,
        })
    }

    /// The port the API listens on (the one chosen by the system when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere (the tests do).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM (or [`ServerHandle::stop`]), then shuts down in two
    /// phases (see [`Application::shutdown`]) and returns.
    ///
    /// # Errors
    /// An I/O error of the HTTP server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        shutdown(&self.state).await;
        result
    }
}

/// How often shutdown looks whether the executors are done.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Stops taking work, lets what runs finish within `shutdown.grace`, hands waiting jobs to
/// other instances, writes what was read, and commits offsets:
///
/// 1. the scanner stops claiming;
/// 2. the dispatcher commits its offsets and leaves the consumer group (its partitions move to
///    the other instances), then releases its executors: a job still waiting is dispatched
///    again, under a new epoch, to the others; a running one finishes and reports;
/// 3. once no executor is left (or the grace is over), the result writer writes what it read
///    and commits.
///
/// An attempt still running when the grace is over is abandoned (its process group is killed
/// when the process exits) and recovered by its lease as a lost attempt.
async fn shutdown(state: &AppState) {
    tracing::info!("shutting down: no new work is taken");
    if let Some(scanner) = &state.scanner {
        let _ = scanner.send(ScannerShutdown).await;
    }
    if let Some(dispatcher) = &state.dispatcher {
        let _ = dispatcher.send(DispatcherShutdown).await;
        let deadline = Instant::now() + state.runtime.settings.shutdown.grace;
        loop {
            let live = dispatcher.send(CountExecutors).await.unwrap_or(0);
            if live == 0 {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(live, "shutdown grace over; abandoning running attempts");
                break;
            }
            tokio::time::sleep(SHUTDOWN_POLL).await;
        }
    }
    if let Some(result_writer) = &state.result_writer {
        let _ = result_writer.send(Drain).await;
    }
    if let Err(error) =
        store::dispatch::forget_instance(&state.runtime.pool, &state.runtime.instance).await
    {
        tracing::warn!(%error, "cannot remove this instance's heartbeat");
    }
    tracing::info!("shutdown complete");
}
