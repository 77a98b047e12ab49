use serde_json::json;

use super::*;

fn fields(value: Value) -> SpecFields {
    let mut fields = SpecFields::default();
    if let Value::Object(map) = value {
        for (name, value) in map {
            *fields.field_mut(&name).expect("a spec field") = Some(value);
        }
    }
    fields
}

#[test]
fn a_spec_is_written_tagged_by_its_kind_and_read_back() {
    let http = JobSpec::check(
        JobKind::Http,
        fields(json!({"url": "https://example.org/hook", "body": {"a": 1}})),
    )
    .expect("valid");
    let kafka = JobSpec::check(
        JobKind::Kafka,
        fields(json!({"topic": "orders", "key": "k", "value": "hello"})),
    )
    .expect("valid");
    for (spec, written) in [
        (
            JobSpec::Shell(ShellSpec {
                command: "make".into(),
            }),
            json!({"kind": "shell", "command": "make"}),
        ),
        (JobSpec::Noop, json!({"kind": "noop", "command": ""})),
        (
            http,
            json!({"kind": "http", "url": "https://example.org/hook", "method": "POST",
                   "headers": {}, "body": {"a": 1}, "success_status": [200, 299]}),
        ),
        (
            kafka,
            json!({"kind": "kafka", "topic": "orders", "key": "k", "value": "hello",
                   "headers": {}}),
        ),
    ] {
        assert_eq!(serde_json::to_value(&spec).expect("JSON"), written);
        assert_eq!(
            serde_json::from_value::<JobSpec>(written).expect("read"),
            spec
        );
        let stored = JobSpec::from_stored(
            spec.kind().as_str(),
            spec.command().to_owned(),
            spec.stored_fields(),
        )
        .expect("read back");
        assert_eq!(stored, spec);
    }
}

/// Records of earlier releases: no `kind` (a shell command), a no-op with an empty command;
/// and fields a later release may add are ignored.
#[test]
fn specs_of_earlier_and_later_releases_are_read() {
    let read: JobSpec = serde_json::from_value(json!({"command": "ls", "later": 1})).expect("read");
    assert_eq!(
        read,
        JobSpec::Shell(ShellSpec {
            command: "ls".into()
        })
    );
    let read: JobSpec =
        serde_json::from_value(json!({"kind": "noop", "command": ""})).expect("read");
    assert_eq!(read, JobSpec::Noop);
}

#[test]
fn a_spec_of_no_known_kind_or_a_wrong_field_is_refused_naming_it() {
    let error = serde_json::from_value::<JobSpec>(json!({"kind": "fax"})).expect_err("refused");
    assert!(error.to_string().contains("`fax`"), "{error}");
    let cases = [
        (
            JobKind::Shell,
            json!({"command": 5}),
            "command",
            "invalid_field",
        ),
        (JobKind::Shell, json!({}), "command", "missing_field"),
        (
            JobKind::Shell,
            json!({"command": "ls", "url": "x"}),
            "url",
            "invalid_field",
        ),
        (
            JobKind::Noop,
            json!({"command": "ls"}),
            "command",
            "invalid_field",
        ),
        (JobKind::Http, json!({}), "url", "missing_field"),
        (
            JobKind::Http,
            json!({"url": "ftp://x/y"}),
            "url",
            "invalid_field",
        ),
        (
            JobKind::Http,
            json!({"url": "not a url"}),
            "url",
            "invalid_field",
        ),
        (
            JobKind::Http,
            json!({"url": "http://x", "method": "BREW"}),
            "method",
            "invalid_field",
        ),
        (
            JobKind::Http,
            json!({"url": "http://x", "headers": {"a": 1}}),
            "headers",
            "invalid_field",
        ),
        (
            JobKind::Http,
            json!({"url": "http://x", "success_status": [300, 200]}),
            "success_status",
            "invalid_field",
        ),
        (
            JobKind::Kafka,
            json!({"value": "v"}),
            "topic",
            "missing_field",
        ),
        (
            JobKind::Kafka,
            json!({"topic": "a b", "value": "v"}),
            "topic",
            "invalid_field",
        ),
        (
            JobKind::Kafka,
            json!({"topic": "t"}),
            "value",
            "missing_field",
        ),
        (
            JobKind::Kafka,
            json!({"topic": "t", "value": "v", "command": "x"}),
            "command",
            "invalid_field",
        ),
    ];
    for (kind, given, field, code) in cases {
        let error = JobSpec::check(kind, fields(given.clone())).expect_err("refused");
        assert_eq!((error.field, error.code), (field, code), "{kind:?} {given}");
    }
}
