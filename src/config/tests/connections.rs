//! How Kairos reaches PostgreSQL and Kafka, and keeps their secrets: security keys,
//! passwords from files, database URLs, TLS, and the configuration file layered over the
//! defaults.

use super::*;

/// Loads the defaults with the TOML `text` layered over them.
fn load_toml(text: &str) -> Result<Settings, ConfigError> {
    let file = std::env::temp_dir().join(format!("kairos-config-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, text).expect("written");
    let settings = Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file: Some(file.clone()),
        environment: Some(Vec::new()),
    });
    std::fs::remove_file(file).expect("removed");
    settings
}

#[test]
fn kafka_properties_pass_through_but_owned_ones_are_refused() {
    let settings = load_toml("[kafka.properties]\n\"socket.keepalive.enable\" = \"true\"\n")
        .expect("a free property");
    assert!(
        settings
            .kafka
            .connection_properties()
            .contains(&("socket.keepalive.enable".into(), "true".into()))
    );
    let error = load_toml("[kafka.properties]\n\"enable.idempotence\" = \"false\"\n")
        .expect_err("owned")
        .to_string();
    assert!(
        error.contains("kafka.properties") && error.contains("enable.idempotence"),
        "{error}"
    );
    let error = load_toml("[kafka.properties]\n\"sasl.password\" = \"x\"\n")
        .expect_err("has a key of its own")
        .to_string();
    assert!(error.contains("kafka.sasl_password"), "{error}");
}

#[test]
fn sasl_needs_a_mechanism_and_credentials() {
    let error = load(&[("KAIROS__KAFKA__SECURITY_PROTOCOL", "SASL_SSL")])
        .expect_err("no mechanism")
        .to_string();
    assert!(error.contains("kafka.sasl_mechanism"), "{error}");
    let error = load(&[
        ("KAIROS__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAIROS__KAFKA__SASL_MECHANISM", "SCRAM-SHA-256"),
        ("KAIROS__KAFKA__SASL_USERNAME", "kairos"),
    ])
    .expect_err("no password")
    .to_string();
    assert!(error.contains("kafka.sasl_password"), "{error}");
    let error = load(&[("KAIROS__KAFKA__SASL_USERNAME", "kairos")])
        .expect_err("credentials without SASL")
        .to_string();
    assert!(error.contains("kafka.security_protocol"), "{error}");
}

