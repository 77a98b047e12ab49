//! Schedules under chaos: every fire of every schedule runs, once, while the processes that
//! make the fires are killed; and a standalone process killed across fires catches up by the
//! catch-up rule when it is started again.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::cluster::{Cluster, SERIAL, SETTLE_LIMIT};
use crate::standalone::Standalone;

/// Schedules in the scenario, each firing every second.
const SCHEDULES: usize = 100;

/// How long the schedules fire, in seconds, while processes are killed.
const FIRING_SECS: i64 = 120;

/// Creates a schedule through the API on `port`; returns its id.
async fn create(http: &reqwest::Client, port: u16, body: &Value) -> String {
    let response = http
        .post(format!("http://127.0.0.1:{port}/api/v1/schedules"))
        .json(body)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(status, 201, "schedule not created: {created}");
    created["schedule"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// The fires the run log shows, by schedule (the `s<n>` tag of its command) and nominal
/// time, with how often each ran.
fn logged_fires(log: &std::path::Path) -> HashMap<(String, DateTime<Utc>), usize> {
    let mut fires = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [_, _, tag, at] = parts[..]
            && let Ok(at) = DateTime::parse_from_rfc3339(at)
        {
            *fires
                .entry((tag.to_owned(), at.with_timezone(&Utc)))
                .or_default() += 1;
        }
    }
    fires
}

/// The shell command of schedule `tag`: appends `<job id> <attempt> <tag> <fire time>`.
fn logging(tag: &str, log: &std::path::Path) -> String {
    format!(
        "echo \"$KAIROS_JOB_ID $KAIROS_ATTEMPT {tag} $KAIROS_SCHEDULED_AT\" >> {}",
        log.display()
    )
}

/// Three processes share 100 schedules firing every second for two minutes, while one of
/// them is killed with SIGKILL and started again every 5 s. Counted from the run log the jobs
/// write: every second of every schedule ran, and ran once unless its attempt was in flight
/// on a killed process; the store holds one job per fire and no fire was missed.
#[actix_web::test]
async fn every_fire_runs_once_while_processes_are_killed() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start("schedules under kill -9", 3).await;
    let http = reqwest::Client::new();
    let port = cluster.instances[0].port;
    // Far enough ahead for the creates (each runs a fire pass): a schedule created after its
    // `start_at` fires from its creation on, not from `start_at`.
    let start = (Utc::now() + chrono::Duration::seconds(20)).trunc_subsecs(0);
    let end = start + chrono::Duration::seconds(FIRING_SECS);
    for n in 0..SCHEDULES {
        let tag = format!("s{n}");
        create(
            &http,
            port,
            &json!({"name": tag, "every": "1s", "overlap": "allow_all",
                    "start_at": start.to_rfc3339(), "end_at": end.to_rfc3339(),
                    "job": {"command": logging(&tag, &cluster.run_log)}}),
        )
        .await;
    }
    assert!(
        Utc::now() < start,
        "the schedules were created after their start"
    );

    let mut victim = 0;
    while Utc::now() < end {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.kill_and_restart(victim % 3).await;
        victim += 1;
    }
    let fires_each = usize::try_from(FIRING_SECS + 1).expect("a count");
    let jobs = SCHEDULES * fires_each;
    cluster.settle(jobs).await;
    let outcome = cluster.outcome(jobs).await;
    outcome.print_row(&format!(
        "{SCHEDULES} schedules every 1 s for {FIRING_SECS} s, kill -9 of one of 3 every 5 s ({victim} kills)"
    ));

    // Counted outside Kairos: every second of every schedule ran.
    let logged = logged_fires(&cluster.run_log);
    let mut without_run = Vec::new();
    for n in 0..SCHEDULES {
        for second in 0..=FIRING_SECS {
            let fire = (format!("s{n}"), start + chrono::Duration::seconds(second));
            if !logged.contains_key(&fire) {
                without_run.push(fire);
            }
        }
    }
    assert!(
        without_run.is_empty(),
        "fires that never ran: {without_run:?}"
    );
    assert_eq!(
        logged.len(),
        jobs,
        "runs of fires outside the schedules' range"
    );
    let database = cluster.database().await;
    let row = database
        .query_one(
            "SELECT count(*), count(DISTINCT (schedule_id, scheduled_for)), \
                 (SELECT COALESCE(sum(missed_fires), 0)::int8 FROM schedules) FROM jobs",
            &[],
        )
        .await
        .expect("counts");
    let (stored, distinct, missed): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (stored, distinct, missed),
        (i64::try_from(jobs).expect("count"), stored, 0),
        "one job per fire, none missed"
    );
    outcome.assert_sound();
    outcome.assert_lateness(Duration::from_secs(2), Duration::from_secs(5));
}

