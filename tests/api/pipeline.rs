//! The scheduling pipeline end to end: create, dispatch, execute, retry, write back.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kairos::bus::kafka;
use kairos::domain::{AttemptReport, Dispatch};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    POLL, TestApp, WAIT_LIMIT, assert_started_on_time, ignored_reports, in_secs, metric,
    publish_ignored_report, read_until, spawn_app, spawn_app_with, spawn_peer, test_settings, time,
};

/// Records published in numbers wait up to `kafka.linger_ms` to share a batch, but a job
/// created alone and due now is published at once: its create, which answers once the broker
/// holds the dispatch, answers before a second's linger would have let a batched record go;
/// and the job runs.
#[actix_web::test]
async fn a_job_created_alone_is_published_without_waiting_for_the_linger() {
    let mut settings = test_settings();
    settings.kafka.linger_ms = 1000;
    let app = spawn_app_with(settings).await;
    let linger = Duration::from_millis(app.settings.kafka.linger_ms);

    let asked = Instant::now();
    let id = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(0.0)}))
        .await;
    let answered = asked.elapsed();
    assert!(answered < linger, "the create answered after {answered:?}");
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
}

/// A job due in 2 s runs once, at its time (not at the next 60 s scan, and never early), ends
/// SUCCESS with its output, and both topics carry its records: an attempt that ends within
/// `executor.running_report_after` reports only its result.
#[actix_web::test]
async fn a_job_due_in_two_seconds_runs_once_on_time() {
    let app = spawn_app().await;
    assert_eq!(app.settings.scanner.interval, Duration::from_secs(60));
    let id = app
        .create_job(
            &json!({"command": "echo hello from $KAIROS_JOB_ID", "execute_at": in_secs(2.0)}),
        )
        .await;

    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["attempts"], 1);
    assert_eq!(done["job"]["last_output"], format!("hello from {id}\n"));
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status"], "SUCCEEDED");
    assert_eq!(attempts[0]["exit_code"], 0);
    assert_started_on_time(&done);

    let key = id.to_string();
    let dispatches = read_until(&app.settings, &app.settings.kafka.topic.jobs, |records| {
        records.iter().any(|(k, _)| k.as_deref() == Some(&key))
    })
    .await;
    let dispatch: Dispatch = serde_json::from_slice(&dispatches[0].1).expect("a dispatch");
    assert_eq!(
        (dispatch.job_id, dispatch.epoch, dispatch.attempt),
        (id, 1, 1)
    );
    let reports = read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| !records.is_empty(),
    )
    .await;
    assert_eq!(report_statuses(&reports), ["SUCCESS"]);
}

/// An attempt still running after `executor.running_report_after` appears in the job's
/// history as `RUNNING` while it runs, then with its result.
#[actix_web::test]
async fn a_long_attempt_appears_in_the_history_while_it_runs() {
    let app = spawn_app().await;
    let after = app.settings.executor.running_report_after;
    let command = format!("sleep {}", (after * 4).as_secs_f64());
    let id = app
        .create_job(&json!({"command": command, "execute_at": in_secs(0.0)}))
        .await;
    let running = app
        .wait_for_job(id, |job| job["attempts"][0]["status"] == "RUNNING")
        .await;
    assert_eq!(running["job"]["status"], "RUNNING");
    assert!(running["attempts"][0]["finished_at"].is_null());
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["attempts"][0]["status"], "SUCCEEDED");
    assert_eq!(
        done["attempts"][0]["started_at"],
        running["attempts"][0]["started_at"]
    );
    let reports = read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| records.len() >= 2,
    )
    .await;
    assert_eq!(report_statuses(&reports), ["RUNNING", "SUCCESS"]);
}

