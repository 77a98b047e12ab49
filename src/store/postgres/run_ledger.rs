//! Run claims and run releases, batched.
//!
//! Every attempt costs small writes on the `jobs` row:
//!
//! - the **hold**, when an executor takes a dispatch: the job's `runner` names this
//!   instance, so that while it beats nobody takes the job back, however long it waits for a
//!   free run slot, and once it stops beating the job is recovered at once rather than at its
//!   time plus the grace;
//! - the **claim** of its run before it starts: the job becomes `RUNNING` on this instance
//!   with a lease of the attempt's timeout plus the recovery grace, only if the dispatch's
//!   epoch is still current and the attempt has not started yet. So however often, and
//!   wherever, a dispatch is delivered, each attempt starts once, and a superseded dispatch
//!   never starts. (`RUNNING` is accepted as the prior status because the report that the
//!   previous attempt failed may not be written yet.)
//! - the **release** of its runner once the attempt's report is safe in Kafka: the job no
//!   longer depends on this process, only on the result writer, which has what is left of
//!   the claim's lease.
//!
//! Executed one by one they cost a round trip and a commit each.
//!
//! The statements say `jobs.id = ANY($1)` besides joining on the id: during a burst the
//! table's statistics lag (few rows look `RUNNING`) and, without it, the planner joined the
//! batch against a bitmap scan of every in-flight job instead of looking each id up. The ledger queues them and a single task
//! executes whatever has queued as one `UPDATE … FROM UNNEST` per kind: a lone request goes
//! out at once (nothing waits for a batch to fill), and under load many share a commit.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::store::{RunKey, StoreError};

/// Requests executed per statement, at most.
const MAX_BATCH: usize = 256;

/// How long releases of busy rows wait before they go again.
const BUSY_PAUSE: Duration = Duration::from_millis(5);

/// Holds written per round, at most, so that a flood of them cannot hold releases back.
const HOLDS_PER_ROUND: usize = 500;

/// Claims, holds and releases queued for the ledger's tasks. Claims have tasks (and
/// connections) of their own, [`CLAIM_WORKERS`] taking turns, so that nothing else delays
/// the start of a due job and a herd's claims are written two statements at a time.
#[derive(Debug, Clone)]
pub struct RunLedger {
    claims: mpsc::UnboundedSender<PendingClaim>,
    requests: mpsc::UnboundedSender<Request>,
}

/// Claim tasks taking turns.
const CLAIM_WORKERS: usize = 2;

#[derive(Debug)]
enum Request {
    Hold {
        key: RunKey,
    },
    Release {
        key: RunKey,
        answer: oneshot::Sender<Result<(), String>>,
    },
}

/// Why a ledger request failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0}")]
    Store(String),
    #[error("the run ledger has stopped")]
    Stopped,
}

impl From<LedgerError> for StoreError {
    fn from(error: LedgerError) -> Self {
        StoreError::Worker(error.to_string())
    }
}

impl RunLedger {
    /// Starts the ledger's task on the current runtime, writing through `pool` on behalf of
    /// `instance`.
    pub fn start(pool: Pool, instance: String) -> Self {
        let (claims, claim_receiver) = mpsc::unbounded_channel();
        let (requests, receiver) = mpsc::unbounded_channel();
        let claim_receiver = Arc::new(Mutex::new(claim_receiver));
        for _ in 0..CLAIM_WORKERS {
            tokio::spawn(claim_runs_queued(
                pool.clone(),
                instance.clone(),
                Arc::clone(&claim_receiver),
            ));
        }
        tokio::spawn(run(pool, instance, receiver));
        RunLedger { claims, requests }
    }

    /// Records that this instance holds the dispatch `key` (best effort: without it the job is
    /// only recovered later, by its lease).
    pub fn hold(&self, key: RunKey) {
        let _ = self.requests.send(Request::Hold { key });
    }

    /// Claims the run of `key`: true if this caller may start it.
    ///
    /// # Errors
    /// [`LedgerError`] when the database cannot be reached.
    pub async fn claim(&self, key: RunKey, lease: Duration) -> Result<bool, LedgerError> {
        let (answer, answered) = oneshot::channel();
        self.claims
            .send((key, lease, answer))
            .map_err(|_| LedgerError::Stopped)?;
        answered
            .await
            .map_err(|_| LedgerError::Stopped)?
            .map_err(LedgerError::Store)
    }