#[test]
fn the_jobs_cluster_has_security_keys_of_its_own() {
    let file = std::env::temp_dir().join(format!("kairos-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, "jobs-secret\n").expect("written");
    let path = file.display().to_string();
    let jobs_cluster = [
        (
            "KAIROS__RUNNER__KAFKA__BOOTSTRAP_SERVERS",
            "jobs-broker:9093",
        ),
        ("KAIROS__RUNNER__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAIROS__RUNNER__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KAIROS__RUNNER__KAFKA__SASL_USERNAME", "jobs"),
        ("KAIROS__RUNNER__KAFKA__SASL_PASSWORD_FILE", path.as_str()),
        ("KAIROS__RUNNER__KAFKA__SSL_CA_LOCATION", "/etc/jobs-ca.pem"),
    ];
    let settings = load(&jobs_cluster).expect("valid");
    std::fs::remove_file(&file).expect("removed");
    let properties = settings.runner.kafka.security().connection_properties();
    for expected in [
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "jobs"),
        ("sasl.password", "jobs-secret"),
        ("ssl.ca.location", "/etc/jobs-ca.pem"),
    ] {
        assert!(
            properties.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {:?}",
            settings.runner.kafka
        );
    }
    // Kairos's own cluster keeps its own keys.
    assert_eq!(
        settings.kafka.security().connection_properties(),
        [("security.protocol".to_owned(), "plaintext".to_owned())]
    );
    assert!(!format!("{settings:?}").contains("jobs-secret"));

    // Errors name the keys of [runner.kafka].
    let error = load(&jobs_cluster[..3])
        .expect_err("no username")
        .to_string();
    assert!(error.contains("runner.kafka.sasl_username"), "{error}");
    let error = load(&[
        (
            "KAIROS__RUNNER__KAFKA__BOOTSTRAP_SERVERS",
            "jobs-broker:9093",
        ),
        ("KAIROS__RUNNER__KAFKA__SASL_USERNAME", "jobs"),
    ])
    .expect_err("credentials without SASL")
    .to_string();
    assert!(error.contains("runner.kafka.security_protocol"), "{error}");
    // Security keys without a cluster of its own would be ignored: refused.
    let error = load(&jobs_cluster[1..2])
        .expect_err("no cluster of its own")
        .to_string();
    assert!(error.contains("runner.kafka.bootstrap_servers"), "{error}");
    // Its producer's settings that Kairos owns are refused, with the section's reasons.
    for (property, reason) in [
        ("sasl.password", "runner.kafka.sasl_password"),
        ("message.timeout.ms", "runner.kafka.delivery_timeout"),
        ("acks", "no record may be lost"),
    ] {
        let error = load_toml(&format!(
            "[runner.kafka]\nbootstrap_servers = \"b:9092\"\n\
             [runner.kafka.properties]\n\"{property}\" = \"x\"\n"
        ))
        .expect_err("owned")
        .to_string();
        assert!(
            error.contains("runner.kafka.properties") && error.contains(reason),
            "{error}"
        );
    }
}

#[test]
fn secrets_come_from_files_and_are_never_printed() {
    let file = std::env::temp_dir().join(format!("kairos-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, "from-a-file\n").expect("written");
    let path = file.display().to_string();
    let settings = load(&[
        ("KAIROS__DATABASE__PASSWORD_FILE", path.as_str()),
        ("KAIROS__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext"),
        ("KAIROS__KAFKA__SASL_MECHANISM", "PLAIN"),
        ("KAIROS__KAFKA__SASL_USERNAME", "kairos"),
        ("KAIROS__KAFKA__SASL_PASSWORD_FILE", path.as_str()),
    ])
    .expect("valid");
    std::fs::remove_file(&file).expect("removed");
    assert_eq!(settings.database.password, "from-a-file");
    assert_eq!(settings.kafka.sasl_password.as_deref(), Some("from-a-file"));
    assert!(!format!("{settings:?}").contains("from-a-file"));

    let error = load(&[("KAIROS__DATABASE__PASSWORD_FILE", path.as_str())])
        .expect_err("the file is gone")
        .to_string();
    assert!(
        error.contains("database.password_file") && error.contains(&path),
        "{error}"
    );
}

#[test]
fn a_database_url_fills_the_keys_and_keeps_its_password_to_itself() {
    let settings = load(&[
        (
            "KAIROS__DATABASE__URL",
            "postgres://app%40corp:p%2Fss@db.example.com:6432/jobs?sslmode=verify-full\
             &sslrootcert=/etc/ca.pem&connect_timeout=3",
        ),
        ("KAIROS__KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
    ])
    .expect("a valid URL");
    let database = &settings.database;
    assert_eq!(settings.backend(), Backend::Distributed);
    assert_eq!(database.host.as_deref(), Some("db.example.com"));
    assert_eq!(database.port, 6432);
    assert_eq!(database.user, "app@corp");
    assert_eq!(database.password, "p/ss");
    assert_eq!(database.name, "jobs");
    assert_eq!(database.ssl_mode, SslMode::VerifyFull);
    assert_eq!(
        database.ssl_root_cert.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );
    assert_eq!(database.connect_timeout_ms, 3000);
    assert!(!format!("{settings:?}").contains("p/ss"));

    for (url, expected) in [
        ("mysql://h/db", "scheme"),
        (
            "postgresql://u:secret-pw@h/db?sslmode=verify-ca",
            "verify-ca",
        ),
        ("postgresql://u:secret-pw@h/db?options=x", "options"),
    ] {
        let error = load(&[
            ("KAIROS__DATABASE__URL", url),
            ("KAIROS__KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
        ])
        .expect_err(url)
        .to_string();
        assert!(
            error.contains("database.url") && error.contains(expected),
            "{error}"
        );
        assert!(!error.contains("secret-pw"), "{error}");
    }
    let error = load(&[
        ("KAIROS__DATABASE__URL", "postgresql://h/db"),
        ("KAIROS__DATABASE__HOST", "other"),
        ("KAIROS__KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
    ])
    .expect_err("two ways at once")
    .to_string();
    assert!(error.contains("database.host"), "{error}");
}

#[test]
fn https_needs_both_the_certificate_and_its_key() {
    let error = load(&[("KAIROS__HTTP__TLS_CERT", "/etc/cert.pem")])
        .expect_err("no key")
        .to_string();
    assert!(error.contains("http.tls_key"), "{error}");
}

#[test]
fn the_compiled_defaults_are_the_reference_file_and_need_no_folder() {
    let on_disk = std::fs::read_to_string(crate_config_dir().join("default.toml"))
        .expect("config/default.toml");
    assert_eq!(DEFAULTS, on_disk);
    let without_files = Settings::load(&Sources {
        directory: Some(std::env::temp_dir().join("kairos-no-such-folder")),
        file: None,
        environment: Some(Vec::new()),
    })
    .expect("the compiled defaults alone are valid");
    let with_folder = load(&[]).expect("valid");
    assert_eq!(format!("{without_files:?}"), format!("{with_folder:?}"));
}
