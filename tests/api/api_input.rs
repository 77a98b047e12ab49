//! Bad input gets a clear 4xx with a JSON body naming the problem, and nothing is stored.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{in_secs, spawn_app, spawn_app_with, test_settings, time};

/// Each malformed create request is refused with the documented status, code and field, and
/// no job is stored.
#[actix_web::test]
async fn malformed_creates_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let at = "2026-11-27T10:00:00Z";
    let cases = [
        (
            json!({"execute_at": at}),
            400,
            "missing_field",
            Some("command"),
        ),
        (
            json!({"command": "  ", "execute_at": at}),
            400,
            "invalid_field",
            Some("command"),
        ),
        (
            json!({"command": 5, "execute_at": at}),
            400,
            "invalid_field",
            Some("command"),
        ),
        (
            json!({"command": "true"}),
            400,
            "missing_field",
            Some("execute_at"),
        ),
        (
            json!({"command": "true", "execute_at": "tomorrow"}),
            400,
            "invalid_field",
            Some("execute_at"),
        ),
        (
            json!({"command": "true", "execute_at": "2026-11-27T10:00:00"}),
            400,
            "invalid_field",
            Some("execute_at"),
        ),
        (
            json!({"command": "true", "execute_at": at, "max_retries": 11}),
            400,
            "invalid_field",
            Some("max_retries"),
        ),
        (
            json!({"command": "true", "execute_at": at, "max_retries": -1}),
            400,
            "invalid_field",
            Some("max_retries"),
        ),
        (
            json!({"command": "true", "execute_at": at, "timeout_secs": 0}),
            400,
            "invalid_field",
            Some("timeout_secs"),
        ),
        (
            json!({"command": "true", "execute_at": at, "metadata": [1]}),
            400,
            "invalid_field",
            Some("metadata"),
        ),
        (
            json!({"command": "true", "execute_at": at, "metadata": {"big": "x".repeat(20_000)}}),
            400,
            "metadata_too_large",
            Some("metadata"),
        ),
        (
            json!({"command": "true", "execute_at": at, "colour": "blue"}),
            400,
            "unknown_field",
            Some("colour"),
        ),
        (json!(["not", "an", "object"]), 400, "invalid_body", None),
        (
            json!({"kind": "noop", "command": "true", "execute_at": at}),
            400,
            "invalid_field",
            Some("command"),
        ),
        (
            json!({"kind": "python", "command": "true", "execute_at": at}),
            400,
            "invalid_field",
            Some("kind"),
        ),
        (
            json!({"command": "x".repeat(70_000), "execute_at": at}),
            413,
            "body_too_large",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let response = app.post_job(&body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.expect("a JSON body");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(error["error"]["field"].as_str(), field, "{body}: {error}");
    }

    let response = app
        .client
        .post(format!("{}/api/v1/jobs", app.address))
        .header("content-type", "application/json")
        .body("{\"command\": ")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["error"]["code"],
        "invalid_json"
    );

    let response = app
        .client
        .post(format!("{}/api/v1/jobs", app.address))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["error"]["code"],
        "unsupported_media_type"
    );

    let response = app.get("/api/v1/jobs/not-a-uuid").await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["error"]["field"],
        "id"
    );

    let response = app
        .get(&format!("/api/v1/jobs/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["error"]["code"],
        "not_found"
    );

    let response = app.get("/api/v1/jobs?limit=0").await;
    assert_eq!(response.status(), 400);
    let response = app.get("/api/v1/jobs?status=DONE").await;
    assert_eq!(response.status(), 400);

    let count: i64 = app.query_value("SELECT count(*) FROM jobs", &[]).await;
    assert_eq!(count, 0, "a refused request stored a job");
}

/// A created job answers 201 with its Location, status SCHEDULED and the defaults filled in.
#[actix_web::test]
async fn a_created_job_is_scheduled_with_defaults() {
    let app = spawn_app().await;
    let body = json!({"name": "nightly-report", "command": "echo hello", "execute_at": "2099-01-01T10:00:00+02:00", "metadata": {"team": "billing"}});
    let response = app.post_job(&body).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let created: Value = response.json().await.expect("JSON");
    let job = &created["job"];
    assert_eq!(
        location,
        format!("/api/v1/jobs/{}", job["id"].as_str().expect("id"))
    );
    assert_eq!(job["status"], "SCHEDULED");
    assert_eq!(job["max_retries"], 3);
    assert_eq!(job["timeout_secs"], app.settings.jobs.default_timeout_secs);
    assert_eq!(job["execute_at"], "2099-01-01T08:00:00Z");
    assert_eq!(job["metadata"], json!({"team": "billing"}));
    let fetched: Value = app.get(&location).await.json().await.expect("JSON");
    assert_eq!(fetched["job"], *job);
}

