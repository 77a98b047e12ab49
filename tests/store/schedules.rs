//! The store contract's cases about schedules: a fire is made once whatever comes at it, a
//! fire's run is claimed under its overlap rule, and missed fires follow the catch-up rule
//! (see `main.rs`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use kairos::domain::{JobSpec, JobStatus, JobTemplate, NewSchedule, Overlap, Recurrence, Schedule};
use kairos::store::{FireClaim, FireMoment, FirePass, JobFilter, Store, fire_job};
use uuid::Uuid;

use crate::cases::status;
use crate::fixtures::{LONG, run_of};

/// An every-second schedule whose next fire is `next`.
fn every_second(next: DateTime<Utc>, overlap: Overlap, catchup_window_secs: i32) -> NewSchedule {
    NewSchedule {
        id: Uuid::now_v7(),
        name: Some("contract".into()),
        recurrence: Recurrence::Every(Duration::from_secs(1)),
        timezone: "UTC".into(),
        job: JobTemplate {
            name: None,
            spec: JobSpec::Noop,
            max_retries: 0,
            timeout_secs: 60,
            metadata: serde_json::json!({}),
            retry_backoff: None,
        },
        overlap,
        catchup_window_secs,
        jitter_secs: 0,
        start_at: Some(next),
        end_at: None,
        paused: false,
        keep_last: 100,
        next_fire_at: Some(next),
        created_by: Some("contract".into()),
    }
}

fn pass(now: DateTime<Utc>, ahead_secs: i64) -> FirePass {
    FirePass {
        until: now + chrono::Duration::seconds(ahead_secs),
        now,
        late: Duration::from_secs(5),
        schedules: 100,
        fires: 1000,
        grace: LONG,
    }
}

async fn fire_times(store: &Arc<dyn Store>, schedule: Uuid) -> Vec<DateTime<Utc>> {
    let filter = JobFilter {
        schedule_id: Some(schedule),
        ..JobFilter::default()
    };
    let mut times: Vec<DateTime<Utc>> = store
        .list_jobs(filter, None, 500)
        .await
        .expect("listed")
        .iter()
        .filter_map(|job| job.scheduled_for)
        .collect();
    times.sort();
    times
}

async fn schedule(store: &Arc<dyn Store>, id: Uuid) -> Schedule {
    store
        .get_schedule(id)
        .await
        .expect("read")
        .expect("the schedule")
}

/// A pass makes the fires up to its horizon, claimed, and moves the schedule on; the same
/// pass again makes nothing; a trigger of a fire that has a job answers that job.
pub async fn a_fire_is_made_once_whichever_pass_comes_at_it(store: Arc<dyn Store>) {
    let now = Utc::now().trunc_subsecs(0);
    let first = now + chrono::Duration::seconds(1);
    let created = store
        .create_schedule(every_second(first, Overlap::AllowAll, 60))
        .await
        .expect("stored");
    let fired = store.fire_due(pass(now, 4)).await.expect("a pass");
    let expected: Vec<DateTime<Utc>> = (1..=3)
        .map(|s| now + chrono::Duration::seconds(s))
        .collect();
    assert_eq!(fired.dispatches.len(), 3, "{fired:?}");
    assert_eq!(created.created_by.as_deref(), Some("contract"));
    let (made, _) = store
        .get_job(fired.dispatches[0].job_id)
        .await
        .expect("read")
        .expect("the fire's job");
    assert_eq!(
        made.created_by.as_deref(),
        Some("contract"),
        "a fire's job is its schedule's"
    );
    assert!(fired.dispatches.iter().all(|dispatch| {
        dispatch
            .fire
            .is_some_and(|fire| fire.schedule_id == created.id)
    }));
    assert_eq!(fire_times(&store, created.id).await, expected);
    assert_eq!(
        schedule(&store, created.id).await.next_fire_at,
        Some(now + chrono::Duration::seconds(4))
    );

    let again = store.fire_due(pass(now, 4)).await.expect("a pass");
    assert!(again.dispatches.is_empty(), "{again:?}");
    let (ids, dispatches) = store
        .create_fires(vec![fire_job(&created, first)], now, LONG)
        .await
        .expect("a trigger");
    assert!(
        dispatches.is_empty(),
        "a second job for a fire was dispatched"
    );
    assert_eq!(ids, vec![fired.dispatches[0].job_id]);
    assert_eq!(fire_times(&store, created.id).await, expected);
}

