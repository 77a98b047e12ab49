//! Reading and checking the bodies of job-creating requests, so that every problem is
//! answered with the field it is about.

use actix_web::http::StatusCode;
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{ApiError, ItemProblem};
use super::job_fields::{BatchFields, FIELDS, JobFields};
use crate::config::JobSettings;
use crate::domain::{JobKind, JobSpec, NewJob};

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

/// Checks one job's fields, so that each problem names its field.
///
/// # Errors
/// 400 naming the field at fault.
pub fn parse_job(fields: JobFields, limits: &JobSettings) -> Result<NewJob, ApiError> {
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
    let spec = JobSpec::check(kind, fields.command)
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
    Ok(NewJob {
        id: Uuid::now_v7(),
        name,
        spec,
        execute_at,
        max_retries,
        timeout_secs,
        metadata,
    })
}

/// The years an instant may fall in once normalised to UTC: those RFC 3339 can write.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Reads `execute_at`: RFC 3339 with an offset, normalised to UTC, within [`YEARS`] (so that
/// it is written back as it was read, in RFC 3339).
fn parse_instant(text: &str) -> Result<DateTime<Utc>, ApiError> {
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
pub fn parse_batch(body: &[u8], limits: &JobSettings) -> Result<Vec<NewJob>, ApiError> {
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
            Some(fields) => parse_job(fields, limits),
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
mod tests {
    use serde_json::json;

    use super::*;

    fn limits() -> JobSettings {
        JobSettings {
            default_timeout_secs: 3600,
            max_timeout_secs: 86_400,
            max_body_bytes: 65_536,
            max_metadata_bytes: 16_384,
            max_batch_size: 3,
            max_batch_body_bytes: 1 << 20,
        }
    }

    fn batch(body: &str) -> Result<Vec<NewJob>, ApiError> {
        parse_batch(body.as_bytes(), &limits())
    }

    /// The code and field of a refused body, or of each refused job of a batch.
    fn refusal(error: &ApiError) -> Value {
        match &error.items {
            None => json!([error.code, error.field]),
            Some(items) => json!(
                items
                    .iter()
                    .map(|item| json!([item.index, item.code, item.field]))
                    .collect::<Vec<_>>()
            ),
        }
    }

    #[test]
    fn a_batch_body_of_the_wrong_shape_is_refused_naming_the_problem() {
        let cases = [
            ("{\"jobs\": [", json!(["invalid_json", null])),
            ("[]", json!(["invalid_body", null])),
            ("\"jobs\"", json!(["invalid_body", null])),
            ("{}", json!(["missing_field", "jobs"])),
            ("{\"jobs\": null}", json!(["missing_field", "jobs"])),
            (
                "{\"jobs\": {\"kind\": \"noop\"}}",
                json!(["missing_field", "jobs"]),
            ),
            ("{\"jobs\": []}", json!(["invalid_field", "jobs"])),
            (
                "{\"jobs\": [{}, {}, {}, {}]}",
                json!(["invalid_field", "jobs"]),
            ),
            (
                "{\"jobs\": [], \"colour\": 1}",
                json!(["unknown_field", "colour"]),
            ),
            ("{\"jobs\": []} trailing", json!(["invalid_json", null])),
        ];
        for (body, expected) in cases {
            let error = batch(body).expect_err(body);
            assert_eq!(refusal(&error), expected, "{body}");
        }
    }

    #[test]
    fn each_refused_job_of_a_batch_is_named_by_index_and_field() {
        let body = r#"{"jobs": [
            {"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"},
            [1, {"kind": "noop"}],
            {"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "colour": "blue", "size": 1}
        ]}"#;
        let error = batch(body).expect_err("refused");
        assert_eq!(error.code, "invalid_batch");
        assert_eq!(
            refusal(&error),
            json!([[1, "invalid_body", null], [2, "unknown_field", "colour"]])
        );
    }

    #[test]
    fn fields_read_as_a_json_object_reads_them() {
        // An escaped name is the same name; a null reads as absent; a repeated field keeps
        // its last value; metadata keeps its structure.
        let body = r#"{"jobs": [{
            "comm\u0061nd": "echo one", "command": "echo two", "execute_at": "2099-01-01T01:00:00+01:00",
            "name": null, "max_retries": 5, "metadata": {"team": {"name": "billing"}}
        }]}"#;
        let jobs = batch(body).expect("accepted");
        let job = &jobs[0];
        assert_eq!(job.spec.command(), "echo two");
        assert_eq!(job.spec.kind(), JobKind::Shell);
        assert_eq!(job.execute_at.to_rfc3339(), "2099-01-01T00:00:00+00:00");
        assert_eq!(job.name, None);
        assert_eq!((job.max_retries, job.timeout_secs), (5, 3600));
        assert_eq!(job.metadata, json!({"team": {"name": "billing"}}));

        let single: JobFields =
            read_object(br#"{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}"#)
                .expect("an object");
        let job = parse_job(single, &limits()).expect("valid");
        assert_eq!(job.spec, JobSpec::Noop);
        assert_eq!(job.metadata, json!({}));
    }
}
