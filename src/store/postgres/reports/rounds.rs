//! A batch of reports in rounds: at most one report per job in each, each job's reports in
//! arrival order across rounds, and reports that a later one of the same attempt moves past
//! dropped first (see `super`).

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use crate::domain::AttemptReport;

/// A report kept for writing, and how many reports it stands for (itself and those it
/// superseded).
pub type Weighted<'a> = (&'a AttemptReport, u64);

/// Drops every report that a later report of the same attempt (job, epoch, attempt) in
/// `reports` moves past, to a higher status rank; keeps the rest in arrival order.
pub fn supersede<'a>(reports: &[&'a AttemptReport]) -> Vec<Weighted<'a>> {
    // From the last report back: the highest rank seen so far per attempt, and where the
    // report that holds it is kept.
    let mut highest: HashMap<(Uuid, i64, i32), (i32, usize)> = HashMap::new();
    let mut kept: Vec<Weighted<'a>> = Vec::with_capacity(reports.len());
    for &report in reports.iter().rev() {
        let key = (report.job_id, report.epoch, report.attempt);
        let rank = report.status.rank();
        match highest.get(&key) {
            Some(&(higher, index)) if rank < higher => kept[index].1 += 1,
            _ => {
                highest.insert(key, (rank, kept.len()));
                kept.push((report, 1));
            }
        }
    }
    kept.reverse();
    kept
}

/// Splits `reports` into rounds holding at most one report per job, keeping each job's
/// reports in arrival order across rounds; each round is sorted by job id.
pub fn rounds<'a>(reports: &[Weighted<'a>]) -> Vec<Vec<Weighted<'a>>> {
    let mut per_job: HashMap<Uuid, VecDeque<Weighted<'a>>> = HashMap::new();
    let mut order = Vec::new();
    for &(report, weight) in reports {
        let queue = per_job.entry(report.job_id).or_default();
        if queue.is_empty() {
            order.push(report.job_id);
        }
        queue.push_back((report, weight));
    }
    // A round's rows are locked in the order it lists them (see `apply_in_transaction`).
    order.sort_unstable();
    let mut rounds = Vec::new();
    loop {
        let round: Vec<Weighted<'a>> = order
            .iter()
            .filter_map(|id| per_job.get_mut(id).and_then(VecDeque::pop_front))
            .collect();
        if round.is_empty() {
            return rounds;
        }
        rounds.push(round);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{AttemptOutcome, JobStatus};

    fn report(job: u128, attempt: i32, status: JobStatus) -> AttemptReport {
        AttemptReport {
            job_id: Uuid::from_u128(job),
            epoch: 1,
            attempt,
            status,
            outcome: AttemptOutcome::Running,
            scheduled_at: Utc::now(),
            started_at: Utc::now(),
            finished_at: None,
            exit_code: None,
            stdout: None,
            stderr: None,
            error: None,
            retry_at: None,
        }
    }

    #[test]
    fn rounds_hold_one_report_per_job_in_arrival_order() {
        let reports = [
            report(1, 1, JobStatus::Running),
            report(2, 1, JobStatus::Running),
            report(1, 1, JobStatus::Retrying),
            report(1, 2, JobStatus::Running),
            report(2, 1, JobStatus::Success),
        ];
        let weighted: Vec<Weighted<'_>> = reports.iter().map(|report| (report, 1)).collect();
        let rounds: Vec<Vec<(u128, i32, JobStatus)>> = rounds(&weighted)
            .iter()
            .map(|round| {
                round
                    .iter()
                    .map(|(r, _)| (r.job_id.as_u128(), r.attempt, r.status))
                    .collect()
            })
            .collect();
        assert_eq!(
            rounds,
            [
                vec![(1, 1, JobStatus::Running), (2, 1, JobStatus::Running)],
                vec![(1, 1, JobStatus::Retrying), (2, 1, JobStatus::Success)],
                vec![(1, 2, JobStatus::Running)],
            ]
        );
    }

    #[test]
    fn a_round_lists_its_jobs_by_id_whatever_the_arrival_order() {
        let reports = [
            report(3, 1, JobStatus::Success),
            report(1, 1, JobStatus::Running),
            report(2, 1, JobStatus::Failed),
            report(1, 1, JobStatus::Success),
        ];
        let weighted: Vec<Weighted<'_>> = reports.iter().map(|report| (report, 1)).collect();
        let ids: Vec<Vec<u128>> = rounds(&weighted)
            .iter()
            .map(|round| round.iter().map(|(r, _)| r.job_id.as_u128()).collect())
            .collect();
        assert_eq!(ids, [vec![1, 2, 3], vec![1]]);
    }

    #[test]
    fn a_report_moved_past_later_in_the_batch_is_dropped() {
        let reports = [
            report(1, 1, JobStatus::Running),
            report(2, 1, JobStatus::Running),
            report(1, 1, JobStatus::Retrying),
            report(1, 2, JobStatus::Running),
            report(1, 2, JobStatus::Success),
            report(2, 1, JobStatus::Running),
        ];
        let reports: Vec<&AttemptReport> = reports.iter().collect();
        let kept: Vec<(u128, i32, JobStatus, u64)> = supersede(&reports)
            .iter()
            .map(|(r, weight)| (r.job_id.as_u128(), r.attempt, r.status, *weight))
            .collect();
        assert_eq!(
            kept,
            [
                (2, 1, JobStatus::Running, 1),
                (1, 1, JobStatus::Retrying, 2),
                (1, 2, JobStatus::Success, 2),
                (2, 1, JobStatus::Running, 1),
            ]
        );
    }
}
