//! Builds the whole application from a configuration: the store and its schema, the bus and
//! its topics, the actors and the HTTP server, in the mode the configuration asks for
//! (standalone or distributed). Tests start exactly this, on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Arbiter, Supervisor};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::actors::Runtime;
use crate::actors::dispatcher::{CountExecutors, DispatcherActor, Shutdown as DispatcherShutdown};
use crate::actors::result_writer::{Drain, ResultWriterActor};
use crate::actors::scanner::{ScannerActor, Shutdown as ScannerShutdown};
use crate::api::{self, AppState};
use crate::bus::in_process::InProcessBus;
use crate::bus::kafka::KafkaBus;
use crate::bus::{Bus, BusError, Publisher};
use crate::config::{Backend, Role, Settings};
use crate::metrics::Metrics;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{address}: {source}")]
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
    /// Opens the store (PostgreSQL, or SQLite under `standalone.data_dir`) and applies its
    /// migrations, connects the bus (Kafka, creating the topics that are missing, or the
    /// in-process bus), starts the supervised actors and binds the HTTP listener. Must run
    /// inside an actix system.
    ///
    /// # Errors
    /// [`StartupError`] naming the dependency that failed and where it was looked for.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let instance = format!(
            "kairos-{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let (store, bus) = open_backend(&settings, &instance).await?;
        let bus_error = |source| StartupError::Bus {
            address: bus.location(),
            source,
        };
        let runtime = Runtime {
            store,
            publisher: Publisher::new(Arc::clone(&bus), settings.kafka.topic.clone()),
            instance: instance.into(),
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
            // A thread of its own: on the one shared with the executors, a burst of jobs left
            // the writer a few hundred results a second until the burst was over.
            result_writer: result_writer.map(|actor| {
                Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| actor)
            }),
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

    /// The publisher on this application's bus (tests inject records through it).
    pub fn publisher(&self) -> Publisher {
        self.state.runtime.publisher.clone()
    }

    /// Where the jobs live (`PostgreSQL at …` or `SQLite at …`).
    pub fn store_location(&self) -> String {
        self.state.runtime.store.location()
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
    let grace = state.runtime.settings.recovery.grace;
    if let Err(error) = state.runtime.store.retire_instance(grace).await {
        tracing::warn!(%error, "cannot record that this instance stopped");
    }
    tracing::info!("shutdown complete");
}

/// The store and the bus of the configured mode, ready for use.
async fn open_backend(
    settings: &Settings,
    instance: &str,
) -> Result<(Arc<dyn Store>, Arc<dyn Bus>), StartupError> {
    let store = open_store(settings, instance).await?;
    let bus: Arc<dyn Bus> = match settings.backend() {
        Backend::Standalone => Arc::new(InProcessBus::new()),
        Backend::Distributed => {
            Arc::new(KafkaBus::connect(&settings.kafka).await.map_err(|source| {
                StartupError::Bus {
                    address: format!("Kafka at {}", settings.kafka.bootstrap_servers()),
                    source,
                }
            })?)
        }
    };
    Ok((store, bus))
}

/// The store of the configured mode, its migrations applied (`kairos migrate` stops here).
///
/// # Errors
/// [`StartupError::Store`] naming where the store was looked for.
pub async fn open_store(
    settings: &Settings,
    instance: &str,
) -> Result<Arc<dyn Store>, StartupError> {
    match settings.backend() {
        Backend::Standalone => {
            let data_dir = &settings.standalone.data_dir;
            let store = SqliteStore::open(data_dir, instance)
                .await
                .map_err(|source| StartupError::Store {
                    address: format!("SQLite in {}", data_dir.display()),
                    source,
                })?;
            Ok(Arc::new(store))
        }
        Backend::Distributed => {
            let store = PostgresStore::open(&settings.database, instance)
                .await
                .map_err(|source| StartupError::Store {
                    address: settings.database.location(),
                    source,
                })?;
            Ok(Arc::new(store))
        }
    }
}
