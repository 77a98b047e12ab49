//! Jobs lost to a crash are found by their lease and run again; stale dispatches never run.
//!
//! A crash is staged in the database: the rows look exactly as a process that died at that
//! point leaves them (the real-process version is the chaos suite, `tests/chaos`).

use std::time::Duration;

use kairos::domain::{AttemptOutcome, AttemptReport, Dispatch, JobStatus};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    TestApp, attempt_statuses, metric, poll_until, publish_ignored_report, spawn_app,
    spawn_app_with, test_settings, time,
};

/// Where a process died, as the rows it leaves show it.
#[derive(Clone, Copy, PartialEq)]
enum Left {
    /// Dispatched; its run never claimed.
    Dispatched,
    /// Its run claimed (the row still says `DISPATCHED`; the run lease makes it `RUNNING`),
    /// no report written: a short attempt cut short.
    Claimed,
    /// Its `RUNNING` report written: a long attempt cut short.
    ReportedRunning,
    /// Its run claimed by a process of the version before migration V8 (the row says
    /// `RUNNING` and has no run lease), as during an upgrade.
    ClaimedByThePreviousVersion,
}

/// Creates a job far in the future, then rewrites it as `left` under epoch 1, its `attempts`
/// started, with a lease that ran out a second ago, as a process that died would leave it.
async fn stage_lost_job(app: &TestApp, left: Left, attempts: i32, lost_attempts: i32) -> Uuid {
    let id = app
        .create_job(&json!({"command": "echo recovered", "execute_at": "2099-01-01T00:00:00Z"}))
        .await;
    let status = match left {
        Left::Dispatched | Left::Claimed => "DISPATCHED",
        Left::ReportedRunning | Left::ClaimedByThePreviousVersion => "RUNNING",
    };
    let run_lease = matches!(left, Left::Claimed | Left::ReportedRunning);
    let reported = left == Left::ReportedRunning;
    let client = app.pool().get().await.expect("connection");
    client
        .execute(
            "UPDATE jobs SET status = $2, epoch = 1, attempts = $3, lost_attempts = $4, \
                 execute_at = now() - interval '5 seconds', lease_until = now() - interval '1 second', \
                 run_lease_until = CASE WHEN $5 THEN now() - interval '1 second' END, \
                 started_at = CASE WHEN $6 THEN now() - interval '4 seconds' END \
             WHERE id = $1",
            &[&id, &status, &attempts, &lost_attempts, &run_lease, &reported],
        )
        .await
        .expect("staged");
    if reported {
        client
            .execute(
                "INSERT INTO job_attempts (job_id, attempt, epoch, status, scheduled_at, started_at) \
                 VALUES ($1, $2, 1, 'RUNNING', now() - interval '5 seconds', now() - interval '4 seconds')",
                &[&id, &attempts],
            )
            .await
            .expect("staged attempt");
    }
    id
}

/// A job claimed but never published (or whose executor died before its time) is dispatched
/// again when its lease runs out, and succeeds.
#[actix_web::test]
async fn a_lost_dispatch_is_dispatched_again() {
    let app = spawn_app().await;
    let id = stage_lost_job(&app, Left::Dispatched, 0, 0).await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["epoch"], 2);
    assert_eq!(done["job"]["attempts"], 1);
    assert_eq!(done["job"]["last_output"], "recovered\n");
}

/// An attempt whose process died mid-run is recorded LOST (not FAILED), the next attempt runs,
/// and the dead executor's late result, from the old epoch, is ignored.
#[actix_web::test]
async fn a_lost_attempt_is_recorded_and_the_job_runs_again() {
    let app = spawn_app().await;
    let id = stage_lost_job(&app, Left::Claimed, 1, 0).await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["attempts"], 2);
    assert_eq!(done["job"]["epoch"], 2);
    assert_eq!(attempt_statuses(&done), ["LOST", "SUCCEEDED"]);
    app.wait_for_metrics("a lost attempt", |text| {
        metric(text, "kairos_attempts_lost_total") == Some(1.0)
    })
    .await;

    // The zombie of epoch 1 reports that attempt 1 failed: it changes nothing.
    let zombie = AttemptReport {
        job_id: id,
        epoch: 1,
        attempt: 1,
        status: JobStatus::Failed,
        outcome: AttemptOutcome::Failed,
        scheduled_at: chrono::Utc::now(),
        started_at: chrono::Utc::now(),
        finished_at: Some(chrono::Utc::now()),
        exit_code: Some(1),
        stdout: None,
        stderr: None,
        error: Some("zombie".into()),
        retry_at: None,
    };
    publish_ignored_report(&app, &zombie).await;
    assert_eq!(app.job(id).await, done);
}

