//! What runs at once: `http` jobs' calls and `shell` jobs' commands each have slots of their
//! own (`runner.http.max_concurrent_calls`, `executor.max_concurrent_runs`), so calls to a host
//! that never answers hold back neither the commands nor more calls than their bound.

use kairos::config::Backend;
use serde_json::json;

use crate::helpers::servers::{Connection, next_event, silent_server};
use crate::helpers::{in_secs, metric, settings_for, spawn_app_with};

contract!(calls_that_never_end_leave_the_commands_slots_free);

async fn calls_that_never_end_leave_the_commands_slots_free(backend: Backend) {
    let mut settings = settings_for(backend);
    settings.executor.max_concurrent_runs = 2;
    settings.runner.http.max_concurrent_calls = 2;
    let app = spawn_app_with(settings).await;
    let (server, mut events) = silent_server().await;
    let call = json!({"kind": "http", "url": server, "execute_at": in_secs(0.0),
        "timeout_secs": 600});

    // Two calls take both calls' slots and wait for an answer that never comes.
    let first = app.create_job(&call).await;
    app.create_job(&call).await;
    assert_eq!(next_event(&mut events).await, Some(Connection::Request));
    assert_eq!(next_event(&mut events).await, Some(Connection::Request));
    app.create_job(&call).await;

    // Commands due meanwhile run at once: the calls do not hold their slots.
    let commands = [
        app.create_job(&json!({"command": "echo one", "execute_at": in_secs(0.0)}))
            .await,
        app.create_job(&json!({"command": "echo two", "execute_at": in_secs(0.0)}))
            .await,
    ];
    for id in commands {
        let done = app.wait_until_finished(id).await;
        assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    }
    // The third call still waits for a slot of its own kind: the server saw two requests,
    // and the metrics show both calls' slots taken.
    assert!(
        events.try_recv().is_err(),
        "a third call started beyond runner.http.max_concurrent_calls"
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for (name, value) in [
        ("kairos_run_slots_taken{slot=\"call\"}", 2.0),
        ("kairos_run_slots_limit{slot=\"call\"}", 2.0),
        ("kairos_run_slots_taken{slot=\"command\"}", 0.0),
    ] {
        assert_eq!(metric(&metrics, name), Some(value), "{name}: {metrics}");
    }

    // A call that ends hands its slot to the one waiting.
    let response = app
        .post(&format!("/api/v1/jobs/{first}:cancel"), None)
        .await;
    assert_eq!(response.status(), 202);
    let mut seen = [next_event(&mut events).await, next_event(&mut events).await];
    seen.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(
        seen,
        [Some(Connection::Closed), Some(Connection::Request)],
        "the cancelled call's connection closes and the waiting call starts"
    );
}
