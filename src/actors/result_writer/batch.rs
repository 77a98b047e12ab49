//! The result writer's batches: the reports read and not yet written, and the writes under
//! way, each a task of its own that retries until its transaction commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, Shared};

use actix::SpawnHandle;

use super::{RETRY_FIRST, RETRY_MAX};
use crate::bus::Record;
use crate::domain::AttemptReport;
use crate::store::{Applied, Store};

/// Reports waiting to be written, and the offsets to store once they are.
#[derive(Debug, Default)]
pub struct Batch {
    pub reports: Vec<AttemptReport>,
    /// The size of the records read into it.
    pub bytes: usize,
    /// The highest offset per partition covered by the batch.
    pub offsets: HashMap<i32, i64>,
    /// When the first record arrived.
    pub opened: Option<Instant>,
}

impl Batch {
    /// Covers `message`'s offset: it is acknowledged once the batch is written.
    pub fn cover(&mut self, message: &Record) {
        let offset = self
            .offsets
            .entry(message.partition)
            .or_insert(message.offset);
        *offset = (*offset).max(message.offset);
    }

    /// Whether nothing has been read into the batch.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.offsets.is_empty()
    }
}

/// A batch being written. The write is a task of its own rather than a future of the actor's
/// context, so that the actor can wait for its commit (when the next batch is full) without
/// stalling it, and so that it outlives a restart of the actor, which then waits for it.
pub struct Write {
    pub batch: Arc<Batch>,
    /// Resolves when the batch is committed (`None` if the task died without committing).
    pub committed: Shared<BoxFuture<'static, Option<Applied>>>,
    /// The actor's future that notes the commit while the actor goes on reading; `None` once
    /// the actor waits for the commit instead.
    pub watcher: Option<SpawnHandle>,
    /// What the write applied, once it committed; its offsets wait for the writes before it.
    pub applied: Option<Applied>,
}

/// Applies `reports` in one transaction, retrying with backoff until it commits.
pub async fn write_until_committed(
    store: &dyn Store,
    reports: &[AttemptReport],
    retry_lease: Duration,
) -> Applied {
    let mut pause = RETRY_FIRST;
    loop {
        match store.apply_reports(reports, retry_lease).await {
            Ok(applied) => return applied,
            Err(error) => {
                tracing::error!(%error, reports = reports.len(), retry_in = ?pause, "cannot write reports; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}
