//! Builds the whole application from a configuration: the store and its schema, the bus and
//! its topics, the actors and the HTTP server, in the mode the configuration asks for
//! (standalone or distributed). Tests start exactly this, on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Arbiter, Supervisor};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use uuid::Uuid;

use crate::actors::Services;
use crate::actors::dispatcher::{CountExecutors, DispatcherActor, StopDispatching};
use crate::actors::result_writer::{Drain, ResultWriterActor};
use crate::actors::scanner::{ScannerActor, StopClaiming};
use crate::api::{self, AppState, BodyBudget};
use crate::bus::in_process::InProcessBus;
use crate::bus::kafka::KafkaBus;
use crate::bus::{Bus, BusError, Publisher};
use crate::config::{Backend, Role, Settings};
use crate::metrics::Metrics;
use crate::runner::{RunSlots, Runners};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

mod heartbeat;
mod limits;
mod listeners;

use listeners::{LISTEN_BACKLOG, bound_port, http_tls, listen_error};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{address}: {source}")]
    Store { address: String, source: StoreError },
    #[error("{address}: {source}")]
    Bus { address: String, source: BusError },
    #[error("{0}")]
    Runner(#[from] crate::runner::RunnerError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("http.tls_cert / http.tls_key: {0}")]
    Tls(String),
}

/// Why a run did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the HTTP server failed: {0}")]
    Server(#[from] std::io::Error),
    #[error("the shutdown could not finish: the {0} actor stopped before it was done")]
    Drain(&'static str),
}

/// A built application: actors running, HTTP listener bound, serving once
/// [`Application::run_until_stopped`] is awaited.
#[allow(
    missing_debug_implementations,
    reason = "actix-web's Server has no Debug"
)]
pub struct Application {
    port: u16,
    probe_port: u16,
    server: Server,
    probe_server: Server,
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
        let services = Services {
            store,
            publisher: Publisher::new(Arc::clone(&bus), settings.kafka.topic.clone()),
            bus: Arc::clone(&bus),
            instance: instance.into(),
            metrics: Arc::new(Metrics::new()),
            run_slots: RunSlots::new(&settings),
            runners: Arc::new(Runners::new(&settings)?),
            settings: Arc::clone(&settings),
        };
        services.metrics.watch_slots(&services.run_slots);
        // Build the consumers before starting anything, so that a bad configuration fails
        // start-up rather than a restart loop.
        let dispatcher = match settings.has_role(Role::Executor) {
            true => Some(DispatcherActor::new(services.clone()).map_err(bus_error)?),
            false => None,
        };
        let result_writer = match settings.has_role(Role::Writer) {
            true => Some(ResultWriterActor::new(services.clone()).map_err(bus_error)?),
            false => None,
        };
        let dispatcher = dispatcher.map(|actor| Supervisor::start(move |_| actor));
        let dispatches = settings.has_role(Role::Api) || settings.has_role(Role::Scanner);
        if dispatcher.is_none() && dispatches {
            heartbeat::beat_without_executors(&services);
        }
        let scanner = settings.has_role(Role::Scanner).then(|| {
            let services = services.clone();
            // Recovered jobs run here at once when this process runs jobs.
            let local = dispatcher
                .as_ref()
                .map(|dispatcher| dispatcher.clone().recipient());
            Supervisor::start(move |_| ScannerActor::new(services, local))
        });
        let state = AppState {
            scanner,
            dispatcher,
            // A thread of its own: on the one shared with the executors, a burst of jobs left
            // the writer a few hundred results a second until the burst was over.
            result_writer: result_writer.map(|actor| {
                Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| actor)
            }),
            bodies: BodyBudget::new(settings.http.max_body_memory, settings.http.body_timeout),
            // Checked when the settings were loaded.
            credentials: std::sync::Arc::new(settings.auth.credentials().unwrap_or_default()),
            services,
        };

        let host = settings.http.host.as_str();
        let tls = http_tls(&settings).map_err(StartupError::Tls)?;
        let connections = limits::connections(&settings);
        let workers = limits::workers(connections);
        let with_jobs = settings.has_role(Role::Api);
        let surfaces = api::Surfaces {
            jobs: with_jobs,
            dashboard: (with_jobs && settings.http.ui).then(|| !state.credentials.is_empty()),
        };
        let server = {
            let state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(state.clone()))
                    .app_data(api::query_config())
                    .configure(|config| api::routes(config, surfaces))
            })
            // Kairos handles SIGINT and SIGTERM itself and orders its shutdown (see
            // `run_until`): actix's own handling would stop every actor at once.
            .disable_signals()
            .shutdown_timeout(5)
            .workers(workers)
            .max_connections(connections.div_ceil(workers))
            .client_request_timeout(settings.http.header_timeout)
            .backlog(LISTEN_BACKLOG);
            let port = settings.http.port;
            match &tls {
                Some(config) => server.bind_rustls_0_23((host, port), config.clone()),
                None => server.bind((host, port)),
            }
            .map_err(|source| listen_error(host, port, source))?
        };
        let port = bound_port(&server.addrs());
        let server = server.run();
        let probe_server = {
            let state = state.clone();
            let probe_server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(state.clone()))
                    .configure(api::probe_routes)
            })
            .disable_signals()
            .shutdown_timeout(1)
            .workers(1)
            .max_connections(limits::PROBE_CONNECTIONS)
            .client_request_timeout(limits::PROBE_HEADER_TIMEOUT);
            let port = settings.http.probe_port;
            match &tls {
                Some(config) => probe_server.bind_rustls_0_23((host, port), config.clone()),
                None => probe_server.bind((host, port)),
            }
            .map_err(|source| listen_error(host, port, source))?
        };
        let probe_port = bound_port(&probe_server.addrs());
        let probe_server = probe_server.run();
        Ok(Self {
            port,
            probe_port,
            server,
            probe_server,
            state,
        })
    }

    /// This application's bus (tests inject records through it).
    pub fn bus(&self) -> Arc<dyn Bus> {
        Arc::clone(&self.state.services.bus)
    }

    /// This process's instance name, as the store records it (`runner`, heartbeats).
    pub fn instance(&self) -> String {
        self.state.services.instance.to_string()
    }

    /// Where the jobs live (`PostgreSQL at …` or `SQLite at …`).
    pub fn store_location(&self) -> String {
        self.state.services.store.location()
    }

    /// The port the API listens on (the one chosen by the system when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port that serves only the probes and the metrics (`http.probe_port`).
    pub fn probe_port(&self) -> u16 {
        self.probe_port
    }

    /// A handle to stop the server from elsewhere (the tests do).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until `stop` resolves (`kairos serve` passes SIGINT or SIGTERM) or the server
    /// is stopped through its [`handle`](Application::handle); then shuts down in two phases
    /// (see [`shutdown`]) and returns. Nothing stops the actors before that shutdown is over,
    /// and the probes answer until then.
    ///
    /// # Errors
    /// An I/O error of the HTTP server, or a shutdown that could not finish (an actor it
    /// needed had stopped).
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<(), RunError> {
        let Self {
            server,
            probe_server,
            state,
            ..
        } = self;
        let handle = server.handle();
        let probe_handle = probe_server.handle();
        let probes = actix_web::rt::spawn(probe_server);
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => served,
            () = stop => {
                tracing::info!("stop requested");
                // In-flight requests finish (for up to the shutdown timeout); no new ones. The
                // server handles the command only while it is polled: both go on together.
                let ((), served) = tokio::join!(handle.stop(true), server);
                served
            }
        };
        let drained = shutdown(&state).await;
        // The probe server runs as a task of its own, which handles the command.
        probe_handle.stop(true).await;
        if let Ok(Err(error)) = probes.await {
            tracing::warn!(%error, "the probe listener failed");
        }
        served?;
        drained
    }

    /// [`Application::run_until`] with no stop but the handle's (the tests').
    ///
    /// # Errors
    /// As [`Application::run_until`].
    pub async fn run_until_stopped(self) -> Result<(), RunError> {
        self.run_until(std::future::pending()).await
    }
}