/// A standalone process with two `every: 10s` schedules is killed with SIGKILL just after
/// their first fire and started again 26 s later, after two more fires were due. The
/// schedule whose catch-up window spans the downtime runs its latest missed fire once and
/// counts the other as missed; the one whose window is shorter runs neither and counts both.
/// Both fire on time again afterwards.
#[actix_web::test]
async fn a_standalone_process_catches_up_by_the_window_after_a_kill() {
    let _serial = SERIAL.lock().await;
    let standalone = Standalone::new();
    let mut first = standalone.start("first.log").await;
    let start = (Utc::now() + chrono::Duration::seconds(3)).trunc_subsecs(0);
    let at = |seconds: i64| start + chrono::Duration::seconds(seconds);
    let mut ids = Vec::new();
    for (tag, window) in [("long", 30), ("short", 1)] {
        ids.push(
            create(
                &standalone.http,
                standalone.port,
                &json!({"every": "10s", "start_at": start.to_rfc3339(),
                        "catchup_window_secs": window,
                        "job": {"command": logging(tag, &standalone.run_log)}}),
            )
            .await,
        );
    }
    // Killed once both first fires' jobs are recorded: an attempt in flight at the kill would
    // be run again after the restart, as any job's is (`guarantees.md`).
    for id in &ids {
        wait_for_recorded(&standalone, id).await;
    }
    first.kill_hard();
    // Down across the fires at 10 s and 20 s; back 6 s after the second (past the 5 s
    // lookahead within which a passed fire is only late).
    if let Ok(down) = (at(26) - Utc::now()).to_std() {
        tokio::time::sleep(down).await;
    }
    let _second = standalone.start("second.log").await;
    let fires = wait_for_runs(&standalone, |fires| {
        fires.iter().filter(|(_, fire)| *fire >= at(30)).count() >= 2
    })
    .await;
    let of = |tag: &str| -> Vec<DateTime<Utc>> {
        fires
            .iter()
            .filter(|(which, fire)| which == tag && *fire <= at(30))
            .map(|(_, fire)| *fire)
            .collect()
    };
    assert_eq!(of("long"), [at(0), at(20), at(30)]);
    assert_eq!(of("short"), [at(0), at(30)]);
    for (id, missed) in ids.iter().zip([1, 2]) {
        let shown: Value = standalone
            .http
            .get(format!(
                "http://127.0.0.1:{}/api/v1/schedules/{id}",
                standalone.port
            ))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        assert_eq!(shown["schedule"]["missed_fires"], missed, "{shown}");
    }
    println!(
        "| standalone kill -9 across two fires of two every-10 s schedules (catch-up windows 30 s and 1 s: 1 fire caught up, 3 counted missed) | {} | 0 | 0 | - | - | - | - | - |",
        of("long").len() + of("short").len()
    );
}

/// Waits until the run log's fires (tag, time; each once) satisfy `condition`.
async fn wait_for_runs(
    standalone: &Standalone,
    condition: impl Fn(&BTreeSet<(String, DateTime<Utc>)>) -> bool,
) -> BTreeSet<(String, DateTime<Utc>)> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let logged = logged_fires(&standalone.run_log);
        assert!(
            logged.values().all(|runs| *runs == 1),
            "a fire ran twice: {logged:?}"
        );
        let fires: BTreeSet<_> = logged.into_keys().collect();
        if condition(&fires) {
            return fires;
        }
        assert!(
            Instant::now() < deadline,
            "the fires never came: {fires:?}; logs in {}",
            standalone.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the first fire's job of schedule `id` has ended `SUCCESS`.
async fn wait_for_recorded(standalone: &Standalone, id: &str) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let page: Value = standalone
            .http
            .get(format!(
                "http://127.0.0.1:{}/api/v1/jobs?schedule_id={id}",
                standalone.port
            ))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.iter().any(|job| job["status"] == "SUCCESS") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the first fire of {id} never ended: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
