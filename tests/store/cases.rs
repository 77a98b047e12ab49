//! The cases of the store contract, each run on both stores (see `main.rs`).

use std::sync::Arc;
use std::time::Duration;

use kairos::domain::{AttemptOutcome, JobSpec, JobStatus};
use kairos::store::{JobFilter, LostScope, RunKey, Store, StoreError};

use crate::fixtures::{LONG, in_secs, job, report, run_of};
use crate::recovery::recover;

/// How long a case waits for a lease to run out.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The statuses of a job's attempts, in order.
pub async fn attempt_statuses(store: &Arc<dyn Store>, id: uuid::Uuid) -> Vec<AttemptOutcome> {
    let (_, attempts) = store.get_job(id).await.expect("read").expect("the job");
    attempts.iter().map(|attempt| attempt.status).collect()
}

pub async fn status(store: &Arc<dyn Store>, id: uuid::Uuid) -> JobStatus {
    store
        .get_job(id)
        .await
        .expect("read")
        .expect("the job")
        .0
        .status
}

/// A job reads back as it was given; one created claimed is `DISPATCHED` under epoch 1 and
/// comes with the dispatch of its first attempt.
pub async fn a_created_job_reads_back_as_given(store: Arc<dyn Store>) {
    store.ping().await.expect("the store answers");
    let new = job(in_secs(3600), 2);
    let created = store.create(new.clone()).await.expect("stored");
    assert_eq!(
        (created.id, created.status, created.epoch, created.attempts),
        (new.id, JobStatus::Scheduled, 0, 0)
    );
    let (read, attempts) = store.get_job(new.id).await.expect("read").expect("the job");
    assert_eq!(read.spec, new.spec);
    assert_eq!(read.name, new.name);
    assert_eq!(read.metadata, new.metadata);
    assert_eq!(read.execute_at, new.execute_at);
    assert_eq!((read.max_retries, read.timeout_secs), (2, 30));
    assert!(attempts.is_empty());

    let due = job(in_secs(5), 3);
    let (claimed, dispatch) = store
        .create_claimed(due.clone(), LONG)
        .await
        .expect("stored");
    assert_eq!((claimed.status, claimed.epoch), (JobStatus::Dispatched, 1));
    assert_eq!(
        (
            dispatch.job_id,
            dispatch.epoch,
            dispatch.attempt,
            dispatch.failures
        ),
        (due.id, 1, 1, 0)
    );
    assert_eq!(dispatch.spec, due.spec);
    assert_eq!(dispatch.created_at, Some(claimed.created_at));
    assert!(
        store
            .get_job(uuid::Uuid::now_v7())
            .await
            .expect("read")
            .is_none()
    );
}

/// A batch is stored all or none; its jobs due before the given instant come back claimed.
pub async fn a_batch_is_stored_all_or_none_and_its_due_jobs_come_back_claimed(
    store: Arc<dyn Store>,
) {
    let (later, due) = (job(in_secs(3600), 0), job(in_secs(1), 0));
    let dispatches = store
        .create_many(vec![later.clone(), due.clone()], in_secs(60), LONG)
        .await
        .expect("stored");
    assert_eq!(dispatches.len(), 1);
    assert_eq!((dispatches[0].job_id, dispatches[0].epoch), (due.id, 1));
    assert_eq!(status(&store, later.id).await, JobStatus::Scheduled);
    assert_eq!(status(&store, due.id).await, JobStatus::Dispatched);

    let fresh = job(in_secs(3600), 0);
    let refused = store
        .create_many(vec![fresh.clone(), later.clone()], in_secs(60), LONG)
        .await
        .expect_err("a job stored twice");
    assert!(matches!(refused, StoreError::Refused(_)), "{refused:?}");
    assert!(
        store.get_job(fresh.id).await.expect("read").is_none(),
        "part of a refused batch was stored"
    );
}

/// Due jobs are claimed earliest first, each once, under a new epoch; a job due beyond the
/// horizon is not.
pub async fn due_jobs_are_claimed_once_earliest_first_under_a_new_epoch(store: Arc<dyn Store>) {
    let (first, second, later) = (
        job(in_secs(-10), 0),
        job(in_secs(-5), 0),
        job(in_secs(3600), 0),
    );
    for new in [&second, &later, &first] {
        store.create(new.clone()).await.expect("stored");
    }
    let claimed = store
        .claim_due(in_secs(60), 1, LONG)
        .await
        .expect("claimed");
    assert_eq!(
        claimed.iter().map(|d| d.job_id).collect::<Vec<_>>(),
        [first.id]
    );
    let claimed = store
        .claim_due(in_secs(60), 10, LONG)
        .await
        .expect("claimed");
    assert_eq!(
        claimed.iter().map(|d| d.job_id).collect::<Vec<_>>(),
        [second.id]
    );
    assert_eq!((claimed[0].epoch, claimed[0].attempt), (1, 1));
    assert!(
        store
            .claim_due(in_secs(60), 10, LONG)
            .await
            .expect("claimed")
            .is_empty()
    );
    assert_eq!(status(&store, later.id).await, JobStatus::Scheduled);
}

