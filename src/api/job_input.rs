//! Reading and checking the bodies of job-creating requests, so that every problem is
//! answered with the field it is about.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ApiError;
use crate::config::JobSettings;
use crate::domain::{JobKind, NewJob};

/// The fields a job may carry.
const FIELDS: [&str; 7] = [
    "name",
    "kind",
    "command",
    "execute_at",
    "max_retries",
    "timeout_secs",
    "metadata",
];
const MAX_RETRIES: std::ops::RangeInclusive<i64> = 0..=10;
const DEFAULT_MAX_RETRIES: i32 = 3;
const MAX_NAME_CHARS: usize = 200;

pub fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
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

pub async fn read_limited(mut body: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
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

/// Parses a body as a JSON object.
///
/// # Errors
/// 400 `invalid_json` or `invalid_body`.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body must be a JSON object",
        )),
    }
}

/// Checks one job's fields, so that each problem names its field.
///
/// # Errors
/// 400 naming the field at fault.
pub fn parse_job(fields: &Map<String, Value>, limits: &JobSettings) -> Result<NewJob, ApiError> {
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

    let kind = match fields.get("kind") {
        None | Some(Value::Null) => JobKind::Shell,
        Some(Value::String(text)) => JobKind::parse(text).ok_or_else(|| {
            ApiError::invalid("kind", "invalid_field", "`kind` must be `shell` or `noop`")
        })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "kind",
                "invalid_field",
                "`kind` must be a string",
            ));
        }
    };
    let command = match fields.get("command") {
        None | Some(Value::Null) if kind == JobKind::Noop => String::new(),
        Some(_) if kind == JobKind::Noop => {
            return Err(ApiError::invalid(
                "command",
                "invalid_field",
                "a `noop` job has no `command`",
            ));
        }
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
    let max_retries = optional_integer(fields, "max_retries", &MAX_RETRIES)?
        .map_or(DEFAULT_MAX_RETRIES, |n| n as i32);
    let timeout_range = 1..=i64::from(limits.max_timeout_secs);
    let timeout_secs = optional_integer(fields, "timeout_secs", &timeout_range)?
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
        kind,
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

/// Checks a batch body `{"jobs": [...]}`: every job, reporting all that are invalid.
///
/// # Errors
/// 400 `invalid_batch` with one entry per invalid job (`index`, `code`, `field`, `message`),
/// or a 400 about the body itself.
pub fn parse_batch(body: &[u8], limits: &JobSettings) -> Result<Vec<NewJob>, ApiError> {
    let mut object = parse_object(body)?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "jobs") {
        return Err(ApiError::invalid(
            unknown,
            "unknown_field",
            format!("`{unknown}` is not a batch field; the body is {{\"jobs\": [...]}}"),
        ));
    }
    let Some(Value::Array(items)) = object.remove("jobs") else {
        return Err(ApiError::invalid(
            "jobs",
            "missing_field",
            "`jobs` must be an array of jobs",
        ));
    };
    if items.is_empty() || items.len() > limits.max_batch_size {
        return Err(ApiError::invalid(
            "jobs",
            "invalid_field",
            format!("`jobs` must hold 1 to {} jobs", limits.max_batch_size),
        ));
    }
    let mut jobs = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = match item {
            Value::Object(fields) => parse_job(fields, limits),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "a job must be a JSON object",
            )),
        };
        match parsed {
            Ok(job) => jobs.push(job),
            Err(error) => problems.push(json!({
                "index": index,
                "code": error.code,
                "field": error.field,
                "message": error.message,
            })),
        }
    }
    if problems.is_empty() {
        return Ok(jobs);
    }
    let mut error = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_batch",
        format!(
            "{} of {} jobs are invalid; nothing was stored",
            problems.len(),
            items.len()
        ),
    );
    error.items = Some(problems);
    Err(error)
}
