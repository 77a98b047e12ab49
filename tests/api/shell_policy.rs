//! What `shell` jobs may be: the kind turned off, and an allow-list of commands, both checked
//! at create (jobs, batches and schedules' templates) with a `400` naming the field.

use kairos::config::CommandPatterns;
use serde_json::{Value, json};

use crate::helpers::{in_secs, settings_for, spawn_app_with};

async fn post(app: &crate::helpers::TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = app.post(path, Some(body)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn a_command_outside_the_allow_list_is_refused_at_create() {
    let mut settings = settings_for(kairos::config::Backend::Standalone);
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
    let mut settings = settings_for(kairos::config::Backend::Standalone);
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
