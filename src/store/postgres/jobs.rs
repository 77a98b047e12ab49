//! Storing jobs: every statement that inserts into `jobs` (`reads` reads them back).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::rows::{JOB_COLUMNS, dispatch_row, job_row};
use crate::domain::{Dispatch, Job, JobStatus, NewJob};
use crate::store::StoreError;

/// Stores new jobs in one statement, all or none: each `SCHEDULED`, or, with a claim (its
/// `Some(grace)`: it is due within the horizon already scanned), already `DISPATCHED` to
/// `instance` under epoch 1 with a lease until its time plus the grace. Returns each job with
/// its dispatch, in the order given; the caller publishes the dispatches of the jobs it
/// claimed at once (rather than waiting for the next scan).
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses a row.
pub async fn insert_returning(
    pool: &Pool,
    jobs: &[(&NewJob, Option<Duration>)],
    instance: &str,
) -> Result<Vec<(Job, Dispatch)>, StoreError> {
    let rows = insert_rows(pool, jobs, instance).await?;
    let mut inserted: HashMap<Uuid, (Job, Dispatch)> = rows
        .iter()
        .map(|row| {
            let dispatch = dispatch_row(row)?.into_dispatch()?;
            let job = job_row(row)?.into_job()?;
            Ok((job.id, (job, dispatch)))
        })
        .collect::<Result<_, StoreError>>()?;
    jobs.iter()
        .map(|(job, _)| {
            let id = job.id;
            inserted.remove(&id).ok_or_else(|| {
                StoreError::corrupt("jobs.id", format!("{id} (inserted, not returned)"))
            })
        })
        .collect()
}

/// Stores `jobs` with one statement, all or none: each with its claim (a grace) is stored
/// `DISPATCHED` under epoch 1 for `instance` (see [`crate::domain::Dispatch::first`]), each
/// without `SCHEDULED`. The arrays are unnested in the select list, which PostgreSQL walks in
/// step (`FROM UNNEST(...)` would first copy every row into a tuple store); an empty
/// `metadata` travels as NULL, sparing PostgreSQL the parse of `{}` for each row.
const INSERT_JOBS: &str = "\
    INSERT INTO jobs (id, name, command, execute_at, max_retries, timeout_secs, metadata, \
        kind, status, epoch, claimed_by, claimed_at, lease_until, spec, retry_backoff, \
        rerun_of, schedule_id, scheduled_for, overlap, created_by) \
    SELECT id, name, command, execute_at, max_retries, timeout_secs, \
        COALESCE(metadata, '{}'), kind, \
        CASE WHEN claimed_by IS NULL THEN 'SCHEDULED' ELSE 'DISPATCHED' END, \
        CASE WHEN claimed_by IS NULL THEN 0 ELSE 1 END, claimed_by, \
        CASE WHEN claimed_by IS NOT NULL THEN now() END, \
        CASE WHEN claimed_by IS NOT NULL \
            THEN GREATEST(execute_at, now()) + make_interval(secs => grace) END, \
        spec, retry_backoff, rerun_of, schedule_id, scheduled_for, overlap, created_by \
    FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS name, \
        unnest($3::text[]) AS command, unnest($4::timestamptz[]) AS execute_at, \
        unnest($5::int4[]) AS max_retries, unnest($6::int4[]) AS timeout_secs, \
        unnest($7::jsonb[]) AS metadata, unnest($8::text[]) AS kind, \
        unnest($9::text[]) AS claimed_by, unnest($10::float8[]) AS grace, \
        unnest($11::jsonb[]) AS spec, unnest($12::jsonb[]) AS retry_backoff, \
        unnest($13::uuid[]) AS rerun_of, unnest($14::uuid[]) AS schedule_id, \
        unnest($15::timestamptz[]) AS scheduled_for, unnest($16::text[]) AS overlap, \
        unnest($17::text[]) AS created_by) AS t";

