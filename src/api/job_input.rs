//! Reading and checking the bodies of job-creating requests, so that every problem is
//! answered with the field it is about.

use actix_web::http::StatusCode;
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{ApiError, ItemProblem};
use super::idempotency;
use super::job_fields::{BatchFields, FIELDS, JobFields};
use crate::config::{JobSettings, Settings};
use crate::domain::{JobKind, JobSpec, NewJob, RetryPolicy};
use crate::runner::http::host_allowed;
use crate::runner::kafka::topic_allowed;

const MAX_RETRIES: std::ops::RangeInclusive<i64> = 0..=10;
const DEFAULT_MAX_RETRIES: i32 = 3;
const MAX_NAME_CHARS: usize = 200;

/// Reads a body as a JSON object of the shape `T` (a job's or a batch's fields).
///
/// # Errors
/// 400 `invalid_json` or `invalid_body`.
pub fn read_object<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        // The shapes accept any JSON inside an object: only a body of another type gets here.
        Category::Data => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body must be a JSON object",
        ),
        Category::Io | Category::Syntax | Category::Eof => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        ),
    })
}

/// The longest `retry_backoff.max` a job may give.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A job checked, with the idempotency key it came with.
#[derive(Debug)]
pub struct Parsed {
    pub job: NewJob,
    pub idempotency_key: Option<String>,
}

/// Checks one job's fields, so that each problem names its field. `idempotency_key` is
/// accepted as a field only in a batch (`in_batch`): a single create takes the header.
///
/// # Errors
/// 400 naming the field at fault.
pub fn parse_job(
    fields: JobFields,
    limits: &JobSettings,
    in_batch: bool,
) -> Result<Parsed, ApiError> {
    if fields.idempotency_key.is_some() && !in_batch {
        return Err(ApiError::invalid(
            "idempotency_key",
            "unknown_field",
            "`idempotency_key` is a field of a batch's jobs; a single create takes the \
             `Idempotency-Key` header",
        ));
    }
    if let Some(unknown) = fields.unknown {
        return Err(ApiError::invalid(
            &unknown,
            "unknown_field",
            format!(
                "`{unknown}` is not a job field; known fields: {}",
                FIELDS.join(", ")
            ),
        ));
    }

    let kind = match fields.kind {
        None => JobKind::Shell,
        Some(Value::String(text)) => JobKind::parse(&text).ok_or_else(|| {
            let kinds: Vec<String> = JobKind::ALL
                .iter()
                .map(|kind| format!("`{}`", kind.as_str()))
                .collect();
            ApiError::invalid(
                "kind",
                "invalid_field",
                format!("`kind` must be one of {}", kinds.join(", ")),
            )
        })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "kind",
                "invalid_field",
                "`kind` must be a string",
            ));
        }
    };
    let spec = JobSpec::check(kind, fields.spec)
        .map_err(|error| ApiError::invalid(error.field, error.code, error.message))?;
    let execute_at = match fields.execute_at {
        None => {
            return Err(ApiError::invalid(
                "execute_at",
                "missing_field",
                "`execute_at` is required",
            ));
        }
        Some(Value::String(text)) => parse_instant(&text)?,
        Some(_) => {
            return Err(ApiError::invalid(
                "execute_at",
                "invalid_field",
                "`execute_at` must be an RFC 3339 string",
            ));
        }
    };
    let max_retries = optional_integer(fields.max_retries, "max_retries", &MAX_RETRIES)?
        .map_or(DEFAULT_MAX_RETRIES, |n| n as i32);
    let timeout_range = 1..=i64::from(limits.max_timeout_secs);
    let timeout_secs = optional_integer(fields.timeout_secs, "timeout_secs", &timeout_range)?
        .map_or(limits.default_timeout_secs, |n| n as i32);
    let name = match fields.name {
        None => None,
        Some(Value::String(name)) if name.contains('\0') => {
            return Err(ApiError::invalid(
                "name",
                "invalid_field",
                "`name` must not contain a NUL character",
            ));
        }
        Some(Value::String(name)) if name.chars().count() <= MAX_NAME_CHARS => Some(name),
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
    let metadata = match fields.metadata {
        None => Value::Object(Map::new()),
        Some(metadata @ Value::Object(_)) => {
            if holds_nul(&metadata) {
                return Err(ApiError::invalid(
                    "metadata",
                    "invalid_field",
                    "`metadata` must not contain a NUL character (\\u0000) in a key or a string",
                ));
            }
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
            metadata
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "metadata",
                "invalid_field",
                "`metadata` must be a JSON object",
            ));
        }
    };
    let retry_backoff = fields.retry_backoff.map(parse_backoff).transpose()?;
    let idempotency_key = fields
        .idempotency_key
        .map(|key| match key {
            Value::String(key) => idempotency::check(&key, "idempotency_key").map(|()| key),
            _ => Err(ApiError::invalid(
                "idempotency_key",
                "invalid_field",
                "`idempotency_key` must be a string",
            )),
        })
        .transpose()?;
    Ok(Parsed {
        job: NewJob {
            id: Uuid::now_v7(),
            name,
            spec,
            execute_at,
            max_retries,
            timeout_secs,
            metadata,
            retry_backoff,
            rerun_of: None,
            fire: None,
            created_by: None,
        },
        idempotency_key,
    })
}

