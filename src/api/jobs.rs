//! `/api/v1/jobs`: create, read and list jobs.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::body::{self, require_json};
use super::error::{ApiError, ErrorBody, ItemProblem};
use super::idempotency;
use super::job_input::{check_target, parse_batch, parse_job, read_object};
use crate::domain::{Job, JobStatus, NewJob};
use crate::scheduling;
use crate::store::{Attempt, JobFilter, Keyed, KeyedCreate};

/// A job and its attempts, oldest first: the answer of a create and of a read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobWithAttempts {
    pub job: Job,
    pub attempts: Vec<Attempt>,
}

/// The answer of a batch create: the new jobs' ids, in the order given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchCreated {
    pub ids: Vec<Uuid>,
}

/// A page of jobs, newest first; `next_cursor` fetches the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<Uuid>,
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// `POST /api/v1/jobs`: checks the body, stores the job as `SCHEDULED`, answers `201` with a
/// `Location`. A job due inside the horizon already scanned is claimed as it is stored and
/// published at once, so it never waits for the next scan. With an `Idempotency-Key` header,
/// the same key and job again answer `200` with the job first created.
///
/// # Errors
/// 415 without a JSON content type, 413 for a body over `jobs.max_body_bytes`, 400 naming the
/// field at fault, 409 `idempotency_key_reused` for a key given before with another job, 503
/// when the database is unavailable.
#[utoipa::path(
    post, path = "/api/v1/jobs", tag = "jobs",
    request_body(content = super::openapi::schemas::JobRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
            description = "The same key and job within `jobs.idempotency_retention` answer 200 with the job first created")),
    responses(
        (status = 201, description = "Created", body = JobWithAttempts,
         headers(("Location" = String, description = "The job's URL"))),
        (status = 200, description = "The job first created with this `Idempotency-Key`", body = JobWithAttempts),
        (status = 400, description = "A field is missing or wrong; `field` names it", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key was given before with another job", body = ErrorBody),
    )
)]
pub async fn create(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let key = idempotency::from_header(&request)?;
    let settings = &state.services.settings;
    let body = body::read(&request, body, settings.jobs.max_body_bytes, &state.bodies).await?;
    let mut new_job = parse_job(read_object(&body.bytes)?, &settings.jobs, false)?.job;
    new_job.created_by = super::auth::caller_name(&request);
    drop(body);
    check_target(&new_job.spec, settings)?;
    let services = &state.services;
    let Some(key) = key else {
        let job = scheduling::create(services, new_job).await?;
        services.metrics.jobs_created.inc();
        return Ok(created(job));
    };
    let key = idempotency::keyed(key, &new_job);
    match scheduling::create_keyed(services, vec![(new_job, Some(key))]).await? {
        KeyedCreate::Reused { .. } => Err(key_reused()),
        KeyedCreate::Stored { jobs, .. } => {
            let (id, fresh) = match jobs.first() {
                Some(Keyed::Created(id)) => (*id, true),
                Some(Keyed::Existing(id)) => (*id, false),
                None => return Err(ApiError::not_found("the job created is gone")),
            };
            let Some((job, attempts)) = services.store.get_job(id).await? else {
                return Err(ApiError::no_job(id));
            };
            if fresh {
                services.metrics.jobs_created.inc();
                Ok(created(job))
            } else {
                Ok(HttpResponse::Ok().json(JobWithAttempts { job, attempts }))
            }
        }
    }
}

/// The `201` of a create, with the job's `Location`.
pub fn created(job: Job) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/jobs/{}", job.id)))
        .json(JobWithAttempts {
            job,
            attempts: Vec::new(),
        })
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        "this idempotency key was given before with another job; use a new key for a new job",
    )
}

