//! Builds the whole application from a configuration: the pool, the schema, the topics, the
//! actors and the HTTP server. Tests start exactly this, on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix::Supervisor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::actors::Runtime;
use crate::actors::dispatcher::DispatcherActor;
use crate::actors::result_writer::ResultWriterActor;
use crate::actors::scanner::ScannerActor;
use crate::api::{self, AppState};
use crate::bus::kafka::{self as kafka, BusError, Publisher};
use crate::config::Settings;
use crate::metrics::Metrics;
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

        let runtime = Runtime {
            pool,
            publisher,
            metrics: Arc::new(Metrics::new()),
            instance: format!(
                "kairos-{}-{}",
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            )
            .into(),
            run_slots: Arc::new(Semaphore::new(settings.executor.max_concurrent_runs)),
            settings: Arc::clone(&settings),
        };
        // Build the consumers before starting anything, so that a bad configuration fails
        // start-up rather than a restart loop.
        let dispatcher = DispatcherActor::new(runtime.clone()).map_err(bus_error)?;
        let result_writer = ResultWriterActor::new(runtime.clone()).map_err(bus_error)?;
        let state = AppState {
            scanner: Some(Supervisor::start({
                let runtime = runtime.clone();
                move |_| ScannerActor::new(runtime)
            })),
            dispatcher: Supervisor::start(move |_| dispatcher),
            result_writer: Supervisor::start(move |_| result_writer),
            runtime,
        };

        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listen_error = |source| StartupError::Listen {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let server = {
            let state = state.clone();
            HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(state.clone()))
                    .app_data(api::query_config())
                    .app_data(api::json_config())
                    .configure(api::routes)
            })
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

    /// Serves until SIGINT or SIGTERM (or [`ServerHandle::stop`]), then drains in-flight
    /// requests and returns.
    ///
    /// # Errors
    /// An I/O error of the HTTP server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // Dropping the last addresses lets the actors stop.
        drop(self.state);
        result
    }
}
