//! The result writer: batches bounded in count and bytes, writes held up by the store, and
//! what a stopping process writes before it commits.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    POLL, TestApp, WAIT_LIMIT, in_secs, metric, read_until, spawn_app_with, test_settings,
};

/// The result writer writes two batches at once and reads the next one meanwhile, and no
/// further: with its writes held up (the job-history table locked away from them), it holds
/// two written batches and one more full batch, and the other reports wait on the bus. Once
/// the lock goes, every result is written, once. (Batches close on their size alone here, so
/// that the count is exact.)
#[actix_web::test]
async fn the_writer_reads_one_batch_ahead_of_two_held_up_writes_and_no_further() {
    let mut settings = test_settings();
    settings.result_writer.batch_size = 5;
    settings.result_writer.flush_interval = Duration::from_secs(600);
    let app = spawn_app_with(settings).await;
    let pending = |text: &str| metric(text, "kairos_result_writer_pending");
    let mut blocker = app.pool().get().await.expect("connection");
    let lock = blocker.transaction().await.expect("a transaction");
    lock.batch_execute("LOCK TABLE job_attempts IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("locked");
    let noops = |count: usize| -> Vec<serde_json::Value> {
        (0..count)
            .map(|_| json!({"kind": "noop", "execute_at": in_secs(0.0)}))
            .collect()
    };

    assert_eq!(
        app.post_batch(&json!({ "jobs": noops(5) })).await.status(),
        201
    );
    wait_for_a_held_up_write(&app, "%job_attempts%").await;
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(
        pending(&text),
        Some(5.0),
        "the held-up write is the first batch"
    );

    assert_eq!(
        app.post_batch(&json!({ "jobs": noops(15) })).await.status(),
        201
    );
    app.wait_for_metrics("a second write and one more batch read", |text| {
        pending(text) == Some(15.0)
    })
    .await;
    // Every report is on the topic by now; the writer still holds 5 + 5 + 5.
    read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| records.len() >= 20,
    )
    .await;
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(pending(&text), Some(15.0), "the writer read past one batch");

    lock.rollback().await.expect("unlocked");
    let text = app
        .wait_for_metrics("every result written", |text| pending(text) == Some(0.0))
        .await;
    assert_eq!(metric(&text, "kairos_reports_ignored_total"), Some(0.0));
    let succeeded: i64 = app
        .query_value("SELECT count(*) FROM jobs WHERE status = 'SUCCESS'", &[])
        .await;
    assert_eq!(succeeded, 20);
}

/// A batch's write does not wait for the write before it, but its offsets do: with the first
/// batch's write held up (one of its jobs' rows locked away from the writer), the next
/// batch's jobs are recorded `SUCCESS`, while the writer still counts their reports as
/// pending, their offsets not stored. Once the lock goes, nothing is pending. (Batches close
/// on their size alone here: five reports each.)
#[actix_web::test]
async fn a_batch_is_written_past_a_held_up_write_and_acknowledged_after_it() {
    let mut settings = test_settings();
    settings.result_writer.batch_size = 5;
    settings.result_writer.flush_interval = Duration::from_secs(600);
    // The slow job's only report is its result, sent once its row is locked.
    settings.executor.running_report_after = Duration::from_secs(600);
    let app = spawn_app_with(settings).await;
    let pending = |text: &str| metric(text, "kairos_result_writer_pending");
    let written = |text: &str| metric(text, "kairos_reports_written_total");
    let noop = || json!({"kind": "noop", "execute_at": in_secs(0.0)});

    // The first batch: four no-op results, then the slow job's.
    let mut jobs = vec![json!({"command": "sleep 2", "execute_at": in_secs(0.0)})];
    jobs.extend((0..4).map(|_| noop()));
    let response = app.post_batch(&json!({ "jobs": jobs })).await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.expect("JSON");
    let slow: Uuid = created["ids"][0]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an id");
    app.wait_for_job(slow, |job| job["job"]["status"] == "RUNNING")
        .await;
    let mut blocker = app.pool().get().await.expect("connection");
    let lock = blocker.transaction().await.expect("a transaction");
    lock.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", &[&slow])
        .await
        .expect("locked");
    wait_for_a_held_up_write(&app, "UPDATE jobs SET status = r.status%").await;
    let before = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(pending(&before), Some(5.0));

    let jobs: Vec<_> = (0..5).map(|_| noop()).collect();
    create_batch_and_wait_for_success(&app, &jobs).await;
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(
        written(&text),
        written(&before),
        "offsets stored ahead of the held-up write"
    );
    assert_eq!(pending(&text), Some(10.0));

    lock.rollback().await.expect("unlocked");
    let done = app.wait_until_finished(slow).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    let text = app
        .wait_for_metrics("every result written", |text| pending(text) == Some(0.0))
        .await;
    assert_eq!(metric(&text, "kairos_reports_ignored_total"), Some(0.0));
}