/// `POST /api/v1/jobs:batch`: up to `jobs.max_batch_size` jobs in one call, all or none.
/// Answers `201` with `{"ids": [...]}` in the order given. A job with an `idempotency_key`
/// given before with the same job stands for that job (its id is answered; nothing is
/// created again); when every job of the batch does, the answer is `200`.
///
/// # Errors
/// 415, 413 (over `jobs.max_batch_body_bytes`), 400 `invalid_batch` listing every invalid
/// job (nothing is stored), 409 `idempotency_key_reused` naming the job whose key was given
/// before with another job (nothing is stored), 503 when the database is unavailable.
#[utoipa::path(
    post, path = "/api/v1/jobs:batch", tag = "jobs",
    request_body(content = super::openapi::schemas::BatchRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, all of them; ids in the order given", body = BatchCreated),
        (status = 200, description = "Every job stood for one created before with its key", body = BatchCreated),
        (status = 400, description = "`invalid_batch`: `items` lists every invalid job; nothing is stored", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`", body = ErrorBody),
    )
)]
pub async fn create_batch(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let services = &state.services;
    let settings = &services.settings;
    let body = body::read(
        &request,
        body,
        settings.jobs.max_batch_body_bytes,
        &state.bodies,
    )
    .await?;
    // The body's share of the memory budget is held until the jobs are stored: parsed, they
    // take about as much again.
    let (bytes, _held) = body.into_parts();
    // Parsing 10,000 jobs takes tens of milliseconds: on a blocking thread, so that this
    // worker goes on serving the database connections and requests it drives meanwhile.
    let shared = Arc::clone(settings);
    let mut parsed =
        web::block(move || parse_batch(&bytes, &shared.jobs, &|spec| check_target(spec, &shared)))
            .await
            .map_err(|_| ApiError::shutting_down())??;
    let caller = super::auth::caller_name(&request);
    for parsed in &mut parsed {
        parsed.job.created_by.clone_from(&caller);
    }
    if parsed.iter().all(|parsed| parsed.idempotency_key.is_none()) {
        let jobs: Vec<NewJob> = parsed.into_iter().map(|parsed| parsed.job).collect();
        let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
        scheduling::create_many(services, jobs).await?;
        services.metrics.jobs_created.inc_by(ids.len() as u64);
        return Ok(HttpResponse::Created().json(BatchCreated { ids }));
    }
    let jobs = parsed
        .into_iter()
        .map(|parsed| {
            let key = parsed
                .idempotency_key
                .map(|key| idempotency::keyed(key, &parsed.job));
            (parsed.job, key)
        })
        .collect();
    match scheduling::create_keyed(services, jobs).await? {
        KeyedCreate::Reused { index } => {
            let mut error = key_reused();
            error.message = "a job's idempotency key was given before with another job; \
                             nothing was stored"
                .into();
            error.items = Some(vec![ItemProblem {
                index,
                code: "idempotency_key_reused",
                field: Some("idempotency_key".into()),
                message: "this key was given before with another job".into(),
            }]);
            Err(error)
        }
        KeyedCreate::Stored { jobs, .. } => {
            let fresh = jobs
                .iter()
                .filter(|job| matches!(job, Keyed::Created(_)))
                .count();
            services.metrics.jobs_created.inc_by(fresh as u64);
            let ids = jobs
                .into_iter()
                .map(|job| match job {
                    Keyed::Created(id) | Keyed::Existing(id) => id,
                })
                .collect();
            let body = BatchCreated { ids };
            Ok(if fresh == 0 {
                HttpResponse::Ok().json(body)
            } else {
                HttpResponse::Created().json(body)
            })
        }
    }
}

/// `GET /api/v1/jobs/{id}`: the job with its attempt history.
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown one, 503 when the database is unavailable.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The id")),
    responses(
        (status = 200, description = "The job and its attempts, oldest first", body = JobWithAttempts),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    match state.services.store.get_job(id).await? {
        Some((job, attempts)) => Ok(HttpResponse::Ok().json(JobWithAttempts { job, attempts })),
        None => Err(ApiError::no_job(id)),
    }
}

/// The query of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    schedule_id: Option<String>,
    name: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The longest `name` a listing filters by: a job's name is at most this long.
const MAX_NAME_FILTER: usize = 200;

/// `GET /api/v1/jobs?status=&schedule_id=&name=&created_after=&created_before=&limit=&cursor=`:
/// jobs newest first, of one status, one schedule, a name containing a text and created in a
/// time range when given. `next_cursor`, when present, fetches the next page.
///
/// # Errors
/// 400 for an unknown status, a malformed schedule id or time, a name filter too long, a
/// limit outside 1 to 500 or a malformed cursor; 503 when the database is unavailable.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs of this status"),
        ("schedule_id" = Option<String>, Query, description = "Only the jobs of this schedule"),
        ("name" = Option<String>, Query, description = "Only jobs whose name contains this text, in any case (at most 200 characters)"),
        ("created_after" = Option<String>, Query, description = "Only jobs created at or after this RFC 3339 time", example = "2026-12-07T09:00:00Z"),
        ("created_before" = Option<String>, Query, description = "Only jobs created before this RFC 3339 time", example = "2026-12-07T10:00:00Z"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the page before"),
    ),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = JobPage),
        (status = 400, description = "`invalid_query`: an unknown status or parameter, a bad time, name, limit or cursor", body = ErrorBody),
    )
)]
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
    let schedule_id = match &query.schedule_id {
        None => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
            ApiError::invalid(
                "schedule_id",
                "invalid_id",
                format!("`{text}` is not a schedule id (a UUID)"),
            )
        })?),
    };
    let limit = page_limit(query.limit.as_deref())?;
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    if let Some(name) = &query.name
        && (name.chars().count() > MAX_NAME_FILTER || name.contains('\0'))
    {
        return Err(ApiError::invalid(
            "name",
            "invalid_name",
            format!(
                "`name` filters by at most {MAX_NAME_FILTER} characters, none of them NUL (a \
                 name has none)"
            ),
        ));
    }
    let filter = JobFilter {
        status,
        schedule_id,
        name: query.name.clone().filter(|name| !name.is_empty()),
        created_after: time_bound("created_after", query.created_after.as_deref())?,
        created_before: time_bound("created_before", query.created_before.as_deref())?,
    };
    let jobs = state
        .services
        .store
        .list_jobs(filter, cursor, limit)
        .await?;
    let next_cursor = if i64::try_from(jobs.len()).unwrap_or(i64::MAX) == limit {
        jobs.last().map(|job| job.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(JobPage { jobs, next_cursor }))
}

/// A listing's time bound `field`: an RFC 3339 time with an offset.
///
/// # Errors
/// 400 naming `field`.
fn time_bound(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|error| {
                ApiError::invalid(
                    field,
                    "invalid_time",
                    format!(
                        "`{field}` must be an RFC 3339 time with an offset, such as \
                         2026-12-07T09:00:00Z ({error})"
                    ),
                )
            })
    })
    .transpose()
}

/// A page's `limit`: 1 to 500, 50 when absent.
///
/// # Errors
/// 400 naming `limit`.
pub fn page_limit(text: Option<&str>) -> Result<i64, ApiError> {
    match text {
        None => Ok(DEFAULT_PAGE),
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
            }),
    }
}

/// A page's `cursor`: the `next_cursor` of the previous page.
///
/// # Errors
/// 400 naming `cursor`.
pub fn parse_cursor(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::invalid(
            "cursor",
            "invalid_cursor",
            "`cursor` must be the `next_cursor` of a previous page",
        )
    })
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
