//! What can go wrong with a store, in words a caller can act on, whichever store it is. Each
//! store turns its driver's errors into these (`postgres::errors`, `sqlite::errors`).

/// A failure to reach or use the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not do what it was asked (a lost connection, a
    /// server shutting down, a timeout): trying again later may succeed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused a value (a constraint, a value it cannot hold): the same request
    /// will be refused again.
    #[error("the store refused the request: {0}")]
    Refused(String),
    /// A value read back is not one Kairos writes.
    #[error("unexpected value {value:?} in {column}")]
    Corrupt { column: &'static str, value: String },
    /// The standalone mode's folder cannot be used.
    #[error("cannot use the data directory {path}: {reason}")]
    DataDirectory { path: String, reason: String },
    /// A migration failed (and was rolled back).
    #[error("applying migrations failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// A value read back that is not one Kairos writes.
    pub fn corrupt(column: &'static str, value: impl Into<String>) -> Self {
        StoreError::Corrupt {
            column,
            value: value.into(),
        }
    }
}
