//! Job control through the API: cancel, re-run, idempotent creates and a job's own retry
//! backoff. The first tests run on both backends; the last ones need two processes
//! (the distributed mode).

use std::time::{Duration, Instant};

use kairos::config::Backend;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, WAIT_LIMIT, in_secs, settings_for, spawn_app, spawn_app_with, spawn_peer, time,
};

contract!(
    a_waiting_job_is_cancelled_and_never_runs,
    a_running_job_is_cancelled_and_its_processes_stop,
    an_ended_job_is_rerun_as_a_new_job,
    an_idempotency_key_creates_one_job,
    a_batch_honours_each_jobs_idempotency_key,
    a_job_retries_after_its_own_backoff,
);

async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(settings_for(backend)).await
}

/// A file path no other test uses.
fn marker(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kairos-{what}-{}", Uuid::new_v4()))
}

async fn cancel(app: &TestApp, id: Uuid) -> (u16, Value) {
    let response = app.post(&format!("/api/v1/jobs/{id}:cancel"), None).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn a_waiting_job_is_cancelled_and_never_runs(backend: Backend) {
    let app = spawn(backend).await;
    let ran = marker("cancelled");
    // Due within the horizon: claimed and held by an executor waiting for its time.
    let id = app
        .create_job(
            &json!({"command": format!("touch {}", ran.display()), "execute_at": in_secs(2.0)}),
        )
        .await;
    let (status, body) = cancel(&app, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["status"], "CANCELLED");
    assert!(body["job"]["cancelled_at"].is_string(), "{body}");

    // A job due after it runs; by then the cancelled one's time has passed.
    let later = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(3.0)}))
        .await;
    app.wait_until_finished(later).await;
    let job = app.job(id).await;
    assert_eq!(job["job"]["status"], "CANCELLED");
    assert_eq!(job["attempts"], json!([]), "a cancelled job ran: {job}");
    assert!(!ran.exists(), "the cancelled command ran");

    // Listed by its status; a second cancel changes nothing.
    let listed: Value = app
        .get("/api/v1/jobs?status=CANCELLED")
        .await
        .json()
        .await
        .expect("JSON");
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|job| job["id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.to_string().as_str()]);
    let (status, body) = cancel(&app, id).await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("job_final")));
    let (status, body) = cancel(&app, Uuid::now_v7()).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}

/// The state of process `pid` (`/proc/<pid>/stat`'s third field), or `None` once it is gone.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits until the process `pid` has exited (gone, or a zombie waiting for its parent).
async fn wait_until_gone(pid: i32) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while matches!(process_state(pid), Some(state) if state != 'Z') {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A command that starts a child process, writes its pid to `pid_file`, and waits for it.
fn long_command(pid_file: &std::path::Path) -> String {
    format!("sleep 300 & echo $! > {}; wait", pid_file.display())
}

/// Waits until `pid_file` holds a pid, and returns it.
async fn child_pid(pid_file: &std::path::Path) -> i32 {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the command did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cancels the running job `id` through `app` and checks that its command's child is gone
/// and its attempt recorded `CANCELLED`.
async fn cancel_running(app: &TestApp, reader: &TestApp, id: Uuid, pid_file: &std::path::Path) {
    let child = child_pid(pid_file).await;
    reader
        .wait_for_job(id, |job| job["job"]["status"] == "RUNNING")
        .await;
    let (status, body) = cancel(app, id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["status"], "CANCELLED");
    wait_until_gone(child).await;
    let job = reader
        .wait_for_job(id, |job| job["attempts"][0]["status"] == "CANCELLED")
        .await;
    assert_eq!(job["job"]["status"], "CANCELLED");
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1), "{job}");
    let _ = std::fs::remove_file(pid_file);
}

async fn a_running_job_is_cancelled_and_its_processes_stop(backend: Backend) {
    let app = spawn(backend).await;
    let pid_file = marker("pid");
    let id = app
        .create_job(&json!({"command": long_command(&pid_file), "execute_at": in_secs(0.0)}))
        .await;
    cancel_running(&app, &app, id, &pid_file).await;
}

