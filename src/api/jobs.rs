//! `/api/v1/jobs`: create, read and list jobs.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::actors::scanner::publish_all;
use crate::config::JobSettings;
use crate::domain::{JobStatus, NewJob};
use crate::store;

/// The fields a create request may carry.
const FIELDS: [&str; 6] = [
    "name",
    "command",
    "execute_at",
    "max_retries",
    "timeout_secs",
    "metadata",
];
const MAX_RETRIES: std::ops::RangeInclusive<i64> = 0..=10;
const DEFAULT_MAX_RETRIES: i32 = 3;
const MAX_NAME_CHARS: usize = 200;
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// `POST /api/v1/jobs`: checks the body, stores the job as `SCHEDULED`, answers `201` with a
/// `Location`. A job due inside the horizon already scanned is claimed as it is stored and
/// published at once, so it never waits for the next scan.
///
/// # Errors
/// 415 without a JSON content type, 413 for a body over `jobs.max_body_bytes`, 400 naming the
/// field at fault, 503 when the database is unavailable.
pub async fn create(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let settings = &state.runtime.settings;
    let body = read_limited(body, settings.jobs.max_body_bytes).await?;
    let new_job = parse_new_job(&body, &settings.jobs)?;
    let runtime = &state.runtime;
    let job = if new_job.execute_at < Utc::now() + settings.scanner.horizon() {
        let (job, dispatch) = store::dispatch::insert_dispatched(
            &runtime.pool,
            &new_job,
            &runtime.instance,
            settings.recovery.grace,
        )
        .await?;
        // A dispatch that cannot be published is released for the next scan.
        publish_all(runtime, std::slice::from_ref(&dispatch)).await;
        job
    } else {
        store::jobs::insert(&runtime.pool, &new_job).await?
    };
    runtime.metrics.jobs_created.inc();
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/jobs/{}", job.id)))
        .json(json!({ "job": job, "attempts": [] })))
}

/// `GET /api/v1/jobs/{id}`: the job with its attempt history.
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown one, 503 when the database is unavailable.
pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    match store::jobs::get(&state.runtime.pool, id).await? {
        Some((job, attempts)) => {
            Ok(HttpResponse::Ok().json(json!({ "job": job, "attempts": attempts })))
        }
        None => Err(ApiError::not_found(format!("no job has the id {id}"))),
    }
}

/// The query of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/jobs?status=&limit=&cursor=`: jobs newest first. `next_cursor`, when present,
/// fetches the next page.
///
/// # Errors
/// 400 for an unknown status, a limit outside 1 to 500 or a malformed cursor; 503 when the
/// database is unavailable.
pub async fn list(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let status = match &query.status {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = JobStatus::ALL
                .iter()
                .map(|status| status.as_str())
                .collect();
            ApiError::invalid(
                "status",
                "invalid_status",
                format!("`{text}` is not a status; use one of {}", known.join(", ")),
            )
        })?),
    };
    let limit = match &query.limit {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    "invalid_limit",
                    format!("`limit` must be an integer from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let cursor = match &query.cursor {
        None => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
            ApiError::invalid(
                "cursor",
                "invalid_cursor",
                "`cursor` must be the `next_cursor` of a previous page",
            )
        })?),
    };
    let jobs = store::jobs::list(&state.runtime.pool, status, cursor, limit).await?;
    let next_cursor = if i64::try_from(jobs.len()).unwrap_or(i64::MAX) == limit {
        jobs.last().map(|job| job.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs, "next_cursor": next_cursor })))
}

/// Parses a job id from a path.
///
/// # Errors
/// 400 when `text` is not a UUID.
pub fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::invalid(
            "id",
            "invalid_id",
            format!("`{text}` is not a job id (a UUID)"),
        )
    })
}

fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body must be JSON with `Content-Type: application/json`, not `{content_type}`"
            ),
        ))
    }
}

async fn read_limited(mut body: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("cannot read the body: {error}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Checks a create request field by field, so that each problem names its field.
fn parse_new_job(body: &[u8], limits: &JobSettings) -> Result<NewJob, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(ApiError::invalid(
            unknown,
            "unknown_field",
            format!(
                "`{unknown}` is not a job field; known fields: {}",
                FIELDS.join(", ")
            ),
        ));
    }

    let command = match fields.get("command") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "command",
                "missing_field",
                "`command` is required",
            ));
        }
        Some(Value::String(command)) if command.trim().is_empty() => {
            return Err(ApiError::invalid(
                "command",
                "invalid_field",
                "`command` must not be empty",
            ));
        }
        Some(Value::String(command)) => command.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "command",
                "invalid_field",
                "`command` must be a string",
            ));
        }
    };
    let execute_at = match fields.get("execute_at") {
        None | Some(Value::Null) => return Err(ApiError::invalid("execute_at", "missing_field", "`execute_at` is required")),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|error| {
            ApiError::invalid("execute_at", "invalid_field", format!("`execute_at` must be an RFC 3339 time with an offset, such as 2026-11-27T10:00:00Z ({error})"))
        })?,
        Some(_) => return Err(ApiError::invalid("execute_at", "invalid_field", "`execute_at` must be an RFC 3339 string")),
    };
    let max_retries = optional_integer(&fields, "max_retries", &MAX_RETRIES)?
        .map_or(DEFAULT_MAX_RETRIES, |n| n as i32);
    let timeout_range = 1..=i64::from(limits.max_timeout_secs);
    let timeout_secs = optional_integer(&fields, "timeout_secs", &timeout_range)?
        .map_or(limits.default_timeout_secs, |n| n as i32);
    let name = match fields.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.chars().count() <= MAX_NAME_CHARS => Some(name.clone()),
        Some(Value::String(_)) => {
            return Err(ApiError::invalid(
                "name",
                "invalid_field",
                format!("`name` must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "name",
                "invalid_field",
                "`name` must be a string",
            ));
        }
    };
    let metadata = match fields.get("metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(metadata @ Value::Object(_)) => {
            if metadata.to_string().len() > limits.max_metadata_bytes {
                return Err(ApiError::invalid(
                    "metadata",
                    "metadata_too_large",
                    format!(
                        "`metadata` must be at most {} bytes of JSON",
                        limits.max_metadata_bytes
                    ),
                ));
            }
            metadata.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata",
                "invalid_field",
                "`metadata` must be a JSON object",
            ));
        }
    };
    Ok(NewJob {
        id: Uuid::now_v7(),
        name,
        command,
        execute_at,
        max_retries,
        timeout_secs,
        metadata,
    })
}

fn optional_integer(
    fields: &Map<String, Value>,
    field: &str,
    range: &std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    field,
                    "invalid_field",
                    format!(
                        "`{field}` must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}
