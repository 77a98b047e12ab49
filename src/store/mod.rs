//! PostgreSQL: the connection pool and the schema.
//!
//! Every SQL statement Kairos runs lives in this module, one file per table.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;

pub mod dispatch;
pub mod jobs;
pub mod reports;
pub mod run_ledger;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The advisory-lock key that serialises migrations across instances ("kairos" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b61_6972_6f73;

/// A failure to reach or prepare the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot build the PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot get a PostgreSQL connection: {0}")]
    Connection(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL query failed: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("applying migrations failed: {0}")]
    Migration(#[from] refinery::Error),
    #[error("unexpected value {value:?} in {column}")]
    Corrupt { column: &'static str, value: String },
}

/// tokio-postgres's own message for a server error is just "db error"; the server's message
/// is in the source.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Builds a pool for `settings`. Connections are made lazily, on first use.
///
/// # Errors
/// [`StoreError::Pool`] when the pool cannot be built from the settings.
pub fn connect(settings: &DatabaseSettings) -> Result<Pool, StoreError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&settings.host)
        .port(settings.port)
        .user(&settings.user)
        .password(&settings.password)
        .dbname(&settings.name)
        .application_name("kairos")
        .connect_timeout(settings.connect_timeout());
    // `Fast` recycling skips a round trip per checkout; a broken connection is detected on
    // use and discarded by the pool.
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.connect_timeout()))
        .create_timeout(Some(settings.connect_timeout()))
        .recycle_timeout(Some(settings.connect_timeout()))
        .build()?;
    Ok(pool)
}

/// Applies the migrations in `migrations/` that the database has not seen yet.
///
/// # Errors
/// [`StoreError::Connection`] when no connection can be had, [`StoreError::Migration`] when a
/// migration fails (it is rolled back).
pub async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    // Instances starting together would otherwise race to apply the same migration; the
    // lock is held by this session until it is released below (or the session ends).
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    for migration in report?.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "applied migration"
        );
    }
    Ok(())
}

/// Checks that the database answers a query, for the readiness probe.
///
/// # Errors
/// The reason it does not.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}
