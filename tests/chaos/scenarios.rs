//! The four chaos scenarios.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, SERIAL, services};
use crate::instance::free_port;

/// Jobs per scenario.
const JOBS: usize = 2000;

/// kill -9 one of three instances every 3 s while 2,000 jobs fall due, restarting it each
/// time: no job is lost; a job runs twice only if its attempt was in flight on a killed
/// process.
#[actix_web::test]
async fn kill_nine_one_of_three_instances_repeatedly() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start("kill -9", 3).await;
    cluster
        .create_jobs(JOBS, Duration::from_secs(3), Duration::from_secs(20), "")
        .await;
    let until = Instant::now() + Duration::from_secs(21);
    let mut victim = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.kill_and_restart(victim % 3).await;
        victim += 1;
    }
    cluster.settle(JOBS).await;
    let outcome = cluster.outcome(JOBS).await;
    outcome.print_row("kill -9 one of 3 instances every 3 s");
    outcome.assert_sound();
    outcome.assert_lateness(Duration::from_secs(2), Duration::from_secs(5));
}

/// The Kafka broker stops and restarts while jobs fall due: producers retry, consumers
/// resume from their committed offsets, and every job runs once.
#[actix_web::test]
async fn the_broker_restarts_mid_run() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start("broker restart", 3).await;
    cluster
        .create_jobs(JOBS, Duration::from_secs(3), Duration::from_secs(20), "")
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let outage = Instant::now();
    services("kafka-restart");
    let outage = outage.elapsed();
    cluster.settle(JOBS).await;
    let outcome = cluster.outcome(JOBS).await;
    outcome.print_row(&format!(
        "Kafka broker restart mid-run ({:.1} s down)",
        outage.as_secs_f64()
    ));
    outcome.assert_sound();
    let bound = outage + Duration::from_secs(5);
    outcome.assert_lateness(bound, bound);
    assert_eq!(
        outcome.duplicate_runs, 0,
        "no process died, so nothing may run twice"
    );
}

/// PostgreSQL restarts while jobs fall due: the instances reconnect, results wait in Kafka,
/// and every job runs once.
#[actix_web::test]
async fn the_database_restarts_mid_run() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start("database restart", 3).await;
    cluster
        .create_jobs(JOBS, Duration::from_secs(3), Duration::from_secs(20), "")
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let outage = Instant::now();
    services("postgres-restart");
    let outage = outage.elapsed();
    cluster.settle(JOBS).await;
    let outcome = cluster.outcome(JOBS).await;
    outcome.print_row(&format!(
        "PostgreSQL restart mid-run ({:.1} s down)",
        outage.as_secs_f64()
    ));
    outcome.assert_sound();
    let bound = outage + Duration::from_secs(5);
    outcome.assert_lateness(bound, bound);
    assert_eq!(
        outcome.duplicate_runs, 0,
        "no process died, so nothing may run twice"
    );
}

/// SIGTERM an instance while long jobs run on it: it lets them finish, hands its waiting jobs
/// to the other instance, exits 0, and nothing is lost or run twice.
#[actix_web::test]
async fn sigterm_while_long_jobs_run() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start("SIGTERM", 2).await;
    let jobs = 300;
    cluster
        .create_jobs(
            jobs,
            Duration::from_secs(2),
            Duration::from_secs(12),
            "sleep 2; ",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_gracefully_and_check(&mut cluster, jobs, "SIGTERM an instance running long jobs").await;
}

/// SIGTERM an instance while far more jobs are due at once than it has run slots (2 s jobs, 64
/// slots each): it stops within seconds, hands the jobs that had not started to the other
/// instance, and every job runs exactly once, with no attempt lost.
#[actix_web::test]
async fn sigterm_with_more_due_jobs_than_run_slots() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start("SIGTERM, jobs beyond the run slots", 2).await;
    let dispatcher_partitions = "kairos_consumer_partitions{consumer=\"dispatcher\"}";
    cluster
        .wait_for_metric(1, dispatcher_partitions, |partitions| partitions >= 1.0)
        .await;
    let jobs = 1000;
    cluster
        .create_jobs(jobs, Duration::from_secs(2), Duration::ZERO, "sleep 2; ")
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The instance to stop runs commands, with more waiting behind them.
    cluster
        .wait_for_metric(1, "kairos_executor_running", |running| running >= 1.0)
        .await;
    cluster
        .wait_for_metric(1, "kairos_executor_waiting", |waiting| waiting >= 64.0)
        .await;
    stop_gracefully_and_check(
        &mut cluster,
        jobs,
        "SIGTERM an instance with more due jobs than run slots",
    )
    .await;
}

