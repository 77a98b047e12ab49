//! The ground everything stands on: schema, Kafka round trip, probes, configuration.

use std::process::Command;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use futures_util::StreamExt;
use kairos::bus::kafka::{self, KafkaBus};
use kairos::bus::{Bus, Pace};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{WAIT_LIMIT, drop_database, spawn_app, test_settings};

/// Migrations create the jobs table in a fresh database; a job row written through the pool
/// reads back unchanged.
#[actix_web::test]
async fn migrations_apply_and_a_job_row_round_trips() {
    let app = spawn_app().await;
    let client = app.pool().get().await.expect("a pooled connection");
    let id = Uuid::new_v4();
    // Microsecond precision: what timestamptz keeps.
    let execute_at = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncates");
    client
        .execute(
            "INSERT INTO jobs (id, command, execute_at, timeout_secs) VALUES ($1, $2, $3, $4)",
            &[&id, &"echo hello", &execute_at, &30_i32],
        )
        .await
        .expect("insert");
    let row = client
        .query_one(
            "SELECT command, execute_at, status, max_retries FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("select");
    assert_eq!(row.get::<_, String>("command"), "echo hello");
    assert_eq!(
        row.get::<_, chrono::DateTime<Utc>>("execute_at"),
        execute_at
    );
    assert_eq!(row.get::<_, String>("status"), "SCHEDULED");
    assert_eq!(row.get::<_, i32>("max_retries"), 3);
}

/// A keyed record produced to a fresh topic is read back, key and payload intact, by a
/// consumer in a consumer group.
#[actix_web::test]
async fn a_keyed_record_round_trips_through_kafka() {
    let settings = test_settings().kafka;
    let topic = format!("test-roundtrip-{}", Uuid::new_v4().simple());
    kafka::ensure_topics(&settings, std::slice::from_ref(&topic))
        .await
        .expect("topic created");

    let producer = kafka::producer(&settings).expect("producer");
    let key = Uuid::new_v4().to_string();
    producer
        .send(
            FutureRecord::to(&topic).key(&key).payload("{\"hello\":1}"),
            Duration::from_secs(10),
        )
        .await
        .expect("the broker acknowledges the record");

    let consumer: StreamConsumer = kafka::client_config(&settings)
        .set(
            "group.id",
            format!("test-group-{}", Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(WAIT_LIMIT, consumer.stream().next())
        .await
        .expect("a record arrives within the wait limit")
        .expect("the stream is open")
        .expect("no consumer error");
    assert_eq!(message.key(), Some(key.as_bytes()));
    assert_eq!(message.payload(), Some(&b"{\"hello\":1}"[..]));
}

/// The application reports ready when PostgreSQL and Kafka answer, and not ready, naming
/// PostgreSQL and why, once its database is gone.
#[actix_web::test]
async fn readiness_follows_the_database() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "ready");

    drop_database(&app.settings.database).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["store"]["ok"], false);
    let reason = body["checks"]["store"]["reason"]
        .as_str()
        .expect("a reason");
    assert!(!reason.is_empty());
    assert_eq!(body["checks"]["bus"]["ok"], true);
}

/// The liveness probe answers, and the metrics endpoint speaks Prometheus's text format.
#[actix_web::test]
async fn health_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(
        text.contains("kairos_actor_alive{kind=\"scanner\"} 1"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

/// `kairos serve` refuses an invalid value at start-up, naming the key, before touching
/// PostgreSQL or Kafka.
#[test]
fn an_invalid_configuration_stops_serve_at_start_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "--config-dir",
            kairos::config::crate_config_dir()
                .to_str()
                .expect("utf-8 path"),
            "serve",
        ])
        .env("KAIROS__HTTP__PORT", "eighty")
        .output()
        .expect("kairos runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http.port"), "{stderr}");

    let file = std::env::temp_dir().join(format!("kairos-{}.toml", Uuid::new_v4()));
    std::fs::write(&file, "[kafka.topic]\njobs = \"has spaces\"\n").expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "--config-dir",
            kairos::config::crate_config_dir()
                .to_str()
                .expect("utf-8 path"),
        ])
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .expect("kairos runs");
    std::fs::remove_file(&file).ok();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kafka.topic.jobs"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args([
            "--config-dir",
            kairos::config::crate_config_dir()
                .to_str()
                .expect("utf-8 path"),
        ])
        .args(["serve", "--roles", "scanner,cook"])
        .output()
        .expect("kairos runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown role `cook`"), "{stderr}");
}

