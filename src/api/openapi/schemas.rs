//! The shapes of request bodies, for the OpenAPI description. Kairos reads its bodies with
//! its own checks (`job_input`, `schedule_input`), which name the field at fault; these types
//! describe what those checks accept, and the test command's schemathesis run holds the two
//! together. Answers are described by the types the handlers serialise.

#![allow(dead_code, reason = "read only by the OpenAPI derive")]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{JobKind, Overlap};

/// A job to create: `execute_at`, a `kind` (default `shell`) and that kind's fields. A field
/// of another kind is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "nightly report", "command": "make report",
    "execute_at": "2026-12-24T18:00:00Z", "max_retries": 3, "metadata": {"team": "data"}}))]
pub struct JobRequest {
    /// RFC 3339 with an offset, years 0001 to 9999; a time in the past means now.
    pub execute_at: DateTime<Utc>,
    #[serde(flatten)]
    pub template: JobTemplateRequest,
}

/// Every field of a job but its time: the template of a schedule's jobs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct JobTemplateRequest {
    /// At most 200 characters, no NUL.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub kind: Option<JobKind>,
    /// `shell`: the command, run with `/bin/sh -c`.
    pub command: Option<String>,
    /// `http`: an `http://` or `https://` URL.
    pub url: Option<String>,
    /// `http`: `GET`, `POST` (default), `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    pub method: Option<String>,
    /// `http` and `kafka`: header names to values.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`: a string sent as given, or JSON sent compact.
    pub body: Option<Value>,
    /// `http`: `[low, high]`, the statuses that count as success (default `[200, 299]`).
    pub success_status: Option<[u16; 2]>,
    /// `kafka`: the topic to publish to (not one of Kairos's own).
    pub topic: Option<String>,
    /// `kafka`: the message key.
    pub key: Option<String>,
    /// `kafka`: a string sent as given, or JSON sent compact.
    pub value: Option<Value>,
    /// Retries after a failed attempt, 0 to 10 (default 3).
    #[schema(minimum = 0, maximum = 10)]
    pub max_retries: Option<i32>,
    /// Seconds an attempt may run, 1 to `jobs.max_timeout_secs`.
    #[schema(minimum = 1)]
    pub timeout_secs: Option<i32>,
    /// Any JSON object, at most `jobs.max_metadata_bytes`.
    pub metadata: Option<BTreeMap<String, Value>>,
    pub retry_backoff: Option<RetryBackoffRequest>,
}

/// The wait before retry n is `base × 2^(n-1)`, capped at `max`, scaled by a random factor in
/// `[1 - jitter, 1 + jitter]`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"base": "100ms", "max": "1m", "jitter": 0.25}))]
pub struct RetryBackoffRequest {
    /// A duration as the configuration writes it (`"100ms"`, `"5s"`), above zero.
    pub base: String,
    /// At most `24h`, at least `base`.
    pub max: String,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub jitter: Option<f64>,
}

/// A batch of jobs, created all or none.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// 1 to `jobs.max_batch_size` jobs; each may carry an `idempotency_key`.
    pub jobs: Vec<BatchJobRequest>,
}

/// A job of a batch.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchJobRequest {
    #[serde(flatten)]
    pub job: JobRequest,
    /// Stands for the job first created with it (and the same fields).
    pub idempotency_key: Option<String>,
}

/// The optional body of a re-run.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RerunRequest {
    /// When the new job runs; now when absent.
    pub execute_at: Option<DateTime<Utc>>,
}

/// A schedule to create: exactly one of `cron` and `every`, and the `job` each fire makes.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "hourly sync", "cron": "0 * * * *", "timezone": "Europe/Paris",
    "job": {"command": "sync.sh"}}))]
pub struct ScheduleRequest {
    #[serde(flatten)]
    pub fields: ScheduleFields,
    pub job: JobTemplateRequest,
}

/// The fields of a schedule a change may give (any of them).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduleFields {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// 5 or 6 fields, or a macro such as `@hourly`.
    pub cron: Option<String>,
    /// An interval, at least `1s` (`"15m"`).
    pub every: Option<String>,
    /// The IANA zone the `cron` fields are read in (default `UTC`).
    pub timezone: Option<String>,
    pub overlap: Option<Overlap>,
    #[schema(minimum = 0, maximum = 604800)]
    pub catchup_window_secs: Option<i32>,
    #[schema(minimum = 0, maximum = 86400)]
    pub jitter_secs: Option<i32>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub paused: Option<bool>,
    #[schema(minimum = 0, maximum = 100000)]
    pub keep_last: Option<i32>,
}

/// A change of a schedule: the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SchedulePatch {
    #[serde(flatten)]
    pub fields: ScheduleFields,
    pub job: Option<JobTemplateRequest>,
}

/// The optional body of a pause.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PauseRequest {
    /// Shown as `pause_note`; at most 1,000 characters.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// A past range of a schedule's fires to make.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BackfillRequest {
    pub from: DateTime<Utc>,
    /// At or after `from`, not in the future; at most 1,000 fires in between.
    pub to: DateTime<Utc>,
}

/// The rule to preview: `cron` (with `timezone`) or `every`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewRequest {
    pub cron: Option<String>,
    pub every: Option<String>,
    pub timezone: Option<String>,
    /// Fires from this instant on (default now).
    pub from: Option<DateTime<Utc>>,
    #[schema(minimum = 1, maximum = 1000)]
    pub count: Option<i64>,
}

/// The optional body of a fault injection.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FailRequest {
    /// Panic inside a handler rather than stop.
    pub panic: Option<bool>,
}
