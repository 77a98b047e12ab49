//! Recurring schedules through the API, on both backends: fire instants, DST days, the
//! overlap rules and catch-up after downtime (the control routes, refusals and retention are
//! in `schedule_control.rs`), and the helpers both files use.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kairos::config::{Backend, Settings};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::schedules::{create, ended, fire_times, schedule, send, spawn, wait_for_jobs};
use crate::helpers::{TestApp, metric, time};

contract!(
    six_field_expressions_fire_at_their_instants,
    dst_days_follow_crons_rule_in_three_zones,
    skip_and_buffer_one_hold_a_job_that_outlasts_its_interval,
);

async fn six_field_expressions_fire_at_their_instants(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let created = create(
        &app,
        &json!({"name": "even seconds", "cron": "*/2 * * * * *", "overlap": "allow_all",
                "job": {"kind": "noop"}}),
    )
    .await;
    let id = created["schedule"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    // The next fires are the coming even seconds.
    let next: Vec<DateTime<Utc>> = created["next_fires"]
        .as_array()
        .expect("next fires")
        .iter()
        .map(time)
        .collect();
    assert_eq!(next.len(), 10, "{created}");
    for pair in next.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::seconds(2), "{next:?}");
    }
    assert!(
        next.iter()
            .all(|at| at.timestamp() % 2 == 0 && at.timestamp_subsec_nanos() == 0),
        "{next:?}"
    );

    let jobs = wait_for_jobs(&app, &id, |jobs| {
        jobs.iter().filter(|job| ended(job)).count() >= 3
    })
    .await;
    let times = fire_times(&jobs);
    for (job, at) in jobs.iter().zip(&times) {
        assert_eq!(at.timestamp() % 2, 0, "{job}");
        assert_eq!(at.timestamp_subsec_nanos(), 0, "{job}");
        assert_eq!(job["schedule_id"], json!(id));
        assert_eq!(time(&job["execute_at"]), *at, "no jitter was asked for");
    }
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(2),
            "one job per fire: {times:?}"
        );
    }
    for job in jobs.iter().filter(|job| ended(job)) {
        let id: Uuid = job["id"].as_str().expect("an id").parse().expect("a UUID");
        let shown = app.job(id).await;
        assert_eq!(shown["job"]["status"], "SUCCESS", "{shown}");
        let lateness = time(&shown["attempts"][0]["started_at"]) - time(&job["scheduled_for"]);
        assert!(
            lateness >= chrono::Duration::zero(),
            "started {lateness} early: {shown}"
        );
        assert!(
            lateness < chrono::Duration::seconds(1),
            "started {lateness} late: {shown}"
        );
    }

    // The schedule shows its latest fires with their jobs and statuses, newest first.
    let shown = schedule(&app, &id).await;
    let last = shown["last_fires"].as_array().expect("last fires");
    assert!(last.len() >= 3, "{shown}");
    for pair in last.windows(2) {
        assert!(time(&pair[0]["scheduled_for"]) > time(&pair[1]["scheduled_for"]));
    }
    let finished = last
        .iter()
        .find(|fire| fire["status"] == "SUCCESS")
        .expect("a finished fire");
    assert!(
        jobs.iter().any(|job| job["id"] == finished["job_id"]),
        "{shown}"
    );
}

