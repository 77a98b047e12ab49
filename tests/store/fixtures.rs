//! A fresh store of each kind, and the jobs and reports the cases use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kairos::config::{DatabaseSettings, Settings, Sources, crate_config_dir};
use kairos::domain::{
    AttemptOutcome, AttemptReport, Dispatch, JobSpec, JobStatus, NewJob, ShellSpec,
};
use kairos::store::postgres::PostgresStore;
use kairos::store::sqlite::SqliteStore;
use kairos::store::{RunKey, Store};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// The instance the stores are opened for.
pub const INSTANCE: &str = "kairos-contract";

/// A fresh store for one case, and where it lives.
pub struct Fresh {
    pub store: Arc<dyn Store>,
    place: Place,
}

enum Place {
    Folder(PathBuf),
    Database(DatabaseSettings),
}

impl Fresh {
    /// Removes the store's folder or database once its case has passed (a failed case leaves
    /// it to be looked at). What cannot be removed now is left, not a failure of the case:
    /// `DROP DATABASE … WITH (FORCE)` is refused while an autovacuum worker is in the new
    /// database, and `scripts/services up` drops the databases left.
    pub async fn remove(self) {
        drop(self.store);
        match self.place {
            Place::Folder(folder) => {
                let _ = std::fs::remove_dir_all(&folder);
            }
            Place::Database(database) => {
                let _ = admin(&database)
                    .await
                    .batch_execute(&format!(
                        r#"DROP DATABASE "{}" WITH (FORCE)"#,
                        database.name
                    ))
                    .await;
            }
        }
    }
}

/// A store in a fresh SQLite file.
pub async fn sqlite() -> Fresh {
    let folder = std::env::temp_dir().join(format!("kairos-store-{}", Uuid::new_v4().simple()));
    let store = SqliteStore::open(&folder, INSTANCE)
        .await
        .expect("the SQLite store opens");
    Fresh {
        store: Arc::new(store),
        place: Place::Folder(folder),
    }
}

/// A connection to the server of `database`, on its `postgres` database.
async fn admin(database: &DatabaseSettings) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host(database.host())
        .port(database.port)
        .user(&database.user)
        .password(&database.password)
        .dbname("postgres")
        .connect(NoTls)
        .await
        .expect("PostgreSQL is up (scripts/services up)");
    tokio::spawn(connection);
    client
}

/// A store in a fresh PostgreSQL database.
pub async fn postgres() -> Fresh {
    let mut settings = Settings::load(&Sources {
        directory: Some(crate_config_dir().to_path_buf()),
        file: Some(crate_config_dir().join("distributed.toml")),
        ..Sources::default()
    })
    .expect("the test configuration is valid");
    settings.database.name = format!("kairos_store_{}", Uuid::new_v4().simple());
    settings.database.pool_size = 4;
    let database = settings.database;
    // An identifier cannot be a bind parameter; the name is generated above.
    admin(&database)
        .await
        .batch_execute(&format!(r#"CREATE DATABASE "{}""#, database.name))
        .await
        .expect("the test database is created");
    let store = PostgresStore::open(&database, INSTANCE)
        .await
        .expect("the PostgreSQL store opens");
    Fresh {
        store: Arc::new(store),
        place: Place::Database(database),
    }
}

/// A shell job due at `at`, with up to `max_retries` retries.
pub fn job(at: DateTime<Utc>, max_retries: i32) -> NewJob {
    NewJob {
        created_by: Some("contract".into()),
        id: Uuid::now_v7(),
        name: Some("contract".into()),
        spec: JobSpec::Shell(ShellSpec {
            command: "echo hello".into(),
        }),
        execute_at: at,
        max_retries,
        timeout_secs: 30,
        metadata: serde_json::json!({"team": "store"}),
        retry_backoff: None,
        rerun_of: None,
        fire: None,
    }
}

/// A moment `seconds` from now (in the past when negative), to the microsecond both stores
/// keep.
pub fn in_secs(seconds: i64) -> DateTime<Utc> {
    let at = Utc::now() + chrono::Duration::seconds(seconds);
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("a representable instant")
}

/// The run of `dispatch`'s first attempt.
pub fn run_of(dispatch: &Dispatch) -> RunKey {
    RunKey {
        job_id: dispatch.job_id,
        epoch: dispatch.epoch,
        attempt: dispatch.attempt,
    }
}

/// A report of `run` moving its job to `status`, its attempt at `outcome`.
pub fn report(run: RunKey, status: JobStatus, outcome: AttemptOutcome) -> AttemptReport {
    let now = Utc::now();
    let finished = outcome != AttemptOutcome::Running;
    AttemptReport {
        job_id: run.job_id,
        epoch: run.epoch,
        attempt: run.attempt,
        status,
        outcome,
        scheduled_at: now,
        started_at: now,
        finished_at: finished.then_some(now),
        exit_code: finished.then_some(i32::from(outcome != AttemptOutcome::Succeeded)),
        stdout: finished.then(|| format!("attempt {}", run.attempt)),
        stderr: finished.then(String::new),
        error: (finished && outcome != AttemptOutcome::Succeeded).then(|| "exit code 1".into()),
        retry_at: None,
    }
}

/// A lease long enough for any case.
pub const LONG: Duration = Duration::from_secs(3600);