async fn an_ended_job_is_rerun_as_a_new_job(backend: Backend) {
    let app = spawn(backend).await;
    let id = app
        .create_job(
            &json!({"name": "report", "command": "echo again", "execute_at": in_secs(0.0),
            "max_retries": 1, "metadata": {"team": "billing"}}),
        )
        .await;
    let first = app.wait_until_finished(id).await;
    assert_eq!(first["job"]["status"], "SUCCESS");

    let response = app.post(&format!("/api/v1/jobs/{id}:rerun"), None).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("text")
        .to_owned();
    let rerun: Value = response.json().await.expect("JSON");
    let rerun_id = Uuid::parse_str(rerun["job"]["id"].as_str().expect("an id")).expect("a UUID");
    assert_ne!(rerun_id, id);
    assert_eq!(location, format!("/api/v1/jobs/{rerun_id}"));
    for field in [
        "name",
        "kind",
        "command",
        "max_retries",
        "timeout_secs",
        "metadata",
    ] {
        assert_eq!(rerun["job"][field], first["job"][field], "{field}");
    }
    assert_eq!(rerun["job"]["rerun_of"], json!(id.to_string()));
    let done = app.wait_until_finished(rerun_id).await;
    assert_eq!(done["attempts"][0]["stdout"], "again\n");

    // At a given time; a job that has not ended cannot be re-run.
    let at = in_secs(3600.0);
    let response = app
        .post(
            &format!("/api/v1/jobs/{id}:rerun"),
            Some(&json!({"execute_at": at})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let later: Value = response.json().await.expect("JSON");
    // Stored to the microsecond.
    assert_eq!(
        time(&later["job"]["execute_at"]).timestamp_micros(),
        time(&json!(at)).timestamp_micros()
    );
    let later_id = later["job"]["id"].as_str().expect("an id");
    let response = app
        .post(&format!("/api/v1/jobs/{later_id}:rerun"), None)
        .await;
    assert_eq!(response.status(), 409);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "job_not_final");
    let response = app
        .post(
            &format!("/api/v1/jobs/{id}:rerun"),
            Some(&json!({"when": "now"})),
        )
        .await;
    assert_eq!(response.status(), 400);
}

/// `POST /api/v1/jobs` with an `Idempotency-Key`.
async fn post_keyed(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/api/v1/jobs", app.address))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn an_idempotency_key_creates_one_job(backend: Backend) {
    let app = spawn(backend).await;
    let key = format!("order-{}", Uuid::new_v4());
    let body = json!({"name": "charge", "command": "true", "execute_at": in_secs(3600.0)});
    let (status, first) = post_keyed(&app, &key, &body).await;
    assert_eq!(status, 201, "{first}");
    // The same job again, its fields in another order: the job first created, nothing new.
    let again = json!({"execute_at": body["execute_at"], "command": "true", "name": "charge"});
    let (status, second) = post_keyed(&app, &key, &again).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["job"]["id"], first["job"]["id"]);
    // Another job with the same key is refused; the key holds.
    let other = json!({"name": "charge", "command": "false", "execute_at": body["execute_at"]});
    let (status, refused) = post_keyed(&app, &key, &other).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let listed: Value = app.get("/api/v1/jobs").await.json().await.expect("JSON");
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1), "{listed}");

    let (status, bad) = post_keyed(&app, "has space", &body).await;
    assert_eq!(
        (status, &bad["error"]["field"]),
        (400, &json!("Idempotency-Key"))
    );
}

async fn a_batch_honours_each_jobs_idempotency_key(backend: Backend) {
    let app = spawn(backend).await;
    let at = in_secs(3600.0);
    let batch = json!({"jobs": [
        {"kind": "noop", "execute_at": at, "idempotency_key": "a"},
        {"kind": "noop", "execute_at": at},
        {"kind": "noop", "execute_at": at, "idempotency_key": "b", "name": "b"},
    ]});
    let first = app.create_batch(&batch).await;
    assert_eq!(first.len(), 3);
    // Sent again: the keyed jobs are the same ones, the unkeyed one is new.
    let response = app.post_batch(&batch).await;
    assert_eq!(response.status(), 201);
    let again: Value = response.json().await.expect("JSON");
    assert_eq!(again["ids"][0], json!(first[0].to_string()));
    assert_ne!(again["ids"][1], json!(first[1].to_string()));
    assert_eq!(again["ids"][2], json!(first[2].to_string()));
    // Only keyed jobs, all known: nothing is created, and the answer says so.
    let keyed = json!({"jobs": [{"kind": "noop", "execute_at": at, "idempotency_key": "a"}]});
    assert_eq!(app.post_batch(&keyed).await.status(), 200);
    // A key given before with another job refuses the whole batch.
    let reused = json!({"jobs": [
        {"kind": "noop", "execute_at": at, "idempotency_key": "c"},
        {"kind": "noop", "execute_at": at, "idempotency_key": "b", "name": "not b"},
    ]});
    let response = app.post_batch(&reused).await;
    assert_eq!(response.status(), 409);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["items"][0]["index"], 1);
    let listed: Value = app.get("/api/v1/jobs").await.json().await.expect("JSON");
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(4), "{listed}");
}

