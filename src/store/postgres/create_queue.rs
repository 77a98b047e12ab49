//! Single creates, written together.
//!
//! Every `POST /api/v1/jobs` stores one row; executed one by one, each costs a round trip, a
//! statement and a commit. The queue ([`BatchQueue`]) collects whatever creates arrive while a
//! write is under way and stores them with one multi-row `INSERT`
//! ([`super::jobs::insert_returning`]). Two writers take turns, so that one batch fills while
//! the other is written. A batch the database refuses is retried row by row, so that one bad
//! row cannot fail the others.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::jobs::insert_returning;
use crate::domain::{Dispatch, Job, NewJob};
use crate::store::StoreError;
use crate::store::batch_queue::{Asked, BatchQueue};

/// Creates per statement, at most.
const CREATES_PER_STATEMENT: usize = 1_000;

/// Writers taking turns.
const WRITERS: usize = 2;

/// A create: the job, and its claim (the lease's grace when the job is claimed as it is
/// stored).
type Create = (NewJob, Option<Duration>);

/// A create waiting for its batch, and where its stored job goes.
type Pending = Asked<Create, Result<(Job, Dispatch), StoreError>>;

/// Creates queued for the writers.
#[derive(Debug, Clone)]
pub struct CreateQueue {
    queue: BatchQueue<Pending>,
}

impl CreateQueue {
    /// Starts the writers on the current runtime, storing through `pool` and claiming for
    /// `instance`.
    pub fn start(pool: Pool, instance: String) -> Self {
        let queue = BatchQueue::start("create", WRITERS, CREATES_PER_STATEMENT, move |batch| {
            let (pool, instance) = (pool.clone(), instance.clone());
            async move { write(&pool, &instance, batch).await }
        });
        Self { queue }
    }

    /// Stores `job` (claimed, with a lease of its time plus `claim`, when given).
    ///
    /// # Errors
    /// [`StoreError`] with the database's reason when the row is not stored.
    pub async fn create(
        &self,
        job: NewJob,
        claim: Option<Duration>,
    ) -> Result<(Job, Dispatch), StoreError> {
        self.queue
            .ask((job, claim))
            .await
            .map_err(|stopped| StoreError::Unavailable(stopped.to_string()))?
    }
}

async fn write(pool: &Pool, instance: &str, batch: Vec<Pending>) {
    let (rows, answers): (Vec<Create>, Vec<_>) = batch.into_iter().unzip();
    let borrowed: Vec<(&NewJob, Option<Duration>)> =
        rows.iter().map(|(job, claim)| (job, *claim)).collect();
    match insert_returning(pool, &borrowed, instance).await {
        Ok(inserted) => {
            for (answer, row) in answers.into_iter().zip(inserted) {
                let _ = answer.send(Ok(row));
            }
        }
        Err(error) if rows.len() == 1 => {
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
        Err(error) => {
            tracing::warn!(%error, jobs = rows.len(), "a batch of creates was refused; storing them one by one");
            for ((job, claim), answer) in rows.iter().zip(answers) {
                let result = insert_returning(pool, &[(job, *claim)], instance)
                    .await
                    .and_then(|mut inserted| {
                        inserted
                            .pop()
                            .ok_or_else(|| StoreError::corrupt("jobs.id", "inserted, not returned"))
                    });
                let _ = answer.send(result);
            }
        }
    }
}
