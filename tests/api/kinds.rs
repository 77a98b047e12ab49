//! The `http` and `kafka` kinds against real parts: an HTTP server the test starts on
//! loopback, and the Kafka broker of `scripts/services`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, KeyInit, Mac};
use kairos::config::{Backend, Settings};
use rdkafka::Message;
use rdkafka::message::Headers;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::kafka::{broker, create_topic, first_message};
use crate::helpers::servers::{Connection, next_event, silent_server};
use crate::helpers::{TestApp, in_secs, settings_for, spawn_app_with, time};

contract!(
    an_http_job_calls_its_url,
    a_cancelled_http_job_stops_its_call,
    a_kafka_job_publishes_its_message
);

const SECRET: &str = "a-test-signing-secret";

/// A request the test server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The test's HTTP server: `/ok` answers 200, `/flaky` 503 to the first request of each
/// idempotency key and 200 to the next, `/missing` 404, `/slow` after 30 s.
async fn receiver() -> (String, Log) {
    let log: Log = Arc::default();
    let shared = Arc::clone(&log);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&shared)))
            .default_service(web::to(answer))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("a loopback port");
    let address = format!("http://{}", server.addrs()[0]);
    actix_web::rt::spawn(server.run());
    (address, log)
}

async fn answer(request: HttpRequest, body: web::Bytes, log: web::Data<Log>) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect::<HashMap<_, _>>();
    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
    let path = request.path().to_owned();
    let earlier = {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        let earlier = log
            .iter()
            .filter(|seen| seen.path == path && seen.headers.get("idempotency-key") == Some(&key))
            .count();
        log.push(Seen {
            path: path.clone(),
            headers,
            body: body.to_vec(),
        });
        earlier
    };
    match path.as_str() {
        "/ok" => HttpResponse::Ok().body("hello"),
        "/flaky" if earlier == 0 => HttpResponse::ServiceUnavailable().body("busy"),
        "/flaky" => HttpResponse::Ok().body("recovered"),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().finish()
        }
        _ => HttpResponse::NotFound().body("no such thing"),
    }
}

fn seen(log: &Log, path: &str) -> Vec<Seen> {
    let log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.iter()
        .filter(|seen| seen.path == path)
        .cloned()
        .collect()
}

