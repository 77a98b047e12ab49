//! The HTTP API: health probes and metrics at the root, jobs and administration under
//! `/api/v1`. The routes and their answers are documented in `docs/api.md`, and described in
//! OpenAPI 3.1 (`openapi`) from the handlers' own attributes.
//!
//! Authentication is attached to the routes it guards, not decided from the request's path:
//! the `/api/v1` scope is wrapped by [`auth::require_token`], so whatever spelling of a path
//! the router resolves to a protected route (percent-encoded, in another case, with doubled
//! slashes), the check runs, and a path the router does not resolve reaches no handler.

mod admin;
mod auth;
mod body;
mod control;
mod endpoint;
mod error;
mod health;
mod idempotency;
mod job_fields;
mod job_input;
mod jobs;
pub mod openapi;
mod schedule_actions;
mod schedule_input;
mod schedules;
mod stats;

use actix::Addr;
use actix_web::web;

pub use body::BodyBudget;
pub use endpoint::Endpoint;
pub use error::ApiError;

use crate::actors::Services;
use crate::actors::dispatcher::DispatcherActor;
use crate::actors::result_writer::ResultWriterActor;
use crate::actors::scanner::ScannerActor;
use crate::config::AccessRole;

/// What the handlers share.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "holds the services, which have no Debug"
)]
pub struct AppState {
    pub services: Services,
    /// The actors this process runs, by its roles.
    pub scanner: Option<Addr<ScannerActor>>,
    pub dispatcher: Option<Addr<DispatcherActor>>,
    pub result_writer: Option<Addr<ResultWriterActor>>,
    /// Bounds the memory held by request bodies being read, over all requests.
    pub bodies: BodyBudget,
    /// The tokens the API accepts (none: no authentication).
    pub credentials: std::sync::Arc<Vec<crate::config::Credential>>,
}

/// Which routes a process serves.
#[derive(Debug, Clone, Copy)]
pub struct Surfaces {
    /// The jobs and schedules routes: the `api` role.
    pub jobs: bool,
    /// The dashboard at `/ui` (with the jobs routes, and `http.ui`); whether it asks for a
    /// token.
    pub dashboard: Option<bool>,
}

/// Registers every route; the jobs routes only with the `api` role. A path that exists but
/// not for the request's method answers `405` with `Allow`.
pub fn routes(config: &mut web::ServiceConfig, surfaces: Surfaces) {
    let with_jobs = surfaces.jobs;
    let mut api = web::scope("/api/v1")
        .wrap(actix_web::middleware::from_fn(auth::authenticate))
        .service(
            Endpoint::new("/admin/actors")
                .admin()
                .get(admin::actors)
                .build(),
        )
        .service(
            Endpoint::new("/admin/actors/{kind}/fail")
                .admin()
                .post(admin::fail)
                .build(),
        );
    if with_jobs {
        api = api
            .service(
                Endpoint::new("/jobs")
                    .get(jobs::list)
                    .post(jobs::create)
                    .build(),
            )
            .service(
                Endpoint::new("/jobs:batch")
                    .post(jobs::create_batch)
                    .build(),
            )
            .service(
                Endpoint::new("/jobs/{id}:cancel")
                    .post(control::cancel)
                    .build(),
            )
            .service(
                Endpoint::new("/jobs/{id}:rerun")
                    .post(control::rerun)
                    .build(),
            )
            // An id has no colon: `/jobs/{id}:anything-else` is no route.
            .service(Endpoint::new("/jobs/{id:[^/:]+}").get(jobs::get).build())
            .service(Endpoint::new("/stats").get(stats::stats).build())
            .service(
                Endpoint::new("/schedules")
                    .get(schedules::list)
                    .post(schedules::create)
                    .build(),
            )
            .service(
                // Stores nothing: a reader may ask.
                Endpoint::new("/schedules:preview")
                    .writes_need(AccessRole::Reader)
                    .post(schedules::preview)
                    .build(),
            )
            .service(
                Endpoint::new("/schedules/{id}:pause")
                    .post(schedule_actions::pause)
                    .build(),
            )
            .service(
                Endpoint::new("/schedules/{id}:resume")
                    .post(schedule_actions::resume)
                    .build(),
            )
            .service(
                Endpoint::new("/schedules/{id}:trigger")
                    .post(schedule_actions::trigger)
                    .build(),
            )
            .service(
                Endpoint::new("/schedules/{id}:backfill")
                    .post(schedule_actions::backfill)
                    .build(),
            )
            .service(
                Endpoint::new("/schedules/{id:[^/:]+}")
                    .get(schedules::get)
                    .patch(schedules::change)
                    .delete(schedule_actions::delete)
                    .build(),
            );
    }
    config
        .service(probes())
        // The API's shape is no secret (clients are generated from it): open, and outside the
        // scope whose every route authenticates.
        .service(
            Endpoint::new("/api/v1/openapi.json")
                .open()
                .get(openapi::openapi_json)
                .build(),
        )
        .service(openapi::reference_page())
        .service(api);
    if let Some(token_required) = surfaces.dashboard {
        crate::ui::routes(config, token_required);
    }
    config.default_service(web::to(not_found));
}

/// The probes and the metrics: open to every caller, on the API's listener and on the probe
/// listener (`http.probe_port`).
pub fn probes() -> impl actix_web::dev::HttpServiceFactory {
    (
        Endpoint::new("/healthz")
            .open()
            .get(health::healthz)
            .build(),
        Endpoint::new("/readyz").open().get(health::readyz).build(),
        Endpoint::new("/metrics")
            .open()
            .get(health::metrics)
            .build(),
    )
}

/// Registers the probe listener's routes: the probes and nothing else.
pub fn probe_routes(config: &mut web::ServiceConfig) {
    config.service(probes()).default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

/// Answers malformed query strings with the API's JSON error body.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            error.to_string(),
        )
        .into()
    })
}