/// Under `skip`, the first fire's run is claimed and the next fire, its predecessor unended,
/// ends `SKIPPED`; under `buffer_one` it waits instead, and is claimed once the first ended.
pub async fn a_fire_run_is_claimed_under_its_overlap_rule(store: Arc<dyn Store>) {
    for overlap in [Overlap::Skip, Overlap::BufferOne] {
        let now = Utc::now().trunc_subsecs(0);
        let created = store
            .create_schedule(every_second(
                now + chrono::Duration::seconds(1),
                overlap,
                60,
            ))
            .await
            .expect("stored");
        let fired = store.fire_due(pass(now, 3)).await.expect("a pass");
        let mut dispatches = fired.dispatches.clone();
        dispatches.sort_by_key(|dispatch| dispatch.execute_at);
        assert_eq!(dispatches.len(), 2, "{fired:?}");
        let (first, second) = (&dispatches[0], &dispatches[1]);
        let fire = |dispatch: &kairos::domain::Dispatch| dispatch.fire.expect("a fire");
        assert_eq!(
            store
                .claim_fire_run(run_of(first), LONG, fire(first), FireMoment::Due)
                .await
                .expect("answered"),
            FireClaim::Claimed
        );
        // Ahead of its time nothing is decided while the first has not ended.
        assert_eq!(
            store
                .claim_fire_run(run_of(second), LONG, fire(second), FireMoment::Ahead)
                .await
                .expect("answered"),
            FireClaim::Wait
        );
        assert_eq!(status(&store, second.job_id).await, JobStatus::Dispatched);
        let verdict = store
            .claim_fire_run(run_of(second), LONG, fire(second), FireMoment::Due)
            .await
            .expect("answered");
        match overlap {
            Overlap::Skip => {
                assert_eq!(verdict, FireClaim::Skipped);
                assert_eq!(status(&store, second.job_id).await, JobStatus::Skipped);
            }
            _ => {
                assert_eq!(verdict, FireClaim::Wait);
                assert_eq!(status(&store, second.job_id).await, JobStatus::Dispatched);
                assert!(
                    store
                        .cancel(first.job_id, Some("contract".into()))
                        .await
                        .expect("cancelled")
                        .is_some()
                );
                assert_eq!(
                    store
                        .claim_fire_run(run_of(second), LONG, fire(second), FireMoment::Due)
                        .await
                        .expect("answered"),
                    FireClaim::Claimed
                );
            }
        }
        assert!(store.delete_schedule(created.id).await.expect("deleted"));
    }
}

/// After 100 s without a pass, the latest fire within the catch-up window is made once and
/// the older ones are counted missed; a window of 0 makes none of them.
pub async fn missed_fires_follow_the_catchup_rule(store: Arc<dyn Store>) {
    let now = Utc::now().trunc_subsecs(0);
    let since = now - chrono::Duration::seconds(100);
    let windowed = store
        .create_schedule(every_second(since, Overlap::AllowAll, 30))
        .await
        .expect("stored");
    let none = store
        .create_schedule(every_second(since, Overlap::AllowAll, 0))
        .await
        .expect("stored");
    let fired = store.fire_due(pass(now, 1)).await.expect("a pass");
    // Fires from -100 s to -6 s were missed (older than the 5 s a fire may be late); the
    // latest of them, -6 s, is within the window of 30 s; -5 s to 0 s are only late.
    let late: Vec<DateTime<Utc>> = (0..=5)
        .rev()
        .map(|s| now - chrono::Duration::seconds(s))
        .collect();
    let mut windowed_times = vec![now - chrono::Duration::seconds(6)];
    windowed_times.extend(&late);
    assert_eq!(fire_times(&store, windowed.id).await, windowed_times);
    assert_eq!(fire_times(&store, none.id).await, late);
    assert_eq!(schedule(&store, windowed.id).await.missed_fires, 94);
    assert_eq!(schedule(&store, none.id).await.missed_fires, 95);
    assert_eq!(fired.missed, 94 + 95);
}