    /// Releases the runner of `key`, whose report is safe in Kafka.
    ///
    /// # Errors
    /// [`LedgerError`] when the database cannot be reached.
    pub async fn release(&self, key: RunKey) -> Result<(), LedgerError> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request::Release { key, answer })
            .map_err(|_| LedgerError::Stopped)?;
        answered
            .await
            .map_err(|_| LedgerError::Stopped)?
            .map_err(LedgerError::Store)
    }
}

async fn run(pool: Pool, instance: String, mut receiver: mpsc::UnboundedReceiver<Request>) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    // Holds are best effort and come last.
    let mut holds: Vec<RunKey> = Vec::new();
    let mut retry: Vec<PendingRelease> = Vec::new();
    loop {
        if !retry.is_empty() && holds.is_empty() && receiver.is_empty() {
            // Only busy rows are left: give their transaction a moment to end.
            tokio::time::sleep(BUSY_PAUSE).await;
        }
        if holds.is_empty() && retry.is_empty() {
            if receiver.recv_many(&mut queued, MAX_BATCH).await == 0 {
                return;
            }
        } else {
            while queued.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => queued.push(request),
                    Err(_) => break,
                }
            }
        }
        // Releases of rows that were busy last round go again.
        let mut releases = std::mem::take(&mut retry);
        for request in queued.drain(..) {
            match request {
                Request::Hold { key } => holds.push(key),
                Request::Release { key, answer } => releases.push((key, answer)),
            }
        }
        if !releases.is_empty() {
            releases.sort_unstable_by_key(|(key, _)| key.job_id);
            let keys: Vec<RunKey> = releases.iter().map(|(key, _)| *key).collect();
            match release_runs(&pool, &keys).await {
                Ok(busy) => {
                    let busy: HashSet<Uuid> = busy.iter().map(|key| key.job_id).collect();
                    for (key, answer) in releases {
                        if busy.contains(&key.job_id) {
                            retry.push((key, answer));
                        } else {
                            let _ = answer.send(Ok(()));
                        }
                    }
                }
                Err(error) => {
                    let error = error.to_string();
                    for (_, answer) in releases {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
        if !holds.is_empty() {
            let mut batch: Vec<RunKey> = holds.drain(..holds.len().min(HOLDS_PER_ROUND)).collect();
            batch.sort_unstable_by_key(|key| key.job_id);
            if let Err(error) = hold_runs(&pool, &instance, &batch).await {
                tracing::warn!(%error, jobs = batch.len(), "cannot record held dispatches");
            }
        }
    }
}

/// A release waiting for its batch: what to release, and who to answer.
type PendingRelease = (RunKey, oneshot::Sender<Result<(), String>>);

/// A claim waiting for its batch: what to claim, for how long, and who to answer.
type PendingClaim = (RunKey, Duration, oneshot::Sender<Result<bool, String>>);

/// A claim task: takes whatever claims have queued (up to [`MAX_BATCH`]) and writes them
/// with one statement, while the other task does the same with the next ones.
async fn claim_runs_queued(
    pool: Pool,
    instance: String,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<PendingClaim>>>,
) {
    let mut claims = Vec::with_capacity(MAX_BATCH);
    loop {
        if receiver
            .lock()
            .await
            .recv_many(&mut claims, MAX_BATCH)
            .await
            == 0
        {
            return;
        }
        // Sorted by job id, the order in which the result writer locks its batch (see
        // `reports`), so that the two cannot deadlock.
        claims.sort_unstable_by_key(|(key, _, _)| key.job_id);
        execute_claims(&pool, &instance, std::mem::take(&mut claims)).await;
    }
}

async fn execute_claims(pool: &Pool, instance: &str, claims: Vec<PendingClaim>) {
    // A job may be claimed once per statement; a second claim of the same job in one batch
    // loses (it could only be a duplicate of the first).
    let mut seen = HashSet::new();
    let (first, repeated): (Vec<_>, Vec<_>) = claims
        .into_iter()
        .partition(|(key, _, _)| seen.insert(key.job_id));
    for (_, _, answer) in repeated {
        let _ = answer.send(Ok(false));
    }
    let keys: Vec<(RunKey, Duration)> =
        first.iter().map(|(key, lease, _)| (*key, *lease)).collect();
    match claim_runs(pool, instance, &keys).await {
        Ok(won) => {
            for (key, _, answer) in first {
                let _ = answer.send(Ok(won.contains(&key.job_id)));
            }
        }
        Err(error) => {
            let error = error.to_string();
            for (_, _, answer) in first {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

/// Records many held dispatches at once.
async fn hold_runs(pool: &Pool, instance: &str, runs: &[RunKey]) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|key| key.job_id).collect();
    let epochs: Vec<i64> = runs.iter().map(|key| key.epoch).collect();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE jobs SET runner = $3 \
             FROM UNNEST($1::uuid[], $2::int8[]) AS r(id, epoch) \
             WHERE jobs.id = ANY($1) AND jobs.id = r.id AND jobs.epoch = r.epoch \
               AND jobs.status = 'DISPATCHED' AND jobs.runner IS NULL",
        )
        .await?;
    client
        .execute(&statement, &[&ids, &epochs, &instance])
        .await?;
    Ok(())
}

/// Claims many runs at once; returns the jobs whose run was claimed.
async fn claim_runs(
    pool: &Pool,
    instance: &str,
    runs: &[(RunKey, Duration)],
) -> Result<HashSet<Uuid>, StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|(key, _)| key.job_id).collect();
    let epochs: Vec<i64> = runs.iter().map(|(key, _)| key.epoch).collect();
    let attempts: Vec<i32> = runs.iter().map(|(key, _)| key.attempt).collect();
    let leases: Vec<f64> = runs.iter().map(|(_, lease)| lease.as_secs_f64()).collect();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE jobs SET status = 'RUNNING', attempts = r.attempt, runner = $5, \
                 lease_until = now() + make_interval(secs => r.lease), \
                 started_at = COALESCE(jobs.started_at, now()), updated_at = now() \
             FROM UNNEST($1::uuid[], $2::int8[], $3::int4[], $4::float8[]) \
                 AS r(id, epoch, attempt, lease) \
             WHERE jobs.id = ANY($1) AND jobs.id = r.id AND jobs.epoch = r.epoch \
               AND jobs.attempts < r.attempt \
               AND jobs.status IN ('DISPATCHED', 'RUNNING', 'RETRYING') \
             RETURNING jobs.id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&ids, &epochs, &attempts, &leases, &instance])
        .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Releases the runners of many reported runs at once; returns the jobs it could not look at
