//! Kairos against services that require TLS and SASL, as managed PostgreSQL and Kafka do, and
//! its own API over TLS. `scripts/services` gives PostgreSQL a certificate from a development
//! authority and Kafka a SASL_SSL listener on the port after its controller's.

use kairos::config::{Backend, SaslMechanism, SecurityProtocol, Settings, Sources, SslMode};
use kairos::startup::Application;
use kairos::store::{StoreError, postgres};
use rdkafka::Message;
use serde_json::json;

use crate::helpers::kafka::{broker, create_topic, first_message};
use crate::helpers::{
    create_database, drop_database, in_secs, settings_for, spawn_app_with, test_settings, tls_file,
};

/// The SASL_SSL listener of `scripts/services` and its user.
const SASL_SSL_SERVERS: &str = "127.0.0.1:9094";
const SASL_USER: &str = "kairos";
const SASL_PASSWORD: &str = "kairos-sasl";

/// Test settings whose database connections verify the server (`verify-full` against the
/// services' authority) and whose Kafka clients authenticate with `mechanism` over TLS.
fn secured_settings(mechanism: SaslMechanism, password: &str) -> Settings {
    let mut settings = test_settings();
    settings.database.ssl_mode = SslMode::VerifyFull;
    settings.database.ssl_root_cert = Some(tls_file("ca.pem"));
    settings.kafka.bootstrap_servers = Some(SASL_SSL_SERVERS.into());
    settings.kafka.security_protocol = SecurityProtocol::SaslSsl;
    settings.kafka.sasl_mechanism = Some(mechanism);
    settings.kafka.sasl_username = Some(SASL_USER.into());
    settings.kafka.sasl_password = Some(password.into());
    settings.kafka.ssl_ca_location = Some(tls_file("ca.pem"));
    settings
}

/// Whether the connection a pool of `settings` hands out is encrypted, as the server sees it.
async fn server_sees_tls(settings: &kairos::config::DatabaseSettings) -> Result<bool, String> {
    let pool = postgres::connect(settings).map_err(|error| error.to_string())?;
    let client = pool
        .get()
        .await
        .map_err(|error| StoreError::from(error).to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|error| error.to_string())?;
    Ok(row.get(0))
}

/// The whole pipeline (create, dispatch over Kafka, run, result written to PostgreSQL) works
/// with every connection verified and authenticated: PostgreSQL with `verify-full`, Kafka with
/// SASL_SSL and SCRAM-SHA-256, the SASL password read from a file.
#[actix_web::test]
async fn a_job_runs_over_verified_tls_and_scram() {
    let password_file = std::env::temp_dir().join(format!("kairos-sasl-{}", uuid::Uuid::new_v4()));
    std::fs::write(&password_file, format!("{SASL_PASSWORD}\n")).expect("written");
    let file_settings = Settings::load(&Sources {
        directory: Some(kairos::config::crate_config_dir().to_path_buf()),
        file: Some(kairos::config::crate_config_dir().join("distributed.toml")),
        environment: Some(vec![(
            "KAIROS__KAFKA__SASL_PASSWORD_FILE".into(),
            password_file.display().to_string(),
        )]),
    })
    .expect("valid settings");
    std::fs::remove_file(&password_file).expect("removed");
    assert_eq!(
        file_settings.kafka.sasl_password.as_deref(),
        Some(SASL_PASSWORD)
    );

    let mut settings = secured_settings(SaslMechanism::ScramSha256, "unused");
    settings.kafka.sasl_password = file_settings.kafka.sasl_password;
    let app = spawn_app_with(settings).await;
    assert_eq!(server_sees_tls(&app.settings.database).await, Ok(true));
    let id = app
        .create_job(&json!({"command": "echo secured", "execute_at": in_secs(0.5)}))
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    assert_eq!(done["job"]["last_output"], "secured\n");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert!(!ready.text().await.expect("a body").contains(SASL_PASSWORD));
}

/// `verify-full` refuses a server whose certificate another authority signed, and the
/// connection ends before the password is sent; `disable` and `require` connect to the same
/// server in plain text and encrypted.
#[actix_web::test]
async fn verify_full_refuses_a_server_it_cannot_verify() {
    let mut settings = test_settings().database;
    settings.name = "kairos".into();
    settings.ssl_mode = SslMode::VerifyFull;
    settings.ssl_root_cert = Some(tls_file("other-ca.pem"));
    let refused = server_sees_tls(&settings).await.expect_err("not verified");
    assert!(refused.contains("certificate"), "{refused}");
    assert!(!refused.contains(&settings.password), "{refused}");

    settings.ssl_mode = SslMode::Require;
    assert_eq!(
        server_sees_tls(&settings).await,
        Ok(true),
        "require encrypts"
    );
    settings.ssl_mode = SslMode::Disable;
    assert_eq!(
        server_sees_tls(&settings).await,
        Ok(false),
        "disable does not"
    );
}

