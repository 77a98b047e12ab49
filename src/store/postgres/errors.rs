//! PostgreSQL's errors as [`StoreError`]s: a value the server refuses (a constraint, data it
//! cannot hold) is [`StoreError::Refused`]; anything else is [`StoreError::Unavailable`].

use crate::store::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        // tokio-postgres's own message for a server error is just "db error"; the server's
        // message and code are in the source.
        let Some(db) = error.as_db_error() else {
            // The causes (a refused certificate, a refused connection) are in the sources.
            let mut text = format!("PostgreSQL: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            return StoreError::Unavailable(text);
        };
        let code = db.code().code();
        let text = format!("PostgreSQL: {} ({code})", db.message());
        // Class 22: data exceptions (a value the type cannot hold); class 23: integrity
        // constraints.
        if code.starts_with("22") || code.starts_with("23") {
            StoreError::Refused(text)
        } else {
            StoreError::Unavailable(text)
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
        }
    }
}

impl From<deadpool_postgres::BuildError> for StoreError {
    fn from(error: deadpool_postgres::BuildError) -> Self {
        StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {error}"))
    }
}

impl From<refinery::Error> for StoreError {
    fn from(error: refinery::Error) -> Self {
        StoreError::Migration(error.to_string())
    }
}