/// because another transaction held them (the result writer, most likely writing their
/// reports right now), which the caller releases again in a moment.
///
/// Rows are taken with `SKIP LOCKED`, so a release never waits for the result writer, and
/// the two cannot deadlock. Only `runner` changes, so that the update can stay on its page
/// (HOT, see the migrations): the job keeps the lease its claim gave it (the attempt's timeout
/// plus the grace), which is the time left to the result writer.
async fn release_runs(pool: &Pool, runs: &[RunKey]) -> Result<Vec<RunKey>, StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|key| key.job_id).collect();
    let epochs: Vec<i64> = runs.iter().map(|key| key.epoch).collect();
    let attempts: Vec<i32> = runs.iter().map(|key| key.attempt).collect();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "WITH taken AS ( \
                 SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED), \
             released AS ( \
                 UPDATE jobs SET runner = NULL \
                 FROM taken, UNNEST($1::uuid[], $2::int8[], $3::int4[]) AS r(id, epoch, attempt) \
                 WHERE jobs.id = ANY($1) AND jobs.id = taken.id AND jobs.id = r.id \
                   AND jobs.epoch = r.epoch \
                   AND jobs.attempts = r.attempt AND jobs.status = 'RUNNING' \
                   AND jobs.runner IS NOT NULL) \
             SELECT id FROM taken",
        )
        .await?;
    let taken: HashSet<Uuid> = client
        .query(&statement, &[&ids, &epochs, &attempts])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(runs
        .iter()
        .filter(|key| !taken.contains(&key.job_id))
        .copied()
        .collect())
}
