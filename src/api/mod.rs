//! The HTTP API: health probes, metrics, and (under `/api/v1`) jobs and administration.

mod health;

use std::sync::Arc;

use actix_web::web;
use deadpool_postgres::Pool;
use rdkafka::producer::FutureProducer;

use crate::config::Settings;
use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "rdkafka's producer has no Debug"
)]
pub struct AppState {
    pub pool: Pool,
    pub producer: FutureProducer,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
}

/// Registers every route.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}
