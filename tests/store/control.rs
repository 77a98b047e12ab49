//! The store contract's cases about job control: cancels, idempotency keys, a job's own
//! fields (see `main.rs`).

use std::sync::Arc;
use std::time::Duration;

use kairos::domain::{AttemptOutcome, HttpSpec, JobSpec, JobStatus, Payload, RetryPolicy};
use kairos::store::{Cancelled, IdempotencyKey, JobFilter, Keyed, KeyedCreate, RunKey, Store};

use crate::cases::{attempt_statuses, status};
use crate::fixtures::{LONG, in_secs, job, report, run_of};

/// A cancel ends a waiting job at once, fences its run, tells its holder at its next
/// heartbeat, and changes nothing once the job has ended.
pub async fn a_cancelled_job_is_final_and_its_run_cannot_be_claimed(store: Arc<dyn Store>) {
    let (_, dispatch) = store
        .create_claimed(job(in_secs(60), 3), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    store.hold_run(run);
    assert_eq!(
        store
            .cancel(dispatch.job_id, Some("contract".into()))
            .await
            .expect("cancelled"),
        Some(Cancelled::Waiting)
    );
    assert_eq!(status(&store, run.job_id).await, JobStatus::Cancelled);
    let (cancelled, _) = store
        .get_job(run.job_id)
        .await
        .expect("read")
        .expect("the job");
    assert_eq!(cancelled.cancelled_by.as_deref(), Some("contract"));
    assert!(
        !store.claim_run(run, LONG).await.expect("answered"),
        "a cancelled run was claimed"
    );
    assert_eq!(
        store
            .cancel(run.job_id, Some("contract".into()))
            .await
            .expect("answered"),
        Some(Cancelled::AlreadyFinal)
    );
    assert_eq!(
        store
            .cancel(uuid::Uuid::now_v7(), Some("contract".into()))
            .await
            .expect("answered"),
        None
    );
    let listed = store
        .list_jobs(
            JobFilter {
                status: Some(JobStatus::Cancelled),
                ..JobFilter::default()
            },
            None,
            10,
        )
        .await
        .expect("listed");
    assert_eq!(
        listed.iter().map(|job| job.id).collect::<Vec<_>>(),
        [run.job_id]
    );
}

/// A running job's cancel reaches the instance running it once, through its heartbeat; the
/// attempt's report then records the attempt `CANCELLED` and leaves the job `CANCELLED`.
pub async fn a_running_jobs_cancel_reaches_its_runner_once(store: Arc<dyn Store>) {
    let (_, dispatch) = store
        .create_claimed(job(in_secs(0), 3), LONG)
        .await
        .expect("stored");
    let run = run_of(&dispatch);
    assert!(store.claim_run(run, LONG).await.expect("claimed"));
    assert_eq!(
        store
            .cancel(run.job_id, Some("contract".into()))
            .await
            .expect("cancelled"),
        Some(Cancelled::Running)
    );
    assert_eq!(store.heartbeat(&[]).await.expect("beaten"), [run.job_id]);
    assert!(store.heartbeat(&[]).await.expect("beaten").is_empty());

    let stopped = report(run, JobStatus::Cancelled, AttemptOutcome::Cancelled);
    store
        .apply_reports(&[stopped], LONG)
        .await
        .expect("applied");
    assert_eq!(status(&store, run.job_id).await, JobStatus::Cancelled);
    assert_eq!(
        attempt_statuses(&store, run.job_id).await,
        [AttemptOutcome::Cancelled]
    );
    // Nothing moves it on, not even a success that raced the cancel.
    let late = report(run, JobStatus::Success, AttemptOutcome::Succeeded);
    store.apply_reports(&[late], LONG).await.expect("applied");
    assert_eq!(status(&store, run.job_id).await, JobStatus::Cancelled);
}

/// A key names one job: the same request again gets it, another request is refused, and a
/// key past its retention is free again.
pub async fn an_idempotency_key_names_one_job(store: Arc<dyn Store>) {
    let key = |hash: &str| IdempotencyKey {
        key: "order-17".into(),
        request_hash: hash.into(),
    };
    let first = job(in_secs(5), 3);
    let created = store
        .create_keyed(
            vec![(first.clone(), Some(key("a")))],
            in_secs(60),
            LONG,
            LONG,
        )
        .await
        .expect("stored");
    let KeyedCreate::Stored { jobs, dispatches } = created else {
        panic!("refused: {created:?}");
    };
    assert_eq!(jobs, [Keyed::Created(first.id)]);
    assert_eq!(
        dispatches.iter().map(|d| d.job_id).collect::<Vec<_>>(),
        [first.id]
    );

    let again = job(in_secs(5), 3);
    let unkeyed = job(in_secs(3600), 3);
    let created = store
        .create_keyed(
            vec![(again.clone(), Some(key("a"))), (unkeyed.clone(), None)],
            in_secs(60),
            LONG,
            LONG,
        )
        .await
        .expect("stored");
    let KeyedCreate::Stored { jobs, dispatches } = created else {
        panic!("refused: {created:?}");
    };
    assert_eq!(
        jobs,
        [Keyed::Existing(first.id), Keyed::Created(unkeyed.id)]
    );
    assert!(dispatches.is_empty());
    assert!(store.get_job(again.id).await.expect("read").is_none());

    let other = job(in_secs(5), 3);
    let refused = store
        .create_keyed(
            vec![(job(in_secs(9), 1), None), (other.clone(), Some(key("b")))],
            in_secs(60),
            LONG,
            LONG,
        )
        .await
        .expect("answered");
    assert!(
        matches!(refused, KeyedCreate::Reused { index: 1 }),
        "{refused:?}"
    );
    assert_eq!(
        store
            .list_jobs(JobFilter::default(), None, 10)
            .await
            .expect("listed")
            .len(),
        2
    );

    // Past its retention, the key names the next job given with it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let created = store
        .create_keyed(
            vec![(other.clone(), Some(key("b")))],
            in_secs(60),
            LONG,
            Duration::from_millis(10),
        )
        .await
        .expect("stored");
    assert!(
        matches!(created, KeyedCreate::Stored { ref jobs, .. } if jobs == &[Keyed::Created(other.id)]),
        "{created:?}"
    );
}

/// A job's kind fields, its own backoff and what it re-runs read back as given, in the job
/// and in its dispatch.
pub async fn a_jobs_own_fields_read_back_as_given(store: Arc<dyn Store>) {
    let mut new = job(in_secs(5), 3);
    new.spec = JobSpec::Http(HttpSpec {
        url: "https://hooks.example.com/charge".into(),
        method: "PUT".into(),
        headers: [("X-Team".to_owned(), "billing".to_owned())].into(),
        body: Some(Payload::Json(serde_json::json!({"amount": 3}))),
        success_status: [200, 204],
    });
    new.retry_backoff = Some(RetryPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_secs(60),
        jitter: 0.1,
    });
    new.rerun_of = Some(uuid::Uuid::now_v7());
    let (stored, dispatch) = store
        .create_claimed(new.clone(), LONG)
        .await
        .expect("stored");
    assert_eq!(stored.spec, new.spec);
    assert_eq!(stored.retry_backoff, new.retry_backoff);
    assert_eq!(stored.rerun_of, new.rerun_of);
    assert_eq!(stored.created_by.as_deref(), Some("contract"));
    assert_eq!(stored.cancelled_by, None);
    assert_eq!(dispatch.spec, new.spec);
    assert_eq!(dispatch.retry_backoff, new.retry_backoff);
    let run: RunKey = run_of(&dispatch);
    assert!(store.claim_run(run, LONG).await.expect("claimed"));
}
