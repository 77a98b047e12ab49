//! Supervision: an actor that fails is restarted, the restart is visible, and jobs go on.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{TestApp, metric, spawn_app, spawn_app_with, test_settings};

async fn fail(app: &TestApp, kind: &str, panic: bool) {
    let response = app
        .client
        .post(format!("{}/api/v1/admin/actors/{kind}/fail", app.address))
        .json(&json!({ "panic": panic }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 202, "{kind} could not be failed");
}

/// Waits until one executor of `app` waits for its job's time.
async fn an_executor_waits(app: &TestApp) {
    app.wait_for_metrics("an executor waiting", |text| {
        metric(text, "kairos_executor_waiting") == Some(1.0)
    })
    .await;
}

/// Every actor kind, made to fail (by a stop or by a panic), is restarted: the restart shows
/// in `/api/v1/admin/actors` and `/metrics`, and a job waiting in the failed executor, and
/// jobs created afterwards, still end SUCCESS.
#[actix_web::test]
async fn failed_actors_are_restarted_and_jobs_keep_completing() {
    let app = spawn_app().await;
    let due = (Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let waiting = app
        .create_job(&json!({"command": "echo survived", "execute_at": due}))
        .await;
    an_executor_waits(&app).await;

    fail(&app, "executor", true).await;
    fail(&app, "scanner", false).await;
    fail(&app, "dispatcher", true).await;
    fail(&app, "result_writer", false).await;

    let text = app
        .wait_for_metrics("a restart of every kind", |text| {
            ["scanner", "dispatcher", "executor", "result_writer"]
                .iter()
                .all(|kind| {
                    metric(
                        text,
                        &format!("kairos_actor_restarts_total{{kind=\"{kind}\"}}"),
                    ) == Some(1.0)
                })
        })
        .await;
    for kind in ["scanner", "dispatcher", "result_writer"] {
        assert_eq!(
            metric(&text, &format!("kairos_actor_alive{{kind=\"{kind}\"}}")),
            Some(1.0),
            "{kind} alive"
        );
    }
    let actors: Value = app
        .get("/api/v1/admin/actors")
        .await
        .json()
        .await
        .expect("JSON");
    for kind in ["scanner", "dispatcher", "executor", "result_writer"] {
        assert_eq!(actors["actors"][kind]["restarts"], 1, "{kind}: {actors}");
    }
    assert_eq!(actors["actors"]["scanner"]["alive"], 1);

    let done = app.wait_until_finished(waiting).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["last_output"], "survived\n");
    let after = app
        .create_job(&json!({"command": "true", "execute_at": Utc::now().to_rfc3339()}))
        .await;
    assert_eq!(
        app.wait_until_finished(after).await["job"]["status"],
        "SUCCESS"
    );
}

/// Fault injection is refused unless configured.
#[actix_web::test]
async fn fault_injection_is_off_by_default() {
    let mut settings = crate::helpers::test_settings();
    settings.admin.fault_injection = false;
    let app = crate::helpers::spawn_app_with(settings).await;
    let response = app
        .client
        .post(format!("{}/api/v1/admin/actors/scanner/fail", app.address))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 404);
}

/// An executor ends with its job: once the job's result is out, nothing keeps the actor
/// alive, neither the timer that would have reported the attempt `RUNNING` had it run longer
/// (here a minute away) nor, for a job cancelled while it waits, the timer of its time.
#[actix_web::test]
async fn an_executor_ends_with_its_job() {
    let mut settings = test_settings();
    settings.executor.running_report_after = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let no_executor =
        |text: &str| metric(text, "kairos_actor_alive{kind=\"executor\"}") == Some(0.0);
    let ran = app
        .create_job(&json!({"command": "true", "execute_at": Utc::now().to_rfc3339()}))
        .await;
    assert_eq!(
        app.wait_until_finished(ran).await["job"]["status"],
        "SUCCESS"
    );
    app.wait_for_metrics("no executor alive after its job ran", no_executor)
        .await;

    // Due within the scanner's horizon: an executor waits for its time, a minute away.
    let due = (Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let cancelled = app
        .create_job(&json!({"command": "true", "execute_at": due}))
        .await;
    an_executor_waits(&app).await;
    let response = app
        .post(&format!("/api/v1/jobs/{cancelled}:cancel"), None)
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_metrics("no executor alive after its job was cancelled", no_executor)
        .await;
}
