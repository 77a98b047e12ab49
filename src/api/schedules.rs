//! `/api/v1/schedules`: create, read, list and change recurring schedules, and preview a
//! rule's fires (`schedule_actions` pauses, resumes, triggers, backfills and deletes them).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::AppState;
use super::body::{self, require_json};
use super::error::{ApiError, ErrorBody};
use super::job_input::{check_target, read_object};
use super::jobs::{page_limit, parse_cursor, parse_id};
use super::schedule_input::{Body, parse_change, parse_new, parse_preview};
use crate::domain::Schedule;
use crate::domain::schedule::fires::Fires;
use crate::scheduling;
use crate::store::FireRecord;

/// Fires shown by a read: the next ones, and the latest made.
const SHOWN_FIRES: usize = 10;

/// A schedule with its next fire times and its latest fires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub schedule: Schedule,
    /// The next fire times (nominal, before jitter), from now.
    pub next_fires: Vec<DateTime<Utc>>,
    /// The latest fires made, newest first, with their jobs.
    pub last_fires: Vec<FireRecord>,
}

/// A page of schedules, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchedulePage {
    pub schedules: Vec<Schedule>,
    pub next_cursor: Option<Uuid>,
}

/// The answer of a preview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewAnswer {
    pub fires: Vec<DateTime<Utc>>,
}

/// Reads a JSON object body of at most the jobs' body limit; an empty body is `{}`.
pub(super) async fn object_body(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Map<String, Value>, ApiError> {
    let limit = state.services.settings.jobs.max_body_bytes;
    let body = body::read(request, payload, limit, &state.bodies).await?;
    if body.bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    require_json(request)?;
    read_object(&body.bytes)
}

/// Reads a body that must be a JSON object (with its content type even when empty) of at
/// most the jobs' body limit.
pub(super) async fn json_object(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Map<String, Value>, ApiError> {
    require_json(request)?;
    object_body(request, payload, state).await
}

pub(super) async fn view(state: &AppState, schedule: Schedule) -> Result<ScheduleView, ApiError> {
    let now = Utc::now();
    let next_fires = match Fires::new(
        &schedule.recurrence(),
        &schedule.timezone,
        schedule.anchor(),
        schedule.start_at,
        schedule.end_at,
    ) {
        Ok(fires) if !schedule.paused && schedule.next_fire_at.is_some() => {
            fires.upcoming(now, SHOWN_FIRES)
        }
        _ => Vec::new(),
    };
    let last_fires = state
        .services
        .store
        .recent_fires(schedule.id, SHOWN_FIRES as i64)
        .await?;
    Ok(ScheduleView {
        schedule,
        next_fires,
        last_fires,
    })
}

pub(super) async fn found(state: &AppState, id: Uuid) -> Result<Schedule, ApiError> {
    state
        .services
        .store
        .get_schedule(id)
        .await?
        .ok_or_else(|| ApiError::no_schedule(id))
}

/// `POST /api/v1/schedules`: checks the body (its job as a create would), stores the
/// schedule, answers `201` with its view and a `Location`.
///
/// # Errors
/// 400 naming the field at fault, 413, 415, 503.
#[utoipa::path(
    post, path = "/api/v1/schedules", tag = "schedules",
    request_body(content = super::openapi::schemas::ScheduleRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ScheduleView,
         headers(("Location" = String, description = "The schedule's URL"))),
        (status = 400, description = "A field is missing or wrong (`never_fires` for a rule with no fire left); a fault in `job` names `job.<field>`", body = ErrorBody),
    )
)]
pub async fn create(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let fields = json_object(&request, payload, &state).await?;
    let settings = &state.services.settings;
    let mut schedule = parse_new(&Body::new(fields)?, &settings.jobs, Utc::now())?;
    schedule.created_by = super::auth::caller_name(&request);
    check_target(&schedule.job.spec, settings).map_err(in_job)?;
    let schedule = state.services.store.create_schedule(schedule).await?;
    let id = schedule.id;
    let schedule = fire_soon(&state, schedule).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/schedules/{id}")))
        .json(view(&state, schedule).await?))
}