/// Where a consumer group stands, as recovery reads it: each partition's end, and the group's
/// committed position, which reaches the end once the group has acknowledged and committed
/// every record.
#[actix_web::test]
async fn a_consumer_groups_position_follows_its_commits() {
    let settings = test_settings();
    let bus = KafkaBus::connect(&settings.kafka).await.expect("bus");
    let topic = settings.kafka.topic.updated_jobs.clone();
    let group = format!("test-position-{}", Uuid::new_v4().simple());
    // One key, so one partition holds the three records.
    for _ in 0..3 {
        bus.publish(&topic, Some(b"one key"), Some(b"{}"), &[], Pace::Batched)
            .await
            .expect("the broker acknowledges the record");
    }
    let before = bus.position(&group, &topic).await.expect("a position");
    let (&partition, at) = before
        .partitions
        .iter()
        .find(|(_, at)| at.end > at.start)
        .expect("a partition holds the records");
    assert_eq!(at.end - at.start, 3);
    assert_eq!(at.committed, None, "the group has committed nothing yet");
    assert!(!at.handled_below(at.end));

    let subscription = bus.subscribe(&group, &topic).expect("subscribed");
    let mut records = subscription.records();
    let mut last = None;
    for _ in 0..3 {
        let record = tokio::time::timeout(WAIT_LIMIT, records.next())
            .await
            .expect("a record within the wait limit")
            .expect("the stream is open")
            .expect("no consumer error");
        last = Some(record);
    }
    let last = last.expect("three records");
    subscription
        .acknowledge(last.partition, last.offset)
        .expect("acknowledged");
    subscription.commit();
    let after = bus.position(&group, &topic).await.expect("a position");
    let at = after.partitions[&partition];
    assert_eq!(at.committed, Some(at.end));
    assert!(at.handled_below(at.end));
    subscription.leave().await;
}

/// A subscription that leaves its group is gone from it at once, so that its partitions move
/// to the other members now rather than when its session (10 s) times out.
#[actix_web::test]
async fn a_subscription_that_leaves_is_gone_from_its_group_at_once() {
    let settings = test_settings();
    let bus = KafkaBus::connect(&settings.kafka).await.expect("bus");
    let topic = settings.kafka.topic.updated_jobs.clone();
    let group = format!("test-leave-{}", Uuid::new_v4().simple());
    bus.publish(&topic, Some(b"a key"), Some(b"{}"), &[], Pace::Prompt)
        .await
        .expect("the broker acknowledges the record");
    let subscription = bus.subscribe(&group, &topic).expect("subscribed");
    let mut records = subscription.records();
    // A record read: the member holds partitions.
    tokio::time::timeout(WAIT_LIMIT, records.next())
        .await
        .expect("a record within the wait limit")
        .expect("the stream is open")
        .expect("no consumer error");
    assert_eq!(group_members(&settings.kafka, &group), 1);
    // The owner stops reading before it leaves, as the actors do at shutdown.
    drop(records);
    subscription.leave().await;

    // Well inside the session timeout: the member left, it did not time out.
    let bound = Duration::from_secs(3);
    let started = std::time::Instant::now();
    while group_members(&settings.kafka, &group) > 0 {
        assert!(
            started.elapsed() < bound,
            "the member is still in the group {bound:?} after leaving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The members the group coordinator counts in `group`.
fn group_members(settings: &kairos::config::KafkaSettings, group: &str) -> usize {
    let admin: rdkafka::consumer::BaseConsumer =
        kafka::client_config(settings).create().expect("a client");
    let groups = admin
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .expect("the group list");
    groups
        .groups()
        .iter()
        .map(|found| found.members().len())
        .sum()
}

/// Deleting jobs (an operator's clean-up) deletes their attempt history with them, and only
/// theirs.
#[actix_web::test]
async fn deleting_jobs_deletes_their_attempts() {
    let app = spawn_app().await;
    let now = Utc::now().to_rfc3339();
    let mut ids = Vec::new();
    // A retried job has a row per attempt (a job's only attempt may live in its own row).
    for _ in 0..3 {
        ids.push(
            app.create_job(
                &serde_json::json!({"command": "exit 3", "max_retries": 1, "execute_at": now}),
            )
            .await,
        );
    }
    for id in &ids {
        assert_eq!(
            app.wait_until_finished(*id).await["job"]["status"],
            "FAILED"
        );
    }
    let client = app.pool().get().await.expect("connection");
    assert_eq!(attempts_of(&client, &ids).await, 6);
    client
        .execute("DELETE FROM jobs WHERE id = ANY($1)", &[&&ids[..2]])
        .await
        .expect("deleted");
    assert_eq!(attempts_of(&client, &ids[..2]).await, 0);
    assert_eq!(attempts_of(&client, &ids[2..]).await, 2);
}

/// How many attempt rows the jobs `ids` have.
async fn attempts_of(client: &tokio_postgres::Client, ids: &[Uuid]) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0)
}