/// An attempt's run is claimed once, and only under the job's current epoch.
pub async fn a_run_is_claimed_once_per_attempt_and_only_under_the_current_epoch(
    store: Arc<dyn Store>,
) {
    let (_, dispatch) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    let stale = RunKey { epoch: 0, ..run };
    assert!(!store.claim_run(stale, LONG).await.expect("answered"));
    assert!(store.claim_run(run, LONG).await.expect("answered"));
    assert!(
        !store.claim_run(run, LONG).await.expect("answered"),
        "claimed twice"
    );
}

/// A claimed run shows `RUNNING` (and lists so); handing back the claim of its dispatch does
/// not touch it.
pub async fn a_claimed_run_shows_running_and_a_released_claim_leaves_it_alone(
    store: Arc<dyn Store>,
) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    assert!(
        store
            .claim_run(run_of(&dispatch), LONG)
            .await
            .expect("answered")
    );
    assert_eq!(status(&store, job.id).await, JobStatus::Running);
    let counts = store.count_jobs(10).await.expect("counted");
    assert!(
        counts
            .iter()
            .all(|(status, count)| *count == i64::from(*status == JobStatus::Running)),
        "{counts:?}"
    );
    let running = store
        .list_jobs(
            JobFilter {
                status: Some(JobStatus::Running),
                ..JobFilter::default()
            },
            None,
            10,
        )
        .await
        .expect("listed");
    assert_eq!(running.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    let dispatched = store
        .list_jobs(
            JobFilter {
                status: Some(JobStatus::Dispatched),
                ..JobFilter::default()
            },
            None,
            10,
        )
        .await
        .expect("listed");
    assert!(dispatched.is_empty());

    store
        .release_claim(job.id, dispatch.epoch)
        .await
        .expect("answered");
    let (read, _) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!((read.status, read.epoch), (JobStatus::Running, 1));
}

/// A claimed run that never started is handed back, with its job: a new epoch, no holder, its
/// lease run out, so that the next recovery pass dispatches it at once, with no attempt
/// recorded and none lost.
pub async fn an_unstarted_claimed_run_is_handed_back_without_a_lost_attempt(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    assert!(store.claim_run(run, LONG).await.expect("answered"));
    assert!(store.hand_back(run).await.expect("answered"));
    let (read, attempts) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!(
        (read.status, read.attempts, read.epoch),
        (JobStatus::Dispatched, 0, 2)
    );
    assert!(attempts.is_empty());
    assert!(!store.claim_run(run, LONG).await.expect("answered"));
    assert!(
        !store.hand_back(run).await.expect("answered"),
        "handed back twice"
    );
    let recovered = recover(&store, 3, &LostScope::default()).await;
    assert_eq!((recovered.lost_attempts, recovered.failed), (0, 0));
    let again = &recovered.dispatches[0];
    assert_eq!((again.epoch, again.attempt, again.failures), (3, 1, 0));
    assert!(
        store
            .claim_run(run_of(again), LONG)
            .await
            .expect("answered")
    );
}

/// A report moves its job only under its current epoch and only forward; repeated, late and
/// stale reports change nothing.
pub async fn reports_move_a_job_only_forward_under_its_epoch(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    assert!(store.claim_run(run, LONG).await.expect("answered"));
    let running = report(run, JobStatus::Running, AttemptOutcome::Running);
    let done = report(run, JobStatus::Success, AttemptOutcome::Succeeded);
    let stale = report(
        RunKey { epoch: 0, ..run },
        JobStatus::Failed,
        AttemptOutcome::Failed,
    );

    let applied = store
        .apply_reports(std::slice::from_ref(&running), LONG)
        .await
        .expect("applied");
    assert_eq!((applied.applied, applied.ignored), (1, 0));
    assert_eq!(status(&store, job.id).await, JobStatus::Running);
    assert_eq!(
        attempt_statuses(&store, job.id).await,
        [AttemptOutcome::Running]
    );

    let applied = store
        .apply_reports(std::slice::from_ref(&done), LONG)
        .await
        .expect("applied");
    assert_eq!((applied.applied, applied.ignored), (1, 0));
    let applied = store
        .apply_reports(&[running, done, stale], LONG)
        .await
        .expect("applied");
    assert_eq!((applied.applied, applied.ignored), (0, 3));
    let (read, _) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!(read.status, JobStatus::Success);
    assert_eq!(read.last_output.as_deref(), Some("attempt 1"));
    assert!(read.finished_at.is_some());
    assert_eq!(
        attempt_statuses(&store, job.id).await,
        [AttemptOutcome::Succeeded]
    );
}

