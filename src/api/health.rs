//! Probes for orchestrators and the Prometheus scrape. They are open to every caller and show
//! nothing of any job.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::AppState;

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The answer of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `standalone` or `distributed`.
    pub mode: &'static str,
    pub checks: Checks,
}

/// Each dependency's check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub store: Check,
    pub bus: Check,
}

/// Whether a dependency answers, what and where it is, and why not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub ok: bool,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    fn of<E: std::fmt::Display>(location: String, result: Result<(), E>) -> Self {
        Self {
            ok: result.is_ok(),
            location,
            reason: result.err().map(|error| error.to_string()),
        }
    }
}

/// `GET /healthz`: the process is alive and serving HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process serves HTTP", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: the store answers a query and the bus answers (a Kafka broker returns
/// metadata). Otherwise 503, with the reason per dependency: `checks.store` and `checks.bus`,
/// each naming what it is (`PostgreSQL at …`, `SQLite at …`, `Kafka at …`).
#[utoipa::path(
    get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "The store and the bus answer", body = Readiness),
        (status = 503, description = "A dependency does not answer; `reason` says why", body = Readiness),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let services = &state.services;
    let bus = &services.bus;
    let (store_check, bus_check) = tokio::join!(services.store.ping(), bus.ping());
    let checks = Checks {
        store: Check::of(services.store.location(), store_check),
        bus: Check::of(bus.location(), bus_check),
    };
    let ready = checks.store.ok && checks.bus.ok;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        mode: services.settings.backend().as_str(),
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: every metric in the OpenMetrics text format (which Prometheus reads).
#[utoipa::path(
    get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Every metric, in the OpenMetrics text format",
               content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let held = i64::try_from(state.bodies.held()).unwrap_or(i64::MAX);
    state.services.metrics.body_bytes_held.set(held);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.services.metrics.render())
}
