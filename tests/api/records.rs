//! The records that cross the bus: how soon a dispatch leaves, repeated and stale records,
//! malformed ones set aside, and records written by earlier releases.

use std::time::{Duration, Instant};

use kairos::bus::kafka;
use kairos::domain::AttemptReport;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    WAIT_LIMIT, ignored_reports, in_secs, metric, read_until, spawn_app, spawn_app_with,
    test_settings,
};

/// Records published in numbers wait up to `kafka.linger_ms` to share a batch, but a job
/// created alone and due now is published at once: its create, which answers once the broker
/// holds the dispatch, answers before a second's linger would have let a batched record go;
/// and the job runs.
#[actix_web::test]
async fn a_job_created_alone_is_published_without_waiting_for_the_linger() {
    let mut settings = test_settings();
    settings.kafka.linger_ms = 1000;
    let app = spawn_app_with(settings).await;
    let linger = Duration::from_millis(app.settings.kafka.linger_ms);

    let asked = Instant::now();
    let id = app
        .create_job(&json!({"kind": "noop", "execute_at": in_secs(0.0)}))
        .await;
    let answered = asked.elapsed();
    assert!(answered < linger, "the create answered after {answered:?}");
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
}

/// The same dispatch published twice more runs the command once; repeated and stale reports
/// leave a finished job as it is.
#[actix_web::test]
async fn duplicates_and_stale_reports_change_nothing() {
    let app = spawn_app().await;
    let runs = std::env::temp_dir().join(format!("kairos-runs-{}", Uuid::new_v4()));
    let command = format!("echo run >> {}", runs.display());
    let id = app
        .create_job(&json!({"command": command, "execute_at": in_secs(1.5)}))
        .await;

    // Deliver the same dispatch twice more, while the job waits for its time.
    let key = id.to_string();
    let records = read_until(&app.settings, &app.settings.kafka.topic.jobs, |records| {
        records.iter().any(|(k, _)| k.as_deref() == Some(&key))
    })
    .await;
    for _ in 0..2 {
        app.publish(&app.settings.kafka.topic.jobs, &key, &records[0].1)
            .await;
    }
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS");
    app.wait_for_metrics("two duplicate dispatches", |text| {
        metric(text, "kairos_dispatches_duplicate_total") == Some(2.0)
    })
    .await;
    let lines = std::fs::read_to_string(&runs).expect("the command ran");
    std::fs::remove_file(&runs).ok();
    assert_eq!(lines, "run\n", "the command ran more than once");

    // Replay every report of the job, then a report of an older dispatch.
    let reports = read_until(
        &app.settings,
        &app.settings.kafka.topic.updated_jobs,
        |records| !records.is_empty(),
    )
    .await;
    let mut stale: AttemptReport = serde_json::from_slice(&reports[0].1).expect("a report");
    stale.epoch = 0;
    stale.status = kairos::domain::JobStatus::Failed;
    let stale = serde_json::to_vec(&stale).expect("JSON");
    let mut replays: Vec<&[u8]> = reports
        .iter()
        .map(|(_, payload)| payload.as_slice())
        .collect();
    replays.push(&stale);
    let ignored_before = ignored_reports(&app).await;
    for payload in &replays {
        app.publish(&app.settings.kafka.topic.updated_jobs, &key, payload)
            .await;
    }
    // The first delivery of each report was applied; every replay is ignored. (At least as
    // many: the writer's consumer may itself be handed records again after a rejoin.)
    let expected = ignored_before + replays.len() as f64;
    app.wait_for_metrics("the replays ignored", |text| {
        metric(text, "kairos_reports_ignored_total").is_some_and(|ignored| ignored >= expected)
    })
    .await;
    let after = app.job(id).await;
    assert_eq!(after["job"]["status"], "SUCCESS");
    assert_eq!(after["job"]["updated_at"], done["job"]["updated_at"]);
    assert_eq!(after["attempts"], done["attempts"]);
}

/// Malformed records on either topic reach its dead-letter topic, and good jobs still run.
#[actix_web::test]
async fn malformed_records_go_to_the_dead_letter_topics() {
    let app = spawn_app().await;
    for topic in [
        &app.settings.kafka.topic.jobs,
        &app.settings.kafka.topic.updated_jobs,
    ] {
        app.publish(topic, "garbage", b"{not json").await;
    }
    let id = app
        .create_job(&json!({"command": "true", "execute_at": in_secs(0.0)}))
        .await;
    assert_eq!(
        app.wait_until_finished(id).await["job"]["status"],
        "SUCCESS"
    );

    for topic in [
        &app.settings.kafka.topic.jobs,
        &app.settings.kafka.topic.updated_jobs,
    ] {
        let dead = read_until(&app.settings, &format!("{topic}.dlt"), |records| {
            !records.is_empty()
        })
        .await;
        assert_eq!(dead[0].0.as_deref(), Some("garbage"));
        assert_eq!(dead[0].1, b"{not json");
    }
}

/// A record compressed with zstd, as Kairos's producers wrote them before they turned to LZ4,
/// is still read after an upgrade: this malformed one reaches the dead-letter topic intact.
/// (Built without rdkafka's `zstd` feature, librdkafka refuses this test's producer, and its
/// consumers cannot decompress such a batch.)
#[actix_web::test]
async fn a_zstd_compressed_record_from_an_earlier_release_is_still_read() {
    let app = spawn_app().await;
    let earlier_release: FutureProducer = kafka::client_config(&app.settings.kafka)
        .set("compression.type", "zstd")
        .create()
        .expect("a zstd producer");
    let topic = &app.settings.kafka.topic.jobs;
    earlier_release
        .send(
            FutureRecord::to(topic)
                .key("zstd")
                .payload(b"{zstd, not json"),
            WAIT_LIMIT,
        )
        .await
        .expect("published");

    let dead = read_until(&app.settings, &format!("{topic}.dlt"), |records| {
        !records.is_empty()
    })
    .await;
    assert_eq!(dead[0].0.as_deref(), Some("zstd"));
    assert_eq!(dead[0].1, b"{zstd, not json");
}
