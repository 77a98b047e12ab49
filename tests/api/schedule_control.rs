//! A schedule's control through the API, on both backends: pause, resume, trigger, backfill,
//! change and delete; refused expressions and zones; `cancel_previous`; and the retention of
//! finished jobs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use kairos::config::Backend;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::schedules::{create, ended, jobs_of, send, spawn, wait_for_jobs};
use crate::helpers::{POLL, WAIT_LIMIT, metric, time};

contract!(
    pause_resume_trigger_backfill_and_delete,
    bad_expressions_and_zones_are_refused_naming_the_field,
    finished_jobs_are_deleted_after_the_retention_but_a_schedules_latest,
    cancel_previous_stops_the_run_of_the_fire_before,
);

async fn pause_resume_trigger_backfill_and_delete(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    // Every hour: nothing fires by itself while the test runs.
    let created = create(
        &app,
        &json!({"name": "hourly", "cron": "0 0 * * * *", "overlap": "allow_all",
                "job": {"kind": "noop"}}),
    )
    .await;
    let id = created["schedule"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/schedules/{id}");
    let post = reqwest::Method::POST;

    // Trigger: one fire now, outside the rule.
    let (status, fired) = send(&app, post.clone(), &format!("{path}:trigger"), &json!({})).await;
    assert_eq!(status, 201, "{fired}");
    let job: Uuid = fired["fires"][0]["job_id"]
        .as_str()
        .expect("a job")
        .parse()
        .expect("UUID");
    let done = app.wait_until_finished(job).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    assert_eq!(done["job"]["schedule_id"], json!(id));

    // Backfill: the fires of the past three hours, each once however often it is asked.
    let now = Utc::now();
    let range =
        json!({"from": (now - chrono::Duration::hours(3)).to_rfc3339(), "to": now.to_rfc3339()});
    let (status, backfilled) = send(&app, post.clone(), &format!("{path}:backfill"), &range).await;
    assert_eq!(status, 201, "{backfilled}");
    let fires = backfilled["fires"].as_array().expect("fires");
    assert_eq!(fires.len(), 3, "{backfilled}");
    assert!(
        fires
            .iter()
            .all(|fire| time(&fire["scheduled_for"]).timestamp() % 3600 == 0)
    );
    let (status, again) = send(&app, post.clone(), &format!("{path}:backfill"), &range).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["fires"], backfilled["fires"], "a fire has one job");
    let jobs = wait_for_jobs(&app, &id, |jobs| jobs.len() == 4 && jobs.iter().all(ended)).await;
    // Under `allow_all` each backfilled fire runs (under `skip` only the first of those
    // running at once would).
    assert_eq!(
        jobs.iter().filter(|job| job["status"] == "SUCCESS").count(),
        4,
        "{jobs:#?}"
    );
    let (status, refused) = send(
        &app,
        post.clone(),
        &format!("{path}:backfill"),
        &json!({"from": "2020-01-01T00:00:00Z", "to": now.to_rfc3339()}),
    )
    .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (400, &json!("backfill_too_large")),
        "{refused}"
    );

    // Pause with a note, resume.
    let (status, paused) = send(
        &app,
        post.clone(),
        &format!("{path}:pause"),
        &json!({"note": "maintenance"}),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["schedule"]["paused"], true);
    assert_eq!(paused["schedule"]["pause_note"], "maintenance");
    assert_eq!(
        paused["next_fires"],
        json!([]),
        "a paused schedule shows no next fires"
    );
    let (status, resumed) = send(&app, post.clone(), &format!("{path}:resume"), &json!({})).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["schedule"]["paused"], false);
    assert_eq!(resumed["next_fires"].as_array().map(Vec::len), Some(10));

    // A change of rule applies from the next fire.
    let (status, changed) = send(
        &app,
        reqwest::Method::PATCH,
        &path,
        &json!({"cron": "0 30 * * * *"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        time(&changed["schedule"]["next_fire_at"]).timestamp() % 3600,
        1800,
        "{changed}"
    );

    // Listed, then deleted: no more fires, its jobs stay.
    let listed: Value = app
        .get("/api/v1/schedules")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["schedules"][0]["id"], json!(id));
    let deleted = app
        .client
        .delete(format!("{}{path}", app.address))
        .send()
        .await
        .expect("answered");
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(app.get(&path).await.status().as_u16(), 404);
    let (status, _) = send(&app, post, &format!("{path}:trigger"), &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(jobs_of(&app, &id).await.len(), 4, "its jobs stay");
}

async fn bad_expressions_and_zones_are_refused_naming_the_field(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let job = json!({"kind": "noop"});
    let cases = [
        (json!({"cron": "61 * * * *", "job": job}), "cron"),
        (json!({"cron": "* * *", "job": job}), "cron"),
        (json!({"cron": "0 0 31 2 *", "job": job}), "cron"),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "job": job}),
            "timezone",
        ),
        (json!({"every": "soon", "job": job}), "every"),
        (json!({"every": "0s", "job": job}), "every"),
        (
            json!({"cron": "* * * * *", "every": "1m", "job": job}),
            "every",
        ),
        (json!({"job": job}), "cron"),
        (json!({"cron": "* * * * *"}), "job"),
        (
            json!({"cron": "* * * * *", "job": {"command": ""}}),
            "job.command",
        ),
        (
            json!({"cron": "* * * * *", "job": job, "overlap": "sometimes"}),
            "overlap",
        ),
        (
            json!({"cron": "* * * * *", "job": job, "catchup_window_secs": -1}),
            "catchup_window_secs",
        ),
        (
            json!({"cron": "* * * * *", "job": job, "start_at": "2027-01-02T00:00:00Z",
                "end_at": "2027-01-01T00:00:00Z"}),
            "end_at",
        ),
        (
            json!({"cron": "* * * * *", "job": job, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = send(&app, reqwest::Method::POST, "/api/v1/schedules", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let (status, answer) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/schedules:preview",
        &json!({"cron": "0 0 * * *", "timezone": "Nowhere/Land"}),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (400, &json!("timezone")),
        "{answer}"
    );
    let listed: Value = app
        .get("/api/v1/schedules")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["schedules"], json!([]), "nothing refused was stored");
}

/// With a retention of a second, a finished one-off job is deleted soon after it ends, and a
/// schedule keeps its latest `keep_last` finished jobs however old.
async fn finished_jobs_are_deleted_after_the_retention_but_a_schedules_latest(backend: Backend) {
    let app = spawn(backend, |settings| {
        settings.jobs.retention = Duration::from_secs(1);
        settings.jobs.retention_interval = Duration::from_millis(200);
    })
    .await;
    let one_off = app
        .create_job(&json!({"kind": "noop", "execute_at": Utc::now().to_rfc3339()}))
        .await;
    app.wait_until_finished(one_off).await;
    let id = create(
        &app,
        &json!({"every": "1s", "keep_last": 2, "job": {"kind": "noop"}}),
    )
    .await["schedule"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The latest two finished stay while older finished ones go.
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut finished_seen = BTreeSet::new();
    loop {
        let jobs = jobs_of(&app, &id).await;
        let finished: Vec<&Value> = jobs.iter().filter(|job| ended(job)).collect();
        finished_seen.extend(finished.iter().map(|job| job["id"].to_string()));
        if finished_seen.len() >= 5 && finished.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule's finished jobs beyond keep_last were not deleted: {jobs:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let gone = loop {
        let status = app
            .get(&format!("/api/v1/jobs/{one_off}"))
            .await
            .status()
            .as_u16();
        if status == 404 || Instant::now() >= deadline {
            break status;
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(gone, 404, "the finished one-off job was not deleted");
    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metric(&text, "kairos_jobs_purged_total").is_some_and(|n| n >= 3.0),
        "{text}"
    );
}

/// Under `cancel_previous`, a fire whose predecessor still runs cancels it: the predecessor's
/// process is stopped and its job ends `CANCELLED`, and the new fire runs.
async fn cancel_previous_stops_the_run_of_the_fire_before(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let created = create(
        &app,
        &json!({"every": "1s", "overlap": "cancel_previous", "job": {"command": "sleep 30"}}),
    )
    .await;
    let id = created["schedule"]["id"].as_str().expect("id").to_owned();
    let jobs = wait_for_jobs(&app, &id, |jobs| {
        jobs.iter()
            .filter(|job| job["status"] == "CANCELLED")
            .count()
            >= 2
    })
    .await;
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/schedules/{id}:pause"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for job in jobs.iter().filter(|job| job["status"] == "CANCELLED") {
        let id: Uuid = job["id"].as_str().expect("id").parse().expect("UUID");
        let shown = app
            .wait_for_job(id, |job| {
                job["attempts"]
                    .as_array()
                    .is_some_and(|attempts| attempts.iter().all(|a| a["status"] != "RUNNING"))
            })
            .await;
        assert!(
            shown["job"]["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("cancel_previous")),
            "{shown}"
        );
        // A run that started was stopped well before its 30 s: by the fire after it.
        if let Some(attempt) = shown["attempts"].as_array().and_then(|a| a.first()) {
            let ran = time(&attempt["finished_at"]) - time(&attempt["started_at"]);
            assert!(ran < chrono::Duration::seconds(10), "{shown}");
        }
    }
}