/// Checks that `spec` may reach where it calls or publishes: an `http` job's host is allowed
/// (`runner.http.allowed_hosts`); a `kafka` job has a cluster to publish to, and its topic is
/// not one of Kairos's own and is allowed (`runner.kafka.allowed_topics`).
///
/// # Errors
/// 400 naming the field (or the configuration key) at fault.
pub fn check_target(spec: &JobSpec, settings: &Settings) -> Result<(), ApiError> {
    match spec {
        JobSpec::Http(http) if !host_allowed(&http.url, &settings.runner.http.allowed_hosts) => {
            Err(ApiError::invalid(
                "url",
                "host_not_allowed",
                format!(
                    "`url` calls a host that `runner.http.allowed_hosts` does not list: {}",
                    settings.runner.http.allowed_hosts.join(", ")
                ),
            ))
        }
        JobSpec::Shell(shell) => match settings.runner.shell.refuses(&shell.command) {
            Some((field, code, message)) => Err(ApiError::invalid(field, code, message)),
            None => Ok(()),
        },
        JobSpec::Kafka(_) if settings.job_kafka_servers().is_none() => Err(ApiError::invalid(
            "kind",
            "kafka_not_configured",
            "`kafka` jobs need a Kafka cluster to publish to: set \
             `runner.kafka.bootstrap_servers`",
        )),
        JobSpec::Kafka(kafka) if settings.kafka.topic.all().contains(&kafka.topic) => {
            Err(ApiError::invalid(
                "topic",
                "invalid_field",
                format!("`{}` is one of Kairos's own topics", kafka.topic),
            ))
        }
        JobSpec::Kafka(kafka)
            if !topic_allowed(&kafka.topic, &settings.runner.kafka.allowed_topics) =>
        {
            Err(ApiError::invalid(
                "topic",
                "topic_not_allowed",
                format!(
                    "`topic` names a topic that `runner.kafka.allowed_topics` does not allow: {}",
                    settings.runner.kafka.allowed_topics.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Reads a job's `retry_backoff`: `{"base": "100ms", "max": "1m", "jitter": 0.25}`.
fn parse_backoff(value: Value) -> Result<RetryPolicy, ApiError> {
    let invalid = |problem: String| {
        ApiError::invalid(
            "retry_backoff",
            "invalid_field",
            format!(
                "`retry_backoff` must be {{\"base\": \"100ms\", \"max\": \"1m\", \"jitter\": \
                 0.25}} (jitter optional, from 0 to 1): {problem}"
            ),
        )
    };
    let policy: RetryPolicy =
        serde_json::from_value(value).map_err(|error| invalid(error.to_string()))?;
    if policy.base.is_zero() || policy.base > policy.max {
        return Err(invalid(
            "`base` must be above zero and at most `max`".into(),
        ));
    }
    if policy.max > MAX_BACKOFF {
        return Err(invalid("`max` must be at most 24h".into()));
    }
    if !(0.0..=1.0).contains(&policy.jitter) {
        return Err(invalid("`jitter` must be from 0 to 1".into()));
    }
    Ok(policy)
}

/// The years an instant may fall in once normalised to UTC: those RFC 3339 can write.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Reads `execute_at`: RFC 3339 with an offset, normalised to UTC, within [`YEARS`] (so that
/// it is written back as it was read, in RFC 3339).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| {
            ApiError::invalid(
                "execute_at",
                "invalid_field",
                format!(
                    "`execute_at` must be an RFC 3339 time with an offset, such as \
                     2026-11-27T10:00:00Z ({error})"
                ),
            )
        })?;
    if !YEARS.contains(&at.year()) {
        return Err(ApiError::invalid(
            "execute_at",
            "invalid_field",
            format!(
                "`execute_at` must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z \
                 once in UTC; `{text}` does not"
            ),
        ));
    }
    Ok(at)
}

/// Whether a key or a string anywhere in `value` holds a NUL, which neither store keeps.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn optional_integer(
    value: Option<Value>,
    field: &str,
    range: &std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
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
pub fn parse_batch(
    body: &[u8],
    limits: &JobSettings,
    check: &dyn Fn(&JobSpec) -> Result<(), ApiError>,
) -> Result<Vec<Parsed>, ApiError> {
    let batch: BatchFields = read_object(body)?;
    if let Some(unknown) = batch.unknown {
        return Err(ApiError::invalid(
            &unknown,
            "unknown_field",
            format!("`{unknown}` is not a batch field; the body is {{\"jobs\": [...]}}"),
        ));
    }
    let Some(items) = batch.jobs else {
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
    let count = items.len();
    let mut jobs = Vec::with_capacity(count);
    let mut problems = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let parsed = match item {
            Some(fields) => parse_job(fields, limits, true)
                .and_then(|parsed| check(&parsed.job.spec).map(|()| parsed)),
            None => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "a job must be a JSON object",
            )),
        };
        match parsed {
            Ok(job) => jobs.push(job),
            Err(error) => problems.push(ItemProblem {
                index,
                code: error.code,
                field: error.field,
                message: error.message,
            }),
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
            count
        ),
    );
    error.items = Some(problems);
    Err(error)
}

#[cfg(test)]
mod tests;