/// A run claimed the way the version before migration V8 claimed it (`RUNNING`, no run
/// lease) is recovered as a lost attempt too: an upgrade loses nothing.
#[actix_web::test]
async fn a_run_claimed_by_the_previous_version_is_recovered_as_lost() {
    let app = spawn_app().await;
    let id = stage_lost_job(&app, Left::ClaimedByThePreviousVersion, 1, 0).await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(
        (&done["job"]["attempts"], &done["job"]["epoch"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(attempt_statuses(&done), ["LOST", "SUCCEEDED"]);
}

/// A job lost more often than `recovery.max_lost_attempts` ends FAILED, saying why.
#[actix_web::test]
async fn a_job_lost_too_often_fails() {
    let app = spawn_app().await;
    let max = app.settings.recovery.max_lost_attempts;
    let id = stage_lost_job(&app, Left::ReportedRunning, max + 1, max).await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "FAILED");
    assert_eq!(
        done["job"]["last_error"],
        format!("lost {} attempts to crashes", max + 1)
    );
    assert_eq!(done["attempts"][0]["status"], "LOST");
}

/// A dispatch of an epoch that is no longer current never runs its command.
#[actix_web::test]
async fn a_stale_dispatch_is_not_run() {
    let app = spawn_app().await;
    let marker = std::env::temp_dir().join(format!("kairos-stale-{}", Uuid::new_v4()));
    let id = app.create_job(&json!({"command": format!("touch {}", marker.display()), "execute_at": "2099-01-01T00:00:00Z"})).await;
    let stale = Dispatch {
        job_id: id,
        epoch: 0,
        attempt: 1,
        failures: 0,
        spec: kairos::domain::JobSpec::Shell(kairos::domain::ShellSpec {
            command: format!("touch {}", marker.display()),
        }),
        execute_at: chrono::Utc::now(),
        max_retries: 0,
        timeout_secs: 10,
        created_at: None,
        retry_backoff: None,
        fire: None,
    };
    let payload = serde_json::to_vec(&stale).expect("JSON");
    app.publish(&app.settings.kafka.topic.jobs, &id.to_string(), &payload)
        .await;
    app.wait_for_metrics("the stale dispatch superseded", |text| {
        metric(text, "kairos_dispatches_superseded_total") == Some(1.0)
    })
    .await;
    assert!(!marker.exists(), "a stale dispatch ran its command");
    assert_eq!(app.job(id).await["job"]["status"], "SCHEDULED");
}

/// A process that died between claiming a job and publishing its dispatch leaves it
/// `DISPATCHED`, held by nobody, on a partition a live dispatcher holds, where no record of it
/// will ever arrive. Once that process is known dead, the job is taken back and runs, long
/// before its lease (its time plus the grace, here a minute) runs out.
#[actix_web::test]
async fn a_dispatch_never_published_by_a_dead_process_runs_at_once() {
    let mut settings = test_settings();
    settings.recovery.grace = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let client = app.pool().get().await.expect("connection");
    let partitions = app.settings.kafka.partitions;
    // Every partition held by this process: the rule on unheld partitions does not apply.
    poll_until(
        "this process's dispatcher holding every partition",
        || async {
            client
                .query_one(
                    "SELECT cardinality(dispatch_partitions) FROM instances WHERE id = $1",
                    &[&app.instance],
                )
                .await
                .map(|row| row.get::<_, i32>(0))
                .ok()
        },
        |held| *held == Some(partitions),
    )
    .await;
    let id = app
        .create_job(&json!({"command": "echo taken back", "execute_at": "2099-01-01T00:00:00Z"}))
        .await;
    // The rows a process leaves when it dies right after its claim: its heartbeat stopped a
    // few seconds ago and its lock is gone; the job is dispatched, due now, its lease ahead.
    client
        .execute(
            "INSERT INTO instances (id, heartbeat_at, lock_key, dispatch_partitions) \
             VALUES ('kairos-gone', now() - interval '5 seconds', 1, '{}')",
            &[],
        )
        .await
        .expect("a dead process");
    let lease_until: chrono::DateTime<chrono::Utc> = client
        .query_one(
            "UPDATE jobs SET status = 'DISPATCHED', epoch = 1, claimed_by = 'kairos-gone', \
                 claimed_at = now() - interval '5 seconds', execute_at = now(), \
                 lease_until = now() + interval '60 seconds' \
             WHERE id = $1 RETURNING lease_until",
            &[&id],
        )
        .await
        .expect("staged")
        .get(0);
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["epoch"], 2);
    assert_eq!(done["job"]["last_output"], "taken back\n");
    assert!(
        time(&done["job"]["started_at"]) < lease_until - chrono::Duration::seconds(30),
        "taken back only as its lease ran out: {done}"
    );
}
