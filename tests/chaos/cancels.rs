//! Cancels issued while a process holding the jobs is killed: a cancelled job never starts
//! an attempt after its cancel was answered.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use crate::cluster::{Cluster, SERIAL};

/// Jobs in the scenario; every other one is cancelled.
const JOBS: usize = 600;

/// Nanoseconds since the Unix epoch, as `date +%s%N` writes them.
fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// A cancel and its answer.
#[derive(Debug)]
struct Answered {
    job: Uuid,
    status: u16,
    /// The attempt whose run was claimed when the cancel came (`202` only).
    attempt: i64,
    /// When the answer arrived.
    at: u128,
}

/// 600 jobs due over 12 s on three instances, each running for a second; every other job is
/// cancelled through instance 2, some before their time, some as they start, some while they
/// run, while instance 0, which holds most of them, is killed with SIGKILL and restarted. A job cancelled while waiting
/// (`200`) never starts; one cancelled while its run was claimed (`202`) starts no attempt
/// after that one. Every job not cancelled succeeds.
#[actix_web::test]
async fn cancels_while_a_holder_is_killed() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start("cancels during kill -9", 3).await;
    let starts = cluster.run_log.with_extension("starts");
    let work = format!(
        "echo \"$KAIROS_JOB_ID $KAIROS_ATTEMPT $(date +%s%N)\" >> {}; sleep 1; ",
        starts.display()
    );
    cluster
        .create_jobs(JOBS, Duration::from_secs(3), Duration::from_secs(12), &work)
        .await;
    let database = cluster.database().await;
    let due: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = database
        .query("SELECT id, execute_at FROM jobs ORDER BY execute_at", &[])
        .await
        .expect("the jobs")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    // Instance 0 created the jobs and holds most of them (the others join its consumer group
    // after it): it is the one killed, and the cancels go through instance 2.
    let url = format!("http://127.0.0.1:{}/api/v1/jobs", cluster.instances[2].port);
    let http = reqwest::Client::new();
    let cancels =
        futures_util::future::join_all(due.iter().step_by(2).enumerate().map(|(n, (job, at))| {
            let http = http.clone();
            let url = url.clone();
            async move {
                // Two seconds before its time (before its run is claimed), at its time, or
                // half a second into its run.
                let offset = chrono::Duration::milliseconds([-2000, 0, 500][n % 3]);
                if let Ok(wait) = (*at + offset - chrono::Utc::now()).to_std() {
                    tokio::time::sleep(wait).await;
                }
                let response = http
                    .post(format!("{url}/{job}:cancel"))
                    .send()
                    .await
                    .expect("the cancel is answered");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("JSON");
                Answered {
                    job: *job,
                    status,
                    attempt: body["job"]["attempts"].as_i64().unwrap_or(0),
                    at: now_nanos(),
                }
            }
        }));
    let kill = async {
        tokio::time::sleep(Duration::from_secs(6)).await;
        cluster.kill_and_restart(0).await;
    };
    let (answered, ()) = tokio::join!(cancels, kill);
    cluster.settle(JOBS).await;

    // Every start after the answer of its job's cancel.
    let mut started: HashMap<Uuid, Vec<(i64, u128)>> = HashMap::new();
    for line in std::fs::read_to_string(&starts).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [job, attempt, at] = parts[..]
            && let (Ok(job), Ok(attempt), Ok(at)) = (job.parse(), attempt.parse(), at.parse())
        {
            started.entry(job).or_default().push((attempt, at));
        }
    }
    let mut late_starts = Vec::new();
    let (mut waiting, mut running) = (0, 0);
    for cancel in &answered {
        match cancel.status {
            200 => waiting += 1,
            202 => running += 1,
            409 => continue,
            other => panic!("a cancel answered {other}: {cancel:?}"),
        }
        for (attempt, at) in started.get(&cancel.job).into_iter().flatten() {
            let allowed = cancel.status == 202 && *attempt <= cancel.attempt;
            if *at > cancel.at && !allowed {
                late_starts.push((cancel, attempt, at));
            }
        }
    }
    let cancelled: i64 = database
        .query_one("SELECT count(*) FROM jobs WHERE status = 'CANCELLED'", &[])
        .await
        .expect("a count")
        .get(0);
    assert_eq!(
        cancelled,
        waiting + running,
        "every cancel answered 200 or 202 holds"
    );
    let outcome = cluster.outcome(JOBS).await;
    println!(
        "| scenario | jobs | lost | duplicate runs | lost attempts | lateness p50 | p99 | max | recovery time |"
    );
    println!(
        "| cancels while a holder is killed ({waiting} waiting, {running} running; {} started after the answer) | {} | {} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.2} s |",
        late_starts.len(),
        JOBS,
        outcome.lost - usize::try_from(cancelled).expect("a count"),
        outcome.duplicate_runs,
        outcome.lost_attempts,
        outcome.lateness(0.5).as_secs_f64(),
        outcome.lateness(0.99).as_secs_f64(),
        outcome.lateness(1.0).as_secs_f64(),
        outcome.recovery.as_secs_f64(),
    );
    assert!(
        late_starts.is_empty(),
        "cancelled jobs started after the answer: {late_starts:?}"
    );
    assert_eq!(
        outcome.lost,
        usize::try_from(cancelled).expect("a count"),
        "every job not cancelled succeeds: {outcome:?}"
    );
    assert_eq!(
        outcome.same_attempt_runs, 0,
        "an attempt ran twice: {outcome:?}"
    );
}
