//! The behavioural contract, run against both backends: the standalone mode (SQLite and the
//! in-process bus) and the distributed mode (PostgreSQL and Kafka). A user sees the same
//! answers and the same job histories from either.

use kairos::config::Backend;
use kairos::domain::{AttemptOutcome, AttemptReport, JobStatus};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_started_on_time, attempt_statuses, ignored_reports, in_secs, metric,
    settings_for, spawn_app_with, time,
};

contract!(
    a_created_job_is_stored,
    a_job_runs_once_at_its_time,
    a_failing_job_is_retried_until_it_succeeds,
    an_always_failing_command_ends_failed_after_its_retries,
    listing_pages_newest_first,
    listing_filters_by_name_and_creation_time,
    repeated_and_stale_results_change_nothing,
    bad_input_gets_a_clear_error,
    a_batch_runs_every_job,
);

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(settings_for(backend)).await
}

async fn a_created_job_is_stored(backend: Backend) {
    let app = spawn(backend).await;
    let response = app
        .post_job(&json!({
            "name": "nightly-report",
            "command": "echo report",
            "execute_at": in_secs(3600.0),
            "max_retries": 2,
            "metadata": {"team": "billing"},
        }))
        .await;
    assert_eq!(response.status(), 201);
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("a Location header");
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(created["job"]["status"], "SCHEDULED");

    let job: Value = app.get(&location).await.json().await.expect("JSON");
    assert_eq!(job["job"]["name"], "nightly-report");
    assert_eq!(job["job"]["command"], "echo report");
    assert_eq!(job["job"]["max_retries"], 2);
    assert_eq!(job["job"]["metadata"], json!({"team": "billing"}));
    assert_eq!(job["job"]["execute_at"], created["job"]["execute_at"]);
    assert_eq!(job["attempts"], json!([]));
}

async fn a_job_runs_once_at_its_time(backend: Backend) {
    let app = spawn(backend).await;
    let id = app
        .create_job(&json!({"command": "echo ran $KAIROS_ATTEMPT", "execute_at": in_secs(1.5)}))
        .await;

    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["last_output"], "ran 1\n");
    assert_eq!(attempt_statuses(&done), ["SUCCEEDED"]);
    assert_started_on_time(&done);
}

async fn a_failing_job_is_retried_until_it_succeeds(backend: Backend) {
    let app = spawn(backend).await;
    let id = app
        .create_job(&json!({
            "command": "echo try $KAIROS_ATTEMPT; [ \"$KAIROS_ATTEMPT\" -ge 3 ]",
            "execute_at": in_secs(0.0),
            "max_retries": 3,
        }))
        .await;

    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["attempts"], 3);
    assert_eq!(done["job"]["last_output"], "try 3\n");
    assert_eq!(attempt_statuses(&done), ["FAILED", "FAILED", "SUCCEEDED"]);
}

/// A command that always fails ends FAILED after 1 + 3 attempts by default, each recorded
/// with its error; with `max_retries: 0`, after one.
async fn an_always_failing_command_ends_failed_after_its_retries(backend: Backend) {
    let app = spawn(backend).await;
    let default = app
        .create_job(&json!({"command": "echo boom >&2; exit 7", "execute_at": in_secs(0.0)}))
        .await;
    let no_retry = app
        .create_job(&json!({"command": "exit 7", "execute_at": in_secs(0.0), "max_retries": 0}))
        .await;

    let done = app.wait_until_finished(default).await;
    assert_eq!(done["job"]["status"], "FAILED");
    assert_eq!(done["job"]["attempts"], 4);
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 4);
    for (number, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], number + 1);
        assert_eq!(attempt["status"], "FAILED");
        assert_eq!(attempt["exit_code"], 7);
        assert_eq!(attempt["error"], "exit code 7");
        assert_eq!(attempt["stderr"], "boom\n");
    }

    let done = app.wait_until_finished(no_retry).await;
    assert_eq!(done["job"]["status"], "FAILED");
    assert_eq!(done["attempts"].as_array().expect("attempts").len(), 1);
}

