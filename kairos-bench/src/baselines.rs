//! What the machine can do at best, measured in the same run: the denominators of the
//! workloads' ratios.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use futures_util::stream;
use kairos::bus::kafka;
use kairos::config::Settings;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use uuid::Uuid;

use crate::report::Report;

const PG_ROWS: usize = 100_000;
const PG_BATCH: usize = 1_000;
/// Jobs taken through their row writes by each of [`LIFECYCLE_CONNECTIONS`], in batches of
/// the API's largest create request.
const LIFECYCLE_JOBS: usize = 50_000;
const LIFECYCLE_BATCH: usize = 10_000;
const LIFECYCLE_CONNECTIONS: usize = 2;
/// Run claims and results per statement, as the run ledger and the result writer send them
/// under load.
const CLAIMS_PER_STATEMENT: usize = 256;
const RESULTS_PER_STATEMENT: usize = 500;
const KAFKA_MESSAGES: usize = 100_000;
const SPAWNS: usize = 2_000;
const TIMERS: usize = 2_000;

/// Runs every baseline and adds its figures to `report`.
///
/// # Errors
/// When PostgreSQL or Kafka cannot be reached.
pub async fn run(settings: &Settings, pool: &Pool, report: &mut Report) -> anyhow::Result<()> {
    report.add(
        "baseline",
        "PostgreSQL batched insert",
        postgres_insert_rate(pool).await?,
        "rows/s",
        None,
        None,
    );
    report.add(
        "baseline",
        PG_LIFECYCLE,
        postgres_lifecycle_rate(pool).await?,
        "jobs/s",
        None,
        None,
    );
    let (produce, consume) = kafka_rates(settings).await?;
    report.add(
        "baseline",
        "Kafka produce (idempotent, acks=all)",
        produce,
        "msgs/s",
        None,
        None,
    );
    report.add("baseline", "Kafka consume", consume, "msgs/s", None, None);
    report.add(
        "baseline",
        "spawn /bin/sh -c true",
        spawn_rate().await?,
        "spawns/s",
        None,
        None,
    );
    let (p50, p99) = timer_lateness().await;
    report.add(
        "baseline",
        "tokio timer lateness p50",
        p50,
        "ms",
        None,
        None,
    );
    report.add(
        "baseline",
        "tokio timer lateness p99",
        p99,
        "ms",
        None,
        None,
    );
    Ok(())
}

/// Rows per second inserted with `UNNEST` batches of 1,000, one transaction each.
async fn postgres_insert_rate(pool: &Pool) -> anyhow::Result<f64> {
    let client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_rows (id uuid, at timestamptz, body text)",
        )
        .await?;
    let started = Instant::now();
    for _ in 0..PG_ROWS / PG_BATCH {
        let ids: Vec<Uuid> = (0..PG_BATCH).map(|_| Uuid::now_v7()).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> = vec![chrono::Utc::now(); PG_BATCH];
        let bodies: Vec<&str> = vec!["true"; PG_BATCH];
        client
            .execute(
                "INSERT INTO bench_rows SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[])",
                &[&ids, &times, &bodies],
            )
            .await?;
    }
    let rate = PG_ROWS as f64 / started.elapsed().as_secs_f64();
    client.batch_execute("DROP TABLE bench_rows").await?;
    Ok(rate)
}

/// The name of [`postgres_lifecycle_rate`]'s figure, which W1 is compared with.
pub const PG_LIFECYCLE: &str =
    "PostgreSQL alone: a job's row writes (insert, run claim, result), 2 connections";

/// Jobs per second taken through the writes a job costs PostgreSQL in the pipeline, on a copy
/// of `jobs` (same columns, indexes and fill factor): inserted already dispatched, its run
/// claimed (a HOT update), its result recorded, each statement its own transaction, with the
/// pipeline's batch sizes, on two connections at once. No Kafka, no Kairos: what PostgreSQL
/// alone allows W1 on this machine.
async fn postgres_lifecycle_rate(pool: &Pool) -> anyhow::Result<f64> {
    let client = pool.get().await?;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_jobs; \
             CREATE TABLE bench_jobs (LIKE jobs INCLUDING ALL); \
             ALTER TABLE bench_jobs SET (fillfactor = 70)",
        )
        .await?;
    let started = Instant::now();
    let written: Vec<anyhow::Result<()>> =
        futures_util::future::join_all((0..LIFECYCLE_CONNECTIONS).map(|_| async {
            let client = pool.get().await?;
            for _ in 0..LIFECYCLE_JOBS / LIFECYCLE_BATCH {
                write_lifecycle_batch(&client).await?;
            }
            Ok(())
        }))
        .await;
    let rate = (LIFECYCLE_JOBS * LIFECYCLE_CONNECTIONS) as f64 / started.elapsed().as_secs_f64();
    client.batch_execute("DROP TABLE bench_jobs").await?;
    written.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(rate)
}

