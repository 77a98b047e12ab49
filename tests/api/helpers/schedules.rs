//! Helpers of the schedule tests: a schedule created and read through the API, and its jobs.

use chrono::{DateTime, Utc};
use kairos::config::{Backend, Settings};
use serde_json::Value;

use super::{TestApp, poll_until, settings_for, spawn_app_with, time};

pub async fn spawn(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = settings_for(backend);
    change(&mut settings);
    spawn_app_with(settings).await
}

pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = app
        .client
        .request(method, format!("{}{path}", app.address))
        .json(body)
        .send()
        .await
        .expect("the request is answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = send(app, reqwest::Method::POST, "/api/v1/schedules", body).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

pub async fn schedule(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/schedules/{id}"))
        .await
        .json()
        .await
        .expect("JSON")
}

/// The schedule's jobs, oldest fire first.
pub async fn jobs_of(app: &TestApp, id: &str) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page: Value = app
            .get(&format!("/api/v1/jobs?schedule_id={id}&limit=500{after}"))
            .await
            .json()
            .await
            .expect("JSON");
        jobs.extend(page["jobs"].as_array().expect("jobs").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    jobs.sort_by_key(|job| time(&job["scheduled_for"]));
    jobs
}

pub fn ended(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("SUCCESS" | "FAILED" | "SKIPPED" | "CANCELLED")
    )
}

/// Waits until `condition` holds for the schedule's jobs, within [`super::WAIT_LIMIT`].
pub async fn wait_for_jobs(
    app: &TestApp,
    id: &str,
    condition: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    poll_until(
        "the schedule's jobs in the expected state",
        || jobs_of(app, id),
        |jobs| condition(jobs),
    )
    .await
}

pub fn fire_times(jobs: &[Value]) -> Vec<DateTime<Utc>> {
    jobs.iter().map(|job| time(&job["scheduled_for"])).collect()
}
