//! Tokens with roles: every route of `/api/v1`, called with no token, an unknown one, and a
//! token of each role, answers `401`, `403` or goes through as the route's role says.

use kairos::config::{AccessRole, TokenEntry};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, settings_for, spawn_app_with};

/// The tokens of the test, by role.
const TOKENS: [(&str, AccessRole); 3] = [
    ("reader-token", AccessRole::Reader),
    ("writer-token", AccessRole::Writer),
    ("admin-token", AccessRole::Admin),
];

fn hashed(token: &str, role: AccessRole) -> TokenEntry {
    let sha256: String = kairos::config::hash_token(token)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let entry = format!(
        r#"{{"name": "{}-name", "role": "{}", "sha256": "{sha256}"}}"#,
        role.as_str(),
        role.as_str()
    );
    serde_json::from_str(&entry).expect("a token entry")
}

/// Every route, with the role its method needs.
pub fn routes() -> Vec<(Method, String, AccessRole)> {
    let id = uuid::Uuid::now_v7();
    let reader = AccessRole::Reader;
    let writer = AccessRole::Writer;
    let admin = AccessRole::Admin;
    [
        (Method::GET, "/admin/actors".to_owned(), admin),
        (Method::HEAD, "/admin/actors".to_owned(), admin),
        (
            Method::POST,
            "/admin/actors/executor/fail".to_owned(),
            admin,
        ),
        (Method::GET, "/jobs".to_owned(), reader),
        (Method::HEAD, "/jobs".to_owned(), reader),
        (Method::POST, "/jobs".to_owned(), writer),
        (Method::POST, "/jobs:batch".to_owned(), writer),
        (Method::GET, "/stats".to_owned(), reader),
        (Method::HEAD, "/stats".to_owned(), reader),
        (Method::GET, format!("/jobs/{id}"), reader),
        (Method::POST, format!("/jobs/{id}:cancel"), writer),
        (Method::POST, format!("/jobs/{id}:rerun"), writer),
        (Method::GET, "/schedules".to_owned(), reader),
        (Method::POST, "/schedules".to_owned(), writer),
        (Method::POST, "/schedules:preview".to_owned(), reader),
        (Method::GET, format!("/schedules/{id}"), reader),
        (Method::PATCH, format!("/schedules/{id}"), writer),
        (Method::DELETE, format!("/schedules/{id}"), writer),
        (Method::POST, format!("/schedules/{id}:pause"), writer),
        (Method::POST, format!("/schedules/{id}:resume"), writer),
        (Method::POST, format!("/schedules/{id}:trigger"), writer),
        (Method::POST, format!("/schedules/{id}:backfill"), writer),
    ]
    .into_iter()
    .map(|(method, path, role)| (method, format!("/api/v1{path}"), role))
    .collect()
}

#[actix_web::test]
async fn every_route_answers_each_role_as_its_role_says() {
    let mut settings = settings_for(kairos::config::Backend::Standalone);
    settings.auth.tokens = TOKENS
        .iter()
        .map(|(token, role)| hashed(token, *role))
        .collect();
    let app = spawn_app_with(settings).await;
    let mut wrong = Vec::new();
    for (method, path, needed) in routes() {
        let mut callers: Vec<(Option<&str>, Option<AccessRole>)> =
            vec![(None, None), (Some("not-a-token"), None)];
        callers.extend(
            TOKENS
                .iter()
                .map(|(token, role)| (Some(*token), Some(*role))),
        );
        for (token, role) in callers {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let expected_ok = match role {
                None => {
                    status == 401
                        && (method == Method::HEAD || body["error"]["code"] == "unauthorized")
                }
                Some(role) if role < needed => {
                    status == 403
                        && (method == Method::HEAD
                            || (body["error"]["code"] == "forbidden"
                                && body["error"]["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains(needed.as_str()))))
                }
                Some(_) => status != 401 && status != 403,
            };
            if !expected_ok {
                wrong.push(format!(
                    "{method} {path} with {token:?} ({role:?}, needs {needed:?}): {status} {body}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The probes and the metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = app.get(path).await.status().as_u16();
        assert_eq!(status, 200, "{path}");
    }
}

/// A job, a schedule (and its fires' jobs) and a cancel record the name of the token that
/// made them; with no token configured, `anonymous`.
#[actix_web::test]
async fn who_did_it_is_recorded_by_the_tokens_name() {
    let mut settings = settings_for(kairos::config::Backend::Standalone);
    settings.auth.tokens = TOKENS
        .iter()
        .map(|(token, role)| hashed(token, *role))
        .collect();
    let app = spawn_app_with(settings).await;
    let created = call(
        &app,
        Method::POST,
        "/api/v1/jobs",
        "writer-token",
        json!({"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(created["job"]["created_by"], "writer-name", "{created}");
    let id = created["job"]["id"].as_str().expect("an id");
    let path = format!("/api/v1/jobs/{id}:cancel");
    let cancelled = call(&app, Method::POST, &path, "admin-token", json!({})).await;
    assert_eq!(
        cancelled["job"]["cancelled_by"], "admin-name",
        "{cancelled}"
    );

    let schedule = call(
        &app,
        Method::POST,
        "/api/v1/schedules",
        "writer-token",
        json!({"cron": "@yearly", "job": {"kind": "noop"}}),
    )
    .await;
    assert_eq!(
        schedule["schedule"]["created_by"], "writer-name",
        "{schedule}"
    );
    let id = schedule["schedule"]["id"].as_str().expect("an id");
    let path = format!("/api/v1/schedules/{id}:trigger");
    let fired = call(&app, Method::POST, &path, "admin-token", json!({})).await;
    let job = fired["fires"][0]["job_id"].as_str().expect("a job");
    let path = format!("/api/v1/jobs/{job}");
    let shown = call(&app, Method::GET, &path, "reader-token", Value::Null).await;
    assert_eq!(shown["job"]["created_by"], "writer-name", "{shown}");

    let open = spawn_app_with(settings_for(kairos::config::Backend::Standalone)).await;
    let created: Value = open
        .post_job(&json!({"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(created["job"]["created_by"], "anonymous", "{created}");
}

/// Calls `path` with `token` and `body` (none when null); the answer's JSON.
async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Value {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    request
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON")
}