/// How often shutdown looks whether the executors are done.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Stops taking work, lets what runs finish within `shutdown.grace`, hands the jobs that have
/// not started to other instances, writes every result, and commits offsets:
///
/// 1. the scanner stops claiming;
/// 2. the dispatcher closes the run slots (no command starts any more), commits its offsets
///    and leaves the consumer group (its partitions move to the other instances), then
///    releases its executors: a job whose attempt has not started (waiting for its time, for
///    a run slot, or for a retry) is dispatched again, under a new epoch, to the others (in
///    the standalone mode, to the next start); a running one finishes and reports;
/// 3. once no executor is left (or the grace is over), the result writer writes what it read
///    (and, in the standalone mode, what its in-process queue still holds) and commits.
///
/// An attempt still running when the grace is over is abandoned (its process group is killed
/// when the process exits) and recovered by its lease as a lost attempt.
///
/// # Errors
/// [`RunError::Drain`] when an actor the shutdown needs had stopped: what it held may be
/// unwritten (and is recovered by the leases).
async fn shutdown(state: &AppState) -> Result<(), RunError> {
    tracing::info!("shutting down: no new work is taken");
    if let Some(scanner) = &state.scanner {
        scanner
            .send(StopClaiming)
            .await
            .map_err(|_| RunError::Drain("scanner"))?;
    }
    if let Some(dispatcher) = &state.dispatcher {
        dispatcher
            .send(StopDispatching)
            .await
            .map_err(|_| RunError::Drain("dispatcher"))?;
        let deadline = Instant::now() + state.services.settings.shutdown.grace;
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
        result_writer
            .send(Drain)
            .await
            .map_err(|_| RunError::Drain("result writer"))?;
    }
    let grace = state.services.settings.recovery.grace;
    if let Err(error) = state.services.store.retire_instance(grace).await {
        tracing::warn!(%error, "cannot record that this instance stopped");
    }
    tracing::info!("shutdown complete");
    Ok(())
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
