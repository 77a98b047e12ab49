//! The store contract: the same tests drive the `Store` trait directly on both stores, SQLite
//! (the standalone mode) and PostgreSQL (the distributed mode, started by
//! `scripts/services up`), each test on a store of its own. What one store does, the other
//! does: claims, run claims and their leases, reports applied only forward, recovery of a lost
//! attempt, paging, batches, errors, cancels, idempotency keys and schedules' fires.

mod cases;
mod control;
mod fixtures;
mod recovery;
mod schedules;

use cases::*;
use control::*;
use recovery::*;
use schedules::*;

/// Declares each contract test once per store: `sqlite::<name>` and `postgres::<name>`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fresh = crate::fixtures::sqlite().await;
                    crate::$name(std::sync::Arc::clone(&fresh.store)).await;
                    fresh.remove().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let fresh = crate::fixtures::postgres().await;
                    crate::$name(std::sync::Arc::clone(&fresh.store)).await;
                    fresh.remove().await;
                }
            )*
        }
    };
}

contract!(
    a_created_job_reads_back_as_given,
    a_batch_is_stored_all_or_none_and_its_due_jobs_come_back_claimed,
    due_jobs_are_claimed_once_earliest_first_under_a_new_epoch,
    a_run_is_claimed_once_per_attempt_and_only_under_the_current_epoch,
    a_claimed_run_shows_running_and_a_released_claim_leaves_it_alone,
    an_unstarted_claimed_run_is_handed_back_without_a_lost_attempt,
    reports_move_a_job_only_forward_under_its_epoch,
    an_attempt_that_ends_its_job_at_once_is_kept_in_the_job,
    a_retry_is_recorded_as_its_own_attempt,
    a_run_whose_lease_ran_out_is_recorded_lost_and_dispatched_again,
    a_job_lost_too_often_ends_failed,
    pages_list_newest_first_and_filter_by_the_status_shown,
    a_value_the_store_cannot_hold_is_refused,
    the_jobs_of_a_dead_instance_are_taken_back_at_once,
    a_dispatch_nobody_holds_on_an_unheld_partition_is_taken_back,
    a_dispatch_nobody_holds_is_taken_back_once_its_dispatcher_is_dead,
    an_instance_is_alive_while_it_beats,
    a_retired_instance_is_dead_and_beats_no_more,
    a_cancelled_job_is_final_and_its_run_cannot_be_claimed,
    a_running_jobs_cancel_reaches_its_runner_once,
    an_idempotency_key_names_one_job,
    a_jobs_own_fields_read_back_as_given,
    a_fire_is_made_once_whichever_pass_comes_at_it,
    a_fire_run_is_claimed_under_its_overlap_rule,
    missed_fires_follow_the_catchup_rule,
);