/// SIGTERMs the cluster's second instance, which must exit 0, then checks that all `jobs`
/// end, none lost, none run twice, no attempt lost.
async fn stop_gracefully_and_check(cluster: &mut Cluster, jobs: usize, scenario: &str) {
    let signalled = Instant::now();
    let signalled_at = chrono::Utc::now();
    let status = cluster.instances[1].terminate(Duration::from_secs(40));
    let stopping = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "a SIGTERM'd instance exits 0");
    println!("{scenario}: the stop took {:.2} s", stopping.as_secs_f64());
    cluster.settle(jobs).await;
    let outcome = cluster.outcome(jobs).await;
    outcome.print_row(scenario);
    outcome.assert_sound();
    assert_eq!(
        outcome.duplicate_runs, 0,
        "a graceful stop runs nothing twice"
    );
    assert_eq!(outcome.lost_attempts, 0, "a graceful stop loses no attempt");
    let after = cluster.lateness_of_jobs_due_after(signalled_at).await;
    if let Some(latest) = after.last() {
        println!(
            "{scenario}: {} jobs due after the signal, lateness max {:.3} s",
            after.len(),
            latest.as_secs_f64()
        );
        assert!(
            *latest <= Duration::from_secs(1),
            "a job due after the signal started {latest:?} late"
        );
    }
}

/// SIGTERM an instance while its due executors are at their bound
/// (`executor.max_due_executors`, 10 here) and further dispatches wait in its queue, some of
/// them held: the queued dispatches, never started, are read again by the other instance, and
/// every job runs once, with no attempt lost.
#[actix_web::test]
async fn sigterm_while_dispatches_wait_for_an_executor() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start_with(
        "SIGTERM with queued dispatches",
        &["api,scanner,executor,writer"; 2],
        &[("KAIROS__EXECUTOR__MAX_DUE_EXECUTORS", "10")],
    )
    .await;
    let jobs = 300;
    cluster
        .create_jobs(jobs, Duration::ZERO, Duration::from_secs(1), "sleep 1; ")
        .await;
    cluster
        .wait_for_metric(1, "kairos_dispatch_queued", |queued| queued >= 20.0)
        .await;
    stop_gracefully_and_check(
        &mut cluster,
        jobs,
        "SIGTERM an instance with queued dispatches",
    )
    .await;
}

/// The seed's services deployed apart: an API-only process, a scanner, two executors and a
/// result writer (one executor also writes). Each runs only its actors, and every job runs
/// once and is recorded.
#[actix_web::test]
async fn roles_deployed_apart_share_the_work() {
    let _serial = SERIAL.lock().await;
    let roles = ["api", "scanner", "executor", "executor,writer", "writer"];
    // A 4 s horizon, so that the jobs due beyond it are dispatched by the scanner.
    let cluster =
        Cluster::start_with("roles", &roles, &[("KAIROS__SCANNER__INTERVAL", "2s")]).await;
    let expected = [
        ("api", [0, 0, 0, 0]),
        ("scanner", [1, 0, 0, 0]),
        ("executor", [0, 1, 0, 0]),
        ("executor,writer", [0, 1, 0, 1]),
        ("writer", [0, 0, 0, 1]),
    ];
    for (index, (roles, [scanner, dispatcher, _, writer])) in expected.iter().enumerate() {
        let actors = cluster.actors(index).await;
        assert_eq!(
            actors["actors"]["scanner"]["alive"], *scanner,
            "{roles}: {actors}"
        );
        assert_eq!(
            actors["actors"]["dispatcher"]["alive"], *dispatcher,
            "{roles}: {actors}"
        );
        assert_eq!(
            actors["actors"]["result_writer"]["alive"], *writer,
            "{roles}: {actors}"
        );
    }
    // Every process that dispatches beats, executors or not, so that its death is known and
    // what it claimed and may not have published is taken back at once; the writer does not.
    let database = cluster.database().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = database
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE dispatch_partitions = '{}') \
                 FROM instances",
                &[],
            )
            .await
            .expect("the instances");
        let (beating, without_partitions): (i64, i64) = (row.get(0), row.get(1));
        assert!(beating <= 4, "the writer beats");
        // The API's and the scanner's beats name no partition.
        if (beating, without_partitions) == (4, 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{beating} processes beat, {without_partitions} without partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs = 400;
    // Due beyond the scan horizon too, so that the scanner (not only the API) dispatches.
    cluster
        .create_jobs(jobs, Duration::from_secs(1), Duration::from_secs(8), "")
        .await;
    cluster.settle(jobs).await;
    let outcome = cluster.outcome(jobs).await;
    outcome.print_row("roles deployed apart (5 processes)");
    outcome.assert_sound();
    assert_eq!(outcome.duplicate_runs, 0);
}

