//! Single creates, written together.
//!
//! Every `POST /api/v1/jobs` stores one row; executed one by one, each costs a round trip, a
//! statement and a commit. The queue collects whatever creates arrive while a write is under
//! way and stores them with one multi-row `INSERT` ([`super::jobs::insert_many`]): a lone
//! create goes out at once (nothing waits for a batch to fill), and under load many share a
//! statement and a commit. Two writers take turns, so that one batch fills while the other is
//! written. A batch the database refuses is retried row by row, so that one bad row cannot
//! fail the others.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::jobs::insert_many;
use crate::domain::{Dispatch, Job, NewJob};
use crate::store::StoreError;

/// Creates per statement, at most.
const MAX_BATCH: usize = 1_000;

/// Writers taking turns.
const WRITERS: usize = 2;

/// A create waiting for its batch: the job, its claim (the lease's grace when the job is
/// claimed as it is stored), and who to answer.
type Pending = (
    NewJob,
    Option<Duration>,
    oneshot::Sender<Result<(Job, Dispatch), String>>,
);

/// Creates queued for the writers.
#[derive(Debug, Clone)]
pub struct InsertQueue {
    requests: mpsc::UnboundedSender<Pending>,
}

impl InsertQueue {
    /// Starts the writers on the current runtime, storing through `pool` and claiming for
    /// `instance`.
    pub fn start(pool: Pool, instance: String) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let instance: Arc<str> = instance.into();
        for _ in 0..WRITERS {
            tokio::spawn(write(
                pool.clone(),
                Arc::clone(&instance),
                Arc::clone(&receiver),
            ));
        }
        Self { requests }
    }

    /// Stores `job` (claimed, with a lease of its time plus `claim`, when given).
    ///
    /// # Errors
    /// [`StoreError::Worker`] with the database's reason when the row is not stored.
    pub async fn insert(
        &self,
        job: NewJob,
        claim: Option<Duration>,
    ) -> Result<(Job, Dispatch), StoreError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Worker("the insert queue has stopped".into());
        self.requests
            .send((job, claim, answer))
            .map_err(|_| stopped())?;
        answered
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Worker)
    }
}

async fn write(
    pool: Pool,
    instance: Arc<str>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    loop {
        if receiver
            .lock()
            .await
            .recv_many(&mut queued, MAX_BATCH)
            .await
            == 0
        {
            return;
        }
        let (rows, answers): (Vec<_>, Vec<_>) = queued
            .drain(..)
            .map(|(job, claim, answer)| ((job, claim), answer))
            .unzip();
        let borrowed: Vec<(&NewJob, Option<Duration>)> =
            rows.iter().map(|(job, claim)| (job, *claim)).collect();
        match insert_many(&pool, &borrowed, &instance).await {
            Ok(inserted) => {
                for (answer, row) in answers.into_iter().zip(inserted) {
                    let _ = answer.send(Ok(row));
                }
            }
            Err(error) if rows.len() == 1 => {
                for answer in answers {
                    let _ = answer.send(Err(error.to_string()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, jobs = rows.len(), "a batch of creates was refused; storing them one by one");
                for (row, answer) in rows.into_iter().zip(answers) {
                    let result = insert_many(&pool, &[(&row.0, row.1)], &instance)
                        .await
                        .map_err(|error| error.to_string())
                        .and_then(|mut inserted| {
                            inserted
                                .pop()
                                .ok_or_else(|| "the row was not returned".to_owned())
                        });
                    let _ = answer.send(result);
                }
            }
        }
    }
}