/// The columns of [`INSERT_JOBS`], one array each.
struct Columns<'a> {
    ids: Vec<Uuid>,
    names: Vec<Option<&'a str>>,
    commands: Vec<&'a str>,
    times: Vec<DateTime<Utc>>,
    retries: Vec<i32>,
    timeouts: Vec<i32>,
    /// `None` for an empty object.
    metadata: Vec<Option<&'a serde_json::Value>>,
    kinds: Vec<&'static str>,
    claimed_by: Vec<Option<&'a str>>,
    graces: Vec<f64>,
    specs: Vec<Option<serde_json::Value>>,
    backoffs: Vec<Option<serde_json::Value>>,
    reruns: Vec<Option<Uuid>>,
    schedules: Vec<Option<Uuid>>,
    fires: Vec<Option<DateTime<Utc>>>,
    overlaps: Vec<Option<&'static str>>,
    created_by: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(jobs: &[(&'a NewJob, Option<Duration>)], instance: &'a str) -> Self {
        Columns {
            ids: jobs.iter().map(|(job, _)| job.id).collect(),
            names: jobs.iter().map(|(job, _)| job.name.as_deref()).collect(),
            commands: jobs.iter().map(|(job, _)| job.spec.command()).collect(),
            times: jobs.iter().map(|(job, _)| job.execute_at).collect(),
            retries: jobs.iter().map(|(job, _)| job.max_retries).collect(),
            timeouts: jobs.iter().map(|(job, _)| job.timeout_secs).collect(),
            metadata: jobs
                .iter()
                .map(|(job, _)| Some(&job.metadata).filter(|metadata| !is_empty(metadata)))
                .collect(),
            kinds: jobs
                .iter()
                .map(|(job, _)| job.spec.kind().as_str())
                .collect(),
            claimed_by: jobs
                .iter()
                .map(|(_, claim)| claim.map(|_| instance))
                .collect(),
            graces: jobs
                .iter()
                .map(|(_, claim)| claim.map_or(0.0, |grace| grace.as_secs_f64()))
                .collect(),
            specs: jobs
                .iter()
                .map(|(job, _)| job.spec.stored_fields())
                .collect(),
            backoffs: jobs.iter().map(|(job, _)| backoff(job)).collect(),
            reruns: jobs.iter().map(|(job, _)| job.rerun_of).collect(),
            schedules: jobs
                .iter()
                .map(|(job, _)| job.fire.map(|fire| fire.schedule_id))
                .collect(),
            fires: jobs
                .iter()
                .map(|(job, _)| job.fire.map(|fire| fire.scheduled_for))
                .collect(),
            overlaps: jobs
                .iter()
                .map(|(job, _)| job.fire.map(|fire| fire.overlap.as_str()))
                .collect(),
            created_by: jobs
                .iter()
                .map(|(job, _)| job.created_by.as_deref())
                .collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.ids,
            &self.names,
            &self.commands,
            &self.times,
            &self.retries,
            &self.timeouts,
            &self.metadata,
            &self.kinds,
            &self.claimed_by,
            &self.graces,
            &self.specs,
            &self.backoffs,
            &self.reruns,
            &self.schedules,
            &self.fires,
            &self.overlaps,
            &self.created_by,
        ]
    }
}

/// A job's own retry backoff, as stored.
fn backoff(job: &NewJob) -> Option<serde_json::Value> {
    job.retry_backoff
        .as_ref()
        .and_then(|policy| serde_json::to_value(policy).ok())
}

/// Whether `metadata` is `{}`, which travels as NULL (see [`INSERT_JOBS`]).
fn is_empty(metadata: &serde_json::Value) -> bool {
    metadata.as_object().is_some_and(serde_json::Map::is_empty)
}

/// [`insert_returning`]'s statement: the rows inserted, as [`JOB_COLUMNS`] and the dispatch's
/// columns, in no particular order.
async fn insert_rows(
    pool: &Pool,
    jobs: &[(&NewJob, Option<Duration>)],
    instance: &str,
) -> Result<Vec<Row>, StoreError> {
    let client = pool.get().await?;
    insert_rows_on(&client, jobs, instance).await
}

/// [`insert_rows`] on `client` (a transaction's, say).
pub(super) async fn insert_rows_on(
    client: &impl GenericClient,
    jobs: &[(&NewJob, Option<Duration>)],
    instance: &str,
) -> Result<Vec<Row>, StoreError> {
    let columns = Columns::of(jobs, instance);
    let statement = client
        .prepare_cached(&format!(
            "{INSERT_JOBS} RETURNING {JOB_COLUMNS}, lost_attempts"
        ))
        .await?;
    Ok(client.query(&statement, &columns.params()).await?)
}

/// [`insert_rows_on`] for the jobs of schedules' fires: a fire that has a job already (the
/// unique index on `(schedule_id, scheduled_for)`) makes none, and returns no row.
pub(super) async fn insert_fires_on(
    client: &impl GenericClient,
    jobs: &[(&NewJob, Option<Duration>)],
    instance: &str,
) -> Result<Vec<Row>, StoreError> {
    let columns = Columns::of(jobs, instance);
    let statement = client
        .prepare_cached(&format!(
            "{INSERT_JOBS} ON CONFLICT (schedule_id, scheduled_for) \
             WHERE schedule_id IS NOT NULL DO NOTHING RETURNING {JOB_COLUMNS}, lost_attempts"
        ))
        .await?;
    Ok(client.query(&statement, &columns.params()).await?)
}

/// Stores `jobs`, all or none, and returns only when they were created and claimed (the
/// transaction's `now()`, if any job was claimed): the caller knows what it stored (the
/// batch endpoint, whose 10,000 rows would otherwise come back in full).
///
/// The jobs are copied in ([`COPY_JOBS`]), which costs PostgreSQL a fifth less than
/// [`INSERT_JOBS`] (docs/performance.md, items 50 and 51), in one transaction. A claimed
/// job's claim is what [`INSERT_JOBS`] gives it: `now()` is the transaction's start, read
/// first, so its claim and its lease come from the database's clock.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached or refuses a row; nothing is stored.
pub(super) async fn copy_in(
    pool: &Pool,
    jobs: &[(&NewJob, Option<Duration>)],
    instance: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let now: Option<DateTime<Utc>> = if jobs.iter().any(|(_, claim)| claim.is_some()) {
        Some(transaction.query_one("SELECT now()", &[]).await?.get(0))
    } else {
        None
    };
    let sink = transaction.copy_in(COPY_JOBS).await?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_JOBS_TYPES);
    let mut writer = std::pin::pin!(writer);
    for (job, claim) in jobs {
        let claim = claim
            .zip(now)
            .map(|(grace, now)| Claim::new(job, grace, now, instance));
        writer
            .as_mut()
            .write(&[
                &job.id,
                &job.name,
                &job.spec.command(),
                &job.execute_at,
                &job.max_retries,
                &job.timeout_secs,
                &job.metadata,
                &job.spec.kind().as_str(),
                &claim
                    .as_ref()
                    .map_or(JobStatus::Scheduled, |_| JobStatus::Dispatched)
                    .as_str(),
                // The first dispatch's epoch (`Dispatch::first`); 0 before any.
                &claim.as_ref().map_or(0_i64, |_| 1),
                &claim.as_ref().map(|claim| claim.instance),
                &claim.as_ref().map(|claim| claim.at),
                &claim.as_ref().map(|claim| claim.lease_until),
                &job.spec.stored_fields(),
                &backoff(job),
                &job.rerun_of,
                &job.fire.map(|fire| fire.schedule_id),
                &job.fire.map(|fire| fire.scheduled_for),
                &job.fire.map(|fire| fire.overlap.as_str()),
                &job.created_by,
            ])
            .await?;
    }
    writer.finish().await?;
    transaction.commit().await?;
    Ok(now)
}