async fn repeated_and_stale_results_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let id = app
        .create_job(&json!({"command": "echo once", "execute_at": in_secs(0.0)}))
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    let ignored_before = ignored_reports(&app).await;

    // The final report again, twice, then a report of an older dispatch saying it failed.
    let attempt = &done["attempts"][0];
    let report = AttemptReport {
        job_id: id,
        epoch: attempt["epoch"].as_i64().expect("an epoch"),
        attempt: 1,
        status: JobStatus::Success,
        outcome: AttemptOutcome::Succeeded,
        scheduled_at: time(&attempt["scheduled_at"]),
        started_at: time(&attempt["started_at"]),
        finished_at: Some(time(&attempt["finished_at"])),
        exit_code: Some(0),
        stdout: Some("once\n".into()),
        stderr: Some(String::new()),
        error: None,
        retry_at: None,
    };
    let stale = AttemptReport {
        epoch: report.epoch - 1,
        status: JobStatus::Failed,
        outcome: AttemptOutcome::Failed,
        exit_code: Some(1),
        ..report.clone()
    };
    for report in [&report, &report, &stale] {
        app.publisher.report(report).await.expect("published");
    }
    // At least three: the bus delivers at least once, so the writer may also see a record
    // of the job's own run again (after its consumer rejoins the group), and ignore it too.
    app.wait_for_metrics("three more ignored reports", |text| {
        metric(text, "kairos_reports_ignored_total")
            .is_some_and(|ignored| ignored >= ignored_before + 3.0)
    })
    .await;
    assert_eq!(app.job(id).await, done, "the job changed");
}