/// A batch is written once its records reach `result_writer.batch_bytes`, however few they
/// are: a long output does not wait for the batch's count or its interval.
#[actix_web::test]
async fn a_batch_is_written_once_its_records_reach_its_byte_bound() {
    let mut settings = test_settings();
    settings.result_writer.flush_interval = Duration::from_secs(600);
    settings.result_writer.batch_bytes = 4096;
    let app = spawn_app_with(settings).await;
    assert!(app.settings.result_writer.batch_size > 1);
    let id = app
        .create_job(&json!({
            "command": "head -c 5000 /dev/zero | tr '\\0' x",
            "execute_at": in_secs(0.0),
        }))
        .await;

    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["last_output"], "x".repeat(5000));
}

/// A stopping process writes every result it has read, then commits its offsets, before its
/// stop returns: a result waiting in the writer's open batch when the stop begins is
/// recorded, and the result writers' group stands at the end of the results topic.
#[actix_web::test]
async fn a_stopping_process_writes_what_it_read_before_it_commits() {
    let mut settings = test_settings();
    // The result stays in the open batch until the stop.
    settings.result_writer.flush_interval = Duration::from_secs(600);
    let mut app = spawn_app_with(settings).await;
    let id = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(0.0)}))
        .await;
    app.wait_for_metrics("the result read", |text| {
        metric(text, "kairos_result_writer_pending") == Some(1.0)
    })
    .await;

    app.stop().await;

    let status: String = app
        .query_value("SELECT status FROM jobs WHERE id = $1", &[&id])
        .await;
    assert_eq!(status, "SUCCESS");
    let position = app
        .bus
        .position(
            &app.settings.result_writer.group_id,
            &app.settings.kafka.topic.updated_jobs,
        )
        .await
        .expect("the group's position");
    for (partition, at) in position.partitions {
        if at.end > at.start {
            assert_eq!(
                at.committed,
                Some(at.end),
                "partition {partition} not committed"
            );
        }
    }
}

/// Creates `jobs` with one batch request and waits until each of them reads `SUCCESS`.
async fn create_batch_and_wait_for_success(app: &TestApp, jobs: &[serde_json::Value]) {
    let response = app.post_batch(&json!({ "jobs": jobs })).await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.expect("JSON");
    for id in created["ids"].as_array().expect("ids") {
        let id: Uuid = id.as_str().and_then(|id| id.parse().ok()).expect("an id");
        assert_eq!(
            app.wait_until_finished(id).await["job"]["status"],
            "SUCCESS"
        );
    }
}

/// Waits until a statement of the result writer's (one whose text is `LIKE` `statement`)
/// waits for a lock.
async fn wait_for_a_held_up_write(app: &TestApp, statement: &str) {
    let observer = app.pool().get().await.expect("connection");
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND query LIKE $1",
                &[&statement],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the writer's write never waited for the lock"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Each result is written once even when writes outlast the writer's flush interval: actix
/// fires the interval's missed ticks all at once after a write, and none of them may queue the
/// batch just written again (which showed as ignored reports and a pending count below zero).
#[actix_web::test]
async fn each_result_is_written_once_when_writes_outlast_the_flush_interval() {
    let mut settings = test_settings();
    // Every write outlasts this, so ticks pile up behind each one.
    settings.result_writer.flush_interval = Duration::from_millis(1);
    let app = spawn_app_with(settings).await;
    let now = chrono::Utc::now().to_rfc3339();
    let jobs: Vec<_> = (0..300)
        .map(|_| json!({"kind": "noop", "execute_at": now}))
        .collect();
    create_batch_and_wait_for_success(&app, &jobs).await;
    let text = app
        .wait_for_metrics("no result pending", |text| {
            metric(text, "kairos_result_writer_pending") == Some(0.0)
        })
        .await;
    assert_eq!(
        metric(&text, "kairos_reports_ignored_total"),
        Some(0.0),
        "a result was written more than once"
    );
}