/// An error about a job's field, named as a field of the schedule's `job`.
fn in_job(mut error: ApiError) -> ApiError {
    error.field = error.field.map(|field| format!("job.{field}"));
    error
}

/// The query of `GET /api/v1/schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/schedules?limit=&cursor=`: newest first, paged as jobs are.
///
/// # Errors
/// 400 for a bad limit or cursor, 503.
#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before"),
    ),
    responses(
        (status = 200, description = "A page of schedules, newest first", body = SchedulePage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
    )
)]
pub async fn list(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let schedules = state.services.store.list_schedules(cursor, limit).await?;
    let next_cursor = if i64::try_from(schedules.len()).unwrap_or(i64::MAX) == limit {
        schedules.last().map(|schedule| schedule.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(SchedulePage {
        schedules,
        next_cursor,
    }))
}

/// `GET /api/v1/schedules/{id}`: the schedule, its next fire times and its latest fires.
///
/// # Errors
/// 400 for a malformed id, 404, 503.
#[utoipa::path(
    get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 200, description = "The schedule, its next fire times and its latest fires", body = ScheduleView),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let schedule = found(&state, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(view(&state, schedule).await?))
}

/// `PATCH /api/v1/schedules/{id}`: changes the fields given; a new rule, zone or job applies
/// from the next fire not made yet.
///
/// # Errors
/// 400 naming the field at fault, 404, 415, 503.
#[utoipa::path(
    patch, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    request_body(content = super::openapi::schemas::SchedulePatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed; a new rule, zone or job applies from the next fire not made yet", body = ScheduleView),
        (status = 400, description = "A field is wrong; `field` names it", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn change(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let fields = json_object(&request, payload, &state).await?;
    let current = found(&state, id).await?;
    let settings = &state.services.settings;
    let schedule = parse_change(&Body::new(fields)?, &current, &settings.jobs, Utc::now())?;
    check_target(&schedule.job.spec, settings).map_err(in_job)?;
    let Some(schedule) = state.services.store.replace_schedule(schedule).await? else {
        return Err(ApiError::no_schedule(id));
    };
    let schedule = fire_soon(&state, schedule).await?;
    Ok(HttpResponse::Ok().json(view(&state, schedule).await?))
}

/// Makes the fires due within `schedules.lookahead` at once rather than at the scanner's next
/// pass, which may come after the first of them; returns the schedule as it is then. If the
/// pass fails, the scanner's next one makes them.
pub(super) async fn fire_soon(state: &AppState, schedule: Schedule) -> Result<Schedule, ApiError> {
    if let Err(error) = scheduling::fire_due(&state.services).await {
        tracing::warn!(%error, "fires left to the scanner's next pass");
        return Ok(schedule);
    }
    Ok(state
        .services
        .store
        .get_schedule(schedule.id)
        .await?
        .unwrap_or(schedule))
}

/// `POST /api/v1/schedules:preview` (`{"cron" or "every", "timezone", "from", "count"}`): the
/// next fire times, as RFC 3339 instants in UTC; nothing is stored.
///
/// # Errors
/// 400 naming the field at fault, 415.
#[utoipa::path(
    post, path = "/api/v1/schedules:preview", tag = "schedules",
    request_body(content = super::openapi::schemas::PreviewRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The next fire times, RFC 3339 in UTC; nothing is stored", body = PreviewAnswer),
        (status = 400, description = "A field is wrong; `field` names it", body = ErrorBody),
    )
)]
pub async fn preview(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let preview = parse_preview(json_object(&request, payload, &state).await?, Utc::now())?;
    Ok(HttpResponse::Ok().json(PreviewAnswer {
        fires: preview.fires.upcoming(preview.from, preview.count),
    }))
}