async fn preview(app: &TestApp, body: &Value) -> Vec<String> {
    let (status, answer) = send(
        app,
        reqwest::Method::POST,
        "/api/v1/schedules:preview",
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["fires"]
        .as_array()
        .expect("fires")
        .iter()
        .map(|at| time(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

/// A time missing on a spring-forward day fires at the gap's end, a repeated one once at its
/// first occurrence, and expressions firing every hour or minute follow absolute time.
async fn dst_days_follow_crons_rule_in_three_zones(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let cases = [
        // New York, 2027-03-14: 02:00 EST becomes 03:00 EDT; 02:30 does not exist.
        (
            "0 30 2 * * *",
            "America/New_York",
            "2027-03-13T12:00:00Z",
            2,
            vec!["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"],
        ),
        // New York, 2027-11-07: 02:00 EDT becomes 01:00 EST; 01:30 fires once.
        (
            "0 30 1 * * *",
            "America/New_York",
            "2027-11-06T12:00:00Z",
            2,
            vec!["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
        ),
        // Every 30 minutes through New York's repeated hour: each absolute half hour once.
        (
            "0 */30 * * * *",
            "America/New_York",
            "2027-11-07T05:00:00Z",
            4,
            vec![
                "2027-11-07T05:00:00Z",
                "2027-11-07T05:30:00Z",
                "2027-11-07T06:00:00Z",
                "2027-11-07T06:30:00Z",
            ],
        ),
        // Berlin, 2027-03-28: 02:00 CET becomes 03:00 CEST.
        (
            "0 30 2 * * *",
            "Europe/Berlin",
            "2027-03-27T12:00:00Z",
            2,
            vec!["2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"],
        ),
        // Berlin, 2027-10-31: 03:00 CEST becomes 02:00 CET; 02:30 fires once.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2027-10-30T12:00:00Z",
            2,
            vec!["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"],
        ),
        // Hourly through Berlin's repeated hour.
        (
            "@hourly",
            "Europe/Berlin",
            "2027-10-30T23:30:00Z",
            4,
            vec![
                "2027-10-31T00:00:00Z",
                "2027-10-31T01:00:00Z",
                "2027-10-31T02:00:00Z",
                "2027-10-31T03:00:00Z",
            ],
        ),
        // São Paulo, 2018-11-04: midnight did not exist (00:00 -03 became 01:00 -02).
        (
            "0 0 0 * * *",
            "America/Sao_Paulo",
            "2018-11-03T12:00:00Z",
            2,
            vec!["2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z"],
        ),
        // São Paulo, 2019-02-17: 00:00 -02 went back to 23:00 -03; 23:30 fires once.
        (
            "0 30 23 * * *",
            "America/Sao_Paulo",
            "2019-02-16T12:00:00Z",
            2,
            vec!["2019-02-17T01:30:00Z", "2019-02-18T02:30:00Z"],
        ),
    ];
    for (cron, zone, from, count, expected) in cases {
        let fires = preview(
            &app,
            &json!({"cron": cron, "timezone": zone, "from": from, "count": count}),
        )
        .await;
        assert_eq!(fires, expected, "{cron} in {zone} from {from}");
    }
    // The rest of the grammar: L, W, #, names, lists and ranges.
    let fires = preview(
        &app,
        &json!({"cron": "0 0 12 L * *", "from": "2027-01-15T00:00:00Z", "count": 3}),
    )
    .await;
    assert_eq!(
        fires,
        [
            "2027-01-31T12:00:00Z",
            "2027-02-28T12:00:00Z",
            "2027-03-31T12:00:00Z"
        ]
    );
    let fires = preview(
        &app,
        &json!({"cron": "0 9 * * MON#2", "timezone": "Europe/Berlin",
                "from": "2027-01-01T00:00:00Z", "count": 2}),
    )
    .await;
    assert_eq!(fires, ["2027-01-11T08:00:00Z", "2027-02-08T08:00:00Z"]);
    let fires = preview(
        &app,
        &json!({"cron": "0 0 15W * *", "from": "2027-05-01T00:00:00Z", "count": 1}),
    )
    .await;
    assert_eq!(
        fires,
        ["2027-05-14T00:00:00Z"],
        "May 15th 2027 is a Saturday"
    );
}

/// One run at a time however long each takes: under `skip` a fire whose predecessor still
/// runs ends `SKIPPED` without running; under `buffer_one` it waits for it and runs after,
/// and only a further fire meanwhile is skipped.
async fn skip_and_buffer_one_hold_a_job_that_outlasts_its_interval(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let job = json!({"command": "sleep 2.5"});
    let skip = create(&app, &json!({"every": "1s", "overlap": "skip", "job": job})).await;
    let buffer = create(
        &app,
        &json!({"every": "1s", "overlap": "buffer_one", "job": job}),
    )
    .await;
    let ids =
        [&skip, &buffer].map(|created| created["schedule"]["id"].as_str().expect("id").to_owned());
    // Two runs each, and the fires between them decided.
    let mut settled = Vec::new();
    for id in &ids {
        settled.push(
            wait_for_jobs(&app, id, |jobs| {
                jobs.iter().filter(|job| job["status"] == "SUCCESS").count() >= 2
            })
            .await,
        );
    }
    for id in &ids {
        let (status, body) = send(
            &app,
            reqwest::Method::POST,
            &format!("/api/v1/schedules/{id}:pause"),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for (rule, jobs) in ["skip", "buffer_one"].iter().zip(&settled) {
        let mut runs = Vec::new();
        for job in jobs.iter().filter(|job| job["status"] == "SUCCESS") {
            let id: Uuid = job["id"].as_str().expect("id").parse().expect("UUID");
            let shown = app.job(id).await;
            let attempt = &shown["attempts"][0];
            runs.push((
                time(&attempt["started_at"]),
                time(&attempt["finished_at"]),
                time(&job["scheduled_for"]),
            ));
        }
        runs.sort();
        for pair in runs.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "{rule}: two runs at once: {runs:?}");
        }
        let skipped: Vec<&Value> = jobs
            .iter()
            .filter(|job| job["status"] == "SKIPPED")
            .collect();
        assert!(
            !skipped.is_empty(),
            "{rule}: no fire was skipped: {jobs:#?}"
        );
        for job in &skipped {
            let id: Uuid = job["id"].as_str().expect("id").parse().expect("UUID");
            let shown = app.job(id).await;
            assert_eq!(
                shown["attempts"],
                json!([]),
                "{rule}: a skipped fire ran: {shown}"
            );
        }
        let waited = runs
            .iter()
            .filter(|(started, _, fire)| *started - *fire > chrono::Duration::milliseconds(500))
            .count();
        if *rule == "skip" {
            assert_eq!(waited, 0, "skip: a fire waited: {runs:?}");
        } else {
            // The buffered fire starts as its predecessor ends, not at its own time.
            assert!(waited >= 1, "buffer_one: no fire waited: {runs:?}");
            for pair in runs.windows(2) {
                let gap = pair[1].0 - pair[0].1;
                assert!(
                    gap < chrono::Duration::seconds(1),
                    "buffer_one: the buffered fire started {gap} after: {runs:?}"
                );
            }
        }
    }
}

/// The standalone mode's catch-up is shown by the chaos suite, on a real process killed and
/// started again on its data directory (in one test process, the stopped application's
/// actors would still hold the directory).
#[actix_web::test]
async fn catchup_after_downtime_longer_and_shorter_than_the_window() {
    catchup(Backend::Distributed).await;
}

/// The deployment is down for ten seconds across two fires of two `every: 4s` schedules.
/// When it is back, the schedule whose catch-up window spans the downtime runs its latest
/// missed fire once and counts the other as missed; the one whose window is shorter runs
/// neither and counts both. Both fire on time again afterwards.
async fn catchup(backend: Backend) {
    let change = |settings: &mut Settings| settings.schedules.lookahead = Duration::from_secs(2);
    let app = spawn(backend, change).await;
    let start = Utc::now() + chrono::Duration::seconds(2);
    let start = start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
    let body = |window: u32| {
        json!({"every": "4s", "start_at": start.to_rfc3339(), "catchup_window_secs": window,
               "job": {"kind": "noop"}})
    };
    let long = create(&app, &body(30)).await["schedule"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let short = create(&app, &body(1)).await["schedule"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for id in [&long, &short] {
        wait_for_jobs(&app, id, |jobs| jobs.first().is_some_and(ended)).await;
    }

    // Down from just after the first fire until 2.5 s after the third.
    let app = app
        .restart_at(start + chrono::Duration::milliseconds(10_500))
        .await;
    let at = |seconds: i64| start + chrono::Duration::seconds(seconds);
    let long_jobs = wait_for_jobs(&app, &long, |jobs| {
        jobs.iter().filter(|job| ended(job)).count() >= 3
    })
    .await;
    let short_jobs = wait_for_jobs(&app, &short, |jobs| {
        jobs.iter().filter(|job| ended(job)).count() >= 2
    })
    .await;
    assert_eq!(
        fire_times(&long_jobs)[..3],
        [at(0), at(8), at(12)],
        "{long_jobs:#?}"
    );
    assert_eq!(
        fire_times(&short_jobs)[..2],
        [at(0), at(12)],
        "{short_jobs:#?}"
    );
    assert!(
        long_jobs
            .iter()
            .chain(&short_jobs)
            .all(|job| job["status"] != "FAILED")
    );
    assert_eq!(schedule(&app, &long).await["schedule"]["missed_fires"], 1);
    assert_eq!(schedule(&app, &short).await["schedule"]["missed_fires"], 2);
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(
        metric(&text, "kairos_fires_missed_total"),
        Some(3.0),
        "{text}"
    );
}