/// A job whose run is claimed (here a minute ahead of its time) shows `RUNNING`, and is
/// listed as `RUNNING` and not as `DISPATCHED`, before any report of it is written: the row
/// still says `DISPATCHED` then, and the run lease makes it `RUNNING` (migration V8).
#[actix_web::test]
async fn a_claimed_run_shows_and_lists_as_running() {
    let mut settings = test_settings();
    settings.executor.claim_ahead = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let id = app
        .create_job(&json!({"command": "true", "execute_at": in_secs(30.0)}))
        .await;
    let claimed = app
        .wait_for_job(id, |job| job["job"]["status"] == "RUNNING")
        .await;
    assert_eq!(claimed["attempts"], json!([]));
    let listed = |status: &'static str| {
        let app = &app;
        async move {
            let page: serde_json::Value = app
                .get(&format!("/api/v1/jobs?status={status}"))
                .await
                .json()
                .await
                .expect("JSON");
            page["jobs"]
                .as_array()
                .expect("jobs")
                .iter()
                .map(|job| {
                    (
                        job["id"].as_str().unwrap_or("").to_owned(),
                        job["status"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("RUNNING").await,
        [(id.to_string(), json!("RUNNING"))]
    );
    assert_eq!(listed("DISPATCHED").await, []);
}

/// A job that ends with its only attempt, before that attempt reports `RUNNING`, keeps the
/// attempt in its own row (no `job_attempts` row is written, migration V9): its history still
/// shows the attempt whole, and a late `RUNNING` report of it changes nothing.
#[actix_web::test]
async fn a_single_quick_attempt_is_shown_whole_and_a_late_report_changes_nothing() {
    let app = spawn_app().await;
    let id = app
        .create_job(&json!({
            "command": "echo out; echo err >&2; exit 4",
            "max_retries": 0,
            "execute_at": in_secs(0.0),
        }))
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "FAILED");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(
        (
            &attempt["attempt"],
            &attempt["epoch"],
            &attempt["status"],
            &attempt["exit_code"]
        ),
        (&json!(1), &json!(1), &json!("FAILED"), &json!(4))
    );
    assert_eq!(
        (&attempt["stdout"], &attempt["stderr"]),
        (&json!("out\n"), &json!("err\n"))
    );
    assert_eq!(attempt["started_at"], done["job"]["started_at"]);
    assert!(!attempt["finished_at"].is_null());
    let client = app.pool().get().await.expect("connection");
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM job_attempts WHERE job_id = $1",
            &[&id],
        )
        .await
        .expect("counted")
        .get(0);
    assert_eq!(rows, 0, "the attempt is kept in the job's row");

    let reports = read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| !records.is_empty(),
    )
    .await;
    let mut late: AttemptReport = serde_json::from_slice(&reports[0].1).expect("a report");
    late.status = kairos::domain::JobStatus::Running;
    late.outcome = kairos::domain::AttemptOutcome::Running;
    (
        late.finished_at,
        late.exit_code,
        late.stdout,
        late.stderr,
        late.error,
    ) = (None, None, None, None, None);
    publish_ignored_report(&app, &late).await;
    assert_eq!(app.job(id).await, done);
}

fn report_statuses(reports: &[crate::helpers::Record]) -> Vec<String> {
    reports
        .iter()
        .map(|(_, payload)| {
            serde_json::from_slice::<AttemptReport>(payload)
                .expect("a report")
                .status
                .as_str()
                .to_owned()
        })
        .collect()
}

/// A command running past its timeout is killed with its children, and the attempt is
/// recorded as timed out.
#[actix_web::test]
async fn a_command_past_its_timeout_is_killed_with_its_children() {
    let app = spawn_app().await;
    let pid_file = std::env::temp_dir().join(format!("kairos-timeout-{}", Uuid::new_v4()));
    let command = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let id = app.create_job(&json!({"command": command, "execute_at": in_secs(0.0), "timeout_secs": 1, "max_retries": 0})).await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "FAILED");
    assert_eq!(done["attempts"][0]["status"], "TIMED_OUT");
    assert!(
        done["attempts"][0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("timed out"))
    );

    let child = std::fs::read_to_string(&pid_file).expect("the command wrote its child's pid");
    std::fs::remove_file(&pid_file).ok();
    let stat = format!("/proc/{}/stat", child.trim());
    // The kill happened before the result was reported; a zombie awaiting its reaper is dead.
    let alive = std::fs::read_to_string(&stat).is_ok_and(|stat| !stat.contains(") Z "));
    assert!(
        !alive,
        "the timed-out job's child {} still runs",
        child.trim()
    );
}