async fn an_http_job_calls_its_url(backend: Backend) {
    let mut settings = settings_for(backend);
    settings.runner.http.signing_secret = Some(SECRET.into());
    let app = spawn_app_with(settings).await;
    let (server, log) = receiver().await;
    let job = |path: &str, extra: Value| {
        let mut job =
            json!({"kind": "http", "url": format!("{server}{path}"), "execute_at": in_secs(0.0)});
        job.as_object_mut()
            .expect("an object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        job
    };
    let ok = app
        .create_job(&job(
            "/ok",
            json!({"body": {"amount": 3}, "headers": {"X-Team": "billing"}}),
        ))
        .await;
    let flaky = app
        .create_job(&job(
            "/flaky",
            json!({"retry_backoff": {"base": "100ms", "max": "100ms"}}),
        ))
        .await;
    let missing = app
        .create_job(&job("/missing", json!({"max_retries": 3})))
        .await;
    let slow = app
        .create_job(&job("/slow", json!({"timeout_secs": 1, "max_retries": 0})))
        .await;

    let done = app.wait_until_finished(ok).await;
    assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    assert_eq!(done["attempts"][0]["exit_code"], 200);
    assert_eq!(done["attempts"][0]["stdout"], "hello");
    let [request] = seen(&log, "/ok").try_into().expect("one request");
    assert_eq!(request.body, br#"{"amount":3}"#);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-team"], "billing");
    assert_eq!(request.headers["idempotency-key"], ok.to_string());
    assert_eq!(request.headers["kairos-job-id"], ok.to_string());
    assert_eq!(request.headers["kairos-attempt"], "1");
    assert_eq!(
        time(&json!(request.headers["kairos-scheduled-at"])),
        time(&done["job"]["execute_at"])
    );
    verify_signature(&request);

    // 503, then retried with the same idempotency key.
    let done = app.wait_until_finished(flaky).await;
    assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    let statuses: Vec<&Value> = done["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!("FAILED"), &json!("SUCCEEDED")]);
    assert_eq!(done["attempts"][0]["exit_code"], 503);
    let requests = seen(&log, "/flaky");
    let keys: Vec<&str> = requests
        .iter()
        .map(|seen| seen.headers["idempotency-key"].as_str())
        .collect();
    assert_eq!(keys, [flaky.to_string(), flaky.to_string()]);
    let attempts: Vec<&str> = requests
        .iter()
        .map(|seen| seen.headers["kairos-attempt"].as_str())
        .collect();
    assert_eq!(attempts, ["1", "2"]);

    // 404: not retried, whatever retries are left.
    let done = app.wait_until_finished(missing).await;
    assert_eq!(done["job"]["status"], "FAILED");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(done["attempts"][0]["exit_code"], 404);
    let error = done["attempts"][0]["error"].as_str().expect("an error");
    assert!(error.contains("not retried"), "{error}");

    let done = app.wait_until_finished(slow).await;
    assert_eq!(done["attempts"][0]["status"], "TIMED_OUT", "{done}");
}

async fn a_cancelled_http_job_stops_its_call(backend: Backend) {
    let app = spawn_app_with(settings_for(backend)).await;
    let (server, mut events) = silent_server().await;
    let id = app
        .create_job(
            &json!({"kind": "http", "url": server, "execute_at": in_secs(0.0),
            "timeout_secs": 600}),
        )
        .await;
    assert_eq!(next_event(&mut events).await, Some(Connection::Request));
    app.wait_for_job(id, |job| job["job"]["status"] == "RUNNING")
        .await;

    let response = app.post(&format!("/api/v1/jobs/{id}:cancel"), None).await;
    assert_eq!(response.status(), 202);
    // The call stops with its attempt: its connection is closed, not left waiting for the
    // answer until the job's timeout.
    assert_eq!(next_event(&mut events).await, Some(Connection::Closed));
    let job = app
        .wait_for_job(id, |job| job["attempts"][0]["status"] == "CANCELLED")
        .await;
    assert_eq!(job["job"]["status"], "CANCELLED", "{job}");
}

/// Checks `Kairos-Signature` as a receiver would: `t=<seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`.
fn verify_signature(request: &Seen) {
    let header = &request.headers["kairos-signature"];
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("a signature: {header}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature does not verify");
    let sent = t.parse::<i64>().expect("seconds");
    assert!(
        (chrono::Utc::now().timestamp() - sent).abs() < 300,
        "a stale timestamp"
    );
}

async fn a_kafka_job_publishes_its_message(backend: Backend) {
    let mut settings: Settings = settings_for(backend);
    let servers = broker();
    if backend == Backend::Standalone {
        settings.runner.kafka.bootstrap_servers = Some(servers.clone());
    }
    settings.runner.kafka.allowed_topics = vec!["test-out-*".into()];
    let app = spawn_app_with(settings).await;
    let topic = format!("test-out-{}", Uuid::new_v4().simple());
    create_topic(&servers, &topic).await;
    let id = app
        .create_job(&json!({"kind": "kafka", "topic": topic, "key": "order-17",
            "value": {"amount": 3}, "headers": {"source": "test"}, "execute_at": in_secs(0.0)}))
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    let delivered: Value =
        serde_json::from_str(done["attempts"][0]["stdout"].as_str().expect("stdout"))
            .expect("the delivery as JSON");
    assert_eq!(delivered["partition"], 0);
    assert_eq!(delivered["offset"], 0);

    let message = first_message(&servers, &topic).await;
    assert_eq!(message.key(), Some(&b"order-17"[..]));
    assert_eq!(message.payload(), Some(&br#"{"amount":3}"#[..]));
    let headers: HashMap<String, String> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(headers["source"], "test");
    assert_eq!(headers["Kairos-Job-Id"], id.to_string());
    assert_eq!(headers["Kairos-Attempt"], "1");

    // Kairos's own topics are not a target.
    let response = app
        .post_job(
            &json!({"kind": "kafka", "topic": app.settings.kafka.topic.jobs, "value": "x",
            "execute_at": in_secs(0.0)}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["field"], "topic");

    // Nor is a topic `runner.kafka.allowed_topics` does not allow.
    let response = app
        .post_job(&json!({"kind": "kafka", "topic": "payments", "value": "x",
            "execute_at": in_secs(0.0)}))
        .await;
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "topic_not_allowed", "{refused}");
    assert_eq!(refused["error"]["field"], "topic");
}

/// What a kind's configuration forbids is refused at create, naming the field or the key.
#[actix_web::test]
async fn a_job_the_configuration_forbids_is_refused() {
    let mut settings = settings_for(Backend::Standalone);
    settings.runner.http.allowed_hosts = vec!["hooks.example.com".into()];
    let app: TestApp = spawn_app_with(settings).await;
    let response = app
        .post_job(
            &json!({"kind": "http", "url": "http://127.0.0.1:9/", "execute_at": in_secs(0.0)}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "host_not_allowed");
    assert_eq!(refused["error"]["field"], "url");

    let response = app
        .post_job(
            &json!({"kind": "kafka", "topic": "orders", "value": "x", "execute_at": in_secs(0.0)}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "kafka_not_configured");
    let message = refused["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("runner.kafka.bootstrap_servers"),
        "{message}"
    );

    // A field of another kind, or a bad value of the kind's own, names the field.
    for (body, field) in [
        (
            json!({"kind": "http", "url": "ftp://x/", "execute_at": in_secs(0.0)}),
            "url",
        ),
        (
            json!({"kind": "http", "url": "http://hooks.example.com/", "command": "id", "execute_at": in_secs(0.0)}),
            "command",
        ),
        (
            json!({"kind": "http", "url": "http://hooks.example.com/", "method": "BREW", "execute_at": in_secs(0.0)}),
            "method",
        ),
        (
            json!({"kind": "http", "url": "http://hooks.example.com/", "success_status": [300, 200], "execute_at": in_secs(0.0)}),
            "success_status",
        ),
        (
            json!({"kind": "kafka", "topic": "no spaces", "value": "x", "execute_at": in_secs(0.0)}),
            "topic",
        ),
        (
            json!({"kind": "shell", "url": "http://hooks.example.com/", "command": "id", "execute_at": in_secs(0.0)}),
            "url",
        ),
    ] {
        let response = app.post_job(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let refused: Value = response.json().await.expect("JSON");
        assert_eq!(refused["error"]["field"], field, "{body}");
    }
}

/// A dispatch whose spec no runner knows (a kind of a later release, or a kind's fields
/// missing) is set aside on the dead-letter topic, never run as another kind.
#[actix_web::test]
async fn a_dispatch_of_an_unknown_kind_is_dead_lettered_not_run() {
    let app = crate::helpers::spawn_app().await;
    let ran = std::env::temp_dir().join(format!("kairos-unknown-kind-{}", Uuid::new_v4()));
    let id = Uuid::now_v7();
    let dispatch = json!({"job_id": id, "epoch": 1, "attempt": 1, "failures": 0,
        "kind": "ftp", "command": format!("touch {}", ran.display()),
        "execute_at": in_secs(0.0), "max_retries": 0, "timeout_secs": 10});
    let no_command = json!({"job_id": Uuid::now_v7(), "epoch": 1, "attempt": 1, "failures": 0,
        "kind": "shell", "execute_at": in_secs(0.0), "max_retries": 0, "timeout_secs": 10});
    let topic = &app.settings.kafka.topic.jobs;
    for record in [&dispatch, &no_command] {
        app.publish(topic, "unknown", record.to_string().as_bytes())
            .await;
    }
    let dead = crate::helpers::read_until(&app.settings, &format!("{topic}.dlt"), |records| {
        records.len() >= 2
    })
    .await;
    let payloads: Vec<&[u8]> = dead.iter().map(|(_, payload)| payload.as_slice()).collect();
    assert!(
        payloads.contains(&dispatch.to_string().as_bytes()),
        "{dead:?}"
    );
    assert!(
        payloads.contains(&no_command.to_string().as_bytes()),
        "{dead:?}"
    );
    assert!(
        !ran.exists(),
        "a dispatch of an unknown kind ran as a command"
    );
}
