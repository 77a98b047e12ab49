//! The scheduling pipeline end to end: create, dispatch, execute, retry, write back.

use std::time::Duration;

use futures_util::future::join_all;
use kairos::domain::{AttemptReport, Dispatch};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    WAIT_LIMIT, assert_started_on_time, in_secs, metric, publish_ignored_report, read_until,
    spawn_app, spawn_app_with, spawn_peer, test_settings, time,
};

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
