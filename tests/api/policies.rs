//! What the configuration lets jobs do. `shell` jobs: the kind turned off, and an allow-list
//! of commands, both checked at create (jobs, batches and schedules' templates) with a `400`
//! naming the field. `kafka` jobs: a topic the configuration stopped allowing after the job
//! was created fails at its time, unpublished.

use kairos::config::{Backend, CommandPatterns};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::kafka::{broker, create_topic};
use crate::helpers::{in_secs, settings_for, spawn_app_with};

async fn post(app: &crate::helpers::TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = app.post(path, Some(body)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn a_command_outside_the_allow_list_is_refused_at_create() {
    let mut settings = settings_for(Backend::Standalone);
    settings.runner.shell.allowed_commands =
        CommandPatterns::try_from(vec![r"make (report|backup)".to_owned()]).expect("valid");
    let app = spawn_app_with(settings).await;
    let at = in_secs(3600.0);
    let job = |command: &str| json!({"command": command, "execute_at": at});

    let (status, body) = post(&app, "/api/v1/jobs", &job("make report")).await;
    assert_eq!(status, 201, "{body}");
    for command in ["make report; cat /etc/shadow", "rm -rf /", "make reports"] {
        let (status, body) = post(&app, "/api/v1/jobs", &job(command)).await;
        assert_eq!(status, 400, "{command}: {body}");
        assert_eq!(body["error"]["code"], "command_not_allowed", "{body}");
        assert_eq!(body["error"]["field"], "command", "{body}");
    }
    let (status, body) = post(
        &app,
        "/api/v1/jobs:batch",
        &json!({"jobs": [job("make backup"), job("id")]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &app,
        "/api/v1/schedules",
        &json!({"cron": "@daily", "job": {"command": "id"}}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("job.command")),
        "{body}"
    );
    // Other kinds are not commands.
    let (status, body) = post(
        &app,
        "/api/v1/jobs",
        &json!({"kind": "noop", "execute_at": at}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn shell_jobs_turned_off_are_refused_at_create() {
    let mut settings = settings_for(Backend::Standalone);
    settings.runner.shell.enabled = false;
    let app = spawn_app_with(settings).await;
    let (status, body) = post(
        &app,
        "/api/v1/jobs",
        &json!({"command": "true", "execute_at": in_secs(60.0)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "kind_disabled", "{body}");
    assert_eq!(body["error"]["field"], "kind", "{body}");
    let (status, body) = post(
        &app,
        "/api/v1/jobs",
        &json!({"kind": "noop", "execute_at": in_secs(60.0)}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn a_kafka_job_whose_topic_is_no_longer_allowed_fails_unpublished() {
    let app = spawn_app_with(settings_for(Backend::Distributed)).await;
    let topic = format!("test-out-{}", Uuid::new_v4().simple());
    create_topic(&broker(), &topic).await;
    let id = app
        .create_job(&json!({"kind": "kafka", "topic": topic, "value": "x",
            "execute_at": in_secs(8.0), "max_retries": 3}))
        .await;
    // Before its time, the operator narrows the topics jobs may publish to.
    let app = app
        .restart_with(|settings| settings.runner.kafka.allowed_topics = vec!["billing.*".into()])
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "FAILED", "{done}");
    // Not retried: the same configuration would refuse it again.
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(1), "{done}");
    let error = done["attempts"][0]["error"].as_str().expect("an error");
    assert!(error.contains("runner.kafka.allowed_topics"), "{error}");
    assert_eq!(done["attempts"][0]["stdout"], "", "published: {done}");
}