/// The same dispatch published twice more runs the command once; repeated and stale reports
/// leave a finished job as it is.
#[actix_web::test]
async fn duplicates_and_stale_reports_change_nothing() {
    let app = spawn_app().await;
    let runs = std::env::temp_dir().join(format!("kairos-runs-{}", Uuid::new_v4()));
    let command = format!("echo run >> {}", runs.display());
    let id = app
        .create_job(&json!({"command": command, "execute_at": in_secs(1.5)}))
        .await;

    // Deliver the same dispatch twice more, while the job waits for its time.
    let key = id.to_string();
    let records = read_until(&app.settings, &app.settings.kafka.topic.jobs, |records| {
        records.iter().any(|(k, _)| k.as_deref() == Some(&key))
    })
    .await;
    for _ in 0..2 {
        app.publish(&app.settings.kafka.topic.jobs, &key, &records[0].1)
            .await;
    }
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    app.wait_for_metrics("two duplicate dispatches", |text| {
        metric(text, "kairos_dispatches_duplicate_total") == Some(2.0)
    })
    .await;
    let lines = std::fs::read_to_string(&runs).expect("the command ran");
    std::fs::remove_file(&runs).ok();
    assert_eq!(lines, "run\n", "the command ran more than once");

    // Replay every report of the job, then a report of an older dispatch.
    let reports = read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| !records.is_empty(),
    )
    .await;
    let mut stale: AttemptReport = serde_json::from_slice(&reports[0].1).expect("a report");
    stale.epoch = 0;
    stale.status = kairos::domain::JobStatus::Failed;
    let stale = serde_json::to_vec(&stale).expect("JSON");
    let mut replays: Vec<&[u8]> = reports
        .iter()
        .map(|(_, payload)| payload.as_slice())
        .collect();
    replays.push(&stale);
    let ignored_before = ignored_reports(&app).await;
    for payload in &replays {
        app.publish(&app.settings.kafka.topic.updated_jobs, &key, payload)
            .await;
    }
    // The first delivery of each report was applied; every replay is ignored. (At least as
    // many: the writer's consumer may itself be handed records again after a rejoin.)
    let expected = ignored_before + replays.len() as f64;
    app.wait_for_metrics("the replays ignored", |text| {
        metric(text, "kairos_reports_ignored_total").is_some_and(|ignored| ignored >= expected)
    })
    .await;
    let after = app.job(id).await;
    assert_eq!(after["job"]["status"], "SUCCESS");
    assert_eq!(after["job"]["updated_at"], done["job"]["updated_at"]);
    assert_eq!(after["attempts"], done["attempts"]);
}

/// Malformed records on either topic reach its dead-letter topic, and good jobs still run.
#[actix_web::test]
async fn malformed_records_go_to_the_dead_letter_topics() {
    let app = spawn_app().await;
    for topic in [
        &app.settings.kafka.topic.jobs,
        &app.settings.kafka.topic.updated_jobs,
    ] {
        app.publish(topic, "garbage", b"{not json").await;
    }
    let id = app
        .create_job(&json!({"command": "true", "execute_at": in_secs(0.0)}))
        .await;
    assert_eq!(
        app.wait_until_finished(id).await["job"]["status"],
        "SUCCESS"
    );

    for topic in [
        &app.settings.kafka.topic.jobs,
        &app.settings.kafka.topic.updated_jobs,
    ] {
        let dead = read_until(&app.settings, &format!("{topic}.dlt"), |records| {
            !records.is_empty()
        })
        .await;
        assert_eq!(dead[0].0.as_deref(), Some("garbage"));
        assert_eq!(dead[0].1, b"{not json");
    }
}

/// A record compressed with zstd, as Kairos's producers wrote them before they turned to LZ4,
/// is still read after an upgrade: this malformed one reaches the dead-letter topic intact.
/// (Built without rdkafka's `zstd` feature, librdkafka refuses this test's producer, and its
/// consumers cannot decompress such a batch.)
#[actix_web::test]
async fn a_zstd_compressed_record_from_an_earlier_release_is_still_read() {
    let app = spawn_app().await;
    let earlier_release: FutureProducer = kafka::client_config(&app.settings.kafka)
        .set("compression.type", "zstd")
        .create()
        .expect("a zstd producer");
    let topic = &app.settings.kafka.topic.jobs;
    earlier_release
        .send(
            FutureRecord::to(topic)
                .key("zstd")
                .payload(b"{zstd, not json"),
            WAIT_LIMIT,
        )
        .await
        .expect("published");

    let dead = read_until(&app.settings, &format!("{topic}.dlt"), |records| {
        !records.is_empty()
    })
    .await;
    assert_eq!(dead[0].0.as_deref(), Some("zstd"));
    assert_eq!(dead[0].1, b"{zstd, not json");
}