/// An executor process dies after its jobs finished and their results reached Kafka, while
/// no result writer runs: those jobs are not run again. Recovery, once the process is known
/// dead, writes every report left unwritten on the results topic itself, so the finished jobs
/// end `SUCCESS` with their one run; it takes back what the dead process held and had not
/// started, and records lost, and runs again, only the attempt that was really cut short.
#[actix_web::test]
async fn results_on_the_bus_are_not_run_again_when_their_process_dies() {
    let _serial = SERIAL.lock().await;
    // A 20 s horizon, so that a job due in 15 s is dispatched (and held) at once.
    let mut cluster = Cluster::start_with(
        "results on the bus",
        &["api,scanner", "executor"],
        &[("KAIROS__SCANNER__INTERVAL", "10s")],
    )
    .await;
    let quick = 20;
    cluster
        .create_jobs(quick, Duration::from_secs(1), Duration::ZERO, "")
        .await;
    // Cut short by the kill; attempt 2 ends at once.
    cluster
        .create_jobs(
            1,
            Duration::from_secs(1),
            Duration::ZERO,
            "[ \"$KAIROS_ATTEMPT\" -gt 1 ] || exec sleep 60; ",
        )
        .await;
    cluster
        .create_jobs(1, Duration::from_secs(15), Duration::ZERO, "")
        .await;
    let database = cluster.database().await;

    // Every quick job ran and its executor is gone (its result acknowledged by Kafka); the
    // long one runs, the late one waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let executors = cluster.actors(1).await["actors"]["executor"]["alive"].clone();
        if cluster.runs().len() == quick && executors == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs {:?}, executors {executors}",
            cluster.runs().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.instances[1].kill_hard();

    // Recovery takes the held job back at once...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let epoch: i64 = database
            .query_one(
                "SELECT epoch FROM jobs ORDER BY execute_at DESC LIMIT 1",
                &[],
            )
            .await
            .expect("the late job")
            .get(0);
        if epoch == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the held job was not taken back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and in the same passes writes the reports no writer wrote: the finished jobs end,
    // under their first dispatch, with no writer running.
    let rows = database
        .query(
            "SELECT kairos_shown_status(status, run_lease_until), epoch FROM jobs \
             WHERE execute_at < (SELECT max(execute_at) FROM jobs)",
            &[],
        )
        .await
        .expect("the jobs that ran");
    assert_eq!(rows.len(), quick + 1);
    let mut statuses: Vec<(String, i64)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    statuses.sort_unstable();
    let mut expected = vec![("DISPATCHED".to_owned(), 2)];
    expected.extend(std::iter::repeat_n(("SUCCESS".to_owned(), 1), quick));
    assert_eq!(
        statuses, expected,
        "only the cut-short job is dispatched again"
    );

    // An executor (and a writer) arrive: only the attempt that was cut short runs again.
    let replacement = cluster
        .spawn_with_roles(free_port(), "executor,writer")
        .await;
    cluster.instances[1] = replacement;
    cluster.settle(quick + 2).await;
    let outcome = cluster.outcome(quick + 2).await;
    outcome.print_row("executor killed with its results unwritten");
    outcome.assert_sound();
    assert_eq!(
        outcome.lost_attempts, 1,
        "only the cut-short attempt is lost"
    );
    assert_eq!(outcome.duplicate_runs, 0, "{outcome:?}");
    let rerun: i64 = database
        .query_one(
            "SELECT count(*) FROM jobs WHERE epoch > 1 AND execute_at < (SELECT max(execute_at) FROM jobs)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rerun, 1, "only the cut-short job is dispatched again");
}
