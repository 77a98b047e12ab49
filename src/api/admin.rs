//! `/api/v1/admin`: what the actors are doing, and fault injection for drills.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body::{self, require_json};
use super::error::{ApiError, ErrorBody};
use super::job_input::read_object;
use crate::actors::ActorKind;
use crate::actors::dispatcher::FailExecutor;
use crate::actors::supervision::Fail;
use crate::metrics::{KindLabel, Metrics};

/// The largest body of a fault injection.
const MAX_FAIL_BODY: usize = 1024;

/// The actors of this process: the answer of `GET /api/v1/admin/actors`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorsReport {
    pub instance: String,
    pub actors: Actors,
}

/// One entry per actor kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Actors {
    pub scanner: ActorState,
    pub dispatcher: ActorState,
    pub executor: ActorState,
    pub result_writer: ActorState,
}

/// How many actors of a kind are alive, how often they were restarted, and their backlog
/// where one is known.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorState {
    pub alive: i64,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Backlog>,
}

/// Work waiting on an actor kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Backlog {
    Executor { waiting: i64, running: i64 },
    ResultWriter { pending_reports: i64 },
}

impl ActorState {
    fn of(metrics: &Metrics, kind: ActorKind) -> Self {
        Self {
            alive: metrics
                .actors_alive
                .get_or_create(&KindLabel::of(kind))
                .get(),
            restarts: metrics
                .actor_restarts
                .get_or_create(&KindLabel::of(kind))
                .get(),
            backlog: None,
        }
    }
}

/// `GET /api/v1/admin/actors`: per actor kind, how many are alive, their restarts, and their
/// backlog where known. The same figures are exported at `/metrics`.
#[utoipa::path(
    get, path = "/api/v1/admin/actors", tag = "admin",
    responses((status = 200, description = "Per actor kind: alive, restarts, backlog", body = ActorsReport))
)]
pub async fn actors(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ActorsReport {
        instance: state.services.instance.to_string(),
        actors: Actors::of(&state.services.metrics),
    })
}

impl Actors {
    /// The state of each actor kind, as this process's metrics hold it.
    pub fn of(metrics: &Metrics) -> Self {
        let executor = ActorState {
            backlog: Some(Backlog::Executor {
                waiting: metrics.executors_waiting.get(),
                running: metrics.executors_running.get(),
            }),
            ..ActorState::of(metrics, ActorKind::Executor)
        };
        let result_writer = ActorState {
            backlog: Some(Backlog::ResultWriter {
                pending_reports: metrics.writer_pending.get(),
            }),
            ..ActorState::of(metrics, ActorKind::ResultWriter)
        };
        Self {
            scanner: ActorState::of(metrics, ActorKind::Scanner),
            dispatcher: ActorState::of(metrics, ActorKind::Dispatcher),
            executor,
            result_writer,
        }
    }
}

/// The body of a fault injection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// Panic inside a handler rather than stop.
    #[serde(default)]
    panic: bool,
}

/// The answer of a fault injection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Failed {
    pub failed: &'static str,
    pub panic: bool,
}

/// `POST /api/v1/admin/actors/{kind}/fail`: makes one actor of `kind` fail, so that its
/// restart can be observed. Only when `admin.fault_injection` is on. The body, optional, is
/// `{"panic": true}` to panic rather than stop.
///
/// # Errors
/// 404 when fault injection is off or the kind is unknown; 400 for a malformed body; 409
/// when there is no such actor to fail.
#[utoipa::path(
    post, path = "/api/v1/admin/actors/{kind}/fail", tag = "admin",
    params(("kind" = String, Path, description = "`scanner`, `dispatcher`, `executor` or `result_writer`")),
    request_body(content = Option<super::openapi::schemas::FailRequest>, content_type = "application/json"),
    responses(
        (status = 202, description = "The actor fails; its supervisor restarts it", body = Failed),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 404, description = "Fault injection is off (`admin.fault_injection`), or no such kind", body = ErrorBody),
        (status = 409, description = "No such actor runs to fail", body = ErrorBody),
    )
)]
pub async fn fail(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.services.settings.admin.fault_injection {
        return Err(ApiError::not_found(
            "fault injection is disabled (admin.fault_injection)",
        ));
    }
    let kind = ActorKind::parse(&path)
        .ok_or_else(|| ApiError::not_found(format!("no actor kind is called `{path}`")))?;
    let body = body::read(&request, payload, MAX_FAIL_BODY, &state.bodies).await?;
    let request: FailRequest = if body.bytes.is_empty() {
        FailRequest::default()
    } else {
        require_json(&request)?;
        read_object(&body.bytes).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body must be {\"panic\": true} or {\"panic\": false}, or empty",
            )
        })?
    };
    let how = Fail {
        panic: request.panic,
    };
    let delivered = match kind {
        ActorKind::Scanner => state
            .scanner
            .as_ref()
            .is_some_and(|actor| actor.try_send(how).is_ok()),
        ActorKind::Dispatcher => state
            .dispatcher
            .as_ref()
            .is_some_and(|actor| actor.try_send(how).is_ok()),
        ActorKind::ResultWriter => state
            .result_writer
            .as_ref()
            .is_some_and(|actor| actor.try_send(how).is_ok()),
        ActorKind::Executor => match &state.dispatcher {
            Some(dispatcher) => dispatcher.send(FailExecutor(how)).await.unwrap_or(false),
            None => false,
        },
    };
    if !delivered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "actor_unavailable",
            format!("no {} actor runs here", kind.as_str()),
        ));
    }
    Ok(HttpResponse::Accepted().json(Failed {
        failed: kind.as_str(),
        panic: how.panic,
    }))
}
