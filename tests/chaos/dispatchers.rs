//! A process that dispatches jobs but runs none, killed while it dispatches: what it claimed
//! and had not published yet is taken back as soon as it is known dead, not once the jobs'
//! leases run out (their time plus `recovery.grace`, 30 s).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, SERIAL};

/// Jobs per batch the client creates.
const BATCH: usize = 20;

/// How long the client creates jobs while the API process is killed every
/// [`KILL_EVERY`].
const CREATING: Duration = Duration::from_secs(20);
const KILL_EVERY: Duration = Duration::from_secs(2);

/// Creates batches of jobs due a second later through the API on `port`, one after another,
/// until `until`; returns how many jobs were acknowledged (`201`). A batch refused or cut
/// short by a kill is not retried: it is stored or not, and the store counts.
async fn create_until(port: u16, run_log: String, until: Instant) -> usize {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/jobs:batch");
    let command = format!("echo \"$KAIROS_JOB_ID $KAIROS_ATTEMPT\" >> {run_log}");
    let mut acknowledged = 0;
    while Instant::now() < until {
        let due = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
        let jobs: Vec<_> = (0..BATCH)
            .map(|_| json!({"command": command, "execute_at": due}))
            .collect();
        match http.post(&url).json(&json!({ "jobs": jobs })).send().await {
            Ok(response) if response.status() == 201 => acknowledged += BATCH,
            // The process is being killed or restarted.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    acknowledged
}

/// An API-only process is killed with SIGKILL every 2 s, and started again, while a client
/// creates batches of jobs due a second later through it; two other processes scan, run and
/// write. The API stores each batch claimed and then publishes it, so a kill often falls
/// between the two. Every job stored runs once and succeeds, none later than 5 s.
#[actix_web::test]
async fn an_api_process_killed_while_it_creates_jobs() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start_with_roles(
        "API killed while it creates",
        &["api", "scanner,executor,writer", "scanner,executor,writer"],
    )
    .await;
    let until = Instant::now() + CREATING;
    let creating = tokio::spawn(create_until(
        cluster.instances[0].port,
        cluster.run_log.display().to_string(),
        until,
    ));
    let mut kills = 0;
    while Instant::now() + KILL_EVERY < until {
        tokio::time::sleep(KILL_EVERY).await;
        cluster.kill_and_restart(0).await;
        kills += 1;
    }
    let acknowledged = creating.await.expect("the client");
    let stored: i64 = cluster
        .database()
        .await
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .expect("count")
        .get(0);
    let stored = usize::try_from(stored).expect("a count");
    assert!(
        stored >= acknowledged,
        "{acknowledged} jobs acknowledged, {stored} stored"
    );
    cluster.settle(stored).await;
    let outcome = cluster.outcome(stored).await;
    outcome.print_row(&format!(
        "API process killed while it creates, every 2 s ({kills} kills)"
    ));
    outcome.assert_sound();
    assert_eq!(outcome.duplicate_runs, 0, "{outcome:?}");
    outcome.assert_lateness(Duration::from_secs(2), Duration::from_secs(5));
}
