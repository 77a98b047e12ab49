//! How Kairos connects to PostgreSQL: the connection's settings, its TLS, and the pools.

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseSettings, SslMode};
use crate::store::StoreError;

/// The connection settings of `settings` (TLS is [`tls`]'s part).
pub fn client_config(settings: &DatabaseSettings) -> tokio_postgres::Config {
    let mut pg = tokio_postgres::Config::new();
    pg.host(settings.host())
        .port(settings.port)
        .user(&settings.user)
        .password(&settings.password)
        .dbname(&settings.name)
        .application_name("kairos")
        .connect_timeout(settings.connect_timeout())
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => DriverSslMode::Require,
        });
    pg
}

/// The TLS side of a connection made with `settings`: with `verify-full`, the server's
/// certificate is checked against `ssl_root_cert` (or the system's roots) and the host's name;
/// with `prefer` and `require`, the connection is encrypted but the server is not verified.
///
/// # Errors
/// [`StoreError::Unavailable`] naming the certificate file that cannot be used.
pub fn tls(settings: &DatabaseSettings) -> Result<MakeRustlsConnect, StoreError> {
    let config = match settings.ssl_mode {
        SslMode::VerifyFull => crate::tls::verifying_client(settings.ssl_root_cert.as_deref()),
        SslMode::Disable | SslMode::Prefer | SslMode::Require => crate::tls::encrypting_client(),
    }
    .map_err(|problem| StoreError::Unavailable(format!("database.ssl_root_cert: {problem}")))?;
    Ok(MakeRustlsConnect::new(config))
}

/// Builds a pool for `settings`. Connections are made lazily, on first use.
///
/// # Errors
/// [`StoreError::Unavailable`] when the pool cannot be built from the settings.
pub fn connect(settings: &DatabaseSettings) -> Result<Pool, StoreError> {
    let pg = client_config(settings);
    // `Fast` recycling skips a round trip per checkout; a broken connection is detected on
    // use and discarded by the pool.
    let manager = Manager::from_config(
        pg,
        tls(settings)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Last in, first out: a checkout gets the connection used most recently, whose backend
    // has its caches and memory warm; the others stay idle. First in, first out (the default)
    // rotated every request through all of them: with 32 connections, a 10,000-job batch
    // landed on a backend that had not run one yet.
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.connect_timeout()))
        .create_timeout(Some(settings.connect_timeout()))
        .recycle_timeout(Some(settings.connect_timeout()))
        .build()?;
    Ok(pool)
}
