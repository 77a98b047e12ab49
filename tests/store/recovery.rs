//! The store contract's cases about crashes: leases that run out, dead instances, unheld
//! partitions and liveness (see `main.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kairos::domain::{AttemptOutcome, JobStatus};
use kairos::store::{LostScope, Recovered, Store};
use uuid::Uuid;

use crate::cases::{WAIT_LIMIT, attempt_statuses, status};
use crate::fixtures::{INSTANCE, LONG, in_secs, job, run_of};

/// Waits (bounded) until a recovery pass with a grace of a millisecond, taking back what
/// `scope` names too, takes something back.
pub async fn recover(store: &Arc<dyn Store>, max_lost: i32, scope: &LostScope) -> Recovered {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let recovered = store
            .recover(10, Duration::from_millis(1), max_lost, scope)
            .await
            .expect("a recovery pass");
        if recovered.lost_attempts > 0 || !recovered.dispatches.is_empty() {
            return recovered;
        }
        assert!(Instant::now() < deadline, "nothing was recovered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A run whose lease ran out with no result is recorded `LOST`, and its job dispatched again
/// under a new epoch, its lost attempt not counted as a failure.
pub async fn a_run_whose_lease_ran_out_is_recorded_lost_and_dispatched_again(
    store: Arc<dyn Store>,
) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(0), 0), Duration::ZERO)
        .await
        .expect("stored");
    assert!(
        store
            .claim_run(run_of(&dispatch), Duration::ZERO)
            .await
            .expect("answered")
    );
    let recovered = recover(&store, 3, &LostScope::default()).await;
    assert_eq!((recovered.lost_attempts, recovered.failed), (1, 0));
    assert_eq!(recovered.dispatches.len(), 1);
    let again = &recovered.dispatches[0];
    assert_eq!(
        (again.job_id, again.epoch, again.attempt, again.failures),
        (job.id, 2, 2, 0)
    );
    assert_eq!(status(&store, job.id).await, JobStatus::Dispatched);
    assert_eq!(
        attempt_statuses(&store, job.id).await,
        [AttemptOutcome::Lost]
    );
}

/// A job lost more often than allowed ends `FAILED`, saying why.
pub async fn a_job_lost_too_often_ends_failed(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(0), 3), Duration::ZERO)
        .await
        .expect("stored");
    assert!(
        store
            .claim_run(run_of(&dispatch), Duration::ZERO)
            .await
            .expect("answered")
    );
    let recovered = recover(&store, 0, &LostScope::default()).await;
    assert_eq!((recovered.lost_attempts, recovered.failed), (1, 1));
    assert!(recovered.dispatches.is_empty());
    let (read, _) = store.get_job(job.id).await.expect("read").expect("the job");
    assert_eq!(read.status, JobStatus::Failed);
    assert_eq!(
        read.last_error.as_deref(),
        Some("lost 1 attempts to crashes")
    );
}

/// The jobs a dead instance holds are taken back at once, whatever their lease: one waiting
/// for its time is dispatched again; one whose run it claimed only once every report it
/// published is written (`fenced`), and then its attempt is `LOST`.
pub async fn the_jobs_of_a_dead_instance_are_taken_back_at_once(store: Arc<dyn Store>) {
    let (job, dispatch) = store
        .create_claimed(job(in_secs(60), 0), LONG)
        .await
        .expect("stored");
    assert!(
        store
            .claim_run(run_of(&dispatch), LONG)
            .await
            .expect("answered")
    );
    let dead = LostScope {
        dead: vec![INSTANCE.to_owned()],
        ..LostScope::default()
    };
    let recovered = recover_once(&store, &dead).await;
    assert!(
        recovered.dispatches.is_empty(),
        "a run taken back before its reports were written"
    );
    let fenced = LostScope {
        fenced: vec![INSTANCE.to_owned()],
        ..dead
    };
    let recovered = recover_once(&store, &fenced).await;
    assert_eq!(recovered.lost_attempts, 1);
    assert_eq!(recovered.dispatches.len(), 1);
    assert_eq!(recovered.dispatches[0].epoch, 2);
    assert_eq!(
        attempt_statuses(&store, job.id).await,
        [AttemptOutcome::Lost]
    );
    store.forget(&fenced.fenced).await.expect("forgotten");
}

/// One recovery pass under `scope`, with a grace of an hour: only what `scope` names is taken
/// back.
async fn recover_once(store: &Arc<dyn Store>, scope: &LostScope) -> Recovered {
    store
        .recover(10, LONG, 3, scope)
        .await
        .expect("a recovery pass")
}

