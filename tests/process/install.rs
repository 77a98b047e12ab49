//! Kairos as an installed binary: copied alone into an installation root, run from a folder
//! with no configuration (its defaults are compiled in), configured by variables alone; and
//! `kairos config show|check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::Server;

/// A fresh folder under the system's temporary folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let folder =
            std::env::temp_dir().join(format!("kairos-{what}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).expect("a folder");
        Self(folder)
    }
}

impl std::ops::Deref for Scratch {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The built binary copied alone into `<root>/bin/kairos`, as `cargo install --root` lays it
/// out (the test command also runs `cargo install` itself: scripts/check-deploy). The root
/// goes when the answer is dropped.
struct Installed {
    root: Scratch,
}

impl Installed {
    fn new() -> Self {
        let root = Scratch::new("install");
        std::fs::create_dir_all(root.join("bin")).expect("bin");
        std::fs::copy(
            env!("CARGO_BIN_EXE_kairos"),
            root.join("bin").join("kairos"),
        )
        .expect("copied");
        Self { root }
    }

    fn binary(&self) -> PathBuf {
        self.root.join("bin").join("kairos")
    }
}

/// Runs `binary args` in `folder` with only `env` (and `PATH`) in its environment.
fn run(binary: &Path, folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary)
        .args(args)
        .current_dir(folder)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("kairos runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Standalone from an empty folder: no `config/`, no file, no variable but the ports. The
/// data goes to `kairos-data` in that folder, and the start-up log names its absolute path.
#[actix_web::test]
async fn an_installed_binary_runs_a_job_standalone_from_any_folder() {
    let installed = Installed::new();
    let folder = Scratch::new("elsewhere");
    let server =
        Server::start_in(&installed.binary(), None, folder.to_path_buf(), "true", &[]).await;
    let job = server
        .run_job(
            &json!({"command": "echo from anywhere", "execute_at": "2020-01-01T00:00:00Z"}),
            None,
        )
        .await;
    assert_eq!(job["job"]["last_output"], "from anywhere\n");
    let data = folder.join("kairos-data").join("kairos.db");
    assert!(data.exists(), "no {}", data.display());
    let log = server.log();
    assert!(log.contains(&data.display().to_string()), "{log}");
}

/// Creates the database `kairos_test_<id>` on the services' PostgreSQL; its name.
pub async fn create_test_database(id: &str) -> String {
    let database = format!("kairos_test_{id}");
    maintenance()
        .await
        .batch_execute(&format!(r#"CREATE DATABASE "{database}""#))
        .await
        .expect("created");
    database
}

/// Drops a database [`create_test_database`] made. PostgreSQL refuses while an autovacuum
/// worker is in the database (the tests' role may not end it), so the drop is tried again
/// until it succeeds, for up to 30 s.
pub async fn drop_test_database(database: &str) {
    let client = maintenance().await;
    let drop = format!(r#"DROP DATABASE "{database}" WITH (FORCE)"#);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(error) = client.batch_execute(&drop).await {
        assert!(
            Instant::now() < deadline,
            "{database} is not dropped: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn maintenance() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        "host=127.0.0.1 user=kairos password=kairos dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL is up (scripts/services up)");
    actix_web::rt::spawn(connection);
    client
}

/// The variables that make a process distributed, on `database` and topics and groups of
/// its own.
pub fn distributed_env(id: &str, database: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAIROS__DATABASE__HOST", "127.0.0.1".into()),
        ("KAIROS__DATABASE__NAME", database.into()),
        ("KAIROS__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092".into()),
        ("KAIROS__KAFKA__TOPIC__JOBS", format!("test-{id}-jobs")),
        (
            "KAIROS__KAFKA__TOPIC__UPDATEDJOBS",
            format!("test-{id}-results"),
        ),
        ("KAIROS__EXECUTOR__GROUP_ID", format!("test-{id}-executors")),
        (
            "KAIROS__RESULT_WRITER__GROUP_ID",
            format!("test-{id}-writers"),
        ),
    ]
}

/// The distributed mode configured by variables alone, from an empty folder.
#[actix_web::test]
async fn an_installed_binary_runs_a_job_distributed_from_variables_alone() {
    let installed = Installed::new();
    let id = Uuid::new_v4().simple().to_string();
    let database = create_test_database(&id).await;
    let env = distributed_env(&id, &database);
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let folder = Scratch::new("elsewhere");
    let server = Server::start_in(
        &installed.binary(),
        None,
        folder.to_path_buf(),
        "true",
        &env,
    )
    .await;
    let job = server
        .run_job(
            &json!({"command": "echo distributed", "execute_at": "2020-01-01T00:00:00Z"}),
            None,
        )
        .await;
    assert_eq!(job["job"]["last_output"], "distributed\n");
    drop(server);
    let (stored, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 user=kairos password=kairos dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("the test database");
    actix_web::rt::spawn(connection);
    let recorded: String = stored
        .query_one("SELECT status FROM jobs", &[])
        .await
        .expect("the job is in PostgreSQL")
        .get(0);
    assert_eq!(recorded, "SUCCESS");
    drop(stored);
    drop_test_database(&database).await;
}

/// A signing secret of the length `runner.http.signing_secret` asks.
const SIGNING_SECRET: &str = "signing-secret-4711-0815";

/// `config show` prints every value with where it came from (default, the file, a variable),
/// and redacts the secrets, wherever they came from.
#[test]
fn config_show_names_each_values_source_and_redacts_secrets() {
    let installed = Installed::new();
    let binary = installed.binary();
    let folder = Scratch::new("config-show");
    let file = folder.join("site.toml");
    std::fs::write(
        &file,
        "[http]\nport = 9000\n\n[database]\npassword = \"file-secret\"\n\n\
         [kafka.properties]\n\"ssl.key.password\" = \"property-secret\"\n\n\
         [runner.kafka]\nbootstrap_servers = \"jobs-broker:9093\"\n\
         security_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\n\
         sasl_username = \"jobs\"\nsasl_password = \"jobs-cluster-secret\"\n",
    )
    .expect("written");
    let output = run(
        &binary,
        &folder,
        &["--config", "site.toml", "config", "show"],
        &[
            ("KAIROS__HTTP__HOST", "127.0.0.2"),
            ("KAIROS__KAFKA__SASL_PASSWORD", "variable-secret"),
            ("KAIROS__RUNNER__HTTP__SIGNING_SECRET", SIGNING_SECRET),
        ],
    );
    let shown = text(&output.stdout);
    assert!(output.status.success(), "{shown}{}", text(&output.stderr));
    // The line of `key` in the `[section]` of the output.
    let line = |section: &str, key: &str| {
        shown
            .split("\n[")
            .find(|part| part.starts_with(&format!("{section}]\n")))
            .and_then(|part| {
                part.lines()
                    .find(|line| line.starts_with(&format!("{key} = ")))
            })
            .unwrap_or_else(|| panic!("no `{key}` in [{section}] of:\n{shown}"))
            .to_owned()
    };
    assert_eq!(line("http", "port"), "port = 9000  # file site.toml");
    assert_eq!(
        line("http", "host"),
        "host = \"127.0.0.2\"  # variable KAIROS__HTTP__HOST"
    );
    assert_eq!(line("http", "probe_port"), "probe_port = 8081  # default");
    assert_eq!(
        line("kafka.topic", "jobs"),
        "jobs = \"scheduled-jobs-topic\"  # default"
    );
    for secret in [
        "file-secret",
        "property-secret",
        "variable-secret",
        "jobs-cluster-secret",
        SIGNING_SECRET,
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert_eq!(
        line("database", "password"),
        "password = \"<redacted>\"  # file site.toml"
    );
    assert_eq!(
        line("kafka", "sasl_password"),
        "sasl_password = \"<redacted>\"  # variable KAIROS__KAFKA__SASL_PASSWORD"
    );
    assert_eq!(
        line("kafka.properties", "\"ssl.key.password\""),
        "\"ssl.key.password\" = \"<redacted>\"  # file site.toml"
    );
    assert_eq!(
        line("runner.http", "signing_secret"),
        "signing_secret = \"<redacted>\"  # variable KAIROS__RUNNER__HTTP__SIGNING_SECRET"
    );
    assert_eq!(
        line("runner.kafka", "sasl_password"),
        "sasl_password = \"<redacted>\"  # file site.toml"
    );
    // The printed configuration is itself a configuration Kairos reads, given the secrets
    // that are too short as `<redacted>` again.
    let printed = folder.join("printed.toml");
    std::fs::write(&printed, &shown).expect("written");
    let reread = run(
        &binary,
        &folder,
        &["--config", "printed.toml", "config", "check"],
        &[("KAIROS__RUNNER__HTTP__SIGNING_SECRET", SIGNING_SECRET)],
    );
    assert!(reread.status.success(), "{}", text(&reread.stderr));
}

/// `config check` says a valid configuration is valid and in which mode; it refuses a bad
/// value, or a named file that does not exist, with exit code 2 and the start-up message.
#[test]
fn config_check_validates_without_starting() {
    let installed = Installed::new();
    let binary = installed.binary();
    let folder = Scratch::new("config-check");
    let valid = run(&binary, &folder, &["config", "check"], &[]);
    assert!(valid.status.success(), "{}", text(&valid.stderr));
    assert_eq!(
        text(&valid.stdout),
        "the configuration is valid (standalone mode)\n"
    );

    let bad = run(
        &binary,
        &folder,
        &["config", "check"],
        &[("KAIROS__SCANNER__BATCH_SIZE", "0")],
    );
    assert_eq!(bad.status.code(), Some(2));
    let served = run(
        &binary,
        &folder,
        &["serve"],
        &[("KAIROS__SCANNER__BATCH_SIZE", "0")],
    );
    assert_eq!(served.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("scanner.batch_size"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(
        text(&bad.stderr),
        text(&served.stderr),
        "the same message as start-up"
    );

    let missing = run(
        &binary,
        &folder,
        &["--config", "absent.toml", "config", "check"],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("absent.toml"),
        "{}",
        text(&missing.stderr)
    );
}

/// `--version` names the version and the commit the binary was built from.
#[test]
fn the_version_names_the_commit() {
    let installed = Installed::new();
    let output = run(
        &installed.binary(),
        &Scratch::new("version"),
        &["--version"],
        &[],
    );
    let version = text(&output.stdout);
    let expected = format!("kairos {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let commit = version
        .trim_end()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    assert_eq!(commit, text(&head.stdout).trim(), "{version}");
}
