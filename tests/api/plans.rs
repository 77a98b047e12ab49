//! The batch statements of the run ledger and the result writer keep their plans when the
//! table's statistics say that no job is in flight: the state after an `ANALYZE` of a table
//! of finished jobs, with a burst arriving after it. A plan that reads the batch again for
//! each job it finds costs the square of the batch (W1 fell from 17,000 to 6,000 jobs/s).

use chrono::Utc;
use deadpool_postgres::Pool;
use kairos::config::Settings;
use kairos::domain::JobStatus;
use kairos::store::postgres::{self, reports, run_claims};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::helpers::{create_database, drop_database, test_settings};

/// Jobs in flight, one batch of each statement.
const BATCH: i64 = 256;

/// A migrated database holding 20,000 finished jobs, analysed, then [`BATCH`] jobs dispatched
/// and held by no one; returns its settings, a pool on it and the dispatched jobs' ids,
/// sorted as the ledger and the writer sort their batches.
async fn analysed_then_dispatched() -> (Settings, Pool, Vec<Uuid>) {
    let settings = test_settings();
    create_database(&settings.database).await;
    let pool = postgres::connect(&settings.database).expect("a pool");
    postgres::migrate(&pool).await.expect("migrated");
    let client = pool.get().await.expect("connection");
    client
        .batch_execute(
            "INSERT INTO jobs (id, command, execute_at, timeout_secs, kind, status, epoch, \
                 attempts, finished_at, last_outcome) \
             SELECT gen_random_uuid(), '', now(), 300, 'noop', 'SUCCESS', 1, 1, now(), \
                 'SUCCEEDED' \
             FROM generate_series(1, 20000); \
             ANALYZE jobs",
        )
        .await
        .expect("finished jobs, analysed");
    let mut ids: Vec<Uuid> = client
        .query(
            "INSERT INTO jobs (id, command, execute_at, timeout_secs, kind, status, epoch, \
                 claimed_by, claimed_at, lease_until) \
             SELECT gen_random_uuid(), '', now(), 300, 'noop', 'DISPATCHED', 1, 'elsewhere', \
                 now(), now() + interval '1 hour' \
             FROM generate_series(1, $1::int8) \
             RETURNING id",
            &[&BATCH],
        )
        .await
        .expect("dispatched jobs")
        .iter()
        .map(|row| row.get(0))
        .collect();
    ids.sort_unstable();
    (settings, pool, ids)
}

/// Runs `statement` under `EXPLAIN ANALYZE` and rolls it back; returns the plan.
async fn executed_plan(pool: &Pool, statement: &str, parameters: &[&(dyn ToSql + Sync)]) -> Value {
    let mut client = pool.get().await.expect("connection");
    let transaction = client.transaction().await.expect("transaction");
    let row = transaction
        .query_one(
            &format!("EXPLAIN (ANALYZE, FORMAT JSON) {statement}"),
            parameters,
        )
        .await
        .expect("explained");
    let explained: Value = row.get(0);
    transaction.rollback().await.expect("rolled back");
    explained[0]["Plan"].clone()
}

/// The plan's nodes, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut found = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            found.extend(nodes(child));
        }
    }
    found
}

/// The statement changed every job of the batch, reading the batch (`UNNEST`) once.
fn assert_batch_read_once(plan: &Value, statement: &str) {
    let joined = &plan["Plans"][0];
    assert_eq!(
        joined["Actual Rows"].as_i64(),
        Some(BATCH),
        "{statement}: every job of the batch is found\n{plan:#}"
    );
    let batch_reads: Vec<i64> = nodes(plan)
        .into_iter()
        .filter(|node| node["Node Type"] == "Function Scan")
        .map(|node| node["Actual Loops"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(
        batch_reads,
        [1],
        "{statement}: the batch is read once, not once per job\n{plan:#}"
    );
}

#[actix_web::test]
async fn batch_statements_read_their_batch_once_when_statistics_show_nothing_in_flight() {
    let (settings, pool, ids) = analysed_then_dispatched().await;
    let epochs = vec![1_i64; ids.len()];
    let instance = "this-instance";

    let hold = executed_plan(&pool, run_claims::HOLD_RUNS, &[&ids, &epochs, &instance]).await;
    assert_batch_read_once(&hold, "hold");

    let attempts = vec![1_i32; ids.len()];
    let leases = vec![330.0_f64; ids.len()];
    let claim = executed_plan(
        &pool,
        run_claims::CLAIM_RUNS,
        &[&ids, &epochs, &attempts, &leases, &instance],
    )
    .await;
    assert_batch_read_once(&claim, "claim");

    let now = vec![Utc::now(); ids.len()];
    let finished_at: Vec<Option<chrono::DateTime<Utc>>> = now.iter().copied().map(Some).collect();
    let statuses = vec!["SUCCESS"; ids.len()];
    let finished = vec![true; ids.len()];
    let exit_codes = vec![Some(0_i32); ids.len()];
    let nothing: Vec<Option<&str>> = vec![None; ids.len()];
    let outcomes = vec!["SUCCEEDED"; ids.len()];
    let ranks = vec![JobStatus::Success.rank(); ids.len()];
    let retry_lease = 90.0_f64;
    let retry_at: Vec<Option<chrono::DateTime<Utc>>> = vec![None; ids.len()];
    let result = executed_plan(
        &pool,
        &reports::MOVE_JOBS,
        &[
            &ids,
            &epochs,
            &statuses,
            &attempts,
            &now,
            &finished_at,
            &finished,
            &exit_codes,
            &nothing,
            &nothing,
            &retry_lease,
            &nothing,
            &outcomes,
            &ranks,
            &retry_at,
        ],
    )
    .await;
    assert_batch_read_once(&result, "result");

    drop(pool);
    drop_database(&settings.database).await;
}