/// With `auth.tokens` set, `/api/` calls need a valid bearer token; the probes do not.
#[actix_web::test]
async fn api_calls_need_a_token_when_tokens_are_configured() {
    let mut settings = test_settings();
    settings.auth.tokens = vec![kairos::config::TokenEntry::Plain("s3cret".into())];
    let app = spawn_app_with(settings).await;
    let body = json!({"command": "true", "execute_at": "2099-01-01T00:00:00Z"});
    let url = format!("{}/api/v1/jobs", app.address);

    let response = app
        .client
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("JSON")["error"]["code"],
        "unauthorized"
    );
    let response = app
        .client
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// A batch stores all its jobs in one call and they run; a batch with invalid jobs is refused
/// whole, naming each invalid job by index and field, and stores nothing.
#[actix_web::test]
async fn a_batch_is_all_or_nothing() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().to_rfc3339();
    let bad = json!({"jobs": [
        {"kind": "noop", "execute_at": now},
        {"command": "", "execute_at": now},
        {"kind": "noop"},
    ]});
    let response = app.post_batch(&bad).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["error"]["code"], "invalid_batch");
    let items = error["error"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{error}");
    assert_eq!(
        (items[0]["index"].clone(), items[0]["field"].clone()),
        (json!(1), json!("command"))
    );
    assert_eq!(
        (items[1]["index"].clone(), items[1]["field"].clone()),
        (json!(2), json!("execute_at"))
    );
    let count: i64 = app.query_value("SELECT count(*) FROM jobs", &[]).await;
    assert_eq!(count, 0, "a refused batch stored jobs");

    let good = json!({"jobs": [
        {"kind": "noop", "execute_at": now},
        {"command": "echo batched", "execute_at": now},
        {"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "metadata": {"team": "billing"}},
    ]});
    let ids = app.create_batch(&good).await;
    assert_eq!(ids.len(), 3);
    let noop = app.wait_until_finished(ids[0]).await;
    assert_eq!(noop["job"]["status"], "SUCCESS");
    assert_eq!(noop["job"]["kind"], "noop");
    assert_eq!(noop["job"]["metadata"], json!({}));
    let shell = app.wait_until_finished(ids[1]).await;
    assert_eq!(shell["job"]["last_output"], "batched\n");
    let waiting = app.job(ids[2]).await;
    assert_eq!(waiting["job"]["status"], "SCHEDULED");
    assert_eq!(waiting["job"]["metadata"], json!({"team": "billing"}));
}

/// A batch of jobs due later (stored in bulk, unclaimed) keeps every field as given, and the
/// defaults of those left out.
#[actix_web::test]
async fn a_batch_of_later_jobs_keeps_every_field() {
    let app = spawn_app().await;
    let batch = json!({"jobs": [
        {"name": "nightly", "command": "echo later", "execute_at": "2099-01-01T00:00:00Z",
         "max_retries": 5, "timeout_secs": 7, "metadata": {"team": "billing"}},
        {"kind": "noop", "execute_at": "2099-06-01T12:30:00.250Z"},
    ]});
    let ids = app.create_batch(&batch).await;

    let shell = &app.job(ids[0]).await["job"];
    assert_eq!(
        stored(shell),
        (
            json!({"name": "nightly", "kind": "shell", "command": "echo later",
                   "status": "SCHEDULED", "max_retries": 5, "timeout_secs": 7,
                   "metadata": {"team": "billing"}}),
            instant("2099-01-01T00:00:00Z")
        )
    );
    let noop = &app.job(ids[1]).await["job"];
    assert_eq!(
        stored(noop),
        (
            json!({"name": null, "kind": "noop", "command": "", "status": "SCHEDULED",
                   "max_retries": 3, "timeout_secs": app.settings.jobs.default_timeout_secs,
                   "metadata": {}}),
            instant("2099-06-01T12:30:00.250Z")
        )
    );
}

/// A batch's jobs due inside the horizon already scanned are stored claimed, as a single
/// create claims its job: `DISPATCHED` under epoch 1 to this instance, at the database's
/// time, with a lease to their time plus the grace.
#[actix_web::test]
async fn a_batch_of_jobs_due_soon_is_claimed_on_the_database_clock() {
    let app = spawn_app().await;
    let single = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(30.0)}))
        .await;
    let before: DateTime<Utc> = app.query_value("SELECT now()", &[]).await;
    let batch = json!({"jobs": [
        {"kind": "noop", "execute_at": in_secs(20.0)},
        {"command": "true", "execute_at": in_secs(40.0)},
    ]});
    let ids = app.create_batch(&batch).await;
    let after: DateTime<Utc> = app.query_value("SELECT now()", &[]).await;

    let grace = chrono::Duration::from_std(app.settings.recovery.grace).expect("a grace");
    let client = app.pool().get().await.expect("connection");
    let claim = |id| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT status, epoch, claimed_by, claimed_at, lease_until, execute_at \
                     FROM jobs WHERE id = $1",
                    &[&id],
                )
                .await
                .expect("the job's row");
            let claimed_at: DateTime<Utc> = row.get(3);
            let lease_until: DateTime<Utc> = row.get(4);
            let execute_at: DateTime<Utc> = row.get(5);
            let state: (String, i64, String) = (row.get(0), row.get(1), row.get(2));
            (state, claimed_at, lease_until - execute_at)
        }
    };
    let (single_state, _, single_lease) = claim(single).await;
    assert_eq!(single_lease, grace, "a single create's lease");
    for id in ids {
        let (state, claimed_at, lease) = claim(id).await;
        assert_eq!(
            state, single_state,
            "job {id} is claimed as a single create's job is"
        );
        assert_eq!(state.0, "DISPATCHED");
        assert!(
            before <= claimed_at && claimed_at <= after,
            "job {id} claimed at {claimed_at}, outside the request ({before} to {after})"
        );
        assert_eq!(
            lease, grace,
            "job {id}'s lease runs to its time plus the grace"
        );
    }
}

/// A job's fields that a create gives, as the API shows them; `execute_at` as an instant.
fn stored(job: &Value) -> (Value, chrono::DateTime<chrono::Utc>) {
    let fields = [
        "name",
        "kind",
        "command",
        "status",
        "max_retries",
        "timeout_secs",
        "metadata",
    ];
    let given: serde_json::Map<String, Value> = fields
        .iter()
        .map(|field| ((*field).to_owned(), job[*field].clone()))
        .collect();
    (given.into(), time(&job["execute_at"]))
}

fn instant(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().expect("an RFC 3339 time")
}
