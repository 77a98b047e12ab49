//! Reading jobs back: one with its attempts (through the view `job_history`, migration V9),
//! and pages of them.

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::rows::{ATTEMPT_COLUMNS, JOB_COLUMNS, attempt_row, job_row};
use crate::domain::{Job, JobStatus};
use crate::store::{Attempt, JobFilter, StoreError};

/// The job `id` and its attempts, oldest first; `None` when there is no such job.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn get(pool: &Pool, id: Uuid) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    let Some(row) = client.query_opt(&statement, &[&id]).await? else {
        return Ok(None);
    };
    let job = job_row(&row)?.into_job()?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM job_history WHERE job_id = $1 ORDER BY attempt"
        ))
        .await?;
    let attempts = client
        .query(&statement, &[&id])
        .await?
        .iter()
        .map(|row| attempt_row(row)?.into_attempt())
        .collect::<Result<_, StoreError>>()?;
    Ok(Some((job, attempts)))
}

/// Up to `limit` jobs, newest first, those `filter` lets through (a status as shown, a
/// schedule), starting after the job `after` (keyset pagination: the cursor is the last id of
/// the previous page).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn list(
    pool: &Pool,
    filter: JobFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    // UUIDv7 ids grow with creation time: ordering by id is ordering by age, and a creation
    // time range is an id range. Each branch reads the listing index `(status, id)` backwards
    // from the cursor, or a schedule's `(schedule_id, id)`.
    let branches = status_branches(filter.status);
    let (low, high) = filter.id_range(after);
    let pattern = filter.name_pattern();
    let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&high, &limit, &low];
    let mut conditions = String::new();
    if let Some(schedule_id) = &filter.schedule_id {
        parameters.push(schedule_id);
        conditions.push_str(&format!("schedule_id = ${} AND ", parameters.len()));
    }
    if let Some(pattern) = &pattern {
        parameters.push(pattern);
        conditions.push_str(&format!("name ILIKE ${} AND ", parameters.len()));
    }
    let selects: Vec<String> = branches
        .iter()
        .map(|branch| {
            format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE {conditions}{branch} \
                 AND id < $1 AND id >= $3 ORDER BY id DESC LIMIT $2"
            )
        })
        .collect();
    let query = match selects.as_slice() {
        [select] => select.clone(),
        _ => format!(
            "({}) ORDER BY id DESC LIMIT $2",
            selects.join(") UNION ALL (")
        ),
    };
    let client = pool.get().await?;
    let statement = client.prepare_cached(&query).await?;
    let rows = client.query(&statement, &parameters).await?;
    rows.iter().map(|row| job_row(row)?.into_job()).collect()
}

/// The conditions whose rows, together, are the jobs showing `status` (all of them for
/// `None`); each reads the listing index `(status, id)`. `RUNNING` merges two: a claimed run
/// keeps its row `DISPATCHED`.
fn status_branches(status: Option<JobStatus>) -> Vec<String> {
    match status {
        None => vec!["true".into()],
        Some(JobStatus::Running) => vec![
            "status = 'RUNNING'".into(),
            "status = 'DISPATCHED' AND run_lease_until IS NOT NULL".into(),
        ],
        Some(JobStatus::Dispatched) => {
            vec!["status = 'DISPATCHED' AND run_lease_until IS NULL".into()]
        }
        Some(other) => vec![format!("status = '{}'", other.as_str())],
    }
}

/// How many jobs there are of each status, as shown, in the order of [`JobStatus::ALL`],
/// each counted up to `up_to` (one statement; each count reads at most `up_to` entries of
/// the listing index per branch).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn count(pool: &Pool, up_to: i64) -> Result<Vec<(JobStatus, i64)>, StoreError> {
    let columns: Vec<String> = JobStatus::ALL
        .iter()
        .map(|status| {
            status_branches(Some(*status))
                .iter()
                .map(|branch| {
                    format!(
                        "(SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {branch} LIMIT $1) \
                         AS counted)"
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("SELECT {}", columns.join(", ")))
        .await?;
    let row = client.query_one(&statement, &[&up_to]).await?;
    JobStatus::ALL
        .iter()
        .enumerate()
        .map(|(column, status)| Ok((*status, row.try_get::<_, i64>(column)?.min(up_to))))
        .collect()
}