/// Asserts that a recovery pass under `scope` takes back `job` alone, a dispatch nobody held:
/// dispatched again under epoch 2, no attempt lost.
async fn assert_dispatched_again(store: &Arc<dyn Store>, scope: &LostScope, job: Uuid) {
    let recovered = recover_once(store, scope).await;
    let dispatched: Vec<(Uuid, i64)> = recovered
        .dispatches
        .iter()
        .map(|dispatch| (dispatch.job_id, dispatch.epoch))
        .collect();
    assert_eq!(dispatched, [(job, 2)]);
    assert_eq!(recovered.lost_attempts, 0);
}

/// A dispatched job that nobody holds, on a partition of the jobs topic that no live
/// instance's dispatcher holds, is taken back; on a held partition it is left alone.
pub async fn a_dispatch_nobody_holds_on_an_unheld_partition_is_taken_back(store: Arc<dyn Store>) {
    let (job, _) = store
        .create_claimed(job(in_secs(60), 0), LONG)
        .await
        .expect("stored");
    let held = LostScope {
        partitions: 1,
        ..LostScope::default()
    };
    let recovered = recover_once(&store, &held).await;
    assert!(recovered.dispatches.is_empty());
    let unheld = LostScope {
        unheld_partitions: vec![0],
        ..held
    };
    assert_dispatched_again(&store, &unheld, job.id).await;
}

/// A dispatched job that nobody holds is taken back at once when the instance that dispatched
/// it is dead, even on a partition a live dispatcher holds: that instance may have died
/// between its claim and the publication, and then no record of the job will ever be read.
/// While that instance lives, the job is left alone, and a dead instance is not forgotten
/// while such a job remains.
pub async fn a_dispatch_nobody_holds_is_taken_back_once_its_dispatcher_is_dead(
    store: Arc<dyn Store>,
) {
    store.heartbeat(&[0]).await.expect("beaten");
    let (job, _) = store
        .create_claimed(job(in_secs(60), 0), LONG)
        .await
        .expect("stored");
    let another_dead = LostScope {
        partitions: 1,
        dead: vec!["kairos-another".to_owned()],
        ..LostScope::default()
    };
    let recovered = recover_once(&store, &another_dead).await;
    assert!(
        recovered.dispatches.is_empty(),
        "taken back while its dispatcher lives"
    );
    store.forget(&[INSTANCE.to_owned()]).await.expect("forget");
    let liveness = store.liveness(LONG, LONG).await.expect("read");
    assert_eq!(
        liveness.alive,
        [(INSTANCE.to_owned(), vec![0])],
        "forgotten while a dispatch it made is held by nobody"
    );
    let its_dispatcher_dead = LostScope {
        dead: vec![INSTANCE.to_owned()],
        ..another_dead
    };
    assert_dispatched_again(&store, &its_dispatcher_dead, job.id).await;
}

/// An instance that beats is alive with the partitions it holds; one silent for the grace is
/// dead.
pub async fn an_instance_is_alive_while_it_beats(store: Arc<dyn Store>) {
    store.heartbeat(&[0, 2]).await.expect("beaten");
    let liveness = store
        .liveness(Duration::from_secs(1), LONG)
        .await
        .expect("read");
    assert_eq!(liveness.alive, [(INSTANCE.to_owned(), vec![0, 2])]);
    assert!(liveness.dead.is_empty());
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let liveness = store
            .liveness(Duration::from_millis(1), Duration::from_millis(5))
            .await
            .expect("read");
        if liveness.dead == [INSTANCE.to_owned()] {
            assert!(liveness.alive.is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "a silent instance stayed alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A retired instance is dead at once, and a beat after it (one under way as the process
/// stops) does not make it alive again.
pub async fn a_retired_instance_is_dead_and_beats_no_more(store: Arc<dyn Store>) {
    // Shorter than an hour: retiring forgets instances silent for that long.
    let grace = Duration::from_secs(60);
    store.heartbeat(&[0]).await.expect("beaten");
    store.retire_instance(grace).await.expect("retired");
    store.heartbeat(&[0]).await.expect("a beat after retiring");
    let liveness = store.liveness(grace, grace).await.expect("read");
    assert!(liveness.alive.is_empty(), "alive: {:?}", liveness.alive);
    assert_eq!(liveness.dead, [INSTANCE.to_owned()]);
}
