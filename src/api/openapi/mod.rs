//! The OpenAPI 3.1 description of the API, generated from the handlers' `#[utoipa::path]`
//! attributes and the types they answer with; served at `GET /api/v1/openapi.json`, with a
//! reference page at `/api/docs` (Swagger UI, its assets compiled into the binary).

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Description, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

pub mod schemas;

/// The description: every route, its bodies and its answers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Kairos",
        description = "A distributed job scheduler: create jobs (a shell command, an HTTP \
                       call, a Kafka message, or nothing) and schedules, and follow them to \
                       their result. Every error answers `{\"error\": {\"code\", \"message\", \
                       \"field\"?}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::jobs::create,
        super::jobs::create_batch,
        super::jobs::get,
        super::jobs::list,
        super::control::cancel,
        super::control::rerun,
        super::schedules::create,
        super::schedules::list,
        super::schedules::get,
        super::schedules::change,
        super::schedule_actions::delete,
        super::schedule_actions::pause,
        super::schedule_actions::resume,
        super::schedule_actions::trigger,
        super::schedule_actions::backfill,
        super::schedules::preview,
        super::stats::stats,
        super::admin::actors,
        super::admin::fail,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
    ),
    modifiers(&Guarded),
    tags(
        (name = "jobs", description = "One-off jobs: create, read, list, cancel, re-run."),
        (name = "schedules", description = "Recurring jobs: a cron expression or an interval."),
        (name = "admin", description = "The process's actors (admin tokens only)."),
        (name = "probes", description = "Liveness, readiness and the Prometheus scrape: open \
                                         to every caller, also on `http.probe_port`."),
    )
)]
pub struct ApiDoc;

/// Adds the bearer token scheme, and the answers every route it guards (under `/api/v1/`, but
/// the description itself) shares: `401` and `403`; `503` where a store or a body budget is
/// involved (every route but the admin ones without a body); `408`, `413` and `415` for every
/// route that reads a body.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, openapi: &mut Description) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`kairos token new`). With no tokens configured, the \
                         API listens on loopback and needs none.",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .into()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json" {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                operation.security =
                    Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                        "token",
                        Vec::<String>::new(),
                    )]);
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "401".into(),
                    error("`unauthorized`: no token, or an unknown one"),
                );
                responses.insert(
                    "403".into(),
                    error("`forbidden`: the token's role does not cover this route"),
                );
                let reads_body = operation.request_body.is_some();
                if reads_body || !path.starts_with("/api/v1/admin/") {
                    responses.insert(
                        "503".into(),
                        error(
                            "`database_unavailable` (or `server_busy`, `shutting_down`); \
                             `Retry-After` says when to try again",
                        ),
                    );
                }
                if reads_body {
                    responses.insert(
                        "408".into(),
                        error("`body_timeout`: the body did not arrive within `http.body_timeout`"),
                    );
                    responses.insert("413".into(), error("`body_too_large`"));
                    responses.insert(
                        "415".into(),
                        error("`unsupported_media_type`: the body is not `application/json`"),
                    );
                }
            }
        }
    }
}

/// `GET /api/v1/openapi.json`: this description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API",
               content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The reference page at `/api/docs/`, reading the description from its route.
pub fn reference_page() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"]))
}
