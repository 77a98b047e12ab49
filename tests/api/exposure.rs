//! What a hostile client meets: authentication that follows the routes however a path is
//! spelled, methods answered with `405`, bodies bounded in size, time and memory, and inputs
//! that no store could keep refused at the door.

use std::time::{Duration, Instant};

use kairos::config::Backend;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, in_secs, metric, settings_for, spawn_app_with};

/// A response read off the socket: its status, headers (names lowercased) and body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` exactly as
/// written, with `Connection: close`, and reads the whole answer. The path reaches the server
/// byte for byte: no client normalises it first.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> Raw {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connected");
    let request = format!(
        "{head}\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    stream.write_all(body).await.expect("body written");
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn standalone_with(configure: impl FnOnce(&mut kairos::config::Settings)) -> TestApp {
    let mut settings = settings_for(Backend::Standalone);
    configure(&mut settings);
    spawn_app_with(settings).await
}

/// The spellings of `path` a client might try in order to reach it without a token:
/// percent-encoded letters, doubled slashes, dot segments, other cases.
fn spellings(path: &str) -> Vec<String> {
    let rest = path.strip_prefix("/api/v1").expect("a protected path");
    vec![
        path.to_owned(),
        format!("/%61pi/v1{rest}"),
        format!("/ap%69/v1{rest}"),
        format!("/%61%70%69/v1{rest}"),
        format!("/api/%76%31{rest}"),
        format!(
            "/api/v1{}",
            rest.replacen('j', "%6a", 1).replacen('a', "%61", 1)
        ),
        format!("/api%2Fv1{rest}"),
        format!("//api/v1{rest}"),
        format!("/api//v1{rest}"),
        format!("/api/v1/{rest}"),
        format!("/api/v1/.{rest}"),
        format!("/api/v1/x/..{rest}"),
        format!("/x/../api/v1{rest}"),
        format!("/api/v1/%2e{rest}"),
        format!("/API/v1{rest}"),
        format!("/Api/V1{rest}"),
        format!("/%41PI/v1{rest}"),
        format!("/api/v1{}", rest.to_uppercase()),
    ]
}

/// With tokens configured, every protected route refuses a request without one, whatever
/// spelling of its path the request uses: a spelling the router resolves to the route meets
/// the token check (401), and one it does not resolve reaches no handler (404). Nothing a
/// tokenless request asks for happens.
#[actix_web::test]
async fn authentication_follows_the_routes_whatever_the_spelling() {
    let app = standalone_with(|settings| {
        settings.auth.tokens = vec![kairos::config::TokenEntry::Plain("s3cret".into())]
    })
    .await;
    let token = "Authorization: Bearer s3cret";
    let job = json!({"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}).to_string();
    let created = raw(
        &app,
        &format!("POST /api/v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\n{token}"),
        job.as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = serde_json::from_str::<Value>(&created.body).expect("JSON")["job"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let batch =
        json!({"jobs": [{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}]}).to_string();
    let routes = [
        ("GET", "/api/v1/jobs".to_owned(), String::new()),
        ("POST", "/api/v1/jobs".to_owned(), job.clone()),
        ("POST", "/api/v1/jobs:batch".to_owned(), batch),
        ("GET", format!("/api/v1/jobs/{id}"), String::new()),
        ("GET", "/api/v1/admin/actors".to_owned(), String::new()),
        (
            "POST",
            "/api/v1/admin/actors/scanner/fail".to_owned(),
            String::new(),
        ),
    ];
    for (method, path, body) in &routes {
        for (index, spelling) in spellings(path).iter().enumerate() {
            let head = format!("{method} {spelling} HTTP/1.1\r\nContent-Type: application/json");
            let without = raw(&app, &head, body.as_bytes()).await;
            assert!(
                matches!(without.status, 401 | 404),
                "{method} {spelling} without a token answered {}: {}",
                without.status,
                without.body
            );
            if index == 0 {
                assert_eq!(without.status, 401, "{method} {spelling} is not protected");
            }
            if without.status == 404 {
                // Not resolved to the route: with the token it is not found either.
                let with = raw(&app, &format!("{head}\r\n{token}"), body.as_bytes()).await;
                assert_eq!(
                    with.status, 404,
                    "{method} {spelling} reaches a handler with a token ({}) but skipped the \
                     token check without one",
                    with.body
                );
            }
        }
    }
    let listed = raw(&app, &format!("GET /api/v1/jobs HTTP/1.1\r\n{token}"), b"").await;
    let listed: Value = serde_json::from_str(&listed.body).expect("JSON");
    assert_eq!(
        listed["jobs"].as_array().map(Vec::len),
        Some(1),
        "a request without a token created a job: {listed}"
    );
    let actors = raw(
        &app,
        &format!("GET /api/v1/admin/actors HTTP/1.1\r\n{token}"),
        b"",
    )
    .await;
    let actors: Value = serde_json::from_str(&actors.body).expect("JSON");
    assert_eq!(actors["actors"]["scanner"]["restarts"], 0, "{actors}");
}

/// A path served for other methods answers `405` with `Allow` and the API's error body; a
/// `GET` path answers `HEAD` with its headers and no body.
#[actix_web::test]
async fn a_method_a_path_does_not_serve_answers_405_with_allow() {
    let app = standalone_with(|_| {}).await;
    for (head, allowed) in [
        ("DELETE /api/v1/jobs HTTP/1.1", "GET, HEAD, POST"),
        ("PUT /api/v1/jobs:batch HTTP/1.1", "POST"),
        ("POST /healthz HTTP/1.1", "GET, HEAD"),
        (
            "DELETE /api/v1/jobs/0190a1b2-0000-7000-8000-000000000000 HTTP/1.1",
            "GET, HEAD",
        ),
    ] {
        let answer = raw(&app, head, b"").await;
        assert_eq!(answer.status, 405, "{head}: {}", answer.body);
        assert_eq!(answer.header("allow"), Some(allowed), "{head}");
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{head}");
    }
    let unknown = raw(&app, "GET /api/v1/nothing HTTP/1.1", b"").await;
    assert_eq!(unknown.status, 404);

    let get = raw(&app, "GET /healthz HTTP/1.1", b"").await;
    let head = raw(&app, "HEAD /healthz HTTP/1.1", b"").await;
    assert_eq!((get.status, head.status), (200, 200));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.body, "");
    assert_eq!(get.body, r#"{"status":"ok"}"#);
}

/// A body declared larger than its route accepts is refused before it is sent; one that does
/// not arrive within `http.body_timeout` is answered `408`; and bodies in progress share one
/// memory budget: one that does not fit what is left is refused with `503` and
/// `Retry-After`, and fits again once the body holding the budget is gone.
#[actix_web::test]
async fn request_bodies_are_bounded_in_size_time_and_memory() {
    let app = standalone_with(|settings| {
        settings.http.body_timeout = Duration::from_secs(3);
        settings.jobs.max_batch_body_bytes = 60_000;
        settings.http.max_body_memory = 100_000;
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // Declared too large: refused at once, although not a byte of the body was sent.
    let mut stream = TcpStream::connect(&address).await.expect("connected");
    stream
        .write_all(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
        .await
        .expect("written");
    let answer = read_response(&mut stream).await;
    assert_eq!(answer.status, 413, "{}", answer.body);

    // A stalled batch holds 60,000 bytes of the budget of 100,000...
    let mut stalled = TcpStream::connect(&address).await.expect("connected");
    stalled
        .write_all(b"POST /api/v1/jobs:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"jobs\": [")
        .await
        .expect("written");
    let started = Instant::now();
    // ... once the server reads it (a loaded machine may take a moment to)...
    app.wait_for_metrics("the stalled body held", |text| {
        metric(text, "kairos_http_body_bytes_held").is_some_and(|held| held >= 60_000.0)
    })
    .await;
    // ... so a second one of 50,000 bytes does not fit while the first is unanswered.
    let refused = raw(
        &app,
        "POST /api/v1/jobs:batch HTTP/1.1\r\nContent-Type: application/json",
        &[b' '; 50_000],
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body: Value = serde_json::from_str(&refused.body).expect("JSON");
    assert_eq!(body["error"]["code"], "server_busy");

    // The stalled body times out, and its share of the budget comes back.
    let timed_out = read_response(&mut stalled).await;
    assert_eq!(timed_out.status, 408, "{}", timed_out.body);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2_900) && waited < Duration::from_secs(33),
        "answered after {waited:?}"
    );
    let body: Value = serde_json::from_str(&timed_out.body).expect("JSON");
    assert_eq!(body["error"]["code"], "body_timeout");
    let fits = raw(
        &app,
        "POST /api/v1/jobs:batch HTTP/1.1\r\nContent-Type: application/json",
        &[b' '; 50_000],
    )
    .await;
    assert_eq!(
        fits.status, 400,
        "the budget was not given back: {}",
        fits.body
    );
}

/// Inputs neither store can keep as given are refused at create with a `400` naming the field:
/// NUL characters, and instants outside the years RFC 3339 can write once in UTC.
#[actix_web::test]
async fn what_no_store_could_keep_is_refused_at_create() {
    let app = standalone_with(|_| {}).await;
    let at = "2099-01-01T00:00:00Z";
    let cases = [
        (
            json!({"command": "echo a\u{0}b", "execute_at": at}),
            "command",
        ),
        (
            json!({"command": "true", "name": "a\u{0}", "execute_at": at}),
            "name",
        ),
        (
            json!({"command": "true", "metadata": {"k": ["\u{0}"]}, "execute_at": at}),
            "metadata",
        ),
        (
            json!({"command": "true", "metadata": {"k\u{0}": 1}, "execute_at": at}),
            "metadata",
        ),
        (
            json!({"command": "true", "execute_at": "9999-12-31T23:59:59-23:59"}),
            "execute_at",
        ),
        (
            json!({"command": "true", "execute_at": "0000-01-01T00:00:00+23:59"}),
            "execute_at",
        ),
        (
            json!({"command": "true", "execute_at": "0000-12-31T23:59:59Z"}),
            "execute_at",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_job(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let listed: Value = app.get("/api/v1/jobs").await.json().await.expect("JSON");
    assert_eq!(listed["jobs"], json!([]));

    // The extremes that can be written are kept as given.
    for at in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"] {
        let response = app
            .post_job(&json!({"command": "true", "execute_at": at}))
            .await;
        assert_eq!(response.status(), 201, "{at}");
        let created: Value = response.json().await.expect("JSON");
        assert_eq!(created["job"]["execute_at"], at);
    }
}

/// A job created for a time long past runs at once, and its lateness counts from its creation,
/// not from its time: the lateness histogram measures the scheduler.
#[actix_web::test]
async fn lateness_counts_from_creation_for_a_job_created_late() {
    let app = standalone_with(|_| {}).await;
    let old = app
        .create_job(&json!({"command": "true", "execute_at": "2001-01-01T00:00:00Z"}))
        .await;
    let fresh = app
        .create_job(&json!({"command": "true", "execute_at": in_secs(0.5)}))
        .await;
    for id in [old, fresh] {
        assert_eq!(
            app.wait_until_finished(id).await["job"]["status"],
            "SUCCESS"
        );
    }
    let text = app
        .wait_for_metrics("two firings", |text| {
            metric(text, "kairos_fire_lateness_seconds_count") == Some(2.0)
        })
        .await;
    let sum = metric(&text, "kairos_fire_lateness_seconds_sum").expect("a sum");
    assert!(sum < 10.0, "lateness summed to {sum} s");
}