async fn a_job_retries_after_its_own_backoff(backend: Backend) {
    let app = spawn(backend).await;
    // The test configuration retries within 200 ms; this job waits 3 s.
    let id = app
        .create_job(&json!({
            "command": "[ \"$KAIROS_ATTEMPT\" -gt 1 ] || exit 1",
            "execute_at": in_secs(0.0),
            "retry_backoff": {"base": "3s", "max": "3s", "jitter": 0},
        }))
        .await;
    let job = app.wait_until_finished(id).await;
    assert_eq!(job["job"]["status"], "SUCCESS");
    assert_eq!(
        job["job"]["retry_backoff"],
        json!({"base": "3s", "max": "3s", "jitter": 0.0})
    );
    let failed_at = time(&job["attempts"][0]["finished_at"]);
    let retried_at = time(&job["attempts"][1]["started_at"]);
    assert!(
        retried_at - failed_at >= chrono::Duration::seconds(3),
        "retried {} after the failure",
        retried_at - failed_at
    );
}

/// A cancel reaches the executor holding the job, whichever process it is sent to.
#[actix_web::test]
async fn a_cancel_sent_to_another_process_stops_the_job() {
    let app = spawn_app().await;
    let peer = spawn_peer(&app).await;
    let pid_file = marker("pid");
    let id = app
        .create_job(&json!({"command": long_command(&pid_file), "execute_at": in_secs(0.0)}))
        .await;
    let runner = holder(&app, id).await;
    let other = if runner == app.instance { &peer } else { &app };
    cancel_running(other, &app, id, &pid_file).await;

    // A waiting job held by one process, cancelled through the other, never runs.
    let ran = marker("cancelled");
    let id = app
        .create_job(
            &json!({"command": format!("touch {}", ran.display()), "execute_at": in_secs(3.0)}),
        )
        .await;
    let runner = holder(&app, id).await;
    let other = if runner == app.instance { &peer } else { &app };
    assert_eq!(cancel(other, id).await.0, 200);
    let later = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(4.0)}))
        .await;
    app.wait_until_finished(later).await;
    assert_eq!(app.job(id).await["attempts"], json!([]));
    assert!(!ran.exists(), "the cancelled command ran");
}

/// The instance holding job `id`, once one does.
async fn holder(app: &TestApp, id: Uuid) -> String {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let runner: Option<String> = app
            .query_value("SELECT runner FROM jobs WHERE id = $1", &[&id])
            .await;
        if let Some(runner) = runner {
            return runner;
        }
        assert!(Instant::now() < deadline, "no process holds job {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two processes given the same key at the same moment store one job.
#[actix_web::test]
async fn one_key_sent_to_two_processes_at_once_creates_one_job() {
    let app = spawn_app().await;
    let peer = spawn_peer(&app).await;
    for round in 0..5 {
        let key = format!("race-{round}-{}", Uuid::new_v4());
        let body = json!({"kind": "noop", "execute_at": in_secs(3600.0), "name": key});
        let ((first, one), (second, two)) = tokio::join!(
            post_keyed(&app, &key, &body),
            post_keyed(&peer, &key, &body)
        );
        let mut statuses = [first, second];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "{one} {two}");
        assert_eq!(one["job"]["id"], two["job"]["id"]);
        let stored: i64 = app
            .query_value("SELECT count(*) FROM jobs WHERE name = $1", &[&key])
            .await;
        assert_eq!(stored, 1);
    }
}
