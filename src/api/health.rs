//! Probes for orchestrators and the Prometheus scrape.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::{bus, store};

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: PostgreSQL answers a query and a Kafka broker returns metadata.
/// Otherwise 503, with the reason per dependency.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let runtime = &state.runtime;
    let timeout = runtime.settings.kafka.request_timeout();
    let (postgres, kafka) = tokio::join!(
        store::ping(&runtime.pool),
        bus::kafka::ping(runtime.publisher.producer(), timeout)
    );
    let describe = |result: Result<(), String>| match result {
        Ok(()) => json!({ "ok": true }),
        Err(reason) => json!({ "ok": false, "reason": reason }),
    };
    let ready = postgres.is_ok() && kafka.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "postgres": describe(postgres.map_err(|e| e.to_string())),
            "kafka": describe(kafka.map_err(|e| e.to_string())),
        },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: every metric in Prometheus's text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.runtime.metrics.render())
}