/// `database.url`, written as PostgreSQL users write it, connects as the separate keys do:
/// host, credentials, database, `sslmode` and `sslrootcert` all come from it.
#[actix_web::test]
async fn a_database_url_carries_the_whole_connection() {
    let defaults = test_settings().database;
    let url = format!(
        "postgresql://{}:{}@localhost:{}/kairos?sslmode=verify-full&sslrootcert={}",
        defaults.user,
        defaults.password,
        defaults.port,
        tls_file("ca.pem").display()
    );
    let settings = Settings::load(&Sources {
        directory: Some(kairos::config::crate_config_dir().to_path_buf()),
        file: None,
        environment: Some(vec![
            ("KAIROS__DATABASE__URL".into(), url),
            (
                "KAIROS__KAFKA__BOOTSTRAP_SERVERS".into(),
                "127.0.0.1:9092".into(),
            ),
        ]),
    })
    .expect("a valid URL");
    assert_eq!(settings.backend(), Backend::Distributed);
    assert_eq!(settings.database.host.as_deref(), Some("localhost"));
    assert_eq!(settings.database.ssl_mode, SslMode::VerifyFull);
    assert_eq!(server_sees_tls(&settings.database).await, Ok(true));
}

/// A wrong SASL password stops start-up with an error that says authentication failed and
/// does not repeat the password.
#[actix_web::test]
async fn a_wrong_sasl_password_fails_start_up_without_showing_it() {
    let wrong = "not-the-password-4711";
    let settings = secured_settings(SaslMechanism::ScramSha512, wrong);
    create_database(&settings.database).await;
    let error = Application::build(settings.clone())
        .await
        .err()
        .expect("start-up fails")
        .to_string();
    drop_database(&settings.database).await;
    assert!(error.to_lowercase().contains("authentication"), "{error}");
    assert!(!error.contains(wrong), "{error}");
}

/// PLAIN over TLS works too (some managed clusters offer only it).
#[actix_web::test]
async fn sasl_plain_over_tls_reaches_the_brokers() {
    let settings = secured_settings(SaslMechanism::Plain, SASL_PASSWORD);
    let bus = kairos::bus::kafka::KafkaBus::connect(&settings.kafka)
        .await
        .expect("connected with SASL PLAIN");
    kairos::bus::Bus::ping(&bus)
        .await
        .expect("the brokers answer");
}

/// `kafka` jobs publish to a cluster of their own that requires SASL_SSL, reached with the keys
/// of `[runner.kafka]` (here from a standalone process, which has no Kafka of its own), and the
/// message is there when read back.
#[actix_web::test]
async fn a_kafka_job_publishes_to_a_secured_cluster_of_its_own() {
    let mut settings = settings_for(Backend::Standalone);
    let jobs_kafka = &mut settings.runner.kafka;
    jobs_kafka.bootstrap_servers = Some(SASL_SSL_SERVERS.into());
    jobs_kafka.security_protocol = SecurityProtocol::SaslSsl;
    jobs_kafka.sasl_mechanism = Some(SaslMechanism::ScramSha512);
    jobs_kafka.sasl_username = Some(SASL_USER.into());
    jobs_kafka.sasl_password = Some(SASL_PASSWORD.into());
    jobs_kafka.ssl_ca_location = Some(tls_file("ca.pem"));
    let app = spawn_app_with(settings).await;
    let topic = format!("test-secured-{}", uuid::Uuid::new_v4().simple());
    let plain = broker();
    create_topic(&plain, &topic).await;
    let id = app
        .create_job(&json!({"kind": "kafka", "topic": topic, "key": "k",
            "value": "over SASL_SSL", "execute_at": in_secs(0.0)}))
        .await;
    let done = app.wait_until_finished(id).await;
    assert_eq!(done["job"]["status"], "SUCCESS", "{done}");
    // The same broker, read through its plain listener.
    let message = first_message(&plain, &topic).await;
    assert_eq!(message.payload(), Some(&b"over SASL_SSL"[..]));
}

/// With `http.tls_cert` and `http.tls_key`, the API speaks HTTPS (as does the probe port), verified
/// by a client that trusts the authority, and refuse plain HTTP.
#[actix_web::test]
async fn the_api_serves_https_with_its_certificate() {
    let mut settings = settings_for(Backend::Standalone);
    settings.http.tls_cert = Some(tls_file("server.pem"));
    settings.http.tls_key = Some(tls_file("server.key"));
    let app = spawn_app_with(settings).await;
    assert!(app.address.starts_with("https://"), "{}", app.address);
    let id = app
        .create_job(&json!({"command": "true", "execute_at": in_secs(0.2)}))
        .await;
    assert_eq!(
        app.wait_until_finished(id).await["job"]["status"],
        "SUCCESS"
    );

    let plain = reqwest::Client::new()
        .get(app.address.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("answered").status().is_success());
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .expect("a client")
        .get(format!("{}/healthz", app.address))
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "a client that does not trust the authority is refused"
    );
}
