//! `GET /api/v1/stats`: what the dashboard's overview shows. Jobs by status come from the
//! store, so they are the cluster's; the series are this process's own (`metrics::Trends`).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::AppState;
use super::admin::Actors;
use super::error::ApiError;
use crate::metrics::{SLOT_SECS, TrendPoint};

/// Where each status's count stops: counting reads one index entry per job, so a count is
/// bounded however many jobs the store holds (a dashboard asks every few seconds).
const COUNT_LIMIT: i64 = 10_000;

/// The answer of `GET /api/v1/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The process that answered.
    pub instance: String,
    /// `standalone` or `distributed`.
    pub mode: &'static str,
    /// Jobs of each status now, over every process (every status is present), each counted
    /// up to `count_limit`: a count of `count_limit` means at least that many.
    #[schema(example = json!({"SCHEDULED": 12, "DISPATCHED": 0, "RUNNING": 2, "RETRYING": 0,
        "SUCCESS": 340, "FAILED": 3, "CANCELLED": 1, "SKIPPED": 0}))]
    pub jobs: BTreeMap<&'static str, i64>,
    /// Where a count stops.
    #[schema(example = 10000)]
    pub count_limit: i64,
    /// The seconds each point of `series` covers.
    pub slot_secs: i64,
    /// The last hour of this process's runs, oldest first, one point per slot; the last is
    /// the slot in progress. In the distributed mode, other processes' runs are not in it.
    pub series: Vec<TrendPoint>,
    /// This process's actors, as `GET /api/v1/admin/actors` shows them.
    pub actors: Actors,
}

/// `GET /api/v1/stats`: jobs by status, the last hour of this process's completions,
/// failures and fire lateness, and its actors.
///
/// # Errors
/// 503 when the database is unavailable.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "jobs",
    responses(
        (status = 200, description = "Jobs by status, and this process's last hour", body = Stats),
    )
)]
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let services = &state.services;
    let jobs = services
        .store
        .count_jobs(COUNT_LIMIT)
        .await?
        .into_iter()
        .map(|(status, count)| (status.as_str(), count))
        .collect();
    Ok(HttpResponse::Ok().json(Stats {
        instance: services.instance.to_string(),
        mode: services.settings.backend().as_str(),
        jobs,
        count_limit: COUNT_LIMIT,
        slot_secs: SLOT_SECS,
        series: services.metrics.trends.series(Utc::now()),
        actors: Actors::of(&services.metrics),
    }))
}