async fn bad_input_gets_a_clear_error(backend: Backend) {
    let app = spawn(backend).await;
    let cases = [
        (json!({"execute_at": in_secs(10.0)}), "command"),
        (json!({"command": "true"}), "execute_at"),
        (
            json!({"command": "true", "execute_at": "tomorrow"}),
            "execute_at",
        ),
        (
            json!({"command": "true", "execute_at": in_secs(10.0), "max_retries": -1}),
            "max_retries",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_job(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("a JSON error");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    let not_json = app
        .client
        .post(format!("{}/api/v1/jobs", app.address))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answered");
    assert_eq!(not_json.status(), 400);
    let unknown = app.get(&format!("/api/v1/jobs/{}", Uuid::now_v7())).await;
    assert_eq!(unknown.status(), 404);
    let malformed = app.get("/api/v1/jobs/not-an-id").await;
    assert_eq!(malformed.status(), 400);

    let listed: Value = app.get("/api/v1/jobs").await.json().await.expect("JSON");
    assert_eq!(listed["jobs"], json!([]), "nothing was stored");
}

async fn a_batch_runs_every_job(backend: Backend) {
    let app = spawn(backend).await;
    let jobs: Vec<Value> = (0..200)
        .map(|n| json!({"kind": "noop", "name": format!("n{n}"), "execute_at": in_secs(0.5)}))
        .collect();
    let ids = app.create_batch(&json!({ "jobs": jobs })).await;
    assert_eq!(ids.len(), 200);
    app.wait_for_metrics("200 successes", |text| {
        metric(text, "kairos_jobs_succeeded_total") == Some(200.0)
    })
    .await;
    for id in [ids[0], ids[199]] {
        let job = app.wait_until_finished(id).await;
        assert_eq!(job["job"]["status"], "SUCCESS");
        assert_eq!(attempt_statuses(&job), ["SUCCEEDED"]);
    }
}

/// Listing pages through jobs newest first, filtered by status.
async fn listing_pages_newest_first(backend: Backend) {
    let app = spawn(backend).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.create_job(&json!({"command": "true", "execute_at": in_secs(3600.0)}))
                .await,
        );
    }
    let page: Value = app
        .get("/api/v1/jobs?limit=2&status=SCHEDULED")
        .await
        .json()
        .await
        .expect("JSON");
    let listed: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(listed, [ids[2].to_string(), ids[1].to_string()]);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let page: Value = app
        .get(&format!("/api/v1/jobs?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["jobs"].as_array().expect("jobs").len(), 1);
    assert_eq!(page["jobs"][0]["id"], ids[0].to_string());
    assert_eq!(page["next_cursor"], Value::Null);
    let none: Value = app
        .get("/api/v1/jobs?status=FAILED")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(none["jobs"], json!([]));
}

/// The ids a listing at `path` shows, newest first.
async fn listed_ids(app: &TestApp, path: &str) -> Vec<String> {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let page: Value = response.json().await.expect("JSON");
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn listing_filters_by_name_and_creation_time(backend: Backend) {
    let app = spawn(backend).await;
    let later = in_secs(3600.0);
    let nightly = app
        .create_job(&json!({"name": "Nightly-Report", "command": "true", "execute_at": later}))
        .await
        .to_string();
    // Ids carry their creation time to the millisecond: the next job is made in a later one.
    let mark = chrono::Utc::now() + chrono::Duration::milliseconds(1);
    while chrono::Utc::now() <= mark + chrono::Duration::milliseconds(1) {
        tokio::task::yield_now().await;
    }
    let weekly = app
        .create_job(&json!({"name": "weekly_report", "command": "true", "execute_at": later}))
        .await
        .to_string();
    let cleanup = app
        .create_job(&json!({"name": "cleanup", "command": "true", "execute_at": later}))
        .await
        .to_string();

    // A name filter matches a part of the name in any case; `_` and `%` are themselves.
    let reports = listed_ids(&app, "/api/v1/jobs?name=REPORT").await;
    assert_eq!(reports, [weekly.as_str(), nightly.as_str()]);
    assert_eq!(
        listed_ids(&app, "/api/v1/jobs?name=y_r").await,
        [weekly.as_str()]
    );
    assert!(listed_ids(&app, "/api/v1/jobs?name=%25").await.is_empty());

    // A creation time range, alone, with a name, and with paging.
    let mark = mark.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let before = listed_ids(&app, &format!("/api/v1/jobs?created_before={mark}")).await;
    assert_eq!(before, [nightly.as_str()]);
    let after = listed_ids(&app, &format!("/api/v1/jobs?created_after={mark}")).await;
    assert_eq!(after, [cleanup.as_str(), weekly.as_str()]);
    let both = listed_ids(
        &app,
        &format!("/api/v1/jobs?created_after={mark}&name=report"),
    )
    .await;
    assert_eq!(both, [weekly.as_str()]);
    let page: Value = app
        .get(&format!("/api/v1/jobs?created_after={mark}&limit=1"))
        .await
        .json()
        .await
        .expect("JSON");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = listed_ids(
        &app,
        &format!("/api/v1/jobs?created_after={mark}&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest, [weekly.as_str()]);

    let refused = app.get("/api/v1/jobs?created_after=yesterday").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["field"], "created_after");
    let long = "x".repeat(201);
    let refused = app.get(&format!("/api/v1/jobs?name={long}")).await;
    assert_eq!(refused.status(), 400);
    let refused = app.get("/api/v1/jobs?name=a%00b").await;
    assert_eq!(refused.status(), 400);

    // The overview's counts: every status, those without jobs at zero.
    let cancelled = app
        .post(&format!("/api/v1/jobs/{cleanup}:cancel"), None)
        .await;
    assert!(cancelled.status().is_success());
    let stats: Value = app.get("/api/v1/stats").await.json().await.expect("JSON");
    assert_eq!(
        stats["jobs"],
        json!({"SCHEDULED": 2, "DISPATCHED": 0, "RUNNING": 0, "RETRYING": 0,
               "SUCCESS": 0, "FAILED": 0, "CANCELLED": 1, "SKIPPED": 0})
    );
    assert_eq!(stats["count_limit"], 10_000);
    assert_eq!(stats["mode"], backend.as_str());
    assert_eq!(stats["slot_secs"], 10);
    assert_eq!(stats["series"].as_array().map(Vec::len), Some(360));
    assert_eq!(stats["actors"]["scanner"]["alive"], 1);
}
