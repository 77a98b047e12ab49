//! Probes for orchestrators and the Prometheus scrape.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers a query and the bus answers (a Kafka broker returns
/// metadata). Otherwise 503, with the reason per dependency: `checks.store` and `checks.bus`,
/// each naming what it is (`PostgreSQL at …`, `SQLite at …`, `Kafka at …`).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let runtime = &state.runtime;
    let bus = runtime.publisher.bus();
    let (store_check, bus_check) = tokio::join!(runtime.store.ping(), bus.ping());
    let describe = |location: String, result: Result<(), String>| match result {
        Ok(()) => json!({ "ok": true, "location": location }),
        Err(reason) => json!({ "ok": false, "location": location, "reason": reason }),
    };
    let ready = store_check.is_ok() && bus_check.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "mode": runtime.settings.backend().as_str(),
        "checks": {
            "store": describe(runtime.store.location(), store_check.map_err(|e| e.to_string())),
            "bus": describe(bus.location(), bus_check.map_err(|e| e.to_string())),
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
