//! `/api/v1/jobs`: create, read and list jobs.

use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::body::{self, require_json};
use super::error::ApiError;
use super::job_input::{parse_batch, parse_job, read_object};
use crate::domain::{Job, JobStatus};
use crate::scheduling;
use crate::store::Attempt;

/// A job and its attempts, oldest first: the answer of a create and of a read.
#[derive(Debug, Serialize)]
pub struct JobWithAttempts {
    pub job: Job,
    pub attempts: Vec<Attempt>,
}

/// The answer of a batch create: the new jobs' ids, in the order given.
#[derive(Debug, Serialize)]
pub struct BatchCreated {
    pub ids: Vec<Uuid>,
}

/// A page of jobs, newest first; `next_cursor` fetches the next page.
#[derive(Debug, Serialize)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<Uuid>,
}

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
    let settings = &state.services.settings;
    let body = body::read(&request, body, settings.jobs.max_body_bytes, &state.bodies).await?;
    let new_job = parse_job(read_object(&body.bytes)?, &settings.jobs)?;
    drop(body);
    let services = &state.services;
    let job = scheduling::create(services, new_job).await?;
    services.metrics.jobs_created.inc();
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/jobs/{}", job.id)))
        .json(JobWithAttempts {
            job,
            attempts: Vec::new(),
        }))
}

/// `POST /api/v1/jobs:batch`: up to `jobs.max_batch_size` jobs in one call, all or none.
/// Answers `201` with `{"ids": [...]}` in the order given.
///
/// # Errors
/// 415, 413 (over `jobs.max_batch_body_bytes`), 400 `invalid_batch` listing every invalid
/// job (nothing is stored), 503 when the database is unavailable.
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
    let jobs = web::block(move || parse_batch(&bytes, &shared.jobs))
        .await
        .map_err(|_| ApiError::shutting_down())??;
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    scheduling::create_many(services, jobs).await?;
    services.metrics.jobs_created.inc_by(ids.len() as u64);
    Ok(HttpResponse::Created().json(BatchCreated { ids }))
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
    match state.services.store.get_job(id).await? {
        Some((job, attempts)) => Ok(HttpResponse::Ok().json(JobWithAttempts { job, attempts })),
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
    let jobs = state
        .services
        .store
        .list_jobs(status, cursor, limit)
        .await?;
    let next_cursor = if i64::try_from(jobs.len()).unwrap_or(i64::MAX) == limit {
        jobs.last().map(|job| job.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(JobPage { jobs, next_cursor }))
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