/// An attempt that ends its job with its first report is shown with its result; a late
/// `RUNNING` of it changes nothing.
pub async fn an_attempt_that_ends_its_job_at_once_is_kept_in_the_job(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    assert!(store.claim_run(run, LONG).await.expect("answered"));
    let done = report(run, JobStatus::Failed, AttemptOutcome::Failed);
    store.apply_reports(&[done], LONG).await.expect("applied");
    let late = report(run, JobStatus::Running, AttemptOutcome::Running);
    let applied = store.apply_reports(&[late], LONG).await.expect("applied");
    assert_eq!(applied.ignored, 1);
    let (read, attempts) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!((read.status, read.exit_code), (JobStatus::Failed, Some(1)));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptOutcome::Failed);
    assert_eq!(attempts[0].error.as_deref(), Some("exit code 1"));
    assert_eq!(attempts[0].stdout.as_deref(), Some("attempt 1"));
}

/// A failed attempt followed by a retry leaves two attempts, each with its outcome.
pub async fn a_retry_is_recorded_as_its_own_attempt(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(1), 1), LONG)
        .await
        .expect("stored");
    let first = run_of(&dispatch);
    assert!(store.claim_run(first, LONG).await.expect("answered"));
    let failed = report(first, JobStatus::Retrying, AttemptOutcome::Failed);
    store.apply_reports(&[failed], LONG).await.expect("applied");
    assert_eq!(status(&store, job.id).await, JobStatus::Retrying);
    let second = RunKey {
        attempt: 2,
        ..first
    };
    assert!(store.claim_run(second, LONG).await.expect("answered"));
    let done = report(second, JobStatus::Success, AttemptOutcome::Succeeded);
    store.apply_reports(&[done], LONG).await.expect("applied");
    let (read, _) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!((read.status, read.attempts), (JobStatus::Success, 2));
    assert_eq!(
        attempt_statuses(&store, job.id).await,
        [AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
}

/// Pages list jobs newest first, each after the cursor of the one before; a status filter
/// keeps to the status shown; counts by status stop where they are told to.
pub async fn pages_list_newest_first_and_filter_by_the_status_shown(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            store
                .create(job(in_secs(3600), 0))
                .await
                .expect("stored")
                .id,
        );
    }
    let (claimed, _) = store
        .create_claimed(job(in_secs(1), 0), LONG)
        .await
        .expect("stored");
    ids.push(claimed.id);
    ids.reverse();
    let count_of = |counts: &[(JobStatus, i64)], wanted: JobStatus| {
        counts
            .iter()
            .find(|(status, _)| *status == wanted)
            .map(|(_, count)| *count)
    };
    let counts = store.count_jobs(100).await.expect("counted");
    assert_eq!(count_of(&counts, JobStatus::Scheduled), Some(5));
    assert_eq!(count_of(&counts, JobStatus::Dispatched), Some(1));
    let counts = store.count_jobs(3).await.expect("counted");
    assert_eq!(count_of(&counts, JobStatus::Scheduled), Some(3));
    assert_eq!(counts.len(), JobStatus::ALL.len());
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_jobs(JobFilter::default(), cursor, 4)
            .await
            .expect("listed");
        listed.extend(page.iter().map(|job| job.id));
        if page.len() < 4 {
            break;
        }
        cursor = page.last().map(|job| job.id);
    }
    assert_eq!(listed, ids);
    let scheduled = store
        .list_jobs(
            JobFilter {
                status: Some(JobStatus::Scheduled),
                ..JobFilter::default()
            },
            Some(ids[1]),
            10,
        )
        .await
        .expect("listed");
    assert_eq!(scheduled.iter().map(|j| j.id).collect::<Vec<_>>(), ids[2..]);
    let dispatched = store
        .list_jobs(
            JobFilter {
                status: Some(JobStatus::Dispatched),
                ..JobFilter::default()
            },
            None,
            10,
        )
        .await
        .expect("listed");
    assert_eq!(
        dispatched.iter().map(|j| j.id).collect::<Vec<_>>(),
        [claimed.id]
    );
    assert!(matches!(dispatched[0].spec, JobSpec::Shell(_)));
}

/// A value the store cannot hold (here a retry count its constraint refuses) is refused, not
/// taken for an outage.
pub async fn a_value_the_store_cannot_hold_is_refused(store: Arc<dyn Store>) {
    let refused = store
        .create(job(in_secs(3600), 11))
        .await
        .expect_err("refused");
    assert!(matches!(refused, StoreError::Refused(_)), "{refused:?}");
}