/// Copies jobs in, in PostgreSQL's binary format ([`COPY_JOBS_TYPES`]): each `SCHEDULED`, or
/// claimed as [`INSERT_JOBS`] claims it; the other columns take their defaults.
const COPY_JOBS: &str = "COPY jobs (id, name, command, execute_at, max_retries, \
     timeout_secs, metadata, kind, status, epoch, claimed_by, claimed_at, lease_until, spec, \
     retry_backoff, rerun_of, schedule_id, scheduled_for, overlap, created_by) \
     FROM STDIN (FORMAT binary)";

/// The types of [`COPY_JOBS`]'s columns, in order.
const COPY_JOBS_TYPES: [Type; 20] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::INT4,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::JSONB,
    Type::JSONB,
    Type::UUID,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
];

/// A job claimed as it is stored, as [`INSERT_JOBS`] claims it at the database's `now`.
struct Claim<'a> {
    instance: &'a str,
    at: DateTime<Utc>,
    /// Its time, or `now` if that has passed, plus the grace. A grace beyond the calendar
    /// gives the latest instant, which PostgreSQL refuses as [`INSERT_JOBS`]'s would be.
    lease_until: DateTime<Utc>,
}

impl<'a> Claim<'a> {
    fn new(job: &NewJob, grace: Duration, now: DateTime<Utc>, instance: &'a str) -> Self {
        let lease_until = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|grace| job.execute_at.max(now).checked_add_signed(grace))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Claim {
            instance,
            at: now,
            lease_until,
        }
    }
}