/// Inserts [`LIFECYCLE_BATCH`] jobs, claims their runs, then records their results.
async fn write_lifecycle_batch(client: &deadpool_postgres::Client) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = (0..LIFECYCLE_BATCH).map(|_| Uuid::now_v7()).collect();
    client
        .execute(
            "INSERT INTO bench_jobs (id, command, execute_at, timeout_secs, kind, status, epoch, \
                 claimed_by, claimed_at, lease_until) \
             SELECT unnest($1::uuid[]), '', now(), 300, 'noop', 'DISPATCHED', 1, 'bench', now(), \
                 now() + interval '30 seconds'",
            &[&ids],
        )
        .await?;
    for part in ids.chunks(CLAIMS_PER_STATEMENT) {
        client
            .execute(
                "UPDATE bench_jobs SET status = 'DISPATCHED', attempts = 1, runner = 'bench', \
                     run_lease_until = now() + interval '330 seconds', \
                     lease_until = LEAST(lease_until, now() + interval '330 seconds'), \
                     updated_at = now() \
                 WHERE id = ANY($1) AND epoch = 1 AND attempts < 1",
                &[&part],
            )
            .await?;
    }
    for part in ids.chunks(RESULTS_PER_STATEMENT) {
        client
            .execute(
                "UPDATE bench_jobs SET status = 'SUCCESS', started_at = now(), \
                     finished_at = now(), exit_code = 0, last_outcome = 'SUCCEEDED', \
                     lease_until = NULL, run_lease_until = NULL, runner = NULL, \
                     updated_at = now() \
                 WHERE id = ANY($1) AND epoch = 1 AND status NOT IN ('SUCCESS', 'FAILED')",
                &[&part],
            )
            .await?;
    }
    Ok(())
}

/// Messages per second produced with Kairos's producer settings, and consumed back.
async fn kafka_rates(settings: &Settings) -> anyhow::Result<(f64, f64)> {
    let topic = format!("bench-baseline-{}", Uuid::new_v4().simple());
    kafka::ensure_topics(&settings.kafka, std::slice::from_ref(&topic)).await?;
    let producer = kafka::producer(&settings.kafka)?;
    let payload = vec![b'x'; 100];
    let started = Instant::now();
    let acknowledged = stream::iter(0..KAFKA_MESSAGES)
        .map(|n| {
            let (producer, topic, payload) = (&producer, &topic, &payload);
            async move {
                let key = n.to_string();
                let record = FutureRecord::to(topic).key(&key).payload(payload);
                // Up to 10,000 records wait in the producer at once, acknowledged by batches.
                producer.send(record, Duration::from_secs(60)).await.is_ok()
            }
        })
        .buffer_unordered(10_000)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let produce = acknowledged as f64 / started.elapsed().as_secs_f64();

    let consumer: StreamConsumer = kafka::client_config(&settings.kafka)
        .set("group.id", format!("bench-{}", Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut read = 0;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while read < acknowledged && Instant::now() < deadline {
        if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        {
            first.get_or_insert_with(Instant::now);
            read += usize::from(message.payload().is_some());
        }
    }
    let consume = first.map_or(0.0, |first| read as f64 / first.elapsed().as_secs_f64());
    Ok((produce, consume))
}

/// `/bin/sh -c true` spawned and reaped per second, two per core at a time.
async fn spawn_rate() -> anyhow::Result<f64> {
    let parallel = 2 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let started = Instant::now();
    let done = stream::iter(0..SPAWNS)
        .map(|_| async {
            tokio::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .status()
                .await
                .is_ok_and(|status| status.success())
        })
        .buffer_unordered(parallel)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// How late tokio's sleeps of 1 to 20 ms wake, in milliseconds (p50, p99).
async fn timer_lateness() -> (f64, f64) {
    let mut lateness: Vec<f64> = stream::iter(0..TIMERS)
        .map(|n| async move {
            let wanted = Duration::from_millis(1 + (n as u64 % 20));
            let started = Instant::now();
            tokio::time::sleep(wanted).await;
            (started.elapsed().saturating_sub(wanted)).as_secs_f64() * 1000.0
        })
        .buffer_unordered(200)
        .collect()
        .await;
    lateness.sort_by(f64::total_cmp);
    (percentile(&lateness, 0.5), percentile(&lateness, 0.99))
}

/// The `q` quantile of sorted `values` (nearest rank).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
