//! `/api/v1/schedules/{id}:pause`, `:resume`, `:trigger`, `:backfill` and `DELETE`: what
//! changes a schedule's course, beside its fields.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::jobs::parse_id;
use super::schedule_input::{backfill_fires, pause_note};
use super::schedules::{ScheduleView, fire_soon, found, json_object, object_body, view};
use crate::domain::Schedule;
use crate::scheduling;
use crate::store::fire_job;

/// The answer of a trigger or a backfill: each fire's job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FiresMade {
    pub fires: Vec<FireMade>,
}

/// A fire and its job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FireMade {
    pub scheduled_for: DateTime<Utc>,
    pub job_id: Uuid,
}

/// `POST /api/v1/schedules/{id}:pause` (optional `{"note": "..."}`): no more fires until it
/// is resumed; the jobs of fires made ahead that have not started are cancelled.
///
/// # Errors
/// 400, 404, 503.
#[utoipa::path(
    post, path = "/api/v1/schedules/{id}:pause", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    request_body(content = Option<super::openapi::schemas::PauseRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Paused", body = ScheduleView),
        (status = 400, description = "`invalid_id`, or a wrong `note`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn pause(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let note = pause_note(object_body(&request, payload, &state).await?)?;
    set_paused(&state, id, true, note).await
}

/// `POST /api/v1/schedules/{id}:resume`: fires again; what the pause missed follows the
/// catch-up rule.
///
/// # Errors
/// 400, 404, 503.
#[utoipa::path(
    post, path = "/api/v1/schedules/{id}:resume", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 200, description = "Firing again", body = ScheduleView),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn resume(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_paused(&state, parse_id(&path)?, false, None).await
}

async fn set_paused(
    state: &AppState,
    id: Uuid,
    paused: bool,
    note: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(schedule) = state
        .services
        .store
        .pause_schedule(id, paused, note)
        .await?
    else {
        return Err(ApiError::no_schedule(id));
    };
    let schedule = if paused {
        schedule
    } else {
        fire_soon(state, schedule).await?
    };
    Ok(HttpResponse::Ok().json(view(state, schedule).await?))
}

/// `POST /api/v1/schedules/{id}:trigger`: one fire now, outside the rule (its overlap rule
/// applies); `201` with the fire and its job.
///
/// # Errors
/// 400, 404, 503.
#[utoipa::path(
    post, path = "/api/v1/schedules/{id}:trigger", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 201, description = "One fire now, and its job", body = FiresMade),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn trigger(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let schedule = found(&state, parse_id(&path)?).await?;
    let at = Utc::now();
    make_fires(&state, &schedule, vec![at]).await
}

/// `POST /api/v1/schedules/{id}:backfill` (`{"from": ..., "to": ...}`): the fires of a past
/// range, at most 1,000, each once (a fire that has a job already keeps it), under the
/// overlap rule; `201` with each fire and its job.
///
/// # Errors
/// 400 for a bad or too large range, 404, 415, 503.
#[utoipa::path(
    post, path = "/api/v1/schedules/{id}:backfill", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    request_body(content = super::openapi::schemas::BackfillRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The range's fires and their jobs", body = FiresMade),
        (status = 400, description = "`backfill_too_large`, `invalid_field`, `missing_field`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn backfill(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let fields = json_object(&request, payload, &state).await?;
    let schedule = found(&state, id).await?;
    let times = backfill_fires(fields, &schedule, Utc::now())?;
    make_fires(&state, &schedule, times).await
}

async fn make_fires(
    state: &AppState,
    schedule: &Schedule,
    times: Vec<DateTime<Utc>>,
) -> Result<HttpResponse, ApiError> {
    let jobs = times.iter().map(|at| fire_job(schedule, *at)).collect();
    let ids = scheduling::create_fires(&state.services, jobs).await?;
    let fires = times
        .into_iter()
        .zip(ids)
        .map(|(scheduled_for, job_id)| FireMade {
            scheduled_for,
            job_id,
        })
        .collect();
    Ok(HttpResponse::Created().json(FiresMade { fires }))
}

/// `DELETE /api/v1/schedules/{id}`: no more fires (those made ahead and not started are
/// cancelled); its jobs stay. `204`.
///
/// # Errors
/// 400, 404, 503.
#[utoipa::path(
    delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 204, description = "Gone; its jobs stay"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn delete(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    if state.services.store.delete_schedule(id).await? {
        Ok(HttpResponse::build(StatusCode::NO_CONTENT).finish())
    } else {
        Err(ApiError::no_schedule(id))
    }
}
