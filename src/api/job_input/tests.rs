use serde_json::json;

use super::*;

fn limits() -> JobSettings {
    JobSettings {
        default_timeout_secs: 3600,
        max_timeout_secs: 86_400,
        max_body_bytes: 65_536,
        max_metadata_bytes: 16_384,
        max_batch_size: 3,
        max_batch_body_bytes: 1 << 20,
        idempotency_retention: std::time::Duration::from_secs(3600),
        retention: std::time::Duration::ZERO,
        retention_interval: std::time::Duration::from_secs(1),
        retention_batch: 1,
    }
}

fn batch(body: &str) -> Result<Vec<NewJob>, ApiError> {
    parse_batch(body.as_bytes(), &limits(), &|_| Ok(()))
        .map(|jobs| jobs.into_iter().map(|parsed| parsed.job).collect())
}

/// The code and field of a refused body, or of each refused job of a batch.
fn refusal(error: &ApiError) -> Value {
    match &error.items {
        None => json!([error.code, error.field]),
        Some(items) => json!(
            items
                .iter()
                .map(|item| json!([item.index, item.code, item.field]))
                .collect::<Vec<_>>()
        ),
    }
}

#[test]
fn a_batch_body_of_the_wrong_shape_is_refused_naming_the_problem() {
    let cases = [
        ("{\"jobs\": [", json!(["invalid_json", null])),
        ("[]", json!(["invalid_body", null])),
        ("\"jobs\"", json!(["invalid_body", null])),
        ("{}", json!(["missing_field", "jobs"])),
        ("{\"jobs\": null}", json!(["missing_field", "jobs"])),
        (
            "{\"jobs\": {\"kind\": \"noop\"}}",
            json!(["missing_field", "jobs"]),
        ),
        ("{\"jobs\": []}", json!(["invalid_field", "jobs"])),
        (
            "{\"jobs\": [{}, {}, {}, {}]}",
            json!(["invalid_field", "jobs"]),
        ),
        (
            "{\"jobs\": [], \"colour\": 1}",
            json!(["unknown_field", "colour"]),
        ),
        ("{\"jobs\": []} trailing", json!(["invalid_json", null])),
    ];
    for (body, expected) in cases {
        let error = batch(body).expect_err(body);
        assert_eq!(refusal(&error), expected, "{body}");
    }
}

#[test]
fn each_refused_job_of_a_batch_is_named_by_index_and_field() {
    let body = r#"{"jobs": [
        {"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"},
        [1, {"kind": "noop"}],
        {"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "colour": "blue", "size": 1}
    ]}"#;
    let error = batch(body).expect_err("refused");
    assert_eq!(error.code, "invalid_batch");
    assert_eq!(
        refusal(&error),
        json!([[1, "invalid_body", null], [2, "unknown_field", "colour"]])
    );
}

#[test]
fn fields_read_as_a_json_object_reads_them() {
    // An escaped name is the same name; a null reads as absent; a repeated field keeps
    // its last value; metadata keeps its structure.
    let body = r#"{"jobs": [{
        "comm\u0061nd": "echo one", "command": "echo two", "execute_at": "2099-01-01T01:00:00+01:00",
        "name": null, "max_retries": 5, "metadata": {"team": {"name": "billing"}}
    }]}"#;
    let jobs = batch(body).expect("accepted");
    let job = &jobs[0];
    assert_eq!(job.spec.command(), "echo two");
    assert_eq!(job.spec.kind(), JobKind::Shell);
    assert_eq!(job.execute_at.to_rfc3339(), "2099-01-01T00:00:00+00:00");
    assert_eq!(job.name, None);
    assert_eq!((job.max_retries, job.timeout_secs), (5, 3600));
    assert_eq!(job.metadata, json!({"team": {"name": "billing"}}));

    let single: JobFields =
        read_object(br#"{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z"}"#)
            .expect("an object");
    let job = parse_job(single, &limits(), false).expect("valid").job;
    assert_eq!(job.spec, JobSpec::Noop);
    assert_eq!(job.metadata, json!({}));
}

#[test]
fn a_retry_backoff_is_read_as_the_configuration_writes_durations() {
    let jobs = batch(
        r#"{"jobs": [{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z",
            "retry_backoff": {"base": "100ms", "max": "1m"}}]}"#,
    )
    .expect("accepted");
    let policy = jobs[0].retry_backoff.expect("a backoff");
    assert_eq!(policy.base, std::time::Duration::from_millis(100));
    assert_eq!(policy.max, std::time::Duration::from_secs(60));
    assert!((policy.jitter - RetryPolicy::JITTER).abs() < f64::EPSILON);

    for backoff in [
        r#"{"base": "1m", "max": "1s"}"#,
        r#"{"base": "0s", "max": "1s"}"#,
        r#"{"base": "1s", "max": "2d"}"#,
        r#"{"base": "1s", "max": "2s", "jitter": 1.5}"#,
        r#"{"base": "soon", "max": "2s"}"#,
        r#"{"base": "1s", "max": "2s", "colour": 1}"#,
        r#""1s""#,
    ] {
        let body = format!(
            r#"{{"jobs": [{{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "retry_backoff": {backoff}}}]}}"#
        );
        let error = batch(&body).expect_err(backoff);
        assert_eq!(
            refusal(&error),
            json!([[0, "invalid_field", "retry_backoff"]]),
            "{backoff}"
        );
    }
}

#[test]
fn an_idempotency_key_is_a_batch_field_and_a_header_of_a_single_create() {
    let parsed = parse_batch(
        br#"{"jobs": [{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "idempotency_key": "order-17"}]}"#,
        &limits(),
        &|_| Ok(()),
    )
    .expect("accepted");
    assert_eq!(parsed[0].idempotency_key.as_deref(), Some("order-17"));

    let single: JobFields = read_object(
        br#"{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "idempotency_key": "order-17"}"#,
    )
    .expect("an object");
    let error = parse_job(single, &limits(), false).expect_err("refused");
    assert_eq!(refusal(&error), json!(["unknown_field", "idempotency_key"]));

    for key in ["\"\"", "\"with space\"", "7"] {
        let body = format!(
            r#"{{"jobs": [{{"kind": "noop", "execute_at": "2099-01-01T00:00:00Z", "idempotency_key": {key}}}]}}"#
        );
        let error = batch(&body).expect_err(key);
        assert_eq!(
            refusal(&error),
            json!([[0, "invalid_field", "idempotency_key"]]),
            "{key}"
        );
    }
}
