//! The HTTP API: health probes and metrics at the root, jobs and administration under
//! `/api/v1`. The routes and their answers are documented in `docs/api.md`.

mod admin;
mod auth;
mod error;
mod health;
mod job_fields;
mod job_input;
mod jobs;

use actix::Addr;
use actix_web::{HttpResponse, middleware, web};

pub use error::ApiError;

use crate::actors::Runtime;
use crate::actors::dispatcher::DispatcherActor;
use crate::actors::result_writer::ResultWriterActor;
use crate::actors::scanner::ScannerActor;

/// What the handlers share.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "holds the runtime, which has no Debug"
)]
pub struct AppState {
    pub runtime: Runtime,
    /// The actors this process runs, by its roles.
    pub scanner: Option<Addr<ScannerActor>>,
    pub dispatcher: Option<Addr<DispatcherActor>>,
    pub result_writer: Option<Addr<ResultWriterActor>>,
}

/// Registers every route; the jobs routes only with the `api` role.
pub fn routes(config: &mut web::ServiceConfig, with_jobs: bool) {
    let mut api = web::scope("/api/v1")
        .wrap(middleware::from_fn(auth::require_token))
        .route("/admin/actors", web::get().to(admin::actors))
        .route("/admin/actors/{kind}/fail", web::post().to(admin::fail));
    if with_jobs {
        api = api
            .route("/jobs", web::post().to(jobs::create))
            .route("/jobs:batch", web::post().to(jobs::create_batch))
            .route("/jobs", web::get().to(jobs::list))
            .route("/jobs/{id}", web::get().to(jobs::get));
    }
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(api)
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
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

/// Answers malformed JSON bodies of the admin routes with the API's JSON error body.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().error_handler(|error, _| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_json",
            error.to_string(),
        )
        .into()
    })
}