/// 1,000 jobs created over a few seconds, all due within the next minute, all end SUCCESS.
#[actix_web::test]
async fn a_thousand_jobs_all_succeed() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for wave in 0..10 {
        let creations = (0..100).map(|n| {
            let due = in_secs(f64::from(wave) + f64::from(n) / 100.0 + 1.0);
            let app = &app;
            async move {
                app.create_job(&json!({"command": "true", "execute_at": due}))
                    .await
            }
        });
        ids.extend(join_all(creations).await);
    }
    assert_eq!(ids.len(), 1000);
    let client = app.pool().get().await.expect("connection");
    let deadline = std::time::Instant::now() + WAIT_LIMIT * 4;
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'SUCCESS'), count(*) FROM jobs",
                &[],
            )
            .await
            .expect("count");
        let (succeeded, total): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(total, 1000);
        if succeeded == 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {succeeded} of 1000 jobs succeeded in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two processes of one deployment share the work: each of their consumers holds half of its
/// topic's partitions (4 each, by default), as `kairos_consumer_partitions` shows, and jobs
/// keyed across the partitions run in both processes and all succeed.
#[actix_web::test]
async fn two_processes_share_the_partitions_and_the_jobs() {
    let first = spawn_app().await;
    let second = spawn_peer(&first).await;
    assert_eq!(first.settings.kafka.partitions, 4);
    let half = |text: &str| {
        ["dispatcher", "result_writer"].iter().all(|consumer| {
            let name = format!("kairos_consumer_partitions{{consumer=\"{consumer}\"}}");
            metric(text, &name) == Some(2.0)
        })
    };
    first.wait_for_metrics("half of the partitions", half).await;
    second
        .wait_for_metrics("half of the partitions", half)
        .await;

    let jobs: Vec<_> = (0..40)
        .map(|_| json!({"command": "true", "execute_at": in_secs(0.0)}))
        .collect();
    let response = first.post_batch(&json!({ "jobs": jobs })).await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.expect("JSON");
    let ids = created["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 40);
    for id in ids {
        let id = id.as_str().and_then(|id| Uuid::parse_str(id).ok());
        let done = first.wait_until_finished(id.expect("a job id")).await;
        assert_eq!(done["job"]["status"], "SUCCESS");
    }
    for app in [&first, &second] {
        let text = app.get("/metrics").await.text().await.expect("text");
        let ran = metric(&text, "kairos_jobs_succeeded_total").unwrap_or(0.0);
        assert!(ran >= 1.0, "a process ran none of the 40 jobs");
    }
}

/// With `executor.max_due_executors` at 1, a due job waits while another due job's executor
/// lives: it shows in `kairos_dispatch_queued`, starts only once the first has ended, and runs
/// once. It waits longer than the recovery grace, so its lease runs out meanwhile; being held
/// by this process, it is not taken for lost and dispatched again: it runs under its first
/// dispatch.
#[actix_web::test]
async fn a_due_job_beyond_the_executor_window_waits_its_turn_and_is_not_taken_for_lost() {
    let mut settings = test_settings();
    settings.executor.max_due_executors = 1;
    let app = spawn_app_with(settings).await;
    let outlasting_the_grace = app.settings.recovery.grace.as_secs() + 2;
    let first = app
        .create_job(&json!({"command": format!("sleep {outlasting_the_grace}"), "execute_at": in_secs(0.0)}))
        .await;
    app.wait_for_job(first, |job| job["job"]["status"] == "RUNNING")
        .await;
    let second_id = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(0.0)}))
        .await;
    app.wait_for_metrics("the second job queued", |text| {
        metric(text, "kairos_dispatch_queued") == Some(1.0)
    })
    .await;

    let second = app.wait_until_finished(second_id).await;
    let first = app.wait_until_finished(first).await;
    assert_eq!(first["job"]["status"], "SUCCESS");
    assert_eq!(second["job"]["status"], "SUCCESS");
    assert_eq!(second["attempts"].as_array().map(Vec::len), Some(1));
    assert!(
        time(&second["attempts"][0]["started_at"]) >= time(&first["attempts"][0]["finished_at"]),
        "the queued job started before the first ended: {first} {second}"
    );
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(metric(&text, "kairos_jobs_recovered_total"), Some(0.0));
    assert_eq!(metric(&text, "kairos_dispatch_queued"), Some(0.0));
    let epoch: i64 = app
        .query_value("SELECT epoch FROM jobs WHERE id = $1", &[&second_id])
        .await;
    assert_eq!(epoch, 1, "the queued job was dispatched again");
}

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
        .publisher
        .bus()
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
