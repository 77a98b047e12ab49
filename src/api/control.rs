//! `/api/v1/jobs/{id}:cancel` and `/api/v1/jobs/{id}:rerun`: job control.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::body::{self, require_json};
use super::error::{ApiError, ErrorBody};
use super::job_input::{check_target, parse_instant, read_object};
use super::jobs::{JobWithAttempts, created, parse_id};
use crate::domain::NewJob;
use crate::scheduling;
use crate::store::Cancelled;

/// The largest body of a re-run, in bytes.
const MAX_RERUN_BODY: usize = 4096;

/// `POST /api/v1/jobs/{id}:cancel`: a job that has not started its attempt becomes
/// `CANCELLED` at once and never runs (`200`); a running one becomes `CANCELLED` and its
/// attempt is stopped by the instance running it (`202`: its command gets SIGTERM, then
/// SIGKILL after `executor.cancel_grace`). Either way the answer holds the job.
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown one, 409 `job_final` for a job that has ended
/// (nothing changes), 503 when the database is unavailable.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}:cancel", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 200, description = "Cancelled before it ran: it never will", body = JobWithAttempts),
        (status = 202, description = "Running: its command is being stopped (SIGTERM, then SIGKILL after `executor.cancel_grace`)", body = JobWithAttempts),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`job_final`: the job has ended; nothing changes", body = ErrorBody),
    )
)]
pub async fn cancel(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let services = &state.services;
    let by = super::auth::caller_name(&request);
    let status = match services.store.cancel(id, by).await? {
        None => return Err(ApiError::no_job(id)),
        Some(Cancelled::AlreadyFinal) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_final",
                format!("job {id} has ended already; nothing was changed"),
            ));
        }
        Some(Cancelled::Waiting) => StatusCode::OK,
        Some(Cancelled::Running) => StatusCode::ACCEPTED,
    };
    services.metrics.jobs_cancelled.inc();
    let (job, attempts) = services
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::no_job(id))?;
    Ok(HttpResponse::build(status).json(JobWithAttempts { job, attempts }))
}

/// `POST /api/v1/jobs/{id}:rerun`, with an optional body `{"execute_at": "..."}` (default:
/// now): a job that has ended is created again, with the same spec, a new id and `rerun_of`
/// naming it. Answers `201` as a create does.
///
/// # Errors
/// 400 for a malformed id or body, 404 for an unknown id, 409 `job_not_final` for a job that
/// has not ended, 415 for a body that is not JSON, 503 when the database is unavailable.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}:rerun", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    request_body(content = Option<super::openapi::schemas::RerunRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "A new job with the same spec, `rerun_of` the original", body = JobWithAttempts,
         headers(("Location" = String, description = "The new job's URL"))),
        (status = 400, description = "`invalid_id`, or a wrong field", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`job_not_final`: the job has not ended", body = ErrorBody),
    )
)]
pub async fn rerun(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let body = body::read(&request, payload, MAX_RERUN_BODY, &state.bodies).await?;
    let execute_at = if body.bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        require_json(&request)?;
        rerun_time(read_object(&body.bytes)?)?
    };
    drop(body);
    let services = &state.services;
    let Some((original, _)) = services.store.get_job(id).await? else {
        return Err(ApiError::no_job(id));
    };
    if !original.status.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_not_final",
            format!(
                "job {id} is {}; only a job that has ended can be re-run",
                original.status.as_str()
            ),
        ));
    }
    let job = NewJob {
        id: Uuid::now_v7(),
        name: original.name,
        spec: original.spec,
        execute_at: execute_at.unwrap_or_else(chrono::Utc::now),
        max_retries: original.max_retries,
        timeout_secs: original.timeout_secs,
        metadata: original.metadata,
        retry_backoff: original.retry_backoff,
        rerun_of: Some(id),
        fire: None,
        created_by: super::auth::caller_name(&request),
    };
    check_target(&job.spec, &services.settings)?;
    let job = scheduling::create(services, job).await?;
    services.metrics.jobs_created.inc();
    Ok(created(job))
}

/// The `execute_at` of a re-run's body, the only field it may have.
fn rerun_time(
    body: serde_json::Map<String, Value>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let mut execute_at = None;
    for (field, value) in body {
        match (field.as_str(), value) {
            ("execute_at", Value::Null) => {}
            ("execute_at", Value::String(text)) => execute_at = Some(parse_instant(&text)?),
            ("execute_at", _) => {
                return Err(ApiError::invalid(
                    "execute_at",
                    "invalid_field",
                    "`execute_at` must be an RFC 3339 string",
                ));
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    other,
                    "unknown_field",
                    format!(
                        "`{other}` is not a field of a re-run; the body is {{\"execute_at\": ...}}"
                    ),
                ));
            }
        }
    }
    Ok(execute_at)
}
