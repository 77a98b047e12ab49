//! Loading and validating the configuration.

use super::*;

mod connections;

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file: None,
        environment: Some(
            vars.iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        ),
    })
}

#[test]
fn defaults_carry_the_seed_topic_names() {
    let settings = load(&[]).expect("the default configuration is valid");
    assert_eq!(settings.kafka.topic.jobs, "scheduled-jobs-topic");
    assert_eq!(
        settings.kafka.topic.updated_jobs,
        "scheduled-updated-jobs-topic"
    );
    assert_eq!(settings.http.host, "127.0.0.1");
}

#[test]
fn environment_variables_override_mixed_case_keys() {
    let settings = load(&[
        ("KAIROS__KAFKA__TOPIC__UPDATEDJOBS", "results"),
        ("KAIROS__HTTP__PORT", "9000"),
    ])
    .expect("valid overrides");
    assert_eq!(settings.kafka.topic.updated_jobs, "results");
    assert_eq!(settings.http.port, 9000);
}

#[test]
fn a_mistyped_value_names_its_key() {
    let error = load(&[("KAIROS__HTTP__PORT", "eighty")])
        .expect_err("not a number")
        .to_string();
    assert!(error.contains("http.port"), "{error}");
}

#[test]
fn an_unknown_key_is_rejected() {
    let error = load(&[("KAIROS__HTTP__PROT", "80")])
        .expect_err("unknown key")
        .to_string();
    assert!(error.contains("prot"), "{error}");
}

#[test]
fn an_invalid_topic_name_names_its_key() {
    let error = load(&[("KAIROS__KAFKA__TOPIC__JOBS", "no spaces")])
        .expect_err("bad topic")
        .to_string();
    assert!(error.contains("kafka.topic.jobs"), "{error}");
}

#[test]
fn each_kind_of_slot_takes_at_least_one() {
    let settings = load(&[]).expect("valid");
    assert_eq!(settings.executor.max_concurrent_runs, 64);
    assert_eq!(settings.runner.http.max_concurrent_calls, 64);
    for key in [
        "EXECUTOR__MAX_CONCURRENT_RUNS",
        "RUNNER__HTTP__MAX_CONCURRENT_CALLS",
    ] {
        let error = load(&[(&format!("KAIROS__{key}"), "0")])
            .expect_err("no slot")
            .to_string();
        let named = key.to_lowercase().replace("__", ".");
        assert!(error.contains(&named), "{error}");
    }
}

#[test]
fn allowed_topics_come_from_a_list_of_names_or_prefixes() {
    let settings = load(&[(
        "KAIROS__RUNNER__KAFKA__ALLOWED_TOPICS",
        "orders-due, billing.*",
    )])
    .expect("valid");
    assert_eq!(
        settings.runner.kafka.allowed_topics,
        ["orders-due", "billing.*"]
    );
    let error = load(&[("KAIROS__RUNNER__KAFKA__ALLOWED_TOPICS", "no spaces*")])
        .expect_err("not a topic name")
        .to_string();
    assert!(error.contains("runner.kafka.allowed_topics"), "{error}");
}

#[test]
fn a_linger_over_a_second_names_its_key() {
    let error = load(&[("KAIROS__KAFKA__LINGER_MS", "1001")])
        .expect_err("too long a linger")
        .to_string();
    assert!(error.contains("kafka.linger_ms"), "{error}");
    assert!(load(&[("KAIROS__KAFKA__LINGER_MS", "1000")]).is_ok());
}

#[test]
fn tokens_come_from_a_comma_separated_variable() {
    let settings = load(&[("KAIROS__AUTH__TOKENS", "tok-alpha, tok-beta")]).expect("valid");
    // Plain tokens, the form before roles: admin tokens named by their place.
    assert_eq!(settings.auth.plain_tokens(), 2);
    let credentials = settings.auth.credentials().expect("valid");
    let named: Vec<(&str, AccessRole)> = credentials
        .iter()
        .map(|credential| (credential.name.as_str(), credential.role))
        .collect();
    assert_eq!(
        named,
        [
            ("token-1", AccessRole::Admin),
            ("token-2", AccessRole::Admin)
        ]
    );
    assert_eq!(credentials[0].sha256, hash_token("tok-alpha"));
    assert!(!format!("{settings:?}").contains("tok-alpha"));
}

#[test]
fn hashed_tokens_with_roles_are_read_and_checked() {
    let file = std::env::temp_dir().join(format!("kairos-auth-{}.toml", std::process::id()));
    let hash = "ab".repeat(32);
    std::fs::write(
        &file,
        format!("[auth]\ntokens = [{{ name = \"ci\", role = \"writer\", sha256 = \"{hash}\" }}]\n"),
    )
    .expect("written");
    let settings = Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file: Some(file.clone()),
        environment: Some(Vec::new()),
    })
    .expect("valid");
    let credentials = settings.auth.credentials().expect("valid");
    assert_eq!(credentials[0].name, "ci");
    assert_eq!(credentials[0].role, AccessRole::Writer);
    assert_eq!(credentials[0].sha256, [0xab; 32]);
    assert_eq!(settings.auth.plain_tokens(), 0);

    std::fs::write(
        &file,
        "[auth]\ntokens = [{ name = \"ci\", role = \"writer\", sha256 = \"nothex\" }]\n",
    )
    .expect("written");
    let error = Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file: Some(file.clone()),
        environment: Some(Vec::new()),
    })
    .expect_err("a malformed hash")
    .to_string();
    assert!(
        error.contains("auth.tokens") && error.contains("sha256"),
        "{error}"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn an_open_api_off_loopback_needs_tokens_or_an_explicit_yes() {
    let error = load(&[("KAIROS__HTTP__HOST", "0.0.0.0")])
        .expect_err("open to the network")
        .to_string();
    assert!(
        error.contains("http.host") && error.contains("auth.allow_anonymous"),
        "{error}"
    );
    assert!(
        load(&[
            ("KAIROS__HTTP__HOST", "0.0.0.0"),
            ("KAIROS__AUTH__ALLOW_ANONYMOUS", "true")
        ])
        .is_ok()
    );
    assert!(
        load(&[
            ("KAIROS__HTTP__HOST", "0.0.0.0"),
            ("KAIROS__AUTH__TOKENS", "s3cret")
        ])
        .is_ok()
    );
    assert!(load(&[("KAIROS__HTTP__HOST", "::1")]).is_ok());
}

#[test]
fn no_servers_configured_means_standalone() {
    let settings = load(&[]).expect("the default configuration is valid");
    assert_eq!(settings.backend(), Backend::Standalone);
    let settings = load(&[
        ("KAIROS__DATABASE__HOST", "127.0.0.1"),
        ("KAIROS__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    ])
    .expect("valid");
    assert_eq!(settings.backend(), Backend::Distributed);
}

#[test]
fn postgresql_without_kafka_is_refused() {
    let error = load(&[("KAIROS__DATABASE__HOST", "127.0.0.1")])
        .expect_err("half a distributed configuration")
        .to_string();
    assert!(error.contains("kafka.bootstrap_servers"), "{error}");
}

#[test]
fn standalone_runs_every_role() {
    let error = load(&[("KAIROS__ROLES", "api")])
        .expect_err("roles apart without servers")
        .to_string();
    assert!(error.contains("roles"), "{error}");
}

#[test]
fn the_password_is_not_printed() {
    let settings = load(&[("KAIROS__DATABASE__PASSWORD", "s3cret")]).expect("valid");
    assert!(!format!("{settings:?}").contains("s3cret"));
}
