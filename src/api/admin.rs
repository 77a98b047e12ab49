//! `/api/v1/admin`: what the actors are doing, and fault injection for drills.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::actors::ActorKind;
use crate::actors::dispatcher::FailExecutor;
use crate::actors::supervision::Fail;

/// `GET /api/v1/admin/actors`: per actor kind, how many are alive, their restarts, and their
/// backlog where known. The same figures are exported at `/metrics`.
pub async fn actors(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.runtime.metrics;
    let alive = |kind: ActorKind| metrics.actors_alive.get_or_create(&kind.label()).get();
    let restarts = |kind: ActorKind| metrics.actor_restarts.get_or_create(&kind.label()).get();
    let entry = |kind: ActorKind| json!({ "alive": alive(kind), "restarts": restarts(kind) });
    let mut executor = entry(ActorKind::Executor);
    executor["backlog"] = json!({
        "waiting": metrics.executors_waiting.get(),
        "running": metrics.executors_running.get(),
    });
    let mut writer = entry(ActorKind::ResultWriter);
    writer["backlog"] = json!({ "pending_reports": metrics.writer_pending.get() });
    HttpResponse::Ok().json(json!({
        "instance": &*state.runtime.instance,
        "actors": {
            "scanner": entry(ActorKind::Scanner),
            "dispatcher": entry(ActorKind::Dispatcher),
            "executor": executor,
            "result_writer": writer,
        }
    }))
}

/// The body of a fault injection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// Panic inside a handler rather than stop.
    #[serde(default)]
    panic: bool,
}

/// `POST /api/v1/admin/actors/{kind}/fail`: makes one actor of `kind` fail, so that its
/// restart can be observed. Only when `admin.fault_injection` is on.
///
/// # Errors
/// 404 when fault injection is off or the kind is unknown; 409 when there is no executor to
/// fail.
pub async fn fail(
    path: web::Path<String>,
    body: Option<web::Json<FailRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.runtime.settings.admin.fault_injection {
        return Err(ApiError::not_found(
            "fault injection is disabled (admin.fault_injection)",
        ));
    }
    let kind = ActorKind::parse(&path)
        .ok_or_else(|| ApiError::not_found(format!("no actor kind is called `{path}`")))?;
    let how = Fail {
        panic: body.is_some_and(|body| body.panic),
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
    Ok(HttpResponse::Accepted().json(json!({ "failed": kind.as_str(), "panic": how.panic })))
}
