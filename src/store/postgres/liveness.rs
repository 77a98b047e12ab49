//! Which instances are alive: a heartbeat on a connection of the instance's own, holding a
//! session advisory lock that PostgreSQL releases the moment that connection ends.
//!
//! A process killed with SIGKILL, or whose host fails, closes no transaction and writes no
//! last word; but its connections end (the kernel closes the sockets of a dead process at
//! once, and PostgreSQL notices the end of the stream), and with them its lock. So an
//! instance whose lock is gone, and whose last beat is older than a few beats (time to
//! reconnect and lock again after a dropped connection), is dead. The heartbeat alone still
//! tells a hung process (one that holds its lock and no longer beats) once it has been silent
//! for the recovery grace.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::claims::seconds;
use crate::config::DatabaseSettings;
use crate::store::{Liveness, StoreError};

/// The heartbeat's connection, made (and the lock taken) on first use and after it breaks.
pub struct Heartbeat {
    settings: DatabaseSettings,
    instance: String,
    /// This instance's advisory lock: a random key, not negative (it is read back from
    /// `pg_locks` as two unsigned halves).
    lock_key: i64,
    connection: Mutex<Beating>,
}

/// The heartbeat's connection.
enum Beating {
    /// Not connected yet, or dropped: the next beat connects.
    Unconnected,
    Connected(tokio_postgres::Client),
    /// The instance stopped ([`Heartbeat::retire`]): no beat is recorded any more.
    Retired,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("instance", &self.instance)
            .field("lock_key", &self.lock_key)
            .finish()
    }
}

impl Heartbeat {
    /// The heartbeat of `instance`, connecting with `settings`.
    pub fn new(settings: &DatabaseSettings, instance: &str) -> Self {
        Self {
            settings: settings.clone(),
            instance: instance.to_owned(),
            lock_key: rand::random::<i64>() & i64::MAX,
            connection: Mutex::new(Beating::Unconnected),
        }
    }

    /// Beats no more, and ends the connection, which lets go of the liveness lock: a beat
    /// under way finishes first, and a later one records nothing.
    pub async fn retire(&self) {
        *self.connection.lock().await = Beating::Retired;
    }

    /// Records that this instance is alive and that its dispatcher holds `partitions` of the
    /// jobs topic, and takes the cancellations of the jobs it holds (in the same statement);
    /// (re)connects and takes the lock first when needed. Once retired, records nothing.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached; the next beat connects again.
    pub async fn beat(&self, partitions: &[i32]) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection.lock().await;
        match &*connection {
            Beating::Retired => return Ok(Vec::new()),
            Beating::Connected(client) if !client.is_closed() => {}
            Beating::Connected(_) | Beating::Unconnected => {
                *connection = Beating::Connected(self.connect().await?);
            }
        }
        let Beating::Connected(connected) = &*connection else {
            return Err(StoreError::Unavailable("no heartbeat connection".into()));
        };
        let beat = connected
            .query(
                "WITH beat AS ( \
                     INSERT INTO instances (id, lock_key, dispatch_partitions) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), lock_key = $2, \
                         dispatch_partitions = $3) \
                 DELETE FROM cancellations WHERE runner = $1 RETURNING job_id",
                &[&self.instance, &self.lock_key, &partitions],
            )
            .await;
        match beat {
            Ok(rows) => Ok(rows
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?),
            Err(error) => {
                // Dropped: the next beat connects again and takes the lock again.
                *connection = Beating::Unconnected;
                Err(error.into())
            }
        }
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) = super::client_config(&self.settings)
            .application_name("kairos-heartbeat")
            .connect(super::tls(&self.settings)?)
            .await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "the heartbeat's connection ended");
            }
        });
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.lock_key])
            .await?
            .try_get(0)?;
        if !locked {
            return Err(StoreError::Unavailable(format!(
                "the liveness lock {} is held by another session",
                self.lock_key
            )));
        }
        Ok(client)
    }
}

/// Reads which instances are alive and which are dead. An instance is alive while it has
/// beaten within `grace` and either holds its lock or has beaten within `silent_after`
/// (it may be taking its lock again after a dropped connection). An instance of a version
/// before the lock (no `lock_key`) is judged by the grace alone.
///
/// # Errors
/// [`StoreError`] when the database cannot be reached.
pub async fn liveness(
    pool: &Pool,
    silent_after: Duration,
    grace: Duration,
) -> Result<Liveness, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, dispatch_partitions, \
                 heartbeat_at > now() - make_interval(secs => $2) AND ( \
                     lock_key IS NULL \
                     OR heartbeat_at > now() - make_interval(secs => $1) \
                     OR EXISTS (SELECT 1 FROM pg_locks l \
                         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                           AND l.database = (SELECT oid FROM pg_database \
                               WHERE datname = current_database()) \
                           AND ((l.classid::int8 << 32) | l.objid::int8) = instances.lock_key)) \
                 AS alive \
             FROM instances",
        )
        .await?;
    let rows = client
        .query(&statement, &[&seconds(silent_after), &seconds(grace)])
        .await?;
    let mut liveness = Liveness::default();
    for row in rows {
        let id: String = row.try_get("id")?;
        if row.try_get("alive")? {
            liveness
                .alive
                .push((id, row.try_get("dispatch_partitions")?));
        } else {
            liveness.dead.push(id);
        }
    }
    Ok(liveness)
}
